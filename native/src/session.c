/*
 * session.c - the FUSE transport: a libfuse3 low-level session on the Node
 * event loop.
 *
 * The session's /dev/fuse fd is made non-blocking and watched with uv_poll.
 * On each wakeup the JS thread receives and processes requests until the
 * device says EAGAIN (at most POLL_BATCH per wakeup, so timers still run).
 * Every request gets a slot; the JS handler for its opcode is called with
 * the slot number and the request's arguments as plain numbers and strings,
 * and answers through a reply function (replyErr, replyEntry, ...) now or
 * later: a request that must wait (busy=wait, a lease break) keeps its slot
 * and blocks nothing else. Nothing crosses a thread on the request path.
 *
 * Shapes shared with JS without allocating per request:
 *   - `scratch`, a Float64Array over static memory: the caller's context
 *     (filled before each handler call), attributes for entry/attr replies,
 *     setattr's input, statfs's answer, and the segment list of a read
 *     reply. Offsets are the SCR_* constants below; index.d.ts documents
 *     the same layout.
 *   - `recvBuffer`, a Buffer over the one receive buffer: a write handler
 *     gets the offset of its data in it (valid until the handler returns).
 *   - reads are answered with an iovec pointing into a read-only mapping of
 *     the region (and a static zero page for holes): no copy in JS.
 *
 * Kernel notifications (fuse_lowlevel_notify_inval_*) are written by a
 * helper thread: the kernel may need an answer from us (a page lock held by
 * a pending read) before a notification returns, so the JS thread must
 * never wait on one.
 *
 * Semantics follow libfuse's fuse_lowlevel.h (3.14) and the kernel's
 * fs/fuse/ (node ids, lookup counts, FOPEN_DIRECT_IO, readdirplus).
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
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

enum op {
	OP_LOOKUP, OP_FORGET, OP_GETATTR, OP_SETATTR, OP_READLINK, OP_MKNOD, OP_MKDIR,
	OP_UNLINK, OP_RMDIR, OP_SYMLINK, OP_RENAME, OP_LINK, OP_OPEN, OP_READ, OP_WRITE,
	OP_FLUSH, OP_RELEASE, OP_FSYNC, OP_OPENDIR, OP_READDIR, OP_RELEASEDIR, OP_FSYNCDIR,
	OP_STATFS, OP_SETXATTR, OP_GETXATTR, OP_LISTXATTR, OP_REMOVEXATTR, OP_CREATE,
	OP_IOCTL, OP_FALLOCATE, OP_LSEEK, OP_COPY_FILE_RANGE, OP_ENDED, OP_COUNT
};

static const char *const op_names[OP_COUNT] = {
	"lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir",
	"unlink", "rmdir", "symlink", "rename", "link", "open", "read", "write",
	"flush", "release", "fsync", "opendir", "readdir", "releasedir", "fsyncdir",
	"statfs", "setxattr", "getxattr", "listxattr", "removexattr", "create",
	"ioctl", "fallocate", "lseek", "copyFileRange", "ended",
};

/* One request waiting for its answer. */
struct slot {
	fuse_req_t req;		/* NULL when free */
	int next_free;
	/* readdir: the reply buffer being filled */
	char *dir;
	size_t dir_len, dir_max;
	/* ioctl: output size and the input (an _IOWR output starts as its input) */
	size_t out_size;
	void *in_copy;
	size_t in_size;
};

struct notice {
	struct notice *next;
	fuse_ino_t ino;		/* inode (inval_inode) or parent (inval_entry) */
	off_t off, len;
	char *name;		/* NULL: inval_inode */
};

static struct {
	napi_env env;
	struct fuse_session *se;
	uv_poll_t poll;
	bool polling, ended;
	struct fuse_buf buf;
	napi_ref handlers[OP_COUNT];
	napi_ref resource;
	napi_async_context actx;
	struct slot *slots;
	int nslots, free_head;
	double scratch[SCR_LEN];
	char *zero;
	const char *region;	/* read-only mapping of the whole region file */
	size_t region_size;
	/* notification thread */
	pthread_t nthread;
	bool nthread_up, nstop;
	pthread_mutex_t nmu;
	pthread_cond_t ncv;
	struct notice *nhead, *ntail;
	uint64_t spin_ns;	/* adaptive polling window after the queue runs dry */
} g = { .free_head = -1, .nmu = PTHREAD_MUTEX_INITIALIZER, .ncv = PTHREAD_COND_INITIALIZER };

/* ------------------------------------------------------------------ slots */

static int slot_new(fuse_req_t req)
{
	if (g.free_head < 0) {
		int n = g.nslots ? g.nslots * 2 : 64;
		struct slot *s = realloc(g.slots, (size_t)n * sizeof *s);
		if (!s)
			return -1;
		memset(s + g.nslots, 0, (size_t)(n - g.nslots) * sizeof *s);
		for (int i = n - 1; i >= g.nslots; i--) {
			s[i].next_free = g.free_head;
			g.free_head = i;
		}
		g.slots = s;
		g.nslots = n;
	}
	int i = g.free_head;
	g.free_head = g.slots[i].next_free;
	g.slots[i].req = req;
	return i;
}

static void slot_free(int i)
{
	struct slot *s = &g.slots[i];
	free(s->dir);
	free(s->in_copy);
	memset(s, 0, sizeof *s);
	s->next_free = g.free_head;
	g.free_head = i;
}

/* The pending slot named by a JS argument; throws (and returns -1) otherwise. */
static int arg_slot(napi_env env, napi_value v, const char *fn)
{
	int32_t i;
	if (napi_get_value_int32(env, v, &i) != napi_ok || i < 0 || i >= g.nslots || !g.slots[i].req) {
		char msg[128];
		snprintf(msg, sizeof msg, "%s: slot %d is not a pending request (answered twice?)", fn, (int)i);
		napi_throw_error(env, "ERR_FUSE_SLOT", msg);
		return -1;
	}
	return i;
}

/* Take the request out of slot i: the slot is free again. */
static fuse_req_t slot_take(int i)
{
	fuse_req_t req = g.slots[i].req;
	slot_free(i);
	return req;
}

/* --------------------------------------------------------------- dispatch */

static napi_value num(double d)
{
	napi_value v;
	napi_create_double(g.env, d, &v);
	return v;
}

static napi_value str(const char *s)
{
	napi_value v;
	napi_create_string_utf8(g.env, s, NAPI_AUTO_LENGTH, &v);
	return v;
}

static napi_value buffer_copy(const void *p, size_t n)
{
	napi_value v;
	void *data;
	if (napi_create_buffer_copy(g.env, n, p, &data, &v) != napi_ok)
		napi_get_null(g.env, &v);
	return v;
}

/*
 * Call the JS handler for `op` with argv. A throw is cleared and handed to
 * process 'uncaughtException' (the daemon logs it and keeps serving); the
 * request, if still pending, is answered EIO.
 */
static void call_js(enum op op, int slot, size_t argc, napi_value *argv)
{
	napi_env env = g.env;
	napi_value fn, recv, result;
	bool pending = false;

	if (napi_get_reference_value(env, g.handlers[op], &fn) != napi_ok || !fn) {
		if (slot >= 0)
			fuse_reply_err(slot_take(slot), ENOSYS);
		return;
	}
	napi_get_undefined(env, &recv);
	napi_call_function(env, recv, fn, argc, argv, &result);
	napi_is_exception_pending(env, &pending);
	if (pending) {
		napi_value exc;
		napi_get_and_clear_last_exception(env, &exc);
		if (slot >= 0 && slot < g.nslots && g.slots[slot].req)
			fuse_reply_err(slot_take(slot), EIO);
		napi_fatal_exception(env, exc);
	}
}

static void set_ctx(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	g.scratch[SCR_CTX + 0] = c->uid;
	g.scratch[SCR_CTX + 1] = c->gid;
	g.scratch[SCR_CTX + 2] = c->pid;
	g.scratch[SCR_CTX + 3] = c->umask;
}

/* A request-carrying dispatch: slot, then the given values. */
#define DISPATCH(op, req, ...)                                                   \
	do {                                                                     \
		napi_handle_scope hs;                                            \
		napi_open_handle_scope(g.env, &hs);                              \
		int s_ = slot_new(req);                                          \
		if (s_ < 0) {                                                    \
			fuse_reply_err(req, ENOMEM);                             \
		} else {                                                         \
			set_ctx(req);                                            \
			napi_value a_[] = { num(s_), __VA_ARGS__ };              \
			call_js(op, s_, sizeof a_ / sizeof a_[0], a_);           \
		}                                                                \
		napi_close_handle_scope(g.env, hs);                              \
	} while (0)

static double fh_of(struct fuse_file_info *fi)
{
	return fi ? (double)fi->fh : -1;
}

/* ------------------------------------------------------------------- ops */

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->max_write < MAX_WRITE)
		conn->max_write = MAX_WRITE;
	conn->max_readahead = MAX_WRITE;
	conn->time_gran = 1;
	/* Kernel-side opens with O_TRUNC arrive as SETATTR(size); no splice; readdirplus always. */
	conn->want &= ~(FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			FUSE_CAP_SPLICE_MOVE | FUSE_CAP_WRITEBACK_CACHE | FUSE_CAP_READDIRPLUS_AUTO);
	conn->want |= conn->capable & (FUSE_CAP_READDIRPLUS | FUSE_CAP_AUTO_INVAL_DATA |
				       FUSE_CAP_PARALLEL_DIROPS | FUSE_CAP_IOCTL_DIR | FUSE_CAP_ASYNC_DIO);
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	DISPATCH(OP_LOOKUP, req, num(parent), str(name));
}

static void forget_one(fuse_ino_t ino, uint64_t n)
{
	napi_handle_scope hs;
	napi_open_handle_scope(g.env, &hs);
	napi_value a[] = { num(ino), num((double)n) };
	call_js(OP_FORGET, -1, 2, a);
	napi_close_handle_scope(g.env, hs);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	forget_one(ino, nlookup);
	fuse_reply_none(req);
}

static void ll_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		forget_one(f[i].ino, f[i].nlookup);
	fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(OP_GETATTR, req, num(ino), num(fh_of(fi)));
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	double *in = g.scratch + SCR_SETATTR;
	in[0] = attr->st_mode;
	in[1] = attr->st_uid;
	in[2] = attr->st_gid;
	in[3] = (double)attr->st_size;
	in[4] = (double)attr->st_atim.tv_sec;
	in[5] = (double)attr->st_atim.tv_nsec;
	in[6] = (double)attr->st_mtim.tv_sec;
	in[7] = (double)attr->st_mtim.tv_nsec;
	DISPATCH(OP_SETATTR, req, num(ino), num(fh_of(fi)), num(to_set));
}

static void ll_readlink(fuse_req_t req, fuse_ino_t ino)
{
	DISPATCH(OP_READLINK, req, num(ino));
}

static void ll_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	DISPATCH(OP_MKNOD, req, num(parent), str(name), num(mode), num((double)rdev));
}

static void ll_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	DISPATCH(OP_MKDIR, req, num(parent), str(name), num(mode));
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	DISPATCH(OP_UNLINK, req, num(parent), str(name));
}

static void ll_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	DISPATCH(OP_RMDIR, req, num(parent), str(name));
}

static void ll_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	DISPATCH(OP_SYMLINK, req, str(link), num(parent), str(name));
}

static void ll_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	DISPATCH(OP_RENAME, req, num(parent), str(name), num(newparent), str(newname), num(flags));
}

static void ll_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	DISPATCH(OP_LINK, req, num(ino), num(newparent), str(newname));
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(OP_OPEN, req, num(ino), num(fi->flags));
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, struct fuse_file_info *fi)
{
	DISPATCH(OP_CREATE, req, num(parent), str(name), num(mode), num(fi->flags));
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	DISPATCH(OP_READ, req, num(ino), num(fh_of(fi)), num((double)size), num((double)off));
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	const char *base = g.buf.mem;
	if (buf < base || buf + size > base + RECV_SIZE) {
		/* Not in the receive buffer (never expected without splice). */
		fuse_reply_err(req, EIO);
		return;
	}
	DISPATCH(OP_WRITE, req, num(ino), num(fh_of(fi)), num((double)(buf - base)), num((double)size),
		 num((double)off));
}

static void ll_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(OP_FLUSH, req, num(ino), num(fh_of(fi)));
}

static void ll_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(OP_RELEASE, req, num(ino), num(fh_of(fi)), num(fi->flags));
}

static void ll_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	DISPATCH(OP_FSYNC, req, num(ino), num(datasync), num(fh_of(fi)));
}

static void ll_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(OP_OPENDIR, req, num(ino), num(fi->flags));
}

static void readdir_common(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi,
			   bool plus)
{
	napi_handle_scope hs;
	napi_open_handle_scope(g.env, &hs);
	int s = slot_new(req);
	char *dir = s < 0 ? NULL : malloc(size ? size : 1);
	if (!dir) {
		if (s >= 0)
			slot_free(s);
		fuse_reply_err(req, ENOMEM);
	} else {
		g.slots[s].dir = dir;
		g.slots[s].dir_max = size;
		set_ctx(req);
		napi_value plusv;
		napi_get_boolean(g.env, plus, &plusv);
		napi_value a[] = { num(s), num(ino), num(fh_of(fi)), num((double)size), num((double)off), plusv };
		call_js(OP_READDIR, s, 6, a);
	}
	napi_close_handle_scope(g.env, hs);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, false);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	readdir_common(req, ino, size, off, fi, true);
}

static void ll_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	DISPATCH(OP_RELEASEDIR, req, num(ino), num(fh_of(fi)));
}

static void ll_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	DISPATCH(OP_FSYNCDIR, req, num(ino), num(datasync), num(fh_of(fi)));
}

static void ll_statfs(fuse_req_t req, fuse_ino_t ino)
{
	DISPATCH(OP_STATFS, req, num(ino));
}

static void ll_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value, size_t size, int flags)
{
	DISPATCH(OP_SETXATTR, req, num(ino), str(name), buffer_copy(value, size), num(flags));
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	DISPATCH(OP_GETXATTR, req, num(ino), str(name), num((double)size));
}

static void ll_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	DISPATCH(OP_LISTXATTR, req, num(ino), num((double)size));
}

static void ll_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	DISPATCH(OP_REMOVEXATTR, req, num(ino), str(name));
}

/*
 * Restricted ioctls only: the kernel derives direction and size from the
 * number (_IOC_DIR/_IOC_SIZE) and hands us that many input bytes.
 */
static void ll_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
		     unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	(void)arg;
	if (flags & FUSE_IOCTL_COMPAT) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	napi_handle_scope hs;
	napi_open_handle_scope(g.env, &hs);
	int s = slot_new(req);
	if (s < 0) {
		fuse_reply_err(req, ENOMEM);
	} else {
		g.slots[s].out_size = out_bufsz;
		if (in_bufsz && out_bufsz) {
			g.slots[s].in_copy = malloc(in_bufsz);
			if (g.slots[s].in_copy) {
				memcpy(g.slots[s].in_copy, in_buf, in_bufsz);
				g.slots[s].in_size = in_bufsz;
			}
		}
		set_ctx(req);
		napi_value input;
		if (in_bufsz)
			input = buffer_copy(in_buf, in_bufsz);
		else
			napi_get_null(g.env, &input);
		napi_value a[] = { num(s), num(ino), num(cmd), num(fh_of(fi)), num(flags), input, num((double)out_bufsz) };
		call_js(OP_IOCTL, s, 7, a);
	}
	napi_close_handle_scope(g.env, hs);
}

static void ll_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	DISPATCH(OP_FALLOCATE, req, num(ino), num(fh_of(fi)), num(mode), num((double)offset), num((double)length));
}

static void ll_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	DISPATCH(OP_LSEEK, req, num(ino), num(fh_of(fi)), num((double)off), num(whence));
}

static void ll_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in, struct fuse_file_info *fi_in,
			       fuse_ino_t ino_out, off_t off_out, struct fuse_file_info *fi_out, size_t len,
			       int flags)
{
	DISPATCH(OP_COPY_FILE_RANGE, req, num(ino_in), num(fh_of(fi_in)), num((double)off_in), num(ino_out),
		 num(fh_of(fi_out)), num((double)off_out), num((double)len), num(flags));
}

static const struct fuse_lowlevel_ops ll_ops = {
	.init = ll_init,
	.lookup = ll_lookup,
	.forget = ll_forget,
	.forget_multi = ll_forget_multi,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.readlink = ll_readlink,
	.mknod = ll_mknod,
	.mkdir = ll_mkdir,
	.unlink = ll_unlink,
	.rmdir = ll_rmdir,
	.symlink = ll_symlink,
	.rename = ll_rename,
	.link = ll_link,
	.open = ll_open,
	.read = ll_read,
	.write = ll_write,
	.flush = ll_flush,
	.release = ll_release,
	.fsync = ll_fsync,
	.opendir = ll_opendir,
	.readdir = ll_readdir,
	.readdirplus = ll_readdirplus,
	.releasedir = ll_releasedir,
	.fsyncdir = ll_fsyncdir,
	.statfs = ll_statfs,
	.setxattr = ll_setxattr,
	.getxattr = ll_getxattr,
	.listxattr = ll_listxattr,
	.removexattr = ll_removexattr,
	.create = ll_create,
	.ioctl = ll_ioctl,
	.fallocate = ll_fallocate,
	.lseek = ll_lseek,
	.copy_file_range = ll_copy_file_range,
};

/* ------------------------------------------------------------- the loop */

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + (uint64_t)t.tv_nsec;
}

static void session_ended(const char *why);

static void on_readable(uv_poll_t *h, int status, int events)
{
	(void)h;
	(void)events;
	napi_env env = g.env;
	napi_handle_scope hs;
	napi_callback_scope cs;
	napi_value resource;

	if (!g.se || g.ended)
		return;
	napi_open_handle_scope(env, &hs);
	napi_get_reference_value(env, g.resource, &resource);
	napi_open_callback_scope(env, resource, g.actx, &cs);
	const char *why = NULL;
	if (status < 0) {
		why = "poll error";
	} else {
		uint64_t spin_until = 0;
		for (int i = 0; i < POLL_BATCH; i++) {
			int res = fuse_session_receive_buf(g.se, &g.buf);
			if (res == -EINTR)
				continue;
			if (res == -EAGAIN) {
				/*
				 * Adaptive polling: a synchronous client sends its next
				 * request a few microseconds after our reply. Looking again
				 * for up to spin_us saves the sleep and wakeup in between
				 * (tens of microseconds on a VM); an idle daemon stops
				 * looking after that and sleeps in the event loop.
				 */
				uint64_t now = now_ns();
				if (!g.spin_ns)
					break;
				if (!spin_until)
					spin_until = now + g.spin_ns;
				if (now >= spin_until)
					break;
				i--;
				continue;
			}
			spin_until = 0;
			if (res <= 0) {
				why = res == 0 ? "the kernel ended the session (unmounted)" : "reading /dev/fuse failed";
				break;
			}
			fuse_session_process_buf(g.se, &g.buf);
			if (fuse_session_exited(g.se)) {
				why = "the session exited";
				break;
			}
		}
	}
	if (why)
		session_ended(why);
	napi_close_callback_scope(env, cs);
	napi_close_handle_scope(env, hs);
}

/* Stop polling; tell JS once. The session itself is destroyed by sessionStop(). */
static void session_ended(const char *why)
{
	if (g.ended)
		return;
	g.ended = true;
	if (g.polling) {
		uv_poll_stop(&g.poll);
		g.polling = false;
	}
	napi_value a[] = { str(why) };
	call_js(OP_ENDED, -1, 1, a);
}

/* ----------------------------------------------------- notification thread */

static void *notice_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&g.nmu);
	for (;;) {
		while (!g.nhead && !g.nstop)
			pthread_cond_wait(&g.ncv, &g.nmu);
		if (!g.nhead)
			break;
		struct notice *n = g.nhead;
		g.nhead = n->next;
		if (!g.nhead)
			g.ntail = NULL;
		struct fuse_session *se = g.se;
		pthread_mutex_unlock(&g.nmu);
		if (se) {
			/* -ENOENT: the kernel has no such inode or entry cached; nothing to do. */
			if (n->name)
				fuse_lowlevel_notify_inval_entry(se, n->ino, n->name, strlen(n->name));
			else
				fuse_lowlevel_notify_inval_inode(se, n->ino, n->off, n->len);
		}
		free(n->name);
		free(n);
		pthread_mutex_lock(&g.nmu);
	}
	pthread_mutex_unlock(&g.nmu);
	return NULL;
}

static bool notice_push(struct notice *n)
{
	pthread_mutex_lock(&g.nmu);
	if (!g.nthread_up) {
		g.nstop = false;
		if (pthread_create(&g.nthread, NULL, notice_main, NULL) != 0) {
			pthread_mutex_unlock(&g.nmu);
			return false;
		}
		g.nthread_up = true;
	}
	if (g.ntail)
		g.ntail->next = n;
	else
		g.nhead = n;
	g.ntail = n;
	pthread_cond_signal(&g.ncv);
	pthread_mutex_unlock(&g.nmu);
	return true;
}

static void notice_stop(void)
{
	pthread_mutex_lock(&g.nmu);
	bool up = g.nthread_up;
	g.nstop = true;
	pthread_cond_signal(&g.ncv);
	pthread_mutex_unlock(&g.nmu);
	if (up)
		pthread_join(g.nthread, NULL);
	g.nthread_up = false;
}

/* ------------------------------------------------------- JS: the session */

/*
 * sessionStart(mountpoint, options: string, handlers: object, spinUs: number)
 * `options` is a -o list for libfuse (fsname, subtype, allow_other,
 * default_permissions, ro). Mounts (through fusermount3 when not root) and
 * starts polling. @throws Error when the session cannot be made or mounted
 */
static napi_value session_start(napi_env env, napi_callback_info info)
{
	ARGS(4)
	char *mnt = NULL, *opts = NULL;
	double spin_us = 0;

	if (g.se) {
		napi_throw_error(env, "EBUSY", "sessionStart: a session is already running");
		return NULL;
	}
	if (!arg_string(env, argv[0], "sessionStart", "mountpoint", &mnt))
		return NULL;
	if (!arg_string(env, argv[1], "sessionStart", "options", &opts)) {
		free(mnt);
		return NULL;
	}
	if (!arg_int(env, argv[3], "sessionStart", "spinUs", 0, 1000000, &spin_us)) {
		free(mnt);
		free(opts);
		return NULL;
	}
	g.spin_ns = (uint64_t)spin_us * 1000u;
	g.env = env;
	for (int i = 0; i < OP_COUNT; i++) {
		napi_value fn;
		napi_valuetype ty = napi_undefined;
		if (napi_get_named_property(env, argv[2], op_names[i], &fn) == napi_ok)
			napi_typeof(env, fn, &ty);
		if (g.handlers[i]) {
			napi_delete_reference(env, g.handlers[i]);
			g.handlers[i] = NULL;
		}
		if (ty == napi_function)
			napi_create_reference(env, fn, 1, &g.handlers[i]);
	}
	napi_value res_obj, res_name;
	napi_create_object(env, &res_obj);
	napi_create_string_utf8(env, "pmemfs:fuse", NAPI_AUTO_LENGTH, &res_name);
	if (!g.resource)
		napi_create_reference(env, res_obj, 1, &g.resource);
	if (!g.actx)
		napi_async_init(env, res_obj, res_name, &g.actx);
	if (!g.zero)
		g.zero = calloc(1, ZERO_SIZE);
	if (!g.buf.mem)
		g.buf.mem = malloc(RECV_SIZE);
	if (!g.zero || !g.buf.mem) {
		free(mnt);
		free(opts);
		napi_throw_error(env, "ENOMEM", "sessionStart: out of memory");
		return NULL;
	}

	char *av[] = { "pmemfs", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, av);
	g.se = fuse_session_new(&args, &ll_ops, sizeof ll_ops, NULL);
	if (!g.se) {
		free(mnt);
		free(opts);
		napi_throw_error(env, "EINVAL", "sessionStart: libfuse refused the session options (see stderr)");
		return NULL;
	}
	if (fuse_session_mount(g.se, mnt) != 0) {
		fuse_session_destroy(g.se);
		g.se = NULL;
		free(mnt);
		free(opts);
		napi_throw_error(env, "EIO", "sessionStart: mounting failed (libfuse's reason is on stderr)");
		return NULL;
	}
	free(mnt);
	free(opts);
	int fd = fuse_session_fd(g.se);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	uv_loop_t *loop;
	napi_get_uv_event_loop(env, &loop);
	uv_poll_init(loop, &g.poll, fd);
	uv_poll_start(&g.poll, UV_READABLE, on_readable);
	g.polling = true;
	g.ended = false;
	return undefined(env);
}

/*
 * sessionStop(unmount: boolean): stop polling and the notification thread,
 * unmount (lazily: a busy mount still detaches) when asked, answer every
 * still-pending request EIO, and destroy the session (closing the device
 * aborts whatever the kernel still had queued).
 */
static napi_value session_stop(napi_env env, napi_callback_info info)
{
	ARGS(1)
	bool unmount = true;
	napi_get_value_bool(env, argv[0], &unmount);
	if (!g.se)
		return undefined(env);
	if (g.polling) {
		uv_poll_stop(&g.poll);
		g.polling = false;
	}
	g.ended = true;
	notice_stop();
	if (unmount)
		fuse_session_unmount(g.se);
	for (int i = 0; i < g.nslots; i++)
		if (g.slots[i].req)
			fuse_reply_err(slot_take(i), EIO);
	fuse_session_destroy(g.se);
	g.se = NULL;
	return undefined(env);
}

/* setRegion(fd, size): map the region read-only for read replies. @throws Error (mmap) */
static napi_value set_region(napi_env env, napi_callback_info info)
{
	ARGS(2)
	double fd, size;
	if (!arg_int(env, argv[0], "setRegion", "fd", 0, 2147483647.0, &fd) ||
	    !arg_int(env, argv[1], "setRegion", "size", 1, MAX_SAFE, &size))
		return NULL;
	void *p = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, (int)fd, 0);
	if (p == MAP_FAILED)
		return throw_errno(env, errno, "mmap");
	if (g.region)
		munmap((void *)g.region, g.region_size);
	g.region = p;
	g.region_size = (size_t)size;
	return undefined(env);
}

/* ------------------------------------------------------- JS: the replies */

#define SLOT_ARG(fn)                          \
	int s = arg_slot(env, argv[0], fn);   \
	if (s < 0)                            \
		return NULL;

static void fill_stat(struct stat *st, const double *a)
{
	memset(st, 0, sizeof *st);
	st->st_ino = (ino_t)a[0];
	st->st_mode = (mode_t)a[1];
	st->st_nlink = (nlink_t)a[2];
	st->st_uid = (uid_t)a[3];
	st->st_gid = (gid_t)a[4];
	st->st_rdev = (dev_t)a[5];
	st->st_size = (off_t)a[6];
	st->st_blksize = (blksize_t)a[7];
	st->st_blocks = (blkcnt_t)a[8];
	st->st_atim.tv_sec = (time_t)a[9];
	st->st_atim.tv_nsec = (long)a[10];
	st->st_mtim.tv_sec = (time_t)a[11];
	st->st_mtim.tv_nsec = (long)a[12];
	st->st_ctim.tv_sec = (time_t)a[13];
	st->st_ctim.tv_nsec = (long)a[14];
}

static void fill_entry(struct fuse_entry_param *e)
{
	const double *a = g.scratch + SCR_ATTR;
	memset(e, 0, sizeof *e);
	e->ino = (fuse_ino_t)a[18];
	fill_stat(&e->attr, a);
	e->generation = (uint64_t)a[15];
	e->attr_timeout = a[16];
	e->entry_timeout = a[17];
}

/* replyErr(slot, errno): errno positive (0 only for ops whose success carries no data). */
static napi_value reply_err(napi_env env, napi_callback_info info)
{
	ARGS(2)
	SLOT_ARG("replyErr")
	int32_t err = EIO;
	napi_get_value_int32(env, argv[1], &err);
	if (err < 0 || err > 4095)
		err = EIO;
	fuse_reply_err(slot_take(s), err);
	return undefined(env);
}

/* replyEntry(slot): the entry in scratch[SCR_ATTR..] (ino 0: a negative entry, cached entry_timeout). */
static napi_value reply_entry(napi_env env, napi_callback_info info)
{
	ARGS(1)
	SLOT_ARG("replyEntry")
	struct fuse_entry_param e;
	fill_entry(&e);
	fuse_reply_entry(slot_take(s), &e);
	return undefined(env);
}

static void fill_open(struct fuse_file_info *fi, napi_env env, napi_value fh, napi_value flags)
{
	double f = 0, o = 0;
	memset(fi, 0, sizeof *fi);
	napi_get_value_double(env, fh, &f);
	napi_get_value_double(env, flags, &o);
	fi->fh = (uint64_t)f;
	int of = (int)o;
	fi->direct_io = (of & 1) != 0;
	fi->keep_cache = (of & 2) != 0;
	fi->nonseekable = (of & 4) != 0;
	fi->noflush = (of & 8) != 0;
}

/* replyCreate(slot, fh, openFlags): entry from scratch; openFlags 1 direct_io, 2 keep_cache, 4 nonseekable, 8 noflush. */
static napi_value reply_create(napi_env env, napi_callback_info info)
{
	ARGS(3)
	SLOT_ARG("replyCreate")
	struct fuse_entry_param e;
	struct fuse_file_info fi;
	fill_entry(&e);
	fill_open(&fi, env, argv[1], argv[2]);
	fuse_reply_create(slot_take(s), &e, &fi);
	return undefined(env);
}

/* replyAttr(slot): attributes from scratch[SCR_ATTR..], attr_timeout at [+16]. */
static napi_value reply_attr(napi_env env, napi_callback_info info)
{
	ARGS(1)
	SLOT_ARG("replyAttr")
	struct stat st;
	fill_stat(&st, g.scratch + SCR_ATTR);
	fuse_reply_attr(slot_take(s), &st, g.scratch[SCR_ATTR + 16]);
	return undefined(env);
}

/* replyOpen(slot, fh, openFlags) */
static napi_value reply_open(napi_env env, napi_callback_info info)
{
	ARGS(3)
	SLOT_ARG("replyOpen")
	struct fuse_file_info fi;
	fill_open(&fi, env, argv[1], argv[2]);
	fuse_reply_open(slot_take(s), &fi);
	return undefined(env);
}

/* The replies that carry one number: a byte count or an offset. */
enum num_reply { NUM_WRITE, NUM_XATTR_SIZE, NUM_LSEEK };

static napi_value reply_number(napi_env env, napi_callback_info info, const char *fn, enum num_reply kind)
{
	ARGS(2)
	SLOT_ARG(fn)
	double n = 0;
	napi_get_value_double(env, argv[1], &n);
	fuse_req_t req = slot_take(s);
	switch (kind) {
	case NUM_WRITE: fuse_reply_write(req, (size_t)n); break;
	case NUM_XATTR_SIZE: fuse_reply_xattr(req, (size_t)n); break;
	case NUM_LSEEK: fuse_reply_lseek(req, (off_t)n); break;
	}
	return undefined(env);
}

/* replyWrite(slot, bytes) — also copy_file_range's answer */
static napi_value reply_write(napi_env env, napi_callback_info info)
{
	return reply_number(env, info, "replyWrite", NUM_WRITE);
}

/*
 * replyRead(slot, nsegs): the data is nsegs (region byte offset, length)
 * pairs at scratch[SCR_SEGS..]; offset -1 reads zeroes. Sent with one
 * writev from the region mapping: no copy in JS.
 */
static napi_value reply_read(napi_env env, napi_callback_info info)
{
	ARGS(2)
	SLOT_ARG("replyRead")
	int32_t n = 0;
	napi_get_value_int32(env, argv[1], &n);
	if (n < 0 || n > MAX_SEGS) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "replyRead: segment count out of range");
		return NULL;
	}
	struct iovec iov[MAX_SEGS * 2 + 1];
	int k = 0;
	for (int i = 0; i < n; i++) {
		double off = g.scratch[SCR_SEGS + 2 * i];
		size_t len = (size_t)g.scratch[SCR_SEGS + 2 * i + 1];
		if (off < 0) {
			while (len > 0) {
				size_t c = len < ZERO_SIZE ? len : ZERO_SIZE;
				if (k == (int)(sizeof iov / sizeof iov[0]))
					goto bad;
				iov[k].iov_base = g.zero;
				iov[k++].iov_len = c;
				len -= c;
			}
		} else {
			if (!g.region || (size_t)off + len > g.region_size)
				goto bad;
			if (k == (int)(sizeof iov / sizeof iov[0]))
				goto bad;
			iov[k].iov_base = (void *)(g.region + (size_t)off);
			iov[k++].iov_len = len;
		}
	}
	fuse_reply_iov(slot_take(s), iov, k);
	return undefined(env);
bad:
	fuse_reply_err(slot_take(s), EIO);
	napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "replyRead: a segment lies outside the region");
	return NULL;
}

/* replyBuf(slot, buffer | null, length): the first `length` bytes of buffer (reads, xattr values, lists). */
static napi_value reply_buf(napi_env env, napi_callback_info info)
{
	ARGS(3)
	SLOT_ARG("replyBuf")
	void *p = NULL;
	size_t len = 0;
	double want = 0;
	napi_valuetype ty;
	napi_typeof(env, argv[1], &ty);
	if (ty != napi_null && ty != napi_undefined && napi_get_buffer_info(env, argv[1], &p, &len) != napi_ok) {
		type_error(env, "replyBuf", "buffer", "a Buffer or null");
		return NULL;
	}
	napi_get_value_double(env, argv[2], &want);
	if (want < 0 || want > (double)len)
		want = (double)len;
	fuse_reply_buf(slot_take(s), p, (size_t)want);
	return undefined(env);
}

/* replyReadlink(slot, target) */
static napi_value reply_readlink(napi_env env, napi_callback_info info)
{
	ARGS(2)
	SLOT_ARG("replyReadlink")
	char *t = NULL;
	if (!arg_string(env, argv[1], "replyReadlink", "target", &t))
		return NULL;
	fuse_reply_readlink(slot_take(s), t);
	free(t);
	return undefined(env);
}

/* replyStatfs(slot): from scratch[SCR_STATFS..] */
static napi_value reply_statfs(napi_env env, napi_callback_info info)
{
	ARGS(1)
	SLOT_ARG("replyStatfs")
	const double *a = g.scratch + SCR_STATFS;
	struct statvfs v;
	memset(&v, 0, sizeof v);
	v.f_bsize = (unsigned long)a[0];
	v.f_frsize = (unsigned long)a[1];
	v.f_blocks = (fsblkcnt_t)a[2];
	v.f_bfree = (fsblkcnt_t)a[3];
	v.f_bavail = (fsblkcnt_t)a[4];
	v.f_files = (fsfilcnt_t)a[5];
	v.f_ffree = (fsfilcnt_t)a[6];
	v.f_favail = (fsfilcnt_t)a[7];
	v.f_namemax = (unsigned long)a[8];
	fuse_reply_statfs(slot_take(s), &v);
	return undefined(env);
}

/* replyXattrSize(slot, bytes): getxattr/listxattr with size 0 */
static napi_value reply_xattr_size(napi_env env, napi_callback_info info)
{
	return reply_number(env, info, "replyXattrSize", NUM_XATTR_SIZE);
}

/* replyLseek(slot, offset) */
static napi_value reply_lseek(napi_env env, napi_callback_info info)
{
	return reply_number(env, info, "replyLseek", NUM_LSEEK);
}

/*
 * replyIoctl(slot, result, out: Buffer | null): `out` (at most the
 * command's _IOC_SIZE, else EIO) over the start of the output; the rest of
 * an _IOWR output keeps the input bytes, of an _IOR output is zero.
 */
static napi_value reply_ioctl(napi_env env, napi_callback_info info)
{
	ARGS(3)
	SLOT_ARG("replyIoctl")
	int32_t result = 0;
	void *p = NULL;
	size_t len = 0;
	napi_valuetype ty;
	napi_get_value_int32(env, argv[1], &result);
	napi_typeof(env, argv[2], &ty);
	if (ty != napi_null && ty != napi_undefined && napi_get_buffer_info(env, argv[2], &p, &len) != napi_ok) {
		type_error(env, "replyIoctl", "out", "a Buffer or null");
		return NULL;
	}
	struct slot *sl = &g.slots[s];
	size_t out_size = sl->out_size;
	if (len > out_size) {
		fuse_reply_err(slot_take(s), EIO);
		return undefined(env);
	}
	if (out_size == 0) {
		fuse_reply_ioctl(slot_take(s), result, NULL, 0);
		return undefined(env);
	}
	char *out = calloc(1, out_size);
	if (!out) {
		fuse_reply_err(slot_take(s), ENOMEM);
		return undefined(env);
	}
	if (sl->in_copy)
		memcpy(out, sl->in_copy, sl->in_size < out_size ? sl->in_size : out_size);
	if (len)
		memcpy(out, p, len);
	fuse_reply_ioctl(slot_take(s), result, out, out_size);
	free(out);
	return undefined(env);
}

/*
 * dirAdd(slot, name, ino, mode, nextOff): append one readdir entry.
 * dirAddPlus(slot, name, nextOff): one readdirplus entry, its entry
 * parameters from scratch[SCR_ATTR..] (ino 0: no entry, the name only).
 * @returns false when the entry does not fit (reply with what is there)
 */
static napi_value dir_add(napi_env env, napi_callback_info info)
{
	ARGS(5)
	SLOT_ARG("dirAdd")
	struct slot *sl = &g.slots[s];
	char *name = NULL;
	double ino = 0, mode = 0, next = 0;
	napi_value out;
	if (!sl->dir) {
		napi_throw_error(env, "ERR_FUSE_SLOT", "dirAdd: the slot is not a readdir");
		return NULL;
	}
	if (!arg_string(env, argv[1], "dirAdd", "name", &name))
		return NULL;
	napi_get_value_double(env, argv[2], &ino);
	napi_get_value_double(env, argv[3], &mode);
	napi_get_value_double(env, argv[4], &next);
	struct stat st;
	memset(&st, 0, sizeof st);
	st.st_ino = (ino_t)ino;
	st.st_mode = (mode_t)mode;
	size_t need = fuse_add_direntry(sl->req, NULL, 0, name, NULL, 0);
	bool fits = sl->dir_len + need <= sl->dir_max;
	if (fits)
		sl->dir_len += fuse_add_direntry(sl->req, sl->dir + sl->dir_len, sl->dir_max - sl->dir_len, name,
						 &st, (off_t)next);
	free(name);
	napi_get_boolean(env, fits, &out);
	return out;
}

static napi_value dir_add_plus(napi_env env, napi_callback_info info)
{
	ARGS(3)
	SLOT_ARG("dirAddPlus")
	struct slot *sl = &g.slots[s];
	char *name = NULL;
	double next = 0;
	napi_value out;
	if (!sl->dir) {
		napi_throw_error(env, "ERR_FUSE_SLOT", "dirAddPlus: the slot is not a readdir");
		return NULL;
	}
	if (!arg_string(env, argv[1], "dirAddPlus", "name", &name))
		return NULL;
	napi_get_value_double(env, argv[2], &next);
	struct fuse_entry_param e;
	fill_entry(&e);
	size_t need = fuse_add_direntry_plus(sl->req, NULL, 0, name, NULL, 0);
	bool fits = sl->dir_len + need <= sl->dir_max;
	if (fits)
		sl->dir_len += fuse_add_direntry_plus(sl->req, sl->dir + sl->dir_len, sl->dir_max - sl->dir_len,
						      name, &e, (off_t)next);
	free(name);
	napi_get_boolean(env, fits, &out);
	return out;
}

/* replyDir(slot): send the entries added so far (none: end of directory). */
static napi_value reply_dir(napi_env env, napi_callback_info info)
{
	ARGS(1)
	SLOT_ARG("replyDir")
	struct slot *sl = &g.slots[s];
	char *dir = sl->dir;
	size_t len = sl->dir_len;
	sl->dir = NULL;
	fuse_reply_buf(slot_take(s), dir, len);
	free(dir);
	return undefined(env);
}

/* notifyInvalInode(ino, off, len): off -1 drops cached attributes only; len 0 means to the end. */
static napi_value notify_inval_inode(napi_env env, napi_callback_info info)
{
	ARGS(3)
	double ino, off, len;
	if (!arg_int(env, argv[0], "notifyInvalInode", "ino", 1, MAX_SAFE, &ino) ||
	    !arg_int(env, argv[1], "notifyInvalInode", "off", -1, MAX_SAFE, &off) ||
	    !arg_int(env, argv[2], "notifyInvalInode", "len", 0, MAX_SAFE, &len))
		return NULL;
	if (!g.se || g.ended)
		return undefined(env);
	struct notice *n = calloc(1, sizeof *n);
	if (!n)
		return undefined(env);
	n->ino = (fuse_ino_t)ino;
	n->off = (off_t)off;
	n->len = (off_t)len;
	if (!notice_push(n))
		free(n);
	return undefined(env);
}

/* notifyInvalEntry(parent, name): the kernel forgets its cached entry (positive or negative). */
static napi_value notify_inval_entry(napi_env env, napi_callback_info info)
{
	ARGS(2)
	double parent;
	char *name = NULL;
	if (!arg_int(env, argv[0], "notifyInvalEntry", "parent", 1, MAX_SAFE, &parent) ||
	    !arg_string(env, argv[1], "notifyInvalEntry", "name", &name))
		return NULL;
	if (!g.se || g.ended) {
		free(name);
		return undefined(env);
	}
	struct notice *n = calloc(1, sizeof *n);
	if (!n) {
		free(name);
		return undefined(env);
	}
	n->ino = (fuse_ino_t)parent;
	n->name = name;
	if (!notice_push(n)) {
		free(name);
		free(n);
	}
	return undefined(env);
}

/* pendingRequests(): requests received and not yet answered (tests, stats). */
static napi_value pending_requests(napi_env env, napi_callback_info info)
{
	(void)info;
	int n = 0;
	for (int i = 0; i < g.nslots; i++)
		n += g.slots[i].req != NULL;
	napi_value v;
	napi_create_int32(env, n, &v);
	return v;
}

bool session_register(napi_env env, napi_value exports)
{
	napi_value scratch_ab, scratch, recv;
	if (napi_create_external_arraybuffer(env, g.scratch, sizeof g.scratch, NULL, NULL, &scratch_ab) != napi_ok ||
	    napi_create_typedarray(env, napi_float64_array, SCR_LEN, scratch_ab, 0, &scratch) != napi_ok)
		return false;
	if (!g.buf.mem)
		g.buf.mem = malloc(RECV_SIZE);
	if (!g.buf.mem || napi_create_external_buffer(env, RECV_SIZE, g.buf.mem, NULL, NULL, &recv) != napi_ok)
		return false;
	napi_property_descriptor props[] = {
		{ "scratch", NULL, NULL, NULL, NULL, scratch, napi_enumerable, NULL },
		{ "recvBuffer", NULL, NULL, NULL, NULL, recv, napi_enumerable, NULL },
		{ "sessionStart", NULL, session_start, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "sessionStop", NULL, session_stop, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "setRegion", NULL, set_region, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyErr", NULL, reply_err, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyEntry", NULL, reply_entry, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyCreate", NULL, reply_create, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyAttr", NULL, reply_attr, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyOpen", NULL, reply_open, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyWrite", NULL, reply_write, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyRead", NULL, reply_read, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyBuf", NULL, reply_buf, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyReadlink", NULL, reply_readlink, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyStatfs", NULL, reply_statfs, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyXattrSize", NULL, reply_xattr_size, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyLseek", NULL, reply_lseek, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyIoctl", NULL, reply_ioctl, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "dirAdd", NULL, dir_add, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "dirAddPlus", NULL, dir_add_plus, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "replyDir", NULL, reply_dir, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "notifyInvalInode", NULL, notify_inval_inode, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "notifyInvalEntry", NULL, notify_inval_entry, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "pendingRequests", NULL, pending_requests, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
