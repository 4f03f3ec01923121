// SPDX-License-Identifier: MIT
/*
 * Acting on history: undo a committed transaction, and restore the originals
 * of any transaction. Into PKG both are new transactions whose change set is
 * built from the store, committed with the same protocol as cjfs commit
 * (cjfs_commit_sealed): conflict check, verified temporaries, commit point,
 * promote. Into a directory (restore --to) the same discipline applies:
 * everything is staged and verified before the first name appears.
 */
#include "cjfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleaner_int.h"
#include "log.h"

/*
 * Re-hash the blob of every entry that has content (e[i] of rows selected by
 * on, or all when on is NULL) before anything is written: a damaged store
 * fails the whole operation up front, naming the path and the blob.
 */
static int verify_contents(struct cjfs *c, const struct store_change *rows, size_t n,
			   const bool *on, bool orig_side, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		const struct store_entry *e = orig_side ? &rows[i].orig : &rows[i].new;
		char name[96], hex[HASH_HEX_LEN + 1];
		int r;

		if ((on && !on[i]) || !e->has_hash || !(S_ISREG(e->mode) || S_ISLNK(e->mode)))
			continue;
		r = store_blob_verify(cjfs_store(c), e->hash);
		if (r == 0)
			continue;
		hash_to_hex(e->hash, hex);
		store_blob_file(cjfs_store(c), e->hash, name);
		if (r == -EBADMSG)
			log_error("cannot %s: the original of '%s' (sha256 %s) is corrupt in the store ('%s'): nothing was written; run 'cjfs verify'",
				  what, rows[i].path, hex, name);
		else if (r == -ENOENT)
			log_error("cannot %s: the original of '%s' (sha256 %s) is missing from the store ('%s'): nothing was written; run 'cjfs verify'",
				  what, rows[i].path, hex, name);
		else
			log_errno(r, "cannot %s: cannot read the original of '%s' ('%s')", what,
				  rows[i].path, name);
		return r;
	}
	return 0;
}

static int open_pkg_of(const struct store_txn *t, const char *what)
{
	int fd = store_txn_open_pkg(t);

	if (fd == -ESTALE || fd == -ENOENT)
		log_error("cannot %s: '%s' is no longer the directory transaction %lld worked on; nothing was changed",
			  what, t->pkg, (long long)t->id);
	else if (fd < 0)
		log_errno(fd, "cannot %s: cannot open '%s'", what, t->pkg);
	return fd;
}

static void explain_begin_failure(int r, const struct store_txn *src, int64_t other,
				  const char *what)
{
	if (r == -EBUSY)
		log_error("cannot %s: '%s' has open transaction %lld; commit or roll it back first",
			  what, src->pkg, (long long)other);
	else if (r == -ESTALE)
		log_error("cannot %s: transaction %lld was undone meanwhile; nothing was changed",
			  what, (long long)src->id);
	else if (r == -ENOENT)
		log_error("cannot %s: transaction %lld was dropped by gc meanwhile; nothing was changed",
			  what, (long long)src->id);
	else
		log_errno(r, "cannot %s: cannot record the new transaction", what);
}

/*
 * Create the transaction from its change set and commit it; the "finish"
 * lock taken with the row is held until it is over.
 */
static int commit_synthetic(struct cjfs *c, const struct store_txn *src,
			    const struct store_txn_synth *spec, const struct store_change *ch,
			    size_t n, int pkg_fd, unsigned flags, int64_t start, const char *since,
			    const char *what, struct cjfs_result *ret)
{
	struct store *s = cjfs_store(c);
	struct store_txn *nt = NULL;
	int64_t id = 0, other = 0;
	int lock = -1, r;

	r = store_txn_begin_sealed(s, spec, ch, n, &id, &other, &lock);
	if (r < 0) {
		explain_begin_failure(r, src, other, what);
		return r;
	}
	r = store_txn_load(s, id, &nt);
	if (r < 0) {
		log_errno(r, "cannot %s: cannot load transaction %lld", what, (long long)id);
		(void)store_txn_transition(s, id, STORE_TXN_SEALED, STORE_TXN_ROLLED_BACK,
					   "TXN_ROLLBACK",
					   "failed before its commit point; PKG unchanged");
		goto out;
	}
	r = cjfs_commit_sealed(c, nt, pkg_fd, flags, start, since, ret);
	if (ret)
		ret->txn = id;
out:
	store_txn_free(nt);
	util_close(lock);
	return r;
}

/* ---- undo ---- */

static int check_undoable(struct cjfs *c, const struct store_txn *t)
{
	int64_t by = 0;

	switch (t->state) {
	case STORE_TXN_COMMITTED:
		return 0;
	case STORE_TXN_UNDONE:
		(void)store_txn_undone_by(cjfs_store(c), t->id, &by);
		if (by)
			log_error("transaction %lld was already undone by transaction %lld (undo %lld to redo it)",
				  (long long)t->id, (long long)by, (long long)by);
		else
			log_error("transaction %lld was already undone", (long long)t->id);
		return -EALREADY;
	case STORE_TXN_ROLLED_BACK:
		log_error("cannot undo transaction %lld: it was rolled back, so it changed nothing in PKG",
			  (long long)t->id);
		return -EINVAL;
	default:
		log_error("cannot undo transaction %lld: it is %s, not committed; use 'cjfs rollback %lld' to discard it",
			  (long long)t->id, store_txn_state_name(t->state), (long long)t->id);
		return -EINVAL;
	}
}

int cjfs_undo(struct cjfs *c, int64_t txn, unsigned flags, struct cjfs_result *ret)
{
	struct store *s = cjfs_store(c);
	struct store_change *rows = NULL, *ch = NULL;
	struct store_txn_synth spec = { 0 };
	struct store_txn *t = NULL;
	int64_t start = util_mono_ns();
	char what[64], since[64], *command = NULL;
	size_t n = 0, k = 0;
	struct stat st;
	int pkg_fd = -1, r;

	snprintf(what, sizeof(what), "undo transaction %lld", (long long)txn);
	r = store_txn_load(s, txn, &t);
	if (r < 0) {
		log_error("there is no transaction %lld in the store '%s'", (long long)txn,
			  store_path(s));
		return r;
	}
	r = check_undoable(c, t);
	if (r < 0)
		goto out;
	pkg_fd = open_pkg_of(t, what);
	if (pkg_fd < 0) {
		r = pkg_fd;
		goto out;
	}
	if (fstat(pkg_fd, &st) < 0) {
		r = log_errno(-errno, "cannot %s: cannot stat '%s'", what, t->pkg);
		goto out;
	}
	r = store_change_list(s, txn, true, &rows, &n);
	if (r < 0) {
		log_errno(r, "cannot %s: cannot read its changes", what);
		goto out;
	}
	ch = calloc(n ? n : 1, sizeof(*ch));
	if (!ch) {
		r = log_errno(-ENOMEM, "cannot %s", what);
		goto out;
	}
	/* The committed state becomes the original, the original the new state. */
	for (size_t i = 0; i < n; i++) {
		ch[k].path = rows[i].path; /* borrowed from rows, as the xattr lists */
		ch[k].orig = rows[i].new;
		ch[k].new = rows[i].orig;
		ch[k].orig_xattrs = rows[i].new_xattrs;
		ch[k].new_xattrs = rows[i].orig_xattrs;
		ch[k].status = store_entry_compare(&ch[k].orig, &ch[k].new);
		if (ch[k].status)
			k++;
	}
	r = verify_contents(c, ch, k, NULL, false, what);
	if (r < 0)
		goto out;
	command = util_xasprintf("cjfs undo %lld", (long long)txn);
	if (!command) {
		r = log_errno(-ENOMEM, "cannot %s", what);
		goto out;
	}
	spec = (struct store_txn_synth){
		.pkg = t->pkg,
		.pkg_st = &st,
		.command = command,
		.undo_of = txn,
	};
	snprintf(since, sizeof(since), "transaction %lld was committed", (long long)txn);
	r = commit_synthetic(c, t, &spec, ch, k, pkg_fd,
			     (flags & CJFS_UNDO_FORCE) ? CJFS_COMMIT_FORCE : 0, start, since, what,
			     ret);
out:
	free(command);
	free(ch);
	store_changes_free(rows, n);
	util_close(pkg_fd);
	store_txn_free(t);
	return r;
}

/* ---- restore ---- */

static bool path_at_or_below(const char *path, const char *prefix)
{
	size_t l = strlen(prefix);

	return strncmp(path, prefix, l) == 0 && (path[l] == '\0' || path[l] == '/');
}

static int cmp_row_path(const void *key, const void *elem)
{
	return strcmp(key, ((const struct store_change *)elem)->path);
}

/* Choose the rows to restore: on[i] for each path the user named, and their directories. */
static int select_rows(const struct store_txn *t, const struct store_change *rows, size_t n,
		       const struct cjfs_restore_opts *o, bool *on)
{
	char buf[PATH_MAX];

	if (!o->paths || !o->n_paths) {
		for (size_t i = 0; i < n; i++)
			on[i] = rows[i].orig.mode != 0;
	}
	for (size_t p = 0; o->paths && p < o->n_paths; p++) {
		const char *want = o->paths[p];
		size_t matched = 0, existed = 0;

		if (!util_path_is_safe(want)) {
			log_error("invalid path '%s': give a path relative to PKG, without '..' or a leading '/'",
				  want);
			return -EINVAL;
		}
		for (size_t i = 0; i < n; i++) {
			if (!path_at_or_below(rows[i].path, want))
				continue;
			matched++;
			if (rows[i].orig.mode) {
				on[i] = true;
				existed++;
			}
		}
		if (!matched) {
			log_error("'%s' is not a path transaction %lld touched: see 'cjfs show %lld'",
				  want, (long long)t->id, (long long)t->id);
			return -ENOENT;
		}
		if (!existed) {
			log_error("'%s' did not exist before transaction %lld: there is no original to restore (to remove what it added, use 'cjfs undo %lld')",
				  want, (long long)t->id, (long long)t->id);
			return -ENOENT;
		}
	}
	/* A restored file needs its directories as they were, when the transaction touched them. */
	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (!on[i])
			continue;
		len = strlen(rows[i].path);
		if (len >= sizeof(buf))
			continue;
		memcpy(buf, rows[i].path, len + 1);
		while ((len = util_path_dirlen(buf)) > 0) {
			const struct store_change *hit;

			buf[len] = '\0';
			hit = bsearch(buf, rows, n, sizeof(*rows), cmp_row_path);
			if (hit && S_ISDIR(hit->orig.mode))
				on[hit - rows] = true;
		}
	}
	return 0;
}

/* The directories above path must be directories in PKG, or be made ones by ch. */
static int check_parents_in_pkg(struct cjfs *c, int pkg_fd, const char *path,
				const struct store_change *ch, size_t k)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
		struct store_entry e;
		bool made = false;
		int r;

		*p = '\0';
		r = store_entry_at(cjfs_store(c), pkg_fd, buf, 0, &e);
		if (r < 0)
			return log_errno(r, "cannot restore '%s': cannot read '%s' in PKG", path,
					 buf);
		for (size_t i = 0; i < k && !made; i++)
			made = strcmp(ch[i].path, buf) == 0 && S_ISDIR(ch[i].new.mode);
		if (!S_ISDIR(e.mode) && !made) {
			log_error("cannot restore '%s': '%s' is %s in PKG; restore '%s' too, or use --to DIR",
				  path, buf,
				  S_ISLNK(e.mode) ? "a symlink"
				  : e.mode	  ? "not a directory"
						  : "missing",
				  buf);
			return -ENOTDIR;
		}
		*p = '/';
	}
	return 0;
}

static char *restore_command(int64_t txn, const struct cjfs_restore_opts *o)
{
	struct strbuf sb = STRBUF_INIT;
	int r = strbuf_addf(&sb, "cjfs restore %lld", (long long)txn);

	for (size_t i = 0; r == 0 && o->paths && i < o->n_paths; i++)
		r = strbuf_addf(&sb, " %s", o->paths[i]);
	if (r < 0) {
		strbuf_release(&sb);
		return NULL;
	}
	return strbuf_detach(&sb);
}

static int restore_into_pkg(struct cjfs *c, const struct store_txn *t,
			    const struct store_change *rows, size_t n, const bool *on,
			    const struct cjfs_restore_opts *o, int64_t start,
			    struct cjfs_result *ret)
{
	struct store *s = cjfs_store(c);
	struct store_txn_synth spec = { 0 };
	struct store_change *ch = NULL;
	char what[64], *command = NULL;
	size_t k = 0;
	struct stat st;
	int pkg_fd, r;

	snprintf(what, sizeof(what), "restore from transaction %lld", (long long)t->id);
	pkg_fd = open_pkg_of(t, what);
	if (pkg_fd < 0)
		return pkg_fd;
	if (fstat(pkg_fd, &st) < 0) {
		r = log_errno(-errno, "cannot %s: cannot stat '%s'", what, t->pkg);
		goto out;
	}
	ch = calloc(n ? n : 1, sizeof(*ch));
	if (!ch) {
		r = log_errno(-ENOMEM, "cannot %s", what);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct strbuf list = STRBUF_INIT;
		struct store_entry now;
		int tries = 0;

		if (!on[i])
			continue;
		/* What is there now goes into the store first: the restore may be undone. */
		do {
			r = store_entry_at(s, pkg_fd, rows[i].path,
					   STORE_ENTRY_HASH | STORE_ENTRY_PUT, &now);
			if (r == 0)
				r = store_entry_xattrs_at(pkg_fd, rows[i].path, &now, &list);
		} while (r == -EAGAIN && ++tries < 5);
		if (r < 0) {
			strbuf_release(&list);
			log_errno(r, "cannot %s: cannot keep the current '%s' in the store", what,
				  rows[i].path);
			goto out;
		}
		ch[k].path = rows[i].path; /* borrowed, as new_xattrs; orig_xattrs is ours */
		ch[k].orig = now;
		ch[k].new = rows[i].orig;
		ch[k].new_xattrs = rows[i].orig_xattrs;
		ch[k].status = store_entry_compare(&now, &rows[i].orig);
		if (!ch[k].status) {
			strbuf_release(&list);
			continue;
		}
		ch[k].orig_xattrs = list;
		r = check_parents_in_pkg(c, pkg_fd, rows[i].path, ch, k);
		if (r < 0)
			goto out;
		k++;
	}
	if (k == 0) {
		/* Nothing differs: no transaction, nothing to record. */
		if (ret) {
			memset(ret, 0, sizeof(*ret));
		}
		r = 0;
		goto out;
	}
	command = restore_command(t->id, o);
	if (!command) {
		r = log_errno(-ENOMEM, "cannot %s", what);
		goto out;
	}
	spec = (struct store_txn_synth){
		.pkg = t->pkg,
		.pkg_st = &st,
		.command = command,
		.restore_of = t->id,
		.backup_ns = util_mono_ns() - start,
	};
	r = commit_synthetic(c, t, &spec, ch, k, pkg_fd, 0, start, "the restore began", what, ret);
out:
	free(command);
	/* Rows past k are zero, or the one a failed check left. */
	for (size_t i = 0; ch && i < n; i++)
		strbuf_release(&ch[i].orig_xattrs);
	free(ch);
	util_close(pkg_fd);
	return r;
}

/* mkdir -p of rel below dfd, never through a symlink; the last component gets mode. */
static int mkdir_beneath(int dfd, const char *rel, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(rel);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, rel, len + 1);
	for (char *p = buf;; p++) {
		char save = *p;
		const char *base;
		int fd, pfd, r;

		if (save != '/' && save != '\0')
			continue;
		*p = '\0';
		fd = util_open_beneath(dfd, buf, O_PATH | O_DIRECTORY, 0);
		if (fd == -ENOENT) {
			pfd = util_open_parent(dfd, buf, &base);
			if (pfd < 0)
				return pfd;
			r = util_mkdirat(pfd, base, save ? 0755 : mode);
			util_close(pfd);
			if (r < 0 && r != -EEXIST)
				return r;
			fd = util_open_beneath(dfd, buf, O_PATH | O_DIRECTORY, 0);
		}
		if (fd < 0)
			return fd;
		util_close(fd);
		*p = save;
		if (!save)
			return 0;
	}
}

/* Before anything is written: nothing in DIR may be in the way, nor lead elsewhere. */
static int check_target_in_dir(int dfd, const char *dir, const struct store_change *row)
{
	char buf[PATH_MAX];
	const char *base;
	struct stat st;
	int fd, r = 0;

	snprintf(buf, sizeof(buf), "%s", row->path);
	for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
		*p = '\0';
		fd = util_open_beneath(dfd, buf, O_PATH | O_DIRECTORY, 0);
		if (fd == -ENOENT)
			return 0; /* created by the restore, and everything below it */
		if (fd < 0) {
			log_error("cannot restore '%s' into '%s': '%s' there is a symlink or not a directory; refusing to write through it",
				  row->path, dir, buf);
			return -ENOTDIR;
		}
		util_close(fd);
		*p = '/';
	}
	fd = util_open_parent(dfd, row->path, &base);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	if (fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(row->orig.mode) && !S_ISDIR(st.st_mode))
			r = -ENOTDIR;
		else if (!S_ISDIR(row->orig.mode) && S_ISDIR(st.st_mode))
			r = -EISDIR;
		if (r < 0)
			log_error("cannot restore '%s' into '%s': %s is in the way there",
				  row->path, dir, S_ISDIR(st.st_mode) ? "a directory" : "a file");
	}
	util_close(fd);
	return r;
}

/* Write one original (file or symlink) as staging/<i>, verified on its way. */
static int stage_original(struct cjfs *c, int sfd, size_t i, const struct store_change *row)
{
	const struct store_entry *e = &row->orig;
	bool root = geteuid() == 0;
	char name[32], hex[HASH_HEX_LEN + 1], blob[96];
	int fd, r;

	snprintf(name, sizeof(name), "%zu", i);
	if (!S_ISREG(e->mode) && !S_ISLNK(e->mode)) {
		r = store_special_at(sfd, name, e, root);
		goto out;
	}
	if (S_ISLNK(e->mode)) {
		struct strbuf target = STRBUF_INIT;

		r = store_blob_read(cjfs_store(c), e->hash, &target, PATH_MAX);
		if (r == 0)
			r = util_symlinkat(target.buf ? target.buf : "", sfd, name);
		strbuf_release(&target);
		if (r == 0 && root && fchownat(sfd, name, e->uid, e->gid, AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
		goto out;
	}
	fd = util_openat(sfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = fd;
		goto out;
	}
	r = (int)store_blob_copy(cjfs_store(c), e->hash, fd);
	if (r >= 0)
		r = store_file_finish(fd, sfd, name, e, &row->orig_xattrs, root);
	util_close(fd);
out:
	if (r == -EBADMSG || r == -ENOENT) {
		hash_to_hex(e->hash, hex);
		log_error("cannot restore '%s': its original (sha256 %s) is %s in the store ('%s'): nothing was written; run 'cjfs verify'",
			  row->path, hex, r == -EBADMSG ? "corrupt" : "missing",
			  store_blob_file(cjfs_store(c), e->hash, blob));
	} else if (r < 0) {
		log_errno(r, "cannot restore '%s'", row->path);
	}
	return r < 0 ? r : 0;
}

/*
 * PKG's top directory's own attributes are not written onto DIR, which is
 * the user's directory, not a copy of PKG's root.
 */
static bool to_dir_skips(const struct store_change *row)
{
	return strcmp(row->path, STORE_PATH_ROOT) == 0;
}

/*
 * PKG's hard links among the originals (one inode, recorded with the same
 * content and attributes) are written once: link[i] is the row whose staged
 * original row i is a hard link of, or i. Rows from before cjfs recorded
 * inode numbers have none (0) and stay files of their own.
 */
static int cmp_orig_inode(const void *pa, const void *pb, void *arg)
{
	const struct store_change *rows = arg;
	size_t ia = *(const size_t *)pa, ib = *(const size_t *)pb;
	const struct store_entry *a = &rows[ia].orig, *b = &rows[ib].orig;

	if (a->dev != b->dev)
		return a->dev < b->dev ? -1 : 1;
	if (a->ino != b->ino)
		return a->ino < b->ino ? -1 : 1;
	return ia < ib ? -1 : ia > ib;
}

static bool one_original(const struct store_entry *a, const struct store_entry *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->mode == b->mode && a->uid == b->uid &&
	       a->gid == b->gid && a->mtime_ns == b->mtime_ns && a->size == b->size &&
	       a->has_hash && b->has_hash && !memcmp(a->hash, b->hash, HASH_LEN) &&
	       a->has_xattrs == b->has_xattrs && !memcmp(a->xattrs, b->xattrs, HASH_LEN);
}

static size_t *original_links(const struct store_change *rows, size_t n, const bool *on)
{
	size_t *link = malloc((n ? n : 1) * sizeof(*link)), *v = malloc((n ? n : 1) * sizeof(*v));
	size_t k = 0;

	if (!link || !v) {
		free(link);
		free(v);
		return NULL;
	}
	for (size_t i = 0; i < n; i++) {
		link[i] = i;
		if (on[i] && S_ISREG(rows[i].orig.mode) && rows[i].orig.ino)
			v[k++] = i;
	}
	qsort_r(v, k, sizeof(*v), cmp_orig_inode, (void *)rows);
	for (size_t j = 1, lead = 0; j < k; j++) {
		if (one_original(&rows[v[j]].orig, &rows[v[lead]].orig))
			link[v[j]] = v[lead];
		else
			lead = j;
	}
	free(v);
	return link;
}

static int restore_to_dir(struct cjfs *c, const struct store_txn *t,
			  const struct store_change *rows, size_t n, const bool *on,
			  const char *dir, int64_t start, struct cjfs_result *ret)
{
	char staging[64], *detail = NULL, size[32], took[32];
	size_t written = 0, *link = NULL;
	uint64_t bytes = 0;
	int dfd = -1, sfd = -1, r;

	r = util_mkdir_p(dir, 0755);
	if (r < 0)
		return log_errno(r, "cannot create '%s'", dir);
	dfd = util_openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY, 0);
	if (dfd < 0)
		return log_errno(dfd, "cannot open '%s'", dir);
	link = original_links(rows, n, on);
	if (!link) {
		r = log_errno(-ENOMEM, "cannot restore into '%s'", dir);
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (on[i] && !to_dir_skips(&rows[i])) {
			r = check_target_in_dir(dfd, dir, &rows[i]);
			if (r < 0)
				goto out;
		}
	}
	/* 1. Every original into a private staging directory, each byte verified. */
	for (unsigned k = 0;; k++) {
		snprintf(staging, sizeof(staging), ".cjfs-restore-%ld-%u", (long)getpid(), k);
		r = util_mkdirat(dfd, staging, 0700);
		if (r != -EEXIST)
			break;
	}
	if (r < 0) {
		log_errno(r, "cannot write into '%s'", dir);
		goto out;
	}
	sfd = util_openat(dfd, staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (sfd < 0) {
		r = log_errno(sfd, "cannot write into '%s'", dir);
		goto out_unstage;
	}
	for (size_t i = 0; i < n; i++) {
		char from[32], name[32];

		if (!on[i] || !rows[i].orig.mode || S_ISDIR(rows[i].orig.mode))
			continue;
		snprintf(from, sizeof(from), "%zu", link[i]);
		snprintf(name, sizeof(name), "%zu", i);
		/* Where the file system has no hard links (or no more), a copy. */
		if (link[i] != i && linkat(sfd, from, sfd, name, 0) == 0)
			continue;
		r = stage_original(c, sfd, i, &rows[i]);
		if (r < 0)
			goto out_unstage;
	}
	/* The data durable before any name refers to it. */
	r = util_syncfs(sfd);
	if (r < 0) {
		log_errno(r, "cannot write into '%s'", dir);
		goto out_unstage;
	}
	/* 2. Directories (shallowest first: rows are in path order) and names. */
	for (size_t i = 0; i < n; i++) {
		const struct store_change *row = &rows[i];
		const char *base;
		char name[32];
		int pfd;

		if (!on[i] || to_dir_skips(row))
			continue;
		if (S_ISDIR(row->orig.mode)) {
			r = mkdir_beneath(dfd, row->path, row->orig.mode & 07777);
			pfd = r < 0 ? r : util_open_parent(dfd, row->path, &base);
			if (pfd >= 0 && row->orig.has_xattrs)
				r = store_xattrs_apply_at(pfd, base, row->orig_xattrs.buf,
							  row->orig_xattrs.len);
			util_close(pfd);
		} else if (row->orig.mode) {
			size_t dl = util_path_dirlen(row->path);
			char parent[PATH_MAX];

			r = 0;
			if (dl) {
				snprintf(parent, sizeof(parent), "%.*s", (int)dl, row->path);
				r = mkdir_beneath(dfd, parent, 0755);
			}
			pfd = r < 0 ? r : util_open_parent(dfd, row->path, &base);
			if (pfd < 0) {
				r = pfd;
			} else {
				snprintf(name, sizeof(name), "%zu", i);
				r = util_renameat(sfd, name, pfd, base);
				util_close(pfd);
			}
			bytes += S_ISREG(row->orig.mode) && link[i] == i ? row->orig.size : 0;
		} else {
			continue;
		}
		if (r < 0) {
			log_errno(r, "cannot restore '%s' into '%s'", row->path, dir);
			goto out_unstage;
		}
		written++;
	}
	(void)util_rm_rf_at(dfd, staging);
	r = util_syncfs(dfd);
	if (r < 0) {
		log_errno(r, "cannot make '%s' durable", dir);
		goto out;
	}
	detail = util_xasprintf("%zu original(s) restored to '%s', %s, in %s", written, dir,
				util_fmt_size(bytes, size),
				util_fmt_duration(util_mono_ns() - start, took));
	r = detail ? store_audit(cjfs_store(c), t->id, "BACKUP_RESTORED", detail) : -ENOMEM;
	if (r < 0)
		log_errno(r,
			  "the originals were restored to '%s' but the audit log could not record it",
			  dir);
	if (ret) {
		memset(ret, 0, sizeof(*ret));
		ret->txn = t->id;
		ret->added = (int64_t)written;
		ret->bytes = (int64_t)bytes;
	}
	goto out;

out_unstage:
	/* Only the staging directory was written: removing it leaves DIR as it was. */
	(void)util_rm_rf_at(dfd, staging);
out:
	free(detail);
	free(link);
	util_close(sfd);
	util_close(dfd);
	return r;
}

int cjfs_restore(struct cjfs *c, int64_t txn, const struct cjfs_restore_opts *o,
		 struct cjfs_result *ret)
{
	struct store *s = cjfs_store(c);
	struct store_change *rows = NULL;
	struct store_txn *t = NULL;
	int64_t start = util_mono_ns();
	char what[64];
	bool *on = NULL;
	size_t n = 0;
	int r;

	snprintf(what, sizeof(what), "restore from transaction %lld", (long long)txn);
	r = store_txn_load(s, txn, &t);
	if (r < 0) {
		log_error("there is no transaction %lld in the store '%s'", (long long)txn,
			  store_path(s));
		return r;
	}
	r = store_change_list(s, txn, false, &rows, &n);
	if (r < 0) {
		log_errno(r, "cannot %s: cannot read its changes", what);
		goto out;
	}
	on = calloc(n ? n : 1, sizeof(*on));
	if (!on) {
		r = log_errno(-ENOMEM, "cannot %s", what);
		goto out;
	}
	r = select_rows(t, rows, n, o, on);
	if (r < 0)
		goto out;
	r = verify_contents(c, rows, n, on, true, what);
	if (r < 0)
		goto out;
	if (o->to)
		r = restore_to_dir(c, t, rows, n, on, o->to, start, ret);
	else
		r = restore_into_pkg(c, t, rows, n, on, o, start, ret);
out:
	free(on);
	store_changes_free(rows, n);
	store_txn_free(t);
	return r;
}
