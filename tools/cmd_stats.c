// SPDX-License-Identifier: MIT
/* cjfs stats: store size, dedup and compression ratios, per-transaction timings. */
#include "cli.h"

#include <stdlib.h>

#include "log.h"

static const char usage[] = "cjfs stats [-n N] [--json]";
static const char help[] =
	"usage: cjfs stats [-n N] [--json]\n"
	"\n"
	"How much history the store holds and what it costs:\n"
	"\n"
	"  history          the bytes the index refers to, counted as if stored apart:\n"
	"                   every original of every transaction, every new content\n"
	"                   that differs from its original, every kept overwritten file\n"
	"  unique           the bytes of the distinct contents (after dedup by SHA-256)\n"
	"  stored           the bytes of the blob files (after zstd, where it saves)\n"
	"  dedup ratio      history / unique;  compression ratio  unique / stored\n"
	"  on disk          what objects/, the index and the layers take (allocated)\n"
	"\n"
	"then the timings recorded while the newest N transactions ran: storing the\n"
	"originals (backup), sealing the change set (seal), the conflict check\n"
	"(check), writing and verifying the new files (stage), applying them (apply)\n"
	"and the whole commit; a restore into PKG is a transaction, so its duration\n"
	"is its commit. Restores into a directory are in the audit log.\n"
	"\n"
	"Options:\n"
	"  -n N        timings of the newest N transactions (default 10; 0 for none)\n"
	"  --json      one JSON object\n"
	"  --store DIR the store to read\n"
	"\n"
	"Exit status: 0, 1 if the store cannot be read.\n";

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 1.0;
}

static void print_ms(int64_t ns)
{
	char buf[32];

	printf(" %9s", ns ? util_fmt_duration(ns, buf) : "-");
}

static void print_text(struct cjfs *c, const struct store_stats *st, struct store_txn **v, size_t n)
{
	static const char *names[] = { "",	    "open",	   "sealed", "committing",
				       "committed", "rolled back", "undone" };
	char a[32], b[32], d[32];
	bool first = true;

	printf("store            %s\n", store_path(cjfs_store(c)));
	printf("transactions     %lld", (long long)st->n_txn);
	for (size_t i = 1; i < ARRAY_SIZE(names); i++) {
		if (!st->n_txn_by_state[i])
			continue;
		printf("%s%lld %s", first ? " (" : ", ", (long long)st->n_txn_by_state[i],
		       names[i]);
		first = false;
	}
	printf("%s\n", first ? "" : ")");
	printf("history          %s\n", util_fmt_size(st->logical, a));
	printf("unique           %s in %lld blob(s): dedup ratio %.2f\n",
	       util_fmt_size(st->unique, a), (long long)st->n_blobs,
	       ratio(st->logical, st->unique));
	printf("stored           %s, %lld blob(s) compressed: compression ratio %.2f\n",
	       util_fmt_size(st->stored, a), (long long)st->n_compressed,
	       ratio(st->unique, st->stored));
	printf("on disk          blobs %s, index %s, layers and temporaries %s\n",
	       util_fmt_size(st->disk_blobs, a), util_fmt_size(st->disk_index, b),
	       util_fmt_size(st->disk_other, d));
	printf("audit log        %lld event(s)\n", (long long)st->n_audit);
	if (!n)
		return;
	printf("\n%-6s %-11s %5s %10s %10s %9s %9s %9s %9s %9s %9s\n", "ID", "STATE", "FILES",
	       "NEW", "ORIGINALS", "BACKUP", "SEAL", "CHECK", "STAGE", "APPLY", "COMMIT");
	for (size_t i = 0; i < n; i++) {
		const struct store_txn *t = v[i];

		printf("%-6lld %-11s %5lld %10s %10s", (long long)t->id, cli_txn_state(c, t),
		       (long long)(t->n_modified + t->n_added + t->n_deleted),
		       util_fmt_size((uint64_t)t->bytes_new, a),
		       util_fmt_size((uint64_t)t->bytes_orig, b));
		print_ms(t->backup_ns);
		print_ms(t->seal_ns);
		print_ms(t->check_ns);
		print_ms(t->stage_ns);
		print_ms(t->apply_ns);
		print_ms(t->commit_ns);
		fputc('\n', stdout);
	}
}

static void print_json(struct cjfs *c, const struct store_stats *st, struct store_txn **v, size_t n)
{
	printf("{\"store\":");
	json_str(stdout, store_path(cjfs_store(c)));
	printf(",\"transactions\":{\"total\":%lld,\"open\":%lld,\"sealed\":%lld,"
	       "\"committing\":%lld,\"committed\":%lld,\"rolled_back\":%lld,\"undone\":%lld},"
	       "\"logical\":%llu,\"unique\":%llu,\"stored\":%llu,\"blobs\":%lld,"
	       "\"compressed_blobs\":%lld,\"dedup_ratio\":%.4f,\"compression_ratio\":%.4f,"
	       "\"disk\":{\"blobs\":%llu,\"index\":%llu,\"other\":%llu},\"audit_events\":%lld,"
	       "\"recent\":[",
	       (long long)st->n_txn, (long long)st->n_txn_by_state[STORE_TXN_OPEN],
	       (long long)st->n_txn_by_state[STORE_TXN_SEALED],
	       (long long)st->n_txn_by_state[STORE_TXN_COMMITTING],
	       (long long)st->n_txn_by_state[STORE_TXN_COMMITTED],
	       (long long)st->n_txn_by_state[STORE_TXN_ROLLED_BACK],
	       (long long)st->n_txn_by_state[STORE_TXN_UNDONE], (unsigned long long)st->logical,
	       (unsigned long long)st->unique, (unsigned long long)st->stored,
	       (long long)st->n_blobs, (long long)st->n_compressed, ratio(st->logical, st->unique),
	       ratio(st->unique, st->stored), (unsigned long long)st->disk_blobs,
	       (unsigned long long)st->disk_index, (unsigned long long)st->disk_other,
	       (long long)st->n_audit);
	for (size_t i = 0; i < n; i++) {
		const struct store_txn *t = v[i];

		printf("%s{\"id\":%lld,\"state\":\"%s\",\"modified\":%lld,\"added\":%lld,"
		       "\"deleted\":%lld,\"bytes\":%lld,\"originals\":%lld,\"originals_bytes\":%lld,"
		       "\"timings_ns\":{\"backup\":%lld,\"seal\":%lld,\"check\":%lld,\"stage\":%lld,"
		       "\"apply\":%lld,\"commit\":%lld}}",
		       i ? "," : "", (long long)t->id, cli_txn_state(c, t),
		       (long long)t->n_modified, (long long)t->n_added, (long long)t->n_deleted,
		       (long long)t->bytes_new, (long long)t->n_orig, (long long)t->bytes_orig,
		       (long long)t->backup_ns, (long long)t->seal_ns, (long long)t->check_ns,
		       (long long)t->stage_ns, (long long)t->apply_ns, (long long)t->commit_ns);
	}
	fputs("]}\n", stdout);
}

int cmd_stats(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct store_txn **v = NULL;
	struct store_stats st;
	bool json = false, done = false;
	int64_t recent = 10;
	size_t n = 0;
	struct store *s;
	int opt, r;

	while ((opt = cli_getopt_any(argc, argv, "n:h", longopts)) != -1) {
		switch (opt) {
		case 'n':
			if (util_parse_i64(optarg, &recent) < 0 || recent < 0)
				return cli_usage_error("stats", usage, "-n wants a count, not '%s'",
						       optarg);
			break;
		case 'j':
			json = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "stats", help, &done);
			if (done)
				return r;
		}
	}
	if (argc != optind)
		return cli_usage_error("stats", usage, "unexpected argument '%s'", argv[optind]);
	s = cjfs_store(cli_store(cli));
	r = store_stats_get(s, &st);
	if (r == 0 && recent > 0)
		r = store_txn_list(s, NULL, (size_t)recent, &v, &n);
	if (r < 0) {
		log_errno(r, "cannot read the statistics of the store '%s'", store_path(s));
		return EXIT_FAIL;
	}
	if (json)
		print_json(cli->c, &st, v, n);
	else
		print_text(cli->c, &st, v, n);
	for (size_t i = 0; i < n; i++)
		store_txn_free(v[i]);
	free(v);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
}
