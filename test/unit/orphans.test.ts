/**
 * No operation is larger than the log (no mount needed): a crash with
 * 100,000 orphans (open, unlinked files) recovers, and a file of a million
 * extent records is deleted, both on the default log, because orphans are
 * freed an operation each and large files a bounded chunk of extents per
 * transaction (PmemFs.maybeReap / drainReaps). A crash between two chunks
 * leaves an orphan that the next mount goes on freeing.
 *
 * The default run builds 100,000 orphans and a 100,000-extent file on a
 * small log; PMEMFS_TEST_LONG=1 builds the million-extent file on the
 * default log. (Freeing a file's whole record blocks logs little, so the
 * delete of these files would fit one transaction too; what the chunks
 * bound is the worst case, a bitmap block per extent, and the orphans.)
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkRegion } from '../../src/repair/check.js';
import { ROOT_CALLER, type PmemFs } from '../../src/vfs/fs.js';
import { formatRegion, mountRegion, unmountRegion, type Mounted } from '../../src/vfs/mount.js';
import { regionBlock } from '../../src/types.js';
import { releaseTail } from '../../src/layout/mapping.js';
import { LOG, OPTS } from './crash-harness.js';

const LONG = process.env.PMEMFS_TEST_LONG === '1';
const GiB = 1 << 30;
const BS = 4096;
// tmpfs when there is one: commits flush the log, and tmpfs makes that cheap.
const BASE = fs.existsSync('/dev/shm') ? '/dev/shm' : '/tmp';

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(BASE, 'pmemfs-orphans-')); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

/**
 * Give a new file `name` `extents` one-block extent records, every other file block
 * (holes between), building the block map directly, a thousand records per
 * transaction: a million punches would take minutes.
 */
function manyExtents(f: PmemFs, extents: number, name = '/big'): void {
  const h = f.create(name, 0o644, C.O_RDWR, ROOT_CALLER);
  const inode = h.inode;
  const permit = f.guard.internalPermit(inode);
  for (let done = 0; done < extents;) {
    const n = Math.min(1000, extents - done);
    f.ops.apply('test', [], (tx) => {
      tx.markDirty(inode);
      for (let i = 0; i < n; i++) {
        const [run] = tx.alloc.alloc(1, 0);
        inode.bmap.insert(permit, { fileBlock: 2 * (done + i), regionBlock: regionBlock(run!.start), len: 1, flags: 0 });
      }
      inode.size = 2 * (done + n) * BS;
    });
    done += n;
  }
  f.release(h.fh);
  expect(inode.bmap.count).toBe(extents);
}

describe('operations bounded by the log, not by the file', () => {
  it('100,000 orphans at a crash: the next mount frees them all (default log)', () => {
    const p = path.join(dir, 'r.pmem');
    const sb = formatRegion(p, { size: 2 * GiB, blockSize: BS, label: 'orphans' });
    expect(sb.inodeCount).toBeGreaterThan(100_000);
    const m = mountRegion(p, { ...OPTS, powerfail: true }, LOG);
    const f = m.fs;
    f.mkdir('/d', 0o755, ROOT_CALLER);
    const free0 = f.statfs().bfree;
    const one = Buffer.alloc(BS, 7);
    for (let i = 0; i < 100_000; i++) {
      const h = f.create(`/d/${i}`, 0o644, C.O_RDWR, ROOT_CALLER);
      if (i % 10 === 0) f.write(h.fh, 'x', one, BS, 0);
      f.unlinkAt(f.resolve('/d'), String(i));   // open and unlinked: an orphan
    }
    f.fsync();
    const used = f.store.inodes.size;
    expect(used).toBeGreaterThan(100_000);
    const img = path.join(dir, 'crash.pmem');
    m.region.crashImage(img, () => true);   // the power fails with every handle open
    m.region.close();
    fs.rmSync(p);
    const t0 = Date.now();
    const r = mountRegion(img, OPTS, LOG);
    const ms = Date.now() - t0;
    expect(r.fs.store.inodesInUse).toBe(2);   // the root and /d
    expect(r.fs.statfs().bfree).toBeGreaterThanOrEqual(free0);   // every data block back (the directory's record blocks too)
    unmountRegion(r);
    const check = checkRegion(img, false);
    expect(check.problems).toEqual([]);
    console.log(`orphans: 100000 orphans (10000 with data) recovered by one mount in ${ms} ms`);
  }, 300_000);

  it(`a file of ${LONG ? '1,000,000' : '100,000'} extent records is deleted ${LONG ? 'on the default log' : 'on a 256-block log'}, a chunk per transaction`, () => {
    const extents = LONG ? 1_000_000 : 100_000;
    const p = path.join(dir, 'r.pmem');
    formatRegion(p, { size: (LONG ? 16 : 2) * GiB, blockSize: BS, label: 'extents', ...(LONG ? {} : { journalBlocks: 256 }) });
    const m = mountRegion(p, OPTS, LOG);
    const f = m.fs;
    const free0 = f.statfs().bfree;
    manyExtents(f, extents);
    f.fsync();
    expect(f.statfs().bfree).toBeLessThanOrEqual(free0 - extents);   // and the block map's record blocks
    const ops0 = f.tx.stats.ops, t0 = Date.now();
    f.unlink('/big');
    const ms = Date.now() - t0;
    expect(() => f.resolve('/big')).toThrow();
    expect(f.tx.stats.ops - ops0).toBeGreaterThanOrEqual(Math.ceil(extents / f.reapChunk));
    f.fsync();
    expect(f.statfs().bfree).toBe(free0);
    unmountRegion(m);
    expect(checkRegion(p, false).problems).toEqual([]);
    console.log(`orphans: ${extents}-extent file deleted in ${ms} ms, ${f.tx.stats.ops - ops0} transactions of at most ${f.reapChunk} extents, log ${f.store.sb.journalBlocks} blocks`);
  }, 600_000);

  it('a crash between two chunks leaves an orphan that the next mount finishes freeing', () => {
    const { m, f, free0 } = smallLogWith5000Extents('chunks');
    f.fsync();
    const ino = f.resolve('/big').ino;
    f.tx.afterOp = null;   // the unlink queues the file, nothing drains it: as if the power failed right after
    f.unlink('/big');
    const inode = f.inodeOf(ino)!;
    expect(inode.orphan).toBe(true);
    const permit = f.guard.internalPermit(inode);
    for (let i = 0; i < 3; i++) f.ops.apply('test', [], (tx) => { releaseTail(tx, inode, permit, f.reapChunk); });
    f.fsync();
    expect(inode.bmap.count).toBe(5000 - 3 * f.reapChunk);
    const img = path.join(dir, 'crash.pmem');
    m.region.crashImage(img, () => true);
    m.region.close();
    const r = mountRegion(img, OPTS, LOG);
    expect(r.fs.inodeOf(ino)).toBeUndefined();
    expect(r.fs.statfs().bfree).toBe(free0);
    unmountRegion(r);
    expect(checkRegion(img, false).problems).toEqual([]);
  }, 120_000);

  it('a truncate past more extent records than one transaction frees: the size at once, the tail in chunks; a crash between them is finished by the next mount', async () => {
    const { m, f, free0 } = smallLogWith5000Extents('trunc');
    const inode = f.resolve('/big');
    // Whole: the truncate frees everything past block 100 in chunks, right after its own transaction.
    const ops0 = f.tx.stats.ops;
    await f.truncate('/big', 200 * BS);
    expect(inode.size).toBe(200 * BS);
    expect(inode.bmap.countFrom(200, 1e9)).toBe(0);
    expect(inode.orphan).toBe(false);
    expect(f.tx.stats.ops - ops0).toBeGreaterThanOrEqual(Math.ceil(4900 / f.reapChunk));
    f.fsync();
    const freeAfter = f.statfs().bfree;
    // Cut short: nothing drains after the truncate, as if the power failed right after its transaction.
    manyExtents(f, 3000, '/big2');
    f.fsync();
    f.tx.afterOp = null;
    await f.truncate('/big2', 10 * BS);
    const big2 = f.resolve('/big2');
    expect(big2.orphan).toBe(true);
    expect(big2.bmap.countFrom(10, 1e9)).toBeGreaterThan(0);
    f.fsync();
    const img = path.join(dir, 'crash.pmem');
    m.region.crashImage(img, () => true);
    m.region.close();
    const r = mountRegion(img, OPTS, LOG);
    const again = r.fs.resolve('/big2');
    expect(again.size).toBe(10 * BS);
    expect(again.bmap.countFrom(10, 1e9)).toBe(0);
    expect(again.orphan).toBe(false);
    expect(r.fs.statfs().bfree).toBeGreaterThanOrEqual(freeAfter - 64);   // /big2's 5 blocks and a few record blocks
    expect(r.fs.statfs().bfree).toBeLessThan(free0);
    unmountRegion(r);
    expect(checkRegion(img, false).problems).toEqual([]);
  }, 120_000);

  it('a punch over 100,000 extent records on a 256-block log runs a chunk per transaction; a crash between chunks leaves it partly done, the region clean', async () => {
    const extents = 100_000;
    const p = path.join(dir, 'r.pmem');
    formatRegion(p, { size: 2 * GiB, blockSize: BS, label: 'punch', journalBlocks: 256 });
    const m = mountRegion(p, { ...OPTS, powerfail: true }, LOG);
    const f = m.fs;
    manyExtents(f, extents);
    f.fsync();
    const free1 = f.statfs().bfree;
    const inode = f.resolve('/big');
    const size = inode.size;
    const ops0 = f.tx.stats.ops;
    const img = path.join(dir, 'mid.pmem');
    let commits = 0;
    m.region.onPersist = (point) => { if (point === 'commit' && ++commits === 3) m.region.crashImage(img, () => true); };
    await f.fallocate('/big', 0x01 | 0x02, 0, size);               // KEEP_SIZE | PUNCH_HOLE over everything
    m.region.onPersist = null;
    expect(commits).toBeGreaterThan(3);
    expect(f.tx.stats.ops - ops0).toBeGreaterThanOrEqual(Math.ceil(extents / f.reapChunk));
    expect(inode.bmap.count).toBe(0);
    expect(inode.size).toBe(size);
    f.fsync();
    expect(f.statfs().bfree).toBeGreaterThanOrEqual(free1 + extents);   // every data block back
    unmountRegion(m);
    expect(checkRegion(p, false).problems).toEqual([]);
    const r = mountRegion(img, OPTS, LOG);
    const left = r.fs.resolve('/big').bmap.count;
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(extents);
    unmountRegion(r);
    expect(checkRegion(img, false).problems).toEqual([]);
  }, 300_000);
});

/** A 1 GiB region with a 256-block log, recording unflushed stores (for crash images), and /big of 5000 records. */
function smallLogWith5000Extents(label: string): { m: Mounted; f: PmemFs; free0: number } {
  const p = path.join(dir, 'r.pmem');
  formatRegion(p, { size: 1 * GiB, blockSize: BS, label, journalBlocks: 256 });
  const m = mountRegion(p, { ...OPTS, powerfail: true }, LOG);
  const free0 = m.fs.statfs().bfree;
  manyExtents(m.fs, 5000);
  return { m, f: m.fs, free0 };
}
