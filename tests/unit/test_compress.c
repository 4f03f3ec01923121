// SPDX-License-Identifier: MIT
/*
 * Blob compression: zstd when it saves blocks, raw when not, both forms
 * found and verified transparently, identical content kept once,
 * corruption of either form refused.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "store.h"

static char root[PATH_MAX];
static struct store *s;

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(root, sizeof(root), "%s/cjfs-unit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(root));
	cr_assert_eq(store_open(root, STORE_OPEN_CREATE, &s), 0);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	store_close(s);
	s = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	(void)!system(cmd);
}

TestSuite(store_blob, .init = setup, .fini = teardown, .timeout = 60);

/* Source text: compresses well. */
static void fill_text(struct strbuf *sb, size_t n)
{
	for (size_t i = 0; sb->len < n; i++)
		cr_assert_eq(strbuf_addf(sb,
					 "def function_%zu(arg):\n    return arg * %zu  # note\n",
					 i, i % 97),
			     0);
	sb->len = n;
	sb->buf[n] = '\0';
}

/* xorshift bytes: do not compress. */
static void fill_random(struct strbuf *sb, size_t n, uint64_t seed)
{
	cr_assert_eq(strbuf_grow(sb, n), 0);
	for (size_t i = 0; i < n; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		sb->buf[i] = (char)(seed >> 24);
	}
	sb->len = n;
	sb->buf[n] = '\0';
}

/* Put the bytes through store_put_fd (a real file, like a copy-up does). */
static void put_file(const struct strbuf *sb, uint8_t hash[HASH_LEN])
{
	char path[PATH_MAX];
	uint64_t size = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/src", root);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(util_write_full(fd, sb->buf, sb->len), 0);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(store_put_fd(s, fd, hash, &size), 0);
	cr_assert_eq(size, sb->len);
	close(fd);
}

static bool blob_exists(const uint8_t hash[HASH_LEN], bool zst)
{
	char hex[HASH_HEX_LEN + 1], path[PATH_MAX];
	struct stat st;

	hash_to_hex(hash, hex);
	snprintf(path, sizeof(path), "%s/objects/%.2s/%s%s", root, hex, hex, zst ? ".zst" : "");
	return stat(path, &st) == 0;
}

static void blob_path(const uint8_t hash[HASH_LEN], bool zst, char path[PATH_MAX])
{
	char hex[HASH_HEX_LEN + 1];

	hash_to_hex(hash, hex);
	snprintf(path, PATH_MAX, "%s/objects/%.2s/%s%s", root, hex, hex, zst ? ".zst" : "");
}

static void assert_reads_back(const uint8_t hash[HASH_LEN], const struct strbuf *want)
{
	struct strbuf got = STRBUF_INIT;
	uint8_t h[HASH_LEN];

	cr_assert_eq(store_blob_read(s, hash, &got, 0), 0);
	cr_assert_eq(got.len, want->len);
	cr_assert(got.len == 0 || memcmp(got.buf, want->buf, got.len) == 0);
	cr_assert_eq(store_blob_verify(s, hash), 0);
	cr_assert_eq(hash_buf(want->buf ? want->buf : "", want->len, h), 0);
	cr_assert(memcmp(h, hash, HASH_LEN) == 0, "the hash is not of the uncompressed bytes");
	strbuf_release(&got);
}

Test(store_blob, compressible_content_is_stored_as_zst_and_reads_back)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t hash[HASH_LEN];
	uint64_t size, stored;
	int enc;

	fill_text(&sb, 200 * 1024);
	put_file(&sb, hash);
	cr_assert(blob_exists(hash, true));
	cr_assert_not(blob_exists(hash, false));
	cr_assert_eq(store_has(s, hash), 1);
	cr_assert_eq(store_blob_info(s, hash, &size, &stored, &enc), 0);
	cr_assert_eq(size, sb.len);
	cr_assert_eq(enc, STORE_BLOB_ZSTD);
	cr_assert_lt(stored, size / 3);
	assert_reads_back(hash, &sb);
	strbuf_release(&sb);
}

Test(store_blob, incompressible_content_stays_raw)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t hash[HASH_LEN];
	int enc;

	fill_random(&sb, 300 * 1024, 42);
	put_file(&sb, hash);
	cr_assert(blob_exists(hash, false));
	cr_assert_not(blob_exists(hash, true));
	cr_assert_eq(store_blob_info(s, hash, NULL, NULL, &enc), 0);
	cr_assert_eq(enc, STORE_BLOB_RAW);
	assert_reads_back(hash, &sb);
	strbuf_release(&sb);
}

Test(store_blob, a_file_that_fits_one_block_stays_raw)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t hash[HASH_LEN];

	fill_text(&sb, 3000);
	put_file(&sb, hash);
	cr_assert(blob_exists(hash, false), "compressing saves no block here");
	assert_reads_back(hash, &sb);
	strbuf_release(&sb);
}

Test(store_blob, an_empty_file_is_a_blob)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t hash[HASH_LEN];

	cr_assert_eq(strbuf_grow(&sb, 0), 0);
	put_file(&sb, hash);
	cr_assert(blob_exists(hash, false));
	assert_reads_back(hash, &sb);
	strbuf_release(&sb);
}

/*
 * Sizes around multiples of zstd's output buffer (ZSTD_DStreamOutSize(),
 * 128 KiB): a frame that ends exactly as the buffer fills must read back
 * whole, not as a truncated blob. Text and zeros, both compressed.
 */
Test(store_blob, compressed_blobs_of_every_size_near_the_output_buffer_read_back)
{
	const size_t ocap = ZSTD_DStreamOutSize();
	const size_t sizes[] = { ocap - 1, ocap, ocap + 1, 2 * ocap, 3 * ocap, 8 * ocap, 8 * ocap + 1 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		for (int zeros = 0; zeros < 2; zeros++) {
			struct strbuf sb = STRBUF_INIT;
			uint8_t hash[HASH_LEN];

			if (zeros) {
				cr_assert_eq(strbuf_grow(&sb, sizes[i]), 0);
				memset(sb.buf, 0, sizes[i]);
				sb.len = sizes[i];
			} else {
				fill_text(&sb, sizes[i]);
			}
			put_file(&sb, hash);
			cr_assert(blob_exists(hash, true), "%zu bytes were not compressed", sizes[i]);
			assert_reads_back(hash, &sb);
			strbuf_release(&sb);
		}
	}
}

Test(store_blob, large_files_stream_through_zstd)
{
	struct strbuf sb = STRBUF_INIT, out = STRBUF_INIT;
	char path[PATH_MAX];
	uint8_t hash[HASH_LEN];
	int fd;

	fill_text(&sb, 5 * 1024 * 1024 + 12345);
	put_file(&sb, hash);
	cr_assert(blob_exists(hash, true));
	snprintf(path, sizeof(path), "%s/copy", root);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(store_blob_copy(s, hash, fd), (int64_t)sb.len);
	cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
	cr_assert_eq(strbuf_read_fd(&out, fd, 0), 0);
	close(fd);
	cr_assert_eq(out.len, sb.len);
	cr_assert(memcmp(out.buf, sb.buf, sb.len) == 0);
	strbuf_release(&sb);
	strbuf_release(&out);
}

Test(store_blob, large_incompressible_files_stay_raw)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t hash[HASH_LEN];

	fill_random(&sb, 3 * 1024 * 1024 + 7, 7);
	put_file(&sb, hash);
	cr_assert(blob_exists(hash, false));
	cr_assert_not(blob_exists(hash, true));
	assert_reads_back(hash, &sb);
	strbuf_release(&sb);
}

Test(store_blob, zstd_d_recovers_a_compressed_blob_by_hand)
{
	struct strbuf sb = STRBUF_INIT;
	char path[PATH_MAX], hex[HASH_HEX_LEN + 1], cmd[2 * PATH_MAX + 128];
	uint8_t hash[HASH_LEN];

	if (system("command -v zstd >/dev/null 2>&1") != 0)
		cr_skip_test("the zstd command is not installed");
	fill_text(&sb, 100 * 1024);
	put_file(&sb, hash);
	blob_path(hash, true, path);
	hash_to_hex(hash, hex);
	snprintf(cmd, sizeof(cmd), "zstd -q -d -c '%s' | sha256sum | grep -q '^%s '", path, hex);
	cr_assert_eq(system(cmd), 0, "zstd -d does not give back the original bytes");
	strbuf_release(&sb);
}

Test(store_blob, identical_content_is_stored_once)
{
	struct strbuf sb = STRBUF_INIT;
	uint8_t h1[HASH_LEN], h2[HASH_LEN], h3[HASH_LEN];
	struct store_stats st;

	fill_text(&sb, 64 * 1024);
	put_file(&sb, h1);
	put_file(&sb, h2);
	cr_assert_eq(store_put_buf(s, sb.buf, sb.len, h3), 0);
	cr_assert(memcmp(h1, h2, HASH_LEN) == 0 && memcmp(h1, h3, HASH_LEN) == 0);
	cr_assert_eq(store_stats_get(s, &st), 0);
	cr_assert_eq(st.n_blobs, 1);
	cr_assert_eq(st.unique, sb.len);
	strbuf_release(&sb);
}

static void corrupt(const char *path, off_t off)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	char c;

	cr_assert(fd >= 0, "open '%s': %s", path, strerror(errno));
	cr_assert_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x5a;
	cr_assert_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

Test(store_blob, a_corrupt_zst_blob_is_refused)
{
	struct strbuf sb = STRBUF_INIT, out = STRBUF_INIT;
	char path[PATH_MAX];
	uint8_t hash[HASH_LEN];
	struct stat st;
	int fd;

	fill_text(&sb, 150 * 1024);
	put_file(&sb, hash);
	blob_path(hash, true, path);
	cr_assert_eq(stat(path, &st), 0);
	corrupt(path, st.st_size / 2);
	cr_assert_eq(store_blob_verify(s, hash), -EBADMSG);
	cr_assert_eq(store_blob_read(s, hash, &out, 0), -EBADMSG);
	cr_assert_eq(out.len, 0, "bytes that failed verification were handed out");
	snprintf(path, sizeof(path), "%s/copy", root);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert_eq(store_blob_copy(s, hash, fd), -EBADMSG);
	close(fd);
	strbuf_release(&sb);
	strbuf_release(&out);
}

Test(store_blob, a_truncated_zst_blob_is_refused)
{
	struct strbuf sb = STRBUF_INIT;
	char path[PATH_MAX];
	uint8_t hash[HASH_LEN];
	struct stat st;

	fill_text(&sb, 150 * 1024);
	put_file(&sb, hash);
	blob_path(hash, true, path);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(truncate(path, st.st_size - 10), 0);
	cr_assert_eq(store_blob_verify(s, hash), -EBADMSG);
	strbuf_release(&sb);
}

Test(store_blob, a_corrupt_raw_blob_is_refused)
{
	struct strbuf sb = STRBUF_INIT;
	char path[PATH_MAX];
	uint8_t hash[HASH_LEN];

	fill_random(&sb, 10000, 3);
	put_file(&sb, hash);
	blob_path(hash, false, path);
	corrupt(path, 5000);
	cr_assert_eq(store_blob_verify(s, hash), -EBADMSG);
	strbuf_release(&sb);
}

Test(store_blob, a_missing_blob_is_enoent)
{
	uint8_t hash[HASH_LEN] = { 1, 2, 3 };

	cr_assert_eq(store_has(s, hash), 0);
	cr_assert_eq(store_blob_verify(s, hash), -ENOENT);
}

Test(store_blob, a_raw_file_where_a_zst_was_is_found_too)
{
	struct strbuf sb = STRBUF_INIT;
	char zst[PATH_MAX], raw[PATH_MAX];
	uint8_t hash[HASH_LEN];
	FILE *f;

	/* An older store, or one repaired by hand with zstd -d: the raw form is as good. */
	fill_text(&sb, 100 * 1024);
	put_file(&sb, hash);
	blob_path(hash, true, zst);
	blob_path(hash, false, raw);
	cr_assert_eq(unlink(zst), 0);
	f = fopen(raw, "we");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(sb.buf, 1, sb.len, f), sb.len);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(store_has(s, hash), 1);
	assert_reads_back(hash, &sb);
	strbuf_release(&sb);
}

Test(store_blob, blob_names_parse_in_both_forms)
{
	uint8_t hash[HASH_LEN], got[HASH_LEN];
	char hex[HASH_HEX_LEN + 8];
	int enc = -1;

	for (int i = 0; i < HASH_LEN; i++)
		hash[i] = (uint8_t)(i * 7);
	hash_to_hex(hash, hex);
	cr_assert_eq(store_blob_parse_name(hex, got, &enc), 0);
	cr_assert_eq(enc, STORE_BLOB_RAW);
	cr_assert(memcmp(got, hash, HASH_LEN) == 0);
	strcat(hex, ".zst");
	cr_assert_eq(store_blob_parse_name(hex, got, &enc), 0);
	cr_assert_eq(enc, STORE_BLOB_ZSTD);
	cr_assert_eq(store_blob_parse_name("1234.5", got, &enc), -EINVAL);
	hex[10] = 'X';
	cr_assert_eq(store_blob_parse_name(hex, got, &enc), -EINVAL);
}

/* A suite of its own for its timeout (Criterion 2.4.1 leaks a per-test .timeout). */
TestSuite(store_measure, .init = setup, .fini = teardown, .timeout = 900);

/*
 * Every file of a real tree stored twice, as two transactions touching the
 * same files would: the second copy costs nothing, and zstd saves what it
 * can. The numbers go to stderr (the test log) for docs/history.md.
 */
Test(store_measure, dedup_and_compression_on_a_real_tree)
{
	const char *src = "/usr/lib/python3.11";
	uint64_t logical = 0, raw_blocks = 0, files = 0;
	char line[PATH_MAX + 2], cmd[PATH_MAX];
	struct store_stats st;
	FILE *list;

	if (access(src, R_OK) != 0)
		cr_skip_test("%s is not installed", src);
	snprintf(cmd, sizeof(cmd), "find '%s' -type f", src);
	list = popen(cmd, "r");
	cr_assert_not_null(list);
	while (fgets(line, sizeof(line), list)) {
		uint8_t h1[HASH_LEN], h2[HASH_LEN];
		uint64_t size = 0;
		int fd;

		line[strcspn(line, "\n")] = '\0';
		fd = open(line, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		cr_assert_eq(store_put_fd(s, fd, h1, &size), 0, "%s", line);
		cr_assert_eq(lseek(fd, 0, SEEK_SET), 0);
		cr_assert_eq(store_put_fd(s, fd, h2, NULL), 0, "%s", line);
		cr_assert(memcmp(h1, h2, HASH_LEN) == 0);
		close(fd);
		files++;
		logical += 2 * size;
		raw_blocks += (size + 4095) / 4096 * 4096;
	}
	pclose(list);
	cr_assert_eq(store_stats_get(s, &st), 0);
	fprintf(stderr,
		"%s stored twice: %llu files, %llu bytes each time; unique %llu bytes in %lld "
		"blob(s) (dedup %.2f); stored %llu bytes, %lld compressed (compression %.2f); "
		"objects/ on disk %llu bytes, raw files would take %llu (%.2f)\n",
		src, (unsigned long long)files, (unsigned long long)logical / 2,
		(unsigned long long)st.unique, (long long)st.n_blobs,
		(double)logical / (double)st.unique, (unsigned long long)st.stored,
		(long long)st.n_compressed, (double)st.unique / (double)st.stored,
		(unsigned long long)st.disk_blobs, (unsigned long long)raw_blocks,
		(double)raw_blocks / (double)st.disk_blobs);
	cr_assert_leq(st.unique, logical / 2, "identical files were stored twice");
	cr_assert_gt((double)st.unique / (double)st.stored, 2.0, "zstd saved too little");
	cr_assert_lt(st.disk_blobs, raw_blocks / 2, "compression saved no disk space");
}
