/**
 * The permission table (src/op/permissions.ts) enforced at ioctl dispatch,
 * without a mount: every pmemfs ioctl, issued through {the owner's
 * read-write handle, the owner's read-only handle, another user's read-only
 * handle, no file handle (a directory's)}, gets the errno the table names,
 * and a refusal leaves the file's bytes and block map as they were. The
 * clone source goes by descriptor (a fake /proc: fd → one of the test's
 * handles). The real thing, through FUSE and setpriv, is
 * test/shell/72-permissions.sh.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsError } from '../../src/errors.js';
import { IOCTL_RULES } from '../../src/op/permissions.js';
import { MAX_PINS_PER_USER } from '../../src/layout/busy.js';
import { MAX_LEASES_PER_USER } from '../../src/seal/seal.js';
import { PmemService, type ServiceOptions } from '../../src/service.js';
import * as uapi from '../../src/uapi.js';
import { ROOT_CALLER, type Caller, type Handle } from '../../src/vfs/fs.js';
import { formatRegion } from '../../src/vfs/mount.js';

const BS = 4096;
const LOG = pino({ level: 'silent' });
const OPTS: ServiceOptions = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 300, leaseBreakMs: 1000 };
const OWNER: Caller = { pid: 4242, uid: 1000, gid: 1000 };
const OTHER: Caller = { pid: 4343, uid: 2000, gid: 2000 };

let dir: string;
let svc: PmemService;
/** The fake descriptor table: fd → [pid, handle]. */
let fds: Map<number, { pid: number; h: Handle }>;

beforeEach(async () => {
  dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-perm-');
  const p = path.join(dir, 'r.pmem');
  formatRegion(p, { size: 16 << 20, blockSize: BS, label: 'perm' });
  svc = new PmemService(p, OPTS, LOG);
  fds = new Map();
  svc.sourceFd = (caller, fd, op) => {
    const e = fds.get(fd);
    if (!e || e.pid !== caller.pid) throw new FsError('EBADF', op, undefined, `no descriptor ${fd}`);
    if ((e.h.flags & 3) === C.O_WRONLY) throw new FsError('EBADF', op, undefined, 'not open for reading');
    return { ino: e.h.inode.ino };
  };
  const f = svc.fs;
  f.mkdir('/home', 0o755, ROOT_CALLER);
  f.mkdir('/home/owner', 0o755, OWNER);
  const h = f.create('/home/owner/f', 0o644, C.O_RDWR, OWNER);
  f.write(h.fh, '/home/owner/f', Buffer.alloc(4 * BS, 0x5a), 4 * BS, 0, OWNER);
  await f.truncate('/home/owner/f', 6 * BS);   // blocks 4-5 are a hole
  f.release(h.fh);
  const s = f.create('/home/owner/src', 0o644, C.O_RDWR, OWNER);
  f.write(s.fh, '/home/owner/src', Buffer.alloc(2 * BS, 0x33), 2 * BS, 0, OWNER);
  f.release(s.fh);
});
afterEach(() => {
  try { svc.close(); } catch { /* broken by the test */ }
  fs.rmSync(dir, { recursive: true, force: true });
});

type Who = 'owner-rw' | 'owner-ro' | 'other-ro' | 'no-handle';
const WHO: Who[] = ['owner-rw', 'owner-ro', 'other-ro', 'no-handle'];

function handleFor(who: Who): { caller: Caller; handle: Handle | null } {
  const f = svc.fs, inode = f.resolve('/home/owner/f');
  if (who === 'no-handle') return { caller: OTHER, handle: null };
  const caller = who === 'other-ro' ? OTHER : OWNER;
  const flags = who === 'owner-rw' ? C.O_RDWR : C.O_RDONLY;
  return { caller, handle: f.openInode(inode, flags, caller) };
}

/** A source descriptor (fd 7) of caller's process, open read-only on /home/owner/src. */
function sourceFd(caller: Caller): bigint {
  fds.set(7, { pid: caller.pid, h: svc.fs.open('/home/owner/src', C.O_RDONLY, caller) });
  return 7n;
}

function payload(cmd: number, caller: Caller): Buffer | null {
  const size = uapi.iocSize(cmd);
  if (!(uapi.iocDir(cmd) & 1)) return null;
  const b = Buffer.alloc(size);
  switch (cmd) {
    case uapi.PMEMFS_IOC_PIN: b.writeBigUInt64LE(0n, uapi.PIN.off); b.writeBigUInt64LE(BigInt(6 * BS), uapi.PIN.len); break;
    case uapi.PMEMFS_IOC_UNPIN: b.writeBigUInt64LE(999n, uapi.UNPIN.id); break;
    case uapi.PMEMFS_IOC_FCOLLAPSE: case uapi.PMEMFS_IOC_FINSERT: case uapi.PMEMFS_IOC_FUNSHARE:
      b.writeBigUInt64LE(0n, uapi.RANGE.off); b.writeBigUInt64LE(BigInt(BS), uapi.RANGE.len); break;
    case uapi.PMEMFS_IOC_REFLINK: b.writeBigInt64LE(sourceFd(caller), uapi.REFLINK.srcFd); break;
    case uapi.PMEMFS_IOC_DEDUPE:
      b.writeBigInt64LE(sourceFd(caller), uapi.DEDUPE.srcFd); b.writeBigUInt64LE(BigInt(BS), uapi.DEDUPE.len); break;
    case uapi.FS_IOC_FSSETXATTR: b.writeUInt32LE(uapi.FS_XFLAG_DAX, uapi.FSXATTR.xflags); break;
  }
  return b;
}

/** The errno (or 'ok') of one ioctl by `who`, and whether the file's bytes and block map stayed as they were. */
async function attempt(cmd: number, who: Who): Promise<{ result: string; unchanged: boolean }> {
  const f = svc.fs, inode = f.resolve('/home/owner/f');
  const before = { bytes: readAll(), map: JSON.stringify(inode.bmap.map(0, 16)), size: inode.size };
  const { caller, handle } = handleFor(who);
  let result = 'ok';
  try {
    await svc.ioctls.dispatch({ caller, inode, path: '/home/owner/f', cmd, handle, input: payload(cmd, caller), outSize: uapi.iocSize(cmd) });
  } catch (e) {
    if (!(e instanceof FsError)) throw e;
    result = e.code;
  }
  const after = { bytes: readAll(), map: JSON.stringify(inode.bmap.map(0, 16)), size: inode.size };
  return { result, unchanged: before.bytes.equals(after.bytes) && before.map === after.map && before.size === after.size };
}

function readAll(): Buffer {
  const f = svc.fs, inode = f.resolve('/home/owner/f');
  const h = f.openInode(inode, C.O_RDONLY, ROOT_CALLER);
  try { const b = Buffer.alloc(inode.size); f.read(h.fh, b, b.length, 0); return b; } finally { f.release(h.fh); }
}

/**
 * What the table says each case gets. 'ok' cases may change the file
 * (that is their job); every other entry must leave it as it was.
 */
const EXPECTED: Record<string, Record<Who, string>> = {
  seal: { 'owner-rw': 'EPERM', 'owner-ro': 'EPERM', 'other-ro': 'EPERM', 'no-handle': 'EPERM' },
  unseal: { 'owner-rw': 'EPERM', 'owner-ro': 'EPERM', 'other-ro': 'EPERM', 'no-handle': 'EPERM' },
  lease: { 'owner-rw': 'ok', 'owner-ro': 'EACCES', 'other-ro': 'EACCES', 'no-handle': 'EACCES' },
  unlease: { 'owner-rw': 'EINVAL', 'owner-ro': 'EINVAL', 'other-ro': 'EINVAL', 'no-handle': 'EINVAL' },
  break: { 'owner-rw': 'EPERM', 'owner-ro': 'EPERM', 'other-ro': 'EPERM', 'no-handle': 'EPERM' },
  pin: { 'owner-rw': 'ok', 'owner-ro': 'EBADF', 'other-ro': 'EBADF', 'no-handle': 'EACCES' },
  unpin: { 'owner-rw': 'EINVAL', 'owner-ro': 'EINVAL', 'other-ro': 'EINVAL', 'no-handle': 'EINVAL' },
  getbmap: { 'owner-rw': 'ok', 'owner-ro': 'ok', 'other-ro': 'ok', 'no-handle': 'ok' },
  region: { 'owner-rw': 'ok', 'owner-ro': 'ok', 'other-ro': 'ok', 'no-handle': 'ok' },
  collapse: { 'owner-rw': 'ok', 'owner-ro': 'EBADF', 'other-ro': 'EBADF', 'no-handle': 'EBADF' },
  insert: { 'owner-rw': 'ok', 'owner-ro': 'EBADF', 'other-ro': 'EBADF', 'no-handle': 'EBADF' },
  unshare: { 'owner-rw': 'ok', 'owner-ro': 'EBADF', 'other-ro': 'EBADF', 'no-handle': 'EBADF' },
  reflink: { 'owner-rw': 'ok', 'owner-ro': 'EBADF', 'other-ro': 'EBADF', 'no-handle': 'EBADF' },
  dedupe: { 'owner-rw': 'ok', 'owner-ro': 'ok', 'other-ro': 'EPERM', 'no-handle': 'EPERM' },
  fsgetxattr: { 'owner-rw': 'ok', 'owner-ro': 'ok', 'other-ro': 'ok', 'no-handle': 'ok' },
  fssetxattr: { 'owner-rw': 'ok', 'owner-ro': 'ok', 'other-ro': 'EPERM', 'no-handle': 'EPERM' },
};

describe('the permission table at ioctl dispatch', () => {
  it('names a rule for every registered ioctl, and the matrix below covers every rule', () => {
    expect(new Set([...IOCTL_RULES.values()].map((r) => r.name))).toEqual(new Set(Object.keys(EXPECTED)));
    for (const cmd of Object.values(uapi.IOCTLS)) expect(IOCTL_RULES.has(cmd >>> 0), `0x${cmd.toString(16)}`).toBe(true);
  });

  for (const [cmd, rule] of IOCTL_RULES) {
    for (const who of WHO) {
      const want = EXPECTED[rule.name]![who];
      it(`${rule.name} by ${who}: ${want}`, async () => {
        const { result, unchanged } = await attempt(cmd, who);
        expect(result).toBe(want);
        if (want !== 'ok') expect(unchanged).toBe(true);
      });
    }
  }

  it('a handle open on another inode is no proof (the transport passes null; dispatch refuses a mismatch)', async () => {
    const f = svc.fs;
    const other = f.openInode(f.resolve('/home/owner/src'), C.O_RDWR, OWNER);
    expect(f.fileHandle(other.fh, f.resolve('/home/owner/f'))).toBeNull();
    expect(f.fileHandle(other.fh, f.resolve('/home/owner/src'))).toBe(other);
  });

  it('a clone source must be a descriptor of the calling process open for reading', async () => {
    const f = svc.fs, inode = f.resolve('/home/owner/f');
    const h = f.openInode(inode, C.O_RDWR, OWNER);
    const run = async (fd: bigint, caller = OWNER) => {
      const b = Buffer.alloc(uapi.REFLINK.size);
      b.writeBigInt64LE(fd, uapi.REFLINK.srcFd);
      try { await svc.ioctls.dispatch({ caller, inode, path: 'f', cmd: uapi.PMEMFS_IOC_REFLINK, handle: h, input: b, outSize: 0 }); return 'ok'; } catch (e) { return (e as FsError).code; }
    };
    expect(await run(-1n)).toBe('EBADF');
    expect(await run(99n)).toBe('EBADF');
    fds.set(8, { pid: OTHER.pid, h: f.open('/home/owner/src', C.O_RDONLY, OTHER) });
    expect(await run(8n)).toBe('EBADF');   // another process's descriptor
    fds.set(9, { pid: OWNER.pid, h: f.open('/home/owner/src', C.O_WRONLY, OWNER) });
    expect(await run(9n)).toBe('EBADF');   // open for writing only
    fds.set(10, { pid: OWNER.pid, h: f.open('/home/owner/src', C.O_RDONLY, OWNER) });
    expect(await run(10n)).toBe('ok');
    expect(readAll().subarray(0, 2 * BS).equals(Buffer.alloc(2 * BS, 0x33))).toBe(true);
  });

  it('a pin through a read-only handle of a fully mapped range pins without allocating', async () => {
    const f = svc.fs, inode = f.resolve('/home/owner/f');
    const h = f.openInode(inode, C.O_RDONLY, OTHER);
    const b = Buffer.alloc(uapi.PIN.size);
    b.writeBigUInt64LE(BigInt(4 * BS), uapi.PIN.len);
    const free = f.statfs().bfree;
    await svc.ioctls.dispatch({ caller: OTHER, inode, path: 'f', cmd: uapi.PMEMFS_IOC_PIN, handle: h, input: b, outSize: uapi.PIN.size });
    expect(f.pins.pinsOfIno(inode.ino).length).toBeGreaterThan(0);
    expect(f.statfs().bfree).toBe(free);
  });
});

describe('per-user limits on shared pools', () => {
  it(`pins: a user stops at ${MAX_PINS_PER_USER} with EAGAIN, another user and root still pin`, () => {
    const reg = svc.fs.pins;
    for (let i = 0; i < MAX_PINS_PER_USER; i++) reg.add({ ino: 99, fileOff: 0, len: BS, phys: 0, startBlock: i, blocks: 1, holder: { kind: 'pid', pid: 1 + (i % 7), uid: 3000 } });
    const one = (uid: number) => { try { reg.add({ ino: 99, fileOff: 0, len: BS, phys: 0, startBlock: 0, blocks: 1, holder: { kind: 'pid', pid: 50, uid } }); return 'ok'; } catch (e) { return (e as FsError).code; } };
    expect(one(3000)).toBe('EAGAIN');
    expect(one(3001)).toBe('ok');
    expect(one(0)).toBe('ok');
  });

  it(`leases: a user stops at ${MAX_LEASES_PER_USER} with EAGAIN; dropping one makes room`, () => {
    const f = svc.fs;
    const h = f.create('/l', 0o644, C.O_RDWR, ROOT_CALLER);
    const user = (pid: number, uid = 3000) => ({ pid, uid, gid: uid });
    for (let i = 0; i < MAX_LEASES_PER_USER; i++) svc.seals.lease(h.fh, 'l', user(10000 + i));   // one lease per process
    expect(() => svc.seals.lease(h.fh, 'l', user(9999))).toThrow(/limit/);
    svc.seals.lease(h.fh, 'l', user(9998, 3001));   // another user
    svc.seals.unlease(h.inode, 'l', user(10000));
    svc.seals.lease(h.fh, 'l', user(9999));
  });
});
