// SPDX-License-Identifier: MIT
/*
 * Staging of originals. Before a transaction changes a path, its daemon
 * must hold PKG's original in the store. One file per transaction,
 * txn/<id>/originals, takes every original: one append each and no file of
 * their own (a file per original costs an inode allocation each, which on a
 * busy ext4 is the most expensive step of deleting or rewriting thousands of
 * files). The `staged` table says where each one is, by hash, and is
 * written in the same SQLite transaction as the change row that needs it.
 * Seal turns the originals a commit replaces into blobs
 * (store_stage_promote); the file goes with the transaction's directory.
 * Until then store_stage_read() serves them, verified, to blob readers.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define STAGE_CHUNK (128 * 1024)
#define STAGE_NAME "originals"
/* Originals up to this size move into a blob through memory at seal. */
#define STAGE_PROMOTE_INLINE (16u << 20)
/* Rows whose originals become blobs together (one SQLite transaction). */
#define PROMOTE_BATCH 512

static bool all_zero(const char *buf, size_t n)
{
	return n && buf[0] == 0 && memcmp(buf, buf + 1, n - 1) == 0;
}

/* Reserve n bytes at the end of the transaction's staging file. */
static int stage_reserve(struct store *s, int64_t txn, uint64_t n, int *ret_fd, uint64_t *ret_off)
{
	int r = 0;

	pthread_mutex_lock(&s->stage_lock);
	if (s->stage_fd < 0 || s->stage_txn != txn) {
		char name[64];
		struct stat st;
		int fd;

		util_close(s->stage_fd);
		s->stage_fd = -1;
		snprintf(name, sizeof(name), "%lld/" STAGE_NAME, (long long)txn);
		fd = util_openat(s->txnfd, name, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
		if (fd < 0) {
			r = fd;
			goto out;
		}
		/* A resumed transaction appends after what its earlier daemon staged. */
		if (fstat(fd, &st) < 0) {
			r = -errno;
			util_close(fd);
			goto out;
		}
		s->stage_fd = fd;
		s->stage_txn = txn;
		s->stage_end = (uint64_t)st.st_size;
	}
	*ret_fd = s->stage_fd;
	*ret_off = s->stage_end;
	s->stage_end += n;
out:
	pthread_mutex_unlock(&s->stage_lock);
	return r;
}

int store_stage_fd(struct store *s, int64_t txn, int fd, uint64_t size,
		   uint8_t ret_hash[HASH_LEN], uint64_t *ret_size, uint64_t *ret_off)
{
	char *buf;
	struct hash_ctx h = { 0 };
	uint64_t pos = 0;
	int pack, r;

	util_heavy(size);
	buf = malloc(STAGE_CHUNK);
	if (!buf)
		return -ENOMEM;
	r = stage_reserve(s, txn, size, &pack, ret_off);
	if (r < 0)
		goto out;
	r = hash_init(&h);
	if (r < 0)
		goto out;
	for (;;) {
		ssize_t n = read(fd, buf, STAGE_CHUNK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		if (pos + (uint64_t)n > size) {
			r = -EAGAIN; /* grew while we read it: the caller reads it again */
			goto out;
		}
		r = hash_update(&h, buf, (size_t)n);
		/* Zeros stay a hole: the region was never written. */
		if (r == 0 && !all_zero(buf, (size_t)n))
			r = util_pwrite_full(pack, buf, (size_t)n, (off_t)(*ret_off + pos));
		if (r < 0)
			goto out;
		pos += (uint64_t)n;
	}
	if (pos != size) {
		r = -EAGAIN; /* shrank while we read it */
		goto out;
	}
	r = hash_final(&h, ret_hash);
	if (r == 0)
		*ret_size = size;
out:
	hash_release(&h);
	free(buf);
	return r;
}

int store_stage_buf(struct store *s, int64_t txn, const void *data, size_t n,
		    uint8_t ret_hash[HASH_LEN], uint64_t *ret_off)
{
	int pack, r = hash_buf(data, n, ret_hash);

	if (r == 0)
		r = stage_reserve(s, txn, n, &pack, ret_off);
	if (r == 0 && n)
		r = util_pwrite_full(pack, data, n, (off_t)*ret_off);
	return r;
}

/* Where the original with this hash is staged (in txn, or any transaction if txn is 0). */
static int stage_find(struct store *s, const uint8_t hash[HASH_LEN], int64_t txn, int64_t *ret_txn,
		      uint64_t *ret_off, uint64_t *ret_size)
{
	static const char q_any[] = "SELECT txn, off, size FROM staged WHERE hash = ? LIMIT 1";
	static const char q_txn[] = "SELECT txn, off, size FROM staged WHERE hash = ? AND txn = ?";
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, txn ? q_txn : q_any, &r);
	if (st) {
		sqlite3_bind_blob(st, 1, hash, HASH_LEN, SQLITE_STATIC);
		if (txn)
			sqlite3_bind_int64(st, 2, txn);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*ret_txn = sqlite3_column_int64(st, 0);
			*ret_off = (uint64_t)sqlite3_column_int64(st, 1);
			*ret_size = (uint64_t)sqlite3_column_int64(st, 2);
		}
		r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
		sqlite3_reset(st);
	}
	store_unlock(s);
	return r;
}

static int stage_open(struct store *s, int64_t txn)
{
	char name[64];

	snprintf(name, sizeof(name), "%lld/" STAGE_NAME, (long long)txn);
	return util_openat(s->txnfd, name, O_RDONLY | O_NOFOLLOW, 0);
}

/* Stream a staged range through the hash into sink; -EBADMSG if it does not hash to hash. */
static int64_t stage_stream(int fd, uint64_t off, uint64_t size, const uint8_t hash[HASH_LEN],
			    store_sink_fn sink, void *ctx)
{
	char *buf = malloc(STAGE_CHUNK);
	uint8_t got[HASH_LEN];
	struct hash_ctx h = { 0 };
	uint64_t pos = 0;
	int r;

	if (!buf)
		return -ENOMEM;
	r = hash_init(&h);
	while (r == 0 && pos < size) {
		size_t want = size - pos < STAGE_CHUNK ? (size_t)(size - pos) : STAGE_CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)(off + pos));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno
				  : -EBADMSG; /* the staging file is shorter than its index */
			break;
		}
		r = hash_update(&h, buf, (size_t)n);
		if (r == 0 && sink)
			r = sink(ctx, buf, (size_t)n);
		pos += (uint64_t)n;
	}
	if (r == 0)
		r = hash_final(&h, got);
	if (r == 0 && memcmp(got, hash, HASH_LEN) != 0)
		r = -EBADMSG;
	hash_release(&h);
	free(buf);
	return r < 0 ? r : (int64_t)size;
}

int64_t store_stage_read(struct store *s, const uint8_t hash[HASH_LEN], store_sink_fn sink,
			 void *ctx)
{
	uint64_t off, size;
	int64_t txn, r;
	int fd;

	r = stage_find(s, hash, 0, &txn, &off, &size);
	if (r < 0)
		return r;
	fd = stage_open(s, txn);
	if (fd < 0)
		return fd == -ENOENT ? -EBADMSG : fd; /* indexed, but its file is gone */
	r = stage_stream(fd, off, size, hash, sink, ctx);
	util_close(fd);
	return r;
}

static int sink_strbuf(void *ctx, const void *data, size_t n)
{
	return strbuf_add(ctx, data, n);
}

/* Make one staged original a blob, verified on the way. */
static int promote_one(struct store *s, int fd, uint64_t off, uint64_t size,
		       const uint8_t hash[HASH_LEN])
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t got[HASH_LEN];
	int64_t r;

	if (size > STAGE_PROMOTE_INLINE)
		return store_put_range(s, fd, (off_t)off, size, hash);
	r = stage_stream(fd, off, size, hash, sink_strbuf, &sb);
	if (r >= 0)
		r = store_put_buf(s, sb.buf ? sb.buf : "", sb.len, got);
	strbuf_release(&sb);
	return r < 0 ? (int)r : 0;
}

struct promote_work {
	struct store *s;
	int64_t txn;
	int fd; /* the staging file, opened once and read with pread by every worker */
	struct store_change *c;
};

static int promote_row(void *ctx, size_t i)
{
	struct promote_work *w = ctx;
	const struct store_entry *o = &w->c[i].orig;
	uint64_t off, size;
	int64_t where;
	int r;

	if (!o->has_hash || !(S_ISREG(o->mode) || S_ISLNK(o->mode)))
		return 0;
	/* Already a blob (make sure it is indexed), or made from the staged copy. */
	r = store_blob_adopt(w->s, o->hash);
	if (r == 0)
		return 0;
	if (r != -ENOENT && r != -EBADMSG)
		return r;
	r = stage_find(w->s, o->hash, w->txn, &where, &off, &size);
	if (r < 0) {
		char name[96];

		return log_debug_errno(r,
				       "the original of '%s' ('%s') is neither a blob nor staged",
				       w->c[i].path, store_blob_name(o->hash, name));
	}
	if (w->fd < 0)
		return -ENOENT;
	r = promote_one(w->s, w->fd, off, size, o->hash);
	if (r == -EBADMSG)
		log_debug("the staged original of '%s' is corrupt", w->c[i].path);
	return r;
}

int store_stage_promote(struct store *s, int64_t txn)
{
	struct promote_work w = { .s = s, .txn = txn };
	struct store_change *c = NULL;
	size_t n = 0;
	int r;

	r = store_change_list(s, txn, true, &c, &n);
	if (r < 0)
		return r;
	/* Absent when nothing was staged (no daemon ran): promote_row then needs blobs. */
	w.fd = stage_open(s, txn);
	if (w.fd < 0 && w.fd != -ENOENT) {
		store_changes_free(c, n);
		return w.fd;
	}
	/*
	 * The new blobs of each batch of rows are published together, in one
	 * SQLite transaction; batches keep the queue and the transaction small
	 * whatever the size of the commit.
	 */
	r = 0;
	for (size_t i = 0; i < n && r == 0; i += PROMOTE_BATCH) {
		size_t end = i + PROMOTE_BATCH < n ? i + PROMOTE_BATCH : n;

		w.c = c + i;
		store_put_defer(s);
		r = util_parallel_for(end - i, promote_row, &w);
		r = store_put_publish(s, r);
	}
	util_close(w.fd);
	store_changes_free(c, n);
	return r < 0 ? r : 0;
}

int store_stage_forget(struct store *s, int64_t txn)
{
	static const char q[] = "DELETE FROM staged WHERE txn = ?";
	sqlite3_stmt *st;
	int r = 0;

	pthread_mutex_lock(&s->stage_lock);
	if (s->stage_txn == txn) {
		util_close(s->stage_fd);
		s->stage_fd = -1;
		s->stage_txn = 0;
	}
	pthread_mutex_unlock(&s->stage_lock);
	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		sqlite3_bind_int64(st, 1, txn);
		r = db_step_done(s->db, st);
	}
	store_unlock(s);
	return r;
}
