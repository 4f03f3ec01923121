/* SPDX-License-Identifier: MIT */
/*
 * The only fs/ API other modules see: mount and serve a transaction's
 * overlay (lower = PKG, read-only; upper = the transaction's layer), and read
 * the merged tree offline, without a mount, through a struct store_view.
 */
#ifndef CJFS_FS_FS_H
#define CJFS_FS_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct fs;

struct fs_config {
	const char *mountpoint;
	int lower_fd;	     /* PKG, a directory fd (borrowed) */
	int upper_fd;	     /* the transaction's upper/ (borrowed) */
	int work_fd;	     /* the transaction's work/ (borrowed), same filesystem as upper */
	struct store *store; /* the daemon's own connection (borrowed) */
	int64_t txn;
	bool debug;	  /* log every request (libfuse -d) */
	bool allow_other; /* -o allow_other: other users may use the mount */
	/* Extra -o options from the user, comma separated, or NULL. */
	const char *options;
};

/*
 * Create the FUSE session and mount it at cfg->mountpoint. On return the
 * mount is visible. Returns 0 and *ret, or -errno (-ENODEV if FUSE is not
 * available). cfg and everything it points to must outlive the fs.
 */
int fs_mount(const struct fs_config *cfg, struct fs **ret);

/*
 * Serve requests until the file system is unmounted (fusermount3 -u, umount)
 * or fs_exit() is called. Returns 0 after a clean unmount.
 */
int fs_run(struct fs *fs);

/* Ask fs_run() to return (signal-safe). */
void fs_exit(struct fs *fs);

/* Unmount if still mounted and free everything; NULL is a no-op. */
void fs_free(struct fs *fs);

/*
 * Offline view of the merged tree of lower_fd and upper_fd (both borrowed),
 * exactly as the mount would show it. Free with fs_layer_free().
 */
struct fs_layer;
int fs_layer_new(int lower_fd, int upper_fd, struct fs_layer **ret);
void fs_layer_free(struct fs_layer *l);
void fs_layer_view(struct fs_layer *l, struct store_view *ret);

/* Mount options understood by fs_mount (for validation in the CLI): 0 or -EINVAL. */
int fs_check_options(const char *options);

#endif
