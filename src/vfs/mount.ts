/**
 * @file Formatting and mounting a region: everything between a region file
 * name and a ready PmemFs. Mount validates the superblock, replays the
 * journal when the region was not unmounted cleanly, loads the free-space
 * bitmap, the reference counts, the in-core list and the root (inodes are
 * read on demand, FEAT_INCOMPAT_ICACHE); with `-o check`, or on an older
 * region, it loads and validates every inode (extents inside the data area
 * and not overlapping, marked in use, the directory tree rooted and
 * acyclic). It marks the superblock DIRTY and frees orphans left by a crash. Unmount commits, flushes everything,
 * and only then writes CLEAN (and the backup superblock).
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { Allocator } from '../alloc/allocator.js';
import {
  computeGeometry, dataEnd, decodeSuperblock, FEAT_INCOMPAT_DATALOG, FEAT_INCOMPAT_ICACHE, FEAT_INCOMPAT_LOG2, FEAT_INCOMPAT_SUPPORTED, FEAT_RO_COMPAT_SUPPORTED, FormatError, geometryDiffers,
  ROOT_INO, SB_SIZE, SB_STATE_CLEAN, SB_STATE_DIRTY, type Superblock,
} from '../format/layout.js';
import { Journal } from '../journal/journal.js';
import { TxManager } from '../journal/tx.js';
import { Operations } from '../op/operation.js';
import { PinRegistry } from '../layout/busy.js';
import { loadNative } from '../native.js';
import { Region } from '../region/region.js';
import { LayoutGuard, type GuardOptions } from '../layout/guard.js';
import { PmemFs, type FsOptions } from './fs.js';
import { Inode, S_IFDIR } from '../inode/inode.js';
import { InodeStore } from '../inode/store.js';
import { mountBlocker, validate } from '../inode/validate.js';
import { moduleLog } from '../log.js';
import { regionOff } from '../types.js';

export interface FormatOptions {
  size?: number; blockSize: number; label: string; bytesPerInode?: number; inodeCount?: number; journalBlocks?: number;
  /** Owner of the root directory (default 0:0; mkfs.pmemfs passes its caller's, as mke2fs does). */
  rootUid?: number; rootGid?: number;
  /**
   * Write the whole region file (zeroes, O_DIRECT) before formatting it, so
   * that the host filesystem has allocated every block: a flush never waits
   * for the host to allocate a block the region uses for the first time (as
   * on a pmem device). Default false: the region file starts sparse.
   */
  preallocate?: boolean;
}

/** The engine objects over one mapped region (mount, mkfs and fsck build the same stack). */
export interface Engine { sb: Superblock; region: Region; journal: Journal; alloc: Allocator; store: InodeStore; tx: TxManager; ops: Operations }

/** Build the engine over a mapped region (nothing loaded yet). */
export function engine(sb: Superblock, region: Region): Engine {
  const journal = new Journal(region, sb, sb.journalSeq + 1);
  const alloc = new Allocator({ totalBlocks: sb.totalBlocks, dataStart: sb.dataStart, dataEnd: dataEnd(sb), bitmapStart: sb.bitmapStart, blockSize: sb.blockSize });
  const store = new InodeStore(sb, region, alloc, journal);
  const tx = new TxManager(store);
  return { sb, region, journal, alloc, store, tx, ops: new Operations(tx, (ino) => store.get(ino)) };
}

/**
 * Write a fresh filesystem into `path` (created sparse, or resized to `size`
 * bytes when given). Returns the superblock written.
 * @throws FormatError for an impossible geometry; fs errors for I/O
 */
export function formatRegion(path: string, o: FormatOptions): Superblock {
  const exists = fs.existsSync(path);
  const size = o.size ?? (exists ? fs.statSync(path).size : 0);
  const geo = computeGeometry({ regionSize: size, blockSize: o.blockSize, bytesPerInode: o.bytesPerInode, inodeCount: o.inodeCount, journalBlocks: o.journalBlocks });
  const fd = fs.openSync(path, exists ? 'r+' : 'w+');
  try {
    fs.ftruncateSync(fd, 0);            // drop old contents: the region starts sparse and zeroed
    fs.ftruncateSync(fd, geo.regionSize);
    if (o.preallocate) preallocateRegion(fd, path, geo.regionSize);
  } finally { fs.closeSync(fd); }
  const now = Math.floor(Date.now() / 1000);
  const sb: Superblock = {
    ...geo, uuid: Buffer.from(randomUUID().replace(/-/g, ''), 'hex'), label: o.label,
    mkfsTime: now, lastMountTime: 0, mountCount: 0, generation: 1, state: SB_STATE_DIRTY, flags: 0, inodeHwm: ROOT_INO,
    journalSeq: 0, refcountRoot: 0, dataSeq: 0, inodesUsed: 0, ilistRoot: 0,
  };
  const region = Region.open(path);
  try {
    const e = engine(sb, region);
    // The empty bitmap goes straight home (it may be larger than the log); the root through the journal.
    e.alloc.loadFromUsage([]);
    for (const { index, image } of e.alloc.takeDirtyBitmap()) region.write(regionOff((sb.bitmapStart + index) * sb.blockSize), image, 0, image.length);
    e.ops.apply('mkfs', [], () => {
      const root = new Inode(ROOT_INO, S_IFDIR | 0o755, o.rootUid ?? 0, o.rootGid ?? 0);
      root.nlink = 2;
      root.parent = ROOT_INO;
      e.store.add(root);
      e.store.ensureIlist();
      e.store.writeSuperblockImage();
    });
    e.tx.commit('mkfs');
    markClean(e);
  } finally {
    region.close();
  }
  return sb;
}

/**
 * Write zeroes over the first `size` bytes of the (empty, sparse) region file
 * so the host allocates its blocks now: with O_DIRECT (none stays in the
 * page cache), else — a filesystem that refuses O_DIRECT — with ordinary
 * writes and one fdatasync.
 * @throws Error (the host's write or fdatasync errors, e.g. ENOSPC: the host has no room for the region)
 */
function preallocateRegion(fd: number, path: string, size: number): void {
  const aligned = size - (size % 4096);
  try {
    loadNative().zeroDirect(fd, 0, aligned);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw new Error(`preallocating ${path}: ${(e as Error).message}`);
    const zero = Buffer.alloc(1 << 20);
    for (let at = 0; at < aligned; at += zero.length) fs.writeSync(fd, zero, 0, Math.min(zero.length, aligned - at), at);
    fs.fdatasyncSync(fd);
  }
  if (aligned < size) { fs.writeSync(fd, Buffer.alloc(size - aligned), 0, size - aligned, aligned); fs.fdatasyncSync(fd); }
}

/** Read and validate the superblock of a region file without mapping it. @throws FormatError */
export function readSuperblock(path: string): Superblock {
  const fd = fs.openSync(path, 'r');
  try {
    const st = fs.fstatSync(fd);
    const buf = Buffer.alloc(SB_SIZE);
    const n = fs.readSync(fd, buf, 0, SB_SIZE, 0);
    if (n < SB_SIZE) throw new FormatError(`${path} is ${st.size} bytes: too short to be a pmemfs region`);
    const sb = decodeSuperblock(buf);
    if (st.size < sb.regionSize) {
      throw new FormatError(`${path} is truncated: ${st.size} bytes, the superblock says ${sb.regionSize} (restore the region file, or run fsck.pmemfs)`);
    }
    return sb;
  } finally { fs.closeSync(fd); }
}

export interface MountOptions extends FsOptions, GuardOptions {
  /** Keep pre-images of unflushed pages so a power failure can be emulated (test and ctl `powerfail`). */
  powerfail?: boolean;
  /**
   * `-o check`: load and cross-check every inode at mount, refusing a
   * damaged region (what fsck.pmemfs -n checks), instead of reading
   * inodes on demand. Always so on a region without FEAT_INCOMPAT_ICACHE.
   */
  check?: boolean;
  /** `-o inode_cache=N`: in-core inodes kept once the kernel forgets them (PmemFs.inodeCacheLimit). */
  inodeCache?: number;
}

export interface Mounted {
  fs: PmemFs;
  region: Region;
  engine: Engine;
  /** The region was not unmounted cleanly (crash, power failure, kill -9). */
  recovered: boolean;
  /** Blocks of a committed transaction replayed from the journal. */
  replayed: number;
  problems: string[];
}

/** Flush everything, then write CLEAN into both superblocks. */
function markClean(e: Engine): void {
  e.region.persistDirty('data');
  e.sb.state = SB_STATE_CLEAN;
  e.sb.journalSeq = e.journal.seq - 1;
  e.store.persistSuperblock();
  e.store.persistBackupSuperblock();
}

/**
 * An older region's one-area log becomes two areas (FEAT_INCOMPAT_LOG2),
 * after recovery and before anything commits: the log is zeroed and
 * flushed, then the superblock with the feature is written and flushed, so a
 * crash in between leaves either form readable.
 * @returns true when the region was converted
 */
export function convertToTwoAreas(e: Engine): boolean {
  if (e.journal.twoAreas) return false;
  e.journal.zeroLog();
  e.sb.featuresIncompat |= FEAT_INCOMPAT_LOG2;
  e.store.persistSuperblock();
  return true;
}

/**
 * The superblock as the replayed journal left it. It must keep the geometry
 * the engine was built with (the allocator, the journal and the inode table
 * are placed by it).
 * @throws FormatError when it does not decode or moves a structure
 */
export function replayedSuperblock(e: Engine): Superblock {
  const sb = decodeSuperblock(e.journal.read(0));
  const moved = geometryDiffers(e.sb, sb);
  if (moved) throw new FormatError(`the journal's superblock image changes the region's geometry (${moved}) (run fsck.pmemfs)`);
  if (sb.featuresIncompat & ~FEAT_INCOMPAT_SUPPORTED) {
    throw new FormatError(`the journal's superblock image uses unsupported features 0x${sb.featuresIncompat.toString(16)} (run fsck.pmemfs)`);
  }
  return sb;
}

/** Directories one conversion step rewrites (each a slot in the log). */
const CONVERT_CHUNK = 256;

/**
 * Write the FEAT_INCOMPAT_ICACHE bookkeeping from a fully loaded, checked
 * tree (`parentOf`: Validation.parentOf): each directory's parent into its
 * slot, the in-core list from the orphan and seal flags, the count of slots
 * in use, and the feature bit. The directories are rewritten in rolled
 * transactions; the bit is set by the last one, so a crash before it leaves
 * a region that is converted (or repaired) again. The first read-write
 * mount of an older region and fsck -y call it.
 */
export function writeIcache(e: Engine, parentOf: ReadonlyMap<number, number>, opName: string): void {
  const { store } = e;
  const dirs = [...parentOf].map(([ino, parent]) => ({ inode: store.inodes.get(ino)!, parent })).filter((d) => d.inode.parent !== d.parent);
  const op = e.ops.begin(opName);
  for (let i = 0; i < dirs.length; i += CONVERT_CHUNK) {
    op.roll((t) => { for (const d of dirs.slice(i, i + CONVERT_CHUNK)) { t.markDirty(d.inode); d.inode.parent = d.parent; } });
  }
  op.apply((t) => {
    t.markDirty(store.inodes.get(ROOT_INO)!);
    store.ensureIlist();
    store.rebuildIlist();
    e.sb.inodesUsed = store.inodes.size;
    e.sb.featuresIncompat |= FEAT_INCOMPAT_ICACHE;
    store.writeSuperblockImage();
  });
}

/**
 * Replay the journal if the region was not unmounted cleanly, then load the
 * bitmap, the reference counts and the in-core list, and then the root and
 * that list (`onDemand` on an ICACHE region) or every inode. `dryRun`
 * (read-only users) replays into memory only.
 * @throws FormatError naming the damage and the fix
 */
export function loadEngine(e: Engine, dryRun: boolean, log: Logger, onDemand = false): { recovered: boolean; replayed: number; problems: string[]; lazy: boolean } {
  const recovered = e.sb.state !== SB_STATE_CLEAN;
  let replayed = 0;
  if (recovered) {
    const r = e.journal.recover(dryRun);
    if (dryRun && r.dataPending) {
      throw new FormatError(`the region was not unmounted cleanly and its journal holds ${r.dataPending} block(s) of file data to replay, which a read-only mount cannot write (mount it read-write once, or run fsck.pmemfs -y)`);
    }
    for (const tx of r.replayed) {
      replayed += tx.homes.length;
      log.warn({ seq: tx.seq, blocks: tx.homes.length }, 'journal: replayed a committed transaction');
    }
    for (const k of r.skipped) log.warn({ seq: k.seq, why: k.why }, 'journal: not replayed');
    if (r.replayed.length) Object.assign(e.sb, replayedSuperblock(e), { state: e.sb.state });
  } else {
    e.journal.seq = Math.max(e.journal.seq, e.journal.newestSeq() + 1);
  }
  e.alloc.loadBitmap((i) => e.journal.readScan(e.sb.bitmapStart + i));
  try {
    e.store.loadRefcounts();
  } catch (err) {
    if (err instanceof FormatError) throw new FormatError(`${err.message} (run fsck.pmemfs -y: it rebuilds the reference counts from the block maps)`);
    throw err;
  }
  try {
    e.store.loadIlist();
  } catch (err) {
    if (err instanceof FormatError) throw new FormatError(`${err.message} (run fsck.pmemfs -y: it rebuilds the list from the inodes' flags)`);
    throw err;
  }
  const lazy = onDemand && (e.sb.featuresIncompat & FEAT_INCOMPAT_ICACHE) !== 0;
  const problems = (lazy ? e.store.loadLazy() : e.store.loadAll()).map((p) => p.message);
  return { recovered, replayed, problems, lazy };
}

/**
 * Open a region for use: validate, map, load inodes, recover after a crash.
 * The caller holds the region lock (src/cli/daemon.ts).
 * @throws FormatError naming the problem and the fix
 */
export function mountRegion(path: string, o: MountOptions, log: Logger = moduleLog('mount')): Mounted {
  const sb = readSuperblock(path);
  if (sb.featuresIncompat & ~FEAT_INCOMPAT_SUPPORTED) {
    throw new FormatError(`region uses unsupported features 0x${sb.featuresIncompat.toString(16)}: upgrade pmemfs`);
  }
  const readOnly = o.readOnly || (sb.featuresRoCompat & ~FEAT_RO_COMPAT_SUPPORTED) !== 0;
  const region = Region.open(path, { readOnly });
  try {
    if (o.powerfail && !readOnly) region.recordUnflushed();
    const e = engine(sb, region);
    const { recovered, replayed, problems, lazy } = loadEngine(e, readOnly, log, !o.check);
    if (problems.length) {
      throw new FormatError(`${problems.length} damaged inode(s), first: ${problems[0]} (run fsck.pmemfs -y)`);
    }
    const root = e.store.inodes.get(ROOT_INO);
    if (!root || !root.isDir) throw new FormatError('the root inode is missing or not a directory (run fsck.pmemfs -y)');
    let parentOf: ReadonlyMap<number, number> | null = null;
    if (!lazy) {
      const v = validate(e.store, e.alloc);
      parentOf = v.parentOf;
      const blocker = mountBlocker(v);
      if (blocker) throw new FormatError(`${blocker} (run fsck.pmemfs -y)`);
      if (v.leaked) log.warn({ blocks: v.leaked }, 'free-space bitmap marks blocks in use that nothing references (fsck.pmemfs -y frees them)');
    }
    const pins = new PinRegistry();
    const guard = new LayoutGuard(pins, o, log.child({ module: 'guard' }));
    const pfs = new PmemFs({ store: e.store, tx: e.tx, ops: e.ops, guard, pins, opts: { dax: o.dax, readOnly, inodeCache: o.inodeCache }, log });
    if (!readOnly) {
      if (convertToTwoAreas(e)) log.info('journal: log converted to two areas (FEAT_INCOMPAT_LOG2; older pmemfs versions refuse this region now)');
      if (!(sb.featuresIncompat & FEAT_INCOMPAT_ICACHE) && parentOf) {
        writeIcache(e, parentOf, 'convert');
        log.info({ inodes: sb.inodesUsed }, 'inodes: parents, counts and the in-core list written; later mounts read inodes on demand (FEAT_INCOMPAT_ICACHE; older pmemfs versions refuse this region now)');
      }
      if (!(sb.featuresIncompat & FEAT_INCOMPAT_DATALOG)) {
        sb.featuresIncompat |= FEAT_INCOMPAT_DATALOG;
        log.info('journal: commits may now log small file data (FEAT_INCOMPAT_DATALOG; older pmemfs versions refuse this region now)');
      }
      // Everything replayed is home and flushed (Journal.recover): no transaction now in the log is to be replayed again.
      if (recovered) sb.journalSeq = sb.dataSeq = e.journal.seq - 1;
      sb.state = SB_STATE_DIRTY;
      sb.mountCount += 1;
      sb.lastMountTime = Math.floor(Date.now() / 1000);
      e.store.persistSuperblock();
      // Orphans: unlinked inodes whose holders were lost with the last mount.
      pfs.releaseAll();
      e.tx.commit('mount');
    }
    return { fs: pfs, region, engine: e, recovered, replayed, problems };
  } catch (err) {
    region.close();
    throw err;
  }
}

/** Clean unmount: free orphans, commit, flush everything, and only then mark both superblocks CLEAN. */
export function unmountRegion(m: Mounted): void {
  const { fs: pfs, region } = m;
  if (!region.readOnly) {
    pfs.releaseAll();
    m.engine.tx.commit('unmount');
    markClean(m.engine);
  }
  region.close();
}
