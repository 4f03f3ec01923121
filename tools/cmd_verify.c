// SPDX-License-Identifier: MIT
/* cjfs verify: check the integrity of the store. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>

#include "log.h"

static const char verify_usage[] = "cjfs verify [--repair] [--json]";
static const char verify_help[] =
	"usage: cjfs verify [--repair] [--json]\n"
	"\n"
	"Check the store: re-hash every blob, check that every content the index\n"
	"refers to (the originals and new contents of every transaction) is present\n"
	"and intact, look for files and rows that do not match up, and run SQLite's\n"
	"integrity check. One line per finding on stdout:\n"
	"  KIND PATH HASH DETAIL\n"
	"where KIND is corrupt, missing, stray or index (defects), or orphan or\n"
	"dangling (warnings: an intact blob the blob table does not list, left by an\n"
	"interrupted write, that nothing / something refers to), then a summary line.\n"
	"Exits 1 if there is any defect, 0 if none.\n"
	"\n"
	"  --repair   first fix what is provably safe to fix: remove orphan blobs\n"
	"             nothing refers to, index dangling ones after re-hashing them.\n"
	"             Never removes anything the index refers to, nor files that are\n"
	"             not named like blobs; corrupt content cannot be repaired.\n"
	"  --json     machine-readable report\n";

static void print_json(const struct store_verify_report *rep)
{
	char hex[HASH_HEX_LEN + 1];

	printf("{\"ok\":%s,\"blobs\":%zu,\"rows\":%zu,\"references\":%zu,\"defects\":%zu,"
	       "\"warnings\":%zu,\"issues\":[",
	       rep->defects ? "false" : "true", rep->blobs, rep->rows, rep->refs, rep->defects,
	       rep->warnings);
	for (size_t i = 0; i < rep->n; i++) {
		const struct store_verify_issue *is = &rep->issues[i];

		printf("%s{\"kind\":\"%s\",\"defect\":%s,\"path\":", i ? "," : "",
		       store_verify_kind_name(is->kind),
		       store_verify_is_defect(is->kind) ? "true" : "false");
		if (is->path)
			json_str(stdout, is->path);
		else
			fputs("null", stdout);
		fputs(",\"hash\":", stdout);
		if (is->has_hash) {
			hash_to_hex(is->hash, hex);
			printf("\"%s\"", hex);
		} else {
			fputs("null", stdout);
		}
		fputs(",\"detail\":", stdout);
		if (is->detail)
			json_str(stdout, is->detail);
		else
			fputs("null", stdout);
		fputs("}", stdout);
	}
	fputs("]}\n", stdout);
}

static void print_text(const struct store_verify_report *rep)
{
	char hex[HASH_HEX_LEN + 1];

	for (size_t i = 0; i < rep->n; i++) {
		const struct store_verify_issue *is = &rep->issues[i];

		if (is->has_hash)
			hash_to_hex(is->hash, hex);
		printf("%s %s %s %s\n", store_verify_kind_name(is->kind), is->path ? is->path : "-",
		       is->has_hash ? hex : "-", is->detail ? is->detail : "");
	}
	printf("checked %zu blob(s), %zu index row(s), %zu reference(s): %zu defect(s), "
	       "%zu orphan(s)\n",
	       rep->blobs, rep->rows, rep->refs, rep->defects, rep->warnings);
}

int cmd_verify(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "repair", no_argument, NULL, 'R' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct store_verify_report rep;
	bool json = false, repair = false, done = false;
	struct cjfs *c;
	int opt, r;

	while ((opt = cli_getopt(argc, argv, "h", longopts)) != -1) {
		if (opt == 'j') {
			json = true;
			continue;
		}
		if (opt == 'R') {
			repair = true;
			continue;
		}
		r = cli_common_opt(cli, opt, "verify", verify_help, &done);
		if (done)
			return r;
	}
	if (argc != optind)
		return cli_usage_error("verify", verify_usage, "no arguments expected");
	c = cli_store(cli);
	if (repair) {
		struct store_gc_report fix = { 0 };

		r = store_gc_orphans(cjfs_store(c), false, &fix);
		if (r == 0)
			/* On stderr: stdout stays the report, which --json keeps parseable. */
			fprintf(stderr, "cjfs: repaired: %zu orphan blob(s) removed, %zu indexed\n",
				fix.orphans, fix.adopted);
		store_gc_report_release(&fix);
		if (r < 0) {
			log_errno(r, "cannot repair the store '%s'", store_path(cjfs_store(c)));
			return EXIT_FAIL;
		}
	}
	r = store_verify(cjfs_store(c), &rep);
	if (r < 0) {
		log_errno(r, "cannot verify the store '%s'", store_path(cjfs_store(c)));
		return EXIT_FAIL;
	}
	if (json)
		print_json(&rep);
	else
		print_text(&rep);
	if (fflush(stdout) != 0)
		r = -EIO;
	if (rep.defects) {
		const struct store_verify_issue *first = rep.issues;

		while (!store_verify_is_defect(first->kind))
			first++;
		log_error("the store '%s' failed verification with %zu defect(s), first %s '%s': what they name cannot be restored from the store",
			  store_path(cjfs_store(c)), rep.defects,
			  store_verify_kind_name(first->kind), first->path ? first->path : "-");
	}
	r = rep.defects || r < 0 ? EXIT_FAIL : EXIT_OK;
	store_verify_release(&rep);
	return r;
}
