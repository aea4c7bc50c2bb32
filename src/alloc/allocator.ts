/**
 * @file Extent allocator. Free space is held in core three ways: two B+trees
 * of the same free extents (sorted-btree) — `byOffset` keyed by first block,
 * `byLength` keyed by (length, first block), the bnobt/cntbt pair of XFS's
 * xfs_alloc.c — and the free-space bitmap (one bit per region block,
 * 1 = in use), whose changed blocks the transaction logs and checkpoints
 * (src/journal/tx.ts). Every change to free extents goes through addFree /
 * dropFree, which update both trees and the free count together, so the
 * indexes cannot drift. The allocator itself never writes the region.
 *
 * Policy, for a request of `count` blocks near block `goal` (all in blocks):
 *  a. near goal: if the goal block is free and its free extent holds `count`
 *     blocks from the goal on, take them there (a growing file stays
 *     contiguous); if that extent is too short, the next free extent after it
 *     is taken when long enough. A goal outside the data area means none.
 *  b. a request of 2 MiB or more with no usable goal goes at a 2 MiB-aligned
 *     region offset (DAX huge pages) in the smallest free extent that can hold
 *     it aligned; the scan of extents too short to be sure of fitting is
 *     capped (ALIGN_SCAN), past that the smallest extent of count + align - 1
 *     blocks is taken (XFS does only the latter).
 *  c. otherwise best fit: the shortest free extent of at least `count`
 *     blocks, lowest first block among equals; a goal-less request (a new
 *     file) in an extent longer than itself plus 2 x 32 MiB starts in the
 *     extent's middle, 2 MiB-aligned, so the file growing at the extent's
 *     start keeps room (spread).
 *  d. (alloc only) if no extent is long enough, whole extents are taken from
 *     the longest down and the rest by best fit: the fewest runs.
 * Each step is O(log n) in the number of free extents n (d: O(runs · log n));
 * freeing merges neighbours in O(log n); loadBitmap is linear in bitmap words,
 * bit by bit only in words that mix used and free blocks.
 *
 * A reserve of blocks is kept for metadata (record blocks, forks) so that
 * deleting files never fails for want of space to rewrite a directory.
 *
 * Busy extents (XFS's xfs_extent_busy.c): blocks freed by the running
 * transaction are clear in the bitmap at once but join free space only when
 * that transaction is durable (`commitDone`), so no block is reused — and
 * overwritten — while the committed metadata may still point at it. An
 * allocation that only the busy blocks could satisfy throws TxNeedsCommit;
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
const BTree: new <K, V>(entries?: [K, V][], compare?: (a: K, b: K) => number) => BTree<K, V> = require('sorted-btree').default;

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
/** by-length key: (length in blocks, first block). */
type LenKey = [len: number, start: number];
const byLengthOrder = (a: LenKey, b: LenKey): number => a[0] - b[0] || a[1] - b[1];

/** Huge-page size that large requests are aligned to, in bytes. */
const ALIGN_BYTES = 2 << 20;
/** A goal-less request goes mid-extent only in free extents longer than twice this plus itself (bytes). */
const SPREAD_BYTES = 32 << 20;
/** Most extents shorter than count + align - 1 examined for an aligned fit. */
const ALIGN_SCAN = 64;

export class Allocator {
  /** Free extents: first block → length. */
  private readonly byOffset = new BTree<number, number>();
  /** The same extents keyed by (length, first block); values unused. */
  private readonly byLength = new BTree<LenKey, undefined>(undefined, byLengthOrder);
  private freeCount = 0;
  private busy: BlockRun[] = [];
  private busyCount = 0;
  readonly geo: Required<AllocatorGeometry>;
  /** Blocks only metadata may take. */
  readonly reserve: number;
  /** 2 MiB in blocks, or 0 when the block size does not divide it. */
  private readonly alignBlocks: number;
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
    this.alignBlocks = ALIGN_BYTES % geo.blockSize === 0 ? ALIGN_BYTES / geo.blockSize : 0;
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
   * Load free space from the on-media bitmap blocks. Whole 32-block words
   * that are all used or all free are skipped; only mixed words are read bit
   * by bit.
   * @param read returns bitmap block i (0-based)
   * @throws FormatError for a damaged bitmap block
   */
  loadBitmap(read: (i: number) => Buffer): void {
    const per = this.perBlock;
    for (let i = 0; i < this.bitmapBlocks; i++) this.bits.set(decodeBitmapBlock(read(i), i).subarray(0, per / 8), i * per / 8);
    this.clearFree();
    const words = new Uint32Array(this.bits.buffer, this.bits.byteOffset, this.bits.length >> 2);
    const { dataStart, dataEnd } = this.geo;
    let runStart = -1;
    for (let b = dataStart; b < dataEnd;) {
      if ((b & 31) === 0 && b + 32 <= dataEnd && (b >> 5) < words.length) {
        const w = words[b >> 5];
        if (w === 0xffffffff || w === 0) {
          if (w === 0 && runStart < 0) runStart = b;
          else if (w !== 0 && runStart >= 0) { this.addFree(runStart, b - runStart); runStart = -1; }
          b += 32;
          continue;
        }
      }
      const used = this.bitSet(b);
      if (!used && runStart < 0) runStart = b;
      else if (used && runStart >= 0) { this.addFree(runStart, b - runStart); runStart = -1; }
      b++;
    }
    if (runStart >= 0) this.addFree(runStart, dataEnd - runStart);
  }

  /**
   * Build free space from the list of used runs (mkfs, fsck repair):
   * everything in the data area not in `used` is free, and every bitmap block
   * is marked for rewriting. Overlaps in `used` are tolerated here.
   */
  loadFromUsage(used: BlockRun[]): void {
    this.clearFree(); this.busy = []; this.busyCount = 0;
    this.bits.fill(0xff);
    const sorted = [...used].sort((a, b) => a.start - b.start);
    let next = this.geo.dataStart;
    for (const r of sorted) {
      if (r.start > next) this.addFree(next, r.start - next);
      next = Math.max(next, r.start + r.len);
    }
    if (next < this.geo.dataEnd) this.addFree(next, this.geo.dataEnd - next);
    for (const [s, l] of this.byOffset.entries()) this.setBits(s, l, false);
    for (let i = 0; i < this.bitmapBlocks; i++) this.dirtyBitmap.add(i);
  }

  /** Add the free extent [start, start+len) to both indexes (no merging). */
  private addFree(start: number, len: number): void {
    if (len <= 0) return;
    this.byOffset.set(start, len);
    this.byLength.set([len, start], undefined);
    this.freeCount += len;
  }

  /** Remove the free extent [start, start+len), as indexed, from both indexes. */
  private dropFree(start: number, len: number): void {
    this.byOffset.delete(start);
    this.byLength.delete([len, start]);
    this.freeCount -= len;
  }

  private clearFree(): void { this.byOffset.clear(); this.byLength.clear(); this.freeCount = 0; }

  private bitSet(b: number): boolean { return (this.bits[b >> 3] & (1 << (b & 7))) !== 0; }

  /** Set or clear the bits of blocks [start, start+n), whole bytes at a time where possible. */
  private setBits(start: number, n: number, used: boolean): void {
    const end = start + n;
    let b = start;
    for (; b < end && (b & 7) !== 0; b++) this.setBit(b, used);
    const fullEnd = end & ~7;
    if (fullEnd > b) { this.bits.fill(used ? 0xff : 0, b >> 3, fullEnd >> 3); b = fullEnd; }
    for (; b < end; b++) this.setBit(b, used);
    const per = this.perBlock;
    for (let i = Math.floor(start / per); i <= Math.floor((end - 1) / per); i++) this.dirtyBitmap.add(i);
  }

  private setBit(b: number, used: boolean): void {
    if (used) this.bits[b >> 3] |= 1 << (b & 7); else this.bits[b >> 3] &= ~(1 << (b & 7));
  }

  private checkSpace(count: number, metadata: boolean): void {
    this.failpoint?.(count);
    const limit = metadata ? this.freeCount : this.availableBlocks;
    if (count <= limit) return;
    if (count <= limit + this.busyCount) throw new TxNeedsCommit(count);
    throw new FsError('ENOSPC', 'alloc', undefined, `${count} blocks wanted, ${limit} available`);
  }

  /**
   * Allocate `count` blocks: one run by policy steps a–c (file comment), or
   * else several, longest free extents first. All or nothing.
   * @param count blocks wanted
   * @param goal region block to place them at (a file's next block); outside the data area = no goal
   * @param metadata true for metadata blocks, which may use the reserve
   * @returns the runs, in the order taken, covering `count` blocks
   * @throws FsError ENOSPC (nothing allocated); TxNeedsCommit when only busy blocks would do
   */
  alloc(count: number, goal: number, metadata = false): BlockRun[] {
    if (count <= 0) return [];
    this.checkSpace(count, metadata);
    if (!metadata) { this.dataAllocated = true; this.dataTaken += count; }
    const start = this.pickRun(count, goal);
    if (start !== null) return [this.takeAt(start, count)];
    const out: BlockRun[] = [];
    for (let need = count; need > 0;) {
      const fit = this.bestFit(need);
      if (fit !== null) { out.push(this.takeAt(fit, need)); break; }
      const longest = this.byLength.maxKey()?.[0];
      if (!longest) throw new Error('allocator: free count and free indexes disagree');
      out.push(this.takeAt(this.bestFit(longest)!, longest));   // lowest first block among the longest
      need -= longest;
    }
    return out;
  }

  /**
   * Allocate `count` blocks as one run, by policy steps a–c (file comment).
   * @param goal region block to place them at; outside the data area = no goal
   * @throws FsError ENOSPC when no free extent is long enough (nothing allocated); TxNeedsCommit
   *   when the busy blocks could satisfy it
   */
  allocContig(count: number, goal: number, metadata = false): BlockRun {
    this.checkSpace(count, metadata);
    const start = this.pickRun(count, goal);
    if (!metadata) { this.dataAllocated = true; if (start !== null) this.dataTaken += count; }
    if (start === null) {
      if (this.busyCount >= count) throw new TxNeedsCommit(count);
      throw new FsError('ENOSPC', 'alloc', undefined, `no free extent of ${count} contiguous blocks`);
    }
    return this.takeAt(start, count);
  }

  /** First block of a single free run of `count` blocks (steps a–c), or null. */
  private pickRun(count: number, goal: number): number | null {
    const near = this.nearGoal(count, goal);
    if (near !== null) return near;
    const aligned = this.alignBlocks > 0 && count * this.geo.blockSize >= ALIGN_BYTES ? this.alignedFit(count) : null;
    if (aligned !== null) return aligned;
    const fit = this.bestFit(count);
    if (fit === null || (goal >= this.geo.dataStart && goal < this.geo.dataEnd)) return fit;
    return this.spread(fit, count);
  }

  /**
   * A goal-less request (a new file's first blocks) that best fit places in
   * a free extent far longer than itself starts in that extent's middle
   * (2 MiB-aligned when it can), not at its start: the start is usually the
   * block right after a file still growing by appends, whose next allocation
   * would otherwise have to go elsewhere. Leaves each grower half the room.
   */
  private spread(fit: number, count: number): number {
    const len = this.byOffset.get(fit)!;
    const room = Math.floor(SPREAD_BYTES / this.geo.blockSize);
    if (len < count + 2 * room) return fit;
    const a = this.alignBlocks || 1;
    const mid = Math.ceil((fit + Math.floor((len - count) / 2)) / a) * a;
    return mid + count <= fit + len ? mid : fit;
  }

  /** Step a: `goal` itself if free with room, else the next free extent if long enough. */
  private nearGoal(count: number, goal: number): number | null {
    if (!(goal >= this.geo.dataStart && goal < this.geo.dataEnd)) return null;
    const at = this.byOffset.getPairOrNextLower(goal);
    if (!at || at[0] + at[1] <= goal) return null;
    if (at[0] + at[1] - goal >= count) return goal;
    const next = this.byOffset.nextHigherPair(at[0]);
    return next && next[1] >= count ? next[0] : null;
  }

  /** Step b: a 2 MiB-aligned block in the shortest free extent holding `count` blocks from it, or null. */
  private alignedFit(count: number): number | null {
    const a = this.alignBlocks;
    const up = (s: number) => Math.ceil(s / a) * a;
    const sure = count + a - 1;                      // any extent this long holds an aligned run
    let seen = 0;
    for (const [[len, s]] of this.byLength.entries([count, -Infinity])) {
      if (len >= sure || ++seen > ALIGN_SCAN) break;
      if (up(s) + count <= s + len) return up(s);
    }
    const k = this.byLength.getPairOrNextHigher([sure, -Infinity])?.[0];
    return k ? up(k[1]) : null;
  }

  /** Step c: first block of the shortest free extent of at least `count` blocks, or null. */
  private bestFit(count: number): number | null {
    return this.byLength.getPairOrNextHigher([count, -Infinity])?.[0][1] ?? null;
  }

  /** Take the free blocks [start, start+n), which lie in one free extent. */
  private takeAt(start: number, n: number): BlockRun {
    const [fs, fl] = this.byOffset.getPairOrNextLower(start)!;
    this.dropFree(fs, fl);
    this.addFree(fs, start - fs);
    this.addFree(start + n, fs + fl - start - n);
    this.setBits(start, n, true);
    this.undo?.push({ kind: 'take', start, len: n });
    return { start: regionBlock(start), len: blockCount(n) };
  }

  private checkFree(start: number, len: number): void {
    if (start < this.geo.dataStart || start + len > this.geo.dataEnd) throw new Error(`allocator: freeing [${start}, +${len}) outside the data area`);
    for (let b = start; b < start + len; b++) if (!this.bitSet(b)) throw new Error(`allocator: double free of block ${b}`);
  }

  /** Put [start, start+len) into free space, merging with neighbours. */
  private putFree(start: number, len: number): void {
    const lower = this.byOffset.getPairOrNextLower(start);
    const higher = this.byOffset.getPairOrNextHigher(start);
    let s = start, l = len;
    if (lower && lower[0] + lower[1] === s) { this.dropFree(lower[0], lower[1]); s = lower[0]; l += lower[1]; }
    if (higher && higher[0] === start + len) { this.dropFree(higher[0], higher[1]); l += higher[1]; }
    this.addFree(s, l);
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
   * @throws Error if any block of the run is already free
   */
  unalloc(start: RegionBlock, len: BlockCount): void {
    if (len <= 0) return;
    this.checkFree(start, len);
    this.dataTaken -= len;
    this.setBits(start, len, false);
    this.putFree(start, len);
    this.undo?.push({ kind: 'free', start, len });
  }

  /**
   * Data blocks were allocated since the last commit (their contents are
   * exposed by it): the journal's commit orders data first. Cleared by the
   * committer (TxManager.commit).
   */
  dataAllocated = false;
  /**
   * Data blocks allocated since the last commit and kept (unalloc gives
   * back; a rolled-back operation's are not counted): the journal logs a
   * commit's new data instead of flushing it first only when the blocks it
   * logs account for all of them. Cleared by the committer.
   */
  dataTaken = 0;
  private dataTakenAtMark = 0;

  /** The running transaction is durable: its busy extents become free. */
  commitDone(): void {
    for (const r of this.busy) this.putFree(r.start, r.len);
    this.busy = []; this.busyCount = 0;
  }

  /** Begin recording changes for rollback (one operation). */
  mark(): void { this.undo = []; this.dataTakenAtMark = this.dataTaken; }
  /** Stop recording; the operation succeeded. */
  unmark(): void { this.undo = null; }

  /** Undo everything since mark(), newest first. */
  rollback(): void {
    const ops = this.undo ?? [];
    this.undo = null;
    this.dataTaken = this.dataTakenAtMark;
    for (let i = ops.length - 1; i >= 0; i--) {
      const o = ops[i];
      if (o.kind === 'take') { this.setBits(o.start, o.len, false); this.putFree(o.start, o.len); }
      else if (o.kind === 'free') this.takeAt(o.start, o.len);
      else {
        const j = this.busy.findIndex((r) => r.start === o.start && r.len === o.len);
        if (j >= 0) { this.busy.splice(j, 1); this.busyCount -= o.len; }
        this.setBits(o.start, o.len, true);
      }
    }
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
    for (const [s, l] of this.byOffset.entries()) yield { start: regionBlock(s), len: blockCount(l) };
  }

  get freeExtentCount(): number { return this.byOffset.size; }

  /** Length of the longest free extent, in blocks (0 when none). */
  get largestFreeExtent(): number { return this.byLength.maxKey()?.[0] ?? 0; }

  /**
   * Debug check (tests, benches): throws unless both indexes hold the same
   * extents, disjoint, non-adjacent and inside the data area, the counts
   * match them, and the clear bits of the data area are exactly the free and
   * busy blocks. Linear in the data area.
   * @throws Error naming the first disagreement
   */
  checkIndexes(): void {
    const fail = (m: string): never => { throw new Error(`allocator indexes: ${m}`); };
    const { dataStart, dataEnd } = this.geo;
    if (this.byOffset.size !== this.byLength.size) fail(`${this.byOffset.size} extents by offset, ${this.byLength.size} by length`);
    let sum = 0, prevEnd = -1;
    for (const [s, l] of this.byOffset.entries()) {
      if (!(l > 0) || s < dataStart || s + l > dataEnd) fail(`extent [${s}, +${l}) invalid or outside the data area`);
      if (s <= prevEnd) fail(`extent at ${s} overlaps or touches the one before`);
      if (!this.byLength.has([l, s])) fail(`extent [${s}, +${l}) missing by length`);
      for (let b = s; b < s + l; b++) if (this.bitSet(b)) fail(`free block ${b} set in the bitmap`);
      sum += l; prevEnd = s + l;
    }
    for (const [[l, s]] of this.byLength.entries()) if (this.byOffset.get(s) !== l) fail(`by-length extent [${s}, +${l}) not by offset`);
    if (sum !== this.freeCount) fail(`free count ${this.freeCount}, extents hold ${sum}`);
    let busy = 0;
    for (const r of this.busy) { busy += r.len; for (let b = r.start; b < r.start + r.len; b++) if (this.bitSet(b)) fail(`busy block ${b} set in the bitmap`); }
    if (busy !== this.busyCount) fail(`busy count ${this.busyCount}, busy list holds ${busy}`);
    let clear = 0;
    for (let b = dataStart; b < dataEnd; b++) if (!this.bitSet(b)) clear++;
    if (clear !== sum + busy) fail(`${clear} clear bits, ${sum} free + ${busy} busy blocks`);
  }
}
