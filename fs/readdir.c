// SPDX-License-Identifier: MIT
/*
 * Directory listings. A directory that exists only in PKG is streamed from
 * PKG with PKG's own offsets (no copy, seekdir works); a directory with an
 * upper part is listed once per rewind into a merged snapshot (upper wins,
 * markers and whited-out names hidden) served by index, which keeps offsets
 * stable while entries are created and removed concurrently.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

struct fs_dirh {
	pthread_mutex_t lock; /* one reader at a time per handle */
	DIR *dp;	      /* streaming a PKG-only directory */
	off_t pos;	      /* dp's position, or -1 when unknown */
	bool snap;	      /* snapshot mode */
	struct fs_dirent *ents;
	size_t n;
	bool built;
};

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

int fs_opendir(struct fs *fs, struct fs_inode *dir, struct fs_dirh **ret)
{
	struct fs_dirh *dh = calloc(1, sizeof(*dh));
	int r = 0;

	if (!dh)
		return -ENOMEM;
	pthread_mutex_init(&dh->lock, NULL);
	dh->pos = -1;
	pthread_rwlock_rdlock(&fs->ns);
	if (dir->unlinked) {
		/* Like a removed directory on disk: it opens; the kernel then lists nothing. */
		dh->snap = true;
	} else if (!dir->upper && dir->lower && !dir->opaque) {
		bool lo;
		int l = fs_dir_lower_fd(fs, dir, &lo);
		int fd = l < 0 ? l : util_openat(l, ".", O_RDONLY | O_DIRECTORY, 0);

		if (l >= 0)
			fs_put_fd(l, lo);
		if (fd < 0) {
			r = fd;
		} else {
			dh->dp = fdopendir(fd);
			if (!dh->dp) {
				r = -errno;
				util_close(fd);
			}
			dh->pos = 0;
		}
	} else {
		dh->snap = true;
	}
	pthread_rwlock_unlock(&fs->ns);
	if (r < 0) {
		fs_releasedir(dh);
		return r;
	}
	*ret = dh;
	return 0;
}

void fs_releasedir(struct fs_dirh *dh)
{
	if (!dh)
		return;
	if (dh->dp)
		closedir(dh->dp);
	fs_dirents_free(dh->ents, dh->n);
	pthread_mutex_destroy(&dh->lock);
	free(dh);
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

/* Build the snapshot: ".", "..", then the merged entries. Caller holds fs->ns. */
static int snapshot(struct fs *fs, struct fs_inode *dir, struct fs_dirh *dh)
{
	struct fs_dirent *v = NULL, *all;
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
	all = realloc(v, (n + 2) * sizeof(*all));
	if (!all) {
		fs_dirents_free(v, n);
		return -ENOMEM;
	}
	memmove(all + 2, all, n * sizeof(*all));
	all[0] = (struct fs_dirent){ .name = strdup("."), .ino = dir->ino, .type = DT_DIR };
	all[1] = (struct fs_dirent){ .name = strdup(".."),
				     .ino = dot_ino(fs, dir, ".."),
				     .type = DT_DIR };
	if (!all[0].name || !all[1].name) {
		fs_dirents_free(all, n + 2);
		return -ENOMEM;
	}
	fs_dirents_free(dh->ents, dh->n);
	dh->ents = all;
	dh->n = n + 2;
	dh->built = true;
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

void fs_readdir(struct fs *fs, fuse_req_t req, struct fs_inode *dir, struct fs_dirh *dh,
		size_t size, off_t off, bool plus)
{
	char *buf = malloc(size);
	size_t rem = size;
	char *p = buf;
	int r = 0;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&dh->lock);
	pthread_rwlock_rdlock(&fs->ns);
	if (!dh->snap && off == 0 && (dir->upper || dir->opaque || !dir->lower)) {
		/*
		 * rewinddir() must show the directory as it is now: it has an
		 * upper part since it was opened, so PKG's listing is stale.
		 */
		closedir(dh->dp);
		dh->dp = NULL;
		dh->snap = true;
		dh->built = false;
	}
	if (!dh->snap) {
		if (off != dh->pos) {
			seekdir(dh->dp, off);
			dh->pos = off;
		}
		for (;;) {
			struct dirent *de;
			size_t sz;

			errno = 0;
			de = readdir(dh->dp);
			if (!de) {
				r = errno ? -errno : 0;
				break;
			}
			sz = add_entry(fs, req, dir, p, rem, de->d_name,
				       is_dot(de->d_name)
					       ? dot_ino(fs, dir, de->d_name)
					       : fs_report_ino(fs, fs->lower_dev, de->d_ino),
				       de->d_type, de->d_off, plus, &r);
			if (sz > rem) {
				dh->pos = -1; /* read one too many: seek before the next call */
				break;
			}
			p += sz;
			rem -= sz;
			dh->pos = de->d_off;
		}
	} else {
		if (off == 0 || !dh->built)
			r = snapshot(fs, dir, dh);
		for (size_t i = (size_t)off; r == 0 && i < dh->n; i++) {
			size_t sz =
				add_entry(fs, req, dir, p, rem, dh->ents[i].name, dh->ents[i].ino,
					  dh->ents[i].type, (off_t)(i + 1), plus, &r);

			if (sz > rem)
				break;
			p += sz;
			rem -= sz;
		}
	}
	pthread_rwlock_unlock(&fs->ns);
	pthread_mutex_unlock(&dh->lock);
	/* Entries already in the buffer are sent even if a later one failed. */
	if (r < 0 && rem == size)
		fuse_reply_err(req, -r);
	else
		fuse_reply_buf(req, buf, size - rem);
	free(buf);
}
