// SPDX-License-Identifier: MIT
/*
 * store/util.c: path validation, the growable buffer and string set, opening
 * below a directory without following symlinks or leaving the tree, and the
 * fault injection that the crash and ENOSPC tests rely on.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "unit.h"
#include "util.h"

static char root[PATH_MAX];
static int rootfd = -1;

static void setup(void)
{
	u_tmpdir(root);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(rootfd >= 0);
}

static void teardown(void)
{
	util_fault_arm(0, 0);
	if (rootfd >= 0)
		close(rootfd);
	u_rmtree(root);
}

/* ---- util_path_is_safe ---- */

TestSuite(util_path, .init = setup, .fini = teardown);

Test(util_path, rejects_empty_absolute_dot_dotdot_and_empty_components)
{
	static const char *const bad[] = {
		"",	"/abs", "/",   "a/../b", "a//b",  "a/",	 ".",	 "..",
		"../a", "a/..", "a/.", "./a",	 "a/./b", "//a", "a/b/",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert_not(util_path_is_safe(bad[i]), "path '%s' was accepted", bad[i]);
	cr_assert_not(util_path_is_safe(NULL));
}

Test(util_path, accepts_normal_relative_paths)
{
	static const char *const good[] = {
		"a",   "a/b/c.txt", ".hidden",		"a/.b",	      "...", "a..b",
		"..a", "a.",	    "name with spaces", ".cjfs~wh.x",
	};

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		cr_assert(util_path_is_safe(good[i]), "path '%s' was refused", good[i]);
}

Test(util_path, rejects_overlong_components_and_paths)
{
	char name[NAME_MAX + 2];
	char *path = malloc(PATH_MAX + 1);

	cr_assert_not_null(path);
	memset(name, 'n', NAME_MAX);
	name[NAME_MAX] = '\0';
	cr_assert(util_path_is_safe(name), "a NAME_MAX component was refused");
	name[NAME_MAX] = 'n';
	name[NAME_MAX + 1] = '\0';
	cr_assert_not(util_path_is_safe(name), "a component longer than NAME_MAX was accepted");

	/* "a/a/a/..." of exactly PATH_MAX bytes: one too many for a C string of PATH_MAX. */
	for (size_t i = 0; i < PATH_MAX; i++)
		path[i] = i % 2 ? '/' : 'a';
	path[PATH_MAX] = '\0';
	path[PATH_MAX - 1] = 'a';
	cr_assert_not(util_path_is_safe(path), "a path of PATH_MAX bytes was accepted");
	path[PATH_MAX - 1] = '\0';
	cr_assert(util_path_is_safe(path), "a path of PATH_MAX - 1 bytes was refused");
	free(path);
}

Test(util_path, splits_basename_and_parent)
{
	cr_assert_str_eq(util_path_basename("a/b/c.txt"), "c.txt");
	cr_assert_str_eq(util_path_basename("top"), "top");
	cr_assert(eq(sz, util_path_dirlen("a/b/c.txt"), 3));
	cr_assert(eq(sz, util_path_dirlen("top"), 0));
}

/* ---- strbuf ---- */

TestSuite(util_strbuf, .init = setup, .fini = teardown);

Test(util_strbuf, appends_and_stays_nul_terminated_while_growing)
{
	struct strbuf sb = STRBUF_INIT;
	char expect[16];

	cr_assert(eq(int, strbuf_adds(&sb, "abc"), 0));
	cr_assert(eq(int, strbuf_add(&sb, "de\0f", 4), 0));
	cr_assert(eq(sz, sb.len, 7));
	cr_assert(eq(int, memcmp(sb.buf, "abcde\0f", 8), 0), "bytes or terminator wrong");
	strbuf_reset(&sb);
	cr_assert(eq(sz, sb.len, 0));
	cr_assert_str_eq(sb.buf, "");

	/* Far past the first allocation: every byte must survive the reallocations. */
	for (int i = 0; i < 10000; i++)
		cr_assert(eq(int, strbuf_addf(&sb, "%04d,", i), 0));
	cr_assert(eq(sz, sb.len, 50000));
	cr_assert(eq(chr, sb.buf[sb.len], '\0'));
	cr_assert(sb.alloc > sb.len);
	for (int i = 0; i < 10000; i += 997) {
		snprintf(expect, sizeof(expect), "%04d,", i);
		cr_assert(eq(int, memcmp(sb.buf + i * 5, expect, 5), 0), "entry %d corrupt", i);
	}
	strbuf_release(&sb);
	cr_assert_null(sb.buf);
	cr_assert(eq(sz, sb.len, 0));
}

Test(util_strbuf, detach_hands_over_the_buffer_and_empties_it)
{
	struct strbuf sb = STRBUF_INIT;
	char *s = strbuf_detach(&sb);

	/* An empty strbuf still detaches a real, empty string. */
	cr_assert_not_null(s);
	cr_assert_str_eq(s, "");
	free(s);
	cr_assert(eq(int, strbuf_addf(&sb, "%s-%d", "x", 42), 0));
	s = strbuf_detach(&sb);
	cr_assert_str_eq(s, "x-42");
	cr_assert_null(sb.buf);
	cr_assert(eq(sz, sb.len, 0));
	cr_assert(eq(sz, sb.alloc, 0));
	free(s);
}

Test(util_strbuf, read_fd_appends_a_whole_file)
{
	struct strbuf sb = STRBUF_INIT;
	size_t n = 300000;
	char *data = malloc(n);
	int fd;

	cr_assert_not_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = (char)('a' + i % 26);
	u_write_n(rootfd, "big", data, n, 0644);
	fd = openat(rootfd, "big", O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert(eq(int, strbuf_adds(&sb, "head:"), 0));
	cr_assert(eq(int, strbuf_read_fd(&sb, fd, 0), 0));
	close(fd);
	cr_assert(eq(sz, sb.len, n + 5));
	cr_assert(eq(int, memcmp(sb.buf, "head:", 5), 0));
	cr_assert(eq(int, memcmp(sb.buf + 5, data, n), 0));
	cr_assert(eq(chr, sb.buf[sb.len], '\0'));
	strbuf_release(&sb);
	free(data);
}

Test(util_strbuf, read_fd_limit_accepts_exactly_limit_bytes_and_refuses_more)
{
	struct strbuf sb = STRBUF_INIT;
	int fd;

	u_write(rootfd, "ten", "0123456789", 0644);
	fd = openat(rootfd, "ten", O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert(eq(int, strbuf_read_fd(&sb, fd, 10), 0), "exactly the limit was refused");
	cr_assert_str_eq(sb.buf, "0123456789");
	strbuf_reset(&sb);
	cr_assert(eq(int, (int)lseek(fd, 0, SEEK_SET), 0));
	cr_assert(eq(int, strbuf_read_fd(&sb, fd, 9), -EFBIG), "a file over the limit was read");
	close(fd);
	strbuf_release(&sb);
}

/* ---- strset ---- */

TestSuite(util_strset, .init = setup, .fini = teardown);

Test(util_strset, adds_each_string_once_and_finds_it)
{
	struct strset set = STRSET_INIT;

	cr_assert_not(strset_has(&set, "a"), "an empty set claims a member");
	cr_assert(eq(int, strset_add(&set, "a/b"), 1));
	cr_assert(eq(int, strset_add(&set, "a/b"), 0), "a duplicate was added");
	cr_assert(eq(int, strset_add(&set, "a"), 1));
	cr_assert(eq(sz, set.n, 2));
	cr_assert(strset_has(&set, "a/b"));
	cr_assert(strset_has(&set, "a"));
	cr_assert_not(strset_has(&set, "b"));
	cr_assert_not(strset_has(&set, "a/"));
	strset_release(&set);
	cr_assert(eq(sz, set.n, 0));
	cr_assert_not(strset_has(&set, "a"));
}

Test(util_strset, keeps_every_member_across_growth)
{
	struct strset set = STRSET_INIT;
	char s[32];

	for (int i = 0; i < 5000; i++) {
		snprintf(s, sizeof(s), "dir/file-%d", i);
		cr_assert(eq(int, strset_add(&set, s), 1), "string '%s' not added", s);
	}
	cr_assert(eq(sz, set.n, 5000));
	for (int i = 0; i < 5000; i++) {
		snprintf(s, sizeof(s), "dir/file-%d", i);
		cr_assert(strset_has(&set, s), "string '%s' lost after growth", s);
		cr_assert(eq(int, strset_add(&set, s), 0));
	}
	cr_assert_not(strset_has(&set, "dir/file-5000"));
	strset_release(&set);
}

/* ---- util_open_beneath ---- */

TestSuite(util_open, .init = setup, .fini = teardown);

Test(util_open, opens_a_nested_file_below_the_directory)
{
	char buf[8] = { 0 };
	int fd;

	u_mkdir(rootfd, "d", 0755);
	u_mkdir(rootfd, "d/e", 0755);
	u_write(rootfd, "d/e/f", "hello", 0644);
	fd = util_open_beneath(rootfd, "d/e/f", O_RDONLY, 0);
	cr_assert(fd >= 0, "open failed: %s", strerror(-fd));
	cr_assert(eq(int, (int)read(fd, buf, sizeof(buf) - 1), 5));
	cr_assert_str_eq(buf, "hello");
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "O_CLOEXEC missing");
	close(fd);
	cr_assert(eq(int, util_open_beneath(rootfd, "d/e/missing", O_RDONLY, 0), -ENOENT));
}

static time_t atime_after_read(const char *name, bool quietly)
{
	struct timespec tv[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	struct stat st;
	char buf[8];
	int fd;

	cr_assert_eq(utimensat(rootfd, name, tv, 0), 0);
	fd = quietly ? util_openat_noatime(rootfd, name, O_RDONLY)
		     : util_openat(rootfd, name, O_RDONLY, 0);
	cr_assert(fd >= 0, "open failed: %s", strerror(-fd));
	cr_assert(eq(int, (int)read(fd, buf, sizeof(buf)), 5));
	close(fd);
	cr_assert_eq(fstatat(rootfd, name, &st, 0), 0);
	return st.st_atim.tv_sec;
}

/* cjfs reads PKG's files for itself (originals, copy-up): no access time changes. */
Test(util_open, noatime_opens_read_without_changing_the_access_time)
{
	pid_t pid;
	int status;
	bool ok;

	u_write(rootfd, "f", "hello", 0644);
	if (atime_after_read("f", false) == 1000000000)
		cr_skip_test("this file system does not update access times");
	cr_assert_eq(atime_after_read("f", true), 1000000000, "reading changed the access time");
	/* Someone else's file: O_NOATIME is refused (EPERM), a plain open is not. */
	if (geteuid() != 0)
		return;
	cr_assert_eq(fchmod(rootfd, 0755), 0);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		if (setuid(65534) < 0)
			_exit(2);
		_exit(util_openat_noatime(rootfd, "f", O_RDONLY) >= 0 ? 0 : 1);
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	cr_assert(ok, "another user's noatime open failed (status %d)", status);
}

Test(util_open, refuses_a_symlink_in_the_middle_of_the_path)
{
	int fd;

	u_mkdir(rootfd, "real", 0755);
	u_write(rootfd, "real/f", "x", 0644);
	/* Even a link that stays inside the tree: the path is not a path in this tree. */
	u_symlink(rootfd, "real", "link");
	fd = util_open_beneath(rootfd, "link/f", O_RDONLY, 0);
	cr_assert(fd < 0, "followed a symlink component");
	cr_assert(fd == -ELOOP || fd == -ENOTDIR, "unexpected error %d", fd);
}

Test(util_open, refuses_a_symlink_as_last_component_even_when_creating)
{
	int fd, tfd;
	char *c;

	u_mkdir(rootfd, "tree", 0755);
	u_mkdir(rootfd, "outside", 0755);
	tfd = openat(rootfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(tfd >= 0);
	u_symlink(tfd, "../outside/victim", "evil");
	fd = util_open_beneath(tfd, "evil", O_WRONLY | O_CREAT | O_TRUNC, 0644);
	cr_assert(fd < 0, "wrote through a symlink");
	cr_assert_not(u_exists(rootfd, "outside/victim"), "created the link's target");
	u_write(rootfd, "outside/victim", "keep", 0644);
	fd = util_open_beneath(tfd, "evil", O_WRONLY | O_TRUNC, 0);
	cr_assert(fd < 0, "truncated through a symlink");
	c = u_read(rootfd, "outside/victim", NULL);
	cr_assert_str_eq(c, "keep");
	free(c);
	close(tfd);
}

Test(util_open, refuses_dotdot_that_leaves_the_tree)
{
	int tfd;

	u_mkdir(rootfd, "tree", 0755);
	u_mkdir(rootfd, "tree/sub", 0755);
	u_write(rootfd, "secret", "s", 0600);
	tfd = openat(rootfd, "tree", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(tfd >= 0);
	cr_assert(eq(int, util_open_beneath(tfd, "../secret", O_RDONLY, 0), -EXDEV));
	cr_assert(eq(int, util_open_beneath(tfd, "sub/../../secret", O_RDONLY, 0), -EXDEV));
	cr_assert(util_open_beneath(tfd, "/etc/passwd", O_RDONLY, 0) < 0,
		  "opened an absolute path");
	close(tfd);
}

Test(util_open, open_parent_returns_the_directory_and_the_last_name)
{
	const char *base = NULL;
	struct stat a, b;
	int pfd;

	u_mkdir(rootfd, "p", 0755);
	u_mkdir(rootfd, "p/q", 0755);
	pfd = util_open_parent(rootfd, "p/q/name.txt", &base);
	cr_assert(pfd >= 0, "%s", strerror(-pfd));
	cr_assert_str_eq(base, "name.txt");
	cr_assert(eq(int, fstat(pfd, &a), 0));
	cr_assert(eq(int, fstatat(rootfd, "p/q", &b, 0), 0));
	cr_assert(a.st_ino == b.st_ino && a.st_dev == b.st_dev, "not the parent directory");
	close(pfd);
	u_symlink(rootfd, "p", "lp");
	cr_assert(eq(int, util_open_parent(rootfd, "lp/q/x", &base), -ENOTDIR));
}

TestSuite(util_tree, .init = setup, .fini = teardown);

Test(util_tree, rm_rf_removes_a_tree_without_following_symlinks)
{
	int outfd = u_mkdir_open(root, "outside", NULL);

	u_write(outfd, "keep", "keep\n", 0644);
	close(outfd);
	u_mkdir(rootfd, "t", 0755);
	u_mkdir(rootfd, "t/a", 0755);
	u_mkdir(rootfd, "t/a/b", 0700);
	u_write(rootfd, "t/a/b/f", "f", 0400);
	u_symlink(rootfd, "../outside", "t/a/out");
	u_symlink(rootfd, "../../outside/keep", "t/a/b/file-link");
	cr_assert(eq(int, util_rm_rf_at(rootfd, "t"), 0));
	cr_assert_not(u_exists(rootfd, "t"));
	cr_assert(u_is_reg(rootfd, "outside/keep"), "followed a symlink out of the tree");
	cr_assert(eq(int, util_rm_rf_at(rootfd, "t"), 0), "a missing tree is not success");
	cr_assert(eq(int, util_rm_rf_at(rootfd, "outside/keep"), 0));
	cr_assert_not(u_exists(rootfd, "outside/keep"));
}

TestSuite(util_parse, .init = setup, .fini = teardown);

Test(util_parse, decimal_ids_strictly)
{
	static const char *const bad[] = { "", "12x", "x12", " ", "9223372036854775808", "1 " };
	int64_t v = 0;

	cr_assert(eq(int, util_parse_i64("42", &v), 0));
	cr_assert(eq(i64, v, 42));
	cr_assert(eq(int, util_parse_i64("-7", &v), 0));
	cr_assert(eq(i64, v, -7));
	cr_assert(eq(int, util_parse_i64("9223372036854775807", &v), 0));
	cr_assert(eq(i64, v, INT64_MAX));
	v = 5;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_assert(eq(int, util_parse_i64(bad[i], &v), -EINVAL), "input '%s'", bad[i]);
	cr_assert(eq(int, util_parse_i64(NULL, &v), -EINVAL));
	cr_assert(eq(i64, v, 5), "written on failure");
}

/* ---- fault injection ---- */

TestSuite(util_fault, .init = setup, .fini = teardown);

Test(util_fault, fails_exactly_the_nth_durable_call_with_the_chosen_errno)
{
	util_fault_arm(3, ENOSPC);
	cr_assert(eq(int, util_mkdirat(rootfd, "a", 0755), 0));
	cr_assert(eq(int, util_mkdirat(rootfd, "b", 0755), 0));
	cr_assert(eq(int, util_mkdirat(rootfd, "c", 0755), -ENOSPC));
	cr_assert(eq(int, util_mkdirat(rootfd, "d", 0755), 0));
	cr_assert(eq(long, util_fault_calls(), 4));
	cr_assert(u_is_dir(rootfd, "b"));
	cr_assert_not(u_exists(rootfd, "c"), "the failed call still happened");
	cr_assert(u_is_dir(rootfd, "d"));
}

Test(util_fault, counts_every_durable_primitive_and_not_plain_reads)
{
	char *c;
	int fd;

	util_fault_arm(1000, EIO);
	fd = util_openat(rootfd, "f", O_WRONLY | O_CREAT, 0644); /* 1 */
	cr_assert(fd >= 0);
	cr_assert(eq(int, util_write_full(fd, "abc", 3), 0));	/* 2 */
	cr_assert(eq(int, util_pwrite_full(fd, "z", 1, 0), 0)); /* 3 */
	cr_assert(eq(int, util_ftruncate(fd, 2), 0));		/* 4 */
	cr_assert(eq(int, util_fsync(fd), 0));			/* 5 */
	cr_assert(eq(int, util_syncfs(fd), 0));			/* 6 */
	close(fd);
	cr_assert(eq(int, util_renameat(rootfd, "f", rootfd, "g"), 0)); /* 7 */
	cr_assert(eq(int, util_symlinkat("g", rootfd, "l"), 0));	/* 8 */
	cr_assert(eq(int, util_unlinkat(rootfd, "l", 0), 0));		/* 9 */
	cr_assert(eq(int, util_mkdirat(rootfd, "d", 0755), 0));		/* 10 */
	cr_assert(eq(long, util_fault_calls(), 10));
	/* Opening for reading changes nothing durable: not counted. */
	fd = util_openat(rootfd, "g", O_RDONLY, 0);
	cr_assert(fd >= 0);
	close(fd);
	cr_assert(eq(long, util_fault_calls(), 10));
	c = u_read(rootfd, "g", NULL);
	cr_assert_str_eq(c, "zb");
	free(c);
}

Test(util_fault, each_primitive_reports_the_injected_errno)
{
	int fd = openat(rootfd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	struct stat st;

	cr_assert(fd >= 0);
	util_fault_arm(1, EIO);
	cr_assert(eq(int, util_write_full(fd, "abc", 3), -EIO));
	util_fault_arm(1, EDQUOT);
	cr_assert(eq(int, util_fsync(fd), -EDQUOT));
	util_fault_arm(1, ENOSPC);
	cr_assert(eq(int, util_openat(rootfd, "new", O_WRONLY | O_CREAT, 0644), -ENOSPC));
	cr_assert_not(u_exists(rootfd, "new"));
	util_fault_arm(1, EROFS);
	cr_assert(eq(int, util_renameat(rootfd, "f", rootfd, "g"), -EROFS));
	cr_assert(u_is_reg(rootfd, "f"), "the failed rename still moved the file");
	util_fault_arm(0, 0);
	cr_assert(eq(int, util_fsync(fd), 0));
	close(fd);
	cr_assert(eq(int, fstatat(rootfd, "f", &st, 0), 0));
	cr_assert(eq(int, (int)st.st_size, 0), "the failed write still wrote");
}

Test(util_fault, disarmed_injection_fails_nothing)
{
	util_fault_arm(1, EIO);
	util_fault_arm(0, 0);
	for (int i = 0; i < 5; i++) {
		char name[8];

		snprintf(name, sizeof(name), "d%d", i);
		cr_assert(eq(int, util_mkdirat(rootfd, name, 0755), 0));
	}
}

Test(util_fault, crash_mode_kills_the_process_at_the_nth_call)
{
	int status = 0;
	bool killed;
	pid_t pid = fork();

	cr_assert(pid >= 0);
	if (pid == 0) {
		util_fault_arm(2, 0);
		if (util_mkdirat(rootfd, "first", 0755) == 0)
			(void)util_mkdirat(rootfd, "second", 0755);
		_exit(0); /* reached only if the crash point did not kill us */
	}
	cr_assert(eq(int, (int)waitpid(pid, &status, 0), (int)pid));
	killed = WIFSIGNALED(status);
	cr_assert(killed, "survived the crash point (status %#x)", status);
	cr_assert(eq(int, WTERMSIG(status), SIGKILL));
	/* The crash happens before the call: the first went through, the second never did. */
	cr_assert(u_is_dir(rootfd, "first"));
	cr_assert_not(u_exists(rootfd, "second"));
}

Test(util_fault, arms_from_the_environment)
{
	static const char *const bad[] = { "x:EIO", "2:EWHAT", "2", "0:EIO", "-1:EIO", "2EIO" };

	cr_assert(eq(int, setenv("CJFS_FAULT", "2:EIO", 1), 0));
	cr_assert(eq(int, util_fault_from_env(), 0));
	cr_assert(eq(int, util_mkdirat(rootfd, "a", 0755), 0));
	cr_assert(eq(int, util_mkdirat(rootfd, "b", 0755), -EIO));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cr_assert(eq(int, setenv("CJFS_FAULT", bad[i], 1), 0));
		cr_assert(eq(int, util_fault_from_env(), -EINVAL), "CJFS_FAULT='%s' accepted",
			  bad[i]);
	}
	cr_assert(eq(int, unsetenv("CJFS_FAULT"), 0));
	cr_assert(eq(int, util_fault_from_env(), 0));
}
