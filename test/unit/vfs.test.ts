/**
 * Filesystem semantics of the engine without a mount (src/vfs/): a
 * conformance-style suite run against PmemFs on region files in a temp dir —
 * data round trips, holes, truncate, fallocate modes, ENOSPC all-or-nothing,
 * links, rename, rmdir, xattrs, persistence across unmount/mount, crash
 * recovery (a DIRTY region) and orphans.
 */
import { acode, code } from './helpers.js';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HOLE } from '../../src/bmap/bmap.js';
import { EXT_UNWRITTEN } from '../../src/format/fork.js';
import { INLINE_FORK_MAX } from '../../src/format/layout.js';
import * as uapi from '../../src/uapi.js';
import { checkRegion } from '../../src/repair/check.js';
import { ROOT_CALLER, type Caller, type PmemFs } from '../../src/vfs/fs.js';
import { engine, formatRegion, mountRegion, readSuperblock, unmountRegion, type MountOptions, type Mounted } from '../../src/vfs/mount.js';
import { Region } from '../../src/region/region.js';
import { regionOff } from '../../src/types.js';
import { mapRead, seekData } from '../../src/vfs/data.js';

const BS = 4096;
const MiB = 1 << 20;
const LOG = pino({ level: 'silent' });
const OPTS: MountOptions = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 200 };
const USER: Caller = { pid: 4321, uid: 1000, gid: 1000 };
const { FALLOC_FL_KEEP_SIZE: KEEP, FALLOC_FL_PUNCH_HOLE: PUNCH, FALLOC_FL_ZERO_RANGE: ZERO } = uapi;

let dir: string;
let live: Set<Mounted>;

beforeEach(() => {
  dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-unit-');
  live = new Set();
});

afterEach(() => {
  for (const m of live) { try { unmountRegion(m); } catch { /* already broken by the test */ } }
  fs.rmSync(dir, { recursive: true, force: true });
});

function region(size = 64 * MiB, name = 'r.pmem'): string {
  const p = path.join(dir, name);
  formatRegion(p, { size, blockSize: BS, label: 'unit' });
  return p;
}
function mount(p: string, o: Partial<MountOptions> = {}): Mounted {
  const m = mountRegion(p, { ...OPTS, ...o }, LOG);
  live.add(m);
  return m;
}
function unmount(m: Mounted): void { live.delete(m); unmountRegion(m); }
/** A crash: the mapping goes away without the clean-unmount steps. */
function crash(m: Mounted): void { live.delete(m); m.region.close(); }


function put(f: PmemFs, p: string, data: Buffer, off = 0, caller: Caller = ROOT_CALLER): void {
  let h;
  try { h = f.open(p, C.O_RDWR, caller); } catch { h = f.create(p, 0o644, C.O_RDWR, caller); }
  try { expect(f.write(h.fh, p, data, data.length, off)).toBe(data.length); } finally { f.release(h.fh); }
}
function get(f: PmemFs, p: string, off = 0, len?: number): Buffer {
  const h = f.open(p, C.O_RDONLY, ROOT_CALLER);
  try {
    const n = len ?? Math.max(0, f.getattr(p).size - off);
    const b = Buffer.alloc(n, 0x5a);
    const got = f.read(h.fh, b, n, off);
    return b.subarray(0, got);
  } finally { f.release(h.fh); }
}
const zeros = (b: Buffer) => b.every((x) => x === 0);
const blocks512 = (f: PmemFs, p: string) => f.getattr(p).blocks;
const extents = (f: PmemFs, p: string) => f.resolve(p).bmap.toRecords();

describe('data', () => {
  let m: Mounted, f: PmemFs;
  beforeEach(() => { m = mount(region()); f = m.fs; });

  it('round-trips bytes written across block boundaries', () => {
    const data = randomBytes(3 * BS + 123);
    put(f, '/f', data, 4000);
    const st = f.getattr('/f');
    expect(st.size).toBe(4000 + data.length);
    expect(st.blocks).toBe(5 * 8);
    expect(st.blksize).toBe(BS);
    const all = get(f, '/f');
    expect(zeros(all.subarray(0, 4000))).toBe(true);
    expect(all.subarray(4000).equals(data)).toBe(true);
    for (const [off, len] of [[4095, 2], [4000, 97], [8191, 4098], [12000, 5000], [4096 * 4 - 1, 3]]) {
      expect(get(f, '/f', off, len).equals(all.subarray(off, off + len)), `read ${off}+${len}`).toBe(true);
    }
  });

  it('overwrites in place without allocating', () => {
    put(f, '/f', Buffer.alloc(2 * BS, 0x11));
    const ext = extents(f, '/f');
    const free = f.statfs().bfree;
    put(f, '/f', Buffer.alloc(100, 0x22), BS - 50);
    expect(extents(f, '/f')).toEqual(ext);
    expect(f.statfs().bfree).toBe(free);
    const b = get(f, '/f');
    expect(b.subarray(BS - 51, BS + 51)).toEqual(Buffer.concat([Buffer.from([0x11]), Buffer.alloc(100, 0x22), Buffer.from([0x11])]));
  });

  it('returns short reads at EOF and nothing past it', () => {
    put(f, '/f', Buffer.from('0123456789'));
    const h = f.open('/f', C.O_RDONLY, ROOT_CALLER);
    const b = Buffer.alloc(100);
    expect(f.read(h.fh, b, 100, 4)).toBe(6);
    expect(b.subarray(0, 6).toString()).toBe('456789');
    expect(f.read(h.fh, b, 100, 10)).toBe(0);
    expect(f.read(h.fh, b, 100, 5000)).toBe(0);
    f.release(h.fh);
  });

  it('appends with O_APPEND whatever the offset', () => {
    put(f, '/f', Buffer.from('abc'));
    const h = f.open('/f', C.O_WRONLY | C.O_APPEND, ROOT_CALLER);
    f.write(h.fh, '/f', Buffer.from('def'), 3, 0);
    f.release(h.fh);
    expect(get(f, '/f').toString()).toBe('abcdef');
  });

  it('a write by a non-root caller drops set-user-ID and group-exec set-group-ID; root keeps them', () => {
    const nobody: Caller = { pid: 1, uid: 65534, gid: 65534 };
    for (const [mode, byRoot, want] of [[0o6777, false, 0o777], [0o2757, false, 0o2757 & ~0o2000], [0o2747, false, 0o2747], [0o6777, true, 0o6777]] as const) {
      const h = f.create('/s', mode, C.O_RDWR, ROOT_CALLER);
      f.write(h.fh, '/s', Buffer.from('x'), 1, 0, byRoot ? ROOT_CALLER : nobody);
      f.release(h.fh);
      expect((f.getattr('/s').mode & 0o7777).toString(8)).toBe(want.toString(8));
      f.unlink('/s');
    }
  });

  it('refuses writes on a read-only handle', () => {
    put(f, '/f', Buffer.from('abc'));
    const h = f.open('/f', C.O_RDONLY, ROOT_CALLER);
    expect(code(() => f.write(h.fh, '/f', Buffer.from('x'), 1, 0))).toBe('EBADF');
    f.release(h.fh);
    expect(get(f, '/f').toString()).toBe('abc');
  });

  it('reads holes of a sparse file as zeroes and maps only written blocks', () => {
    put(f, '/s', Buffer.from('X'), MiB + 5);
    expect(f.getattr('/s').size).toBe(MiB + 6);
    expect(blocks512(f, '/s')).toBe(8);
    const b = get(f, '/s');
    expect(zeros(b.subarray(0, MiB + 5))).toBe(true);
    expect(b[MiB + 5]).toBe(0x58);
    expect(f.resolve('/s').bmap.map(0, 256)).toEqual([{ fileBlock: 0, len: 256, regionBlock: HOLE, flags: 0 }]);
  });

  it('truncate down then up reads zeroes past the old data (no stale bytes)', async () => {
    put(f, '/t', Buffer.alloc(3 * BS, 0xaa));
    await f.truncate('/t', 5000);
    expect(f.getattr('/t').size).toBe(5000);
    expect(blocks512(f, '/t')).toBe(16);
    await f.truncate('/t', 3 * BS);
    const b = get(f, '/t');
    expect(b.subarray(0, 5000).every((x) => x === 0xaa)).toBe(true);
    expect(zeros(b.subarray(5000))).toBe(true);
    // Extending by a write far past EOF leaves zeroes in between too.
    await f.truncate('/t', 5000);
    put(f, '/t', Buffer.from('Y'), 10000);
    const c = get(f, '/t');
    expect(zeros(c.subarray(5000, 10000))).toBe(true);
    expect(c[10000]).toBe(0x59);
    await f.truncate('/t', 0);
    expect(blocks512(f, '/t')).toBe(0);
    await f.truncate('/t', 2 * BS);
    expect(zeros(get(f, '/t'))).toBe(true);
  });

  it('truncate frees the blocks past the new EOF', async () => {
    const free0 = f.statfs().bfree;
    put(f, '/t', Buffer.alloc(10 * BS, 1));
    expect(f.statfs().bfree).toBe(free0 - 10);
    await f.truncate('/t', 2 * BS + 1);
    expect(f.statfs().bfree).toBe(free0 - 3);
  });

  it('a reused block never shows the previous file’s bytes', async () => {
    put(f, '/old', Buffer.alloc(8 * BS, 0xee));
    f.unlink('/old');
    put(f, '/new', Buffer.from('hi'), 100);
    await f.truncate('/new', 8 * BS);
    const b = get(f, '/new');
    expect(b.subarray(100, 102).toString()).toBe('hi');
    expect(zeros(b.subarray(0, 100))).toBe(true);
    expect(zeros(b.subarray(102))).toBe(true);
    await f.fallocate('/new', 0, 0, 16 * BS);
    expect(zeros(get(f, '/new', 8 * BS))).toBe(true);
  });

  it('fallocate default allocates unwritten blocks and extends the size', async () => {
    f.create('/a', 0o644, C.O_RDWR, ROOT_CALLER);
    await f.fallocate('/a', 0, 0, 10000);
    expect(f.getattr('/a').size).toBe(10000);
    expect(blocks512(f, '/a')).toBe(3 * 8);
    expect(f.resolve('/a').bmap.extents.every((e) => e.flags & EXT_UNWRITTEN)).toBe(true);
    expect(zeros(get(f, '/a'))).toBe(true);
  });

  it('fallocate KEEP_SIZE allocates past EOF without changing the size', async () => {
    put(f, '/a', Buffer.alloc(10000, 7));
    await f.fallocate('/a', KEEP, 10000, 8192);
    expect(f.getattr('/a').size).toBe(10000);
    expect(blocks512(f, '/a')).toBe(5 * 8);
    expect(get(f, '/a').every((x) => x === 7)).toBe(true);
    // Writing into an unwritten block converts it; its other bytes read as zeroes.
    await f.truncate('/a', 5 * BS);
    put(f, '/a', Buffer.from('Z'), 3 * BS + 10);
    const b = get(f, '/a', 3 * BS, BS);
    expect(b[10]).toBe(0x5a);
    expect(zeros(b.subarray(0, 10))).toBe(true);
    expect(zeros(b.subarray(11))).toBe(true);
    expect(f.resolve('/a').bmap.map(3, 1)[0].flags & EXT_UNWRITTEN).toBe(0);
  });

  it('PUNCH_HOLE zeroes the range, frees whole blocks and keeps the size', async () => {
    put(f, '/p', Buffer.alloc(4 * BS, 0xab));
    const free = f.statfs().bfree;
    await f.fallocate('/p', PUNCH | KEEP, 2000, 8000);
    const b = get(f, '/p');
    expect(b.length).toBe(4 * BS);
    expect(b.subarray(0, 2000).every((x) => x === 0xab)).toBe(true);
    expect(zeros(b.subarray(2000, 10000))).toBe(true);
    expect(b.subarray(10000).every((x) => x === 0xab)).toBe(true);
    expect(blocks512(f, '/p')).toBe(3 * 8);
    expect(f.resolve('/p').bmap.map(1, 1)[0].regionBlock).toBe(HOLE);
    expect(f.statfs().bfree).toBe(free + 1);
  });

  it('PUNCH_HOLE past EOF does not change the size', async () => {
    put(f, '/p', Buffer.alloc(BS, 1));
    await f.fallocate('/p', PUNCH | KEEP, 2 * BS, 4 * BS);
    expect(f.getattr('/p').size).toBe(BS);
  });

  it('ZERO_RANGE zeroes the range and keeps blocks mapped; past EOF it extends unless KEEP_SIZE', async () => {
    put(f, '/z', Buffer.alloc(4 * BS, 0xcd));
    await f.fallocate('/z', ZERO, 1000, 9000);
    const b = get(f, '/z');
    expect(b.subarray(0, 1000).every((x) => x === 0xcd)).toBe(true);
    expect(zeros(b.subarray(1000, 10000))).toBe(true);
    expect(b.subarray(10000).every((x) => x === 0xcd)).toBe(true);
    expect(blocks512(f, '/z')).toBe(4 * 8);
    expect(f.resolve('/z').bmap.map(1, 1)[0].flags & EXT_UNWRITTEN).toBe(EXT_UNWRITTEN);
    await f.fallocate('/z', ZERO | KEEP, 4 * BS, BS);
    expect(f.getattr('/z').size).toBe(4 * BS);
    expect(blocks512(f, '/z')).toBe(5 * 8);
    await f.fallocate('/z', ZERO, 16000, 10000);
    expect(f.getattr('/z').size).toBe(26000);
    const c = get(f, '/z');
    expect(c.subarray(10000, 16000).every((x) => x === 0xcd)).toBe(true);
    expect(zeros(c.subarray(16000))).toBe(true);
  });

  it('fallocate refuses bad modes and arguments', async () => {
    put(f, '/f', Buffer.alloc(BS, 1));
    expect(await acode(f.fallocate('/f', PUNCH, 0, BS))).toBe('EOPNOTSUPP');
    expect(await acode(f.fallocate('/f', uapi.FALLOC_FL_COLLAPSE_RANGE, 0, BS))).toBe('EOPNOTSUPP');
    expect(await acode(f.fallocate('/f', 0x40, 0, BS))).toBe('EOPNOTSUPP');
    expect(await acode(f.fallocate('/f', 0, 0, 0))).toBe('EINVAL');
    expect(await acode(f.fallocate('/f', 0, -1, 10))).toBe('EINVAL');
    f.mkdir('/d', 0o755, ROOT_CALLER);
    expect(await acode(f.fallocate('/d', 0, 0, BS))).toBe('ENODEV');
    expect(get(f, '/f').every((x) => x === 1)).toBe(true);
  });

  it('unaligned sequential appends stay contiguous', () => {
    // Free space at the start of the data area, so a wrong goal shows.
    put(f, '/gap', Buffer.alloc(16 * BS, 1));
    put(f, '/log', Buffer.alloc(6000, 2));
    f.unlink('/gap');
    for (let i = 1; i < 8; i++) put(f, '/log', Buffer.alloc(6000, 2), i * 6000);
    expect(get(f, '/log').every((x) => x === 2)).toBe(true);
    expect(extents(f, '/log')).toHaveLength(1);
  });
});

describe('stores into blocks a write makes new', () => {
  /** Run fn with the region's stores recorded as [region offset, length] in bytes. */
  function stores(m: Mounted, fn: () => void | Promise<void>): Promise<Array<[number, number]>> | Array<[number, number]> {
    const r = m.region, got: Array<[number, number]> = [];
    const write = r.write.bind(r), zero = r.zero.bind(r);
    r.write = (off, src, srcOff, len, fresh) => { got.push([off, len]); write(off, src, srcOff, len, fresh); };
    r.zero = (off, len, fresh) => { got.push([off, len]); zero(off, len, fresh); };
    const done = () => { r.write = write; r.zero = zero; return got; };
    const res = fn();
    return res instanceof Promise ? res.then(done) : done();
  }
  /** The stores that fall in p's blocks. */
  const dataStores = (m: Mounted, p: string, got: Array<[number, number]>) =>
    got.filter(([o]) => m.fs.resolve(p).bmap.extents.some((x) => o >= x.regionBlock * BS && o < (x.regionBlock + x.len) * BS));

  it('are whole blocks, data and zeroes, so the host never reads a page to merge a partial store', async () => {
    const m = mount(region());
    const f = m.fs;
    const h = f.create('/j', 0o644, C.O_RDWR, ROOT_CALLER);
    const head = randomBytes(512), mid = randomBytes(3 * BS), tail = randomBytes(100);
    let got = stores(m, () => { f.write(h.fh, '/j', head, 512, 28); }) as Array<[number, number]>;   // part of one new block
    expect(dataStores(m, '/j', got)).toEqual([[m.fs.resolve('/j').bmap.extents[0].regionBlock * BS, BS]]);
    got = stores(m, () => { f.write(h.fh, '/j', Buffer.concat([mid, tail]), 3 * BS + 100, BS + 1000); }) as Array<[number, number]>;
    for (const [o, l] of dataStores(m, '/j', got)) expect([o % BS, l % BS], `store [${o}, +${l})`).toEqual([0, 0]);
    const u = f.create('/u', 0o644, C.O_RDWR, ROOT_CALLER);
    await f.fallocate('/u', 0, 0, 8 * BS);                             // unwritten blocks
    expect(m.fs.resolve('/u').bmap.extents[0].flags & EXT_UNWRITTEN).toBeTruthy();
    got = await stores(m, () => { f.write(u.fh, '/u', tail, 100, 2 * BS + 7); });
    expect(dataStores(m, '/u', got).length).toBeGreaterThan(0);
    for (const [o, l] of dataStores(m, '/u', got)) expect([o % BS, l % BS], `store [${o}, +${l})`).toEqual([0, 0]);
    f.release(h.fh); f.release(u.fh);
    const j = get(f, '/j');
    expect(j.length).toBe(BS + 1000 + 3 * BS + 100);
    expect(zeros(j.subarray(0, 28))).toBe(true);
    expect(j.subarray(28, 540).equals(head)).toBe(true);
    expect(zeros(j.subarray(540, BS + 1000))).toBe(true);
    expect(j.subarray(BS + 1000).equals(Buffer.concat([mid, tail]))).toBe(true);
    const v = get(f, '/u');
    expect(zeros(v.subarray(0, 2 * BS + 7))).toBe(true);
    expect(v.subarray(2 * BS + 7, 2 * BS + 107).equals(tail)).toBe(true);
    expect(zeros(v.subarray(2 * BS + 107))).toBe(true);
    unmount(m);
    const again = mount(path.join(dir, 'r.pmem'));
    expect(get(again.fs, '/j').equals(j)).toBe(true);
    expect(get(again.fs, '/u').equals(v)).toBe(true);
  });
});

describe('ENOSPC on a small region', () => {
  let m: Mounted, f: PmemFs;
  beforeEach(() => { m = mount(region(8 * MiB)); f = m.fs; });

  it('leaves the file unchanged and deleting frees the space', async () => {
    const empty = f.statfs();
    // superblock, bitmap, 64 inode-table blocks, a 64-block journal, the backup superblock
    expect(empty.blocks).toBe(2048 - 131);
    expect(f.store.ilistBlocks().length).toBe(2);             // the in-core list's index and record block (mkfs)
    expect(empty.bfree).toBe(empty.blocks - 2);
    const data = randomBytes(MiB);
    put(f, '/big', data);
    const st = f.getattr('/big');
    const ext = extents(f, '/big');
    const free = f.statfs().bfree;
    expect(free).toBe(empty.bfree - 256);

    const h = f.open('/big', C.O_RDWR, ROOT_CALLER);
    expect(code(() => f.write(h.fh, '/big', Buffer.alloc(8 * MiB, 0xff), 8 * MiB, MiB / 2))).toBe('ENOSPC');
    f.release(h.fh);
    expect(await acode(f.fallocate('/big', 0, 0, 8 * MiB))).toBe('ENOSPC');
    expect(await acode(f.fallocate('/big', KEEP, MiB, 7 * MiB + BS))).toBe('ENOSPC');

    expect(f.getattr('/big')).toEqual(st);
    expect(extents(f, '/big')).toEqual(ext);
    expect(get(f, '/big').equals(data)).toBe(true);
    expect(f.statfs().bfree).toBe(free);

    // Exactly the available blocks fit; one more does not.
    const avail = f.statfs().bavail;
    put(f, '/fill', Buffer.alloc(avail * BS, 3));
    expect(f.statfs().bavail).toBe(0);
    expect(code(() => put(f, '/fill', Buffer.alloc(1, 3), avail * BS))).toBe('ENOSPC');
    expect(f.getattr('/fill').size).toBe(avail * BS);

    f.unlink('/big');
    f.unlink('/fill');
    expect(f.statfs().bfree).toBe(empty.bfree);
    expect(f.statfs().bavail).toBe(empty.bavail);
  });

  it('deleting still works on a full filesystem: directory forks come from the reserve', () => {
    const empty = f.statfs().bfree;
    f.mkdir('/d', 0o755, ROOT_CALLER);
    for (let i = 0; i < 60; i++) put(f, `/d/a-rather-long-file-name-${i}`, Buffer.alloc(100, i));
    expect(f.resolve('/d').records).not.toBeNull();          // entries in record blocks
    put(f, '/fill', Buffer.alloc(f.statfs().bavail * BS, 1));
    expect(f.statfs().bavail).toBe(0);
    for (let i = 0; i < 60; i++) f.unlink(`/d/a-rather-long-file-name-${i}`);
    expect(f.readdir('/d')).toEqual(['.', '..']);
    // An emptied directory keeps its record blocks (as ext4 keeps directory blocks) until it goes.
    const dirBlocks = f.resolve('/d').records!.allBlocks().length;
    expect(dirBlocks).toBeGreaterThanOrEqual(2);
    f.unlink('/fill');
    expect(f.statfs().bfree).toBe(empty - dirBlocks);
    f.rmdir('/d');
    expect(f.statfs().bfree).toBe(empty);
  });

  it('ZERO_RANGE that runs out of space leaves the file unchanged', async () => {
    const data = Buffer.alloc(4 * BS, 0xab);
    put(f, '/z', data);
    const ext = extents(f, '/z');
    const free = f.statfs().bfree;
    // Whole blocks 0..3 are mapped; the rest of the range needs more blocks than exist.
    expect(await acode(f.fallocate('/z', ZERO, 0, 16 * MiB))).toBe('ENOSPC');
    expect(f.getattr('/z').size).toBe(4 * BS);
    expect(extents(f, '/z')).toEqual(ext);
    expect(get(f, '/z').equals(data)).toBe(true);
    expect(f.statfs().bfree).toBe(free);
  });
});

describe('namespace', () => {
  let m: Mounted, f: PmemFs;
  beforeEach(() => { m = mount(region()); f = m.fs; });

  it('hard links share data and the link count', () => {
    put(f, '/a', Buffer.from('hello'));
    f.link('/a', '/b');
    const a = f.getattr('/a'), b = f.getattr('/b');
    expect(b.ino).toBe(a.ino);
    expect(a.nlink).toBe(2);
    put(f, '/b', Buffer.from('J'));
    expect(get(f, '/a').toString()).toBe('Jello');
    f.unlink('/a');
    expect(code(() => f.getattr('/a'))).toBe('ENOENT');
    expect(f.getattr('/b').nlink).toBe(1);
    expect(get(f, '/b').toString()).toBe('Jello');
    f.mkdir('/d', 0o755, ROOT_CALLER);
    expect(code(() => f.link('/d', '/d2'))).toBe('EPERM');
    expect(code(() => f.link('/b', '/b'))).toBe('EEXIST');
  });

  it('rename over an existing file replaces it and frees the old one', () => {
    put(f, '/a', Buffer.alloc(2 * BS, 0xa));
    put(f, '/b', Buffer.alloc(3 * BS, 0xb));
    const aIno = f.getattr('/a').ino, bIno = f.getattr('/b').ino;
    const free = f.statfs().bfree;
    f.rename('/a', '/b');
    expect(f.readdir('/')).toEqual(['.', '..', 'b']);
    expect(f.getattr('/b').ino).toBe(aIno);
    expect(f.getattr('/b').nlink).toBe(1);
    expect(get(f, '/b').equals(Buffer.alloc(2 * BS, 0xa))).toBe(true);
    expect(f.inodeOf(bIno)).toBeUndefined();
    expect(f.statfs().bfree).toBe(free + 3);
    expect(code(() => f.rename('/a', '/c'))).toBe('ENOENT');
  });

  it('rename of a directory moves its link count between parents', () => {
    f.mkdir('/p', 0o755, ROOT_CALLER);
    f.mkdir('/q', 0o755, ROOT_CALLER);
    f.mkdir('/p/d', 0o755, ROOT_CALLER);
    expect(f.getattr('/p').nlink).toBe(3);
    f.rename('/p/d', '/q/d');
    expect(f.getattr('/p').nlink).toBe(2);
    expect(f.getattr('/q').nlink).toBe(3);
    expect(f.getattr('/').nlink).toBe(4);
    f.rename('/q', '/qq');                      // '/q' is a prefix of '/qq' but not its ancestor
    expect(f.readdir('/qq')).toEqual(['.', '..', 'd']);
  });

  it('rename of a directory into itself is EINVAL; type clashes and non-empty targets fail', () => {
    f.mkdir('/d', 0o755, ROOT_CALLER);
    f.mkdir('/d/e', 0o755, ROOT_CALLER);
    f.mkdir('/full', 0o755, ROOT_CALLER);
    put(f, '/full/x', Buffer.from('x'));
    put(f, '/file', Buffer.from('f'));
    expect(code(() => f.rename('/d', '/d/sub'))).toBe('EINVAL');
    expect(code(() => f.rename('/d', '/d/e/sub'))).toBe('EINVAL');
    expect(code(() => f.rename('/d', '/full'))).toBe('ENOTEMPTY');
    expect(code(() => f.rename('/d', '/file'))).toBe('ENOTDIR');
    expect(code(() => f.rename('/file', '/d'))).toBe('EISDIR');
    expect(f.readdir('/d')).toEqual(['.', '..', 'e']);
    expect(f.readdir('/').sort()).toEqual(['.', '..', 'd', 'file', 'full']);
  });

  it('by inode: the ancestry check follows renames, a rename onto itself is a no-op, a failed rename moves nothing', () => {
    f.mkdir('/a', 0o755, ROOT_CALLER);
    f.mkdir('/a/b', 0o755, ROOT_CALLER);
    f.mkdir('/c', 0o755, ROOT_CALLER);
    const a = f.resolve('/a'), b = f.resolve('/a/b'), c = f.resolve('/c'), root = f.root();
    f.renameAt(a, 'b', c, 'b');                                        // /c/b now
    expect(f.parentOf(b)).toBe(c);
    expect(code(() => f.renameAt(root, 'c', b, 'x'))).toBe('EINVAL');  // /c into /c/b
    expect(f.readdir('/').sort()).toEqual(['.', '..', 'a', 'c']);       // nothing moved
    f.renameAt(c, 'b', c, 'b');                                        // onto itself
    expect(f.readdir('/c')).toEqual(['.', '..', 'b']);
    f.renameAt(root, 'a', b, 'a');                                     // /a into /c/b: fine now
    expect(f.readdir('/c/b')).toEqual(['.', '..', 'a']);
    expect(f.parentOf(f.resolve('/c/b/a'))).toBe(b);
    expect(code(() => f.lookup(b, 'x'))).toBe('ENOENT');
  });

  it('rmdir of a non-empty directory is ENOTEMPTY; unlink/rmdir type errors', () => {
    f.mkdir('/d', 0o755, ROOT_CALLER);
    put(f, '/d/f', Buffer.from('x'));
    expect(code(() => f.rmdir('/d'))).toBe('ENOTEMPTY');
    expect(code(() => f.unlink('/d'))).toBe('EISDIR');
    expect(code(() => f.rmdir('/d/f'))).toBe('ENOTDIR');
    expect(code(() => f.rmdir('/nope'))).toBe('ENOENT');
    expect(f.getattr('/').nlink).toBe(3);
    f.unlink('/d/f');
    f.rmdir('/d');
    expect(f.getattr('/').nlink).toBe(2);
    expect(f.readdir('/')).toEqual(['.', '..']);
  });

  it('create and mkdir report EEXIST, ENOENT and ENOTDIR', () => {
    put(f, '/f', Buffer.from('x'));
    expect(code(() => f.mkdir('/f', 0o755, ROOT_CALLER))).toBe('EEXIST');
    expect(code(() => f.create('/f', 0o644, C.O_RDWR, ROOT_CALLER))).toBe('EEXIST');
    expect(code(() => f.mkdir('/no/d', 0o755, ROOT_CALLER))).toBe('ENOENT');
    expect(code(() => f.mkdir('/f/d', 0o755, ROOT_CALLER))).toBe('ENOTDIR');
    expect(code(() => f.mkdir('/' + 'n'.repeat(256), 0o755, ROOT_CALLER))).toBe('ENAMETOOLONG');
  });

  it('new inodes take the caller’s ids and the mode bits given', () => {
    f.mkdir('/d', 0o750, USER);
    const h = f.create('/d/f', 0o640, C.O_RDWR, USER);
    f.release(h.fh);
    const st = f.getattr('/d/f');
    expect(st.mode).toBe(C.S_IFREG | 0o640);
    expect([st.uid, st.gid]).toEqual([1000, 1000]);
    expect(f.getattr('/d').mode).toBe(C.S_IFDIR | 0o750);
  });
});

describe('extended attributes', () => {
  let m: Mounted, f: PmemFs;
  beforeEach(() => { m = mount(region()); f = m.fs; put(f, '/f', Buffer.from('data')); });

  it('set, get, list and remove', () => {
    f.setxattr('/f', 'user.a', Buffer.from('v1'), 0);
    f.setxattr('/f', 'trusted.b', Buffer.from([0, 1, 2]), 0);
    expect(f.getxattr('/f', 'user.a')!.toString()).toBe('v1');
    expect(f.getxattr('/f', 'trusted.b')).toEqual(Buffer.from([0, 1, 2]));
    expect(f.listxattr('/f').sort()).toEqual(['trusted.b', 'user.a']);
    f.removexattr('/f', 'user.a');
    expect(f.getxattr('/f', 'user.a')).toBeNull();
    expect(f.listxattr('/f')).toEqual(['trusted.b']);
    expect(code(() => f.removexattr('/f', 'user.a'))).toBe('ENODATA');
  });

  it('XATTR_CREATE fails on an existing name, XATTR_REPLACE on a missing one, changing nothing', () => {
    const XATTR_CREATE = 1, XATTR_REPLACE = 2;
    f.setxattr('/f', 'user.a', Buffer.from('v1'), XATTR_CREATE);
    expect(code(() => f.setxattr('/f', 'user.a', Buffer.from('v2'), XATTR_CREATE))).toBe('EEXIST');
    expect(f.getxattr('/f', 'user.a')!.toString()).toBe('v1');
    expect(code(() => f.setxattr('/f', 'user.b', Buffer.from('v'), XATTR_REPLACE))).toBe('ENODATA');
    expect(f.listxattr('/f')).toEqual(['user.a']);
    f.setxattr('/f', 'user.a', Buffer.from('v3'), XATTR_REPLACE);
    expect(f.getxattr('/f', 'user.a')!.toString()).toBe('v3');
  });

  it('refuses other namespaces and bad sizes', () => {
    expect(code(() => f.setxattr('/f', 'security.x', Buffer.from('v'), 0))).toBe('EOPNOTSUPP');
    // Reading one is "no such attribute", as ext4 answers with no LSM: the kernel asks for
    // security.capability before writes (file_remove_privs) and must hear that there is none.
    expect(f.getxattr('/f', 'security.capability')).toBeNull();
    expect(f.getxattr('/f', 'system.nfs4_acl')).toBeNull();
    expect(code(() => f.setxattr('/f', 'user.' + 'n'.repeat(251), Buffer.from('v'), 0))).toBe('ERANGE');
    expect(code(() => f.setxattr('/f', 'user.big', Buffer.alloc(65537), 0))).toBe('E2BIG');
    expect(f.listxattr('/f')).toEqual([]);
  });

  it('user.pmemfs.state is virtual, read-only and never listed', () => {
    const line = f.getxattr('/f', uapi.XATTR_STATE)!.toString();
    expect(line).toBe('sealed=none pins=0 busy_pages=0 extents=1 leases=0 size=4 blocks=1');
    expect(code(() => f.setxattr('/f', uapi.XATTR_STATE, Buffer.from('x'), 0))).toBe('EPERM');
    expect(code(() => f.removexattr('/f', uapi.XATTR_STATE))).toBe('EPERM');
    expect(f.listxattr('/f')).toEqual([]);
    expect(f.resolve('/f').xattrs.size).toBe(0);
  });

  it('trusted.pmemfs.sealed needs the seal service', () => {
    expect(f.getxattr('/f', uapi.XATTR_SEALED)).toBeNull();
    expect(code(() => f.setxattr('/f', uapi.XATTR_SEALED, Buffer.from('1'), 0))).toBe('EOPNOTSUPP');
    expect(code(() => f.setxattr('/f', uapi.XATTR_SEALED, Buffer.from('0'), 0))).toBe('EINVAL');
  });
});

describe('persistence', () => {
  /** Everything a user can observe of the paths, for before/after comparison. */
  function snapshot(f: PmemFs, paths: string[]) {
    return paths.map((p) => {
      const st = f.getattr(p);
      const inode = f.resolve(p);
      return {
        p, st,
        data: inode.isReg ? get(f, p).toString('hex') : null,
        link: inode.isSymlink ? f.readlink(p) : null,
        dir: inode.isDir ? f.readdir(p).sort() : null,
        xattrs: Object.fromEntries(f.listxattr(p).map((n) => [n, f.getxattr(p, n)!.toString('hex')])),
        extents: inode.bmap.toRecords(),
      };
    });
  }

  it('everything survives unmount and mount', async () => {
    const p = region();
    let m = mount(p);
    let f = m.fs;
    const data = randomBytes(100_000);
    put(f, '/data', data, 3);
    await f.fallocate('/data', KEEP, 200_000, 3 * BS);
    f.mkdir('/dir', 0o700, USER);
    for (let i = 0; i < 40; i++) put(f, `/dir/entry-with-a-long-name-${i}`, Buffer.from(String(i)), 0, USER);
    expect(f.resolve('/dir').records).not.toBeNull();          // large enough to live out of line
    f.chown('/data', 1234, 5678);
    f.chmod('/data', 0o4751);
    f.link('/data', '/dir/hard');
    f.symlink('../some/where/ü', '/sym', USER);
    f.mknod('/chr', C.S_IFCHR | 0o600, 0x0103, ROOT_CALLER);
    f.setxattr('/data', 'user.small', Buffer.from('v'), 0);
    f.setxattr('/data', 'trusted.big', randomBytes(2 * INLINE_FORK_MAX), 0);
    f.utimens('/data', { sec: 1_000_000_000, nsec: 1 }, { sec: 1_500_000_000, nsec: 123_456_789 });
    const paths = ['/', '/data', '/dir', '/dir/hard', '/dir/entry-with-a-long-name-7', '/sym', '/chr'];
    const before = snapshot(f, paths);
    expect(before[1].st.nlink).toBe(2);
    expect(before[1].st.mode).toBe(C.S_IFREG | 0o4751);
    const stat0 = f.statfs();
    unmount(m);

    expect(checkRegion(p, false).problems).toEqual([]);
    m = mount(p);
    f = m.fs;
    expect(m.recovered).toBe(false);
    expect(snapshot(f, paths)).toEqual(before);
    expect(f.getattr('/data').mtime).toEqual({ sec: 1_500_000_000, nsec: 123_456_789 });
    expect(f.getattr('/data').atime).toEqual({ sec: 1_000_000_000, nsec: 1 });
    expect(f.getattr('/data')).toMatchObject({ uid: 1234, gid: 5678, size: 100_003 });
    expect(f.readlink('/sym')).toBe('../some/where/ü');
    expect(f.getattr('/chr').rdev).toBe(0x0103);
    expect(f.statfs()).toEqual(stat0);
    unmount(m);
  });

  it('a region left DIRTY mounts with recovered=true and checks clean after a proper unmount', () => {
    const p = region();
    let m = mount(p);
    const data = randomBytes(5 * BS + 7);
    put(m.fs, '/f', data);
    m.fs.mkdir('/d', 0o755, ROOT_CALLER);
    put(m.fs, '/d/g', Buffer.alloc(BS, 9));
    m.fs.unlink('/d/g');
    const stat0 = m.fs.statfs();
    m.fs.fsync();
    crash(m);

    const dirty = checkRegion(p, false);
    expect(dirty.problems.some((p) => p.startsWith('region was not unmounted cleanly'))).toBe(true);

    m = mount(p);
    expect(m.recovered).toBe(true);
    expect(get(m.fs, '/f').equals(data)).toBe(true);
    expect(m.fs.readdir('/d')).toEqual(['.', '..']);
    expect(m.fs.statfs().bfree).toBe(stat0.bfree);
    unmount(m);
    expect(checkRegion(p, false)).toEqual({ problems: [], repaired: [], uncorrected: [] });
    m = mount(p);
    expect(m.recovered).toBe(false);
    unmount(m);
  });

  it('a crash loses what no commit covered, and only that', () => {
    const p = region();
    let m = mount(p);
    put(m.fs, '/kept', Buffer.alloc(3 * BS, 1));
    m.fs.rename('/kept', '/kept2');
    m.fs.fsync();
    put(m.fs, '/lost', Buffer.alloc(BS, 2));
    m.fs.rename('/kept2', '/kept3');
    crash(m);
    m = mount(p);
    expect(m.recovered).toBe(true);
    expect(m.fs.readdir('/')).toEqual(['.', '..', 'kept2']);
    expect(get(m.fs, '/kept2').equals(Buffer.alloc(3 * BS, 1))).toBe(true);
    unmount(m);
    expect(checkRegion(p, false).problems).toEqual([]);
  });

  it('an orphan left by a crash is freed at the next mount', () => {
    const p = region();
    let m = mount(p);
    const free0 = m.fs.statfs().bfree;
    const inodes0 = m.fs.store.inodes.size;
    const h = m.fs.create('/o', 0o644, C.O_RDWR, ROOT_CALLER);
    m.fs.write(h.fh, '/o', Buffer.alloc(4 * BS, 1), 4 * BS, 0);
    m.fs.unlink('/o');
    expect(m.fs.resolve('/').dirents!.has('o')).toBe(false);
    expect(m.fs.statfs().bfree).toBe(free0 - 4);
    m.fs.fsync();                       // the orphan is on media
    crash(m);

    m = mount(p);
    expect(m.recovered).toBe(true);
    expect(m.fs.statfs().bfree).toBe(free0);
    expect(m.fs.store.inodes.size).toBe(inodes0);
    unmount(m);
    expect(checkRegion(p, false).problems).toEqual([]);
  });

  it('mount refuses a file that is not a pmemfs region, or a truncated one', () => {
    const junk = path.join(dir, 'junk');
    fs.writeFileSync(junk, Buffer.alloc(MiB));
    expect(() => mount(junk)).toThrow(/not a pmemfs region/);
    fs.writeFileSync(junk, Buffer.alloc(100));
    expect(() => mount(junk)).toThrow(/too short/);
    const p = region(8 * MiB);
    fs.truncateSync(p, 4 * MiB);
    expect(() => mount(p)).toThrow(/truncated/);
  });

  it('a read-only mount of a crashed region sees the journal replayed, in memory only', () => {
    const p = region();
    let m = mount(p);
    put(m.fs, '/f', Buffer.from('abc'));
    m.fs.mkdir('/d', 0o755, ROOT_CALLER);
    m.fs.fsync();
    m.fs.fsync();                          // the first commit's checkpoint is durable too
    m.region.recordUnflushed();
    m.fs.rename('/f', '/d/g');
    m.fs.fsync();
    // The power fails right after that commit: its checkpoint never reached the home blocks.
    const img = path.join(dir, 'crash.pmem');
    expect(m.region.crashImage(img, () => true).length).toBeGreaterThan(0);
    crash(m);
    // The image needs the replay: the log's committed images differ from what their homes hold.
    const r = Region.open(img, { readOnly: true });
    const scans = engine(readSuperblock(img), r).journal.scanAreas();
    const txs = scans.flatMap((s) => (s.state === 'committed' ? [s.tx] : []));
    expect(txs.length).toBeGreaterThan(0);
    expect(txs.some((tx) => tx.homes.some((h, i) => !r.readBuf(regionOff(h * BS), BS).equals(tx.images[i])))).toBe(true);
    r.close();
    const before = fs.readFileSync(img);
    m = mount(img, { readOnly: true });
    expect(m.recovered).toBe(true);
    expect(m.fs.readdir('/d')).toEqual(['.', '..', 'g']);
    expect(get(m.fs, '/d/g').toString()).toBe('abc');
    unmount(m);
    expect(fs.readFileSync(img).equals(before)).toBe(true);     // nothing written
    m = mount(img);
    expect(m.fs.readdir('/d')).toEqual(['.', '..', 'g']);
    unmount(m);
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it('a read-only mount refuses every change with EROFS', async () => {
    const p = region();
    let m = mount(p);
    put(m.fs, '/f', Buffer.from('abc'));
    unmount(m);
    m = mount(p, { readOnly: true });
    const f = m.fs;
    expect(get(f, '/f').toString()).toBe('abc');
    expect(code(() => f.open('/f', C.O_RDWR, ROOT_CALLER))).toBe('EROFS');
    expect(code(() => f.mkdir('/d', 0o755, ROOT_CALLER))).toBe('EROFS');
    expect(code(() => f.unlink('/f'))).toBe('EROFS');
    expect(code(() => f.setxattr('/f', 'user.a', Buffer.from('v'), 0))).toBe('EROFS');
    expect(await acode(f.truncate('/f', 0))).toBe('EROFS');
    unmount(m);
    expect(checkRegion(p, false).problems).toEqual([]);
  });
});

describe('orphans', () => {
  it('an inode unlinked while open lives until its last release', () => {
    const m = mount(region());
    const f = m.fs;
    const free0 = f.statfs().bfree;
    const h = f.create('/o', 0o644, C.O_RDWR, ROOT_CALLER);
    f.write(h.fh, '/o', Buffer.alloc(2 * BS, 0x42), 2 * BS, 0);
    const h2 = f.open('/o', C.O_RDONLY, ROOT_CALLER);
    const ino = f.getattr('/o').ino;
    f.unlink('/o');
    expect(code(() => f.getattr('/o'))).toBe('ENOENT');
    const inode = f.inodeOf(ino)!;
    expect(inode).toBeDefined();
    expect(inode.orphan).toBe(true);
    expect(inode.openCount).toBe(2);
    expect(f.statfs().bfree).toBe(free0 - 2);
    // Still readable and writable through the handles.
    f.write(h.fh, '/o', Buffer.from('Q'), 1, 0);
    const b = Buffer.alloc(2 * BS);
    expect(f.read(h2.fh, b, b.length, 0)).toBe(2 * BS);
    expect(b[0]).toBe(0x51);
    expect(b[1]).toBe(0x42);
    f.release(h.fh);
    expect(f.inodeOf(ino)).toBeDefined();
    f.release(h2.fh);
    expect(f.inodeOf(ino)).toBeUndefined();
    expect(f.statfs().bfree).toBe(free0);
    unmount(m);
  });
});

describe('what the FUSE transport asks of the engine', () => {
  let m: Mounted, f: PmemFs;
  beforeEach(() => { m = mount(region()); f = m.fs; });

  it('mapRead gives the region ranges behind a read, merged, zeroes as -1, short at EOF', async () => {
    const data = randomBytes(2 * BS);
    put(f, '/s', data, 0);
    put(f, '/s', data.subarray(0, BS), 8 * BS);         // hole in blocks 2..7
    await f.fallocate('/s', KEEP, 10 * BS, 2 * BS);      // unwritten blocks past EOF: never read
    const inode = f.resolve('/s');
    const out = new Float64Array(64);
    const k = mapRead(f.data, inode, 100 * BS, 100, out, 4, 20);
    expect(k).toBe(3);
    const segs = Array.from({ length: k }, (_, i) => [out[4 + 2 * i], out[5 + 2 * i]]);
    expect(segs[0][1]).toBe(2 * BS - 100);
    expect(segs[1]).toEqual([-1, 6 * BS]);
    expect(segs[2][1]).toBe(BS);
    expect(segs.reduce((a, s) => a + s[1], 0)).toBe(inode.size - 100);
    // The bytes at those region offsets are the file's.
    const back = Buffer.alloc(inode.size - 100);
    let at = 0;
    for (const [off, len] of segs) {
      if (off === -1) back.fill(0, at, at + len); else m.region.read(regionOff(off), back, at, len);
      at += len;
    }
    expect(back.equals(get(f, '/s', 100))).toBe(true);
    expect(mapRead(f.data, inode, BS, inode.size, out, 0, 20)).toBe(0);
    expect(mapRead(f.data, inode, 100 * BS, 0, out, 0, 2)).toBe(-1);   // needs 3 pairs: the caller copies instead
  });

  it('seekData finds data and holes as Linux SEEK_DATA/SEEK_HOLE do', async () => {
    put(f, '/h', randomBytes(BS), 0);
    put(f, '/h', randomBytes(2 * BS), 16 * BS);
    await f.fallocate('/h', 0, 4 * BS, 2 * BS);          // unwritten: a hole to SEEK_DATA
    await f.truncate('/h', 32 * BS);
    const i = f.resolve('/h');
    expect(seekData(f.data, i, 0, 'data')).toBe(0);
    expect(seekData(f.data, i, 10, 'hole')).toBe(BS);
    expect(seekData(f.data, i, BS, 'data')).toBe(16 * BS);
    expect(seekData(f.data, i, 16 * BS + 5, 'data')).toBe(16 * BS + 5);
    expect(seekData(f.data, i, 16 * BS, 'hole')).toBe(18 * BS);
    expect(seekData(f.data, i, 20 * BS, 'hole')).toBe(20 * BS);
    expect(code(() => seekData(f.data, i, 18 * BS, 'data'))).toBe('ENXIO');
    expect(code(() => seekData(f.data, i, 32 * BS, 'hole'))).toBe('ENXIO');
  });

  it('lookupOrNull answers a miss with null, and still refuses bad names', () => {
    f.mkdir('/d', 0o755, ROOT_CALLER);
    const d = f.resolve('/d');
    expect(f.lookupOrNull(d, 'nope')).toBeNull();
    put(f, '/d/x', Buffer.from('x'));
    expect(f.lookupOrNull(d, 'x')?.ino).toBe(f.resolve('/d/x').ino);
    expect(code(() => f.lookupOrNull(d, 'n'.repeat(256)))).toBe('ENAMETOOLONG');
    expect(code(() => f.lookupOrNull(f.resolve('/d/x'), 'y'))).toBe('ENOTDIR');
  });

  it('an inode number the kernel still references is not reused until it is forgotten', () => {
    put(f, '/a', Buffer.from('a'));
    const ino = f.resolve('/a').ino;
    f.kernelRefs.set(ino, 1);
    f.unlink('/a');
    put(f, '/b', Buffer.from('b'));
    expect(f.resolve('/b').ino).not.toBe(ino);
    f.kernelRefs.delete(ino);
    put(f, '/c', Buffer.from('c'));
    expect(f.resolve('/c').ino).toBe(ino);
  });

  it('write takes its bytes from an offset in a shared buffer (the receive buffer), into holes and over data', () => {
    const big = randomBytes(5 * BS);
    const h = f.create('/w', 0o644, C.O_RDWR, ROOT_CALLER);
    expect(f.write(h.fh, '/w', big, 2 * BS + 7, 100, ROOT_CALLER, 333)).toBe(2 * BS + 7);   // fills holes
    expect(f.write(h.fh, '/w', big, 50, 200, ROOT_CALLER, 4000)).toBe(50);                  // overwrites
    f.release(h.fh);
    const want = Buffer.alloc(100 + 2 * BS + 7);
    big.copy(want, 100, 333, 333 + 2 * BS + 7);
    big.copy(want, 200, 4000, 4050);
    expect(get(f, '/w').equals(want)).toBe(true);
  });

  it('externalChange reaches the transport hook', () => {
    const seen: [number, boolean][] = [];
    f.onExternalChange = (i, data) => seen.push([i.ino, data]);
    put(f, '/e', Buffer.from('e'));
    f.externalChange(f.resolve('/e'), true);
    expect(seen).toEqual([[f.resolve('/e').ino, true]]);
  });
});

describe('system.posix_acl_access', () => {
  let m: Mounted, f: PmemFs;
  beforeEach(() => { m = mount(region()); f = m.fs; });
  const acl = (...e: [number, number][]) => {
    const b = Buffer.alloc(4 + 8 * e.length);
    b.writeUInt32LE(2, 0);
    e.forEach(([tag, perm], i) => { b.writeUInt16LE(tag, 4 + 8 * i); b.writeUInt16LE(perm, 6 + 8 * i); b.writeUInt32LE(0xffffffff, 8 + 8 * i); });
    return b;
  };

  it('an ACL equivalent to the mode bits is the chmod it means; others are EOPNOTSUPP; only the owner', () => {
    put(f, '/a', Buffer.from('a'), 0, USER);
    f.setxattr('/a', 'system.posix_acl_access', acl([1, 7], [4, 5], [0x20, 0]), 0, USER);
    expect(f.getattr('/a').mode & 0o7777).toBe(0o750);
    expect(code(() => f.setxattr('/a', 'system.posix_acl_access', acl([1, 7], [2, 7], [4, 5], [0x10, 7], [0x20, 0]), 0, USER))).toBe('EOPNOTSUPP');
    expect(code(() => f.setxattr('/a', 'system.posix_acl_access', Buffer.from([1, 2, 3]), 0, USER))).toBe('EINVAL');
    expect(code(() => f.setxattr('/a', 'system.posix_acl_access', acl([1, 6], [4, 4], [0x20, 4]), 0, { pid: 1, uid: 2000, gid: 2000 }))).toBe('EPERM');
    expect(f.getattr('/a').mode & 0o7777).toBe(0o750);
    expect(f.getxattr('/a', 'system.posix_acl_access')).toBeNull();   // ENODATA: the mode bits are the whole ACL
    f.mkdir('/d', 0o755, USER);
    expect(code(() => f.removexattr('/d', 'system.posix_acl_default'))).toBe('ENODATA');   // cp -a clears it on every directory
    expect(f.getxattr('/d', 'system.posix_acl_default')).toBeNull();
  });
});
