// SPDX-License-Identifier: MIT
/*
 * The upper-layer encoding (whiteouts, opaque and origin markers, escaped
 * names) and the merged-tree lookup, shared by the daemon and by the offline
 * view that seal and status use when no mount is up.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"

#define WH_SHORT LAYER_PREFIX "wh."
#define WH_LONG LAYER_PREFIX "wH."
#define ESCAPE LAYER_PREFIX "u."
#define WH_PREFIX_LEN 9

static bool has_prefix(const char *name)
{
	return strncmp(name, LAYER_PREFIX, LAYER_PREFIX_LEN) == 0;
}

int layer_encode(const char *name, char buf[NAME_MAX + 1], const char **ret)
{
	size_t n = strlen(name);

	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	if (!has_prefix(name)) {
		*ret = name;
		return 0;
	}
	if (n + strlen(ESCAPE) > NAME_MAX)
		return -ENAMETOOLONG;
	snprintf(buf, NAME_MAX + 1, "%s%s", ESCAPE, name);
	*ret = buf;
	return 0;
}

const char *layer_decode(const char *uname)
{
	if (!has_prefix(uname))
		return uname;
	if (strncmp(uname, ESCAPE, strlen(ESCAPE)) == 0)
		return uname + strlen(ESCAPE);
	return NULL;
}

void layer_whiteout_name(const char *name, char buf[NAME_MAX + 1])
{
	size_t n = strlen(name);

	if (n + WH_PREFIX_LEN <= NAME_MAX) {
		snprintf(buf, NAME_MAX + 1, "%s%s", WH_SHORT, name);
	} else {
		uint8_t h[HASH_LEN];
		char hex[HASH_HEX_LEN + 1];

		/* A 255-byte name cannot carry a prefix: name the marker by its hash. */
		if (hash_buf(name, n, h) < 0)
			memset(h, 0, sizeof(h));
		hash_to_hex(h, hex);
		snprintf(buf, NAME_MAX + 1, "%s%s", WH_LONG, hex);
	}
}

bool layer_is_whiteout(const char *uname, const char **ret_key)
{
	if (strncmp(uname, WH_SHORT, WH_PREFIX_LEN) == 0) {
		*ret_key = uname + WH_PREFIX_LEN;
		return true;
	}
	if (strncmp(uname, WH_LONG, WH_PREFIX_LEN) == 0) {
		*ret_key = uname; /* long names are keyed by the whole marker name */
		return true;
	}
	return false;
}

const char *layer_whiteout_key(const char *name, char buf[NAME_MAX + 1])
{
	if (strlen(name) + WH_PREFIX_LEN <= NAME_MAX)
		return name;
	layer_whiteout_name(name, buf);
	return buf;
}

int layer_has_whiteout(int upper_dirfd, const char *name)
{
	char wh[NAME_MAX + 1];
	struct stat st;

	layer_whiteout_name(name, wh);
	if (fstatat(upper_dirfd, wh, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 1;
	return errno == ENOENT ? 0 : -errno;
}

static int create_marker(int dirfd, const char *name, const void *data, size_t n)
{
	char tmp[NAME_MAX + 1];
	int fd, r;

	if (!data) {
		fd = util_openat(dirfd, name, O_WRONLY | O_CREAT | O_NOFOLLOW, 0600);
		if (fd < 0)
			return fd;
		util_close(fd);
		return 0;
	}
	/* Markers with content appear whole or not at all. */
	snprintf(tmp, sizeof(tmp), "%snew.%ld", LAYER_PREFIX, (long)gettid());
	fd = util_openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fd;
	r = util_write_full(fd, data, n);
	util_close(fd);
	if (r == 0)
		r = renameat(dirfd, tmp, dirfd, name) < 0 ? -errno : 0;
	if (r < 0)
		(void)unlinkat(dirfd, tmp, 0);
	return r;
}

int layer_set_whiteout(int upper_dirfd, const char *name)
{
	char wh[NAME_MAX + 1];

	layer_whiteout_name(name, wh);
	return create_marker(upper_dirfd, wh, NULL, 0);
}

int layer_clear_whiteout(int upper_dirfd, const char *name)
{
	char wh[NAME_MAX + 1];

	layer_whiteout_name(name, wh);
	if (unlinkat(upper_dirfd, wh, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int layer_set_opaque(int upper_dirfd)
{
	if (unlinkat(upper_dirfd, LAYER_ORIGIN, 0) < 0 && errno != ENOENT)
		return -errno;
	return create_marker(upper_dirfd, LAYER_OPAQUE, NULL, 0);
}

int layer_set_origin(int upper_dirfd, const char *lower_path)
{
	int r = create_marker(upper_dirfd, LAYER_ORIGIN, lower_path, strlen(lower_path));

	if (r == 0 && unlinkat(upper_dirfd, LAYER_OPAQUE, 0) < 0 && errno != ENOENT)
		r = -errno;
	return r;
}

int layer_clear_markers(int upper_dirfd)
{
	if (unlinkat(upper_dirfd, LAYER_OPAQUE, 0) < 0 && errno != ENOENT)
		return -errno;
	if (unlinkat(upper_dirfd, LAYER_ORIGIN, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int layer_read_dirinfo(int upper_dirfd, bool *ret_opaque, struct strbuf *origin)
{
	struct stat st;
	int fd, r;

	*ret_opaque = fstatat(upper_dirfd, LAYER_OPAQUE, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (*ret_opaque)
		return 0;
	if (errno != ENOENT)
		return -errno;
	fd = util_openat(upper_dirfd, LAYER_ORIGIN, O_RDONLY | O_NOFOLLOW, 0);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = strbuf_grow(origin, 0); /* an empty origin (the lower root) is still an origin */
	if (r == 0)
		r = strbuf_read_fd(origin, fd, PATH_MAX);
	util_close(fd);
	if (r == 0 && origin->len && !util_path_is_safe(origin->buf))
		r = -EUCLEAN; /* a damaged marker must not send us outside PKG */
	return r;
}

int layer_lookup_probe(int upper_dirfd, int lower_dirfd, const char *name, struct stat *st,
		       enum layer_where *ret, struct layer_probe *probe)
{
	struct layer_probe p = { .lower = -1, .whiteout = -1 };
	int r = 0, wh;

	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	*ret = LAYER_NONE;
	if (upper_dirfd >= 0) {
		char buf[NAME_MAX + 1];
		const char *uname;

		r = layer_encode(name, buf, &uname);
		if (r < 0)
			return r;
		if (fstatat(upper_dirfd, uname, st, AT_SYMLINK_NOFOLLOW) == 0) {
			*ret = LAYER_UPPER;
			goto out;
		}
		if (errno != ENOENT)
			return -errno;
	}
	if (lower_dirfd < 0) {
		p.lower = 0;
		goto out;
	}
	/*
	 * The lower name before its whiteout: a name in neither layer (every
	 * file a tool creates) costs two lookups, not three.
	 */
	if (fstatat(lower_dirfd, name, st, AT_SYMLINK_NOFOLLOW) == 0) {
		p.lower = 1;
		*ret = LAYER_LOWER;
	} else if (errno == ENOENT || errno == ENOTDIR) {
		p.lower = 0;
		goto out;
	} else {
		r = -errno; /* unless a whiteout hides the name anyway */
	}
	if (upper_dirfd < 0) {
		p.whiteout = 0;
		goto out;
	}
	wh = layer_has_whiteout(upper_dirfd, name);
	if (wh < 0)
		return wh;
	p.whiteout = (signed char)wh;
	if (wh) {
		*ret = LAYER_NONE;
		r = 0;
	}
out:
	if (r == 0 && probe)
		*probe = p;
	return r;
}

int layer_lookup(int upper_dirfd, int lower_dirfd, const char *name, struct stat *st,
		 enum layer_where *ret)
{
	return layer_lookup_probe(upper_dirfd, lower_dirfd, name, st, ret, NULL);
}

int layer_open_dir(int lower_root, int upper_dirfd, int lower_dirfd, const char *name,
		   enum layer_where where, int *ret_upper, int *ret_lower)
{
	struct strbuf origin = STRBUF_INIT;
	int ufd = -1, lfd = -1, r = 0;
	bool opaque = false;

	if (where == LAYER_UPPER) {
		char buf[NAME_MAX + 1];
		const char *uname;

		r = layer_encode(name, buf, &uname);
		if (r < 0)
			return r;
		ufd = util_openat(upper_dirfd, uname, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		if (ufd < 0)
			return ufd;
		r = layer_read_dirinfo(ufd, &opaque, &origin);
		if (r < 0)
			goto out;
	}
	if (opaque) {
		lfd = -1;
	} else if (origin.buf) {
		lfd = origin.len
			      ? util_open_beneath(lower_root, origin.buf, O_PATH | O_DIRECTORY, 0)
			      : util_openat(lower_root, ".", O_PATH | O_DIRECTORY, 0);
		if (lfd == -ENOENT || lfd == -ENOTDIR || lfd == -ELOOP)
			lfd = -1; /* PKG changed under us: show the upper part alone */
	} else if (lower_dirfd >= 0) {
		lfd = util_openat(lower_dirfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		if (lfd == -ENOENT || lfd == -ENOTDIR || lfd == -ELOOP)
			lfd = -1;
	}
	if (lfd < -1) {
		r = lfd;
		goto out;
	}
	*ret_upper = ufd;
	*ret_lower = lfd;
	ufd = -1;
out:
	util_close(ufd);
	strbuf_release(&origin);
	return r;
}

/* ---- the offline view ---- */

/*
 * Seal and status read every changed path through this view, in path order,
 * on every CPU: the directories they were last found in are kept open
 * (LAYER_DIRS of them, least recently used first out), so a file costs its
 * own lookup, not a walk from both roots that opens every directory above it
 * and reads its markers (~20 system calls a file before). Nothing changes
 * the layers while a view is in use (no mount is up), so what was resolved
 * stays right.
 */
#define LAYER_DIRS 32

struct layer_dir {
	char *path; /* the directory, relative to the roots; NULL: free slot */
	size_t len;
	int u, lo;     /* its upper and lower parts, -1 when absent */
	uint64_t used; /* atomic: l->tick when last used */
};

struct fs_layer {
	int lower_fd;
	int upper_fd;
	struct store_view view;
	pthread_rwlock_t lock; /* over dirs: read to use one, write to replace one */
	struct layer_dir dirs[LAYER_DIRS];
	uint64_t tick; /* atomic */
};

/* What a view operation does with the object it found (NULL: nothing more). */
typedef int (*layer_fn)(int dirfd, const char *name, void *arg);

/* Resolve the directory containing path: its upper and lower fds (either may be -1). */
static int layer_resolve_parent(struct fs_layer *l, const char *path, int *ret_u, int *ret_l)
{
	int u = util_openat(l->upper_fd, ".", O_PATH | O_DIRECTORY, 0);
	int lo = util_openat(l->lower_fd, ".", O_PATH | O_DIRECTORY, 0);
	char comp[NAME_MAX + 1];
	const char *p = path;
	int r = 0;

	if (u < 0 || lo < 0) {
		r = u < 0 ? u : lo;
		goto out;
	}
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		enum layer_where where;
		struct stat st;
		int nu = -1, nl = -1;

		if (n == 0 || n > NAME_MAX) {
			r = n ? -ENAMETOOLONG : -EINVAL;
			goto out;
		}
		if (!slash)
			break;
		memcpy(comp, p, n);
		comp[n] = '\0';
		r = layer_lookup(u, lo, comp, &st, &where);
		if (r < 0)
			goto out;
		if (where == LAYER_NONE) {
			r = -ENOENT;
			goto out;
		}
		if (!S_ISDIR(st.st_mode)) {
			r = -ENOTDIR;
			goto out;
		}
		r = layer_open_dir(l->lower_fd, u, lo, comp, where, &nu, &nl);
		if (r < 0)
			goto out;
		util_close(u);
		util_close(lo);
		u = nu;
		lo = nl;
		p = slash + 1;
	}
	*ret_u = u;
	*ret_l = lo;
	return 0;
out:
	util_close(u);
	util_close(lo);
	return r;
}

/* Look name up in the directory (u, lo) and run fn on it in the layer that has it. */
static int layer_found(int u, int lo, const char *name, struct stat *st, layer_fn fn, void *arg)
{
	char buf[NAME_MAX + 1];
	enum layer_where where;
	const char *uname;
	int r = layer_lookup(u, lo, name, st, &where);

	if (r == 0 && where == LAYER_NONE)
		r = -ENOENT;
	if (r < 0 || !fn)
		return r;
	if (where == LAYER_LOWER)
		return fn(lo, name, arg);
	r = layer_encode(name, buf, &uname);
	return r < 0 ? r : fn(u, uname, arg);
}

/* The kept directory path[0, len), or NULL; caller holds l->lock. */
static struct layer_dir *layer_dir_find(struct fs_layer *l, const char *path, size_t len)
{
	for (size_t i = 0; i < LAYER_DIRS; i++) {
		struct layer_dir *d = &l->dirs[i];

		if (d->path && d->len == len && memcmp(d->path, path, len) == 0)
			return d;
	}
	return NULL;
}

static void layer_dir_drop(struct layer_dir *d)
{
	free(d->path);
	d->path = NULL;
	util_close(d->u);
	util_close(d->lo);
	d->u = d->lo = -1;
}

/* Keep (u, lo) as directory path[0, len), in place of the least recently used; owns them. */
static void layer_dir_keep(struct fs_layer *l, const char *path, size_t len, int u, int lo)
{
	struct layer_dir *d, *victim = &l->dirs[0];
	char *copy = strndup(path, len);

	pthread_rwlock_wrlock(&l->lock);
	if (!copy || layer_dir_find(l, path, len)) {
		pthread_rwlock_unlock(&l->lock);
		free(copy);
		util_close(u);
		util_close(lo);
		return;
	}
	for (size_t i = 0; i < LAYER_DIRS; i++) {
		d = &l->dirs[i];
		if (!d->path) {
			victim = d;
			break;
		}
		if (d->used < victim->used)
			victim = d;
	}
	layer_dir_drop(victim);
	victim->path = copy;
	victim->len = len;
	victim->u = u;
	victim->lo = lo;
	victim->used = __atomic_add_fetch(&l->tick, 1, __ATOMIC_RELAXED);
	pthread_rwlock_unlock(&l->lock);
}

/* Find path's object (its attributes in *st) and run fn on it; fn's result. */
static int layer_with(struct fs_layer *l, const char *path, struct stat *st, layer_fn fn, void *arg)
{
	const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
	size_t len = slash ? (size_t)(slash - path) : 0;
	struct layer_dir *d;
	int u, lo, r;

	if (*base == '\0' || (slash && len == 0))
		return -EINVAL;
	pthread_rwlock_rdlock(&l->lock);
	d = slash ? layer_dir_find(l, path, len) : NULL;
	if (!slash || d) {
		if (d)
			__atomic_store_n(&d->used,
					 __atomic_add_fetch(&l->tick, 1, __ATOMIC_RELAXED),
					 __ATOMIC_RELAXED);
		r = layer_found(d ? d->u : l->upper_fd, d ? d->lo : l->lower_fd, base, st, fn, arg);
		pthread_rwlock_unlock(&l->lock);
		return r;
	}
	pthread_rwlock_unlock(&l->lock);
	r = layer_resolve_parent(l, path, &u, &lo);
	if (r < 0)
		return r;
	r = layer_found(u, lo, base, st, fn, arg);
	layer_dir_keep(l, path, len, u, lo);
	return r;
}

static int lview_lstat(void *ctx, const char *path, struct stat *st)
{
	return layer_with(ctx, path, st, NULL, NULL);
}

static int open_fn(int dirfd, const char *name, void *arg)
{
	(void)arg;
	return util_openat_noatime(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
}

static int lview_open(void *ctx, const char *path)
{
	struct stat st;

	return layer_with(ctx, path, &st, open_fn, NULL);
}

static int readlink_fn(int dirfd, const char *name, void *arg)
{
	char target[PATH_MAX];
	ssize_t n = readlinkat(dirfd, name, target, sizeof(target));

	if (n < 0)
		return -errno;
	if ((size_t)n >= sizeof(target))
		return -ENAMETOOLONG;
	return strbuf_add(arg, target, (size_t)n);
}

static int lview_readlink(void *ctx, const char *path, struct strbuf *out)
{
	struct stat st;

	return layer_with(ctx, path, &st, readlink_fn, out);
}

static int xattrs_fn(int dirfd, const char *name, void *arg)
{
	return store_xattrs_read_at(dirfd, name, arg);
}

static int lview_xattrs(void *ctx, const char *path, struct strbuf *out)
{
	struct stat st;

	strbuf_reset(out);
	return layer_with(ctx, path, &st, xattrs_fn, out);
}

int fs_layer_new(int lower_fd, int upper_fd, struct fs_layer **ret)
{
	struct fs_layer *l = calloc(1, sizeof(*l));

	if (!l)
		return -ENOMEM;
	l->lower_fd = lower_fd;
	l->upper_fd = upper_fd;
	l->view.ctx = l;
	l->view.lstat = lview_lstat;
	l->view.open = lview_open;
	l->view.readlink = lview_readlink;
	l->view.xattrs = lview_xattrs;
	pthread_rwlock_init(&l->lock, NULL);
	for (size_t i = 0; i < LAYER_DIRS; i++)
		l->dirs[i].u = l->dirs[i].lo = -1;
	*ret = l;
	return 0;
}

void fs_layer_free(struct fs_layer *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < LAYER_DIRS; i++)
		layer_dir_drop(&l->dirs[i]);
	pthread_rwlock_destroy(&l->lock);
	free(l);
}

void fs_layer_view(struct fs_layer *l, struct store_view *ret)
{
	*ret = l->view;
}
