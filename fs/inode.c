// SPDX-License-Identifier: MIT
/*
 * The inode table: kernel node ids to struct fs_inode, lookup counting and
 * forget, the copy-up origin map that keeps st_ino stable, and the stat
 * fixups every reply gets.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define ST_INO_UPPER (1ULL << 63)
#define ST_INO_OTHER (1ULL << 62)

static size_t key_hash(const struct fs_key *k)
{
	return (size_t)util_hash_mix(util_hash_mix(k->dev, k->ino), k->alias);
}

static bool key_eq(const struct fs_key *a, const struct fs_key *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->alias == b->alias;
}

int fs_init_tables(struct fs *fs)
{
	fs->hsize = 1024;
	fs->htab = calloc(fs->hsize, sizeof(*fs->htab));
	fs->osize = 4096;
	fs->otab = calloc(fs->osize, sizeof(*fs->otab));
	if (!fs->htab || !fs->otab)
		return -ENOMEM;
	return 0;
}

static void inode_destroy(struct fs_inode *inode)
{
	util_close(inode->upper_fd);
	util_close(inode->lower_fd);
	util_close(inode->anchor_fd);
	free(inode->name);
	free(inode->redirect);
	free(inode);
}

void fs_free_tables(struct fs *fs)
{
	for (size_t i = 0; i < fs->hsize && fs->htab; i++) {
		struct fs_inode *n, *in = fs->htab[i];

		for (; in; in = n) {
			n = in->hnext;
			if (in != &fs->root_inode)
				inode_destroy(in);
		}
	}
	for (size_t i = 0; i < fs->osize && fs->otab; i++) {
		struct fs_origin *n, *o = fs->otab[i];

		for (; o; o = n) {
			n = o->next;
			free(o);
		}
	}
	free(fs->htab);
	free(fs->otab);
	fs->htab = NULL;
	fs->otab = NULL;
}

struct fs_inode *fs_inode_get(struct fs *fs, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs->root_inode;
	return (struct fs_inode *)(uintptr_t)ino;
}

fuse_ino_t fs_inode_nodeid(struct fs *fs, struct fs_inode *inode)
{
	return inode == &fs->root_inode ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)inode;
}

uint64_t fs_report_ino(struct fs *fs, dev_t dev, ino_t ino)
{
	if (dev == fs->lower_dev)
		return ino;
	if (dev == fs->upper_dev)
		return ino | ST_INO_UPPER;
	/* A file system mounted inside PKG: keep its numbers apart from PKG's. */
	return (util_hash_mix(dev, ino) & ~ST_INO_UPPER) | ST_INO_OTHER;
}

static void table_grow(struct fs *fs)
{
	size_t nsize = fs->hsize * 2;
	struct fs_inode **nt = calloc(nsize, sizeof(*nt));

	if (!nt)
		return; /* a longer chain is still correct */
	for (size_t i = 0; i < fs->hsize; i++) {
		struct fs_inode *n, *in = fs->htab[i];

		for (; in; in = n) {
			size_t h = key_hash(&in->key) & (nsize - 1);

			n = in->hnext;
			in->hnext = nt[h];
			nt[h] = in;
		}
	}
	free(fs->htab);
	fs->htab = nt;
	fs->hsize = nsize;
}

static struct fs_inode *table_find(struct fs *fs, const struct fs_key *key)
{
	struct fs_inode *in = fs->htab[key_hash(key) & (fs->hsize - 1)];

	while (in && !key_eq(&in->key, key))
		in = in->hnext;
	return in;
}

static void table_insert(struct fs *fs, struct fs_inode *inode)
{
	size_t h;

	if (fs->hcount + 1 > fs->hsize)
		table_grow(fs);
	h = key_hash(&inode->key) & (fs->hsize - 1);
	inode->hnext = fs->htab[h];
	fs->htab[h] = inode;
	fs->hcount++;
}

static void table_remove(struct fs *fs, struct fs_inode *inode)
{
	struct fs_inode **pp = &fs->htab[key_hash(&inode->key) & (fs->hsize - 1)];

	while (*pp && *pp != inode)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = inode->hnext;
		fs->hcount--;
	}
}

struct fs_inode *fs_inode_find(struct fs *fs, const struct fs_key *key)
{
	struct fs_inode *in;

	pthread_mutex_lock(&fs->table);
	in = table_find(fs, key);
	pthread_mutex_unlock(&fs->table);
	return in;
}

void fs_origin_add(struct fs *fs, const struct stat *upper_st, const struct fs_key *key)
{
	size_t h = (size_t)util_hash_mix(upper_st->st_dev, upper_st->st_ino) & (fs->osize - 1);
	struct fs_origin *o = calloc(1, sizeof(*o));

	if (!o)
		return; /* st_ino of this file may change after a forget: cosmetic */
	o->upper_dev = upper_st->st_dev;
	o->upper_ino = upper_st->st_ino;
	o->key = *key;
	pthread_mutex_lock(&fs->table);
	o->next = fs->otab[h];
	fs->otab[h] = o;
	fs->ocount++;
	pthread_mutex_unlock(&fs->table);
}

bool fs_origin_find(struct fs *fs, dev_t dev, ino_t ino, struct fs_key *ret)
{
	size_t h = (size_t)util_hash_mix(dev, ino) & (fs->osize - 1);
	const struct fs_origin *o;

	pthread_mutex_lock(&fs->table);
	for (o = fs->otab[h]; o; o = o->next) {
		if (o->upper_dev == dev && o->upper_ino == ino)
			break;
	}
	if (o)
		*ret = o->key;
	pthread_mutex_unlock(&fs->table);
	return o != NULL;
}

void fs_origin_remove(struct fs *fs, dev_t dev, ino_t ino)
{
	size_t h = (size_t)util_hash_mix(dev, ino) & (fs->osize - 1);
	struct fs_origin **pp, *o;

	pthread_mutex_lock(&fs->table);
	for (pp = &fs->otab[h]; *pp; pp = &(*pp)->next) {
		if ((*pp)->upper_dev == dev && (*pp)->upper_ino == ino) {
			o = *pp;
			*pp = o->next;
			fs->ocount--;
			free(o);
			break;
		}
	}
	pthread_mutex_unlock(&fs->table);
}

void fs_found_key(struct fs *fs, struct fs_inode *parent, const char *name,
		  const struct fs_found *f, struct fs_key *ret)
{
	ret->dev = f->st.st_dev;
	ret->ino = f->st.st_ino;
	ret->alias = 0;
	if (f->where == LAYER_UPPER) {
		(void)fs_origin_find(fs, f->st.st_dev, f->st.st_ino, ret);
		return;
	}
	/*
	 * Lower files with several names get one inode per name: copy-up
	 * separates them, as in kernel overlayfs, and the commit promotes
	 * exactly what each name then shows.
	 */
	if (!S_ISDIR(f->st.st_mode) && f->st.st_nlink > 1)
		ret->alias = util_hash_mix(util_hash_str(name), (uint64_t)(uintptr_t)parent) | 1;
}

static bool budget_take(struct fs *fs)
{
	return __atomic_sub_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED) >= 0 ||
	       (__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED), false);
}

static void found_release(struct fs_found *f)
{
	util_close(f->upper_fd);
	util_close(f->lower_fd);
	free(f->redirect);
	f->upper_fd = f->lower_fd = -1;
	f->redirect = NULL;
}

int fs_inode_found(struct fs *fs, struct fs_inode *parent, const char *name, struct fs_found *f,
		   struct fs_inode **ret)
{
	struct fs_inode *inode;
	struct fs_key key;

	fs_found_key(fs, parent, name, f, &key);
	pthread_mutex_lock(&fs->table);
	inode = table_find(fs, &key);
	if (inode) {
		inode->nlookup++;
		__atomic_store_n(&inode->used, __atomic_load_n(&fs->epoch, __ATOMIC_RELAXED),
				 __ATOMIC_RELAXED);
		pthread_mutex_unlock(&fs->table);
		found_release(f);
		*ret = inode;
		return 0;
	}
	pthread_mutex_unlock(&fs->table);

	inode = calloc(1, sizeof(*inode));
	if (!inode) {
		found_release(f);
		return -ENOMEM;
	}
	inode->name = strdup(name);
	if (!inode->name) {
		free(inode);
		found_release(f);
		return -ENOMEM;
	}
	inode->key = key;
	inode->ino = fs_report_ino(fs, key.dev, key.ino);
	inode->type = f->st.st_mode & S_IFMT;
	inode->upper = f->where == LAYER_UPPER;
	inode->anchor_fd = -1;
	inode->upper_fd = inode->lower_fd = -1;
	if (inode->upper) {
		inode->upper_dev = f->st.st_dev;
		inode->upper_ino = f->st.st_ino;
	}
	if (S_ISDIR(f->st.st_mode)) {
		inode->opaque = f->opaque;
		inode->lower = f->lower_fd >= 0;
		inode->redirect = f->redirect;
		f->redirect = NULL;
		if (f->upper_fd >= 0 && budget_take(fs)) {
			inode->upper_fd = f->upper_fd;
			f->upper_fd = -1;
		}
		if (f->lower_fd >= 0 && budget_take(fs)) {
			inode->lower_fd = f->lower_fd;
			f->lower_fd = -1;
		}
	} else {
		inode->lower = f->where == LAYER_LOWER;
	}
	found_release(f);

	pthread_mutex_lock(&fs->table);
	/* Another thread may have created it while we were not holding the table. */
	if (table_find(fs, &key)) {
		struct fs_inode *other = table_find(fs, &key);

		other->nlookup++;
		pthread_mutex_unlock(&fs->table);
		if (inode->upper_fd >= 0)
			__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED);
		if (inode->lower_fd >= 0)
			__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED);
		inode_destroy(inode);
		*ret = other;
		return 0;
	}
	inode->parent = parent;
	parent->refs++;
	inode->nlookup = 1;
	inode->used = __atomic_load_n(&fs->epoch, __ATOMIC_RELAXED);
	table_insert(fs, inode);
	pthread_mutex_unlock(&fs->table);
	*ret = inode;
	return 0;
}

/* Free inodes nobody references any more, walking up through parents; table held. */
static void maybe_free_locked(struct fs *fs, struct fs_inode *inode)
{
	while (inode && inode != &fs->root_inode && inode->nlookup == 0 && inode->refs == 0) {
		struct fs_inode *parent = inode->parent;

		table_remove(fs, inode);
		if (inode->type == S_IFDIR)
			fs_dirsnap_drop(fs, inode);
		if (inode->upper_fd >= 0)
			__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED);
		if (inode->lower_fd >= 0)
			__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED);
		inode_destroy(inode);
		if (parent)
			parent->refs--;
		inode = parent;
	}
}

void fs_inode_forget(struct fs *fs, struct fs_inode *inode, uint64_t n)
{
	pthread_mutex_lock(&fs->table);
	inode->nlookup = n > inode->nlookup ? 0 : inode->nlookup - n;
	maybe_free_locked(fs, inode);
	pthread_mutex_unlock(&fs->table);
}

void fs_inode_ref(struct fs *fs, struct fs_inode *inode)
{
	pthread_mutex_lock(&fs->table);
	inode->refs++;
	pthread_mutex_unlock(&fs->table);
}

void fs_inode_unref(struct fs *fs, struct fs_inode *inode)
{
	pthread_mutex_lock(&fs->table);
	inode->refs--;
	maybe_free_locked(fs, inode);
	pthread_mutex_unlock(&fs->table);
}

int fs_inode_move(struct fs *fs, struct fs_inode *inode, struct fs_inode *newparent,
		  const char *newname)
{
	struct fs_inode *old = inode->parent;
	char *name = NULL;

	if (newparent) {
		name = strdup(newname);
		if (!name)
			return -ENOMEM;
	}
	pthread_mutex_lock(&fs->table);
	if (newparent)
		newparent->refs++;
	inode->parent = newparent;
	free(inode->name);
	inode->name = name;
	inode->unlinked = newparent == NULL;
	if (!newparent && inode->type == S_IFDIR) {
		/*
		 * A removed directory is gone from both layers for good (no hard
		 * links): out of the table, so that a new object reusing its inode
		 * number is never taken for it while the kernel still holds it.
		 */
		table_remove(fs, inode);
		/* It is never looked into again: give its fds back. */
		if (inode->upper_fd >= 0)
			__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED);
		if (inode->lower_fd >= 0)
			__atomic_add_fetch(&fs->fd_budget, 1, __ATOMIC_RELAXED);
		util_close(inode->upper_fd);
		util_close(inode->lower_fd);
		inode->upper_fd = inode->lower_fd = -1;
	}
	if (old) {
		old->refs--;
		maybe_free_locked(fs, old);
	}
	pthread_mutex_unlock(&fs->table);
	return 0;
}

void fs_fix_stat(struct fs *fs, struct fs_inode *inode, struct stat *st)
{
	(void)fs;
	st->st_ino = inode->ino;
	/*
	 * The preferred I/O size, which stdio takes for its buffers: each
	 * write() to a FUSE file costs at least one request (the kernel's
	 * security.capability check, and the WRITE itself without passthrough),
	 * so a cleaner rewriting a 40 KiB file should do it in one, not ten.
	 */
	if (S_ISREG(st->st_mode) && st->st_blksize < FS_IO_BLKSIZE)
		st->st_blksize = FS_IO_BLKSIZE;
	/* A merged directory's link count is unknown: 1 tells find(1) not to count on it. */
	if (S_ISDIR(st->st_mode) && inode->upper && inode->lower && !inode->opaque)
		st->st_nlink = 1;
	/*
	 * A whited-out lower object still has its links in PKG; through the
	 * mount it has none. A removed directory has none either (a file
	 * marked unlinked may still have other upper hard links).
	 */
	if (inode->unlinked && (!inode->upper || S_ISDIR(st->st_mode)))
		st->st_nlink = 0;
}
