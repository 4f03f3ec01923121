/* SPDX-License-Identifier: MIT */
/*
 * The cjfs library API: drive transactions without a shell. Each function
 * returns >= 0 on success or -errno; on failure it has logged exactly one
 * error line (through store/log.h) that names the thing and what to do, so
 * a caller only picks an exit status.
 */
#ifndef CJFS_CLEANER_CJFS_H
#define CJFS_CLEANER_CJFS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

struct cjfs;

/*
 * Open (creating it 0700 if needed) the store at dir, or the default store
 * when dir is NULL, and finish whatever a crash interrupted (store_recover).
 */
int cjfs_open(const char *dir, struct cjfs **ret);
void cjfs_close(struct cjfs *c);
/* What cjfs_open()'s recovery did, and its error (0 if complete). */
void cjfs_recovery(struct cjfs *c, struct store_recover_report *ret, int *ret_err);
struct store *cjfs_store(struct cjfs *c);

struct cjfs_mount_opts {
	bool foreground;     /* serve in this process until unmounted */
	bool debug;	     /* log every FUSE request */
	bool allow_other;    /* let other users use the mount (needs user_allow_other) */
	bool concurrent;     /* allow a second open transaction on the same PKG */
	const char *options; /* extra -o mount options */
	const char *command; /* recorded with the transaction (cjfs run) */
	int64_t resume;	     /* remount this open transaction instead of starting one */
};

/*
 * Start a transaction on pkg and mount it at mnt (both checked: PKG an
 * existing directory; MNT an empty directory neither inside nor containing
 * PKG). Returns once MNT shows the overlay, with the daemon in the
 * background; with foreground, serves until unmounted and then returns.
 */
int cjfs_mount(struct cjfs *c, const char *pkg, const char *mnt, const struct cjfs_mount_opts *opts,
	       int64_t *ret_txn);

/*
 * The transaction a user names: a cjfs mount point, or a transaction id.
 * *ret_mnt is the canonical mount point if mounted (malloc'd) or NULL.
 */
int cjfs_resolve(struct cjfs *c, const char *arg, int64_t *ret_txn, char **ret_mnt);

/* Unmount the transaction's mount (if any) and wait for its daemon to exit. -EBUSY if busy. */
int cjfs_unmount(struct cjfs *c, int64_t txn);

/*
 * Status of every touched path, compared with its original now (no store
 * writes). For an open transaction now.has_hash is set only where the
 * metadata could not decide (same type, mode, owner and size as the
 * original); a finished one reports what was recorded at commit. The
 * xattr lists are there where orig/now.has_xattrs (an open transaction's
 * new ones only where bytes and metadata could not decide).
 */
struct cjfs_status_entry {
	char *path;
	char status; /* 'M', 'A', 'D', or 0 */
	bool dir;    /* a directory (now, or originally if deleted) */
	struct store_entry orig;
	struct store_entry now;
	struct strbuf orig_xattrs, now_xattrs;
};
int cjfs_status(struct cjfs *c, int64_t txn, struct cjfs_status_entry **ret, size_t *ret_n);
void cjfs_status_free(struct cjfs_status_entry *v, size_t n);

/* Write a unified diff of the transaction's changes to out (like git diff). */
int cjfs_diff(struct cjfs *c, int64_t txn, FILE *out);

enum cjfs_commit_flags {
	CJFS_COMMIT_FORCE = 1 << 0, /* overwrite conflicting PKG changes (kept in the store) */
};

struct cjfs_result {
	int64_t txn;
	int64_t modified, added, deleted;
	int64_t bytes;
	size_t conflicts;
};

/*
 * Unmount (if mounted), seal, check conflicts, and promote every change into
 * PKG all-or-nothing. -EBUSY: the mount is busy (nothing done); -EEXIST:
 * conflicts (each logged; nothing applied; the transaction stays open).
 */
int cjfs_commit(struct cjfs *c, int64_t txn, unsigned flags, struct cjfs_result *ret);

/* Unmount (if mounted) and discard every change; PKG is never touched. */
int cjfs_rollback(struct cjfs *c, int64_t txn, struct cjfs_result *ret);

/* ---- history (history.c) ---- */

enum cjfs_undo_flags {
	CJFS_UNDO_FORCE = 1 << 0, /* overwrite files changed since (they are kept in the store) */
};

/*
 * Revert committed transaction txn as a new transaction (undo_of = txn) that
 * goes through the same all-or-nothing commit: every path it changed goes
 * back to its original, verified from the store. A path changed in PKG since
 * txn was committed is a conflict: each is named and nothing is applied
 * (-EEXIST; the new transaction ends rolled back) unless CJFS_UNDO_FORCE.
 * On success txn is UNDONE, in the same SQLite transaction as the new one's
 * COMMITTED. ret (may be NULL) describes the new transaction. -EBUSY when
 * PKG has an open transaction.
 */
int cjfs_undo(struct cjfs *c, int64_t txn, unsigned flags, struct cjfs_result *ret);

struct cjfs_restore_opts {
	const char *const *paths; /* relative to PKG; files or directories; NULL = every path */
	size_t n_paths;
	const char *to; /* write into this directory instead of PKG (created if missing) */
};

/*
 * Write the originals of transaction txn (every path it touched that existed
 * before it, or those at or below opts->paths) back into PKG, or into
 * opts->to. Every blob is verified before anything is written, and every
 * byte again on its way into a temporary that is renamed into place; a
 * corrupt or missing original names its path and blob and writes nothing
 * (-EBADMSG, -ENOENT). Paths are validated (relative, no "..") and no
 * symlink on the way is followed. Into PKG it is a new transaction
 * (restore_of = txn) with the same commit protocol, so what it overwrites
 * is kept and can be undone; paths the transaction added are left alone
 * (that is what undo is for). With opts->to, ret->added counts what was written.
 */
int cjfs_restore(struct cjfs *c, int64_t txn, const struct cjfs_restore_opts *opts,
		 struct cjfs_result *ret);

/* Exit status of a command run through cjfs_run (see run.c). */
struct cjfs_run_opts {
	bool concurrent;
	bool keep_on_failure; /* leave the transaction open instead of rolling back */
	bool quiet;	      /* no summary line */
};

/*
 * Mount pkg on a private temporary directory, run argv with that mount
 * shown at pkg's own path in a mount namespace of its own (working
 * directory = the mount root; run.c), commit if it exits 0, roll back
 * otherwise; a process it left still using the mount leaves it open.
 * Returns the command's exit status (128 + signal if killed), 125 if cjfs
 * itself failed, 126/127 if the command could not be run / was not found.
 */
int cjfs_run(struct cjfs *c, const char *pkg, char *const argv[], const struct cjfs_run_opts *opts,
	     struct cjfs_result *ret);

/* The built-in cleaner: whitespace and line-ending hygiene over a tree (clean.c). */
struct cjfs_clean_report {
	size_t scanned, changed, skipped;
};
/* Clean every text file below dirfd; with dry_run nothing is written. */
int cjfs_clean_tree(int dirfd, bool dry_run, FILE *out, struct cjfs_clean_report *ret);

/* Canonical absolute path of an existing directory (malloc'd), or -errno. */
int cjfs_realdir(const char *path, char **ret);

#endif
