/*
 * ioctls.c - libpmemfs's thin calls: one function per pmemfs ioctl, plus
 * the loops the ABI asks callers to run (GETBMAP while PMEMFS_BMAP_MORE,
 * PIN while done < len), as src/cli/io/ioctls.ts does for TypeScript.
 * Every failure is -1 (or NULL) with errno, the daemon's unchanged.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "internal.h"
#include "pmemfs.h"

void *pmemfs_sys_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
	return r == -1 ? MAP_FAILED : (void *)r;
}

int pmemfs_sys_munmap(void *addr, size_t len)
{
	return (int)syscall(SYS_munmap, addr, len);
}

int pmemfs_ioctl(int fd, unsigned long cmd, void *arg)
{
	int r;

	do
		r = ioctl(fd, cmd, arg);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -1 : 0;
}

int pmemfs_region(int fd, struct pmemfs_region *region)
{
	struct pmemfs_region r;

	memset(&r, 0, sizeof(r));
	if (pmemfs_ioctl(fd, PMEMFS_IOC_REGION, &r) < 0)
		return -1;
	r.path[sizeof(r.path) - 1] = '\0';
	*region = r;
	return 0;
}

int pmemfs_is_pmemfs(int fd, struct pmemfs_region *region)
{
	struct statfs sfs;
	struct pmemfs_region r;
	int saved = errno;

	if (fstatfs(fd, &sfs) < 0)
		return -1;
	if ((unsigned long)sfs.f_type != PMEMFS_FUSE_SUPER_MAGIC)
		return 0;
	if (pmemfs_region(fd, &r) < 0) {
		errno = saved;	/* "no" is an answer, not an error */
		return 0;
	}
	if (region)
		*region = r;
	return 1;
}

ssize_t pmemfs_state(int fd, char *buf, size_t size)
{
	ssize_t n;

	if (size == 0) {
		errno = ERANGE;
		return -1;
	}
	n = fgetxattr(fd, PMEMFS_XATTR_STATE, buf, size - 1);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

int pmemfs_seal(int fd) { return pmemfs_ioctl(fd, PMEMFS_IOC_SEAL, NULL); }
int pmemfs_unseal(int fd) { return pmemfs_ioctl(fd, PMEMFS_IOC_UNSEAL, NULL); }
int pmemfs_lease(int fd) { return pmemfs_ioctl(fd, PMEMFS_IOC_LEASE, NULL); }
int pmemfs_unlease(int fd) { return pmemfs_ioctl(fd, PMEMFS_IOC_UNLEASE, NULL); }
int pmemfs_break(int fd) { return pmemfs_ioctl(fd, PMEMFS_IOC_BREAK, NULL); }

int pmemfs_unpin(int fd, uint64_t id)
{
	struct pmemfs_unpin u = { .id = id };

	return pmemfs_ioctl(fd, PMEMFS_IOC_UNPIN, &u);
}

int pmemfs_unpin_all(int fd, struct pmemfs_pins *pins)
{
	int first = 0;

	if (!pins)
		return 0;
	for (size_t i = 0; i < pins->count; i++)
		if (pmemfs_unpin(fd, pins->recs[i].id) < 0 && !first)
			first = errno;
	free(pins);
	if (first) {
		errno = first;
		return -1;
	}
	return 0;
}

/* Append n records to *pins (grown by doubling). */
static int pins_append(struct pmemfs_pins **pins, size_t *cap,
		       const struct pmemfs_pin_rec *recs, size_t n)
{
	struct pmemfs_pins *p = *pins;

	if (p->count + n > *cap) {
		size_t want = *cap * 2 > p->count + n ? *cap * 2 : p->count + n;

		p = realloc(p, sizeof(*p) + want * sizeof(p->recs[0]));
		if (!p)
			return -1;
		*pins = p;
		*cap = want;
	}
	memcpy(&p->recs[p->count], recs, n * sizeof(recs[0]));
	p->count += n;
	return 0;
}

struct pmemfs_pins *pmemfs_pin(int fd, uint64_t off, uint64_t len)
{
	size_t cap = PMEMFS_PIN_MAX_RECS;
	struct pmemfs_pins *pins = malloc(sizeof(*pins) + cap * sizeof(pins->recs[0]));
	uint64_t done = 0;
	int err;

	if (!pins)
		return NULL;
	pins->count = 0;
	/* At least one call, so the daemon judges an empty range (EINVAL). */
	do {
		struct pmemfs_pin p;

		memset(&p, 0, sizeof(p));
		p.off = off + done;
		p.len = len - done;
		if (pmemfs_ioctl(fd, PMEMFS_IOC_PIN, &p) < 0)
			goto fail;
		if (p.count > PMEMFS_PIN_MAX_RECS)
			p.count = PMEMFS_PIN_MAX_RECS;
		if (pins_append(&pins, &cap, p.recs, p.count) < 0)
			goto fail;
		if (p.done == 0 && len > 0) {
			errno = EIO;	/* the daemon made no progress */
			goto fail;
		}
		done += p.done;
	} while (done < len);
	return pins;
fail:
	err = errno;
	pmemfs_unpin_all(fd, pins);
	errno = err;
	return NULL;
}

int pmemfs_bmap(int fd, uint64_t start, uint64_t end,
		struct pmemfs_bmap_rec **recs, size_t *count, uint64_t *fsize)
{
	struct pmemfs_bmap *b = malloc(sizeof(*b));
	struct pmemfs_bmap_rec *out = NULL;
	size_t n = 0, cap = 0;
	uint64_t at = start;

	if (!b)
		return -1;
	for (;;) {
		memset(b, 0, sizeof(*b));
		b->start = at;
		if (pmemfs_ioctl(fd, PMEMFS_IOC_GETBMAP, b) < 0)
			goto fail;
		if (b->count > PMEMFS_BMAP_MAX_RECS)
			b->count = PMEMFS_BMAP_MAX_RECS;
		if (n + b->count > cap) {
			size_t want = cap ? cap * 2 : PMEMFS_BMAP_MAX_RECS;
			void *p;

			while (want < n + b->count)
				want *= 2;
			p = realloc(out, want * sizeof(*out));
			if (!p)
				goto fail;
			out = p;
			cap = want;
		}
		memcpy(out + n, b->recs, b->count * sizeof(*out));
		for (size_t i = n; i < n + b->count; i++)	/* either mark means a hole */
			if (out[i].phys == PMEMFS_BMAP_PHYS_NONE)
				out[i].flags |= PMEMFS_BMAP_F_HOLE;
		n += b->count;
		if (!(b->flags & PMEMFS_BMAP_MORE) || (end && b->next >= end))
			break;
		if (b->next <= at) {
			errno = EIO;	/* no progress */
			goto fail;
		}
		at = b->next;
	}
	if (fsize)
		*fsize = b->fsize;
	free(b);
	*recs = out;
	*count = n;
	return 0;
fail:
	{
		int err = errno;

		free(b);
		free(out);
		errno = err;
	}
	return -1;
}
