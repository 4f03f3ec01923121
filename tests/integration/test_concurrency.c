// SPDX-License-Identifier: MIT
/*
 * Concurrency (issue 3, item 6): two commits, or a commit and a rollback, of
 * the same transaction at once -- exactly one wins and the other says why;
 * other cjfs commands running meanwhile (whose start-up recovery sees a
 * transaction mid-commit) leave it alone; a commit while the mount is busy
 * refuses and changes nothing; a second transaction on one PKG needs
 * --concurrent.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;
static char *old_tree;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	cr_assert_eq(h_sh(env.pkg, "mkdir -p src && for i in $(seq 1 60); do "
				   "printf 'line %%s\\n' $i > src/f$i.txt; done && "
				   "printf 'a\\n' > a.txt && printf 'b\\n' > b.txt && "
				   "touch -d '2020-01-02' src/f*.txt a.txt b.txt"),
		     0);
	old_tree = h_snapshot(env.pkg, true);
}

static void teardown(void)
{
	free(old_tree);
	old_tree = NULL;
	h_teardown(&env);
}

TestSuite(concurrency, .init = setup, .fini = teardown, .timeout = 300);

/*
 * Open a transaction with a few changes (different in each round), not
 * mounted; returns the tree it would give.
 */
static char *open_txn(long round)
{
	char *tree;

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt,
			  "for i in $(seq 1 20); do printf 'x\\n' >> src/f$i.txt; done && "
			  "rm -f src/f%ld.txt && mkdir -p new/r%ld && printf 'n\\n' > new/r%ld/n.txt",
			  60 - round, round, round),
		     0);
	tree = h_snapshot(env.mnt, true);
	cr_assert_eq(h_unmount(&env), 0);
	return tree;
}

static bool says_busy_or_finished(const char *err)
{
	return strstr(err, "is being committed or rolled back by another cjfs process") ||
	       strstr(err, "is finished: nothing to do") || strstr(err, "already committed") ||
	       strstr(err, "was rolled back");
}

/*
 * Stop a commit at the start of each phase; meanwhile a second commit and a
 * rollback are refused, and status (whose recovery sees the transaction
 * sealed or committing) leaves it alone. Then the first commit finishes.
 */
Test(concurrency, a_commit_in_progress_refuses_a_second_commit_and_a_rollback)
{
	static const char *const phases[] = { "seal", "stage", "promote" };
	char *new_tree = open_txn(0);

	h_save_state(&env, "tmpl");
	for (size_t k = 0; k < 3; k++) {
		char *argv[] = { (char *)"commit", (char *)"1", NULL };
		char fault[64], *fenv[] = { fault, NULL }, *now;
		long at = h_commit_phase(&env, 1, phases[k]);
		struct h_proc first;

		snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:stop", at);
		h_cjfs_start(&env, &first, fenv, argv);
		cr_assert(h_cjfs_wait_stopped(&first), "the commit did not stop at %s", phases[k]);
		cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 1, "a second commit during %s: %s",
			     phases[k], env.out);
		h_assert_one_line(&env, "being committed or rolled back by another cjfs process");
		cr_assert_eq(h_cjfs(&env, "rollback", "1", NULL), 1, "a rollback during %s: %s",
			     phases[k], env.out);
		h_assert_one_line(&env, "being committed or rolled back by another cjfs process");
		cr_assert_eq(h_cjfs(&env, "status", NULL), 0, "%s", env.err);
		cr_assert_eq(h_cjfs(&env, "recover", NULL), 0, "%s", env.err);
		cr_assert_str_eq(env.out,
				 "0 commit(s) finished, 0 reopened, 0 leftover(s) removed, 0 failed\n",
				 "recovery touched a commit in progress (%s)", phases[k]);
		cr_assert_eq(h_cjfs_wait(&env, &first), 0, "the first commit failed (%s): %s",
			     phases[k], first.err);
		now = h_snapshot(env.pkg, true);
		cr_assert_str_eq(now, new_tree, "PKG is not the new tree (stopped at %s)",
				 phases[k]);
		free(now);
		cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 1);
		h_assert_one_line(&env, "1");
		cr_assert(says_busy_or_finished(env.err), "%s", env.err);
		/* Back to the open transaction for the next phase. */
		h_load_state(&env, "tmpl");
	}
	free(new_tree);
}

/* Start both at once; exactly one succeeds. Returns which index won. */
static int race(char *const a[], char *const b[], struct h_proc *pa, struct h_proc *pb)
{
	int ra, rb;

	h_cjfs_start(&env, pa, NULL, a);
	h_cjfs_start(&env, pb, NULL, b);
	ra = h_cjfs_wait(&env, pa);
	rb = h_cjfs_wait(&env, pb);
	cr_assert((ra == 0) != (rb == 0), "not exactly one won: %d (%s) and %d (%s)", ra, pa->err,
		  rb, pb->err);
	cr_assert(ra == 1 || rb == 1, "the loser did not exit 1: %d %d", ra, rb);
	cr_assert(says_busy_or_finished(ra ? pa->err : pb->err), "unclear refusal: %s",
		  ra ? pa->err : pb->err);
	return ra == 0 ? 0 : 1;
}

Test(concurrency, two_commits_at_once_exactly_one_wins)
{
	char *commit[] = { (char *)"commit", NULL, NULL };
	long rounds = h_knob("CJFS_TEST_RACES", 3, 2);

	for (long i = 0; i < rounds; i++) {
		struct h_proc a, b;
		char id[32], *new_tree, *now;

		new_tree = open_txn(i);
		snprintf(id, sizeof(id), "%ld", i + 1);
		commit[1] = id;
		race(commit, commit, &a, &b);
		now = h_snapshot(env.pkg, true);
		cr_assert_str_eq(now, new_tree, "round %ld: PKG is not the new tree", i);
		free(now);
		free(new_tree);
		cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0);
		/* The next round starts from this tree. */
	}
}

Test(concurrency, a_commit_and_a_rollback_at_once_exactly_one_wins)
{
	char *commit[] = { (char *)"commit", NULL, NULL };
	char *rollback[] = { (char *)"rollback", NULL, NULL };
	long rounds = h_knob("CJFS_TEST_RACES", 3, 2);

	for (long i = 0; i < rounds; i++) {
		char id[32], *before = h_snapshot(env.pkg, true), *new_tree, *now;
		struct h_proc a, b;
		int won;

		new_tree = open_txn(i);
		snprintf(id, sizeof(id), "%ld", i + 1);
		commit[1] = rollback[1] = id;
		/* Alternate who starts first. */
		won = i % 2 ? race(rollback, commit, &a, &b) ^ 1 : race(commit, rollback, &a, &b);
		now = h_snapshot(env.pkg, true);
		cr_assert_str_eq(now, won == 0 ? new_tree : before,
				 "round %ld: the %s won but PKG does not show it", i,
				 won == 0 ? "commit" : "rollback");
		cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0);
		free(now);
		free(new_tree);
		free(before);
	}
}

Test(concurrency, a_commit_while_a_file_is_open_in_the_mount_is_refused_as_busy)
{
	char path[PATH_MAX], *now, *state;
	int fd;

	h_mount(&env);
	h_write(env.mnt, "a.txt", "half-written by a tool\n");
	snprintf(path, sizeof(path), "%s/b.txt", env.mnt);
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	cr_assert(fd >= 0, "open '%s': %s", path, strerror(errno));
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 1, "the commit went ahead: %s",
		     env.out);
	h_assert_one_line(&env, env.mnt);
	cr_assert_not_null(strstr(env.err, "busy"), "%s", env.err);
	now = h_snapshot(env.pkg, true);
	cr_assert_str_eq(now, old_tree, "a refused commit changed PKG");
	free(now);
	/* Still mounted and open; the tool finishes and the commit goes through. */
	state = h_txn_state(&env, 1);
	cr_assert(state && !strcmp(state, "open"), "transaction 1 is %s", state ? state : "gone");
	free(state);
	cr_assert_eq(write(fd, "more\n", 5), 5, "the mount stopped serving: %s", strerror(errno));
	close(fd);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	now = h_read(env.pkg, "b.txt");
	cr_assert_str_eq(now, "b\nmore\n");
	free(now);
}

Test(concurrency, a_second_transaction_on_one_pkg_needs_concurrent)
{
	char mnt2[PATH_MAX], *s;

	snprintf(mnt2, sizeof(mnt2), "%s/mnt2", env.root);
	cr_assert_eq(mkdir(mnt2, 0755), 0);
	h_mount(&env);
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, mnt2, NULL), 1, "a second mount was allowed");
	h_assert_one_line(&env, "already has open transaction 1 mounted at");
	cr_assert_eq(h_cjfs(&env, "mount", "--concurrent", env.pkg, mnt2, NULL), 0, "%s", env.err);
	/* Each changes its own file: both commit. */
	h_write(env.mnt, "a.txt", "from 1\n");
	h_write(mnt2, "b.txt", "from 2\n");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "commit", mnt2, NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(s, "from 1\n");
	free(s);
	s = h_read(env.pkg, "b.txt");
	cr_assert_str_eq(s, "from 2\n");
	free(s);
	/* Both change the same file: the second to commit finds the conflict. */
	h_mount(&env);
	cr_assert_eq(h_cjfs(&env, "mount", "--concurrent", env.pkg, mnt2, NULL), 0, "%s", env.err);
	h_write(env.mnt, "a.txt", "again from 3\n");
	h_write(mnt2, "a.txt", "again from 4\n");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "commit", mnt2, NULL), 1, "a lost update: %s", env.out);
	cr_assert_not_null(strstr(env.err, "conflict: 'a.txt'"), "%s", env.err);
	s = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(s, "again from 3\n");
	free(s);
	/* An orphaned transaction blocks a new one as well. */
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, env.mnt, NULL), 1);
	h_assert_one_line(&env, "already has open transaction 4 (not mounted)");
	cr_assert_eq(h_cjfs(&env, "rollback", "4", NULL), 0, "%s", env.err);
}

/*
 * A commit that dies holding the transaction sealed, while a second commit
 * is already past its own start-up recovery and waiting to lock: once it has
 * the lock, the second commit must settle the dead one's work itself and
 * go on, not stop at "it is sealed".
 */
Test(concurrency, a_commit_taking_over_from_a_dead_one_settles_it_and_commits)
{
	char *argv[] = { (char *)"commit", (char *)"1", NULL };
	char fa[64], fb[64], *ea[] = { fa, NULL }, *eb[] = { fb, NULL };
	char *new_tree = open_txn(0), *now;
	struct h_proc a, b;
	long seal, stage;

	/*
	 * In an undisturbed commit the lock is the call before "seal"; B makes one
	 * more durable call first (its start-up recovery tries the lock too), so
	 * "seal" is where B is about to take the lock.
	 */
	seal = h_commit_phase(&env, 1, "seal");
	stage = h_commit_phase(&env, 1, "stage");
	snprintf(fa, sizeof(fa), "CJFS_FAULT=%ld:stop", stage);
	snprintf(fb, sizeof(fb), "CJFS_FAULT=%ld:stop", seal);
	h_cjfs_start(&env, &a, ea, argv);
	cr_assert(h_cjfs_wait_stopped(&a), "the first commit did not stop: %s", a.err);
	h_cjfs_start(&env, &b, eb, argv);
	cr_assert(h_cjfs_wait_stopped(&b), "the second commit did not stop");
	/* The first dies holding the transaction sealed. */
	cr_assert_eq(kill(a.pid, SIGKILL), 0);
	cr_assert_eq(h_cjfs_wait(&env, &a), 128 + SIGKILL);
	cr_assert_eq(h_cjfs_wait(&env, &b), 0, "the second commit failed: %s", b.err);
	now = h_snapshot(env.pkg, true);
	cr_assert_str_eq(now, new_tree, "PKG is not the new tree");
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0);
	free(now);
	free(new_tree);
}

/*
 * A resume while a commit is under way (past its unmount, about to seal)
 * would serve a transaction that is being sealed and then committed: writes
 * through that mount would be lost. It must be refused.
 */
Test(concurrency, a_commit_in_progress_refuses_a_resume)
{
	char *argv[] = { (char *)"commit", (char *)"1", NULL };
	char fault[64], *fenv[] = { fault, NULL }, *new_tree = open_txn(0), *now;
	struct h_proc a;
	struct stat st, parent;

	snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:stop", h_commit_phase(&env, 1, "seal"));
	h_cjfs_start(&env, &a, fenv, argv);
	cr_assert(h_cjfs_wait_stopped(&a), "the commit did not stop: %s", a.err);
	cr_assert_eq(h_cjfs(&env, "mount", "--resume", "1", env.mnt, NULL), 1,
		     "a resume during a commit was allowed");
	h_assert_one_line(&env, "being committed or rolled back by another cjfs process");
	cr_assert_eq(h_cjfs_wait(&env, &a), 0, "the commit failed: %s", a.err);
	now = h_snapshot(env.pkg, true);
	cr_assert_str_eq(now, new_tree, "PKG is not the new tree");
	cr_assert_eq(stat(env.mnt, &st), 0);
	cr_assert_eq(stat(env.root, &parent), 0);
	cr_assert_eq(st.st_dev, parent.st_dev, "something is still mounted at '%s'", env.mnt);
	free(now);
	free(new_tree);
}
