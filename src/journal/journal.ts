/**
 * @file The write-ahead journal: the running transaction's metadata block
 * images, the commit that logs and checkpoints them, and recovery.
 *
 * Metadata is never stored in place before it is committed: operations put
 * whole-block images here (`modify`, `put`), and the region's home blocks
 * keep the last committed state until the checkpoint.
 *
 * The log is two areas used by turns: transaction s goes to area s % 2
 * (FEAT_INCOMPAT_LOG2; an older region's one-area log is replayed, zeroed
 * and converted by its first read-write mount, see convertToTwoAreas). A
 * commit costs one host flush, as a jbd2 commit with checksums (v3,
 * async_commit) or an XFS log force does, two when ordered data demands it:
 *
 *  1. Ordered data: when the transaction exposes blocks whose data is not
 *     yet durable — blocks newly allocated to a file, unwritten extents
 *     becoming written (`orderedData`, set by the allocator and the
 *     conversions) — committed metadata must never point at stale contents
 *     of a freed block (another user's old data). Two ways:
 *     a. Data logging (DATALOG, the common case of a small append): when
 *        every block the transaction newly allocated to a file was declared
 *        with `logData` (the write path does; Allocator.dataTaken checks
 *        that no other data allocation was left out), nothing else is
 *        exposed (unwritten blocks becoming written are not logged), and
 *        they are few (MAX_DATA_LOG), their
 *        current contents go into the log as data images, after the
 *        metadata images, under the same checksum: one flush makes data and
 *        metadata durable together, and replay rewrites the data if the
 *        flush kept the commit but not the data pages (ext4's data=journal
 *        for the blocks that need it). Once that flush is done, the data is
 *        home and durable, and a later overwrite of those blocks (made
 *        durable by fdatasync without a commit) must never be undone by
 *        replaying the old image: the superblock's `dataSeq` is then set to
 *        the transaction's sequence, in place, and made durable by the very
 *        next flush, whatever its kind (Region.persistDirty, or
 *        TxManager.syncData, which adds the superblock sector to its
 *        ranges). Recovery replays data images only of transactions newer
 *        than `dataSeq` (a revoke of the whole transaction's data, where jbd2
 *        revokes block by block), and only into blocks the transaction
 *        allocates (clear in the bitmap before it, set in its bitmap
 *        image): a forged log cannot aim logged bytes at another file's
 *        block (newlyAllocated).
 *     b. Otherwise every unflushed page is flushed first.
 *     Overwrites of written blocks need neither: after a crash such a block
 *     holds the file's own old or new bytes.
 *  2. Write-ahead: descriptors, images and the commit block are written to
 *     the area and flushed together with every other unflushed page — or,
 *     on fsync's path, with only what the commit needs: the previous
 *     transaction's checkpoint (step 3), the homes of the data it logged
 *     (step 1a: dataSeq may then say they are durable), the superblock
 *     sector when its dataSeq is unflushed, and the fsync'd file's
 *     overwritten data; other files' unflushed overwrites stay unflushed,
 *     as an ext4 fsync leaves them (Journal.commit's `only`). The
 *     commit block carries a CRC32C over descriptors and images, so a log
 *     torn by a power cut is detected and discarded at recovery; no flush
 *     is needed between the images and the commit block. Only after this
 *     flush is the transaction durable, and only then are the images
 *     written home (checkpoint), unflushed.
 *  3. The checkpoint of transaction s is made durable by commit s+1's
 *     flush, before commit s+2 overwrites s's area: recovery always finds
 *     every transaction whose home writes may be incomplete, and replays
 *     the valid ones newer than the superblock's checkpoint in sequence
 *     order (replay is idempotent: homes hold the previous state or this).
 *  4. Busy extents: blocks freed by the transaction return to the allocator
 *     only after step 2 (Allocator.commitDone), so nothing overwrites a block
 *     the durable metadata may still reference.
 *  5. CLEAN: the superblock's clean state is written by unmount only after a
 *     commit and a flush of everything (src/vfs/mount.ts).
 *
 * Why flushing data and log together is safe where step 1 does not apply:
 * the flush makes every page written before it durable at once; a power cut
 * before it completes may keep any subset. Kept log blocks without their
 * commit block, or a commit block over torn images, fail the checksum and
 * the transaction is discarded: the homes still hold the previous durable
 * state (step 3). A commit kept without some overwritten data pages leaves
 * those pages with the file's previous bytes — what any write not yet
 * fsynced may lose — never someone else's.
 *
 * Operation-level undo: between beginOp() and endOp(), the first change of
 * each block keeps the block's previous image, so a failed operation is
 * undone with rollbackOp().
 */
import { encodeLogTx, logBlocksFor, logSeq, scanLog, type LogScan, type LogTx } from '../format/journal.js';
import type { Region } from '../region/region.js';
import { BITMAP_HDR, bitsPerBitmapBlock, FEAT_INCOMPAT_DATALOG, FEAT_INCOMPAT_LOG2, SB_SIZE } from '../format/layout.js';

/** Most blocks of file data one commit logs (256 KiB at 4 KiB blocks); a larger exposure flushes data first. */
export const MAX_DATA_LOG = 64;
import { regionOff } from '../types.js';

export interface JournalGeometry {
  blockSize: number; journalStart: number; journalBlocks: number; totalBlocks: number; dataStart: number;
  /** The superblock's data checkpoint (DATALOG): data images of transactions up to it are never replayed. */
  dataSeq?: number;
  /** First block of the free-space bitmap (replay checks that a data image's home is newly allocated). */
  bitmapStart?: number;
  /** The superblock's incompat features (LOG2: two log areas); read at every use, so converting switches at once. */
  featuresIncompat?: number;
}

/** What recovery found: the transactions replayed (oldest first) and those it left. */
export interface Recovery {
  replayed: LogTx[]; skipped: Array<{ seq: number; why: string }>;
  /** Data images a real replay writes (a dry run cannot show them: a read-only mount must refuse). */
  dataPending: number;
}

export interface JournalStats { commits: number; imagesLogged: number; dataImagesLogged: number; emptyCommits: number; replayed: number; dataImagesSkipped: number }

export class Journal {
  readonly geo: JournalGeometry;
  readonly region: Region;
  private readonly images = new Map<number, Buffer>();
  private pre: Map<number, Buffer | null> | null = null;
  /** Sequence number the next commit gets. */
  seq: number;
  readonly stats: JournalStats = { commits: 0, imagesLogged: 0, dataImagesLogged: 0, emptyCommits: 0, replayed: 0, dataImagesSkipped: 0 };
  /** Test hook: called before every block-image change of an operation; may throw (failure injection). */
  failpoint: ((block: number) => void) | null = null;

  /** Sequence of the last transaction known to be home (the superblock's journalSeq): recovery replays only newer ones. */
  readonly checkpointSeq: number;
  /** The superblock's dataSeq as the region was opened: recovery replays data images only of newer transactions. */
  readonly dataCheckpointSeq: number;

  /** File data runs the running transaction newly allocated and logs (DATALOG): [region block, blocks]. */
  private dataRuns: Array<[number, number]> = [];
  private dataRunsAtOp = 0;
  /** Blocks of an exposure declared with orderData() (not logged): the commit flushes data first. */
  private unloggedOrder = false;
  /**
   * Set by a commit that logged data images: the sequence whose data is now
   * home and durable. The committer writes it to the superblock's dataSeq
   * (in place); the next commit carries that sector (`dataSeqUnflushed`), and
   * so does a data-only flush of a logged block (`dataFlushNeedsSb`).
   */
  dataLoggedSeq = 0;
  /** The superblock sector holds a dataSeq no flush has made durable yet. */
  dataSeqUnflushed = false;
  /**
   * The homes of data blocks logged by transactions that the durable
   * dataSeq does not cover yet ([offset, length] in region bytes): replay
   * after a crash may write their logged images back. A data-only flush
   * that takes one of them must take the superblock sector too
   * (dataFlushNeedsSb); every commit's flush takes the sector when it is
   * unflushed, so this holds at most the last logged transaction's blocks.
   */
  private dataUncovered: Array<readonly [number, number]> = [];
  /**
   * The homes the last logged transaction's checkpoint wrote, unflushed
   * ([offset, length] in region bytes): a commit that flushes only what it
   * needs takes them (step 3: durable before the next commit reuses that
   * transaction's log area).
   */
  private checkpointRanges: ReadonlyArray<readonly [number, number]> = [];

  /** @param nextSeq the sequence of the next commit: one past the superblock's journalSeq checkpoint */
  constructor(region: Region, geo: JournalGeometry, nextSeq = 1) {
    this.region = region; this.geo = geo; this.seq = nextSeq; this.checkpointSeq = nextSeq - 1;
    this.dataCheckpointSeq = geo.dataSeq ?? 0;
  }

  /** Whether commits may log file data (FEAT_INCOMPAT_DATALOG). */
  get dataLog(): boolean { return ((this.geo.featuresIncompat ?? 0) & FEAT_INCOMPAT_DATALOG) !== 0; }

  /**
   * The running operation exposes file data blocks [start, start+len) that
   * it newly allocated: the commit logs their contents as of the commit, or
   * flushes data first (see the file comment, step 1). Unwritten blocks
   * becoming written are not logged (orderUnlogged): replay writes a data
   * image only into a block its transaction allocates (newlyAllocated).
   */
  logData(start: number, len: number): void {
    if (len <= 0) return;
    this.orderedData = true;
    this.dataRuns.push([start, len]);
  }

  /** Blocks changed by the running transaction. */
  get dirtyBlocks(): number { return this.images.size; }
  /** Log blocks the running transaction needs. */
  get logBlocksNeeded(): number { return logBlocksFor(this.geo.blockSize, this.images.size); }
  /**
   * Set when the running transaction exposes blocks whose data may not be
   * durable (new allocations to files, unwritten extents converted): its
   * commit flushes data before writing the log (see the file comment).
   */
  orderedData = false;

  /** An exposure that is not logged (TxManager: Transaction.orderData): the commit flushes data first. */
  orderUnlogged(): void { this.orderedData = true; this.unloggedOrder = true; }

  /** Whether the log is two areas used by turns (FEAT_INCOMPAT_LOG2). */
  get twoAreas(): boolean { return ((this.geo.featuresIncompat ?? 0) & FEAT_INCOMPAT_LOG2) !== 0; }
  /** Blocks one transaction may occupy in the log (an area). */
  get areaBlocks(): number { return this.twoAreas ? Math.floor(this.geo.journalBlocks / 2) : this.geo.journalBlocks; }
  /** First block of area a (0 or 1). */
  private areaStart(a: number): number { return this.geo.journalStart + a * this.areaBlocks; }

  /** A block as the running transaction sees it (a copy when read from the region). */
  read(block: number): Buffer {
    const img = this.images.get(block);
    if (img) return img;
    const bs = this.geo.blockSize;
    return this.region.readBuf(regionOff(block * bs), bs);
  }

  /** A block as the running transaction sees it, always as a private copy (for a caller that keeps it), read as readScan does. */
  readCopy(block: number): Buffer {
    const img = this.images.get(block);
    return img ? Buffer.from(img) : this.readScan(block);
  }

  /**
   * A block as the running transaction sees it (the image itself when it
   * has one, a copy otherwise), read with pread rather than through the
   * mapping: for mount's and fsck's scans of all metadata (Region.preadBuf).
   */
  readScan(block: number): Buffer {
    const img = this.images.get(block);
    if (img) return img;
    const bs = this.geo.blockSize;
    return this.region.preadBuf(regionOff(block * bs), bs);
  }

  /**
   * readScan into `scratch` (one block's size), for a caller that reads a
   * block, looks at it and goes on to the next, keeping nothing: the
   * running transaction's image itself when it has one, else `scratch`
   * filled by pread. Either way not to be changed or kept.
   */
  readScanInto(block: number, scratch: Buffer): Buffer {
    const img = this.images.get(block);
    if (img) return img;
    return this.region.preadInto(regionOff(block * this.geo.blockSize), scratch);
  }

  /** Whether the running transaction holds an image of `block` (readScan returns it, not the region's copy). */
  hasImage(block: number): boolean { return this.images.has(block); }

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

  beginOp(): void { this.pre = new Map(); this.dataRunsAtOp = this.dataRuns.length; }
  endOp(): void { this.pre = null; }

  /** Restore every block the operation changed to its image before beginOp(). */
  rollbackOp(): void {
    const pre = this.pre;
    this.pre = null;
    if (!pre) return;
    this.dataRuns.length = this.dataRunsAtOp;
    for (const [b, img] of pre) { if (img) this.images.set(b, img); else this.images.delete(b); }
  }

  /**
   * Make the running transaction durable (see the file comment for the
   * order): one flush, two when ordered data must reach the media first
   * and cannot be logged. Also a data persistence point when no metadata
   * changed.
   * @param dataTaken data blocks the allocator gave out since the last
   *   commit (Allocator.dataTaken): data is logged only when the blocks
   *   declared with logData account for all of them
   * @param only null: the commit's flush takes every unflushed page of the
   *   region (the commit timer, sync, unmount); else it takes only what the
   *   commit needs (fsync's path, step 2 of the file comment): the log
   *   area written, the previous transaction's checkpoint, the homes of
   *   data logged now, the superblock sector when its `dataSeq` is
   *   unflushed, and these [offset, length] region byte ranges (the
   *   fsync'd file's overwritten data); other files' unflushed overwrites
   *   stay unflushed, as on ext4
   * @returns true when a transaction was logged
   * @throws Error when the log is still in the one-area form (convert first); FsError EIO from a failed flush
   */
  commit(dataTaken = 0, only: ReadonlyArray<readonly [number, number]> | null = null): boolean {
    if (this.pre) throw new Error('journal: commit inside an operation');
    const region = this.region;
    const runs = this.dataRuns;
    const unlogged = this.unloggedOrder;
    this.dataRuns = []; this.unloggedOrder = false;
    if (this.images.size === 0) {
      region.persistDirty('data');
      this.orderedData = false;
      this.dataSeqFlushed();
      this.stats.emptyCommits++;
      return false;
    }
    if (!this.twoAreas) throw new Error('journal: the log has one area (an older format): it is converted at mount before anything commits');
    const bs = this.geo.blockSize;
    const homes = [...this.images.keys()].sort((a, b) => a - b);
    if (logBlocksFor(bs, homes.length) > this.areaBlocks) throw new Error(`journal: transaction of ${homes.length} blocks exceeds the ${this.areaBlocks}-block log area`);
    const images = homes.map((h) => this.images.get(h)!);
    const metaCount = homes.length;
    if (this.orderedData) {
      const data = unlogged ? null : this.dataBlocksToLog(runs, dataTaken, metaCount);
      if (data) {
        for (const b of data) { homes.push(b); images.push(region.readBuf(regionOff(b * bs), bs)); }
      } else if (region.unflushedPages > 0) {
        region.persistDirty('data');
      }
    }
    const dataImages = homes.length - metaCount;
    const { body, commit } = encodeLogTx(bs, { seq: this.seq, homes, images, dataImages });
    const logOff = this.areaStart(this.seq % 2) * bs;
    const all = Buffer.concat([...body, commit]);
    region.write(regionOff(logOff), all, 0, all.length);
    const dataHomes = homes.slice(metaCount).map((h) => [h * bs, bs] as const);   // region bytes
    if (only === null) region.persistDirty('commit');
    else {
      // Logged data is made durable at home by the same flush: dataSeq may then say so (step 1a).
      const ranges: Array<readonly [number, number]> = [[logOff, all.length], ...this.checkpointRanges, ...only, ...dataHomes];
      if (this.dataSeqUnflushed) ranges.push([0, SB_SIZE]);
      region.persistRanges('commit', ranges);
    }
    this.dataSeqFlushed();
    // Checkpoint: metadata images go home; data images are home already (they were read from there).
    for (let i = 0; i < metaCount; i++) region.write(regionOff(homes[i] * bs), images[i], 0, bs);
    this.checkpointRanges = homes.slice(0, metaCount).map((h) => [h * bs, bs] as const);
    if (dataImages) {
      this.dataLoggedSeq = this.seq;
      this.stats.dataImagesLogged += dataImages;
      this.dataUncovered.push(...dataHomes);
    }
    this.images.clear();
    this.orderedData = false;
    this.stats.commits++;
    this.stats.imagesLogged += metaCount;
    this.seq++;
    return true;
  }

  /**
   * Whether a data-only flush of `ranges` (region bytes; null: every dirty
   * page) must take the superblock sector: its dataSeq is unflushed and the
   * flush takes a data block that a transaction the durable dataSeq does
   * not cover logged. Made durable without the sector, an overwrite of such
   * a block could be undone after a crash by replay writing the logged
   * image back (step 1a). A flush of other blocks leaves the sector to the
   * next flush that needs it or the next commit, which always takes it:
   * replaying a logged image over a block nothing made durable since only
   * writes back what is there.
   */
  dataFlushNeedsSb(ranges: ReadonlyArray<readonly [number, number]> | null): boolean {
    if (!this.dataSeqUnflushed) return false;
    if (ranges === null) return true;
    return ranges.some(([off, len]) => this.dataUncovered.some(([o, l]) => off < o + l && o < off + len));
  }

  /** The superblock sector, with its dataSeq, was made durable: every logged block is covered. */
  dataSeqFlushed(): void {
    this.dataSeqUnflushed = false;
    this.dataUncovered = [];
  }

  /**
   * The homes the last logged transaction's checkpoint wrote, maybe still
   * unflushed ([offset, length] in region bytes). That commit is durable,
   * so a data-only flush may write them early (Region.persistRanges's
   * `along`): the next commit then finds them clean.
   */
  get checkpointHomes(): ReadonlyArray<readonly [number, number]> { return this.checkpointRanges; }

  /**
   * The data blocks to log with this commit, sorted and distinct, or null
   * when data must be flushed first instead: DATALOG off, a data
   * allocation not declared with logData, more than MAX_DATA_LOG blocks, or
   * no room in the log area.
   */
  private dataBlocksToLog(runs: ReadonlyArray<readonly [number, number]>, dataTaken: number, metaCount: number): number[] | null {
    if (!this.dataLog || !runs.length) return null;
    let fresh = 0;
    for (const [, len] of runs) fresh += len;
    if (fresh !== dataTaken) return null;
    const set = new Set<number>();
    for (const [start, len] of runs) {
      for (let b = start; b < start + len; b++) { set.add(b); if (set.size > MAX_DATA_LOG) return null; }
    }
    if (logBlocksFor(this.geo.blockSize, metaCount + set.size) > this.areaBlocks) return null;
    return [...set].sort((a, b) => a - b);
  }

  /**
   * Turn an older region's one-area log into two areas: zero the whole log
   * and flush, so nothing of an old transaction can be read as one later.
   * The caller then sets FEAT_INCOMPAT_LOG2 in the superblock and writes it.
   * Run after recovery, before anything commits.
   */
  zeroLog(): void {
    const { blockSize: bs, journalStart, journalBlocks } = this.geo;
    this.region.zero(regionOff(journalStart * bs), journalBlocks * bs);
    this.region.persistDirty('data');
  }

  /** Whether a block number may be a log image's home (metadata or data area, not the log itself). */
  homeOk(b: number): boolean {
    const { journalStart, journalBlocks, totalBlocks } = this.geo;
    return Number.isSafeInteger(b) && b >= 0 && b < totalBlocks && !(b >= journalStart && b < journalStart + journalBlocks);
  }

  /**
   * Whether `home` is a block transaction `tx` allocates: clear in the
   * free-space bitmap as replay has left it so far, set in the bitmap image
   * the transaction logs. Only such a block may receive a data image. A
   * commit logs data only for blocks it newly allocated, and when replay
   * matters (the power went inside that commit's flush) its bitmap is not
   * yet home; a forged log that aims a data image at a block some file
   * already maps is refused here, so replay never writes one file's logged
   * bytes into another's block.
   */
  private newlyAllocated(tx: LogTx, meta: number, home: number): boolean {
    const bs = this.geo.blockSize, per = bitsPerBitmapBlock(bs);
    const start = this.geo.bitmapStart;
    if (start === undefined || !Number.isSafeInteger(home) || home < (this.geo.dataStart ?? 0) || home >= this.geo.totalBlocks) return false;
    const idx = Math.floor(home / per), local = home - idx * per;
    const byte = BITMAP_HDR + (local >> 3), mask = 1 << (local & 7);
    const blk = start + idx;
    if (this.read(blk)[byte] & mask) return false;
    for (let i = 0; i < meta; i++) if (tx.homes[i] === blk) return (tx.images[i][byte] & mask) !== 0;
    return false;
  }

  /** Read the log areas without changing anything (one entry per area). */
  scanAreas(): LogScan[] {
    const bs = this.geo.blockSize;
    const areas = this.twoAreas ? [0, 1] : [0];
    return areas.map((a) => {
      const start = this.areaStart(a);
      return scanLog(bs, this.areaBlocks, (i) => this.region.preadBuf(regionOff((start + i) * bs), bs), (b) => this.homeOk(b));
    });
  }

  /**
   * The newest sequence found in the log (committed or torn), or -1: the
   * sequence each area's first block claims (logSeq), so one block per area
   * is read, not the transactions (a clean mount's whole use of the log).
   */
  newestSeq(): number {
    let m = -1;
    const areas = this.twoAreas ? [0, 1] : [0];
    for (const a of areas) {
      const seq = logSeq(this.region.preadBuf(regionOff(this.areaStart(a) * this.geo.blockSize), this.geo.blockSize));
      if (seq !== null) m = Math.max(m, seq);
    }
    return m;
  }

  /**
   * Recovery: replay the committed transactions in the log that are newer
   * than the superblock's checkpoint, oldest first (write their images home
   * and flush). With `dryRun`, the images go into the running transaction
   * instead, so a read-only check sees the region as it will be after replay
   * without writing (fsck -n). A transaction not newer than `checkpointSeq`
   * is skipped: its images are already home, or older than what is (a forged
   * or mixed-up log); so is an older one that does not directly precede the
   * newest (the areas are written by turns, so a gap means a remnant).
   */
  recover(dryRun = false): Recovery {
    const out: Recovery = { replayed: [], skipped: [], dataPending: 0 };
    const txs: LogTx[] = [];
    for (const s of this.scanAreas()) {
      if (s.state === 'committed') {
        this.seq = Math.max(this.seq, s.tx.seq + 1);
        if (s.tx.seq <= this.checkpointSeq) out.skipped.push({ seq: s.tx.seq, why: `transaction ${s.tx.seq} is not newer than the superblock's checkpoint ${this.checkpointSeq}` });
        else txs.push(s.tx);
      } else if (s.state !== 'empty') {
        out.skipped.push({ seq: s.seq, why: s.why });
      }
    }
    txs.sort((a, b) => a.seq - b.seq);
    if (txs.length === 2 && txs[1].seq !== txs[0].seq + 1) {
      out.skipped.push({ seq: txs[0].seq, why: `transaction ${txs[0].seq} does not precede ${txs[1].seq}: a remnant` });
      txs.shift();
    }
    const bs = this.geo.blockSize;
    for (const tx of txs) {
      const meta = tx.homes.length - (tx.dataImages ?? 0);
      // Which data images to write, decided before this transaction's bitmap goes home (see newlyAllocated).
      const data: number[] = [];
      for (let i = meta; i < tx.homes.length; i++) {
        // Data images of a transaction the data checkpoint covers are home, and may have been overwritten since.
        if (tx.seq > this.dataCheckpointSeq && this.newlyAllocated(tx, meta, tx.homes[i])) data.push(i);
      }
      for (let i = 0; i < meta; i++) {
        if (dryRun) this.images.set(tx.homes[i], tx.images[i]);
        else this.region.write(regionOff(tx.homes[i] * bs), tx.images[i], 0, bs);
      }
      for (const i of data) if (!dryRun) this.region.write(regionOff(tx.homes[i] * bs), tx.images[i], 0, bs);
      this.stats.dataImagesSkipped += tx.homes.length - meta - data.length;
      out.dataPending += data.length;
      this.stats.replayed += meta + data.length;
      out.replayed.push(tx);
    }
    if (!dryRun && txs.length) this.region.persistDirty('data');
    return out;
  }
}
