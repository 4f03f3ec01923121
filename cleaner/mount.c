// SPDX-License-Identifier: MIT
/*
 * Starting a transaction's mount: check PKG, the mount point and FUSE, record
 * the transaction, and serve it from a daemon that detaches once the mount
 * is visible (or in the foreground).
 */
#include "cjfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleaner_int.h"
#include "fs.h"
#include "log.h"

static int check_fuse(void)
{
	const char *path = getenv("PATH");
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		int r = -errno;

		log_errno(r,
			  "FUSE is not available: cannot open /dev/fuse (install fuse3 and load the fuse kernel module)");
		return -ENODEV;
	}
	close(fd);
	if (geteuid() == 0)
		return 0; /* root mounts and unmounts directly */
	/* Everyone else needs the setuid helper. */
	for (const char *p = path ? path : "/usr/bin:/bin"; *p;) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		char buf[PATH_MAX];

		snprintf(buf, sizeof(buf), "%.*s/fusermount3", (int)n, p);
		if (access(buf, X_OK) == 0)
			return 0;
		if (!colon)
			break;
		p = colon + 1;
	}
	log_error(
		"FUSE is not available: fusermount3 is not installed (install the fuse3 package)");
	return -ENODEV;
}

static int check_pkg(const char *pkg, char **ret)
{
	int r = cjfs_realdir(pkg, ret);

	if (r == -ENOENT)
		log_error("'%s' does not exist: give the directory of the code to clean", pkg);
	else if (r == -ENOTDIR)
		log_error("'%s' is not a directory: give the directory of the code to clean", pkg);
	else if (r < 0)
		log_errno(r, "cannot use '%s'", pkg);
	return r;
}

static bool path_within(const char *inner, const char *outer)
{
	size_t n = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return true;
	return strncmp(inner, outer, n) == 0 && (inner[n] == '/' || inner[n] == '\0');
}

/*
 * The store inside PKG would show in the mount, where a cleaner could
 * change it and a commit write those changes into the store in use; PKG
 * inside the store is a transaction's own layer.
 */
static int check_store(struct cjfs *c, const char *rpkg)
{
	char *rstore;
	int r = cjfs_realdir(store_path(cjfs_store(c)), &rstore);

	if (r < 0)
		return log_errno(r, "cannot use the store '%s'", store_path(cjfs_store(c)));
	if (path_within(rstore, rpkg)) {
		log_error("the store '%s' is inside the package '%s': keep it outside (--store DIR or CJFS_HOME)",
			  rstore, rpkg);
		r = -EINVAL;
	} else if (path_within(rpkg, rstore)) {
		log_error("the package '%s' is inside the store '%s': give the directory of the code to clean",
			  rpkg, rstore);
		r = -EINVAL;
	}
	free(rstore);
	return r;
}

static int check_mnt(const char *mnt, const char *rpkg, char **ret)
{
	struct dirent *de;
	char *rmnt;
	DIR *d;
	int r = cjfs_realdir(mnt, &rmnt);

	if (r == -ENOENT) {
		log_error("mount point '%s' does not exist: create it with 'mkdir %s'", mnt, mnt);
		return r;
	}
	if (r == -ENOTDIR) {
		log_error("mount point '%s' is not a directory: give an empty directory", mnt);
		return r;
	}
	if (r == -ENOTCONN) {
		log_error("mount point '%s' is a dead mount: finish its transaction with 'cjfs commit' or 'cjfs rollback', or run 'fusermount3 -u %s'",
			  mnt, mnt);
		return r;
	}
	if (r < 0)
		return log_errno(r, "cannot use mount point '%s'", mnt);
	if (cjfs_mount_source(rmnt, NULL) == 1) {
		log_error("mount point '%s' is already a cjfs mount: commit or roll it back first",
			  mnt);
		r = -EBUSY;
		goto out_free;
	}
	if (path_within(rmnt, rpkg)) {
		log_error("mount point '%s' is inside '%s': choose a directory outside the package",
			  mnt, rpkg);
		r = -EINVAL;
		goto out_free;
	}
	if (path_within(rpkg, rmnt)) {
		log_error("mount point '%s' contains the package '%s': choose a directory outside it",
			  mnt, rpkg);
		r = -EINVAL;
		goto out_free;
	}
	d = opendir(rmnt);
	if (!d) {
		r = log_errno(-errno, "cannot read mount point '%s'", mnt);
		goto out_free;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			r = -ENOTEMPTY;
			break;
		}
	}
	closedir(d);
	if (r < 0) {
		log_error("mount point '%s' is not empty: use an empty directory", mnt);
		goto out_free;
	}
	*ret = rmnt;
	return 0;
out_free:
	free(rmnt);
	return r;
}

/*
 * Serve the transaction until unmounted. ready_fd, if >= 0, learns when the
 * mount is up. finish_lock (>= 0 in the foreground) is released once the
 * mount is recorded.
 */
static int serve(const char *dir, int64_t txn, const char *mnt, const struct cjfs_mount_opts *o,
		 int ready_fd, int finish_lock)
{
	struct store_txn *t = NULL;
	struct fs_config cfg;
	struct store *s = NULL;
	struct fs *fs = NULL;
	int lock = -1, pkg_fd = -1, upper = -1, work = -1, r;

	r = store_open(dir, STORE_OPEN_RELAXED, &s);
	if (r < 0)
		return log_errno(r, "cannot open the store '%s'", dir);
	lock = store_txn_lock(s, txn, "daemon", false);
	if (lock == -EWOULDBLOCK) {
		r = -EBUSY;
		log_error("transaction %lld is already mounted", (long long)txn);
		goto out;
	}
	if (lock < 0) {
		r = log_errno(lock, "cannot lock transaction %lld", (long long)txn);
		goto out;
	}
	r = store_txn_load(s, txn, &t);
	if (r < 0) {
		log_errno(r, "cannot load transaction %lld", (long long)txn);
		goto out;
	}
	pkg_fd = store_txn_open_pkg(t);
	upper = store_txn_open_dir(s, txn, "upper", false);
	work = store_txn_open_dir(s, txn, "work", false);
	if (pkg_fd < 0 || upper < 0 || work < 0) {
		r = pkg_fd < 0 ? pkg_fd : upper < 0 ? upper : work;
		log_errno(r, "cannot open the layers of transaction %lld (PKG '%s')",
			  (long long)txn, t->pkg);
		goto out;
	}
	cfg = (struct fs_config){
		.mountpoint = mnt,
		.lower_fd = pkg_fd,
		.upper_fd = upper,
		.work_fd = work,
		.store = s,
		.txn = txn,
		.debug = o->debug,
		.allow_other = o->allow_other,
		.options = o->options,
	};
	/*
	 * Modes arrive with the creator's umask applied by the kernel; the
	 * daemon's own (the mounting shell's) must not take more away. Every
	 * file the daemon makes for itself gives its mode explicitly.
	 */
	umask(0);
	r = fs_mount(&cfg, &fs);
	if (r < 0) {
		log_errno(r, "cannot mount '%s'", mnt);
		goto out;
	}
	r = store_txn_set_mount(s, txn, mnt, getpid());
	if (r < 0) {
		log_errno(r, "cannot record the mount of transaction %lld", (long long)txn);
		goto out;
	}
	/* Served and recorded: a commit or rollback may take over from here. */
	util_close(finish_lock);
	finish_lock = -1;
	if (ready_fd >= 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		(void)!write(ready_fd, "k", 1);
		close(ready_fd);
		/* Detached from the terminal from here on: log to syslog. */
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			dup2(null, STDERR_FILENO);
			close(null);
		}
		log_use_syslog();
	}
	r = fs_run(fs);
	(void)store_txn_set_mount(s, txn, NULL, 0);
out:
	fs_free(fs);
	util_close(pkg_fd);
	util_close(upper);
	util_close(work);
	store_txn_free(t);
	store_close(s);
	util_close(lock);
	util_close(finish_lock);
	return r;
}

/* Fork a daemon that serves the transaction; return once its mount is visible. */
static int spawn_daemon(const char *dir, int64_t txn, const char *mnt,
			const struct cjfs_mount_opts *o)
{
	int pipefd[2], status;
	struct stat st;
	ssize_t n;
	char b;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return log_errno(-errno, "cannot start the daemon");
	pid = fork();
	if (pid < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return log_errno(-errno, "cannot start the daemon");
	}
	if (pid == 0) {
		/* The daemon: a new session, and a grandchild so that init reaps it. */
		close(pipefd[0]);
		setsid();
		pid = fork();
		if (pid != 0)
			_exit(pid < 0 ? 1 : 0);
		signal(SIGPIPE, SIG_IGN);
		/* Nothing of the parent's store survives: SQLite handles must not cross fork. */
		for (int fd = 3; fd < 1024; fd++) {
			if (fd != pipefd[1])
				close(fd);
		}
		_exit(serve(dir, txn, mnt, o, pipefd[1], -1) < 0 ? 1 : 0);
	}
	close(pipefd[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	do {
		n = read(pipefd[0], &b, 1);
	} while (n < 0 && errno == EINTR);
	close(pipefd[0]);
	/* The daemon has already said why if it failed. */
	if (n != 1)
		return -EIO;
	/*
	 * The kernel makes a new FUSE mount's root inode with owner 0 and no
	 * permission bits, and checks the owner of a chmod, chown or utimes
	 * against what it holds without asking (setattr_prepare()): until
	 * something stats the root, its owner's chmod of the mount root fails
	 * with EPERM. One stat gives the kernel the real attributes.
	 */
	(void)stat(mnt, &st);
	return 0;
}

int cjfs_mount(struct cjfs *c, const char *pkg, const char *mnt, const struct cjfs_mount_opts *opts,
	       int64_t *ret_txn)
{
	struct store_txn *t = NULL;
	char *rpkg = NULL, *rmnt = NULL;
	bool created = false;
	int64_t txn = 0, other = 0;
	struct stat st;
	int lock = -1, r;

	r = check_fuse();
	if (r < 0)
		return r;
	if (opts->resume) {
		/*
		 * Held until the daemon serves the transaction: a commit or
		 * rollback under way (past its unmount, sealing) must not get a
		 * mount whose writes it would never see, nor lose one to us.
		 */
		lock = store_txn_lock(cjfs_store(c), opts->resume, "finish", false);
		if (lock == -EWOULDBLOCK) {
			log_error("cannot resume transaction %lld: it is being committed or rolled back by another cjfs process",
				  (long long)opts->resume);
			return -EBUSY;
		}
		r = store_txn_load(cjfs_store(c), opts->resume, &t);
		if (r < 0) {
			log_error("there is no transaction %lld in the store",
				  (long long)opts->resume);
			return r;
		}
		if (t->state != STORE_TXN_OPEN) {
			log_error("cannot resume transaction %lld: it is %s", (long long)t->id,
				  store_txn_state_name(t->state));
			r = -EINVAL;
			goto out;
		}
		if (store_txn_daemon_alive(cjfs_store(c), t->id) == 1) {
			log_error("transaction %lld is already mounted at '%s'", (long long)t->id,
				  t->mountpoint ? t->mountpoint : "?");
			r = -EBUSY;
			goto out;
		}
		/* A dead daemon's mount point is still attached: detach it first. */
		r = cjfs_unmount(c, t->id);
		if (r < 0)
			goto out;
		pkg = t->pkg;
	}
	r = check_pkg(pkg, &rpkg);
	if (r < 0)
		goto out;
	r = check_store(c, rpkg);
	if (r < 0)
		goto out;
	r = check_mnt(mnt, rpkg, &rmnt);
	if (r < 0)
		goto out;
	if (fs_check_options(opts->options) < 0) {
		log_error("mount options '%s' are not allowed (fsname, subtype, dev and suid are cjfs's own)",
			  opts->options);
		r = -EINVAL;
		goto out;
	}
	if (opts->resume) {
		txn = opts->resume;
	} else {
		if (stat(rpkg, &st) < 0) {
			r = log_errno(-errno, "cannot use '%s'", pkg);
			goto out;
		}
		r = store_txn_begin(cjfs_store(c), rpkg, &st, opts->command, 0,
				    opts->concurrent ? STORE_TXN_ALLOW_CONCURRENT : 0, &txn,
				    &other);
		if (r == -EBUSY) {
			struct store_txn *o = NULL;

			if (store_txn_load(cjfs_store(c), other, &o) == 0 && o->mountpoint &&
			    store_txn_daemon_alive(cjfs_store(c), other) == 1)
				log_error("'%s' already has open transaction %lld mounted at '%s': commit or roll it back first, or use --concurrent",
					  rpkg, (long long)other, o->mountpoint);
			else
				log_error("'%s' already has open transaction %lld (not mounted): 'cjfs commit %lld' or 'cjfs rollback %lld' it first, or use --concurrent",
					  rpkg, (long long)other, (long long)other,
					  (long long)other);
			store_txn_free(o);
			goto out;
		}
		if (r < 0) {
			log_errno(r, "cannot start a transaction in the store '%s'",
				  cjfs_store_dir(c));
			goto out;
		}
		created = true;
		lock = store_txn_lock(cjfs_store(c), txn, "finish", false);
	}
	if (lock < 0 && lock != -ENOENT) {
		r = log_errno(lock, "cannot lock transaction %lld", (long long)txn);
		goto out;
	}
	if (opts->foreground) {
		r = serve(cjfs_store_dir(c), txn, rmnt, opts, -1, lock);
		lock = -1; /* released by serve() */
	} else {
		int r2;

		cjfs_store_suspend(c);
		r = spawn_daemon(cjfs_store_dir(c), txn, rmnt, opts);
		r2 = cjfs_store_resume(c);
		if (r == 0 && r2 < 0)
			r = r2;
	}
	if (r < 0 && created && store_txn_daemon_alive(cjfs_store(c), txn) == 0) {
		/* Never mounted: nothing was changed; do not leave it blocking PKG. */
		(void)store_txn_transition(cjfs_store(c), txn, STORE_TXN_OPEN,
					   STORE_TXN_ROLLED_BACK, "TXN_ROLLBACK", "mount failed");
		(void)store_txn_remove_dir(cjfs_store(c), txn);
	}
	if (r == 0 && ret_txn)
		*ret_txn = txn;
out:
	util_close(lock);
	store_txn_free(t);
	free(rpkg);
	free(rmnt);
	return r;
}
