// SPDX-License-Identifier: MIT
/* cjfs show: a transaction's full record, and with --diff what it changed. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"

static const char usage[] = "cjfs show [--diff] [--json] TXN";
static const char help[] =
	"usage: cjfs show [--diff] [--json] TXN\n"
	"\n"
	"Print everything the store knows about transaction TXN (see 'cjfs log'):\n"
	"its state, PKG, the command it ran, what it undid or restored, when it\n"
	"began and finished, the counts and bytes, the timings recorded while it\n"
	"ran (storing the originals, sealing, the conflict check, staging, applying,\n"
	"the whole commit), and for every path it changed its status (M, A, D)\n"
	"with the original and the new state: mode, SHA-256 of the content and size.\n"
	"Files that a forced commit overwrote and kept are listed, and so are the\n"
	"transaction's events from the audit log.\n"
	"\n"
	"An open transaction is compared with its mount (or its layer); a finished\n"
	"one is read from the store alone, with no mount needed.\n"
	"\n"
	"Options:\n"
	"  --diff      also print the unified diff of what it changed, from the store\n"
	"              (old and new contents are verified against their SHA-256)\n"
	"  --json      one JSON object (with --diff, the diff is its \"diff\" string)\n"
	"  --store DIR the store to read\n"
	"\n"
	"Exit status: 0, 1 if TXN does not exist or the store cannot be read, 2 for\n"
	"a usage error.\n";

static void mode_str(uint32_t mode, char buf[16])
{
	if (!mode)
		snprintf(buf, 16, "-");
	else
		snprintf(buf, 16, "%06o", (unsigned)mode);
}

static void print_side_text(const char *label, const struct store_entry *e)
{
	char mode[16], hex[HASH_HEX_LEN + 1], size[32];

	mode_str(e->mode, mode);
	if (!e->mode) {
		printf("    %-9s (none)\n", label);
		return;
	}
	if (e->has_hash) {
		hash_to_hex(e->hash, hex);
		printf("    %-9s %s %s %s\n", label, mode, hex, util_fmt_size(e->size, size));
	} else {
		printf("    %-9s %s %s\n", label, mode, S_ISDIR(e->mode) ? "directory" : "");
	}
}

static void print_side_json(const struct store_entry *e)
{
	char hex[HASH_HEX_LEN + 1];

	if (!e->mode) {
		fputs("null", stdout);
		return;
	}
	printf("{\"mode\":\"%06o\",\"type\":\"%s\"", (unsigned)e->mode,
	       S_ISDIR(e->mode)	  ? "dir"
	       : S_ISLNK(e->mode) ? "symlink"
	       : S_ISREG(e->mode) ? "file"
				  : "special");
	if (e->has_hash) {
		hash_to_hex(e->hash, hex);
		printf(",\"sha256\":\"%s\",\"size\":%llu", hex, (unsigned long long)e->size);
	}
	fputc('}', stdout);
}

static void print_ns(const char *label, int64_t ns, bool *first)
{
	char buf[32];

	if (!ns)
		return;
	printf("%s%s %s", *first ? "" : ", ", label, util_fmt_duration(ns, buf));
	*first = false;
}

struct show {
	struct cjfs *c;
	const struct store_txn *t;
	int64_t undone_by;
	struct cjfs_status_entry *v;
	size_t n;
	size_t touched;
	struct store_kept *kept;
	size_t n_kept;
	struct store_audit_event *ev;
	size_t n_ev;
};

static void show_text(const struct show *sh)
{
	const struct store_txn *t = sh->t;
	char when[32], size[32], took[32];
	bool first = true;

	printf("transaction %lld: %s\n", (long long)t->id, cli_txn_state(sh->c, t));
	printf("pkg        %s\n", t->pkg);
	if (t->command)
		printf("command    %s\n", t->command);
	if (t->undo_of)
		printf("undo of    transaction %lld\n", (long long)t->undo_of);
	if (t->restore_of)
		printf("restore of transaction %lld (its originals)\n", (long long)t->restore_of);
	if (sh->undone_by)
		printf("undone by  transaction %lld\n", (long long)sh->undone_by);
	if (t->mountpoint && t->state == STORE_TXN_OPEN)
		printf("mounted at %s (daemon pid %lld)\n", t->mountpoint, (long long)t->pid);
	printf("began      %s\n", util_fmt_time(t->created_ns, when));
	if (t->finished_ns)
		printf("finished   %s (%s after it began)\n", util_fmt_time(t->finished_ns, when),
		       util_fmt_duration(t->finished_ns - t->created_ns, took));
	if (t->state != STORE_TXN_OPEN)
		printf("changes    %lld modified, %lld added, %lld deleted; %s of new content\n",
		       (long long)t->n_modified, (long long)t->n_added, (long long)t->n_deleted,
		       util_fmt_size((uint64_t)t->bytes_new, size));
	printf("originals  %lld kept in the store, %s\n", (long long)t->n_orig,
	       util_fmt_size((uint64_t)t->bytes_orig, size));
	if (t->backup_ns || t->seal_ns || t->commit_ns) {
		printf("timings    ");
		print_ns("backup", t->backup_ns, &first);
		print_ns("seal", t->seal_ns, &first);
		print_ns("check", t->check_ns, &first);
		print_ns("stage", t->stage_ns, &first);
		print_ns("apply", t->apply_ns, &first);
		print_ns("commit", t->commit_ns, &first);
		fputc('\n', stdout);
	}
	if (sh->n) {
		fputc('\n', stdout);
		for (size_t i = 0; i < sh->n; i++) {
			const struct cjfs_status_entry *e = &sh->v[i];

			printf("%c %s%s\n", e->status, e->path, e->dir ? "/" : "");
			print_side_text("original", &e->orig);
			print_side_text("new", &e->now);
		}
	} else if (sh->touched && t->state == STORE_TXN_ROLLED_BACK) {
		printf("\n%zu path(s) touched; the changes were discarded before they were recorded\n",
		       sh->touched);
	}
	if (sh->n_kept) {
		fputc('\n', stdout);
		for (size_t i = 0; i < sh->n_kept; i++) {
			char hex[HASH_HEX_LEN + 1];

			hash_to_hex(sh->kept[i].hash, hex);
			printf("kept %s %s (%s)\n", sh->kept[i].path, hex, sh->kept[i].why);
		}
	}
	if (sh->n_ev) {
		fputc('\n', stdout);
		for (size_t i = 0; i < sh->n_ev; i++)
			printf("%s  %-15s %s\n", util_fmt_time(sh->ev[i].time_ns, when),
			       sh->ev[i].event, sh->ev[i].detail ? sh->ev[i].detail : "");
	}
}

static void show_json(const struct show *sh, const char *diff)
{
	const struct store_txn *t = sh->t;

	printf("{\"id\":%lld,\"state\":\"%s\",\"pkg\":", (long long)t->id, cli_txn_state(sh->c, t));
	json_str(stdout, t->pkg);
	fputs(",\"command\":", stdout);
	json_str_or_null(stdout, t->command);
	printf(",\"undo_of\":%lld,\"restore_of\":%lld,\"undone_by\":%lld,\"mountpoint\":",
	       (long long)t->undo_of, (long long)t->restore_of, (long long)sh->undone_by);
	json_str_or_null(stdout, t->state == STORE_TXN_OPEN ? t->mountpoint : NULL);
	fputs(",\"time\":", stdout);
	json_time(stdout, t->created_ns);
	fputs(",\"finished\":", stdout);
	json_time(stdout, t->finished_ns);
	printf(",\"modified\":%lld,\"added\":%lld,\"deleted\":%lld,\"bytes\":%lld,"
	       "\"originals\":%lld,\"originals_bytes\":%lld,"
	       "\"timings_ns\":{\"backup\":%lld,\"seal\":%lld,\"check\":%lld,\"stage\":%lld,"
	       "\"apply\":%lld,\"commit\":%lld},\"changes\":[",
	       (long long)t->n_modified, (long long)t->n_added, (long long)t->n_deleted,
	       (long long)t->bytes_new, (long long)t->n_orig, (long long)t->bytes_orig,
	       (long long)t->backup_ns, (long long)t->seal_ns, (long long)t->check_ns,
	       (long long)t->stage_ns, (long long)t->apply_ns, (long long)t->commit_ns);
	for (size_t i = 0; i < sh->n; i++) {
		printf("%s{\"status\":\"%c\",\"path\":", i ? "," : "", sh->v[i].status);
		json_str(stdout, sh->v[i].path);
		fputs(",\"original\":", stdout);
		print_side_json(&sh->v[i].orig);
		fputs(",\"new\":", stdout);
		print_side_json(&sh->v[i].now);
		fputc('}', stdout);
	}
	fputs("],\"kept\":[", stdout);
	for (size_t i = 0; i < sh->n_kept; i++) {
		char hex[HASH_HEX_LEN + 1];

		hash_to_hex(sh->kept[i].hash, hex);
		printf("%s{\"path\":", i ? "," : "");
		json_str(stdout, sh->kept[i].path);
		printf(",\"sha256\":\"%s\",\"why\":", hex);
		json_str(stdout, sh->kept[i].why);
		fputc('}', stdout);
	}
	fputs("],\"events\":[", stdout);
	for (size_t i = 0; i < sh->n_ev; i++) {
		printf("%s{\"time\":", i ? "," : "");
		json_time(stdout, sh->ev[i].time_ns);
		printf(",\"uid\":%lld,\"pid\":%lld,\"event\":", (long long)sh->ev[i].uid,
		       (long long)sh->ev[i].pid);
		json_str(stdout, sh->ev[i].event);
		fputs(",\"detail\":", stdout);
		json_str_or_null(stdout, sh->ev[i].detail);
		fputc('}', stdout);
	}
	fputc(']', stdout);
	if (diff) {
		fputs(",\"diff\":", stdout);
		json_str(stdout, diff);
	}
	fputs("}\n", stdout);
}

int cmd_show(struct cli *cli, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "diff", no_argument, NULL, 'D' },
		{ "json", no_argument, NULL, 'j' },
		CLI_COMMON_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	struct show sh = { 0 };
	struct store_change *rows = NULL;
	struct store_txn *t = NULL;
	bool json = false, diff = false, done = false;
	char *dbuf = NULL;
	size_t nrows = 0;
	struct store *s;
	int64_t txn;
	int opt, r, code = EXIT_FAIL;

	while ((opt = cli_getopt_any(argc, argv, "h", longopts)) != -1) {
		switch (opt) {
		case 'D':
			diff = true;
			break;
		case 'j':
			json = true;
			break;
		default:
			r = cli_common_opt(cli, opt, "show", help, &done);
			if (done)
				return r;
		}
	}
	if (argc - optind != 1)
		return cli_usage_error("show", usage, "expected one TXN");
	r = cli_parse_txn("show", usage, argv[optind], &txn);
	if (r)
		return r;
	s = cjfs_store(cli_store(cli));
	r = store_txn_load(s, txn, &t);
	if (r < 0) {
		if (r == -ENOENT)
			log_error("there is no transaction %lld in the store '%s' (see 'cjfs log')",
				  (long long)txn, store_path(s));
		else
			log_errno(r, "cannot read transaction %lld", (long long)txn);
		return EXIT_FAIL;
	}
	sh.c = cli->c;
	sh.t = t;
	if (cjfs_status(cli->c, txn, &sh.v, &sh.n) < 0)
		goto out;
	r = store_change_list(s, txn, false, &rows, &nrows);
	if (r == 0)
		r = store_txn_undone_by(s, txn, &sh.undone_by);
	if (r == 0)
		r = store_kept_list(s, txn, &sh.kept, &sh.n_kept);
	if (r == 0)
		r = store_audit_list(s, 0, txn, &sh.ev, &sh.n_ev);
	if (r < 0) {
		log_errno(r, "cannot read transaction %lld", (long long)txn);
		goto out;
	}
	sh.touched = nrows;
	if (json) {
		if (diff) {
			/* A real file: the hunks come from diff(1) writing to its fd. */
			FILE *tmp = tmpfile();
			struct strbuf sb = STRBUF_INIT;

			if (!tmp) {
				log_errno(-errno, "cannot compute the diff: no temporary file");
				goto out;
			}
			r = cjfs_diff(cli->c, txn, tmp);
			if (r == 0 && fseek(tmp, 0, SEEK_SET) != 0)
				r = -errno;
			if (r == 0)
				r = strbuf_read_fd(&sb, fileno(tmp), 0);
			fclose(tmp);
			if (r < 0) {
				strbuf_release(&sb);
				log_errno(r, "cannot compute the diff");
				goto out;
			}
			dbuf = strbuf_detach(&sb);
		}
		show_json(&sh, dbuf);
	} else {
		show_text(&sh);
		if (diff) {
			fputc('\n', stdout);
			if (cjfs_diff(cli->c, txn, stdout) < 0)
				goto out;
		}
	}
	code = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAIL;
out:
	free(dbuf);
	store_audit_free(sh.ev, sh.n_ev);
	store_kept_free(sh.kept, sh.n_kept);
	store_changes_free(rows, nrows);
	cjfs_status_free(sh.v, sh.n);
	store_txn_free(t);
	return code;
}
