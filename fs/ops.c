// SPDX-License-Identifier: MIT
/*
 * The FUSE low-level operation table: thin fs_ll_<op> adapters that unpack a
 * request, call the fs/ function that does the work, and send exactly one
 * reply at the end.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fs_inode *req_inode(fuse_req_t req, fuse_ino_t ino)
{
	return fs_inode_get(req_fs(req), ino);
}

static struct fs_fh *req_fh(const struct fuse_file_info *fi)
{
	return (struct fs_fh *)(uintptr_t)fi->fh;
}

static void fs_ll_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	fs->no_opendir = (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) != 0;
	/* open(O_TRUNC) arrives as one request: copy-up can skip the doomed data. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/*
	 * Permission checks are the kernel's (default_permissions), and without
	 * this it would look at the mode bits only: an ACL entry granting or
	 * denying another user would be ignored. With it the kernel asks for
	 * a file's ACLs once and keeps them; they are xattrs like any other
	 * here, copied up with the file, and the upper layer's file system
	 * keeps mode and ACL in step and gives new objects their directory's
	 * default ACL.
	 */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	/*
	 * Where a directory has a default ACL the creator's umask does not
	 * apply (the ACL's mask takes its place): the kernel then leaves the
	 * umask to the daemon, which knows whether the upper directory has one
	 * (dir.c).
	 */
	if ((conn->want & FUSE_CAP_POSIX_ACL) && (conn->capable & FUSE_CAP_DONT_MASK)) {
		conn->want |= FUSE_CAP_DONT_MASK;
		fs->dont_mask = true;
	}
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/* The kernel clears set-id bits on write itself: the daemon writes as root. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* Locks stay local to this mount's kernel side. */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
}

static void reply_entry_or_err(fuse_req_t req, int r, const struct fuse_entry_param *e)
{
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_entry(req, e);
}

static void fs_ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	struct fs_inode *inode;
	int r;

	fs_tune_once(fs);
	memset(&e, 0, sizeof(e));
	pthread_rwlock_rdlock(&fs->ns);
	r = fs_lookup(fs, fs_inode_get(fs, parent), name, &inode, &e.attr);
	pthread_rwlock_unlock(&fs->ns);
	if (r == -ENOENT) {
		/* A negative entry the kernel may cache: every create comes through us. */
		e.ino = 0;
		e.entry_timeout = fs->timeout;
		fuse_reply_entry(req, &e);
		return;
	}
	if (r == 0) {
		e.ino = fs_inode_nodeid(fs, inode);
		e.attr_timeout = e.entry_timeout = fs->timeout;
	}
	reply_entry_or_err(req, r, &e);
}

static void fs_ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_inode_forget(req_fs(req), req_inode(req, ino), nlookup);
	fuse_reply_none(req);
}

static void fs_ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = req_fs(req);

	for (size_t i = 0; i < count; i++)
		fs_inode_forget(fs, fs_inode_get(fs, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void fs_ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct stat st;
	int r;

	(void)fi;
	fs_tune_once(fs);
	pthread_rwlock_rdlock(&fs->ns);
	r = fs_inode_stat(fs, fs_inode_get(fs, ino), &st);
	pthread_rwlock_unlock(&fs->ns);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

static void fs_ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
			  struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct stat st;
	int r = fs_do_setattr(fs, fs_inode_get(fs, ino), attr, valid, fi ? req_fh(fi) : NULL, &st);

	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_attr(req, &st, fs->timeout);
}

static void fs_ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	int n = fs_do_readlink(req_fs(req), req_inode(req, ino), buf, sizeof(buf));

	if (n < 0) {
		fuse_reply_err(req, -n);
		return;
	}
	if ((size_t)n >= sizeof(buf)) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	buf[n] = '\0';
	fuse_reply_readlink(req, buf);
}

static void fs_ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			dev_t rdev)
{
	struct fuse_entry_param e = { 0 };
	int r = fs_do_mknod(req_fs(req), req, req_inode(req, parent), name, mode, rdev, NULL, 0,
			    NULL, &e);

	reply_entry_or_err(req, r, &e);
}

static void fs_ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fuse_entry_param e = { 0 };
	int r = fs_do_mknod(req_fs(req), req, req_inode(req, parent), name, S_IFDIR | mode, 0, NULL,
			    0, NULL, &e);

	reply_entry_or_err(req, r, &e);
}

static void fs_ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = { 0 };
	int r = fs_do_mknod(req_fs(req), req, req_inode(req, parent), name, S_IFLNK | 0777, 0, link,
			    0, NULL, &e);

	reply_entry_or_err(req, r, &e);
}

static void fs_ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int r = fs_do_unlink(req_fs(req), req_inode(req, parent), name, false);

	fuse_reply_err(req, -r);
}

static void fs_ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int r = fs_do_unlink(req_fs(req), req_inode(req, parent), name, true);

	fuse_reply_err(req, -r);
}

static void fs_ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
			 const char *newname, unsigned int flags)
{
	int r = fs_do_rename(req_fs(req), req_inode(req, parent), name, req_inode(req, newparent),
			     newname, flags);

	fuse_reply_err(req, -r);
}

static void fs_ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fuse_entry_param e = { 0 };
	int r = fs_do_link(req_fs(req), req_inode(req, ino), req_inode(req, newparent), newname,
			   &e);

	reply_entry_or_err(req, r, &e);
}

static void set_open_flags(struct fuse_file_info *fi, struct fs_fh *fh)
{
	fi->fh = (uintptr_t)fh;
	/*
	 * All changes pass through this mount, so the kernel's page cache stays
	 * valid. Not with passthrough, which bypasses it: then the kernel drops
	 * the pages when the file is opened, and none are cached while it is open.
	 */
	fi->keep_cache = fh->backing == 0;
	/* close() needs no round trip: there is nothing to flush at close. */
	fi->noflush = 1;
}

static void fs_ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_fh *fh;
	int r = fs_do_open(req_fs(req), req_inode(req, ino), fi->flags, &fh);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	set_open_flags(fi, fh);
	if (fs_pt_reply_open(req, fi, fh) == -ENOENT)
		fs_fh_release(req_fs(req), fh); /* the opener was interrupted */
}

static void fs_ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
			 struct fuse_file_info *fi)
{
	struct fuse_entry_param e = { 0 };
	struct fs_fh *fh;
	int r = fs_do_create(req_fs(req), req, req_inode(req, parent), name, mode, fi->flags, &fh,
			     &e);

	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	set_open_flags(fi, fh);
	if (fs_pt_reply_create(req, &e, fi, fh) == -ENOENT)
		fs_fh_release(req_fs(req), fh);
}

/* Reads up to this size are copied through memory: one pread and one writev. */
#define FS_READ_COPY_MAX (32 * 1024)
/*
 * The kernel reads a FUSE file in requests of its readahead window (128 KiB,
 * or 1 MiB once fs_tune_once raised it), one after the other; a sequential
 * reader gets the backing file read this far ahead, every MiB, so that the
 * disk works while the requests go back and forth.
 */
#define FS_READAHEAD (4 << 20)
/*
 * Reads and writes this big are bulk data (the kernel's readahead of a big
 * file, not a source file read whole): a ring thread serves them at normal
 * priority (fs_uring_heavy()), so that a busy CPU slows them no more than
 * it slows the reader.
 */
#define FS_IO_HEAVY (64 << 10)
#define FS_READAHEAD_EVERY (1 << 20)

static void fs_ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	static __thread char copy[FS_READ_COPY_MAX];
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	struct fs_fh *fh = req_fh(fi);
	int fd = fs_fh_read_fd(req_fs(req), fh);
	off_t end = off + (off_t)size;
	char *dst;

	(void)ino;
	if (size >= FS_IO_HEAVY)
		fs_uring_heavy();
	if (off == __atomic_exchange_n(&fh->next, end, __ATOMIC_RELAXED) && off &&
	    (off & (FS_READAHEAD_EVERY - 1)) < (off_t)size)
		(void)readahead(fd, end, FS_READAHEAD);
	/* Served from the ring: read straight into its buffer, which is the reply. */
	dst = fs_uring_buf(size);
	if (dst || size <= sizeof(copy)) {
		/* A splice costs three system calls and a pipe: worth it only for big reads. */
		ssize_t n;

		if (!dst)
			dst = copy;
		do {
			n = pread(fd, dst, size, off);
		} while (n < 0 && errno == EINTR);
		if (n < 0)
			fuse_reply_err(req, errno);
		else
			fuse_reply_buf(req, dst, (size_t)n);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fd;
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

static void fs_ll_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in, off_t off,
			    struct fuse_file_info *fi)
{
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
	struct fs_fh *fh = req_fh(fi);
	ssize_t n;

	(void)ino;
	if (!fh->upper) {
		fuse_reply_err(req, EBADF); /* the kernel only writes to handles opened for it */
		return;
	}
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = fh->fd;
	out.buf[0].pos = off;
	if (fuse_buf_size(in) >= FS_IO_HEAVY)
		fs_uring_heavy();
	n = fuse_buf_copy(&out, in, 0);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void fs_ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	fs_fh_release(req_fs(req), req_fh(fi));
	fuse_reply_err(req, 0);
}

static void fs_ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_fh *fh = req_fh(fi);
	int r = 0;

	(void)ino;
	/* Only the upper copy can hold data that is not on disk yet. */
	if (fh->upper)
		r = (datasync ? fdatasync(fh->fd) : fsync(fh->fd)) < 0 ? errno : 0;
	fuse_reply_err(req, r);
}

static void fs_ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	/*
	 * Listings need no handle (readdir.c). Where the kernel accepts it, say
	 * OPENDIR is not implemented: it then sends neither OPENDIR nor
	 * RELEASEDIR again and keeps listings as if cache_readdir and
	 * keep_cache were set below.
	 */
	if (req_fs(req)->no_opendir) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/*
	 * Let the kernel keep the listing: every change to a directory goes
	 * through this mount, and the kernel drops its cached listing whenever
	 * it changes one (its version moves), so the cache is never stale.
	 */
	fi->fh = 0;
	fi->cache_readdir = 1;
	fi->keep_cache = 1;
	fuse_reply_open(req, fi);
}

static void fs_ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			  struct fuse_file_info *fi)
{
	(void)fi;
	fs_readdir(req_fs(req), req, req_inode(req, ino), size, off, false);
}

static void fs_ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			      struct fuse_file_info *fi)
{
	(void)fi;
	fs_readdir(req_fs(req), req, req_inode(req, ino), size, off, true);
}

static void fs_ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void fs_ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fs_inode *dir = fs_inode_get(fs, ino);
	bool owned;
	int fd, r = 0;

	(void)datasync;
	(void)fi;
	pthread_rwlock_rdlock(&fs->ns);
	if (dir->upper) {
		fd = fs_dir_upper_fd(fs, dir, &owned);
		if (fd >= 0) {
			r = util_fsync_dirat(fd, ".");
			fs_put_fd(fd, owned);
		}
	}
	pthread_rwlock_unlock(&fs->ns);
	fuse_reply_err(req, -r);
}

static void fs_ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct statvfs sv;

	(void)ino;
	/* New data lands in the upper layer: its free space is what writers have. */
	if (fstatvfs(fs->upper_fd, &sv) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

static void fs_ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			    struct fuse_file_info *fi)
{
	struct fs_fh *fh = req_fh(fi);
	int r;

	(void)ino;
	if (!fh->upper)
		r = EBADF;
	else
		r = fallocate(fh->fd, mode, off, len) < 0 ? errno : 0;
	fuse_reply_err(req, r);
}

static void fs_ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
			struct fuse_file_info *fi)
{
	off_t r;

	(void)ino;
	r = lseek(fs_fh_read_fd(req_fs(req), req_fh(fi)), off, whence);
	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

static void fs_ll_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg,
			struct fuse_file_info *fi, unsigned flags, const void *in_buf,
			size_t in_bufsz, size_t out_bufsz)
{
	(void)ino;
	(void)cmd;
	(void)arg;
	(void)fi;
	(void)flags;
	(void)in_buf;
	(void)in_bufsz;
	(void)out_bufsz;
	fuse_reply_err(req, ENOTTY);
}

static void fs_ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			   size_t size, int flags)
{
	int r = fs_do_setxattr(req_fs(req), req, req_inode(req, ino), name, value, size, flags);

	fuse_reply_err(req, -r);
}

static void reply_xattr_data(fuse_req_t req, ssize_t n, const char *buf, size_t size)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void fs_ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = fs_do_getxattr(req_fs(req), req_inode(req, ino), name, buf, size);
	reply_xattr_data(req, n, buf, size);
	free(buf);
}

static void fs_ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = size ? malloc(size) : NULL;
	ssize_t n;

	if (size && !buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = fs_do_listxattr(req_fs(req), req_inode(req, ino), buf, size);
	reply_xattr_data(req, n, buf, size);
	free(buf);
}

static void fs_ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	int r = fs_do_removexattr(req_fs(req), req_inode(req, ino), name);

	fuse_reply_err(req, -r);
}

const struct fuse_lowlevel_ops fs_ll_ops = {
	.init = fs_ll_init,
	.lookup = fs_ll_lookup,
	.forget = fs_ll_forget,
	.forget_multi = fs_ll_forget_multi,
	.getattr = fs_ll_getattr,
	.setattr = fs_ll_setattr,
	.readlink = fs_ll_readlink,
	.mknod = fs_ll_mknod,
	.mkdir = fs_ll_mkdir,
	.symlink = fs_ll_symlink,
	.unlink = fs_ll_unlink,
	.rmdir = fs_ll_rmdir,
	.rename = fs_ll_rename,
	.link = fs_ll_link,
	.open = fs_ll_open,
	.create = fs_ll_create,
	.read = fs_ll_read,
	.write_buf = fs_ll_write_buf,
	.flush = fs_ll_flush,
	.release = fs_ll_release,
	.fsync = fs_ll_fsync,
	.opendir = fs_ll_opendir,
	.readdir = fs_ll_readdir,
	.readdirplus = fs_ll_readdirplus,
	.releasedir = fs_ll_releasedir,
	.fsyncdir = fs_ll_fsyncdir,
	.statfs = fs_ll_statfs,
	.fallocate = fs_ll_fallocate,
	.lseek = fs_ll_lseek,
	.ioctl = fs_ll_ioctl,
	.setxattr = fs_ll_setxattr,
	.getxattr = fs_ll_getxattr,
	.listxattr = fs_ll_listxattr,
	.removexattr = fs_ll_removexattr,
};
