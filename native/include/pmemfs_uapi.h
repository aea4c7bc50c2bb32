/*
 * pmemfs_uapi.h - the user-visible ABI of pmemfs for C clients: ioctl
 * numbers, payload layouts, flag bits, xattr names and control-file names.
 *
 * C twin of src/uapi.ts; test/unit/uapi.test.ts compiles this header and
 * checks every number, size and offset against the TypeScript module.
 *
 * Payloads are little-endian and naturally aligned; every offset and length
 * is a u64 count of bytes. The payload size is encoded in the ioctl number,
 * which lets FUSE forward these as restricted ioctls (so each stays < 16 KiB).
 */
#ifndef PMEMFS_UAPI_H
#define PMEMFS_UAPI_H

#include <stddef.h>
#include <linux/types.h>
#include <linux/ioctl.h>
#include <linux/fs.h>     /* struct fsxattr, FS_IOC_FS[GS]ETXATTR, FS_XFLAG_DAX */
#include <linux/falloc.h> /* FALLOC_FL_* */

#ifdef __cplusplus
#define PMEMFS_STATIC_ASSERT(e, m) static_assert(e, m)
#else
#define PMEMFS_STATIC_ASSERT(e, m) _Static_assert(e, m)
#endif
#define PMEMFS_CHECK_SIZE(type, n) \
	PMEMFS_STATIC_ASSERT(sizeof(type) == (n), "sizeof " #type)
#define PMEMFS_CHECK_OFF(type, field, n) \
	PMEMFS_STATIC_ASSERT(offsetof(type, field) == (n), #type "." #field)

#define PMEMFS_IOC_MAGIC 'P'

/* fcollapse, finsert */
struct pmemfs_range {
	__u64 off;
	__u64 len;
};
PMEMFS_CHECK_SIZE(struct pmemfs_range, 16);
PMEMFS_CHECK_OFF(struct pmemfs_range, off, 0);
PMEMFS_CHECK_OFF(struct pmemfs_range, len, 8);

/* One pinned physical extent. */
struct pmemfs_pin_rec {
	__u64 id;
	__u64 file_off;
	__u64 phys;
	__u64 len;
};
PMEMFS_CHECK_SIZE(struct pmemfs_pin_rec, 32);
PMEMFS_CHECK_OFF(struct pmemfs_pin_rec, id, 0);
PMEMFS_CHECK_OFF(struct pmemfs_pin_rec, file_off, 8);
PMEMFS_CHECK_OFF(struct pmemfs_pin_rec, phys, 16);
PMEMFS_CHECK_OFF(struct pmemfs_pin_rec, len, 24);

#define PMEMFS_PIN_MAX_RECS 16

/*
 * In: off, len. Out: done (bytes from off covered by the records), count,
 * then count records. A range spanning more than PMEMFS_PIN_MAX_RECS
 * physical extents is pinned piecewise: call again from off + done.
 */
struct pmemfs_pin {
	__u64 off;
	__u64 len;
	__u64 done;
	__u32 count;
	__u32 flags;
	struct pmemfs_pin_rec recs[PMEMFS_PIN_MAX_RECS];
};
PMEMFS_CHECK_SIZE(struct pmemfs_pin, 32 + PMEMFS_PIN_MAX_RECS * 32);
PMEMFS_CHECK_OFF(struct pmemfs_pin, off, 0);
PMEMFS_CHECK_OFF(struct pmemfs_pin, len, 8);
PMEMFS_CHECK_OFF(struct pmemfs_pin, done, 16);
PMEMFS_CHECK_OFF(struct pmemfs_pin, count, 24);
PMEMFS_CHECK_OFF(struct pmemfs_pin, flags, 28);
PMEMFS_CHECK_OFF(struct pmemfs_pin, recs, 32);

struct pmemfs_unpin {
	__u64 id;
};
PMEMFS_CHECK_SIZE(struct pmemfs_unpin, 8);
PMEMFS_CHECK_OFF(struct pmemfs_unpin, id, 0);

/* One block-map record. */
struct pmemfs_bmap_rec {
	__u64 file_off;
	__u64 len;
	__u64 phys;   /* PMEMFS_BMAP_PHYS_NONE for a hole */
	__u32 flags;  /* PMEMFS_BMAP_F_* */
	__u32 pad;
};
PMEMFS_CHECK_SIZE(struct pmemfs_bmap_rec, 32);
PMEMFS_CHECK_OFF(struct pmemfs_bmap_rec, file_off, 0);
PMEMFS_CHECK_OFF(struct pmemfs_bmap_rec, len, 8);
PMEMFS_CHECK_OFF(struct pmemfs_bmap_rec, phys, 16);
PMEMFS_CHECK_OFF(struct pmemfs_bmap_rec, flags, 24);

#define PMEMFS_BMAP_MAX_RECS 32

/*
 * In: start (file offset). Out: count, flags (PMEMFS_BMAP_MORE), fsize,
 * next (offset to continue from), records covering [start, next) including
 * holes, up to EOF rounded up to the block size.
 */
struct pmemfs_bmap {
	__u64 start;
	__u32 count;
	__u32 flags;
	__u64 fsize;
	__u64 next;
	struct pmemfs_bmap_rec recs[PMEMFS_BMAP_MAX_RECS];
};
PMEMFS_CHECK_SIZE(struct pmemfs_bmap, 32 + PMEMFS_BMAP_MAX_RECS * 32);
PMEMFS_CHECK_OFF(struct pmemfs_bmap, start, 0);
PMEMFS_CHECK_OFF(struct pmemfs_bmap, count, 8);
PMEMFS_CHECK_OFF(struct pmemfs_bmap, flags, 12);
PMEMFS_CHECK_OFF(struct pmemfs_bmap, fsize, 16);
PMEMFS_CHECK_OFF(struct pmemfs_bmap, next, 24);
PMEMFS_CHECK_OFF(struct pmemfs_bmap, recs, 32);

#define PMEMFS_BMAP_MORE 0x1
#define PMEMFS_BMAP_F_HOLE 0x1
#define PMEMFS_BMAP_F_UNWRITTEN 0x2
#define PMEMFS_BMAP_F_SHARED 0x4
#define PMEMFS_BMAP_F_SEALED 0x8
#define PMEMFS_BMAP_PHYS_NONE (~(__u64)0)

#define PMEMFS_REGION_PATH_MAX 1008

struct pmemfs_region {
	__u64 region_size;
	__u64 data_start;
	__u32 block_size;
	__u32 flags;  /* PMEMFS_REGION_F_* */
	char path[PMEMFS_REGION_PATH_MAX];
};
PMEMFS_CHECK_SIZE(struct pmemfs_region, 1032);
PMEMFS_CHECK_OFF(struct pmemfs_region, region_size, 0);
PMEMFS_CHECK_OFF(struct pmemfs_region, data_start, 8);
PMEMFS_CHECK_OFF(struct pmemfs_region, block_size, 16);
PMEMFS_CHECK_OFF(struct pmemfs_region, flags, 20);
PMEMFS_CHECK_OFF(struct pmemfs_region, path, 24);

#define PMEMFS_REGION_F_DAX 0x1

/* len 0: the whole source file. src_fd: a descriptor of the calling process
 * open for reading on the same mount (as FICLONERANGE's src_fd). */
struct pmemfs_reflink {
	__s64 src_fd;
	__u64 src_off;
	__u64 dst_off;
	__u64 len;
};
PMEMFS_CHECK_SIZE(struct pmemfs_reflink, 32);
PMEMFS_CHECK_OFF(struct pmemfs_reflink, src_fd, 0);
PMEMFS_CHECK_OFF(struct pmemfs_reflink, src_off, 8);
PMEMFS_CHECK_OFF(struct pmemfs_reflink, dst_off, 16);
PMEMFS_CHECK_OFF(struct pmemfs_reflink, len, 24);

/* FIDEDUPERANGE for one destination (the file the ioctl is made on).
 * status: PMEMFS_FILE_DEDUPE_RANGE_SAME / _DIFFERS, or a negative errno. */
struct pmemfs_dedupe {
	__s64 src_fd;
	__u64 src_off;
	__u64 dst_off;
	__u64 len;
	__u64 bytes_deduped;
	__s32 status;
	__u32 reserved;
};
PMEMFS_CHECK_SIZE(struct pmemfs_dedupe, 48);
PMEMFS_CHECK_OFF(struct pmemfs_dedupe, src_fd, 0);
PMEMFS_CHECK_OFF(struct pmemfs_dedupe, src_off, 8);
PMEMFS_CHECK_OFF(struct pmemfs_dedupe, dst_off, 16);
PMEMFS_CHECK_OFF(struct pmemfs_dedupe, len, 24);
PMEMFS_CHECK_OFF(struct pmemfs_dedupe, bytes_deduped, 32);
PMEMFS_CHECK_OFF(struct pmemfs_dedupe, status, 40);
PMEMFS_CHECK_OFF(struct pmemfs_dedupe, reserved, 44);

#define PMEMFS_FILE_DEDUPE_RANGE_SAME 0
#define PMEMFS_FILE_DEDUPE_RANGE_DIFFERS 1

/* struct fsxattr comes from <linux/fs.h>. */
PMEMFS_CHECK_SIZE(struct fsxattr, 28);
PMEMFS_CHECK_OFF(struct fsxattr, fsx_xflags, 0);
PMEMFS_CHECK_OFF(struct fsxattr, fsx_extsize, 4);
PMEMFS_CHECK_OFF(struct fsxattr, fsx_nextents, 8);
PMEMFS_CHECK_OFF(struct fsxattr, fsx_projid, 12);
PMEMFS_CHECK_OFF(struct fsxattr, fsx_cowextsize, 16);

#define PMEMFS_IOC_SEAL      _IO(PMEMFS_IOC_MAGIC, 1)
#define PMEMFS_IOC_UNSEAL    _IO(PMEMFS_IOC_MAGIC, 2)
#define PMEMFS_IOC_LEASE     _IO(PMEMFS_IOC_MAGIC, 3)
#define PMEMFS_IOC_UNLEASE   _IO(PMEMFS_IOC_MAGIC, 4)
#define PMEMFS_IOC_BREAK     _IO(PMEMFS_IOC_MAGIC, 5)
#define PMEMFS_IOC_PIN       _IOWR(PMEMFS_IOC_MAGIC, 6, struct pmemfs_pin)
#define PMEMFS_IOC_UNPIN     _IOW(PMEMFS_IOC_MAGIC, 7, struct pmemfs_unpin)
#define PMEMFS_IOC_GETBMAP   _IOWR(PMEMFS_IOC_MAGIC, 8, struct pmemfs_bmap)
#define PMEMFS_IOC_REGION    _IOR(PMEMFS_IOC_MAGIC, 9, struct pmemfs_region)
#define PMEMFS_IOC_FCOLLAPSE _IOW(PMEMFS_IOC_MAGIC, 10, struct pmemfs_range)
#define PMEMFS_IOC_FINSERT   _IOW(PMEMFS_IOC_MAGIC, 11, struct pmemfs_range)
/* 12 and 13 took a source inode number (pmemfs 0.1): retired, never reused. */
#define PMEMFS_IOC_REFLINK   _IOW(PMEMFS_IOC_MAGIC, 15, struct pmemfs_reflink)
#define PMEMFS_IOC_DEDUPE    _IOWR(PMEMFS_IOC_MAGIC, 16, struct pmemfs_dedupe)
#define PMEMFS_IOC_FUNSHARE  _IOW(PMEMFS_IOC_MAGIC, 14, struct pmemfs_range)
/* FS_IOC_FSGETXATTR / FS_IOC_FSSETXATTR come from <linux/fs.h>. */

/* fsxattr.fsx_xflags: FS_XFLAG_DAX from <linux/fs.h>, and the slot of the
 * proposed FS_XFLAG_IOMAP_IMMUTABLE. */
#define PMEMFS_XFLAG_SEALED 0x00020000

/* Extended attributes. XATTR_STATE is virtual, read-only, never listed. */
#define PMEMFS_XATTR_SEALED "trusted.pmemfs.sealed"
#define PMEMFS_XATTR_STATE "user.pmemfs.state"

/* Control directory, relative to the mount root, and its files. */
#define PMEMFS_CTL_DIR ".pmemfs"
#define PMEMFS_CTL_FILES { "stats", "busy", "ctl", "seals", "leases" }

#endif /* PMEMFS_UAPI_H */
