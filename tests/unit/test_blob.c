// SPDX-License-Identifier: MIT
/*
 * store/blob.c: content-addressed blobs. What goes in comes out verified,
 * identical content is kept once, corruption and loss are reported (never
 * handed out), and the store is private to its owner.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_int.h"
#include "unit.h"

static char root[PATH_MAX];
static char spath[PATH_MAX];
static int rootfd = -1;
static struct store *s;

static void setup(void)
{
	u_tmpdir(root);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(rootfd >= 0);
	snprintf(spath, sizeof(spath), "%s/store", root);
	cr_assert(eq(int, store_open(spath, STORE_OPEN_CREATE, &s), 0));
}

static void teardown(void)
{
	util_fault_arm(0, 0);
	store_close(s);
	s = NULL;
	if (rootfd >= 0)
		close(rootfd);
	u_rmtree(root);
}

TestSuite(blob_io, .init = setup, .fini = teardown);
TestSuite(blob_integrity, .init = setup, .fini = teardown);
TestSuite(blob_privacy, .init = setup, .fini = teardown);

/* The file holding a blob, relative to the test root. */
static void blob_file(const uint8_t hash[HASH_LEN], char buf[PATH_MAX])
{
	char name[96];

	snprintf(buf, PATH_MAX, "store/%s", store_blob_name(hash, name));
}

static int store_fd(const char *sub)
{
	int fd = openat(rootfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	cr_assert(fd >= 0, "open '%s': %s", sub, strerror(errno));
	return fd;
}

Test(blob_io, put_buf_round_trips_through_read_and_copy)
{
	static const char data[] = "int main(void)\n{\n\treturn 0;\n}\n";
	struct strbuf sb = STRBUF_INIT;
	uint8_t h[HASH_LEN], want[HASH_LEN];
	char *copied;
	size_t len;
	int out;

	cr_assert(eq(int, store_put_buf(s, data, strlen(data), h), 0));
	cr_assert(eq(int, hash_buf(data, strlen(data), want), 0));
	cr_assert(eq(int, memcmp(h, want, HASH_LEN), 0), "not the SHA-256 of the bytes");
	cr_assert(eq(int, store_has(s, h), 1));

	cr_assert(eq(int, store_blob_read(s, h, &sb, 0), 0));
	cr_assert(eq(sz, sb.len, strlen(data)));
	cr_assert_str_eq(sb.buf, data);
	strbuf_release(&sb);

	out = openat(rootfd, "copy", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(out >= 0);
	cr_assert(eq(i64, store_blob_copy(s, h, out), (int64_t)strlen(data)));
	close(out);
	copied = u_read(rootfd, "copy", &len);
	cr_assert(eq(sz, len, strlen(data)));
	cr_assert_str_eq(copied, data);
	free(copied);
}

Test(blob_io, put_fd_stores_from_the_current_offset_to_eof)
{
	size_t n = 300 * 1024 + 7; /* several read chunks, not a multiple of any */
	struct strbuf sb = STRBUF_INIT;
	uint8_t h[HASH_LEN], want[HASH_LEN];
	uint64_t size = 0;
	char *data = malloc(n);
	int fd;

	cr_assert_not_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)(i * 7 + i / 256);
	u_write_n(rootfd, "src", data, n, 0644);
	fd = openat(rootfd, "src", O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert(eq(int, (int)lseek(fd, 100, SEEK_SET), 100));
	cr_assert(eq(int, store_put_fd(s, fd, h, &size), 0));
	close(fd);
	cr_assert(eq(u64, size, n - 100));
	cr_assert(eq(int, hash_buf(data + 100, n - 100, want), 0));
	cr_assert(eq(int, memcmp(h, want, HASH_LEN), 0));
	cr_assert(eq(int, store_blob_read(s, h, &sb, 0), 0));
	cr_assert(eq(sz, sb.len, n - 100));
	cr_assert(eq(int, memcmp(sb.buf, data + 100, n - 100), 0), "content differs");
	strbuf_release(&sb);
	free(data);
}

Test(blob_io, empty_content_is_a_blob_too)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t h[HASH_LEN];
	int out;

	cr_assert(eq(int, store_put_buf(s, "", 0, h), 0));
	cr_assert(eq(int, store_has(s, h), 1));
	cr_assert(eq(int, store_blob_verify(s, h), 0));
	cr_assert(eq(int, store_blob_read(s, h, &sb, 0), 0));
	cr_assert(eq(sz, sb.len, 0));
	strbuf_release(&sb);
	out = openat(rootfd, "copy", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert(out >= 0);
	cr_assert(eq(i64, store_blob_copy(s, h, out), 0));
	close(out);
}

Test(blob_io, identical_content_is_stored_once)
{
	static const char data[] = "same bytes\n";
	uint8_t h1[HASH_LEN], h2[HASH_LEN], h3[HASH_LEN], other[HASH_LEN];
	int fd, objfd, tmpfd;

	cr_assert(eq(int, store_put_buf(s, data, strlen(data), h1), 0));
	cr_assert(eq(int, store_put_buf(s, data, strlen(data), h2), 0));
	u_write(rootfd, "src", data, 0644);
	fd = openat(rootfd, "src", O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert(eq(int, store_put_fd(s, fd, h3, NULL), 0));
	close(fd);
	cr_assert(eq(int, memcmp(h1, h2, HASH_LEN), 0));
	cr_assert(eq(int, memcmp(h1, h3, HASH_LEN), 0));

	objfd = store_fd("store/objects");
	tmpfd = store_fd("store/tmp");
	cr_assert(eq(sz, u_count_files(objfd), 1), "identical content stored more than once");
	cr_assert(eq(sz, u_count_files(tmpfd), 0), "temporaries left in tmp/");

	cr_assert(eq(int, store_put_buf(s, "other\n", 6, other), 0));
	cr_assert(eq(sz, u_count_files(objfd), 2));
	close(objfd);
	close(tmpfd);
}

Test(blob_io, read_refuses_more_than_the_limit)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t h[HASH_LEN];

	cr_assert(eq(int, store_put_buf(s, "0123456789", 10, h), 0));
	cr_assert(eq(int, store_blob_read(s, h, &sb, 10), 0), "exactly the limit was refused");
	cr_assert_str_eq(sb.buf, "0123456789");
	strbuf_release(&sb);
	cr_assert(eq(int, store_blob_read(s, h, &sb, 9), -EFBIG));
	cr_assert(eq(sz, sb.len, 0), "bytes handed out after -EFBIG");
	strbuf_release(&sb);
}

Test(blob_io, name_is_objects_prefix_and_hex)
{
	char name[96], hex[HASH_HEX_LEN + 1], want[96];
	uint8_t h[HASH_LEN];

	cr_assert(eq(int, hash_buf("x", 1, h), 0));
	hash_to_hex(h, hex);
	snprintf(want, sizeof(want), "objects/%.2s/%s", hex, hex);
	cr_assert_str_eq(store_blob_name(h, name), want);
}

Test(blob_io, hash_is_sha256_and_hex_round_trips)
{
	static const char abc[] =
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	char hex[HASH_HEX_LEN + 1];
	uint8_t h[HASH_LEN], back[HASH_LEN];

	cr_assert(eq(int, hash_buf("abc", 3, h), 0));
	hash_to_hex(h, hex);
	cr_assert_str_eq(hex, abc);
	cr_assert(eq(int, hash_from_hex(abc, back), 0));
	cr_assert(eq(int, memcmp(back, h, HASH_LEN), 0));
	memset(back, 0, sizeof(back));
	cr_assert(eq(int,
		     hash_from_hex("BA7816BF8F01CFEA414140DE5DAE2223"
				   "B00361A396177A9CB410FF61F20015AD",
				   back),
		     -EINVAL));
	cr_assert(eq(int, hash_from_hex(abc + 1, back), -EINVAL));
	cr_assert(eq(int, hash_from_hex("", back), -EINVAL));
	cr_assert(eq(int, back[0], 0), "written on failure");
}

Test(blob_io, a_failed_put_leaves_nothing_behind)
{
	static const char data[] = "content that will not fit\n";
	uint8_t h[HASH_LEN], want[HASH_LEN];
	char path[PATH_MAX];
	int objfd, tmpfd, fd, r = -1;
	long n;

	cr_assert(eq(int, hash_buf(data, strlen(data), want), 0));
	u_write(rootfd, "src", data, 0644);
	objfd = store_fd("store/objects");
	tmpfd = store_fd("store/tmp");
	for (int by_fd = 0; by_fd < 2; by_fd++) {
		for (n = 1; n < 100; n++) {
			util_fault_arm(n, ENOSPC);
			if (by_fd) {
				fd = openat(rootfd, "src", O_RDONLY | O_CLOEXEC);
				cr_assert(fd >= 0);
				r = store_put_fd(s, fd, h, NULL);
				close(fd);
			} else {
				r = store_put_buf(s, data, strlen(data), h);
			}
			util_fault_arm(0, 0);
			if (r == 0)
				break;
			cr_assert(eq(int, r, -ENOSPC), "put failing at call %ld: %d", n, r);
			cr_assert(eq(sz, u_count_files(tmpfd), 0), "temporary left (call %ld)", n);
			cr_assert(eq(sz, u_count_files(objfd), 0), "blob published (call %ld)", n);
			cr_assert(eq(int, store_has(s, want), 0));
		}
		cr_assert(eq(int, r, 0));
		cr_assert(n > 2, "only %ld durable calls", n - 1);
		cr_assert(eq(int, store_blob_verify(s, want), 0));
		/* The next round starts without the blob again. */
		blob_file(want, path);
		cr_assert(eq(int, unlinkat(rootfd, path, 0), 0));
	}
	close(objfd);
	close(tmpfd);
}

/*
 * Deferred puts (a commit's seal and promote): blobs written from every
 * thread wait in tmp/, unseen, and are published together, each with its
 * row; after a failure, before or during publishing, tmp/ is left empty and
 * no row names a blob that is not there.
 */
Test(blob_io, deferred_puts_are_published_together_or_dropped)
{
	static const char *const data[] = { "first\n", "second\n", "first\n" };
	uint8_t h[3][HASH_LEN];
	uint64_t size;
	int tmpfd = store_fd("store/tmp"), r = -1;
	long n;

	store_put_defer(s);
	for (int i = 0; i < 3; i++)
		cr_assert(eq(int, store_put_buf(s, data[i], strlen(data[i]), h[i]), 0));
	cr_assert(eq(int, store_has(s, h[0]), 0), "a deferred blob is visible before publishing");
	cr_assert(eq(int, store_blob_info(s, h[1], &size, NULL, NULL), -ENOENT));
	cr_assert(eq(sz, u_count_files(tmpfd), 3));
	cr_assert(eq(int, store_put_publish(s, 0), 0));
	cr_assert(eq(sz, u_count_files(tmpfd), 0), "a temporary outlived publishing");
	for (int i = 0; i < 2; i++) {
		cr_assert(eq(int, store_blob_verify(s, h[i]), 0));
		cr_assert(eq(int, store_blob_info(s, h[i], &size, NULL, NULL), 0));
		cr_assert(eq(u64, size, strlen(data[i])));
	}
	/* The loop that wrote them failed: nothing is published. */
	store_put_defer(s);
	cr_assert(eq(int, store_put_buf(s, "third\n", 6, h[2]), 0));
	cr_assert(eq(int, store_put_publish(s, -EIO), -EIO));
	cr_assert(eq(sz, u_count_files(tmpfd), 0));
	cr_assert(eq(int, store_blob_info(s, h[2], &size, NULL, NULL), -ENOENT));
	/* Publishing fails at its n-th durable call: no row is left for either blob. */
	for (n = 1; n < 100; n++) {
		uint8_t d[2][HASH_LEN];

		store_put_defer(s);
		cr_assert(eq(int, store_put_buf(s, "fourth\n", 7, d[0]), 0));
		cr_assert(eq(int, store_put_buf(s, "fifth\n", 6, d[1]), 0));
		util_fault_arm(n, ENOSPC);
		r = store_put_publish(s, 0);
		util_fault_arm(0, 0);
		cr_assert(eq(sz, u_count_files(tmpfd), 0), "temporary left (call %ld)", n);
		if (r == 0)
			break;
		cr_assert(eq(int, r, -ENOSPC), "publish failing at call %ld: %d", n, r);
		for (int i = 0; i < 2; i++)
			cr_assert(eq(int, store_blob_info(s, d[i], &size, NULL, NULL), -ENOENT),
				  "a row for a blob that failed to publish (call %ld)", n);
	}
	cr_assert(eq(int, r, 0));
	cr_assert(n > 2, "only %ld durable calls", n - 1);
	close(tmpfd);
}

/* Flip one byte of a stored blob in place. */
static void corrupt(const uint8_t h[HASH_LEN], off_t at)
{
	char path[PATH_MAX];
	unsigned char c;
	int fd;

	blob_file(h, path);
	fd = openat(rootfd, path, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0, "open '%s': %s", path, strerror(errno));
	cr_assert(eq(int, (int)pread(fd, &c, 1, at), 1));
	c ^= 0x01;
	cr_assert(eq(int, (int)pwrite(fd, &c, 1, at), 1));
	close(fd);
}

Test(blob_integrity, intact_blob_verifies)
{
	uint8_t h[HASH_LEN];

	cr_assert(eq(int, store_put_buf(s, "intact\n", 7, h), 0));
	cr_assert(eq(int, store_blob_verify(s, h), 0));
}

Test(blob_integrity, flipped_byte_is_reported_by_verify_copy_and_read)
{
	static const char data[] = "precious original\n";
	struct strbuf sb = STRBUF_INIT;
	uint8_t h[HASH_LEN];
	int out;

	cr_assert(eq(int, store_put_buf(s, data, strlen(data), h), 0));
	corrupt(h, 5);
	cr_assert(eq(int, store_has(s, h), 1));
	cr_assert(eq(int, store_blob_verify(s, h), -EBADMSG));

	out = openat(rootfd, "copy", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(out >= 0);
	cr_assert(eq(i64, store_blob_copy(s, h, out), -EBADMSG));
	close(out);

	/* store_blob_read never hands out bytes that failed verification. */
	cr_assert(eq(int, strbuf_adds(&sb, "before"), 0));
	cr_assert(eq(int, store_blob_read(s, h, &sb, 0), -EBADMSG));
	cr_assert(eq(sz, sb.len, 6));
	cr_assert_str_eq(sb.buf, "before");
	strbuf_release(&sb);
}

Test(blob_integrity, truncated_and_extended_blobs_are_corrupt)
{
	char path[PATH_MAX];
	uint8_t h[HASH_LEN], g[HASH_LEN];
	int fd;

	cr_assert(eq(int, store_put_buf(s, "0123456789", 10, h), 0));
	cr_assert(eq(int, store_put_buf(s, "abcdef", 6, g), 0));
	blob_file(h, path);
	fd = openat(rootfd, path, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert(eq(int, ftruncate(fd, 4), 0));
	close(fd);
	cr_assert(eq(int, store_blob_verify(s, h), -EBADMSG));
	blob_file(g, path);
	fd = openat(rootfd, path, O_WRONLY | O_APPEND | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert(eq(int, (int)write(fd, "!", 1), 1));
	close(fd);
	cr_assert(eq(int, store_blob_verify(s, g), -EBADMSG));
}

Test(blob_integrity, missing_blob_is_enoent_everywhere)
{
	struct strbuf sb = STRBUF_INIT;
	char path[PATH_MAX];
	uint8_t h[HASH_LEN], never[HASH_LEN];
	int out;

	cr_assert(eq(int, store_put_buf(s, "gone\n", 5, h), 0));
	blob_file(h, path);
	cr_assert(eq(int, unlinkat(rootfd, path, 0), 0));
	cr_assert(eq(int, hash_buf("never stored", 12, never), 0));

	cr_assert(eq(int, store_has(s, h), 0));
	cr_assert(eq(int, store_has(s, never), 0));
	cr_assert(eq(int, store_blob_verify(s, h), -ENOENT));
	cr_assert(eq(int, store_blob_verify(s, never), -ENOENT));
	cr_assert(eq(int, store_blob_read(s, h, &sb, 0), -ENOENT));
	out = openat(rootfd, "copy", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(out >= 0);
	cr_assert(eq(i64, store_blob_copy(s, h, out), -ENOENT));
	close(out);
	strbuf_release(&sb);
}

Test(blob_integrity, a_put_after_loss_brings_the_blob_back)
{
	char path[PATH_MAX];
	uint8_t h[HASH_LEN];

	cr_assert(eq(int, store_put_buf(s, "again\n", 6, h), 0));
	blob_file(h, path);
	cr_assert(eq(int, unlinkat(rootfd, path, 0), 0));
	cr_assert(eq(int, store_put_buf(s, "again\n", 6, h), 0));
	cr_assert(eq(int, store_blob_verify(s, h), 0));
}

static void check_private(void)
{
	static const char *const dirs[] = { "store/objects", "store/tmp", "store/txn" };
	char path[PATH_MAX];
	uint8_t h[HASH_LEN];
	struct stat st;

	cr_assert(eq(int, store_put_buf(s, "secret code\n", 12, h), 0));
	cr_assert(eq(int, fstatat(rootfd, "store", &st, 0), 0));
	cr_assert(eq(int, (int)(st.st_mode & 07777), 0700), "store dir is %04o",
		  st.st_mode & 07777);
	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		cr_assert(eq(int, fstatat(rootfd, dirs[i], &st, 0), 0));
		cr_assert(eq(int, (int)(st.st_mode & 077), 0), "dir '%s' is %04o", dirs[i],
			  st.st_mode & 07777);
	}
	blob_file(h, path);
	cr_assert(eq(int, fstatat(rootfd, path, &st, 0), 0));
	cr_assert(eq(int, (int)(st.st_mode & 077), 0), "blob is %04o", st.st_mode & 07777);
	/* Its fan-out directory too. */
	*strrchr(path, '/') = '\0';
	cr_assert(eq(int, fstatat(rootfd, path, &st, 0), 0));
	cr_assert(eq(int, (int)(st.st_mode & 077), 0), "dir '%s' is %04o", path,
		  st.st_mode & 07777);
}

Test(blob_privacy, store_dir_is_0700_and_blobs_are_owner_only)
{
	check_private();
}

Test(blob_privacy, stays_private_under_a_permissive_umask)
{
	/* Reopen a brand-new store created while the umask lets everything through. */
	store_close(s);
	s = NULL;
	u_rmtree(spath);
	umask(0);
	cr_assert(eq(int, store_open(spath, STORE_OPEN_CREATE, &s), 0));
	check_private();
}

Test(blob_privacy, index_is_owner_only_under_a_permissive_umask)
{
	static const char *const files[] = { "store/index.db", "store/index.db-wal",
					     "store/index.db-shm" };
	struct stat st;

	store_close(s);
	s = NULL;
	u_rmtree(spath);
	umask(0);
	cr_assert(eq(int, store_open(spath, STORE_OPEN_CREATE, &s), 0));
	/* They hold the paths, commands and history of the user's code. */
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		if (fstatat(rootfd, files[i], &st, 0) < 0) {
			cr_assert(eq(int, errno, ENOENT));
			continue;
		}
		cr_assert(eq(int, (int)(st.st_mode & 077), 0), "file '%s' is %04o", files[i],
			  st.st_mode & 07777);
	}
	cr_assert(eq(int, fstatat(rootfd, "store/index.db", &st, 0), 0));
}
