// SPDX-License-Identifier: MIT
/*
 * The change set: reading the state of a path (in PKG or in a view of the new
 * tree) into a struct store_entry, and comparing an original with a new state.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

static void entry_from_stat(const struct stat *st, struct store_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->mode = st->st_mode;
	e->uid = st->st_uid;
	e->gid = st->st_gid;
	e->size = S_ISREG(st->st_mode) || S_ISLNK(st->st_mode) ? (uint64_t)st->st_size : 0;
	e->mtime_ns = util_timespec_ns(&st->st_mtim);
	e->ctime_ns = util_timespec_ns(&st->st_ctim);
	e->dev = st->st_dev;
	e->ino = st->st_ino;
	e->rdev = S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) ? (uint64_t)st->st_rdev : 0;
}

/* Hash (and with put, store) the content of an open regular file. */
/* What to do with content besides hashing it: store it, or stage it for a transaction. */
struct keep {
	unsigned flags;
	int64_t txn;  /* stage for this transaction (instead of flags & PUT) */
	bool staged;  /* out: content was staged */
	uint64_t off; /* out: where */
	uint64_t size; /* in: the size of the file being staged, from its fstat */
	struct strbuf *xattrs; /* out, if set: the xattr list of a file or directory */
};

static int entry_hash_fd(struct store *s, int fd, struct keep *k, struct store_entry *e)
{
	uint64_t size;
	int r;

	if (k->txn) {
		r = store_stage_fd(s, k->txn, fd, k->size, e->hash, &size, &k->off);
		k->staged = r == 0;
	} else if (k->flags & STORE_ENTRY_PUT) {
		r = store_put_fd(s, fd, e->hash, &size);
	} else {
		r = hash_fd(fd, e->hash, &size);
	}
	if (r < 0)
		return r;
	e->has_hash = true;
	e->size = size;
	return 0;
}

static int entry_hash_link(struct store *s, const char *target, size_t len, struct keep *k,
			   struct store_entry *e)
{
	int r;

	if (k->txn) {
		r = store_stage_buf(s, k->txn, target, len, e->hash, &k->off);
		k->staged = r == 0;
	} else if (k->flags & STORE_ENTRY_PUT) {
		r = store_put_buf(s, target, len, e->hash);
	} else {
		r = hash_buf(target, len, e->hash);
	}
	if (r < 0)
		return r;
	e->has_hash = true;
	e->size = len;
	return 0;
}

static int entry_at(struct store *s, int dirfd, const char *path, struct keep *k,
		    struct store_entry *ret)
{
	unsigned flags = k->flags;
	struct store_entry e;
	const char *base;
	struct stat st;
	bool own = strchr(path, '/') != NULL;
	int pfd, r = 0;

	/* A name right in dirfd needs no directory of its own. */
	if (own) {
		pfd = util_open_parent(dirfd, path, &base);
	} else {
		pfd = dirfd;
		base = path;
	}
	if (pfd == -ENOENT || pfd == -ENOTDIR) {
		memset(ret, 0, sizeof(*ret));
		return 0;
	}
	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		if (own)
			util_close(pfd);
		if (r == -ENOENT || r == -ENOTDIR) {
			memset(ret, 0, sizeof(*ret));
			return 0;
		}
		return r;
	}
	entry_from_stat(&st, &e);
	if (k->xattrs && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
		r = store_xattrs_read_at(pfd, base, k->xattrs);
		if (r == 0)
			store_entry_set_xattrs(&e, k->xattrs);
	}
	if (r == 0 && (flags & STORE_ENTRY_HASH) && S_ISREG(st.st_mode)) {
		struct stat st2;
		/* O_NONBLOCK: if the name became a FIFO since fstatat, do not hang on it. */
		int fd = util_openat_noatime(pfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);

		if (fd < 0) {
			r = fd;
		} else {
			if (fstat(fd, &st2) < 0) {
				r = -errno;
			} else if (st2.st_ino != st.st_ino || st2.st_dev != st.st_dev) {
				r = -EAGAIN; /* replaced under us: the caller retries or reports */
			} else {
				k->size = (uint64_t)st2.st_size;
				r = entry_hash_fd(s, fd, k, &e);
			}
			util_close(fd);
		}
	} else if (r == 0 && (flags & STORE_ENTRY_HASH) && S_ISLNK(st.st_mode)) {
		char target[PATH_MAX];
		ssize_t n = readlinkat(pfd, base, target, sizeof(target));

		if (n < 0)
			r = -errno;
		else if ((size_t)n >= sizeof(target))
			r = -ENAMETOOLONG;
		else
			r = entry_hash_link(s, target, (size_t)n, k, &e);
	}
	if (own)
		util_close(pfd);
	if (r < 0)
		return r;
	*ret = e;
	return 0;
}

int store_entry_at(struct store *s, int dirfd, const char *path, unsigned flags,
		   struct store_entry *ret)
{
	struct keep k = { .flags = flags };

	return entry_at(s, dirfd, path, &k, ret);
}

int store_entry_stage_at(struct store *s, int64_t txn, int dirfd, const char *path,
			 struct store_entry *ret, struct strbuf *ret_xattrs, bool *ret_staged,
			 uint64_t *ret_off)
{
	struct keep k = { .flags = STORE_ENTRY_HASH, .txn = txn, .xattrs = ret_xattrs };
	int r = entry_at(s, dirfd, path, &k, ret);

	if (r == 0) {
		*ret_staged = k.staged;
		*ret_off = k.off;
	}
	return r;
}

int store_entry_from_view(struct store *s, const struct store_view *v, const char *path,
			  unsigned flags, struct store_entry *ret)
{
	struct keep k = { .flags = flags };
	struct store_entry e;
	struct stat st;
	int r;

	r = v->lstat(v->ctx, path, &st);
	if (r == -ENOENT || r == -ENOTDIR) {
		memset(ret, 0, sizeof(*ret));
		return 0;
	}
	if (r < 0)
		return r;
	entry_from_stat(&st, &e);
	if ((flags & STORE_ENTRY_HASH) && S_ISREG(st.st_mode)) {
		int fd = v->open(v->ctx, path);

		if (fd < 0)
			return fd;
		r = entry_hash_fd(s, fd, &k, &e);
		util_close(fd);
	} else if ((flags & STORE_ENTRY_HASH) && S_ISLNK(st.st_mode)) {
		struct strbuf target = STRBUF_INIT;

		r = v->readlink(v->ctx, path, &target);
		if (r == 0)
			r = entry_hash_link(s, target.buf ? target.buf : "", target.len, &k, &e);
		strbuf_release(&target);
	}
	if (r < 0)
		return r;
	*ret = e;
	return 0;
}

char store_entry_compare(const struct store_entry *orig, const struct store_entry *now)
{
	if (!orig->mode && !now->mode)
		return 0;
	if (!orig->mode)
		return 'A';
	if (!now->mode)
		return 'D';
	if ((orig->mode & S_IFMT) != (now->mode & S_IFMT))
		return 'M';
	if ((orig->mode & 07777) != (now->mode & 07777))
		return 'M';
	if (orig->uid != now->uid || orig->gid != now->gid)
		return 'M';
	if (orig->rdev != now->rdev)
		return 'M';
	if (S_ISREG(orig->mode) || S_ISLNK(orig->mode)) {
		if (orig->size != now->size)
			return 'M';
		if (orig->has_hash && now->has_hash && memcmp(orig->hash, now->hash, HASH_LEN) != 0)
			return 'M';
	}
	if (orig->has_xattrs && now->has_xattrs &&
	    memcmp(orig->xattrs, now->xattrs, HASH_LEN) != 0)
		return 'M';
	return 0;
}

bool store_path_is_row(const char *path)
{
	return util_path_is_safe(path) || (path && strcmp(path, STORE_PATH_ROOT) == 0);
}

bool store_entry_same_file(const struct store_entry *recorded, const struct store_entry *now)
{
	if (!recorded->mode || !now->mode)
		return !recorded->mode && !now->mode;
	return recorded->mode == now->mode && recorded->ino == now->ino &&
	       recorded->dev == now->dev && recorded->size == now->size &&
	       recorded->mtime_ns == now->mtime_ns && recorded->ctime_ns == now->ctime_ns &&
	       recorded->uid == now->uid && recorded->gid == now->gid;
}

/* ---- a view of a plain directory ---- */

static int dirview_lstat(void *ctx, const char *path, struct stat *st)
{
	int dirfd = *(int *)ctx;
	const char *base;
	int pfd = util_open_parent(dirfd, path, &base);
	int r = 0;

	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, base, st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	util_close(pfd);
	return r;
}

static int dirview_open(void *ctx, const char *path)
{
	return util_open_beneath(*(int *)ctx, path, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
}

static int dirview_readlink(void *ctx, const char *path, struct strbuf *out)
{
	int dirfd = *(int *)ctx;
	char target[PATH_MAX];
	const char *base;
	int pfd = util_open_parent(dirfd, path, &base);
	ssize_t n;

	if (pfd < 0)
		return pfd;
	n = readlinkat(pfd, base, target, sizeof(target));
	util_close(pfd);
	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	return strbuf_add(out, target, (size_t)n);
}

static int dirview_xattrs(void *ctx, const char *path, struct strbuf *out)
{
	return store_xattrs_read_below(*(int *)ctx, path, out);
}

void store_view_dir(struct store_view *v, int *dirfd)
{
	v->ctx = dirfd;
	v->lstat = dirview_lstat;
	v->open = dirview_open;
	v->readlink = dirview_readlink;
	v->xattrs = dirview_xattrs;
}
