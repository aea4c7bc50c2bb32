/**
 * @file The inode fork: everything of an inode that is not fixed-size — its
 * block map (extent records), extended attributes, directory entries and
 * symlink target — encoded as one checksummed blob. A fork of up to
 * INLINE_FORK_MAX bytes lives inside the inode slot; a larger one in an extent
 * of its own, rewritten copy-on-write so a crash leaves the old or the new
 * fork, never a mix (the slot's forkCrc tells which one is whole).
 *
 * Layout: u8 version, then sections `u8 tag, u32 count, entries...`, then tag 0.
 *   EXTENTS  24 bytes each: u64 fileBlock, u64 regionBlock, u32 len, u32 flags
 *   XATTRS   u16 nameLen, u32 valueLen, name, value
 *   DIRENTS  u64 ino, u16 nameLen, name
 *   SYMLINK  count = byte length, then the target bytes
 */
import { FormatError, readU64, writeU64 } from './layout.js';

/**
 * Limits a decoded fork is held to (the filesystem's own: src/vfs/lookup.ts,
 * namespace.ts and xattr.ts refuse anything beyond them), so a forged fork is refused by name
 * instead of being taken in: names of 1..255 bytes without '/' or NUL, an
 * xattr value of at most 64 KiB and 256 KiB of values per inode, a symlink
 * target of 1..4095 bytes.
 */
export const FORK_NAME_MAX = 255;
export const FORK_XATTR_VALUE_MAX = 65536;
export const FORK_XATTR_VALUES_MAX = 256 * 1024;
export const FORK_SYMLINK_MAX = 4095;

export const FORK_VERSION = 1;
export const EXTENT_REC_SIZE = 24;
const TAG_END = 0, TAG_EXTENTS = 1, TAG_XATTRS = 2, TAG_DIRENTS = 3, TAG_SYMLINK = 4;

/**
 * Extent flags on media (XFS's ext_state). EXT_SHARED is reserved and never
 * set: whether a block is shared is the refcount index's to say (as XFS
 * asks its refcount btree), so the other owner's COW never leaves a stale flag.
 */
export const EXT_UNWRITTEN = 0x1;
export const EXT_SHARED = 0x2;
export const EXT_KNOWN = EXT_UNWRITTEN | EXT_SHARED;

/** An extent record: `len` blocks of the file from `fileBlock` live at region block `regionBlock`. */
export interface ExtentRec { fileBlock: number; regionBlock: number; len: number; flags: number }

export interface Fork {
  extents: ExtentRec[];
  xattrs: Map<string, Buffer>;
  dirents: Map<string, number> | null;   // directories only: name -> ino
  symlink: Buffer | null;                // symlinks only
}

export const emptyFork = (): Fork => ({ extents: [], xattrs: new Map(), dirents: null, symlink: null });

/** Encoded size in bytes, without encoding. */
export function forkSize(f: Fork): number {
  let n = 2;
  if (f.extents.length) n += 5 + f.extents.length * EXTENT_REC_SIZE;
  if (f.xattrs.size) { n += 5; for (const [k, v] of f.xattrs) n += 6 + Buffer.byteLength(k) + v.length; }
  if (f.dirents) { n += 5; for (const k of f.dirents.keys()) n += 10 + Buffer.byteLength(k); }
  if (f.symlink) n += 5 + f.symlink.length;
  return n;
}

/** Encode a fork into a new buffer of exactly forkSize(f) bytes. */
export function encodeFork(f: Fork): Buffer {
  const b = Buffer.allocUnsafe(forkSize(f));
  let p = 0;
  const section = (tag: number, count: number) => { b[p++] = tag; b.writeUInt32LE(count, p); p += 4; };
  b[p++] = FORK_VERSION;
  if (f.extents.length) {
    section(TAG_EXTENTS, f.extents.length);
    for (const e of f.extents) {
      writeU64(b, p, e.fileBlock); writeU64(b, p + 8, e.regionBlock);
      b.writeUInt32LE(e.len, p + 16); b.writeUInt32LE(e.flags, p + 20); p += EXTENT_REC_SIZE;
    }
  }
  if (f.xattrs.size) {
    section(TAG_XATTRS, f.xattrs.size);
    for (const [k, v] of f.xattrs) {
      const kl = b.write(k, p + 6, 'utf8');
      b.writeUInt16LE(kl, p); b.writeUInt32LE(v.length, p + 2); p += 6 + kl;
      p += v.copy(b, p);
    }
  }
  if (f.dirents) {
    section(TAG_DIRENTS, f.dirents.size);
    for (const [k, ino] of f.dirents) {
      const kl = b.write(k, p + 10, 'utf8');
      writeU64(b, p, ino); b.writeUInt16LE(kl, p + 8); p += 10 + kl;
    }
  }
  if (f.symlink) { section(TAG_SYMLINK, f.symlink.length); p += f.symlink.copy(b, p); }
  b[p++] = TAG_END;
  if (p !== b.length) throw new Error(`encodeFork: wrote ${p} bytes, sized ${b.length}`);
  return b;
}

/**
 * Whether a decoded directory-entry name may be stored: 1..255 bytes that
 * were valid UTF-8 (names reach the store as strings, so a name that does not
 * re-encode to its own bytes was not written by pmemfs), no '/' or NUL, not
 * '.' or '..'.
 */
export function validEntryName(name: string, bytes: number): boolean {
  return bytes >= 1 && bytes <= FORK_NAME_MAX && Buffer.byteLength(name, 'utf8') === bytes
    && !name.includes('/') && !name.includes('\0') && name !== '.' && name !== '..';
}

/**
 * Decode a fork.
 * @throws FormatError when the blob is malformed (truncated, unknown tag/flags,
 *   a section twice, a name, value or target beyond the limits above, a name twice)
 */
export function decodeFork(b: Buffer, what: string): Fork {
  const f = emptyFork();
  let p = 0;
  const need = (n: number) => { if (p + n > b.length) throw new FormatError(`${what}: fork truncated at byte ${p}`); };
  const seen = new Set<number>();
  need(1);
  if (b[p++] !== FORK_VERSION) throw new FormatError(`${what}: fork version ${b[0]}`);
  for (;;) {
    need(1);
    const tag = b[p++];
    if (tag === TAG_END) return f;
    if (seen.has(tag)) throw new FormatError(`${what}: fork section ${tag} appears twice`);
    seen.add(tag);
    need(4);
    const count = b.readUInt32LE(p); p += 4;
    switch (tag) {
      case TAG_EXTENTS:
        need(count * EXTENT_REC_SIZE);
        for (let i = 0; i < count; i++, p += EXTENT_REC_SIZE) {
          const e = { fileBlock: readU64(b, p, what), regionBlock: readU64(b, p + 8, what), len: b.readUInt32LE(p + 16), flags: b.readUInt32LE(p + 20) };
          if ((e.flags & ~EXT_KNOWN) !== 0 || e.len === 0) throw new FormatError(`${what}: bad extent record ${i}`);
          f.extents.push(e);
        }
        break;
      case TAG_XATTRS: {
        let values = 0;
        for (let i = 0; i < count; i++) {
          need(6); const kl = b.readUInt16LE(p), vl = b.readUInt32LE(p + 2); p += 6;
          if (kl === 0 || kl > FORK_NAME_MAX || vl > FORK_XATTR_VALUE_MAX) throw new FormatError(`${what}: xattr ${i} has a ${kl}-byte name and a ${vl}-byte value`);
          values += vl;
          if (values > FORK_XATTR_VALUES_MAX) throw new FormatError(`${what}: xattr values exceed ${FORK_XATTR_VALUES_MAX} bytes`);
          need(kl + vl);
          const name = b.toString('utf8', p, p + kl);
          if (f.xattrs.has(name)) throw new FormatError(`${what}: xattr '${name}' appears twice`);
          f.xattrs.set(name, Buffer.from(b.subarray(p + kl, p + kl + vl))); p += kl + vl;
        }
        break;
      }
      case TAG_DIRENTS:
        f.dirents = new Map();
        for (let i = 0; i < count; i++) {
          need(10); const ino = readU64(b, p, what), kl = b.readUInt16LE(p + 8); p += 10;
          need(kl);
          const name = b.toString('utf8', p, p + kl);
          if (!validEntryName(name, kl)) throw new FormatError(`${what}: directory entry ${i} has an invalid ${kl}-byte name`);
          if (f.dirents.has(name)) throw new FormatError(`${what}: directory entry '${name}' appears twice`);
          f.dirents.set(name, ino); p += kl;
        }
        break;
      case TAG_SYMLINK:
        if (count === 0 || count > FORK_SYMLINK_MAX) throw new FormatError(`${what}: symlink target of ${count} bytes (1 to ${FORK_SYMLINK_MAX})`);
        need(count); f.symlink = Buffer.from(b.subarray(p, p + count)); p += count;
        break;
      default:
        throw new FormatError(`${what}: unknown fork section ${tag}`);
    }
  }
}
