/**
 * The seal state machine and the layout guard, driven through PmemService
 * (src/service.ts, src/seal/): persistent seals and leases make a file fully
 * mapped and freeze its block map (ETXTBSY for every layout change, in-place
 * writes still allowed); pins make blocks busy, refused (busy=refuse) or
 * waited for (busy=wait, bounded by busy_timeout); the holder watch reports
 * dead holders.
 */
import { acode, code } from './helpers.js';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOLE } from '../../src/bmap/bmap.js';
import { EXT_UNWRITTEN } from '../../src/format/fork.js';
import { HolderWatch, pidAlive } from '../../src/seal/holders.js';
import { PmemService, type ServiceOptions } from '../../src/service.js';
import * as uapi from '../../src/uapi.js';
import { ROOT_CALLER, type Caller, type PmemFs } from '../../src/vfs/fs.js';
import { formatRegion } from '../../src/vfs/mount.js';

const BS = 4096;
const MiB = 1 << 20;
const LOG = pino({ level: 'silent' });
const OPTS: ServiceOptions = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 200, leaseBreakMs: 1000 };
const USER: Caller = { pid: process.pid, uid: 1000, gid: 1000 };
const ME: Caller = { pid: process.pid, uid: 0, gid: 0 };
const { FALLOC_FL_KEEP_SIZE: KEEP, FALLOC_FL_PUNCH_HOLE: PUNCH, FALLOC_FL_ZERO_RANGE: ZERO } = uapi;

let dir: string;
let live: Set<PmemService>;
beforeEach(() => { dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-unit-'); live = new Set(); });
afterEach(() => {
  for (const s of live) { try { s.close(); } catch { /* broken by the test */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

function region(size = 64 * MiB): string {
  const p = path.join(dir, 'r.pmem');
  formatRegion(p, { size, blockSize: BS, label: 'seal' });
  return p;
}
function service(p: string, o: Partial<ServiceOptions> = {}): PmemService {
  const s = new PmemService(p, { ...OPTS, ...o }, LOG);
  live.add(s);
  return s;
}
function close(s: PmemService): void { live.delete(s); s.close(); }

function put(f: PmemFs, p: string, data: Buffer, off = 0): void {
  let h;
  try { h = f.open(p, C.O_RDWR, ROOT_CALLER); } catch { h = f.create(p, 0o644, C.O_RDWR, ROOT_CALLER); }
  try { f.write(h.fh, p, data, data.length, off); } finally { f.release(h.fh); }
}
function get(f: PmemFs, p: string): Buffer {
  const h = f.open(p, C.O_RDONLY, ROOT_CALLER);
  const b = Buffer.alloc(f.getattr(p).size);
  f.read(h.fh, b, b.length, 0);
  f.release(h.fh);
  return b;
}
const extents = (f: PmemFs, p: string) => f.resolve(p).bmap.toRecords();

/**
 * A sparse file of 20100 bytes: block 0 written, block 1 a hole, block 2
 * unwritten (fallocate), block 3 a hole, block 4 written. Returns its bytes.
 */
async function sparseFile(f: PmemFs, p: string): Promise<Buffer> {
  put(f, p, Buffer.alloc(100, 0x41));
  await f.fallocate(p, 0, 2 * BS, BS);
  put(f, p, Buffer.alloc(100, 0x42), 20000);
  const want = Buffer.alloc(20100);
  want.fill(0x41, 0, 100);
  want.fill(0x42, 20000);
  return want;
}

/** A fully written file of n blocks, each block filled with its index + 1. */
function blockFile(f: PmemFs, p: string, n: number): Buffer {
  const b = Buffer.alloc(n * BS);
  for (let i = 0; i < n; i++) b.fill(i + 1, i * BS, (i + 1) * BS);
  put(f, p, b);
  return b;
}

describe('persistent seal', () => {
  it('needs root: EPERM for any other uid, nothing changes', async () => {
    const svc = service(region());
    await sparseFile(svc.fs, '/f');
    const ext = extents(svc.fs, '/f');
    expect(code(() => svc.seals.seal('/f', USER))).toBe('EPERM');
    expect(svc.fs.resolve('/f').persistentSeal).toBe(false);
    expect(extents(svc.fs, '/f')).toEqual(ext);
    svc.seals.seal('/f', ROOT_CALLER);
    expect(code(() => svc.seals.unseal('/f', USER))).toBe('EPERM');
    expect(svc.fs.resolve('/f').persistentSeal).toBe(true);
    close(svc);
  });

  it('makes a sparse file fully mapped up to EOF, data unchanged', async () => {
    const svc = service(region());
    const f = svc.fs;
    const want = await sparseFile(f, '/f');
    const inode = f.resolve('/f');
    const before = inode.bmap.map(0, 5);
    expect(before.some((s) => s.regionBlock === HOLE)).toBe(true);
    expect(before.some((s) => s.flags & EXT_UNWRITTEN)).toBe(true);
    svc.seals.seal('/f', ROOT_CALLER);
    const segs = inode.bmap.map(0, 5);
    expect(segs.filter((s) => s.regionBlock === HOLE)).toEqual([]);
    expect(segs.filter((s) => s.flags !== 0)).toEqual([]);
    expect(inode.bmap.mappedBlocks()).toBe(5);
    expect(get(f, '/f').equals(want)).toBe(true);
    expect(inode.sealKind).toBe('persistent');
    expect(f.getxattr('/f', uapi.XATTR_SEALED)!.toString()).toBe('1');
    expect(f.listxattr('/f')).toContain(uapi.XATTR_SEALED);
    expect(f.getxattr('/f', uapi.XATTR_STATE)!.toString()).toMatch(/^sealed=persistent pins=0 busy_pages=0 extents=\d+ leases=0 size=20100 blocks=5$/);
    close(svc);
  });

  it('refuses a non-regular file, and ENOSPC leaves the file unsealed and unchanged', async () => {
    const svc = service(region(8 * MiB));
    const f = svc.fs;
    f.mkdir('/d', 0o755, ROOT_CALLER);
    expect(code(() => svc.seals.seal('/d', ROOT_CALLER))).toBe('EINVAL');
    put(f, '/big', Buffer.from('x'));
    await f.truncate('/big', 16 * MiB);
    const free = f.statfs().bfree;
    const ext = extents(f, '/big');
    expect(code(() => svc.seals.seal('/big', ROOT_CALLER))).toBe('ENOSPC');
    expect(f.resolve('/big').persistentSeal).toBe(false);
    expect(extents(f, '/big')).toEqual(ext);
    expect(f.statfs().bfree).toBe(free);
    close(svc);
  });

  describe('a sealed file', () => {
    let svc: PmemService, f: PmemFs, data: Buffer, ext: ReturnType<typeof extents>;
    beforeEach(async () => {
      svc = service(region());
      f = svc.fs;
      data = await sparseFile(f, '/f');
      svc.seals.seal('/f', ROOT_CALLER);
      ext = extents(f, '/f');
    });
    afterEach(() => {
      expect(extents(f, '/f')).toEqual(ext);   // nothing below changes the block map
      close(svc);
    });

    it('refuses an extending write with ETXTBSY and writes nothing', () => {
      const h = f.open('/f', C.O_RDWR, ROOT_CALLER);
      expect(code(() => f.write(h.fh, '/f', Buffer.alloc(20, 0x5a), 20, 20090))).toBe('ETXTBSY');
      expect(code(() => f.write(h.fh, '/f', Buffer.alloc(BS, 0x5a), BS, 40000))).toBe('ETXTBSY');
      f.release(h.fh);
      expect(f.getattr('/f').size).toBe(20100);
      expect(get(f, '/f').equals(data)).toBe(true);
    });

    it('takes in-place writes within EOF, block map identical', () => {
      put(f, '/f', Buffer.alloc(6000, 0x43), 3000);          // over hole-filled and unwritten-converted blocks
      put(f, '/f', Buffer.alloc(100, 0x44), 20000);          // the partial last block, up to EOF exactly
      data.fill(0x43, 3000, 9000);
      data.fill(0x44, 20000, 20100);
      expect(get(f, '/f').equals(data)).toBe(true);
    });

    it('refuses truncate to another size with ETXTBSY; the same size is fine', async () => {
      expect(await acode(f.truncate('/f', 100))).toBe('ETXTBSY');
      expect(await acode(f.truncate('/f', 0))).toBe('ETXTBSY');
      expect(await acode(f.truncate('/f', 20101))).toBe('ETXTBSY');
      expect(await acode(f.truncate('/f', 20100))).toBe('no error');
      expect(f.getattr('/f').size).toBe(20100);
      expect(get(f, '/f').equals(data)).toBe(true);
    });

    it.each([
      ['default', 0, 0, BS], ['default past EOF', 0, 20100, BS], ['KEEP_SIZE', KEEP, 30000, BS],
      ['PUNCH_HOLE', PUNCH | KEEP, BS, BS], ['ZERO_RANGE', ZERO, 0, 2 * BS], ['ZERO_RANGE|KEEP_SIZE', ZERO | KEEP, BS, 100],
    ])('refuses fallocate %s with ETXTBSY', async (_name, mode, off, len) => {
      expect(await acode(f.fallocate('/f', mode, off, len))).toBe('ETXTBSY');
      expect(f.getattr('/f').size).toBe(20100);
      expect(get(f, '/f').equals(data)).toBe(true);
    });
  });

  it('seal and unseal are idempotent', async () => {
    const svc = service(region());
    await sparseFile(svc.fs, '/f');
    svc.seals.seal('/f', ROOT_CALLER);
    const ext = extents(svc.fs, '/f');
    svc.seals.seal('/f', ROOT_CALLER);
    expect(svc.seals.stats.seals).toBe(1);
    expect(extents(svc.fs, '/f')).toEqual(ext);
    svc.seals.unseal('/f', ROOT_CALLER);
    svc.seals.unseal('/f', ROOT_CALLER);
    expect(svc.seals.stats.unseals).toBe(1);
    expect(svc.fs.resolve('/f').sealKind).toBe('none');
    await svc.fs.truncate('/f', 10);
    expect(svc.fs.getattr('/f').size).toBe(10);
    close(svc);
  });

  it('unseal is refused with ETXTBSY while a pin is held', () => {
    const svc = service(region());
    blockFile(svc.fs, '/f', 2);
    svc.seals.seal('/f', ROOT_CALLER);
    const inode = svc.fs.resolve('/f');
    const { pins } = svc.pinMgr.pin(inode, '/f', 0, 4096, { kind: 'pid', pid: process.pid, uid: 0 });
    expect(pins).toHaveLength(1);
    expect(code(() => svc.seals.unseal('/f', ROOT_CALLER))).toBe('ETXTBSY');
    expect(code(() => svc.fs.removexattr('/f', uapi.XATTR_SEALED))).toBe('ETXTBSY');
    expect(inode.persistentSeal).toBe(true);
    svc.pinMgr.unpin(pins[0].id, ROOT_CALLER);
    svc.seals.unseal('/f', ROOT_CALLER);
    expect(inode.persistentSeal).toBe(false);
    close(svc);
  });

  it('survives unmount and mount, set either way', async () => {
    const p = region();
    let svc = service(p);
    await sparseFile(svc.fs, '/f');
    blockFile(svc.fs, '/g', 3);
    svc.seals.seal('/f', ROOT_CALLER);
    svc.fs.setxattr('/g', uapi.XATTR_SEALED, Buffer.from('1'), 0);
    const ext = extents(svc.fs, '/f');
    close(svc);

    svc = service(p);
    expect(svc.fs.resolve('/f').persistentSeal).toBe(true);
    expect(svc.fs.resolve('/g').sealKind).toBe('persistent');
    expect(extents(svc.fs, '/f')).toEqual(ext);
    expect(await acode(svc.fs.truncate('/f', 0))).toBe('ETXTBSY');
    expect(await acode(svc.fs.fallocate('/g', PUNCH | KEEP, 0, BS))).toBe('ETXTBSY');
    svc.fs.removexattr('/g', uapi.XATTR_SEALED);
    close(svc);
    svc = service(p);
    expect(svc.fs.resolve('/g').persistentSeal).toBe(false);
    expect(svc.fs.resolve('/f').persistentSeal).toBe(true);
    close(svc);
  });
});

describe('leases', () => {
  it('need a dax=always mount', async () => {
    const svc = service(region(), { dax: 'never' });
    await sparseFile(svc.fs, '/f');
    const h = svc.fs.open('/f', C.O_RDWR, ME);
    expect(code(() => svc.seals.lease(h.fh, '/f', ME))).toBe('EOPNOTSUPP');
    expect(svc.fs.resolve('/f').sealKind).toBe('none');
    svc.fs.release(h.fh);
    close(svc);
  });

  it('need a handle open for writing', async () => {
    const svc = service(region());
    await sparseFile(svc.fs, '/f');
    const h = svc.fs.open('/f', C.O_RDONLY, ME);
    expect(code(() => svc.seals.lease(h.fh, '/f', ME))).toBe('EACCES');
    expect(svc.fs.resolve('/f').sealKind).toBe('none');
    svc.fs.release(h.fh);
    close(svc);
  });

  it('fill the file, freeze its layout, are idempotent per process and are not persisted', async () => {
    const p = region();
    let svc = service(p);
    const f = svc.fs;
    const want = await sparseFile(f, '/f');
    const h = f.open('/f', C.O_RDWR, USER);
    svc.seals.lease(h.fh, '/f', USER);           // no root needed
    svc.seals.lease(h.fh, '/f', USER);
    const inode = f.resolve('/f');
    expect(inode.leases).toHaveLength(1);
    expect(inode.sealKind).toBe('lease');
    expect(inode.persistentSeal).toBe(false);
    expect(inode.bmap.map(0, 5).every((s) => s.regionBlock !== HOLE && s.flags === 0)).toBe(true);
    expect(get(f, '/f').equals(want)).toBe(true);
    expect(await acode(f.truncate('/f', 0))).toBe('ETXTBSY');
    expect(code(() => svc.seals.unlease(h.inode, '/f', { ...USER, pid: process.ppid }))).toBe('EINVAL');
    f.release(h.fh);
    close(svc);

    svc = service(p);
    expect(svc.fs.resolve('/f').sealKind).toBe('none');
    await svc.fs.truncate('/f', 0);
    close(svc);
  });

  it('unlease drops the lease; a second unlease is EINVAL', async () => {
    const svc = service(region());
    blockFile(svc.fs, '/f', 1);
    const h = svc.fs.open('/f', C.O_RDWR, USER);
    svc.seals.lease(h.fh, '/f', USER);
    svc.seals.unlease(h.inode, '/f', USER);
    expect(svc.fs.resolve('/f').sealKind).toBe('none');
    expect(code(() => svc.seals.unlease(h.inode, '/f', USER))).toBe('EINVAL');
    await svc.fs.truncate('/f', 0);
    svc.fs.release(h.fh);
    close(svc);
  });

  it('holderDied(pid) drops that process’s leases only, and reaps an unlinked file it held', async () => {
    const svc = service(region());
    const f = svc.fs;
    blockFile(f, '/f', 2);
    const other: Caller = { pid: process.ppid, uid: 0, gid: 0 };
    const h1 = f.open('/f', C.O_RDWR, ME), h2 = f.open('/f', C.O_RDWR, other);
    svc.seals.lease(h1.fh, '/f', ME);
    svc.seals.lease(h2.fh, '/f', other);
    const inode = f.resolve('/f');
    expect(inode.leases.map((l) => l.pid).sort()).toEqual([process.pid, process.ppid].sort());
    svc.seals.holderDied(process.ppid);
    expect(inode.leases.map((l) => l.pid)).toEqual([process.pid]);
    expect(svc.seals.stats.holderDeaths).toBe(1);
    svc.seals.holderDied(process.pid);
    expect(inode.sealKind).toBe('none');
    await f.truncate('/f', 0);

    // A lease keeps an unlinked file alive; its holder's death frees it.
    blockFile(f, '/g', 3);
    const free = f.statfs().bfree;
    const hg = f.open('/g', C.O_RDWR, ME);
    svc.seals.lease(hg.fh, '/g', ME);
    const g = f.resolve('/g');
    f.unlink('/g');
    f.release(hg.fh);
    f.release(h1.fh); f.release(h2.fh);
    expect(f.inodeOf(g.ino)).toBe(g);
    expect(f.statfs().bfree).toBe(free);
    svc.seals.holderDied(process.pid);
    expect(f.inodeOf(g.ino)).toBeUndefined();
    expect(f.statfs().bfree).toBe(free + 3);
    close(svc);
  });
});

describe('layout guard and pins', () => {
  it('busy=refuse: ETXTBSY for layout changes over a pinned block, success elsewhere', async () => {
    const svc = service(region());
    const f = svc.fs;
    const data = blockFile(f, '/f', 4);
    const inode = f.resolve('/f');
    const { pins } = svc.pinMgr.pin(inode, '/f', BS, BS, { kind: 'pid', pid: process.pid, uid: 0 });
    expect(pins[0].startBlock).toBe(inode.bmap.map(1, 1)[0].regionBlock);
    const refused0 = f.guard.stats.refused;

    expect(await acode(f.fallocate('/f', PUNCH | KEEP, BS, BS))).toBe('ETXTBSY');
    expect(await acode(f.fallocate('/f', PUNCH | KEEP, 0, 4 * BS))).toBe('ETXTBSY');
    expect(await acode(f.fallocate('/f', ZERO, BS, BS))).toBe('ETXTBSY');
    expect(await acode(f.truncate('/f', BS))).toBe('ETXTBSY');
    expect(await acode(f.truncate('/f', 0))).toBe('ETXTBSY');
    expect(f.guard.stats.refused).toBe(refused0 + 5);
    expect(inode.bmap.map(1, 1)[0].regionBlock).toBe(pins[0].startBlock);
    expect(get(f, '/f').equals(data)).toBe(true);

    await f.fallocate('/f', PUNCH | KEEP, 3 * BS, BS);
    expect(inode.bmap.map(3, 1)[0].regionBlock).toBe(HOLE);
    await f.truncate('/f', 2 * BS);
    expect(f.getattr('/f').size).toBe(2 * BS);
    put(f, '/f', Buffer.alloc(10, 0xee), BS);          // in-place write over a pinned block is no layout change
    expect(get(f, '/f').subarray(BS, BS + 10)).toEqual(Buffer.alloc(10, 0xee));
    svc.pinMgr.unpin(pins[0].id, ROOT_CALLER);
    await f.truncate('/f', 0);
    expect(inode.bmap.count).toBe(0);
    close(svc);
  });

  it('busy=wait: a truncate over a pinned block completes once the pin goes', async () => {
    const svc = service(region(), { busy: 'wait', busyTimeoutMs: 300 });
    const f = svc.fs;
    blockFile(f, '/f', 4);
    const free = f.statfs().bfree;
    const { pins } = svc.pinMgr.pin(f.resolve('/f'), '/f', BS, BS, { kind: 'pid', pid: process.pid, uid: 0 });
    const t0 = Date.now();
    setTimeout(() => svc.pinMgr.unpin(pins[0].id, ROOT_CALLER), 100);
    await f.truncate('/f', 0);
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(90);
    expect(waited).toBeLessThan(1000);
    expect(f.getattr('/f').size).toBe(0);
    expect(f.statfs().bfree).toBe(free + 4);
    expect(f.guard.stats.waited).toBe(1);
    expect(f.guard.stats.waitTimeouts).toBe(0);
    close(svc);
  });

  it('busy=wait: gives up with ETXTBSY after busy_timeout when the pin stays', async () => {
    const svc = service(region(), { busy: 'wait', busyTimeoutMs: 300 });
    const f = svc.fs;
    const data = blockFile(f, '/f', 4);
    svc.pinMgr.pin(f.resolve('/f'), '/f', BS, BS, { kind: 'pid', pid: process.pid, uid: 0 });
    const t0 = Date.now();
    expect(await acode(f.truncate('/f', 0))).toBe('ETXTBSY');
    const waited = Date.now() - t0;
    expect(waited).toBeGreaterThanOrEqual(280);
    expect(waited).toBeLessThan(3000);
    expect(f.getattr('/f').size).toBe(4 * BS);
    expect(get(f, '/f').equals(data)).toBe(true);
    expect(f.guard.stats.waitTimeouts).toBe(1);
    close(svc);
  });

  it('busy=wait: a truncate that waited also drops blocks written past the old EOF during the wait', async () => {
    const svc = service(region(), { busy: 'wait', busyTimeoutMs: 2000 });
    const f = svc.fs;
    blockFile(f, '/f', 4);
    const free = f.statfs().bfree;
    const { pins } = svc.pinMgr.pin(f.resolve('/f'), '/f', BS, BS, { kind: 'pid', pid: process.pid, uid: 0 });
    const shrink = f.truncate('/f', 0);                       // waits for the pin
    put(f, '/f', Buffer.alloc(BS, 0x53), 8 * BS);             // another writer extends the file meanwhile
    setTimeout(() => svc.pinMgr.unpin(pins[0].id, ROOT_CALLER), 50);
    await shrink;
    expect(f.getattr('/f').size).toBe(0);
    expect(f.getattr('/f').blocks).toBe(0);
    expect(f.statfs().bfree).toBe(free + 4);
    await f.truncate('/f', 9 * BS);                           // growing must read zeroes, not the old bytes
    expect(get(f, '/f').every((x) => x === 0)).toBe(true);
    close(svc);
  });

  it('busy=wait: an unrelated pin release does not end the wait early', async () => {
    const svc = service(region(), { busy: 'wait', busyTimeoutMs: 300 });
    const f = svc.fs;
    blockFile(f, '/f', 2);
    blockFile(f, '/g', 2);
    svc.pinMgr.pin(f.resolve('/f'), '/f', 0, BS, { kind: 'pid', pid: process.pid, uid: 0 });
    const other = svc.pinMgr.pin(f.resolve('/g'), '/g', 0, BS, { kind: 'pid', pid: process.pid, uid: 0 }).pins[0];
    setTimeout(() => svc.pinMgr.unpin(other.id, ROOT_CALLER), 50);
    const t0 = Date.now();
    expect(await acode(f.truncate('/f', 0))).toBe('ETXTBSY');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    close(svc);
  });
});

describe('holder watch', () => {
  it('tick() probes each distinct holder once and reports the dead ones', () => {
    const deaths: number[] = [];
    const probed: number[] = [];
    const w = new HolderWatch((pid) => deaths.push(pid), (pid) => { probed.push(pid); return pid !== 2 && pid !== 3; });
    w.addSource(() => [1, 2, 3]);
    w.addSource(() => [3, 4]);
    w.tick();
    expect(probed.sort()).toEqual([1, 2, 3, 4]);
    expect(deaths.sort()).toEqual([2, 3]);
    w.tick();
    expect(deaths).toHaveLength(4);        // reported again while the sources still list them
  });

  it('drives SealManager.holderDied for a lease holder the probe calls dead', () => {
    const svc = service(region());
    blockFile(svc.fs, '/f', 1);
    const h = svc.fs.open('/f', C.O_RDWR, ME);
    svc.seals.lease(h.fh, '/f', ME);
    const w = new HolderWatch((pid) => svc.seals.holderDied(pid), () => false);
    w.addSource(() => svc.seals.leaseHolders());
    w.tick();
    expect(svc.fs.resolve('/f').sealKind).toBe('none');
    svc.fs.release(h.fh);
    close(svc);
  });

  it('pidAlive: this process yes, an exited child and non-positive pids no', () => {
    expect(pidAlive(process.pid)).toBe(true);
    expect(pidAlive(0)).toBe(false);
    expect(pidAlive(-1)).toBe(false);
    const child = spawnSync(process.execPath, ['-e', '0']);
    expect(child.pid).toBeGreaterThan(0);
    expect(pidAlive(child.pid!)).toBe(false);
  });
});
