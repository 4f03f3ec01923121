// SPDX-License-Identifier: MIT
/*
 * The audit log: security-relevant events appended in the same SQLite
 * transaction as the state change they record. Triggers in the schema make
 * the table append-only.
 */
#include "store_int.h"

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
