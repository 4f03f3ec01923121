// SPDX-License-Identifier: MIT
/*
 * Kernel passthrough of file data (fs/passthrough.c): as root on Linux 6.9
 * and later, reads and writes of an open upper-layer file go from the kernel
 * straight to the upper object. Every handle of a file must see the same
 * data whichever mode the kernel put it in (passthrough, or cached through
 * the daemon), with passthrough on and off; PKG is never written; a commit
 * takes the data written either way; and with passthrough on, reading an
 * open upper file must not need the daemon at all.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	h_write(env.pkg, "a", "alpha\n");
	h_write(env.pkg, "b", "bravo\n");
}

static void teardown(void)
{
	unsetenv("CJFS_NO_PASSTHROUGH");
	h_teardown(&env);
}

TestSuite(passthrough, .init = setup, .fini = teardown, .timeout = 120);

#define CK(expr) cr_assert((expr) >= 0, "%s: %s", #expr, strerror(errno))

static void pread_is(int fd, const char *want, const char *what)
{
	char buf[256];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	cr_assert_geq(n, 0, "%s: pread: %s", what, strerror(errno));
	buf[n] = '\0';
	cr_assert_str_eq(buf, want, "%s", what);
}

/* Handles of one file in every combination the kernel treats differently. */
static void handles(const char *root)
{
	static char block[4096] __attribute__((aligned(4096)));
	int d = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ro, rw, ap, c;
	struct stat st;
	char *m;

	CK(d);
	/* Opened on PKG's file before the copy-up: sees what is written after it. */
	CK(ro = openat(d, "a", O_RDONLY | O_CLOEXEC));
	pread_is(ro, "alpha\n", "PKG's file");
	CK(rw = openat(d, "a", O_RDWR | O_CLOEXEC));
	cr_assert_eq(pwrite(rw, "ALP", 3, 0), 3);
	pread_is(ro, "ALPha\n", "a handle opened before the copy-up");
	close(rw);
	close(ro);
	/* A new handle: the data written, not pages the kernel kept from before. */
	CK(ro = openat(d, "a", O_RDONLY | O_CLOEXEC));
	pread_is(ro, "ALPha\n", "a handle opened after the writer closed");
	/* Handles open together, in different modes, share one file. */
	CK(ap = openat(d, "a", O_WRONLY | O_APPEND | O_CLOEXEC));
	cr_assert_eq(write(ap, "more\n", 5), 5);
	pread_is(ro, "ALPha\nmore\n", "a reader while another handle appends");
	CK(fstat(ro, &st));
	cr_assert_eq(st.st_size, 11);
	m = mmap(NULL, 11, PROT_READ, MAP_SHARED, ro, 0);
	cr_assert(m != MAP_FAILED, "mmap: %s", strerror(errno));
	CK(rw = openat(d, "a", O_RDWR | O_CLOEXEC));
	cr_assert_eq(pwrite(rw, "X", 1, 0), 1);
	cr_assert_eq(m[0], 'X', "a shared mapping misses a write made through another handle");
	cr_assert_eq(write(ap, "!", 1), 1, "append after a write at offset 0");
	pread_is(ro, "XLPha\nmore\n!", "appends go to the end whatever the other handles did");
	munmap(m, 11);
	close(rw);
	close(ap);
	close(ro);
	/* Truncated on open, read by another handle while the writer is open. */
	CK(rw = openat(d, "a", O_WRONLY | O_TRUNC | O_CLOEXEC));
	cr_assert_eq(write(rw, "t\n", 2), 2);
	CK(ro = openat(d, "a", O_RDONLY | O_CLOEXEC));
	pread_is(ro, "t\n", "a reader of a file truncated by open");
	close(ro);
	close(rw);
	/* Created write-only: not readable through that handle, shared with later ones. */
	CK(c = openat(d, "n", O_CREAT | O_EXCL | O_WRONLY | O_APPEND | O_CLOEXEC, 0644));
	cr_assert_eq(write(c, "1", 1), 1);
	cr_assert_eq(read(c, block, 1), -1, "a write-only handle could read");
	cr_assert_eq(errno, EBADF);
	CK(rw = openat(d, "n", O_RDWR | O_CLOEXEC));
	cr_assert_eq(pwrite(rw, "2", 1, 1), 1);
	cr_assert_eq(write(c, "3", 1), 1);
	pread_is(rw, "123", "two handles of a new file");
	CK(ftruncate(rw, 2));
	CK(fsync(rw));
	pread_is(rw, "12", "after ftruncate");
	close(c);
	close(rw);
	/* A read-only handle cannot write, whatever its backing file allows. */
	CK(ro = openat(d, "n", O_RDONLY | O_CLOEXEC));
	cr_assert_eq(write(ro, "x", 1), -1, "a read-only handle could write");
	cr_assert_eq(errno, EBADF);
	close(ro);
	/* O_SYNC and O_DIRECT handles write where the others read. */
	CK(c = openat(d, "s", O_CREAT | O_WRONLY | O_SYNC | O_CLOEXEC, 0644));
	cr_assert_eq(write(c, "sync\n", 5), 5);
	close(c);
	CK(ro = openat(d, "s", O_RDONLY | O_CLOEXEC));
	pread_is(ro, "sync\n", "a file written with O_SYNC");
	close(ro);
	memset(block, 'd', sizeof(block));
	block[sizeof(block) - 1] = '\0';
	c = openat(d, "dio", O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0644);
	if (c >= 0) {
		ssize_t n = pwrite(c, block, sizeof(block), 0);

		cr_assert(n == (ssize_t)sizeof(block) || (n < 0 && errno == EINVAL),
			  "O_DIRECT write: %zd %s", n, strerror(errno));
		close(c);
		if (n > 0) {
			CK(ro = openat(d, "dio", O_RDONLY | O_CLOEXEC));
			cr_assert_eq(pread(ro, block, sizeof(block), 0), (ssize_t)sizeof(block));
			cr_assert_eq(block[0], 'd');
			close(ro);
		}
		CK(unlinkat(d, "dio", 0));
	}
	close(d);
}

static void pkg_file_is(const char *rel, const char *want)
{
	char *got = h_read(env.pkg, rel);

	cr_assert_str_eq(got, want, "PKG's %s after commit", rel);
	free(got);
}

static void handles_then_commit(void)
{
	char *before = h_snapshot(env.pkg, true), *during;

	h_mount_fg(&env);
	handles(env.mnt);
	during = h_snapshot(env.pkg, true);
	cr_assert_str_eq(during, before, "PKG changed while the transaction was open");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "%s", env.err);
	free(during);
	pkg_file_is("a", "t\n");
	pkg_file_is("n", "12");
	pkg_file_is("s", "sync\n");
	free(before);
}

Test(passthrough, every_handle_sees_the_same_data_and_commit_takes_it)
{
	handles_then_commit();
}

Test(passthrough, the_same_without_passthrough)
{
	setenv("CJFS_NO_PASSTHROUGH", "1", 1);
	handles_then_commit();
}

/* Root on Linux 6.9 or later: the daemon can make backing files. */
static bool passthrough_possible(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (geteuid() != 0 || uname(&u) != 0 || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return false;
	return major > 6 || (major == 6 && minor >= 9);
}

Test(passthrough, reading_an_open_upper_file_needs_no_daemon)
{
	char path[PATH_MAX], want[8192];
	int status, fd;
	pid_t pid;

	if (!passthrough_possible())
		cr_skip_test("kernel passthrough needs root and Linux 6.9");
	h_mount_fg(&env);
	memset(want, 'p', sizeof(want));
	snprintf(path, sizeof(path), "%s/big", env.mnt);
	CK(fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	cr_assert_eq(write(fd, want, sizeof(want)), (ssize_t)sizeof(want));
	close(fd);
	CK(fd = open(path, O_RDONLY | O_CLOEXEC));
	/* With the daemon stopped, only a read the kernel serves itself can finish. */
	cr_assert_eq(kill(env.daemon, SIGSTOP), 0);
	pid = fork();
	if (pid == 0) {
		char got[sizeof(want)];

		alarm(10);
		_exit(pread(fd, got, sizeof(got), 0) == (ssize_t)sizeof(got) &&
				      !memcmp(got, want, sizeof(got))
			      ? 0
			      : 1);
	}
	cr_assert_geq(pid, 0);
	status = -1;
	(void)waitpid(pid, &status, 0);
	kill(env.daemon, SIGCONT);
	close(fd);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "reading an open upper file waited for the daemon (status %#x)", status);
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "%s", env.err);
}

/* The two lowest fd numbers free in process pid. */
static void lowest_free_fds(pid_t pid, int *f1, int *f2)
{
	char path[64];
	int n = 0;

	for (int fd = 0; n < 2 && fd < 65536; fd++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)pid, fd);
		if (access(path, F_OK) != 0)
			*(n++ ? f2 : f1) = fd;
	}
}

Test(passthrough, an_open_left_without_backing_file_reads_no_stale_pages)
{
	struct rlimit lim, low;
	int f1 = -1, f2 = -1, fd;
	char path[PATH_MAX];

	if (!passthrough_possible())
		cr_skip_test("kernel passthrough needs root and Linux 6.9");
	h_mount_fg(&env);
	snprintf(path, sizeof(path), "%s/b", env.mnt);
	/* The kernel caches PKG's data of b ... */
	CK(fd = open(path, O_RDONLY | O_CLOEXEC));
	pread_is(fd, "bravo\n", "PKG's b");
	close(fd);
	/* ... which a passthrough write then bypasses. */
	CK(fd = open(path, O_RDWR | O_CLOEXEC));
	cr_assert_eq(pwrite(fd, "BRAVO", 5, 0), 5);
	close(fd);
	/* The next open gets its own fd but no backing file: the daemon is out of fds. */
	lowest_free_fds(env.daemon, &f1, &f2);
	cr_assert_eq(prlimit(env.daemon, RLIMIT_NOFILE, NULL, &lim), 0);
	low = lim;
	low.rlim_cur = (rlim_t)f2;
	cr_assert_eq(prlimit(env.daemon, RLIMIT_NOFILE, &low, NULL), 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_eq(prlimit(env.daemon, RLIMIT_NOFILE, &lim, NULL), 0);
	CK(fd);
	pread_is(fd, "BRAVO\n", "a handle in cached mode after passthrough writes");
	close(fd);
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "%s", env.err);
}
