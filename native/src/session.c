/*
 * session.c - the FUSE transport's lifecycle, as JS sees it: one libfuse3
 * low-level session on the Node event loop (sessionStart, sessionStop),
 * the read-only region mapping read replies are sent from (setRegion),
 * and the export table of the transport's functions.
 *
 * Shapes shared with JS without allocating per request:
 *   - `scratch`, a Float64Array over static memory: the caller's context
 *     (filled before each handler call), attributes for entry/attr replies,
 *     setattr's input, statfs's answer, and the segment list of a read
 *     reply. Offsets are the SCR_* constants (session.h); index.d.ts
 *     documents the same layout.
 *   - `recvBuffer`, a Buffer over the one receive buffer: a write handler
 *     gets the offset of its data in it (valid until the handler returns).
 *
 * The other parts: slots.c (request slots, generations, interrupts),
 * dispatch.c (requests to JS), loop.c (polling), reply.c, notify.c.
 */
#include "session.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct session_state g = { .free_head = -1, .nmu = PTHREAD_MUTEX_INITIALIZER, .ncv = PTHREAD_COND_INITIALIZER };

/* Take the handler functions by name from `handlers` (a missing one answers ENOSYS). */
static void take_handlers(napi_env env, napi_value handlers)
{
	for (int i = 0; i < OP_COUNT; i++) {
		napi_value fn;
		napi_valuetype ty = napi_undefined;
		if (napi_get_named_property(env, handlers, op_names[i], &fn) == napi_ok)
			napi_typeof(env, fn, &ty);
		if (g.handlers[i]) {
			napi_delete_reference(env, g.handlers[i]);
			g.handlers[i] = NULL;
		}
		if (ty == napi_function)
			napi_create_reference(env, fn, 1, &g.handlers[i]);
	}
}

/* The async resource handlers run under, the zero page and the receive buffer: once per process. */
static bool session_prepare(napi_env env)
{
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
	return g.zero && g.buf.mem;
}

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
	take_handlers(env, argv[2]);
	if (!session_prepare(env)) {
		free(mnt);
		free(opts);
		napi_throw_error(env, "ENOMEM", "sessionStart: out of memory");
		return NULL;
	}

	char *av[] = { "pmemfs", "-o", opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, av);
	g.se = fuse_session_new(&args, &dispatch_ops, sizeof dispatch_ops, NULL);
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
	loop_start(fuse_session_fd(g.se));
	return undefined(env);
}

/*
 * sessionStop(unmount: boolean): stop polling, drop unsent notifications,
 * answer every still-pending request EIO, wait for the notification thread
 * (in that order: see notify.c), unmount (lazily: a busy mount still
 * detaches) when asked, and destroy the session (closing the device aborts
 * whatever the kernel still had queued).
 */
static napi_value session_stop(napi_env env, napi_callback_info info)
{
	ARGS(1)
	bool unmount = true;
	napi_get_value_bool(env, argv[0], &unmount);
	if (!g.se)
		return undefined(env);
	loop_stop();
	g.ended = true;
	notify_drop_queued();
	slots_answer_all(EIO);
	notify_join();
	if (unmount)
		fuse_session_unmount(g.se);
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

/* pendingRequests(): requests received and not yet answered (tests, stats). */
static napi_value pending_requests(napi_env env, napi_callback_info info)
{
	(void)info;
	napi_value v;
	napi_create_int32(env, slots_pending(), &v);
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
		{ "pendingRequests", NULL, pending_requests, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok &&
	       reply_register(env, exports) && notify_register(env, exports);
}
