// SPDX-License-Identifier: MIT
/* SQLite connection setup, the versioned schema and a small statement cache. */
#include "db.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define DB_STMT_CACHE 160

struct db {
	sqlite3 *h;
	size_t nstmt;
	struct {
		const char *sql;
		sqlite3_stmt *st;
	} stmt[DB_STMT_CACHE];
};

/*
 * Schema version 1. Paths are TEXT compared bytewise (BINARY collation), so
 * ORDER BY path puts a directory before everything below it.
 */
static const char schema_v1[] =
	"CREATE TABLE txn ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" state INTEGER NOT NULL,"
	" pkg TEXT NOT NULL,"
	" pkg_dev INTEGER NOT NULL,"
	" pkg_ino INTEGER NOT NULL,"
	" mountpoint TEXT,"
	" pid INTEGER NOT NULL DEFAULT 0,"
	" command TEXT,"
	" undo_of INTEGER NOT NULL DEFAULT 0,"
	" uid INTEGER NOT NULL,"
	" created_ns INTEGER NOT NULL,"
	" finished_ns INTEGER NOT NULL DEFAULT 0,"
	" n_modified INTEGER NOT NULL DEFAULT 0,"
	" n_added INTEGER NOT NULL DEFAULT 0,"
	" n_deleted INTEGER NOT NULL DEFAULT 0,"
	" bytes_new INTEGER NOT NULL DEFAULT 0,"
	" backup_ns INTEGER NOT NULL DEFAULT 0,"
	" seal_ns INTEGER NOT NULL DEFAULT 0,"
	" apply_ns INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX txn_by_pkg ON txn(pkg_dev, pkg_ino, state);"
	"CREATE INDEX txn_by_state ON txn(state);"
	"CREATE INDEX txn_by_pkg_path ON txn(pkg, id);"
	"CREATE TABLE change ("
	" txn INTEGER NOT NULL REFERENCES txn(id),"
	" path TEXT NOT NULL,"
	" o_mode INTEGER NOT NULL,"
	" o_uid INTEGER NOT NULL DEFAULT 0,"
	" o_gid INTEGER NOT NULL DEFAULT 0,"
	" o_size INTEGER NOT NULL DEFAULT 0,"
	" o_mtime_ns INTEGER NOT NULL DEFAULT 0,"
	" o_ctime_ns INTEGER NOT NULL DEFAULT 0,"
	" o_dev INTEGER NOT NULL DEFAULT 0,"
	" o_ino INTEGER NOT NULL DEFAULT 0,"
	" o_hash BLOB,"
	" n_mode INTEGER NOT NULL DEFAULT 0,"
	" n_uid INTEGER NOT NULL DEFAULT 0,"
	" n_gid INTEGER NOT NULL DEFAULT 0,"
	" n_size INTEGER NOT NULL DEFAULT 0,"
	" n_mtime_ns INTEGER NOT NULL DEFAULT 0,"
	" n_hash BLOB,"
	" status TEXT NOT NULL DEFAULT '',"
	" applied INTEGER NOT NULL DEFAULT 0,"
	" PRIMARY KEY (txn, path)) WITHOUT ROWID;"
	"CREATE INDEX change_by_ohash ON change(o_hash) WHERE o_hash IS NOT NULL;"
	"CREATE INDEX change_by_nhash ON change(n_hash) WHERE n_hash IS NOT NULL;"
	"CREATE TABLE blob ("
	" hash BLOB PRIMARY KEY,"
	" size INTEGER NOT NULL,"
	" stored_size INTEGER NOT NULL,"
	" encoding INTEGER NOT NULL DEFAULT 0,"
	" created_ns INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE audit ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time_ns INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" pid INTEGER NOT NULL,"
	" txn INTEGER NOT NULL DEFAULT 0,"
	" event TEXT NOT NULL,"
	" detail TEXT);"
	"CREATE INDEX audit_by_time ON audit(time_ns);"
	"CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit"
	" BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;"
	"CREATE TABLE config (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;";

/*
 * Version 2: history you can trust (issue 4).
 *   txn:   restore_of (a restore into PKG is a transaction too), what the
 *          originals cost (n_orig, bytes_orig) and the timings of the commit
 *          steps (check_ns: conflict check, stage_ns: write and verify the
 *          temporaries, commit_ns: the whole commit; apply_ns is the promote).
 *   blob:  used_ns, the last time a writer stored or reused the blob: gc keeps
 *          blobs used within its grace period, because a writer may be about
 *          to insert the row that refers to them.
 *   kept:  blobs a transaction keeps beyond its change rows (what commit
 *          --force overwrote), so gc counts them as referenced.
 *   indexes for log --pkg, show (audit by transaction), undo lookups and gc.
 */
static const char schema_v2[] =
	"ALTER TABLE txn ADD COLUMN restore_of INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE txn ADD COLUMN n_orig INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE txn ADD COLUMN bytes_orig INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE txn ADD COLUMN check_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE txn ADD COLUMN stage_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE txn ADD COLUMN commit_ns INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE blob ADD COLUMN used_ns INTEGER NOT NULL DEFAULT 0;"
	"UPDATE blob SET used_ns = created_ns;"
	"CREATE INDEX txn_by_undo ON txn(undo_of) WHERE undo_of != 0;"
	"CREATE INDEX txn_by_restore ON txn(restore_of) WHERE restore_of != 0;"
	"CREATE INDEX audit_by_txn ON audit(txn, id);"
	"CREATE INDEX blob_by_used ON blob(used_ns);"
	"CREATE TABLE kept ("
	" txn INTEGER NOT NULL REFERENCES txn(id),"
	" path TEXT NOT NULL,"
	" mode INTEGER NOT NULL,"
	" hash BLOB NOT NULL,"
	" time_ns INTEGER NOT NULL,"
	" why TEXT NOT NULL,"
	" PRIMARY KEY (txn, path, hash)) WITHOUT ROWID;"
	"CREATE INDEX kept_by_hash ON kept(hash);";

/*
 * Schema version 3: originals staged while a transaction is open.
 *   staged: where an original's bytes are in txn/<txn>/originals (offset,
 *           size), by hash; rows go with the transaction's directory.
 */
static const char schema_v3[] = "CREATE TABLE staged ("
				" hash BLOB NOT NULL,"
				" txn INTEGER NOT NULL,"
				" off INTEGER NOT NULL,"
				" size INTEGER NOT NULL,"
				" PRIMARY KEY (hash, txn)) WITHOUT ROWID;"
				"CREATE INDEX staged_by_txn ON staged(txn);";

/*
 * Schema version 4: how far the change log of an open transaction
 * (txn/<id>/changes, store/changelog.c) has been folded into change rows.
 */
static const char schema_v4[] = "ALTER TABLE txn ADD COLUMN changes_off INTEGER NOT NULL DEFAULT 0;";

/*
 * Schema version 5: what else a commit promotes.
 *   change: o_xattrs, n_xattrs, the extended attributes (ACLs included) of
 *           a changed file or directory before and after, as one list each
 *           (store/xattrs.c), NULL where they were not recorded (rows from
 *           before, other types); o_rdev, n_rdev, the device a device node
 *           stands for; n_dev, n_ino, the identity of the new state
 *           (names of one file in the new tree become hard links in PKG).
 */
static const char schema_v5[] = "ALTER TABLE change ADD COLUMN o_xattrs BLOB;"
				"ALTER TABLE change ADD COLUMN n_xattrs BLOB;"
				"ALTER TABLE change ADD COLUMN o_rdev INTEGER NOT NULL DEFAULT 0;"
				"ALTER TABLE change ADD COLUMN n_rdev INTEGER NOT NULL DEFAULT 0;"
				"ALTER TABLE change ADD COLUMN n_dev INTEGER NOT NULL DEFAULT 0;"
				"ALTER TABLE change ADD COLUMN n_ino INTEGER NOT NULL DEFAULT 0;";

/* migrations[v] brings a store from version v to v + 1. */
static const char *const migrations[DB_SCHEMA_VERSION] = {
	schema_v1,
	schema_v2,
	schema_v3,
	schema_v4,
	schema_v5,
};

int db_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return -EIO;
	}
}

sqlite3 *db_handle(struct db *db)
{
	return db->h;
}

const char *db_errmsg(struct db *db)
{
	return sqlite3_errmsg(db->h);
}

int db_exec(struct db *db, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(db->h, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_debug("sqlite: %s", msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return db_errno(rc);
	}
	return 0;
}

static int db_user_version(struct db *db, int *ret)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(db->h, "PRAGMA user_version", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return db_errno(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : db_errno(rc);
}

/* Bring the schema forward one version at a time, each step atomic. */
static int db_migrate(struct db *db)
{
	int v = 0, r;

	/*
	 * Current already (the usual case): no write lock, so opening the store
	 * never waits for another process's write, even a stopped one.
	 */
	r = db_user_version(db, &v);
	if (r < 0)
		return r;
	if (v == DB_SCHEMA_VERSION)
		return 0;
	if (v > DB_SCHEMA_VERSION)
		return -EPROTO;
	r = db_exec(db, "BEGIN IMMEDIATE");
	if (r < 0)
		return r;
	r = db_user_version(db, &v);
	if (r < 0)
		goto out_rollback;
	if (v > DB_SCHEMA_VERSION) {
		r = -EPROTO;
		goto out_rollback;
	}
	for (; v < DB_SCHEMA_VERSION; v++) {
		char pragma[64];

		r = db_exec(db, migrations[v]);
		if (r < 0)
			goto out_rollback;
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", v + 1);
		r = db_exec(db, pragma);
		if (r < 0)
			goto out_rollback;
	}
	return db_exec(db, "COMMIT");

out_rollback:
	(void)db_exec(db, "ROLLBACK");
	return r;
}

int db_open(const char *path, bool relaxed, struct db **ret)
{
	struct db *db = calloc(1, sizeof(*db));
	int rc, r;

	if (!db)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &db->h,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				     SQLITE_OPEN_EXRESCODE,
			     NULL);
	if (rc != SQLITE_OK) {
		r = db_errno(rc);
		log_debug("cannot open '%s': %s", path, db->h ? sqlite3_errmsg(db->h) : "");
		goto out_close;
	}
	/* Other processes (daemon, CLI) write concurrently; wait for them, not fail. */
	sqlite3_busy_timeout(db->h, 30000);
	r = db_exec(db, "PRAGMA journal_mode=WAL");
	if (r < 0)
		goto out_close;
	/*
	 * NORMAL: a commit survives the death of the process at once and reaches
	 * the disk with the next synced one. Commit points ask for FULL
	 * (store_batch_begin_durable), whose sync of the WAL covers every frame
	 * before it: one device flush per commit point, not one per row.
	 */
	(void)relaxed;
	r = db_exec(db, "PRAGMA synchronous=NORMAL");
	if (r < 0)
		goto out_close;
	r = db_exec(db, "PRAGMA foreign_keys=ON");
	if (r < 0)
		goto out_close;
	r = db_migrate(db);
	if (r < 0)
		goto out_close;
	*ret = db;
	return 0;

out_close:
	db_close(db);
	return r;
}

void db_close(struct db *db)
{
	if (!db)
		return;
	for (size_t i = 0; i < db->nstmt; i++)
		sqlite3_finalize(db->stmt[i].st);
	sqlite3_close(db->h);
	free(db);
}

sqlite3_stmt *db_stmt(struct db *db, const char *sql, int *ret_err)
{
	sqlite3_stmt *st;
	int rc;

	for (size_t i = 0; i < db->nstmt; i++) {
		if (db->stmt[i].sql == sql) {
			st = db->stmt[i].st;
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			return st;
		}
	}
	if (db->nstmt == DB_STMT_CACHE) {
		*ret_err = -ENOSPC; /* programmer error: raise DB_STMT_CACHE */
		return NULL;
	}
	rc = sqlite3_prepare_v3(db->h, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL);
	if (rc != SQLITE_OK) {
		log_debug("cannot prepare '%s': %s", sql, sqlite3_errmsg(db->h));
		*ret_err = db_errno(rc);
		return NULL;
	}
	db->stmt[db->nstmt].sql = sql;
	db->stmt[db->nstmt].st = st;
	db->nstmt++;
	return st;
}

int db_step_done(struct db *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		log_debug("sqlite: %s", sqlite3_errmsg(db->h));
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_errno(rc);
}

char *db_column_strdup(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

int db_bind_text(sqlite3_stmt *st, int i, const char *s)
{
	int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);

	return db_errno(rc);
}

int db_bind_blob(sqlite3_stmt *st, int i, const void *p, int n)
{
	int rc = p ? sqlite3_bind_blob(st, i, p, n, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);

	return db_errno(rc);
}

int db_bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
	return db_errno(sqlite3_bind_int64(st, i, v));
}
