/*
 * leases.c - the counted leases behind pmemfs_map_direct(), and the helper
 * thread that holds them.
 *
 * Why a helper thread: FUSE tells the daemon the id of the calling THREAD,
 * and the daemon keeps a lease until that id is gone. A lease taken on
 * whatever thread called pmemfs_map_direct() would vanish when that thread
 * exits, with the mapping still live, and could not be dropped by another
 * thread at unmap (EINVAL). So every LEASE and UNLEASE of a direct mapping
 * is issued by one helper thread, started on first use, with every signal
 * blocked, living as long as the process.
 *
 * Why counted: the daemon's lease is one per file and holder (taking it
 * again is a no-op, dropping it once drops it), but a process may map one
 * file many times (PMDK maps a pool's header and its body separately).
 *
 * Locks: table_mu (the list) is taken before agent_mu (the request slot),
 * never the other way; the fork handlers take both in that order so that
 * a child never inherits one held. A caller's own lock taken around calls
 * into the library (the preload's table) comes before both. A child has no helper thread (a new one
 * starts on its first lease) and holds none of its parent's leases: their
 * entries carry the parent's pid and are released without an unlease.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "pmemfs.h"

struct pmemfs_lease_ref {
	struct pmemfs_lease_ref *next;
	dev_t dev;
	ino_t ino;
	pid_t pid;	/* the process whose helper holds the lease */
	int fd;		/* our duplicate of the caller's fd, open while held */
	unsigned refs;
};

struct agent_req {
	int fd;
	unsigned long cmd;
	int done;
	int err;	/* 0 or the ioctl's errno */
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pmemfs_lease_ref *table;

static pthread_mutex_t agent_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t agent_cv = PTHREAD_COND_INITIALIZER;
static pid_t agent_pid;			/* process the helper runs in; 0: none */
static struct agent_req *agent_slot;	/* the request being served */

static void *agent_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&agent_mu);
	for (;;) {
		struct agent_req *r;

		while (!agent_slot || agent_slot->done)
			pthread_cond_wait(&agent_cv, &agent_mu);
		r = agent_slot;
		pthread_mutex_unlock(&agent_mu);
		r->err = pmemfs_ioctl(r->fd, r->cmd, NULL) < 0 ? errno : 0;
		pthread_mutex_lock(&agent_mu);
		r->done = 1;
		pthread_cond_broadcast(&agent_cv);
	}
	return NULL;
}

/* Start the helper in this process if it has none. Called with agent_mu held. */
static int agent_start(void)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int err;

	if (agent_pid == getpid())
		return 0;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);	/* inherited by the helper */
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	err = pthread_create(&t, &attr, agent_main, NULL);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		errno = err;
		return -1;
	}
	pthread_setname_np(t, "pmemfs-lease");
	agent_pid = getpid();
	return 0;
}

/* Run ioctl(fd, cmd) on the helper thread. */
static int agent_ioctl(int fd, unsigned long cmd)
{
	struct agent_req r = { .fd = fd, .cmd = cmd };

	pthread_mutex_lock(&agent_mu);
	if (agent_start() < 0) {
		pthread_mutex_unlock(&agent_mu);
		return -1;
	}
	while (agent_slot)	/* one request at a time */
		pthread_cond_wait(&agent_cv, &agent_mu);
	agent_slot = &r;
	pthread_cond_broadcast(&agent_cv);
	while (!r.done)
		pthread_cond_wait(&agent_cv, &agent_mu);
	agent_slot = NULL;
	pthread_cond_broadcast(&agent_cv);
	pthread_mutex_unlock(&agent_mu);
	if (r.err) {
		errno = r.err;
		return -1;
	}
	return 0;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&table_mu);
	pthread_mutex_lock(&agent_mu);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&agent_mu);
	pthread_mutex_unlock(&table_mu);
}

static void fork_child(void)
{
	pthread_mutex_init(&agent_mu, NULL);
	pthread_cond_init(&agent_cv, NULL);
	pthread_mutex_init(&table_mu, NULL);
	agent_pid = 0;
	agent_slot = NULL;
}

/*
 * Registered when the library is loaded, so before the constructor of any
 * library that depends on it (libpmemfs-preload.so): prepare handlers run
 * in reverse order of registration, so a dependent's lock (taken before
 * ours when it calls in) is taken first at fork too.
 */
__attribute__((constructor)) static void leases_init(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

struct pmemfs_lease_ref *pmemfs_lease_get(int fd)
{
	struct pmemfs_lease_ref *l;
	struct stat st;
	pid_t pid = getpid();

	if (fstat(fd, &st) < 0)
		return NULL;
	pthread_mutex_lock(&table_mu);
	for (l = table; l; l = l->next) {
		if (l->dev == st.st_dev && l->ino == st.st_ino && l->pid == pid) {
			l->refs++;
			goto out;
		}
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		goto out;
	l->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (l->fd < 0 || agent_ioctl(l->fd, PMEMFS_IOC_LEASE) < 0) {
		int err = errno;

		if (l->fd >= 0)
			close(l->fd);
		free(l);
		l = NULL;
		errno = err;
		goto out;
	}
	l->dev = st.st_dev;
	l->ino = st.st_ino;
	l->pid = pid;
	l->refs = 1;
	l->next = table;
	table = l;
out:
	pthread_mutex_unlock(&table_mu);
	return l;
}

int pmemfs_lease_put(struct pmemfs_lease_ref *ref)
{
	struct pmemfs_lease_ref **pp;
	int rc = 0, err = 0;

	pthread_mutex_lock(&table_mu);
	if (--ref->refs == 0) {
		for (pp = &table; *pp; pp = &(*pp)->next) {
			if (*pp == ref) {
				*pp = ref->next;
				break;
			}
		}
		/* EINVAL: revoked after a break, nothing left to drop. */
		if (ref->pid == getpid() && agent_ioctl(ref->fd, PMEMFS_IOC_UNLEASE) < 0 && errno != EINVAL) {
			rc = -1;
			err = errno;
		}
		close(ref->fd);
		free(ref);
	}
	pthread_mutex_unlock(&table_mu);
	if (rc)
		errno = err;
	return rc;
}
