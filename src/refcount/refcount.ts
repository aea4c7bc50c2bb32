/**
 * @file Reference counts of shared region blocks (reflink), in core: the
 * twin of XFS's refcount btree (fs/xfs/libxfs/xfs_refcount.c). Only shared
 * extents have a record, `count` >= 2 owners of region blocks [start,
 * +len); an in-use block without a record has exactly one owner, so a
 * filesystem that never reflinks carries an empty index and pays nothing.
 *
 * Records never overlap, and neighbours with equal counts are merged, so the
 * index stays as small as the sharing it describes. Every mutator records
 * the keys (first region blocks) it added, removed or changed in `changed`;
 * the inode store rewrites just those records on media (REC_KIND_REFCOUNT
 * record blocks under the superblock's `refcountRoot`, src/format/records.ts),
 * in the same transaction as the block maps that changed with them.
 *
 * Sharing that ended in the running transaction still counts for
 * copy-on-write until the transaction is durable (`mustCopy`, like XFS's
 * busy extents for freed blocks): when B copies away from a block it shared
 * with A, the committed metadata still has B mapping it, so A's next store
 * there must copy too, or a crash before the commit would show A's bytes in
 * B. `commitDone` forgets those runs.
 *
 * Units: region blocks throughout.
 */
import { createRequire } from 'node:module';
import type * as SortedBTree from 'sorted-btree';
import type { RefcountRec } from '../format/records.js';
import { type BlockCount, type RegionBlock, blockCount, regionBlock } from '../types.js';

const require = createRequire(import.meta.url);
type BTree<K, V> = SortedBTree.default<K, V>;
const BTree: new <K, V>() => BTree<K, V> = require('sorted-btree').default;

/** A piece of a region range with its number of owners (1 where no record covers it). */
export interface RefSeg { start: number; len: number; count: number }

/** Largest record length (the on-media field is u32). */
const MAX_REC_LEN = 0xffffffff;

export class RefcountIndex {
  private tree = new BTree<number, RefcountRec>();
  /** Keys (first region blocks) of records added, removed or changed since the store last synced. */
  readonly changed = new Set<number>();
  /** Set by any change since the running operation began (the store reloads on rollback). */
  touched = false;
  /** Runs whose count fell since the last durable commit: start → end (exclusive), merged. */
  private dropped = new BTree<number, number>();

  /** Number of records (shared extents). */
  get size(): number { return this.tree.size; }
  /** True when no block is shared, nor was at the last durable commit: every caller's fast path. */
  get empty(): boolean { return this.tree.size === 0 && this.dropped.size === 0; }

  /** The record that begins at `start`, if any (the store encodes it). */
  recordAt(start: number): RefcountRec | undefined { return this.tree.get(start); }

  /** Every record in region order (fsck, tests). */
  *records(): IterableIterator<RefcountRec> { for (const r of this.tree.values()) yield { ...r }; }

  /**
   * Replace every record (mount, rollback reload, fsck repair). `changed` is cleared.
   * @throws Error when records overlap or a count is below 2 (the loader turns it into a FormatError)
   */
  reset(recs: Iterable<RefcountRec>): void {
    const sorted = [...recs].map((r) => ({ ...r })).sort((a, b) => a.start - b.start);
    for (let i = 0; i < sorted.length; i++) {
      if (sorted[i].count < 2 || sorted[i].len <= 0) throw new Error(`refcount record at block ${sorted[i].start} has count ${sorted[i].count}, length ${sorted[i].len}`);
      if (i > 0 && sorted[i - 1].start + sorted[i - 1].len > sorted[i].start) throw new Error(`refcount records overlap at block ${sorted[i].start}`);
    }
    this.tree = new BTree<number, RefcountRec>();
    for (const r of sorted) this.tree.set(r.start, r);
    this.changed.clear();
  }

  /** Replace every record and mark each one changed (fsck's rebuild: the store writes a fresh chain). */
  replaceAll(recs: Iterable<RefcountRec>): void {
    const old = [...this.tree.keys()];
    this.reset(recs);
    for (const k of old) this.changed.add(k);
    for (const k of this.tree.keys()) this.changed.add(k);
    this.touched = true;
  }

  private put(r: RefcountRec): void { this.tree.set(r.start, r); this.changed.add(r.start); this.touched = true; }
  private del(start: number): void { if (this.tree.delete(start)) { this.changed.add(start); this.touched = true; } }

  /** Owners of region block b (0 is never returned: a free block's count is not kept here). */
  countAt(b: number): number {
    const r = this.tree.getPairOrNextLower(b)?.[1];
    return r && r.start + r.len > b ? r.count : 1;
  }

  /**
   * Region blocks [start, start+len) cut where the count changes, in order,
   * each piece with its count (1 where no record covers it).
   */
  segments(start: number, len: number): RefSeg[] {
    const out: RefSeg[] = [];
    const end = start + len;
    let pos = start;
    if (this.tree.size === 0) return len > 0 ? [{ start, len, count: 1 }] : [];
    const lo = this.tree.getPairOrNextLower(start)?.[1];
    const from = lo && lo.start + lo.len > start ? lo.start : start;
    for (const [, r] of this.tree.entries(from)) {
      if (r.start >= end) break;
      if (r.start > pos) { out.push({ start: pos, len: r.start - pos, count: 1 }); pos = r.start; }
      const e = Math.min(end, r.start + r.len);
      if (e > pos) { out.push({ start: pos, len: e - pos, count: r.count }); pos = e; }
    }
    if (pos < end) out.push({ start: pos, len: end - pos, count: 1 });
    return out;
  }

  /** True if any block of [start, start+len) has two or more owners. */
  anyShared(start: number, len: number): boolean {
    if (this.tree.size === 0) return false;
    const lo = this.tree.getPairOrNextLower(start + len - 1)?.[1];
    return lo !== undefined && lo.start + lo.len > start;
  }

  /** Remember that blocks [start, end) lost an owner in the running transaction. */
  private noteDropped(start: number, end: number): void {
    let s = start, e = end;
    const lo = this.dropped.getPairOrNextLower(s);
    if (lo && lo[1] >= s) { s = lo[0]; e = Math.max(e, lo[1]); }
    for (const [k, v] of [...this.dropped.entries(s)]) {
      if (k > e) break;
      e = Math.max(e, v);
      this.dropped.delete(k);
    }
    this.dropped.set(s, e);
  }

  /** The running transaction is durable: sharing that ended in it ends for copy-on-write too. */
  commitDone(): void { if (this.dropped.size) this.dropped.clear(); }

  /**
   * The pieces of [start, start+len) a store must copy away from: shared
   * now, or shared as of the last durable commit. Count is the current number
   * of owners (at least 2 for a piece shared only as of the commit).
   */
  copySegments(start: number, len: number): RefSeg[] {
    if (this.dropped.size === 0) return this.segments(start, len).filter((p) => p.count >= 2);
    const end = start + len;
    const out: RefSeg[] = [];
    const cuts = new Set<number>([start, end]);
    for (const p of this.segments(start, len)) { cuts.add(p.start); cuts.add(p.start + p.len); }
    const lo = this.dropped.getPairOrNextLower(start);
    const from = lo && lo[1] > start ? lo[0] : start;
    for (const [k, v] of this.dropped.entries(from)) { if (k >= end) break; cuts.add(Math.max(k, start)); cuts.add(Math.min(v, end)); }
    const pts = [...cuts].sort((a, b) => a - b);
    for (let i = 0; i + 1 < pts.length; i++) {
      const a = pts[i], b = pts[i + 1];
      if (b <= a) continue;
      const count = this.countAt(a);
      const d = this.dropped.getPairOrNextLower(a);
      const recent = d !== undefined && d[1] > a;
      if (count < 2 && !recent) continue;
      const last = out[out.length - 1];
      const c = Math.max(count, 2);
      if (last && last.start + last.len === a && last.count === c) last.len += b - a;
      else out.push({ start: a, len: b - a, count: c });
    }
    return out;
  }

  /** True if a store into any block of [start, start+len) must copy it (see copySegments). */
  mustCopy(start: number, len: number): boolean {
    if (this.anyShared(start, len)) return true;
    if (this.dropped.size === 0) return false;
    const d = this.dropped.getPairOrNextLower(start + len - 1);
    return d !== undefined && d[1] > start;
  }

  /** Split the record containing b so that a record boundary falls at b. */
  private splitAt(b: number): void {
    const r = this.tree.getPairOrNextLower(b)?.[1];
    if (!r || r.start >= b || r.start + r.len <= b) return;
    this.put({ start: r.start, len: b - r.start, count: r.count });
    this.put({ start: b, len: r.start + r.len - b, count: r.count });
  }

  /** Merge records contiguous in region and equal in count, over blocks [lo, hi]. */
  private mergeAround(lo: number, hi: number): void {
    const first = this.tree.getPairOrNextLower(lo - 1)?.[1] ?? this.tree.getPairOrNextHigher(lo)?.[1];
    if (!first) return;
    const run: RefcountRec[] = [];
    for (const [, r] of this.tree.entries(first.start)) { run.push(r); if (r.start > hi) break; }
    let a = run[0];
    for (let i = 1; i < run.length; i++) {
      const b = run[i];
      if (a.start + a.len === b.start && a.count === b.count && a.len + b.len <= MAX_REC_LEN) {
        this.del(b.start);
        a = { start: a.start, len: a.len + b.len, count: a.count };
        this.put(a);
      } else {
        a = b;
      }
    }
  }

  /**
   * Add `delta` (+1 or -1) owners to every block of [start, start+len).
   * @returns with delta -1, the runs whose last owner went (the caller frees them)
   */
  private adjust(start: number, len: number, delta: 1 | -1): Array<{ start: RegionBlock; len: BlockCount }> {
    const freed: Array<{ start: RegionBlock; len: BlockCount }> = [];
    if (len <= 0) return freed;
    const end = start + len;
    if (this.tree.size === 0 && delta < 0) return [{ start: regionBlock(start), len: blockCount(len) }];   // nothing shared: all freed
    this.splitAt(start);
    this.splitAt(end);
    const inside: RefcountRec[] = [];
    for (const [k, r] of this.tree.entries(start)) { if (k >= end) break; inside.push(r); }
    let pos = start;
    const gap = (a: number, b: number) => {
      if (b <= a) return;
      if (delta > 0) this.put({ start: a, len: b - a, count: 2 });
      else freed.push({ start: regionBlock(a), len: blockCount(b - a) });
    };
    for (const r of inside) {
      gap(pos, r.start);
      if (delta < 0) this.noteDropped(r.start, r.start + r.len);
      const count = r.count + delta;
      if (count <= 1) this.del(r.start); else this.put({ ...r, count });
      pos = r.start + r.len;
    }
    gap(pos, end);
    this.mergeAround(start, end);
    return freed;
  }

  /** One more owner for every block of [start, start+len) (a reflink shares them). */
  increment(start: number, len: number): void { this.adjust(start, len, 1); }

  /**
   * One owner fewer for every block of [start, start+len) (an owner unmapped them).
   * @returns the runs no owner is left of: the caller frees them (busy until the transaction is durable)
   */
  decrement(start: number, len: number): Array<{ start: RegionBlock; len: BlockCount }> { return this.adjust(start, len, -1); }
}
