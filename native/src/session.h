/*
 * session.h - what the files of the FUSE transport share (not the rest of
 * the addon: binding.c sees only session_register, in native.h).
 *
 *   session.c   the JS-facing lifecycle: sessionStart, sessionStop (the
 *               ordered shutdown), setRegion, pendingRequests, the export
 *               table, and the one state struct `g`.
 *   slots.c     request slots: ids carrying a generation, interrupts
 *               recorded per slot and handed to JS after each request.
 *   dispatch.c  libfuse's low-level callbacks: each request gets a slot and
 *               goes to its JS handler with plain numbers and strings.
 *   loop.c      the session loop: uv_poll on /dev/fuse, batches, adaptive
 *               polling, the end of the session.
 *   init.c      the FUSE_INIT reply, patched for what libfuse 3.14 cannot
 *               ask for (FUSE_DIRECT_IO_ALLOW_MMAP).
 *   reply.c     the reply functions JS answers with (replyErr, ...).
 *   notify.c    kernel notifications, written by a helper thread.
 *
 * Everything here runs on the JS thread except notify.c's thread, which
 * touches only the notice queue (under nmu) and the session pointer.
 */
#ifndef PMEMFS_SESSION_H
#define PMEMFS_SESSION_H

#include "native.h"

#include <pthread.h>
#include <sys/types.h>
#include <uv.h>
#include <fuse_lowlevel.h>

/* scratch layout (indices into a Float64Array) */
enum {
	SCR_CTX = 0,		/* uid, gid, pid, umask of the request being dispatched */
	SCR_ATTR = 8,		/* ino mode nlink uid gid rdev size blksize blocks
				   atime.s atime.ns mtime.s mtime.ns ctime.s ctime.ns
				   generation attr_timeout entry_timeout
				   node_id (0: no entry; st_ino stays the inode number) */
	SCR_SETATTR = 32,	/* mode uid gid size atime.s atime.ns mtime.s mtime.ns */
	SCR_STATFS = 48,	/* bsize frsize blocks bfree bavail files ffree favail namemax */
	SCR_SEGS = 64,		/* read reply: (region byte offset or -1 for zeroes, length) pairs */
	SCR_LEN = 1024,
};
#define MAX_SEGS ((SCR_LEN - SCR_SEGS) / 2)

#define RECV_SIZE (4u << 20)	/* above libfuse 3.14's session bufsize (1 MiB of pages + a header) */
#define ZERO_SIZE (1u << 20)
#define POLL_BATCH 256
#define MAX_WRITE (1u << 20)

/* JS handlers, by the name they have in the handlers object (op_names). */
enum op {
	OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR,
	OP_UNLINK, OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE,
	OP_FLUSH, OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR,
	OP_STATFS, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_CREATE,
	OP_IOCTL, OP_FALLOCATE, OP_LSEEK, OP_COPY_FILE_RANGE, OP_ENDED, OP_INTERRUPT, OP_INIT, OP_COUNT
};
extern const char *const op_names[OP_COUNT];

/*
 * A slot id, as JS sees it: index | generation << SLOT_INDEX_BITS, below
 * 2^52 so a double holds it exactly. The generation changes every time the
 * slot takes a request, so an id names one request only.
 */
typedef int64_t slot_id;
#define SLOT_INDEX_BITS 20
#define SLOT_MAX (1 << SLOT_INDEX_BITS)

/* One request waiting for its answer. */
struct slot {
	fuse_req_t req;		/* NULL when free */
	uint32_t gen;		/* generation of the current (or last) request */
	bool interrupted;	/* an interrupt was recorded (delivered at most once) */
	int next_free;
	/* readdir: the reply buffer being filled */
	char *dir;
	size_t dir_len, dir_max;
	/* ioctl: output size and the input (an _IOWR output starts as its input) */
	size_t out_size;
	void *in_copy;
	size_t in_size;
};

struct notice;

/* The session's state: one session per process. */
struct session_state {
	napi_env env;
	struct fuse_session *se;
	uv_poll_t poll;
	bool polling, ended;
	struct fuse_buf buf;
	napi_ref handlers[OP_COUNT];
	napi_ref resource;
	napi_async_context actx;
	/* slots.c */
	struct slot *slots;
	int nslots, free_head;
	slot_id *intr;		/* interrupted slots not yet told to JS */
	int nintr, intr_cap;
	double scratch[SCR_LEN];
	char *zero;
	const char *region;	/* read-only mapping of the whole region file */
	size_t region_size;
	/* notify.c */
	pthread_t nthread;
	bool nthread_up, nstop;
	pthread_mutex_t nmu;
	pthread_cond_t ncv;
	struct notice *nhead, *ntail;
	uint64_t spin_ns;	/* adaptive polling window after the queue runs dry */
};
extern struct session_state g;

/* slots.c */
slot_id slot_new(fuse_req_t req);
struct slot *slot_at(slot_id id);
fuse_req_t slot_take(slot_id id);
void slot_free(slot_id id);
slot_id arg_slot(napi_env env, napi_value v, const char *fn);
void slots_deliver_interrupts(void);
void slots_answer_all(int err);
int slots_pending(void);

/* dispatch.c */
extern const struct fuse_lowlevel_ops dispatch_ops;
void call_js(enum op op, slot_id slot, size_t argc, napi_value *argv);
napi_value num(double d);
napi_value str(const char *s);

/* loop.c */
void loop_start(int fd);
void loop_stop(void);

/* init.c */
bool init_is_request(const struct fuse_buf *b);
const char *init_process(void);
void init_report(void);

/* reply.c */
bool reply_register(napi_env env, napi_value exports);

/* notify.c */
bool notify_register(napi_env env, napi_value exports);
void notify_drop_queued(void);
void notify_join(void);

#endif
