// SPDX-License-Identifier: MIT
/*
 * Extended attributes as part of a file's state: read into one canonical
 * list (so that two states compare by their bytes and a row of the index
 * can hold them), and set on a file so that it has exactly a list. POSIX
 * ACLs are xattrs too (system.posix_acl_access, system.posix_acl_default).
 *
 * The list: names in bytewise order, each "name\0", then its value's length
 * (4 bytes, little-endian), then the value. No *xattrat() calls before
 * Linux 6.13: an object is reached through its directory's /proc fd name,
 * never following a symlink there; name "" means dirfd's own object (an
 * O_PATH fd), reached by following its /proc link (the l*xattr() calls
 * would read the link's own attributes: none).
 */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "log.h"

bool store_xattr_private(const char *name)
{
	return strncmp(name, "trusted.overlay.", 16) == 0 ||
	       strncmp(name, "user.overlay.", 13) == 0;
}

static bool no_xattrs(int err)
{
	return err == ENOTSUP || err == ENODATA;
}

/* Where dirfd/name is for the xattr calls, and whether they follow it. */
struct xobj {
	char path[64 + NAME_MAX];
	bool follow;
};

static void xobj_at(struct xobj *o, int dirfd, const char *name)
{
	o->follow = !*name;
	if (o->follow)
		snprintf(o->path, sizeof(o->path), "/proc/self/fd/%d", dirfd);
	else
		snprintf(o->path, sizeof(o->path), "/proc/self/fd/%d/%s", dirfd, name);
}

static ssize_t x_list(const struct xobj *o, char *buf, size_t size)
{
	return o->follow ? listxattr(o->path, buf, size) : llistxattr(o->path, buf, size);
}

static ssize_t x_get(const struct xobj *o, const char *name, void *buf, size_t size)
{
	return o->follow ? getxattr(o->path, name, buf, size) : lgetxattr(o->path, name, buf, size);
}

static int x_set(const struct xobj *o, const char *name, const void *v, size_t size)
{
	return o->follow ? setxattr(o->path, name, v, size, 0)
			 : lsetxattr(o->path, name, v, size, 0);
}

static int x_remove(const struct xobj *o, const char *name)
{
	return o->follow ? removexattr(o->path, name) : lremovexattr(o->path, name);
}

/* The names of path's attributes (a "\0"-separated list); *ret_len 0 when none. */
static int list_names(const struct xobj *o, char **ret, size_t *ret_len)
{
	char *names = NULL;
	ssize_t n = 0;
	int r;

	for (int tries = 0; tries < 8; tries++) {
		char *nn;

		n = x_list(o, NULL, 0);
		if (n < 0)
			break;
		if (n == 0) {
			free(names);
			*ret = NULL;
			*ret_len = 0;
			return 0;
		}
		nn = realloc(names, (size_t)n);
		if (!nn) {
			free(names);
			return -ENOMEM;
		}
		names = nn;
		n = x_list(o, names, (size_t)n);
		if (n >= 0) {
			*ret = names;
			*ret_len = (size_t)n;
			return 0;
		}
		if (errno != ERANGE)
			break; /* ERANGE: it grew since we asked its size */
	}
	r = n < 0 ? -errno : -EAGAIN;
	free(names);
	if (no_xattrs(-r)) {
		*ret = NULL;
		*ret_len = 0;
		return 0;
	}
	return r;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted pointers to the names of a list, private ones left out. */
static int sort_names(char *names, size_t len, char ***ret, size_t *ret_n)
{
	char **v = NULL;
	size_t n = 0, cap = 0;

	for (size_t i = 0; i < len; i += strlen(names + i) + 1) {
		if (store_xattr_private(names + i) || !names[i])
			continue;
		if (n == cap) {
			char **nv = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));

			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = names + i;
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_name);
	*ret = v;
	*ret_n = n;
	return 0;
}

static int add_value(struct strbuf *out, const struct xobj *o, const char *name, char *buf)
{
	ssize_t n = x_get(o, name, buf, XATTR_SIZE_MAX);
	uint8_t len[4];

	if (n < 0)
		return errno == ENODATA ? 0 : -errno; /* removed since it was listed */
	len[0] = (uint8_t)n;
	len[1] = (uint8_t)(n >> 8);
	len[2] = (uint8_t)(n >> 16);
	len[3] = (uint8_t)(n >> 24);
	if (strbuf_add(out, name, strlen(name) + 1) < 0 || strbuf_add(out, len, 4) < 0 ||
	    strbuf_add(out, buf, (size_t)n) < 0)
		return -ENOMEM;
	return 0;
}

int store_xattrs_read_at(int dirfd, const char *name, struct strbuf *out)
{
	char *names = NULL, **v = NULL, *buf = NULL;
	struct xobj o;
	size_t len, n = 0;
	int r;

	strbuf_reset(out);
	xobj_at(&o, dirfd, name);
	r = list_names(&o, &names, &len);
	if (r < 0 || len == 0)
		return r;
	r = sort_names(names, len, &v, &n);
	if (r < 0)
		goto out;
	buf = n ? malloc(XATTR_SIZE_MAX) : NULL;
	if (n && !buf) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n && r == 0; i++)
		r = add_value(out, &o, v[i], buf);
out:
	if (r < 0)
		strbuf_reset(out);
	free(buf);
	free(v);
	free(names);
	return r;
}

bool store_xattrs_next(const char *list, size_t len, size_t *pos, const char **ret_name,
		       const char **ret_value, size_t *ret_size)
{
	const char *name = list + *pos, *end;
	const uint8_t *l;
	size_t size;

	if (*pos >= len)
		return false;
	end = memchr(name, '\0', len - *pos);
	if (!end || (size_t)(end + 1 + 4 - list) > len)
		return false;
	l = (const uint8_t *)end + 1;
	size = (size_t)l[0] | (size_t)l[1] << 8 | (size_t)l[2] << 16 | (size_t)l[3] << 24;
	if (size > len - (size_t)(end + 1 + 4 - list))
		return false;
	*ret_name = name;
	*ret_value = end + 1 + 4;
	*ret_size = size;
	*pos = (size_t)(end + 1 + 4 - list) + size;
	return true;
}

const char *store_xattrs_find(const char *list, size_t len, const char *name, size_t *ret_size)
{
	const char *n, *value;
	size_t pos = 0;

	while (store_xattrs_next(list, len, &pos, &n, &value, ret_size))
		if (strcmp(n, name) == 0)
			return value;
	return NULL;
}

bool store_xattrs_has(const char *list, size_t len, const char *name)
{
	size_t size;

	return store_xattrs_find(list, len, name, &size) != NULL;
}

/* Errors that mean the attribute cannot be where the commit puts it, as opposed to a refusal. */
static bool fatal(int err)
{
	return err == ENOSPC || err == EDQUOT || err == EIO || err == ENOMEM;
}

int store_xattrs_apply_at(int dirfd, const char *name, const char *list, size_t len)
{
	char *names = NULL, **v = NULL;
	const char *an, *value;
	size_t nlen, n = 0, pos = 0, size;
	struct xobj o;
	int r;

	xobj_at(&o, dirfd, name);
	/* What is there and not in the list goes (an inherited default ACL, say). */
	r = list_names(&o, &names, &nlen);
	if (r == 0)
		r = sort_names(names, nlen, &v, &n);
	for (size_t i = 0; i < n && r == 0; i++) {
		if (store_xattrs_has(list, len, v[i]))
			continue;
		if (x_remove(&o, v[i]) < 0 && errno != ENODATA) {
			if (fatal(errno))
				r = -errno;
			else
				log_debug("cannot remove the attribute '%s' of '%s': %s", v[i],
					  name, strerror(errno));
		}
	}
	free(v);
	free(names);
	while (r == 0 && store_xattrs_next(list, len, &pos, &an, &value, &size)) {
		if (x_set(&o, an, value, size) == 0)
			continue;
		/* Refused (a name this file system or this user may not set): as a copy would. */
		if (fatal(errno))
			r = -errno;
		else
			log_debug("cannot set the attribute '%s' of '%s': %s", an, name,
				  strerror(errno));
	}
	return r;
}

void store_entry_set_xattrs(struct store_entry *e, const struct strbuf *list)
{
	e->has_xattrs = true;
	memset(e->xattrs, 0, sizeof(e->xattrs));
	/* hash_buf fails only without memory: then two lists compare as different. */
	if (list->len && hash_buf(list->buf, list->len, e->xattrs) < 0)
		memset(e->xattrs, 0xff, sizeof(e->xattrs));
}

bool store_entry_keeps_xattrs(const struct store_entry *e)
{
	return S_ISREG(e->mode) || S_ISDIR(e->mode);
}

int store_xattrs_read_below(int dirfd, const char *path, struct strbuf *out)
{
	const char *base;
	int pfd = util_open_parent(dirfd, path, &base);
	int r;

	strbuf_reset(out);
	if (pfd < 0)
		return pfd;
	r = store_xattrs_read_at(pfd, base, out);
	util_close(pfd);
	return r;
}

int store_entry_xattrs_at(int dirfd, const char *path, struct store_entry *e, struct strbuf *out)
{
	int r;

	strbuf_reset(out);
	if (!store_entry_keeps_xattrs(e))
		return 0;
	r = store_xattrs_read_below(dirfd, path, out);
	if (r == 0)
		store_entry_set_xattrs(e, out);
	return r;
}

int store_entry_xattrs_from_view(const struct store_view *v, const char *path,
				 struct store_entry *e, struct strbuf *out)
{
	int r;

	strbuf_reset(out);
	if (!store_entry_keeps_xattrs(e) || !v->xattrs)
		return 0;
	r = v->xattrs(v->ctx, path, out);
	if (r == 0)
		store_entry_set_xattrs(e, out);
	return r;
}
