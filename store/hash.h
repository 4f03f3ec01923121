/* SPDX-License-Identifier: MIT */
/* SHA-256 through OpenSSL EVP; the EVP_MD is fetched once per process. */
#ifndef CJFS_STORE_HASH_H
#define CJFS_STORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_LEN 32
#define HASH_HEX_LEN 64

struct hash_ctx {
	void *md_ctx; /* EVP_MD_CTX *, kept opaque so callers need no OpenSSL headers */
};

/* Fetch the SHA-256 implementation once; 0 or -EIO. Called by store_open(). */
int hash_global_init(void);

/* Start a digest. 0, -ENOMEM or -EIO. On failure nothing needs releasing. */
int hash_init(struct hash_ctx *h);
int hash_update(struct hash_ctx *h, const void *data, size_t n);
/* Finish into ret and release the context. */
int hash_final(struct hash_ctx *h, uint8_t ret[HASH_LEN]);
/* Release without finishing; safe on a zeroed or finished context. */
void hash_release(struct hash_ctx *h);

int hash_buf(const void *data, size_t n, uint8_t ret[HASH_LEN]);
/* Hash fd from its current offset to EOF; ret_size gets the byte count. */
int hash_fd(int fd, uint8_t ret[HASH_LEN], uint64_t *ret_size);

void hash_to_hex(const uint8_t h[HASH_LEN], char out[HASH_HEX_LEN + 1]);
/* 0, or -EINVAL unless s is exactly 64 lowercase hex digits. */
int hash_from_hex(const char *s, uint8_t ret[HASH_LEN]);

#endif
