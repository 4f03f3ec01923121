// SPDX-License-Identifier: MIT
/*
 * FUSE requests over io_uring (fs/uring.c). When the kernel allows it (the
 * fuse module's enable_uring), a request must be served by the daemon's ring
 * thread for the CPU the application runs on, which is the point of the
 * ring; data must cross it intact at the largest sizes the kernel sends;
 * and with the ring turned off everything goes through /dev/fuse as before.
 * Fewer requests: regular files ask writers for big buffers.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static struct h_env env;

static void setup(void)
{
	if (!h_fuse_available())
		cr_skip_test("/dev/fuse is not available");
	h_setup(&env);
	h_write(env.pkg, "a", "alpha\n");
}

static void teardown(void)
{
	unsetenv("CJFS_NO_URING");
	unsetenv("CJFS_NO_PASSTHROUGH");
	unsetenv("CJFS_RING_NORMAL");
	h_teardown(&env);
}

TestSuite(uring, .init = setup, .fini = teardown, .timeout = 120);

#define CK(expr) cr_assert((expr) >= 0, "%s: %s", #expr, strerror(errno))

static bool uring_enabled(void)
{
	FILE *f = fopen("/sys/module/fuse/parameters/enable_uring", "re");
	int c = f ? fgetc(f) : EOF;

	if (f)
		fclose(f);
	return c == 'Y' || c == '1';
}

#define MAX_THREADS 256

struct ring_thread {
	int cpu;       /* the CPU in its name (cjfs-ringN) */
	int on;	       /* the one CPU it may run on, or -1 */
	long switches; /* context switches so far */
	int policy;    /* SCHED_* */
};

/* The scheduling policy (SCHED_*) of the daemon's thread tid, or -1. */
static int task_policy(pid_t daemon, const char *tid)
{
	char path[64], buf[1024], *field;
	size_t len;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%s/stat", (int)daemon, tid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	len = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[len] = '\0';
	/* "tid (comm) state ...": field 41 is the policy. */
	field = strrchr(buf, ')');
	if (!field)
		return -1;
	field = strtok(field + 2, " ");
	for (int i = 3; field && i < 41; i++)
		field = strtok(NULL, " ");
	return field ? atoi(field) : -1;
}

/* The daemon's ring threads, how often each has been woken, and their policy. */
static int ring_threads(pid_t daemon, struct ring_thread *t)
{
	char path[64], line[256];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)daemon);
	d = opendir(path);
	cr_assert(d, "%s: %s", path, strerror(errno));
	while ((de = readdir(d)) && n < MAX_THREADS) {
		FILE *f;
		int cpu = -1, on = -1;
		long sw = 0, v;
		char end;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%s/status", (int)daemon, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue; /* the thread ended */
		while (fgets(line, sizeof(line), f)) {
			if (sscanf(line, "Name: cjfs-ring%ld", &v) == 1)
				cpu = (int)v;
			else if (sscanf(line, "Cpus_allowed_list: %ld%c", &v, &end) == 2 &&
				 end == '\n')
				on = (int)v;
			else if (sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1 ||
				 sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1)
				sw += v;
		}
		fclose(f);
		if (cpu >= 0)
			t[n++] = (struct ring_thread){ cpu, on, sw, task_policy(daemon, de->d_name) };
	}
	closedir(d);
	return n;
}

/* Context switches of the ring threads of one CPU (want) or of all others. */
static long switches(const struct ring_thread *t, int n, int cpu, bool want)
{
	long sum = 0;

	for (int i = 0; i < n; i++)
		if ((t[i].cpu == cpu) == want)
			sum += t[i].switches;
	return sum;
}

Test(uring, a_request_is_served_on_the_cpu_that_made_it)
{
	struct ring_thread before[MAX_THREADS], after[MAX_THREADS];
	cpu_set_t mine, one;
	struct stat st;
	char name[64];
	int n, m, ncpu = 0;

	if (!uring_enabled())
		cr_skip_test("the fuse module's enable_uring is off");
	CK(sched_getaffinity(0, sizeof(mine), &mine));
	h_mount_fg(&env);
	CK(stat(env.mnt, &st));
	n = ring_threads(env.daemon, before);
	cr_assert_gt(n, 0, "no ring threads in a daemon with enable_uring on");
	/* Each runs on its own CPU, where the application's thread is woken. */
	for (int i = 0; i < n; i++)
		if (CPU_ISSET(before[i].cpu, &mine))
			cr_assert_eq(before[i].on, before[i].cpu,
				     "cjfs-ring%d may run on other CPUs", before[i].cpu);
	for (int cpu = 0; cpu < CPU_SETSIZE; cpu++) {
		int dir;

		if (!CPU_ISSET(cpu, &mine))
			continue;
		ncpu++;
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		CK(sched_setaffinity(0, sizeof(one), &one));
		n = ring_threads(env.daemon, before);
		CK(dir = open(env.mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
		/* Each new name is a LOOKUP the kernel cannot answer from its cache. */
		for (int i = 0; i < 200; i++) {
			snprintf(name, sizeof(name), "missing-%d-%d", cpu, i);
			cr_assert_eq(fstatat(dir, name, &st, 0), -1);
			cr_assert_eq(errno, ENOENT);
		}
		close(dir);
		m = ring_threads(env.daemon, after);
		cr_assert_eq(m, n, "ring threads came or went");
		cr_assert_geq(switches(after, m, cpu, true) - switches(before, n, cpu, true), 200,
			      "CPU %d: its ring threads did not serve its 200 lookups", cpu);
		cr_assert_lt(switches(after, m, cpu, false) - switches(before, n, cpu, false), 100,
			     "CPU %d: other CPUs' ring threads served its lookups", cpu);
	}
	CK(sched_setaffinity(0, sizeof(mine), &mine));
	cr_assert_gt(ncpu, 0);
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "%s", env.err);
}

#define BIG (3 * 1024 * 1024 + 123)
#define CHUNK (1024 * 1024)

/*
 * The ring threads wait at the lowest priority (SCHED_IDLE), so that the
 * program they answer stays on its CPU (fs/uring.c); CJFS_RING_NORMAL=1
 * keeps them at normal priority.
 */
Test(uring, ring_threads_wait_at_the_lowest_priority)
{
	struct ring_thread t[MAX_THREADS];
	struct stat st;
	int n;

	if (!uring_enabled())
		cr_skip_test("the fuse module's enable_uring is off");
	if (geteuid() != 0)
		cr_skip_test("an ordinary user's threads may not leave SCHED_IDLE again: not used");
	h_mount_fg(&env);
	CK(stat(env.mnt, &st));
	n = ring_threads(env.daemon, t);
	cr_assert_gt(n, 0, "no ring threads in a daemon with enable_uring on");
	for (int i = 0; i < n; i++)
		cr_assert_eq(t[i].policy, SCHED_IDLE, "a ring thread waits with policy %d", t[i].policy);
	cr_assert_eq(h_unmount(&env), 0);
	cr_assert_eq(h_cjfs(&env, "rollback", "1", NULL), 0, "%s", env.err);
	setenv("CJFS_RING_NORMAL", "1", 1);
	h_mount_fg(&env);
	CK(stat(env.mnt, &st));
	n = ring_threads(env.daemon, t);
	cr_assert_gt(n, 0);
	for (int i = 0; i < n; i++)
		cr_assert_eq(t[i].policy, SCHED_OTHER, "CJFS_RING_NORMAL=1: policy %d", t[i].policy);
}

static char *pattern(unsigned int seed)
{
	char *p = malloc(BIG);

	cr_assert(p);
	for (size_t i = 0; i < BIG; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (char)(seed >> 16);
	}
	return p;
}

static void read_all(const char *path, const char *want)
{
	char *got = malloc(BIG + CHUNK);
	size_t n = 0;
	ssize_t r;
	int fd;

	cr_assert(got);
	CK(fd = open(path, O_RDONLY | O_CLOEXEC));
	while ((r = read(fd, got + n, CHUNK)) > 0)
		n += (size_t)r;
	CK(r);
	close(fd);
	cr_assert_eq(n, (size_t)BIG, "%s: %zu bytes", path, n);
	cr_assert(memcmp(got, want, BIG) == 0, "%s: data differs", path);
	free(got);
}

/* Reads and writes of the largest size the kernel sends, through the daemon. */
static void big_data_then_commit(void)
{
	char *old = pattern(1), *new = pattern(2), path[PATH_MAX];
	int fd;

	setenv("CJFS_NO_PASSTHROUGH", "1", 1);
	snprintf(path, sizeof(path), "%s/old", env.pkg);
	CK(fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	cr_assert_eq(write(fd, old, BIG), BIG);
	close(fd);
	h_mount_fg(&env);
	snprintf(path, sizeof(path), "%s/old", env.mnt);
	read_all(path, old);
	snprintf(path, sizeof(path), "%s/new", env.mnt);
	CK(fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644));
	for (size_t off = 0; off < BIG; off += CHUNK) {
		size_t len = BIG - off < CHUNK ? BIG - off : CHUNK;

		cr_assert_eq(write(fd, new + off, len), (ssize_t)len);
	}
	close(fd);
	read_all(path, new);
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "%s", env.err);
	snprintf(path, sizeof(path), "%s/new", env.pkg);
	read_all(path, new);
	free(old);
	free(new);
}

Test(uring, megabyte_reads_and_writes_arrive_intact)
{
	big_data_then_commit();
}

Test(uring, without_the_ring_requests_go_through_dev_fuse)
{
	struct ring_thread t[MAX_THREADS];

	setenv("CJFS_NO_URING", "1", 1);
	h_mount_fg(&env);
	cr_assert_eq(ring_threads(env.daemon, t), 0, "ring threads with CJFS_NO_URING=1");
	h_write(env.mnt, "b", "bravo\n");
	cr_assert_eq(h_cjfs(&env, "commit", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "%s", env.err);
	{
		char *b = h_read(env.pkg, "b");

		cr_assert_str_eq(b, "bravo\n");
		free(b);
	}
	big_data_then_commit();
}

/*
 * Each write() to a FUSE file costs a request or two, so the mount tells
 * writers (Python's io, coreutils) to use big buffers: regular files report
 * st_blksize of at least 128 KiB, from PKG, created, and after a copy-up.
 */
Test(uring, regular_files_ask_for_big_writes)
{
	const char *names[] = { "a", "created", "a" };
	struct stat st;
	char path[PATH_MAX];

	h_mount_fg(&env);
	h_write(env.mnt, "created", "c\n");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", env.mnt, names[i]);
		CK(stat(path, &st));
		cr_assert_geq(st.st_blksize, 128 * 1024, "%s: st_blksize %ld", names[i],
			      (long)st.st_blksize);
		if (i == 1)
			h_write(env.mnt, "a", "copied up\n");
	}
	cr_assert_eq(h_cjfs(&env, "rollback", env.mnt, NULL), 0, "%s", env.err);
	cr_assert_eq(h_wait_daemon(&env), 0, "%s", env.err);
}
