/**
 * @file Consistency check and repair of an unmounted region (fsck.pmemfs).
 *
 * Check (`repair` false) never writes: the region is opened read-only and
 * the journal is replayed into memory, so what is checked is the region as
 * the next mount will see it. Checks: superblock (and the backup when the
 * primary is damaged); bitmap block checksums; every inode slot, fork,
 * record-index and record block below the high-water mark; the reference-
 * count index (shared extents); extents inside the data area, no metadata
 * block claimed twice, every data block's reference count equal to the
 * number of block maps that map it, claimed blocks marked in use and no
 * leaked blocks; directory entries naming live inodes; the tree rooted
 * and acyclic; link counts (a named inode with link count 0 included: it is
 * given its count, never freed); orphans.
 *
 * Repair (`repair` true): the primary superblock restored from the backup;
 * the journal replayed; damaged inodes cleared (their entries removed, their
 * blocks freed); of two claims on a block, the later inode loses its extent
 * (a hole) or, for a metadata block, is cleared; dangling and duplicate
 * directory entries removed; unreachable inodes linked into /lost+found;
 * orphans freed; link counts set; the reference counts rebuilt from the
 * block maps (XFS's repair rebuilds its refcount btree from the owners the
 * same way) when any is wrong or the index is damaged; the bitmap rebuilt
 * from what is referenced. Namespace repairs go through the journal; the rebuilt bitmap
 * is then written home directly, so an interrupted repair is finished by
 * running fsck.pmemfs -y again.
 */
import { decodeSuperblock, encodeSuperblock, FEAT_INCOMPAT_ICACHE, FormatError, MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, ROOT_INO, SB_SIZE, SB_STATE_CLEAN, SB_STATE_DIRTY, type Superblock } from '../format/layout.js';
import { Inode, S_IFDIR } from '../inode/inode.js';
import { itemsOf } from '../inode/records.js';
import { InodeStore } from '../inode/store.js';
import { allClaims, dataOwners, validate, wantLinks } from '../inode/validate.js';
import { Region } from '../region/region.js';
import { regionBlock, blockCount, regionOff } from '../types.js';
import { convertToTwoAreas, engine, replayedSuperblock, writeIcache, type Engine } from '../vfs/mount.js';

export interface CheckResult {
  problems: string[];     // everything found
  repaired: string[];     // what was fixed (subset, when repairing)
  uncorrected: string[];  // what remains
}

export interface CheckOptions {
  /** Called now and then on large regions: (stage, done, total). */
  progress?: (stage: string, done: number, total: number) => void;
}

/**
 * Check a region; with `repair`, fix what can be fixed.
 * @throws FormatError when neither superblock is usable (nothing to check)
 */
export function checkRegion(path: string, repair: boolean, o: CheckOptions = {}): CheckResult {
  const region = Region.open(path, { readOnly: !repair });
  const res: CheckResult = { problems: [], repaired: [], uncorrected: [] };
  const found = (msg: string, fixable: boolean) => {
    res.problems.push(msg);
    (fixable && repair ? res.repaired : res.uncorrected).push(msg);
  };
  try {
    if (region.size < SB_SIZE) throw new FormatError(`${path} is ${region.size} bytes: too short to be a pmemfs region`);
    const sb = readSuperblocks(region, found, repair);
    const e = engine(sb, region);
    if (sb.state !== SB_STATE_CLEAN) {
      const r = e.journal.recover(!repair);
      const txs = r.replayed.map((t) => `${t.seq} (${t.homes.length} blocks)`).join(', ');
      const what = r.replayed.length ? ` (journal transaction${r.replayed.length > 1 ? 's' : ''} ${txs}, ${repair ? 'replayed' : 'to replay'})`
        : r.skipped.length ? ` (journal not replayed: ${r.skipped.map((k) => k.why).join('; ')})` : '';
      found(`region was not unmounted cleanly${what}`, true);
      if (r.replayed.length) Object.assign(sb, replayedSuperblock(e), { state: sb.state });
    }
    if (repair && convertToTwoAreas(e)) res.repaired.push('journal: log converted to two areas (FEAT_INCOMPAT_LOG2)');
    let bitmapOk = true;
    try { e.alloc.loadBitmap((i) => e.journal.read(sb.bitmapStart + i)); } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      bitmapOk = false;
      found(`${err.message}: the bitmap is rebuilt from the block maps`, true);
    }
    let refsBroken = false;
    try { e.store.loadRefcounts(); } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      refsBroken = true;
      found(`${err.message}: the reference counts are rebuilt from the block maps`, true);
    }
    try { e.store.loadIlist(); } catch (err) {
      if (!(err instanceof FormatError)) throw err;
      found(`${err.message}: the in-core list is rebuilt from the inodes' flags`, true);
    }
    const damaged = new Set<number>();
    for (const { ino, message } of e.store.loadAll((d, t) => o.progress?.('inodes', d, t))) {
      damaged.add(ino);
      found(`damaged inode ${ino}: ${message}${repair ? ' (cleared)' : ''}`, true);
    }
    const root = e.store.inodes.get(ROOT_INO);
    if (!root || !root.isDir) {
      found('root directory missing or damaged', false);
      return res;
    }
    checkAndRepair(e, damaged, found, repair, bitmapOk, refsBroken);
  } finally {
    region.close();
  }
  return res;
}

type Found = (msg: string, fixable: boolean) => void;

/** The primary superblock, or the backup when the primary is unusable. */
function readSuperblocks(region: Region, found: Found, repair: boolean): Superblock {
  try {
    const sb = decodeSuperblock(region.readBuf(regionOff(0), SB_SIZE));
    if (region.size < sb.regionSize) throw new FormatError(`region file is ${region.size} bytes, the superblock says ${sb.regionSize}`);
    return sb;
  } catch (err) {
    if (!(err instanceof FormatError)) throw err;
    const backup = findBackup(region);
    if (!backup) throw new FormatError(`${err.message}; no usable backup superblock either`);
    found(`primary superblock unusable (${err.message}): ${repair ? 'restored' : 'restorable'} from the backup`, true);
    // The backup is as of the last clean unmount: look at every slot, and replay the journal.
    backup.inodeHwm = backup.inodeCount;
    backup.state = SB_STATE_DIRTY;
    if (repair) {
      region.write(regionOff(0), encodeSuperblock(backup), 0, SB_SIZE);
      region.persist('superblock', regionOff(0), SB_SIZE);
    }
    return backup;
  }
}

function findBackup(region: Region): Superblock | null {
  for (let bs = MIN_BLOCK_SIZE; bs <= MAX_BLOCK_SIZE; bs *= 2) {
    const blocks = Math.floor(region.size / bs);
    if (blocks < 2) continue;
    try {
      const sb = decodeSuperblock(region.readBuf(regionOff((blocks - 1) * bs), SB_SIZE));
      if (sb.blockSize === bs && sb.totalBlocks === blocks) return sb;
    } catch { /* not at this block size */ }
  }
  return null;
}

function checkAndRepair(e: Engine, damaged: Set<number>, found: Found, repair: boolean, bitmapOk: boolean, refsBroken: boolean): void {
  const { store, alloc, tx, ops } = e;
  let v = validate(store, alloc);
  const dropExtent = new Map<number, Array<{ start: number; len: number }>>();
  const clear = new Set<number>(damaged);
  let rebuildRefs = refsBroken;
  for (const [x, y] of v.overlaps) {
    if (x.ino === 0 || y.ino === 0) {
      // The refcount index is rebuilt in fresh blocks: the inode keeps its claim.
      const other = x.ino === 0 ? y : x;
      found(`block ${Math.max(x.start, y.start)} is both a refcount index block and claimed by inode ${other.ino}${repair ? ': index rebuilt' : ''}`, true);
      rebuildRefs = true;
      continue;
    }
    // Nothing says which claim is right: the newer inode (higher number) loses.
    const [a, b] = x.ino >= y.ino ? [x, y] : [y, x];
    found(`block ${Math.max(a.start, b.start)} claimed by inode ${b.ino} and inode ${a.ino}${repair ? `: taken from inode ${a.ino}` : ''}`, true);
    const inode = store.inodes.get(a.ino)!;
    const isData = inode.bmap.extents.some((e) => e.regionBlock === a.start && e.len === a.len);
    if (isData) dropExtent.set(a.ino, [...(dropExtent.get(a.ino) ?? []), a]); else clear.add(a.ino);
  }
  for (const r of v.refcounts) {
    found(`blocks [${r.start}, +${r.len}): reference count ${r.recorded}, mapped by ${r.owners} file(s)${repair ? ' (counts rebuilt)' : ''}`, true);
    rebuildRefs = true;
  }
  if (bitmapOk && v.markedFree.length) found(`free-space bitmap: ${v.markedFree.length} extent(s) in use but marked free`, true);
  if (bitmapOk && v.leaked) found(`free-space bitmap: ${v.leaked} block(s) marked in use but referenced by nothing (leaked)`, true);
  for (const d of v.danglingEntries) found(`directory ${d.dir}: entry '${d.name}' names ${damaged.has(d.ino) ? 'damaged' : 'missing'} inode ${d.ino}`, true);
  for (const d of v.multiLinkedDirs) found(`directory ${d.ino} has a second name '${d.name}' in directory ${d.dir}${repair ? ' (removed)' : ''}`, true);
  // An inode some entry still names is never freed, whatever its count says: its count is set from its names below.
  const orphans = [...store.inodes.values()].filter((i) => i.nlink === 0 && i.ino !== ROOT_INO && !v.named.has(i.ino));
  for (const i of orphans) found(`orphan inode ${i.ino} (unlinked, never freed)`, true);
  for (const ino of v.unreachable) if (!clear.has(ino)) found(`inode ${ino} is not reachable from the root${repair ? ': linked into /lost+found' : ''}`, true);
  if (!repair) { reportLinkCounts(v, found); for (const m of v.icache) found(m, true); return; }

  // Make allocations safe before anything is written: free space from what is referenced.
  alloc.loadFromUsage(allClaims(store).map((c) => ({ start: regionBlock(c.start), len: blockCount(c.len) })));
  alloc.takeDirtyBitmap();
  for (const ino of damaged) ops.apply('fsck', [], () => store.clearSlot(ino));
  for (const ino of clear) {
    const inode = store.inodes.get(ino);
    // Its blocks become unreferenced; the bitmap rebuilt at the end frees them.
    if (inode && ino !== ROOT_INO) ops.apply('fsck', [], () => { store.inodes.delete(ino); store.clearSlot(ino); });
  }
  for (const [ino, runs] of dropExtent) {
    const inode = store.inodes.get(ino);
    if (!inode) continue;
    ops.apply('fsck', [], (t) => {
      t.markDirty(inode);
      const gone = inode.bmap.extents.filter((x) => runs.some((r) => r.start === x.regionBlock));
      inode.bmap.reset(inode.bmap.extents.filter((x) => !gone.includes(x)));
      markAll(inode);
      for (const g of gone) inode.bmap.changed.add(g.fileBlock);
      inode.forkDirty = true;
    });
  }
  // Reference counts from the owners left (before orphans are freed: freeing drops owners by them).
  v = validate(store, alloc);
  if (rebuildRefs || v.refcounts.length) {
    const owners = dataOwners(allClaims(store)).filter((o) => o.count >= 2);
    ops.apply('fsck', [], () => store.rebuildRefcounts(owners));
  }
  // Again, now that inodes were cleared: entries naming them dangle too, and must go before a
  // cleared slot is reused (by /lost+found, say).
  v = validate(store, alloc);
  for (const d of v.danglingEntries) if (clear.has(d.ino)) found(`directory ${d.dir}: entry '${d.name}' names cleared inode ${d.ino} (removed)`, true);
  for (const d of [...v.danglingEntries, ...v.multiLinkedDirs]) {
    const dir = store.inodes.get(d.dir);
    if (dir) ops.apply('fsck', [], (t) => { t.markDirty(dir); dir.dirents!.delete(d.name); });
  }
  for (const i of orphans) if (store.inodes.has(i.ino)) ops.apply('fsck', [], (t) => { for (const x of i.bmap.extents) t.deferFree({ start: regionBlock(x.regionBlock), len: blockCount(x.len) }); i.bmap.reset([]); t.drop(i); });
  reconnect(e, found, clear);
  v = validate(store, alloc);
  fixLinkCounts(e, v, found);
  fixIcache(e, validate(store, alloc), found);
  tx.commit('fsck');
  // The bitmap, rebuilt from what is referenced now, written home.
  alloc.loadFromUsage(allClaims(store).map((c) => ({ start: regionBlock(c.start), len: blockCount(c.len) })));
  for (const { index, image } of alloc.takeDirtyBitmap()) e.region.write(regionOff((e.sb.bitmapStart + index) * e.sb.blockSize), image, 0, image.length);
  e.region.persistDirty('data');
  e.sb.state = SB_STATE_CLEAN;
  e.sb.journalSeq = e.sb.dataSeq = e.journal.seq - 1;
  if (e.sb.inodeHwm === e.sb.inodeCount) e.sb.inodeHwm = highestIno(store);
  store.persistSuperblock();
  store.persistBackupSuperblock();
}

/**
 * Link unreachable inodes into /lost+found: only the tops of unreachable
 * subtrees (an unreachable directory keeps its children, so none is named
 * twice), then again, since a subtree coming back may hold entries naming
 * cleared inodes, or a second name of a directory, which go; bounded rounds.
 */
function reconnect(e: Engine, found: Found, clear: Set<number>): void {
  const { store, alloc, ops } = e;
  for (let round = 0; round < 16; round++) {
    const v = validate(store, alloc);
    for (const d of v.danglingEntries) found(`directory ${d.dir}: entry '${d.name}' names ${clear.has(d.ino) ? 'cleared' : 'missing'} inode ${d.ino} (removed)`, true);
    for (const d of v.multiLinkedDirs) found(`directory ${d.ino} has a second name '${d.name}' in directory ${d.dir} (removed)`, true);
    for (const d of [...v.danglingEntries, ...v.multiLinkedDirs]) {
      const dir = store.inodes.get(d.dir);
      if (dir) ops.apply('fsck', [], (t) => { t.markDirty(dir); dir.dirents!.delete(d.name); });
    }
    const stray = v.unreachable.filter((ino) => store.inodes.has(ino));
    if (!stray.length && !v.danglingEntries.length && !v.multiLinkedDirs.length) return;
    const below = new Set<number>();
    for (const ino of stray) for (const c of store.inodes.get(ino)!.dirents?.values() ?? []) below.add(c);
    let tops = stray.filter((ino) => !below.has(ino));
    if (!tops.length) tops = stray.slice(0, 1);   // a cycle of unreachable directories: break it anywhere
    for (const ino of tops) {
      const inode = store.inodes.get(ino)!;
      ops.apply('fsck', [], (t) => { const lf = lostAndFound(e, t.markDirty.bind(t)); t.markDirty(lf); t.markDirty(inode); lf.dirents!.set(`#${ino}`, ino); });
    }
  }
}

function highestIno(store: InodeStore): number {
  let m = ROOT_INO;
  for (const k of store.inodes.keys()) if (k > m) m = k;
  return m;
}

/** Every record of the inode is rewritten (its map was replaced wholesale). */
function markAll(inode: Inode): void {
  for (const x of inode.bmap.extents) inode.bmap.changed.add(x.fileBlock);
  if (inode.records) for (const rb of inode.records.blocks) for (const k of itemsOf(rb).keys()) inode.bmap.changed.add(k as number);
}

function reportLinkCounts(v: ReturnType<typeof validate>, found: Found): void {
  for (const l of v.linkCounts) found(`inode ${l.ino}: link count ${l.nlink}, should be ${l.want}`, true);
}

function fixLinkCounts(e: Engine, v: ReturnType<typeof validate>, found: Found): void {
  for (const inode of e.store.inodes.values()) {
    const want = wantLinks(inode, v);
    if (inode.nlink === want) continue;
    found(`inode ${inode.ino}: link count ${inode.nlink}, should be ${want}`, true);
    e.ops.apply('fsck', [], (t) => { t.markDirty(inode); inode.nlink = want; });
  }
}

/**
 * The FEAT_INCOMPAT_ICACHE bookkeeping from the repaired tree: every
 * directory's parent, the in-core list from the flags, the count of slots
 * in use; an older region gains the feature (as its first mount would).
 */
function fixIcache(e: Engine, v: ReturnType<typeof validate>, found: Found): void {
  for (const m of v.icache) found(`${m} (rewritten)`, true);
  if (!(e.sb.featuresIncompat & FEAT_INCOMPAT_ICACHE)) found('inodes: parents, counts and the in-core list written (FEAT_INCOMPAT_ICACHE)', true);
  writeIcache(e, v.parentOf, 'fsck');
}

function lostAndFound(e: Engine, markDirty: (i: Inode) => void): Inode {
  const root = e.store.inodes.get(ROOT_INO)!;
  const ino = root.dirents!.get('lost+found');
  const existing = ino === undefined ? undefined : e.store.inodes.get(ino);
  if (existing?.isDir) return existing;
  const lf = new Inode(e.store.allocIno(), S_IFDIR | 0o700, 0, 0);
  lf.nlink = 2;
  lf.parent = ROOT_INO;
  e.store.add(lf);
  markDirty(root);
  root.dirents!.set('lost+found', lf.ino);
  root.nlink++;
  return lf;
}

