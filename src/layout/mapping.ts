/**
 * @file Block-mapping helpers shared by data operations (src/vfs/data.ts),
 * seals and pins: unmapping a range into busy extents, freeing a dying
 * inode's blocks, making a range mapped and written (what a seal needs
 * before it fixes the block map, and what a pin needs before it hands out
 * region addresses), and unsharing reflinked blocks (copy-on-write: the
 * file's blocks get copies of their own, XFS's xfs_reflink_unshare). Every
 * change here takes a LayoutPermit from the guard.
 */
import type { Allocator } from '../alloc/allocator.js';
import { HOLE, type LayoutPermit } from '../bmap/bmap.js';
import { EXT_UNWRITTEN } from '../format/fork.js';
import type { Inode } from '../inode/inode.js';
import type { Transaction } from '../journal/tx.js';
import type { RefcountIndex } from '../refcount/refcount.js';
import type { Region } from '../region/region.js';
import { blockCount, regionBlock, regionOff } from '../types.js';
import type { LayoutGuard } from './guard.js';

/**
 * One operation's transactions, as data operations use them (an Operation
 * of src/op/operation.ts): its one apply step, and before it any number of
 * rolled steps, each a bounded transaction that leaves the file consistent.
 */
export interface OpSteps {
  apply<T>(fn: (tx: Transaction) => T): T;
  roll<T>(fn: (tx: Transaction) => T): T;
}

/** Counters of block sharing (.pmemfs/stats, subsystem=reflink). */
export interface ShareStats {
  clones: number; dedupes: number; dedupe_differs: number;
  /** Bytes newly shared by clones, dedupes and copy_file_range. */
  shared_bytes: number;
  /** Blocks copied away from shared blocks (COW, unshare, seals, write pins). */
  cow_blocks: number;
  copy_range_shared_bytes: number; copy_range_copied_bytes: number;
}
export const newShareStats = (): ShareStats => ({ clones: 0, dedupes: 0, dedupe_differs: 0, shared_bytes: 0, cow_blocks: 0, copy_range_shared_bytes: 0, copy_range_copied_bytes: 0 });

export interface DataContext {
  region: Region;
  share: ShareStats;
  alloc: Allocator;
  /** Owners of shared blocks (read-only use outside a transaction: pin checks before one). */
  refs: RefcountIndex;
  guard: LayoutGuard;
  blockSize: number;
}

/** File block just past the last mapped block (0 when nothing is mapped). */
export function lastMappedBlock(inode: Inode): number {
  const e = inode.bmap.lastExtent();
  return e ? e.fileBlock + e.len : 0;
}

/** Unmap whole file blocks [start, start+count) and queue their region blocks for freeing. */
export function unmapBlocks(tx: Transaction, inode: Inode, permit: LayoutPermit, start: number, count: number): void {
  for (const r of inode.bmap.remove(permit, start, count)) tx.deferFree({ start: regionBlock(r.regionBlock), len: blockCount(r.len) });
}

/**
 * A mapped piece of a file whose region blocks other files share (reference
 * count >= 2), or shared as of the last durable commit (RefcountIndex.copySegments).
 */
export interface SharedPiece { fileBlock: number; len: number; regionBlock: number; flags: number }

/**
 * The pieces of file blocks [b0, b1) whose region blocks are shared, in file
 * order (empty at once when nothing in the region is shared).
 */
export function sharedPieces(refs: RefcountIndex, inode: Inode, b0: number, b1: number): SharedPiece[] {
  const out: SharedPiece[] = [];
  if (refs.empty || b1 <= b0) return out;
  for (const seg of inode.bmap.map(b0, b1 - b0)) {
    if (seg.regionBlock === HOLE || !refs.mustCopy(seg.regionBlock, seg.len)) continue;
    for (const p of refs.copySegments(seg.regionBlock, seg.len)) {
      out.push({ fileBlock: seg.fileBlock + (p.start - seg.regionBlock), len: p.len, regionBlock: p.start, flags: seg.flags });
    }
  }
  return out;
}

/** The region runs of sharedPieces (what a copy-on-write would re-point: the guard checks their pins). */
export function sharedRuns(refs: RefcountIndex, inode: Inode, b0: number, b1: number): Array<{ start: number; len: number }> {
  return sharedPieces(refs, inode, b0, b1).map((p) => ({ start: p.regionBlock, len: p.len }));
}

/**
 * Give the shared blocks among file blocks [b0, b1) copies of their own
 * (UNSHARE_RANGE, and what seals, write pins and partial-block stores need
 * first): one all-or-nothing allocation, written data copied, unwritten
 * extents stay unwritten; the old blocks lose this owner. The caller has
 * checked pins on them (a layout change).
 * @returns blocks unshared
 * @throws FsError ENOSPC (nothing changed); TxNeedsCommit
 */
export function unshareBlocks(c: DataContext, tx: Transaction, inode: Inode, permit: LayoutPermit, b0: number, b1: number): number {
  const pieces = sharedPieces(tx.refcount, inode, b0, b1);
  if (!pieces.length) return 0;
  const bs = c.blockSize;
  const need = pieces.reduce((a, p) => a + p.len, 0);
  tx.markDirty(inode);
  const runs = tx.alloc.alloc(need, inode.bmap.goalFor(pieces[0].fileBlock));
  try {
    for (const p of pieces) {
      let fb = p.fileBlock;
      while (fb < p.fileBlock + p.len) {
        const n = Math.min(runs[0].len, p.fileBlock + p.len - fb);
        const from = p.regionBlock + (fb - p.fileBlock);
        if (!(p.flags & EXT_UNWRITTEN)) c.region.copyWithin(regionOff(runs[0].start * bs), regionOff(from * bs), n * bs);
        unmapBlocks(tx, inode, permit, fb, n);
        inode.bmap.insert(permit, { fileBlock: fb, regionBlock: runs[0].start, len: n, flags: p.flags });
        if (n === runs[0].len) runs.shift(); else runs[0] = { start: regionBlock(runs[0].start + n), len: blockCount(runs[0].len - n) };
        fb += n;
      }
    }
  } finally {
    for (const r of runs) c.alloc.unalloc(r.start, r.len);
  }
  c.share.cow_blocks += need;
  return need;
}

/**
 * Before storing into file blocks [b0, b1) in place: give the shared ones
 * copies of their own (copy-on-write). Pinned shared blocks refuse, whatever
 * the busy policy (PmemFs.cowWait has waited first under busy=wait).
 * @returns blocks copied
 * @throws FsError ETXTBSY (sealed, or a shared block pinned), ENOSPC; TxNeedsCommit
 */
export function copyOnWrite(c: DataContext, tx: Transaction, inode: Inode, path: string, op: string, b0: number, b1: number): number {
  const runs = sharedRuns(c.refs, inode, b0, b1);
  if (!runs.length) return 0;
  return unshareBlocks(c, tx, inode, c.guard.cowPermit({ op, path, inode }, runs), b0, b1);
}

/**
 * Unmap the last `maxExtents` extent records of an inode (all of them when
 * it has fewer): one bounded step of freeing a large file, so that no
 * transaction holds more than a fixed number of extents whatever the file
 * (the shape of XFS's rolled xfs_itruncate_extents).
 * @returns the records left
 */
export function releaseTail(tx: Transaction, inode: Inode, permit: LayoutPermit, maxExtents: number): number {
  releaseTailFrom(tx, inode, permit, 0, maxExtents);
  return inode.bmap.count;
}

/**
 * releaseTail for the blocks from file block `from` on only (a truncate's
 * tail): the record straddling `from` loses its part past it.
 * @returns whether anything is still mapped at or past `from`
 */
export function releaseTailFrom(tx: Transaction, inode: Inode, permit: LayoutPermit, from: number, maxExtents: number): boolean {
  tx.markDirty(inode);
  for (let i = 0; i < maxExtents; i++) {
    const e = inode.bmap.lastExtent();
    if (!e || e.fileBlock + e.len <= from) return false;
    const start = Math.max(from, e.fileBlock);
    unmapBlocks(tx, inode, permit, start, e.fileBlock + e.len - start);
  }
  return inode.bmap.countFrom(from, 1) > 0;
}

/** Free every block of an inode that is going away (no names, handles, leases or pins left). */
export function releaseAllBlocks(tx: Transaction, inode: Inode, permit: LayoutPermit): void {
  const first = inode.bmap.firstExtent();
  if (!first) return;
  unmapBlocks(tx, inode, permit, first.fileBlock, lastMappedBlock(inode) - first.fileBlock);
}

/**
 * Make file blocks [b0, b1) mapped and written: holes get zeroed blocks
 * (one all-or-nothing allocation), unwritten extents are zeroed and
 * converted. What seals (fully mapped up to EOF) and pins (a write fault's
 * effect) need before handing out region addresses.
 * @throws FsError ENOSPC (nothing changed)
 */
export function makeMapped(c: DataContext, tx: Transaction, inode: Inode, permit: LayoutPermit, b0: number, b1: number): void {
  const bs = c.blockSize;
  const segs = inode.bmap.map(b0, b1 - b0);
  const holes = segs.filter((s) => s.regionBlock === HOLE);
  tx.markDirty(inode);
  const runs = tx.alloc.alloc(holes.reduce((a, s) => a + s.len, 0), inode.bmap.goalFor(b0));
  try {
    for (const h of holes) {
      let fb = h.fileBlock;
      while (fb < h.fileBlock + h.len) {
        const n = Math.min(runs[0].len, h.fileBlock + h.len - fb);
        c.region.zero(regionOff(runs[0].start * bs), n * bs, true);   // newly allocated: no pre-image needed
        inode.bmap.insert(permit, { fileBlock: fb, regionBlock: runs[0].start, len: n, flags: 0 });
        if (n === runs[0].len) runs.shift(); else runs[0] = { start: regionBlock(runs[0].start + n), len: blockCount(runs[0].len - n) };
        fb += n;
      }
    }
  } finally {
    for (const r of runs) c.alloc.unalloc(r.start, r.len);
  }
  for (const s of segs) {
    if (s.regionBlock !== HOLE && s.flags & EXT_UNWRITTEN) {
      c.region.zero(regionOff(s.regionBlock * bs), s.len * bs);
      inode.bmap.convertWritten(permit, s.fileBlock, s.len);
      tx.orderData();
    }
  }
  tx.markDirty(inode);
}

