/*
 * pmemfs.h - libpmemfs, the C client library of pmemfs: block-map seals,
 * leases, pins, the block map, and MAP_DIRECT emulation (a file range
 * mapped straight from the region file under a lease). The C twin of the
 * TypeScript API (src/cli/io/ioctls.ts, src/mapdirect.ts); the contract is
 * /work/shared/spec/pmemfs-interface.md §3 (seals, leases), §4 (pins) and
 * §5a (programs that map files).
 *
 * Conventions, as libc's:
 *  - every function returns -1 (or NULL) and sets errno on failure; errnos
 *    the daemon answers are passed through unchanged (ETXTBSY, EACCES, ...);
 *  - every offset and length is a count of BYTES (never blocks), u64 like
 *    the ABI (pmemfs_uapi.h); `fd` is a descriptor open on a file of a
 *    pmemfs mount (ENOTTY from another filesystem, which does not know the
 *    ioctls).
 *  - thread-safe; no global state except the table of direct mappings'
 *    leases (see pmemfs_map_direct).
 *
 * Who holds what: a lease or pin is held by the calling PROCESS (the
 * daemon turns the thread id FUSE reports into its thread group) and
 * released by pmemfs_unlease()/pmemfs_unpin() from any of its threads, or
 * when the process exits (the daemon probes every 250 ms).
 * pmemfs_map_direct() takes its leases on a helper thread the library
 * starts on first use, which also works with a daemon older than that.
 *
 * Link with -lpmemfs (pkg-config pmemfs). Needs the ioctl numbers and
 * structures of pmemfs_uapi.h, which this header includes.
 */
#ifndef PMEMFS_H
#define PMEMFS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "pmemfs_uapi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PMEMFS_LIB_VERSION_MAJOR 1
#define PMEMFS_LIB_VERSION_MINOR 0

/* statfs(2) f_type of every FUSE mount (<linux/magic.h> FUSE_SUPER_MAGIC). */
#define PMEMFS_FUSE_SUPER_MAGIC 0x65735546

/* ------------------------------------------------------------ identity */

/*
 * Is fd a file on a pmemfs mount? Checks fstatfs(2) f_type ==
 * FUSE_SUPER_MAGIC, then that the file answers PMEMFS_IOC_REGION (any
 * handle may ask). If `region` is not NULL it receives the answer.
 * Returns 1 yes, 0 no (another filesystem, or a FUSE daemon that does not
 * know the ioctl), -1 with errno when fstatfs itself fails (EBADF).
 */
int pmemfs_is_pmemfs(int fd, struct pmemfs_region *region);

/*
 * PMEMFS_IOC_REGION: the region file behind the mount (absolute path as the
 * daemon opened it), its size, where data blocks start, the block size
 * (bytes) and PMEMFS_REGION_F_DAX for a dax=always mount.
 * Errors: ENOTTY (not pmemfs), EBADF.
 */
int pmemfs_region(int fd, struct pmemfs_region *region);

/*
 * The virtual xattr user.pmemfs.state into buf (NUL-terminated), e.g.
 * "sealed=lease pins=0 busy_pages=0 extents=1". Returns its length.
 * Errors: ERANGE (buf too small), ENODATA/EOPNOTSUPP (not pmemfs).
 */
ssize_t pmemfs_state(int fd, char *buf, size_t size);

/* ------------------------------------------------------------ seals (§3) */

/*
 * PMEMFS_IOC_SEAL / _UNSEAL: set or clear the persistent seal
 * (S_IOMAP_IMMUTABLE). Sealing first fills holes, converts unwritten
 * extents and unshares shared ones up to EOF (rounded up to the block
 * size), in the same transaction as the flag. Both are idempotent.
 * Errors: EPERM (needs CAP_LINUX_IMMUTABLE: uid 0), ENOSPC (nothing
 * changed), EROFS, EINVAL (not a regular file); unseal: ETXTBSY while a
 * lease or pin is held.
 */
int pmemfs_seal(int fd);
int pmemfs_unseal(int fd);

/* ------------------------------------------------------------ leases (§3) */

/*
 * PMEMFS_IOC_LEASE: seal the block map for as long as the calling thread
 * holds the lease (MAP_DIRECT's temporary seal): holes up to EOF are
 * filled first; then truncate, fallocate, extending writes and reflink get
 * ETXTBSY for everyone. Idempotent per holder. Not persisted.
 * Errors: EACCES (fd not open for writing), EOPNOTSUPP (dax=never mount),
 * EAGAIN (the user's lease limit; root is exempt), ENOSPC.
 * A break (pmemfs_break, or `pmemfs-io -c break`) sends SIGIO to the
 * holder's process, whose default action terminates it; the lease is
 * revoked lease_break seconds later (mount option, default 45).
 */
int pmemfs_lease(int fd);

/* PMEMFS_IOC_UNLEASE: drop the calling thread's lease. EINVAL: none held
 * (never taken, taken by another thread, or revoked after a break). */
int pmemfs_unlease(int fd);

/* PMEMFS_IOC_BREAK: break every lease on the file (root: EPERM otherwise).
 * Returns 0 once SIGIO has been sent; revocation follows after lease_break. */
int pmemfs_break(int fd);

/* ------------------------------------------------------------ pins (§4) */

/*
 * A set of pins covering one file range, one record per physical extent
 * (struct pmemfs_pin_rec: id, file_off, phys, len; all bytes; phys is an
 * offset in the region file). Allocated by pmemfs_pin(), freed by
 * pmemfs_unpin_all() or free().
 */
struct pmemfs_pins {
	size_t count;
	struct pmemfs_pin_rec recs[];
};

/*
 * PMEMFS_IOC_PIN over [off, off+len), repeated from off+done until the
 * range is covered (one call pins at most PMEMFS_PIN_MAX_RECS extents).
 * Holes inside EOF are filled first, as a write fault would. All or
 * nothing: if a later call fails, the pins already taken are dropped.
 * The pins are held by the calling thread until pmemfs_unpin*() or its exit.
 * Returns the pins (malloc'ed) or NULL with errno: ENXIO (range beyond
 * EOF), EINVAL (len 0), EACCES (fd open write-only), EBADF (a hole through
 * a handle not open for writing), EAGAIN (the user's pin limit), ENOMEM.
 */
struct pmemfs_pins *pmemfs_pin(int fd, uint64_t off, uint64_t len);

/* PMEMFS_IOC_UNPIN of one pin id. EINVAL: not a pin of the calling thread. */
int pmemfs_unpin(int fd, uint64_t id);

/* Unpin every record of `pins` and free it (NULL: no-op). Tries them all;
 * returns -1 with the first failure's errno if any failed. */
int pmemfs_unpin_all(int fd, struct pmemfs_pins *pins);

/* ------------------------------------------------------------ block map */

/*
 * The block map: PMEMFS_IOC_GETBMAP repeated while PMEMFS_BMAP_MORE, from
 * `start` until `end` is covered (end 0: to EOF). Records (struct
 * pmemfs_bmap_rec: file_off, len, phys, flags; bytes) cover holes too
 * (phys PMEMFS_BMAP_PHYS_NONE, PMEMFS_BMAP_F_HOLE), up to EOF rounded up to
 * the block size. Stores the malloc'ed array in *recs (free() it) and its
 * length in *count; the file size in *fsize if not NULL.
 * Errors: ENOTTY (not pmemfs), EIO (the daemon made no progress), ENOMEM.
 */
int pmemfs_bmap(int fd, uint64_t start, uint64_t end,
		struct pmemfs_bmap_rec **recs, size_t *count, uint64_t *fsize);

/* ------------------------------------------------------------ MAP_DIRECT (§4, §5a) */

/* pmemfs_map_direct() flags. */
#define PMEMFS_MAP_FIXED	0x1 /* map exactly at addr, replacing what is there (MAP_FIXED) */
#define PMEMFS_MAP_NOREPLACE	0x2 /* map exactly at addr, EEXIST if taken (MAP_FIXED_NOREPLACE) */
#define PMEMFS_MAP_PAST_EOF	0x4 /* allow the range to extend past EOF (see below) */
#define PMEMFS_MAP_POPULATE	0x8 /* prefault the pages (MAP_POPULATE) */

/*
 * A direct mapping. Allocated and owned by the library: read the fields,
 * never write or copy them (later versions may append fields).
 */
struct pmemfs_direct {
	void *addr;		/* where file byte `off` is mapped */
	uint64_t off;		/* file offset of addr (bytes) */
	uint64_t len;		/* bytes mapped from addr (with PMEMFS_MAP_PAST_EOF,
				 * some may lie past EOF: no extent covers those) */
	size_t nextents;	/* physically contiguous pieces of [off, min(off+len, EOF)) */
	/* file_off, len, phys (region offset) of each piece, in file order;
	 * flags are the block map's (0, or PMEMFS_BMAP_F_SEALED). */
	const struct pmemfs_bmap_rec *extents;
	struct pmemfs_region region;	/* the region file the pages come from */
};

/*
 * Map file bytes [off, off+len) straight from the region file (MAP_DIRECT
 * emulation; what src/mapdirect.ts does for Node, but as one contiguous
 * mapping). Argument order as mmap(2); len 0 maps from off to EOF; off need
 * not be page aligned (addr then points inside the first page) unless
 * PMEMFS_MAP_FIXED or _NOREPLACE is given, where addr and off must be.
 *
 * Steps: (1) a lease on the file (below); (2) fsync(fd), so the blocks the
 * lease allocated and everything written to the file before are durable
 * before the first store (MAP_SYNC's promise: the block map a store lands
 * in survives a crash); (3) the block map of the range, which must be
 * fully mapped, unshared and written (else EIO: the daemon broke the
 * lease's promise); (4) an address range reserved PROT_NONE, and each
 * physical extent mmap'ed MAP_SHARED from the region file into it.
 *
 * The lease is shared by every direct mapping of the same file in this
 * process (counted), taken on the library's helper thread so that it lasts
 * until the last of them is unmapped or the process exits, whatever thread
 * maps or unmaps. Pages of the range past EOF (PMEMFS_MAP_PAST_EOF) stay
 * inaccessible: the lease keeps the file from growing into them, and a
 * load or store there gets SIGSEGV (mmap(2) would give SIGBUS).
 *
 * fd must be open for writing (the lease's rule) and stays the caller's:
 * the library keeps its own duplicate while the lease lasts. prot is
 * mmap's (PROT_READ|PROT_WRITE usually); the region file is opened O_RDWR
 * for PROT_WRITE, else O_RDONLY, so the caller needs access to it (the
 * region is the mount owner's file).
 *
 * Persistence: stores through the mapping go straight to the region file's
 * page cache, which pmemfs treats as the emulated persistent medium: no
 * msync, fsync or cache flush is needed for the mount to see them, and a
 * `powerfail` of the control file keeps them (the power-fail emulation
 * records only the daemon's own stores; a platform whose CPU caches are in
 * the persistence domain, eADR). Against a crash of the HOST, the region
 * file is as durable as any page cache: msync(MS_SYNC) of the mapping
 * flushes those pages of the region file.
 *
 * Returns the mapping, or NULL with errno: EACCES (fd not open for
 * writing, or the region file not accessible), EOPNOTSUPP (dax=never
 * mount), ENOTTY (not pmemfs), ENXIO (range not inside EOF without
 * PMEMFS_MAP_PAST_EOF, or empty), EINVAL (bad flags, unaligned addr/off
 * with FIXED, block size not a multiple of the page size), EEXIST
 * (NOREPLACE), EAGAIN (lease limit), ENOMEM, EIO; the mapping and the
 * lease are undone on any failure.
 */
struct pmemfs_direct *pmemfs_map_direct(void *addr, size_t len, int prot,
					int flags, int fd, uint64_t off);

/*
 * Unmap what is left of a direct mapping, drop its reference on the lease
 * (the lease goes with the last direct mapping of the file in this
 * process) and free `m`. Unmapping comes before unleasing, so the block
 * map cannot move while a page is still mapped. Returns 0, or -1 with
 * errno from the unlease: the mapping is gone and `m` freed either way
 * (EINVAL after a break revoked the lease is not reported: nothing held).
 */
int pmemfs_unmap_direct(struct pmemfs_direct *m);

/* pmemfs_unmap_direct_range() flags. */
#define PMEMFS_UNMAP_KEEP	0x1 /* forget the pages without munmap: the caller replaced them (mmap MAP_FIXED) */

/*
 * Unmap pages [addr, addr+len) of `m` (addr page aligned, len rounded up to
 * pages; pages outside `m` or already unmapped are ignored). While any
 * page of `m` is still mapped its lease reference stays; when the last one
 * goes this is pmemfs_unmap_direct(m) (m is freed). With PMEMFS_UNMAP_KEEP
 * the pages are only forgotten (no munmap). This is what a munmap(2) of
 * part of a direct mapping does under libpmemfs-preload.so.
 * Returns 1 when `m` is gone (freed), 0 when some of it is still mapped,
 * -1 with errno: EINVAL (unaligned addr, bad flags), ENOMEM, or the
 * unlease error of pmemfs_unmap_direct (m freed).
 */
int pmemfs_unmap_direct_range(struct pmemfs_direct *m, void *addr, size_t len,
			      int flags);

#ifdef __cplusplus
}
#endif

#endif /* PMEMFS_H */
