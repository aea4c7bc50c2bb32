/**
 * The per-inode tables of the cross-inode checks (src/inode/validate.ts):
 * typed arrays indexed by inode number, which mount fills for every loaded
 * inode. A number outside the bound (an entry naming a slot beyond the
 * high-water mark, a negative or fractional value from a forged record) is
 * never stored and counts as absent, so it reaches the dangling-entry
 * checks instead of writing outside the array.
 */
import { describe, expect, it } from 'vitest';
import { InoCounts, InoSet } from '../../src/inode/validate.js';

describe('InoCounts', () => {
  it('counts per inode number, 0 for numbers never counted', () => {
    const c = new InoCounts(100);
    for (let i = 0; i < 3; i++) c.inc(7);
    c.inc(99);
    expect(c.get(7)).toBe(3);
    expect(c.get(99)).toBe(1);
    expect(c.get(8)).toBe(0);
  });

  it('ignores numbers outside the bound and reports them as 0', () => {
    const c = new InoCounts(10);
    for (const ino of [10, 11, -1, 2 ** 40, Number.NaN, 5.5]) { c.inc(ino); expect(c.get(ino)).toBe(0); }
    expect(c.get(5)).toBe(0);
    expect(new InoCounts(0).get(0)).toBe(0);
  });
});

describe('InoSet', () => {
  it('holds inode numbers as bits, across byte boundaries', () => {
    const s = new InoSet(1000);
    for (const ino of [0, 1, 7, 8, 9, 63, 64, 999]) s.add(ino);
    for (const ino of [0, 1, 7, 8, 9, 63, 64, 999]) expect(s.has(ino)).toBe(true);
    for (const ino of [2, 6, 10, 62, 65, 998]) expect(s.has(ino)).toBe(false);
  });

  it('never holds a number outside the bound', () => {
    const s = new InoSet(16);
    for (const ino of [16, 17, -1, 2 ** 40, 5.5]) { s.add(ino); expect(s.has(ino)).toBe(false); }
    expect(s.has(5)).toBe(false);
    expect(s.has(15)).toBe(false);
  });
});
