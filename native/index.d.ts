/**
 * @file The shape of native/build/Release/pmemfs_native.node (load it only
 * through src/native.ts): the FUSE transport (a libfuse3 low-level session
 * polled by the Node event loop, native/src/session.c and its parts) and the client-side
 * syscalls Node lacks.
 *
 * Errors from the client calls are `Error`s shaped like Node's own:
 * `message` "ENOTTY: inappropriate ioctl for device, ioctl", `code` 'ENOTTY',
 * `errno` (positive, e.g. 25), `syscall` 'ioctl'. Arguments of the wrong type
 * throw TypeError (code ERR_INVALID_ARG_TYPE); integers out of range throw
 * RangeError (code ERR_OUT_OF_RANGE).
 */

/*
 * Layout of `scratch` and the openFlags bits: SCRATCH and OPEN_REPLY in
 * src/fuse/lowlevel.ts (session.h's SCR_* enum and reply.c's fill_open()).
 */

/**
 * The FUSE request handlers, called on the JS thread. Each gets a `slot`
 * first: the request to answer, now or later, with exactly one reply
 * function (a throw answers EIO and goes to process 'uncaughtException').
 * A slot id is an opaque integer below 2^52 (the slot's index and a
 * generation, native/src/slots.c): it names one request only, and a reply
 * through an id whose request was answered, or whose slot took another
 * request since, throws ERR_FUSE_SLOT and sends nothing.
 * Node ids are inode numbers (1 is the root); `fh` is -1 when the kernel
 * sent no open file. Offsets and sizes are bytes.
 */
export interface SessionHandlers {
  lookup(slot: number, parent: number, name: string): void;
  /** No reply: the kernel dropped `nlookup` references to `ino`. */
  forget(ino: number, nlookup: number): void;
  getattr(slot: number, ino: number, fh: number): void;
  /** `valid` is FUSE_SET_ATTR_* bits; values in scratch (SCRATCH.SETATTR). */
  setattr(slot: number, ino: number, fh: number, valid: number): void;
  readlink(slot: number, ino: number): void;
  mknod(slot: number, parent: number, name: string, mode: number, rdev: number): void;
  mkdir(slot: number, parent: number, name: string, mode: number): void;
  unlink(slot: number, parent: number, name: string): void;
  rmdir(slot: number, parent: number, name: string): void;
  symlink(slot: number, target: string, parent: number, name: string): void;
  rename(slot: number, parent: number, name: string, newParent: number, newName: string, flags: number): void;
  link(slot: number, ino: number, newParent: number, newName: string): void;
  open(slot: number, ino: number, flags: number): void;
  create(slot: number, parent: number, name: string, mode: number, flags: number): void;
  read(slot: number, ino: number, fh: number, size: number, off: number): void;
  /** The data is recvBuffer[dataOff, dataOff+size): valid until the handler returns. */
  write(slot: number, ino: number, fh: number, dataOff: number, size: number, off: number): void;
  flush(slot: number, ino: number, fh: number): void;
  release(slot: number, ino: number, fh: number, flags: number): void;
  fsync(slot: number, ino: number, datasync: number, fh: number): void;
  opendir(slot: number, ino: number, flags: number): void;
  /** Fill with dirAdd/dirAddPlus (per `plus`), then replyDir. */
  readdir(slot: number, ino: number, fh: number, size: number, off: number, plus: boolean): void;
  releasedir(slot: number, ino: number, fh: number): void;
  fsyncdir(slot: number, ino: number, datasync: number, fh: number): void;
  statfs(slot: number, ino: number): void;
  setxattr(slot: number, ino: number, name: string, value: Buffer, flags: number): void;
  getxattr(slot: number, ino: number, name: string, size: number): void;
  listxattr(slot: number, ino: number, size: number): void;
  removexattr(slot: number, ino: number, name: string): void;
  /** Restricted ioctl: `input` is _IOC_SIZE(cmd) bytes for _IOW/_IOWR, else null; `outSize` for _IOR/_IOWR. */
  ioctl(slot: number, ino: number, cmd: number, fh: number, flags: number, input: Buffer | null, outSize: number): void;
  fallocate(slot: number, ino: number, fh: number, mode: number, off: number, len: number): void;
  lseek(slot: number, ino: number, fh: number, off: number, whence: number): void;
  copyFileRange(slot: number, inoIn: number, fhIn: number, offIn: number, inoOut: number, fhOut: number,
    offOut: number, len: number, flags: number): void;
  /** The kernel ended the session (unmounted from outside, or the device failed). */
  ended(why: string): void;
  /**
   * No reply: the kernel interrupted pending request `slot` (FUSE_INTERRUPT,
   * a signal reached its caller). At most once per request, never after its
   * reply; the request still needs its one reply (EINTR if it gives up).
   */
  interrupt?(slot: number): void;
  /** No reply: the kernel's FUSE_INIT was answered (once per session, before any other request). */
  init?(info: FuseInitInfo): void;
}

/** What FUSE_INIT came to (native/src/init.c). */
export interface FuseInitInfo {
  /** The kernel's FUSE protocol version, e.g. 7.45. */
  kernelMajor: number;
  kernelMinor: number;
  /**
   * FUSE_DIRECT_IO_ALLOW_MMAP was negotiated: MAP_SHARED works on files
   * opened FOPEN_DIRECT_IO (dax=always). False on kernels before 6.6.
   */
  directIoAllowMmap: boolean;
  /** FUSE_HANDLE_KILLPRIV_V2 was accepted: the daemon kills privileges on write, truncate and chown. */
  killPrivV2: boolean;
  /** Set when patching libfuse's reply went wrong (the reply went out unpatched, or the session ended). */
  problem?: string;
}

export interface NativeBinding {
  // --- the FUSE session ------------------------------------------------------
  /** Shared numbers for arguments and replies; layout SCRATCH in src/fuse/lowlevel.ts. */
  readonly scratch: Float64Array;
  /** The receive buffer; write data lives here while a write handler runs. */
  readonly recvBuffer: Buffer;
  /**
   * Create the session with libfuse `-o options` (fsname, subtype,
   * allow_other, default_permissions, ro), mount it (through fusermount3
   * when not root) and start polling the device from the event loop.
   * @throws Error when the options are refused or the mount fails (libfuse prints why on stderr)
   */
  sessionStart(mountpoint: string, options: string, handlers: SessionHandlers, spinUs: number): void;
  /** Stop polling; unmount (lazily) when `unmount`; answer pending requests EIO; destroy the session. */
  sessionStop(unmount: boolean): void;
  /**
   * Whether a busy daemon keeps another CPU from halting: a helper thread at
   * SCHED_IDLE priority spins on a CPU other than the JS thread's while the
   * session loop serves or polls for requests (native/src/idlepoll.c; mount
   * option idle_poll), and a second one spins on the JS thread's own CPU
   * while it waits in msync or writeback. Off until asked.
   * @returns whether it is on (false on one CPU, or when no thread could start)
   */
  setIdlePoll(on: boolean): boolean;
  /** Busy spells the helper spun through since the process started. */
  idlePollSpells(): number;
  /** Flushes the flush helper (on the JS thread's CPU while it waits in msync or writeback) spun through. */
  idlePollFlushes(): number;
  /** Map the region file read-only for read replies. @throws Error (mmap) */
  setRegion(fd: number, size: number): void;
  /** Answer with an error (positive errno) or, for ops without data, success (0). */
  replyErr(slot: number, errno: number): void;
  /** Entry from scratch (SCRATCH.ATTR); ino 0 is a negative entry cached for entry_timeout. */
  replyEntry(slot: number): void;
  replyCreate(slot: number, fh: number, openFlags: number): void;
  replyAttr(slot: number): void;
  replyOpen(slot: number, fh: number, openFlags: number): void;
  /** write and copy_file_range: bytes done. */
  replyWrite(slot: number, bytes: number): void;
  /** `nsegs` segments from scratch (SCRATCH.SEGS), sent from the region mapping. */
  replyRead(slot: number, nsegs: number): void;
  replyBuf(slot: number, buf: Buffer | null, length: number): void;
  replyReadlink(slot: number, target: string): void;
  replyStatfs(slot: number): void;
  replyXattrSize(slot: number, bytes: number): void;
  replyLseek(slot: number, off: number): void;
  /** `out` over the start of the ioctl's output (an _IOWR output keeps its input elsewhere). */
  replyIoctl(slot: number, result: number, out: Buffer | null): void;
  /** @returns false when the entry does not fit this reply */
  dirAdd(slot: number, name: string, ino: number, mode: number, nextOff: number): boolean;
  /** Entry parameters from scratch (SCRATCH.ATTR). @returns false when it does not fit */
  dirAddPlus(slot: number, name: string, nextOff: number): boolean;
  replyDir(slot: number): void;
  /** Queue an inode invalidation (off -1: attributes only; len 0: to the end), sent by a helper thread. */
  notifyInvalInode(ino: number, off: number, len: number): void;
  /** Queue a dentry invalidation. */
  notifyInvalEntry(parent: number, name: string): void;
  /** Requests received and not answered yet. */
  pendingRequests(): number;

  // --- client syscalls -------------------------------------------------------
  /**
   * ioctl(2) on a client fd.
   * @param cmd unsigned 32-bit ioctl number (negative int32 values are accepted too)
   * @param buf the payload, read and/or written in place; must hold at least
   *   _IOC_SIZE(cmd) bytes when the number encodes a direction (RangeError otherwise)
   * @returns ioctl's (non-negative) result
   * @throws Error with code/errno/syscall 'ioctl'
   */
  ioctl(fd: number, cmd: number, buf: Buffer | null): number;
  /** fallocate(2) on a client fd; offset and length are safe non-negative integers. @throws Error (fallocate) */
  fallocate(fd: number, mode: number, offset: number, length: number): void;
  /** flock(2): LOCK_SH 1, LOCK_EX 2, LOCK_UN 8, optionally | LOCK_NB 4. @throws Error (flock; EWOULDBLOCK as 'EAGAIN') */
  flock(fd: number, operation: number): void;
  /**
   * mmap(2) MAP_SHARED of [offset, offset+length) of fd (offset page-aligned,
   * bytes, any size up to 2^53; length at most 4 GiB), PROT_READ|PROT_WRITE
   * when writable. The mapping lives as long as the Buffer. @throws Error (mmap)
   */
  mmap(fd: number, offset: number, length: number, writable: boolean): Buffer;
  /** msync(2) MS_SYNC of buffer bytes [offset, offset+length), rounded out to pages. */
  msync(buffer: Buffer, offset: number, length: number): void;
  /**
   * sync_file_range(2) of file bytes [offset, offset+length): start write-back
   * of its dirty pages; with `wait`, wait for it too. No device cache flush.
   * @throws Error (sync_file_range's errno)
   */
  writeback(fd: number, offset: number, length: number, wait: boolean): void;
  /**
   * Zeroes over file bytes [offset, offset+length) (multiples of 4096),
   * written with O_DIRECT in 1 MiB requests, then fdatasync(2): the host
   * filesystem allocates every block, none stays in its page cache.
   * @throws RangeError (unaligned), Error (EINVAL where O_DIRECT is refused; pwrite's or fdatasync's errno)
   */
  zeroDirect(fd: number, offset: number, length: number): void;
}
