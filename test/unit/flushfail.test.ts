/**
 * A failed flush at every persistence point (no mount needed): the seeded
 * workload of the power-fail harness runs with the flush of persistence
 * point N failing as a medium error would (Region.flushFault), once for
 * every N the workload reaches. The failed pages are lost as Linux loses
 * them after a failed writeback: no longer dirty, the media keeps its old
 * content. After the failure the workload goes on to its end.
 *
 * Each run checks the shutdown (xfs_force_shutdown's semantics): the
 * failing call gets EIO; from then on every change and every fsync gets
 * EIO, reads of clean data still work; and crash images of the region
 * (none, all, or a random half of the unflushed pages lost, the failed
 * write-backs always lost) recover to the last successful commit (or the
 * one that failed) with every file's data one of its versions since that
 * commit — so no fsync that returned 0 covers data the recovered region
 * lacks. Without the shutdown (the failed pages taken as flushed, later
 * commits going on) the data check fails: that was the bug.
 *
 * PMEMFS_TEST_LONG=1 runs two more seeds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FsError } from '../../src/errors.js';
import { formatRegion, mountRegion, type Mounted } from '../../src/vfs/mount.js';
import { checkCrashImage, LOG, OPTS, readAll, rng, snapshot, workload, type Snap } from './crash-harness.js';

const LONG = process.env.PMEMFS_TEST_LONG === '1';
const MiB = 1 << 20;
const OPS = 150;

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-flushfail-'); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

/** Run the workload with the flush of point `failAt` failing (0: none fails); returns the points it reached. */
async function run(seed: number, failAt: number): Promise<number> {
  const p = path.join(dir, `r-${failAt}.pmem`);
  formatRegion(p, { size: 8 * MiB, blockSize: 4096, label: 'ff' });
  const m: Mounted = mountRegion(p, { ...OPTS, powerfail: true }, LOG);
  const f = m.fs;
  let committed: Snap = snapshot(f);
  let committing: Snap | null = null;
  const versions = new Map<number, Buffer[]>();
  const current = () => { for (const [, n] of snapshot(f)) if (n.type === 'f') { const vs = versions.get(n.ino) ?? []; const c = readAll(f, n.ino); if (!vs.length || !vs[vs.length - 1]!.equals(c)) vs.push(c); versions.set(n.ino, vs); } };
  const resetVersions = () => { for (const [ino, vs] of versions) versions.set(ino, vs.slice(-1)); current(); };
  resetVersions();
  let failedSeq = 0;
  m.region.onPersist = (point, n) => {
    if (point !== 'commit') return;
    if (n === failAt) committing = snapshot(f);          // the commit whose commit block fails
    else if (n < failAt || failAt === 0) { committed = snapshot(f); committing = null; resetVersions(); }
  };
  m.region.flushFault = (_point, n) => {
    if (n !== failAt) return false;
    failedSeq = n;
    if (!committing) committing = snapshot(f);            // a data or log flush of a commit fails
    return true;
  };
  await workload(f, seed, OPS, () => { if (!failedSeq) current(); });
  const reached = m.region.persistSeq;
  if (failAt === 0) { m.region.onPersist = null; m.region.flushFault = null; return reached; }
  if (failedSeq === 0) {
    // The workload ends before point failAt: the unmount's flushes get there instead.
    expect(() => { f.fsync(); }).not.toThrow();
    return reached;
  }
  // Shut down: every change and every fsync fails with EIO; clean data still reads.
  expect(f.tx.shutdownReason).not.toBeNull();
  expect(errno(() => f.fsync())).toBe('EIO');
  expect(errno(() => f.mkdir('/after-shutdown', 0o755, { pid: 1, uid: 0, gid: 0 }))).toBe('EIO');
  for (const [, n] of snapshot(f)) if (n.type === 'f') { readAll(f, n.ino); break; }
  const what = `seed ${seed}, flush of point ${failAt} failed`;
  const coin = rng(seed * 31 + failAt);
  for (const [k, lost] of [[0, () => false], [1, () => true], [2, () => coin() < 0.5]] as const) {
    const img = path.join(dir, `img-${failAt}-${k}.pmem`);
    m.region.crashImage(img, lost);
    checkCrashImage(img, { committed, committing, versions }, `${what}, subset ${k}`);
  }
  return reached;
}

function errno(fn: () => unknown): string {
  try { fn(); } catch (e) { return e instanceof FsError ? e.code : String(e); }
  return 'no error';
}

describe('a failed flush at every persistence point shuts the filesystem down', () => {
  it('no fsync that returned 0 covers data missing from the recovered region', async () => {
    for (const seed of LONG ? [1, 2, 3] : [1]) {
      const points = await run(seed, 0);
      expect(points).toBeGreaterThan(15);
      for (let n = 1; n <= points; n++) await run(seed, n);
      if (LONG) console.log(`flushfail seed ${seed}: ${points} persistence points, each failed once, 3 crash images each`);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.mkdirSync(dir);
    }
  }, 600_000);
});
