/**
 * @file Orphans: inodes with no name left. One is freed when nothing holds
 * it (no handle, lease or pin); until then it is flagged IFLAG_ORPHAN on
 * the media, so a crash leaves it for the next mount to free.
 *
 * No operation is larger than the log: an orphan with more extent records
 * than one transaction may free (OrphanReaper.chunk) is freed from its end
 * a bounded transaction at a time, right after the operation that let it
 * go (TxManager.afterOp), or at mount and unmount (freeAll).
 *
 * A truncate that frees more records than that works the same way, as
 * ext4 puts a truncating inode on its orphan list: the size and the first
 * chunk go in the truncate's transaction, together with IFLAG_ORPHAN on an
 * inode that still has names; the blocks past EOF are freed a chunk per
 * transaction after it, and the last one clears the flag. A crash in
 * between leaves a named, flagged inode, whose blocks past EOF the next
 * mount frees.
 */
import type { Logger } from 'pino';
import { IFLAG_ORPHAN } from '../format/layout.js';
import { NO_LEASES, type Inode } from '../inode/inode.js';
import type { InodeStore } from '../inode/store.js';
import type { Transaction } from '../journal/tx.js';
import type { Operations } from '../op/operation.js';
import type { PinRegistry } from '../layout/busy.js';
import type { LayoutGuard } from '../layout/guard.js';
import { releaseAllBlocks, releaseTail, releaseTailFrom } from '../layout/mapping.js';

export class OrphanReaper {
  /** Unlinked, unheld inodes too large to free in one transaction (maybeReap), freed by drain. */
  private readonly pending = new Set<Inode>();
  /** Named inodes with blocks past EOF still to free after a large truncate (truncateLater). */
  private readonly trims = new Set<Inode>();
  private draining = false;

  constructor(private readonly p: { store: InodeStore; ops: Operations; guard: LayoutGuard; pins: PinRegistry; log: Logger }) {}

  /**
   * Most extent records one transaction frees: an eighth of the log's
   * blocks, so that a step's metadata (a bitmap block or two per extent, a
   * share of the block map's record blocks) always fits the log.
   */
  get chunk(): number { return Math.max(8, Math.floor(this.p.store.sb.journalBlocks / 8)); }

  /**
   * Free an unlinked inode if nothing holds it, else mark it an orphan
   * (freed at last release, or at next mount). An inode with more extent
   * records than one transaction may free (chunk) is marked an orphan in
   * this one and freed by drain right after it, a bounded transaction at a
   * time: a crash in between leaves an orphan that the next mount goes on
   * freeing (ext4's orphan list, XFS's rolled xfs_itruncate_extents +
   * xfs_inactive).
   */
  maybeReap(tx: Transaction, inode: Inode): void {
    if (inode.nlink > 0) return;
    const held = inode.openCount > 0 || inode.leases.length > 0 || this.p.pins.pinsOfIno(inode.ino).length > 0;
    if (held || inode.bmap.count > this.chunk) {
      if (!inode.orphan) { inode.flags |= IFLAG_ORPHAN; tx.markDirty(inode); }
      if (!held) this.pending.add(inode);
      return;
    }
    releaseAllBlocks(tx, inode, this.p.guard.internalPermit(inode));
    tx.drop(inode);
  }

  /**
   * A truncate left blocks past EOF mapped (more records than one
   * transaction frees): flag the inode in the truncate's transaction and
   * free them right after it.
   */
  truncateLater(tx: Transaction, inode: Inode): void {
    if (!inode.orphan) { inode.flags |= IFLAG_ORPHAN; tx.markDirty(inode); }
    this.trims.add(inode);
  }

  /** TxManager.afterOp: drain what the operation just committed queued (not from inside a drain). */
  afterOp(): void {
    if ((this.pending.size || this.trims.size) && !this.draining) this.drain();
  }

  /** Free a flagged, named inode's blocks past EOF, a chunk per transaction; the last clears the flag. */
  private trim(inode: Inode): void {
    const { store, ops, guard } = this.p;
    const permit = guard.internalPermit(inode);
    const from = Math.ceil(inode.size / store.sb.blockSize);
    const op = ops.begin('trim past EOF', inode);
    for (let more = true; more && store.inodes.get(inode.ino) === inode;) {
      op.roll((t) => {
        more = releaseTailFrom(t, inode, permit, from, this.chunk);
        if (!more && inode.nlink > 0) inode.flags &= ~IFLAG_ORPHAN;
      });
    }
  }

  /**
   * Free the large orphans maybeReap queued, chunk extents per transaction
   * from the end of the file, the inode itself in the last one.
   */
  drain(): void {
    const { store, ops, guard, log } = this.p;
    this.draining = true;
    try {
      for (const inode of this.trims) {
        this.trims.delete(inode);
        try { this.trim(inode); } catch (err) { log.error({ err, ino: inode.ino }, 'freeing blocks past EOF after a truncate failed; the next mount goes on'); }
      }
      for (const inode of this.pending) {
        this.pending.delete(inode);
        const permit = guard.internalPermit(inode);
        try {
          const op = ops.begin('free orphan', inode);
          while (store.inodes.get(inode.ino) === inode) {
            op.roll((t) => { if (releaseTail(t, inode, permit, this.chunk) === 0) t.drop(inode); });
          }
        } catch (err) {
          // The operation that queued it has committed: it stays an orphan, which the next mount frees.
          log.error({ err, ino: inode.ino }, 'freeing a large orphan failed; the next mount goes on');
        }
      }
    } finally {
      this.draining = false;
    }
  }

  /**
   * Unmount, and orphan recovery at mount (handles and pins already
   * dropped): drop every open count and lease, then free every orphan,
   * each in operations of its own (a crash part-way leaves the rest
   * flagged for the next mount).
   */
  freeAll(): void {
    const { store, ops } = this.p;
    const orphans: Inode[] = [];
    for (const inode of store.inodes.values()) {
      inode.openCount = 0; inode.leases = NO_LEASES;
      if (inode.nlink === 0) orphans.push(inode);
    }
    for (const inode of orphans) if (store.inodes.get(inode.ino) === inode) ops.apply('free orphan', [inode], (t) => this.maybeReap(t, inode));
    // Named inodes still flagged: a large truncate the power cut short.
    for (const inode of [...store.inodes.values()]) if (inode.nlink > 0 && inode.orphan) this.trim(inode);
  }
}
