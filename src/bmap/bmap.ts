/**
 * @file The per-file block map: file block → region block, as a sorted array
 * of flat extent records (the form the native data path will later receive;
 * design/direction.md step 3). Units are blocks throughout; callers convert
 * bytes at the edge.
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
import { EXT_UNWRITTEN, type ExtentRec } from '../format/fork.js';

/** Proof that the layout guard approved a change of this block map. */
export interface LayoutPermit { readonly __layoutPermit: true; readonly ino: number }

/** A piece of a mapping query: a mapped extent piece or a hole (regionBlock -1). */
export interface MapSeg { fileBlock: number; len: number; regionBlock: number; flags: number }
export const HOLE = -1;

export class BlockMap {
  private ext: ExtentRec[];
  /** Keys (first file blocks) of records added, removed or changed since the store last synced. */
  readonly changed = new Set<number>();

  constructor(extents: ExtentRec[] = []) {
    this.ext = extents.map((e) => ({ ...e })).sort((a, b) => a.fileBlock - b.fileBlock);
  }

  /** The records, in file order (read-only view; copy before keeping). */
  get extents(): readonly ExtentRec[] { return this.ext; }
  get count(): number { return this.ext.length; }

  /** Blocks mapped (written or unwritten). */
  mappedBlocks(): number {
    let n = 0;
    for (const e of this.ext) n += e.len;
    return n;
  }

  /** Index of the first extent ending after fileBlock (binary search). */
  private firstEndingAfter(fileBlock: number): number {
    let lo = 0, hi = this.ext.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const e = this.ext[mid];
      if (e.fileBlock + e.len <= fileBlock) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  /** Describe [start, start+count) as mapped pieces and holes, in order. */
  map(start: number, count: number): MapSeg[] {
    const out: MapSeg[] = [];
    const end = start + count;
    let pos = start;
    for (let i = this.firstEndingAfter(start); i < this.ext.length && pos < end; i++) {
      const e = this.ext[i];
      if (e.fileBlock >= end) break;
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
    const i = this.firstEndingAfter(fileBlock);
    const cur = this.ext[i];
    if (cur && cur.fileBlock <= fileBlock) return cur.regionBlock + (fileBlock - cur.fileBlock);
    const prev = this.ext[i - 1];
    return prev ? prev.regionBlock + prev.len : 0;
  }

  /** Split the extent containing block b so that an extent boundary falls at b. */
  private splitAt(b: number): void {
    const i = this.firstEndingAfter(b);
    const e = this.ext[i];
    if (!e || e.fileBlock >= b) return;
    const head = b - e.fileBlock;
    this.ext.splice(i, 1, { ...e, len: head }, { fileBlock: b, regionBlock: e.regionBlock + head, len: e.len - head, flags: e.flags });
    this.changed.add(e.fileBlock).add(b);
  }

  /** Merge neighbours contiguous in file and region with equal flags, around index range [lo, hi]. */
  private mergeAround(lo: number, hi: number): void {
    for (let i = Math.min(hi, this.ext.length - 1); i > Math.max(lo, 0) - 1 && i > 0; i--) {
      const a = this.ext[i - 1], b = this.ext[i];
      if (a.fileBlock + a.len === b.fileBlock && a.regionBlock + a.len === b.regionBlock && a.flags === b.flags && a.len + b.len <= 0xffffffff) {
        a.len += b.len;
        this.ext.splice(i, 1);
        this.changed.add(a.fileBlock).add(b.fileBlock);
      }
    }
  }

  /**
   * Map a hole: blocks [fileBlock, +len) → [regionBlock, +len).
   * @throws Error if any of the file range is already mapped (caller bug)
   */
  insert(_p: LayoutPermit, rec: ExtentRec): void {
    const i = this.firstEndingAfter(rec.fileBlock);
    const next = this.ext[i];
    if (next && next.fileBlock < rec.fileBlock + rec.len) throw new Error(`bmap: insert over mapped block ${next.fileBlock}`);
    this.ext.splice(i, 0, { ...rec });
    this.changed.add(rec.fileBlock);
    this.mergeAround(i, i + 1);
  }

  /**
   * Unmap [start, start+count); returns the region runs that were mapped there
   * (the caller frees them once the new map is committed).
   */
  remove(_p: LayoutPermit, start: number, count: number): ExtentRec[] {
    if (count <= 0) return [];
    this.splitAt(start);
    this.splitAt(start + count);
    const i = this.firstEndingAfter(start);
    let j = i;
    while (j < this.ext.length && this.ext[j].fileBlock < start + count) j++;
    const gone = this.ext.splice(i, j - i);
    for (const e of gone) this.changed.add(e.fileBlock);
    return gone;
  }

  /** Mark [start, start+count) written (clear UNWRITTEN), splitting and merging as needed. */
  convertWritten(_p: LayoutPermit, start: number, count: number): void {
    this.splitAt(start);
    this.splitAt(start + count);
    const i = this.firstEndingAfter(start);
    let j = i;
    for (; j < this.ext.length && this.ext[j].fileBlock < start + count; j++) { this.ext[j].flags &= ~EXT_UNWRITTEN; this.changed.add(this.ext[j].fileBlock); }
    this.mergeAround(i, j);
  }

  /** Mark [start, start+count) unwritten (ZERO_RANGE over mapped blocks). */
  convertUnwritten(_p: LayoutPermit, start: number, count: number): void {
    this.splitAt(start);
    this.splitAt(start + count);
    const i = this.firstEndingAfter(start);
    let j = i;
    for (; j < this.ext.length && this.ext[j].fileBlock < start + count; j++) { this.ext[j].flags |= EXT_UNWRITTEN; this.changed.add(this.ext[j].fileBlock); }
    this.mergeAround(i, j);
  }

  /** Shift every extent at or after fileBlock by delta blocks (collapse: negative, insert: positive). */
  shift(_p: LayoutPermit, fileBlock: number, delta: number): void {
    this.splitAt(fileBlock);
    for (const e of this.ext) {
      if (e.fileBlock < fileBlock) continue;
      this.changed.add(e.fileBlock);
      e.fileBlock += delta;
      this.changed.add(e.fileBlock);
    }
    this.ext.sort((a, b) => a.fileBlock - b.fileBlock);
    this.mergeAround(0, this.ext.length);
  }

  /** Copy of the records (for encoding). */
  toRecords(): ExtentRec[] { return this.ext.map((e) => ({ ...e })); }

  /** The record that begins at fileBlock, if any (binary search). */
  recordAt(fileBlock: number): ExtentRec | undefined {
    const e = this.ext[this.firstEndingAfter(fileBlock)];
    return e && e.fileBlock === fileBlock ? e : undefined;
  }

  /**
   * Replace every record (store reload after a failed operation, fsck).
   * @throws Error when records overlap
   */
  reset(extents: ExtentRec[]): void {
    this.ext = extents.map((e) => ({ ...e })).sort((a, b) => a.fileBlock - b.fileBlock);
    for (let i = 1; i < this.ext.length; i++) {
      const a = this.ext[i - 1];
      if (a.fileBlock + a.len > this.ext[i].fileBlock) throw new Error(`bmap: records overlap at file block ${this.ext[i].fileBlock}`);
    }
    this.changed.clear();
  }
}
