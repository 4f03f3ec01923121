/* SPDX-License-Identifier: MIT */
/*
 * The content store: a directory holding content-addressed blobs (SHA-256)
 * and a SQLite index of transactions, the paths each one touched (their
 * original and new state), the commit journal and the audit log.
 *
 * Layout of a store directory (all 0700, files 0600):
 *   index.db            SQLite, WAL mode
 *   objects/ab/<hash>   blob, raw bytes; or <hash>.zst, zstd-compressed
 *   tmp/                blobs being written
 *   txn/<id>/           per-transaction area: upper/, work/, lock
 *
 * Locking: one SQLite connection per struct store, serialised by an internal
 * recursive mutex, so a struct store may be shared by threads. Every function
 * returns >= 0 on success and -errno on failure and logs only at debug level.
 */
#ifndef CJFS_STORE_STORE_H
#define CJFS_STORE_STORE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "hash.h"
#include "util.h"

struct store;

enum store_open_flags {
	STORE_OPEN_CREATE = 1 << 0, /* create the directory and schema if missing */
	/* Historical: every connection now syncs only at commit points. */
	STORE_OPEN_RELAXED = 1 << 1,
};

/*
 * Open (and with STORE_OPEN_CREATE, create 0700) the store at dir. Refuses a
 * store whose schema is newer than this binary (-EPROTO), and a store path
 * that cannot be written (-EACCES/-EROFS). On success *ret owns the store.
 */
int store_open(const char *dir, unsigned flags, struct store **ret);
/* Close the index and fds; NULL is a no-op. */
void store_close(struct store *s);
const char *store_path(const struct store *s);
/* The store's root directory fd (owned by the store). */
int store_dirfd(const struct store *s);

/*
 * Default store directory: $CJFS_HOME, else ${XDG_STATE_HOME:-$HOME/.local/state}/cjfs.
 * Returns a malloc'd string or NULL (ENOMEM or no HOME).
 */
char *store_default_path(void);

/* ---- blobs (blob.c) ---- */

/*
 * How a blob file holds its bytes. The hash is always of the uncompressed
 * bytes; a compressed blob is objects/ab/<hash>.zst, one standard zstd frame
 * (with its own checksum), so `zstd -d` recovers it by hand.
 */
enum store_blob_encoding {
	STORE_BLOB_RAW = 0,
	STORE_BLOB_ZSTD = 1,
};

/*
 * Store the bytes of fd from its current offset to EOF. Identical content is
 * stored once. The blob is compressed with zstd when that takes fewer file
 * system blocks than the raw bytes (files over 1 MiB are judged on their
 * first MiB). The blob is written but not fsynced: store_sync() makes every
 * blob written so far durable (one syncfs for a whole commit). The blob's row
 * is inserted (or its use time refreshed) in the same SQLite transaction as
 * the file is published, which is what lets gc delete files safely.
 * ret_hash gets the SHA-256 of the bytes.
 */
int store_put_fd(struct store *s, int fd, uint8_t ret_hash[HASH_LEN], uint64_t *ret_size);
int store_put_buf(struct store *s, const void *buf, size_t n, uint8_t ret_hash[HASH_LEN]);

/* 1 if the blob exists (in either form), 0 if not, -errno. */
int store_has(struct store *s, const uint8_t hash[HASH_LEN]);

/*
 * Copy the blob's bytes to outfd while hashing them. Returns the size on
 * success, -ENOENT if the blob is missing and -EBADMSG if its content does not
 * hash to `hash` (corrupt). On failure outfd may hold partial data: callers
 * write into a temporary file and discard it, so corrupt bytes never reach a
 * real file.
 */
int64_t store_blob_copy(struct store *s, const uint8_t hash[HASH_LEN], int outfd);

/* Read a whole (verified) blob into out; -EFBIG beyond limit bytes (0 = none). */
int store_blob_read(struct store *s, const uint8_t hash[HASH_LEN], struct strbuf *out,
		    size_t limit);

/* Re-hash one blob: 0 if intact, -EBADMSG if corrupt, -ENOENT if missing. */
int store_blob_verify(struct store *s, const uint8_t hash[HASH_LEN]);

/* Relative path of a blob for messages ("objects/ab/<hash>"); buf holds 96 bytes. */
const char *store_blob_name(const uint8_t hash[HASH_LEN], char buf[96]);

/*
 * The blob file as it is on disk, for messages: "objects/ab/<hash>.zst" when
 * compressed, else "objects/ab/<hash>" (also when missing). buf holds 96 bytes.
 */
const char *store_blob_file(struct store *s, const uint8_t hash[HASH_LEN], char buf[96]);

/*
 * Parse the name of a file in objects/ab/: "<64 hex>" (raw) or "<64 hex>.zst".
 * 0 with the hash and encoding, or -EINVAL for any other name (temporaries,
 * foreign files), which callers leave alone.
 */
int store_blob_parse_name(const char *name, uint8_t ret_hash[HASH_LEN], int *ret_encoding);

/* Size of a blob and how it is stored, from the index; -ENOENT without a row. */
int store_blob_info(struct store *s, const uint8_t hash[HASH_LEN], uint64_t *ret_size,
		    uint64_t *ret_stored_size, int *ret_encoding);

/*
 * Staging of originals (stage.c), for the daemon of an open transaction:
 * append the content of fd (from its current offset, as a whole regular
 * file of size bytes, as the caller's fstat of fd said) or of a buffer to
 * txn/<txn>/originals, returning its hash, size and offset there. Nothing
 * is indexed yet: the caller records the location with the change row
 * (store_changelog_append()). -EAGAIN if the file changed size while it
 * was read.
 */
int store_stage_fd(struct store *s, int64_t txn, int fd, uint64_t size, uint8_t ret_hash[HASH_LEN],
		   uint64_t *ret_size, uint64_t *ret_off);
int store_stage_buf(struct store *s, int64_t txn, const void *data, size_t n,
		    uint8_t ret_hash[HASH_LEN], uint64_t *ret_off);
/*
 * Turn the staged original of every changed path of a transaction into a
 * blob (verified against its hash on the way), so that the commit can
 * replace it in PKG. Called by seal.
 */
int store_stage_promote(struct store *s, int64_t txn);
/* Drop a transaction's staging rows (its directory is going away). */
int store_stage_forget(struct store *s, int64_t txn);

/* Make all blobs written so far and their directory entries durable. */
int store_sync(struct store *s);

/* ---- transactions (txn.c) ---- */

/*
 * Stored states. ORPHANED is not stored: it is OPEN with no live daemon
 * (see store_txn_daemon_alive()).
 */
enum store_txn_state {
	STORE_TXN_OPEN = 1,
	STORE_TXN_SEALED = 2,	  /* change set and new contents recorded, PKG untouched */
	STORE_TXN_COMMITTING = 3, /* journal durable: recovery rolls forward */
	STORE_TXN_COMMITTED = 4,
	STORE_TXN_ROLLED_BACK = 5,
	STORE_TXN_UNDONE = 6,
};

const char *store_txn_state_name(enum store_txn_state st);

struct store_txn {
	int64_t id;
	enum store_txn_state state;
	char *pkg;	  /* absolute, canonical path of PKG */
	uint64_t pkg_dev; /* identity of PKG's root directory */
	uint64_t pkg_ino;
	char *mountpoint;   /* absolute path while mounted, else NULL */
	int64_t pid;	    /* daemon pid while mounted, else 0 */
	char *command;	    /* command line for `cjfs run`, undo and restore, else NULL */
	int64_t undo_of;    /* id of the transaction this one reverts, else 0 */
	int64_t restore_of; /* id of the transaction whose originals this one restores, else 0 */
	int64_t created_ns;
	int64_t finished_ns;
	int64_t n_modified, n_added, n_deleted;
	int64_t bytes_new;  /* bytes of new content */
	int64_t n_orig;	    /* originals with content (files, symlinks) kept in the store */
	int64_t bytes_orig; /* their bytes */
	int64_t backup_ns;  /* time spent storing originals */
	int64_t seal_ns;    /* time spent computing and storing the change set */
	int64_t check_ns;   /* conflict check */
	int64_t stage_ns;   /* writing and verifying the temporaries, and syncing the store */
	int64_t apply_ns;   /* promote: removals, directories, renames, sync */
	int64_t commit_ns;  /* the whole commit, from unmount to the final record */
};

/* A transaction built from the store (undo, restore) rather than through a mount. */
static inline bool store_txn_is_synthetic(const struct store_txn *t)
{
	return t->undo_of != 0 || t->restore_of != 0;
}

enum store_txn_begin_flags {
	STORE_TXN_ALLOW_CONCURRENT = 1 << 0, /* allow a second open txn on the same PKG */
};

/*
 * Create an OPEN transaction on pkg (absolute canonical path, st its lstat)
 * and its directory txn/<id>/ with upper/ and work/. -EBUSY if another
 * transaction on the same PKG is open, orphaned, sealed or committing and
 * STORE_TXN_ALLOW_CONCURRENT is not given; *ret_other then names it.
 * Records TXN_BEGIN in the audit log in the same SQLite transaction.
 */
int store_txn_begin(struct store *s, const char *pkg, const struct stat *st, const char *command,
		    int64_t undo_of, unsigned flags, int64_t *ret_id, int64_t *ret_other);

/* Load a transaction; -ENOENT if there is none with that id. Free with store_txn_free(). */
int store_txn_load(struct store *s, int64_t id, struct store_txn **ret);
void store_txn_free(struct store_txn *t);

/* The OPEN transaction mounted at mnt (canonical path): id, or -ENOENT. */
int store_txn_find_mount(struct store *s, const char *mnt, int64_t *ret_id);

/* Ids of transactions in the given state, ascending; *ret is malloc'd. */
int store_txn_list_state(struct store *s, enum store_txn_state st, int64_t **ret, size_t *ret_n);

/*
 * All transactions, newest first, optionally only those of PKG (NULL = all),
 * at most limit (0 = all). Free each with store_txn_free() and the array with free().
 */
int store_txn_list(struct store *s, const char *pkg, size_t limit, struct store_txn ***ret,
		   size_t *ret_n);

/* Record (or clear, with mnt NULL) where the transaction is mounted and by which pid. */
int store_txn_set_mount(struct store *s, int64_t id, const char *mnt, int64_t pid);

/*
 * Move a transaction from state `from` to `to` atomically, writing the audit
 * event `event` (may be NULL) with `detail` in the same SQLite transaction.
 * -ESTALE if the transaction is not in `from` (someone else won the race).
 * Durable on return (synchronous=FULL), with every write before it.
 * Reaching COMMITTED also finishes what the transaction stands for, in the
 * same SQLite transaction: an undo marks the transaction it reverts UNDONE,
 * and both undo and restore record BACKUP_RESTORED for their source.
 */
int store_txn_transition(struct store *s, int64_t id, enum store_txn_state from,
			 enum store_txn_state to, const char *event, const char *detail);

/* Append an event to the audit log in its own SQLite transaction. */
int store_audit(struct store *s, int64_t txn, const char *event, const char *detail);

/*
 * Record the counters and commit timings of a transaction (from t's fields:
 * counts, bytes_new, n_orig, bytes_orig, seal/check/stage/apply/commit_ns).
 * backup_ns is the daemon's (store_txn_add_backup) and is not written.
 */
int store_txn_save_stats(struct store *s, const struct store_txn *t);

/*
 * Add ns to the time the transaction's daemon spent storing originals. The
 * daemon adds up in memory and writes once, when it exits: not inside every
 * change row's SQLite transaction.
 */
int store_txn_add_backup(struct store *s, int64_t txn, int64_t ns);

/*
 * Open the transaction's directory (txn/<id>) or a subdirectory of it
 * ("upper", "work") as an O_PATH|O_DIRECTORY fd, or with O_RDONLY when
 * readable is set.
 */
int store_txn_open_dir(struct store *s, int64_t id, const char *sub, bool readable);

/*
 * Transaction locks, files txn/<id>/<name>.lock held with flock(LOCK_EX):
 *   "daemon"  held by the daemon serving the transaction for its whole life;
 *   "finish"  held by a command that changes the transaction's state
 *             (commit, rollback, resume, recover), so exactly one wins.
 * Returns an fd that holds the lock until closed (it is O_CLOEXEC), or
 * -EWOULDBLOCK if held elsewhere and wait is false.
 */
int store_txn_lock(struct store *s, int64_t id, const char *name, bool wait);

/* 1 if a daemon serves the transaction (holds its "daemon" lock), 0 if not, -errno. */
int store_txn_daemon_alive(struct store *s, int64_t id);

/* Remove txn/<id>/ (upper layer and work area). */
int store_txn_remove_dir(struct store *s, int64_t id);

/*
 * Empty the upper layer and work area of a transaction that no daemon
 * serves, keeping the directories and locks: the transaction then changes
 * nothing. For a rollback that needs the space the layer holds.
 */
int store_txn_clear_layer(struct store *s, int64_t id);

/* ---- the change set (txn.c) ---- */

/*
 * The state of one path: its type and mode (st_mode, 0 = absent), owner,
 * size, times, identity, and for regular files and symlinks the SHA-256 of
 * the content (symlinks: of the target string), whose bytes are in the store.
 */
struct store_entry {
	uint32_t mode;
	uint32_t uid, gid;
	uint64_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	uint64_t dev, ino;
	uint64_t rdev; /* device nodes: the device they stand for */
	bool has_hash;
	uint8_t hash[HASH_LEN];
	/*
	 * Regular files and directories: the extended attributes (ACLs
	 * included) are known, and xattrs fingerprints their list (zero when
	 * there are none). Rows written before cjfs recorded them have none.
	 */
	bool has_xattrs;
	uint8_t xattrs[HASH_LEN];
};

/*
 * The row of PKG's top directory itself (its mode, owner and xattrs): the
 * one path of a change set that is not a name in PKG.
 */
#define STORE_PATH_ROOT "."

/* A change row's path: util_path_is_safe(), or STORE_PATH_ROOT. */
bool store_path_is_row(const char *path);

/* One path touched by a transaction. */
struct store_change {
	char *path;		 /* relative to PKG, store_path_is_row() */
	struct store_entry orig; /* PKG's state when the transaction first touched the path */
	struct store_entry new;	 /* the state the transaction leaves (valid once sealed) */
	char status;		 /* 'M', 'A', 'D', or 0 for unchanged; valid once sealed */
	bool applied;		 /* promoted into PKG (journal progress) */
	/* The xattr lists (store_xattrs_read_at()) where orig/new.has_xattrs. */
	struct strbuf orig_xattrs, new_xattrs;
};

/*
 * Record that the transaction is about to change path, with PKG's original
 * state. The first record for a path wins (later calls return 0 and change
 * nothing); returns 1 when a row was inserted. Committed with synchronous=NORMAL:
 * survives the death of the process, made durable at seal time.
 */
int store_change_record(struct store *s, int64_t txn, const char *path,
			const struct store_entry *orig);
/*
 * The change log of an open transaction (changelog.c), for its daemon: a
 * row appended with store_changelog_append() survives the death of the
 * process as soon as the call returns, for ~1/20 of a SQLite commit; logs
 * are folded into the index in batches, and by store_change_list() and
 * store_recover() before they read it. store_changelog_begin() opens the
 * log for appending (after folding what an earlier daemon left and cutting
 * off a record it left torn); store_changelog_end() folds it and closes it.
 * A record carries the original's xattr list (where orig->has_xattrs, and
 * when it is small: seal reads larger ones from PKG).
 */
int store_changelog_begin(struct store *s, int64_t txn);
int store_changelog_append(struct store *s, int64_t txn, const char *path,
			   const struct store_entry *orig, const struct strbuf *xattrs, bool staged,
			   uint64_t off);
int store_changelog_end(struct store *s, int64_t txn);
/* Fold the log of one transaction, or of every open one, into the index. */
int store_changelog_fold(struct store *s, int64_t txn);
int store_changelog_fold_open(struct store *s);

/* 1 if path has a row in the transaction, 0 if not. */
int store_change_exists(struct store *s, int64_t txn, const char *path);

/*
 * All rows of a transaction sorted by path (bytewise), or only changed ones
 * (status != 0) with only_changed. Free with store_changes_free().
 */
int store_change_list(struct store *s, int64_t txn, bool only_changed, struct store_change **ret,
		      size_t *ret_n);
void store_changes_free(struct store_change *c, size_t n);

/* Set the new state and status of one row (during seal). */
int store_change_set_new(struct store *s, int64_t txn, const struct store_change *c);
/* Mark one row applied (journal progress). */
int store_change_set_applied(struct store *s, int64_t txn, const char *path);

/*
 * Create a transaction whose change set is already known (undo, restore):
 * in one SQLite transaction, the same busy check as store_txn_begin(), the
 * row in state SEALED with its counters, one change row per entry of c (orig,
 * new and status as given; every hash must already be in the store), and the
 * audit event TXN_BEGIN. With undo_of, the transaction it reverts must still
 * be COMMITTED (-ESTALE otherwise); with restore_of, it must still exist
 * (-ENOENT). On success *ret_lock holds the new transaction's "finish" lock,
 * taken before the row became visible, so recovery never sees it unowned.
 */
struct store_txn_synth {
	const char *pkg;
	const struct stat *pkg_st;
	const char *command;
	int64_t undo_of;
	int64_t restore_of;
	int64_t backup_ns; /* time it took to store the current states */
};
int store_txn_begin_sealed(struct store *s, const struct store_txn_synth *spec,
			   const struct store_change *c, size_t n, int64_t *ret_id,
			   int64_t *ret_other, int *ret_lock);

/*
 * Record that the transaction keeps a blob beyond its change rows (what
 * commit --force overwrote), with an audit event (BACKUP_CREATED) carrying
 * detail, in one SQLite transaction. gc counts kept blobs as referenced.
 */
int store_kept_add(struct store *s, int64_t txn, const char *path, uint32_t mode,
		   const uint8_t hash[HASH_LEN], const char *why, const char *detail);

struct store_kept {
	char *path;
	uint32_t mode;
	uint8_t hash[HASH_LEN];
	int64_t time_ns;
	char *why;
};
/* The kept blobs of a transaction, by path. Free with store_kept_free(). */
int store_kept_list(struct store *s, int64_t txn, struct store_kept **ret, size_t *ret_n);
void store_kept_free(struct store_kept *k, size_t n);

/* Id of the committed transaction that undid txn, 0 if none. */
int store_txn_undone_by(struct store *s, int64_t txn, int64_t *ret_id);

/*
 * Group several writes into one SQLite transaction (BEGIN IMMEDIATE ... COMMIT).
 * Commits are not synced (synchronous=NORMAL): they survive the death of the
 * process, and reach the disk with the next durable one. A durable batch
 * (for commit points) is synced on commit, and with it everything before it.
 */
int store_batch_begin(struct store *s);
int store_batch_begin_durable(struct store *s);
int store_batch_commit(struct store *s);
void store_batch_rollback(struct store *s);

/* ---- the new tree, as seen by seal and status (changeset.c) ---- */

/*
 * Read access to the tree a transaction would leave: the mount while it is
 * up, the upper layer over PKG (fs/ provides it) when it is not, or a plain
 * directory in tests. Paths are relative to the root.
 */
struct store_view {
	void *ctx;
	/* lstat semantics; -ENOENT if absent. */
	int (*lstat)(void *ctx, const char *path, struct stat *st);
	/* Open a regular file read-only; returns fd or -errno. */
	int (*open)(void *ctx, const char *path);
	/* Append a symlink's target to out. */
	int (*readlink)(void *ctx, const char *path, struct strbuf *out);
	/* Read a file's or directory's xattr list into out (store_xattrs_read_at). */
	int (*xattrs)(void *ctx, const char *path, struct strbuf *out);
};

/* A view of a plain directory tree (dirfd is borrowed). */
void store_view_dir(struct store_view *v, int *dirfd);

/* Read the state of path in a view; mode 0 when absent. With hash, regular files
 * and symlinks are hashed (and stored when put is set). */
enum store_entry_flags {
	STORE_ENTRY_HASH = 1 << 0,
	STORE_ENTRY_PUT = 1 << 1,
};
int store_entry_from_view(struct store *s, const struct store_view *v, const char *path,
			  unsigned flags, struct store_entry *ret);

/* Read the state of path below dirfd (PKG); optionally hash and store its content. */
int store_entry_at(struct store *s, int dirfd, const char *path, unsigned flags,
		   struct store_entry *ret);

/*
 * Read the state of path below dirfd (PKG) and stage its content (regular
 * file or symlink target) for transaction txn: *ret_staged says whether
 * there was content, *ret_off where it went (store_stage_fd). With
 * ret_xattrs, a file's or directory's xattr list too (marked known in ret).
 */
int store_entry_stage_at(struct store *s, int64_t txn, int dirfd, const char *path,
			 struct store_entry *ret, struct strbuf *ret_xattrs, bool *ret_staged,
			 uint64_t *ret_off);

/*
 * Extended attributes (xattrs.c). A list holds every attribute of a file
 * but the private ones (store_xattr_private: the overlay's own), sorted by
 * name: "name\0", the value's length (4 bytes, little-endian), the value.
 */
bool store_xattr_private(const char *name);
/*
 * The list of dirfd/name (not followed; name "" is dirfd's own object);
 * empty where the file system keeps none.
 */
int store_xattrs_read_at(int dirfd, const char *name, struct strbuf *out);
/* The same for a path below dirfd. */
int store_xattrs_read_below(int dirfd, const char *path, struct strbuf *out);
/*
 * The attribute of a list at *pos, which moves on to the next; false at the
 * end (or where the list is torn).
 */
bool store_xattrs_next(const char *list, size_t len, size_t *pos, const char **ret_name,
		       const char **ret_value, size_t *ret_size);
/* The value of name in a list (its size in *ret_size), or NULL; has: is it there? */
const char *store_xattrs_find(const char *list, size_t len, const char *name, size_t *ret_size);
bool store_xattrs_has(const char *list, size_t len, const char *name);
/*
 * Give dirfd/name (not followed) exactly the attributes of a list. Those
 * the file system or the caller's rights refuse are skipped (as a copy
 * skips them); running out of space or an I/O error is an error.
 */
int store_xattrs_apply_at(int dirfd, const char *name, const char *list, size_t len);
/* Are xattrs recorded for what e is (regular files and directories)? */
bool store_entry_keeps_xattrs(const struct store_entry *e);
/* Mark e's xattrs known, with the fingerprint of list. */
void store_entry_set_xattrs(struct store_entry *e, const struct strbuf *list);
/*
 * Read the xattrs of path (below dirfd, or in a view) into out and mark
 * them known in e, whose mode says what path is: only regular files and
 * directories have theirs recorded (out stays empty for the rest).
 */
int store_entry_xattrs_at(int dirfd, const char *path, struct store_entry *e, struct strbuf *out);
int store_entry_xattrs_from_view(const struct store_view *v, const char *path,
				 struct store_entry *e, struct strbuf *out);

/*
 * Compare an original with a new state: 'A' added, 'D' deleted, 'M' content,
 * type, mode, owner, target or xattrs changed, 0 if the same. Both must
 * carry hashes for regular files and symlinks (sizes are compared first);
 * xattrs are compared where both are known.
 */
char store_entry_compare(const struct store_entry *orig, const struct store_entry *now);

/* Does PKG's current state still match what the transaction recorded? */
bool store_entry_same_file(const struct store_entry *recorded, const struct store_entry *now);

/* ---- seal, conflicts, apply, recovery (apply.c, recover.c) ---- */

/*
 * Seal an OPEN transaction: for every touched path read its new state from
 * view (hashing and storing new contents), record it and the status, fill
 * the counters of *t, and move the transaction to SEALED. PKG is not touched.
 */
int store_txn_seal(struct store *s, struct store_txn *t, const struct store_view *view);

/*
 * Give a regular file just written (fd, also reachable as dirfd/name) the
 * rest of e: owner (with owner), e's xattr list (where e->has_xattrs),
 * mode and mtime, in the order that keeps each.
 */
int store_file_finish(int fd, int dirfd, const char *name, const struct store_entry *e,
		      const struct strbuf *xattrs, bool owner);
/*
 * Make e, a FIFO, socket or device node, as dirfd/name, by name and never
 * opened (opening a FIFO would wait for a writer), with e's mode, mtime
 * and (with owner) owner. A device node takes CAP_MKNOD.
 */
int store_special_at(int dirfd, const char *name, const struct store_entry *e, bool owner);

/*
 * Complete a recorded original from PKG (pkg_fd): the xattrs of a file or
 * directory and the device of a device node, which the daemon's record
 * does not carry. Only while PKG still holds that original (the mount
 * never writes PKG; a file changed there since is a conflict at commit):
 * otherwise they stay unknown.
 */
int store_change_orig_from_pkg(struct store *s, int pkg_fd, struct store_change *c);

struct store_conflict {
	char *path;
	const char *why; /* static: "changed in PKG", "created in PKG", "deleted in PKG" */
};

/*
 * Compare PKG (pkg_fd) with the originals of every changed path of a sealed
 * transaction. A path conflicts when PKG holds neither the original the
 * transaction started from nor the state the transaction would leave.
 * Returns the number of conflicts (0 = none) and the list in *ret.
 */
int store_txn_conflicts(struct store *s, int64_t txn, int pkg_fd, struct store_conflict **ret,
			size_t *ret_n);
void store_conflicts_free(struct store_conflict *c, size_t n);

/*
 * Open PKG of a transaction for applying: the directory at t->pkg, refused
 * (-ESTALE) unless it is still the directory the transaction was opened on.
 */
int store_txn_open_pkg(const struct store_txn *t);

/*
 * Committing a sealed change set into PKG (apply.c), in three steps around
 * the commit point:
 *
 *   store_txn_stage()    write every new file and symlink as a temporary
 *                        (".cjfs-tmp-<txn>-<row>") in a directory of PKG that
 *                        the transaction keeps, verifying each byte against
 *                        its SHA-256, then sync. PKG shows nothing new yet; on
 *                        failure (ENOSPC, EIO, a corrupt blob) every temporary
 *                        is removed and PKG is exactly as before.
 *   -- commit point: the transaction becomes COMMITTING (durably) --
 *   store_txn_promote()  remove what goes away (deepest first), create
 *                        directories (shallowest first), rename temporaries
 *                        into place, set directory modes, sync.
 *
 * With STORE_APPLY_REVERSE the same steps move PKG from the new state back to
 * the original one (temporaries ".cjfs-rev-..."): that undoes a promote that
 * failed half way, and later undoes committed transactions.
 * With STORE_APPLY_RECOVER, promote checks every path, re-stages from the
 * store what a crash lost, and is safe to run any number of times; stage
 * skips the paths that already hold their target state.
 */
enum store_apply_flags {
	STORE_APPLY_RECOVER = 1 << 0,
	STORE_APPLY_REVERSE = 1 << 1,
};

/*
 * Which content could not be written because its blob is corrupt (-EBADMSG)
 * or missing (-ENOENT): filled in by stage and promote when they fail so
 * (fail may be NULL), for the caller's one error line. Nothing of it was
 * written into PKG.
 */
struct store_apply_failure {
	int err;		/* 0, -EBADMSG or -ENOENT */
	bool original;		/* the blob is the original (an undo), not the new content */
	char path[PATH_MAX];	/* relative to PKG */
	uint8_t hash[HASH_LEN]; /* the blob */
};

int store_txn_stage(struct store *s, int64_t txn, int pkg_fd, unsigned flags,
		    struct store_apply_failure *fail);
int store_txn_promote(struct store *s, int64_t txn, int pkg_fd, unsigned flags,
		      struct store_apply_failure *fail);
/* Remove temporaries of both directions (missing ones are fine). */
int store_txn_unstage(struct store *s, int64_t txn, int pkg_fd);

/*
 * Which tree PKG holds now for a sealed change set, comparing every changed
 * path (content, type, permission bits; not durability): for the message
 * after an apply that failed and could not be undone. Reads only.
 */
enum store_pkg_state {
	STORE_PKG_OLD = 0,
	STORE_PKG_NEW = 1,
	STORE_PKG_MIXED = 2,
};
int store_txn_pkg_state(struct store *s, int64_t txn, int pkg_fd);

struct store_recover_report {
	size_t rolled_forward; /* COMMITTING transactions finished */
	size_t reopened;       /* SEALED transactions returned to OPEN */
	size_t cleaned;	       /* leftover directories and temporaries removed */
	size_t failed;	       /* transactions that could not be recovered now */
	size_t pkg_moved;      /* of failed: COMMITTING, PKG not where it was (-ESTALE) */
};

/*
 * Finish whatever a crash interrupted: roll COMMITTING transactions forward
 * (audit TXN_RECOVERED), return SEALED ones to OPEN after removing their
 * temporaries from PKG (SEALED undo and restore transactions become
 * ROLLED_BACK: they have no layer to reopen), remove the layers of
 * finished transactions and blob temporaries of dead processes. Safe to run
 * at any time and concurrently (transactions being worked on are skipped);
 * a crash during recovery is recovered by the next run. A COMMITTING
 * transaction whose PKG has moved (or another directory is in its place)
 * is not finished: it stays COMMITTING, counts as failed and pkg_moved, a
 * warning says to put PKG back and run `cjfs recover` again, and the
 * result is -ESTALE unless an earlier failure set it.
 */
int store_recover(struct store *s, struct store_recover_report *ret);

/*
 * Recover one transaction as store_recover() would (COMMITTING: roll
 * forward; SEALED: remove its temporaries and reopen), for a caller that
 * already holds its "finish" lock, such as a commit that finds the
 * transaction left so by a process that died. 1 if it did something, 0 if
 * the transaction needed nothing; -ESTALE (logged as an error) if it is
 * COMMITTING and its PKG has moved.
 */
int store_recover_txn(struct store *s, int64_t id);

/* 1 if some transaction needs recovery (SEALED or COMMITTING), 0 if not. */
int store_needs_recovery(struct store *s);

/* ---- the audit log (audit.c) ---- */

struct store_audit_event {
	int64_t id;
	int64_t time_ns;
	int64_t uid;
	int64_t pid;
	int64_t txn; /* 0 when the event is about the store, not one transaction */
	char *event;
	char *detail; /* may be NULL */
};

/*
 * Events in the order they were written, those at or after since_ns (0 = all)
 * and, with txn > 0, only that transaction's. Free with store_audit_free().
 */
int store_audit_list(struct store *s, int64_t since_ns, int64_t txn, struct store_audit_event **ret,
		     size_t *ret_n);
void store_audit_free(struct store_audit_event *v, size_t n);

/* ---- retention (gc.c) ---- */

/* Limits of the retention policy; a negative value means "no limit". */
struct store_gc_policy {
	int64_t keep_last;     /* keep only the newest N finished transactions */
	int64_t older_than_ns; /* drop finished transactions that finished longer ago */
	int64_t max_size;      /* drop the oldest until the blobs take at most this */
	int64_t grace_ns;      /* never delete blobs stored or reused more recently */
	bool dry_run;	       /* report only */
};

/* The defaults: no limits, one hour of grace (see docs/history.md). */
void store_gc_policy_init(struct store_gc_policy *p);

/*
 * Fill the limits the store's config file sets (gc.keep-last, gc.older-than,
 * gc.max-size, gc.grace), keeping p's values for keys it does not set.
 * -EINVAL for a malformed file; *ret_where (may be NULL) then gets a
 * malloc'd "config:LINE: message".
 */
int store_gc_policy_load(struct store *s, struct store_gc_policy *p, char **ret_where);

struct store_gc_dropped {
	int64_t id;
	const char *why; /* static: "keep-last", "older-than", "max-size" */
};

struct store_gc_report {
	struct store_gc_dropped *dropped; /* transactions dropped (or that would be), by id */
	size_t n_dropped;
	size_t blobs;	/* blobs deleted (or that would be) */
	uint64_t bytes; /* their stored bytes */
	size_t orphans; /* blob files without an index row, removed (or found) */
	size_t adopted; /* blob files without a row that the index refers to: indexed */
	uint64_t orphan_bytes;
	uint64_t size_before; /* stored bytes of all blobs in the index, before */
	uint64_t size_after;
};
void store_gc_report_release(struct store_gc_report *r);

/*
 * Apply the policy. Only finished transactions (committed, rolled back,
 * undone) are dropped; whatever an open, orphaned, sealed or committing
 * transaction refers to is never deleted. In one SQLite transaction: the
 * rows of the dropped transactions, the index rows of the blobs nothing
 * refers to any more (and not used within the grace period), and one
 * BACKUP_DELETED audit event per dropped transaction (plus one for blobs no
 * transaction referred to). Only then are the blob files deleted, each in a
 * SQLite write transaction that first checks no writer has re-created its
 * row. A crash at any point loses nothing still referenced: a blob file
 * whose row is gone is an orphan, and every gc removes orphans.
 */
int store_gc(struct store *s, const struct store_gc_policy *p, struct store_gc_report *ret);

/*
 * Only gc's last step, for `cjfs verify --repair`: blob files without an
 * index row are removed when nothing refers to them and indexed (after
 * verification) when something does. Counts go to rep (orphans, adopted).
 */
int store_gc_orphans(struct store *s, bool dry_run, struct store_gc_report *rep);

/* ---- statistics (stats.c) ---- */

struct store_stats {
	int64_t n_txn;
	int64_t n_txn_by_state[7]; /* indexed by enum store_txn_state */
	int64_t n_blobs;
	int64_t n_compressed;
	uint64_t logical;    /* bytes of every version the index refers to, as if stored apart */
	uint64_t unique;     /* bytes of distinct contents (after dedup, before compression) */
	uint64_t stored;     /* bytes of the blob files (after compression) */
	uint64_t disk_blobs; /* allocated on disk by objects/ (st_blocks) */
	uint64_t disk_index; /* index.db with its WAL */
	uint64_t disk_other; /* txn/ and tmp/ */
	int64_t n_audit;
};

/* Sizes and counts of the store; walks objects/ for the on-disk size. */
int store_stats_get(struct store *s, struct store_stats *ret);

/* ---- the config file (config.c) ---- */

/*
 * The store's config file, <store>/config: lines "key = value", '#' starts a
 * comment. Value of key as a malloc'd string in *ret, or NULL if not set.
 * -EINVAL for a malformed line (*ret_where as for store_gc_policy_load).
 */
int store_config_get(struct store *s, const char *key, char **ret, char **ret_where);

/* ---- integrity (verify.c) ---- */

enum store_verify_kind {
	/* Defects: bytes or references the store promised and cannot deliver. */
	STORE_VERIFY_CORRUPT, /* a blob whose content does not hash to its name */
	STORE_VERIFY_MISSING, /* the index refers to a blob that is not in objects/ */

	STORE_VERIFY_STRAY, /* a file in objects/ that is not named like a blob */
	STORE_VERIFY_INDEX, /* PRAGMA integrity_check reported a problem */
	/*
	 * Not a defect: a valid blob the blob table does not list. A process
	 * killed between publishing a blob and indexing it leaves one; nothing
	 * refers to it and gc may remove it.
	 */
	STORE_VERIFY_ORPHAN,
	/*
	 * Not a defect either: an intact blob the index refers to but the blob
	 * table does not list yet (same cause); seal and gc index it.
	 */
	STORE_VERIFY_DANGLING,
};

struct store_verify_issue {
	enum store_verify_kind kind;
	bool has_hash;
	uint8_t hash[HASH_LEN];
	char *path;   /* the file relative to the store ("objects/ab/<hash>"), or NULL */
	char *detail; /* what refers to it ("new content of 'a.c' in transaction 3"), or NULL */
};

struct store_verify_report {
	size_t blobs;	 /* blob files re-hashed */
	size_t rows;	 /* rows of the blob table */
	size_t refs;	 /* distinct hashes the change rows refer to */
	size_t defects;	 /* issues of the defect kinds */
	size_t warnings; /* orphans */
	struct store_verify_issue *issues;
	size_t n;
};

const char *store_verify_kind_name(enum store_verify_kind k);
/* Is a finding of this kind a defect (true), or a warning about an intact store (false)? */
bool store_verify_is_defect(enum store_verify_kind k);

/*
 * Check the whole store: re-hash every blob in objects/, check that every
 * hash the index refers to (blob rows, original and new contents of every
 * change) has an intact blob, list files in objects/ the index does not
 * know, and run PRAGMA integrity_check. Returns 0 when the check ran (the
 * findings are in *ret, to release with store_verify_release()) or -errno
 * when it could not run. With defects, appends a VERIFY_FAILED audit event.
 * Reads only; safe to run while other processes use the store.
 */
int store_verify(struct store *s, struct store_verify_report *ret);
void store_verify_release(struct store_verify_report *r);

#endif
