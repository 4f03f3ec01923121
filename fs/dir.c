// SPDX-License-Identifier: MIT
/*
 * Namespace changes: create (mknod, mkdir, symlink), link, unlink, rmdir and
 * rename. Each runs under fs->ns held for writing, records the paths it
 * changes (fs_touch) before touching the upper layer, and orders its steps
 * so that a daemon killed between any two of them leaves the merged tree in
 * the state before or after the operation.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* What a name in a directory is now, without counting a lookup. */
struct child {
	enum layer_where where;
	struct stat st;
	struct fs_key key;
	struct layer_probe probe; /* what the lookup saw of the lower name and its whiteout */
};

static int child_state(struct fs *fs, struct fs_inode *dir, const char *name, struct child *c)
{
	struct fs_found f = { .upper_fd = -1, .lower_fd = -1 };
	bool uo = false, lo = false;
	int u = -1, l = -1, r;

	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (dir->unlinked)
		return -ENOENT;
	if (dir->upper) {
		u = fs_dir_upper_fd(fs, dir, &uo);
		if (u < 0)
			return u;
	}
	if (dir->lower && !dir->opaque) {
		l = fs_dir_lower_fd(fs, dir, &lo);
		if (l == -ENOENT || l == -ENOTDIR) {
			l = -1;
		} else if (l < 0) {
			fs_put_fd(u, uo);
			return l;
		}
	}
	r = layer_lookup_probe(u, l, name, &c->st, &c->where, &c->probe);
	fs_put_fd(u, uo);
	fs_put_fd(l, lo);
	if (r < 0)
		return r;
	f.where = c->where;
	f.st = c->st;
	if (c->where != LAYER_NONE)
		fs_found_key(fs, dir, name, &f, &c->key);
	return 0;
}

/*
 * Are two names the same object? Lower hard links have one inode per name
 * (they part at copy-up) but are still one file while neither is copied up.
 */
static bool same_object(const struct child *a, const struct child *b)
{
	if (a->where == LAYER_LOWER && b->where == LAYER_LOWER)
		return a->st.st_dev == b->st.st_dev && a->st.st_ino == b->st.st_ino;
	return a->key.dev == b->key.dev && a->key.ino == b->key.ino && a->key.alias == b->key.alias;
}

/* Does the directory's lower part hold name? Then removing it needs a whiteout. */
static int lower_has(struct fs *fs, struct fs_inode *dir, const char *name)
{
	struct stat st;
	bool lo;
	int l, r;

	if (!dir->lower || dir->opaque)
		return 0;
	l = fs_dir_lower_fd(fs, dir, &lo);
	if (l == -ENOENT || l == -ENOTDIR)
		return 0;
	if (l < 0)
		return l;
	r = fstatat(l, name, &st, AT_SYMLINK_NOFOLLOW) == 0 ? 1 : errno == ENOENT ? 0 : -errno;
	fs_put_fd(l, lo);
	return r;
}

/* Not below a renamed directory (which merges its old lower path) or an opaque one. */
bool fs_lower_at_same_path(struct fs *fs, struct fs_inode *dir)
{
	for (; dir && dir != &fs->root_inode; dir = dir->parent)
		if (dir->redirect || dir->opaque || dir->unlinked)
			return false;
	return dir == &fs->root_inode;
}

/* lower_has(), answered from what child_state() saw when it can be. */
static int child_lower_has(struct fs *fs, struct fs_inode *dir, const char *name,
			   const struct child *c)
{
	if (c->where == LAYER_LOWER)
		return 1;
	if (c->probe.lower >= 0)
		return c->probe.lower;
	return lower_has(fs, dir, name);
}

/*
 * Whiteout name in dirfd: a hard link to one shared empty file in work/, as
 * kernel overlayfs shares its whiteout inode. A link costs a directory entry;
 * a file of its own would cost an inode allocation per deleted name, which
 * dominates deleting a tree. Markers are recognised by name only, so the
 * shared inode carries no meaning. Caller holds fs->ns for writing.
 */
static int set_whiteout(struct fs *fs, int dirfd, const char *name)
{
	static const char shared[] = LAYER_PREFIX "whiteout";
	char wh[NAME_MAX + 1];

	layer_whiteout_name(name, wh);
	for (int tries = 0; tries < 3; tries++) {
		char old[64];
		int fd;

		if (linkat(fs->work_fd, shared, dirfd, wh, 0) == 0 || errno == EEXIST)
			return 0;
		switch (errno) {
		case ENOENT: /* first whiteout of this daemon: work/ starts empty */
			fd = util_openat(fs->work_fd, shared, O_WRONLY | O_CREAT | O_EXCL, 0600);
			if (fd < 0 && fd != -EEXIST)
				return layer_set_whiteout(dirfd, name);
			util_close(fd);
			continue;
		case EMLINK: /* the file system's link limit: start a new shared file */
			if (util_renameat(fs->work_fd, shared, fs->work_fd,
					  fs_work_name(fs, "whiteout", old)) < 0)
				return layer_set_whiteout(dirfd, name);
			continue;
		default: /* no hard links here (or another problem): a file of its own */
			return layer_set_whiteout(dirfd, name);
		}
	}
	return layer_set_whiteout(dirfd, name);
}

/* Move an upper directory out of the way into work/ and delete it there. */
static int trash_dir(struct fs *fs, int dirfd, const char *uname)
{
	char tmp[64];
	int r;

	fs_work_name(fs, "trash", tmp);
	r = util_renameat(dirfd, uname, fs->work_fd, tmp);
	if (r < 0)
		return r;
	/* Only markers are left in it (it was empty in the merged view). */
	(void)util_rm_rf_at(fs->work_fd, tmp);
	return 0;
}

/*
 * Keep a way to reach an object that loses the name we know it by: it may
 * be open, or have other hard links. Closed when the kernel forgets it.
 */
static void anchor(struct fs_inode *inode, int dirfd, const char *name)
{
	if (!inode || inode->anchor_fd >= 0)
		return;
	inode->anchor_fd = util_openat(dirfd, name, O_PATH | O_NOFOLLOW, 0);
	if (inode->anchor_fd < 0)
		inode->anchor_fd = -1;
}

int fs_do_mknod(struct fs *fs, fuse_req_t req, struct fs_inode *parent, const char *name,
		mode_t mode, dev_t rdev, const char *link_target, int open_flags, int *ret_fd,
		struct fuse_entry_param *e)
{
	int fd = -1;
	struct strbuf path = STRBUF_INIT;
	char buf[NAME_MAX + 1];
	const char *uname;
	struct fs_inode *inode;
	struct child c;
	struct stat st;
	bool po = false, made = false;
	int pu = -1, wh, r;

	pthread_rwlock_wrlock(&fs->ns);
	parent->dgen++; /* kept listings of parent are out of date */
	r = child_state(fs, parent, name, &c);
	if (r == 0 && c.where != LAYER_NONE)
		r = -EEXIST;
	if (r == 0)
		r = layer_encode(name, buf, &uname);
	if (r == 0)
		r = fs_copy_up_dir_locked(fs, parent);
	if (r == 0)
		r = fs_child_path(fs, parent, name, &path);
	if (r == 0 && c.probe.lower == 0 && fs_lower_at_same_path(fs, parent))
		r = fs_touch_absent(fs, path.buf);
	else if (r == 0)
		r = fs_touch_child(fs, parent, name, path.buf);
	if (r < 0)
		goto out;
	pu = fs_dir_upper_fd(fs, parent, &po);
	if (pu < 0) {
		r = pu;
		goto out;
	}
	/* Absent in the merged view but present below: it was deleted and is whited out. */
	wh = child_lower_has(fs, parent, name, &c);
	if (wh < 0) {
		r = wh;
		goto out;
	}
	/*
	 * The kernel leaves the creator's umask to us (fs->dont_mask): it does
	 * not apply where the directory has a default ACL, which the upper file
	 * system then applies itself (the daemon's own umask is 0).
	 */
	if (fs->dont_mask && !S_ISLNK(mode) && !fs_xattr_default_acl(parent, pu))
		mode &= ~fuse_req_ctx(req)->umask;
	if (S_ISDIR(mode) && wh) {
		char tmp[64];
		int dfd;

		/*
		 * Built under a hidden name in the upper directory, with its opaque
		 * marker, and renamed over the name: it never shows the old content,
		 * a daemon killed half way leaves only the hidden name, and it gets
		 * what a new directory gets there (the default ACL, the group of a
		 * set-group-ID directory).
		 */
		fs_work_name(fs, LAYER_PREFIX "mkdir", tmp);
		r = util_mkdirat(pu, tmp, mode & 07777);
		if (r == -EEXIST) { /* left by a daemon killed half way */
			(void)util_rm_rf_at(pu, tmp);
			r = util_mkdirat(pu, tmp, mode & 07777);
		}
		if (r < 0)
			goto out;
		dfd = util_openat(pu, tmp, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		r = dfd < 0 ? dfd : layer_set_opaque(dfd);
		util_close(dfd);
		if (r == 0)
			r = fs_set_owner(fs, req, pu, tmp, parent, NULL);
		if (r == 0)
			r = util_renameat(pu, tmp, pu, uname);
		if (r < 0) {
			(void)util_rm_rf_at(pu, tmp);
			goto out;
		}
	} else {
		if (S_ISDIR(mode)) {
			r = util_mkdirat(pu, uname, mode & 07777);
		} else if (ret_fd) {
			/* create(): O_EXCL because the name was checked absent under fs->ns. */
			fd = util_openat(pu, uname,
					 (open_flags & ~(O_NOCTTY | O_DIRECT)) | O_CREAT | O_EXCL |
						 O_NOFOLLOW,
					 mode & 07777);
			r = fd < 0 ? fd : 0;
		} else if (S_ISLNK(mode))
			r = util_symlinkat(link_target, pu, uname);
		else
			r = mknodat(pu, uname, mode, rdev) < 0 ? -errno : 0;
		if (r < 0)
			goto out;
		r = fs_set_owner(fs, req, pu, uname, parent, &st);
		if (r < 0) {
			(void)unlinkat(pu, uname, S_ISDIR(mode) ? AT_REMOVEDIR : 0);
			goto out;
		}
		made = !S_ISDIR(mode);
	}
	if (wh)
		(void)layer_clear_whiteout(pu, name);
	if (made)
		r = fs_lookup_made(fs, parent, name, &st, &inode, &e->attr);
	else
		r = fs_lookup(fs, parent, name, &inode, &e->attr);
	/* Nothing gives a new file a security.capability (xattr.c asks for it at each write). */
	if (r == 0 && S_ISREG(mode))
		fs_xattr_no_caps(fs, inode);
	if (r == 0) {
		e->ino = fs_inode_nodeid(fs, inode);
		e->attr_timeout = e->entry_timeout = fs->timeout;
		if (ret_fd) {
			*ret_fd = fd;
			fd = -1;
		}
	}
out:
	util_close(fd);
	fs_put_fd(pu, po);
	pthread_rwlock_unlock(&fs->ns);
	strbuf_release(&path);
	return r;
}

int fs_do_link(struct fs *fs, struct fs_inode *inode, struct fs_inode *parent, const char *name,
	       struct fuse_entry_param *e)
{
	struct strbuf path = STRBUF_INIT;
	char buf[NAME_MAX + 1], sbuf[NAME_MAX + 1];
	const char *uname, *sname;
	struct child c;
	bool po = false, so = false;
	int pu = -1, sd = -1, r;

	if (inode->type == S_IFDIR)
		return -EPERM;
	pthread_rwlock_wrlock(&fs->ns);
	parent->dgen++; /* kept listings of parent are out of date */
	r = child_state(fs, parent, name, &c);
	if (r == 0 && c.where != LAYER_NONE)
		r = -EEXIST;
	if (r == 0)
		r = layer_encode(name, buf, &uname);
	if (r == 0)
		r = fs_copy_up_locked(fs, inode, 0);
	if (r == 0)
		r = fs_copy_up_dir_locked(fs, parent);
	if (r == 0)
		r = fs_child_path(fs, parent, name, &path);
	if (r == 0)
		r = fs_touch_child(fs, parent, name, path.buf);
	if (r < 0)
		goto out;
	pu = fs_dir_upper_fd(fs, parent, &po);
	if (pu < 0) {
		r = pu;
		goto out;
	}
	if (inode->anchor_fd >= 0) {
		char proc[64];

		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", inode->anchor_fd);
		r = linkat(AT_FDCWD, proc, pu, uname, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
	} else {
		r = fs_inode_at(fs, inode, true, &sd, &so, sbuf, &sname);
		if (r == 0)
			r = linkat(sd, sname, pu, uname, 0) < 0 ? -errno : 0;
	}
	if (r < 0)
		goto out;
	(void)layer_clear_whiteout(pu, name);
	if (fstatat(pu, uname, &e->attr, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto out;
	}
	fs_fix_stat(fs, inode, &e->attr);
	pthread_mutex_lock(&fs->table);
	inode->nlookup++;
	pthread_mutex_unlock(&fs->table);
	e->ino = fs_inode_nodeid(fs, inode);
	e->attr_timeout = e->entry_timeout = fs->timeout;
out:
	fs_put_fd(sd, so);
	fs_put_fd(pu, po);
	pthread_rwlock_unlock(&fs->ns);
	strbuf_release(&path);
	return r;
}

int fs_do_unlink(struct fs *fs, struct fs_inode *parent, const char *name, bool dir)
{
	struct strbuf path = STRBUF_INIT;
	struct fs_inode *inode = NULL;
	char buf[NAME_MAX + 1];
	const char *uname;
	struct child c;
	struct stat st;
	bool po = false, counted = false;
	int pu = -1, wh, r;

	pthread_rwlock_wrlock(&fs->ns);
	parent->dgen++; /* kept listings of parent are out of date */
	r = child_state(fs, parent, name, &c);
	if (r == 0 && c.where == LAYER_NONE)
		r = -ENOENT;
	if (r == 0 && dir && !S_ISDIR(c.st.st_mode))
		r = -ENOTDIR;
	if (r == 0 && !dir && S_ISDIR(c.st.st_mode))
		r = -EISDIR;
	if (r < 0)
		goto out;
	if (dir) {
		/* We need the directory's inode to see its merged content. */
		r = fs_lookup(fs, parent, name, &inode, &st);
		if (r < 0)
			goto out;
		counted = true;
		r = fs_dir_is_empty(fs, inode);
		if (r == 0)
			r = -ENOTEMPTY;
		if (r < 0)
			goto out;
	} else {
		inode = fs_inode_find(fs, &c.key);
	}
	r = layer_encode(name, buf, &uname);
	if (r == 0)
		r = fs_child_path(fs, parent, name, &path);
	if (r == 0)
		r = fs_touch_child(fs, parent, name, path.buf);
	if (r == 0)
		r = fs_copy_up_dir_locked(fs, parent);
	if (r < 0)
		goto out;
	pu = fs_dir_upper_fd(fs, parent, &po);
	if (pu < 0) {
		r = pu;
		goto out;
	}
	wh = child_lower_has(fs, parent, name, &c);
	if (wh < 0) {
		r = wh;
		goto out;
	}
	/* Open handles (a process's cwd too) still fstat() what they hold. */
	if (inode) {
		int dfd = pu;
		bool dfo = false;

		if (c.where == LAYER_LOWER) {
			dfd = fs_dir_lower_fd(fs, parent, &dfo);
			if (dfd < 0)
				dfd = -1;
		}
		if (dfd >= 0)
			anchor(inode, dfd, c.where == LAYER_UPPER ? uname : name);
		if (dfd != pu)
			fs_put_fd(dfd, dfo);
	}
	/* Whiteout first: until the upper entry goes, it still wins, so no state in between shows. */
	if (wh) {
		r = set_whiteout(fs, pu, name);
		if (r < 0)
			goto out;
	}
	if (c.where == LAYER_UPPER) {
		if (dir)
			r = trash_dir(fs, pu, uname);
		else
			r = util_unlinkat(pu, uname, 0);
		if (r < 0) {
			if (wh)
				(void)layer_clear_whiteout(pu, name);
			goto out;
		}
		if (dir || c.st.st_nlink <= 1)
			fs_origin_remove(fs, c.st.st_dev, c.st.st_ino);
	}
	if (inode)
		r = fs_inode_move(fs, inode, NULL, NULL);
out:
	if (counted)
		fs_inode_forget(fs, inode, 1);
	fs_put_fd(pu, po);
	pthread_rwlock_unlock(&fs->ns);
	strbuf_release(&path);
	return r;
}

/* Give a directory about to move an explicit lower part: its origin, or opaque. */
static int pin_lower(struct fs *fs, struct fs_inode *dir)
{
	struct strbuf lp = STRBUF_INIT;
	bool uo;
	int u, r;

	u = fs_dir_upper_fd(fs, dir, &uo);
	if (u < 0)
		return u;
	if (dir->lower && !dir->opaque) {
		r = fs_lower_path(fs, dir, &lp);
		if (r == 0)
			r = layer_set_origin(u, lp.buf);
		if (r == 0 && !dir->redirect) {
			dir->redirect = strbuf_detach(&lp);
			if (!dir->redirect)
				r = -ENOMEM;
		}
	} else {
		r = layer_set_opaque(u);
		if (r == 0)
			dir->opaque = true;
	}
	fs_put_fd(u, uo);
	strbuf_release(&lp);
	return r;
}

/*
 * RENAME_EXCHANGE; caller holds fs->ns for writing. Both objects are copied
 * up and swapped with one renameat2() in the upper layer: each name then has
 * an upper entry, which hides any lower namesake, so no whiteout is needed;
 * moved directories get their lower part pinned (origin or opaque) first.
 */
static int exchange(struct fs *fs, struct fs_inode *parent, const char *name,
		    struct fs_inode *newparent, const char *newname, const struct child *sc,
		    const struct child *dc)
{
	struct strbuf oldpath = STRBUF_INIT, newpath = STRBUF_INIT;
	struct fs_inode *src = NULL, *dst = NULL;
	char buf[NAME_MAX + 1], nbuf[NAME_MAX + 1];
	const char *uname, *nuname;
	bool po = false, npo = false;
	int pu = -1, npu = -1, r;
	struct stat st;

	if (dc->where == LAYER_NONE)
		return -ENOENT;
	if (same_object(sc, dc))
		return 0; /* two names of one file */
	r = layer_encode(name, buf, &uname);
	if (r == 0)
		r = layer_encode(newname, nbuf, &nuname);
	if (r == 0)
		r = fs_lookup(fs, parent, name, &src, &st);
	if (r < 0)
		return r;
	r = fs_lookup(fs, newparent, newname, &dst, &st);
	if (r < 0)
		goto out_src;
	r = fs_child_path(fs, parent, name, &oldpath);
	if (r == 0)
		r = fs_child_path(fs, newparent, newname, &newpath);
	if (r == 0)
		r = fs_touch_child(fs, parent, name, oldpath.buf);
	if (r == 0)
		r = fs_touch_child(fs, newparent, newname, newpath.buf);
	if (r == 0 && S_ISDIR(sc->st.st_mode))
		r = fs_touch_tree(fs, src, oldpath.buf, newpath.buf);
	if (r == 0 && S_ISDIR(dc->st.st_mode))
		r = fs_touch_tree(fs, dst, newpath.buf, oldpath.buf);
	if (r == 0)
		r = fs_copy_up_dir_locked(fs, parent);
	if (r == 0)
		r = fs_copy_up_dir_locked(fs, newparent);
	if (r == 0)
		r = fs_copy_up_locked(fs, src, 0);
	if (r == 0)
		r = fs_copy_up_locked(fs, dst, 0);
	if (r == 0 && S_ISDIR(sc->st.st_mode))
		r = pin_lower(fs, src);
	if (r == 0 && S_ISDIR(dc->st.st_mode))
		r = pin_lower(fs, dst);
	if (r < 0)
		goto out;
	pu = fs_dir_upper_fd(fs, parent, &po);
	npu = fs_dir_upper_fd(fs, newparent, &npo);
	if (pu < 0 || npu < 0) {
		r = pu < 0 ? pu : npu;
		goto out;
	}
	r = renameat2(pu, uname, npu, nuname, RENAME_EXCHANGE) < 0 ? -errno : 0;
	if (r < 0)
		goto out;
	r = fs_inode_move(fs, src, newparent, newname);
	if (r == 0)
		r = fs_inode_move(fs, dst, parent, name);
out:
	fs_put_fd(pu, po);
	fs_put_fd(npu, npo);
	fs_inode_forget(fs, dst, 1);
	strbuf_release(&oldpath);
	strbuf_release(&newpath);
out_src:
	fs_inode_forget(fs, src, 1);
	return r;
}

int fs_do_rename(struct fs *fs, struct fs_inode *parent, const char *name,
		 struct fs_inode *newparent, const char *newname, unsigned flags)
{
	struct strbuf oldpath = STRBUF_INIT, newpath = STRBUF_INIT;
	struct fs_inode *src = NULL, *dst = NULL;
	char buf[NAME_MAX + 1], nbuf[NAME_MAX + 1];
	const char *uname, *nuname;
	struct child sc, dc;
	struct stat st;
	bool po = false, npo = false, dst_counted = false;
	int pu = -1, npu = -1, wh, r;

	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return -EINVAL; /* RENAME_WHITEOUT is for overlay file systems */
	if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE))
		return -EINVAL;
	pthread_rwlock_wrlock(&fs->ns);
	parent->dgen++; /* kept listings of both are out of date */
	newparent->dgen++;
	r = child_state(fs, parent, name, &sc);
	if (r == 0 && sc.where == LAYER_NONE)
		r = -ENOENT;
	if (r == 0)
		r = child_state(fs, newparent, newname, &dc);
	if (r == 0 && (flags & RENAME_EXCHANGE)) {
		r = exchange(fs, parent, name, newparent, newname, &sc, &dc);
		goto out;
	}
	if (r == 0)
		r = layer_encode(name, buf, &uname);
	if (r == 0)
		r = layer_encode(newname, nbuf, &nuname);
	if (r < 0)
		goto out;
	if (dc.where != LAYER_NONE) {
		if (same_object(&sc, &dc))
			goto out; /* two names of one file: POSIX says do nothing */
		if (flags & RENAME_NOREPLACE) {
			r = -EEXIST;
			goto out;
		}
		if (S_ISDIR(sc.st.st_mode) && !S_ISDIR(dc.st.st_mode)) {
			r = -ENOTDIR;
			goto out;
		}
		if (!S_ISDIR(sc.st.st_mode) && S_ISDIR(dc.st.st_mode)) {
			r = -EISDIR;
			goto out;
		}
		if (S_ISDIR(dc.st.st_mode)) {
			r = fs_lookup(fs, newparent, newname, &dst, &st);
			if (r < 0)
				goto out;
			dst_counted = true;
			r = fs_dir_is_empty(fs, dst);
			if (r == 0)
				r = -ENOTEMPTY;
			if (r < 0)
				goto out;
		} else {
			dst = fs_inode_find(fs, &dc.key);
		}
	}
	/* An upper file is what child_state() saw; anything else needs its layers looked at. */
	if (sc.where == LAYER_UPPER && !S_ISDIR(sc.st.st_mode))
		r = fs_lookup_made(fs, parent, name, &sc.st, &src, &st);
	else
		r = fs_lookup(fs, parent, name, &src, &st);
	if (r < 0)
		goto out;
	r = fs_child_path(fs, parent, name, &oldpath);
	if (r == 0)
		r = fs_child_path(fs, newparent, newname, &newpath);
	if (r == 0)
		r = fs_touch_child(fs, parent, name, oldpath.buf);
	if (r == 0)
		r = fs_touch_child(fs, newparent, newname, newpath.buf);
	if (r == 0 && S_ISDIR(sc.st.st_mode))
		r = fs_touch_tree(fs, src, oldpath.buf, newpath.buf);
	if (r == 0)
		r = fs_copy_up_dir_locked(fs, parent);
	if (r == 0)
		r = fs_copy_up_dir_locked(fs, newparent);
	if (r == 0)
		r = fs_copy_up_locked(fs, src, 0);
	if (r == 0 && S_ISDIR(sc.st.st_mode))
		r = pin_lower(fs, src);
	if (r < 0)
		goto out_forget;
	pu = fs_dir_upper_fd(fs, parent, &po);
	npu = fs_dir_upper_fd(fs, newparent, &npo);
	if (pu < 0 || npu < 0) {
		r = pu < 0 ? pu : npu;
		goto out_forget;
	}
	wh = child_lower_has(fs, parent, name, &sc);
	if (wh < 0) {
		r = wh;
		goto out_forget;
	}
	/* Hide the old name's lower entry first: the upper entry still wins until it moves. */
	if (wh) {
		r = set_whiteout(fs, pu, name);
		if (r < 0)
			goto out_forget;
	}
	if (dc.where == LAYER_UPPER && S_ISDIR(dc.st.st_mode)) {
		anchor(dst, npu, nuname);
		r = trash_dir(fs, npu, nuname);
		if (r < 0)
			goto out_forget;
	} else if (dc.where == LAYER_UPPER && dst) {
		anchor(dst, npu, nuname);
	} else if (dc.where == LAYER_LOWER && dst) {
		bool lo;
		int l = fs_dir_lower_fd(fs, newparent, &lo);

		if (l >= 0) {
			anchor(dst, l, newname);
			fs_put_fd(l, lo);
		}
	}
	r = util_renameat(pu, uname, npu, nuname);
	if (r < 0) {
		if (wh)
			(void)layer_clear_whiteout(pu, name);
		goto out_forget;
	}
	if (dc.probe.whiteout != 0)
		(void)layer_clear_whiteout(npu, newname);
	if (dc.where == LAYER_UPPER && (S_ISDIR(dc.st.st_mode) || dc.st.st_nlink <= 1))
		fs_origin_remove(fs, dc.st.st_dev, dc.st.st_ino);
	if (dst && dst != src)
		(void)fs_inode_move(fs, dst, NULL, NULL);
	r = fs_inode_move(fs, src, newparent, newname);
out_forget:
	fs_inode_forget(fs, src, 1);
out:
	if (dst_counted)
		fs_inode_forget(fs, dst, 1);
	fs_put_fd(pu, po);
	fs_put_fd(npu, npo);
	pthread_rwlock_unlock(&fs->ns);
	strbuf_release(&oldpath);
	strbuf_release(&newpath);
	return r;
}
