/**
 * @file For test/unit/fuzz-images.test.ts: the base image (a few users'
 * files, each block tagged with its owner inode, directories in the fork
 * and in record blocks, a fragmented file with extent record blocks, a
 * symlink, xattrs inline and out of line, a reflinked file, an orphan, and a
 * committed journal transaction whose checkpoint was lost in a power
 * failure), its sparse copy, and the structure-aware mutations (decoded
 * structures changed and re-encoded, so checksums are right).
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import { encodeFork } from '../../src/format/fork.js';
import { dataEnd, IFLAG_ORPHAN } from '../../src/format/layout.js';
import {
  encodeDirentRec, encodeExtentRec, encodeIlistRec, encodeIndexBlock, encodeRefcountRec, REC_KIND_DIRENT, REC_KIND_EXTENT, REC_KIND_ILIST, REC_KIND_REFCOUNT, REFCOUNT_OWNER,
} from '../../src/format/records.js';
import { ROOT_CALLER, type Caller, type PmemFs } from '../../src/vfs/fs.js';
import { formatRegion, mountRegion } from '../../src/vfs/mount.js';
import { CHECKED, LOG, OPTS } from './crash-harness.js';
import { ImageEditor } from './image-edit.js';

const BS = 4096;
/** Every 16-byte unit of a tagged block: magic, owner tag, file block, unit. */
export const TAG_MAGIC = 0xa5c3f00d;

/** `blocks` blocks of data tagged with `tag`, from file block `first`. */
export function tagged(tag: number, blocks: number, first = 0): Buffer {
  const b = Buffer.alloc(blocks * BS);
  for (let off = 0; off < b.length; off += 16) {
    b.writeUInt32LE(TAG_MAGIC, off); b.writeUInt32LE(tag, off + 4);
    b.writeUInt32LE(first + Math.floor(off / BS), off + 8); b.writeUInt32LE(off % BS, off + 12);
  }
  return b;
}

export interface Base {
  size: number;
  /** Non-zero blocks of the image (the rest is a hole). */
  blocks: Map<number, Buffer>;
  /** Tags a file of inode ino may show: its own, and its reflink source's. */
  allowed: Map<number, Set<number>>;
  /** The paths of the files made (some renamed or unlinked later): what a mount's first lookups ask for. */
  paths: string[];
}

const user = (uid: number): Caller => ({ pid: 1000 + uid, uid, gid: uid });

const made: string[] = [];

function put(f: PmemFs, p: string, caller: Caller, fill: (ino: number) => Buffer, off = 0): number {
  made.push(p);
  const h = f.create(p, 0o600, C.O_RDWR, caller);
  const ino = f.resolve(p).ino;
  const b = fill(ino);
  f.write(h.fh, p, b, b.length, off, caller);
  f.release(h.fh);
  return ino;
}

/** Build the base image at `img` (a `size`-byte sparse region) and read back its non-zero blocks. */
export async function buildBase(img: string, size: number): Promise<Base> {
  const work = `${img}.work`;
  formatRegion(work, { size, blockSize: BS, label: 'hostile' });
  const m = mountRegion(work, { ...CHECKED, powerfail: true }, LOG);
  const f = m.fs;
  const allowed = new Map<number, Set<number>>();
  const own = (ino: number) => allowed.set(ino, new Set([ino]));
  f.mkdir('/home', 0o755, ROOT_CALLER);
  for (const uid of [1001, 1002, 1003]) {
    const d = `/home/u${uid}`;
    f.mkdir(d, 0o755, ROOT_CALLER);
    f.chown(d, uid, uid);
    own(put(f, `${d}/doc`, user(uid), (ino) => tagged(ino, 3)));
    own(put(f, `${d}/small`, user(uid), (ino) => tagged(ino, 1)));
  }
  // Fragmented: every other block written, 24 extents, so its extent records live in record blocks.
  const frag = put(f, '/home/u1001/frag', user(1001), () => Buffer.alloc(0));
  own(frag);
  const h = f.open('/home/u1001/frag', C.O_RDWR, user(1001));
  for (let i = 0; i < 48; i += 2) f.write(h.fh, '/home/u1001/frag', tagged(frag, 1, i), BS, i * BS, user(1001));
  f.release(h.fh);
  // A directory with entries in record blocks.
  f.mkdir('/home/u1002/many', 0o755, user(1002));
  // Enough entries for a hash index of several leaves (FEAT_INCOMPAT_DIRHASH), two to an index block and
  // to a root block, so that it has several of each (FEAT_INCOMPAT_DIRROOT).
  f.store.dirIndexFanout = 2;
  for (let i = 0; i < 300; i++) own(put(f, `/home/u1002/many/${'x'.repeat(40)}-${i}`, user(1002), (ino) => tagged(ino, 1)));
  f.store.dirIndexFanout = undefined;
  f.symlink('/home/u1001/doc', '/home/u1002/link', user(1002));
  f.setxattr('/home/u1001/doc', 'user.small', Buffer.from('v'), 0);
  f.setxattr('/home/u1003/doc', 'user.big', Buffer.alloc(2000, 7), 0);       // an out-of-line fork
  // A reflink: the clone shows its source's tags.
  const src = f.resolve('/home/u1003/doc');
  const clone = put(f, '/home/u1003/clone', user(1003), () => Buffer.alloc(0));
  await f.remap('/home/u1003/clone', src, 0, 0, 0, false, ROOT_CALLER);
  allowed.set(clone, new Set([clone, src.ino]));
  // An orphan: unlinked while open.
  const orphan = put(f, '/home/u1001/gone', user(1001), (ino) => tagged(ino, 2));
  own(orphan);
  f.open('/home/u1001/gone', C.O_RDONLY, user(1001));
  f.unlink('/home/u1001/gone');
  f.fsync();
  f.fsync();                                   // the first commit's checkpoint is durable too
  // The last transaction commits, but the power fails before its checkpoint is flushed.
  own(put(f, '/home/u1003/late', user(1003), (ino) => tagged(ino, 2)));
  f.rename('/home/u1002/small', '/home/u1001/moved');
  f.setxattr('/home/u1002/doc', 'user.late', Buffer.from('x'), 0);
  f.fsync();
  m.region.crashImage(img, () => true);
  m.region.close();
  fs.rmSync(work);
  const blocks = new Map<number, Buffer>();
  const fd = fs.openSync(img, 'r');
  const chunk = Buffer.alloc(1 << 20);
  for (let off = 0; off < size; off += chunk.length) {
    fs.readSync(fd, chunk, 0, chunk.length, off);
    for (let b = 0; b < chunk.length; b += BS) {
      const blk = chunk.subarray(b, b + BS);
      if (blk.some((x) => x !== 0)) blocks.set((off + b) / BS, Buffer.from(blk));
    }
  }
  fs.closeSync(fd);
  return { size, blocks, allowed, paths: [...made] };
}

/** Write the base image, sparse, to `dst`. */
export function writeBase(dst: string, base: Base): void {
  const fd = fs.openSync(dst, 'w');
  fs.ftruncateSync(fd, base.size);
  for (const [b, img] of base.blocks) fs.writeSync(fd, img, 0, BS, b * BS);
  fs.closeSync(fd);
}

type Rng = () => number;
const pick = <T>(r: Rng, a: readonly T[]): T => a[Math.floor(r() * a.length)];
const U32 = [0, 1, 2, 3, 0xff, 0xffff, 0x7fffffff, 0xffffffff];
const U64 = [...U32, 2 ** 32, 2 ** 40, 2 ** 48, 2 ** 48 + 1, 2 ** 53 - 1];

/** What an image's mutations touched (the exposure check is stricter without journal-home edits). */
export interface Applied { kinds: string[]; what: string[] }

interface Ctx { e: ImageEditor; r: Rng; inos: number[]; dataBlocks: number[] }

/** A value for a block-number field: a block of some file, a neighbour of one, a region edge, or a wild one. */
function blockValue(c: Ctx): number {
  const { sb } = c.e;
  const x = c.r();
  if (x < 0.5 && c.dataBlocks.length) return pick(c.r, c.dataBlocks) + pick(c.r, [0, 0, 1, -1, 2]);
  if (x < 0.8) return pick(c.r, [0, 1, sb.dataStart - 1, sb.dataStart, dataEnd(sb) - 1, dataEnd(sb), sb.totalBlocks, sb.journalStart]);
  return pick(c.r, U64);
}

function mutateSuperblock(c: Ctx): string | null {
  const sb = c.e.superblock();
  const field = pick(c.r, ['inodeCount', 'inodeHwm', 'journalBlocks', 'journalSeq', 'refcountRoot', 'state', 'mountCount', 'featuresIncompat', 'geometry', 'shrink', 'inodesUsed', 'ilistRoot'] as const);
  if (field === 'geometry') { const k = pick(c.r, [1, 64, 9000, 2 ** 20]); sb.journalBlocks += k; sb.dataStart += k; }
  else if (field === 'shrink') { const k = pick(c.r, [1, 1024, Math.floor(sb.totalBlocks / 2)]); sb.totalBlocks -= k; sb.regionSize -= k * BS; }
  else if (field === 'state') sb.state = pick(c.r, [1, 2, 3]);
  else if (field === 'journalSeq') sb.journalSeq = pick(c.r, [0, sb.journalSeq + 1, sb.journalSeq + 5, 2 ** 48, 2 ** 53 - 1]);
  else if (field === 'refcountRoot') sb.refcountRoot = blockValue(c);
  else if (field === 'ilistRoot') sb.ilistRoot = blockValue(c);
  else sb[field] = pick(c.r, [...U64, sb[field] + 1, sb[field] - 1, sb.inodeCount, sb.inodeCount + 1]);
  c.e.writeSuperblock(sb);
  return `superblock ${field}`;
}

function mutateInode(c: Ctx): string | null {
  const ino = pick(c.r, c.inos);
  const d = c.e.inode(ino);
  if (!d) return null;
  const { rec, fork } = d;
  const field = pick(c.r, ['nlink', 'nlink0', 'nlink0', 'mode', 'size', 'flags', 'forkBlock', 'forkBlocks', 'forkBlocks', 'forkLen', 'recIndex', 'recBlocks', 'recCount', 'ino', 'rdev'] as const);
  const inline = rec.forkBlock === 0 ? encodeFork(fork) : null;
  if (field === 'nlink0') { rec.nlink = 0; if (c.r() < 0.5) rec.flags |= IFLAG_ORPHAN; }
  else if (field === 'forkBlocks') rec.forkBlocks = pick(c.r, [dataEnd(c.e.sb) - Math.max(rec.forkBlock, c.e.sb.dataStart), rec.forkBlocks + 1, 2 ** 40, 0]);
  else if (field === 'forkBlock' || field === 'recIndex') rec[field] = blockValue(c);
  else if (field === 'size' || field === 'ino') rec[field] = pick(c.r, [...U64, rec[field] + 1]);
  else if (field === 'rdev') rec.rdev = pick(c.r, [0, ino, 1, pick(c.r, c.inos), c.e.sb.inodeCount + 1, 2 ** 40]);   // a directory's parent
  else if (field === 'mode') rec.mode = pick(c.r, [0, 0o100644, 0o040755, 0o120777, 0o020644, 0o170000, 0xffffffff]);
  else rec[field] = pick(c.r, [...U32, rec[field] + 1, rec[field] - 1].filter((v) => v >= 0 && v <= 0xffffffff));
  c.e.writeInodeRaw(rec, inline, ino);
  return `inode ${ino} ${field}`;
}

/** Change an extent: in a fork, or in an extent record block. */
function mutateExtent(c: Ctx): string | null {
  const ino = pick(c.r, c.inos);
  const d = c.e.inode(ino);
  if (!d) return null;
  const field = pick(c.r, ['regionBlock', 'regionBlock', 'len', 'fileBlock', 'flags'] as const);
  const change = (x: { fileBlock: number; regionBlock: number; len: number; flags: number }) => {
    if (field === 'regionBlock') x.regionBlock = blockValue(c);
    else if (field === 'len') x.len = pick(c.r, [x.len + 1, x.len * 2, 0xffffffff, dataEnd(c.e.sb)]);
    else if (field === 'fileBlock') x.fileBlock = pick(c.r, [0, x.fileBlock + 1, x.fileBlock - 1, 2 ** 40, 2 ** 53 - 1].filter((v) => v >= 0));
    else x.flags ^= pick(c.r, [1, 2, 4]);
  };
  if (d.fork.extents.length) {
    change(pick(c.r, d.fork.extents));
    c.e.writeInode(d.rec, d.fork);
    return `inode ${ino} fork extent ${field}`;
  }
  if (!d.rec.recIndex || (d.rec.mode & 0o170000) !== 0o100000) return null;
  const { blocks } = c.e.chain(d.rec.recIndex, ino, REC_KIND_EXTENT);
  const blk = blocks.length ? pick(c.r, blocks) : null;
  if (!blk || !blk.recs.extents.length) return null;
  const exts = blk.recs.extents.map(([x]) => x);
  change(pick(c.r, exts));
  c.e.writeRecordBlock(blk.block, ino, REC_KIND_EXTENT, exts.map(encodeExtentRec));
  return `inode ${ino} extent record ${field}`;
}

/** Change a directory entry (its inode or its name), drop one, or add a second name for an inode. */
function mutateDirent(c: Ctx): string | null {
  const ino = pick(c.r, c.inos);
  const d = c.e.inode(ino);
  if (!d || (d.rec.mode & 0o170000) !== 0o040000) return null;
  const how = pick(c.r, ['ino', 'ino', 'name', 'drop', 'add'] as const);
  const target = () => pick(c.r, [...c.inos, ...c.inos, 0, c.e.sb.inodeCount, c.e.sb.inodeCount + 1, 2 ** 40]);
  const edit = (list: Array<[string, number]>) => {
    if (how === 'add' || !list.length) { list.push([`extra${Math.floor(c.r() * 9)}`, target()]); return; }
    const i = Math.floor(c.r() * list.length);
    if (how === 'ino') list[i][1] = target();
    else if (how === 'drop') list.splice(i, 1);
    else list[i][0] = pick(c.r, [list[(i + 1) % list.length][0], 'a/b', '..', 'x'.repeat(255), 'ok-name']);
  };
  if (d.fork.dirents && d.fork.dirents.size) {
    const list = [...d.fork.dirents];
    edit(list);
    d.fork.dirents = new Map(list);
    if (list.length !== d.fork.dirents.size) return null;
    c.e.writeInode(d.rec, d.fork);
    return `directory ${ino} fork entry ${how}`;
  }
  if (!d.rec.recIndex) return null;
  const { blocks } = c.e.chain(d.rec.recIndex, ino, REC_KIND_DIRENT);
  const blk = blocks.length ? pick(c.r, blocks) : null;
  if (!blk) return null;
  const list = blk.recs.dirents.map(([n, i]) => [n, i] as [string, number]);
  edit(list);
  c.e.writeRecordBlock(blk.block, ino, REC_KIND_DIRENT, list.map(([n, i]) => encodeDirentRec(n, i)));
  return `directory ${ino} entry record ${how}`;
}

/**
 * A directory's hash index: a leaf's lowest hash, a leaf or next pointer,
 * the hashed flag of one index block, two leaves swapped; or a record moved
 * into another leaf with both blocks resealed (only the range check tells).
 */
function mutateDirIndex(c: Ctx): string | null {
  const isIndexed = (ino: number) => { const x = c.e.inode(ino); return !!x && (x.rec.mode & 0o170000) === 0o040000 && x.rec.recIndex !== 0; };
  const dirs = c.inos.filter(isIndexed);
  if (!dirs.length) return null;
  const ino = pick(c.r, dirs);
  const d = c.e.inode(ino)!;
  const { index, blocks, roots } = c.e.chain(d.rec.recIndex, ino, REC_KIND_DIRENT);
  if (roots.length && c.r() < 0.4) {
    // Its root (FEAT_INCOMPAT_DIRROOT): an entry's hash or block, the chain of roots, the root flag.
    const rt = pick(c.r, roots);
    const los = [...rt.los!], list = [...rt.blocks];
    const i = Math.floor(c.r() * list.length);
    const how = pick(c.r, ['lo', 'lo', 'block', 'next', 'flag', 'swap'] as const);
    if (how === 'lo') los[i] = pick(c.r, [0, los[i] + 1, Math.max(0, los[i] - 1), los[(i + 1) % los.length], 0xffffffff]);
    else if (how === 'block') list[i] = pick(c.r, [blockValue(c), ...list, ...index.map((x) => x.block), ...blocks.map((x) => x.block)]);
    else if (how === 'swap') { if (list.length < 2) return null; const j = (i + 1) % list.length; [list[i], list[j]] = [list[j], list[i]]; [los[i], los[j]] = [los[j], los[i]]; }
    c.e.write(rt.block, encodeIndexBlock(c.e.bs, ino, how === 'next' ? blockValue(c) : rt.next, list, los, how !== 'flag'));
    return `directory ${ino} hash index root ${how}`;
  }
  const ix = index.length ? pick(c.r, index) : null;
  if (!ix?.los || !ix.blocks.length) return null;
  const how = pick(c.r, ['lo', 'lo', 'leaf', 'next', 'unhash', 'swap', 'move', 'move'] as const);
  if (how === 'move') {
    if (blocks.length < 2) return null;
    const from = pick(c.r, blocks), to = pick(c.r, blocks.filter((b) => b !== from));
    const moved = from.recs.dirents[0];
    if (!moved) return null;
    c.e.writeRecordBlock(from.block, ino, REC_KIND_DIRENT, from.recs.dirents.slice(1).map(([, , raw]) => raw));
    c.e.writeRecordBlock(to.block, ino, REC_KIND_DIRENT, [...to.recs.dirents.map(([, , raw]) => raw), moved[2]]);
    return `directory ${ino} hash index record moved to another leaf`;
  }
  const los = [...ix.los], list = [...ix.blocks];
  const i = Math.floor(c.r() * list.length);
  if (how === 'lo') los[i] = pick(c.r, [0, los[i] + 1, Math.max(0, los[i] - 1), los[(i + 1) % los.length], 0xffffffff]);
  else if (how === 'leaf') list[i] = pick(c.r, [blockValue(c), ...list, ...index.map((x) => x.block)]);
  else if (how === 'swap') { if (list.length < 2) return null; const j = (i + 1) % list.length; [list[i], list[j]] = [list[j], list[i]]; }
  c.e.writeIndexBlock(ix.block, ino, how === 'next' ? blockValue(c) : ix.next, list, how === 'unhash' ? null : los);
  return `directory ${ino} hash index ${how}`;
}

function mutateRefcount(c: Ctx): string | null {
  const root = c.e.superblock().refcountRoot;
  if (!root) return null;
  const { index, blocks } = c.e.chain(root, REFCOUNT_OWNER, REC_KIND_REFCOUNT);
  if (c.r() < 0.25 && index.length) {
    const ix = index[0];
    const list = ix.blocks.length && c.r() < 0.7 ? ix.blocks.map((b, i) => (i === 0 ? blockValue(c) : b)) : ix.blocks;
    c.e.writeIndexBlock(ix.block, REFCOUNT_OWNER, c.r() < 0.3 ? blockValue(c) : ix.next, list);
    return 'refcount index block';
  }
  const blk = blocks.length ? pick(c.r, blocks) : null;
  if (!blk || !blk.recs.refcounts.length) return null;
  const recs = blk.recs.refcounts.map(([x]) => x);
  const x = pick(c.r, recs);
  const field = pick(c.r, ['start', 'len', 'count'] as const);
  if (field === 'start') x.start = blockValue(c);
  else if (field === 'len') x.len = pick(c.r, [x.len + 1, x.len - 1, 0xffffffff].filter((v) => v > 0));
  else x.count = pick(c.r, [1, 3, 0xffffffff]);
  c.e.writeRecordBlock(blk.block, REFCOUNT_OWNER, REC_KIND_REFCOUNT, recs.map(encodeRefcountRec));
  return `refcount record ${field}`;
}

/** The in-core list (orphans, sealed files): its index block, or a record naming another, a free or no inode. */
function mutateIlist(c: Ctx): string | null {
  const root = c.e.superblock().ilistRoot;
  if (!root) return null;
  const { index, blocks } = c.e.chain(root, REFCOUNT_OWNER, REC_KIND_ILIST);
  if (c.r() < 0.25 && index.length) {
    const ix = index[0];
    const list = ix.blocks.length && c.r() < 0.7 ? ix.blocks.map((b, i) => (i === 0 ? blockValue(c) : b)) : ix.blocks;
    c.e.writeIndexBlock(ix.block, REFCOUNT_OWNER, c.r() < 0.3 ? blockValue(c) : ix.next, list);
    return 'in-core list index block';
  }
  const blk = blocks.length ? pick(c.r, blocks) : null;
  if (!blk) return null;
  const inos = blk.recs.ilist.map(([x]) => x);
  const how = pick(c.r, ['add', 'drop', 'duplicate', 'huge'] as const);
  if (how === 'add') inos.push(pick(c.r, c.inos));
  else if (how === 'drop' && inos.length) inos.pop();
  else if (how === 'duplicate' && inos.length) inos.push(inos[0]);
  else inos.push(pick(c.r, [c.e.sb.inodeCount, c.e.sb.inodeCount + 1, 2 ** 40]));
  c.e.writeRecordBlock(blk.block, REFCOUNT_OWNER, REC_KIND_ILIST, inos.map(encodeIlistRec));
  return `in-core list ${how}`;
}

/** xattrs and symlink targets beyond the limits, through a re-encoded fork. */
function mutateFork(c: Ctx): string | null {
  const ino = pick(c.r, c.inos);
  const d = c.e.inode(ino);
  if (!d) return null;
  const how = pick(c.r, ['bigValue', 'manyValues', 'emptyName', 'symlink'] as const);
  if (how === 'bigValue') d.fork.xattrs.set('user.huge', Buffer.alloc(70000, 1));
  else if (how === 'manyValues') for (let i = 0; i < 5; i++) d.fork.xattrs.set(`user.v${i}`, Buffer.alloc(60000, 2));
  else if (how === 'emptyName') d.fork.xattrs.set('', Buffer.from('x'));
  else d.fork.symlink = Buffer.alloc(pick(c.r, [0, 4096, 70000]), 0x61);
  if (how === 'symlink' && d.fork.symlink!.length === 0) d.fork.symlink = null;
  c.e.writeInode(d.rec, d.fork);
  return `inode ${ino} fork ${how}`;
}

function mutateJournal(c: Ctx): string | null {
  const log = c.e.log;
  if (!log) return null;
  const how = pick(c.r, ['seq', 'seq', 'home', 'drop'] as const);
  const cp = c.e.sb.journalSeq;
  if (how === 'seq') log.seq = pick(c.r, [cp, cp - 1, 0, log.seq + 1, 2 ** 48 + 1].filter((v) => v >= 0));
  else if (how === 'home') log.homes[Math.floor(c.r() * log.homes.length)] = blockValue(c);
  else if (log.homes.length > 1) { const i = Math.floor(c.r() * log.homes.length); log.homes.splice(i, 1); log.images.splice(i, 1); }
  c.e.touchLog();
  return `journal ${how}`;
}

const MUTATORS: Array<[string, number, (c: Ctx) => string | null]> = [
  ['superblock', 2, mutateSuperblock], ['inode', 5, mutateInode], ['extent', 5, mutateExtent], ['dirent', 4, mutateDirent],
  ['refcount', 2, mutateRefcount], ['fork', 2, mutateFork], ['journal', 2, mutateJournal], ['ilist', 2, mutateIlist],
  ['dirindex', 2, mutateDirIndex],
];

/** Apply 1..3 seeded mutations to the image at `img`. */
export function mutate(img: string, r: Rng): Applied {
  const e = new ImageEditor(img);
  const applied: Applied = { kinds: [], what: [] };
  try {
    const inos = e.usedInos();
    const dataBlocks: number[] = [];
    for (const ino of inos) for (const x of e.inode(ino)?.fork.extents ?? []) dataBlocks.push(x.regionBlock);
    const c: Ctx = { e, r, inos, dataBlocks };
    const total = MUTATORS.reduce((s, [, w]) => s + w, 0);
    const x = r();
    const n = x < 0.6 ? 1 : x < 0.9 ? 2 : 3;
    for (let tries = 0; applied.what.length < n && tries < 20; tries++) {
      let x = r() * total;
      const [kind, , fn] = MUTATORS.find(([, w]) => (x -= w) < 0) ?? MUTATORS[0];
      let what: string | null = null;
      try { what = fn(c); } catch (err) { if (!(err instanceof RangeError) && !(err as Error).name.includes('FormatError')) throw err; }
      if (what) { applied.kinds.push(kind); applied.what.push(what); }
    }
  } finally { e.close(); }
  return applied;
}

