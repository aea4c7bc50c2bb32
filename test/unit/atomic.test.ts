/**
 * Every multi-inode operation is all or nothing (src/journal/tx.ts): each
 * operation is run with a failure injected at its k-th allocation (ENOSPC)
 * and, separately, at its k-th block-image change (an exception, as an
 * encoding error would be), for every k until it succeeds. After each
 * failure the namespace, free space and inode count in core are exactly as
 * before, and so is the region after a commit, a crash and a remount.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsError } from '../../src/errors.js';
import { direntRecSize, recBlockCapacity } from '../../src/format/records.js';
import { ROOT_CALLER, type PmemFs } from '../../src/vfs/fs.js';
import { formatRegion, mountRegion, unmountRegion, type Mounted } from '../../src/vfs/mount.js';
import { LOG, OPTS, snapshot } from './crash-harness.js';

const MiB = 1 << 20;
const long = (i: number) => `entry-${i}-`.padEnd(200, 'x');
let dir: string, template: string;
let mergeVictim = '';

beforeAll(() => {
  dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-atomic-');
  template = path.join(dir, 'template.pmem');
  formatRegion(template, { size: 8 * MiB, blockSize: 4096, label: 'atomic' });
  const m = mountRegion(template, OPTS, LOG);
  const f = m.fs;
  f.mkdir('/src', 0o755, ROOT_CALLER);
  f.mkdir('/dst', 0o755, ROOT_CALLER);
  f.mkdir('/dst/empty', 0o755, ROOT_CALLER);
  const h = f.create('/src/file', 0o644, C.O_RDWR, ROOT_CALLER);
  f.write(h.fh, '/src/file', Buffer.alloc(3 * 4096, 7), 3 * 4096, 0);
  f.release(h.fh);
  f.setxattr('/src/file', 'user.big', Buffer.alloc(3000, 1), 0);   // an out-of-line fork
  f.mknod('/dst/existing', 0o644, 0, ROOT_CALLER);
  // Fill /dst so that its record blocks have no room for one more long name: its one leaf (a hash
  // index) is full, and the next name splits it.
  const dst = f.resolve('/dst');
  for (let i = 0; ; i++) {
    const set = dst.records;
    if (set && (set.blocks.length !== 1 || recBlockCapacity(4096) - set.blocks[0].used < direntRecSize(long(i)))) break;
    f.mknod(`/dst/${long(i)}`, 0o644, 0, ROOT_CALLER);
  }
  expect(dst.records!.blocks.length).toBe(1);
  // /merge: two leaves that the next unlink (of MERGE_VICTIM) makes one, freeing a block.
  f.mkdir('/merge', 0o755, ROOT_CALLER);
  const mg = f.resolve('/merge');
  const names: string[] = [];
  for (let i = 0; mg.records?.blocks.length !== 2; i++) { names.push(long(200 + i)); f.mknod(`/merge/${long(200 + i)}`, 0o644, 0, ROOT_CALLER); }
  for (;;) {
    const [a, b] = mg.records!.blocks;
    const victim = names.pop()!;
    if (a.used + b.used - direntRecSize(victim) <= recBlockCapacity(4096) / 2) { mergeVictim = victim; break; }
    f.unlink(`/merge/${victim}`);
  }
  expect(mg.records!.blocks.length).toBe(2);
  unmountRegion(m);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const OPS: Record<string, (f: PmemFs) => unknown> = {
  'link into a full directory': (f) => f.link('/src/file', `/dst/${long(100)}`),
  'rename across directories': (f) => f.rename('/src/file', `/dst/${long(101)}`),
  'rename over an existing file': (f) => f.rename('/src/file', '/dst/existing'),
  'rename of a directory across parents': (f) => f.rename('/dst/empty', `/src/${long(102)}`),
  'unlink': (f) => f.unlink(`/dst/${long(3)}`),
  'unlink that merges two leaves': (f) => { f.unlink(`/merge/${mergeVictim}`); expect(f.resolve('/merge').records!.blocks.length).toBe(1); },
  'rmdir': (f) => f.rmdir('/dst/empty'),
  'mkdir in a full directory': (f) => f.mkdir(`/dst/${long(103)}`, 0o700, ROOT_CALLER),
  'create in a full directory': (f) => f.mknod(`/dst/${long(104)}`, 0o600, 0, ROOT_CALLER),
  'symlink in a full directory': (f) => f.symlink('/src/file', `/dst/${long(105)}`, ROOT_CALLER),
  'setxattr rewriting an out-of-line fork': (f) => f.setxattr('/src/file', 'user.big', Buffer.alloc(5000, 2), 0),
};

function state(f: PmemFs): string {
  const s = f.statfs();
  return JSON.stringify({ ns: [...snapshot(f)].sort(), bfree: s.bfree, ffree: s.ffree });
}

function trial(op: (f: PmemFs) => unknown, k: number, kind: 'alloc' | 'block'): boolean {
  const img = path.join(dir, `t-${kind}-${k}.pmem`);
  fs.copyFileSync(template, img);
  let m: Mounted = mountRegion(img, OPTS, LOG);
  const before = state(m.fs);
  let n = 0;
  const hit = () => { if (++n === k) throw kind === 'alloc' ? new FsError('ENOSPC', 'alloc', undefined, 'injected') : new Error('injected'); };
  if (kind === 'alloc') m.engine.alloc.failpoint = hit; else m.engine.journal.failpoint = hit;
  let failed = false;
  try { op(m.fs); } catch (e) {
    failed = true;
    expect((e as Error).message).toContain('injected');
  }
  m.engine.alloc.failpoint = null; m.engine.journal.failpoint = null;
  if (failed) {
    expect(state(m.fs)).toBe(before);
    m.fs.fsync();
    m.region.close();                       // a crash right after the failed operation was committed
    m = mountRegion(img, OPTS, LOG);
    expect(state(m.fs)).toBe(before);
  }
  unmountRegion(m);
  fs.rmSync(img);
  return failed;
}

describe('multi-inode operations are all or nothing', () => {
  for (const [name, op] of Object.entries(OPS)) {
    it(name, () => {
      const failures = { alloc: 0, block: 0 };
      for (const kind of ['alloc', 'block'] as const) {
        for (let k = 1; k < 200 && trial(op, k, kind); k++) failures[kind]++;
      }
      // The injection reached the operation: every operation changes blocks; these allocate.
      expect(failures.block).toBeGreaterThan(1);
      if (/full directory|out-of-line/.test(name)) expect(failures.alloc).toBeGreaterThan(0);
    });
  }
});
