/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the unit tests: a private temporary directory per test, small
 * file-tree builders working below a directory fd, and a canonical snapshot
 * of a tree so two trees can be compared with one string comparison. Every
 * helper fails the running test (cr_assert) when the system refuses.
 */
#ifndef CJFS_TESTS_UNIT_H
#define CJFS_TESTS_UNIT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* A fresh directory $TMPDIR/cjfs-unit.XXXXXX (mode 0700) in root. */
void u_tmpdir(char root[PATH_MAX]);

/* Remove a tree (no symlink following); missing is fine. */
void u_rmtree(const char *path);

/* Create a directory (0755 unless given) below root, and open it O_RDONLY|O_DIRECTORY. */
int u_mkdir_open(const char *root, const char *name, char ret_path[PATH_MAX]);

/* mkdir below dirfd with exactly this mode (chmod'ed after, so the umask does not matter). */
void u_mkdir(int dirfd, const char *rel, mode_t mode);

/* Create or replace a file below dirfd with these bytes and exactly this mode. */
void u_write_n(int dirfd, const char *rel, const void *data, size_t n, mode_t mode);
void u_write(int dirfd, const char *rel, const char *content, mode_t mode);

/* Create (replacing anything there) a symlink rel -> target below dirfd. */
void u_symlink(int dirfd, const char *target, const char *rel);

/* The whole content of rel below dirfd (malloc'd, NUL-terminated), NULL if absent. */
char *u_read(int dirfd, const char *rel, size_t *ret_len);

/* st_mode of rel (lstat), or 0 if absent; and its type as a bool. */
mode_t u_mode(int dirfd, const char *rel);
bool u_exists(int dirfd, const char *rel);
bool u_is_dir(int dirfd, const char *rel);
bool u_is_reg(int dirfd, const char *rel);
bool u_is_link(int dirfd, const char *rel);

/*
 * A canonical description of the tree below dirfd: one sorted line per entry
 * with path, type, permission bits, and for files their size and SHA-256
 * (plus mtime in ns with file_mtimes), for symlinks their target. Caller frees.
 */
char *u_snapshot(int dirfd, bool file_mtimes);

/* Number of entries below dirfd whose name contains s (litter checks). */
size_t u_count_names(int dirfd, const char *s);

/* Number of regular files below dirfd. */
size_t u_count_files(int dirfd);

#endif
