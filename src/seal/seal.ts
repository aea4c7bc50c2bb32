/**
 * @file Block-map seals. Two kinds:
 *
 *  - persistent (S_IOMAP_IMMUTABLE, from the "block-map immutable files"
 *    series: FALLOC_FL_SEAL_BLOCK_MAP / XFS_DIFLAG2_IOMAP_IMMUTABLE): an
 *    inode flag written in the same commit that makes the file fully mapped,
 *    flushed before the call returns; needs CAP_LINUX_IMMUTABLE (uid 0);
 *  - lease (MAP_DIRECT's temporary seal): held by one process until it
 *    unleases or exits; never persisted; EOPNOTSUPP on dax=never mounts.
 *
 * Both first make the file fully mapped up to EOF rounded up to the block
 * size: holes allocated and zeroed, unwritten extents zeroed and converted,
 * shared (reflinked) extents unshared — each gets blocks of its own, data
 * unchanged, so a device writing the sealed file's blocks touches no other
 * file. Pinned shared blocks cannot be unshared: the seal is refused with
 * ETXTBSY. While either is held, the
 * layout guard refuses every block-map change with ETXTBSY.
 */
import type { Logger } from 'pino';
import { FsError } from '../errors.js';
import { IFLAG_SEALED } from '../format/layout.js';
import type { Transaction } from '../journal/tx.js';
import { makeMapped, sharedRuns, unshareBlocks } from '../layout/mapping.js';
import type { Caller, PmemFs } from '../vfs/fs.js';
import type { Inode, Lease } from '../inode/inode.js';

/** At most this many leases per non-root user (EAGAIN past it), so one user cannot take the pool. */
export const MAX_LEASES_PER_USER = 4096;

export interface SealStats { seals: number; unseals: number; leases: number; unleases: number; breaks: number; revoked: number; holderDeaths: number }

export class SealManager {
  readonly stats: SealStats = { seals: 0, unseals: 0, leases: 0, unleases: 0, breaks: 0, revoked: 0, holderDeaths: 0 };
  private readonly revokeTimers = new Set<NodeJS.Timeout>();
  /** Leases held per non-root uid. */
  private readonly perUser = new Map<number, number>();

  constructor(private readonly fs: PmemFs, private readonly leaseBreakMs: number, private readonly log: Logger) {}

  private requireRoot(caller: Caller, op: string, path: string): void {
    if (caller.uid !== 0) throw new FsError('EPERM', op, path, 'needs CAP_LINUX_IMMUTABLE (root)');
  }

  /**
   * Make the file fully mapped and unshared up to EOF rounded up to the
   * block size, so every byte a device may address has a fixed region block
   * of its own.
   * @throws FsError ENOSPC (nothing changed), EINVAL for a non-regular file, ETXTBSY (a shared block is pinned)
   */
  private fillForSeal(tx: Transaction, inode: Inode, path: string): void {
    if (!inode.isReg) throw new FsError('EINVAL', 'seal', path, 'only regular files can be sealed');
    const bs = this.fs.blockSize;
    const nblocks = Math.ceil(inode.size / bs);
    const permit = this.fs.guard.internalPermit(inode);
    const shared = sharedRuns(this.fs.data.refs, inode, 0, nblocks);
    if (shared.length) {
      if (this.fs.guard.pinnedIn(shared)) throw new FsError('ETXTBSY', 'seal', path, 'shared blocks to unshare are pinned');
      unshareBlocks(this.fs.data, tx, inode, permit, 0, nblocks);
    }
    makeMapped(this.fs.data, tx, inode, permit, 0, nblocks);
  }

  /** Persistent seal. Idempotent. @throws FsError EPERM, EINVAL, ENOSPC, EROFS */
  seal(t: Inode | string, caller: Caller): void {
    const { inode, path } = this.fs.target(t);
    this.requireRoot(caller, 'seal', path);
    if (this.fs.opts.readOnly) throw new FsError('EROFS', 'seal', path);
    this.sealInode(inode, path);
  }

  sealInode(inode: Inode, path: string): void {
    if (inode.persistentSeal) return;
    this.fs.ops.apply('seal', [inode], (tx) => {
      tx.markDirty(inode);
      this.fillForSeal(tx, inode, path);
      inode.flags |= IFLAG_SEALED;
      inode.touchCtime();
      tx.requireSync();
    });
    this.fs.externalChange(inode, false);   // holes filled, ctime: whichever path (ioctl, xattr) asked
    this.stats.seals++;
    this.log.info({ ino: inode.ino, untrusted: { path } }, 'sealed (persistent)');
  }

  /** Clear the persistent seal. Idempotent. @throws FsError EPERM, ETXTBSY while leased or pinned */
  unseal(t: Inode | string, caller: Caller): void {
    const { inode, path } = this.fs.target(t);
    this.requireRoot(caller, 'unseal', path);
    this.unsealInode(inode, path);
  }

  unsealInode(inode: Inode, path: string): void {
    if (!inode.persistentSeal) return;
    if (inode.leases.length) throw new FsError('ETXTBSY', 'unseal', path, 'a lease is held');
    if (this.fs.pins.pinsOfIno(inode.ino).length) throw new FsError('ETXTBSY', 'unseal', path, 'pages are pinned');
    this.fs.ops.apply('unseal', [inode], (tx) => {
      tx.markDirty(inode);
      inode.flags &= ~IFLAG_SEALED;
      inode.touchCtime();
      tx.requireSync();
    });
    this.fs.externalChange(inode, false);   // ctime
    this.stats.unseals++;
    this.log.info({ ino: inode.ino, untrusted: { path } }, 'unsealed');
  }

  /**
   * Take a lease for the calling process on an open handle. Idempotent per process.
   * @throws FsError EOPNOTSUPP (dax=never), EACCES (not open for writing), ENOSPC, EAGAIN (the user's lease limit)
   */
  lease(fh: number, path: string, caller: Caller): void {
    if (this.fs.opts.dax !== 'always') throw new FsError('EOPNOTSUPP', 'lease', path, 'leases need a dax=always mount');
    const h = this.fs.handle(fh);
    if ((h.flags & 3) === 0) throw new FsError('EACCES', 'lease', path, 'the file must be open for writing');
    const inode = h.inode;
    if (inode.leases.some((l) => l.pid === caller.pid)) return;
    const held = caller.uid === 0 ? 0 : this.perUser.get(caller.uid) ?? 0;
    if (held >= MAX_LEASES_PER_USER) throw new FsError('EAGAIN', 'lease', path, `uid ${caller.uid} holds ${held} leases (limit ${MAX_LEASES_PER_USER} per user)`);
    if (inode.sealKind === 'none') {
      this.fs.ops.apply('lease', [inode], (tx) => this.fillForSeal(tx, inode, path));
      this.fs.externalChange(inode, false);   // holes filled
    }
    inode.leases = [...inode.leases, { pid: caller.pid, uid: caller.uid, since: Date.now(), breakDeadline: null }];
    if (caller.uid !== 0) this.perUser.set(caller.uid, held + 1);
    this.stats.leases++;
    this.log.info({ ino: inode.ino, holder: caller.pid, untrusted: { path } }, 'lease taken');
  }

  /** Drop the calling process's lease. @throws FsError EINVAL when it holds none */
  unlease(inode: Inode, path: string, caller: Caller): void {
    if (!this.dropLease(inode, (l) => l.pid === caller.pid)) throw new FsError('EINVAL', 'unlease', path, 'this process holds no lease on the file');
    this.stats.unleases++;
  }

  /** Remove matching leases; reap the inode if that was the last hold. Returns how many went. */
  private dropLease(inode: Inode, match: (l: Lease) => boolean): number {
    const before = inode.leases.length;
    const kept: Lease[] = [];
    for (const l of inode.leases) {
      if (!match(l)) { kept.push(l); continue; }
      const n = (this.perUser.get(l.uid) ?? 1) - 1;
      if (n > 0) this.perUser.set(l.uid, n); else this.perUser.delete(l.uid);
    }
    inode.leases = kept;
    const gone = before - inode.leases.length;
    if (gone && inode.nlink === 0) {
      this.fs.ops.apply('unlease', [inode], (tx) => this.fs.maybeReap(tx, inode));
    }
    return gone;
  }

  /**
   * Break every lease on the file: SIGIO to each holder now, revocation
   * after lease_break. @throws FsError EPERM for non-root
   */
  breakLeases(t: Inode | string, caller: Caller): number {
    const { inode, path } = this.fs.target(t);
    this.requireRoot(caller, 'break', path);
    const deadline = Date.now() + this.leaseBreakMs;
    let n = 0;
    for (const l of inode.leases) {
      if (l.breakDeadline !== null) continue;
      l.breakDeadline = deadline;
      n++;
      try { process.kill(l.pid, 'SIGIO'); } catch { /* holder already gone: the holder watch reaps it */ }
      const t = setTimeout(() => {
        this.revokeTimers.delete(t);
        if (this.dropLease(inode, (x) => x === l)) {
          this.stats.revoked++;
          this.log.warn({ ino: inode.ino, holder: l.pid, untrusted: { path } }, 'lease revoked after lease_break');
        }
      }, this.leaseBreakMs);
      t.unref();
      this.revokeTimers.add(t);
    }
    this.stats.breaks++;
    this.log.info({ ino: inode.ino, leases: n, untrusted: { path } }, 'lease break sent');
    return n;
  }

  /** A holder process exited: drop its leases everywhere. */
  holderDied(pid: number): void {
    for (const inode of [...this.fs.store.inodes.values()]) {
      if (inode.leases.length && this.dropLease(inode, (l) => l.pid === pid)) {
        this.stats.holderDeaths++;
        this.log.info({ ino: inode.ino, holder: pid }, 'lease holder exited: lease released');
      }
    }
  }

  /** Pids holding leases (for the holder watch). */
  *leaseHolders(): Iterable<number> {
    for (const inode of this.fs.store.inodes.values()) for (const l of inode.leases) yield l.pid;
  }

  /** Lines for MNT/.pmemfs/leases; `paths` resolves the inodes listed (see PmemService.pathResolver). */
  leaseLines(paths: (inos: number[]) => (ino: number) => string): string[] {
    const out: string[] = [];
    const now = Date.now();
    const leased = [...this.fs.store.inodes.values()].filter((i) => i.leases.length > 0);
    const pathOf = paths(leased.map((i) => i.ino));
    for (const inode of leased) {
      for (const l of inode.leases) {
        out.push(`ino=${inode.ino} path=${pathOf(inode.ino)} holder=pid:${l.pid} age_ms=${now - l.since} breaking=${l.breakDeadline === null ? 0 : 1}` +
          (l.breakDeadline === null ? '' : ` revoke_in_ms=${Math.max(0, l.breakDeadline - now)}`));
      }
    }
    return out;
  }

  /** Lines for MNT/.pmemfs/seals: every sealed inode; `paths` as for leaseLines. */
  sealLines(paths: (inos: number[]) => (ino: number) => string): string[] {
    const out: string[] = [];
    const sealed = [...this.fs.store.inodes.values()].filter((i) => i.sealKind !== 'none');
    const pathOf = paths(sealed.map((i) => i.ino));
    for (const inode of sealed) {
      out.push(`ino=${inode.ino} path=${pathOf(inode.ino)} sealed=${inode.sealKind} persistent=${inode.persistentSeal ? 1 : 0} leases=${inode.leases.length} extents=${inode.bmap.count} size=${inode.size}`);
    }
    return out;
  }

  stop(): void {
    for (const t of this.revokeTimers) clearTimeout(t);
    this.revokeTimers.clear();
  }
}
