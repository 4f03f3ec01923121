// SPDX-License-Identifier: MIT
/* The POSIX suite's frame (see posix.h): the shared tree, both runs and the comparisons. */
#include "posix.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "util.h"

struct h_env p_env;
char p_ctrl[PATH_MAX];

/*
 * The tree every scenario starts from, in PKG: files, an executable, nested
 * directories, an empty one, symlinks (relative, dangling, absolute), a file
 * with a user xattr, a sparse file, a sticky world-writable directory, a
 * private one and a read-only file.
 */
static void make_tree(const char *pkg)
{
	char p[PATH_MAX];

	cr_assert_eq(h_sh(pkg,
			  "set -e; umask 022; "
			  "printf 'alpha\\n' > a; printf 'bravo\\n' > b; "
			  "printf '#!/bin/sh\\necho x\\n' > x.sh; chmod 755 x.sh; "
			  "mkdir -p d/sub/deep e e3 t priv; "
			  "printf 'foxtrot\\n' > d/f; printf 'golf\\n' > d/g; "
			  "printf 'sierra\\n' > d/sub/s; printf 'tango\\n' > d/sub/deep/t; "
			  "ln -s a sl; ln -s nowhere dl; ln -s /nonexistent/abs abs; "
			  "ln -s d dsl; printf 'linked\\n' > hl1; ln hl1 d/hl2; "
			  "printf 'xattr\\n' > xa; "
			  "printf 'end\\n' | dd of=sparse bs=1 seek=1048576 status=none; "
			  "chmod 1777 t; printf 'root file\\n' > t/rootfile; "
			  "chmod 700 priv; printf 'secret\\n' > priv/secret; chmod 600 priv/secret; "
			  "printf 'read only\\n' > ro; chmod 444 ro; "
			  "mkdir long; printf 'long\\n' > long/$(printf 'L%%.0s' $(seq 255)); "
			  "p=deep; for c in a b c d e f g h i j k l m n o; do "
			  "p=$p/$(printf \"$c%%.0s\" $(seq 250)); done; "
			  "mkdir -p $p; printf 'deep\\n' > $p/f; "
			  "touch -h -d '2020-01-02 03:04:05' a b x.sh d/f d/g d/sub/s sl xa ro"),
		     0);
	snprintf(p, sizeof(p), "%s/xa", pkg);
	cr_assert_eq(setxattr(p, "user.k", "v", 1, 0), 0, "setxattr: %s", strerror(errno));
}

void p_setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&p_env);
	/* Other users must reach the trees (the allow_other scenarios). */
	cr_assert_eq(chmod(p_env.root, 0755), 0);
	make_tree(p_env.pkg);
	snprintf(p_ctrl, sizeof(p_ctrl), "%s/ctrl", p_env.root);
	h_copy_tree(p_env.pkg, p_ctrl);
}

void p_teardown(void)
{
	h_teardown(&p_env);
}

void p_fail(const struct pt *t, int line, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	cr_assert_fail("[%s] line %d: %s", t ? t->name : "?", line, msg);
	abort(); /* not reached */
}

static void run_on(struct pt *t, const char *name, const char *root, bool cjfs,
		   void (*sc)(struct pt *t))
{
	t->name = name;
	t->root = root;
	t->cjfs = cjfs;
	t->fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(t->fd >= 0, "open '%s': %s", root, strerror(errno));
	umask(022);
	sc(t);
	close(t->fd);
	t->fd = -1;
}

void p_both(void (*sc)(struct pt *t), unsigned flags)
{
	struct pt plain, fuse;
	char *want, *got;

	run_on(&plain, "plain", p_ctrl, false, sc);
	/* In the foreground: the daemon's exit status (and sanitizer reports) are checked. */
	if (flags & P_ALLOW_OTHER)
		h_mount_fg_opt(&p_env, "--allow-other");
	else if (flags & P_O_ALLOW_OTHER)
		h_mount_fg_opt(&p_env, "-oallow_other"); /* one argv word: getopt splits it */
	else
		h_mount_fg(&p_env);
	run_on(&fuse, "cjfs", p_env.mnt, true, sc);
	if (flags & P_NO_TREE)
		return;
	want = h_snapshot(p_ctrl, false);
	got = h_snapshot(p_env.mnt, false);
	cr_assert_str_eq(got, want, "the mount and the plain directory differ after the scenario");
	free(got);
	if (!(flags & P_NO_COMMIT)) {
		p_commit();
		got = h_snapshot(p_env.pkg, false);
		cr_assert_str_eq(got, want, "PKG after commit differs from the plain directory");
		cr_assert_eq(h_count_names(p_env.pkg, ".cjfs-"), 0, "temporaries left in PKG");
		free(got);
	}
	free(want);
}

void p_commit(void)
{
	int r = h_cjfs(&p_env, "commit", p_env.mnt, NULL);

	cr_assert_eq(r, 0, "cjfs commit failed: %s", p_env.err);
	r = h_wait_daemon(&p_env);
	cr_assert_eq(r, 0, "the daemon exited with %d: %s", r, p_env.err);
}

void p_put(const struct pt *t, const char *path, const char *content)
{
	int fd = openat(t->fd, path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (fd < 0)
		p_fail(t, 0, "cannot create '%s': %s", path, strerrorname_np(errno));
	if (util_write_full(fd, content, strlen(content)) < 0)
		p_fail(t, 0, "cannot write '%s': %s", path, strerrorname_np(errno));
	if (close(fd) < 0)
		p_fail(t, 0, "cannot close '%s': %s", path, strerrorname_np(errno));
}

char *p_get(const struct pt *t, const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	int fd = openat(t->fd, path, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return NULL;
	r = strbuf_read_fd(&sb, fd, 0);
	close(fd);
	if (r < 0) {
		strbuf_release(&sb);
		errno = -r;
		return NULL;
	}
	if (!sb.buf)
		strbuf_grow(&sb, 0);
	return strbuf_detach(&sb);
}

void p_expect_content(const struct pt *t, int line, const char *path, const char *want)
{
	char *got = p_get(t, path);

	if (!got)
		p_fail(t, line, "cannot read '%s': %s", path, strerrorname_np(errno));
	if (strcmp(got, want) != 0)
		p_fail(t, line, "'%s' holds '%s', want '%s'", path, got, want);
	free(got);
}

struct stat p_lstat(const struct pt *t, int line, const char *path)
{
	struct stat st;

	if (fstatat(t->fd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
		p_fail(t, line, "lstat '%s': %s", path, strerrorname_np(errno));
	return st;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *p_list(const struct pt *t, const char *dir)
{
	struct strbuf sb = STRBUF_INIT;
	char **v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd = openat(t->fd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		p_fail(t, 0, "cannot open directory '%s': %s", dir, strerrorname_np(errno));
	d = fdopendir(fd);
	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			char **nv;

			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			cr_assert_not_null(nv);
			v = nv;
		}
		v[n++] = strdup(de->d_name);
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	strbuf_grow(&sb, 0);
	for (size_t i = 0; i < n; i++) {
		strbuf_adds(&sb, v[i]);
		strbuf_add(&sb, "\n", 1);
		free(v[i]);
	}
	free(v);
	return strbuf_detach(&sb);
}
