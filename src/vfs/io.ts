/**
 * @file The data entry points of PmemFs: read and write through an open
 * handle, fallocate, collapse/insert, unshare, clone/dedupe, the
 * copy-on-write wait before a write, fsync and statfs. Each checks what
 * the operation names (handle, inode, read-only mount), then hands the
 * bytes to src/vfs/data.ts or src/vfs/remap.ts, where the block map rules
 * live.
 *
 * Caveat: a range operation given a handle uses the handle's inode when
 * the handle is open (an unlinked file has no path), and the named target
 * otherwise (targetVia of src/vfs/handles.ts, not strict).
 */
import { constants as C } from 'node:fs';
import { FsError } from '../errors.js';
import { dataEnd } from '../format/layout.js';
import type { Inode } from '../inode/inode.js';
import { killPrivs, privsToDrop } from './attrs.js';
import { cowRuns, fallocateData, readData, shiftRange, unshareRange, writeData } from './data.js';
import type { Caller, PmemFs } from './fs.js';
import { O_ACCMODE, targetVia } from './handles.js';
import { NAME_MAX } from './lookup.js';
import { remapRange, type RemapResult } from './remap.js';

export interface StatFs { bsize: number; frsize: number; blocks: number; bfree: number; bavail: number; files: number; ffree: number; favail: number; namemax: number }

/** Read up to `len` bytes at `off` into buf; bytes read. @throws FsError EBADF, EISDIR */
export function read(fs: PmemFs, fh: number, buf: Buffer, len: number, off: number): number {
  const h = fs.handle(fh);
  if (h.inode.isDir) throw new FsError('EISDIR', 'read');
  return readData(fs.data, h.inode, buf, len, off);
}

/**
 * Write buf[bufOff, bufOff+len) at `off` (at EOF under O_APPEND) through
 * an open handle, one transaction; bytes written. On an O_DSYNC handle the
 * write is then made durable as fdatasync would (O_SYNC: as fsync). A writer without
 * CAP_FSETID (uid ≠ 0) drops set-user-ID, and set-group-ID on a
 * group-executable file, as Linux's file_remove_privs() does.
 * @throws FsError EROFS, EBADF (not open, or opened read-only), and writeData's errors
 */
export function write(fs: PmemFs, fh: number, path: string, buf: Buffer, len: number, off: number, caller: Caller, bufOff: number): number {
  fs.assertWritable('write', path);
  const h = fs.handle(fh);
  if ((h.flags & O_ACCMODE) === C.O_RDONLY) throw new FsError('EBADF', 'write', path);
  const at = h.flags & C.O_APPEND ? h.inode.size : off;
  const mode0 = h.inode.mode;
  const n = fs.ops.apply('write', [h.inode], (tx) => {
    const done = writeData(fs.data, tx, h.inode, path, buf, len, at, bufOff);
    killPrivs(tx, h.inode, caller);
    return done;
  });
  // Privileges killed here, not by a kernel SETATTR (FUSE_HANDLE_KILLPRIV_V2): the kernel's cached mode must go.
  if (h.inode.mode !== mode0) fs.externalChange(h.inode, false);
  // O_DSYNC: durable on return as fdatasync makes it (an overwrite: its range only); O_SYNC as fsync.
  // (dax=always gets no FSYNC from the kernel for them.)
  if (h.flags & C.O_DSYNC) fsync(fs, h.inode, (h.flags & C.O_SYNC) !== C.O_SYNC);
  return n;
}

/** fallocate(2) of [off, off+len) bytes. @throws FsError EROFS, and fallocateData's errors */
export async function fallocate(fs: PmemFs, t: Inode | string, mode: number, off: number, len: number, fh?: number): Promise<void> {
  const { inode, path } = targetVia(fs, t, fh, false);
  fs.assertWritable('fallocate', path);
  await fallocateData(fs.data, fs.ops.begin('fallocate', inode), inode, path, mode, off, len, fs.reapChunk);
}

/** Collapse or insert a block-aligned range (the pmemfs fcollapse/finsert ioctls). @throws FsError EROFS, and shiftRange's errors */
export async function shift(fs: PmemFs, t: Inode | string, mode: 'collapse' | 'insert', off: number, len: number, fh?: number): Promise<void> {
  const { inode, path } = targetVia(fs, t, fh, false);
  fs.assertWritable(mode, path);
  await shiftRange(fs.data, fs.ops.begin(mode, inode), inode, path, mode, off, len);
}

/** UNSHARE_RANGE (the pmemfs funshare ioctl): shared blocks of the range get their own copies. @throws FsError EROFS, and unshareRange's errors */
export async function unshare(fs: PmemFs, t: Inode | string, off: number, len: number, fh?: number): Promise<void> {
  const { inode, path } = targetVia(fs, t, fh, false);
  fs.assertWritable('unshare', path);
  await unshareRange(fs.data, fs.ops.begin('unshare', inode), inode, path, off, len);
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
export async function remap(fs: PmemFs, t: Inode | string, src: Inode, srcOff: number, dstOff: number, len: number, dedupe: boolean, caller: Caller): Promise<RemapResult> {
  const op = dedupe ? 'dedupe' : 'reflink';
  const { inode: dst, path } = fs.target(t);
  fs.assertWritable(op, path);
  const kill = dedupe ? 0 : privsToDrop(dst, caller);
  const res = await remapRange(fs.data, fs.ops.begin(op, dst, src), { src, srcPath: `(inode ${src.ino})`, dst, dstPath: path, srcOff, dstOff, len, dedupe, dropModeBits: kill });
  const st = fs.data.share;
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
export function cowWait(fs: PmemFs, fh: number, off: number, len: number): Promise<void> | null {
  if (fs.store.refcount.empty) return null;
  const h = fs.hasHandle(fh) ? fs.handle(fh) : null;
  if (!h || !h.inode.isReg) return null;
  const inode = h.inode;
  const runs = () => cowRuns(fs.data, inode, h.flags & C.O_APPEND ? inode.size : off, len);
  if (fs.guard.pinnedIn(runs()) === 0) return null;
  return fs.guard.assertLayoutMutable({ op: 'write', path: `fh ${fh}`, inode, breaks: null, runs }).then(() => undefined);
}

/**
 * fsync/fdatasync/fsyncdir: a persistence point for `inode` (null: the
 * whole filesystem, syncfs and the control directory). A directory is
 * synced by its own sequence like a file: it changed in the running
 * transaction (an entry added, removed or renamed marks it), or its entries
 * are durable and there is nothing to flush. When the inode changed in the
 * running transaction — for fdatasync, in a way it needs: size, block map,
 * not timestamps — the journal commits the whole running transaction (every
 * file's metadata and the data it orders, jbd2's behaviour), so the file,
 * its names and a directory's entries are durable on return; that flush
 * takes the log, the last checkpoint, the data the commit orders and this
 * file's overwritten data, not other files' (Journal.commit's `only`), as
 * an ext4 fsync leaves other files' dirty pages alone. Otherwise its
 * metadata is durable already and only the data its overwrites stored since
 * the last flush is written back, with one cache flush (ext4's fdatasync of
 * an overwrite); with nothing dirty, nothing is flushed — a concurrent
 * fsync whose changes an earlier commit already covered returns at once,
 * the effect of jbd2's transaction batching.
 *
 * Files with leases or pins are written by other processes through the
 * region (MAP_DIRECT, DMA), which nothing here tracks: they always commit
 * and flush every dirty page of the region file.
 * @throws FsError EIO (shut down, or the flush failed)
 */
export function fsync(fs: PmemFs, inode: Inode | null = null, datasync = false): void {
  if (fs.opts.readOnly) return;
  fs.tx.assertRunning('fsync');        // after a shutdown every fsync fails, clean files' too (XFS)
  const j = fs.tx.journal;
  if (!inode || inode.leases.length || fs.pins.pinsOfIno(inode.ino).length) {
    fs.tx.commit('fsync');
    return;
  }
  const ranges = inode.takeDirtyData(j.region.flushGen);
  if ((datasync ? inode.dataSeq : inode.metaSeq) >= j.seq) {
    fs.tx.commit('fsync', ranges);   // with this file's overwritten data; null: not known, every dirty page
    return;
  }
  if (ranges && ranges.length === 0) { fs.tx.stats.fsyncsClean++; return; }
  fs.tx.syncData(ranges);
}

/** statvfs(3) figures: sizes in blocks of bsize bytes, inode slots for files. */
export function statfs(fs: PmemFs): StatFs {
  const sb = fs.store.sb;
  const a = fs.store.alloc;
  const files = sb.inodeCount;
  const ffree = files - fs.store.inodesInUse;
  return {
    bsize: sb.blockSize, frsize: sb.blockSize, blocks: dataEnd(sb) - sb.dataStart,
    bfree: a.freeBlocks, bavail: Math.max(0, a.freeBlocks - a.reserve), files, ffree, favail: ffree, namemax: NAME_MAX,
  };
}

