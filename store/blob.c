// SPDX-License-Identifier: MIT
/*
 * Content-addressed blobs: objects/ab/<sha256>, or objects/ab/<sha256>.zst
 * when zstd saves space. A blob is written to tmp/, hashed on the way
 * (always the uncompressed bytes), then published: its index row and the
 * rename into objects/ happen in one SQLite write transaction, which is what
 * lets gc decide "no row, so no writer needs this file" (gc.c). Identical
 * content is kept once. Nothing is fsynced per blob: store_sync() flushes
 * them all before a commit point refers to them (until then PKG itself
 * still holds every byte).
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#include "log.h"

#define BLOB_CHUNK (128 * 1024)
/* Files up to this size are compressed in memory; bigger ones are judged on this much. */
#define BLOB_PROBE (1024 * 1024)
#define BLOB_ZSTD_SUFFIX ".zst"

const char *store_blob_name(const uint8_t hash[HASH_LEN], char buf[96])
{
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(hash, hex);
	snprintf(buf, 96, "objects/%.2s/%s", hex, hex);
	return buf;
}

void store_blob_relname(const uint8_t hash[HASH_LEN], int encoding, char buf[72])
{
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(hash, hex);
	snprintf(buf, 72, "%.2s/%s%s", hex, hex,
		 encoding == STORE_BLOB_ZSTD ? BLOB_ZSTD_SUFFIX : "");
}

int store_blob_parse_name(const char *name, uint8_t ret_hash[HASH_LEN], int *ret_encoding)
{
	char hex[HASH_HEX_LEN + 1];
	size_t len = strlen(name);
	int enc;

	if (len == HASH_HEX_LEN)
		enc = STORE_BLOB_RAW;
	else if (len == HASH_HEX_LEN + strlen(BLOB_ZSTD_SUFFIX) &&
		 strcmp(name + HASH_HEX_LEN, BLOB_ZSTD_SUFFIX) == 0)
		enc = STORE_BLOB_ZSTD;
	else
		return -EINVAL;
	memcpy(hex, name, HASH_HEX_LEN);
	hex[HASH_HEX_LEN] = '\0';
	if (hash_from_hex(hex, ret_hash) < 0)
		return -EINVAL;
	if (ret_encoding)
		*ret_encoding = enc;
	return 0;
}

/* Which form of the blob exists: 1 with *ret_enc and *ret_st, 0 if none, -errno. */
static int blob_find(struct store *s, const uint8_t hash[HASH_LEN], int *ret_enc,
		     struct stat *ret_st)
{
	static const int forms[] = { STORE_BLOB_RAW, STORE_BLOB_ZSTD };
	char rel[72];
	struct stat st;

	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		store_blob_relname(hash, forms[i], rel);
		if (fstatat(s->objfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (!S_ISREG(st.st_mode))
				return -EIO;
			if (ret_enc)
				*ret_enc = forms[i];
			if (ret_st)
				*ret_st = st;
			return 1;
		}
		if (errno != ENOENT)
			return -errno;
	}
	return 0;
}

int store_has(struct store *s, const uint8_t hash[HASH_LEN])
{
	return blob_find(s, hash, NULL, NULL);
}

const char *store_blob_file(struct store *s, const uint8_t hash[HASH_LEN], char buf[96])
{
	char rel[72];
	int enc = STORE_BLOB_RAW;

	if (blob_find(s, hash, &enc, NULL) != 1)
		enc = STORE_BLOB_RAW;
	store_blob_relname(hash, enc, rel);
	snprintf(buf, 96, "objects/%s", rel);
	return buf;
}

int store_blob_info(struct store *s, const uint8_t hash[HASH_LEN], uint64_t *ret_size,
		    uint64_t *ret_stored_size, int *ret_encoding)
{
	static const char q[] = "SELECT size, stored_size, encoding FROM blob WHERE hash = ?";
	sqlite3_stmt *st;
	int r = 0, rc;

	store_lock(s);
	st = db_stmt(s->db, q, &r);
	if (st) {
		sqlite3_bind_blob(st, 1, hash, HASH_LEN, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			if (ret_size)
				*ret_size = (uint64_t)sqlite3_column_int64(st, 0);
			if (ret_stored_size)
				*ret_stored_size = (uint64_t)sqlite3_column_int64(st, 1);
			if (ret_encoding)
				*ret_encoding = sqlite3_column_int(st, 2);
		}
		r = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? -ENOENT : db_errno(rc);
		sqlite3_reset(st);
	}
	store_unlock(s);
	return r;
}

int store_blob_upsert_locked(struct store *s, const uint8_t hash[HASH_LEN], uint64_t size,
			     uint64_t stored_size, int encoding)
{
	/*
	 * A row that is already right and was used in the last few seconds is
	 * left alone: then the SQLite transaction writes nothing and commits
	 * without a sync, which keeps storing the same content again (sealing
	 * unchanged files, dedup) nearly free. gc's grace period is far longer
	 * than the staleness this allows (BLOB_USED_SLACK).
	 */
	static const char sql[] =
		"INSERT INTO blob(hash, size, stored_size, encoding, created_ns, used_ns)"
		" VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT(hash) DO UPDATE SET"
		" used_ns = excluded.used_ns, stored_size = excluded.stored_size,"
		" encoding = excluded.encoding"
		" WHERE blob.used_ns < excluded.used_ns - ?6 OR blob.stored_size != excluded.stored_size"
		" OR blob.encoding != excluded.encoding";
	int r = 0;
	sqlite3_stmt *st = db_stmt(s->db, sql, &r);

	if (!st)
		return r;
	sqlite3_bind_blob(st, 1, hash, HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)size);
	sqlite3_bind_int64(st, 3, (int64_t)stored_size);
	sqlite3_bind_int(st, 4, encoding);
	sqlite3_bind_int64(st, 5, util_now_ns());
	sqlite3_bind_int64(st, 6, STORE_BLOB_USED_SLACK_NS);
	return db_step_done(s->db, st);
}

static void tmp_name(char buf[64])
{
	static unsigned long counter;
	unsigned long n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);

	/* The pid lets recovery tell a dead writer's leftovers from a live one's. */
	snprintf(buf, 64, "%ld.%lu", (long)getpid(), n);
}

/*
 * Move tmp/<tmp> to its content address, or drop it if the blob exists in
 * either form, and insert or refresh the row, all in one SQLite write
 * transaction. gc deletes a file only inside such a transaction after
 * checking its row is gone (gc.c), so a row written here can never end up
 * pointing at a file that gc removed.
 */
static int blob_publish_now(struct store *s, const char *tmp, const uint8_t hash[HASH_LEN],
			    uint64_t size, uint64_t stored, int encoding)
{
	char rel[72], dir[3];
	struct stat st;
	int enc, r;

	r = store_batch_begin(s);
	if (r < 0)
		goto out_unlink;
	r = blob_find(s, hash, &enc, &st);
	if (r < 0)
		goto out_rollback;
	if (r == 1) {
		(void)unlinkat(s->tmpfd, tmp, 0);
		r = store_blob_upsert_locked(s, hash, size, (uint64_t)st.st_size, enc);
		if (r < 0)
			goto out_rollback;
		return store_batch_commit(s);
	}
	store_blob_relname(hash, encoding, rel);
	memcpy(dir, rel, 2);
	dir[2] = '\0';
	r = util_mkdirat(s->objfd, dir, 0700);
	if (r < 0 && r != -EEXIST)
		goto out_rollback;
	r = util_renameat(s->tmpfd, tmp, s->objfd, rel);
	if (r < 0)
		goto out_rollback;
	r = store_blob_upsert_locked(s, hash, size, stored, encoding);
	if (r < 0) {
		/* No row will say this file is needed: gc treats it as an orphan. */
		store_batch_rollback(s);
		return r;
	}
	return store_batch_commit(s);

out_rollback:
	store_batch_rollback(s);
out_unlink:
	(void)unlinkat(s->tmpfd, tmp, 0);
	return r;
}

/* A blob written to tmp/ and waiting for store_put_publish(). */
struct store_pending_blob {
	char tmp[64];
	uint8_t hash[HASH_LEN];
	uint64_t size, stored;
	int encoding;
};

/* Publish now, or queue while a deferral is on. */
static int blob_publish(struct store *s, const char *tmp, const uint8_t hash[HASH_LEN],
			uint64_t size, uint64_t stored, int encoding)
{
	struct store_pending_blob *p;

	pthread_mutex_lock(&s->defer_lock);
	if (!s->defer) {
		pthread_mutex_unlock(&s->defer_lock);
		return blob_publish_now(s, tmp, hash, size, stored, encoding);
	}
	if (s->n_pending == s->cap_pending) {
		size_t cap = s->cap_pending ? 2 * s->cap_pending : 256;

		p = realloc(s->pending, cap * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&s->defer_lock);
			(void)unlinkat(s->tmpfd, tmp, 0);
			return -ENOMEM;
		}
		s->pending = p;
		s->cap_pending = cap;
	}
	p = &s->pending[s->n_pending++];
	snprintf(p->tmp, sizeof(p->tmp), "%s", tmp);
	memcpy(p->hash, hash, HASH_LEN);
	p->size = size;
	p->stored = stored;
	p->encoding = encoding;
	pthread_mutex_unlock(&s->defer_lock);
	return 0;
}

void store_put_defer(struct store *s)
{
	pthread_mutex_lock(&s->defer_lock);
	s->defer = true;
	pthread_mutex_unlock(&s->defer_lock);
}

int store_put_publish(struct store *s, int failed)
{
	bool began = false;
	size_t i = 0;
	int r = failed;

	pthread_mutex_lock(&s->defer_lock);
	s->defer = false;
	pthread_mutex_unlock(&s->defer_lock);
	/* No put queues any more: the queue is ours. */
	if (r == 0 && s->n_pending) {
		r = store_batch_begin(s);
		began = r == 0;
	}
	/* Each publish drops its own temporary when it fails. */
	for (; r == 0 && i < s->n_pending; i++) {
		const struct store_pending_blob *p = &s->pending[i];

		r = blob_publish_now(s, p->tmp, p->hash, p->size, p->stored, p->encoding);
	}
	/*
	 * Rolled back, the files already moved to their addresses have no row:
	 * gc removes them as orphans, a later put of the same bytes adopts them.
	 */
	if (began && r == 0)
		r = store_batch_commit(s);
	else if (began)
		store_batch_rollback(s);
	/* What was not published is dropped; after a crash, recovery removes it from tmp/. */
	for (; i < s->n_pending; i++)
		(void)unlinkat(s->tmpfd, s->pending[i].tmp, 0);
	s->n_pending = 0;
	return r;
}

/*
 * Append n bytes to a regular file being written from start to end; with
 * sparse, a chunk of zeros becomes a hole instead (finish with end_sparse).
 * A sparse file (a disk image, a file written at a 5 GiB offset) then costs
 * what it holds, in the store and in PKG, not its size.
 */
static int write_sparse(int fd, const void *data, size_t n, bool sparse)
{
	const char *buf = data;

	if (sparse && n && buf[0] == 0 && memcmp(buf, buf + 1, n - 1) == 0)
		return lseek(fd, (off_t)n, SEEK_CUR) < 0 ? -errno : 0;
	return util_write_full(fd, buf, n);
}

/* Give the file its full size when it ends in a hole. */
static int end_sparse(int fd)
{
	off_t end = lseek(fd, 0, SEEK_CUR);

	if (end < 0)
		return -errno;
	return ftruncate(fd, end) < 0 ? -errno : 0;
}

static bool blob_worth_compressing(const struct store *s, uint64_t raw, uint64_t comp)
{
	uint64_t bs = s->blksize ? s->blksize : 4096;

	/* Fewer blocks on disk, or it is not worth a decompression on every read. */
	return (comp + bs - 1) / bs < (raw + bs - 1) / bs;
}

static ZSTD_CCtx *blob_cctx_new(void)
{
	ZSTD_CCtx *z = ZSTD_createCCtx();

	if (!z)
		return NULL;
	/* The frame's own checksum lets `zstd -d` check a blob recovered by hand. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_compressionLevel, ZSTD_CLEVEL_DEFAULT)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(z, ZSTD_c_checksumFlag, 1))) {
		ZSTD_freeCCtx(z);
		return NULL;
	}
	return z;
}

/* Compress all of data into a malloc'd buffer; 0 with *ret and *ret_n, or -errno. */
static int blob_compress_buf(const void *data, size_t n, void **ret, size_t *ret_n)
{
	size_t cap = ZSTD_compressBound(n), got;
	ZSTD_CCtx *z = blob_cctx_new();
	void *out = malloc(cap ? cap : 1);

	if (!z || !out) {
		ZSTD_freeCCtx(z);
		free(out);
		return -ENOMEM;
	}
	got = ZSTD_compress2(z, out, cap, data, n);
	ZSTD_freeCCtx(z);
	if (ZSTD_isError(got)) {
		free(out);
		return -EIO;
	}
	*ret = out;
	*ret_n = got;
	return 0;
}

/* Write data (n bytes, the whole content) to a new temporary, compressed if worth it. */
static int blob_write_small(struct store *s, const void *data, size_t n, char tmp[64],
			    uint64_t *ret_stored, int *ret_enc)
{
	void *comp = NULL;
	size_t clen = 0;
	int out, r;

	if (n > 0 && blob_compress_buf(data, n, &comp, &clen) == 0 &&
	    blob_worth_compressing(s, n, clen)) {
		data = comp;
		*ret_enc = STORE_BLOB_ZSTD;
		*ret_stored = clen;
	} else {
		*ret_enc = STORE_BLOB_RAW;
		*ret_stored = n;
	}
	tmp_name(tmp);
	out = util_openat(s->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (out < 0) {
		free(comp);
		return out;
	}
	r = *ret_stored ? util_write_full(out, data, (size_t)*ret_stored) : 0;
	if (close(out) < 0 && r == 0)
		r = -errno;
	if (r < 0)
		(void)unlinkat(s->tmpfd, tmp, 0);
	free(comp);
	return r;
}

/* Compress in with mode into out_buf, writing every produced byte to fd. */
static int blob_zstd_pump(ZSTD_CCtx *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode, int fd,
			  void *obuf, size_t ocap, uint64_t *stored)
{
	size_t rem;

	do {
		ZSTD_outBuffer o = { obuf, ocap, 0 };
		int r;

		rem = ZSTD_compressStream2(z, &o, in, mode);
		if (ZSTD_isError(rem))
			return -EIO;
		r = o.pos ? util_write_full(fd, obuf, o.pos) : 0;
		if (r < 0)
			return r;
		*stored += o.pos;
	} while (mode == ZSTD_e_continue ? in->pos < in->size : rem != 0);
	return 0;
}

/*
 * A file bigger than BLOB_PROBE: the first MiB (in buf) decides between
 * zstd and raw, then the rest streams through the same path.
 */
static int blob_write_stream(struct store *s, int fd, char *buf, size_t got, struct hash_ctx *h,
			     char tmp[64], uint64_t *ret_size, uint64_t *ret_stored, int *ret_enc)
{
	size_t ocap = ZSTD_compressBound(BLOB_PROBE) + ZSTD_CStreamOutSize();
	uint64_t total = got, stored = 0;
	ZSTD_CCtx *z = blob_cctx_new();
	void *obuf = malloc(ocap);
	int out = -1, r;

	if (!z || !obuf) {
		r = -ENOMEM;
		goto out;
	}
	tmp_name(tmp);
	out = util_openat(s->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (out < 0) {
		r = out;
		goto out;
	}
	{
		ZSTD_inBuffer in = { buf, got, 0 };
		ZSTD_outBuffer o = { obuf, ocap, 0 };
		size_t rem;

		/* The probe fits obuf whole (compressBound), so nothing is written yet. */
		do {
			rem = ZSTD_compressStream2(z, &o, &in, ZSTD_e_flush);
		} while (!ZSTD_isError(rem) && rem != 0 && o.pos < o.size);
		if (!ZSTD_isError(rem) && rem == 0 && in.pos == in.size &&
		    blob_worth_compressing(s, got, o.pos)) {
			r = util_write_full(out, obuf, o.pos);
			stored = o.pos;
		} else {
			ZSTD_freeCCtx(z);
			z = NULL;
			r = write_sparse(out, buf, got, true);
			stored = got;
		}
		if (r < 0)
			goto out_unlink;
	}
	for (;;) {
		ssize_t n = read(fd, buf, BLOB_PROBE);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out_unlink;
		}
		if (n == 0)
			break;
		r = hash_update(h, buf, (size_t)n);
		if (r < 0)
			goto out_unlink;
		total += (uint64_t)n;
		if (z) {
			ZSTD_inBuffer in = { buf, (size_t)n, 0 };

			r = blob_zstd_pump(z, &in, ZSTD_e_continue, out, obuf, ocap, &stored);
		} else {
			r = write_sparse(out, buf, (size_t)n, true);
			stored += (uint64_t)n;
		}
		if (r < 0)
			goto out_unlink;
	}
	if (z) {
		ZSTD_inBuffer in = { NULL, 0, 0 };

		r = blob_zstd_pump(z, &in, ZSTD_e_end, out, obuf, ocap, &stored);
	} else {
		r = end_sparse(out); /* a raw blob keeps the holes of sparse content */
	}
	if (r < 0)
		goto out_unlink;
	if (close(out) < 0) {
		out = -1;
		r = -errno;
		goto out_unlink;
	}
	out = -1;
	*ret_size = total;
	*ret_stored = stored;
	*ret_enc = z ? STORE_BLOB_ZSTD : STORE_BLOB_RAW;
	r = 0;
	goto out;

out_unlink:
	util_close(out);
	out = -1;
	(void)unlinkat(s->tmpfd, tmp, 0);
out:
	util_close(out);
	ZSTD_freeCCtx(z);
	free(obuf);
	return r;
}

int store_put_fd(struct store *s, int fd, uint8_t ret_hash[HASH_LEN], uint64_t *ret_size)
{
	char *buf = malloc(BLOB_PROBE);
	uint8_t hash[HASH_LEN];
	struct hash_ctx h = { 0 };
	uint64_t total = 0, stored = 0;
	size_t got = 0;
	char tmp[64];
	int enc = STORE_BLOB_RAW, r;

	if (!buf)
		return -ENOMEM;
	r = hash_init(&h);
	if (r < 0)
		goto out_free;
	r = util_read_full(fd, buf, BLOB_PROBE, &got);
	if (r == 0)
		r = hash_update(&h, buf, got);
	if (r < 0)
		goto out_hash;
	if (got < BLOB_PROBE) {
		total = got;
		r = blob_write_small(s, buf, got, tmp, &stored, &enc);
	} else {
		r = blob_write_stream(s, fd, buf, got, &h, tmp, &total, &stored, &enc);
	}
	if (r < 0)
		goto out_hash;
	r = hash_final(&h, hash);
	if (r < 0) {
		(void)unlinkat(s->tmpfd, tmp, 0);
		goto out_free;
	}
	r = blob_publish(s, tmp, hash, total, stored, enc);
	if (r < 0)
		goto out_free;
	memcpy(ret_hash, hash, HASH_LEN);
	if (ret_size)
		*ret_size = total;
	free(buf);
	return 0;

out_hash:
	hash_release(&h);
out_free:
	free(buf);
	return r;
}

int store_put_buf(struct store *s, const void *data, size_t n, uint8_t ret_hash[HASH_LEN])
{
	uint8_t hash[HASH_LEN];
	uint64_t stored;
	char tmp[64];
	int enc, r;

	r = hash_buf(data, n, hash);
	if (r < 0)
		return r;
	r = blob_write_small(s, data, n, tmp, &stored, &enc);
	if (r < 0)
		return r;
	r = blob_publish(s, tmp, hash, n, stored, enc);
	if (r < 0)
		return r;
	memcpy(ret_hash, hash, HASH_LEN);
	return 0;
}

/* Open a blob in whichever form exists; fd or -errno (-ENOENT if neither). */
static int blob_open(struct store *s, const uint8_t hash[HASH_LEN], int *ret_enc)
{
	static const int forms[] = { STORE_BLOB_RAW, STORE_BLOB_ZSTD };
	char rel[72];

	for (size_t i = 0; i < ARRAY_SIZE(forms); i++) {
		int fd;

		store_blob_relname(hash, forms[i], rel);
		fd = util_openat(s->objfd, rel, O_RDONLY | O_NOFOLLOW, 0);
		if (fd >= 0) {
			*ret_enc = forms[i];
			return fd;
		}
		if (fd != -ENOENT)
			return fd;
	}
	return -ENOENT;
}

/* Where the bytes of a blob go while they are hashed. */
struct blob_sink {
	struct hash_ctx h;
	int outfd;	   /* or -1 */
	struct strbuf *sb; /* or NULL */
	size_t limit;	   /* for sb; 0 = none */
	uint64_t total;
	uint64_t expect; /* decompressed size from the index, 0 = unknown */
	bool sparse;	 /* outfd is a regular file: zeros become holes */
};

static int sink_put(struct blob_sink *k, const void *p, size_t n)
{
	int r;

	if (n == 0)
		return 0;
	k->total += n;
	/* A damaged frame must not fill the disk before the hash can tell. */
	if (k->expect && k->total > k->expect)
		return -EBADMSG;
	r = hash_update(&k->h, p, n);
	if (r < 0)
		return r;
	if (k->outfd >= 0)
		return write_sparse(k->outfd, p, n, k->sparse);
	if (k->sb) {
		if (k->limit && k->sb->len + n > k->limit)
			return -EFBIG;
		return strbuf_add(k->sb, p, n);
	}
	return 0;
}

static int blob_read_raw(int in, struct blob_sink *k)
{
	char *buf = malloc(BLOB_CHUNK);
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(in, buf, BLOB_CHUNK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		r = sink_put(k, buf, (size_t)n);
		if (r < 0)
			break;
	}
	free(buf);
	return r;
}

static int blob_read_zstd(int in, struct blob_sink *k)
{
	size_t icap = ZSTD_DStreamInSize(), ocap = ZSTD_DStreamOutSize();
	ZSTD_DCtx *z = ZSTD_createDCtx();
	char *ibuf = malloc(icap), *obuf = malloc(ocap);
	size_t last = 1; /* 0 once a frame is complete */
	int r = 0;

	if (!z || !ibuf || !obuf) {
		r = -ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = read(in, ibuf, icap);
		ZSTD_inBuffer i;
		bool full;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		i = (ZSTD_inBuffer){ ibuf, (size_t)n, 0 };
		do {
			ZSTD_outBuffer o = { obuf, ocap, 0 };

			last = ZSTD_decompressStream(z, &o, &i);
			if (ZSTD_isError(last)) {
				r = -EBADMSG;
				goto out;
			}
			r = sink_put(k, obuf, o.pos);
			if (r < 0)
				goto out;
			/*
			 * A full output buffer may hide more output for the same
			 * input, unless the frame just ended (0: decoded and
			 * flushed whole). Asking again then would start a next
			 * frame with no input and return its header's size,
			 * which would read as a truncated frame.
			 */
			full = o.pos == o.size && last != 0;
		} while (i.pos < i.size || full);
	}
	if (last != 0)
		r = -EBADMSG; /* truncated: the frame never ended */
out:
	ZSTD_freeDCtx(z);
	free(ibuf);
	free(obuf);
	return r;
}

/* Where staged bytes go when a blob is read from the staging file (stage.c hashes them). */
static int sink_plain(void *ctx, const void *p, size_t n)
{
	struct blob_sink *k = ctx;

	k->total += n;
	if (k->outfd >= 0)
		return write_sparse(k->outfd, p, n, k->sparse);
	if (k->sb) {
		if (k->limit && k->sb->len + n > k->limit)
			return -EFBIG;
		return strbuf_add(k->sb, p, n);
	}
	return 0;
}

/* Stream a blob through the hash into out (fd, or strbuf when outfd < 0). */
static int64_t blob_stream(struct store *s, const uint8_t hash[HASH_LEN], int outfd,
			   struct strbuf *sb, size_t limit)
{
	struct blob_sink k = { .outfd = outfd, .sb = sb, .limit = limit };
	uint8_t got[HASH_LEN];
	struct stat st;
	int in, enc = STORE_BLOB_RAW, r;

	/* Holes where the content has zeros, when writing a regular file. */
	k.sparse = outfd >= 0 && fstat(outfd, &st) == 0 && S_ISREG(st.st_mode);
	in = blob_open(s, hash, &enc);
	if (in == -ENOENT) {
		/* An original an open transaction staged and no seal has made a blob yet. */
		int64_t n = store_stage_read(s, hash, sink_plain, &k);

		if (n >= 0 && k.sparse) {
			int r2 = end_sparse(outfd);

			if (r2 < 0)
				n = r2;
		}
		return n;
	}
	if (in < 0)
		return in;
	r = hash_init(&k.h);
	if (r < 0)
		goto out;
	if (enc == STORE_BLOB_ZSTD) {
		if (store_blob_info(s, hash, &k.expect, NULL, NULL) < 0)
			k.expect = 0;
		r = blob_read_zstd(in, &k);
	} else {
		r = blob_read_raw(in, &k);
	}
	if (r == 0 && k.sparse)
		r = end_sparse(outfd);
	if (r < 0)
		goto out;
	r = hash_final(&k.h, got);
	if (r < 0)
		goto out;
	if (memcmp(got, hash, HASH_LEN) != 0)
		r = -EBADMSG;
out:
	if (r == -EBADMSG) {
		char name[96];

		log_debug("blob '%s' is corrupt", store_blob_file(s, hash, name));
	}
	hash_release(&k.h);
	util_close(in);
	return r < 0 ? r : (int64_t)k.total;
}

int64_t store_blob_copy(struct store *s, const uint8_t hash[HASH_LEN], int outfd)
{
	return blob_stream(s, hash, outfd, NULL, 0);
}

int store_blob_read(struct store *s, const uint8_t hash[HASH_LEN], struct strbuf *out, size_t limit)
{
	size_t old = out->len;
	int64_t r = blob_stream(s, hash, -1, out, limit);

	if (r < 0) {
		/* Never hand out bytes that failed verification. */
		out->len = old;
		if (out->buf)
			out->buf[old] = '\0';
		return (int)r;
	}
	return 0;
}

int store_blob_verify(struct store *s, const uint8_t hash[HASH_LEN])
{
	int64_t r = blob_stream(s, hash, -1, NULL, 0);

	return r < 0 ? (int)r : 0;
}

int store_sync(struct store *s)
{
	/*
	 * One syncfs flushes every blob written so far, and the renames that
	 * named them, with a single device flush instead of one per blob. Since
	 * Linux 5.8 it also reports writeback errors of the filesystem.
	 */
	return util_syncfs(s->objfd);
}

int store_put_range(struct store *s, int fd, off_t off, uint64_t size, const uint8_t want[HASH_LEN])
{
	uint8_t got[HASH_LEN];
	loff_t in = off;
	uint64_t left = size;
	int tmp, r = 0;

	/* An unnamed file in tmp/: nothing to clean up if we die, and put reads it whole. */
	tmp = util_openat(s->tmpfd, ".", O_TMPFILE | O_RDWR, 0600);
	if (tmp == -EOPNOTSUPP || tmp == -EISDIR || tmp == -EINVAL) {
		char name[64];

		tmp_name(name);
		tmp = util_openat(s->tmpfd, name, O_RDWR | O_CREAT | O_EXCL, 0600);
		if (tmp >= 0)
			(void)unlinkat(s->tmpfd, name, 0);
	}
	if (tmp < 0)
		return tmp;
	while (left > 0) {
		ssize_t n = copy_file_range(fd, &in, tmp, NULL, left, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 &&
		    (errno == EXDEV || errno == EOPNOTSUPP || errno == ENOSYS || errno == EINVAL)) {
			char buf[64 * 1024];
			size_t want_n = left < sizeof(buf) ? (size_t)left : sizeof(buf);

			n = pread(fd, buf, want_n, in);
			if (n > 0) {
				r = util_write_full(tmp, buf, (size_t)n);
				if (r < 0)
					break;
				in += n;
			}
		}
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			r = -EBADMSG; /* the source is shorter than its index says */
			break;
		}
		left -= (uint64_t)n;
	}
	if (r == 0 && lseek(tmp, 0, SEEK_SET) < 0)
		r = -errno;
	if (r == 0)
		r = store_put_fd(s, tmp, got, NULL);
	/* Stored under the hash of what was read; the caller wanted those bytes exactly. */
	if (r == 0 && want && memcmp(got, want, HASH_LEN) != 0)
		r = -EBADMSG;
	util_close(tmp);
	return r;
}

int store_blob_adopt(struct store *s, const uint8_t hash[HASH_LEN])
{
	struct stat st;
	int64_t size;
	int enc = STORE_BLOB_RAW, r;

	r = store_blob_info(s, hash, NULL, NULL, NULL);
	if (r != -ENOENT)
		return r;
	r = blob_find(s, hash, &enc, &st);
	if (r <= 0)
		return r < 0 ? r : -ENOENT;
	size = blob_stream(s, hash, -1, NULL, 0);
	if (size == -EBADMSG) {
		char rel[72];

		/* Nothing indexes it: drop it, or a new put would keep the bad copy (dedup). */
		store_blob_relname(hash, enc, rel);
		(void)unlinkat(s->objfd, rel, 0);
		return -EBADMSG;
	}
	if (size < 0)
		return (int)size;
	r = store_batch_begin(s);
	if (r < 0)
		return r;
	r = store_blob_upsert_locked(s, hash, (uint64_t)size, (uint64_t)st.st_size, enc);
	if (r < 0) {
		store_batch_rollback(s);
		return r;
	}
	return store_batch_commit(s);
}
