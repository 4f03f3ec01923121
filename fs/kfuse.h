/* SPDX-License-Identifier: MIT */
/*
 * The parts of the kernel's FUSE ABI (include/uapi/linux/fuse.h, protocol
 * 7.42) that cjfs speaks itself, beside libfuse 3.14: passthrough and the
 * io_uring transport. Written out because the installed header may predate
 * them.
 */
#ifndef CJFS_FS_KFUSE_H
#define CJFS_FS_KFUSE_H

#include <stdint.h>
#include <sys/ioctl.h>

struct kfuse_in_header {
	uint32_t len;
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	uint32_t uid, gid, pid;
	uint16_t total_extlen;
	uint16_t padding;
};

struct kfuse_init_in {
	uint32_t major, minor, max_readahead, flags, flags2;
};

struct kfuse_out_header {
	uint32_t len;
	int32_t error;
	uint64_t unique;
};

struct kfuse_open_out {
	uint64_t fh;
	uint32_t open_flags;
	int32_t backing_id;
};

struct kfuse_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};

struct kfuse_uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id; /* the request's unique */
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

struct kfuse_uring_req_header {
	char in_out[128]; /* fuse_in_header, then fuse_out_header */
	char op_in[128];  /* the operation's own header */
	struct kfuse_uring_ent_in_out ent;
};

struct kfuse_uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

#define KFUSE_IO_URING_CMD_REGISTER 1
#define KFUSE_IO_URING_CMD_COMMIT_AND_FETCH 2

#define KFUSE_INIT 26
#define KFUSE_INIT_EXT (1u << 30)
#define KFUSE_WRITEBACK_CACHE (1u << 16)
#define KFUSE_MAX_PAGES (1u << 22)
#define KFUSE_PASSTHROUGH2 (1u << 5)   /* FUSE_PASSTHROUGH (1 << 37), in flags2 */
#define KFUSE_OVER_IO_URING2 (1u << 9) /* FUSE_OVER_IO_URING (1 << 41), in flags2 */
#define KFOPEN_PASSTHROUGH (1u << 7)
#define KFUSE_DEV_IOC_BACKING_OPEN _IOW(229, 1, struct kfuse_backing_map)
#define KFUSE_DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)

/* Offsets in struct fuse_init_out. */
#define INIT_OUT_FLAGS 12
#define INIT_OUT_MAX_WRITE 20
#define INIT_OUT_MAX_PAGES 28
#define INIT_OUT_FLAGS2 32
#define INIT_OUT_MAX_STACK_DEPTH 36
#define INIT_OUT_MIN_SIZE 40

#endif
