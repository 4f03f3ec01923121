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

/* Insert the index row of a blob (blob.c); caller holds s->lock. */
int store_blob_row_locked(struct store *s, const uint8_t hash[HASH_LEN], uint64_t size,
			  uint64_t stored_size, int encoding);

#endif
