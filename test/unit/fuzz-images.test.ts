/**
 * Hostile images, structure-aware: a base region with several users' files
 * (every block tagged with its owner inode), mutated in its decoded
 * structures and re-encoded with the real encoders (checksums right), is
 * checked with fsck -n, mounted in-process, and, when refused, repaired
 * with fsck -y and mounted again. Per image: nothing but a clean refusal
 * (FormatError, FsError) is thrown, it finishes in time, the process's peak
 * RSS stays under 512 MiB (less the drift of region mappings that are never
 * unmapped, ~1 MiB per image), and every file reachable after a mount shows its
 * own tags or zeros, never another inode's — and files created after the
 * mount are seen under their own names only (a name left pointing at a
 * freed slot would open them). 40 images; PMEMFS_TEST_LONG=1: 500.
 *
 * These checks hold for a mount with `-o check` (CHECKED), which cross-checks
 * every inode first. Each image is then mutated again and mounted the
 * default way, reading inodes on demand: every path made is looked up
 * (probing directories whose entries are still on media), every directory
 * listed (streamed from the blocks of those), every file is
 * read and files are created, and nothing but a clean error may come of it, in time; what the
 * on-demand mount cannot see without the full scan (a block mapped by two
 * files, a name left on a free slot that a new file then takes) is counted
 * and printed, not a failure: that is what `-o check` and fsck.pmemfs -n
 * are for (docs/DESIGN.md, "Inodes read on demand").
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsError } from '../../src/errors.js';
import { FormatError } from '../../src/format/layout.js';
import { seededRandom } from '../../src/region/prng.js';
import { checkRegion } from '../../src/repair/check.js';
import { ROOT_CALLER, type Caller, type PmemFs } from '../../src/vfs/fs.js';
import { mountRegion, unmountRegion, type Mounted } from '../../src/vfs/mount.js';
import { CHECKED, LOG, OPTS } from './crash-harness.js';
import { buildBase, mutate, TAG_MAGIC, tagged, writeBase, type Base } from './fuzz-images.js';
import { listLikeKernel } from './helpers.js';
import { DirStream } from '../../src/fuse/dirstream.js';

const BS = 4096;
const MiB = 1 << 20;
const LONG = process.env.PMEMFS_TEST_LONG === '1';
const IMAGES = LONG ? 500 : 40;
const RSS_LIMIT = 512 * MiB;
const IMAGE_MS = 10_000;
/** Tags of the files created after a mount: INTRUDER + k, owned by uid 4242. */
const INTRUDER = 0xee000000;
const INTRUDER_CALLER: Caller = { pid: 4242, uid: 4242, gid: 4242 };

let dir: string;
let base: Base;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-hostile-'));
  base = await buildBase(path.join(dir, 'base.pmem'), 512 * MiB);
}, 60_000);
afterAll(() => { fs.rmSync(dir, { recursive: true, force: true }); });

const clean = (e: unknown): boolean => (e instanceof FormatError || e instanceof FsError) && (e as Error).message.length > 0;

/** Every regular file reachable from the root: path, inode, and up to 64 blocks of its bytes. */
function files(f: PmemFs): Array<{ p: string; ino: number; bytes: Buffer }> {
  const out: Array<{ p: string; ino: number; bytes: Buffer }> = [];
  const seen = new Set<number>();
  const stack: Array<[string, number]> = [['', f.root().ino]];
  while (stack.length && seen.size < 20000) {
    const [p, ino] = stack.pop()!;
    const inode = f.inodeOf(ino);
    if (!inode || seen.has(ino)) continue;
    seen.add(ino);
    if (inode.isDir) { for (const [n, c] of inode.dirents!) stack.push([`${p}/${n}`, c]); continue; }
    if (!inode.isReg) continue;
    let h;
    try {
      h = f.openInode(inode, C.O_RDONLY, ROOT_CALLER);
      const bytes = Buffer.alloc(Math.min(inode.size, 64 * BS));
      const n = f.read(h.fh, bytes, bytes.length, 0);
      out.push({ p, ino, bytes: bytes.subarray(0, n) });
    } catch (e) { if (!(e instanceof FsError)) throw e; } finally { if (h) f.release(h.fh); }
    seen.delete(ino);   // hard links: every name is read
  }
  return out;
}

/** What a file shows that it should not: another inode's tags, an intruder's tags under another name, unknown bytes. */
function exposure(m: Mounted, intruders: Map<string, number>, strictBytes: boolean): string[] {
  const bad: string[] = [];
  for (const { p, ino, bytes } of files(m.fs)) {
    const allowed = base.allowed.get(ino);
    for (let off = 0; off + 16 <= bytes.length; off += 16) {
      const magic = bytes.readUInt32LE(off), tag = bytes.readUInt32LE(off + 4);
      if (magic === TAG_MAGIC && tag >= INTRUDER) {
        if (intruders.get(p) !== tag) { bad.push(`${p} (inode ${ino}) shows the data of intruder file ${tag - INTRUDER}`); break; }
      } else if (magic === TAG_MAGIC) {
        if (!allowed?.has(tag)) { bad.push(`${p} (inode ${ino}) shows data of inode ${tag}`); break; }
      } else if (strictBytes && bytes.subarray(off, off + 16).some((x) => x !== 0)) {
        bad.push(`${p} (inode ${ino}) shows bytes that are neither its data nor zeros at ${off}`); break;
      }
    }
  }
  return bad;
}

/** Create files as another user, then check every name: exposure() before and after. */
function useMounted(m: Mounted, strictBytes: boolean): string[] {
  const bad = exposure(m, new Map(), strictBytes);
  const intruders = new Map<string, number>();
  for (let k = 0; k < 4; k++) {
    const p = `/intruder${k}`;
    try {
      const h = m.fs.create(p, 0o600, C.O_RDWR, INTRUDER_CALLER);
      const b = tagged(INTRUDER + k, 2);
      m.fs.write(h.fh, p, b, b.length, 0, INTRUDER_CALLER);
      m.fs.release(h.fh);
      intruders.set(p, INTRUDER + k);
    } catch (e) { if (!(e instanceof FsError)) throw e; }
  }
  return bad.concat(exposure(m, intruders, strictBytes));
}

interface Counts {
  images: number; refusedAtMount: number; mountedClean: number; fsckFindings: number; repairedThenMounted: number; repairLeftProblems: number;
  /** On-demand mounts: refused (the root or the in-core list damaged), served, and the exposures only the full check would have stopped. */
  onDemandRefused: number; onDemandServed: number; onDemandExposures: number;
  violations: string[];
  /** RSS when the run began, the peak so far, and the drift of leaked mappings (MiB). */
  startRss: number; lastPeak: number; driftMiB: number;
}

/** Mount, use, unmount; null when refused cleanly. */
function tryMount(img: string, strict: boolean, what: string, c: Counts, exposureCheck: boolean): Mounted | null | 'ok' {
  let m: Mounted;
  try { m = mountRegion(img, CHECKED, LOG); } catch (e) {
    if (!clean(e)) throw new Error(`${what}: mount threw ${(e as Error).stack}`);
    return null;
  }
  try {
    const bad = useMounted(m, strict);
    if (exposureCheck) for (const b of bad) c.violations.push(`${what}: ${b}`);
    else for (const b of bad.filter((x) => x.includes('intruder'))) c.violations.push(`${what} (after fsck -y): ${b}`);
  } finally {
    try { unmountRegion(m); } catch (e) { if (!clean(e)) throw new Error(`${what}: unmount threw ${(e as Error).stack}`); m.region.close(); }
  }
  return 'ok';
}

function runImage(i: number, c: Counts): void {
  const img = path.join(dir, `img-${i}.pmem`);
  writeBase(img, base);
  const r = seededRandom(0x5eed0000 + i);
  const applied = mutate(img, r);
  const what = `image ${i} [${applied.what.join('; ')}]`;
  const strict = !applied.kinds.includes('journal');
  const t0 = Date.now();
  const rssBefore = process.memoryUsage().rss;
  try {
    const n = checkRegion(img, false);
    if (n.problems.length) c.fsckFindings++;
  } catch (e) { if (!clean(e)) throw new Error(`${what}: fsck -n threw ${(e as Error).stack}`); }
  const first = tryMount(img, strict, what, c, true);
  if (first) c.mountedClean++;
  else {
    c.refusedAtMount++;
    let y;
    try { y = checkRegion(img, true); } catch (e) { if (!clean(e)) throw new Error(`${what}: fsck -y threw ${(e as Error).stack}`); }
    if (y && y.uncorrected.length === 0) {
      // fsck -y turns a data block mapped twice without a count into a shared one (both keep it),
      // so only the names are checked after a repair: a named inode is never freed.
      if (tryMount(img, strict, what, c, false)) c.repairedThenMounted++;
      else c.violations.push(`${what}: fsck -y reported no problem left, but the mount still refuses`);
    } else {
      c.repairLeftProblems++;
      if (process.env.FUZZ_DEBUG) console.log(`${what}: fsck -y left ${JSON.stringify(y?.uncorrected)}`);
    }
  }
  // The same mutation again, mounted the default way (inodes read on demand).
  writeBase(img, base);
  mutate(img, seededRandom(0x5eed0000 + i));
  let m: Mounted | null = null;
  try { m = mountRegion(img, OPTS, LOG); } catch (e) {
    if (!clean(e)) throw new Error(`${what}: on-demand mount threw ${(e as Error).stack}`);
    c.onDemandRefused++;
  }
  if (m) {
    c.onDemandServed++;
    try {
      // Names first, as the kernel asks: a lookup in a directory whose entries are still on media
      // probes its record blocks (Inode.entry); an absent name reads every one of them.
      for (const p of [...base.paths, '/home/u1002/many/absent']) {
        try { m.fs.resolve(p); } catch (e) { if (!clean(e)) throw e; }
      }
      // Then listings, as FUSE readdir makes them: streamed from the blocks of a directory still on media.
      const dirs = [m.fs.root()];
      for (let k = 0; k < dirs.length && k < 1000; k++) {
        try {
          // A hash index as FUSE lists it (by hash, leaf by leaf), else streamed in chain order.
          const hashed = m.fs.hashedListing(dirs[k]);
          const entries = hashed ? listLikeKernel(new DirStream(dirs[k].ino, [], () => [], hashed), () => 64, (n) => n) : m.fs.listEntries(dirs[k]);
          for (const [, c] of entries) { const i = m.fs.inodeOf(c); if (i?.isDir && !dirs.includes(i)) dirs.push(i); }
        } catch (e) { if (!clean(e)) throw e; }
      }
      if (useMounted(m, strict).length) c.onDemandExposures++;
    } catch (e) {
      if (!clean(e)) throw new Error(`${what}: on-demand use threw ${(e as Error).stack}`);
    } finally {
      try { unmountRegion(m); } catch (e) { if (!clean(e)) throw new Error(`${what}: on-demand unmount threw ${(e as Error).stack}`); m.region.close(); }
    }
  }
  const ms = Date.now() - t0;
  if (ms > IMAGE_MS) c.violations.push(`${what}: took ${ms} ms`);
  // Region.close() leaves its mapping to the GC, which never unmaps it (src/region/region.ts):
  // each open keeps the pages it touched, a slow drift that is not this image's doing.
  const peak = process.resourceUsage().maxRSS * 1024;
  const drift = Math.max(0, rssBefore - c.startRss);
  if (peak > c.lastPeak && peak - drift > RSS_LIMIT) c.violations.push(`${what}: peak RSS ${Math.round(peak / MiB)} MiB (${Math.round(drift / MiB)} MiB of it drift)`);
  c.lastPeak = Math.max(c.lastPeak, peak);
  c.driftMiB = Math.round(drift / MiB);
  fs.rmSync(img, { force: true });
  c.images++;
}

describe('hostile images: structure-aware fuzzing', () => {
  it('the base image mounts clean, and every file shows its own tags', () => {
    const img = path.join(dir, 'plain.pmem');
    writeBase(img, base);
    const m = mountRegion(img, CHECKED, LOG);
    expect(m.recovered).toBe(true);
    expect(m.replayed).toBeGreaterThan(0);
    expect(files(m.fs).length).toBeGreaterThan(35);
    expect(useMounted(m, true)).toEqual([]);
    unmountRegion(m);
    expect(checkRegion(img, false).problems).toEqual([]);
  });

  it(`${IMAGES} mutated images: clean refusal or a safe mount, in time and memory`, () => {
    const c: Counts = {
      images: 0, refusedAtMount: 0, mountedClean: 0, fsckFindings: 0, repairedThenMounted: 0, repairLeftProblems: 0, violations: [],
      onDemandRefused: 0, onDemandServed: 0, onDemandExposures: 0,
      startRss: process.memoryUsage().rss, lastPeak: process.resourceUsage().maxRSS * 1024, driftMiB: 0,
    };
    const t0 = Date.now();
    for (let i = 0; i < IMAGES; i++) runImage(i, c);
    const { violations, startRss: _s, lastPeak: _l, ...counts } = c;
    console.log(`hostile images: ${JSON.stringify({ ...counts, violations: violations.length, seconds: (Date.now() - t0) / 1000, peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024) })}`);
    expect(violations).toEqual([]);
  }, LONG ? 1_800_000 : 120_000);
});
