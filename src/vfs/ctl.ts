/**
 * @file The control directory MNT/.pmemfs/ (like ZFS's .zfs): hidden from the
 * root's readdir, reachable by path. Read-only files print one `key=value`
 * line per object and are generated afresh at every open (the transport opens them
 * direct_io, so no page cache can serve a stale copy). `ctl` takes one
 * command per write; a bad command fails the write with EINVAL and changes
 * nothing.
 */
import { FsError } from '../errors.js';
import { CTL_DIR, type CtlFile } from '../uapi.js';
import { nowTimespec, type Timespec } from '../types.js';
import type { Caller, Stat } from './fs.js';

/** Inode numbers of the virtual files: far above any inode table (which holds at most 2^22). */
const CTL_INO_BASE = 0xfffff000;
const CTL_FH_BASE = 0x80000000;

export interface CtlSource {
  /** Content generators, one per read-only file. */
  render(file: Exclude<CtlFile, 'ctl'>): string;
  /** Execute one ctl command line; throws FsError EINVAL for a malformed one. */
  command(line: string, caller: Caller): Promise<void>;
}

interface CtlHandle { file: CtlFile; content: Buffer; caller: Caller }

const FILES: Record<CtlFile, { mode: number; idx: number }> = {
  stats: { mode: 0o100444, idx: 1 }, busy: { mode: 0o100444, idx: 2 }, ctl: { mode: 0o100200, idx: 3 },
  seals: { mode: 0o100444, idx: 4 }, leases: { mode: 0o100444, idx: 5 },
};

export class CtlDir {
  private readonly handles = new Map<number, CtlHandle>();
  private nextFh = CTL_FH_BASE;
  private readonly born: Timespec = nowTimespec();

  constructor(private readonly src: CtlSource) {}

  /** 'dir' for /.pmemfs, the file name for a control file, null otherwise. */
  static classify(path: string): 'dir' | CtlFile | null {
    const prefix = '/' + CTL_DIR;
    if (path === prefix) return 'dir';
    if (!path.startsWith(prefix + '/')) return null;
    const name = path.slice(prefix.length + 1);
    return name in FILES ? (name as CtlFile) : null;
  }

  static isCtlPath(path: string): boolean {
    return path === '/' + CTL_DIR || path.startsWith('/' + CTL_DIR + '/');
  }

  static ownsFh(fh: number): boolean { return fh >= CTL_FH_BASE; }

  getattr(path: string): Stat {
    const kind = CtlDir.classify(path);
    if (!kind) throw new FsError('ENOENT', 'lookup', path);
    const t = this.born;
    const base = { uid: 0, gid: 0, rdev: 0, blksize: 4096, blocks: 0, atime: t, mtime: t, ctime: t };
    if (kind === 'dir') return { ...base, ino: CTL_INO_BASE, mode: 0o040555, nlink: 2, size: 0 };
    const f = FILES[kind];
    // Size is what a read would return now; readers stop at the first short read anyway.
    const size = kind === 'ctl' ? 0 : Buffer.byteLength(this.src.render(kind));
    return { ...base, ino: CTL_INO_BASE + f.idx, mode: f.mode, nlink: 1, size };
  }

  readdir(): string[] { return ['.', '..', ...Object.keys(FILES)]; }

  open(path: string, flags: number, caller: Caller): number {
    const kind = CtlDir.classify(path);
    if (!kind || kind === 'dir') throw new FsError(kind ? 'EISDIR' : 'ENOENT', 'open', path);
    const wantWrite = (flags & 3) !== 0;
    if (kind === 'ctl' && !wantWrite) throw new FsError('EACCES', 'open', path, 'ctl is write-only');
    if (kind !== 'ctl' && wantWrite) throw new FsError('EACCES', 'open', path, 'read-only control file');
    if (kind === 'ctl' && caller.uid !== 0) throw new FsError('EPERM', 'open', path, 'ctl is for root only');
    const content = kind === 'ctl' ? Buffer.alloc(0) : Buffer.from(this.src.render(kind));
    const fh = this.nextFh++;
    this.handles.set(fh, { file: kind, content, caller });
    return fh;
  }

  read(fh: number, buf: Buffer, len: number, off: number): number {
    const h = this.handles.get(fh);
    if (!h) throw new FsError('EBADF', 'read');
    if (off >= h.content.length) return 0;
    return h.content.copy(buf, 0, off, Math.min(h.content.length, off + len));
  }

  /** One command per write (trailing newline optional). */
  async write(fh: number, buf: Buffer, len: number): Promise<number> {
    const h = this.handles.get(fh);
    if (!h || h.file !== 'ctl') throw new FsError('EBADF', 'write');
    const text = buf.subarray(0, len).toString('utf8').replace(/\n$/, '');
    if (text.includes('\n')) throw new FsError('EINVAL', 'ctl', undefined, 'one command per write');
    await this.src.command(text.trim(), h.caller);
    return len;
  }

  release(fh: number): void { this.handles.delete(fh); }
}
