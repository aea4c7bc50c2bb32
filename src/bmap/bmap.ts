/**
 * @file The per-file block map: file block → region block, as flat extent
 * records in a B+tree keyed by first file block (sorted-btree), so a lookup,
 * insert or removal costs O(log n) whatever the number of extents; a map of
 * at most SMALL_MAP_MAX records is a sorted array until it grows (most files
 * have one extent). Units are blocks throughout; callers convert bytes at
 * the edge.
 *
 * Every mutating method takes a LayoutPermit, which only the layout guard
 * (src/seal/guard.ts, assertLayoutMutable) hands out: like the single check
 * in xfs_bmapi_write() of the S_IOMAP_IMMUTABLE patch, no caller can change a
 * block map without passing the seal and busy-page checks first.
 *
 * Every mutator records the file blocks at which a record began, ended or
 * changed in `changed` (a record is keyed by its first file block); the inode
 * store rewrites just those records on media (src/vfs/records.ts), so one
 * change costs O(1) record blocks whatever the map's size.
 */
import { createRequire } from 'node:module';
import type * as SortedBTree from 'sorted-btree';
import { EXT_UNWRITTEN, type ExtentRec } from '../format/fork.js';

const require = createRequire(import.meta.url);
type BTree<K, V> = SortedBTree.default<K, V>;
const BTree: new <K, V>() => BTree<K, V> = require('sorted-btree').default;

/**
 * Proof that the layout guard approved a change of inode `ino`'s block map.
 * Only the mint handed out once by takePermitMint() makes them, and the
 * mutators below refuse any other object: a permit cannot be forged.
 */
export interface LayoutPermit { readonly ino: number }

const minted = new WeakSet<LayoutPermit>();
let mintTaken = false;

/**
 * The one function that makes LayoutPermits, for the layout guard
 * (src/layout/guard.ts takes it when it loads).
 * @throws Error on a second call
 */
export function takePermitMint(): (ino: number) => LayoutPermit {
  if (mintTaken) throw new Error('bmap: the layout permit mint was already taken (only the layout guard makes permits)');
  mintTaken = true;
  return (ino) => { const p = Object.freeze({ ino }); minted.add(p); return p; };
}

function checkPermit(p: LayoutPermit): void {
  if (!minted.has(p)) throw new Error('bmap: block-map change without a permit from the layout guard');
}

/** A piece of a mapping query: a mapped extent piece or a hole (regionBlock -1). */
export interface MapSeg { fileBlock: number; len: number; regionBlock: number; flags: number }
export const HOLE = -1;

/** The subset of sorted-btree's interface a block map uses (keys: first file blocks). */
interface ExtentTree {
  readonly size: number;
  get(k: number): ExtentRec | undefined;
  set(k: number, v: ExtentRec): unknown;
  delete(k: number): unknown;
  values(): IterableIterator<ExtentRec>;
  minKey(): number | undefined;
  maxKey(): number | undefined;
  /** The pair with the largest key <= k. */
  getPairOrNextLower(k: number): [number, ExtentRec] | undefined;
  /** The pair with the smallest key >= k. */
  getPairOrNextHigher(k: number): [number, ExtentRec] | undefined;
  /** Pairs from the smallest key >= lowestKey on, in key order. */
  entries(lowestKey?: number): IterableIterator<[number, ExtentRec]>;
}

/** Records a block map keeps in a sorted array before it moves them into a B+tree. */
export const SMALL_MAP_MAX = 8;

/**
 * A block map of at most SMALL_MAP_MAX records as one sorted array (key:
 * the record's fileBlock). Most files of a large tree have one extent; a
 * B+tree for it costs some 600 bytes (tree, root node and two preallocated
 * arrays), this about 60. Same semantics as sorted-btree for the methods
 * above; O(SMALL_MAP_MAX) each.
 */
class SmallTree implements ExtentTree {
  private recs: ExtentRec[] = [];
  get size(): number { return this.recs.length; }
  /** Index of the last record with fileBlock <= k, or -1. */
  private floor(k: number): number {
    let i = this.recs.length - 1;
    while (i >= 0 && this.recs[i].fileBlock > k) i--;
    return i;
  }
  get(k: number): ExtentRec | undefined { const i = this.floor(k); return i >= 0 && this.recs[i].fileBlock === k ? this.recs[i] : undefined; }
  set(k: number, v: ExtentRec): void {
    if (v.fileBlock !== k) throw new Error(`bmap: record at file block ${v.fileBlock} stored under key ${k}`);
    const i = this.floor(k);
    if (i >= 0 && this.recs[i].fileBlock === k) { this.recs[i] = v; return; }
    // A new array of exactly the new length (a push would reserve 17 slots for the first record).
    const n = this.recs.length, next: ExtentRec[] = new Array<ExtentRec>(n + 1);
    for (let j = 0; j <= i; j++) next[j] = this.recs[j];
    next[i + 1] = v;
    for (let j = i + 1; j < n; j++) next[j + 1] = this.recs[j];
    this.recs = next;
  }
  delete(k: number): boolean { const i = this.floor(k); if (i < 0 || this.recs[i].fileBlock !== k) return false; this.recs.splice(i, 1); return true; }
  values(): IterableIterator<ExtentRec> { return this.recs.slice().values(); }
  minKey(): number | undefined { return this.recs[0]?.fileBlock; }
  maxKey(): number | undefined { return this.recs[this.recs.length - 1]?.fileBlock; }
  getPairOrNextLower(k: number): [number, ExtentRec] | undefined { const i = this.floor(k); return i >= 0 ? [this.recs[i].fileBlock, this.recs[i]] : undefined; }
  getPairOrNextHigher(k: number): [number, ExtentRec] | undefined {
    const i = this.floor(k);
    const j = i >= 0 && this.recs[i].fileBlock === k ? i : i + 1;
    return j < this.recs.length ? [this.recs[j].fileBlock, this.recs[j]] : undefined;
  }
  *entries(lowestKey = -Infinity): IterableIterator<[number, ExtentRec]> {
    // A copy: the caller may change the map between steps (sorted-btree leaves that undefined; the callers here do not).
    for (const e of this.recs.slice()) if (e.fileBlock >= lowestKey) yield [e.fileBlock, e];
  }
  /** The records, in order (moving them into a B+tree). */
  all(): readonly ExtentRec[] { return this.recs; }
}

/**
 * The tree of every empty block map (most inodes of a large tree are empty
 * files, directories or symlinks): never changed; put() gives the map its own.
 */
const EMPTY_TREE: ExtentTree = new SmallTree();

export class BlockMap {
  private tree: ExtentTree = EMPTY_TREE;
  private mapped = 0;
  /** Changed keys, made at the first change (most loaded files never change: no Set for them). */
  private changedKeys: Set<number> | null = null;

  /** Keys (first file blocks) of records added, removed or changed since the store last synced. */
  get changed(): Set<number> { return (this.changedKeys ??= new Set()); }
  /** Whether any record changed since the store last synced (allocates nothing). */
  get hasChanges(): boolean { return this.changedKeys !== null && this.changedKeys.size > 0; }
  /** The store synced the records: forget the changes. */
  clearChanges(): void { this.changedKeys = null; }

  constructor(extents: ExtentRec[] = []) {
    if (extents.length) this.reset(extents);
  }

  private put(e: ExtentRec, mark = true): void {
    const old = this.tree.get(e.fileBlock);
    if (old) this.mapped -= old.len;
    if (this.tree === EMPTY_TREE) this.tree = new SmallTree();
    else if (!old && this.tree instanceof SmallTree && this.tree.size >= SMALL_MAP_MAX) {
      const big = new BTree<number, ExtentRec>();
      for (const r of this.tree.all()) big.set(r.fileBlock, r);
      this.tree = big;
    }
    this.tree.set(e.fileBlock, e);
    this.mapped += e.len;
    if (mark) this.changed.add(e.fileBlock);
  }

  private del(fileBlock: number): void {
    const old = this.tree.get(fileBlock);
    if (!old) return;
    this.tree.delete(fileBlock);
    this.mapped -= old.len;
    this.changed.add(fileBlock);
  }

  /** The records, in file order (a fresh array: O(n); for listing, not for hot paths). */
  get extents(): readonly ExtentRec[] { return [...this.tree.values()]; }
  get count(): number { return this.tree.size; }

  /** Blocks mapped (written or unwritten). */
  mappedBlocks(): number { return this.mapped; }

  /** The last record in file order, if any. */
  lastExtent(): ExtentRec | undefined { const k = this.tree.maxKey(); return k === undefined ? undefined : this.tree.get(k); }
  /** The first record in file order, if any. */
  firstExtent(): ExtentRec | undefined { const k = this.tree.minKey(); return k === undefined ? undefined : this.tree.get(k); }

  /** The record containing fileBlock, or else the first one after it. */
  private firstEndingAfter(fileBlock: number): ExtentRec | undefined {
    const lo = this.tree.getPairOrNextLower(fileBlock);
    if (lo && lo[1].fileBlock + lo[1].len > fileBlock) return lo[1];
    return this.tree.getPairOrNextHigher(fileBlock)?.[1];
  }

  /** Records from the one containing (or following) fileBlock on, in order. */
  private *from(fileBlock: number): IterableIterator<ExtentRec> {
    const first = this.firstEndingAfter(fileBlock);
    if (!first) return;
    for (const [, e] of this.tree.entries(first.fileBlock)) yield e;
  }

  /**
   * How many records end after file block `fileBlock` (the one containing
   * it included), counting no further than `limit`: O(log n + limit).
   */
  countFrom(fileBlock: number, limit: number): number {
    let n = 0;
    for (const _ of this.from(fileBlock)) if (++n >= limit) break;
    return n;
  }

  /**
   * Where the (n+1)-th record from `fileBlock` on begins (records ending
   * after fileBlock, the one containing it included), or null when n or
   * fewer begin before `end`: the end of a bounded step over [fileBlock,
   * end) that touches at most n records. O(log n + n).
   */
  boundaryAfter(fileBlock: number, n: number, end: number): number | null {
    let i = 0;
    for (const e of this.from(fileBlock)) {
      if (e.fileBlock >= end) return null;
      if (i++ === n) return Math.max(e.fileBlock, fileBlock);
    }
    return null;
  }

  /** Describe [start, start+count) as mapped pieces and holes, in order. */
  map(start: number, count: number): MapSeg[] {
    const out: MapSeg[] = [];
    const end = start + count;
    let pos = start;
    for (const e of this.from(start)) {
      if (pos >= end || e.fileBlock >= end) break;
      if (e.fileBlock > pos) { out.push({ fileBlock: pos, len: e.fileBlock - pos, regionBlock: HOLE, flags: 0 }); pos = e.fileBlock; }
      const n = Math.min(end, e.fileBlock + e.len) - pos;
      out.push({ fileBlock: pos, len: n, regionBlock: e.regionBlock + (pos - e.fileBlock), flags: e.flags });
      pos += n;
    }
    if (pos < end) out.push({ fileBlock: pos, len: end - pos, regionBlock: HOLE, flags: 0 });
    return out;
  }

  /**
   * Allocation goal for file block fileBlock: inside an extent, the region
   * block that keeps the file linear with it; in a hole, the block right after
   * the nearest extent before it (keeps the file packed); 0 (no preference)
   * for a file with nothing mapped before it.
   */
  goalFor(fileBlock: number): number {
    const lo = this.tree.getPairOrNextLower(fileBlock)?.[1];
    if (!lo) return 0;
    if (lo.fileBlock + lo.len > fileBlock) return lo.regionBlock + (fileBlock - lo.fileBlock);
    return lo.regionBlock + lo.len;
  }

  /** Split the extent containing block b so that an extent boundary falls at b. */
  private splitAt(b: number): void {
    const e = this.tree.getPairOrNextLower(b)?.[1];
    if (!e || e.fileBlock >= b || e.fileBlock + e.len <= b) return;
    const head = b - e.fileBlock;
    this.put({ ...e, len: head });
    this.put({ fileBlock: b, regionBlock: e.regionBlock + head, len: e.len - head, flags: e.flags });
  }

  /** Merge neighbours contiguous in file and region with equal flags, over file blocks [lo, hi]. */
  private mergeAround(lo: number, hi: number): void {
    const start = this.tree.getPairOrNextLower(lo - 1)?.[1] ?? this.firstEndingAfter(lo);
    if (!start) return;
    const run: ExtentRec[] = [];
    for (const [, e] of this.tree.entries(start.fileBlock)) {
      run.push(e);
      if (e.fileBlock > hi) break;
    }
    let a = run[0];
    for (let i = 1; i < run.length; i++) {
      const b = run[i];
      if (a.fileBlock + a.len === b.fileBlock && a.regionBlock + a.len === b.regionBlock && a.flags === b.flags && a.len + b.len <= 0xffffffff) {
        this.del(b.fileBlock);
        this.put({ ...a, len: a.len + b.len });
        a = this.tree.get(a.fileBlock)!;
      } else {
        a = b;
      }
    }
  }

  /** Records starting inside [start, end), in order (a copy, safe to change the tree after). */
  private within(start: number, end: number): ExtentRec[] {
    const out: ExtentRec[] = [];
    for (const [k, e] of this.tree.entries(start)) { if (k >= end) break; out.push(e); }
    return out;
  }

  /**
   * Map a hole: blocks [fileBlock, +len) → [regionBlock, +len).
   * @throws Error if any of the file range is already mapped (caller bug)
   */
  insert(_p: LayoutPermit, rec: ExtentRec): void {
    checkPermit(_p);
    const next = this.firstEndingAfter(rec.fileBlock);
    if (next && next.fileBlock < rec.fileBlock + rec.len) throw new Error(`bmap: insert over mapped block ${next.fileBlock}`);
    this.put({ ...rec });
    this.mergeAround(rec.fileBlock, rec.fileBlock + rec.len);
  }

  /**
   * Unmap [start, start+count); returns the region runs that were mapped there
   * (the caller frees them once the new map is committed).
   */
  remove(_p: LayoutPermit, start: number, count: number): ExtentRec[] {
    checkPermit(_p);
    if (count <= 0) return [];
    this.splitAt(start);
    this.splitAt(start + count);
    const gone = this.within(start, start + count);
    for (const e of gone) this.del(e.fileBlock);
    return gone;
  }

  private setFlags(start: number, count: number, fn: (flags: number) => number): void {
    this.splitAt(start);
    this.splitAt(start + count);
    for (const e of this.within(start, start + count)) this.put({ ...e, flags: fn(e.flags) });
    this.mergeAround(start, start + count);
  }

  /** Mark [start, start+count) written (clear UNWRITTEN), splitting and merging as needed. */
  convertWritten(_p: LayoutPermit, start: number, count: number): void { checkPermit(_p); this.setFlags(start, count, (f) => f & ~EXT_UNWRITTEN); }

  /** Mark [start, start+count) unwritten (ZERO_RANGE over mapped blocks). */
  convertUnwritten(_p: LayoutPermit, start: number, count: number): void { checkPermit(_p); this.setFlags(start, count, (f) => f | EXT_UNWRITTEN); }

  /** Shift every extent at or after fileBlock by delta blocks (collapse: negative, insert: positive). O(n): every record moves. */
  shift(_p: LayoutPermit, fileBlock: number, delta: number): void {
    checkPermit(_p);
    this.splitAt(fileBlock);
    const moved = this.within(fileBlock, Infinity);
    for (const e of moved) this.del(e.fileBlock);
    for (const e of moved) this.put({ ...e, fileBlock: e.fileBlock + delta });
    if (moved.length) this.mergeAround(fileBlock + delta - 1, moved[moved.length - 1].fileBlock + delta);
  }

  /** Copy of the records (for encoding). */
  toRecords(): ExtentRec[] { return [...this.tree.values()].map((e) => ({ ...e })); }

  /** The record that begins at fileBlock, if any. */
  recordAt(fileBlock: number): ExtentRec | undefined { return this.tree.get(fileBlock); }

  /**
   * Replace every record (store reload after a failed operation, fsck).
   * @throws Error when records overlap
   */
  reset(extents: ExtentRec[]): void {
    const sorted = extents.map((e) => ({ ...e })).sort((a, b) => a.fileBlock - b.fileBlock);
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1];
      if (a.fileBlock + a.len > sorted[i].fileBlock) throw new Error(`bmap: records overlap at file block ${sorted[i].fileBlock}`);
    }
    this.tree = sorted.length === 0 ? EMPTY_TREE : sorted.length <= SMALL_MAP_MAX ? new SmallTree() : new BTree<number, ExtentRec>();
    this.mapped = 0;
    for (const e of sorted) this.put(e, false);
    this.changedKeys = null;
  }
}
