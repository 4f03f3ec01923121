// SPDX-License-Identifier: MIT
/*
 * store/apply.c: the journaled commit. A sealed change set is staged next to
 * its destinations, then promoted into PKG: PKG ends up equal to the new tree
 * (content, modes, mtimes, symlinks, directories) with nothing left over; a
 * failure while staging changes nothing; a promote stopped at any durable
 * call is finished by recovery or undone by a reverse apply; the reverse
 * apply restores the original tree; conflicts with PKG are reported.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store.h"
#include "unit.h"

#define T_OLD 1000000000 /* mtime of the original files */
#define T_NEW 1600000000 /* mtime of the files the transaction writes */

static char root[PATH_MAX];
static char pkg[PATH_MAX];
static int pkgfd = -1;
static int newfd = -1;
static struct store *s;

static void setup(void)
{
	char spath[PATH_MAX];

	u_tmpdir(root);
	snprintf(spath, sizeof(spath), "%s/store", root);
	pkgfd = u_mkdir_open(root, "pkg", pkg);
	newfd = u_mkdir_open(root, "new", NULL);
	cr_assert(eq(int, store_open(spath, STORE_OPEN_CREATE, &s), 0));
}

static void teardown(void)
{
	util_fault_arm(0, 0);
	store_close(s);
	s = NULL;
	if (pkgfd >= 0)
		close(pkgfd);
	if (newfd >= 0)
		close(newfd);
	u_rmtree(root);
}

TestSuite(apply_commit, .init = setup, .fini = teardown, .timeout = 120);
TestSuite(apply_crash, .init = setup, .fini = teardown, .timeout = 240);
TestSuite(apply_conflicts, .init = setup, .fini = teardown);

/* A file with content, exact mode and mtime. */
static void put(int dirfd, const char *path, const char *content, mode_t mode, time_t mtime)
{
	struct timespec ts[2] = { { .tv_sec = mtime }, { .tv_sec = mtime } };

	u_write(dirfd, path, content, mode);
	cr_assert(eq(int, utimensat(dirfd, path, ts, AT_SYMLINK_NOFOLLOW), 0));
}

/* PKG before the transaction. */
static void build_pkg(int fd)
{
	put(fd, "keep.txt", "keep\n", 0644, T_OLD);
	put(fd, "mod.txt", "before\n", 0644, T_OLD);
	put(fd, "same.txt", "aaaa\n", 0644, T_OLD);
	put(fd, "gone.txt", "bye\n", 0644, T_OLD);
	put(fd, "run.sh", "#!/bin/sh\necho hi\n", 0644, T_OLD);
	u_symlink(fd, "keep.txt", "link");
	u_symlink(fd, "keep.txt", "lnk2");
	put(fd, "file2", "file2\n", 0644, T_OLD);
	u_mkdir(fd, "olddir", 0755);
	put(fd, "olddir/a.txt", "a\n", 0644, T_OLD);
	u_mkdir(fd, "olddir/sub", 0755);
	put(fd, "olddir/sub/b.txt", "b\n", 0600, T_OLD);
	put(fd, "t", "i am a file\n", 0644, T_OLD);
	u_mkdir(fd, "d", 0755);
	put(fd, "d/f", "in d\n", 0644, T_OLD);
	u_mkdir(fd, "docs", 0755);
	put(fd, "docs/readme", "read me\n", 0644, T_OLD);
	u_mkdir(fd, "src", 0755);
	put(fd, "src/main.c", "int main;\n", 0644, T_OLD);
	put(fd, "pair1", "one file, two names\n", 0644, T_OLD);
	cr_assert(eq(int, linkat(fd, "pair1", fd, "pair2", 0), 0));
}

/* The tree the transaction leaves: every kind of change commit promotes. */
static void build_new(int fd)
{
	put(fd, "keep.txt", "keep\n", 0644, T_OLD);		/* touched, unchanged */
	put(fd, "mod.txt", "after, and longer\n", 0644, T_NEW); /* content */
	put(fd, "same.txt", "bbbb\n", 0644, T_NEW);		/* content, same size */
	put(fd, "run.sh", "#!/bin/sh\necho hi\n", 0755, T_OLD); /* mode only */
	u_symlink(fd, "mod.txt", "link");			/* retargeted */
	put(fd, "lnk2", "now a file\n", 0644, T_NEW);		/* symlink -> file */
	u_symlink(fd, "keep.txt", "file2");			/* file -> symlink */
	u_mkdir(fd, "t", 0755);					/* file -> directory */
	put(fd, "t/inner", "inner\n", 0644, T_NEW);
	put(fd, "d", "d is a file now\n", 0600, T_NEW); /* directory -> file */
	u_mkdir(fd, "docs", 0700);			/* directory mode */
	put(fd, "docs/readme", "read me\n", 0644, T_OLD);
	u_mkdir(fd, "src", 0755);
	put(fd, "src/main.c", "int main(void);\n", 0644, T_NEW);
	put(fd, "src/new.c", "new\n", 0644, T_NEW);
	u_mkdir(fd, "made", 0755); /* new directories */
	u_mkdir(fd, "made/deeper", 0750);
	put(fd, "made/deeper/x", "x\n", 0640, T_NEW);
	put(fd, "new.txt", "brand new\n", 0600, T_NEW);
	put(fd, "pair1", "parted: one\n", 0644, T_NEW); /* PKG's hard links parted */
	put(fd, "pair2", "parted: two\n", 0644, T_NEW);
	put(fd, "hl1", "linked\n", 0640, T_NEW); /* a new file with two names */
	cr_assert(eq(int, linkat(fd, "hl1", fd, "made/hl2", 0), 0));
}

/* Are a and b one file (hard links) below fd? */
static bool one_file(int fd, const char *a, const char *b)
{
	struct stat sa, sb;

	cr_assert(eq(int, fstatat(fd, a, &sa, AT_SYMLINK_NOFOLLOW), 0), "%s", a);
	cr_assert(eq(int, fstatat(fd, b, &sb, AT_SYMLINK_NOFOLLOW), 0), "%s", b);
	return sa.st_ino == sb.st_ino && sa.st_dev == sb.st_dev;
}

/* Every path the transaction touched (gone.txt, olddir/... are deleted). */
static const char *const touched[] = {
	"keep.txt",  "mod.txt", "same.txt",    "gone.txt",	"run.sh",     "link",
	"lnk2",	     "file2",	"olddir",      "olddir/a.txt",	"olddir/sub", "olddir/sub/b.txt",
	"t",	     "t/inner", "d",	       "d/f",		"docs",	      "src/main.c",
	"src/new.c", "made",	"made/deeper", "made/deeper/x", "new.txt",    "pair1",
	"pair2",     "hl1",	"made/hl2",
};

#define N_STAGED 16 /* changed rows whose new state is a file or symlink */

static int64_t begin_txn(void)
{
	struct stat st;
	int64_t id = 0, other = 0;

	cr_assert(eq(int, fstat(pkgfd, &st), 0));
	cr_assert(eq(int, store_txn_begin(s, pkg, &st, NULL, 0, 0, &id, &other), 0));
	return id;
}

/* Record the original of path as the overlay does before its first change. */
static void record(int64_t id, const char *path)
{
	struct store_entry e;

	cr_assert(
		eq(int, store_entry_at(s, pkgfd, path, STORE_ENTRY_HASH | STORE_ENTRY_PUT, &e), 0));
	cr_assert(eq(int, store_change_record(s, id, path, &e), 1), "record '%s'", path);
}

static void seal(int64_t id)
{
	struct store_txn *t = NULL;
	struct store_view v;
	int fd = newfd;

	cr_assert(eq(int, store_txn_load(s, id, &t), 0));
	store_view_dir(&v, &fd);
	cr_assert(eq(int, store_txn_seal(s, t, &v), 0));
	store_txn_free(t);
}

/* PKG and the new tree built, a transaction recording every change, sealed. */
static int64_t prepare(char **ret_old, char **ret_new)
{
	int64_t id;

	build_pkg(pkgfd);
	build_new(newfd);
	id = begin_txn();
	for (size_t i = 0; i < ARRAY_SIZE(touched); i++)
		record(id, touched[i]);
	seal(id);
	*ret_old = u_snapshot(pkgfd, true);
	*ret_new = u_snapshot(newfd, true);
	cr_assert(strcmp(*ret_old, *ret_new) != 0);
	return id;
}

/* Replace PKG by a fresh copy of the original tree (new inodes, same content and times). */
static void rebuild_pkg(void)
{
	close(pkgfd);
	u_rmtree(pkg);
	pkgfd = u_mkdir_open(root, "pkg", NULL);
	build_pkg(pkgfd);
}

static void to_committing(int64_t id)
{
	cr_assert(
		eq(int,
		   store_txn_transition(s, id, STORE_TXN_SEALED, STORE_TXN_COMMITTING, NULL, NULL),
		   0));
}

static void assert_pkg_is(const char *want, const char *what)
{
	char *now = u_snapshot(pkgfd, true);

	cr_assert_str_eq(now, want, "PKG is not %s", what);
	free(now);
	cr_assert(eq(sz, u_count_names(pkgfd, ".cjfs-"), 0), "temporaries left in PKG");
}

/* ---- commit and undo ---- */

Test(apply_commit, stage_shows_nothing_new_in_pkg)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);
	char *c;

	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
	cr_assert(eq(sz, u_count_names(pkgfd, ".cjfs-tmp-"), N_STAGED));
	c = u_read(pkgfd, "mod.txt", NULL);
	cr_assert_str_eq(c, "before\n");
	free(c);
	cr_assert(u_is_dir(pkgfd, "olddir"));
	cr_assert(u_is_reg(pkgfd, "t"));
	cr_assert_not(u_exists(pkgfd, "new.txt"));
	/* Unstaging leaves exactly the original. */
	cr_assert(eq(int, store_txn_unstage(s, id, pkgfd), 0));
	assert_pkg_is(old, "the original after unstage");
	free(old);
	free(new);
}

Test(apply_commit, promote_makes_pkg_equal_the_new_tree)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);

	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
	to_committing(id);
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, 0, NULL), 0));
	assert_pkg_is(new, "the new tree");
	cr_assert(one_file(pkgfd, "hl1", "made/hl2"), "two names of one new file are two files");
	cr_assert_not(one_file(pkgfd, "pair1", "pair2"));
	free(old);
	free(new);
}

Test(apply_commit, reverse_apply_restores_the_original_tree)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);

	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
	to_committing(id);
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, 0, NULL), 0));
	assert_pkg_is(new, "the new tree");

	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, STORE_APPLY_REVERSE, NULL), 0));
	cr_assert(eq(sz, u_count_names(pkgfd, ".cjfs-rev-"), 14), "reverse temporaries");
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, STORE_APPLY_REVERSE, NULL), 0));
	assert_pkg_is(old, "the original tree");
	cr_assert(one_file(pkgfd, "pair1", "pair2"), "PKG's hard links were not put back");

	/* And forward again: undo of the undo. */
	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, 0, NULL), 0));
	assert_pkg_is(new, "the new tree after redo");
	cr_assert(one_file(pkgfd, "hl1", "made/hl2"));
	free(old);
	free(new);
}

Test(apply_commit, recover_promote_is_idempotent)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);

	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
	to_committing(id);
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, STORE_APPLY_RECOVER, NULL), 0));
	assert_pkg_is(new, "the new tree after recover");
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, STORE_APPLY_RECOVER, NULL), 0));
	assert_pkg_is(new, "the new tree after a second recover");
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, STORE_APPLY_RECOVER, NULL), 0));
	assert_pkg_is(new, "the new tree after a third recover");
	free(old);
	free(new);
}

Test(apply_commit, recover_restages_temporaries_a_crash_lost)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);

	/* Committing, but no temporary survived (e.g. PKG restored from a snapshot). */
	to_committing(id);
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, STORE_APPLY_RECOVER, NULL), 0));
	assert_pkg_is(new, "the new tree");
	free(old);
	free(new);
}

Test(apply_commit, reverse_recover_after_undo_is_idempotent)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);

	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, 0, NULL), 0));
	cr_assert(
		eq(int,
		   store_txn_promote(s, id, pkgfd, STORE_APPLY_REVERSE | STORE_APPLY_RECOVER, NULL),
		   0));
	assert_pkg_is(old, "the original tree");
	cr_assert(
		eq(int,
		   store_txn_promote(s, id, pkgfd, STORE_APPLY_REVERSE | STORE_APPLY_RECOVER, NULL),
		   0));
	assert_pkg_is(old, "the original tree after a second run");
	free(old);
	free(new);
}

Test(apply_commit, corrupt_new_content_is_refused_before_the_commit_point)
{
	struct store_change *c = NULL;
	char *old, *new, name[96], path[PATH_MAX];
	int64_t id = prepare(&old, &new);
	size_t n = 0;
	int fd;

	cr_assert(eq(int, store_change_list(s, id, true, &c, &n), 0));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(c[i].path, "mod.txt") != 0)
			continue;
		snprintf(path, sizeof(path), "store/%s", store_blob_name(c[i].new.hash, name));
	}
	store_changes_free(c, n);
	fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(fd >= 0);
	u_write(fd, path, "after, and LONGER\n", 0600); /* same size, other bytes */
	close(fd);
	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), -EBADMSG));
	assert_pkg_is(old, "untouched after a corrupt blob");
	free(old);
	free(new);
}

/* ---- failures at every durable call ---- */

Test(apply_crash, failed_stage_leaves_pkg_exactly_as_before)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);
	long n;
	int r = -1;

	for (n = 1; n < 1000; n++) {
		util_fault_arm(n, ENOSPC);
		r = store_txn_stage(s, id, pkgfd, 0, NULL);
		util_fault_arm(0, 0);
		if (r == 0)
			break;
		cr_assert(eq(int, r, -ENOSPC), "stage failing at call %ld returned %d", n, r);
		assert_pkg_is(old, "untouched after a failed stage");
	}
	cr_assert(eq(int, r, 0));
	cr_assert(n > N_STAGED, "only %ld durable calls while staging", n - 1);
	/* After all those failures, the commit still goes through. */
	to_committing(id);
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, 0, NULL), 0));
	assert_pkg_is(new, "the new tree");
	free(old);
	free(new);
}

Test(apply_crash, promote_stopped_anywhere_is_finished_by_recover)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);
	long n;
	int r = -1;

	to_committing(id);
	for (n = 1; n < 1000; n++) {
		rebuild_pkg();
		cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
		util_fault_arm(n, EIO);
		r = store_txn_promote(s, id, pkgfd, 0, NULL);
		util_fault_arm(0, 0);
		if (r == 0)
			break;
		cr_assert(eq(int, r, -EIO), "promote failing at call %ld returned %d", n, r);
		r = store_txn_promote(s, id, pkgfd, STORE_APPLY_RECOVER, NULL);
		cr_assert(eq(int, r, 0), "recover after a failure at call %ld: %d", n, r);
		cr_assert(eq(int, store_txn_unstage(s, id, pkgfd), 0));
		assert_pkg_is(new, "the new tree after recovery");
	}
	cr_assert(eq(int, r, 0));
	cr_assert(n > 10, "only %ld durable calls while promoting", n - 1);
	free(old);
	free(new);
}

Test(apply_crash, promote_stopped_anywhere_is_undone_by_a_reverse_apply)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);
	long n;
	int r = -1;

	to_committing(id);
	for (n = 1; n < 1000; n++) {
		rebuild_pkg();
		cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
		util_fault_arm(n, EIO);
		r = store_txn_promote(s, id, pkgfd, 0, NULL);
		util_fault_arm(0, 0);
		if (r == 0)
			break;
		/* What cjfs_commit does when the promote fails after the commit point. */
		r = store_txn_stage(s, id, pkgfd, STORE_APPLY_REVERSE, NULL);
		cr_assert(eq(int, r, 0), "reverse stage after a failure at call %ld: %d", n, r);
		r = store_txn_promote(s, id, pkgfd, STORE_APPLY_REVERSE, NULL);
		cr_assert(eq(int, r, 0), "reverse promote after a failure at call %ld: %d", n, r);
		cr_assert(eq(int, store_txn_unstage(s, id, pkgfd), 0));
		assert_pkg_is(old, "the original tree after the undo");
	}
	cr_assert(eq(int, r, 0));
	free(old);
	free(new);
}

Test(apply_crash, recovery_stopped_anywhere_is_finished_by_the_next_recovery)
{
	char *old, *new;
	int64_t id = prepare(&old, &new);
	long n, m, runs = 0;
	int r = -1;

	to_committing(id);
	for (n = 1; n < 1000; n++) {
		rebuild_pkg();
		cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
		util_fault_arm(n, EIO);
		r = store_txn_promote(s, id, pkgfd, 0, NULL);
		util_fault_arm(0, 0);
		if (r == 0)
			break;
		/* The first recovery fails at its m-th durable call too; the next one finishes. */
		for (m = 1; m < 1000; m++) {
			util_fault_arm(m, EIO);
			r = store_txn_promote(s, id, pkgfd, STORE_APPLY_RECOVER, NULL);
			util_fault_arm(0, 0);
			runs++;
			if (r == 0)
				break;
			r = store_txn_promote(s, id, pkgfd, STORE_APPLY_RECOVER, NULL);
			cr_assert(eq(int, r, 0), "recover after failures at %ld then %ld: %d", n, m,
				  r);
			cr_assert(eq(int, store_txn_unstage(s, id, pkgfd), 0));
			assert_pkg_is(new, "the new tree after two recoveries");
			/* Back to the state the first failure left, for the next m. */
			rebuild_pkg();
			cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
			util_fault_arm(n, EIO);
			cr_assert(eq(int, store_txn_promote(s, id, pkgfd, 0, NULL), -EIO));
			util_fault_arm(0, 0);
		}
		cr_assert(eq(int, r, 0));
		assert_pkg_is(new, "the new tree after recovery");
	}
	cr_assert(runs > 100, "only %ld interrupted recoveries", runs);
	free(old);
	free(new);
}

/* ---- conflicts ---- */

struct small {
	int64_t id;
};

/* PKG: a.txt, b.txt; the transaction modifies a.txt, adds c.txt, deletes b.txt. */
static int64_t prepare_small(void)
{
	int64_t id;

	put(pkgfd, "a.txt", "a original\n", 0644, T_OLD);
	put(pkgfd, "b.txt", "b original\n", 0644, T_OLD);
	put(newfd, "a.txt", "a changed by the txn\n", 0644, T_NEW);
	put(newfd, "c.txt", "c added by the txn\n", 0644, T_NEW);
	id = begin_txn();
	record(id, "a.txt");
	record(id, "b.txt");
	record(id, "c.txt");
	seal(id);
	return id;
}

static size_t conflicts(int64_t id, struct store_conflict **ret)
{
	size_t n = 99;
	int r = store_txn_conflicts(s, id, pkgfd, ret, &n);

	cr_assert(r >= 0, "store_txn_conflicts: %s", strerror(-r));
	cr_assert(eq(sz, (size_t)r, n));
	return n;
}

Test(apply_conflicts, none_when_pkg_is_untouched)
{
	struct store_conflict *c = NULL;
	int64_t id = prepare_small();

	cr_assert(eq(sz, conflicts(id, &c), 0));
	store_conflicts_free(c, 0);
}

Test(apply_conflicts, a_file_changed_in_pkg_after_its_original_was_recorded)
{
	struct store_conflict *c = NULL;
	int64_t id = prepare_small();
	size_t n;

	put(pkgfd, "a.txt", "an editor saved\n", 0644, T_OLD);
	n = conflicts(id, &c);
	cr_assert(eq(sz, n, 1));
	cr_assert_str_eq(c[0].path, "a.txt");
	cr_assert_not_null(strstr(c[0].why, "changed"), "why: %s", c[0].why);
	store_conflicts_free(c, n);
}

Test(apply_conflicts, same_size_rewrite_with_the_old_mtime_is_still_a_conflict)
{
	struct store_conflict *c = NULL;
	int64_t id = prepare_small();
	size_t n;

	put(pkgfd, "a.txt", "A ORIGINAL\n", 0644, T_OLD);
	n = conflicts(id, &c);
	cr_assert(eq(sz, n, 1));
	cr_assert_str_eq(c[0].path, "a.txt");
	store_conflicts_free(c, n);
}

Test(apply_conflicts, a_file_created_in_pkg_where_the_txn_adds_one)
{
	struct store_conflict *c = NULL;
	int64_t id = prepare_small();
	size_t n;

	put(pkgfd, "c.txt", "someone else's c\n", 0644, T_OLD);
	n = conflicts(id, &c);
	cr_assert(eq(sz, n, 1));
	cr_assert_str_eq(c[0].path, "c.txt");
	cr_assert_not_null(strstr(c[0].why, "created"), "why: %s", c[0].why);
	store_conflicts_free(c, n);
}

Test(apply_conflicts, a_file_deleted_in_pkg_that_the_txn_modifies)
{
	struct store_conflict *c = NULL;
	int64_t id = prepare_small();
	size_t n;

	cr_assert(eq(int, unlinkat(pkgfd, "a.txt", 0), 0));
	n = conflicts(id, &c);
	cr_assert(eq(sz, n, 1));
	cr_assert_str_eq(c[0].path, "a.txt");
	cr_assert_not_null(strstr(c[0].why, "deleted"), "why: %s", c[0].why);
	store_conflicts_free(c, n);
}

Test(apply_conflicts, none_when_pkg_already_holds_the_new_state)
{
	struct store_conflict *c = NULL;
	int64_t id = prepare_small();

	put(pkgfd, "a.txt", "a changed by the txn\n", 0644, T_NEW);
	put(pkgfd, "c.txt", "c added by the txn\n", 0644, T_NEW);
	cr_assert(eq(int, unlinkat(pkgfd, "b.txt", 0), 0));
	cr_assert(eq(sz, conflicts(id, &c), 0));
	store_conflicts_free(c, 0);
}

Test(apply_conflicts, touching_a_file_without_changing_it_is_no_conflict)
{
	struct store_conflict *c = NULL;
	int64_t id = prepare_small();

	put(pkgfd, "a.txt", "a original\n", 0644, T_NEW);
	cr_assert(eq(sz, conflicts(id, &c), 0));
	store_conflicts_free(c, 0);
}

Test(apply_conflicts, a_file_created_in_pkg_where_the_txn_created_and_removed_one)
{
	struct store_conflict *c = NULL;
	struct store_entry absent;
	int64_t id;
	size_t n;

	u_mkdir(pkgfd, "dir", 0755);
	put(pkgfd, "dir/old", "old\n", 0644, T_OLD);
	id = begin_txn();
	/* Through the mount: create dir/tmp, delete it, then remove dir altogether. */
	record(id, "dir/tmp");
	record(id, "dir/old");
	record(id, "dir");
	seal(id);
	cr_assert(eq(int, store_entry_at(s, pkgfd, "dir/tmp", 0, &absent), 0));
	cr_assert(eq(u32, absent.mode, 0));
	/* Meanwhile an editor saves dir/tmp in PKG: removing dir would need to delete it. */
	put(pkgfd, "dir/tmp", "saved by an editor\n", 0644, T_OLD);
	n = conflicts(id, &c);
	cr_assert(eq(sz, n, 1), "the file in the way of the deletion was not reported");
	cr_assert_str_eq(c[0].path, "dir/tmp");
	store_conflicts_free(c, n);
}

Test(apply_conflicts, a_file_created_in_a_directory_the_txn_deletes)
{
	struct store_conflict *c = NULL;
	int64_t id;
	size_t n;

	u_mkdir(pkgfd, "dir", 0755);
	put(pkgfd, "dir/old", "old\n", 0644, T_OLD);
	id = begin_txn();
	record(id, "dir");
	record(id, "dir/old");
	seal(id); /* the new tree has no dir/ */
	put(pkgfd, "dir/new", "created behind the txn's back\n", 0644, T_OLD);
	n = conflicts(id, &c);
	cr_assert(eq(sz, n, 1));
	cr_assert_str_eq(c[0].path, "dir/new");
	store_conflicts_free(c, n);
}

/*
 * A row sealed by a cjfs that did not record xattrs (schema 4 and older)
 * has no lists: the file commit writes keeps the xattrs PKG's file had,
 * as that cjfs did.
 */
Test(apply_commit, a_row_sealed_without_xattr_lists_keeps_pkgs_xattrs)
{
	char db[PATH_MAX], path[PATH_MAX], val[16];
	sqlite3 *h;
	int64_t id;
	char *c;

	put(pkgfd, "f", "old\n", 0644, T_OLD);
	put(newfd, "f", "new\n", 0644, T_NEW);
	snprintf(path, sizeof(path), "%s/f", pkg);
	if (setxattr(path, "user.k", "v", 1, 0) < 0)
		cr_skip_test("no user xattrs here");
	id = begin_txn();
	record(id, "f");
	seal(id);
	/* What a schema 4 seal left: no lists. */
	snprintf(db, sizeof(db), "%s/store/index.db", root);
	cr_assert(eq(int, sqlite3_open(db, &h), SQLITE_OK));
	cr_assert(eq(int,
		     sqlite3_exec(h, "UPDATE change SET o_xattrs = NULL, n_xattrs = NULL", NULL,
				  NULL, NULL),
		     SQLITE_OK));
	sqlite3_close(h);
	cr_assert(eq(int, store_txn_stage(s, id, pkgfd, 0, NULL), 0));
	to_committing(id);
	cr_assert(eq(int, store_txn_promote(s, id, pkgfd, 0, NULL), 0));
	c = u_read(pkgfd, "f", NULL);
	cr_assert_str_eq(c, "new\n");
	free(c);
	cr_assert(eq(sz, (size_t)getxattr(path, "user.k", val, sizeof(val)), 1),
		  "PKG's xattr is gone");
	cr_assert(eq(chr, val[0], 'v'));
}
