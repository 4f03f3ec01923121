/* SPDX-License-Identifier: MIT */
/*
 * Integration-test harness: a private directory per test with pkg/, mnt/
 * and store/, the real cjfs binary run as a child, mounts that are always
 * unmounted in teardown, and tree snapshots to compare directories.
 */
#ifndef CJFS_TESTS_HARNESS_H
#define CJFS_TESTS_HARNESS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct h_env {
	char root[PATH_MAX];  /* the test's private directory */
	char pkg[PATH_MAX];   /* root/pkg */
	char mnt[PATH_MAX];   /* root/mnt */
	char store[PATH_MAX]; /* root/store */
	pid_t daemon;	      /* foreground daemon started by h_mount_fg(), or 0 */
	char out[65536];      /* stdout of the last h_cjfs() */
	char err[65536];      /* stderr of the last h_cjfs() */
};

/* The cjfs binary under test ($CJFS_BIN, set by meson). */
const char *h_cjfs_bin(void);

/* 1 if /dev/fuse can be opened (else tests cr_skip). */
bool h_fuse_available(void);

/* Create the private directory with empty pkg/ and mnt/. Aborts the test on failure. */
void h_setup(struct h_env *e);

/*
 * Unmount whatever is mounted at mnt (even a dead mount), stop a daemon we
 * started, and remove the directory. Safe to call twice.
 */
void h_teardown(struct h_env *e);

/*
 * Run cjfs with --store e->store and the given arguments (NULL-terminated).
 * Returns its exit status (128+signal if killed); stdout/stderr in e->out/err.
 */
int h_cjfs(struct h_env *e, ...);
/* The same with an argv array. */
int h_cjfsv(struct h_env *e, char *const argv[]);

/*
 * Start `cjfs mount -f pkg mnt` in the background and wait until mnt is a
 * different file system (fails the test at once if the daemon exits). The
 * daemon's stderr goes to root/daemon.log.
 */
void h_mount_fg(struct h_env *e);
/* The same with one extra option before PKG (e.g. "--allow-other"), or NULL. */
void h_mount_fg_opt(struct h_env *e, const char *opt);

/*
 * Wait for the foreground daemon to exit (after something unmounted it) and
 * return its exit status (128+signal if killed); with what it logged in e->err.
 */
int h_wait_daemon(struct h_env *e);

/* Background mount through the CLI (`cjfs mount pkg mnt`); asserts success. */
void h_mount(struct h_env *e);
/* The same with one extra option before PKG (e.g. "--allow-other"), or NULL. */
void h_mount_opt(struct h_env *e, const char *opt);

/* cp -a src dst (dst must not exist); aborts the test on failure. */
void h_copy_tree(const char *src, const char *dst);

/* fusermount3 -u mnt and wait for a foreground daemon; returns its exit status. */
int h_unmount(struct h_env *e);

/* Run a shell command (sh -c) in dir; returns the exit status. */
int h_sh(const char *dir, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write/read a whole file (relative to dir). */
void h_write(const char *dir, const char *rel, const char *content);
char *h_read(const char *dir, const char *rel);

/*
 * A canonical description of a tree: one line per entry, sorted, with type,
 * mode, size, SHA-256 of content (files) or target (symlinks), and with
 * mtimes when with_mtime. Caller frees.
 */
char *h_snapshot(const char *dir, bool with_mtime);

/* Number of files/directories with a name containing s below dir (litter checks). */
int h_count_names(const char *dir, const char *s);

#endif
