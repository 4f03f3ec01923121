// SPDX-License-Identifier: MIT
/*
 * Retention (store_gc): each policy keeps what it must and frees what it
 * may; open, sealed and committing transactions are never touched; a blob
 * shared with a transaction that stays is kept; orphan files are removed;
 * and kill -9 at any moment of a gc loses nothing still needed.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "store.h"

static char root[PATH_MAX];
static char dir[PATH_MAX]; /* the store */
static struct store *s;

static void make_root(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(root, sizeof(root), "%s/cjfs-unit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(root));
}

static void open_store(void)
{
	snprintf(dir, sizeof(dir), "%s/store", root);
	cr_assert_eq(store_open(dir, STORE_OPEN_CREATE, &s), 0);
}

static void setup(void)
{
	make_root();
	open_store();
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	store_close(s);
	s = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	(void)!system(cmd);
}

TestSuite(store_gc, .init = setup, .fini = teardown, .timeout = 120);

/* A content unique to (txn number, side), big enough to be compressed. */
static void content(int k, char side, struct strbuf *sb)
{
	strbuf_reset(sb);
	for (int i = 0; i < 300; i++)
		cr_assert_eq(strbuf_addf(sb, "%c%d line %d of a file that compresses\n", side, k,
					 i),
			     0);
}

static void entry_for(const uint8_t hash[HASH_LEN], size_t size, struct store_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->mode = S_IFREG | 0644;
	e->size = size;
	e->has_hash = true;
	memcpy(e->hash, hash, HASH_LEN);
}

/*
 * A transaction with one modified file "f<k>" whose original is orig_k's
 * content and new content new_k's, left in state `state`. Returns its id.
 */
static int64_t make_txn(int orig_k, int new_k, enum store_txn_state state)
{
	struct strbuf sb = STRBUF_INIT;
	struct store_change c = { 0 };
	struct store_txn_synth spec = { 0 };
	uint8_t ho[HASH_LEN], hn[HASH_LEN];
	struct stat st = { 0 };
	char path[32];
	int64_t id = 0;
	int lock = -1;

	content(orig_k, 'o', &sb);
	cr_assert_eq(store_put_buf(s, sb.buf, sb.len, ho), 0);
	entry_for(ho, sb.len, &c.orig);
	content(new_k, 'n', &sb);
	cr_assert_eq(store_put_buf(s, sb.buf, sb.len, hn), 0);
	entry_for(hn, sb.len, &c.new);
	snprintf(path, sizeof(path), "f%d", orig_k);
	c.path = path;
	c.status = 'M';
	/* A distinct fake PKG per transaction, so none is "busy". */
	st.st_dev = 1;
	st.st_ino = (ino_t)(1000 + orig_k);
	spec.pkg = "/nonexistent/pkg";
	spec.pkg_st = &st;
	spec.restore_of = 0;
	cr_assert_eq(store_txn_begin_sealed(s, &spec, &c, 1, &id, NULL, &lock), 0);
	close(lock);
	if (state == STORE_TXN_OPEN)
		cr_assert_eq(store_txn_transition(s, id, STORE_TXN_SEALED, STORE_TXN_OPEN, NULL,
						  NULL),
			     0);
	if (state >= STORE_TXN_COMMITTING && state != STORE_TXN_ROLLED_BACK)
		cr_assert_eq(store_txn_transition(s, id, STORE_TXN_SEALED, STORE_TXN_COMMITTING,
						  NULL, NULL),
			     0);
	if (state == STORE_TXN_COMMITTED || state == STORE_TXN_UNDONE)
		cr_assert_eq(store_txn_transition(s, id, STORE_TXN_COMMITTING, STORE_TXN_COMMITTED,
						  "TXN_COMMIT", NULL),
			     0);
	if (state == STORE_TXN_UNDONE)
		cr_assert_eq(store_txn_transition(s, id, STORE_TXN_COMMITTED, STORE_TXN_UNDONE,
						  NULL, NULL),
			     0);
	if (state == STORE_TXN_ROLLED_BACK)
		cr_assert_eq(store_txn_transition(s, id, STORE_TXN_SEALED, STORE_TXN_ROLLED_BACK,
						  "TXN_ROLLBACK", NULL),
			     0);
	/* As commit and rollback do: a finished transaction has no layer left. */
	if (state == STORE_TXN_COMMITTED || state == STORE_TXN_UNDONE ||
	    state == STORE_TXN_ROLLED_BACK)
		cr_assert_eq(store_txn_remove_dir(s, id), 0);
	strbuf_release(&sb);
	return id;
}

static void hash_of(int k, char side, uint8_t hash[HASH_LEN])
{
	struct strbuf sb = STRBUF_INIT;

	content(k, side, &sb);
	cr_assert_eq(hash_buf(sb.buf, sb.len, hash), 0);
	strbuf_release(&sb);
}

static bool has_blob(int k, char side)
{
	uint8_t h[HASH_LEN];

	hash_of(k, side, h);
	return store_has(s, h) == 1;
}

static bool has_txn(int64_t id)
{
	struct store_txn *t = NULL;
	int r = store_txn_load(s, id, &t);

	store_txn_free(t);
	return r == 0;
}

static struct store_gc_policy policy(void)
{
	struct store_gc_policy p;

	store_gc_policy_init(&p);
	p.grace_ns = 0; /* every blob here is seconds old */
	return p;
}

/* Every blob a remaining row refers to is there and intact. */
static void assert_nothing_needed_is_lost(struct store *st)
{
	struct store_txn **v = NULL;
	size_t n = 0;

	cr_assert_eq(store_txn_list(st, NULL, 0, &v, &n), 0);
	for (size_t i = 0; i < n; i++) {
		struct store_change *c = NULL;
		struct store_kept *k = NULL;
		size_t nc = 0, nk = 0;

		cr_assert_eq(store_change_list(st, v[i]->id, false, &c, &nc), 0);
		for (size_t j = 0; j < nc; j++) {
			if (c[j].orig.has_hash)
				cr_assert_eq(store_blob_verify(st, c[j].orig.hash), 0,
					     "transaction %lld lost the original of '%s'",
					     (long long)v[i]->id, c[j].path);
			if (c[j].new.has_hash)
				cr_assert_eq(store_blob_verify(st, c[j].new.hash), 0,
					     "transaction %lld lost the new content of '%s'",
					     (long long)v[i]->id, c[j].path);
		}
		cr_assert_eq(store_kept_list(st, v[i]->id, &k, &nk), 0);
		for (size_t j = 0; j < nk; j++)
			cr_assert_eq(store_blob_verify(st, k[j].hash), 0);
		store_kept_free(k, nk);
		store_changes_free(c, nc);
		store_txn_free(v[i]);
	}
	free(v);
}

Test(store_gc, keep_last_keeps_the_newest_and_frees_the_rest)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	int64_t ids[10];

	for (int k = 0; k < 10; k++)
		ids[k] = make_txn(k, k, STORE_TXN_COMMITTED);
	p.keep_last = 3;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.n_dropped, 7);
	cr_assert_eq(rep.blobs, 14);
	for (int k = 0; k < 10; k++) {
		cr_assert_eq(has_txn(ids[k]), k >= 7, "transaction %d", k);
		cr_assert_eq(has_blob(k, 'o'), k >= 7, "original of %d", k);
		cr_assert_eq(has_blob(k, 'n'), k >= 7, "new content of %d", k);
	}
	cr_assert_eq(rep.size_after + rep.bytes, rep.size_before);
	assert_nothing_needed_is_lost(s);
	store_gc_report_release(&rep);
}

Test(store_gc, open_sealed_and_committing_transactions_are_never_dropped)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	int64_t open, sealed, committing, done;

	open = make_txn(1, 1, STORE_TXN_OPEN);
	sealed = make_txn(2, 2, STORE_TXN_SEALED);
	committing = make_txn(3, 3, STORE_TXN_COMMITTING);
	done = make_txn(4, 4, STORE_TXN_COMMITTED);
	p.keep_last = 0;
	p.older_than_ns = 0;
	p.max_size = 0;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.n_dropped, 1);
	cr_assert_eq(rep.dropped[0].id, done);
	cr_assert(has_txn(open) && has_txn(sealed) && has_txn(committing));
	for (int k = 1; k <= 3; k++)
		cr_assert(has_blob(k, 'o') && has_blob(k, 'n'), "blob of %d lost", k);
	cr_assert_not(has_blob(4, 'o'));
	assert_nothing_needed_is_lost(s);
	store_gc_report_release(&rep);
}

Test(store_gc, a_blob_shared_with_a_transaction_that_stays_is_kept)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;

	/* Both have original content 5 ("o5"): dedup stores it once. */
	make_txn(5, 1, STORE_TXN_COMMITTED);
	make_txn(5, 2, STORE_TXN_ROLLED_BACK);
	p.keep_last = 1;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.n_dropped, 1);
	cr_assert(has_blob(5, 'o'), "the shared original was deleted");
	cr_assert_not(has_blob(1, 'n'));
	cr_assert(has_blob(2, 'n'));
	assert_nothing_needed_is_lost(s);
	store_gc_report_release(&rep);
}

static void set_finished(int64_t id, int64_t finished_ns)
{
	char db[PATH_MAX], sql[128];
	sqlite3 *h;

	snprintf(db, sizeof(db), "%s/index.db", dir);
	snprintf(sql, sizeof(sql), "UPDATE txn SET finished_ns = %lld WHERE id = %lld",
		 (long long)finished_ns, (long long)id);
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	sqlite3_busy_timeout(h, 10000);
	cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
}

Test(store_gc, older_than_drops_what_finished_before_the_limit)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	int64_t now = util_now_ns(), day = 86400LL * 1000000000LL;
	int64_t a = make_txn(1, 1, STORE_TXN_COMMITTED), b = make_txn(2, 2, STORE_TXN_UNDONE);
	int64_t c = make_txn(3, 3, STORE_TXN_COMMITTED);

	set_finished(a, now - 40 * day);
	set_finished(b, now - 31 * day);
	set_finished(c, now - 29 * day);
	cr_assert_eq(util_parse_duration("30d", &p.older_than_ns), 0);
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.n_dropped, 2);
	cr_assert_str_eq(rep.dropped[0].why, "older-than");
	cr_assert_not(has_txn(a) || has_txn(b));
	cr_assert(has_txn(c));
	cr_assert(has_blob(3, 'o') && has_blob(3, 'n'));
	cr_assert_not(has_blob(1, 'o') || has_blob(2, 'n'));
	store_gc_report_release(&rep);
}

Test(store_gc, max_size_drops_the_oldest_until_the_blobs_fit)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	uint64_t stored = 0, per_txn;
	int64_t ids[8];

	for (int k = 0; k < 8; k++)
		ids[k] = make_txn(k, k, STORE_TXN_COMMITTED);
	p.max_size = 0;
	p.dry_run = true;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	stored = rep.size_before;
	store_gc_report_release(&rep);
	per_txn = stored / 8;
	/* Room for three transactions and a half: the five oldest must go. */
	p.dry_run = false;
	p.max_size = (int64_t)(per_txn * 3 + per_txn / 2);
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.n_dropped, 5, "dropped %zu", rep.n_dropped);
	cr_assert_str_eq(rep.dropped[0].why, "max-size");
	cr_assert_leq(rep.size_after, (uint64_t)p.max_size);
	for (int k = 0; k < 8; k++)
		cr_assert_eq(has_txn(ids[k]), k >= 5);
	assert_nothing_needed_is_lost(s);
	store_gc_report_release(&rep);
}

Test(store_gc, without_a_policy_only_unreferenced_blobs_go)
{
	struct store_gc_policy p;
	struct store_gc_report rep;
	uint8_t h[HASH_LEN];
	int64_t id = make_txn(1, 1, STORE_TXN_COMMITTED);

	/* Stored, never referred to: a writer crashed between the blob and its row. */
	cr_assert_eq(store_put_buf(s, "stray bytes\n", 12, h), 0);
	store_gc_policy_init(&p);
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.n_dropped, 0);
	cr_assert_eq(rep.blobs, 0, "a blob within the grace period was deleted");
	cr_assert_eq(store_has(s, h), 1);
	store_gc_report_release(&rep);
	p.grace_ns = 0;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.blobs, 1);
	cr_assert_eq(store_has(s, h), 0);
	cr_assert(has_txn(id) && has_blob(1, 'o') && has_blob(1, 'n'));
	store_gc_report_release(&rep);
}

Test(store_gc, a_dry_run_changes_nothing)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	struct store_audit_event *ev = NULL;
	size_t nev = 0, before;

	for (int k = 0; k < 4; k++)
		make_txn(k, k, STORE_TXN_COMMITTED);
	cr_assert_eq(store_audit_list(s, 0, 0, &ev, &before), 0);
	store_audit_free(ev, before);
	p.keep_last = 1;
	p.dry_run = true;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.n_dropped, 3);
	cr_assert_eq(rep.blobs, 6);
	for (int k = 0; k < 4; k++)
		cr_assert(has_txn(k + 1) && has_blob(k, 'o') && has_blob(k, 'n'));
	cr_assert_eq(store_audit_list(s, 0, 0, &ev, &nev), 0);
	cr_assert_eq(nev, before, "a dry run wrote to the audit log");
	store_audit_free(ev, nev);
	store_gc_report_release(&rep);
}

Test(store_gc, orphan_blob_files_are_removed_and_foreign_files_left_alone)
{
	struct store_gc_policy p;
	struct store_gc_report rep;
	char path[PATH_MAX], hex[HASH_HEX_LEN + 1];
	uint8_t h[HASH_LEN];
	struct stat st;
	FILE *f;

	make_txn(1, 1, STORE_TXN_COMMITTED);
	/* A blob file whose row is gone: what a gc killed between its two steps leaves. */
	cr_assert_eq(hash_buf("orphan", 6, h), 0);
	hash_to_hex(h, hex);
	snprintf(path, sizeof(path), "%s/objects/%.2s", dir, hex);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/objects/%.2s/%s.zst", dir, hex, hex);
	f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs("whatever", f);
	cr_assert_eq(fclose(f), 0);
	snprintf(path, sizeof(path), "%s/objects/%.2s/notes.txt", dir, hex);
	f = fopen(path, "we");
	cr_assert_not_null(f);
	cr_assert_eq(fclose(f), 0);
	store_gc_policy_init(&p);
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.orphans, 1);
	cr_assert_eq(store_has(s, h), 0);
	cr_assert_eq(stat(path, &st), 0, "gc removed a file that is not a blob");
	cr_assert(has_blob(1, 'o') && has_blob(1, 'n'));
	store_gc_report_release(&rep);
}

Test(store_gc, each_dropped_transaction_gets_one_backup_deleted_event)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	struct store_audit_event *ev = NULL;
	size_t nev = 0, seen = 0;

	for (int k = 0; k < 5; k++)
		make_txn(k, k, STORE_TXN_COMMITTED);
	p.keep_last = 2;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(store_audit_list(s, 0, 0, &ev, &nev), 0);
	for (size_t i = 0; i < nev; i++) {
		if (strcmp(ev[i].event, "BACKUP_DELETED") != 0)
			continue;
		if (ev[i].txn == 0) {
			cr_assert_not_null(strstr(ev[i].detail, "6 blob(s)"), "%s", ev[i].detail);
			continue;
		}
		cr_assert_eq(ev[i].txn, (int64_t)seen + 1, "events out of order");
		cr_assert_not_null(strstr(ev[i].detail, "last 2"), "%s", ev[i].detail);
		cr_assert_eq(ev[i].pid, getpid());
		cr_assert_eq(ev[i].uid, (int64_t)getuid());
		seen++;
	}
	cr_assert_eq(seen, 3);
	store_audit_free(ev, nev);
	store_gc_report_release(&rep);
}

Test(store_gc, the_policy_defaults_come_from_the_config_file)
{
	struct store_gc_policy p;
	char path[PATH_MAX], *where = NULL;
	FILE *f;

	snprintf(path, sizeof(path), "%s/config", dir);
	f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs("# retention\ngc.keep-last = 50\ngc.older-than = 90d  # three months\n"
	      "gc.max-size = 10G\n\ngc.grace=30m\n",
	      f);
	cr_assert_eq(fclose(f), 0);
	store_gc_policy_init(&p);
	cr_assert_eq(store_gc_policy_load(s, &p, &where), 0);
	cr_assert_eq(p.keep_last, 50);
	cr_assert_eq(p.older_than_ns, 90LL * 86400 * 1000000000LL);
	cr_assert_eq(p.max_size, 10LL << 30);
	cr_assert_eq(p.grace_ns, 30LL * 60 * 1000000000LL);
	{
		char *v = NULL;

		cr_assert_eq(store_config_get(s, "gc.grace", &v, NULL), 0);
		cr_assert_str_eq(v, "30m");
		free(v);
		cr_assert_eq(store_config_get(s, "gc.nothing", &v, NULL), 0);
		cr_assert_null(v);
	}
	f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs("gc.keep-last = 5\ngc.keep_lats = 3\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(store_gc_policy_load(s, &p, &where), -EINVAL);
	cr_assert_not_null(where);
	cr_assert_not_null(strstr(where, "config:2:"), "%s", where);
	free(where);
}

/* ---- kill -9 ---- */

/* A suite of its own for the timeout: Criterion 2.4.1 leaks a per-test .timeout. */
TestSuite(store_gc_crash, .init = setup, .fini = teardown, .timeout = 600);

/* Build a store with n committed transactions and two open ones in between. */
static void build_history(int n, int64_t *ret_open1, int64_t *ret_open2)
{
	for (int k = 0; k < n; k++) {
		if (k == n / 3)
			*ret_open1 = make_txn(100000 + k, 100000 + k, STORE_TXN_OPEN);
		if (k == n / 2)
			*ret_open2 = make_txn(200000 + k, 200000 + k, STORE_TXN_COMMITTING);
		/* Every fourth shares its original with the next one (dedup). */
		make_txn(k - (k % 4 == 1), k, STORE_TXN_COMMITTED);
	}
}

/* Run gc in a child; fault_at > 0 kills it at that durable call, delay_us > 0 after that long. */
static int gc_child(int64_t keep_last, long fault_at, long delay_us)
{
	int status;
	pid_t pid;

	store_close(s);
	s = NULL;
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		struct store_gc_policy p;
		struct store_gc_report rep;
		struct store *cs;

		if (store_open(dir, 0, &cs) < 0)
			_exit(3);
		store_gc_policy_init(&p);
		p.grace_ns = 0;
		p.keep_last = keep_last;
		if (fault_at > 0)
			util_fault_arm(fault_at, 0);
		_exit(store_gc(cs, &p, &rep) == 0 ? 0 : 4);
	}
	if (delay_us > 0) {
		struct timespec ts = { delay_us / 1000000, (delay_us % 1000000) * 1000 };

		nanosleep(&ts, NULL);
		kill(pid, SIGKILL);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	cr_assert_eq(store_open(dir, 0, &s), 0);
	if (WIFSIGNALED(status))
		return -WTERMSIG(status);
	return WEXITSTATUS(status);
}

static void assert_kept(int64_t open1, int64_t open2, int64_t keep_last)
{
	struct store_txn **v = NULL;
	size_t n = 0, committed = 0;

	cr_assert(has_txn(open1) && has_txn(open2), "gc dropped an unfinished transaction");
	cr_assert_eq(store_txn_list(s, NULL, 0, &v, &n), 0);
	for (size_t i = 0; i < n; i++) {
		committed += v[i]->state == STORE_TXN_COMMITTED;
		store_txn_free(v[i]);
	}
	free(v);
	cr_assert_geq(committed, (size_t)keep_last, "gc dropped a transaction the policy keeps");
	assert_nothing_needed_is_lost(s);
}

Test(store_gc_crash, kill_9_at_every_durable_step_loses_nothing_needed)
{
	int64_t open1 = 0, open2 = 0;
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	long at;
	int r = -1;

	build_history(12, &open1, &open2);
	/* Each run dies at the at-th unlink or sync; the next one carries on from there. */
	for (at = 1; at < 200; at++) {
		r = gc_child(4, at, 0);
		assert_kept(open1, open2, 4);
		if (r == 0)
			break;
		cr_assert_eq(r, -SIGKILL, "gc failed instead of dying: %d", r);
	}
	cr_assert_eq(r, 0, "gc never finished");
	cr_assert_gt(at, 5, "the faults never hit gc's deletions");
	/* Finished: what is left is exactly what the policy keeps, and no orphan. */
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.blobs, 0);
	cr_assert_eq(rep.orphans, 0);
	store_gc_report_release(&rep);
}

Test(store_gc_crash, kill_9_at_random_moments_loses_nothing_needed)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	int64_t open1 = 0, open2 = 0;
	unsigned seed = (unsigned)time(NULL);
	int killed = 0;

	srand(seed);
	build_history(300, &open1, &open2);
	for (int round = 0; round < 40; round++) {
		int64_t keep = 300 - round * 7;
		int r = gc_child(keep, 0, 1 + rand() % 60000);

		killed += r == -SIGKILL;
		cr_assert(r == 0 || r == -SIGKILL, "gc failed (%d), seed %u", r, seed);
		assert_kept(open1, open2, keep);
	}
	fprintf(stderr, "gc killed in %d of 40 rounds (seed %u)\n", killed, seed);
	p.keep_last = 10;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	assert_kept(open1, open2, 10);
	store_gc_report_release(&rep);
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(rep.orphans, 0);
	cr_assert_eq(rep.blobs, 0);
	store_gc_report_release(&rep);
}

/* ---- scale ---- */

static bool scale_on_tmpfs;

/*
 * The store on a private tmpfs when running as root: building thousands of
 * transactions syncs each blob, 4,000 syncs that would take 10 s of a disk
 * and are not what the test looks at.
 */
static void setup_scale(void)
{
	make_root();
	scale_on_tmpfs = geteuid() == 0 &&
			 mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=1g,mode=0700") == 0;
	open_store();
}

static void teardown_scale(void)
{
	store_close(s);
	s = NULL;
	if (scale_on_tmpfs)
		(void)umount2(root, MNT_DETACH);
	(void)rmdir(root);
}

TestSuite(store_scale, .init = setup_scale, .fini = teardown_scale, .timeout = 900);

static double seconds_since(int64_t start)
{
	return (double)(util_mono_ns() - start) / 1e9;
}

/*
 * Thousands of transactions: log lists them all, log -n 20 --pkg and show
 * find what they ask for, gc decides and drops exactly what the policy says
 * and loses nothing still needed. The timings are printed for the record;
 * their growth is for a benchmark to judge, not a test (docs/history.md).
 */
Test(store_scale, log_show_and_gc_work_with_thousands_of_transactions)
{
	struct store_gc_policy p = policy();
	struct store_gc_report rep;
	struct store_txn **v = NULL;
	struct store_change *c = NULL;
	double t_log, t_log20, t_show, t_plan, t_gc;
	size_t n = 0, nc = 0;
	int64_t start;
	const int count = 2000;

	/* Built without a sync per commit, or building would be the slow part. */
	store_close(s);
	cr_assert_eq(store_open(dir, STORE_OPEN_RELAXED, &s), 0);
	for (int k = 0; k < count; k++)
		make_txn(k, k, STORE_TXN_COMMITTED);
	start = util_mono_ns();
	cr_assert_eq(store_txn_list(s, NULL, 0, &v, &n), 0);
	t_log = seconds_since(start);
	cr_assert_eq(n, (size_t)count);
	for (size_t i = 0; i < n; i++)
		store_txn_free(v[i]);
	free(v);
	start = util_mono_ns();
	cr_assert_eq(store_txn_list(s, "/nonexistent/pkg", 20, &v, &n), 0);
	t_log20 = seconds_since(start);
	cr_assert_eq(n, 20);
	cr_assert_eq(v[0]->id, count, "log -n 20 does not start at the newest");
	cr_assert_eq(v[19]->id, count - 19);
	for (size_t i = 0; i < n; i++)
		store_txn_free(v[i]);
	free(v);
	start = util_mono_ns();
	cr_assert_eq(store_change_list(s, count / 2, false, &c, &nc), 0);
	t_show = seconds_since(start);
	cr_assert_eq(nc, 1);
	cr_assert_str_eq(c[0].path, "f999");
	store_changes_free(c, nc);
	p.keep_last = 100;
	p.dry_run = true;
	start = util_mono_ns();
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	t_plan = seconds_since(start);
	cr_assert_eq(rep.n_dropped, (size_t)count - 100);
	store_gc_report_release(&rep);
	p.dry_run = false;
	start = util_mono_ns();
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	t_gc = seconds_since(start);
	cr_assert_eq(rep.blobs, (size_t)(count - 100) * 2);
	store_gc_report_release(&rep);
	fprintf(stderr,
		"%d transactions: log %.3f s, log -n 20 --pkg %.4f s, show %.4f s, gc plan %.3f s, "
		"gc dropping %d (%d blobs) %.3f s\n",
		count, t_log, t_log20, t_show, t_plan, count - 100, (count - 100) * 2, t_gc);
	assert_nothing_needed_is_lost(s);
}
