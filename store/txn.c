// SPDX-License-Identifier: MIT
/*
 * Transaction records and their change sets in the index: begin, state
 * transitions (each with its audit event in the same SQLite transaction),
 * per-transaction directories and locks, and the rows of touched paths.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"

const char *store_txn_state_name(enum store_txn_state st)
{
	switch (st) {
	case STORE_TXN_OPEN:
		return "open";
	case STORE_TXN_SEALED:
		return "sealed";
	case STORE_TXN_COMMITTING:
		return "committing";
	case STORE_TXN_COMMITTED:
		return "committed";
	case STORE_TXN_ROLLED_BACK:
		return "rolled back";
	case STORE_TXN_UNDONE:
		return "undone";
	}
	return "unknown";
}

static int txn_mkdirs(struct store *s, int64_t id)
{
	char name[64];
	int dfd, r;

	snprintf(name, sizeof(name), "%lld", (long long)id);
	r = util_mkdirat(s->txnfd, name, 0700);
	if (r < 0 && r != -EEXIST)
		return r;
	dfd = util_openat(s->txnfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (dfd < 0)
		return dfd;
	r = util_mkdirat(dfd, "upper", 0755);
	if (r == 0 || r == -EEXIST)
		r = util_mkdirat(dfd, "work", 0700);
	if (r == -EEXIST)
		r = 0;
	util_close(dfd);
	return r;
}

int store_txn_begin(struct store *s, const char *pkg, const struct stat *pst, const char *command,
		    int64_t undo_of, unsigned flags, int64_t *ret_id, int64_t *ret_other)
{
	static const char q_busy[] = "SELECT id FROM txn WHERE pkg_dev = ? AND pkg_ino = ?"
				     " AND state IN (1, 2, 3) ORDER BY id LIMIT 1";
	static const char q_ins[] = "INSERT INTO txn(state, pkg, pkg_dev, pkg_ino, command,"
				    " undo_of, uid, created_ns) VALUES (1, ?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st;
	int64_t id;
	int r = 0;

	r = store_batch_begin(s);
	if (r < 0)
		return r;
	if (!(flags & STORE_TXN_ALLOW_CONCURRENT)) {
		st = db_stmt(s->db, q_busy, &r);
		if (!st)
			goto out_rollback;
		sqlite3_bind_int64(st, 1, (int64_t)pst->st_dev);
		sqlite3_bind_int64(st, 2, (int64_t)pst->st_ino);
		if (sqlite3_step(st) == SQLITE_ROW) {
			if (ret_other)
				*ret_other = sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
			r = -EBUSY;
			goto out_rollback;
		}
		sqlite3_reset(st);
	}
	st = db_stmt(s->db, q_ins, &r);
	if (!st)
		goto out_rollback;
	db_bind_text(st, 1, pkg);
	sqlite3_bind_int64(st, 2, (int64_t)pst->st_dev);
	sqlite3_bind_int64(st, 3, (int64_t)pst->st_ino);
	db_bind_text(st, 4, command);
	sqlite3_bind_int64(st, 5, undo_of);
	sqlite3_bind_int64(st, 6, (int64_t)getuid());
	sqlite3_bind_int64(st, 7, util_now_ns());
	r = db_step_done(s->db, st);
	if (r < 0)
		goto out_rollback;
	id = sqlite3_last_insert_rowid(db_handle(s->db));
	r = store_audit_locked(s, id, "TXN_BEGIN", pkg);
	if (r < 0)
		goto out_rollback;
	/* Directories first: a committed row always has its layer. */
	r = txn_mkdirs(s, id);
	if (r < 0)
		goto out_rollback;
	r = store_batch_commit(s);
	if (r < 0) {
		(void)store_txn_remove_dir(s, id);
		return r;
	}
	*ret_id = id;
	return 0;

out_rollback:
	store_batch_rollback(s);
	return r;
}

#define TXN_COLUMNS                                                                                \
	"id, state, pkg, pkg_dev, pkg_ino, mountpoint, pid, command, undo_of, created_ns,"         \
	" finished_ns, n_modified, n_added, n_deleted, bytes_new, backup_ns, seal_ns, apply_ns,"   \
	" restore_of, n_orig, bytes_orig, check_ns, stage_ns, commit_ns"

static struct store_txn *txn_from_row(sqlite3_stmt *st)
{
	struct store_txn *t = calloc(1, sizeof(*t));

	if (!t)
		return NULL;
	t->id = sqlite3_column_int64(st, 0);
	t->state = (enum store_txn_state)sqlite3_column_int(st, 1);
	t->pkg = db_column_strdup(st, 2);
	t->pkg_dev = (uint64_t)sqlite3_column_int64(st, 3);
	t->pkg_ino = (uint64_t)sqlite3_column_int64(st, 4);
	t->mountpoint = db_column_strdup(st, 5);
	t->pid = sqlite3_column_int64(st, 6);
	t->command = db_column_strdup(st, 7);
	t->undo_of = sqlite3_column_int64(st, 8);
	t->created_ns = sqlite3_column_int64(st, 9);
	t->finished_ns = sqlite3_column_int64(st, 10);
	t->n_modified = sqlite3_column_int64(st, 11);
	t->n_added = sqlite3_column_int64(st, 12);
	t->n_deleted = sqlite3_column_int64(st, 13);
	t->bytes_new = sqlite3_column_int64(st, 14);
	t->backup_ns = sqlite3_column_int64(st, 15);
	t->seal_ns = sqlite3_column_int64(st, 16);
	t->apply_ns = sqlite3_column_int64(st, 17);
	t->restore_of = sqlite3_column_int64(st, 18);
	t->n_orig = sqlite3_column_int64(st, 19);
	t->bytes_orig = sqlite3_column_int64(st, 20);
	t->check_ns = sqlite3_column_int64(st, 21);
	t->stage_ns = sqlite3_column_int64(st, 22);
	t->commit_ns = sqlite3_column_int64(st, 23);
	if (!t->pkg) {
		store_txn_free(t);
		return NULL;
	}
	return t;
}

void store_txn_free(struct store_txn *t)
{
	if (!t)
		return;
	free(t->pkg);
	free(t->mountpoint);
	free(t->command);
	free(t);
}

int store_txn_load(struct store *s, int64_t id, struct store_txn **ret)
{
	static const char q[] = "SELECT " TXN_COLUMNS " FROM txn WHERE id = ?";
	struct store_txn *t = NULL;
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		t = txn_from_row(st);
		r = t ? 0 : -ENOMEM;
	} else {
		r = rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
	}
	sqlite3_reset(st);
out:
	store_unlock(s);
	if (r == 0)
		*ret = t;
	return r;
}

int store_txn_find_mount(struct store *s, const char *mnt, int64_t *ret_id)
{
	static const char q[] = "SELECT id FROM txn WHERE mountpoint = ? AND state = 1"
				" ORDER BY id DESC LIMIT 1";
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		db_bind_text(st, 1, mnt);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			*ret_id = sqlite3_column_int64(st, 0);
		r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
		sqlite3_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_txn_list_state(struct store *s, enum store_txn_state state, int64_t **ret, size_t *ret_n)
{
	static const char q[] = "SELECT id FROM txn WHERE state = ? ORDER BY id";
	int64_t *ids = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (!st)
		goto out;
	sqlite3_bind_int(st, 1, (int)state);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			int64_t *nids = realloc(ids, (cap = cap ? cap * 2 : 8) * sizeof(*ids));

			if (!nids) {
				r = -ENOMEM;
				break;
			}
			ids = nids;
		}
		ids[n++] = sqlite3_column_int64(st, 0);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_errno(rc);
	sqlite3_reset(st);
out:
	store_unlock(s);
	if (r < 0) {
		free(ids);
		return r;
	}
	*ret = ids;
	*ret_n = n;
	return 0;
}

int store_txn_list(struct store *s, const char *pkg, size_t limit, struct store_txn ***ret,
		   size_t *ret_n)
{
	static const char q_all[] = "SELECT " TXN_COLUMNS " FROM txn ORDER BY id DESC LIMIT ?";
	static const char q_pkg[] = "SELECT " TXN_COLUMNS " FROM txn WHERE pkg = ?"
				    " ORDER BY id DESC LIMIT ?";
	struct store_txn **v = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, pkg ? q_pkg : q_all, &r);
	if (!st)
		goto out;
	if (pkg)
		db_bind_text(st, 1, pkg);
	sqlite3_bind_int64(st, pkg ? 2 : 1, limit ? (int64_t)limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_txn *t;

		if (n == cap) {
			struct store_txn **nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		t = txn_from_row(st);
		if (!t) {
			r = -ENOMEM;
			break;
		}
		v[n++] = t;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_errno(rc);
	sqlite3_reset(st);
out:
	store_unlock(s);
	if (r < 0) {
		for (size_t i = 0; i < n; i++)
			store_txn_free(v[i]);
		free(v);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

int store_txn_set_mount(struct store *s, int64_t id, const char *mnt, int64_t pid)
{
	static const char q[] = "UPDATE txn SET mountpoint = ?, pid = ? WHERE id = ?";
	sqlite3_stmt *st;
	int r = 0;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		db_bind_text(st, 1, mnt);
		sqlite3_bind_int64(st, 2, pid);
		sqlite3_bind_int64(st, 3, id);
		r = db_step_done(s->db, st);
	}
	store_unlock(s);
	return r;
}

static bool state_is_final(enum store_txn_state st)
{
	return st == STORE_TXN_COMMITTED || st == STORE_TXN_ROLLED_BACK || st == STORE_TXN_UNDONE;
}

/*
 * An undo or restore reaching COMMITTED: mark what it reverted UNDONE and
 * record BACKUP_RESTORED for its source, inside the caller's batch. Recovery
 * rolling such a transaction forward goes through here too.
 */
static int txn_finish_synthetic_locked(struct store *s, int64_t id)
{
	static const char q_src[] = "SELECT undo_of, restore_of, pkg FROM txn WHERE id = ?";
	static const char q_undone[] = "UPDATE txn SET state = 6 WHERE id = ? AND state = 4";
	int64_t undo_of = 0, restore_of = 0;
	char *pkg = NULL, *detail = NULL;
	sqlite3_stmt *st;
	int r = 0;

	st = db_stmt(s->db, q_src, &r);
	if (!st)
		return r;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		undo_of = sqlite3_column_int64(st, 0);
		restore_of = sqlite3_column_int64(st, 1);
		pkg = db_column_strdup(st, 2);
	}
	sqlite3_reset(st);
	if (!undo_of && !restore_of)
		goto out;
	if (undo_of) {
		st = db_stmt(s->db, q_undone, &r);
		if (!st)
			goto out;
		sqlite3_bind_int64(st, 1, undo_of);
		r = db_step_done(s->db, st);
		if (r < 0)
			goto out;
		/* 0 rows: gc dropped it meanwhile; PKG is reverted all the same. */
		if (sqlite3_changes(db_handle(s->db)) == 0)
			goto out;
		detail = util_xasprintf("undone by transaction %lld", (long long)id);
	} else {
		detail = util_xasprintf("originals restored into '%s' by transaction %lld",
					pkg ? pkg : "?", (long long)id);
	}
	if (!detail) {
		r = -ENOMEM;
		goto out;
	}
	r = store_audit_locked(s, undo_of ? undo_of : restore_of, "BACKUP_RESTORED", detail);
out:
	free(detail);
	free(pkg);
	return r;
}

int store_txn_transition(struct store *s, int64_t id, enum store_txn_state from,
			 enum store_txn_state to, const char *event, const char *detail)
{
	static const char q[] = "UPDATE txn SET state = ?, finished_ns = ?,"
				" mountpoint = CASE WHEN ? THEN NULL ELSE mountpoint END"
				" WHERE id = ? AND state = ?";
	sqlite3_stmt *st;
	int r;

	r = store_batch_begin_durable(s);
	if (r < 0)
		return r;
	st = db_stmt(s->db, q, &r);
	if (!st)
		goto out_rollback;
	sqlite3_bind_int(st, 1, (int)to);
	sqlite3_bind_int64(st, 2, state_is_final(to) ? util_now_ns() : 0);
	sqlite3_bind_int(st, 3, state_is_final(to));
	sqlite3_bind_int64(st, 4, id);
	sqlite3_bind_int(st, 5, (int)from);
	r = db_step_done(s->db, st);
	if (r < 0)
		goto out_rollback;
	if (sqlite3_changes(db_handle(s->db)) != 1) {
		r = -ESTALE;
		goto out_rollback;
	}
	if (event) {
		r = store_audit_locked(s, id, event, detail);
		if (r < 0)
			goto out_rollback;
	}
	if (to == STORE_TXN_COMMITTED) {
		r = txn_finish_synthetic_locked(s, id);
		if (r < 0)
			goto out_rollback;
	}
	return store_batch_commit(s);

out_rollback:
	store_batch_rollback(s);
	return r;
}

int store_txn_save_stats(struct store *s, const struct store_txn *t)
{
	static const char q[] = "UPDATE txn SET n_modified = ?, n_added = ?, n_deleted = ?,"
				" bytes_new = ?, seal_ns = ?, check_ns = ?, stage_ns = ?,"
				" apply_ns = ?, commit_ns = ?, n_orig = ?, bytes_orig = ?"
				" WHERE id = ?";
	sqlite3_stmt *st;
	int r = 0;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		sqlite3_bind_int64(st, 1, t->n_modified);
		sqlite3_bind_int64(st, 2, t->n_added);
		sqlite3_bind_int64(st, 3, t->n_deleted);
		sqlite3_bind_int64(st, 4, t->bytes_new);
		sqlite3_bind_int64(st, 5, t->seal_ns);
		sqlite3_bind_int64(st, 6, t->check_ns);
		sqlite3_bind_int64(st, 7, t->stage_ns);
		sqlite3_bind_int64(st, 8, t->apply_ns);
		sqlite3_bind_int64(st, 9, t->commit_ns);
		sqlite3_bind_int64(st, 10, t->n_orig);
		sqlite3_bind_int64(st, 11, t->bytes_orig);
		sqlite3_bind_int64(st, 12, t->id);
		r = db_step_done(s->db, st);
	}
	store_unlock(s);
	return r;
}

int store_txn_open_dir(struct store *s, int64_t id, const char *sub, bool readable)
{
	char name[PATH_MAX];

	if (sub)
		snprintf(name, sizeof(name), "%lld/%s", (long long)id, sub);
	else
		snprintf(name, sizeof(name), "%lld", (long long)id);
	return util_openat(s->txnfd, name,
			   (readable ? O_RDONLY : O_PATH) | O_DIRECTORY | O_NOFOLLOW, 0);
}

int store_txn_lock(struct store *s, int64_t id, const char *lockname, bool wait)
{
	char name[128];
	int fd;

	snprintf(name, sizeof(name), "%lld/%s.lock", (long long)id, lockname);
	fd = util_openat(s->txnfd, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fd;
	while (flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
		int r = -errno;

		if (r == -EINTR)
			continue;
		util_close(fd);
		return r;
	}
	return fd;
}

int store_txn_daemon_alive(struct store *s, int64_t id)
{
	char name[128];
	int fd, r = 0;

	/*
	 * A probe, not a lock to keep: no O_CREAT, so that asking (cjfs status,
	 * commit) writes nothing and cannot fail for want of space.
	 */
	snprintf(name, sizeof(name), "%lld/daemon.lock", (long long)id);
	fd = util_openat(s->txnfd, name, O_RDWR | O_NOFOLLOW, 0);
	if (fd == -ENOENT)
		return 0; /* never served, or the transaction's directory is gone */
	if (fd < 0)
		return fd;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		r = errno == EWOULDBLOCK ? 1 : -errno;
		break;
	}
	util_close(fd);
	return r;
}

int store_txn_remove_dir(struct store *s, int64_t id)
{
	char name[64];

	/* Its staged originals go with it; the rows first, then the file. */
	(void)store_stage_forget(s, id);
	snprintf(name, sizeof(name), "%lld", (long long)id);
	return util_rm_rf_at(s->txnfd, name);
}

int store_txn_clear_layer(struct store *s, int64_t id)
{
	static const char *const subs[] = { "upper", "work" };
	int r = 0;

	for (size_t i = 0; i < ARRAY_SIZE(subs) && r == 0; i++) {
		char name[64];

		snprintf(name, sizeof(name), "%lld/%s", (long long)id, subs[i]);
		r = util_rm_rf_at(s->txnfd, name);
		if (r == 0)
			r = util_mkdirat(s->txnfd, name, i == 0 ? 0755 : 0700);
	}
	return r;
}

/* ---- change rows ---- */

static void bind_entry(sqlite3_stmt *st, int i, const struct store_entry *e, bool full)
{
	sqlite3_bind_int64(st, i++, e->mode);
	sqlite3_bind_int64(st, i++, e->uid);
	sqlite3_bind_int64(st, i++, e->gid);
	sqlite3_bind_int64(st, i++, (int64_t)e->size);
	sqlite3_bind_int64(st, i++, e->mtime_ns);
	if (full) {
		sqlite3_bind_int64(st, i++, e->ctime_ns);
		sqlite3_bind_int64(st, i++, (int64_t)e->dev);
		sqlite3_bind_int64(st, i++, (int64_t)e->ino);
	}
	if (e->has_hash)
		sqlite3_bind_blob(st, i, e->hash, HASH_LEN, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* A row's xattr list: NULL when not known, else the list (empty is not NULL). */
static void bind_xattrs(sqlite3_stmt *st, int i, const struct store_entry *e,
			const struct strbuf *list)
{
	if (!e->has_xattrs)
		sqlite3_bind_null(st, i);
	else
		sqlite3_bind_blob(st, i, list->buf ? list->buf : "", (int)list->len, SQLITE_STATIC);
}

static int xattrs_from_row(sqlite3_stmt *st, int i, struct store_entry *e, struct strbuf *list)
{
	int r;

	*list = (struct strbuf)STRBUF_INIT;
	if (sqlite3_column_type(st, i) == SQLITE_NULL)
		return 0;
	r = strbuf_add(list, sqlite3_column_blob(st, i), (size_t)sqlite3_column_bytes(st, i));
	if (r == 0)
		store_entry_set_xattrs(e, list);
	return r;
}

int store_change_insert_locked(struct store *s, int64_t txn, const char *path,
			       const struct store_entry *orig, const struct strbuf *xattrs,
			       bool staged, uint64_t off)
{
	static const char q_staged[] = "INSERT OR IGNORE INTO staged(hash, txn, off, size)"
				       " VALUES (?, ?, ?, ?)";
	static const char q[] = "INSERT OR IGNORE INTO change(txn, path, o_mode, o_uid, o_gid,"
				" o_size, o_mtime_ns, o_ctime_ns, o_dev, o_ino, o_hash, o_xattrs,"
				" o_rdev) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st;
	int r, added;

	st = db_stmt(s->db, q, &r);
	if (!st)
		return r;
	sqlite3_bind_int64(st, 1, txn);
	db_bind_text(st, 2, path);
	bind_entry(st, 3, orig, true);
	if (xattrs)
		bind_xattrs(st, 12, orig, xattrs);
	else
		sqlite3_bind_null(st, 12);
	sqlite3_bind_int64(st, 13, (int64_t)orig->rdev);
	r = db_step_done(s->db, st);
	if (r < 0)
		return r;
	added = sqlite3_changes(db_handle(s->db)) == 1;
	if (added && staged && orig->has_hash) {
		st = db_stmt(s->db, q_staged, &r);
		if (!st)
			return r;
		sqlite3_bind_blob(st, 1, orig->hash, HASH_LEN, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, txn);
		sqlite3_bind_int64(st, 3, (int64_t)off);
		sqlite3_bind_int64(st, 4, (int64_t)orig->size);
		r = db_step_done(s->db, st);
		if (r < 0)
			return r;
	}
	return added;
}

int store_change_record(struct store *s, int64_t txn, const char *path,
			const struct store_entry *orig)
{
	int r = store_batch_begin(s), added;

	if (r < 0)
		return r;
	added = store_change_insert_locked(s, txn, path, orig, NULL, false, 0);
	if (added < 0) {
		store_batch_rollback(s);
		return added;
	}
	r = store_batch_commit(s);
	return r < 0 ? r : added;
}

int store_change_exists(struct store *s, int64_t txn, const char *path)
{
	static const char q[] = "SELECT 1 FROM change WHERE txn = ? AND path = ?";
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		sqlite3_bind_int64(st, 1, txn);
		db_bind_text(st, 2, path);
		rc = sqlite3_step(st);
		r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_errno(rc);
		sqlite3_reset(st);
	}
	store_unlock(s);
	return r;
}

static void entry_from_row(sqlite3_stmt *st, int i, struct store_entry *e, bool full)
{
	const void *h;

	memset(e, 0, sizeof(*e));
	e->mode = (uint32_t)sqlite3_column_int64(st, i++);
	e->uid = (uint32_t)sqlite3_column_int64(st, i++);
	e->gid = (uint32_t)sqlite3_column_int64(st, i++);
	e->size = (uint64_t)sqlite3_column_int64(st, i++);
	e->mtime_ns = sqlite3_column_int64(st, i++);
	if (full) {
		e->ctime_ns = sqlite3_column_int64(st, i++);
		e->dev = (uint64_t)sqlite3_column_int64(st, i++);
		e->ino = (uint64_t)sqlite3_column_int64(st, i++);
	}
	h = sqlite3_column_blob(st, i);
	if (h && sqlite3_column_bytes(st, i) == HASH_LEN) {
		e->has_hash = true;
		memcpy(e->hash, h, HASH_LEN);
	}
}

int store_change_list(struct store *s, int64_t txn, bool only_changed, struct store_change **ret,
		      size_t *ret_n)
{
	static const char q_all[] =
		"SELECT path, o_mode, o_uid, o_gid, o_size, o_mtime_ns, o_ctime_ns, o_dev, o_ino,"
		" o_hash, n_mode, n_uid, n_gid, n_size, n_mtime_ns, n_hash, status, applied,"
		" o_xattrs, n_xattrs, o_rdev, n_rdev, n_dev, n_ino FROM change WHERE txn = ?"
		" ORDER BY path";
	static const char q_changed[] =
		"SELECT path, o_mode, o_uid, o_gid, o_size, o_mtime_ns, o_ctime_ns, o_dev, o_ino,"
		" o_hash, n_mode, n_uid, n_gid, n_size, n_mtime_ns, n_hash, status, applied,"
		" o_xattrs, n_xattrs, o_rdev, n_rdev, n_dev, n_ino FROM change WHERE txn = ?"
		" AND status != ''"
		" ORDER BY path";
	struct store_change *v = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r, rc;

	/* What the daemon has logged and not yet folded is part of the set. */
	r = store_changelog_fold(s, txn);
	if (r < 0)
		return r;
	store_lock(s);
	st = db_stmt(s->db, only_changed ? q_changed : q_all, &r);
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, txn);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_change *c;
		const unsigned char *status;

		if (n == cap) {
			struct store_change *nv =
				realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		c = &v[n];
		memset(c, 0, sizeof(*c));
		c->path = db_column_strdup(st, 0);
		if (!c->path) {
			r = -ENOMEM;
			break;
		}
		n++;
		entry_from_row(st, 1, &c->orig, true);
		entry_from_row(st, 10, &c->new, false);
		status = sqlite3_column_text(st, 16);
		c->status = status && status[0] ? (char)status[0] : 0;
		c->applied = sqlite3_column_int(st, 17) != 0;
		if (xattrs_from_row(st, 18, &c->orig, &c->orig_xattrs) < 0 ||
		    xattrs_from_row(st, 19, &c->new, &c->new_xattrs) < 0) {
			r = -ENOMEM;
			break;
		}
		c->orig.rdev = (uint64_t)sqlite3_column_int64(st, 20);
		c->new.rdev = (uint64_t)sqlite3_column_int64(st, 21);
		c->new.dev = (uint64_t)sqlite3_column_int64(st, 22);
		c->new.ino = (uint64_t)sqlite3_column_int64(st, 23);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_errno(rc);
	sqlite3_reset(st);
out:
	store_unlock(s);
	if (r < 0) {
		store_changes_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void store_changes_free(struct store_change *c, size_t n)
{
	if (!c)
		return;
	for (size_t i = 0; i < n; i++) {
		free(c[i].path);
		strbuf_release(&c[i].orig_xattrs);
		strbuf_release(&c[i].new_xattrs);
	}
	free(c);
}

int store_change_set_new(struct store *s, int64_t txn, const struct store_change *c)
{
	static const char q[] =
		"UPDATE change SET n_mode = ?, n_uid = ?, n_gid = ?, n_size = ?,"
		" n_mtime_ns = ?, n_hash = ?, status = ?, o_xattrs = ?, n_xattrs = ?,"
		" o_rdev = ?, n_rdev = ?, n_dev = ?, n_ino = ? WHERE txn = ? AND path = ?";
	char status[2] = { c->status, '\0' };
	sqlite3_stmt *st;
	int r = 0;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		bind_entry(st, 1, &c->new, false);
		db_bind_text(st, 7, status);
		bind_xattrs(st, 8, &c->orig, &c->orig_xattrs);
		bind_xattrs(st, 9, &c->new, &c->new_xattrs);
		sqlite3_bind_int64(st, 10, (int64_t)c->orig.rdev);
		sqlite3_bind_int64(st, 11, (int64_t)c->new.rdev);
		sqlite3_bind_int64(st, 12, (int64_t)c->new.dev);
		sqlite3_bind_int64(st, 13, (int64_t)c->new.ino);
		sqlite3_bind_int64(st, 14, txn);
		db_bind_text(st, 15, c->path);
		r = db_step_done(s->db, st);
	}
	store_unlock(s);
	return r;
}

int store_change_set_applied(struct store *s, int64_t txn, const char *path)
{
	static const char q[] = "UPDATE change SET applied = 1 WHERE txn = ? AND path = ?";
	sqlite3_stmt *st;
	int r = 0;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		sqlite3_bind_int64(st, 1, txn);
		db_bind_text(st, 2, path);
		r = db_step_done(s->db, st);
	}
	store_unlock(s);
	return r;
}

/* ---- transactions built from the store: undo, restore ---- */

static int txn_check_source_locked(struct store *s, const struct store_txn_synth *spec)
{
	static const char q[] = "SELECT state FROM txn WHERE id = ?";
	int64_t src = spec->undo_of ? spec->undo_of : spec->restore_of;
	sqlite3_stmt *st;
	int r = 0, rc, state = 0;

	if (!src)
		return 0;
	st = db_stmt(s->db, q, &r);
	if (!st)
		return r;
	sqlite3_bind_int64(st, 1, src);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		state = sqlite3_column_int(st, 0);
	sqlite3_reset(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
	/* Someone undid it, or gc dropped it, since the caller looked. */
	if (spec->undo_of && state != STORE_TXN_COMMITTED)
		return -ESTALE;
	return 0;
}

int store_txn_begin_sealed(struct store *s, const struct store_txn_synth *spec,
			   const struct store_change *c, size_t n, int64_t *ret_id,
			   int64_t *ret_other, int *ret_lock)
{
	static const char q_busy[] = "SELECT id FROM txn WHERE pkg_dev = ? AND pkg_ino = ?"
				     " AND state IN (1, 2, 3) ORDER BY id LIMIT 1";
	static const char q_ins[] =
		"INSERT INTO txn(state, pkg, pkg_dev, pkg_ino, command, undo_of, restore_of, uid,"
		" created_ns, n_modified, n_added, n_deleted, bytes_new, n_orig, bytes_orig,"
		" backup_ns) VALUES (2, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	static const char q_change[] =
		"INSERT INTO change(txn, path, o_mode, o_uid, o_gid, o_size, o_mtime_ns,"
		" o_ctime_ns, o_dev, o_ino, o_hash, n_mode, n_uid, n_gid, n_size, n_mtime_ns,"
		" n_hash, status, o_xattrs, n_xattrs, o_rdev, n_rdev, n_dev, n_ino)"
		" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
	int64_t cnt[3] = { 0 }, bytes_new = 0, n_orig = 0, bytes_orig = 0, id;
	sqlite3_stmt *st;
	int lock = -1, r;

	for (size_t i = 0; i < n; i++) {
		if (c[i].status == 'M' || c[i].status == 'A' || c[i].status == 'D')
			cnt[c[i].status == 'M' ? 0 : c[i].status == 'A' ? 1 : 2]++;
		if (c[i].status && S_ISREG(c[i].new.mode))
			bytes_new += (int64_t)c[i].new.size;
		if (c[i].orig.has_hash) {
			n_orig++;
			bytes_orig += (int64_t)c[i].orig.size;
		}
	}
	r = store_batch_begin(s);
	if (r < 0)
		return r;
	st = db_stmt(s->db, q_busy, &r);
	if (!st)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, (int64_t)spec->pkg_st->st_dev);
	sqlite3_bind_int64(st, 2, (int64_t)spec->pkg_st->st_ino);
	if (sqlite3_step(st) == SQLITE_ROW) {
		if (ret_other)
			*ret_other = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		r = -EBUSY;
		goto out_rollback;
	}
	sqlite3_reset(st);
	r = txn_check_source_locked(s, spec);
	if (r < 0)
		goto out_rollback;
	st = db_stmt(s->db, q_ins, &r);
	if (!st)
		goto out_rollback;
	db_bind_text(st, 1, spec->pkg);
	sqlite3_bind_int64(st, 2, (int64_t)spec->pkg_st->st_dev);
	sqlite3_bind_int64(st, 3, (int64_t)spec->pkg_st->st_ino);
	db_bind_text(st, 4, spec->command);
	sqlite3_bind_int64(st, 5, spec->undo_of);
	sqlite3_bind_int64(st, 6, spec->restore_of);
	sqlite3_bind_int64(st, 7, (int64_t)getuid());
	sqlite3_bind_int64(st, 8, util_now_ns());
	sqlite3_bind_int64(st, 9, cnt[0]);
	sqlite3_bind_int64(st, 10, cnt[1]);
	sqlite3_bind_int64(st, 11, cnt[2]);
	sqlite3_bind_int64(st, 12, bytes_new);
	sqlite3_bind_int64(st, 13, n_orig);
	sqlite3_bind_int64(st, 14, bytes_orig);
	sqlite3_bind_int64(st, 15, spec->backup_ns);
	r = db_step_done(s->db, st);
	if (r < 0)
		goto out_rollback;
	id = sqlite3_last_insert_rowid(db_handle(s->db));
	for (size_t i = 0; i < n; i++) {
		char status[2] = { c[i].status, '\0' };

		st = db_stmt(s->db, q_change, &r);
		if (!st)
			goto out_rollback;
		sqlite3_bind_int64(st, 1, id);
		db_bind_text(st, 2, c[i].path);
		bind_entry(st, 3, &c[i].orig, true);
		bind_entry(st, 12, &c[i].new, false);
		db_bind_text(st, 18, status);
		bind_xattrs(st, 19, &c[i].orig, &c[i].orig_xattrs);
		bind_xattrs(st, 20, &c[i].new, &c[i].new_xattrs);
		sqlite3_bind_int64(st, 21, (int64_t)c[i].orig.rdev);
		sqlite3_bind_int64(st, 22, (int64_t)c[i].new.rdev);
		sqlite3_bind_int64(st, 23, (int64_t)c[i].new.dev);
		sqlite3_bind_int64(st, 24, (int64_t)c[i].new.ino);
		r = db_step_done(s->db, st);
		if (r < 0)
			goto out_rollback;
	}
	r = store_audit_locked(s, id, "TXN_BEGIN", spec->pkg);
	if (r < 0)
		goto out_rollback;
	r = txn_mkdirs(s, id);
	if (r < 0)
		goto out_rollback;
	/* Ours before anyone can see the row: recovery skips what is locked. */
	lock = store_txn_lock(s, id, "finish", false);
	if (lock < 0) {
		r = lock;
		goto out_rollback;
	}
	r = store_batch_commit(s);
	if (r < 0) {
		util_close(lock);
		(void)store_txn_remove_dir(s, id);
		return r;
	}
	*ret_id = id;
	*ret_lock = lock;
	return 0;

out_rollback:
	store_batch_rollback(s);
	return r;
}

int store_kept_add(struct store *s, int64_t txn, const char *path, uint32_t mode,
		   const uint8_t hash[HASH_LEN], const char *why, const char *detail)
{
	static const char q[] = "INSERT OR IGNORE INTO kept(txn, path, mode, hash, time_ns, why)"
				" VALUES (?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st;
	int r = store_batch_begin(s);

	if (r < 0)
		return r;
	st = db_stmt(s->db, q, &r);
	if (!st)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, txn);
	db_bind_text(st, 2, path);
	sqlite3_bind_int64(st, 3, mode);
	sqlite3_bind_blob(st, 4, hash, HASH_LEN, SQLITE_TRANSIENT);
	sqlite3_bind_int64(st, 5, util_now_ns());
	db_bind_text(st, 6, why);
	r = db_step_done(s->db, st);
	if (r < 0)
		goto out_rollback;
	r = store_audit_locked(s, txn, "BACKUP_CREATED", detail);
	if (r < 0)
		goto out_rollback;
	return store_batch_commit(s);

out_rollback:
	store_batch_rollback(s);
	return r;
}

int store_kept_list(struct store *s, int64_t txn, struct store_kept **ret, size_t *ret_n)
{
	static const char q[] = "SELECT path, mode, hash, time_ns, why FROM kept WHERE txn = ?"
				" ORDER BY path, time_ns";
	struct store_kept *v = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r = 0, rc = SQLITE_DONE;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (!st)
		goto out;
	sqlite3_bind_int64(st, 1, txn);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const void *h = sqlite3_column_blob(st, 2);

		if (n == cap) {
			struct store_kept *nv = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		memset(&v[n], 0, sizeof(v[n]));
		v[n].path = db_column_strdup(st, 0);
		v[n].why = db_column_strdup(st, 4);
		n++;
		if (!v[n - 1].path || !v[n - 1].why) {
			r = -ENOMEM;
			break;
		}
		v[n - 1].mode = (uint32_t)sqlite3_column_int64(st, 1);
		if (h && sqlite3_column_bytes(st, 2) == HASH_LEN)
			memcpy(v[n - 1].hash, h, HASH_LEN);
		v[n - 1].time_ns = sqlite3_column_int64(st, 3);
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_errno(rc);
	sqlite3_reset(st);
out:
	store_unlock(s);
	if (r < 0) {
		store_kept_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void store_kept_free(struct store_kept *k, size_t n)
{
	if (!k)
		return;
	for (size_t i = 0; i < n; i++) {
		free(k[i].path);
		free(k[i].why);
	}
	free(k);
}

int store_txn_undone_by(struct store *s, int64_t txn, int64_t *ret_id)
{
	static const char q[] = "SELECT id FROM txn WHERE undo_of = ? AND state IN (4, 6)"
				" ORDER BY id DESC LIMIT 1";
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		sqlite3_bind_int64(st, 1, txn);
		rc = sqlite3_step(st);
		*ret_id = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
		r = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_errno(rc);
		sqlite3_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_txn_add_backup(struct store *s, int64_t txn, int64_t ns)
{
	static const char q[] = "UPDATE txn SET backup_ns = backup_ns + ? WHERE id = ?";
	sqlite3_stmt *st;
	int r = 0;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		sqlite3_bind_int64(st, 1, ns);
		sqlite3_bind_int64(st, 2, txn);
		r = db_step_done(s->db, st);
	}
	store_unlock(s);
	return r;
}
