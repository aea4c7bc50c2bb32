/**
 * @file Taking and dropping pins: the DMA / get_user_pages() side of "dax:
 * fix dma vs truncate/hole-punch". Pinning a file range first fills its holes
 * inside EOF (as a write fault would) and, for a pin that may be written
 * (through a handle open for writing: get_user_pages with FOLL_WRITE),
 * unshares reflinked blocks (a DAX write fault's copy-on-write), then records
 * one pin per physical extent in the registry. A read pin keeps shared
 * blocks shared: while it holds them, a copy-on-write away from them (a write
 * to either file) is a layout change over busy pages. The layout guard
 * consults the registry; unlinked
 * files stay allocated until their last pin goes.
 */
import type { Logger } from 'pino';
import { HOLE } from '../bmap/bmap.js';
import { FsError } from '../errors.js';
import { EXT_UNWRITTEN } from '../format/fork.js';
import { copyOnWrite, makeMapped } from '../layout/mapping.js';
import type { Caller, PmemFs } from '../vfs/fs.js';
import type { Inode } from '../inode/inode.js';
import type { Pin, PinHolder, PinRegistry } from '../layout/busy.js';

/**
 * What the pin's holder may do with the pages, from the handle it pinned
 * through: 'read' (a handle not open for writing: never allocates, so a
 * hole or unwritten extent in the range is EBADF; shared blocks stay
 * shared), 'write' (fills holes, unshares shared blocks first, as a write
 * fault would), 'fill' (the administrator's pin: fills holes, keeps sharing).
 */
export type PinAccess = 'read' | 'write' | 'fill';

export interface PinStats { pinned: number; unpinned: number; holderDeaths: number }

export class PinManager {
  readonly stats: PinStats = { pinned: 0, unpinned: 0, holderDeaths: 0 };

  constructor(private readonly fs: PmemFs, private readonly reg: PinRegistry, private readonly log: Logger) {}

  /**
   * Pin file bytes [off, off+len) of inode for holder; `max` caps how many
   * physical extents (= pins) one call creates (the ioctl's record array);
   * the caller continues from off + done. `access`: see PinAccess.
   * @returns the pins made and how many bytes from off they cover
   * @throws FsError EINVAL (bad range), ENXIO (beyond EOF), ENOSPC (filling holes), EAGAIN (limits),
   *   EBADF ('read': a hole or unwritten extent in the range), ETXTBSY ('write': a shared block to unshare is pinned already)
   */
  pin(inode: Inode, path: string, off: number, len: number, holder: PinHolder, max = Infinity, access: PinAccess = 'fill'): { pins: Pin[]; done: number } {
    if (!inode.isReg) throw new FsError('EINVAL', 'pin', path, 'only regular files can be pinned');
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len <= 0) throw new FsError('EINVAL', 'pin', path, `offset ${off} length ${len}`);
    if (off + len > inode.size) throw new FsError('ENXIO', 'pin', path, `range ends at ${off + len}, beyond EOF ${inode.size}`);
    const bs = this.fs.blockSize;
    if (access === 'read') this.assertMapped(inode, path, off, len);
    else this.makeWritable(inode, path, off, len, access === 'write');
    const fb0 = Math.floor(off / bs);
    const pins: Pin[] = [];
    let done = 0;
    try {
      for (const seg of inode.bmap.map(fb0, Math.ceil((off + len) / bs) - fb0)) {
        if (pins.length >= max) break;
        const s = Math.max(off, seg.fileBlock * bs), e = Math.min(off + len, (seg.fileBlock + seg.len) * bs);
        pins.push(this.reg.add({
          ino: inode.ino, fileOff: s, len: e - s, phys: seg.regionBlock * bs + (s - seg.fileBlock * bs),
          startBlock: seg.regionBlock + Math.floor((s - seg.fileBlock * bs) / bs),
          blocks: Math.ceil(e / bs) - Math.floor(s / bs), holder,
        }));
        done = e - off;
      }
    } catch (e) {
      // A limit reached part-way (EAGAIN): the call pins nothing. Holes it filled stay filled (zeroes: no data changes).
      for (const p of pins) this.reg.remove(p.id);
      throw e;
    }
    this.stats.pinned += pins.length;
    this.log.info({ ino: inode.ino, off, len: done, pins: pins.map((p) => p.id), holder }, 'pinned');
    return { pins, done };
  }

  /** Whether file bytes [off, off+len) have a hole or an unwritten extent (what a pin would have to fill). */
  private needsFill(inode: Inode, off: number, len: number): boolean {
    const bs = this.fs.blockSize;
    const fb0 = Math.floor(off / bs), fb1 = Math.ceil((off + len) / bs);
    return inode.bmap.map(fb0, fb1 - fb0).some((s) => s.regionBlock === HOLE || (s.flags & EXT_UNWRITTEN) !== 0);
  }

  /** A read-only pin never allocates. @throws FsError EBADF when the range has a hole or an unwritten extent */
  private assertMapped(inode: Inode, path: string, off: number, len: number): void {
    if (this.needsFill(inode, off, len)) throw new FsError('EBADF', 'pin', path, 'the range has holes: pinning them allocates, which needs the file open for writing');
  }

  /**
   * What a write fault does before the pages are handed out, in one
   * transaction: holes and unwritten extents in the range become written
   * zeroes, and for a pin that may be stored through (`unshare`) shared
   * blocks get copies of their own. All or nothing: a pinned shared block
   * (ETXTBSY) or ENOSPC leaves the holes as they were.
   * @throws FsError ETXTBSY (sealed, or a shared block to copy is pinned), ENOSPC
   */
  private makeWritable(inode: Inode, path: string, off: number, len: number, unshare: boolean): void {
    const bs = this.fs.blockSize;
    const fb0 = Math.floor(off / bs), fb1 = Math.ceil((off + len) / bs);
    const fill = this.needsFill(inode, off, len);
    // Nothing shared in the region, or nothing to fill: no operation at all.
    const copy = unshare && !this.fs.data.refs.empty;
    if (!fill && !copy) return;
    const permit = fill ? this.fs.guard.allocPermit({ op: 'pin', path, inode }) : null;
    const changed = this.fs.ops.apply('pin', [inode], (tx) => {
      if (permit) makeMapped(this.fs.data, tx, inode, permit, fb0, fb1);
      return (copy ? copyOnWrite(this.fs.data, tx, inode, path, 'pin', fb0, fb1) : 0) > 0 || permit !== null;
    });
    if (changed) this.fs.externalChange(inode, false);   // st_blocks grew, or blocks moved
  }

  /**
   * Drop a pin. A process may drop only its own pins; root may drop any.
   * @throws FsError EINVAL (no such pin), EPERM (someone else's)
   */
  unpin(id: number, caller: Caller): void {
    const p = this.reg.get(id);
    if (!p) throw new FsError('EINVAL', 'unpin', undefined, `no pin ${id}`);
    if (caller.uid !== 0 && !(p.holder.kind === 'pid' && p.holder.pid === caller.pid)) {
      throw new FsError('EPERM', 'unpin', undefined, `pin ${id} belongs to ${p.holder.kind === 'pid' ? `pid ${p.holder.pid}` : 'admin'}`);
    }
    this.drop([this.reg.remove(id)!]);
  }

  /** A holder exited: its pins go. */
  holderDied(pid: number): void {
    const gone = this.reg.removeHolder(pid);
    if (!gone.length) return;
    this.stats.holderDeaths++;
    this.log.info({ holder: pid, pins: gone.length }, 'pin holder exited: pins released');
    this.drop(gone, false);
  }

  /** After pins went: count them and reap unlinked inodes left without holds. */
  private drop(pins: Pin[], count = true): void {
    if (count) this.stats.unpinned += pins.length;
    const inos = new Set(pins.map((p) => p.ino));
    // The inodes are looked up inside the apply step: nothing was resolved before it to go stale.
    this.fs.ops.apply('unpin', [], (tx) => {
      for (const ino of inos) {
        const inode = this.fs.inodeOf(ino);
        if (inode && inode.nlink === 0) this.fs.maybeReap(tx, inode);
      }
    });
    // A device (the DMA emulator) may have stored into the pinned pages behind the
    // kernel's back: a dax=never page cache must read them again.
    for (const ino of inos) {
      const inode = this.fs.inodeOf(ino);
      if (inode) this.fs.externalChange(inode, true);
    }
  }

  /** Lines for MNT/.pmemfs/busy, in the contract's format. */
  busyLines(pathOf: (ino: number) => string): string[] {
    const now = Date.now();
    return this.reg.all().map((p) => {
      const overlapping = this.reg.busy(p.startBlock, p.blocks).length;
      const holder = p.holder.kind === 'admin' ? 'admin' : `pid:${p.holder.pid}`;
      return `id=${p.id} ino=${p.ino} path=${pathOf(p.ino)} off=${p.fileOff} len=${p.len} phys=0x${p.phys.toString(16)} pins=${overlapping} holder=${holder} age_ms=${now - p.created}`;
    });
  }
}
