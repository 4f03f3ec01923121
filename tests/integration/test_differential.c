// SPDX-License-Identifier: MIT
/*
 * Differential testing: seeded random sequences of file system operations
 * applied to a cjfs mount of PKG and to a plain copy of the same tree. After
 * every step the return value, errno, bytes read and the state of the paths
 * involved must match; at the end the trees must be identical, and after
 * `cjfs commit` PKG must equal the plain copy.
 *
 * CI runs DIFF_SEEDS seeds (about 15 s). A soak: CJFS_SOAK_SEEDS=N (how many seeds),
 * CJFS_SEED=S (first seed, to replay a failure), CJFS_DIFF_OPS=N (steps),
 * CJFS_DIFF_TRACE=1 (print every step); CJFS_STRESS_ROUNDS=N for the
 * concurrency test.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "harness.h"
#include "util.h"

#define DIFF_SEEDS 30
#define DIFF_OPS 250
#define NSLOTS 4
#define MAXDATA 9000

static struct h_env env;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
}

static void teardown(void)
{
	/* A failure while acting as another user: unmount and clean up as root. */
	if (geteuid() != getuid()) {
		(void)!seteuid(getuid());
		(void)!setegid(getgid());
	}
	h_teardown(&env);
}

TestSuite(differential, .init = setup, .fini = teardown);

/* xorshift64*: the same sequence everywhere for a seed. */
static uint64_t rnd_state;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state >> 12;
	rnd_state ^= rnd_state << 25;
	rnd_state ^= rnd_state >> 27;
	return rnd_state * 2685821657736338717ULL;
}

static unsigned pick(unsigned n)
{
	return (unsigned)(rnd() % n);
}

/* A 255-byte name: its whiteout is named by a hash. */
#define LONG_NAME                                                                                  \
	"L123456789012345678901234567890123456789012345678901234567890123456789012345678901"       \
	"23456789012345678901234567890123456789012345678901234567890123456789012345678901"         \
	"23456789012345678901234567890123456789012345678901234567890123456789012345678901"         \
	"2345678901234"

/*
 * Paths: 1 to 3 components from a small alphabet, so that names collide
 * often; it has a name like a whiteout marker and a name of 255 bytes.
 */
static void rnd_path(char *buf, size_t size)
{
	static const char *const comp[] = {
		"a", "a", "a", "a", "b", "b", "b", "c", "c", ".cjfs~wh.a", ".cjfs~opaque", LONG_NAME
	};
	unsigned depth = 1 + pick(3);
	size_t len = 0;

	buf[0] = '\0';
	for (unsigned i = 0; i < depth; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "/" : "",
					comp[pick(12)]);
}

enum op_kind {
	OP_CREATE,
	OP_WRITE,
	OP_TRUNCATE,
	OP_RENAME,
	OP_LINK,
	OP_UNLINK,
	OP_MKDIR,
	OP_RMDIR,
	OP_CHMOD,
	OP_SYMLINK,
	OP_MMAP,
	OP_READ,
	OP_LIST,
	OP_OPEN,
	OP_FDWRITE,
	OP_FDREAD,
	OP_FDSTAT,
	OP_CLOSE,
	OP_ATCREATE,
	OP_ATUNLINK,
	OP_FDTRUNC,
	OP_FDCHMOD,
	OP_XATTR,
	OP_READLINK,
	OP_FALLOCATE,
	OP_NKINDS,
};

static const char *const op_names[] = {
	"create",  "write",  "truncate", "rename",    "link",	  "unlink",   "mkdir",
	"rmdir",   "chmod",  "symlink",	 "mmap",      "read",	  "list",     "open",
	"fdwrite", "fdread", "fdstat",	 "close",     "atcreate", "atunlink", "fdtrunc",
	"fdchmod", "xattr",  "readlink", "fallocate",
};

/* Relative weights: changes dominate, reads check what they did. */
static const unsigned op_weight[] = { 10, 10, 5, 10, 5, 8, 6, 4, 3, 4, 4, 8, 4,
				      4,  5,  4, 3,  3, 3, 2, 2, 2, 3, 2, 2 };

struct op {
	enum op_kind kind;
	char p1[800], p2[800];
	unsigned flags;
	unsigned mode;
	off_t off;
	size_t len;
	unsigned slot;
	uint64_t data; /* seed of the bytes written */
};

/* One tree: its root and its open handles. */
struct side {
	const char *name;
	const char *path; /* of the root, for calls without an *at() form */
	int root;
	int slot[NSLOTS];
};

struct res {
	long long ret;
	int err;
	char out[MAXDATA * 2 + 256];
	size_t outlen;
};

static void fill(char *buf, size_t n, uint64_t seed)
{
	uint64_t x = seed | 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (char)('a' + x % 26);
	}
}

static void out_add(struct res *r, const void *p, size_t n)
{
	if (r->outlen + n > sizeof(r->out))
		n = sizeof(r->out) - r->outlen;
	memcpy(r->out + r->outlen, p, n);
	r->outlen += n;
}

static void out_addf(struct res *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void out_addf(struct res *r, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	out_add(r, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* What can be compared of a stat between the trees. */
static void out_stat(struct res *r, const struct stat *st)
{
	out_addf(r, " type=%o mode=%o owner=%u:%u", (unsigned)(st->st_mode & S_IFMT),
		 (unsigned)(st->st_mode & 07777), (unsigned)st->st_uid, (unsigned)st->st_gid);
	if (!S_ISDIR(st->st_mode))
		out_addf(r, " size=%lld nlink=%lu", (long long)st->st_size,
			 (unsigned long)st->st_nlink);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list_dir(struct res *r, int fd)
{
	char *names[256];
	size_t n = 0;
	struct dirent *de;
	DIR *d = fdopendir(fd);

	if (!d) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) && n < 256) {
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		/* d_type must agree with lstat. */
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    de->d_type != DT_UNKNOWN && de->d_type != IFTODT(st.st_mode))
			out_addf(r, "[bad d_type for %s]", de->d_name);
		names[n++] = strdup(de->d_name);
	}
	closedir(d);
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		out_addf(r, "%s,", names[i]);
		free(names[i]);
	}
}

#define SYS(expr)                                                                                  \
	do {                                                                                       \
		errno = 0;                                                                         \
		r->ret = (long long)(expr);                                                        \
		r->err = r->ret < 0 ? errno : 0;                                                   \
	} while (0)

static void apply(struct side *s, const struct op *op, struct res *r)
{
	char buf[MAXDATA];
	struct stat st;
	int fd;

	memset(r, 0, offsetof(struct res, out));
	r->outlen = 0;
	switch (op->kind) {
	case OP_CREATE:
		SYS(fd = openat(s->root, op->p1, O_CREAT | O_WRONLY | O_CLOEXEC | op->flags,
				op->mode));
		if (fd >= 0) {
			fill(buf, op->len, op->data);
			SYS(write(fd, buf, op->len));
			close(fd);
		}
		break;
	case OP_WRITE:
		SYS(fd = openat(s->root, op->p1, O_WRONLY | O_CLOEXEC | op->flags));
		if (fd >= 0) {
			fill(buf, op->len, op->data);
			SYS(pwrite(fd, buf, op->len, op->off));
			close(fd);
		}
		break;
	case OP_TRUNCATE:
		SYS(fd = openat(s->root, op->p1, O_WRONLY | O_CLOEXEC));
		if (fd >= 0) {
			SYS(ftruncate(fd, op->off));
			close(fd);
		}
		break;
	case OP_RENAME:
		SYS(renameat2(s->root, op->p1, s->root, op->p2, op->flags));
		break;
	case OP_LINK:
		SYS(linkat(s->root, op->p1, s->root, op->p2, 0));
		break;
	case OP_UNLINK:
		SYS(unlinkat(s->root, op->p1, 0));
		break;
	case OP_MKDIR:
		SYS(mkdirat(s->root, op->p1, op->mode));
		break;
	case OP_RMDIR:
		SYS(unlinkat(s->root, op->p1, AT_REMOVEDIR));
		break;
	case OP_CHMOD:
		SYS(fchmodat(s->root, op->p1, op->mode, 0));
		break;
	case OP_SYMLINK:
		SYS(symlinkat(op->p2, s->root, op->p1));
		break;
	case OP_MMAP:
		SYS(fd = openat(s->root, op->p1, O_RDWR | O_CLOEXEC));
		if (fd < 0)
			break;
		SYS(fstat(fd, &st));
		if (r->ret == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
			size_t size = (size_t)st.st_size;
			size_t off = (size_t)op->off % size, len = op->len;
			char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);

			if (m == MAP_FAILED) {
				r->ret = -1;
				r->err = errno;
			} else {
				if (off + len > size)
					len = size - off;
				fill(m + off, len, op->data);
				if (op->flags)
					(void)msync(m, size, MS_SYNC);
				munmap(m, size);
			}
		}
		close(fd);
		break;
	case OP_READ:
		SYS(fd = openat(s->root, op->p1, O_RDONLY | O_CLOEXEC | O_NONBLOCK));
		if (fd >= 0) {
			ssize_t n = read(fd, buf, sizeof(buf));

			r->ret = n;
			r->err = n < 0 ? errno : 0;
			if (n > 0)
				out_add(r, buf, (size_t)n);
			close(fd);
		}
		break;
	case OP_LIST:
		SYS(fd = openat(s->root, op->p1, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		if (fd >= 0)
			list_dir(r, fd);
		break;
	case OP_OPEN:
		if (s->slot[op->slot] >= 0)
			close(s->slot[op->slot]);
		SYS(s->slot[op->slot] =
			    openat(s->root, op->p1, op->flags | O_CLOEXEC | O_NOFOLLOW));
		if (r->ret >= 0)
			r->ret = 0; /* fd numbers differ */
		break;
	case OP_FDWRITE:
		fill(buf, op->len, op->data);
		SYS(pwrite(s->slot[op->slot], buf, op->len, op->off));
		break;
	case OP_FDREAD: {
		ssize_t n = pread(s->slot[op->slot], buf, sizeof(buf), op->off);

		r->ret = n;
		r->err = n < 0 ? errno : 0;
		if (n > 0)
			out_add(r, buf, (size_t)n);
		break;
	}
	case OP_FDSTAT:
		SYS(fstat(s->slot[op->slot], &st));
		if (r->ret == 0)
			out_stat(r, &st);
		break;
	case OP_CLOSE:
		SYS(close(s->slot[op->slot]));
		s->slot[op->slot] = -1;
		break;
	case OP_ATCREATE:
		/* Relative to an open directory, which may have moved or gone since. */
		SYS(fd = openat(s->slot[op->slot], op->p2, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
		if (fd >= 0) {
			r->ret = 0;
			SYS(write(fd, op->p1, strlen(op->p1)));
			close(fd);
		}
		break;
	case OP_ATUNLINK:
		SYS(unlinkat(s->slot[op->slot], op->p2, 0));
		break;
	case OP_FDTRUNC:
		SYS(ftruncate(s->slot[op->slot], op->off));
		break;
	case OP_FDCHMOD:
		SYS(fchmod(s->slot[op->slot], op->mode));
		break;
	case OP_XATTR: {
		char path[PATH_MAX * 2];
		ssize_t n;

		/* Set, replace or remove user.<letter>, then list and read them back. */
		snprintf(path, sizeof(path), "%s/%s", s->path, op->p1);
		if (op->flags == 2)
			SYS(lremovexattr(path, op->len % 2 ? "user.x" : "user.y"));
		else
			SYS(lsetxattr(path, op->len % 2 ? "user.x" : "user.y", op->p2,
				      strlen(op->p2), op->flags ? XATTR_CREATE : 0));
		n = llistxattr(path, buf, sizeof(buf));
		if (n >= 0) {
			/* The order of names is the file system's: compare what is there. */
			bool x = false, y = false;

			for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
				x |= !strcmp(buf + i, "user.x");
				y |= !strcmp(buf + i, "user.y");
			}
			out_addf(r, " xattrs %d%d", x, y);
		} else {
			out_addf(r, " list %s", strerrorname_np(errno));
		}
		n = lgetxattr(path, "user.x", buf, sizeof(buf));
		out_addf(r, " x=%zd", n);
		if (n > 0)
			out_add(r, buf, (size_t)n);
		break;
	}
	case OP_READLINK: {
		ssize_t n = readlinkat(s->root, op->p1, buf, sizeof(buf));

		r->ret = n;
		r->err = n < 0 ? errno : 0;
		if (n > 0)
			out_add(r, buf, (size_t)n);
		break;
	}
	case OP_FALLOCATE:
		SYS(fd = openat(s->root, op->p1, O_RDWR | O_CLOEXEC));
		if (fd >= 0) {
			SYS(fallocate(fd, (int)op->flags, op->off, (off_t)op->len));
			close(fd);
		}
		break;
	case OP_NKINDS:
		break;
	}
	/* The state of the paths involved, after the step. */
	for (int i = 0; i < 2; i++) {
		const char *p = i ? op->p2 : op->p1;

		if (!*p || (i && op->kind == OP_SYMLINK))
			continue;
		if (fstatat(s->root, p, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			out_addf(r, "|%s:", p);
			out_stat(r, &st);
		} else {
			out_addf(r, "|%s:%s", p, strerrorname_np(errno));
		}
	}
}

static void make_op(struct op *op)
{
	static const unsigned modes[] = { 0644, 0600, 0755, 0444, 0700, 0666 };
	unsigned total = 0, w;

	memset(op, 0, sizeof(*op));
	for (int k = 0; k < OP_NKINDS; k++)
		total += op_weight[k];
	w = pick(total);
	for (op->kind = 0; w >= op_weight[op->kind]; op->kind++)
		w -= op_weight[op->kind];
	rnd_path(op->p1, sizeof(op->p1));
	op->mode = modes[pick(6)];
	op->data = rnd();
	op->slot = pick(NSLOTS);
	switch (op->kind) {
	case OP_CREATE:
		op->flags = (pick(3) == 0 ? O_EXCL : 0) | (pick(2) ? O_TRUNC : 0) |
			    (pick(4) == 0 ? O_APPEND : 0);
		op->len = pick(3) ? pick(200) : pick(MAXDATA);
		break;
	case OP_WRITE:
		op->flags = pick(4) == 0 ? O_APPEND : pick(5) == 0 ? O_TRUNC : 0;
		op->off = pick(3) ? pick(300) : pick(20000);
		op->len = 1 + pick(pick(2) ? 100 : MAXDATA - 1);
		break;
	case OP_TRUNCATE:
		op->off = pick(3) ? pick(400) : pick(30000);
		break;
	case OP_RENAME:
		rnd_path(op->p2, sizeof(op->p2));
		op->flags = pick(6) == 0 ? RENAME_NOREPLACE : pick(6) == 0 ? RENAME_EXCHANGE : 0;
		break;
	case OP_LINK:
		rnd_path(op->p2, sizeof(op->p2));
		break;
	case OP_SYMLINK:
		rnd_path(op->p2, sizeof(op->p2)); /* the target */
		break;
	case OP_MMAP:
		op->off = pick(5000);
		op->len = 1 + pick(300);
		op->flags = pick(2);
		break;
	case OP_OPEN:
		op->flags = pick(2) ? O_RDWR : O_RDONLY;
		if (pick(4) == 0)
			op->flags |= O_TRUNC;
		else if (pick(3) == 0)
			op->flags = O_RDONLY | O_DIRECTORY;
		break;
	case OP_ATCREATE:
	case OP_ATUNLINK:
		snprintf(op->p2, sizeof(op->p2), "%s", pick(2) ? "a" : "n");
		break;
	case OP_FDTRUNC:
		op->off = pick(500);
		break;
	case OP_XATTR:
		op->flags = pick(3);
		op->len = pick(2);
		break;
	case OP_FALLOCATE:
		if (pick(3) == 0)
			op->flags = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE;
		else
			op->flags = pick(2) ? FALLOC_FL_KEEP_SIZE : 0;
		op->off = pick(3000);
		op->len = 1 + pick(6000);
		break;
	case OP_FDWRITE:
		op->off = pick(3) ? pick(300) : pick(12000);
		op->len = 1 + pick(200);
		break;
	case OP_FDREAD:
		op->off = pick(200);
		break;
	default:
		break;
	}
}

static void describe(const struct op *op, char *buf, size_t size)
{
	snprintf(buf, size, "%s %s %s flags=%#x mode=%o off=%lld len=%zu slot=%u",
		 op_names[op->kind], op->p1, op->p2, op->flags, op->mode, (long long)op->off,
		 op->len, op->slot);
}

/* The starting tree: files, nested directories and a symlink among the random names. */
static void make_tree(const char *root)
{
	cr_assert_eq(h_sh(root,
			  "set -e; printf 'first\\n' > a; mkdir -p b/b c; "
			  "printf 'second file\\n' > b/a; printf 'third\\n' > b/b/c; "
			  "printf 'x%%.0s' $(seq 5000) > b/c; ln -s a c/a; "
			  "printf 'deep\\n' > c/b; chmod 600 c/b; "
			  "printf 'marker-like\\n' > b/.cjfs~wh.a; printf 'long\\n' > c/" LONG_NAME),
		     0);
}

static void close_slots(struct side *s)
{
	for (int i = 0; i < NSLOTS; i++) {
		if (s->slot[i] >= 0)
			close(s->slot[i]);
		s->slot[i] = -1;
	}
}

/*
 * The user the operations run as: root, or (as_user) another one on an
 * allow_other mount, with the kernel's permission checks in the way. The
 * harness's own work (snapshots, mounts, commit) is done as root.
 */
static uid_t as_user;

static void become(bool user)
{
	if (!as_user)
		return;
	cr_assert_eq(seteuid(0), 0);
	cr_assert_eq(setegid(user ? as_user : 0), 0);
	if (user)
		cr_assert_eq(seteuid(as_user), 0);
}

static void compare_trees(const char *ctrl, uint64_t seed, unsigned step)
{
	char *want, *got;

	become(false);
	want = h_snapshot(ctrl, false);
	got = h_snapshot(env.mnt, false);

	cr_assert_str_eq(got, want, "seed %llu: the trees differ after step %u",
			 (unsigned long long)seed, step);
	free(want);
	free(got);
	become(true);
}

/* Unmount and mount the transaction again: the upper layer alone must carry its state. */
static void remount(struct side *fuse)
{
	int r = 1;

	close(fuse->root);
	become(false);
	cr_assert_eq(h_unmount(&env), 0, "the daemon did not exit cleanly: %s", env.err);
	/* The daemon lets go of the transaction just after the unmount. */
	for (int i = 0; i < 1000 && r != 0; i++) {
		r = as_user ? h_cjfs(&env, "mount", "--resume", "1", "--allow-other", env.mnt, NULL)
			    : h_cjfs(&env, "mount", "--resume", "1", env.mnt, NULL);
		if (r != 0)
			usleep(20000);
	}
	cr_assert_eq(r, 0, "cjfs mount --resume: %s", env.err);
	become(true);
	fuse->root = open(env.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(fuse->root >= 0);
}

static void run_seed(uint64_t seed, unsigned nops)
{
	char ctrl[PATH_MAX], log[64][1800], d[160];
	struct side plain = { .name = "plain" }, fuse = { .name = "cjfs" };
	static struct res rp, rf;
	bool trace = getenv("CJFS_DIFF_TRACE") != NULL;
	struct op op;
	char *want, *got;

	h_setup(&env);
	make_tree(env.pkg);
	if (as_user) {
		cr_assert_eq(chmod(env.root, 0755), 0);
		cr_assert_eq(h_sh(env.pkg, "chown -R -h %u:%u .", as_user, as_user), 0);
	}
	snprintf(ctrl, sizeof(ctrl), "%s/ctrl", env.root);
	h_copy_tree(env.pkg, ctrl);
	/* In the foreground: its exit status is checked at the remount. */
	h_mount_fg_opt(&env, as_user ? "--allow-other" : NULL);
	plain.path = ctrl;
	fuse.path = env.mnt;
	plain.root = open(ctrl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	fuse.root = open(env.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(plain.root >= 0 && fuse.root >= 0);
	for (int i = 0; i < NSLOTS; i++)
		plain.slot[i] = fuse.slot[i] = -1;
	rnd_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	umask(022);
	become(true);
	for (unsigned i = 0; i < nops; i++) {
		if (i && i % 50 == 0)
			compare_trees(ctrl, seed, i);
		if (i == nops / 3 && seed % 4 == 0 && !as_user) {
			/*
			 * The kernel forgets inodes: they must come back the same.
			 * (Machine-wide, so only in one seed of four.)
			 */
			(void)!system("echo 2 > /proc/sys/vm/drop_caches");
		}
		if (i == nops / 2) {
			close_slots(&plain);
			close_slots(&fuse);
			remount(&fuse);
		}
		make_op(&op);
		describe(&op, log[i % 64], sizeof(log[0]));
		apply(&plain, &op, &rp);
		apply(&fuse, &op, &rf);
		if (trace)
			fprintf(stderr, "%u: %s => %lld %s %.*s\n", i, log[i % 64], rf.ret,
				rf.err ? strerrorname_np(rf.err) : "",
				(int)(rf.outlen > 200 ? 200 : rf.outlen), rf.out);
		if (rp.ret != rf.ret || rp.err != rf.err || rp.outlen != rf.outlen ||
		    memcmp(rp.out, rf.out, rp.outlen) != 0) {
			static char hist[42 * 1810];
			size_t len = 0;

			become(false);
			hist[0] = '\0';
			for (unsigned k = i >= 40 ? i - 40 : 0; k <= i; k++)
				len += (size_t)snprintf(hist + len, sizeof(hist) - len,
							"  %u: %s\n", k, log[k % 64]);
			cr_assert_fail("seed %llu step %u: %s\n"
				       "plain: ret %lld %s out '%.*s'\n"
				       "cjfs:  ret %lld %s out '%.*s'\nsteps:\n%s",
				       (unsigned long long)seed, i, log[i % 64], rp.ret,
				       rp.err ? strerrorname_np(rp.err) : "",
				       (int)rp.outlen > 300 ? 300 : (int)rp.outlen, rp.out, rf.ret,
				       rf.err ? strerrorname_np(rf.err) : "",
				       (int)rf.outlen > 300 ? 300 : (int)rf.outlen, rf.out, hist);
		}
	}
	close_slots(&plain);
	close_slots(&fuse);
	close(plain.root);
	close(fuse.root);
	become(false);
	want = h_snapshot(ctrl, false);
	got = h_snapshot(env.mnt, false);
	cr_assert_str_eq(got, want, "seed %llu: the trees differ at the end",
			 (unsigned long long)seed);
	free(got);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "seed %llu: commit: %s",
		     (unsigned long long)seed, env.err);
	got = h_snapshot(env.pkg, false);
	snprintf(d, sizeof(d), "seed %llu", (unsigned long long)seed);
	cr_assert_str_eq(got, want, "%s: PKG after commit differs from the plain copy", d);
	cr_assert_eq(h_count_names(env.pkg, ".cjfs-"), 0, "%s: temporaries left in PKG", d);
	free(got);
	free(want);
	h_teardown(&env);
}

static unsigned env_uint(const char *name, unsigned dflt)
{
	const char *v = getenv(name);

	return v && *v ? (unsigned)strtoul(v, NULL, 10) : dflt;
}

Test(differential, random_operations_match_a_plain_directory)
{
	unsigned seeds = env_uint("CJFS_SOAK_SEEDS", DIFF_SEEDS);
	unsigned first = env_uint("CJFS_SEED", 1);
	unsigned nops = env_uint("CJFS_DIFF_OPS", DIFF_OPS);

	for (unsigned s = first; s < first + seeds; s++)
		run_seed(s, nops);
}

Test(differential, as_another_user_on_an_allow_other_mount)
{
	unsigned seeds = env_uint("CJFS_SOAK_SEEDS", DIFF_SEEDS) / 3;
	unsigned first = env_uint("CJFS_SEED", 1) + 100000;
	unsigned nops = env_uint("CJFS_DIFF_OPS", DIFF_OPS);

	if (geteuid() != 0)
		cr_skip_test("needs root to act as another user");
	as_user = 65534;
	for (unsigned s = first; s < first + seeds; s++)
		run_seed(s, nops);
}

/* ---- concurrency: no plain twin, but no unexpected error, no crash, a consistent tree ---- */

#include <pthread.h>

struct worker {
	int root;
	uint64_t seed;
	unsigned nops;
	char err[256];
};

static uint64_t wrnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static void wpath(uint64_t *s, char *buf, size_t size)
{
	static const char *const comp[] = { "a", "b", "c", ".cjfs~wh.a", LONG_NAME };
	unsigned depth = 1 + (unsigned)(wrnd(s) % 3);
	size_t len = 0;

	for (unsigned i = 0; i < depth; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? "/" : "",
					comp[wrnd(s) % 5]);
}

/* Errors a racing namespace may legitimately give. */
static bool expected_errno(int e)
{
	return e == ENOENT || e == EEXIST || e == ENOTEMPTY || e == ENOTDIR || e == EISDIR ||
	       e == EINVAL || e == ELOOP || e == EBUSY;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char p1[800], p2[800], buf[4096];

	for (unsigned i = 0; i < w->nops && !w->err[0]; i++) {
		unsigned k = (unsigned)(wrnd(&w->seed) % 12);
		const char *what = "";
		int r = 0, fd;

		wpath(&w->seed, p1, sizeof(p1));
		wpath(&w->seed, p2, sizeof(p2));
		errno = 0;
		switch (k) {
		case 0:
			what = "create";
			fd = openat(w->root, p1, O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644);
			r = fd;
			if (fd >= 0) {
				r = (int)write(fd, p2, strlen(p2));
				close(fd);
			}
			break;
		case 1:
			what = "append";
			fd = openat(w->root, p1, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
			r = fd;
			if (fd >= 0) {
				r = (int)write(fd, "more\n", 5);
				close(fd);
			}
			break;
		case 2:
			what = "rename";
			r = renameat(w->root, p1, w->root, p2);
			break;
		case 3:
			what = "exchange";
			r = renameat2(w->root, p1, w->root, p2, RENAME_EXCHANGE);
			break;
		case 4:
			what = "unlink";
			r = unlinkat(w->root, p1, 0);
			break;
		case 5:
			what = "mkdir";
			r = mkdirat(w->root, p1, 0755);
			break;
		case 6:
			what = "rmdir";
			r = unlinkat(w->root, p1, AT_REMOVEDIR);
			break;
		case 7:
			what = "link";
			r = linkat(w->root, p1, w->root, p2, 0);
			break;
		case 8:
			what = "symlink";
			r = symlinkat(p2, w->root, p1);
			break;
		case 9:
			what = "list";
			fd = openat(w->root, p1, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			r = fd;
			if (fd >= 0) {
				DIR *d = fdopendir(fd);

				while (d && readdir(d))
					;
				if (d)
					closedir(d);
			}
			break;
		case 10:
			what = "read";
			fd = openat(w->root, p1, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
			r = fd;
			if (fd >= 0) {
				r = (int)read(fd, buf, sizeof(buf));
				close(fd);
			}
			break;
		default: {
			struct stat st;

			what = "chmod";
			r = fchmodat(w->root, p1, 0600 + (unsigned)(wrnd(&w->seed) % 2) * 0155, 0);
			if (r == 0)
				r = fstatat(w->root, p1, &st, AT_SYMLINK_NOFOLLOW);
			break;
		}
		}
		if (r < 0 && !expected_errno(errno) && !(k == 7 && errno == EPERM))
			snprintf(w->err, sizeof(w->err), "%s %s %s: %s", what, p1, p2,
				 strerrorname_np(errno));
	}
	return NULL;
}

Test(differential, concurrent_operations_leave_a_consistent_tree, .timeout = 300)
{
	unsigned seeds = env_uint("CJFS_STRESS_ROUNDS", 3);
	struct worker w[4];
	pthread_t th[4];
	char *shown, *after;
	int root;

	for (unsigned s = 0; s < seeds; s++) {
		h_setup(&env);
		make_tree(env.pkg);
		h_mount_fg(&env);
		root = open(env.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		cr_assert(root >= 0);
		for (int i = 0; i < 4; i++) {
			w[i] = (struct worker){ .root = root,
						.seed = s * 4 + (unsigned)i + 1,
						.nops = 1500 };
			cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
		}
		for (int i = 0; i < 4; i++)
			pthread_join(th[i], NULL);
		for (int i = 0; i < 4; i++)
			cr_assert_eq(w[i].err[0], '\0', "round %u worker %d: %s", s, i, w[i].err);
		close(root);
		shown = h_snapshot(env.mnt, false);
		cr_assert_eq(h_unmount(&env), 0, "the daemon did not exit cleanly");
		cr_assert_eq(h_cjfs(&env, "commit", "1", NULL), 0, "%s", env.err);
		after = h_snapshot(env.pkg, false);
		cr_assert_str_eq(after, shown, "round %u: PKG after commit differs from the mount",
				 s);
		free(shown);
		free(after);
		h_teardown(&env);
	}
}
