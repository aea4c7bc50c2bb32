/*
 * shim.h - what the three parts of the pmemfs shim share.
 *
 *   hook.c      our fuse_new: copies fuse-native's op table, adds ioctl,
 *               fallocate, a correct utimens and a getattr/fgetattr with
 *               nanosecond times, wraps open/create/mknod/
 *               mkdir/symlink, appends mount args; the caller-context table.
 *   dispatch.c  FUSE worker thread -> JS handler -> reply, through a
 *               napi_threadsafe_function.
 *   binding.c   the module: argument checks, errors, setters, client syscalls.
 */
#ifndef PMEMFS_SHIM_H
#define PMEMFS_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <node_api.h>

/* Who asked, from fuse_get_context() on the worker thread. */
struct shim_caller {
	int32_t pid;
	uint32_t uid, gid, umask;
	int32_t flags;		/* open flags of a create (O_SYNC, O_APPEND...); 0 for other ops */
};

enum shim_kind { SHIM_IOCTL, SHIM_FALLOCATE, SHIM_UTIMENS, SHIM_GETATTR };

/*
 * A getattr reply: a Float64Array of SHIM_STAT_LEN numbers in this order
 * (index.d.ts documents the same order for the JS side).
 */
enum shim_stat_field {
	SHIM_ST_MODE, SHIM_ST_NLINK, SHIM_ST_UID, SHIM_ST_GID, SHIM_ST_RDEV,
	SHIM_ST_SIZE, SHIM_ST_BLKSIZE, SHIM_ST_BLOCKS, SHIM_ST_INO,
	SHIM_ST_ATIME_SEC, SHIM_ST_ATIME_NSEC, SHIM_ST_MTIME_SEC, SHIM_ST_MTIME_NSEC,
	SHIM_ST_CTIME_SEC, SHIM_ST_CTIME_NSEC,
	SHIM_STAT_LEN
};

/* One FUSE request handed to JS; lives on the worker's stack. */
struct shim_req {
	enum shim_kind kind;
	struct shim_caller caller;
	const char *path;
	uint64_t fh;
	/* ioctl */
	uint32_t cmd, flags;
	const void *in;   /* NULL unless _IOC_WRITE with a size */
	size_t in_size;
	void *out;        /* NULL unless _IOC_READ with a size */
	size_t out_size;
	/* fallocate */
	int mode;
	off_t offset, length;
	/* utimens */
	struct timespec tv[2];
	/* getattr/fgetattr: filled from the reply; has_fh for fgetattr */
	struct stat *st;
	int has_fh;
	/* completion, signalled by the JS reply */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	int result;
};

/* dispatch.c */
int shim_dispatch(struct shim_req *r);
napi_value shim_set_handlers(napi_env env, napi_callback_info info);

/* hook.c */
void shim_caller_now(struct shim_caller *c);
int shim_take_caller(const char *path, struct shim_caller *out);
void shim_set_prefix(const char *prefix);
void shim_set_extra_args(char **argv, size_t argc);
int shim_hook_installed(void);

/* binding.c */
napi_value shim_caller_object(napi_env env, const struct shim_caller *c);

#endif
