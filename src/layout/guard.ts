/**
 * @file The layout guard: the one place every block-map change passes.
 * It is the S_IOMAP_IMMUTABLE patch's single check in xfs_bmapi_write(),
 * joined with the "dma vs truncate" busy-page check (dax_layout_busy_page and
 * xfs_break_dax_layouts, linux fs/dax.c and fs/xfs/xfs_file.c):
 *
 *  1. a sealed block map (persistent seal or lease) may not change: ETXTBSY;
 *  2. blocks about to be freed, moved or re-pointed may not be pinned:
 *     busy=refuse → ETXTBSY at once; busy=wait → wait for a pin release
 *     without blocking other requests, re-check (a new pin may have come),
 *     and give up with ETXTBSY after busy_timeout, or with EINTR as soon
 *     as the kernel interrupts the waiting request (src/layout/interrupt.ts).
 *     Either way the change is not made: the caller gets no permit.
 *
 * Only this module can create LayoutPermit values (it holds the one mint,
 * src/bmap/bmap.ts), and BlockMap's mutators refuse anything else, so no
 * path can change a block map without passing here.
 */
import type { Logger } from 'pino';
import { HOLE, takePermitMint, type LayoutPermit } from '../bmap/bmap.js';
import { FsError } from '../errors.js';
import type { PinRegistry } from './busy.js';
import { requestSignal, unlessInterrupted } from './interrupt.js';
import type { Inode } from '../inode/inode.js';

export type BusyPolicy = 'refuse' | 'wait';

export interface GuardOptions { busy: BusyPolicy; busyTimeoutMs: number }

/** A layout change about to happen: blocks [start, start+count) of the file lose their current mapping. */
export interface LayoutChange {
  op: string;
  path: string;
  inode: Inode;
  /** File blocks whose mapped region blocks would be freed/moved; null when only holes are filled. */
  breaks: { start: number; count: number } | null;
  /** Seal-time filling runs before the seal flag is set; nothing else may skip the seal check. */
  ignoreSeal?: boolean;
  /**
   * Region runs the change re-points or shares besides those of `breaks`:
   * the shared blocks a copy-on-write moves away from, a reflink's source
   * blocks (recomputed at every check).
   */
  runs?: () => Array<{ start: number; len: number }>;
}

export interface GuardStats { refused: number; waited: number; waitTimeouts: number; waitsInterrupted: number; waitMsTotal: number }

export class LayoutGuard {
  readonly stats: GuardStats = { refused: 0, waited: 0, waitTimeouts: 0, waitsInterrupted: 0, waitMsTotal: 0 };
  /**
   * Set by PmemFs: whether an inode is still the one in the store under its
   * number. A change that waited for busy pages revalidates with it before
   * it gets its permit (ESTALE when the file was freed meanwhile).
   */
  isLive: ((inode: Inode) => boolean) | null = null;

  constructor(private readonly pins: PinRegistry, private readonly opts: GuardOptions, private readonly log: Logger) {}

  /** Refuse if the inode's block map is sealed. @throws FsError ETXTBSY */
  assertNotSealed(c: Pick<LayoutChange, 'op' | 'path' | 'inode'>): void {
    const kind = c.inode.sealKind;
    if (kind !== 'none') {
      this.stats.refused++;
      this.log.info({ op: c.op, ino: c.inode.ino, untrusted: { path: c.path }, reason: `sealed (${kind})` }, 'layout change refused');
      throw new FsError('ETXTBSY', c.op, c.path, `block map sealed (${kind})`);
    }
  }

  /** Pins on the region blocks currently mapped at the file blocks of c.breaks. */
  private busyPins(c: LayoutChange): number {
    if (this.pins.size === 0) return 0;
    let n = 0;
    if (c.breaks) {
      for (const seg of c.inode.bmap.map(c.breaks.start, c.breaks.count)) {
        if (seg.regionBlock !== HOLE) n += this.pins.busy(seg.regionBlock, seg.len).length;
      }
    }
    if (c.runs) n += this.pinnedIn(c.runs());
    return n;
  }

  /** Pins on any of these region runs (blocks). */
  pinnedIn(runs: Array<{ start: number; len: number }>): number {
    if (this.pins.size === 0) return 0;
    let n = 0;
    for (const r of runs) n += this.pins.busy(r.start, r.len).length;
    return n;
  }

  /**
   * Permit for a copy-on-write inside a synchronous operation (a write over
   * shared blocks): refused with ETXTBSY when any of the shared runs is
   * pinned, whatever the busy policy — under busy=wait the caller waits with
   * assertLayoutMutable({ runs }) first (PmemFs.cowWait), so this finds none.
   * @throws FsError ETXTBSY (sealed, or a shared block pinned)
   */
  cowPermit(c: Pick<LayoutChange, 'op' | 'path' | 'inode'>, runs: Array<{ start: number; len: number }>): LayoutPermit {
    this.assertNotSealed(c);
    if (this.pinnedIn(runs)) {
      this.stats.refused++;
      this.log.info({ op: c.op, ino: c.inode.ino, untrusted: { path: c.path }, reason: 'busy pages (copy-on-write)' }, 'layout change refused');
      throw new FsError('ETXTBSY', c.op, c.path, 'copy-on-write of pinned shared blocks');
    }
    return permit(c.inode);
  }

  /**
   * The guard. Resolves to a permit once the change may proceed; the caller
   * must then make the change without awaiting anything else, so that what
   * was checked still holds.
   * @throws FsError ETXTBSY (sealed, or busy pages with busy=refuse or after
   *   busy_timeout), EINTR (the request was interrupted while it waited)
   */
  async assertLayoutMutable(c: LayoutChange): Promise<LayoutPermit> {
    if (!c.ignoreSeal) this.assertNotSealed(c);
    if (this.busyPins(c) === 0) return permit(c.inode);
    if (this.opts.busy === 'refuse') {
      this.stats.refused++;
      this.log.info({ op: c.op, ino: c.inode.ino, untrusted: { path: c.path }, reason: 'busy pages' }, 'layout change refused');
      throw new FsError('ETXTBSY', c.op, c.path, 'pages pinned (busy=refuse)');
    }
    const t0 = Date.now();
    const deadline = t0 + this.opts.busyTimeoutMs;
    const signal = requestSignal();
    this.stats.waited++;
    this.log.info({ op: c.op, ino: c.inode.ino, untrusted: { path: c.path } }, 'layout change waits for busy pages');
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) {
        this.stats.waitTimeouts++;
        this.stats.waitMsTotal += Date.now() - t0;
        this.log.info({ op: c.op, ino: c.inode.ino, waitedMs: Date.now() - t0 }, 'busy_timeout: layout change refused');
        throw new FsError('ETXTBSY', c.op, c.path, `pages still pinned after busy_timeout=${this.opts.busyTimeoutMs}ms`);
      }
      if (await unlessInterrupted(this.pins.waitForRelease(left), signal) === 'interrupted') {
        this.stats.waitsInterrupted++;
        this.stats.waitMsTotal += Date.now() - t0;
        this.log.info({ op: c.op, ino: c.inode.ino, waitedMs: Date.now() - t0 }, 'interrupted: layout change abandoned');
        throw new FsError('EINTR', c.op, c.path, 'interrupted while waiting for busy pages');
      }
      // Prepare's look-ups are stale after a wait: the inode may have been freed meanwhile.
      if (this.isLive && !this.isLive(c.inode)) {
        this.stats.waitMsTotal += Date.now() - t0;
        throw new FsError('ESTALE', c.op, c.path, 'the file was removed while the change waited for busy pages');
      }
      if (!c.ignoreSeal) this.assertNotSealed(c);
      if (this.busyPins(c) === 0) {
        this.stats.waitMsTotal += Date.now() - t0;
        return permit(c.inode);
      }
    }
  }

  /**
   * Permit for changes that only fill holes (allocation on write, fallocate)
   * of an unsealed file: no mapped block moves, so pins are irrelevant.
   * @throws FsError ETXTBSY when sealed
   */
  allocPermit(c: Pick<LayoutChange, 'op' | 'path' | 'inode'>): LayoutPermit {
    this.assertNotSealed(c);
    return permit(c.inode);
  }

  /** Permit for seal-time filling and for freeing an unreferenced inode's blocks (callers check pins themselves). */
  internalPermit(inode: Inode): LayoutPermit { return permit(inode); }
}

const mint = takePermitMint();
function permit(inode: Inode): LayoutPermit {
  return mint(inode.ino);
}
