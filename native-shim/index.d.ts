/**
 * @file The shape of native-shim/build/Release/pmemfs_shim.node. Load it only
 * through src/native.ts (it must be dlopen'ed RTLD_GLOBAL before fuse-native,
 * so that its `fuse_new` wraps libfuse's).
 *
 * What the addon does to a fuse-native mount: it copies fuse-native's
 * `struct fuse_operations`, adds `ioctl` and `fallocate`, replaces `utimens`
 * (fuse-native's passes atime twice) and sets `flag_utime_omit_ok`, replaces
 * `getattr`/`fgetattr` (fuse-native's round times to milliseconds), wraps
 * `create`/`mknod`/`mkdir`/`symlink` to stash the caller's context and
 * `open`/`create` to force direct_io on control files, appends
 * {@link ShimBinding.setMountArgs} to fuse_new's args, then calls the real
 * `fuse_new@FUSE_2.6`. No other op is touched.
 *
 * Errors from the client calls are `Error`s shaped like Node's own:
 * `message` "ENOTTY: inappropriate ioctl for device, ioctl", `code` 'ENOTTY',
 * `errno` (positive, e.g. 25), `syscall` 'ioctl'. Arguments of the wrong type
 * throw TypeError (code ERR_INVALID_ARG_TYPE); integers out of range throw
 * RangeError (code ERR_OUT_OF_RANGE).
 */

/** The process behind a FUSE request, from fuse_get_context() on the worker thread. */
export interface CallerContext {
  pid: number;
  uid: number;
  gid: number;
  /** Only meaningful for create-like requests; 0 where the kernel sends none. */
  umask: number;
  /** The open flags of a create request (fuse-native's create does not pass them); 0 otherwise. */
  flags?: number;
}

/**
 * Answer a FUSE request. `err` is 0 or a negative errno (-4095..-1); anything
 * else (a positive number, a non-integer, a non-number) answers -EIO.
 * May be called at any later time (the FUSE worker waits, the JS thread does
 * not); calls after the first are ignored. A reply function that is
 * garbage-collected without being called answers -EIO.
 */
export type Reply = (err: number, out?: Buffer | Float64Array) => void;

/**
 * The ops fuse-native lacks, run on the JS thread. If none are set, the
 * kernel gets -ENOSYS. A handler that throws answers -EIO (if it had not
 * replied) and the exception is re-raised as an uncaught exception.
 */
export interface ShimHandlers {
  /**
   * FUSE ioctl (restricted: direction and size come from the number).
   * @param cmd the ioctl number as an unsigned 32-bit value (as in src/uapi.ts)
   * @param fh fi->fh of the open file (or directory with FUSE_IOCTL_DIR)
   * @param flags FUSE ioctl flags (FUSE_IOCTL_DIR = 0x10, FUSE_IOCTL_COMPAT = 0x1)
   * @param input copy of the _IOW/_IOWR payload, _IOC_SIZE(cmd) bytes; null for _IO/_IOR
   * @param outSize _IOC_SIZE(cmd) for _IOR/_IOWR, else 0
   * @param reply reply(0, out) copies `out` (at most outSize bytes, else -EIO;
   *   not a Buffer: -EIO) over the start of the output; bytes it does not cover
   *   stay zero (_IOR) or keep the input (_IOWR). reply(0) leaves the output so.
   */
  ioctl(ctx: CallerContext, path: string, cmd: number, fh: number, flags: number,
    input: Buffer | null, outSize: number, reply: Reply): void;
  /**
   * FUSE fallocate.
   * @param mode the fallocate(2) mode (FALLOC_FL_* bits)
   * @param offset bytes
   * @param length bytes
   */
  fallocate(ctx: CallerContext, path: string, mode: number, offset: number, length: number,
    fh: number, reply: Reply): void;
  /**
   * utimensat(2) semantics: a `*Nsec` of UTIME_NOW (0x3fffffff) means "now",
   * UTIME_OMIT (0x3ffffffe) means "leave unchanged" (its seconds are then 0).
   * An mtime-only change (touch -m) arrives with atime UTIME_OMIT.
   */
  utimens(ctx: CallerContext, path: string, atimeSec: number, atimeNsec: number,
    mtimeSec: number, mtimeNsec: number, reply: Reply): void;
  /**
   * FUSE getattr (fh null) and fgetattr (fh = fi->fh of the open file).
   * @param reply reply(0, v) with v a Float64Array of at least 15 numbers:
   *   mode, nlink, uid, gid, rdev, size (bytes), blksize (bytes), blocks
   *   (512-byte units), ino, atime sec, atime nsec, mtime sec, mtime nsec,
   *   ctime sec, ctime nsec (enum shim_stat_field in src/shim.h). Anything
   *   else answers -EIO.
   */
  getattr(ctx: CallerContext, path: string, fh: number | null, reply: Reply): void;
}

export interface ShimBinding {
  /**
   * Install the handlers (called with `this` = h). The threadsafe function
   * behind them is unref'd, so it never keeps the process alive. Calling it
   * again replaces the handlers; requests already queued still reach the old ones.
   * @throws TypeError unless h.ioctl, h.fallocate, h.utimens and h.getattr are functions
   */
  setHandlers(h: ShimHandlers): void;
  /**
   * Extra arguments appended to fuse_new's (library options), e.g.
   * ['-obig_writes', '-odirect_io', '-ouse_ino']. Read when the next mount runs.
   * An option libfuse does not know makes the mount fail.
   */
  setMountArgs(args: string[]): void;
  /**
   * After fuse-native's open/create succeeds for a path starting with
   * `prefix` (e.g. "/.pmemfs/"), set fi->direct_io so the kernel never
   * page-caches it. "" turns it off (the default).
   */
  setDirectIoPrefix(prefix: string): void;
  /**
   * The caller of the create/mknod/mkdir/symlink (link path) now running for
   * `path`, removed from the table; null if there is none (e.g. called from
   * any other op). Call it from inside the fuse-native handler, before replying.
   */
  takeCallerContext(path: string): CallerContext | null;
  /** True once our fuse_new has run (i.e. fuse-native mounted through the hook). */
  hookInstalled(): boolean;
  /**
   * ioctl(2) on a client fd.
   * @param cmd unsigned 32-bit ioctl number (negative int32 values are accepted too)
   * @param buf the payload, read and/or written in place; must hold at least
   *   _IOC_SIZE(cmd) bytes when the number encodes a direction (RangeError otherwise)
   * @returns ioctl's (non-negative) result
   * @throws Error with code/errno/syscall 'ioctl'
   */
  ioctl(fd: number, cmd: number, buf: Buffer | null): number;
  /**
   * fallocate(2) on a client fd; offset and length are safe non-negative integers.
   * @throws Error with code/errno/syscall 'fallocate'
   */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /**
   * flock(2): LOCK_SH 1, LOCK_EX 2, LOCK_UN 8, optionally | LOCK_NB 4.
   * @throws Error with code/errno/syscall 'flock' (EWOULDBLOCK is reported as 'EAGAIN')
   */
  flock(fd: number, operation: number): void;
  /**
   * mmap(2) MAP_SHARED of [offset, offset+length) of fd (offset page-aligned,
   * bytes, any size up to 2^53; length at most 4 GiB), PROT_READ|PROT_WRITE
   * when writable. The mapping lives as long as the Buffer. Errors as above,
   * syscall 'mmap'.
   */
  mmap(fd: number, offset: number, length: number, writable: boolean): Buffer;
  /** msync(2) MS_SYNC of buffer bytes [offset, offset+length), rounded out to pages. */
  msync(buffer: Buffer, offset: number, length: number): void;
}
