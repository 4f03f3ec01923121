/* SPDX-License-Identifier: MIT */
/*
 * Private to fs/: the daemon's structures and the upper-layer encoding.
 *
 * The upper layer is an ordinary directory tree mirroring the merged tree,
 * plus markers, all named with the reserved prefix ".cjfs~":
 *   .cjfs~wh.<name>   whiteout: the lower entry <name> is deleted
 *   .cjfs~wH.<sha256> whiteout for a name too long to fit the form above
 *   .cjfs~opaque      this directory does not merge its lower namesake
 *   .cjfs~origin      this directory merges the lower directory whose path
 *                     (relative to PKG) the file holds: it was renamed
 *   .cjfs~u.<name>    a user's own entry whose name starts with ".cjfs~"
 *   .cjfs~root        (upper root only) the root has been given PKG root's
 *                     owner, mode and times: the mount root shows them
 * Markers are plain files, so no privilege is needed (kernel overlayfs uses
 * 0:0 character devices and trusted.* xattrs, which need CAP_MKNOD and
 * CAP_SYS_ADMIN). A user's name can never collide with a marker because every
 * user name with the prefix is escaped.
 *
 * Locking, in the order they are taken:
 *   fs->ns        rwlock over the namespace: the parent/name tree, the
 *                 upper/lower/opaque flags and every change to either layer.
 *                 Path-based operations hold it for reading from building the
 *                 path until the system call on it returns, so a rename can
 *                 never invalidate a path in use; namespace changes hold it
 *                 for writing. Copy-up is a namespace change: it takes it
 *                 for writing, which also serialises copy-ups.
 *   fs->table     mutex over the inode hash table and reference counts
 *   fs->snaps.lock  mutex over kept directory listings (readdir.c)
 * fuse_reply_*() is never called with fs->table held (forget takes it).
 */
#ifndef CJFS_FS_FS_INT_H
#define CJFS_FS_FS_INT_H

#include <dirent.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/uio.h>

#include "fs.h"
#include "store.h"
#include "util.h"

/* ---- layer.c: the upper-layer encoding, shared with the offline view ---- */

#define LAYER_PREFIX ".cjfs~"
#define LAYER_PREFIX_LEN 6
#define LAYER_OPAQUE ".cjfs~opaque"
#define LAYER_ORIGIN ".cjfs~origin"
#define LAYER_ROOT ".cjfs~root"

/* Where a name was found by layer_lookup(). */
enum layer_where {
	LAYER_NONE = 0,	 /* absent (or whited out) */
	LAYER_UPPER = 1, /* in the upper layer (it hides any lower namesake) */
	LAYER_LOWER = 2, /* only in the lower layer */
};

/*
 * The upper-layer name of a user-visible name. *ret points into buf or at
 * name. -ENAMETOOLONG if the escaped form does not fit.
 */
int layer_encode(const char *name, char buf[NAME_MAX + 1], const char **ret);

/* The user-visible name of an upper-layer name, or NULL for a marker. */
const char *layer_decode(const char *uname);

/* The whiteout marker's name for a user-visible name. */
void layer_whiteout_name(const char *name, char buf[NAME_MAX + 1]);

/* Is uname a whiteout marker? Then *ret_key is what the whiteout set stores for it. */
bool layer_is_whiteout(const char *uname, const char **ret_key);
/* The whiteout-set key of a lower name (the name, or its hash marker for long names). */
const char *layer_whiteout_key(const char *name, char buf[NAME_MAX + 1]);

int layer_has_whiteout(int upper_dirfd, const char *name);
int layer_set_whiteout(int upper_dirfd, const char *name);
int layer_clear_whiteout(int upper_dirfd, const char *name);

/* Mark a directory opaque or give it an origin (lower path, "" = lower root). */
int layer_set_opaque(int upper_dirfd);
int layer_set_origin(int upper_dirfd, const char *lower_path);
int layer_clear_markers(int upper_dirfd);

/*
 * Read an upper directory's markers: *ret_opaque, and its origin appended to
 * origin (origin->buf NULL when it has none).
 */
int layer_read_dirinfo(int upper_dirfd, bool *ret_opaque, struct strbuf *origin);

/*
 * Look name up in a merged directory: upper_dirfd (-1 if the directory has
 * no upper part) and lower_dirfd (-1 if it merges no lower directory).
 * Fills *st from the layer where the name is found.
 */
int layer_lookup(int upper_dirfd, int lower_dirfd, const char *name, struct stat *st,
		 enum layer_where *ret);

/* What a lookup learnt on the way: 1 present, 0 absent, -1 not looked at. */
struct layer_probe {
	signed char lower;    /* the name in the lower directory (0 also without one) */
	signed char whiteout; /* its whiteout in the upper directory */
};

/* layer_lookup(), saying what it saw, so that callers need not look again. */
int layer_lookup_probe(int upper_dirfd, int lower_dirfd, const char *name, struct stat *st,
		       enum layer_where *ret, struct layer_probe *probe);

/*
 * After a directory was found: open its upper part (if in upper) and the lower
 * directory it merges (following opaque/origin markers). lower_root is PKG.
 * Either fd is -1 when absent. Both O_PATH.
 */
int layer_open_dir(int lower_root, int upper_dirfd, int lower_dirfd, const char *name,
		   enum layer_where where, int *ret_upper, int *ret_lower);

/* ---- the daemon ---- */

/* What identifies an object in the inode table. */
struct fs_key {
	uint64_t dev;
	uint64_t ino;
	uint64_t alias; /* non-zero for lower files with several links: one inode per name */
};

struct fs_dirsnap;

struct fs_inode {
	/* Set at creation, then constant. */
	struct fs_key key;
	uint64_t ino; /* st_ino reported to the kernel */
	mode_t type;  /* S_IFMT bits */

	/* Protected by fs->ns. */
	struct fs_inode *parent; /* counted reference; NULL for root and unlinked */
	char *name;		 /* user-visible name in parent */
	bool upper;		 /* has an object in the upper layer */
	bool lower;		 /* has a lower object (directories: merges one) */
	bool opaque;		 /* directory whose lower part is hidden */
	char *redirect;		 /* directory: its lower path, when not parent's + name */
	bool unlinked;		 /* no name left in the merged tree */
	uint64_t dgen;		 /* directory: advances whenever an entry is added or removed */
	/*
	 * O_PATH fd to the object, kept when it loses the name we reach it by
	 * (a file or directory removed while open, or the first of several
	 * hard links removed); then every operation goes through it. Changing
	 * a removed object that only existed in PKG first moves the anchor to
	 * a nameless copy made in work/ (copy_up.c). -1 otherwise.
	 */
	int anchor_fd;
	uint64_t upper_dev, upper_ino; /* identity of the upper object, once there is one */

	/* Directory fd cache, set once with a compare-and-swap, closed under fs->ns write. */
	int upper_fd;
	int lower_fd;

	/* Protected by fs->table. */
	uint64_t nlookup; /* references the kernel holds */
	uint64_t refs;	  /* references from children and open handles */
	uint64_t nopen;	  /* open file handles */
	struct fs_inode *hnext;
	/* passthrough.c, protected by fs->table (and changed under fs->pt.lock). */
	int backing_id; /* the kernel's id of its backing file, 0 when none */
	uint32_t npass; /* handles in passthrough mode */

	/* readdir.c: the directory's kept listing, protected by fs->snaps.lock. */
	struct fs_dirsnap *snap;

	/* Atomic: fs->epoch when the kernel last looked it up (see reclaim.c). */
	uint64_t used;
	/* Atomic: fs->caps_gen when its upper object was seen without security.capability. */
	uint64_t nocaps;
	/* Atomic, directories: enum fs_dacl, whether the upper copy has a default ACL. */
	uint8_t dacl;
};

/* What a directory's upper copy is known to hold as default ACL (fs_inode.dacl). */
enum fs_dacl {
	FS_DACL_UNKNOWN,
	FS_DACL_NONE,
	FS_DACL_SOME,
};

/* The upper object a lower one was copied up to, so st_ino stays the same. */
struct fs_origin {
	uint64_t upper_dev, upper_ino;
	struct fs_key key;
	struct fs_origin *next;
};

struct fs {
	const struct fs_config *cfg;
	struct fuse_session *se;
	int lower_fd; /* PKG (borrowed from cfg) */
	int upper_fd;
	int work_fd;
	dev_t lower_dev, upper_dev;
	bool root;  /* the daemon runs as root: set owners of new objects */
	gid_t gid;  /* the daemon's group: what new objects get outside set-group-ID directories */
	bool tuned; /* atomic: fs_tune_once has run */

	pthread_rwlock_t ns; /* see the lock order above */
	pthread_mutex_t table;
	/* All protected by table. */
	struct fs_inode root_inode;
	struct fs_inode **htab;
	size_t hsize, hcount;
	struct fs_origin **otab;
	size_t osize, ocount;

	/* Paths already recorded in the index; protected by touch_lock. */
	pthread_mutex_t touch_lock;
	struct strset touched;

	unsigned long work_seq; /* atomic: names in work/ */
	int64_t backup_ns;	/* atomic: time spent storing originals, saved at exit */
	long fd_budget;		/* atomic: directory fds we may still cache */
	double timeout;		/* entry and attribute timeout, seconds */

	/* reclaim.c: keeping the inode table bounded whatever the tree size. */
	size_t inode_cap; /* most inodes to keep; 0 = no limit */
	uint64_t epoch;	  /* atomic: advances every reclaim period */
	uint64_t caps_gen; /* atomic: advances when a security.capability is set or removed */
	pthread_t reclaimer;
	bool reclaiming; /* the thread runs; protected by reclaim_lock */
	pthread_mutex_t reclaim_lock;
	pthread_cond_t reclaim_cond;

	/* readdir.c: listings kept while readers walk them, most recently used first. */
	struct {
		pthread_mutex_t lock;
		struct fs_dirsnap *head, *tail;
		size_t ents; /* entries of all of them */
	} snaps;
	bool no_opendir; /* the kernel accepts ENOSYS for OPENDIR (and then sends no READDIR handle) */
	bool dont_mask; /* modes of new objects arrive without the creator's umask applied */

	/* passthrough.c: kernel passthrough of file data. */
	struct {
		bool wanted;	      /* root, and not turned off by CJFS_NO_PASSTHROUGH */
		bool on;	      /* atomic: negotiated, and backing files can be made */
		uint64_t init_unique; /* the INIT request, until its reply is sent */
		uint32_t init_flags2; /* its flags2: what the kernel offers */
		pthread_mutex_t lock; /* serialises the choice of a handle's mode */
	} pt;

	/* uring.c: FUSE requests over io_uring. */
	struct {
		struct fs_ring *rings; /* one per ring thread, or NULL */
		unsigned int n;	       /* ring threads started */
		bool offer;	       /* every thread has its io_uring: offer the ring at INIT */
		int stop_fd;	       /* eventfd: the threads stop once it is readable */
		pthread_mutex_t lock;  /* protects the fields below */
		pthread_cond_t cond;
		unsigned int set_up, failed; /* threads that made their io_uring, or could not */
		int state;		     /* waiting for INIT, serving, or stopped */
		size_t payload;		     /* payload buffer size the kernel asked for */
	} ur;
};

/* inode.c */
int fs_init_tables(struct fs *fs);
void fs_free_tables(struct fs *fs);
struct fs_inode *fs_inode_get(struct fs *fs, fuse_ino_t ino);
fuse_ino_t fs_inode_nodeid(struct fs *fs, struct fs_inode *inode);
uint64_t fs_report_ino(struct fs *fs, dev_t dev, ino_t ino);
/* What a lookup found, handed to fs_inode_found(). */
struct fs_found {
	enum layer_where where;
	struct stat st;
	int upper_fd; /* directories: O_PATH to the upper part, or -1 (consumed) */
	int lower_fd; /* directories: O_PATH to the merged lower directory, or -1 (consumed) */
	bool opaque;
	char *redirect; /* directories: origin marker's lower path, or NULL (consumed) */
};

/*
 * Find or create the inode for a looked-up object and count one kernel
 * lookup on it (fds and strings in f are consumed either way). Caller holds
 * fs->ns for writing or reading.
 */
int fs_inode_found(struct fs *fs, struct fs_inode *parent, const char *name, struct fs_found *f,
		   struct fs_inode **ret);
/* The inode for a key if it is in the table (no reference taken), else NULL. */
struct fs_inode *fs_inode_find(struct fs *fs, const struct fs_key *key);
/* The key an object found by a lookup would have. */
void fs_found_key(struct fs *fs, struct fs_inode *parent, const char *name,
		  const struct fs_found *f, struct fs_key *ret);
/* Move an inode to a new parent/name, or detach it (newparent NULL); caller holds fs->ns write. */
int fs_inode_move(struct fs *fs, struct fs_inode *inode, struct fs_inode *newparent,
		  const char *newname);
void fs_inode_forget(struct fs *fs, struct fs_inode *inode, uint64_t n);
void fs_inode_ref(struct fs *fs, struct fs_inode *inode);
void fs_inode_unref(struct fs *fs, struct fs_inode *inode);
/*
 * The copy-up origin map: upper object -> the key it had before copy-up, so
 * its inode (and st_ino) survives a forget. Entries go when the upper
 * object is deleted (its inode number may then be reused).
 */
void fs_origin_add(struct fs *fs, const struct stat *upper_st, const struct fs_key *key);
bool fs_origin_find(struct fs *fs, dev_t dev, ino_t ino, struct fs_key *ret);
void fs_origin_remove(struct fs *fs, dev_t dev, ino_t ino);
/* Fix the reported fields of a stat from the layers. */
/* st_blksize of regular files through the mount (at least). */
#define FS_IO_BLKSIZE (128 * 1024)
void fs_fix_stat(struct fs *fs, struct fs_inode *inode, struct stat *st);

/*
 * reclaim.c: when the table holds more than fs->inode_cap inodes, ask the
 * kernel to drop the least recently used leaf entries, so that it forgets
 * them and the daemon's memory stays bounded however many files are read.
 */
int fs_reclaim_start(struct fs *fs);
void fs_reclaim_stop(struct fs *fs);

/* namei.c: paths and directory fds; caller holds fs->ns */
int fs_path(struct fs *fs, struct fs_inode *inode, struct strbuf *out);
int fs_child_path(struct fs *fs, struct fs_inode *dir, const char *name, struct strbuf *out);
/* The lower path a directory merges ("" for the lower root); -ENOENT if none. */
int fs_lower_path(struct fs *fs, struct fs_inode *dir, struct strbuf *out);
int fs_dir_upper_fd(struct fs *fs, struct fs_inode *dir, bool *ret_owned);
int fs_dir_lower_fd(struct fs *fs, struct fs_inode *dir, bool *ret_owned);
/* The O_PATH fd of a directory's upper part (open it if not cached). Close with fs_put_fd. */
void fs_put_fd(int fd, bool owned);
int fs_lookup(struct fs *fs, struct fs_inode *dir, const char *name, struct fs_inode **ret,
	      struct stat *ret_st);
/* fs_lookup() of a non-directory in dir's upper part whose attributes were just read: st. */
int fs_lookup_made(struct fs *fs, struct fs_inode *dir, const char *name, const struct stat *st,
		   struct fs_inode **ret, struct stat *ret_st);
/* Parent fd and name of an inode's object in its layer (upper if copied up). */
int fs_inode_at(struct fs *fs, struct fs_inode *inode, bool upper, int *ret_dirfd, bool *ret_owned,
		char namebuf[NAME_MAX + 1], const char **ret_name);
int fs_inode_stat(struct fs *fs, struct fs_inode *inode, struct stat *st);
int fs_dir_is_empty(struct fs *fs, struct fs_inode *dir);

/* copy_up.c */
enum fs_copy_up_flags {
	FS_COPY_UP_NO_DATA = 1 << 0, /* the data is about to be truncated: skip copying it */
};
/* Copy an inode up; takes fs->ns for writing itself. */
int fs_copy_up(struct fs *fs, struct fs_inode *inode, unsigned flags);
/* The same with fs->ns already held for writing. */
int fs_copy_up_locked(struct fs *fs, struct fs_inode *inode, unsigned flags);
/* Make a directory (and its ancestors) exist in upper; caller holds fs->ns for writing. */
int fs_copy_up_dir_locked(struct fs *fs, struct fs_inode *dir);
/*
 * The same before a directory's own attributes (mode, owner, times, xattrs)
 * change: its path is recorded too (the mount root's as STORE_PATH_ROOT,
 * with what the mount root shows as its original). Caller holds fs->ns for
 * writing.
 */
int fs_copy_up_dir_touch_locked(struct fs *fs, struct fs_inode *dir);
/* Record path as touched with PKG's original state; caller holds fs->ns. */
int fs_touch(struct fs *fs, const char *path);
/*
 * The same for path, parent's child name: read through parent's lower
 * directory fd where that is PKG's directory at parent's path, instead of
 * opening it again from PKG's root.
 */
int fs_touch_child(struct fs *fs, struct fs_inode *parent, const char *name, const char *path);
/* Is dir's lower part PKG's directory at dir's own path? Caller holds fs->ns. */
bool fs_lower_at_same_path(struct fs *fs, struct fs_inode *dir);
/*
 * The same for a path the caller has just seen absent from PKG (a lookup
 * under fs->ns found nothing in the lower directory at that very path):
 * recorded absent without looking again. Should PKG gain the path in
 * between, the commit's conflict check finds it.
 */
int fs_touch_absent(struct fs *fs, const char *path);
int fs_touch_tree(struct fs *fs, struct fs_inode *dir, const char *oldpath, const char *newpath);
int fs_load_touched(struct fs *fs);
void fs_free_touched(struct fs *fs);
/* A fresh name in work/ ("<prefix>.<n>"); buf holds 64 bytes. */
const char *fs_work_name(struct fs *fs, const char *prefix, char buf[64]);
/*
 * Give dstdir/dst the user-visible xattrs of srcdir/src ("" = srcdir's own
 * object). Names the upper layer refuses are skipped; running out of space
 * or an I/O error is an error: a copy without them would commit without them.
 */
int fs_copy_xattrs(int srcdir, const char *src, int dstdir, const char *dst);
/*
 * Set owner of a new object to the requesting user's (when root). With
 * ret_st, also the object's attributes as they are after that.
 */
int fs_set_owner(struct fs *fs, fuse_req_t req, int dirfd, const char *name,
		 struct fs_inode *parent, struct stat *ret_st);

/* dir.c */
/*
 * Create a directory, symlink (link_target), device/FIFO/socket, or with
 * ret_fd a regular file opened with open_flags (create()). Fills *e and
 * counts a lookup.
 */
int fs_do_mknod(struct fs *fs, fuse_req_t req, struct fs_inode *parent, const char *name,
		mode_t mode, dev_t rdev, const char *link_target, int open_flags, int *ret_fd,
		struct fuse_entry_param *e);
int fs_do_link(struct fs *fs, struct fs_inode *inode, struct fs_inode *parent, const char *name,
	       struct fuse_entry_param *e);
int fs_do_unlink(struct fs *fs, struct fs_inode *parent, const char *name, bool dir);
int fs_do_rename(struct fs *fs, struct fs_inode *parent, const char *name,
		 struct fs_inode *newparent, const char *newname, unsigned flags);

/* readdir.c */
struct fs_dirent {
	char *name;
	uint64_t ino;	    /* as st_ino would report it */
	unsigned char type; /* DT_* */
	uint64_t pos;	    /* readdir.c: position in the listing */
};
/*
 * The merged listing of a directory given its upper and lower fds (either
 * may be -1): upper entries (markers hidden, names decoded), then lower
 * entries neither shadowed nor whited out. Free with fs_dirents_free().
 */
int fs_list_merged(struct fs *fs, int upper_fd, int lower_fd, struct fs_dirent **ret,
		   size_t *ret_n);
void fs_dirents_free(struct fs_dirent *v, size_t n);
void fs_readdir(struct fs *fs, fuse_req_t req, struct fs_inode *dir, size_t size, off_t off,
		bool plus);
/* Kept listings (see readdir.c): set up, drop a directory's (inode freed), free all. */
void fs_dirsnaps_init(struct fs *fs);
void fs_dirsnap_drop(struct fs *fs, struct fs_inode *dir);
void fs_dirsnaps_release(struct fs *fs);

/* file.c */
struct fs_fh {
	/*
	 * Opened on the upper layer, or read-only on PKG. A PKG handle moves to
	 * the upper copy once the file is copied up (so it never reads stale
	 * data); the PKG fd stays open in old_fd until release, as another
	 * thread may still be reading from it.
	 */
	int fd;
	int old_fd;
	bool upper;
	int flags;    /* as the kernel sent them */
	int fd_flags; /* what fd was opened with */
	pthread_mutex_t lock; /* protects the switch from PKG to upper */
	struct fs_inode *inode;
	off_t next;  /* where a sequential reader reads next (racy hint, for readahead) */
	int backing; /* the kernel's backing file id when in passthrough mode, else 0 */
};
int fs_do_open(struct fs *fs, struct fs_inode *inode, int flags, struct fs_fh **ret);
int fs_do_create(struct fs *fs, fuse_req_t req, struct fs_inode *parent, const char *name,
		 mode_t mode, int flags, struct fs_fh **ret_fh, struct fuse_entry_param *e);
/* Open the object of an inode (upper if copied up) with flags; caller holds fs->ns. */
int fs_open_object(struct fs *fs, struct fs_inode *inode, int flags);
/* The fd to read from: switches a PKG handle to the upper copy if there is one now. */
int fs_fh_read_fd(struct fs *fs, struct fs_fh *fh);
void fs_fh_release(struct fs *fs, struct fs_fh *fh);
int fs_do_readlink(struct fs *fs, struct fs_inode *inode, char *buf, size_t size);
int fs_do_setattr(struct fs *fs, struct fs_inode *inode, struct stat *attr, int valid,
		  struct fs_fh *fh, struct stat *ret);

/*
 * passthrough.c: the session's I/O hooks (fuse_custom_io), which negotiate
 * passthrough with the kernel, and the passthrough mode of open handles.
 */
ssize_t fs_io_read(int fd, void *buf, size_t len, void *userdata);
ssize_t fs_io_writev(int fd, struct iovec *iov, int count, void *userdata);
/* splice(2), both ways (libfuse uses splice only where the hooks provide it). */
ssize_t fs_io_splice(int fdin, off_t *offin, int fdout, off_t *offout, size_t len,
		     unsigned int flags, void *userdata);
/*
 * uring.c. fs_uring_start() starts the ring threads if the kernel allows
 * FUSE over io_uring; fs_uring_offer() says whether INIT may offer it, and
 * fs_uring_negotiated() what INIT decided (payload size, or 0: not used).
 * fs_uring_reply() takes a reply to the request this thread serves from the
 * ring (its length), else returns -1; fs_uring_buf() is where such a reply of
 * up to size bytes may be built in place, or NULL.
 */
void fs_uring_start(struct fs *fs);
bool fs_uring_offer(struct fs *fs);
void fs_uring_negotiated(struct fs *fs, size_t payload);
ssize_t fs_uring_reply(const struct iovec *iov, int count);
void *fs_uring_buf(size_t size);
/* Long work ahead on this thread: a ring thread takes normal priority for it. */
void fs_uring_heavy(void);
void fs_uring_stop(struct fs *fs);

void fs_pt_init(struct fs *fs);
void fs_pt_destroy(struct fs *fs);
/* Put a new handle in passthrough mode if it can be; caller holds fs->ns. */
void fs_pt_attach(struct fs *fs, struct fs_fh *fh);
void fs_pt_detach(struct fs *fs, struct fs_fh *fh);
/* The flags to create a regular file's upper object with, for a create() with flags. */
int fs_pt_create_flags(struct fs *fs, int flags);
/* fuse_reply_open/create, carrying the handle's passthrough mode. */
int fs_pt_reply_open(fuse_req_t req, const struct fuse_file_info *fi, struct fs_fh *fh);
int fs_pt_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
		       const struct fuse_file_info *fi, struct fs_fh *fh);

/* xattr.c */
/* The upper object of inode has no security.capability (see xattr.c). */
void fs_xattr_no_caps(struct fs *fs, struct fs_inode *inode);
bool fs_xattr_default_acl(struct fs_inode *dir, int pu);
/* Get/list: size 0 asks for the needed size; returns bytes or -errno. */
ssize_t fs_do_getxattr(struct fs *fs, struct fs_inode *inode, const char *name, char *buf,
		       size_t size);
ssize_t fs_do_listxattr(struct fs *fs, struct fs_inode *inode, char *buf, size_t size);
int fs_do_setxattr(struct fs *fs, fuse_req_t req, struct fs_inode *inode, const char *name,
		   const char *value, size_t size, int flags);
int fs_do_removexattr(struct fs *fs, struct fs_inode *inode, const char *name);

/* ops.c */
extern const struct fuse_lowlevel_ops fs_ll_ops;

/* Kernel-side tuning that must wait for the INIT reply: call from request handlers. */
void fs_tune_once(struct fs *fs);

#endif
