/**
 * Power failure at every persistence point (no mount needed): a seeded
 * mixed workload of at least 200 operations runs on a region that records
 * unflushed pages; at every persistence point (before its flush) crash
 * images are made in which none, all, or a random subset of the unflushed
 * pages reached the media, and each is recovered and checked
 * (test/unit/crash-harness.ts): namespace equal to the last committed or the
 * committing snapshot, file data made of versions since the last data
 * commit, fsck clean after a clean unmount.
 *
 * The default run (npm test) checks every point of one seed with 3 subsets
 * (none lost, all lost, a random half); PMEMFS_POWERFAIL_FULL=1 takes 5
 * subsets and three seeds.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatRegion, mountRegion, unmountRegion, type Mounted } from '../../src/vfs/mount.js';
import { checkCrashImage, LOG, OPTS, readAll, rng, snapshot, workload, type Snap } from './crash-harness.js';

const FULL = process.env.PMEMFS_POWERFAIL_FULL === '1';
const EVERY = 1;
const SUBSETS = FULL ? 5 : 3;
const MiB = 1 << 20;

let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-powerfail-'); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

async function harness(seed: number, ops: number): Promise<{ points: number; images: number; done: Map<string, number> }> {
  const p = path.join(dir, 'r.pmem');
  formatRegion(p, { size: 8 * MiB, blockSize: 4096, label: 'pf' });
  const m: Mounted = mountRegion(p, { ...OPTS, powerfail: true }, LOG);
  const f = m.fs;
  let committed: Snap = snapshot(f);
  const versions = new Map<number, Buffer[]>();
  const current = () => { for (const [, n] of snapshot(f)) if (n.type === 'f') { const vs = versions.get(n.ino) ?? []; const c = readAll(f, n.ino); if (!vs.length || !vs[vs.length - 1].equals(c)) vs.push(c); versions.set(n.ino, vs); } };
  // After a commit only the newest version of each file can be what that commit's metadata
  // points at (its data was flushed first); files unlinked since keep theirs.
  const resetVersions = () => { for (const [ino, vs] of versions) versions.set(ino, vs.slice(-1)); current(); };
  resetVersions();
  let points = 0, images = 0;
  const coin = rng(seed * 7919);
  m.region.onPersist = (point, n) => {
    if (point === 'data' || point === 'log' || point === 'commit') {
      if (n % EVERY === 0) {
        const committing = point === 'commit' ? snapshot(f) : null;
        for (let k = 0; k < SUBSETS; k++) {
          const img = path.join(dir, `crash-${n}-${k}.pmem`);
          const lost = k === 0 ? () => false : k === 1 ? () => true : () => coin() < 0.5;
          m.region.crashImage(img, lost);
          checkCrashImage(img, { committed, committing, versions }, `seed ${seed} point ${n} (${point}) subset ${k}`);
          images++;
        }
        points++;
      }
      if (point === 'commit') { committed = snapshot(f); resetVersions(); }   // after this flush the transaction is durable
    }
  };
  const done = await workload(f, seed, ops, () => current());
  m.region.onPersist = null;
  unmountRegion(m);
  return { points, images, done };
}

describe('power failure at every persistence point', () => {
  it('a mixed workload of 300 operations: every crash image recovers consistently', async () => {
    for (const seed of FULL ? [1, 2, 3] : [1]) {
      const { points, images, done } = await harness(seed, 300);
      expect(points).toBeGreaterThan(40);
      // The in-core list changes: orphans made and released, files sealed.
      expect(done.get('orphan') ?? 0).toBeGreaterThan(0);
      expect(done.get('release orphan') ?? 0).toBeGreaterThan(0);
      expect(done.get('seal') ?? 0).toBeGreaterThan(0);
      expect(images).toBe(points * SUBSETS);
      if (FULL) console.log(`powerfail seed ${seed}: ${points} persistence points, ${images} images checked`);
    }
  });
});
