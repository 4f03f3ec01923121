// SPDX-License-Identifier: MIT
/* Opening and closing a store directory; batching; the default location. */
#include "store_int.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "log.h"

void store_lock(struct store *s)
{
	pthread_mutex_lock(&s->lock);
}

void store_unlock(struct store *s)
{
	pthread_mutex_unlock(&s->lock);
}

char *store_default_path(void)
{
	const char *e = getenv("CJFS_HOME");
	const char *home;

	if (e && *e)
		return strdup(e);
	e = getenv("XDG_STATE_HOME");
	if (e && *e == '/')
		return util_xasprintf("%s/cjfs", e);
	home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	return util_xasprintf("%s/.local/state/cjfs", home);
}

static int open_subdir(int dirfd, const char *name, bool create)
{
	if (create) {
		int r = util_mkdirat(dirfd, name, 0700);

		if (r < 0 && r != -EEXIST)
			return r;
	}
	return util_openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
}

int store_open(const char *dir, unsigned flags, struct store **ret)
{
	bool create = flags & STORE_OPEN_CREATE;
	pthread_mutexattr_t attr;
	struct store *s;
	char *dbpath = NULL;
	mode_t old_mask;
	int r;

	r = hash_global_init();
	if (r < 0)
		return r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dirfd = s->objfd = s->tmpfd = s->txnfd = s->stage_fd = s->changelog_fd = -1;
	pthread_mutexattr_init(&attr);
	pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
	pthread_mutex_init(&s->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	pthread_mutex_init(&s->stage_lock, NULL);
	pthread_mutex_init(&s->changelog_lock, NULL);
	pthread_mutex_init(&s->defer_lock, NULL);

	s->path = strdup(dir);
	if (!s->path) {
		r = -ENOMEM;
		goto out_free;
	}
	if (create) {
		/* The store holds copies of the user's code: private by default. */
		mode_t old = umask(077);

		r = util_mkdir_p(dir, 0700);
		umask(old);
		if (r < 0)
			goto out_free;
	}
	s->dirfd = util_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
	if (s->dirfd < 0) {
		r = s->dirfd;
		goto out_free;
	}
	if (faccessat(s->dirfd, ".", W_OK | X_OK, AT_EACCESS) < 0) {
		r = -errno;
		goto out_free;
	}
	s->objfd = open_subdir(s->dirfd, "objects", true);
	s->tmpfd = open_subdir(s->dirfd, "tmp", true);
	s->txnfd = open_subdir(s->dirfd, "txn", true);
	if (s->objfd < 0 || s->tmpfd < 0 || s->txnfd < 0) {
		r = s->objfd < 0 ? s->objfd : s->tmpfd < 0 ? s->tmpfd : s->txnfd;
		goto out_free;
	}
	/*
	 * All 256 fan-out directories up front: a blob write then never pays
	 * for a mkdir, and never races another writer's.
	 */
	if (fstatat(s->objfd, "ff", &(struct stat){ 0 }, 0) < 0) {
		for (int i = 0; i < 256; i++) {
			char sub[3];

			snprintf(sub, sizeof(sub), "%02x", i);
			/* Not through util_sys: creating a store is not part of any commit. */
			if (mkdirat(s->objfd, sub, 0700) < 0 && errno != EEXIST) {
				r = -errno;
				goto out_free;
			}
		}
	}
	{
		struct statvfs vfs;

		/* Compression pays only when it saves whole blocks (blob.c). */
		s->blksize = fstatvfs(s->objfd, &vfs) == 0 && vfs.f_bsize ? vfs.f_bsize : 4096;
	}
	dbpath = util_xasprintf("%s/index.db", dir);
	if (!dbpath) {
		r = -ENOMEM;
		goto out_free;
	}
	/*
	 * SQLite creates index.db 0644 & ~umask and gives -wal and -shm the same
	 * mode: the paths and history of the user's code stay private even in a
	 * store directory that is not 0700.
	 */
	old_mask = umask(077);
	r = db_open(dbpath, flags & STORE_OPEN_RELAXED, &s->db);
	umask(old_mask);
	free(dbpath);
	if (r < 0)
		goto out_free;
	*ret = s;
	return 0;

out_free:
	store_close(s);
	return r;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	db_close(s->db);
	util_close(s->dirfd);
	util_close(s->objfd);
	util_close(s->tmpfd);
	util_close(s->txnfd);
	util_close(s->stage_fd);
	util_close(s->changelog_fd);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->stage_lock);
	pthread_mutex_destroy(&s->changelog_lock);
	pthread_mutex_destroy(&s->defer_lock);
	free(s->pending);
	free(s->path);
	free(s);
}

const char *store_path(const struct store *s)
{
	return s->path;
}

int store_dirfd(const struct store *s)
{
	return s->dirfd;
}

int store_batch_begin(struct store *s)
{
	int r = 0;

	store_lock(s);
	if (s->batch == 0)
		r = db_exec(s->db, "BEGIN IMMEDIATE");
	if (r < 0) {
		store_unlock(s);
		return r;
	}
	s->batch++;
	/* The lock stays held until the matching commit or rollback. */
	return 0;
}

int store_batch_begin_durable(struct store *s)
{
	int r;

	store_lock(s);
	if (s->batch == 0) {
		r = db_exec(s->db, "PRAGMA synchronous=FULL");
		if (r < 0) {
			store_unlock(s);
			return r;
		}
		s->durable = true;
	}
	r = store_batch_begin(s);
	if (r < 0 && s->batch == 0 && s->durable) {
		(void)db_exec(s->db, "PRAGMA synchronous=NORMAL");
		s->durable = false;
	}
	store_unlock(s);
	return r;
}

/* After the outermost batch: back to NORMAL if it was a durable one. */
static void batch_end(struct store *s)
{
	if (s->batch == 0 && s->durable) {
		(void)db_exec(s->db, "PRAGMA synchronous=NORMAL");
		s->durable = false;
	}
}

int store_batch_commit(struct store *s)
{
	int r = 0;

	if (--s->batch == 0) {
		r = db_exec(s->db, "COMMIT");
		if (r < 0)
			(void)db_exec(s->db, "ROLLBACK");
	}
	batch_end(s);
	store_unlock(s);
	return r;
}

void store_batch_rollback(struct store *s)
{
	if (--s->batch == 0)
		(void)db_exec(s->db, "ROLLBACK");
	batch_end(s);
	store_unlock(s);
}
