/**
 * Reflink meets pins, seals and the journal (the model test,
 * extent-model.test.ts, covers contents and errnos of the range rules):
 * a read pin on a shared block makes the copy-on-write of either owner a
 * layout change over busy pages (refused, or waited for under busy=wait);
 * a write pin unshares first; a shared pinned block outlives the unlink of
 * both owners until the pin goes; sealing unshares (data unchanged) and is
 * refused while a shared block is pinned; reference counts survive a
 * remount and an emulated power failure; a failed operation leaves the
 * counts as they were.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { validate } from '../../src/inode/validate.js';
import { HOLE } from '../../src/bmap/bmap.js';
import { sharedPieces } from '../../src/layout/mapping.js';
import { PmemService, type ServiceOptions } from '../../src/service.js';
import { ROOT_CALLER, type PmemFs } from '../../src/vfs/fs.js';
import { formatRegion } from '../../src/vfs/mount.js';
import { acode, code } from './helpers.js';

const BS = 4096;
const MiB = 1 << 20;
const LOG = pino({ level: 'silent' });
const OPTS: ServiceOptions = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 300, leaseBreakMs: 1000 };
const HOLDER = { kind: 'pid' as const, pid: process.pid, uid: 0 };

let dir: string;
let live: Set<PmemService>;
beforeEach(() => { dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-reflink-'); live = new Set(); });
afterEach(() => {
  for (const s of live) { try { s.close(); } catch { /* broken by the test */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

function service(o: Partial<ServiceOptions> = {}, p = path.join(dir, 'r.pmem'), fresh = true): PmemService {
  if (fresh) formatRegion(p, { size: 16 * MiB, blockSize: BS, label: 'reflink' });
  const s = new PmemService(p, { ...OPTS, ...o }, LOG);
  live.add(s);
  return s;
}
function close(s: PmemService): void { live.delete(s); s.close(); }

function put(f: PmemFs, p: string, data: Buffer, off = 0): number {
  let h;
  try { h = f.open(p, C.O_RDWR, ROOT_CALLER); } catch { h = f.create(p, 0o644, C.O_RDWR, ROOT_CALLER); }
  try { return f.write(h.fh, p, data, data.length, off); } finally { f.release(h.fh); }
}
function get(f: PmemFs, p: string): Buffer {
  const inode = f.resolve(p);
  const h = f.openInode(inode, C.O_RDONLY, ROOT_CALLER);
  try { const b = Buffer.alloc(inode.size); f.read(h.fh, b, b.length, 0); return b; } finally { f.release(h.fh); }
}
/** /a with 4 blocks of 0x61, cloned whole onto a new /b. */
async function pair(s: PmemService): Promise<void> {
  put(s.fs, '/a', Buffer.alloc(4 * BS, 0x61));
  put(s.fs, '/b', Buffer.alloc(0));
  await s.fs.remap('/b', s.fs.resolve('/a'), 0, 0, 0, false, ROOT_CALLER);
}
/** Blocks of file p with two or more owners now (the refcount index; copy-on-write may also cover sharing that ended since the last commit). */
const shared = (s: PmemService, p: string) => s.fs.resolve(p).bmap.map(0, 1 << 20)
  .filter((x) => x.regionBlock !== HOLE)
  .reduce((a, x) => a + s.fs.store.refcount.segments(x.regionBlock, x.len).filter((q) => q.count >= 2).reduce((b, q) => b + q.len, 0), 0);
const clean = (s: PmemService) => {
  const v = validate(s.fs.store, s.fs.store.alloc);
  expect([v.overlaps, v.refcounts, v.markedFree, v.leaked]).toEqual([[], [], [], 0]);
};

describe('reflink', () => {
  it('a whole-file clone shares every block; a write copies only the block it touches', async () => {
    const s = service();
    const free0 = s.fs.statfs().bfree;
    await pair(s);
    expect(shared(s, '/a')).toBe(4);
    expect(s.fs.statfs().bfree).toBe(free0 - 4 - 2);   // 4 data blocks once, plus the refcount index's two blocks
    put(s.fs, '/b', Buffer.alloc(10, 0x62), BS + 5);
    expect(get(s.fs, '/a').equals(Buffer.alloc(4 * BS, 0x61))).toBe(true);
    const want = Buffer.alloc(4 * BS, 0x61); want.fill(0x62, BS + 5, BS + 15);
    expect(get(s.fs, '/b').equals(want)).toBe(true);
    expect(shared(s, '/a')).toBe(3);
    clean(s);
  });

  it('the counts survive a remount, and after a power failure the last commit is what comes back', async () => {
    const p = path.join(dir, 'r.pmem');
    let s = service({ powerfail: true }, p);
    await pair(s);
    s.fs.fsync();
    put(s.fs, '/b', Buffer.alloc(BS, 0x63), 0);   // a COW not yet committed
    s.powerFail(7);
    close(s);
    s = service({}, p, false);
    expect(shared(s, '/a')).toBe(4);
    expect(get(s.fs, '/b').equals(Buffer.alloc(4 * BS, 0x61))).toBe(true);
    clean(s);
    close(s);
    s = service({}, p, false);
    expect([...s.fs.store.refcount.records()].map((r) => r.count)).toEqual([2]);
  });

  it('sharing that ended since the last commit still copies: a crash then cannot show one file\'s bytes in another', async () => {
    const p = path.join(dir, 'r.pmem');
    const s = service({ powerfail: true }, p);
    await pair(s);
    s.fs.fsync();
    put(s.fs, '/b', Buffer.alloc(BS, 0x62), 0);   // /b copies away from block 0: /a alone maps it now
    expect(shared(s, '/a')).toBe(3);
    expect(sharedPieces(s.fs.store.refcount, s.fs.resolve('/a'), 0, 1).length).toBe(1);   // ... until the commit
    const cow0 = s.fs.data.share.cow_blocks;
    put(s.fs, '/a', Buffer.alloc(BS, 0x63), 0);   // must not store in place: the commit still has /b there
    expect(s.fs.data.share.cow_blocks).toBe(cow0 + 1);
    // Every store reached the media, no metadata since the commit did.
    const img = path.join(dir, 'crash.pmem');
    s.fs.store.region.crashImage(img, () => false);
    const after = service({}, img, false);
    expect(get(after.fs, '/b').equals(Buffer.alloc(4 * BS, 0x61))).toBe(true);
    expect(get(after.fs, '/a').equals(Buffer.alloc(4 * BS, 0x61))).toBe(true);
    close(after);
    s.fs.fsync();
    // The commit ended it: /a's block 0 is its own copy, blocks 1-3 are still shared with /b.
    expect(sharedPieces(s.fs.store.refcount, s.fs.resolve('/a'), 0, 4).map((x) => [x.fileBlock, x.len])).toEqual([[1, 3]]);
  });

  it('an operation that fails part-way leaves the counts and maps as they were', async () => {
    const s = service();
    await pair(s);
    const before = JSON.stringify([...s.fs.store.refcount.records()]);
    s.fs.store.alloc.failpoint = () => { throw new Error('injected'); };
    expect(() => put(s.fs, '/b', Buffer.alloc(10, 1), 0)).toThrow('injected');
    s.fs.store.alloc.failpoint = null;
    expect(JSON.stringify([...s.fs.store.refcount.records()])).toBe(before);
    expect(get(s.fs, '/b').equals(Buffer.alloc(4 * BS, 0x61))).toBe(true);
    clean(s);
  });

  it('a clone by a user drops set-user-ID in the clone\'s own transaction (one commit, not two)', async () => {
    // Who may clone is the permission table's business (permissions.test.ts).
    const s = service();
    put(s.fs, '/a', Buffer.alloc(BS, 1));
    put(s.fs, '/b', Buffer.alloc(0));
    s.fs.chown('/b', 1000, 1000);
    s.fs.chmod('/b', 0o6755);
    const user = { pid: process.pid, uid: 1000, gid: 1000 };
    const ops = s.fs.tx.stats.ops;
    expect((await s.fs.remap('/b', s.fs.resolve('/a'), 0, 0, 0, false, user)).bytes).toBe(BS);
    expect(s.fs.resolve('/b').mode & 0o7777).toBe(0o755);
    expect(s.fs.tx.stats.ops - ops).toBe(1);
  });
});

describe('the ioctls FUSE cannot forward, on what is not a regular file', () => {
  it('collapse, insert and unshare of a directory: EISDIR (vfs_fallocate); reflink: EISDIR', async () => {
    const s = service();
    s.fs.mkdir('/d', 0o755, ROOT_CALLER);
    put(s.fs, '/a', Buffer.alloc(BS, 1));
    expect(await acode(s.fs.shift('/d', 'collapse', 0, BS))).toBe('EISDIR');
    expect(await acode(s.fs.shift('/d', 'insert', 0, BS))).toBe('EISDIR');
    expect(await acode(s.fs.unshare('/d', 0, BS))).toBe('EISDIR');
    expect(await acode(s.fs.remap('/d', s.fs.resolve('/a'), 0, 0, 0, false, ROOT_CALLER))).toBe('EISDIR');
    expect(await acode(s.fs.remap('/a', s.fs.resolve('/d'), 0, 0, 0, false, ROOT_CALLER))).toBe('EISDIR');
  });
});

describe('reflink meets pins and seals', () => {
  it('a read pin on a shared block: the COW of either owner is refused (busy=refuse) and nothing changes', async () => {
    const s = service();
    await pair(s);
    s.pinMgr.pin(s.fs.resolve('/a'), '/a', 0, BS, HOLDER);
    expect(shared(s, '/a')).toBe(4);                                     // a read pin keeps sharing
    expect(code(() => put(s.fs, '/b', Buffer.alloc(1, 9), 0))).toBe('ETXTBSY');
    expect(code(() => put(s.fs, '/a', Buffer.alloc(1, 9), 100))).toBe('ETXTBSY');
    expect(put(s.fs, '/b', Buffer.alloc(1, 9), BS)).toBe(1);            // an unpinned shared block copies
    expect(await acode(s.fs.truncate('/b', 100))).toBe('ETXTBSY');      // zeroing the pinned tail block is a COW
    expect(await acode(s.fs.unshare('/a', 0, BS))).toBe('ETXTBSY');
    expect(s.fs.guard.stats.refused).toBeGreaterThanOrEqual(4);
    expect(get(s.fs, '/a').equals(Buffer.alloc(4 * BS, 0x61))).toBe(true);
    clean(s);
  });

  it('busy=wait: the write waits for the pin, then copies', async () => {
    const s = service({ busy: 'wait', busyTimeoutMs: 2000 });
    await pair(s);
    const { pins } = s.pinMgr.pin(s.fs.resolve('/a'), '/a', 0, BS, HOLDER);
    const h = s.fs.open('/b', C.O_RDWR, ROOT_CALLER);
    const wait = s.fs.cowWait(h.fh, 0, 1);
    expect(wait).not.toBeNull();
    let done = false;
    const after = wait!.then(() => { done = true; return s.fs.write(h.fh, '/b', Buffer.alloc(1, 9), 1, 0); });
    await new Promise((r) => setTimeout(r, 50));
    expect(done).toBe(false);
    s.pinMgr.unpin(pins[0].id, ROOT_CALLER);
    expect(await after).toBe(1);
    expect(get(s.fs, '/a')[0]).toBe(0x61);
    expect(get(s.fs, '/b')[0]).toBe(9);
    expect(s.fs.cowWait(h.fh, 0, 1)).toBeNull();   // nothing shared and pinned there any more
    s.fs.release(h.fh);
  });

  it('a write pin unshares first; a pinned shared block outlives both owners until the pin goes', async () => {
    const s = service();
    await pair(s);
    s.pinMgr.pin(s.fs.resolve('/b'), '/b', 0, BS, HOLDER, Infinity, 'write');
    expect(shared(s, '/b')).toBe(3);
    const { pins } = s.pinMgr.pin(s.fs.resolve('/a'), '/a', BS, BS, HOLDER);
    const free0 = s.fs.statfs().bfree;
    s.fs.unlink('/a');
    s.fs.fsync();
    expect(s.fs.statfs().bfree).toBe(free0);        // /a is an orphan while pinned: nothing freed
    s.pinMgr.unpin(pins[0].id, ROOT_CALLER);
    s.fs.fsync();
    // /a's own block 0 went, and the refcount index's two blocks (nothing is shared any more); blocks 1-3 are /b's alone.
    expect(s.fs.store.refcount.size).toBe(0);
    expect(s.fs.statfs().bfree).toBe(free0 + 1 + 2);
    clean(s);
  });

  it('sealing unshares with the data unchanged; refused while a shared block is pinned', async () => {
    const s = service();
    await pair(s);
    const { pins } = s.pinMgr.pin(s.fs.resolve('/a'), '/a', 0, BS, HOLDER);
    expect(code(() => s.seals.seal('/b', ROOT_CALLER))).toBe('ETXTBSY');
    expect(s.fs.resolve('/b').sealKind).toBe('none');
    s.pinMgr.unpin(pins[0].id, ROOT_CALLER);
    s.seals.seal('/b', ROOT_CALLER);
    expect(shared(s, '/b')).toBe(0);
    expect(shared(s, '/a')).toBe(0);
    expect(get(s.fs, '/b').equals(Buffer.alloc(4 * BS, 0x61))).toBe(true);
    expect(await acode(s.fs.remap('/b', s.fs.resolve('/a'), 0, 0, 0, false, ROOT_CALLER))).toBe('ETXTBSY');
    expect(await acode(s.fs.remap('/a', s.fs.resolve('/b'), 0, 0, 0, false, ROOT_CALLER))).toBe('ETXTBSY');
    clean(s);
  });

  it('reflink onto pinned pages, or from pinned pages, is a layout change over busy pages', async () => {
    const s = service();
    put(s.fs, '/a', Buffer.alloc(2 * BS, 1));
    put(s.fs, '/b', Buffer.alloc(2 * BS, 2));
    const { pins } = s.pinMgr.pin(s.fs.resolve('/b'), '/b', 0, BS, HOLDER);
    expect(await acode(s.fs.remap('/b', s.fs.resolve('/a'), 0, 0, BS, false, ROOT_CALLER))).toBe('ETXTBSY');
    expect(await acode(s.fs.remap('/a', s.fs.resolve('/b'), 0, 0, BS, false, ROOT_CALLER))).toBe('ETXTBSY');
    s.pinMgr.unpin(pins[0].id, ROOT_CALLER);
    expect((await s.fs.remap('/b', s.fs.resolve('/a'), 0, 0, BS, false, ROOT_CALLER)).bytes).toBe(BS);
    clean(s);
  });

  it('dedupe shares only equal ranges and leaves mtime alone', async () => {
    const s = service();
    put(s.fs, '/a', Buffer.alloc(2 * BS, 5));
    put(s.fs, '/b', Buffer.concat([Buffer.alloc(BS, 5), Buffer.alloc(BS, 6)]));
    const mtime = s.fs.resolve('/b').mtime;
    const src = s.fs.resolve('/a');
    expect(await s.fs.remap('/b', src, BS, BS, BS, true, ROOT_CALLER)).toEqual({ bytes: 0, differs: true });
    expect(await s.fs.remap('/b', src, 0, 0, BS, true, ROOT_CALLER)).toEqual({ bytes: BS, differs: false });
    expect(shared(s, '/b')).toBe(1);
    expect(s.fs.resolve('/b').mtime).toEqual(mtime);
    clean(s);
  });
});
