// SPDX-License-Identifier: MIT
/* cjfs status and cjfs diff. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static const char status_usage[] = "cjfs status [--json] [MNT|TXN]";
static const char status_help[] =
	"usage: cjfs status [--json] [MNT|TXN]\n"
	"\n"
	"One line per change of the transaction mounted at MNT (or with id TXN):\n"
	"  M path    modified (content, type, mode or owner)\n"
	"  A path    added\n"
	"  D path    deleted\n"
	"Directories end with '/'. Without an argument, list the open transactions,\n"
	"marking those whose daemon is gone as orphaned.\n"
	"\n"
	"  --json     machine-readable output\n"
	"  --store DIR\n";

static const char *txn_state(struct cjfs *c, const struct store_txn *t)
{
	if (t->state == STORE_TXN_OPEN && store_txn_daemon_alive(cjfs_store(c), t->id) != 1)
		return "orphaned";
	return store_txn_state_name(t->state);
}

static int list_open(struct cjfs *c, bool json)
{
	struct store_txn **v;
	size_t n, shown = 0;
	int r = store_txn_list(cjfs_store(c), NULL, 0, &v, &n);

	if (r < 0) {
		log_errno(r, "cannot list the transactions");
		return EXIT_FAIL;
	}
	if (json)
		fputs("[", stdout);
	for (size_t i = 0; i < n; i++) {
		const struct store_txn *t = v[i];
		const char *st = txn_state(c, t);

		if (t->state != STORE_TXN_OPEN && t->state != STORE_TXN_SEALED &&
		    t->state != STORE_TXN_COMMITTING)
			continue;
		if (json) {
			printf("%s{\"txn\":%lld,\"state\":\"%s\",\"pkg\":", shown ? "," : "",
			       (long long)t->id, st);
			json_str(stdout, t->pkg);
			fputs(",\"mountpoint\":", stdout);
			if (t->mountpoint && strcmp(st, "orphaned"))
				json_str(stdout, t->mountpoint);
			else
				fputs("null", stdout);
			fputs("}", stdout);
		} else {
			printf("%lld\t%s\t%s\t%s\n", (long long)t->id, st, t->pkg,
			       t->mountpoint && strcmp(st, "orphaned") ? t->mountpoint : "-");
		}
		shown++;
	}
	if (json)
		fputs("]\n", stdout);
	for (size_t i = 0; i < n; i++)
		store_txn_free(v[i]);
	free(v);
	return EXIT_OK;
}

int cmd_status(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cjfs_status_entry *v;
	struct store_txn *t;
	bool json = false, done = false;
	size_t n;
	int64_t txn;
	int opt, r;

	while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
		if (opt == 'j') {
			json = true;
			continue;
		}
		r = cli_common_opt(cli, opt, "status", status_help, &done);
		if (done)
			return r;
	}
	if (argc - optind > 1)
		return cli_usage_error("status", status_usage, "too many arguments");
	if (argc == optind)
		return list_open(cli_store(cli), json);
	if (cli_resolve(cli, argv[optind], &txn, NULL) < 0)
		return EXIT_FAIL;
	if (cjfs_status(cli->c, txn, &v, &n) < 0)
		return EXIT_FAIL;
	if (json) {
		if (store_txn_load(cjfs_store(cli->c), txn, &t) < 0) {
			cjfs_status_free(v, n);
			return EXIT_FAIL;
		}
		printf("{\"txn\":%lld,\"state\":\"%s\",\"pkg\":", (long long)txn,
		       txn_state(cli->c, t));
		json_str(stdout, t->pkg);
		fputs(",\"changes\":[", stdout);
		for (size_t i = 0; i < n; i++) {
			printf("%s{\"status\":\"%c\",\"path\":", i ? "," : "", v[i].status);
			json_str(stdout, v[i].path);
			printf(",\"type\":\"%s\"}", v[i].dir ? "dir" : "file");
		}
		fputs("]}\n", stdout);
		store_txn_free(t);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%c %s%s\n", v[i].status, v[i].path, v[i].dir ? "/" : "");
	}
	cjfs_status_free(v, n);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}

static const char diff_usage[] = "cjfs diff MNT|TXN";
static const char diff_help[] =
	"usage: cjfs diff MNT|TXN\n"
	"\n"
	"Show every change of the transaction as a unified diff (like 'git diff'):\n"
	"old content from the store, new content from the mount or the layer.\n";

int cmd_diff(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS, { NULL, 0, NULL, 0 } };
	bool done = false;
	int64_t txn;
	int opt, r;

	while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
		r = cli_common_opt(cli, opt, "diff", diff_help, &done);
		if (done)
			return r;
	}
	if (argc - optind != 1)
		return cli_usage_error("diff", diff_usage, "expected one MNT or TXN");
	if (cli_resolve(cli, argv[optind], &txn, NULL) < 0)
		return EXIT_FAIL;
	return cjfs_diff(cli->c, txn, stdout) < 0 ? EXIT_FAIL : EXIT_OK;
}
