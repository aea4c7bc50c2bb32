/**
 * The on-media format v2 (src/format/layout.ts, src/format/fork.ts): record
 * sizes and field offsets pinned the way XFS's xfs_ondisk.h pins its
 * structures, encode→decode round trips, free-space bitmap blocks, the
 * journal and backup-superblock geometry, and the decoders' refusals
 * (checksum, magic, version 1 and unknown versions, geometry, truncation).
 * A failure in the pins is a format change: bump FORMAT_VERSION rather than
 * editing the expected numbers.
 */
import { describe, expect, it } from 'vitest';
import { formatError } from './helpers.js';
import {
  decodeFork, emptyFork, encodeFork, EXT_SHARED, EXT_UNWRITTEN, EXTENT_REC_SIZE, FORK_VERSION, forkSize, type Fork,
} from '../../src/format/fork.js';
import {
  BITMAP_HDR, BITMAP_MAGIC, bitsPerBitmapBlock, computeGeometry, dataEnd, decodeBitmapBlock, decodeInode,
  decodeSuperblock, encodeBitmapBlock, encodeInode, encodeSuperblock, FEAT_INCOMPAT_JOURNAL, FEAT_INCOMPAT_DATALOG, FEAT_INCOMPAT_ICACHE, FEAT_INCOMPAT_LOG2, FEAT_INCOMPAT_REFCOUNT,
  FEAT_INCOMPAT_DIRHASH, FEAT_INCOMPAT_DIRROOT, FEAT_INCOMPAT_SUPPORTED, FEAT_RO_COMPAT_SUPPORTED, FORMAT_VERSION, FormatError, hasSuperblockMagic, IFLAG_ORPHAN,
  IFLAG_SEALED, INLINE_FORK_MAX, INO, INODE_MAGIC, INODE_SIZE, isFreeSlot, LABEL_MAX, MAX_COUNTER, MAX_INODES, MAX_JOURNAL_BLOCKS,
  MIN_JOURNAL_BLOCKS, readI64, readU64, recordChecksum, ROOT_INO, SB, SB_MAGIC, SB_SIZE, SB_STATE_DIRTY, writeI64,
  writeU64, type InodeRecord, type Superblock,
} from '../../src/format/layout.js';


function sampleSuperblock(): Superblock {
  const geo = computeGeometry({ regionSize: 64 << 20, blockSize: 4096 });
  return {
    ...geo,
    uuid: Buffer.from('00112233445566778899aabbccddeeff', 'hex'),
    label: 'unit-label-é',
    mkfsTime: 1_700_000_000, lastMountTime: 1_700_000_123, mountCount: 7,
    generation: 4242, state: SB_STATE_DIRTY, flags: 0x5, inodeHwm: 37,
    featuresCompat: 0x8000_0000_01, featuresIncompat: FEAT_INCOMPAT_JOURNAL,
    journalSeq: 2 ** 40 + 3, refcountRoot: 0, dataSeq: 2 ** 40 + 2, inodesUsed: 30, ilistRoot: 2 ** 33 + 9,
  };
}

function sampleInode(over: Partial<InodeRecord> = {}): InodeRecord {
  return {
    ino: 17, mode: 0o100644, uid: 1000, gid: 100, nlink: 3, size: 2 ** 40 + 5,
    atime: { sec: 1_600_000_000, nsec: 1 }, mtime: { sec: -12345, nsec: 999_999_999 },
    ctime: { sec: 2 ** 33, nsec: 500 }, btime: { sec: 0, nsec: 0 },
    flags: IFLAG_SEALED | IFLAG_ORPHAN, generation: 0xfffffffe, rdev: 0x0801,
    forkLen: 0, forkCrc: 0xdeadbeef, forkBlock: 0, forkBlocks: 0,
    recIndex: 2 ** 36 + 9, recBlocks: 0xfffffff0, recCount: 123_456,
    ...over,
  };
}

function sampleFork(): Fork {
  return {
    extents: [
      { fileBlock: 0, regionBlock: 100, len: 8, flags: 0 },
      { fileBlock: 8, regionBlock: 2 ** 40, len: 0xffffffff, flags: EXT_UNWRITTEN },
      { fileBlock: 2 ** 45, regionBlock: 7, len: 1, flags: EXT_SHARED | EXT_UNWRITTEN },
    ],
    xattrs: new Map([
      ['user.a', Buffer.from('value')],
      ['trusted.bin', Buffer.from([0, 1, 2, 255, 0])],
      ['user.empty', Buffer.alloc(0)],
      ['user.ünï', Buffer.from('x'.repeat(300))],
    ]),
    dirents: new Map([['a', 2], ['ファイル', 3], ['x'.repeat(255), 2 ** 50]]),
    symlink: Buffer.from('../some/target/é'),
  };
}

describe('on-media sizes and offsets', () => {
  it('pins the record sizes', () => {
    expect(SB_SIZE).toBe(512);
    expect(INODE_SIZE).toBe(512);
    expect(EXTENT_REC_SIZE).toBe(24);
    expect(INLINE_FORK_MAX).toBe(368);
    expect(LABEL_MAX).toBe(64);
    expect(SB_MAGIC.toString('hex')).toBe('504d454d46530001');
    expect(INODE_MAGIC).toBe(0x4e494d50);
    expect(FORMAT_VERSION).toBe(2);
    expect(FORK_VERSION).toBe(1);
    expect(ROOT_INO).toBe(1);
    expect(BITMAP_HDR).toBe(16);
    expect(BITMAP_MAGIC).toBe(0x4d424d50);
    expect(bitsPerBitmapBlock(4096)).toBe(32640);
    expect(bitsPerBitmapBlock(65536)).toBe((65536 - 16) * 8);
    expect(MIN_JOURNAL_BLOCKS).toBe(64);
    expect(MAX_JOURNAL_BLOCKS).toBe(8192);
    expect(MAX_INODES).toBe(1 << 24);
  });

  it('pins the feature bits: v2 requires the journal; refcounts (reflink), the two-area log, data logging, on-demand inodes, directory hash indexes and their roots are supported', () => {
    expect(FEAT_INCOMPAT_JOURNAL).toBe(0x1);
    expect(FEAT_INCOMPAT_REFCOUNT).toBe(0x2);
    expect(FEAT_INCOMPAT_LOG2).toBe(0x4);
    expect(FEAT_INCOMPAT_DATALOG).toBe(0x8);
    expect(FEAT_INCOMPAT_ICACHE).toBe(0x10);
    expect(FEAT_INCOMPAT_DIRHASH).toBe(0x20);
    expect(FEAT_INCOMPAT_DIRROOT).toBe(0x40);
    expect(FEAT_INCOMPAT_SUPPORTED).toBe(FEAT_INCOMPAT_JOURNAL | FEAT_INCOMPAT_REFCOUNT | FEAT_INCOMPAT_LOG2 | FEAT_INCOMPAT_DATALOG | FEAT_INCOMPAT_ICACHE | FEAT_INCOMPAT_DIRHASH | FEAT_INCOMPAT_DIRROOT);
    expect(FEAT_RO_COMPAT_SUPPORTED).toBe(0);
  });

  it('pins every superblock field offset', () => {
    expect({ ...SB }).toEqual({
      magic: 0, version: 8, crc: 12, uuid: 16, blockSize: 32, inodeSize: 36,
      regionSize: 40, totalBlocks: 48, bitmapStart: 56, bitmapBlocks: 64,
      itableStart: 72, itableBlocks: 80, inodeCount: 88, dataStart: 96,
      rootIno: 104, featuresCompat: 112, featuresIncompat: 120, featuresRoCompat: 128,
      state: 136, flags: 140, mkfsTime: 144, lastMountTime: 152, mountCount: 160,
      journalStart: 168, journalBlocks: 176, generation: 184, label: 192,
      inodeHwm: 256, journalSeq: 264, refcountRoot: 272, dataSeq: 280, inodesUsed: 288, ilistRoot: 296, end: 304,
    });
  });

  it('pins every inode field offset', () => {
    expect({ ...INO }).toEqual({
      magic: 0, crc: 4, ino: 8, mode: 16, uid: 20, gid: 24, nlink: 28, size: 32,
      atimeSec: 40, atimeNsec: 48, flags: 52, mtimeSec: 56, mtimeNsec: 64, generation: 68,
      ctimeSec: 72, ctimeNsec: 80, forkLen: 84, btimeSec: 88, btimeNsec: 96, forkCrc: 100,
      rdev: 104, forkBlock: 112, forkBlocks: 120, recIndex: 128, recBlocks: 136, recCount: 140,
      inlineFork: 144,
    });
  });

  it('superblock fields, at their widths, tile [0, SB.end) without overlap', () => {
    const width: Record<string, number> = { magic: 8, version: 4, crc: 4, uuid: 16, blockSize: 4, inodeSize: 4, state: 4, flags: 4, label: LABEL_MAX };
    const fields = Object.entries(SB).filter(([k]) => k !== 'end').sort((a, b) => a[1] - b[1]);
    let next = 0;
    for (const [k, off] of fields) {
      expect(off, `SB.${k}`).toBe(next);
      next = off + (width[k] ?? 8);
    }
    expect(next).toBe(SB.end);
    expect(SB.end).toBeLessThanOrEqual(SB_SIZE);
  });

  it('inode fields, at their widths, tile [0, INO.inlineFork) without overlap', () => {
    const w8 = new Set(['ino', 'size', 'atimeSec', 'mtimeSec', 'ctimeSec', 'btimeSec', 'rdev', 'forkBlock', 'forkBlocks', 'recIndex']);
    const fields = Object.entries(INO).filter(([k]) => k !== 'inlineFork').sort((a, b) => a[1] - b[1]);
    let next = 0;
    for (const [k, off] of fields) {
      expect(off, `INO.${k}`).toBe(next);
      next = off + (w8.has(k) ? 8 : 4);
    }
    expect(next).toBe(INO.inlineFork);
    expect(INO.inlineFork + INLINE_FORK_MAX).toBe(INODE_SIZE);
  });

  it('encodeSuperblock puts each value at its pinned offset, little-endian', () => {
    const sb = sampleSuperblock();
    const b = encodeSuperblock(sb);
    expect(b.length).toBe(SB_SIZE);
    expect(b.subarray(0, 8).equals(SB_MAGIC)).toBe(true);
    expect(b.readUInt32LE(SB.version)).toBe(2);
    expect(b.subarray(SB.uuid, SB.uuid + 16).equals(sb.uuid)).toBe(true);
    expect(b.readUInt32LE(SB.blockSize)).toBe(4096);
    expect(b.readUInt32LE(SB.inodeSize)).toBe(512);
    expect(Number(b.readBigUInt64LE(SB.regionSize))).toBe(64 << 20);
    expect(Number(b.readBigUInt64LE(SB.totalBlocks))).toBe(16384);
    expect(Number(b.readBigUInt64LE(SB.featuresCompat))).toBe(0x8000_0000_01);
    expect(b.readUInt32LE(SB.state)).toBe(SB_STATE_DIRTY);
    expect(b.readUInt32LE(SB.flags)).toBe(5);
    expect(Number(b.readBigUInt64LE(SB.mountCount))).toBe(7);
    expect(Number(b.readBigUInt64LE(SB.generation))).toBe(4242);
    expect(Number(b.readBigUInt64LE(SB.inodeHwm))).toBe(37);
    expect(Number(b.readBigUInt64LE(SB.featuresIncompat))).toBe(FEAT_INCOMPAT_JOURNAL);
    expect(Number(b.readBigUInt64LE(SB.journalStart))).toBe(514);
    expect(Number(b.readBigUInt64LE(SB.journalBlocks))).toBe(512);
    expect(Number(b.readBigUInt64LE(SB.dataStart))).toBe(1026);
    expect(Number(b.readBigUInt64LE(SB.journalSeq))).toBe(2 ** 40 + 3);
    expect(Number(b.readBigUInt64LE(SB.refcountRoot))).toBe(0);
    const withRoot = encodeSuperblock({ ...sb, refcountRoot: 0x1_2345_6789 });
    expect(Number(withRoot.readBigUInt64LE(SB.refcountRoot))).toBe(0x1_2345_6789);
    expect(b.subarray(SB.label, SB.label + Buffer.byteLength(sb.label)).toString('utf8')).toBe(sb.label);
    expect(b.subarray(SB.end).every((x) => x === 0)).toBe(true);
  });

  it('encodeInode puts each value at its pinned offset, little-endian', () => {
    const fork = Buffer.from('inline-fork-bytes');
    const b = encodeInode(sampleInode({ forkLen: fork.length }), fork);
    expect(b.length).toBe(INODE_SIZE);
    expect(b.readUInt32LE(INO.magic)).toBe(INODE_MAGIC);
    expect(Number(b.readBigUInt64LE(INO.ino))).toBe(17);
    expect(b.readUInt32LE(INO.mode)).toBe(0o100644);
    expect(b.readUInt32LE(INO.uid)).toBe(1000);
    expect(b.readUInt32LE(INO.gid)).toBe(100);
    expect(b.readUInt32LE(INO.nlink)).toBe(3);
    expect(Number(b.readBigUInt64LE(INO.size))).toBe(2 ** 40 + 5);
    expect(Number(b.readBigInt64LE(INO.mtimeSec))).toBe(-12345);
    expect(b.readUInt32LE(INO.mtimeNsec)).toBe(999_999_999);
    expect(b.readUInt32LE(INO.flags)).toBe(IFLAG_SEALED | IFLAG_ORPHAN);
    expect(b.readUInt32LE(INO.generation)).toBe(0xfffffffe);
    expect(b.readUInt32LE(INO.forkLen)).toBe(fork.length);
    expect(b.readUInt32LE(INO.forkCrc)).toBe(0xdeadbeef);
    expect(Number(b.readBigUInt64LE(INO.rdev))).toBe(0x0801);
    expect(Number(b.readBigUInt64LE(INO.recIndex))).toBe(2 ** 36 + 9);
    expect(b.readUInt32LE(INO.recBlocks)).toBe(0xfffffff0);
    expect(b.readUInt32LE(INO.recCount)).toBe(123_456);
    expect(b.subarray(INO.inlineFork, INO.inlineFork + fork.length).equals(fork)).toBe(true);
  });
});

describe('superblock', () => {
  it('round-trips encode → decode', () => {
    const sb = sampleSuperblock();
    const back = decodeSuperblock(encodeSuperblock(sb));
    expect(back).toEqual(sb);
    expect(hasSuperblockMagic(encodeSuperblock(sb))).toBe(true);
  });

  it('keeps a label of exactly LABEL_MAX bytes and refuses a longer one', () => {
    const sb = { ...sampleSuperblock(), label: 'L'.repeat(LABEL_MAX) };
    expect(decodeSuperblock(encodeSuperblock(sb)).label).toBe(sb.label);
    expect(formatError(() => encodeSuperblock({ ...sb, label: 'L'.repeat(LABEL_MAX + 1) })).message).toMatch(/label/);
  });

  it('detects any single flipped byte outside the magic with a checksum error', () => {
    const good = encodeSuperblock(sampleSuperblock());
    for (let i = SB_MAGIC.length; i < SB_SIZE; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x10;
      expect(formatError(() => decodeSuperblock(bad)).message, `byte ${i}`).toMatch(/checksum/);
    }
  });

  it('refuses a buffer without the magic as not a pmemfs region', () => {
    const bad = encodeSuperblock(sampleSuperblock());
    bad[3] ^= 0xff;
    expect(hasSuperblockMagic(bad)).toBe(false);
    expect(formatError(() => decodeSuperblock(bad)).message).toMatch(/not a pmemfs region/);
    expect(formatError(() => decodeSuperblock(Buffer.alloc(SB_SIZE))).message).toMatch(/not a pmemfs region/);
  });

  it('refuses a truncated superblock', () => {
    expect(formatError(() => decodeSuperblock(encodeSuperblock(sampleSuperblock()).subarray(0, 511))).message).toMatch(/truncated/);
  });

  it('refuses an unknown format version', () => {
    for (const v of [0, 3, 0xffffffff]) {
      expect(formatError(() => decodeSuperblock(encodeSuperblock({ ...sampleSuperblock(), version: v }))).message)
        .toMatch(new RegExp(`version ${v} is not supported.*reads version 2`));
    }
  });

  it('refuses a version 1 region with a message that says so and what to do', () => {
    const msg = formatError(() => decodeSuperblock(encodeSuperblock({ ...sampleSuperblock(), version: 1 }))).message;
    expect(msg).toMatch(/format version 1/);
    expect(msg).toMatch(/mkfs\.pmemfs/);
    // Refused for its version before its (v1-shaped) geometry is looked at.
    const v1 = { ...sampleSuperblock(), version: 1, journalBlocks: 0, journalStart: 514, dataStart: 514, journalSeq: 0, featuresIncompat: 0 };
    expect(formatError(() => decodeSuperblock(encodeSuperblock(v1))).message).toMatch(/format version 1/);
  });

  it('round-trips the journal sequence (up to MAX_COUNTER) and refcount root at full width', () => {
    const sb = { ...sampleSuperblock(), journalSeq: MAX_COUNTER, refcountRoot: 2 ** 52 + 1 };
    expect(decodeSuperblock(encodeSuperblock(sb))).toEqual(sb);
  });

  it.each<[string, Partial<Superblock>]>([
    ['block size', { blockSize: 8192 }],
    ['block size', { blockSize: 3000 }],
    ['inode size', { inodeSize: 256 }],
    ['region size', { regionSize: (64 << 20) + 4096 }],
    ['bitmap', { bitmapStart: 2 }],
    ['bitmap', { bitmapBlocks: 0 }],
    ['inode table placement', { itableStart: 3 }],
    ['inode table size', { inodeCount: 1 << 20 }],
    ['data area placement', { dataStart: 9999 }],
    ['data area placement', { journalStart: 513 }],
    ['data area placement', { journalBlocks: 511 }],
    ['journal', { journalBlocks: 63, dataStart: 514 + 63 }],
    ['journal', { journalBlocks: 0, dataStart: 514 }],
    ['no data blocks', { journalBlocks: 16383 - 514, dataStart: 16383 }],
    ['root inode', { rootIno: 2 }],
    ['high-water', { inodeHwm: 0 }],
  ])('refuses inconsistent geometry (%s)', (what, over) => {
    const msg = formatError(() => decodeSuperblock(encodeSuperblock({ ...sampleSuperblock(), ...over }))).message;
    expect(msg).toMatch(/geometry is inconsistent/);
    expect(msg.toLowerCase()).toContain(what);
  });

  it('refuses a bitmap too small for the v2 bitmap block (16-byte header)', () => {
    // 32768 blocks fit one headerless 4 KiB bitmap block but not one with a header.
    const bs = 4096, totalBlocks = 32768, itableBlocks = 512;
    const sb: Superblock = {
      ...sampleSuperblock(), regionSize: totalBlocks * bs, totalBlocks, bitmapBlocks: 1,
      itableStart: 2, itableBlocks, journalStart: 2 + itableBlocks, journalBlocks: 64, dataStart: 2 + itableBlocks + 64,
    };
    expect(formatError(() => decodeSuperblock(encodeSuperblock(sb))).message).toMatch(/geometry is inconsistent: free-space bitmap/);
    expect(decodeSuperblock(encodeSuperblock({ ...sb, totalBlocks: 32640, regionSize: 32640 * bs })).totalBlocks).toBe(32640);
  });

  it('refuses an inode count beyond MAX_INODES even with a table to hold it', () => {
    const bs = 4096, inodeCount = MAX_INODES + 1, totalBlocks = 2_200_000;
    const itableBlocks = Math.ceil(inodeCount * INODE_SIZE / bs);
    const bitmapBlocks = Math.ceil(totalBlocks / bitsPerBitmapBlock(bs));
    const itableStart = 1 + bitmapBlocks, journalStart = itableStart + itableBlocks;
    const sb: Superblock = {
      ...sampleSuperblock(), regionSize: totalBlocks * bs, totalBlocks, bitmapBlocks, itableStart, itableBlocks,
      inodeCount, journalStart, journalBlocks: 64, dataStart: journalStart + 64,
    };
    expect(formatError(() => decodeSuperblock(encodeSuperblock(sb))).message).toMatch(/inode count 16777217/);
    expect(decodeSuperblock(encodeSuperblock({ ...sb, inodeCount: MAX_INODES })).inodeCount).toBe(MAX_INODES);
  });
});

describe('free-space bitmap block', () => {
  const bs = 4096;
  const sampleBits = (): Buffer => {
    const bits = Buffer.alloc(bs - BITMAP_HDR);
    for (let i = 0; i < bits.length; i++) bits[i] = (i * 37 + 11) & 0xff;
    return bits;
  };

  it('lays out magic, CRC32C and u64 index in a 16-byte header, then the bits', () => {
    const bits = sampleBits();
    const b = encodeBitmapBlock(bs, 2 ** 33 + 5, bits);
    expect(b.length).toBe(bs);
    expect(b.subarray(0, 4).toString('latin1')).toBe('PMBM');
    expect(b.readUInt32LE(0)).toBe(BITMAP_MAGIC);
    expect(b.readUInt32LE(4)).toBe(recordChecksum(b, 4));
    expect(Number(b.readBigUInt64LE(8))).toBe(2 ** 33 + 5);
    expect(b.subarray(BITMAP_HDR).equals(bits)).toBe(true);
  });

  it('round-trips encode → decode, and zero-fills bits not supplied', () => {
    const bits = sampleBits();
    expect(decodeBitmapBlock(encodeBitmapBlock(bs, 3, bits), 3).equals(bits)).toBe(true);
    const short = decodeBitmapBlock(encodeBitmapBlock(bs, 0, Buffer.from([0xff, 0x01])), 0);
    expect(short.length).toBe(bs - BITMAP_HDR);
    expect(short[0]).toBe(0xff);
    expect(short[1]).toBe(0x01);
    expect(short.subarray(2).every((x) => x === 0)).toBe(true);
    // Bits beyond one block's worth are not written.
    const long = Buffer.concat([Buffer.alloc(bs - BITMAP_HDR), Buffer.alloc(64, 0xff)]);
    expect(decodeBitmapBlock(encodeBitmapBlock(bs, 0, long), 0).every((x) => x === 0)).toBe(true);
  });

  it('round-trips at the largest block size', () => {
    const bits = Buffer.alloc(65536 - BITMAP_HDR, 0xa5);
    expect(decodeBitmapBlock(encodeBitmapBlock(65536, 1, bits), 1).equals(bits)).toBe(true);
  });

  it('detects any single flipped byte (bad magic, wrong index or checksum)', () => {
    const good = encodeBitmapBlock(bs, 6, sampleBits());
    for (let i = 0; i < bs; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x04;
      const msg = formatError(() => decodeBitmapBlock(bad, 6)).message;
      expect(msg, `byte ${i}`).toMatch(i < 4 ? /bad magic/ : i >= 8 && i < 16 ? /holds index|beyond 2\^53/ : /checksum mismatch/);
    }
  });

  it('refuses a block that holds another index, and a zeroed block', () => {
    const b = encodeBitmapBlock(bs, 1, sampleBits());
    expect(formatError(() => decodeBitmapBlock(b, 2)).message).toMatch(/bitmap block 2: holds index 1/);
    expect(formatError(() => decodeBitmapBlock(Buffer.alloc(bs), 0)).message).toMatch(/bitmap block 0: bad magic/);
  });
});

describe('computeGeometry', () => {
  it('sizes the inode table by bytes per inode (mkfs -i) or by count (mkfs -N), within bounds', () => {
    const g = (o: object) => computeGeometry({ regionSize: 1 << 30, blockSize: 4096, ...o });
    expect(g({}).inodeCount).toBe((1 << 30) / 16384);
    expect(g({ bytesPerInode: 4096 }).inodeCount).toBe((1 << 30) / 4096);
    expect(g({ inodeCount: 1_000_000 }).inodeCount).toBe(1_000_000);
    expect(g({ inodeCount: 1_000_000 }).itableBlocks).toBe(Math.ceil(1_000_000 * 512 / 4096));
    expect(() => g({ bytesPerInode: 1000 })).toThrow(/bytes per inode 1000: 1024 to/);
    expect(() => g({ inodeCount: 63 })).toThrow(/inode count 63: 64 to/);
    expect(() => g({ inodeCount: 2 ** 24 + 1 })).toThrow(/inode count/);
    expect(() => computeGeometry({ regionSize: 64 << 20, blockSize: 4096, inodeCount: 1_000_000 })).toThrow(/too small/);
  });

  it('lays out superblock, bitmap, inode table, journal and data in order', () => {
    const g = computeGeometry({ regionSize: 64 << 20, blockSize: 4096 });
    expect(g.version).toBe(2);
    expect(g.totalBlocks).toBe(16384);
    expect(g.bitmapStart).toBe(1);
    expect(g.bitmapBlocks).toBe(1);
    expect(g.inodeCount).toBe(4096);
    expect(g.itableStart).toBe(2);
    expect(g.itableBlocks).toBe(512);
    expect(g.journalStart).toBe(514);
    expect(g.journalBlocks).toBe(512);            // 16384 / 32
    expect(g.dataStart).toBe(1026);
    expect(g.regionSize).toBe(64 << 20);
    expect(g.featuresIncompat).toBe(FEAT_INCOMPAT_JOURNAL | FEAT_INCOMPAT_LOG2 | FEAT_INCOMPAT_DATALOG | FEAT_INCOMPAT_ICACHE);
    expect(g.featuresCompat).toBe(0);
    expect(g.featuresRoCompat).toBe(0);
  });

  it('leaves the last block of the region for the backup superblock', () => {
    for (const [size, bs] of [[64 << 20, 4096], [91 * 4096, 4096], [1 << 30, 65536]]) {
      const g = computeGeometry({ regionSize: size, blockSize: bs });
      expect(dataEnd(g)).toBe(g.totalBlocks - 1);
      expect(dataEnd(g)).toBeGreaterThan(g.dataStart);
      // Everything but block 0 and the backup is bitmap, table, journal or data, in order, without gaps.
      expect(g.bitmapStart).toBe(1);
      expect(g.itableStart).toBe(g.bitmapStart + g.bitmapBlocks);
      expect(g.journalStart).toBe(g.itableStart + g.itableBlocks);
      expect(g.dataStart).toBe(g.journalStart + g.journalBlocks);
    }
  });

  it('sizes the bitmap by the v2 bitmap block payload, covering every region block', () => {
    // 32640 blocks fit one 4 KiB bitmap block; 32641 need two.
    expect(computeGeometry({ regionSize: 32640 * 4096, blockSize: 4096 }).bitmapBlocks).toBe(1);
    expect(computeGeometry({ regionSize: 32641 * 4096, blockSize: 4096 }).bitmapBlocks).toBe(2);
    const g = computeGeometry({ regionSize: 8 * 2 ** 30, blockSize: 4096 });
    expect(g.bitmapBlocks * bitsPerBitmapBlock(4096)).toBeGreaterThanOrEqual(g.totalBlocks);
    expect((g.bitmapBlocks - 1) * bitsPerBitmapBlock(4096)).toBeLessThan(g.totalBlocks);
  });

  it('sizes the journal at 1/32 of the region, clamped to 64..8192 blocks, or as asked', () => {
    const j = (size: number, bs = 4096, journalBlocks?: number) => computeGeometry({ regionSize: size, blockSize: bs, journalBlocks }).journalBlocks;
    expect(j(91 * 4096)).toBe(64);                 // tiny region: the minimum
    expect(j(64 << 20)).toBe(512);
    expect(j(1 << 30)).toBe(8192);                 // 262144 / 32
    expect(j(4 * 2 ** 30)).toBe(8192);             // clamped
    expect(j(64 << 20, 65536)).toBe(64);           // 1024 blocks / 32 = 32 → 64
    expect(j(64 << 20, 4096, 100)).toBe(100);
    expect(j(1 << 30, 4096, 8192)).toBe(8192);     // an explicit size up to the maximum
    expect(formatError(() => j(1 << 30, 4096, 8193)).message).toMatch(/journal of 8193 blocks: 64 to 8192/);
    expect(formatError(() => j(64 << 20, 4096, 63)).message).toMatch(/journal of 63 blocks: 64 to 8192/);
    expect(formatError(() => j(64 << 20, 4096, 0)).message).toMatch(/journal of 0 blocks/);
  });

  it('produces geometry that decodeSuperblock accepts, for several sizes', () => {
    for (const [size, bs] of [[91 * 4096, 4096], [64 << 20, 4096], [(1 << 30) + 12345, 8192], [1 << 30, 65536]]) {
      const sb: Superblock = { ...sampleSuperblock(), ...computeGeometry({ regionSize: size, blockSize: bs }), inodeHwm: 1, inodesUsed: 1 };
      expect(decodeSuperblock(encodeSuperblock(sb))).toEqual(sb);
    }
  });

  it('rounds the region down to whole blocks', () => {
    const g = computeGeometry({ regionSize: (64 << 20) + 1000, blockSize: 4096 });
    expect(g.regionSize).toBe(64 << 20);
  });

  it('refuses a region too small for the metadata, the journal, 16 data blocks and the backup superblock', () => {
    // 64 inodes → 8 table blocks; journal 64 at 10; dataStart 74; minimum 74 + 16 + 1 = 91 blocks.
    const g = computeGeometry({ regionSize: 91 * 4096, blockSize: 4096 });
    expect(g.journalStart).toBe(10);
    expect(g.dataStart).toBe(74);
    expect(dataEnd(g) - g.dataStart).toBe(16);
    expect(formatError(() => computeGeometry({ regionSize: 90 * 4096, blockSize: 4096 })).message).toMatch(/too small: needs at least 372736 bytes/);
    expect(formatError(() => computeGeometry({ regionSize: 0, blockSize: 4096 })).message).toMatch(/too small/);
  });

  it.each([0, 512, 2048, 3000, 6144, 131072])('refuses block size %i', (bs) => {
    expect(formatError(() => computeGeometry({ regionSize: 64 << 20, blockSize: bs })).message).toMatch(/block size/);
  });

  it.each([4096, 8192, 65536])('accepts block size %i', (bs) => {
    expect(computeGeometry({ regionSize: 64 << 20, blockSize: bs }).blockSize).toBe(bs);
  });
});

describe('inode record', () => {
  it('round-trips encode → decode with an inline fork', () => {
    const fork = Buffer.from('x'.repeat(INLINE_FORK_MAX));
    const rec = sampleInode({ forkLen: fork.length });
    const { rec: back, inlineFork } = decodeInode(encodeInode(rec, fork), 17);
    expect(back).toEqual(rec);
    expect(inlineFork!.equals(fork)).toBe(true);
  });

  it('round-trips an inode without records (recIndex 0)', () => {
    const rec = sampleInode({ recIndex: 0, recBlocks: 0, recCount: 0 });
    expect(decodeInode(encodeInode(rec, null), 17).rec).toEqual(rec);
  });

  it('round-trips an out-of-line fork reference (no inline bytes)', () => {
    const rec = sampleInode({ forkLen: 9000, forkBlock: 2 ** 35, forkBlocks: 3 });
    const { rec: back, inlineFork } = decodeInode(encodeInode(rec, null), 17);
    expect(back).toEqual(rec);
    expect(inlineFork).toBeNull();
  });

  it('treats an all-zero slot as free', () => {
    expect(isFreeSlot(Buffer.alloc(INODE_SIZE))).toBe(true);
    expect(isFreeSlot(encodeInode(sampleInode(), null))).toBe(false);
  });

  it('detects any single flipped byte outside the magic with a checksum error', () => {
    const good = encodeInode(sampleInode({ forkLen: 4 }), Buffer.from('fork'));
    for (let i = 4; i < INODE_SIZE; i++) {
      const bad = Buffer.from(good);
      bad[i] ^= 0x01;
      expect(formatError(() => decodeInode(bad, 17)).message, `byte ${i}`).toMatch(/checksum/);
    }
  });

  it('refuses bad magic, the wrong slot, unknown flags and an oversized inline fork', () => {
    const bad = encodeInode(sampleInode(), null);
    bad[0] ^= 1;
    expect(formatError(() => decodeInode(bad, 17)).message).toMatch(/bad magic/);
    expect(formatError(() => decodeInode(encodeInode(sampleInode(), null), 18)).message).toMatch(/slot 18 holds inode 17/);
    expect(formatError(() => decodeInode(encodeInode(sampleInode({ flags: 0x4 }), null), 17)).message).toMatch(/unknown flags/);
    expect(formatError(() => decodeInode(encodeInode(sampleInode({ forkLen: INLINE_FORK_MAX + 1 }), null), 17)).message).toMatch(/inline fork length/);
    expect(formatError(() => encodeInode(sampleInode(), Buffer.alloc(INLINE_FORK_MAX + 1))).message).toMatch(/inline fork too large/);
  });
});

describe('64-bit fields', () => {
  it('round-trip every safe integer shape and agree with Node\'s BigInt codecs', () => {
    const b = Buffer.alloc(8);
    for (const v of [0, 1, 0xffff_ffff, 0x1_0000_0000, 0x1234_5678_9abc, Number.MAX_SAFE_INTEGER]) {
      writeU64(b, 0, v);
      expect(b.readBigUInt64LE(0)).toBe(BigInt(v));
      expect(readU64(b, 0)).toBe(v);
    }
    for (const v of [0, -1, -0xffff_ffff, -0x1_0000_0000, 1_700_000_000, -Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER]) {
      writeI64(b, 0, v);
      expect(b.readBigInt64LE(0)).toBe(BigInt(v));
      expect(readI64(b, 0)).toBe(v);
    }
  });

  it('refuse to read past 2^53 (corruption, not a silently rounded number) and to write non-integers', () => {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(2n ** 53n);
    expect(formatError(() => readU64(b, 0, 'inode 4')).message).toMatch(/^inode 4: .*beyond 2\^53.*fsck\.pmemfs/);
    b.writeBigInt64LE(-(2n ** 53n) - 1n);
    expect(formatError(() => readI64(b, 0)).message).toMatch(/beyond 2\^53/);
    expect(() => writeU64(b, 0, -1)).toThrow(RangeError);
    expect(() => writeU64(b, 0, 1.5)).toThrow(RangeError);
    expect(() => writeU64(b, 0, 2 ** 53)).toThrow(RangeError);
    expect(() => writeI64(b, 0, Number.NaN)).toThrow(RangeError);
  });
});

describe('inode fork', () => {
  it('round-trips extents, xattrs, dirents and a symlink target', () => {
    const f = sampleFork();
    const b = encodeFork(f);
    expect(b.length).toBe(forkSize(f));
    expect(decodeFork(b, 'test')).toEqual(f);
  });

  it('sizes and round-trips multi-byte UTF-8 names exactly', () => {
    const f: Fork = {
      ...emptyFork(),
      xattrs: new Map([['user.clé', Buffer.from('v')], ['user.\u{1F600}', Buffer.alloc(0)]]),
      dirents: new Map([['é', 5], ['日本語', 6], ['\u{1F4BE}disk', 7], ['a', 0x1_0000_0001]]),
    };
    const b = encodeFork(f);
    expect(b.length).toBe(forkSize(f));
    expect(decodeFork(b, 't')).toEqual(f);
  });

  it('refuses a directory entry whose inode number is beyond 2^53, naming the inode', () => {
    const b = encodeFork({ ...emptyFork(), dirents: new Map([['x', 1]]) });
    b.writeUInt32LE(0x20_0000, 1 + 5 + 4);        // high half of the first entry's u64 ino
    expect(formatError(() => decodeFork(b, 'inode 12')).message).toMatch(/^inode 12: .*beyond 2\^53/);
  });

  it('round-trips the empty fork in 2 bytes, and an empty directory', () => {
    expect(encodeFork(emptyFork())).toEqual(Buffer.from([FORK_VERSION, 0]));
    expect(decodeFork(encodeFork(emptyFork()), 't')).toEqual(emptyFork());
    const dir = { ...emptyFork(), dirents: new Map<string, number>() };
    expect(decodeFork(encodeFork(dir), 't').dirents).toEqual(new Map());
  });

  it('encodes extent records as 24-byte little-endian records after a 5-byte section header', () => {
    const f: Fork = { ...emptyFork(), extents: [{ fileBlock: 0x0102, regionBlock: 0x0304, len: 5, flags: EXT_UNWRITTEN }] };
    const b = encodeFork(f);
    expect(b.length).toBe(1 + 5 + EXTENT_REC_SIZE + 1);
    expect(b[1]).toBe(1);                        // TAG_EXTENTS
    expect(b.readUInt32LE(2)).toBe(1);           // count
    expect(Number(b.readBigUInt64LE(6))).toBe(0x0102);
    expect(Number(b.readBigUInt64LE(14))).toBe(0x0304);
    expect(b.readUInt32LE(22)).toBe(5);
    expect(b.readUInt32LE(26)).toBe(EXT_UNWRITTEN);
    expect(b[30]).toBe(0);                       // TAG_END
  });

  it('refuses every truncation of a valid fork with a FormatError', () => {
    const b = encodeFork(sampleFork());
    for (let n = 0; n < b.length; n++) {
      const e = formatError(() => decodeFork(b.subarray(0, n), 'inode 9'));
      expect(e.message, `prefix ${n}`).toMatch(/^inode 9: fork (truncated|version)/);
    }
  });

  it('refuses an unknown version, section tag, extent flag or zero-length extent', () => {
    const b = encodeFork(sampleFork());
    const v = Buffer.from(b); v[0] = 2;
    expect(formatError(() => decodeFork(v, 'x')).message).toMatch(/fork version 2/);
    expect(formatError(() => decodeFork(Buffer.from([1, 9, 0, 0, 0, 0, 0]), 'x')).message).toMatch(/unknown fork section 9/);
    const ext = (flags: number, len: number) => encodeFork({ ...emptyFork(), extents: [{ fileBlock: 0, regionBlock: 1, len, flags }] });
    expect(formatError(() => decodeFork(ext(0x4, 1), 'x')).message).toMatch(/bad extent record 0/);
    expect(formatError(() => decodeFork(ext(0, 0), 'x')).message).toMatch(/bad extent record 0/);
  });
});
