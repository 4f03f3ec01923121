// SPDX-License-Identifier: MIT
/*
 * The session: set up the per-mount state and root inode, mount, run the
 * multi-threaded request loop, unmount and tear down.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

/* Entry and attribute timeout: long, because every change passes through the daemon. */
#define FS_TIMEOUT 86400.0

/*
 * Inodes the daemon keeps before it asks the kernel to forget some: about
 * 250 bytes each, so the table stays near 10 MiB whatever the tree size.
 * $CJFS_INODE_CAP overrides it (0: no limit).
 */
#define FS_INODE_CAP 40000

/*
 * The kernel reads ahead of a FUSE file in windows of the mount's
 * backing_dev read_ahead_kb, 128 KiB by default, one READ request each.
 * A 1 MiB window (the largest request libfuse negotiates) quarters the
 * round trips of a sequential read: a cold 1 GiB read went from ~2.2x to
 * ~1.2x native here. Only root may write it; anyone else keeps the default.
 * The INIT reply lowers the window to what the kernel offered at mount, so
 * this runs on the first request after it (fs_tune_once). The device is
 * found in mountinfo by the mount's source name, unique per transaction:
 * touching the mount itself could make an unmount at that instant fail.
 */
#define FS_READ_AHEAD_KB 1024

static void tune_readahead(int64_t txn)
{
	char want[64], *line = NULL, path[96];
	unsigned int major = 0, minor = 0;
	bool found = false;
	size_t cap = 0;
	FILE *f;
	int fd;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return;
	snprintf(want, sizeof(want), " - fuse.cjfs cjfs-%lld ", (long long)txn);
	while (getline(&line, &cap, f) > 0) {
		unsigned int a, b;

		/* The newest mount is listed last. */
		if (strstr(line, want) && sscanf(line, "%*u %*u %u:%u", &a, &b) == 2) {
			major = a;
			minor = b;
			found = true;
		}
	}
	free(line);
	fclose(f);
	if (!found)
		return;
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major, minor);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (dprintf(fd, "%d\n", FS_READ_AHEAD_KB) < 0)
		log_debug("cannot raise '%s': %m", path);
	close(fd);
}

void fs_tune_once(struct fs *fs)
{
	if (__atomic_load_n(&fs->tuned, __ATOMIC_RELAXED) ||
	    __atomic_exchange_n(&fs->tuned, true, __ATOMIC_RELAXED))
		return;
	if (fs->root)
		tune_readahead(fs->cfg->txn);
}

static void fs_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	if (level <= FUSE_LOG_ERR)
		log_error("fuse: %s", msg);
	else if (level <= FUSE_LOG_WARNING)
		log_warn("fuse: %s", msg);
	else
		log_debug("fuse: %s", msg);
}

/* Remove what a killed daemon left in work/ (half-built copies, trash). */
static void clean_work(int work_fd)
{
	int fd = util_openat(work_fd, ".", O_RDONLY | O_DIRECTORY, 0);
	struct dirent *de;
	DIR *d;

	if (fd < 0)
		return;
	d = fdopendir(fd);
	if (!d) {
		util_close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			(void)util_rm_rf_at(work_fd, de->d_name);
	}
	closedir(d);
}

/*
 * The mount root shows the upper root's attributes, and the store creates
 * that directory for itself: give it PKG root's owner, mode, times and
 * xattrs once, when the transaction is first mounted (the marker says so,
 * so that a resumed mount keeps what was changed through the mount). A
 * crash before the marker only means doing it again.
 */
static int init_upper_root(struct fs *fs)
{
	struct timespec times[2];
	struct stat st;
	int fd, r;

	if (fstatat(fs->upper_fd, LAYER_ROOT, &st, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	if (fstat(fs->lower_fd, &st) < 0)
		return -errno;
	if (fs->root && fchownat(fs->upper_fd, "", st.st_uid, st.st_gid, AT_EMPTY_PATH) < 0)
		return -errno;
	if (fchmodat(fs->upper_fd, ".", st.st_mode & 07777, 0) < 0)
		return -errno;
	r = fs_copy_xattrs(fs->lower_fd, "", fs->upper_fd, ".");
	if (r < 0)
		return r;
	fd = util_openat(fs->upper_fd, LAYER_ROOT, O_WRONLY | O_CREAT | O_NOFOLLOW, 0600);
	if (fd < 0)
		return fd;
	util_close(fd);
	/* Last: creating the marker changed the directory's times. */
	times[0] = st.st_atim;
	times[1] = st.st_mtim;
	r = utimensat(fs->upper_fd, ".", times, 0) < 0 ? -errno : 0;
	return r;
}

/* As many directory fds as the limit allows, keeping room for files and SQLite. */
static long fd_budget(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return 256;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1 << 20)
		rl.rlim_cur = 1 << 20;
	return rl.rlim_cur > 1024 ? (long)(rl.rlim_cur / 2) : 256;
}

int fs_check_options(const char *options)
{
	/* Options that would break the overlay's guarantees or its cache coherence. */
	static const char *const refused[] = { "fsname=", "subtype=", "dev", "suid" };
	char *copy, *tok, *save = NULL;
	int r = 0;

	if (!options || !*options)
		return 0;
	copy = strdup(options);
	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		for (size_t i = 0; i < ARRAY_SIZE(refused); i++) {
			size_t n = strlen(refused[i]);

			if (refused[i][n - 1] == '=' ? strncmp(tok, refused[i], n) == 0
						     : strcmp(tok, refused[i]) == 0)
				r = -EINVAL;
		}
	}
	free(copy);
	return r;
}

int fs_mount(const struct fs_config *cfg, struct fs **ret)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct strbuf opts = STRBUF_INIT;
	struct stat st;
	struct fs *fs;
	int r;

	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->cfg = cfg;
	fs->lower_fd = cfg->lower_fd;
	fs->upper_fd = cfg->upper_fd;
	fs->work_fd = cfg->work_fd;
	fs->root = geteuid() == 0;
	fs->gid = getegid();
	fs->timeout = FS_TIMEOUT;
	fs->fd_budget = fd_budget();
	pthread_rwlock_init(&fs->ns, NULL);
	pthread_mutex_init(&fs->table, NULL);
	pthread_mutex_init(&fs->touch_lock, NULL);
	pthread_mutex_init(&fs->reclaim_lock, NULL);
	pthread_cond_init(&fs->reclaim_cond, NULL);
	fs_pt_init(fs);
	fs_dirsnaps_init(fs);
	{
		const char *cap = getenv("CJFS_INODE_CAP");
		int64_t v;

		fs->inode_cap =
			cap && util_parse_i64(cap, &v) == 0 && v >= 0 ? (size_t)v : FS_INODE_CAP;
	}
	r = fs_init_tables(fs);
	if (r < 0)
		goto out_free;
	if (fstat(fs->upper_fd, &st) < 0) {
		r = -errno;
		goto out_free;
	}
	fs->upper_dev = st.st_dev;
	if (fstat(fs->lower_fd, &st) < 0) {
		r = -errno;
		goto out_free;
	}
	fs->lower_dev = st.st_dev;
	fs->root_inode.key = (struct fs_key){ .dev = st.st_dev, .ino = st.st_ino };
	fs->root_inode.ino = st.st_ino;
	fs->root_inode.type = S_IFDIR;
	fs->root_inode.upper = fs->root_inode.lower = true;
	fs->root_inode.nlookup = 2; /* never forgotten */
	fs->root_inode.upper_fd = fs->root_inode.lower_fd = fs->root_inode.anchor_fd = -1;

	clean_work(fs->work_fd);
	r = init_upper_root(fs);
	if (r < 0)
		goto out_free;
	r = store_changelog_begin(cfg->store, cfg->txn);
	if (r == 0)
		r = fs_load_touched(fs);
	if (r < 0)
		goto out_free;

	fuse_set_log_func(fs_log);
	r = strbuf_addf(&opts, "default_permissions,fsname=cjfs-%lld,subtype=cjfs",
			(long long)cfg->txn);
	if (r == 0 && cfg->allow_other)
		r = strbuf_adds(&opts, ",allow_other");
	if (r == 0 && cfg->options && *cfg->options)
		r = strbuf_addf(&opts, ",%s", cfg->options);
	if (r < 0)
		goto out_free;
	if (fuse_opt_add_arg(&args, "cjfs") < 0 || fuse_opt_add_arg(&args, "-o") < 0 ||
	    fuse_opt_add_arg(&args, opts.buf) < 0 ||
	    (cfg->debug && fuse_opt_add_arg(&args, "-d") < 0)) {
		r = -ENOMEM;
		goto out_args;
	}
	fs->se = fuse_session_new(&args, &fs_ll_ops, sizeof(fs_ll_ops), fs);
	if (!fs->se) {
		r = -EINVAL;
		goto out_args;
	}
	if (fuse_session_mount(fs->se, cfg->mountpoint) != 0) {
		r = -ENODEV;
		fuse_session_destroy(fs->se);
		fs->se = NULL;
		goto out_args;
	}
	{
		/* Passes everything through, and negotiates passthrough (passthrough.c). */
		static const struct fuse_custom_io io = {
			.read = fs_io_read,
			.writev = fs_io_writev,
			.splice_receive = fs_io_splice,
			.splice_send = fs_io_splice,
		};

		r = fuse_session_custom_io(fs->se, &io, fuse_session_fd(fs->se));
		if (r < 0) {
			fuse_session_unmount(fs->se);
			fuse_session_destroy(fs->se);
			fs->se = NULL;
			goto out_args;
		}
	}
	fuse_opt_free_args(&args);
	strbuf_release(&opts);
	*ret = fs;
	return 0;

out_args:
	fuse_opt_free_args(&args);
out_free:
	strbuf_release(&opts);
	fs_free(fs);
	return r;
}

int fs_run(struct fs *fs)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int r;

	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_idle_threads(lc, 4);
	fuse_loop_cfg_set_max_threads(lc, 16);
	if (fuse_set_signal_handlers(fs->se) != 0) {
		fuse_loop_cfg_destroy(lc);
		return -EIO;
	}
	r = fs_reclaim_start(fs);
	if (r < 0)
		log_warn("cannot start the inode reclaimer: memory will follow the kernel's cache");
	fs_uring_start(fs);
	r = fuse_session_loop_mt(fs->se, lc);
	fs_uring_stop(fs);
	fs_reclaim_stop(fs);
	fuse_remove_signal_handlers(fs->se);
	fuse_loop_cfg_destroy(lc);
	fuse_session_unmount(fs->se);
	/* Whatever is not folded now is folded by the next reader of the change set. */
	(void)store_changelog_end(fs->cfg->store, fs->cfg->txn);
	/* Informational: lost if the daemon is killed, which then has other worries. */
	(void)store_txn_add_backup(fs->cfg->store, fs->cfg->txn, fs->backup_ns);
	return r < 0 ? r : r > 0 ? -EINTR : 0;
}

void fs_exit(struct fs *fs)
{
	fuse_session_exit(fs->se);
}

void fs_free(struct fs *fs)
{
	if (!fs)
		return;
	if (fs->se) {
		fuse_session_unmount(fs->se);
		fuse_session_destroy(fs->se);
	}
	fs_dirsnaps_release(fs);
	fs_free_tables(fs);
	fs_free_touched(fs);
	pthread_rwlock_destroy(&fs->ns);
	pthread_mutex_destroy(&fs->table);
	pthread_mutex_destroy(&fs->touch_lock);
	pthread_mutex_destroy(&fs->reclaim_lock);
	pthread_cond_destroy(&fs->reclaim_cond);
	fs_pt_destroy(fs);
	free(fs);
}
