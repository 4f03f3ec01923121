// SPDX-License-Identifier: MIT
/*
 * Kernel passthrough of file data (Linux 6.9 and later, FUSE_PASSTHROUGH):
 * once a file of the upper layer is open, the kernel reads and writes its
 * upper object directly, with no request to the daemon.
 *
 * libfuse 3.14 predates passthrough, so cjfs negotiates it itself. The
 * session's I/O goes through fs_io_read() and fs_io_writev(): they see the
 * INIT request, add FUSE_PASSTHROUGH to the INIT reply when the kernel offers
 * it, and give the OPEN or CREATE reply of a handle with a backing file its
 * FOPEN_PASSTHROUGH flag and backing id. Registering a backing file takes
 * CAP_SYS_ADMIN; without it (or on an older kernel, or when the upper layer
 * is itself stacked too deep) every file stays on the ordinary request path.
 * The same hooks offer FUSE over io_uring in the INIT reply and hand replies
 * to requests that came over the ring to uring.c.
 *
 * Only upper objects are ever backing files, opened read-write by the daemon:
 * PKG is never written through the mount, and a handle opened on PKG before
 * a copy-up keeps reading through the daemon, which moves it to the upper
 * copy (fs_fh_read_fd). The kernel wants one backing file per inode and no
 * passthrough while the inode is open in its cached mode, so an inode has
 * one backing id shared by all its passthrough handles, and a handle opened
 * while another handle of the inode is in cached mode is cached too.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kfuse.h"
#include "log.h"

/* The backing id the reply being sent on this thread must carry (0: none). */
static __thread int reply_backing;

ssize_t fs_io_read(int fd, void *buf, size_t len, void *userdata)
{
	struct fs *fs = userdata;
	ssize_t n = read(fd, buf, len);
	const struct kfuse_in_header *in = buf;

	if (n >= (ssize_t)(sizeof(*in) + sizeof(struct kfuse_init_in)) &&
	    in->opcode == KFUSE_INIT) {
		const struct kfuse_init_in *arg = (const void *)(in + 1);

		fs->pt.init_unique = in->unique;
		fs->pt.init_flags2 = (arg->flags & KFUSE_INIT_EXT) ? arg->flags2 : 0;
	}
	return n;
}

ssize_t fs_io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
		     unsigned int flags, void *userdata)
{
	(void)userdata;
	return splice(fdin, offin, fdout, offout, len, flags);
}

static uint32_t get_u32(const struct iovec *v, size_t off)
{
	uint32_t x;

	memcpy(&x, (const char *)v->iov_base + off, sizeof(x));
	return x;
}

static void patch_u32(struct iovec *v, size_t off, uint32_t set)
{
	uint32_t x = get_u32(v, off) | set;

	memcpy((char *)v->iov_base + off, &x, sizeof(x));
}

/*
 * Turn on what the kernel offered and cjfs can use in the INIT reply:
 * passthrough, and requests over io_uring (uring.c). Returns the size of a
 * request's payload buffer if the ring is on, else 0.
 */
static size_t patch_init(struct fs *fs, struct iovec *arg)
{
	uint32_t flags, depth = 1;
	uint16_t pages = 32; /* the kernel's default without FUSE_MAX_PAGES */
	size_t payload;

	if (arg->iov_len < INIT_OUT_MIN_SIZE)
		return 0;
	flags = get_u32(arg, INIT_OUT_FLAGS);
	/* The kernel refuses passthrough together with the writeback cache. */
	if (fs->pt.wanted && (fs->pt.init_flags2 & KFUSE_PASSTHROUGH2) &&
	    !(flags & KFUSE_WRITEBACK_CACHE)) {
		patch_u32(arg, INIT_OUT_FLAGS, KFUSE_INIT_EXT);
		patch_u32(arg, INIT_OUT_FLAGS2, KFUSE_PASSTHROUGH2);
		/* Backing files may not be on a stacked file system: PKG's upper is plain. */
		memcpy((char *)arg->iov_base + INIT_OUT_MAX_STACK_DEPTH, &depth, sizeof(depth));
		__atomic_store_n(&fs->pt.on, true, __ATOMIC_RELEASE);
	}
	if (!(fs->pt.init_flags2 & KFUSE_OVER_IO_URING2) || !fs_uring_offer(fs))
		return 0;
	patch_u32(arg, INIT_OUT_FLAGS, KFUSE_INIT_EXT);
	patch_u32(arg, INIT_OUT_FLAGS2, KFUSE_OVER_IO_URING2);
	/* What the kernel will require of every entry: see fuse_uring_create(). */
	if (flags & KFUSE_MAX_PAGES)
		memcpy(&pages, (char *)arg->iov_base + INIT_OUT_MAX_PAGES, sizeof(pages));
	payload = (size_t)(pages ? pages : 1) * (size_t)sysconf(_SC_PAGESIZE);
	if (payload < get_u32(arg, INIT_OUT_MAX_WRITE))
		payload = get_u32(arg, INIT_OUT_MAX_WRITE);
	return payload < 8192 ? 8192 : payload;
}

ssize_t fs_io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct fs *fs = userdata;
	const struct kfuse_out_header *out = iov[0].iov_base;
	size_t ring_payload = 0;
	bool init = false;
	ssize_t n;

	if (count >= 2 && iov[0].iov_len >= sizeof(*out) && out->error == 0) {
		struct iovec *last = &iov[count - 1];

		if (reply_backing > 0 && last->iov_len >= sizeof(struct kfuse_open_out)) {
			struct kfuse_open_out o;
			char *p = (char *)last->iov_base + last->iov_len - sizeof(o);

			memcpy(&o, p, sizeof(o));
			/* set_open_flags() left FOPEN_KEEP_CACHE out: passthrough refuses it. */
			o.open_flags |= KFOPEN_PASSTHROUGH;
			o.backing_id = reply_backing;
			memcpy(p, &o, sizeof(o));
		} else if (out->unique == fs->pt.init_unique && fs->pt.init_unique) {
			ring_payload = patch_init(fs, &iov[1]);
			fs->pt.init_unique = 0;
			init = true;
		}
	}
	n = fs_uring_reply(iov, count);
	if (n >= 0)
		return n;
	n = writev(fd, iov, count);
	if (init)
		fs_uring_negotiated(fs, n >= 0 ? ring_payload : 0);
	return n;
}

void fs_pt_init(struct fs *fs)
{
	const char *off = getenv("CJFS_NO_PASSTHROUGH");

	pthread_mutex_init(&fs->pt.lock, NULL);
	fs->pt.wanted = fs->root && !(off && *off && strcmp(off, "0") != 0);
}

void fs_pt_destroy(struct fs *fs)
{
	pthread_mutex_destroy(&fs->pt.lock);
}

/*
 * Register the upper object of a handle as a backing file: its id, or 0.
 * Every passthrough handle of the inode will share it, so it must be open
 * for reading and writing, and without flags that would change their writes.
 */
static int backing_open(struct fs *fs, struct fs_fh *fh)
{
	struct kfuse_backing_map map = { .fd = -1 };
	int fl = fh->fd_flags;
	bool own = false;
	int id;

	if ((fl & (O_ACCMODE | O_APPEND | O_SYNC | O_DSYNC | O_DIRECT)) == O_RDWR) {
		map.fd = fh->fd;
	} else {
		map.fd = fs_open_object(fs, fh->inode, O_RDWR | O_CLOEXEC);
		if (map.fd < 0)
			return 0;
		own = true;
	}
	id = ioctl(fuse_session_fd(fs->se), KFUSE_DEV_IOC_BACKING_OPEN, &map);
	if (id <= 0) {
		int e = errno;

		/* Anything but a shortage will fail for every file: stop trying. */
		if (e != ENOMEM && e != EMFILE && e != ENFILE && e != ENOSPC) {
			__atomic_store_n(&fs->pt.on, false, __ATOMIC_RELEASE);
			log_info("kernel passthrough unavailable (%s): file data goes through the "
				 "daemon",
				 strerror(e));
		}
		id = 0;
	}
	if (own)
		util_close(map.fd);
	return id;
}

void fs_pt_attach(struct fs *fs, struct fs_fh *fh)
{
	struct fs_inode *inode = fh->inode;
	bool create = false;

	if (!fh->upper || inode->type != S_IFREG || !__atomic_load_n(&fs->pt.on, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&fs->pt.lock);
	pthread_mutex_lock(&fs->table);
	if (inode->backing_id > 0) {
		inode->npass++;
		fh->backing = inode->backing_id;
	} else {
		/* Any other open handle is in cached mode, which excludes passthrough. */
		create = inode->nopen == 1;
	}
	pthread_mutex_unlock(&fs->table);
	if (create) {
		int id = backing_open(fs, fh);

		if (id > 0) {
			pthread_mutex_lock(&fs->table);
			inode->backing_id = id;
			inode->npass = 1;
			pthread_mutex_unlock(&fs->table);
			fh->backing = id;
		}
	}
	pthread_mutex_unlock(&fs->pt.lock);
}

int fs_pt_create_flags(struct fs *fs, int flags)
{
	if (!__atomic_load_n(&fs->pt.on, __ATOMIC_ACQUIRE))
		return flags;
	/* Read-write, so that the new file's handle can be its backing file. */
	return (flags & ~O_ACCMODE) | O_RDWR;
}

void fs_pt_detach(struct fs *fs, struct fs_fh *fh)
{
	struct fs_inode *inode = fh->inode;
	uint32_t id = 0;

	if (fh->backing <= 0)
		return;
	pthread_mutex_lock(&fs->pt.lock);
	pthread_mutex_lock(&fs->table);
	if (--inode->npass == 0) {
		id = (uint32_t)inode->backing_id;
		inode->backing_id = 0;
	}
	pthread_mutex_unlock(&fs->table);
	/* The kernel's open files hold their own reference to the backing file. */
	if (id && ioctl(fuse_session_fd(fs->se), KFUSE_DEV_IOC_BACKING_CLOSE, &id) < 0)
		log_warn("cannot release backing file %u: %s", id, strerror(errno));
	pthread_mutex_unlock(&fs->pt.lock);
	fh->backing = 0;
}

int fs_pt_reply_open(fuse_req_t req, const struct fuse_file_info *fi, struct fs_fh *fh)
{
	int r;

	reply_backing = fh->backing;
	r = fuse_reply_open(req, fi);
	reply_backing = 0;
	return r;
}

int fs_pt_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
		       const struct fuse_file_info *fi, struct fs_fh *fh)
{
	int r;

	reply_backing = fh->backing;
	r = fuse_reply_create(req, e, fi);
	reply_backing = 0;
	return r;
}
