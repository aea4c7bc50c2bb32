/**
 * Record blocks and record-index blocks (src/format/records.ts): pinned
 * header layout, encode→decode round trips of directory-entry and extent
 * blocks and of index blocks, every single-byte flip refused as a
 * FormatError, wrong owner inode or kind refused, malformed counts and
 * lengths (resealed with a valid checksum) refused. And the in-core RecordSet
 * (src/inode/records.ts): put/remove touch one record block, a new record
 * block (and index block when the index is full) is allocated through the
 * callback, replacement of an existing key, reuse of freed room, and that
 * what it holds encodes into blocks that decode back to the same records.
 */
import { describe, expect, it } from 'vitest';
import { formatError } from './helpers.js';
import { seededRandom } from '../../src/region/prng.js';
import { EXT_SHARED, EXT_UNWRITTEN, EXTENT_REC_SIZE, type ExtentRec } from '../../src/format/fork.js';
import { FormatError, recordChecksum } from '../../src/format/layout.js';
import {
  decodeIndexBlock, decodeRecordBlock, direntHash, direntRecSize, encodeDirentRec, encodeExtentRec, encodeIndexBlock,
  encodeRecordBlock, findDirentRec, indexCapacity, REC_HDR, REC_KIND_DIRENT, REC_KIND_EXTENT, REC_MAGIC, recBlockCapacity,
  dirHashSeed, RIDX_HASHED, RIDX_HDR, RIDX_MAGIC, RIDX_ROOT,
} from '../../src/format/records.js';
import { itemsOf, recordBytes, RecordSet, type RecTouched } from '../../src/inode/records.js';

const BS = 4096;
const INO = 4242;


/** Recompute the CRC of a block changed on purpose, so a structural check (not the checksum) must refuse it. */
function reseal(b: Buffer): Buffer {
  b.writeUInt32LE(recordChecksum(b, 4), 4);
  return b;
}

const DIRENTS: Array<[string, number]> = [
  ['a', 2], ['ファイル', 3], ['x'.repeat(255), 2 ** 50], ['\u{1F4BE}disk', 0x1_0000_0001], ['...', 7], ['.hidden', 8],
];
const EXTENTS: ExtentRec[] = [
  { fileBlock: 0, regionBlock: 100, len: 8, flags: 0 },
  { fileBlock: 8, regionBlock: 2 ** 40, len: 0xffffffff, flags: EXT_UNWRITTEN },
  { fileBlock: 2 ** 45, regionBlock: 7, len: 1, flags: EXT_SHARED | EXT_UNWRITTEN },
];
const direntBlock = (bs = BS) => encodeRecordBlock(bs, INO, REC_KIND_DIRENT, DIRENTS.map(([n, i]) => encodeDirentRec(n, i)));
const extentBlock = (bs = BS) => encodeRecordBlock(bs, INO, REC_KIND_EXTENT, EXTENTS.map(encodeExtentRec));

describe('record block format', () => {
  it('pins the header, magics and capacities', () => {
    expect(REC_HDR).toBe(32);
    expect(RIDX_HDR).toBe(32);
    expect(REC_MAGIC).toBe(0x42524d50);
    expect(RIDX_MAGIC).toBe(0x49524d50);
    expect(REC_KIND_DIRENT).toBe(1);
    expect(REC_KIND_EXTENT).toBe(2);
    expect(recBlockCapacity(4096)).toBe(4064);
    expect(indexCapacity(4096)).toBe(508);
    expect(indexCapacity(65536)).toBe(8188);
    expect(direntRecSize('abc')).toBe(12);
    expect(direntRecSize('é')).toBe(11);
    expect(encodeExtentRec(EXTENTS[0]).length).toBe(EXTENT_REC_SIZE);
  });

  it('lays out the record block header and records at their pinned offsets, little-endian', () => {
    const b = encodeRecordBlock(BS, 2 ** 40 + 1, REC_KIND_DIRENT, [encodeDirentRec('ab', 0x0102), encodeDirentRec('c', 9)]);
    expect(b.length).toBe(BS);
    expect(b.subarray(0, 4).toString('latin1')).toBe('PMRB');
    expect(b.readUInt32LE(4)).toBe(recordChecksum(b, 4));
    expect(Number(b.readBigUInt64LE(8))).toBe(2 ** 40 + 1);
    expect(b[16]).toBe(REC_KIND_DIRENT);
    expect(b[17]).toBe(0);
    expect(b.readUInt16LE(18)).toBe(2);              // count
    expect(b.readUInt16LE(20)).toBe(11 + 10);        // used bytes
    expect(b.subarray(22, 32).every((x) => x === 0)).toBe(true);
    expect(Number(b.readBigUInt64LE(32))).toBe(0x0102);  // dirent: u64 ino, u8 name length, name
    expect(b[40]).toBe(2);
    expect(b.toString('latin1', 41, 43)).toBe('ab');
    expect(Number(b.readBigUInt64LE(43))).toBe(9);
    expect(b[51]).toBe(1);
    expect(b.toString('latin1', 52, 53)).toBe('c');
    expect(b.subarray(53).every((x) => x === 0)).toBe(true);

    const e = encodeRecordBlock(BS, 5, REC_KIND_EXTENT, [encodeExtentRec({ fileBlock: 0x0a, regionBlock: 0x0b, len: 3, flags: EXT_SHARED })]);
    expect(e[16]).toBe(REC_KIND_EXTENT);
    expect(e.readUInt16LE(20)).toBe(24);
    expect(Number(e.readBigUInt64LE(32))).toBe(0x0a);
    expect(Number(e.readBigUInt64LE(40))).toBe(0x0b);
    expect(e.readUInt32LE(48)).toBe(3);
    expect(e.readUInt32LE(52)).toBe(EXT_SHARED);
  });

  it('round-trips directory entries, with each record\'s encoded bytes', () => {
    const d = decodeRecordBlock(direntBlock(), INO, REC_KIND_DIRENT, 'inode 4242');
    expect(d.extents).toEqual([]);
    expect(d.dirents.map(([n, i]) => [n, i])).toEqual(DIRENTS);
    for (const [n, i, raw] of d.dirents) expect(raw.equals(encodeDirentRec(n, i))).toBe(true);
  });

  it('round-trips extent records, with each record\'s encoded bytes', () => {
    const d = decodeRecordBlock(extentBlock(), INO, REC_KIND_EXTENT, 'inode 4242');
    expect(d.dirents).toEqual([]);
    expect(d.extents.map(([e]) => e)).toEqual(EXTENTS);
    for (const [e, raw] of d.extents) expect(raw.equals(encodeExtentRec(e))).toBe(true);
  });

  it('round-trips an empty block, a full block and the largest block size', () => {
    expect(decodeRecordBlock(encodeRecordBlock(BS, INO, REC_KIND_DIRENT, []), INO, REC_KIND_DIRENT, 'x').dirents).toEqual([]);
    // 4064 bytes = 16 dirents of 254 bytes, exactly full.
    const full = Array.from({ length: 16 }, (_, i) => encodeDirentRec(String(i).padStart(245, 'n'), i + 1));
    const d = decodeRecordBlock(encodeRecordBlock(BS, INO, REC_KIND_DIRENT, full), INO, REC_KIND_DIRENT, 'x');
    expect(d.dirents.length).toBe(16);
    expect(formatError(() => encodeRecordBlock(BS, INO, REC_KIND_DIRENT, [...full, encodeDirentRec('z', 1)])).message).toMatch(/record block of inode 4242 overflows/);
    // 64 KiB: 2729 extents (65504 / 24) fit, with the used-bytes field near its u16 limit.
    const many = Array.from({ length: Math.floor(recBlockCapacity(65536) / 24) }, (_, i) => ({ fileBlock: i * 3, regionBlock: 1000 + i, len: 3, flags: 0 }));
    const big = encodeRecordBlock(65536, INO, REC_KIND_EXTENT, many.map(encodeExtentRec));
    expect(decodeRecordBlock(big, INO, REC_KIND_EXTENT, 'x').extents.map(([e]) => e)).toEqual(many);
  });

  it('detects every single flipped byte of a dirent block (header, records or padding)', () => {
    const good = direntBlock();
    for (let i = 0; i < BS; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x20;
      expect(formatError(() => decodeRecordBlock(bad, INO, REC_KIND_DIRENT, 'inode 4242')).message, `byte ${i}`)
        .toMatch(i < 4 ? /^inode 4242: record block has bad magic/ : /^inode 4242: record block checksum mismatch/);
    }
  });

  it('detects every single flipped byte of an extent block', () => {
    const good = extentBlock();
    for (let i = 0; i < BS; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x01;
      expect(formatError(() => decodeRecordBlock(bad, INO, REC_KIND_EXTENT, 'x')).message, `byte ${i}`).toMatch(/bad magic|checksum mismatch/);
    }
  });

  it('refuses a block of another inode, or of the other kind', () => {
    expect(formatError(() => decodeRecordBlock(direntBlock(), INO + 1, REC_KIND_DIRENT, 'inode 4243')).message)
      .toMatch(/^inode 4243: record block belongs to inode 4242/);
    expect(formatError(() => decodeRecordBlock(direntBlock(), INO, REC_KIND_EXTENT, 'x')).message).toMatch(/of kind 1, expected 2/);
    expect(formatError(() => decodeRecordBlock(extentBlock(), INO, REC_KIND_DIRENT, 'x')).message).toMatch(/of kind 2, expected 1/);
    expect(formatError(() => decodeRecordBlock(Buffer.alloc(BS), INO, REC_KIND_DIRENT, 'x')).message).toMatch(/bad magic/);
    // An index block is not a record block.
    expect(formatError(() => decodeRecordBlock(encodeIndexBlock(BS, INO, 0, [1]), INO, REC_KIND_DIRENT, 'x')).message).toMatch(/bad magic/);
  });

  it('refuses counts and used-byte lengths that disagree with the records, checksum notwithstanding', () => {
    const withHeader = (mk: () => Buffer, count: number | null, used: number | null) => {
      const b = mk();
      if (count !== null) b.writeUInt16LE(count, 18);
      if (used !== null) b.writeUInt16LE(used, 20);
      return reseal(b);
    };
    const dn = DIRENTS.length, du = direntBlock().readUInt16LE(20);
    const en = EXTENTS.length, eu = en * 24;
    const d = (b: Buffer) => formatError(() => decodeRecordBlock(b, INO, REC_KIND_DIRENT, 'x')).message;
    const e = (b: Buffer) => formatError(() => decodeRecordBlock(b, INO, REC_KIND_EXTENT, 'x')).message;
    expect(d(withHeader(direntBlock, dn + 1, null))).toMatch(/is truncated/);
    expect(d(withHeader(direntBlock, 0xffff, null))).toMatch(/is truncated/);
    expect(d(withHeader(direntBlock, dn - 1, null))).toMatch(/holds \d+ stray bytes/);
    expect(d(withHeader(direntBlock, 0, null))).toMatch(new RegExp(`holds ${du} stray bytes`));
    expect(d(withHeader(direntBlock, null, du - 1))).toMatch(/has a name of \d+ bytes/);
    expect(d(withHeader(direntBlock, null, du + 1))).toMatch(/stray bytes|truncated/);
    expect(d(withHeader(direntBlock, null, BS - REC_HDR + 1))).toMatch(/claims 4065 bytes/);
    expect(d(withHeader(direntBlock, null, 0xffff))).toMatch(/claims 65535 bytes/);
    expect(e(withHeader(extentBlock, en + 1, null))).toMatch(/is truncated/);
    expect(e(withHeader(extentBlock, en - 1, null))).toMatch(/holds 24 stray bytes/);
    expect(e(withHeader(extentBlock, null, eu - 1))).toMatch(/is truncated/);
    expect(e(withHeader(extentBlock, null, eu + 5))).toMatch(/holds 5 stray bytes/);
  });

  it('finds one entry by its name\'s bytes without decoding the block (a cold lookup\'s probe), with the same checks of the block', () => {
    const find = (b: Buffer, name: string) => findDirentRec(b, INO, 'x', Buffer.from(name, 'utf8'));
    for (const [name, ino] of DIRENTS) expect(find(direntBlock(), name), name).toBe(ino);
    for (const name of ['b', 'x'.repeat(254), 'ファ', '..', 'disk', '.hidden2', 'A']) expect(find(direntBlock(), name), name).toBeNull();
    expect(find(encodeRecordBlock(BS, INO, REC_KIND_DIRENT, []), 'a')).toBeNull();
    // The same refusals as the full decode, whether or not the name is in the block.
    const flipped = direntBlock(); flipped[REC_HDR + 3] ^= 1;
    for (const name of ['a', 'zz']) {
      expect(formatError(() => find(flipped, name)).message).toMatch(/checksum mismatch/);
      expect(formatError(() => findDirentRec(direntBlock(), INO + 1, 'x', Buffer.from(name))).message).toMatch(/belongs to inode/);
      const longer = direntBlock(); longer.writeUInt16LE(longer.readUInt16LE(18) + 1, 18);
      expect(formatError(() => find(reseal(longer), name)).message).toMatch(/is truncated/);
      const shorter = direntBlock(); shorter.writeUInt16LE(shorter.readUInt16LE(20) - 1, 20);
      expect(formatError(() => find(reseal(shorter), name)).message).toMatch(/has a name of \d+ bytes/);
    }
  });

  it('refuses malformed records: empty or invalid names, bad extents, numbers beyond 2^53', () => {
    const one = (kind: typeof REC_KIND_DIRENT | typeof REC_KIND_EXTENT, rec: Buffer) =>
      formatError(() => decodeRecordBlock(encodeRecordBlock(BS, INO, kind, [rec]), INO, kind, 'inode 4242')).message;
    const zeroName = encodeDirentRec('abc', 5); zeroName[8] = 0;
    expect(one(REC_KIND_DIRENT, zeroName)).toMatch(/has a name of 0 bytes/);
    for (const name of ['.', '..', 'a/b', 'nul\0']) expect(one(REC_KIND_DIRENT, encodeDirentRec(name, 5)), name).toMatch(/invalid name/);
    const hugeIno = encodeDirentRec('abc', 5); hugeIno.writeUInt32LE(0x20_0000, 4);
    expect(one(REC_KIND_DIRENT, hugeIno)).toMatch(/^inode 4242: .*beyond 2\^53/);
    expect(one(REC_KIND_EXTENT, encodeExtentRec({ fileBlock: 0, regionBlock: 1, len: 0, flags: 0 }))).toMatch(/bad extent record 0/);
    expect(one(REC_KIND_EXTENT, encodeExtentRec({ fileBlock: 0, regionBlock: 1, len: 1, flags: 0x4 }))).toMatch(/bad extent record 0/);
    const hugeBlock = encodeExtentRec(EXTENTS[0]); hugeBlock.writeUInt32LE(0x80_0000, 12);
    expect(one(REC_KIND_EXTENT, hugeBlock)).toMatch(/beyond 2\^53/);
    expect(formatError(() => encodeDirentRec('', 1)).message).toMatch(/name of 0 bytes/);
    expect(formatError(() => encodeDirentRec('x'.repeat(256), 1)).message).toMatch(/name of 256 bytes/);
    expect(formatError(() => encodeDirentRec('é'.repeat(128), 1)).message).toMatch(/name of 256 bytes/);
  });
});

describe('record index block format', () => {
  const LIST = [10, 2 ** 40, 7, 123_456_789];

  it('lays out the header and block numbers at their pinned offsets', () => {
    const b = encodeIndexBlock(BS, 2 ** 33, 0x0a0b, LIST);
    expect(b.length).toBe(BS);
    expect(b.subarray(0, 4).toString('latin1')).toBe('PMRI');
    expect(b.readUInt32LE(4)).toBe(recordChecksum(b, 4));
    expect(Number(b.readBigUInt64LE(8))).toBe(2 ** 33);
    expect(Number(b.readBigUInt64LE(16))).toBe(0x0a0b);
    expect(b.readUInt32LE(24)).toBe(LIST.length);
    expect(b.readUInt32LE(28)).toBe(0);
    LIST.forEach((blk, i) => expect(Number(b.readBigUInt64LE(RIDX_HDR + i * 8))).toBe(blk));
    expect(b.subarray(RIDX_HDR + LIST.length * 8).every((x) => x === 0)).toBe(true);
  });

  it('round-trips next and the list: empty, partial, full; refuses one too many', () => {
    expect(decodeIndexBlock(encodeIndexBlock(BS, INO, 0, LIST), INO, 'x')).toEqual({ next: 0, blocks: LIST });
    expect(decodeIndexBlock(encodeIndexBlock(BS, INO, 99, []), INO, 'x')).toEqual({ next: 99, blocks: [] });
    const full = Array.from({ length: indexCapacity(BS) }, (_, i) => 5000 + i * 3);
    expect(decodeIndexBlock(encodeIndexBlock(BS, INO, 2 ** 52, full), INO, 'x')).toEqual({ next: 2 ** 52, blocks: full });
    expect(formatError(() => encodeIndexBlock(BS, INO, 0, [...full, 1])).message).toMatch(/index block of inode 4242 overflows/);
  });

  it('a directory hash index: 16-byte entries (block, lowest hash) after the RIDX_HASHED flag, round-tripped, full at 254', () => {
    const los = [0, 5, 0x8000_0000, 0xffff_ffff];
    const b = encodeIndexBlock(BS, INO, 9, LIST, los);
    expect(b.readUInt32LE(28)).toBe(RIDX_HASHED);
    LIST.forEach((blk, i) => {
      expect(Number(b.readBigUInt64LE(RIDX_HDR + i * 16))).toBe(blk);
      expect(b.readUInt32LE(RIDX_HDR + i * 16 + 8)).toBe(los[i]);
      expect(b.readUInt32LE(RIDX_HDR + i * 16 + 12)).toBe(0);
    });
    expect(decodeIndexBlock(b, INO, 'x')).toEqual({ next: 9, blocks: LIST, los });
    expect(indexCapacity(BS, true)).toBe(254);
    const full = Array.from({ length: 254 }, (_, i) => 100 + i);
    expect(decodeIndexBlock(encodeIndexBlock(BS, INO, 0, full, full.map((_, i) => i * 7)), INO, 'x').blocks).toEqual(full);
    expect(formatError(() => encodeIndexBlock(BS, INO, 0, [...full, 1], [...full.map((_, i) => i * 7), 9999])).message).toMatch(/overflows/);
  });

  it('refuses a hash index whose hashes do not ascend, with stray entry bytes, unknown flags, or a count past 254', () => {
    const los = [0, 5, 9, 12];
    const down = encodeIndexBlock(BS, INO, 0, LIST, los); down.writeUInt32LE(4, RIDX_HDR + 2 * 16 + 8);
    expect(formatError(() => decodeIndexBlock(reseal(down), INO, 'x')).message).toMatch(/lists hash 4 after 5 \(not ascending\)/);
    const same = encodeIndexBlock(BS, INO, 0, LIST, los); same.writeUInt32LE(5, RIDX_HDR + 2 * 16 + 8);
    expect(formatError(() => decodeIndexBlock(reseal(same), INO, 'x')).message).toMatch(/not ascending/);
    const stray = encodeIndexBlock(BS, INO, 0, LIST, los); stray[RIDX_HDR + 16 + 13] = 1;
    expect(formatError(() => decodeIndexBlock(reseal(stray), INO, 'x')).message).toMatch(/entry 1 has stray bytes/);
    const flags = encodeIndexBlock(BS, INO, 0, LIST); flags.writeUInt32LE(0x6, 28);
    expect(formatError(() => decodeIndexBlock(reseal(flags), INO, 'x')).message).toMatch(/unknown flags 0x6/);
    const over = encodeIndexBlock(BS, INO, 0, LIST, los); over.writeUInt32LE(255, 24);
    expect(formatError(() => decodeIndexBlock(reseal(over), INO, 'x')).message).toMatch(/claims 255 entries/);
  });

  it('a hash index root: the RIDX_HASHED | RIDX_ROOT flags over the same entries (index block, lowest hash), round-tripped; a root alone, or without hashes, refused', () => {
    const los = [0, 5, 0x8000_0000, 0xffff_ffff];
    expect(RIDX_ROOT).toBe(0x2);
    const b = encodeIndexBlock(BS, INO, 77, LIST, los, true);
    expect(b.readUInt32LE(28)).toBe(RIDX_HASHED | RIDX_ROOT);
    expect(b.subarray(RIDX_HDR)).toEqual(encodeIndexBlock(BS, INO, 77, LIST, los).subarray(RIDX_HDR));   // the entries as an index block's
    expect(decodeIndexBlock(b, INO, 'x')).toEqual({ next: 77, blocks: LIST, los, root: true });
    expect(decodeIndexBlock(encodeIndexBlock(BS, INO, 77, LIST, los), INO, 'x').root).toBeUndefined();
    expect(formatError(() => encodeIndexBlock(BS, INO, 0, LIST, null, true)).message).toMatch(/root block of inode 4242 without hashes/);
    const alone = encodeIndexBlock(BS, INO, 0, LIST); alone.writeUInt32LE(RIDX_ROOT, 28);
    expect(formatError(() => decodeIndexBlock(reseal(alone), INO, 'x')).message).toMatch(/unknown flags 0x2/);
    const more = encodeIndexBlock(BS, INO, 0, LIST, los, true); more.writeUInt32LE(0x7, 28);
    expect(formatError(() => decodeIndexBlock(reseal(more), INO, 'x')).message).toMatch(/unknown flags 0x7/);
  });

  it('hashes names as CRC32C of their UTF-8 bytes from the region\'s seed', () => {
    expect(direntHash('abc', 0)).toBe(0x364b3fb7);                   // CRC32C("abc"), RFC 3720's check values' algorithm
    expect(direntHash('caf\u00e9', 77)).toBe(direntHash(Buffer.from('caf\u00e9', 'utf8'), 77));
    expect(direntHash('abc', 1)).not.toBe(direntHash('abc', 2));
    expect(dirHashSeed(Buffer.alloc(16, 1))).not.toBe(dirHashSeed(Buffer.alloc(16, 2)));
  });

  it('detects every single flipped byte', () => {
    const good = encodeIndexBlock(BS, INO, 77, LIST);
    for (let i = 0; i < BS; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x80;
      expect(formatError(() => decodeIndexBlock(bad, INO, 'inode 4242')).message, `byte ${i}`)
        .toMatch(i < 4 ? /record index block has bad magic/ : /record index block checksum mismatch/);
    }
  });

  it('refuses another inode\'s index, a record block, an oversized count and block numbers beyond 2^53', () => {
    expect(formatError(() => decodeIndexBlock(encodeIndexBlock(BS, INO, 0, LIST), 1, 'inode 1')).message)
      .toMatch(/^inode 1: record index block belongs to inode 4242/);
    expect(formatError(() => decodeIndexBlock(direntBlock(), INO, 'x')).message).toMatch(/bad magic/);
    const over = encodeIndexBlock(BS, INO, 0, LIST); over.writeUInt32LE(indexCapacity(BS) + 1, 24);
    expect(formatError(() => decodeIndexBlock(reseal(over), INO, 'x')).message).toMatch(/claims 509 entries/);
    const huge = encodeIndexBlock(BS, INO, 0, LIST); huge.writeUInt32LE(0xffff_ffff, 24);
    expect(formatError(() => decodeIndexBlock(reseal(huge), INO, 'x')).message).toMatch(/claims 4294967295 entries/);
    const far = encodeIndexBlock(BS, INO, 0, LIST); far.writeUInt32LE(0x40_0000, RIDX_HDR + 8 + 4);
    expect(formatError(() => decodeIndexBlock(reseal(far), INO, 'x')).message).toMatch(/beyond 2\^53/);
  });
});

/** An allocator stand-in handing out consecutive blocks from 1000, recording the goals. */
function blocks() {
  const goals: number[] = [];
  let next = 1000;
  return { goals, alloc: (goal: number) => { goals.push(goal); return next++; } };
}
const touched = (): RecTouched => ({ recs: new Set(), index: new Set() });
/** A directory entry record of exactly `size` bytes (10..264). */
const dirent = (i: number, size = 264) => encodeDirentRec(`n${i}`.padEnd(size - 9, '.'), 100 + i);
const nameOf = (rec: Buffer) => rec.toString('utf8', 9, 9 + rec[8]);

/** Encode the set as the store does and decode it back: names → inos, walking the index chain. */
function roundTrip(set: RecordSet): Map<string, number> {
  const media = new Map<number, Buffer>();
  for (const rb of set.blocks) media.set(rb.block, encodeRecordBlock(BS, set.ino, set.kind, recordBytes(rb)));
  for (const ix of set.index) media.set(ix.block, encodeIndexBlock(BS, set.ino, set.nextOf(ix), ix.list));
  const out = new Map<string, number>();
  const listed: number[] = [];
  for (let b = set.headBlock; b !== 0;) {
    const ix = decodeIndexBlock(media.get(b)!, set.ino, 'test');
    listed.push(...ix.blocks);
    b = ix.next;
  }
  expect(listed).toEqual(set.blocks.map((rb) => rb.block));
  for (const b of listed) {
    for (const [n, ino] of decodeRecordBlock(media.get(b)!, set.ino, REC_KIND_DIRENT, 'test').dirents) {
      expect(out.has(n), `${n} stored twice`).toBe(false);
      out.set(n, ino);
    }
  }
  return out;
}

describe('RecordSet', () => {
  it('allocates a record block and an index block for the first record', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const a = blocks();
    const t = touched();
    set.put('a', encodeDirentRec('a', 5), t, a.alloc);
    expect(a.goals).toEqual([0, 1001]);                  // record block, then the index just after it
    expect(set.blocks.map((b) => b.block)).toEqual([1000]);
    expect(set.index).toEqual([{ block: 1001, list: [1000] }]);
    expect(set.headBlock).toBe(1001);
    expect([...t.recs]).toEqual([set.blocks[0]]);
    expect([...t.index]).toEqual([set.index[0]]);
    expect(set.count).toBe(1);
    expect(set.has('a')).toBe(true);
    expect(set.allBlocks().sort()).toEqual([1000, 1001]);
    expect(new RecordSet(REC_KIND_DIRENT, INO, BS).headBlock).toBe(0);
  });

  it('put and remove touch only the record block that holds the record', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const a = blocks();
    for (let i = 0; i < 45; i++) set.put(`n${i}`, dirent(i), touched(), a.alloc);   // 15 per block: 3 blocks
    expect(set.blocks.length).toBe(3);
    const allocs = a.goals.length;
    for (const [key, blk] of [['n0', 0], ['n20', 1], ['n44', 2]] as const) {
      const t = touched();
      set.remove(key, t);
      expect([...t.recs].map((r) => r.block), key).toEqual([set.blocks[blk].block]);
      expect(t.index.size).toBe(0);
      expect(set.has(key)).toBe(false);
    }
    expect(set.count).toBe(42);
    const t = touched();
    set.remove('never-there', t);
    expect(t.recs.size + t.index.size).toBe(0);
    const t2 = touched();
    set.put('n44', dirent(44), t2, a.alloc);                 // back into the room it left
    expect([...t2.recs]).toEqual([set.blocks[2]]);
    expect(t2.index.size).toBe(0);
    expect(a.goals.length).toBe(allocs);
  });

  it('allocates a new record block through the callback when the current one is full, touching one index block', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const a = blocks();
    for (let i = 0; i < 15; i++) {                           // 15 × 264 = 3960 of 4064 bytes
      const t = touched();
      set.put(`n${i}`, dirent(i), t, a.alloc);
      expect(t.recs.size).toBe(1);
    }
    expect(a.goals).toEqual([0, 1001]);
    expect(set.blocks[0].used).toBe(3960);
    const t = touched();
    set.put('n15', dirent(15), t, a.alloc);
    expect(a.goals).toEqual([0, 1001, 1001]);                // goal: the block after the last record block
    expect(set.blocks.map((b) => b.block)).toEqual([1000, 1002]);
    expect([...t.recs]).toEqual([set.blocks[1]]);
    expect([...t.index]).toEqual([set.index[0]]);
    expect(set.index[0].list).toEqual([1000, 1002]);
    // A small record that would fit the first block's 104 spare bytes goes to the newest block, which has room.
    const t3 = touched();
    set.put('small', encodeDirentRec('small', 1), t3, a.alloc);
    expect([...t3.recs]).toEqual([set.blocks[1]]);
  });

  it('adds an index block when the index is full, and links it from the previous one', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const a = blocks();
    const cap = indexCapacity(BS);                           // 508 record blocks per index block
    const n = cap * 15;                                      // fills exactly 508 record blocks
    for (let i = 0; i < n; i++) {
      const t = touched();
      set.put(`n${i}`, dirent(i), t, a.alloc);
      if (t.recs.size !== 1 || t.index.size > 1) throw new Error(`put ${i} touched ${t.recs.size} record and ${t.index.size} index blocks`);
    }
    expect(set.blocks.length).toBe(cap);
    expect(set.index.length).toBe(1);
    expect(set.index[0].list.length).toBe(cap);
    expect(a.goals.length).toBe(cap + 1);
    const t = touched();
    set.put(`n${n}`, dirent(n), t, a.alloc);
    expect(a.goals.length).toBe(cap + 3);                    // one record block, one index block
    expect(set.index.length).toBe(2);
    expect(t.recs.size).toBe(1);
    expect(new Set(t.index)).toEqual(new Set(set.index));    // the old one's next pointer changes too
    expect(set.index[1].list).toEqual([set.blocks[cap].block]);
    expect(set.nextOf(set.index[0])).toBe(set.index[1].block);
    expect(set.nextOf(set.index[1])).toBe(0);
    expect(set.count).toBe(n + 1);
    expect(new Set(set.allBlocks()).size).toBe(cap + 3);
    const back = roundTrip(set);
    expect(back.size).toBe(n + 1);
    expect(back.get('n0'.padEnd(255, '.'))).toBe(100);
    expect(back.get(`n${n}`.padEnd(255, '.'))).toBe(100 + n);
  });

  it('replaces an existing key in place when it fits, and moves it (touching both blocks) when it does not', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const a = blocks();
    for (let i = 0; i < 16; i++) set.put(`k${i}`, dirent(i, 254), touched(), a.alloc);   // 16 × 254 = 4064: exactly full
    expect(set.blocks.length).toBe(1);
    expect(set.blocks[0].used).toBe(recBlockCapacity(BS));
    // Same size: in place, no allocation.
    const t1 = touched();
    const same = encodeDirentRec(nameOf(dirent(3, 254)), 999);
    set.put('k3', same, t1, a.alloc);
    expect([...t1.recs]).toEqual([set.blocks[0]]);
    expect(itemsOf(set.blocks[0]).get('k3')).toBe(same);
    expect(a.goals.length).toBe(2);
    // Larger than the block's room: moved to a new block; both blocks touched.
    const t3 = touched();
    const bigger = dirent(5, 264);
    set.put('k5', bigger, t3, a.alloc);
    expect(a.goals.length).toBe(3);
    expect(set.blocks.length).toBe(2);
    expect(new Set(t3.recs)).toEqual(new Set(set.blocks));
    expect(itemsOf(set.blocks[0]).has('k5')).toBe(false);
    expect(itemsOf(set.blocks[1]).get('k5')).toBe(bigger);
    expect(set.blocks[0].used).toBe(recBlockCapacity(BS) - 254);
    // Smaller: in place, the block's used bytes shrink.
    const t2 = touched();
    set.put('k4', encodeDirentRec('short', 4), t2, a.alloc);
    expect([...t2.recs]).toEqual([set.blocks[0]]);
    expect(set.blocks[0].used).toBe(recBlockCapacity(BS) - 254 - 254 + 14);
    expect(a.goals.length).toBe(3);
    expect(set.count).toBe(16);
    const back = roundTrip(set);
    expect(back.size).toBe(16);
    expect(back.get(nameOf(same))).toBe(999);
    expect(back.get('short')).toBe(4);
  });

  it('replaces extent records keyed by file block', () => {
    const set = new RecordSet(REC_KIND_EXTENT, INO, BS);
    const a = blocks();
    for (let i = 0; i < 200; i++) set.put(i * 8, encodeExtentRec({ fileBlock: i * 8, regionBlock: 5000 + i * 8, len: 8, flags: 0 }), touched(), a.alloc);
    expect(set.blocks.length).toBe(2);                       // 169 extents per 4 KiB block
    const t = touched();
    const moved = encodeExtentRec({ fileBlock: 8, regionBlock: 77, len: 8, flags: EXT_UNWRITTEN });
    set.put(8, moved, t, a.alloc);
    expect([...t.recs]).toEqual([set.blocks[0]]);
    expect(set.count).toBe(200);
    const d = decodeRecordBlock(encodeRecordBlock(BS, INO, REC_KIND_EXTENT, recordBytes(set.blocks[0])), INO, REC_KIND_EXTENT, 'x');
    expect(d.extents.find(([e]) => e.fileBlock === 8)![0]).toEqual({ fileBlock: 8, regionBlock: 77, len: 8, flags: EXT_UNWRITTEN });
    expect(d.extents.length + itemsOf(set.blocks[1]).size).toBe(200);
  });

  it('puts new records into a block with freed room before allocating', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const a = blocks();
    for (let i = 0; i < 45; i++) set.put(`n${i}`, dirent(i), touched(), a.alloc);   // 3 full blocks
    set.remove('n1', touched());
    set.remove('n2', touched());                             // block 0: 104 + 528 bytes free
    const allocs = a.goals.length;
    const t = touched();
    set.put('new', dirent(1000), t, a.alloc);
    expect(a.goals.length).toBe(allocs);
    expect([...t.recs]).toEqual([set.blocks[0]]);
    expect(roundTrip(set).size).toBe(44);
  });

  it('adopts blocks read from media and keeps using their index and room', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const raw = encodeRecordBlock(BS, INO, REC_KIND_DIRENT, [encodeDirentRec('x', 3), encodeDirentRec('y', 4)]);
    const d = decodeRecordBlock(raw, INO, REC_KIND_DIRENT, 'x');
    set.index.push({ block: 50, list: [60] });               // what the store does at mount
    const rb = set.adopt(60, d.dirents.map(([n, , r]) => [n, r]));
    expect(rb.used).toBe(20);
    expect(set.count).toBe(2);
    expect(set.has('x') && set.has('y')).toBe(true);
    const a = blocks();
    const t = touched();
    set.put('z', encodeDirentRec('z', 5), t, a.alloc);
    expect(a.goals).toEqual([]);
    expect([...t.recs]).toEqual([rb]);
    for (let i = 0; i < 15; i++) set.put(`n${i}`, dirent(i), touched(), a.alloc);   // 30 + 3960 bytes: still fits
    expect(a.goals).toEqual([]);
    set.put('n15', dirent(15), touched(), a.alloc);
    expect(a.goals).toEqual([61]);                           // a second record block; the index has room
    expect(set.index).toEqual([{ block: 50, list: [60, 1000] }]);
    expect(roundTrip(set).size).toBe(19);
  });

  it('keeps records adopted with their source image as positions, and encodes, replaces and removes them alike', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const names = Array.from({ length: 40 }, (_, i) => `entry-${i}`);
    const raw = encodeRecordBlock(BS, INO, REC_KIND_DIRENT, names.map((n, i) => encodeDirentRec(n, i + 10)));
    const d = decodeRecordBlock(raw, INO, REC_KIND_DIRENT, 'x');
    set.index.push({ block: 50, list: [60] });
    const rb = set.adopt(60, d.dirents.map(([n, , r]) => [n, r]), raw);
    expect([...itemsOf(rb).values()].every((v) => typeof v === 'number')).toBe(true);   // no Buffer per record
    expect(rb.used).toBe(d.dirents.reduce((n, [, , r]) => n + r.length, 0));
    // Encoding the block again gives back the very bytes it was read from.
    expect(encodeRecordBlock(BS, INO, REC_KIND_DIRENT, recordBytes(rb)).equals(raw)).toBe(true);
    const a = blocks();
    set.put('entry-3', encodeDirentRec('entry-3', 999), touched(), a.alloc);        // replaced in place
    set.remove('entry-7', touched());
    const back = new Map(decodeRecordBlock(encodeRecordBlock(BS, INO, REC_KIND_DIRENT, recordBytes(rb)), INO, REC_KIND_DIRENT, 'x').dirents.map(([n, i]) => [n, i]));
    expect(back.size).toBe(39);
    expect(back.get('entry-3')).toBe(999);
    expect(back.has('entry-7')).toBe(false);
    expect(back.get('entry-39')).toBe(49);
    expect(rb.used).toBe([...recordBytes(rb)].reduce((n, r) => n + r.length, 0));
  });

  it('adopts a block unread: keys and room at once, its map of records only when one of them changes', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS);
    const names = Array.from({ length: 40 }, (_, i) => `entry-${i}`);
    const raw = encodeRecordBlock(BS, INO, REC_KIND_DIRENT, names.map((n, i) => encodeDirentRec(n, i + 10)));
    const d = decodeRecordBlock(raw, INO, REC_KIND_DIRENT, 'x');
    set.index.push({ block: 50, list: [60, 61] });
    let reads = 0;
    const rbs = [60, 61].map((b) => {
      const rb = set.adoptUnread(b, raw, (add) => {
        reads++;
        for (const [n, , r] of d.dirents) add(b === 60 ? n : `${n}b`, r.byteOffset - raw.byteOffset, r.length);
      });
      for (const [n, , r] of d.dirents) set.adoptKey(rb, b === 60 ? n : `${n}b`, r.length);
      set.noteAdopted(rb);
      return rb;
    });
    expect(set.count).toBe(80);
    expect(rbs.map((rb) => rb.items)).toEqual([null, null]);
    expect(rbs[0].used).toBe(d.dirents.reduce((n, [, , r]) => n + r.length, 0));
    const a = blocks();
    const t = touched();
    set.remove('entry-7b', t);                                    // reads block 61's records, not block 60's
    expect(reads).toBe(1);
    expect([...t.recs]).toEqual([rbs[1]]);
    expect(rbs[0].items).toBeNull();
    set.put('entry-3', encodeDirentRec('entry-3', 999), touched(), a.alloc);        // replaced in place in block 60
    expect(reads).toBe(2);
    expect(a.goals).toEqual([]);
    const back = (rb: typeof rbs[0]) => new Map(decodeRecordBlock(encodeRecordBlock(BS, INO, REC_KIND_DIRENT, recordBytes(rb)), INO, REC_KIND_DIRENT, 'x').dirents.map(([n, i]) => [n, i]));
    expect(back(rbs[0]).get('entry-3')).toBe(999);
    expect(back(rbs[0]).size).toBe(40);
    expect(back(rbs[1]).has('entry-7b')).toBe(false);
    expect(back(rbs[1]).size).toBe(39);
    expect(reads).toBe(2);                                        // each block read once
  });
});

/**
 * A directory's hash index (RecordSet with a hash, FEAT_INCOMPAT_DIRHASH):
 * against a model (a Map of names), every put and remove leaves the leaves
 * in ascending ranges that hold exactly their hashes, the index listing
 * them in order, and — written to a simulated medium from what each change
 * reports touched and freed, as the store writes the journal — a chain that
 * decodes back to the model. Splits, merges and index-block splits all
 * happen; each change stays within its block bound.
 */
describe('RecordSet hash index', () => {
  const SEED = 0x5eed;
  const realHash = (n: string) => direntHash(n, SEED);
  /** Names "H:rest" hash to H (to place collisions on purpose). */
  const chosenHash = (n: string) => Number(n.slice(0, n.indexOf(':')));

  /** The set's medium: what the reported touched blocks encode to; freed blocks dropped. */
  function medium(set: RecordSet) {
    const media = new Map<number, Buffer>();
    const apply = (t: RecTouched) => {
      for (const b of t.freed ?? []) {
        expect(set.allBlocks(), `freed block ${b} still in use`).not.toContain(b);
        media.delete(b);
      }
      for (const rb of t.recs) media.set(rb.block, encodeRecordBlock(BS, set.ino, set.kind, recordBytes(rb)));
      for (const ix of t.index) media.set(ix.block, encodeIndexBlock(BS, set.ino, set.nextOf(ix), ix.list, ix.los ?? null));
      for (const rt of t.roots ?? []) media.set(rt.block, encodeIndexBlock(BS, set.ino, set.nextRootOf(rt), rt.list, rt.los!, true));
    };
    /** Decode the chain from the medium (through its roots): names → inos, checking every leaf's range and the roots against the chain. */
    const read = (hash: (n: string) => number): Map<string, number> => {
      const out = new Map<string, number>();
      const leaves: Array<[number, number]> = [];
      const fromRoots: Array<[number, number]> = [];
      let b = set.headBlock;
      for (let rt = b ? decodeIndexBlock(media.get(b)!, set.ino, 'test') : null; rt?.root;) {
        rt.blocks.forEach((ib, i) => fromRoots.push([ib, rt!.los![i]]));
        rt = rt.next ? decodeIndexBlock(media.get(rt.next)!, set.ino, 'test') : null;
      }
      expect(fromRoots.length > 0, 'a hash index has its root').toBe(true);
      b = fromRoots[0]?.[0] ?? 0;
      const chained: Array<[number, number]> = [];
      for (; b !== 0;) {
        const ix = decodeIndexBlock(media.get(b)!, set.ino, 'test');
        expect(ix.root).toBeUndefined();
        chained.push([b, ix.los![0]]);
        ix.blocks.forEach((lb, i) => leaves.push([lb, ix.los![i]]));
        b = ix.next;
      }
      expect(chained).toEqual(fromRoots);                              // the roots list the chain's index blocks, in order, with their first hashes
      expect(leaves.map(([b]) => b)).toEqual(set.blocks.map((rb) => rb.block));
      expect(leaves[0]?.[1] ?? 0).toBe(0);
      leaves.forEach(([b, lo], i) => {
        const hi = leaves[i + 1]?.[1] ?? 2 ** 32;
        for (const [n, ino] of decodeRecordBlock(media.get(b)!, set.ino, REC_KIND_DIRENT, 'test').dirents) {
          const h = hash(n);
          expect(h >= lo && h < hi, `${n} (hash ${h}) outside leaf [${lo}, ${hi})`).toBe(true);
          expect(out.has(n)).toBe(false);
          out.set(n, ino);
        }
      });
      return out;
    };
    return { media, apply, read };
  }

  /** The in-core invariants: ranges ascending from 0, index in step with the leaves, byte counts right, no index block over capacity or empty. */
  function checkShape(set: RecordSet, hash: (n: string) => number): void {
    const cap = recBlockCapacity(BS);
    expect(set.blocks[0]?.lo ?? 0).toBe(0);
    set.blocks.forEach((rb, i) => {
      if (i > 0) expect(rb.lo!).toBeGreaterThan(set.blocks[i - 1].lo!);
      const hi = set.blocks[i + 1]?.lo ?? 2 ** 32;
      let used = 0;
      for (const [k, r] of itemsOf(rb)) {
        const h = hash(k as string);
        expect(h >= rb.lo! && h < hi).toBe(true);
        used += typeof r === 'number' ? r % 65536 : r.length;
      }
      expect(rb.used).toBe(used);
      expect(used).toBeLessThanOrEqual(cap);
      if (set.blocks.length > 1) expect(used, 'an empty leaf beside others').toBeGreaterThan(0);
    });
    expect(set.index.flatMap((ix) => ix.list)).toEqual(set.blocks.map((rb) => rb.block));
    expect(set.index.flatMap((ix) => ix.los!)).toEqual(set.blocks.map((rb) => rb.lo));
    for (const ix of set.index) {
      expect(ix.list.length).toBeGreaterThan(0);
      expect(ix.list.length).toBeLessThanOrEqual(set.fanout);
    }
    expect(set.roots.flatMap((rt) => rt.list)).toEqual(set.index.map((ix) => ix.block));
    expect(set.roots.flatMap((rt) => rt.los!)).toEqual(set.index.map((ix) => ix.los![0]));
    for (const rt of set.roots) {
      expect(rt.list.length).toBeGreaterThan(0);
      expect(rt.list.length).toBeLessThanOrEqual(set.fanout);
    }
    expect(set.fanout).toBeLessThanOrEqual(indexCapacity(BS, true));
  }

  it.each([
    [1, undefined], [2, undefined], [3, undefined], [4, 4], [5, 3],
  ])('follows a model through splits, merges, index and root splits (seed %i, fanout %s)', (seed, fanout) => {
    const r = seededRandom(seed);
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS, realHash, fanout);
    const { apply, read } = medium(set);
    const a = blocks();
    const model = new Map<string, number>();
    const keys: string[] = [];
    let maxLeaves = 0, maxIndex = 0, maxRoots = 0, merged = 0;
    const grow = fanout ? 6_000 : 50_000, steps = fanout ? 13_000 : 110_000;
    for (let step = 0; step < steps; step++) {
      const t = touched();
      const adding = step < grow ? r() < 0.9 : r() < 0.15;      // fill to ~40k names, then empty them
      if (adding || keys.length === 0) {
        const name = `f-${Math.floor(r() * 1e9).toString(36)}`.padEnd(8 + Math.floor(r() * 40), 'x');
        const ino = 100 + step;
        set.put(name, encodeDirentRec(name, ino), t, a.alloc);
        if (!model.has(name)) keys.push(name);
        model.set(name, ino);
      } else {
        const k = Math.floor(r() * keys.length);
        const name = keys[k];
        keys[k] = keys[keys.length - 1]; keys.pop();
        const before = set.blocks.length;
        set.remove(name, t);
        model.delete(name);
        if (set.blocks.length < before) merged++;
      }
      expect(t.recs.size).toBeLessThanOrEqual(2);
      expect(t.index.size).toBeLessThanOrEqual(3);
      expect(t.roots?.size ?? 0).toBeLessThanOrEqual(3);
      expect((t.freed ?? []).length).toBeLessThanOrEqual(3);
      apply(t);
      maxLeaves = Math.max(maxLeaves, set.blocks.length); maxIndex = Math.max(maxIndex, set.index.length); maxRoots = Math.max(maxRoots, set.roots.length);
      if (step % (fanout ? 500 : 20_000) === 0 || step === steps - 1) {
        checkShape(set, realHash);
        expect(read(realHash)).toEqual(model);
      }
    }
    expect(set.count).toBe(model.size);
    expect(maxIndex).toBeGreaterThan(1);                             // index blocks split
    expect(merged).toBeGreaterThan(fanout ? 30 : 100);              // leaves merged
    expect(maxLeaves).toBeGreaterThan(fanout ? 50 : 200);
    expect(set.blocks.length).toBeLessThan(maxLeaves / 10);          // and the set shrank with its names
    if (fanout) {
      expect(maxRoots).toBeGreaterThan(4);                           // root blocks split
      expect(set.roots.length).toBeLessThan(maxRoots / 2);           // and went with the index blocks they listed
    }
  }, 120_000);

  it('splits a full leaf at a hash boundary: names of one hash stay together; a leaf full of one hash is ENOSPC, and changes nothing', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS, chosenHash);
    const { apply, read } = medium(set);
    const a = blocks();
    const put = (n: string) => { const t = touched(); set.put(n, encodeDirentRec(n, 7), t, a.alloc); apply(t); };
    for (let i = 0; i < 60; i++) put(`5:${'a'.repeat(40)}${i}`);      // 60 names of hash 5: 3,000 bytes
    for (let i = 0; i < 30; i++) put(`9:${'b'.repeat(20)}${i}`);      // 30 of hash 9: the block is full
    expect(set.blocks.length).toBe(2);
    expect(set.blocks.map((rb) => rb.lo)).toEqual([0, 9]);           // split between the two hashes, not inside one
    checkShape(set, chosenHash);
    const model = read(chosenHash);
    const full = new RecordSet(REC_KIND_DIRENT, INO, BS, chosenHash);
    const fits = Math.floor(recBlockCapacity(BS) / direntRecSize(`3:${'c'.repeat(40)}10`));
    for (let i = 10; i < 10 + fits; i++) full.put(`3:${'c'.repeat(40)}${i}`, encodeDirentRec(`3:${'c'.repeat(40)}${i}`, 1), touched(), a.alloc);
    const goals = a.goals.length;
    expect(() => full.put(`3:${'c'.repeat(40)}x`, encodeDirentRec(`3:${'c'.repeat(40)}x`, 1), touched(), a.alloc)).toThrow(/ENOSPC.*one hash/);
    expect(a.goals.length).toBe(goals);                              // nothing allocated
    expect(full.blocks.length).toBe(1);
    checkShape(full, chosenHash);
    expect(read(chosenHash)).toEqual(model);
  });

  it('the first leaf emptied hands hash 0 on to the next; the last leaf never goes', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS, chosenHash);
    const { apply, read } = medium(set);
    const a = blocks();
    const names = [...Array.from({ length: 50 }, (_, i) => `10:${'p'.repeat(60)}${i}`), ...Array.from({ length: 50 }, (_, i) => `20:${'q'.repeat(60)}${i}`)];
    for (const n of names) { const t = touched(); set.put(n, encodeDirentRec(n, 1), t, a.alloc); apply(t); }
    expect(set.blocks.map((rb) => rb.lo)).toEqual([0, 20]);
    for (const n of names.slice(0, 50)) { const t = touched(); set.remove(n, t); apply(t); }
    expect(set.blocks.map((rb) => rb.lo)).toEqual([0]);              // the 20s' leaf now starts at 0
    checkShape(set, chosenHash);
    for (const n of names.slice(50)) { const t = touched(); set.remove(n, t); apply(t); }
    expect(set.blocks.length).toBe(1);
    expect(set.count).toBe(0);
    expect(read(chosenHash)).toEqual(new Map());
  });

  it('an index block whose one leaf empties hands hash 0 to the next index block, and its root entry goes', () => {
    const set = new RecordSet(REC_KIND_DIRENT, INO, BS, chosenHash, 2);
    const { apply, read } = medium(set);
    const a = blocks();
    const group = (h: number, c: string) => Array.from({ length: 50 }, (_, i) => `${h}:${c.repeat(60)}${i}`);
    const [tens, twenties, thirties] = [group(10, 'p'), group(20, 'q'), group(30, 'r')];
    const step = (fn: (t: RecTouched) => void) => { const t = touched(); fn(t); apply(t); };
    for (const n of [...tens, ...twenties, ...thirties]) step((t) => set.put(n, encodeDirentRec(n, 1), t, a.alloc));
    expect(set.blocks.map((rb) => rb.lo)).toEqual([0, 20, 30]);
    expect(set.index.map((ix) => ix.los)).toEqual([[0, 20], [30]]);   // the index block split (fanout 2)
    expect(set.roots.map((rt) => rt.los)).toEqual([[0, 30]]);
    for (const n of twenties) step((t) => set.remove(n, t));
    expect(set.index.map((ix) => ix.los)).toEqual([[0], [30]]);
    for (const n of tens) step((t) => set.remove(n, t));               // the first index block's one leaf empties
    expect(set.index.map((ix) => ix.los)).toEqual([[0]]);
    expect(set.roots.map((rt) => rt.los)).toEqual([[0]]);
    checkShape(set, chosenHash);
    expect(read(chosenHash)).toEqual(new Map(thirties.map((n) => [n, 1])));
  });
});
