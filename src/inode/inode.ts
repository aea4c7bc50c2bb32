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
import type { RecordSet } from './records.js';

/** A Map that remembers which keys were set or deleted since the store last synced it. */
export class TrackedMap<V> extends Map<string, V> {
  readonly changed = new Set<string>();
  override set(k: string, v: V): this { this.changed?.add(k); return super.set(k, v); }
  override delete(k: string): boolean { this.changed.add(k); return super.delete(k); }
  override clear(): void { for (const k of this.keys()) this.changed.add(k); super.clear(); }
  /** Fill without recording (decoding from media). */
  load(entries: Iterable<[string, V]>): void { for (const [k, v] of entries) super.set(k, v); }
}

export const S_IFMT = constants.S_IFMT;
export const S_IFREG = constants.S_IFREG;
export const S_IFDIR = constants.S_IFDIR;
export const S_IFLNK = constants.S_IFLNK;

/** A process-lifetime seal (MAP_DIRECT emulation). */
/** A process-lifetime seal: holder pid, the uid it ran as (per-user limit), since when (Date.now()), revocation deadline after a break. */
export interface Lease { pid: number; uid: number; since: number; breakDeadline: number | null }

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
  bmap: BlockMap;
  xattrs: TrackedMap<Buffer>;
  dirents: TrackedMap<number> | null;
  symlink: Buffer | null;
  /** Where the fork lives now: 0 inline, else its region extent (freed when rewritten). */
  forkBlock = 0;
  forkBlocks = 0;
  /** Block-based directory entries or extent records; null while they live in the fork. */
  records: RecordSet | null = null;
  /** The fork must be re-encoded (new inode, symlink set). */
  forkDirty = false;
  /** The fork as last encoded: length, CRC32C, and its bytes when inline. */
  forkLen?: number;
  forkCrc?: number;
  inlineFork?: Buffer | null;

  // Run-time only.
  openCount = 0;
  leases: Lease[] = [];

  constructor(ino: number, mode: number, uid: number, gid: number) {
    const now = nowTimespec();
    this.ino = ino; this.mode = mode; this.uid = uid; this.gid = gid;
    this.nlink = 0; this.size = 0;
    this.atime = now; this.mtime = now; this.ctime = now; this.btime = now;
    this.flags = 0; this.generation = 0; this.rdev = 0;
    this.bmap = new BlockMap();
    this.xattrs = new TrackedMap();
    this.dirents = (mode & S_IFMT) === S_IFDIR ? new TrackedMap() : null;
    this.symlink = null;
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

  touchCtime(): void { this.ctime = nowTimespec(); }
  touchMtime(): void { const t = nowTimespec(); this.mtime = t; this.ctime = t; }
}
