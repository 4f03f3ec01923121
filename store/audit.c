// SPDX-License-Identifier: MIT
/*
 * The audit log: security-relevant events appended in the same SQLite
 * transaction as the state change they record. Triggers in the schema make
 * the table append-only.
 */
#include "store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int store_audit_locked(struct store *s, int64_t txn, const char *event, const char *detail)
{
	static const char q[] = "INSERT INTO audit(time_ns, uid, pid, txn, event, detail)"
				" VALUES (?, ?, ?, ?, ?, ?)";
	sqlite3_stmt *st;
	int r = 0;

	st = db_stmt(s->db, q, &r);
	if (!st)
		return r;
	sqlite3_bind_int64(st, 1, util_now_ns());
	sqlite3_bind_int64(st, 2, (int64_t)getuid());
	sqlite3_bind_int64(st, 3, (int64_t)getpid());
	sqlite3_bind_int64(st, 4, txn);
	db_bind_text(st, 5, event);
	db_bind_text(st, 6, detail);
	return db_step_done(s->db, st);
}

int store_audit(struct store *s, int64_t txn, const char *event, const char *detail)
{
	int r = store_batch_begin(s);

	if (r < 0)
		return r;
	r = store_audit_locked(s, txn, event, detail);
	if (r < 0) {
		store_batch_rollback(s);
		return r;
	}
	return store_batch_commit(s);
}

int store_audit_list(struct store *s, int64_t since_ns, int64_t txn, struct store_audit_event **ret,
		     size_t *ret_n)
{
	/* audit_by_time and audit_by_txn (schema v2) keep both filters indexed. */
	static const char q_all[] = "SELECT id, time_ns, uid, pid, txn, event, detail FROM audit"
				    " WHERE time_ns >= ? ORDER BY id";
	static const char q_txn[] = "SELECT id, time_ns, uid, pid, txn, event, detail FROM audit"
				    " WHERE txn = ? AND time_ns >= ? ORDER BY id";
	struct store_audit_event *v = NULL;
	size_t n = 0, cap = 0;
	sqlite3_stmt *st;
	int r = 0, rc = SQLITE_DONE;

	store_lock(s);
	st = db_stmt(s->db, txn > 0 ? q_txn : q_all, &r);
	if (!st)
		goto out;
	if (txn > 0) {
		sqlite3_bind_int64(st, 1, txn);
		sqlite3_bind_int64(st, 2, since_ns);
	} else {
		sqlite3_bind_int64(st, 1, since_ns);
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_audit_event *e;

		if (n == cap) {
			struct store_audit_event *nv =
				realloc(v, (cap = cap ? cap * 2 : 64) * sizeof(*v));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
		}
		e = &v[n++];
		memset(e, 0, sizeof(*e));
		e->id = sqlite3_column_int64(st, 0);
		e->time_ns = sqlite3_column_int64(st, 1);
		e->uid = sqlite3_column_int64(st, 2);
		e->pid = sqlite3_column_int64(st, 3);
		e->txn = sqlite3_column_int64(st, 4);
		e->event = db_column_strdup(st, 5);
		e->detail = db_column_strdup(st, 6);
		if (!e->event || (!e->detail && sqlite3_column_type(st, 6) != SQLITE_NULL)) {
			r = -ENOMEM;
			break;
		}
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = db_errno(rc);
	sqlite3_reset(st);
out:
	store_unlock(s);
	if (r < 0) {
		store_audit_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

void store_audit_free(struct store_audit_event *v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++) {
		free(v[i].event);
		free(v[i].detail);
	}
	free(v);
}
