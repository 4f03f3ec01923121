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
