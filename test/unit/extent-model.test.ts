/**
 * Model-based property test of the extent engine (fast-check): random
 * sequences of create, write, truncate, punch, zero, collapse, insert,
 * reflink, dedupe, unshare, seal, unseal, unlink and commit run against the
 * engine (a real region, no FUSE) and against a plain byte-array model of
 * each file. After every step: every file's size and bytes equal the
 * model's, the errno (or success) equals the model's prediction, sealed
 * files share no block, and the space accounting holds — every block free
 * or owned, each metadata block once, each data block's reference count
 * equal to its number of owners, nothing leaked. At the end the region is
 * remounted (contents and counts survive), then every file is unlinked and
 * the free space must come back to what it was.
 *
 * The model is written from the Linux rules (fallocate(2), ioctl_ficlonerange(2),
 * ioctl_fideduperange(2), generic_remap_checks), not from the engine's code.
 * FC_RUNS (default 2000) sequences per run; a failure prints fast-check's
 * seed and path, and FC_SEED=<seed> FC_PATH=<path> replays it.
 */
import fc from 'fast-check';
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsError } from '../../src/errors.js';
import { validate } from '../../src/inode/validate.js';
import { sharedPieces } from '../../src/layout/mapping.js';
import { PmemService, type ServiceOptions } from '../../src/service.js';
import * as uapi from '../../src/uapi.js';
import { ROOT_CALLER } from '../../src/vfs/fs.js';
import { formatRegion } from '../../src/vfs/mount.js';
import { readAll } from './crash-harness.js';

const BS = 4096;
const NAMES = ['a', 'b', 'c'] as const;
const LOG = pino({ level: 'silent' });
const OPTS: ServiceOptions = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 100, leaseBreakMs: 1000 };
const RUNS = Number(process.env.FC_RUNS ?? 2000);
/** Largest offset or length a step uses (bytes): files stay within a few dozen blocks. */
const SPAN = 24 * BS;

type Name = typeof NAMES[number];
type Op =
  | { k: 'create'; f: Name }
  | { k: 'write'; f: Name; off: number; len: number; v: number }
  | { k: 'truncate'; f: Name; size: number }
  | { k: 'punch' | 'zero'; f: Name; off: number; len: number; keep: boolean }
  | { k: 'collapse' | 'insert'; f: Name; off: number; len: number }
  | { k: 'reflink' | 'dedupe'; src: Name; dst: Name; srcOff: number; dstOff: number; len: number }
  | { k: 'unshare'; f: Name; off: number; len: number }
  | { k: 'seal' | 'unseal' | 'unlink'; f: Name }
  | { k: 'commit' };

/** Mostly block-aligned numbers (the interesting cases for sharing), sometimes not. */
const bytes = (max: number) => fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: max / BS }).map((b) => b * BS) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max }) },
);
const name = fc.constantFrom(...NAMES);
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: name.map((f) => ({ k: 'create' as const, f })) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('write' as const), f: name, off: bytes(SPAN), len: fc.integer({ min: 1, max: 3 * BS }), v: fc.integer({ min: 0, max: 3 }) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('truncate' as const), f: name, size: bytes(SPAN) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constantFrom('punch' as const, 'zero' as const), f: name, off: bytes(SPAN), len: fc.integer({ min: 1, max: 4 * BS }), keep: fc.boolean() }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constantFrom('collapse' as const, 'insert' as const), f: name, off: bytes(SPAN), len: fc.integer({ min: 1, max: 4 }).map((b) => b * BS) }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constantFrom('reflink' as const, 'dedupe' as const), src: name, dst: name, srcOff: bytes(4 * BS), dstOff: bytes(SPAN / 2), len: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 4 }).map((b) => b * BS), bytes(8 * BS)) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('unshare' as const), f: name, off: bytes(SPAN), len: fc.integer({ min: 1, max: 4 * BS }) }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constantFrom('seal' as const, 'unseal' as const, 'unlink' as const), f: name }) },
  { weight: 1, arbitrary: fc.constant({ k: 'commit' as const }) },
);

// ------------------------------------------------------------------ the model

interface MFile { data: Buffer; sealed: boolean }
type Model = Map<Name, MFile>;

const zeros = (n: number) => Buffer.alloc(Math.max(0, n));
const resize = (b: Buffer, size: number) => (size <= b.length ? Buffer.from(b.subarray(0, size)) : Buffer.concat([b, zeros(size - b.length)]));
const fill = (len: number, v: number) => Buffer.alloc(len, 0x41 + v);

class Refused extends Error { constructor(readonly code: string) { super(code); } }
const refuse = (code: string): never => { throw new Refused(code); };

/** What the remap rules (generic_remap_checks, generic_remap_check_len) give: [count, blocks] or null for nothing to do. */
function remapPlan(src: MFile, dst: MFile, same: boolean, srcOff: number, dstOff: number, len0: number, dedupe: boolean): number | null {
  const ss = src.data.length, ds = dst.data.length;
  let len = len0;
  if (len === 0) {
    if (dedupe || srcOff === ss) return null;
    if (srcOff > ss) refuse('EINVAL');
    len = ss - srcOff;
  }
  if (srcOff % BS || dstOff % BS) refuse('EINVAL');
  if (dedupe && (srcOff >= ss || srcOff + len > ss || dstOff >= ds || dstOff + len > ds)) refuse('EINVAL');
  if (srcOff >= ss) refuse('EINVAL');
  let count = Math.min(len, ss - srcOff);
  let bcount: number;
  if (srcOff + count === ss && (!dedupe || dstOff + count === ds)) bcount = Math.ceil(ss / BS) * BS - srcOff;
  else { count -= count % BS; bcount = count; }
  if (same && dstOff + bcount > srcOff && dstOff < srcOff + bcount) refuse('EINVAL');
  if (count !== len && !dedupe) refuse('EINVAL');
  if (count % BS && (dedupe || dstOff + count < ds)) {
    if (!dedupe) refuse('EINVAL');
    count -= count % BS;
  }
  return count === 0 ? null : count;
}

/** Apply op to the model; throws Refused(errno) when Linux would refuse it (the model then is unchanged). */
function modelStep(m: Model, o: Op): void {
  if (o.k === 'commit') return;
  if (o.k === 'reflink' || o.k === 'dedupe') {
    const src = m.get(o.src)!, dst = m.get(o.dst)!;
    if (src.sealed || dst.sealed) refuse('ETXTBSY');
    const count = remapPlan(src, dst, o.src === o.dst, o.srcOff, o.dstOff, o.len, o.k === 'dedupe');
    if (count === null) return;
    if (o.k === 'dedupe') return;   // contents equal or not: either way nothing a reader sees changes
    const d = resize(dst.data, Math.max(dst.data.length, o.dstOff + count));
    src.data.copy(d, o.dstOff, o.srcOff, o.srcOff + count);
    dst.data = d;
    return;
  }
  const f = m.get((o as { f: Name }).f);   // every op left names one file (TS narrows no union-typed discriminant)
  if (o.k === 'create') { if (!f) m.set(o.f, { data: zeros(0), sealed: false }); return; }
  if (!f) throw new Error('ops on missing files are skipped before the model');
  const size = f.data.length;
  switch (o.k) {
    case 'write': {
      if (f.sealed && o.off + o.len > size) refuse('ETXTBSY');
      const d = resize(f.data, Math.max(size, o.off + o.len));
      fill(o.len, o.v).copy(d, o.off);
      f.data = d;
      return;
    }
    case 'truncate':
      if (f.sealed && o.size !== size) refuse('ETXTBSY');
      f.data = resize(f.data, o.size);
      return;
    case 'punch':
    case 'zero': {
      if (o.k === 'punch' && !o.keep) refuse('EOPNOTSUPP');
      if (f.sealed) refuse('ETXTBSY');
      const end = o.off + o.len;
      const d = o.k === 'zero' && !o.keep ? resize(f.data, Math.max(size, end)) : Buffer.from(f.data);
      d.fill(0, Math.min(o.off, d.length), Math.min(end, d.length));
      f.data = d;
      return;
    }
    case 'collapse':
      if (o.off % BS || o.len % BS) refuse('EINVAL');
      if (o.off + o.len >= size) refuse('EINVAL');
      if (f.sealed) refuse('ETXTBSY');
      f.data = Buffer.concat([f.data.subarray(0, o.off), f.data.subarray(o.off + o.len)]);
      return;
    case 'insert':
      if (o.off % BS || o.len % BS) refuse('EINVAL');
      if (o.off >= size) refuse('EINVAL');
      if (f.sealed) refuse('ETXTBSY');
      f.data = Buffer.concat([f.data.subarray(0, o.off), zeros(o.len), f.data.subarray(o.off)]);
      return;
    case 'unshare':
      if (f.sealed) refuse('ETXTBSY');
      f.data = resize(f.data, Math.max(size, o.off + o.len));
      return;
    case 'seal': f.sealed = true; return;
    case 'unseal': f.sealed = false; return;
    case 'unlink': m.delete(o.f); return;
  }
}

// ------------------------------------------------------------------ the engine

async function engineStep(svc: PmemService, o: Op): Promise<void> {
  const f = svc.fs;
  const p = (n: Name) => `/${n}`;
  switch (o.k) {
    case 'commit': f.fsync(); return;
    case 'create': { if (!exists(svc, o.f)) f.release(f.create(p(o.f), 0o644, C.O_RDWR, ROOT_CALLER).fh); return; }
    case 'write': {
      const h = f.open(p(o.f), C.O_RDWR, ROOT_CALLER);
      try { f.write(h.fh, p(o.f), fill(o.len, o.v), o.len, o.off); } finally { f.release(h.fh); }
      return;
    }
    case 'truncate': await f.truncate(p(o.f), o.size); return;
    case 'punch': await f.fallocate(p(o.f), uapi.FALLOC_FL_PUNCH_HOLE | (o.keep ? uapi.FALLOC_FL_KEEP_SIZE : 0), o.off, o.len); return;
    case 'zero': await f.fallocate(p(o.f), uapi.FALLOC_FL_ZERO_RANGE | (o.keep ? uapi.FALLOC_FL_KEEP_SIZE : 0), o.off, o.len); return;
    case 'collapse': case 'insert': await f.shift(p(o.f), o.k, o.off, o.len); return;
    case 'unshare': await f.unshare(p(o.f), o.off, o.len); return;
    case 'reflink': case 'dedupe': {
      const src = f.resolve(p(o.src));
      await f.remap(p(o.dst), src, o.srcOff, o.dstOff, o.len, o.k === 'dedupe', ROOT_CALLER);
      return;
    }
    case 'seal': svc.seals.seal(p(o.f), ROOT_CALLER); return;
    case 'unseal': svc.seals.unseal(p(o.f), ROOT_CALLER); return;
    case 'unlink': f.unlink(p(o.f)); return;
  }
}

function exists(svc: PmemService, n: Name): boolean {
  return svc.fs.lookupOrNull(svc.fs.resolve('/'), n) !== null;
}

/** The engine agrees with the model, and its space accounting holds. */
function check(svc: PmemService, m: Model, where: string): void {
  const f = svc.fs;
  for (const n of NAMES) {
    const mf = m.get(n);
    expect(exists(svc, n), `${where}: /${n} exists`).toBe(mf !== undefined);
    if (!mf) continue;
    const inode = f.resolve(`/${n}`);
    expect(inode.size, `${where}: size of /${n}`).toBe(mf.data.length);
    const got = readAll(f, inode.ino);
    if (!got.equals(mf.data)) {
      const i = got.findIndex((b, j) => b !== mf.data[j]);
      expect.fail(`${where}: /${n} differs from the model at byte ${i} (engine ${got[i]}, model ${mf.data[i]})`);
    }
    expect(inode.sealKind !== 'none', `${where}: /${n} sealed`).toBe(mf.sealed);
    if (mf.sealed) expect(sharedPieces(f.store.refcount, inode, 0, Math.ceil(inode.size / BS)), `${where}: sealed /${n} shares no block`).toEqual([]);
  }
  const v = validate(f.store, f.store.alloc);
  expect(v.overlaps, `${where}: overlaps`).toEqual([]);
  expect(v.refcounts, `${where}: reference counts`).toEqual([]);
  expect(v.markedFree, `${where}: owned blocks marked free`).toEqual([]);
  expect(v.leaked, `${where}: leaked blocks`).toBe(0);
}

/** Steps run, by operation and outcome (printed with FC_STATS=1: shows what the generator reaches). */
const tally = new Map<string, number>();

let dir: string;
beforeAll(() => { dir = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'pmemfs-model-')); });
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

describe('extent engine against a byte-array model', () => {
  it(`${RUNS} random sequences: contents, sizes, errnos and space accounting agree after every step`, async () => {
    const p = path.join(dir, 'r.pmem');
    formatRegion(p, { size: 8 << 20, blockSize: BS, label: 'model' });
    const pristine = fs.readFileSync(p);
    const params: fc.Parameters<[Op[]]> = { numRuns: RUNS, endOnFailure: false };
    if (process.env.FC_SEED) { params.seed = Number(process.env.FC_SEED); params.path = process.env.FC_PATH; }
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
      fs.writeFileSync(p, pristine);
      let svc = new PmemService(p, OPTS, LOG);
      try {
        const free0 = svc.fs.statfs().bfree;
        const m: Model = new Map();
        // Every sequence starts from three files with data, so most steps have something to act on.
        const start: Op[] = NAMES.flatMap((f, j) => [{ k: 'create' as const, f }, { k: 'write' as const, f, off: 0, len: (3 + 2 * j) * BS + 100 * j, v: j }]);
        const all = [...start, ...ops];
        for (let i = 0; i < all.length; i++) {
          const o = all[i];
          const where = `step ${i} ${JSON.stringify(o)}`;
          const names = 'f' in o ? [o.f] : 'src' in o ? [o.src, o.dst] : [];
          if (o.k !== 'create' && names.some((n) => !m.has(n))) continue;
          let want = 'ok';
          try { modelStep(m, o); } catch (e) { if (!(e instanceof Refused)) throw e; want = e.code; }
          let got = 'ok';
          try { await engineStep(svc, o); } catch (e) { if (!(e instanceof FsError)) throw e; got = e.code; }
          expect(got, `${where}: errno`).toBe(want);
          tally.set(`${o.k}:${got}`, (tally.get(`${o.k}:${got}`) ?? 0) + 1);
          check(svc, m, where);
        }
        // Durable: the counts and maps come back from media.
        svc.close();
        svc = new PmemService(p, OPTS, LOG);
        check(svc, m, 'after remount');
        for (const n of m.keys()) { if (m.get(n)!.sealed) svc.seals.unseal(`/${n}`, ROOT_CALLER); svc.fs.unlink(`/${n}`); }
        svc.fs.fsync();
        expect(svc.fs.store.refcount.size, 'no record left once every file is gone').toBe(0);
        expect(svc.fs.statfs().bfree, 'every block comes back').toBe(free0);
      } finally {
        svc.close();
      }
    }), params);
    if (process.env.FC_STATS) console.log([...tally].sort().map(([k, v]) => `${k}=${v}`).join(' '));
    // The generator must reach the interesting outcomes, or the property proves little.
    for (const k of ['reflink:ok', 'dedupe:ok', 'write:ok', 'collapse:ok', 'insert:ok', 'unshare:ok', 'seal:ok', 'reflink:EINVAL', 'write:ETXTBSY']) {
      expect(tally.get(k) ?? 0, k).toBeGreaterThan(0);
    }
  }, 600_000);
});
