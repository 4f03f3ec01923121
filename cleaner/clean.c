// SPDX-License-Identifier: MIT
/*
 * The built-in cleaner: whitespace and line-ending hygiene. For every text
 * file it converts CRLF to LF, strips trailing blanks (not in Markdown or
 * patches, where they mean something), drops blank lines at the end and
 * makes sure the file ends with exactly one newline. Binary files, symlinks
 * and version-control directories are left alone.
 */
#include "cjfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define CLEAN_MAX (16u << 20)

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

static bool keep_trailing_blanks(const char *name)
{
	return ends_with(name, ".md") || ends_with(name, ".markdown") ||
	       ends_with(name, ".patch") || ends_with(name, ".diff");
}

/* Clean in into out; returns true if anything changed. */
static int clean_text(const struct strbuf *in, bool strip, struct strbuf *out)
{
	size_t i = 0;
	int r = 0;

	while (i < in->len && r == 0) {
		const char *line = in->buf + i;
		const char *nl = memchr(line, '\n', in->len - i);
		size_t len = nl ? (size_t)(nl - line) : in->len - i;
		size_t keep = len;

		/* Every CR before the newline: one left over would end the line in CRLF again. */
		while (keep && line[keep - 1] == '\r')
			keep--;
		while (strip && keep &&
		       (line[keep - 1] == ' ' || line[keep - 1] == '\t' || line[keep - 1] == '\r'))
			keep--;
		r = strbuf_add(out, line, keep);
		if (r == 0)
			r = strbuf_add(out, "\n", 1);
		i += len + (nl ? 1 : 0);
	}
	/* Exactly one newline at the end; an empty file stays empty. */
	while (r == 0 && out->len >= 2 && out->buf[out->len - 1] == '\n' &&
	       out->buf[out->len - 2] == '\n')
		out->buf[--out->len] = '\0';
	if (r == 0 && out->len == 1 && out->buf[0] == '\n')
		strbuf_reset(out);
	return r;
}

/* Replace name in dirfd with data, keeping its mode: temp + rename. */
static int replace_file(int dirfd, const char *name, const struct stat *st,
			const struct strbuf *data)
{
	char tmp[NAME_MAX + 1];
	int fd, r;

	snprintf(tmp, sizeof(tmp), ".cjfs-clean.%ld", (long)getpid());
	fd = util_openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fd;
	r = data->len ? util_write_full(fd, data->buf, data->len) : 0;
	if (r == 0 && fchmod(fd, st->st_mode & 07777) < 0)
		r = -errno;
	if (close(fd) < 0 && r == 0)
		r = -errno;
	if (r == 0)
		r = util_renameat(dirfd, tmp, dirfd, name);
	if (r < 0)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}

static int clean_file(int dirfd, const char *name, const char *path, bool dry_run, FILE *out,
		      struct cjfs_clean_report *rep)
{
	struct strbuf in = STRBUF_INIT, cleaned = STRBUF_INIT;
	struct stat st;
	int fd, r;

	fd = util_openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)CLEAN_MAX) {
		util_close(fd);
		rep->skipped++;
		return 0;
	}
	r = strbuf_read_fd(&in, fd, CLEAN_MAX);
	util_close(fd);
	if (r < 0)
		goto out;
	rep->scanned++;
	if (in.len && memchr(in.buf, '\0', in.len)) {
		rep->skipped++;
		goto out;
	}
	r = clean_text(&in, !keep_trailing_blanks(name), &cleaned);
	if (r < 0)
		goto out;
	if (cleaned.len == in.len && (in.len == 0 || memcmp(cleaned.buf, in.buf, in.len) == 0))
		goto out;
	rep->changed++;
	if (out)
		fprintf(out, "%s %s\n", dry_run ? "would clean" : "cleaned", path);
	if (!dry_run)
		r = replace_file(dirfd, name, &st, &cleaned);
out:
	strbuf_release(&in);
	strbuf_release(&cleaned);
	return r;
}

static int clean_dir(int dfd, struct strbuf *path, bool dry_run, FILE *out,
		     struct cjfs_clean_report *rep, int depth)
{
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if (depth > 256)
		return -ELOOP;
	fd = util_openat(dfd, ".", O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return -errno;
	}
	while ((de = readdir(d)) && r == 0) {
		const char *n = de->d_name;
		size_t old = path->len;
		struct stat st;

		if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, ".git") ||
		    !strcmp(n, ".hg") || !strcmp(n, ".svn") || !strncmp(n, ".cjfs-", 6))
			continue;
		if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		r = strbuf_addf(path, "%s%s", path->len ? "/" : "", n);
		if (r < 0)
			break;
		if (S_ISDIR(st.st_mode)) {
			int sub = util_openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);

			r = sub < 0 ? sub : clean_dir(sub, path, dry_run, out, rep, depth + 1);
			util_close(sub);
		} else if (S_ISREG(st.st_mode)) {
			r = clean_file(dirfd(d), n, path->buf, dry_run, out, rep);
			if (r < 0)
				log_errno(r, "cannot clean '%s'", path->buf);
		}
		path->len = old;
		path->buf[old] = '\0';
	}
	closedir(d);
	return r;
}

int cjfs_clean_tree(int dirfd, bool dry_run, FILE *out, struct cjfs_clean_report *ret)
{
	struct cjfs_clean_report rep = { 0 };
	struct strbuf path = STRBUF_INIT;
	int r = strbuf_grow(&path, 0);

	if (r == 0)
		r = clean_dir(dirfd, &path, dry_run, out, &rep, 0);
	strbuf_release(&path);
	if (ret)
		*ret = rep;
	return r;
}
