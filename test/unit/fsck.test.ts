/**
 * fsck.pmemfs (src/repair/check.ts): one test per corruption class, each
 * seeded on purpose through the engine or by editing the region file; -n
 * finds it without writing a byte, -y repairs it, and -n then calls the
 * region clean and it mounts. Then a fuzz run over mutated images (bit
 * flips, truncation, zeroed and swapped blocks): each is refused with a
 * FormatError or repaired to a region that checks clean and mounts; nothing
 * crashes, and nothing is written outside the region file.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FormatError, INODE_SIZE } from '../../src/format/layout.js';
import type { Inode } from '../../src/inode/inode.js';
import { checkRegion } from '../../src/repair/check.js';
import { ROOT_CALLER, type PmemFs } from '../../src/vfs/fs.js';
import { formatRegion, mountRegion, unmountRegion, type Mounted } from '../../src/vfs/mount.js';
import { CHECKED, LOG, OPTS, readAll, rng, snapshot } from './crash-harness.js';

const BS = 4096;
const MiB = 1 << 20;
let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-fsck-'); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

const sha = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');

/** A region with a small tree: /d with 40 long names (record blocks), /f with data, /x with a big xattr, /l a symlink. */
function base(size = 8 * MiB): { p: string; m: Mounted } {
  const p = path.join(dir, 'r.pmem');
  formatRegion(p, { size, blockSize: BS, label: 'fsck' });
  const m = mountRegion(p, CHECKED, LOG);
  const f = m.fs;
  f.mkdir('/d', 0o755, ROOT_CALLER);
  for (let i = 0; i < 40; i++) f.mknod(`/d/${'n'.repeat(60)}-${i}`, 0o644, 0, ROOT_CALLER);
  put(f, '/f', Buffer.alloc(5 * BS, 0x5a));
  put(f, '/x', Buffer.alloc(100, 1));
  f.setxattr('/x', 'user.big', Buffer.alloc(2000, 3), 0);
  f.symlink('/f', '/l', ROOT_CALLER);
  return { p, m };
}

function put(f: PmemFs, p: string, b: Buffer): void {
  const h = f.create(p, 0o644, C.O_RDWR, ROOT_CALLER);
  f.write(h.fh, p, b, b.length, 0);
  f.release(h.fh);
}

function ino(m: Mounted, p: string): Inode { return m.fs.resolve(p); }

/** -n finds `what` and writes nothing; -y fixes it; -n is then clean and the region mounts. */
function expectRepaired(p: string, what: RegExp): Mounted {
  const before = sha(p);
  const n = checkRegion(p, false);
  expect(n.problems.join('\n')).toMatch(what);
  expect(n.uncorrected.length).toBeGreaterThan(0);
  expect(sha(p)).toBe(before);                      // -n never writes
  const y = checkRegion(p, true);
  expect(y.uncorrected).toEqual([]);
  expect(y.repaired.join('\n')).toMatch(what);
  expect(checkRegion(p, false).problems).toEqual([]);
  return mountRegion(p, CHECKED, LOG);
}

/** Byte offset of inode `i`'s slot in the region file. */
function slotOff(m: Mounted, i: number): number { return m.engine.sb.itableStart * BS + (i - 1) * INODE_SIZE; }

function flipByte(p: string, off: number): void {
  const fd = fs.openSync(p, 'r+');
  const b = Buffer.alloc(1);
  fs.readSync(fd, b, 0, 1, off);
  b[0] ^= 0x41;
  fs.writeSync(fd, b, 0, 1, off);
  fs.closeSync(fd);
}

describe('fsck on a clean region', () => {
  it('-y on a clean region with a directory of 50 files finds nothing and changes no file', () => {
    const { p, m } = base();
    for (let i = 0; i < 50; i++) put(m.fs, `/d/file-${i}`, Buffer.alloc(BS + i, i));
    const snap = JSON.stringify([...snapshot(m.fs)].sort());
    unmountRegion(m);
    expect(checkRegion(p, true)).toEqual({ problems: [], repaired: [], uncorrected: [] });
    expect(checkRegion(p, false)).toEqual({ problems: [], repaired: [], uncorrected: [] });
    const m2 = mountRegion(p, CHECKED, LOG);
    expect(JSON.stringify([...snapshot(m2.fs)].sort())).toBe(snap);
    expect(readAll(m2.fs, m2.fs.resolve('/d/file-49').ino).equals(Buffer.alloc(BS + 49, 49))).toBe(true);
    unmountRegion(m2);
  });
});

describe('fsck: each corruption class is found by -n and repaired by -y', () => {
  it('a wrong link count', () => {
    const { p, m } = base();
    const f = ino(m, '/f');
    m.engine.ops.apply('test', [], (t) => { t.markDirty(f); f.nlink = 5; });
    unmountRegion(m);
    const m2 = expectRepaired(p, /link count 5, should be 1/);
    expect(m2.fs.getattr('/f').nlink).toBe(1);
    unmountRegion(m2);
  });

  it('leaked blocks (marked in use, referenced by nothing)', () => {
    const { p, m } = base();
    const free0 = m.fs.statfs().bfree;
    m.engine.ops.apply('test', [], (t) => t.alloc.alloc(3, 0));
    unmountRegion(m);
    const m2 = expectRepaired(p, /3 block\(s\) marked in use but referenced by nothing/);
    expect(m2.fs.statfs().bfree).toBe(free0);
    unmountRegion(m2);
  });

  it('a data block mapped by two files without a reference count: mount refuses, -y counts both owners (shared)', () => {
    const { p, m } = base();
    const a = ino(m, '/f'), b = ino(m, '/x');
    const shared = a.bmap.extents[0].regionBlock;
    m.engine.ops.apply('test', [], (t) => { t.markDirty(b); b.bmap.insert(m.fs.guard.internalPermit(b), { fileBlock: 4, regionBlock: shared, len: 1, flags: 0 }); b.size = 5 * BS; });
    unmountRegion(m);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/mapped by 2 file\(s\) but their reference count says 1/);
    const m2 = expectRepaired(p, /reference count 1, mapped by 2 file\(s\)/);
    expect([...m2.fs.store.refcount.records()]).toEqual([{ start: shared, len: 1, count: 2 }]);
    // Shared now: a write to /f copies the block, /x keeps the old bytes.
    const h = m2.fs.open('/f', C.O_RDWR, ROOT_CALLER);
    m2.fs.write(h.fh, '/f', Buffer.alloc(10, 0x77), 10, 0);
    m2.fs.release(h.fh);
    expect(readAll(m2.fs, m2.fs.resolve('/x').ino).subarray(4 * BS, 5 * BS).equals(Buffer.alloc(BS, 0x5a))).toBe(true);
    expect(m2.fs.store.refcount.size).toBe(0);
    unmountRegion(m2);
    expect(checkRegion(p, false).problems).toEqual([]);
  });

  it('a reference count above the number of owners (a block that would never be freed): -y sets it', () => {
    const { p, m } = base();
    const a = ino(m, '/f');
    const e = a.bmap.extents[0];
    m.engine.ops.apply('test', [], (t) => t.refcount.increment(e.regionBlock, 2));
    unmountRegion(m);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/mapped by 1 file\(s\) but their reference count says 2/);
    const m2 = expectRepaired(p, /reference count 2, mapped by 1 file\(s\)/);
    expect(m2.fs.store.refcount.size).toBe(0);
    const free0 = m2.fs.statfs().bfree;
    m2.fs.unlink('/f');
    m2.fs.fsync();
    expect(m2.fs.statfs().bfree).toBe(free0 + 5);
    unmountRegion(m2);
  });

  it('a damaged refcount record block: mount refuses, -y rebuilds the counts from the block maps', () => {
    const { p, m } = base();
    const a = ino(m, '/f');
    const e = a.bmap.extents[0];
    const h = m.fs.create('/g', 0o644, C.O_RDWR, ROOT_CALLER);
    m.fs.release(h.fh);
    m.engine.ops.apply('test', [], (t) => {
      const g = ino(m, '/g');
      t.markDirty(g);
      t.refcount.increment(e.regionBlock, e.len);
      g.bmap.insert(m.fs.guard.internalPermit(g), { fileBlock: 0, regionBlock: e.regionBlock, len: e.len, flags: 0 });
      g.size = e.len * BS;
    });
    const root = m.engine.sb.refcountRoot;
    expect(root).toBeGreaterThan(0);
    unmountRegion(m);
    expect(checkRegion(p, false).problems).toEqual([]);
    flipByte(p, root * BS + 40);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/refcount index.*fsck\.pmemfs -y/);
    const m2 = expectRepaired(p, /refcount index/);
    expect([...m2.fs.store.refcount.records()]).toEqual([{ start: e.regionBlock, len: e.len, count: 2 }]);
    expect(readAll(m2.fs, m2.fs.resolve('/g').ino).equals(Buffer.alloc(5 * BS, 0x5a))).toBe(true);
    unmountRegion(m2);
  });

  it('a metadata block claimed by two inodes: the newer inode is cleared, its children go to /lost+found', () => {
    const { p, m } = base();
    m.fs.mkdir('/z', 0o755, ROOT_CALLER);
    for (let i = 0; i < 30; i++) m.fs.mknod(`/z/${'z'.repeat(60)}-${i}`, 0o644, 0, ROOT_CALLER);
    const z = ino(m, '/z'), f = ino(m, '/f');
    expect(z.ino).toBeGreaterThan(f.ino);
    const recBlock = z.records!.blocks[0].block;
    // The older /f gets a data extent on the newer /z's record block.
    m.engine.ops.apply('test', [], (t) => { t.markDirty(f); f.bmap.insert(m.fs.guard.internalPermit(f), { fileBlock: 9, regionBlock: recBlock, len: 1, flags: 0 }); f.size = 10 * BS; });
    unmountRegion(m);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/claimed by inode/);
    const m2 = expectRepaired(p, new RegExp(`claimed by inode ${f.ino} and inode ${z.ino}`));
    expect(m2.fs.readdir('/')).not.toContain('z');
    expect(m2.fs.readdir('/lost+found').length).toBe(2 + 30);
    expect(m2.fs.getattr('/f').size).toBe(10 * BS);
    unmountRegion(m2);
  });

  it('an orphan (no name, never freed) left by a crash', () => {
    const { p, m } = base();
    const d = ino(m, '/'), f = ino(m, '/f');
    m.engine.ops.apply('test', [], (t) => { t.markDirty(d); t.markDirty(f); d.dirents!.delete('f'); f.nlink = 0; });
    m.fs.fsync();
    m.region.close();   // crash: nothing reaped it
    const m2 = expectRepaired(p, /orphan inode/);
    expect(m2.fs.readdir('/')).not.toContain('f');
    unmountRegion(m2);
  });

  it('an inode nobody can reach goes to /lost+found', () => {
    const { p, m } = base();
    const d = ino(m, '/'), f = ino(m, '/f');
    m.engine.ops.apply('test', [], (t) => { t.markDirty(d); d.dirents!.delete('f'); });
    unmountRegion(m);
    const m2 = expectRepaired(p, new RegExp(`inode ${f.ino} is not reachable`));
    expect(readAll(m2.fs, m2.fs.resolve(`/lost+found/#${f.ino}`).ino).equals(Buffer.alloc(5 * BS, 0x5a))).toBe(true);
    unmountRegion(m2);
  });

  it('an inode slot with a bad checksum: mount refuses, -y clears it and its entry', () => {
    const { p, m } = base();
    const off = slotOff(m, ino(m, '/x').ino) + 40;
    unmountRegion(m);
    flipByte(p, off);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/checksum mismatch.*fsck/);
    const m2 = expectRepaired(p, /checksum mismatch/);
    expect(m2.fs.readdir('/')).not.toContain('x');
    expect(m2.fs.readdir('/')).toContain('f');
    unmountRegion(m2);
  });

  it('a damaged record block of a directory: the directory is cleared, its children go to /lost+found', () => {
    const { p, m } = base();
    const rb = ino(m, '/d').records!.blocks[0].block;
    unmountRegion(m);
    flipByte(p, rb * BS + 100);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/record block/);
    const m2 = expectRepaired(p, /record block/);
    expect(m2.fs.readdir('/lost+found').length).toBeGreaterThan(2);
    unmountRegion(m2);
  });

  it('a damaged primary superblock is restored from the backup', () => {
    const { p, m } = base();
    const snap = JSON.stringify([...snapshot(m.fs)].sort());
    unmountRegion(m);
    const fd = fs.openSync(p, 'r+');
    fs.writeSync(fd, Buffer.alloc(512), 0, 512, 0);
    fs.closeSync(fd);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(FormatError);
    const m2 = expectRepaired(p, /primary superblock unusable/);
    expect(JSON.stringify([...snapshot(m2.fs)].sort())).toBe(snap);
    unmountRegion(m2);
  });

  it('a damaged free-space bitmap block is rebuilt', () => {
    const { p, m } = base();
    const free0 = m.fs.statfs().bfree;
    unmountRegion(m);
    flipByte(p, 1 * BS + 200);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/bitmap block 0/);
    const m2 = expectRepaired(p, /bitmap block 0/);
    expect(m2.fs.statfs().bfree).toBe(free0);
    unmountRegion(m2);
  });

  it('a directory entry naming a free inode: mount refuses, -y removes the entry', () => {
    const { p, m } = base();
    const d = ino(m, '/');
    m.engine.ops.apply('test', [], (t) => { t.markDirty(d); d.dirents!.set('ghost', 50); });
    unmountRegion(m);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/names missing inode 50/);
    const m2 = expectRepaired(p, /entry 'ghost' names missing inode 50/);
    expect(m2.fs.readdir('/')).not.toContain('ghost');
    unmountRegion(m2);
  });

  it('a directory under two names (a cycle risk): mount refuses, -y drops the second name', () => {
    const { p, m } = base();
    const d = ino(m, '/d'), root = ino(m, '/');
    m.engine.ops.apply('test', [], (t) => { t.markDirty(root); root.dirents!.set('again', d.ino); });
    unmountRegion(m);
    expect(() => mountRegion(p, CHECKED, LOG)).toThrow(/reachable twice/);
    const m2 = expectRepaired(p, /second name/);
    expect(m2.fs.readdir('/').filter((n) => n === 'd' || n === 'again')).toHaveLength(1);
    unmountRegion(m2);
  });

  it('a region left by a crash: -n reports the journal replay without writing; -y replays', () => {
    const { p, m } = base();
    m.fs.fsync();
    m.fs.rename('/f', '/d/moved');
    m.fs.fsync();
    m.region.close();
    const m2 = expectRepaired(p, /not unmounted cleanly/);
    expect(m2.fs.readdir('/d')).toContain('moved');
    unmountRegion(m2);
  });
});

describe('fsck: mutated images are refused or repaired, never a crash', () => {
  it('300 mutations of a small region', () => {
    const { p, m } = base(4 * MiB);
    const dataStart = m.engine.sb.dataStart;
    const meta = [ino(m, '/d').records!.allBlocks(), ino(m, '/x').forkBlock].flat().filter(Boolean) as number[];
    unmountRegion(m);
    const pristine = fs.readFileSync(p);
    const r = rng(2026);
    const blocks = pristine.length / BS;
    const pickBlock = () => (r() < 0.7 ? Math.floor(r() * dataStart) : meta[Math.floor(r() * meta.length)]);
    const counts = { repaired: 0, refused: 0, clean: 0, mountRefused: 0 };
    for (let i = 0; i < 300; i++) {
      const img = path.join(dir, 'fuzz.pmem');
      const b = Buffer.from(pristine);
      const kind = i % 4;
      let len = b.length;
      if (kind === 0) for (let k = 0; k < 1 + Math.floor(r() * 8); k++) b[pickBlock() * BS + Math.floor(r() * BS)] ^= 1 << Math.floor(r() * 8);
      else if (kind === 1) b.fill(0, pickBlock() * BS, pickBlock() * BS + BS);
      else if (kind === 2) { const x = pickBlock(), y = pickBlock(); const t = Buffer.from(b.subarray(x * BS, x * BS + BS)); b.copy(b, x * BS, y * BS, y * BS + BS); t.copy(b, y * BS); }
      else len = Math.floor(r() * blocks) * BS;
      fs.writeFileSync(img, b.subarray(0, len));
      // Mount validates before use: it refuses with a FormatError, or what it serves is readable.
      const probe = path.join(dir, 'probe.pmem');
      fs.copyFileSync(img, probe);
      try { const pm = mountRegion(probe, CHECKED, LOG); snapshot(pm.fs); unmountRegion(pm); } catch (e) {
        if (!(e instanceof FormatError)) throw new Error(`mutation ${i} (kind ${kind}): mount crashed: ${(e as Error).stack}`);
        counts.mountRefused++;
      }
      fs.rmSync(probe);
      let res;
      try { res = checkRegion(img, true); } catch (e) {
        if (!(e instanceof FormatError)) throw new Error(`mutation ${i} (kind ${kind}): fsck -y crashed: ${(e as Error).stack}`);
        counts.refused++;
        fs.rmSync(img);
        continue;
      }
      expect(fs.statSync(img).size, `mutation ${i}: region size changed`).toBe(len);
      expect(fs.readdirSync(dir).sort(), `mutation ${i}: files outside the region`).toEqual(['fuzz.pmem', 'r.pmem']);
      if (res.uncorrected.length) { counts.refused++; fs.rmSync(img); continue; }
      if (res.repaired.length) counts.repaired++; else counts.clean++;
      const again = checkRegion(img, false);
      expect(again.problems, `mutation ${i} (kind ${kind}) after -y: ${res.repaired.join('; ')}`).toEqual([]);
      const mm = mountRegion(img, CHECKED, LOG);
      snapshot(mm.fs);
      unmountRegion(mm);
      fs.rmSync(img);
    }
    console.log(`fuzz: ${JSON.stringify(counts)}`);
    expect(counts.repaired).toBeGreaterThan(50);
  });
});
