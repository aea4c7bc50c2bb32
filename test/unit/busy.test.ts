/**
 * The pin registry (src/pin/registry.ts): overlap queries on closed block
 * intervals, several pins on one block, per-inode and per-holder bookkeeping,
 * the per-holder limit (EAGAIN), and waiting for a release.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { FsError } from '../../src/errors.js';
import { holderKey, MAX_PINS, MAX_PINS_PER_HOLDER, PinRegistry, type Pin, type PinHolder } from '../../src/layout/busy.js';

const BS = 4096;
const pid = (n: number, uid = 0): PinHolder => ({ kind: 'pid', pid: n, uid });
const ADMIN: PinHolder = { kind: 'admin' };

let reg: PinRegistry;
beforeEach(() => { reg = new PinRegistry(); });

function add(startBlock: number, blocks: number, holder: PinHolder = pid(100), ino = 5): Pin {
  return reg.add({ ino, fileOff: 0, len: blocks * BS, phys: startBlock * BS, startBlock, blocks, holder });
}
const ids = (pins: Pin[]) => pins.map((p) => p.id).sort((a, b) => a - b);

describe('PinRegistry overlaps', () => {
  it('reports pins overlapping any part of a range', () => {
    const p = add(100, 10);                      // blocks 100..109
    expect(reg.isBusy(100, 10)).toBe(true);
    expect(reg.isBusy(95, 6)).toBe(true);        // 95..100
    expect(reg.isBusy(109, 50)).toBe(true);      // 109..
    expect(reg.isBusy(103, 1)).toBe(true);
    expect(ids(reg.busy(0, 1000))).toEqual([p.id]);
    expect(ids(reg.busy(105, 1))).toEqual([p.id]);
  });

  it('does not count adjacent ranges as overlapping', () => {
    add(100, 10);
    expect(reg.isBusy(90, 10)).toBe(false);      // 90..99
    expect(reg.isBusy(110, 10)).toBe(false);     // 110..119
    expect(reg.busy(90, 10)).toEqual([]);
    expect(reg.busy(110, 1)).toEqual([]);
  });

  it('treats empty ranges and an empty registry as idle', () => {
    expect(reg.isBusy(0, 1e9)).toBe(false);
    expect(reg.busy(0, 1e9)).toEqual([]);
    add(5, 1);
    expect(reg.isBusy(5, 0)).toBe(false);
    expect(reg.busy(5, 0)).toEqual([]);
  });

  it('finds exactly the pins a range touches among many', () => {
    const pins = [add(0, 2), add(10, 5), add(20, 1), add(30, 10)];
    expect(ids(reg.busy(1, 10))).toEqual([pins[0].id, pins[1].id]);  // 1..10
    expect(ids(reg.busy(15, 5))).toEqual([]);                         // 15..19
    expect(ids(reg.busy(20, 11))).toEqual([pins[2].id, pins[3].id]); // 20..30
  });
});

describe('PinRegistry refcounts', () => {
  it('keeps a block busy until its last pin goes', () => {
    const a = add(50, 1), b = add(50, 1, pid(200)), c = add(49, 3, ADMIN);
    expect(ids(reg.busy(50, 1))).toEqual([a.id, b.id, c.id]);
    expect(reg.remove(b.id)).toBe(b);
    expect(ids(reg.busy(50, 1))).toEqual([a.id, c.id]);
    reg.remove(a.id);
    expect(reg.isBusy(50, 1)).toBe(true);
    reg.remove(c.id);
    expect(reg.isBusy(50, 1)).toBe(false);
    expect(reg.size).toBe(0);
  });

  it('removing an unknown or already removed id returns undefined and changes nothing', () => {
    const a = add(1, 1);
    expect(reg.remove(a.id + 100)).toBeUndefined();
    expect(reg.remove(a.id)).toBe(a);
    expect(reg.remove(a.id)).toBeUndefined();
    expect(reg.size).toBe(0);
  });

  it('hands out increasing ids and records the creation time', () => {
    const t0 = Date.now();
    const a = add(1, 1), b = add(2, 1);
    expect(b.id).toBeGreaterThan(a.id);
    expect(a.created).toBeGreaterThanOrEqual(t0);
    expect(reg.get(a.id)).toBe(a);
    expect(reg.all().map((p) => p.id)).toEqual([a.id, b.id]);
  });
});

describe('PinRegistry holders and inodes', () => {
  it('pinsOfIno lists the pins of one inode only', () => {
    const a = add(1, 1, pid(1), 7), b = add(2, 1, pid(1), 8), c = add(3, 1, pid(2), 7);
    expect(ids(reg.pinsOfIno(7))).toEqual([a.id, c.id]);
    expect(ids(reg.pinsOfIno(8))).toEqual([b.id]);
    expect(reg.pinsOfIno(9)).toEqual([]);
    reg.remove(b.id);
    expect(reg.pinsOfIno(8)).toEqual([]);
  });

  it('removeHolder drops one holder’s pins and nobody else’s', () => {
    const a = add(1, 1, pid(1)), b = add(2, 1, pid(2)), c = add(3, 1, pid(1)), d = add(4, 1, ADMIN);
    expect(reg.pidHolders().sort()).toEqual([1, 2]);
    expect(ids(reg.removeHolder(1))).toEqual([a.id, c.id]);
    expect(ids(reg.all())).toEqual([b.id, d.id]);
    expect(reg.isBusy(1, 1)).toBe(false);
    expect(reg.isBusy(3, 1)).toBe(false);
    expect(reg.pidHolders()).toEqual([2]);
    expect(reg.removeHolder(99)).toEqual([]);
    expect(ids(reg.all())).toEqual([b.id, d.id]);   // admin pins go only by unpin or unmount
  });

  it('names holders as pid:N or admin', () => {
    expect(holderKey(pid(42))).toBe('pid:42');
    expect(holderKey(ADMIN)).toBe('admin');
  });

  it('clear drops everything', () => {
    add(1, 1); add(2, 1, ADMIN);
    reg.clear();
    expect(reg.size).toBe(0);
    expect(reg.isBusy(0, 10)).toBe(false);
    expect(reg.pinsOfIno(5)).toEqual([]);
  });
});

describe('PinRegistry limits', () => {
  it('pins the limits', () => {
    expect(MAX_PINS_PER_HOLDER).toBe(131072);
    expect(MAX_PINS).toBe(1 << 20);
  });

  it('refuses a holder’s pin past MAX_PINS_PER_HOLDER with EAGAIN, others still pin, a release makes room', () => {
    const t0 = Date.now();
    for (let i = 0; i < MAX_PINS_PER_HOLDER; i++) add(i, 1, pid(1));
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(reg.size).toBe(MAX_PINS_PER_HOLDER);
    let err: unknown;
    try { add(1e7, 1, pid(1)); } catch (e) { err = e; }
    expect(err).toBeInstanceOf(FsError);
    expect((err as FsError).code).toBe('EAGAIN');
    expect(reg.size).toBe(MAX_PINS_PER_HOLDER);
    expect(reg.isBusy(1e7, 1)).toBe(false);
    const other = add(1e7, 1, pid(2));
    expect(reg.isBusy(1e7, 1)).toBe(true);
    reg.remove(other.id);
    reg.remove(reg.all()[0].id);
    expect(add(1e7 + 1, 1, pid(1)).holder).toEqual(pid(1));
    expect(() => add(1e7 + 2, 1, pid(1))).toThrow(/pin limit/);
  });
});

describe('PinRegistry.waitForRelease', () => {
  it('resolves true when a pin is removed', async () => {
    const p = add(1, 1);
    const t0 = Date.now();
    setTimeout(() => reg.remove(p.id), 30);
    await expect(reg.waitForRelease(5000)).resolves.toBe(true);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it('resolves true on clear, waking every waiter', async () => {
    add(1, 1);
    const w = [reg.waitForRelease(5000), reg.waitForRelease(5000)];
    reg.clear();
    await expect(Promise.all(w)).resolves.toEqual([true, true]);
  });

  it('resolves false on timeout when nothing is released', async () => {
    add(1, 1);
    const t0 = Date.now();
    await expect(reg.waitForRelease(60)).resolves.toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(50);
  });

  it('a waiter that timed out is not woken again, and a later wait is', async () => {
    const p = add(1, 1);
    await expect(reg.waitForRelease(10)).resolves.toBe(false);
    const w = reg.waitForRelease(5000);
    reg.remove(p.id);
    await expect(w).resolves.toBe(true);
  });
});
