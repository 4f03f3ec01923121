/* SPDX-License-Identifier: MIT */
/* Private to store/: the struct behind struct store and shared internals. */
#ifndef CJFS_STORE_STORE_INT_H
#define CJFS_STORE_STORE_INT_H

#include <pthread.h>

#include "db.h"
#include "store.h"

struct store {
	char *path;
	int dirfd;	       /* the store directory */
	int objfd;	       /* objects/ */
	int tmpfd;	       /* tmp/ */
	int txnfd;	       /* txn/ */
	unsigned long blksize; /* block size of the file system of objects/ */
	/* Recursive so that a batch can span several store calls; protects db. */
	pthread_mutex_t lock;
	struct db *db; /* protected by lock */
	int batch;     /* depth of store_batch_begin(); protected by lock */
	bool durable;  /* the outermost batch commits with synchronous=FULL; protected by lock */

	/* The staging file originals are appended to (stage.c); protected by stage_lock. */
	pthread_mutex_t stage_lock;
	int stage_fd; /* txn/<stage_txn>/originals, opened on first use, or -1 */
	int64_t stage_txn;
	uint64_t stage_end; /* where the next original goes */

	/* The change log the daemon appends to (changelog.c); protected by changelog_lock. */
	pthread_mutex_t changelog_lock;
	int changelog_fd; /* txn/<changelog_txn>/changes, from store_changelog_begin(), or -1 */
	int64_t changelog_txn;
	uint64_t changelog_end;	   /* where the next record goes */
	unsigned changelog_pending; /* records appended since the last fold */
	bool changelog_broken;	   /* a failed append left bytes that could not be cut off */

	/*
	 * Blobs written but not yet published (blob.c): between
	 * store_put_defer() and store_put_publish() puts from every thread
	 * queue here, and are published in one SQLite transaction.
	 */
	pthread_mutex_t defer_lock;
	bool defer;			  /* protected by defer_lock */
	struct store_pending_blob *pending; /* protected by defer_lock */
	size_t n_pending, cap_pending;
};

void store_lock(struct store *s);

/*
 * Insert the change row of path (unless it has one) and, with staged, the
 * location of its original in the staging file (txn.c); caller holds
 * s->lock inside a batch.
 */
int store_change_insert_locked(struct store *s, int64_t txn, const char *path,
			       const struct store_entry *orig, const struct strbuf *xattrs,
			       bool staged, uint64_t off);

void store_unlock(struct store *s);

/*
 * Queue the blobs that puts write from now on instead of publishing each in
 * a SQLite transaction of its own, until store_put_publish() publishes them
 * all in one and returns 0 or -errno. It must be called, also after the loop
 * that put them failed: given that -errno as failed, it drops them and
 * returns it.
 * For the parallel loops of a commit, whose thousands of small blobs would
 * otherwise cost a SQLite commit each; nothing may read a queued blob.
 */
void store_put_defer(struct store *s);
int store_put_publish(struct store *s, int failed);

/*
 * Append an audit event (audit.c). Must run inside the same SQLite
 * transaction as the change it records; caller holds s->lock.
 */
int store_audit_locked(struct store *s, int64_t txn, const char *event, const char *detail);

/*
 * How stale a blob's used_ns may be: a writer reusing a blob leaves a row
 * used this recently as it is. gc's grace period must be longer than this
 * plus the longest gap between storing a blob and writing the row that
 * refers to it.
 */
#define STORE_BLOB_USED_SLACK_NS (10LL * 1000000000LL)

/*
 * Insert the index row of a blob, or refresh its use time, size on disk and
 * encoding (blob.c); caller holds s->lock inside a batch.
 */
int store_blob_upsert_locked(struct store *s, const uint8_t hash[HASH_LEN], uint64_t size,
			     uint64_t stored_size, int encoding);

/*
 * Stream the staged original with this hash (any transaction) into a sink
 * function, verifying it (stage.c): -ENOENT if nothing is staged under it,
 * -EBADMSG if its bytes do not hash to it. Returns the size.
 */
typedef int (*store_sink_fn)(void *ctx, const void *data, size_t n);
int64_t store_stage_read(struct store *s, const uint8_t hash[HASH_LEN], store_sink_fn sink,
			 void *ctx);

/*
 * Write size bytes of fd from offset off into a blob (blob.c), as
 * store_put_fd does with a whole file; -EBADMSG if they do not hash to
 * want (when want is not NULL).
 */
int store_put_range(struct store *s, int fd, off_t off, uint64_t size,
		    const uint8_t want[HASH_LEN]);

/*
 * Make sure a blob that has a file also has its index row: a writer killed
 * between publishing the file and committing the row leaves a file without
 * one, which gc would take for an orphan. Verifies the file first (-EBADMSG
 * if corrupt: it is then removed, so that the content can be stored again).
 * 0 with the row present, -ENOENT if there is no file either.
 */
int store_blob_adopt(struct store *s, const uint8_t hash[HASH_LEN]);

/* Relative name of a blob file below objects/: "ab/<hex>" or "ab/<hex>.zst"; 72 bytes. */
void store_blob_relname(const uint8_t hash[HASH_LEN], int encoding, char buf[72]);

#endif
