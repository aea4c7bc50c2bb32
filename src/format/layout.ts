/**
 * @file On-media format v2: the superblock, the inode record and the region
 * geometry. Every structure is little-endian with a CRC32C over its bytes
 * (the crc field counted as zero). Sizes and offsets are pinned by
 * test/unit/format.test.ts, the way xfs_ondisk.h pins XFS's.
 *
 * Region layout, in blocks of `blockSize` bytes:
 *
 *   0                superblock (first 512 bytes of block 0)
 *   bitmapStart..    free-space bitmap blocks: a 16-byte header (magic, CRC32C,
 *                    index) then one bit per region block (1 = in use)
 *   itableStart..    inode table: inodeCount fixed 512-byte slots; ino = slot + 1
 *   journalStart..   the write-ahead log (src/format/journal.ts)
 *   dataStart..      data, record blocks (directory entries and extent
 *                    records, src/format/records.ts) and out-of-line forks
 *                    (xattrs, symlink targets), all from one extent allocator
 *   totalBlocks - 1  backup superblock (written by mkfs and clean unmount)
 *
 * Version 1 regions (metadata written in place, no journal) are refused at
 * mount with a message saying so; nothing of them is interpreted further.
 *
 * Compatibility follows XFS's sb_features: a mount refuses unknown
 * `featuresIncompat` bits, mounts read-only with unknown `featuresRoCompat`
 * bits, and ignores unknown `featuresCompat` bits.
 */
import { crc32c } from '@node-rs/crc32';
import type { Timespec } from '../types.js';

export const SB_MAGIC = Buffer.from('PMEMFS\x00\x01', 'latin1');
export const FORMAT_VERSION = 2;
export const SB_SIZE = 512;
export const INODE_SIZE = 512;
export const INODE_MAGIC = 0x4e494d50; // 'PMIN'
export const ROOT_INO = 1;
export const MIN_BLOCK_SIZE = 4096;
export const MAX_BLOCK_SIZE = 65536;
export const LABEL_MAX = 64;

/** Superblock state: DIRTY while mounted read-write; a DIRTY mount means a crash. */
export const SB_STATE_CLEAN = 1;
export const SB_STATE_DIRTY = 2;

/**
 * Feature bits. Every v2 region has the journal; REFCOUNT (reference counts
 * of shared extents, rooted at `refcountRoot`) is set by the first reflink,
 * so a pmemfs that cannot count owners refuses the region instead of freeing
 * a block another file still maps.
 */
export const FEAT_INCOMPAT_JOURNAL = 0x1;
export const FEAT_INCOMPAT_REFCOUNT = 0x2;
/**
 * LOG2: the log is two areas used by turns (transaction s in area s % 2),
 * so a commit needs one flush (src/journal/journal.ts). Set by mkfs, and by
 * the first read-write mount of an older region once its log is replayed
 * and zeroed; an older pmemfs, which would look for a transaction only at
 * the start of the log, refuses the region.
 */
export const FEAT_INCOMPAT_LOG2 = 0x4;
/**
 * DATALOG: a commit may log the blocks of file data it exposes (a small
 * append) instead of flushing them first, and the superblock's `dataSeq`
 * says up to which transaction such data images must no longer be replayed
 * (src/journal/journal.ts). Set by mkfs and by the first read-write mount
 * of an older region (nothing to convert: an older commit block logs no
 * data); an older pmemfs, which would replay data images over newer data,
 * refuses the region.
 */
export const FEAT_INCOMPAT_DATALOG = 0x8;
/**
 * ICACHE: inodes are read on demand, so mount reads a constant amount. The
 * superblock counts the slots in use (`inodesUsed`, for statfs's f_ffree and
 * the free-slot search) and roots the in-core list (`ilistRoot`): the
 * inodes mount must load, those flagged IFLAG_ORPHAN or IFLAG_SEALED
 * (ext4's orphan list, s_last_orphan, generalised to seals). A directory's
 * `rdev` field holds its parent directory's inode number (what XFS keeps in
 * a short-form directory's header), for '..' and rename's loop check. Set
 * by mkfs, and by the first read-write mount of an older region, which
 * loads everything once and writes the counts, the list and the parents.
 */
export const FEAT_INCOMPAT_ICACHE = 0x10;
/**
 * DIRHASH: some directory's record chain is a hash index (RIDX_HASHED,
 * src/format/records.ts): its record blocks hold the entries of one range
 * of name hashes each, listed in hash order, so a lookup reads the index
 * and one leaf. Set, like REFCOUNT, by the operation that first moves a
 * directory's entries out of its fork into record blocks; directories
 * that did so before keep their unordered chains, which stay readable. An
 * older pmemfs, which would add entries to any block, refuses the region.
 */
export const FEAT_INCOMPAT_DIRHASH = 0x20;
/**
 * DIRROOT: some directory's hash index has root blocks (RIDX_ROOT,
 * src/format/records.ts) listing its index blocks with their lowest
 * hashes, and the inode points to the first root block: a lookup in a
 * directory nothing has read yet reads the root, one index block and one
 * leaf instead of every index block. Set by the first change that gives a
 * hash index its root: a new one, or one from before the feature at its
 * next change. An older pmemfs, which would take the root for an index
 * block and its index blocks for leaves, refuses the region.
 */
export const FEAT_INCOMPAT_DIRROOT = 0x40;
export const FEAT_INCOMPAT_SUPPORTED = FEAT_INCOMPAT_JOURNAL | FEAT_INCOMPAT_REFCOUNT | FEAT_INCOMPAT_LOG2 | FEAT_INCOMPAT_DATALOG | FEAT_INCOMPAT_ICACHE | FEAT_INCOMPAT_DIRHASH | FEAT_INCOMPAT_DIRROOT;
export const FEAT_RO_COMPAT_SUPPORTED = 0;

/** Inode flags (inode record `flags`). */
export const IFLAG_SEALED = 0x1;   // S_IOMAP_IMMUTABLE: block map may not change
export const IFLAG_ORPHAN = 0x2;   // nlink 0, kept for open handles/leases/pins
export const IFLAG_KNOWN = IFLAG_SEALED | IFLAG_ORPHAN;

/** Superblock field offsets. */
export const SB = {
  magic: 0, version: 8, crc: 12, uuid: 16, blockSize: 32, inodeSize: 36,
  regionSize: 40, totalBlocks: 48, bitmapStart: 56, bitmapBlocks: 64,
  itableStart: 72, itableBlocks: 80, inodeCount: 88, dataStart: 96,
  rootIno: 104, featuresCompat: 112, featuresIncompat: 120, featuresRoCompat: 128,
  state: 136, flags: 140, mkfsTime: 144, lastMountTime: 152, mountCount: 160,
  journalStart: 168, journalBlocks: 176, generation: 184, label: 192,
  inodeHwm: 256, journalSeq: 264, refcountRoot: 272, dataSeq: 280, inodesUsed: 288, ilistRoot: 296, end: 304,
} as const;

export interface Superblock {
  version: number;
  uuid: Buffer;            // 16 bytes
  blockSize: number;       // bytes
  inodeSize: number;       // bytes
  regionSize: number;      // bytes
  totalBlocks: number;
  bitmapStart: number; bitmapBlocks: number;
  itableStart: number; itableBlocks: number;
  inodeCount: number;
  journalStart: number; journalBlocks: number;
  dataStart: number;       // first data block
  rootIno: number;
  featuresCompat: number; featuresIncompat: number; featuresRoCompat: number;
  state: number;
  flags: number;
  mkfsTime: number;        // seconds
  lastMountTime: number;   // seconds
  mountCount: number;
  generation: number;      // next inode generation
  inodeHwm: number;        // slots at or above this index have never been used
  journalSeq: number;      // sequence of the last transaction checkpointed at clean unmount
  /** Data images of transactions up to this sequence are home and durable: recovery never replays them (DATALOG). */
  dataSeq: number;
  refcountRoot: number;    // region block of the reference-count index's first index block (0: none)
  /** Inode slots in use (ICACHE; 0 on an older region until its first read-write mount). */
  inodesUsed: number;
  /** Region block of the in-core list's first index block (ICACHE; 0: empty). */
  ilistRoot: number;
  label: string;
}

/** Inode record field offsets; the fork area fills the rest of the slot. */
export const INO = {
  magic: 0, crc: 4, ino: 8, mode: 16, uid: 20, gid: 24, nlink: 28, size: 32,
  atimeSec: 40, atimeNsec: 48, flags: 52, mtimeSec: 56, mtimeNsec: 64, generation: 68,
  ctimeSec: 72, ctimeNsec: 80, forkLen: 84, btimeSec: 88, btimeNsec: 96, forkCrc: 100,
  rdev: 104, forkBlock: 112, forkBlocks: 120, recIndex: 128, recBlocks: 136, recCount: 140,
  inlineFork: 144,
} as const;
export const INLINE_FORK_MAX = INODE_SIZE - INO.inlineFork;
/**
 * Largest fork an inode may have: an out-of-line fork holds only xattrs
 * (256 KiB of values and names, src/format/fork.ts) and a symlink target,
 * since directory entries and extents move to record blocks before their
 * fork leaves the slot. A forged forkLen beyond it is refused before any
 * fork block is read.
 */
export const MAX_FORK_BYTES = 2 << 20;

/** File types an inode may have (S_IFMT values): regular, directory, symlink, char and block device, FIFO, socket. */
const FILE_TYPES = new Set([0o100000, 0o040000, 0o120000, 0o020000, 0o060000, 0o010000, 0o140000]);

export interface InodeRecord {
  ino: number;
  mode: number; uid: number; gid: number; nlink: number;
  size: number;            // bytes
  atime: Timespec; mtime: Timespec; ctime: Timespec; btime: Timespec;
  flags: number;
  generation: number;
  rdev: number;
  forkLen: number;         // bytes of the encoded fork
  forkCrc: number;
  forkBlock: number;       // region block of an out-of-line fork; 0 when inline
  forkBlocks: number;      // blocks of that extent
  recIndex: number;        // region block of the first record-index block; 0: records in the fork
  recBlocks: number;       // record blocks listed by the index chain
  recCount: number;        // records (directory entries or extents) in those blocks
}

/** Thrown by the decoders; the message names the structure and the fix. */
export class FormatError extends Error {
  constructor(msg: string) { super(msg); this.name = 'FormatError'; }
}

function checksum(rec: Buffer, crcOff: number): number {
  const saved = rec.readUInt32LE(crcOff);
  rec.writeUInt32LE(0, crcOff);
  const crc = crc32c(rec);
  rec.writeUInt32LE(saved, crcOff);
  return crc >>> 0;
}

const TWO32 = 0x1_0000_0000;
const beyond53 = (what: string, off: number) =>
  `${what}: the 64-bit field at byte ${off} is beyond 2^53, so the metadata is corrupt (check it with fsck.pmemfs -n)`;

/**
 * Little-endian 64-bit fields as JS numbers, through two 32-bit halves (no
 * BigInt on the hot paths: every directory and block-map record has one).
 * Media values are block numbers, byte sizes, inode numbers and seconds, all
 * far below 2^53.
 * @throws FormatError when the stored value is outside ±(2^53 - 1)
 */
export function readU64(b: Buffer, off: number, what = 'metadata'): number {
  const hi = b.readUInt32LE(off + 4);
  if (hi === 0) return b.readUInt32LE(off);   // a small integer stays one (no boxed double in the object that keeps it)
  if (hi > 0x1f_ffff) throw new FormatError(beyond53(what, off));
  return hi * TWO32 + b.readUInt32LE(off);
}
/** Signed twin of readU64. @throws FormatError when outside ±(2^53 - 1) */
export function readI64(b: Buffer, off: number, what = 'metadata'): number {
  const hi = b.readInt32LE(off + 4);
  if (hi === 0) return b.readUInt32LE(off);
  if (hi > 0x1f_ffff || hi < -0x20_0000) throw new FormatError(beyond53(what, off));
  return hi * TWO32 + b.readUInt32LE(off);
}
/**
 * Store a non-negative safe integer as a little-endian u64.
 * @throws RangeError for a negative or non-integer v
 */
export function writeU64(b: Buffer, off: number, v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 field: ${v} is not a non-negative safe integer`);
  b.writeUInt32LE(v >>> 0, off);
  b.writeUInt32LE(Math.floor(v / TWO32), off + 4);
}
/** Signed twin of writeU64. @throws RangeError for a non-integer v */
export function writeI64(b: Buffer, off: number, v: number): void {
  if (!Number.isSafeInteger(v)) throw new RangeError(`i64 field: ${v} is not a safe integer`);
  b.writeUInt32LE(v >>> 0, off);
  b.writeInt32LE(Math.floor(v / TWO32), off + 4);
}

/** Encode a superblock into a fresh SB_SIZE buffer, CRC included. */
export function encodeSuperblock(sb: Superblock): Buffer {
  const b = Buffer.alloc(SB_SIZE);
  SB_MAGIC.copy(b, SB.magic);
  b.writeUInt32LE(sb.version, SB.version);
  sb.uuid.copy(b, SB.uuid, 0, 16);
  b.writeUInt32LE(sb.blockSize, SB.blockSize);
  b.writeUInt32LE(sb.inodeSize, SB.inodeSize);
  const fields: Array<[number, number]> = [
    [SB.regionSize, sb.regionSize], [SB.totalBlocks, sb.totalBlocks],
    [SB.bitmapStart, sb.bitmapStart], [SB.bitmapBlocks, sb.bitmapBlocks],
    [SB.itableStart, sb.itableStart], [SB.itableBlocks, sb.itableBlocks],
    [SB.inodeCount, sb.inodeCount], [SB.dataStart, sb.dataStart], [SB.rootIno, sb.rootIno],
    [SB.featuresCompat, sb.featuresCompat], [SB.featuresIncompat, sb.featuresIncompat],
    [SB.featuresRoCompat, sb.featuresRoCompat], [SB.mkfsTime, sb.mkfsTime],
    [SB.lastMountTime, sb.lastMountTime], [SB.mountCount, sb.mountCount],
    [SB.journalStart, sb.journalStart], [SB.journalBlocks, sb.journalBlocks],
    [SB.generation, sb.generation], [SB.inodeHwm, sb.inodeHwm],
    [SB.journalSeq, sb.journalSeq], [SB.refcountRoot, sb.refcountRoot], [SB.dataSeq, sb.dataSeq ?? 0],
    [SB.inodesUsed, sb.inodesUsed ?? 0], [SB.ilistRoot, sb.ilistRoot ?? 0],
  ];
  for (const [off, v] of fields) writeU64(b, off, v);
  b.writeUInt32LE(sb.state, SB.state);
  b.writeUInt32LE(sb.flags, SB.flags);
  const label = Buffer.from(sb.label, 'utf8');
  if (label.length > LABEL_MAX) throw new FormatError(`label is ${label.length} bytes; at most ${LABEL_MAX}`);
  label.copy(b, SB.label);
  b.writeUInt32LE(checksum(b, SB.crc), SB.crc);
  return b;
}

/** True when buf starts with the pmemfs superblock magic (any version). */
export function hasSuperblockMagic(buf: Buffer): boolean {
  return buf.length >= SB_MAGIC.length && buf.subarray(0, SB_MAGIC.length).equals(SB_MAGIC);
}

/**
 * Decode and validate a superblock.
 * @throws FormatError naming what is wrong (magic, version, checksum, geometry)
 */
export function decodeSuperblock(raw: Buffer): Superblock {
  if (raw.length < SB_SIZE) throw new FormatError(`superblock truncated: ${raw.length} of ${SB_SIZE} bytes`);
  const b = Buffer.from(raw.subarray(0, SB_SIZE));
  if (!hasSuperblockMagic(b)) throw new FormatError('no pmemfs superblock magic: not a pmemfs region (format one with mkfs.pmemfs)');
  const crc = b.readUInt32LE(SB.crc);
  if (crc !== checksum(b, SB.crc)) throw new FormatError('superblock checksum mismatch: the region is corrupted (run fsck.pmemfs)');
  const labelRaw = b.subarray(SB.label, SB.label + LABEL_MAX);
  const nul = labelRaw.indexOf(0);
  const sb: Superblock = {
    version: b.readUInt32LE(SB.version),
    uuid: Buffer.from(b.subarray(SB.uuid, SB.uuid + 16)),
    blockSize: b.readUInt32LE(SB.blockSize),
    inodeSize: b.readUInt32LE(SB.inodeSize),
    regionSize: readU64(b, SB.regionSize), totalBlocks: readU64(b, SB.totalBlocks),
    bitmapStart: readU64(b, SB.bitmapStart), bitmapBlocks: readU64(b, SB.bitmapBlocks),
    itableStart: readU64(b, SB.itableStart), itableBlocks: readU64(b, SB.itableBlocks),
    inodeCount: readU64(b, SB.inodeCount), dataStart: readU64(b, SB.dataStart), rootIno: readU64(b, SB.rootIno),
    featuresCompat: readU64(b, SB.featuresCompat), featuresIncompat: readU64(b, SB.featuresIncompat),
    featuresRoCompat: readU64(b, SB.featuresRoCompat),
    state: b.readUInt32LE(SB.state), flags: b.readUInt32LE(SB.flags),
    mkfsTime: readU64(b, SB.mkfsTime), lastMountTime: readU64(b, SB.lastMountTime),
    mountCount: readU64(b, SB.mountCount),
    journalStart: readU64(b, SB.journalStart), journalBlocks: readU64(b, SB.journalBlocks),
    generation: readU64(b, SB.generation), inodeHwm: readU64(b, SB.inodeHwm),
    journalSeq: readU64(b, SB.journalSeq), refcountRoot: readU64(b, SB.refcountRoot), dataSeq: readU64(b, SB.dataSeq),
    inodesUsed: readU64(b, SB.inodesUsed), ilistRoot: readU64(b, SB.ilistRoot),
    label: labelRaw.subarray(0, nul < 0 ? LABEL_MAX : nul).toString('utf8'),
  };
  if (sb.version === 1) {
    throw new FormatError('format version 1 region (metadata without a journal): this pmemfs reads version 2 only; '
      + 'copy the files out with pmemfs 0.1 and format a new region with mkfs.pmemfs');
  }
  if (sb.version !== FORMAT_VERSION) throw new FormatError(`format version ${sb.version} is not supported (this pmemfs reads version ${FORMAT_VERSION})`);
  checkGeometry(sb);
  return sb;
}

function checkGeometry(sb: Superblock): void {
  const bad = (what: string) => { throw new FormatError(`superblock geometry is inconsistent: ${what} (run fsck.pmemfs)`); };
  const bs = sb.blockSize;
  if (bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) bad(`block size ${bs}`);
  if (sb.inodeSize !== INODE_SIZE) bad(`inode size ${sb.inodeSize}`);
  if (sb.totalBlocks * bs !== sb.regionSize) bad('region size is not total blocks × block size');
  if (sb.bitmapStart !== 1 || sb.bitmapBlocks * bitsPerBitmapBlock(bs) < sb.totalBlocks) bad('free-space bitmap placement');
  if (sb.itableStart !== sb.bitmapStart + sb.bitmapBlocks) bad('inode table placement');
  if (sb.itableBlocks * bs < sb.inodeCount * INODE_SIZE) bad('inode table size');
  if (sb.journalStart !== sb.itableStart + sb.itableBlocks || sb.dataStart !== sb.journalStart + sb.journalBlocks) bad('data area placement');
  if (sb.journalBlocks < MIN_JOURNAL_BLOCKS) bad(`journal of ${sb.journalBlocks} blocks`);
  // Every structure lies inside the region (so inside the file, checked against its size by the caller).
  if (sb.dataStart >= dataEnd(sb)) bad('no data blocks');
  // Recovery reads the whole log into memory: at most MAX_JOURNAL_BLOCKS, as mkfs makes it.
  if (sb.journalBlocks > MAX_JOURNAL_BLOCKS) bad(`journal of ${sb.journalBlocks} blocks, more than ${MAX_JOURNAL_BLOCKS}`);
  if (sb.inodeCount > MAX_INODES) bad(`inode count ${sb.inodeCount}`);
  if (sb.rootIno !== ROOT_INO) bad(`root inode ${sb.rootIno}`);
  if (sb.inodeHwm < 1 || sb.inodeHwm > sb.inodeCount) bad(`inode high-water mark ${sb.inodeHwm}`);
  if (sb.inodesUsed > sb.inodeHwm) bad(`${sb.inodesUsed} inodes in use above the high-water mark ${sb.inodeHwm}`);
  if (sb.journalSeq > MAX_COUNTER) bad(`journal sequence ${sb.journalSeq}`);
  if (sb.dataSeq > MAX_COUNTER) bad(`data checkpoint sequence ${sb.dataSeq}`);
  if (sb.mountCount > MAX_COUNTER) bad(`mount count ${sb.mountCount}`);
}

/** Superblock fields that place structures: a replayed superblock image must agree on all of them. */
const GEOMETRY_FIELDS = [
  'blockSize', 'inodeSize', 'regionSize', 'totalBlocks', 'bitmapStart', 'bitmapBlocks', 'itableStart', 'itableBlocks',
  'inodeCount', 'journalStart', 'journalBlocks', 'dataStart', 'rootIno',
] as const;

/**
 * The first geometry field on which two superblocks differ, or null. The
 * engine is built from the primary superblock; a superblock image replayed
 * from the journal that moved a structure would leave it reading one layout
 * with an allocator sized for another.
 */
export function geometryDiffers(a: Superblock, b: Superblock): string | null {
  for (const f of GEOMETRY_FIELDS) if (a[f] !== b[f]) return `${f} ${a[f]} against ${b[f]}`;
  return null;
}

/** Bytes of the header that opens every free-space bitmap block. */
export const BITMAP_HDR = 16;
export const BITMAP_MAGIC = 0x4d424d50; // 'PMBM'
/** Region blocks one bitmap block describes. */
export const bitsPerBitmapBlock = (bs: number): number => (bs - BITMAP_HDR) * 8;
/** End (exclusive) of the allocatable data area: the last block holds the backup superblock. */
export const dataEnd = (sb: Pick<Superblock, 'totalBlocks'>): number => sb.totalBlocks - 1;
export const MIN_JOURNAL_BLOCKS = 64;
export const MAX_JOURNAL_BLOCKS = 8192;
export const MAX_INODES = 1 << 24;
/**
 * Ceiling of the counters that only grow (journal sequence, mount count):
 * far beyond any real use (2^52 commits), far enough below 2^53 that adding
 * one stays an exact integer.
 */
export const MAX_COUNTER = 2 ** 52;

export interface GeometryOptions {
  regionSize: number;      // bytes, rounded down to the block size
  blockSize: number;       // bytes
  bytesPerInode?: number;  // one inode slot per this many bytes (default 16 KiB; mkfs -i)
  inodeCount?: number;     // inode slots, overriding bytesPerInode (mkfs -N)
  journalBlocks?: number;  // log size in blocks (default: 1/32 of the region, 64..8192)
}

/** The range mkfs.pmemfs -i accepts (mke2fs's lower bound; an upper one that keeps 64 inodes in a 4 GiB region). */
export const MIN_BYTES_PER_INODE = 1024;
export const MAX_BYTES_PER_INODE = 64 << 20;

/**
 * Lay out a region (mkfs). Throws FormatError when the size cannot hold the
 * metadata and a minimum of data blocks.
 */
export function computeGeometry(o: GeometryOptions): Omit<Superblock, 'uuid' | 'label' | 'mkfsTime' | 'lastMountTime' | 'mountCount' | 'generation' | 'state' | 'flags' | 'inodeHwm' | 'journalSeq' | 'refcountRoot' | 'dataSeq' | 'inodesUsed' | 'ilistRoot'> {
  const bs = o.blockSize;
  if (bs < MIN_BLOCK_SIZE || bs > MAX_BLOCK_SIZE || (bs & (bs - 1)) !== 0) {
    throw new FormatError(`block size ${bs} must be a power of two from ${MIN_BLOCK_SIZE} to ${MAX_BLOCK_SIZE}`);
  }
  const totalBlocks = Math.floor(o.regionSize / bs);
  const bitmapBlocks = Math.ceil(totalBlocks / bitsPerBitmapBlock(bs));
  const perInode = o.bytesPerInode ?? 16384;
  if (!Number.isSafeInteger(perInode) || perInode < MIN_BYTES_PER_INODE || perInode > MAX_BYTES_PER_INODE) {
    throw new FormatError(`bytes per inode ${perInode}: ${MIN_BYTES_PER_INODE} to ${MAX_BYTES_PER_INODE}`);
  }
  if (o.inodeCount !== undefined && (!Number.isSafeInteger(o.inodeCount) || o.inodeCount < 64 || o.inodeCount > MAX_INODES)) {
    throw new FormatError(`inode count ${o.inodeCount}: 64 to ${MAX_INODES}`);
  }
  // The default stays at most 4M inodes (its table is then 2 GiB); -i and -N may ask for up to MAX_INODES.
  const byRatio = Math.floor(totalBlocks * bs / perInode);
  const inodeCount = o.inodeCount ?? Math.max(64, Math.min(byRatio, o.bytesPerInode === undefined ? 1 << 22 : MAX_INODES));
  const itableBlocks = Math.ceil(inodeCount * INODE_SIZE / bs);
  const journalBlocks = o.journalBlocks ?? Math.max(MIN_JOURNAL_BLOCKS, Math.min(MAX_JOURNAL_BLOCKS, Math.floor(totalBlocks / 32)));
  if (journalBlocks < MIN_JOURNAL_BLOCKS || journalBlocks > MAX_JOURNAL_BLOCKS) {
    throw new FormatError(`journal of ${journalBlocks} blocks: ${MIN_JOURNAL_BLOCKS} to ${MAX_JOURNAL_BLOCKS}`);
  }
  const journalStart = 1 + bitmapBlocks + itableBlocks;
  const dataStart = journalStart + journalBlocks;
  if (totalBlocks < dataStart + 17) {
    throw new FormatError(`region of ${o.regionSize} bytes is too small: needs at least ${(dataStart + 17) * bs} bytes with ${bs}-byte blocks`);
  }
  return {
    version: FORMAT_VERSION, blockSize: bs, inodeSize: INODE_SIZE,
    regionSize: totalBlocks * bs, totalBlocks,
    bitmapStart: 1, bitmapBlocks,
    itableStart: 1 + bitmapBlocks, itableBlocks, inodeCount,
    journalStart, journalBlocks, dataStart,
    rootIno: ROOT_INO, featuresCompat: 0, featuresIncompat: FEAT_INCOMPAT_JOURNAL | FEAT_INCOMPAT_LOG2 | FEAT_INCOMPAT_DATALOG | FEAT_INCOMPAT_ICACHE, featuresRoCompat: 0,
  };
}

/** Encode a free-space bitmap block: header (magic, CRC32C, index) and `bits`. */
export function encodeBitmapBlock(bs: number, index: number, bits: Uint8Array): Buffer {
  const b = Buffer.alloc(bs);
  b.writeUInt32LE(BITMAP_MAGIC, 0);
  writeU64(b, 8, index);
  b.set(bits.subarray(0, bs - BITMAP_HDR), BITMAP_HDR);
  b.writeUInt32LE(checksum(b, 4), 4);
  return b;
}

/**
 * The bits of a bitmap block (a view into raw).
 * @throws FormatError on bad magic, index or checksum
 */
export function decodeBitmapBlock(raw: Buffer, index: number): Buffer {
  if (raw.readUInt32LE(0) !== BITMAP_MAGIC) throw new FormatError(`free-space bitmap block ${index}: bad magic`);
  if (readU64(raw, 8) !== index) throw new FormatError(`free-space bitmap block ${index}: holds index ${readU64(raw, 8)}`);
  if (raw.readUInt32LE(4) !== checksum(raw, 4)) throw new FormatError(`free-space bitmap block ${index}: checksum mismatch`);
  return raw.subarray(BITMAP_HDR);
}

/** CRC32C of rec with the 4-byte field at crcOff counted as zero. */
export function recordChecksum(rec: Buffer, crcOff: number): number { return checksum(rec, crcOff); }

/** Encode an inode record (inline fork bytes, if any, copied in). */
export function encodeInode(r: InodeRecord, inlineFork: Buffer | null): Buffer {
  const b = Buffer.alloc(INODE_SIZE);
  b.writeUInt32LE(INODE_MAGIC, INO.magic);
  writeU64(b, INO.ino, r.ino);
  b.writeUInt32LE(r.mode, INO.mode);
  b.writeUInt32LE(r.uid, INO.uid);
  b.writeUInt32LE(r.gid, INO.gid);
  b.writeUInt32LE(r.nlink, INO.nlink);
  writeU64(b, INO.size, r.size);
  const times: Array<[number, number, Timespec]> = [
    [INO.atimeSec, INO.atimeNsec, r.atime], [INO.mtimeSec, INO.mtimeNsec, r.mtime],
    [INO.ctimeSec, INO.ctimeNsec, r.ctime], [INO.btimeSec, INO.btimeNsec, r.btime],
  ];
  for (const [s, n, t] of times) { writeI64(b, s, t.sec); b.writeUInt32LE(t.nsec, n); }
  b.writeUInt32LE(r.flags, INO.flags);
  b.writeUInt32LE(r.generation >>> 0, INO.generation);
  b.writeUInt32LE(r.forkLen, INO.forkLen);
  b.writeUInt32LE(r.forkCrc >>> 0, INO.forkCrc);
  writeU64(b, INO.rdev, r.rdev);
  writeU64(b, INO.forkBlock, r.forkBlock);
  writeU64(b, INO.forkBlocks, r.forkBlocks);
  writeU64(b, INO.recIndex, r.recIndex);
  b.writeUInt32LE(r.recBlocks, INO.recBlocks);
  b.writeUInt32LE(r.recCount, INO.recCount);
  if (inlineFork) {
    if (inlineFork.length > INLINE_FORK_MAX) throw new FormatError('inline fork too large');
    inlineFork.copy(b, INO.inlineFork);
  }
  b.writeUInt32LE(checksum(b, INO.crc), INO.crc);
  return b;
}

/** An unused inode slot is all zeroes (magic 0). */
export function isFreeSlot(raw: Buffer): boolean {
  return raw.readUInt32LE(INO.magic) === 0;
}

/**
 * The file type of an inode slot (mode & S_IFMT) without decoding it, for a
 * directory listing's d_type: 0 (unknown) unless the slot checks as
 * decodeInode checks it first (magic, checksum, the expected number, a file
 * type). Never throws.
 */
export function slotFileType(raw: Buffer, expectIno: number): number {
  if (raw.length < INODE_SIZE || raw.readUInt32LE(INO.magic) !== INODE_MAGIC) return 0;
  const b = raw.subarray(0, INODE_SIZE);
  if (b.readUInt32LE(INO.crc) !== checksum(b, INO.crc)) return 0;
  let ino: number;
  try { ino = readU64(b, INO.ino); } catch { return 0; }
  const type = b.readUInt32LE(INO.mode) & 0o170000;
  return ino === expectIno && FILE_TYPES.has(type) ? type : 0;
}

/**
 * Decode an inode slot. `inlineFork` is a view into `raw` (copy it to keep it).
 * @throws FormatError on bad magic or checksum
 */
export function decodeInode(raw: Buffer, expectIno: number): { rec: InodeRecord; inlineFork: Buffer | null } {
  // Read in place (mount decodes every slot: no copy of the slot); only the inline fork, which the inode keeps, is copied.
  if (raw.length < INODE_SIZE) throw new FormatError(`inode ${expectIno}: slot of ${raw.length} bytes`);
  const b = raw.length === INODE_SIZE ? raw : raw.subarray(0, INODE_SIZE);
  if (b.readUInt32LE(INO.magic) !== INODE_MAGIC) throw new FormatError(`inode ${expectIno}: bad magic`);
  if (b.readUInt32LE(INO.crc) !== checksum(b, INO.crc)) throw new FormatError(`inode ${expectIno}: checksum mismatch`);
  // Equal stamps share one object (a file's four are often equal; nothing changes a Timespec in place).
  let last: Timespec | null = null;
  const ts = (s: number, n: number): Timespec => {
    const sec = readI64(b, s), nsec = b.readUInt32LE(n);
    if (last && last.sec === sec && last.nsec === nsec) return last;
    return (last = { sec, nsec });
  };
  const rec: InodeRecord = {
    ino: readU64(b, INO.ino),
    mode: b.readUInt32LE(INO.mode), uid: b.readUInt32LE(INO.uid), gid: b.readUInt32LE(INO.gid),
    nlink: b.readUInt32LE(INO.nlink), size: readU64(b, INO.size),
    atime: ts(INO.atimeSec, INO.atimeNsec), mtime: ts(INO.mtimeSec, INO.mtimeNsec),
    ctime: ts(INO.ctimeSec, INO.ctimeNsec), btime: ts(INO.btimeSec, INO.btimeNsec),
    flags: b.readUInt32LE(INO.flags), generation: b.readUInt32LE(INO.generation),
    rdev: readU64(b, INO.rdev), forkLen: b.readUInt32LE(INO.forkLen), forkCrc: b.readUInt32LE(INO.forkCrc),
    forkBlock: readU64(b, INO.forkBlock), forkBlocks: readU64(b, INO.forkBlocks),
    recIndex: readU64(b, INO.recIndex), recBlocks: b.readUInt32LE(INO.recBlocks), recCount: b.readUInt32LE(INO.recCount),
  };
  if (rec.ino !== expectIno) throw new FormatError(`inode slot ${expectIno} holds inode ${rec.ino}`);
  if ((rec.flags & ~IFLAG_KNOWN) !== 0) throw new FormatError(`inode ${expectIno}: unknown flags 0x${rec.flags.toString(16)}`);
  if (!FILE_TYPES.has(rec.mode & 0o170000) || rec.mode > 0o177777) throw new FormatError(`inode ${expectIno}: mode 0${rec.mode.toString(8)} is no file type`);
  if (rec.forkBlock === 0 && rec.forkLen > INLINE_FORK_MAX) throw new FormatError(`inode ${expectIno}: inline fork length ${rec.forkLen}`);
  if (rec.forkBlock !== 0 && (rec.forkLen <= INLINE_FORK_MAX || rec.forkLen > MAX_FORK_BYTES)) {
    throw new FormatError(`inode ${expectIno}: out-of-line fork length ${rec.forkLen} (${INLINE_FORK_MAX + 1} to ${MAX_FORK_BYTES} bytes)`);
  }
  if (rec.recIndex === 0 && (rec.recBlocks !== 0 || rec.recCount !== 0)) {
    throw new FormatError(`inode ${expectIno}: ${rec.recBlocks} record blocks with ${rec.recCount} records but no record index`);
  }
  const inlineFork = rec.forkBlock === 0 ? b.subarray(INO.inlineFork, INO.inlineFork + rec.forkLen) : null;
  return { rec, inlineFork };
}

export { crc32c };
