// SPDX-License-Identifier: MIT
/*
 * History you can trust, through the real CLI: undo restores exactly the
 * pre-commit tree or, on a conflict, applies nothing; restore writes
 * verified originals (and nothing at all from a corrupt store); log, show,
 * audit and stats report what happened; gc keeps what the policy keeps;
 * an undo killed at any durable step leaves PKG old or new, never a mix.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"
#include "hash.h"
#include "util.h"

static struct h_env env;

static void make_pkg(void)
{
	cr_assert_eq(h_sh(env.pkg,
			  "mkdir -p src/pkg docs empty && "
			  "printf 'def f( x ):\\n    return x  \\n' > src/pkg/mod.py && "
			  "printf 'print(1)\\r\\n' > src/main.py && "
			  "printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod 755 run.sh && "
			  "printf 'notes\\n' > docs/notes.txt && "
			  "printf 'gone\\n' > docs/old.txt && "
			  "mkdir -p docs/sub && printf 's\\n' > docs/sub/s.txt && "
			  "ln -s src/main.py main-link && "
			  "i=0; while [ $i -lt 4000 ]; do echo \"line $i of a big text file\"; "
			  "i=$((i+1)); done > big.txt && "
			  "touch -d '2020-01-02 03:04:05' src/main.py docs/notes.txt big.txt"),
		     0);
}

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	make_pkg();
}

/* The same on a tmpfs: the crash loop syncs at every step of ~40 undos. */
static void setup_tmpfs(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup_tmpfs(&env, "256m");
	make_pkg();
}

static void teardown(void)
{
	unsetenv("CJFS_FAULT");
	h_teardown(&env);
}

TestSuite(history, .init = setup, .fini = teardown, .timeout = 300);
/* Long ones get suites of their own: Criterion 2.4.1 leaks a per-test .timeout. */
TestSuite(history_crash, .init = setup_tmpfs, .fini = teardown, .timeout = 900);
TestSuite(history_measure, .init = setup, .fini = teardown, .timeout = 900);

/* Every kind of change, for a shell in a mount of PKG. */
static const char change_everything[] = "printf 'changed\\n' >> src/pkg/mod.py && "
					"printf 'new\\n' > new.txt && "
					"rm docs/old.txt && "
					"mkdir -p made/deeper && printf 'x\\n' > made/deeper/x && "
					"rm -r docs/sub && rmdir empty && "
					"mv docs/notes.txt docs/renamed.txt && "
					"mv src/main.py src/main2.py && "
					"chmod 700 run.sh && "
					"sed -i 's/^line 7 of a big/line 7 of a large/' big.txt && "
					"rm main-link && ln -s src/main2.py main-link";

/* Every kind of change, made through a mount, then committed as transaction 1. */
static void commit_everything(void)
{
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "%s", change_everything), 0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
}

static void assert_one_line_error(const char *what)
{
	cr_assert_neq(env.err[0], '\0', "no error message");
	cr_assert_not_null(strstr(env.err, what), "error does not name '%s': %s", what, env.err);
}

static void sha256_hex(const char *dir, const char *rel, char hex[HASH_HEX_LEN + 1])
{
	char *s = h_read(dir, rel);
	uint8_t h[HASH_LEN];

	cr_assert_not_null(s, "cannot read '%s/%s'", dir, rel);
	cr_assert_eq(hash_buf(s, strlen(s), h), 0);
	hash_to_hex(h, hex);
	free(s);
}

/* Flip a byte in the middle of a blob, in whichever form it is stored. */
static void corrupt_blob(const char hex[HASH_HEX_LEN + 1])
{
	char path[PATH_MAX];
	struct stat st;
	char c;
	int fd;

	snprintf(path, sizeof(path), "%s/objects/%.2s/%s", env.store, hex, hex);
	if (stat(path, &st) < 0)
		snprintf(path, sizeof(path), "%s/objects/%.2s/%s.zst", env.store, hex, hex);
	cr_assert_eq(stat(path, &st), 0, "no blob %s in the store", hex);
	fd = open(path, O_RDWR | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_eq(pread(fd, &c, 1, st.st_size / 2), 1);
	c ^= 0x20;
	cr_assert_eq(pwrite(fd, &c, 1, st.st_size / 2), 1);
	close(fd);
}

Test(history, undo_after_commit_restores_exactly_the_pre_commit_tree)
{
	char *before = h_snapshot(env.pkg, true), *after;

	commit_everything();
	after = h_snapshot(env.pkg, true);
	cr_assert_str_neq(after, before);
	free(after);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "undid transaction 1 as transaction 2"), "%s", env.out);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "undo did not restore the pre-commit tree");
	cr_assert_eq(h_count_names(env.pkg, ".cjfs"), 0, "temporaries left in PKG");
	cr_assert_eq(h_cjfs(&env, "log", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "undone"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "cjfs undo 1"), "%s", env.out);
	/* Undoing the undo redoes the transaction. */
	cr_assert_eq(h_cjfs(&env, "undo", "2", NULL), 0, "%s", env.err);
	free(after);
	after = h_snapshot(env.pkg, false);
	cr_assert_not_null(strstr(after, "made/deeper/x"), "%s", after);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 1);
	assert_one_line_error("already undone by transaction 2");
	free(before);
	free(after);
}

Test(history, undo_with_a_later_edit_reports_the_conflict_and_applies_nothing)
{
	char *before, *after;

	commit_everything();
	h_write(env.pkg, "src/pkg/mod.py", "edited by hand after the commit\n");
	before = h_snapshot(env.pkg, true);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 1);
	cr_assert_not_null(strstr(env.err,
				  "conflict: 'src/pkg/mod.py' was changed in PKG since transaction 1 was committed"),
			   "%s", env.err);
	cr_assert_not_null(strstr(env.err, "nothing was applied"), "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "a refused undo changed PKG");
	cr_assert_eq(h_count_names(env.pkg, ".cjfs"), 0);
	free(after);
	/* The refused undo is in the history, rolled back; transaction 1 is still committed. */
	cr_assert_eq(h_cjfs(&env, "log", "--json", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "{\"id\":2,\"state\":\"rolled back\""), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "{\"id\":1,\"state\":\"committed\""), "%s", env.out);
	/* --force overwrites, and keeps what it overwrote. */
	cr_assert_eq(h_cjfs(&env, "undo", "--force", "1", NULL), 0, "%s", env.err);
	after = h_read(env.pkg, "src/pkg/mod.py");
	cr_assert_str_eq(after, "def f( x ):\n    return x  \n");
	free(after);
	cr_assert_eq(h_cjfs(&env, "show", "3", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "kept src/pkg/mod.py"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "overwritten by undo --force"), "%s", env.out);
	free(before);
}

Test(history, undo_refuses_what_is_not_committed)
{
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c", "echo x > a; exit 3", NULL), 3);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 1);
	assert_one_line_error("rolled back");
	cr_assert_eq(h_cjfs(&env, "undo", "7", NULL), 1);
	assert_one_line_error("no transaction 7");
	cr_assert_eq(h_cjfs(&env, "undo", "x", NULL), 2);
}

/* Every file restored into out is the original: bytes, mode and mtime. */
static void assert_same_as_original(const char *out, const char *orig, int want_files)
{
	int files = 0;
	char cmd[2 * PATH_MAX + 512];

	snprintf(cmd, sizeof(cmd),
		 "cd '%s' && n=0 && for f in $(find . -type f -o -type l); do "
		 "if [ -L \"$f\" ]; then [ \"$(readlink \"$f\")\" = \"$(readlink '%s'/\"$f\")\" ] || exit 1; "
		 "else cmp -s \"$f\" '%s'/\"$f\" || exit 2; "
		 "[ \"$(stat -c '%%a %%Y' \"$f\")\" = \"$(stat -c '%%a %%Y' '%s'/\"$f\")\" ] || exit 3; fi; "
		 "n=$((n+1)); done; exit $((n == %d ? 0 : 4))",
		 out, orig, orig, orig, want_files);
	files = h_sh("/", "%s", cmd);
	cr_assert_eq(files, 0, "the restored tree differs from the originals (%d)", files);
}

Test(history, restore_to_a_directory_writes_the_originals_byte_identical)
{
	char orig[PATH_MAX], out[PATH_MAX];

	snprintf(orig, sizeof(orig), "%s/orig", env.root);
	snprintf(out, sizeof(out), "%s/out", env.root);
	cr_assert_eq(h_sh(env.root, "cp -a pkg orig"), 0);
	commit_everything();
	cr_assert_eq(h_cjfs(&env, "restore", "1", "--to", out, NULL), 0, "%s", env.err);
	/* mod.py, main.py, run.sh, notes.txt, old.txt, sub/s.txt, big.txt, main-link */
	assert_same_as_original(out, orig, 8);
	cr_assert_eq(h_sh(out, "test -d empty && test -d docs/sub && ! test -e new.txt"), 0);
	cr_assert_eq(h_count_names(out, ".cjfs"), 0, "staging left in DIR");
	/* Named paths only, and a directory means everything below it. */
	cr_assert_eq(h_sh(env.root, "rm -rf out"), 0);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "docs", "big.txt", "--to", out, NULL), 0, "%s",
		     env.err);
	assert_same_as_original(out, orig, 4);
}

Test(history, a_corrupted_blob_makes_restore_fail_loudly_and_write_nothing)
{
	char out[PATH_MAX], hex[HASH_HEX_LEN + 1], hex_big[HASH_HEX_LEN + 1];
	char *before;

	snprintf(out, sizeof(out), "%s/out", env.root);
	sha256_hex(env.pkg, "src/pkg/mod.py", hex);
	sha256_hex(env.pkg, "big.txt", hex_big);
	commit_everything();
	before = h_snapshot(env.pkg, true);
	/* A raw blob (a small file) and a zstd one (big.txt compresses). */
	corrupt_blob(hex);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "--to", out, NULL), 1);
	assert_one_line_error("src/pkg/mod.py");
	assert_one_line_error(hex);
	assert_one_line_error("corrupt");
	cr_assert_neq(access(out, F_OK), 0, "restore created '%s'", out);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "src/pkg", NULL), 1);
	assert_one_line_error(hex);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 1);
	assert_one_line_error(hex);
	corrupt_blob(hex_big);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "big.txt", "--to", out, NULL), 1);
	assert_one_line_error("big.txt");
	assert_one_line_error(hex_big);
	cr_assert_neq(access(out, F_OK), 0);
	{
		char *after = h_snapshot(env.pkg, true);

		cr_assert_str_eq(after, before, "a failed restore or undo changed PKG");
		free(after);
	}
	cr_assert_eq(h_cjfs(&env, "log", NULL), 0);
	cr_assert_null(strstr(env.out, "cjfs restore"), "a transaction was started: %s", env.out);
	free(before);
}

Test(history, restore_into_pkg_is_a_transaction_and_can_be_undone)
{
	char *s;

	commit_everything();
	h_write(env.pkg, "src/pkg/mod.py", "mine\n");
	cr_assert_eq(h_cjfs(&env, "restore", "1", "src/pkg/mod.py", "docs/old.txt", NULL), 0, "%s",
		     env.err);
	cr_assert_not_null(strstr(env.out, "as transaction 2"), "%s", env.out);
	s = h_read(env.pkg, "src/pkg/mod.py");
	cr_assert_str_eq(s, "def f( x ):\n    return x  \n");
	free(s);
	s = h_read(env.pkg, "docs/old.txt");
	cr_assert_str_eq(s, "gone\n");
	free(s);
	/* What the restore overwrote is kept: undoing it brings the edit back. */
	cr_assert_eq(h_cjfs(&env, "undo", "2", NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "src/pkg/mod.py");
	cr_assert_str_eq(s, "mine\n");
	free(s);
	s = util_xasprintf("%s/docs/old.txt", env.pkg);
	cr_assert_neq(access(s, F_OK), 0, "undo of the restore left docs/old.txt");
	free(s);
	/* Nothing differs: nothing to do. */
	cr_assert_eq(h_cjfs(&env, "restore", "1", "run.sh", NULL), 0, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "run.sh", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "nothing to restore"), "%s", env.out);
}

static char *xattr_of(const char *dir, const char *rel, const char *name)
{
	char path[PATH_MAX], val[64];
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	n = getxattr(path, name, val, sizeof(val) - 1);
	if (n < 0)
		return NULL;
	val[n] = '\0';
	return strdup(val);
}

/* What a commit did to xattrs, restore undoes, into PKG and into a directory. */
Test(history, restore_brings_back_the_xattrs_a_commit_changed)
{
	char path[PATH_MAX], out[PATH_MAX], *v;

	snprintf(path, sizeof(path), "%s/docs/notes.txt", env.pkg);
	if (setxattr(path, "user.k", "orig", 4, 0) < 0) {
		h_teardown(&env); /* no .fini after a skip in the body */
		cr_skip_test("the file system of '%s' has no user xattrs", env.pkg);
	}
	snprintf(path, sizeof(path), "%s/docs/sub", env.pkg);
	cr_assert_eq(setxattr(path, "user.dir", "orig", 4, 0), 0);
	h_mount(&env);
	snprintf(path, sizeof(path), "%s/docs/notes.txt", env.mnt);
	cr_assert_eq(setxattr(path, "user.k", "new", 3, 0), 0);
	cr_assert_eq(h_sh(env.mnt, "printf 'x\\n' >> src/pkg/mod.py"), 0);
	snprintf(path, sizeof(path), "%s/docs/sub", env.mnt);
	cr_assert_eq(setxattr(path, "user.dir", "new", 3, 0), 0);
	snprintf(path, sizeof(path), "%s/src/pkg/mod.py", env.mnt);
	cr_assert_eq(setxattr(path, "user.m", "m", 1, 0), 0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	v = xattr_of(env.pkg, "docs/notes.txt", "user.k");
	cr_assert_str_eq(v, "new");
	free(v);

	snprintf(out, sizeof(out), "%s/out", env.root);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "--to", out, NULL), 0, "%s", env.err);
	v = xattr_of(out, "docs/notes.txt", "user.k");
	cr_assert_not_null(v, "restore --to lost the original's xattr");
	cr_assert_str_eq(v, "orig");
	free(v);
	cr_assert_null(xattr_of(out, "src/pkg/mod.py", "user.m"));
	v = xattr_of(out, "docs/sub", "user.dir");
	cr_assert_not_null(v, "restore --to lost a directory's original xattr");
	cr_assert_str_eq(v, "orig");
	free(v);

	cr_assert_eq(h_cjfs(&env, "restore", "1", "docs/notes.txt", "src/pkg/mod.py", NULL), 0,
		     "%s", env.err);
	v = xattr_of(env.pkg, "docs/notes.txt", "user.k");
	cr_assert_not_null(v);
	cr_assert_str_eq(v, "orig");
	free(v);
	cr_assert_null(xattr_of(env.pkg, "src/pkg/mod.py", "user.m"));
	/* And undoing the restore gives the committed ones back. */
	cr_assert_eq(h_cjfs(&env, "undo", "2", NULL), 0, "%s", env.err);
	v = xattr_of(env.pkg, "docs/notes.txt", "user.k");
	cr_assert_not_null(v);
	cr_assert_str_eq(v, "new");
	free(v);
	v = xattr_of(env.pkg, "src/pkg/mod.py", "user.m");
	cr_assert_not_null(v);
	cr_assert_str_eq(v, "m");
	free(v);
}

/*
 * Names that were one file in PKG (a hard link the transaction parted by
 * rewriting both) are one file again where restore --to writes them.
 */
Test(history, restore_to_a_directory_keeps_pkgs_hard_links)
{
	char out[PATH_MAX], a[PATH_MAX], b[PATH_MAX], *got;
	struct stat sa, sb;

	cr_assert_eq(h_sh(env.pkg, "ln docs/notes.txt docs/sub/notes-link && ln big.txt big2.txt"),
		     0);
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "sed -i 's/notes/NOTES/' docs/notes.txt docs/sub/notes-link && "
				   "sed -i 's/line 1 /LINE 1 /' big.txt big2.txt"),
		     0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	snprintf(out, sizeof(out), "%s/out", env.root);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "--to", out, NULL), 0, "%s", env.err);
	for (int k = 0; k < 2; k++) {
		snprintf(a, sizeof(a), "%s/%s", out, k ? "big.txt" : "docs/notes.txt");
		snprintf(b, sizeof(b), "%s/%s", out, k ? "big2.txt" : "docs/sub/notes-link");
		cr_assert_eq(stat(a, &sa), 0, "%s: %s", a, strerror(errno));
		cr_assert_eq(stat(b, &sb), 0, "%s: %s", b, strerror(errno));
		cr_assert(sa.st_ino == sb.st_ino && sa.st_nlink == 2,
			  "'%s' and '%s' are not one file (%lu/%lu, %lu links)", a, b,
			  (unsigned long)sa.st_ino, (unsigned long)sb.st_ino,
			  (unsigned long)sa.st_nlink);
	}
	got = h_read(out, "docs/sub/notes-link");
	cr_assert_str_eq(got, "notes\n");
	free(got);
}

Test(history, restore_refuses_paths_that_leave_the_target)
{
	char out[PATH_MAX], outside[PATH_MAX];

	commit_everything();
	cr_assert_eq(h_cjfs(&env, "restore", "1", "../etc/passwd", NULL), 2);
	assert_one_line_error("invalid path '../etc/passwd'");
	cr_assert_eq(h_cjfs(&env, "restore", "1", "/etc/passwd", NULL), 2);
	assert_one_line_error("invalid path");
	cr_assert_eq(h_cjfs(&env, "restore", "1", "src/../../x", NULL), 2);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "no/such/path", NULL), 1);
	assert_one_line_error("'no/such/path' is not a path transaction 1 touched");
	cr_assert_eq(h_cjfs(&env, "restore", "1", "new.txt", NULL), 1);
	assert_one_line_error("did not exist before transaction 1");
	/* DIR/docs is a symlink to elsewhere: nothing is written through it. */
	snprintf(out, sizeof(out), "%s/out", env.root);
	snprintf(outside, sizeof(outside), "%s/outside", env.root);
	cr_assert_eq(h_sh(env.root, "mkdir out outside && ln -s ../outside out/docs"), 0);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "--to", out, NULL), 1);
	assert_one_line_error("symlink");
	cr_assert_eq(h_count_names(outside, ""), 0, "restore wrote through a symlink");
	cr_assert_eq(h_count_names(out, ""), 1, "restore wrote part of the tree");
	/*
	 * The same inside PKG: docs replaced by a symlink since. Either the
	 * restore refuses, or (when the transaction recorded docs itself) it
	 * puts the original directory back in place of the symlink.
	 */
	cr_assert_eq(h_sh(env.pkg, "rm -rf docs && ln -s ../outside docs"), 0);
	if (h_cjfs(&env, "restore", "1", "docs/old.txt", NULL) == 0)
		cr_assert_eq(h_sh(env.pkg,
				  "test -d docs && ! test -L docs && test -f docs/old.txt"),
			     0);
	else
		assert_one_line_error("symlink");
	cr_assert_eq(h_count_names(outside, ""), 0, "restore wrote through a symlink in PKG");
}

Test(history, log_and_show_report_each_transaction)
{
	char hex_orig[HASH_HEX_LEN + 1], hex_new[HASH_HEX_LEN + 1];

	sha256_hex(env.pkg, "src/pkg/mod.py", hex_orig);
	commit_everything();
	sha256_hex(env.pkg, "src/pkg/mod.py", hex_new);
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c", "echo y > y.txt", NULL), 0,
		     "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "log", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "committed   0/1/0"), "%s", env.out);
	cr_assert(strstr(env.out, "sh -c echo y > y.txt") < strstr(env.out, "\n1 "),
		  "not newest first: %s", env.out);
	cr_assert_eq(h_cjfs(&env, "log", "-n", "1", NULL), 0);
	cr_assert_eq(strchr(env.out, '\n'), env.out + strlen(env.out) - 1, "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "log", "--pkg", env.root, NULL), 0);
	cr_assert_str_eq(env.out, "");
	cr_assert_eq(h_cjfs(&env, "log", "--pkg", env.pkg, "--json", NULL), 0);
	cr_assert_not_null(strstr(env.out, "\"id\":1,\"state\":\"committed\""), "%s", env.out);
	/* show: every path with its status, original and new hash and mode. */
	cr_assert_eq(h_cjfs(&env, "show", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "M src/pkg/mod.py\n"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, hex_orig), "original hash missing: %s", env.out);
	cr_assert_not_null(strstr(env.out, hex_new), "new hash missing: %s", env.out);
	cr_assert_not_null(strstr(env.out, "D docs/old.txt\n"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "A made/deeper/\n"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "M run.sh\n    original  100755"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "TXN_COMMIT"), "%s", env.out);
	/* --diff from the store alone, long after the mount is gone. */
	cr_assert_eq(h_cjfs(&env, "show", "1", "--diff", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "+changed\n"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "-gone\n"), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "show", "--json", "--diff", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out,
				  "\"path\":\"src/pkg/mod.py\",\"original\":{\"mode\":\"100644\""),
			   "%s", env.out);
	cr_assert_not_null(strstr(env.out, "+changed\\n"), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "show", "9", NULL), 1);
	assert_one_line_error("no transaction 9");
}

Test(history, log_shows_an_open_transaction_whose_daemon_died_as_orphaned)
{
	h_mount_fg(&env);
	h_write(env.mnt, "fg.txt", "fg\n");
	cr_assert_eq(h_unmount(&env), 0);
	cr_assert_eq(h_cjfs(&env, "log", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, " orphaned "), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "show", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "A fg.txt"), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "rollback", "1", NULL), 0, "%s", env.err);
}

/* The audit log, one "txn EVENT" per line, from `cjfs audit`. */
static char *audit_summary(pid_t *pids, size_t cap, size_t *ret_n)
{
	struct strbuf sb = STRBUF_INIT;
	char *line = env.out;
	size_t n = 0;

	cr_assert_eq(h_cjfs(&env, "audit", NULL), 0, "%s", env.err);
	while (line && *line) {
		char *nl = strchr(line, '\n'), event[64], txn[32];
		long long uid, pid;

		cr_assert_eq(sscanf(line, "%*s %*s uid=%lld pid=%lld txn=%31s %63s", &uid, &pid,
				    txn, event),
			     4, "malformed audit line: %s", line);
		cr_assert_eq(uid, (long long)getuid());
		cr_assert_gt(pid, 0);
		if (n < cap)
			pids[n] = (pid_t)pid;
		n++;
		strbuf_addf(&sb, "%s %s\n", txn, event);
		line = nl ? nl + 1 : NULL;
	}
	*ret_n = n;
	return strbuf_detach(&sb);
}

Test(history, the_audit_log_has_one_event_per_action_in_order)
{
	char out[PATH_MAX], *got;
	pid_t pids[64];
	size_t n;

	snprintf(out, sizeof(out), "%s/out", env.root);
	/* 1: committed */
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c", "echo 1 >> src/pkg/mod.py",
			    NULL),
		     0, "%s", env.err);
	/* 2: rolled back */
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c", "echo 2 > two; exit 1", NULL),
		     1);
	/* 3: a conflict, then rolled back */
	h_mount(&env);
	h_write(env.mnt, "docs/notes.txt", "through the mount\n");
	h_write(env.pkg, "docs/notes.txt", "behind its back\n");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 1);
	cr_assert_eq(h_cjfs(&env, "rollback", "3", NULL), 0, "%s", env.err);
	/* 4: the undo of 1 */
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 0, "%s", env.err);
	/* restoring 1's originals elsewhere */
	cr_assert_eq(h_cjfs(&env, "restore", "1", "--to", out, NULL), 0, "%s", env.err);
	/* dropping 1 to 3 */
	cr_assert_eq(h_cjfs(&env, "gc", "--keep-last", "1", "--grace", "0", NULL), 0, "%s",
		     env.err);
	got = audit_summary(pids, 64, &n);
	cr_assert(strncmp(got,
			  "1 TXN_BEGIN\n1 BACKUP_CREATED\n1 TXN_COMMIT\n"
			  "2 TXN_BEGIN\n2 TXN_ROLLBACK\n"
			  "3 TXN_BEGIN\n3 TXN_CONFLICT\n3 TXN_ROLLBACK\n"
			  "4 TXN_BEGIN\n4 BACKUP_CREATED\n4 TXN_COMMIT\n1 BACKUP_RESTORED\n"
			  "1 BACKUP_RESTORED\n"
			  "1 BACKUP_DELETED\n2 BACKUP_DELETED\n3 BACKUP_DELETED\n",
			  strlen("1 TXN_BEGIN\n1 BACKUP_CREATED\n1 TXN_COMMIT\n"
				 "2 TXN_BEGIN\n2 TXN_ROLLBACK\n"
				 "3 TXN_BEGIN\n3 TXN_CONFLICT\n3 TXN_ROLLBACK\n"
				 "4 TXN_BEGIN\n4 BACKUP_CREATED\n4 TXN_COMMIT\n1 BACKUP_RESTORED\n"
				 "1 BACKUP_RESTORED\n"
				 "1 BACKUP_DELETED\n2 BACKUP_DELETED\n3 BACKUP_DELETED\n")) == 0,
		  "unexpected audit log:\n%s", got);
	/* After those, at most gc's one event for blobs no transaction referred to. */
	cr_assert(n == 16 || (n == 17 && strstr(got, "\n- BACKUP_DELETED\n")), "%s", got);
	/* Events of one command carry its pid; the undo's BACKUP_RESTORED is the undo's. */
	cr_assert_eq(pids[0], pids[2]);
	cr_assert_neq(pids[2], pids[3]);
	cr_assert_eq(pids[10], pids[11], "BACKUP_RESTORED not written by the undo");
	cr_assert_neq(pids[11], pids[12]);
	free(got);
	/* --since and --json */
	cr_assert_eq(h_cjfs(&env, "audit", "--since", "1h", "--json", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "\"txn\":4,\"event\":\"TXN_COMMIT\""), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "audit", "--since", "2999-01-01", NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "");
	cr_assert_eq(h_cjfs(&env, "audit", "--since", "yesterday-ish", NULL), 2);
}

Test(history, gc_through_the_cli_keeps_what_the_policy_keeps)
{
	char conf[PATH_MAX];
	FILE *f;

	for (int i = 0; i < 4; i++)
		cr_assert_eq(h_sh(env.root,
				  "'%s' --store '%s' run '%s' -- sh -c 'echo %d >> f' 2>/dev/null",
				  h_cjfs_bin(), env.store, env.pkg, i),
			     0);
	cr_assert_eq(h_cjfs(&env, "gc", "--keep-last", "1", "--grace", "0", "--dry-run", NULL), 0,
		     "%s", env.err);
	cr_assert_not_null(strstr(env.out, "would drop the history of 3 transaction(s)"), "%s",
			   env.out);
	cr_assert_not_null(strstr(env.out, "keep-last: 1-3"), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "show", "1", NULL), 0, "a dry run dropped history");
	/* The default comes from the store's config file. */
	snprintf(conf, sizeof(conf), "%s/config", env.store);
	f = fopen(conf, "we");
	cr_assert_not_null(f);
	fputs("gc.keep-last = 2\ngc.grace = 0s\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(h_cjfs(&env, "gc", "--json", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out,
				  "\"dropped\":[{\"id\":1,\"why\":\"keep-last\"},{\"id\":2,"),
			   "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "show", "2", NULL), 1);
	cr_assert_eq(h_cjfs(&env, "show", "3", NULL), 0);
	cr_assert_eq(h_cjfs(&env, "undo", "4", NULL), 0, "%s", env.err);
	f = fopen(conf, "we");
	cr_assert_not_null(f);
	fputs("gc.keep-last = lots\n", f);
	cr_assert_eq(fclose(f), 0);
	cr_assert_eq(h_cjfs(&env, "gc", NULL), 2);
	assert_one_line_error("config:1:");
}

/*
 * A commit killed after its commit point (during the promote) is rolled
 * forward by `cjfs recover`, and the audit log says so: TXN_RECOVERED for
 * that transaction, in place of the TXN_COMMIT the dead commit never wrote.
 */
Test(history, a_commit_finished_by_recovery_is_audited_as_txn_recovered)
{
	char fault[64], *fenv[] = { fault, NULL };
	char *argv[] = { (char *)"commit", (char *)"1", NULL };
	char *new_tree, *now, *got;
	long promote, done;
	pid_t pids[16];
	size_t n;

	h_mount_fg(&env);
	cr_assert_eq(h_sh(env.mnt, "%s", change_everything), 0);
	new_tree = h_snapshot(env.mnt, true);
	cr_assert_eq(h_unmount(&env), 0, "the daemon did not exit cleanly");
	promote = h_commit_phase(&env, 1, "promote");
	done = h_commit_phase(&env, 1, "done");
	cr_assert_lt(promote + 1, done, "the promote has too few durable calls (%ld..%ld)", promote,
		     done);
	/* Dead after the first durable step of the promote: past the commit point. */
	snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:crash", promote + 1);
	cr_assert_eq(h_cjfsv_env(&env, fenv, argv), 128 + 9, "the commit was not killed: %s",
		     env.err);
	/* Read the index directly: any cjfs command would recover first. */
	cr_assert_eq(h_sql_long(&env, "SELECT state FROM txn WHERE id = 1"), 3,
		     "transaction 1 is not left committing");
	cr_assert_eq(h_sql_long(&env, "SELECT COUNT(*) FROM audit WHERE event = 'TXN_RECOVERED'"),
		     0);
	now = h_snapshot(env.pkg, true);
	cr_assert_str_neq(now, new_tree, "the killed commit finished anyway");
	free(now);

	cr_assert_eq(h_cjfs(&env, "recover", NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out,
			 "1 commit(s) finished, 0 reopened, 0 leftover(s) removed, 0 failed\n");
	now = h_snapshot(env.pkg, true);
	cr_assert_str_eq(now, new_tree, "recovery did not give exactly the new tree");
	free(now);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");

	got = audit_summary(pids, 16, &n);
	cr_assert_str_eq(got, "1 TXN_BEGIN\n1 BACKUP_CREATED\n1 TXN_RECOVERED\n",
			 "unexpected audit log:\n%s", got);
	free(got);
	cr_assert_eq(h_cjfs(&env, "audit", "--txn", "1", "--json", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "\"txn\":1,\"event\":\"TXN_RECOVERED\","
					   "\"detail\":\"commit rolled forward\""),
			   "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "log", "--json", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "{\"id\":1,\"state\":\"committed\""), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "show", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "TXN_RECOVERED"), "%s", env.out);
	/* Recovered history is history like any other: it can be undone. */
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 0, "%s", env.err);
	free(new_tree);
}

/* `cjfs recover` while PKG is not where transaction 1 began: exit 1, one line saying what to do. */
static void assert_recover_waits_for_pkg(const char *why)
{
	cr_assert_eq(h_cjfs(&env, "recover", NULL), 1, "%s: %s%s", why, env.out, env.err);
	h_assert_one_line(&env, "transaction 1");
	cr_assert_not_null(strstr(env.err, env.pkg), "%s: PKG not named: %s", why, env.err);
	cr_assert_not_null(strstr(env.err, "run 'cjfs recover' again"), "%s: %s", why, env.err);
	cr_assert_str_eq(env.out,
			 "0 commit(s) finished, 0 reopened, 0 leftover(s) removed, 1 failed\n");
	cr_assert_eq(h_sql_long(&env, "SELECT state FROM txn WHERE id = 1"), 3,
		     "%s: transaction 1 is no longer committing", why);
	/* Other commands still run, and warn. */
	cr_assert_eq(h_cjfs(&env, "log", NULL), 0, "%s: %s", why, env.err);
	cr_assert_not_null(strstr(env.err, "cjfs recover"), "%s: no warning: %s", why, env.err);
}

/*
 * A commit killed after its commit point cannot be finished while PKG is not
 * where it was (moved away, or another directory in its place): `cjfs
 * recover` says so and exits 1 until PKG is back, then finishes the commit.
 */
Test(history, recovery_of_a_commit_waits_for_a_moved_pkg)
{
	char fault[64], *fenv[] = { fault, NULL };
	char *argv[] = { (char *)"commit", (char *)"1", NULL };
	char moved[PATH_MAX], *new_tree, *now;
	long promote;

	snprintf(moved, sizeof(moved), "%s/moved-pkg", env.root);
	h_mount_fg(&env);
	cr_assert_eq(h_sh(env.mnt, "%s", change_everything), 0);
	new_tree = h_snapshot(env.mnt, true);
	cr_assert_eq(h_unmount(&env), 0, "the daemon did not exit cleanly");
	promote = h_commit_phase(&env, 1, "promote");
	snprintf(fault, sizeof(fault), "CJFS_FAULT=%ld:crash", promote + 1);
	cr_assert_eq(h_cjfsv_env(&env, fenv, argv), 128 + 9, "the commit was not killed: %s",
		     env.err);
	cr_assert_eq(h_sql_long(&env, "SELECT state FROM txn WHERE id = 1"), 3,
		     "transaction 1 is not left committing");

	cr_assert_eq(h_sh("/", "mv '%s' '%s'", env.pkg, moved), 0);
	assert_recover_waits_for_pkg("PKG moved away");
	cr_assert_eq(h_sh("/", "mkdir '%s'", env.pkg), 0);
	assert_recover_waits_for_pkg("another directory in place of PKG");
	cr_assert_eq(h_sh("/", "rmdir '%s' && mv '%s' '%s'", env.pkg, moved, env.pkg), 0);

	cr_assert_eq(h_cjfs(&env, "recover", NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out,
			 "1 commit(s) finished, 0 reopened, 0 leftover(s) removed, 0 failed\n");
	now = h_snapshot(env.pkg, true);
	cr_assert_str_eq(now, new_tree, "recovery did not give exactly the new tree");
	free(now);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
	cr_assert_eq(h_cjfs(&env, "recover", NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out,
			 "0 commit(s) finished, 0 reopened, 0 leftover(s) removed, 0 failed\n");
	free(new_tree);
}

Test(history, every_command_answers_help_with_its_usage_on_stdout)
{
	static const char *const cmds[] = { "mount",	"status", "diff",  "commit",
					    "rollback", "run",	  "clean", "recover",
					    "verify",	"log",	  "show",  "undo",
					    "restore",	"gc",	  "audit", "stats" };
	char *line, usage[64];
	size_t listed = 0;

	/* The list above is the whole command table of `cjfs --help`. */
	cr_assert_eq(h_cjfs(&env, "--help", NULL), 0, "%s", env.err);
	line = strstr(env.out, "Commands:\n");
	cr_assert_not_null(line, "%s", env.out);
	line = strchr(line, '\n') + 1;
	while (strncmp(line, "  ", 2) == 0) {
		char name[32];
		bool known = false;

		cr_assert_eq(sscanf(line, "%31s", name), 1);
		for (size_t i = 0; i < ARRAY_SIZE(cmds); i++)
			known |= strcmp(cmds[i], name) == 0;
		cr_assert(known, "'cjfs --help' lists '%s', which this test does not try", name);
		listed++;
		line = strchr(line, '\n') + 1;
	}
	cr_assert_eq(listed, ARRAY_SIZE(cmds), "'cjfs --help' lists %zu commands:\n%s", listed,
		     env.out);

	for (size_t i = 0; i < ARRAY_SIZE(cmds); i++) {
		int r = h_cjfs(&env, cmds[i], "--help", NULL);
		size_t len = (size_t)snprintf(usage, sizeof(usage), "usage: cjfs %s", cmds[i]);

		cr_assert_eq(r, 0, "'cjfs %s --help' exited %d: %s", cmds[i], r, env.err);
		cr_assert_str_eq(env.err, "", "'cjfs %s --help' wrote to stderr", cmds[i]);
		cr_assert(strncmp(env.out, usage, len) == 0 &&
				  (env.out[len] == ' ' || env.out[len] == '\n'),
			  "'cjfs %s --help' does not start with its usage line:\n%s", cmds[i],
			  env.out);
		cr_assert_not_null(strchr(env.out, '\n'), "%s", env.out);
	}
	/* Help is not an action: no transaction was started by any of them. */
	cr_assert_eq(h_cjfs(&env, "log", NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "");
}

/* Commit n transactions with `cjfs run`, each running the shell command cmd (%d: its number). */
static void run_n(int first, int last, const char *cmd)
{
	for (int i = first; i <= last; i++) {
		char *c = util_xasprintf(cmd, i);

		cr_assert_eq(h_sh(env.root, "'%s' --store '%s' run '%s' -- sh -c '%s' 2>/dev/null",
				  h_cjfs_bin(), env.store, env.pkg, c),
			     0, "run %d failed", i);
		free(c);
	}
}

/* The transaction ids `cjfs show` still finds among 1..5, as "1 2 ..." (caller frees). */
static char *shown_ids(void)
{
	struct strbuf sb = STRBUF_INIT;

	for (int i = 1; i <= 5; i++) {
		char id[16];

		snprintf(id, sizeof(id), "%d", i);
		if (h_cjfs(&env, "show", id, NULL) == 0)
			strbuf_addf(&sb, "%s%d", sb.len ? " " : "", i);
	}
	return strbuf_detach(&sb);
}

Test(history, gc_older_than_drops_what_finished_before_the_limit_and_never_an_open_one)
{
	char *ids, *s;

	run_n(1, 4, "echo %d >> f");
	/* Transactions 1 and 2 finished two days ago. */
	h_sql_exec(&env, "UPDATE txn SET created_ns = created_ns - 172800000000000,"
			 " finished_ns = finished_ns - 172800000000000 WHERE id IN (1, 2)");
	/* 5 is open, mounted, with a change not committed yet. */
	h_mount(&env);
	h_write(env.mnt, "open.txt", "open\n");

	cr_assert_eq(h_cjfs(&env, "gc", "--older-than", "1d", "--grace", "0", "--dry-run", NULL), 0,
		     "%s", env.err);
	cr_assert_not_null(strstr(env.out, "would drop the history of 2 transaction(s):\n"
					   "  older-than: 1-2\n"),
			   "%s", env.out);
	/* A bare number is seconds: everything finished goes, the open one stays. */
	cr_assert_eq(h_cjfs(&env, "gc", "--older-than", "0", "--grace", "0", "--dry-run", "--json",
			    NULL),
		     0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "\"dropped\":[{\"id\":1,\"why\":\"older-than\"},"
					   "{\"id\":2,\"why\":\"older-than\"},"
					   "{\"id\":3,\"why\":\"older-than\"},"
					   "{\"id\":4,\"why\":\"older-than\"}]"),
			   "%s", env.out);
	ids = shown_ids();
	cr_assert_str_eq(ids, "1 2 3 4 5", "a dry run dropped history");
	free(ids);

	cr_assert_eq(h_cjfs(&env, "gc", "--older-than", "1d12h", "--grace", "0", NULL), 0, "%s",
		     env.err);
	cr_assert_not_null(strstr(env.out, "dropped the history of 2 transaction(s):\n"
					   "  older-than: 1-2\n"),
			   "%s", env.out);
	ids = shown_ids();
	cr_assert_str_eq(ids, "3 4 5", "gc --older-than 1d12h kept the wrong transactions");
	free(ids);
	cr_assert_eq(h_cjfs(&env, "log", "--json", NULL), 0, "%s", env.err);
	cr_assert_null(strstr(env.out, "{\"id\":1,"), "%s", env.out);
	cr_assert_null(strstr(env.out, "{\"id\":2,"), "%s", env.out);
	cr_assert_not_null(strstr(env.out, "{\"id\":5,\"state\":\"open\""), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "audit", "--txn", "2", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out,
				  "BACKUP_DELETED history dropped by gc: finished more than"),
			   "%s", env.out);
	/* What the newest and the open transaction need is still there. */
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "open.txt");
	cr_assert_str_eq(s, "open\n");
	free(s);
	cr_assert_eq(h_cjfs(&env, "undo", "4", NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "f");
	cr_assert_str_eq(s, "1\n2\n3\n");
	free(s);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
	cr_assert_eq(h_cjfs(&env, "gc", "--older-than", "soon", NULL), 2);
	assert_one_line_error("--older-than wants a duration");
}

/* The number after "key": in the JSON of the last h_cjfs(). */
static long long json_ll(const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(env.out, pat);
	cr_assert_not_null(p, "no %s in %s", pat, env.out);
	return strtoll(p + strlen(pat), NULL, 10);
}

Test(history, gc_max_size_drops_the_oldest_until_the_store_fits)
{
	char *ids;

	/* Four transactions, each adding 64 KiB that does not compress. */
	run_n(1, 4, "head -c 65536 /dev/urandom > r%d");
	h_mount(&env);
	h_write(env.mnt, "open.txt", "open\n");

	cr_assert_eq(h_cjfs(&env, "gc", "--max-size", "1G", "--grace", "0", "--dry-run", NULL), 0,
		     "%s", env.err);
	cr_assert_not_null(strstr(env.out, "would drop the history of 0 transaction(s)\n"), "%s",
			   env.out);
	/* Nothing open is dropped, even when the goal is out of reach. */
	cr_assert_eq(h_cjfs(&env, "gc", "--max-size", "0", "--grace", "0", "--dry-run", NULL), 0,
		     "%s", env.err);
	cr_assert_not_null(strstr(env.out, "would drop the history of 4 transaction(s):\n"
					   "  max-size: 1-4\n"),
			   "%s", env.out);
	/* 256 KiB of blobs, 150 KiB allowed: the two oldest go, the two newest stay. */
	cr_assert_eq(h_cjfs(&env, "gc", "--max-size", "150K", "--grace", "0", "--json", NULL), 0,
		     "%s", env.err);
	cr_assert_not_null(strstr(env.out, "\"dropped\":[{\"id\":1,\"why\":\"max-size\"},"
					   "{\"id\":2,\"why\":\"max-size\"}]"),
			   "%s", env.out);
	cr_assert_geq(json_ll("size_before"), 4 * 65536, "%s", env.out);
	cr_assert_leq(json_ll("size_after"), 150 * 1024, "%s", env.out);
	cr_assert_geq(json_ll("blobs"), 2, "%s", env.out);
	ids = shown_ids();
	cr_assert_str_eq(ids, "3 4 5", "gc --max-size 150K kept the wrong transactions");
	free(ids);
	/* Already small enough: nothing more goes. */
	cr_assert_eq(h_cjfs(&env, "gc", "--max-size", "150K", "--grace", "0", NULL), 0, "%s",
		     env.err);
	cr_assert_not_null(strstr(env.out, "dropped the history of 0 transaction(s)\n"), "%s",
			   env.out);
	cr_assert_eq(h_cjfs(&env, "verify", NULL), 0, "%s%s", env.out, env.err);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "undo", "4", NULL), 0, "%s", env.err);
	cr_assert_eq(h_sh(env.pkg, "test -f r3 && ! test -e r4 && test -f open.txt"), 0);
	cr_assert_eq(h_cjfs(&env, "gc", "--max-size", "lots", NULL), 2);
	assert_one_line_error("--max-size wants a size");
}

Test(history, a_committed_run_records_its_commit_timings)
{
	long long seal, check, stage, apply, commit;

	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c",
			    "printf 'x\\n' >> src/pkg/mod.py && echo n > n.txt", NULL),
		     0, "%s", env.err);
	cr_assert_eq(h_cjfs(&env, "show", "--json", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "\"timings_ns\":{"), "%s", env.out);
	/* mod.py's original was stored while the command ran. */
	cr_assert_gt(json_ll("backup"), 0, "%s", env.out);
	seal = json_ll("seal");
	check = json_ll("check");
	stage = json_ll("stage");
	apply = json_ll("apply");
	commit = json_ll("commit");
	cr_assert_gt(seal, 0, "%s", env.out);
	cr_assert_gt(check, 0, "%s", env.out);
	cr_assert_gt(stage, 0, "%s", env.out);
	cr_assert_gt(apply, 0, "%s", env.out);
	/* The whole commit contains its steps, and took less than a minute here. */
	cr_assert_geq(commit, seal + check + stage + apply, "%s", env.out);
	cr_assert_lt(commit, 60LL * 1000000000LL, "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "show", "1", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "\ntimings    backup "), "%s", env.out);
	cr_assert_not_null(strstr(env.out, ", commit "), "%s", env.out);
	/* A run that fails is rolled back: it never committed, so no commit timing. */
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c", "echo y > y.txt; exit 1", NULL),
		     1);
	cr_assert_eq(h_cjfs(&env, "show", "--json", "2", NULL), 0, "%s", env.err);
	cr_assert_eq(json_ll("commit"), 0, "%s", env.out);
}

Test(history_crash, an_undo_killed_at_any_durable_step_leaves_pkg_old_or_new)
{
	char fault[32], *old_tree, *new_tree;
	int n, r = -1;

	old_tree = h_snapshot(env.pkg, true);
	commit_everything();
	new_tree = h_snapshot(env.pkg, true);
	h_save_state(&env, "committed");
	/* The same commit each round; the undo dies at its n-th durable step. */
	for (n = 1; n < 400; n++) {
		char *now;

		if (n > 1)
			h_load_state(&env, "committed");
		snprintf(fault, sizeof(fault), "%d:crash", n);
		setenv("CJFS_FAULT", fault, 1);
		r = h_cjfs(&env, "undo", "1", NULL);
		unsetenv("CJFS_FAULT");
		cr_assert(r == 0 || r == 128 + 9, "step %d: the undo failed (%d): %s", n, r,
			  env.err);
		cr_assert_eq(h_cjfs(&env, "recover", NULL), 0, "%s", env.err);
		now = h_snapshot(env.pkg, true);
		cr_assert(strcmp(now, old_tree) == 0 || strcmp(now, new_tree) == 0,
			  "undo killed at step %d left a mix:\n%s", n, now);
		cr_assert_eq(h_count_names(env.pkg, ".cjfs"), 0, "temporaries after step %d", n);
		cr_assert_eq(h_cjfs(&env, "log", "--json", NULL), 0);
		cr_assert_null(strstr(env.out, "\"state\":\"sealed\""), "%s", env.out);
		cr_assert_null(strstr(env.out, "\"state\":\"committing\""), "%s", env.out);
		/* An interrupted undo is finished or discarded, never left open. */
		cr_assert_null(strstr(env.out, "\"state\":\"orphaned\""), "%s", env.out);
		cr_assert_null(strstr(env.out, "\"state\":\"open\""), "%s", env.out);
		/* Whoever finished it, the record agrees with PKG. */
		if (strcmp(now, old_tree) == 0)
			cr_assert_not_null(strstr(env.out, "{\"id\":1,\"state\":\"undone\""),
					   "step %d: %s", n, env.out);
		else
			cr_assert_not_null(strstr(env.out, "{\"id\":1,\"state\":\"committed\""),
					   "step %d: %s", n, env.out);
		free(now);
		if (r == 0)
			break;
	}
	free(old_tree);
	free(new_tree);
	cr_assert_eq(r, 0, "the undo never finished");
	cr_assert_gt(n, 10, "the crash points never hit the undo");
	fprintf(stderr, "the undo has %d durable steps\n", n - 1);
}

/* A real tree: the standard library of the system's Python. */
Test(history_measure, dedup_and_compression_of_a_real_tree_are_reported_by_stats)
{
	const char *src = "/usr/lib/python3.11";
	double dedup = 0, comp = 0;
	char *p;

	if (access(src, R_OK) != 0)
		cr_skip_test("%s is not installed", src);
	cr_assert_eq(h_sh(env.root, "rm -rf pkg && cp -a '%s' pkg && chmod -R u+w pkg", src), 0);
	/* A cleaner touching every .py file: strip trailing blanks, as clean and black do. */
	cr_assert_eq(h_sh(env.root,
			  "'%s' --store '%s' run -q '%s' -- sh -c "
			  "\"find . -name '*.py' -exec sed -i 's/[[:space:]]*$//' {} +\"",
			  h_cjfs_bin(), env.store, env.pkg),
		     0);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 0, "%s", env.err);
	cr_assert_eq(h_sh(env.root,
			  "'%s' --store '%s' run -q '%s' -- sh -c "
			  "\"find . -name '*.py' -exec sed -i 's/[[:space:]]*$//' {} +\"",
			  h_cjfs_bin(), env.store, env.pkg),
		     0);
	cr_assert_eq(h_cjfs(&env, "stats", "--json", NULL), 0, "%s", env.err);
	p = strstr(env.out, "\"dedup_ratio\":");
	cr_assert_not_null(p, "%s", env.out);
	dedup = strtod(p + strlen("\"dedup_ratio\":"), NULL);
	p = strstr(env.out, "\"compression_ratio\":");
	cr_assert_not_null(p);
	comp = strtod(p + strlen("\"compression_ratio\":"), NULL);
	cr_assert_eq(h_cjfs(&env, "stats", "-n", "3", NULL), 0, "%s", env.err);
	/* For docs/history.md. */
	fprintf(stderr, "stats on %s (clean, undo, clean again):\n%s", src, env.out);
	/*
	 * Twice the whole tree's originals, plus the few changed files three
	 * times over: dedup must find the second copy of everything.
	 */
	cr_assert_gt(dedup, 1.8, "dedup ratio %.2f", dedup);
	cr_assert_gt(comp, 2.0, "compression ratio %.2f", comp);
}
