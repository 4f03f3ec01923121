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

/*
 * Commit a SEALED transaction t: the conflict check against PKG (pkg_fd)
 * and, with CJFS_COMMIT_FORCE, keeping what is overwritten; staging; the
 * store made durable; the commit point (audit BACKUP_CREATED); the promote
 * (undone again if it fails); COMMITTED (audit TXN_COMMIT). start is
 * util_mono_ns() when the whole operation began (for commit_ns); since names
 * the baseline in conflict messages ("the transaction began"). A failure
 * before the commit point returns the transaction to OPEN, or ends an undo
 * or restore ROLLED_BACK. Logs its errors; -EEXIST when there are conflicts.
 * The caller holds the transaction's "finish" lock.
 */
int cjfs_commit_sealed(struct cjfs *c, struct store_txn *t, int pkg_fd, unsigned flags,
		       int64_t start, const char *since, struct cjfs_result *ret);

#endif
