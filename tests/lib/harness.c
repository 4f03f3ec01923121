// SPDX-License-Identifier: MIT
/* The integration-test harness (see harness.h). */
#include "harness.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sqlite3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "store.h"
#include "util.h"

const char *h_cjfs_bin(void)
{
	const char *b = getenv("CJFS_BIN");

	return b && *b ? b : "cjfs";
}

bool h_fuse_available(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

void h_setup(struct h_env *e)
{
	const char *tmp = getenv("TMPDIR");

	memset(e, 0, sizeof(*e));
	/* Named after the runner, so that its end-of-run sweep finds what a crashed test left. */
	snprintf(e->root, sizeof(e->root), "%s/cjfs-test.%s.XXXXXX", tmp && *tmp ? tmp : "/tmp",
		 getenv("CJFS_TEST_RUN") ? getenv("CJFS_TEST_RUN") : "0");
	cr_assert_not_null(mkdtemp(e->root), "mkdtemp: %s", strerror(errno));
	snprintf(e->pkg, sizeof(e->pkg), "%s/pkg", e->root);
	snprintf(e->mnt, sizeof(e->mnt), "%s/mnt", e->root);
	snprintf(e->store, sizeof(e->store), "%s/store", e->root);
	cr_assert_eq(mkdir(e->pkg, 0755), 0);
	cr_assert_eq(mkdir(e->mnt, 0755), 0);
}

static bool is_mounted(const char *mnt)
{
	struct stat a, b;
	char parent[PATH_MAX];

	if (stat(mnt, &a) < 0)
		return errno == ENOTCONN; /* a dead FUSE mount */
	snprintf(parent, sizeof(parent), "%s/..", mnt);
	if (stat(parent, &b) < 0)
		return false;
	return a.st_dev != b.st_dev;
}

static void force_unmount(const char *mnt)
{
	for (int i = 0; i < 50 && is_mounted(mnt); i++) {
		if (umount2(mnt, i < 20 ? 0 : MNT_DETACH) == 0)
			break;
		if (h_sh("/", "fusermount3 -u%s '%s' 2>/dev/null", i < 20 ? "" : "z", mnt) == 0)
			break;
		usleep(20000);
	}
}

/* Mount points at or below root, from our mount namespace, deepest first. */
static size_t mounts_under(const char *root, char ***ret)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	size_t rl = strlen(root), n = 0;
	char **v = NULL, **nv, *line = NULL;
	size_t cap = 0;

	*ret = NULL;
	if (!f)
		return 0;
	while (getline(&line, &cap, f) > 0) {
		char point[PATH_MAX];

		if (sscanf(line, "%*s %*s %*s %*s %4095s", point) != 1)
			continue;
		if (strncmp(point, root, rl) != 0 || (point[rl] != '/' && point[rl] != '\0'))
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		cr_assert_not_null(nv);
		v = nv;
		v[n++] = strdup(point);
	}
	free(line);
	fclose(f);
	/* Longest path first: a mount below another goes before it. */
	for (size_t i = 0; i < n; i++) {
		for (size_t j = i + 1; j < n; j++) {
			if (strlen(v[j]) > strlen(v[i])) {
				char *t = v[i];

				v[i] = v[j];
				v[j] = t;
			}
		}
	}
	*ret = v;
	return n;
}

static void unmount_all_under(const char *root)
{
	for (int round = 0; round < 3; round++) {
		char **v;
		size_t n = mounts_under(root, &v);

		for (size_t i = 0; i < n; i++) {
			if (umount2(v[i], 0) < 0 && errno != EINVAL && errno != ENOENT) {
				if (h_sh("/", "fusermount3 -u '%s' 2>/dev/null", v[i]) != 0)
					(void)umount2(v[i], MNT_DETACH);
			}
			free(v[i]);
		}
		free(v);
		if (n == 0)
			break;
	}
}

static void kill_bg(struct h_env *e)
{
	for (int i = 0; i < H_MAX_BG; i++) {
		int status;

		if (e->bg[i] <= 0)
			continue;
		kill(e->bg[i], SIGKILL);
		while (waitpid(e->bg[i], &status, 0) < 0 && errno == EINTR)
			;
		e->bg[i] = 0;
	}
}

void h_teardown(struct h_env *e)
{
	char cmd[2 * PATH_MAX + 96];

	if (!e->root[0])
		return;
	kill_bg(e);
	force_unmount(e->mnt);
	if (e->daemon > 0) {
		int status;

		/* Never leave a daemon behind, even after a failed test. */
		for (int i = 0; i < 200 && waitpid(e->daemon, &status, WNOHANG) == 0; i++)
			usleep(10000);
		if (kill(e->daemon, 0) == 0) {
			kill(e->daemon, SIGKILL);
			waitpid(e->daemon, &status, 0);
			force_unmount(e->mnt);
		}
		e->daemon = 0;
	}
	/* Other mounts of the test (second mount points, tmpfs), whatever the test did. */
	unmount_all_under(e->root);
	/* Any daemon serving a mount of ours has exited with its mount. */
	/* A test may leave directories its user cannot write into (0555). */
	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s' 2>/dev/null; rm -rf '%s'", e->root,
		 e->root);
	(void)!system(cmd);
	e->root[0] = '\0';
}

bool h_tmpfs(struct h_env *e, const char *dir, const char *size)
{
	char opts[64];

	(void)e;
	if (geteuid() != 0)
		return false;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return false;
	snprintf(opts, sizeof(opts), "size=%s,mode=0755", size);
	return mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) == 0;
}

void h_setup_tmpfs(struct h_env *e, const char *size)
{
	h_setup(e);
	if (!h_tmpfs(e, e->root, size))
		return;
	/* The tmpfs hides what h_setup made: make it again on top. */
	cr_assert_eq(mkdir(e->pkg, 0755), 0);
	cr_assert_eq(mkdir(e->mnt, 0755), 0);
}

/*
 * Trees are copied and removed in the test's own process: the fault and kill
 * suites restore PKG and the store before each of their ~2,000 iterations,
 * where two shells, find, rm and two cp cost ~35 ms of each ~200 ms.
 */

/* Regular files with more than one link already copied: source inode -> copy. */
struct copied_link {
	dev_t dev;
	ino_t ino;
	char *path;
};

struct copied_links {
	struct copied_link *v;
	size_t n;
};

static const char *copied_link(const struct copied_links *l, const struct stat *st)
{
	for (size_t i = 0; i < l->n; i++) {
		if (l->v[i].dev == st->st_dev && l->v[i].ino == st->st_ino)
			return l->v[i].path;
	}
	return NULL;
}

/* Copy a file's data, holes kept as holes (as cp's --sparse=auto does). */
static void copy_data(const char *src, const char *dst)
{
	int in = open(src, O_RDONLY | O_CLOEXEC), out, r;
	struct stat st;

	cr_assert(in >= 0, "open '%s': %s", src, strerror(errno));
	cr_assert_eq(fstat(in, &st), 0);
	out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert(out >= 0, "create '%s': %s", dst, strerror(errno));
	r = util_copy_sparse(in, out, st.st_size);
	cr_assert_eq(r, 0, "copy '%s' to '%s': %s", src, dst, strerror(-r));
	close(in);
	cr_assert_eq(close(out), 0, "close '%s': %s", dst, strerror(errno));
}

/*
 * What cp -a keeps: owner, extended attributes (ACLs too), mode, times; in
 * this order, as a chown drops security.capability and the mode's
 * set-user-ID and set-group-ID bits.
 */
static void copy_meta(const char *src, const char *dst, const struct stat *st)
{
	char names[4096], value[65536];
	ssize_t len = llistxattr(src, names, sizeof(names));
	struct timespec times[2] = { st->st_atim, st->st_mtim };

	if (lchown(dst, st->st_uid, st->st_gid) < 0)
		cr_assert_eq(errno, EPERM, "chown '%s': %s", dst, strerror(errno));
	for (ssize_t i = 0; len > 0 && i < len; i += (ssize_t)strlen(names + i) + 1) {
		ssize_t n = lgetxattr(src, names + i, value, sizeof(value));

		if (n >= 0)
			(void)lsetxattr(dst, names + i, value, (size_t)n, 0);
	}
	if (!S_ISLNK(st->st_mode))
		cr_assert_eq(chmod(dst, st->st_mode & 07777), 0, "chmod '%s': %s", dst,
			     strerror(errno));
	cr_assert_eq(utimensat(AT_FDCWD, dst, times, AT_SYMLINK_NOFOLLOW), 0,
		     "set the times of '%s': %s", dst, strerror(errno));
}

/* Copy src to dst; dst exists already when it is a directory and exists is set. */
static void copy_entry(const char *src, const char *dst, bool exists, struct copied_links *l)
{
	struct stat st;
	const char *first;

	cr_assert_eq(lstat(src, &st), 0, "stat '%s': %s", src, strerror(errno));
	switch (st.st_mode & S_IFMT) {
	case S_IFDIR: {
		DIR *d;
		struct dirent *de;

		if (!exists)
			cr_assert_eq(mkdir(dst, 0700), 0, "mkdir '%s': %s", dst, strerror(errno));
		d = opendir(src);
		cr_assert_not_null(d, "open '%s': %s", src, strerror(errno));
		while ((de = readdir(d))) {
			char s[PATH_MAX], t[PATH_MAX];

			if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
				continue;
			snprintf(s, sizeof(s), "%s/%s", src, de->d_name);
			snprintf(t, sizeof(t), "%s/%s", dst, de->d_name);
			copy_entry(s, t, false, l);
		}
		closedir(d);
		break;
	}
	case S_IFREG:
		if (st.st_nlink > 1 && (first = copied_link(l, &st))) {
			cr_assert_eq(link(first, dst), 0, "link '%s': %s", dst, strerror(errno));
			return;
		}
		copy_data(src, dst);
		if (st.st_nlink > 1) {
			l->v = realloc(l->v, (l->n + 1) * sizeof(*l->v));
			cr_assert_not_null(l->v);
			l->v[l->n].dev = st.st_dev;
			l->v[l->n].ino = st.st_ino;
			l->v[l->n].path = strdup(dst);
			cr_assert_not_null(l->v[l->n++].path);
		}
		break;
	case S_IFLNK: {
		char target[PATH_MAX];
		ssize_t n = readlink(src, target, sizeof(target) - 1);

		cr_assert_geq(n, 0, "readlink '%s': %s", src, strerror(errno));
		target[n] = '\0';
		cr_assert_eq(symlink(target, dst), 0, "symlink '%s': %s", dst, strerror(errno));
		break;
	}
	default: /* FIFOs, sockets, devices */
		cr_assert_eq(mknod(dst, st.st_mode, st.st_rdev), 0, "mknod '%s': %s", dst,
			     strerror(errno));
	}
	copy_meta(src, dst, &st);
}

static void copy_into(const char *src, const char *dst, bool exists)
{
	struct copied_links l = { 0 };

	copy_entry(src, dst, exists, &l);
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].path);
	free(l.v);
}

void h_remove_tree(const char *path)
{
	int r = util_rm_rf_at(AT_FDCWD, path);

	cr_assert_eq(r, 0, "rm -rf '%s': %s", path, strerror(-r));
}

/* Remove everything dir holds; dir itself stays. */
static void empty_tree(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	cr_assert_not_null(d, "open '%s': %s", dir, strerror(errno));
	while ((de = readdir(d))) {
		int r;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = util_rm_rf_at(dirfd(d), de->d_name);
		cr_assert_eq(r, 0, "rm -rf '%s/%s': %s", dir, de->d_name, strerror(-r));
	}
	closedir(d);
}

void h_restore_tree(const char *src, const char *dir)
{
	empty_tree(dir);
	copy_into(src, dir, true);
}

void h_replace_tree(const char *src, const char *dst)
{
	h_remove_tree(dst);
	copy_into(src, dst, false);
}

static void state_paths(const struct h_env *e, const char *name, char pkg[PATH_MAX],
			char store[PATH_MAX])
{
	snprintf(pkg, PATH_MAX, "%s/%s-pkg", e->root, name);
	snprintf(store, PATH_MAX, "%s/%s-store", e->root, name);
}

void h_save_state(struct h_env *e, const char *name)
{
	char pkg[PATH_MAX], store[PATH_MAX];

	state_paths(e, name, pkg, store);
	h_replace_tree(e->pkg, pkg);
	h_replace_tree(e->store, store);
}

void h_load_state(struct h_env *e, const char *name)
{
	char pkg[PATH_MAX], store[PATH_MAX];

	state_paths(e, name, pkg, store);
	h_restore_tree(pkg, e->pkg);
	h_replace_tree(store, e->store);
}

void h_drop_state(struct h_env *e, const char *name)
{
	char pkg[PATH_MAX], store[PATH_MAX];

	state_paths(e, name, pkg, store);
	h_remove_tree(pkg);
	h_remove_tree(store);
}

static void read_into(int fd, char *buf, size_t cap)
{
	size_t len = 0;

	for (;;) {
		ssize_t n = read(fd, buf + len, cap - 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == cap - 1) {
			char sink[4096];

			while (read(fd, sink, sizeof(sink)) > 0)
				;
			break;
		}
	}
	buf[len] = '\0';
}

/* Build cjfs's argv: the binary, --store, then argv. */
static void build_args(struct h_env *e, char *const argv[], char *args[64])
{
	size_t n = 0;

	args[n++] = (char *)h_cjfs_bin();
	args[n++] = (char *)"--store";
	args[n++] = e->store;
	for (size_t i = 0; argv[i] && n < 63; i++)
		args[n++] = argv[i];
	args[n] = NULL;
}

/* Whether the environment entry sets the variable other ("NAME=...") names. */
static bool same_var(const char *entry, const char *other)
{
	size_t n = strcspn(other, "=");

	return strncmp(entry, other, n) == 0 && entry[n] == '=';
}

/*
 * The environment cjfs runs with, built before the fork (a child of a
 * threaded test process must not allocate): the test's own, env on top.
 * `cjfs run` makes its private mount point in $TMPDIR: in the test's
 * directory, where teardown unmounts whatever a failed test left. Only
 * the array and its first entry (TMPDIR) are allocated: free_env().
 */
static char **child_env(struct h_env *e, char *const env[])
{
	extern char **environ;
	size_t n = 0, k = 0, extra = 0;
	char **v;

	while (environ[n])
		n++;
	while (env && env[extra])
		extra++;
	v = calloc(n + extra + 2, sizeof(*v));
	cr_assert_not_null(v);
	cr_assert_gt(asprintf(&v[k++], "TMPDIR=%s", e->root), 0);
	for (size_t i = 0; i < n; i++) {
		bool replaced = same_var(environ[i], "TMPDIR=") ||
				same_var(environ[i], "XDG_RUNTIME_DIR=");

		for (size_t j = 0; j < extra && !replaced; j++)
			replaced = same_var(environ[i], env[j]);
		if (!replaced)
			v[k++] = environ[i];
	}
	for (size_t j = 0; j < extra; j++)
		v[k++] = env[j];
	return v;
}

static void free_env(char **v)
{
	free(v[0]);
	free(v);
}

int h_cjfsv(struct h_env *e, char *const argv[])
{
	return h_cjfsv_env(e, NULL, argv);
}

int h_cjfsv_env(struct h_env *e, char *const env[], char *const argv[])
{
	int outp[2], errp[2], status;
	struct pollfd pf[2];
	size_t olen = 0, elen = 0;
	char *args[64], **envp;
	pid_t pid;

	build_args(e, argv, args);
	envp = child_env(e, env);
	cr_assert_eq(pipe2(outp, O_CLOEXEC), 0);
	cr_assert_eq(pipe2(errp, O_CLOEXEC), 0);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(outp[1], STDOUT_FILENO);
		dup2(errp[1], STDERR_FILENO);
		execve(args[0], args, envp);
		_exit(127);
	}
	free_env(envp);
	close(outp[1]);
	close(errp[1]);
	/* Both pipes at once: a full stderr must not block a child writing stdout. */
	pf[0] = (struct pollfd){ .fd = outp[0], .events = POLLIN };
	pf[1] = (struct pollfd){ .fd = errp[0], .events = POLLIN };
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int k = 0; k < 2; k++) {
			char *buf = k ? e->err : e->out;
			size_t *len = k ? &elen : &olen;
			size_t cap = k ? sizeof(e->err) : sizeof(e->out);
			char sink[4096];
			ssize_t r;

			if (pf[k].fd < 0 || !(pf[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (*len < cap - 1)
				r = read(pf[k].fd, buf + *len, cap - 1 - *len);
			else
				r = read(pf[k].fd, sink, sizeof(sink));
			if (r > 0 && *len < cap - 1)
				*len += (size_t)r;
			if (r <= 0 && !(r < 0 && errno == EINTR)) {
				close(pf[k].fd);
				pf[k].fd = -1;
			}
		}
	}
	e->out[olen] = '\0';
	e->err[elen] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int h_cjfs(struct h_env *e, ...)
{
	char *argv[60];
	size_t n = 0;
	va_list ap;

	va_start(ap, e);
	while (n < 59 && (argv[n] = va_arg(ap, char *)))
		n++;
	va_end(ap);
	argv[n] = NULL;
	return h_cjfsv(e, argv);
}

pid_t h_cjfs_start(struct h_env *e, struct h_proc *p, char *const env[], char *const argv[])
{
	static unsigned seq;
	char *args[64], **envp;
	int slot = -1, out, err;

	for (int i = 0; i < H_MAX_BG && slot < 0; i++) {
		if (e->bg[i] <= 0)
			slot = i;
	}
	cr_assert(slot >= 0, "too many background cjfs processes");
	memset(p, 0, sizeof(*p));
	seq++;
	snprintf(p->out_path, sizeof(p->out_path), "%s/bg%u.out", e->root, seq);
	snprintf(p->err_path, sizeof(p->err_path), "%s/bg%u.err", e->root, seq);
	out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	cr_assert(out >= 0 && err >= 0, "cannot create '%s': %s", p->out_path, strerror(errno));
	build_args(e, argv, args);
	envp = child_env(e, env);
	fflush(NULL);
	p->pid = fork();
	cr_assert(p->pid >= 0);
	if (p->pid == 0) {
		dup2(out, STDOUT_FILENO);
		dup2(err, STDERR_FILENO);
		execve(args[0], args, envp);
		_exit(127);
	}
	free_env(envp);
	close(out);
	close(err);
	e->bg[slot] = p->pid;
	return p->pid;
}

static void reaped(struct h_env *e, struct h_proc *p, int status)
{
	p->done = true;
	p->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	for (int i = 0; e && i < H_MAX_BG; i++) {
		if (e->bg[i] == p->pid)
			e->bg[i] = 0;
	}
}

static void slurp(const char *path, char *buf, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return;
	read_into(fd, buf, cap);
	close(fd);
}

int h_cjfs_wait(struct h_env *e, struct h_proc *p)
{
	int status;

	if (!p->done) {
		/* A stopped process would never exit: let it go on. */
		kill(p->pid, SIGCONT);
		while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR)
			;
		reaped(e, p, status);
	}
	slurp(p->out_path, p->out, sizeof(p->out));
	slurp(p->err_path, p->err, sizeof(p->err));
	return p->status;
}

bool h_cjfs_wait_stopped(struct h_proc *p)
{
	int status;

	while (waitpid(p->pid, &status, WUNTRACED) < 0) {
		if (errno != EINTR)
			return false;
	}
	if (WIFSTOPPED(status))
		return true;
	/* It exited: keep its status for h_cjfs_wait (the slot is cleared there). */
	p->done = true;
	p->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	return false;
}

void h_mount_fg(struct h_env *e)
{
	h_mount_fg_opt(e, NULL);
}

/* What the foreground daemon logged, into e->err. */
static void read_daemon_log(struct h_env *e)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/daemon.log", e->root);
	e->err[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		read_into(fd, e->err, sizeof(e->err));
		close(fd);
	}
}

void h_mount_fg_opt(struct h_env *e, const char *opt)
{
	struct stat before, now;
	char log[PATH_MAX];
	int status, logfd;
	pid_t pid;

	cr_assert_eq(stat(e->mnt, &before), 0);
	/* A file, not a pipe: the daemon may log (or ASan report) long after the mount. */
	snprintf(log, sizeof(log), "%s/daemon.log", e->root);
	logfd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert(logfd >= 0);
	fflush(NULL);
	pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		dup2(logfd, STDERR_FILENO);
		if (opt)
			execl(h_cjfs_bin(), h_cjfs_bin(), "--store", e->store, "mount", "-f", opt,
			      e->pkg, e->mnt, (char *)NULL);
		else
			execl(h_cjfs_bin(), h_cjfs_bin(), "--store", e->store, "mount", "-f",
			      e->pkg, e->mnt, (char *)NULL);
		_exit(127);
	}
	close(logfd);
	e->daemon = pid;
	for (int i = 0; i < 1000; i++) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			e->daemon = 0;
			read_daemon_log(e);
			cr_assert_fail("cjfs mount -f exited before mounting: %s", e->err);
		}
		if (stat(e->mnt, &now) == 0 && now.st_dev != before.st_dev)
			return;
		usleep(10000);
	}
	cr_assert_fail("cjfs mount -f did not mount within 10 s");
}

int h_wait_daemon(struct h_env *e)
{
	int status = 0;

	if (e->daemon <= 0)
		return -1;
	while (waitpid(e->daemon, &status, 0) < 0 && errno == EINTR)
		;
	e->daemon = 0;
	read_daemon_log(e);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void h_mount(struct h_env *e)
{
	h_mount_opt(e, NULL);
}

void h_mount_opt(struct h_env *e, const char *opt)
{
	int r = opt ? h_cjfs(e, "mount", opt, e->pkg, e->mnt, NULL)
		    : h_cjfs(e, "mount", e->pkg, e->mnt, NULL);

	cr_assert_eq(r, 0, "cjfs mount failed (%d): %s", r, e->err);
}

void h_copy_tree(const char *src, const char *dst)
{
	copy_into(src, dst, false);
}

int h_unmount(struct h_env *e)
{
	char needle[PATH_MAX + 4];

	if (h_sh("/", "fusermount3 -u '%s'", e->mnt) != 0)
		return -1;
	if (e->daemon > 0)
		return h_wait_daemon(e);
	/*
	 * A background daemon goes on for a moment after the unmount, closing
	 * the store (SQLite removes its -wal and -shm files then): wait until
	 * cjfs status no longer shows it serving the mount point.
	 */
	snprintf(needle, sizeof(needle), "\t%s\n", e->mnt);
	for (int i = 0; i < 500; i++) {
		if (h_cjfs(e, "status", NULL) == 0 && !strstr(e->out, needle))
			return 0;
		usleep(10000);
	}
	return -1;
}

int h_sh(const char *dir, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	pid_t pid;
	int status;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (chdir(dir) < 0)
			_exit(126);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void h_write(const char *dir, const char *rel, const char *content)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f, "cannot write '%s': %s", path, strerror(errno));
	fputs(content, f);
	cr_assert_eq(fclose(f), 0);
}

char *h_read(const char *dir, const char *rel)
{
	struct strbuf sb = STRBUF_INIT;
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (strbuf_read_fd(&sb, fd, 0) < 0) {
		close(fd);
		strbuf_release(&sb);
		return NULL;
	}
	close(fd);
	return strbuf_detach(&sb);
}

struct lines {
	char **v;
	size_t n, cap;
};

static void lines_add(struct lines *l, char *s)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = realloc(l->v, l->cap * sizeof(*l->v));
		cr_assert_not_null(l->v);
	}
	l->v[l->n++] = s;
}

/* A snapshot line with the object's xattrs (ACLs too): "\txattrs NAME=HEX ...". */
static char *add_xattrs(char *line, int dfd, const char *name, const char *rel)
{
	struct strbuf list = STRBUF_INIT, sb = STRBUF_INIT;
	const char *attr, *value;
	size_t pos = 0, n;

	cr_assert_eq(store_xattrs_read_at(dfd, name, &list), 0, "xattrs of '%s'", rel);
	if (!list.len)
		return line;
	strbuf_adds(&sb, line);
	strbuf_adds(&sb, "\txattrs");
	while (store_xattrs_next(list.buf, list.len, &pos, &attr, &value, &n)) {
		strbuf_addf(&sb, " %s=", attr);
		for (size_t i = 0; i < n; i++)
			strbuf_addf(&sb, "%02x", (uint8_t)value[i]);
	}
	free(line);
	strbuf_release(&list);
	return strbuf_detach(&sb);
}

static void walk(int dfd, const char *prefix, bool with_mtime, struct lines *l)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;

	cr_assert_not_null(d);
	while ((de = readdir(d))) {
		char rel[PATH_MAX], desc[64 + HASH_HEX_LEN + PATH_MAX] = "", hex[HASH_HEX_LEN + 1];
		uint8_t h[HASH_LEN];
		struct stat st;
		char *line;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(rel, sizeof(rel), "%s%s", prefix, de->d_name);
		cr_assert_eq(fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW), 0,
			     "stat '%s': %s", rel, strerror(errno));
		if (S_ISREG(st.st_mode)) {
			int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);

			cr_assert(fd >= 0, "open '%s': %s", rel, strerror(errno));
			cr_assert_eq(hash_fd(fd, h, NULL), 0);
			close(fd);
			hash_to_hex(h, hex);
			snprintf(desc, sizeof(desc), "file %lld %s", (long long)st.st_size, hex);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlinkat(dirfd(d), de->d_name, target, sizeof(target) - 1);

			cr_assert(n >= 0);
			target[n] = '\0';
			snprintf(desc, sizeof(desc), "link -> %s", target);
		} else if (S_ISDIR(st.st_mode)) {
			snprintf(desc, sizeof(desc), "dir");
		} else {
			snprintf(desc, sizeof(desc), "special %o %u:%u", (unsigned)(st.st_mode & S_IFMT),
				 major(st.st_rdev), minor(st.st_rdev));
		}
		if (with_mtime && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
			line = util_xasprintf("%s\t%s\t%04o\t%lld.%09ld", rel, desc,
					      (unsigned)(st.st_mode & 07777),
					      (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
		else
			line = util_xasprintf("%s\t%s\t%04o", rel, desc,
					      S_ISLNK(st.st_mode) ? 0
								  : (unsigned)(st.st_mode & 07777));
		if (line && (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
			line = add_xattrs(line, dirfd(d), de->d_name, rel);
		lines_add(l, line);
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			char sp[PATH_MAX];

			cr_assert(sub >= 0);
			snprintf(sp, sizeof(sp), "%s/", rel);
			walk(sub, sp, with_mtime, l);
		}
	}
	closedir(d);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

char *h_snapshot(const char *dir, bool with_mtime)
{
	struct strbuf sb = STRBUF_INIT;
	struct lines l = { 0 };
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct stat st;

	cr_assert(fd >= 0, "open '%s': %s", dir, strerror(errno));
	/* The top directory's own attributes: commit promotes them too. */
	cr_assert_eq(fstat(fd, &st), 0);
	lines_add(&l, add_xattrs(util_xasprintf("./\tdir\t%04o", (unsigned)(st.st_mode & 07777)),
				 fd, ".", "."));
	walk(fd, "", with_mtime, &l);
	if (l.n)
		qsort(l.v, l.n, sizeof(*l.v), cmp_str);
	strbuf_grow(&sb, 0);
	for (size_t i = 0; i < l.n; i++) {
		strbuf_adds(&sb, l.v[i]);
		strbuf_add(&sb, "\n", 1);
		free(l.v[i]);
	}
	free(l.v);
	return strbuf_detach(&sb);
}

static int count_walk(int dfd, const char *s)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (strstr(de->d_name, s))
			n++;
		if (de->d_type == DT_DIR) {
			int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

			if (sub >= 0)
				n += count_walk(sub, s);
		}
	}
	closedir(d);
	return n;
}

bool h_appears(const char *dir, const char *name)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	for (int i = 0; i < 1000; i++) {
		if (access(path, F_OK) == 0)
			return true;
		usleep(10000);
	}
	return false;
}

int h_count_names(const char *dir, const char *s)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? 0 : count_walk(fd, s);
}

char *h_txn_state(struct h_env *e, long txn)
{
	char *save = NULL, *line;
	char *copy;

	cr_assert_eq(h_cjfs(e, "status", NULL), 0, "cjfs status failed: %s", e->err);
	copy = strdup(e->out);
	cr_assert_not_null(copy);
	for (line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line, '\t'), *end;

		if (!tab || strtol(line, NULL, 10) != txn)
			continue;
		end = strchr(tab + 1, '\t');
		if (end)
			*end = '\0';
		line = strdup(tab + 1);
		free(copy);
		return line;
	}
	free(copy);
	return NULL;
}

void h_assert_one_line(const struct h_env *e, const char *what)
{
	cr_assert_neq(e->err[0], '\0', "no error message");
	cr_assert_not_null(strstr(e->err, what), "error does not name '%s': %s", what, e->err);
	cr_assert_eq(strchr(e->err, '\n'), e->err + strlen(e->err) - 1, "error is not one line: %s",
		     e->err);
}

/* The first line where two snapshots differ, for failure messages (static buffer). */
static const char *first_difference(const char *a, const char *b, const char *bname)
{
	static char buf[2][1024];
	static int k;
	const char *la = a, *lb = b;
	char *out = buf[k++ % 2];

	while (*la && *lb) {
		const char *ea = strchrnul(la, '\n'), *eb = strchrnul(lb, '\n');

		if (ea - la != eb - lb || memcmp(la, lb, (size_t)(ea - la)) != 0) {
			snprintf(out, 1024, "PKG has '%.*s' where the %s tree has '%.*s'",
				 (int)(ea - la), la, bname, (int)(eb - lb), lb);
			return out;
		}
		la = *ea ? ea + 1 : ea;
		lb = *eb ? eb + 1 : eb;
	}
	snprintf(out, 1024, "PKG %s the %s tree",
		 *la ? "has more entries than" : "lacks entries of", bname);
	return out;
}

int h_recover_and_check(struct h_env *e, const char *old, const char *new, const char *what)
{
	char *now;
	int r;

	r = h_cjfs(e, "recover", NULL);
	cr_assert_eq(r, 0, "%s: cjfs recover failed (%d): %s", what, r, e->err);
	r = h_cjfs(e, "recover", NULL);
	cr_assert_eq(r, 0, "%s: second cjfs recover failed (%d): %s", what, r, e->err);
	cr_assert_str_eq(e->out,
			 "0 commit(s) finished, 0 reopened, 0 leftover(s) removed, 0 failed\n",
			 "%s: a second recovery still had work to do", what);
	now = h_snapshot(e->pkg, true);
	if (strcmp(now, old) == 0)
		r = 0;
	else if (strcmp(now, new) == 0)
		r = 1;
	else
		cr_assert_fail("%s: PKG is neither the old nor the new tree: %s; %s", what,
			       first_difference(now, old, "old"),
			       first_difference(now, new, "new"));
	free(now);
	cr_assert_eq(h_count_names(e->pkg, ".cjfs-"), 0, "%s: .cjfs- temporaries left in PKG",
		     what);
	cr_assert_eq(h_cjfs(e, "verify", NULL), 0, "%s: cjfs verify failed: %s%s", what, e->out,
		     e->err);
	return r;
}

long h_commit_phase(struct h_env *e, long txn, const char *phase)
{
	char *fenv[] = { (char *)"CJFS_FAULT=1000000000:EIO", (char *)"CJFS_DEBUG=2", NULL };
	char id[32], pat[64];
	char *argv[] = { (char *)"commit", id, NULL };
	const char *at;
	long n;

	snprintf(id, sizeof(id), "%ld", txn);
	h_save_state(e, "phase");
	cr_assert_eq(h_cjfsv_env(e, fenv, argv), 0, "the measuring commit failed: %s", e->err);
	snprintf(pat, sizeof(pat), "commit %ld: %s at fault point ", txn, phase);
	at = strstr(e->err, pat);
	cr_assert_not_null(at, "no '%s' in the debug log: %s", pat, e->err);
	n = strtol(at + strlen(pat), NULL, 10);
	h_load_state(e, "phase");
	h_drop_state(e, "phase");
	return n;
}

long h_sql_long(struct h_env *e, const char *sql)
{
	char db[PATH_MAX];
	sqlite3 *h = NULL;
	sqlite3_stmt *st;
	long v;

	snprintf(db, sizeof(db), "%s/index.db", e->store);
	cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK,
		     "cannot open '%s'", db);
	cr_assert_eq(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
		     sqlite3_errmsg(h));
	cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s: no row", sql);
	v = (long)sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(h);
	return v;
}

void h_sql_exec(struct h_env *e, const char *sql)
{
	char db[PATH_MAX], *msg = NULL;
	sqlite3 *h = NULL;

	snprintf(db, sizeof(db), "%s/index.db", e->store);
	cr_assert_eq(sqlite3_open_v2(db, &h, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK,
		     "cannot open '%s'", db);
	sqlite3_busy_timeout(h, 10000);
	cr_assert_eq(sqlite3_exec(h, sql, NULL, NULL, &msg), SQLITE_OK, "%s: %s", sql,
		     msg ? msg : "?");
	sqlite3_free(msg);
	sqlite3_close(h);
}

long h_env_long(const char *name, long def)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (!v || !*v)
		return def;
	n = strtol(v, &end, 10);
	return *end ? def : n;
}

long h_knob(const char *name, long def, long quick_def)
{
	return h_env_long(name, h_env_long("CJFS_TEST_QUICK", 0) ? quick_def : def);
}

/*
 * The runner's safety net. Criterion runs each test in a child process; a
 * test that crashes never reaches its .fini. The runner (which never mounts
 * anything itself) names this run before the first test and, after the last,
 * unmounts whatever is still mounted below the run's directories and
 * removes them: no mount and no daemon outlive the run.
 */
static char run_prefix[64];

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	char id[32];

	(void)set;
	snprintf(id, sizeof(id), "%ld", (long)getpid());
	setenv("CJFS_TEST_RUN", id, 1);
	snprintf(run_prefix, sizeof(run_prefix), "cjfs-test.%s.", id);
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	const char *tmp = getenv("TMPDIR");
	char cmd[PATH_MAX + 512];

	(void)stats;
	if (!run_prefix[0])
		return;
	tmp = tmp && *tmp ? tmp : "/tmp";
	/* Deepest mounts first (a tmpfs PKG under a test root, a mount on it). */
	snprintf(cmd, sizeof(cmd),
		 "awk '{print $5}' /proc/self/mountinfo | grep '^%s/%s' | sort -r | "
		 "while read -r m; do umount \"$m\" 2>/dev/null || fusermount3 -uz \"$m\" "
		 "2>/dev/null || umount -l \"$m\" 2>/dev/null; done; "
		 "rm -rf %s/%s* 2>/dev/null",
		 tmp, run_prefix, tmp, run_prefix);
	(void)!system(cmd);
}
