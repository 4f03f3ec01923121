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

#define H_MAX_BG 8

struct h_env {
	char root[PATH_MAX];  /* the test's private directory */
	char pkg[PATH_MAX];   /* root/pkg */
	char mnt[PATH_MAX];   /* root/mnt */
	char store[PATH_MAX]; /* root/store */
	pid_t daemon;	      /* foreground daemon started by h_mount_fg(), or 0 */
	char out[65536];      /* stdout of the last h_cjfs() */
	char err[65536];      /* stderr of the last h_cjfs() */
	/* background cjfs processes of h_cjfs_start(), killed in teardown if still running */
	pid_t bg[H_MAX_BG];
};

/* A cjfs process started in the background; its output goes to files in the test's root. */
struct h_proc {
	pid_t pid;
	char out_path[PATH_MAX];
	char err_path[PATH_MAX];
	char out[65536]; /* filled by h_cjfs_wait() */
	char err[65536];
	int status; /* exit status once reaped (done) */
	bool done;
};

/* The cjfs binary under test ($CJFS_BIN, set by meson). */
const char *h_cjfs_bin(void);

/* 1 if /dev/fuse can be opened (else tests cr_skip). */
bool h_fuse_available(void);

/* Create the private directory with empty pkg/ and mnt/. Aborts the test on failure. */
void h_setup(struct h_env *e);

/*
 * Kill background cjfs processes we started, unmount everything mounted
 * below the test's directory (FUSE mounts, even dead ones, and tmpfs; the
 * deepest first), stop a daemon we started, and remove the directory. Safe
 * to call twice.
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
 * The same with extra environment entries ("NAME=value", NULL-terminated;
 * env may be NULL), e.g. CJFS_FAULT for fault injection.
 */
int h_cjfsv_env(struct h_env *e, char *const env[], char *const argv[]);

/*
 * Start cjfs (with env entries as above) without waiting for it; the process
 * is killed in teardown if the test does not wait for it. Returns its pid.
 */
pid_t h_cjfs_start(struct h_env *e, struct h_proc *p, char *const env[], char *const argv[]);

/* Wait for a background cjfs and read its output; its exit status (128+signal if killed). */
int h_cjfs_wait(struct h_env *e, struct h_proc *p);

/* Wait until a background cjfs has stopped itself (CJFS_FAULT=N:stop); false if it exited. */
bool h_cjfs_wait_stopped(struct h_proc *p);

/*
 * Mount a tmpfs of the given size ("4m") at dir (created if missing; inside
 * e->root) for the test; teardown unmounts it. false if that is not possible
 * (not root, no tmpfs), so the caller can skip.
 */
bool h_tmpfs(struct h_env *e, const char *dir, const char *size);

/*
 * h_setup() with e->root itself on a private tmpfs when possible (fast file
 * operations for tests that copy trees many times); else on $TMPDIR or /tmp.
 */
void h_setup_tmpfs(struct h_env *e, const char *size);

/*
 * Tree copies as cp -a makes them (contents, hard links, symbolic links,
 * special files, extended attributes, owner, mode and times), made in the
 * test's own process; each aborts the test on failure.
 * h_restore_tree: replace the content of dir with a copy of src's (dir
 * itself, its inode, stays; it takes src's mode and times).
 * h_replace_tree: rm -rf dst, then cp -a src dst.
 * h_remove_tree: rm -rf path.
 */
void h_restore_tree(const char *src, const char *dir);
void h_replace_tree(const char *src, const char *dst);
void h_remove_tree(const char *path);

/*
 * Keep a copy of PKG and the store under root as NAME (h_save_state), put
 * both back as they were then (h_load_state, any number of times; PKG keeps
 * its inode) and remove the copy (h_drop_state). Nothing may be mounted.
 */
void h_save_state(struct h_env *e, const char *name);
void h_load_state(struct h_env *e, const char *name);
void h_drop_state(struct h_env *e, const char *name);

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

/* cp -a src dst (dst must not exist), as above. */
void h_copy_tree(const char *src, const char *dst);

/*
 * fusermount3 -u mnt and wait for the daemon to finish: a foreground one's
 * exit status, else 0 once the background one no longer serves (-1 on failure).
 */
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

/* Wait up to 10 s for dir/name to exist (a signal from a command under test); false if it never does. */
bool h_appears(const char *dir, const char *name);

/* Number of files/directories with a name containing s below dir (litter checks). */
int h_count_names(const char *dir, const char *s);

/*
 * The state `cjfs status` lists for transaction txn ("open", "orphaned",
 * "committing", ...) in a malloc'd string, or NULL if it is not listed
 * (finished transactions are not).
 */
char *h_txn_state(struct h_env *e, long txn);

/* Assert that stderr of the last h_cjfs() is exactly one line containing what. */
void h_assert_one_line(const struct h_env *e, const char *what);

/*
 * After a commit was interrupted (crash, kill, failure): run `cjfs recover`
 * twice (the second must find nothing left to do), then assert that PKG is
 * exactly old or exactly new (snapshots with mtimes), holds no .cjfs-
 * temporaries, and that `cjfs verify` passes. Returns 0 for old, 1 for new;
 * what names the case in failure messages.
 */
int h_recover_and_check(struct h_env *e, const char *old, const char *new, const char *what);

/*
 * The durable-call number at which a commit of transaction txn starts phase
 * ("seal", "stage", "sync", "promote", "done"; see CJFS_DEBUG=2), measured
 * by committing a copy: PKG (in place) and the store are put back after.
 */
long h_commit_phase(struct h_env *e, long txn, const char *phase);

/* The first column of the first row of a read-only query on the store's index. */
long h_sql_long(struct h_env *e, const char *sql);
/* Run SQL that changes the index (to build damaged stores). */
void h_sql_exec(struct h_env *e, const char *sql);

/*
 * An integer from the environment (test knobs such as iteration counts), or
 * def; quick_def instead when $CJFS_TEST_QUICK is set (sanitizer builds).
 */
long h_env_long(const char *name, long def);
long h_knob(const char *name, long def, long quick_def);

#endif
