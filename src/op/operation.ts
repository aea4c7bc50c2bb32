/**
 * @file The operation boundary: the only way a request changes metadata.
 *
 * Every request (a FUSE operation, an ioctl, a control command, a mount or
 * fsck step) is an operation in two steps:
 *
 *  - **prepare**, in the caller's code before `begin`/`apply`: resolve
 *    names and handles, check who may do it (src/op/permissions.ts), check
 *    everything that can refuse, and wait where waiting is allowed (the
 *    layout guard under busy=wait, copy-on-write of pinned blocks). Nothing
 *    changes during prepare.
 *  - **apply**: synchronous, exactly one transaction (src/journal/tx.ts), all
 *    or nothing. It first revalidates what prepare resolved: each target
 *    inode must still be the one in the store under its number, with the
 *    generation prepare saw, or the operation fails with ESTALE and changes
 *    nothing (an inode freed, and its number reused, while prepare waited).
 *
 * An operation that must not be larger than the log (freeing a huge file,
 * punching a range of many extents, orphan recovery) runs as *rolled*
 * steps (`roll`), each a transaction of its own that leaves a consistent
 * filesystem, the shape of XFS's rolled transactions (xfs_trans_roll,
 * fs/xfs/xfs_trans.c) and ext4's orphan list; its last step may be `apply`.
 *
 * The journal hands its transaction entry to one Operations object per
 * engine (TxManager.claimEntry): nothing else can open a transaction, and
 * a second `apply` on one operation is a bug caught at once.
 */
import { FsError } from '../errors.js';
import type { Inode } from '../inode/inode.js';
import type { Transaction, TxEntry, TxManager } from '../journal/tx.js';

/** Counters of the operation layer (.pmemfs/stats, subsystem=op). */
export interface OpStats {
  /** Operations applied (each one transaction). */
  applied: number;
  /** Rolled steps (bounded transactions of a larger operation). */
  rolled: number;
  /** Operations refused at apply because a target changed identity during prepare. */
  stale: number;
}

/** The transaction entry, claimed once per engine, and the operations it runs. */
export class Operations {
  readonly stats: OpStats = { applied: 0, rolled: 0, stale: 0 };
  private readonly enter: TxEntry;

  /**
   * @param tx the engine's transaction manager; its entry is claimed here
   * @param current the inode now in the store under a number (undefined when free)
   * @throws Error when the entry was already claimed
   */
  constructor(tx: TxManager, private readonly current: (ino: number) => Inode | undefined) {
    this.enter = tx.claimEntry();
  }

  /**
   * Start an operation on `targets` (the inodes prepare resolved and apply
   * changes), recording their numbers and generations for apply to check.
   */
  begin(name: string, ...targets: Inode[]): Operation {
    return new Operation(this, name, targets);
  }

  /** begin(name, ...targets).apply(fn): the common one-step operation. @throws as Operation.apply */
  apply<T>(name: string, targets: readonly Inode[], fn: (tx: Transaction) => T): T {
    return new Operation(this, name, targets).apply(fn);
  }

  /** @internal run fn as one transaction after revalidating op's targets. */
  run<T>(op: Operation, fn: (tx: Transaction) => T, rolled: boolean): T {
    op.revalidate(this.current);
    const r = this.enter(fn);
    if (rolled) this.stats.rolled++; else this.stats.applied++;
    return r;
  }

  /** @internal */
  noteStale(): void { this.stats.stale++; }
}

/** One request's change: prepared targets, one apply (and rolled steps before it). */
export class Operation {
  private applied = false;
  private readonly seen: { ino: number; generation: number }[];

  constructor(private readonly ops: Operations, readonly name: string, private readonly targets: readonly Inode[]) {
    this.seen = targets.map((i) => ({ ino: i.ino, generation: i.generation }));
  }

  /**
   * The operation's one transaction: fn runs synchronously and its changes
   * all stay or all go.
   * @throws FsError ESTALE (a target was freed or replaced since begin), whatever fn throws (after undoing it)
   * @throws Error on a second apply of the same operation (a bug: split work goes through roll)
   */
  apply<T>(fn: (tx: Transaction) => T): T {
    if (this.applied) throw new Error(`operation ${this.name}: a second apply (one transaction per operation; bounded steps use roll)`);
    this.applied = true;
    return this.ops.run(this, fn, false);
  }

  /**
   * One rolled step of a bounded operation: a transaction of its own, which
   * must leave the filesystem consistent if the power goes after it.
   * @throws as apply (except the second-apply check); Error after apply
   */
  roll<T>(fn: (tx: Transaction) => T): T {
    if (this.applied) throw new Error(`operation ${this.name}: a rolled step after apply`);
    return this.ops.run(this, fn, true);
  }

  /** @internal ESTALE unless every target is still the store's inode under its number, same generation. */
  revalidate(current: (ino: number) => Inode | undefined): void {
    for (let k = 0; k < this.targets.length; k++) {
      const t = this.targets[k], s = this.seen[k];
      if (current(s.ino) !== t || t.generation !== s.generation) {
        this.ops.noteStale();
        throw new FsError('ESTALE', this.name, `(inode ${s.ino})`, 'the file was removed while the operation waited');
      }
    }
  }
}
