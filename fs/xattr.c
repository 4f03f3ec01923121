// SPDX-License-Identifier: MIT
/*
 * Extended attributes, passed through to the layer that holds the object
 * (setting one copies the object up). cjfs keeps no private xattrs of its
 * own; those of kernel overlayfs are hidden in case PKG lives on one.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

/*
 * A path that reaches the object: its name below its directory's /proc fd
 * (no fd of its own to open and close), or an anchored object's own fd.
 * Caller holds fs->ns.
 */
struct xpath {
	char path[32 + NAME_MAX];
	int dirfd; /* -1: path is an anchored object's /proc fd link, to be followed */
	bool owned;
};

/* Does path end in the /proc link to follow, not in the object's own name? */
static bool xpath_follow(const struct xpath *x)
{
	return x->dirfd < 0;
}

static ssize_t list_names(const struct xpath *x, char *buf, size_t size)
{
	return xpath_follow(x) ? listxattr(x->path, buf, size) : llistxattr(x->path, buf, size);
}

static int xpath_get(struct fs *fs, struct fs_inode *inode, struct xpath *x)
{
	char nb[NAME_MAX + 1];
	const char *name;
	int r;

	x->dirfd = -1;
	x->owned = false;
	if (inode->anchor_fd >= 0) {
		snprintf(x->path, sizeof(x->path), "/proc/self/fd/%d", inode->anchor_fd);
		return 0;
	}
	r = fs_inode_at(fs, inode, inode->upper, &x->dirfd, &x->owned, nb, &name);
	if (r < 0)
		return r;
	snprintf(x->path, sizeof(x->path), "/proc/self/fd/%d/%s", x->dirfd, name);
	return 0;
}

static void xpath_put(struct xpath *x)
{
	fs_put_fd(x->dirfd, x->owned);
}

/*
 * The kernel asks for security.capability before every write() (to drop
 * it), usually of a file the daemon made itself. The upper layer changes
 * only through the daemon, so "none" is remembered per upper object until
 * any security.capability is set or removed through the mount.
 */
static bool is_caps(const char *name)
{
	return strcmp(name, "security.capability") == 0;
}

/*
 * After setting or removing one (not before: a lookup that started after
 * the old generation was read and ended before the change could remember
 * "none" under the new one).
 */
static void forget_caps(struct fs *fs, const char *name)
{
	if (is_caps(name))
		__atomic_add_fetch(&fs->caps_gen, 1, __ATOMIC_ACQ_REL);
}

void fs_xattr_no_caps(struct fs *fs, struct fs_inode *inode)
{
	__atomic_store_n(&inode->nocaps, __atomic_load_n(&fs->caps_gen, __ATOMIC_ACQUIRE) + 1,
			 __ATOMIC_RELEASE);
}

static bool is_default_acl(const char *name)
{
	return strcmp(name, "system.posix_acl_default") == 0;
}

/*
 * Does a directory's upper copy (pu, its fd) have a default ACL? Asked for
 * every object made in it, so remembered per directory: the upper layer
 * changes only through the daemon, and setting or removing a default ACL
 * through the mount forgets the answer. The caller (fs_do_mknod) holds
 * fs->ns for writing, fs_do_setxattr and fs_do_removexattr hold it for
 * reading: no answer is remembered across a change.
 */
bool fs_xattr_default_acl(struct fs_inode *dir, int pu)
{
	uint8_t v = __atomic_load_n(&dir->dacl, __ATOMIC_ACQUIRE);
	char path[32];
	ssize_t n;

	if (v != FS_DACL_UNKNOWN)
		return v == FS_DACL_SOME;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", pu);
	n = getxattr(path, "system.posix_acl_default", NULL, 0);
	if (n > 0)
		v = FS_DACL_SOME;
	else if (n == 0 || errno == ENODATA || errno == EOPNOTSUPP)
		v = FS_DACL_NONE;
	else
		return false; /* not remembered: ask again next time */
	__atomic_store_n(&dir->dacl, v, __ATOMIC_RELEASE);
	return v == FS_DACL_SOME;
}

/* After a default ACL is set or removed (fs->ns held for reading). */
static void forget_default_acl(struct fs_inode *inode, const char *name)
{
	if (is_default_acl(name))
		__atomic_store_n(&inode->dacl, FS_DACL_UNKNOWN, __ATOMIC_RELEASE);
}

ssize_t fs_do_getxattr(struct fs *fs, struct fs_inode *inode, const char *name, char *buf,
		       size_t size)
{
	uint64_t gen = __atomic_load_n(&fs->caps_gen, __ATOMIC_ACQUIRE);
	struct xpath x;
	ssize_t n;
	int r;

	if (store_xattr_private(name))
		return -ENODATA;
	if (is_caps(name) && __atomic_load_n(&inode->nocaps, __ATOMIC_ACQUIRE) == gen + 1)
		return -ENODATA;
	pthread_rwlock_rdlock(&fs->ns);
	r = xpath_get(fs, inode, &x);
	if (r < 0) {
		pthread_rwlock_unlock(&fs->ns);
		return r;
	}
	n = xpath_follow(&x) ? getxattr(x.path, name, buf, size)
			     : lgetxattr(x.path, name, buf, size);
	if (n < 0)
		n = -errno;
	if (n == -ENODATA && is_caps(name) && inode->upper && inode->anchor_fd < 0)
		__atomic_store_n(&inode->nocaps, gen + 1, __ATOMIC_RELEASE);
	xpath_put(&x);
	pthread_rwlock_unlock(&fs->ns);
	return n;
}

ssize_t fs_do_listxattr(struct fs *fs, struct fs_inode *inode, char *buf, size_t size)
{
	char *list = NULL;
	struct xpath x;
	ssize_t n, out = 0;
	int r;

	pthread_rwlock_rdlock(&fs->ns);
	r = xpath_get(fs, inode, &x);
	if (r < 0) {
		pthread_rwlock_unlock(&fs->ns);
		return r;
	}
	n = list_names(&x, NULL, 0);
	if (n > 0) {
		list = malloc((size_t)n);
		if (!list) {
			errno = ENOMEM;
			n = -1;
		} else {
			n = list_names(&x, list, (size_t)n);
		}
	}
	if (n < 0) {
		out = -errno;
		goto out;
	}
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
		size_t len = strlen(list + i) + 1;

		if (store_xattr_private(list + i))
			continue;
		if (size) {
			if ((size_t)out + len > size) {
				out = -ERANGE;
				goto out;
			}
			memcpy(buf + out, list + i, len);
		}
		out += (ssize_t)len;
	}
out:
	free(list);
	xpath_put(&x);
	pthread_rwlock_unlock(&fs->ns);
	return out;
}

/* Changing an xattr is a change of the object: copy it up first. */
static int prepare_change(struct fs *fs, struct fs_inode *inode)
{
	int r;

	if (inode->type != S_IFDIR || inode->unlinked)
		return fs_copy_up(fs, inode, 0);
	pthread_rwlock_wrlock(&fs->ns);
	r = fs_copy_up_dir_touch_locked(fs, inode);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

/*
 * Setting an access ACL clears set-group-ID when the caller is neither in
 * the file's group nor root, as on a local file system (the kernel's
 * posix_acl_update_mode()). The daemon sets the ACL with its own rights,
 * under which the upper file system keeps the bit, and libfuse 3.14 cannot
 * negotiate the request flag that would say to drop it: so it does that.
 */
static int acl_kill_sgid(fuse_req_t req, const struct xpath *x, const char *name)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	gid_t groups[64], *g = groups;
	int n, cap = 64, r = 0;
	struct stat st;

	if (strcmp(name, "system.posix_acl_access") != 0 || ctx->uid == 0)
		return 0;
	if ((xpath_follow(x) ? stat(x->path, &st) : lstat(x->path, &st)) < 0)
		return -errno;
	if (!(st.st_mode & S_ISGID) || S_ISLNK(st.st_mode) || st.st_gid == ctx->gid)
		return 0;
	n = fuse_req_getgroups(req, cap, g);
	if (n > cap) {
		cap = n;
		g = malloc((size_t)cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		n = fuse_req_getgroups(req, cap, g);
	}
	/* Groups that cannot be read count as none: the bit goes, as it would for an outsider. */
	for (int i = 0; i < n && i < cap; i++)
		if (g[i] == st.st_gid)
			goto out;
	if (chmod(x->path, st.st_mode & 07777 & ~S_ISGID) < 0)
		r = -errno;
out:
	if (g != groups)
		free(g);
	return r;
}

int fs_do_setxattr(struct fs *fs, fuse_req_t req, struct fs_inode *inode, const char *name,
		   const char *value, size_t size, int flags)
{
	struct xpath x;
	int r;

	if (store_xattr_private(name))
		return -EPERM;
	r = prepare_change(fs, inode);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&fs->ns);
	r = xpath_get(fs, inode, &x);
	if (r == 0) {
		r = (xpath_follow(&x) ? setxattr(x.path, name, value, size, flags)
				      : lsetxattr(x.path, name, value, size, flags)) < 0
			    ? -errno
			    : 0;
		if (r == 0)
			r = acl_kill_sgid(req, &x, name);
		xpath_put(&x);
	}
	forget_caps(fs, name);
	forget_default_acl(inode, name);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

int fs_do_removexattr(struct fs *fs, struct fs_inode *inode, const char *name)
{
	struct xpath x;
	int r;

	if (store_xattr_private(name))
		return -ENODATA;
	r = prepare_change(fs, inode);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&fs->ns);
	r = xpath_get(fs, inode, &x);
	if (r == 0) {
		r = (xpath_follow(&x) ? removexattr(x.path, name) : lremovexattr(x.path, name)) < 0
			    ? -errno
			    : 0;
		xpath_put(&x);
	}
	forget_caps(fs, name);
	forget_default_acl(inode, name);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}
