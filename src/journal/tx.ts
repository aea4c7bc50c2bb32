/**
 * @file Transactions: the one way metadata changes. The transaction entry
 * belongs to the operation layer (src/op/operation.ts), which claims it once
 * (`claimEntry`); every request reaches it as
 *
 *     op.apply((tx) => { ...change inodes, tx.markDirty(inode)... })
 *
 * and is all or nothing: when fn throws — ENOSPC part-way, an encoding
 * error, a bug — every block image, allocation and in-core inode it changed
 * is restored before the error propagates, so nothing the caller was told
 * failed stays visible, in core or on media. Successful operations join the
 * running transaction (jbd2's handles in a compound transaction), which
 * `commit()` makes durable through the journal (src/journal/journal.ts):
 * at fsync, at an O_SYNC write, from the daemon's timer (commit=SECONDS),
 * when the log is half full, and at unmount.
 *
 * Operations that wait (the layout guard under busy=wait) do so before
 * calling run(): fn itself never awaits, so operations never interleave their
 * changes.
 *
 * An allocation that only blocks freed by the running transaction could
 * satisfy (busy extents) rolls the operation back, commits, and retries it
 * once.
 *
 * Shutdown (xfs_force_shutdown, fs/xfs/xfs_fsops.c): the first commit that
 * fails — a failed flush of the region (a medium error, or one injected) or
 * anything else that leaves the journal's state unknown — shuts the
 * filesystem down. From then on every operation and every commit fails
 * with EIO, nothing more is written, and the next mount recovers the last
 * durable commit: a failed flush is never retried as if nothing happened,
 * so no later fsync can return 0 over pages that never reached the media.
 */
import type { Allocator, BlockRun } from '../alloc/allocator.js';
import { TxNeedsCommit } from '../alloc/allocator.js';
import { FsError } from '../errors.js';
import { SB_SIZE } from '../format/layout.js';
import type { Inode } from '../inode/inode.js';
import type { InodeStore } from '../inode/store.js';
import type { Journal } from './journal.js';
import type { RefcountIndex } from '../refcount/refcount.js';

/** One operation's view of the running transaction. */
export class Transaction {
  sync = false;
  constructor(private readonly mgr: TxManager) {}

  /** The inode's record or fork changed (call before changing it where possible). */
  markDirty(inode: Inode): void { this.mgr.ensureBegun(); this.mgr.store.markDirty(inode); }
  /**
   * Drop this owner of data blocks: blocks no other file shares are freed
   * (busy until the transaction is durable), shared ones lose one reference.
   */
  deferFree(run: BlockRun): void { this.mgr.ensureBegun(); this.mgr.store.freeData(run); }
  /** The reference-count index of shared blocks (reflink), with the operation begun. */
  get refcount(): RefcountIndex { this.mgr.ensureBegun(); return this.mgr.store.refcount; }
  /** The inode is gone: its slot is cleared and its metadata blocks freed. */
  drop(inode: Inode): void { this.mgr.ensureBegun(); this.mgr.store.drop(inode); }
  /**
   * Blocks already allocated start being read as data (unwritten extents
   * become written): the commit flushes data before the log (Journal.orderedData).
   */
  orderData(): void { this.mgr.ensureBegun(); this.mgr.journal.orderUnlogged(); }
  /**
   * The operation exposes file data blocks [start, start+len) it just
   * allocated: the commit logs their contents (a small exposure) or flushes
   * data first (Journal.logData).
   */
  logData(start: number, len: number): void { this.mgr.ensureBegun(); this.mgr.journal.logData(start, len); }
  /** Make the operation durable before it returns (a persistence point). */
  requireSync(): void { this.sync = true; }
  /** The allocator, with the operation begun (so what it takes is undone on failure). */
  get alloc(): Allocator { this.mgr.ensureBegun(); return this.mgr.store.alloc; }
}

/** Runs fn as one transaction, all or nothing (what TxManager.claimEntry hands out). */
export type TxEntry = <T>(fn: (tx: Transaction) => T) => T;

export interface TxStats { ops: number; rollbacks: number; retries: number; commits: number; syncCommits: number; dataSyncs: number; fsyncsClean: number }

export class TxManager {
  readonly stats: TxStats = { ops: 0, rollbacks: 0, retries: 0, commits: 0, syncCommits: 0, dataSyncs: 0, fsyncsClean: 0 };
  readonly store: InodeStore;
  readonly journal: Journal;
  private begun = false;
  private claimed = false;
  private pending = false;   // inside run/runAsync
  private imagesAtBegin = 0;
  /** With power-failure recording on: commit when this many pages wait for a flush (bounds the pre-images kept). */
  recordLimitPages = 16384;
  /** Set by halt(): every further operation and commit fails with EIO (an emulated power failure). */
  halted = false;
  /** Why the filesystem shut down (the first failed commit), or null while it runs. */
  shutdownReason: string | null = null;
  /** Called once, when the filesystem shuts down (the daemon logs it). */
  onShutdown: ((reason: string, err: unknown) => void) | null = null;
  /**
   * Called after every successful operation, outside it: work the operation
   * left to bounded follow-up operations (PmemFs.drainReaps: large files
   * freed a chunk of extents at a time) runs here, before the caller goes on.
   */
  afterOp: (() => void) | null = null;
  /** Called after every commit (the daemon logs and counts). */
  onCommit: ((reason: string) => void) | null = null;

  constructor(store: InodeStore) { this.store = store; this.journal = store.journal; }

  /** @internal begin the current operation if it has not yet begun. */
  ensureBegun(): void {
    if (!this.pending) throw new Error('transaction: change outside an operation\'s apply step');
    if (this.begun) return;
    this.begun = true;
    this.imagesAtBegin = this.journal.dirtyBlocks;
    this.journal.beginOp();
    this.store.alloc.mark();
    this.store.beginOp();
  }

  private abort(): void {
    if (!this.begun) return;
    this.begun = false;
    this.journal.rollbackOp();
    this.store.alloc.rollback();
    this.store.rollback();
    this.stats.rollbacks++;
  }

  private end(tx: Transaction): void {
    if (this.begun) {
      this.store.finish();
      const need = this.journal.logBlocksNeeded, cap = this.journal.areaBlocks;
      if (need > cap) {
        if (this.imagesAtBegin > 0) throw new TxNeedsCommit(0);
        throw new FsError('ENOSPC', 'commit', undefined, `the operation changes ${this.journal.dirtyBlocks} metadata blocks; the ${cap}-block log area cannot hold them (format with a larger journal)`);
      }
      this.journal.endOp();
      this.store.alloc.unmark();
      this.begun = false;
      this.stats.ops++;
    }
    const region = this.journal.region;
    if (tx.sync) this.commit('sync');
    else if (this.journal.logBlocksNeeded * 2 > this.journal.areaBlocks) this.commit('log half full');
    else if (region.recording && region.unflushedPages > this.recordLimitPages) this.commit('power-fail recording limit');
  }

  /**
   * Hand out the transaction entry, once: the operation layer
   * (src/op/operation.ts) takes it when the engine is built, so nothing else
   * can open a transaction (the layout guard's permits work the same way).
   * @returns run(fn): fn as one operation, all or nothing (see the file comment);
   *   it throws whatever fn throws, after undoing its changes, and FsError ENOSPC
   * @throws Error when the entry was already claimed
   */
  claimEntry(): TxEntry {
    if (this.claimed) throw new Error('transaction: the entry is already claimed (only the operation layer opens transactions)');
    this.claimed = true;
    return (fn) => this.run(fn);
  }

  private run<T>(fn: (tx: Transaction) => T): T {
    this.assertRunning('tx');
    if (this.pending) throw new Error('transaction: nested apply (an operation opens one transaction at a time)');
    for (let attempt = 0; ; attempt++) {
      const tx = new Transaction(this);
      this.pending = true;
      this.ensureBegun();
      let done = false, result: T | undefined;
      try {
        const r = fn(tx);
        if (r instanceof Promise) throw new Error('transaction: apply takes a synchronous function (await in prepare)');
        this.end(tx);
        result = r; done = true;
      } catch (e) {
        this.abort();
        if (!(e instanceof TxNeedsCommit)) throw e;
        if (attempt > 0) throw new FsError('ENOSPC', 'alloc', undefined, e.message);
        this.stats.retries++;
      } finally {
        this.pending = false;
      }
      if (done) { this.afterOp?.(); return result as T; }
      this.commit('busy extents');
    }
  }

  /**
   * Make everything done so far durable: a persistence point (fsync, sync
   * writes, the commit timer, unmount). `only`: the commit's flush takes
   * only what it needs plus these region byte ranges (fsync's path:
   * Journal.commit); null: every unflushed page.
   * @throws FsError EIO (the filesystem is shut down: a failed commit shuts it down)
   */
  commit(reason = 'commit', only: ReadonlyArray<readonly [number, number]> | null = null): void {
    this.assertRunning('commit');
    if (this.begun) throw new Error('transaction: commit inside an operation');
    let wrote: boolean;
    try {
      if (this.store.alloc.dataAllocated) this.journal.orderedData = true;
      wrote = this.journal.commit(this.store.alloc.dataTaken, only);
      this.store.alloc.dataAllocated = false;
      this.store.alloc.dataTaken = 0;
      // Logged data is home and durable now: no replay may put it back over a later overwrite.
      if (this.journal.dataLoggedSeq > this.store.sb.dataSeq) this.store.writeDataCheckpoint(this.journal.dataLoggedSeq);
    } catch (e) {
      const why = `commit (${reason}) failed: ${(e as Error).message}`;
      this.shutdown(why, e);
      throw new FsError('EIO', 'commit', undefined, `${why}; the filesystem is shut down (remount to recover the last durable commit)`);
    }
    if (wrote) this.stats.commits++;
    this.store.alloc.commitDone();
    this.store.refcount.commitDone();
    if (reason === 'sync' || reason === 'fsync') this.stats.syncCommits++;
    this.onCommit?.(reason);
  }

  /**
   * Flush only these region byte ranges (a file's overwritten data, when
   * its metadata is already durable: fdatasync's path, as ext4's fdatasync
   * of an overwrite is a write-back and a cache flush without a journal
   * commit). A failed flush shuts the filesystem down, as a failed commit does.
   * @param ranges [offset, length] in region bytes; null: flush every dirty page
   * @throws FsError EIO (shut down, or this flush failed)
   */
  syncData(ranges: ReadonlyArray<readonly [number, number]> | null): void {
    this.assertRunning('fsync');
    if (this.begun) throw new Error('transaction: syncData inside an operation');
    const j = this.journal, region = j.region;
    try {
      const sb = j.dataFlushNeedsSb(ranges);
      if (ranges === null) region.persistDirty('data');
      else region.persistRanges('data', sb ? [[0, SB_SIZE], ...ranges] : ranges, j.checkpointHomes);
      if (sb) j.dataSeqFlushed();
    } catch (e) {
      const why = `data flush (fdatasync) failed: ${(e as Error).message}`;
      this.shutdown(why, e);
      throw new FsError('EIO', 'fsync', undefined, `${why}; the filesystem is shut down (remount to recover the last durable commit)`);
    }
    this.stats.dataSyncs++;
  }

  /** Stop for good: nothing more is written (emulated power failure). */
  halt(): void { this.halted = true; }

  /** Whether operations may run: neither halted nor shut down. */
  get running(): boolean { return !this.halted && this.shutdownReason === null; }

  /**
   * Shut the filesystem down (idempotent: the first reason stays).
   * Nothing already applied in core is undone; nothing more reaches the media.
   */
  shutdown(reason: string, err?: unknown): void {
    if (this.shutdownReason !== null) return;
    this.shutdownReason = reason;
    this.onShutdown?.(reason, err);
  }

  /** @throws FsError EIO when halted (emulated power failure) or shut down */
  assertRunning(op: string): void {
    if (this.halted) throw new FsError('EIO', op, undefined, 'the filesystem is halted (emulated power failure)');
    if (this.shutdownReason !== null) throw new FsError('EIO', op, undefined, `the filesystem is shut down: ${this.shutdownReason}`);
  }

  /** Alias of commit('fsync'). */
  flush(): void { this.commit('fsync'); }

  /** Whether the running transaction holds anything not yet durable. */
  get dirty(): boolean { return this.journal.dirtyBlocks > 0 || this.journal.region.unflushedPages > 0; }
}
