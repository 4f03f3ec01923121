// SPDX-License-Identifier: MIT
/* cjfs gc: drop history beyond the retention policy, then free the store. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char usage[] = "cjfs gc [--keep-last N] [--older-than DURATION] [--max-size SIZE]"
			    " [--grace DURATION] [--dry-run] [--json]";
static const char help[] =
	"usage: cjfs gc [--keep-last N] [--older-than DURATION] [--max-size SIZE]\n"
	"               [--grace DURATION] [--dry-run] [--json]\n"
	"\n"
	"Apply the retention policy: drop the history (index rows) of finished\n"
	"transactions (committed, rolled back, undone) beyond it, then delete the\n"
	"blobs no remaining transaction refers to. A dropped transaction can no\n"
	"longer be shown, undone or restored. Nothing an open, orphaned, sealed or\n"
	"committing transaction needs is ever deleted. Each limit given applies on\n"
	"its own: a transaction goes when any of them says so.\n"
	"\n"
	"gc is safe to interrupt, even with kill -9: rows are deleted first, in one\n"
	"SQLite transaction, and files only after; a blob file whose row is gone is\n"
	"an orphan, which every gc removes. Blobs stored or reused within the grace\n"
	"period are kept, because a running transaction may be about to refer to them.\n"
	"\n"
	"Options (each overrides the store's config file for this run):\n"
	"  --keep-last N          keep only the newest N finished transactions\n"
	"  --older-than DURATION  drop those that finished more than DURATION ago\n"
	"                         (30d, 12h, 90m, 2w, 1h30m; a bare number is seconds)\n"
	"  --max-size SIZE        then drop the oldest until the blobs take at most\n"
	"                         SIZE (500M, 10G; 1024-based; after dedup and\n"
	"                         compression)\n"
	"  --grace DURATION       keep blobs used more recently than this (default 1h)\n"
	"  --dry-run, -n          report what would go, change nothing\n"
	"  --json                 machine-readable report\n"
	"  --store DIR            the store to clean\n"
	"\n"
	"Defaults: the file 'config' in the store directory, lines 'key = value':\n"
	"  gc.keep-last = 100\n"
	"  gc.older-than = 90d\n"
	"  gc.max-size = 10G\n"
	"  gc.grace = 1h\n"
	"'none' (or leaving a key out) means no limit. Without options or config, gc\n"
	"drops no history and only frees blobs nothing refers to.\n"
	"\n"
	"Exit status: 0, 1 on failure (what was already deleted was not needed),\n"
	"2 for a usage error or a malformed config file.\n";

static void print_policy(const struct store_gc_policy *p)
{
	char buf[32];

	printf("policy: keep-last ");
	if (p->keep_last >= 0)
		printf("%lld", (long long)p->keep_last);
	else
		printf("none");
	printf(", older-than %s",
	       p->older_than_ns >= 0 ? util_fmt_duration(p->older_than_ns, buf) : "none");
	printf(", max-size %s",
	       p->max_size >= 0 ? util_fmt_size((uint64_t)p->max_size, buf) : "none");
	printf(", grace %s\n", util_fmt_duration(p->grace_ns, buf));
}

/* "3-7, 9" for the ids dropped for why. */
static void print_ids(const struct store_gc_report *rep, const char *why)
{
	bool any = false;

	for (size_t i = 0; i < rep->n_dropped; i++) {
		size_t j = i;

		if (strcmp(rep->dropped[i].why, why) != 0)
			continue;
		while (j + 1 < rep->n_dropped && strcmp(rep->dropped[j + 1].why, why) == 0 &&
		       rep->dropped[j + 1].id == rep->dropped[j].id + 1)
			j++;
		if (!any)
			printf("  %s: ", why);
		printf("%s%lld", any ? ", " : "", (long long)rep->dropped[i].id);
		if (j > i)
			printf("-%lld", (long long)rep->dropped[j].id);
		any = true;
		i = j;
	}
	if (any)
		fputc('\n', stdout);
}

static void print_text(const struct store_gc_policy *p, const struct store_gc_report *rep)
{
	const char *verb = p->dry_run ? "would drop" : "dropped";
	char a[32], b[32];

	print_policy(p);
	printf("%s the history of %zu transaction(s)%s\n", verb, rep->n_dropped,
	       rep->n_dropped ? ":" : "");
	print_ids(rep, "keep-last");
	print_ids(rep, "older-than");
	print_ids(rep, "max-size");
	printf("%s %zu blob(s), %s", p->dry_run ? "would delete" : "deleted", rep->blobs,
	       util_fmt_size(rep->bytes, a));
	printf("; %s %zu orphan blob file(s), %s\n", p->dry_run ? "found" : "removed", rep->orphans,
	       util_fmt_size(rep->orphan_bytes, b));
	printf("blobs in the index: %s", util_fmt_size(rep->size_before, a));
	printf(" -> %s\n", util_fmt_size(rep->size_after, b));
}

static void print_json(const struct store_gc_policy *p, const struct store_gc_report *rep)
{
	printf("{\"dry_run\":%s,\"policy\":{\"keep_last\":%lld,\"older_than_ns\":%lld,"
	       "\"max_size\":%lld,\"grace_ns\":%lld},\"dropped\":[",
	       p->dry_run ? "true" : "false", (long long)p->keep_last, (long long)p->older_than_ns,
	       (long long)p->max_size, (long long)p->grace_ns);
	for (size_t i = 0; i < rep->n_dropped; i++)
		printf("%s{\"id\":%lld,\"why\":\"%s\"}", i ? "," : "",
		       (long long)rep->dropped[i].id, rep->dropped[i].why);
	printf("],\"blobs\":%zu,\"bytes\":%llu,\"orphans\":%zu,\"orphan_bytes\":%llu,"
	       "\"size_before\":%llu,\"size_after\":%llu}\n",
	       rep->blobs, (unsigned long long)rep->bytes, rep->orphans,
	       (unsigned long long)rep->orphan_bytes, (unsigned long long)rep->size_before,
	       (unsigned long long)rep->size_after);
}

int cmd_gc(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "keep-last", required_argument, NULL, 'K' },
		{ "older-than", required_argument, NULL, 'O' },
		{ "max-size", required_argument, NULL, 'M' },
		{ "grace", required_argument, NULL, 'G' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct store_gc_policy p, cmdline;
	struct store_gc_report rep;
	bool json = false, done = false, set[4] = { false };
	char *where = NULL;
	struct store *s;
	int opt, r;

	store_gc_policy_init(&cmdline);
	while ((opt = cli_getopt_any(argc, argv, "nh", longopts)) != -1) {
		switch (opt) {
		case 'K':
			if (util_parse_i64(optarg, &cmdline.keep_last) < 0 || cmdline.keep_last < 0)
				return cli_usage_error("gc", usage,
						       "--keep-last wants a count, not '%s'",
						       optarg);
			set[0] = true;
			break;
		case 'O':
			if (util_parse_duration(optarg, &cmdline.older_than_ns) < 0)
				return cli_usage_error("gc", usage,
						       "--older-than wants a duration like 30d or 12h, not '%s'",
						       optarg);
			set[1] = true;
			break;
		case 'M':
			if (util_parse_size(optarg, &cmdline.max_size) < 0)
				return cli_usage_error("gc", usage,
						       "--max-size wants a size like 500M or 10G, not '%s'",
						       optarg);
			set[2] = true;
			break;
		case 'G':
			if (util_parse_duration(optarg, &cmdline.grace_ns) < 0)
				return cli_usage_error("gc", usage,
						       "--grace wants a duration like 1h or 0s, not '%s'",
						       optarg);
			set[3] = true;
			break;
		case 'n':
			cmdline.dry_run = true;
			break;
		case 'j':
			json = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "gc", help, &done);
			if (done)
				return r;
		}
	}
	if (argc != optind)
		return cli_usage_error("gc", usage, "unexpected argument '%s'", argv[optind]);
	s = cjfs_store(cli_store(cli));
	store_gc_policy_init(&p);
	r = store_gc_policy_load(s, &p, &where);
	if (r < 0) {
		if (where)
			fprintf(stderr, "cjfs gc: %s\n", where);
		else
			log_errno(r, "cannot read the config file of the store '%s'",
				  store_path(s));
		free(where);
		return r == -EINVAL ? EXIT_USAGE : EXIT_FAIL;
	}
	if (set[0])
		p.keep_last = cmdline.keep_last;
	if (set[1])
		p.older_than_ns = cmdline.older_than_ns;
	if (set[2])
		p.max_size = cmdline.max_size;
	if (set[3])
		p.grace_ns = cmdline.grace_ns;
	p.dry_run = cmdline.dry_run;
	r = store_gc(s, &p, &rep);
	if (r < 0) {
		log_errno(r,
			  "gc of the store '%s' did not finish (nothing needed was lost; run it again)",
			  store_path(s));
		return EXIT_FAIL;
	}
	if (json)
		print_json(&p, &rep);
	else
		print_text(&p, &rep);
	store_gc_report_release(&rep);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
