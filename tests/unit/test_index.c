// SPDX-License-Identifier: MIT
/*
 * store/txn.c, audit.c and db.c: the SQLite index. Transactions begin,
 * load and list; one open transaction per PKG; state changes are
 * compare-and-set; change rows keep the first original and list sorted;
 * the audit log cannot be rewritten; a newer schema is refused.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "store.h"
#include "unit.h"

static char root[PATH_MAX];
static char spath[PATH_MAX];
static char pkg[PATH_MAX];
static struct stat pkg_st;
static struct store *s;

static void setup(void)
{
	int fd;

	u_tmpdir(root);
	snprintf(spath, sizeof(spath), "%s/store", root);
	fd = u_mkdir_open(root, "pkg", pkg);
	cr_assert(eq(int, fstat(fd, &pkg_st), 0));
	close(fd);
	cr_assert(eq(int, store_open(spath, STORE_OPEN_CREATE, &s), 0));
}

static void teardown(void)
{
	store_close(s);
	s = NULL;
	u_rmtree(root);
}

TestSuite(index_txn, .init = setup, .fini = teardown);
TestSuite(index_change, .init = setup, .fini = teardown);
TestSuite(index_audit, .init = setup, .fini = teardown);
TestSuite(index_schema, .init = setup, .fini = teardown);

static int64_t begin(const char *command, unsigned flags)
{
	int64_t id = 0, other = 0;
	int r = store_txn_begin(s, pkg, &pkg_st, command, 0, flags, &id, &other);

	cr_assert(eq(int, r, 0), "begin: %s", strerror(-r));
	cr_assert(id > 0);
	return id;
}

/* Open index.db beside the store's own connection, as another process would. */
static sqlite3 *open_index(void)
{
	char path[PATH_MAX];
	sqlite3 *db = NULL;

	snprintf(path, sizeof(path), "%s/index.db", spath);
	cr_assert(eq(int, sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK));
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static int64_t query_i64(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v;

	cr_assert(eq(int, sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK), "%s",
		  sqlite3_errmsg(db));
	cr_assert(eq(int, sqlite3_step(st), SQLITE_ROW), "%s", sqlite3_errmsg(db));
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static int64_t audit_count(const char *event)
{
	char sql[256];
	sqlite3 *db = open_index();
	int64_t n;

	snprintf(sql, sizeof(sql), "SELECT count(*) FROM audit WHERE event = '%s'", event);
	n = query_i64(db, sql);
	sqlite3_close(db);
	return n;
}

/* ---- transactions ---- */

Test(index_txn, begin_records_an_open_transaction_with_its_layer)
{
	struct store_txn *t = NULL;
	int64_t id = begin("black .", 0);
	int dfd;

	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	cr_assert(eq(i64, t->id, id));
	cr_assert(eq(int, (int)t->state, STORE_TXN_OPEN));
	cr_assert_str_eq(t->pkg, pkg);
	cr_assert(eq(u64, t->pkg_dev, (uint64_t)pkg_st.st_dev));
	cr_assert(eq(u64, t->pkg_ino, (uint64_t)pkg_st.st_ino));
	cr_assert_str_eq(t->command, "black .");
	cr_assert_null(t->mountpoint);
	cr_assert(eq(i64, t->undo_of, 0));
	cr_assert(t->created_ns > 0);
	store_txn_free(t);

	/* The per-transaction area exists: upper/ and work/. */
	dfd = store_txn_open_dir(s, id, "upper", false);
	cr_assert(dfd >= 0, "no upper/: %s", strerror(-dfd));
	close(dfd);
	dfd = store_txn_open_dir(s, id, "work", true);
	cr_assert(dfd >= 0, "no work/: %s", strerror(-dfd));
	close(dfd);
	cr_assert(eq(i64, audit_count("TXN_BEGIN"), 1));
}

Test(index_txn, load_of_an_unknown_id_is_enoent)
{
	struct store_txn *t = (struct store_txn *)&t; /* must stay untouched */

	cr_assert(eq(int, store_txn_load(s, 4242, &t), -ENOENT));
	cr_assert(t == (struct store_txn *)&t, "ret written on failure");
}

Test(index_txn, second_transaction_on_the_same_pkg_is_busy)
{
	int64_t first = begin(NULL, 0);
	int64_t id = -7, other = 0;

	cr_assert(eq(int, store_txn_begin(s, pkg, &pkg_st, NULL, 0, 0, &id, &other), -EBUSY));
	cr_assert(eq(i64, other, first), "ret_other does not name the open transaction");
	cr_assert(eq(i64, id, -7), "ret_id written on failure");

	/* Still busy while sealed and while committing. */
	cr_assert(eq(int,
		     store_txn_transition(s, first, STORE_TXN_OPEN, STORE_TXN_SEALED, NULL, NULL),
		     0));
	cr_assert(eq(int, store_txn_begin(s, pkg, &pkg_st, NULL, 0, 0, &id, &other), -EBUSY));
	cr_assert(eq(int,
		     store_txn_transition(s, first, STORE_TXN_SEALED, STORE_TXN_COMMITTING, NULL,
					  NULL),
		     0));
	cr_assert(eq(int, store_txn_begin(s, pkg, &pkg_st, NULL, 0, 0, &id, &other), -EBUSY));

	/* A finished transaction no longer holds PKG. */
	cr_assert(eq(int,
		     store_txn_transition(s, first, STORE_TXN_COMMITTING, STORE_TXN_COMMITTED,
					  "TXN_COMMIT", NULL),
		     0));
	cr_assert(eq(int, store_txn_begin(s, pkg, &pkg_st, NULL, 0, 0, &id, &other), 0));
	cr_assert(id > first);
}

Test(index_txn, concurrent_flag_allows_a_second_open_transaction)
{
	int64_t first = begin(NULL, 0);
	int64_t second = begin(NULL, STORE_TXN_ALLOW_CONCURRENT);
	int64_t *ids = NULL;
	size_t n = 0;

	cr_assert(second != first);
	cr_assert(eq(int, store_txn_list_state(s, STORE_TXN_OPEN, &ids, &n), 0));
	cr_assert(eq(sz, n, 2));
	cr_assert(eq(i64, ids[0], first));
	cr_assert(eq(i64, ids[1], second));
	free(ids);
}

Test(index_txn, another_pkg_is_not_busy)
{
	struct stat st2;
	char pkg2[PATH_MAX];
	int64_t id = 0, other = 0;
	int fd;

	begin(NULL, 0);
	fd = u_mkdir_open(root, "pkg2", pkg2);
	cr_assert(eq(int, fstat(fd, &st2), 0));
	close(fd);
	cr_assert(eq(int, store_txn_begin(s, pkg2, &st2, NULL, 0, 0, &id, &other), 0));
}

Test(index_txn, list_is_newest_first_filtered_by_pkg_and_limited)
{
	struct store_txn **v = NULL;
	struct stat st2;
	char pkg2[PATH_MAX];
	int64_t a, b, c = 0, other;
	size_t n = 0;
	int fd;

	a = begin("one", 0);
	b = begin("two", STORE_TXN_ALLOW_CONCURRENT);
	fd = u_mkdir_open(root, "pkg2", pkg2);
	cr_assert(eq(int, fstat(fd, &st2), 0));
	close(fd);
	cr_assert(eq(int, store_txn_begin(s, pkg2, &st2, "three", 0, 0, &c, &other), 0));

	cr_assert(eq(int, store_txn_list(s, NULL, 0, &v, &n), 0));
	cr_assert(eq(sz, n, 3));
	cr_assert(eq(i64, v[0]->id, c));
	cr_assert(eq(i64, v[1]->id, b));
	cr_assert(eq(i64, v[2]->id, a));
	cr_assert_str_eq(v[0]->command, "three");
	cr_assert_str_eq(v[0]->pkg, pkg2);
	for (size_t i = 0; i < n; i++)
		store_txn_free(v[i]);
	free(v);

	cr_assert(eq(int, store_txn_list(s, pkg, 0, &v, &n), 0));
	cr_assert(eq(sz, n, 2));
	cr_assert(eq(i64, v[0]->id, b));
	cr_assert(eq(i64, v[1]->id, a));
	for (size_t i = 0; i < n; i++)
		store_txn_free(v[i]);
	free(v);

	cr_assert(eq(int, store_txn_list(s, NULL, 1, &v, &n), 0));
	cr_assert(eq(sz, n, 1));
	cr_assert(eq(i64, v[0]->id, c));
	store_txn_free(v[0]);
	free(v);
}

Test(index_txn, transition_is_compare_and_set)
{
	struct store_txn *t = NULL;
	int64_t id = begin(NULL, 0);

	cr_assert(eq(int,
		     store_txn_transition(s, id, STORE_TXN_OPEN, STORE_TXN_SEALED, "TXN_SEAL", "x"),
		     0));
	/* A second caller that still believes it is OPEN loses, and writes nothing. */
	cr_assert(eq(int,
		     store_txn_transition(s, id, STORE_TXN_OPEN, STORE_TXN_ROLLED_BACK,
					  "TXN_ROLLBACK", NULL),
		     -ESTALE));
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	cr_assert(eq(int, (int)t->state, STORE_TXN_SEALED));
	cr_assert(eq(i64, t->finished_ns, 0));
	store_txn_free(t);
	cr_assert(eq(i64, audit_count("TXN_SEAL"), 1));
	cr_assert(eq(i64, audit_count("TXN_ROLLBACK"), 0), "the loser's event was logged");

	cr_assert(eq(int,
		     store_txn_transition(s, 999, STORE_TXN_OPEN, STORE_TXN_SEALED, NULL, NULL),
		     -ESTALE),
		  "an unknown id moved");

	/* The store still works after the refused transition. */
	cr_assert(eq(int,
		     store_txn_transition(s, id, STORE_TXN_SEALED, STORE_TXN_ROLLED_BACK,
					  "TXN_ROLLBACK", NULL),
		     0));
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	cr_assert(eq(int, (int)t->state, STORE_TXN_ROLLED_BACK));
	cr_assert(t->finished_ns > 0, "a final state has no finish time");
	store_txn_free(t);
}

Test(index_txn, mount_is_recorded_and_found)
{
	struct store_txn *t = NULL;
	int64_t id = begin(NULL, 0), found = 0;

	cr_assert(eq(int, store_txn_find_mount(s, "/mnt/x", &found), -ENOENT));
	cr_assert(eq(int, store_txn_set_mount(s, id, "/mnt/x", 1234), 0));
	cr_assert(eq(int, store_txn_find_mount(s, "/mnt/x", &found), 0));
	cr_assert(eq(i64, found, id));
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	cr_assert_str_eq(t->mountpoint, "/mnt/x");
	cr_assert(eq(i64, t->pid, 1234));
	store_txn_free(t);
	cr_assert(eq(int, store_txn_set_mount(s, id, NULL, 0), 0));
	cr_assert(eq(int, store_txn_find_mount(s, "/mnt/x", &found), -ENOENT));
}

Test(index_txn, a_final_state_clears_the_mount)
{
	struct store_txn *t = NULL;
	int64_t id = begin(NULL, 0), found = 0;

	cr_assert(eq(int, store_txn_set_mount(s, id, "/mnt/y", 1), 0));
	cr_assert(eq(int,
		     store_txn_transition(s, id, STORE_TXN_OPEN, STORE_TXN_ROLLED_BACK,
					  "TXN_ROLLBACK", NULL),
		     0));
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	cr_assert_null(t->mountpoint, "a rolled-back transaction still claims its mount");
	store_txn_free(t);
	cr_assert(eq(int, store_txn_find_mount(s, "/mnt/y", &found), -ENOENT));
}

Test(index_txn, open_pkg_refuses_a_replaced_directory)
{
	struct store_txn *t = NULL;
	char moved[PATH_MAX];
	int64_t id = begin(NULL, 0);
	int fd;

	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	fd = store_txn_open_pkg(t);
	cr_assert(fd >= 0, "%s", strerror(-fd));
	close(fd);
	/* Someone moved PKG away and put another directory in its place. */
	snprintf(moved, sizeof(moved), "%s/moved", root);
	cr_assert(eq(int, rename(pkg, moved), 0));
	cr_assert(eq(int, store_txn_open_pkg(t), -ENOENT));
	cr_assert(eq(int, mkdir(pkg, 0755), 0));
	cr_assert(eq(int, store_txn_open_pkg(t), -ESTALE));
	store_txn_free(t);
}

Test(index_txn, finish_lock_is_exclusive)
{
	int64_t id = begin(NULL, 0);
	int a = store_txn_lock(s, id, "finish", false);
	int b;

	cr_assert(a >= 0, "%s", strerror(-a));
	/* flock locks belong to open files: a second open in the same process conflicts too. */
	b = store_txn_lock(s, id, "finish", false);
	cr_assert(eq(int, b, -EWOULDBLOCK));
	close(a);
	b = store_txn_lock(s, id, "finish", false);
	cr_assert(b >= 0);
	close(b);
	cr_assert(eq(int, store_txn_daemon_alive(s, id), 0));
	a = store_txn_lock(s, id, "daemon", false);
	cr_assert(a >= 0);
	cr_assert(eq(int, store_txn_daemon_alive(s, id), 1));
	close(a);
}

/* ---- change rows ---- */

static struct store_entry file_entry(uint32_t mode, uint64_t size, const char *content)
{
	struct store_entry e;

	memset(&e, 0, sizeof(e));
	e.mode = mode;
	e.size = size;
	e.mtime_ns = 1234567890123456789LL;
	e.ctime_ns = 42;
	e.dev = 7;
	e.ino = 99;
	if (content) {
		e.has_hash = true;
		cr_assert(eq(int, hash_buf(content, strlen(content), e.hash), 0));
	}
	return e;
}

Test(index_change, first_record_wins)
{
	struct store_entry first = file_entry(S_IFREG | 0644, 5, "first");
	struct store_entry later = file_entry(S_IFREG | 0600, 6, "second");
	struct store_change *c = NULL;
	int64_t id = begin(NULL, 0);
	size_t n = 0;

	cr_assert(eq(int, store_change_exists(s, id, "a.txt"), 0));
	cr_assert(eq(int, store_change_record(s, id, "a.txt", &first), 1));
	cr_assert(eq(int, store_change_record(s, id, "a.txt", &later), 0));
	cr_assert(eq(int, store_change_exists(s, id, "a.txt"), 1));
	cr_assert(eq(int, store_change_list(s, id, false, &c, &n), 0));
	cr_assert(eq(sz, n, 1));
	cr_assert_str_eq(c[0].path, "a.txt");
	cr_assert(eq(u32, c[0].orig.mode, S_IFREG | 0644));
	cr_assert(eq(u64, c[0].orig.size, 5));
	cr_assert(eq(i64, c[0].orig.mtime_ns, first.mtime_ns));
	cr_assert(eq(i64, c[0].orig.ctime_ns, 42));
	cr_assert(eq(u64, c[0].orig.dev, 7));
	cr_assert(eq(u64, c[0].orig.ino, 99));
	cr_assert(c[0].orig.has_hash);
	cr_assert(eq(int, memcmp(c[0].orig.hash, first.hash, HASH_LEN), 0));
	cr_assert(eq(chr, c[0].status, 0), "unsealed rows have no status");
	cr_assert_not(c[0].applied);
	store_changes_free(c, n);
}

Test(index_change, rows_belong_to_their_transaction)
{
	struct store_entry e = file_entry(S_IFREG | 0644, 1, "x");
	struct store_change *c = NULL;
	int64_t a = begin(NULL, 0), b = begin(NULL, STORE_TXN_ALLOW_CONCURRENT);
	size_t n = 0;

	cr_assert(eq(int, store_change_record(s, a, "f", &e), 1));
	cr_assert(eq(int, store_change_record(s, b, "f", &e), 1), "another txn's row blocked it");
	cr_assert(eq(int, store_change_record(s, b, "g", &e), 1));
	cr_assert(eq(int, store_change_exists(s, a, "g"), 0));
	cr_assert(eq(int, store_change_list(s, a, false, &c, &n), 0));
	cr_assert(eq(sz, n, 1));
	store_changes_free(c, n);
}

Test(index_change, list_is_sorted_bytewise_by_path)
{
	static const char *const insert[] = { "b", "a/c", "a.txt", "a", "a/b", "B", "a-b", "a/b/c" };
	static const char *const sorted[] = { "B", "a", "a-b", "a.txt", "a/b", "a/b/c", "a/c", "b" };
	struct store_entry e = file_entry(0, 0, NULL);
	struct store_change *c = NULL;
	int64_t id = begin(NULL, 0);
	size_t n = 0;

	for (size_t i = 0; i < ARRAY_SIZE(insert); i++)
		cr_assert(eq(int, store_change_record(s, id, insert[i], &e), 1));
	cr_assert(eq(int, store_change_list(s, id, false, &c, &n), 0));
	cr_assert(eq(sz, n, ARRAY_SIZE(sorted)));
	for (size_t i = 0; i < n; i++)
		cr_assert_str_eq(c[i].path, sorted[i], "row %zu", i);
	/* The order bsearch with strcmp relies on. */
	for (size_t i = 1; i < n; i++)
		cr_assert(strcmp(c[i - 1].path, c[i].path) < 0);
	store_changes_free(c, n);
}

Test(index_change, set_new_round_trips_and_filters_unchanged)
{
	struct store_entry orig = file_entry(S_IFREG | 0644, 3, "old"), want;
	struct store_change *c = NULL, upd;
	int64_t id = begin(NULL, 0);
	size_t n = 0;

	cr_assert(eq(int, store_change_record(s, id, "m", &orig), 1));
	cr_assert(eq(int, store_change_record(s, id, "same", &orig), 1));
	cr_assert(eq(int, store_change_record(s, id, "gone", &orig), 1));

	memset(&upd, 0, sizeof(upd));
	upd.path = (char *)"m";
	upd.new = file_entry(S_IFREG | 0755, 7, "new one");
	upd.new.uid = 1000;
	upd.new.gid = 100;
	upd.status = 'M';
	cr_assert(eq(int, store_change_set_new(s, id, &upd), 0));
	upd.path = (char *)"same";
	upd.new = orig;
	upd.status = 0;
	cr_assert(eq(int, store_change_set_new(s, id, &upd), 0));
	upd.path = (char *)"gone";
	memset(&upd.new, 0, sizeof(upd.new));
	upd.status = 'D';
	cr_assert(eq(int, store_change_set_new(s, id, &upd), 0));
	cr_assert(eq(int, store_change_set_applied(s, id, "gone"), 0));

	cr_assert(eq(int, store_change_list(s, id, false, &c, &n), 0));
	cr_assert(eq(sz, n, 3));
	/* gone, m, same */
	cr_assert_str_eq(c[0].path, "gone");
	cr_assert(eq(chr, c[0].status, 'D'));
	cr_assert(eq(u32, c[0].new.mode, 0));
	cr_assert_not(c[0].new.has_hash);
	cr_assert(c[0].applied);
	cr_assert_str_eq(c[1].path, "m");
	cr_assert(eq(chr, c[1].status, 'M'));
	cr_assert(eq(u32, c[1].new.mode, S_IFREG | 0755));
	cr_assert(eq(u64, c[1].new.size, 7));
	cr_assert(eq(u32, c[1].new.uid, 1000));
	cr_assert(eq(u32, c[1].new.gid, 100));
	cr_assert(eq(i64, c[1].new.mtime_ns, 1234567890123456789LL));
	cr_assert(c[1].new.has_hash);
	want = file_entry(0, 0, "new one");
	cr_assert(eq(int, memcmp(c[1].new.hash, want.hash, HASH_LEN), 0));
	cr_assert(eq(u32, c[1].orig.mode, S_IFREG | 0644), "set_new changed the original");
	cr_assert_not(c[1].applied);
	cr_assert(eq(chr, c[2].status, 0));
	store_changes_free(c, n);

	cr_assert(eq(int, store_change_list(s, id, true, &c, &n), 0));
	cr_assert(eq(sz, n, 2), "only_changed kept an unchanged row");
	cr_assert_str_eq(c[0].path, "gone");
	cr_assert_str_eq(c[1].path, "m");
	store_changes_free(c, n);
}

Test(index_change, batch_rollback_discards_every_row)
{
	struct store_entry e = file_entry(S_IFREG | 0644, 1, "x");
	struct store_change *c = NULL;
	int64_t id = begin(NULL, 0);
	size_t n = 0;

	cr_assert(eq(int, store_batch_begin(s), 0));
	cr_assert(eq(int, store_change_record(s, id, "a", &e), 1));
	cr_assert(eq(int, store_change_record(s, id, "b", &e), 1));
	store_batch_rollback(s);
	cr_assert(eq(int, store_change_list(s, id, false, &c, &n), 0));
	cr_assert(eq(sz, n, 0));
	store_changes_free(c, n);

	cr_assert(eq(int, store_batch_begin(s), 0));
	cr_assert(eq(int, store_change_record(s, id, "a", &e), 1));
	cr_assert(eq(int, store_batch_commit(s), 0));
	cr_assert(eq(int, store_change_exists(s, id, "a"), 1));
}

/* ---- audit ---- */

Test(index_audit, events_are_appended)
{
	int64_t id = begin(NULL, 0);

	cr_assert(eq(int, store_audit(s, id, "TEST_EVENT", "detail"), 0));
	cr_assert(eq(int, store_audit(s, id, "TEST_EVENT", NULL), 0));
	cr_assert(eq(i64, audit_count("TEST_EVENT"), 2));
}

Test(index_audit, log_cannot_be_updated_or_deleted)
{
	sqlite3 *db;
	int64_t before;
	char *err = NULL;
	int rc;

	begin(NULL, 0);
	cr_assert(eq(int, store_audit(s, 0, "TEST_EVENT", "x"), 0));
	db = open_index();
	before = query_i64(db, "SELECT count(*) FROM audit");
	cr_assert(eq(i64, before, 2));

	rc = sqlite3_exec(db, "UPDATE audit SET event = 'FORGED'", NULL, NULL, &err);
	cr_assert(rc != SQLITE_OK, "UPDATE on the audit log succeeded");
	sqlite3_free(err);
	err = NULL;
	rc = sqlite3_exec(db, "DELETE FROM audit", NULL, NULL, &err);
	cr_assert(rc != SQLITE_OK, "DELETE on the audit log succeeded");
	sqlite3_free(err);
	err = NULL;
	rc = sqlite3_exec(db, "DELETE FROM audit WHERE event = 'TEST_EVENT'", NULL, NULL, &err);
	cr_assert(rc != SQLITE_OK, "DELETE of one event succeeded");
	sqlite3_free(err);

	cr_assert(eq(i64, query_i64(db, "SELECT count(*) FROM audit"), before));
	cr_assert(eq(i64, query_i64(db, "SELECT count(*) FROM audit WHERE event = 'FORGED'"), 0));
	/* Appending is still allowed. */
	cr_assert(eq(int,
		     sqlite3_exec(db,
				  "INSERT INTO audit(time_ns, uid, pid, event)"
				  " VALUES (1, 0, 0, 'MANUAL')",
				  NULL, NULL, NULL),
		     SQLITE_OK));
	sqlite3_close(db);
}

/* ---- schema ---- */

Test(index_schema, a_new_store_has_the_current_version)
{
	struct store_txn *t = NULL;
	sqlite3 *db = open_index();
	int64_t id;

	cr_assert(eq(i64, query_i64(db, "PRAGMA user_version"), DB_SCHEMA_VERSION));
	sqlite3_close(db);
	/* Reopening an existing store keeps it and its data. */
	id = begin(NULL, 0);
	store_close(s);
	s = NULL;
	cr_assert(eq(int, store_open(spath, 0, &s), 0));
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	store_txn_free(t);
}

Test(index_schema, a_newer_schema_is_refused)
{
	struct store *s2 = (struct store *)&s2;
	sqlite3 *db;

	store_close(s);
	s = NULL;
	db = open_index();
	cr_assert(
		eq(int, sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK));
	sqlite3_close(db);

	cr_assert(eq(int, store_open(spath, 0, &s2), -EPROTO));
	cr_assert(s2 == (struct store *)&s2, "ret written on failure");
	cr_assert(eq(int, store_open(spath, STORE_OPEN_CREATE, &s2), -EPROTO));
	/* Refused without touching it: still version 99. */
	db = open_index();
	cr_assert(eq(i64, query_i64(db, "PRAGMA user_version"), 99));
	sqlite3_close(db);
}

Test(index_schema, missing_store_is_not_created_without_the_flag)
{
	char other[PATH_MAX];
	struct store *s2 = NULL;
	struct stat st;

	snprintf(other, sizeof(other), "%s/nostore", root);
	cr_assert(eq(int, store_open(other, 0, &s2), -ENOENT));
	cr_assert(eq(int, stat(other, &st), -1));
}

/*
 * Durability of state transitions (DESIGN.md guarantee 2: the commit point
 * is a durable record). Every connection runs synchronous=NORMAL; a state
 * transition must commit under synchronous=FULL. The statements the store
 * runs are traced through an auto-extension, which SQLite installs on every
 * connection this process opens, the store's own included.
 */
static char trace[1 << 16];
static size_t trace_len;

static int trace_stmt(unsigned type, void *ctx, void *p, void *x)
{
	const char *sql = x;
	size_t n = sql ? strlen(sql) : 0;

	(void)type;
	(void)ctx;
	(void)p;
	if (n && strncmp(sql, "--", 2) != 0 && trace_len + n + 2 < sizeof(trace)) {
		memcpy(trace + trace_len, sql, n);
		trace_len += n;
		trace[trace_len++] = '\n';
		trace[trace_len] = '\0';
	}
	return 0;
}

static int trace_entry(sqlite3 *db, const char **err, const void *api)
{
	(void)err;
	(void)api;
	sqlite3_trace_v2(db, SQLITE_TRACE_STMT, trace_stmt, NULL);
	return SQLITE_OK;
}

static void setup_traced(void)
{
	cr_assert(eq(int, sqlite3_auto_extension((void (*)(void))trace_entry), SQLITE_OK));
	setup();
}

static void teardown_traced(void)
{
	teardown();
	sqlite3_reset_auto_extension();
}

TestSuite(index_durability, .init = setup_traced, .fini = teardown_traced);

/* The position of what in the trace, after from; -1 if absent. */
static long trace_find(const char *what, long from)
{
	const char *p = from < 0 ? NULL : strstr(trace + from, what);

	return p ? p - trace : -1;
}

Test(index_durability, a_state_transition_commits_with_synchronous_full)
{
	int64_t id = begin(NULL, 0);
	long full, begin_at, commit, normal;

	trace_len = 0;
	trace[0] = '\0';
	cr_assert(eq(int, store_txn_transition(s, id, STORE_TXN_OPEN, STORE_TXN_SEALED, NULL, NULL),
		     0));
	full = trace_find("PRAGMA synchronous=FULL", 0);
	begin_at = trace_find("BEGIN", full);
	commit = trace_find("COMMIT", begin_at);
	normal = trace_find("PRAGMA synchronous=NORMAL", commit);
	cr_assert(full >= 0 && begin_at >= 0 && commit >= 0 && normal >= 0,
		  "the transition did not commit under synchronous=FULL:\n%s", trace);
}

Test(index_durability, an_ordinary_batch_does_not_sync)
{
	trace_len = 0;
	trace[0] = '\0';
	cr_assert(eq(int, store_batch_begin(s), 0));
	cr_assert(eq(int, store_batch_commit(s), 0));
	cr_assert(eq(long, trace_find("synchronous", 0), -1L), "%s", trace);
	cr_assert(trace_find("COMMIT", 0) >= 0, "the batch was not traced:\n%s", trace);
}
