// SPDX-License-Identifier: MIT
/* cjfs commit, cjfs rollback and cjfs recover. */
#include "cli.h"

#include <stdlib.h>

#include "log.h"

static const char commit_usage[] = "cjfs commit [--force] [--json] MNT|TXN";
static const char commit_help[] =
	"usage: cjfs commit [--force] [--json] MNT|TXN\n"
	"\n"
	"Unmount MNT (or take transaction TXN) and promote every change into PKG, all\n"
	"or nothing: after a crash at any point the next cjfs command leaves PKG\n"
	"exactly old or exactly new. If a file changed in PKG behind the transaction's\n"
	"back, nothing is applied, each conflict is named and the transaction stays\n"
	"open. Fails without doing anything if a process still uses the mount.\n"
	"\n"
	"  --force    overwrite conflicting changes (the overwritten files are kept\n"
	"             in the store)\n"
	"  --json     machine-readable summary\n";

static void print_result(const char *what, const struct cjfs_result *res, bool json)
{
	if (json)
		printf("{\"txn\":%lld,\"result\":\"%s\",\"modified\":%lld,\"added\":%lld,"
		       "\"deleted\":%lld}\n",
		       (long long)res->txn, what, (long long)res->modified, (long long)res->added,
		       (long long)res->deleted);
	else
		printf("%s transaction %lld: %lld modified, %lld added, %lld deleted\n", what,
		       (long long)res->txn, (long long)res->modified, (long long)res->added,
		       (long long)res->deleted);
}

int cmd_commit(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "force", no_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cjfs_result res;
	bool json = false, done = false;
	unsigned flags = 0;
	int64_t txn;
	int opt, r;

	while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
		if (opt == 'F') {
			flags |= CJFS_COMMIT_FORCE;
			continue;
		}
		if (opt == 'j') {
			json = true;
			continue;
		}
		r = cli_common_opt(cli, opt, "commit", commit_help, &done);
		if (done)
			return r;
	}
	if (argc - optind != 1)
		return cli_usage_error("commit", commit_usage, "expected one MNT or TXN");
	if (cli_resolve(cli, argv[optind], &txn, NULL) < 0)
		return EXIT_FAIL;
	if (cjfs_commit(cli->c, txn, flags, &res) < 0)
		return EXIT_FAIL;
	print_result("committed", &res, json);
	return EXIT_OK;
}

static const char rollback_usage[] = "cjfs rollback [--json] MNT|TXN";
static const char rollback_help[] =
	"usage: cjfs rollback [--json] MNT|TXN\n"
	"\n"
	"Unmount MNT (or take transaction TXN) and discard every change. PKG is never\n"
	"touched: it stays byte for byte as it was.\n";

int cmd_rollback(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cjfs_result res;
	bool json = false, done = false;
	int64_t txn;
	int opt, r;

	while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
		if (opt == 'j') {
			json = true;
			continue;
		}
		r = cli_common_opt(cli, opt, "rollback", rollback_help, &done);
		if (done)
			return r;
	}
	if (argc - optind != 1)
		return cli_usage_error("rollback", rollback_usage, "expected one MNT or TXN");
	if (cli_resolve(cli, argv[optind], &txn, NULL) < 0)
		return EXIT_FAIL;
	if (cjfs_rollback(cli->c, txn, &res) < 0)
		return EXIT_FAIL;
	print_result("rolled back", &res, json);
	return EXIT_OK;
}

static const char recover_help[] =
	"usage: cjfs recover\n"
	"\n"
	"Finish whatever a crash interrupted: commits that passed their commit point\n"
	"are completed, commits that had not are undone (their transactions stay\n"
	"open), and leftovers of dead processes are removed. Every cjfs command does\n"
	"this on start; this command reports it.\n";

int cmd_recover(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS, { NULL, 0, NULL, 0 } };
	struct store_recover_report first, rep;
	int opt, r, level = log_max_level;
	bool done = false;

	while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
		r = cli_common_opt(cli, opt, "recover", recover_help, &done);
		if (done)
			return r;
	}
	if (argc != optind)
		return cli_usage_error("recover", "cjfs recover", "no arguments expected");
	/*
	 * Opening the store already recovered (and warned about a commit whose
	 * PKG has moved); run once more, without repeating those warnings, for
	 * what was busy then. This run retries what the first one failed on.
	 */
	cjfs_recovery(cli_store(cli), &first, &r);
	if (log_max_level == LOG_LEVEL_WARN)
		log_max_level = LOG_LEVEL_ERROR;
	r = store_recover(cjfs_store(cli->c), &rep);
	log_max_level = level;
	printf("%zu commit(s) finished, %zu reopened, %zu leftover(s) removed, %zu failed\n",
	       first.rolled_forward + rep.rolled_forward, first.reopened + rep.reopened,
	       first.cleaned + rep.cleaned, rep.failed);
	if (r < 0 && (rep.failed > rep.pkg_moved || rep.pkg_moved > first.pkg_moved))
		log_errno(r, "recovery is not complete");
	return r < 0 ? EXIT_FAIL : EXIT_OK;
}
