/**
 * @file The namespace: making, linking, removing and renaming names, each
 * one transaction. Every operation has a by-path form (tests, the service)
 * and an `…At` form by directory inode and name (the FUSE transport works
 * by node id); the by-path form resolves, then calls the `…At` form.
 *
 * Ownership of a new inode is the caller's uid and gid, or the directory's
 * group under a set-group-ID directory (BSD semantics). A name whose inode
 * loses its last link goes to PmemFs.maybeReap (src/vfs/orphans.ts): freed
 * now, or kept as an orphan while something holds it.
 *
 * Caveat: the parent map (src/vfs/lookup.ts) is updated after the
 * transaction commits, so it never names a directory that a failed
 * operation did not move.
 */
import { constants as C } from 'node:fs';
import { FsError } from '../errors.js';
import { Inode, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../inode/inode.js';
import type { Transaction } from '../journal/tx.js';
import { S_ISGID } from './attrs.js';
import type { Caller, PmemFs } from './fs.js';
import { mustInode, NAME_MAX, resolveParent, type ParentMap } from './lookup.js';

/** The names of a directory, '.' and '..' first. @throws FsError ENOTDIR, and as PmemFs.target */
export function readdir(fs: PmemFs, t: Inode | string): string[] {
  const { inode, path } = fs.target(t);
  if (!inode.isDir) throw new FsError('ENOTDIR', 'readdir', path);
  return ['.', '..', ...inode.dirents!.keys()];
}

/** A symlink's target. @throws FsError EINVAL (not a symlink), and as PmemFs.target */
export function readlink(fs: PmemFs, t: Inode | string): string {
  const { inode, path } = fs.target(t);
  if (!inode.isSymlink) throw new FsError('EINVAL', 'readlink', path);
  return inode.symlink!.toString('utf8');
}

export function mkdir(fs: PmemFs, path: string, mode: number, caller: Caller): Inode {
  const { dir, name } = resolveParent(fs, path, 'mkdir');
  return fs.mkdirAt(dir, name, mode, caller, path);
}

/** mkdir of `name` in `dir`. @throws FsError EEXIST, ENOENT, ENOTDIR, ENAMETOOLONG, EROFS, ENOSPC */
export function mkdirAt(fs: PmemFs, parents: ParentMap, dir: Inode, name: string, mode: number, caller: Caller, path: string): Inode {
  prepareCreate(fs, dir, name, 'mkdir', path);
  const inode = fs.ops.apply('mkdir', [dir], (tx) => {
    const i = newInode(fs, tx, dir, S_IFDIR | (mode & 0o7777), caller);
    i.parent = dir.ino;
    addEntry(tx, dir, name, i);
    return i;
  });
  parents.moved(inode.ino, dir.ino);
  return inode;
}

export function mknod(fs: PmemFs, path: string, mode: number, rdev: number, caller: Caller): Inode {
  const { dir, name } = resolveParent(fs, path, 'mknod');
  return fs.mknodAt(dir, name, mode, rdev, caller, path);
}

/** mknod of `name` in `dir` (regular file, FIFO, socket or device). @throws FsError as mkdirAt, EINVAL for another type */
export function mknodAt(fs: PmemFs, dir: Inode, name: string, mode: number, rdev: number, caller: Caller, path: string): Inode {
  prepareCreate(fs, dir, name, 'mknod', path);
  const type = mode & S_IFMT || S_IFREG;
  if (![S_IFREG, C.S_IFIFO, C.S_IFCHR, C.S_IFBLK, C.S_IFSOCK].includes(type)) throw new FsError('EINVAL', 'mknod', path);
  return fs.ops.apply('mknod', [dir], (tx) => {
    const inode = newInode(fs, tx, dir, type | (mode & 0o7777), caller);
    inode.rdev = rdev;
    addEntry(tx, dir, name, inode);
    return inode;
  });
}

export function symlink(fs: PmemFs, target: string, path: string, caller: Caller): Inode {
  const { dir, name } = resolveParent(fs, path, 'symlink');
  return fs.symlinkAt(dir, name, target, caller, path);
}

/** symlink `name` → `target` in `dir`. @throws FsError as mkdirAt, ENOENT (empty target), ENAMETOOLONG (4096 bytes or more) */
export function symlinkAt(fs: PmemFs, dir: Inode, name: string, target: string, caller: Caller, path: string): Inode {
  prepareCreate(fs, dir, name, 'symlink', path);
  const t = Buffer.from(target, 'utf8');
  if (t.length === 0) throw new FsError('ENOENT', 'symlink', path);
  if (t.length >= 4096) throw new FsError('ENAMETOOLONG', 'symlink', path);
  return fs.ops.apply('symlink', [dir], (tx) => {
    const inode = newInode(fs, tx, dir, S_IFLNK | 0o777, caller);
    inode.symlink = t;
    inode.size = t.length;
    addEntry(tx, dir, name, inode);
    return inode;
  });
}

export function link(fs: PmemFs, src: string, dst: string): void {
  const inode = fs.resolve(src);
  if (inode.isDir) throw new FsError('EPERM', 'link', src, 'hard links to directories are not allowed');
  const { dir, name } = resolveParent(fs, dst, 'link');
  fs.linkAt(inode, dir, name, dst);
}

/** A new name `name` in `dir` for `inode`. @throws FsError EPERM (directory), EEXIST, ENOENT, EMLINK, EROFS, ENOSPC */
export function linkAt(fs: PmemFs, inode: Inode, dir: Inode, name: string, path: string): void {
  if (inode.isDir) throw new FsError('EPERM', 'link', path, 'hard links to directories are not allowed');
  prepareCreate(fs, dir, name, 'link', path);
  if (inode.nlink === 0) throw new FsError('ENOENT', 'link', path);
  if (inode.nlink >= 0xffffffff - 1) throw new FsError('EMLINK', 'link', path);
  fs.ops.apply('link', [inode, dir], (tx) => {
    addEntry(tx, dir, name, inode);
    inode.touchCtime();
  });
}

export function unlink(fs: PmemFs, path: string): void {
  fs.assertWritable('unlink', path);
  const { dir, name } = resolveParent(fs, path, 'unlink');
  fs.unlinkAt(dir, name, path);
}

/** Remove the non-directory `name` from `dir`. @throws FsError ENOENT, ENOTDIR, EISDIR, EROFS */
export function unlinkAt(fs: PmemFs, dir: Inode, name: string, path: string): void {
  fs.assertWritable('unlink', path);
  const inode = fs.lookup(dir, name, path);
  if (inode.isDir) throw new FsError('EISDIR', 'unlink', path);
  fs.ops.apply('unlink', [dir, inode], (tx) => removeEntry(fs, tx, dir, name, inode));
}

export function rmdir(fs: PmemFs, path: string): void {
  fs.assertWritable('rmdir', path);
  const { dir, name } = resolveParent(fs, path, 'rmdir');
  fs.rmdirAt(dir, name, path);
}

/** Remove the empty directory `name` from `dir`. @throws FsError EINVAL ('.'), ENOENT, ENOTDIR, ENOTEMPTY, EROFS */
export function rmdirAt(fs: PmemFs, parents: ParentMap, dir: Inode, name: string, path: string): void {
  fs.assertWritable('rmdir', path);
  if (name === '.') throw new FsError('EINVAL', 'rmdir', path);
  const inode = fs.lookup(dir, name, path);
  if (!inode.isDir) throw new FsError('ENOTDIR', 'rmdir', path);
  if (inode.dirents!.size) throw new FsError('ENOTEMPTY', 'rmdir', path);
  fs.ops.apply('rmdir', [dir, inode], (tx) => removeEntry(fs, tx, dir, name, inode));
  parents.removed(inode.ino);
}

export function rename(fs: PmemFs, src: string, dst: string): void {
  fs.assertWritable('rename', src);
  const s = resolveParent(fs, src, 'rename');
  const d = resolveParent(fs, dst, 'rename');
  fs.renameAt(s.dir, s.name, d.dir, d.name, src, dst);
}

/**
 * Move `sname` of `sdir` to `dname` of `ddir`, replacing what is there
 * (rename(2) semantics; one transaction, so all or nothing).
 * @throws FsError ENOENT, EINVAL (a directory into itself), ENOTDIR, EISDIR, ENOTEMPTY, ENAMETOOLONG, EROFS, ENOSPC
 */
export function renameAt(fs: PmemFs, parents: ParentMap, sdir: Inode, sname: string, ddir: Inode, dname: string, src: string, dst: string): void {
  fs.assertWritable('rename', src);
  if (!ddir.isDir) throw new FsError('ENOTDIR', 'rename', dst);
  if (Buffer.byteLength(dname) > NAME_MAX) throw new FsError('ENAMETOOLONG', 'rename', dst);
  const inode = fs.lookup(sdir, sname, src);
  if (inode.isDir && parents.isAncestor(inode, ddir)) throw new FsError('EINVAL', 'rename', src, 'cannot move a directory into itself');
  const targetIno = ddir.entry(dname);
  const target = targetIno === undefined ? undefined : mustInode(fs.store, targetIno);
  if (target === inode) return;
  if (target) {
    if (inode.isDir && !target.isDir) throw new FsError('ENOTDIR', 'rename', dst);
    if (!inode.isDir && target.isDir) throw new FsError('EISDIR', 'rename', dst);
    if (target.isDir && target.dirents!.size) throw new FsError('ENOTEMPTY', 'rename', dst);
  } else if (ddir.nlink === 0) {
    throw new FsError('ENOENT', 'rename', dst, 'directory was removed');
  }
  fs.ops.apply('rename', target ? [sdir, ddir, inode, target] : [sdir, ddir, inode], (tx) => {
    tx.markDirty(sdir); tx.markDirty(ddir); tx.markDirty(inode);
    if (target) removeEntry(fs, tx, ddir, dname, target);
    sdir.deleteEntry(sname);
    ddir.setEntry(dname, inode.ino);
    if (inode.isDir && sdir !== ddir) { sdir.nlink--; ddir.nlink++; }
    if (inode.isDir) inode.parent = ddir.ino;
    sdir.touchMtime(); ddir.touchMtime();
    inode.touchCtime();
  });
  if (target?.isDir) parents.removed(target.ino);
  if (inode.isDir) parents.moved(inode.ino, ddir.ino);
}

/** What every new name checks first. @throws FsError EROFS, ENOTDIR, ENAMETOOLONG, EEXIST, ENOENT (dir removed) */
function prepareCreate(fs: PmemFs, dir: Inode, name: string, op: string, path: string): void {
  fs.assertWritable(op, path);
  if (!dir.isDir) throw new FsError('ENOTDIR', op, path);
  if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', op, path);
  if (dir.entry(name) !== undefined) throw new FsError('EEXIST', op, path);
  if (dir.nlink === 0) throw new FsError('ENOENT', op, path, 'directory was removed');
}

function newInode(fs: PmemFs, tx: Transaction, dir: Inode, mode: number, caller: Caller): Inode {
  const inode = new Inode(fs.store.allocIno(), mode, caller.uid, caller.gid);
  inode.generation = fs.store.nextGeneration();
  // BSD group semantics under a set-group-ID directory; new subdirectories inherit the bit.
  if (dir.mode & S_ISGID) {
    inode.gid = dir.gid;
    if (inode.isDir) inode.mode |= S_ISGID;
  }
  fs.store.add(inode);
  tx.markDirty(inode);
  return inode;
}

function addEntry(tx: Transaction, dir: Inode, name: string, inode: Inode): void {
  tx.markDirty(dir);
  tx.markDirty(inode);
  dir.setEntry(name, inode.ino);
  inode.nlink++;
  if (inode.isDir) { dir.nlink++; inode.nlink++; }
  dir.touchMtime();
}

/** Drop one name; the inode goes when no name, handle, lease or pin is left. */
function removeEntry(fs: PmemFs, tx: Transaction, dir: Inode, name: string, inode: Inode): void {
  tx.markDirty(dir);
  tx.markDirty(inode);
  dir.deleteEntry(name);
  if (inode.isDir) { dir.nlink--; inode.nlink = 0; } else inode.nlink--;
  dir.touchMtime();
  inode.touchCtime();
  if (inode.nlink === 0) fs.maybeReap(tx, inode);
}
