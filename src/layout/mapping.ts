/**
 * @file Block-mapping helpers shared by data operations (src/vfs/data.ts),
 * seals and pins: unmapping a range into busy extents, freeing a dying
 * inode's blocks, and making a range mapped and written (what a seal needs
 * before it fixes the block map, and what a pin needs before it hands out
 * region addresses). Every change here takes a LayoutPermit from the guard.
 */
import type { Allocator } from '../alloc/allocator.js';
import { HOLE, type LayoutPermit } from '../bmap/bmap.js';
import { EXT_UNWRITTEN } from '../format/fork.js';
import type { Inode } from '../inode/inode.js';
import type { Transaction } from '../journal/tx.js';
import type { Region } from '../region/region.js';
import { blockCount, regionBlock, regionOff } from '../types.js';
import type { LayoutGuard } from './guard.js';

/** Runs a synchronous change as one transaction (TxManager.run). */
export type RunTx = <T>(fn: (tx: Transaction) => T) => T;

export interface DataContext {
  region: Region;
  alloc: Allocator;
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
        c.region.zero(regionOff(runs[0].start * bs), n * bs);
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
    }
  }
  tx.markDirty(inode);
}

