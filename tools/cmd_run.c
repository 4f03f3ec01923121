// SPDX-License-Identifier: MIT
/* cjfs run and cjfs clean. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static const char run_usage[] = "cjfs run [--concurrent] [--keep] [-q] PKG -- CMD [ARG...]";
static const char run_help[] =
	"usage: cjfs run [OPTIONS] PKG -- CMD [ARG...]\n"
	"\n"
	"Mount PKG on a private temporary mount point, run CMD with its working\n"
	"directory at the mount root, then commit if CMD exits 0 and roll back if it\n"
	"fails or is killed. Prints a summary and exits with CMD's status (128+N if\n"
	"killed by signal N), 125 if cjfs itself failed, 126/127 if CMD could not be\n"
	"run / was not found.\n"
	"\n"
	"  --concurrent   allow another open transaction on PKG\n"
	"  --keep         on failure leave the transaction open and mounted\n"
	"  -q, --quiet    no summary line\n";

int cmd_run(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "concurrent", no_argument, NULL, 'C' },
		{ "keep", no_argument, NULL, 'K' },
		{ "quiet", no_argument, NULL, 'q' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cjfs_run_opts o = { 0 };
	bool done = false;
	const char *pkg;
	int opt, r;

	while ((opt = cli_getopt(argc, argv, "qh", longopts)) != -1) {
		switch (opt) {
		case 'C':
			o.concurrent = true;
			break;
		case 'K':
			o.keep_on_failure = true;
			break;
		case 'q':
			o.quiet = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "run", run_help, &done);
			if (done)
				return r;
		}
	}
	if (optind >= argc)
		return cli_usage_error("run", run_usage, "missing PKG");
	pkg = argv[optind++];
	if (optind < argc && strcmp(argv[optind], "--") == 0)
		optind++;
	if (optind >= argc)
		return cli_usage_error("run", run_usage, "missing the command to run");
	/* Usage errors are ours (2); from here the command's status is the exit code. */
	if (!cli->c && cjfs_open(cli->store_dir, &cli->c) < 0)
		return 125;
	return cjfs_run(cli->c, pkg, argv + optind, &o, NULL);
}

static const char clean_usage[] = "cjfs clean [--dry-run] [--in-place] PKG";
static const char clean_help[] =
	"usage: cjfs clean [--dry-run] [--in-place] PKG\n"
	"\n"
	"The built-in cleaner: in every text file convert CRLF to LF, strip trailing\n"
	"blanks (not in Markdown or patches), drop blank lines at the end and end\n"
	"with one newline. Binary files, symlinks and .git are left alone. Runs in a\n"
	"transaction (like 'cjfs run PKG -- ...'): all files are cleaned or none.\n"
	"\n"
	"  -n, --dry-run   list what would change, change nothing\n"
	"      --in-place  clean PKG directly, without a transaction\n";

int cmd_clean(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "in-place", no_argument, NULL, 'I' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cjfs_clean_report rep;
	struct cjfs_run_opts o = { 0 };
	bool dry = false, in_place = false, done = false;
	char self[PATH_MAX];
	ssize_t n;
	int opt, r, fd;

	while ((opt = cli_getopt(argc, argv, "nh", longopts)) != -1) {
		switch (opt) {
		case 'n':
			dry = true;
			break;
		case 'I':
			in_place = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "clean", clean_help, &done);
			if (done)
				return r;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("clean", clean_usage, "expected one PKG");
	if (dry || in_place) {
		fd = open(argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			log_errno(-errno, "cannot open '%s'", argv[optind]);
			return EXIT_FAIL;
		}
		r = cjfs_clean_tree(fd, dry, stdout, &rep);
		close(fd);
		printf("%zu file(s) %s, %zu scanned, %zu skipped\n", rep.changed,
		       dry ? "would be cleaned" : "cleaned", rep.scanned, rep.skipped);
		return r < 0 ? EXIT_FAIL : EXIT_OK;
	}
	/* In a transaction: this same binary cleans the mount in place. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0) {
		log_errno(-errno, "cannot find the cjfs executable");
		return EXIT_FAIL;
	}
	self[n] = '\0';
	{
		char a1[] = "clean", a2[] = "--in-place", a3[] = ".";
		char *args[] = { self, a1, a2, a3, NULL };

		if (!cli->c && cjfs_open(cli->store_dir, &cli->c) < 0)
			return EXIT_FAIL;
		return cjfs_run(cli->c, argv[optind], args, &o, NULL);
	}
}
