import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Region, WINDOW_SIZE } from '../../src/region/region.js';
import { regionOff } from '../../src/types.js';

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-region-')); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

describe('Region windows', () => {
  it('maps the right file bytes past 2 GiB and 4 GiB (no offset truncation), across a window boundary', () => {
    const p = path.join(dir, 'r.img');
    fs.writeFileSync(p, '');
    fs.truncateSync(p, 9 * 2 ** 30);               // sparse
    const r = Region.open(p);
    const at = [2 ** 31 + 4096, 2 ** 32 + 8192, 8 * 2 ** 30 + 12288, 3 * WINDOW_SIZE - 3];
    at.forEach((off, i) => r.write(regionOff(off), Buffer.from(`mark-${i}`), 0, 6));
    r.persistAll();
    const fd = fs.openSync(p, 'r');
    try {
      at.forEach((off, i) => {
        const b = Buffer.alloc(6);
        fs.readSync(fd, b, 0, 6, off);
        expect(b.toString()).toBe(`mark-${i}`);
        expect(r.readBuf(regionOff(off), 6).toString()).toBe(`mark-${i}`);
      });
      // Nothing landed at the start of the file (what an int-truncated offset would hit).
      const head = Buffer.alloc(16384);
      fs.readSync(fd, head, 0, head.length, 0);
      expect(head.every((x) => x === 0)).toBe(true);
    } finally {
      fs.closeSync(fd);
      r.close();
    }
  });

  it('refuses access outside the region', () => {
    const p = path.join(dir, 's.img');
    fs.writeFileSync(p, Buffer.alloc(8192));
    const r = Region.open(p);
    expect(() => r.readBuf(regionOff(8190), 4)).toThrow(RangeError);
    r.close();
  });
});
