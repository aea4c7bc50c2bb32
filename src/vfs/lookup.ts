/**
 * @file Name resolution: one name in one directory, absolute paths, a
 * path's parent directory, and the parent of a directory ('..', rename's
 * loop check). Reads the tree only; src/vfs/namespace.ts changes it.
 *
 * A directory records its parent in its slot (FEAT_INCOMPAT_ICACHE; mkdir
 * and rename keep it). An older region mounted read-only has none: its
 * directory → parent map is built by one walk from the root on first use.
 * A directory entry that names a missing inode (a damaged image) is EIO,
 * not ENOENT.
 */
import { FsError } from '../errors.js';
import type { Inode } from '../inode/inode.js';
import type { InodeStore } from '../inode/store.js';
import type { PmemFs } from './fs.js';

export const NAME_MAX = 255;

/** Split "/a/b" into ["a","b"]; rejects over-long components. @throws FsError ENAMETOOLONG */
export function splitPath(path: string): string[] {
  const parts = path.split('/').filter((p) => p.length > 0 && p !== '.');
  for (const p of parts) if (Buffer.byteLength(p) > NAME_MAX) throw new FsError('ENAMETOOLONG', 'lookup', path);
  return parts;
}

/** The inode a directory entry names. @throws FsError EIO when it is missing */
export function mustInode(store: InodeStore, ino: number): Inode {
  const i = store.get(ino);
  if (!i) throw new FsError('EIO', 'lookup', undefined, `directory entry points at missing inode ${ino} (run fsck.pmemfs)`);
  return i;
}

/** One name in one directory, null when absent. @throws FsError ENOTDIR, ENAMETOOLONG, EIO */
export function lookupOrNull(store: InodeStore, dir: Inode, name: string, path: string): Inode | null {
  if (!dir.isDir) throw new FsError('ENOTDIR', 'lookup', path);
  const next = dir.entry(name);
  if (next === undefined) {
    if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', 'lookup', path);
    return null;
  }
  return mustInode(store, next);
}

/** Resolve an absolute path. @throws FsError ENOENT, ENOTDIR, ENAMETOOLONG */
export function resolve(fs: PmemFs, path: string): Inode {
  let cur = fs.root();
  for (const name of splitPath(path)) cur = fs.lookup(cur, name, path);
  return cur;
}

/**
 * Parent directory and final name of a path, for an operation `op` that
 * makes or removes that name.
 * @throws FsError EBUSY (the root), ENAMETOOLONG, ENOTDIR, and as resolve
 */
export function resolveParent(fs: PmemFs, path: string, op: string): { dir: Inode; name: string } {
  const parts = splitPath(path);
  const name = parts.pop();
  if (name === undefined) throw new FsError('EBUSY', op, path, 'the root has no parent');
  if (Buffer.byteLength(name) > NAME_MAX) throw new FsError('ENAMETOOLONG', op, path);
  const dir = resolve(fs, '/' + parts.join('/'));
  if (!dir.isDir) throw new FsError('ENOTDIR', op, path);
  return { dir, name };
}

/** Directory ino → parent ino, built on first use; the root is its own parent. */
export class ParentMap {
  private parents: Map<number, number> | null = null;

  constructor(private readonly store: InodeStore) {}

  /**
   * The parent directory of a directory (the root is its own parent).
   * @throws FsError EIO when the recorded parent is not a directory (a damaged image)
   */
  parentOf(dir: Inode): Inode {
    if (dir.ino === this.store.sb.rootIno) return dir;
    if (dir.parent !== 0) {
      const p = this.store.get(dir.parent);
      if (!p?.isDir) throw new FsError('EIO', 'lookup', '..', `directory ${dir.ino} records parent ${dir.parent}, which is not a directory (run fsck.pmemfs)`);
      return p;
    }
    if (!this.parents) this.parents = buildParents(this.root(), (ino) => this.store.inodes.get(ino));
    return this.store.inodes.get(this.parents.get(dir.ino) ?? this.store.sb.rootIno) ?? this.root();
  }

  /** Whether `a` is `d` or one of its ancestors (rename of a directory into itself). @throws FsError EIO on a cycle */
  isAncestor(a: Inode, d: Inode): boolean {
    const root = this.root();
    for (let cur = d, steps = 0; steps <= this.store.sb.inodeHwm; steps++) {
      if (cur === a) return true;
      if (cur === root) return false;
      cur = this.parentOf(cur);
    }
    throw new FsError('EIO', 'rename', undefined, 'the directory tree has a cycle (run fsck.pmemfs)');
  }

  /** Directory `ino` is now in directory `parent` (mkdir, rename). */
  moved(ino: number, parent: number): void { this.parents?.set(ino, parent); }

  /** Directory `ino` is gone (rmdir, replaced by rename). */
  removed(ino: number): void { this.parents?.delete(ino); }

  private root(): Inode { return mustInode(this.store, this.store.sb.rootIno); }
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
