/**
 * @file The FUSE adapter: fuse-native's op table (plus the shim's ioctl,
 * fallocate, utimens and getattr) translated into PmemFs calls. It decides nothing:
 * it routes control-directory paths to CtlDir, converts stat shapes and
 * turns thrown errors into negative errnos. A handler that throws something
 * other than FsError is a bug: it is logged with its stack and answered
 * with EIO, and the daemon keeps serving.
 *
 * fuse-native callback conventions: most ops take cb(err, ...results) with
 * err 0 or a negative errno; read and write take cb(bytes or -errno).
 */
import type { Logger } from 'pino';
import { FsError, toNegErrno } from '../errors.js';
import type { CallerContext, ShimHandlers } from '../native.js';
import { CtlDir } from '../vfs/ctl.js';
import type { Caller, PmemFs, Stat, TimeSpec } from '../vfs/fs.js';
import type { IoctlDispatcher } from '../vfs/ioctl.js';

type Cb = (...args: any[]) => void;

const UTIME_NOW = 0x3fffffff;
const UTIME_OMIT = 0x3ffffffe;

/**
 * A getattr answer for the shim: the Float64Array whose order is
 * enum shim_stat_field in native-shim/src/shim.h (times as seconds and
 * nanoseconds; fuse-native's own getattr would round them to milliseconds).
 */
function statVector(s: Stat): Float64Array {
  return Float64Array.of(s.mode, s.nlink, s.uid, s.gid, s.rdev, s.size, s.blksize, s.blocks, s.ino,
    s.atime.sec, s.atime.nsec, s.mtime.sec, s.mtime.nsec, s.ctime.sec, s.ctime.nsec);
}

export interface AdapterDeps {
  fs: PmemFs;
  ctl: CtlDir;
  ioctl: IoctlDispatcher;
  log: Logger;
  /** Caller context the shim stashed for a create-type op, if any. */
  takeCaller(path: string): Caller;
}

export class FuseAdapter {
  constructor(private readonly d: AdapterDeps) {}

  /** Run one request: result via ok(), any throw via cb(-errno). */
  private run(op: string, path: string, cb: Cb, fn: () => unknown | Promise<unknown>, ok: (r: any) => void): void {
    const fail = (e: unknown) => {
      if (e instanceof FsError) {
        if (e.code !== 'ENOENT' && e.code !== 'ENODATA') this.d.log.debug({ op, untrusted: { path }, code: e.code, reason: e.message }, 'request refused');
      } else {
        this.d.log.error({ op, untrusted: { path }, err: e }, 'request failed unexpectedly');
      }
      cb(toNegErrno(e));
    };
    try {
      const r = fn();
      if (r instanceof Promise) r.then(ok, fail); else ok(r);
    } catch (e) { fail(e); }
  }

  /** The op table for fuse-native. */
  ops(): Record<string, Cb> {
    const { fs, ctl } = this.d;
    const isCtl = CtlDir.isCtlPath;
    const done = (cb: Cb) => () => cb(0);
    return {
      readdir: (path: string, cb: Cb) => this.run('readdir', path, cb, () => {
        if (path === '/.pmemfs') return ctl.readdir();
        return fs.readdir(path);
      }, (names: string[]) => cb(0, names)),
      statfs: (path: string, cb: Cb) => this.run('statfs', path, cb, () => fs.statfs(), (s) => cb(0, s)),
      readlink: (path: string, cb: Cb) => this.run('readlink', path, cb, () => fs.readlink(path), (t) => cb(0, t)),
      mkdir: (path: string, mode: number, cb: Cb) => this.run('mkdir', path, cb,
        () => this.noCtl(path, 'mkdir') ?? fs.mkdir(path, mode, this.d.takeCaller(path)), done(cb)),
      mknod: (path: string, mode: number, dev: number, cb: Cb) => this.run('mknod', path, cb,
        () => this.noCtl(path, 'mknod') ?? fs.mknod(path, mode, dev, this.d.takeCaller(path)), done(cb)),
      create: (path: string, mode: number, cb: Cb) => this.run('create', path, cb,
        () => {
          const caller = this.d.takeCaller(path);
          return this.noCtl(path, 'create') ?? fs.create(path, mode, caller.flags || 2 /* O_RDWR */, caller).fh;
        }, (fh: number) => cb(0, fh)),
      symlink: (target: string, path: string, cb: Cb) => this.run('symlink', path, cb,
        () => this.noCtl(path, 'symlink') ?? fs.symlink(target, path, this.d.takeCaller(path)), done(cb)),
      link: (src: string, dst: string, cb: Cb) => this.run('link', dst, cb,
        () => this.noCtl(src, 'link') ?? this.noCtl(dst, 'link') ?? fs.link(src, dst), done(cb)),
      unlink: (path: string, cb: Cb) => this.run('unlink', path, cb, () => this.noCtl(path, 'unlink') ?? fs.unlink(path), done(cb)),
      rmdir: (path: string, cb: Cb) => this.run('rmdir', path, cb, () => this.noCtl(path, 'rmdir') ?? fs.rmdir(path), done(cb)),
      rename: (src: string, dst: string, cb: Cb) => this.run('rename', src, cb,
        () => this.noCtl(src, 'rename') ?? this.noCtl(dst, 'rename') ?? fs.rename(src, dst), done(cb)),
      chmod: (path: string, mode: number, cb: Cb) => this.run('chmod', path, cb, () => this.noCtl(path, 'chmod') ?? fs.chmod(path, mode), done(cb)),
      chown: (path: string, uid: number, gid: number, cb: Cb) => this.run('chown', path, cb,
        () => this.noCtl(path, 'chown') ?? fs.chown(path, uid, gid), done(cb)),
      truncate: (path: string, size: number, cb: Cb) => this.run('truncate', path, cb,
        () => (this.isCtlTruncate(path) ? undefined : fs.truncate(path, size)), done(cb)),
      ftruncate: (path: string, fh: number, size: number, cb: Cb) => this.run('ftruncate', path, cb,
        () => (this.isCtlTruncate(path) ? undefined : fs.truncate(path, size, fh)), done(cb)),
      open: (path: string, flags: number, cb: Cb) => this.run('open', path, cb,
        () => (isCtl(path) ? ctl.open(path, flags, this.d.takeCaller(path)) : fs.open(path, flags, this.d.takeCaller(path)).fh),
        (fh: number) => cb(0, fh)),
      release: (path: string, fh: number, cb: Cb) => this.run('release', path, cb,
        () => (CtlDir.ownsFh(fh) ? ctl.release(fh) : fs.release(fh)), done(cb)),
      read: (path: string, fh: number, buf: Buffer, len: number, off: number, cb: Cb) => this.run('read', path, cb,
        () => (CtlDir.ownsFh(fh) ? ctl.read(fh, buf, len, off) : fs.read(fh, buf, len, off)), (n: number) => cb(n)),
      write: (path: string, fh: number, buf: Buffer, len: number, off: number, cb: Cb) => this.run('write', path, cb,
        () => (CtlDir.ownsFh(fh) ? ctl.write(fh, buf, len) : fs.write(fh, path, buf, len, off, this.d.takeCaller(`\u0001write:${fh}`))),
        (n: number) => cb(n)),
      flush: (_path: string, _fh: number, cb: Cb) => cb(0),
      fsync: (path: string, _datasync: boolean, _fh: number, cb: Cb) => this.run('fsync', path, cb, () => fs.fsync(), done(cb)),
      fsyncdir: (path: string, _datasync: boolean, _fh: number, cb: Cb) => this.run('fsyncdir', path, cb, () => fs.fsync(), done(cb)),
      setxattr: (path: string, name: string, value: Buffer, _pos: number, flags: number, cb: Cb) => this.run('setxattr', path, cb,
        () => this.noCtl(path, 'setxattr') ?? fs.setxattr(path, name, value, flags), done(cb)),
      getxattr: (path: string, name: string, _pos: number, cb: Cb) => this.run('getxattr', path, cb,
        () => (isCtl(path) ? null : fs.getxattr(path, name)), (v: Buffer | null) => cb(0, v)),
      listxattr: (path: string, cb: Cb) => this.run('listxattr', path, cb,
        () => (isCtl(path) ? [] : fs.listxattr(path)), (l: string[]) => cb(0, l)),
      removexattr: (path: string, name: string, cb: Cb) => this.run('removexattr', path, cb,
        () => this.noCtl(path, 'removexattr') ?? fs.removexattr(path, name), done(cb)),
    };
  }

  /** Handlers the native shim calls (ops fuse-native lacks). */
  shimHandlers(): ShimHandlers {
    const { fs } = this.d;
    const caller = (c: CallerContext): Caller => ({ pid: c.pid, uid: c.uid, gid: c.gid });
    return {
      ioctl: (ctx, path, cmd, fh, _flags, input, outSize, reply) => this.run('ioctl', path, reply,
        () => this.d.ioctl.dispatch({ caller: caller(ctx), path, cmd, fh, input, outSize }),
        (out: Buffer | null) => reply(0, out ?? undefined)),
      fallocate: (_ctx, path, mode, offset, length, fh, reply) => this.run('fallocate', path, reply,
        () => this.noCtl(path, 'fallocate') ?? fs.fallocate(path, mode, offset, length, fh), () => reply(0)),
      utimens: (_ctx, path, aSec, aNsec, mSec, mNsec, reply) => this.run('utimens', path, reply,
        () => this.noCtl(path, 'utimens') ?? fs.utimens(path, timeArg(aSec, aNsec), timeArg(mSec, mNsec)), () => reply(0)),
      // getattr and fgetattr (fh set): an open handle answers for its inode
      // even once its name is gone; control files answer from CtlDir.
      getattr: (_ctx, path, fh, reply) => this.run('getattr', path, reply, () => {
        if (CtlDir.isCtlPath(path)) return this.d.ctl.getattr(path);
        return fh === null || !fh || CtlDir.ownsFh(fh) ? fs.getattr(path) : fs.stat(fs.handle(fh).inode);
      }, (s: Stat) => reply(0, statVector(s))),
    };
  }

  /** `echo cmd > ctl` opens with O_TRUNC: truncating ctl is a no-op; other control files refuse. */
  private isCtlTruncate(path: string): boolean {
    if (CtlDir.classify(path) === 'ctl') return true;
    this.noCtl(path, 'truncate');
    return false;
  }

  /** Control files refuse namespace and attribute changes. */
  private noCtl(path: string, op: string): undefined {
    if (CtlDir.isCtlPath(path)) throw new FsError('EPERM', op, path, 'control files cannot be changed');
    return undefined;
  }
}

function timeArg(sec: number, nsec: number): TimeSpec {
  if (nsec === UTIME_NOW) return 'now';
  if (nsec === UTIME_OMIT) return 'omit';
  if (!(nsec >= 0 && nsec < 1e9)) throw new FsError('EINVAL', 'utimens', undefined, `nanoseconds ${nsec}`);
  return { sec, nsec };
}
