/**
 * @file The inode store: inode slots in the inode table and their forks.
 * All inodes below the superblock's high-water mark are loaded at mount and
 * kept in core; the store writes them back when a transaction commits.
 *
 * Fork placement: a fork that fits INLINE_FORK_MAX bytes is stored in the
 * slot. A larger one gets a fresh extent on every rewrite (copy-on-write):
 * new fork written → slot rewritten to point at it → old extent freed. A
 * crash in between leaves the old fork referenced and the new one leaked
 * (found and freed by the recovery scan), never a half-written fork in use.
 */
import { Allocator, type BlockRun } from '../alloc/allocator.js';
import { BlockMap } from '../bmap/bmap.js';
import { decodeFork, encodeFork, type Fork } from '../format/fork.js';
import {
  crc32c, decodeInode, encodeInode, encodeSuperblock, FormatError, INLINE_FORK_MAX, INODE_SIZE,
  isFreeSlot, type InodeRecord, type Superblock,
} from '../format/layout.js';
import type { Region } from '../region/region.js';
import { FsError } from '../errors.js';
import { blockCount, regionBlock, regionOff } from '../types.js';
import { Inode } from './inode.js';

export class InodeStore {
  readonly sb: Superblock;
  readonly region: Region;
  readonly alloc: Allocator;
  readonly inodes = new Map<number, Inode>();
  private freeSlots: number[] = [];   // inode numbers below the high-water mark, unused

  constructor(sb: Superblock, region: Region, alloc: Allocator) {
    this.sb = sb; this.region = region; this.alloc = alloc;
  }

  private slotOff(ino: number): number { return this.sb.itableStart * this.sb.blockSize + (ino - 1) * INODE_SIZE; }

  /**
   * Load every used slot below the high-water mark.
   * @returns the problems found (a slot that does not decode is reported, not loaded)
   */
  loadAll(): string[] {
    const problems: string[] = [];
    const n = this.sb.inodeHwm;
    const table = this.region.readBuf(regionOff(this.slotOff(1)), n * INODE_SIZE);
    for (let ino = 1; ino <= n; ino++) {
      const raw = table.subarray((ino - 1) * INODE_SIZE, ino * INODE_SIZE);
      if (isFreeSlot(raw)) { if (ino > 1) this.freeSlots.push(ino); continue; }
      try {
        this.inodes.set(ino, this.decode(raw, ino));
      } catch (e) {
        if (!(e instanceof FormatError)) throw e;
        problems.push(e.message);
      }
    }
    this.freeSlots.reverse(); // pop() hands out the lowest number first
    return problems;
  }

  private decode(raw: Buffer, ino: number): Inode {
    const { rec, inlineFork } = decodeInode(raw, ino);
    let forkBuf = inlineFork;
    if (!forkBuf) {
      const bs = this.sb.blockSize;
      if (rec.forkBlock < this.sb.dataStart || rec.forkBlock + rec.forkBlocks > this.sb.totalBlocks || rec.forkLen > rec.forkBlocks * bs) {
        throw new FormatError(`inode ${ino}: fork extent [${rec.forkBlock}, +${rec.forkBlocks}) outside the data area`);
      }
      forkBuf = this.region.readBuf(regionOff(rec.forkBlock * bs), rec.forkLen);
    }
    if ((crc32c(forkBuf) >>> 0) !== rec.forkCrc) throw new FormatError(`inode ${ino}: fork checksum mismatch`);
    const fork = decodeFork(forkBuf, `inode ${ino}`);
    const inode = new Inode(ino, rec.mode, rec.uid, rec.gid);
    Object.assign(inode, {
      nlink: rec.nlink, size: rec.size, atime: rec.atime, mtime: rec.mtime, ctime: rec.ctime, btime: rec.btime,
      flags: rec.flags, generation: rec.generation, rdev: rec.rdev, forkBlock: rec.forkBlock, forkBlocks: rec.forkBlocks,
    });
    inode.bmap = new BlockMap(fork.extents);
    inode.xattrs = fork.xattrs;
    inode.dirents = inode.isDir ? (fork.dirents ?? new Map()) : null;
    inode.symlink = fork.symlink;
    return inode;
  }

  /**
   * Claim an unused inode number.
   * @throws FsError ENOSPC when the inode table is full
   */
  allocIno(): number {
    const slot = this.freeSlots.pop();
    if (slot !== undefined) return slot;
    if (this.sb.inodeHwm >= this.sb.inodeCount) throw new FsError('ENOSPC', 'create', undefined, `all ${this.sb.inodeCount} inodes in use`);
    this.sb.inodeHwm += 1;
    this.writeSuperblock();
    return this.sb.inodeHwm;
  }

  nextGeneration(): number { return (this.sb.generation = (this.sb.generation + 1) >>> 0); }

  /** Runs of region blocks an inode references (data extents and its fork extent). */
  static usedRuns(inode: Inode): BlockRun[] {
    const runs: BlockRun[] = inode.bmap.extents.map((e) => ({ start: regionBlock(e.regionBlock), len: blockCount(e.len) }));
    if (inode.forkBlock) runs.push({ start: regionBlock(inode.forkBlock), len: blockCount(inode.forkBlocks) });
    return runs;
  }

  /**
   * Write an inode back: its fork (inline, or copy-on-write to a new extent)
   * and its slot. Returns the old fork extent, which the caller frees after
   * the slot is written (the transaction does this).
   * @throws FsError ENOSPC if a fork extent cannot be allocated
   */
  write(inode: Inode): BlockRun | null {
    const fork: Fork = { extents: inode.bmap.toRecords(), xattrs: inode.xattrs, dirents: inode.dirents, symlink: inode.symlink };
    const buf = encodeFork(fork);
    const old = inode.forkBlock ? { start: regionBlock(inode.forkBlock), len: blockCount(inode.forkBlocks) } : null;
    let inline: Buffer | null = buf;
    if (buf.length > INLINE_FORK_MAX) {
      const bs = this.sb.blockSize;
      const nblk = Math.ceil(buf.length / bs);
      const run = this.alloc.allocContig(nblk, old ? old.start + old.len : this.sb.dataStart, true);
      this.region.write(regionOff(run.start * bs), buf, 0, buf.length);
      inode.forkBlock = run.start; inode.forkBlocks = nblk;
      inline = null;
    } else {
      inode.forkBlock = 0; inode.forkBlocks = 0;
    }
    const rec: InodeRecord = {
      ino: inode.ino, mode: inode.mode, uid: inode.uid, gid: inode.gid, nlink: inode.nlink, size: inode.size,
      atime: inode.atime, mtime: inode.mtime, ctime: inode.ctime, btime: inode.btime, flags: inode.flags,
      generation: inode.generation, rdev: inode.rdev, forkLen: buf.length, forkCrc: crc32c(buf) >>> 0,
      forkBlock: inode.forkBlock, forkBlocks: inode.forkBlocks,
    };
    this.region.write(regionOff(this.slotOff(inode.ino)), encodeInode(rec, inline), 0, INODE_SIZE);
    return old;
  }

  /** Clear an inode's slot; returns its fork extent for the caller to free. */
  clear(inode: Inode): BlockRun | null {
    this.region.zero(regionOff(this.slotOff(inode.ino)), INODE_SIZE);
    this.inodes.delete(inode.ino);
    this.freeSlots.push(inode.ino);
    return inode.forkBlock ? { start: regionBlock(inode.forkBlock), len: blockCount(inode.forkBlocks) } : null;
  }

  writeSuperblock(): void {
    this.region.write(regionOff(0), encodeSuperblock(this.sb), 0, 512);
  }

  /** Persistence point for the superblock alone (mount state changes). */
  persistSuperblock(): void {
    this.writeSuperblock();
    this.region.persist('superblock', regionOff(0), 512);
  }
}
