/**
 * @file The in-core inode: the decoded inode record, its fork (block map,
 * xattrs, directory entries, symlink target) and run-time state that is never
 * persisted (open handles, leases, pin counts). The on-media twin is
 * InodeRecord in src/format/layout.ts; src/vfs/store.ts converts between them.
 */
import { constants } from 'node:fs';
import { BlockMap } from '../bmap/bmap.js';
import { IFLAG_ORPHAN, IFLAG_SEALED } from '../format/layout.js';
import type { Timespec } from '../types.js';
import { nowTimespec } from '../types.js';

export const S_IFMT = constants.S_IFMT;
export const S_IFREG = constants.S_IFREG;
export const S_IFDIR = constants.S_IFDIR;
export const S_IFLNK = constants.S_IFLNK;

/** A process-lifetime seal (MAP_DIRECT emulation). */
export interface Lease { pid: number; since: number; breakDeadline: number | null }

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
  xattrs: Map<string, Buffer>;
  dirents: Map<string, number> | null;
  symlink: Buffer | null;
  /** Where the fork lives now: 0 inline, else its region extent (freed when rewritten). */
  forkBlock = 0;
  forkBlocks = 0;

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
    this.xattrs = new Map();
    this.dirents = (mode & S_IFMT) === S_IFDIR ? new Map() : null;
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
