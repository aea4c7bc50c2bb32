/**
 * One request, one operation (no mount): a setattr of several attributes is
 * one transaction and all or nothing (ETXTBSY on a sealed file leaves the
 * mode as it was); a change that waited for busy pages revalidates the
 * inode it looked up and gets ESTALE when the file was freed meanwhile.
 * The transaction entry belongs to the operation layer alone: nothing else
 * in the tree can open a transaction, an operation applies once, and each
 * request of the table below is exactly one transaction.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PmemService } from '../../src/service.js';
import { ROOT_CALLER } from '../../src/vfs/fs.js';
import { formatRegion } from '../../src/vfs/mount.js';
import { acode, code } from './helpers.js';
import { MAX_PINS_PER_HOLDER } from '../../src/layout/busy.js';

const BS = 4096;
const LOG = pino({ level: 'silent' });
let dir: string;
let svc: PmemService;

function service(busy: 'refuse' | 'wait'): PmemService {
  const p = path.join(dir, 'r.pmem');
  formatRegion(p, { size: 16 << 20, blockSize: BS, label: 'op' });
  return new PmemService(p, { dax: 'always', readOnly: false, busy, busyTimeoutMs: 5000, leaseBreakMs: 1000 }, LOG);
}
function file(p: string, bytes: number): void {
  const h = svc.fs.create(p, 0o644, C.O_RDWR, ROOT_CALLER);
  svc.fs.write(h.fh, p, Buffer.alloc(bytes, 1), bytes, 0);
  svc.fs.release(h.fh);
}

beforeEach(() => { dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-op-'); });
afterEach(() => { try { svc.close(); } catch { /* closed by the test */ } fs.rmSync(dir, { recursive: true, force: true }); });

describe('setattr: every attribute or none, in one transaction', () => {
  it('mode, owner, size and times together are one operation', async () => {
    svc = service('refuse');
    file('/f', 3 * BS);
    const ops = svc.fs.tx.stats.ops;
    await svc.fs.setattr('/f', { mode: 0o600, uid: 7, gid: 8, size: BS, atime: { sec: 1, nsec: 0 }, mtime: { sec: 2, nsec: 0 } });
    expect(svc.fs.tx.stats.ops - ops).toBe(1);
    const st = svc.fs.getattr('/f');
    expect([st.mode & 0o7777, st.uid, st.gid, st.size, st.atime.sec, st.mtime.sec]).toEqual([0o600, 7, 8, BS, 1, 2]);
  });

  it('on a sealed file, mode and size together are ETXTBSY and the mode is unchanged', async () => {
    svc = service('refuse');
    file('/f', 3 * BS);
    svc.seals.seal('/f', ROOT_CALLER);
    expect(await acode(svc.fs.setattr('/f', { mode: 0o600, size: BS }) as Promise<void>)).toBe('ETXTBSY');
    const st = svc.fs.getattr('/f');
    expect([st.mode & 0o7777, st.size]).toEqual([0o644, 3 * BS]);
  });

  it('busy pages past the new EOF (busy=refuse): ETXTBSY, the owner unchanged', async () => {
    svc = service('refuse');
    file('/f', 3 * BS);
    svc.pinMgr.pin(svc.fs.resolve('/f'), '/f', 2 * BS, BS, { kind: 'admin' });
    expect(await acode(svc.fs.setattr('/f', { uid: 9, size: BS }) as Promise<void>)).toBe('ETXTBSY');
    expect(svc.fs.getattr('/f').uid).toBe(0);
  });
});

describe('apply revalidates what prepare looked up', () => {
  it('a truncate that waited on pins of a file freed meanwhile gets ESTALE and frees nothing twice', async () => {
    svc = service('wait');
    file('/f', 3 * BS);
    const inode = svc.fs.resolve('/f');
    const { pins } = svc.pinMgr.pin(inode, '/f', 2 * BS, BS, { kind: 'admin' });
    const h = svc.fs.open('/f', C.O_RDWR, ROOT_CALLER);
    const waiting = svc.fs.setattr(inode, { size: 0 }) as Promise<void>;
    svc.fs.unlink('/f');            // the name goes; the handle and the pin hold the inode
    svc.fs.release(h.fh);
    for (const p of pins) svc.pinMgr.unpin(p.id, ROOT_CALLER);   // the last hold: the inode is freed, then the waiter wakes
    expect(svc.fs.inodeOf(inode.ino)).toBeUndefined();
    expect(await acode(waiting)).toBe('ESTALE');
    const st = svc.fs.statfs();
    expect(st.blocks - st.bfree).toBeLessThan(8);   // only the root's metadata in use
  });
});

describe('a pin is one operation', () => {
  it('a write pin over a hole and a pinned shared block: ETXTBSY, and the hole is still a hole', async () => {
    svc = service('refuse');
    file('/a', 2 * BS);
    const h = svc.fs.create('/b', 0o644, C.O_RDWR, ROOT_CALLER);
    svc.fs.release(h.fh);
    await svc.fs.remap('/b', svc.fs.resolve('/a'), 0, 0, BS, false, ROOT_CALLER);   // /b block 0 shares /a's
    await svc.fs.truncate('/b', 3 * BS);                                             // blocks 1-2 of /b: a hole
    svc.pinMgr.pin(svc.fs.resolve('/a'), '/a', 0, BS, { kind: 'admin' });            // the shared block is busy
    const b = svc.fs.resolve('/b');
    const before = JSON.stringify(b.bmap.map(0, 3));
    expect(() => svc.pinMgr.pin(b, '/b', 0, 3 * BS, { kind: 'pid', pid: 77, uid: 0 }, Infinity, 'write')).toThrow(/ETXTBSY|pinned/);
    expect(JSON.stringify(b.bmap.map(0, 3))).toBe(before);
    expect(svc.fs.pins.pinsOfIno(b.ino)).toEqual([]);
  });

  it('a limit reached part-way pins nothing', async () => {
    svc = service('refuse');
    file('/f', 4 * BS);
    const f = svc.fs.resolve('/f');
    await svc.fs.fallocate('/f', 0x02 | 0x01 /* PUNCH_HOLE | KEEP_SIZE */, BS, BS);   // three pieces: extent, hole, extent
    const reg = svc.fs.pins;
    const holder = { kind: 'pid' as const, pid: 88, uid: 0 };
    for (let i = 0; i < MAX_PINS_PER_HOLDER - 1; i++) reg.add({ ino: 999, fileOff: 0, len: BS, phys: 0, startBlock: 1 << 30, blocks: 1, holder });
    const n = reg.size;
    expect(() => svc.pinMgr.pin(f, '/f', 0, 3 * BS, holder)).toThrow(/limit/);   // the first of three pins fits, the second does not
    expect(reg.size).toBe(n);
    expect(reg.pinsOfIno(f.ino)).toEqual([]);
  });
});

describe('the operation layer is the only way to open a transaction', () => {
  it('the journal hands its entry out once, and the engine has taken it', () => {
    svc = service('refuse');
    expect(() => svc.fs.tx.claimEntry()).toThrow(/already claimed/);
  });

  it('no source file but the operation layer claims the entry', () => {
    const root = path.resolve(__dirname, '../../src');
    const offenders: string[] = [];
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const f = path.join(d, e.name);
        if (e.isDirectory()) { walk(f); continue; }
        if (!f.endsWith('.ts') || f.endsWith(path.join('journal', 'tx.ts')) || f.endsWith(path.join('op', 'operation.ts'))) continue;
        const text = fs.readFileSync(f, 'utf8');
        if (/claimEntry\(|\btx\.run\(|\.tx\.run\(/.test(text)) offenders.push(path.relative(root, f));
      }
    };
    walk(root);
    expect(offenders).toEqual([]);
  });

  it('an operation applies once; a rolled step comes before its apply', () => {
    svc = service('refuse');
    file('/f', BS);
    const inode = svc.fs.resolve('/f');
    const op = svc.fs.ops.begin('test', inode);
    op.roll((tx) => tx.markDirty(inode));
    op.apply((tx) => tx.markDirty(inode));
    expect(() => op.apply((tx) => tx.markDirty(inode))).toThrow(/second apply/);
    expect(() => op.roll((tx) => tx.markDirty(inode))).toThrow(/after apply/);
  });

  it('apply refuses a target freed (and its number reused) since prepare: ESTALE, nothing changed', () => {
    svc = service('refuse');
    file('/f', BS);
    const old = svc.fs.resolve('/f');
    const op = svc.fs.ops.begin('chmod', old);
    svc.fs.unlink('/f');
    file('/g', BS);
    const g = svc.fs.resolve('/g');
    const stale = svc.fs.ops.stats.stale;
    expect(code(() => op.apply((tx) => { tx.markDirty(old); old.mode = 0o777; }))).toBe('ESTALE');
    expect(svc.fs.ops.stats.stale).toBe(stale + 1);
    expect(g.mode & 0o777).toBe(0o644);
  });

  it('each request is exactly one transaction', async () => {
    svc = service('refuse');
    file('/a', 2 * BS);
    file('/b', BS);
    const f = svc.fs;
    const user = { pid: 4242, uid: 1000, gid: 1000 };
    const requests: Array<[string, () => unknown]> = [
      ['mkdir', () => f.mkdir('/d', 0o755, ROOT_CALLER)],
      ['create', () => f.release(f.create('/d/n', 0o644, C.O_RDWR, ROOT_CALLER).fh)],
      ['write', () => { const h = f.open('/a', C.O_RDWR, ROOT_CALLER); f.write(h.fh, '/a', Buffer.alloc(100, 2), 100, 5000); f.release(h.fh); }],
      ['chmod', () => f.chmod('/a', 0o4755)],
      ['setattr mode+owner+size', () => f.setattr('/b', { mode: 0o600, uid: 5, gid: 5, size: 3 * BS })],
      ['setxattr', () => f.setxattr('/a', 'user.k', Buffer.from('v'), 0)],
      ['link', () => f.link('/a', '/d/a2')],
      ['clone with a set-user-ID drop', () => f.remap('/a', f.resolve('/b'), 0, 0, BS, false, user)],
      ['rename over a file', () => f.rename('/d/n', '/b')],
      ['fallocate', () => f.fallocate('/a', 0, 0, 8 * BS)],
      ['punch', () => f.fallocate('/a', 0x03, BS, BS)],
      ['unlink', () => f.unlink('/d/a2')],
    ];
    for (const [what, run] of requests) {
      const before = { ...f.ops.stats };
      const opsBefore = f.tx.stats.ops;
      await run();
      expect({ what, applied: f.ops.stats.applied - before.applied, rolled: f.ops.stats.rolled - before.rolled })
        .toEqual({ what, applied: 1, rolled: 0 });
      expect(f.tx.stats.ops - opsBefore).toBeLessThanOrEqual(1);
    }
    expect(f.getattr('/a').mode & 0o7777).toBe(0o755);   // the clone by uid 1000 dropped set-user-ID in its one transaction
  });
});
