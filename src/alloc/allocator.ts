/**
 * @file Extent allocator. Free space is held in core twice: as a B+tree of
 * free extents keyed by first block (sorted-btree), for allocation, and as
 * the free-space bitmap (one bit per region block, 1 = in use), whose
 * changed blocks the transaction logs and checkpoints (src/journal/tx.ts).
 * The allocator itself never writes the region.
 *
 * Policy: next-fit from a goal block (the block after the file's previous
 * extent, so sequential writes stay contiguous), wrapping once to the start.
 * A request may be satisfied by several extents. A reserve of blocks is kept
 * for metadata (record blocks, forks) so that deleting files never fails for
 * want of space to rewrite a directory.
 *
 * Busy extents (XFS's xfs_extent_busy.c): blocks freed by the running
 * transaction are clear in the bitmap at once but join the free tree only
 * when that transaction is durable (`commitDone`), so no block is reused —
 * and overwritten — while the committed metadata may still point at it.
 * An allocation that only the busy blocks could satisfy throws TxNeedsCommit;
 * the transaction layer rolls the operation back, commits, and retries it.
 *
 * Undo: every change inside an operation is recorded, so a failed operation
 * gives back exactly what it took (`mark` / `rollback`).
 */
import { createRequire } from 'node:module';
import type * as SortedBTree from 'sorted-btree';
import { FsError } from '../errors.js';
import { bitsPerBitmapBlock, decodeBitmapBlock, encodeBitmapBlock } from '../format/layout.js';
import { type BlockCount, type RegionBlock, blockCount, regionBlock } from '../types.js';

const require = createRequire(import.meta.url);
type BTree<K, V> = SortedBTree.default<K, V>;
const BTree: new <K, V>() => BTree<K, V> = require('sorted-btree').default;

/** A run of region blocks. */
export interface BlockRun { start: RegionBlock; len: BlockCount }

export interface AllocatorGeometry {
  totalBlocks: number;     // blocks the bitmap describes
  dataStart: number;       // first allocatable block
  dataEnd?: number;        // end (exclusive) of allocatable blocks; default totalBlocks
  bitmapStart: number;     // first block of the on-media bitmap
  blockSize: number;       // bytes
}

/**
 * Thrown by an allocation that free space cannot satisfy now but would
 * after the running transaction commits (its busy extents freed).
 */
export class TxNeedsCommit extends Error {
  constructor(want: number) { super(`allocation of ${want} blocks waits for freed blocks to become durable`); this.name = 'TxNeedsCommit'; }
}

type UndoOp = { kind: 'take' | 'free' | 'busy'; start: number; len: number };

export class Allocator {
  private readonly free = new BTree<number, number>();
  private freeCount = 0;
  private busy: BlockRun[] = [];
  private busyCount = 0;
  readonly geo: Required<AllocatorGeometry>;
  /** Blocks only metadata may take. */
  readonly reserve: number;
  /** The bitmap, bit b = region block b (1 = in use); bits past the data area stay set. */
  private readonly bits: Uint8Array;
  private readonly dirtyBitmap = new Set<number>();
  private undo: UndoOp[] | null = null;
  /** Test hook: called before every allocation; may throw (ENOSPC injection). */
  failpoint: ((want: number) => void) | null = null;

  constructor(geo: AllocatorGeometry) {
    this.geo = { dataEnd: geo.totalBlocks, ...geo };
    const dataBlocks = this.geo.dataEnd - geo.dataStart;
    this.reserve = Math.min(1024, Math.max(8, Math.floor(dataBlocks / 100)));
    this.bits = new Uint8Array(this.bitmapBlocks * this.perBlock / 8).fill(0xff);
  }

  private get perBlock(): number { return bitsPerBitmapBlock(this.geo.blockSize); }
  /** Blocks of the on-media bitmap. */
  get bitmapBlocks(): number { return Math.ceil(this.geo.totalBlocks / this.perBlock); }

  /** Free blocks, busy ones included (what statfs reports). */
  get freeBlocks(): number { return this.freeCount + this.busyCount; }
  /** Blocks freed by the running transaction, reusable once it is durable. */
  get busyBlocks(): number { return this.busyCount; }
  /** Free blocks that ordinary data allocations may use now. */
  get availableBlocks(): number { return Math.max(0, this.freeCount - this.reserve); }

  /**
   * Load free space from the on-media bitmap blocks.
   * @param read returns bitmap block i (0-based)
   * @throws FormatError for a damaged bitmap block
   */
  loadBitmap(read: (i: number) => Buffer): void {
    const per = this.perBlock;
    for (let i = 0; i < this.bitmapBlocks; i++) this.bits.set(decodeBitmapBlock(read(i), i).subarray(0, per / 8), i * per / 8);
    this.free.clear(); this.freeCount = 0;
    const { dataStart, dataEnd } = this.geo;
    let runStart = -1;
    for (let b = dataStart; b <= dataEnd; b++) {
      const used = b === dataEnd || this.bitSet(b);
      if (!used && runStart < 0) runStart = b;
      else if (used && runStart >= 0) { this.insertFree(runStart, b - runStart); runStart = -1; }
    }
  }

  /**
   * Build free space from the list of used runs (mkfs, fsck repair):
   * everything in the data area not in `used` is free, and every bitmap block
   * is marked for rewriting. Overlaps in `used` are tolerated here.
   */
  loadFromUsage(used: BlockRun[]): void {
    this.free.clear(); this.freeCount = 0; this.busy = []; this.busyCount = 0;
    this.bits.fill(0xff);
    const sorted = [...used].sort((a, b) => a.start - b.start);
    let next = this.geo.dataStart;
    for (const r of sorted) {
      if (r.start > next) this.insertFree(next, r.start - next);
      next = Math.max(next, r.start + r.len);
    }
    if (next < this.geo.dataEnd) this.insertFree(next, this.geo.dataEnd - next);
    for (const [s, l] of this.free.entries()) this.setBits(s, l, false);
    for (let i = 0; i < this.bitmapBlocks; i++) this.dirtyBitmap.add(i);
  }

  private insertFree(start: number, len: number): void {
    if (len <= 0) return;
    this.free.set(start, len);
    this.freeCount += len;
  }

  private bitSet(b: number): boolean { return (this.bits[b >> 3] & (1 << (b & 7))) !== 0; }

  private setBits(start: number, n: number, used: boolean): void {
    for (let b = start; b < start + n; b++) {
      if (used) this.bits[b >> 3] |= 1 << (b & 7); else this.bits[b >> 3] &= ~(1 << (b & 7));
    }
    const per = this.perBlock;
    for (let i = Math.floor(start / per); i <= Math.floor((start + n - 1) / per); i++) this.dirtyBitmap.add(i);
  }

  private checkSpace(count: number, metadata: boolean): void {
    this.failpoint?.(count);
    const limit = metadata ? this.freeCount : this.availableBlocks;
    if (count <= limit) return;
    if (count <= limit + this.busyCount) throw new TxNeedsCommit(count);
    throw new FsError('ENOSPC', 'alloc', undefined, `${count} blocks wanted, ${limit} available`);
  }

  /**
   * Allocate `count` blocks, as few runs as the free space allows, starting at
   * or after `goal` if possible. All or nothing.
   * @param metadata true for metadata blocks, which may use the reserve
   * @throws FsError ENOSPC (nothing allocated); TxNeedsCommit when only busy blocks would do
   */
  alloc(count: number, goal: number, metadata = false): BlockRun[] {
    if (count <= 0) return [];
    this.checkSpace(count, metadata);
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
   * `goal` (wrapping once) that is long enough. Linear in the number of free
   * extents; a by-size index will replace the scan (the extent engine).
   * @throws FsError ENOSPC when no free extent is long enough (nothing allocated); TxNeedsCommit
   */
  allocContig(count: number, goal: number, metadata = false): BlockRun {
    this.checkSpace(count, metadata);
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
    if (start === null) {
      if (this.busyCount >= count) throw new TxNeedsCommit(count);
      throw new FsError('ENOSPC', 'alloc', undefined, `no free extent of ${count} contiguous blocks`);
    }
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
    this.setBits(start, n, true);
    this.undo?.push({ kind: 'take', start, len: n });
  }

  private checkFree(start: number, len: number): void {
    if (start < this.geo.dataStart || start + len > this.geo.dataEnd) throw new Error(`allocator: freeing [${start}, +${len}) outside the data area`);
    for (let b = start; b < start + len; b++) if (!this.bitSet(b)) throw new Error(`allocator: double free of block ${b}`);
  }

  /** Put [start, start+len) into the free tree, merging with neighbours. */
  private putFree(start: number, len: number): void {
    const lower = this.free.getPairOrNextLower(start);
    const higher = this.free.getPairOrNextHigher(start);
    let s = start, l = len;
    if (lower && lower[0] + lower[1] === s) { this.free.delete(lower[0]); s = lower[0]; l += lower[1]; }
    if (higher && higher[0] === start + len) { this.free.delete(higher[0]); l += higher[1]; }
    this.free.set(s, l);
    this.freeCount += len;
  }

  /**
   * Free a run that committed metadata may still reference: clear in the
   * bitmap now, reusable once the running transaction is durable.
   * @throws Error if any block of the run is already free (a bug, never user input)
   */
  release(start: RegionBlock, len: BlockCount): void {
    if (len <= 0) return;
    this.checkFree(start, len);
    this.setBits(start, len, false);
    this.busy.push({ start, len });
    this.busyCount += len;
    this.undo?.push({ kind: 'busy', start, len });
  }

  /**
   * Give back a run allocated by the running operation and never made
   * reachable (an error part-way): reusable at once.
   */
  unalloc(start: RegionBlock, len: BlockCount): void {
    if (len <= 0) return;
    this.checkFree(start, len);
    this.setBits(start, len, false);
    this.putFree(start, len);
    this.undo?.push({ kind: 'free', start, len });
  }

  /** The running transaction is durable: its busy extents become free. */
  commitDone(): void {
    for (const r of this.busy) this.putFree(r.start, r.len);
    this.busy = []; this.busyCount = 0;
  }

  /** Begin recording changes for rollback (one operation). */
  mark(): void { this.undo = []; }
  /** Stop recording; the operation succeeded. */
  unmark(): void { this.undo = null; }

  /** Undo everything since mark(), newest first. */
  rollback(): void {
    const ops = this.undo ?? [];
    this.undo = null;
    for (let i = ops.length - 1; i >= 0; i--) {
      const o = ops[i];
      if (o.kind === 'take') { this.setBits(o.start, o.len, false); this.putFree(o.start, o.len); }
      else if (o.kind === 'free') this.retake(o.start, o.len);
      else {
        const j = this.busy.findIndex((r) => r.start === o.start && r.len === o.len);
        if (j >= 0) { this.busy.splice(j, 1); this.busyCount -= o.len; }
        this.setBits(o.start, o.len, true);
      }
    }
  }

  /** Take a specific free run (undo of unalloc). */
  private retake(start: number, len: number): void {
    const pair = this.free.getPairOrNextLower(start)!;
    this.take(pair[0], pair[1], start, len);
  }

  /** Bitmap blocks changed since the last call, with their encoded images. */
  takeDirtyBitmap(): Array<{ index: number; image: Buffer }> {
    if (this.dirtyBitmap.size === 0) return [];   // most operations: every operation's end asks
    const out = [...this.dirtyBitmap].sort((a, b) => a - b).map((i) => ({ index: i, image: this.bitmapImage(i) }));
    this.dirtyBitmap.clear();
    return out;
  }

  /** Encoded bitmap block i. */
  bitmapImage(i: number): Buffer {
    const per8 = this.perBlock / 8;
    return encodeBitmapBlock(this.geo.blockSize, i, this.bits.subarray(i * per8, (i + 1) * per8));
  }

  /** True if every block of the run is allocated. */
  isAllocated(start: number, len: number): boolean {
    for (let b = start; b < start + len; b++) if (!this.bitSet(b)) return false;
    return true;
  }

  /** Whether the bitmap marks one block in use (fsck). */
  bitmapSays(block: number): boolean { return this.bitSet(block); }

  /** Free extents in block order (fsck, stats); busy ones not included. */
  *freeRuns(): IterableIterator<BlockRun> {
    for (const [s, l] of this.free.entries()) yield { start: regionBlock(s), len: blockCount(l) };
  }

  get freeExtentCount(): number { return this.free.size; }
}
