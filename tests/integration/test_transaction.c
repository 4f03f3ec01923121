// SPDX-License-Identifier: MIT
/*
 * The transaction as a user sees it: isolation while open, rollback leaves
 * PKG byte-identical, commit leaves PKG equal to what the mount showed,
 * cjfs run commits or rolls back by exit status, and bad input fails with
 * one clear line and changes nothing.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	/* A small package: nested directories, executables, a symlink, an empty dir. */
	cr_assert_eq(h_sh(env.pkg,
			  "mkdir -p src/pkg docs empty && "
			  "printf 'def f( x ):\\n    return x  \\n' > src/pkg/mod.py && "
			  "printf 'print(1)\\r\\n' > src/main.py && "
			  "printf '#!/bin/sh\\necho hi\\n' > run.sh && chmod 755 run.sh && "
			  "printf 'notes\\n' > docs/notes.txt && "
			  "printf 'gone\\n' > docs/old.txt && "
			  "mkdir -p docs/sub && printf 's\\n' > docs/sub/s.txt && "
			  "ln -s src/main.py main-link && "
			  "touch -d '2020-01-02 03:04:05' src/main.py docs/notes.txt"),
		     0);
}

static void teardown(void)
{
	h_teardown(&env);
}

TestSuite(transaction, .init = setup, .fini = teardown, .timeout = 120);

/* Every kind of change the overlay supports, made through the mount. */
static void change_everything(const char *mnt)
{
	cr_assert_eq(h_sh(mnt, "printf 'changed\\n' >> src/pkg/mod.py && "
			       "printf 'new\\n' > new.txt && "
			       "rm docs/old.txt && "
			       "mkdir -p made/deeper && printf 'x\\n' > made/deeper/x && "
			       "rm -r docs/sub && rmdir empty && "
			       "mv docs/notes.txt docs/renamed.txt && "
			       "mv src/main.py src/main2.py && "
			       "chmod 700 run.sh && "
			       "ln -s ../new.txt made/link && "
			       "rm main-link && ln -s src/main2.py main-link"),
		     0);
}

Test(transaction, pkg_is_untouched_while_open_and_after_rollback)
{
	char *before = h_snapshot(env.pkg, true);
	char *during;

	h_mount(&env);
	change_everything(env.mnt);
	during = h_snapshot(env.pkg, true);
	cr_assert_str_eq(during, before, "PKG changed while the transaction was open");
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
	free(during);
	during = h_snapshot(env.pkg, true);
	cr_assert_str_eq(during, before, "rollback did not leave PKG byte-identical");
	cr_assert_eq(h_count_names(env.pkg, ".cjfs"), 0, "stray files in PKG");
	free(before);
	free(during);
}

Test(transaction, commit_leaves_pkg_equal_to_the_mount)
{
	char *shown, *after;

	h_mount(&env);
	change_everything(env.mnt);
	shown = h_snapshot(env.mnt, false);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, false);
	cr_assert_str_eq(after, shown, "PKG after commit differs from what the mount showed");
	cr_assert_eq(h_count_names(env.pkg, ".cjfs"), 0, "temporaries left in PKG");
	free(shown);
	free(after);
}

Test(transaction, commit_keeps_the_mtimes_the_mount_showed)
{
	struct stat a, b;
	char p[PATH_MAX];

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'y\\n' > docs/notes.txt && "
				   "touch -d '2021-05-06 07:08:09' docs/notes.txt"),
		     0);
	snprintf(p, sizeof(p), "%s/docs/notes.txt", env.mnt);
	cr_assert_eq(stat(p, &a), 0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	snprintf(p, sizeof(p), "%s/docs/notes.txt", env.pkg);
	cr_assert_eq(stat(p, &b), 0);
	cr_assert_eq(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
}

Test(transaction, status_lists_each_change_like_git)
{
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'z\\n' >> src/pkg/mod.py && printf 'n\\n' > new.txt && "
				   "rm docs/old.txt && mkdir made"),
		     0);
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "D docs/old.txt\nA made/\nA new.txt\nM src/pkg/mod.py\n");
	cr_assert_eq(h_cjfs(&env, "diff", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "+z\n"), "diff lacks the added line: %s", env.out);
	cr_assert_not_null(strstr(env.out, "-gone\n"), "diff lacks the deleted file: %s", env.out);
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
}

Test(transaction, writing_back_identical_content_is_not_a_change)
{
	h_mount(&env);
	/* Copied up, rewritten with the same bytes: nothing to report or promote. */
	cr_assert_eq(h_sh(env.mnt,
			  "cp docs/notes.txt /tmp/.cjfs-same.$$ && "
			  "cat /tmp/.cjfs-same.$$ > docs/notes.txt && rm /tmp/.cjfs-same.$$"),
		     0);
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "");
	/* Same size, other bytes, mtime put back: only the content can tell, and does. */
	cr_assert_eq(h_sh(env.mnt, "printf 'NOTES\n' > docs/notes.txt && "
				   "touch -d '2020-01-02 03:04:05' docs/notes.txt"),
		     0);
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "M docs/notes.txt\n");
	cr_assert_eq(h_sh(env.mnt, "printf 'notes\n' > docs/notes.txt"), 0);
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_str_eq(env.out, "");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "0 modified, 0 added, 0 deleted"), "%s", env.out);
}

Test(transaction, run_commits_on_success)
{
	char *s;
	int r = h_cjfs(&env, "run", env.pkg, "--", "sh", "-c", "printf 'ok\\n' > result.txt", NULL);

	cr_assert_eq(r, 0, "%s", env.err);
	s = h_read(env.pkg, "result.txt");
	cr_assert_not_null(s, "the change was not committed");
	cr_assert_str_eq(s, "ok\n");
	cr_assert_not_null(strstr(env.err, "committed"), "no summary: %s", env.err);
	free(s);
}

Test(transaction, run_rolls_back_on_failure_and_returns_the_status)
{
	char *before = h_snapshot(env.pkg, true), *after;
	int r = h_cjfs(&env, "run", env.pkg, "--", "sh", "-c",
		       "printf 'half\\n' > src/pkg/mod.py; rm run.sh; exit 7", NULL);

	cr_assert_eq(r, 7);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before);
	cr_assert_not_null(strstr(env.err, "rolled back"), "no summary: %s", env.err);
	free(before);
	free(after);
}

Test(transaction, run_rolls_back_a_command_killed_by_a_signal)
{
	char *before = h_snapshot(env.pkg, true), *after;
	int r = h_cjfs(&env, "run", env.pkg, "--", "sh", "-c",
		       "printf 'half\\n' > src/pkg/mod.py; kill -9 $$", NULL);

	cr_assert_eq(r, 128 + 9);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before);
	free(before);
	free(after);
}

Test(transaction, run_reports_a_missing_command_as_127)
{
	int r = h_cjfs(&env, "run", env.pkg, "--", "/nonexistent/cleaner", NULL);

	cr_assert_eq(r, 127);
	cr_assert_not_null(strstr(env.err, "/nonexistent/cleaner"), "%s", env.err);
}

/*
 * The command sees the mount at PKG's own path: what a tool looks for above
 * its directory (.clang-format, pyproject.toml, .git) is found as when it
 * runs in PKG, and an absolute path into PKG is the mount too.
 */
Test(transaction, run_shows_the_mount_at_pkgs_own_path)
{
	char *real = realpath(env.pkg, NULL), *s, *before;
	char want[PATH_MAX + 1];

	cr_assert_not_null(real);
	h_write(env.root, "above.cfg", "IndentWidth: 8\n");
	/* PKG in a git work tree that starts above it. */
	cr_assert_eq(h_sh(env.root, "git init -q ."), 0);
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c",
			    "pwd -P > where.txt; echo \"$PWD\" >> where.txt; cat ../above.cfg > seen.txt; "
			    "git rev-parse --show-prefix >> where.txt",
			    NULL),
		     0, "%s", env.err);
	cr_assert_eq(strstr(env.err, "warning"), NULL, "%s", env.err);
	snprintf(want, sizeof(want), "%s\n%s\npkg/\n", real, real);
	s = h_read(env.pkg, "where.txt");
	cr_assert_str_eq(s, want);
	free(s);
	s = h_read(env.pkg, "seen.txt");
	cr_assert_str_eq(s, "IndentWidth: 8\n");
	free(s);
	/* Written by absolute path, then failed: rolled back like every other change. */
	before = h_snapshot(env.pkg, true);
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c",
			    "printf x > \"$0/abs.txt\"; printf y >> \"$0/run.sh\"; exit 1", real,
			    NULL),
		     1, "%s", env.err);
	s = h_snapshot(env.pkg, true);
	cr_assert_str_eq(s, before, "a write by PKG's absolute path reached PKG");
	free(s);
	free(before);
	free(real);
}

/* While the command runs, every other program still sees PKG as it is. */
Test(transaction, run_hides_the_mount_from_other_programs)
{
	/* It waits (at most 20 s) for the test to create "go" next to PKG. */
	char *argv[] = { (char *)"run", env.pkg, (char *)"--", (char *)"sh", (char *)"-c",
			 (char *)"printf 'new\\n' > docs/notes.txt; : > \"$0/started\"; i=0; "
				 "while [ ! -e \"$0/go\" ] && [ $i -lt 2000 ]; do sleep 0.01; i=$((i+1)); done",
			 env.root, NULL };
	struct h_proc p;
	bool started;
	char *s;

	h_cjfs_start(&env, &p, NULL, argv);
	started = h_appears(env.root, "started");
	s = h_read(env.pkg, "docs/notes.txt");
	h_write(env.root, "go", "");
	cr_assert(started, "the command did not start");
	cr_assert_str_eq(s, "notes\n", "the command's change showed in PKG before the commit");
	free(s);
	cr_assert_eq(h_cjfs_wait(&env, &p), 0, "%s", p.err);
	s = h_read(env.pkg, "docs/notes.txt");
	cr_assert_str_eq(s, "new\n");
	free(s);
}

/*
 * A process the command leaves behind in the mount keeps it busy: cjfs run
 * neither commits nor rolls back under it, says so, and leaves the
 * transaction open, to be committed once that process has gone.
 */
Test(transaction, run_leaves_the_transaction_open_while_a_process_it_left_uses_the_mount)
{
	char fifo[PATH_MAX];
	char *s;
	int fd;

	snprintf(fifo, sizeof(fifo), "%s/hold", env.root);
	cr_assert_eq(mkfifo(fifo, 0666), 0);
	/* The left process waits in the mount until this test opens the FIFO. */
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "sh", "-c",
			    "printf 'y\\n' > y.txt; (timeout 60 sh -c 'read x < \"$0/hold\"' \"$0\"; "
			    ": > \"$0/gone\") </dev/null >/dev/null 2>&1 &",
			    env.root, NULL),
		     125);
	cr_assert_not_null(strstr(env.err, "still uses"), "%s", env.err);
	s = h_read(env.pkg, "y.txt");
	cr_assert_null(s, "committed under a busy mount");
	cr_assert_eq(h_cjfs(&env, "status", NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "open"), "%s", env.out);
	fd = open(fifo, O_WRONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_eq(write(fd, "\n", 1), 1);
	close(fd);
	cr_assert(h_appears(env.root, "gone"));
	cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "y.txt");
	cr_assert_str_eq(s, "y\n");
	free(s);
}

/* One line on stderr, naming the thing. */
static void assert_one_line_error(const char *what)
{
	cr_assert_neq(env.err[0], '\0', "no error message");
	cr_assert_not_null(strstr(env.err, what), "error does not name '%s': %s", what, env.err);
	cr_assert_eq(strchr(env.err, '\n'), env.err + strlen(env.err) - 1,
		     "error is not one line: %s", env.err);
}

Test(transaction, mount_refuses_bad_arguments_and_changes_nothing)
{
	char *before = h_snapshot(env.pkg, true), *after;
	char missing[PATH_MAX], file[PATH_MAX], inside[PATH_MAX];

	snprintf(missing, sizeof(missing), "%s/nope", env.root);
	cr_assert_eq(h_cjfs(&env, "mount", missing, env.mnt, NULL), 1);
	assert_one_line_error("nope");
	snprintf(file, sizeof(file), "%s/run.sh", env.pkg);
	cr_assert_eq(h_cjfs(&env, "mount", file, env.mnt, NULL), 1);
	assert_one_line_error("not a directory");
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, missing, NULL), 1);
	assert_one_line_error("does not exist");
	snprintf(inside, sizeof(inside), "%s/empty", env.pkg);
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, inside, NULL), 1);
	assert_one_line_error("inside");
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, env.root, NULL), 1);
	assert_one_line_error("contains");
	h_write(env.mnt, "occupied", "x");
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, env.mnt, NULL), 1);
	assert_one_line_error("not empty");
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, NULL), 2);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before);
	free(before);
	free(after);
}

/*
 * A store inside PKG would show in the mount, and a commit could write a
 * cleaner's changes into the store in use: refused, nothing mounted.
 */
Test(transaction, a_store_inside_pkg_is_refused)
{
	char saved[sizeof(env.store)];

	memcpy(saved, env.store, sizeof(saved));
	snprintf(env.store, sizeof(env.store), "%s/.cjfs-store", env.pkg);
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, env.mnt, NULL), 1);
	assert_one_line_error("inside the package");
	cr_assert_eq(h_cjfs(&env, "run", env.pkg, "--", "true", NULL), 125); /* cjfs failed, not CMD */
	assert_one_line_error("keep it outside");
	memcpy(env.store, saved, sizeof(saved));
	cr_assert_eq(h_sh("/", "mountpoint -q '%s'", env.mnt) != 0, 1, "something was mounted");
}

Test(transaction, a_second_mount_of_the_same_pkg_is_refused)
{
	char mnt2[PATH_MAX];

	h_mount(&env);
	snprintf(mnt2, sizeof(mnt2), "%s/mnt2", env.root);
	cr_assert_eq(mkdir(mnt2, 0755), 0);
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, mnt2, NULL), 1);
	assert_one_line_error("already has open transaction");
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
}

Test(transaction, commit_and_status_refuse_a_path_that_is_not_a_mount)
{
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 1);
	assert_one_line_error("not a cjfs mount");
	cr_assert_eq(h_cjfs(&env, "rollback", env.pkg, NULL), 1);
	assert_one_line_error("not a cjfs mount");
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 1);
	assert_one_line_error("not a cjfs mount");
	cr_assert_eq(h_cjfs(&env, "commit", "999", NULL), 1);
	assert_one_line_error("999");
}

Test(transaction, an_unwritable_store_is_reported)
{
	char *before = h_snapshot(env.pkg, true), *after;
	char ro[PATH_MAX];

	if (geteuid() == 0) {
		/* Criterion does not run .fini after a skip in the test body. */
		free(before);
		h_teardown(&env);
		cr_skip_test("root can write anywhere; covered by the non-root run");
	}
	snprintf(ro, sizeof(ro), "%s/ro", env.root);
	cr_assert_eq(mkdir(ro, 0500), 0);
	snprintf(env.store, sizeof(env.store), "%s/ro/store", env.root);
	cr_assert_eq(h_cjfs(&env, "mount", env.pkg, env.mnt, NULL), 1);
	assert_one_line_error("store");
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before);
	free(before);
	free(after);
}

Test(transaction, the_foreground_daemon_exits_cleanly_on_unmount)
{
	char *s;

	h_mount_fg(&env);
	h_write(env.mnt, "fg.txt", "fg\n");
	cr_assert_eq(h_unmount(&env), 0);
	/* The transaction survives its daemon: commit it by id. */
	cr_assert_eq(h_cjfs(&env, "status", NULL), 0);
	cr_assert_not_null(strstr(env.out, "orphaned"), "%s", env.out);
	cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "fg.txt");
	cr_assert_not_null(s);
	free(s);
}

/* mount -d logs every request it serves, in the foreground, on stderr. */
Test(transaction, mount_debug_logs_every_request)
{
	h_mount_fg_opt(&env, "-d");
	h_write(env.mnt, "dbg.txt", "d\n");
	cr_assert_eq(h_unmount(&env), 0);
	cr_assert_not_null(strstr(env.err, "opcode: CREATE"), "no request in the log: %s", env.err);
	cr_assert_not_null(strstr(env.err, "opcode: RELEASE"), "%s", env.err);
}

/*
 * The daemon runs under umask 0 (new objects get the creator's umask only),
 * so the store files it writes itself must give their modes explicitly:
 * every file of the store outside the layers (originals, change log, index,
 * blobs) stays owner-only, whatever the umask of those who mount and commit.
 */
static int open_to_others; /* files of the store others may read or write */
static char open_example[PATH_MAX];

static int check_private(const char *path, const struct stat *st, int type, struct FTW *f)
{
	(void)f;
	if (strstr(path, "/upper/") || strstr(path, "/work/"))
		return 0; /* the layers mirror the user's tree and its modes */
	if (type == FTW_F && (st->st_mode & 077)) {
		open_to_others++;
		snprintf(open_example, sizeof(open_example), "%s %o", path, st->st_mode & 07777);
	}
	return 0;
}

static void expect_store_private(const char *when)
{
	struct stat st;

	open_to_others = 0;
	cr_assert_eq(stat(env.store, &st), 0);
	cr_assert_eq(st.st_mode & 077, 0, "%s: the store is %o", when, st.st_mode & 07777);
	cr_assert_eq(nftw(env.store, check_private, 16, FTW_PHYS), 0);
	cr_assert_eq(open_to_others, 0, "%s: %d store files open to others, e.g. %s", when,
		     open_to_others, open_example);
}

Test(transaction, the_stores_files_stay_owner_only_under_a_permissive_umask)
{
	mode_t old = umask(0);

	h_mount_fg(&env);
	change_everything(env.mnt);
	expect_store_private("with the transaction open");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "%s", env.err);
	expect_store_private("after commit");
	umask(old);
}

Test(transaction, fuse_unavailable_is_reported_and_changes_nothing)
{
	char *before = h_snapshot(env.pkg, true), *after, *err;
	int r;

	if (geteuid() == 0)
		/* No /dev/fuse: an empty /dev in a private mount namespace. */
		r = h_sh(env.root,
			 "unshare -m sh -c 'mount -t tmpfs none /dev && exec \"$0\" --store \"$1\" mount \"$2\" \"$3\"' '%s' '%s' '%s' '%s' 2>err",
			 h_cjfs_bin(), env.store, env.pkg, env.mnt);
	else
		/* No fusermount3 on the PATH, the setuid helper a non-root mount needs. */
		r = h_sh(env.root, "PATH=/nonexistent '%s' --store '%s' mount '%s' '%s' 2>err",
			 h_cjfs_bin(), env.store, env.pkg, env.mnt);
	cr_assert_eq(r, 1, "a mount without FUSE exited %d", r);
	err = h_read(env.root, "err");
	cr_assert_not_null(err);
	cr_assert_not_null(strstr(err, "FUSE is not available"), "%s", err);
	cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "error is not one line: %s", err);
	/* Nothing is left behind: no open transaction, no mount, PKG as it was. */
	cr_assert_eq(h_cjfs(&env, "status", NULL), 0, "%s", env.err);
	cr_assert_null(strstr(env.out, "open"), "a transaction was left open: %s", env.out);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before);
	free(err);
	free(before);
	free(after);
}

Test(transaction, commit_keeps_the_extended_attributes_of_files_it_rewrites)
{
	char path[PATH_MAX], val[64], *s;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/docs/notes.txt", env.pkg);
	if (setxattr(path, "user.cjfs-test", "kept", 4, 0) < 0) {
		h_teardown(&env); /* no .fini after a skip in the body */
		cr_skip_test("the file system of '%s' has no user xattrs", env.pkg);
	}
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "printf 'rewritten\\n' > docs/notes.txt && "
				   "sed -i 's/s/S/' src/pkg/mod.py"),
		     0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	n = getxattr(path, "user.cjfs-test", val, sizeof(val));
	cr_assert_eq(n, 4, "the attribute is gone after the commit (%zd, errno %d)", n, errno);
	cr_assert_eq(memcmp(val, "kept", 4), 0);
	/* The content is the new one. */
	s = h_read(env.pkg, "docs/notes.txt");
	cr_assert_str_eq(s, "rewritten\n");
	free(s);
}

/* A default ACL (system.posix_acl_default) granting user 65534 r-x, in the kernel's form. */
static size_t default_acl(uint8_t buf[44])
{
	static const struct {
		uint16_t tag, perm;
		uint32_t id;
	} e[] = { { 0x01, 7, 0xffffffff },
		  { 0x02, 5, 65534 },
		  { 0x04, 5, 0xffffffff },
		  { 0x10, 5, 0xffffffff },
		  { 0x20, 5, 0xffffffff } };
	size_t n = 4;

	memset(buf, 0, 44);
	buf[0] = 2; /* version */
	for (size_t i = 0; i < 5; i++, n += 8) {
		buf[n] = (uint8_t)e[i].tag;
		buf[n + 2] = (uint8_t)e[i].perm;
		for (int b = 0; b < 4; b++)
			buf[n + 4 + b] = (uint8_t)(e[i].id >> (8 * b));
	}
	return n;
}

static void xattr_at(const char *dir, const char *rel, const char *name, const void *v, size_t n)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	if (v)
		cr_assert_eq(setxattr(path, name, v, n, 0), 0, "set %s on %s: %s", name, rel,
			     strerror(errno));
	else
		cr_assert_eq(removexattr(path, name), 0, "remove %s from %s: %s", name, rel,
			     strerror(errno));
}

/*
 * Extended attributes and ACLs are part of what a commit promotes: status
 * lists a file or directory whose only change is an xattr, commit leaves
 * PKG's xattrs equal to what the mount showed (added, changed, removed, on
 * files and directories, untouched content or not) and undo gives PKG its
 * own back.
 */
Test(transaction, xattr_and_acl_changes_are_committed_and_undone)
{
	char path[PATH_MAX], *before, *shown, *after;
	uint8_t acl[44];
	size_t acl_len = default_acl(acl);

	snprintf(path, sizeof(path), "%s/docs/notes.txt", env.pkg);
	if (setxattr(path, "user.gone", "x", 1, 0) < 0) {
		h_teardown(&env); /* no .fini after a skip in the body */
		cr_skip_test("the file system of '%s' has no user xattrs", env.pkg);
	}
	xattr_at(env.pkg, "docs/notes.txt", "user.keep", "1", 1);
	xattr_at(env.pkg, "run.sh", "user.old", "old", 3);
	before = h_snapshot(env.pkg, false);
	cr_assert_not_null(strstr(before, "user.gone="), "%s", before);
	h_mount(&env);
	xattr_at(env.mnt, "src/pkg/mod.py", "user.added", "a", 1);
	xattr_at(env.mnt, "docs/notes.txt", "user.gone", NULL, 0);
	xattr_at(env.mnt, "run.sh", "user.old", "new value", 9);
	xattr_at(env.mnt, "docs", "user.dir", "d", 1);
	xattr_at(env.mnt, "docs/sub", "system.posix_acl_default", acl, acl_len);
	cr_assert_eq(h_sh(env.mnt, "printf 'n\\n' > new.txt && printf 'x\\n' >> src/main.py"), 0);
	xattr_at(env.mnt, "new.txt", "user.new", "n", 1);
	xattr_at(env.mnt, "src/main.py", "user.with-content", "c", 1);
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	for (const char *l = "M src/pkg/mod.py\0M docs/notes.txt\0M run.sh\0M docs/\0"
			     "M docs/sub/\0A new.txt\0M src/main.py\0";
	     *l; l += strlen(l) + 1) {
		char want[64];

		snprintf(want, sizeof(want), "%s\n", l);
		cr_assert_not_null(strstr(env.out, want), "status lacks '%s':\n%s", l, env.out);
	}
	/* diff names each attribute removed (-), added (+) or changed (~). */
	cr_assert_eq(h_cjfs(&env, "diff", env.mnt, NULL), 0, "%s", env.err);
	for (const char *l = "diff --cjfs a/docs/sub b/docs/sub\n"
			     "xattr +system.posix_acl_default=0x02000000010007\0"
			     "diff --cjfs a/docs/notes.txt b/docs/notes.txt\nxattr -user.gone\n\0"
			     "diff --cjfs a/run.sh b/run.sh\nxattr ~user.old=\"new value\"\n\0"
			     "diff --cjfs a/src/main.py b/src/main.py\n"
			     "xattr +user.with-content=\"c\"\n---\0";
	     *l; l += strlen(l) + 1)
		cr_assert_not_null(strstr(env.out, l), "diff lacks '%s':\n%s", l, env.out);
	shown = h_snapshot(env.mnt, false);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, false);
	cr_assert_str_eq(after, shown, "PKG's xattrs after the commit differ from the mount's");
	cr_assert_null(strstr(after, "user.gone="), "%s", after);
	free(after);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, false);
	cr_assert_str_eq(after, before, "undo did not give PKG its xattrs back");
	free(before);
	free(shown);
	free(after);
}

/* PKG's top directory: its mode and the value of one xattr ("-" for none). */
static void root_attrs(const char *dir, const char *name, mode_t *mode, char val[16])
{
	struct stat st;
	ssize_t n;

	cr_assert_eq(stat(dir, &st), 0, "stat '%s': %s", dir, strerror(errno));
	*mode = st.st_mode & 07777;
	n = getxattr(dir, name, val, 15);
	cr_assert(n >= 0 || errno == ENODATA, "getxattr '%s': %s", dir, strerror(errno));
	if (n < 0)
		strcpy(val, "-");
	else
		val[n] = '\0';
}

/*
 * PKG's top directory is part of the transaction like any directory in
 * it: a chmod and xattr changes on the mount root are listed (as "./"),
 * committed, and undone.
 */
Test(transaction, the_mount_roots_own_mode_and_xattrs_are_committed_and_undone)
{
	char val[16], out[PATH_MAX];
	mode_t mode;

	if (setxattr(env.pkg, "user.gone", "g", 1, 0) < 0) {
		h_teardown(&env); /* no .fini after a skip in the body */
		cr_skip_test("the file system of '%s' has no user xattrs", env.pkg);
	}
	cr_assert_eq(chmod(env.pkg, 0755), 0);
	h_mount(&env);
	cr_assert_eq(chmod(env.mnt, 0750), 0, "chmod the mount root: %s", strerror(errno));
	xattr_at(env.mnt, ".", "user.gone", NULL, 0);
	xattr_at(env.mnt, ".", "user.new", "n", 1);
	root_attrs(env.pkg, "user.gone", &mode, val);
	cr_assert(mode == 0755 && !strcmp(val, "g"), "PKG's root changed while open: %04o %s",
		  (unsigned)mode, val);
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "M ./\n"), "status lacks the root:\n%s", env.out);
	cr_assert_eq(h_cjfs(&env, "diff", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_not_null(strstr(env.out, "diff --cjfs a/. b/.\nold mode 040755\nnew mode 040750\n"
					   "xattr -user.gone\nxattr +user.new=\"n\"\n"),
			   "diff of the root:\n%s", env.out);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	root_attrs(env.pkg, "user.gone", &mode, val);
	cr_assert(mode == 0750 && !strcmp(val, "-"), "commit left PKG's root at %04o, user.gone %s",
		  (unsigned)mode, val);
	root_attrs(env.pkg, "user.new", &mode, val);
	cr_assert_str_eq(val, "n", "commit did not set the root's new xattr");
	/* restore --to writes originals into DIR; DIR does not become PKG's root. */
	snprintf(out, sizeof(out), "%s/out", env.root);
	cr_assert_eq(mkdir(out, 0700), 0);
	cr_assert_eq(h_cjfs(&env, "restore", "--to", out, "1", NULL), 0, "%s", env.err);
	root_attrs(out, "user.gone", &mode, val);
	cr_assert(mode == 0700 && !strcmp(val, "-"), "restore --to gave DIR PKG root's %04o %s",
		  (unsigned)mode, val);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 0, "%s", env.err);
	root_attrs(env.pkg, "user.gone", &mode, val);
	cr_assert(mode == 0755 && !strcmp(val, "g"), "undo left PKG's root at %04o, user.gone %s",
		  (unsigned)mode, val);
	root_attrs(env.pkg, "user.new", &mode, val);
	cr_assert_str_eq(val, "-", "undo left the root's new xattr");
}

/* A socket bound at dir/name, closed again: what stays is the socket file. */
static void make_socket(const char *dir, const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	cr_assert(fd >= 0);
	cr_assert_lt((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, name),
		     sizeof(sa.sun_path), "socket path too long");
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind: %s", strerror(errno));
	close(fd);
}

/*
 * Where cjfs makes an upper copy of an object it reaches by its own fd,
 * not by a name (the mount's root, a file written after it was unlinked),
 * the copy has PKG's xattrs too.
 */
Test(transaction, the_mount_root_and_an_unlinked_open_file_keep_their_xattrs)
{
	char path[PATH_MAX], val[16];
	ssize_t n;
	int fd;

	if (setxattr(env.pkg, "user.root", "r", 1, 0) < 0) {
		h_teardown(&env); /* no .fini after a skip in the body */
		cr_skip_test("the file system of '%s' has no user xattrs", env.pkg);
	}
	xattr_at(env.pkg, "docs/notes.txt", "user.k", "v", 1);
	h_mount(&env);
	n = getxattr(env.mnt, "user.root", val, sizeof(val));
	cr_assert_eq(n, 1, "the mount root lacks PKG root's xattr (%zd, %s)", n, strerror(errno));
	snprintf(path, sizeof(path), "%s/docs/notes.txt", env.mnt);
	fd = open(path, O_RDONLY | O_CLOEXEC); /* not copied up by the open */
	cr_assert(fd >= 0, "%s", strerror(errno));
	cr_assert_eq(unlink(path), 0);
	cr_assert_eq(fchmod(fd, 0600), 0); /* copies the unlinked file up */
	n = fgetxattr(fd, "user.k", val, sizeof(val));
	cr_assert_eq(n, 1, "the unlinked file's copy lacks its xattr (%zd, %s)", n,
		     strerror(errno));
	close(fd);
}

/*
 * FIFOs, sockets and device nodes made or removed through the mount are
 * committed like files (type, mode, owner, the device a node stands for)
 * and undone like them; a FIFO is never opened on the way.
 */
Test(transaction, fifos_sockets_and_device_nodes_are_committed_and_undone)
{
	char path[PATH_MAX], *before, *shown, *after;
	bool root = geteuid() == 0;
	struct stat st;

	cr_assert_eq(h_sh(env.pkg, "mkfifo docs/old-fifo && mkfifo docs/kept-fifo"), 0);
	if (root)
		cr_assert_eq(h_sh(env.pkg, "mknod docs/old-null c 1 3"), 0);
	before = h_snapshot(env.pkg, true);
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "mkfifo new-fifo && chmod 640 new-fifo && rm docs/old-fifo && "
				   "chmod 600 docs/kept-fifo"),
		     0);
	make_socket(env.mnt, "new.sock");
	if (root)
		cr_assert_eq(h_sh(env.mnt, "mknod new-zero c 1 5 && rm docs/old-null"), 0);
	cr_assert_eq(h_cjfs(&env, "status", env.mnt, NULL), 0, "%s", env.err);
	for (const char *l = "A new-fifo\0D docs/old-fifo\0M docs/kept-fifo\0A new.sock\0"; *l;
	     l += strlen(l) + 1)
		cr_assert_not_null(strstr(env.out, l), "status lacks '%s':\n%s", l, env.out);
	shown = h_snapshot(env.mnt, true);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_null(strstr(env.err, "not committing"), "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, shown, "PKG after commit differs from what the mount showed");
	snprintf(path, sizeof(path), "%s/new-fifo", env.pkg);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert(S_ISFIFO(st.st_mode) && (st.st_mode & 07777) == 0640);
	if (root) {
		snprintf(path, sizeof(path), "%s/new-zero", env.pkg);
		cr_assert_eq(lstat(path, &st), 0);
		cr_assert(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 5));
	}
	/* restore --to writes the originals of the special files too. */
	snprintf(path, sizeof(path), "%s/out", env.root);
	cr_assert_eq(h_cjfs(&env, "restore", "1", "docs", "--to", path, NULL), 0, "%s", env.err);
	snprintf(path, sizeof(path), "%s/out/docs/old-fifo", env.root);
	cr_assert_eq(lstat(path, &st), 0, "restore --to left out the deleted FIFO");
	cr_assert(S_ISFIFO(st.st_mode));
	snprintf(path, sizeof(path), "%s/out/docs/kept-fifo", env.root);
	cr_assert_eq(lstat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0644, "the FIFO's original mode is %o",
		     st.st_mode & 07777);
	if (root) {
		snprintf(path, sizeof(path), "%s/out/docs/old-null", env.root);
		cr_assert_eq(lstat(path, &st), 0);
		cr_assert(S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3));
	}
	free(after);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "undo did not give PKG its FIFOs and nodes back");
	free(before);
	free(shown);
	free(after);
}

static ino_t ino_of(const char *dir, const char *rel, nlink_t *ret_nlink)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	cr_assert_eq(lstat(path, &st), 0, "%s: %s", rel, strerror(errno));
	*ret_nlink = st.st_nlink;
	return st.st_ino;
}

/* The names of rels (NUL-separated) are one file of n links in dir. */
static void assert_one_file(const char *dir, const char *rels, nlink_t n)
{
	nlink_t nl;
	ino_t ino = ino_of(dir, rels, &nl);

	for (const char *r = rels; *r; r += strlen(r) + 1) {
		nlink_t nr;

		cr_assert_eq(ino_of(dir, r, &nr), ino, "'%s' is not a hard link of '%s'", r, rels);
		cr_assert_eq(nr, n, "'%s' has %ju links, not %ju", r, (uintmax_t)nr, (uintmax_t)n);
	}
}

/*
 * Hard links made through the mount are hard links in PKG after the
 * commit: among new files, between a changed file and a new name, and from
 * a new name to a file the transaction left as it was. Undo gives PKG its
 * own links back, also those the transaction had parted.
 */
Test(transaction, hard_links_are_committed_as_hard_links_and_undone)
{
	char *before, *shown, *after, *s;
	nlink_t nl;

	cr_assert_eq(h_sh(env.pkg, "printf 'L\\n' > docs/l1 && ln docs/l1 docs/l2"), 0);
	before = h_snapshot(env.pkg, true);
	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt,
			  "printf 'one\\n' > new1 && ln new1 new2 && mkdir d && "
			  "ln new1 d/new3 && ln docs/notes.txt docs/notes-link && "
			  "printf 'x\\n' >> src/main.py && ln src/main.py src/main-hard && "
			  "sed -i 's/L/M/' docs/l1 docs/l2"),
		     0);
	shown = h_snapshot(env.mnt, true);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, shown, "PKG after commit differs from what the mount showed");
	cr_assert_eq(h_count_names(env.pkg, ".cjfs"), 0, "temporaries left in PKG");
	assert_one_file(env.pkg, "new1\0new2\0d/new3\0", 3);
	assert_one_file(env.pkg, "docs/notes.txt\0docs/notes-link\0", 2);
	assert_one_file(env.pkg, "src/main.py\0src/main-hard\0", 2);
	/* sed -i made two files of docs/l1 and docs/l2, as on a plain directory. */
	cr_assert_neq(ino_of(env.pkg, "docs/l1", &nl), ino_of(env.pkg, "docs/l2", &nl));
	s = h_read(env.pkg, "d/new3");
	cr_assert_str_eq(s, "one\n");
	free(s);
	free(after);
	cr_assert_eq(h_cjfs(&env, "undo", "1", NULL), 0, "%s", env.err);
	after = h_snapshot(env.pkg, true);
	cr_assert_str_eq(after, before, "undo did not give PKG back");
	assert_one_file(env.pkg, "docs/l1\0docs/l2\0", 2);
	assert_one_file(env.pkg, "docs/notes.txt\0", 1);
	free(before);
	free(shown);
	free(after);
}

/*
 * Directories that end up read-only for their owner still get their files:
 * commit gives them their mode after everything is in (as a user, who
 * cannot write into a 0555 directory, this is what makes it work).
 */
Test(transaction, commit_fills_directories_that_end_up_read_only)
{
	struct stat st;
	char *s;

	h_mount(&env);
	cr_assert_eq(h_sh(env.mnt, "mkdir -p newro/sub && printf 'x\\n' > newro/sub/x && "
				   "chmod 555 newro/sub newro && "
				   "printf 'a\\n' > docs/added.txt && chmod 555 docs"),
		     0);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	s = h_read(env.pkg, "newro/sub/x");
	cr_assert_str_eq(s, "x\n");
	free(s);
	s = h_read(env.pkg, "docs/added.txt");
	cr_assert_str_eq(s, "a\n");
	free(s);
	for (const char *d = "newro\0newro/sub\0docs\0"; *d; d += strlen(d) + 1) {
		char path[PATH_MAX];

		snprintf(path, sizeof(path), "%s/%s", env.pkg, d);
		cr_assert_eq(stat(path, &st), 0);
		cr_assert_eq(st.st_mode & 07777, 0555, "'%s' has mode %o", d, st.st_mode & 07777);
	}
	/* So that the teardown can remove PKG as a user too. */
	cr_assert_eq(h_sh(env.pkg, "chmod -R u+w ."), 0);
}
