/**
 * Inodes read on demand (FEAT_INCOMPAT_ICACHE): mount loads the root and
 * the in-core list only; other inodes are read when named, evicted when the
 * kernel forgets them and the cache is over its limit; free slots below the
 * high-water mark are found again after a remount; an older region is
 * converted by its first read-write mount; fsck checks and rebuilds the
 * bookkeeping (parents, the count of slots in use, the in-core list); a
 * damaged slot is EIO when read, not a refused or crashed mount.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BITMAP_HDR, decodeSuperblock, encodeBitmapBlock, FEAT_INCOMPAT_DIRHASH, FEAT_INCOMPAT_DIRROOT, FEAT_INCOMPAT_ICACHE, IFLAG_SEALED } from '../../src/format/layout.js';
import { encodeDirentRec, encodeIndexBlock, REC_KIND_DIRENT, REC_KIND_ILIST } from '../../src/format/records.js';
import { DEFERRED_PROBES } from '../../src/inode/inode.js';
import { DirStream } from '../../src/fuse/dirstream.js';
import { checkRegion } from '../../src/repair/check.js';
import { ROOT_CALLER, type PmemFs } from '../../src/vfs/fs.js';
import { formatRegion, mountRegion, unmountRegion, type Mounted } from '../../src/vfs/mount.js';
import { CHECKED, LOG, OPTS } from './crash-harness.js';
import { listLikeKernel } from './helpers.js';
import { ImageEditor } from './image-edit.js';
import { encodeFork } from '../../src/format/fork.js';
import { seededRandom } from '../../src/region/prng.js';

const BS = 4096;
const MiB = 1 << 20;
let dir: string;
let img: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-icache-')); img = path.join(dir, 'r.pmem'); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

function put(f: PmemFs, p: string, b: Buffer): number {
  const h = f.create(p, 0o644, C.O_RDWR, ROOT_CALLER);
  if (b.length) f.write(h.fh, p, b, b.length, 0);
  f.release(h.fh);
  return f.resolve(p).ino;
}

/**
 * /d0../d3, each with `per` files of one block tagged with their name, and
 * /d0/sub; unmounted clean. `legacy`: then made what an older pmemfs left
 * (no FEAT_INCOMPAT_ICACHE, no parents, no count, no list).
 */
function tree(per: number, o: { legacy?: boolean } = {}): void {
  formatRegion(img, { size: 64 * MiB, blockSize: BS, label: 'icache' });
  const m = mountRegion(img, OPTS, LOG);
  for (let d = 0; d < 4; d++) {
    m.fs.mkdir(`/d${d}`, 0o755, ROOT_CALLER);
    for (let i = 0; i < per; i++) put(m.fs, `/d${d}/f${i}`, Buffer.alloc(BS, `d${d}f${i}`));
  }
  m.fs.mkdir('/d0/sub', 0o755, ROOT_CALLER);
  unmountRegion(m);
  if (o.legacy) {
    edit((e) => {
      for (const ino of e.usedInos()) {
        const x = e.inode(ino)!;
        if ((x.rec.mode & C.S_IFMT) === C.S_IFDIR) { x.rec.rdev = 0; e.writeInode(x.rec, x.fork); }
      }
      const sb = e.superblock();
      const { index, blocks } = e.chain(sb.ilistRoot, 0, REC_KIND_ILIST);
      const bits = Buffer.from(e.read(sb.bitmapStart).subarray(BITMAP_HDR));
      for (const { block } of [...index, ...blocks]) bits[block >> 3] &= ~(1 << (block & 7));
      e.write(sb.bitmapStart, encodeBitmapBlock(BS, 0, bits));
      sb.featuresIncompat &= ~FEAT_INCOMPAT_ICACHE; sb.inodesUsed = 0; sb.ilistRoot = 0;
      e.writeSuperblock(sb);
    });
  }
}

function edit(fn: (e: ImageEditor) => void): void {
  const e = new ImageEditor(img);
  try { fn(e); } finally { e.close(); }
}

/**
 * A region whose /big holds `n` empty files named 0..n-1, and whatever
 * `more` adds, unmounted clean. @returns /big's inode number
 */
function bigDir(n: number, more?: (f: PmemFs) => void, inodeCount = 8192): number {
  formatRegion(img, { size: 64 * MiB, blockSize: BS, label: 'icache', inodeCount });
  const m = mountRegion(img, OPTS, LOG);
  m.fs.mkdir('/big', 0o755, ROOT_CALLER);
  for (let i = 0; i < n; i++) put(m.fs, `/big/${i}`, Buffer.alloc(0));
  more?.(m.fs);
  const ino = m.fs.resolve('/big').ino;
  unmountRegion(m);
  return ino;
}

function read(f: PmemFs, p: string): string {
  const h = f.open(p, C.O_RDONLY, ROOT_CALLER);
  const b = Buffer.alloc(BS);
  const n = f.read(h.fh, b, BS, 0);
  f.release(h.fh);
  return b.subarray(0, n).toString();
}

describe('inodes read on demand', () => {
  it('mount loads the root only; a name reads its inode; statfs counts every slot in use', () => {
    tree(50);
    const m = mountRegion(img, OPTS, LOG);
    try {
      expect(m.fs.store.onDemand).toBe(true);
      expect(m.fs.store.inodes.size).toBe(1);
      expect(m.fs.store.inodesInUse).toBe(1 + 4 + 200 + 1);
      expect(m.fs.statfs().ffree).toBe(m.engine.sb.inodeCount - 206);
      expect(read(m.fs, '/d2/f17')).toBe('d2f17'.repeat(BS / 5 + 1).slice(0, BS));
      expect(m.fs.store.inodes.size).toBe(3);   // the root, /d2, /d2/f17
      // '..' and rename's loop check follow the parent recorded in the slot.
      const sub = m.fs.resolve('/d0/sub');
      expect(m.fs.parentOf(sub).ino).toBe(m.fs.resolve('/d0').ino);
      expect(() => m.fs.rename('/d0', '/d0/sub/x')).toThrow(/EINVAL/);
      m.fs.rename('/d0/sub', '/d1/sub');
      expect(m.fs.parentOf(m.fs.resolve('/d1/sub')).ino).toBe(m.fs.resolve('/d1').ino);
    } finally { unmountRegion(m); }
    const m2 = mountRegion(img, OPTS, LOG);
    expect(m2.fs.parentOf(m2.fs.resolve('/d1/sub')).ino).toBe(m2.fs.resolve('/d1').ino);
    unmountRegion(m2);
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('slots freed before a remount are handed out again, and the count stays right', () => {
    tree(50);
    let m = mountRegion(img, OPTS, LOG);
    const hwm = m.engine.sb.inodeHwm;
    for (let i = 0; i < 50; i += 2) m.fs.unlink(`/d1/f${i}`);
    unmountRegion(m);
    m = mountRegion(img, OPTS, LOG);
    const inos: number[] = [];
    for (let i = 0; i < 25; i++) inos.push(put(m.fs, `/d3/new${i}`, Buffer.alloc(0)));
    expect(m.engine.sb.inodeHwm).toBe(hwm);             // every new file took a freed slot
    expect(new Set(inos).size).toBe(25);
    expect(m.fs.store.inodesInUse).toBe(206);
    put(m.fs, '/d3/past', Buffer.alloc(0));             // no free slot left below the mark
    expect(m.engine.sb.inodeHwm).toBe(hwm + 1);
    unmountRegion(m);
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('forgotten inodes leave core past the limit; held, dirty or sealed ones stay', () => {
    tree(50);
    const m = mountRegion(img, { ...OPTS, inodeCache: 16 }, LOG);
    const f = m.fs;
    try {
      const held = f.open('/d0/f0', C.O_RDWR, ROOT_CALLER);
      f.write(held.fh, '/d0/f0', Buffer.from('held'), 4, 0);
      const sealed = f.resolve('/d0/f1');
      f.ops.apply('seal', [sealed], (t) => { t.markDirty(sealed); sealed.flags |= IFLAG_SEALED; });
      f.tx.commit('test');
      expect(sealed.flags & IFLAG_SEALED).toBe(IFLAG_SEALED);
      for (let i = 2; i < 50; i++) { const ino = f.resolve(`/d0/f${i}`).ino; f.kernelRefs.set(ino, 1); }
      expect(f.store.inodes.size).toBeGreaterThan(40);
      for (const ino of [...f.kernelRefs.keys()]) { f.kernelRefs.delete(ino); f.forgotten(ino); }
      f.forgotten(held.inode.ino); f.forgotten(sealed.ino);
      expect(f.store.inodes.size).toBeLessThanOrEqual(16);
      expect(f.evictions).toBeGreaterThan(30);
      expect(f.inodeOf(held.inode.ino)).toBe(held.inode);       // open: kept
      expect(f.inodeOf(sealed.ino)).toBe(sealed);               // sealed: on the in-core list
      // An evicted inode reads back the same.
      expect(read(f, '/d0/f33')).toBe('d0f33'.repeat(BS / 5 + 1).slice(0, BS));
      f.release(held.fh);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('a forgotten directory of 4096+ entries leaves core at once, under the limit too', () => {
    bigDir(4100, (f) => { f.mkdir('/small', 0o755, ROOT_CALLER); put(f, '/small/x', Buffer.alloc(0)); });
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big'), small = m.fs.resolve('/small');
      expect(m.fs.readdir('/big').length).toBe(4102);                // reads its entries
      m.fs.forgotten(small.ino);
      m.fs.forgotten(big.ino);
      expect(m.fs.store.inodes.get(small.ino)).toBe(small);          // the cache is far under its limit
      expect(m.fs.store.inodes.get(big.ino)).toBeUndefined();        // but 4100 entries weigh more than an inode
      expect(m.fs.resolve('/big').dirents!.size).toBe(4100);         // read again when named
    } finally { unmountRegion(m); }
  });

  it('nothing keeps an evicted directory\'s entry map alive', async () => {
    bigDir(4100);
    const m = mountRegion(img, OPTS, LOG);
    try {
      const ino = m.fs.readdir('/big') && m.fs.resolve('/big').ino;   // reads its entries
      const map = new WeakRef(m.fs.store.inodes.get(ino)!.direntsInCore!);
      m.fs.forgotten(ino);
      expect(m.fs.store.inodes.get(ino)).toBeUndefined();
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as () => void;
      // A WeakRef holds its target until the job ends; a young map may take more than one collection.
      for (let i = 0; i < 5 && map.deref() !== undefined; i++) { await new Promise((r) => setTimeout(r, 0)); gc(); }
      expect(map.deref()).toBeUndefined();
    } finally { unmountRegion(m); }
  });

  it('a large directory forgotten before its last change was committed leaves core at the next commit', () => {
    bigDir(4100);
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      expect(m.fs.readdir('/big').length).toBe(4102);                 // its entries in core (a create alone would not read them)
      put(m.fs, '/big/new', Buffer.alloc(0));                          // a create not yet committed
      m.fs.forgotten(big.ino);
      expect(m.fs.store.inodes.get(big.ino)).toBe(big);               // its change is not durable: it stays
      m.fs.fsync();
      expect(m.fs.store.inodes.get(big.ino)).toBeUndefined();        // the commit lets it go
      expect(m.fs.resolve('/big').dirents!.size).toBe(4101);
      // Named again by the kernel before the commit: it stays after it.
      const again = m.fs.resolve('/big');
      void again.dirents;
      put(m.fs, '/big/new2', Buffer.alloc(0));
      m.fs.forgotten(again.ino);
      m.fs.kernelRefs.set(again.ino, 1);
      m.fs.fsync();
      expect(m.fs.store.inodes.get(again.ino)).toBe(again);
    } finally { unmountRegion(m); }
  });

  it('an overwrite not yet flushed keeps its inode in core until it is', () => {
    tree(4);
    const m = mountRegion(img, { ...OPTS, inodeCache: 16 }, LOG);
    const f = m.fs;
    try {
      for (let i = 0; i < 40; i++) put(f, `/d1/n${i}`, Buffer.alloc(0));
      f.tx.commit('test');
      const h = f.open('/d0/f0', C.O_RDWR, ROOT_CALLER);
      f.write(h.fh, '/d0/f0', Buffer.from('over'), 4, 0);   // an overwrite, neither committed nor flushed
      const inode = h.inode;
      f.release(h.fh);
      for (const i of [...f.store.inodes.values()]) f.forgotten(i.ino);
      expect(f.store.inodes.size).toBeLessThanOrEqual(17);
      expect(f.store.inodes.get(inode.ino)).toBe(inode);
      f.fsync(inode, false);
      // Over the limit again, with everything else held by the kernel: the flushed inode is what goes.
      for (let i = 0; i < 40; i++) f.kernelRefs.set(f.resolve(`/d1/n${i}`).ino, 1);
      f.forgotten(inode.ino);
      expect(f.store.inodes.get(inode.ino)).toBeUndefined();
    } finally { unmountRegion(m); }
  });

  it('a listing learns each type from the slot without loading the inode; a damaged slot or a number past the mark is unknown', () => {
    tree(20);
    let m = mountRegion(img, OPTS, LOG);
    m.fs.symlink('/d1/f0', '/d1/link', ROOT_CALLER);
    const sub = m.fs.resolve('/d0/sub').ino, file = m.fs.resolve('/d0/f3').ino, link = m.fs.resolve('/d1/link').ino;
    const created = put(m.fs, '/d1/new', Buffer.alloc(0));
    expect(m.fs.store.peekType(created)).toBe(C.S_IFREG);          // in core, its slot not home yet
    unmountRegion(m);
    m = mountRegion(img, OPTS, LOG);
    const d0 = m.fs.resolve('/d0'), inCore = m.fs.store.inodes.size;
    const types = new Map([...d0.dirents!].map(([n, ino]) => [n, m.fs.store.peekType(ino)]));
    expect(types.get('sub')).toBe(C.S_IFDIR);
    expect(types.get('f3')).toBe(C.S_IFREG);
    expect([...types.values()].filter((t) => t === C.S_IFREG).length).toBe(20);
    expect(m.fs.store.peekType(link)).toBe(C.S_IFLNK);
    expect(m.fs.store.inodes.size).toBe(inCore);                          // nothing loaded
    expect(m.fs.store.peekType(m.engine.sb.inodeHwm + 1)).toBe(0);
    expect(m.fs.store.peekType(0)).toBe(0);
    unmountRegion(m);
    edit((e) => {
      const blk = e.read(e.sb.itableStart + Math.floor((file - 1) * 512 / BS));
      blk[((file - 1) * 512) % BS + 40] ^= 0xff;                         // the checksum no longer matches
      e.write(e.sb.itableStart + Math.floor((file - 1) * 512 / BS), blk);
    });
    m = mountRegion(img, OPTS, LOG);
    expect(m.fs.store.peekType(file)).toBe(0);                // DT_UNKNOWN: the caller stats it, and gets EIO
    expect(m.fs.store.peekType(sub)).toBe(C.S_IFDIR);
    expect(m.fs.store.damaged.size).toBe(0);                              // peeking is not reading
    unmountRegion(m);
  });

  it('an inode read again after a commit changed its slot is the changed one (the kept table block is dropped at commit)', () => {
    tree(8);
    const m = mountRegion(img, OPTS, LOG);
    try {
      const f = m.fs.resolve('/d0/f3'), g = m.fs.resolve('/d0/f4');   // one table block, read and kept
      m.fs.chmod(f, 0o600);
      m.fs.store.evict(g);
      expect(m.fs.resolve('/d0/f4').mode & 0o777).toBe(0o644);
      m.fs.tx.commit('test');                                         // f's slot goes home
      expect(m.fs.store.evict(f)).toBe(true);
      expect(m.fs.resolve('/d0/f3').mode & 0o777).toBe(0o600);
      expect(m.fs.store.peekType(f.ino)).toBe(C.S_IFREG);
    } finally { unmountRegion(m); }
  });

  it('a directory read for its attributes leaves its entries on media until they are listed', () => {
    bigDir(2000);
    let m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      expect(big.direntsInCore).toBeNull();                            // the slot only
      expect(big.pendingRecords!.recCount).toBe(2000);
      m.fs.chmod('/big', 0o700);                                       // the slot is rewritten, entries untouched
      m.fs.setxattr('/big', 'user.k', Buffer.from('v'), 0, ROOT_CALLER);
      m.fs.tx.commit('test');
      expect(big.direntsInCore).toBeNull();
      expect(m.fs.resolve('/big/1999').ino).toBeGreaterThan(0);       // a name is probed for on media
      expect(big.direntsInCore).toBeNull();
      expect(m.fs.readdir('/big').length).toBe(2002);                  // a listing reads them
      expect(big.direntsInCore!.size).toBe(2000);
      put(m.fs, '/big/new', Buffer.alloc(0));
    } finally { unmountRegion(m); }
    m = mountRegion(img, OPTS, LOG);
    try {
      expect(m.fs.stat(m.fs.resolve('/big')).mode & 0o777).toBe(0o700);
      expect(m.fs.readdir('/big').length).toBe(2003);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('a large directory nobody searched for some sweeps puts its entries back on media, once its changes are committed', () => {
    bigDir(5000, undefined, 16384);
    let m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      expect(m.fs.readdir('/big').length).toBe(5002);                  // reads the entries
      expect(m.fs.sweepIdleDirs(2)).toBe(0);                           // idle for one sweep: kept
      m.fs.resolve('/big/43');                                         // used again
      expect(m.fs.sweepIdleDirs(2)).toBe(0);
      big.dirStreams = 1;                                              // an open listing (FUSE opendir)
      expect(m.fs.sweepIdleDirs(2)).toBe(0);                           // its cookies are positions in this map
      big.dirStreams = 0;
      expect(m.fs.sweepIdleDirs(2)).toBe(5000);                        // idle for two: back on media
      expect(big.direntsInCore).toBeNull();
      expect(m.fs.store.inodes.get(big.ino)).toBe(big);                // the directory itself stays
      put(m.fs, '/big/new', Buffer.alloc(0));                          // a create changes its leaf only
      expect(big.direntsInCore).toBeNull();
      expect(m.fs.readdir('/big').length).toBe(5003);                  // reads them again
      m.fs.unlink('/big/new'); put(m.fs, '/big/new', Buffer.alloc(0)); // and changes them in core
      expect(big.direntsInCore!.size).toBe(5001);
      expect(m.fs.sweepIdleDirs(1)).toBe(0);                           // not committed yet: kept
      expect(big.direntsInCore!.size).toBe(5001);
      m.fs.tx.commit('test');
      expect(m.fs.sweepIdleDirs(1)).toBe(5001);
      expect(m.fs.readdir('/big').length).toBe(5003);
      m.fs.unlink('/big/7');
      m.fs.tx.commit('test');
      expect(m.fs.sweepIdleDirs(1)).toBe(5000);
    } finally { unmountRegion(m); }
    m = mountRegion(img, OPTS, LOG);
    try {
      expect(m.fs.readdir('/big').length).toBe(5002);
      expect(() => m.fs.resolve('/big/7')).toThrow(/ENOENT/);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('a name in a directory with a hash index is probed for in one leaf, every time: its entries stay on media', () => {
    const names = ['file-1', 'file-12', 'xfile-123', 'caf\u00e9', 'a'.repeat(255)];
    const ino = bigDir(3000, (f) => { for (const n of names) put(f, `/big/${n}`, Buffer.alloc(0)); });
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      const asks = ['2999', '0', 'file-1', 'file-12', 'xfile-123', 'caf\u00e9', 'a'.repeat(255), 'ile-1', 'file-123', '30000', 'x',
        ...Array.from({ length: 40 }, (_, i) => String(i * 73))];
      const reads = vi.spyOn(m.fs.store.journal, 'readScanInto');
      const probed = asks.map((n) => m.fs.lookupOrNull(big, n)?.ino ?? null);
      expect(big.direntsInCore).toBeNull();                            // 51 lookups, nothing read into core
      const leafReads = reads.mock.calls.filter(([b]) => b >= m.engine.sb.dataStart).length;   // not the inode-table blocks of the files found
      expect(leafReads).toBe(asks.length);                             // one leaf a lookup (the index was read once, before)
      reads.mockRestore();
      expect(probed.slice(0, 7).every((i) => i !== null)).toBe(true);
      expect(probed.slice(7, 11)).toEqual([null, null, null, null]);   // a substring, a longer name, absent ones
      expect(probed).toEqual(asks.map((n) => big.dirents!.get(n) ?? null));   // what the full read says
      expect(big.ino).toBe(ino);
    } finally { unmountRegion(m); }
  });

  it('a name in an unordered directory (before FEAT_INCOMPAT_DIRHASH) is probed for the first few times; then the entries are read', () => {
    const names = ['file-1', 'file-12', 'xfile-123', 'caf\u00e9', 'a'.repeat(255)];
    const ino = bigDir(3000, (f) => { for (const n of names) put(f, `/big/${n}`, Buffer.alloc(0)); });
    edit((e) => e.unhash(e.inode(ino)!.rec.recIndex, ino));
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      expect(m.fs.store.isHashedDir(big)).toBe(false);
      const asks = ['2999', '0', 'file-1', 'file-12', 'xfile-123', 'caf\u00e9', 'a'.repeat(255), 'ile-1', 'file-123', '30000', 'x'];
      const probed = asks.slice(0, DEFERRED_PROBES).map((n) => m.fs.lookupOrNull(big, n)?.ino ?? null);
      expect(big.direntsInCore).toBeNull();                            // nothing read into core
      expect(probed.slice(0, 7).every((i) => i !== null)).toBe(true);
      expect(probed.slice(7)).toEqual(Array(DEFERRED_PROBES - 7).fill(null));  // a substring, a longer name: absent
      m.fs.lookupOrNull(big, asks[DEFERRED_PROBES]);                   // one more reads them all
      expect(big.direntsInCore!.size).toBe(3000 + names.length);
      expect(probed).toEqual(asks.slice(0, DEFERRED_PROBES).map((n) => big.dirents!.get(n) ?? null));
      put(m.fs, '/big/new', Buffer.alloc(0));                          // an unordered chain stays one: changes go anywhere
      m.fs.unlink('/big/17');
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
    const m2 = mountRegion(img, OPTS, LOG);
    try {
      const big = m2.fs.resolve('/big');
      expect(m2.fs.store.isHashedDir(big)).toBe(false);
      expect(m2.fs.lookupOrNull(big, 'new')).not.toBeNull();
      expect(m2.fs.lookupOrNull(big, '17')).toBeNull();
    } finally { unmountRegion(m2); }
  });

  it('a listing streams a directory whose entries are on media from its blocks, reading nothing into core', () => {
    const ino = bigDir(3000);
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      const listed = [...m.fs.listEntries(big)];
      expect(big.direntsInCore).toBeNull();
      expect(listed.length).toBe(3000);
      expect(new Set(listed.map(([n]) => n)).size).toBe(3000);
      const map = big.dirents!;                                        // now read them: the same entries
      expect(listed.every(([n, c]) => map.get(n) === c)).toBe(true);
      expect([...m.fs.listEntries(big)]).toEqual([...map]);            // in core: the map, in its order (the media's)
      expect(big.ino).toBe(ino);
    } finally { unmountRegion(m); }
  });

  it('an unordered directory changed while it is streamed from its blocks: every entry neither added nor removed is listed once', () => {
    const ino = bigDir(3000);
    edit((e) => e.unhash(e.inode(ino)!.rec.recIndex, ino));        // records never move between its blocks
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      const order = [...m.fs.listEntries(big)].map(([n]) => n);        // the blocks' order (their names' hashes, when the chain was made)
      const last = order[order.length - 1];                             // in the last block: not read when it is removed
      const it = m.fs.listEntries(big)[Symbol.iterator]();
      const seen: string[] = [];
      for (let k = 0; k < 500; k++) seen.push(it.next().value![0]);
      put(m.fs, '/big/new-1', Buffer.alloc(0));                         // reads the entries into core, adds one
      m.fs.unlink(`/big/${seen[10]}`);                                  // one already listed
      m.fs.unlink(`/big/${last}`);                                      // one not yet listed
      for (let k = 0; k < 300; k++) put(m.fs, `/big/more-${k}`, Buffer.alloc(0));   // a new record block or two
      m.fs.tx.commit('test');
      for (let r = it.next(); !r.done; r = it.next()) seen.push(r.value[0]);
      const counts = new Map<string, number>();
      for (const n of seen) counts.set(n, (counts.get(n) ?? 0) + 1);
      for (let i = 0; i < 3000; i++) if (String(i) !== last) expect(counts.get(String(i)), String(i)).toBe(1);
      expect(counts.get(last) ?? 0).toBe(0);                            // removed before its block was read
      expect([...counts.values()].every((c) => c === 1)).toBe(true);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it.each([1, 2, 3])('a listing by hash (FUSE readdir) lists every entry neither added nor removed once, in hash order, while leaves split and merge and the entries leave core (seed %i)', (seed) => {
    const ino = bigDir(3000);
    const m = mountRegion(img, OPTS, LOG);
    try {
      const r = seededRandom(seed);
      const big = m.fs.resolve('/big');
      const hashed = m.fs.hashedListing(big)!;
      expect(hashed).not.toBeNull();
      expect(big.direntsInCore).toBeNull();                            // opendir reads the index, not the entries
      const d = new DirStream(ino, [['.', ino], ['..', 1]], () => m.fs.listEntries(big), hashed);
      const removed = new Set<string>(), added = new Set<string>();
      const live = Array.from({ length: 3000 }, (_, i) => String(i));
      const leavesNow = (): number => big.recordsInCore?.blocks.length ?? (m.fs.store.isHashedDir(big) ? big.deferred!.recBlocks : 0);
      const startLeaves = leavesNow();
      let leaves = 0, minLeaves = Infinity, maxLeaves = 0, k = 0, sawCore = false;
      const got = listLikeKernel(d, () => 1 + Math.floor(r() * 60), (sent) => (r() < 0.5 ? sent : 1 + Math.floor(r() * sent)), (round) => {
        if (round % 7 === 3 && round < 40) {                           // bursts of creates first: leaves split
          for (let i = 0; i < 400; i++) { const n = `new-${seed}-${k++}`; put(m.fs, `/big/${n}`, Buffer.alloc(0)); added.add(n); live.push(n); }
        } else if (round % 7 === 5 && round >= 40) {                   // then bursts of unlinks: leaves merge
          for (let i = 0; i < 600 && live.length > 100; i++) {
            const j = Math.floor(r() * live.length), n = live[j];
            live[j] = live[live.length - 1]; live.pop();
            m.fs.unlink(`/big/${n}`); removed.add(n);
          }
        } else if (round % 7 === 6) {
          m.fs.tx.commit('test');
          m.fs.store.unreadEntries(big);                               // back on media: the next reply reads leaves from blocks
        } else if (round % 14 === 0) {
          void big.dirents;                                            // into core: the next changes go through the map
        }
        leaves = leavesNow();
        sawCore ||= big.direntsInCore !== null;
        minLeaves = Math.min(minLeaves, leaves); maxLeaves = Math.max(maxLeaves, leaves);
      });
      const names = got.map(([n]) => n);
      expect(names.slice(0, 2)).toEqual(['.', '..']);
      const counts = new Map<string, number>();
      for (const n of names.slice(2)) counts.set(n, (counts.get(n) ?? 0) + 1);
      expect([...counts.values()].every((c) => c === 1)).toBe(true);  // nothing twice
      for (let i = 0; i < 3000; i++) if (!removed.has(String(i))) expect(counts.get(String(i)), String(i)).toBe(1);
      for (const n of counts.keys()) expect(removed.has(n) || added.has(n) || /^\d+$/.test(n), n).toBe(true);
      const hashes = names.slice(2).map((n) => m.fs.store.nameHash(n));
      expect(hashes.every((h, i) => i === 0 || h >= hashes[i - 1])).toBe(true);   // in hash order
      expect(removed.size).toBeGreaterThan(300);
      expect(maxLeaves).toBeGreaterThan(startLeaves);                  // leaves split under it
      expect(leaves).toBeLessThan(maxLeaves);                          // and merged
      expect(sawCore).toBe(true);                                      // with the entries in core at times, on media at others
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('a listing by hash goes on from a cookie after a remount, as a new open of the directory', () => {
    const ino = bigDir(2000);
    let m = mountRegion(img, OPTS, LOG);
    let first: Array<[string, number, number]> = [];
    const all: Array<[string, number, number]> = [];
    try {
      const big = m.fs.resolve('/big');
      const d = new DirStream(ino, [['.', ino], ['..', 1]], () => m.fs.listEntries(big), m.fs.hashedListing(big));
      d.read(0, (name, child, next) => { all.push([name, child, next]); return true; });
      expect(all.length).toBe(2002);
      first = all.slice(0, 777);
    } finally { unmountRegion(m); }
    m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      const d = new DirStream(ino, [['.', ino], ['..', 1]], () => m.fs.listEntries(big), m.fs.hashedListing(big));
      const rest: Array<[string, number, number]> = [];
      d.read(first[first.length - 1][2], (name, child, next) => { rest.push([name, child, next]); return true; });
      expect([...first, ...rest]).toEqual(all);
      expect(big.direntsInCore).toBeNull();                            // read leaf by leaf from media
    } finally { unmountRegion(m); }
  });

  it('a directory emptied and removed while it is streamed from its blocks: the listing ends, nothing is read from its freed blocks', () => {
    bigDir(2000);
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      const it = m.fs.listEntries(big)[Symbol.iterator]();
      const first = it.next().value![0];
      for (const n of m.fs.readdir('/big')) if (n !== '.' && n !== '..') m.fs.unlink(`/big/${n}`);
      m.fs.rmdir('/big');
      for (let i = 0; i < 3000; i++) put(m.fs, `/f${i}`, Buffer.alloc(BS, 'x'));   // the freed blocks are taken again
      m.fs.tx.commit('test');
      let more = 0;
      for (let r = it.next(); !r.done; r = it.next()) more++;
      expect(first).toBeTruthy();
      expect(more).toBeLessThan(2000);                                  // at most the rest of the block it was in
      expect(m.fs.store.damaged.size).toBe(0);
    } finally { unmountRegion(m); }
  });

  it('a listing that reaches a damaged block is EIO, noted, and again at the next try; what came before it was listed', () => {
    const ino = bigDir(2000);
    edit((e) => {
      const { blocks } = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT);
      const img2 = e.read(blocks[3].block);
      img2[100] ^= 0xff;
      e.write(blocks[3].block, img2);
    });
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      const got: string[] = [];
      expect(() => { for (const [n] of m.fs.listEntries(big)) got.push(n); }).toThrow(/EIO.*checksum.*fsck\.pmemfs/);
      expect(got.length).toBeGreaterThan(0);
      expect(m.fs.store.damaged.has(ino)).toBe(true);
      expect(() => [...m.fs.listEntries(big)]).toThrow(/EIO/);
      expect(big.direntsInCore).toBeNull();
    } finally { unmountRegion(m); }
  });

  it('creates, unlinks and renames in a directory whose hash index is on media read only the leaves they change', () => {
    bigDir(3000);
    let m = mountRegion(img, OPTS, LOG);
    const expected = new Set(Array.from({ length: 3000 }, (_, i) => String(i)));
    try {
      const big = m.fs.resolve('/big');
      const reads = vi.spyOn(m.fs.store.journal, 'readCopy');
      put(m.fs, '/big/new-one', Buffer.alloc(0)); expected.add('new-one');
      m.fs.unlink('/big/17'); expected.delete('17');
      m.fs.rename('/big/18', '/big/renamed-18'); expected.delete('18'); expected.add('renamed-18');
      m.fs.rename('/big/19', '/big/20'); expected.delete('19');        // over an existing name
      m.fs.mkdir('/big/sub', 0o755, ROOT_CALLER); expected.add('sub');
      m.fs.rename('/big/21', '/moved-out'); expected.delete('21');      // to another directory
      expect(big.direntsInCore).toBeNull();                            // none of them read the entries into core
      expect(reads.mock.calls.length).toBeLessThanOrEqual(6 * 3 + 12);  // up to three leaves a change, and the inodes' own
      reads.mockRestore();
      expect(m.fs.lookupOrNull(big, 'new-one')).not.toBeNull();
      expect(m.fs.lookupOrNull(big, '17')).toBeNull();
      expect(m.fs.lookupOrNull(big, 'renamed-18')).not.toBeNull();
      expect(m.fs.stat(m.fs.resolve('/big')).nlink).toBe(3);
      // Many more, all on media: leaves split and merge under it.
      for (let i = 0; i < 2000; i++) { put(m.fs, `/big/more-${i}`, Buffer.alloc(0)); expected.add(`more-${i}`); }
      for (let i = 100; i < 2900; i++) { m.fs.unlink(`/big/${i}`); expected.delete(String(i)); }
      m.fs.tx.commit('test');
      expect(big.direntsInCore).toBeNull();
      const listed = listLikeKernel(new DirStream(big.ino, [], () => [], m.fs.hashedListing(big)!), () => 80, (k) => k).map(([n]) => n);
      expect(new Set(listed)).toEqual(expected);
      expect(listed.length).toBe(expected.size);
      expect(new Set(big.dirents!.keys())).toEqual(expected);         // the full read agrees
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
    m = mountRegion(img, OPTS, LOG);
    try {
      expect(new Set(m.fs.readdir('/big').filter((n) => n !== '.' && n !== '..'))).toEqual(expected);
    } finally { unmountRegion(m); }
  });

  it('a failed create in a directory whose hash index is on media changes nothing, on media or in core', () => {
    bigDir(3000);
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      let n = 0;
      m.engine.journal.failpoint = () => { if (++n === 2) throw new Error('injected'); };
      expect(() => put(m.fs, '/big/doomed', Buffer.alloc(0))).toThrow(/injected/);
      m.engine.journal.failpoint = null;
      expect(m.fs.lookupOrNull(m.fs.resolve('/big'), 'doomed')).toBeNull();
      put(m.fs, '/big/fine', Buffer.alloc(0));
      m.fs.tx.commit('test');
      expect(m.fs.resolve('/big').dirents!.size).toBe(3001);
      expect(big.ino).toBe(m.fs.resolve('/big').ino);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('a probe reads only the leaf of the name\'s hash; one whose leaf is damaged gives way to the full read (EIO)', () => {
    const ino = bigDir(2000);
    let inDamaged = '', elsewhere: string[] = [];
    edit((e) => {
      const { blocks } = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT);
      inDamaged = blocks[3].recs.dirents[0][0];
      elsewhere = blocks.filter((_, i) => i !== 3).map((b) => b.recs.dirents[0][0]);
      const img2 = e.read(blocks[3].block);
      img2[100] ^= 0xff;                                              // the checksum no longer matches
      e.write(blocks[3].block, img2);
    });
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      for (const n of elsewhere) expect(m.fs.resolve(`/big/${n}`).ino).toBeGreaterThan(0);   // other leaves: the damage is not on their way
      expect(m.fs.store.damaged.has(ino)).toBe(false);
      expect(() => m.fs.resolve(`/big/${inDamaged}`)).toThrow(/EIO.*checksum.*fsck\.pmemfs/);   // its leaf: the full read reports it
      expect(m.fs.store.damaged.has(ino)).toBe(true);
      expect(big.direntsInCore).toBeNull();
    } finally { unmountRegion(m); }
  });

  it('an entry with a sound checksum that names an impossible inode is EIO when probed for, as when read', () => {
    const ino = bigDir(2000);
    let forged = '';
    edit((e) => {
      const { blocks } = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT);
      const recs = blocks[5].recs.dirents;
      forged = recs[0][0];
      e.writeRecordBlock(blocks[5].block, ino, REC_KIND_DIRENT, recs.map(([n, , raw], i) => (i === 0 ? encodeDirentRec(n, 0) : raw)));
    });
    const m = mountRegion(img, OPTS, LOG);
    try {
      expect(m.fs.resolve('/big/3').ino).toBeGreaterThan(0);
      expect(() => m.fs.resolve(`/big/${forged}`)).toThrow(/EIO.*names inode 0/);
      expect(m.fs.store.damaged.has(ino)).toBe(true);
    } finally { unmountRegion(m); }
  });

  it('a damaged record block is EIO when its directory is read, not when the directory is stat()ed', () => {
    const ino = bigDir(2000, (f) => { put(f, '/other', Buffer.alloc(BS, 'other')); });
    let inDamaged = '';
    edit((e) => {
      const x = e.inode(ino)!;
      const { blocks } = e.chain(x.rec.recIndex, ino, 1);
      inDamaged = blocks[3].recs.dirents[0][0];
      const img2 = e.read(blocks[3].block);
      img2[100] ^= 0xff;                                              // the checksum no longer matches
      e.write(blocks[3].block, img2);
    });
    const m = mountRegion(img, OPTS, LOG);
    try {
      expect(m.fs.readdir('/').sort()).toEqual(['.', '..', 'big', 'other']);
      expect(m.fs.stat(m.fs.resolve('/big')).ino).toBe(ino);          // its slot is sound
      expect(() => m.fs.readdir('/big')).toThrow(/EIO.*checksum.*fsck\.pmemfs/);
      expect(m.fs.store.damaged.has(ino)).toBe(true);
      expect(() => m.fs.readdir('/big')).toThrow(/EIO/);               // and again: nothing half-read was kept
      expect(() => m.fs.create(`/big/${inDamaged}`, 0o644, C.O_RDWR, ROOT_CALLER)).toThrow(/EIO/);   // its leaf is the damaged one
      expect(read(m.fs, '/other')).toMatch(/^other/);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, true).repaired.length).toBeGreaterThan(0);
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('a damaged slot is EIO when read, named in the stats, and repaired by fsck -y', () => {
    tree(4);
    let victim = 0;
    let m = mountRegion(img, OPTS, LOG);
    victim = m.fs.resolve('/d2/f1').ino;
    unmountRegion(m);
    edit((e) => {
      const blk = e.read(e.sb.itableStart + Math.floor((victim - 1) * 512 / BS));
      blk[((victim - 1) * 512) % BS + 40] ^= 0xff;   // a timestamp byte: the checksum no longer matches
      e.write(e.sb.itableStart + Math.floor((victim - 1) * 512 / BS), blk);
    });
    m = mountRegion(img, OPTS, LOG);              // mount reads a constant amount: it does not see the damage
    expect(() => m.fs.resolve('/d2/f1')).toThrow(/EIO.*checksum.*fsck\.pmemfs/);
    expect(m.fs.store.damaged.has(victim)).toBe(true);
    expect(read(m.fs, '/d2/f2')).toMatch(/^d2f2/);  // the rest of the directory serves on
    unmountRegion(m);
    expect(() => unmountRegion(mountRegion(img, CHECKED, LOG))).toThrow(/damaged inode.*fsck\.pmemfs/);
    expect(checkRegion(img, true).repaired.some((p) => p.includes(`damaged inode ${victim}`))).toBe(true);
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('an inode whose blocks the bitmap calls free is EIO when read, not handed to a second file', () => {
    tree(4);
    let m = mountRegion(img, OPTS, LOG);
    const ino = m.fs.resolve('/d3/f3').ino;
    const blk = m.fs.resolve('/d3/f3').bmap.extents[0].regionBlock;
    unmountRegion(m);
    edit((e) => {
      const bits = Buffer.from(e.read(e.sb.bitmapStart).subarray(BITMAP_HDR));
      bits[blk >> 3] &= ~(1 << (blk & 7));
      e.write(e.sb.bitmapStart, encodeBitmapBlock(BS, 0, bits));
    });
    m = mountRegion(img, OPTS, LOG);
    expect(() => m.fs.resolve('/d3/f3')).toThrow(/EIO.*free-space bitmap/);
    expect(m.fs.store.damaged.has(ino)).toBe(true);
    unmountRegion(m);
  });
});

/**
 * Crash `m` (mounted with powerfail) at every data, log and commit
 * persistence point of `work`, three ways each (no unflushed page kept, all
 * of them, a seeded random half): each image is mounted and handed to
 * `verify`, which checks it and returns the names of the directory under
 * test there; they must be its last committed state, or the committing one
 * (`names` reads them on the live mount). `onPoint` runs after each point.
 * `m` is unmounted at the end.
 * @returns the persistence points crashed at and the images checked
 */
function crashEveryPoint(m: Mounted, names: (f: PmemFs) => Set<string>, verify: (c: Mounted, what: string) => Set<string>,
  seed: number, work: () => void, onPoint: () => void = () => {}): { points: number; images: number } {
  let committed = names(m.fs);
  let points = 0, images = 0;
  const coin = seededRandom(seed);
  m.region.onPersist = (point, n) => {
    if (point !== 'data' && point !== 'log' && point !== 'commit') return;
    const committing = point === 'commit' ? names(m.fs) : null;
    for (let k = 0; k < 3; k++) {
      const crash = path.join(dir, `crash-${n}-${k}.pmem`);
      m.region.crashImage(crash, k === 0 ? () => false : k === 1 ? () => true : () => coin() < 0.5);
      const what = `point ${n} (${point}) subset ${k}`;
      const c = mountRegion(crash, OPTS, LOG);
      try {
        const got = verify(c, what);
        const same = (x: Set<string> | null) => x !== null && x.size === got.size && [...x].every((name) => got.has(name));
        expect(same(committed) || same(committing), `${what}: ${got.size} entries, committed ${committed.size}, committing ${committing?.size}`).toBe(true);
      } finally { unmountRegion(c); }
      fs.rmSync(crash);
      images++;
    }
    points++;
    if (point === 'commit') committed = names(m.fs);
    onPoint();
  };
  try { work(); } finally {
    m.region.onPersist = null;
    unmountRegion(m);
  }
  return { points, images };
}

describe('a large directory at every persistence point', () => {
  it('after each crash the probe, the streamed listing and the full read agree, on a committed state of the directory', () => {
    bigDir(1500);
    const m = mountRegion(img, { ...OPTS, powerfail: true }, LOG);
    const names = (f: PmemFs) => new Set(f.resolve('/big').dirents!.keys());
    const { points, images } = crashEveryPoint(m, names, (c, what) => {
      const big = c.fs.resolve('/big');
      expect(big.direntsInCore, what).toBeNull();                     // its entries still on media after the recovery
      // Probes first (they leave the entries on media), for names present and absent in either state.
      const asks = ['0', '1499', 'gone-3', 'new-0', 'new-99', 'new-199', 'absent', '700'];
      const probed = asks.map((n) => c.fs.lookupOrNull(big, n)?.ino ?? null);
      const streamed = [...c.fs.listEntries(big)];
      expect(big.direntsInCore, what).toBeNull();
      const full = big.dirents!;                                        // the full read
      expect(new Map(streamed), what).toEqual(new Map(full));
      expect(streamed.length, what).toBe(full.size);
      expect(probed, what).toEqual(asks.map((n) => full.get(n) ?? null));
      return new Set(full.keys());
    }, 18, () => {
      // Entries come and go in the directory's record blocks, a commit every 12 changes.
      for (let i = 0; i < 200; i++) {
        put(m.fs, `/big/new-${i}`, Buffer.alloc(0));
        m.fs.unlink(`/big/${i * 7}`);
        if (i % 3 === 0) m.fs.rename(`/big/${i * 7 + 1}`, `/big/gone-${i}`);
        if (i % 12 === 11) m.fs.fsync();
      }
      m.fs.fsync();
    });
    expect(points).toBeGreaterThanOrEqual(16);
    expect(images).toBe(points * 3);
    expect(checkRegion(img, false).problems).toEqual([]);
  });
});

describe('a directory hash index at every persistence point', () => {
  it('leaves, index blocks and root blocks split and go; after each crash lookups, the listing by hash and the full read agree on a committed state', () => {
    // /long: names of 230+ bytes, ~16 to a full leaf, so 4,000 of them make ~330 leaves; index and root
    // blocks take 8 entries (dirIndexFanout), so the index and its root split; then most names go, leaves
    // merge, and emptied index and root blocks are freed.
    const N = 4000;
    // A commit (three persistence points, each crashed three ways) every this many changes; more of them with PMEMFS_POWERFAIL_FULL=1.
    const FULL = process.env.PMEMFS_POWERFAIL_FULL === '1';
    const GROW_BATCH = FULL ? 50 : 200, SHRINK_BATCH = FULL ? 60 : 250;
    const long = (i: number) => `${i}-`.padEnd(230 + (i % 25), 'l');
    formatRegion(img, { size: 24 * MiB, blockSize: BS, label: 'dirhash-pf', inodeCount: 8192, journalBlocks: 2048 });   // a log that takes a batch in one commit
    const m = mountRegion(img, { ...OPTS, powerfail: true }, LOG);
    m.fs.store.dirIndexFanout = 8;
    m.fs.mkdir('/long', 0o755, ROOT_CALLER);
    m.fs.fsync();
    // The committed names, without reading the directory into core when its entries are on media.
    const names = (f: PmemFs) => {
      const d = f.resolve('/long');
      if (d.direntsInCore) return new Set(d.direntsInCore.keys());
      const listing = f.hashedListing(d);
      return new Set(listing ? listLikeKernel(new DirStream(d.ino, [], () => [], listing), () => 200, (k) => k).map(([n]) => n) : d.dirents!.keys());
    };
    let maxIndex = 0, maxLeaves = 0, endLeaves = 0, maxRoots = 0, endRoots = 0;
    const { points, images } = crashEveryPoint(m, names, (c, what) => {
      const d = c.fs.resolve('/long');
      const asks = [0, 1, 17, 999, 1500, 3999, 4001].map(long);
      const probed = asks.map((n) => c.fs.lookupOrNull(d, n)?.ino ?? null);
      const listing = c.fs.hashedListing(d);
      const streamed = listing ? listLikeKernel(new DirStream(d.ino, [], () => [], listing), () => 50, (n) => n) : [...c.fs.listEntries(d)];
      if (listing) expect(d.direntsInCore, what).toBeNull();          // probes and the listing read leaves only (a small directory: its fork)
      const full = d.dirents!;
      expect(new Map(streamed), what).toEqual(new Map(full));
      expect(streamed.length, what).toBe(full.size);
      expect(probed, what).toEqual(asks.map((n) => full.get(n) ?? null));
      return new Set(full.keys());
    }, 31, () => {
      // Every other batch runs with the entries back on media (the idle sweep's doing): its changes
      // go straight into the leaves they touch (InodeStore.syncDeferred); the others through the map.
      const batchDone = (k: number) => {
        m.fs.fsync();
        const d = m.fs.resolve('/long');
        if (k % 2 === 0) void d.dirents;                              // the next batch through the entry map
        else expect(m.fs.store.unreadEntries(d)).toBe(true);           // the next straight into the leaves
      };
      let batches = 0;
      for (let i = 0; i < N; i++) {                                 // grow: leaves split, then the index
        put(m.fs, `/long/${long(i)}`, Buffer.alloc(0));
        if (i % GROW_BATCH === GROW_BATCH - 1) batchDone(batches++);
      }
      // shrink: leaves merge; every name of the lower half of hashes goes, so index and root blocks empty
      const high = (n: string) => m.fs.store.nameHash(n) >= 2 ** 31;
      const keep = (i: number) => i % 10 === 0 && high(long(i));
      const highName = (j: number) => { for (let k = 0; ; k++) { const n = `${j}-${k}-`.padEnd(230 + (j % 25), 'l'); if (high(n)) return n; } };
      for (let i = 0; i < N; i++) {
        if (!keep(i)) m.fs.unlink(`/long/${long(i)}`);
        if (i % 10 === 5 && keep(i - 5)) m.fs.rename(`/long/${long(i - 5)}`, `/long/${highName(i + N)}`);
        if (i % SHRINK_BATCH === SHRINK_BATCH - 1) batchDone(batches++);
      }
      m.fs.fsync();
      endLeaves = m.fs.resolve('/long').records!.blocks.length;
      endRoots = m.fs.resolve('/long').records!.roots.length;
    }, () => {
      const d = m.fs.resolve('/long'), set = d.recordsInCore ?? d.deferred?.partial, ix = d.deferred?.dirIndex;
      maxIndex = Math.max(maxIndex, set?.index.length ?? ix?.ixBlocks.length ?? 0);
      maxRoots = Math.max(maxRoots, set?.roots.length ?? ix?.roots.length ?? 0); maxLeaves = Math.max(maxLeaves, set?.blocks.length ?? d.deferred?.recBlocks ?? 0);
    });
    expect(maxIndex).toBeGreaterThan(1);                             // the index split
    expect(maxLeaves).toBeGreaterThan(254);
    expect(endLeaves).toBeLessThan(maxLeaves / 4);                   // and shrank again
    expect(maxRoots).toBeGreaterThan(2);                             // the root split
    expect(endRoots).toBeLessThan(maxRoots);                         // and root blocks went
    expect(points).toBeGreaterThanOrEqual(FULL ? 130 : 30);
    expect(images).toBe(points * 3);
    expect(checkRegion(img, false).problems).toEqual([]);
  }, 300_000);
});

describe('a damaged directory hash index', () => {
  /** /big of n entries with its first leaf's first record moved into leaf `to` (both blocks resealed). */
  function misplace(n: number, to: number): { ino: number; moved: string } {
    const ino = bigDir(n);
    let moved = '';
    edit((e) => {
      const { blocks } = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT);
      const from = blocks[0], into = blocks[to];
      const rec = from.recs.dirents[0];
      moved = rec[0];
      e.writeRecordBlock(from.block, ino, REC_KIND_DIRENT, from.recs.dirents.slice(1).map(([, , r]) => r));
      e.writeRecordBlock(into.block, ino, REC_KIND_DIRENT, [...into.recs.dirents.map(([, , r]) => r), rec[2]]);
    });
    return { ino, moved };
  }

  it('a name in the wrong leaf, checksums sound: the listing by hash and the full read say EIO, fsck finds it and -y keeps the files', () => {
    const { ino } = misplace(1200, 2);
    const m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      const listing = m.fs.hashedListing(big)!;
      expect(() => listLikeKernel(new DirStream(ino, [], () => [], listing), () => 100, (k) => k)).toThrow(/EIO.*outside the block's range.*fsck\.pmemfs/);
      expect(m.fs.store.damaged.has(ino)).toBe(true);
      expect(() => m.fs.readdir('/big')).toThrow(/EIO.*below the block's range/);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems.some((p) => p.includes(`damaged inode ${ino}`) && p.includes("below the block's range"))).toBe(true);
    expect(checkRegion(img, true).repaired.some((p) => p.includes(`damaged inode ${ino}`))).toBe(true);
    expect(checkRegion(img, false).problems).toEqual([]);
    const m2 = mountRegion(img, OPTS, LOG);
    try {
      expect(m2.fs.readdir('/lost+found').length).toBe(1200 + 2);   // the files, named by inode number
    } finally { unmountRegion(m2); }
  });

  it('leaves out of hash order, or a hash index on a region without the feature bit: refused when the index is read', () => {
    const ino = bigDir(1200);
    edit((e) => {
      const ix = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT).index[0];
      const los = [...ix.los!]; los[1] = los[2] + 1;                   // leaf 1 now claims from past leaf 2's start
      e.writeIndexBlock(ix.block, ino, ix.next, ix.blocks, los);
    });
    let m = mountRegion(img, OPTS, LOG);
    try {
      expect(() => m.fs.resolve('/big/7')).toThrow(/EIO.*not ascending.*fsck\.pmemfs/);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems.some((p) => p.includes(`damaged inode ${ino}`))).toBe(true);
    const ino2 = bigDir(1200);
    edit((e) => {                                                     // a hash index on a region that says it has none
      const sb = e.superblock();
      sb.featuresIncompat &= ~FEAT_INCOMPAT_DIRHASH;
      e.writeSuperblock(sb);
    });
    m = mountRegion(img, OPTS, LOG);
    try {
      expect(() => m.fs.resolve('/big/7')).toThrow(/EIO.*hash index on a region without FEAT_INCOMPAT_DIRHASH/);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems.some((p) => p.includes(`damaged inode ${ino2}`))).toBe(true);
  });
});

describe('a directory hash index root', () => {
  /** /big of `n` empty files 0..n-1, its index made `fanout` entries to an index or root block; unmounted clean. @returns /big's inode number */
  function rootedDir(n: number, fanout: number): number {
    formatRegion(img, { size: 64 * MiB, blockSize: BS, label: 'dirroot', inodeCount: 8192 });
    const m = mountRegion(img, OPTS, LOG);
    m.fs.store.dirIndexFanout = fanout;
    m.fs.mkdir('/big', 0o755, ROOT_CALLER);
    for (let i = 0; i < n; i++) put(m.fs, `/big/${i}`, Buffer.alloc(0));
    const ino = m.fs.resolve('/big').ino;
    unmountRegion(m);
    return ino;
  }

  /** The distinct data-area blocks (not the inode table's) `fn` reads through the journal's scan reads. */
  function blocksRead(m: Mounted, fn: () => void): number {
    const seen = new Set<number>();
    const j = m.fs.store.journal;
    const spies = [vi.spyOn(j, 'readScan'), vi.spyOn(j, 'readScanInto'), vi.spyOn(j, 'readCopy')];
    try { fn(); } finally {
      for (const s of spies) { for (const [blk] of s.mock.calls) if (blk >= m.engine.sb.dataStart) seen.add(blk); s.mockRestore(); }
    }
    return seen.size;
  }

  it('a create and an unlink in a cold directory read its root, the index blocks of the leaves they change and those leaves, not the whole index', () => {
    const ino = rootedDir(6000, 4);
    let roots = 0, indexBlocks = 0;
    edit((e) => { const c = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT); roots = c.roots.length; indexBlocks = c.index.length; });
    let m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      const made = blocksRead(m, () => { put(m.fs, '/big/new', Buffer.alloc(0)); m.fs.tx.commit('test'); });
      expect(made).toBeLessThanOrEqual(roots + 2);                      // the root, one index block, one leaf
      const gone = blocksRead(m, () => { m.fs.unlink('/big/4321'); m.fs.tx.commit('test'); });
      expect(gone).toBeLessThanOrEqual(roots + 3 + 3);                 // and for a merge the neighbours' leaves and index blocks
      expect(made + gone).toBeLessThan(2 * (roots + indexBlocks));
      expect(big.direntsInCore).toBeNull();
      for (let i = 0; i < 300; i++) { put(m.fs, `/big/more-${i}`, Buffer.alloc(0)); if (i % 50 === 0) m.fs.tx.commit('test'); }
      for (let i = 0; i < 3000; i += 3) m.fs.unlink(`/big/${i}`);     // leaves split and merge while index blocks are read as reached
      m.fs.tx.commit('test');
      expect(big.direntsInCore).toBeNull();
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
    m = mountRegion(img, OPTS, LOG);
    try {
      const names = m.fs.resolve('/big').dirents!;
      expect(names.size).toBe(6000 + 1 + 300 - 1 - 1000);
      expect(names.has('new') && names.has('more-299') && !names.has('4321') && !names.has('2997') && names.has('2998')).toBe(true);
    } finally { unmountRegion(m); }
  });

  it('a cold lookup reads the root, one index block and one leaf; an index from before FEAT_INCOMPAT_DIRROOT reads every index block until its first change roots it', () => {
    const ino = rootedDir(6000, 4);
    let roots = 0, indexBlocks = 0;
    edit((e) => {
      const c = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT);
      roots = c.roots.length; indexBlocks = c.index.length;
      expect(e.superblock().featuresIncompat & FEAT_INCOMPAT_DIRROOT).toBe(FEAT_INCOMPAT_DIRROOT);
    });
    expect(roots).toBeGreaterThan(1);                                 // the root split (fanout 4)
    expect(indexBlocks).toBeGreaterThan(roots + 2);                   // so that the root saves reads
    let m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      expect(blocksRead(m, () => expect(m.fs.lookupOrNull(big, '4321')).not.toBeNull())).toBe(roots + 2);
      expect(blocksRead(m, () => expect(m.fs.lookupOrNull(big, 'absent')).toBeNull())).toBeLessThanOrEqual(2);   // the root is kept: an index block and a leaf at most
      expect(big.direntsInCore).toBeNull();
    } finally { unmountRegion(m); }

    // What a pmemfs before the feature left: no root, no feature bit.
    edit((e) => {
      expect(e.unroot(ino)).not.toBeNull();
      const sb = decodeSuperblock(e.home(0)); sb.featuresIncompat &= ~FEAT_INCOMPAT_DIRROOT; e.writeSuperblock(sb);   // home's: clean, nothing to replay
    });
    expect(checkRegion(img, false).problems).toEqual([]);
    m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      expect(blocksRead(m, () => expect(m.fs.lookupOrNull(big, '4321')).not.toBeNull())).toBe(indexBlocks + 1);
      m.fs.store.dirIndexFanout = 4;
      put(m.fs, '/big/new', Buffer.alloc(0));                          // its first change gives it its root
      m.fs.unlink('/big/17');
      expect(big.direntsInCore).toBeNull();
      expect(m.engine.sb.featuresIncompat & FEAT_INCOMPAT_DIRROOT).toBe(FEAT_INCOMPAT_DIRROOT);
    } finally { unmountRegion(m); }
    expect(checkRegion(img, false).problems).toEqual([]);
    m = mountRegion(img, OPTS, LOG);
    try {
      const big = m.fs.resolve('/big');
      expect(blocksRead(m, () => expect(m.fs.lookupOrNull(big, 'new')).not.toBeNull())).toBeLessThanOrEqual(roots + 3);   // rooted again (a split may have added a root)
      expect(m.fs.lookupOrNull(big, '17')).toBeNull();
      expect(big.dirents!.size).toBe(6000);
    } finally { unmountRegion(m); }
  });

  it('a root that disagrees with its index blocks, or a root on a region without the feature bit: EIO when the lookup reaches it, found by fsck', () => {
    const ino = rootedDir(3000, 4);
    let name = '';
    edit((e) => {
      const { roots, index } = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT);
      const rt = roots[roots.length - 1], k = rt.blocks.length - 1;
      const los = [...rt.los!]; los[k] += 1;                          // still ascending, no longer the index block's first hash
      e.write(rt.block, encodeIndexBlock(BS, ino, rt.next, rt.blocks, los, true));
      const last = index.find((x) => x.block === rt.blocks[k])!;
      const { blocks } = e.chain(e.inode(ino)!.rec.recIndex, ino, REC_KIND_DIRENT);
      const leaves = blocks.filter((b) => b.index === last.block);
      expect(leaves.length).toBeGreaterThan(1);
      name = leaves[leaves.length - 1].recs.dirents[0][0];            // past the first leaf: a hash above the root's, so the probe goes there
    });
    const problems = checkRegion(img, false).problems.join('\n');
    expect(problems).toMatch(new RegExp(`inode ${ino}: index block \\d+ starts at hash \\d+, its root entry says \\d+`));
    let m = mountRegion(img, OPTS, LOG);
    try {
      expect(() => m.fs.resolve(`/big/${name}`)).toThrow(/EIO.*root entry says/);
      expect(m.fs.store.damaged.has(ino)).toBe(true);
    } finally { unmountRegion(m); }

    // An index from before the feature with an empty index block in its chain (nothing writes one):
    // refused when the index is read, not a probe into nothing.
    const old = rootedDir(3000, 4);
    edit((e) => {
      const first = e.unroot(old)!;
      const ix = e.chain(first, old, REC_KIND_DIRENT).index[1];
      e.writeIndexBlock(ix.block, old, ix.next, [], []);
      const x = e.inode(old)!; x.rec.recBlocks -= ix.blocks.length; x.rec.recCount = 0;   // counts that agree, as a forger makes them
      e.writeInodeRaw(x.rec, x.rec.forkBlock ? null : encodeFork(x.fork));
      const sb = decodeSuperblock(e.home(0)); sb.featuresIncompat &= ~FEAT_INCOMPAT_DIRROOT; e.writeSuperblock(sb);
    });
    m = mountRegion(img, OPTS, LOG);
    try {
      for (const n of ['0', '1', '2', '77', '2999']) expect(() => m.fs.resolve(`/big/${n}`)).toThrow(/EIO/);
    } finally { unmountRegion(m); }

    rootedDir(3000, 4);
    edit((e) => { const sb = decodeSuperblock(e.home(0)); sb.featuresIncompat &= ~FEAT_INCOMPAT_DIRROOT; e.writeSuperblock(sb); });
    m = mountRegion(img, OPTS, LOG);
    try {
      expect(() => m.fs.resolve('/big/7')).toThrow(/EIO.*hash index root on a region without FEAT_INCOMPAT_DIRROOT/);
    } finally { unmountRegion(m); }
  });
});

describe('the bookkeeping: conversion and fsck', () => {
  it('an older region is converted by its first read-write mount, then mounts on demand', () => {
    tree(10, { legacy: true });
    let m: Mounted = mountRegion(img, OPTS, LOG);
    expect(m.fs.store.onDemand).toBe(false);                     // everything loaded once
    expect(m.engine.sb.featuresIncompat & FEAT_INCOMPAT_ICACHE).toBe(FEAT_INCOMPAT_ICACHE);
    expect(m.engine.sb.inodesUsed).toBe(1 + 4 + 40 + 1);
    unmountRegion(m);
    expect(checkRegion(img, false).problems).toEqual([]);
    m = mountRegion(img, OPTS, LOG);
    expect(m.fs.store.onDemand).toBe(true);
    expect(m.fs.parentOf(m.fs.resolve('/d0/sub')).ino).toBe(m.fs.resolve('/d0').ino);
    unmountRegion(m);
  });

  it('a read-only mount of an older region reads everything and finds parents by a walk', () => {
    tree(3, { legacy: true });
    const m = mountRegion(img, { ...OPTS, readOnly: true }, LOG);
    expect(m.fs.store.onDemand).toBe(false);
    expect(m.engine.sb.featuresIncompat & FEAT_INCOMPAT_ICACHE).toBe(0);
    expect(m.fs.parentOf(m.fs.resolve('/d0/sub')).ino).toBe(m.fs.resolve('/d0').ino);
    unmountRegion(m);
  });

  it('fsck finds a wrong parent, a wrong count and a missing list entry, and -y rewrites them', () => {
    tree(3);
    let m = mountRegion(img, OPTS, LOG);
    const sub = m.fs.resolve('/d0/sub').ino;
    const d1 = m.fs.resolve('/d1').ino;
    const f = m.fs.resolve('/d1/f1').ino;
    unmountRegion(m);
    edit((e) => {
      const s = e.inode(sub)!; s.rec.rdev = d1; e.writeInode(s.rec, s.fork);
      const x = e.inode(f)!; x.rec.flags |= IFLAG_SEALED; e.writeInode(x.rec, x.fork);
      const sb = e.superblock(); sb.inodesUsed -= 1; e.writeSuperblock(sb);
    });
    const found = checkRegion(img, false).problems.join('\n');
    expect(found).toMatch(new RegExp(`directory ${sub} records parent ${d1}, directory \\d+ names it`));
    expect(found).toMatch(/counts \d+ inodes in use/);
    expect(found).toMatch(new RegExp(`inode ${f} is missing from the in-core list`));
    expect(() => unmountRegion(mountRegion(img, CHECKED, LOG))).toThrow(/fsck\.pmemfs/);
    checkRegion(img, true);
    expect(checkRegion(img, false).problems).toEqual([]);
    m = mountRegion(img, OPTS, LOG);
    expect(m.fs.store.inodes.has(f)).toBe(true);                 // on the list: loaded at mount
    expect(m.fs.parentOf(m.fs.resolve('/d0/sub')).ino).toBe(m.fs.resolve('/d0').ino);
    unmountRegion(m);
  });
});
