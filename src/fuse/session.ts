/**
 * @file One FUSE session: the native shim's hook configured (extra mount
 * args, direct_io for control files, ioctl/fallocate/utimens handlers),
 * fuse-native mounted with the adapter's op table, and a clean stop.
 *
 * Mount arguments (libfuse 2 high-level): big_writes (128 KiB writes instead
 * of 4 KiB: ~10× write throughput), use_ino (our inode numbers in st_ino, so
 * hard links show one inode), default_permissions (the kernel checks access
 * from mode/uid/gid; fuse-native gives no caller context on most ops), and
 * attr_timeout=0 (hard links: see mount()), and direct_io on dax=always mounts (no page cache: every read/write reaches the
 * region, like fsdax; client mmap then fails with ENODEV).
 */
import type { Logger } from 'pino';
import { loadFuse, loadShim } from '../native.js';
import type { PmemService } from '../service.js';
import { CTL_DIR } from '../uapi.js';
import { ROOT_CALLER, type Caller } from '../vfs/fs.js';
import { FuseAdapter } from './adapter.js';

export interface SessionOptions {
  allowOther: boolean;
  fsname: string;
}

export class FuseSession {
  private fuse: { mount(cb: (err?: Error) => void): void; unmount(cb: (err?: Error) => void): void } | null = null;

  constructor(private readonly svc: PmemService, private readonly mnt: string, private readonly o: SessionOptions, private readonly log: Logger) {}

  /** Mount; resolves once the kernel has the mount. @throws Error from libfuse/fuse-native */
  async mount(): Promise<void> {
    const shim = loadShim();
    const Fuse = loadFuse();
    // fuse_new (library) options go through the shim; kernel mount options through fuse-native.
    // attr_timeout=0: libfuse 2's high-level API gives every *name* its own
    // kernel inode, so a hard link's other names would show a stale nlink
    // (and ctime) for attr_timeout seconds after link/unlink.
    const args = ['-obig_writes', '-ouse_ino', '-oattr_timeout=0'];
    if (this.svc.opts.dax === 'always') args.push('-odirect_io');
    shim.setMountArgs(args);
    shim.setDirectIoPrefix('/' + CTL_DIR + '/');
    const adapter = new FuseAdapter({
      fs: this.svc.fs, ctl: this.svc.ctl, ioctl: this.svc.ioctls, log: this.log,
      takeCaller: (path: string): Caller => shim.takeCallerContext(path) ?? ROOT_CALLER,
    });
    shim.setHandlers(adapter.shimHandlers());
    const fuse = new Fuse(this.mnt, adapter.ops(), {
      timeout: false, mkdir: false, force: false, defaultPermissions: true, allowOther: this.o.allowOther,
      fsname: this.o.fsname.replace(/[,\\]/g, '_'), subtype: 'pmemfs',
    });
    await new Promise<void>((resolve, reject) => fuse.mount((err?: Error) => (err ? reject(err) : resolve())));
    this.fuse = fuse;
  }

  /** Ask the kernel to unmount (lazy, so a busy mount still detaches); resolves when done. */
  unmount(): Promise<void> {
    const f = this.fuse;
    this.fuse = null;
    if (!f) return Promise.resolve();
    return new Promise((resolve) => f.unmount((err?: Error) => {
      if (err) this.log.warn({ err }, 'unmount reported an error');
      resolve();
    }));
  }
}
