// SPDX-License-Identifier: MIT
/*
 * FUSE requests over io_uring (Linux 6.14 and later, with the fuse module's
 * enable_uring parameter on).
 *
 * Through /dev/fuse, a request wakes whichever daemon thread waits first,
 * usually on the other CPU, and on a virtual machine every cross-CPU wake-up
 * costs an interrupt through the hypervisor: a round trip there is two to
 * four times one on the same CPU. With io_uring the kernel keeps one queue
 * per CPU and hands a request to a thread of the queue of the CPU that made
 * it, so the application, the daemon thread and the reply stay on one CPU.
 *
 * libfuse 3.14 predates the ring, so cjfs drives it itself and leaves request
 * handling to libfuse: each ring thread owns an io_uring with one registered
 * entry (a header buffer and a payload buffer), rebuilds the request the
 * kernel split into header, per-operation header and payload into libfuse's
 * contiguous layout in place, has fuse_session_process_buf() run it, and
 * catches the reply in the session's writev hook (fs_io_writev), which copies
 * it into the entry; COMMIT_AND_FETCH then sends the reply and waits for the
 * next request in one system call.
 *
 * The ring is offered in the INIT reply only once every thread has its
 * io_uring. From then on the kernel holds new requests until every queue has
 * an entry; a thread that cannot register makes the kernel fall back to
 * /dev/fuse by registering an entry it will refuse. FORGET and INTERRUPT keep
 * coming through /dev/fuse, to libfuse's own loop, as do requests made before
 * the ring is ready.
 */
#include "fs_int.h"

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "kfuse.h"
#include "log.h"

/* Ring threads per CPU: a second one serves while the first waits on the disk. */
#define RING_THREADS_PER_QUEUE 2
/* Room before the payload to put the headers back in front of it. */
#define RING_HEAD_ROOM 4096

enum { RING_WAIT, RING_GO, RING_STOP };
enum { TAG_CMD = 1, TAG_STOP = 2 };

struct fs_ring {
	struct fs *fs;
	unsigned int qid;
	pthread_t thread;
	struct io_uring ring;
	bool have_ring;
	struct kfuse_uring_req_header hdr;
	struct iovec iov[2]; /* hdr and payload, as registered */
	char *mem;	     /* RING_HEAD_ROOM + cap bytes */
	char *payload;
	size_t cap;
	uint64_t unique; /* the request being served */
	bool replied;
};

/* The ring entry whose request this thread is serving, if any. */
static __thread struct fs_ring *serving;

/*
 * Ring threads wait for requests and reply as SCHED_IDLE. A reply wakes the
 * application, and the kernel puts a woken task on an idle CPU rather than
 * on the one it ran on if that one is busy: with the replying thread at
 * normal priority, a program making requests one after the other moved to
 * the other CPU at nearly every request (52,197 migrations in 60,000
 * getxattr calls), and its next request went to that CPU's queue and woke
 * the threads there. A CPU running only SCHED_IDLE tasks counts as idle, so
 * the program stays with its queue's threads: a round trip took 38-47 us
 * before, 14-16 us so. Work that keeps the CPU busy for long (util_heavy():
 * copying or hashing big files, big reads and writes, long listings) runs
 * at normal priority, so that other programs on a busy CPU cannot starve
 * it; the thread is SCHED_IDLE again before it replies. And where every
 * CPU is kept busy by programs at normal priority, a SCHED_IDLE thread gets
 * almost no CPU time at all (rm -rf of a tree 20 times slower with both
 * CPUs busy): every 8 batches of requests a thread reads how long it waited
 * for a CPU (schedstat), and when that was over a quarter of the time, and
 * over 200 us, it serves at normal priority for the next second. Only
 * where a thread may go back to normal priority (root, or an RLIMIT_NICE
 * allowing nice 0); CJFS_RING_NORMAL=1 keeps normal priority throughout.
 */
static __thread bool ring_idle, ring_boosted;
static __thread int sched_fd = -1; /* open where SCHED_IDLE is used */
static __thread unsigned int batches;
static __thread uint64_t chk_ns, chk_delay, normal_until;

#define RING_CHECK_EVERY 8
#define RING_STARVED_NS 200000
#define RING_NORMAL_HOLD_NS 1000000000ULL

static bool ring_set_idle(bool idle)
{
	struct sched_param sp = { 0 };

	return pthread_setschedparam(pthread_self(), idle ? SCHED_IDLE : SCHED_OTHER, &sp) == 0;
}

static bool ring_may_idle(void)
{
	struct rlimit rl;

	if (getenv("CJFS_RING_NORMAL"))
		return false;
	/* Leaving SCHED_IDLE takes CAP_SYS_NICE or an RLIMIT_NICE of 20 (nice 0). */
	return geteuid() == 0 || (getrlimit(RLIMIT_NICE, &rl) == 0 && rl.rlim_cur >= 20);
}

void fs_uring_heavy(void)
{
	if (ring_idle && !ring_boosted)
		ring_boosted = ring_set_idle(false);
}

/* How long this thread has waited for a CPU in all (ns); false if unknown. */
static bool ring_waited(uint64_t *ret)
{
	unsigned long long run, delay;
	char buf[96];
	ssize_t n = pread(sched_fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return false;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &run, &delay) != 2)
		return false;
	*ret = delay;
	return true;
}

/* Serve as SCHED_IDLE from now on, measuring waits from here. */
static void ring_go_idle(void)
{
	if (!ring_waited(&chk_delay))
		return;
	chk_ns = util_mono_ns();
	ring_idle = ring_set_idle(true);
}

/* After a batch of requests: back to SCHED_IDLE, or to normal priority if starved. */
static void ring_after_batch(void)
{
	uint64_t now, dt, dd, delay;

	/* Back to SCHED_IDLE; should that fail, it serves at normal priority. */
	if (ring_boosted) {
		ring_idle = ring_set_idle(true);
		ring_boosted = false;
	}
	if (sched_fd < 0 || ++batches < RING_CHECK_EVERY)
		return;
	batches = 0;
	now = util_mono_ns();
	if (!ring_idle) {
		if (now >= normal_until)
			ring_go_idle();
		return;
	}
	if (!ring_waited(&delay))
		return;
	dt = now - chk_ns;
	dd = delay - chk_delay;
	chk_ns = now;
	chk_delay = delay;
	if (dd > RING_STARVED_NS && dd * 4 > dt) {
		log_debug("ring thread on CPU %d waited %llu us for the CPU in %llu us: normal priority for a second",
			  sched_getcpu(), (unsigned long long)dd / 1000, (unsigned long long)dt / 1000);
		ring_idle = !ring_set_idle(false);
		normal_until = now + RING_NORMAL_HOLD_NS;
	}
}

/* The number of per-CPU queues the kernel makes: one per possible CPU. */
static unsigned int possible_cpus(void)
{
	FILE *f = fopen("/sys/devices/system/cpu/possible", "re");
	unsigned int a, b, n = 0;
	int c;

	if (!f)
		return 0;
	for (;;) {
		if (fscanf(f, "%u", &a) != 1)
			break;
		b = a;
		c = fgetc(f);
		if (c == '-') {
			if (fscanf(f, "%u", &b) != 1)
				break;
			c = fgetc(f);
		}
		if (b < a)
			break;
		n += b - a + 1;
		if (c != ',')
			break;
	}
	fclose(f);
	return n;
}

static bool uring_enabled(void)
{
	const char *off = getenv("CJFS_NO_URING");
	FILE *f;
	int c;

	if (off && *off && strcmp(off, "0") != 0)
		return false;
	f = fopen("/sys/module/fuse/parameters/enable_uring", "re");
	if (!f)
		return false;
	c = fgetc(f);
	fclose(f);
	return c == 'Y' || c == '1';
}

static struct io_uring_sqe *cmd_sqe(struct fs_ring *r, uint32_t op, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
	struct kfuse_uring_cmd_req req = { .commit_id = commit_id, .qid = (uint16_t)r->qid };

	if (!sqe)
		return NULL;
	memset(sqe, 0, 2 * sizeof(*sqe)); /* an SQE128 slot */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fuse_session_fd(r->fs->se);
	sqe->cmd_op = op;
	sqe->user_data = TAG_CMD;
	memcpy(sqe->cmd, &req, sizeof(req));
	return sqe;
}

/* Register the entry; with no buffer, an entry the kernel refuses, which turns the ring off. */
static int ring_register(struct fs_ring *r)
{
	struct io_uring_sqe *sqe = cmd_sqe(r, KFUSE_IO_URING_CMD_REGISTER, 0);

	if (!sqe)
		return -EBUSY;
	r->iov[0] = (struct iovec){ &r->hdr, sizeof(r->hdr) };
	r->iov[1] = (struct iovec){ r->payload, r->cap };
	sqe->addr = (uintptr_t)r->iov;
	sqe->len = 2;
	return 0;
}

/* Serve the request the kernel put in the entry, and queue its reply. */
static void ring_serve(struct fs_ring *r)
{
	struct kfuse_in_header in;
	uint32_t psz = r->hdr.ent.payload_sz;
	struct io_uring_sqe *sqe;

	memcpy(&in, r->hdr.in_out, sizeof(in));
	r->unique = r->hdr.ent.commit_id;
	r->replied = false;
	if (in.len >= sizeof(in) + psz && in.len - sizeof(in) - psz <= sizeof(r->hdr.op_in) &&
	    psz <= r->cap) {
		size_t opsz = in.len - sizeof(in) - psz;
		char *start = r->payload - opsz - sizeof(in);
		struct fuse_buf buf = { .size = in.len, .mem = start };

		memcpy(start, &in, sizeof(in));
		memcpy(start + sizeof(in), r->hdr.op_in, opsz);
		serving = r;
		fuse_session_process_buf(r->fs->se, &buf);
		serving = NULL;
	}
	if (!r->replied) {
		struct kfuse_out_header out = { sizeof(out), -EIO, r->unique };

		log_warn("FUSE request %u (%u bytes) over io_uring went unanswered: failed with EIO",
			 in.opcode, in.len);
		memcpy(r->hdr.in_out, &out, sizeof(out));
		r->hdr.ent.payload_sz = 0;
	}
	sqe = cmd_sqe(r, KFUSE_IO_URING_CMD_COMMIT_AND_FETCH, r->unique);
	if (!sqe)
		log_warn("io_uring submission queue full: a FUSE reply is lost");
}

ssize_t fs_uring_reply(const struct iovec *iov, int count)
{
	struct fs_ring *r = serving;
	struct kfuse_out_header out;
	size_t n = 0;

	if (!r || r->replied || count < 1 || iov[0].iov_len != sizeof(out))
		return -1;
	memcpy(&out, iov[0].iov_base, sizeof(out));
	if (out.unique != r->unique)
		return -1; /* not this request's reply: a notification */
	for (int i = 1; i < count; i++) {
		if (iov[i].iov_len > r->cap - n) {
			out.error = -EIO;
			n = 0;
			break;
		}
		if (iov[i].iov_base != r->payload + n)
			memmove(r->payload + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	out.len = (uint32_t)(sizeof(out) + n);
	memcpy(r->hdr.in_out, &out, sizeof(out));
	r->hdr.ent.payload_sz = (uint32_t)n;
	r->replied = true;
	return (ssize_t)out.len;
}

void *fs_uring_buf(size_t size)
{
	struct fs_ring *r = serving;

	return r && size <= r->cap ? r->payload : NULL;
}

/* Wait until INIT decided; false if the ring is not to be used. */
static bool ring_wait_go(struct fs *fs, bool set_up)
{
	int state;

	pthread_mutex_lock(&fs->ur.lock);
	if (set_up)
		fs->ur.set_up++;
	else
		fs->ur.failed++;
	pthread_cond_broadcast(&fs->ur.cond);
	while (fs->ur.state == RING_WAIT)
		pthread_cond_wait(&fs->ur.cond, &fs->ur.lock);
	state = fs->ur.state;
	pthread_mutex_unlock(&fs->ur.lock);
	return set_up && state == RING_GO;
}

static void *ring_main(void *arg)
{
	struct fs_ring *r = arg;
	struct fs *fs = r->fs;
	struct io_uring_params p = { .flags = IORING_SETUP_SQE128 | IORING_SETUP_SINGLE_ISSUER |
					      IORING_SETUP_DEFER_TASKRUN };
	struct io_uring_cqe *cqe;
	bool registered = false;
	char name[16];
	cpu_set_t cpus;
	int e;

	snprintf(name, sizeof(name), "cjfs-ring%u", r->qid % 10000);
	(void)pthread_setname_np(pthread_self(), name);
	/* Serve on the CPU whose requests this queue gets; where not allowed, anywhere. */
	CPU_ZERO(&cpus);
	CPU_SET(r->qid, &cpus);
	(void)pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	if (ring_may_idle())
		sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
	if (sched_fd >= 0)
		ring_go_idle();
	e = io_uring_queue_init_params(4, &r->ring, &p);
	if (e == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_SQE128;
		e = io_uring_queue_init_params(4, &r->ring, &p);
	}
	r->have_ring = e == 0;
	if (!ring_wait_go(fs, r->have_ring))
		goto out;

	r->cap = fs->ur.payload;
	r->mem = mmap(NULL, RING_HEAD_ROOM + r->cap, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (r->mem == MAP_FAILED) {
		r->mem = NULL;
		r->cap = 0;
	} else {
		r->payload = r->mem + RING_HEAD_ROOM;
	}
	if (ring_register(r) < 0)
		goto out;
	{
		struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);

		if (sqe) {
			io_uring_prep_poll_add(sqe, fs->ur.stop_fd, POLLIN);
			sqe->user_data = TAG_STOP;
		}
	}
	for (;;) {
		e = io_uring_submit_and_wait(&r->ring, 1);
		/* EINTR: stopped and continued (SIGSTOP cannot be blocked). */
		if (e < 0 && e != -EINTR) {
			log_warn("io_uring: %s; this thread stops serving FUSE requests",
				 strerror(-e));
			break;
		}
		while (io_uring_peek_cqe(&r->ring, &cqe) == 0) {
			uint64_t tag = cqe->user_data;
			int res = cqe->res;

			io_uring_cqe_seen(&r->ring, cqe);
			if (tag == TAG_STOP)
				goto out;
			if (res < 0) {
				/* ENOTCONN: the file system was unmounted. */
				if (!registered && res != -ENOTCONN && r == fs->ur.rings)
					log_info("FUSE over io_uring unavailable (%s): requests go "
						 "through /dev/fuse",
						 strerror(-res));
				else if (registered && res != -ENOTCONN && res != -ECANCELED)
					log_warn("FUSE over io_uring: %s", strerror(-res));
				goto out;
			}
			registered = true;
			ring_serve(r);
		}
		/* Before the reply goes (the next submission): see ring_idle. */
		ring_after_batch();
	}
out:
	if (registered)
		(void)io_uring_submit(&r->ring); /* the last reply, if one is queued */
	if (r->have_ring)
		io_uring_queue_exit(&r->ring);
	if (r->mem)
		munmap(r->mem, RING_HEAD_ROOM + r->cap);
	if (sched_fd >= 0)
		close(sched_fd);
	return NULL;
}

void fs_uring_start(struct fs *fs)
{
	unsigned int nq = possible_cpus(), started = 0;
	sigset_t all, old;

	fs->ur.stop_fd = -1;
	if (!nq || !uring_enabled())
		return;
	fs->ur.stop_fd = eventfd(0, EFD_CLOEXEC);
	util_set_heavy_hook(fs_uring_heavy);
	fs->ur.rings = calloc((size_t)nq * RING_THREADS_PER_QUEUE, sizeof(*fs->ur.rings));
	if (fs->ur.stop_fd < 0 || !fs->ur.rings)
		goto fail;
	pthread_mutex_init(&fs->ur.lock, NULL);
	pthread_cond_init(&fs->ur.cond, NULL);
	fs->ur.state = RING_WAIT;
	/* Signals are for libfuse's loop (SIGTERM ends it): the threads inherit a full mask. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	for (unsigned int i = 0; i < nq * RING_THREADS_PER_QUEUE; i++) {
		struct fs_ring *r = &fs->ur.rings[i];

		r->fs = fs;
		r->qid = i % nq;
		if (pthread_create(&r->thread, NULL, ring_main, r) != 0)
			break;
		started++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	fs->ur.n = started;
	pthread_mutex_lock(&fs->ur.lock);
	while (fs->ur.set_up + fs->ur.failed < started)
		pthread_cond_wait(&fs->ur.cond, &fs->ur.lock);
	fs->ur.offer = started == nq * RING_THREADS_PER_QUEUE && fs->ur.failed == 0;
	pthread_mutex_unlock(&fs->ur.lock);
	if (!fs->ur.offer)
		log_info("cannot set up io_uring for FUSE requests: they go through /dev/fuse");
	return;
fail:
	free(fs->ur.rings);
	fs->ur.rings = NULL;
	if (fs->ur.stop_fd >= 0)
		util_close(fs->ur.stop_fd);
	fs->ur.stop_fd = -1;
}

bool fs_uring_offer(struct fs *fs)
{
	return fs->ur.offer;
}

static void set_state(struct fs *fs, int state, size_t payload)
{
	if (!fs->ur.rings)
		return;
	pthread_mutex_lock(&fs->ur.lock);
	if (fs->ur.state == RING_WAIT) {
		fs->ur.payload = payload;
		fs->ur.state = state;
		pthread_cond_broadcast(&fs->ur.cond);
	}
	pthread_mutex_unlock(&fs->ur.lock);
}

void fs_uring_negotiated(struct fs *fs, size_t payload)
{
	set_state(fs, payload ? RING_GO : RING_STOP, payload);
	if (payload)
		log_debug("FUSE requests over io_uring: %u threads, %zu-byte payloads", fs->ur.n,
			  payload);
}

void fs_uring_stop(struct fs *fs)
{
	uint64_t one = 1;

	if (!fs->ur.rings)
		return;
	set_state(fs, RING_STOP, 0);
	if (write(fs->ur.stop_fd, &one, sizeof(one)) < 0)
		log_warn("cannot stop the io_uring threads: %s", strerror(errno));
	for (unsigned int i = 0; i < fs->ur.n; i++)
		pthread_join(fs->ur.rings[i].thread, NULL);
	free(fs->ur.rings);
	fs->ur.rings = NULL;
	util_close(fs->ur.stop_fd);
	fs->ur.stop_fd = -1;
	pthread_mutex_destroy(&fs->ur.lock);
	pthread_cond_destroy(&fs->ur.cond);
}
