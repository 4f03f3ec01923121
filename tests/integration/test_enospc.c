// SPDX-License-Identifier: MIT
/*
 * Full disks (guarantee 2 and issue 3, item 3), on real size-limited tmpfs
 * (root only; skipped otherwise): a commit that runs out of space in PKG
 * changes nothing and says so; ENOSPC in the upper layer reaches the tool
 * that writes, and PKG is untouched.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	if (geteuid() != 0)
		cr_skip_test("mounting a size-limited tmpfs needs root");
	h_setup(&env);
}

static void teardown(void)
{
	h_teardown(&env);
}

TestSuite(enospc, .init = setup, .fini = teardown, .timeout = 120);

static void small_pkg(void)
{
	cr_assert_eq(h_sh(env.pkg, "mkdir -p src && for i in $(seq 1 20); do "
				   "printf 'line %%s\\n' $i > src/f$i.txt; done && "
				   "head -c 200000 /dev/urandom > blob.bin && "
				   "touch -d '2020-01-02 03:04:05' src/f*.txt"),
		     0);
}

Test(enospc, a_commit_that_fills_pkg_changes_nothing_and_says_so)
{
	char *before, *after, *state;

	cr_assert(h_tmpfs(&env, env.pkg, "1m"), "cannot mount a tmpfs on '%s'", env.pkg);
	small_pkg();
	before = h_snapshot(env.pkg, true);
	h_mount(&env);
	/* The upper layer is in the store, on the big disk: the mount takes it all. */
	cr_assert_eq(h_sh(env.mnt,
			  "for i in $(seq 1 10); do printf 'cleaned\\n' >> src/f$i.txt; done && "
			  "head -c 3000000 /dev/urandom > huge.bin && rm src/f20.txt"),
		     0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 1, "the commit did not fail: %s",
		     env.out);
	h_assert_one_line(&env, "o space left");
	cr_assert_not_null(strstr(env.err, "nothing was changed"), "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "a commit that ran out of space changed PKG");
	free(after);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	state = h_txn_state(&env, 1);
	cr_assert(state && !strcmp(state, "orphaned"), "transaction 1 is %s",
		  state ? state : "finished");
	free(state);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
	/* Space freed: the same transaction commits. */
	cr_assert_eq(mount(NULL, env.pkg, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV, "size=16m"), 0);
	cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
	after = h_read(env.pkg, "src/f1.txt");
	cr_assert_str_eq(after, "line 1\ncleaned\n");
	free(after);
	free(before);
}

Test(enospc, running_out_of_inodes_while_promoting_undoes_the_commit)
{
	char *before, *after, *state;

	/*
	 * Inodes, not bytes: staging fits exactly, then creating the new
	 * directory after the commit point fails. 1 root + 4 files + 4
	 * temporaries (a1-a3 and b/x, all staged in the root) = 9.
	 */
	cr_assert(h_tmpfs(&env, env.pkg, "4m,nr_inodes=9"), "cannot mount a tmpfs on '%s'",
		  env.pkg);
	cr_assert_eq(h_sh(env.pkg, "for f in c1 c2 c3 c4; do printf '%%s\\n' $f > $f; done"), 0);
	before = h_snapshot(env.pkg, true);
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt,
			  "printf 'a\\n' > a1 && printf 'a\\n' > a2 && printf 'a\\n' > a3 && "
			  "mkdir b && printf 'x\\n' > b/x"),
		     0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 1, "the commit did not fail: %s",
		     env.out);
	h_assert_one_line(&env, "o space left");
	cr_assert_not_null(strstr(env.err, "PKG is unchanged"), "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "a commit undone after running out of inodes changed PKG");
	free(after);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	state = h_txn_state(&env, 1);
	cr_assert(state && !strcmp(state, "orphaned"), "transaction 1 is %s",
		  state ? state : "finished");
	free(state);
	free(before);
}

Test(enospc, a_full_upper_layer_is_reported_to_the_writing_tool_and_pkg_is_untouched)
{
	char *before, *after;
	int rc;

	small_pkg();
	before = h_snapshot(env.pkg, true);
	/* The store (and with it the upper layer) on a small tmpfs. */
	cr_assert(h_tmpfs(&env, env.store, "2m"), "cannot mount a tmpfs on '%s'", env.store);
	h_mount(&env);
	/* (dd's message goes outside the mount: the mount is what is full.) */
	rc = h_sh(env.mnt,
		  "dd if=/dev/zero of=big.bin bs=64k count=100 2>'%s/dd.err'; s=$?; "
		  "grep -q 'No space left on device' '%s/dd.err' || exit 99; exit $s",
		  env.root, env.root);
	cr_assert_eq(rc, 1, "dd did not fail with ENOSPC (%d)", rc);
	/* A copy-up that does not fit fails the same way, and the daemon keeps serving. */
	rc = h_sh(env.mnt,
		  "{ head -c 3000000 /dev/zero >> blob.bin; } 2>'%s/app.err'; "
		  "grep -q 'No space left on device' '%s/app.err' || exit 99; "
		  "cat src/f1.txt >/dev/null",
		  env.root, env.root);
	cr_assert_eq(rc, 0, "appending beyond the space left did not fail with ENOSPC (%d)", rc);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "PKG changed");
	free(after);
	/* Rolling back needs no space and frees what the transaction took. */
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "rollback changed PKG");
	free(after);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
	free(before);
}

Test(enospc, a_commit_undone_for_want_of_inodes_restores_pkg_without_more_inodes)
{
	char *before, *after, *state;

	/*
	 * As above, but the transaction also modifies files, whose originals an
	 * undo would stage again. 1 root + 3 files + 3 temporaries (m1, m2, a/x)
	 * = 7: the new directory 'a', first in path order, cannot be created, and
	 * there is no inode left for anything but what the undo frees first.
	 */
	cr_assert(h_tmpfs(&env, env.pkg, "4m,nr_inodes=7"), "cannot mount a tmpfs on '%s'",
		  env.pkg);
	cr_assert_eq(h_sh(env.pkg,
			  "printf 'c\\n' > c1 && printf 'm1\\n' > m1 && printf 'm2\\n' > m2"),
		     0);
	before = h_snapshot(env.pkg, true);
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned\\n' >> m1 && printf 'cleaned\\n' >> m2 && "
				   "mkdir a && printf 'x\\n' > a/x"),
		     0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 1, "the commit did not fail: %s",
		     env.out);
	h_assert_one_line(&env, "o space left");
	cr_assert_not_null(strstr(env.err, "PKG is unchanged"), "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "a commit undone after running out of inodes changed PKG");
	free(after);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	state = h_txn_state(&env, 1);
	cr_assert(state && !strcmp(state, "orphaned"), "transaction 1 is %s",
		  state ? state : "finished");
	free(state);
	free(before);
}
