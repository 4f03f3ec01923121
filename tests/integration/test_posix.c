// SPDX-License-Identifier: MIT
/*
 * POSIX behaviour: each scenario runs on a plain directory and on a cjfs
 * mount of a copy of it, with the same assertions (see posix.h); the trees
 * must then be identical, and PKG after commit equal to the plain one.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "posix.h"

#define PTEST(suite, name) Test(suite, name, .init = p_setup, .fini = p_teardown, .timeout = 120)

/* ---- rename ---- */

static void sc_rename_files(struct pt *t)
{
	struct stat a = LSTAT(t, "a"), st;

	/* Lower file to a new name, and back. */
	OK(t, renameat(t->fd, "a", t->fd, "a2"));
	ERR(t, fstatat(t->fd, "a", &st, 0), ENOENT);
	st = LSTAT(t, "a2");
	EXPECT(t, st.st_ino == a.st_ino, "st_ino changed by rename");
	EXPECT_CONTENT(t, "a2", "alpha\n");
	OK(t, renameat(t->fd, "a2", t->fd, "a"));
	EXPECT_CONTENT(t, "a", "alpha\n");
	/* Lower over lower: the target's old inode must not be served for the name. */
	OK(t, renameat(t->fd, "b", t->fd, "d/f"));
	st = LSTAT(t, "d/f");
	EXPECT(t, st.st_size == 6, "size %lld after rename-over", (long long)st.st_size);
	EXPECT_CONTENT(t, "d/f", "bravo\n");
	ERR(t, fstatat(t->fd, "b", &st, 0), ENOENT);
	/* Upper over lower, across directories. */
	p_put(t, "new", "new\n");
	OK(t, renameat(t->fd, "new", t->fd, "d/g"));
	EXPECT_CONTENT(t, "d/g", "new\n");
	/* Lower over upper. */
	p_put(t, "up", "up\n");
	OK(t, renameat(t->fd, "x.sh", t->fd, "up"));
	st = LSTAT(t, "up");
	EXPECT(t, (st.st_mode & 07777) == 0755, "mode %o", st.st_mode & 07777);
	/* Into a directory that exists only below, and out of one. */
	OK(t, renameat(t->fd, "d/sub/s", t->fd, "e/s"));
	OK(t, renameat(t->fd, "up", t->fd, "d/sub/deep/up"));
	EXPECT_CONTENT(t, "e/s", "sierra\n");
	/* A name renamed onto itself, and a missing source. */
	OK(t, renameat(t->fd, "a", t->fd, "a"));
	ERR(t, renameat(t->fd, "missing", t->fd, "m2"), ENOENT);
	ERR(t, renameat(t->fd, "a", t->fd, "missing/x"), ENOENT);
	ERR(t, renameat(t->fd, "a", t->fd, "ro/x"), ENOTDIR);
	/* Symlinks move as links. */
	OK(t, renameat(t->fd, "dl", t->fd, "d/dl"));
	st = LSTAT(t, "d/dl");
	EXPECT(t, S_ISLNK(st.st_mode), "not a symlink");
}

PTEST(posix_rename, files_lower_and_upper_over_targets_and_across_directories)
{
	p_both(sc_rename_files, 0);
}

static void sc_rename_dirs(struct pt *t)
{
	struct stat st;
	char *l;

	/* A directory that exists only below, with content at several depths. */
	OK(t, renameat(t->fd, "d", t->fd, "d2"));
	ERR(t, fstatat(t->fd, "d", &st, 0), ENOENT);
	EXPECT_CONTENT(t, "d2/sub/deep/t", "tango\n");
	l = p_list(t, "d2");
	EXPECT(t, !strcmp(l, "f\ng\nhl2\nsub\n"), "d2 lists '%s'", l);
	free(l);
	/* Change inside the moved directory; a new directory where it was. */
	p_put(t, "d2/sub/new", "n\n");
	OK(t, unlinkat(t->fd, "d2/g", 0));
	OK(t, mkdirat(t->fd, "d", 0755));
	l = p_list(t, "d");
	EXPECT(t, !strcmp(l, ""), "the new d shows '%s'", l);
	free(l);
	p_put(t, "d/f", "other f\n");
	EXPECT_CONTENT(t, "d2/f", "foxtrot\n");
	/* Move it again, deeper, and a subdirectory out of it. */
	OK(t, renameat(t->fd, "d2", t->fd, "e/d3"));
	OK(t, renameat(t->fd, "e/d3/sub", t->fd, "sub2"));
	EXPECT_CONTENT(t, "sub2/deep/t", "tango\n");
	EXPECT_CONTENT(t, "sub2/new", "n\n");
	/* Over an empty directory, and refused over a non-empty one. */
	OK(t, mkdirat(t->fd, "empty", 0700));
	OK(t, renameat(t->fd, "sub2", t->fd, "empty"));
	st = LSTAT(t, "empty");
	EXPECT(t, (st.st_mode & 07777) == 0755, "mode %o", st.st_mode & 07777);
	ERR(t, renameat(t->fd, "empty", t->fd, "e"), ENOTEMPTY);
	ERR(t, renameat(t->fd, "empty", t->fd, "a"), ENOTDIR);
	ERR(t, renameat(t->fd, "a", t->fd, "empty"), EISDIR);
	ERR(t, renameat(t->fd, "empty", t->fd, "empty/deep/x"), EINVAL);
	/* A lower directory over a lower empty directory. */
	OK(t, unlinkat(t->fd, "t/rootfile", 0));
	OK(t, renameat(t->fd, "priv", t->fd, "t"));
	EXPECT_CONTENT(t, "t/secret", "secret\n");
	st = LSTAT(t, "t");
	EXPECT(t, (st.st_mode & 07777) == 0700, "mode %o", st.st_mode & 07777);
	/* Rename back and forth leaves what was there. */
	OK(t, renameat(t->fd, "t", t->fd, "priv"));
	OK(t, renameat(t->fd, "priv", t->fd, "t"));
	OK(t, renameat(t->fd, "t", t->fd, "priv"));
	EXPECT_CONTENT(t, "priv/secret", "secret\n");
}

PTEST(posix_rename, directories_below_and_above_and_commit_promotes_them)
{
	p_both(sc_rename_dirs, 0);
}

static void sc_rename_flags(struct pt *t)
{
	struct stat a, b, st;
	char *l;

	/* RENAME_NOREPLACE */
	ERR(t, renameat2(t->fd, "a", t->fd, "b", RENAME_NOREPLACE), EEXIST);
	ERR(t, renameat2(t->fd, "a", t->fd, "e", RENAME_NOREPLACE), EEXIST);
	OK(t, renameat2(t->fd, "a", t->fd, "a3", RENAME_NOREPLACE));
	EXPECT_CONTENT(t, "a3", "alpha\n");
	/* RENAME_EXCHANGE: two lower files, a lower and an upper one, file and directory. */
	a = LSTAT(t, "a3");
	b = LSTAT(t, "b");
	OK(t, renameat2(t->fd, "a3", t->fd, "b", RENAME_EXCHANGE));
	EXPECT_CONTENT(t, "a3", "bravo\n");
	EXPECT_CONTENT(t, "b", "alpha\n");
	st = LSTAT(t, "b");
	EXPECT(t, st.st_ino == a.st_ino, "exchange did not move the inode");
	st = LSTAT(t, "a3");
	EXPECT(t, st.st_ino == b.st_ino, "exchange did not move the inode");
	p_put(t, "u", "upper\n");
	OK(t, renameat2(t->fd, "u", t->fd, "d/f", RENAME_EXCHANGE));
	EXPECT_CONTENT(t, "u", "foxtrot\n");
	EXPECT_CONTENT(t, "d/f", "upper\n");
	OK(t, renameat2(t->fd, "d", t->fd, "e", RENAME_EXCHANGE));
	l = p_list(t, "e");
	EXPECT(t, !strcmp(l, "f\ng\nhl2\nsub\n"), "e lists '%s'", l);
	free(l);
	l = p_list(t, "d");
	EXPECT(t, !strcmp(l, ""), "d lists '%s'", l);
	free(l);
	OK(t, renameat2(t->fd, "e/sub", t->fd, "x.sh", RENAME_EXCHANGE));
	EXPECT_CONTENT(t, "x.sh/deep/t", "tango\n");
	EXPECT_CONTENT(t, "e/sub", "#!/bin/sh\necho x\n");
	ERR(t, renameat2(t->fd, "a3", t->fd, "missing", RENAME_EXCHANGE), ENOENT);
	ERR(t, renameat2(t->fd, "a3", t->fd, "b", RENAME_EXCHANGE | RENAME_NOREPLACE), EINVAL);
	/* Exchanging a directory into its own subtree. */
	ERR(t, renameat2(t->fd, "x.sh", t->fd, "x.sh/deep", RENAME_EXCHANGE), EINVAL);
}

PTEST(posix_rename, noreplace_and_exchange)
{
	p_both(sc_rename_flags, 0);
}

static void sc_rename_open(struct pt *t)
{
	char buf[64];
	struct stat st;
	int fa, fb;

	/* Open both, rename one over the other: the handles keep their files. */
	fa = (int)OK(t, openat(t->fd, "a", O_RDWR | O_CLOEXEC));
	fb = (int)OK(t, openat(t->fd, "b", O_RDONLY | O_CLOEXEC));
	OK(t, renameat(t->fd, "a", t->fd, "b"));
	OK(t, fstat(fb, &st));
	EXPECT(t, st.st_nlink == 0, "the replaced file has nlink %lu", (unsigned long)st.st_nlink);
	memset(buf, 0, sizeof(buf));
	OK(t, pread(fb, buf, sizeof(buf), 0));
	EXPECT(t, !strcmp(buf, "bravo\n"), "replaced file reads '%s'", buf);
	OK(t, pwrite(fa, "ALPHA", 5, 0));
	EXPECT_CONTENT(t, "b", "ALPHA\n");
	OK(t, fstat(fa, &st));
	EXPECT(t, st.st_nlink == 1, "nlink %lu", (unsigned long)st.st_nlink);
	close(fa);
	close(fb);
	/* Hard links of one file: rename of one onto the other does nothing. */
	OK(t, linkat(t->fd, "b", t->fd, "b2", 0));
	OK(t, renameat(t->fd, "b", t->fd, "b2"));
	EXPECT_CONTENT(t, "b", "ALPHA\n");
	EXPECT_CONTENT(t, "b2", "ALPHA\n");
}

PTEST(posix_rename, open_files_keep_their_data_and_no_stale_attributes)
{
	p_both(sc_rename_open, 0);
}

/* ---- links ---- */

static void sc_links(struct pt *t)
{
	struct stat st, st2;
	int fd;

	OK(t, linkat(t->fd, "a", t->fd, "d/a-link", 0));
	st = LSTAT(t, "a");
	EXPECT(t, st.st_nlink == 2, "nlink %lu after link", (unsigned long)st.st_nlink);
	st2 = LSTAT(t, "d/a-link");
	EXPECT(t, st2.st_ino == st.st_ino, "the two names are different inodes");
	/* Writes through either name are seen through the other. */
	fd = (int)OK(t, openat(t->fd, "d/a-link", O_WRONLY | O_APPEND | O_CLOEXEC));
	OK(t, write(fd, "more\n", 5));
	close(fd);
	EXPECT_CONTENT(t, "a", "alpha\nmore\n");
	p_put(t, "a", "rewritten\n");
	EXPECT_CONTENT(t, "d/a-link", "rewritten\n");
	OK(t, fchmodat(t->fd, "a", 0600, 0));
	st2 = LSTAT(t, "d/a-link");
	EXPECT(t, (st2.st_mode & 07777) == 0600, "mode %o", st2.st_mode & 07777);
	/* A third name, then remove two. */
	OK(t, linkat(t->fd, "d/a-link", t->fd, "e/third", 0));
	st = LSTAT(t, "e/third");
	EXPECT(t, st.st_nlink == 3, "nlink %lu", (unsigned long)st.st_nlink);
	OK(t, unlinkat(t->fd, "a", 0));
	OK(t, unlinkat(t->fd, "d/a-link", 0));
	st = LSTAT(t, "e/third");
	EXPECT(t, st.st_nlink == 1, "nlink %lu", (unsigned long)st.st_nlink);
	EXPECT_CONTENT(t, "e/third", "rewritten\n");
	fd = (int)OK(t, openat(t->fd, "e/third", O_RDWR | O_NOFOLLOW | O_CLOEXEC));
	close(fd);
	/* Links to a new file, to a symlink; refused for directories and existing names. */
	p_put(t, "n", "n\n");
	OK(t, linkat(t->fd, "n", t->fd, "n2", 0));
	OK(t, linkat(t->fd, "sl", t->fd, "sl2", 0));
	st = LSTAT(t, "sl2");
	EXPECT(t, S_ISLNK(st.st_mode), "the link of a symlink is not a symlink");
	ERR(t, linkat(t->fd, "d", t->fd, "d-link", 0), EPERM);
	ERR(t, linkat(t->fd, "n", t->fd, "b", 0), EEXIST);
	ERR(t, linkat(t->fd, "missing", t->fd, "m", 0), ENOENT);
}

PTEST(posix_link, counts_and_writes_through_every_name)
{
	p_both(sc_links, 0);
}

static void sc_lower_links(struct pt *t)
{
	struct stat a = LSTAT(t, "hl1"), b = LSTAT(t, "d/hl2");

	/*
	 * Hard links that exist in PKG: one file while untouched. (Writing
	 * through one name parts them in cjfs, as in kernel overlayfs without
	 * index=on: see docs/semantics.md.)
	 */
	EXPECT(t, a.st_nlink == 2 && b.st_nlink == 2 && a.st_ino == b.st_ino, "nlink %lu/%lu",
	       (unsigned long)a.st_nlink, (unsigned long)b.st_nlink);
	EXPECT_CONTENT(t, "d/hl2", "linked\n");
	OK(t, renameat(t->fd, "hl1", t->fd, "d/hl2"));
	EXPECT_CONTENT(t, "hl1", "linked\n");
	EXPECT_CONTENT(t, "d/hl2", "linked\n");
	OK(t, renameat(t->fd, "hl1", t->fd, "hl3"));
	b = LSTAT(t, "hl3");
	EXPECT(t, b.st_ino == a.st_ino, "rename changed st_ino");
	OK(t, unlinkat(t->fd, "hl3", 0));
	EXPECT_CONTENT(t, "d/hl2", "linked\n");
}

PTEST(posix_link, links_that_exist_below)
{
	p_both(sc_lower_links, 0);
}

/* ---- symlinks ---- */

static void sc_symlinks(struct pt *t)
{
	char buf[PATH_MAX];
	struct stat st;
	ssize_t n;

	/* Relative, into a directory, dangling, absolute. */
	EXPECT_CONTENT(t, "sl", "alpha\n");
	EXPECT_CONTENT(t, "dsl/f", "foxtrot\n");
	ERR(t, openat(t->fd, "dl", O_RDONLY), ENOENT);
	n = OK(t, readlinkat(t->fd, "abs", buf, sizeof(buf)));
	EXPECT(t, n == 16 && !memcmp(buf, "/nonexistent/abs", 16), "abs -> %.*s", (int)n, buf);
	/* Creating through a dangling symlink creates its target. */
	p_put(t, "dl", "made\n");
	EXPECT_CONTENT(t, "nowhere", "made\n");
	/* New symlinks of every kind; a symlink to a symlink. */
	OK(t, symlinkat("../a", t->fd, "d/up"));
	EXPECT_CONTENT(t, "d/up", "alpha\n");
	OK(t, symlinkat("sl", t->fd, "sl-sl"));
	EXPECT_CONTENT(t, "sl-sl", "alpha\n");
	OK(t, symlinkat("missing/target", t->fd, "e/dangling"));
	st = LSTAT(t, "e/dangling");
	EXPECT(t, S_ISLNK(st.st_mode) && st.st_size == 14, "lstat of a new symlink");
	ERR(t, fstatat(t->fd, "e/dangling", &st, 0), ENOENT);
	OK(t, symlinkat("/", t->fd, "root-link"));
	ERR(t, symlinkat("x", t->fd, "a"), EEXIST);
	/* Loops, and the O_NOFOLLOW / AT_SYMLINK_NOFOLLOW variants. */
	OK(t, symlinkat("loop2", t->fd, "loop1"));
	OK(t, symlinkat("loop1", t->fd, "loop2"));
	ERR(t, openat(t->fd, "loop1", O_RDONLY), ELOOP);
	ERR(t, openat(t->fd, "sl", O_RDONLY | O_NOFOLLOW), ELOOP);
	OK(t, fchownat(t->fd, "sl", geteuid(), getegid(), AT_SYMLINK_NOFOLLOW));
	/* Replace a symlink with another by rename. */
	OK(t, symlinkat("b", t->fd, "sl.new"));
	OK(t, renameat(t->fd, "sl.new", t->fd, "sl"));
	EXPECT_CONTENT(t, "sl", "bravo\n");
	n = OK(t, readlinkat(t->fd, "sl", buf, sizeof(buf)));
	EXPECT(t, n == 1 && buf[0] == 'b', "sl -> %.*s", (int)n, buf);
	OK(t, unlinkat(t->fd, "loop1", 0));
	OK(t, unlinkat(t->fd, "loop2", 0));
}

PTEST(posix_symlink, dangling_relative_absolute_and_loops)
{
	p_both(sc_symlinks, 0);
}

/* ---- special files ---- */

static void sc_special(struct pt *t)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char buf[16] = "";
	struct stat st;
	int r, w, s;

	OK(t, mkfifoat(t->fd, "d/fifo", 0640));
	st = LSTAT(t, "d/fifo");
	EXPECT(t, S_ISFIFO(st.st_mode) && (st.st_mode & 0777) == 0640, "mode %o", st.st_mode);
	r = (int)OK(t, openat(t->fd, "d/fifo", O_RDONLY | O_NONBLOCK | O_CLOEXEC));
	w = (int)OK(t, openat(t->fd, "d/fifo", O_WRONLY | O_NONBLOCK | O_CLOEXEC));
	OK(t, write(w, "pipe", 4));
	OK(t, read(r, buf, sizeof(buf)));
	EXPECT(t, !strcmp(buf, "pipe"), "the FIFO gave '%s'", buf);
	close(r);
	close(w);
	ERR(t, mkfifoat(t->fd, "a", 0600), EEXIST);
	OK(t, renameat(t->fd, "d/fifo", t->fd, "e/fifo"));
	st = LSTAT(t, "e/fifo");
	EXPECT(t, S_ISFIFO(st.st_mode), "rename lost the FIFO");
	OK(t, unlinkat(t->fd, "e/fifo", 0));
	/* A socket bound inside the tree (the path is relative to its directory). */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", t->root);
	s = (int)OK(t, socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
	OK(t, bind(s, (struct sockaddr *)&sa, sizeof(sa)));
	OK(t, listen(s, 1));
	st = LSTAT(t, "sock");
	EXPECT(t, S_ISSOCK(st.st_mode), "not a socket: %o", st.st_mode);
	close(s);
	OK(t, unlinkat(t->fd, "sock", 0));
	/* Device nodes (we are root); FUSE mounts are nodev, so they are not opened. */
	OK(t, mknodat(t->fd, "null", S_IFCHR | 0666, makedev(1, 3)));
	st = LSTAT(t, "null");
	EXPECT(t, S_ISCHR(st.st_mode) && st.st_rdev == makedev(1, 3), "rdev %lx",
	       (unsigned long)st.st_rdev);
	OK(t, unlinkat(t->fd, "null", 0));
}

PTEST(posix_special, fifos_sockets_and_devices)
{
	if (geteuid() != 0)
		p_skip("mknod of a device needs root");
	p_both(sc_special, 0);
}

/* ---- xattrs ---- */

static void sc_xattr(struct pt *t)
{
	char p[PATH_MAX], buf[256];
	ssize_t n;

	/* The lower file's xattr is seen, and kept by the copy-up a write makes. */
	snprintf(p, sizeof(p), "%s/xa", t->root);
	n = OK(t, getxattr(p, "user.k", buf, sizeof(buf)));
	EXPECT(t, n == 1 && buf[0] == 'v', "user.k = %.*s", (int)n, buf);
	p_put(t, "xa", "changed\n");
	n = OK(t, getxattr(p, "user.k", buf, sizeof(buf)));
	EXPECT(t, n == 1 && buf[0] == 'v', "copy-up lost user.k");
	/* Round trip on a lower file, a new file and a directory. */
	snprintf(p, sizeof(p), "%s/b", t->root);
	OK(t, setxattr(p, "user.one", "1", 1, XATTR_CREATE));
	ERR(t, setxattr(p, "user.one", "2", 1, XATTR_CREATE), EEXIST);
	ERR(t, setxattr(p, "user.two", "2", 1, XATTR_REPLACE), ENODATA);
	OK(t, setxattr(p, "user.one", "11", 2, XATTR_REPLACE));
	n = OK(t, getxattr(p, "user.one", buf, sizeof(buf)));
	EXPECT(t, n == 2 && !memcmp(buf, "11", 2), "user.one = %.*s", (int)n, buf);
	ERR(t, getxattr(p, "user.one", buf, 1), ERANGE);
	n = OK(t, getxattr(p, "user.one", NULL, 0));
	EXPECT(t, n == 2, "size query gave %zd", n);
	n = OK(t, listxattr(p, buf, sizeof(buf)));
	EXPECT(t, n == 9 && !strcmp(buf, "user.one"), "list: %zd", n);
	OK(t, removexattr(p, "user.one"));
	ERR(t, getxattr(p, "user.one", buf, sizeof(buf)), ENODATA);
	ERR(t, removexattr(p, "user.one"), ENODATA);
	EXPECT_CONTENT(t, "b", "bravo\n");
	snprintf(p, sizeof(p), "%s/d/sub", t->root);
	OK(t, setxattr(p, "user.dir", "D", 1, 0));
	n = OK(t, getxattr(p, "user.dir", buf, sizeof(buf)));
	EXPECT(t, n == 1 && buf[0] == 'D', "directory xattr");
	p_put(t, "fresh", "f\n");
	snprintf(p, sizeof(p), "%s/fresh", t->root);
	OK(t, setxattr(p, "user.big", memset(buf, 'x', 200), 200, 0));
	n = OK(t, getxattr(p, "user.big", NULL, 0));
	EXPECT(t, n == 200, "size %zd", n);
	/* Kept across rename. */
	OK(t, renameat(t->fd, "fresh", t->fd, "e/fresh"));
	snprintf(p, sizeof(p), "%s/e/fresh", t->root);
	n = OK(t, getxattr(p, "user.big", NULL, 0));
	EXPECT(t, n == 200, "rename lost user.big");
	/* No overlay-private attribute is visible. */
	snprintf(p, sizeof(p), "%s/d", t->root);
	n = OK(t, listxattr(p, buf, sizeof(buf)));
	EXPECT(t, n == 0, "d has %zd bytes of xattr names", n);
}

PTEST(posix_xattr, user_attributes_round_trip_and_survive_copy_up)
{
	/* Every PKG object the scenario touched, and their directories. */
	static const char *const touched[] = { "", "xa", "b", "d", "d/sub", "e", "e/fresh" };

	p_both(sc_xattr, 0);
	/* No overlay-private attribute reached PKG: the scenario sets none of these names. */
	for (size_t i = 0; i < sizeof(touched) / sizeof(touched[0]); i++) {
		char p[PATH_MAX], names[4096];
		ssize_t n;

		snprintf(p, sizeof(p), "%s/%s", p_env.pkg, touched[i]);
		n = llistxattr(p, names, sizeof(names));
		cr_assert(n >= 0, "listxattr '%s': %s", p, strerror(errno));
		for (char *name = names; name < names + n; name += strlen(name) + 1)
			cr_expect(strncmp(name, "trusted.overlay.", 16) &&
					  strncmp(name, "user.overlay.", 13) &&
					  !strstr(name, "cjfs"),
				  "PKG's '%s' has the xattr '%s'", touched[i], name);
	}
}

/*
 * File capabilities: the kernel asks for security.capability before each
 * write() (cjfs remembers "none" for its upper files) and removes it on a
 * write: one set through the mount must be seen, and a write must take it
 * away, exactly as on a plain directory.
 */
static void sc_caps(struct pt *t)
{
	/* VFS_CAP_REVISION_2, CAP_NET_BIND_SERVICE permitted. */
	static const uint32_t cap[5] = { 0x02000000, 1u << 10, 0, 0, 0 };
	char p[PATH_MAX], buf[64];
	ssize_t n;
	int fd;

	p_put(t, "capf", "one\n");
	snprintf(p, sizeof(p), "%s/capf", t->root);
	fd = OK(t, open(p, O_WRONLY | O_APPEND | O_CLOEXEC));
	OK(t, write(fd, "two\n", 4));
	ERR(t, getxattr(p, "security.capability", buf, sizeof(buf)), ENODATA);
	OK(t, setxattr(p, "security.capability", cap, sizeof(cap), 0));
	n = OK(t, getxattr(p, "security.capability", buf, sizeof(buf)));
	EXPECT(t, n == (ssize_t)sizeof(cap) && !memcmp(buf, cap, sizeof(cap)),
	       "security.capability reads back as %zd bytes", n);
	/* The write drops it (the kernel must have seen it to do so). */
	OK(t, write(fd, "three\n", 6));
	ERR(t, getxattr(p, "security.capability", buf, sizeof(buf)), ENODATA);
	/* Set again, on a file never written through this handle. */
	OK(t, setxattr(p, "security.capability", cap, sizeof(cap), 0));
	OK(t, close(fd));
	n = OK(t, getxattr(p, "security.capability", NULL, 0));
	EXPECT(t, n == (ssize_t)sizeof(cap), "size query gave %zd", n);
	EXPECT_CONTENT(t, "capf", "one\ntwo\nthree\n");
}

PTEST(posix_xattr, file_capabilities_are_seen_and_dropped_by_writes)
{
	if (geteuid() != 0)
		p_skip("setting security.capability needs CAP_SETFCAP");
	p_both(sc_caps, 0);
}

/* ---- open flags ---- */

static void sc_open_flags(struct pt *t)
{
	struct stat st;
	int fd;

	/* O_CREAT|O_EXCL on lower, upper, and a dangling symlink. */
	ERR(t, openat(t->fd, "a", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	ERR(t, openat(t->fd, "dl", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	ERR(t, openat(t->fd, "e", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	fd = (int)OK(t, openat(t->fd, "c", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640));
	close(fd);
	ERR(t, openat(t->fd, "c", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST);
	st = LSTAT(t, "c");
	EXPECT(t, (st.st_mode & 07777) == 0640 && st.st_size == 0, "mode %o", st.st_mode);
	/* The umask applies. */
	umask(027);
	fd = (int)OK(t, openat(t->fd, "masked", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
	close(fd);
	umask(022);
	st = LSTAT(t, "masked");
	EXPECT(t, (st.st_mode & 07777) == 0640, "umask ignored: %o", st.st_mode & 07777);
	/* O_CREAT on an existing file opens it untouched. */
	fd = (int)OK(t, openat(t->fd, "a", O_CREAT | O_RDWR | O_CLOEXEC, 0600));
	close(fd);
	EXPECT_CONTENT(t, "a", "alpha\n");
	st = LSTAT(t, "a");
	EXPECT(t, (st.st_mode & 07777) == 0644, "mode %o", st.st_mode & 07777);
	/* O_TRUNC, write-only and read-only (Linux truncates for both). */
	fd = (int)OK(t, openat(t->fd, "b", O_WRONLY | O_TRUNC | O_CLOEXEC));
	close(fd);
	st = LSTAT(t, "b");
	EXPECT(t, st.st_size == 0, "size %lld after O_TRUNC", (long long)st.st_size);
	fd = (int)OK(t, openat(t->fd, "d/f", O_RDONLY | O_TRUNC | O_CLOEXEC));
	close(fd);
	st = LSTAT(t, "d/f");
	EXPECT(t, st.st_size == 0, "size %lld after O_RDONLY|O_TRUNC", (long long)st.st_size);
	/* O_APPEND on a lower file, whatever the offset. */
	fd = (int)OK(t, openat(t->fd, "d/g", O_WRONLY | O_APPEND | O_CLOEXEC));
	OK(t, write(fd, "1\n", 2));
	OK(t, lseek(fd, 0, SEEK_SET));
	OK(t, write(fd, "2\n", 2));
	close(fd);
	EXPECT_CONTENT(t, "d/g", "golf\n1\n2\n");
	/* O_DIRECTORY and O_NOFOLLOW. */
	ERR(t, openat(t->fd, "a", O_RDONLY | O_DIRECTORY), ENOTDIR);
	fd = (int)OK(t, openat(t->fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "dsl", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	close(fd);
	ERR(t, openat(t->fd, "dsl", O_RDONLY | O_DIRECTORY | O_NOFOLLOW), ENOTDIR);
	ERR(t, openat(t->fd, "sl", O_RDONLY | O_NOFOLLOW), ELOOP);
	fd = (int)OK(t, openat(t->fd, "sl", O_PATH | O_NOFOLLOW | O_CLOEXEC));
	OK(t, fstat(fd, &st));
	EXPECT(t, S_ISLNK(st.st_mode), "O_PATH|O_NOFOLLOW did not open the link");
	close(fd);
	/* Directories cannot be opened for writing. */
	ERR(t, openat(t->fd, "d", O_WRONLY), EISDIR);
	ERR(t, openat(t->fd, "d", O_RDWR), EISDIR);
	ERR(t, openat(t->fd, "a/x", O_RDONLY), ENOTDIR);
	ERR(t, openat(t->fd, "missing", O_RDONLY), ENOENT);
}

PTEST(posix_open, creat_excl_trunc_append_directory_nofollow)
{
	p_both(sc_open_flags, 0);
}

static void sc_open_unlinked(struct pt *t)
{
	char buf[64];
	struct stat st;
	int fr, fw, fu;

	/* A lower file open for reading, another for writing, a new one: then unlink all. */
	fr = (int)OK(t, openat(t->fd, "a", O_RDONLY | O_CLOEXEC));
	fw = (int)OK(t, openat(t->fd, "b", O_RDWR | O_CLOEXEC));
	p_put(t, "new", "new\n");
	fu = (int)OK(t, openat(t->fd, "new", O_RDWR | O_CLOEXEC));
	OK(t, unlinkat(t->fd, "a", 0));
	OK(t, unlinkat(t->fd, "b", 0));
	OK(t, unlinkat(t->fd, "new", 0));
	ERR(t, fstatat(t->fd, "a", &st, 0), ENOENT);
	for (int i = 0; i < 3; i++) {
		int fd = i == 0 ? fr : i == 1 ? fw : fu;

		OK(t, fstat(fd, &st));
		EXPECT(t, st.st_nlink == 0, "fd %d: nlink %lu after unlink", i,
		       (unsigned long)st.st_nlink);
	}
	memset(buf, 0, sizeof(buf));
	OK(t, pread(fr, buf, sizeof(buf), 0));
	EXPECT(t, !strcmp(buf, "alpha\n"), "reads '%s'", buf);
	OK(t, pwrite(fw, "BR", 2, 0));
	OK(t, pwrite(fu, "NEWER\n", 6, 0));
	memset(buf, 0, sizeof(buf));
	OK(t, pread(fw, buf, sizeof(buf), 0));
	EXPECT(t, !strcmp(buf, "BRavo\n"), "reads '%s'", buf);
	OK(t, ftruncate(fw, 3));
	OK(t, fstat(fw, &st));
	EXPECT(t, st.st_size == 3, "size %lld", (long long)st.st_size);
	OK(t, fchmod(fu, 0600));
	OK(t, fstat(fu, &st));
	EXPECT(t, (st.st_mode & 07777) == 0600, "mode %o", st.st_mode);
	/* Attributes of a removed file open read-only (PKG's, in cjfs) can still change. */
	OK(t, fchmod(fr, 0640));
	OK(t, futimens(fr, (struct timespec[]){ { 5, 0 }, { 6, 0 } }));
	OK(t, fsetxattr(fr, "user.gone", "1", 1, 0));
	OK(t, fstat(fr, &st));
	EXPECT(t, (st.st_mode & 07777) == 0640 && st.st_mtim.tv_sec == 6 && st.st_nlink == 0,
	       "removed file: mode %o mtime %lld nlink %lu", st.st_mode & 07777,
	       (long long)st.st_mtim.tv_sec, (unsigned long)st.st_nlink);
	memset(buf, 0, sizeof(buf));
	OK(t, pread(fr, buf, sizeof(buf), 0));
	EXPECT(t, !strcmp(buf, "alpha\n"), "reads '%s' after fchmod", buf);
	/* New files at the old names are new files. */
	p_put(t, "a", "again\n");
	EXPECT_CONTENT(t, "a", "again\n");
	memset(buf, 0, sizeof(buf));
	OK(t, pread(fr, buf, sizeof(buf), 0));
	EXPECT(t, !strcmp(buf, "alpha\n"), "the old handle reads '%s'", buf);
	close(fr);
	close(fw);
	close(fu);
	/* Removed directories that are still open: below, merged, new, renamed over. */
	{
		const char *dirs[] = { "d/sub/deep", "e", "newdir", "e2", "long", "e3" };
		int dfd[6];

		OK(t, mkdirat(t->fd, "newdir", 0755));
		OK(t, mkdirat(t->fd, "e2", 0755));
		p_put(t, "e/x", "x");
		OK(t, unlinkat(t->fd, "e/x", 0));
		OK(t, unlinkat(t->fd, "d/sub/deep/t", 0));
		char lp[8 + NAME_MAX] = "long/";

		memset(lp + 5, 'L', 255);
		lp[260] = '\0';
		OK(t, unlinkat(t->fd, lp, 0));
		for (int i = 0; i < 6; i++)
			dfd[i] = (int)OK(t, openat(t->fd, dirs[i],
						   O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		OK(t, unlinkat(t->fd, "d/sub/deep", AT_REMOVEDIR));
		OK(t, unlinkat(t->fd, "e", AT_REMOVEDIR));
		OK(t, unlinkat(t->fd, "newdir", AT_REMOVEDIR));
		OK(t, renameat(t->fd, "d/sub", t->fd, "e2"));
		OK(t, unlinkat(t->fd, "long", AT_REMOVEDIR));
		OK(t, unlinkat(t->fd, "e3", AT_REMOVEDIR));
		for (int i = 0; i < 6; i++) {
			DIR *d;

			OK(t, fchmod(dfd[i], 0700));
			OK(t, fstat(dfd[i], &st));
			EXPECT(t,
			       S_ISDIR(st.st_mode) && st.st_nlink == 0 &&
				       (st.st_mode & 07777) == 0700,
			       "removed directory '%s': nlink %lu mode %o", dirs[i],
			       (unsigned long)st.st_nlink, st.st_mode & 07777);
			ERR(t, openat(dfd[i], "f", O_CREAT | O_WRONLY, 0644), ENOENT);
			d = fdopendir(dfd[i]);
			errno = 0;
			EXPECT(t, d && !readdir(d), "listing a removed directory");
			closedir(d);
		}
	}
}

PTEST(posix_open, unlinked_but_open_files_stay_usable_with_nlink_zero)
{
	p_both(sc_open_unlinked, 0);
}

static void sc_open_direct(struct pt *t)
{
	void *buf;
	int fd;

	cr_assert_eq(posix_memalign(&buf, 4096, 8192), 0);
	memset(buf, 'D', 8192);
	fd = (int)OK(t, openat(t->fd, "direct", O_CREAT | O_RDWR | O_DIRECT | O_CLOEXEC, 0644));
	OK(t, pwrite(fd, buf, 8192, 0));
	memset(buf, 0, 8192);
	EXPECT(t, OK(t, pread(fd, buf, 4096, 4096)) == 4096, "short O_DIRECT read");
	EXPECT(t, ((char *)buf)[4095] == 'D', "O_DIRECT read the wrong bytes");
	close(fd);
	fd = (int)OK(t, openat(t->fd, "a", O_RDONLY | O_DIRECT | O_CLOEXEC));
	close(fd);
	free(buf);
}

PTEST(posix_open, o_direct_opens_work)
{
	p_both(sc_open_direct, 0);
}

static void sc_ioctl(struct pt *t)
{
	int fd = (int)OK(t, openat(t->fd, "a", O_RDONLY | O_CLOEXEC));
	int dfd = (int)OK(t, openat(t->fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	int v = 0;

	ERR(t, ioctl(fd, _IOR('x', 0x7e, int), &v), ENOTTY);
	ERR(t, ioctl(dfd, _IO('x', 0x7d)), ENOTTY);
	/* flock is kept local to the mount but works. */
	OK(t, flock(fd, LOCK_EX));
	OK(t, flock(fd, LOCK_UN));
	close(fd);
	close(dfd);
}

PTEST(posix_open, unknown_ioctls_give_enotty)
{
	p_both(sc_ioctl, 0);
}

/* ---- data ---- */

static void sc_data(struct pt *t)
{
	char buf[64], zero[16] = { 0 };
	struct stat st;
	int fd;

	/* pwrite/pread at any offset of a lower file; beyond the end leaves a zero gap. */
	fd = (int)OK(t, openat(t->fd, "a", O_RDWR | O_CLOEXEC));
	OK(t, pwrite(fd, "LP", 2, 1));
	OK(t, pwrite(fd, "tail", 4, 20));
	OK(t, fstat(fd, &st));
	EXPECT(t, st.st_size == 24, "size %lld", (long long)st.st_size);
	memset(buf, 'z', sizeof(buf));
	EXPECT(t, OK(t, pread(fd, buf, sizeof(buf), 0)) == 24, "short read");
	EXPECT(t,
	       !memcmp(buf, "aLPha\n", 6) && !memcmp(buf + 6, zero, 14) &&
		       !memcmp(buf + 20, "tail", 4),
	       "content after pwrite");
	EXPECT(t, OK(t, pread(fd, buf, 8, 30)) == 0, "read past the end");
	close(fd);
	/* Truncate up and down, by path and by fd. */
	fd = (int)OK(t, openat(t->fd, "b", O_RDWR | O_CLOEXEC));
	OK(t, ftruncate(fd, 3));
	EXPECT_CONTENT(t, "b", "bra");
	OK(t, ftruncate(fd, 8192));
	st = LSTAT(t, "b");
	EXPECT(t, st.st_size == 8192, "size %lld", (long long)st.st_size);
	EXPECT(t, OK(t, pread(fd, buf, 4, 8000)) == 4 && !memcmp(buf, zero, 4), "zeros");
	close(fd);
	{
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/d/f", t->root);
		OK(t, truncate(p, 3));
		EXPECT_CONTENT(t, "d/f", "fox");
		OK(t, truncate(p, 0));
		st = LSTAT(t, "d/f");
		EXPECT(t, st.st_size == 0, "size %lld", (long long)st.st_size);
		snprintf(p, sizeof(p), "%s/d/g", t->root);
		OK(t, truncate(p, 1 << 20));
		st = LSTAT(t, "d/g");
		EXPECT(t, st.st_size == 1 << 20, "size %lld", (long long)st.st_size);
		OK(t, truncate(p, 5));
		EXPECT_CONTENT(t, "d/g", "golf\n");
	}
	/* A sparse lower file stays sparse, before and after copy-up. */
	st = LSTAT(t, "sparse");
	EXPECT(t, st.st_size == 1048580 && st.st_blocks * 512 < 65536,
	       "sparse: %lld bytes %lld blocks", (long long)st.st_size, (long long)st.st_blocks);
	fd = (int)OK(t, openat(t->fd, "sparse", O_RDONLY | O_CLOEXEC));
	EXPECT(t, OK(t, lseek(fd, 0, SEEK_DATA)) == 1048576, "SEEK_DATA");
	EXPECT(t, OK(t, lseek(fd, 0, SEEK_HOLE)) == 0, "SEEK_HOLE");
	close(fd);
	fd = (int)OK(t, openat(t->fd, "sparse", O_WRONLY | O_CLOEXEC));
	OK(t, pwrite(fd, "S", 1, 0));
	close(fd);
	st = LSTAT(t, "sparse");
	EXPECT(t, st.st_size == 1048580 && st.st_blocks * 512 < 65536,
	       "copy-up filled the holes: %lld blocks", (long long)st.st_blocks);
	/* fallocate: extend, keep size, punch a hole. */
	fd = (int)OK(t, openat(t->fd, "x.sh", O_RDWR | O_CLOEXEC));
	OK(t, fallocate(fd, 0, 0, 65536));
	OK(t, fstat(fd, &st));
	EXPECT(t, st.st_size == 65536, "size %lld after fallocate", (long long)st.st_size);
	OK(t, fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 131072));
	OK(t, fstat(fd, &st));
	EXPECT(t, st.st_size == 65536, "KEEP_SIZE changed the size");
	OK(t, fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4));
	EXPECT(t, OK(t, pread(fd, buf, 6, 0)) == 6 && !memcmp(buf, "\0\0\0\0in", 6),
	       "punched hole");
	close(fd);
	fd = (int)OK(t, openat(t->fd, "ro", O_RDONLY | O_CLOEXEC));
	ERR(t, fallocate(fd, 0, 0, 10), EBADF);
	/* fsync and fdatasync, on every kind of handle. */
	OK(t, fsync(fd));
	OK(t, fdatasync(fd));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	OK(t, fsync(fd));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "xa", O_WRONLY | O_CLOEXEC));
	OK(t, write(fd, "X", 1));
	OK(t, fsync(fd));
	OK(t, fdatasync(fd));
	close(fd);
}

PTEST(posix_data, pread_pwrite_truncate_sparse_fallocate_fsync)
{
	p_both(sc_data, 0);
}

static void sc_mmap(struct pt *t)
{
	struct stat st;
	char *m;
	int fd;

	/* MAP_SHARED writes to a lower file reach the file (and the commit). */
	fd = (int)OK(t, openat(t->fd, "d/f", O_RDWR | O_CLOEXEC));
	m = mmap(NULL, 8, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT(t, m != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
	memcpy(m, "FOX", 3);
	OK(t, msync(m, 8, MS_SYNC));
	EXPECT_CONTENT(t, "d/f", "FOXtrot\n");
	memcpy(m + 3, "TROT", 4);
	OK(t, munmap(m, 8));
	close(fd);
	EXPECT_CONTENT(t, "d/f", "FOXTROT\n");
	/* Growing a file and writing through a mapping, without msync or close first. */
	fd = (int)OK(t, openat(t->fd, "mapped", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
	OK(t, ftruncate(fd, 10000));
	m = mmap(NULL, 10000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	EXPECT(t, m != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
	memset(m, 'm', 10000);
	m[9999] = '\n';
	close(fd);
	OK(t, munmap(m, 10000));
	st = LSTAT(t, "mapped");
	EXPECT(t, st.st_size == 10000, "size %lld", (long long)st.st_size);
	/* A private mapping changes nothing. */
	fd = (int)OK(t, openat(t->fd, "b", O_RDONLY | O_CLOEXEC));
	m = mmap(NULL, 6, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	EXPECT(t, m != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
	EXPECT(t, !memcmp(m, "bravo\n", 6), "mapped content");
	m[0] = 'X';
	OK(t, munmap(m, 6));
	close(fd);
	EXPECT_CONTENT(t, "b", "bravo\n");
	/* A read-only shared mapping and a read-only handle see writes made elsewhere. */
	{
		int ro = (int)OK(t, openat(t->fd, "a", O_RDONLY | O_CLOEXEC));
		char buf[8] = "";

		m = mmap(NULL, 6, PROT_READ, MAP_SHARED, ro, 0);
		EXPECT(t, m != MAP_FAILED, "mmap: %s", strerrorname_np(errno));
		EXPECT(t, !memcmp(m, "alpha\n", 6), "mapped content");
		fd = (int)OK(t, openat(t->fd, "a", O_WRONLY | O_CLOEXEC));
		OK(t, pwrite(fd, "ALPHA", 5, 0));
		close(fd);
		EXPECT(t, !memcmp(m, "ALPHA\n", 6), "the mapping shows '%.6s'", m);
		OK(t, pread(ro, buf, 6, 0));
		EXPECT(t, !memcmp(buf, "ALPHA\n", 6), "the read-only handle reads '%.6s'", buf);
		OK(t, munmap(m, 6));
		close(ro);
	}
	/* A shared mapping of a read-only handle cannot be written. */
	fd = (int)OK(t, openat(t->fd, "b", O_RDONLY | O_CLOEXEC));
	EXPECT(t,
	       mmap(NULL, 6, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) == MAP_FAILED &&
		       errno == EACCES,
	       "shared writable mapping of a read-only fd");
	close(fd);
}

PTEST(posix_data, mmap_shared_writes_reach_the_file)
{
	p_both(sc_mmap, 0);
}

static void sc_large(struct pt *t)
{
	const off_t g5 = 5LL << 30, g4 = 4LL << 30;
	char buf[8] = "";
	struct stat st;
	int fd;

	fd = (int)OK(t, openat(t->fd, "big", O_RDWR | O_CREAT | O_CLOEXEC, 0644));
	OK(t, pwrite(fd, "ab", 2, g4 - 1));
	OK(t, pwrite(fd, "end", 3, g5));
	OK(t, fstat(fd, &st));
	EXPECT(t, st.st_size == g5 + 3, "size %lld", (long long)st.st_size);
	EXPECT(t, st.st_blocks * 512 < (1 << 20), "not sparse: %lld blocks",
	       (long long)st.st_blocks);
	EXPECT(t, OK(t, pread(fd, buf, 2, g4 - 1)) == 2 && !memcmp(buf, "ab", 2), "across 4 GiB");
	EXPECT(t, OK(t, pread(fd, buf, 8, g5)) == 3 && !memcmp(buf, "end", 3), "at 5 GiB");
	EXPECT(t, OK(t, lseek(fd, g4 + 4096, SEEK_DATA)) == g5 - (g5 % 4096), "SEEK_DATA");
	OK(t, ftruncate(fd, g4 + 1));
	OK(t, fstat(fd, &st));
	EXPECT(t, st.st_size == g4 + 1, "size %lld", (long long)st.st_size);
	close(fd);
	/* Not committed: the store would have to hold it. */
	OK(t, unlinkat(t->fd, "big", 0));
}

PTEST(posix_data, offsets_beyond_4_gib)
{
	p_both(sc_large, 0);
}

static void sc_sparse_lower(struct pt *t)
{
	struct stat st;
	char buf[4] = "";
	int fd;

	fd = (int)OK(t, openat(t->fd, "hole", O_RDWR | O_CLOEXEC));
	OK(t, pwrite(fd, "X", 1, 0));
	OK(t, pwrite(fd, "Y", 1, 128 << 20));
	OK(t, fstat(fd, &st));
	EXPECT(t, st.st_size == (256 << 20) + 4 && st.st_blocks * 512 < (1 << 20),
	       "after copy-up: %lld bytes in %lld blocks", (long long)st.st_size,
	       (long long)st.st_blocks);
	EXPECT(t, OK(t, pread(fd, buf, 4, 256 << 20)) == 4 && !memcmp(buf, "end\n", 4), "tail");
	close(fd);
}

Test(posix_data, a_large_sparse_file_from_pkg_stays_sparse_through_copy_up_and_commit,
     .init = p_setup, .fini = p_teardown, .timeout = 300)
{
	const char *roots[] = { p_env.pkg, p_ctrl };
	char p[PATH_MAX];
	struct stat st;

	for (int i = 0; i < 2; i++)
		cr_assert_eq(h_sh(roots[i], "truncate -s 256M hole && printf 'end\\n' >> hole"), 0);
	p_both(sc_sparse_lower, 0);
	/* Neither the originals kept in the store nor the committed file are dense. */
	snprintf(p, sizeof(p), "%s/hole", p_env.pkg);
	cr_assert_eq(stat(p, &st), 0);
	cr_assert_lt(st.st_blocks * 512, 1 << 20, "the committed file is dense: %lld blocks",
		     (long long)st.st_blocks);
	cr_assert_eq(h_sh(p_env.root, "test $(du -sk store | cut -f1) -lt 8192"), 0,
		     "the store holds the holes");
}

/* ---- metadata ---- */

static void expect_dino_matches(struct pt *t, const char *dir)
{
	int fd = (int)OK(t, openat(t->fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	DIR *d = fdopendir(fd);
	struct dirent *de;
	struct stat st;
	int dots = 0;

	EXPECT(t, d != NULL, "fdopendir");
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".."))
			dots++;
		if (!strcmp(de->d_name, ".."))
			continue;
		if (!strcmp(de->d_name, ".")) {
			dots++;
			OK(t, fstat(dirfd(d), &st));
		} else {
			OK(t, fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW));
		}
		EXPECT(t, st.st_ino == de->d_ino, "%s/%s: d_ino %llu, st_ino %llu", dir, de->d_name,
		       (unsigned long long)de->d_ino, (unsigned long long)st.st_ino);
	}
	EXPECT(t, dots == 2, "%s: '.' and '..' listed %d times", dir, dots);
	closedir(d);
}

static void sc_inodes(struct pt *t)
{
	const char *names[] = { "a", "d", "d/f", "d/sub", "d/sub/s", "sl", "e" };
	struct stat before[7], st;
	int fd;

	for (int i = 0; i < 7; i++)
		before[i] = LSTAT(t, names[i]);
	expect_dino_matches(t, ".");
	expect_dino_matches(t, "d");
	/* Copy up everything: data, attributes, the directories above. */
	p_put(t, "d/sub/s", "changed\n");
	OK(t, fchmodat(t->fd, "a", 0600, 0));
	OK(t, fchownat(t->fd, "sl", geteuid(), getegid(), AT_SYMLINK_NOFOLLOW));
	p_put(t, "e/new", "x\n");
	fd = (int)OK(t, openat(t->fd, "d/f", O_WRONLY | O_APPEND | O_CLOEXEC));
	close(fd);
	for (int i = 0; i < 7; i++) {
		st = LSTAT(t, names[i]);
		EXPECT(t, st.st_ino == before[i].st_ino, "st_ino of '%s' changed", names[i]);
		EXPECT(t, st.st_dev == before[i].st_dev, "st_dev of '%s' changed", names[i]);
	}
	expect_dino_matches(t, ".");
	expect_dino_matches(t, "d");
	expect_dino_matches(t, "d/sub");
	expect_dino_matches(t, "e");
	/* The kernel forgets inodes under memory pressure; the numbers must stay. */
	if (t->cjfs)
		(void)!system("echo 2 > /proc/sys/vm/drop_caches");
	for (int i = 0; i < 7; i++) {
		st = LSTAT(t, names[i]);
		EXPECT(t, st.st_ino == before[i].st_ino, "st_ino of '%s' changed after a forget",
		       names[i]);
	}
	expect_dino_matches(t, ".");
	expect_dino_matches(t, "d");
	/* Renames keep it too. */
	OK(t, renameat(t->fd, "d", t->fd, "d-moved"));
	st = LSTAT(t, "d-moved");
	EXPECT(t, st.st_ino == before[1].st_ino, "st_ino of a renamed directory changed");
	st = LSTAT(t, "d-moved/f");
	EXPECT(t, st.st_ino == before[2].st_ino, "st_ino of a file in it changed");
}

PTEST(posix_meta, st_ino_is_stable_across_copy_up_and_matches_d_ino)
{
	p_both(sc_inodes, 0);
}

static bool ts_eq(struct timespec a, long long sec, long nsec)
{
	return a.tv_sec == sec && a.tv_nsec == nsec;
}

static long long now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec;
}

static void sc_times(struct pt *t)
{
	struct timespec tv[2];
	struct stat st, st2;
	long long t0 = now_s() - 1; /* the kernel stamps times from a coarse clock */
	int fd;

	/* Copy-up keeps the times; a chmod changes ctime only. */
	st = LSTAT(t, "a");
	OK(t, fchmodat(t->fd, "a", 0640, 0));
	st2 = LSTAT(t, "a");
	EXPECT(t,
	       st2.st_mtim.tv_sec == st.st_mtim.tv_sec && st2.st_mtim.tv_nsec == st.st_mtim.tv_nsec,
	       "chmod changed mtime");
	EXPECT(t, st2.st_ctim.tv_sec >= t0, "chmod did not change ctime");
	/* A write sets mtime and ctime to now. */
	fd = (int)OK(t, openat(t->fd, "b", O_WRONLY | O_APPEND | O_CLOEXEC));
	OK(t, write(fd, "x", 1));
	OK(t, fstat(fd, &st));
	close(fd);
	EXPECT(t, st.st_mtim.tv_sec >= t0 && st.st_mtim.tv_sec <= now_s() + 1, "write mtime");
	EXPECT(t, st.st_ctim.tv_sec >= t0, "write ctime");
	st2 = LSTAT(t, "b");
	EXPECT(t,
	       st2.st_mtim.tv_sec == st.st_mtim.tv_sec &&
		       st2.st_mtim.tv_nsec == st.st_mtim.tv_nsec && st2.st_size == 7,
	       "stat after close differs from fstat");
	/* Exact times, UTIME_OMIT and UTIME_NOW. */
	tv[0] = (struct timespec){ 1000000000, 123456789 };
	tv[1] = (struct timespec){ 1500000000, 987654321 };
	OK(t, utimensat(t->fd, "d/f", tv, 0));
	st = LSTAT(t, "d/f");
	EXPECT(t, ts_eq(st.st_atim, 1000000000, 123456789), "atime %lld.%09ld",
	       (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec);
	EXPECT(t, ts_eq(st.st_mtim, 1500000000, 987654321), "mtime %lld.%09ld",
	       (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	tv[0].tv_nsec = UTIME_OMIT;
	tv[1] = (struct timespec){ 1600000000, 5 };
	OK(t, utimensat(t->fd, "d/f", tv, 0));
	st = LSTAT(t, "d/f");
	EXPECT(t, ts_eq(st.st_atim, 1000000000, 123456789), "UTIME_OMIT changed atime");
	EXPECT(t, ts_eq(st.st_mtim, 1600000000, 5), "mtime not set");
	tv[0].tv_nsec = UTIME_NOW;
	tv[1].tv_nsec = UTIME_OMIT;
	OK(t, utimensat(t->fd, "d/f", tv, 0));
	st = LSTAT(t, "d/f");
	EXPECT(t, st.st_atim.tv_sec >= t0 - 1 && st.st_atim.tv_sec <= now_s() + 1,
	       "UTIME_NOW atime %lld", (long long)st.st_atim.tv_sec);
	EXPECT(t, ts_eq(st.st_mtim, 1600000000, 5), "UTIME_OMIT changed mtime");
	OK(t, utimensat(t->fd, "d/g", NULL, 0));
	st = LSTAT(t, "d/g");
	EXPECT(t, st.st_mtim.tv_sec >= t0 - 1, "utimensat(NULL) mtime");
	/* On a symlink itself, and on a directory. */
	tv[0] = tv[1] = (struct timespec){ 1234567890, 0 };
	OK(t, utimensat(t->fd, "sl", tv, AT_SYMLINK_NOFOLLOW));
	st = LSTAT(t, "sl");
	EXPECT(t, ts_eq(st.st_mtim, 1234567890, 0), "symlink mtime %lld",
	       (long long)st.st_mtim.tv_sec);
	st = LSTAT(t, "a");
	EXPECT(t, !ts_eq(st.st_mtim, 1234567890, 0), "lutimes changed the target");
	OK(t, utimensat(t->fd, "e", tv, 0));
	st = LSTAT(t, "e");
	EXPECT(t, ts_eq(st.st_mtim, 1234567890, 0), "directory mtime");
	/* Creating in a directory changes its mtime. */
	p_put(t, "e/new", "n\n");
	st = LSTAT(t, "e");
	EXPECT(t, st.st_mtim.tv_sec >= t0 - 1, "creating did not change the directory mtime");
	/* Sizes of every kind. */
	st = LSTAT(t, "dl");
	EXPECT(t, st.st_size == 7, "symlink size %lld", (long long)st.st_size);
	st = LSTAT(t, "sparse");
	EXPECT(t, st.st_size == 1048580, "size %lld", (long long)st.st_size);
	/* Owners (root may give files away). */
	if (geteuid() != 0)
		return;
	OK(t, fchownat(t->fd, "x.sh", 1234, 5678, 0));
	st = LSTAT(t, "x.sh");
	EXPECT(t, st.st_uid == 1234 && st.st_gid == 5678, "owner %u:%u", st.st_uid, st.st_gid);
	OK(t, fchmodat(t->fd, "x.sh", 04755, 0));
	OK(t, fchownat(t->fd, "x.sh", 1234, 5679, 0));
	st = LSTAT(t, "x.sh");
	EXPECT(t, (st.st_mode & 07777) == 0755, "chown kept the set-user-ID bit: %o",
	       st.st_mode & 07777);
}

PTEST(posix_meta, times_sizes_and_owners)
{
	p_both(sc_times, 0);
}

static void sc_root_attrs(struct pt *t)
{
	struct stat st;

	OK(t, fstat(t->fd, &st));
	EXPECT(t,
	       (st.st_mode & 07777) == 0750 && st.st_uid == 4321 && st.st_gid == 8765 &&
		       st.st_mtim.tv_sec == 1000000000,
	       "the root shows %o %u:%u mtime %lld", st.st_mode & 07777, st.st_uid, st.st_gid,
	       (long long)st.st_mtim.tv_sec);
	/* Creating in it changes its mtime, as in any directory. */
	p_put(t, "new", "n\n");
	OK(t, fstat(t->fd, &st));
	EXPECT(t, st.st_mtim.tv_sec > 1000000000, "creating left the root's mtime");
}

Test(posix_meta, the_mount_root_shows_the_attributes_of_pkgs_root, .init = p_setup,
     .fini = p_teardown, .timeout = 120)
{
	const char *roots[] = { p_env.pkg, p_ctrl };
	struct timespec tv[2] = { { 1000000000, 0 }, { 1000000000, 0 } };

	if (geteuid() != 0)
		p_skip("needs root to give PKG's root away");
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(chown(roots[i], 4321, 8765), 0);
		cr_assert_eq(chmod(roots[i], 0750), 0);
		cr_assert_eq(utimensat(AT_FDCWD, roots[i], tv, 0), 0);
	}
	p_both(sc_root_attrs, 0);
}

/*
 * A change of metadata or a write copies a PKG file up, which reads it: that
 * is cjfs's reading, not the user's, and changes no access time, neither of
 * the file as the mount shows it nor of PKG's file (the test body gave a,
 * d/f and d/g an atime of 1,500,000,000).
 */
#define OLD_ATIME 1500000000

static void expect_atime(struct pt *t, int line, const char *root, const char *path)
{
	char p[PATH_MAX];
	struct stat st;

	snprintf(p, sizeof(p), "%s/%s", root, path);
	if (lstat(p, &st) < 0)
		p_fail(t, line, "lstat %s: %s", p, strerror(errno));
	if (st.st_atim.tv_sec != OLD_ATIME)
		p_fail(t, line, "%s: atime %lld, want %d", p, (long long)st.st_atim.tv_sec,
		       OLD_ATIME);
}

static void sc_atime(struct pt *t)
{
	const char *names[] = { "a", "d/f", "d/g" };
	char p[PATH_MAX];
	int fd;

	OK(t, fchmodat(t->fd, "a", 0600, 0));
	snprintf(p, sizeof(p), "%s/d/f", t->root);
	OK(t, truncate(p, 3));
	fd = (int)OK(t, openat(t->fd, "d/g", O_WRONLY | O_APPEND | O_CLOEXEC));
	OK(t, write(fd, "more\n", 5));
	close(fd);
	for (int i = 0; i < 3; i++) {
		expect_atime(t, __LINE__, t->root, names[i]);
		if (t->cjfs)
			expect_atime(t, __LINE__, p_env.pkg, names[i]);
	}
}

Test(posix_meta, copy_up_changes_no_access_time, .init = p_setup, .fini = p_teardown,
     .timeout = 120)
{
	const char *roots[] = { p_env.pkg, p_ctrl }, *names[] = { "a", "d/f", "d/g" };
	struct timespec tv[2] = { { OLD_ATIME, 0 }, { OLD_ATIME, 0 } };

	for (int i = 0; i < 2; i++)
		for (int k = 0; k < 3; k++) {
			char p[PATH_MAX];

			snprintf(p, sizeof(p), "%s/%s", roots[i], names[k]);
			cr_assert_eq(utimensat(AT_FDCWD, p, tv, AT_SYMLINK_NOFOLLOW), 0);
		}
	p_both(sc_atime, 0);
}

static void sc_statfs(struct pt *t)
{
	struct statvfs sv;

	OK(t, fstatvfs(t->fd, &sv));
	EXPECT(t,
	       sv.f_bsize > 0 && sv.f_blocks > 0 && sv.f_bfree <= sv.f_blocks &&
		       sv.f_bavail <= sv.f_bfree,
	       "statfs: bsize %lu blocks %lu free %lu", sv.f_bsize, (unsigned long)sv.f_blocks,
	       (unsigned long)sv.f_bfree);
	EXPECT(t, sv.f_namemax == 255, "namemax %lu", sv.f_namemax);
	EXPECT(t, sv.f_files == 0 || sv.f_ffree <= sv.f_files, "inodes");
}

PTEST(posix_meta, statfs_is_sensible)
{
	p_both(sc_statfs, 0);
}

/* ---- names and paths ---- */

static char *repeat(char c, size_t n)
{
	char *s = malloc(n + 1);

	cr_assert_not_null(s);
	memset(s, c, n);
	s[n] = '\0';
	return s;
}

static void sc_names(struct pt *t)
{
	char *n255 = repeat('N', 255), *n256 = repeat('N', 256), *lower = repeat('L', 255);
	char p[PATH_MAX * 2], q[PATH_MAX * 2];
	struct stat st;
	char *l;
	int fd;

	/* A component over 255 bytes is ENAMETOOLONG for every call, never ENOENT. */
	ERR(t, fstatat(t->fd, n256, &st, 0), ENAMETOOLONG);
	ERR(t, openat(t->fd, n256, O_RDONLY), ENAMETOOLONG);
	ERR(t, openat(t->fd, n256, O_CREAT | O_WRONLY, 0644), ENAMETOOLONG);
	ERR(t, mkdirat(t->fd, n256, 0755), ENAMETOOLONG);
	ERR(t, symlinkat("a", t->fd, n256), ENAMETOOLONG);
	ERR(t, linkat(t->fd, "a", t->fd, n256, 0), ENAMETOOLONG);
	ERR(t, renameat(t->fd, "a", t->fd, n256), ENAMETOOLONG);
	ERR(t, unlinkat(t->fd, n256, 0), ENAMETOOLONG);
	snprintf(p, sizeof(p), "d/%s", n256);
	ERR(t, fstatat(t->fd, p, &st, 0), ENAMETOOLONG);
	ERR(t, mkfifoat(t->fd, p, 0644), ENAMETOOLONG);
	/* 255 bytes work: new, renamed, and a lower one deleted and made again. */
	p_put(t, n255, "n\n");
	snprintf(p, sizeof(p), "d/%s", n255);
	OK(t, renameat(t->fd, n255, t->fd, p));
	EXPECT_CONTENT(t, p, "n\n");
	snprintf(q, sizeof(q), "long/%s", lower);
	EXPECT_CONTENT(t, q, "long\n");
	OK(t, unlinkat(t->fd, q, 0));
	ERR(t, fstatat(t->fd, q, &st, 0), ENOENT);
	l = p_list(t, "long");
	EXPECT(t, !strcmp(l, ""), "long/ lists '%s'", l);
	free(l);
	p_put(t, q, "again\n");
	EXPECT_CONTENT(t, q, "again\n");
	OK(t, mkdirat(t->fd, n255, 0755));
	snprintf(p, sizeof(p), "%s/%s", n255, n255);
	p_put(t, p, "nested\n");
	/* A lower path of 3771 bytes: read, written (copied up), renamed. */
	strcpy(p, "deep");
	for (char c = 'a'; c <= 'o'; c++) {
		char *comp = repeat(c, 250);

		strcat(p, "/");
		strcat(p, comp);
		free(comp);
	}
	strcat(p, "/f");
	EXPECT_CONTENT(t, p, "deep\n");
	fd = (int)OK(t, openat(t->fd, p, O_WRONLY | O_APPEND | O_CLOEXEC));
	OK(t, write(fd, "er\n", 3));
	close(fd);
	EXPECT_CONTENT(t, p, "deep\ner\n");
	strcpy(q, p);
	strcpy(q + strlen(q) - 1, "g");
	OK(t, renameat(t->fd, p, t->fd, q));
	/* Grow the path to just below PATH_MAX (4095 with the terminator). */
	q[strlen(q) - 2] = '\0';
	{
		size_t room = PATH_MAX - 1 - strlen(q) - 1;
		char *last = repeat('z', room > 255 ? 255 : room);

		strcat(q, "/");
		strcat(q, last);
		free(last);
	}
	if (strlen(q) < PATH_MAX - 1) {
		OK(t, mkdirat(t->fd, q, 0755));
		strcat(q, "/");
		while (strlen(q) < PATH_MAX - 1)
			strcat(q, "y");
		p_put(t, q, "at the limit\n");
		EXPECT_CONTENT(t, q, "at the limit\n");
	}
	st = LSTAT(t, q);
	EXPECT(t, strlen(q) == PATH_MAX - 1 && st.st_size == 13, "path of %zu bytes", strlen(q));
	strcat(q, "y");
	ERR(t, openat(t->fd, q, O_RDONLY), ENAMETOOLONG);
	free(n255);
	free(n256);
	free(lower);
}

PTEST(posix_names, enametoolong_and_paths_near_path_max)
{
	p_both(sc_names, 0);
}

/* The entry is a 0:0 character device: overlayfs's whiteout, aufs's too. */
static void expect_dev00(struct pt *t, int line, const char *path)
{
	struct stat st = p_lstat(t, line, path);

	if (!S_ISCHR(st.st_mode) || st.st_rdev != makedev(0, 0))
		p_fail(t, line, "'%s' is not a 0:0 character device: mode %o rdev %lx", path,
		       st.st_mode, (unsigned long)st.st_rdev);
}
#define EXPECT_DEV00(t, path) expect_dev00(t, __LINE__, path)

/* name is one of the lines of a p_list() result. */
static bool has_name(const char *list, const char *name)
{
	size_t n = strlen(name);

	for (const char *p = list; *p; p = strchr(p, '\n') + 1)
		if (!strncmp(p, name, n) && p[n] == '\n')
			return true;
	return false;
}

/*
 * Other overlays' markers are ordinary entries: aufs's .wh.NAME and
 * .wh..wh..opq files, 0:0 character devices (overlayfs's whiteouts), also
 * named like cjfs's own whiteout of a PKG file; both from PKG (see the test)
 * and made through the mount. Device nodes are not promoted by commit, so
 * those made here are gone again at the end (as in sc_special); those from
 * PKG stay or are deleted.
 */
static void sc_foreign_markers(struct pt *t)
{
	bool dev = geteuid() == 0;
	struct stat st;
	char *l;

	/* From PKG: they list, stat and read like files and hide nothing. */
	EXPECT_CONTENT(t, ".wh.x", "aufs x\n");
	EXPECT_CONTENT(t, "x", "x\n");
	EXPECT_CONTENT(t, ".wh.a", "aufs a\n");
	EXPECT_CONTENT(t, "a", "alpha\n");
	EXPECT_CONTENT(t, "d/.wh..wh..opq", "opq\n");
	st = LSTAT(t, ".wh.x");
	EXPECT(t, S_ISREG(st.st_mode) && st.st_size == 7 && (st.st_mode & 07777) == 0644,
	       "'.wh.x': mode %o size %lld", st.st_mode, (long long)st.st_size);
	if (dev) {
		EXPECT_DEV00(t, "c00");
		EXPECT_DEV00(t, ".cjfs~wh.x.sh");
		EXPECT_CONTENT(t, "x.sh", "#!/bin/sh\necho x\n");
		EXPECT_DEV00(t, "d/sub/.cjfs~wh.s");
		EXPECT_CONTENT(t, "d/sub/s", "sierra\n");
		l = p_list(t, "d/sub");
		EXPECT(t, !strcmp(l, ".cjfs~wh.s\ndeep\ns\n"), "d/sub lists '%s'", l);
		free(l);
	}

	/* Made through the mount, before and after the name they would hide. */
	p_put(t, ".wh.b", "aufs b\n");
	EXPECT_CONTENT(t, "b", "bravo\n");
	p_put(t, ".wh.new", "aufs new\n");
	p_put(t, "new", "new\n");
	p_put(t, "new2", "new2\n");
	p_put(t, ".wh.new2", "aufs new2\n");
	EXPECT_CONTENT(t, "new", "new\n");
	EXPECT_CONTENT(t, "new2", "new2\n");
	p_put(t, "d/sub/deep/.wh.t", "aufs t\n");
	EXPECT_CONTENT(t, "d/sub/deep/t", "tango\n");
	p_put(t, "e3/.wh..wh..opq", "opq\n");
	p_put(t, "d/sub/deep/.wh..wh..opq", "opq\n");
	EXPECT_CONTENT(t, "d/sub/deep/t", "tango\n");
	l = p_list(t, "d/sub/deep");
	EXPECT(t, !strcmp(l, ".wh..wh..opq\n.wh.t\nt\n"), "d/sub/deep lists '%s'", l);
	free(l);
	l = p_list(t, "e3");
	EXPECT(t, !strcmp(l, ".wh..wh..opq\n"), "e3 lists '%s'", l);
	free(l);
	/* Changed, renamed over a name's marker and deleted like files. */
	p_put(t, ".wh.a", "changed\n");
	EXPECT_CONTENT(t, ".wh.a", "changed\n");
	EXPECT_CONTENT(t, "a", "alpha\n");
	OK(t, renameat(t->fd, ".wh.x", t->fd, "d/.wh.f"));
	EXPECT_CONTENT(t, "d/.wh.f", "aufs x\n");
	EXPECT_CONTENT(t, "d/f", "foxtrot\n");
	EXPECT_CONTENT(t, "x", "x\n");
	ERR(t, fstatat(t->fd, ".wh.x", &st, AT_SYMLINK_NOFOLLOW), ENOENT);
	OK(t, unlinkat(t->fd, "d/.wh..wh..opq", 0));
	ERR(t, fstatat(t->fd, "d/.wh..wh..opq", &st, AT_SYMLINK_NOFOLLOW), ENOENT);
	OK(t, unlinkat(t->fd, ".wh.b", 0));
	EXPECT_CONTENT(t, "b", "bravo\n");
	OK(t, unlinkat(t->fd, ".wh.new2", 0));
	EXPECT_CONTENT(t, "new2", "new2\n");
	l = p_list(t, "d");
	EXPECT(t, !strcmp(l, ".cjfs~opaque\n.wh.f\nf\nhl2\nsub\n"), "d lists '%s'", l);
	free(l);

	if (dev) {
		/* 0:0 devices: plain, named like cjfs's whiteout of a PKG file, and in place of one. */
		OK(t, mknodat(t->fd, "d/c00", S_IFCHR | 0644, makedev(0, 0)));
		EXPECT_DEV00(t, "d/c00");
		OK(t, mknodat(t->fd, ".cjfs~wh.hl1", S_IFCHR | 0600, makedev(0, 0)));
		EXPECT_DEV00(t, ".cjfs~wh.hl1");
		EXPECT_CONTENT(t, "hl1", "linked\n");
		OK(t, mknodat(t->fd, "d/sub/deep/.cjfs~wh.t", S_IFCHR | 0600, makedev(0, 0)));
		EXPECT_CONTENT(t, "d/sub/deep/t", "tango\n");
		OK(t, unlinkat(t->fd, "d/sub/s", 0));
		ERR(t, fstatat(t->fd, "d/sub/s", &st, AT_SYMLINK_NOFOLLOW), ENOENT);
		OK(t, mknodat(t->fd, "d/sub/s", S_IFCHR | 0644, makedev(0, 0)));
		EXPECT_DEV00(t, "d/sub/s");
		l = p_list(t, "d/sub");
		EXPECT(t, !strcmp(l, ".cjfs~wh.s\ndeep\ns\n"), "d/sub lists '%s'", l);
		free(l);
		l = p_list(t, "d/sub/deep");
		EXPECT(t, !strcmp(l, ".cjfs~wh.t\n.wh..wh..opq\n.wh.t\nt\n"),
		       "d/sub/deep lists '%s'", l);
		free(l);
		ERR(t, mknodat(t->fd, "c00", S_IFCHR | 0644, makedev(0, 0)), EEXIST);
		OK(t, renameat(t->fd, "d/c00", t->fd, "e3/c00"));
		EXPECT_DEV00(t, "e3/c00");
		ERR(t, fstatat(t->fd, "d/c00", &st, AT_SYMLINK_NOFOLLOW), ENOENT);
		/* Deleted, they take nothing with them, and bring nothing back. */
		OK(t, unlinkat(t->fd, "e3/c00", 0));
		OK(t, unlinkat(t->fd, ".cjfs~wh.hl1", 0));
		EXPECT_CONTENT(t, "hl1", "linked\n");
		OK(t, unlinkat(t->fd, "d/sub/deep/.cjfs~wh.t", 0));
		EXPECT_CONTENT(t, "d/sub/deep/t", "tango\n");
		OK(t, unlinkat(t->fd, "d/sub/s", 0));
		ERR(t, fstatat(t->fd, "d/sub/s", &st, AT_SYMLINK_NOFOLLOW), ENOENT);
		OK(t, unlinkat(t->fd, ".cjfs~wh.x.sh", 0));
		ERR(t, fstatat(t->fd, ".cjfs~wh.x.sh", &st, AT_SYMLINK_NOFOLLOW), ENOENT);
		EXPECT_CONTENT(t, "x.sh", "#!/bin/sh\necho x\n");
		EXPECT_DEV00(t, "c00");
		EXPECT_DEV00(t, "d/sub/.cjfs~wh.s");
		l = p_list(t, "d/sub");
		EXPECT(t, !strcmp(l, ".cjfs~wh.s\ndeep\n"), "d/sub lists '%s'", l);
		free(l);
	}
	l = p_list(t, ".");
	EXPECT(t,
	       has_name(l, ".wh.a") && has_name(l, "a") && has_name(l, "b") &&
		       has_name(l, ".wh.new") && has_name(l, "new") && has_name(l, "new2") &&
		       has_name(l, "x") && has_name(l, "hl1") && has_name(l, "x.sh") &&
		       !has_name(l, ".wh.x") && !has_name(l, ".wh.b") && !has_name(l, ".wh.new2") &&
		       has_name(l, "c00") == dev && !has_name(l, ".cjfs~wh.hl1") &&
		       !has_name(l, ".cjfs~wh.x.sh"),
	       "root lists '%s'", l);
	free(l);
}

static void sc_markers(struct pt *t)
{
	struct stat st;
	char *l;

	/* Files named like the overlay's markers are ordinary files. */
	p_put(t, ".cjfs~wh.a", "not a whiteout\n");
	EXPECT_CONTENT(t, "a", "alpha\n");
	p_put(t, "d/.cjfs~opaque", "not opaque\n");
	EXPECT_CONTENT(t, "d/f", "foxtrot\n");
	p_put(t, "e/.cjfs~origin", "d");
	l = p_list(t, "e");
	EXPECT(t, !strcmp(l, ".cjfs~origin\n"), "e lists '%s'", l);
	free(l);
	p_put(t, ".cjfs~u.a", "escaped\n");
	OK(t, mkdirat(t->fd, ".cjfs~wh.b", 0755));
	EXPECT_CONTENT(t, "b", "bravo\n");
	OK(t, symlinkat("a", t->fd, ".cjfs~wH.0000"));
	l = p_list(t, ".");
	EXPECT(t,
	       strstr(l, ".cjfs~wh.a\n.cjfs~wh.b\n") && strstr(l, "\na\n") && strstr(l, "\nb\n") &&
		       strstr(l, ".cjfs~u.a\n") && strstr(l, ".cjfs~wH.0000\n"),
	       "root lists '%s'", l);
	free(l);
	/* Removing a lower file hides it, and its marker is not a name in the tree. */
	OK(t, unlinkat(t->fd, "d/g", 0));
	ERR(t, fstatat(t->fd, "d/.cjfs~wh.g", &st, 0), ENOENT);
	ERR(t, fstatat(t->fd, "d/.cjfs~u.g", &st, 0), ENOENT);
	p_put(t, "d/.cjfs~wh.f", "x");
	EXPECT_CONTENT(t, "d/f", "foxtrot\n");
	OK(t, unlinkat(t->fd, "d/.cjfs~wh.f", 0));
	EXPECT_CONTENT(t, "d/f", "foxtrot\n");
	/* Removing the marker-named file removes only it. */
	OK(t, unlinkat(t->fd, ".cjfs~wh.a", 0));
	EXPECT_CONTENT(t, "a", "alpha\n");
	OK(t, renameat(t->fd, ".cjfs~u.a", t->fd, "d/.cjfs~opaque"));
	EXPECT_CONTENT(t, "d/.cjfs~opaque", "escaped\n");
	EXPECT_CONTENT(t, "d/f", "foxtrot\n");
	l = p_list(t, "d");
	EXPECT(t, !strcmp(l, ".cjfs~opaque\n.wh..wh..opq\nf\nhl2\nsub\n"), "d lists '%s'", l);
	free(l);
	OK(t, unlinkat(t->fd, ".cjfs~wh.b", AT_REMOVEDIR));
	EXPECT_CONTENT(t, "b", "bravo\n");
	sc_foreign_markers(t);
}

PTEST(posix_names, marker_names_neither_hide_nor_create_whiteouts)
{
	const char *dirs[] = { p_env.pkg, p_ctrl };

	/* Other overlays' markers that already exist in PKG (the devices only as root). */
	for (size_t i = 0; i < 2; i++)
		cr_assert_eq(h_sh(dirs[i],
				  "set -e; umask 022; "
				  "printf 'aufs x\\n' > .wh.x; printf 'x\\n' > x; "
				  "printf 'aufs a\\n' > .wh.a; printf 'opq\\n' > d/.wh..wh..opq; "
				  "if [ $(id -u) = 0 ]; then mknod c00 c 0 0; "
				  "mknod .cjfs~wh.x.sh c 0 0; mknod d/sub/.cjfs~wh.s c 0 0; fi"),
			     0);
	p_both(sc_markers, 0);
}

/* ---- readdir ---- */

struct ent {
	char name[NAME_MAX + 1];
	unsigned char type;
	long pos;
};

static size_t read_all(struct pt *t, DIR *d, struct ent *v, size_t cap)
{
	struct dirent *de;
	size_t n = 0;

	for (;;) {
		long pos = telldir(d);

		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		EXPECT(t, n < cap, "too many entries");
		snprintf(v[n].name, sizeof(v[n].name), "%s", de->d_name);
		v[n].type = de->d_type;
		v[n].pos = pos;
		n++;
	}
	EXPECT(t, errno == 0, "readdir: %s", strerrorname_np(errno));
	return n;
}

static bool listed(const struct ent *v, size_t n, const char *name)
{
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		k += !strcmp(v[i].name, name);
	return k == 1;
}

static void expect_unique(struct pt *t, const struct ent *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		EXPECT(t, strncmp(v[i].name, ".cjfs~wh.", 9) != 0, "a marker is listed");
		for (size_t j = i + 1; j < n; j++)
			EXPECT(t, strcmp(v[i].name, v[j].name) != 0, "'%s' listed twice",
			       v[i].name);
	}
}

static void check_seek(struct pt *t, const char *dir)
{
	struct ent v[64], w[64];
	size_t n, m;
	DIR *d;

	d = fdopendir((int)OK(t, openat(t->fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
	EXPECT(t, d != NULL, "fdopendir");
	n = read_all(t, d, v, 64);
	EXPECT(t, n >= 4, "%s has %zu entries", dir, n);
	expect_unique(t, v, n);
	EXPECT(t, listed(v, n, ".") && listed(v, n, ".."), "%s: no '.' or '..'", dir);
	/* seekdir to every position telldir gave replays the same sequence. */
	for (size_t k = 0; k < n; k += 2) {
		seekdir(d, v[k].pos);
		m = read_all(t, d, w, 64);
		EXPECT(t, m == n - k, "%s: seekdir(%zu) gave %zu entries, want %zu", dir, k, m,
		       n - k);
		for (size_t i = 0; i < m; i++)
			EXPECT(t, !strcmp(w[i].name, v[k + i].name), "%s: seekdir(%zu)", dir, k);
	}
	rewinddir(d);
	m = read_all(t, d, w, 64);
	EXPECT(t, m == n, "%s: rewinddir", dir);
	closedir(d);
}

static void sc_readdir(struct pt *t)
{
	struct ent v[64];
	struct stat st;
	size_t n;
	DIR *d;

	check_seek(t, "d");
	/* Change the root: delete lower, copy up, create, rename, add a FIFO. */
	OK(t, unlinkat(t->fd, "a", 0));
	p_put(t, "b", "B\n");
	p_put(t, "c", "C\n");
	OK(t, renameat(t->fd, "x.sh", t->fd, "y.sh"));
	OK(t, mkfifoat(t->fd, "fifo", 0644));
	OK(t, mkdirat(t->fd, "newdir", 0755));
	d = fdopendir((int)OK(t, openat(t->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
	n = read_all(t, d, v, 64);
	expect_unique(t, v, n);
	EXPECT(t,
	       !listed(v, n, "a") && !listed(v, n, "x.sh") && listed(v, n, "b") &&
		       listed(v, n, "c") && listed(v, n, "y.sh") && listed(v, n, "d") &&
		       listed(v, n, ".") && listed(v, n, ".."),
	       "merged listing of the root");
	for (size_t i = 0; i < n; i++) {
		unsigned char want;

		if (!strcmp(v[i].name, ".."))
			continue;
		OK(t, fstatat(dirfd(d), v[i].name, &st, AT_SYMLINK_NOFOLLOW));
		want = (unsigned char)IFTODT(st.st_mode);
		EXPECT(t, v[i].type == want, "d_type of '%s' is %d, want %d", v[i].name, v[i].type,
		       want);
	}
	/* rewinddir shows the directory as it is now. */
	OK(t, unlinkat(t->fd, "b", 0));
	p_put(t, "c2", "c2\n");
	rewinddir(d);
	n = read_all(t, d, v, 64);
	EXPECT(t, !listed(v, n, "b") && listed(v, n, "c2"), "rewinddir shows an old state");
	closedir(d);
	/* The same in a directory that was only below when opened. */
	d = fdopendir((int)OK(t, openat(t->fd, "d/sub", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
	n = read_all(t, d, v, 64);
	EXPECT(t, listed(v, n, "s"), "d/sub lists no s");
	OK(t, unlinkat(t->fd, "d/sub/s", 0));
	p_put(t, "d/sub/s2", "x\n");
	rewinddir(d);
	n = read_all(t, d, v, 64);
	EXPECT(t, !listed(v, n, "s") && listed(v, n, "s2") && listed(v, n, "deep"),
	       "rewinddir in a directory that was only below shows an old state");
	closedir(d);
	check_seek(t, ".");
	check_seek(t, "d/sub");
	OK(t, unlinkat(t->fd, "fifo", 0));
}

PTEST(posix_readdir, merged_without_duplicates_with_d_type_and_seekdir)
{
	p_both(sc_readdir, 0);
}

struct churn {
	int dirfd;
	volatile int stop;
	int err;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	char name[32];

	for (unsigned i = 0; !c->stop; i++) {
		int fd;

		snprintf(name, sizeof(name), "tmp%u", i % 50);
		fd = openat(c->dirfd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
		else
			c->err = errno;
		snprintf(name, sizeof(name), "tmp%u", (i + 25) % 50);
		if (unlinkat(c->dirfd, name, 0) < 0 && errno != ENOENT)
			c->err = errno;
	}
	return NULL;
}

static void sc_readdir_churn(struct pt *t)
{
	struct churn c = { .stop = 0 };
	struct ent *v = calloc(256, sizeof(*v));
	pthread_t th;
	char name[32];

	cr_assert_not_null(v);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "d/stable%d", i);
		p_put(t, name, "s\n");
	}
	c.dirfd = (int)OK(t, openat(t->fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	cr_assert_eq(pthread_create(&th, NULL, churn_thread, &c), 0);
	for (int round = 0; round < 100; round++) {
		DIR *d = fdopendir(
			(int)OK(t, openat(t->fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));
		size_t n = read_all(t, d, v, 256);

		closedir(d);
		expect_unique(t, v, n);
		for (int i = 0; i < 20; i++) {
			snprintf(name, sizeof(name), "stable%d", i);
			EXPECT(t, listed(v, n, name), "round %d: '%s' missing", round, name);
		}
		EXPECT(t, listed(v, n, "f") && listed(v, n, "sub"), "round %d: lower entries",
		       round);
	}
	c.stop = 1;
	pthread_join(th, NULL);
	EXPECT(t, c.err == 0, "create/unlink failed: %s", strerrorname_np(c.err));
	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "tmp%d", i);
		(void)unlinkat(c.dirfd, name, 0);
	}
	close(c.dirfd);
	free(v);
}

PTEST(posix_readdir, stable_under_concurrent_create_and_unlink)
{
	p_both(sc_readdir_churn, 0);
}

/*
 * A walk through a directory of a few thousand entries (many READDIRs) while
 * entries are created, removed and renamed in it: every entry left alone is
 * listed exactly once, however the changes fall between READDIRs. Under
 * cjfs the first change also turns a directory that was only in PKG into a
 * merged one in the middle of the walk.
 */
#define WALK_N 3000

/* dir in root with n empty files named prefix + i in digits digits. */
static void make_entries(const char *root, const char *dir, const char *prefix, int digits, int n)
{
	char p[PATH_MAX];
	int dfd;

	snprintf(p, sizeof(p), "%s/%s", root, dir);
	cr_assert_eq(mkdir(p, 0755), 0);
	dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(dfd >= 0);
	for (int i = 0; i < n; i++) {
		char name[NAME_MAX + 1];
		int fd;

		snprintf(name, sizeof(name), "%s%0*d", prefix, digits, i);
		fd = openat(dfd, name, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		cr_assert(fd >= 0);
		close(fd);
	}
	close(dfd);
}

struct walk {
	int count[WALK_N]; /* times each entry-... name was listed */
};
static bool walk_touched[WALK_N]; /* removed or renamed in this scenario */

/* Read up to max entries of d (all if max < 0) into w; the position after them is returned. */
static long walk_read(struct pt *t, DIR *d, struct walk *w, int max)
{
	long pos = telldir(d);
	struct dirent *de;

	for (int k = 0; max < 0 || k < max; k++) {
		int i;

		errno = 0;
		de = readdir(d);
		if (!de) {
			EXPECT(t, errno == 0, "readdir: %s", strerrorname_np(errno));
			break;
		}
		pos = telldir(d);
		if (sscanf(de->d_name, "entry-with-a-longer-name-%d", &i) == 1 && i >= 0 &&
		    i < WALK_N)
			w->count[i]++;
	}
	return pos;
}

/* Every entry left alone listed once in a (plus b), a touched one at most once. */
static void walk_check(struct pt *t, const struct walk *a, const struct walk *b, const char *what)
{
	for (int i = 0; i < WALK_N; i++) {
		int n = a->count[i] + (b ? b->count[i] : 0);

		EXPECT(t, walk_touched[i] ? n <= 1 : n == 1, "%s: entry %d listed %d times", what,
		       i, n);
	}
}

/* Remove ten entries from `from` on, rename the next one, create new_name. */
static void walk_change(struct pt *t, int from, const char *new_name)
{
	char a[64], b[64];

	p_put(t, new_name, "n\n");
	for (int i = from; i < from + 10; i++) {
		snprintf(a, sizeof(a), "w/entry-with-a-longer-name-%05d", i);
		OK(t, unlinkat(t->fd, a, 0));
		walk_touched[i] = true;
	}
	snprintf(a, sizeof(a), "w/entry-with-a-longer-name-%05d", from + 10);
	snprintf(b, sizeof(b), "w/renamed-%05d", from + 10);
	OK(t, renameat(t->fd, a, t->fd, b));
	walk_touched[from + 10] = true;
}

static DIR *walk_open(struct pt *t)
{
	DIR *d = fdopendir((int)OK(t, openat(t->fd, "w", O_RDONLY | O_DIRECTORY | O_CLOEXEC)));

	EXPECT(t, d != NULL, "fdopendir: %s", strerrorname_np(errno));
	return d;
}

static void sc_walk(struct pt *t)
{
	struct walk *w = calloc(3, sizeof(*w)), *rest = w + 1, *again = w + 2;
	DIR *a, *b;
	long pos;

	cr_assert_not_null(w);
	memset(walk_touched, 0, sizeof(walk_touched));
	/* Changes in the middle of one walk. */
	a = walk_open(t);
	walk_read(t, a, w, 500);
	walk_change(t, 0, "w/new-1");
	pos = walk_read(t, a, w, 1000);
	walk_change(t, 100, "w/new-2");
	walk_read(t, a, rest, -1);
	walk_check(t, w, rest, "one walk");
	/* seekdir back in the same stream after more changes: the rest once more, and only it. */
	walk_change(t, 200, "w/new-3");
	seekdir(a, pos);
	walk_read(t, a, again, -1);
	for (int i = 0; i < WALK_N; i++) {
		EXPECT(t, walk_touched[i] ? again->count[i] <= rest->count[i]
					  : again->count[i] == rest->count[i],
		       "after seekdir: entry %d listed %d times, %d before", i, again->count[i],
		       rest->count[i]);
	}
	closedir(a);
	/*
	 * Two streams: the directory changes while one is in the middle, the
	 * other walks all of it (under cjfs the kernel then drops its cached
	 * listing and the first stream's next READDIR lands in a new listing),
	 * then the first goes on.
	 */
	memset(w, 0, 3 * sizeof(*w));
	a = walk_open(t);
	b = walk_open(t);
	walk_read(t, a, w, 700);
	walk_change(t, 300, "w/new-4");
	walk_read(t, b, rest, -1);
	walk_check(t, rest, NULL, "second stream");
	walk_read(t, a, w, -1);
	walk_check(t, w, NULL, "first stream");
	closedir(a);
	closedir(b);
	free(w);
}

Test(posix_readdir, entries_left_alone_are_listed_once_while_the_directory_changes,
     .init = p_setup, .fini = p_teardown, .timeout = 300)
{
	make_entries(p_env.pkg, "w", "entry-with-a-longer-name-", 5, WALK_N);
	make_entries(p_ctrl, "w", "entry-with-a-longer-name-", 5, WALK_N);
	p_both(sc_walk, 0);
}

#define BIG_N 100000

static void make_big(const char *root)
{
	make_entries(root, "big", "entry-", 6, BIG_N);
}

static size_t count_big(struct pt *t, bool *seen)
{
	int fd = (int)OK(t, openat(t->fd, "big", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	DIR *d = fdopendir(fd);
	struct dirent *de;
	size_t n = 0;

	memset(seen, 0, BIG_N + 1);
	while ((de = readdir(d))) {
		int i;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		if (!strcmp(de->d_name, "added")) {
			i = BIG_N;
		} else {
			EXPECT(t, sscanf(de->d_name, "entry-%d", &i) == 1 && i >= 0 && i < BIG_N,
			       "stray entry '%s'", de->d_name);
		}
		EXPECT(t, !seen[i], "'%s' listed twice", de->d_name);
		seen[i] = true;
		EXPECT(t, de->d_type == DT_REG, "d_type %d", de->d_type);
	}
	closedir(d);
	return n;
}

static void sc_big(struct pt *t)
{
	bool *seen = malloc(BIG_N + 1);
	size_t n;

	cr_assert_not_null(seen);
	n = count_big(t, seen);
	EXPECT(t, n == BIG_N, "%zu entries, want %d", n, BIG_N);
	/* Once it has an upper part too: one entry gone, one added. */
	OK(t, unlinkat(t->fd, "big/entry-050000", 0));
	p_put(t, "big/added", "");
	n = count_big(t, seen);
	EXPECT(t, n == BIG_N && !seen[50000] && seen[BIG_N], "%zu entries after changes", n);
	if (t->cjfs) {
		cr_assert_eq(h_cjfs(&p_env, "status", p_env.mnt, NULL), 0, "%s", p_env.err);
		cr_assert_str_eq(p_env.out, "A big/added\nD big/entry-050000\n");
	}
	free(seen);
}

/* 200,000 creates cost seconds on a disk and far less in memory: use tmpfs if there is one. */
static void setup_in_memory(void)
{
	struct stat st;

	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
		setenv("TMPDIR", "/dev/shm", 1);
	p_setup();
}

Test(posix_readdir, a_directory_of_100000_entries, .init = setup_in_memory, .fini = p_teardown,
     .timeout = 300)
{
	make_big(p_env.pkg);
	make_big(p_ctrl);
	p_both(sc_big, P_NO_TREE);
	p_commit();
	cr_assert_not_null(strstr(p_env.out, "0 modified, 1 added, 1 deleted"), "%s", p_env.out);
}

/* ---- permissions ---- */

#define NOBODY 65534

/* Checks run as another user: the first failure is written to fd and ends the child. */
#define CK(cond, ...)                                                                              \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			dprintf(out, "line %d: ", __LINE__);                                       \
			dprintf(out, __VA_ARGS__);                                                 \
			dprintf(out, " (errno %s)", strerrorname_np(errno));                       \
			_exit(1);                                                                  \
		}                                                                                  \
	} while (0)
#define CK_ERR(expr, e) CK((expr) == -1 && errno == (e), "%s: want %s", #expr, strerrorname_np(e))
#define CK_OK(expr) CK((expr) >= 0, "%s failed", #expr)

static void as_nobody(int dfd, int out)
{
	struct timespec tv[2] = { { 1, 0 }, { 1, 0 } };
	struct stat st;
	int fd;

	CK_OK(setgroups(0, NULL));
	CK_OK(setgid(NOBODY));
	CK_OK(setuid(NOBODY));
	umask(022);
	/* Reading root's files is allowed, writing them is not. */
	fd = openat(dfd, "a", O_RDONLY | O_CLOEXEC);
	CK_OK(fd);
	close(fd);
	CK_ERR(openat(dfd, "a", O_WRONLY), EACCES);
	CK_ERR(openat(dfd, "a", O_RDONLY | O_TRUNC), EACCES);
	CK_ERR(openat(dfd, "ro", O_WRONLY), EACCES);
	CK_ERR(faccessat(dfd, "a", W_OK, 0), EACCES);
	CK_OK(faccessat(dfd, "a", R_OK, 0));
	CK_OK(faccessat(dfd, "x.sh", X_OK, 0));
	CK_ERR(faccessat(dfd, "a", X_OK, 0), EACCES);
	/* Nor are changes in root's directories. */
	CK_ERR(openat(dfd, "new", O_CREAT | O_WRONLY, 0644), EACCES);
	CK_ERR(mkdirat(dfd, "newdir", 0755), EACCES);
	CK_ERR(unlinkat(dfd, "a", 0), EACCES);
	CK_ERR(renameat(dfd, "a", dfd, "d/a"), EACCES);
	CK_ERR(symlinkat("a", dfd, "d/l"), EACCES);
	CK_ERR(fchmodat(dfd, "a", 0777, 0), EPERM);
	CK_ERR(fchownat(dfd, "a", NOBODY, NOBODY, 0), EPERM);
	CK_ERR(utimensat(dfd, "a", NULL, 0), EACCES);
	CK_ERR(utimensat(dfd, "a", tv, 0), EPERM);
	/* A private directory cannot be entered or listed. */
	CK_ERR(fstatat(dfd, "priv/secret", &st, 0), EACCES);
	CK_ERR(openat(dfd, "priv", O_RDONLY | O_DIRECTORY), EACCES);
	CK_OK(fstatat(dfd, "priv", &st, 0));
	/* In the sticky world-writable directory: own files yes, root's no. */
	fd = openat(dfd, "t/mine", O_CREAT | O_WRONLY | O_CLOEXEC, 0666);
	CK_OK(fd);
	CK_OK(write(fd, "mine\n", 5));
	CK_OK(fstat(fd, &st));
	CK(st.st_uid == NOBODY && st.st_gid == NOBODY && (st.st_mode & 07777) == 0644,
	   "new file %u:%u %o", st.st_uid, st.st_gid, st.st_mode & 07777);
	close(fd);
	CK_OK(fchmodat(dfd, "t/mine", 0600, 0));
	CK_OK(utimensat(dfd, "t/mine", tv, 0));
	CK_ERR(fchownat(dfd, "t/mine", 0, 0, 0), EPERM);
	CK_OK(renameat(dfd, "t/mine", dfd, "t/mine2"));
	CK_ERR(unlinkat(dfd, "t/rootfile", 0), EPERM);
	CK_ERR(renameat(dfd, "t/rootfile", dfd, "t/taken"), EPERM);
	CK_ERR(renameat(dfd, "t/mine2", dfd, "t/rootfile"), EPERM);
	CK_ERR(openat(dfd, "t/rootfile", O_WRONLY), EACCES);
	CK_OK(mkdirat(dfd, "t/mydir", 0777));
	CK_OK(fstatat(dfd, "t/mydir", &st, 0));
	CK(st.st_uid == NOBODY && (st.st_mode & 07777) == 0755, "new dir %u %o", st.st_uid,
	   st.st_mode & 07777);
	CK_OK(symlinkat("mine2", dfd, "t/mylink"));
	CK_OK(fstatat(dfd, "t/mylink", &st, AT_SYMLINK_NOFOLLOW));
	CK(st.st_uid == NOBODY, "new symlink owned by %u", st.st_uid);
	CK_OK(mkfifoat(dfd, "t/myfifo", 0600));
	CK_OK(fstatat(dfd, "t/myfifo", &st, AT_SYMLINK_NOFOLLOW));
	CK(st.st_uid == NOBODY, "new FIFO owned by %u", st.st_uid);
	CK_OK(unlinkat(dfd, "t/myfifo", 0));
	CK_OK(linkat(dfd, "t/mine2", dfd, "t/mine3", 0));
	CK_OK(unlinkat(dfd, "t/mine3", 0));
	/* A set-group-ID directory passes its group on. */
	fd = openat(dfd, "t/sg/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
	CK_OK(fd);
	close(fd);
	CK_OK(fstatat(dfd, "t/sg/f", &st, 0));
	CK(st.st_gid == 1234, "file in a setgid directory has group %u", st.st_gid);
	CK_OK(mkdirat(dfd, "t/sg/sub", 0755));
	CK_OK(fstatat(dfd, "t/sg/sub", &st, 0));
	CK(st.st_gid == 1234 && (st.st_mode & S_ISGID), "directory in a setgid directory: %u %o",
	   st.st_gid, st.st_mode & 07777);
	/* Writing to another's file that allows it clears set-user-ID. */
	fd = openat(dfd, "t/suid", O_WRONLY | O_CLOEXEC);
	CK_OK(fd);
	CK_OK(write(fd, "w", 1));
	close(fd);
	CK_OK(fstatat(dfd, "t/suid", &st, 0));
	CK(!(st.st_mode & S_ISUID), "a write left set-user-ID: %o", st.st_mode & 07777);
	_exit(0);
}

/* Run fn(tree fd, report fd) in a child that becomes nobody; its first failure fails t. */
static void run_as_nobody(struct pt *t, void (*fn)(int dfd, int out))
{
	int pipefd[2], status;
	char msg[512] = "";
	pid_t pid;

	cr_assert_eq(pipe2(pipefd, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		close(pipefd[0]);
		fn(t->fd, pipefd[1]);
	}
	close(pipefd[1]);
	(void)!read(pipefd[0], msg, sizeof(msg) - 1);
	close(pipefd[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	EXPECT(t, WIFEXITED(status) && WEXITSTATUS(status) == 0, "as uid %d: %s", NOBODY, msg);
}

static void sc_perm(struct pt *t)
{
	struct stat st;

	OK(t, mkdirat(t->fd, "t/sg", 02777));
	OK(t, fchmodat(t->fd, "t/sg", 02777, 0));
	OK(t, fchownat(t->fd, "t/sg", 0, 1234, 0));
	p_put(t, "t/suid", "s\n");
	OK(t, fchmodat(t->fd, "t/suid", 04777, 0));
	run_as_nobody(t, as_nobody);
	st = LSTAT(t, "t/mine2");
	EXPECT(t, st.st_uid == NOBODY && (st.st_mode & 07777) == 0600, "owner %u mode %o",
	       st.st_uid, st.st_mode & 07777);
}

PTEST(posix_perm, another_user_on_an_allow_other_mount)
{
	if (geteuid() != 0)
		p_skip("needs root to become another user");
	p_both(sc_perm, P_ALLOW_OTHER);
}

/* sc_perm, and the mount carries allow_other. */
static void sc_perm_o(struct pt *t)
{
	char line[4096], want[PATH_MAX + 2];
	bool found = false;
	FILE *f;

	sc_perm(t);
	if (!t->cjfs)
		return;
	f = fopen("/proc/self/mountinfo", "re");
	cr_assert_not_null(f);
	snprintf(want, sizeof(want), " %s ", t->root);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, want) && strstr(line, " fuse.cjfs ")) {
			found = true;
			EXPECT(t, strstr(line, "allow_other"), "no allow_other in: %s", line);
		}
	fclose(f);
	EXPECT(t, found, "'%s' is not in /proc/self/mountinfo", t->root);
}

/* `cjfs mount -o allow_other` is the same as --allow-other. */
PTEST(posix_perm, another_user_on_a_mount_made_with_o_allow_other)
{
	if (geteuid() != 0)
		p_skip("needs root to become another user");
	p_both(sc_perm_o, P_O_ALLOW_OTHER);
}

/*
 * POSIX ACLs (the kernel's own rules, as on a plain directory): an access
 * ACL entry for another user grants what the mode alone would not, a
 * directory's default ACL is inherited by what is created in it, and an
 * ACL set through the mount on a file still only in PKG takes effect (on
 * the upper copy; PKG's file keeps none).
 */
#define ACL_USER_OBJ 0x01
#define ACL_USER 0x02
#define ACL_GROUP_OBJ 0x04
#define ACL_MASK 0x10
#define ACL_OTHER 0x20

/* The xattr form of "user::rw(x), user:uid:perm, group::---, mask::perm, other::---". */
static size_t acl_blob(char *buf, unsigned uid, unsigned perm, bool dir)
{
	const struct {
		uint16_t tag, perm;
		uint32_t id;
	} ents[] = {
		{ ACL_USER_OBJ, dir ? 7 : 6, UINT32_MAX }, { ACL_USER, (uint16_t)perm, uid },
		{ ACL_GROUP_OBJ, 0, UINT32_MAX },	   { ACL_MASK, (uint16_t)perm, UINT32_MAX },
		{ ACL_OTHER, 0, UINT32_MAX },
	};
	uint32_t version = 2;

	memcpy(buf, &version, 4);
	memcpy(buf + 4, ents, sizeof(ents));
	return 4 + sizeof(ents);
}

static void acl_set(const char *root, const char *path, const char *name, unsigned perm, bool dir)
{
	char p[PATH_MAX], blob[64];
	size_t n = acl_blob(blob, NOBODY, perm, dir);

	snprintf(p, sizeof(p), "%s/%s", root, path);
	cr_assert_eq(setxattr(p, name, blob, n, 0), 0, "setxattr %s %s: %s", p, name,
		     strerror(errno));
}

static void acl_set_sgid(int dfd, int out, const char *name, bool kept)
{
	char blob[64];
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);

	CK_OK(fd);
	CK_OK(fsetxattr(fd, "system.posix_acl_access", blob, acl_blob(blob, 0, 4, false), 0));
	CK_OK(fstat(fd, &st));
	CK(!!(st.st_mode & S_ISGID) == kept, "%s: mode %o after its ACL was set, want set-group-ID %s",
	   name, st.st_mode & 07777, kept ? "kept" : "dropped");
	close(fd);
}

static void acl_as_nobody(int dfd, int out)
{
	int fd;

	CK_OK(setgroups(0, NULL));
	CK_OK(setgid(NOBODY));
	CK_OK(setuid(NOBODY));
	/* Mode 0600, and an ACL entry lets nobody read. */
	fd = openat(dfd, "acl-r", O_RDONLY | O_CLOEXEC);
	CK_OK(fd);
	close(fd);
	CK_ERR(openat(dfd, "acl-r", O_WRONLY), EACCES);
	CK_ERR(openat(dfd, "plain600", O_RDONLY), EACCES);
	/* A root directory whose ACL lets nobody in and create. */
	fd = openat(dfd, "acl-d/mine", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	CK_OK(fd);
	close(fd);
	/* What root made in it inherited the default ACL. */
	fd = openat(dfd, "acl-d/roots", O_RDONLY | O_CLOEXEC);
	CK_OK(fd);
	close(fd);
	/* An ACL root set through the tree on a file from PKG. */
	fd = openat(dfd, "a", O_WRONLY | O_APPEND | O_CLOEXEC);
	CK_OK(fd);
	CK_OK(write(fd, "nobody\n", 7));
	close(fd);
	/* Setting an ACL drops set-group-ID unless the setter is in the file's group. */
	acl_set_sgid(dfd, out, "sgid-root", false);
	acl_set_sgid(dfd, out, "sgid-mine", true);
	_exit(0);
}

static void sc_acl(struct pt *t)
{
	char blob[64], val[64];
	int fd;

	fd = (int)OK(t, openat(t->fd, "acl-d/roots", O_CREAT | O_WRONLY | O_CLOEXEC, 0640));
	close(fd);
	EXPECT(t, fgetxattr((int)OK(t, fd = openat(t->fd, "acl-d/roots", O_RDONLY | O_CLOEXEC)),
			    "system.posix_acl_access", val, sizeof(val)) > 0,
	       "a new file did not inherit the directory's default ACL: %s",
	       strerrorname_np(errno));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "a", O_RDONLY | O_CLOEXEC));
	OK(t, fsetxattr(fd, "system.posix_acl_access", blob, acl_blob(blob, NOBODY, 6, false), 0));
	close(fd);
	run_as_nobody(t, acl_as_nobody);
	if (t->cjfs) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/a", p_env.pkg);
		EXPECT(t, getxattr(p, "system.posix_acl_access", val, sizeof(val)) < 0,
		       "the ACL set through the mount reached PKG");
	}
}

Test(posix_perm, posix_acls_grant_and_are_inherited_as_on_a_plain_directory, .init = p_setup,
     .fini = p_teardown, .timeout = 120)
{
	const char *roots[] = { p_env.pkg, p_ctrl };

	if (geteuid() != 0)
		p_skip("needs root to become another user");
	for (int i = 0; i < 2; i++) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/acl-r", roots[i]);
		h_write(roots[i], "acl-r", "r\n");
		cr_assert_eq(chmod(p, 0600), 0);
		h_write(roots[i], "plain600", "p\n");
		snprintf(p, sizeof(p), "%s/plain600", roots[i]);
		cr_assert_eq(chmod(p, 0600), 0);
		acl_set(roots[i], "acl-r", "system.posix_acl_access", 4, false);
		snprintf(p, sizeof(p), "%s/acl-d", roots[i]);
		cr_assert_eq(mkdir(p, 0700), 0);
		acl_set(roots[i], "acl-d", "system.posix_acl_access", 7, true);
		acl_set(roots[i], "acl-d", "system.posix_acl_default", 7, true);
		/* nobody's, set-group-ID, one of root's group and one of nobody's. */
		for (int k = 0; k < 2; k++) {
			const char *n = k ? "sgid-mine" : "sgid-root";

			h_write(roots[i], n, "s\n");
			snprintf(p, sizeof(p), "%s/%s", roots[i], n);
			cr_assert_eq(chown(p, NOBODY, k ? NOBODY : 0), 0);
			cr_assert_eq(chmod(p, 02775), 0);
		}
	}
	p_both(sc_acl, P_ALLOW_OTHER | P_NO_COMMIT);
}

/*
 * A new object's mode is the creator's request less the creator's umask,
 * whatever umask the daemon was started with (p_both starts it with 022).
 */
static void sc_umask(struct pt *t)
{
	struct stat st;
	int fd;

	umask(002);
	fd = (int)OK(t, openat(t->fd, "um-file", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
	close(fd);
	OK(t, mkdirat(t->fd, "um-dir", 0777));
	OK(t, mkfifoat(t->fd, "um-fifo", 0666));
	st = LSTAT(t, "um-file");
	EXPECT(t, (st.st_mode & 07777) == 0664, "file %o, want 664", st.st_mode & 07777);
	st = LSTAT(t, "um-dir");
	EXPECT(t, (st.st_mode & 07777) == 0775, "directory %o, want 775", st.st_mode & 07777);
	st = LSTAT(t, "um-fifo");
	EXPECT(t, (st.st_mode & 07777) == 0664, "FIFO %o, want 664", st.st_mode & 07777);
	OK(t, unlinkat(t->fd, "um-fifo", 0));
	umask(0);
	fd = (int)OK(t, openat(t->fd, "um-open", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
	close(fd);
	st = LSTAT(t, "um-open");
	EXPECT(t, (st.st_mode & 07777) == 0666, "file %o with umask 0, want 666",
	       st.st_mode & 07777);
	umask(022);
}

PTEST(posix_mode, new_objects_get_the_creators_umask_not_the_daemons)
{
	p_both(sc_umask, 0);
}

/*
 * In a directory with a default ACL the creator's umask does not apply: the
 * ACL's entries, masked by the requested mode, decide (acl(5)); elsewhere it
 * does. And a directory made where one was deleted gets what any new
 * directory gets there: the default ACL, the group and set-group-ID bit of
 * a set-group-ID directory. "acl-d" has the default ACL
 * user::rwx user:nobody:rwx group::--- mask::rwx other::---.
 */
static void expect_mode(struct pt *t, int line, const char *path, mode_t want)
{
	struct stat st = p_lstat(t, line, path);

	if ((st.st_mode & 07777) != want)
		p_fail(t, line, "%s has mode %o, want %o", path, st.st_mode & 07777, want);
}

static bool has_xattr(struct pt *t, const char *path, const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", t->root, path);
	return lgetxattr(p, name, NULL, 0) > 0;
}

static void sc_umask_acl(struct pt *t)
{
	char blob[64];
	struct stat st;
	int fd;

	umask(077);
	fd = (int)OK(t, openat(t->fd, "acl-d/f", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
	close(fd);
	expect_mode(t, __LINE__, "acl-d/f", 0660);
	OK(t, mkdirat(t->fd, "acl-d/nd", 0777));
	expect_mode(t, __LINE__, "acl-d/nd", 0770);
	EXPECT(t, has_xattr(t, "acl-d/nd", "system.posix_acl_default"),
	       "a new directory did not inherit the default ACL");
	OK(t, mkfifoat(t->fd, "acl-d/nd/p", 0666));
	expect_mode(t, __LINE__, "acl-d/nd/p", 0660);
	/* Outside it the umask applies. */
	fd = (int)OK(t, openat(t->fd, "d/um", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
	close(fd);
	expect_mode(t, __LINE__, "d/um", 0600);
	/* A directory made where one from PKG was removed. */
	OK(t, unlinkat(t->fd, "acl-d/old", AT_REMOVEDIR));
	OK(t, mkdirat(t->fd, "acl-d/old", 0755));
	expect_mode(t, __LINE__, "acl-d/old", 0750);
	EXPECT(t, has_xattr(t, "acl-d/old", "system.posix_acl_default"),
	       "a directory made over a removed one did not inherit the default ACL");
	OK(t, unlinkat(t->fd, "sg/old", AT_REMOVEDIR));
	OK(t, mkdirat(t->fd, "sg/old", 0755));
	st = LSTAT(t, "sg/old");
	EXPECT(t, st.st_gid == NOBODY && (st.st_mode & 07777) == 02700,
	       "a directory made over a removed one in a set-group-ID directory: group %u mode %o, "
	       "want %u 2700",
	       st.st_gid, st.st_mode & 07777, NOBODY);
	/* A default ACL set and removed here changes what the next creation gets. */
	OK(t, mkdirat(t->fd, "e/later", 0700));
	fd = (int)OK(t, openat(t->fd, "e/later/before", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
	close(fd);
	expect_mode(t, __LINE__, "e/later/before", 0600);
	fd = (int)OK(t, openat(t->fd, "e/later", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	OK(t, fsetxattr(fd, "system.posix_acl_default", blob, acl_blob(blob, NOBODY, 7, true), 0));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "e/later/with", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
	close(fd);
	expect_mode(t, __LINE__, "e/later/with", 0660);
	fd = (int)OK(t, openat(t->fd, "e/later", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	OK(t, fremovexattr(fd, "system.posix_acl_default"));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "e/later/after", O_CREAT | O_WRONLY | O_CLOEXEC, 0666));
	close(fd);
	expect_mode(t, __LINE__, "e/later/after", 0600);
	umask(022);
}

Test(posix_mode, a_default_acl_replaces_the_umask_and_new_directories_inherit_as_on_a_plain_one,
     .init = p_setup, .fini = p_teardown, .timeout = 120)
{
	const char *roots[] = { p_env.pkg, p_ctrl };

	if (geteuid() != 0)
		p_skip("needs root to give a directory another group");
	for (int i = 0; i < 2; i++) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "%s/acl-d", roots[i]);
		cr_assert_eq(mkdir(p, 0700), 0);
		acl_set(roots[i], "acl-d", "system.posix_acl_default", 7, true);
		snprintf(p, sizeof(p), "%s/acl-d/old", roots[i]);
		cr_assert_eq(mkdir(p, 0700), 0);
		snprintf(p, sizeof(p), "%s/sg", roots[i]);
		cr_assert_eq(mkdir(p, 0775), 0);
		cr_assert_eq(chown(p, 0, NOBODY), 0);
		cr_assert_eq(chmod(p, 02775), 0);
		snprintf(p, sizeof(p), "%s/sg/old", roots[i]);
		cr_assert_eq(mkdir(p, 0700), 0);
	}
	p_both(sc_umask_acl, P_NO_COMMIT);
}

/* ---- reading is not changing ---- */

static void sc_reading(struct pt *t)
{
	struct timespec tv[2];
	struct stat st;
	char *m;
	int fd;

	/* Opened for writing, written nothing. */
	fd = (int)OK(t, openat(t->fd, "a", O_RDWR | O_CLOEXEC));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "d/f", O_WRONLY | O_CLOEXEC));
	OK(t, fsync(fd));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "d/sub/s", O_RDWR | O_APPEND | O_CLOEXEC));
	m = mmap(NULL, 7, PROT_READ, MAP_SHARED, fd, 0);
	EXPECT(t, m != MAP_FAILED, "mmap");
	OK(t, munmap(m, 7));
	close(fd);
	/* Attribute-only and path-only opens. */
	fd = (int)OK(t, openat(t->fd, "b", O_PATH | O_CLOEXEC));
	OK(t, fstat(fd, &st));
	close(fd);
	fd = (int)OK(t, openat(t->fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
	OK(t, fsync(fd));
	OK(t, fstat(fd, &st));
	OK(t, fchmod(fd, st.st_mode & 07777));
	close(fd);
	OK(t, fchownat(t->fd, "x.sh", geteuid(), getegid(), 0));
	/* A directory copied up by changes that undo themselves. */
	p_put(t, "d/sub/deep/tmp", "t");
	OK(t, unlinkat(t->fd, "d/sub/deep/tmp", 0));
	OK(t, mkdirat(t->fd, "e/tmpdir", 0755));
	OK(t, unlinkat(t->fd, "e/tmpdir", AT_REMOVEDIR));
	OK(t, renameat(t->fd, "b", t->fd, "b.tmp"));
	OK(t, renameat(t->fd, "b.tmp", t->fd, "b"));
	OK(t, fchmodat(t->fd, "ro", 0644, 0));
	OK(t, fchmodat(t->fd, "ro", 0444, 0));
	p_put(t, "xa", "xattr\n");
	/* Times put back as they were. */
	st = LSTAT(t, "d/g");
	tv[0] = st.st_atim;
	tv[1] = st.st_mtim;
	OK(t, utimensat(t->fd, "d/g", tv, 0));
	if (t->cjfs) {
		cr_assert_eq(h_cjfs(&p_env, "status", p_env.mnt, NULL), 0, "%s", p_env.err);
		cr_assert_str_eq(p_env.out, "", "reading showed up as changes");
	}
}

PTEST(posix_reading, is_not_changing)
{
	char *before = h_snapshot(p_env.pkg, true), *after;

	p_both(sc_reading, P_NO_COMMIT);
	p_commit();
	cr_assert_not_null(strstr(p_env.out, "0 modified, 0 added, 0 deleted"), "%s", p_env.out);
	after = h_snapshot(p_env.pkg, true);
	cr_assert_str_eq(after, before, "commit changed PKG");
	free(before);
	free(after);
}
