// SPDX-License-Identifier: MIT
/*
 * cjfs run: mount PKG on a private temporary directory, run a command there,
 * judge its outcome, commit or roll back, and report.
 */
#include "cjfs.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* Run argv with its working directory at dir; returns its wait status or -errno. */
static int spawn_wait(const char *dir, char *const argv[])
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, fwd = { .sa_handler = forward_signal };
	struct sigaction old_int, old_quit, old_term, old_hup;
	int status = 0;
	pid_t pid;

	sigemptyset(&ign.sa_mask);
	sigemptyset(&fwd.sa_mask);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (chdir(dir) < 0) {
			log_errno(-errno, "cannot enter the mount '%s'", dir);
			_exit(RUN_CJFS_FAILED);
		}
		execvp(argv[0], argv);
		log_errno(-errno, "cannot run '%s'", argv[0]);
		_exit(errno == ENOENT ? RUN_NOT_FOUND : RUN_CANNOT_EXEC);
	}
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

int cjfs_run(struct cjfs *c, const char *pkg, char *const argv[], const struct cjfs_run_opts *opts,
	     struct cjfs_result *ret)
{
	struct cjfs_mount_opts mo = { .concurrent = opts->concurrent };
	struct cjfs_result res = { 0 };
	char *dir, *cmd;
	int64_t txn = 0;
	int status, code, r;
	bool mounted = true;

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
	status = spawn_wait(dir, argv);
	if (status < 0) {
		log_errno(status, "cannot start '%s'", argv[0]);
		code = RUN_CJFS_FAILED;
	} else if (WIFEXITED(status)) {
		code = WEXITSTATUS(status);
	} else {
		code = 128 + WTERMSIG(status);
	}
	if (code == 0) {
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
	free(dir);
	return code;
}
