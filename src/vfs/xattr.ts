/**
 * @file Extended attributes: user.* and trusted.* names stored with the
 * inode, plus three names pmemfs answers itself — the read-only state line
 * (uapi.XATTR_STATE), the persistent seal (uapi.XATTR_SEALED, set to 1 to
 * seal, removed to unseal, through PmemFs.seals), and POSIX ACLs.
 *
 * Caveat: pmemfs keeps no ACLs. An access ACL that only restates the mode
 * bits is taken as the chmod it means (cp -a sets one on every file); any
 * other ACL is EOPNOTSUPP, and reading or removing one is ENODATA, which
 * tools take as "no ACL".
 */
import { FsError } from '../errors.js';
import type { Inode } from '../inode/inode.js';
import * as uapi from '../uapi.js';
import { S_ISGID } from './attrs.js';
import type { Caller, PmemFs } from './fs.js';

const XATTR_NAME_MAX = 255;
const XATTR_SIZE_MAX = 65536;
const XATTR_TOTAL_MAX = 256 * 1024;
const XATTR_CREATE = 1;
const XATTR_REPLACE = 2;
const XATTR_POSIX_ACL_ACCESS = 'system.posix_acl_access';
const XATTR_POSIX_ACL_DEFAULT = 'system.posix_acl_default';
const ACL_USER_OBJ = 0x01, ACL_GROUP_OBJ = 0x04, ACL_OTHER = 0x20;

/** @returns the value, or null when absent (ENODATA to the caller; also for any name outside user./trusted., which pmemfs does not store) @throws FsError ERANGE (a name too long) */
export function getxattr(fs: PmemFs, t: Inode | string, name: string): Buffer | null {
  const { inode, path } = fs.target(t);
  if (name === uapi.XATTR_STATE) return Buffer.from(stateLine(fs, inode));
  if (name === uapi.XATTR_SEALED) return inode.persistentSeal ? Buffer.from('1') : null;
  // No ACL beyond the mode bits, and no default ACL: ENODATA, as ext4 answers then.
  if (name === XATTR_POSIX_ACL_ACCESS || name === XATTR_POSIX_ACL_DEFAULT) return null;
  // A namespace pmemfs does not store (security.*: the kernel asks for
  // security.capability before a write whenever it refreshed the attributes)
  // holds no attribute: ENODATA, as ext4 answers with no LSM, and without
  // building an error on this path.
  if (!name.startsWith('user.') && !name.startsWith('trusted.')) return null;
  checkName(name, 'getxattr', path);
  return inode.xattrs.get(name) ?? null;
}

/** The stored names, and the seal's when sealed (the state line is not listed). */
export function listxattr(fs: PmemFs, t: Inode | string): string[] {
  const { inode } = fs.target(t);
  const names = [...inode.xattrs.keys()];
  if (inode.persistentSeal) names.push(uapi.XATTR_SEALED);
  return names;
}

/**
 * setxattr(2); `flags` XATTR_CREATE / XATTR_REPLACE. Values up to 64 KiB,
 * all of an inode's names and values up to 256 KiB.
 * @throws FsError EROFS, EPERM (the state line), EINVAL, EEXIST, ENODATA, E2BIG, ENOSPC, ERANGE, EOPNOTSUPP
 */
export function setxattr(fs: PmemFs, t: Inode | string, name: string, value: Buffer, flags: number, caller: Caller): void {
  const { inode, path } = fs.target(t);
  fs.assertWritable('setxattr', path);
  if (name === uapi.XATTR_STATE) throw new FsError('EPERM', 'setxattr', path, `${name} is read-only`);
  if (name === XATTR_POSIX_ACL_ACCESS) { setAccessAcl(fs, inode, path, value, caller); return; }
  if (name === uapi.XATTR_SEALED) {
    if (value.toString('utf8').trim() !== '1') throw new FsError('EINVAL', 'setxattr', path, `${name} takes the value 1 (remove it to unseal)`);
    if (flags & XATTR_CREATE && inode.persistentSeal) throw new FsError('EEXIST', 'setxattr', path);
    needSeals(fs, path).sealInode(inode, path);
    return;
  }
  checkName(name, 'setxattr', path);
  if (value.length > XATTR_SIZE_MAX) throw new FsError('E2BIG', 'setxattr', path);
  const exists = inode.xattrs.has(name);
  if (flags & XATTR_CREATE && exists) throw new FsError('EEXIST', 'setxattr', path);
  if (flags & XATTR_REPLACE && !exists) throw new FsError('ENODATA', 'setxattr', path);
  let total = value.length + name.length;
  for (const [k, v] of inode.xattrs) if (k !== name) total += k.length + v.length;
  if (total > XATTR_TOTAL_MAX) throw new FsError('ENOSPC', 'setxattr', path, 'xattr space of the inode is full');
  fs.ops.apply('setxattr', [inode], (tx) => {
    tx.markDirty(inode);
    inode.xattrs.set(name, Buffer.from(value));
    inode.touchCtime();
    tx.markDirty(inode);
  });
}

/** removexattr(2); removing the seal's name unseals. @throws FsError EROFS, ENODATA, EPERM (the state line), ERANGE, EOPNOTSUPP */
export function removexattr(fs: PmemFs, t: Inode | string, name: string): void {
  const { inode, path } = fs.target(t);
  fs.assertWritable('removexattr', path);
  // Removing an ACL that is not there (cp -a clears a directory's default ACL): ENODATA, which libacl takes as done.
  if (name === XATTR_POSIX_ACL_ACCESS || name === XATTR_POSIX_ACL_DEFAULT) throw new FsError('ENODATA', 'removexattr', path);
  if (name === uapi.XATTR_STATE) throw new FsError('EPERM', 'removexattr', path, `${name} is read-only`);
  if (name === uapi.XATTR_SEALED) {
    if (!inode.persistentSeal) throw new FsError('ENODATA', 'removexattr', path);
    needSeals(fs, path).unsealInode(inode, path);
    return;
  }
  checkName(name, 'removexattr', path);
  if (!inode.xattrs.has(name)) throw new FsError('ENODATA', 'removexattr', path);
  fs.ops.apply('removexattr', [inode], (tx) => {
    tx.markDirty(inode);
    inode.xattrs.delete(name);
    inode.touchCtime();
    tx.markDirty(inode);
  });
}

/** The user.pmemfs.state line: sealed=… pins=… busy_pages=… extents=… (busy pages counted up to a million). */
export function stateLine(fs: PmemFs, inode: Inode): string {
  const pins = fs.pins.pinsOfIno(inode.ino);
  const busy = new Set<number>();
  for (const p of pins) for (let b = p.startBlock; b < p.startBlock + p.blocks && busy.size < 1e6; b++) busy.add(b);
  return `sealed=${inode.sealKind} pins=${pins.length} busy_pages=${busy.size} extents=${inode.bmap.count} leases=${inode.leases.length} size=${inode.size} blocks=${inode.bmap.mappedBlocks()}`;
}

/** @throws FsError ERANGE (empty or over 255 bytes), EOPNOTSUPP (not user.* or trusted.*) */
function checkName(name: string, op: string, path: string): void {
  if (Buffer.byteLength(name) > XATTR_NAME_MAX || name.length === 0) throw new FsError('ERANGE', op, path);
  if (!name.startsWith('user.') && !name.startsWith('trusted.')) {
    throw new FsError('EOPNOTSUPP', op, path, 'only user.* and trusted.* attributes are supported');
  }
}

/**
 * system.posix_acl_access: an ACL equivalent to the mode bits (only the
 * owner, group and other entries) is accepted as the chmod it means, as
 * Linux filesystems store it (posix_acl_equiv_mode, linux fs/posix_acl.c).
 * Value: the kernel's xattr form (u32 version 2, then u16 tag, u16 perm,
 * u32 id per entry).
 * @throws FsError EOPNOTSUPP (an extended ACL), EINVAL (malformed), EPERM (not the owner)
 */
function setAccessAcl(fs: PmemFs, inode: Inode, path: string, value: Buffer, caller: Caller): void {
  if (value.length < 4 || (value.length - 4) % 8 || value.readUInt32LE(0) !== 2) throw new FsError('EINVAL', 'setxattr', path, 'malformed POSIX ACL');
  const perms = new Map<number, number>();
  for (let o = 4; o < value.length; o += 8) perms.set(value.readUInt16LE(o), value.readUInt16LE(o + 2) & 7);
  const n = (value.length - 4) / 8;
  if (n !== 3 || !perms.has(ACL_USER_OBJ) || !perms.has(ACL_GROUP_OBJ) || !perms.has(ACL_OTHER)) {
    throw new FsError('EOPNOTSUPP', 'setxattr', path, 'POSIX ACLs beyond the mode bits are not supported');
  }
  if (caller.uid !== 0 && caller.uid !== inode.uid) throw new FsError('EPERM', 'setxattr', path, 'only the owner may change the mode');
  let mode = (inode.mode & ~0o777) | (perms.get(ACL_USER_OBJ)! << 6) | (perms.get(ACL_GROUP_OBJ)! << 3) | perms.get(ACL_OTHER)!;
  // As chmod: a caller outside the file's group (primary group: all a request carries) drops set-group-ID.
  if (caller.uid !== 0 && caller.gid !== inode.gid) mode &= ~S_ISGID;
  fs.chmod(inode, mode);
}

function needSeals(fs: PmemFs, path: string): NonNullable<PmemFs['seals']> {
  if (!fs.seals) throw new FsError('EOPNOTSUPP', 'seal', path, 'seals are not available on this mount');
  return fs.seals;
}
