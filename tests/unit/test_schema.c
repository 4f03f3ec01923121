// SPDX-License-Identifier: MIT
/*
 * The index's schema versions: a new store is at the current version, an
 * older one is migrated forward keeping its history, and a store written by
 * a newer cjfs is refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "db.h"
#include "store.h"

static char root[PATH_MAX];
static struct store *s;

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(root, sizeof(root), "%s/cjfs-unit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(root));
	cr_assert_eq(store_open(root, STORE_OPEN_CREATE, &s), 0);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	store_close(s);
	s = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	(void)!system(cmd);
}

TestSuite(store_schema, .init = setup, .fini = teardown, .timeout = 60);

static int user_version(const char *db)
{
	sqlite3 *h;
	sqlite3_stmt *st;
	int v = -1;

	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(h, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

Test(store_schema, a_new_store_is_at_the_current_version)
{
	char db[PATH_MAX];

	snprintf(db, sizeof(db), "%s/index.db", root);
	cr_assert_eq(user_version(db), DB_SCHEMA_VERSION);
	cr_assert_eq(DB_SCHEMA_VERSION, 5);
}

Test(store_schema, a_store_from_a_newer_cjfs_is_refused)
{
	char db[PATH_MAX];
	struct store *s2 = NULL;
	sqlite3 *h;

	snprintf(db, sizeof(db), "%s/index.db", root);
	store_close(s);
	s = NULL;
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(h, "PRAGMA user_version = 6", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	cr_assert_eq(store_open(root, 0, &s2), -EPROTO);
	cr_assert_null(s2);
}

/* The v1 schema as cjfs 0.1 wrote it (frozen), with one transaction and one blob. */
static const char schema_v1[] =
	"CREATE TABLE txn (id INTEGER PRIMARY KEY AUTOINCREMENT, state INTEGER NOT NULL,"
	" pkg TEXT NOT NULL, pkg_dev INTEGER NOT NULL, pkg_ino INTEGER NOT NULL, mountpoint TEXT,"
	" pid INTEGER NOT NULL DEFAULT 0, command TEXT, undo_of INTEGER NOT NULL DEFAULT 0,"
	" uid INTEGER NOT NULL, created_ns INTEGER NOT NULL, finished_ns INTEGER NOT NULL DEFAULT 0,"
	" n_modified INTEGER NOT NULL DEFAULT 0, n_added INTEGER NOT NULL DEFAULT 0,"
	" n_deleted INTEGER NOT NULL DEFAULT 0, bytes_new INTEGER NOT NULL DEFAULT 0,"
	" backup_ns INTEGER NOT NULL DEFAULT 0, seal_ns INTEGER NOT NULL DEFAULT 0,"
	" apply_ns INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX txn_by_pkg ON txn(pkg_dev, pkg_ino, state);"
	"CREATE INDEX txn_by_state ON txn(state);"
	"CREATE INDEX txn_by_pkg_path ON txn(pkg, id);"
	"CREATE TABLE change (txn INTEGER NOT NULL REFERENCES txn(id), path TEXT NOT NULL,"
	" o_mode INTEGER NOT NULL, o_uid INTEGER NOT NULL DEFAULT 0, o_gid INTEGER NOT NULL DEFAULT 0,"
	" o_size INTEGER NOT NULL DEFAULT 0, o_mtime_ns INTEGER NOT NULL DEFAULT 0,"
	" o_ctime_ns INTEGER NOT NULL DEFAULT 0, o_dev INTEGER NOT NULL DEFAULT 0,"
	" o_ino INTEGER NOT NULL DEFAULT 0, o_hash BLOB, n_mode INTEGER NOT NULL DEFAULT 0,"
	" n_uid INTEGER NOT NULL DEFAULT 0, n_gid INTEGER NOT NULL DEFAULT 0,"
	" n_size INTEGER NOT NULL DEFAULT 0, n_mtime_ns INTEGER NOT NULL DEFAULT 0, n_hash BLOB,"
	" status TEXT NOT NULL DEFAULT '', applied INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (txn, path)) WITHOUT ROWID;"
	"CREATE INDEX change_by_ohash ON change(o_hash) WHERE o_hash IS NOT NULL;"
	"CREATE INDEX change_by_nhash ON change(n_hash) WHERE n_hash IS NOT NULL;"
	"CREATE TABLE blob (hash BLOB PRIMARY KEY, size INTEGER NOT NULL,"
	" stored_size INTEGER NOT NULL, encoding INTEGER NOT NULL DEFAULT 0,"
	" created_ns INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ns INTEGER NOT NULL,"
	" uid INTEGER NOT NULL, pid INTEGER NOT NULL, txn INTEGER NOT NULL DEFAULT 0,"
	" event TEXT NOT NULL, detail TEXT);"
	"CREATE INDEX audit_by_time ON audit(time_ns);"
	"CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;"
	"INSERT INTO txn(state, pkg, pkg_dev, pkg_ino, uid, created_ns, finished_ns, n_modified)"
	" VALUES (4, '/old/pkg', 1, 2, 0, 1000000000, 2000000000, 1);"
	"INSERT INTO blob(hash, size, stored_size, created_ns) VALUES (x'00', 5, 5, 1500000000);"
	"PRAGMA user_version = 1;";

Test(store_schema, a_version_1_store_is_migrated_forward_keeping_its_history)
{
	struct store_txn *t = NULL;
	char dir[PATH_MAX], db[PATH_MAX];
	struct store *old = NULL;
	sqlite3 *h;

	snprintf(dir, sizeof(dir), "%s/v1", root);
	cr_assert_eq(mkdir(dir, 0700), 0);
	snprintf(db, sizeof(db), "%s/index.db", dir);
	cr_assert_eq(sqlite3_open(db, &h), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(h, schema_v1, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(h);
	cr_assert_eq(store_open(dir, 0, &old), 0);
	cr_assert_eq(user_version(db), DB_SCHEMA_VERSION);
	cr_assert_eq(store_txn_load(old, 1, &t), 0);
	cr_assert_str_eq(t->pkg, "/old/pkg");
	cr_assert_eq(t->state, STORE_TXN_COMMITTED);
	cr_assert_eq(t->n_modified, 1);
	cr_assert_eq(t->restore_of, 0);
	store_txn_free(t);
	store_close(old);
}
