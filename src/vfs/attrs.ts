/**
 * @file Inode attributes: stat, and the changes of chmod, chown, utimens and
 * FUSE SETATTR (mode, owner, size, times as one request), each one
 * transaction. Also the mode-bit rules other operations share: what a data
 * change by an unprivileged caller drops (file_remove_privs).
 *
 * Caveat: a size change is a layout change (src/vfs/data.ts); setattr
 * prepares it first, which may wait at the layout guard, so everything that
 * can refuse is checked before anything changes.
 */
import { constants as C } from 'node:fs';
import type { LayoutPermit } from '../bmap/bmap.js';
import { FsError } from '../errors.js';
import { S_IFMT, type Inode } from '../inode/inode.js';
import type { Transaction } from '../journal/tx.js';
import type { Operation } from '../op/operation.js';
import { nowTimespec, type Timespec } from '../types.js';
import { applyTruncate, prepareTruncate } from './data.js';
import type { Caller, PmemFs } from './fs.js';
import { targetVia } from './handles.js';

export const S_ISUID = 0o4000;
export const S_ISGID = 0o2000;

export interface Stat {
  ino: number; mode: number; nlink: number; uid: number; gid: number; rdev: number;
  size: number; blksize: number; blocks: number; // blocks in 512-byte units
  atime: Timespec; mtime: Timespec; ctime: Timespec;
}

export type TimeSpec = Timespec | 'now' | 'omit';

/** The attributes of one setattr request; absent ones stay. Sizes in bytes; uid/gid -1 (or absent) keeps that one. */
export interface SetAttrs {
  mode?: number; uid?: number; gid?: number; size?: number; atime?: TimeSpec; mtime?: TimeSpec;
  /**
   * Who truncates (size set): a caller without CAP_FSETID loses
   * set-user-ID/set-group-ID, as do_truncate's ATTR_KILL_* would; the daemon
   * decides it (FUSE_HANDLE_KILLPRIV_V2, native/src/init.c).
   */
  caller?: Caller;
}

/** An inode's attributes; a symlink's size is its target's length in bytes. */
export function stat(fs: PmemFs, inode: Inode): Stat {
  inode.timesQueried = true;
  return {
    ino: inode.ino, mode: inode.mode, nlink: inode.nlink, uid: inode.uid, gid: inode.gid, rdev: inode.rdev,
    size: inode.isSymlink ? inode.symlink!.length : inode.size,
    blksize: fs.blockSize, blocks: inode.bmap.mappedBlocks() * (fs.blockSize / 512),
    atime: inode.atime, mtime: inode.mtime, ctime: inode.ctime,
  };
}

/** @throws FsError EROFS, and as PmemFs.target */
export function chmod(fs: PmemFs, t: Inode | string, mode: number): void {
  const { inode, path } = fs.target(t);
  fs.assertWritable('chmod', path);
  fs.ops.apply('chmod', [inode], (tx) => applyMode(tx, inode, mode));
}

/** uid/gid -1 keeps that one. @throws FsError EROFS, and as PmemFs.target */
export function chown(fs: PmemFs, t: Inode | string, uid: number, gid: number): void {
  const { inode, path } = fs.target(t);
  fs.assertWritable('chown', path);
  fs.ops.apply('chown', [inode], (tx) => applyOwner(tx, inode, uid, gid));
}

/** @throws FsError EROFS, and as PmemFs.target */
export function utimens(fs: PmemFs, t: Inode | string, atime: TimeSpec, mtime: TimeSpec): void {
  const { inode, path } = fs.target(t);
  fs.assertWritable('utimens', path);
  fs.ops.apply('utimens', [inode], (tx) => applyTimes(tx, inode, atime, mtime, nowTimespec()));
}

/**
 * FUSE SETATTR: several attributes as one request, all or nothing. The
 * prepare step checks everything that can refuse (the size: EISDIR,
 * EINVAL, EFBIG, a seal, busy pages past the new EOF — it may wait) before
 * anything changes; the apply step sets mode, owner, size and times in
 * one transaction. So a setattr of mode and size on a sealed file is
 * ETXTBSY with the mode unchanged (notify_change applies its attributes
 * together, fs/attr.c). A size change through open handle `fh` reaches an
 * unlinked file.
 * @throws FsError EROFS, EBADF (fh not open), EISDIR/EINVAL (size of a non-file), and truncate's errors
 */
export function setattr(fs: PmemFs, t: Inode | string, a: SetAttrs, fh?: number): void | Promise<void> {
  const { inode, path } = a.size === undefined ? fs.target(t) : targetVia(fs, t, fh, true);
  fs.assertWritable('setattr', path);
  const op = fs.ops.begin('setattr', inode);
  if (a.size === undefined) { applyAttrs(fs, op, inode, path, a, null); return; }   // nothing to wait for: no promise
  if (inode.isDir) throw new FsError('EISDIR', 'truncate', path);
  if (!inode.isReg) throw new FsError('EINVAL', 'truncate', path);
  return prepareTruncate(fs.data, inode, path, a.size).then((permit) => applyAttrs(fs, op, inode, path, a, permit));
}

/** setattr's apply step: one transaction, then (a large shrink) the blocks past EOF in chunks. */
function applyAttrs(fs: PmemFs, op: Operation, inode: Inode, path: string, a: SetAttrs, permit: LayoutPermit | null): void {
  const now = nowTimespec();
  op.apply((tx) => {
    if (a.mode !== undefined) applyMode(tx, inode, a.mode);
    if (a.uid !== undefined || a.gid !== undefined) applyOwner(tx, inode, a.uid ?? -1, a.gid ?? -1);
    // A shrink past more extent records than one transaction frees: the rest go right after (truncateLater).
    if (a.size !== undefined && a.mode === undefined) killPrivs(tx, inode, a.caller ?? null);
    if (a.size !== undefined && applyTruncate(fs.data, tx, inode, path, a.size, permit, fs.reapChunk)) fs.truncateLater(tx, inode);
    if (a.atime !== undefined || a.mtime !== undefined) applyTimes(tx, inode, a.atime ?? 'omit', a.mtime ?? 'omit', now);
  });
}

/**
 * The mode bits a data change by caller drops: without CAP_FSETID (uid ≠ 0),
 * set-user-ID, and set-group-ID on a group-executable file (Linux's
 * file_remove_privs()); 0 when none.
 */
export function privsToDrop(inode: Inode, caller: Caller): number {
  if (caller.uid === 0) return 0;
  return inode.mode & (S_ISUID | (inode.mode & C.S_IXGRP ? S_ISGID : 0));
}

/**
 * What a write or truncate by `caller` does to privileges (file_remove_privs,
 * fs/inode.c): set-user-ID, and set-group-ID on a group-executable file, go
 * when the caller lacks CAP_FSETID (privsToDrop). The inode is logged only
 * when something changes. (There is no security.capability to remove:
 * pmemfs stores user.* and trusted.* attributes only.)
 */
export function killPrivs(tx: Transaction, inode: Inode, caller: Caller | null): void {
  const drop = caller ? privsToDrop(inode, caller) : 0;
  if (!drop) return;
  tx.markDirty(inode);
  inode.mode &= ~drop;
  inode.touchCtime();
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
