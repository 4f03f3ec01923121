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

bool fs_xattr_private(const char *name)
{
	return strncmp(name, "trusted.overlay.", 16) == 0 ||
	       strncmp(name, "user.overlay.", 13) == 0;
}

/* O_PATH fd of the object and its /proc name; caller holds fs->ns. */
static int object_path(struct fs *fs, struct fs_inode *inode, char path[64])
{
	int fd = fs_open_object(fs, inode, O_PATH);

	if (fd >= 0)
		snprintf(path, 64, "/proc/self/fd/%d", fd);
	return fd;
}

ssize_t fs_do_getxattr(struct fs *fs, struct fs_inode *inode, const char *name, char *buf,
		       size_t size)
{
	char path[64];
	ssize_t n;
	int fd;

	if (fs_xattr_private(name))
		return -ENODATA;
	pthread_rwlock_rdlock(&fs->ns);
	fd = object_path(fs, inode, path);
	if (fd < 0) {
		pthread_rwlock_unlock(&fs->ns);
		return fd;
	}
	n = getxattr(path, name, buf, size);
	if (n < 0)
		n = -errno;
	util_close(fd);
	pthread_rwlock_unlock(&fs->ns);
	return n;
}

ssize_t fs_do_listxattr(struct fs *fs, struct fs_inode *inode, char *buf, size_t size)
{
	char path[64], *list = NULL;
	ssize_t n, out = 0;
	int fd;

	pthread_rwlock_rdlock(&fs->ns);
	fd = object_path(fs, inode, path);
	if (fd < 0) {
		pthread_rwlock_unlock(&fs->ns);
		return fd;
	}
	n = listxattr(path, NULL, 0);
	if (n > 0) {
		list = malloc((size_t)n);
		n = list ? listxattr(path, list, (size_t)n) : -1;
		if (!list)
			errno = ENOMEM;
	}
	if (n < 0) {
		out = -errno;
		goto out;
	}
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(list + i) + 1) {
		size_t len = strlen(list + i) + 1;

		if (fs_xattr_private(list + i))
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
	util_close(fd);
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
	r = fs_copy_up_dir_locked(fs, inode);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

int fs_do_setxattr(struct fs *fs, struct fs_inode *inode, const char *name, const char *value,
		   size_t size, int flags)
{
	char path[64];
	int fd, r;

	if (fs_xattr_private(name))
		return -EPERM;
	r = prepare_change(fs, inode);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&fs->ns);
	fd = object_path(fs, inode, path);
	r = fd < 0 ? fd : setxattr(path, name, value, size, flags) < 0 ? -errno : 0;
	util_close(fd);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

int fs_do_removexattr(struct fs *fs, struct fs_inode *inode, const char *name)
{
	char path[64];
	int fd, r;

	if (fs_xattr_private(name))
		return -ENODATA;
	r = prepare_change(fs, inode);
	if (r < 0)
		return r;
	pthread_rwlock_rdlock(&fs->ns);
	fd = object_path(fs, inode, path);
	r = fd < 0 ? fd : removexattr(path, name) < 0 ? -errno : 0;
	util_close(fd);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}
