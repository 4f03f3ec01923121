// SPDX-License-Identifier: MIT
/*
 * Bounded memory. The kernel keeps a FUSE inode (and so the daemon keeps
 * its struct fs_inode) for as long as it caches the dentry, which after a
 * `find | xargs cat` of a large tree means every file. Above fs->inode_cap
 * inodes, a thread asks the kernel to drop the entries of the leaves used
 * least recently (fuse_lowlevel_notify_inval_entry); the kernel then forgets
 * them, and the table shrinks back. Entries in use (open files, directories
 * with cached children) are never picked.
 */
#include "fs_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

#define RECLAIM_PERIOD_MS 250

struct victim {
	fuse_ino_t parent;
	char *name;
	uint64_t used;
};

static int cmp_used(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;

	return x->used < y->used ? -1 : x->used > y->used;
}

/* The oldest leaves beyond the cap (down to 90% of it). Takes fs->ns and fs->table. */
static size_t pick(struct fs *fs, struct victim **ret)
{
	struct victim *v = NULL;
	size_t n = 0, cap = 0, excess;

	pthread_rwlock_rdlock(&fs->ns);
	pthread_mutex_lock(&fs->table);
	excess = fs->hcount > fs->inode_cap ? fs->hcount - fs->inode_cap * 9 / 10 : 0;
	for (size_t i = 0; excess && i < fs->hsize; i++) {
		for (struct fs_inode *in = fs->htab[i]; in; in = in->hnext) {
			char *name;

			if (in == &fs->root_inode || in->nopen || in->refs || !in->parent ||
			    in->unlinked || !in->name)
				continue;
			if (n == cap) {
				struct victim *nv =
					realloc(v, (cap = cap ? cap * 2 : 1024) * sizeof(*v));

				if (!nv)
					goto out;
				v = nv;
			}
			name = strdup(in->name);
			if (!name)
				goto out;
			v[n++] = (struct victim){ .parent = fs_inode_nodeid(fs, in->parent),
						  .name = name,
						  .used = __atomic_load_n(&in->used,
									  __ATOMIC_RELAXED) };
		}
	}
out:
	pthread_mutex_unlock(&fs->table);
	pthread_rwlock_unlock(&fs->ns);
	if (n > excess) {
		qsort(v, n, sizeof(*v), cmp_used);
		for (size_t i = excess; i < n; i++)
			free(v[i].name);
		n = excess;
	}
	*ret = v;
	return n;
}

static void *reclaim_main(void *arg)
{
	struct fs *fs = arg;

	pthread_mutex_lock(&fs->reclaim_lock);
	while (fs->reclaiming) {
		struct timespec until;
		struct victim *v = NULL;
		size_t n, hcount;

		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += RECLAIM_PERIOD_MS * 1000000L;
		until.tv_sec += until.tv_nsec / 1000000000L;
		until.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&fs->reclaim_cond, &fs->reclaim_lock, &until);
		if (!fs->reclaiming)
			break;
		pthread_mutex_unlock(&fs->reclaim_lock);
		__atomic_add_fetch(&fs->epoch, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&fs->table);
		hcount = fs->hcount;
		pthread_mutex_unlock(&fs->table);
		if (hcount > fs->inode_cap) {
			n = pick(fs, &v);
			/* No lock held here: the kernel may call back into us (forget). */
			for (size_t i = 0; i < n; i++) {
				(void)fuse_lowlevel_notify_inval_entry(fs->se, v[i].parent,
								       v[i].name,
								       strlen(v[i].name));
				free(v[i].name);
			}
			free(v);
			log_debug("reclaim: asked the kernel to drop %zu of %zu inodes", n, hcount);
		}
		pthread_mutex_lock(&fs->reclaim_lock);
	}
	pthread_mutex_unlock(&fs->reclaim_lock);
	return NULL;
}

int fs_reclaim_start(struct fs *fs)
{
	int r;

	if (!fs->inode_cap)
		return 0;
	pthread_mutex_lock(&fs->reclaim_lock);
	fs->reclaiming = true;
	r = -pthread_create(&fs->reclaimer, NULL, reclaim_main, fs);
	if (r < 0)
		fs->reclaiming = false;
	pthread_mutex_unlock(&fs->reclaim_lock);
	return r;
}

void fs_reclaim_stop(struct fs *fs)
{
	bool running;

	pthread_mutex_lock(&fs->reclaim_lock);
	running = fs->reclaiming;
	fs->reclaiming = false;
	pthread_cond_signal(&fs->reclaim_cond);
	pthread_mutex_unlock(&fs->reclaim_lock);
	if (running)
		pthread_join(fs->reclaimer, NULL);
}
