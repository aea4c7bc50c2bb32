/**
 * @file File data operations on one inode: read, write, truncate and
 * fallocate, in bytes at the edges and blocks inside. Every block-map change
 * goes through the layout guard (src/seal/guard.ts) first, and is all or
 * nothing: space is allocated in one call before anything is written, so
 * ENOSPC leaves the file as it was.
 *
 * Newly allocated blocks are zeroed where the write does not cover them, so a
 * file never shows stale data of a freed block. Unwritten extents read as
 * zeroes and are converted when written (XFS semantics). A store into a
 * block other files share (reflink) first gives this file a copy of its own
 * (copy-on-write), so the other owners never see it.
 */
import { HOLE, type LayoutPermit } from '../bmap/bmap.js';
import { FsError } from '../errors.js';
import { EXT_UNWRITTEN } from '../format/fork.js';
import type { Transaction } from '../journal/tx.js';
import { copyOnWrite, lastMappedBlock, releaseTailFrom, sharedRuns, unmapBlocks, type DataContext, type OpSteps } from '../layout/mapping.js';

import { blockCount, regionBlock, regionOff } from '../types.js';
import * as uapi from '../uapi.js';
import type { Inode } from '../inode/inode.js';

/** Largest file size: offsets stay exact in a JS number and block indexes fit u64 records. */
export const MAX_FILE_SIZE = 2 ** 52;
/** Block index past any file's last block (for open-ended ranges); MIN_BLOCK_SIZE is 4096. */
const MAX_FILE_BLOCKS = MAX_FILE_SIZE / 4096;

const ceilDiv = (a: number, b: number) => Math.ceil(a / b);

/** Copy file bytes [off, off+len) into dst; holes and unwritten extents read as zeroes. Returns bytes read (short at EOF). */
export function readData(c: DataContext, inode: Inode, dst: Buffer, len: number, off: number): number {
  if (off >= inode.size || len <= 0) return 0;
  const n = Math.min(len, inode.size - off);
  const bs = c.blockSize;
  const fb0 = Math.floor(off / bs);
  for (const seg of inode.bmap.map(fb0, ceilDiv(off + n, bs) - fb0)) {
    const s = Math.max(off, seg.fileBlock * bs), e = Math.min(off + n, (seg.fileBlock + seg.len) * bs);
    if (seg.regionBlock === HOLE || (seg.flags & EXT_UNWRITTEN)) dst.fill(0, s - off, e - off);
    else c.region.read(regionOff(seg.regionBlock * bs + (s - seg.fileBlock * bs)), dst, s - off, e - s);
  }
  return n;
}

/**
 * Where file bytes [off, off+len) live, for a read answered straight from
 * the region (the FUSE transport sends these ranges with one writev): pairs
 * (region byte offset, or -1 for zeroes; length in bytes) stored in
 * out[base..], neighbours merged. Short at EOF, like readData.
 * @returns the number of pairs, or -1 when more than maxSegs are needed (use readData)
 */
export function mapRead(c: DataContext, inode: Inode, len: number, off: number, out: Float64Array, base: number, maxSegs: number): number {
  if (off >= inode.size || len <= 0) return 0;
  const n = Math.min(len, inode.size - off);
  const bs = c.blockSize;
  const fb0 = Math.floor(off / bs);
  let k = 0;
  for (const seg of inode.bmap.map(fb0, ceilDiv(off + n, bs) - fb0)) {
    const s = Math.max(off, seg.fileBlock * bs), e = Math.min(off + n, (seg.fileBlock + seg.len) * bs);
    const at = seg.regionBlock === HOLE || (seg.flags & EXT_UNWRITTEN) ? -1 : seg.regionBlock * bs + (s - seg.fileBlock * bs);
    const prev = base + 2 * (k - 1);
    if (k > 0 && ((at === -1 && out[prev] === -1) || (at !== -1 && out[prev] !== -1 && out[prev] + out[prev + 1] === at))) {
      out[prev + 1] += e - s;
      continue;
    }
    if (k === maxSegs) return -1;
    out[base + 2 * k] = at;
    out[base + 2 * k + 1] = e - s;
    k++;
  }
  return k;
}

/**
 * lseek SEEK_DATA / SEEK_HOLE (Linux semantics, as XFS without dirty page
 * cache: unwritten extents count as holes; the end of file is a hole).
 * @returns the byte offset found
 * @throws FsError ENXIO when off is at or past EOF, or (SEEK_DATA) no data follows
 */
export function seekData(c: DataContext, inode: Inode, off: number, what: 'data' | 'hole'): number {
  if (off < 0 || off >= inode.size) throw new FsError('ENXIO', 'lseek');
  const bs = c.blockSize;
  const fb0 = Math.floor(off / bs);
  const isData = (seg: { regionBlock: number; flags: number }) => seg.regionBlock !== HOLE && !(seg.flags & EXT_UNWRITTEN);
  for (const seg of inode.bmap.map(fb0, ceilDiv(inode.size, bs) - fb0)) {
    if (isData(seg) === (what === 'data')) return Math.min(inode.size, Math.max(off, seg.fileBlock * bs));
  }
  if (what === 'hole') return inode.size;
  throw new FsError('ENXIO', 'lseek', undefined, 'no data at or after the offset');
}

/**
 * Write src[srcOff, srcOff+len) at file offset off (bytes). Sealed files take in-place writes
 * within EOF only. Allocates holes (one all-or-nothing allocation),
 * converts unwritten extents, and copies shared blocks first (COW).
 * @throws FsError ETXTBSY (sealed, write would extend; a shared block to copy is pinned), EFBIG, ENOSPC
 */
export function writeData(c: DataContext, tx: Transaction, inode: Inode, path: string, src: Buffer, len: number, off: number, srcOff = 0): number {
  if (len === 0) return 0;
  const end = off + len;
  if (off < 0 || end > MAX_FILE_SIZE) throw new FsError('EFBIG', 'write', path, `end offset ${end} beyond the maximum file size`);
  if (inode.sealKind !== 'none' && end > inode.size) c.guard.assertNotSealed({ op: 'write', path, inode });
  const size0 = inode.size;
  const bs = c.blockSize;
  const fb0 = Math.floor(off / bs);
  const copied = c.refs.empty ? 0 : copyOnWrite(c, tx, inode, path, 'write', fb0, ceilDiv(end, bs));
  const segs = inode.bmap.map(fb0, ceilDiv(end, bs) - fb0);
  const needsMapChange = segs.some((s) => s.regionBlock === HOLE || (s.flags & EXT_UNWRITTEN));
  let permit: LayoutPermit | null = null;
  let runs: { start: number; len: number }[] = [];
  if (needsMapChange || copied || end > size0) tx.markDirty(inode);
  if (needsMapChange) {
    permit = c.guard.allocPermit({ op: 'write', path, inode });
    const holes = segs.filter((s) => s.regionBlock === HOLE);
    const need = holes.reduce((a, s) => a + s.len, 0);
    tx.markDirty(inode);
    runs = need ? tx.alloc.alloc(need, inode.bmap.goalFor(holes[0].fileBlock)) : [];
  }
  try {
    for (const seg of segs) {
      const segStart = seg.fileBlock * bs, segEnd = (seg.fileBlock + seg.len) * bs;
      const s = Math.max(off, segStart), e = Math.min(end, segEnd);
      if (seg.regionBlock === HOLE) {
        let fb = seg.fileBlock;
        while (fb < seg.fileBlock + seg.len) {
          const run = runs[0];
          const n = Math.min(run.len, seg.fileBlock + seg.len - fb);
          fillNewBlocks(c, run.start, fb, n, src, off, end, srcOff);
          inode.bmap.insert(permit!, { fileBlock: fb, regionBlock: run.start, len: n, flags: 0 });
          tx.logData(run.start, n);
          if (n === run.len) runs.shift(); else runs[0] = { start: run.start + n, len: run.len - n };
          fb += n;
        }
      } else if (seg.flags & EXT_UNWRITTEN) {
        storeWholeBlocks(c, seg.regionBlock * bs - segStart, segStart, segEnd, { src, srcOff, off, s, e }, false);
        inode.bmap.convertWritten(permit!, seg.fileBlock, seg.len);
        tx.orderData();
      } else {
        const at = seg.regionBlock * bs + (s - segStart);
        c.region.write(regionOff(at), src, srcOff + s - off, e - s);
        inode.noteDirtyData(at, e - s, c.region.flushGen);
      }
    }
  } finally {
    // Blocks allocated but not mapped (an error part-way) go back.
    for (const r of runs) c.alloc.unalloc(regionBlock(r.start), blockCount(r.len));
  }
  if (end > inode.size) inode.size = end;
  if (needsMapChange || copied || end > size0) {
    inode.touchMtimeForWrite();
    tx.markDirty(inode);
  } else if (inode.touchMtimeForWrite()) {
    // An overwrite in place changes only timestamps: fdatasync need not commit for it (ext4's i_datasync_tid).
    const dataSeq0 = inode.dataSeq;
    tx.markDirty(inode);
    inode.dataSeq = dataSeq0;
  }
  return len;
}

/** Write the part of [off, end) that falls in file blocks [fb, fb+n) to region blocks from rb; zero the rest of those blocks. */
function fillNewBlocks(c: DataContext, rb: number, fb: number, n: number, src: Buffer, off: number, end: number, srcOff: number): void {
  const bs = c.blockSize;
  const fStart = fb * bs, fEnd = (fb + n) * bs;
  // Blocks this transaction allocated: no pre-images for the power-fail recording (Region.write's `fresh`).
  storeWholeBlocks(c, rb * bs - fStart, fStart, fEnd, { src, srcOff, off, s: Math.max(off, fStart), e: Math.min(end, fEnd) }, true);
}

/**
 * Store the file bytes [from, to) (block-aligned) of blocks whose old
 * content a write discards (newly allocated, or unwritten): the write's
 * bytes where they fall, file bytes [s, e) taken from src[srcOff + s - off],
 * and zeroes elsewhere, in whole blocks only. A store into part of a page
 * the host does not have cached makes it read that page from disk first
 * (ext4_block_write_begin waits for the read): the region file's pages are
 * not cached after mkfs.pmemfs -P or once evicted, and a sqlite commit's
 * journal header and records are partial blocks, so the blocks holding the
 * first and last bytes are built in memory and written whole.
 * @param base region byte offset minus file byte offset of these blocks
 * @param fresh Region.write's `fresh` (blocks this transaction allocated: no pre-images)
 */
function storeWholeBlocks(c: DataContext, base: number, from: number, to: number,
  d: { src: Buffer; srcOff: number; off: number; s: number; e: number }, fresh: boolean): void {
  const bs = c.blockSize;
  const b0 = Math.floor(d.s / bs) * bs, b1 = Math.ceil(d.e / bs) * bs;   // the blocks the bytes fall in
  const whole = (at: number) => {
    const blk = Buffer.alloc(bs);
    const a = Math.max(d.s, at), z = Math.min(d.e, at + bs);
    d.src.copy(blk, a - at, d.srcOff + a - d.off, d.srcOff + z - d.off);
    c.region.write(regionOff(at + base), blk, 0, bs, fresh);
  };
  if (b0 > from) c.region.zero(regionOff(from + base), b0 - from, fresh);
  let lo = b0, hi = b1;
  if (d.s > b0 || d.e < b0 + bs) { whole(b0); lo = b0 + bs; }
  if (hi > lo && d.e < b1) { whole(b1 - bs); hi = b1 - bs; }
  if (hi > lo) c.region.write(regionOff(lo + base), d.src, d.srcOff + lo - d.off, hi - lo, fresh);
  if (b1 < to) c.region.zero(regionOff(b1 + base), to - b1, fresh);
}

/**
 * The shared region runs a store into file bytes [off, off+len) would copy
 * away from (empty at once when the region shares nothing).
 */
export function cowRuns(c: DataContext, inode: Inode, off: number, len: number): Array<{ start: number; len: number }> {
  if (c.refs.empty || len <= 0) return [];
  const bs = c.blockSize;
  return sharedRuns(c.refs, inode, Math.floor(off / bs), ceilDiv(off + len, bs));
}

/** Store zeroes over file bytes [s, e) where they are mapped and written (partial blocks of punch/zero/truncate); shared blocks are copied first. */
function zeroMapped(c: DataContext, tx: Transaction, inode: Inode, path: string, s: number, e: number): void {
  if (e <= s) return;
  const bs = c.blockSize;
  const fb0 = Math.floor(s / bs);
  if (!c.refs.empty) copyOnWrite(c, tx, inode, path, 'zero', fb0, ceilDiv(e, bs));
  for (const seg of inode.bmap.map(fb0, ceilDiv(e, bs) - fb0)) {
    if (seg.regionBlock === HOLE || (seg.flags & EXT_UNWRITTEN)) continue;
    const a = Math.max(s, seg.fileBlock * bs), b = Math.min(e, (seg.fileBlock + seg.len) * bs);
    c.region.zero(regionOff(seg.regionBlock * bs + (a - seg.fileBlock * bs)), b - a);
  }
}

/**
 * truncate's prepare step: check the size, the seal, and wait for (or
 * refuse over) busy pages past the new EOF. What it returns goes to
 * applyTruncate, in the same request, with nothing awaited in between.
 * @returns the layout permit for a shrink, null otherwise
 * @throws FsError EINVAL, EFBIG, ETXTBSY (sealed or busy), EINTR, ESTALE (freed while waiting)
 */
export async function prepareTruncate(c: DataContext, inode: Inode, path: string, size: number): Promise<LayoutPermit | null> {
  if (!Number.isSafeInteger(size) || size < 0) throw new FsError('EINVAL', 'truncate', path, `size ${size}`);
  if (size > MAX_FILE_SIZE) throw new FsError('EFBIG', 'truncate', path, `size ${size} beyond the maximum file size`);
  if (size !== inode.size) c.guard.assertNotSealed({ op: 'truncate', path, inode });
  const bs = c.blockSize;
  const first = ceilDiv(size, bs);
  // Open-ended: blocks mapped past EOF while the guard waits must go too.
  // The partial block at the new EOF is zeroed past it: a copy-on-write when shared.
  const cow = () => cowRuns(c, inode, size, first * bs - size);
  return size < inode.size
    ? c.guard.assertLayoutMutable({ op: 'truncate', path, inode, breaks: { start: first, count: MAX_FILE_BLOCKS - first }, runs: cow })
    : null;
}

/**
 * truncate's apply step, inside the request's one transaction: the size
 * may have grown back while prepare waited (then there is nothing to free).
 * At most `maxExtents` extent records past the new EOF are freed here, from
 * the end; the caller frees the rest in later transactions (they lie past
 * EOF, so every state in between is a consistent file).
 * @returns whether blocks past the new EOF are still mapped
 * @throws FsError ETXTBSY (a seal set meanwhile), ENOSPC (copy-on-write of the partial last block)
 */
export function applyTruncate(c: DataContext, tx: Transaction, inode: Inode, path: string, size: number, permit: LayoutPermit | null, maxExtents = Infinity): boolean {
  if (size !== inode.size) c.guard.assertNotSealed({ op: 'truncate', path, inode });
  const first = ceilDiv(size, c.blockSize);
  tx.markDirty(inode);
  let left = false;
  if (permit && size < inode.size) {
    if (maxExtents === Infinity) unmapBlocks(tx, inode, permit, first, Math.max(0, lastMappedBlock(inode) - first));
    else left = releaseTailFrom(tx, inode, permit, first, maxExtents);
    zeroMapped(c, tx, inode, path, size, first * c.blockSize);
  }
  inode.size = size;
  inode.touchMtime();
  return left;
}

/**
 * fallocate(2): default and KEEP_SIZE allocate unwritten extents over holes;
 * PUNCH_HOLE (with KEEP_SIZE, as Linux demands) frees whole blocks and zeroes
 * partial ones; ZERO_RANGE turns whole blocks unwritten and zeroes partial
 * ones. COLLAPSE/INSERT come through their own ioctls (FUSE does not forward them).
 * @throws FsError EINVAL, EOPNOTSUPP, EFBIG, ETXTBSY (sealed or busy), ENOSPC
 */
export async function fallocateData(c: DataContext, op: OpSteps, inode: Inode, path: string, mode: number, off: number, len: number, maxExtents = Infinity): Promise<void> {
  const keep = (mode & uapi.FALLOC_FL_KEEP_SIZE) !== 0;
  const kind = mode & ~uapi.FALLOC_FL_KEEP_SIZE;
  if (!(off >= 0) || !(len > 0)) throw new FsError('EINVAL', 'fallocate', path, `offset ${off} length ${len}`);
  if (off + len > MAX_FILE_SIZE) throw new FsError('EFBIG', 'fallocate', path);
  if (kind !== 0 && kind !== uapi.FALLOC_FL_PUNCH_HOLE && kind !== uapi.FALLOC_FL_ZERO_RANGE) {
    throw new FsError('EOPNOTSUPP', 'fallocate', path, `mode 0x${mode.toString(16)}`);
  }
  if (kind === uapi.FALLOC_FL_PUNCH_HOLE && !keep) throw new FsError('EOPNOTSUPP', 'fallocate', path, 'PUNCH_HOLE needs KEEP_SIZE');
  if (!inode.isReg) throw new FsError('ENODEV', 'fallocate', path);
  c.guard.assertNotSealed({ op: 'fallocate', path, inode });
  const bs = c.blockSize;
  const end = off + len;
  const wholeStart = ceilDiv(off, bs), wholeEnd = Math.floor(end / bs);
  const punchOrZero = kind === uapi.FALLOC_FL_PUNCH_HOLE || kind === uapi.FALLOC_FL_ZERO_RANGE;
  const breaks = punchOrZero && wholeEnd > wholeStart ? { start: wholeStart, count: wholeEnd - wholeStart } : null;
  // Partial blocks at either end are zeroed in place: a copy-on-write when shared.
  const cow = () => [...cowRuns(c, inode, off, Math.min(end, wholeStart * bs) - off), ...cowRuns(c, inode, Math.max(off, wholeEnd * bs), end - Math.max(off, wholeEnd * bs))];
  const permit = punchOrZero
    ? await c.guard.assertLayoutMutable({ op: kind === uapi.FALLOC_FL_PUNCH_HOLE ? 'punch' : 'zero_range', path, inode, breaks, runs: cow })
    : c.guard.allocPermit({ op: 'fallocate', path, inode });
  if (breaks && kind === uapi.FALLOC_FL_PUNCH_HOLE && Number.isFinite(maxExtents)) {
    // A punch over more extent records than one transaction may free runs as
    // rolled transactions from its start (XFS's xfs_free_file_space loop),
    // each leaving the file whole: a crash between them leaves the range
    // partly punched, never a block freed that the file still maps.
    for (let cut = inode.bmap.boundaryAfter(breaks.start, maxExtents, breaks.start + breaks.count); cut !== null;
      cut = inode.bmap.boundaryAfter(breaks.start, maxExtents, breaks.start + breaks.count)) {
      const from = breaks.start;
      op.roll((tx) => { tx.markDirty(inode); unmapBlocks(tx, inode, permit, from, cut - from); inode.touchMtime(); });
      breaks.count -= cut - from;
      breaks.start = cut;
    }
  }
  op.apply((tx) => {
    tx.markDirty(inode);
    if (punchOrZero) {
      // Allocate first: ENOSPC must leave the file untouched.
      if (kind === uapi.FALLOC_FL_ZERO_RANGE) allocUnwritten(c, tx, inode, permit, Math.floor(off / bs), ceilDiv(end, bs));
      const zEnd = kind === uapi.FALLOC_FL_PUNCH_HOLE ? Math.min(end, inode.size) : end;
      zeroMapped(c, tx, inode, path, off, Math.min(zEnd, wholeStart * bs));
      zeroMapped(c, tx, inode, path, Math.max(off, wholeEnd * bs), zEnd);
      if (breaks && kind === uapi.FALLOC_FL_PUNCH_HOLE) unmapBlocks(tx, inode, permit, breaks.start, breaks.count);
      if (breaks && kind === uapi.FALLOC_FL_ZERO_RANGE) inode.bmap.convertUnwritten(permit, breaks.start, breaks.count);
    } else {
      allocUnwritten(c, tx, inode, permit, Math.floor(off / bs), ceilDiv(end, bs));
    }
    if (!keep && end > inode.size) inode.size = end;
    inode.touchMtime();
  });
}

/** Map every hole in file blocks [b0, b1) with unwritten extents, all or nothing. */
function allocUnwritten(c: DataContext, tx: Transaction, inode: Inode, permit: LayoutPermit, b0: number, b1: number): void {
  const holes = inode.bmap.map(b0, b1 - b0).filter((s) => s.regionBlock === HOLE);
  const need = holes.reduce((a, s) => a + s.len, 0);
  if (need === 0) return;
  const runs = tx.alloc.alloc(need, inode.bmap.goalFor(b0));
  try {
    for (const h of holes) {
      let fb = h.fileBlock;
      while (fb < h.fileBlock + h.len) {
        const n = Math.min(runs[0].len, h.fileBlock + h.len - fb);
        inode.bmap.insert(permit, { fileBlock: fb, regionBlock: runs[0].start, len: n, flags: EXT_UNWRITTEN });
        if (n === runs[0].len) runs.shift(); else runs[0] = { start: regionBlock(runs[0].start + n), len: blockCount(runs[0].len - n) };
        fb += n;
      }
    }
  } finally {
    for (const r of runs) c.alloc.unalloc(r.start, r.len);
  }
}

/**
 * FALLOC_FL_COLLAPSE_RANGE / INSERT_RANGE semantics (via pmemfs ioctls:
 * FUSE does not forward these modes). Both are layout changes of every block
 * from `off` to EOF: guarded, and refused/waited on when any of them is pinned.
 * Linux rules: block-aligned off and len; collapse must end before EOF;
 * insert must start before EOF.
 * @throws FsError EISDIR, ENODEV (not a regular file), EINVAL, EFBIG, ETXTBSY, ENOSPC
 */
export async function shiftRange(c: DataContext, op: OpSteps, inode: Inode, path: string, mode: 'collapse' | 'insert', off: number, len: number): Promise<void> {
  const bs = c.blockSize;
  if (!inode.isReg) throw new FsError(inode.isDir ? 'EISDIR' : 'ENODEV', mode, path);   // vfs_fallocate's order
  if (!(off >= 0) || !(len > 0) || off % bs || len % bs) throw new FsError('EINVAL', mode, path, `offset and length must be multiples of ${bs}`);
  if (mode === 'collapse' && off + len >= inode.size) throw new FsError('EINVAL', mode, path, 'collapse range must end before EOF');
  if (mode === 'insert' && off >= inode.size) throw new FsError('EINVAL', mode, path, 'insert offset must be before EOF');
  if (mode === 'insert' && inode.size + len > MAX_FILE_SIZE) throw new FsError('EFBIG', mode, path);
  c.guard.assertNotSealed({ op: mode, path, inode });
  const b0 = off / bs, n = len / bs;
  const permit = await c.guard.assertLayoutMutable({ op: mode, path, inode, breaks: { start: b0, count: MAX_FILE_BLOCKS - b0 } });
  op.apply((tx) => {
    tx.markDirty(inode);
    if (mode === 'collapse') {
      unmapBlocks(tx, inode, permit, b0, n);
      inode.bmap.shift(permit, b0 + n, -n);
      inode.size -= len;
    } else {
      inode.bmap.shift(permit, b0, n);
      inode.size += len;
    }
    inode.touchMtime();
  });
}

/**
 * FALLOC_FL_UNSHARE_RANGE semantics (via a pmemfs ioctl: FUSE does not
 * forward the mode): every shared block of file bytes [off, off+len) gets a
 * copy of its own, data unchanged; like XFS, the range is then preallocated
 * as mode 0 would (holes become unwritten extents, the size grows to
 * off+len). Unsharing re-points blocks, so pins on them are busy pages.
 * @throws FsError EINVAL, EFBIG, ETXTBSY (sealed or busy), ENOSPC (nothing changed)
 */
export async function unshareRange(c: DataContext, op: OpSteps, inode: Inode, path: string, off: number, len: number): Promise<void> {
  if (!inode.isReg) throw new FsError(inode.isDir ? 'EISDIR' : 'ENODEV', 'unshare', path);
  if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len <= 0) throw new FsError('EINVAL', 'unshare', path, `offset ${off} length ${len}`);
  if (off + len > MAX_FILE_SIZE) throw new FsError('EFBIG', 'unshare', path);
  c.guard.assertNotSealed({ op: 'unshare', path, inode });
  const bs = c.blockSize;
  const b0 = Math.floor(off / bs), b1 = ceilDiv(off + len, bs);
  const permit = await c.guard.assertLayoutMutable({ op: 'unshare', path, inode, breaks: null, runs: () => sharedRuns(c.refs, inode, b0, b1) });
  op.apply((tx) => {
    tx.markDirty(inode);
    copyOnWrite(c, tx, inode, path, 'unshare', b0, b1);
    allocUnwritten(c, tx, inode, permit, b0, b1);
    if (off + len > inode.size) inode.size = off + len;
    inode.touchMtime();
  });
}
