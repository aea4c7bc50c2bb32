/**
 * The control directory MNT/.pmemfs/ through PmemService.ctl (src/vfs/ctl.ts,
 * src/service.ts): listing and modes, the busy file's line format, admin pins
 * and unpins through `ctl`, malformed commands (EINVAL, nothing changed), and
 * a pinned file that is unlinked (path=(deleted), space back at unpin).
 */
import { acode, code } from './helpers.js';
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PmemService } from '../../src/service.js';
import { CTL_DIR, CTL_FILES } from '../../src/uapi.js';
import { CtlDir } from '../../src/vfs/ctl.js';
import { ROOT_CALLER, type Caller } from '../../src/vfs/fs.js';
import { formatRegion } from '../../src/vfs/mount.js';

const BS = 4096;
const LOG = pino({ level: 'silent' });
const BUSY_LINE = /^id=\d+ ino=\d+ path=\S+ off=\d+ len=\d+ phys=0x[0-9a-f]+ pins=\d+ holder=(pid:\d+|admin) age_ms=\d+$/;
const USER: Caller = { pid: process.pid, uid: 1000, gid: 1000 };
const D = '/' + CTL_DIR;

let dir: string;
let svc: PmemService;
let closed: boolean;

beforeEach(() => {
  dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-unit-');
  const p = path.join(dir, 'r.pmem');
  formatRegion(p, { size: 64 << 20, blockSize: BS, label: 'ctl' });
  svc = new PmemService(p, { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 200, leaseBreakMs: 1000 }, LOG);
  closed = false;
});
afterEach(() => {
  if (!closed) svc.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

function file(p: string, blocks: number): void {
  const h = svc.fs.create(p, 0o644, C.O_RDWR, ROOT_CALLER);
  svc.fs.write(h.fh, p, Buffer.alloc(blocks * BS, 0x61), blocks * BS, 0);
  svc.fs.release(h.fh);
}
/** Read a control file as a fresh open would. */
function cat(name: string, who: Caller = ROOT_CALLER): string {
  const fh = svc.ctl.open(`${D}/${name}`, C.O_RDONLY, who);
  const chunks: Buffer[] = [];
  const b = Buffer.alloc(7);                    // small reads: offsets must work
  for (let off = 0; ; ) {
    const n = svc.ctl.read(fh, b, b.length, off);
    if (n === 0) break;
    chunks.push(Buffer.from(b.subarray(0, n)));
    off += n;
  }
  svc.ctl.release(fh);
  return Buffer.concat(chunks).toString();
}
const lines = (s: string) => s.split('\n').filter(Boolean);
async function ctl(cmd: string, caller: Caller = ROOT_CALLER): Promise<number> {
  const fh = svc.ctl.open(`${D}/ctl`, C.O_WRONLY, caller);
  try {
    const buf = Buffer.from(cmd);
    return await svc.ctl.write(fh, buf, buf.length);
  } finally { svc.ctl.release(fh); }
}

describe('control directory', () => {
  it('lists its files and is classified by path', () => {
    expect(svc.ctl.readdir()).toEqual(['.', '..', 'stats', 'busy', 'ctl', 'seals', 'leases']);
    expect(svc.ctl.readdir().slice(2).sort()).toEqual([...CTL_FILES].sort());
    expect(CtlDir.classify(D)).toBe('dir');
    expect(CtlDir.classify(`${D}/busy`)).toBe('busy');
    expect(CtlDir.classify(`${D}/nope`)).toBeNull();
    expect(CtlDir.classify('/busy')).toBeNull();
    expect(CtlDir.isCtlPath(`${D}/nope`)).toBe(true);
    expect(CtlDir.isCtlPath('/.pmemfsx')).toBe(false);
  });

  it('reports the modes of the directory and files', () => {
    expect(svc.ctl.getattr(D)).toMatchObject({ mode: 0o040555, nlink: 2, uid: 0, gid: 0 });
    for (const f of ['stats', 'busy', 'seals', 'leases']) expect(svc.ctl.getattr(`${D}/${f}`).mode, f).toBe(0o100444);
    expect(svc.ctl.getattr(`${D}/ctl`)).toMatchObject({ mode: 0o100200, size: 0, nlink: 1 });
    const inos = ['', '/stats', '/busy', '/ctl', '/seals', '/leases'].map((s) => svc.ctl.getattr(D + s).ino);
    expect(new Set(inos).size).toBe(6);
    for (const ino of inos) expect(ino).toBeGreaterThan(svc.fs.store.sb.inodeCount);
    expect(code(() => svc.ctl.getattr(`${D}/nope`))).toBe('ENOENT');
  });

  it('refuses wrong open modes and non-root ctl', () => {
    expect(code(() => svc.ctl.open(`${D}/ctl`, C.O_RDONLY, ROOT_CALLER))).toBe('EACCES');
    expect(code(() => svc.ctl.open(`${D}/busy`, C.O_WRONLY, ROOT_CALLER))).toBe('EACCES');
    expect(code(() => svc.ctl.open(`${D}/ctl`, C.O_WRONLY, USER))).toBe('EPERM');
    expect(code(() => svc.ctl.open(D, C.O_RDONLY, ROOT_CALLER))).toBe('EISDIR');
    expect(code(() => svc.ctl.open(`${D}/nope`, C.O_RDONLY, ROOT_CALLER))).toBe('ENOENT');
  });

  it('getattr is O(1): size 0 like /proc, whatever a read returns (no render, no tree walk)', () => {
    expect(cat('busy')).toBe('');
    file('/f', 2);
    svc.pinMgr.pin(svc.fs.resolve('/f'), '/f', 0, 2 * BS, { kind: 'pid', pid: process.pid, uid: 0 });
    expect(cat('busy')).not.toBe('');
    let walked = 0;
    const real = svc.fs.root.bind(svc.fs);
    svc.fs.root = () => { walked++; return real(); };
    for (const f of ['busy', 'seals', 'leases', 'stats']) expect(svc.ctl.getattr(`${D}/${f}`).size, f).toBe(0);
    expect(walked).toBe(0);
  });

  it('a non-root reader sees paths they could resolve, and inode numbers only inside directories they cannot search', async () => {
    svc.fs.mkdir('/open', 0o755, ROOT_CALLER);
    svc.fs.mkdir('/private', 0o700, { pid: 1, uid: 3000, gid: 3000 });
    file('/open/a', 1);
    file('/private/secret-name', 1);
    svc.pinMgr.pin(svc.fs.resolve('/open/a'), '/open/a', 0, BS, { kind: 'admin' });
    svc.pinMgr.pin(svc.fs.resolve('/private/secret-name'), 'p', 0, BS, { kind: 'admin' });
    await svc.seals.seal('/private/secret-name', ROOT_CALLER);
    const ino = svc.fs.resolve('/private/secret-name').ino;
    for (const f of ['busy', 'seals']) {
      const asUser = cat(f, USER);
      expect(asUser, f).not.toContain('secret-name');
      expect(asUser, f).toContain(`ino=${ino} path=(hidden)`);
      expect(cat(f, { pid: 1, uid: 3000, gid: 3000 }), f).toContain('path=/private/secret-name');   // the owner may search it
      expect(cat(f), f).toContain('path=/private/secret-name');                                     // root
    }
    expect(cat('busy', USER)).toContain('path=/open/a');
  });

  it('busy shows one line per pin in the documented format', () => {
    file('/f', 4);
    const inode = svc.fs.resolve('/f');
    const { pins } = svc.pinMgr.pin(inode, '/f', 100, BS, { kind: 'pid', pid: process.pid, uid: 0 });
    const got = lines(cat('busy'));
    expect(got).toHaveLength(pins.length);
    for (const l of got) expect(l).toMatch(BUSY_LINE);
    const p = pins[0];
    expect(got[0]).toContain(`id=${p.id} ino=${inode.ino} path=/f off=100 len=${BS} phys=0x${p.phys.toString(16)} pins=1 holder=pid:${process.pid} `);
    expect(p.phys).toBe(inode.bmap.map(0, 1)[0].regionBlock * BS + 100);
  });

  it('counts overlapping pins on a line', () => {
    file('/f', 1);
    const inode = svc.fs.resolve('/f');
    svc.pinMgr.pin(inode, '/f', 0, BS, { kind: 'pid', pid: process.pid, uid: 0 });
    svc.pinMgr.pin(inode, '/f', 0, 10, { kind: 'admin' });
    const got = lines(cat('busy'));
    expect(got).toHaveLength(2);
    for (const l of got) expect(l).toMatch(/ pins=2 /);
  });

  it('a file is generated at open: a handle keeps its snapshot', () => {
    file('/f', 1);
    const fh = svc.ctl.open(`${D}/busy`, C.O_RDONLY, ROOT_CALLER);
    svc.pinMgr.pin(svc.fs.resolve('/f'), '/f', 0, BS, { kind: 'admin' });
    expect(svc.ctl.read(fh, Buffer.alloc(100), 100, 0)).toBe(0);
    svc.ctl.release(fh);
    expect(lines(cat('busy'))).toHaveLength(1);
  });
});

describe('ctl commands', () => {
  it('pin PATH OFF LEN makes an admin pin; unpin ID drops it', async () => {
    file('/f', 2);
    expect(await ctl('pin /f 0 4096\n')).toBe(14);
    const got = lines(cat('busy'));
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(BUSY_LINE);
    expect(got[0]).toMatch(/ path=\/f off=0 len=4096 .* holder=admin /);
    const id = Number(/^id=(\d+)/.exec(got[0])![1]);
    expect(svc.fs.pins.get(id)!.holder).toEqual({ kind: 'admin' });
    expect(await acode(svc.fs.truncate('/f', 0))).toBe('ETXTBSY');
    await ctl(`unpin ${id}`);
    expect(cat('busy')).toBe('');
    expect(svc.fs.pins.size).toBe(0);
    await svc.fs.truncate('/f', 0);
  });

  it('accepts hexadecimal numbers', async () => {
    file('/f', 2);
    await ctl('pin /f 0x1000 0x1000');
    expect(lines(cat('busy'))[0]).toMatch(/ off=4096 len=4096 /);
  });

  it.each([
    'pin', 'pin /f', 'pin /f 0', 'pin /f x 1', 'pin /f 0 1k', 'pin /f -1 4096', 'pin /f 0 4096 extra',
    'pin /f 0 99999999999999999999', 'unpin', 'unpin x', 'unpin 1 2', 'frob', 'frob /f', '', 'pin /f 0 1\npin /f 0 1',
  ])('refuses %j with EINVAL and changes nothing', async (cmd) => {
    file('/f', 2);
    await ctl('pin /f 0 4096');
    const ageless = () => cat('busy').replace(/ age_ms=\d+/g, '');
    const before = ageless();
    const free = svc.fs.statfs().bfree;
    expect(await acode(ctl(cmd))).toBe('EINVAL');
    expect(ageless()).toBe(before);
    expect(svc.fs.pins.size).toBe(1);
    expect(svc.fs.statfs().bfree).toBe(free);
  });

  it('reports an unknown pin id and a missing path without changing anything', async () => {
    file('/f', 1);
    expect(await acode(ctl('unpin 999'))).toBe('EINVAL');
    expect(await acode(ctl('pin /nope 0 4096'))).toBe('ENOENT');
    expect(await acode(ctl('pin /f 0 8192'))).toBe('ENXIO');
    expect(svc.fs.pins.size).toBe(0);
  });

  it('a pinned file that is unlinked shows path=(deleted) and its space returns at unpin', async () => {
    const free0 = svc.fs.statfs().bfree;
    file('/f', 3);
    await ctl('pin /f 0 12288');
    const id = Number(/^id=(\d+)/.exec(cat('busy'))![1]);
    const ino = svc.fs.getattr('/f').ino;
    svc.fs.unlink('/f');
    expect(code(() => svc.fs.getattr('/f'))).toBe('ENOENT');
    const got = lines(cat('busy'));
    expect(got).toHaveLength(1);
    expect(got[0]).toMatch(BUSY_LINE);
    expect(got[0]).toContain(`ino=${ino} path=(deleted) `);
    expect(svc.fs.statfs().bfree).toBe(free0 - 3);
    await ctl(`unpin ${id}`);
    expect(cat('busy')).toBe('');
    expect(svc.fs.inodeOf(ino)).toBeUndefined();
    expect(svc.fs.statfs().bfree).toBe(free0);
  });

  it('stats reports the pin count and the region', async () => {
    file('/f', 1);
    await ctl('pin /f 0 4096');
    const stats = lines(cat('stats'));
    expect(stats.find((l) => l.startsWith('subsystem=pin '))).toMatch(/ active=1 /);
    expect(stats.find((l) => l.startsWith('subsystem=region '))).toMatch(/ block_size=4096 dax=always read_only=0 /);
    closed = true;
    svc.close();
  });
});
