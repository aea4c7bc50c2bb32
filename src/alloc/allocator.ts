/**
 * @file Extent allocator v1. Free space is held in core as a B+tree of free
 * extents keyed by first block (sorted-btree), and on media as a bitmap with
 * one bit per region block (1 = in use), updated in the same commit as the
 * block maps that use the blocks.
 *
 * Policy: next-fit from a goal block (the block after the file's previous
 * extent, so sequential writes stay contiguous), wrapping once to the start.
 * A request may be satisfied by several extents. A reserve of blocks is kept
 * for metadata (inode forks) so that deleting files never fails for want of
 * space to rewrite a directory. Later (design/direction.md step 4): a
 * by-size index, 2 MiB alignment for large requests, refcounts.
 *
 * Caveat: the allocator only tracks; callers order the bitmap and block-map
 * updates through the transaction (src/journal/tx.ts).
 */
import { createRequire } from 'node:module';
import type * as SortedBTree from 'sorted-btree';
import { FsError } from '../errors.js';
import { regionOff, type BlockCount, type RegionBlock, blockCount, regionBlock } from '../types.js';
import type { Region } from '../region/region.js';

const require = createRequire(import.meta.url);
type BTree<K, V> = SortedBTree.default<K, V>;
const BTree: new <K, V>() => BTree<K, V> = require('sorted-btree').default;

/** A run of region blocks. */
export interface BlockRun { start: RegionBlock; len: BlockCount }

export interface AllocatorGeometry {
  totalBlocks: number;
  dataStart: number;       // first allocatable block
  bitmapStart: number;     // block of the on-media bitmap
  blockSize: number;
}

export class Allocator {
  private readonly free = new BTree<number, number>();
  private freeCount = 0;
  readonly geo: AllocatorGeometry;
  /** Blocks only metadata (forks) may take. */
  readonly reserve: number;
  private readonly region: Region | null;
  private dirtyLo = Infinity;
  private dirtyHi = -1;

  /**
   * @param region where the bitmap lives; null for a purely in-core allocator (tests, fsck)
   */
  constructor(geo: AllocatorGeometry, region: Region | null) {
    this.geo = geo;
    this.region = region;
    const dataBlocks = geo.totalBlocks - geo.dataStart;
    this.reserve = Math.min(1024, Math.max(8, Math.floor(dataBlocks / 100)));
  }

  get freeBlocks(): number { return this.freeCount; }
  /** Free blocks that ordinary data allocations may use. */
  get availableBlocks(): number { return Math.max(0, this.freeCount - this.reserve); }

  /** Load free space from the on-media bitmap. */
  loadBitmap(): void {
    const { totalBlocks, dataStart } = this.geo;
    const bits = this.readBitmapBytes(0, totalBlocks);
    let runStart = -1;
    for (let b = dataStart; b <= totalBlocks; b++) {
      const used = b === totalBlocks || (bits[b >> 3] & (1 << (b & 7))) !== 0;
      if (!used && runStart < 0) runStart = b;
      else if (used && runStart >= 0) { this.insertFree(runStart, b - runStart); runStart = -1; }
    }
  }

  /**
   * Build free space from the list of used runs (crash recovery, fsck, mkfs):
   * everything in the data area not in `used` is free. Overlaps in `used`
   * are tolerated here; fsck reports them separately.
   */
  loadFromUsage(used: BlockRun[]): void {
    this.free.clear();
    this.freeCount = 0;
    const sorted = [...used].sort((a, b) => a.start - b.start);
    let next = this.geo.dataStart;
    for (const r of sorted) {
      if (r.start > next) this.insertFree(next, r.start - next);
      next = Math.max(next, r.start + r.len);
    }
    if (next < this.geo.totalBlocks) this.insertFree(next, this.geo.totalBlocks - next);
  }

  private insertFree(start: number, len: number): void {
    if (len <= 0) return;
    this.free.set(start, len);
    this.freeCount += len;
  }

  /**
   * Allocate `count` blocks, as few runs as the free space allows, starting at
   * or after `goal` if possible. All or nothing.
   * @param metadata true for fork blocks, which may use the reserve
   * @throws FsError ENOSPC when not enough free blocks exist (nothing allocated)
   */
  alloc(count: number, goal: number, metadata = false): BlockRun[] {
    const limit = metadata ? this.freeCount : this.availableBlocks;
    if (count <= 0) return [];
    if (count > limit) throw new FsError('ENOSPC', 'alloc', undefined, `${count} blocks wanted, ${limit} available`);
    const out: BlockRun[] = [];
    let need = count;
    let cursor = Math.max(goal, this.geo.dataStart);
    let wrapped = false;
    while (need > 0) {
      let pair = this.free.getPairOrNextLower(cursor);
      if (!pair || pair[0] + pair[1] <= cursor) pair = this.free.getPairOrNextHigher(cursor);
      if (!pair) {
        if (wrapped) throw new Error('allocator: free count and free tree disagree');
        wrapped = true; cursor = this.geo.dataStart; continue;
      }
      const [fs, fl] = pair;
      const start = Math.max(fs, cursor);
      const n = Math.min(need, fs + fl - start);
      this.take(fs, fl, start, n);
      const last = out[out.length - 1];
      if (last && last.start + last.len === start) out[out.length - 1] = { start: last.start, len: blockCount(last.len + n) };
      else out.push({ start: regionBlock(start), len: blockCount(n) });
      need -= n;
      cursor = start + n;
    }
    return out;
  }

  /**
   * Allocate `count` blocks as one run: the first free extent at or after
   * `goal` (wrapping once) that is long enough. Inode forks need this.
   * Linear in the number of free extents; a by-size index will replace the
   * scan (design/direction.md step 4).
   * @throws FsError ENOSPC when no free extent is long enough (nothing allocated)
   */
  allocContig(count: number, goal: number, metadata = false): BlockRun {
    const limit = metadata ? this.freeCount : this.availableBlocks;
    if (count > limit) throw new FsError('ENOSPC', 'alloc', undefined, `${count} blocks wanted, ${limit} available`);
    const pick = (from: number, to: number): number | null => {
      for (const [s, l] of this.free.entries(from)) {
        if (s >= to) break;
        if (l >= count) return s;
      }
      return null;
    };
    const lower = this.free.getPairOrNextLower(goal);
    const first = lower && lower[0] + lower[1] > goal && lower[0] + lower[1] - goal >= count ? goal : null;
    const start = first ?? pick(goal, Infinity) ?? pick(this.geo.dataStart, goal);
    if (start === null) throw new FsError('ENOSPC', 'alloc', undefined, `no free extent of ${count} contiguous blocks`);
    const [fs, fl] = this.free.getPairOrNextLower(start)!;
    this.take(fs, fl, start, count);
    return { start: regionBlock(start), len: blockCount(count) };
  }

  /** Remove [start, start+n) from the free extent [fs, fs+fl). */
  private take(fs: number, fl: number, start: number, n: number): void {
    this.free.delete(fs);
    if (start > fs) this.free.set(fs, start - fs);
    if (start + n < fs + fl) this.free.set(start + n, fs + fl - start - n);
    this.freeCount -= n;
    this.markBitmap(start, n, true);
  }

  /**
   * Return a run to free space, merging with neighbours.
   * @throws Error if any block of the run is already free (a double free is a bug, never user input)
   */
  release(start: RegionBlock, len: BlockCount): void {
    if (len <= 0) return;
    if (start < this.geo.dataStart || start + len > this.geo.totalBlocks) throw new Error(`allocator: freeing [${start}, +${len}) outside the data area`);
    const lower = this.free.getPairOrNextLower(start);
    if (lower && lower[0] + lower[1] > start) throw new Error(`allocator: double free of block ${start}`);
    const higher = this.free.getPairOrNextHigher(start);
    if (higher && higher[0] < start + len) throw new Error(`allocator: double free of block ${higher[0]}`);
    let s: number = start, l: number = len;
    if (lower && lower[0] + lower[1] === s) { this.free.delete(lower[0]); s = lower[0]; l += lower[1]; }
    if (higher && higher[0] === start + len) { this.free.delete(higher[0]); l += higher[1]; }
    this.free.set(s, l);
    this.freeCount += len;
    this.markBitmap(start, len, false);
  }

  /** True if every block of the run is allocated. */
  isAllocated(start: number, len: number): boolean {
    const lower = this.free.getPairOrNextLower(start);
    if (lower && lower[0] + lower[1] > start) return false;
    const higher = this.free.getPairOrNextHigher(start);
    return !(higher && higher[0] < start + len);
  }

  /** Free extents in block order (fsck, stats). */
  *freeRuns(): IterableIterator<BlockRun> {
    for (const [s, l] of this.free.entries()) yield { start: regionBlock(s), len: blockCount(l) };
  }

  get freeExtentCount(): number { return this.free.size; }

  // --- the on-media bitmap -------------------------------------------------

  private readBitmapBytes(firstBlock: number, nBlocks: number): Buffer {
    const lo = firstBlock >> 3, hi = (firstBlock + nBlocks + 7) >> 3;
    if (!this.region) return Buffer.alloc(hi - lo);
    return this.region.readBuf(regionOff(this.geo.bitmapStart * this.geo.blockSize + lo), hi - lo);
  }

  private markBitmap(start: number, n: number, used: boolean): void {
    if (!this.region || this.region.readOnly) return;
    const lo = start >> 3;
    const bytes = this.readBitmapBytes(start, n);
    for (let b = start; b < start + n; b++) {
      const byte = (b >> 3) - lo, bit = 1 << (b & 7);
      if (used) bytes[byte] |= bit; else bytes[byte] &= ~bit;
    }
    const off = this.geo.bitmapStart * this.geo.blockSize + lo;
    this.region.write(regionOff(off), bytes, 0, bytes.length);
    this.dirtyLo = Math.min(this.dirtyLo, off);
    this.dirtyHi = Math.max(this.dirtyHi, off + bytes.length);
  }

  /** Rewrite the whole bitmap from the in-core free tree (after crash recovery). */
  rewriteBitmap(): void {
    if (!this.region || this.region.readOnly) return;
    const { totalBlocks, bitmapStart, blockSize } = this.geo;
    const bits = Buffer.alloc((totalBlocks + 7) >> 3, 0xff);
    for (const [s, l] of this.free.entries()) {
      for (let b = s; b < s + l; b++) bits[b >> 3] &= ~(1 << (b & 7));
    }
    // Bits past totalBlocks stay set: they name no block and must never look free.
    this.region.write(regionOff(bitmapStart * blockSize), bits, 0, bits.length);
    this.dirtyLo = bitmapStart * blockSize;
    this.dirtyHi = this.dirtyLo + bits.length;
  }

  /** Persistence point: flush the bitmap bytes changed since the last flush. */
  persist(): void {
    if (!this.region || this.dirtyHi < 0) return;
    this.region.persist('bitmap', regionOff(this.dirtyLo), this.dirtyHi - this.dirtyLo);
    this.dirtyLo = Infinity; this.dirtyHi = -1;
  }

  /** Read the on-media bit of one block (fsck). */
  bitmapSays(block: number): boolean {
    const b = this.readBitmapBytes(block, 1);
    return (b[0] & (1 << (block & 7))) !== 0;
  }
}
