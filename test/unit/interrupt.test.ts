/**
 * Interrupts and handle numbers in the FUSE transport, without a mount:
 * FuseTransport over a fake native binding that records the replies.
 * A truncate waiting for pinned pages (busy=wait) ends with EINTR when
 * interrupted, soon, and the truncate is not made after the pins go; an
 * interrupted request that need not wait completes; an interrupt after the
 * reply changes nothing. The guard alone: the request's signal ends its
 * wait, and outside a request nothing does. Directory handles lie at 2^48
 * and up, are never handed out twice while in use, and never reach a file
 * operation as a file handle.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DIR_FH_BASE, FuseTransport, SCRATCH } from '../../src/fuse/lowlevel.js';
import { RequestContext, requestSignal, runInRequest } from '../../src/layout/interrupt.js';
import type { NativeBinding, SessionHandlers } from '../../src/native.js';
import { PmemService, type ServiceOptions } from '../../src/service.js';
import { ROOT_CALLER } from '../../src/vfs/fs.js';
import type { IoctlDispatcher, IoctlRequest } from '../../src/vfs/ioctl.js';
import { formatRegion } from '../../src/vfs/mount.js';
import { acode } from './helpers.js';

const BS = 4096;
const LOG = pino({ level: 'silent' });
const OPTS: ServiceOptions = { dax: 'always', readOnly: false, busy: 'wait', busyTimeoutMs: 30_000, leaseBreakMs: 1000 };
const ADMIN = { kind: 'admin' as const };
const SET_SIZE = 1 << 3;
const EINTR = os.constants.errno.EINTR;

type Reply = [name: string, slot: number, ...rest: unknown[]];

let dir: string;
let svc: PmemService;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-intr-'));
  const p = path.join(dir, 'r.pmem');
  formatRegion(p, { size: 16 << 20, blockSize: BS, label: 'intr' });
  svc = new PmemService(p, OPTS, LOG);
});
afterEach(() => {
  svc.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A native binding that records every reply; dirAdd* always fit. */
function fakeNative(replies: Reply[]): NativeBinding {
  const rec = (name: string) => (slot: number, ...rest: unknown[]) => { replies.push([name, slot, ...rest]); };
  const names = ['replyErr', 'replyEntry', 'replyCreate', 'replyAttr', 'replyOpen', 'replyWrite', 'replyRead', 'replyBuf',
    'replyReadlink', 'replyStatfs', 'replyXattrSize', 'replyLseek', 'replyIoctl', 'replyDir'];
  const b: Record<string, unknown> = Object.fromEntries(names.map((n) => [n, rec(n)]));
  Object.assign(b, {
    scratch: new Float64Array(1024), recvBuffer: Buffer.alloc(1 << 20),
    dirAdd: () => true, dirAddPlus: () => true,
    notifyInvalInode: () => undefined, notifyInvalEntry: () => undefined, pendingRequests: () => 0,
  });
  return b as unknown as NativeBinding;
}

function transport(ioctl?: Partial<IoctlDispatcher>): { h: SessionHandlers; n: NativeBinding; replies: Reply[]; t: FuseTransport } {
  const replies: Reply[] = [];
  const n = fakeNative(replies);
  const t = new FuseTransport({
    fs: svc.fs, ctl: svc.ctl, ioctl: (ioctl ?? svc.ioctls) as IoctlDispatcher, native: n, log: LOG, onEnded: () => undefined,
  });
  return { h: t.handlers(), n, replies, t };
}

function put(p: string, data: Buffer): number {
  const h = svc.fs.create(p, 0o644, C.O_RDWR, ROOT_CALLER);
  try { svc.fs.write(h.fh, p, data, data.length, 0); } finally { svc.fs.release(h.fh); }
  return svc.fs.resolve(p).ino;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(5);
  }
}

describe('FUSE_INTERRUPT of a waiting truncate', () => {
  it('answers EINTR at once and never truncates, even after the pins go', async () => {
    const data = Buffer.alloc(64 * 1024, 0x5a);
    const ino = put('/f', data);
    const inode = svc.fs.resolve('/f');
    const blocksBefore = JSON.stringify(inode.bmap.map(0, 16));
    const { pins } = svc.pinMgr.pin(inode, '/f', 0, 64 * 1024, ADMIN);
    const { h, n, replies } = transport();
    const slot = 5 + 7 * 2 ** 20;
    n.scratch[SCRATCH.SETATTR + 3] = 0;
    h.setattr(slot, ino, -1, SET_SIZE);
    await sleep(100);
    expect(replies).toEqual([]);                       // waiting for the pins
    const t0 = Date.now();
    h.interrupt!(slot);
    await until(() => replies.length > 0);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(replies).toEqual([['replyErr', slot, EINTR]]);
    expect(svc.fs.guard.stats.waitsInterrupted).toBe(1);
    for (const p of pins) svc.pinMgr.unpin(p.id, ROOT_CALLER);
    await sleep(50);
    expect(inode.size).toBe(data.length);
    expect(JSON.stringify(inode.bmap.map(0, 16))).toBe(blocksBefore);
    const h2 = svc.fs.open('/f', C.O_RDONLY, ROOT_CALLER);
    const back = Buffer.alloc(data.length);
    svc.fs.read(h2.fh, back, back.length, 0);
    svc.fs.release(h2.fh);
    expect(back.equals(data)).toBe(true);
    h.interrupt!(slot);                                // after the reply: nothing
    await sleep(20);
    expect(replies.length).toBe(1);
  });

  it('an interrupted request that need not wait completes; an interrupt after the reply is ignored', async () => {
    const ino = put('/g', Buffer.alloc(3 * BS, 1));
    const { h, n, replies } = transport();
    n.scratch[SCRATCH.SETATTR + 3] = BS;
    h.setattr(9, ino, -1, SET_SIZE);
    h.interrupt!(9);                                   // before its continuation runs: no pin, no wait
    await until(() => replies.length > 0);
    expect(replies[0].slice(0, 2)).toEqual(['replyAttr', 9]);
    expect(svc.fs.resolve('/g').size).toBe(BS);
    h.getattr(10, ino, -1);
    h.interrupt!(10);
    h.interrupt!(12345);                               // never seen: ignored
    expect(replies.map((r) => r[0])).toEqual(['replyAttr', 'replyAttr']);
  });
});

describe('the guard and the request signal', () => {
  it('a wait ends with EINTR when its request is interrupted, and not otherwise', async () => {
    put('/h', Buffer.alloc(2 * BS, 2));
    const inode = svc.fs.resolve('/h');
    const { pins } = svc.pinMgr.pin(inode, '/h', BS, BS, ADMIN);
    const ctx = new RequestContext();
    expect(requestSignal()).toBeUndefined();
    const p = runInRequest(ctx, () => svc.fs.truncate('/h', 0));
    const outside = svc.fs.truncate('/h', BS);          // not a request: waits for the pin
    await sleep(30);
    ctx.interrupt();
    expect(await acode(p)).toBe('EINTR');
    expect(inode.size).toBe(2 * BS);
    for (const q of pins) svc.pinMgr.unpin(q.id, ROOT_CALLER);
    await outside;
    expect(inode.size).toBe(BS);
  });

  it('an interrupt before the wait starts ends it at once', async () => {
    put('/i', Buffer.alloc(2 * BS, 3));
    const inode = svc.fs.resolve('/i');
    const { pins } = svc.pinMgr.pin(inode, '/i', 0, BS, ADMIN);
    const ctx = new RequestContext();
    ctx.interrupt();
    const t0 = Date.now();
    expect(await acode(runInRequest(ctx, () => svc.fs.truncate('/i', 0)))).toBe('EINTR');
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(inode.size).toBe(2 * BS);
    for (const q of pins) svc.pinMgr.unpin(q.id, ROOT_CALLER);
  });
});

describe('directory handles', () => {
  it('lie at 2^48 and up, and a number in use is never handed out again', () => {
    const { h, replies, t } = transport();
    h.opendir(1, 1, 0);
    h.opendir(2, 1, 0);
    const [a, b] = replies.map((r) => r[2] as number);
    expect(a).toBeGreaterThanOrEqual(DIR_FH_BASE);
    expect(b).not.toBe(a);
    (t as unknown as { nextDirFh: number }).nextDirFh = a;    // as if the counter came round
    h.opendir(3, 1, 0);
    const c = replies[2][2] as number;
    expect([a, b]).not.toContain(c);
    h.releasedir(4, 1, a);
    expect(replies[3]).toEqual(['replyErr', 4, 0]);
  });

  it('never reach an ioctl, fallocate or truncate as a file handle', async () => {
    const ino = put('/j', Buffer.alloc(BS, 4));
    const seen: IoctlRequest[] = [];
    const { h, n, replies } = transport({ knows: () => true, dispatch: (r: IoctlRequest) => { seen.push(r); return null; } });
    const file = svc.fs.open('/j', C.O_RDWR, ROOT_CALLER);
    h.opendir(1, 1, 0);
    const dirFh = replies[0][2] as number;
    h.ioctl(2, ino, 0x1234, dirFh, 0, null, 0);
    h.ioctl(3, ino, 0x1234, file.fh, 0, null, 0);
    const handleOf = (r: IoctlRequest) => (r as unknown as { handle?: { fh: number } | null }).handle?.fh
      ?? ((r as unknown as { fh?: number }).fh || null);
    expect(handleOf(seen[0])).toBeNull();
    expect(handleOf(seen[1])).toBe(file.fh);
    n.scratch[SCRATCH.SETATTR + 3] = 10;
    h.setattr(4, ino, dirFh, SET_SIZE);
    await until(() => replies.length >= 4);
    expect(replies[3].slice(0, 2)).toEqual(['replyAttr', 4]);
    expect(svc.fs.resolve('/j').size).toBe(10);
    h.fallocate(5, ino, dirFh, 0, 0, 2 * BS);
    await until(() => replies.length >= 5);
    expect(replies[4]).toEqual(['replyErr', 5, 0]);
    expect(svc.fs.resolve('/j').size).toBe(2 * BS);
    svc.fs.release(file.fh);
  });
});
