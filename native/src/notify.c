/*
 * notify.c - kernel notifications (fuse_lowlevel_notify_inval_*), written
 * by a helper thread: the kernel may need an answer from us (a page lock
 * held by a pending read) before a notification returns, so the JS thread
 * never waits on one. JS queues; the thread, started at the first notice,
 * sends in order.
 *
 * Shutdown is ordered (sessionStop): notify_drop_queued first (unsent
 * notices are dropped: the kernel forgets its caches of the mount anyway),
 * then every pending request is answered, then notify_join, and only then
 * is the session destroyed. A notification in flight may be waiting for a
 * page lock that a pending read holds; answering first lets it return, so
 * the join cannot hang, and the thread never sees a destroyed session.
 */
#include "session.h"

#include <stdlib.h>
#include <string.h>

struct notice {
	struct notice *next;
	fuse_ino_t ino;		/* inode (inval_inode) or parent (inval_entry) */
	off_t off, len;
	char *name;		/* NULL: inval_inode */
};

static void notice_free(struct notice *n)
{
	free(n->name);
	free(n);
}

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
		notice_free(n);
		pthread_mutex_lock(&g.nmu);
	}
	pthread_mutex_unlock(&g.nmu);
	return NULL;
}

/* Queue n for the thread (started on first use); false (n not taken) if it cannot start or is stopping. */
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
	if (g.nstop) {
		pthread_mutex_unlock(&g.nmu);
		return false;
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

/* Shutdown, step 1: nothing more is queued, and what is queued is never sent. */
void notify_drop_queued(void)
{
	pthread_mutex_lock(&g.nmu);
	g.nstop = true;
	struct notice *n = g.nhead;
	g.nhead = g.ntail = NULL;
	pthread_cond_signal(&g.ncv);
	pthread_mutex_unlock(&g.nmu);
	while (n) {
		struct notice *next = n->next;
		notice_free(n);
		n = next;
	}
}

/* Shutdown, step 2 (after pending requests are answered): wait for the notification in flight, if any. */
void notify_join(void)
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

/*
 * notifyInvalInode(ino, off, len): off -1 drops cached attributes only; len 0 means to the end.
 * Attributes only are sent at once, from this thread: the kernel takes no page or inode lock
 * for them (fuse_reverse_inval_inode), so nothing a pending request holds can block the write,
 * and the caller may reply to a request knowing the kernel has already dropped what it cached
 * (a chmod made by a setxattr of an ACL: the kernel must not answer the next stat with the old
 * mode). Page-cache invalidations go through the helper thread.
 */
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
	if (off < 0) {
		/* -ENOENT: the kernel has no such inode cached; nothing to do. */
		fuse_lowlevel_notify_inval_inode(g.se, (fuse_ino_t)ino, -1, 0);
		return undefined(env);
	}
	struct notice *n = calloc(1, sizeof *n);
	if (!n)
		return undefined(env);
	n->ino = (fuse_ino_t)ino;
	n->off = (off_t)off;
	n->len = (off_t)len;
	if (!notice_push(n))
		notice_free(n);
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
	if (!notice_push(n))
		notice_free(n);
	return undefined(env);
}

bool notify_register(napi_env env, napi_value exports)
{
	napi_property_descriptor props[] = {
		{ "notifyInvalInode", NULL, notify_inval_inode, NULL, NULL, NULL, napi_enumerable, NULL },
		{ "notifyInvalEntry", NULL, notify_inval_entry, NULL, NULL, NULL, napi_enumerable, NULL },
	};
	return napi_define_properties(env, exports, sizeof props / sizeof props[0], props) == napi_ok;
}
