/**
 * The native binding without a mount: the client syscalls (ioctl, fallocate,
 * flock) on plain temp files, their errno-shaped errors, argument checks, the
 * session functions' refusals without a session, and the loader (package
 * root, injection). The FUSE side needs a mount and is exercised by the
 * shell tests.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadNative, nativePath, packageRoot, setNativeBinding, type NativeBinding } from '../../src/native.js';
import * as uapi from '../../src/uapi.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

let dir = '';
let shim: NativeBinding;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-native-'));
  shim = loadNative();
});

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

function tmpFile(name: string, data: Buffer = Buffer.alloc(0)): { file: string; fd: number } {
  const file = path.join(dir, name);
  fs.writeFileSync(file, data);
  return { file, fd: fs.openSync(file, 'r+') };
}

function caught(f: () => unknown): Error & { code?: string; errno?: number; syscall?: string } {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

describe('loader', () => {
  afterEach(() => setNativeBinding(null));

  it('finds the package root and the built addon', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as { name: string };
    expect(pkg.name).toBe('pmemfs');
    expect(fs.existsSync(nativePath())).toBe(true);
  });

  it('returns the same binding every time, and an injected fake while set', () => {
    expect(loadNative()).toBe(shim);
    const fake = { ...shim, ioctl: () => 42 } as NativeBinding;
    setNativeBinding(fake);
    expect(loadNative()).toBe(fake);
    expect(loadNative().ioctl(0, 0, null)).toBe(42);
    setNativeBinding(null);
    expect(loadNative()).toBe(shim);
  });
});

describe('ioctl', () => {
  it('fails with ENOTTY on a regular file, shaped like a Node error', () => {
    const { fd } = tmpFile('ioctl');
    try {
      const e = caught(() => shim.ioctl(fd, uapi.PMEMFS_IOC_SEAL, null));
      expect(e).toBeInstanceOf(Error);
      expect(e.code).toBe('ENOTTY');
      expect(e.errno).toBe(os.constants.errno.ENOTTY);
      expect(e.syscall).toBe('ioctl');
      expect(e.message).toMatch(/^ENOTTY: .*, ioctl$/);
      const r = caught(() => shim.ioctl(fd, uapi.PMEMFS_IOC_REGION, Buffer.alloc(uapi.REGION.size)));
      expect(r.code).toBe('ENOTTY');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('fails with EBADF on a closed fd', () => {
    const { fd } = tmpFile('ioctl-badf');
    fs.closeSync(fd);
    const e = caught(() => shim.ioctl(fd, uapi.PMEMFS_IOC_SEAL, null));
    expect(e.code).toBe('EBADF');
    expect(e.errno).toBe(os.constants.errno.EBADF);
  });

  it('refuses a buffer smaller than the size the number encodes', () => {
    const e = caught(() => shim.ioctl(0, uapi.PMEMFS_IOC_REGION, Buffer.alloc(uapi.REGION.size - 1)));
    expect(e).toBeInstanceOf(RangeError);
    expect(caught(() => shim.ioctl(0, uapi.PMEMFS_IOC_PIN, null))).toBeInstanceOf(RangeError);
  });

  it('throws TypeError on arguments of the wrong type', () => {
    expect(caught(() => shim.ioctl('3' as unknown as number, uapi.PMEMFS_IOC_SEAL, null))).toBeInstanceOf(TypeError);
    expect(caught(() => shim.ioctl(0, 1.5, null))).toBeInstanceOf(TypeError);
    expect(caught(() => shim.ioctl(0, uapi.PMEMFS_IOC_SEAL, 'x' as unknown as Buffer))).toBeInstanceOf(TypeError);
    expect(caught(() => (shim.ioctl as (...a: unknown[]) => number)())).toBeInstanceOf(TypeError);
    expect(caught(() => shim.ioctl(-1, uapi.PMEMFS_IOC_SEAL, null))).toBeInstanceOf(RangeError);
    expect(caught(() => shim.ioctl(0, 2 ** 32, null))).toBeInstanceOf(RangeError);
  });
});

describe('fallocate', () => {
  it('punches a hole, keeping the size', () => {
    const size = 64 * 1024;
    const { file, fd } = tmpFile('punch', Buffer.alloc(size, 0xaa));
    try {
      shim.fallocate(fd, uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE, 4096, 8192);
    } finally {
      fs.closeSync(fd);
    }
    const data = fs.readFileSync(file);
    expect(data.length).toBe(size);
    expect(data.subarray(4096, 12288).every((b) => b === 0)).toBe(true);
    expect(data.subarray(0, 4096).every((b) => b === 0xaa)).toBe(true);
    expect(data.subarray(12288).every((b) => b === 0xaa)).toBe(true);
  });

  it('allocates (mode 0) and extends the file', () => {
    const { file, fd } = tmpFile('alloc');
    try {
      shim.fallocate(fd, 0, 0, 10000);
    } finally {
      fs.closeSync(fd);
    }
    expect(fs.statSync(file).size).toBe(10000);
  });

  it('reports errors with code, errno and syscall', () => {
    const { fd } = tmpFile('falloc-einval');
    try {
      const e = caught(() => shim.fallocate(fd, 0, 0, 0)); // length 0: EINVAL
      expect(e.code).toBe('EINVAL');
      expect(e.errno).toBe(os.constants.errno.EINVAL);
      expect(e.syscall).toBe('fallocate');
    } finally {
      fs.closeSync(fd);
    }
  });

  it('throws TypeError/RangeError on bad arguments', () => {
    expect(caught(() => shim.fallocate(0, 0, '0' as unknown as number, 1))).toBeInstanceOf(TypeError);
    expect(caught(() => shim.fallocate(0, 1.5, 0, 1))).toBeInstanceOf(TypeError);
    expect(caught(() => shim.fallocate(0, 0, 0, Number.NaN))).toBeInstanceOf(TypeError);
    expect(caught(() => shim.fallocate(0, 0, -1, 1))).toBeInstanceOf(RangeError);
    expect(caught(() => shim.fallocate(0, 0, 0, 2 ** 53))).toBeInstanceOf(RangeError);
  });
});

describe('flock', () => {
  it('takes an exclusive lock that a second open file description cannot', () => {
    const { file, fd } = tmpFile('lock');
    const fd2 = fs.openSync(file, 'r');
    try {
      shim.flock(fd, LOCK_EX | LOCK_NB);
      const e = caught(() => shim.flock(fd2, LOCK_EX | LOCK_NB));
      expect(e.code).toBe('EAGAIN');
      expect(e.syscall).toBe('flock');
      shim.flock(fd, LOCK_UN);
      shim.flock(fd2, LOCK_EX | LOCK_NB);
    } finally {
      fs.closeSync(fd);
      fs.closeSync(fd2);
    }
  });
});

describe('session functions without a session', () => {
  it('refuse a reply to a request that is not pending', () => {
    expect(shim.pendingRequests()).toBe(0);
    const e = caught(() => shim.replyErr(0, 0));
    expect((e as { code?: string }).code).toBe('ERR_FUSE_SLOT');
    expect(caught(() => shim.replyEntry(5))).toBeInstanceOf(Error);
  });

  it('refuse every slot id that names no pending request (any generation, fractions, out of range)', () => {
    // A slot id is index | generation << 20: none of these is pending without a session.
    for (const id of [1, 2 ** 20, 2 ** 20 + 1, 7 * 2 ** 20 + 3, 2 ** 52 - 1, 0.5, -1, 2 ** 53, Number.NaN]) {
      expect((caught(() => shim.replyErr(id, 0)) as { code?: string }).code).toBe('ERR_FUSE_SLOT');
    }
    expect((caught(() => shim.replyDir(2 ** 20)) as { code?: string }).code).toBe('ERR_FUSE_SLOT');
  });

  it('validate notification arguments, and queue nothing while no session runs', () => {
    expect(caught(() => shim.notifyInvalInode(0, -1, 0))).toBeInstanceOf(RangeError);
    expect(caught(() => shim.notifyInvalEntry(1, 5 as unknown as string))).toBeInstanceOf(TypeError);
    shim.notifyInvalInode(1, -1, 0);
    shim.notifyInvalEntry(1, 'x');
  });

  it('share a scratch array and a receive buffer of the documented sizes', () => {
    expect(shim.scratch).toBeInstanceOf(Float64Array);
    expect(shim.scratch.length).toBe(1024);
    expect(shim.recvBuffer.length).toBeGreaterThanOrEqual((1 << 20) + 4096);
  });

  it('sessionStart refuses a bad mount point type', () => {
    expect(caught(() => shim.sessionStart(1 as unknown as string, '', {} as never, 0))).toBeInstanceOf(TypeError);
  });
});

describe('idle polling (idle_poll)', () => {
  /** The threads of this process named `name`, and their states (the letter of /proc/PID/task/TID/stat). */
  const threads = (name: string): string[] => fs.readdirSync('/proc/self/task').flatMap((t) => {
    try {
      if (fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() !== name) return [];
      return [fs.readFileSync(`/proc/self/task/${t}/stat`, 'utf8').replace(/^.*\) /s, '')[0]];
    } catch { return []; }             // the thread ended while we looked
  });

  it('starts one helper on two or more CPUs, none on one; it sleeps until a session loop renews it', () => {
    const multi = os.availableParallelism() >= 2;
    try {
      expect(shim.setIdlePoll(true)).toBe(multi);
      expect(shim.setIdlePoll(true)).toBe(multi);              // again: still one helper
      const states = threads('pmemfs-idlepoll');
      expect(states.length).toBe(multi ? 1 : 0);
      // Nothing renews it outside a session loop: it never spins.
      if (multi) expect(states[0]).toBe('S');
      expect(shim.idlePollSpells()).toBe(0);
      expect(shim.idlePollFlushes()).toBe(0);
      expect(threads('pmemfs-flush').length).toBe(0);       // started at the first flush only
    } finally {
      expect(shim.setIdlePoll(false)).toBe(false);
    }
  });

  it('setIdlePoll refuses what is not a boolean', () => {
    expect(caught(() => shim.setIdlePoll(1 as unknown as boolean))).toBeInstanceOf(TypeError);
  });
});
