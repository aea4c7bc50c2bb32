/*
 * direct.c - pmemfs_map_direct(): MAP_DIRECT emulation in C, what
 * src/mapdirect.ts does for Node, as one contiguous mapping.
 *
 * Under a lease (leases.c) the file's block map cannot change, so its
 * physical extents may be mapped straight from the region file: an address
 * range is reserved PROT_NONE, then each extent is mmap'ed MAP_SHARED|
 * MAP_FIXED from the region file at its place. A file extent and its
 * region extent must start at the same offset within a page, which holds
 * whenever the block size is a multiple of the page size (mkfs.pmemfs
 * allows 4 KiB to 64 KiB).
 *
 * A mapping remembers which of its pages are still mapped (`live`), so
 * that part of it can be unmapped (munmap(2) of part of a mapping, under
 * the preload) without ever unmapping pages that are no longer its own,
 * and so that the lease is dropped only after the last page is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"
#include "pmemfs.h"

#define MAP_FLAGS (PMEMFS_MAP_FIXED | PMEMFS_MAP_NOREPLACE | PMEMFS_MAP_PAST_EOF | PMEMFS_MAP_POPULATE)
#define BAD_EXTENT (PMEMFS_BMAP_F_HOLE | PMEMFS_BMAP_F_UNWRITTEN | PMEMFS_BMAP_F_SHARED)

struct span {
	uintptr_t start, end;
};

struct direct {
	struct pmemfs_direct pub;	/* first: a pmemfs_direct * is a direct * */
	struct pmemfs_lease_ref *lease;
	struct pmemfs_bmap_rec *ext;
	struct span *live;		/* pages still mapped, in address order */
	size_t nlive;
};

static uintptr_t page_size(void) { return (uintptr_t)sysconf(_SC_PAGESIZE); }
static uint64_t down(uint64_t x, uint64_t a) { return x - x % a; }
static uint64_t up(uint64_t x, uint64_t a) { return down(x + a - 1, a); }

/*
 * The physical extents of file bytes [off, end), merged where contiguous,
 * into d->ext. Under the lease every byte inside EOF is mapped, written and
 * unshared; anything else means the daemon broke that promise (EIO).
 */
static int direct_extents(struct direct *d, const struct pmemfs_bmap_rec *recs,
			  size_t n, uint64_t off, uint64_t end)
{
	uint64_t covered = 0;

	d->ext = calloc(n ? n : 1, sizeof(*d->ext));
	if (!d->ext)
		return -1;
	for (size_t i = 0; i < n; i++) {
		const struct pmemfs_bmap_rec *r = &recs[i];
		uint64_t s = r->file_off > off ? r->file_off : off;
		uint64_t e = r->file_off + r->len < end ? r->file_off + r->len : end;
		struct pmemfs_bmap_rec *last = d->pub.nextents ? &d->ext[d->pub.nextents - 1] : NULL;
		uint64_t phys;

		if (e <= s)
			continue;
		if (r->phys == PMEMFS_BMAP_PHYS_NONE || (r->flags & BAD_EXTENT)) {
			errno = EIO;
			return -1;
		}
		phys = r->phys + (s - r->file_off);
		if (last && last->file_off + last->len == s && last->phys + last->len == phys) {
			last->len += e - s;
		} else {
			d->ext[d->pub.nextents++] = (struct pmemfs_bmap_rec){
				.file_off = s, .len = e - s, .phys = phys,
				.flags = r->flags & PMEMFS_BMAP_F_SEALED,
			};
		}
		covered += e - s;
	}
	if (covered != end - off) {
		errno = EIO;	/* the block map does not cover the range */
		return -1;
	}
	d->pub.extents = d->ext;
	return 0;
}

/* Reserve the address range: PROT_NONE, at addr as the flags say. */
static void *reserve(void *addr, size_t span, int flags)
{
	int mf = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
	void *base;

	if (flags & PMEMFS_MAP_FIXED)
		mf |= MAP_FIXED;
	else if (flags & PMEMFS_MAP_NOREPLACE)
		mf |= MAP_FIXED_NOREPLACE;
	base = pmemfs_sys_mmap(addr, span, PROT_NONE, mf, -1, 0);
	if (base != MAP_FAILED && (flags & PMEMFS_MAP_NOREPLACE) && base != addr) {
		pmemfs_sys_munmap(base, span);	/* a kernel before 4.17 took it as a hint */
		errno = EEXIST;
		return MAP_FAILED;
	}
	return base;
}

/* Map each extent from the region file into [base, ...), base = file offset astart. */
static int map_extents(struct direct *d, uintptr_t base, uint64_t astart, int prot, int flags)
{
	uint64_t pg = page_size();
	int mf = MAP_SHARED | MAP_FIXED | ((flags & PMEMFS_MAP_POPULATE) ? MAP_POPULATE : 0);
	int rfd = open(d->pub.region.path, ((prot & PROT_WRITE) ? O_RDWR : O_RDONLY) | O_CLOEXEC);

	if (rfd < 0)
		return -1;
	for (size_t i = 0; i < d->pub.nextents; i++) {
		const struct pmemfs_bmap_rec *x = &d->ext[i];
		uint64_t fs = down(x->file_off, pg), fe = up(x->file_off + x->len, pg);

		if (x->phys % pg != x->file_off % pg) {
			errno = EINVAL;	/* block size not a multiple of the page size */
			goto fail;
		}
		if (pmemfs_sys_mmap((void *)(base + (fs - astart)), fe - fs, prot, mf,
				    rfd, (off_t)(x->phys - (x->file_off - fs))) == MAP_FAILED)
			goto fail;
	}
	close(rfd);	/* a mapping outlives its descriptor */
	return 0;
fail:
	{
		int err = errno;

		close(rfd);
		errno = err;
	}
	return -1;
}

static void direct_free(struct direct *d)
{
	free(d->ext);
	free(d->live);
	free(d);
}

struct pmemfs_direct *pmemfs_map_direct(void *addr, size_t len, int prot,
					int flags, int fd, uint64_t off)
{
	uint64_t pg = page_size(), fsize, end, fend, astart = 0, aend = 0;
	struct pmemfs_bmap_rec *recs = NULL;
	struct direct *d;
	size_t nrecs;
	void *base = MAP_FAILED;
	int err;

	if ((flags & ~MAP_FLAGS) ||
	    ((flags & PMEMFS_MAP_FIXED) && (flags & PMEMFS_MAP_NOREPLACE)) ||
	    ((flags & (PMEMFS_MAP_FIXED | PMEMFS_MAP_NOREPLACE)) && ((uintptr_t)addr % pg || off % pg)) ||
	    off + len < off) {
		errno = EINVAL;
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->lease = pmemfs_lease_get(fd);
	if (!d->lease) {
		free(d);
		return NULL;
	}
	/* The lease's allocations durable before the first store (MAP_SYNC). */
	if (fsync(fd) < 0 || pmemfs_region(fd, &d->pub.region) < 0)
		goto fail;
	if (pmemfs_bmap(fd, down(off, pg), len ? off + len : 0, &recs, &nrecs, &fsize) < 0)
		goto fail;
	end = len ? off + len : fsize;
	if (off >= end || (end > fsize && !(flags & PMEMFS_MAP_PAST_EOF))) {
		errno = ENXIO;
		goto fail;
	}
	/* File bytes [off, fend) are inside EOF; any pages after them stay PROT_NONE. */
	fend = end < fsize ? end : fsize;
	if (fend < off)
		fend = off;
	if (direct_extents(d, recs, nrecs, off, fend) < 0)
		goto fail;
	free(recs);
	recs = NULL;

	astart = down(off, pg);
	aend = up(end, pg);
	base = reserve(addr, aend - astart, flags);
	if (base == MAP_FAILED || map_extents(d, (uintptr_t)base, astart, prot, flags) < 0)
		goto fail;
	d->live = malloc(sizeof(*d->live));
	if (!d->live)
		goto fail;
	d->live[0] = (struct span){ (uintptr_t)base, (uintptr_t)base + (aend - astart) };
	d->nlive = 1;
	d->pub.addr = (char *)base + (off - astart);
	d->pub.off = off;
	d->pub.len = end - off;
	return &d->pub;
fail:
	err = errno;
	if (base != MAP_FAILED)
		pmemfs_sys_munmap(base, aend - astart);
	free(recs);
	pmemfs_lease_put(d->lease);
	direct_free(d);
	errno = err;
	return NULL;
}

/* Drop the lease reference and free: the last step of an unmap. */
static int release(struct direct *d)
{
	int rc = pmemfs_lease_put(d->lease);
	int err = errno;

	direct_free(d);
	errno = err;
	return rc;
}

int pmemfs_unmap_direct(struct pmemfs_direct *m)
{
	struct direct *d = (struct direct *)m;

	if (!m)
		return 0;
	for (size_t i = 0; i < d->nlive; i++)
		pmemfs_sys_munmap((void *)d->live[i].start, d->live[i].end - d->live[i].start);
	return release(d);
}

int pmemfs_unmap_direct_range(struct pmemfs_direct *m, void *addr, size_t len, int flags)
{
	struct direct *d = (struct direct *)m;
	uintptr_t pg = page_size(), s = (uintptr_t)addr, e;
	struct span *out;
	size_t n = 0;

	if ((flags & ~PMEMFS_UNMAP_KEEP) || s % pg || s + len < s) {
		errno = EINVAL;
		return -1;
	}
	e = up(s + len, pg);
	/* Each live span loses [s, e): at most one more span than before. */
	out = malloc((d->nlive + 1) * sizeof(*out));
	if (!out)
		return -1;
	for (size_t i = 0; i < d->nlive; i++) {
		struct span l = d->live[i];
		uintptr_t cs = s > l.start ? s : l.start, ce = e < l.end ? e : l.end;

		if (cs >= ce) {
			out[n++] = l;
			continue;
		}
		if (!(flags & PMEMFS_UNMAP_KEEP))
			pmemfs_sys_munmap((void *)cs, ce - cs);
		if (l.start < cs)
			out[n++] = (struct span){ l.start, cs };
		if (ce < l.end)
			out[n++] = (struct span){ ce, l.end };
	}
	free(d->live);
	d->live = out;
	d->nlive = n;
	if (n)
		return 0;
	return release(d) < 0 ? -1 : 1;
}
