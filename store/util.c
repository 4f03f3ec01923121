// SPDX-License-Identifier: MIT
/* EINTR-safe I/O, durability primitives with fault injection, strbuf, paths. */
#include "util.h"

#include <dirent.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int sys_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	return openat(dirfd, name, flags, mode);
}

struct util_sys util_sys = {
	.write = write,
	.pwrite = pwrite,
	.fsync = fsync,
	.syncfs = syncfs,
	.renameat = renameat,
	.unlinkat = unlinkat,
	.mkdirat = mkdirat,
	.symlinkat = symlinkat,
	.openat = sys_openat,
	.ftruncate = ftruncate,
};

/* Fault injection state; atomics because the daemon calls these from many threads. */
static long fault_at;
static long fault_count;
static int fault_err;
static bool fault_sticky; /* fail every call from the n-th on, not only the n-th */

void util_fault_arm(long n, int err)
{
	__atomic_store_n(&fault_count, 0, __ATOMIC_SEQ_CST);
	fault_err = err;
	__atomic_store_n(&fault_at, n, __ATOMIC_SEQ_CST);
}

long util_fault_calls(void)
{
	return __atomic_load_n(&fault_count, __ATOMIC_SEQ_CST);
}

int util_fault_from_env(void)
{
	static const struct {
		const char *name;
		int err;
	} names[] = { { "crash", 0 }, { "stop", UTIL_FAULT_STOP }, { "ENOSPC", ENOSPC },
		      { "EIO", EIO }, { "EDQUOT", EDQUOT },	   { "EROFS", EROFS } };
	const char *e = getenv("CJFS_FAULT");
	const char *colon;
	char *end;
	long n;

	if (!e || !*e)
		return 0;
	n = strtol(e, &end, 10);
	colon = strchr(e, ':');
	fault_sticky = colon && end == colon - 1 && *end == '+';
	if (fault_sticky)
		end++;
	if (n <= 0 || end != colon)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		if (strcmp(colon + 1, names[i].name) == 0) {
			util_fault_arm(n, names[i].err);
			return 0;
		}
	}
	return -EINVAL;
}

/* Returns 0 to go ahead, or -errno to fail this call; never returns for "crash". */
static int fault_hit(void)
{
	long at = __atomic_load_n(&fault_at, __ATOMIC_RELAXED);

	long count;

	if (!at)
		return 0;
	count = __atomic_add_fetch(&fault_count, 1, __ATOMIC_SEQ_CST);
	if (count != at && !(fault_sticky && count > at && fault_err > 0))
		return 0;
	if (fault_err == 0) {
		/* A simulated power cut at this exact call: nothing after it runs. */
		kill(getpid(), SIGKILL);
		pause();
	}
	if (fault_err == UTIL_FAULT_STOP) {
		/* Held here until a SIGCONT; then this call goes ahead as if nothing happened. */
		kill(getpid(), SIGSTOP);
		return 0;
	}
	return -fault_err;
}

int util_read_full(int fd, void *buf, size_t n, size_t *ret_got)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (ret_got)
		*ret_got = got;
	return 0;
}

int util_write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	int r = fault_hit();

	if (r < 0)
		return r;
	while (n > 0) {
		ssize_t w = util_sys.write(fd, p, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -ENOSPC;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int util_pwrite_full(int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;
	int r = fault_hit();

	if (r < 0)
		return r;
	while (n > 0) {
		ssize_t w = util_sys.pwrite(fd, p, n, off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (w == 0)
			return -ENOSPC;
		p += w;
		n -= (size_t)w;
		off += w;
	}
	return 0;
}

int util_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	int fd;

	if (flags & O_CREAT) {
		int r = fault_hit();

		if (r < 0)
			return r;
	}
	do {
		fd = util_sys.openat(dirfd, name, flags | O_CLOEXEC, mode);
	} while (fd < 0 && errno == EINTR);
	return fd < 0 ? -errno : fd;
}

int util_openat_noatime(int dirfd, const char *name, int flags)
{
	int fd = util_openat(dirfd, name, flags | O_NOATIME, 0);

	if (fd == -EPERM) /* neither the owner nor CAP_FOWNER */
		fd = util_openat(dirfd, name, flags, 0);
	return fd;
}

static int open_walk(int dirfd, const char *path, int flags, mode_t mode)
{
	char comp[NAME_MAX + 1];
	const char *p = path;
	int cur = dirfd;

	for (;;) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);
		int next;

		if (n == 0 || n > NAME_MAX) {
			if (cur != dirfd)
				util_close(cur);
			return n ? -ENAMETOOLONG : -EINVAL;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		if ((n == 2 && comp[0] == '.' && comp[1] == '.') || (n == 1 && comp[0] == '.')) {
			if (cur != dirfd)
				util_close(cur);
			return -EXDEV;
		}
		if (slash)
			next = util_openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0);
		else
			next = util_openat(cur, comp, flags | O_NOFOLLOW, mode);
		if (cur != dirfd)
			util_close(cur);
		if (next < 0)
			return next == -ELOOP && slash ? -ENOTDIR : next;
		if (!slash)
			return next;
		cur = next;
		p = slash + 1;
	}
}

int util_open_beneath(int dirfd, const char *path, int flags, mode_t mode)
{
	static int no_openat2;
	struct open_how how = {
		.flags = (uint64_t)(flags | O_CLOEXEC),
		.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd;

	if (flags & O_CREAT) {
		int r = fault_hit();

		if (r < 0)
			return r;
	}
	if (!__atomic_load_n(&no_openat2, __ATOMIC_RELAXED)) {
		do {
			fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		} while (fd < 0 && errno == EINTR);
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS)
			return -errno;
		__atomic_store_n(&no_openat2, 1, __ATOMIC_RELAXED);
	}
	return open_walk(dirfd, path, flags, mode);
}

int util_open_parent(int dirfd, const char *path, const char **ret_base)
{
	size_t dl = util_path_dirlen(path);
	char *dir;
	int fd;

	*ret_base = util_path_basename(path);
	if (dl == 0)
		return util_openat(dirfd, ".", O_PATH | O_DIRECTORY, 0);
	dir = strndup(path, dl);
	if (!dir)
		return -ENOMEM;
	fd = util_open_beneath(dirfd, dir, O_PATH | O_DIRECTORY, 0);
	free(dir);
	/* A symlink where a directory was: the path does not exist as a path in this tree. */
	return fd == -ELOOP ? -ENOTDIR : fd;
}

int util_fsync(int fd)
{
	int r = fault_hit();

	if (r < 0)
		return r;
	/* fsync is not restartable after EINTR on every fs; Linux does not return it. */
	return util_sys.fsync(fd) < 0 ? -errno : 0;
}

int util_fsync_dirat(int dirfd, const char *name)
{
	int fd = util_openat(dirfd, name, O_RDONLY | O_DIRECTORY, 0);
	int r;

	if (fd < 0)
		return fd;
	r = util_fsync(fd);
	util_close(fd);
	return r;
}

int util_syncfs(int fd)
{
	int r = fault_hit();

	if (r < 0)
		return r;
	return util_sys.syncfs(fd) < 0 ? -errno : 0;
}

int util_renameat(int olddirfd, const char *oldname, int newdirfd, const char *newname)
{
	int r = fault_hit();

	if (r < 0)
		return r;
	return util_sys.renameat(olddirfd, oldname, newdirfd, newname) < 0 ? -errno : 0;
}

int util_unlinkat(int dirfd, const char *name, int flags)
{
	int r = fault_hit();

	if (r < 0)
		return r;
	return util_sys.unlinkat(dirfd, name, flags) < 0 ? -errno : 0;
}

int util_mkdirat(int dirfd, const char *name, mode_t mode)
{
	int r = fault_hit();

	if (r < 0)
		return r;
	return util_sys.mkdirat(dirfd, name, mode) < 0 ? -errno : 0;
}

int util_symlinkat(const char *target, int dirfd, const char *name)
{
	int r = fault_hit();

	if (r < 0)
		return r;
	return util_sys.symlinkat(target, dirfd, name) < 0 ? -errno : 0;
}

int util_ftruncate(int fd, off_t len)
{
	int r = fault_hit();

	if (r < 0)
		return r;
	return util_sys.ftruncate(fd, len) < 0 ? -errno : 0;
}

void util_close(int fd)
{
	int saved = errno;

	if (fd >= 0)
		close(fd);
	errno = saved;
}

int util_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1;; p++) {
		if (*p == '/' || *p == '\0') {
			char c = *p;

			*p = '\0';
			if (mkdir(buf, mode) < 0 && errno != EEXIST)
				return -errno;
			*p = c;
			if (c == '\0')
				break;
		}
	}
	return 0;
}

static int rm_rf_fd(int dfd)
{
	DIR *d = fdopendir(dfd);
	struct dirent *de;
	int r = 0;

	if (!d) {
		util_close(dfd);
		return -errno;
	}
	while ((de = readdir(d))) {
		int sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 || errno == ENOENT)
			continue;
		if (errno != EISDIR && errno != EPERM) {
			r = -errno;
			break;
		}
		sub = util_openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
		if (sub < 0) {
			r = sub;
			break;
		}
		r = rm_rf_fd(sub);
		if (r < 0)
			break;
		if (unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) < 0 && errno != ENOENT) {
			r = -errno;
			break;
		}
	}
	closedir(d);
	return r;
}

int util_rm_rf_at(int dirfd, const char *name)
{
	int fd, r;

	if (unlinkat(dirfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	fd = util_openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd;
	r = rm_rf_fd(fd);
	if (r < 0)
		return r;
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int64_t util_copy_fd(int in, int out)
{
	char buf[128 * 1024];
	int64_t total = 0;

	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));
		int r;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return total;
		r = util_write_full(out, buf, (size_t)n);
		if (r < 0)
			return r;
		total += n;
	}
}

static void (*heavy_hook)(void);

void util_set_heavy_hook(void (*fn)(void))
{
	heavy_hook = fn;
}

void util_heavy(uint64_t bytes)
{
	if (bytes >= UTIL_HEAVY_BYTES && heavy_hook)
		heavy_hook();
}

int util_copy_sparse(int in, int out, off_t size)
{
	off_t pos = 0;

	util_heavy((uint64_t)size);
	while (pos < size) {
		off_t data = lseek(in, pos, SEEK_DATA);
		off_t hole;

		if (data < 0) {
			if (errno == ENXIO)
				break; /* only a hole is left */
			data = pos;
		}
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			hole = size;
		pos = data;
		while (pos < hole) {
			loff_t ip = pos, op = pos;
			ssize_t n = copy_file_range(in, &ip, out, &op, (size_t)(hole - pos), 0);

			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
				      errno == EOPNOTSUPP)) {
				char buf[128 * 1024];
				size_t want = (size_t)(hole - pos) < sizeof(buf)
						      ? (size_t)(hole - pos)
						      : sizeof(buf);

				n = pread(in, buf, want, pos);
				if (n > 0) {
					int r = util_pwrite_full(out, buf, (size_t)n, pos);

					if (r < 0)
						return r;
				}
			}
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (n == 0)
				break; /* the file shrank under us */
			pos += n;
		}
	}
	/* Restore the size (a trailing hole) in one step. */
	if (ftruncate(out, size) < 0)
		return -errno;
	return 0;
}

int64_t util_timespec_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

int64_t util_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return util_timespec_ns(&ts);
}

int64_t util_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return util_timespec_ns(&ts);
}

bool util_path_is_safe(const char *rel)
{
	const char *p = rel;

	if (!rel || !*rel || *rel == '/' || strlen(rel) >= PATH_MAX)
		return false;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t n = slash ? (size_t)(slash - p) : strlen(p);

		if (n == 0 || n > NAME_MAX)
			return false;
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!slash)
			break;
		p = slash + 1;
		if (!*p)
			return false; /* trailing slash */
	}
	return true;
}

const char *util_path_basename(const char *rel)
{
	const char *s = strrchr(rel, '/');

	return s ? s + 1 : rel;
}

size_t util_path_dirlen(const char *rel)
{
	const char *s = strrchr(rel, '/');

	return s ? (size_t)(s - rel) : 0;
}

int strbuf_grow(struct strbuf *sb, size_t extra)
{
	size_t want = sb->len + extra + 1;
	char *nb;
	size_t na;

	if (want < sb->len)
		return -ENOMEM;
	if (want <= sb->alloc)
		return 0;
	na = sb->alloc ? sb->alloc : 64;
	while (na < want)
		na *= 2;
	nb = realloc(sb->buf, na);
	if (!nb)
		return -ENOMEM;
	if (!sb->buf)
		nb[0] = '\0';
	sb->buf = nb;
	sb->alloc = na;
	return 0;
}

int strbuf_add(struct strbuf *sb, const void *data, size_t n)
{
	int r = strbuf_grow(sb, n);

	if (r < 0)
		return r;
	if (n) /* data may be NULL then (an empty SQLite blob) */
		memcpy(sb->buf + sb->len, data, n);
	sb->len += n;
	sb->buf[sb->len] = '\0';
	return 0;
}

int strbuf_adds(struct strbuf *sb, const char *s)
{
	return strbuf_add(sb, s, strlen(s));
}

int strbuf_addf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	r = strbuf_grow(sb, (size_t)n);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
	return 0;
}

void strbuf_reset(struct strbuf *sb)
{
	sb->len = 0;
	if (sb->buf)
		sb->buf[0] = '\0';
}

void strbuf_release(struct strbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = sb->alloc = 0;
}

char *strbuf_detach(struct strbuf *sb)
{
	char *b;

	if (!sb->buf && strbuf_grow(sb, 0) < 0)
		return NULL;
	b = sb->buf;
	sb->buf = NULL;
	sb->len = sb->alloc = 0;
	return b;
}

int strbuf_read_fd(struct strbuf *sb, int fd, size_t limit)
{
	for (;;) {
		ssize_t n;
		int r;

		/* Beyond limit, not at it: a file of exactly limit bytes is read whole. */
		if (limit && sb->len > limit)
			return -EFBIG;
		r = strbuf_grow(sb, 64 * 1024);
		if (r < 0)
			return r;
		n = read(fd, sb->buf + sb->len, sb->alloc - sb->len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return 0;
		sb->len += (size_t)n;
		sb->buf[sb->len] = '\0';
	}
}

char *util_xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

uint64_t util_fnv1a(const void *p, size_t n)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

int util_parse_i64(const char *s, int64_t *ret)
{
	char *end;
	long long v;

	if (!s || !*s)
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

const char *util_fmt_size(uint64_t bytes, char buf[32])
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	size_t u = 0;

	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, 32, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, 32, "%.1f %s", v, units[u]);
	return buf;
}

int util_parse_duration(const char *s, int64_t *ret_ns)
{
	static const struct {
		char unit;
		int64_t ns;
	} units[] = { { 's', 1000000000LL },
		      { 'm', 60LL * 1000000000LL },
		      { 'h', 3600LL * 1000000000LL },
		      { 'd', 86400LL * 1000000000LL },
		      { 'w', 7LL * 86400LL * 1000000000LL } };
	bool bare = s && *s && strspn(s, "0123456789") == strlen(s);
	const char *p = s;
	int64_t total = 0;

	if (!s || !*s)
		return -EINVAL;
	while (*p) {
		int64_t unit_ns = bare ? 1000000000LL : 0;
		char *end;
		long long v;

		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		v = strtoll(p, &end, 10);
		if (errno)
			return -EINVAL;
		p = end;
		for (size_t i = 0; !bare && i < ARRAY_SIZE(units); i++) {
			if (*p == units[i].unit)
				unit_ns = units[i].ns;
		}
		if (!unit_ns)
			return -EINVAL;
		if (!bare)
			p++;
		if (v > INT64_MAX / unit_ns || total > INT64_MAX - v * unit_ns)
			return -EINVAL;
		total += v * unit_ns;
	}
	*ret_ns = total;
	return 0;
}

int util_parse_size(const char *s, int64_t *ret)
{
	static const char suffixes[] = "KMGT";
	double v, mul = 1;
	char *end;

	if (!s || !*s || !((*s >= '0' && *s <= '9') || *s == '.'))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || v < 0)
		return -EINVAL;
	if (*end) {
		const char *u = strchr(suffixes, *end >= 'a' && *end <= 'z' ? *end - 32 : *end);

		if (u && *u) {
			for (const char *q = suffixes; q <= u; q++)
				mul *= 1024;
			end++;
			if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0)
				end += strlen(end);
		} else if (strcmp(end, "B") == 0) {
			end++;
		}
	}
	if (*end || v * mul >= 9.2e18)
		return -EINVAL;
	*ret = (int64_t)(v * mul);
	return 0;
}

int util_parse_time(const char *s, int64_t now_ns, int64_t *ret_ns)
{
	struct tm tm;
	const char *end;
	int64_t d;

	if (!s || !*s)
		return -EINVAL;
	if (*s == '@') {
		if (util_parse_i64(s + 1, &d) < 0 || d < 0 || d > INT64_MAX / 1000000000LL)
			return -EINVAL;
		*ret_ns = d * 1000000000LL;
		return 0;
	}
	if (util_parse_duration(s, &d) == 0 && strchr(s, '-') == NULL) {
		*ret_ns = now_ns - d;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%d", &tm);
	if (!end)
		return -EINVAL;
	if (*end == ' ' || *end == 'T') {
		const char *e2 = strptime(end + 1, "%H:%M:%S", &tm);

		if (!e2)
			e2 = strptime(end + 1, "%H:%M", &tm);
		if (!e2)
			return -EINVAL;
		end = e2;
	}
	if (*end)
		return -EINVAL;
	tm.tm_isdst = -1;
	d = (int64_t)mktime(&tm);
	if (d == -1)
		return -EINVAL;
	/* Nanoseconds in an int64 end in 2262: later is "never", earlier than 1970 "always". */
	*ret_ns = d > INT64_MAX / 1000000000LL ? INT64_MAX : d < 0 ? 0 : d * 1000000000LL;
	return 0;
}

const char *util_fmt_time(int64_t ns, char buf[32])
{
	time_t t = (time_t)(ns / 1000000000LL);
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(buf, 32, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, 32, "@%lld", (long long)t);
	return buf;
}

const char *util_fmt_time_utc(int64_t ns, char buf[40])
{
	time_t t = (time_t)(ns / 1000000000LL);
	char day[24];
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm))
		snprintf(day, sizeof(day), "@%lld", (long long)t % 100000000000LL);
	snprintf(buf, 40, "%.20s.%09dZ", day, (int)(ns % 1000000000LL));
	return buf;
}

const char *util_fmt_duration(int64_t ns, char buf[32])
{
	if (ns < 1000000)
		snprintf(buf, 32, "%lld us", (long long)(ns / 1000));
	else if (ns < 10000000000LL)
		snprintf(buf, 32, ns < 1000000000LL ? "%.0f ms" : "%.2f s",
			 ns < 1000000000LL ? (double)ns / 1e6 : (double)ns / 1e9);
	else if (ns < 600000000000LL)
		snprintf(buf, 32, "%.1f s", (double)ns / 1e9);
	else
		snprintf(buf, 32, "%.1f min", (double)ns / 6e10);
	return buf;
}

uint64_t util_hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s) {
		h ^= (unsigned char)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

uint64_t util_hash_mix(uint64_t h, uint64_t v)
{
	/* splitmix64 finaliser over the combination */
	uint64_t z = h ^ (v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static size_t strset_find(char **slots, size_t cap, const char *s)
{
	size_t i = (size_t)util_hash_str(s) & (cap - 1);

	while (slots[i] && strcmp(slots[i], s) != 0)
		i = (i + 1) & (cap - 1);
	return i;
}

int strset_add(struct strset *set, const char *s)
{
	size_t i;

	if ((set->n + 1) * 4 >= set->cap * 3) {
		size_t ncap = set->cap ? set->cap * 2 : 16;
		char **ns = calloc(ncap, sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		for (size_t j = 0; j < set->cap; j++) {
			if (set->slots[j])
				ns[strset_find(ns, ncap, set->slots[j])] = set->slots[j];
		}
		free(set->slots);
		set->slots = ns;
		set->cap = ncap;
	}
	i = strset_find(set->slots, set->cap, s);
	if (set->slots[i])
		return 0;
	set->slots[i] = strdup(s);
	if (!set->slots[i])
		return -ENOMEM;
	set->n++;
	return 1;
}

bool strset_has(const struct strset *set, const char *s)
{
	if (!set->cap)
		return false;
	return set->slots[strset_find(set->slots, set->cap, s)] != NULL;
}

void strset_release(struct strset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		free(set->slots[i]);
	free(set->slots);
	set->slots = NULL;
	set->cap = set->n = 0;
}

struct pfor {
	size_t n;
	size_t next; /* atomic */
	int err;     /* atomic: first error */
	int (*fn)(void *ctx, size_t i);
	void *ctx;
};

static void *pfor_worker(void *arg)
{
	struct pfor *p = arg;

	for (;;) {
		size_t i = __atomic_fetch_add(&p->next, 1, __ATOMIC_RELAXED);
		int r, zero = 0;

		if (i >= p->n || __atomic_load_n(&p->err, __ATOMIC_RELAXED))
			break;
		r = p->fn(p->ctx, i);
		if (r < 0)
			__atomic_compare_exchange_n(&p->err, &zero, r, false, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
	}
	return NULL;
}

int util_parallel_for(size_t n, int (*fn)(void *ctx, size_t i), void *ctx)
{
	struct pfor p = { .n = n, .fn = fn, .ctx = ctx };
	pthread_t th[8];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nth = cpus < 1 ? 1 : cpus > 8 ? 8 : (size_t)cpus, started = 0;

	if (nth > n)
		nth = n;
	/* The calling thread is one of the workers. */
	for (size_t i = 1; i < nth; i++) {
		if (pthread_create(&th[started], NULL, pfor_worker, &p) != 0)
			break;
		started++;
	}
	pfor_worker(&p);
	for (size_t i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return p.err;
}
