/**
 * @file A mounted pmemfs minus the FUSE transport: the filesystem, seals,
 * pins, the holder watch, the control directory and the ioctl table, wired
 * together. The daemon puts a FUSE session in front of it; tests drive it
 * directly.
 */
import type { Logger } from 'pino';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { FsError } from './errors.js';
import { PinManager } from './pin/pin.js';
import { MAX_PINS_PER_HOLDER } from './layout/busy.js';
import { HolderWatch } from './seal/holders.js';
import { SealManager } from './seal/seal.js';
import * as uapi from './uapi.js';
import { CtlDir } from './vfs/ctl.js';
import { ROOT_CALLER, type Caller, type PmemFs } from './vfs/fs.js';
import { IoctlDispatcher, u64Field, type IoctlRequest } from './vfs/ioctl.js';
import { mountRegion, unmountRegion, type MountOptions, type Mounted } from './vfs/mount.js';
import { HOLE } from './bmap/bmap.js';
import { EXT_UNWRITTEN } from './format/fork.js';
import type { CtlFile } from './uapi.js';
const CTL_PATH = `/${uapi.CTL_DIR}/ctl`;
import { dataEnd } from './format/layout.js';
import { seededRandom } from './region/prng.js';
import type { Inode } from './inode/inode.js';
import { CTL_RULES, authorize, handleWrites } from './op/permissions.js';
import type { SourceFdResolver } from './op/source-fd.js';

export interface ServiceOptions extends MountOptions {
  leaseBreakMs: number;
  /** powerfail_at=N: emulate a power failure at the Nth persistence point since the region was opened (needs powerfail). */
  powerfailAt?: number;
  /** powerfail_seed=S: with powerfail_at, a reproducible random half of the unflushed pages reaches the media. */
  powerfailSeed?: number;
  /** Background commit interval (commit=SECONDS), in ms. */
  commitMs?: number;
  /** flush_fail_at=N: the flush of the Nth persistence point fails as a medium error would (EIO): the filesystem shuts down. */
  flushFailAt?: number;
}

/**
 * The idle-directory sweep (PmemFs.sweepIdleDirs): every 10 s, and a large
 * directory's entries leave core after 30 sweeps (five minutes) in which
 * nothing reached the daemon for them. Lookups the kernel answers from its
 * dcache do not reach it, and reading the entries again costs about 1.5-3 s
 * per million, so the wait is long: a directory in use keeps them.
 */
const DIR_SWEEP_MS = 10_000;
const DIR_IDLE_SWEEPS = 30;

/** Evictions that call for a full garbage collection (PmemService.noteEvicted). */
const GC_AFTER_EVICTIONS = 4096;

let gcFn: (() => void) | null = null;
/** A full V8 garbage collection (the runtime's `gc`, exposed on first use). */
function fullGc(): void {
  if (!gcFn) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
}

/**
 * Directory entries held in core (entry maps read) and directories in core
 * whose entries are still on media (Inode.deferRecords): what the inode
 * count alone does not show of the daemon's memory.
 */
function dirEntriesInCore(inodes: Iterable<Inode>): { dir_entries_in_core: number; dirs_unread: number } {
  let entries = 0, unread = 0;
  for (const i of inodes) {
    if (i.pendingRecords) unread++;
    else entries += i.direntsInCore?.size ?? 0;
  }
  return { dir_entries_in_core: entries, dirs_unread: unread };
}

export class PmemService {
  readonly mounted: Mounted;
  readonly fs: PmemFs;
  readonly seals: SealManager;
  readonly pinMgr: PinManager;
  readonly holders: HolderWatch;
  readonly ctl: CtlDir;
  readonly ioctls = new IoctlDispatcher();
  readonly regionPath: string;
  private readonly started = Date.now();
  /** What mounting the region took in this process (journal replay, loading, orphan recovery), ms. */
  private readonly mountMs: number;
  private readonly commitTimer: NodeJS.Timeout | null;
  private readonly dirSweepTimer: NodeJS.Timeout;
  private gcTimer: NodeJS.Timeout | null = null;
  private evictedSinceGc = 0;
  /** Set by the daemon: the FUSE transport's counters for .pmemfs/stats (absent without a mount). */
  transportStats: (() => string[]) | null = null;
  /**
   * Set by the daemon once mounted (procSourceResolver): finds the clone
   * source descriptor of a calling process. Tests may set their own.
   */
  sourceFd: SourceFdResolver | null = null;
  /** Set by the daemon: stop at once, as if the power went (ctl powerfail); the region is already the post-failure image. */
  onPowerFail: ((lostPages: number) => void) | null = null;

  constructor(regionPath: string, readonly opts: ServiceOptions, readonly log: Logger) {
    this.regionPath = regionPath;
    const t0 = performance.now();
    this.mounted = mountRegion(regionPath, opts, log.child({ module: 'mount' }));
    this.mountMs = Math.round((performance.now() - t0) * 10) / 10;
    this.fs = this.mounted.fs;
    this.seals = new SealManager(this.fs, opts.leaseBreakMs, log.child({ module: 'seal' }));
    this.pinMgr = new PinManager(this.fs, this.fs.pins, log.child({ module: 'pin' }));
    this.fs.seals = this.seals;
    this.holders = new HolderWatch((pid) => { this.seals.holderDied(pid); this.pinMgr.holderDied(pid); });
    this.holders.addSource(() => this.seals.leaseHolders());
    this.holders.addSource(() => this.fs.pins.pidHolders());
    this.holders.start();
    this.ctl = new CtlDir({ render: (f, caller) => this.render(f, caller), command: (line, caller) => this.command(line, caller) });
    this.registerIoctls();
    if (opts.powerfailAt) this.armPowerFail(opts.powerfailAt, opts.powerfailSeed ?? null);
    if (opts.flushFailAt) {
      const n = opts.flushFailAt;
      this.mounted.region.flushFault = (_point, seq) => seq === n;
    }
    this.fs.tx.onShutdown = (reason, err) => {
      this.log.error({ err, reason }, 'filesystem shut down: every change and fsync now fails with EIO; unmount and mount again to recover the last durable commit');
    };
    this.fs.onEvict = (n) => this.noteEvicted(n);
    const every = opts.commitMs ?? 5000;
    this.commitTimer = opts.readOnly ? null : setInterval(() => this.backgroundCommit(), every);
    this.commitTimer?.unref();
    this.dirSweepTimer = setInterval(() => this.fs.sweepIdleDirs(DIR_IDLE_SWEEPS), DIR_SWEEP_MS);
    this.dirSweepTimer.unref();
  }

  /**
   * Crash injection: the power fails at the start of persistence point `n`
   * (before it flushes anything). The operation that reached it fails with
   * EIO, and the daemon stops.
   */
  private armPowerFail(n: number, seed: number | null): void {
    const region = this.mounted.region;
    if (region.persistSeq >= n) { this.log.warn({ at: n, now: region.persistSeq }, 'powerfail_at: that persistence point has passed (the mount made it)'); }
    region.onPersist = (point, seq) => {
      if (seq !== n) return;
      region.onPersist = null;
      this.log.warn({ point, seq }, 'powerfail_at: the power fails now');
      this.powerFail(seed);
      throw new FsError('EIO', 'persist', undefined, `emulated power failure at persistence point ${seq} (${point})`);
    };
  }

  /**
   * Many inodes left core (the kernel forgot them, e.g. drop_caches): a
   * full garbage collection a moment after the last of them gives their
   * memory back to the system. V8 left alone keeps the pages of a heap that
   * shrank, so the daemon's RSS would stay at its high-water mark.
   */
  private noteEvicted(n: number): void {
    this.evictedSinceGc += n;
    if (this.evictedSinceGc < GC_AFTER_EVICTIONS) return;
    if (this.gcTimer) clearTimeout(this.gcTimer);
    this.gcTimer = setTimeout(() => {
      this.gcTimer = null;
      this.evictedSinceGc = 0;
      const t0 = Date.now(), before = process.memoryUsage();
      fullGc();
      const after = process.memoryUsage();
      const mib = (k: 'rss' | 'heapTotal' | 'heapUsed' | 'external') => [before[k] >> 20, after[k] >> 20];
      this.log.debug({ ms: Date.now() - t0, rssMiB: mib('rss'), heapTotalMiB: mib('heapTotal'), heapUsedMiB: mib('heapUsed'), externalMiB: mib('external') },
        'inode cache: memory of evicted inodes returned');
    }, 500);
    this.gcTimer.unref();
  }

  /** The commit=SECONDS timer: bounds what a power failure can take. */
  private backgroundCommit(): void {
    if (!this.fs.tx.running || !this.fs.tx.dirty) return;
    // A failure shuts the filesystem down (TxManager.commit), which logs why.
    try { this.fs.tx.commit('timer'); } catch { /* shut down */ }
  }

  /** Clean unmount of the region (after the FUSE session ended). */
  close(): void {
    if (this.commitTimer) clearInterval(this.commitTimer);
    clearInterval(this.dirSweepTimer);
    if (this.gcTimer) clearTimeout(this.gcTimer);
    this.holders.stop();
    this.seals.stop();
    if (this.fs.tx.halted) return;   // power failure emulated: nothing more reaches the media
    // Shut down: nothing more is written, but the failed write-backs get the media's old content back.
    if (!this.fs.tx.running) { this.mounted.region.close(); return; }
    unmountRegion(this.mounted);
  }

  /**
   * ctl `powerfail [SEED]`: the region file becomes what the media would hold
   * had the power gone now — every store not yet flushed by a persistence
   * point lost, or with SEED a reproducible random half of those pages kept —
   * and the daemon stops without flushing anything more.
   * @throws FsError EOPNOTSUPP on a mount with -o nopowerfail (stores must be recorded from mount on)
   */
  powerFail(seed: number | null): number {
    const region = this.mounted.region;
    if (!region.recording) throw new FsError('EOPNOTSUPP', 'powerfail', undefined, 'this mount was made with -o nopowerfail: unflushed stores are not recorded');
    this.fs.tx.halt();
    const rand = seed === null ? null : seededRandom(seed);
    const coin = rand ? () => rand() < 0.5 : () => true;
    const lost = region.powerFail(() => coin());
    this.log.warn({ lostPages: lost, seed }, 'power failure emulated: the daemon stops now');
    this.onPowerFail?.(lost);
    return lost;
  }

  /**
   * ino → a path, for control-file lines, for the reader `caller`: a walk
   * from the root that stops once every inode in `wanted` is found. For a
   * non-root reader it descends only into directories that reader may
   * search (mode bits, owner and primary group: a FUSE request carries no
   * supplementary groups, so the check errs on the side of hiding), so a
   * name inside another user's 0700 directory is never shown: "(hidden)"
   * stands there, beside the inode number every line carries. An unlinked
   * inode is "(deleted)".
   */
  pathResolver(wanted: Iterable<number>, caller: Caller): (ino: number) => string {
    const want = new Set(wanted);
    const paths = new Map<number, string>();
    const root = this.fs.root();
    const mayWalk = (dir: Inode) => caller.uid === 0 || mayExec(dir, caller);
    if (want.delete(root.ino)) paths.set(root.ino, '/');
    const stack: Array<[Inode, string]> = want.size && mayWalk(root) ? [[root, '']] : [];
    while (stack.length && want.size) {
      const [dir, prefix] = stack.pop()!;
      for (const [name, ino] of dir.dirents!) {
        const p = `${prefix}/${name}`;
        if (want.delete(ino)) paths.set(ino, p);
        const child = this.fs.inodeOf(ino);
        if (child?.isDir && mayWalk(child)) stack.push([child, p]);
      }
    }
    return (ino) => paths.get(ino) ?? (this.fs.inodeOf(ino)?.nlink ? '(hidden)' : '(deleted)');
  }

  private render(file: Exclude<CtlFile, 'ctl'>, caller: Caller): string {
    const lines = (l: string[]) => (l.length ? l.join('\n') + '\n' : '');
    switch (file) {
      case 'busy': return lines(this.pinMgr.busyLines(this.pathResolver(this.fs.pins.all().map((p) => p.ino), caller)));
      case 'seals': return lines(this.seals.sealLines((inos) => this.pathResolver(inos, caller)));
      case 'leases': return lines(this.seals.leaseLines((inos) => this.pathResolver(inos, caller)));
      case 'stats': return lines(this.statsLines());
    }
  }

  private statsLines(): string[] {
    const f = this.fs, sb = f.store.sb, a = f.store.alloc;
    const kv = (o: object) => Object.entries(o).map(([k, v]) => `${k}=${v}`).join(' ');
    const persist = Object.fromEntries(f.store.region.persistCounts);
    const failed = f.store.region.failed;
    return [
      `subsystem=region path=${this.regionPath} size=${sb.regionSize} block_size=${sb.blockSize} dax=${f.opts.dax} read_only=${f.opts.readOnly ? 1 : 0} uptime_ms=${Date.now() - this.started} mount_ms=${this.mountMs} recovered=${this.mounted.recovered ? 1 : 0} shutdown=${f.tx.shutdownReason === null ? 0 : 1}`,
      ...(f.tx.shutdownReason === null ? [] : [`subsystem=shutdown ${kv({ failed_point: failed?.point ?? 'none', failed_seq: failed?.seq ?? 0 })}`]),
      `subsystem=alloc ${kv({ data_blocks: dataEnd(sb) - sb.dataStart, free_blocks: a.freeBlocks, available_blocks: a.availableBlocks, reserve_blocks: a.reserve, free_extents: a.freeExtentCount })}`,
      `subsystem=inodes ${kv({ total: sb.inodeCount, used: f.store.inodesInUse, high_water: sb.inodeHwm, in_core: f.store.inodes.size, cache_limit: f.inodeCacheLimit, evicted: f.evictions, on_demand: f.store.onDemand ? 1 : 0, damaged: f.store.damaged.size, ...dirEntriesInCore(f.store.inodes.values()) })}`,
      `subsystem=op ${kv(f.ops.stats)}`,
      `subsystem=tx ${kv(f.tx.stats)}`,
      `subsystem=journal ${kv({ ...f.tx.journal.stats, next_seq: f.tx.journal.seq, running_blocks: f.tx.journal.dirtyBlocks, log_blocks: sb.journalBlocks, busy_blocks: a.busyBlocks, commit_ms: this.opts.commitMs ?? 5000 })}`,
      `subsystem=persist ${kv({ data: 0, log: 0, commit: 0, superblock: 0, all: 0, ...persist, seq: f.store.region.persistSeq, unflushed_pages: f.store.region.unflushedPages, recording: f.store.region.recording ? 1 : 0, preimage_reads: f.store.region.preImageReads, stores: f.store.region.stores })}`,
      `subsystem=guard ${kv({ ...f.guard.stats, busy_policy: this.opts.busy, busy_timeout_ms: this.opts.busyTimeoutMs })}`,
      `subsystem=seal ${kv(this.seals.stats)}`,
      `subsystem=reflink ${kv({ shared_extents: f.store.refcount.size, ...f.data.share })}`,
      `subsystem=pin ${kv({ active: f.pins.size, ...this.pinMgr.stats, max_per_holder: MAX_PINS_PER_HOLDER })}`,
      ...(this.transportStats?.() ?? []),
    ];
  }

  /** One MNT/.pmemfs/ctl command. @throws FsError EINVAL when malformed (nothing changed) */
  private async command(line: string, caller: Caller): Promise<void> {
    const words = line.split(/\s+/).filter(Boolean);
    const bad = (why: string) => new FsError('EINVAL', 'ctl', undefined, `${why}; commands: pin PATH OFF LEN | unpin ID | break PATH | powerfail [SEED]`);
    const num = (s: string | undefined, what: string) => {
      if (s === undefined || !/^(0x[0-9a-f]+|\d+)$/i.test(s)) throw bad(`${what} must be a number`);
      const n = Number(s);
      if (!Number.isSafeInteger(n)) throw bad(`${what} out of range`);
      return n;
    };
    const rule = CTL_RULES.get(words[0] ?? '');
    if (!rule) throw bad(`unknown command '${words[0] ?? ''}'`);
    authorize(rule, { caller, inode: null, handle: null, path: CTL_PATH });
    switch (words[0]) {
      case 'pin': {
        if (words.length !== 4) throw bad('pin takes PATH OFF LEN');
        const off = num(words[2], 'OFF'), len = num(words[3], 'LEN');
        const inode = this.fs.resolve(words[1]);
        const { pins } = this.pinMgr.pin(inode, words[1], off, len, { kind: 'admin' });
        this.log.info({ pins: pins.map((p) => p.id), untrusted: { path: words[1] } }, 'admin pin');
        return;
      }
      case 'unpin':
        if (words.length !== 2) throw bad('unpin takes ID');
        this.pinMgr.unpin(num(words[1], 'ID'), ROOT_CALLER);
        return;
      case 'break':
        if (words.length !== 2) throw bad('break takes PATH');
        this.seals.breakLeases(words[1], caller);
        return;
      case 'powerfail':
        if (words.length > 2) throw bad('powerfail takes an optional SEED');
        this.powerFail(words.length === 2 ? num(words[1], 'SEED') : null);
        return;
      default:
        throw bad(`unknown command '${words[0] ?? ''}'`);
    }
  }

  /**
   * The ioctl handlers. Who may call each is decided before a handler runs,
   * by the rule of src/op/permissions.ts (IoctlDispatcher.dispatch); the
   * handlers decode the payload and call one operation.
   */
  private registerIoctls(): void {
    const d = this.ioctls, fs = this.fs;
    const range = (r: IoctlRequest, op: string) => ({ off: u64Field(r.input!, uapi.RANGE.off, 'offset', op), len: u64Field(r.input!, uapi.RANGE.len, 'length', op) });
    d.register(uapi.PMEMFS_IOC_SEAL, (r) => { this.seals.seal(r.inode, r.caller); return null; });
    d.register(uapi.PMEMFS_IOC_UNSEAL, (r) => { this.seals.unseal(r.inode, r.caller); return null; });
    d.register(uapi.PMEMFS_IOC_LEASE, (r) => { this.seals.lease(r.handle!.fh, r.path, r.caller); return null; });
    d.register(uapi.PMEMFS_IOC_UNLEASE, (r) => { this.seals.unlease(r.inode, r.path, r.caller); return null; });
    d.register(uapi.PMEMFS_IOC_BREAK, (r) => { this.seals.breakLeases(r.inode, r.caller); return null; });
    d.register(uapi.FS_IOC_FSGETXATTR, (r) => {
      const out = Buffer.alloc(uapi.FSXATTR.size);
      let x = 0;
      if (r.inode.sealKind !== 'none') x |= uapi.PMEMFS_XFLAG_SEALED;
      if (fs.opts.dax === 'always') x |= uapi.FS_XFLAG_DAX;
      out.writeUInt32LE(x >>> 0, uapi.FSXATTR.xflags);
      out.writeUInt32LE(r.inode.bmap.count, uapi.FSXATTR.nextents);
      return out;
    });
    d.register(uapi.FS_IOC_FSSETXATTR, (r) => {
      const inode = r.inode;
      const inp = r.input!;
      const x = inp.readUInt32LE(uapi.FSXATTR.xflags);
      const other = x & ~(uapi.FS_XFLAG_DAX | uapi.PMEMFS_XFLAG_SEALED);
      if (other || inp.readUInt32LE(uapi.FSXATTR.extsize) || inp.readUInt32LE(uapi.FSXATTR.projid) || inp.readUInt32LE(uapi.FSXATTR.cowextsize)) {
        throw new FsError('EOPNOTSUPP', 'fssetxattr', r.path, 'only FS_XFLAG_DAX and the seal flag can be set');
      }
      if ((x & uapi.FS_XFLAG_DAX) && fs.opts.dax !== 'always') throw new FsError('EOPNOTSUPP', 'fssetxattr', r.path, 'per-file DAX needs a dax=always mount');
      const wantSeal = (x & uapi.PMEMFS_XFLAG_SEALED) !== 0;
      if (wantSeal !== (inode.sealKind !== 'none')) {
        if (wantSeal) this.seals.seal(inode, r.caller); else this.seals.unseal(inode, r.caller);
      }
      return null;
    });
    for (const [cmd, mode] of [[uapi.PMEMFS_IOC_FCOLLAPSE, 'collapse'], [uapi.PMEMFS_IOC_FINSERT, 'insert']] as const) {
      d.register(cmd, async (r) => {
        const { off, len } = range(r, mode);
        await fs.shift(r.inode, mode, off, len, r.handle!.fh);
        fs.externalChange(r.inode, true);   // the data moved under the page cache
        return null;
      });
    }
    d.register(uapi.PMEMFS_IOC_FUNSHARE, async (r) => {
      const { off, len } = range(r, 'unshare');
      await fs.unshare(r.inode, off, len, r.handle!.fh);
      fs.externalChange(r.inode, false);   // st_blocks may grow (holes preallocated)
      return null;
    });
    d.register(uapi.PMEMFS_IOC_REFLINK, async (r) => {
      const i = r.input!;
      const f = (off: number, what: string) => u64Field(i, off, what, 'reflink');
      const src = this.sourceInode(r, i.readBigInt64LE(uapi.REFLINK.srcFd), 'reflink');
      await fs.remap(r.inode, src, f(uapi.REFLINK.srcOff, 'source offset'), f(uapi.REFLINK.dstOff, 'destination offset'), f(uapi.REFLINK.len, 'length'), false, r.caller);
      fs.externalChange(r.inode, true);   // the destination's data changed under its page cache
      return null;
    });
    d.register(uapi.PMEMFS_IOC_DEDUPE, async (r) => {
      const i = r.input!;
      const f = (off: number, what: string) => u64Field(i, off, what, 'dedupe');
      const src = this.sourceInode(r, i.readBigInt64LE(uapi.DEDUPE.srcFd), 'dedupe');
      const out = Buffer.from(i.subarray(0, uapi.DEDUPE.size));
      // As FIDEDUPERANGE: a per-destination failure is reported in status, the ioctl itself succeeds.
      try {
        const res = await fs.remap(r.inode, src, f(uapi.DEDUPE.srcOff, 'source offset'), f(uapi.DEDUPE.dstOff, 'destination offset'), f(uapi.DEDUPE.len, 'length'), true, r.caller);
        out.writeBigUInt64LE(BigInt(res.bytes), uapi.DEDUPE.bytesDeduped);
        out.writeInt32LE(res.differs ? uapi.FILE_DEDUPE_RANGE_DIFFERS : uapi.FILE_DEDUPE_RANGE_SAME, uapi.DEDUPE.status);
      } catch (e) {
        if (!(e instanceof FsError)) throw e;
        out.writeBigUInt64LE(0n, uapi.DEDUPE.bytesDeduped);
        out.writeInt32LE(-e.errno, uapi.DEDUPE.status);
      }
      return out;
    });
    d.register(uapi.PMEMFS_IOC_GETBMAP, (r) => this.getbmap(r.inode, r));
    d.register(uapi.PMEMFS_IOC_REGION, () => {
      const out = Buffer.alloc(uapi.REGION.size);
      const sb = fs.store.sb;
      out.writeBigUInt64LE(BigInt(sb.regionSize), uapi.REGION.regionSize);
      out.writeBigUInt64LE(BigInt(sb.dataStart * sb.blockSize), uapi.REGION.dataStart);
      out.writeUInt32LE(sb.blockSize, uapi.REGION.blockSize);
      out.writeUInt32LE(fs.opts.dax === 'always' ? uapi.REGION_F_DAX : 0, uapi.REGION.flags);
      const p = Buffer.from(this.regionPath);
      if (p.length >= uapi.REGION.pathMax) throw new FsError('ENAMETOOLONG', 'region', undefined, 'region path too long for the ioctl');
      p.copy(out, uapi.REGION.path);
      return out;
    });
    d.register(uapi.PMEMFS_IOC_PIN, (r) => {
      const off = u64Field(r.input!, uapi.PIN.off, 'offset', 'pin');
      const len = u64Field(r.input!, uapi.PIN.len, 'length', 'pin');
      // Through a handle open for writing the holder may store: holes are filled and shared blocks unshared first.
      const access = handleWrites(r.handle) ? 'write' : 'read';
      const { pins, done } = this.pinMgr.pin(r.inode, r.path, off, len, { kind: 'pid', pid: r.caller.pid, uid: r.caller.uid }, uapi.PIN_MAX_RECS, access);
      const out = Buffer.alloc(uapi.PIN.size);
      out.writeBigUInt64LE(BigInt(off), uapi.PIN.off);
      out.writeBigUInt64LE(BigInt(len), uapi.PIN.len);
      out.writeBigUInt64LE(BigInt(done), uapi.PIN.done);
      out.writeUInt32LE(pins.length, uapi.PIN.count);
      pins.forEach((p, i) => {
        const o = uapi.PIN.recs + i * uapi.PIN_REC.size;
        out.writeBigUInt64LE(BigInt(p.id), o + uapi.PIN_REC.id);
        out.writeBigUInt64LE(BigInt(p.fileOff), o + uapi.PIN_REC.fileOff);
        out.writeBigUInt64LE(BigInt(p.phys), o + uapi.PIN_REC.phys);
        out.writeBigUInt64LE(BigInt(p.len), o + uapi.PIN_REC.len);
      });
      return out;
    });
    d.register(uapi.PMEMFS_IOC_UNPIN, (r) => {
      this.pinMgr.unpin(u64Field(r.input!, uapi.UNPIN.id, 'pin id', 'unpin'), r.caller);
      return null;
    });
  }

  /**
   * The clone/dedupe source: descriptor `fd` of the calling process, open
   * for reading on this mount (FICLONE's src_fd; src/op/source-fd.ts).
   * @throws FsError EBADF (no such descriptor, not open for reading, or not a live inode), EXDEV (another filesystem)
   */
  private sourceInode(r: IoctlRequest, fd: bigint, op: string): Inode {
    if (!this.sourceFd) throw new FsError('EOPNOTSUPP', op, r.path, 'no source descriptor resolver on this service (not mounted)');
    if (fd < 0n || fd > 0x7fffffffn) throw new FsError('EBADF', op, r.path, `source descriptor ${fd}`);
    const { ino } = this.sourceFd(r.caller, Number(fd), op);
    const src = this.fs.inodeOf(ino);
    if (!src) throw new FsError('EBADF', op, r.path, `source descriptor ${fd} names no live inode`);
    return src;
  }

  /** PMEMFS_IOC_GETBMAP: records from `start` up to EOF rounded up to the block size, holes included. */
  private getbmap(inode: Inode, r: IoctlRequest): Buffer {
    const bs = this.fs.blockSize;
    const start = u64Field(r.input!, uapi.BMAP.start, 'start', 'getbmap');
    const endBlock = Math.ceil(inode.size / bs);
    const out = Buffer.alloc(uapi.BMAP.size);
    let b = Math.floor(start / bs), n = 0;
    if (b < endBlock) {
      const refs = this.fs.store.refcount;
      // Mapped pieces cut where their sharing changes, so `bmap -v` shows a COW split.
      const segs = inode.bmap.map(b, endBlock - b).flatMap((seg) => seg.regionBlock === HOLE || refs.empty ? [seg]
        : refs.segments(seg.regionBlock, seg.len).map((p) => ({ ...seg, fileBlock: seg.fileBlock + p.start - seg.regionBlock, regionBlock: p.start, len: p.len, shared: p.count > 1 })));
      for (const seg of segs) {
        if (n === uapi.BMAP_MAX_RECS) break;
        const o = uapi.BMAP.recs + n * uapi.BMAP_REC.size;
        let flags = 0;
        if (seg.regionBlock === HOLE) flags |= uapi.BMAP_F_HOLE;
        if (seg.flags & EXT_UNWRITTEN) flags |= uapi.BMAP_F_UNWRITTEN;
        if ('shared' in seg && seg.shared) flags |= uapi.BMAP_F_SHARED;
        if (inode.sealKind !== 'none') flags |= uapi.BMAP_F_SEALED;
        out.writeBigUInt64LE(BigInt(seg.fileBlock * bs), o + uapi.BMAP_REC.fileOff);
        out.writeBigUInt64LE(BigInt(seg.len * bs), o + uapi.BMAP_REC.len);
        out.writeBigUInt64LE(seg.regionBlock === HOLE ? uapi.BMAP_PHYS_NONE : BigInt(seg.regionBlock * bs), o + uapi.BMAP_REC.phys);
        out.writeUInt32LE(flags, o + uapi.BMAP_REC.flags);
        b = seg.fileBlock + seg.len;
        n++;
      }
    }
    out.writeUInt32LE(n, uapi.BMAP.count);
    out.writeUInt32LE(b < endBlock ? uapi.BMAP_MORE : 0, uapi.BMAP.flags);
    out.writeBigUInt64LE(BigInt(inode.size), uapi.BMAP.fsize);
    out.writeBigUInt64LE(BigInt(Math.max(start, b * bs)), uapi.BMAP.next);
    return out;
  }
}

/** Whether caller may search directory `dir` by its mode bits (the x bit of owner, group or other, whichever applies). */
function mayExec(dir: Inode, caller: Caller): boolean {
  if (caller.uid === dir.uid) return (dir.mode & 0o100) !== 0;
  if (caller.gid === dir.gid) return (dir.mode & 0o010) !== 0;
  return (dir.mode & 0o001) !== 0;
}
