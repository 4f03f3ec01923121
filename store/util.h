/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers at the bottom of the module map: EINTR-safe I/O, the
 * durability primitives (every write/fsync/rename/unlink of the commit and
 * publish paths goes through util_sys so tests can inject faults), a growable
 * buffer, path checks and small conversions.
 */
#ifndef CJFS_STORE_UTIL_H
#define CJFS_STORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * System calls that change durable state. Production code calls them through
 * this table; fault injection (util_fault_*) wraps each entry so that the N-th
 * call fails with a chosen errno or kills the process.
 */
struct util_sys {
	ssize_t (*write)(int fd, const void *buf, size_t n);
	ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
	int (*fsync)(int fd);
	int (*syncfs)(int fd);
	int (*renameat)(int olddirfd, const char *oldname, int newdirfd, const char *newname);
	int (*unlinkat)(int dirfd, const char *name, int flags);
	int (*mkdirat)(int dirfd, const char *name, mode_t mode);
	int (*symlinkat)(const char *target, int dirfd, const char *name);
	int (*openat)(int dirfd, const char *name, int flags, mode_t mode);
	int (*ftruncate)(int fd, off_t len);
};

extern struct util_sys util_sys;

/*
 * Fault injection. After util_fault_arm(n, err), the n-th call (1-based)
 * through util_sys fails with -err; with err == 0 the process kills itself
 * with SIGKILL at that call instead, and with err == UTIL_FAULT_STOP it stops
 * itself (SIGSTOP) there and goes on normally once continued, so a test can
 * act at that exact point. util_fault_calls() counts calls since arming.
 * $CJFS_FAULT="N:ERRNAME", "N:crash" or "N:stop" arms from the environment
 * (read by util_fault_from_env(), which the CLI calls at start-up);
 * "N+:ERRNAME" fails the N-th call and every one after it (a disk that
 * fills up and stays full).
 */
#define UTIL_FAULT_STOP (-1)
void util_fault_arm(long n, int err);
long util_fault_calls(void);
int util_fault_from_env(void);

/* I/O that retries on EINTR and short counts. Return 0 or -errno. */
int util_read_full(int fd, void *buf, size_t n, size_t *ret_got);
int util_write_full(int fd, const void *buf, size_t n);
int util_pwrite_full(int fd, const void *buf, size_t n, off_t off);

/* openat() with O_CLOEXEC added, retried on EINTR; returns fd or -errno. */
int util_openat(int dirfd, const char *name, int flags, mode_t mode);
/*
 * util_openat() of an existing file for cjfs's own reading (originals to
 * store, data to copy up, hashes): with O_NOATIME where the file's owner or
 * CAP_FOWNER allows it, so that reading it for itself does not change the
 * user's access times.
 */
int util_openat_noatime(int dirfd, const char *name, int flags);

/*
 * Open path (relative, several components) below dirfd without following any
 * symlink and without leaving dirfd's tree (openat2 RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS, or a component walk with O_NOFOLLOW on kernels
 * without openat2). O_CLOEXEC is added. Returns fd or -errno.
 */
int util_open_beneath(int dirfd, const char *path, int flags, mode_t mode);

/*
 * Open the directory containing path (below dirfd, as util_open_beneath) as
 * an O_PATH fd and point *ret_base at path's last component. For a path with
 * one component this is a dup of dirfd.
 */
int util_open_parent(int dirfd, const char *path, const char **ret_base);

/* fsync(fd); for a directory this makes its entries (renames, unlinks) durable. */
int util_fsync(int fd);
int util_fsync_dirat(int dirfd, const char *name);
int util_syncfs(int fd);
int util_renameat(int olddirfd, const char *oldname, int newdirfd, const char *newname);
int util_unlinkat(int dirfd, const char *name, int flags);
int util_mkdirat(int dirfd, const char *name, mode_t mode);
int util_symlinkat(const char *target, int dirfd, const char *name);
int util_ftruncate(int fd, off_t len);

/* close() that preserves errno and ignores fd < 0. */
void util_close(int fd);

/* mkdir -p with the given mode for each created component. */
int util_mkdir_p(const char *path, mode_t mode);

/* Remove a tree below dirfd/name (no symlink following); missing is success. */
int util_rm_rf_at(int dirfd, const char *name);

/* Copy all of in (from its current offset) to out; returns bytes copied or -errno. */
int64_t util_copy_fd(int in, int out);

/*
 * Copy the size bytes of in to the same offsets of out, data segment by data
 * segment (SEEK_DATA/SEEK_HOLE), so holes stay holes; out ends size long.
 * Stops early, without an error, if in shrinks meanwhile. 0 or -errno.
 */
int util_copy_sparse(int in, int out, off_t size);

/* Nanoseconds since the epoch (CLOCK_REALTIME) and monotonic. */
int64_t util_now_ns(void);
int64_t util_mono_ns(void);
int64_t util_timespec_ns(const struct timespec *ts);

/*
 * A relative path inside a tree: non-empty, no leading '/', no empty, "." or
 * ".." components, no trailing '/', shorter than PATH_MAX.
 */
bool util_path_is_safe(const char *rel);

/* Last component of a relative path, and the length of its parent prefix. */
const char *util_path_basename(const char *rel);
size_t util_path_dirlen(const char *rel);

/* Growable NUL-terminated buffer. Aborting on ENOMEM is not allowed: calls return -ENOMEM. */
struct strbuf {
	char *buf;
	size_t len;
	size_t alloc;
};

#define STRBUF_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

int strbuf_grow(struct strbuf *sb, size_t extra);
int strbuf_add(struct strbuf *sb, const void *data, size_t n);
int strbuf_adds(struct strbuf *sb, const char *s);
int strbuf_addf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void strbuf_reset(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
/* Take ownership of the buffer (never NULL on success); sb is reset. */
char *strbuf_detach(struct strbuf *sb);
/* Read all of fd into sb (appending). */
int strbuf_read_fd(struct strbuf *sb, int fd, size_t limit);

/* A set of strings (open addressing); the set owns copies of its strings. */
struct strset {
	char **slots;
	size_t cap; /* power of two, or 0 */
	size_t n;
};

#define STRSET_INIT                                                                                \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

/* 1 if added, 0 if already present, -ENOMEM. */
int strset_add(struct strset *set, const char *s);
bool strset_has(const struct strset *set, const char *s);
void strset_release(struct strset *set);
/*
 * Work that takes a while on the CPU (copying or hashing more than
 * UTIL_HEAVY_BYTES): util_heavy() tells the hook set with
 * util_set_heavy_hook(), if any, before it starts. The FUSE daemon's ring
 * threads wait at the lowest priority and take normal priority for such
 * work (fs/uring.c).
 */
#define UTIL_HEAVY_BYTES (256 * 1024)
void util_set_heavy_hook(void (*fn)(void));
void util_heavy(uint64_t bytes);

/* FNV-1a, for hash tables elsewhere. */
uint64_t util_hash_str(const char *s);
uint64_t util_hash_mix(uint64_t h, uint64_t v);

/* strdup/asprintf returning NULL on ENOMEM, for symmetry. */
char *util_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 64-bit FNV-1a of n bytes at p: a fast checksum or hash, not a cryptographic one. */
uint64_t util_fnv1a(const void *p, size_t n);

/* Parse a decimal int64; 0 or -EINVAL. */
int util_parse_i64(const char *s, int64_t *ret);

/*
 * Call fn(ctx, i) for every i in [0, n) on up to one thread per online CPU
 * (at most 8). Stops handing out work at the first error and returns it (the
 * lowest i that failed wins no race: any failing call's error is returned);
 * 0 if every call returned >= 0. fn must be thread-safe.
 */
int util_parallel_for(size_t n, int (*fn)(void *ctx, size_t i), void *ctx);

/* Human size: "1.5 MiB". buf must hold 32 bytes. */
const char *util_fmt_size(uint64_t bytes, char buf[32]);

/*
 * A duration: one or more <number><unit> with unit s, m (minutes), h, d or w
 * ("90s", "1h30m", "30d"); a bare number is seconds. 0 or -EINVAL.
 */
int util_parse_duration(const char *s, int64_t *ret_ns);

/*
 * A size in bytes: a number (decimals allowed) with an optional suffix K, M,
 * G or T (powers of 1024), optionally followed by "iB" or "B" ("500M",
 * "1.5GiB", "4096"). 0 or -EINVAL.
 */
int util_parse_size(const char *s, int64_t *ret);

/*
 * A point in time: "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]" or with a 'T'
 * (local time), "@SECONDS" since the epoch, or a duration (util_parse_duration)
 * meaning that long before now_ns. 0 or -EINVAL.
 */
int util_parse_time(const char *s, int64_t now_ns, int64_t *ret_ns);

/* Local time "YYYY-MM-DD HH:MM:SS"; buf must hold 32 bytes. */
const char *util_fmt_time(int64_t ns, char buf[32]);

/* UTC time "YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ" (RFC 3339); buf must hold 40 bytes. */
const char *util_fmt_time_utc(int64_t ns, char buf[40]);

/* Short duration: "850 us", "12 ms", "3.4 s", "2 min"; buf must hold 32 bytes. */
const char *util_fmt_duration(int64_t ns, char buf[32]);

#endif
