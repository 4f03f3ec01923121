// SPDX-License-Identifier: MIT
/*
 * Staging of originals: what an open transaction keeps before it changes a
 * path is in the store at once (readable and verified like a blob), becomes
 * a blob of its own when sealed, and a blob file whose writer died before
 * indexing it is adopted, never dropped by gc while something refers to it.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store.h"
#include "unit.h"
#include "util.h"

static char root[PATH_MAX], pkgpath[PATH_MAX];
static struct store *s;
static int pkg = -1;
static int64_t txn;

static void setup(void)
{
	char spath[PATH_MAX];
	struct stat st;

	u_tmpdir(root);
	snprintf(spath, sizeof(spath), "%s/store", root);
	cr_assert_eq(store_open(spath, STORE_OPEN_CREATE, &s), 0);
	pkg = u_mkdir_open(root, "pkg", pkgpath);
	u_write(pkg, "a.txt", "the original of a\n", 0644);
	u_write(pkg, "b.txt", "the original of b\n", 0644);
	u_symlink(pkg, "a.txt", "link");
	cr_assert_eq(fstat(pkg, &st), 0);
	cr_assert_eq(store_txn_begin(s, pkgpath, &st, NULL, 0, 0, &txn, NULL), 0);
	/* As the transaction's daemon does on start. */
	cr_assert_eq(store_changelog_begin(s, txn), 0);
}

static void teardown(void)
{
	store_close(s);
	s = NULL;
	if (pkg >= 0)
		close(pkg);
	pkg = -1;
	u_rmtree(root);
}

TestSuite(store_stage, .init = setup, .fini = teardown);

/* What fs_touch does: stage PKG's original and log the path with its location and xattrs. */
static void log_touch(const char *path, struct store_entry *ret)
{
	struct strbuf xattrs = STRBUF_INIT;
	bool staged = false;
	uint64_t off = 0;

	cr_assert_eq(store_entry_stage_at(s, txn, pkg, path, ret, &xattrs, &staged, &off), 0);
	cr_assert_eq(store_changelog_append(s, txn, path, ret, &xattrs, staged, off), 0);
	strbuf_release(&xattrs);
}

/* ...and what a reader of the index does first (store_recover, store_change_list). */
static void touch(const char *path, struct store_entry *ret)
{
	log_touch(path, ret);
	cr_assert_eq(store_changelog_fold(s, txn), 0);
}

static char *read_blob(const uint8_t hash[HASH_LEN], int *ret_err)
{
	struct strbuf sb = STRBUF_INIT;

	*ret_err = store_blob_read(s, hash, &sb, 0);
	if (*ret_err < 0) {
		strbuf_release(&sb);
		return NULL;
	}
	return sb.buf ? strbuf_detach(&sb) : strdup("");
}

Test(store_stage, a_staged_original_reads_back_verified_before_any_blob_file_exists)
{
	struct store_entry a, l;
	char *got;
	int r;

	touch("a.txt", &a);
	touch("link", &l);
	cr_assert(a.has_hash && l.has_hash);
	/* No file per original: one staging file holds them. */
	cr_assert_eq(store_has(s, a.hash), 0);
	got = read_blob(a.hash, &r);
	cr_assert_eq(r, 0);
	cr_assert_str_eq(got, "the original of a\n");
	free(got);
	got = read_blob(l.hash, &r);
	cr_assert_eq(r, 0);
	cr_assert_str_eq(got, "a.txt");
	free(got);
	cr_assert_eq(store_blob_verify(s, a.hash), 0);
}

Test(store_stage, a_damaged_staging_file_is_refused_not_served)
{
	char path[PATH_MAX];
	struct store_entry a;
	char *got;
	int r, fd;

	touch("a.txt", &a);
	snprintf(path, sizeof(path), "%s/store/txn/%lld/originals", root, (long long)txn);
	fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0, "%s: %s", path, strerror(errno));
	cr_assert_eq(pwrite(fd, "X", 1, 0), 1);
	close(fd);
	got = read_blob(a.hash, &r);
	cr_assert_null(got);
	cr_assert_eq(r, -EBADMSG);
}

Test(store_stage, seal_turns_the_originals_of_changed_paths_into_indexed_blobs)
{
	struct store_change c = { 0 };
	struct store_entry a, b;
	uint64_t size = 0;

	touch("a.txt", &a);
	touch("b.txt", &b);
	/* a.txt changes, b.txt is touched but left as it was. */
	c.path = (char *)"a.txt";
	c.orig = a;
	c.new = a;
	c.new.size = 3;
	cr_assert_eq(hash_buf("new", 3, c.new.hash), 0);
	c.status = 'M';
	cr_assert_eq(store_change_set_new(s, txn, &c), 0);
	cr_assert_eq(store_stage_promote(s, txn), 0);
	cr_assert_eq(store_has(s, a.hash), 1, "the replaced original is not a blob");
	cr_assert_eq(store_blob_info(s, a.hash, &size, NULL, NULL), 0, "and has no index row");
	cr_assert_eq(size, a.size);
	cr_assert_eq(store_has(s, b.hash), 0, "an unchanged path's original became a blob");
	/* The staging file goes with the transaction; the blob stays. */
	cr_assert_eq(store_txn_remove_dir(s, txn), 0);
	cr_assert_eq(store_blob_verify(s, a.hash), 0);
}

Test(store_stage, seal_indexes_a_blob_file_whose_writer_died_before_its_row)
{
	char rel[PATH_MAX], hex[HASH_HEX_LEN + 1];
	struct store_change c = { 0 };
	struct store_entry a;
	int objects;

	touch("a.txt", &a);
	/* The file of a's original is there, but no row: a writer killed in between. */
	hash_to_hex(a.hash, hex);
	snprintf(rel, sizeof(rel), "%s/store/objects", root);
	objects = open(rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(objects >= 0);
	snprintf(rel, sizeof(rel), "%.2s/%s", hex, hex);
	u_write(objects, rel, "the original of a\n", 0600);
	cr_assert_eq(store_blob_info(s, a.hash, NULL, NULL, NULL), -ENOENT);
	c.path = (char *)"a.txt";
	c.orig = a;
	c.status = 'D';
	cr_assert_eq(store_change_set_new(s, txn, &c), 0);
	cr_assert_eq(store_stage_promote(s, txn), 0);
	cr_assert_eq(store_blob_info(s, a.hash, NULL, NULL, NULL), 0,
		     "the blob is still not indexed");
	close(objects);
}

Test(store_stage, gc_indexes_a_referenced_blob_without_a_row_instead_of_deleting_it)
{
	char rel[PATH_MAX], hex[HASH_HEX_LEN + 1];
	struct store_gc_policy p;
	struct store_gc_report rep = { 0 };
	struct store_entry a;
	int objects;

	touch("a.txt", &a);
	hash_to_hex(a.hash, hex);
	snprintf(rel, sizeof(rel), "%s/store/objects", root);
	objects = open(rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(objects >= 0);
	snprintf(rel, sizeof(rel), "%.2s/%s", hex, hex);
	u_write(objects, rel, "the original of a\n", 0600);
	/* An unreferenced one next to it is an orphan gc may remove. */
	u_write(objects, "00/0000000000000000000000000000000000000000000000000000000000000000",
		"junk", 0600);
	store_gc_policy_init(&p);
	p.grace_ns = 0;
	cr_assert_eq(store_gc(s, &p, &rep), 0);
	cr_assert_eq(store_has(s, a.hash), 1, "gc deleted a blob the index refers to");
	cr_assert_eq(store_blob_info(s, a.hash, NULL, NULL, NULL), 0);
	cr_assert_eq(rep.orphans, 1);
	store_gc_report_release(&rep);
	close(objects);
}

/*
 * The change log (store/changelog.c): the daemon logs each touched path with
 * one append, and every reader of the change set folds the log first.
 */
static char *changes_path(char buf[PATH_MAX])
{
	snprintf(buf, PATH_MAX, "%s/store/txn/%lld/changes", root, (long long)txn);
	return buf;
}

static off_t file_size(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0, "%s: %s", path, strerror(errno));
	return st.st_size;
}

/* Change rows of txn in the index, read directly (no fold). */
static int64_t indexed_rows(void)
{
	char db[PATH_MAX];
	sqlite3_stmt *st;
	sqlite3 *h;
	int64_t n;

	snprintf(db, sizeof(db), "%s/store/index.db", root);
	cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(h, "SELECT count(*) FROM change WHERE txn = ?", -1, &st,
					NULL),
		     SQLITE_OK);
	sqlite3_bind_int64(st, 1, txn);
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
	n = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return n;
}

static size_t listed(struct store *from, const char *want)
{
	struct store_change *c;
	size_t n, found = 0;

	cr_assert_eq(store_change_list(from, txn, false, &c, &n), 0);
	for (size_t i = 0; i < n; i++)
		found += strcmp(c[i].path, want) == 0;
	store_changes_free(c, n);
	cr_assert_leq(found, 1, "%s listed twice", want);
	return found ? n : 0;
}

Test(store_stage, logged_changes_are_in_the_change_set_before_the_daemon_folds_them)
{
	struct store_change *c;
	struct store_entry a, b;
	size_t n;

	log_touch("a.txt", &a);
	log_touch("gone/new.txt", &b);
	cr_assert_eq(indexed_rows(), 0, "the daemon folded two records already");
	cr_assert_eq(store_change_list(s, txn, false, &c, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(c[0].path, "a.txt");
	cr_assert_eq(c[0].orig.mode, a.mode);
	cr_assert_eq(c[0].orig.size, strlen("the original of a\n"));
	cr_assert(c[0].orig.has_hash && !memcmp(c[0].orig.hash, a.hash, HASH_LEN));
	cr_assert_str_eq(c[1].path, "gone/new.txt");
	cr_assert_eq(c[1].orig.mode, 0, "an absent original is absent");
	store_changes_free(c, n);
	cr_assert_eq(indexed_rows(), 2);
}

Test(store_stage, another_process_folds_what_the_daemon_logged_once)
{
	char dir[PATH_MAX], *got;
	struct store_recover_report rep = { 0 };
	struct store_entry a, b;
	struct store *cli = NULL;
	int r;

	snprintf(dir, sizeof(dir), "%s/store", root);
	cr_assert_eq(store_open(dir, 0, &cli), 0);
	log_touch("a.txt", &a);
	/* What every command does on start makes the staged original readable. */
	cr_assert_eq(store_recover(cli, &rep), 0);
	cr_assert_eq(indexed_rows(), 1);
	got = read_blob(a.hash, &r);
	cr_assert_eq(r, 0);
	cr_assert_str_eq(got, "the original of a\n");
	free(got);
	log_touch("b.txt", &b);
	cr_assert_eq(listed(cli, "b.txt"), 2);
	cr_assert_eq(listed(s, "b.txt"), 2);
	cr_assert_eq(store_changelog_end(s, txn), 0);
	cr_assert_eq(indexed_rows(), 2);
	store_close(cli);
}

Test(store_stage, a_torn_record_is_not_folded_and_the_next_daemon_cuts_it_off)
{
	char path[PATH_MAX];
	struct store_entry a, b;
	off_t whole;
	int fd;

	log_touch("a.txt", &a);
	whole = file_size(changes_path(path));
	log_touch("b.txt", &b);
	/* Killed in the middle of writing b's record: its change was never made. */
	cr_assert_eq(truncate(path, whole + 20), 0);
	cr_assert_eq(listed(s, "a.txt"), 1);
	cr_assert_eq(listed(s, "b.txt"), 0, "a torn record was folded");
	/* The next daemon of the transaction cuts it off and logs after a's. */
	cr_assert_eq(store_changelog_begin(s, txn), 0);
	cr_assert_eq(file_size(path), whole);
	log_touch("b.txt", &b);
	cr_assert_eq(listed(s, "b.txt"), 2);
	/* A damaged byte stops the fold there: nothing after it is taken either. */
	whole = file_size(path);
	log_touch("link", &a);
	log_touch("gone", &b);
	fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, "#", 1, whole + 30), 1);
	close(fd);
	cr_assert_eq(listed(s, "gone"), 0);
	cr_assert_eq(indexed_rows(), 2);
}

Test(store_stage, the_daemon_folds_its_log_in_batches_by_itself)
{
	struct store_entry e;
	char name[32];

	for (int i = 0; i < 1500; i++) {
		snprintf(name, sizeof(name), "new/%d", i);
		log_touch(name, &e);
	}
	cr_assert_geq(indexed_rows(), 1024, "1500 records and no fold");
	cr_assert_lt(indexed_rows(), 1500);
	cr_assert_eq(store_changelog_end(s, txn), 0);
	cr_assert_eq(indexed_rows(), 1500);
}

/* A disk that fills up in the middle of a record: half of it goes in. */
static ssize_t pwrite_half(int fd, const void *buf, size_t n, off_t off)
{
	static bool second;

	if (second || n < 2) {
		second = false;
		errno = ENOSPC;
		return -1;
	}
	second = true;
	return pwrite(fd, buf, n / 2, off);
}

Test(store_stage, a_failed_append_leaves_nothing_in_the_log)
{
	ssize_t (*real)(int, const void *, size_t, off_t) = util_sys.pwrite;
	struct store_entry e = { .mode = 0100644, .size = 1 };
	char path[PATH_MAX];
	off_t before;
	int r;

	log_touch("a.txt", &e);
	before = file_size(changes_path(path));
	util_sys.pwrite = pwrite_half;
	r = store_changelog_append(s, txn, "b.txt", &e, NULL, false, 0);
	util_sys.pwrite = real;
	cr_assert_eq(r, -ENOSPC);
	cr_assert_eq(file_size(path), before, "half a record left in the log");
	cr_assert_eq(store_changelog_append(s, txn, "c.txt", &e, NULL, false, 0), 0);
	cr_assert_eq(listed(s, "c.txt"), 2);
	cr_assert_eq(listed(s, "b.txt"), 0);
}

/* The original's xattrs and device travel through the log with its row. */
Test(store_stage, logged_xattrs_and_device_numbers_come_back_with_the_row)
{
	struct store_change *c;
	struct store_entry a, e = { .mode = S_IFCHR | 0600, .rdev = 0x105 };
	char path[PATH_MAX];
	size_t n;

	snprintf(path, sizeof(path), "%s/a.txt", pkgpath);
	if (setxattr(path, "user.k", "v", 1, 0) < 0)
		cr_skip_test("no user xattrs here");
	log_touch("a.txt", &a);
	cr_assert_eq(store_changelog_append(s, txn, "dev", &e, NULL, false, 0), 0);
	cr_assert_eq(store_change_list(s, txn, false, &c, &n), 0);
	cr_assert_eq(n, 2);
	cr_assert_str_eq(c[0].path, "a.txt");
	cr_assert(c[0].orig.has_xattrs);
	cr_assert_eq(c[0].orig_xattrs.len, 12);
	cr_assert_eq(memcmp(c[0].orig_xattrs.buf, "user.k\0\1\0\0\0v", 12), 0);
	cr_assert_str_eq(c[1].path, "dev");
	cr_assert_eq(c[1].orig.rdev, 0x105);
	cr_assert(!c[1].orig.has_xattrs);
	store_changes_free(c, n);
}

/*
 * A log an earlier cjfs wrote (format "CLG1": no xattrs, no device) for a
 * transaction it left open is still folded, whole: an upgrade loses no
 * record of a change.
 */
Test(store_stage, a_log_of_the_first_format_is_still_folded)
{
	struct rec1 { /* frozen: the layout of CLG1 records */
		uint32_t magic, len;
		uint64_t sum;
		uint32_t mode, uid, gid, flags;
		uint64_t size;
		int64_t mtime_ns, ctime_ns;
		uint64_t dev, ino, off;
		uint8_t hash[HASH_LEN];
	};
	char buf[sizeof(struct rec1) + 16], path[PATH_MAX];
	struct rec1 *r = (struct rec1 *)buf;
	struct store_change *c;
	size_t n;
	int fd;

	cr_assert_eq(store_changelog_end(s, txn), 0);
	memset(buf, 0, sizeof(buf));
	r->magic = 0x31474c43u;
	r->len = (uint32_t)(sizeof(*r) + 5);
	r->mode = S_IFREG | 0644;
	r->size = 7;
	r->flags = 2; /* REC_HASH */
	memset(r->hash, 0xab, HASH_LEN);
	memcpy(r + 1, "x.txt", 5);
	r->sum = util_fnv1a(buf + 16, r->len - 16);
	fd = open(changes_path(path), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, buf, r->len), (ssize_t)r->len);
	close(fd);
	cr_assert_eq(store_change_list(s, txn, false, &c, &n), 0);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(c[0].path, "x.txt");
	cr_assert_eq(c[0].orig.mode, S_IFREG | 0644);
	cr_assert_eq(c[0].orig.size, 7);
	cr_assert(c[0].orig.has_hash && c[0].orig.hash[0] == 0xab);
	cr_assert(!c[0].orig.has_xattrs, "a CLG1 record has no xattrs to give");
	store_changes_free(c, n);
}
