// SPDX-License-Identifier: MIT
/*
 * Open files: open (copy-up first for any write access or O_TRUNC), create,
 * release, setattr, readlink. Data moves through the handle's fd in ops.c.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/*
 * Flags the underlying open must not see. O_NOFOLLOW was for the kernel's
 * walk, which has already found the object: on an anchored inode's
 * /proc/self/fd link it would refuse the link itself (ELOOP).
 */
#define OPEN_STRIP (O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT | O_TRUNC | O_NOFOLLOW)

/* Open the inode's object with flags; caller holds fs->ns. */
int fs_open_object(struct fs *fs, struct fs_inode *inode, int flags)
{
	char nb[NAME_MAX + 1];
	const char *name;
	bool owned;
	int dfd, fd, r;

	if (inode->anchor_fd >= 0) {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", inode->anchor_fd);
		return util_openat(AT_FDCWD, proc, flags, 0);
	}
	r = fs_inode_at(fs, inode, inode->upper, &dfd, &owned, nb, &name);
	if (r < 0)
		return r;
	fd = util_openat(dfd, name, flags | O_NOFOLLOW, 0);
	fs_put_fd(dfd, owned);
	return fd;
}

static int fh_new(struct fs *fs, struct fs_inode *inode, int fd, bool upper, int flags,
		  int fd_flags, struct fs_fh **ret)
{
	struct fs_fh *fh = calloc(1, sizeof(*fh));

	if (!fh)
		return -ENOMEM;
	fh->fd = fd;
	fh->old_fd = -1;
	fh->upper = upper;
	fh->flags = flags;
	fh->fd_flags = fd_flags;
	fh->inode = inode;
	pthread_mutex_init(&fh->lock, NULL);
	pthread_mutex_lock(&fs->table);
	inode->nopen++;
	pthread_mutex_unlock(&fs->table);
	fs_pt_attach(fs, fh);
	*ret = fh;
	return 0;
}

int fs_do_open(struct fs *fs, struct fs_inode *inode, int flags, struct fs_fh **ret)
{
	bool write = (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
	int fd, fd_flags = (flags & ~OPEN_STRIP) | (flags & O_TRUNC && write ? O_TRUNC : 0), r;

	if (write) {
		/* O_TRUNC: the data would be thrown away at once, so do not copy it. */
		r = fs_copy_up(fs, inode, (flags & O_TRUNC) ? FS_COPY_UP_NO_DATA : 0);
		if (r < 0)
			return r;
	}
	pthread_rwlock_rdlock(&fs->ns);
	fd = fs_open_object(fs, inode, fd_flags);
	r = fd < 0 ? fd : fh_new(fs, inode, fd, inode->upper, flags, fd_flags, ret);
	pthread_rwlock_unlock(&fs->ns);
	if (r < 0 && fd >= 0)
		util_close(fd);
	return r;
}

int fs_do_create(struct fs *fs, fuse_req_t req, struct fs_inode *parent, const char *name,
		 mode_t mode, int flags, struct fs_fh **ret_fh, struct fuse_entry_param *e)
{
	struct fs_inode *inode;
	int fd = -1, fd_flags = fs_pt_create_flags(fs, flags) & ~(O_NOCTTY | O_DIRECT), r;

	r = fs_do_mknod(fs, req, parent, name, S_IFREG | (mode & 07777), 0, NULL, fd_flags, &fd,
			e);
	if (r < 0)
		return r;
	inode = fs_inode_get(fs, e->ino);
	pthread_rwlock_rdlock(&fs->ns);
	r = fh_new(fs, inode, fd, true, flags, fd_flags, ret_fh);
	pthread_rwlock_unlock(&fs->ns);
	if (r < 0) {
		util_close(fd);
		fs_inode_forget(fs, inode, 1);
	}
	return r;
}

int fs_fh_read_fd(struct fs *fs, struct fs_fh *fh)
{
	int fd = __atomic_load_n(&fh->fd, __ATOMIC_ACQUIRE);

	if (fh->upper || !__atomic_load_n(&fh->inode->upper, __ATOMIC_ACQUIRE))
		return fd;
	/*
	 * Copied up since this read-only handle was opened: read the upper copy,
	 * or writes made through other handles would be invisible here.
	 */
	pthread_mutex_lock(&fh->lock);
	if (!fh->upper) {
		int nfd;

		pthread_rwlock_rdlock(&fs->ns);
		nfd = fs_open_object(fs, fh->inode, O_RDONLY);
		pthread_rwlock_unlock(&fs->ns);
		if (nfd >= 0) {
			fh->old_fd = fh->fd;
			__atomic_store_n(&fh->fd, nfd, __ATOMIC_RELEASE);
			fh->upper = true;
		}
	}
	fd = fh->fd;
	pthread_mutex_unlock(&fh->lock);
	return fd;
}

void fs_fh_release(struct fs *fs, struct fs_fh *fh)
{
	fs_pt_detach(fs, fh);
	pthread_mutex_lock(&fs->table);
	fh->inode->nopen--;
	pthread_mutex_unlock(&fs->table);
	util_close(fh->fd);
	util_close(fh->old_fd);
	pthread_mutex_destroy(&fh->lock);
	free(fh);
}

int fs_do_setattr(struct fs *fs, struct fs_inode *inode, struct stat *attr, int valid,
		  struct fs_fh *fh, struct stat *ret)
{
	const int change = FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |
			   FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME |
			   FUSE_SET_ATTR_ATIME_NOW | FUSE_SET_ATTR_MTIME_NOW;
	char path[PATH_MAX], nb[NAME_MAX + 1];
	const char *name = "";
	int fd = -1, r = 0;
	bool own_fd = false, dir_owned = false;

	if (valid & change) {
		if (inode->unlinked) {
			/* No name to record: its removal was recorded. */
			r = fs_copy_up(fs, inode, 0);
		} else if (inode->type == S_IFDIR) {
			pthread_rwlock_wrlock(&fs->ns);
			r = fs_copy_up_dir_touch_locked(fs, inode);
			pthread_rwlock_unlock(&fs->ns);
		} else {
			bool trunc0 = (valid & FUSE_SET_ATTR_SIZE) && attr->st_size == 0;

			r = fs_copy_up(fs, inode, trunc0 ? FS_COPY_UP_NO_DATA : 0);
		}
		if (r < 0)
			return r;
	}
	pthread_rwlock_rdlock(&fs->ns);
	if (fh && fh->upper) {
		fd = fh->fd;
	} else if (inode->anchor_fd < 0 && inode->type != S_IFLNK) {
		/* By name in its directory: no fd of its own to open and close. */
		r = fs_inode_at(fs, inode, inode->upper, &fd, &dir_owned, nb, &name);
		if (r < 0)
			goto out;
	} else {
		fd = fs_open_object(fs, inode, O_PATH);
		if (fd < 0) {
			r = fd;
			goto out;
		}
		own_fd = true;
	}
	/*
	 * The fd's /proc name reaches the object itself (even a symlink opened
	 * O_PATH), or its directory's does with the name after it.
	 */
	snprintf(path, sizeof(path), "/proc/self/fd/%d%s%s", fd, *name ? "/" : "", name);
	if (valid & FUSE_SET_ATTR_MODE) {
		r = (*name ? fchmodat(fd, name, attr->st_mode & 07777, 0)
			   : fchmodat(AT_FDCWD, path, attr->st_mode & 07777, 0)) < 0
			    ? -errno
			    : 0;
		if (r < 0)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		r = fchownat(fd, name, uid, gid, *name ? AT_SYMLINK_NOFOLLOW : AT_EMPTY_PATH) < 0
			    ? -errno
			    : 0;
		if (r < 0)
			goto out;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		if (own_fd || *name)
			r = truncate(path, attr->st_size) < 0 ? -errno : 0;
		else
			r = ftruncate(fd, attr->st_size) < 0 ? -errno : 0;
		if (r < 0)
			goto out;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |
		     FUSE_SET_ATTR_MTIME_NOW)) {
		struct timespec tv[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_nsec = UTIME_OMIT } };

		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		r = (*name ? utimensat(fd, name, tv, AT_SYMLINK_NOFOLLOW)
			   : utimensat(AT_FDCWD, path, tv, 0)) < 0
			    ? -errno
			    : 0;
		if (r < 0)
			goto out;
	}
	r = fstatat(fd, name, ret, (*name ? 0 : AT_EMPTY_PATH) | AT_SYMLINK_NOFOLLOW) < 0 ? -errno
											    : 0;
	if (r == 0)
		fs_fix_stat(fs, inode, ret);
out:
	if (own_fd)
		util_close(fd);
	else if (*name)
		fs_put_fd(fd, dir_owned);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}

int fs_do_readlink(struct fs *fs, struct fs_inode *inode, char *buf, size_t size)
{
	char nb[NAME_MAX + 1];
	const char *name;
	bool owned;
	ssize_t n;
	int dfd, r;

	pthread_rwlock_rdlock(&fs->ns);
	if (inode->anchor_fd >= 0) {
		n = readlinkat(inode->anchor_fd, "", buf, size);
	} else {
		r = fs_inode_at(fs, inode, inode->upper, &dfd, &owned, nb, &name);
		if (r < 0) {
			pthread_rwlock_unlock(&fs->ns);
			return r;
		}
		n = readlinkat(dfd, name, buf, size);
		fs_put_fd(dfd, owned);
	}
	r = n < 0 ? -errno : (int)n;
	pthread_rwlock_unlock(&fs->ns);
	return r;
}
