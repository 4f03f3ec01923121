// SPDX-License-Identifier: MIT
/*
 * Crash recovery: roll interrupted commits forward, reopen sealed ones, and
 * remove what dead processes left behind (layers of finished transactions,
 * blob temporaries).
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

int store_needs_recovery(struct store *s)
{
	static const char q[] = "SELECT 1 FROM txn WHERE state IN (2, 3) LIMIT 1";
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		rc = sqlite3_step(st);
		r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : db_errno(rc);
		sqlite3_reset(st);
	}
	store_unlock(s);
	return r;
}

/* PKG is not where the transaction was started (moved, or another directory in its place). */
static bool pkg_moved(int r)
{
	return r == -ESTALE || r == -ENOENT || r == -ENOTDIR;
}

static void log_pkg_moved(int level, const struct store_txn *t)
{
	log_level_(level, 0,
		   "cannot finish the commit of transaction %lld: '%s' has moved or is no longer the directory the transaction was started on; put it back where it was, then run 'cjfs recover' again",
		   (long long)t->id, t->pkg);
}

/*
 * Finish one COMMITTING transaction whose committer died; caller holds its
 * finish lock. If PKG has moved: log that at moved_level, set *moved and
 * return -ESTALE; the transaction stays COMMITTING for a later run.
 */
static int recover_committing_locked(struct store *s, const struct store_txn *t, int moved_level,
				     bool *moved)
{
	struct store_apply_failure fail = { 0 };
	int pkg_fd, r;

	pkg_fd = store_txn_open_pkg(t);
	if (pkg_moved(pkg_fd)) {
		log_pkg_moved(moved_level, t);
		*moved = true;
		return -ESTALE;
	}
	if (pkg_fd < 0)
		return log_errno(pkg_fd,
				 "cannot finish the commit of transaction %lld: cannot open '%s'",
				 (long long)t->id, t->pkg);
	r = store_txn_promote(s, t->id, pkg_fd, STORE_APPLY_RECOVER, &fail);
	if (r == 0)
		r = store_txn_unstage(s, t->id, pkg_fd);
	util_close(pkg_fd);
	if (r < 0 && fail.err) {
		char name[96];

		return log_errno(r,
				 "cannot finish the commit of transaction %lld into '%s': the new content of '%s' in the store ('%s') cannot be used; run 'cjfs verify'",
				 (long long)t->id, t->pkg, fail.path,
				 store_blob_name(fail.hash, name));
	}
	if (r < 0)
		return log_errno(r, "cannot finish the commit of transaction %lld into '%s'",
				 (long long)t->id, t->pkg);
	r = store_txn_transition(s, t->id, STORE_TXN_COMMITTING, STORE_TXN_COMMITTED,
				 "TXN_RECOVERED", "commit rolled forward");
	if (r == -ESTALE)
		return 0; /* someone else finished it */
	if (r < 0)
		return r;
	(void)store_txn_remove_dir(s, t->id);
	log_info("finished the interrupted commit of transaction %lld into '%s'", (long long)t->id,
		 t->pkg);
	return 1;
}

/*
 * A SEALED transaction never reached its commit point: PKG holds at most
 * its temporaries. Remove them and reopen it (an undo or restore is
 * discarded instead: it has no layer to reopen); caller holds its finish lock.
 */
static int recover_sealed_locked(struct store *s, const struct store_txn *t)
{
	int pkg_fd, r;

	pkg_fd = store_txn_open_pkg(t);
	if (pkg_fd >= 0) {
		r = store_txn_unstage(s, t->id, pkg_fd);
		util_close(pkg_fd);
		if (r < 0)
			return r;
	}
	if (store_txn_is_synthetic(t))
		/* An undo or restore has no mount to reopen: run it again if wanted. */
		r = store_txn_transition(s, t->id, STORE_TXN_SEALED, STORE_TXN_ROLLED_BACK,
					 "TXN_RECOVERED",
					 "interrupted before its commit point; discarded, PKG unchanged");
	else
		r = store_txn_transition(s, t->id, STORE_TXN_SEALED, STORE_TXN_OPEN,
					 "TXN_RECOVERED",
					 "commit interrupted before its commit point; reopened");
	if (r == -ESTALE)
		return 0; /* someone else finished it */
	return r < 0 ? r : 1;
}

static int recover_txn(struct store *s, int64_t id, int moved_level, bool *moved)
{
	struct store_txn *t = NULL;
	int r = store_txn_load(s, id, &t);

	if (r < 0)
		return r;
	if (t->state == STORE_TXN_COMMITTING)
		r = recover_committing_locked(s, t, moved_level, moved);
	else if (t->state == STORE_TXN_SEALED)
		r = recover_sealed_locked(s, t);
	else
		r = 0; /* someone finished it between our list and our lock */
	store_txn_free(t);
	return r;
}

int store_recover_txn(struct store *s, int64_t id)
{
	bool moved = false;

	return recover_txn(s, id, LOG_LEVEL_ERROR, &moved);
}

/*
 * Recover one transaction unless a live process holds its finish lock (then:
 * 0). A commit whose PKG has moved is not finished: -ESTALE with *moved set.
 */
static int recover_one(struct store *s, int64_t id, bool *moved)
{
	int lock = store_txn_lock(s, id, "finish", false);
	int r;

	if (lock == -EWOULDBLOCK)
		return 0;
	if (lock < 0)
		return lock;
	r = recover_txn(s, id, LOG_LEVEL_WARN, moved);
	util_close(lock);
	return r;
}

/* Remove tmp/<pid>.<n> files of processes that no longer exist. */
static size_t recover_tmp(struct store *s)
{
	int fd = util_openat(s->tmpfd, ".", O_RDONLY | O_DIRECTORY, 0);
	struct dirent *de;
	size_t cleaned = 0;
	DIR *d;

	if (fd < 0)
		return 0;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		long pid = strtol(de->d_name, NULL, 10);

		if (pid <= 0 || (kill((pid_t)pid, 0) < 0 && errno == ESRCH)) {
			if (de->d_name[0] != '.' && unlinkat(s->tmpfd, de->d_name, 0) == 0)
				cleaned++;
		}
	}
	closedir(d);
	return cleaned;
}

/* Remove txn/<id>/ of transactions that are finished. */
static size_t recover_layers(struct store *s)
{
	static const char q[] = "SELECT state FROM txn WHERE id = ?";
	int fd = util_openat(s->txnfd, ".", O_RDONLY | O_DIRECTORY, 0);
	struct dirent *de;
	size_t cleaned = 0;
	DIR *d;

	if (fd < 0)
		return 0;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		int64_t id;
		sqlite3_stmt *st;
		int r = 0, state = 0;

		if (util_parse_i64(de->d_name, &id) < 0)
			continue;
		store_lock(s);
		st = db_stmt(s->db, q, &r);
		if (st) {
			sqlite3_bind_int64(st, 1, id);
			if (sqlite3_step(st) == SQLITE_ROW)
				state = sqlite3_column_int(st, 0);
			sqlite3_reset(st);
		}
		store_unlock(s);
		if (state == STORE_TXN_COMMITTED || state == STORE_TXN_ROLLED_BACK ||
		    state == STORE_TXN_UNDONE) {
			if (store_txn_remove_dir(s, id) == 0)
				cleaned++;
		}
	}
	closedir(d);
	return cleaned;
}

int store_recover(struct store *s, struct store_recover_report *ret)
{
	struct store_recover_report rep = { 0 };
	int64_t *ids = NULL;
	size_t n = 0;
	int r, first = 0;

	/* Readers of the index (gc, verify, stats, blob readers) see every logged change. */
	r = store_changelog_fold_open(s);
	if (r < 0)
		log_debug("cannot fold the change logs of open transactions now: %s", strerror(-r));
	r = store_txn_list_state(s, STORE_TXN_COMMITTING, &ids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		bool moved = false;

		r = recover_one(s, ids[i], &moved);
		if (r > 0)
			rep.rolled_forward++;
		if (r < 0) {
			rep.failed++;
			rep.pkg_moved += moved;
			if (!first)
				first = r;
		}
	}
	free(ids);
	r = store_txn_list_state(s, STORE_TXN_SEALED, &ids, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		bool moved = false;

		r = recover_one(s, ids[i], &moved);
		if (r > 0)
			rep.reopened++;
		if (r < 0) {
			rep.failed++;
			if (!first)
				first = r;
		}
	}
	free(ids);
	rep.cleaned = recover_tmp(s) + recover_layers(s);
	if (ret)
		*ret = rep;
	return first;
}
