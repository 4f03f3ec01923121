// SPDX-License-Identifier: MIT
/*
 * From change set to PKG: seal (record the new state of every touched path
 * and store its content), the conflict check, and the journaled apply that
 * recovery can run again after a crash at any instant.
 */
#include "store_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"

/* Rows are sealed in SQLite transactions of this many, so readers are not starved. */
#define SEAL_BATCH 512

struct seal_work {
	struct store *s;
	const struct store_view *view;
	int pkg_fd;
	struct store_change *c;
};

int store_change_orig_from_pkg(struct store *s, int pkg_fd, struct store_change *c)
{
	uint32_t type = c->orig.mode & S_IFMT;
	bool xattrs = !c->orig.has_xattrs && (type == S_IFREG || type == S_IFDIR);
	bool rdev = !c->orig.rdev && (type == S_IFCHR || type == S_IFBLK);
	struct store_entry now;
	int r;

	if (!xattrs && !rdev)
		return 0;
	r = store_entry_at(s, pkg_fd, c->path, 0, &now);
	if (r < 0 || !store_entry_same_file(&c->orig, &now))
		return r;
	if (rdev)
		c->orig.rdev = now.rdev;
	return xattrs ? store_entry_xattrs_at(pkg_fd, c->path, &c->orig, &c->orig_xattrs) : 0;
}

/* Has PKG's path the xattrs of want? 1 also where want's are not known. */
static int pkg_xattrs_match(int pkg_fd, const char *path, const struct store_entry *now,
			    const struct store_entry *want)
{
	struct strbuf list = STRBUF_INIT;
	struct store_entry e = *now;
	int r;

	if (!want->has_xattrs || !store_entry_keeps_xattrs(now))
		return 1;
	r = store_entry_xattrs_at(pkg_fd, path, &e, &list);
	strbuf_release(&list);
	if (r < 0)
		return r;
	return memcmp(e.xattrs, want->xattrs, HASH_LEN) == 0;
}

static int seal_row(void *ctx, size_t i)
{
	struct seal_work *w = ctx;
	struct store_change *c = &w->c[i];
	int r = store_entry_from_view(w->s, w->view, c->path, STORE_ENTRY_HASH | STORE_ENTRY_PUT,
				      &c->new);

	if (r == 0)
		r = store_entry_xattrs_from_view(w->view, c->path, &c->new, &c->new_xattrs);
	if (r < 0)
		return log_debug_errno(r, "cannot read '%s' in the new tree", c->path);
	r = store_change_orig_from_pkg(w->s, w->pkg_fd, c);
	if (r < 0)
		return log_debug_errno(r, "cannot read the original of '%s' in PKG", c->path);
	c->status = store_entry_compare(&c->orig, &c->new);
	return 0;
}

int store_txn_seal(struct store *s, struct store_txn *t, const struct store_view *view)
{
	struct store_change *c = NULL;
	int64_t start = util_mono_ns();
	size_t n = 0;
	int pkg_fd, r;

	pkg_fd = store_txn_open_pkg(t);
	if (pkg_fd < 0)
		return pkg_fd;
	r = store_change_list(s, t->id, false, &c, &n);
	if (r < 0)
		goto out_close;
	t->n_modified = t->n_added = t->n_deleted = t->bytes_new = 0;
	t->n_orig = t->bytes_orig = 0;
	for (size_t i = 0; i < n; i += SEAL_BATCH) {
		size_t end = i + SEAL_BATCH < n ? i + SEAL_BATCH : n;

		struct seal_work w = { .s = s, .view = view, .pkg_fd = pkg_fd, .c = c + i };

		/*
		 * Hash and write the blobs outside the SQLite transaction, on all
		 * CPUs: it can take a while. Then publish them with the rows.
		 */
		store_put_defer(s);
		r = util_parallel_for(end - i, seal_row, &w);
		if (r == 0)
			r = store_batch_begin(s);
		if (r < 0) {
			(void)store_put_publish(s, r);
			goto out;
		}
		r = store_put_publish(s, 0);
		for (size_t j = i; j < end && r == 0; j++)
			r = store_change_set_new(s, t->id, &c[j]);
		if (r < 0) {
			store_batch_rollback(s);
			goto out;
		}
		r = store_batch_commit(s);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		switch (c[i].status) {
		case 'M':
			t->n_modified++;
			break;
		case 'A':
			t->n_added++;
			break;
		case 'D':
			t->n_deleted++;
			break;
		}
		if (c[i].status && S_ISREG(c[i].new.mode))
			t->bytes_new += (int64_t)c[i].new.size;
		/* The originals this commit replaces, kept in the store from now on. */
		if (c[i].status && c[i].orig.has_hash) {
			t->n_orig++;
			t->bytes_orig += (int64_t)c[i].orig.size;
		}
	}
	/* What the commit will replace must be blobs before the commit point refers to it. */
	r = store_stage_promote(s, t->id);
	if (r < 0)
		goto out;
	t->seal_ns = util_mono_ns() - start;
	r = store_txn_save_stats(s, t);
	if (r < 0)
		goto out;
	r = store_txn_transition(s, t->id, STORE_TXN_OPEN, STORE_TXN_SEALED, NULL, NULL);
	if (r == 0)
		t->state = STORE_TXN_SEALED;
out:
	store_changes_free(c, n);
out_close:
	util_close(pkg_fd);
	return r;
}

int store_txn_open_pkg(const struct store_txn *t)
{
	struct stat st;
	int fd = util_openat(AT_FDCWD, t->pkg, O_PATH | O_DIRECTORY, 0);

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0 || st.st_dev != t->pkg_dev || st.st_ino != t->pkg_ino) {
		util_close(fd);
		return -ESTALE;
	}
	return fd;
}

static bool hash_eq(const struct store_entry *a, const struct store_entry *b)
{
	return a->has_hash && b->has_hash && memcmp(a->hash, b->hash, HASH_LEN) == 0;
}

/*
 * Does PKG's current state `now` match `want` in content? Reads PKG again with
 * hashing only when the cheap comparison cannot decide.
 */
static int pkg_matches(struct store *s, int pkg_fd, const char *path, struct store_entry *now,
		       const struct store_entry *want)
{
	int r;

	if (!want->mode || !now->mode)
		return !want->mode && !now->mode;
	if ((want->mode & S_IFMT) != (now->mode & S_IFMT))
		return 0;
	if (S_ISDIR(want->mode))
		return 1;
	if (!S_ISREG(want->mode) && !S_ISLNK(want->mode))
		return now->rdev == want->rdev; /* FIFO, socket, device node */
	if (now->size != want->size)
		return 0;
	if (!now->has_hash) {
		r = store_entry_at(s, pkg_fd, path, STORE_ENTRY_HASH, now);
		if (r < 0)
			return r;
	}
	return hash_eq(now, want);
}

static int add_conflict(struct store_conflict **v, size_t *n, const char *path, const char *why)
{
	struct store_conflict *nv = realloc(*v, (*n + 1) * sizeof(**v));

	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n].path = strdup(path);
	if (!nv[*n].path)
		return -ENOMEM;
	nv[*n].why = why;
	(*n)++;
	return 0;
}

static int cmp_change_path(const void *key, const void *elem)
{
	return strcmp(key, ((const struct store_change *)elem)->path);
}

/* A directory the transaction deletes must hold nothing in PKG that it does not delete too. */
static int check_dir_emptied(int pkg_fd, const char *path, const struct store_change *c, size_t n,
			     struct store_conflict **v, size_t *nv)
{
	struct strbuf child = STRBUF_INIT;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	fd = util_open_beneath(pkg_fd, path, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd == -ENOENT || fd == -ENOTDIR ? 0 : fd;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		const struct store_change *hit;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		strbuf_reset(&child);
		r = strbuf_addf(&child, "%s/%s", path, de->d_name);
		if (r < 0)
			break;
		hit = bsearch(child.buf, c, n, sizeof(*c), cmp_change_path);
		/*
		 * Only a row that deletes the child accounts for it: a row with no
		 * status (created and removed again in the transaction) deletes
		 * nothing, so a file PKG now has there would make the rmdir fail.
		 */
		if (!hit || hit->new.mode || !hit->status) {
			if (!hit || hit->orig.mode == 0)
				r = add_conflict(v, nv, child.buf, "created in PKG");
			if (r < 0)
				break;
		}
	}
	closedir(d);
	strbuf_release(&child);
	return r;
}

int store_txn_conflicts(struct store *s, int64_t txn, int pkg_fd, struct store_conflict **ret,
			size_t *ret_n)
{
	struct store_conflict *v = NULL;
	struct store_change *c = NULL;
	size_t n = 0, nv = 0;
	int r;

	r = store_change_list(s, txn, false, &c, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		struct store_entry now;
		const char *why;

		if (!c[i].status)
			continue;
		r = store_entry_at(s, pkg_fd, c[i].path, 0, &now);
		if (r < 0)
			goto out;
		if (store_entry_same_file(&c[i].orig, &now))
			goto dir_check;
		/* PKG still holds the original: its content, mode and xattrs. */
		r = pkg_matches(s, pkg_fd, c[i].path, &now, &c[i].orig);
		if (r == 1 && (now.mode & 07777) == (c[i].orig.mode & 07777)) {
			r = pkg_xattrs_match(pkg_fd, c[i].path, &now, &c[i].orig);
			if (r == 1)
				goto dir_check;
		}
		if (r < 0)
			goto out;
		/* PKG already holds what the transaction would write: nothing lost either way. */
		r = pkg_matches(s, pkg_fd, c[i].path, &now, &c[i].new);
		if (r == 1)
			r = pkg_xattrs_match(pkg_fd, c[i].path, &now, &c[i].new);
		if (r < 0)
			goto out;
		if (r == 1)
			continue;
		if (!c[i].orig.mode)
			why = "created in PKG";
		else if (!now.mode)
			why = "deleted in PKG";
		else
			why = "changed in PKG";
		r = add_conflict(&v, &nv, c[i].path, why);
		if (r < 0)
			goto out;
		continue;
	dir_check:
		if (S_ISDIR(c[i].orig.mode) && !S_ISDIR(c[i].new.mode)) {
			r = check_dir_emptied(pkg_fd, c[i].path, c, n, &v, &nv);
			if (r < 0)
				goto out;
		}
	}
	r = (int)nv;
out:
	store_changes_free(c, n);
	if (r < 0) {
		store_conflicts_free(v, nv);
		return r;
	}
	*ret = v;
	*ret_n = nv;
	return r;
}

void store_conflicts_free(struct store_conflict *c, size_t n)
{
	if (!c)
		return;
	for (size_t i = 0; i < n; i++)
		free(c[i].path);
	free(c);
}

/* State shared by the steps of one stage, promote or unstage. */
struct apply {
	struct store *s;
	int64_t txn;
	int pkg_fd;
	bool recover;
	bool reverse;
	bool root;
	struct store_change *c;
	size_t n;
	size_t *link; /* per row: the row whose file its temporary is a hard link of, or NO_LINK */
	struct store_apply_failure *fail; /* the caller's, may be NULL */
	int fail_taken;			  /* atomic: the first failure fills fail */
};

static void tmpname(const struct apply *a, size_t i, char buf[64])
{
	snprintf(buf, 64, ".cjfs-%s-%lld-%zu", a->reverse ? "rev" : "tmp", (long long)a->txn, i);
}

#define NO_LINK SIZE_MAX

static bool is_staged(const struct store_change *c);

static bool same_file_in_target(const struct store_change *a, const struct store_change *b)
{
	return a->new.dev == b->new.dev && a->new.ino == b->new.ino;
}

/* Regular files of the target state by identity; a name left unchanged first, then by row. */
static int cmp_link(const void *pa, const void *pb, void *arg)
{
	const struct store_change *c = arg;
	const struct store_change *a = &c[*(const size_t *)pa], *b = &c[*(const size_t *)pb];

	if (a->new.dev != b->new.dev)
		return a->new.dev < b->new.dev ? -1 : 1;
	if (a->new.ino != b->new.ino)
		return a->new.ino < b->new.ino ? -1 : 1;
	/* PKG already holds the file of a name the apply leaves unchanged. */
	if (!a->status != !b->status)
		return !a->status ? -1 : 1;
	return *(const size_t *)pa < *(const size_t *)pb ? -1 : 1;
}

/*
 * Names that are one file in the target state (the same identity: hard
 * links made through the mount, or PKG's own for a reverse apply) become
 * one file in PKG: the temporary of each staged name but the first is a
 * hard link of the first's (stage_link). Rows from before identities were
 * recorded have none (0) and stay files of their own.
 */
static int find_links(struct apply *a)
{
	size_t *v, k = 0, lead = 0;

	a->link = malloc((a->n ? a->n : 1) * sizeof(*a->link));
	v = malloc((a->n ? a->n : 1) * sizeof(*v));
	if (!a->link || !v) {
		free(v);
		return -ENOMEM;
	}
	for (size_t i = 0; i < a->n; i++) {
		a->link[i] = NO_LINK;
		if (S_ISREG(a->c[i].new.mode) && a->c[i].new.ino)
			v[k++] = i;
	}
	qsort_r(v, k, sizeof(*v), cmp_link, a->c);
	for (size_t i = 1; i < k; i++) {
		if (!same_file_in_target(&a->c[v[i]], &a->c[v[lead]]))
			lead = i;
		else if (is_staged(&a->c[v[i]]))
			a->link[v[i]] = v[lead];
	}
	free(v);
	return 0;
}

/*
 * Load all rows (temporaries are numbered by row). For a reverse apply the
 * original becomes the target and the status is recomputed accordingly.
 */
static int apply_load(struct apply *a, struct store *s, int64_t txn, int pkg_fd, unsigned flags)
{
	int r;

	memset(a, 0, sizeof(*a));
	a->s = s;
	a->txn = txn;
	a->pkg_fd = pkg_fd;
	a->recover = flags & STORE_APPLY_RECOVER;
	a->reverse = flags & STORE_APPLY_REVERSE;
	a->root = geteuid() == 0;
	r = store_change_list(s, txn, false, &a->c, &a->n);
	if (r < 0)
		return r;
	for (size_t i = 0; a->reverse && i < a->n; i++) {
		struct store_entry tmp = a->c[i].orig;
		struct strbuf list = a->c[i].orig_xattrs;

		a->c[i].orig = a->c[i].new;
		a->c[i].new = tmp;
		a->c[i].orig_xattrs = a->c[i].new_xattrs;
		a->c[i].new_xattrs = list;
		if (a->c[i].status)
			a->c[i].status = store_entry_compare(&a->c[i].orig, &a->c[i].new);
	}
	r = find_links(a);
	if (r < 0) {
		store_changes_free(a->c, a->n);
		free(a->link);
	}
	return r;
}

static void apply_release(struct apply *a)
{
	store_changes_free(a->c, a->n);
	free(a->link);
}

static int cmp_path_key(const void *key, const void *elem)
{
	return strcmp(key, ((const struct store_change *)elem)->path);
}

/* Is row i's new state written as a temporary and renamed into place (all but directories)? */
static bool is_staged(const struct store_change *c)
{
	return c->status && c->new.mode && !S_ISDIR(c->new.mode);
}

/*
 * Where row i's temporary lives: the deepest ancestor directory that is a
 * directory both before and after the transaction, so it exists at staging
 * time and is never removed; renames out of it stay on one file system.
 * Returns its length in c->path (0 = PKG's root).
 */
static size_t stage_dirlen(const struct apply *a, size_t i)
{
	const char *path = a->c[i].path;
	char buf[PATH_MAX];
	size_t len = util_path_dirlen(path);

	while (len > 0) {
		const struct store_change *hit;

		memcpy(buf, path, len);
		buf[len] = '\0';
		hit = bsearch(buf, a->c, a->n, sizeof(*a->c), cmp_path_key);
		if (!hit || (S_ISDIR(hit->orig.mode) && S_ISDIR(hit->new.mode)))
			break;
		len = util_path_dirlen(buf);
	}
	return len;
}

static int open_stage_dir(const struct apply *a, size_t i)
{
	size_t len = stage_dirlen(a, i);
	char buf[PATH_MAX];

	if (len == 0)
		return util_openat(a->pkg_fd, ".", O_PATH | O_DIRECTORY, 0);
	memcpy(buf, a->c[i].path, len);
	buf[len] = '\0';
	return util_open_beneath(a->pkg_fd, buf, O_PATH | O_DIRECTORY, 0);
}

/*
 * Keep the extended attributes of the file a temporary replaces (user.*,
 * trusted.*, security.* labels; the access ACL only when the mode stays):
 * a commit changes contents, not what else PKG records about its files.
 * Not security.capability: capabilities granted to the old bytes must not
 * pass to new ones (the kernel drops them on any write too). Attributes
 * the file system refuses are skipped; running out of space is an error,
 * before the commit point.
 */
static int keep_xattrs(const struct apply *a, const struct store_change *c, int to)
{
	char names[XATTR_LIST_MAX], value[XATTR_SIZE_MAX], proc[64];
	struct stat st;
	ssize_t len;
	int from, r = 0;

	/* O_PATH: never opened for reading (a device node would notice). */
	from = util_open_beneath(a->pkg_fd, c->path, O_PATH | O_NOFOLLOW, 0);
	if (from < 0)
		return 0; /* nothing there to keep */
	if (fstat(from, &st) < 0 || !S_ISREG(st.st_mode))
		goto out;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", from);
	len = listxattr(proc, names, sizeof(names));
	for (ssize_t i = 0; len > 0 && i < len; i += (ssize_t)strlen(names + i) + 1) {
		const char *name = names + i;
		ssize_t n;

		if (!strcmp(name, "security.capability") ||
		    !strcmp(name, "system.posix_acl_default"))
			continue;
		if (!strcmp(name, "system.posix_acl_access") &&
		    (st.st_mode & 07777) != (c->new.mode & 07777))
			continue;
		n = getxattr(proc, name, value, sizeof(value));
		if (n < 0)
			continue;
		if (fsetxattr(to, name, value, (size_t)n, 0) < 0 &&
		    (errno == ENOSPC || errno == EDQUOT || errno == EIO)) {
			r = -errno;
			break;
		}
	}
out:
	util_close(from);
	return r;
}

int store_file_finish(int fd, int dirfd, const char *name, const struct store_entry *e,
		      const struct strbuf *xattrs, bool owner)
{
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { 0 } };
	int r;

	if (owner && fchown(fd, e->uid, e->gid) < 0)
		return -errno;
	/* After fchown (which drops capabilities), before fchmod: an access ACL sets mode bits. */
	if (e->has_xattrs) {
		r = store_xattrs_apply_at(dirfd, name, xattrs->buf, xattrs->len);
		if (r < 0)
			return r;
	}
	/* After fchown, which clears set-id bits. */
	if (fchmod(fd, e->mode & 07777) < 0)
		return -errno;
	times[1].tv_sec = e->mtime_ns / 1000000000;
	times[1].tv_nsec = e->mtime_ns % 1000000000;
	return futimens(fd, times) < 0 ? -errno : 0;
}

int store_special_at(int dirfd, const char *name, const struct store_entry *e, bool owner)
{
	struct timespec times[2] = { { .tv_nsec = UTIME_OMIT }, { 0 } };

	if (mknodat(dirfd, name, e->mode & S_IFMT, (dev_t)e->rdev) < 0)
		return -errno;
	if (owner && fchownat(dirfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	/* After fchownat, which clears set-id bits; mknod's mode went through the umask. */
	if (fchmodat(dirfd, name, e->mode & 07777, 0) < 0)
		return -errno;
	times[1].tv_sec = e->mtime_ns / 1000000000;
	times[1].tv_nsec = e->mtime_ns % 1000000000;
	return utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Write row i's new file, symlink or special file as its temporary. */
static int stage_one(struct apply *a, size_t i)
{
	const struct store_change *c = &a->c[i];
	char tmp[64];
	int sfd, fd = -1, blob_err = 0, r;

	sfd = open_stage_dir(a, i);
	if (sfd < 0)
		return log_debug_errno(sfd, "cannot open the directory to stage '%s' in", c->path);
	tmpname(a, i, tmp);
	/* A temporary left by an interrupted run is ours: start it again. */
	(void)unlinkat(sfd, tmp, 0);
	if (S_ISLNK(c->new.mode)) {
		struct strbuf target = STRBUF_INIT;

		r = store_blob_read(a->s, c->new.hash, &target, PATH_MAX);
		blob_err = r;
		if (r == 0)
			r = util_symlinkat(target.buf ? target.buf : "", sfd, tmp);
		strbuf_release(&target);
		if (r == 0 && a->root &&
		    fchownat(sfd, tmp, c->new.uid, c->new.gid, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
		if (r < 0)
			goto out_unlink;
		goto out;
	}
	if (!S_ISREG(c->new.mode)) {
		r = store_special_at(sfd, tmp, &c->new, a->root);
		if (r < 0)
			goto out_unlink;
		goto out;
	}
	fd = util_openat(sfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	r = (int)store_blob_copy(a->s, c->new.hash, fd);
	if (r < 0) {
		blob_err = r;
		goto out_unlink;
	}
	/* A row sealed before cjfs recorded xattrs keeps PKG's (keep_xattrs: not capabilities). */
	r = c->new.has_xattrs ? 0 : keep_xattrs(a, c, fd);
	if (r == 0)
		r = store_file_finish(fd, sfd, tmp, &c->new, &c->new_xattrs, a->root);
	if (r < 0)
		goto out_unlink;
	goto out;

out_unlink:
	(void)unlinkat(sfd, tmp, 0);
out:
	if (r < 0 && r == blob_err && (r == -EBADMSG || r == -ENOENT) && a->fail &&
	    !__atomic_exchange_n(&a->fail_taken, 1, __ATOMIC_RELAXED)) {
		/* Never written: the caller names the path and the blob in its one error line. */
		snprintf(a->fail->path, sizeof(a->fail->path), "%s", c->path);
		memcpy(a->fail->hash, c->new.hash, HASH_LEN);
		a->fail->original = a->reverse;
		a->fail->err = r;
	}
	if (r < 0)
		log_debug_errno(r, "cannot stage '%s'", c->path);
	util_close(fd);
	util_close(sfd);
	return r;
}

static int sync_pkg(const struct apply *a)
{
	/*
	 * One syncfs makes every staged file's data, every rename and every
	 * directory change durable with a single device flush, where one fsync
	 * per file and per directory would cost one flush each.
	 */
	int fd = util_openat(a->pkg_fd, ".", O_RDONLY | O_DIRECTORY, 0);
	int r;

	if (fd < 0)
		return fd;
	r = util_syncfs(fd);
	util_close(fd);
	return r;
}

static void unstage_all(struct apply *a)
{
	for (size_t i = 0; i < a->n; i++) {
		char tmp[64];
		int sfd;

		if (!a->c[i].status)
			continue;
		sfd = open_stage_dir(a, i);
		if (sfd < 0)
			continue;
		tmpname(a, i, tmp);
		(void)unlinkat(sfd, tmp, 0);
		util_close(sfd);
	}
}

static int promote_done(struct apply *a, size_t i);

/*
 * PKG's file at row l's path, which the apply leaves unchanged, to link row
 * i's temporary to: only while it is still the original l recorded and has
 * what row i wants (bytes, mode, owner). Its directory's fd, and its name.
 */
static int pkg_link_source(struct apply *a, const struct store_change *l,
			   const struct store_change *c, const char **ret_name)
{
	struct store_entry now;
	int r = store_entry_at(a->s, a->pkg_fd, l->path, 0, &now);

	if (r < 0)
		return r;
	if (now.mode != c->new.mode || now.uid != c->new.uid || now.gid != c->new.gid)
		return -ESTALE;
	/* Replaced in PKG since it was recorded (a copy put back, say): read it again. */
	if (!store_entry_same_file(&l->orig, &now)) {
		r = store_entry_at(a->s, a->pkg_fd, l->path, STORE_ENTRY_HASH, &now);
		if (r < 0)
			return r;
	} else {
		now = l->orig;
	}
	if (!hash_eq(&now, &c->new))
		return -ESTALE;
	r = pkg_xattrs_match(a->pkg_fd, l->path, &now, &c->new);
	if (r <= 0)
		return r < 0 ? r : -ESTALE;
	return util_open_parent(a->pkg_fd, l->path, ret_name);
}

/*
 * Row i's temporary as a hard link of row link[i]'s file: that row's
 * temporary, or PKG's file where the apply leaves that name unchanged.
 * Where it cannot be (the temporary is gone, renamed by an earlier run;
 * PKG's file is not what it was; a file system without hard links) it is
 * written as a file of its own: the same bytes, only not linked.
 */
static int stage_link(struct apply *a, size_t i)
{
	const struct store_change *c = &a->c[i], *l = &a->c[a->link[i]];
	char tmp[64], ltmp[64];
	const char *name = ltmp;
	int sfd, from, r;

	sfd = open_stage_dir(a, i);
	if (sfd < 0)
		return sfd;
	tmpname(a, i, tmp);
	(void)unlinkat(sfd, tmp, 0);
	if (l->status) {
		from = open_stage_dir(a, a->link[i]);
		tmpname(a, a->link[i], ltmp);
	} else {
		from = pkg_link_source(a, l, c, &name);
	}
	r = from < 0 ? from : linkat(from, name, sfd, tmp, 0) < 0 ? -errno : 0;
	util_close(from);
	util_close(sfd);
	if (r == 0)
		return 0;
	log_debug_errno(r, "cannot make '%s' a hard link of '%s': writing a file of its own",
			c->path, l->path);
	return stage_one(a, i);
}

/* Row i's temporary, whichever kind it is. */
static int stage_any(struct apply *a, size_t i)
{
	return a->link[i] != NO_LINK ? stage_link(a, i) : stage_one(a, i);
}

static int stage_row_now(struct apply *a, size_t i)
{
	int r;

	/*
	 * Recovering (an undo after a failed promote): what already holds its
	 * target needs no temporary, and on a full disk there may be room only
	 * for those that do.
	 */
	if (a->recover) {
		r = promote_done(a, i);
		if (r != 0)
			return r < 0 ? r : 0;
	}
	return stage_any(a, i);
}

/* The parallel pass: files of their own. Hard links follow, once what they link to is there. */
static int stage_row(void *ctx, size_t i)
{
	struct apply *a = ctx;

	if (!is_staged(&a->c[i]) || a->link[i] != NO_LINK)
		return 0;
	return stage_row_now(a, i);
}

int store_txn_stage(struct store *s, int64_t txn, int pkg_fd, unsigned flags,
		    struct store_apply_failure *fail)
{
	struct apply a;
	int r;

	r = apply_load(&a, s, txn, pkg_fd, flags);
	if (r < 0)
		return r;
	a.fail = fail;
	/* Every file is its own work (read, verify, write): on all CPUs at once. */
	r = util_parallel_for(a.n, stage_row, &a);
	for (size_t i = 0; i < a.n && r == 0; i++)
		if (a.link[i] != NO_LINK)
			r = stage_row_now(&a, i);
	/* The new data durable before the commit point can refer to it. */
	if (r == 0)
		r = sync_pkg(&a);
	if (r < 0)
		unstage_all(&a);
	apply_release(&a);
	return r;
}

int store_txn_unstage(struct store *s, int64_t txn, int pkg_fd)
{
	struct apply a;
	int r;

	for (int rev = 0; rev < 2; rev++) {
		r = apply_load(&a, s, txn, pkg_fd, rev ? STORE_APPLY_REVERSE : 0);
		if (r < 0)
			return r;
		unstage_all(&a);
		apply_release(&a);
	}
	return 0;
}

/* Remove what is at row i's path when it is in the way of the new state. */
static int promote_remove(struct apply *a, size_t i)
{
	const struct store_change *c = &a->c[i];
	const char *base;
	struct stat st;
	int pfd, r = 0;

	pfd = util_open_parent(a->pkg_fd, c->path, &base);
	if (pfd == -ENOENT || pfd == -ENOTDIR)
		return 0;
	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	if (c->new.mode && (st.st_mode & S_IFMT) == (c->new.mode &S_IFMT))
		goto out; /* same type: replaced by rename (file) or kept (directory) */
	if (c->new.mode && !S_ISDIR(c->new.mode) && !S_ISDIR(st.st_mode))
		goto out; /* rename() of the new file or symlink replaces it atomically */
	r = util_unlinkat(pfd, base, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
	if (r == -ENOENT)
		r = 0;
	if (r < 0)
		log_debug_errno(r, "cannot remove '%s'", c->path);
out:
	util_close(pfd);
	return r;
}

/* The mode promote_dir gives a directory while files still go into it. */
static mode_t dir_mode_now(const struct store_change *c)
{
	return c->new.mode | S_IRWXU;
}

static int promote_dir(struct apply *a, size_t i)
{
	const struct store_change *c = &a->c[i];
	const char *base;
	struct stat st;
	int pfd, r;

	pfd = util_open_parent(a->pkg_fd, c->path, &base);
	if (pfd < 0)
		return pfd;
	r = util_mkdirat(pfd, base, 0700);
	if (r < 0 && r != -EEXIST)
		goto out;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISDIR(st.st_mode)) {
		r = -ENOTDIR;
		goto out;
	}
	r = 0;
	if (a->root && (st.st_uid != c->new.uid || st.st_gid != c->new.gid) &&
	    fchownat(pfd, base, c->new.uid, c->new.gid, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	/* Before the mode, which an access ACL would change. */
	if (r == 0 && c->new.has_xattrs) {
		r = store_xattrs_apply_at(pfd, base, c->new_xattrs.buf, c->new_xattrs.len);
		if (r == 0 && fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
	}
	/*
	 * A directory its owner may not write into (0555) gets that mode only
	 * after everything has been renamed into it (promote_dir_modes): the
	 * owner's bits first, the rest now.
	 */
	if (r == 0 && (st.st_mode & 07777) != (dir_mode_now(c) & 07777) &&
	    fchmodat(pfd, base, dir_mode_now(c) & 07777, 0) < 0)
		r = -errno;
out:
	if (r < 0)
		log_debug_errno(r, "cannot create directory '%s'", c->path);
	util_close(pfd);
	return r;
}

/* Deepest first: the final mode of each directory promote_dir left writable. */
static int promote_dir_modes(struct apply *a)
{
	for (size_t i = a->n; i-- > 0;) {
		const struct store_change *c = &a->c[i];
		const char *base;
		int pfd, r = 0;

		if (!c->status || !S_ISDIR(c->new.mode) || dir_mode_now(c) == c->new.mode)
			continue;
		pfd = util_open_parent(a->pkg_fd, c->path, &base);
		if (pfd < 0)
			return pfd;
		if (fchmodat(pfd, base, c->new.mode & 07777, 0) < 0)
			r = -errno;
		util_close(pfd);
		if (r < 0)
			return log_debug_errno(r, "cannot set the mode of '%s'", c->path);
	}
	return 0;
}

/* Does PKG hold e (content, type, permission bits, xattrs where known) at row i's path? */
static int pkg_holds(struct apply *a, size_t i, const struct store_entry *e)
{
	struct store_entry now;
	int r = store_entry_at(a->s, a->pkg_fd, a->c[i].path, 0, &now);

	if (r < 0)
		return r;
	r = pkg_matches(a->s, a->pkg_fd, a->c[i].path, &now, e);
	if (r == 1 && (now.mode & 07777) != (e->mode & 07777))
		r = 0;
	return r == 1 ? pkg_xattrs_match(a->pkg_fd, a->c[i].path, &now, e) : r;
}

/* Does PKG already hold row i's new state (an earlier run got that far)? */
static int promote_done(struct apply *a, size_t i)
{
	return pkg_holds(a, i, &a->c[i].new);
}

int store_txn_pkg_state(struct store *s, int64_t txn, int pkg_fd)
{
	bool all_old = true, all_new = true;
	struct apply a;
	int r;

	r = apply_load(&a, s, txn, pkg_fd, 0);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a.n && (all_old || all_new); i++) {
		if (!a.c[i].status)
			continue;
		if (all_new) {
			r = pkg_holds(&a, i, &a.c[i].new);
			if (r < 0)
				goto out;
			all_new = r == 1;
		}
		if (all_old) {
			r = pkg_holds(&a, i, &a.c[i].orig);
			if (r < 0)
				goto out;
			all_old = r == 1;
		}
	}
	r = all_old ? STORE_PKG_OLD : all_new ? STORE_PKG_NEW : STORE_PKG_MIXED;
out:
	apply_release(&a);
	return r;
}

static int promote_staged(struct apply *a, size_t i)
{
	const struct store_change *c = &a->c[i];
	const char *base;
	char tmp[64];
	struct stat st;
	int sfd, pfd, r;

	sfd = open_stage_dir(a, i);
	if (sfd < 0)
		return sfd;
	tmpname(a, i, tmp);
	if (fstatat(sfd, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		if (r != -ENOENT || !a->recover)
			goto out;
		/* No temporary: renamed already, or lost. Check, and stage again if needed. */
		r = promote_done(a, i);
		if (r != 0)
			goto out;
		r = stage_any(a, i);
		if (r < 0)
			goto out;
	}
	pfd = util_open_parent(a->pkg_fd, c->path, &base);
	if (pfd < 0) {
		r = pfd;
		goto out;
	}
	r = util_renameat(sfd, tmp, pfd, base);
	if (r < 0)
		log_debug_errno(r, "cannot rename into '%s'", c->path);
	/* A rename onto another name of the same file does nothing: drop the temporary. */
	else if (a->link[i] != NO_LINK)
		(void)unlinkat(sfd, tmp, 0);
	util_close(pfd);
out:
	util_close(sfd);
	return r < 0 ? r : 0;
}

int store_txn_promote(struct store *s, int64_t txn, int pkg_fd, unsigned flags,
		      struct store_apply_failure *fail)
{
	struct apply a;
	int r;

	r = apply_load(&a, s, txn, pkg_fd, flags);
	if (r < 0)
		return r;
	a.fail = fail;
	/* 1. Deepest first (reverse path order), remove what goes away or changes type. */
	for (size_t i = a.n; i-- > 0 && r == 0;) {
		if (a.c[i].status)
			r = promote_remove(&a, i);
	}
	/* 2. Shallowest first, directories, then each file into place: old or new, never half. */
	for (size_t i = 0; i < a.n && r == 0; i++) {
		const struct store_change *c = &a.c[i];

		if (!c->status || !c->new.mode)
			continue;
		if (S_ISDIR(c->new.mode))
			r = promote_dir(&a, i);
		else
			r = promote_staged(&a, i);
	}
	if (r == 0)
		r = promote_dir_modes(&a);
	if (r == 0 && a.recover)
		unstage_all(&a);
	/* 3. Every rename and removal durable before the journal says done. */
	if (r == 0)
		r = sync_pkg(&a);
	apply_release(&a);
	return r;
}
