/**
 * The write-ahead log's on-media format (src/format/journal.ts): pinned
 * descriptor and commit block layout, encodeLogTx → scanLog round trips
 * ('committed') for empty, small and multi-descriptor transactions, and
 * every way of tearing a transaction — commit block missing or zeroed, any
 * byte of a descriptor, image or commit flipped, a descriptor or commit of
 * another sequence, stale blocks of an older transaction, any subset of the
 * blocks written — yields 'torn' or 'empty', never a wrong 'committed'; and
 * a home block that homeOk rejects tears the transaction.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  descCapacity, encodeLogTx, JCOMMIT_MAGIC, JDESC_HDR, JDESC_MAGIC, logBlocksFor, logSeq, scanLog, type LogScan, type LogTx,
} from '../../src/format/journal.js';
import { crc32c, FormatError, MAX_COUNTER, recordChecksum } from '../../src/format/layout.js';

const BS = 4096;
const NOW = 1_700_000_000_123;

/** A deterministic block image. */
function image(seed: number): Buffer {
  const b = Buffer.alloc(BS);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < BS; i += 4) { x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0; b.writeUInt32LE(x, i); }
  return b;
}

function tx(seq: number, n: number, seed = seq): LogTx {
  return {
    seq,
    homes: Array.from({ length: n }, (_, i) => 1000 + ((i * 7919 + seed) % 50_000)),
    images: Array.from({ length: n }, (_, i) => image(seed * 1000 + i + 1)),
  };
}

/** A zeroed log of `blocks` blocks. */
const emptyLog = (blocks: number): Buffer[] => Array.from({ length: blocks }, () => Buffer.alloc(BS));

/** The log blocks of t, in order: descriptors, images, commit. */
function blocksOf(t: LogTx): Buffer[] {
  const { body, commit } = encodeLogTx(BS, t);
  return [...body, commit].map((b) => Buffer.from(b));
}

/** Write t into log from block 0 (copies). */
function write(log: Buffer[], t: LogTx): Buffer[] {
  blocksOf(t).forEach((b, i) => { log[i] = b; });
  return log;
}

const homeOk = (b: number) => b >= 1000 && b < 60_000;
const scan = (log: Buffer[], ok: (b: number) => boolean = homeOk): LogScan => scanLog(BS, log.length, (i) => log[i], ok);

/** Assert a torn scan and return its reason. */
function torn(s: LogScan, seq?: number): string {
  expect(s.state).toBe('torn');
  if (s.state !== 'torn') return '';
  if (seq !== undefined) expect(s.seq).toBe(seq);
  return s.why;
}

/** Assert s is 'committed' with exactly t (Buffer.equals: deep toEqual over many blocks is slow). */
function committed(s: LogScan, t: LogTx): void {
  expect(s.state).toBe('committed');
  if (s.state !== 'committed') return;
  expect(s.tx.seq).toBe(t.seq);
  expect(s.tx.homes).toEqual(t.homes);
  expect(s.tx.images.length).toBe(t.images.length);
  s.tx.images.forEach((img, i) => { if (!img.equals(t.images[i])) throw new Error(`image ${i} differs`); });
}

function reseal(b: Buffer): Buffer {
  b.writeUInt32LE(recordChecksum(b, 4), 4);
  return b;
}

beforeEach(() => { vi.spyOn(Date, 'now').mockReturnValue(NOW); });
afterEach(() => { vi.restoreAllMocks(); });

describe('log format', () => {
  it('pins magics, header size and capacities', () => {
    expect(JDESC_MAGIC).toBe(0x444a4d50);
    expect(JCOMMIT_MAGIC).toBe(0x434a4d50);
    expect(JDESC_HDR).toBe(32);
    expect(descCapacity(4096)).toBe(508);
    expect(descCapacity(65536)).toBe(8188);
    expect(logBlocksFor(4096, 0)).toBe(2);
    expect(logBlocksFor(4096, 1)).toBe(3);
    expect(logBlocksFor(4096, 508)).toBe(510);
    expect(logBlocksFor(4096, 509)).toBe(512);
  });

  it('lays out descriptor and commit blocks at their pinned offsets, little-endian', () => {
    const t = tx(2 ** 40 + 7, 3);
    const { body, commit } = encodeLogTx(BS, t);
    expect(body.length).toBe(1 + 3);
    const d = body[0];
    expect(d.subarray(0, 4).toString('latin1')).toBe('PMJD');
    expect(d.readUInt32LE(4)).toBe(recordChecksum(d, 4));
    expect(Number(d.readBigUInt64LE(8))).toBe(2 ** 40 + 7);
    expect(d.readUInt32LE(16)).toBe(3);          // images
    expect(d.readUInt32LE(20)).toBe(1);          // descriptor blocks
    expect(d.readUInt32LE(24)).toBe(0);          // this descriptor's index
    expect(d.readUInt32LE(28)).toBe(0);
    t.homes.forEach((h, i) => expect(Number(d.readBigUInt64LE(JDESC_HDR + i * 8))).toBe(h));
    expect(d.subarray(JDESC_HDR + 3 * 8).every((x) => x === 0)).toBe(true);
    for (let i = 0; i < 3; i++) expect(body[1 + i].equals(t.images[i])).toBe(true);
    expect(commit.length).toBe(BS);
    expect(commit.subarray(0, 4).toString('latin1')).toBe('PMJC');
    expect(commit.readUInt32LE(4)).toBe(recordChecksum(commit, 4));
    expect(Number(commit.readBigUInt64LE(8))).toBe(2 ** 40 + 7);
    expect(commit.readUInt32LE(16)).toBe(3);
    expect(commit.readUInt32LE(20)).toBe(crc32c(Buffer.concat(body)) >>> 0);   // payload: descriptors then images
    expect(Number(commit.readBigUInt64LE(24))).toBe(NOW);
    expect(commit.subarray(32).every((x) => x === 0)).toBe(true);
  });

  it('splits the home list over descriptor blocks of 508', () => {
    const t = tx(9, 1017);
    const { body } = encodeLogTx(BS, t);
    expect(body.length).toBe(3 + 1017);
    for (let i = 0; i < 3; i++) {
      expect(body[i].readUInt32LE(16)).toBe(1017);
      expect(body[i].readUInt32LE(20)).toBe(3);
      expect(body[i].readUInt32LE(24)).toBe(i);
    }
    expect(Number(body[2].readBigUInt64LE(JDESC_HDR))).toBe(t.homes[1016]);
    expect(body[2].subarray(JDESC_HDR + 8).every((x) => x === 0)).toBe(true);
  });

  it('refuses an image that is not one block', () => {
    expect(() => encodeLogTx(BS, { seq: 1, homes: [1000], images: [Buffer.alloc(BS - 1)] })).toThrow(FormatError);
    expect(() => encodeLogTx(BS, { seq: 1, homes: [1000], images: [Buffer.alloc(BS + 1)] })).toThrow(/log image of 4097 bytes/);
  });
});

describe('scanLog: committed', () => {
  it.each([0, 1, 3, 508, 509])('round-trips a transaction of %i images', (n) => {
    const t = tx(41 + n, n);
    committed(scan(write(emptyLog(logBlocksFor(BS, n) + 5), t)), t);
  });

  it('fits a log of exactly logBlocksFor blocks, and returns images that do not alias the log', () => {
    const t = tx(3, 4);
    const log = write(emptyLog(logBlocksFor(BS, 4)), t);
    const s = scan(log);
    expect(s.state).toBe('committed');
    if (s.state !== 'committed') return;
    log[1].fill(0);
    expect(s.tx.images[0].equals(t.images[0])).toBe(true);
  });

  it('round-trips sequence numbers up to MAX_COUNTER (2^52) and the largest block size; a larger one is torn', () => {
    const t = tx(MAX_COUNTER, 2);
    expect((scan(write(emptyLog(8), t)) as { tx: LogTx }).tx.seq).toBe(MAX_COUNTER);
    const over = scan(write(emptyLog(8), tx(Number.MAX_SAFE_INTEGER, 2)));
    expect(over).toMatchObject({ state: 'torn', why: expect.stringMatching(/beyond/) });
    const big: LogTx = { seq: 5, homes: [1000, 1001], images: [Buffer.alloc(65536, 1), Buffer.alloc(65536, 2)] };
    const { body, commit } = encodeLogTx(65536, big);
    const log = [...body, commit];
    const s = scanLog(65536, log.length, (i) => log[i], homeOk);
    committed(s, big);
  });
});

describe('scanLog: torn or empty', () => {
  const N = 3;                                   // descriptor, 3 images, commit
  const T = tx(77, N);
  const fresh = () => write(emptyLog(16), T);

  it('finds nothing in a zeroed log, or one whose first block is not a descriptor', () => {
    expect(scan(emptyLog(16))).toEqual({ state: 'empty' });
    const log = emptyLog(16);
    log[0] = image(5);
    expect(scan(log)).toEqual({ state: 'empty' });
    const c = fresh();
    c[0] = c[N + 1];                             // a commit block where a descriptor should be
    expect(scan(c)).toEqual({ state: 'empty' });
  });

  it('is torn when the commit block is missing, zeroed or not a commit', () => {
    const log = fresh();
    log[N + 1] = Buffer.alloc(BS);
    expect(torn(scan(log), 77)).toMatch(/no valid commit block/);
    log[N + 1] = image(1);
    expect(torn(scan(log), 77)).toMatch(/no valid commit block/);
    log[N + 1] = Buffer.from(log[0]);            // a descriptor
    expect(torn(scan(log), 77)).toMatch(/no valid commit block/);
  });

  it('is torn when any byte of any image is flipped', () => {
    const good = fresh();
    for (let k = 1; k <= N; k++) {
      for (let i = 0; i < BS; i++) {
        const log = [...good];
        log[k] = Buffer.from(good[k]);
        log[k][i] ^= 0x40;
        const s = scan(log);
        if (s.state !== 'torn' || s.why !== 'payload checksum mismatch') throw new Error(`image ${k - 1} byte ${i}: ${JSON.stringify(s)}`);
      }
    }
  });

  it('is torn (or empty, for the magic) when any byte of the descriptor is flipped', () => {
    const good = fresh();
    for (let i = 0; i < BS; i++) {
      const log = [...good];
      log[0] = Buffer.from(good[0]);
      log[0][i] ^= 0x02;
      const s = scan(log);
      expect(s.state, `byte ${i}`).toBe(i < 4 ? 'empty' : 'torn');
    }
  });

  it('logSeq (one block, what a clean mount reads) claims the sequence scanLog reports, whatever is flipped or missing', () => {
    const claimed = (s: LogScan) => (s.state === 'committed' ? s.tx.seq : s.state === 'empty' ? null : s.seq);
    const good = fresh();
    expect(logSeq(good[0])).toBe(77);
    expect(logSeq(Buffer.alloc(BS))).toBeNull();
    let x = 12345;
    const rnd = (n: number) => { x = (x * 1103515245 + 12345) >>> 0; return x % n; };
    for (let round = 0; round < 3000; round++) {
      const log = good.map((b) => Buffer.from(b));
      const k = rnd(N + 2);
      if (round % 3 === 0) log[k] = Buffer.alloc(BS);                 // a block never written
      else log[k][rnd(k === 0 ? 64 : BS)] ^= 1 << rnd(8);             // the descriptor's header, or anywhere else
      const s = scan(log);
      expect(logSeq(log[0]), `round ${round}: ${JSON.stringify(s)}`).toBe(claimed(s));
    }
  });

  it('is torn when any byte of the commit block is flipped', () => {
    const good = fresh();
    for (let i = 0; i < BS; i++) {
      const log = [...good];
      log[N + 1] = Buffer.from(good[N + 1]);
      log[N + 1][i] ^= 0x08;
      expect(scan(log).state, `byte ${i}`).toBe('torn');
    }
  });

  it('is torn when the descriptor belongs to another sequence', () => {
    const other = blocksOf(tx(78, N, 77));       // same homes and images, sequence 78
    const log = fresh();
    log[0] = other[0];
    expect(torn(scan(log), 78)).toMatch(/commit block of another transaction/);
  });

  it('is torn when the commit block belongs to another sequence or another image count', () => {
    const log = fresh();
    log[N + 1] = blocksOf(tx(76, N, 77))[N + 1];
    expect(torn(scan(log), 77)).toMatch(/commit block of another transaction/);
    log[N + 1] = blocksOf(tx(78, N, 77))[N + 1];
    expect(torn(scan(log), 77)).toMatch(/commit block of another transaction/);
    const shorter = blocksOf(tx(77, N - 1));     // same sequence, two images: its commit says 2
    log[N + 1] = shorter[N];
    expect(torn(scan(log), 77)).toMatch(/commit block of another transaction/);
    const sameShape = blocksOf({ ...T, images: T.images.map((_, i) => image(900 + i)) });
    log[N + 1] = sameShape[N + 1];               // same sequence and count, other images
    expect(torn(scan(log), 77)).toMatch(/payload checksum mismatch/);
  });

  it('carries the count of data images (DATALOG) at commit offset 32; more than the images is torn', () => {
    const log = write(fresh(), { ...T, dataImages: 2 });
    const s = scan(log);
    committed(s, T);
    expect(s.state === 'committed' && s.tx.dataImages).toBe(2);
    expect(blocksOf({ ...T, dataImages: 2 })[N + 1].readUInt32LE(32)).toBe(2);
    expect(() => blocksOf({ ...T, dataImages: N + 1 })).toThrow(FormatError);
    const c = log[N + 1];
    c.writeUInt32LE(N + 1, 32);
    reseal(c);                                  // a forged commit block, its own CRC right
    expect(torn(scan(log), 77)).toMatch(/claims \d+ data images/);
    committed(scan(write(fresh(), T)), T);      // an older commit block: offset 32 is zero, no data images
    expect((scan(write(fresh(), T)) as { tx: LogTx }).tx.dataImages).toBe(0);
  });

  it('is torn when a later descriptor block belongs to another sequence or is out of order', () => {
    const n = 600;
    const t = tx(500, n);
    const good = write(emptyLog(logBlocksFor(BS, n)), t);
    expect(scan(good).state).toBe('committed');
    const mixed = [...good];
    mixed[1] = blocksOf(tx(501, n, 500))[1];
    expect(torn(scan(mixed), 500)).toMatch(/descriptor block 1 does not belong to transaction 500/);
    const swapped = [...good];
    swapped[1] = Buffer.from(good[0]);
    expect(torn(scan(swapped), 500)).toMatch(/descriptor block 1 does not belong/);
    const lost = [...good];
    lost[1] = Buffer.alloc(BS);
    expect(torn(scan(lost), 500)).toMatch(/descriptor block 1 does not belong/);
  });

  it('is torn when the descriptor\'s counts do not add up or overrun the log', () => {
    expect(torn(scan(fresh().slice(0, N + 1)), 77)).toMatch(/claims 3 images in 1 blocks/);   // log one block short
    const wrongD = fresh();
    wrongD[0] = Buffer.from(wrongD[0]);
    wrongD[0].writeUInt32LE(2, 20);
    reseal(wrongD[0]);
    expect(torn(scan(wrongD), 77)).toMatch(/claims 3 images in 2 blocks/);
    const huge = fresh();
    huge[0] = Buffer.from(huge[0]);
    huge[0].writeUInt32LE(0xffff_ffff, 16);
    huge[0].writeUInt32LE(Math.ceil(0xffff_ffff / descCapacity(BS)), 20);
    reseal(huge[0]);
    expect(torn(scan(huge), 77)).toMatch(/claims 4294967295 images/);
  });

  it('is torn when the descriptor\'s sequence is beyond 2^53 (never throws)', () => {
    const log = fresh();
    log[0] = Buffer.from(log[0]);
    log[0].writeUInt32LE(0xffff_ffff, 12);
    reseal(log[0]);
    expect(() => scan(log)).not.toThrow();
    expect(scan(log).state).toBe('torn');
  });

  it('is torn when stale blocks of an older, longer transaction remain', () => {
    const old = tx(76, 6);
    const newer = blocksOf(T);
    // Power lost after the new descriptor and images, before the commit: block 4 is an old image.
    const noCommit = write(emptyLog(16), old);
    newer.slice(0, N + 1).forEach((b, i) => { noCommit[i] = b; });
    expect(torn(scan(noCommit), 77)).toMatch(/no valid commit block/);
    // Commit durable but one image write lost: the old image fails the payload checksum.
    const lostImage = write(emptyLog(16), old);
    newer.forEach((b, i) => { if (i !== 2) lostImage[i] = b; });
    expect(torn(scan(lostImage), 77)).toMatch(/payload checksum mismatch/);
    // Only the new descriptor written: the old blocks after it do not make a transaction of sequence 77.
    const onlyDesc = write(emptyLog(16), old);
    onlyDesc[0] = newer[0];
    expect(scan(onlyDesc).state).toBe('torn');
  });

  it('never reports committed for any subset of a transaction\'s blocks written over the previous log', () => {
    const newer = blocksOf(T);
    for (const background of ['zeroes', 'previous transaction'] as const) {
      const prev = background === 'zeroes' ? emptyLog(16) : write(emptyLog(16), tx(76, N, 5));
      for (let mask = 0; mask < 1 << newer.length; mask++) {
        const log = [...prev];
        newer.forEach((b, i) => { if (mask & (1 << i)) log[i] = b; });
        const s = scan(log);
        const all = mask === (1 << newer.length) - 1;
        if (all) committed(s, T);
        else if (mask === 0 && background !== 'zeroes') expect(s.state).toBe('committed');   // the previous transaction, untouched
        else if (s.state === 'committed') throw new Error(`${background}, blocks ${mask.toString(2)}: committed ${s.tx.seq}`);
      }
    }
  });
});

describe('scanLog: homeOk', () => {
  it('asks homeOk about every home block, in order', () => {
    const seen: number[] = [];
    const s = scan(write(emptyLog(16), tx(77, 3)), (b) => { seen.push(b); return true; });
    expect(s.state).toBe('committed');
    expect(seen).toEqual(tx(77, 3).homes);
  });

  it('tears a transaction that aims an image outside the metadata and data', () => {
    const t: LogTx = { seq: 12, homes: [1000, 5, 1002], images: [image(1), image(2), image(3)] };
    const log = write(emptyLog(16), t);
    expect(torn(scan(log), 12)).toMatch(/image 1 aims at block 5, outside/);
    expect(scan(log, () => true).state).toBe('committed');
    expect(torn(scan(write(emptyLog(16), { ...t, homes: [1000, 1001, 60_000] })), 12)).toMatch(/image 2 aims at block 60000/);
  });

  it('tears a transaction whose home block number is beyond 2^53', () => {
    const log = write(emptyLog(16), tx(12, 2));
    log[0].writeUInt32LE(0x40_0000, JDESC_HDR + 8 + 4);
    reseal(log[0]);
    expect(() => scan(log, () => true)).not.toThrow();
    expect(scan(log, (b) => b >= 0).state).toBe('torn');
  });
});
