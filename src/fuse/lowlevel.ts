/**
 * @file The FUSE transport's request handlers: libfuse3 low-level requests
 * (by node id) translated into PmemFs calls. Node id = inode number (1 is
 * the root, FUSE_ROOT_ID); the generation comes from the inode. The control
 * directory lives at node ids CTL_NODE_BASE and up.
 *
 * It decides nothing about the filesystem: it resolves node ids, converts
 * shapes, answers through the native reply functions and turns thrown
 * errors into errnos. A throw other than FsError is a bug: logged with its
 * stack, answered EIO, and the daemon keeps serving.
 *
 * Caching (kernel side): entries, negative entries and attributes are
 * cached for ENTRY_TIMEOUT/ATTR_TIMEOUT seconds. Every change that does not
 * come through the kernel's own request (seal fill, pins, collapse/insert,
 * DMA writes seen at unpin) is pushed with notifyInvalInode through
 * PmemFs.onExternalChange. Hard links share one node id, so a link count or
 * ctime change is seen through every name.
 *
 * Lookup counts (fuse_lowlevel.h: "forget"): every entry handed to the
 * kernel (lookup, create, mknod, mkdir, symlink, link, readdirplus) counts
 * one; forget drops them. An inode number the kernel still references is
 * not given to a new inode (PmemFs.kernelRefs), so a node id always names
 * one inode until the kernel forgets it.
 *
 * Interrupts (FUSE_INTERRUPT): each request runs in its RequestContext
 * (src/layout/interrupt.ts); an interrupt of a request still pending aborts
 * it, so a wait for busy pages ends with EINTR and the change is not made.
 * A request that is not waiting answers as usual.
 *
 * Handle numbers: file handles (PmemFs) lie below 2^47, control-file
 * handles (CtlDir) in [2^47, 2^48), directory handles (here) from 2^48 up,
 * so no handle of one kind is ever taken for another: a directory handle
 * reaching a file operation (an ioctl on an open directory) is passed on
 * as no handle at all.
 */
import { constants, readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { FsError, toNegErrno } from '../errors.js';
import { DirStream } from './dirstream.js';
import type { Inode } from '../inode/inode.js';
import { RequestContext, runInRequest } from '../layout/interrupt.js';
import type { FuseInitInfo } from '../../native/index.js';
import type { NativeBinding, SessionHandlers } from '../native.js';
import { CTL_DIR } from '../uapi.js';
import { CtlDir } from '../vfs/ctl.js';
import { mapRead, readData, seekData } from '../vfs/data.js';
import type { Caller, PmemFs, SetAttrs, Stat, TimeSpec } from '../vfs/fs.js';
import type { IoctlDispatcher } from '../vfs/ioctl.js';

/**
 * Indices into the native scratch Float64Array (native/src/session.h's SCR_* enum):
 * CTX uid, gid, pid, umask of the request being dispatched; ATTR ino, mode,
 * nlink, uid, gid, rdev, size (bytes), blksize, blocks (512 B), atime s/ns,
 * mtime s/ns, ctime s/ns, generation, attr_timeout s, entry_timeout s, node
 * id (0: no entry); SETATTR mode, uid, gid, size, atime s/ns, mtime s/ns;
 * STATFS bsize, frsize, blocks, bfree, bavail, files, ffree, favail,
 * namemax; SEGS (region byte offset or -1 for zeroes, length) pairs.
 */
export const SCRATCH = { CTX: 0, ATTR: 8, SETATTR: 32, STATFS: 48, SEGS: 64, MAX_SEGS: 480 } as const;
/** openFlags bits of replyOpen/replyCreate (native/src/reply.c fill_open). */
export const OPEN_REPLY = { DIRECT_IO: 1, KEEP_CACHE: 2, NONSEEKABLE: 4, NOFLUSH: 8 } as const;

/** Seconds the kernel may trust an entry, a negative entry and attributes. */
export const ENTRY_TIMEOUT = 1;
export const NEGATIVE_TIMEOUT = 1;
export const ATTR_TIMEOUT = 1;

const ROOT_ID = 1;
/** Node ids of the control directory and its files (CtlDir's st_ino values). */
const CTL_NODE_BASE = 0xfffff000;
/** Directory handles: 2^48 up to 2^53 (file handles lie below 2^47, control-file handles below 2^48). */
export const DIR_FH_BASE = 2 ** 48;

// FUSE_SET_ATTR_* (fuse_lowlevel.h)
const SET_MODE = 1 << 0, SET_UID = 1 << 1, SET_GID = 1 << 2, SET_SIZE = 1 << 3, SET_ATIME = 1 << 4,
  SET_MTIME = 1 << 5, SET_ATIME_NOW = 1 << 7, SET_MTIME_NOW = 1 << 8;
const SEEK_DATA = 3, SEEK_HOLE = 4;
const RENAME_NOREPLACE = 1;
const ENOTTY = 25;
/** ENODATA (Linux): an absent attribute, the common getxattr answer (security.capability before writes). */
const ENODATA = 61;


export interface TransportDeps {
  fs: PmemFs;
  ctl: CtlDir;
  ioctl: IoctlDispatcher;
  native: NativeBinding;
  log: Logger;
  /** Called once when the kernel ends the session (unmounted from outside). */
  onEnded(why: string): void;
  /** Called once when FUSE_INIT has been answered. */
  onInit?(info: FuseInitInfo): void;
  /** Whether a busy daemon keeps another CPU from halting (idle_poll; native/src/idlepoll.c), for the stats. */
  idlePoll?: boolean;
}

export class FuseTransport {
  private readonly fs: PmemFs;
  private readonly n: NativeBinding;
  private readonly sc: Float64Array;
  private readonly recv: Buffer;
  private readonly ctlPaths = new Map<number, string>();
  private readonly dirs = new Map<number, DirStream>();
  private nextDirFh = DIR_FH_BASE;
  /** Requests still running after their handler returned (they await something), by slot id. */
  private readonly running = new Map<number, RequestContext>();
  /** Staging buffer for reads too fragmented for one writev, and for copy_file_range. */
  private staging: Buffer | null = null;
  /** Requests per operation name (.pmemfs/stats, subsystem=fuse_ops). */
  readonly ops = new Map<string, number>();
  /** Daemon time per operation name, in µs (.pmemfs/stats, subsystem=fuse_time): see `run`. */
  readonly opTime = new Map<string, number>();
  readonly stats = { requests: 0, forgets: 0, invalidations: 0, interrupts: 0, max_write_bytes: 0, max_read_bytes: 0 };
  /** What FUSE_INIT negotiated (null until it is answered). */
  private init: FuseInitInfo | null = null;

  /**
   * The .pmemfs/stats lines: `subsystem=fuse` (requests, forgets,
   * invalidations, largest read/write request in bytes, inode numbers the
   * kernel references, requests pending, cache timeouts in seconds, the
   * kernel's FUSE protocol minor and whether FUSE_DIRECT_IO_ALLOW_MMAP was
   * negotiated, 1 or 0; `idle_poll`, 1 or 0, `idle_poll_spells`, the
   * busy spells another CPU was kept from halting through, and
   * `idle_poll_flushes`, the flushes the JS thread's CPU was kept from
   * halting through),
   * `subsystem=fuse_ops` (requests per operation) and
   * `subsystem=fuse_time` (`OP_us`: microseconds the daemon spent on those
   * requests, from the handler's start until it settled, its reply's write
   * to /dev/fuse included; divided by the count, the daemon's share of what
   * a client waits per request — the rest is the kernel's transport and
   * the client itself).
   */
  statsLines(): string[] {
    const kv = (o: Iterable<[string, number]>) => [...o].map(([k, v]) => `${k}=${v}`).join(' ');
    return [
      `subsystem=fuse ${kv(Object.entries({ ...this.stats, kernel_refs: this.fs.kernelRefs.size, pending: this.n.pendingRequests(),
        entry_timeout_s: ENTRY_TIMEOUT, attr_timeout_s: ATTR_TIMEOUT,
        kernel_proto_minor: this.init?.kernelMinor ?? 0, direct_io_allow_mmap: this.init?.directIoAllowMmap ? 1 : 0, killpriv_v2: this.init?.killPrivV2 ? 1 : 0,
        idle_poll: this.d.idlePoll ? 1 : 0, idle_poll_spells: this.n.idlePollSpells(), idle_poll_flushes: this.n.idlePollFlushes() }))}`,
      `subsystem=fuse_ops ${kv([...this.ops].sort((a, b) => b[1] - a[1]))}`,
      `subsystem=fuse_time ${kv([...this.opTime].sort((a, b) => b[1] - a[1]).map(([k, v]) => [`${k}_us`, Math.round(v)]))}`,
    ];
  }

  constructor(private readonly d: TransportDeps) {
    this.fs = d.fs;
    this.n = d.native;
    this.sc = d.native.scratch;
    this.recv = d.native.recvBuffer;
    const dirPath = '/' + CTL_DIR;
    this.ctlPaths.set(d.ctl.getattr(dirPath).ino, dirPath);
    for (const name of d.ctl.readdir()) {
      if (name === '.' || name === '..') continue;
      this.ctlPaths.set(d.ctl.getattr(`${dirPath}/${name}`).ino, `${dirPath}/${name}`);
    }
    this.fs.onExternalChange = (inode, data) => this.invalidate(inode.ino, data);
  }

  /**
   * Tell the kernel to drop what it cached of an inode: attributes only, or
   * with `data` its page cache too (a no-op on dax=always, which caches none).
   */
  invalidate(ino: number, data: boolean): void {
    this.stats.invalidations++;
    this.n.notifyInvalInode(ino, data ? 0 : -1, 0);
  }

  // --- plumbing ----------------------------------------------------------------

  private caller(): Caller {
    const c = this.sc;
    return { uid: c[SCRATCH.CTX], gid: c[SCRATCH.CTX + 1], pid: c[SCRATCH.CTX + 2] };
  }

  /**
   * Run one request in its RequestContext: `fn` answers on success; any
   * throw (or rejection) answers its errno. A request still running when
   * fn returns can be interrupted until it settles. The time from here
   * until it settles counts in `opTime` (a wait for a busy page or lease
   * included).
   */
  private run(slot: number, op: string, fn: () => void | Promise<void>): void {
    const t0 = performance.now();
    this.stats.requests++;
    this.ops.set(op, (this.ops.get(op) ?? 0) + 1);
    const fail = (e: unknown) => {
      if (e instanceof FsError) {
        if (e.code !== 'ENOENT' && e.code !== 'ENODATA') this.d.log.debug({ op, code: e.code, reason: e.message }, 'request refused');
      } else {
        this.d.log.error({ op, err: e }, 'request failed unexpectedly');
      }
      this.n.replyErr(slot, -toNegErrno(e));
    };
    try {
      const ctx = new RequestContext();
      const r = runInRequest(ctx, fn);
      if (r instanceof Promise) {
        this.running.set(slot, ctx);
        r.catch(fail).finally(() => { this.running.delete(slot); this.spent(op, t0); });
        return;
      }
    } catch (e) { fail(e); }
    this.spent(op, t0);
  }

  /** Add the time since t0 (performance.now(), ms) to op's daemon time. */
  private spent(op: string, t0: number): void {
    this.opTime.set(op, (this.opTime.get(op) ?? 0) + (performance.now() - t0) * 1000);
  }

  /** A new directory handle: the next number from DIR_FH_BASE not in use. */
  private newDirFh(): number {
    const next = (fh: number) => (fh + 1 > Number.MAX_SAFE_INTEGER ? DIR_FH_BASE : fh + 1);
    let fh = this.nextDirFh;
    while (this.dirs.has(fh)) fh = next(fh);
    this.nextDirFh = next(fh);
    return fh;
  }

  /** fh as a file handle, or -1 when it is none (a directory handle, or no handle). */
  private fileFh(fh: number): number {
    return fh >= 0 && fh < DIR_FH_BASE ? fh : -1;
  }

  private inode(ino: number, op: string): Inode {
    const i = this.fs.inodeOf(ino);
    if (!i) throw new FsError('ESTALE', op, undefined, `node id ${ino} names no inode`);
    return i;
  }

  private isCtl(ino: number): boolean { return ino >= CTL_NODE_BASE; }

  private ctlPath(ino: number): string {
    const p = this.ctlPaths.get(ino);
    if (!p) throw new FsError('ESTALE', 'ctl');
    return p;
  }

  /** Attributes (and entry parameters) into scratch for replyAttr/replyEntry/dirAddPlus. */
  private putAttr(s: Stat, generation: number, entryTimeout: number): void {
    const a = this.sc, o = SCRATCH.ATTR;
    a[o] = s.ino; a[o + 1] = s.mode; a[o + 2] = s.nlink; a[o + 3] = s.uid; a[o + 4] = s.gid; a[o + 5] = s.rdev;
    a[o + 6] = s.size; a[o + 7] = s.blksize; a[o + 8] = s.blocks;
    a[o + 9] = s.atime.sec; a[o + 10] = s.atime.nsec; a[o + 11] = s.mtime.sec; a[o + 12] = s.mtime.nsec;
    a[o + 13] = s.ctime.sec; a[o + 14] = s.ctime.nsec;
    a[o + 15] = generation; a[o + 16] = ATTR_TIMEOUT; a[o + 17] = entryTimeout; a[o + 18] = s.ino;
  }

  /** Entry for an inode; counts one kernel reference. */
  private putEntry(inode: Inode): void {
    this.putAttr(this.fs.stat(inode), inode.generation, ENTRY_TIMEOUT);
    this.countRef(inode.ino);
  }

  /** The kernel took one more reference to `ino` (an entry it was handed). */
  private countRef(ino: number): void {
    this.fs.kernelRefs.set(ino, (this.fs.kernelRefs.get(ino) ?? 0) + 1);
  }

  private replyEntryFor(slot: number, inode: Inode): void {
    this.putEntry(inode);
    this.n.replyEntry(slot);
  }

  private noCtlChange(ino: number, op: string): void {
    if (this.isCtl(ino)) throw new FsError('EPERM', op, undefined, 'control files cannot be changed');
  }

  private dirOf(ino: number, op: string): Inode {
    this.noCtlChange(ino, op);
    return this.inode(ino, op);
  }

  /**
   * open/create reply flags. dax=always: FOPEN_DIRECT_IO on regular files (no
   * page cache, every read and write reaches the region, as fsdax). Always
   * FOPEN_NOFLUSH: pmemfs has nothing to do at close(2) (durability is
   * fsync's; record locks are the kernel's), so the kernel skips FLUSH.
   */
  private openReply(inode: Inode): number {
    return (this.fs.opts.dax === 'always' && inode.isReg ? OPEN_REPLY.DIRECT_IO : 0) | OPEN_REPLY.NOFLUSH;
  }

  // --- the handlers --------------------------------------------------------------

  handlers(): SessionHandlers {
    const fs = this.fs, n = this.n, ctl = this.d.ctl;
    return {
      lookup: (slot, parent, name) => this.run(slot, 'lookup', () => {
        if (parent === ROOT_ID && name === CTL_DIR) { this.ctlEntry(slot, '/' + CTL_DIR); return; }
        if (this.isCtl(parent)) { this.ctlEntry(slot, `${this.ctlPath(parent)}/${name}`); return; }
        const child = fs.lookupOrNull(this.inode(parent, 'lookup'), name);
        if (child) { this.replyEntryFor(slot, child); return; }
        // A negative entry: the kernel remembers for a while that the name is absent.
        this.sc.fill(0, SCRATCH.ATTR, SCRATCH.ATTR + 19);
        this.sc[SCRATCH.ATTR + 17] = NEGATIVE_TIMEOUT;
        n.replyEntry(slot);
      }),

      forget: (ino, nlookup) => {
        this.stats.forgets++;
        const left = (fs.kernelRefs.get(ino) ?? 0) - nlookup;
        if (left > 0) fs.kernelRefs.set(ino, left); else { fs.kernelRefs.delete(ino); fs.forgotten(ino); }
      },

      getattr: (slot, ino) => this.run(slot, 'getattr', () => {
        const s = this.isCtl(ino) ? ctl.getattr(this.ctlPath(ino)) : fs.stat(this.inode(ino, 'getattr'));
        this.putAttr(s, 0, 0);
        n.replyAttr(slot);
      }),

      setattr: (slot, ino, fh, valid) => this.run(slot, 'setattr', () => this.setattr(slot, ino, fh, valid)),

      readlink: (slot, ino) => this.run(slot, 'readlink', () => n.replyReadlink(slot, fs.readlink(this.inode(ino, 'readlink')))),

      mknod: (slot, parent, name, mode, rdev) => this.run(slot, 'mknod', () =>
        this.replyEntryFor(slot, fs.mknodAt(this.dirOf(parent, 'mknod'), name, mode, rdev, this.caller()))),

      mkdir: (slot, parent, name, mode) => this.run(slot, 'mkdir', () =>
        this.replyEntryFor(slot, fs.mkdirAt(this.dirOf(parent, 'mkdir'), name, mode, this.caller()))),

      symlink: (slot, target, parent, name) => this.run(slot, 'symlink', () =>
        this.replyEntryFor(slot, fs.symlinkAt(this.dirOf(parent, 'symlink'), name, target, this.caller()))),

      link: (slot, ino, newParent, newName) => this.run(slot, 'link', () => {
        this.noCtlChange(ino, 'link');
        const inode = this.inode(ino, 'link');
        fs.linkAt(inode, this.dirOf(newParent, 'link'), newName);
        this.replyEntryFor(slot, inode);
      }),

      unlink: (slot, parent, name) => this.run(slot, 'unlink', () => {
        fs.unlinkAt(this.dirOf(parent, 'unlink'), name);
        n.replyErr(slot, 0);
      }),

      rmdir: (slot, parent, name) => this.run(slot, 'rmdir', () => {
        fs.rmdirAt(this.dirOf(parent, 'rmdir'), name);
        n.replyErr(slot, 0);
      }),

      rename: (slot, parent, name, newParent, newName, flags) => this.run(slot, 'rename', () => {
        const sdir = this.dirOf(parent, 'rename'), ddir = this.dirOf(newParent, 'rename');
        if (flags & ~RENAME_NOREPLACE) throw new FsError('EINVAL', 'rename', undefined, 'only RENAME_NOREPLACE is supported');
        if (flags & RENAME_NOREPLACE && ddir.isDir && ddir.entry(newName) !== undefined) throw new FsError('EEXIST', 'rename', newName);
        fs.renameAt(sdir, name, ddir, newName);
        n.replyErr(slot, 0);
      }),

      open: (slot, ino, flags) => this.run(slot, 'open', () => {
        if (this.isCtl(ino)) {
          n.replyOpen(slot, ctl.open(this.ctlPath(ino), flags, this.caller()), OPEN_REPLY.DIRECT_IO);
          return;
        }
        const inode = this.inode(ino, 'open');
        n.replyOpen(slot, fs.open(inode, flags, this.caller()).fh, this.openReply(inode));
      }),

      create: (slot, parent, name, mode, flags) => this.run(slot, 'create', () => {
        const caller = { ...this.caller(), flags };
        const inode = fs.mknodAt(this.dirOf(parent, 'create'), name, mode, 0, caller);
        const h = fs.openInode(inode, flags, caller);
        this.putEntry(inode);
        n.replyCreate(slot, h.fh, this.openReply(inode));
      }),

      read: (slot, _ino, fh, size, off) => this.run(slot, 'read', () => {
        if (size > this.stats.max_read_bytes) this.stats.max_read_bytes = size;
        if (CtlDir.ownsFh(fh)) {
          const buf = this.stage(size);
          n.replyBuf(slot, buf, ctl.read(fh, buf, size, off));
          return;
        }
        const h = fs.handle(fh);
        if (h.inode.isDir) throw new FsError('EISDIR', 'read');
        const k = mapRead(fs.data, h.inode, size, off, this.sc, SCRATCH.SEGS, SCRATCH.MAX_SEGS);
        if (k >= 0) { n.replyRead(slot, k); return; }
        const buf = this.stage(size);
        n.replyBuf(slot, buf, readData(fs.data, h.inode, buf, size, off));
      }),

      write: (slot, _ino, fh, dataOff, size, off) => this.run(slot, 'write', () => {
        if (size > this.stats.max_write_bytes) this.stats.max_write_bytes = size;
        if (CtlDir.ownsFh(fh)) {
          // The command text is taken before the first await: recvBuffer is reused by the next request.
          return ctl.write(fh, this.recv.subarray(dataOff, dataOff + size), size).then((w) => n.replyWrite(slot, w));
        }
        const caller = this.caller();
        // A copy-on-write of pinned shared blocks waits (busy=wait): the data is taken first,
        // as recvBuffer is reused by the next request.
        const wait = fs.cowWait(fh, off, size);
        if (wait) {
          const data = Buffer.from(this.recv.subarray(dataOff, dataOff + size));
          return wait.then(() => n.replyWrite(slot, fs.write(fh, 'write', data, size, off, caller)));
        }
        // Copied once, from the receive buffer into the region.
        n.replyWrite(slot, fs.write(fh, 'write', this.recv, size, off, caller, dataOff));
      }),

      flush: (slot) => n.replyErr(slot, 0),

      release: (slot, _ino, fh) => this.run(slot, 'release', () => {
        if (CtlDir.ownsFh(fh)) ctl.release(fh); else fs.release(fh);
        n.replyErr(slot, 0);
      }),

      fsync: (slot, ino, datasync) => this.run(slot, 'fsync', () => { fs.fsync(this.isCtl(ino) ? null : (fs.inodeOf(ino) ?? null), datasync !== 0); n.replyErr(slot, 0); }),
      // A directory's own sequence decides, as for a file: its entries are durable once the
      // commit that covered them is (ext4 and XFS commit a directory's fsync only when its
      // transaction has not committed yet). A directory has no data, so otherwise nothing.
      fsyncdir: (slot, ino) => this.run(slot, 'fsyncdir', () => { fs.fsync(this.isCtl(ino) ? null : (fs.inodeOf(ino) ?? null)); n.replyErr(slot, 0); }),

      opendir: (slot, ino) => this.run(slot, 'opendir', () => {
        let stream: DirStream;
        if (this.isCtl(ino)) {
          const entries = ctl.readdir().map((name): [string, number] => [name, name === '..' ? ROOT_ID : name === '.' ? ino : ctl.getattr(`${this.ctlPath(ino)}/${name}`).ino]);
          stream = new DirStream(ino, entries, () => []);
        } else {
          const dir = this.inode(ino, 'opendir');
          if (!dir.isDir) throw new FsError('ENOTDIR', 'opendir');
          // No snapshot: the entries are read from the live map, or from their blocks on media, as the kernel asks (dirstream.ts);
          // a hash index by hash, leaf by leaf, with cookies that outlive splits, merges and eviction.
          stream = new DirStream(ino, [['.', dir.ino], ['..', fs.parentOf(dir).ino]], () => fs.listEntries(dir), fs.hashedListing(dir));
          stream.dir = dir;
          dir.dirStreams++;
        }
        const fh = this.newDirFh();
        this.dirs.set(fh, stream);
        n.replyOpen(slot, fh, 0);
      }),

      readdir: (slot, _ino, fh, _size, off, plus) => this.run(slot, 'readdir', () => {
        const d = this.dirs.get(fh);
        if (!d) throw new FsError('EBADF', 'readdir');
        d.read(off, (name, ino, next) => {
          if (!plus || this.isCtl(ino)) {
            // A plain listing loads no inode: the type of one not in core comes from its slot (ls -f, find).
            const mode = this.isCtl(ino) ? ctl.getattr(this.ctlPath(ino)).mode : fs.store.peekType(ino);
            if (!plus) return n.dirAdd(slot, name, ino, mode, next);
            // Control entries are listed without an entry: the kernel looks them up.
            this.sc.fill(0, SCRATCH.ATTR, SCRATCH.ATTR + 19);
            this.sc[SCRATCH.ATTR] = ino; this.sc[SCRATCH.ATTR + 1] = mode;
            return n.dirAddPlus(slot, name, next);
          }
          const inode = fs.inodeOf(ino);
          if (!inode) return true;   // removed since it was listed
          if (name === '.' || name === '..') {
            // No entry for these (the kernel ignores them): no lookup count.
            this.putAttr(fs.stat(inode), 0, 0);
            this.sc[SCRATCH.ATTR + 18] = 0;
            return n.dirAddPlus(slot, name, next);
          }
          this.putAttr(fs.stat(inode), inode.generation, ENTRY_TIMEOUT);
          if (!n.dirAddPlus(slot, name, next)) return false;
          this.countRef(ino);
          return true;
        });
        n.replyDir(slot);
      }),

      releasedir: (slot, _ino, fh) => {
        const d = this.dirs.get(fh);
        if (d?.dir) d.dir.dirStreams--;
        this.dirs.delete(fh);
        n.replyErr(slot, 0);
      },

      statfs: (slot) => this.run(slot, 'statfs', () => {
        const s = fs.statfs(), a = this.sc, o = SCRATCH.STATFS;
        a[o] = s.bsize; a[o + 1] = s.frsize; a[o + 2] = s.blocks; a[o + 3] = s.bfree; a[o + 4] = s.bavail;
        a[o + 5] = s.files; a[o + 6] = s.ffree; a[o + 7] = s.favail; a[o + 8] = s.namemax;
        n.replyStatfs(slot);
      }),

      setxattr: (slot, ino, name, value, flags) => this.run(slot, 'setxattr', () => {
        this.noCtlChange(ino, 'setxattr');
        fs.setxattr(this.inode(ino, 'setxattr'), name, value, flags, this.caller());
        // An access ACL is taken as the chmod it means: the kernel, which sent an xattr, must
        // learn the new mode before the caller's next stat (sent now, ahead of the reply).
        if (name === 'system.posix_acl_access') this.invalidate(ino, false);
        n.replyErr(slot, 0);
      }),

      getxattr: (slot, ino, name, size) => this.run(slot, 'getxattr', () => {
        const v = this.isCtl(ino) ? null : fs.getxattr(this.inode(ino, 'getxattr'), name);
        // Answered without building an error: the kernel asks for security.capability before
        // writes after every attribute refresh (4 of sqlite's 33 requests per rollback commit).
        if (!v) { n.replyErr(slot, ENODATA); return; }
        this.replyXattr(slot, v, size);
      }),

      listxattr: (slot, ino, size) => this.run(slot, 'listxattr', () => {
        const names = this.isCtl(ino) ? [] : fs.listxattr(this.inode(ino, 'listxattr'));
        this.replyXattr(slot, Buffer.from(names.map((x) => x + '\0').join('')), size);
      }),

      removexattr: (slot, ino, name) => this.run(slot, 'removexattr', () => {
        this.noCtlChange(ino, 'removexattr');
        fs.removexattr(this.inode(ino, 'removexattr'), name);
        n.replyErr(slot, 0);
      }),

      ioctl: (slot, ino, cmd, fh, _flags, input, outSize) => this.run(slot, 'ioctl', () => {
        // Unknown commands (a TCGETS from isatty() on every stdio open) get ENOTTY at once.
        if (this.isCtl(ino) || !this.d.ioctl.knows(cmd)) { n.replyErr(slot, ENOTTY); return; }
        const inode = this.inode(ino, 'ioctl');
        // What an ioctl changes behind the kernel (seal and pin fills, collapse/insert)
        // is reported where it happens, through PmemFs.externalChange.
        const done = (out: Buffer | null) => n.replyIoctl(slot, 0, out);
        const c = this.caller();
        // Leases and pins belong to the calling process: FUSE names the calling thread.
        const caller = { ...c, pid: threadGroupOf(c.pid) };
        const r = this.d.ioctl.dispatch({ caller, inode, path: `inode ${ino}`, cmd, handle: fs.fileHandle(this.fileFh(fh), inode), input, outSize });
        if (r instanceof Promise) return r.then(done);
        done(r);
      }),

      fallocate: (slot, ino, fh, mode, off, len) => this.run(slot, 'fallocate', () => {
        this.noCtlChange(ino, 'fallocate');
        const file = this.fileFh(fh);
        return fs.fallocate(this.inode(ino, 'fallocate'), mode, off, len, file >= 0 ? file : undefined).then(() => n.replyErr(slot, 0));
      }),

      lseek: (slot, ino, _fh, off, whence) => this.run(slot, 'lseek', () => {
        if (whence !== SEEK_DATA && whence !== SEEK_HOLE) throw new FsError('EINVAL', 'lseek');
        n.replyLseek(slot, seekData(fs.data, this.inode(ino, 'lseek'), off, whence === SEEK_DATA ? 'data' : 'hole'));
      }),

      copyFileRange: (slot, inoIn, fhIn, offIn, inoOut, fhOut, offOut, len, flags) => this.run(slot, 'copy_file_range', () => {
        if (flags !== 0) throw new FsError('EINVAL', 'copy_file_range', undefined, 'flags must be 0');
        if (this.isCtl(inoIn) || this.isCtl(inoOut)) throw new FsError('EOPNOTSUPP', 'copy_file_range');
        const r = this.copyRange(this.fileFh(fhIn), offIn, this.fileFh(fhOut), offOut, len);
        if (typeof r === 'number') n.replyWrite(slot, r);
        else return r.then((w) => n.replyWrite(slot, w));
      }),

      ended: (why) => this.d.onEnded(why),

      init: (info) => {
        this.init = info;
        this.d.onInit?.(info);
      },

      interrupt: (slot) => {
        this.stats.interrupts++;
        this.running.get(slot)?.interrupt();
      },
    };
  }

  private ctlEntry(slot: number, path: string): void {
    const s = this.d.ctl.getattr(path);
    this.putAttr(s, 0, ENTRY_TIMEOUT);
    this.n.replyEntry(slot);
  }

  private replyXattr(slot: number, v: Buffer, size: number): void {
    if (size === 0) { this.n.replyXattrSize(slot, v.length); return; }
    if (v.length > size) throw new FsError('ERANGE', 'getxattr');
    this.n.replyBuf(slot, v, v.length);
  }

  private stage(size: number): Buffer {
    if (!this.staging || this.staging.length < size) this.staging = Buffer.allocUnsafe(Math.max(size, 1 << 20));
    return this.staging;
  }

  private setattr(slot: number, ino: number, fh: number, valid: number): void | Promise<void> {
    const a = this.sc, o = SCRATCH.SETATTR;
    if (this.isCtl(ino)) {
      // `echo cmd > ctl` opens with O_TRUNC: truncating ctl is a no-op; anything else is refused.
      const path = this.ctlPath(ino);
      if (valid !== SET_SIZE || CtlDir.classify(path) !== 'ctl') throw new FsError('EPERM', 'setattr', path, 'control files cannot be changed');
      this.putAttr(this.d.ctl.getattr(path), 0, 0);
      this.n.replyAttr(slot);
      return;
    }
    const inode = this.inode(ino, 'setattr');
    const fs = this.fs;
    // Everything is read from scratch now: after an await it belongs to the next request.
    const [mode, uid, gid, size, at, atn, mt, mtn] = a.subarray(o, o + 8);
    const t = (set: number, now: number, s: number, ns: number): TimeSpec | undefined =>
      !(valid & set) ? undefined : valid & now ? 'now' : { sec: s, nsec: ns };
    const attrs: SetAttrs = {
      mode: valid & SET_MODE ? mode : undefined,
      uid: valid & SET_UID ? uid : undefined,
      gid: valid & SET_GID ? gid : undefined,
      size: valid & SET_SIZE ? size : undefined,
      atime: t(SET_ATIME, SET_ATIME_NOW, at, atn),
      mtime: t(SET_MTIME, SET_MTIME_NOW, mt, mtn),
      caller: valid & SET_SIZE ? this.caller() : undefined,
    };
    const file = this.fileFh(fh);
    // One request, one operation: every attribute or none (PmemFs.setattr).
    const reply = () => { this.putAttr(fs.stat(inode), 0, 0); this.n.replyAttr(slot); };
    const r = fs.setattr(inode, attrs, file >= 0 && fs.hasHandle(file) ? file : undefined);
    if (r) return r.then(reply);
    reply();
  }

  /**
   * copy_file_range within the mount. Where both offsets are block-aligned
   * the blocks are shared (a reflink, as XFS and Btrfs do: `cp` makes an
   * instant copy): whole blocks, plus the source's partial last block when
   * the copy reaches its EOF and ends at or past the destination's. What
   * cannot be shared (unaligned edges, a sealed or pinned side, ranges
   * overlapping in one file) is copied region to region in 1 MiB steps, each one write
   * transaction with write(2)'s checks.
   * @returns bytes copied (short at the source's EOF)
   */
  private copyRange(fhIn: number, offIn: number, fhOut: number, offOut: number, len: number): number | Promise<number> {
    const fs = this.fs;
    const src = fs.handle(fhIn), dst = fs.handle(fhOut);
    if (src.inode.isDir) throw new FsError('EISDIR', 'copy_file_range');
    const caller = this.caller();
    const end = Math.min(offIn + len, src.inode.size);
    if (end <= offIn) return 0;
    const bs = fs.blockSize;
    const shareable = offIn % bs === 0 && offOut % bs === 0 && dst.inode.isReg &&
      src.inode.sealKind === 'none' && dst.inode.sealKind === 'none' && !(dst.flags & constants.O_APPEND);
    if (!shareable) return this.copyBytes(src.inode, offIn, fhOut, offOut, end - offIn, caller);
    // Whole blocks, or to the source's EOF when that lands at or past the destination's.
    const toEof = end === src.inode.size && offOut + (end - offIn) >= dst.inode.size;
    const share = toEof ? end - offIn : Math.floor((end - offIn) / bs) * bs;
    if (share === 0) return this.copyBytes(src.inode, offIn, fhOut, offOut, end - offIn, caller);
    return fs.remap(dst.inode, src.inode, offIn, offOut, share, false, caller).then(
      (r) => {
        fs.externalChange(dst.inode, true);
        fs.data.share.copy_range_shared_bytes += r.bytes;
        try {
          return r.bytes + this.copyBytes(src.inode, offIn + r.bytes, fhOut, offOut + r.bytes, end - offIn - r.bytes, caller);
        } catch (e) {
          if (r.bytes === 0 || !(e instanceof FsError)) throw e;
          return r.bytes;   // what was shared is done: a short count, as copy_file_range returns
        }
      },
      // Busy pages, ENOSPC for metadata and the like: copy instead, with write(2)'s own errors.
      // An interrupted wait is the caller's answer, not a reason to copy.
      (e: unknown) => {
        if (!(e instanceof FsError) || e.code === 'EINTR') throw e;
        return this.copyBytes(src.inode, offIn, fhOut, offOut, end - offIn, caller);
      });
  }

  /**
   * Copy `len` bytes of src from offIn to handle fhOut at offOut, 1 MiB per
   * write transaction. A failure after some bytes were copied returns the
   * count done, as write(2) and Linux's copy_file_range do (the caller
   * retries the rest and then sees the error); a failure of the first step
   * throws.
   */
  private copyBytes(src: Inode, offIn: number, fhOut: number, offOut: number, len: number, caller: Caller): number {
    const fs = this.fs;
    let done = 0;
    while (done < len) {
      const step = Math.min(1 << 20, len - done);
      const buf = this.stage(step);
      const got = readData(fs.data, src, buf, step, offIn + done);
      if (got <= 0) break;
      try {
        fs.write(fhOut, `fh ${fhOut}`, buf, got, offOut + done, caller);
      } catch (e) {
        if (done === 0 || !(e instanceof FsError)) throw e;
        break;
      }
      done += got;
    }
    fs.data.share.copy_range_copied_bytes += done;
    return done;
  }
}

/**
 * The process (thread group) of thread `tid`, from /proc/TID/status: FUSE
 * reports the calling thread's id, while a lease or pin is held by the
 * process ("until that process exits", the contract) and a thread of it may
 * end first. The tid itself when /proc does not say (the thread is gone).
 */
export function threadGroupOf(tid: number): number {
  if (!(tid > 0)) return tid;
  try {
    const m = /^Tgid:\s*(\d+)$/m.exec(readFileSync(`/proc/${tid}/status`, 'latin1'));
    return m ? Number(m[1]) : tid;
  } catch {
    return tid;
  }
}
