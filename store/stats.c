// SPDX-License-Identifier: MIT
/*
 * Store statistics: how much history the index refers to, how much of it
 * dedup and compression save, and what the store takes on disk.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

/* Allocated bytes below parent/name (not following symlinks); missing is 0. */
static uint64_t du_at(int parent, const char *name, int depth)
{
	struct stat st;
	struct dirent *de;
	uint64_t total;
	DIR *d;
	int fd;

	if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	total = (uint64_t)st.st_blocks * 512;
	if (!S_ISDIR(st.st_mode) || depth > 64)
		return total;
	fd = util_openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return total;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return total;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		total += du_at(dirfd(d), de->d_name, depth + 1);
	}
	closedir(d);
	return total;
}

static int stats_query(struct store *s, const char *sql, int64_t *cols, int ncols)
{
	int r = 0, rc;
	sqlite3_stmt *st = db_stmt(s->db, sql, &r);

	if (!st)
		return r;
	rc = sqlite3_step(st);
	for (int i = 0; i < ncols; i++)
		cols[i] = rc == SQLITE_ROW ? sqlite3_column_int64(st, i) : 0;
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_errno(rc);
}

int store_stats_get(struct store *s, struct store_stats *ret)
{
	static const char q_states[] = "SELECT state, COUNT(*) FROM txn GROUP BY state";
	static const char q_blobs[] = "SELECT COUNT(*), COALESCE(SUM(size), 0),"
				      " COALESCE(SUM(stored_size), 0),"
				      " COALESCE(SUM(encoding = 1), 0) FROM blob";
	/*
	 * What a backup without dedup would keep: every original of every
	 * transaction, every new content that differs from its original, and
	 * every kept overwritten file.
	 */
	static const char q_logical[] =
		"SELECT (SELECT COALESCE(SUM(o_size), 0) FROM change WHERE o_hash IS NOT NULL)"
		" + (SELECT COALESCE(SUM(n_size), 0) FROM change WHERE n_hash IS NOT NULL"
		" AND (o_hash IS NULL OR n_hash != o_hash))"
		" + (SELECT COALESCE(SUM(b.size), 0) FROM kept k JOIN blob b ON b.hash = k.hash)";
	static const char q_audit[] = "SELECT COUNT(*) FROM audit";
	struct store_stats v = { 0 };
	int64_t cols[4];
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q_states, &r);
	if (!st)
		goto out;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int state = sqlite3_column_int(st, 0);
		int64_t n = sqlite3_column_int64(st, 1);

		if (state >= 0 && state < (int)ARRAY_SIZE(v.n_txn_by_state))
			v.n_txn_by_state[state] = n;
		v.n_txn += n;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		r = db_errno(rc);
		goto out;
	}
	r = stats_query(s, q_blobs, cols, 4);
	if (r < 0)
		goto out;
	v.n_blobs = cols[0];
	v.unique = (uint64_t)cols[1];
	v.stored = (uint64_t)cols[2];
	v.n_compressed = cols[3];
	r = stats_query(s, q_logical, cols, 1);
	if (r < 0)
		goto out;
	v.logical = (uint64_t)cols[0];
	r = stats_query(s, q_audit, cols, 1);
	if (r < 0)
		goto out;
	v.n_audit = cols[0];
out:
	store_unlock(s);
	if (r < 0)
		return r;
	v.disk_blobs = du_at(s->dirfd, "objects", 0);
	v.disk_index = du_at(s->dirfd, "index.db", 0) + du_at(s->dirfd, "index.db-wal", 0) +
		       du_at(s->dirfd, "index.db-shm", 0);
	v.disk_other = du_at(s->dirfd, "txn", 0) + du_at(s->dirfd, "tmp", 0);
	*ret = v;
	return 0;
}
