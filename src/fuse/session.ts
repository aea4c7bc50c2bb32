/**
 * @file One FUSE session: libfuse3's low-level API driven from the Node
 * event loop (native/src/session.c and its parts), with FuseTransport's handlers.
 *
 * Mount options: default_permissions (the kernel checks access from
 * mode/uid/gid), allow_other when asked, ro on read-only mounts, and
 * fsname/subtype so mount(8) shows `REGION on MNT type fuse.pmemfs`. As a
 * non-root user libfuse mounts through the setuid fusermount3 (auto_unmount). Requests
 * of up to 1 MiB (init sets max_write; the kernel derives max_pages);
 * dax=always files are opened FOPEN_DIRECT_IO (no page cache, like fsdax);
 * MAP_SHARED on them needs FUSE_DIRECT_IO_ALLOW_MMAP, which native/src/init.c
 * adds to libfuse's INIT reply when the kernel offers it (Linux 6.6+). The
 * outcome is logged once per mount.
 */
import type { Logger } from 'pino';
import type { FuseInitInfo } from '../../native/index.js';
import { loadNative } from '../native.js';
import type { PmemService } from '../service.js';
import { FuseTransport } from './lowlevel.js';

export interface SessionOptions {
  allowOther: boolean;
  fsname: string;
  /** poll_us=N: after the request queue runs dry, look again for up to N µs before sleeping (0: never). */
  pollUs: number;
  /** idle_poll: while the daemon is busy, keep another CPU from halting (native/src/idlepoll.c). */
  idlePoll: boolean;
}

export class FuseSession {
  private transport: FuseTransport | null = null;
  private live = false;
  /** Called once if the kernel ends the session (umount or fusermount3 -u from outside). */
  onEnded: ((why: string) => void) | null = null;

  constructor(private readonly svc: PmemService, private readonly mnt: string, private readonly o: SessionOptions, private readonly log: Logger) {}

  /** The request handlers (stats for .pmemfs/stats). */
  get handlers(): FuseTransport | null { return this.transport; }

  /** Mount; returns once the kernel has the mount. @throws Error from libfuse (its reason is on stderr) */
  mount(): void {
    const native = loadNative();
    const region = this.svc.mounted.region;
    native.setRegion(region.fd, region.size);
    const idlePoll = native.setIdlePoll(this.o.idlePoll);   // false on one CPU
    this.transport = new FuseTransport({
      fs: this.svc.fs, ctl: this.svc.ctl, ioctl: this.svc.ioctls, native, log: this.log,
      onEnded: (why) => {
        if (!this.live) return;
        this.live = false;
        this.log.info({ why }, 'FUSE session ended');
        // Never from inside the poll callback: the stop path destroys the session.
        setImmediate(() => this.onEnded?.(why));
      },
      onInit: (info) => this.logInit(info),
      idlePoll,
    });
    // libfuse's option parser takes commas and backslashes as syntax.
    const opts = [`fsname=${this.o.fsname.replace(/[,\\]/g, '_')}`, 'subtype=pmemfs', 'default_permissions'];
    if (this.o.allowOther) opts.push('allow_other');
    if (this.svc.opts.readOnly) opts.push('ro');
    // Not root: libfuse tries /dev/fuse itself and gives up on EACCES (it is 0600 on some
    // hosts). auto_unmount sends it straight to the setuid fusermount3, which also
    // unmounts if the daemon dies.
    if (process.getuid?.() !== 0) opts.push('auto_unmount');
    native.sessionStart(this.mnt, opts.join(','), this.transport.handlers(), this.o.pollUs);
    this.live = true;
  }

  /** One line about FUSE_INIT; a warning when dax=always files cannot be mapped shared. */
  private logInit(info: FuseInitInfo): void {
    const init = { kernelProto: `${info.kernelMajor}.${info.kernelMinor}`, directIoAllowMmap: info.directIoAllowMmap, killPrivV2: info.killPrivV2 };
    if (info.problem) {
      this.log.warn({ init, problem: info.problem }, 'FUSE_INIT: FUSE_DIRECT_IO_ALLOW_MMAP could not be added to libfuse\'s reply; ' +
        'dax=always files cannot be mapped MAP_SHARED on this mount');
    } else if (this.svc.opts.dax === 'always' && !info.directIoAllowMmap) {
      this.log.warn({ init }, 'dax=always files cannot be mapped MAP_SHARED on this kernel (mmap fails with ENODEV: ' +
        'FUSE_DIRECT_IO_ALLOW_MMAP needs Linux 6.6 or later); mount with -o dax=never for clients that mmap');
    } else {
      this.log.info({ init }, 'FUSE connection initialized');
    }
  }

  /** Stop serving: unmount (lazily, so a busy mount still detaches) unless the kernel already ended it. */
  unmount(): void {
    const wasLive = this.live;
    this.live = false;
    if (!this.transport) return;
    loadNative().sessionStop(wasLive);
    loadNative().setIdlePoll(false);
    this.transport = null;
  }
}
