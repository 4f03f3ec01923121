// SPDX-License-Identifier: MIT
/*
 * Real kills (guarantee 2): `cjfs commit` of a transaction of thousands of
 * changes (about 2900 over 2400 files) is killed with SIGKILL after a random
 * delay, over and over, with delays spread over the whole length of a commit
 * and more of them near its end; sometimes the recovery that follows is
 * killed too. After each, recovery must leave PKG exactly old or exactly
 * new, no temporaries, and a store that verifies. CJFS_TEST_KILLS sets the
 * number of iterations (10; 4 in sanitizer builds), CJFS_TEST_SEED the seed.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "harness.h"

static struct h_env env;
static char *old_tree, *new_tree;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup_tmpfs(&env, "1g");
}

static void teardown(void)
{
	free(old_tree);
	free(new_tree);
	old_tree = new_tree = NULL;
	h_teardown(&env);
}

TestSuite(kill, .init = setup, .fini = teardown, .timeout = 900);

/* 2400 files in 24 directories; the transaction changes about 2900 paths. */
static void prepare(void)
{
	cr_assert_eq(h_sh(env.pkg,
			  "for d in $(seq -w 0 23); do mkdir d$d; "
			  "  for i in $(seq 1 100); do printf 'file %%s %%s\\n' $d $i > d$d/f$i.txt; done; "
			  "done && ln -s d00/f1.txt link && touch -d '2020-01-02' d0*/f*.txt"),
		     0);
	old_tree = h_snapshot(env.pkg, true);
	h_mount_fg(&env);
	cr_assert_eq(h_sh(env.mnt,
			  /* 1000 modified */
			  "for f in d0*/f*.txt; do printf 'more\\n' >> $f; done && "
			  /* 1000 added, in 10 new directories */
			  "for j in $(seq 0 9); do mkdir -p new/n$j; "
			  "  for i in $(seq 1 100); do printf 'new %%s %%s\\n' $j $i > new/n$j/a$i.txt; done; "
			  "done && "
			  /* 500 deleted, two whole directories among them */
			  "rm d1[0-2]/f[1-9].txt d1[3-9]/f[1-9][0-9].txt && rm -r d22 d23 && "
			  /* 200 mode changes, 50 renames, a symlink retargeted */
			  "chmod 700 d2[0-1]/f*.txt && "
			  "for i in $(seq 1 50); do mv d21/f$i.txt d21/r$i.txt; done && "
			  "rm link && ln -s new/n0/a1.txt link"),
		     0);
	new_tree = h_snapshot(env.mnt, true);
	cr_assert_eq(h_unmount(&env), 0, "the daemon did not exit cleanly");
	h_save_state(&env, "tmpl");
}

static void reset(void)
{
	h_load_state(&env, "tmpl");
}

static uint64_t rng_state;

/* xorshift64*: the same seed gives the same delays on every machine. */
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ULL;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void sleep_ns(int64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) };

	while (nanosleep(&ts, &ts) < 0)
		;
}

/* Start `cjfs ARG...`, SIGKILL it after delay ns (if it still runs); its exit status. */
static int run_and_kill(char *const argv[], int64_t delay)
{
	struct h_proc p;

	h_cjfs_start(&env, &p, NULL, argv);
	sleep_ns(delay);
	kill(p.pid, SIGKILL);
	return h_cjfs_wait(&env, &p);
}

Test(kill, commit_killed_at_random_instants_recovers_to_exactly_old_or_new)
{
	char *commit[] = { (char *)"commit", (char *)"1", NULL };
	char *recover[] = { (char *)"recover", NULL };
	long iters = h_knob("CJFS_TEST_KILLS", 10, 4);
	size_t olds = 0, news = 0, finished = 0, recover_kills = 0;
	int64_t t0, full;
	char *now;

	rng_state = (uint64_t)h_env_long("CJFS_TEST_SEED", 20240611) | 1;
	prepare();
	/* How long an uninterrupted commit takes: the delays are spread over it. */
	reset();
	t0 = now_ns();
	cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
	full = now_ns() - t0;
	now = h_snapshot(env.pkg, true);
	cr_assert_str_eq(now, new_tree, "an uninterrupted commit did not give the mount's tree");
	free(now);
	for (long i = 0; i < iters; i++) {
		/*
		 * Stratified: even iterations spread over 0 to 1.1 x the commit, odd
		 * ones over its last part (0.6 to 1.1 x), where the commit point and
		 * the promote are, which take a small share of the time.
		 */
		long k = i / 2, nk = i % 2 ? iters / 2 : (iters + 1) / 2;
		int64_t from = i % 2 ? full * 6 / 10 : 0, span = full * 11 / 10 - from;
		int64_t slice = span / (nk ? nk : 1);
		int64_t delay = from + slice * k + (int64_t)(rng() % (uint64_t)(slice ? slice : 1));
		char what[128], *state;
		int rc, outcome;

		snprintf(what, sizeof(what), "kill %ld after %.1f ms (full commit %.1f ms)", i,
			 delay / 1e6, full / 1e6);
		reset();
		rc = run_and_kill(commit, delay);
		cr_assert(rc == 0 || rc == 128 + SIGKILL, "%s: commit exited %d: %s", what, rc,
			  env.err);
		finished += rc == 0;
		/* Every other time, kill the recovery as well: it must be recoverable too. */
		if (rc != 0 && rng() % 2) {
			run_and_kill(recover, (int64_t)(rng() % (uint64_t)(full / 4 + 1)));
			recover_kills++;
		}
		outcome = h_recover_and_check(&env, old_tree, new_tree, what);
		state = h_txn_state(&env, 1);
		if (outcome == 0)
			cr_assert(state && !strcmp(state, "orphaned"),
				  "%s: old tree but transaction 1 is %s", what,
				  state ? state : "not open");
		else
			cr_assert_null(state, "%s: new tree but transaction 1 is %s", what, state);
		free(state);
		olds += outcome == 0;
		news += outcome == 1;
	}
	cr_log_info("%ld kills over a %.0f ms commit (seed %ld): %zu old, %zu new (%zu finished before the kill), %zu recoveries killed too",
		    iters, full / 1e6, h_env_long("CJFS_TEST_SEED", 20240611), olds, news, finished,
		    recover_kills);
}
