/**
 * Hostile images, one check at a time: each test forges one structure of a
 * small region with the real encoders (checksums right, src/format/*
 * decoders pass), and mount must refuse it with a message naming the
 * problem and fsck.pmemfs, and fsck must find (and, for the namespace,
 * repair) it. The seeded, many-at-once version is fuzz-images.test.ts.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeSuperblock, FormatError, IFLAG_ORPHAN, MAX_FORK_BYTES, MAX_JOURNAL_BLOCKS, SB_STATE_DIRTY } from '../../src/format/layout.js';
import { checkRegion } from '../../src/repair/check.js';
import { ROOT_CALLER, type PmemFs } from '../../src/vfs/fs.js';
import { formatRegion, mountRegion, unmountRegion } from '../../src/vfs/mount.js';
import { CHECKED, LOG, OPTS, readAll } from './crash-harness.js';
import { ImageEditor } from './image-edit.js';

const BS = 4096;
const MiB = 1 << 20;
let dir: string;
let img: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-hostile-')); img = path.join(dir, 'r.pmem'); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

function put(f: PmemFs, p: string, b: Buffer): number {
  const h = f.create(p, 0o644, C.O_RDWR, ROOT_CALLER);
  f.write(h.fh, p, b, b.length, 0);
  f.release(h.fh);
  return f.resolve(p).ino;
}

/** A clean region: /a (2 blocks of 0xaa), /b (2 blocks of 0xbb), /d/c, /x with a 2000-byte xattr (out-of-line fork). */
function region(size = 16 * MiB): Record<string, number> {
  formatRegion(img, { size, blockSize: BS, label: 'hostile' });
  const m = mountRegion(img, CHECKED, LOG);
  const f = m.fs;
  f.mkdir('/d', 0o755, ROOT_CALLER);
  const inos = { a: put(f, '/a', Buffer.alloc(2 * BS, 0xaa)), b: put(f, '/b', Buffer.alloc(2 * BS, 0xbb)), c: put(f, '/d/c', Buffer.alloc(10, 0xcc)), x: put(f, '/x', Buffer.alloc(10, 1)), d: f.resolve('/d').ino };
  f.setxattr('/x', 'user.big', Buffer.alloc(2000, 3), 0);
  unmountRegion(m);
  return inos;
}

function edit(fn: (e: ImageEditor) => void): void {
  const e = new ImageEditor(img);
  try { fn(e); } finally { e.close(); }
}

/** The mount's refusal: a FormatError whose message matches `what` and names fsck.pmemfs. */
function refusal(what: RegExp): string {
  let msg = '';
  try { unmountRegion(mountRegion(img, CHECKED, LOG)); } catch (e) { expect(e).toBeInstanceOf(FormatError); msg = (e as Error).message; }
  expect(msg).toMatch(what);
  expect(msg).toMatch(/fsck\.pmemfs/);
  return msg;
}

describe('lengths are bounded before they are used', () => {
  it('a fork extent longer than its fork is refused before a block of it is read', () => {
    const { x } = region();
    edit((e) => { const { rec } = e.inode(x)!; rec.forkBlocks = e.sb.totalBlocks - 1 - rec.forkBlock; e.writeInodeRaw(rec, null); });
    refusal(/inode \d+: fork extent of \d+ blocks for a \d+-byte fork/);
    expect(checkRegion(img, false).problems.join('\n')).toMatch(/fork extent of/);
  });

  it('a fork length beyond MAX_FORK_BYTES is refused', () => {
    const { x } = region();
    edit((e) => { const { rec } = e.inode(x)!; rec.forkLen = MAX_FORK_BYTES + 1; rec.forkBlocks = Math.ceil(rec.forkLen / BS); e.writeInodeRaw(rec, null); });
    refusal(/out-of-line fork length/);
  });

  it('record counts beyond the data area, or a chain longer than the inode says, are refused', () => {
    formatRegion(img, { size: 16 * MiB, blockSize: BS, label: 'hostile' });
    const m = mountRegion(img, CHECKED, LOG);
    m.fs.mkdir('/big', 0o755, ROOT_CALLER);
    for (let i = 0; i < 300; i++) m.fs.mknod(`/big/${'n'.repeat(100)}-${i}`, 0o100644, 0, ROOT_CALLER);
    const big = m.fs.resolve('/big').ino;
    unmountRegion(m);
    const orig = new ImageEditor(img).inode(big)!.rec;
    expect(orig.recBlocks).toBeGreaterThan(1);
    edit((e) => { const { rec, fork } = e.inode(big)!; rec.recBlocks = 0xffffffff; e.writeInode(rec, fork); });
    refusal(/4294967295 record blocks .* impossible/);
    edit((e) => { const { rec, fork } = e.inode(big)!; rec.recBlocks = 1; e.writeInode(rec, fork); });
    refusal(/lists more than the 1 record blocks/);
  });

  it('a journal beyond MAX_JOURNAL_BLOCKS is refused even when the geometry is coherent', () => {
    region(64 * MiB);
    edit((e) => { const sb = e.superblock(); const k = MAX_JOURNAL_BLOCKS + 1 - sb.journalBlocks; sb.journalBlocks += k; sb.dataStart += k; e.writeSuperblock(sb); });
    refusal(/journal of 8193 blocks, more than 8192/);
  });

  it.each([
    ['an xattr value over 64 KiB', /xattr 1 has a 8-byte name and a 70000-byte value/, (f: { xattrs: Map<string, Buffer> }) => f.xattrs.set('user.huh', Buffer.alloc(70000))],
    ['an empty xattr name', /xattr 1 has a 0-byte name/, (f: { xattrs: Map<string, Buffer> }) => f.xattrs.set('', Buffer.from('v'))],
  ])('%s is refused', (_, what, change) => {
    const { x } = region();
    edit((e) => { const { rec, fork } = e.inode(x)!; change(fork); e.writeInode(rec, fork); });
    refusal(what);
  });

  it.each([[5000, 'symlink', /symlink target of 5000 bytes/], [10, 'file', /a symlink target on a non-symlink/]] as const)(
    'a symlink target of %i bytes on a %s is refused', (len, on, what) => {
      formatRegion(img, { size: 16 * MiB, blockSize: BS, label: 'hostile' });
      const m = mountRegion(img, CHECKED, LOG);
      const l = m.fs.symlink('/a', '/l', ROOT_CALLER).ino;
      const a = put(m.fs, '/a', Buffer.from('x'));
      unmountRegion(m);
      edit((e) => { const { rec, fork } = e.inode(on === 'file' ? a : l)!; fork.symlink = Buffer.alloc(len, 0x61); e.writeInode(rec, fork); });
      refusal(what);
    });

  it.each([['a/b', /invalid 3-byte name/], ['..', /invalid 2-byte name/]] as const)('an entry named %s is refused', (name, what) => {
    const { d } = region();
    edit((e) => { const { rec, fork } = e.inode(d)!; fork.dirents = new Map([[name, 2]]); e.writeInode(rec, fork); });
    refusal(what);
  });
});

describe('link counts and reachability', () => {
  it('a named inode with link count 0 is refused, not freed; fsck -y gives it its count and keeps its data', () => {
    const { a } = region();
    edit((e) => { const { rec, fork } = e.inode(a)!; rec.nlink = 0; rec.flags |= IFLAG_ORPHAN; e.writeInode(rec, fork); });
    refusal(/inode \d+ has link count 0 but 1 directory link\(s\) name it.*fsck\.pmemfs -y/);
    expect(checkRegion(img, false).problems.join('\n')).toMatch(/link count 0, should be 1/);
    const y = checkRegion(img, true);
    expect(y.uncorrected).toEqual([]);
    expect(y.repaired.join('\n')).not.toMatch(new RegExp(`orphan inode ${a}\\b`));
    const m = mountRegion(img, CHECKED, LOG);
    expect(m.fs.resolve('/a').ino).toBe(a);
    expect(m.fs.resolve('/a').nlink).toBe(1);
    expect(readAll(m.fs, a).equals(Buffer.alloc(2 * BS, 0xaa))).toBe(true);
    unmountRegion(m);
  });

  it('a link count above the names is refused', () => {
    const { b } = region();
    edit((e) => { const { rec, fork } = e.inode(b)!; rec.nlink = 2; e.writeInode(rec, fork); });
    refusal(/has link count 2 but 1 directory link/);
  });

  it('an in-use inode no entry reaches is refused; fsck -y puts it in /lost+found', () => {
    const { c, d } = region();
    edit((e) => { const { rec, fork } = e.inode(d)!; fork.dirents = new Map(); e.writeInode(rec, fork); });
    refusal(new RegExp(`inode ${c} has links but no directory reachable from the root names it`));
    expect(checkRegion(img, true).uncorrected).toEqual([]);
    const m = mountRegion(img, CHECKED, LOG);
    expect(m.fs.resolve(`/lost+found/#${c}`).ino).toBe(c);
    unmountRegion(m);
  });

  it('an unnamed inode with link count 0 that is not marked an orphan is refused', () => {
    const { c, d } = region();
    edit((e) => {
      const dd = e.inode(d)!; dd.fork.dirents = new Map(); e.writeInode(dd.rec, dd.fork);
      const cc = e.inode(c)!; cc.rec.nlink = 0; e.writeInode(cc.rec, cc.fork);
    });
    refusal(new RegExp(`inode ${c} has link count 0 and no name but is not marked an orphan`));
  });

  it('a genuine orphan (link count 0, marked, unnamed) is still freed at mount', () => {
    formatRegion(img, { size: 16 * MiB, blockSize: BS, label: 'hostile' });
    let m = mountRegion(img, CHECKED, LOG);
    const o = put(m.fs, '/o', Buffer.alloc(BS, 1));
    m.fs.open('/o', C.O_RDONLY, ROOT_CALLER);
    m.fs.unlink('/o');
    m.fs.fsync();
    m.region.close();                              // a crash with the orphan held
    m = mountRegion(img, CHECKED, LOG);
    expect(m.fs.inodeOf(o)).toBeUndefined();
    unmountRegion(m);
    expect(checkRegion(img, false).problems).toEqual([]);
  });
});

describe('journal replay and shared blocks', () => {
  it('a log not newer than the superblock checkpoint is not replayed over newer homes', () => {
    region();
    const old = new ImageEditor(img);
    const stale = old.log!;
    old.close();
    const m = mountRegion(img, CHECKED, LOG);
    put(m.fs, '/newer', Buffer.from('new'));
    m.fs.unlink('/a');
    unmountRegion(m);
    edit((e) => {
      expect(stale.seq).toBeLessThan(e.sb.journalSeq);
      const sb = e.superblock(); sb.state = SB_STATE_DIRTY; e.writeSuperblock(sb);
      e.log = stale; e.touchLog();                 // the older transaction back in the log
    });
    const m2 = mountRegion(img, CHECKED, LOG);
    expect(m2.replayed).toBe(0);
    expect(m2.fs.readdir('/').sort()).toEqual(['.', '..', 'b', 'd', 'newer', 'x']);
    unmountRegion(m2);
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('a replayed superblock image that moves a structure is refused', () => {
    region();
    const m = mountRegion(img, CHECKED, LOG);
    put(m.fs, '/n', Buffer.from('n'));
    m.fs.fsync();
    m.region.close();
    edit((e) => {
      const i = e.log!.homes.indexOf(0);
      expect(i).toBeGreaterThanOrEqual(0);
      const sb = e.superblock(); sb.inodeCount -= 8; sb.itableBlocks -= 1; sb.journalStart -= 1; sb.dataStart -= 1;
      const blk = e.read(0);
      encodeSuperblock(sb).copy(blk, 0);
      e.log!.images[i] = blk; e.touchLog();
    });
    refusal(/journal's superblock image changes the region's geometry \(itableBlocks 128 against 127\)/);
  });

  it('a block mapped by two files without a reference count is refused', () => {
    const { a, b } = region();
    edit((e) => {
      const aa = e.inode(a)!, bb = e.inode(b)!;
      bb.fork.extents[0].regionBlock = aa.fork.extents[0].regionBlock;
      e.writeInode(bb.rec, bb.fork);
    });
    refusal(/mapped by 2 file\(s\) but their reference count says 1.*fsck\.pmemfs -y/);
  });
});
