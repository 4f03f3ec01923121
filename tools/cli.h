/* SPDX-License-Identifier: MIT */
/* Shared by the cjfs command-line tool: the command context, usage and output helpers. */
#ifndef CJFS_TOOLS_CLI_H
#define CJFS_TOOLS_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "cjfs.h"

/* Exit codes (STYLE.md): 0 ok, 1 failure, 2 usage error. */
enum {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
};

struct cli {
	const char *store_dir; /* --store, or NULL for the default */
	struct cjfs *c;	       /* opened for commands that need the store */
};

/* Open the store on first use; exits with a message on failure. */
struct cjfs *cli_store(struct cli *cli);

/* Print "cjfs <cmd>: <message>; usage: <usage>" on one line and return EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Options every command accepts: --store DIR and --help. */
#define CLI_COMMON_LONGOPTS                                                                        \
	{ "store", required_argument, NULL, 'S' },                                                 \
	{                                                                                          \
		"help", no_argument, NULL, 'h'                                                     \
	}

/*
 * Handle a common option; returns -1 if opt is not one, else the exit code to
 * return (with *done set) or 0 to continue.
 */
int cli_common_opt(struct cli *cli, int opt, const char *cmd, const char *help, bool *done);

/* getopt_long with "+" (stop at the first non-option) and optind reset. */
int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts);

/*
 * getopt_long that also takes options after the arguments ("cjfs show 5
 * --diff"); "--" ends the options. For commands that run no other command.
 */
int cli_getopt_any(int argc, char **argv, const char *shortopts, const struct option *longopts);

/* JSON string output with escaping. */
void json_str(FILE *out, const char *s);

/* Resolve a MNT|TXN argument; prints the error. */
int cli_resolve(struct cli *cli, const char *arg, int64_t *ret_txn, char **ret_mnt);

/*
 * A transaction id argument: a positive number. 0, or prints a usage error
 * and returns EXIT_USAGE.
 */
int cli_parse_txn(const char *cmd, const char *usage, const char *arg, int64_t *ret);

/* The state a user sees: "orphaned" for an open transaction whose daemon is gone. */
const char *cli_txn_state(struct cjfs *c, const struct store_txn *t);

/* JSON: a time as an RFC 3339 UTC string, or null for 0. */
void json_time(FILE *out, int64_t ns);
/* JSON: a string or null. */
void json_str_or_null(FILE *out, const char *s);

int cmd_mount(struct cli *cli, int argc, char **argv);
int cmd_status(struct cli *cli, int argc, char **argv);
int cmd_diff(struct cli *cli, int argc, char **argv);
int cmd_commit(struct cli *cli, int argc, char **argv);
int cmd_rollback(struct cli *cli, int argc, char **argv);
int cmd_run(struct cli *cli, int argc, char **argv);
int cmd_clean(struct cli *cli, int argc, char **argv);
int cmd_recover(struct cli *cli, int argc, char **argv);
int cmd_log(struct cli *cli, int argc, char **argv);
int cmd_show(struct cli *cli, int argc, char **argv);
int cmd_undo(struct cli *cli, int argc, char **argv);
int cmd_restore(struct cli *cli, int argc, char **argv);
int cmd_gc(struct cli *cli, int argc, char **argv);
int cmd_audit(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
int cmd_verify(struct cli *cli, int argc, char **argv);

#endif
