// SPDX-License-Identifier: MIT
/*
 * Integrity (guarantee 3): bytes promoted or restored from the store are
 * verified against their SHA-256 first. A corrupt new content (corrupted
 * between seal and stage, or an existing blob that dedup reuses) makes
 * commit refuse, naming the path and the hash, and write nothing into PKG; a
 * corrupt original is refused when a failed commit restores it. cjfs verify
 * finds and names each kind of defect.
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
#include "hash.h"

static struct h_env env;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	cr_assert_eq(h_sh(env.pkg,
			  "printf 'original a\\n' > a.txt && printf 'original b\\n' > b.txt && "
			  "printf 'original c\\n' > c.txt && touch -d '2020-01-02' a.txt b.txt"),
		     0);
}

static void teardown(void)
{
	h_teardown(&env);
}

TestSuite(integrity, .init = setup, .fini = teardown, .timeout = 120);

/* The blob of content s: its hex hash and its path relative to the store. */
static void blob_of(const char *s, char hex[HASH_HEX_LEN + 1], char rel[128])
{
	uint8_t h[HASH_LEN];

	cr_assert_eq(hash_buf(s, strlen(s), h), 0);
	hash_to_hex(h, hex);
	snprintf(rel, 128, "objects/%.2s/%s", hex, hex);
}

/* Flip one bit of a stored blob: same size, wrong content. */
static void corrupt(const char *rel)
{
	char path[PATH_MAX];
	char c;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", env.store, rel);
	fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0, "cannot open '%s': %s", path, strerror(errno));
	cr_assert_eq(pread(fd, &c, 1, 0), 1);
	c ^= 0x20;
	cr_assert_eq(pwrite(fd, &c, 1, 0), 1);
	close(fd);
}

/* cjfs verify fails and names rel (and the hash in it) with the given words. */
static void assert_verify_names(const char *kind, const char *rel, const char *refers)
{
	char line[512];

	cr_assert_eq(h_cjfs(&env, "verify", NULL), 1, "verify passed a damaged store: %s", env.out);
	snprintf(line, sizeof(line), "%s %s %s ", kind, rel, strrchr(rel, '/') + 1);
	cr_assert_not_null(strstr(env.out, line), "verify does not report \"%s\": %s", line,
			   env.out);
	if (refers)
		cr_assert_not_null(strstr(env.out, refers), "verify does not say \"%s\": %s",
				   refers, env.out);
	cr_assert_not_null(strstr(env.err, rel), "the error line does not name '%s': %s", rel,
			   env.err);
}

Test(integrity, a_new_content_corrupted_between_seal_and_stage_is_refused)
{
	char *fenv[] = { NULL, NULL };
	char *argv[] = { (char *)"commit", (char *)"1", NULL };
	char hex[HASH_HEX_LEN + 1], rel[128], fault[64], *before, *after, *state;
	struct h_proc p;
	long stage;

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt,
			  "printf 'cleaned a\\n' > a.txt && printf 'cleaned b\\n' > b.txt"),
		     0);
	cr_assert_eq(h_unmount(&env), 0);
	before = h_snapshot(env.pkg, true);
	stage = h_commit_phase(&env, 1, "stage");
	/* Stop the commit as it starts staging: sealed, new contents in the store. */
	snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:stop", stage);
	fenv[0] = fault;
	h_cjfs_start(&env, &p, fenv, argv);
	cr_assert(h_cjfs_wait_stopped(&p), "the commit did not stop at call %ld", stage);
	blob_of("cleaned a\n", hex, rel);
	corrupt(rel);
	cr_assert_eq(h_cjfs_wait(&env, &p), 1, "the commit did not refuse: %s", p.out);
	cr_assert_not_null(strstr(p.err, "the new content of 'a.txt'"),
			   "the error does not name the path: %s", p.err);
	cr_assert_not_null(strstr(p.err, hex), "the error does not name the hash: %s", p.err);
	cr_assert_not_null(strstr(p.err, "nothing was changed in PKG"), "%s", p.err);
	cr_assert_eq(strchr(p.err, '\n'), p.err + strlen(p.err) - 1, "not one line: %s", p.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "a refused commit changed PKG");
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	state = h_txn_state(&env, 1);
	cr_assert(state && !strcmp(state, "orphaned"), "transaction 1 is %s",
		  state ? state : "finished");
	assert_verify_names("corrupt", rel, "new content of 'a.txt' in transaction 1");
	free(state);
	free(before);
	free(after);
}

Test(integrity, a_corrupt_blob_reused_by_dedup_is_refused)
{
	char hex[HASH_HEX_LEN + 1], rel[128], *before, *after;

	/* Transaction 1 replaces a.txt: its original is stored. */
	h_mount(&env);
	h_write(env.mnt, "a.txt", "cleaned a\n");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	/* The stored original rots; transaction 2 puts the same bytes back. */
	blob_of("original a\n", hex, rel);
	corrupt(rel);
	h_mount(&env);
	h_write(env.mnt, "a.txt", "original a\n");
	before = h_snapshot(env.pkg, true);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 1, "the commit did not refuse: %s",
		     env.out);
	h_assert_one_line(&env, "the new content of 'a.txt' in the store");
	cr_assert_not_null(strstr(env.err, hex), "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "a refused commit changed PKG");
	assert_verify_names("corrupt", rel, "original of 'a.txt' in transaction 1");
	free(before);
	free(after);
}

Test(integrity, a_corrupt_original_is_refused_when_a_failed_commit_restores_it)
{
	char *fenv[] = { NULL, NULL };
	char *argv[] = { (char *)"commit", (char *)"3", NULL };
	char hex[HASH_HEX_LEN + 1], rel[128], fault[64], *a, *now, *new_tree;
	long promote;

	/*
	 * History first: a.txt's original is a blob already (transaction 1
	 * replaced it, transaction 2 put it back), so transaction 3 reuses that
	 * blob instead of making one from its own staged copy.
	 */
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'other a\\n' > a.txt"), 0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'original a\\n' > a.txt"), 0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt,
			  "printf 'cleaned a\\n' > a.txt && printf 'cleaned b\\n' > b.txt"),
		     0);
	new_tree = h_snapshot(env.mnt, true);
	cr_assert_eq(h_unmount(&env), 0);
	promote = h_commit_phase(&env, 3, "promote");
	/* The original of a.txt rots in the store. */
	blob_of("original a\n", hex, rel);
	corrupt(rel);
	/*
	 * Promote renames a.txt, then fails on b.txt: undoing it needs a.txt's
	 * original, which must be refused, never written.
	 */
	snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:EIO", promote + 1);
	fenv[0] = fault;
	cr_assert_eq(h_cjfsv_env(&env, fenv, argv), 1, "the commit did not fail: %s", env.out);
	h_assert_one_line(&env, "the original of 'a.txt' in the store");
	cr_assert_not_null(strstr(env.err, hex), "the error does not name the hash: %s", env.err);
	cr_assert_not_null(strstr(env.err, "cjfs recover"), "no advice: %s", env.err);
	a = h_read(env.pkg, "a.txt");
	cr_assert_str_eq(a, "cleaned a\n", "corrupt bytes were restored into PKG");
	free(a);
	/* The commit point was passed: recovery rolls forward, to exactly the new tree. */
	cr_assert_eq(h_cjfs(&env, "recover", NULL), 0, "%s", env.err);
	now = h_snapshot(env.pkg, true);
	cr_assert_str_eq(now, new_tree, "recovery did not finish the commit");
	free(now);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	assert_verify_names("corrupt", rel, "original of 'a.txt' in transaction 3");
	free(new_tree);
}

Test(integrity, verify_names_each_kind_of_defect_and_passes_a_sound_store)
{
	char hex[HASH_HEX_LEN + 1], rel[128], path[PATH_MAX], hex2[HASH_HEX_LEN + 1], rel2[128];

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned a\\n' > a.txt && rm b.txt"), 0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
	cr_assert_not_null(strstr(env.out, ": 0 defect(s)"), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "verify", "--json", NULL), 0, "%s", env.err);
	cr_assert_eq(strncmp(env.out, "{\"ok\":true,", 11), 0, "%s", env.out);

	/* An intact blob nothing lists (a write killed before indexing it): not a defect. */
	blob_of("orphan\n", hex2, rel2);
	snprintf(path, sizeof(path), "%s/objects/%.2s", env.store, hex2);
	(void)mkdir(path, 0700);
	h_write(env.store, rel2, "orphan\n");
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
	cr_assert_not_null(strstr(env.out, "orphan objects/"), "%s", env.out);

	/* Missing: the original of b.txt, deleted by the commit, is gone from the store. */
	blob_of("original b\n", hex, rel);
	snprintf(path, sizeof(path), "%s/%s", env.store, rel);
	cr_assert_eq(unlink(path), 0);
	assert_verify_names("missing", rel, "original of 'b.txt' in transaction 1");
	/* Stray: something that is not a blob. */
	h_write(env.store, "objects/not-a-blob", "?");
	cr_assert_eq(h_cjfs(&env, "verify", "--json", NULL), 1);
	cr_assert_eq(strncmp(env.out, "{\"ok\":false,", 12), 0, "%s", env.out);
	cr_assert_not_null(strstr(env.out,
				  "\"kind\":\"stray\",\"defect\":true,\"path\":\"objects/not-a-blob\""),
			   "%s", env.out);
	cr_assert_not_null(strstr(env.out, hex), "%s", env.out);
	/* Each failed run is in the audit log. */
	cr_assert_eq(h_sql_long(&env, "SELECT count(*) FROM audit WHERE event = 'VERIFY_FAILED'"),
		     2, "not one VERIFY_FAILED audit event per failed verify");
}

/*
 * A rolled-back transaction replaced nothing: verify does not ask for its
 * originals (staged, and gone with it) or new contents, whether it was
 * rolled back from the mount or after a seal.
 */
Test(integrity, verify_passes_a_store_whose_transactions_were_rolled_back)
{
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned a\\n' > a.txt && rm b.txt && echo n > new.txt"),
		     0);
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c",
			    "printf 'half\\n' > c.txt; rm a.txt; exit 4", NULL),
		     4, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
	cr_assert_not_null(strstr(env.out, ": 0 defect(s)"), "%s", env.out);
	/* A committed transaction's originals are still required. */
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c", "printf 'x\\n' > c.txt", NULL),
		     0, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
	cr_assert_not_null(strstr(env.out, ": 0 defect(s)"), "%s", env.out);
}

Test(integrity, verify_repair_removes_unreferenced_orphans_and_indexes_dangling_blobs)
{
	char hex[HASH_HEX_LEN + 1], rel[128], hex2[HASH_HEX_LEN + 1], rel2[128], sql[256];
	char path[PATH_MAX];

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'cleaned a\\n' > a.txt"), 0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	/* An intact blob nothing refers to, and one the index refers to without its row. */
	blob_of("orphan\n", hex2, rel2);
	h_write(env.store, rel2, "orphan\n");
	blob_of("cleaned a\n", hex, rel);
	snprintf(sql, sizeof(sql), "DELETE FROM blob WHERE hex(hash) = upper('%s')", hex);
	h_sql_exec(&env, sql);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "warnings are not defects: %s", env.out);
	cr_assert_not_null(strstr(env.out, "dangling objects/"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "orphan objects/"), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "verify", "--repair", NULL), 0, "%s%s", env.out, env.err);
	cr_assert_not_null(strstr(env.err, "1 orphan blob(s) removed, 1 indexed"), "%s", env.err);
	cr_assert_not_null(strstr(env.out, ": 0 defect(s), 0 orphan(s)"), "%s", env.out);
	/* What the index refers to is still there and intact; what nothing did is gone. */
	snprintf(path, sizeof(path), "%s/%s", env.store, rel2);
	cr_assert_eq(access(path, F_OK), -1, "an unreferenced orphan is still there");
	cr_assert_eq(h_cjfs(&env, "show", "--diff", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "+cleaned a"), "%s", env.out);
}
