/*
 * reply.c - the reply functions JS answers a request with, each taking the
 * request's slot id first (a stale or answered id throws ERR_FUSE_SLOT and
 * sends nothing). Entries and attributes come from scratch; reads go out
 * as an iovec over the region mapping and the zero page, with no copy in
 * JS; readdir entries are packed into the slot's buffer, then sent.
 */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#define SLOT_ARG(fn)                              \
	slot_id s = arg_slot(env, argv[0], fn);   \
	if (s < 0)                                \
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
	struct slot *sl = slot_at(s);
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
	struct slot *sl = slot_at(s);
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
	struct slot *sl = slot_at(s);
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
	struct slot *sl = slot_at(s);
	char *dir = sl->dir;
	size_t len = sl->dir_len;
	sl->dir = NULL;
	fuse_reply_buf(slot_take(s), dir, len);
	free(dir);
	return undefined(env);
}

bool reply_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
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
	};
	return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
