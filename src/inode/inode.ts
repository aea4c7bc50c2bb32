/**
 * @file The in-core inode: the decoded inode record, its block map or
 * directory entries, xattrs and symlink target, and run-time state that is
 * never persisted (open handles, leases). The on-media twin is InodeRecord in
 * src/format/layout.ts; src/inode/store.ts converts between them.
 *
 * Directory entries and xattrs are TrackedMaps: each change records its key,
 * so the store rewrites only the records that changed.
 */
import { constants } from 'node:fs';
import { BlockMap } from '../bmap/bmap.js';
import { IFLAG_ORPHAN, IFLAG_SEALED } from '../format/layout.js';
import type { Timespec } from '../types.js';
import { nowTimespec } from '../types.js';
import type { DirIndexShape, RecordSet } from './records.js';

/** A Map that remembers which keys were set or deleted since the store last synced it. */
export class TrackedMap<V> extends Map<string, V> {
  readonly changed = new Set<string>();
  override set(k: string, v: V): this { this.changed?.add(k); return super.set(k, v); }
  override delete(k: string): boolean { this.changed.add(k); return super.delete(k); }
  override clear(): void { for (const k of this.keys()) this.changed.add(k); super.clear(); }
  /** Fill without recording (decoding from media). */
  load(entries: Iterable<[string, V]>): void { for (const [k, v] of entries) super.set(k, v); }
  /** One entry as loaded from media (not a change). */
  loadOne(k: string, v: V): void { super.set(k, v); }
}

export const S_IFMT = constants.S_IFMT;
export const S_IFREG = constants.S_IFREG;
export const S_IFDIR = constants.S_IFDIR;
export const S_IFLNK = constants.S_IFLNK;

/** A process-lifetime seal (MAP_DIRECT emulation). */
/** A process-lifetime seal: holder pid, the uid it ran as (per-user limit), since when (Date.now()), revocation deadline after a break. */
export interface Lease { pid: number; uid: number; since: number; breakDeadline: number | null }

/** No leases: one frozen array shared by every inode without any. */
export const NO_LEASES: readonly Lease[] = Object.freeze([]);
/** No dirty ranges yet: shared, replaced by a fresh array at the first range (never pushed into). */
const NO_RANGES: Array<[number, number]> = Object.freeze([]) as unknown as Array<[number, number]>;

/** An xattr map that is empty and stays so (the view of an inode without xattrs). */
class EmptyXattrs extends TrackedMap<Buffer> {
  override set(): this { throw new Error('inode: change through xattrs, not xattrView'); }
  override delete(): boolean { throw new Error('inode: change through xattrs, not xattrView'); }
  override clear(): void { throw new Error('inode: change through xattrs, not xattrView'); }
}
const NO_XATTRS: ReadonlyMap<string, Buffer> = new EmptyXattrs();

/** The coarse clock's tick for write timestamps (a 250 Hz kernel's jiffy). */
const COARSE_TICK_NS = 4_000_000;

/** Dirty data ranges an inode keeps for fdatasync before it falls back to flushing everything. */
const MAX_DIRTY_RANGES = 4096;

/**
 * How a directory's entries left on media are read (InodeStore): `read`
 * all of them into core (sets `dirents` and `records`, or throws); `probe`
 * for one name without reading them into core: its inode number, null when
 * no entry has the name, undefined when it cannot tell (a damaged block:
 * the full read reports it).
 */
export interface DeferredReader {
  read: (inode: Inode, at: DeferredRecords) => void;
  probe: (inode: Inode, at: DeferredRecords, name: string) => number | null | undefined;
  /** Whether the entries are a hash index (its index read once and kept), false for an unordered chain. @throws FsError EIO for a damaged index */
  hashed: (inode: Inode, at: DeferredRecords) => boolean;
}

/**
 * A directory's hash index as its probes use it (DirIndexShape,
 * src/inode/records.ts): its root blocks, its index blocks with the lowest
 * hash of each, and the leaves of each index block a probe has read (to
 * rebuild the record set around the leaves a change reads,
 * InodeStore.syncDeferred, every index block is read).
 */
export type DirIndex = DirIndexShape;

/**
 * A directory's entries left on media (Inode.deferRecords): the slot's
 * record fields, their reader, the probes made so far, and the hash index
 * the first probe read (null: an unordered chain; undefined: not read yet).
 */
export interface DeferredRecords {
  recIndex: number; recBlocks: number; recCount: number; reader: DeferredReader; probes: number; dirIndex?: DirIndex | null;
  /**
   * Entries the running operation added (inode number) or removed (null)
   * while the rest stay on media (a hash index only: Inode.setEntry); the
   * store writes them into the leaves they belong to when it encodes the
   * operation (InodeStore.syncDeferred).
   */
  changes?: Map<string, number | null>;
  /** Operations whose changes the store wrote into the leaves so far (a listing's cached leaf is stale once this moves). */
  written?: number;
  /**
   * The hash index's record set as those writes left it, with the leaves
   * they read (InodeStore.syncDeferred keeps it for the next change, up to a
   * bound; `dirIndex` is then stale and unused).
   */
  partial?: RecordSet;
}

/**
 * Lookups a directory whose entries are on media answers by probing its
 * record blocks (Inode.entry) before the next one reads all the entries into
 * core. A probe reads the blocks up to the name's but builds nothing: at a
 * million entries 5-44 ms against 0.9 s for the full read (docs/DESIGN.md,
 * "Cold lookups probe the record blocks"), so eight of them cost less than
 * half a full read, and a directory looked up more often than that is in
 * use and worth its map.
 */
export const DEFERRED_PROBES = 8;

export class Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;            // bytes
  atime: Timespec; mtime: Timespec; ctime: Timespec; btime: Timespec;
  flags: number;           // IFLAG_*
  generation: number;
  rdev: number;
  /** A directory's parent directory (its own number for the root); 0 when unknown (an older region being converted). */
  parent = 0;
  bmap: BlockMap;
  /** Extended attributes, made at the first one (most files have none: no Map for them). */
  private xattrMap: TrackedMap<Buffer> | null = null;
  private direntMap: TrackedMap<number> | null;
  symlink: Buffer | null;
  /** Where the fork lives now: 0 inline, else its region extent (freed when rewritten). */
  forkBlock = 0;
  forkBlocks = 0;
  private recordSet: RecordSet | null = null;
  /**
   * A directory whose entries are in record blocks not read yet: where they
   * are (the slot's fields) and the store's reader. Null once read, and for
   * every other inode. See `dirents`.
   */
  private pending: DeferredRecords | null = null;
  /** Idle sweeps (PmemFs.sweepIdleDirs) since `dirents` was last used. */
  direntsIdle = 0;
  /** Open directory streams (FUSE opendir, releasedir): their cookies are positions in this entry map. */
  dirStreams = 0;
  /** The fork must be re-encoded (new inode, symlink set). */
  forkDirty = false;
  /** The fork as last encoded: length, CRC32C, and its bytes when inline. */
  forkLen?: number;
  forkCrc?: number;
  inlineFork?: Buffer | null;

  // Run-time only.
  openCount = 0;
  /** Process-lifetime seals; NO_LEASES (frozen) when none: replace the array, never push into it. */
  leases: readonly Lease[] = NO_LEASES;
  /**
   * Journal sequence of the running transaction when this inode last
   * changed (InodeStore.markDirty), and when it last changed in a way
   * fdatasync needs (size, block map: everything but timestamps). The change
   * is durable once the journal's next sequence is past it (ext4's
   * i_sync_tid and i_datasync_tid).
   */
  metaSeq = -1;
  dataSeq = -1;
  /**
   * Region byte ranges this file's overwrites stored to (no metadata
   * change) since the region's flush generation `dirtyGen`: what fdatasync
   * must flush when the metadata is durable. Stale (clean) once the region
   * flushed everything (Region.flushGen moved on). Null: too many to keep,
   * flush everything.
   */
  dirtyRanges: Array<[number, number]> | null = NO_RANGES;
  dirtyGen = 0;

  /** @param now the four timestamps (default: the clock; mount passes a constant, which decoding replaces) */
  constructor(ino: number, mode: number, uid: number, gid: number, now: Timespec = nowTimespec()) {
    this.ino = ino; this.mode = mode; this.uid = uid; this.gid = gid;
    this.nlink = 0; this.size = 0;
    this.atime = now; this.mtime = now; this.ctime = now; this.btime = now;
    this.flags = 0; this.generation = 0; this.rdev = 0;
    this.bmap = new BlockMap();
    this.direntMap = (mode & S_IFMT) === S_IFDIR ? new TrackedMap() : null;
    this.symlink = null;
  }

  /**
   * A directory's entries (name → inode number); null for any other inode.
   * A directory read from its slot with block-based entries reads them here,
   * at the first use (InodeStore defers them: listing a parent, which loads
   * each child directory for its attributes, does not read a million entries
   * of each). That first read may throw FsError EIO for damaged record
   * blocks, and then again at the next use.
   */
  get dirents(): TrackedMap<number> | null {
    if (this.pending) this.readPending();
    this.direntsIdle = 0;
    return this.direntMap;
  }
  set dirents(m: TrackedMap<number> | null) { this.pending = null; this.direntMap = m; }
  /** Block-based directory entries or extent records; null while they live in the fork (reads deferred entries, as `dirents`). */
  get records(): RecordSet | null {
    if (this.pending) this.readPending();
    return this.recordSet;
  }
  set records(s: RecordSet | null) { this.pending = null; this.recordSet = s; }
  /** The record set if it is in core, without reading deferred entries (null for those). */
  get recordsInCore(): RecordSet | null { return this.pending ? null : this.recordSet; }
  /** Read deferred entries now (no-op when none are). @throws FsError EIO, as `dirents` */
  readDeferred(): void { if (this.pending) this.readPending(); }
  /** The entry map if it is in core, without reading deferred entries (null for those, and for non-directories). */
  get direntsInCore(): TrackedMap<number> | null { return this.pending ? null : this.direntMap; }
  /** Where the deferred entries are on media: the slot's record fields (null when none are deferred). */
  get pendingRecords(): { recIndex: number; recBlocks: number; recCount: number } | null { return this.pending; }
  /** The deferred entries' record, for their reader (the store): where they are and what its probes read. */
  get deferred(): DeferredRecords | null { return this.pending; }
  /**
   * Defer a directory's block-based entries (InodeStore.decode): `read`
   * sets `dirents` and `records` from the record chain when they are first
   * used, or throws and leaves them deferred.
   */
  deferRecords(recIndex: number, recBlocks: number, recCount: number, reader: DeferredReader): void {
    this.direntMap = null; this.recordSet = null;
    this.pending = { recIndex, recBlocks, recCount, reader, probes: 0 };
  }

  /**
   * The inode number of this directory's entry `name`, undefined when it
   * has none. A directory whose entries are still on media answers its first
   * DEFERRED_PROBES lookups by probing its record blocks
   * (DeferredReader.probe), leaving them on media: the first `stat` of a
   * file in a directory of a million entries after mount does not build a
   * map of a million entries. A directory with a hash index answers every
   * lookup so (a probe reads one leaf); in an unordered one, later lookups,
   * and in both every other use of the entries, read them all (`dirents`).
   * @throws FsError EIO, as `dirents` (a probe that meets a damaged block gives way to the full read, which reports it)
   */
  entry(name: string): number | undefined {
    const p = this.pending;
    const changed = p?.changes?.get(name);
    if (changed !== undefined) return changed ?? undefined;
    if (p && (p.probes < DEFERRED_PROBES || p.dirIndex || p.partial)) {
      p.probes++;
      const found = p.reader.probe(this, p, name);
      if (found !== undefined) return found ?? undefined;
    }
    return this.dirents!.get(name);
  }
  /**
   * Add or replace entry `name` → `ino`. A directory whose entries are a
   * hash index still on media keeps the change beside them (the store
   * writes it into its leaf at the end of the operation: a create in a
   * directory of a million entries reads one leaf, not a million entries);
   * otherwise the entry map changes (read first when deferred).
   * @throws FsError EIO for a damaged index or entries
   */
  setEntry(name: string, ino: number): void {
    const p = this.pending;
    if (p && p.reader.hashed(this, p)) { (p.changes ??= new Map()).set(name, ino); return; }
    this.dirents!.set(name, ino);
  }

  /** Remove entry `name`, as setEntry adds one. @throws FsError EIO for a damaged index or entries */
  deleteEntry(name: string): void {
    const p = this.pending;
    if (p && p.reader.hashed(this, p)) { (p.changes ??= new Map()).set(name, null); return; }
    this.dirents!.delete(name);
  }

  private readPending(): void {
    const p = this.pending!;
    this.pending = null;
    try {
      p.reader.read(this, p);
    } catch (e) {
      this.direntMap = null; this.recordSet = null;
      this.pending = p;
      throw e;
    }
    // Changes of the running operation not yet in the leaves: now in the map, which the store encodes.
    if (p.changes?.size) for (const [name, ino] of p.changes) { if (ino === null) this.direntMap!.delete(name); else this.direntMap!.set(name, ino); }
  }

  /** The extended attributes, to change them (the map is made at the first use). */
  get xattrs(): TrackedMap<Buffer> { return (this.xattrMap ??= new TrackedMap()); }
  /** The extended attributes, to read them: allocates nothing when there are none. */
  get xattrView(): ReadonlyMap<string, Buffer> { return this.xattrMap ?? NO_XATTRS; }
  /** Whether an xattr was set or removed since the store last encoded the inode. */
  get xattrsChanged(): boolean { return this.xattrMap !== null && this.xattrMap.changed.size > 0; }
  /** The store encoded the inode: forget the xattr changes (and the map, when empty). */
  clearXattrChanges(): void {
    if (!this.xattrMap) return;
    if (this.xattrMap.size === 0) this.xattrMap = null; else this.xattrMap.changed.clear();
  }
  /** Fill the xattrs from the media, recording no change (decoding). */
  loadXattrs(entries: ReadonlyMap<string, Buffer>): void {
    this.xattrMap = null;
    if (entries.size) this.xattrs.load(entries);
  }

  get isDir(): boolean { return (this.mode & S_IFMT) === S_IFDIR; }
  get isReg(): boolean { return (this.mode & S_IFMT) === S_IFREG; }
  get isSymlink(): boolean { return (this.mode & S_IFMT) === S_IFLNK; }
  get persistentSeal(): boolean { return (this.flags & IFLAG_SEALED) !== 0; }
  get orphan(): boolean { return (this.flags & IFLAG_ORPHAN) !== 0; }

  /** 'persistent', 'lease' or 'none' — the sealed= field of user.pmemfs.state. */
  get sealKind(): 'persistent' | 'lease' | 'none' {
    if (this.persistentSeal) return 'persistent';
    return this.leases.length ? 'lease' : 'none';
  }

  /** Note an overwrite of region bytes [off, off+len) (flush generation gen); merges with the last range when adjacent. */
  noteDirtyData(off: number, len: number, gen: number): void {
    if (gen !== this.dirtyGen || this.dirtyRanges === NO_RANGES) { this.dirtyRanges = []; this.dirtyGen = gen; }
    const r = this.dirtyRanges;
    if (!r) return;
    const last = r[r.length - 1];
    if (last && last[0] + last[1] === off) last[1] += len;
    else if (r.length >= MAX_DIRTY_RANGES) this.dirtyRanges = null;
    else r.push([off, len]);
  }

  /** The dirty ranges to flush (generation gen), emptied; null: flush everything. */
  takeDirtyData(gen: number): Array<[number, number]> | null {
    if (gen !== this.dirtyGen) { this.dirtyRanges = NO_RANGES; this.dirtyGen = gen; return []; }
    const r = this.dirtyRanges;
    this.dirtyRanges = NO_RANGES;
    return r === NO_RANGES ? [] : r;
  }

  /**
   * The timestamps were reported (stat, a FUSE attribute reply) since they
   * last changed: the next write stamps a fine-grained time, so whoever
   * looked sees it change (the kernel's multigrain timestamps, fs/inode.c).
   */
  timesQueried = false;

  /**
   * A write's mtime/ctime update, as file_update_time does it: the coarse
   * clock (one tick, COARSE_TICK_NS) unless the times were queried since
   * they last changed, and nothing changes when the stamp would be the same
   * — so a stream of overwrites within one tick changes no metadata, and
   * their fsync needs no journal commit (as on ext4 and XFS).
   * @returns whether the timestamps changed (the inode record must be logged)
   */
  touchMtimeForWrite(): boolean {
    const now = nowTimespec();
    let t: Timespec = { sec: now.sec, nsec: now.nsec - (now.nsec % COARSE_TICK_NS) };
    const notAfter = (a: Timespec, b: Timespec) => a.sec < b.sec || (a.sec === b.sec && a.nsec <= b.nsec);
    if (notAfter(t, this.mtime) || notAfter(t, this.ctime)) {
      if (!this.timesQueried) return false;
      t = now;
    }
    this.mtime = t; this.ctime = t;
    this.timesQueried = false;
    return true;
  }

  touchCtime(): void { this.ctime = nowTimespec(); }
  touchMtime(): void { const t = nowTimespec(); this.mtime = t; this.ctime = t; }
}
