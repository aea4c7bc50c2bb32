/*
 * dispatch.c - libfuse's low-level callbacks: each request takes a slot
 * (slots.c) and goes to the JS handler for its opcode, with the slot id and
 * the request's arguments as plain numbers and strings; the handler
 * answers through a reply function (reply.c) now or later. A request that
 * must wait (busy=wait, a lease break) keeps its slot and blocks nothing
 * else. The caller's context is put in scratch before each handler call.
 *
 * Semantics follow libfuse's fuse_lowlevel.h (3.14) and the kernel's
 * fs/fuse/ (node ids, lookup counts, FOPEN_DIRECT_IO, readdirplus).
 */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const op_names[OP_COUNT] = {
	"lookup", "forget", "getattr", "setattr", "readlink", "mknod", "mkdir",
	"unlink", "rmdir", "symlink", "rename", "link", "open", "read", "write",
	"flush", "release", "fsync", "opendir", "readdir", "releasedir", "fsyncdir",
	"statfs", "setxattr", "getxattr", "listxattr", "removexattr", "create",
	"ioctl", "fallocate", "lseek", "copyFileRange", "ended", "interrupt", "init",
};

napi_value num(double d)
{
	napi_value v;
	napi_create_double(g.env, d, &v);
	return v;
}

napi_value str(const char *s)
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
void call_js(enum op op, slot_id slot, size_t argc, napi_value *argv)
{
	napi_env env = g.env;
	napi_value fn, recv, result;
	bool pending = false;

	if (napi_get_reference_value(env, g.handlers[op], &fn) != napi_ok || !fn) {
		if (slot_at(slot))
			fuse_reply_err(slot_take(slot), ENOSYS);
		return;
	}
	napi_get_undefined(env, &recv);
	napi_call_function(env, recv, fn, argc, argv, &result);
	napi_is_exception_pending(env, &pending);
	if (pending) {
		napi_value exc;
		napi_get_and_clear_last_exception(env, &exc);
		if (slot_at(slot))
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
		slot_id s_ = slot_new(req);                                      \
		if (s_ < 0) {                                                    \
			fuse_reply_err(req, ENOMEM);                             \
		} else {                                                         \
			set_ctx(req);                                            \
			napi_value a_[] = { num((double)s_), __VA_ARGS__ };      \
			call_js(op, s_, sizeof a_ / sizeof a_[0], a_);           \
		}                                                                \
		napi_close_handle_scope(g.env, hs);                              \
	} while (0)

static double fh_of(struct fuse_file_info *fi)
{
	return fi ? (double)fi->fh : -1;
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	if (conn->max_write < MAX_WRITE)
		conn->max_write = MAX_WRITE;
	conn->max_readahead = MAX_WRITE;
	conn->time_gran = 1;
	/*
	 * Kernel-side opens with O_TRUNC arrive as SETATTR(size); no splice.
	 * READDIRPLUS_AUTO (libfuse's default, asked for here too): the kernel asks for attributes
	 * (READDIRPLUS, which loads each child inode) for a directory's first reply
	 * and while its children are being looked up (ls -l), a plain READDIR
	 * otherwise (ls -f, find: d_type from the slot, no inode loaded).
	 */
	conn->want &= ~(FUSE_CAP_ATOMIC_O_TRUNC | FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
			FUSE_CAP_SPLICE_MOVE | FUSE_CAP_WRITEBACK_CACHE);
	conn->want |= conn->capable & (FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO | FUSE_CAP_AUTO_INVAL_DATA |
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
	slot_id s = slot_new(req);
	char *dir = s < 0 ? NULL : malloc(size ? size : 1);
	if (!dir) {
		if (s >= 0)
			slot_free(s);
		fuse_reply_err(req, ENOMEM);
	} else {
		slot_at(s)->dir = dir;
		slot_at(s)->dir_max = size;
		set_ctx(req);
		napi_value plusv;
		napi_get_boolean(g.env, plus, &plusv);
		napi_value a[] = { num((double)s), num(ino), num(fh_of(fi)), num((double)size), num((double)off), plusv };
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
	slot_id s = slot_new(req);
	if (s < 0) {
		fuse_reply_err(req, ENOMEM);
	} else {
		struct slot *sl = slot_at(s);
		sl->out_size = out_bufsz;
		if (in_bufsz && out_bufsz) {
			sl->in_copy = malloc(in_bufsz);
			if (sl->in_copy) {
				memcpy(sl->in_copy, in_buf, in_bufsz);
				sl->in_size = in_bufsz;
			}
		}
		set_ctx(req);
		napi_value input;
		if (in_bufsz)
			input = buffer_copy(in_buf, in_bufsz);
		else
			napi_get_null(g.env, &input);
		napi_value a[] = { num((double)s), num(ino), num(cmd), num(fh_of(fi)), num(flags), input, num((double)out_bufsz) };
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

const struct fuse_lowlevel_ops dispatch_ops = {
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
