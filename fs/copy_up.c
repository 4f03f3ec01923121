// SPDX-License-Identifier: MIT
/*
 * Copy-up and change recording. Before anything about a path changes in the
 * upper layer, fs_touch() records the path in the index with PKG's original
 * state and stores the original's bytes in the blob store. A copy-up then
 * builds the upper copy in work/ (data, owner, mode, xattrs, times) and
 * renames it into place, so the upper layer never shows a half-copied file,
 * even after kill -9 of the daemon.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"

const char *fs_work_name(struct fs *fs, const char *prefix, char buf[64])
{
	unsigned long n = __atomic_add_fetch(&fs->work_seq, 1, __ATOMIC_RELAXED);

	snprintf(buf, 64, "%s.%lu", prefix, n);
	return buf;
}

int fs_load_touched(struct fs *fs)
{
	struct store_change *c;
	size_t n;
	int r = store_change_list(fs->cfg->store, fs->cfg->txn, false, &c, &n);

	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++)
		r = strset_add(&fs->touched, c[i].path);
	store_changes_free(c, n);
	return r < 0 ? r : 0;
}

void fs_free_touched(struct fs *fs)
{
	strset_release(&fs->touched);
}

/* Has path's original been recorded? */
static bool touched(struct fs *fs, const char *path)
{
	bool seen;

	pthread_mutex_lock(&fs->touch_lock);
	seen = strset_has(&fs->touched, path);
	pthread_mutex_unlock(&fs->touch_lock);
	return seen;
}

/*
 * Record path's original, read as rel in dirfd (path in PKG's root, a name
 * in PKG's directory of the path, or for STORE_PATH_ROOT the mount root
 * itself), before the first change to it.
 */
static int touch(struct fs *fs, int dirfd, const char *rel, const char *path, bool absent)
{
	struct strbuf xattrs = STRBUF_INIT;
	struct store_entry orig = { 0 };
	bool staged = false;
	uint64_t off = 0;
	int64_t start;
	int r, tries = 0;

	if (touched(fs, path))
		return 0;
	/*
	 * PKG's bytes as they are now go into the store (staged: one append to
	 * the transaction's staging file) and the path's row, with their
	 * location, into the transaction's change log (one more append), before
	 * any change is made.
	 */
	if (!absent) {
		start = util_mono_ns();
		do {
			/* Its xattrs too: commit compares them with PKG's, undo puts them back. */
			r = store_entry_stage_at(fs->cfg->store, fs->cfg->txn, dirfd, rel,
						 &orig, &xattrs, &staged, &off);
		} while (r == -EAGAIN && ++tries < 5);
		if (r < 0) {
			strbuf_release(&xattrs);
			return log_debug_errno(r, "cannot store the original of '%s'", path);
		}
		__atomic_add_fetch(&fs->backup_ns, util_mono_ns() - start, __ATOMIC_RELAXED);
	}
	r = store_changelog_append(fs->cfg->store, fs->cfg->txn, path, &orig, &xattrs, staged, off);
	strbuf_release(&xattrs);
	if (r < 0)
		return log_debug_errno(r, "cannot record '%s' in the change log", path);
	pthread_mutex_lock(&fs->touch_lock);
	r = strset_add(&fs->touched, path);
	pthread_mutex_unlock(&fs->touch_lock);
	return r < 0 ? r : 0;
}

int fs_touch(struct fs *fs, const char *path)
{
	return touch(fs, fs->lower_fd, path, path, false);
}

int fs_touch_child(struct fs *fs, struct fs_inode *parent, const char *name, const char *path)
{
	bool lo;
	int l, r;

	if (touched(fs, path))
		return 0;
	if (!parent->lower || parent->opaque || !fs_lower_at_same_path(fs, parent))
		return fs_touch(fs, path);
	l = fs_dir_lower_fd(fs, parent, &lo);
	if (l < 0)
		return fs_touch(fs, path);
	r = touch(fs, l, name, path, false);
	fs_put_fd(l, lo);
	return r;
}

int fs_touch_absent(struct fs *fs, const char *path)
{
	return touch(fs, fs->lower_fd, path, path, true);
}

static int touch_level(struct fs *fs, int u, int l, struct strbuf *oldp, struct strbuf *newp,
		       int depth)
{
	struct fs_dirent *v;
	size_t n;
	int r;

	if (depth > 4096)
		return -ELOOP;
	r = fs_list_merged(fs, u, l, &v, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r >= 0; i++) {
		size_t ol = oldp->len, nl = newp->len;

		r = strbuf_addf(oldp, "/%s", v[i].name);
		if (r == 0)
			r = strbuf_addf(newp, "/%s", v[i].name);
		if (r == 0)
			r = fs_touch(fs, oldp->buf);
		if (r == 0)
			r = fs_touch(fs, newp->buf);
		if (r == 0 && v[i].type == DT_DIR) {
			enum layer_where where;
			struct stat st;
			int nu = -1, nlo = -1;

			r = layer_lookup(u, l, v[i].name, &st, &where);
			if (r == 0)
				r = layer_open_dir(fs->lower_fd, u, l, v[i].name, where, &nu, &nlo);
			if (r == 0)
				r = touch_level(fs, nu, nlo, oldp, newp, depth + 1);
			util_close(nu);
			util_close(nlo);
		}
		oldp->len = ol;
		oldp->buf[ol] = '\0';
		newp->len = nl;
		newp->buf[nl] = '\0';
	}
	fs_dirents_free(v, n);
	return r;
}

int fs_touch_tree(struct fs *fs, struct fs_inode *dir, const char *oldpath, const char *newpath)
{
	struct strbuf o = STRBUF_INIT, n = STRBUF_INIT;
	bool uo = false, lo = false;
	int u = -1, l = -1, r;

	if (dir->upper) {
		u = fs_dir_upper_fd(fs, dir, &uo);
		if (u < 0)
			return u;
	}
	if (dir->lower && !dir->opaque) {
		l = fs_dir_lower_fd(fs, dir, &lo);
		if (l < 0 && l != -ENOENT) {
			fs_put_fd(u, uo);
			return l;
		}
	}
	r = strbuf_adds(&o, oldpath);
	if (r == 0)
		r = strbuf_adds(&n, newpath);
	if (r == 0)
		r = touch_level(fs, u, l, &o, &n, 0);
	strbuf_release(&o);
	strbuf_release(&n);
	fs_put_fd(u, uo);
	fs_put_fd(l, lo);
	return r;
}

int fs_set_owner(struct fs *fs, fuse_req_t req, int dirfd, const char *name,
		 struct fs_inode *parent, struct stat *ret_st)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat pst, st;
	gid_t gid = ctx->gid;

	(void)parent;
	if (!fs->root && !ret_st)
		return 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (ret_st)
		*ret_st = st;
	if (!fs->root)
		return 0;
	/*
	 * In a set-group-ID directory the new object keeps the directory's
	 * group, which the kernel gave it already: a group other than the
	 * daemon's says so. Only a new object of the daemon's group that should
	 * be someone else's needs a look at the directory.
	 */
	if (st.st_gid != fs->gid)
		gid = st.st_gid;
	else if (gid != st.st_gid && fstatat(dirfd, ".", &pst, 0) == 0 && (pst.st_mode & S_ISGID))
		gid = pst.st_gid;
	if (st.st_uid == ctx->uid && st.st_gid == gid)
		return 0;
	if (fchownat(dirfd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	/* chown clears set-user-ID and set-group-ID on files: put them back. */
	if (!S_ISLNK(st.st_mode) && (st.st_mode & (S_ISUID | S_ISGID)) &&
	    fchmodat(dirfd, name, st.st_mode & 07777, 0) < 0)
		return -errno;
	if (ret_st && fstatat(dirfd, name, ret_st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return 0;
}

int fs_copy_xattrs(int srcdir, const char *src, int dstdir, const char *dst)
{
	struct strbuf list = STRBUF_INIT;
	int r = store_xattrs_read_at(srcdir, src, &list);

	if (r == 0)
		r = store_xattrs_apply_at(dstdir, dst, list.buf, list.len);
	strbuf_release(&list);
	return r;
}

int fs_copy_up_dir_locked(struct fs *fs, struct fs_inode *dir)
{
	struct timespec times[2];
	char tmp[64], buf[NAME_MAX + 1];
	const char *uname;
	struct stat st;
	bool po, lo;
	int pu, l, r;

	if (dir == &fs->root_inode || dir->upper)
		return 0;
	if (dir->unlinked || !dir->parent)
		return -ENOENT;
	r = fs_copy_up_dir_locked(fs, dir->parent);
	if (r < 0)
		return r;
	l = fs_dir_lower_fd(fs, dir, &lo);
	if (l < 0)
		return l;
	if (fstat(l, &st) < 0) {
		r = -errno;
		fs_put_fd(l, lo);
		return r;
	}
	pu = fs_dir_upper_fd(fs, dir->parent, &po);
	if (pu < 0) {
		fs_put_fd(l, lo);
		return pu;
	}
	r = layer_encode(dir->name, buf, &uname);
	if (r < 0)
		goto out;
	fs_work_name(fs, "dir", tmp);
	r = util_mkdirat(fs->work_fd, tmp, 0700);
	if (r < 0)
		goto out;
	if (fs->root)
		(void)fchownat(fs->work_fd, tmp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
	(void)fchmodat(fs->work_fd, tmp, st.st_mode & 07777, 0);
	r = fs_copy_xattrs(l, ".", fs->work_fd, tmp);
	if (r < 0) {
		(void)unlinkat(fs->work_fd, tmp, AT_REMOVEDIR);
		goto out;
	}
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	(void)utimensat(fs->work_fd, tmp, times, AT_SYMLINK_NOFOLLOW);
	/* Whole or not at all: a crash leaves only a stray directory in work/. */
	r = util_renameat(fs->work_fd, tmp, pu, uname);
	if (r < 0) {
		(void)unlinkat(fs->work_fd, tmp, AT_REMOVEDIR);
		goto out;
	}
	if (fstatat(pu, uname, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		dir->upper_dev = st.st_dev;
		dir->upper_ino = st.st_ino;
		/* Found in upper from now on: keep the key, or a lookup makes a second inode. */
		fs_origin_add(fs, &st, &dir->key);
	}
	dir->upper = true;
out:
	fs_put_fd(l, lo);
	fs_put_fd(pu, po);
	return r;
}

/*
 * Copy up an object that has no name left in the merged tree but is still
 * open (or a process's cwd), so that it can be changed: PKG is never written.
 * The copy is built in work/ from the inode's anchor, opened O_PATH, and its
 * name removed again: like the object it stands for, it has no links, and
 * it goes away when the kernel forgets the inode. Nothing is recorded: the
 * path's removal already was. Caller holds fs->ns for writing.
 */
static int copy_up_orphan(struct fs *fs, struct fs_inode *inode, unsigned flags)
{
	struct timespec times[2];
	char tmp[64], src_path[64];
	struct stat st;
	int src = -1, dst = -1, anchor_fd = -1, r;

	if (inode->anchor_fd < 0)
		return -ENOENT;
	if (fstatat(inode->anchor_fd, "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	snprintf(src_path, sizeof(src_path), "/proc/self/fd/%d", inode->anchor_fd);
	fs_work_name(fs, "orphan", tmp);
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		src = util_openat_noatime(AT_FDCWD, src_path, O_RDONLY | O_NONBLOCK);
		if (src < 0)
			return src;
		dst = util_openat(fs->work_fd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (dst < 0)
			r = dst;
		else if (flags & FS_COPY_UP_NO_DATA)
			r = 0;
		else
			r = util_copy_sparse(src, dst, st.st_size);
		break;
	case S_IFDIR:
		r = util_mkdirat(fs->work_fd, tmp, 0700);
		break;
	case S_IFLNK: {
		char target[PATH_MAX];
		ssize_t n = readlinkat(inode->anchor_fd, "", target, sizeof(target) - 1);

		if (n < 0)
			return -errno;
		target[n] = '\0';
		r = util_symlinkat(target, fs->work_fd, tmp);
		break;
	}
	default:
		r = mknodat(fs->work_fd, tmp, st.st_mode, st.st_rdev) < 0 ? -errno : 0;
		break;
	}
	if (r < 0)
		goto out;
	if (fs->root)
		(void)fchownat(fs->work_fd, tmp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
	if (!S_ISLNK(st.st_mode))
		(void)fchmodat(fs->work_fd, tmp, st.st_mode & 07777, 0);
	r = fs_copy_xattrs(inode->anchor_fd, "", fs->work_fd, tmp);
	if (r < 0)
		goto out;
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	(void)utimensat(fs->work_fd, tmp, times, AT_SYMLINK_NOFOLLOW);
	anchor_fd = util_openat(fs->work_fd, tmp, O_PATH | O_NOFOLLOW, 0);
	r = anchor_fd < 0 ? anchor_fd : 0;
	if (r == 0 && fstat(anchor_fd, &st) == 0) {
		inode->upper_dev = st.st_dev;
		inode->upper_ino = st.st_ino;
	}
out:
	(void)unlinkat(fs->work_fd, tmp, S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
	util_close(src);
	util_close(dst);
	if (r < 0)
		return r;
	util_close(inode->anchor_fd);
	inode->anchor_fd = anchor_fd;
	__atomic_store_n(&inode->upper, true, __ATOMIC_RELEASE);
	return 0;
}

int fs_copy_up_dir_touch_locked(struct fs *fs, struct fs_inode *dir)
{
	struct strbuf p = STRBUF_INIT;
	int r;

	/*
	 * The mount root is the upper root, given PKG root's attributes when
	 * the transaction was first mounted: its original is what it shows
	 * before this first change. So a change made to PKG's root since then
	 * is a conflict at commit, not something the commit undoes.
	 */
	if (dir == &fs->root_inode)
		return touch(fs, fs->upper_fd, STORE_PATH_ROOT, STORE_PATH_ROOT, false);
	r = fs_copy_up_dir_locked(fs, dir);
	if (r == 0)
		r = fs_path(fs, dir, &p);
	if (r == 0)
		r = fs_touch(fs, p.buf);
	strbuf_release(&p);
	return r;
}

/* Copy up; caller holds fs->ns for writing, which also serialises copy-ups. */
int fs_copy_up_locked(struct fs *fs, struct fs_inode *inode, unsigned flags)
{
	struct strbuf path = STRBUF_INIT;
	struct timespec times[2];
	char tmp[64], buf[NAME_MAX + 1];
	const char *uname;
	struct stat st, ust;
	bool lo = false, po = false;
	int l = -1, pu = -1, src = -1, dst = -1, r;

	if (inode->upper)
		return 0;
	if (inode->unlinked)
		return copy_up_orphan(fs, inode, flags);
	if (inode->type == S_IFDIR)
		return fs_copy_up_dir_locked(fs, inode);
	if (!inode->parent)
		return -ENOENT;
	r = fs_path(fs, inode, &path);
	if (r == 0)
		r = fs_touch_child(fs, inode->parent, inode->name, path.buf);
	if (r == 0)
		r = fs_copy_up_dir_locked(fs, inode->parent);
	if (r < 0)
		goto out;
	l = fs_dir_lower_fd(fs, inode->parent, &lo);
	if (l < 0) {
		r = l;
		goto out;
	}
	if (fstatat(l, inode->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto out;
	}
	fs_work_name(fs, "file", tmp);
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		src = util_openat_noatime(l, inode->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
		if (src < 0) {
			r = src;
			goto out;
		}
		dst = util_openat(fs->work_fd, tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
		if (dst < 0) {
			r = dst;
			goto out;
		}
		if (!(flags & FS_COPY_UP_NO_DATA))
			r = util_copy_sparse(src, dst, st.st_size);
		break;
	case S_IFLNK: {
		char target[PATH_MAX];
		ssize_t n = readlinkat(l, inode->name, target, sizeof(target) - 1);

		if (n < 0) {
			r = -errno;
			goto out;
		}
		target[n] = '\0';
		r = util_symlinkat(target, fs->work_fd, tmp);
		break;
	}
	default:
		r = mknodat(fs->work_fd, tmp, st.st_mode, st.st_rdev) < 0 ? -errno : 0;
		break;
	}
	if (r < 0)
		goto out_unlink;
	if (fs->root)
		(void)fchownat(fs->work_fd, tmp, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
	if (!S_ISLNK(st.st_mode) && fchmodat(fs->work_fd, tmp, st.st_mode & 07777, 0) < 0) {
		r = -errno;
		goto out_unlink;
	}
	r = fs_copy_xattrs(l, inode->name, fs->work_fd, tmp);
	if (r < 0)
		goto out_unlink;
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	(void)utimensat(fs->work_fd, tmp, times, AT_SYMLINK_NOFOLLOW);
	pu = fs_dir_upper_fd(fs, inode->parent, &po);
	if (pu < 0) {
		r = pu;
		goto out_unlink;
	}
	r = layer_encode(inode->name, buf, &uname);
	if (r < 0)
		goto out_unlink;
	r = util_renameat(fs->work_fd, tmp, pu, uname);
	if (r < 0)
		goto out_unlink;
	if (fstatat(pu, uname, &ust, AT_SYMLINK_NOFOLLOW) == 0) {
		inode->upper_dev = ust.st_dev;
		inode->upper_ino = ust.st_ino;
		fs_origin_add(fs, &ust, &inode->key);
	}
	inode->upper = true;
	goto out;

out_unlink:
	(void)unlinkat(fs->work_fd, tmp, 0);
out:
	util_close(src);
	util_close(dst);
	fs_put_fd(l, lo);
	fs_put_fd(pu, po);
	strbuf_release(&path);
	return r;
}

int fs_copy_up(struct fs *fs, struct fs_inode *inode, unsigned flags)
{
	int r;

	if (__atomic_load_n(&inode->upper, __ATOMIC_ACQUIRE))
		return 0;
	pthread_rwlock_wrlock(&fs->ns);
	r = fs_copy_up_locked(fs, inode, flags);
	pthread_rwlock_unlock(&fs->ns);
	return r;
}
