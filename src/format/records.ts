/**
 * @file Record blocks and record-index blocks: where a directory's entries
 * and a file's extent records live once they outgrow the inode's inline fork.
 *
 * An inode's records are an unordered set of small records packed into
 * record blocks; a chain of index blocks lists those blocks. Changing one
 * record rewrites only the record block that holds it (and, when a block is
 * added, one index block), so a create, unlink or extent change costs O(1)
 * blocks whatever the directory or map size. Lookups use the in-core index
 * built when the inode is read (a Map for names, a sorted array for extents), like the
 * dcache over ext2's linear directories.
 *
 *   record block  32-byte header: u32 magic 'PMRB', u32 crc, u64 ino,
 *                 u8 kind, u8 0, u16 count, u16 used bytes, 10 bytes 0;
 *                 then `count` records back to back
 *     dirent      u64 ino, u8 name length (1..255), name bytes
 *     extent      u64 fileBlock, u64 regionBlock, u32 len, u32 flags (24 bytes)
 *     refcount    u64 regionBlock, u32 len, u32 count (16 bytes): `count` owners
 *                 (>= 2) share region blocks [regionBlock, +len); blocks with no
 *                 record have one owner when in use (XFS's refcountbt keeps
 *                 records only for shared extents too). Owner id 0: the
 *                 refcount index is the region's, not an inode's.
 *     ilist       u64 ino (8 bytes): an inode mount must load (orphan or
 *                 sealed, FEAT_INCOMPAT_ICACHE); owner id 0, as refcount.
 *   index block   32-byte header: u32 magic 'PMRI', u32 crc, u64 ino, u64 next
 *                 index block (0: last), u32 count, u32 flags; then u64 record
 *                 blocks (flags 0), or with RIDX_HASHED (a directory's hash
 *                 index, FEAT_INCOMPAT_DIRHASH) 16-byte entries: u64 record
 *                 block, u32 the lowest name hash it holds, u32 0
 *   root block    an index block with flags RIDX_HASHED | RIDX_ROOT
 *                 (FEAT_INCOMPAT_DIRROOT): its entries are (u64 index block,
 *                 u32 the lowest hash of that index block's first leaf, u32 0),
 *                 and `next` chains the root blocks
 *
 * A directory's hash index (RIDX_HASHED on every index block of its chain):
 * each record block ("leaf") holds exactly the entries whose name hash
 * (direntHash) lies in [its lowest hash, the next leaf's): the chain lists
 * the leaves in ascending hash order, the first from 0. With a root
 * (FEAT_INCOMPAT_DIRROOT) the inode points to the first root block, whose
 * entries list the index blocks in the same order with the lowest hash of
 * each: a lookup in a directory nothing has read yet reads the root, one
 * index block and one leaf: three blocks up to one root block's 254 index
 * blocks (32,000 to 64,000 leaves, millions of names), one more root block
 * per 254 index blocks past that. Without a root (a directory from before
 * the feature, until its next change) it reads every index block. ext4's
 * htree and XFS's dir2 node form keep the same hash-to-leaf map in their
 * interior blocks. The index blocks still chain by `next` in root order,
 * so that a walk from the first one (fsck, a listing) needs no root.
 */
import { EXT_KNOWN, EXTENT_REC_SIZE, type ExtentRec, validEntryName } from './fork.js';
import { crc32c, FormatError, readU64, recordChecksum, writeU64 } from './layout.js';

export const REC_MAGIC = 0x42524d50;   // 'PMRB'
export const RIDX_MAGIC = 0x49524d50;  // 'PMRI'
export const REC_HDR = 32;
export const RIDX_HDR = 32;
/** Index block flag: entries are (record block, lowest name hash), a directory's hash index. */
export const RIDX_HASHED = 0x1;
/** Index block flag (with RIDX_HASHED): a hash index's root block, whose entries are index blocks (FEAT_INCOMPAT_DIRROOT). */
export const RIDX_ROOT = 0x2;
/** Bytes of a hash-index entry: u64 record block, u32 lowest hash, u32 0. */
export const RIDX_HASHED_ENTRY = 16;
export const REC_KIND_DIRENT = 1;
export const REC_KIND_EXTENT = 2;
export const REC_KIND_REFCOUNT = 3;
export const REC_KIND_ILIST = 4;
export type RecKind = typeof REC_KIND_DIRENT | typeof REC_KIND_EXTENT | typeof REC_KIND_REFCOUNT | typeof REC_KIND_ILIST;
export const ILIST_REC_SIZE = 8;
/** Owner id in the header of the refcount index's record and index blocks. */
export const REFCOUNT_OWNER = 0;
export const REFCOUNT_REC_SIZE = 16;

/** A reference-count record: `count` (>= 2) owners share region blocks [start, start+len). */
export interface RefcountRec { start: number; len: number; count: number }

/** Record bytes one record block holds. */
export const recBlockCapacity = (bs: number): number => bs - REC_HDR;
/** Record-block numbers one index block holds (`hashed`: entries of a directory's hash index). */
export const indexCapacity = (bs: number, hashed = false): number => Math.floor((bs - RIDX_HDR) / (hashed ? RIDX_HASHED_ENTRY : 8));

/**
 * The per-region seed of directory name hashes: CRC32C of the region's
 * UUID, so that which names share a leaf differs between regions (ext4
 * seeds its htree hash from s_hash_seed for the same reason: names chosen
 * to collide on one filesystem do not collide on another).
 */
export const dirHashSeed = (uuid: Buffer): number => crc32c(uuid) >>> 0;

/**
 * A directory entry's name hash (FEAT_INCOMPAT_DIRHASH): CRC32C of the
 * name's UTF-8 bytes from `seed` (dirHashSeed), an unsigned 32-bit number.
 */
export const direntHash = (name: string | Buffer, seed: number): number => crc32c(name, seed) >>> 0;

/** Encoded size of a directory entry record. */
export const direntRecSize = (name: string): number => 9 + Buffer.byteLength(name, 'utf8');

export function encodeDirentRec(name: string, ino: number): Buffer {
  const nl = Buffer.byteLength(name, 'utf8');
  if (nl === 0 || nl > 255) throw new FormatError(`directory entry name of ${nl} bytes`);
  const b = Buffer.allocUnsafe(9 + nl);
  writeU64(b, 0, ino);
  b[8] = nl;
  b.write(name, 9, 'utf8');
  return b;
}

export function encodeExtentRec(e: ExtentRec): Buffer {
  const b = Buffer.allocUnsafe(EXTENT_REC_SIZE);
  writeU64(b, 0, e.fileBlock); writeU64(b, 8, e.regionBlock);
  b.writeUInt32LE(e.len, 16); b.writeUInt32LE(e.flags, 20);
  return b;
}

export function encodeIlistRec(ino: number): Buffer {
  const b = Buffer.allocUnsafe(ILIST_REC_SIZE);
  writeU64(b, 0, ino);
  return b;
}

export function encodeRefcountRec(r: RefcountRec): Buffer {
  const b = Buffer.allocUnsafe(REFCOUNT_REC_SIZE);
  writeU64(b, 0, r.start);
  b.writeUInt32LE(r.len, 8); b.writeUInt32LE(r.count, 12);
  return b;
}

/** Encode a record block of `bs` bytes from already-encoded records. */
export function encodeRecordBlock(bs: number, ino: number, kind: RecKind, recs: Iterable<Buffer>): Buffer {
  const b = Buffer.alloc(bs);
  let p = REC_HDR, n = 0;
  for (const r of recs) {
    if (p + r.length > bs) throw new FormatError(`record block of inode ${ino} overflows`);
    r.copy(b, p); p += r.length; n++;
  }
  b.writeUInt32LE(REC_MAGIC, 0);
  writeU64(b, 8, ino);
  b[16] = kind;
  b.writeUInt16LE(n, 18);
  b.writeUInt16LE(p - REC_HDR, 20);
  b.writeUInt32LE(recordChecksum(b, 4), 4);
  return b;
}

export interface DecodedRecords {
  dirents: Array<[string, number, Buffer]>;
  extents: Array<[ExtentRec, Buffer]>;
  refcounts: Array<[RefcountRec, Buffer]>;
  ilist: Array<[number, Buffer]>;
}

/**
 * Decode a record block owned by `ino`. Each record's bytes are a view into
 * `raw` (copy them to keep them past raw's life).
 * @throws FormatError on bad magic, owner, kind, checksum or a malformed record
 */
/** The error maker for record block `where`: bad('is truncated') reads "WHERE: record block is truncated". */
function recordBlockError(where: string): (what: string) => FormatError {
  return (what) => new FormatError(`${where}: record block ${what}`);
}

/** Check a record block's header; its record count and the end of its records. @throws FormatError */
function recordBlockBody(raw: Buffer, ino: number, kind: RecKind, where: string): { count: number; end: number } {
  const bad = recordBlockError(where);
  if (raw.readUInt32LE(0) !== REC_MAGIC) throw bad('has bad magic');
  if (raw.readUInt32LE(4) !== recordChecksum(raw, 4)) throw bad('checksum mismatch');
  if (readU64(raw, 8, where) !== ino) throw bad(`belongs to inode ${readU64(raw, 8, where)}`);
  if (raw[16] !== kind) throw bad(`of kind ${raw[16]}, expected ${kind}`);
  const count = raw.readUInt16LE(18), used = raw.readUInt16LE(20);
  if (REC_HDR + used > raw.length) throw bad(`claims ${used} bytes`);
  return { count, end: REC_HDR + used };
}

/**
 * The record bytes a record block holds (its header's count of used bytes),
 * after recordBlockBody's checks of magic, checksum, owner and kind, without
 * walking its records: what a merge decision needs of a neighbour
 * (InodeStore.syncDeferred).
 * @throws FormatError on bad magic, owner, kind, checksum or a used count past the block
 */
export function recordBlockUsed(raw: Buffer, ino: number, kind: RecKind, where: string): number {
  return recordBlockBody(raw, ino, kind, where).end - REC_HDR;
}

/**
 * Check a directory's record block (REC_KIND_DIRENT, owner `ino`: header and
 * checksum, recordBlockBody) and walk its records: `onRec` gets each one's
 * byte offset in `raw` and its name's length once the record's bounds are
 * checked; nothing may follow the last record. The one walk under
 * forEachDirentRec and findDirentRec.
 * @throws FormatError on bad magic, owner, kind, checksum or a malformed record
 */
function walkDirentRecs(raw: Buffer, ino: number, where: string, bad: (what: string) => FormatError, onRec: (p: number, nl: number) => void): void {
  const { count, end } = recordBlockBody(raw, ino, REC_KIND_DIRENT, where);
  let p = REC_HDR;
  for (let i = 0; i < count; i++) {
    if (p + 9 > end) throw bad('is truncated');
    const nl = raw[p + 8];
    if (nl === 0 || p + 9 + nl > end) throw bad(`has a name of ${nl} bytes`);
    onRec(p, nl);
    p += 9 + nl;
  }
  if (p !== end) throw bad(`holds ${end - p} stray bytes`);
}

/**
 * Decode a directory's record block (REC_KIND_DIRENT, owner `ino`) without
 * a Buffer per record: `onEntry` gets each entry's name, inode number and
 * where its record lies in `raw` (byte offset, length). The checks are
 * decodeRecordBlock's.
 * @throws FormatError on bad magic, owner, kind, checksum or a malformed record
 */
export function forEachDirentRec(raw: Buffer, ino: number, where: string, onEntry: (name: string, child: number, off: number, len: number) => void): void {
  const bad = recordBlockError(where);
  walkDirentRecs(raw, ino, where, bad, (p, nl) => {
    const child = readU64(raw, p, where);
    const name = raw.toString('utf8', p + 9, p + 9 + nl);
    if (!validEntryName(name, nl)) throw bad(`has an invalid name`);
    onEntry(name, child, p, 9 + nl);
  });
}

/**
 * The inode number of the entry named `name` (its UTF-8 bytes) in a
 * directory's record block (REC_KIND_DIRENT, owner `ino`), null when the
 * block holds none: forEachDirentRec's checks of the block (header,
 * checksum, record bounds, no stray bytes) without a string per record, for
 * a lookup in a directory whose entries are not in core
 * (InodeStore.probeDeferred). Names are compared as bytes (length, first
 * and last byte first); their validity is not checked (a name found is the
 * caller's).
 * @throws FormatError on bad magic, owner, kind, checksum or a malformed record
 */
export function findDirentRec(raw: Buffer, ino: number, where: string, name: Buffer): number | null {
  const len = name.length, first = name[0], last = name[len - 1];
  let found: number | null = null;
  walkDirentRecs(raw, ino, where, recordBlockError(where), (p, nl) => {
    if (found !== null || nl !== len || raw[p + 9] !== first || raw[p + 8 + nl] !== last) return;
    let k = 1;
    while (k < len - 1 && raw[p + 9 + k] === name[k]) k++;
    if (k >= len - 1) found = readU64(raw, p, where);
  });
  return found;
}

export function decodeRecordBlock(raw: Buffer, ino: number, kind: RecKind, where: string): DecodedRecords {
  const out: DecodedRecords = { dirents: [], extents: [], refcounts: [], ilist: [] };
  if (kind === REC_KIND_DIRENT) {
    forEachDirentRec(raw, ino, where, (name, child, off, len) => { out.dirents.push([name, child, raw.subarray(off, off + len)]); });
    return out;
  }
  const bad = recordBlockError(where);
  const { count, end } = recordBlockBody(raw, ino, kind, where);
  let p = REC_HDR;
  for (let i = 0; i < count; i++) {
    if (kind === REC_KIND_REFCOUNT) {
      if (p + REFCOUNT_REC_SIZE > end) throw bad('is truncated');
      const r = { start: readU64(raw, p, where), len: raw.readUInt32LE(p + 8), count: raw.readUInt32LE(p + 12) };
      if (r.len === 0 || r.count < 2) throw bad(`has a bad reference-count record ${i} (len ${r.len}, count ${r.count})`);
      out.refcounts.push([r, raw.subarray(p, p + REFCOUNT_REC_SIZE)]);
      p += REFCOUNT_REC_SIZE;
    } else if (kind === REC_KIND_ILIST) {
      if (p + ILIST_REC_SIZE > end) throw bad('is truncated');
      const ino = readU64(raw, p, where);
      if (ino < 1) throw bad(`lists inode ${ino}`);
      out.ilist.push([ino, raw.subarray(p, p + ILIST_REC_SIZE)]);
      p += ILIST_REC_SIZE;
    } else {
      if (p + EXTENT_REC_SIZE > end) throw bad('is truncated');
      const e = { fileBlock: readU64(raw, p, where), regionBlock: readU64(raw, p + 8, where), len: raw.readUInt32LE(p + 16), flags: raw.readUInt32LE(p + 20) };
      if (e.len === 0 || (e.flags & ~EXT_KNOWN) !== 0) throw bad(`has a bad extent record ${i}`);
      out.extents.push([e, raw.subarray(p, p + EXTENT_REC_SIZE)]);
      p += EXTENT_REC_SIZE;
    }
  }
  if (p !== end) throw bad(`holds ${end - p} stray bytes`);
  return out;
}

/**
 * Encode an index block listing `blocks` (record-block numbers); with
 * `los`, a directory's hash index (RIDX_HASHED): los[i] is the lowest name
 * hash blocks[i] holds; with `root` too, a root block (RIDX_ROOT): `blocks`
 * are index blocks, los[i] the lowest hash of blocks[i]'s first leaf.
 * @throws FormatError when the entries do not fit, or for a root without hashes
 */
export function encodeIndexBlock(bs: number, ino: number, next: number, blocks: readonly number[], los: readonly number[] | null = null, root = false): Buffer {
  if (blocks.length > indexCapacity(bs, los !== null)) throw new FormatError(`index block of inode ${ino} overflows`);
  if (root && !los) throw new FormatError(`root block of inode ${ino} without hashes`);
  const b = Buffer.alloc(bs);
  b.writeUInt32LE(RIDX_MAGIC, 0);
  writeU64(b, 8, ino);
  writeU64(b, 16, next);
  b.writeUInt32LE(blocks.length, 24);
  if (los) {
    b.writeUInt32LE(root ? RIDX_HASHED | RIDX_ROOT : RIDX_HASHED, 28);
    for (let i = 0; i < blocks.length; i++) { writeU64(b, RIDX_HDR + i * RIDX_HASHED_ENTRY, blocks[i]); b.writeUInt32LE(los[i], RIDX_HDR + i * RIDX_HASHED_ENTRY + 8); }
  } else {
    for (let i = 0; i < blocks.length; i++) writeU64(b, RIDX_HDR + i * 8, blocks[i]);
  }
  b.writeUInt32LE(recordChecksum(b, 4), 4);
  return b;
}

/** A decoded index block: `los` only for a directory's hash index (RIDX_HASHED); `root` for its root blocks (RIDX_ROOT: `blocks` are index blocks). */
export interface DecodedIndex { next: number; blocks: number[]; los?: number[]; root?: true }

/**
 * Decode an index block of owner `ino`. A hash index's lowest hashes are
 * checked to ascend strictly inside the block; across blocks, and against
 * the leaves' names, the reader checks them (InodeStore).
 * @throws FormatError on bad magic, owner, count, flags, an unordered hash index or checksum
 */
export function decodeIndexBlock(raw: Buffer, ino: number, where: string): DecodedIndex {
  const bad = (what: string) => new FormatError(`${where}: record index block ${what}`);
  if (raw.readUInt32LE(0) !== RIDX_MAGIC) throw bad('has bad magic');
  if (raw.readUInt32LE(4) !== recordChecksum(raw, 4)) throw bad('checksum mismatch');
  if (readU64(raw, 8, where) !== ino) throw bad(`belongs to inode ${readU64(raw, 8, where)}`);
  const count = raw.readUInt32LE(24), flags = raw.readUInt32LE(28);
  if ((flags & ~(RIDX_HASHED | RIDX_ROOT)) !== 0 || flags === RIDX_ROOT) throw bad(`has unknown flags 0x${flags.toString(16)}`);
  const hashed = (flags & RIDX_HASHED) !== 0, root = (flags & RIDX_ROOT) !== 0;
  if (count > indexCapacity(raw.length, hashed)) throw bad(`claims ${count} entries`);
  const blocks: number[] = [];
  if (!hashed) {
    for (let i = 0; i < count; i++) blocks.push(readU64(raw, RIDX_HDR + i * 8, where));
    return { next: readU64(raw, 16, where), blocks };
  }
  const los: number[] = [];
  for (let i = 0; i < count; i++) {
    const p = RIDX_HDR + i * RIDX_HASHED_ENTRY;
    blocks.push(readU64(raw, p, where));
    const lo = raw.readUInt32LE(p + 8);
    if (raw.readUInt32LE(p + 12) !== 0) throw bad(`entry ${i} has stray bytes`);
    if (i > 0 && lo <= los[i - 1]) throw bad(`lists hash ${lo} after ${los[i - 1]} (not ascending)`);
    los.push(lo);
  }
  return root ? { next: readU64(raw, 16, where), blocks, los, root } : { next: readU64(raw, 16, where), blocks, los };
}
