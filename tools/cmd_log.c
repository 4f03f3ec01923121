// SPDX-License-Identifier: MIT
/* cjfs log: one line per transaction, newest first. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char usage[] = "cjfs log [--pkg PKG] [-n N] [--json]";
static const char help[] =
	"usage: cjfs log [--pkg PKG] [-n N] [--json]\n"
	"\n"
	"List the transactions in the store, newest first, one line each:\n"
	"\n"
	"  ID  TIME  STATE  M/A/D  BYTES  PKG  [COMMAND]\n"
	"\n"
	"  ID       the transaction id, for 'cjfs show', 'undo', 'restore', 'commit'\n"
	"  TIME     when it began (local time)\n"
	"  STATE    open         mounted, being worked on\n"
	"           orphaned     open, but its daemon is gone: 'cjfs commit ID',\n"
	"                        'cjfs rollback ID' or 'cjfs mount --resume ID MNT'\n"
	"           sealed, committing\n"
	"                        being committed (or interrupted: 'cjfs recover')\n"
	"           committed    applied to PKG; its originals are kept\n"
	"           rolled back  discarded; PKG was never touched\n"
	"           undone       committed, then reverted by 'cjfs undo'\n"
	"  M/A/D    paths modified, added and deleted ('-' until it is committed)\n"
	"  BYTES    bytes of new content it wrote\n"
	"  COMMAND  the command 'cjfs run' ran, or 'cjfs undo N' / 'cjfs restore N'\n"
	"\n"
	"Options:\n"
	"  --pkg PKG   only the transactions on the directory PKG\n"
	"  -n N        at most N transactions (the newest)\n"
	"  --json      a JSON array; each object has id, state, pkg, command, time\n"
	"              and finished (RFC 3339, UTC, or null), modified, added,\n"
	"              deleted, bytes, undo_of and restore_of (0 when none)\n"
	"  --store DIR the store to read\n"
	"\n"
	"Exit status: 0, or 1 if the store cannot be read.\n";

static bool counted(const struct store_txn *t)
{
	/* The counters are written when the change set is sealed. */
	return t->state == STORE_TXN_COMMITTED || t->state == STORE_TXN_UNDONE ||
	       t->state == STORE_TXN_COMMITTING || t->state == STORE_TXN_SEALED ||
	       (t->state == STORE_TXN_ROLLED_BACK && (t->n_modified || t->n_added || t->n_deleted));
}

static void print_json(struct cjfs *c, struct store_txn **v, size_t n)
{
	fputc('[', stdout);
	for (size_t i = 0; i < n; i++) {
		const struct store_txn *t = v[i];

		printf("%s{\"id\":%lld,\"state\":\"%s\",\"pkg\":", i ? "," : "", (long long)t->id,
		       cli_txn_state(c, t));
		json_str(stdout, t->pkg);
		fputs(",\"command\":", stdout);
		json_str_or_null(stdout, t->command);
		fputs(",\"time\":", stdout);
		json_time(stdout, t->created_ns);
		fputs(",\"finished\":", stdout);
		json_time(stdout, t->finished_ns);
		if (counted(t))
			printf(",\"modified\":%lld,\"added\":%lld,\"deleted\":%lld,\"bytes\":%lld",
			       (long long)t->n_modified, (long long)t->n_added,
			       (long long)t->n_deleted, (long long)t->bytes_new);
		else
			fputs(",\"modified\":null,\"added\":null,\"deleted\":null,\"bytes\":null",
			      stdout);
		printf(",\"undo_of\":%lld,\"restore_of\":%lld}", (long long)t->undo_of,
		       (long long)t->restore_of);
	}
	fputs("]\n", stdout);
}

static void print_text(struct cjfs *c, struct store_txn **v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct store_txn *t = v[i];
		char when[32], mad[64], bytes[32];

		if (counted(t)) {
			snprintf(mad, sizeof(mad), "%lld/%lld/%lld", (long long)t->n_modified,
				 (long long)t->n_added, (long long)t->n_deleted);
			util_fmt_size((uint64_t)t->bytes_new, bytes);
		} else {
			snprintf(mad, sizeof(mad), "-");
			snprintf(bytes, sizeof(bytes), "-");
		}
		printf("%-5lld %s  %-11s %-11s %10s  %s%s%s\n", (long long)t->id,
		       util_fmt_time(t->created_ns, when), cli_txn_state(c, t), mad, bytes, t->pkg,
		       t->command ? "  " : "", t->command ? t->command : "");
	}
}

int cmd_log(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pkg", required_argument, NULL, 'P' },
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct store_txn **v = NULL;
	char *pkg = NULL;
	const char *pkg_arg = NULL;
	bool json = false, done = false;
	int64_t limit = 0;
	size_t n = 0;
	int opt, r;

	while ((opt = cli_getopt_any(argc, argv, "n:h", longopts)) != -1) {
		switch (opt) {
		case 'P':
			pkg_arg = optarg;
			break;
		case 'n':
			if (util_parse_i64(optarg, &limit) < 0 || limit <= 0)
				return cli_usage_error("log", usage,
						       "-n wants a positive count, not '%s'",
						       optarg);
			break;
		case 'j':
			json = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "log", help, &done);
			if (done)
				return r;
		}
	}
	if (argc != optind)
		return cli_usage_error("log", usage, "unexpected argument '%s'", argv[optind]);
	/* PKG as it was recorded: canonical; a directory gone since is matched as given. */
	if (pkg_arg && cjfs_realdir(pkg_arg, &pkg) < 0) {
		pkg = strdup(pkg_arg);
		if (!pkg) {
			log_errno(-ENOMEM, "cannot list the transactions");
			return EXIT_FAIL;
		}
	}
	r = store_txn_list(cjfs_store(cli_store(cli)), pkg, (size_t)limit, &v, &n);
	free(pkg);
	if (r < 0) {
		log_errno(r, "cannot list the transactions in the store");
		return EXIT_FAIL;
	}
	if (json)
		print_json(cli->c, v, n);
	else
		print_text(cli->c, v, n);
	for (size_t i = 0; i < n; i++)
		store_txn_free(v[i]);
	free(v);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
