/**
 * @file PmemFs: the filesystem operations, by inode or by path, with Linux errno
 * semantics. The FUSE transport (src/fuse/lowlevel.ts) translates requests to these calls and errors
 * back to negative errnos; everything here is testable without a mount.
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
import { constants as C } from 'node:fs';
import type { Logger } from 'pino';
import { FsError } from '../errors.js';
import type { Transaction, TxManager } from '../journal/tx.js';
import type { PinRegistry } from '../layout/busy.js';
import type { LayoutGuard } from '../layout/guard.js';
import { nowTimespec, type Timespec } from '../types.js';
import * as uapi from '../uapi.js';
import { newShareStats, releaseAllBlocks, releaseTail, type DataContext, type RunTx } from '../layout/mapping.js';
import { applyTruncate, cowRuns, fallocateData, prepareTruncate, readData, shiftRange, unshareRange, writeData } from './data.js';
import type { LayoutPermit } from '../bmap/bmap.js';
import { remapRange, type RemapResult } from './remap.js';
import { Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../inode/inode.js';
import type { InodeStore } from '../inode/store.js';
import { dataEnd, IFLAG_ORPHAN } from '../format/layout.js';

/** Who asked: process and credentials; `flags` are the open flags of a create (0 or absent otherwise). */
export interface Caller { pid: number; uid: number; gid: number; flags?: number }
export const ROOT_CALLER: Caller = { pid: 0, uid: 0, gid: 0 };

export interface FsOptions {
  dax: 'always' | 'never';
  readOnly: boolean;
}

export interface Stat {
  ino: number; mode: number; nlink: number; uid: number; gid: number; rdev: number;
  size: number; blksize: number; blocks: number; // blocks in 512-byte units
  atime: Timespec; mtime: Timespec; ctime: Timespec;
}

export interface Handle { fh: number; inode: Inode; flags: number; pid: number }

export type TimeSpec = Timespec | 'now' | 'omit';

/** The attributes of one setattr request; absent ones stay. Sizes in bytes; uid/gid -1 (or absent) keeps that one. */
export interface SetAttrs { mode?: number; uid?: number; gid?: number; size?: number; atime?: TimeSpec; mtime?: TimeSpec }

/**
 * File handle numbers (FUSE fh of regular opens) are 1 .. FILE_FH_LIMIT-1,
 * never reused; control-file handles live in [FILE_FH_LIMIT, 2^48) and
 * directory handles from 2^48 (src/vfs/ctl.ts, src/fuse/lowlevel.ts), so a
 * number handed out by one space never names an object of another.
 */
export const FILE_FH_LIMIT = 2 ** 47;

const NAME_MAX = 255;
const S_ISUID = 0o4000;
const S_ISGID = 0o2000;
const O_ACCMODE = 3;
const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;
const XATTR_TOTAL_MAX = 256 * 1024;
const XATTR_CREATE = 1;
const XATTR_POSIX_ACL_ACCESS = 'system.posix_acl_access';
const XATTR_POSIX_ACL_DEFAULT = 'system.posix_acl_default';
const ACL_USER_OBJ = 0x01, ACL_GROUP_OBJ = 0x04, ACL_OTHER = 0x20;
const XATTR_REPLACE = 2;

export class PmemFs {
  readonly store: InodeStore;
  readonly tx: TxManager;
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
  private readonly handles = new Map<number, Handle>();
  private nextFh = 1;
  /** Unlinked, unheld inodes too large to free in one transaction (maybeReap), freed by drainReaps. */
  private readonly pendingReaps = new Set<Inode>();
  private draining = false;
  /** Directory ino → parent ino, built on first use and kept by mkdir, rmdir and rename. */
  private parents: Map<number, number> | null = null;

  constructor(p: { store: InodeStore; tx: TxManager; guard: LayoutGuard; pins: PinRegistry; opts: FsOptions; log: Logger }) {
    this.store = p.store; this.tx = p.tx; this.guard = p.guard; this.pins = p.pins; this.opts = p.opts; this.log = p.log;
    this.data = { region: p.store.region, share: newShareStats(), alloc: p.store.alloc, refs: p.store.refcount, guard: p.guard, blockSize: p.store.sb.blockSize };
    p.store.referenced = (ino) => this.kernelRefs.has(ino);
    p.tx.afterOp = () => { if (this.pendingReaps.size && !this.draining) this.drainReaps(); };
    p.guard.isLive = (inode) => this.store.inodes.get(inode.ino) === inode;
  }

  /**
   * Most extent records one transaction frees: an eighth of the log's
   * blocks, so that a step's metadata (a bitmap block or two per extent, a
   * share of the block map's record blocks) always fits the log.
   */
  get reapChunk(): number { return Math.max(8, Math.floor(this.store.sb.journalBlocks / 8)); }

  /** Report a change the kernel did not make (seal fill, pins, collapse, DMA writes): its caches drop it. */
  externalChange(inode: Inode, data: boolean): void {
    this.onExternalChange?.(inode, data);
  }

  get blockSize(): number { return this.store.sb.blockSize; }

  // --- resolution ------------------------------------------------------------

  inodeOf(ino: number): Inode | undefined { return this.store.inodes.get(ino); }

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
  lookupOrNull(dir: Inode, name: string, path: string = name): Inode | null {
    if (!dir.isDir) throw new FsError('ENOTDIR', 'lookup', path);
    const next = dir.dirents!.get(name);
    if (next === undefined) {
      if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', 'lookup', path);
      return null;
    }
    return this.mustInode(next);
  }

  /** Resolve an absolute path. @throws FsError ENOENT, ENOTDIR, ENAMETOOLONG */
  resolve(path: string): Inode {
    let cur = this.root();
    for (const name of splitPath(path)) cur = this.lookup(cur, name, path);
    return cur;
  }

  /**
   * The inode an attribute or data operation names: an Inode as is (the
   * FUSE transport works by node id), or an absolute path to resolve.
   * @returns the inode and a label for messages (the path, or "inode N")
   * @throws FsError ENOENT, ENOTDIR, ENAMETOOLONG for a path that does not resolve
   */
  target(t: Inode | string): { inode: Inode; path: string } {
    return typeof t === 'string' ? { inode: this.resolve(t), path: t } : { inode: t, path: `inode ${t.ino}` };
  }

  /**
   * target(), or the inode behind open handle `fh` when one is given (an
   * unlinked file is reached only through its handle). `strict`: a handle
   * that is not open is EBADF; otherwise `t` is used instead.
   * @throws FsError EBADF (strict), and as target()
   */
  private targetVia(t: Inode | string, fh: number | undefined, strict: boolean): { inode: Inode; path: string } {
    if (fh === undefined || (!strict && !this.handles.has(fh))) return this.target(t);
    return { inode: this.handle(fh).inode, path: typeof t === 'string' ? t : `inode ${t.ino}` };
  }

  /** The parent directory of a directory (the root is its own parent). */
  parentOf(dir: Inode): Inode {
    if (!this.parents) this.parents = buildParents(this.root(), (ino) => this.inodeOf(ino));
    return this.inodeOf(this.parents.get(dir.ino) ?? this.store.sb.rootIno) ?? this.root();
  }

  /** Whether `a` is `d` or one of its ancestors (rename of a directory into itself). */
  private isAncestor(a: Inode, d: Inode): boolean {
    const root = this.root();
    for (let cur = d, steps = 0; steps <= this.store.inodes.size; steps++) {
      if (cur === a) return true;
      if (cur === root) return false;
      cur = this.parentOf(cur);
    }
    throw new FsError('EIO', 'rename', undefined, 'the directory tree has a cycle (run fsck.pmemfs)');
  }

  /** Parent directory and final name of a path. */
  resolveParent(path: string, op: string): { dir: Inode; name: string } {
    const parts = splitPath(path);
    const name = parts.pop();
    if (name === undefined) throw new FsError('EBUSY', op, path, 'the root has no parent');
    if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', op, path);
    const dir = this.resolve('/' + parts.join('/'));
    if (!dir.isDir) throw new FsError('ENOTDIR', op, path);
    return { dir, name };
  }

  root(): Inode { return this.mustInode(this.store.sb.rootIno); }

  private mustInode(ino: number): Inode {
    const i = this.store.inodes.get(ino);
    if (!i) throw new FsError('EIO', 'lookup', undefined, `directory entry points at missing inode ${ino} (run fsck.pmemfs)`);
    return i;
  }

  private writable(op: string, path?: string): void {
    if (this.opts.readOnly) throw new FsError('EROFS', op, path);
  }

  /** One operation, all or nothing (TxManager.run). */
  private run<T>(fn: (tx: Transaction) => T): T { return this.tx.run(fn); }
  private readonly runTx: RunTx = (fn) => this.tx.run(fn);

  // --- attributes ------------------------------------------------------------

  stat(inode: Inode): Stat {
    return {
      ino: inode.ino, mode: inode.mode, nlink: inode.nlink, uid: inode.uid, gid: inode.gid, rdev: inode.rdev,
      size: inode.isSymlink ? inode.symlink!.length : inode.size,
      blksize: this.blockSize, blocks: inode.bmap.mappedBlocks() * (this.blockSize / 512),
      atime: inode.atime, mtime: inode.mtime, ctime: inode.ctime,
    };
  }

  getattr(path: string): Stat { return this.stat(this.resolve(path)); }

  chmod(t: Inode | string, mode: number): void {
    const { inode, path } = this.target(t);
    this.writable('chmod', path);
    this.run((tx) => applyMode(tx, inode, mode));
  }

  chown(t: Inode | string, uid: number, gid: number): void {
    const { inode, path } = this.target(t);
    this.writable('chown', path);
    this.run((tx) => applyOwner(tx, inode, uid, gid));
  }

  utimens(t: Inode | string, atime: TimeSpec, mtime: TimeSpec): void {
    const { inode, path } = this.target(t);
    this.writable('utimens', path);
    this.run((tx) => applyTimes(tx, inode, atime, mtime, nowTimespec()));
  }

  /**
   * FUSE SETATTR: several attributes as one request, all or nothing. The
   * prepare step checks everything that can refuse (the size: EISDIR,
   * EINVAL, EFBIG, a seal, busy pages past the new EOF — it may wait) before
   * anything changes; the apply step sets mode, owner, size and times in
   * one transaction. So a setattr of mode and size on a sealed file is
   * ETXTBSY with the mode unchanged (notify_change applies its attributes
   * together, fs/attr.c).
   * @throws FsError EROFS, EBADF (fh not open), EISDIR/EINVAL (size of a non-file), and truncate's errors
   */
  async setattr(t: Inode | string, a: SetAttrs, fh?: number): Promise<void> {
    const { inode, path } = a.size === undefined ? this.target(t) : this.targetVia(t, fh, true);
    this.writable('setattr', path);
    let permit: LayoutPermit | null = null;
    if (a.size !== undefined) {
      if (inode.isDir) throw new FsError('EISDIR', 'truncate', path);
      if (!inode.isReg) throw new FsError('EINVAL', 'truncate', path);
      permit = await prepareTruncate(this.data, inode, path, a.size);
    }
    const now = nowTimespec();
    this.run((tx) => {
      if (a.mode !== undefined) applyMode(tx, inode, a.mode);
      if (a.uid !== undefined || a.gid !== undefined) applyOwner(tx, inode, a.uid ?? -1, a.gid ?? -1);
      if (a.size !== undefined) applyTruncate(this.data, tx, inode, path, a.size, permit);
      if (a.atime !== undefined || a.mtime !== undefined) applyTimes(tx, inode, a.atime ?? 'omit', a.mtime ?? 'omit', now);
    });
  }

  // --- namespace -------------------------------------------------------------

  readdir(t: Inode | string): string[] {
    const { inode, path } = this.target(t);
    if (!inode.isDir) throw new FsError('ENOTDIR', 'readdir', path);
    return ['.', '..', ...inode.dirents!.keys()];
  }

  private newInode(tx: Transaction, dir: Inode, mode: number, caller: Caller): Inode {
    const inode = new Inode(this.store.allocIno(), mode, caller.uid, caller.gid);
    inode.generation = this.store.nextGeneration();
    // BSD group semantics under a set-group-ID directory; new subdirectories inherit the bit.
    if (dir.mode & S_ISGID) {
      inode.gid = dir.gid;
      if (inode.isDir) inode.mode |= S_ISGID;
    }
    this.store.add(inode);
    tx.markDirty(inode);
    return inode;
  }

  private addEntry(tx: Transaction, dir: Inode, name: string, inode: Inode): void {
    tx.markDirty(dir);
    tx.markDirty(inode);
    dir.dirents!.set(name, inode.ino);
    inode.nlink++;
    if (inode.isDir) { dir.nlink++; inode.nlink++; }
    dir.touchMtime();
  }

  private prepareCreate(dir: Inode, name: string, op: string, path: string): void {
    this.writable(op, path);
    if (!dir.isDir) throw new FsError('ENOTDIR', op, path);
    if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', op, path);
    if (dir.dirents!.has(name)) throw new FsError('EEXIST', op, path);
    if (dir.nlink === 0) throw new FsError('ENOENT', op, path, 'directory was removed');
  }

  mkdir(path: string, mode: number, caller: Caller): Inode {
    const { dir, name } = this.resolveParent(path, 'mkdir');
    return this.mkdirAt(dir, name, mode, caller, path);
  }

  /** mkdir of `name` in `dir`. @throws FsError EEXIST, ENOENT, ENOTDIR, ENAMETOOLONG, EROFS, ENOSPC */
  mkdirAt(dir: Inode, name: string, mode: number, caller: Caller, path = name): Inode {
    this.prepareCreate(dir, name, 'mkdir', path);
    const inode = this.run((tx) => {
      const i = this.newInode(tx, dir, S_IFDIR | (mode & 0o7777), caller);
      this.addEntry(tx, dir, name, i);
      return i;
    });
    this.parents?.set(inode.ino, dir.ino);
    return inode;
  }

  /** Create a regular file (or a device/FIFO node via mknod). */
  mknod(path: string, mode: number, rdev: number, caller: Caller): Inode {
    const { dir, name } = this.resolveParent(path, 'mknod');
    return this.mknodAt(dir, name, mode, rdev, caller, path);
  }

  /** mknod of `name` in `dir` (regular file, FIFO, socket or device). @throws FsError as mkdirAt, EINVAL for another type */
  mknodAt(dir: Inode, name: string, mode: number, rdev: number, caller: Caller, path = name): Inode {
    this.prepareCreate(dir, name, 'mknod', path);
    const type = mode & S_IFMT || S_IFREG;
    if (![S_IFREG, C.S_IFIFO, C.S_IFCHR, C.S_IFBLK, C.S_IFSOCK].includes(type)) throw new FsError('EINVAL', 'mknod', path);
    return this.run((tx) => {
      const inode = this.newInode(tx, dir, type | (mode & 0o7777), caller);
      inode.rdev = rdev;
      this.addEntry(tx, dir, name, inode);
      return inode;
    });
  }

  symlink(target: string, path: string, caller: Caller): Inode {
    const { dir, name } = this.resolveParent(path, 'symlink');
    return this.symlinkAt(dir, name, target, caller, path);
  }

  /** symlink `name` → `target` in `dir`. @throws FsError as mkdirAt, ENOENT (empty target), ENAMETOOLONG */
  symlinkAt(dir: Inode, name: string, target: string, caller: Caller, path = name): Inode {
    this.prepareCreate(dir, name, 'symlink', path);
    const t = Buffer.from(target, 'utf8');
    if (t.length === 0) throw new FsError('ENOENT', 'symlink', path);
    if (t.length >= 4096) throw new FsError('ENAMETOOLONG', 'symlink', path);
    return this.run((tx) => {
      const inode = this.newInode(tx, dir, S_IFLNK | 0o777, caller);
      inode.symlink = t;
      inode.size = t.length;
      this.addEntry(tx, dir, name, inode);
      return inode;
    });
  }

  readlink(t: Inode | string): string {
    const { inode, path } = this.target(t);
    if (!inode.isSymlink) throw new FsError('EINVAL', 'readlink', path);
    return inode.symlink!.toString('utf8');
  }

  link(src: string, dst: string): void {
    const inode = this.resolve(src);
    if (inode.isDir) throw new FsError('EPERM', 'link', src, 'hard links to directories are not allowed');
    const { dir, name } = this.resolveParent(dst, 'link');
    this.linkAt(inode, dir, name, dst);
  }

  /** A new name `name` in `dir` for `inode`. @throws FsError EPERM (directory), EEXIST, ENOENT, EMLINK, EROFS, ENOSPC */
  linkAt(inode: Inode, dir: Inode, name: string, path = name): void {
    if (inode.isDir) throw new FsError('EPERM', 'link', path, 'hard links to directories are not allowed');
    this.prepareCreate(dir, name, 'link', path);
    if (inode.nlink === 0) throw new FsError('ENOENT', 'link', path);
    if (inode.nlink >= 0xffffffff - 1) throw new FsError('EMLINK', 'link', path);
    this.run((tx) => {
      this.addEntry(tx, dir, name, inode);
      inode.touchCtime();
    });
  }

  unlink(path: string): void {
    this.writable('unlink', path);
    const { dir, name } = this.resolveParent(path, 'unlink');
    this.unlinkAt(dir, name, path);
  }

  /** Remove the non-directory `name` from `dir`. @throws FsError ENOENT, ENOTDIR, EISDIR, EROFS */
  unlinkAt(dir: Inode, name: string, path = name): void {
    this.writable('unlink', path);
    const inode = this.lookup(dir, name, path);
    if (inode.isDir) throw new FsError('EISDIR', 'unlink', path);
    this.run((tx) => this.removeEntry(tx, dir, name, inode));
  }

  rmdir(path: string): void {
    this.writable('rmdir', path);
    const { dir, name } = this.resolveParent(path, 'rmdir');
    this.rmdirAt(dir, name, path);
  }

  /** Remove the empty directory `name` from `dir`. @throws FsError EINVAL ('.'), ENOENT, ENOTDIR, ENOTEMPTY, EROFS */
  rmdirAt(dir: Inode, name: string, path = name): void {
    this.writable('rmdir', path);
    if (name === '.') throw new FsError('EINVAL', 'rmdir', path);
    const inode = this.lookup(dir, name, path);
    if (!inode.isDir) throw new FsError('ENOTDIR', 'rmdir', path);
    if (inode.dirents!.size) throw new FsError('ENOTEMPTY', 'rmdir', path);
    this.run((tx) => this.removeEntry(tx, dir, name, inode));
    this.parents?.delete(inode.ino);
  }

  /** Drop one name; the inode goes when no name, handle, lease or pin is left. */
  private removeEntry(tx: Transaction, dir: Inode, name: string, inode: Inode): void {
    tx.markDirty(dir);
    tx.markDirty(inode);
    dir.dirents!.delete(name);
    if (inode.isDir) { dir.nlink--; inode.nlink = 0; } else inode.nlink--;
    dir.touchMtime();
    inode.touchCtime();
    if (inode.nlink === 0) this.maybeReap(tx, inode);
  }

  /**
   * Free an unlinked inode if nothing holds it, else mark it an orphan
   * (freed at last release, or at next mount). An inode with more extent
   * records than one transaction may free (reapChunk) is marked an orphan
   * in this one and freed by drainReaps right after it, a bounded
   * transaction at a time: a crash in between leaves an orphan that the
   * next mount goes on freeing (ext4's orphan list, XFS's rolled
   * xfs_itruncate_extents + xfs_inactive).
   */
  maybeReap(tx: Transaction, inode: Inode): void {
    if (inode.nlink > 0) return;
    const held = inode.openCount > 0 || inode.leases.length > 0 || this.pins.pinsOfIno(inode.ino).length > 0;
    if (held || inode.bmap.count > this.reapChunk) {
      if (!inode.orphan) { inode.flags |= IFLAG_ORPHAN; tx.markDirty(inode); }
      if (!held) this.pendingReaps.add(inode);
      return;
    }
    releaseAllBlocks(tx, inode, this.guard.internalPermit(inode));
    tx.drop(inode);
  }

  /**
   * Free the large orphans maybeReap queued, reapChunk extents per
   * transaction from the end of the file, the inode itself in the last
   * one. Runs after the operation that queued them (TxManager.afterOp).
   */
  drainReaps(): void {
    this.draining = true;
    try {
      for (const inode of this.pendingReaps) {
        this.pendingReaps.delete(inode);
        const permit = this.guard.internalPermit(inode);
        try {
          while (this.store.inodes.get(inode.ino) === inode) {
            this.tx.run((tx) => { if (releaseTail(tx, inode, permit, this.reapChunk) === 0) tx.drop(inode); });
          }
        } catch (err) {
          // The operation that queued it has committed: it stays an orphan, which the next mount frees.
          this.log.error({ err, ino: inode.ino }, 'freeing a large orphan failed; the next mount goes on');
        }
      }
    } finally {
      this.draining = false;
    }
  }

  rename(src: string, dst: string): void {
    this.writable('rename', src);
    const s = this.resolveParent(src, 'rename');
    const d = this.resolveParent(dst, 'rename');
    this.renameAt(s.dir, s.name, d.dir, d.name, src, dst);
  }

  /**
   * Move `sname` of `sdir` to `dname` of `ddir`, replacing what is there
   * (rename(2) semantics; one transaction, so all or nothing).
   * @throws FsError ENOENT, EINVAL (a directory into itself), ENOTDIR, EISDIR, ENOTEMPTY, ENAMETOOLONG, EROFS, ENOSPC
   */
  renameAt(sdir: Inode, sname: string, ddir: Inode, dname: string, src = sname, dst = dname): void {
    this.writable('rename', src);
    if (!ddir.isDir) throw new FsError('ENOTDIR', 'rename', dst);
    if (Buffer.byteLength(dname) > NAME_MAX) throw new FsError('ENAMETOOLONG', 'rename', dst);
    const inode = this.lookup(sdir, sname, src);
    if (inode.isDir && this.isAncestor(inode, ddir)) throw new FsError('EINVAL', 'rename', src, 'cannot move a directory into itself');
    const targetIno = ddir.dirents!.get(dname);
    const target = targetIno === undefined ? undefined : this.mustInode(targetIno);
    if (target === inode) return;
    if (target) {
      if (inode.isDir && !target.isDir) throw new FsError('ENOTDIR', 'rename', dst);
      if (!inode.isDir && target.isDir) throw new FsError('EISDIR', 'rename', dst);
      if (target.isDir && target.dirents!.size) throw new FsError('ENOTEMPTY', 'rename', dst);
    } else if (ddir.nlink === 0) {
      throw new FsError('ENOENT', 'rename', dst, 'directory was removed');
    }
    this.run((tx) => {
      tx.markDirty(sdir); tx.markDirty(ddir); tx.markDirty(inode);
      if (target) this.removeEntry(tx, ddir, dname, target);
      sdir.dirents!.delete(sname);
      ddir.dirents!.set(dname, inode.ino);
      if (inode.isDir && sdir !== ddir) { sdir.nlink--; ddir.nlink++; }
      sdir.touchMtime(); ddir.touchMtime();
      inode.touchCtime();
    });
    if (target?.isDir) this.parents?.delete(target.ino);
    if (inode.isDir) this.parents?.set(inode.ino, ddir.ino);
  }

  // --- handles and data ------------------------------------------------------

  open(t: Inode | string, flags: number, caller: Caller): Handle {
    const { inode, path } = this.target(t);
    if ((flags & O_ACCMODE) !== C.O_RDONLY) {
      this.writable('open', path);
      if (inode.isDir) throw new FsError('EISDIR', 'open', path);
    }
    return this.openInode(inode, flags, caller);
  }

  openInode(inode: Inode, flags: number, caller: Caller): Handle {
    if (this.nextFh >= FILE_FH_LIMIT) throw new FsError('EMFILE', 'open', undefined, 'file handle numbers exhausted: remount');
    const h: Handle = { fh: this.nextFh++, inode, flags, pid: caller.pid };
    this.handles.set(h.fh, h);
    inode.openCount++;
    return h;
  }

  create(path: string, mode: number, flags: number, caller: Caller): Handle {
    const inode = this.mknod(path, S_IFREG | (mode & 0o7777), 0, caller);
    return this.openInode(inode, flags, caller);
  }

  handle(fh: number): Handle {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF', 'handle', undefined, `no open handle ${fh}`);
    return h;
  }

  hasHandle(fh: number): boolean { return this.handles.has(fh); }

  /**
   * The open file handle `fh` when it is open on `inode`, else null: what an
   * ioctl's handle proves (a directory handle, a stale or foreign number is
   * no proof of anything).
   */
  fileHandle(fh: number, inode: Inode): Handle | null {
    const h = this.handles.get(fh);
    return h && h.inode === inode ? h : null;
  }

  release(fh: number): void {
    const h = this.handles.get(fh);
    if (!h) return;
    this.handles.delete(fh);
    h.inode.openCount--;
    if (h.inode.nlink === 0) this.run((tx) => this.maybeReap(tx, h.inode));
  }

  read(fh: number, buf: Buffer, len: number, off: number): number {
    const h = this.handle(fh);
    if (h.inode.isDir) throw new FsError('EISDIR', 'read');
    return readData(this.data, h.inode, buf, len, off);
  }

  /**
   * Write buf[bufOff, bufOff+len) at `off` through an open handle. A writer without CAP_FSETID (uid ≠ 0) drops
   * set-user-ID, and set-group-ID on a group-executable file, as Linux's
   * file_remove_privs() does.
   */
  write(fh: number, path: string, buf: Buffer, len: number, off: number, caller: Caller = ROOT_CALLER, bufOff = 0): number {
    this.writable('write', path);
    const h = this.handle(fh);
    if ((h.flags & O_ACCMODE) === C.O_RDONLY) throw new FsError('EBADF', 'write', path);
    const at = h.flags & C.O_APPEND ? h.inode.size : off;
    return this.run((tx) => {
      // O_SYNC/O_DSYNC: durable on return (dax=always gets no FSYNC from the kernel).
      if (h.flags & C.O_DSYNC) tx.requireSync();
      const n = writeData(this.data, tx, h.inode, path, buf, len, at, bufOff);
      h.inode.mode &= ~privsToDrop(h.inode, caller);
      return n;
    });
  }

  async truncate(t: Inode | string, size: number, fh?: number): Promise<void> {
    return this.setattr(t, { size }, fh);
  }

  async fallocate(t: Inode | string, mode: number, off: number, len: number, fh?: number): Promise<void> {
    const { inode, path } = this.targetVia(t, fh, false);
    this.writable('fallocate', path);
    await fallocateData(this.data, this.runTx, inode, path, mode, off, len);
  }

  /** Collapse or insert a block-aligned range (the pmemfs fcollapse/finsert ioctls). */
  async shift(t: Inode | string, mode: 'collapse' | 'insert', off: number, len: number, fh?: number): Promise<void> {
    const { inode, path } = this.targetVia(t, fh, false);
    this.writable(mode, path);
    await shiftRange(this.data, this.runTx, inode, path, mode, off, len);
  }

  /** UNSHARE_RANGE (the pmemfs funshare ioctl): shared blocks of the range get their own copies. */
  async unshare(t: Inode | string, off: number, len: number, fh?: number): Promise<void> {
    const { inode, path } = this.targetVia(t, fh, false);
    this.writable('unshare', path);
    await unshareRange(this.data, this.runTx, inode, path, off, len);
  }

  /**
   * Clone (FICLONE / FICLONERANGE) or dedupe (FIDEDUPERANGE) the source
   * inode's bytes [srcOff, +len) onto the target's [dstOff, +len). Who may
   * do it was decided before (src/op/permissions.ts): the source is a file
   * the caller holds open for reading (a descriptor of the calling process,
   * or copy_file_range's input handle), the destination's handle allows
   * the change. Rules and errnos of the ranges: src/vfs/remap.ts. A clone
   * and its set-user-ID drop are one transaction.
   * @throws FsError EROFS, and remapRange's errors
   */
  async remap(t: Inode | string, src: Inode, srcOff: number, dstOff: number, len: number, dedupe: boolean, caller: Caller): Promise<RemapResult> {
    const op = dedupe ? 'dedupe' : 'reflink';
    const { inode: dst, path } = this.target(t);
    this.writable(op, path);
    const kill = dedupe ? 0 : privsToDrop(dst, caller);
    const res = await remapRange(this.data, this.runTx, { src, srcPath: `(inode ${src.ino})`, dst, dstPath: path, srcOff, dstOff, len, dedupe, dropModeBits: kill });
    const st = this.data.share;
    if (dedupe) { st.dedupes++; if (res.differs) st.dedupe_differs++; } else st.clones++;
    st.shared_bytes += res.bytes;
    return res;
  }

  /**
   * Before a write through handle fh: when it would copy pinned shared
   * blocks (copy-on-write is a layout change), a promise that settles once
   * the guard allows it (busy=wait) or rejects with ETXTBSY; null — the
   * usual answer, at once when nothing is shared — when the write may run now.
   */
  cowWait(fh: number, off: number, len: number): Promise<void> | null {
    if (this.store.refcount.empty) return null;
    const h = this.handles.get(fh);
    if (!h || !h.inode.isReg) return null;
    const inode = h.inode;
    const runs = () => cowRuns(this.data, inode, h.flags & C.O_APPEND ? inode.size : off, len);
    if (this.guard.pinnedIn(runs()) === 0) return null;
    return this.guard.assertLayoutMutable({ op: 'write', path: `fh ${fh}`, inode, breaks: null, runs }).then(() => undefined);
  }

  /**
   * fsync/fdatasync/fsyncdir: a persistence point. The journal commits the
   * whole running transaction (every file's data and metadata so far, jbd2's
   * behaviour), so the file, its names and a directory's entries are durable
   * on return; fdatasync costs the same.
   */
  fsync(): void {
    if (!this.opts.readOnly) this.tx.commit('fsync');
  }

  statfs(): { bsize: number; frsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; favail: number; namemax: number } {
    const sb = this.store.sb;
    const a = this.store.alloc;
    const files = sb.inodeCount;
    const ffree = files - this.store.inodes.size;
    return {
      bsize: sb.blockSize, frsize: sb.blockSize, blocks: dataEnd(sb) - sb.dataStart,
      bfree: a.freeBlocks, bavail: Math.max(0, a.freeBlocks - a.reserve), files, ffree, favail: ffree, namemax: NAME_MAX,
    };
  }

  // --- extended attributes ---------------------------------------------------

  private checkXattrName(name: string, op: string, path: string): void {
    if (Buffer.byteLength(name) > XATTR_NAME_MAX || name.length === 0) throw new FsError('ERANGE', op, path);
    if (!name.startsWith('user.') && !name.startsWith('trusted.')) {
      throw new FsError('EOPNOTSUPP', op, path, 'only user.* and trusted.* attributes are supported');
    }
  }

  /** @returns the value, or null when absent (ENODATA to the caller) */
  getxattr(t: Inode | string, name: string): Buffer | null {
    const { inode, path } = this.target(t);
    if (name === uapi.XATTR_STATE) return Buffer.from(this.stateLine(inode));
    if (name === uapi.XATTR_SEALED) return inode.persistentSeal ? Buffer.from('1') : null;
    // No ACL beyond the mode bits, and no default ACL: ENODATA, as ext4 answers then.
    if (name === XATTR_POSIX_ACL_ACCESS || name === XATTR_POSIX_ACL_DEFAULT) return null;
    this.checkXattrName(name, 'getxattr', path);
    return inode.xattrs.get(name) ?? null;
  }

  listxattr(t: Inode | string): string[] {
    const { inode } = this.target(t);
    const names = [...inode.xattrs.keys()];
    if (inode.persistentSeal) names.push(uapi.XATTR_SEALED);
    return names;
  }

  setxattr(t: Inode | string, name: string, value: Buffer, flags: number, caller: Caller = ROOT_CALLER): void {
    const { inode, path } = this.target(t);
    this.writable('setxattr', path);
    if (name === uapi.XATTR_STATE) throw new FsError('EPERM', 'setxattr', path, `${name} is read-only`);
    if (name === XATTR_POSIX_ACL_ACCESS) { this.setAccessAcl(inode, path, value, caller); return; }
    if (name === uapi.XATTR_SEALED) {
      if (value.toString('utf8').trim() !== '1') throw new FsError('EINVAL', 'setxattr', path, `${name} takes the value 1 (remove it to unseal)`);
      if (flags & XATTR_CREATE && inode.persistentSeal) throw new FsError('EEXIST', 'setxattr', path);
      this.needSeals(path).sealInode(inode, path);
      return;
    }
    this.checkXattrName(name, 'setxattr', path);
    if (value.length > XATTR_SIZE_MAX) throw new FsError('E2BIG', 'setxattr', path);
    const exists = inode.xattrs.has(name);
    if (flags & XATTR_CREATE && exists) throw new FsError('EEXIST', 'setxattr', path);
    if (flags & XATTR_REPLACE && !exists) throw new FsError('ENODATA', 'setxattr', path);
    let total = value.length + name.length;
    for (const [k, v] of inode.xattrs) if (k !== name) total += k.length + v.length;
    if (total > XATTR_TOTAL_MAX) throw new FsError('ENOSPC', 'setxattr', path, 'xattr space of the inode is full');
    this.run((tx) => {
      tx.markDirty(inode);
      inode.xattrs.set(name, Buffer.from(value));
      inode.touchCtime();
      tx.markDirty(inode);
    });
  }

  removexattr(t: Inode | string, name: string): void {
    const { inode, path } = this.target(t);
    this.writable('removexattr', path);
    // Removing an ACL that is not there (cp -a clears a directory's default ACL): ENODATA, which libacl takes as done.
    if (name === XATTR_POSIX_ACL_ACCESS || name === XATTR_POSIX_ACL_DEFAULT) throw new FsError('ENODATA', 'removexattr', path);
    if (name === uapi.XATTR_STATE) throw new FsError('EPERM', 'removexattr', path, `${name} is read-only`);
    if (name === uapi.XATTR_SEALED) {
      if (!inode.persistentSeal) throw new FsError('ENODATA', 'removexattr', path);
      this.needSeals(path).unsealInode(inode, path);
      return;
    }
    this.checkXattrName(name, 'removexattr', path);
    if (!inode.xattrs.has(name)) throw new FsError('ENODATA', 'removexattr', path);
    this.run((tx) => {
      tx.markDirty(inode);
      inode.xattrs.delete(name);
      inode.touchCtime();
      tx.markDirty(inode);
    });
  }

  /**
   * system.posix_acl_access: pmemfs keeps no ACLs, but an ACL equivalent to
   * the mode bits (only the owner, group and other entries) is accepted as
   * the chmod it means, as Linux filesystems store it (posix_acl_equiv_mode,
   * linux fs/posix_acl.c); `cp -a` sets one on every file. Any other ACL:
   * EOPNOTSUPP. Value: the kernel's xattr form (u32 version 2, then u16 tag,
   * u16 perm, u32 id per entry).
   * @throws FsError EOPNOTSUPP (an extended ACL), EINVAL (malformed), EPERM (not the owner)
   */
  private setAccessAcl(inode: Inode, path: string, value: Buffer, caller: Caller): void {
    if (value.length < 4 || (value.length - 4) % 8 || value.readUInt32LE(0) !== 2) throw new FsError('EINVAL', 'setxattr', path, 'malformed POSIX ACL');
    const perms = new Map<number, number>();
    for (let o = 4; o < value.length; o += 8) perms.set(value.readUInt16LE(o), value.readUInt16LE(o + 2) & 7);
    const n = (value.length - 4) / 8;
    if (n !== 3 || !perms.has(ACL_USER_OBJ) || !perms.has(ACL_GROUP_OBJ) || !perms.has(ACL_OTHER)) {
      throw new FsError('EOPNOTSUPP', 'setxattr', path, 'POSIX ACLs beyond the mode bits are not supported');
    }
    if (caller.uid !== 0 && caller.uid !== inode.uid) throw new FsError('EPERM', 'setxattr', path, 'only the owner may change the mode');
    let mode = (inode.mode & ~0o777) | (perms.get(ACL_USER_OBJ)! << 6) | (perms.get(ACL_GROUP_OBJ)! << 3) | perms.get(ACL_OTHER)!;
    // As chmod: a caller outside the file's group (primary group: all a request carries) drops set-group-ID.
    if (caller.uid !== 0 && caller.gid !== inode.gid) mode &= ~S_ISGID;
    this.chmod(inode, mode);
  }

  private needSeals(path: string): NonNullable<PmemFs['seals']> {
    if (!this.seals) throw new FsError('EOPNOTSUPP', 'seal', path, 'seals are not available on this mount');
    return this.seals;
  }

  /** The user.pmemfs.state line: sealed=… pins=… busy_pages=… extents=… */
  stateLine(inode: Inode): string {
    const pins = this.pins.pinsOfIno(inode.ino);
    const busy = new Set<number>();
    for (const p of pins) for (let b = p.startBlock; b < p.startBlock + p.blocks && busy.size < 1e6; b++) busy.add(b);
    return `sealed=${inode.sealKind} pins=${pins.length} busy_pages=${busy.size} extents=${inode.bmap.count} leases=${inode.leases.length} size=${inode.size} blocks=${inode.bmap.mappedBlocks()}`;
  }

  /**
   * Unmount, and orphan recovery at mount: drop handles, leases and pins,
   * then free every orphan, each in operations of its own (a crash part-way
   * leaves the rest flagged for the next mount; none is larger than the log).
   */
  shutdown(): void {
    this.handles.clear();
    this.pins.clear();
    if (this.opts.readOnly) return;
    const orphans: Inode[] = [];
    for (const inode of this.store.inodes.values()) {
      inode.openCount = 0; inode.leases = [];
      if (inode.nlink === 0) orphans.push(inode);
    }
    for (const inode of orphans) if (this.store.inodes.get(inode.ino) === inode) this.run((tx) => this.maybeReap(tx, inode));
  }
}

/** Directory ino → parent ino for every directory reachable from the root (iterative walk). */
function buildParents(root: Inode, get: (ino: number) => Inode | undefined): Map<number, number> {
  const parents = new Map<number, number>([[root.ino, root.ino]]);
  const stack = [root];
  while (stack.length) {
    const dir = stack.pop()!;
    for (const ino of dir.dirents!.values()) {
      const child = get(ino);
      if (child?.isDir && !parents.has(ino)) { parents.set(ino, dir.ino); stack.push(child); }
    }
  }
  return parents;
}

/** Split "/a/b" into ["a","b"]; rejects over-long components. */
export function splitPath(path: string): string[] {
  const parts = path.split('/').filter((p) => p.length > 0 && p !== '.');
  for (const p of parts) if (Buffer.byteLength(p) > NAME_MAX) throw new FsError('ENAMETOOLONG', 'lookup', path);
  return parts;
}

/**
 * The mode bits a data change by caller drops: without CAP_FSETID (uid ≠ 0),
 * set-user-ID, and set-group-ID on a group-executable file (Linux's
 * file_remove_privs()); 0 when none.
 */
function privsToDrop(inode: Inode, caller: Caller): number {
  if (caller.uid === 0) return 0;
  return inode.mode & (S_ISUID | (inode.mode & C.S_IXGRP ? S_ISGID : 0));
}

/** chmod's change: the permission bits, the type kept; ctime. */
function applyMode(tx: Transaction, inode: Inode, mode: number): void {
  tx.markDirty(inode);
  inode.mode = (inode.mode & S_IFMT) | (mode & 0o7777);
  inode.touchCtime();
}

/** chown's change (-1 or 0xffffffff keeps that id); ctime. */
function applyOwner(tx: Transaction, inode: Inode, uid: number, gid: number): void {
  tx.markDirty(inode);
  if (uid !== -1 && uid !== 0xffffffff) inode.uid = uid;
  if (gid !== -1 && gid !== 0xffffffff) inode.gid = gid;
  // Linux clears set-user-ID, and set-group-ID on group-executables, when a non-directory changes owner.
  if (!inode.isDir) {
    inode.mode &= ~S_ISUID;
    if (inode.mode & C.S_IXGRP) inode.mode &= ~S_ISGID;
  }
  inode.touchCtime();
}

/** utimens's change at `now`; ctime. */
function applyTimes(tx: Transaction, inode: Inode, atime: TimeSpec, mtime: TimeSpec, now: Timespec): void {
  const pick = (t: TimeSpec, cur: Timespec) => (t === 'now' ? now : t === 'omit' ? cur : t);
  tx.markDirty(inode);
  inode.atime = pick(atime, inode.atime);
  inode.mtime = pick(mtime, inode.mtime);
  inode.ctime = now;
}
