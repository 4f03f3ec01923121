// SPDX-License-Identifier: MIT
/*
 * Retention: drop the history of finished transactions beyond the policy,
 * then the blobs nothing refers to any more. The order is what makes a crash
 * harmless: rows go first, in one SQLite transaction; files go after, each
 * only once its row is seen gone inside a SQLite write transaction (the
 * same kind a writer publishes a blob in, blob.c), so a writer that
 * re-created the row in between keeps its file. A blob file without a row
 * is an orphan: a crash between the two steps leaves some, and every gc
 * removes them.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Blob files deleted per SQLite write transaction: short, so writers are not held up. */
#define GC_UNLINK_BATCH 64

/* A blob is referenced when a row of a transaction that stays refers to it. */
#define GC_REFERENCED                                                                              \
	"(EXISTS (SELECT 1 FROM change c WHERE c.o_hash = b.hash"                                  \
	" AND c.txn NOT IN (SELECT id FROM temp.gc_drop))"                                         \
	" OR EXISTS (SELECT 1 FROM change c WHERE c.n_hash = b.hash"                               \
	" AND c.txn NOT IN (SELECT id FROM temp.gc_drop))"                                         \
	" OR EXISTS (SELECT 1 FROM kept k WHERE k.hash = b.hash"                                   \
	" AND k.txn NOT IN (SELECT id FROM temp.gc_drop)))"

/* Finished: committed, rolled back, undone. Nothing else is ever dropped. */
#define GC_FINISHED "state IN (4, 5, 6)"

void store_gc_policy_init(struct store_gc_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->keep_last = -1;
	p->older_than_ns = -1;
	p->max_size = -1;
	/* Longer than any gap between storing a blob and writing the row that refers to it. */
	p->grace_ns = 3600LL * 1000000000LL;
}

void store_gc_report_release(struct store_gc_report *r)
{
	free(r->dropped);
	memset(r, 0, sizeof(*r));
}

static int gc_exec_i64(struct store *s, const char *sql, int64_t a, int64_t b)
{
	int r = 0;
	sqlite3_stmt *st = db_stmt(s->db, sql, &r);

	if (!st)
		return r;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	return db_step_done(s->db, st);
}

/* One integer from a query with up to two bindings; 0 when there is no row. */
static int gc_query_i64(struct store *s, const char *sql, int64_t a, int64_t b, int64_t *ret)
{
	int r = 0, rc;
	sqlite3_stmt *st = db_stmt(s->db, sql, &r);

	if (!st)
		return r;
	sqlite3_bind_int64(st, 1, a);
	sqlite3_bind_int64(st, 2, b);
	rc = sqlite3_step(st);
	*ret = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_errno(rc);
}

/* Drop the oldest finished transactions until the referenced blobs fit in max_size. */
static int gc_pick_max_size(struct store *s, const struct store_gc_policy *p, int64_t cutoff)
{
	static const char q_size[] = "SELECT COALESCE(SUM(b.stored_size), 0) FROM blob b"
				     " WHERE b.used_ns >= ?1 OR " GC_REFERENCED;
	static const char q_next[] =
		"SELECT id FROM txn WHERE " GC_FINISHED
		" AND id NOT IN (SELECT id FROM temp.gc_drop) ORDER BY id LIMIT 1";
	static const char q_add[] = "INSERT INTO temp.gc_drop(id, why) VALUES (?, 'max-size')";
	static const char q_freed[] =
		"SELECT COALESCE(SUM(b.stored_size), 0) FROM blob b WHERE b.hash IN"
		" (SELECT o_hash FROM change WHERE txn = ?2 AND o_hash IS NOT NULL"
		" UNION SELECT n_hash FROM change WHERE txn = ?2 AND n_hash IS NOT NULL"
		" UNION SELECT hash FROM kept WHERE txn = ?2)"
		" AND b.used_ns < ?1 AND NOT " GC_REFERENCED;
	int64_t size, next, freed = 0;
	int r;

	r = gc_query_i64(s, q_size, cutoff, 0, &size);
	while (r == 0 && size > p->max_size) {
		r = gc_query_i64(s, q_next, 0, 0, &next);
		if (r < 0 || next == 0)
			break; /* nothing more may go: the goal is out of reach */
		r = gc_exec_i64(s, q_add, next, 0);
		if (r == 0)
			r = gc_query_i64(s, q_freed, cutoff, next, &freed);
		size -= freed;
	}
	return r;
}

static const char *gc_why_static(const char *why)
{
	if (strcmp(why, "keep-last") == 0)
		return "keep-last";
	if (strcmp(why, "older-than") == 0)
		return "older-than";
	return "max-size";
}

static int gc_list_dropped(struct store *s, struct store_gc_report *rep)
{
	static const char q[] = "SELECT id, why FROM temp.gc_drop ORDER BY id";
	int r = 0, rc;
	sqlite3_stmt *st = db_stmt(s->db, q, &r);

	if (!st)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_gc_dropped *nv =
			realloc(rep->dropped, (rep->n_dropped + 1) * sizeof(*nv));

		if (!nv) {
			r = -ENOMEM;
			break;
		}
		rep->dropped = nv;
		nv[rep->n_dropped].id = sqlite3_column_int64(st, 0);
		nv[rep->n_dropped].why = gc_why_static((const char *)sqlite3_column_text(st, 1));
		rep->n_dropped++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_errno(rc);
	sqlite3_reset(st);
	return r;
}

static char *gc_detail(const struct store_gc_policy *p, const char *why)
{
	char buf[32];

	if (strcmp(why, "keep-last") == 0)
		return util_xasprintf("history dropped by gc: beyond the last %lld transaction(s)",
				      (long long)p->keep_last);
	if (strcmp(why, "older-than") == 0)
		return util_xasprintf("history dropped by gc: finished more than %s ago",
				      util_fmt_duration(p->older_than_ns, buf));
	return util_xasprintf("history dropped by gc: the store is over its maximum size of %s",
			      util_fmt_size((uint64_t)p->max_size, buf));
}

/* Phase A: decide, and delete the rows, in one SQLite transaction. */
static int gc_rows(struct store *s, const struct store_gc_policy *p, struct store_gc_report *rep)
{
	static const char q_before[] = "SELECT COALESCE(SUM(stored_size), 0) FROM blob";
	static const char q_keep[] = "INSERT OR IGNORE INTO temp.gc_drop(id, why)"
				     " SELECT id, 'keep-last' FROM txn WHERE " GC_FINISHED
				     " ORDER BY id DESC LIMIT -1 OFFSET ?";
	static const char q_old[] =
		"INSERT OR IGNORE INTO temp.gc_drop(id, why) SELECT id, 'older-than' FROM txn"
		" WHERE " GC_FINISHED " AND (CASE WHEN finished_ns > 0 THEN finished_ns"
		" ELSE created_ns END) < ?";
	static const char q_cand[] = "INSERT INTO temp.gc_blob(hash, stored_size, encoding)"
				     " SELECT b.hash, b.stored_size, b.encoding FROM blob b"
				     " WHERE b.used_ns < ?1 AND NOT " GC_REFERENCED;
	static const char q_count[] = "SELECT COUNT(*) FROM temp.gc_blob";
	static const char q_bytes[] = "SELECT COALESCE(SUM(stored_size), 0) FROM temp.gc_blob";
	static const char q_del_change[] =
		"DELETE FROM change WHERE txn IN (SELECT id FROM temp.gc_drop)";
	static const char q_del_kept[] =
		"DELETE FROM kept WHERE txn IN (SELECT id FROM temp.gc_drop)";
	static const char q_del_txn[] = "DELETE FROM txn WHERE id IN (SELECT id FROM temp.gc_drop)";
	static const char q_del_blob[] =
		"DELETE FROM blob WHERE hash IN (SELECT hash FROM temp.gc_blob)";
	int64_t now = util_now_ns(), cutoff = now - p->grace_ns, v;
	int r;

	/* Durable before any file goes: a power cut must not bring back rows of deleted blobs. */
	r = store_batch_begin_durable(s);
	if (r < 0)
		return r;
	/* Per connection; prepared statements below refer to them, so they exist first. */
	r = db_exec(s->db,
		    "CREATE TEMP TABLE IF NOT EXISTS gc_drop(id INTEGER PRIMARY KEY,"
		    " why TEXT NOT NULL);"
		    "CREATE TEMP TABLE IF NOT EXISTS gc_blob(hash BLOB PRIMARY KEY,"
		    " stored_size INTEGER NOT NULL, encoding INTEGER NOT NULL) WITHOUT ROWID;"
		    "DELETE FROM temp.gc_drop; DELETE FROM temp.gc_blob;");
	if (r < 0)
		goto out_rollback;
	r = gc_query_i64(s, q_before, 0, 0, &v);
	if (r < 0)
		goto out_rollback;
	rep->size_before = (uint64_t)v;
	if (p->keep_last >= 0) {
		r = gc_exec_i64(s, q_keep, p->keep_last, 0);
		if (r < 0)
			goto out_rollback;
	}
	if (p->older_than_ns >= 0) {
		r = gc_exec_i64(s, q_old, now - p->older_than_ns, 0);
		if (r < 0)
			goto out_rollback;
	}
	if (p->max_size >= 0) {
		r = gc_pick_max_size(s, p, cutoff);
		if (r < 0)
			goto out_rollback;
	}
	r = gc_list_dropped(s, rep);
	if (r < 0)
		goto out_rollback;
	r = gc_exec_i64(s, q_cand, cutoff, 0);
	if (r == 0)
		r = gc_query_i64(s, q_count, 0, 0, &v);
	if (r < 0)
		goto out_rollback;
	rep->blobs = (size_t)v;
	r = gc_query_i64(s, q_bytes, 0, 0, &v);
	if (r < 0)
		goto out_rollback;
	rep->bytes = (uint64_t)v;
	rep->size_after = rep->size_before - rep->bytes;
	if (p->dry_run) {
		store_batch_rollback(s);
		return 0;
	}
	for (size_t i = 0; i < rep->n_dropped; i++) {
		char *detail = gc_detail(p, rep->dropped[i].why);

		r = detail ? store_audit_locked(s, rep->dropped[i].id, "BACKUP_DELETED", detail)
			   : -ENOMEM;
		free(detail);
		if (r < 0)
			goto out_rollback;
	}
	if (rep->blobs) {
		char size[32], *detail;

		detail =
			util_xasprintf("gc deleted %zu blob(s) no transaction refers to any more, %s",
				       rep->blobs, util_fmt_size(rep->bytes, size));
		r = detail ? store_audit_locked(s, 0, "BACKUP_DELETED", detail) : -ENOMEM;
		free(detail);
		if (r < 0)
			goto out_rollback;
	}
	r = db_exec(s->db, q_del_change);
	if (r == 0)
		r = db_exec(s->db, q_del_kept);
	if (r == 0)
		r = db_exec(s->db, q_del_txn);
	if (r == 0)
		r = db_exec(s->db, q_del_blob);
	if (r < 0)
		goto out_rollback;
	return store_batch_commit(s);

out_rollback:
	store_batch_rollback(s);
	return r;
}

/* 1 if the blob has an index row, 0 if not; caller holds s->lock. */
static int gc_has_row_locked(struct store *s, const uint8_t hash[HASH_LEN])
{
	static const char q[] = "SELECT 1 FROM blob WHERE hash = ?";
	int r = 0, rc;
	sqlite3_stmt *st = db_stmt(s->db, q, &r);

	if (!st)
		return r;
	sqlite3_bind_blob(st, 1, hash, HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_errno(rc);
}

/* 1 if a change row or a kept file refers to the hash; caller holds s->lock. */
static int gc_referenced_locked(struct store *s, const uint8_t hash[HASH_LEN])
{
	static const char q[] = "SELECT 1 FROM change WHERE o_hash = ?1 OR n_hash = ?1"
				" UNION ALL SELECT 1 FROM kept WHERE hash = ?1 LIMIT 1";
	int r = 0, rc;
	sqlite3_stmt *st = db_stmt(s->db, q, &r);

	if (!st)
		return r;
	sqlite3_bind_blob(st, 1, hash, HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_errno(rc);
}

/* Unlink both forms of a blob whose row is gone; ENOENT is fine. */
static int gc_unlink_blob(struct store *s, const uint8_t hash[HASH_LEN])
{
	static const int forms[] = { STORE_BLOB_RAW, STORE_BLOB_ZSTD };
	char rel[72];

	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		int r;

		store_blob_relname(hash, forms[i], rel);
		r = util_unlinkat(s->objfd, rel, 0);
		if (r < 0 && r != -ENOENT)
			return r;
	}
	return 0;
}

/* Phase B: the files of the blobs whose rows phase A deleted. */
static int gc_files(struct store *s)
{
	static const char q[] = "SELECT hash FROM temp.gc_blob";
	uint8_t(*v)[HASH_LEN] = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			const void *h = sqlite3_column_blob(st, 0);

			if (!h || sqlite3_column_bytes(st, 0) != HASH_LEN)
				continue;
			if (n == cap) {
				void *nv = realloc(v, (cap = cap ? cap * 2 : 256) * sizeof(*v));

				if (!nv) {
					r = -ENOMEM;
					break;
				}
				v = nv;
			}
			memcpy(v[n++], h, HASH_LEN);
		}
		if (r == 0 && rc != SQLITE_DONE)
			r = db_errno(rc);
		sqlite3_reset(st);
	}
	store_unlock(s);
	for (size_t i = 0; i < n && r == 0; i += GC_UNLINK_BATCH) {
		r = store_batch_begin(s);
		if (r < 0)
			break;
		for (size_t j = i; j < n && j < i + GC_UNLINK_BATCH && r >= 0; j++) {
			/* A writer stored the same content again since phase A: it is needed. */
			r = gc_has_row_locked(s, v[j]);
			if (r == 0)
				r = gc_unlink_blob(s, v[j]);
		}
		if (r < 0) {
			store_batch_rollback(s);
			break;
		}
		r = store_batch_commit(s);
	}
	free(v);
	return r < 0 ? r : 0;
}

/* Phase C: blob files without a row, in one objects/ab/ directory. */
static int gc_orphans_in(struct store *s, const char *sub, bool dry_run,
			 struct store_gc_report *rep)
{
	struct dirent *de;
	DIR *d;
	int fd, r;

	fd = util_openat(s->objfd, sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd == -ENOENT || fd == -ENOTDIR ? 0 : fd;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return -errno;
	}
	/* Inside a write transaction: no writer is between its row and its rename. */
	r = store_batch_begin(s);
	if (r < 0)
		goto out;
	while ((de = readdir(d)) && r >= 0) {
		uint8_t hash[HASH_LEN];
		struct stat st;

		if (store_blob_parse_name(de->d_name, hash, NULL) < 0)
			continue; /* not a blob: leave it alone */
		r = gc_has_row_locked(s, hash);
		if (r != 0)
			continue;
		/*
		 * No row, but the index refers to it (its writer was killed
		 * between the file and the row): index it, never delete it.
		 */
		r = gc_referenced_locked(s, hash);
		if (r == 1) {
			r = dry_run ? 0 : store_blob_adopt(s, hash);
			if (r == 0)
				rep->adopted++;
			if (r == -EBADMSG || r == -ENOENT)
				r = 0; /* a corrupt copy was dropped; verify reports the loss */
			continue;
		}
		if (r < 0)
			break;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!dry_run) {
			r = util_unlinkat(dirfd(d), de->d_name, 0);
			if (r == -ENOENT) {
				r = 0;
				continue;
			}
			if (r < 0)
				break;
		}
		rep->orphans++;
		rep->orphan_bytes += (uint64_t)st.st_size;
	}
	if (r < 0)
		store_batch_rollback(s);
	else
		r = store_batch_commit(s);
out:
	closedir(d);
	return r;
}

int store_gc_orphans(struct store *s, bool dry_run, struct store_gc_report *rep)
{
	int fd = util_openat(s->objfd, ".", O_RDONLY | O_DIRECTORY, 0);
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return -errno;
	}
	while ((de = readdir(d)) && r >= 0) {
		if (strlen(de->d_name) != 2 || !strchr("0123456789abcdef", de->d_name[0]) ||
		    !strchr("0123456789abcdef", de->d_name[1]))
			continue;
		r = gc_orphans_in(s, de->d_name, dry_run, rep);
	}
	closedir(d);
	return r;
}

int store_gc(struct store *s, const struct store_gc_policy *p, struct store_gc_report *ret)
{
	struct store_gc_report rep = { 0 };
	int r;

	/* A change an open transaction has only logged still refers to its original. */
	r = store_changelog_fold_open(s);
	if (r == 0)
		r = gc_rows(s, p, &rep);
	if (r < 0) {
		log_debug_errno(r, "gc: cannot drop history from the index");
		goto out;
	}
	if (!p->dry_run) {
		/* Their directories are normally gone already; a crash may have left one. */
		for (size_t i = 0; i < rep.n_dropped; i++)
			(void)store_txn_remove_dir(s, rep.dropped[i].id);
		r = gc_files(s);
		if (r < 0) {
			log_debug_errno(r, "gc: cannot delete blob files");
			goto out;
		}
	}
	r = store_gc_orphans(s, p->dry_run, &rep);
	if (r < 0)
		log_debug_errno(r, "gc: cannot remove orphan blob files");
	else if (!p->dry_run && (rep.blobs || rep.orphans))
		r = store_sync(s);
out:
	if (r < 0) {
		store_gc_report_release(&rep);
		return r;
	}
	*ret = rep;
	return 0;
}
