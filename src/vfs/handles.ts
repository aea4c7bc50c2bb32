/**
 * @file Open file handles: the FUSE fh number space of regular opens, and
 * open/create/release. A handle holds its inode: an unlinked file stays
 * (an orphan, src/vfs/orphans.ts) until its last handle is released.
 *
 * Caveat: a handle records the open flags and the opener's pid; access
 * checks on them are made by the callers (write, src/op/permissions.ts),
 * not here.
 */
import { constants as C } from 'node:fs';
import { FsError } from '../errors.js';
import { S_IFREG, type Inode } from '../inode/inode.js';
import type { Caller, PmemFs } from './fs.js';

export const O_ACCMODE = 3;

/**
 * File handle numbers (FUSE fh of regular opens) are 1 .. FILE_FH_LIMIT-1,
 * never reused; control-file handles live in [FILE_FH_LIMIT, 2^48) and
 * directory handles from 2^48 (src/vfs/ctl.ts, src/fuse/lowlevel.ts), so a
 * number handed out by one space never names an object of another.
 */
export const FILE_FH_LIMIT = 2 ** 47;

export interface Handle { fh: number; inode: Inode; flags: number; pid: number }

/** The open handles by number; each one counts in its inode's openCount. */
export class HandleTable {
  private readonly byFh = new Map<number, Handle>();
  private nextFh = 1;

  /** A new handle on `inode`. @throws FsError EMFILE when the number space is used up */
  add(inode: Inode, flags: number, pid: number): Handle {
    if (this.nextFh >= FILE_FH_LIMIT) throw new FsError('EMFILE', 'open', undefined, 'file handle numbers exhausted: remount');
    const h: Handle = { fh: this.nextFh++, inode, flags, pid };
    this.byFh.set(h.fh, h);
    inode.openCount++;
    return h;
  }

  /** @throws FsError EBADF when `fh` is not open */
  get(fh: number): Handle {
    const h = this.byFh.get(fh);
    if (!h) throw new FsError('EBADF', 'handle', undefined, `no open handle ${fh}`);
    return h;
  }

  has(fh: number): boolean { return this.byFh.has(fh); }

  /** Handle `fh` when it is open on `inode`, else null. */
  onInode(fh: number, inode: Inode): Handle | null {
    const h = this.byFh.get(fh);
    return h && h.inode === inode ? h : null;
  }

  /** Close `fh`: the handle it was, or undefined when it was not open. */
  close(fh: number): Handle | undefined {
    const h = this.byFh.get(fh);
    if (!h) return undefined;
    this.byFh.delete(fh);
    h.inode.openCount--;
    return h;
  }

  /** Forget every handle (unmount; inode open counts are reset by the caller). */
  clear(): void { this.byFh.clear(); }
}

/**
 * open(2) of an existing inode. A read-only open is allowed on a
 * read-only mount and on a directory; anything else is not.
 * @throws FsError EROFS, EISDIR, EMFILE, and as PmemFs.target
 */
export function open(fs: PmemFs, t: Inode | string, flags: number, caller: Caller): Handle {
  const { inode, path } = fs.target(t);
  if ((flags & O_ACCMODE) !== C.O_RDONLY) {
    fs.assertWritable('open', path);
    if (inode.isDir) throw new FsError('EISDIR', 'open', path);
  }
  return fs.openInode(inode, flags, caller);
}

/** A new regular file at `path`, opened. @throws FsError as PmemFs.mknod, EMFILE */
export function create(fs: PmemFs, path: string, mode: number, flags: number, caller: Caller): Handle {
  const inode = fs.mknod(path, S_IFREG | (mode & 0o7777), 0, caller);
  return fs.openInode(inode, flags, caller);
}

/** Close `fh` (not open: nothing); the last holder of an unlinked file lets it be freed. */
export function release(fs: PmemFs, handles: HandleTable, fh: number): void {
  const h = handles.close(fh);
  if (h && h.inode.nlink === 0) fs.ops.apply('release', [h.inode], (tx) => fs.maybeReap(tx, h.inode));
}

/**
 * PmemFs.target(), or the inode behind open handle `fh` when one is given
 * (an unlinked file is reached only through its handle). `strict`: a
 * handle that is not open is EBADF; otherwise `t` is used instead.
 * @throws FsError EBADF (strict), and as PmemFs.target
 */
export function targetVia(fs: PmemFs, t: Inode | string, fh: number | undefined, strict: boolean): { inode: Inode; path: string } {
  if (fh === undefined || (!strict && !fs.hasHandle(fh))) return fs.target(t);
  return { inode: fs.handle(fh).inode, path: typeof t === 'string' ? t : `inode ${t.ino}` };
}
