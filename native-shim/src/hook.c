/*
 * hook.c - our fuse_new, found before libfuse's because this module is
 * loaded RTLD_GLOBAL ahead of fuse-native. It copies fuse-native's op table,
 * adds the ops fuse-native lacks (ioctl, fallocate), a utimens that
 * understands UTIME_OMIT/UTIME_NOW and a getattr/fgetattr that keep
 * nanoseconds (fuse-native's round times to milliseconds), wraps the ops that need the caller's
 * context or direct_io, appends the configured args, and calls the real
 * fuse_new (FUSE_2.6). Everything here runs on FUSE threads except the
 * setters, which the JS thread calls before mounting.
 */
#include "shim.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <fuse.h>

typedef struct fuse *(*fuse_new_fn)(struct fuse_chan *, struct fuse_args *,
				    const struct fuse_operations *, size_t, void *);

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fuse_operations g_orig;  /* fuse-native's table */
static struct fuse_operations g_ops;   /* what libfuse gets */
static int g_hooked;
static char **g_extra;                 /* setMountArgs, owned */
static size_t g_nextra;
static char g_prefix[256];             /* setDirectIoPrefix; "" = off */

/* ------------------------------------------------ caller-context table */

/* A create-like op in flight; on the worker's stack, linked while it runs. */
struct stash {
	struct stash *next;
	const char *path;
	struct shim_caller caller;
};
static struct stash *g_stash;

void shim_caller_now(struct shim_caller *c)
{
	struct fuse_context *fc = fuse_get_context();

	c->pid = fc ? fc->pid : 0;
	c->uid = fc ? fc->uid : 0;
	c->gid = fc ? fc->gid : 0;
	c->umask = fc ? fc->umask : 0;
	c->flags = 0;
}

static void stash_push(struct stash *s, const char *path)
{
	s->path = path;
	shim_caller_now(&s->caller);
	pthread_mutex_lock(&g_mu);
	s->next = g_stash;
	g_stash = s;
	pthread_mutex_unlock(&g_mu);
}

/* Unlink s if JS has not taken it. */
static void stash_drop(struct stash *s)
{
	pthread_mutex_lock(&g_mu);
	for (struct stash **pp = &g_stash; *pp; pp = &(*pp)->next) {
		if (*pp == s) {
			*pp = s->next;
			break;
		}
	}
	pthread_mutex_unlock(&g_mu);
}

int shim_take_caller(const char *path, struct shim_caller *out)
{
	int found = 0;

	pthread_mutex_lock(&g_mu);
	for (struct stash **pp = &g_stash; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->path, path) == 0) {
			*out = (*pp)->caller;
			*pp = (*pp)->next;
			found = 1;
			break;
		}
	}
	pthread_mutex_unlock(&g_mu);
	return found;
}

/* ------------------------------------------------------------- setters */

void shim_set_prefix(const char *prefix)
{
	pthread_mutex_lock(&g_mu);
	snprintf(g_prefix, sizeof g_prefix, "%s", prefix);
	pthread_mutex_unlock(&g_mu);
}

void shim_set_extra_args(char **argv, size_t argc)
{
	pthread_mutex_lock(&g_mu);
	char **old = g_extra;
	size_t nold = g_nextra;
	g_extra = argv;
	g_nextra = argc;
	pthread_mutex_unlock(&g_mu);
	for (size_t i = 0; i < nold; i++)
		free(old[i]);
	free(old);
}

int shim_hook_installed(void)
{
	pthread_mutex_lock(&g_mu);
	int h = g_hooked;
	pthread_mutex_unlock(&g_mu);
	return h;
}

/* ------------------------------------------------------------ new ops */

static int op_ioctl(const char *path, int cmd, void *arg, struct fuse_file_info *fi,
		    unsigned int flags, void *data)
{
	struct shim_req r;
	unsigned int ucmd = (unsigned int)cmd;
	size_t size = _IOC_SIZE(ucmd);

	(void)arg;
	memset(&r, 0, sizeof r);
	r.kind = SHIM_IOCTL;
	r.path = path;
	r.cmd = ucmd;
	r.flags = flags;
	r.fh = fi ? fi->fh : 0;
	if (data && size) {
		if (_IOC_DIR(ucmd) & _IOC_WRITE) {
			r.in = data;
			r.in_size = size;
		}
		if (_IOC_DIR(ucmd) & _IOC_READ) {
			/* libfuse hands _IOR ioctls an uninitialised buffer. */
			if (!r.in)
				memset(data, 0, size);
			r.out = data;
			r.out_size = size;
		}
	}
	return shim_dispatch(&r);
}

static int op_fallocate(const char *path, int mode, off_t offset, off_t length,
			struct fuse_file_info *fi)
{
	struct shim_req r;

	memset(&r, 0, sizeof r);
	r.kind = SHIM_FALLOCATE;
	r.path = path;
	r.mode = mode;
	r.offset = offset;
	r.length = length;
	r.fh = fi ? fi->fh : 0;
	return shim_dispatch(&r);
}

static int op_utimens(const char *path, const struct timespec tv[2])
{
	struct shim_req r;

	memset(&r, 0, sizeof r);
	r.kind = SHIM_UTIMENS;
	r.path = path;
	if (tv) {
		r.tv[0] = tv[0];
		r.tv[1] = tv[1];
	} else {
		r.tv[0].tv_nsec = r.tv[1].tv_nsec = UTIME_NOW;
	}
	return shim_dispatch(&r);
}

/*
 * getattr/fgetattr: fuse-native's pass times as milliseconds (and lose the
 * rest); ours carry seconds and nanoseconds, like the media.
 */
static int op_fgetattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	struct shim_req r;

	memset(&r, 0, sizeof r);
	r.kind = SHIM_GETATTR;
	r.path = path;
	r.st = st;
	r.has_fh = fi != NULL;
	r.fh = fi ? fi->fh : 0;
	return shim_dispatch(&r);
}

static int op_getattr(const char *path, struct stat *st)
{
	return op_fgetattr(path, st, NULL);
}

/* ------------------------------------------------------ wrapped ops */

static void mark_direct_io(const char *path, struct fuse_file_info *fi)
{
	pthread_mutex_lock(&g_mu);
	size_t n = strlen(g_prefix);
	if (fi && n && strncmp(path, g_prefix, n) == 0)
		fi->direct_io = 1;
	pthread_mutex_unlock(&g_mu);
}

static int w_open(const char *path, struct fuse_file_info *fi)
{
	int rc = g_orig.open(path, fi);

	if (rc == 0)
		mark_direct_io(path, fi);
	return rc;
}

static int w_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	struct stash s;

	stash_push(&s, path);
	s.caller.flags = fi->flags;	/* fuse-native's create drops them: O_SYNC and O_APPEND must reach the handle */
	int rc = g_orig.create(path, mode, fi);
	stash_drop(&s);
	if (rc == 0)
		mark_direct_io(path, fi);
	return rc;
}

static int w_mknod(const char *path, mode_t mode, dev_t dev)
{
	struct stash s;

	stash_push(&s, path);
	int rc = g_orig.mknod(path, mode, dev);
	stash_drop(&s);
	return rc;
}

static int w_mkdir(const char *path, mode_t mode)
{
	struct stash s;

	stash_push(&s, path);
	int rc = g_orig.mkdir(path, mode);
	stash_drop(&s);
	return rc;
}

static int w_symlink(const char *target, const char *linkpath)
{
	struct stash s;

	stash_push(&s, linkpath);
	int rc = g_orig.symlink(target, linkpath);
	stash_drop(&s);
	return rc;
}

/*
 * Writes: the writer's context, keyed "\001write:FH", so the daemon can drop
 * set-user-ID/set-group-ID on a write by a process without CAP_FSETID, as
 * Linux does (libfuse 2 does not forward FUSE_WRITE_KILL_SUIDGID).
 */
static int w_write(const char *path, const char *buf, size_t size, off_t off,
		   struct fuse_file_info *fi)
{
	struct stash s;
	char key[48];

	snprintf(key, sizeof key, "\001write:%llu", (unsigned long long)fi->fh);
	stash_push(&s, key);
	int rc = g_orig.write(path, buf, size, off, fi);
	stash_drop(&s);
	return rc;
}

/* ------------------------------------------------------------ fuse_new */

struct fuse *fuse_new(struct fuse_chan *ch, struct fuse_args *args,
		      const struct fuse_operations *op, size_t op_size, void *user_data)
{
	static fuse_new_fn real;
	struct fuse_args a = FUSE_ARGS_INIT(0, NULL);
	struct fuse *f = NULL;
	int ok = 1;

	if (!real)
		*(void **)&real = dlvsym(RTLD_NEXT, "fuse_new", "FUSE_2.6");
	if (!real) {
		fprintf(stderr, "pmemfs-shim: libfuse fuse_new@FUSE_2.6 not found: %s\n", dlerror());
		return NULL;
	}

	pthread_mutex_lock(&g_mu);
	memset(&g_orig, 0, sizeof g_orig);
	memcpy(&g_orig, op, op_size < sizeof g_orig ? op_size : sizeof g_orig);
	g_ops = g_orig;
	g_ops.flag_utime_omit_ok = 1;
	g_ops.ioctl = op_ioctl;
	g_ops.fallocate = op_fallocate;
	g_ops.utimens = op_utimens;
	g_ops.getattr = op_getattr;
	g_ops.fgetattr = op_fgetattr;
	if (g_orig.open)
		g_ops.open = w_open;
	if (g_orig.create)
		g_ops.create = w_create;
	if (g_orig.mknod)
		g_ops.mknod = w_mknod;
	if (g_orig.mkdir)
		g_ops.mkdir = w_mkdir;
	if (g_orig.symlink)
		g_ops.symlink = w_symlink;
	if (g_orig.write)
		g_ops.write = w_write;

	/* Our own copy: fuse-native's args may not be heap-allocated. */
	for (int i = 0; ok && args && i < args->argc; i++)
		ok = fuse_opt_add_arg(&a, args->argv[i]) == 0;
	if (ok && a.argc == 0)
		ok = fuse_opt_add_arg(&a, "pmemfs") == 0;
	for (size_t i = 0; ok && i < g_nextra; i++)
		ok = fuse_opt_add_arg(&a, g_extra[i]) == 0;
	g_hooked = 1;
	pthread_mutex_unlock(&g_mu);

	if (ok)
		f = real(ch, &a, &g_ops, sizeof g_ops, user_data);
	else
		fprintf(stderr, "pmemfs-shim: out of memory building fuse args\n");
	/* libfuse does not keep args (its own fuse_setup frees them after fuse_new). */
	fuse_opt_free_args(&a);
	return f;
}
