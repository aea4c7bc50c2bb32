/**
 * @file The control directory MNT/.pmemfs/ (like ZFS's .zfs): hidden from the
 * root's readdir, reachable by path. Read-only files print one `key=value`
 * line per object and are generated afresh at every open (the transport opens them
 * direct_io, so no page cache can serve a stale copy). `ctl` takes one
 * command per write; a bad command fails the write with EINVAL and changes
 * nothing.
 *
 * getattr is O(1): the read-only files report size 0, as /proc files do
 * (readers read to EOF; the content is made at open, for that opener).
 * Who reads decides what is shown: a non-root reader sees the path of a
 * file only when they could resolve it themselves (see
 * PmemService.pathResolver), inode numbers otherwise.
 */
import { FsError } from '../errors.js';
import { CTL_DIR, type CtlFile } from '../uapi.js';
import { nowTimespec, type Timespec } from '../types.js';
import { FILE_FH_LIMIT, type Caller, type Stat } from './fs.js';

/** Inode numbers of the virtual files: far above any inode table (which holds at most 2^22). */
const CTL_INO_BASE = 0xfffff000;
/** Control-file handles: [2^47, 2^48), between file handles and directory handles (see FILE_FH_LIMIT). */
const CTL_FH_BASE = FILE_FH_LIMIT;
const CTL_FH_END = 2 ** 48;

export interface CtlSource {
  /** Content generators, one per read-only file, for the reader `caller`. */
  render(file: Exclude<CtlFile, 'ctl'>, caller: Caller): string;
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

  static ownsFh(fh: number): boolean { return fh >= CTL_FH_BASE && fh < CTL_FH_END; }

  getattr(path: string): Stat {
    const kind = CtlDir.classify(path);
    if (!kind) throw new FsError('ENOENT', 'lookup', path);
    const t = this.born;
    const base = { uid: 0, gid: 0, rdev: 0, blksize: 4096, blocks: 0, atime: t, mtime: t, ctime: t };
    if (kind === 'dir') return { ...base, ino: CTL_INO_BASE, mode: 0o040555, nlink: 2, size: 0 };
    return { ...base, ino: CTL_INO_BASE + FILES[kind].idx, mode: FILES[kind].mode, nlink: 1, size: 0 };
  }

  readdir(): string[] { return ['.', '..', ...Object.keys(FILES)]; }

  open(path: string, flags: number, caller: Caller): number {
    const kind = CtlDir.classify(path);
    if (!kind || kind === 'dir') throw new FsError(kind ? 'EISDIR' : 'ENOENT', 'open', path);
    const wantWrite = (flags & 3) !== 0;
    if (kind === 'ctl' && !wantWrite) throw new FsError('EACCES', 'open', path, 'ctl is write-only');
    if (kind !== 'ctl' && wantWrite) throw new FsError('EACCES', 'open', path, 'read-only control file');
    if (kind === 'ctl' && caller.uid !== 0) throw new FsError('EPERM', 'open', path, 'ctl is for root only');
    const content = kind === 'ctl' ? Buffer.alloc(0) : Buffer.from(this.src.render(kind, caller));
    const fh = this.newFh();
    this.handles.set(fh, { file: kind, content, caller });
    return fh;
  }

  /** The next handle number of this space not in use (wraps within [CTL_FH_BASE, CTL_FH_END)). */
  private newFh(): number {
    if (this.handles.size >= CTL_FH_END - CTL_FH_BASE) throw new FsError('EMFILE', 'open', undefined, 'too many open control files');
    let fh = this.nextFh;
    while (this.handles.has(fh)) fh = fh + 1 >= CTL_FH_END ? CTL_FH_BASE : fh + 1;
    this.nextFh = fh + 1 >= CTL_FH_END ? CTL_FH_BASE : fh + 1;
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
