/**
 * @file The clone/dedupe source as FICLONE takes it: a file descriptor of the
 * calling process (src_fd), never a bare inode number. FUSE forwards the
 * ioctl's payload bytes, not the descriptor, so the daemon looks the number
 * up in the caller's /proc/PID/fdinfo/FD: its open flags (must allow
 * reading: the kernel checked that open), its mnt_id (must be a mount of
 * this filesystem: EXDEV otherwise, as a clone across filesystems) and its
 * inode number (st_ino, which for FUSE is our inode number).
 *
 * Only /proc files that never reach this filesystem are read (fdinfo and
 * mountinfo), so the lookup cannot wait on the daemon's own thread. The
 * caller is the thread the request header names; it is blocked in the ioctl,
 * so the descriptor it named is its own. Another thread of the same
 * process may swap the number meanwhile: whatever we then read is still a
 * descriptor that process held open for reading on this filesystem.
 */
import * as fs from 'node:fs';
import { FsError } from '../errors.js';
import type { Caller } from '../vfs/fs.js';

/** What a caller's descriptor refers to. */
export interface SourceFd { ino: number }

/** Resolve descriptor `fd` of the process in `caller` to one of our inodes. @throws FsError EBADF, EXDEV */
export type SourceFdResolver = (caller: Caller, fd: number, op: string) => SourceFd;

const O_ACCMODE = 3, O_WRONLY = 1;
const O_PATH = 0o10000000;

/** One /proc/PID/fdinfo/FD, the fields we use. */
interface FdInfo { flags: number; mntId: number; ino: number }

function readFdInfo(pid: number, fd: number): FdInfo | null {
  let text: string;
  try { text = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch { return null; }
  const field = (k: string, radix: number) => {
    const m = new RegExp(`^${k}:\\s*([0-9a-f]+)`, 'm').exec(text);
    return m ? parseInt(m[1]!, radix) : NaN;
  };
  const info = { flags: field('flags', 8), mntId: field('mnt_id', 10), ino: field('ino', 10) };
  return Number.isNaN(info.flags) || Number.isNaN(info.mntId) || Number.isNaN(info.ino) ? null : info;
}

/** mnt_id → "major:minor" of every mount in a mountinfo file (proc_pid_mountinfo(5)). */
function mountDevices(path: string): Map<number, { dev: string; point: string; fstype: string }> {
  const out = new Map<number, { dev: string; point: string; fstype: string }>();
  let text: string;
  try { text = fs.readFileSync(path, 'utf8'); } catch { return out; }
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (f.length < 7 || sep < 0) continue;
    out.set(Number(f[0]), { dev: f[2]!, point: unescapeMountinfo(f[4]!), fstype: f[sep + 1] ?? '' });
  }
  return out;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The resolver for a live mount at `mountpoint` (an absolute, resolved path):
 * a descriptor qualifies when the mount it was opened through has the same
 * device number as ours (bind mounts and other mount namespaces included).
 * Our device number is read from this process's mountinfo on first use,
 * after the mount is live.
 */
export function procSourceResolver(mountpoint: string): SourceFdResolver {
  let ourDev: string | null = null;
  const dev = (): string | null => {
    if (ourDev) return ourDev;
    let found: string | null = null;
    for (const m of mountDevices('/proc/self/mountinfo').values()) if (m.point === mountpoint && m.fstype.startsWith('fuse')) found = m.dev;
    return (ourDev = found);
  };
  return (caller, fd, op) => {
    if (!Number.isSafeInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new FsError('EBADF', op, undefined, `source descriptor ${fd} is not a descriptor`);
    const info = caller.pid > 0 ? readFdInfo(caller.pid, fd) : null;
    if (!info) throw new FsError('EBADF', op, undefined, `process ${caller.pid} has no descriptor ${fd}`);
    if (info.flags & O_PATH || (info.flags & O_ACCMODE) === O_WRONLY) throw new FsError('EBADF', op, undefined, `source descriptor ${fd} is not open for reading`);
    const mine = dev();
    const theirs = mountDevices(`/proc/${caller.pid}/mountinfo`).get(info.mntId);
    if (!mine || !theirs || theirs.dev !== mine) throw new FsError('EXDEV', op, undefined, `source descriptor ${fd} is not on this pmemfs mount`);
    return { ino: info.ino };
  };
}
