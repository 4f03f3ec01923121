// SPDX-License-Identifier: MIT
/*
 * Names to objects: merged paths of inodes, the upper and lower directory
 * fds of a directory inode, and lookup (upper first, then the whiteout and
 * opaque checks, then lower). Every function here expects fs->ns held.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define FS_MAX_DEPTH 4096

/* Components from inode up to (not including) the root, deepest first. */
static int collect(struct fs *fs, struct fs_inode *inode, struct fs_inode **chain, size_t *ret_n)
{
	size_t n = 0;

	for (; inode != &fs->root_inode; inode = inode->parent) {
		if (!inode || inode->unlinked || !inode->name)
			return -ENOENT;
		if (n == FS_MAX_DEPTH)
			return -ENAMETOOLONG;
		chain[n++] = inode;
	}
	*ret_n = n;
	return 0;
}

static int build_path(struct fs *fs, struct fs_inode *inode, bool encode, struct strbuf *out)
{
	struct fs_inode **chain = malloc(FS_MAX_DEPTH * sizeof(*chain));
	size_t n;
	int r;

	if (!chain)
		return -ENOMEM;
	strbuf_reset(out);
	r = collect(fs, inode, chain, &n);
	for (size_t i = n; r == 0 && i-- > 0;) {
		char buf[NAME_MAX + 1];
		const char *name = chain[i]->name;

		if (encode) {
			r = layer_encode(name, buf, &name);
			if (r < 0)
				break;
		}
		if (out->len)
			r = strbuf_add(out, "/", 1);
		if (r == 0)
			r = strbuf_adds(out, name);
	}
	if (r == 0 && !out->buf)
		r = strbuf_grow(out, 0);
	free(chain);
	return r;
}

int fs_path(struct fs *fs, struct fs_inode *inode, struct strbuf *out)
{
	return build_path(fs, inode, false, out);
}

int fs_child_path(struct fs *fs, struct fs_inode *dir, const char *name, struct strbuf *out)
{
	int r = fs_path(fs, dir, out);

	if (r < 0)
		return r;
	if (out->len)
		r = strbuf_add(out, "/", 1);
	return r < 0 ? r : strbuf_adds(out, name);
}

void fs_put_fd(int fd, bool owned)
{
	if (owned)
		util_close(fd);
}

/* Cache fd in *slot unless another thread was first; returns the fd to use. */
static int cache_fd(struct fs *fs, int *slot, int fd, bool *ret_owned)
{
	int expected = -1;

	if (__atomic_sub_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED) < 0) {
		__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED);
		*ret_owned = true;
		return fd;
	}
	if (__atomic_compare_exchange_n(slot, &expected, fd, false, __ATOMIC_ACQ_REL,
					__ATOMIC_ACQUIRE)) {
		*ret_owned = false;
		return fd;
	}
	__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED);
	util_close(fd);
	*ret_owned = false;
	return expected;
}

int fs_dir_upper_fd(struct fs *fs, struct fs_inode *dir, bool *ret_owned)
{
	struct strbuf path = STRBUF_INIT;
	int fd;

	if (dir == &fs->root_inode) {
		*ret_owned = false;
		return fs->upper_fd;
	}
	if (!dir->upper || dir->unlinked)
		return -ENOENT;
	fd = __atomic_load_n(&dir->upper_fd, __ATOMIC_ACQUIRE);
	if (fd >= 0) {
		*ret_owned = false;
		return fd;
	}
	fd = build_path(fs, dir, true, &path);
	if (fd == 0)
		fd = util_open_beneath(fs->upper_fd, path.buf, O_PATH | O_DIRECTORY, 0);
	strbuf_release(&path);
	if (fd < 0)
		return fd;
	return cache_fd(fs, &dir->upper_fd, fd, ret_owned);
}

/* The lower path a directory merges; "" for the root. */
int fs_lower_path(struct fs *fs, struct fs_inode *dir, struct strbuf *out)
{
	struct fs_inode **chain = malloc(FS_MAX_DEPTH * sizeof(*chain));
	size_t n = 0;
	int r = 0;

	if (!chain)
		return -ENOMEM;
	strbuf_reset(out);
	/* Up to the nearest directory whose lower path is explicit (or the root). */
	struct fs_inode *in = dir;

	for (;;) {
		if (in == &fs->root_inode)
			break;
		if (!in || in->unlinked) {
			r = -ENOENT;
			goto out;
		}
		if (in->redirect)
			break;
		if (in->opaque || !in->lower || n == FS_MAX_DEPTH) {
			r = -ENOENT;
			goto out;
		}
		chain[n++] = in;
		in = in->parent;
	}
	if (in != &fs->root_inode) {
		r = strbuf_adds(out, in->redirect);
		if (r < 0)
			goto out;
	}
	for (size_t i = n; i-- > 0;) {
		if (out->len)
			r = strbuf_add(out, "/", 1);
		if (r == 0)
			r = strbuf_adds(out, chain[i]->name);
		if (r < 0)
			goto out;
	}
	if (!out->buf)
		r = strbuf_grow(out, 0);
out:
	free(chain);
	return r;
}

int fs_dir_lower_fd(struct fs *fs, struct fs_inode *dir, bool *ret_owned)
{
	struct strbuf path = STRBUF_INIT;
	int fd;

	if (dir == &fs->root_inode) {
		*ret_owned = false;
		return fs->lower_fd;
	}
	if (!dir->lower || dir->opaque || dir->unlinked)
		return -ENOENT;
	fd = __atomic_load_n(&dir->lower_fd, __ATOMIC_ACQUIRE);
	if (fd >= 0) {
		*ret_owned = false;
		return fd;
	}
	fd = fs_lower_path(fs, dir, &path);
	if (fd == 0)
		fd = path.len ? util_open_beneath(fs->lower_fd, path.buf, O_PATH | O_DIRECTORY, 0)
			      : util_openat(fs->lower_fd, ".", O_PATH | O_DIRECTORY, 0);
	strbuf_release(&path);
	if (fd < 0)
		return fd;
	return cache_fd(fs, &dir->lower_fd, fd, ret_owned);
}

/* Both fds of a directory for a lookup in it: -1 for an absent part. */
static int dir_fds(struct fs *fs, struct fs_inode *dir, int *u, bool *uo, int *l, bool *lo)
{
	*u = *l = -1;
	*uo = *lo = false;
	if (dir->unlinked)
		return -ENOENT;
	if (dir->upper) {
		*u = fs_dir_upper_fd(fs, dir, uo);
		if (*u < 0)
			return *u;
	}
	if (dir->lower && !dir->opaque) {
		*l = fs_dir_lower_fd(fs, dir, lo);
		if (*l == -ENOENT || *l == -ENOTDIR) {
			*l = -1; /* the lower directory vanished from PKG: show the upper part */
		} else if (*l < 0) {
			int r = *l;

			fs_put_fd(*u, *uo);
			return r;
		}
	}
	return 0;
}

/* The inode of what a lookup found, counted, and the attributes to report. */
static int found_entry(struct fs *fs, struct fs_inode *dir, const char *name, struct fs_found *f,
		       struct fs_inode **ret, struct stat *ret_st)
{
	struct fs_inode *inode;
	int r = fs_inode_found(fs, dir, name, f, &inode);

	if (r < 0)
		return r;
	fs_fix_stat(fs, inode, &f->st);
	*ret = inode;
	*ret_st = f->st;
	return 0;
}

int fs_lookup(struct fs *fs, struct fs_inode *dir, const char *name, struct fs_inode **ret,
	      struct stat *ret_st)
{
	struct fs_found f = { .upper_fd = -1, .lower_fd = -1 };
	bool uo, lo;
	int u, l, r;

	if (dir->type != S_IFDIR)
		return -ENOTDIR;
	r = dir_fds(fs, dir, &u, &uo, &l, &lo);
	if (r < 0)
		return r;
	r = layer_lookup(u, l, name, &f.st, &f.where);
	if (r == 0 && f.where == LAYER_NONE)
		r = -ENOENT;
	if (r == 0 && S_ISDIR(f.st.st_mode)) {
		struct strbuf origin = STRBUF_INIT;

		r = layer_open_dir(fs->lower_fd, u, l, name, f.where, &f.upper_fd, &f.lower_fd);
		if (r == 0 && f.upper_fd >= 0) {
			r = layer_read_dirinfo(f.upper_fd, &f.opaque, &origin);
			if (r == 0 && origin.buf) {
				f.redirect = strbuf_detach(&origin);
				if (!f.redirect)
					r = -ENOMEM;
			}
		}
		strbuf_release(&origin);
	}
	fs_put_fd(u, uo);
	fs_put_fd(l, lo);
	if (r < 0) {
		util_close(f.upper_fd);
		util_close(f.lower_fd);
		free(f.redirect);
		return r;
	}
	return found_entry(fs, dir, name, &f, ret, ret_st);
}

int fs_lookup_made(struct fs *fs, struct fs_inode *dir, const char *name, const struct stat *st,
		   struct fs_inode **ret, struct stat *ret_st)
{
	struct fs_found f = { .upper_fd = -1, .lower_fd = -1, .where = LAYER_UPPER, .st = *st };

	return found_entry(fs, dir, name, &f, ret, ret_st);
}

int fs_inode_at(struct fs *fs, struct fs_inode *inode, bool upper, int *ret_dirfd, bool *ret_owned,
		char namebuf[NAME_MAX + 1], const char **ret_name)
{
	int fd;

	if (inode == &fs->root_inode) {
		*ret_dirfd = upper ? fs->upper_fd : fs->lower_fd;
		*ret_owned = false;
		*ret_name = ".";
		return 0;
	}
	if (inode->unlinked || !inode->parent)
		return -ENOENT;
	if (upper) {
		int r = layer_encode(inode->name, namebuf, ret_name);

		if (r < 0)
			return r;
		fd = fs_dir_upper_fd(fs, inode->parent, ret_owned);
	} else {
		*ret_name = inode->name;
		fd = fs_dir_lower_fd(fs, inode->parent, ret_owned);
	}
	if (fd < 0)
		return fd;
	*ret_dirfd = fd;
	return 0;
}

int fs_inode_stat(struct fs *fs, struct fs_inode *inode, struct stat *st)
{
	char buf[NAME_MAX + 1];
	const char *name;
	bool owned;
	int dfd, r;

	if (inode->anchor_fd >= 0) {
		r = fstatat(inode->anchor_fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0
			    ? -errno
			    : 0;
	} else {
		r = fs_inode_at(fs, inode, inode->upper, &dfd, &owned, buf, &name);
		if (r < 0)
			return r;
		r = fstatat(dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
		fs_put_fd(dfd, owned);
	}
	if (r == 0)
		fs_fix_stat(fs, inode, st);
	return r;
}

/* Does the directory behind fd contain a user entry (not a marker)? */
static int upper_has_entries(int dirfd)
{
	int fd = util_openat(dirfd, ".", O_RDONLY | O_DIRECTORY, 0);
	struct dirent *de;
	DIR *d;
	int r = 0;

	if (fd < 0)
		return fd;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (layer_decode(de->d_name)) {
			r = 1;
			break;
		}
	}
	closedir(d);
	return r;
}

int fs_dir_is_empty(struct fs *fs, struct fs_inode *dir)
{
	struct dirent *de;
	bool uo, lo;
	int u, l, r;
	DIR *d;

	r = dir_fds(fs, dir, &u, &uo, &l, &lo);
	if (r < 0)
		return r;
	if (u >= 0) {
		r = upper_has_entries(u);
		if (r != 0)
			goto out;
	}
	if (l >= 0) {
		int fd = util_openat(l, ".", O_RDONLY | O_DIRECTORY, 0);

		if (fd < 0) {
			r = fd;
			goto out;
		}
		d = fdopendir(fd);
		if (!d) {
			r = -errno;
			util_close(fd);
			goto out;
		}
		while ((de = readdir(d))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (u >= 0) {
				char buf[NAME_MAX + 1];
				const char *uname;
				struct stat st;

				if (layer_encode(de->d_name, buf, &uname) == 0 &&
				    fstatat(u, uname, &st, AT_SYMLINK_NOFOLLOW) == 0)
					continue; /* shadowed; counted with the upper part */
				r = layer_has_whiteout(u, de->d_name);
				if (r == 1) {
					r = 0;
					continue;
				}
				if (r < 0)
					break;
			}
			r = 1;
			break;
		}
		closedir(d);
	}
out:
	fs_put_fd(u, uo);
	fs_put_fd(l, lo);
	return r < 0 ? r : r == 0;
}
