/**
 * @file The user-visible ABI of pmemfs, in one place: ioctl numbers, the
 * byte layouts of their payloads, xattr names, flag bits and control-file
 * paths. Its C twin is native/include/pmemfs_uapi.h; test/unit/uapi.test.ts
 * compiles the header and checks that every number and offset agrees.
 *
 * All payloads are little-endian, naturally aligned, with u64 for every offset
 * and length (bytes, never blocks). Linux encodes the payload size in the
 * ioctl number (_IOR/_IOW), which is what lets FUSE forward these as
 * "restricted" ioctls; a payload must therefore stay under 16 KiB.
 */

const IOC_NRBITS = 8;
const IOC_TYPEBITS = 8;
const IOC_SIZEBITS = 14;
const IOC_NRSHIFT = 0;
const IOC_TYPESHIFT = IOC_NRSHIFT + IOC_NRBITS;
const IOC_SIZESHIFT = IOC_TYPESHIFT + IOC_TYPEBITS;
const IOC_DIRSHIFT = IOC_SIZESHIFT + IOC_SIZEBITS;
const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;

function ioc(dir: number, type: string, nr: number, size: number): number {
  // >>> 0 keeps the result an unsigned 32-bit number, as the kernel sees it.
  return ((dir << IOC_DIRSHIFT) | (type.charCodeAt(0) << IOC_TYPESHIFT) |
    (nr << IOC_NRSHIFT) | (size << IOC_SIZESHIFT)) >>> 0;
}
export const IO = (t: string, nr: number): number => ioc(IOC_NONE, t, nr, 0);
export const IOR = (t: string, nr: number, size: number): number => ioc(IOC_READ, t, nr, size);
export const IOW = (t: string, nr: number, size: number): number => ioc(IOC_WRITE, t, nr, size);
export const IOWR = (t: string, nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, t, nr, size);
/** Direction and size decoded from an ioctl number (for EINVAL checks). */
export function iocSize(cmd: number): number { return (cmd >>> IOC_SIZESHIFT) & ((1 << IOC_SIZEBITS) - 1); }
export function iocDir(cmd: number): number { return cmd >>> IOC_DIRSHIFT; }

export const PMEMFS_IOC_MAGIC = 'P';

/** struct pmemfs_range { u64 off; u64 len; } — fcollapse, finsert. */
export const RANGE = { size: 16, off: 0, len: 8 } as const;

/** One pinned physical extent: { u64 id; u64 file_off; u64 phys; u64 len; }. */
export const PIN_REC = { size: 32, id: 0, fileOff: 8, phys: 16, len: 24 } as const;
export const PIN_MAX_RECS = 16;
/**
 * struct pmemfs_pin: in off/len; out done (bytes from off covered by the
 * returned records), count, then count records. A range spanning more than
 * PIN_MAX_RECS physical extents is pinned piecewise: call again from off+done.
 */
export const PIN = {
  size: 32 + PIN_MAX_RECS * PIN_REC.size,
  off: 0, len: 8, done: 16, count: 24, flags: 28, recs: 32,
} as const;

/** struct pmemfs_unpin { u64 id; } */
export const UNPIN = { size: 8, id: 0 } as const;

/** One block-map record: { u64 file_off; u64 len; u64 phys; u32 flags; u32 pad; }. */
export const BMAP_REC = { size: 32, fileOff: 0, len: 8, phys: 16, flags: 24 } as const;
export const BMAP_MAX_RECS = 32;
/**
 * struct pmemfs_bmap: in start (file offset); out count, flags (BMAP_MORE),
 * fsize (file size), next (offset to continue from), records covering
 * [start, next) including holes, up to EOF rounded up to the block size.
 */
export const BMAP = {
  size: 32 + BMAP_MAX_RECS * BMAP_REC.size,
  start: 0, count: 8, flags: 12, fsize: 16, next: 24, recs: 32,
} as const;
export const BMAP_MORE = 0x1;
/** Record flags (also used by `bmap -v` output). */
export const BMAP_F_HOLE = 0x1;
export const BMAP_F_UNWRITTEN = 0x2;
export const BMAP_F_SHARED = 0x4;
export const BMAP_F_SEALED = 0x8;
/** phys value of a hole record. */
export const BMAP_PHYS_NONE = 0xffffffffffffffffn;

/** struct pmemfs_region { u64 region_size; u64 data_start; u32 block_size; u32 flags; char path[1008]; } */
export const REGION = { size: 1032, regionSize: 0, dataStart: 8, blockSize: 16, flags: 20, path: 24, pathMax: 1008 } as const;
export const REGION_F_DAX = 0x1;

/**
 * struct pmemfs_reflink { s64 src_fd; u64 src_off; u64 dst_off; u64 len; } (len 0: whole file).
 * src_fd is a descriptor of the calling process open for reading on the same
 * mount, as FICLONERANGE's src_fd (never an inode number: the daemon finds
 * it in /proc/PID/fdinfo).
 */
export const REFLINK = { size: 32, srcFd: 0, srcOff: 8, dstOff: 16, len: 24 } as const;

/**
 * struct pmemfs_dedupe { s64 src_fd; u64 src_off; u64 dst_off; u64 len; (in)
 * u64 bytes_deduped; s32 status; u32 reserved; (out) }: FIDEDUPERANGE's
 * file_dedupe_range_info for one destination (the handle the ioctl is on).
 */
export const DEDUPE = { size: 48, srcFd: 0, srcOff: 8, dstOff: 16, len: 24, bytesDeduped: 32, status: 40, reserved: 44 } as const;
/** pmemfs_dedupe.status: FILE_DEDUPE_RANGE_SAME / _DIFFERS (<linux/fs.h>); a negative errno otherwise. */
export const FILE_DEDUPE_RANGE_SAME = 0;
export const FILE_DEDUPE_RANGE_DIFFERS = 1;

/** struct fsxattr from <linux/fs.h>: 28 bytes. */
export const FSXATTR = { size: 28, xflags: 0, extsize: 4, nextents: 8, projid: 12, cowextsize: 16 } as const;

export const PMEMFS_IOC_SEAL = IO('P', 1);
export const PMEMFS_IOC_UNSEAL = IO('P', 2);
export const PMEMFS_IOC_LEASE = IO('P', 3);
export const PMEMFS_IOC_UNLEASE = IO('P', 4);
export const PMEMFS_IOC_BREAK = IO('P', 5);
export const PMEMFS_IOC_PIN = IOWR('P', 6, PIN.size);
export const PMEMFS_IOC_UNPIN = IOW('P', 7, UNPIN.size);
export const PMEMFS_IOC_GETBMAP = IOWR('P', 8, BMAP.size);
export const PMEMFS_IOC_REGION = IOR('P', 9, REGION.size);
export const PMEMFS_IOC_FCOLLAPSE = IOW('P', 10, RANGE.size);
export const PMEMFS_IOC_FINSERT = IOW('P', 11, RANGE.size);
// Numbers 12 and 13 took a source inode number (pmemfs 0.1's reflink and dedupe): retired, never reused.
export const PMEMFS_IOC_REFLINK = IOW('P', 15, REFLINK.size);
export const PMEMFS_IOC_DEDUPE = IOWR('P', 16, DEDUPE.size);
export const PMEMFS_IOC_FUNSHARE = IOW('P', 14, RANGE.size);
export const FS_IOC_FSGETXATTR = IOR('X', 31, FSXATTR.size);
export const FS_IOC_FSSETXATTR = IOW('X', 32, FSXATTR.size);

/** fsxattr.fsx_xflags bits. */
export const FS_XFLAG_DAX = 0x00008000;
/** The slot of the proposed FS_XFLAG_IOMAP_IMMUTABLE. */
export const PMEMFS_XFLAG_SEALED = 0x00020000;

/** fallocate(2) modes (linux/falloc.h). */
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_COLLAPSE_RANGE = 0x08;
export const FALLOC_FL_ZERO_RANGE = 0x10;
export const FALLOC_FL_INSERT_RANGE = 0x20;

/** Extended attributes. */
export const XATTR_SEALED = 'trusted.pmemfs.sealed';
/** Virtual, read-only, never listed. */
export const XATTR_STATE = 'user.pmemfs.state';

/** Control directory, relative to the mount root. */
export const CTL_DIR = '.pmemfs';
export const CTL_FILES = ['stats', 'busy', 'ctl', 'seals', 'leases'] as const;
export type CtlFile = typeof CTL_FILES[number];

export const IOCTLS = {
  PMEMFS_IOC_SEAL, PMEMFS_IOC_UNSEAL, PMEMFS_IOC_LEASE, PMEMFS_IOC_UNLEASE,
  PMEMFS_IOC_BREAK, PMEMFS_IOC_PIN, PMEMFS_IOC_UNPIN, PMEMFS_IOC_GETBMAP,
  PMEMFS_IOC_REGION, PMEMFS_IOC_FCOLLAPSE, PMEMFS_IOC_FINSERT, PMEMFS_IOC_REFLINK,
  PMEMFS_IOC_DEDUPE, PMEMFS_IOC_FUNSHARE,
  FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR,
} as const;
