/* SPDX-License-Identifier: MIT */
/* Private to store/: the struct behind struct store and shared internals. */
#ifndef CJFS_STORE_STORE_INT_H
#define CJFS_STORE_STORE_INT_H

#include <pthread.h>

#include "db.h"
#include "store.h"

struct store {
	char *path;
	int dirfd;  /* the store directory */
	int objfd;  /* objects/ */
	int tmpfd;  /* tmp/ */
	int txnfd;  /* txn/ */
	unsigned long blksize; /* block size of the file system of objects/ */
	/* Recursive so that a batch can span several store calls; protects db. */
	pthread_mutex_t lock;
	struct db *db; /* protected by lock */
	int batch;     /* depth of store_batch_begin(); protected by lock */
};

void store_lock(struct store *s);
void store_unlock(struct store *s);

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

/* Relative name of a blob file below objects/: "ab/<hex>" or "ab/<hex>.zst"; 72 bytes. */
void store_blob_relname(const uint8_t hash[HASH_LEN], int encoding, char buf[72]);

#endif
