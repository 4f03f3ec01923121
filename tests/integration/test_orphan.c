// SPDX-License-Identifier: MIT
/*
 * Crash of the daemon (guarantee 5): kill -9 of the FUSE daemon while a tool
 * writes through the mount leaves PKG untouched; the transaction is listed
 * as orphaned, can be remounted with its changes (mount --resume), and can
 * be committed or rolled back by id without a mount.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;
static char *before;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	cr_assert_eq(h_sh(env.pkg, "printf 'a\\n' > a.txt && printf 'b\\n' > b.txt && mkdir d && "
				   "printf 'c\\n' > d/c.txt && touch -d '2020-01-02' a.txt b.txt"),
		     0);
	before = h_snapshot(env.pkg, true);
}

static void teardown(void)
{
	free(before);
	before = NULL;
	h_teardown(&env);
}

TestSuite(orphan, .init = setup, .fini = teardown, .timeout = 120);

/*
 * Mount in the foreground (the daemon is our child), change a few files, then
 * kill -9 the daemon while a writer is appending through the mount.
 */
static void kill_daemon_mid_run(void)
{
	char *after, *state;
	pid_t writer;
	int status;

	h_mount_fg(&env);
	cr_assert_eq(h_sh(env.mnt,
			  "printf 'cleaned a\\n' > a.txt && rm b.txt && "
			  "printf 'new\\n' > new.txt && mkdir d/e && printf 'x\\n' > d/e/x"),
		     0);
	writer = fork();
	cr_assert(writer >= 0);
	if (writer == 0) {
		/* Stops by itself at the first write the dead mount refuses. */
		if (chdir(env.mnt) < 0)
			_exit(1);
		execl("/bin/sh", "sh", "-c",
		      "while printf 'more\\n' >> busy.txt; do :; done 2>/dev/null", (char *)NULL);
		_exit(127);
	}
	usleep(100 * 1000);
	cr_assert_eq(kill(env.daemon, SIGKILL), 0);
	cr_assert_eq(waitpid(env.daemon, &status, 0), env.daemon);
	env.daemon = 0;
	cr_assert_eq(waitpid(writer, &status, 0), writer);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "PKG changed when the daemon was killed");
	free(after);
	state = h_txn_state(&env, 1);
	cr_assert(state && !strcmp(state, "orphaned"), "transaction 1 is listed as %s",
		  state ? state : "nothing");
	free(state);
	/* Its changes are still known, without a mount. */
	cr_assert_eq(h_cjfs(&env, "status", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "M a.txt\n"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "D b.txt\n"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "A new.txt\n"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "A d/e/\n"), "%s", env.out);
}

Test(orphan, a_killed_daemon_leaves_pkg_untouched_and_mount_resume_shows_its_changes)
{
	char *s, path[PATH_MAX];
	struct stat st;

	kill_daemon_mid_run();
	/* The old mount point is dead (ENOTCONN); resume takes it over. */
	cr_assert_eq(h_cjfs(&env, "mount", "--resume", "1", env.mnt, NULL), 0, "%s", env.err);
	s = h_read(env.mnt, "a.txt");
	cr_assert_not_null(s);
	cr_assert_str_eq(s, "cleaned a\n");
	free(s);
	s = h_read(env.mnt, "d/e/x");
	cr_assert_not_null(s);
	cr_assert_str_eq(s, "x\n");
	free(s);
	snprintf(path, sizeof(path), "%s/b.txt", env.mnt);
	cr_assert_eq(stat(path, &st), -1, "a deleted file is back after resume");
	s = h_txn_state(&env, 1);
	cr_assert(s && !strcmp(s, "open"), "transaction 1 is %s after resume", s ? s : "nothing");
	free(s);
	/* And it goes on as any mounted transaction. */
	h_write(env.mnt, "after.txt", "after resume\n");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "after.txt");
	cr_assert_not_null(s);
	free(s);
	s = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(s, "cleaned a\n");
	free(s);
}

Test(orphan, an_orphaned_transaction_commits_by_id_without_a_mount)
{
	char *s, path[PATH_MAX];
	struct stat st;

	kill_daemon_mid_run();
	cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(s, "cleaned a\n");
	free(s);
	s = h_read(env.pkg, "d/e/x");
	cr_assert_not_null(s, "d/e/x was not committed");
	free(s);
	snprintf(path, sizeof(path), "%s/b.txt", env.pkg);
	cr_assert_eq(stat(path, &st), -1, "b.txt was not deleted");
	/* The dead mount is gone with it. */
	cr_assert_eq(stat(env.mnt, &st), 0, "the mount point is still dead: %s", strerror(errno));
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
}

Test(orphan, an_orphaned_transaction_rolls_back_by_id_without_a_mount)
{
	char *after;
	struct stat st;

	kill_daemon_mid_run();
	cr_assert_eq(h_cjfs(&env, "rollback", "1", NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "rollback changed PKG");
	free(after);
	cr_assert_eq(stat(env.mnt, &st), 0, "the mount point is still dead: %s", strerror(errno));
	after = h_txn_state(&env, 1);
	cr_assert_null(after, "transaction 1 is still listed as %s", after);
}

/*
 * mkdir of a name whose PKG directory was removed builds the new directory
 * under a hidden name beside it and renames it over the name (fs/dir.c): a
 * daemon killed before the rename leaves such hidden directories in the
 * upper layer. After a resume they stay hidden, a mkdir whose hidden name
 * is taken by one replaces it, and the commit promotes none of them.
 */
Test(orphan, directories_half_made_by_a_killed_daemon_stay_hidden_and_are_not_promoted)
{
	char upper[PATH_MAX], *s;
	int status;

	h_mount_fg(&env);
	cr_assert_eq(h_sh(env.mnt, "rm -r d"), 0);
	cr_assert_eq(kill(env.daemon, SIGKILL), 0);
	cr_assert_eq(waitpid(env.daemon, &status, 0), env.daemon);
	env.daemon = 0;
	snprintf(upper, sizeof(upper), "%s/txn/1/upper", env.store);
	cr_assert_eq(h_sh(upper, "for i in $(seq 1 50); do mkdir '.cjfs~mkdir.'$i && "
				 ": > '.cjfs~mkdir.'$i/'.cjfs~opaque' && "
				 "echo half > '.cjfs~mkdir.'$i/half; done"),
		     0);
	cr_assert_eq(h_cjfs(&env, "mount", "--resume", "1", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_sh(env.mnt, "test \"$(ls -A | tr '\\n' ' ')\" = 'a.txt b.txt '"), 0,
		     "the listing after resume is not a.txt b.txt");
	cr_assert_eq(h_sh(env.mnt, "mkdir d && test -z \"$(ls -A d)\""), 0,
		     "mkdir over the removed directory failed or shows content");
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_null(strstr(env.out, "cjfs~"), "status lists a hidden name: %s", env.out);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs~"), 0, "hidden names reached PKG");
	cr_assert_eq(h_sh(env.pkg, "test -d d && test -z \"$(ls -A d)\""), 0,
		     "PKG's d is not the empty directory the mount showed");
	s = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(s, "a\n");
	free(s);
}

/*
 * The daemon dies under a command that goes on and exits 0 (sh without -e
 * ignores the failed writes): its status says nothing about what reached
 * the layer, so cjfs run does not commit. The transaction stays, orphaned,
 * for the user to look at and finish.
 */
Test(orphan, run_does_not_commit_when_the_daemon_dies_under_the_command)
{
	/* It waits (at most 20 s) for the test to create "killed" next to PKG. */
	char *argv[] = { (char *)"run", env.pkg, (char *)"--", (char *)"sh", (char *)"-c",
			 (char *)"printf 'cleaned a\\n' > a.txt; : > \"$0/wrote\"; i=0; "
				 "while [ ! -e \"$0/killed\" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done; "
				 "printf 'new\\n' > new.txt; exit 0",
			 env.root, NULL };
	struct h_proc p;
	char *after;
	bool wrote;
	long pid;

	h_cjfs_start(&env, &p, NULL, argv);
	wrote = h_appears(env.root, "wrote");
	pid = h_sql_long(&env, "SELECT pid FROM txn WHERE id = 1");
	if (wrote && pid > 0)
		kill((pid_t)pid, SIGKILL);
	/* Dead once its lock is free: status lists the transaction as orphaned. */
	for (int i = 0; wrote && i < 1000; i++) {
		cr_assert_eq(h_cjfs(&env, "status", NULL), 0, "%s", env.err);
		if (strstr(env.out, "orphaned"))
			break;
		usleep(10000);
	}
	h_write(env.root, "killed", "");
	cr_assert(wrote, "the command did not start");
	cr_assert_not_null(strstr(env.out, "orphaned"), "the daemon did not die: %s", env.out);
	cr_assert_eq(h_cjfs_wait(&env, &p), 125, "%s", p.err);
	cr_assert_not_null(strstr(p.err, "died"), "%s", p.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "PKG changed");
	free(after);
	cr_assert_eq(h_cjfs(&env, "status", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "orphaned"), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "rollback", "1", NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "PKG changed");
	free(after);
}
