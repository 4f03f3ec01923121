// SPDX-License-Identifier: MIT
/* Helpers shared by the unit tests (see unit.h). */
#include "unit.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hash.h"
#include "util.h"

void u_tmpdir(char root[PATH_MAX])
{
	const char *tmp = getenv("TMPDIR");

	snprintf(root, PATH_MAX, "%s/cjfs-unit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(root), "mkdtemp: %s", strerror(errno));
}

void u_rmtree(const char *path)
{
	if (path && *path)
		(void)util_rm_rf_at(AT_FDCWD, path);
}

int u_mkdir_open(const char *root, const char *name, char ret_path[PATH_MAX])
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	cr_assert(mkdir(path, 0755) == 0 || errno == EEXIST, "mkdir '%s': %s", path,
		  strerror(errno));
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(fd >= 0, "open '%s': %s", path, strerror(errno));
	if (ret_path)
		memcpy(ret_path, path, sizeof(path));
	return fd;
}

void u_mkdir(int dirfd, const char *rel, mode_t mode)
{
	cr_assert(mkdirat(dirfd, rel, mode) == 0, "mkdir '%s': %s", rel, strerror(errno));
	cr_assert(fchmodat(dirfd, rel, mode, 0) == 0, "chmod '%s': %s", rel, strerror(errno));
}

void u_write_n(int dirfd, const char *rel, const void *data, size_t n, mode_t mode)
{
	int fd = openat(dirfd, rel, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);

	cr_assert(fd >= 0, "create '%s': %s", rel, strerror(errno));
	cr_assert(write(fd, data, n) == (ssize_t)n, "write '%s': %s", rel, strerror(errno));
	cr_assert(fchmod(fd, mode) == 0);
	cr_assert(close(fd) == 0);
}

void u_write(int dirfd, const char *rel, const char *content, mode_t mode)
{
	u_write_n(dirfd, rel, content, strlen(content), mode);
}

void u_symlink(int dirfd, const char *target, const char *rel)
{
	(void)unlinkat(dirfd, rel, 0);
	cr_assert(symlinkat(target, dirfd, rel) == 0, "symlink '%s': %s", rel, strerror(errno));
}

char *u_read(int dirfd, const char *rel, size_t *ret_len)
{
	struct strbuf sb = STRBUF_INIT;
	int fd = openat(dirfd, rel, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	int r;

	if (fd < 0)
		return NULL;
	r = strbuf_read_fd(&sb, fd, 0);
	close(fd);
	cr_assert(r == 0, "read '%s': %s", rel, strerror(-r));
	if (ret_len)
		*ret_len = sb.len;
	return strbuf_detach(&sb);
}

mode_t u_mode(int dirfd, const char *rel)
{
	struct stat st;

	if (fstatat(dirfd, rel, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	return st.st_mode;
}

bool u_exists(int dirfd, const char *rel)
{
	return u_mode(dirfd, rel) != 0;
}

bool u_is_dir(int dirfd, const char *rel)
{
	return S_ISDIR(u_mode(dirfd, rel));
}

bool u_is_reg(int dirfd, const char *rel)
{
	return S_ISREG(u_mode(dirfd, rel));
}

bool u_is_link(int dirfd, const char *rel)
{
	return S_ISLNK(u_mode(dirfd, rel));
}

struct lines {
	char **v;
	size_t n, cap;
};

static void lines_add(struct lines *l, char *s)
{
	cr_assert_not_null(s);
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		cr_assert_not_null(l->v);
	}
	l->v[l->n++] = s;
}

static char *describe(int dfd, const char *name, const char *path, const struct stat *st,
		      bool file_mtimes)
{
	char hex[HASH_HEX_LEN + 1];
	uint8_t h[HASH_LEN];

	if (S_ISDIR(st->st_mode))
		return util_xasprintf("%s d %04o", path, st->st_mode & 07777);
	if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(dfd, name, target, sizeof(target) - 1);

		cr_assert(n >= 0);
		target[n] = '\0';
		return util_xasprintf("%s l -> %s", path, target);
	}
	if (S_ISREG(st->st_mode)) {
		size_t len = 0;
		char *data = u_read(dfd, name, &len);

		cr_assert_not_null(data);
		cr_assert(hash_buf(data, len, h) == 0);
		free(data);
		hash_to_hex(h, hex);
		if (file_mtimes)
			return util_xasprintf("%s f %04o %zu %s %lld", path, st->st_mode & 07777,
					      len, hex, (long long)util_timespec_ns(&st->st_mtim));
		return util_xasprintf("%s f %04o %zu %s", path, st->st_mode & 07777, len, hex);
	}
	return util_xasprintf("%s ? %07o", path, st->st_mode);
}

static void walk(int dfd, const char *prefix, bool file_mtimes, struct lines *l)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	cr_assert(fd >= 0);
	d = fdopendir(fd);
	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s%s%s", prefix, *prefix ? "/" : "", de->d_name);
		cr_assert(fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
		lines_add(l, describe(dirfd(d), de->d_name, path, &st, file_mtimes));
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			cr_assert(sub >= 0);
			walk(sub, path, file_mtimes, l);
			close(sub);
		}
	}
	closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *u_snapshot(int dirfd, bool file_mtimes)
{
	struct strbuf sb = STRBUF_INIT;
	struct lines l = { 0 };

	walk(dirfd, "", file_mtimes, &l);
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
	cr_assert(strbuf_grow(&sb, 0) == 0);
	for (size_t i = 0; i < l.n; i++) {
		cr_assert(strbuf_addf(&sb, "%s\n", l.v[i]) == 0);
		free(l.v[i]);
	}
	free(l.v);
	return strbuf_detach(&sb);
}

static void count(int dfd, const char *s, size_t *names, size_t *files)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d;

	cr_assert(fd >= 0);
	d = fdopendir(fd);
	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		cr_assert(fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0);
		if (s && strstr(de->d_name, s))
			(*names)++;
		if (S_ISREG(st.st_mode))
			(*files)++;
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			cr_assert(sub >= 0);
			count(sub, s, names, files);
			close(sub);
		}
	}
	closedir(d);
}

size_t u_count_names(int dirfd, const char *s)
{
	size_t names = 0, files = 0;

	count(dirfd, s, &names, &files);
	return names;
}

size_t u_count_files(int dirfd)
{
	size_t names = 0, files = 0;

	count(dirfd, NULL, &names, &files);
	return files;
}
