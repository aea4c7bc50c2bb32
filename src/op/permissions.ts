/**
 * @file Who may do what: the one table of permission rules for every pmemfs
 * ioctl and control-file command, enforced at dispatch (src/vfs/ioctl.ts,
 * the ctl writer in src/service.ts) before any handler runs. Handlers below
 * it may assume the caller passed.
 *
 * The kernel has already checked the open that produced the handle (the
 * mount always uses default_permissions), so the handle's access mode is
 * the caller's proven right to the file. The rules follow the VFS entry
 * points they mirror (fs/ioctl.c, fs/remap_range.c, fs/open.c):
 *
 * - A layout change (collapse, insert, unshare, clone onto the file) needs a
 *   handle open for writing, EBADF otherwise, as fallocate(2) and
 *   FICLONE's destination (generic_file_rw_checks).
 * - Seal, unseal and lease break need CAP_LINUX_IMMUTABLE; a FUSE request
 *   carries no capability set, so uid 0 stands for it (EPERM otherwise), as
 *   for FS_IOC_SETFLAGS with FS_IMMUTABLE_FL.
 * - FS_IOC_FSSETXATTR needs the owner or root (inode_owner_or_capable, EPERM).
 * - A lease needs a handle open for writing, EACCES (MAP_DIRECT needs
 *   PROT_WRITE on a file opened for writing).
 * - A pin needs read access (EACCES through an O_WRONLY handle); through a
 *   handle not open for writing it never allocates: a hole or unwritten
 *   extent in its range is EBADF (a read fault cannot fill a hole of a file
 *   the caller may not write).
 * - Dedupe needs a handle open for writing, or the owner, or root (EPERM:
 *   allow_file_dedupe); a dedupe changes no bytes, so a read-only handle of
 *   one's own file is enough.
 * - The clone/dedupe source is a descriptor of the calling process open for
 *   reading (FICLONE's src_fd), never a bare inode number: see
 *   src/op/source-fd.ts.
 * - Pins and leases are counted per user (MAX_PINS_PER_USER in the pin
 *   registry, MAX_LEASES_PER_USER in the seal manager; root is exempt from
 *   the per-user count but not from the global one): EAGAIN past it, so
 *   one user cannot exhaust the shared pools.
 * - Control-file commands are root's: `ctl` opens only for uid 0, and every
 *   command checks it again here.
 *
 * Queries (getbmap, region, fsgetxattr) need only a handle: the caller
 * could open the file, so it may see where its bytes live, as FIEMAP shows
 * physical addresses to anyone who can open a file.
 */
import { constants as C } from 'node:fs';
import { FsError } from '../errors.js';
import * as uapi from '../uapi.js';
import type { Inode } from '../inode/inode.js';
import type { Caller, Handle } from '../vfs/fs.js';

/** What the handle the ioctl came through must allow. */
export type HandleNeed =
  | 'none'    // nothing: a query, or a command that checks privilege only
  | 'read'    // open for reading (O_RDONLY or O_RDWR): EACCES otherwise
  | 'write'   // open for writing (O_WRONLY or O_RDWR): EBADF otherwise (fallocate's errno)
  | 'lease';  // open for writing: EACCES otherwise (MAP_DIRECT's errno)

/** Who may issue it, beyond the handle. */
export type Privilege =
  | 'anyone'
  | 'cap_linux_immutable'  // uid 0: EPERM otherwise
  | 'owner_or_root'        // the file's owner or uid 0: EPERM otherwise
  | 'write_owner_or_root'; // a handle open for writing, or the owner, or uid 0: EPERM otherwise (dedupe)

export interface Rule {
  /** The operation's name in messages and logs. */
  name: string;
  handle: HandleNeed;
  privilege: Privilege;
  /** The shared pool the command takes from, limited per user. */
  limit?: 'pins' | 'leases';
  /** The handle must not be O_APPEND (EBADF: a clone is not an append). */
  noAppend?: boolean;
}

/** The per-user limits, enforced where each pool is taken (the pin registry, the seal manager). */
export { MAX_PINS_PER_USER } from '../layout/busy.js';
export { MAX_LEASES_PER_USER } from '../seal/seal.js';

/** Every pmemfs ioctl's rule, by command number. An ioctl missing here is refused (ENOTTY). */
export const IOCTL_RULES: ReadonlyMap<number, Rule> = new Map<number, Rule>([
  [uapi.PMEMFS_IOC_SEAL, { name: 'seal', handle: 'none', privilege: 'cap_linux_immutable' }],
  [uapi.PMEMFS_IOC_UNSEAL, { name: 'unseal', handle: 'none', privilege: 'cap_linux_immutable' }],
  [uapi.PMEMFS_IOC_LEASE, { name: 'lease', handle: 'lease', privilege: 'anyone', limit: 'leases' }],
  [uapi.PMEMFS_IOC_UNLEASE, { name: 'unlease', handle: 'none', privilege: 'anyone' }],
  [uapi.PMEMFS_IOC_BREAK, { name: 'break', handle: 'none', privilege: 'cap_linux_immutable' }],
  [uapi.PMEMFS_IOC_PIN, { name: 'pin', handle: 'read', privilege: 'anyone', limit: 'pins' }],
  [uapi.PMEMFS_IOC_UNPIN, { name: 'unpin', handle: 'none', privilege: 'anyone' }],   // own pins only: PinManager.unpin
  [uapi.PMEMFS_IOC_GETBMAP, { name: 'getbmap', handle: 'none', privilege: 'anyone' }],
  [uapi.PMEMFS_IOC_REGION, { name: 'region', handle: 'none', privilege: 'anyone' }],
  [uapi.PMEMFS_IOC_FCOLLAPSE, { name: 'collapse', handle: 'write', privilege: 'anyone' }],
  [uapi.PMEMFS_IOC_FINSERT, { name: 'insert', handle: 'write', privilege: 'anyone' }],
  [uapi.PMEMFS_IOC_FUNSHARE, { name: 'unshare', handle: 'write', privilege: 'anyone' }],
  [uapi.PMEMFS_IOC_REFLINK, { name: 'reflink', handle: 'write', privilege: 'anyone', noAppend: true }],
  [uapi.PMEMFS_IOC_DEDUPE, { name: 'dedupe', handle: 'none', privilege: 'write_owner_or_root', noAppend: true }],
  [uapi.FS_IOC_FSGETXATTR, { name: 'fsgetxattr', handle: 'none', privilege: 'anyone' }],
  [uapi.FS_IOC_FSSETXATTR, { name: 'fssetxattr', handle: 'none', privilege: 'owner_or_root' }],
]);

/** Control-file commands (MNT/.pmemfs/ctl): all root's. */
export const CTL_RULES: ReadonlyMap<string, Rule> = new Map<string, Rule>([
  ['pin', { name: 'ctl pin', handle: 'none', privilege: 'cap_linux_immutable' }],
  ['unpin', { name: 'ctl unpin', handle: 'none', privilege: 'cap_linux_immutable' }],
  ['break', { name: 'ctl break', handle: 'none', privilege: 'cap_linux_immutable' }],
  ['powerfail', { name: 'ctl powerfail', handle: 'none', privilege: 'cap_linux_immutable' }],
]);

const O_ACCMODE = 3;

/** Whether a handle was opened for reading (O_RDONLY or O_RDWR). */
export function handleReads(h: Handle | null): boolean {
  return h !== null && (h.flags & O_ACCMODE) !== C.O_WRONLY;
}

/** Whether a handle was opened for writing (O_WRONLY or O_RDWR). */
export function handleWrites(h: Handle | null): boolean {
  return h !== null && (h.flags & O_ACCMODE) !== C.O_RDONLY;
}

export interface AuthRequest {
  caller: Caller;
  /** The file the request is about; null for a control command. */
  inode: Inode | null;
  /** The handle the request came through, already checked to be open on `inode`; null when there is none. */
  handle: Handle | null;
  path: string;
}

/**
 * Enforce `rule` for one request; returns nothing, throws the errno the
 * table names. Per-user limits are checked where the pool is taken, since
 * only then is the count known (EAGAIN).
 * @throws FsError EBADF (handle not open for writing, or O_APPEND), EACCES (handle not open for reading; lease without
 *   write access), EPERM (privilege)
 */
export function authorize(rule: Rule, r: AuthRequest): void {
  const { caller, inode, handle, path } = r;
  switch (rule.handle) {
    case 'none': break;
    case 'read':
      if (!handleReads(handle)) throw new FsError('EACCES', rule.name, path, `${rule.name} needs the file open for reading`);
      break;
    case 'write':
      if (!handleWrites(handle)) throw new FsError('EBADF', rule.name, path, `${rule.name} changes the block map: it needs the file open for writing`);
      break;
    case 'lease':
      if (!handleWrites(handle)) throw new FsError('EACCES', rule.name, path, 'a lease needs the file open for writing');
      break;
  }
  if (rule.noAppend && handle && handle.flags & C.O_APPEND) throw new FsError('EBADF', rule.name, path, 'the file is open with O_APPEND');
  const root = caller.uid === 0;
  switch (rule.privilege) {
    case 'anyone': break;
    case 'cap_linux_immutable':
      if (!root) throw new FsError('EPERM', rule.name, path, `${rule.name} needs CAP_LINUX_IMMUTABLE (root)`);
      break;
    case 'owner_or_root':
      if (!root && caller.uid !== inode?.uid) throw new FsError('EPERM', rule.name, path, `only the owner or root may ${rule.name}`);
      break;
    case 'write_owner_or_root':
      if (!root && caller.uid !== inode?.uid && !handleWrites(handle)) {
        throw new FsError('EPERM', rule.name, path, `${rule.name} needs the file open for writing, or its owner, or root`);
      }
      break;
  }
}
