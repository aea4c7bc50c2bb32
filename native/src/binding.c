/*
 * binding.c - the pmemfs_native module: argument checks, errno errors shaped
 * like Node's ({ code, errno, syscall }), the client-side syscalls Node
 * lacks (ioctl, fallocate, flock, mmap, msync, O_DIRECT zeroes), and the export table (the
 * FUSE session's functions come from session.c). One function per syscall,
 * no logic: validation of meaning lives in TypeScript.
 */
#include "native.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

napi_value throw_errno(napi_env env, int err, const char *syscall)
{
	const char *code = uv_err_name(-err);
	char msg[256];
	napi_value c, m, e, n, s;

	snprintf(msg, sizeof msg, "%s: %s, %s", code, uv_strerror(-err), syscall);
	if (napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &c) == napi_ok &&
	    napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m) == napi_ok &&
	    napi_create_error(env, c, m, &e) == napi_ok &&
	    napi_create_int32(env, err, &n) == napi_ok &&
	    napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &s) == napi_ok &&
	    napi_set_named_property(env, e, "errno", n) == napi_ok &&
	    napi_set_named_property(env, e, "syscall", s) == napi_ok)
		napi_throw(env, e);
	return NULL;
}

bool type_error(napi_env env, const char *fn, const char *name, const char *want)
{
	char msg[160];

	snprintf(msg, sizeof msg, "%s: %s must be %s", fn, name, want);
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
	return false;
}

/* An integral number in [lo, hi]: TypeError if not an integer, RangeError if outside. */
bool arg_int(napi_env env, napi_value v, const char *fn, const char *name,
		    double lo, double hi, double *out)
{
	napi_valuetype ty;

	if (napi_typeof(env, v, &ty) != napi_ok || ty != napi_number ||
	    napi_get_value_double(env, v, out) != napi_ok || !isfinite(*out) || *out != floor(*out))
		return type_error(env, fn, name, "an integer");
	if (*out < lo || *out > hi) {
		char msg[160];
		snprintf(msg, sizeof msg, "%s: %s must be in [%.0f, %.0f], got %.0f", fn, name, lo, hi, *out);
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
		return false;
	}
	return true;
}

/* A string, copied into a malloc'd C string. */
bool arg_string(napi_env env, napi_value v, const char *fn, const char *name, char **out)
{
	napi_valuetype ty;
	size_t len;

	if (napi_typeof(env, v, &ty) != napi_ok || ty != napi_string ||
	    napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok)
		return type_error(env, fn, name, "a string");
	*out = malloc(len + 1);
	if (!*out || napi_get_value_string_utf8(env, v, *out, len + 1, &len) != napi_ok) {
		free(*out);
		napi_throw_error(env, "ENOMEM", "out of memory");
		return false;
	}
	return true;
}

napi_value undefined(napi_env env)
{
	napi_value u;

	napi_get_undefined(env, &u);
	return u;
}

/* ------------------------------------------------------- client syscalls */

/* ioctl(fd, cmd, buf: Buffer | null): number */
static napi_value do_ioctl(napi_env env, napi_callback_info info)
{
	ARGS(3)
	double fd, cmd;
	napi_valuetype ty;
	bool is_buf = false;
	void *p = NULL;
	size_t len = 0;
	napi_value out;

	if (!arg_int(env, argv[0], "ioctl", "fd", 0, 2147483647.0, &fd) ||
	    !arg_int(env, argv[1], "ioctl", "cmd", -2147483648.0, 4294967295.0, &cmd))
		return NULL;
	if (napi_typeof(env, argv[2], &ty) != napi_ok)
		return NULL;
	if (ty != napi_undefined && ty != napi_null) {
		if (napi_is_buffer(env, argv[2], &is_buf) != napi_ok || !is_buf ||
		    napi_get_buffer_info(env, argv[2], &p, &len) != napi_ok)
			return type_error(env, "ioctl", "buf", "a Buffer or null"), NULL;
	}
	unsigned int ucmd = (unsigned int)(int64_t)cmd;
	size_t need = _IOC_DIR(ucmd) != _IOC_NONE ? _IOC_SIZE(ucmd) : 0;
	if (len < need) {  /* the kernel would read or write past the buffer */
		char msg[160];
		snprintf(msg, sizeof msg, "ioctl: cmd 0x%x transfers %zu bytes but buf has %zu", ucmd, need, len);
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", msg);
		return NULL;
	}
	int rc = ioctl((int)fd, (unsigned long)ucmd, p);
	if (rc < 0)
		return throw_errno(env, errno, "ioctl");
	return napi_create_int32(env, rc, &out) == napi_ok ? out : NULL;
}

/* fallocate(fd, mode, offset, length): void */
static napi_value do_fallocate(napi_env env, napi_callback_info info)
{
	ARGS(4)
	double fd, mode, off, len;

	if (!arg_int(env, argv[0], "fallocate", "fd", 0, 2147483647.0, &fd) ||
	    !arg_int(env, argv[1], "fallocate", "mode", 0, 2147483647.0, &mode) ||
	    !arg_int(env, argv[2], "fallocate", "offset", 0, MAX_SAFE, &off) ||
	    !arg_int(env, argv[3], "fallocate", "length", 0, MAX_SAFE, &len))
		return NULL;
	if (fallocate((int)fd, (int)mode, (off_t)off, (off_t)len) < 0)
		return throw_errno(env, errno, "fallocate");
	return undefined(env);
}

/*
 * writeback(fd, offset, length, wait): sync_file_range(2) — start write-back
 * of the dirty pages of [offset, offset+length) (wait: also wait for it to
 * finish, WAIT_BEFORE|WRITE|WAIT_AFTER). No device cache flush and no file
 * metadata: the caller flushes once afterwards (the region's one-flush commit).
 */
static napi_value do_writeback(napi_env env, napi_callback_info info)
{
	ARGS(4)
	double fd, off, len;
	bool wait;

	if (!arg_int(env, argv[0], "writeback", "fd", 0, 2147483647.0, &fd) ||
	    !arg_int(env, argv[1], "writeback", "offset", 0, MAX_SAFE, &off) ||
	    !arg_int(env, argv[2], "writeback", "length", 0, MAX_SAFE, &len))
		return NULL;
	if (napi_get_value_bool(env, argv[3], &wait) != napi_ok) {
		type_error(env, "writeback", "wait", "a boolean");
		return NULL;
	}
	unsigned int flags = SYNC_FILE_RANGE_WRITE;
	if (wait)
		flags |= SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WAIT_AFTER;
	if (len > 0) {
		idle_poll_flush_begin();
		int rc = sync_file_range((int)fd, (off64_t)off, (off64_t)len, flags);
		int err = errno;
		idle_poll_flush_end();
		if (rc < 0)
			return throw_errno(env, err, "sync_file_range");
	}
	return undefined(env);
}

/* flock(fd, operation): void — LOCK_SH/LOCK_EX/LOCK_UN, | LOCK_NB */
static napi_value do_flock(napi_env env, napi_callback_info info)
{
	ARGS(2)
	double fd, op;

	if (!arg_int(env, argv[0], "flock", "fd", 0, 2147483647.0, &fd) ||
	    !arg_int(env, argv[1], "flock", "operation", 0, 2147483647.0, &op))
		return NULL;
	if (flock((int)fd, (int)op) < 0)
		return throw_errno(env, errno, "flock");
	return undefined(env);
}

/* Unmap a mapping made by do_mmap when its Buffer is collected; hint = length. */
static void unmap_buffer(napi_env env, void *data, void *hint)
{
	(void)env;
	munmap(data, (size_t)(uintptr_t)hint);
}

/*
 * mmap(fd, offset, length, writable): Buffer over MAP_SHARED memory, unmapped
 * when the Buffer is collected. offset must be page-aligned. (mmap-io 1.1.7
 * truncates offsets to int, so regions past 2 GiB need this.)
 */
static napi_value do_mmap(napi_env env, napi_callback_info info)
{
	ARGS(4)
	double fd, off, len;
	bool writable;
	napi_value out;

	if (!arg_int(env, argv[0], "mmap", "fd", 0, 2147483647.0, &fd) ||
	    !arg_int(env, argv[1], "mmap", "offset", 0, MAX_SAFE, &off) ||
	    !arg_int(env, argv[2], "mmap", "length", 1, 4294967296.0, &len))
		return NULL;
	if (napi_get_value_bool(env, argv[3], &writable) != napi_ok) {
		type_error(env, "mmap", "writable", "a boolean");
		return NULL;
	}
	if (fmod(off, (double)sysconf(_SC_PAGESIZE)) != 0) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "mmap: offset must be a multiple of the page size");
		return NULL;
	}
	void *p = mmap(NULL, (size_t)len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, (int)fd, (off_t)off);
	if (p == MAP_FAILED)
		return throw_errno(env, errno, "mmap");
	if (napi_create_external_buffer(env, (size_t)len, p, unmap_buffer, (void *)(uintptr_t)len, &out) != napi_ok) {
		munmap(p, (size_t)len);
		return NULL;
	}
	return out;
}

/* msync(buffer, offset, length): MS_SYNC over [offset, offset+length) of a mapped Buffer, rounded out to pages. */
static napi_value do_msync(napi_env env, napi_callback_info info)
{
	ARGS(3)
	double off, len;
	void *data;
	size_t size;

	if (napi_get_buffer_info(env, argv[0], &data, &size) != napi_ok) {
		type_error(env, "msync", "buffer", "a Buffer");
		return NULL;
	}
	if (!arg_int(env, argv[1], "msync", "offset", 0, (double)size, &off) ||
	    !arg_int(env, argv[2], "msync", "length", 0, (double)size - off, &len))
		return NULL;
	uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t start = ((uintptr_t)data + (uintptr_t)off) & ~(page - 1);
	uintptr_t end = (uintptr_t)data + (uintptr_t)off + (uintptr_t)len;
	if (len > 0) {
		idle_poll_flush_begin();
		int rc = msync((void *)start, end - start, MS_SYNC);
		int err = errno;
		idle_poll_flush_end();
		if (rc < 0)
			return throw_errno(env, err, "msync");
	}
	return undefined(env);
}

/*
 * zeroDirect(fd, offset, length): write zeroes over [offset, offset+length)
 * of the file (both multiples of 4096) with O_DIRECT, in 1 MiB requests,
 * then fdatasync: the host filesystem allocates and writes every block now
 * and none of it stays in its page cache. The fd's flags are restored.
 * EINVAL where the filesystem refuses O_DIRECT.
 */
static napi_value do_zero_direct(napi_env env, napi_callback_info info)
{
	ARGS(3)
	double fd, off, len;
	const size_t chunk = 1 << 20;

	if (!arg_int(env, argv[0], "zeroDirect", "fd", 0, 2147483647.0, &fd) ||
	    !arg_int(env, argv[1], "zeroDirect", "offset", 0, MAX_SAFE, &off) ||
	    !arg_int(env, argv[2], "zeroDirect", "length", 0, MAX_SAFE, &len))
		return NULL;
	if (fmod(off, 4096) != 0 || fmod(len, 4096) != 0) {
		napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "zeroDirect: offset and length must be multiples of 4096");
		return NULL;
	}
	int flags = fcntl((int)fd, F_GETFL);
	if (flags < 0 || fcntl((int)fd, F_SETFL, flags | O_DIRECT) < 0)
		return throw_errno(env, errno, "fcntl");
	void *zero = NULL;
	int err = posix_memalign(&zero, 4096, chunk);
	if (err == 0) {
		memset(zero, 0, chunk);
		for (off_t at = (off_t)off, end = (off_t)(off + len); at < end && err == 0;) {
			size_t n = (size_t)(end - at) < chunk ? (size_t)(end - at) : chunk;
			ssize_t w = pwrite((int)fd, zero, n, at);
			if (w < 0 && errno != EINTR)
				err = errno;
			else if (w > 0)
				at += w;
		}
		free(zero);
		if (err == 0 && fdatasync((int)fd) < 0)
			err = errno;
	}
	fcntl((int)fd, F_SETFL, flags);
	if (err)
		return throw_errno(env, err, "pwrite");
	return undefined(env);
}

NAPI_MODULE_INIT()
{
	napi_property_descriptor props[] = {
		{ "ioctl", NULL, do_ioctl, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "fallocate", NULL, do_fallocate, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "flock", NULL, do_flock, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "mmap", NULL, do_mmap, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "msync", NULL, do_msync, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "writeback", NULL, do_writeback, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "zeroDirect", NULL, do_zero_direct, NULL, NULL, NULL, napi_enumerable, NULL },
	};

	if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok ||
	    !session_register(env, exports) || !idle_poll_register(env, exports))
		return NULL;
	return exports;
}
