/**
 * @file PmemFs: the filesystem operations, by inode or by path, with Linux errno
 * semantics. The FUSE transport (src/fuse/lowlevel.ts) translates requests to these calls and errors
 * back to negative errnos; everything here is testable without a mount.
 *
 * This file is the operations table: the state the operations share and
 * one delegating method per operation. The logic lives by concern —
 * name resolution and the parent map in lookup.ts; making, linking,
 * removing and renaming names in namespace.ts; open handles in handles.ts;
 * freeing unlinked inodes in orphans.ts; stat/chmod/chown/utimens/setattr
 * in attrs.ts; extended attributes, ACLs and the state line in xattr.ts;
 * read/write and the other data entry points in io.ts.
 *
 * Permission checks on access are left to the kernel (the mount always uses
 * default_permissions); what the kernel cannot know — ownership of new
 * inodes, setgid inheritance, CAP_LINUX_IMMUTABLE for seals — uses the
 * caller context every FUSE request carries.
 *
 * Concurrency: one JS thread. An operation runs to completion without
 * awaiting, except at the layout guard (busy=wait); after the guard it
 * finishes synchronously, so what the guard checked still holds.
 */
import type { Logger } from 'pino';
import { FsError } from '../errors.js';
import type { Transaction, TxManager } from '../journal/tx.js';
import type { PinRegistry } from '../layout/busy.js';
import type { LayoutGuard } from '../layout/guard.js';
import type { Operations } from '../op/operation.js';
import { newShareStats, type DataContext } from '../layout/mapping.js';
import type { Inode } from '../inode/inode.js';
import type { HashLeaf, InodeStore } from '../inode/store.js';
import * as attrs from './attrs.js';
import type { SetAttrs, Stat, TimeSpec } from './attrs.js';
import * as handles from './handles.js';
import { HandleTable, type Handle } from './handles.js';
import * as io from './io.js';
import * as lookup from './lookup.js';
import { ParentMap } from './lookup.js';
import * as ns from './namespace.js';
import { OrphanReaper } from './orphans.js';
import type { RemapResult } from './remap.js';
import * as xattr from './xattr.js';

export { FILE_FH_LIMIT } from './handles.js';
export { splitPath } from './lookup.js';
export type { Handle, SetAttrs, Stat, TimeSpec };

/** Who asked: process and credentials; `flags` are the open flags of a create (0 or absent otherwise). */
export interface Caller { pid: number; uid: number; gid: number; flags?: number }
export const ROOT_CALLER: Caller = { pid: 0, uid: 0, gid: 0 };

export interface FsOptions {
  dax: 'always' | 'never';
  readOnly: boolean;
  /** In-core inodes kept once nothing holds them (`-o inode_cache=N`; default DEFAULT_INODE_CACHE). */
  inodeCache?: number;
}

/** Entries from which a forgotten directory leaves core at once, whatever the cache's size (PmemFs.forgotten). */
const BIG_DIR_ENTRIES = 4096;

/** Default of `-o inode_cache`: about 30-60 MiB of in-core inodes of small files. */
export const DEFAULT_INODE_CACHE = 65536;

export class PmemFs {
  readonly store: InodeStore;
  readonly tx: TxManager;
  /** The operation layer: the only way to open a transaction (src/op/operation.ts). */
  readonly ops: Operations;
  readonly guard: LayoutGuard;
  readonly pins: PinRegistry;
  readonly opts: FsOptions;
  readonly log: Logger;
  readonly data: DataContext;
  /** Set by the service: persistent seals are also reachable as the trusted.pmemfs.sealed xattr. */
  seals: { sealInode(inode: Inode, path: string): void; unsealInode(inode: Inode, path: string): void } | null = null;
  /**
   * Kernel references per inode number (FUSE lookup counts, kept by the
   * transport): a referenced number is not reused for a new inode.
   */
  readonly kernelRefs = new Map<number, number>();
  /**
   * Set by the FUSE transport: something changed an inode's attributes
   * (and with `data`, its contents) without a kernel request saying so.
   */
  onExternalChange: ((inode: Inode, data: boolean) => void) | null = null;
  /** Most in-core inodes kept once nothing holds them (inodes read on demand only). */
  readonly inodeCacheLimit: number;
  /** Inodes dropped from core since mount. */
  evictions = 0;
  /** Set by the service: `n` inodes just left core (it returns their memory to the system in bulk). */
  onEvict: ((n: number) => void) | null = null;
  /** Eviction candidates, oldest first: inodes read on demand or forgotten by the kernel. */
  private readonly cold = new Set<number>();
  /**
   * Large directories whose entry maps are in core (read, or grown by an
   * operation), by number: what sweepIdleDirs looks at. Numbers, not inodes,
   * so that a directory evicted meanwhile is not kept alive with its map.
   */
  private readonly bigDirs = new Set<number>();
  /** Large directories the kernel forgot while a change to them was not yet committed: tried again after each commit. */
  private readonly forgottenBig = new Set<number>();
  private readonly handles = new HandleTable();
  private readonly orphans: OrphanReaper;
  private readonly parents: ParentMap;

  constructor(p: { store: InodeStore; tx: TxManager; ops: Operations; guard: LayoutGuard; pins: PinRegistry; opts: FsOptions; log: Logger }) {
    this.store = p.store; this.tx = p.tx; this.ops = p.ops; this.guard = p.guard; this.pins = p.pins; this.opts = p.opts; this.log = p.log;
    this.data = { region: p.store.region, share: newShareStats(), alloc: p.store.alloc, refs: p.store.refcount, guard: p.guard, blockSize: p.store.sb.blockSize };
    this.orphans = new OrphanReaper(p);
    this.parents = new ParentMap(p.store);
    p.store.referenced = (ino) => this.kernelRefs.has(ino);
    p.tx.afterOp = () => this.orphans.afterOp();
    p.tx.onCommit = () => this.evictForgottenBig();
    p.guard.isLive = (inode) => this.store.inodes.get(inode.ino) === inode;
    this.inodeCacheLimit = p.opts.inodeCache ?? DEFAULT_INODE_CACHE;
    p.store.onLoad = (ino) => this.cold.add(ino);
    p.store.onEntries = (dir) => { if ((dir.direntsInCore?.size ?? 0) >= BIG_DIR_ENTRIES) this.bigDirs.add(dir.ino); };
  }

  /**
   * The kernel dropped its last reference to `ino` (FUSE forget, e.g. after
   * `echo 2 > /proc/sys/vm/drop_caches`): it may now leave core, oldest
   * candidates first, while the cache is over its limit (the kernel's icache
   * evicts on the same signal; XFS's inode reclaim walks clean inodes).
   */
  forgotten(ino: number): void {
    if (!this.store.onDemand) return;
    this.cold.delete(ino);
    // Not in core (evicted, or freed after an unlink): nothing to keep track of.
    const inode = this.store.inodes.get(ino);
    if (!inode) return;
    // A large directory weighs as much as thousands of inodes (its entry map): it goes as soon as it may.
    if ((inode.direntsInCore?.size ?? 0) >= BIG_DIR_ENTRIES) {
      if (this.evictDir(inode)) return;
      // Changed since the last commit (creates just before `drop_caches`): it goes after the next one.
      this.forgottenBig.add(ino);
    }
    this.cold.add(ino);
    this.trimCache();
  }

  /**
   * TxManager.onCommit: large directories forgotten before their last change
   * was committed leave core now if nothing else holds them; one the kernel
   * named again is dropped from the list (its next forget puts it back).
   */
  private evictForgottenBig(): void {
    if (this.forgottenBig.size === 0) return;
    for (const ino of this.forgottenBig) {
      const inode = this.store.inodes.get(ino);
      if (!inode || !inode.direntsInCore || this.kernelRefs.has(ino)) { this.forgottenBig.delete(ino); continue; }
      if (this.evictDir(inode)) { this.forgottenBig.delete(ino); this.cold.delete(ino); }
    }
  }

  /**
   * The service's periodic tick (every DIR_SWEEP_MS): the entries of a
   * large directory that nothing used for `idleSweeps` ticks in a row go
   * back to media (InodeStore.unreadEntries) if their last change is
   * committed and no directory stream is open on it; the directory stays
   * in core. This bounds the memory of large
   * directories the kernel never forgets (the root, a shell's working
   * directory), which the forget-driven eviction cannot reach.
   * @returns the number of entries that left core
   */
  sweepIdleDirs(idleSweeps: number): number {
    let entries = 0;
    for (const ino of this.bigDirs) {
      const dir = this.store.inodes.get(ino), map = dir?.direntsInCore;
      if (!dir || !map || map.size < BIG_DIR_ENTRIES) { this.bigDirs.delete(ino); continue; }
      // An open stream's cookies are positions in this map, which a read from media would order differently.
      if (++dir.direntsIdle < idleSweeps || dir.metaSeq >= this.tx.journal.seq || dir.dirStreams > 0) continue;
      const n = map.size;
      if (this.store.unreadEntries(dir)) { this.bigDirs.delete(ino); entries += n; }
    }
    if (entries) this.onEvict?.(entries);
    return entries;
  }

  /** tryEvict for a directory, reported by its entry count (what its leaving frees). */
  private evictDir(inode: Inode): boolean {
    const entries = inode.direntsInCore?.size ?? 0;
    if (!this.tryEvict(inode)) return false;
    this.onEvict?.(entries);
    return true;
  }

  /** Evict cold, evictable inodes until the cache is within its limit. */
  trimCache(): void {
    const inodes = this.store.inodes;
    if (inodes.size <= this.inodeCacheLimit) return;
    let n = 0;
    for (const ino of this.cold) {
      if (inodes.size <= this.inodeCacheLimit) break;
      this.cold.delete(ino);
      const inode = inodes.get(ino);
      if (inode && this.tryEvict(inode)) n++;
    }
    if (n) this.onEvict?.(n);
  }

  /** Drop the inode from core if nothing holds it (evictable) and the store agrees (InodeStore.evict); counts it. */
  private tryEvict(inode: Inode): boolean {
    if (!this.evictable(inode) || !this.store.evict(inode)) return false;
    this.evictions++;
    return true;
  }

  /**
   * Nothing holds the inode and nothing about it waits for a flush: no
   * kernel reference, handle, lease or pin, its last change committed and
   * its overwritten ranges flushed (fsync of a fresh copy must not find it
   * clean when it is not). Orphans and sealed files are on the in-core
   * list, which InodeStore.evict keeps in core.
   */
  private evictable(inode: Inode): boolean {
    if (this.kernelRefs.has(inode.ino) || inode.openCount > 0 || inode.leases.length > 0) return false;
    const seq = this.tx.journal.seq;
    if (inode.metaSeq >= seq || inode.dataSeq >= seq) return false;
    const r = inode.dirtyRanges;
    if ((r === null || r.length > 0) && inode.dirtyGen === this.store.region.flushGen) return false;
    return this.pins.pinsOfIno(inode.ino).length === 0;
  }

  /** Most extent records one transaction frees (OrphanReaper.chunk). */
  get reapChunk(): number { return this.orphans.chunk; }

  /** Report a change the kernel did not make (seal fill, pins, collapse, DMA writes): its caches drop it. */
  externalChange(inode: Inode, data: boolean): void {
    this.onExternalChange?.(inode, data);
  }

  get blockSize(): number { return this.store.sb.blockSize; }

  /** Every changing operation checks this first (after naming its target). @throws FsError EROFS on a read-only mount */
  assertWritable(op: string, path?: string): void {
    if (this.opts.readOnly) throw new FsError('EROFS', op, path);
  }

  // --- resolution (lookup.ts) ------------------------------------------------

  /** The inode under a number if it is in core now (nothing is read). */
  inCore(ino: number): Inode | undefined { return this.store.inodes.get(ino); }

  /** The inode under a number (read on demand), undefined when the slot is free. @throws FsError EIO for a damaged slot */
  inodeOf(ino: number): Inode | undefined { return this.store.get(ino); }

  /**
   * One name in one directory (FUSE LOOKUP: node ids are inode numbers).
   * @throws FsError ENOTDIR, ENOENT, ENAMETOOLONG
   */
  lookup(dir: Inode, name: string, path: string = name): Inode {
    const i = this.lookupOrNull(dir, name, path);
    if (!i) throw new FsError('ENOENT', 'lookup', path);
    return i;
  }

  /**
   * lookup() for the FUSE transport's hot path: null instead of ENOENT (a
   * miss is an ordinary answer there, a negative entry, not an error).
   * @throws FsError ENOTDIR, ENAMETOOLONG
   */
  lookupOrNull(dir: Inode, name: string, path: string = name): Inode | null { return lookup.lookupOrNull(this.store, dir, name, path); }

  /** Resolve an absolute path. @throws FsError ENOENT, ENOTDIR, ENAMETOOLONG */
  resolve(path: string): Inode { return lookup.resolve(this, path); }

  /**
   * The inode an attribute or data operation names: an Inode as is (the
   * FUSE transport works by node id), or an absolute path to resolve.
   * @returns the inode and a label for messages (the path, or "inode N")
   * @throws FsError ENOENT, ENOTDIR, ENAMETOOLONG for a path that does not resolve
   */
  target(t: Inode | string): { inode: Inode; path: string } {
    return typeof t === 'string' ? { inode: this.resolve(t), path: t } : { inode: t, path: `inode ${t.ino}` };
  }

  /** The parent directory of a directory (the root is its own parent). */
  parentOf(dir: Inode): Inode { return this.parents.parentOf(dir); }

  /** Parent directory and final name of a path. */
  resolveParent(path: string, op: string): { dir: Inode; name: string } { return lookup.resolveParent(this, path, op); }

  root(): Inode { return lookup.mustInode(this.store, this.store.sb.rootIno); }

  // --- attributes (attrs.ts) -------------------------------------------------

  stat(inode: Inode): Stat { return attrs.stat(this, inode); }
  getattr(path: string): Stat { return this.stat(this.resolve(path)); }
  chmod(t: Inode | string, mode: number): void { attrs.chmod(this, t, mode); }
  chown(t: Inode | string, uid: number, gid: number): void { attrs.chown(this, t, uid, gid); }
  utimens(t: Inode | string, atime: TimeSpec, mtime: TimeSpec): void { attrs.utimens(this, t, atime, mtime); }
  /** FUSE SETATTR: mode, owner, size and times all or nothing; a size change may wait at the layout guard. */
  /** A promise only when a size change has to be prepared (it may wait for busy pages). */
  setattr(t: Inode | string, a: SetAttrs, fh?: number): void | Promise<void> { return attrs.setattr(this, t, a, fh); }

  // --- namespace (namespace.ts) ----------------------------------------------

  readdir(t: Inode | string): string[] { return ns.readdir(this, t); }
  /**
   * A directory's entries (name, inode number) for a listing: the in-core
   * map, or, for entries still on media, streamed from their blocks without
   * reading them into core (InodeStore.listEntries).
   * @throws FsError EIO while iterating, at a damaged block
   */
  listEntries(dir: Inode): Iterable<readonly [string, number]> { return this.store.listEntries(dir); }
  /**
   * A directory whose entries are a hash index, as a listing by hash reads
   * it (src/fuse/dirstream.ts): `leaf(h)` the leaf holding hash h
   * (InodeStore.hashLeaf), `stamp()` what changes whenever its entries may
   * have (read into core or put back, a change to them, its removal); null
   * for a directory listed by position (entries in the fork, an unordered
   * chain).
   * @throws FsError EIO for a damaged index of entries on media
   */
  hashedListing(dir: Inode): { stamp(): unknown[]; leaf(h: number): HashLeaf } | null {
    if (!this.store.isHashedDir(dir)) return null;
    return {
      stamp: () => [dir.deferred, dir.deferred?.written ?? 0, dir.recordsInCore, dir.recordsInCore?.version ?? 0, dir.nlink],
      leaf: (h) => this.store.hashLeaf(dir, h),
    };
  }
  readlink(t: Inode | string): string { return ns.readlink(this, t); }
  mkdir(path: string, mode: number, caller: Caller): Inode { return ns.mkdir(this, path, mode, caller); }
  mkdirAt(dir: Inode, name: string, mode: number, caller: Caller, path = name): Inode {
    return ns.mkdirAt(this, this.parents, dir, name, mode, caller, path);
  }
  /** Create a regular file (or a device/FIFO node via mknod). */
  mknod(path: string, mode: number, rdev: number, caller: Caller): Inode { return ns.mknod(this, path, mode, rdev, caller); }
  mknodAt(dir: Inode, name: string, mode: number, rdev: number, caller: Caller, path = name): Inode {
    return ns.mknodAt(this, dir, name, mode, rdev, caller, path);
  }
  symlink(target: string, path: string, caller: Caller): Inode { return ns.symlink(this, target, path, caller); }
  symlinkAt(dir: Inode, name: string, target: string, caller: Caller, path = name): Inode {
    return ns.symlinkAt(this, dir, name, target, caller, path);
  }
  link(src: string, dst: string): void { ns.link(this, src, dst); }
  linkAt(inode: Inode, dir: Inode, name: string, path = name): void { ns.linkAt(this, inode, dir, name, path); }
  unlink(path: string): void { ns.unlink(this, path); }
  unlinkAt(dir: Inode, name: string, path = name): void { ns.unlinkAt(this, dir, name, path); }
  rmdir(path: string): void { ns.rmdir(this, path); }
  rmdirAt(dir: Inode, name: string, path = name): void { ns.rmdirAt(this, this.parents, dir, name, path); }
  rename(src: string, dst: string): void { ns.rename(this, src, dst); }
  renameAt(sdir: Inode, sname: string, ddir: Inode, dname: string, src = sname, dst = dname): void {
    ns.renameAt(this, this.parents, sdir, sname, ddir, dname, src, dst);
  }

  // --- handles and orphans (handles.ts, orphans.ts) --------------------------

  open(t: Inode | string, flags: number, caller: Caller): Handle { return handles.open(this, t, flags, caller); }
  openInode(inode: Inode, flags: number, caller: Caller): Handle { return this.handles.add(inode, flags, caller.pid); }
  create(path: string, mode: number, flags: number, caller: Caller): Handle { return handles.create(this, path, mode, flags, caller); }
  /** @throws FsError EBADF when `fh` is not open */
  handle(fh: number): Handle { return this.handles.get(fh); }
  hasHandle(fh: number): boolean { return this.handles.has(fh); }
  /**
   * The open file handle `fh` when it is open on `inode`, else null: what an
   * ioctl's handle proves (a directory handle, a stale or foreign number is
   * no proof of anything).
   */
  fileHandle(fh: number, inode: Inode): Handle | null { return this.handles.onInode(fh, inode); }
  release(fh: number): void { handles.release(this, this.handles, fh); }
  /** Free an unlinked inode now, or keep it an orphan (OrphanReaper.maybeReap). */
  maybeReap(tx: Transaction, inode: Inode): void { this.orphans.maybeReap(tx, inode); }
  /** Blocks past EOF left by a large truncate: freed right after the operation (OrphanReaper.truncateLater). */
  truncateLater(tx: Transaction, inode: Inode): void { this.orphans.truncateLater(tx, inode); }
  /** Free the large orphans maybeReap queued, a bounded transaction at a time. */
  drainReaps(): void { this.orphans.drain(); }

  /**
   * Unmount, and orphan recovery at mount: drop handles, leases and pins,
   * then free every orphan, each in operations of its own (a crash part-way
   * leaves the rest flagged for the next mount; none is larger than the log).
   */
  releaseAll(): void {
    this.handles.clear();
    this.pins.clear();
    if (!this.opts.readOnly) this.orphans.freeAll();
  }

  // --- data (io.ts) ----------------------------------------------------------

  read(fh: number, buf: Buffer, len: number, off: number): number { return io.read(this, fh, buf, len, off); }
  write(fh: number, path: string, buf: Buffer, len: number, off: number, caller: Caller = ROOT_CALLER, bufOff = 0): number {
    return io.write(this, fh, path, buf, len, off, caller, bufOff);
  }
  async truncate(t: Inode | string, size: number, fh?: number): Promise<void> { await this.setattr(t, { size }, fh); }
  fallocate(t: Inode | string, mode: number, off: number, len: number, fh?: number): Promise<void> {
    return io.fallocate(this, t, mode, off, len, fh);
  }
  shift(t: Inode | string, mode: 'collapse' | 'insert', off: number, len: number, fh?: number): Promise<void> {
    return io.shift(this, t, mode, off, len, fh);
  }
  unshare(t: Inode | string, off: number, len: number, fh?: number): Promise<void> { return io.unshare(this, t, off, len, fh); }
  remap(t: Inode | string, src: Inode, srcOff: number, dstOff: number, len: number, dedupe: boolean, caller: Caller): Promise<RemapResult> {
    return io.remap(this, t, src, srcOff, dstOff, len, dedupe, caller);
  }
  cowWait(fh: number, off: number, len: number): Promise<void> | null { return io.cowWait(this, fh, off, len); }
  fsync(inode: Inode | null = null, datasync = false): void { io.fsync(this, inode, datasync); }
  statfs(): io.StatFs { return io.statfs(this); }

  // --- extended attributes (xattr.ts) ----------------------------------------

  /** @returns the value, or null when absent (ENODATA to the caller) */
  getxattr(t: Inode | string, name: string): Buffer | null { return xattr.getxattr(this, t, name); }
  listxattr(t: Inode | string): string[] { return xattr.listxattr(this, t); }
  setxattr(t: Inode | string, name: string, value: Buffer, flags: number, caller: Caller = ROOT_CALLER): void {
    xattr.setxattr(this, t, name, value, flags, caller);
  }
  removexattr(t: Inode | string, name: string): void { xattr.removexattr(this, t, name); }
  /** The user.pmemfs.state line: sealed=… pins=… busy_pages=… extents=… */
  stateLine(inode: Inode): string { return xattr.stateLine(this, inode); }
}
