/**
 * @file The metadata transaction API: begin → record changes → commit.
 * Every metadata change goes through it (design/direction.md step 1). Today
 * commit writes in place into the mapped region in a safe order:
 *
 *   1. data and newly allocated blocks were already written by the caller;
 *   2. allocation bits were set when the blocks were allocated;
 *   3. dirty inodes are written (forks copy-on-write, then slots);
 *   4. blocks the old metadata referenced are freed (bitmap bits cleared);
 *   5. with `sync`, everything is flushed (a persistence point).
 *
 * A crash between 3 and 4 leaks blocks that the recovery scan at the next
 * mount frees; it never leaves a block referenced and free. The journal will
 * slot in behind commit() without changing callers.
 */
import type { BlockRun } from '../alloc/allocator.js';
import type { Inode } from '../vfs/inode.js';
import type { InodeStore } from '../vfs/store.js';

export class Transaction {
  readonly dirty = new Set<Inode>();
  readonly frees: BlockRun[] = [];
  readonly dropped = new Set<Inode>();
  sync = false;

  /** The inode's record or fork changed. */
  markDirty(inode: Inode): void { this.dirty.add(inode); }
  /** Free these blocks once the new metadata is written. */
  deferFree(run: BlockRun): void { if (run.len > 0) this.frees.push(run); }
  /** The inode is gone: clear its slot and free its fork. */
  drop(inode: Inode): void { this.dropped.add(inode); this.dirty.delete(inode); }
  /** Make the commit a persistence point. */
  requireSync(): void { this.sync = true; }
}

export interface TxStats { commits: number; syncCommits: number; inodesWritten: number }

export class TxManager {
  readonly stats: TxStats = { commits: 0, syncCommits: 0, inodesWritten: 0 };

  constructor(private readonly store: InodeStore) {}

  begin(): Transaction { return new Transaction(); }

  /** Write the transaction's changes (see the file comment for the order). */
  commit(tx: Transaction): void {
    const frees = [...tx.frees];
    for (const inode of tx.dirty) {
      if (tx.dropped.has(inode)) continue;
      const oldFork = this.store.write(inode);
      if (oldFork) frees.push(oldFork);
      this.stats.inodesWritten++;
    }
    for (const inode of tx.dropped) {
      const fork = this.store.clear(inode);
      if (fork) frees.push(fork);
    }
    for (const r of frees) this.store.alloc.release(r.start, r.len);
    this.stats.commits++;
    if (tx.sync) this.flush();
  }

  /** Persistence point: everything written so far becomes durable. */
  flush(): void {
    this.stats.syncCommits++;
    this.store.writeSuperblock();
    this.store.region.persistAll();
  }
}
