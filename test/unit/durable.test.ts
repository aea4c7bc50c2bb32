/**
 * The durable path's flush counts and the two-area log (no mount needed):
 * a commit is one persistence point, also when it exposes a few newly
 * allocated blocks (their data is logged with it: DATALOG), two when it
 * exposes more (ordered data); fdatasync of an overwrite flushes only that
 * file's ranges without a commit; an fsync whose changes an earlier commit
 * covered flushes nothing; crashes between the two areas' turns recover;
 * an older region's one-area log is replayed and converted at mount.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeLogTx } from '../../src/format/journal.js';
import { FEAT_INCOMPAT_LOG2 } from '../../src/format/layout.js';
import { MAX_DATA_LOG } from '../../src/journal/journal.js';
import { constants as C } from 'node:fs';
import { ROOT_CALLER } from '../../src/vfs/fs.js';
import { formatRegion, mountRegion, readSuperblock, unmountRegion, type Mounted } from '../../src/vfs/mount.js';
import { checkRegion } from '../../src/repair/check.js';
import { LOG, OPTS, remountAfterCut } from './crash-harness.js';
import { ImageEditor } from './image-edit.js';

const MiB = 1 << 20;
const ROOT = ROOT_CALLER;
let dir: string;
let img: string;
beforeEach(() => { dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-durable-'); img = path.join(dir, 'r.pmem'); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

function fresh(powerfail = false): Mounted {
  formatRegion(img, { size: 16 * MiB, blockSize: 4096, label: 'durable' });
  return mountRegion(img, { ...OPTS, powerfail }, LOG);
}

/** Persistence points (host flushes) fn makes. */
function flushes(m: Mounted, fn: () => void): number {
  const s0 = m.region.persistSeq;
  fn();
  return m.region.persistSeq - s0;
}

/** The first len bytes of file p (all of them must read). */
function content(m: Mounted, p: string, len: number): Buffer {
  const h = m.fs.open(p, C.O_RDONLY, ROOT);
  const b = Buffer.alloc(len);
  expect(m.fs.read(h.fh, b, len, 0)).toBe(len);
  m.fs.release(h.fh);
  return b;
}

describe('a preallocated region (mkfs.pmemfs -P)', () => {
  it('has every block allocated on the host, formats and mounts as a sparse one does, and checks clean', () => {
    const sparse = path.join(dir, 'sparse.pmem');
    formatRegion(sparse, { size: 16 * MiB, blockSize: 4096, label: 'sparse' });
    formatRegion(img, { size: 16 * MiB, blockSize: 4096, label: 'full', preallocate: true });
    expect(fs.statSync(img).size).toBe(16 * MiB);
    expect(fs.statSync(img).blocks * 512).toBeGreaterThanOrEqual(16 * MiB);
    expect(fs.statSync(sparse).blocks * 512).toBeLessThan(8 * MiB);
    const m = mountRegion(img, OPTS, LOG);
    const h = m.fs.create('/f', 0o644, C.O_RDWR, ROOT);
    m.fs.write(h.fh, 'write', Buffer.alloc(3 * 4096, 0x5a), 3 * 4096, 0);
    m.fs.fsync(null);
    m.fs.release(h.fh);
    expect(content(m, '/f', 3 * 4096).every((b) => b === 0x5a)).toBe(true);
    unmountRegion(m);
    expect(checkRegion(img, false).problems).toEqual([]);
    expect(readSuperblock(img).label).toBe('full');
  });
});

describe('flushes per commit', () => {
  it('an fsync after an overwrite is one flush; after a small append, one (data logged); after a large one, two (data first); fdatasync of an overwrite, one without a commit', () => {
    const m = fresh();
    const f = m.fs;
    const big = f.create('/big', 0o644, C.O_RDWR, ROOT);
    f.write(big.fh, '/big', Buffer.alloc((MAX_DATA_LOG + 1) * 4096, 1), (MAX_DATA_LOG + 1) * 4096, 0);
    expect(flushes(m, () => f.fsync(big.inode))).toBe(2);             // more new blocks than a commit logs: data, then log + commit
    f.release(big.fh);
    const h = f.create('/f', 0o644, C.O_RDWR, ROOT);
    f.write(h.fh, '/f', Buffer.alloc(64 * 1024, 1), 64 * 1024, 0);
    const inode = h.inode;
    const logged = m.engine.journal.stats.dataImagesLogged;
    expect(flushes(m, () => f.fsync(inode))).toBe(1);                 // 16 new blocks: logged with the commit
    expect(m.engine.journal.stats.dataImagesLogged - logged).toBe(16);
    f.stat(inode);                                                    // times queried: the next write stamps a new mtime
    f.write(h.fh, '/f', Buffer.alloc(4096, 2), 4096, 8192);
    const commits0 = m.engine.journal.stats.commits;
    expect(flushes(m, () => f.fsync(inode))).toBe(1);                 // overwrite: mtime logged, one flush
    expect(m.engine.journal.stats.commits).toBe(commits0 + 1);
    const commits = m.engine.journal.stats.commits;
    f.stat(inode);
    f.write(h.fh, '/f', Buffer.alloc(4096, 3), 4096, 16384);
    expect(flushes(m, () => f.fsync(inode, true))).toBe(1);           // fdatasync of an overwrite: its range only
    expect(m.engine.journal.stats.commits).toBe(commits);             // ... and no commit
    expect(m.engine.journal.dirtyBlocks).toBeGreaterThan(0);          // the mtime waits for the next commit
    expect(flushes(m, () => f.fsync(inode, true))).toBe(0);           // nothing dirty: nothing flushed
    f.write(h.fh, '/f', Buffer.alloc(4096, 4), 4096, 64 * 1024);      // an append: the size changes
    expect(flushes(m, () => f.fsync(inode, true))).toBe(1);           // fdatasync commits for it (the block logged)
    f.release(h.fh);
    unmountRegion(m);
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('overwrites within one clock tick change no metadata (coarse timestamps) unless the times were queried', () => {
    const m = fresh();
    const f = m.fs;
    const h = f.create('/f', 0o644, C.O_RDWR, ROOT);
    f.write(h.fh, '/f', Buffer.alloc(8192, 1), 8192, 0);
    f.fsync(h.inode);
    const store = m.engine.store;
    const markDirty = store.markDirty.bind(store);
    let marked = 0;
    store.markDirty = (i) => { marked++; markDirty(i); };
    let quiet = 0;
    for (let i = 0; i < 200 && quiet === 0; i++) {
      marked = 0;
      f.write(h.fh, '/f', Buffer.alloc(4096, i), 4096, 0);
      if (marked === 0) quiet++;
    }
    expect(quiet).toBe(1);
    marked = 0;
    // After a stat, a write always changes the times: who looked sees them move.
    const seen = f.stat(h.inode).mtime;
    f.write(h.fh, '/f', Buffer.alloc(4096, 9), 4096, 0);
    expect(marked).toBe(1);
    const now = f.stat(h.inode).mtime;
    expect(now.sec * 1e9 + now.nsec).toBeGreaterThan(seen.sec * 1e9 + seen.nsec);
    f.release(h.fh);
    unmountRegion(m);
  });

  it('an overwrite within one tick by a user without CAP_FSETID still logs the set-user-ID drop', () => {
    const m = fresh(true);
    const f = m.fs;
    const h = f.create('/s', 0o4755, C.O_RDWR, ROOT);
    f.write(h.fh, '/s', Buffer.alloc(8192, 1), 8192, 0);
    f.fsync(h.inode);
    f.write(h.fh, '/s', Buffer.alloc(16, 2), 16, 0);                  // same tick: no timestamp change
    f.write(h.fh, '/s', Buffer.alloc(16, 3), 16, 0, { pid: 1, uid: 1000, gid: 1000 });
    expect(h.inode.mode & 0o7777).toBe(0o755);
    f.fsync(h.inode);
    const r = remountAfterCut(m, path.join(dir, 'crash.pmem'), () => f.release(h.fh));
    expect(r.fs.getattr('/s').mode & 0o7777).toBe(0o755);
    unmountRegion(r);
  });

  it('an O_DSYNC overwrite flushes its range without a commit; O_SYNC commits only when the inode changed; both survive a crash', () => {
    const m = fresh(true);
    const f = m.fs;
    const h0 = f.create('/d', 0o644, C.O_RDWR, ROOT);
    f.write(h0.fh, '/d', Buffer.alloc(16384, 1), 16384, 0);
    f.fsync(h0.inode);
    f.release(h0.fh);
    const d = f.open('/d', C.O_RDWR | C.O_DSYNC, ROOT);
    const commits = m.engine.journal.stats.commits;
    f.stat(d.inode);                                                  // the mtime will move: still no commit for O_DSYNC
    expect(flushes(m, () => f.write(d.fh, '/d', Buffer.alloc(4096, 2), 4096, 4096))).toBe(1);
    expect(m.engine.journal.stats.commits).toBe(commits);
    f.release(d.fh);
    const s = f.open('/d', C.O_RDWR | C.O_SYNC, ROOT);
    f.stat(s.inode);
    expect(flushes(m, () => f.write(s.fh, '/d', Buffer.alloc(4096, 3), 4096, 8192))).toBe(1);
    expect(m.engine.journal.stats.commits).toBe(commits + 1);         // O_SYNC: the mtime is committed
    const r = remountAfterCut(m, path.join(dir, 'crash.pmem'), () => f.release(s.fh));
    const b = content(r, '/d', 16384);
    expect(b.subarray(4096, 8192).equals(Buffer.alloc(4096, 2))).toBe(true);
    expect(b.subarray(8192, 12288).equals(Buffer.alloc(4096, 3))).toBe(true);
    unmountRegion(r);
  });

  it('a second fsync that the first one\'s commit covered flushes nothing (batched)', () => {
    const m = fresh();
    const f = m.fs;
    const hs = [0, 1, 2, 3].map((i) => f.create(`/f${i}`, 0o644, C.O_RDWR, ROOT));
    for (const h of hs) f.write(h.fh, '/x', Buffer.alloc(4096, 7), 4096, 0);
    expect(flushes(m, () => f.fsync(hs[0].inode))).toBe(1);
    for (const h of hs.slice(1)) expect(flushes(m, () => f.fsync(h.inode))).toBe(0);
    expect(f.tx.stats.fsyncsClean).toBe(3);
    for (const h of hs) f.release(h.fh);
    unmountRegion(m);
  });

  it('fsync of a directory commits only when the directory changed in the running transaction; its entries survive a crash', () => {
    let m = fresh(true);
    const f = m.fs;
    f.mkdir('/d', 0o755, ROOT); f.mkdir('/e', 0o755, ROOT);
    f.release(f.create('/d/a', 0o644, C.O_RDWR, ROOT).fh);
    const d = f.resolve('/d');
    expect(flushes(m, () => f.fsync(d))).toBe(1);                      // the create is in the running transaction
    expect(flushes(m, () => f.fsync(d))).toBe(0);                      // committed: nothing to flush
    f.release(f.create('/e/x', 0o644, C.O_RDWR, ROOT).fh);
    expect(flushes(m, () => f.fsync(d))).toBe(0);                      // another directory's change is not d's
    expect(m.fs.tx.dirty).toBe(true);
    f.rename('/e/x', '/d/y');
    expect(flushes(m, () => f.fsync(d))).toBe(1);                      // a rename into d marks it
    f.unlink('/d/a');
    expect(flushes(m, () => f.fsync(d))).toBe(1);                      // so does an unlink from it
    m = remountAfterCut(m, img);                                       // every unflushed page lost
    const names = (p: string) => m.fs.readdir(p).filter((n) => n !== '.' && n !== '..').sort();
    expect(names('/d')).toEqual(['y']);
    expect(names('/e')).toEqual([]);
    unmountRegion(m);
  });

  it('fdatasync of an overwrite leaves another file\'s dirty pages dirty', () => {
    const m = fresh(true);
    const f = m.fs;
    const a = f.create('/a', 0o644, C.O_RDWR, ROOT), b = f.create('/b', 0o644, C.O_RDWR, ROOT);
    f.write(a.fh, '/a', Buffer.alloc(8192, 1), 8192, 0);
    f.write(b.fh, '/b', Buffer.alloc(8192, 1), 8192, 0);
    f.fsync(null);
    f.write(a.fh, '/a', Buffer.alloc(4096, 2), 4096, 0);
    f.write(b.fh, '/b', Buffer.alloc(4096, 2), 4096, 0);
    f.fsync(a.inode, true);
    // a's page is flushed, with the superblock sector that carries the data checkpoint of the
    // commit that logged the first writes (a's blocks among them); b's page is not.
    const page = (h: typeof a) => h.inode.bmap.extents[0].regionBlock;   // 4 KiB blocks: page = block
    const lost = m.region.crashImage(path.join(dir, 'cut.pmem'), () => true);
    expect(lost).toContain(page(b));
    expect(lost).not.toContain(page(a));
    expect(lost).not.toContain(0);
    f.release(a.fh); f.release(b.fh);
    unmountRegion(m);
  });
});

describe('the two-area log', () => {
  it('commits alternate between the areas, and a crash after any of them recovers every fsynced file', () => {
    const m = fresh(true);
    const f = m.fs;
    const j = m.engine.journal;
    expect(j.twoAreas).toBe(true);
    const imgs: string[] = [];
    for (let i = 0; i < 6; i++) {
      const h = f.create(`/g${i}`, 0o644, C.O_RDWR, ROOT);
      f.write(h.fh, `/g${i}`, Buffer.alloc(5000, 0x30 + i), 5000, 0);
      f.release(h.fh);
      f.fsync(null);
      const c = path.join(dir, `crash-${i}.pmem`);
      m.region.crashImage(c, () => true);                   // every unflushed page lost: the checkpoint too
      imgs.push(c);
    }
    const areas = j.scanAreas().map((s) => (s.state === 'committed' ? s.tx.seq % 2 : -1));
    expect(areas.sort()).toEqual([0, 1]);
    m.region.close();
    imgs.forEach((c, i) => {
      const r = mountRegion(c, OPTS, LOG);
      expect(r.recovered).toBe(true);
      for (let k = 0; k <= i; k++) expect(r.fs.readdir('/')).toContain(`g${k}`);
      unmountRegion(r);
      expect(checkRegion(c, false).problems).toEqual([]);
    });
  });

  it('an older region (one-area log, a committed transaction in it) is replayed, then converted', () => {
    let m = fresh();
    const h = m.fs.create('/old', 0o644, C.O_RDWR, ROOT);
    m.fs.write(h.fh, '/old', Buffer.from('kept'), 4, 0);
    m.fs.release(h.fh);
    m.fs.fsync(null);
    m.region.close();                                         // a crash: the newest transaction may be in area 1
    const e = new ImageEditor(img);
    const tx = e.log!;
    expect(tx).not.toBeNull();
    const sb = e.superblock();
    sb.featuresIncompat &= ~FEAT_INCOMPAT_LOG2;
    e.writeSuperblock(sb);
    const bs = e.sb.blockSize;
    // The old form: one transaction at the start of the log, the rest zeroed.
    fs.writeSync(e.fd, Buffer.alloc(e.sb.journalBlocks * bs), 0, e.sb.journalBlocks * bs, e.sb.journalStart * bs);
    const { body, commit } = encodeLogTx(bs, tx);
    const all = Buffer.concat([...body, commit]);
    fs.writeSync(e.fd, all, 0, all.length, e.sb.journalStart * bs);
    fs.closeSync(e.fd);
    expect(readSuperblock(img).featuresIncompat & FEAT_INCOMPAT_LOG2).toBe(0);
    m = mountRegion(img, OPTS, LOG);
    expect(m.replayed).toBeGreaterThan(0);
    expect(m.engine.journal.twoAreas).toBe(true);
    m.fs.mkdir('/after', 0o755, ROOT);
    m.fs.fsync(null);
    unmountRegion(m);
    expect(readSuperblock(img).featuresIncompat & FEAT_INCOMPAT_LOG2).toBe(FEAT_INCOMPAT_LOG2);
    expect(checkRegion(img, false).problems).toEqual([]);
    m = mountRegion(img, OPTS, LOG);
    expect(m.fs.readdir('/').sort()).toEqual(['.', '..', 'after', 'old']);
    unmountRegion(m);
  });
});

describe('group commit', () => {
  it('a crash inside the flush of a batch keeps all of it or none; once the fsync returned, every file of the batch is there', () => {
    const m = fresh(true);
    const f = m.fs;
    f.mkdir('/d', 0o755, ROOT);
    f.fsync(null);
    const hs = [0, 1, 2, 3, 4, 5, 6, 7].map((i) => f.create(`/d/w${i}`, 0o644, C.O_RDWR, ROOT));
    hs.forEach((h, i) => f.write(h.fh, '/x', Buffer.alloc(3000 + i, 0x41 + i), 3000 + i, 0));
    // Crash images at the batch's commit flush: each a different random part of the unflushed pages
    // kept, half of them (the batch is then nearly always lost) or nearly all (often kept whole).
    const during: Array<{ file: string; keep: number }> = [];
    let seed = 7;
    const rand = () => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
    m.region.onPersist = (point) => {
      if (point !== 'commit') return;
      for (const keep of [0.5, 0.97]) {
        for (let k = 0; k < 12; k++) {
          const c = path.join(dir, `during-${keep}-${k}.pmem`);
          m.region.crashImage(c, () => rand() >= keep);      // lost: the page's flushed content comes back
          during.push({ file: c, keep });
        }
      }
    };
    f.fsync(hs[0].inode);                                       // one commit for the whole batch
    m.region.onPersist = null;
    for (const h of hs.slice(1)) f.fsync(h.inode);             // covered: no flush
    expect(f.tx.stats.fsyncsClean).toBe(7);
    const after = path.join(dir, 'after.pmem');
    m.region.crashImage(after, () => true);
    for (const h of hs) f.release(h.fh);
    m.region.close();
    expect(during.length).toBe(24);
    const whole = new Map<number, number>([[0.5, 0], [0.97, 0]]);
    for (const { file: c, keep } of during) {
      const r = mountRegion(c, OPTS, LOG);
      const names = r.fs.readdir('/d').filter((n) => n.startsWith('w'));
      expect([0, 8]).toContain(names.length);                   // all of the batch or none of it
      if (names.length === 8) {
        whole.set(keep, whole.get(keep)! + 1);
        // Kept whole means kept with its data: every file of the batch reads back what was written.
        for (let i = 0; i < 8; i++) expect(content(r, `/d/w${i}`, 3000 + i).equals(Buffer.alloc(3000 + i, 0x41 + i))).toBe(true);
      }
      unmountRegion(r);
      expect(checkRegion(c, false).problems).toEqual([]);
    }
    // Both outcomes were reached inside the flush (the seed is fixed, so this is not left to chance).
    expect(whole.get(0.97)).toBeGreaterThan(0);
    expect(whole.get(0.5)).toBeLessThan(12);
    const r = mountRegion(after, OPTS, LOG);
    for (let i = 0; i < 8; i++) expect(content(r, `/d/w${i}`, 3000 + i).equals(Buffer.alloc(3000 + i, 0x41 + i))).toBe(true);
    unmountRegion(r);
    console.log(`group commit: crash images inside the batch's flush that kept it whole: ${whole.get(0.5)} of 12 keeping half the pages, ${whole.get(0.97)} of 12 keeping 97%`);
  });
});

describe('data logging (DATALOG)', () => {
  /** The file's data blocks, as region byte offsets of whole blocks. */
  const blocksOf = (m: Mounted, p: string): number[] => {
    const i = m.fs.resolve(p);
    return i.bmap.extents.flatMap((x) => Array.from({ length: x.len }, (_, k) => (x.regionBlock + k) * 4096));
  };

  it('a commit kept without the appended pages is replayed with them: the file never shows what the blocks held before', () => {
    const m = fresh(true);
    const f = m.fs;
    const h = f.create('/a', 0o644, C.O_RDWR, ROOT);
    f.write(h.fh, '/a', Buffer.alloc(10000, 0x61), 10000, 0);
    const c = path.join(dir, 'cut.pmem');
    // At the commit's flush, the power goes with the log and commit block on the media but not the data pages
    // (which held someone's old bytes: 0xEE here).
    m.region.onPersist = (point) => {
      if (point !== 'commit') return;
      m.region.crashImage(c, () => false);
    };
    f.fsync(h.inode);
    m.region.onPersist = null;
    const fd = fs.openSync(c, 'r+');
    for (const off of blocksOf(m, '/a')) fs.writeSync(fd, Buffer.alloc(4096, 0xee), 0, 4096, off);
    f.release(h.fh);
    m.region.close();
    // ... except that the log is still unwritten at that moment: write the committed log as the flush left it.
    const live = fs.readFileSync(img);
    const sb = readSuperblock(img);
    const logOff = sb.journalStart * 4096, logLen = sb.journalBlocks * 4096;
    fs.writeSync(fd, live, logOff, logLen, logOff);
    fs.closeSync(fd);
    const r = mountRegion(c, OPTS, LOG);
    expect(r.engine.journal.stats.replayed).toBeGreaterThan(0);
    expect(content(r, '/a', 10000).equals(Buffer.alloc(10000, 0x61))).toBe(true);
    unmountRegion(r);
    expect(checkRegion(c, false).problems).toEqual([]);
  });

  it('an fsync\'s commit flushes only what it needs, yet a crash after it loses nothing fsynced: the checkpoint two commits back, logged data, the file\'s overwrite', () => {
    formatRegion(img, { size: 16 * MiB, blockSize: 4096, label: 'durable' });
    let m = mountRegion(img, OPTS, LOG);
    for (let i = 0; i < 20; i++) m.fs.release(m.fs.create(`/f${i}`, 0o644, C.O_RDWR, ROOT).fh);   // slots in three inode-table blocks
    m.fs.release(m.fs.create('/g', 0o644, C.O_RDWR, ROOT).fh);
    unmountRegion(m);
    m = mountRegion(img, { ...OPTS, powerfail: true }, LOG);
    const f = m.fs;
    const ino = (p: string) => f.resolve(p).ino;
    const perBlock = 4096 / 512;
    expect(new Set([ino('/f8'), ino('/f16'), ino('/f1')].map((i) => Math.floor((i - 1) / perBlock))).size).toBe(3);
    const b = f.create('/b', 0o644, C.O_RDWR, ROOT);                // an overwrite to fsync with a metadata change
    f.write(b.fh, '/b', Buffer.alloc(8192, 0x41), 8192, 0);
    f.fsync(null);
    const o = f.create('/other', 0o644, C.O_RDWR, ROOT);
    f.write(o.fh, '/other', Buffer.alloc(4096, 0x51), 4096, 0);
    f.fsync(null);
    // Commit s changes a slot only it touches (table block of f8); s+1 and s+2 go to the other area and
    // back over s's log: s's checkpoint must have been flushed by s+1.
    f.chmod('/f8', 0o600); f.fsync(f.resolve('/f8'));
    const before = m.region.unflushedPages;
    f.write(o.fh, '/other', Buffer.alloc(4096, 0x52), 4096, 0);     // another file's overwrite: not this fsync's
    f.chmod('/f16', 0o600); f.fsync(f.resolve('/f16'));
    expect(m.region.unflushedPages).toBeGreaterThan(0);             // the new checkpoint and /other's page stay unflushed
    f.write(b.fh, '/b', Buffer.alloc(4096, 0x42), 4096, 0);        // an overwrite, then a change of b's metadata: a commit with b's range
    f.chmod('/b', 0o600);
    const g = f.open('/g', C.O_RDWR, ROOT);                         // a small append in the same commit: data logged
    f.write(g.fh, '/g', Buffer.alloc(5000, 0x61), 5000, 0);
    const logged = m.engine.journal.stats.dataImagesLogged, full = m.region.unflushedPages;
    f.fsync(b.inode);
    expect(m.engine.journal.stats.dataImagesLogged - logged).toBe(2);
    expect(m.region.unflushedPages, 'the flush took every page').toBeGreaterThan(0);
    void full;
    f.chmod('/f1', 0o600); f.fsync(f.resolve('/f1'));               // dataSeq of the logged append goes out with this flush
    f.write(g.fh, '/g', Buffer.alloc(4096, 0x62), 4096, 0);        // so replay must not put the logged image back over this
    f.fsync(g.inode, true);
    expect(before).toBeGreaterThan(0);
    const r = remountAfterCut(m, path.join(dir, 'cut.pmem'), () => { f.release(b.fh); f.release(o.fh); f.release(g.fh); });   // every unflushed page lost
    for (const p of ['/f8', '/f16', '/f1', '/b']) expect(r.fs.stat(r.fs.resolve(p)).mode & 0o777, p).toBe(0o600);
    expect(content(r, '/b', 8192).equals(Buffer.concat([Buffer.alloc(4096, 0x42), Buffer.alloc(4096, 0x41)]))).toBe(true);
    expect(content(r, '/g', 5000).equals(Buffer.concat([Buffer.alloc(4096, 0x62), Buffer.alloc(904, 0x61)]))).toBe(true);
    expect(content(r, '/other', 4096)[0]).toBe(0x51);              // its overwrite was never fsynced
    unmountRegion(r);
    expect(checkRegion(path.join(dir, 'cut.pmem'), false).problems).toEqual([]);
  });

  it('an overwrite made durable by fdatasync after a logged append is not undone by replaying the append', () => {
    const m = fresh(true);
    const f = m.fs;
    const h = f.create('/b', 0o644, C.O_RDWR, ROOT);
    f.write(h.fh, '/b', Buffer.alloc(8192, 0x31), 8192, 0);
    f.fsync(h.inode);                                           // the append: its blocks logged (transaction s)
    expect(m.engine.journal.stats.dataImagesLogged).toBeGreaterThan(0);
    f.write(h.fh, '/b', Buffer.alloc(4096, 0x32), 4096, 0);     // an overwrite of a logged block, same tick or not
    f.fsync(h.inode, true);
    const r = remountAfterCut(m, path.join(dir, 'after.pmem'), () => f.release(h.fh));   // everything not flushed is lost
    const b = content(r, '/b', 8192);
    expect(b.subarray(0, 4096).equals(Buffer.alloc(4096, 0x32))).toBe(true);
    expect(b.subarray(4096).equals(Buffer.alloc(4096, 0x31))).toBe(true);
    expect(r.engine.journal.stats.dataImagesSkipped).toBeGreaterThan(0);
    unmountRegion(r);
  });

  it('a data-only flush takes the superblock sector only with a block whose logged image replay could write back', () => {
    const m = fresh(true);
    const f = m.fs;
    const j = m.engine.journal;
    const old = f.create('/old', 0o644, C.O_RDWR, ROOT);
    f.write(old.fh, '/old', Buffer.alloc(8192, 0x11), 8192, 0);
    f.fsync(null); f.fsync(null);                                   // /old durable, the superblock's dataSeq too
    expect(j.dataSeqUnflushed).toBe(false);
    const nu = f.create('/new', 0o644, C.O_RDWR, ROOT);
    f.write(nu.fh, '/new', Buffer.alloc(8192, 0x21), 8192, 0);
    const logged = j.stats.dataImagesLogged;
    f.fsync(nu.inode);                                              // a commit that logs /new's blocks
    expect(j.stats.dataImagesLogged - logged).toBe(2);
    expect(j.dataSeqUnflushed).toBe(true);
    f.write(old.fh, '/old', Buffer.alloc(4096, 0x12), 4096, 0);
    expect(flushes(m, () => f.fsync(old.inode, true))).toBe(1);     // no commit: /old's page, not the sector
    expect(j.dataSeqUnflushed).toBe(true);
    const first = path.join(dir, 'first.pmem');
    const lost = m.region.crashImage(first, () => true);            // replay writes /new's logged images: what is there
    expect(lost).toContain(0);
    expect(lost).not.toContain(old.inode.bmap.extents[0].regionBlock);   // 4 KiB blocks: page = block
    f.write(nu.fh, '/new', Buffer.alloc(4096, 0x22), 4096, 0);
    f.fsync(nu.inode, true);                                        // a logged block: the sector goes too
    expect(m.region.crashImage(path.join(dir, 'probe.pmem'), () => true)).not.toContain(0);
    expect(j.dataSeqUnflushed).toBe(false);
    const r = remountAfterCut(m, path.join(dir, 'second.pmem'), () => { f.release(old.fh); f.release(nu.fh); });
    expect(content(r, '/old', 8192).equals(Buffer.concat([Buffer.alloc(4096, 0x12), Buffer.alloc(4096, 0x11)]))).toBe(true);
    expect(content(r, '/new', 8192).equals(Buffer.concat([Buffer.alloc(4096, 0x22), Buffer.alloc(4096, 0x21)]))).toBe(true);
    unmountRegion(r);
    const q = mountRegion(first, OPTS, LOG);
    expect(q.recovered).toBe(true);
    expect(content(q, '/old', 8192).equals(Buffer.concat([Buffer.alloc(4096, 0x12), Buffer.alloc(4096, 0x11)]))).toBe(true);
    expect(content(q, '/new', 8192).every((b) => b === 0x21)).toBe(true);
    unmountRegion(q);
    for (const c of [first, path.join(dir, 'second.pmem')]) expect(checkRegion(c, false).problems).toEqual([]);
  });

  it('a forged log that aims a data image at a block another file maps is not followed', () => {
    const m = fresh(true);
    const f = m.fs;
    const hb = f.create('/victim', 0o600, C.O_RDWR, ROOT);
    f.write(hb.fh, '/victim', Buffer.alloc(4096, 0x62), 4096, 0);
    f.fsync(hb.inode);
    const victimBlock = m.fs.resolve('/victim').bmap.extents[0].regionBlock;
    const ha = f.create('/a', 0o644, C.O_RDWR, ROOT);
    f.write(ha.fh, '/a', Buffer.alloc(4096, 0x61), 4096, 0);
    const c = path.join(dir, 'forged.pmem');
    m.region.onPersist = (point) => { if (point === 'commit') m.region.crashImage(c, () => false); };
    f.fsync(ha.inode);                                          // /a's block logged with the commit
    m.region.onPersist = null;
    f.release(ha.fh); f.release(hb.fh);
    m.region.close();
    const live = fs.readFileSync(img);
    const sb = readSuperblock(img);
    fs.writeFileSync(c, Buffer.concat([fs.readFileSync(c).subarray(0, sb.journalStart * 4096), live.subarray(sb.journalStart * 4096, (sb.journalStart + sb.journalBlocks) * 4096), fs.readFileSync(c).subarray((sb.journalStart + sb.journalBlocks) * 4096)]));
    const e = new ImageEditor(c);
    const tx = e.log!;
    expect(tx.dataImages).toBe(1);
    tx.homes[tx.homes.length - 1] = victimBlock;              // the data image now aims at /victim's block (CRCs recomputed)
    e.touchLog();
    e.close();
    const r = mountRegion(c, OPTS, LOG);
    expect(r.engine.journal.stats.dataImagesSkipped).toBeGreaterThanOrEqual(1);
    expect(content(r, '/victim', 4096).equals(Buffer.alloc(4096, 0x62))).toBe(true);
    unmountRegion(r);
  });

  it('a read-only mount refuses a region whose journal still holds file data to replay; a read-write mount replays it', () => {
    const m = fresh(true);
    const f = m.fs;
    const h = f.create('/c', 0o644, C.O_RDWR, ROOT);
    f.write(h.fh, '/c', Buffer.alloc(4096, 0x41), 4096, 0);
    f.fsync(h.inode);
    const c = path.join(dir, 'ro.pmem');
    m.region.crashImage(c, () => true);
    f.release(h.fh);
    m.region.close();
    expect(() => mountRegion(c, { ...OPTS, readOnly: true }, LOG)).toThrow(/read-only mount cannot write.*read-write once/);
    const r = mountRegion(c, OPTS, LOG);
    expect(content(r, '/c', 4096).equals(Buffer.alloc(4096, 0x41))).toBe(true);
    unmountRegion(r);
    const ro = mountRegion(c, { ...OPTS, readOnly: true }, LOG);
    expect(content(ro, '/c', 4096).equals(Buffer.alloc(4096, 0x41))).toBe(true);
    unmountRegion(ro);
  });
});
