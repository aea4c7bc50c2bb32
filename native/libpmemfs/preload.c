/*
 * preload.c - libpmemfs-preload.so: LD_PRELOAD=libpmemfs-preload.so PROGRAM
 * gives unmodified programs MAP_DIRECT / MAP_SYNC mappings of pmemfs files
 * (spec §5a), built on pmemfs_map_direct().
 *
 * Which calls it takes: mmap/mmap64 with bit 0x80000 set on a file of a
 * pmemfs mount (fstatfs f_type FUSE_SUPER_MAGIC, and the file answers
 * PMEMFS_IOC_REGION). 0x80000 is MAP_SYNC on x86-64 (<linux/mman.h>) and
 * the proposed MAP_DIRECT; both mean "the block map must not move under
 * this mapping", so both get the same answer:
 *
 *   MAP_SHARED_VALIDATE | bit   the region's blocks mapped directly under
 *                               a lease (holes filled and made durable
 *                               before mmap returns); PROT_WRITE required
 *                               (EACCES without, MAP_DIRECT's rule);
 *                               MAP_FIXED, MAP_FIXED_NOREPLACE, MAP_POPULATE
 *                               honoured, MAP_NORESERVE, MAP_NONBLOCK,
 *                               MAP_DENYWRITE, MAP_EXECUTABLE, MAP_STACK
 *                               ignored (as the kernel does); any other
 *                               flag: EOPNOTSUPP, as MAP_SHARED_VALIDATE
 *                               answers flags a file cannot honour
 *   MAP_PRIVATE | bit           EINVAL (MAP_DIRECT's rule)
 *   MAP_SHARED | bit            passed through: legacy MAP_SHARED ignores
 *                               unknown flags, so the kernel does too
 *
 * A dax=never mount answers EOPNOTSUPP (no leases there), which is where
 * PMDK falls back to a plain mapping.
 *
 * Read-only requests: MAP_DIRECT's EACCES without PROT_WRITE is the
 * contract, but MAP_SYNC allows read-only mappings, and PMDK opens pools
 * read-only with MAP_SYNC (pmempool check, info of a pool set) and takes
 * EACCES as fatal ("Permission denied"). PMEMFS_PRELOAD_RDONLY=passthrough
 * leaves such requests to the kernel, which refuses MAP_SYNC on FUSE with
 * EOPNOTSUPP, where PMDK falls back to a plain read-only mapping. Everything else - other files,
 * anonymous memory, calls without the bit - goes to the next mmap
 * (dlsym(RTLD_NEXT)) untouched.
 *
 * munmap: the real munmap first, then the pages are forgotten from their
 * direct mapping (pmemfs_unmap_direct_range, KEEP); the lease is dropped
 * once no page of any direct mapping of the file is left in the process.
 * So munmap of part of a direct mapping unmaps those pages and keeps the
 * lease for the rest. A MAP_FIXED mapping (direct or not) over pages of a
 * direct mapping takes them over the same way. Process exit ends every
 * lease without help: the daemon notices the holder is gone within a
 * second. No exit handler drops leases early, since other threads may
 * still be storing through the mappings until the process is gone.
 *
 * Not handled: mremap(2) of a direct mapping (the table would go stale;
 * PMDK does not) and shmat/other ways of replacing pages.
 *
 * PMEMFS_PRELOAD_DEBUG=1 prints one line on stderr per direct mapping and
 * per munmap that ends one.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "pmemfs.h"

#define MAP_DIRECT_OR_SYNC 0x80000
#define MAP_TYPE_BITS 0x0f
#define DIRECT_HONOURED (MAP_FIXED | MAP_FIXED_NOREPLACE | MAP_POPULATE)
#define DIRECT_IGNORED (MAP_NORESERVE | MAP_NONBLOCK | MAP_DENYWRITE | MAP_EXECUTABLE | MAP_STACK)

#define EXPORT __attribute__((visibility("default")))

/* mmap64 is mmap here: x86-64 (where 0x80000 is MAP_SYNC) has a 64-bit off_t. */
_Static_assert(sizeof(off_t) == 8, "libpmemfs-preload needs a 64-bit off_t");

typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

static mmap_fn real_mmap;
static munmap_fn real_munmap;
static int debug;
static int rdonly_passthrough;	/* PMEMFS_PRELOAD_RDONLY=passthrough */

/* The direct mappings of this process: [start, end) spans and their mapping. */
struct entry {
	uintptr_t start, end;
	struct pmemfs_direct *m;
};

static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry *table;
static size_t ntable, captable;
static atomic_size_t nlive;	/* ntable, read without the lock: the fast path of munmap */

static void lock(void) { pthread_mutex_lock(&table_mu); }
static void unlock(void) { pthread_mutex_unlock(&table_mu); }
static void child_reset(void) { pthread_mutex_init(&table_mu, NULL); }

__attribute__((constructor)) static void preload_init(void)
{
	const char *d = getenv("PMEMFS_PRELOAD_DEBUG");
	const char *ro = getenv("PMEMFS_PRELOAD_RDONLY");

	debug = d && *d && strcmp(d, "0") != 0;
	rdonly_passthrough = ro && strcmp(ro, "passthrough") == 0;
	real_mmap = (mmap_fn)dlsym(RTLD_NEXT, "mmap");
	real_munmap = (munmap_fn)dlsym(RTLD_NEXT, "munmap");
	pthread_atfork(lock, unlock, child_reset);
}

/* The next mmap; the raw system call if called before the constructor ran. */
static void *next_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long r;

	if (real_mmap)
		return real_mmap(addr, len, prot, flags, fd, off);
	r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	return r == -1 ? MAP_FAILED : (void *)r;
}

static int next_munmap(void *addr, size_t len)
{
	if (real_munmap)
		return real_munmap(addr, len);
	return (int)syscall(SYS_munmap, addr, len);
}

/* Pages [addr, addr+len) are no longer their direct mappings' (already unmapped or replaced). */
static void forget(void *addr, size_t len)
{
	uintptr_t s = (uintptr_t)addr, e = s + len;
	int saved = errno;

	if (atomic_load(&nlive) == 0)
		return;
	lock();
	for (size_t i = 0; i < ntable;) {
		struct entry *x = &table[i];
		int r;

		if (x->end <= s || e <= x->start) {
			i++;
			continue;
		}
		r = pmemfs_unmap_direct_range(x->m, addr, len, PMEMFS_UNMAP_KEEP);
		if (r == 0) {
			i++;
			continue;
		}
		if (debug)
			dprintf(2, "libpmemfs-preload: %p..%p unmapped: lease reference dropped%s%s\n",
				(void *)x->start, (void *)x->end, r < 0 ? ": " : "", r < 0 ? strerror(errno) : "");
		*x = table[--ntable];	/* r == 1 or -1: the mapping is gone either way */
		atomic_store(&nlive, ntable);
	}
	unlock();
	errno = saved;
}

static int remember(struct pmemfs_direct *m, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	lock();
	if (ntable == captable) {
		size_t want = captable ? captable * 2 : 16;
		struct entry *t = realloc(table, want * sizeof(*t));

		if (!t) {
			unlock();
			return -1;
		}
		table = t;
		captable = want;
	}
	len = (len + pg - 1) / pg * pg;
	table[ntable++] = (struct entry){ (uintptr_t)m->addr, (uintptr_t)m->addr + len, m };
	atomic_store(&nlive, ntable);
	unlock();
	return 0;
}

static void *fail(int err)
{
	errno = err;
	return MAP_FAILED;
}

/* mmap with the bit on a pmemfs file; *taken = 0 when it is not ours to answer. */
static void *map_direct(void *addr, size_t len, int prot, int flags, int fd, off_t off, int *taken)
{
	long pg = sysconf(_SC_PAGESIZE);
	struct pmemfs_direct *m;
	int lf = PMEMFS_MAP_PAST_EOF, type = flags & MAP_TYPE_BITS;

	*taken = pmemfs_is_pmemfs(fd, NULL) == 1 && type != MAP_SHARED;
	if (!*taken)
		return MAP_FAILED;
	if (type == MAP_PRIVATE)
		return fail(EINVAL);
	if (type != MAP_SHARED_VALIDATE)
		return fail(EINVAL);
	if (flags & ~(MAP_TYPE_BITS | MAP_DIRECT_OR_SYNC | DIRECT_HONOURED | DIRECT_IGNORED))
		return fail(EOPNOTSUPP);
	if (!(prot & PROT_WRITE)) {
		*taken = !rdonly_passthrough;
		return fail(EACCES);
	}
	if (len == 0 || off < 0 || off % pg)
		return fail(EINVAL);
	if (flags & MAP_FIXED)
		lf |= PMEMFS_MAP_FIXED;
	else if (flags & MAP_FIXED_NOREPLACE)
		lf |= PMEMFS_MAP_NOREPLACE;
	if (flags & MAP_POPULATE)
		lf |= PMEMFS_MAP_POPULATE;
	m = pmemfs_map_direct(addr, len, prot, lf, fd, (uint64_t)off);
	if (!m) {
		if (debug)
			dprintf(2, "libpmemfs-preload: fd %d: direct mapping refused: %s\n", fd, strerror(errno));
		return MAP_FAILED;
	}
	if (flags & MAP_FIXED)
		forget(m->addr, len);	/* it replaced whatever was there */
	if (remember(m, len) < 0) {
		pmemfs_unmap_direct(m);
		return fail(ENOMEM);
	}
	if (debug)
		dprintf(2, "libpmemfs-preload: fd %d: %zu bytes at offset %lld mapped direct at %p from %s (%zu extents, lease held)\n",
			fd, len, (long long)off, m->addr, m->region.path, m->nextents);
	return m->addr;
}

EXPORT void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *r;

	if ((flags & MAP_DIRECT_OR_SYNC) && !(flags & MAP_ANONYMOUS) && fd >= 0) {
		int taken;

		r = map_direct(addr, len, prot, flags, fd, off, &taken);
		if (taken)
			return r;
	}
	r = next_mmap(addr, len, prot, flags, fd, off);
	if (r != MAP_FAILED && (flags & MAP_FIXED))
		forget(r, len);
	return r;
}

EXPORT void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

EXPORT int munmap(void *addr, size_t len)
{
	int r = next_munmap(addr, len);

	if (r == 0)
		forget(addr, len);
	return r;
}
