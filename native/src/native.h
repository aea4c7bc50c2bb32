/*
 * native.h - what the parts of the pmemfs addon share.
 *
 *   binding.c  the module: argument helpers, errors shaped like Node's, the
 *              client-side syscalls Node lacks (ioctl, fallocate, flock,
 *              mmap, msync), and the export table.
 *   session.c  the FUSE transport (with slots.c, dispatch.c, loop.c,
 *              reply.c, notify.c; session.h lists them): one libfuse3
 *              low-level session whose device fd is polled by the Node
 *              event loop (uv_poll); each request is dispatched to a JS
 *              handler on the JS thread and answered through the reply
 *              functions, now or later.
 *   idlepoll.c while the daemon is busy, a helper thread keeps another CPU
 *              from halting (mount option idle_poll).
 */
#ifndef PMEMFS_NATIVE_H
#define PMEMFS_NATIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <node_api.h>

#define MAX_SAFE 9007199254740991.0

/* Fetch exactly n arguments (missing ones are undefined). */
#define ARGS(n)                                                               \
	size_t argc = (n);                                                    \
	napi_value argv[(n) > 0 ? (n) : 1];                                   \
	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)  \
		return NULL;

/* binding.c */
napi_value throw_errno(napi_env env, int err, const char *syscall);
bool type_error(napi_env env, const char *fn, const char *name, const char *want);
bool arg_int(napi_env env, napi_value v, const char *fn, const char *name, double lo, double hi, double *out);
bool arg_string(napi_env env, napi_value v, const char *fn, const char *name, char **out);
napi_value undefined(napi_env env);

/* idlepoll.c: while the daemon is busy, another CPU kept from halting (mount option idle_poll). */
void idle_poll_renew(void);
void idle_poll_stop(void);
void idle_poll_flush_begin(void);
void idle_poll_flush_end(void);
bool idle_poll_register(napi_env env, napi_value exports);

/* session.c: registers its functions on `exports`. */
bool session_register(napi_env env, napi_value exports);

#endif
