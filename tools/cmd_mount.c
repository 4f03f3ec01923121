// SPDX-License-Identifier: MIT
/* cjfs mount: start a transaction and mount it. */
#include "cli.h"

#include <stdlib.h>

#include "log.h"

static const char usage[] = "cjfs mount [-f] [-o OPTS] [--allow-other] [--concurrent] PKG MNT"
			    " | cjfs mount --resume TXN MNT";
static const char help[] =
	"usage: cjfs mount [OPTIONS] PKG MNT\n"
	"       cjfs mount --resume TXN MNT\n"
	"\n"
	"Mount PKG at MNT (an empty directory) through a copy-on-write overlay. Every\n"
	"write lands in the transaction's upper layer; PKG is never written until\n"
	"'cjfs commit'. Returns once MNT shows PKG; the daemon runs in the background.\n"
	"\n"
	"  -f, --foreground   serve in the foreground until unmounted\n"
	"  -d, --debug        log every FUSE request (implies --foreground)\n"
	"  -o OPTS            extra FUSE mount options, comma separated\n"
	"      --allow-other  let other users use the mount (root, or user_allow_other)\n"
	"      --concurrent   allow a second open transaction on the same PKG\n"
	"      --resume TXN   remount an open (orphaned) transaction with its changes\n"
	"      --store DIR    the store to use\n";

int cmd_mount(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "allow-other", no_argument, NULL, 'A' },
		{ "concurrent", no_argument, NULL, 'C' },
		{ "resume", required_argument, NULL, 'R' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct cjfs_mount_opts o = { 0 };
	bool done = false;
	int64_t txn;
	int opt, r;

	while ((opt = cli_getopt(argc, argv, "fdo:h", longopts)) != -1) {
		switch (opt) {
		case 'f':
			o.foreground = true;
			break;
		case 'd':
			o.debug = o.foreground = true;
			/* libfuse's request lines are debug messages (fs_log()): print them. */
			if (log_max_level < LOG_LEVEL_DEBUG)
				log_max_level = LOG_LEVEL_DEBUG;
			break;
		case 'o':
			o.options = optarg;
			break;
		case 'A':
			o.allow_other = true;
			break;
		case 'C':
			o.concurrent = true;
			break;
		case 'R':
			if (util_parse_i64(optarg, &o.resume) < 0 || o.resume <= 0)
				return cli_usage_error("mount", usage,
						       "'%s' is not a transaction id", optarg);
			break;
		default:
			r = cli_common_opt(cli, opt, "mount", help, &done);
			if (done)
				return r;
		}
	}
	if (o.resume) {
		if (argc - optind != 1)
			return cli_usage_error("mount", usage, "--resume takes TXN and one MNT");
		r = cjfs_mount(cli_store(cli), NULL, argv[optind], &o, &txn);
	} else {
		if (argc - optind != 2)
			return cli_usage_error("mount", usage, "expected PKG and MNT");
		r = cjfs_mount(cli_store(cli), argv[optind], argv[optind + 1], &o, &txn);
	}
	if (r < 0)
		return EXIT_FAIL;
	log_info("transaction %lld mounted", (long long)txn);
	return EXIT_OK;
}
