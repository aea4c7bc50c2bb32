/**
 * The extent allocator (src/alloc/allocator.ts) in core only (region = null):
 * building free space from used runs, next-fit from a goal with one
 * wrap-around, multi-run allocations over fragmented space, all-or-nothing
 * ENOSPC, the metadata reserve, and release with neighbour merging.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { Allocator, type BlockRun } from '../../src/alloc/allocator.js';
import { FsError } from '../../src/errors.js';
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

let a: Allocator;
beforeEach(() => {
  a = new Allocator(GEO, null);
});

describe('Allocator', () => {
  it('sizes the metadata reserve at 1% of the data blocks, at least 8', () => {
    expect(a.reserve).toBe(9);                                   // floor(990 / 100)
    expect(new Allocator({ ...GEO, totalBlocks: 100 }, null).reserve).toBe(8);
    expect(new Allocator({ ...GEO, totalBlocks: 10_000_000 }, null).reserve).toBe(1024);
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

  it('moves forward from a used goal to the next free extent', () => {
    a.loadFromUsage([run(100, 50)]);
    expect(a.alloc(5, 120)).toEqual([run(150, 5)]);
  });

  it('wraps around once to the start of the data area', () => {
    a.loadFromUsage([run(20, 970)]);               // free: [10,20) and [990,1000)
    expect(a.alloc(8, 995)).toEqual([run(995, 5), run(10, 3)]);
    expect(runs(a)).toEqual([[13, 7], [990, 5]]);
    expect(a.freeBlocks).toBe(12);
  });

  it('wraps when the goal is past every free extent', () => {
    a.loadFromUsage([run(500, 500)]);
    expect(a.alloc(4, 700)).toEqual([run(10, 4)]);
  });

  it('satisfies a request from several runs when space is fragmented, in block order from the goal', () => {
    const used: BlockRun[] = [];
    for (let b = 10; b < 1000; b += 2) used.push(run(b, 1));   // free: every odd block
    a.loadFromUsage(used);
    expect(a.freeBlocks).toBe(495);
    expect(a.alloc(4, 100)).toEqual([run(101, 1), run(103, 1), run(105, 1), run(107, 1)]);
    expect(a.freeBlocks).toBe(491);
  });

  it('skips a used block and continues in the next free extent', () => {
    a.loadFromUsage([run(100, 1)]);
    const got = a.alloc(20, 95);
    expect(got).toEqual([run(95, 5), run(101, 15)]);
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
    expect(a.freeExtentCount).toBe(3);
    a.release(regionBlock(100), blockCount(10)); // touches [10,100) and [110,120)
    expect(a.freeExtentCount).toBe(2);
    expect(runs(a)).toEqual([[10, 110], [130, 870]]);
    a.release(regionBlock(120), blockCount(10)); // joins everything
    expect(runs(a)).toEqual([[10, 990]]);
    expect(a.freeExtentCount).toBe(1);
    expect(a.freeBlocks).toBe(990);
  });

  it('release merges with only the lower or only the higher neighbour', () => {
    a.loadFromUsage([run(100, 30)]);
    a.release(regionBlock(100), blockCount(5));
    expect(runs(a)).toEqual([[10, 95], [130, 870]]);
    a.release(regionBlock(125), blockCount(5));
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
  });

  it('refuses to free outside the data area', () => {
    a.loadFromUsage([]);
    expect(() => a.release(regionBlock(5), blockCount(2))).toThrow(/outside the data area/);
    expect(() => a.release(regionBlock(999), blockCount(2))).toThrow(/outside the data area/);
  });

  it('alloc and release are inverse: the free tree returns to one extent', () => {
    a.loadFromUsage([]);
    const got: BlockRun[] = [];
    for (let i = 0; i < 50; i++) got.push(...a.alloc(1 + (i % 7), 10 + ((i * 37) % 900)));
    const taken = got.reduce((n, r) => n + r.len, 0);
    expect(a.freeBlocks).toBe(990 - taken);
    for (const r of got) expect(a.isAllocated(r.start, r.len)).toBe(true);
    for (const r of got.reverse()) a.release(r.start, r.len);
    expect(runs(a)).toEqual([[10, 990]]);
  });
});
