// SPDX-License-Identifier: MIT
/* main(): global options and the command table of the cjfs tool. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"

struct cmd {
	const char *name;
	int (*fn)(struct cli *cli, int argc, char **argv);
	const char *summary;
};

static const struct cmd commands[] = {
	{ "mount", cmd_mount, "mount PKG at MNT through a copy-on-write transaction" },
	{ "status", cmd_status,
	  "list what a transaction changed (M/A/D), or the open transactions" },
	{ "diff", cmd_diff, "show a transaction's changes as a unified diff" },
	{ "commit", cmd_commit, "unmount and promote every change into PKG, all or nothing" },
	{ "rollback", cmd_rollback, "unmount and discard every change; PKG is untouched" },
	{ "run", cmd_run, "run a command on PKG: commit if it succeeds, roll back if not" },
	{ "clean", cmd_clean, "run the built-in whitespace cleaner on PKG in a transaction" },
	{ "recover", cmd_recover, "finish or undo whatever a crash interrupted" },
	{ "log", cmd_log, "list transactions, newest first" },
	{ "show", cmd_show, "show a transaction's full record, and with --diff what it changed" },
	{ "undo", cmd_undo, "revert a committed transaction, as a new transaction" },
	{ "restore", cmd_restore, "write a transaction's originals back into PKG or a directory" },
	{ "gc", cmd_gc, "drop history beyond the retention policy and free the store" },
	{ "audit", cmd_audit, "list the audit log" },
	{ "stats", cmd_stats, "store size, dedup and compression ratios, per-transaction timings" },
	{ "verify", cmd_verify, "check every blob and index reference of the store" },
};

static const char main_help[] =
	"usage: cjfs [--store DIR] COMMAND [ARGS]\n"
	"\n"
	"Transactional copy-on-write overlay for code cleaners: every change a tool\n"
	"makes through the mount is applied to PKG all at once, or not at all.\n"
	"\n"
	"Commands:\n";

static void print_help(FILE *out)
{
	fputs(main_help, out);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("\nGlobal options:\n"
	      "  --store DIR  the store (default $CJFS_HOME, else ${XDG_STATE_HOME:-~/.local/state}/cjfs)\n"
	      "  -v           verbose: report what is being done\n"
	      "  --version    print the version\n"
	      "\nRun 'cjfs COMMAND --help' for a command's options, 'man cjfs' for the manual.\n",
	      out);
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	int i, code;

	log_set_prefix("cjfs");
	log_init_from_env();
	if (util_fault_from_env() < 0) {
		fprintf(stderr,
			"cjfs: CJFS_FAULT must look like 'N:ENOSPC', 'N+:EIO', 'N:crash' or 'N:stop'\n");
		return EXIT_USAGE;
	}
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			print_help(stdout);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "--version")) {
			printf("cjfs %s\n", CJFS_VERSION);
			return EXIT_OK;
		} else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			if (log_max_level < LOG_LEVEL_INFO)
				log_max_level = LOG_LEVEL_INFO;
		} else if (!strcmp(argv[i], "--store") && i + 1 < argc) {
			cli.store_dir = argv[++i];
		} else if (!strncmp(argv[i], "--store=", 8)) {
			cli.store_dir = argv[i] + 8;
		} else {
			fprintf(stderr, "cjfs: unknown option '%s'; see 'cjfs --help'\n", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (i == argc) {
		print_help(stderr);
		return EXIT_USAGE;
	}
	for (size_t k = 0; k < ARRAY_SIZE(commands); k++) {
		if (strcmp(argv[i], commands[k].name) == 0) {
			code = commands[k].fn(&cli, argc - i, argv + i);
			cjfs_close(cli.c);
			return code;
		}
	}
	fprintf(stderr, "cjfs: '%s' is not a cjfs command; see 'cjfs --help'\n", argv[i]);
	return EXIT_USAGE;
}
