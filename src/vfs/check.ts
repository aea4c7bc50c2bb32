/**
 * @file Consistency check and repair of an unmounted region (fsck.pmemfs).
 *
 * Checks, in order: superblock; every inode slot below the high-water mark
 * decodes (record and fork checksums); extents lie in the data area and no
 * block is claimed twice; the free-space bitmap equals the blocks in use;
 * every directory entry names a live inode; link counts match the entries;
 * every linked inode is reachable from the root; no orphans remain.
 *
 * Repairs (when allowed): damaged slots cleared and entries to them removed,
 * wrong link counts set, unreachable inodes linked into /lost+found,
 * orphans freed, the bitmap rewritten from the block maps, the superblock
 * marked clean. Doubly claimed blocks are reported, not repaired.
 */
import { Allocator, type BlockRun } from '../alloc/allocator.js';
import { decodeSuperblock, INODE_SIZE, ROOT_INO, SB_SIZE, SB_STATE_CLEAN, type Superblock } from '../format/layout.js';
import { Region } from '../region/region.js';
import { regionOff } from '../types.js';
import { Inode, S_IFDIR } from './inode.js';
import { InodeStore } from './store.js';

export interface CheckResult {
  problems: string[];     // everything found
  repaired: string[];     // what was fixed (subset, when repairing)
  uncorrected: string[];  // what remains
}

/**
 * Check a region; with `repair`, fix what can be fixed safely.
 * @throws FormatError when the superblock itself is unusable (nothing to check)
 */
export function checkRegion(path: string, repair: boolean): CheckResult {
  const region = Region.open(path, { readOnly: !repair });
  const res: CheckResult = { problems: [], repaired: [], uncorrected: [] };
  const found = (msg: string, fixable: boolean) => {
    res.problems.push(msg);
    (fixable && repair ? res.repaired : res.uncorrected).push(msg);
  };
  try {
    const sb = decodeSuperblock(region.readBuf(regionOff(0), SB_SIZE));
    if (region.size < sb.regionSize) throw new Error(`region file is ${region.size} bytes, the superblock says ${sb.regionSize}`);
    const alloc = new Allocator(sb, region);
    const store = new InodeStore(sb, region, alloc);
    if (sb.state !== SB_STATE_CLEAN) found('region was not unmounted cleanly', true);
    const damaged = new Set<number>();
    for (const msg of store.loadAll()) {
      const m = /inode (\d+)/.exec(msg);
      if (m) damaged.add(Number(m[1]));
      found(`damaged inode: ${msg}`, true);
    }
    const root = store.inodes.get(ROOT_INO);
    if (!root || !root.isDir) {
      found('root directory missing or not a directory', false);
      return res;
    }
    checkBlocks(sb, store, found);
    checkLinks(store, damaged, found);
    if (repair) {
      if (damaged.size) for (const ino of damaged) region.zero(regionOff(sb.itableStart * sb.blockSize + (ino - 1) * INODE_SIZE), INODE_SIZE);
      for (const inode of store.inodes.values()) store.write(inode);
      // Old fork extents are not freed by write(): the bitmap is rebuilt from what is referenced now.
    }
    checkBitmap(sb, store, alloc, found, repair);
    if (repair) {
      sb.state = SB_STATE_CLEAN;
      store.persistSuperblock();
      region.persistAll();
    }
  } finally {
    region.close();
  }
  return res;
}

type Found = (msg: string, fixable: boolean) => void;

/** Extents inside the data area, no block claimed twice. */
function checkBlocks(sb: Superblock, store: InodeStore, found: Found): void {
  const runs: Array<BlockRun & { ino: number }> = [];
  for (const inode of store.inodes.values()) {
    for (const r of InodeStore.usedRuns(inode)) {
      if (r.start < sb.dataStart || r.start + r.len > sb.totalBlocks) found(`inode ${inode.ino}: extent [${r.start}, +${r.len}) outside the data area`, false);
      else runs.push({ ...r, ino: inode.ino });
    }
  }
  runs.sort((a, b) => a.start - b.start);
  for (let i = 1; i < runs.length; i++) {
    const a = runs[i - 1], b = runs[i];
    if (a.start + a.len > b.start) found(`block ${b.start} claimed by inode ${a.ino} and inode ${b.ino}`, false);
  }
}

/** Entries name live inodes; link counts; reachability; orphans. */
function checkLinks(store: InodeStore, damaged: Set<number>, found: Found): void {
  const links = new Map<number, number>();
  const subdirs = new Map<number, number>();
  const reachable = new Set<number>([ROOT_INO]);
  const walk = (dir: Inode) => {
    for (const [name, ino] of [...dir.dirents!]) {
      const child = store.inodes.get(ino);
      if (!child) {
        found(`directory ${dir.ino}: entry '${name}' names ${damaged.has(ino) ? 'damaged' : 'missing'} inode ${ino}`, true);
        dir.dirents!.delete(name);
        continue;
      }
      links.set(ino, (links.get(ino) ?? 0) + 1);
      if (child.isDir) subdirs.set(dir.ino, (subdirs.get(dir.ino) ?? 0) + 1);
      if (!reachable.has(ino)) { reachable.add(ino); if (child.isDir) walk(child); }
    }
  };
  walk(store.inodes.get(ROOT_INO)!);
  for (const inode of [...store.inodes.values()]) {
    if (!reachable.has(inode.ino)) {
      if (inode.nlink === 0) { found(`orphan inode ${inode.ino} (unlinked, never freed)`, true); freeInode(store, inode); continue; }
      found(`inode ${inode.ino} is not reachable from the root: linked into /lost+found`, true);
      lostAndFound(store).dirents!.set(`#${inode.ino}`, inode.ino);
      links.set(inode.ino, 1);
      if (inode.isDir) subdirs.set(lostAndFound(store).ino, (subdirs.get(lostAndFound(store).ino) ?? 0) + 1);
      reachable.add(inode.ino);
    }
  }
  for (const inode of store.inodes.values()) {
    const want = inode.isDir ? 2 + (subdirs.get(inode.ino) ?? 0) : links.get(inode.ino) ?? 0;
    if (inode.nlink !== want) {
      found(`inode ${inode.ino}: link count ${inode.nlink}, should be ${want}`, true);
      inode.nlink = want;
    }
  }
}

function lostAndFound(store: InodeStore): Inode {
  const root = store.inodes.get(ROOT_INO)!;
  const ino = root.dirents!.get('lost+found');
  if (ino !== undefined) return store.inodes.get(ino)!;
  const lf = new Inode(store.allocIno(), S_IFDIR | 0o700, 0, 0);
  lf.nlink = 2;
  store.inodes.set(lf.ino, lf);
  root.dirents!.set('lost+found', lf.ino);
  return lf;
}

function freeInode(store: InodeStore, inode: Inode): void {
  store.inodes.delete(inode.ino);
  if (!store.region.readOnly) store.clear(inode);
}

/** The on-media bitmap must equal the set of referenced blocks (plus the metadata area). */
function checkBitmap(sb: Superblock, store: InodeStore, alloc: Allocator, found: Found, repair: boolean): void {
  const used = [...store.inodes.values()].flatMap((i) => InodeStore.usedRuns(i));
  const inUse = new Uint8Array(sb.totalBlocks);
  for (let b = 0; b < sb.dataStart; b++) inUse[b] = 1;
  for (const r of used) for (let b = r.start; b < r.start + r.len && b < sb.totalBlocks; b++) inUse[b] = 1;
  const bits = store.region.readBuf(regionOff(sb.bitmapStart * sb.blockSize), Math.ceil(sb.totalBlocks / 8));
  let leaked = 0, missing = 0;
  for (let b = 0; b < sb.totalBlocks; b++) {
    const bit = (bits[b >> 3] >> (b & 7)) & 1;
    if (bit && !inUse[b]) leaked++;
    else if (!bit && inUse[b]) missing++;
  }
  if (leaked) found(`free-space bitmap: ${leaked} block(s) marked in use but referenced by nothing (leaked)`, true);
  if (missing) found(`free-space bitmap: ${missing} block(s) in use but marked free`, true);
  if (repair) {
    alloc.loadFromUsage(used);
    alloc.rewriteBitmap();
  }
}
