/* SPDX-License-Identifier: MIT */
/* The SQLite index: connection, schema and migrations, cached statements. */
#ifndef CJFS_STORE_DB_H
#define CJFS_STORE_DB_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

/* The schema this binary writes; PRAGMA user_version of a current store. */
#define DB_SCHEMA_VERSION 5

struct db;

/*
 * Open or create the index at path: WAL, busy_timeout, foreign keys,
 * synchronous=NORMAL (FULL for durable batches, see store.h), schema created or migrated
 * forward. -EPROTO if the file's schema is newer than DB_SCHEMA_VERSION.
 * Not thread-safe: the caller serialises use (store->lock).
 */
int db_open(const char *path, bool relaxed, struct db **ret);
/* Finalize cached statements and close; NULL is a no-op. */
void db_close(struct db *db);

/* SQLite result code to -errno: BUSY/LOCKED -EBUSY, FULL -ENOSPC, NOMEM -ENOMEM, else -EIO. */
int db_errno(int rc);

/* Run SQL without results; 0 or -errno. */
int db_exec(struct db *db, const char *sql);

/*
 * A cached prepared statement for sql (which must be a string literal: the
 * cache keys on its address), reset with bindings cleared. NULL on failure
 * with *ret_err set. Owned by the cache.
 */
sqlite3_stmt *db_stmt(struct db *db, const char *sql, int *ret_err);

/* Step a statement to completion (no rows expected); 0 or -errno. Resets it. */
int db_step_done(struct db *db, sqlite3_stmt *st);

sqlite3 *db_handle(struct db *db);

/* Bind helpers that return 0 or -errno. */
/* Column i of the current row as a malloc'd string; NULL if NULL (or out of memory). */
char *db_column_strdup(sqlite3_stmt *st, int i);

int db_bind_text(sqlite3_stmt *st, int i, const char *s);
int db_bind_blob(sqlite3_stmt *st, int i, const void *p, int n);
int db_bind_i64(sqlite3_stmt *st, int i, int64_t v);

/* Last error message of the connection, for debug logs. */
const char *db_errmsg(struct db *db);

#endif
