// SPDX-License-Identifier: MIT
/* Usage errors, common options, JSON escaping and store opening for the CLI. */
#include "cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct cjfs *cli_store(struct cli *cli)
{
	if (!cli->c && cjfs_open(cli->store_dir, &cli->c) < 0)
		exit(EXIT_FAIL);
	return cli->c;
}

int cli_usage_error(const char *cmd, const char *usage, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cjfs %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; usage: %s (see 'cjfs %s --help')\n", usage, cmd);
	return EXIT_USAGE;
}

int cli_common_opt(struct cli *cli, int opt, const char *cmd, const char *help, bool *done)
{
	switch (opt) {
	case 'S':
		cli->store_dir = optarg;
		return 0;
	case 'h':
		fputs(help, stdout);
		*done = true;
		return EXIT_OK;
	case '?':
		fprintf(stderr, "cjfs %s: see 'cjfs %s --help' for the options\n", cmd, cmd);
		*done = true;
		return EXIT_USAGE;
	default:
		return -1;
	}
}

int cli_getopt(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	char buf[64];

	snprintf(buf, sizeof(buf), "+%s", shortopts);
	return getopt_long(argc, argv, buf, longopts, NULL);
}

int cli_getopt_any(int argc, char **argv, const char *shortopts, const struct option *longopts)
{
	/* GNU getopt permutes: arguments are moved after the options. */
	return getopt_long(argc, argv, shortopts, longopts, NULL);
}

void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		default:
			if (*p < 0x20)
				fprintf(out, "\\u%04x", *p);
			else
				fputc(*p, out);
		}
	}
	fputc('"', out);
}

int cli_resolve(struct cli *cli, const char *arg, int64_t *ret_txn, char **ret_mnt)
{
	return cjfs_resolve(cli_store(cli), arg, ret_txn, ret_mnt);
}

int cli_parse_txn(const char *cmd, const char *usage, const char *arg, int64_t *ret)
{
	int64_t v;

	if (util_parse_i64(arg, &v) < 0 || v <= 0)
		return cli_usage_error(cmd, usage, "'%s' is not a transaction id (see 'cjfs log')",
				       arg);
	*ret = v;
	return 0;
}

const char *cli_txn_state(struct cjfs *c, const struct store_txn *t)
{
	if (t->state == STORE_TXN_OPEN && store_txn_daemon_alive(cjfs_store(c), t->id) != 1)
		return "orphaned";
	return store_txn_state_name(t->state);
}

void json_time(FILE *out, int64_t ns)
{
	char buf[40];

	if (!ns) {
		fputs("null", out);
		return;
	}
	fprintf(out, "\"%s\"", util_fmt_time_utc(ns, buf));
}

void json_str_or_null(FILE *out, const char *s)
{
	if (s)
		json_str(out, s);
	else
		fputs("null", out);
}
