// SPDX-License-Identifier: MIT
/*
 * Bounded daemon memory: beyond its inode cap the daemon asks the kernel to
 * forget the least recently used entries, and the mount keeps working as
 * before for every file, forgotten or not.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct h_env env;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
}

static void teardown(void)
{
	h_teardown(&env);
}

TestSuite(memory, .init = setup, .fini = teardown, .timeout = 120);

Test(memory, beyond_its_inode_cap_the_daemon_has_the_kernel_forget_and_nothing_breaks)
{
	char *s;

	/* 3,000 files in 6 directories: ten times the cap below. */
	cr_assert_eq(h_sh(env.pkg,
			  "for d in 0 1 2 3 4 5; do mkdir d$d && (cd d$d && "
			  "seq 1 500 | while read i; do echo \"$d $i\" > f$i; done); done"),
		     0);
	setenv("CJFS_INODE_CAP", "300", 1);
	setenv("CJFS_DEBUG", "2", 1);
	h_mount_fg(&env);
	unsetenv("CJFS_INODE_CAP");
	unsetenv("CJFS_DEBUG");
	cr_assert_eq(h_sh(env.mnt, "find . -type f | xargs cat > /dev/null"), 0);
	/* The reclaimer runs every 250 ms. */
	cr_assert_eq(h_sh(env.mnt, "sleep 1"), 0);
	/* Forgotten entries are looked up again: content, changes and listings all still right. */
	cr_assert_eq(h_sh(env.mnt, "test \"$(cat d3/f250)\" = '3 250' && "
				   "test $(find . -type f | wc -l) = 3000 && "
				   "echo changed > d0/f1 && rm d5/f500 && mv d4/f1 d4/g1"),
		     0);
	s = h_read(env.mnt, "d0/f1");
	cr_assert_str_eq(s, "changed\n");
	free(s);
	cr_assert_eq(h_unmount(&env), 0, "the daemon did not exit cleanly: %s", env.err);
	cr_assert_not_null(strstr(env.err, "reclaim: asked the kernel to drop"),
			   "the daemon never reclaimed: %.2000s", env.err);
	cr_assert_eq(h_cjfs(&env, "status", "1", NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "M d0/f1\nD d4/f1\nA d4/g1\nD d5/f500\n");
}
