// SPDX-License-Identifier: MIT
/*
 * store/changeset.c and seal: reading the state of a path in PKG or in a
 * view of the new tree, classifying each change (added, deleted, modified,
 * unchanged), and sealing a transaction against a plain-directory view.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store.h"
#include "unit.h"

static char root[PATH_MAX];
static char pkg[PATH_MAX];
static int oldfd = -1; /* PKG, the original tree */
static int newfd = -1; /* the tree a transaction leaves */
static struct store *s;

static void setup(void)
{
	char spath[PATH_MAX];

	u_tmpdir(root);
	snprintf(spath, sizeof(spath), "%s/store", root);
	oldfd = u_mkdir_open(root, "pkg", pkg);
	newfd = u_mkdir_open(root, "new", NULL);
	cr_assert(eq(int, store_open(spath, STORE_OPEN_CREATE, &s), 0));
}

static void teardown(void)
{
	store_close(s);
	s = NULL;
	if (oldfd >= 0)
		close(oldfd);
	if (newfd >= 0)
		close(newfd);
	u_rmtree(root);
}

TestSuite(changeset_entry, .init = setup, .fini = teardown);
TestSuite(changeset_compare, .init = setup, .fini = teardown);
TestSuite(changeset_seal, .init = setup, .fini = teardown);

static void hash_of(const char *s_, uint8_t h[HASH_LEN])
{
	cr_assert(eq(int, hash_buf(s_, strlen(s_), h), 0));
}

static struct store_entry at(int dirfd, const char *path, unsigned flags)
{
	struct store_entry e;
	int r;

	memset(&e, 0xa5, sizeof(e));
	r = store_entry_at(s, dirfd, path, flags, &e);
	cr_assert(eq(int, r, 0), "store_entry_at '%s': %s", path, strerror(-r));
	return e;
}

static struct store_entry in_view(int dirfd, const char *path, unsigned flags)
{
	struct store_view v;
	struct store_entry e;
	int fd = dirfd;
	int r;

	store_view_dir(&v, &fd);
	memset(&e, 0xa5, sizeof(e));
	r = store_entry_from_view(s, &v, path, flags, &e);
	cr_assert(eq(int, r, 0), "store_entry_from_view '%s': %s", path, strerror(-r));
	return e;
}

/* ---- reading entries ---- */

Test(changeset_entry, regular_file_has_type_mode_size_and_content_hash)
{
	struct store_entry e;
	uint8_t want[HASH_LEN];
	struct stat st;

	u_write(oldfd, "f.c", "int x;\n", 0640);
	cr_assert(eq(int, fstatat(oldfd, "f.c", &st, AT_SYMLINK_NOFOLLOW), 0));
	e = at(oldfd, "f.c", STORE_ENTRY_HASH);
	cr_assert(eq(u32, e.mode, S_IFREG | 0640));
	cr_assert(eq(u64, e.size, 7));
	cr_assert(eq(u64, e.ino, (uint64_t)st.st_ino));
	cr_assert(eq(u64, e.dev, (uint64_t)st.st_dev));
	cr_assert(eq(i64, e.mtime_ns, util_timespec_ns(&st.st_mtim)));
	cr_assert(eq(u32, e.uid, st.st_uid));
	cr_assert(e.has_hash);
	hash_of("int x;\n", want);
	cr_assert(eq(int, memcmp(e.hash, want, HASH_LEN), 0));
	/* Hashing without PUT does not store. */
	cr_assert(eq(int, store_has(s, want), 0));
	e = at(oldfd, "f.c", STORE_ENTRY_HASH | STORE_ENTRY_PUT);
	cr_assert(eq(int, store_has(s, want), 1), "PUT did not store the content");
	/* Without HASH there is no hash. */
	e = at(oldfd, "f.c", 0);
	cr_assert_not(e.has_hash);
	cr_assert(eq(u64, e.size, 7));
}

Test(changeset_entry, symlink_is_hashed_by_its_target_and_never_followed)
{
	struct store_entry e;
	uint8_t want[HASH_LEN];

	u_write(oldfd, "target.txt", "the target's content\n", 0644);
	u_symlink(oldfd, "target.txt", "link");
	e = at(oldfd, "link", STORE_ENTRY_HASH | STORE_ENTRY_PUT);
	cr_assert(eq(u32, e.mode & S_IFMT, S_IFLNK));
	cr_assert(eq(u64, e.size, strlen("target.txt")));
	hash_of("target.txt", want);
	cr_assert(eq(int, memcmp(e.hash, want, HASH_LEN), 0), "not the hash of the target string");
	cr_assert(eq(int, store_has(s, want), 1));
}

Test(changeset_entry, directory_has_no_hash_and_absent_paths_have_mode_zero)
{
	struct store_entry e;

	u_mkdir(oldfd, "d", 0750);
	u_write(oldfd, "file", "x", 0644);
	e = at(oldfd, "d", STORE_ENTRY_HASH);
	cr_assert(eq(u32, e.mode, S_IFDIR | 0750));
	cr_assert_not(e.has_hash);
	cr_assert(eq(u64, e.size, 0));
	e = at(oldfd, "missing", STORE_ENTRY_HASH);
	cr_assert(eq(u32, e.mode, 0));
	cr_assert_not(e.has_hash);
	e = at(oldfd, "missing/below", STORE_ENTRY_HASH);
	cr_assert(eq(u32, e.mode, 0));
	e = at(oldfd, "file/below", STORE_ENTRY_HASH);
	cr_assert(eq(u32, e.mode, 0), "a path below a file exists");
}

Test(changeset_entry, a_symlinked_parent_does_not_lead_out_of_pkg)
{
	struct store_entry e;
	int outfd = u_mkdir_open(root, "outside", NULL);

	u_write(outfd, "secret", "not PKG's\n", 0600);
	close(outfd);
	u_symlink(oldfd, "../outside", "out");
	e = at(oldfd, "out/secret", STORE_ENTRY_HASH | STORE_ENTRY_PUT);
	cr_assert(eq(u32, e.mode, 0), "read a file outside PKG through a symlink");
	e = in_view(oldfd, "out/secret", STORE_ENTRY_HASH | STORE_ENTRY_PUT);
	cr_assert(eq(u32, e.mode, 0), "the view read outside its tree through a symlink");
}

Test(changeset_entry, view_of_a_plain_directory_agrees_with_entry_at)
{
	static const char *const paths[] = { "f", "exec", "d", "d/inner", "link", "missing" };

	u_write(oldfd, "f", "plain\n", 0644);
	u_write(oldfd, "exec", "#!/bin/sh\n", 0755);
	u_mkdir(oldfd, "d", 0700);
	u_write(oldfd, "d/inner", "inner\n", 0600);
	u_symlink(oldfd, "d/inner", "link");
	for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
		struct store_entry a = at(oldfd, paths[i], STORE_ENTRY_HASH);
		struct store_entry v = in_view(oldfd, paths[i], STORE_ENTRY_HASH);

		cr_assert(eq(u32, v.mode, a.mode), "mode of %s", paths[i]);
		cr_assert(eq(u64, v.size, a.size), "size of %s", paths[i]);
		cr_assert(eq(int, v.has_hash, a.has_hash), "hash presence of %s", paths[i]);
		if (a.has_hash)
			cr_assert(eq(int, memcmp(v.hash, a.hash, HASH_LEN), 0), "hash of %s",
				  paths[i]);
		cr_assert(eq(u64, v.ino, a.ino), "identity of %s", paths[i]);
		cr_assert(eq(chr, store_entry_compare(&a, &v), 0), "%s differs from itself",
			  paths[i]);
	}
}

Test(changeset_entry, same_file_tracks_pkg_changes_behind_our_back)
{
	struct store_entry rec, now;
	struct timespec ts[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };

	u_write(oldfd, "f", "one\n", 0644);
	rec = at(oldfd, "f", 0);
	now = at(oldfd, "f", 0);
	cr_assert(store_entry_same_file(&rec, &now));
	/* Same size, new bytes, mtime forced back: ctime still gives it away. */
	u_write(oldfd, "f", "two\n", 0644);
	cr_assert(eq(int, utimensat(oldfd, "f", ts, 0), 0));
	now = at(oldfd, "f", 0);
	cr_assert_not(store_entry_same_file(&rec, &now));
	/* Replaced by another file (new inode). */
	rec = at(oldfd, "f", 0);
	u_write(oldfd, "g", "two\n", 0644);
	cr_assert(eq(int, renameat(oldfd, "g", oldfd, "f"), 0));
	now = at(oldfd, "f", 0);
	cr_assert_not(store_entry_same_file(&rec, &now));
	/* Absent then and now. */
	rec = at(oldfd, "nothing", 0);
	now = at(oldfd, "nothing", 0);
	cr_assert(store_entry_same_file(&rec, &now));
	now = at(oldfd, "f", 0);
	cr_assert_not(store_entry_same_file(&rec, &now));
}

/* ---- comparing ---- */

static char compare(const char *path)
{
	struct store_entry o = at(oldfd, path, STORE_ENTRY_HASH);
	struct store_entry n = in_view(newfd, path, STORE_ENTRY_HASH);

	return store_entry_compare(&o, &n);
}

Test(changeset_compare, added_and_deleted)
{
	u_write(newfd, "added.txt", "new\n", 0644);
	u_write(oldfd, "deleted.txt", "old\n", 0644);
	u_mkdir(newfd, "newdir", 0755);
	u_mkdir(oldfd, "olddir", 0755);
	cr_assert(eq(chr, compare("added.txt"), 'A'));
	cr_assert(eq(chr, compare("deleted.txt"), 'D'));
	cr_assert(eq(chr, compare("newdir"), 'A'));
	cr_assert(eq(chr, compare("olddir"), 'D'));
	cr_assert(eq(chr, compare("neither"), 0));
}

Test(changeset_compare, content_change_of_the_same_size_is_modified)
{
	u_write(oldfd, "f", "aaaa\n", 0644);
	u_write(newfd, "f", "aaab\n", 0644);
	u_write(oldfd, "g", "short\n", 0644);
	u_write(newfd, "g", "longer\n", 0644);
	cr_assert(eq(chr, compare("f"), 'M'), "same size, other bytes: not seen");
	cr_assert(eq(chr, compare("g"), 'M'));
}

Test(changeset_compare, mode_change_is_modified)
{
	u_write(oldfd, "run.sh", "#!/bin/sh\n", 0644);
	u_write(newfd, "run.sh", "#!/bin/sh\n", 0755);
	u_mkdir(oldfd, "d", 0755);
	u_mkdir(newfd, "d", 0700);
	cr_assert(eq(chr, compare("run.sh"), 'M'));
	cr_assert(eq(chr, compare("d"), 'M'));
}

Test(changeset_compare, type_change_is_modified)
{
	u_write(oldfd, "was-file", "x\n", 0644);
	u_mkdir(newfd, "was-file", 0644);
	u_write(oldfd, "was-file2", "x", 0644);
	u_symlink(newfd, "x", "was-file2"); /* same size and same bytes as the content */
	u_mkdir(oldfd, "was-dir", 0755);
	u_write(newfd, "was-dir", "", 0755);
	cr_assert(eq(chr, compare("was-file"), 'M'));
	cr_assert(eq(chr, compare("was-file2"), 'M'), "file -> symlink with equal bytes missed");
	cr_assert(eq(chr, compare("was-dir"), 'M'));
}

Test(changeset_compare, symlink_retargeted_is_modified)
{
	u_symlink(oldfd, "target-a", "link");
	u_symlink(newfd, "target-b", "link"); /* same length */
	u_symlink(oldfd, "same", "same-link");
	u_symlink(newfd, "same", "same-link");
	cr_assert(eq(chr, compare("link"), 'M'));
	cr_assert(eq(chr, compare("same-link"), 0));
}

Test(changeset_compare, same_content_and_mode_is_unchanged_whatever_the_times)
{
	struct timespec ts[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };

	u_write(oldfd, "f", "same\n", 0644);
	u_write(newfd, "f", "same\n", 0644);
	cr_assert(eq(int, utimensat(newfd, "f", ts, 0), 0));
	u_mkdir(oldfd, "d", 0755);
	u_mkdir(newfd, "d", 0755);
	u_write(newfd, "d/more", "x", 0644); /* a directory's own entry is unchanged */
	cr_assert(eq(chr, compare("f"), 0));
	cr_assert(eq(chr, compare("d"), 0));
}

/* ---- seal ---- */

static void record(int64_t id, const char *path)
{
	struct store_entry e = at(oldfd, path, STORE_ENTRY_HASH | STORE_ENTRY_PUT);
	int r = store_change_record(s, id, path, &e);

	cr_assert(eq(int, r, 1), "record '%s': %d", path, r);
}

static int64_t begin_txn(void)
{
	struct stat st;
	int64_t id = 0, other = 0;

	cr_assert(eq(int, fstat(oldfd, &st), 0));
	cr_assert(eq(int, store_txn_begin(s, pkg, &st, NULL, 0, 0, &id, &other), 0));
	return id;
}

static const struct store_change *find(const struct store_change *c, size_t n, const char *path)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(c[i].path, path) == 0)
			return &c[i];
	cr_fail("no row for '%s'", path);
	return NULL;
}

Test(changeset_seal, statuses_counts_and_new_contents_are_recorded)
{
	static const struct {
		const char *path;
		char status;
	} want[] = {
		{ "chmod.sh", 'M' }, { "dir", 'D' },	  { "dir/f", 'D' },   { "gone.txt", 'D' },
		{ "keep.txt", 0 },   { "link", 'M' },	  { "mod.txt", 'M' }, { "new.txt", 'A' },
		{ "newdir", 'A' },   { "newdir/x", 'A' },
	};
	const struct store_change *m;
	struct store_change *c = NULL;
	struct store_txn *t = NULL;
	struct store_view v;
	int64_t id;
	size_t n = 0;
	int nfd = newfd;

	/* PKG */
	u_write(oldfd, "keep.txt", "keep\n", 0644);
	u_write(oldfd, "mod.txt", "before\n", 0644);
	u_write(oldfd, "gone.txt", "bye\n", 0644);
	u_write(oldfd, "chmod.sh", "#!/bin/sh\n", 0644);
	u_symlink(oldfd, "a", "link");
	u_mkdir(oldfd, "dir", 0755);
	u_write(oldfd, "dir/f", "in dir\n", 0644);
	/* the new tree */
	u_write(newfd, "keep.txt", "keep\n", 0644); /* touched, rewritten identically */
	u_write(newfd, "mod.txt", "after!!\n", 0644);
	u_write(newfd, "chmod.sh", "#!/bin/sh\n", 0755);
	u_symlink(newfd, "b", "link");
	u_write(newfd, "new.txt", "brand new\n", 0600);
	u_mkdir(newfd, "newdir", 0755);
	u_write(newfd, "newdir/x", "xx\n", 0644);

	id = begin_txn();
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		record(id, want[i].path);
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	store_view_dir(&v, &nfd);
	cr_assert(eq(int, store_txn_seal(s, t, &v), 0));
	cr_assert(eq(int, (int)t->state, STORE_TXN_SEALED));
	cr_assert(eq(i64, t->n_modified, 3));
	cr_assert(eq(i64, t->n_added, 3));
	cr_assert(eq(i64, t->n_deleted, 3));
	/* New bytes of changed regular files: mod.txt, chmod.sh, new.txt, newdir/x. */
	cr_assert(eq(i64, t->bytes_new, 8 + 10 + 10 + 3));
	store_txn_free(t);

	/* All of it is in the index, not just in *t. */
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	cr_assert(eq(int, (int)t->state, STORE_TXN_SEALED));
	cr_assert(eq(i64, t->n_modified, 3));
	cr_assert(eq(i64, t->n_added, 3));
	cr_assert(eq(i64, t->n_deleted, 3));
	store_txn_free(t);

	cr_assert(eq(int, store_change_list(s, id, false, &c, &n), 0));
	cr_assert(eq(sz, n, ARRAY_SIZE(want)));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++) {
		const struct store_change *r = find(c, n, want[i].path);

		cr_assert(eq(chr, r->status, want[i].status), "status of %s", want[i].path);
		if (r->status && (S_ISREG(r->new.mode) || S_ISLNK(r->new.mode))) {
			cr_assert(r->new.has_hash, "no new hash for %s", want[i].path);
			cr_assert(eq(int, store_has(s, r->new.hash), 1),
				  "new content of %s is not in the store", want[i].path);
		}
	}
	m = find(c, n, "new.txt");
	cr_assert(eq(u32, m->new.mode, S_IFREG | 0600));
	m = find(c, n, "gone.txt");
	cr_assert(eq(u32, m->new.mode, 0));
	cr_assert(eq(int, store_has(s, m->orig.hash), 1), "the deleted original is not kept");
	store_changes_free(c, n);
}

Test(changeset_seal, sealing_twice_is_refused)
{
	struct store_txn *t = NULL;
	struct store_view v;
	int64_t id;
	int nfd = newfd;

	u_write(oldfd, "f", "a\n", 0644);
	u_write(newfd, "f", "b\n", 0644);
	id = begin_txn();
	record(id, "f");
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	store_view_dir(&v, &nfd);
	cr_assert(eq(int, store_txn_seal(s, t, &v), 0));
	t->state = STORE_TXN_OPEN;
	cr_assert(eq(int, store_txn_seal(s, t, &v), -ESTALE));
	store_txn_free(t);
}

TestSuite(changeset_xattrs, .init = setup, .fini = teardown);

static bool user_xattrs(int dirfd, const char *name)
{
	char path[64 + NAME_MAX];

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	return lsetxattr(path, "user.probe", "", 0, 0) == 0 &&
	       lremovexattr(path, "user.probe") == 0;
}

static void set_at(int dirfd, const char *name, const char *attr, const char *value)
{
	char path[64 + NAME_MAX];

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dirfd, name);
	cr_assert(eq(int, lsetxattr(path, attr, value, strlen(value), 0), 0), "%s: %s", attr,
		  strerror(errno));
}

Test(changeset_xattrs, the_list_is_sorted_without_private_names_and_round_trips)
{
	static const char want[] = "user.a\0\1\0\0\0A"
				   "user.b\0\2\0\0\0BB";
	struct strbuf l = STRBUF_INIT, l2 = STRBUF_INIT;

	u_write(oldfd, "f", "x\n", 0644);
	u_write(newfd, "f", "x\n", 0644);
	if (!user_xattrs(oldfd, "f"))
		cr_skip_test("no user xattrs here");
	set_at(oldfd, "f", "user.b", "BB");
	set_at(oldfd, "f", "user.overlay.origin", "hidden");
	set_at(oldfd, "f", "user.a", "A");
	cr_assert(eq(int, store_xattrs_read_at(oldfd, "f", &l), 0));
	cr_assert(eq(sz, l.len, sizeof(want) - 1));
	cr_assert(eq(int, memcmp(l.buf, want, l.len), 0), "not the canonical list");
	cr_assert(store_xattrs_has(l.buf, l.len, "user.b"));
	cr_assert(not(store_xattrs_has(l.buf, l.len, "user.overlay.origin")));
	/* Applied elsewhere, exactly: what the target had and the list lacks goes. */
	set_at(newfd, "f", "user.stale", "s");
	set_at(newfd, "f", "user.b", "old");
	cr_assert(eq(int, store_xattrs_apply_at(newfd, "f", l.buf, l.len), 0));
	cr_assert(eq(int, store_xattrs_read_at(newfd, "f", &l2), 0));
	cr_assert(eq(sz, l2.len, l.len));
	cr_assert(eq(int, memcmp(l2.buf, l.buf, l.len), 0), "apply did not give exactly the list");
	/* An empty list clears them all; a torn list sets nothing past the tear. */
	cr_assert(eq(int, store_xattrs_apply_at(newfd, "f", "", 0), 0));
	cr_assert(eq(int, store_xattrs_read_at(newfd, "f", &l2), 0));
	cr_assert(eq(sz, l2.len, 0));
	cr_assert(eq(int, store_xattrs_apply_at(newfd, "f", l.buf, 9), 0));
	cr_assert(eq(int, store_xattrs_read_at(newfd, "f", &l2), 0));
	cr_assert(eq(sz, l2.len, 0));
	strbuf_release(&l);
	strbuf_release(&l2);
}

Test(changeset_xattrs, an_xattr_only_change_is_sealed_as_modified_with_both_lists)
{
	struct store_change *c = NULL;
	struct store_txn *t = NULL;
	struct store_view v;
	struct store_entry e;
	struct stat st;
	int64_t id = 0, other = 0;
	size_t n = 0;
	int nfd = newfd;

	u_write(oldfd, "f", "same\n", 0644);
	u_write(newfd, "f", "same\n", 0644);
	u_write(oldfd, "g", "same\n", 0644);
	u_write(newfd, "g", "same\n", 0644);
	if (!user_xattrs(oldfd, "f"))
		cr_skip_test("no user xattrs here");
	set_at(oldfd, "f", "user.k", "before");
	set_at(newfd, "f", "user.k", "after");
	set_at(oldfd, "g", "user.k", "same");
	set_at(newfd, "g", "user.k", "same");
	cr_assert(eq(int, fstat(oldfd, &st), 0));
	cr_assert(eq(int, store_txn_begin(s, pkg, &st, NULL, 0, 0, &id, &other), 0));
	for (const char *p = "f\0g\0"; *p; p += strlen(p) + 1) {
		cr_assert(eq(int,
			     store_entry_at(s, oldfd, p, STORE_ENTRY_HASH | STORE_ENTRY_PUT, &e),
			     0));
		cr_assert(eq(int, store_change_record(s, id, p, &e), 1));
	}
	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	store_view_dir(&v, &nfd);
	cr_assert(eq(int, store_txn_seal(s, t, &v), 0));
	cr_assert(eq(i64, t->n_modified, 1));
	store_txn_free(t);
	cr_assert(eq(int, store_change_list(s, id, false, &c, &n), 0));
	cr_assert(eq(sz, n, 2));
	cr_assert(eq(chr, c[0].status, 'M'));
	cr_assert(eq(chr, c[1].status, 0), "the same xattrs on both sides are no change");
	cr_assert(c[0].orig.has_xattrs && c[0].new.has_xattrs);
	cr_assert(eq(int, memcmp(c[0].orig_xattrs.buf, "user.k\0\6\0\0\0before", 16), 0));
	cr_assert(eq(int, memcmp(c[0].new_xattrs.buf, "user.k\0\5\0\0\0after", 15), 0));
	store_changes_free(c, n);
}
