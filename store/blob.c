// SPDX-License-Identifier: MIT
/*
 * Content-addressed blobs: objects/ab/<sha256>. A blob is written to tmp/,
 * hashed on the way, then renamed into objects/; identical content is kept
 * once. Nothing is fsynced per blob: store_sync() flushes them all before a
 * commit point refers to them (until then PKG itself still holds every byte).
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define BLOB_CHUNK (128 * 1024)

const char *store_blob_name(const uint8_t hash[HASH_LEN], char buf[96])
{
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(hash, hex);
	snprintf(buf, 96, "objects/%.2s/%s", hex, hex);
	return buf;
}

/* "ab/<hex>" relative to objects/. */
static void blob_relname(const uint8_t hash[HASH_LEN], char buf[HASH_HEX_LEN + 4])
{
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(hash, hex);
	snprintf(buf, HASH_HEX_LEN + 4, "%.2s/%s", hex, hex);
}

int store_has(struct store *s, const uint8_t hash[HASH_LEN])
{
	char rel[HASH_HEX_LEN + 4];
	struct stat st;

	blob_relname(hash, rel);
	if (fstatat(s->objfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return S_ISREG(st.st_mode) ? 1 : -EIO;
	return errno == ENOENT ? 0 : -errno;
}

int store_blob_row_locked(struct store *s, const uint8_t hash[HASH_LEN], uint64_t size,
			  uint64_t stored_size, int encoding)
{
	static const char sql[] = "INSERT OR IGNORE INTO blob(hash, size, stored_size, encoding,"
				  " created_ns) VALUES (?, ?, ?, ?, ?)";
	int r = 0;
	sqlite3_stmt *st = db_stmt(s->db, sql, &r);

	if (!st)
		return r;
	sqlite3_bind_blob(st, 1, hash, HASH_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)size);
	sqlite3_bind_int64(st, 3, (int64_t)stored_size);
	sqlite3_bind_int(st, 4, encoding);
	sqlite3_bind_int64(st, 5, util_now_ns());
	return db_step_done(s->db, st);
}

static int tmp_name(char buf[64])
{
	static unsigned long counter;
	unsigned long n = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);

	/* The pid lets recovery tell a dead writer's leftovers from a live one's. */
	snprintf(buf, 64, "%ld.%lu", (long)getpid(), n);
	return 0;
}

/* Move tmp/<name> to its content address; drops it if the blob already exists. */
static int blob_publish(struct store *s, const char *tmp, const uint8_t hash[HASH_LEN])
{
	char rel[HASH_HEX_LEN + 4];
	char dir[3];
	int r;

	r = store_has(s, hash);
	if (r != 0) {
		(void)unlinkat(s->tmpfd, tmp, 0);
		return r < 0 ? r : 0;
	}
	blob_relname(hash, rel);
	memcpy(dir, rel, 2);
	dir[2] = '\0';
	r = util_mkdirat(s->objfd, dir, 0700);
	if (r < 0 && r != -EEXIST)
		goto out_unlink;
	/* Two writers of the same content may both get here: rename is atomic, both win. */
	r = util_renameat(s->tmpfd, tmp, s->objfd, rel);
	if (r < 0)
		goto out_unlink;
	return 0;

out_unlink:
	(void)unlinkat(s->tmpfd, tmp, 0);
	return r;
}

/*
 * Append n bytes to a regular file being written from start to end; with
 * sparse, a chunk of zeros becomes a hole instead (finish with end_sparse).
 * A sparse file (a disk image, a file written at a 5 GiB offset) then costs
 * what it holds, in the store and in PKG, not its size.
 */
static int write_sparse(int fd, const char *buf, size_t n, bool sparse)
{
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

int store_put_fd(struct store *s, int fd, uint8_t ret_hash[HASH_LEN], uint64_t *ret_size)
{
	char *buf = malloc(BLOB_CHUNK);
	uint8_t hash[HASH_LEN];
	struct hash_ctx h = { 0 };
	uint64_t total = 0;
	char tmp[64];
	int out, r;

	if (!buf)
		return -ENOMEM;
	tmp_name(tmp);
	out = util_openat(s->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	if (out < 0) {
		free(buf);
		return out;
	}
	r = hash_init(&h);
	if (r < 0)
		goto out_unlink;
	for (;;) {
		ssize_t n = read(fd, buf, BLOB_CHUNK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out_unlink;
		}
		if (n == 0)
			break;
		r = hash_update(&h, buf, (size_t)n);
		if (r < 0)
			goto out_unlink;
		r = write_sparse(out, buf, (size_t)n, true);
		if (r < 0)
			goto out_unlink;
		total += (uint64_t)n;
	}
	r = end_sparse(out);
	if (r == 0)
		r = hash_final(&h, hash);
	if (r < 0)
		goto out_unlink;
	if (close(out) < 0) {
		out = -1;
		r = -errno;
		goto out_unlink;
	}
	out = -1;
	r = blob_publish(s, tmp, hash);
	if (r < 0)
		goto out_free;
	store_lock(s);
	r = store_blob_row_locked(s, hash, total, total, 0);
	store_unlock(s);
	if (r < 0)
		goto out_free;
	memcpy(ret_hash, hash, HASH_LEN);
	if (ret_size)
		*ret_size = total;
	free(buf);
	return 0;

out_unlink:
	hash_release(&h);
	util_close(out);
	(void)unlinkat(s->tmpfd, tmp, 0);
out_free:
	free(buf);
	return r;
}

int store_put_buf(struct store *s, const void *data, size_t n, uint8_t ret_hash[HASH_LEN])
{
	uint8_t hash[HASH_LEN];
	char tmp[64];
	int out, r;

	r = hash_buf(data, n, hash);
	if (r < 0)
		return r;
	r = store_has(s, hash);
	if (r < 0)
		return r;
	if (r == 0) {
		tmp_name(tmp);
		out = util_openat(s->tmpfd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (out < 0)
			return out;
		r = util_write_full(out, data, n);
		if (close(out) < 0 && r == 0)
			r = -errno;
		if (r < 0) {
			(void)unlinkat(s->tmpfd, tmp, 0);
			return r;
		}
		r = blob_publish(s, tmp, hash);
		if (r < 0)
			return r;
	}
	store_lock(s);
	r = store_blob_row_locked(s, hash, n, n, 0);
	store_unlock(s);
	if (r < 0)
		return r;
	memcpy(ret_hash, hash, HASH_LEN);
	return 0;
}

static int blob_open(struct store *s, const uint8_t hash[HASH_LEN])
{
	char rel[HASH_HEX_LEN + 4];

	blob_relname(hash, rel);
	return util_openat(s->objfd, rel, O_RDONLY | O_NOFOLLOW, 0);
}

/* Stream a blob through the hash into out (fd, or strbuf when outfd < 0). */
static int64_t blob_stream(struct store *s, const uint8_t hash[HASH_LEN], int outfd,
			   struct strbuf *sb, size_t limit)
{
	char *buf = malloc(BLOB_CHUNK);
	uint8_t got[HASH_LEN];
	struct hash_ctx h = { 0 };
	int64_t total = 0;
	struct stat st;
	bool sparse;
	int in, r;

	if (!buf)
		return -ENOMEM;
	/* Holes where the content has zeros, when writing a regular file. */
	sparse = outfd >= 0 && fstat(outfd, &st) == 0 && S_ISREG(st.st_mode);
	in = blob_open(s, hash);
	if (in < 0) {
		free(buf);
		return in;
	}
	r = hash_init(&h);
	if (r < 0)
		goto out;
	for (;;) {
		ssize_t n = read(in, buf, BLOB_CHUNK);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		r = hash_update(&h, buf, (size_t)n);
		if (r < 0)
			goto out;
		if (outfd >= 0) {
			r = write_sparse(outfd, buf, (size_t)n, sparse);
		} else if (sb) {
			if (limit && sb->len + (size_t)n > limit)
				r = -EFBIG;
			else
				r = strbuf_add(sb, buf, (size_t)n);
		}
		if (r < 0)
			goto out;
		total += n;
	}
	r = sparse ? end_sparse(outfd) : 0;
	if (r == 0)
		r = hash_final(&h, got);
	if (r < 0)
		goto out;
	if (memcmp(got, hash, HASH_LEN) != 0) {
		char name[96];

		r = log_debug_errno(-EBADMSG, "blob '%s' is corrupt",
				    store_blob_name(hash, name));
	}
out:
	hash_release(&h);
	util_close(in);
	free(buf);
	return r < 0 ? r : total;
}

int64_t store_blob_copy(struct store *s, const uint8_t hash[HASH_LEN], int outfd)
{
	return blob_stream(s, hash, outfd, NULL, 0);
}

int store_blob_read(struct store *s, const uint8_t hash[HASH_LEN], struct strbuf *out,
		    size_t limit)
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
