/**
 * @file Formatting and mounting a region: everything between a region file
 * name and a ready PmemFs. Mount validates the superblock, takes the region
 * lock, marks the superblock DIRTY (so a crash is noticed), and after a crash
 * (DIRTY found at mount) rebuilds the free-space bitmap from the block maps
 * and frees orphans left by the crash.
 */
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import type { Logger } from 'pino';
import { Allocator } from '../alloc/allocator.js';
import {
  computeGeometry, decodeSuperblock, FEAT_INCOMPAT_SUPPORTED, FEAT_RO_COMPAT_SUPPORTED, FormatError,
  ROOT_INO, SB_SIZE, SB_STATE_CLEAN, SB_STATE_DIRTY, type Superblock,
} from '../format/layout.js';
import { TxManager } from '../journal/tx.js';
import { PinRegistry } from '../pin/registry.js';
import { Region } from '../region/region.js';
import { LayoutGuard, type GuardOptions } from '../seal/guard.js';
import { PmemFs, type FsOptions } from './fs.js';
import { Inode, S_IFDIR } from './inode.js';
import { InodeStore } from './store.js';
import { moduleLog } from '../log.js';

export interface FormatOptions { size?: number; blockSize: number; label: string; bytesPerInode?: number }

/**
 * Write a fresh filesystem into `path` (created sparse, or resized to `size`
 * bytes when given). Returns the superblock written.
 * @throws FormatError for an impossible geometry; fs errors for I/O
 */
export function formatRegion(path: string, o: FormatOptions): Superblock {
  const exists = fs.existsSync(path);
  const size = o.size ?? (exists ? fs.statSync(path).size : 0);
  const geo = computeGeometry({ regionSize: size, blockSize: o.blockSize, bytesPerInode: o.bytesPerInode });
  const fd = fs.openSync(path, exists ? 'r+' : 'w+');
  try {
    fs.ftruncateSync(fd, 0);            // drop old contents: the region starts sparse and zeroed
    fs.ftruncateSync(fd, geo.regionSize);
  } finally { fs.closeSync(fd); }
  const now = Math.floor(Date.now() / 1000);
  const sb: Superblock = {
    ...geo, uuid: Buffer.from(randomUUID().replace(/-/g, ''), 'hex'), label: o.label,
    mkfsTime: now, lastMountTime: 0, mountCount: 0, generation: 1, state: SB_STATE_CLEAN, flags: 0, inodeHwm: ROOT_INO,
  };
  const region = Region.open(path);
  try {
    const alloc = new Allocator(sb, region);
    alloc.loadFromUsage([]);
    alloc.rewriteBitmap();
    const store = new InodeStore(sb, region, alloc);
    const root = new Inode(ROOT_INO, S_IFDIR | 0o755, 0, 0);
    root.nlink = 2;
    store.inodes.set(ROOT_INO, root);
    store.write(root);
    store.writeSuperblock();
  } finally {
    region.close();
  }
  return sb;
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

export interface MountOptions extends FsOptions, GuardOptions {}

export interface Mounted {
  fs: PmemFs;
  region: Region;
  recovered: boolean;
  problems: string[];
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
    const alloc = new Allocator(sb, region);
    const store = new InodeStore(sb, region, alloc);
    const problems = store.loadAll();
    if (problems.length) {
      throw new FormatError(`${problems.length} damaged inode(s), first: ${problems[0]} (run fsck.pmemfs -y)`);
    }
    const root = store.inodes.get(ROOT_INO);
    if (!root || !root.isDir) throw new FormatError('the root inode is missing or not a directory (run fsck.pmemfs)');
    const recovered = sb.state !== SB_STATE_CLEAN;
    if (recovered && !readOnly) {
      log.warn({ untrusted: { region: path } }, 'region was not unmounted cleanly: rebuilding free space and freeing orphans');
      alloc.loadFromUsage([...store.inodes.values()].flatMap((i) => InodeStore.usedRuns(i)));
      alloc.rewriteBitmap();
    } else {
      alloc.loadBitmap();
    }
    const pins = new PinRegistry();
    const guard = new LayoutGuard(pins, o, log.child({ module: 'guard' }));
    const tx = new TxManager(store);
    const pfs = new PmemFs({ store, tx, guard, pins, opts: { dax: o.dax, readOnly }, log });
    if (!readOnly) {
      // Orphans: unlinked inodes whose holders were lost with the last mount.
      pfs.shutdown();
      sb.state = SB_STATE_DIRTY;
      sb.mountCount += 1;
      sb.lastMountTime = Math.floor(Date.now() / 1000);
      store.persistSuperblock();
      tx.flush();
    }
    return { fs: pfs, region, recovered, problems };
  } catch (e) {
    region.close();
    throw e;
  }
}

/** Clean unmount: free orphans, flush everything, mark the superblock CLEAN. */
export function unmountRegion(m: Mounted): void {
  const { fs: pfs, region } = m;
  if (!region.readOnly) {
    pfs.shutdown();
    pfs.store.sb.state = SB_STATE_CLEAN;
    pfs.tx.flush();
    pfs.store.persistSuperblock();
  }
  region.close();
}
