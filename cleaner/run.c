// SPDX-License-Identifier: MIT
/*
 * cjfs run: mount PKG on a private temporary directory, show that mount to a
 * command at PKG's own path, run the command there, judge its outcome,
 * commit or roll back, and report.
 *
 * The command sees the mount where PKG is, in a mount namespace of its own
 * (a bind mount of the private directory over PKG's path; other programs
 * still see PKG as it is), so what a tool looks for above its working
 * directory (.clang-format, pyproject.toml, .editorconfig, the git
 * repository) is found as when it runs in PKG, and absolute paths into PKG
 * go through the transaction too. Root makes the namespace directly; other
 * users in a user namespace of their own, which maps only their own user
 * and group: so that no file's group shows as "nogroup" to a tool that
 * copies it (sed -i), that is done only where the user has no other group
 * or PKG's top directory has the user's own. Where the namespace cannot be
 * made, the command runs at the private directory, with a warning.
 */
#include "cjfs.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
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
#include "log.h"

#define RUN_CJFS_FAILED 125
#define RUN_CANNOT_EXEC 126
#define RUN_NOT_FOUND 127

static volatile sig_atomic_t run_child;

/* SIGTERM/SIGHUP to cjfs go to the command, so cjfs itself lives on to roll back. */
static void forward_signal(int sig)
{
	if (run_child > 0)
		kill((pid_t)run_child, sig);
}

static char *join_argv(char *const argv[])
{
	struct strbuf sb = STRBUF_INIT;

	for (size_t i = 0; argv[i]; i++) {
		if ((i && strbuf_add(&sb, " ", 1) < 0) || strbuf_adds(&sb, argv[i]) < 0) {
			strbuf_release(&sb);
			return NULL;
		}
	}
	return strbuf_detach(&sb);
}

static char *private_dir(void)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	char *tmpl;

	if (!base || !*base || stat(base, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    access(base, W_OK) < 0)
		base = getenv("TMPDIR");
	if (!base || !*base)
		base = "/tmp";
	tmpl = util_xasprintf("%s/cjfs-run.XXXXXX", base);
	if (tmpl && !mkdtemp(tmpl)) {
		free(tmpl);
		return NULL;
	}
	return tmpl;
}

/* In a child: enter dir and run argv there. */
static void __attribute__((noreturn)) exec_in(const char *dir, char *const argv[])
{
	if (chdir(dir) < 0) {
		log_errno(-errno, "cannot enter the mount '%s'", dir);
		_exit(RUN_CJFS_FAILED);
	}
	(void)setenv("PWD", dir, 1);
	execvp(argv[0], argv);
	log_errno(-errno, "cannot run '%s'", argv[0]);
	_exit(errno == ENOENT ? RUN_NOT_FOUND : RUN_CANNOT_EXEC);
}

/* Wait for pid as system(3) would; returns its wait status. */
static int wait_forwarding(pid_t pid)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, fwd = { .sa_handler = forward_signal };
	struct sigaction old_int, old_quit, old_term, old_hup;
	int status = 0;

	sigemptyset(&ign.sa_mask);
	sigemptyset(&fwd.sa_mask);
	run_child = pid;
	/* Like system(3): ^C and ^\ are for the command; cjfs waits to clean up after it. */
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	sigaction(SIGTERM, &fwd, &old_term);
	sigaction(SIGHUP, &fwd, &old_hup);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	run_child = 0;
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	sigaction(SIGTERM, &old_term, NULL);
	sigaction(SIGHUP, &old_hup, NULL);
	return status;
}

/* Run argv with its working directory at dir; returns its wait status or -errno. */
static int spawn_wait(const char *dir, char *const argv[])
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		exec_in(dir, argv);
	return wait_forwarding(pid);
}

/* What the helper in the command's namespace reports (run_at_pkg). */
struct run_report {
	int setup;  /* 0, -errno, or NS_HIDES_GROUPS: why PKG could not be shown */
	int status; /* the command's wait status */
	bool busy;  /* a process it left still uses the mount */
};

/* A user namespace would show some of the user's files as "nogroup". */
#define NS_HIDES_GROUPS 1

static int write_proc(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = util_write_full(fd, text, strlen(text));
	close(fd);
	return r;
}

/*
 * A user namespace maps only the user's own user and group: files of the
 * user's other groups would show as "nogroup", and a tool copying a file's
 * group (sed -i) would lose it. Fine where there is no other group, or PKG
 * itself has the user's own group.
 */
static bool userns_shows_groups(const struct stat *pkg)
{
	gid_t g = getegid(), *v;
	bool ok = true;
	int n;

	if (pkg->st_gid == g)
		return true;
	n = getgroups(0, NULL);
	if (n <= 0)
		return n == 0;
	v = calloc((size_t)n, sizeof(*v));
	if (!v)
		return false;
	n = getgroups(n, v);
	for (int i = 0; i < n; i++)
		ok = ok && v[i] == g;
	free(v);
	return ok && n >= 0;
}

/* Enter a mount namespace of our own in which dir is mounted over pkg. */
static int enter_pkg_namespace(const char *dir, const char *pkg)
{
	uid_t u = geteuid();
	gid_t g = getegid();
	struct stat st;
	char map[64];
	int r;

	if (stat(pkg, &st) < 0)
		return -errno;
	if (unshare(CLONE_NEWNS) < 0) {
		if (errno != EPERM)
			return -errno;
		if (!userns_shows_groups(&st))
			return NS_HIDES_GROUPS;
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
			return -errno;
		snprintf(map, sizeof(map), "%u %u 1", (unsigned)u, (unsigned)u);
		r = write_proc("/proc/self/uid_map", map);
		if (r == 0)
			r = write_proc("/proc/self/setgroups", "deny");
		snprintf(map, sizeof(map), "%u %u 1", (unsigned)g, (unsigned)g);
		if (r == 0)
			r = write_proc("/proc/self/gid_map", map);
		if (r < 0)
			return r;
	}
	/* Nothing mounted here may show outside (PKG itself stays as it is there). */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return -errno;
	if (mount(dir, pkg, NULL, MS_BIND, NULL) < 0)
		return -errno;
	return 0;
}

/* Take the mount off PKG again; true if a process the command left still uses it. */
static bool unmount_busy(const char *pkg)
{
	struct timespec ts = { 0, 10 * 1000 * 1000 };

	for (int i = 0; i < 100; i++) {
		if (umount2(pkg, UMOUNT_NOFOLLOW) == 0 || errno != EBUSY)
			return false;
		nanosleep(&ts, NULL); /* give a process on its way out a second */
	}
	return true;
}

/* The helper: in a namespace of its own, run argv at pkg; report to out. */
static void __attribute__((noreturn)) helper(const char *dir, const char *pkg,
					     char *const argv[], int out)
{
	struct run_report rep = { .setup = enter_pkg_namespace(dir, pkg) };
	pid_t pid;

	if (rep.setup == 0) {
		/* The helper itself must not keep the mount busy. */
		(void)!chdir("/");
		pid = fork();
		if (pid == 0) {
			/*
			 * git stops looking for the repository at a change of
			 * st_dev, and the mount has its own: the one PKG is in
			 * is found across it as in PKG (unless the user chose).
			 */
			(void)setenv("GIT_DISCOVERY_ACROSS_FILESYSTEM", "1", 0);
			exec_in(pkg, argv);
		}
		if (pid < 0) {
			rep.setup = -errno;
			(void)unmount_busy(pkg);
		} else {
			rep.status = wait_forwarding(pid);
			rep.busy = unmount_busy(pkg);
		}
	}
	(void)util_write_full(out, &rep, sizeof(rep));
	_exit(0);
}

/*
 * Run argv with the mount dir shown at pkg (see the top of this file), or
 * at dir where that cannot be done. Returns its wait status or -errno;
 * *busy when a process it left still uses the mount.
 */
static int run_at_pkg(const char *dir, const char *pkg, char *const argv[], bool *busy)
{
	struct run_report rep = { 0 };
	int p[2], status;
	ssize_t n;
	pid_t pid;

	*busy = false;
	if (!pkg)
		return spawn_wait(dir, argv);
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		status = -errno;
		close(p[0]);
		close(p[1]);
		return status;
	}
	if (pid == 0) {
		close(p[0]);
		helper(dir, pkg, argv, p[1]);
	}
	close(p[1]);
	status = wait_forwarding(pid);
	do {
		n = read(p[0], &rep, sizeof(rep));
	} while (n < 0 && errno == EINTR);
	close(p[0]);
	/*
	 * No report: the helper was killed. Taken as the command's end (the
	 * command may live on, and then holds the mount: the rollback says so).
	 */
	if (n != (ssize_t)sizeof(rep))
		return status;
	if (rep.setup == 0) {
		*busy = rep.busy;
		return rep.status;
	}
	log_warn("the command runs in '%s', not at '%s' (%s): configuration above the package (.clang-format, pyproject.toml, .git) is not found there",
		 dir, pkg,
		 rep.setup == NS_HIDES_GROUPS
			 ? "its group is not your own, and in the user namespace a non-root user needs your other groups would show as nogroup"
			 : strerror(-rep.setup));
	return spawn_wait(dir, argv);
}

int cjfs_run(struct cjfs *c, const char *pkg, char *const argv[], const struct cjfs_run_opts *opts,
	     struct cjfs_result *ret)
{
	struct cjfs_mount_opts mo = { .concurrent = opts->concurrent };
	struct cjfs_result res = { 0 };
	char *dir, *cmd, *at;
	int64_t txn = 0;
	int status, code, r;
	bool mounted = true, busy, died;

	dir = private_dir();
	if (!dir) {
		log_errno(-errno, "cannot create a private mount point");
		return RUN_CJFS_FAILED;
	}
	cmd = join_argv(argv);
	mo.command = cmd;
	r = cjfs_mount(c, pkg, dir, &mo, &txn);
	free(cmd);
	if (r < 0) {
		rmdir(dir);
		free(dir);
		return RUN_CJFS_FAILED;
	}
	/* Where the command sees the mount: PKG's own path (not "/", which cannot be covered). */
	at = realpath(pkg, NULL);
	if (at && strcmp(at, "/") == 0) {
		free(at);
		at = NULL;
	}
	status = run_at_pkg(dir, at, argv, &busy);
	if (status < 0) {
		log_errno(status, "cannot start '%s'", argv[0]);
		code = RUN_CJFS_FAILED;
	} else if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
	} else {
		code = 128 + WTERMSIG(status);
	}
	/*
	 * A daemon that died under the command failed the writes that came
	 * after (ENOTCONN), and a command need not notice: its exit status
	 * then says nothing about whether it did all it meant to.
	 */
	died = !busy && store_txn_daemon_alive(cjfs_store(c), txn) == 0;
	if (busy) {
		/* Neither can finish while the mount is in use: it stays, and so does the transaction. */
		log_error("a process the command started still uses '%s'; transaction %lld is left open at '%s': commit or roll it back once that process has exited",
			  at, (long long)txn, dir);
		code = code ? code : RUN_CJFS_FAILED;
	} else if (died && code == 0) {
		/* Not committed: what it holds may be half of what the command did. */
		mounted = cjfs_unmount(c, txn) < 0;
		log_error("the daemon of transaction %lld died (or its mount was unmounted) while the command ran, so writes after that failed; the transaction is left open, not committed: see 'cjfs diff %lld', then 'cjfs commit %lld' or 'cjfs rollback %lld'",
			  (long long)txn, (long long)txn, (long long)txn, (long long)txn);
		code = RUN_CJFS_FAILED;
	} else if (code == 0) {
		r = cjfs_commit(c, txn, 0, &res);
		if (r < 0) {
			code = RUN_CJFS_FAILED;
			mounted = r == -EBUSY;
			log_error("the command succeeded but transaction %lld was not committed; it is still open: see 'cjfs status %lld'",
				  (long long)txn, (long long)txn);
		} else if (!opts->quiet) {
			log_info("transaction %lld committed", (long long)txn);
			fprintf(stderr,
				"cjfs: transaction %lld committed: %lld modified, %lld added, %lld deleted\n",
				(long long)txn, (long long)res.modified, (long long)res.added,
				(long long)res.deleted);
		}
	} else if (opts->keep_on_failure) {
		fprintf(stderr,
			"cjfs: the command failed (status %d); transaction %lld is left open at '%s'\n",
			code, (long long)txn, dir);
	} else {
		r = cjfs_rollback(c, txn, &res);
		if (r < 0) {
			mounted = r == -EBUSY;
			log_error("transaction %lld could not be rolled back; PKG is untouched: run 'cjfs rollback %lld'",
				  (long long)txn, (long long)txn);
			code = code ? code : RUN_CJFS_FAILED;
		} else if (!opts->quiet) {
			char why[64];

			if (status >= 0 && WIFSIGNALED(status))
				snprintf(why, sizeof(why), "command killed by signal %d",
					 WTERMSIG(status));
			else
				snprintf(why, sizeof(why), "command exited with status %d", code);
			fprintf(stderr,
				"cjfs: transaction %lld rolled back (%s): %lld modified, %lld added, %lld deleted discarded\n",
				(long long)txn, why, (long long)res.modified, (long long)res.added,
				(long long)res.deleted);
		}
	}
	if (!mounted || !opts->keep_on_failure || code == 0)
		(void)rmdir(dir);
	if (ret) {
		*ret = res;
		ret->txn = txn;
	}
	free(at);
	free(dir);
	return code;
}
