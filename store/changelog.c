// SPDX-License-Identifier: MIT
/*
 * The change log of an open transaction: txn/<id>/changes.
 *
 * Before the daemon changes a path it must have recorded the path and
 * PKG's original state somewhere that survives its own death. A SQLite
 * commit per path does that but costs ~45 µs here (WAL locks, a page frame,
 * the WAL index), more than the rest of a create or an unlink. So the
 * daemon appends the row to this log instead, one pwrite() of ~150 bytes,
 * and the log is folded into the `change` and `staged` tables in batches:
 * by the daemon every CHANGELOG_BATCH records and when it exits, and by
 * anyone about to read the change set (store_change_list) or running
 * recovery. The `txn.changes_off` column says how far the log is folded;
 * a fold moves it in the same SQLite transaction as the rows it inserts,
 * so folds are idempotent and any number of processes may run them.
 *
 * A record carries the original's metadata, where its bytes were staged,
 * and its extended attributes (up to CHANGELOG_XATTRS_MAX bytes of them;
 * seal reads larger lists from PKG). Logs of the first format ("CLG1",
 * without xattrs and device) are still folded.
 *
 * Only the daemon appends, under changelog_lock, at changelog_end. A
 * record carries a checksum: a fold stops at the first record that is
 * incomplete (being written, or torn by a crash or power cut) and leaves it
 * for later. A record torn by the death of the daemon was never followed by
 * its change; the next daemon of the transaction truncates it away
 * (store_changelog_begin) before appending.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define CHANGELOG_NAME "changes"
#define CHANGELOG_MAGIC1 0x31474c43u /* "CLG1" */
#define CHANGELOG_MAGIC 0x32474c43u  /* "CLG2" */
/* Larger xattr lists are not logged: a record must fit in FOLD_BUF. */
#define CHANGELOG_XATTRS_MAX 16384
/* Folding this many records costs about one SQLite commit per record saved. */
#define CHANGELOG_BATCH 1024
#define FOLD_BUF (64 * 1024)

#define REC_STAGED 1u
#define REC_HASH 2u
#define REC_XATTRS 4u /* the xattr list is known (it may be empty) */

/* On disk, in the host's byte order (a log lives only while its transaction is open). */
struct rec {
	uint32_t magic;
	uint32_t len; /* of the whole record, header, path and xattrs included */
	uint64_t sum; /* FNV-1a of everything after this field */
	uint32_t mode, uid, gid, flags;
	uint64_t size;
	int64_t mtime_ns, ctime_ns;
	uint64_t dev, ino;
	uint64_t off; /* of the original in txn/<id>/originals, with REC_STAGED */
	uint8_t hash[HASH_LEN];
	/* CLG1 records end here, followed by the path (len - this much bytes). */
	uint64_t rdev;
	uint32_t plen, xlen;
	/* then the path (plen bytes, not NUL-terminated), then the xattr list */
};

#define REC1_SIZE offsetof(struct rec, rdev)

/* The checksum of a record of len bytes at p: everything after its sum field. */
static uint64_t rec_sum(const void *p, size_t len)
{
	size_t skip = offsetof(struct rec, sum) + sizeof(((struct rec *)0)->sum);

	return util_fnv1a((const char *)p + skip, len - skip);
}

static void log_name(int64_t txn, char buf[64])
{
	snprintf(buf, 64, "%lld/" CHANGELOG_NAME, (long long)txn);
}

/*
 * Is the record at p (avail bytes there) whole and intact? Its length, or 0
 * if not (yet).
 */
/* A record's header, read from either format; where its path starts. */
static size_t rec_header(const char *p, size_t avail, struct rec *r)
{
	if (avail < REC1_SIZE)
		return 0;
	memset(r, 0, sizeof(*r));
	memcpy(r, p, REC1_SIZE);
	if (r->magic == CHANGELOG_MAGIC1) {
		if (r->len < REC1_SIZE + 1 || r->len > REC1_SIZE + PATH_MAX)
			return 0;
		r->plen = (uint32_t)(r->len - REC1_SIZE);
		r->flags &= REC_STAGED | REC_HASH;
		return REC1_SIZE;
	}
	if (r->magic != CHANGELOG_MAGIC || avail < sizeof(*r))
		return 0;
	memcpy(r, p, sizeof(*r));
	if (r->plen < 1 || r->plen > PATH_MAX || r->xlen > CHANGELOG_XATTRS_MAX ||
	    r->len != sizeof(*r) + r->plen + r->xlen)
		return 0;
	return sizeof(*r);
}

static size_t rec_check(const char *p, size_t avail)
{
	struct rec r;
	size_t head = rec_header(p, avail, &r);

	if (!head || r.len > avail)
		return 0;
	if (rec_sum(p, r.len) != r.sum || memchr(p + head, '\0', r.plen))
		return 0;
	return r.len;
}

/* Insert the rows of one (checked) record; caller holds s->lock inside a batch. */
static int rec_fold(struct store *s, int64_t txn, const char *p)
{
	struct strbuf list = STRBUF_INIT;
	struct store_entry e = { 0 };
	struct rec r;
	char path[PATH_MAX + 1];
	size_t head = rec_header(p, SIZE_MAX, &r);
	int ret;

	memcpy(path, p + head, r.plen);
	path[r.plen] = '\0';
	if (!store_path_is_row(path))
		return -EBADMSG;
	e.mode = r.mode;
	e.uid = r.uid;
	e.gid = r.gid;
	e.size = r.size;
	e.mtime_ns = r.mtime_ns;
	e.ctime_ns = r.ctime_ns;
	e.dev = r.dev;
	e.ino = r.ino;
	e.rdev = r.rdev;
	e.has_hash = (r.flags & REC_HASH) != 0;
	memcpy(e.hash, r.hash, HASH_LEN);
	if (r.flags & REC_XATTRS) {
		if (strbuf_add(&list, p + head + r.plen, r.xlen) < 0)
			return -ENOMEM;
		store_entry_set_xattrs(&e, &list);
	}
	ret = store_change_insert_locked(s, txn, path, &e, &list, (r.flags & REC_STAGED) != 0,
					 r.off);
	strbuf_release(&list);
	return ret;
}

/* The state of txn and how far its log is folded; caller holds s->lock. */
static int folded(struct store *s, int64_t txn, int *ret_state, uint64_t *ret_off)
{
	static const char q[] = "SELECT state, changes_off FROM txn WHERE id = ?";
	sqlite3_stmt *st;
	int r = 0, rc;

	st = db_stmt(s->db, q, &r);
	if (!st)
		return r;
	*ret_state = 0;
	*ret_off = 0;
	sqlite3_bind_int64(st, 1, txn);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_state = sqlite3_column_int(st, 0);
		*ret_off = (uint64_t)sqlite3_column_int64(st, 1);
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : db_errno(rc);
}

/*
 * Fold the log of txn from its folded offset to its first incomplete
 * record, if txn is open. With ret_end, where that is.
 */
static int fold(struct store *s, int64_t txn, uint64_t *ret_end)
{
	static const char q_set[] = "UPDATE txn SET changes_off = ? WHERE id = ?";
	char name[64], *buf = NULL;
	uint64_t off = 0, start;
	size_t have = 0;
	struct stat fst;
	sqlite3_stmt *st;
	int fd, r, state = 0;

	log_name(txn, name);
	fd = util_openat(s->txnfd, name, O_RDONLY | O_NOFOLLOW, 0);
	if (fd == -ENOENT || fd == -ENOTDIR) {
		if (ret_end)
			*ret_end = 0;
		return 0;
	}
	if (fd < 0)
		return fd;
	/*
	 * Nothing new (the common case for every command that starts while a
	 * daemon or a commit runs): no write lock to wait for.
	 */
	if (fstat(fd, &fst) < 0) {
		r = -errno;
		goto out_close;
	}
	store_lock(s);
	r = folded(s, txn, &state, &off);
	store_unlock(s);
	if (r < 0 || state != STORE_TXN_OPEN || off >= (uint64_t)fst.st_size) {
		if (r == 0 && ret_end)
			*ret_end = off;
		goto out_close;
	}
	r = store_batch_begin(s);
	if (r < 0)
		goto out_close;
	r = folded(s, txn, &state, &off);
	if (r < 0 || state != STORE_TXN_OPEN)
		goto out_rollback;
	buf = malloc(FOLD_BUF);
	if (!buf) {
		r = -ENOMEM;
		goto out_rollback;
	}
	start = off;
	for (;;) {
		ssize_t n = pread(fd, buf + have, FOLD_BUF - have, (off_t)(off + have));
		size_t pos = 0, len;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out_rollback;
		}
		have += (size_t)n;
		while ((len = rec_check(buf + pos, have - pos)) > 0) {
			r = rec_fold(s, txn, buf + pos);
			if (r < 0)
				goto out_rollback;
			pos += len;
		}
		off += pos;
		have -= pos;
		memmove(buf, buf + pos, have);
		/* Nothing more came, or what is left is not a whole record and never will fit. */
		if (n == 0 || (pos == 0 && have == FOLD_BUF))
			break;
	}
	if (off != start) {
		st = db_stmt(s->db, q_set, &r);
		if (!st)
			goto out_rollback;
		sqlite3_bind_int64(st, 1, (int64_t)off);
		sqlite3_bind_int64(st, 2, txn);
		r = db_step_done(s->db, st);
		if (r < 0)
			goto out_rollback;
	}
	r = store_batch_commit(s);
	if (r == 0 && ret_end)
		*ret_end = off;
	goto out_close;

out_rollback:
	store_batch_rollback(s);
out_close:
	free(buf);
	util_close(fd);
	return r;
}

int store_changelog_fold(struct store *s, int64_t txn)
{
	return fold(s, txn, NULL);
}

int store_changelog_fold_open(struct store *s)
{
	int64_t *ids = NULL;
	size_t n = 0;
	int r = store_txn_list_state(s, STORE_TXN_OPEN, &ids, &n);

	for (size_t i = 0; r == 0 && i < n; i++)
		r = fold(s, ids[i], NULL);
	free(ids);
	return r;
}

int store_changelog_begin(struct store *s, int64_t txn)
{
	uint64_t end = 0;
	char name[64];
	int fd, r;

	/* Everything whole goes into the index; a torn tail is cut off. */
	r = fold(s, txn, &end);
	if (r < 0)
		return r;
	log_name(txn, name);
	fd = util_openat(s->txnfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fd;
	r = util_ftruncate(fd, (off_t)end);
	if (r < 0) {
		util_close(fd);
		return r;
	}
	pthread_mutex_lock(&s->changelog_lock);
	util_close(s->changelog_fd);
	s->changelog_fd = fd;
	s->changelog_txn = txn;
	s->changelog_end = end;
	s->changelog_pending = 0;
	s->changelog_broken = false;
	pthread_mutex_unlock(&s->changelog_lock);
	return 0;
}

int store_changelog_append(struct store *s, int64_t txn, const char *path,
			   const struct store_entry *orig, const struct strbuf *xattrs, bool staged,
			   uint64_t off)
{
	union {
		struct rec r;
		char bytes[sizeof(struct rec) + PATH_MAX + 1024];
	} buf;
	struct rec *rec = &buf.r;
	bool logged = orig->has_xattrs && xattrs && xattrs->len <= CHANGELOG_XATTRS_MAX;
	size_t plen = strlen(path), xlen = logged ? xattrs->len : 0;
	size_t len = sizeof(struct rec) + plen + xlen;
	bool full = false;
	int r;

	if (plen == 0)
		return -EINVAL;
	if (plen > PATH_MAX)
		return -ENAMETOOLONG;
	if (len > sizeof(buf)) {
		rec = malloc(len);
		if (!rec)
			return -ENOMEM;
	}
	memset(rec, 0, sizeof(*rec));
	rec->magic = CHANGELOG_MAGIC;
	rec->len = (uint32_t)len;
	rec->mode = orig->mode;
	rec->uid = orig->uid;
	rec->gid = orig->gid;
	rec->flags = (staged ? REC_STAGED : 0) | (orig->has_hash ? REC_HASH : 0) |
		     (logged ? REC_XATTRS : 0);
	rec->size = orig->size;
	rec->mtime_ns = orig->mtime_ns;
	rec->ctime_ns = orig->ctime_ns;
	rec->dev = orig->dev;
	rec->ino = orig->ino;
	rec->off = off;
	if (orig->has_hash)
		memcpy(rec->hash, orig->hash, HASH_LEN);
	rec->rdev = orig->rdev;
	rec->plen = (uint32_t)plen;
	rec->xlen = (uint32_t)xlen;
	memcpy(rec + 1, path, plen);
	if (xlen)
		memcpy((char *)(rec + 1) + plen, xattrs->buf, xlen);
	rec->sum = rec_sum(rec, len);

	pthread_mutex_lock(&s->changelog_lock);
	if (s->changelog_fd < 0 || s->changelog_txn != txn) {
		r = -EBADF;
	} else if (s->changelog_broken) {
		r = -EIO;
	} else {
		r = util_pwrite_full(s->changelog_fd, rec, len, (off_t)s->changelog_end);
		if (r == 0) {
			s->changelog_end += len;
			full = ++s->changelog_pending >= CHANGELOG_BATCH;
			if (full)
				s->changelog_pending = 0;
		} else if (util_ftruncate(s->changelog_fd, (off_t)s->changelog_end) < 0) {
			/* A part of it may be there: nothing may follow it. */
			s->changelog_broken = true;
		}
	}
	pthread_mutex_unlock(&s->changelog_lock);
	if (rec != &buf.r)
		free(rec);
	/* The record is written; a failed fold only leaves it for a later one. */
	if (full && (r = fold(s, txn, NULL)) < 0) {
		log_warn("cannot fold the change log of transaction %lld: %s", (long long)txn,
			 strerror(-r));
		r = 0;
	}
	return r;
}

int store_changelog_end(struct store *s, int64_t txn)
{
	int r = fold(s, txn, NULL);

	pthread_mutex_lock(&s->changelog_lock);
	if (s->changelog_txn == txn) {
		util_close(s->changelog_fd);
		s->changelog_fd = -1;
		s->changelog_txn = 0;
	}
	pthread_mutex_unlock(&s->changelog_lock);
	return r;
}
