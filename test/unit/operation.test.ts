/**
 * One request, one operation (no mount): a setattr of several attributes is
 * one transaction and all or nothing (ETXTBSY on a sealed file leaves the
 * mode as it was); a change that waited for busy pages revalidates the
 * inode it looked up and gets ESTALE when the file was freed meanwhile.
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
import { acode } from './helpers.js';

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
    expect(await acode(svc.fs.setattr('/f', { mode: 0o600, size: BS }))).toBe('ETXTBSY');
    const st = svc.fs.getattr('/f');
    expect([st.mode & 0o7777, st.size]).toEqual([0o644, 3 * BS]);
  });

  it('busy pages past the new EOF (busy=refuse): ETXTBSY, the owner unchanged', async () => {
    svc = service('refuse');
    file('/f', 3 * BS);
    svc.pinMgr.pin(svc.fs.resolve('/f'), '/f', 2 * BS, BS, { kind: 'admin' });
    expect(await acode(svc.fs.setattr('/f', { uid: 9, size: BS }))).toBe('ETXTBSY');
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
    const waiting = svc.fs.setattr(inode, { size: 0 });
    svc.fs.unlink('/f');            // the name goes; the handle and the pin hold the inode
    svc.fs.release(h.fh);
    for (const p of pins) svc.pinMgr.unpin(p.id, ROOT_CALLER);   // the last hold: the inode is freed, then the waiter wakes
    expect(svc.fs.inodeOf(inode.ino)).toBeUndefined();
    expect(await acode(waiting)).toBe('ESTALE');
    const st = svc.fs.statfs();
    expect(st.blocks - st.bfree).toBeLessThan(8);   // only the root's metadata in use
  });
});
