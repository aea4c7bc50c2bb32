/**
 * The extent allocator (src/alloc/allocator.ts), in core: building free space
 * from used runs; placement (near the goal, else 2 MiB-aligned for large
 * requests, else best fit, else longest extents first over fragmented space);
 * all-or-nothing ENOSPC, the metadata reserve, release with neighbour merging;
 * the by-offset and by-length indexes agreeing with each other, the counts and
 * the bitmap over a long seeded random run; and the journal-era semantics:
 * busy extents (released blocks not reusable before commitDone, TxNeedsCommit),
 * immediate unalloc, mark/rollback undo, dirty bitmap images (checksummed v2
 * bitmap blocks) and loadBitmap refusing a damaged block.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { Allocator, TxNeedsCommit, type BlockRun } from '../../src/alloc/allocator.js';
import { FsError } from '../../src/errors.js';
import { bitsPerBitmapBlock, decodeBitmapBlock, FormatError } from '../../src/format/layout.js';
import { blockCount, regionBlock } from '../../src/types.js';

const GEO = { totalBlocks: 1000, dataStart: 10, bitmapStart: 1, blockSize: 4096 };
const run = (start: number, len: number): BlockRun => ({ start: regionBlock(start), len: blockCount(len) });
const runs = (a: Allocator) => [...a.freeRuns()].map((r) => [r.start, r.len]);

function enospc(fn: () => unknown): FsError {
  try { fn(); } catch (e) {
    expect(e).toBeInstanceOf(FsError);
    expect((e as FsError).code).toBe('ENOSPC');
    return e as FsError;
  }
  throw new Error('expected ENOSPC');
}

function needsCommit(fn: () => unknown): TxNeedsCommit {
  try { fn(); } catch (e) {
    expect(e).toBeInstanceOf(TxNeedsCommit);
    return e as TxNeedsCommit;
  }
  throw new Error('expected TxNeedsCommit');
}

/** Free space, busy count and every bitmap image: what rollback must restore. */
function snapshot(x: Allocator) {
  const images: string[] = [];
  for (let i = 0; i < x.bitmapBlocks; i++) images.push(x.bitmapImage(i).toString('hex'));
  return { runs: runs(x), free: x.freeBlocks, busy: x.busyBlocks, avail: x.availableBlocks, images };
}

/** Whether bit `b` is set in the decoded bitmap images (block i covers [i*per, (i+1)*per)). */
function bitIn(images: Map<number, Buffer>, b: number, per: number): boolean {
  const bits = decodeBitmapBlock(images.get(Math.floor(b / per))!, Math.floor(b / per));
  const o = b % per;
  return (bits[o >> 3] & (1 << (o & 7))) !== 0;
}

let a: Allocator;
beforeEach(() => {
  a = new Allocator(GEO);
});

describe('Allocator', () => {
  it('sizes the metadata reserve at 1% of the data blocks, at least 8', () => {
    expect(a.reserve).toBe(9);                                   // floor(990 / 100)
    expect(new Allocator({ ...GEO, totalBlocks: 100 }).reserve).toBe(8);
    expect(new Allocator({ ...GEO, totalBlocks: 10_000_000 }).reserve).toBe(1024);
    expect(new Allocator({ ...GEO, dataEnd: 510 }).reserve).toBe(8);  // floor(500 / 100) → 8
  });

  it('loadFromUsage frees everything in the data area not used, tolerating overlaps', () => {
    a.loadFromUsage([run(500, 10), run(100, 50), run(120, 40), run(990, 10)]);
    expect(runs(a)).toEqual([[10, 90], [160, 340], [510, 480]]);
    expect(a.freeBlocks).toBe(90 + 340 + 480);
    expect(a.availableBlocks).toBe(a.freeBlocks - 9);
    expect(a.freeExtentCount).toBe(3);
    expect(a.isAllocated(100, 60)).toBe(true);
    expect(a.isAllocated(99, 2)).toBe(false);
    expect(a.isAllocated(159, 2)).toBe(false);
    a.loadFromUsage([]);
    expect(runs(a)).toEqual([[10, 990]]);
  });

  it('allocates one contiguous run at the goal when the goal is free', () => {
    a.loadFromUsage([]);
    expect(a.alloc(10, 200)).toEqual([run(200, 10)]);
    expect(a.alloc(5, 210)).toEqual([run(210, 5)]);
    expect(a.isAllocated(200, 15)).toBe(true);
    expect(a.freeBlocks).toBe(990 - 15);
    expect(runs(a)).toEqual([[10, 190], [215, 785]]);
  });

  it('clamps a goal below the data area to the first data block', () => {
    a.loadFromUsage([]);
    expect(a.alloc(3, 0)).toEqual([run(10, 3)]);
  });

  it('treats a used goal as no goal and places by best fit', () => {
    a.loadFromUsage([run(100, 50), run(200, 10)]);   // free: [10,100) 90, [150,200) 50, [210,1000) 790
    expect(a.alloc(5, 120)).toEqual([run(150, 5)]);
    expect(a.allocContig(5, 120)).toEqual(run(155, 5));
  });

  it('falls back to best fit when neither the goal\'s extent nor the next one is long enough', () => {
    a.loadFromUsage([run(20, 970)]);               // free: [10,20) and [990,1000)
    expect(a.alloc(8, 995)).toEqual([run(10, 8)]);
    expect(runs(a)).toEqual([[18, 2], [990, 10]]);
    expect(a.freeBlocks).toBe(12);
  });

  it('places by best fit when the goal is in use past every free extent', () => {
    a.loadFromUsage([run(500, 500)]);
    expect(a.alloc(4, 700)).toEqual([run(10, 4)]);
  });

  it('satisfies a request from several runs when no extent is long enough: longest first, lowest block among equals', () => {
    const used: BlockRun[] = [];
    for (let b = 10; b < 1000; b += 2) used.push(run(b, 1));   // free: every odd block
    a.loadFromUsage(used);
    expect(a.freeBlocks).toBe(495);
    expect(a.alloc(4, 100)).toEqual([run(11, 1), run(13, 1), run(15, 1), run(17, 1)]);
    expect(a.freeBlocks).toBe(491);
  });

  it('takes the next free extent after the goal when the goal\'s own extent is too short', () => {
    a.loadFromUsage([run(100, 1)]);
    expect(a.alloc(20, 95)).toEqual([run(101, 20)]);
    expect(a.allocContig(10, 97)).toEqual(run(121, 10));
  });

  it('is all or nothing on ENOSPC: free space unchanged', () => {
    a.loadFromUsage([run(10, 500)]);
    const before = runs(a);
    const free = a.freeBlocks;
    const e = enospc(() => a.alloc(a.availableBlocks + 1, 600));
    expect(e.message).toMatch(/482 blocks wanted, 481 available/);
    expect(a.freeBlocks).toBe(free);
    expect(runs(a)).toEqual(before);
    expect(a.alloc(a.availableBlocks, 600).reduce((n, r) => n + r.len, 0)).toBe(481);
    expect(a.availableBlocks).toBe(0);
    expect(a.freeBlocks).toBe(9);
  });

  it('keeps the reserve for metadata only', () => {
    a.loadFromUsage([]);
    a.alloc(a.availableBlocks, 10);
    expect(a.freeBlocks).toBe(a.reserve);
    enospc(() => a.alloc(1, 10));
    expect(a.alloc(a.reserve, 10, true).reduce((n, r) => n + r.len, 0)).toBe(9);
    expect(a.freeBlocks).toBe(0);
    enospc(() => a.alloc(1, 10, true));
  });

  it('returns nothing for a zero or negative count', () => {
    a.loadFromUsage([]);
    expect(a.alloc(0, 50)).toEqual([]);
    expect(a.alloc(-3, 50)).toEqual([]);
    expect(a.freeBlocks).toBe(990);
  });

  it('release merges with both neighbours', () => {
    a.loadFromUsage([]);
    a.alloc(30, 100);                           // used [100,130)
    expect(a.freeExtentCount).toBe(2);
    a.release(regionBlock(110), blockCount(10)); // free [110,120): no neighbour free
    a.commitDone();
    expect(a.freeExtentCount).toBe(3);
    a.release(regionBlock(100), blockCount(10)); // touches [10,100) and [110,120)
    a.commitDone();
    expect(a.freeExtentCount).toBe(2);
    expect(runs(a)).toEqual([[10, 110], [130, 870]]);
    a.release(regionBlock(120), blockCount(10)); // joins everything
    a.commitDone();
    expect(runs(a)).toEqual([[10, 990]]);
    expect(a.freeExtentCount).toBe(1);
    expect(a.freeBlocks).toBe(990);
  });

  it('release merges with only the lower or only the higher neighbour', () => {
    a.loadFromUsage([run(100, 30)]);
    a.release(regionBlock(100), blockCount(5));
    a.commitDone();
    expect(runs(a)).toEqual([[10, 95], [130, 870]]);
    a.release(regionBlock(125), blockCount(5));
    a.commitDone();
    expect(runs(a)).toEqual([[10, 95], [125, 875]]);
    expect(a.freeBlocks).toBe(970);
  });

  it('throws on a double free, whole or partial, and changes nothing', () => {
    a.loadFromUsage([run(100, 10)]);
    const before = runs(a);
    expect(() => a.release(regionBlock(50), blockCount(1))).toThrow(/double free of block 50/);
    expect(() => a.release(regionBlock(105), blockCount(10))).toThrow(/double free of block 110/);
    expect(() => a.release(regionBlock(95), blockCount(10))).toThrow(/double free/);
    expect(runs(a)).toEqual(before);
    expect(a.freeBlocks).toBe(980);
    expect(a.busyBlocks).toBe(0);
    expect(a.isAllocated(100, 10)).toBe(true);
  });

  it('throws on freeing a busy run again, before or after commitDone', () => {
    a.loadFromUsage([run(100, 10)]);
    a.release(regionBlock(100), blockCount(4));
    expect(() => a.release(regionBlock(100), blockCount(4))).toThrow(/double free of block 100/);
    expect(() => a.unalloc(regionBlock(102), blockCount(4))).toThrow(/double free of block 102/);
    expect(a.busyBlocks).toBe(4);
    a.commitDone();
    expect(() => a.release(regionBlock(103), blockCount(2))).toThrow(/double free of block 103/);
    expect(a.freeBlocks).toBe(984);
  });

  it('refuses to free outside the data area', () => {
    a.loadFromUsage([]);
    expect(() => a.release(regionBlock(5), blockCount(2))).toThrow(/outside the data area/);
    expect(() => a.release(regionBlock(999), blockCount(2))).toThrow(/outside the data area/);
    expect(() => a.unalloc(regionBlock(9), blockCount(1))).toThrow(/outside the data area/);
  });

  it('keeps the blocks from dataEnd on (the backup superblock) out of free space', () => {
    const b = new Allocator({ ...GEO, dataEnd: 999 });
    b.loadFromUsage([]);
    expect(runs(b)).toEqual([[10, 989]]);
    expect(b.bitmapSays(999)).toBe(true);
    expect(() => b.release(regionBlock(999), blockCount(1))).toThrow(/outside the data area/);
    expect(b.alloc(5, 997)).toEqual([run(10, 5)]);     // 2 blocks from the goal to dataEnd: best fit
  });

  it('alloc and release are inverse: the free tree returns to one extent', () => {
    a.loadFromUsage([]);
    const got: BlockRun[] = [];
    for (let i = 0; i < 50; i++) got.push(...a.alloc(1 + (i % 7), 10 + ((i * 37) % 900)));
    const taken = got.reduce((n, r) => n + r.len, 0);
    expect(a.freeBlocks).toBe(990 - taken);
    for (const r of got) expect(a.isAllocated(r.start, r.len)).toBe(true);
    for (const r of got.reverse()) a.release(r.start, r.len);
    expect(a.freeBlocks).toBe(990);
    expect(a.busyBlocks).toBe(taken);
    a.commitDone();
    expect(a.busyBlocks).toBe(0);
    expect(runs(a)).toEqual([[10, 990]]);
  });
});

describe('placement policy', () => {
  // 8192 blocks of 4 KiB: 2 MiB = 512 blocks, aligned starts 512, 1024, ...
  const G2 = { totalBlocks: 8192, dataStart: 10, bitmapStart: 1, blockSize: 4096 };
  /** Used runs that leave exactly `free` (sorted, disjoint) free in G2. */
  const leaving = (free: Array<[number, number]>): BlockRun[] => {
    const used: BlockRun[] = [];
    let next = G2.dataStart;
    for (const [s, l] of free) { if (s > next) used.push(run(next, s - next)); next = s + l; }
    if (next < G2.totalBlocks) used.push(run(next, G2.totalBlocks - next));
    return used;
  };
  let b: Allocator;
  beforeEach(() => { b = new Allocator(G2); });

  it('best fit takes the shortest extent that fits, lowest block among equals', () => {
    b.loadFromUsage(leaving([[10, 50], [100, 20], [200, 30], [300, 20], [400, 600]]));
    expect(b.alloc(15, 0)).toEqual([run(100, 15)]);
    expect(b.alloc(25, 0)).toEqual([run(200, 25)]);
    expect(b.allocContig(20, 0)).toEqual(run(300, 20));
    expect(b.alloc(20, 0)).toEqual([run(10, 20)]);        // [115,120) is too short now
    expect(b.allocContig(31, 0)).toEqual(run(400, 31));
    b.checkIndexes();
  });

  it('extends at the goal even when a better-fitting extent exists', () => {
    b.loadFromUsage(leaving([[10, 8], [1000, 500]]));
    expect(b.alloc(4, 1000)).toEqual([run(1000, 4)]);
    expect(b.alloc(6, 1004)).toEqual([run(1004, 6)]);     // a growing file stays contiguous
    expect(b.allocContig(8, 1200)).toEqual(run(1200, 8)); // a goal mid-extent is taken as is
    expect(b.alloc(3, 0)).toEqual([run(10, 3)]);          // without a goal the 8-block extent fits best
    b.checkIndexes();
  });

  it('places a request of 2 MiB or more without a goal at a 2 MiB-aligned block in the smallest extent that holds it aligned', () => {
    // [600,1700) holds 512 aligned at 1024; [2000,2600) at 2048 and is shorter; [3000,3520) is long enough
    // only unaligned (3072 + 512 > 3520); [4000,6000) is long enough for anything.
    b.loadFromUsage(leaving([[600, 1100], [2000, 600], [3000, 520], [4000, 2000]]));
    expect(b.alloc(512, 0)).toEqual([run(2048, 512)]);
    expect(b.allocContig(512, 0)).toEqual(run(1024, 512));
    expect(b.alloc(600, 0)).toEqual([run(4096, 600)]);
    expect(b.alloc(511, 0)).toEqual([run(3000, 511)]);    // under 2 MiB: plain best fit
    b.checkIndexes();
  });

  it('falls back to unaligned best fit when no extent holds an aligned run, and keeps a usable goal first', () => {
    b.loadFromUsage(leaving([[100, 300], [3000, 520], [5000, 530]]));
    expect(b.alloc(512, 0)).toEqual([run(3000, 512)]);
    expect(b.allocContig(512, 5010)).toEqual(run(5010, 512));   // the goal wins over alignment
    b.checkIndexes();
  });

  it('takes several runs longest first, the rest by best fit, all or nothing', () => {
    b.loadFromUsage(leaving([[100, 10], [200, 40], [300, 25], [400, 5]]));
    expect(b.largestFreeExtent).toBe(40);
    const before = runs(b);
    enospc(() => b.allocContig(41, 0, true));            // metadata: 80 blocks are under the reserve
    enospc(() => b.alloc(81, 0, true));
    expect(runs(b)).toEqual(before);
    expect(b.alloc(60, 250, true)).toEqual([run(200, 40), run(300, 20)]);
    expect(runs(b)).toEqual([[100, 10], [320, 5], [400, 5]]);
    expect(b.alloc(18, 0, true)).toEqual([run(100, 10), run(320, 5), run(400, 3)]);
    b.checkIndexes();
  });

  it('loadBitmap reads mixed 32-block words bit by bit and skips uniform ones, at any data-area bounds', () => {
    const geo = { ...G2, dataStart: 37, dataEnd: 8150 };
    const src = new Allocator(geo);
    src.loadFromUsage([run(37, 27), run(95, 1), run(96, 64), run(191, 2), run(256, 1000), run(1300, 44), run(4000, 4150)]);
    const images = Array.from({ length: src.bitmapBlocks }, (_, i) => src.bitmapImage(i));
    const dst = new Allocator(geo);
    dst.loadBitmap((i) => images[i]);
    expect(runs(dst)).toEqual(runs(src));
    expect(runs(dst)).toEqual([[64, 31], [160, 31], [193, 63], [1256, 44], [1344, 2656]]);   // 1344 = 42 * 32: a run that starts on a free word
    dst.checkIndexes();
  });
});

describe('new files in a long free extent', () => {
  // 400 MiB of 4 KiB blocks: far longer than the 2 x 32 MiB a goal-less request needs to be spread.
  const BIG = { totalBlocks: 102_400, dataStart: 10, bitmapStart: 1, blockSize: 4096 };

  it('a goal-less request starts mid-extent, 2 MiB-aligned, leaving room after a growing file', () => {
    const a = new Allocator(BIG);
    a.loadFromUsage([]);
    const grower = a.alloc(16, 0)[0];
    expect(grower.start % 512).toBe(0);
    expect(grower.start).toBeGreaterThan(40_000);
    expect(grower.start).toBeLessThan(60_000);
    const next = a.alloc(16, 0)[0];                       // another new file: elsewhere, not at the grower's end
    expect(next.start).not.toBe(grower.start + 16);
    expect(a.alloc(16, grower.start + 16)[0].start).toBe(grower.start + 16);   // the grower still extends in place
  });

  it('a request with a goal, or an extent not much longer than the request, is placed as before', () => {
    const a = new Allocator(BIG);
    a.loadFromUsage([]);
    expect(a.alloc(16, 500)[0].start).toBe(500);
    const s = new Allocator({ ...BIG, totalBlocks: 16_000 });   // ~62 MiB free: under 16 + 2 x 8192 blocks
    s.loadFromUsage([]);
    expect(s.alloc(16, 0)[0].start).toBe(10);
  });
});

describe('free-space indexes', () => {
  it('by offset, by length, counts and bitmap agree through a long seeded random run', () => {
    const seed = Number(process.env.ALLOC_SEED ?? 20240611);
    let st = seed >>> 0;
    const rnd = (n: number) => { st = (Math.imul(st ^ (st >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0; return st % n; };
    const geo = { totalBlocks: 20_000, dataStart: 10, dataEnd: 19_990, bitmapStart: 1, blockSize: 4096 };
    const x = new Allocator(geo);
    x.loadFromUsage([run(5000, 100)]);
    const owned: BlockRun[] = [run(5000, 100)];
    let step = 0;
    const size = () => (rnd(10) === 0 ? 400 + rnd(700) : 1 + rnd(40));   // some of 2 MiB and more
    const goal = () => (rnd(3) === 0 ? 0 : 10 + rnd(19_990));
    try {
      for (; step < 4000; step++) {
        const op = rnd(12);
        const inOp = rnd(4) === 0;
        const keep = [...owned];
        if (inOp) x.mark();
        try {
          if (op < 5) owned.push(...x.alloc(size(), goal(), rnd(5) === 0));
          else if (op < 7) owned.push(x.allocContig(size(), goal()));
          else if (op < 10 && owned.length) {
            const r = owned.splice(rnd(owned.length), 1)[0];
            if (op < 9) x.release(r.start, r.len); else x.unalloc(r.start, r.len);
          } else if (!inOp) x.commitDone();
        } catch (e) { if (!(e instanceof TxNeedsCommit) && !(e instanceof FsError)) throw e; }
        if (inOp && rnd(2) === 0) { x.rollback(); owned.splice(0, owned.length, ...keep); }
        else if (inOp) x.unmark();
        x.checkIndexes();
        if (step % 100 === 99) {                                // mount from the bitmap: the same free space, busy read as free
          const y = new Allocator(geo);
          y.loadBitmap((i) => x.bitmapImage(i));
          y.checkIndexes();
          expect(y.freeBlocks).toBe(x.freeBlocks);
          expect(y.freeExtentCount).toBeGreaterThanOrEqual(x.freeExtentCount - x.busyBlocks);
        }
      }
      for (const r of owned) expect(x.isAllocated(r.start, r.len), `run ${r.start} +${r.len}`).toBe(true);
      const ownedBlocks = owned.reduce((n, r) => n + r.len, 0);
      expect(x.freeBlocks + ownedBlocks).toBe(19_980);     // nothing leaked or freed twice
      x.commitDone();
      const images = Array.from({ length: x.bitmapBlocks }, (_, i) => x.bitmapImage(i));
      const y = new Allocator(geo);
      y.loadBitmap((i) => images[i]);
      y.checkIndexes();
      expect(runs(y)).toEqual(runs(x));
    } catch (e) {
      throw new Error(`seed ${seed} (ALLOC_SEED), step ${step}: ${(e as Error).message}`);
    }
  });
});

describe('busy extents', () => {
  it('clears released blocks in the bitmap at once but keeps them out of free space until commitDone', () => {
    a.loadFromUsage([]);
    expect(a.alloc(30, 100)).toEqual([run(100, 30)]);
    a.release(regionBlock(100), blockCount(30));
    expect(a.busyBlocks).toBe(30);
    expect(a.freeBlocks).toBe(990);                      // statfs counts them
    expect(a.availableBlocks).toBe(960 - a.reserve);     // allocation does not
    expect(a.isAllocated(100, 1)).toBe(false);
    expect(a.bitmapSays(100)).toBe(false);
    expect(runs(a)).toEqual([[10, 90], [130, 870]]);
    // Free space elsewhere suffices, so the busy run is skipped, not reused:
    // a busy goal is no goal (best fit), a goal just before it stops short of it.
    expect(a.alloc(30, 100)).toEqual([run(10, 30)]);
    expect(a.allocContig(5, 95)).toEqual(run(95, 5));    // ends where the busy run starts
    expect(a.allocContig(10, 100)).toEqual(run(40, 10));
    expect(a.alloc(3, 90)).toEqual([run(90, 3)]);
    a.commitDone();
    expect(a.busyBlocks).toBe(0);
    expect(a.alloc(30, 100)).toEqual([run(100, 30)]);
  });

  it('throws TxNeedsCommit for an allocation only busy blocks could satisfy, ENOSPC for a bigger one', () => {
    a.loadFromUsage([]);
    a.alloc(a.availableBlocks, 10);                       // everything but the reserve: [10, 991)
    a.release(regionBlock(100), blockCount(20));
    expect(a.availableBlocks).toBe(0);
    expect(a.freeBlocks).toBe(a.reserve + 20);
    const before = runs(a);
    expect(needsCommit(() => a.alloc(5, 100)).message).toMatch(/5 blocks/);
    needsCommit(() => a.alloc(20, 10));
    needsCommit(() => a.allocContig(20, 100));
    expect(enospc(() => a.alloc(21, 100)).message).toMatch(/21 blocks wanted, 0 available/);
    enospc(() => a.allocContig(21, 100));
    // Metadata may use the reserve: 9 + 20 busy.
    needsCommit(() => a.alloc(a.reserve + 20, 10, true));
    enospc(() => a.alloc(a.reserve + 21, 10, true));
    // Nothing was taken by the refused calls.
    expect(runs(a)).toEqual(before);
    expect(a.busyBlocks).toBe(20);
    a.commitDone();
    expect(a.alloc(20, 0)).toEqual([run(100, 20)]);
  });

  it('throws TxNeedsCommit from allocContig when only a busy run is long enough', () => {
    // Free: odd blocks outside [200, 250); [200, 250) in use.
    const used: BlockRun[] = [run(200, 50)];
    for (let b = 10; b < 1000; b += 2) if (b < 200 || b >= 250) used.push(run(b, 1));
    a.loadFromUsage(used);
    a.release(regionBlock(200), blockCount(50));
    expect(a.availableBlocks).toBeGreaterThan(400);      // plenty of space, none of it contiguous
    needsCommit(() => a.allocContig(20, 10));
    expect(enospc(() => a.allocContig(51, 10)).message).toMatch(/no free extent of 51 contiguous blocks/);
    a.commitDone();
    expect(a.allocContig(20, 10)).toEqual(run(199, 20)); // the freed run merged with free block 199
  });

  it('consults the failpoint before every allocation and changes nothing when it throws', () => {
    a.loadFromUsage([]);
    const seen: number[] = [];
    a.failpoint = (n) => { seen.push(n); if (n === 7) throw new FsError('ENOSPC', 'alloc'); };
    expect(a.alloc(3, 100)).toEqual([run(100, 3)]);
    const before = runs(a);
    enospc(() => a.alloc(7, 100));
    enospc(() => a.allocContig(7, 100));
    expect(seen).toEqual([3, 7, 7]);
    expect(runs(a)).toEqual(before);
    a.failpoint = null;
    expect(a.alloc(7, 103)).toEqual([run(103, 7)]);
  });
});

describe('unalloc', () => {
  it('gives blocks back at once: reusable, merged, not busy', () => {
    a.loadFromUsage([]);
    a.alloc(10, 100);
    a.unalloc(regionBlock(100), blockCount(10));
    expect(a.busyBlocks).toBe(0);
    expect(runs(a)).toEqual([[10, 990]]);
    expect(a.freeBlocks).toBe(990);
    expect(a.alloc(10, 100)).toEqual([run(100, 10)]);
    a.unalloc(regionBlock(104), blockCount(2));
    expect(runs(a)).toEqual([[10, 90], [104, 2], [110, 890]]);
    expect(a.allocContig(2, 104)).toEqual(run(104, 2));
    expect(() => a.unalloc(regionBlock(50), blockCount(1))).toThrow(/double free of block 50/);
  });

  it('is not held back by busy blocks released in the same transaction', () => {
    a.loadFromUsage([]);
    a.alloc(20, 100);
    a.release(regionBlock(100), blockCount(10));
    a.unalloc(regionBlock(110), blockCount(10));
    expect(a.busyBlocks).toBe(10);
    expect(runs(a)).toEqual([[10, 90], [110, 890]]);
    a.commitDone();
    expect(runs(a)).toEqual([[10, 990]]);
  });
});

describe('mark / rollback', () => {
  it('restores free runs, busy list and bitmap exactly after a mix of alloc, allocContig, release and unalloc', () => {
    a.loadFromUsage([run(500, 100), run(700, 3)]);
    a.release(regionBlock(700), blockCount(3));          // busy from an earlier operation: stays busy
    a.takeDirtyBitmap();
    const before = snapshot(a);
    a.mark();
    expect(a.alloc(20, 100)).toEqual([run(100, 20)]);
    a.release(regionBlock(520), blockCount(10));
    a.unalloc(regionBlock(105), blockCount(5));
    expect(a.alloc(5, 0)).toEqual([run(105, 5)]);       // no goal: best fit, the unalloc'd [105,110)
    expect(a.allocContig(7, 300)).toEqual(run(300, 7));
    a.release(regionBlock(100), blockCount(5));
    a.unalloc(regionBlock(590), blockCount(10));
    expect(a.alloc(12, 590)).toEqual([run(590, 12)]);   // the unalloc'd [590,600), merged with [600,700)
    expect(snapshot(a)).not.toEqual(before);
    a.rollback();
    expect(snapshot(a)).toEqual(before);
    expect(a.busyBlocks).toBe(3);
    // The bitmap blocks touched are dirty again (their images must be rewritten).
    expect(a.takeDirtyBitmap().map((d) => d.index)).toEqual([0]);
    a.commitDone();
    expect(runs(a)).toEqual([[10, 490], [600, 400]]);   // [700,703) no longer busy
  });

  it('rollback without changes, or after unmark, changes nothing', () => {
    a.loadFromUsage([run(100, 10)]);
    const before = snapshot(a);
    a.mark();
    a.rollback();
    expect(snapshot(a)).toEqual(before);
    a.mark();
    a.alloc(4, 200);
    a.release(regionBlock(100), blockCount(2));
    a.unmark();
    const after = snapshot(a);
    a.rollback();
    expect(snapshot(a)).toEqual(after);
    expect(a.busyBlocks).toBe(2);
  });

  it('survives many random operations: rollback always returns to the marked state', () => {
    let seed = 12345;
    const rnd = (n: number) => { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed % n; };
    a.loadFromUsage([run(300, 200)]);
    for (let round = 0; round < 20; round++) {
      const before = snapshot(a);
      const mine: BlockRun[] = [];
      a.mark();
      for (let k = 0; k < 15; k++) {
        const op = rnd(4);
        if (op === 0 || mine.length === 0) {
          try { mine.push(...a.alloc(1 + rnd(20), 10 + rnd(990))); } catch (e) { if (!(e instanceof TxNeedsCommit) && !(e instanceof FsError)) throw e; }
        } else {
          const r = mine.splice(rnd(mine.length), 1)[0];
          if (op === 1) a.release(r.start, r.len); else a.unalloc(r.start, r.len);
        }
      }
      a.rollback();
      expect(snapshot(a), `round ${round}`).toEqual(before);
      // Commit something between rounds so the busy list and free tree keep changing.
      a.alloc(1 + rnd(5), 10 + rnd(990));
      if (round % 3 === 0) a.commitDone();
    }
  });
});

describe('bitmap images', () => {
  const BIG = { totalBlocks: 100_000, dataStart: 10, bitmapStart: 1, blockSize: 4096 };
  const PER = bitsPerBitmapBlock(4096);                  // 32640 blocks per bitmap block

  it('sizes the bitmap in v2 bitmap blocks', () => {
    expect(a.bitmapBlocks).toBe(1);
    expect(new Allocator(BIG).bitmapBlocks).toBe(4);
    expect(new Allocator({ ...BIG, totalBlocks: PER }).bitmapBlocks).toBe(1);
    expect(new Allocator({ ...BIG, totalBlocks: PER + 1 }).bitmapBlocks).toBe(2);
  });

  it('takeDirtyBitmap returns the changed blocks once, as images that decode and carry the bits', () => {
    const b = new Allocator(BIG);
    b.loadFromUsage([run(40_000, 5)]);
    const all = b.takeDirtyBitmap();
    expect(all.map((d) => d.index)).toEqual([0, 1, 2, 3]);
    const imgs = new Map(all.map((d) => [d.index, d.image]));
    for (const d of all) {
      expect(d.image.length).toBe(4096);
      expect(() => decodeBitmapBlock(d.image, d.index)).not.toThrow();
    }
    for (const blk of [0, 9, 40_000, 40_004, 99_999 + 1, 4 * PER - 1]) expect(bitIn(imgs, blk, PER), `block ${blk}`).toBe(true);
    for (const blk of [10, 39_999, 40_005, PER - 1, PER, 99_999]) expect(bitIn(imgs, blk, PER), `block ${blk}`).toBe(false);
    expect(b.takeDirtyBitmap()).toEqual([]);

    // One allocation inside bitmap block 1 dirties only block 1.
    expect(b.alloc(5, 50_000)).toEqual([run(50_000, 5)]);
    const d1 = b.takeDirtyBitmap();
    expect(d1.map((d) => d.index)).toEqual([1]);
    imgs.set(1, d1[0].image);
    expect(bitIn(imgs, 50_004, PER)).toBe(true);
    expect(bitIn(imgs, 50_005, PER)).toBe(false);

    // A run across the boundary of blocks 1 and 2 dirties both; a release shows as clear bits.
    expect(b.allocContig(10, 2 * PER - 5)).toEqual(run(2 * PER - 5, 10));
    b.release(regionBlock(50_000), blockCount(5));
    const d2 = b.takeDirtyBitmap();
    expect(d2.map((d) => d.index)).toEqual([1, 2]);
    for (const d of d2) imgs.set(d.index, d.image);
    for (let blk = 2 * PER - 5; blk < 2 * PER + 5; blk++) expect(bitIn(imgs, blk, PER)).toBe(true);
    expect(bitIn(imgs, 50_000, PER)).toBe(false);
    expect(d2[0].image.equals(b.bitmapImage(1))).toBe(true);
  });

  it('loadBitmap rebuilds the same free space from the images (busy blocks read as free)', () => {
    const b = new Allocator(BIG);
    b.loadFromUsage([run(10, 100), run(40_000, 5), run(65_270, 20)]);
    b.alloc(300, 70_000);
    b.release(regionBlock(65_275), blockCount(5));
    const images = Array.from({ length: b.bitmapBlocks }, (_, i) => b.bitmapImage(i));
    const c = new Allocator(BIG);
    c.loadBitmap((i) => images[i]);
    b.commitDone();
    expect(runs(c)).toEqual(runs(b));
    expect(c.freeBlocks).toBe(b.freeBlocks);
    expect(c.busyBlocks).toBe(0);
    for (let i = 0; i < 4; i++) expect(c.bitmapImage(i).equals(images[i])).toBe(true);
  });

  it('loadBitmap of a damaged block throws FormatError', () => {
    const b = new Allocator(BIG);
    b.loadFromUsage([]);
    const images = Array.from({ length: b.bitmapBlocks }, (_, i) => b.bitmapImage(i));
    const flipped = images.map((x) => Buffer.from(x));
    flipped[2][1000] ^= 0x01;
    expect(() => new Allocator(BIG).loadBitmap((i) => flipped[i])).toThrow(FormatError);
    expect(() => new Allocator(BIG).loadBitmap((i) => flipped[i])).toThrow(/bitmap block 2: checksum mismatch/);
    expect(() => new Allocator(BIG).loadBitmap(() => images[0])).toThrow(/bitmap block 1: holds index 0/);
    expect(() => new Allocator(BIG).loadBitmap(() => Buffer.alloc(4096))).toThrow(/bitmap block 0: bad magic/);
  });
});
