// SPDX-License-Identifier: MIT
/* SHA-256 digests via OpenSSL 3 EVP with a provider implementation fetched once. */
#include "hash.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static EVP_MD *hash_md;
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void hash_fetch(void)
{
	/* An explicit fetch avoids a provider lookup on every EVP_DigestInit_ex. */
	hash_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int hash_global_init(void)
{
	pthread_once(&hash_once, hash_fetch);
	return hash_md ? 0 : -EIO;
}

int hash_init(struct hash_ctx *h)
{
	EVP_MD_CTX *c;

	h->md_ctx = NULL;
	if (hash_global_init() < 0)
		return -EIO;
	c = EVP_MD_CTX_new();
	if (!c)
		return -ENOMEM;
	if (EVP_DigestInit_ex(c, hash_md, NULL) != 1) {
		EVP_MD_CTX_free(c);
		return -EIO;
	}
	h->md_ctx = c;
	return 0;
}

int hash_update(struct hash_ctx *h, const void *data, size_t n)
{
	if (n == 0)
		return 0;
	return EVP_DigestUpdate(h->md_ctx, data, n) == 1 ? 0 : -EIO;
}

int hash_final(struct hash_ctx *h, uint8_t ret[HASH_LEN])
{
	unsigned int len = 0;
	int r = EVP_DigestFinal_ex(h->md_ctx, ret, &len) == 1 && len == HASH_LEN ? 0 : -EIO;

	hash_release(h);
	return r;
}

void hash_release(struct hash_ctx *h)
{
	EVP_MD_CTX_free(h->md_ctx);
	h->md_ctx = NULL;
}

int hash_buf(const void *data, size_t n, uint8_t ret[HASH_LEN])
{
	struct hash_ctx h;
	int r = hash_init(&h);

	if (r < 0)
		return r;
	r = hash_update(&h, data, n);
	if (r < 0) {
		hash_release(&h);
		return r;
	}
	return hash_final(&h, ret);
}

int hash_fd(int fd, uint8_t ret[HASH_LEN], uint64_t *ret_size)
{
	static __thread char buf[128 * 1024];
	struct hash_ctx h;
	uint64_t total = 0;
	int r = hash_init(&h);

	if (r < 0)
		return r;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		r = hash_update(&h, buf, (size_t)n);
		if (r < 0)
			break;
		total += (uint64_t)n;
	}
	if (r < 0) {
		hash_release(&h);
		return r;
	}
	r = hash_final(&h, ret);
	if (r == 0 && ret_size)
		*ret_size = total;
	return r;
}

void hash_to_hex(const uint8_t h[HASH_LEN], char out[HASH_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < HASH_LEN; i++) {
		out[2 * i] = digits[h[i] >> 4];
		out[2 * i + 1] = digits[h[i] & 15];
	}
	out[HASH_HEX_LEN] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int hash_from_hex(const char *s, uint8_t ret[HASH_LEN])
{
	uint8_t out[HASH_LEN];

	if (!s || strlen(s) != HASH_HEX_LEN)
		return -EINVAL;
	for (int i = 0; i < HASH_LEN; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	memcpy(ret, out, HASH_LEN);
	return 0;
}
