// SPDX-License-Identifier: MIT
/*
 * Fault injection at every phase of a commit (guarantee 2). A transaction of
 * ~90 changes (modified, added, deleted, renamed, new directories, mode and
 * type changes, symlinks, hard links, a FIFO; several of each kind, so the seal and stage
 * workers on every CPU have work) is committed with CJFS_FAULT=N:KIND for
 * N over the commit's durable calls: open and lock, seal, stage, sync, the
 * promote after the commit point, and its final sync. After each fault:
 *   crash   -> recovery leaves PKG exactly old (before the commit point) or
 *              exactly new (after it), twice-idempotent, no litter, verify ok;
 *   ENOSPC,
 *   EIO     -> commit exits 1 with one line naming the error, PKG is exactly
 *              old and the transaction still open (a failed promote is undone).
 * The N are sampled (both ends of every phase and four evenly inside, one
 * in sanitizer builds); CJFS_TEST_FAULT_ALL=1 tries every N,
 * CJFS_TEST_FAULT_SAMPLES sets the number inside each phase.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static struct h_env env;
static char *old_tree, *new_tree;

/* The phases a commit logs with CJFS_DEBUG=2, in order. */
static const char *const phase_names[] = { "seal", "stage", "sync", "promote", "done" };
#define NPHASES 5

struct plan {
	long start[NPHASES + 1]; /* start[0] = 1 (open, lock), then the phases; last = done */
	long total;		 /* durable calls of a whole commit */
	long *n;		 /* the N to try, ascending */
	size_t count;
};

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup_tmpfs(&env, "512m");
}

/*
 * Build PKG and transaction 1, and keep both as the template every iteration
 * starts from. In the test body, not .init: Criterion runs .fini (which
 * unmounts) only after the test body has started.
 */
static void prepare(void)
{
	cr_assert_eq(h_sh(env.pkg,
			  "for d in src lib docs tests old; do mkdir -p $d/sub; "
			  "  for i in $(seq 1 12); do printf 'line %%s %%s\\n' $d $i > $d/f$i.txt; done; "
			  "  printf 'sub\\n' > $d/sub/s.txt; "
			  "done && "
			  "mkdir -p old/deep/er && printf 'deep\\n' > old/deep/er/d.txt && "
			  "head -c 300000 /dev/urandom > big.bin && "
			  "chmod 755 src/f1.txt src/f2.txt && "
			  "ln -s src/f1.txt link-a && ln -s lib link-lib && "
			  "touch -d '2020-01-02 03:04:05' src/f*.txt lib/f*.txt"),
		     0);
	old_tree = h_snapshot(env.pkg, true);
	h_mount_fg(&env);
	cr_assert_eq(h_sh(env.mnt,
			  "for i in $(seq 1 12); do printf 'changed\\n' >> src/f$i.txt; done && "
			  "for i in $(seq 1 6); do rm lib/f$i.txt; done && "
			  "for i in $(seq 1 6); do mv docs/f$i.txt docs/sub/r$i.txt; done && "
			  "for i in $(seq 1 6); do chmod 700 tests/f$i.txt; done && "
			  "rm -r old && "
			  "mkdir -p new/a/b new/c && "
			  "for i in $(seq 1 8); do printf 'new %%s\\n' $i > new/a/b/n$i.txt; "
			  "  printf 'other %%s\\n' $i > new/c/o$i.txt; done && "
			  "printf 'x' >> big.bin && "
			  "rm link-a && ln -s lib/f11.txt link-a && ln -s ../../src new/c/up && "
			  "rm lib/f10.txt && mkdir lib/f10.txt && printf 'in\\n' > lib/f10.txt/inner && "
			  "rm -r tests/sub && printf 'now a file\\n' > tests/sub && "
			  "mv src/sub src/moved && chmod 750 lib && "
			  "touch -d '2021-03-04 05:06:07' new/c/o1.txt && "
			  "ln new/a/b/n1.txt new/c/hard && ln src/f3.txt src/f3-hard && mkfifo new/c/fifo && "
			  "chmod 751 ."),
		     0);
	new_tree = h_snapshot(env.mnt, true);
	cr_assert_eq(h_unmount(&env), 0, "the daemon did not exit cleanly");
	/* The state every iteration starts from: PKG old, transaction 1 open, not mounted. */
	h_save_state(&env, "tmpl");
}

static void teardown(void)
{
	free(old_tree);
	free(new_tree);
	old_tree = new_tree = NULL;
	h_teardown(&env);
}

TestSuite(fault, .init = setup, .fini = teardown, .timeout = 1200);

static void reset(void)
{
	h_load_state(&env, "tmpl");
}

/* Commit transaction 1 with CJFS_FAULT=N:KIND (or N+:KIND: from call N on). */
static int commit_with_fault(long n, const char *kind)
{
	char fault[64];
	char *fenv[] = { fault, NULL };
	char *argv[] = { (char *)"commit", (char *)"1", NULL };

	if (kind[strlen(kind) - 1] == '+')
		snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld+:%.*s", n, (int)strlen(kind) - 1,
			 kind);
	else
		snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:%s", n, kind);
	return h_cjfsv_env(&env, fenv, argv);
}

static const char *phase_of(const struct plan *p, long n)
{
	if (n < p->start[1])
		return "open";
	for (int i = NPHASES - 1; i >= 1; i--) {
		if (n >= p->start[i])
			return n > p->total ? "none" : phase_names[i - 1];
	}
	return "?";
}

static void add_n(struct plan *p, long n)
{
	if (n < 1 || n > p->total + 1)
		return;
	for (size_t i = 0; i < p->count; i++) {
		if (p->n[i] == n)
			return;
	}
	p->n = realloc(p->n, (p->count + 1) * sizeof(*p->n));
	cr_assert_not_null(p->n);
	p->n[p->count++] = n;
}

static int cmp_long(const void *a, const void *b)
{
	long x = *(const long *)a, y = *(const long *)b;

	return (x > y) - (x < y);
}

/*
 * Count the commit's durable calls and where each phase starts (a commit with
 * a fault armed too far to be reached), then pick the N to try.
 */
static void make_plan(struct plan *p)
{
	char *fenv[] = { (char *)"CJFS_FAULT=1000000000:EIO", (char *)"CJFS_DEBUG=2", NULL };
	char *argv[] = { (char *)"commit", (char *)"1", NULL };
	long inside = h_knob("CJFS_TEST_FAULT_SAMPLES", 4, 1);
	char *now;

	memset(p, 0, sizeof(*p));
	prepare();
	reset();
	cr_assert_eq(h_cjfsv_env(&env, fenv, argv), 0, "the counting commit failed: %s", env.err);
	now = h_snapshot(env.pkg, true);
	cr_assert_str_eq(now, new_tree, "an uninterrupted commit did not give the mount's tree");
	free(now);
	p->start[0] = 1;
	for (int i = 0; i < NPHASES; i++) {
		char pat[64];
		const char *at;

		snprintf(pat, sizeof(pat), "commit 1: %s at fault point ", phase_names[i]);
		at = strstr(env.err, pat);
		cr_assert_not_null(at, "no '%s' line in the debug log", phase_names[i]);
		p->start[i + 1] = strtol(at + strlen(pat), NULL, 10);
	}
	p->total = p->start[NPHASES] - 1;
	cr_log_info("commit of transaction 1: %ld durable calls; seal at %ld, stage at %ld, sync at %ld, promote at %ld",
		    p->total, p->start[1], p->start[2], p->start[3], p->start[4]);
	for (int i = 0; i < NPHASES; i++) {
		long a = p->start[i], b = p->start[i + 1] - 1;

		if (h_env_long("CJFS_TEST_FAULT_ALL", 0)) {
			for (long n = a; n <= b; n++)
				add_n(p, n);
			continue;
		}
		/* Both ends of the phase (the syncs are the last call of stage and promote)... */
		add_n(p, a);
		add_n(p, a + 1);
		add_n(p, b - 1);
		add_n(p, b);
		/* ...and evenly inside it. */
		for (long j = 1; j <= inside; j++)
			add_n(p, a + (b - a) * j / (inside + 1));
	}
	add_n(p, p->total + 1);
	qsort(p->n, p->count, sizeof(*p->n), cmp_long);
}

Test(fault, a_crash_at_any_durable_call_recovers_to_exactly_old_or_new)
{
	struct plan p;
	size_t olds = 0, news = 0;

	make_plan(&p);
	for (size_t i = 0; i < p.count; i++) {
		long n = p.n[i];
		const char *ph = phase_of(&p, n);
		char what[128], *state;
		int rc, outcome;

		snprintf(what, sizeof(what), "crash at durable call %ld (%s)", n, ph);
		reset();
		rc = commit_with_fault(n, "crash");
		if (n <= p.total)
			cr_assert_eq(rc, 128 + 9, "%s: the commit was not killed (%d): %s", what,
				     rc, env.err);
		else
			cr_assert_eq(rc, 0, "%s: the commit failed: %s", what, env.err);
		if (n <= p.total) {
			/* What recovery says it did: nothing, reopen, or finish. */
			const char *want = n < p.start[2]   ? "0 commit(s) finished, 0 reopened"
					   : n < p.start[4] ? "0 commit(s) finished, 1 reopened"
							    : "1 commit(s) finished, 0 reopened";

			cr_assert_eq(h_cjfs(&env, "recover", NULL), 0, "%s: %s", what, env.err);
			cr_assert_eq(strncmp(env.out, want, strlen(want)), 0,
				     "%s: recover reports '%s', not '%s'", what, env.out, want);
		}
		outcome = h_recover_and_check(&env, old_tree, new_tree, what);
		state = h_txn_state(&env, 1);
		if (n < p.start[4]) {
			/* Before the commit point: the old tree, the transaction open again. */
			cr_assert_eq(outcome, 0, "%s: PKG is the new tree before the commit point",
				     what);
			cr_assert(state && !strcmp(state, "orphaned"), "%s: transaction 1 is %s",
				  what, state ? state : "not open");
			olds++;
		} else {
			cr_assert_eq(outcome, 1, "%s: PKG is the old tree after the commit point",
				     what);
			cr_assert_null(state, "%s: transaction 1 is still %s", what, state);
			news++;
		}
		free(state);
	}
	cr_log_info("%zu crash points: %zu recovered to the old tree, %zu to the new", p.count,
		    olds, news);
	free(p.n);
}

/* ENOSPC or EIO at call N: the commit fails cleanly, PKG stays exactly old. */
static void error_loop(const char *kind, const char *msg)
{
	struct plan p;
	size_t failed = 0;

	make_plan(&p);
	for (size_t i = 0; i < p.count; i++) {
		long n = p.n[i];
		const char *ph = phase_of(&p, n);
		char what[128], *state;
		int rc, outcome;

		snprintf(what, sizeof(what), "%s at durable call %ld (%s)", kind, n, ph);
		reset();
		rc = commit_with_fault(n, kind);
		if (n > p.total) {
			cr_assert_eq(rc, 0, "%s: the commit failed: %s", what, env.err);
			cr_assert_eq(h_recover_and_check(&env, old_tree, new_tree, what), 1);
			continue;
		}
		cr_assert_eq(rc, 1, "%s: the commit did not fail (%d): %s", what, rc, env.err);
		cr_assert_not_null(strcasestr(env.err, msg), "%s: the error does not say '%s': %s",
				   what, msg, env.err);
		cr_assert_eq(strchr(env.err, '\n'), env.err + strlen(env.err) - 1,
			     "%s: the error is not one line: %s", what, env.err);
		outcome = h_recover_and_check(&env, old_tree, new_tree, what);
		cr_assert_eq(outcome, 0, "%s: PKG is not the old tree", what);
		state = h_txn_state(&env, 1);
		cr_assert(state && !strcmp(state, "orphaned"), "%s: transaction 1 is %s", what,
			  state ? state : "not open");
		free(state);
		failed++;
		/* Once per phase: the transaction is intact, and commits once the fault is gone. */
		for (int k = 0; k < NPHASES; k++) {
			char *now;

			if (n != p.start[k])
				continue;
			cr_assert_eq(h_cjfs(&env, "status", "1", NULL), 0, "%s: %s", what, env.err);
			cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0,
				     "%s: committing again failed: %s", what, env.err);
			now = h_snapshot(env.pkg, true);
			cr_assert_str_eq(now, new_tree,
					 "%s: committing again did not give the new tree", what);
			free(now);
		}
	}
	cr_log_info("%s: %zu fault points, each failed cleanly with PKG unchanged", kind, failed);
	free(p.n);
}

Test(fault, enospc_at_any_durable_call_fails_cleanly_and_changes_nothing)
{
	error_loop("ENOSPC", "no space left on");
}

Test(fault, eio_at_any_durable_call_fails_cleanly_and_changes_nothing)
{
	error_loop("EIO", "input/output error");
}

/*
 * A disk that fills up and stays full: ENOSPC at call N and at every call
 * after it, so an undo of a failed promote fails as well. The commit exits 1
 * with one line that says which tree PKG holds (unchanged before the commit
 * point; after it the original, the new or a partly updated tree, as it
 * really is) and to run cjfs recover; once the disk has room again, recovery
 * gives the old tree before the commit point and the new one after it.
 */
Test(fault, a_disk_full_from_call_n_on_fails_with_one_line_saying_which_tree_pkg_holds)
{
	struct plan p;
	size_t seen[3] = { 0 };

	make_plan(&p);
	for (size_t i = 0; i < p.count && p.n[i] <= p.total; i++) {
		long n = p.n[i];
		char what[128], *now;
		const char *want;
		int rc, which;

		snprintf(what, sizeof(what), "ENOSPC from durable call %ld on (%s)", n,
			 phase_of(&p, n));
		reset();
		rc = commit_with_fault(n, "ENOSPC+");
		cr_assert_eq(rc, 1, "%s: the commit did not fail (%d): %s", what, rc, env.err);
		cr_assert_eq(strchr(env.err, '\n'), env.err + strlen(env.err) - 1,
			     "%s: the error is not one line: %s", what, env.err);
		/* Before any other command (each recovers first): what PKG holds now. */
		now = h_snapshot(env.pkg, true);
		which = !strcmp(now, old_tree) ? 0 : !strcmp(now, new_tree) ? 1 : 2;
		free(now);
		if (n < p.start[1])
			want = NULL; /* cannot open the store or lock: nothing started */
		else if (n < p.start[4])
			want = "nothing was changed in PKG";
		else
			want = which == 0   ? "still holds the original tree"
			       : which == 1 ? "holds the new tree"
					    : "is partly updated";
		if (n < p.start[4])
			cr_assert_eq(which, 0, "%s: PKG changed before the commit point", what);
		if (want)
			cr_assert_not_null(strstr(env.err, want),
					   "%s: PKG is %s but the error says: %s", what,
					   which == 0	? "old"
					   : which == 1 ? "new"
							: "mixed",
					   env.err);
		if (n >= p.start[4])
			cr_assert_not_null(strstr(env.err, "cjfs recover"), "%s: %s", what,
					   env.err);
		seen[which]++;
		cr_assert_eq(h_recover_and_check(&env, old_tree, new_tree, what), n >= p.start[4],
			     "%s: recovery gave the wrong tree", what);
	}
	cr_log_info("disk full from call N on: PKG left old %zu times, new %zu, partly updated %zu (then recovered)",
		    seen[0], seen[1], seen[2]);
	free(p.n);
}

/*
 * Recovery is itself interrupted: the commit is crashed once in the middle of
 * staging (SEALED) and once in the middle of promoting (COMMITTING), then
 * `cjfs recover` is crashed at its M-th durable call, or fails there with
 * ENOSPC, for M = 1, 1 + stride, ... until it completes without reaching M.
 * The next recovery must still give exactly the old or the new tree.
 */
Test(fault, a_crash_or_error_during_recovery_is_recovered_too)
{
	char *recover[] = { (char *)"recover", NULL };
	long stride = h_knob("CJFS_TEST_RECOVER_STRIDE", 8, 20);
	struct plan p;
	size_t tried = 0;

	make_plan(&p);
	for (int k = 0; k < 2; k++) {
		/* k = 0: crashed while staging; k = 1: crashed half way through the promote. */
		long n = k == 0 ? (p.start[2] + p.start[3]) / 2 : (p.start[4] + p.total) / 2;

		reset();
		cr_assert_eq(commit_with_fault(n, "crash"), 128 + 9);
		h_save_state(&env, "crashed");
		for (int e = 0; e < 2; e++) {
			const char *kind = e ? "ENOSPC" : "crash";

			for (long m = 1;; m += stride) {
				char fault[64], *fenv[] = { fault, NULL }, what[160];
				int rc, outcome;

				snprintf(what, sizeof(what),
					 "commit crashed at %ld (%s), recovery %s at durable call %ld",
					 n, phase_of(&p, n), kind, m);
				h_load_state(&env, "crashed");
				snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:%s", m, kind);
				rc = h_cjfsv_env(&env, fenv, recover);
				tried++;
				if (rc == 0)
					break; /* recovery completed before reaching call m */
				cr_assert_eq(rc, e ? 1 : 128 + 9, "%s: recover exited %d: %s", what,
					     rc, env.err);
				outcome = h_recover_and_check(&env, old_tree, new_tree, what);
				cr_assert_eq(outcome, k, "%s: PKG is the %s tree", what,
					     outcome ? "new" : "old");
			}
		}
	}
	cr_log_info("%zu interrupted recoveries, each recovered", tried);
	free(p.n);
}
