// SPDX-License-Identifier: MIT
/*
 * Transactions end to end: open the store, start and mount a transaction
 * (forking the daemon), find a transaction from a mount point or id,
 * unmount, and commit or roll back with the guarantees of DESIGN.md.
 */
#include "cjfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cleaner_int.h"
#include "fs.h"
#include "log.h"

struct cjfs {
	struct store *store;
	char *dir;
	struct store_recover_report recovered; /* what cjfs_open() finished */
	int recover_err;
};

void cjfs_recovery(struct cjfs *c, struct store_recover_report *ret, int *ret_err)
{
	*ret = c->recovered;
	*ret_err = c->recover_err;
}

struct store *cjfs_store(struct cjfs *c)
{
	return c->store;
}

const char *cjfs_store_dir(struct cjfs *c)
{
	return c->dir;
}

void cjfs_store_suspend(struct cjfs *c)
{
	store_close(c->store);
	c->store = NULL;
}

int cjfs_store_resume(struct cjfs *c)
{
	int r = store_open(c->dir, STORE_OPEN_CREATE, &c->store);

	if (r < 0)
		log_errno(r, "cannot open the store '%s' again", c->dir);
	return r;
}

int cjfs_open(const char *dir, struct cjfs **ret)
{
	struct store_recover_report rep = { 0 };
	struct cjfs *c = calloc(1, sizeof(*c));
	int r;

	if (!c)
		return log_errno(-ENOMEM, "cannot open the store");
	c->dir = dir ? strdup(dir) : store_default_path();
	if (!c->dir) {
		free(c);
		log_error(
			"cannot find a place for the store: set CJFS_HOME or HOME, or use --store DIR");
		return -ENOENT;
	}
	r = store_open(c->dir, STORE_OPEN_CREATE, &c->store);
	if (r == -EACCES || r == -EROFS || r == -EPERM) {
		log_errno(r,
			  "store '%s' is not writable (use --store DIR or CJFS_HOME to put it elsewhere)",
			  c->dir);
		goto out_free;
	}
	if (r == -EPROTO) {
		log_error("store '%s' was written by a newer cjfs: upgrade cjfs to use it", c->dir);
		goto out_free;
	}
	if (r < 0) {
		log_errno(r, "cannot open the store '%s'", c->dir);
		goto out_free;
	}
	/* Finish whatever a crash interrupted before doing anything else. */
	r = store_recover(c->store, &rep);
	c->recovered = rep;
	c->recover_err = r;
	/* A commit waiting for its PKG to be put back has said so already. */
	if (r < 0 && rep.failed > rep.pkg_moved)
		log_warn(
			"some interrupted work could not be finished yet; run 'cjfs recover' for details");
	if (rep.rolled_forward)
		log_warn("finished %zu interrupted commit(s)", rep.rolled_forward);
	*ret = c;
	return 0;

out_free:
	free(c->dir);
	free(c);
	return r;
}

void cjfs_close(struct cjfs *c)
{
	if (!c)
		return;
	store_close(c->store);
	free(c->dir);
	free(c);
}

int cjfs_realdir(const char *path, char **ret)
{
	char *rp = realpath(path, NULL);
	struct stat st;

	if (!rp)
		return -errno;
	if (stat(rp, &st) < 0) {
		int r = -errno;

		free(rp);
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		free(rp);
		return -ENOTDIR;
	}
	*ret = rp;
	return 0;
}

/* Canonical path of a possible mount point even when stat() on it fails (dead FUSE mount). */
static char *canonical_mnt(const char *path)
{
	char *copy, *slash, *dir, *rp;
	const char *base;

	rp = realpath(path, NULL);
	if (rp)
		return rp;
	copy = strdup(path);
	if (!copy)
		return NULL;
	while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
		copy[strlen(copy) - 1] = '\0';
	slash = strrchr(copy, '/');
	if (slash) {
		*slash = '\0';
		dir = realpath(*copy ? copy : "/", NULL);
		base = slash + 1;
	} else {
		dir = realpath(".", NULL);
		base = copy;
	}
	rp = dir ? util_xasprintf("%s/%s", strcmp(dir, "/") ? dir : "", base) : NULL;
	free(dir);
	free(copy);
	return rp;
}

int cjfs_mount_source(const char *mnt, char **ret_source)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int found = 0;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) > 0) {
		char point[PATH_MAX], fstype[256], source[PATH_MAX];
		char *sep = strstr(line, " - ");
		size_t j = 0;

		if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1 ||
		    sscanf(sep + 3, "%255s %4095s", fstype, source) != 2)
			continue;
		/* mountinfo escapes space, tab, newline and backslash as \ooo. */
		for (size_t i = 0; point[i]; i++) {
			if (point[i] == '\\' && point[i + 1] && point[i + 2] && point[i + 3]) {
				point[j++] =
					(char)((point[i + 1] - '0') * 64 +
					       (point[i + 2] - '0') * 8 + (point[i + 3] - '0'));
				i += 3;
			} else {
				point[j++] = point[i];
			}
		}
		point[j] = '\0';
		if (strcmp(point, mnt) == 0 && strcmp(fstype, "fuse.cjfs") == 0) {
			found = 1;
			if (ret_source)
				*ret_source = strdup(source);
		}
	}
	free(line);
	fclose(f);
	return found;
}

static bool all_digits(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
	}
	return true;
}

int cjfs_resolve(struct cjfs *c, const char *arg, int64_t *ret_txn, char **ret_mnt)
{
	struct store_txn *t = NULL;
	struct stat st;
	char *mnt, *source = NULL;
	int64_t id;
	int r;

	if (all_digits(arg) && lstat(arg, &st) < 0) {
		if (util_parse_i64(arg, &id) < 0 || store_txn_load(c->store, id, &t) < 0) {
			log_error("there is no transaction %s in the store '%s'", arg, c->dir);
			return -ENOENT;
		}
		*ret_txn = id;
		if (ret_mnt)
			*ret_mnt = t->mountpoint ? strdup(t->mountpoint) : NULL;
		store_txn_free(t);
		return 0;
	}
	mnt = canonical_mnt(arg);
	if (!mnt)
		return log_errno(-ENOMEM, "cannot resolve '%s'", arg);
	r = store_txn_find_mount(c->store, mnt, &id);
	if (r == 0) {
		*ret_txn = id;
		if (ret_mnt)
			*ret_mnt = mnt;
		else
			free(mnt);
		return 0;
	}
	if (cjfs_mount_source(mnt, &source) == 1)
		log_error("'%s' is a cjfs mount (%s) of another store, not of '%s': use --store or CJFS_HOME",
			  arg, source ? source : "?", c->dir);
	else if (lstat(arg, &st) < 0 && errno == ENOENT)
		log_error("'%s' does not exist: give a cjfs mount point or a transaction id", arg);
	else
		log_error("'%s' is not a cjfs mount: give a mount point made by 'cjfs mount' or a transaction id",
			  arg);
	free(source);
	free(mnt);
	return -EINVAL;
}

/* Run fusermount3 -u; 0, -EBUSY, or -EIO with its message logged at debug level. */
static int fusermount_u(const char *mnt)
{
	int pipefd[2], status;
	char msg[512] = "";
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		util_close(pipefd[0]);
		util_close(pipefd[1]);
		return -errno;
	}
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		execlp("fusermount3", "fusermount3", "-u", "--", mnt, (char *)NULL);
		_exit(127);
	}
	util_close(pipefd[1]);
	n = read(pipefd[0], msg, sizeof(msg) - 1);
	msg[n > 0 ? n : 0] = '\0';
	util_close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	log_debug("fusermount3 -u '%s': %s", mnt, msg);
	if (strstr(msg, "busy"))
		return -EBUSY;
	if (strstr(msg, "not found") || strstr(msg, "not mounted") ||
	    strstr(msg, "Invalid argument"))
		return -EINVAL;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
		return -ENOENT;
	return -EIO;
}

static int do_umount(const char *mnt)
{
	if (geteuid() == 0) {
		if (umount2(mnt, UMOUNT_NOFOLLOW) == 0)
			return 0;
		return -errno;
	}
	return fusermount_u(mnt);
}

int cjfs_unmount(struct cjfs *c, int64_t txn)
{
	struct store_txn *t = NULL;
	char *source = NULL, want[64];
	int r, alive;

	snprintf(want, sizeof(want), "cjfs-%lld", (long long)txn);
	r = store_txn_load(c->store, txn, &t);
	if (r < 0)
		return log_errno(r, "cannot load transaction %lld", (long long)txn);
	if (t->mountpoint && cjfs_mount_source(t->mountpoint, &source) == 1 && source &&
	    strcmp(source, want) == 0) {
		/* Ours (a dead daemon's mount too): never unmount what another transaction serves. */
		r = do_umount(t->mountpoint);
		if (r == -EBUSY) {
			log_error("'%s' is busy: a process still has a file open or its working directory there; close it and try again",
				  t->mountpoint);
			goto out;
		}
		if (r < 0 && r != -EINVAL) {
			log_errno(r, "cannot unmount '%s'", t->mountpoint);
			goto out;
		}
	}
	/* The daemon holds its lock until it has written everything and exited. */
	for (int i = 0; (alive = store_txn_daemon_alive(c->store, txn)) == 1 && i < 3000; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
	if (alive < 0) {
		/* Going on could seal a tree the daemon is still writing. */
		r = log_errno(alive,
			      "cannot tell whether the daemon of transaction %lld has exited",
			      (long long)txn);
		goto out;
	}
	if (alive == 1) {
		r = -ETIMEDOUT;
		log_error("the daemon of transaction %lld (pid %lld) did not exit after unmounting",
			  (long long)txn, (long long)t->pid);
		goto out;
	}
	/*
	 * Bookkeeping only: the daemon's lock, not this column, says whether the
	 * transaction is served, and finishing it clears the column. A full
	 * store must not stop the rollback that would free it.
	 */
	r = store_txn_set_mount(c->store, txn, NULL, 0);
	if (r < 0)
		log_debug_errno(r, "cannot clear the mount point of transaction %lld",
				(long long)txn);
	r = 0;
out:
	free(source);
	store_txn_free(t);
	return r < 0 ? r : 0;
}

/* ---- status and diff ---- */

/* A view of the new tree: the mount while it is served, else the layers offline. */
struct tree_view {
	struct store_view view;
	struct fs_layer *layer;
	int mnt_fd;
	int pkg_fd;
	int upper_fd;
};

static void tree_view_release(struct tree_view *tv)
{
	fs_layer_free(tv->layer);
	util_close(tv->mnt_fd);
	util_close(tv->pkg_fd);
	util_close(tv->upper_fd);
}

int cjfs_tree_view(struct cjfs *c, const struct store_txn *t, struct tree_view **ret)
{
	struct tree_view *tv = calloc(1, sizeof(*tv));
	int r;

	if (!tv)
		return -ENOMEM;
	tv->mnt_fd = tv->pkg_fd = tv->upper_fd = -1;
	if (t->mountpoint && store_txn_daemon_alive(c->store, t->id) == 1) {
		tv->mnt_fd = util_openat(AT_FDCWD, t->mountpoint, O_RDONLY | O_DIRECTORY, 0);
		if (tv->mnt_fd >= 0) {
			store_view_dir(&tv->view, &tv->mnt_fd);
			*ret = tv;
			return 0;
		}
	}
	tv->pkg_fd = store_txn_open_pkg(t);
	if (tv->pkg_fd < 0) {
		r = tv->pkg_fd;
		goto out_free;
	}
	tv->upper_fd = store_txn_open_dir(c->store, t->id, "upper", false);
	if (tv->upper_fd < 0) {
		r = tv->upper_fd;
		goto out_free;
	}
	r = fs_layer_new(tv->pkg_fd, tv->upper_fd, &tv->layer);
	if (r < 0)
		goto out_free;
	fs_layer_view(tv->layer, &tv->view);
	*ret = tv;
	return 0;
out_free:
	tree_view_release(tv);
	free(tv);
	return r;
}

void cjfs_tree_view_free(struct tree_view *tv)
{
	if (!tv)
		return;
	tree_view_release(tv);
	free(tv);
}

const struct store_view *cjfs_tree_view_get(struct tree_view *tv)
{
	return &tv->view;
}

void cjfs_status_free(struct cjfs_status_entry *v, size_t n)
{
	for (size_t i = 0; i < n && v; i++) {
		free(v[i].path);
		strbuf_release(&v[i].orig_xattrs);
		strbuf_release(&v[i].now_xattrs);
	}
	free(v);
}

static bool txn_finished(const struct store_txn *t)
{
	return t->state == STORE_TXN_COMMITTED || t->state == STORE_TXN_ROLLED_BACK ||
	       t->state == STORE_TXN_UNDONE || t->state == STORE_TXN_COMMITTING;
}

/*
 * What the change log does not say about an original, from PKG (opened on
 * the first row that needs it): the device of a device node, and the
 * xattrs of a file or directory whose bytes and metadata are the same, to
 * compare with the new ones.
 */
static int status_from_pkg(struct cjfs *c, struct tree_view *tv, const struct store_txn *t,
			   int *pkg_fd, struct store_change *ch, struct store_entry *now,
			   struct strbuf *list, char *ret_st)
{
	int r;

	if (*pkg_fd < 0) {
		*pkg_fd = store_txn_open_pkg(t);
		if (*pkg_fd < 0)
			return *pkg_fd;
	}
	r = store_change_orig_from_pkg(c->store, *pkg_fd, ch);
	if (r == 0)
		r = store_entry_xattrs_from_view(&tv->view, ch->path, now, list);
	if (r == 0)
		*ret_st = store_entry_compare(&ch->orig, now);
	return r;
}

int cjfs_status(struct cjfs *c, int64_t txn, struct cjfs_status_entry **ret, size_t *ret_n)
{
	struct cjfs_status_entry *v = NULL;
	struct store_change *ch = NULL;
	struct tree_view *tv = NULL;
	struct store_txn *t = NULL;
	size_t n = 0, k = 0;
	int pkg_fd = -1, r;

	r = store_txn_load(c->store, txn, &t);
	if (r < 0)
		return log_errno(r, "cannot load transaction %lld", (long long)txn);
	r = store_change_list(c->store, txn, false, &ch, &n);
	if (r < 0) {
		log_errno(r, "cannot read the changes of transaction %lld", (long long)txn);
		goto out;
	}
	if (!txn_finished(t)) {
		r = cjfs_tree_view(c, t, &tv);
		if (r < 0) {
			log_errno(r, "cannot read the tree of transaction %lld (PKG '%s')",
				  (long long)txn, t->pkg);
			goto out;
		}
	}
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		r = log_errno(-ENOMEM, "cannot compute the status");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct strbuf list = STRBUF_INIT;
		struct store_entry now;
		char st;

		if (tv) {
			/*
			 * Hash only what the metadata cannot decide: a file of
			 * another size or type is changed without reading it.
			 */
			r = store_entry_from_view(c->store, &tv->view, ch[i].path, 0, &now);
			st = r < 0 ? 0 : store_entry_compare(&ch[i].orig, &now);
			if (r == 0 && !st && ch[i].orig.has_hash &&
			    (S_ISREG(now.mode) || S_ISLNK(now.mode))) {
				r = store_entry_from_view(c->store, &tv->view, ch[i].path,
							  STORE_ENTRY_HASH, &now);
				if (r == 0)
					st = store_entry_compare(&ch[i].orig, &now);
			}
			if (r == 0 && (S_ISCHR(ch[i].orig.mode) || S_ISBLK(ch[i].orig.mode) ||
				       (!st && store_entry_keeps_xattrs(&now))))
				r = status_from_pkg(c, tv, t, &pkg_fd, &ch[i], &now, &list, &st);
			if (r < 0) {
				strbuf_release(&list);
				log_errno(r, "cannot read '%s'", ch[i].path);
				goto out;
			}
		} else {
			now = ch[i].new;
			st = ch[i].status;
			list = ch[i].new_xattrs;
			ch[i].new_xattrs = (struct strbuf)STRBUF_INIT;
		}
		if (!st) {
			strbuf_release(&list);
			continue;
		}
		v[k].path = ch[i].path;
		ch[i].path = NULL;
		v[k].status = st;
		v[k].orig = ch[i].orig;
		v[k].now = now;
		v[k].orig_xattrs = ch[i].orig_xattrs;
		ch[i].orig_xattrs = (struct strbuf)STRBUF_INIT;
		v[k].now_xattrs = list;
		v[k].dir = S_ISDIR(now.mode) || (!now.mode && S_ISDIR(ch[i].orig.mode));
		k++;
	}
	*ret = v;
	*ret_n = k;
	v = NULL;
	r = 0;
out:
	util_close(pkg_fd);
	cjfs_status_free(v, k);
	store_changes_free(ch, n);
	cjfs_tree_view_free(tv);
	store_txn_free(t);
	return r;
}

/* ---- commit and rollback ---- */

static int lock_finish(struct cjfs *c, int64_t txn)
{
	int fd = store_txn_lock(c->store, txn, "finish", false);

	if (fd == -EWOULDBLOCK)
		log_error("transaction %lld is being committed or rolled back by another cjfs process",
			  (long long)txn);
	else if (fd == -ENOENT)
		log_error("transaction %lld is finished: nothing to do", (long long)txn);
	else if (fd < 0)
		log_errno(fd, "cannot lock transaction %lld", (long long)txn);
	return fd == -EWOULDBLOCK ? -EBUSY : fd;
}

/* Refuse to finish a transaction that is not open; explain what state it is in. */
static int check_open(const struct store_txn *t, const char *verb)
{
	switch (t->state) {
	case STORE_TXN_OPEN:
		return 0;
	case STORE_TXN_COMMITTED:
		log_error("cannot %s transaction %lld: it is already committed", verb,
			  (long long)t->id);
		return -EALREADY;
	case STORE_TXN_ROLLED_BACK:
		log_error("cannot %s transaction %lld: it was rolled back", verb, (long long)t->id);
		return -EALREADY;
	case STORE_TXN_UNDONE:
		log_error("cannot %s transaction %lld: it was committed and undone", verb,
			  (long long)t->id);
		return -EALREADY;
	default:
		log_error("cannot %s transaction %lld: it is %s; run 'cjfs recover'", verb,
			  (long long)t->id, store_txn_state_name(t->state));
		return -EAGAIN;
	}
}

static void fill_result(const struct store_txn *t, struct cjfs_result *ret)
{
	if (!ret)
		return;
	memset(ret, 0, sizeof(*ret));
	ret->txn = t->id;
	ret->modified = t->n_modified;
	ret->added = t->n_added;
	ret->deleted = t->n_deleted;
	ret->bytes = t->bytes_new;
}

/*
 * --force: keep what the commit is about to overwrite, referenced from the
 * transaction (store_kept_add) so that gc keeps it as long as the history.
 */
static int keep_conflicts(struct cjfs *c, const struct store_txn *t, int pkg_fd,
			  const struct store_conflict *v, size_t n)
{
	const char *verb = t->undo_of ? "undo" : t->restore_of ? "restore" : "commit";

	for (size_t i = 0; i < n; i++) {
		char hex[HASH_HEX_LEN + 1], *detail, *why;
		struct store_entry e;
		int r = store_entry_at(c->store, pkg_fd, v[i].path,
				       STORE_ENTRY_HASH | STORE_ENTRY_PUT, &e);

		if (r < 0)
			return log_errno(r, "cannot keep the current '%s' in the store", v[i].path);
		if (!e.has_hash)
			continue;
		hash_to_hex(e.hash, hex);
		detail = util_xasprintf("overwritten by %s --force: %s %s", verb, v[i].path, hex);
		why = util_xasprintf("overwritten by %s --force", verb);
		r = detail && why ? store_kept_add(c->store, t->id, v[i].path, e.mode, e.hash, why,
						   detail)
				  : -ENOMEM;
		free(detail);
		free(why);
		if (r < 0)
			return log_errno(r, "cannot record the overwritten '%s'", v[i].path);
	}
	return 0;
}

static void explain_stage_failure(int r, const struct store_txn *t,
				  const struct store_apply_failure *f)
{
	char name[96];

	if (f->err)
		log_error("refusing to commit transaction %lld: the new content of '%s' in the store ('%s') is %s: nothing was changed in PKG; run 'cjfs verify'",
			  (long long)t->id, f->path, store_blob_name(f->hash, name),
			  f->err == -EBADMSG ? "corrupt" : "missing");
	else if (r == -ENOSPC || r == -EDQUOT)
		log_error("no space left on the device of '%s' while writing the new files: nothing was changed in PKG; free some space and try again",
			  t->pkg);
	else
		log_errno(r, "cannot write the new files into '%s': nothing was changed in PKG",
			  t->pkg);
}

/* The state a transaction returns to when it fails before (or is undone after) its commit point. */
static enum store_txn_state back_state(const struct store_txn *t)
{
	/* An undo or restore has no mount to go back to: it is over. */
	return store_txn_is_synthetic(t) ? STORE_TXN_ROLLED_BACK : STORE_TXN_OPEN;
}

/*
 * The promote failed after the commit point: put PKG back to the original
 * tree. The failure may well be a full disk: first drop the temporaries the
 * forward promote did not get to, then stage only the originals of what it
 * did replace (RECOVER skips paths that still hold their original).
 */
static int revert(struct cjfs *c, struct store_txn *t, int pkg_fd, int cause)
{
	struct store_apply_failure fail = { 0 };
	const char *holds;
	char name[96];
	int r = store_txn_unstage(c->store, t->id, pkg_fd);

	if (r == 0)
		r = store_txn_stage(c->store, t->id, pkg_fd,
				    STORE_APPLY_REVERSE | STORE_APPLY_RECOVER, &fail);
	if (r == 0)
		r = store_txn_promote(c->store, t->id, pkg_fd,
				      STORE_APPLY_REVERSE | STORE_APPLY_RECOVER, &fail);
	if (r == 0)
		r = store_txn_unstage(c->store, t->id, pkg_fd);
	if (r == 0)
		r = store_txn_transition(c->store, t->id, STORE_TXN_COMMITTING, back_state(t),
					 "TXN_ROLLBACK", "commit failed while applying; undone");
	if (r == 0) {
		log_errno(cause,
			  "the commit of transaction %lld failed while applying and was undone: PKG is unchanged%s",
			  (long long)t->id,
			  store_txn_is_synthetic(t) ? "" : " and the transaction is still open");
		return cause;
	}
	/* Say which tree PKG holds: the undo may have failed only at its final sync. */
	switch (store_txn_pkg_state(c->store, t->id, pkg_fd)) {
	case STORE_PKG_OLD:
		holds = "still holds the original tree";
		break;
	case STORE_PKG_NEW:
		holds = "holds the new tree, possibly not yet safe on disk";
		break;
	default:
		holds = "is partly updated";
	}
	if (fail.err)
		/* Refused, never written: the undo needs bytes the store cannot give. */
		log_errno(cause,
			  "the commit of transaction %lld failed while applying and could not be undone, the original of '%s' in the store ('%s') being %s: PKG '%s' %s; run 'cjfs recover' to finish the commit",
			  (long long)t->id, fail.path, store_blob_name(fail.hash, name),
			  fail.err == -EBADMSG ? "corrupt" : "missing", t->pkg, holds);
	else
		log_errno(cause,
			  "the commit of transaction %lld failed while applying and could not be undone: PKG '%s' %s; fix the cause and run 'cjfs recover' to finish the commit",
			  (long long)t->id, t->pkg, holds);
	return cause;
}

/*
 * Mark the start of a commit phase in the debug log, with the number of
 * durable-write calls made so far: fault-injection tests read these lines to
 * aim a fault at every phase of a commit.
 */
static void phase(int64_t txn, const char *what)
{
	log_debug("commit %lld: %s at fault point %ld", (long long)txn, what,
		  util_fault_calls() + 1);
}

static int summary_detail(const struct store_txn *t, char **ret)
{
	char what[64] = "";

	if (t->undo_of)
		snprintf(what, sizeof(what), "undo of transaction %lld: ", (long long)t->undo_of);
	else if (t->restore_of)
		snprintf(what, sizeof(what),
			 "restore from transaction %lld: ", (long long)t->restore_of);
	*ret = util_xasprintf("%s%lld modified, %lld added, %lld deleted", what,
			      (long long)t->n_modified, (long long)t->n_added,
			      (long long)t->n_deleted);
	return *ret ? 0 : -ENOMEM;
}

static char *backup_detail(const struct store_txn *t)
{
	char size[32], took[32];

	if (!t->backup_ns)
		return util_xasprintf("%lld original(s) kept, %s (already in the store)",
				      (long long)t->n_orig,
				      util_fmt_size((uint64_t)t->bytes_orig, size));
	return util_xasprintf("%lld original(s) kept, %s, stored in %s", (long long)t->n_orig,
			      util_fmt_size((uint64_t)t->bytes_orig, size),
			      util_fmt_duration(t->backup_ns, took));
}

/*
 * Bring a transaction left SEALED or COMMITTING by a crash back to a known
 * state. The caller holds its finish lock, which store_recover() would
 * wait for in vain (it skips locked transactions): recover it directly.
 */
static int settle(struct cjfs *c, struct store_txn **tp)
{
	int64_t id = (*tp)->id;
	int r;

	if ((*tp)->state != STORE_TXN_SEALED && (*tp)->state != STORE_TXN_COMMITTING)
		return 0;
	r = store_recover_txn(c->store, id);
	if (r < 0)
		return r;
	store_txn_free(*tp);
	*tp = NULL;
	return store_txn_load(c->store, id, tp);
}

/* Name each conflict, apply nothing, and give the transaction back: -EEXIST. */
static int refuse_conflicts(struct cjfs *c, struct store_txn *t, const struct store_conflict *conf,
			    size_t nconf, const char *since, struct cjfs_result *ret)
{
	char *detail;

	for (size_t i = 0; i < nconf; i++)
		log_error("conflict: '%s' was %s since %s", conf[i].path, conf[i].why, since);
	detail = util_xasprintf("%zu conflicting path(s), first '%s'", nconf, conf[0].path);
	(void)store_txn_transition(c->store, t->id, STORE_TXN_SEALED, back_state(t), "TXN_CONFLICT",
				   detail);
	free(detail);
	if (store_txn_is_synthetic(t))
		log_error("nothing was applied: resolve the %zu conflict(s) and try again, or use --force to overwrite them (what is overwritten is kept in the store)",
			  nconf);
	else
		log_error("nothing was committed: resolve the %zu conflict(s) and commit again, use --force to overwrite them, or roll back",
			  nconf);
	if (ret) {
		fill_result(t, ret);
		ret->conflicts = nconf;
	}
	return -EEXIST;
}

int cjfs_commit_sealed(struct cjfs *c, struct store_txn *t, int pkg_fd, unsigned flags,
		       int64_t start, const char *since, struct cjfs_result *ret)
{
	struct store_apply_failure fail = { 0 };
	struct store_conflict *conf = NULL;
	size_t nconf = 0;
	char *detail = NULL;
	int64_t t0;
	int r;

	t0 = util_mono_ns();
	r = store_txn_conflicts(c->store, t->id, pkg_fd, &conf, &nconf);
	t->check_ns = util_mono_ns() - t0;
	if (r < 0) {
		log_errno(r, "cannot check '%s' for changes made outside the transaction", t->pkg);
		goto out_back;
	}
	if (nconf) {
		if (!(flags & CJFS_COMMIT_FORCE)) {
			r = refuse_conflicts(c, t, conf, nconf, since, ret);
			goto out;
		}
		for (size_t i = 0; i < nconf; i++)
			log_error("conflict: '%s' was %s since %s", conf[i].path, conf[i].why,
				  since);
		r = keep_conflicts(c, t, pkg_fd, conf, nconf);
		if (r < 0)
			goto out_back;
	}
	t0 = util_mono_ns();
	phase(t->id, "stage");
	r = store_txn_stage(c->store, t->id, pkg_fd, 0, &fail);
	if (r < 0) {
		explain_stage_failure(r, t, &fail);
		goto out_back;
	}
	/* Everything the journal refers to must be on disk before the commit point. */
	phase(t->id, "sync");
	r = store_sync(c->store);
	if (r < 0) {
		log_errno(r, "cannot make the store durable: nothing was changed in PKG");
		(void)store_txn_unstage(c->store, t->id, pkg_fd);
		goto out_back;
	}
	t->stage_ns = util_mono_ns() - t0;
	/*
	 * Again, now that staging (which can take a while) is done: a file
	 * saved in PKG meanwhile must not be lost to the promote. What remains
	 * unguarded is the promote itself.
	 */
	if (!(flags & CJFS_COMMIT_FORCE)) {
		store_conflicts_free(conf, nconf);
		conf = NULL;
		nconf = 0;
		r = store_txn_conflicts(c->store, t->id, pkg_fd, &conf, &nconf);
		if (r < 0 || nconf) {
			(void)store_txn_unstage(c->store, t->id, pkg_fd);
			if (r < 0) {
				log_errno(r,
					  "cannot check '%s' for changes made outside the transaction",
					  t->pkg);
				goto out_back;
			}
			r = refuse_conflicts(c, t, conf, nconf, since, ret);
			goto out;
		}
	}
	/* The commit point; from here the originals in the store are what PKG had. */
	detail = backup_detail(t);
	r = detail ? store_txn_transition(c->store, t->id, STORE_TXN_SEALED, STORE_TXN_COMMITTING,
					  "BACKUP_CREATED", detail)
		   : -ENOMEM;
	free(detail);
	detail = NULL;
	if (r < 0) {
		log_errno(r, "cannot write the commit record: nothing was changed in PKG");
		(void)store_txn_unstage(c->store, t->id, pkg_fd);
		goto out_back;
	}
	/* Commit point passed: from here PKG ends up in the new state (or, failing that, the old). */
	t0 = util_mono_ns();
	phase(t->id, "promote");
	r = store_txn_promote(c->store, t->id, pkg_fd, 0, NULL);
	if (r < 0) {
		r = revert(c, t, pkg_fd, r);
		goto out;
	}
	phase(t->id, "done");
	t->apply_ns = util_mono_ns() - t0;
	t->commit_ns = util_mono_ns() - start;
	(void)store_txn_save_stats(c->store, t);
	r = summary_detail(t, &detail);
	if (r == 0)
		r = store_txn_transition(c->store, t->id, STORE_TXN_COMMITTING, STORE_TXN_COMMITTED,
					 "TXN_COMMIT", detail);
	if (r < 0) {
		log_errno(r,
			  "transaction %lld was applied to '%s' but cannot be marked done; run 'cjfs recover'",
			  (long long)t->id, t->pkg);
		goto out;
	}
	t->state = STORE_TXN_COMMITTED;
	(void)store_txn_remove_dir(c->store, t->id);
	fill_result(t, ret);
	goto out;

out_back:
	if (store_txn_is_synthetic(t))
		(void)store_txn_transition(c->store, t->id, STORE_TXN_SEALED, STORE_TXN_ROLLED_BACK,
					   "TXN_ROLLBACK",
					   "failed before its commit point; PKG unchanged");
	else
		(void)store_txn_transition(c->store, t->id, STORE_TXN_SEALED, STORE_TXN_OPEN, NULL,
					   NULL);
out:
	free(detail);
	store_conflicts_free(conf, nconf);
	return r;
}

/*
 * What commit and rollback start with: the transaction's finish lock, the
 * transaction (recovered if a crash left it sealed or committing), a check
 * that it is open, and its mount gone. Returns the lock fd with *ret loaded,
 * or -errno having said why.
 */
static int begin_finish(struct cjfs *c, int64_t txn, const char *verb, struct store_txn **ret)
{
	struct store_txn *t = NULL;
	int lock, r;

	lock = lock_finish(c, txn);
	if (lock < 0)
		return lock;
	r = store_txn_load(c->store, txn, &t);
	if (r == 0)
		r = settle(c, &t);
	if (r < 0)
		log_errno(r, "cannot load transaction %lld", (long long)txn);
	if (r == 0)
		r = check_open(t, verb);
	if (r == 0)
		r = cjfs_unmount(c, txn);
	if (r < 0) {
		store_txn_free(t);
		util_close(lock);
		return r;
	}
	*ret = t;
	return lock;
}

int cjfs_commit(struct cjfs *c, int64_t txn, unsigned flags, struct cjfs_result *ret)
{
	struct tree_view *tv = NULL;
	struct store_txn *t = NULL;
	int64_t start = util_mono_ns();
	int lock, pkg_fd = -1, r;

	lock = begin_finish(c, txn, "commit", &t);
	if (lock < 0)
		return lock;
	/* Again: the daemon has exited and its backup counters are final now. */
	store_txn_free(t);
	t = NULL;
	r = store_txn_load(c->store, txn, &t);
	if (r < 0) {
		log_errno(r, "cannot load transaction %lld", (long long)txn);
		goto out;
	}
	pkg_fd = store_txn_open_pkg(t);
	if (pkg_fd < 0) {
		r = pkg_fd;
		if (r == -ESTALE || r == -ENOENT)
			log_error("'%s' is no longer the directory transaction %lld was started on: nothing was changed; put it back or roll back",
				  t->pkg, (long long)txn);
		else
			log_errno(r, "cannot open '%s'", t->pkg);
		goto out;
	}
	phase(txn, "seal");
	r = cjfs_tree_view(c, t, &tv);
	if (r == 0)
		r = store_txn_seal(c->store, t, &tv->view);
	if (r < 0) {
		log_errno(r,
			  "cannot record the changes of transaction %lld: nothing was changed in PKG",
			  (long long)txn);
		if (t->state == STORE_TXN_SEALED)
			(void)store_txn_transition(c->store, txn, STORE_TXN_SEALED, STORE_TXN_OPEN,
						   NULL, NULL);
		goto out;
	}
	r = cjfs_commit_sealed(c, t, pkg_fd, flags, start, "the transaction began", ret);
out:
	cjfs_tree_view_free(tv);
	util_close(pkg_fd);
	store_txn_free(t);
	util_close(lock);
	return r;
}

int cjfs_rollback(struct cjfs *c, int64_t txn, struct cjfs_result *ret)
{
	struct cjfs_status_entry *v = NULL;
	struct store_txn *t = NULL;
	char *detail = NULL;
	size_t n = 0;
	int lock, r;

	lock = begin_finish(c, txn, "roll back", &t);
	if (lock < 0)
		return lock;
	/* Count what is discarded, for the summary; a damaged layer must not block a rollback. */
	if (ret) {
		memset(ret, 0, sizeof(*ret));
		ret->txn = txn;
		if (cjfs_status(c, txn, &v, &n) == 0) {
			for (size_t i = 0; i < n; i++) {
				ret->modified += v[i].status == 'M';
				ret->added += v[i].status == 'A';
				ret->deleted += v[i].status == 'D';
			}
		}
	}
	detail = util_xasprintf("discarded %lld modified, %lld added, %lld deleted",
				ret ? (long long)ret->modified : 0LL,
				ret ? (long long)ret->added : 0LL,
				ret ? (long long)ret->deleted : 0LL);
	r = store_txn_transition(c->store, txn, STORE_TXN_OPEN, STORE_TXN_ROLLED_BACK,
				 "TXN_ROLLBACK", detail);
	if (r == -ENOSPC || r == -EDQUOT) {
		/*
		 * The store is full, likely of this very layer: discard it first to
		 * make room for the record. A crash in between leaves an open
		 * transaction that changes nothing; rolling it back again finishes.
		 */
		if (store_txn_clear_layer(c->store, txn) == 0)
			r = store_txn_transition(c->store, txn, STORE_TXN_OPEN,
						 STORE_TXN_ROLLED_BACK, "TXN_ROLLBACK", detail);
	}
	if (r < 0) {
		log_errno(r, "cannot mark transaction %lld rolled back", (long long)txn);
		goto out;
	}
	(void)store_txn_remove_dir(c->store, txn);
out:
	free(detail);
	cjfs_status_free(v, n);
	store_txn_free(t);
	util_close(lock);
	return r;
}
