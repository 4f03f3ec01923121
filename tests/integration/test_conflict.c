// SPDX-License-Identifier: MIT
/*
 * No lost updates (guarantee 4): when PKG changes behind an open
 * transaction's back, commit applies nothing, names each conflicting path and
 * leaves the transaction open (status, rollback and a later commit work);
 * --force overwrites and keeps what it overwrote in the store.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"
#include "hash.h"

static struct h_env env;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	cr_assert_eq(h_sh(env.pkg,
			  "printf 'original a\\n' > a.txt && printf 'original b\\n' > b.txt && "
			  "printf 'original c\\n' > c.txt && mkdir -p dir/sub && "
			  "printf 'd\\n' > dir/d.txt && printf 's\\n' > dir/sub/s.txt && "
			  "touch -d '2020-01-02 03:04:05' a.txt b.txt c.txt"),
		     0);
}

static void teardown(void)
{
	h_teardown(&env);
}

TestSuite(conflict, .init = setup, .fini = teardown, .timeout = 120);

/* Commit refuses with rc 1, names path, and PKG is exactly as before. */
static void assert_refused(const char *path, const char *why)
{
	char *before = h_snapshot(env.pkg, true), *after;
	char want[256];
	int rc = h_cjfs(&env, "commit", "1", NULL);

	cr_assert_eq(rc, 1, "commit did not refuse (%d): %s", rc, env.err);
	snprintf(want, sizeof(want), "conflict: '%s' was %s", path, why);
	cr_assert_not_null(strstr(env.err, want), "the error does not say \"%s\": %s", want,
			   env.err);
	cr_assert_not_null(strstr(env.err, "nothing was committed"), "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "a refused commit changed PKG");
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	free(before);
	free(after);
}

static void assert_open(void)
{
	char *state = h_txn_state(&env, 1);

	cr_assert(state && (!strcmp(state, "orphaned") || !strcmp(state, "open")),
		  "transaction 1 is %s, not open", state ? state : "finished");
	free(state);
}

Test(conflict, an_edit_in_pkg_is_refused_named_and_the_transaction_stays_open)
{
	char *s;

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt,
			  "printf 'cleaned a\\n' > a.txt && printf 'cleaned b\\n' > b.txt && "
			  "printf 'new\\n' > new.txt"),
		     0);
	/* An editor saves a.txt in PKG while the transaction is open. */
	h_write(env.pkg, "a.txt", "editor's a\n");
	assert_refused("a.txt", "changed in PKG since the transaction began");
	cr_assert_null(strstr(env.err, "'b.txt'"), "b.txt is not a conflict: %s", env.err);
	assert_open();
	cr_assert_eq(h_cjfs(&env, "status", "1", NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "M a.txt\nM b.txt\nA new.txt\n");
	/* Committing again without resolving refuses again, still without a trace. */
	assert_refused("a.txt", "changed in PKG since the transaction began");
	/* Resolved: the editor's change is undone; now the commit goes through. */
	h_write(env.pkg, "a.txt", "original a\n");
	cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(s, "cleaned a\n");
	free(s);
	s = h_read(env.pkg, "new.txt");
	cr_assert_str_eq(s, "new\n");
	free(s);
}

Test(conflict, a_refused_transaction_can_be_rolled_back_keeping_the_edit)
{
	char *before, *after;

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned a\\n' > a.txt && rm c.txt"), 0);
	h_write(env.pkg, "a.txt", "editor's a\n");
	assert_refused("a.txt", "changed in PKG since the transaction began");
	before = h_snapshot(env.pkg, true);
	cr_assert_eq(h_cjfs(&env, "rollback", "1", NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "rollback changed PKG");
	free(before);
	free(after);
	after = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(after, "editor's a\n");
	free(after);
}

Test(conflict, a_file_created_in_pkg_where_the_transaction_adds_one_is_refused)
{
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'from the cleaner\\n' > added.txt && "
				   "printf 'cleaned b\\n' > b.txt"),
		     0);
	h_write(env.pkg, "added.txt", "from someone else\n");
	assert_refused("added.txt", "created in PKG since the transaction began");
	assert_open();
	/* The same bytes on both sides lose nothing: not a conflict. */
	h_write(env.pkg, "added.txt", "from the cleaner\n");
	cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
}

Test(conflict, a_file_deleted_in_pkg_that_the_transaction_changed_is_refused)
{
	char path[PATH_MAX];

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned c\\n' > c.txt"), 0);
	snprintf(path, sizeof(path), "%s/c.txt", env.pkg);
	cr_assert_eq(unlink(path), 0);
	assert_refused("c.txt", "deleted in PKG since the transaction began");
	assert_open();
	cr_assert_eq(h_cjfs(&env, "rollback", "1", NULL), 0, "%s", env.err);
}

Test(conflict, a_file_created_in_a_directory_the_transaction_deletes_is_refused)
{
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "rm -r dir"), 0);
	h_write(env.pkg, "dir/sub/late.txt", "late\n");
	assert_refused("dir/sub/late.txt", "created in PKG since the transaction began");
	assert_open();
	cr_assert_eq(h_cjfs(&env, "rollback", "1", NULL), 0, "%s", env.err);
}

/* The detail of the BACKUP_CREATED audit event of transaction 1 (malloc'd), or NULL. */
static char *backup_detail(void)
{
	char db[PATH_MAX];
	sqlite3 *h = NULL;
	sqlite3_stmt *st;
	char *detail = NULL;

	snprintf(db, sizeof(db), "%s/index.db", env.store);
	cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(h,
					"SELECT detail FROM audit WHERE txn = 1 AND"
					" event = 'BACKUP_CREATED'",
					-1, &st, NULL),
		     SQLITE_OK, "%s", sqlite3_errmsg(h));
	if (sqlite3_step(st) == SQLITE_ROW)
		detail = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(h);
	return detail;
}

Test(conflict, force_overwrites_and_keeps_the_overwritten_version_in_the_store)
{
	static const char editor[] = "editor's a\n";
	char hex[HASH_HEX_LEN + 1], rel[128], *detail, *s;
	uint8_t h[HASH_LEN];

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned a\\n' > a.txt"), 0);
	h_write(env.pkg, "a.txt", editor);
	cr_assert_eq(h_cjfs(&env, "commit", "--force", "1", NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(s, "cleaned a\n");
	free(s);
	/* The overwritten bytes: named in the audit log, and in the store under their hash. */
	cr_assert_eq(hash_buf(editor, strlen(editor), h), 0);
	hash_to_hex(h, hex);
	detail = backup_detail();
	cr_assert_not_null(detail, "no BACKUP_CREATED event for the overwritten file");
	cr_assert_not_null(strstr(detail, "a.txt"), "%s", detail);
	cr_assert_not_null(strstr(detail, hex), "the event does not name hash %s: %s", hex, detail);
	free(detail);
	snprintf(rel, sizeof(rel), "objects/%.2s/%s", hex, hex);
	s = h_read(env.store, rel);
	cr_assert_not_null(s, "the overwritten version is not in the store at %s", rel);
	cr_assert_str_eq(s, editor);
	free(s);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
}

/*
 * An editor saves a file in PKG while the commit is staging (which can take
 * a while on a big change set): checked again just before the commit point,
 * the save is a conflict, not lost.
 */
Test(conflict, an_edit_made_while_the_commit_stages_is_refused_not_lost)
{
	char fault[64], *fenv[] = { fault, NULL },
			*argv[] = { (char *)"commit", (char *)"1", NULL };
	struct h_proc p;
	char *s;
	int rc;

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned a\\n' > a.txt && printf 'new\\n' > new.txt"),
		     0);
	cr_assert_eq(h_unmount(&env), 0);
	/* Held at the first durable call after staging. */
	snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:stop", h_commit_phase(&env, 1, "sync"));
	h_cjfs_start(&env, &p, fenv, argv);
	cr_assert(h_cjfs_wait_stopped(&p), "the commit did not stop: %s", p.err);
	cr_assert_gt(h_count_names(env.pkg, ".cjfs-"), 0, "the commit stopped before staging");
	h_write(env.pkg, "a.txt", "editor's a\n");
	rc = h_cjfs_wait(&env, &p);
	cr_assert_eq(rc, 1, "the commit did not refuse (%d): %s", rc, p.err);
	cr_assert_not_null(strstr(p.err, "conflict: 'a.txt' was changed in PKG"), "%s", p.err);
	s = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(s, "editor's a\n", "the editor's save was lost");
	free(s);
	cr_assert_eq(access(env.pkg, F_OK), 0);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	cr_assert_eq(h_count_names(env.pkg, "new.txt"), 0, "a refused commit added new.txt");
	assert_open();
}

/* Skip the test where PKG's file system keeps no user xattrs. */
static void need_user_xattrs(void)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/c.txt", env.pkg);
	if (setxattr(path, "user.probe", "", 0, 0) == 0 && removexattr(path, "user.probe") == 0)
		return;
	h_teardown(&env); /* no .fini after a skip in the body */
	cr_skip_test("no user xattrs in '%s'", env.pkg);
}

/*
 * An xattr set in PKG while the transaction was open, on a file the
 * transaction rewrote, is a conflict like an edit of its bytes: commit
 * refuses, and the attribute is still there. (A copy-up copied the
 * attributes PKG had then; the commit would write those.)
 */
Test(conflict, an_xattr_set_in_pkg_on_a_file_the_transaction_changed_is_refused)
{
	char path[PATH_MAX], val[16];

	need_user_xattrs();
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned a\\n' > a.txt"), 0);
	snprintf(path, sizeof(path), "%s/a.txt", env.pkg);
	cr_assert_eq(setxattr(path, "user.tag", "mine", 4, 0), 0);
	assert_refused("a.txt", "changed in PKG since the transaction began");
	assert_open();
	cr_assert_eq(getxattr(path, "user.tag", val, sizeof(val)), 4);
}

/*
 * PKG's root given an xattr behind the transaction's back, after the
 * mount showed its attributes and before the mount root was changed: the
 * commit would take it away again, so it is refused.
 */
Test(conflict, an_xattr_set_on_pkgs_root_before_the_mount_root_changed_is_refused)
{
	char path[PATH_MAX], val[16];

	need_user_xattrs();
	h_mount(&env);
	cr_assert_eq(setxattr(env.pkg, "user.tag", "mine", 4, 0), 0);
	snprintf(path, sizeof(path), "%s/", env.mnt);
	cr_assert_eq(chmod(path, 0700), 0, "chmod the mount root: %s", strerror(errno));
	assert_refused(".", "changed in PKG since the transaction began");
	assert_open();
	cr_assert_eq(getxattr(env.pkg, "user.tag", val, sizeof(val)), 4);
}

/*
 * PKG put back as a copy of itself while the transaction was open (new
 * inodes, the same bytes and xattrs: a restore from a backup, a `cp -a`)
 * is no conflict, and the commit still brings what the mount showed: an
 * xattr set on a directory, a hard link to a file the transaction left
 * as it was.
 */
Test(conflict, pkg_copied_back_in_place_still_gets_the_mounts_xattrs_and_links)
{
	char *shown, *after, tmp[PATH_MAX];
	struct stat a, b;

	need_user_xattrs();
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "ln b.txt dir/b-link && printf 'x\\n' >> c.txt"), 0);
	snprintf(tmp, sizeof(tmp), "%s/dir", env.mnt);
	cr_assert_eq(setxattr(tmp, "user.dir", "d", 1, 0), 0);
	shown = h_snapshot(env.mnt, true);
	cr_assert_eq(h_unmount(&env), 0);
	snprintf(tmp, sizeof(tmp), "%s/copy", env.root);
	h_copy_tree(env.pkg, tmp);
	h_restore_tree(tmp, env.pkg);
	cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, shown, "PKG after the commit differs from what the mount showed");
	snprintf(tmp, sizeof(tmp), "%s/b.txt", env.pkg);
	cr_assert_eq(stat(tmp, &a), 0);
	snprintf(tmp, sizeof(tmp), "%s/dir/b-link", env.pkg);
	cr_assert_eq(stat(tmp, &b), 0);
	cr_assert_eq(a.st_ino, b.st_ino, "dir/b-link is not a hard link of b.txt");
	free(shown);
	free(after);
}
