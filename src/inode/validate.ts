/**
 * @file Cross-inode checks of a loaded region, shared by mount (which
 * refuses a region that fails them) and fsck (which reports and repairs):
 * every referenced block inside the data area and marked in use in the
 * free-space bitmap; a metadata block claimed once; a data block claimed by
 * as many block maps as its reference count says (1 without a record,
 * reflink); every directory entry naming a live inode;
 * the directory tree rooted, without cycles or a directory under two names;
 * every in-use inode reachable and its link count equal to its names (so
 * a slot freed at link count 0 is never still named); an unnamed inode
 * with link count 0 marked an orphan.
 * Iterative (no recursion) and linear in the metadata, whatever the shape
 * (plus one sort of the block claims: O(e log e) in extents).
 */
import type { Allocator } from '../alloc/allocator.js';
import { FEAT_INCOMPAT_ICACHE, IFLAG_ORPHAN, IFLAG_SEALED, ROOT_INO } from '../format/layout.js';
import type { Inode } from './inode.js';
import { InodeStore } from './store.js';

/**
 * A count per inode number in one typed array: O(1) without hashing, and
 * 4 bytes per slot where a Map of a million inodes costs tens of bytes each
 * (mount validates every inode). Numbers at or beyond the bound count 0 and
 * are not stored: only loaded inodes (below the high-water mark) are counted.
 */
export class InoCounts {
  private readonly a: Uint32Array;
  /** @param bound one past the largest inode number counted (the superblock's inodeHwm) */
  constructor(bound: number) { this.a = new Uint32Array(Math.max(0, bound)); }
  /** The count of `ino` (0 when never counted). */
  get(ino: number): number { return Number.isInteger(ino) && ino >= 0 && ino < this.a.length ? this.a[ino] : 0; }
  /** Add one to the count of `ino`; ignored for a number beyond the bound. */
  inc(ino: number): void { if (Number.isInteger(ino) && ino >= 0 && ino < this.a.length) this.a[ino]++; }
}

/** A set of inode numbers as one bit each (see InoCounts); numbers beyond the bound are never members. */
export class InoSet {
  private readonly a: Uint8Array;
  /** @param bound one past the largest inode number held */
  constructor(bound: number) { this.a = new Uint8Array(Math.ceil(Math.max(0, bound) / 8)); }
  has(ino: number): boolean { return Number.isInteger(ino) && ino >= 0 && ino < this.a.length * 8 && (this.a[ino >> 3] & (1 << (ino & 7))) !== 0; }
  /** Add `ino`; ignored for a number beyond the bound. */
  add(ino: number): void { if (Number.isInteger(ino) && ino >= 0 && ino < this.a.length * 8) this.a[ino >> 3] |= 1 << (ino & 7); }
}

/** A run of region blocks referenced by inode `ino` (0: the region's own refcount index). */
export interface BlockClaim { start: number; len: number; ino: number; data?: boolean }

/** Blocks whose recorded reference count differs from the number of block maps that map them. */
export interface RefcountMismatch { start: number; len: number; recorded: number; owners: number }

export interface Validation {
  /** A metadata block claimed twice, or also mapped as data: [claim, other claim]. */
  overlaps: Array<[BlockClaim, BlockClaim]>;
  /** Data blocks whose reference count is not their number of owners. */
  refcounts: RefcountMismatch[];
  /** Claims of blocks the bitmap calls free. */
  markedFree: BlockClaim[];
  /** Blocks the bitmap marks in use that nothing claims. */
  leaked: number;
  /** Entries naming inodes that are not loaded. */
  danglingEntries: Array<{ dir: number; name: string; ino: number }>;
  /** Directories reachable under more than one name (or a cycle). */
  multiLinkedDirs: Array<{ dir: number; name: string; ino: number }>;
  /** Inodes with links that cannot be reached from the root. */
  unreachable: number[];
  /** ino → number of entries naming it, and directory → subdirectory count (directories reachable from the root). */
  links: InoCounts;
  subdirs: InoCounts;
  /** Inodes named by an entry of any loaded directory, reachable or not: never freed as orphans. */
  named: InoSet;
  /** Reachable inodes whose link count is not what the entries say (a named inode with nlink 0 among them). */
  linkCounts: Array<{ ino: number; nlink: number; want: number }>;
  /** Inodes with nlink 0 that no entry names but that are not marked orphans: nothing unlinked them. */
  strays: number[];
  /**
   * FEAT_INCOMPAT_ICACHE bookkeeping that disagrees with the inodes: a
   * directory's parent field, the superblock's count of slots in use, the
   * in-core list against the orphan and seal flags. Mount reads inodes on
   * demand by them, so each is a problem for fsck (none loses data).
   */
  icache: string[];
  /** Directory → the directory whose entry reaches it in the walk from the root (the root: itself). */
  parentOf: Map<number, number>;
}

/** The link count the entries give an inode: 2 + subdirectories for a directory, its names otherwise. */
export function wantLinks(inode: Inode, v: Pick<Validation, 'links' | 'subdirs'>): number {
  return inode.isDir ? 2 + v.subdirs.get(inode.ino) : v.links.get(inode.ino);
}

/** Every block claim of every inode and of the refcount index, sorted by start. */
export function allClaims(store: InodeStore): BlockClaim[] {
  const claims: BlockClaim[] = [];
  for (const inode of store.inodes.values()) {
    if (inode.bmap.count) for (const e of inode.bmap.extents) claims.push({ start: e.regionBlock, len: e.len, ino: inode.ino, data: true });
    if (inode.forkBlock || inode.records) for (const r of InodeStore.metaRuns(inode)) claims.push({ start: r.start, len: r.len, ino: inode.ino });
  }
  for (const b of store.refcountBlocks()) claims.push({ start: b, len: 1, ino: 0 });
  for (const b of store.ilistBlocks()) claims.push({ start: b, len: 1, ino: 0 });
  return claims.sort((a, b) => a.start - b.start || a.len - b.len);
}

/** Owners of data blocks: the data claims cut where their number changes, in order (count >= 1). */
export function dataOwners(claims: readonly BlockClaim[]): Array<{ start: number; len: number; count: number }> {
  const ev: Array<[number, number]> = [];
  for (const c of claims) if (c.data) { ev.push([c.start, 1]); ev.push([c.start + c.len, -1]); }
  ev.sort((a, b) => a[0] - b[0]);
  const out: Array<{ start: number; len: number; count: number }> = [];
  let depth = 0;
  for (let i = 0; i < ev.length;) {
    const at = ev[i][0];
    while (i < ev.length && ev[i][0] === at) depth += ev[i++][1];
    const next = i < ev.length ? ev[i][0] : at;
    if (depth > 0 && next > at) out.push({ start: at, len: next - at, count: depth });
  }
  return out;
}

/** Compare the refcount index with the owners of every data block. */
function checkRefcounts(store: InodeStore, owners: ReturnType<typeof dataOwners>, v: Validation): void {
  const add = (start: number, len: number, recorded: number, count: number) => {
    const last = v.refcounts[v.refcounts.length - 1];
    if (last && last.start + last.len === start && last.recorded === recorded && last.owners === count) last.len += len;
    else v.refcounts.push({ start, len, recorded, owners: count });
  };
  for (const o of owners) for (const p of store.refcount.segments(o.start, o.len)) if (p.count !== o.count) add(p.start, p.len, p.count, o.count);
  // Records over blocks nobody maps.
  let i = 0;
  for (const r of store.refcount.records()) {
    while (i < owners.length && owners[i].start + owners[i].len <= r.start) i++;
    let pos = r.start;
    for (let j = i; j < owners.length && owners[j].start < r.start + r.len; j++) {
      if (owners[j].start > pos) add(pos, owners[j].start - pos, r.count, 0);
      pos = Math.max(pos, owners[j].start + owners[j].len);
    }
    if (pos < r.start + r.len) add(pos, r.start + r.len - pos, r.count, 0);
  }
}

/** One past the largest loaded inode number (slots up to the high-water mark). */
function inoBound(store: InodeStore): number {
  let m = store.sb.inodeHwm;
  for (const ino of store.inodes.keys()) if (ino > m) m = ino;
  return m + 1;
}

/** Run every cross-inode check (see the file comment). */
export function validate(store: InodeStore, alloc: Allocator): Validation {
  const bound = inoBound(store);
  const v: Validation = {
    overlaps: [], refcounts: [], markedFree: [], leaked: 0, danglingEntries: [], multiLinkedDirs: [], unreachable: [],
    links: new InoCounts(bound), subdirs: new InoCounts(bound), named: new InoSet(bound),
    linkCounts: [], strays: [], icache: [], parentOf: new Map(),
  };
  const claims = allClaims(store);
  // One pass in start order: `reach` is the claim reaching furthest so far, so a claim
  // starting before its end overlaps it — an error unless both are data (shared
  // blocks, checked against the refcounts below); distinct claimed blocks are what
  // lies past that end. A metadata claim is also checked against the last data claim
  // before it, which a longer data claim may have hidden from `reach`.
  let reach: BlockClaim | null = null;
  let lastMeta: BlockClaim | null = null;
  let claimed = 0;
  for (const c of claims) {
    const reachEnd = reach ? reach.start + reach.len : -1;
    if (c.start < reachEnd && !(c.data && reach!.data)) v.overlaps.push([c, reach!]);
    else if (c.data && lastMeta && c.start < lastMeta.start + lastMeta.len && lastMeta !== reach) v.overlaps.push([c, lastMeta]);
    if (!c.data) lastMeta = c;
    if (c.start + c.len > reachEnd) { claimed += c.start + c.len - Math.max(c.start, reachEnd); reach = c; }
    if (!alloc.isAllocated(c.start, c.len)) v.markedFree.push(c);
  }
  checkRefcounts(store, dataOwners(claims), v);
  const { dataStart, dataEnd } = alloc.geo;
  const inUse = dataEnd - dataStart - alloc.freeBlocks;
  v.leaked = Math.max(0, inUse - claimed);
  walkTree(store, v);
  checkLinks(store, v);
  if (store.sb.featuresIncompat & FEAT_INCOMPAT_ICACHE) checkIcache(store, v);
  return v;
}

/** The ICACHE bookkeeping against the loaded inodes (Validation.icache). */
function checkIcache(store: InodeStore, v: Validation): void {
  if (store.sb.inodesUsed !== store.inodes.size) v.icache.push(`the superblock counts ${store.sb.inodesUsed} inodes in use, the inode table holds ${store.inodes.size}`);
  for (const inode of store.inodes.values()) {
    const flagged = (inode.flags & (IFLAG_ORPHAN | IFLAG_SEALED)) !== 0;
    if (flagged !== store.ilist.has(inode.ino)) v.icache.push(`inode ${inode.ino} is ${flagged ? 'missing from' : 'wrongly on'} the in-core list`);
    if (inode.isDir && v.parentOf.has(inode.ino) && v.parentOf.get(inode.ino) !== inode.parent) {
      v.icache.push(`directory ${inode.ino} records parent ${inode.parent}, directory ${v.parentOf.get(inode.ino)} names it`);
    }
  }
  for (const ino of store.ilist) if (!store.inodes.has(ino)) v.icache.push(`the in-core list names free inode ${ino}`);
}

/**
 * Link counts against the entries, O(inodes + entries). An inode's slot is
 * freed when its count reaches 0, so a count below its names would let a
 * name outlive the inode and later open whoever reuses the slot.
 */
function checkLinks(store: InodeStore, v: Validation): void {
  for (const dir of store.inodes.values()) if (dir.dirents) for (const ino of dir.dirents.values()) v.named.add(ino);
  const unreachable = new Set(v.unreachable);
  for (const inode of store.inodes.values()) {
    if (inode.nlink === 0 && !v.named.has(inode.ino)) {
      if (!inode.orphan && inode.ino !== ROOT_INO) v.strays.push(inode.ino);
      continue;
    }
    if (unreachable.has(inode.ino)) continue;
    const want = wantLinks(inode, v);
    if (inode.nlink !== want) v.linkCounts.push({ ino: inode.ino, nlink: inode.nlink, want });
  }
}

function walkTree(store: InodeStore, v: Validation): void {
  const root = store.inodes.get(ROOT_INO);
  if (!root) return;
  const seen = new InoSet(inoBound(store));
  seen.add(ROOT_INO);
  v.parentOf.set(ROOT_INO, ROOT_INO);
  const stack: Inode[] = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const [name, ino] of dir.dirents!) {
      const child = store.inodes.get(ino);
      if (!child) { v.danglingEntries.push({ dir: dir.ino, name, ino }); continue; }
      v.links.inc(ino);
      if (child.isDir) {
        v.subdirs.inc(dir.ino);
        if (seen.has(ino)) { v.multiLinkedDirs.push({ dir: dir.ino, name, ino }); continue; }
        v.parentOf.set(ino, dir.ino);
        stack.push(child);
      }
      seen.add(ino);
    }
  }
  for (const inode of store.inodes.values()) if (!seen.has(inode.ino) && inode.nlink > 0) v.unreachable.push(inode.ino);
}

/** The first problem that makes a region unsafe to mount, or null. */
export function mountBlocker(v: Validation): string | null {
  if (v.overlaps.length) { const [a, b] = v.overlaps[0]; return `block ${a.start} is claimed by inode ${a.ino} and inode ${b.ino}`; }
  if (v.refcounts.length) { const r = v.refcounts[0]; return `blocks [${r.start}, +${r.len}) are mapped by ${r.owners} file(s) but their reference count says ${r.recorded}`; }
  if (v.markedFree.length) { const c = v.markedFree[0]; return `inode ${c.ino} uses blocks [${c.start}, +${c.len}) that the free-space bitmap calls free`; }
  if (v.danglingEntries.length) { const d = v.danglingEntries[0]; return `directory ${d.dir}: entry '${d.name}' names missing inode ${d.ino}`; }
  if (v.multiLinkedDirs.length) { const d = v.multiLinkedDirs[0]; return `directory ${d.ino} is reachable twice (entry '${d.name}' in directory ${d.dir}): the tree has a cycle or a hard-linked directory`; }
  if (v.linkCounts.length) { const l = v.linkCounts[0]; return `inode ${l.ino} has link count ${l.nlink} but ${l.want} directory link(s) name it`; }
  if (v.unreachable.length) return `inode ${v.unreachable[0]} has links but no directory reachable from the root names it`;
  if (v.strays.length) return `inode ${v.strays[0]} has link count 0 and no name but is not marked an orphan`;
  if (v.icache.length) return v.icache[0];
  return null;
}
