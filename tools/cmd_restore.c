// SPDX-License-Identifier: MIT
/* cjfs restore: write a transaction's originals back into PKG or into a directory. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char usage[] = "cjfs restore [--to DIR] [--json] TXN [PATH...]";
static const char help[] =
	"usage: cjfs restore [--to DIR] [--json] TXN [PATH...]\n"
	"\n"
	"Write the originals that transaction TXN (see 'cjfs log') kept in the store:\n"
	"every path it touched that existed before it, or only the PATHs named (a\n"
	"directory means everything below it), with their directories, modes and\n"
	"modification times. Paths are relative to PKG; '..' and absolute paths are\n"
	"refused, and no symlink is followed on the way to a target.\n"
	"\n"
	"Every original is re-hashed before anything is written, and every byte is\n"
	"checked against its SHA-256 again on its way into a temporary that is only\n"
	"then renamed into place. A corrupt or missing original fails the whole\n"
	"restore loudly, naming the path and its hash, and nothing is written.\n"
	"\n"
	"Into PKG (the default) the restore is a new transaction with the same\n"
	"all-or-nothing commit as 'cjfs commit': what it overwrites is kept in the\n"
	"store, and 'cjfs undo' can revert it. Paths TXN added are left alone: to\n"
	"remove them as well, use 'cjfs undo TXN'.\n"
	"\n"
	"Options:\n"
	"  --to DIR    write into DIR instead of PKG (created if missing); existing\n"
	"              files there are replaced, nothing else is touched\n"
	"  --json      machine-readable summary\n"
	"  --store DIR the store to use\n"
	"\n"
	"Exit status: 0 when restored (or nothing differed); 1 on failure (nothing\n"
	"written); 2 for a usage error, such as an invalid PATH.\n";

int cmd_restore(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "to", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cjfs_restore_opts o = { 0 };
	struct cjfs_result res = { 0 };
	bool json = false, done = false;
	char **paths = NULL;
	int64_t txn;
	int opt, r, code = EXIT_FAIL;

	while ((opt = cli_getopt_any(argc, argv, "h", longopts)) != -1) {
		switch (opt) {
		case 'T':
			o.to = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "restore", help, &done);
			if (done)
				return r;
		}
	}
	if (argc - optind < 1)
		return cli_usage_error("restore", usage, "expected TXN");
	r = cli_parse_txn("restore", usage, argv[optind], &txn);
	if (r)
		return r;
	if (o.to && !*o.to)
		return cli_usage_error("restore", usage, "--to wants a directory");
	o.n_paths = (size_t)(argc - optind - 1);
	if (o.n_paths) {
		paths = calloc(o.n_paths, sizeof(*paths));
		if (!paths) {
			log_errno(-ENOMEM, "cannot restore");
			return EXIT_FAIL;
		}
	}
	for (size_t i = 0; i < o.n_paths; i++) {
		char *p = argv[optind + 1 + i];
		size_t len = strlen(p);

		/* "docs/" names the directory docs. */
		while (len > 1 && p[len - 1] == '/')
			p[--len] = '\0';
		if (!util_path_is_safe(p)) {
			free(paths);
			return cli_usage_error("restore", usage,
					       "invalid path '%s': give a path relative to PKG, without '..' or a leading '/'",
					       p);
		}
		paths[i] = p;
	}
	o.paths = (const char *const *)paths;
	r = cjfs_restore(cli_store(cli), txn, &o, &res);
	if (r < 0)
		goto out;
	if (json) {
		printf("{\"from\":%lld,\"into\":", (long long)txn);
		json_str(stdout, o.to ? o.to : "PKG");
		printf(",\"txn\":%lld,\"modified\":%lld,\"added\":%lld,\"deleted\":%lld,"
		       "\"bytes\":%lld}\n",
		       o.to ? 0LL : (long long)res.txn, (long long)res.modified,
		       (long long)res.added, (long long)res.deleted, (long long)res.bytes);
	} else if (o.to) {
		printf("restored %lld original(s) of transaction %lld into '%s'\n",
		       (long long)res.added, (long long)txn, o.to);
	} else if (!res.txn) {
		printf("nothing to restore: PKG already holds these originals of transaction %lld\n",
		       (long long)txn);
	} else {
		printf("restored the originals of transaction %lld as transaction %lld: %lld modified, %lld added, %lld deleted\n",
		       (long long)txn, (long long)res.txn, (long long)res.modified,
		       (long long)res.added, (long long)res.deleted);
	}
	code = EXIT_OK;
out:
	free(paths);
	return code;
}
