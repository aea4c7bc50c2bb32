/**
 * @file The write-ahead journal: the running transaction's metadata block
 * images, the commit that logs and checkpoints them, and recovery.
 *
 * Metadata is never stored in place before it is committed: operations put
 * whole-block images here (`modify`, `put`), and the region's home blocks
 * keep the last committed state until the checkpoint. Ordering rules, all
 * enforced in `commit()`:
 *
 *  1. Ordered data: every unflushed page — file data written into blocks the
 *     new metadata points at, and the previous checkpoint — is flushed
 *     first (Region.persistDirty), so committed metadata never points at data
 *     that did not reach the media, and the log may be overwritten.
 *  2. Write-ahead: descriptor and image blocks are written to the log and
 *     flushed; then the commit block is written and flushed. Only then is the
 *     transaction durable, and only then are the images written home
 *     (checkpoint); those stores are flushed by step 1 of the next commit.
 *  3. Busy extents: blocks freed by the transaction return to the allocator
 *     only after step 2 (Allocator.commitDone), so nothing overwrites a block
 *     the durable metadata may still reference.
 *  4. CLEAN: the superblock's clean state is written by unmount only after a
 *     commit and a flush of everything (src/vfs/mount.ts).
 *
 * The log holds one transaction at a time (src/format/journal.ts); recovery
 * replays it when its commit block and checksums are whole, which is
 * idempotent because home blocks hold either the previous state or this one.
 *
 * Operation-level undo: between beginOp() and endOp(), the first change of
 * each block keeps the block's previous image, so a failed operation is
 * undone with rollbackOp().
 */
import { encodeLogTx, logBlocksFor, scanLog, type LogScan } from '../format/journal.js';
import type { Region } from '../region/region.js';
import { regionOff } from '../types.js';

export interface JournalGeometry { blockSize: number; journalStart: number; journalBlocks: number; totalBlocks: number; dataStart: number }

export interface JournalStats { commits: number; imagesLogged: number; emptyCommits: number; replayed: number }

export class Journal {
  readonly geo: JournalGeometry;
  readonly region: Region;
  private readonly images = new Map<number, Buffer>();
  private pre: Map<number, Buffer | null> | null = null;
  /** Sequence number the next commit gets. */
  seq: number;
  readonly stats: JournalStats = { commits: 0, imagesLogged: 0, emptyCommits: 0, replayed: 0 };
  /** Test hook: called before every block-image change of an operation; may throw (failure injection). */
  failpoint: ((block: number) => void) | null = null;

  /** Sequence of the last transaction known to be home (the superblock's journalSeq): recovery replays only newer ones. */
  readonly checkpointSeq: number;

  /** @param nextSeq the sequence of the next commit: one past the superblock's journalSeq checkpoint */
  constructor(region: Region, geo: JournalGeometry, nextSeq = 1) {
    this.region = region; this.geo = geo; this.seq = nextSeq; this.checkpointSeq = nextSeq - 1;
  }

  /** Blocks changed by the running transaction. */
  get dirtyBlocks(): number { return this.images.size; }
  /** Log blocks the running transaction needs. */
  get logBlocksNeeded(): number { return logBlocksFor(this.geo.blockSize, this.images.size); }

  /** A block as the running transaction sees it (a copy when read from the region). */
  read(block: number): Buffer {
    const img = this.images.get(block);
    if (img) return img;
    const bs = this.geo.blockSize;
    return this.region.readBuf(regionOff(block * bs), bs);
  }

  private keepPre(block: number): void {
    this.failpoint?.(block);
    if (this.pre && !this.pre.has(block)) {
      const cur = this.images.get(block);
      this.pre.set(block, cur ? Buffer.from(cur) : null);
    }
  }

  /** Change a block in place: fn edits its current image. */
  modify(block: number, fn: (img: Buffer) => void): void {
    this.keepPre(block);
    const img = this.images.get(block) ?? this.read(block);
    fn(img);
    this.images.set(block, img);
  }

  /** Replace a block's image wholesale (a newly written metadata block). */
  put(block: number, image: Buffer): void {
    if (image.length !== this.geo.blockSize) throw new Error(`journal: image of ${image.length} bytes for block ${block}`);
    this.keepPre(block);
    this.images.set(block, image);
  }

  /** The block stopped being metadata (freed): nothing of it is logged or written home. */
  forget(block: number): void {
    if (!this.images.has(block)) return;
    this.keepPre(block);
    this.images.delete(block);
  }

  beginOp(): void { this.pre = new Map(); }
  endOp(): void { this.pre = null; }

  /** Restore every block the operation changed to its image before beginOp(). */
  rollbackOp(): void {
    const pre = this.pre;
    this.pre = null;
    if (!pre) return;
    for (const [b, img] of pre) { if (img) this.images.set(b, img); else this.images.delete(b); }
  }

  /**
   * Make the running transaction durable (see the file comment for the order).
   * Also a data persistence point when no metadata changed.
   * @returns true when a transaction was logged
   */
  commit(): boolean {
    if (this.pre) throw new Error('journal: commit inside an operation');
    const region = this.region;
    region.persistDirty('data');
    if (this.images.size === 0) { this.stats.emptyCommits++; return false; }
    const { blockSize: bs, journalStart, journalBlocks } = this.geo;
    const homes = [...this.images.keys()].sort((a, b) => a - b);
    if (logBlocksFor(bs, homes.length) > journalBlocks) throw new Error(`journal: transaction of ${homes.length} blocks exceeds the ${journalBlocks}-block log`);
    const images = homes.map((h) => this.images.get(h)!);
    const { body, commit } = encodeLogTx(bs, { seq: this.seq, homes, images });
    const logOff = journalStart * bs;
    const all = Buffer.concat(body);
    region.write(regionOff(logOff), all, 0, all.length);
    region.persist('log', regionOff(logOff), all.length);
    region.write(regionOff(logOff + all.length), commit, 0, bs);
    region.persist('commit', regionOff(logOff + all.length), bs);
    for (let i = 0; i < homes.length; i++) region.write(regionOff(homes[i] * bs), images[i], 0, bs);
    this.images.clear();
    this.stats.commits++;
    this.stats.imagesLogged += homes.length;
    this.seq++;
    return true;
  }

  /** Whether a block number may be a log image's home (metadata or data area, not the log itself). */
  homeOk(b: number): boolean {
    const { journalStart, journalBlocks, totalBlocks } = this.geo;
    return Number.isSafeInteger(b) && b >= 0 && b < totalBlocks && !(b >= journalStart && b < journalStart + journalBlocks);
  }

  /** Read the log without changing anything. */
  scan(): LogScan {
    const { blockSize: bs, journalStart, journalBlocks } = this.geo;
    return scanLog(bs, journalBlocks, (i) => this.region.readBuf(regionOff((journalStart + i) * bs), bs), (b) => this.homeOk(b));
  }

  /**
   * Recovery: replay the committed transaction in the log (write its images
   * home and flush). With `dryRun`, the images go into the running
   * transaction instead, so a read-only check sees the region as it will be
   * after replay without writing (fsck -n). A transaction not newer than
   * `checkpointSeq` is 'stale' and not replayed: its images are already home,
   * or older than what is (a forged or mixed-up log).
   */
  recover(dryRun = false): LogScan {
    const s = this.scan();
    if (s.state !== 'committed') return s;
    if (s.tx.seq <= this.checkpointSeq) {
      this.seq = Math.max(this.seq, s.tx.seq + 1);
      return { state: 'stale', seq: s.tx.seq, why: `transaction ${s.tx.seq} is not newer than the superblock's checkpoint ${this.checkpointSeq}` };
    }
    const bs = this.geo.blockSize;
    s.tx.homes.forEach((h, i) => {
      if (dryRun) this.images.set(h, s.tx.images[i]);
      else this.region.write(regionOff(h * bs), s.tx.images[i], 0, bs);
    });
    if (!dryRun) this.region.persistDirty('data');
    this.stats.replayed += s.tx.homes.length;
    this.seq = Math.max(this.seq, s.tx.seq + 1);
    return s;
  }
}
