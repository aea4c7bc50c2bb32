/*
 * dispatch.c - run a FUSE request (ioctl, fallocate, utimens, getattr) in JS.
 *
 * The worker thread queues the request on a threadsafe function (blocking
 * call) and sleeps on the request's condvar. On the JS thread call_js calls
 * the handler with a fresh `reply` function; whenever JS calls it, the
 * result (and an ioctl's output bytes) go into the request and the worker
 * wakes. The JS thread never blocks. `reply` owns a small token pointing at
 * the request; the first reply clears it, so later replies do nothing, and
 * if the function is garbage-collected unanswered the worker gets -EIO.
 */
#include "shim.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { H_IOCTL, H_FALLOCATE, H_UTIMENS, H_GETATTR, H_COUNT };
static const char *const h_names[H_COUNT] = { "ioctl", "fallocate", "utimens", "getattr" };

struct handler_set {
	napi_threadsafe_function tsfn;
	napi_ref self;
	napi_ref fn[H_COUNT];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct handler_set *g_cur;

struct token {
	struct shim_req *req;  /* NULL once answered */
};

/* Wake the worker; after this r may be gone. */
static void complete(struct shim_req *r, int result)
{
	pthread_mutex_lock(&r->mu);
	r->result = result;
	r->done = 1;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

static void finish(struct token *t, int result)
{
	struct shim_req *r = t->req;

	if (!r)
		return;
	t->req = NULL;
	complete(r, result);
}

/* ------------------------------------------------------- worker side */

int shim_dispatch(struct shim_req *r)
{
	napi_threadsafe_function tsfn = NULL;

	shim_caller_now(&r->caller);
	pthread_mutex_lock(&g_mu);
	if (g_cur && napi_acquire_threadsafe_function(g_cur->tsfn) == napi_ok)
		tsfn = g_cur->tsfn;
	pthread_mutex_unlock(&g_mu);
	if (!tsfn)
		return -ENOSYS;

	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->done = 0;
	r->result = -EIO;
	if (napi_call_threadsafe_function(tsfn, r, napi_tsfn_blocking) == napi_ok) {
		pthread_mutex_lock(&r->mu);
		while (!r->done)
			pthread_cond_wait(&r->cv, &r->mu);
		pthread_mutex_unlock(&r->mu);
	}
	napi_release_threadsafe_function(tsfn, napi_tsfn_release);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	return r->result;
}

/* ----------------------------------------------------------- JS side */

/* An ioctl's output: undefined/null leaves the buffer, a Buffer is copied. */
static int copy_out(napi_env env, struct shim_req *r, napi_value v)
{
	napi_valuetype ty;
	bool is_buf;
	void *p;
	size_t n;

	if (napi_typeof(env, v, &ty) != napi_ok)
		return -EIO;
	if (ty == napi_undefined || ty == napi_null)
		return 0;
	if (napi_is_buffer(env, v, &is_buf) != napi_ok || !is_buf ||
	    napi_get_buffer_info(env, v, &p, &n) != napi_ok || n > r->out_size)
		return -EIO;
	if (n)
		memcpy(r->out, p, n);
	return 0;
}

/* A getattr's answer: a Float64Array in shim_stat_field order. */
static int copy_stat(napi_env env, struct shim_req *r, napi_value v)
{
	bool is_ta;
	napi_typedarray_type type;
	size_t len;
	void *data;
	const double *d;
	struct stat *st = r->st;

	if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta ||
	    napi_get_typedarray_info(env, v, &type, &len, &data, NULL, NULL) != napi_ok ||
	    type != napi_float64_array || len < SHIM_STAT_LEN)
		return -EIO;
	d = data;
	memset(st, 0, sizeof *st);
	st->st_mode = (mode_t)d[SHIM_ST_MODE];
	st->st_nlink = (nlink_t)d[SHIM_ST_NLINK];
	st->st_uid = (uid_t)d[SHIM_ST_UID];
	st->st_gid = (gid_t)d[SHIM_ST_GID];
	st->st_rdev = (dev_t)d[SHIM_ST_RDEV];
	st->st_size = (off_t)d[SHIM_ST_SIZE];
	st->st_blksize = (blksize_t)d[SHIM_ST_BLKSIZE];
	st->st_blocks = (blkcnt_t)d[SHIM_ST_BLOCKS];
	st->st_ino = (ino_t)d[SHIM_ST_INO];
	st->st_atim.tv_sec = (time_t)d[SHIM_ST_ATIME_SEC];
	st->st_atim.tv_nsec = (long)d[SHIM_ST_ATIME_NSEC];
	st->st_mtim.tv_sec = (time_t)d[SHIM_ST_MTIME_SEC];
	st->st_mtim.tv_nsec = (long)d[SHIM_ST_MTIME_NSEC];
	st->st_ctim.tv_sec = (time_t)d[SHIM_ST_CTIME_SEC];
	st->st_ctim.tv_nsec = (long)d[SHIM_ST_CTIME_NSEC];
	return 0;
}

static napi_value reply_cb(napi_env env, napi_callback_info info)
{
	size_t argc = 2;
	napi_value argv[2];
	void *data;
	napi_valuetype ty;
	double d;
	int result = -EIO;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, &data) != napi_ok)
		return NULL;
	struct token *t = data;
	if (!t->req)
		return NULL;
	if (argc >= 1 && napi_typeof(env, argv[0], &ty) == napi_ok && ty == napi_number &&
	    napi_get_value_double(env, argv[0], &d) == napi_ok &&
	    d <= 0 && d >= -4095 && d == (double)(int)d)
		result = (int)d;
	if (result == 0 && t->req->kind == SHIM_IOCTL && argc >= 2)
		result = copy_out(env, t->req, argv[1]);
	if (result == 0 && t->req->kind == SHIM_GETATTR)
		result = argc >= 2 ? copy_stat(env, t->req, argv[1]) : -EIO;
	finish(t, result);
	return NULL;
}

static void token_finalize(napi_env env, void *data, void *hint)
{
	(void)env;
	(void)hint;
	finish(data, -EIO);
	free(data);
}

static napi_value num(napi_env env, double v)
{
	napi_value out;

	return napi_create_double(env, v, &out) == napi_ok ? out : NULL;
}

static void call_js(napi_env env, napi_value js_cb, void *context, void *data)
{
	struct handler_set *h = context;
	struct shim_req *r = data;
	napi_value recv, fn, reply, argv[8], exc;
	size_t argc = 0;
	bool ok;

	(void)js_cb;
	if (!env) {  /* torn down with the request still queued */
		complete(r, -EIO);
		return;
	}
	struct token *t = malloc(sizeof *t);
	if (!t) {
		complete(r, -ENOMEM);
		return;
	}
	t->req = r;
	if (napi_create_function(env, "reply", NAPI_AUTO_LENGTH, reply_cb, t, &reply) != napi_ok ||
	    napi_add_finalizer(env, reply, t, token_finalize, NULL, NULL) != napi_ok) {
		free(t);  /* never reached JS */
		complete(r, -EIO);
		return;
	}
	/* From here the token belongs to the reply function. */
	static const int handler_of[] = {
		[SHIM_IOCTL] = H_IOCTL, [SHIM_FALLOCATE] = H_FALLOCATE,
		[SHIM_UTIMENS] = H_UTIMENS, [SHIM_GETATTR] = H_GETATTR,
	};
	int k = handler_of[r->kind];
	ok = napi_get_reference_value(env, h->self, &recv) == napi_ok &&
	     napi_get_reference_value(env, h->fn[k], &fn) == napi_ok &&
	     (argv[argc++] = shim_caller_object(env, &r->caller)) != NULL &&
	     napi_create_string_utf8(env, r->path ? r->path : "", NAPI_AUTO_LENGTH, &argv[argc++]) == napi_ok;
	switch (r->kind) {
	case SHIM_IOCTL:
		ok = ok && (argv[argc++] = num(env, r->cmd)) != NULL &&
		     (argv[argc++] = num(env, (double)r->fh)) != NULL &&
		     (argv[argc++] = num(env, r->flags)) != NULL;
		if (ok && r->in)
			ok = napi_create_buffer_copy(env, r->in_size, r->in, NULL, &argv[argc++]) == napi_ok;
		else if (ok)
			ok = napi_get_null(env, &argv[argc++]) == napi_ok;
		ok = ok && (argv[argc++] = num(env, (double)r->out_size)) != NULL;
		break;
	case SHIM_FALLOCATE:
		ok = ok && (argv[argc++] = num(env, r->mode)) != NULL &&
		     (argv[argc++] = num(env, (double)r->offset)) != NULL &&
		     (argv[argc++] = num(env, (double)r->length)) != NULL &&
		     (argv[argc++] = num(env, (double)r->fh)) != NULL;
		break;
	case SHIM_UTIMENS:
		for (int i = 0; ok && i < 2; i++)
			ok = (argv[argc++] = num(env, (double)r->tv[i].tv_sec)) != NULL &&
			     (argv[argc++] = num(env, (double)r->tv[i].tv_nsec)) != NULL;
		break;
	case SHIM_GETATTR:
		if (r->has_fh)
			ok = ok && (argv[argc++] = num(env, (double)r->fh)) != NULL;
		else
			ok = ok && napi_get_null(env, &argv[argc++]) == napi_ok;
		break;
	}
	if (ok) {
		argv[argc++] = reply;
		ok = napi_call_function(env, recv, fn, argc, argv, NULL) == napi_ok;
	}
	if (!ok) {
		finish(t, -EIO);
		/* A throwing handler is a bug: report it as uncaught, not silently. */
		if (napi_get_and_clear_last_exception(env, &exc) == napi_ok) {
			napi_valuetype ty;
			if (napi_typeof(env, exc, &ty) == napi_ok && ty != napi_undefined)
				napi_fatal_exception(env, exc);
		}
	}
}

static void set_finalize(napi_env env, void *data, void *hint)
{
	struct handler_set *h = data;

	(void)hint;
	if (h->self)
		napi_delete_reference(env, h->self);
	for (int k = 0; k < H_COUNT; k++)
		if (h->fn[k])
			napi_delete_reference(env, h->fn[k]);
	free(h);
}

/* setHandlers({ ioctl, fallocate, utimens, getattr }) */
napi_value shim_set_handlers(napi_env env, napi_callback_info info)
{
	size_t argc = 1;
	napi_value obj, fn, name;
	napi_valuetype ty;
	struct handler_set *h, *old;

	if (napi_get_cb_info(env, info, &argc, &obj, NULL, NULL) != napi_ok)
		return NULL;
	if (argc < 1 || napi_typeof(env, obj, &ty) != napi_ok || ty != napi_object) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "setHandlers: handlers must be an object");
		return NULL;
	}
	h = calloc(1, sizeof *h);
	if (!h) {
		napi_throw_error(env, "ENOMEM", "setHandlers: out of memory");
		return NULL;
	}
	for (int k = 0; k < H_COUNT; k++) {
		if (napi_get_named_property(env, obj, h_names[k], &fn) != napi_ok)
			goto fail;
		if (napi_typeof(env, fn, &ty) != napi_ok || ty != napi_function) {
			char msg[96];
			snprintf(msg, sizeof msg, "setHandlers: handlers.%s must be a function", h_names[k]);
			napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
			goto fail;
		}
		if (napi_create_reference(env, fn, 1, &h->fn[k]) != napi_ok)
			goto fail;
	}
	if (napi_create_reference(env, obj, 1, &h->self) != napi_ok ||
	    napi_create_string_utf8(env, "pmemfs-shim", NAPI_AUTO_LENGTH, &name) != napi_ok ||
	    napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, h, set_finalize, h,
					    call_js, &h->tsfn) != napi_ok)
		goto fail;
	/* From here set_finalize owns h. Do not keep the process alive. */
	napi_unref_threadsafe_function(env, h->tsfn);
	pthread_mutex_lock(&g_mu);
	old = g_cur;
	g_cur = h;
	pthread_mutex_unlock(&g_mu);
	if (old)
		napi_release_threadsafe_function(old->tsfn, napi_tsfn_release);
	return NULL;

fail:
	set_finalize(env, h, NULL);
	bool pending = false;
	napi_is_exception_pending(env, &pending);
	if (!pending)
		napi_throw_error(env, NULL, "setHandlers: N-API call failed");
	return NULL;
}
