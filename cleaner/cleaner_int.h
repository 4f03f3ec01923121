/* SPDX-License-Identifier: MIT */
/* Private to cleaner/: helpers shared by txn.c, mount.c, diff.c and run.c. */
#ifndef CJFS_CLEANER_CLEANER_INT_H
#define CJFS_CLEANER_CLEANER_INT_H

#include "cjfs.h"

const char *cjfs_store_dir(struct cjfs *c);

/*
 * Close the store's SQLite connection before fork() and open it again after:
 * SQLite's per-process lock bookkeeping must not be inherited by a child
 * that opens the index itself (it fails with SQLITE_PROTOCOL).
 */
void cjfs_store_suspend(struct cjfs *c);
int cjfs_store_resume(struct cjfs *c);

/*
 * 1 if a cjfs FUSE file system is mounted at mnt (canonical path), 0 if not;
 * *ret_source (may be NULL) gets its source ("cjfs-<txn>").
 */
int cjfs_mount_source(const char *mnt, char **ret_source);

/* The tree a transaction would leave: through its mount if served, else offline. */
struct tree_view;
int cjfs_tree_view(struct cjfs *c, const struct store_txn *t, struct tree_view **ret);
const struct store_view *cjfs_tree_view_get(struct tree_view *tv);
void cjfs_tree_view_free(struct tree_view *tv);

#endif
