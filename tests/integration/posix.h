/* SPDX-License-Identifier: MIT */
/*
 * The POSIX behaviour suite's frame: every scenario runs twice, first on a
 * plain directory (the control) and then on a cjfs mount of a copy of the
 * same tree, with the same assertions; then both trees must be identical,
 * and after `cjfs commit` PKG must equal the control.
 */
#ifndef CJFS_TESTS_POSIX_H
#define CJFS_TESTS_POSIX_H

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

/* One of the two trees a scenario runs on. */
struct pt {
	const char *name; /* "plain" or "cjfs", in every failure message */
	const char *root; /* absolute path of the tree */
	int fd;		  /* O_DIRECTORY fd of the tree */
	bool cjfs;
};

enum p_flags {
	P_NO_TREE = 1 << 0,	  /* do not compare the trees afterwards */
	P_NO_COMMIT = 1 << 1,	  /* do not commit and compare PKG with the control */
	P_ALLOW_OTHER = 1 << 2,	  /* mount with --allow-other */
	P_O_ALLOW_OTHER = 1 << 3, /* mount with -o allow_other */
};

extern struct h_env p_env;
extern char p_ctrl[]; /* the control tree */

void p_setup(void);
void p_teardown(void);
/* Skip the test from its body: Criterion runs no .fini after a skip there. */
#define p_skip(...)                                                                                \
	do {                                                                                       \
		p_teardown();                                                                      \
		cr_skip_test(__VA_ARGS__);                                                         \
	} while (0)

/* Run sc on the control, then on the mount; compare and commit unless flags say not to. */
void p_both(void (*sc)(struct pt *t), unsigned flags);
/* cjfs commit the mount (its output stays in p_env.out); the daemon must exit 0. */
void p_commit(void);

void p_fail(const struct pt *t, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), noreturn));

/* expr must not be negative; evaluates to its value. */
#define OK(t, expr)                                                                                \
	({                                                                                         \
		errno = 0;                                                                         \
		long long _r = (long long)(expr);                                                  \
		if (_r < 0)                                                                        \
			p_fail(t, __LINE__, "%s failed: %s", #expr, strerrorname_np(errno));       \
		_r;                                                                                \
	})

/* expr must fail with -1 and errno e. */
#define ERR(t, expr, e)                                                                            \
	do {                                                                                       \
		errno = 0;                                                                         \
		long long _r = (long long)(expr);                                                  \
		int _e = errno;                                                                    \
		if (_r != -1 || _e != (e))                                                         \
			p_fail(t, __LINE__, "%s: want -1 %s, got %lld %s", #expr,                  \
			       strerrorname_np(e), _r, _e ? strerrorname_np(_e) : "(no error)");   \
	} while (0)

#define EXPECT(t, cond, ...)                                                                       \
	do {                                                                                       \
		if (!(cond))                                                                       \
			p_fail(t, __LINE__, __VA_ARGS__);                                          \
	} while (0)

/* Whole-file helpers relative to the tree; they fail the test on error. */
void p_put(const struct pt *t, const char *path, const char *content);
/* The content (malloc'd), or NULL with errno set. */
char *p_get(const struct pt *t, const char *path);
/* The content must be exactly want. */
void p_expect_content(const struct pt *t, int line, const char *path, const char *want);
#define EXPECT_CONTENT(t, path, want) p_expect_content(t, __LINE__, path, want)
struct stat p_lstat(const struct pt *t, int line, const char *path);
#define LSTAT(t, path) p_lstat(t, __LINE__, path)

/* The sorted names of a directory (no "." or ".."), newline-joined; malloc'd. */
char *p_list(const struct pt *t, const char *dir);

#endif
