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
#include <unistd.h>

#include "store.h"
#include "unit.h"

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

/* What fs_touch does: stage PKG's original and record the path with its location. */
static void touch(const char *path, struct store_entry *ret)
{
	bool staged = false;
	uint64_t off = 0;

	cr_assert_eq(store_entry_stage_at(s, txn, pkg, path, ret, &staged, &off), 0);
	cr_assert_eq(store_change_record_staged(s, txn, path, ret, staged, off), 1);
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
