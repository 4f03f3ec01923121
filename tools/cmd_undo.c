// SPDX-License-Identifier: MIT
/* cjfs undo: revert a committed transaction as a new transaction. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"

static const char usage[] = "cjfs undo [--force] [--json] TXN";
static const char help[] =
	"usage: cjfs undo [--force] [--json] TXN\n"
	"\n"
	"Revert committed transaction TXN (see 'cjfs log'): every path it changed\n"
	"goes back to its original, read from the store and verified against its\n"
	"SHA-256. The undo is a new transaction with the same all-or-nothing commit\n"
	"as 'cjfs commit': after a crash at any point PKG is exactly as before the\n"
	"undo or exactly as before TXN, never a mix. Once it is committed TXN shows\n"
	"as undone, and the undo itself can be undone ('cjfs undo' its id) to redo.\n"
	"\n"
	"A path changed in PKG since TXN was committed (by an editor, a later\n"
	"transaction, git) is a conflict: every conflicting path is named and\n"
	"nothing at all is applied.\n"
	"\n"
	"Options:\n"
	"  --force     overwrite the conflicting paths anyway; what is overwritten is\n"
	"              kept in the store and listed by 'cjfs show' on the undo\n"
	"  --json      machine-readable summary\n"
	"  --store DIR the store to use\n"
	"\n"
	"Exit status: 0 when undone; 1 on conflicts or failure (PKG unchanged);\n"
	"2 for a usage error. Refused while PKG has an open transaction.\n";

int cmd_undo(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cjfs_result res = { 0 };
	bool json = false, done = false;
	unsigned flags = 0;
	int64_t txn;
	int opt, r;

	while ((opt = cli_getopt_any(argc, argv, "h", longopts)) != -1) {
		switch (opt) {
		case 'F':
			flags |= CJFS_UNDO_FORCE;
			break;
		case 'j':
			json = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "undo", help, &done);
			if (done)
				return r;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("undo", usage, "expected one TXN");
	r = cli_parse_txn("undo", usage, argv[optind], &txn);
	if (r)
		return r;
	r = cjfs_undo(cli_store(cli), txn, flags, &res);
	if (json)
		printf("{\"undone\":%lld,\"txn\":%lld,\"result\":\"%s\",\"modified\":%lld,"
		       "\"added\":%lld,\"deleted\":%lld,\"conflicts\":%zu}\n",
		       (long long)txn, (long long)res.txn,
		       r == 0	      ? "committed"
		       : r == -EEXIST ? "conflict"
				      : "failed",
		       (long long)res.modified, (long long)res.added, (long long)res.deleted,
		       res.conflicts);
	else if (r == 0)
		printf("undid transaction %lld as transaction %lld: %lld modified, %lld added, %lld deleted\n",
		       (long long)txn, (long long)res.txn, (long long)res.modified,
		       (long long)res.added, (long long)res.deleted);
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}
