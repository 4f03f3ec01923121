// SPDX-License-Identifier: MIT
/*
 * Directory listings. A directory is listed whole when a reader starts (or
 * rewinds) it: upper entries win, markers and whited-out names are hidden.
 * The listing is kept while the reader walks through it and served by
 * positions derived from the names, so no open-directory handle is needed:
 * the kernel is told OPENDIR is not implemented and sends neither it nor
 * RELEASEDIR again (two round trips per directory walked).
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

void fs_dirents_free(struct fs_dirent *v, size_t n)
{
	for (size_t i = 0; i < n && v; i++)
		free(v[i].name);
	free(v);
}

static int push(struct fs_dirent **v, size_t *n, size_t *cap, const char *name, uint64_t ino,
		unsigned char type)
{
	if (*n == *cap) {
		struct fs_dirent *nv = realloc(*v, (*cap = *cap ? *cap * 2 : 64) * sizeof(**v));

		if (!nv)
			return -ENOMEM;
		*v = nv;
	}
	(*v)[*n].name = strdup(name);
	if (!(*v)[*n].name)
		return -ENOMEM;
	(*v)[*n].ino = ino;
	(*v)[*n].type = type;
	(*n)++;
	return 0;
}

static unsigned char entry_type(DIR *d, const struct dirent *de)
{
	struct stat st;

	if (de->d_type != DT_UNKNOWN)
		return de->d_type;
	if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return DT_UNKNOWN;
	return (unsigned char)(IFTODT(st.st_mode));
}

int fs_list_merged(struct fs *fs, int upper_fd, int lower_fd, struct fs_dirent **ret, size_t *ret_n)
{
	struct strset seen = STRSET_INIT;
	/*
	 * Whiteout keys apart from the names seen in upper: the key of a long
	 * name's whiteout (".cjfs~wH.<sha256>") is also a valid user name, and
	 * a user's file with that name must not hide the long lower name.
	 */
	struct strset whiteouts = STRSET_INIT;
	struct fs_dirent *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;

	for (int pass = 0; pass < 2 && r >= 0; pass++) {
		int src = pass == 0 ? upper_fd : lower_fd;
		struct dirent *de;
		struct stat dst;
		DIR *d;
		int fd;

		if (src < 0)
			continue;
		fd = util_openat(src, ".", O_RDONLY | O_DIRECTORY, 0);
		if (fd < 0) {
			r = fd;
			break;
		}
		if (fstat(fd, &dst) < 0) {
			r = -errno;
			util_close(fd);
			break;
		}
		d = fdopendir(fd);
		if (!d) {
			r = -errno;
			util_close(fd);
			break;
		}
		while ((de = readdir(d))) {
			const char *name = de->d_name, *key;
			char kb[NAME_MAX + 1];
			uint64_t ino;

			if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
				continue;
			if (pass == 0) {
				if (layer_is_whiteout(name, &key)) {
					r = strset_add(&whiteouts, key);
					if (r < 0)
						break;
					continue;
				}
				name = layer_decode(name);
				if (!name)
					continue; /* a marker */
			} else if (strset_has(&seen, name) ||
				   strset_has(&whiteouts, layer_whiteout_key(name, kb))) {
				continue;
			}
			if (pass == 0) {
				r = strset_add(&seen, name);
				if (r < 0)
					break;
			}
			if (pass == 0 && fs) {
				struct fs_key k;

				ino = fs_origin_find(fs, dst.st_dev, de->d_ino, &k)
					      ? fs_report_ino(fs, k.dev, k.ino)
					      : fs_report_ino(fs, dst.st_dev, de->d_ino);
			} else {
				ino = fs ? fs_report_ino(fs, dst.st_dev, de->d_ino) : de->d_ino;
			}
			r = push(&v, &n, &cap, name, ino, entry_type(d, de));
			if (r < 0)
				break;
			if (n == 4096)
				fs_uring_heavy(); /* a long listing: not at the lowest priority */
		}
		closedir(d);
	}
	strset_release(&seen);
	strset_release(&whiteouts);
	if (r < 0) {
		fs_dirents_free(v, n);
		return r;
	}
	*ret = v;
	*ret_n = n;
	return 0;
}

/*
 * st_ino of "." or ".." in dir. Never 0: readdir(3) skips entries whose
 * d_ino is 0, and ".." would vanish from listings. The mount root's ".."
 * is outside the mount: report the root itself. Caller holds fs->ns.
 */
static uint64_t dot_ino(struct fs *fs, struct fs_inode *dir, const char *name)
{
	if (name[1] == '.' && dir != &fs->root_inode && dir->parent)
		return dir->parent->ino;
	return dir->ino;
}

/*
 * Positions. The kernel hands a READDIR no handle (OPENDIR is answered with
 * ENOSYS), so an entry's offset must find the rest of a listing in any
 * listing of the directory, however it changed in between: it is derived
 * from the entry's name, as ext4 derives its positions from a hash of the
 * name. A listing is kept sorted by position and a READDIR at offset O
 * answers the entries after O, so an entry that stays in the directory is
 * listed exactly once per pass whatever was created or removed meanwhile.
 * "." is 1 and ".." is 2; a name's position is 8 * (1 + 59 bits of its
 * hash) + its rank (0-7) among names with the same 59 bits, ordered by name.
 */
#define POS_DOT 1
#define POS_DOTDOT 2

static uint64_t name_hash(const char *name)
{
	uint64_t h = util_fnv1a(name, strlen(name)); /* then a full avalanche */

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return ((h >> 5) + 1) << 3;
}

static int by_pos(const void *a, const void *b)
{
	const struct fs_dirent *x = a, *y = b;

	if (x->pos != y->pos)
		return x->pos < y->pos ? -1 : 1;
	return strcmp(x->name, y->name);
}

/*
 * A directory's listing, kept while a reader walks through it. It is only
 * a cache: any listing serves any offset. Lives on fs->snaps' list (most
 * recently used first) while attached to its directory.
 */
struct fs_dirsnap {
	struct fs_inode *dir; /* NULL once detached; fields below protected by fs->snaps.lock */
	struct fs_dirsnap *prev, *next;
	unsigned int refs;
	uint64_t gen;	      /* dir->dgen when listed */
	struct timespec used; /* last served */
	size_t n;
	struct fs_dirent *ents;
};

/*
 * A listing older than the directory's last change is reused for a READDIR
 * past the start only while a reader is still walking it (served within
 * this long): POSIX leaves entries added or removed after opendir() or
 * rewinddir() unspecified, and a walk should not pay for a new listing per
 * READDIR because a cleaner writes to the directory it walks.
 */
#define SNAP_STALE_NS 1000000000LL
/* Entries all kept listings may hold together; more and the oldest go. */
#define SNAP_CAP_ENTRIES (256 * 1024)

static void snap_free(struct fs_dirsnap *s)
{
	fs_dirents_free(s->ents, s->n);
	free(s);
}

/* The list of kept listings, most recently used first; fs->snaps.lock held. */
static void list_unlink(struct fs *fs, struct fs_dirsnap *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		fs->snaps.head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		fs->snaps.tail = s->prev;
}

static void list_push_front(struct fs *fs, struct fs_dirsnap *s)
{
	s->prev = NULL;
	s->next = fs->snaps.head;
	if (s->next)
		s->next->prev = s;
	else
		fs->snaps.tail = s;
	fs->snaps.head = s;
}

/* Take s off its directory and the list; the list's reference is returned. Lock held. */
static bool snap_detach_locked(struct fs *fs, struct fs_dirsnap *s)
{
	if (!s->dir)
		return false;
	s->dir->snap = NULL;
	s->dir = NULL;
	list_unlink(fs, s);
	fs->snaps.ents -= s->n;
	return --s->refs == 0;
}

static void snap_put(struct fs *fs, struct fs_dirsnap *s, bool done)
{
	bool free_it;

	pthread_mutex_lock(&fs->snaps.lock);
	if (done)
		(void)snap_detach_locked(fs, s); /* the caller's reference keeps it */
	free_it = --s->refs == 0;
	pthread_mutex_unlock(&fs->snaps.lock);
	if (free_it)
		snap_free(s);
}

void fs_dirsnap_drop(struct fs *fs, struct fs_inode *dir)
{
	struct fs_dirsnap *s;
	bool free_it = false;

	pthread_mutex_lock(&fs->snaps.lock);
	s = dir->snap;
	if (s)
		free_it = snap_detach_locked(fs, s);
	pthread_mutex_unlock(&fs->snaps.lock);
	if (free_it)
		snap_free(s);
}

void fs_dirsnaps_init(struct fs *fs)
{
	pthread_mutex_init(&fs->snaps.lock, NULL);
}

void fs_dirsnaps_release(struct fs *fs)
{
	while (fs->snaps.head) {
		struct fs_dirsnap *s = fs->snaps.head;

		if (snap_detach_locked(fs, s))
			snap_free(s);
	}
	pthread_mutex_destroy(&fs->snaps.lock);
}

static int64_t ns_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000000000LL + (b->tv_nsec - a->tv_nsec);
}

/* The kept listing of dir if it may serve offset off, with a reference. Caller holds fs->ns. */
static struct fs_dirsnap *snap_get(struct fs *fs, struct fs_inode *dir, off_t off)
{
	struct fs_dirsnap *s;
	struct timespec now;

	if (off == 0)
		return NULL; /* opendir() and rewinddir() see the directory as it is now */
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&fs->snaps.lock);
	s = dir->snap;
	if (s && (s->gen == dir->dgen || ns_between(&s->used, &now) < SNAP_STALE_NS)) {
		s->refs++;
		s->used = now;
		list_unlink(fs, s);
		list_push_front(fs, s);
	} else {
		s = NULL;
	}
	pthread_mutex_unlock(&fs->snaps.lock);
	return s;
}

/* Attach a new listing to dir in place of its old one; returns it with the caller's reference. */
static struct fs_dirsnap *snap_install(struct fs *fs, struct fs_inode *dir, struct fs_dirsnap *s)
{
	struct fs_dirsnap *old, *evict = NULL;

	s->refs = 2; /* the caller's and the list's */
	pthread_mutex_lock(&fs->snaps.lock);
	old = dir->snap;
	if (old && snap_detach_locked(fs, old))
		evict = old;
	s->dir = dir;
	dir->snap = s;
	list_push_front(fs, s);
	fs->snaps.ents += s->n;
	pthread_mutex_unlock(&fs->snaps.lock);
	if (evict)
		snap_free(evict);
	/* Keep the total bounded: the least recently used go first. */
	for (;;) {
		struct fs_dirsnap *t;

		pthread_mutex_lock(&fs->snaps.lock);
		t = fs->snaps.tail;
		if (fs->snaps.ents <= SNAP_CAP_ENTRIES || t == s) {
			pthread_mutex_unlock(&fs->snaps.lock);
			break;
		}
		evict = snap_detach_locked(fs, t) ? t : NULL;
		pthread_mutex_unlock(&fs->snaps.lock);
		if (evict)
			snap_free(evict);
	}
	return s;
}

/* List dir: ".", "..", then the merged entries, sorted by position. Caller holds fs->ns. */
static int snap_build(struct fs *fs, struct fs_inode *dir, struct fs_dirsnap **ret)
{
	struct fs_dirent *v = NULL, *all;
	struct fs_dirsnap *s;
	bool uo = false, lo = false;
	int u = -1, l = -1, r = 0;
	size_t n = 0;

	if (dir->unlinked)
		return -ENOENT;
	if (dir->upper) {
		u = fs_dir_upper_fd(fs, dir, &uo);
		if (u < 0)
			return u;
	}
	if (dir->lower && !dir->opaque) {
		l = fs_dir_lower_fd(fs, dir, &lo);
		if (l < 0 && l != -ENOENT && l != -ENOTDIR)
			r = l;
		if (l < 0)
			l = -1;
	}
	if (r == 0)
		r = fs_list_merged(fs, u, l, &v, &n);
	fs_put_fd(u, uo);
	fs_put_fd(l, lo);
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	all = realloc(v, (n + 2) * sizeof(*all));
	if (!s || !all) {
		free(s);
		fs_dirents_free(all ? all : v, n);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		all[i].pos = name_hash(all[i].name);
	qsort(all, n, sizeof(*all), by_pos);
	for (size_t i = 1; i < n; i++) {
		uint64_t rank = all[i - 1].pos & 7;

		if ((all[i].pos & ~(uint64_t)7) == (all[i - 1].pos & ~(uint64_t)7) && rank < 7)
			all[i].pos = (all[i - 1].pos & ~(uint64_t)7) + rank + 1;
	}
	memmove(all + 2, all, n * sizeof(*all));
	all[0] = (struct fs_dirent){ .name = strdup("."), .ino = dir->ino, .type = DT_DIR,
				     .pos = POS_DOT };
	all[1] = (struct fs_dirent){ .name = strdup(".."),
				     .ino = dot_ino(fs, dir, ".."),
				     .type = DT_DIR,
				     .pos = POS_DOTDOT };
	s->ents = all;
	s->n = n + 2;
	if (!all[0].name || !all[1].name) {
		snap_free(s);
		return -ENOMEM;
	}
	s->gen = dir->dgen;
	clock_gettime(CLOCK_MONOTONIC, &s->used);
	*ret = s;
	return 0;
}

static bool is_dot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* Add one entry to the reply buffer; 0 if it did not fit. Caller holds fs->ns (read). */
static size_t add_entry(struct fs *fs, fuse_req_t req, struct fs_inode *dir, char *p, size_t rem,
			const char *name, uint64_t ino, unsigned char type, off_t next, bool plus,
			int *ret_err)
{
	struct fuse_entry_param e;
	struct fs_inode *inode;
	size_t sz;
	int r;

	*ret_err = 0;
	if (!plus) {
		struct stat st = { .st_ino = ino, .st_mode = (mode_t)DTTOIF(type) };

		return fuse_add_direntry(req, p, rem, name, &st, next);
	}
	memset(&e, 0, sizeof(e));
	if (is_dot(name)) {
		e.attr.st_ino = ino;
		e.attr.st_mode = (mode_t)DTTOIF(type);
		return fuse_add_direntry_plus(req, p, rem, name, &e, next);
	}
	r = fs_lookup(fs, dir, name, &inode, &e.attr);
	if (r < 0) {
		/* Gone since the listing: send it without attributes (ino 0: no dentry). */
		e.attr.st_ino = ino;
		e.attr.st_mode = (mode_t)DTTOIF(type);
		return fuse_add_direntry_plus(req, p, rem, name, &e, next);
	}
	e.ino = fs_inode_nodeid(fs, inode);
	e.attr_timeout = e.entry_timeout = fs->timeout;
	sz = fuse_add_direntry_plus(req, p, rem, name, &e, next);
	if (sz > rem)
		fs_inode_forget(fs, inode, 1); /* not sent: the kernel holds no reference */
	return sz;
}

/* First entry of s after position off. */
static size_t snap_seek(const struct fs_dirsnap *s, off_t off)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->ents[mid].pos <= (uint64_t)off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void fs_readdir(struct fs *fs, fuse_req_t req, struct fs_inode *dir, size_t size, off_t off,
		bool plus)
{
	struct fs_dirsnap *s;
	char *buf = off < 0 ? NULL : malloc(size);
	size_t rem = size, i = 0;
	char *p = buf;
	int r = 0;

	if (!buf) {
		fuse_reply_err(req, off < 0 ? EINVAL : ENOMEM);
		return;
	}
	pthread_rwlock_rdlock(&fs->ns);
	s = snap_get(fs, dir, off);
	if (!s) {
		r = snap_build(fs, dir, &s);
		if (r == 0)
			s = snap_install(fs, dir, s);
	}
	if (r == 0) {
		for (i = snap_seek(s, off); i < s->n; i++) {
			const struct fs_dirent *e = &s->ents[i];
			size_t sz = add_entry(fs, req, dir, p, rem, e->name, e->ino, e->type,
					      (off_t)e->pos, plus, &r);

			if (sz > rem)
				break;
			p += sz;
			rem -= sz;
		}
	}
	pthread_rwlock_unlock(&fs->ns);
	/* Nothing left to send: the walk is over, and its listing goes. */
	if (s)
		snap_put(fs, s, rem == size && i == s->n);
	/* Entries already in the buffer are sent even if a later one failed. */
	if (r < 0 && rem == size)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}
