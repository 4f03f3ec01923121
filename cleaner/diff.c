// SPDX-License-Identifier: MIT
/*
 * cjfs diff: a unified diff of every change of a transaction, old content
 * from the store (verified), new content from the mount, the layers, or the
 * store once committed. Text hunks come from diff(1) (diffutils is essential
 * in Debian); headers follow git's extended format.
 */
#include "cjfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleaner_int.h"
#include "log.h"

#define DIFF_MAX (64u << 20)

static bool is_binary(const struct strbuf *sb)
{
	size_t n = sb->len < 8000 ? sb->len : 8000;

	return sb->buf && memchr(sb->buf, '\0', n) != NULL;
}

/* Content of one side: regular file or symlink target, from the store or a view. */
static int side_content(struct cjfs *c, const struct store_view *view, const char *path,
			const struct store_entry *e, struct strbuf *out)
{
	int fd, r;

	if (!S_ISREG(e->mode) && !S_ISLNK(e->mode))
		return 0;
	if (!view)
		return e->has_hash ? store_blob_read(cjfs_store(c), e->hash, out, DIFF_MAX) : 0;
	if (S_ISLNK(e->mode))
		return view->readlink(view->ctx, path, out);
	fd = view->open(view->ctx, path);
	if (fd < 0)
		return fd;
	r = strbuf_read_fd(out, fd, DIFF_MAX);
	util_close(fd);
	return r;
}

static int write_temp(const struct strbuf *sb, char path[64])
{
	const char *tmp = getenv("TMPDIR");
	int fd, r;

	snprintf(path, 64, "%s/cjfs-diff.XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp");
	fd = mkstemp(path);
	if (fd < 0)
		return -errno;
	r = sb->len ? util_write_full(fd, sb->buf, sb->len) : 0;
	close(fd);
	if (r < 0)
		unlink(path);
	return r;
}

/* Hunks from diff -u; its "---"/"+++" lines carry git-style labels. */
static int run_diff(FILE *out, const char *la, const char *lb, const struct strbuf *a,
		    const struct strbuf *b)
{
	char pa[64], pb[64];
	int status, r;
	pid_t pid;

	r = write_temp(a, pa);
	if (r < 0)
		return r;
	r = write_temp(b, pb);
	if (r < 0) {
		unlink(pa);
		return r;
	}
	fflush(out);
	pid = fork();
	if (pid == 0) {
		dup2(fileno(out), STDOUT_FILENO);
		execlp("diff", "diff", "-u", "--label", la, "--label", lb, pa, pb, (char *)NULL);
		_exit(127);
	}
	r = pid < 0 ? -errno : 0;
	if (pid > 0) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		/* 0 same, 1 different, anything else trouble; SIGPIPE: the reader left. */
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE)
			r = -EPIPE;
		else if (!WIFEXITED(status) || WEXITSTATUS(status) > 1)
			r = -EIO;
	}
	unlink(pa);
	unlink(pb);
	return r;
}

/* An xattr's value for a diff line: quoted if it is text, else hex (long ones cut). */
static int add_value(struct strbuf *sb, const char *v, size_t n)
{
	bool text = n > 0;
	int r = 0;

	for (size_t i = 0; i < n && text; i++)
		text = v[i] >= 0x20 && v[i] < 0x7f && v[i] != '"' && v[i] != '\\';
	if (text)
		return strbuf_addf(sb, "\"%.*s\"", (int)n, v);
	r = strbuf_adds(sb, "0x");
	for (size_t i = 0; i < n && i < 64 && r == 0; i++)
		r = strbuf_addf(sb, "%02x", (unsigned char)v[i]);
	return r == 0 && n > 64 ? strbuf_addf(sb, "... (%zu bytes)", n) : r;
}

/*
 * "xattr -NAME", "xattr +NAME=VALUE", "xattr ~NAME=VALUE" lines for what
 * changed between the two lists, in out (empty where nothing did or the
 * lists are not known). An open transaction's new list is read from the
 * view where the status did not need it.
 */
static int xattr_lines(const struct store_view *view, const struct cjfs_status_entry *e,
		       struct strbuf *out)
{
	struct strbuf read = STRBUF_INIT;
	const struct strbuf *o = &e->orig_xattrs, *n = &e->now_xattrs;
	struct store_entry now = e->now;
	const char *name, *v, *ov;
	size_t pos, len, olen;
	int r = 0;

	if (!e->orig.has_xattrs || !store_entry_keeps_xattrs(&now))
		return 0;
	if (!now.has_xattrs && view) {
		r = store_entry_xattrs_from_view(view, e->path, &now, &read);
		n = &read;
	}
	if (r < 0 || !now.has_xattrs || !memcmp(now.xattrs, e->orig.xattrs, HASH_LEN))
		goto out;
	for (pos = 0; r == 0 && store_xattrs_next(o->buf, o->len, &pos, &name, &v, &len);)
		if (!store_xattrs_has(n->buf, n->len, name))
			r = strbuf_addf(out, "xattr -%s\n", name);
	for (pos = 0; r == 0 && store_xattrs_next(n->buf, n->len, &pos, &name, &v, &len);) {
		ov = store_xattrs_find(o->buf, o->len, name, &olen);
		if (ov && olen == len && !memcmp(ov, v, len))
			continue;
		r = strbuf_addf(out, "xattr %c%s=", ov ? '~' : '+', name);
		if (r == 0)
			r = add_value(out, v, len);
		if (r == 0)
			r = strbuf_add(out, "\n", 1);
	}
out:
	strbuf_release(&read);
	return r;
}

static int diff_one(struct cjfs *c, const struct store_view *view, FILE *out,
		    const struct cjfs_status_entry *e)
{
	struct strbuf a = STRBUF_INIT, b = STRBUF_INIT, x = STRBUF_INIT;
	char la[PATH_MAX + 8], lb[PATH_MAX + 8];
	uint32_t om = e->orig.mode, nm = e->now.mode;
	int r;

	r = xattr_lines(view, e, &x);
	if (r < 0) {
		log_errno(r, "cannot read the xattrs of '%s' for the diff", e->path);
		goto out;
	}
	if (S_ISDIR(om) && S_ISDIR(nm) && (om & 07777) == (nm & 07777) && !x.len)
		goto out;
	fprintf(out, "diff --cjfs a/%s b/%s\n", e->path, e->path);
	if (!om)
		fprintf(out, "new %s mode %06o\n", S_ISDIR(nm) ? "directory" : "file", nm);
	else if (!nm)
		fprintf(out, "deleted %s mode %06o\n", S_ISDIR(om) ? "directory" : "file", om);
	else if (om != nm)
		fprintf(out, "old mode %06o\nnew mode %06o\n", om, nm);
	if (x.len)
		fwrite(x.buf, 1, x.len, out);
	r = side_content(c, NULL, e->path, &e->orig, &a);
	if (r == 0)
		r = side_content(c, view, e->path, &e->now, &b);
	if (r == -EFBIG) {
		fprintf(out, "Large files a/%s and b/%s differ\n", e->path, e->path);
		r = 0;
		goto out;
	}
	if (r < 0) {
		log_errno(r, "cannot read '%s' for the diff", e->path);
		goto out;
	}
	if (a.len == b.len && (a.len == 0 || memcmp(a.buf, b.buf, a.len) == 0))
		goto out;
	if (is_binary(&a) || is_binary(&b)) {
		fprintf(out, "Binary files a/%s and b/%s differ\n", e->path, e->path);
		goto out;
	}
	snprintf(la, sizeof(la), "%s%s", om ? "a/" : "/dev/null", om ? e->path : "");
	snprintf(lb, sizeof(lb), "%s%s", nm ? "b/" : "/dev/null", nm ? e->path : "");
	r = run_diff(out, la, lb, &a, &b);
	if (r < 0 && r != -EPIPE)
		log_errno(r, "cannot diff '%s' (is diff(1) installed?)", e->path);
out:
	strbuf_release(&a);
	strbuf_release(&b);
	strbuf_release(&x);
	return r;
}

int cjfs_diff(struct cjfs *c, int64_t txn, FILE *out)
{
	struct cjfs_status_entry *v = NULL;
	struct tree_view *tv = NULL;
	struct store_txn *t = NULL;
	size_t n = 0;
	int r;

	r = cjfs_status(c, txn, &v, &n);
	if (r < 0)
		return r;
	r = store_txn_load(cjfs_store(c), txn, &t);
	if (r < 0) {
		log_errno(r, "cannot load transaction %lld", (long long)txn);
		goto out;
	}
	if (t->state == STORE_TXN_OPEN) {
		r = cjfs_tree_view(c, t, &tv);
		if (r < 0) {
			log_errno(r, "cannot read the tree of transaction %lld", (long long)txn);
			goto out;
		}
	}
	for (size_t i = 0; i < n && r == 0; i++)
		r = diff_one(c, tv ? cjfs_tree_view_get(tv) : NULL, out, &v[i]);
	if (fflush(out) != 0 && r == 0)
		r = -errno;
	if (r == -EPIPE)
		r = 0; /* the reader (head, a pager) has seen enough */
out:
	cjfs_tree_view_free(tv);
	store_txn_free(t);
	cjfs_status_free(v, n);
	return r;
}
