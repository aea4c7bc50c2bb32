/**
 * @file Shared by the crash tests: a seeded mixed workload against the
 * engine (no mount), namespace snapshots, and the check of a crash image.
 *
 * A crash image is checked against what the journal promises: its
 * namespace (every path with type, inode, link count, size, symlink target
 * and xattrs) equals the last committed snapshot or the one being committed;
 * every file's data, 4 KiB block by block, equals that block in one of the
 * file's versions since the last commit (data is ordered, not
 * journaled); and after a clean unmount, fsck finds nothing.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import pino from 'pino';
import { expect } from 'vitest';
import { FsError } from '../../src/errors.js';
import { checkRegion } from '../../src/repair/check.js';
import { SealManager } from '../../src/seal/seal.js';
import * as uapi from '../../src/uapi.js';
import { ROOT_CALLER, type PmemFs } from '../../src/vfs/fs.js';
import { seededRandom } from '../../src/region/prng.js';
import { mountRegion, unmountRegion, type MountOptions, type Mounted } from '../../src/vfs/mount.js';

export const LOG = pino({ level: 'silent' });
export const OPTS: MountOptions = { dax: 'always', readOnly: false, busy: 'refuse', busyTimeoutMs: 200 };
/** OPTS with `-o check`: every inode loaded and cross-checked at mount, a damaged region refused (hostile images, fsck). */
export const CHECKED: MountOptions = { ...OPTS, check: true };
const BS = 4096;

/** Deterministic PRNG (the one `powerfail SEED` uses). */
export const rng = seededRandom;

export interface NodeSnap { type: string; ino: number; nlink: number; size: number; link?: string; xattrs: string }
export type Snap = Map<string, NodeSnap>;

/** The namespace as the engine sees it now. */
export function snapshot(f: PmemFs): Snap {
  const out: Snap = new Map();
  const stack: Array<[string, number]> = [['/', f.root().ino]];
  while (stack.length) {
    const [p, ino] = stack.pop()!;
    const inode = f.inodeOf(ino)!;
    const type = inode.isDir ? 'd' : inode.isSymlink ? 'l' : 'f';
    const xattrs = [...inode.xattrs].map(([k, v]) => `${k}=${v.toString('hex')}`).sort().join(',');
    out.set(p, { type, ino, nlink: inode.nlink, size: inode.isDir ? 0 : inode.size, link: inode.symlink?.toString(), xattrs });
    if (inode.isDir) for (const [n, c] of inode.dirents!) stack.push([(p === '/' ? '' : p) + '/' + n, c]);
  }
  return out;
}

export function readAll(f: PmemFs, ino: number): Buffer {
  const inode = f.inodeOf(ino)!;
  const h = f.openInode(inode, C.O_RDONLY, ROOT_CALLER);
  try {
    const b = Buffer.alloc(inode.size);
    f.read(h.fh, b, b.length, 0);
    return b;
  } finally { f.release(h.fh); }
}

const describeSnap = (s: Snap) => [...s].map(([p, n]) => `${p}:${n.type}${n.ino}/${n.nlink}/${n.size}`).sort().join(' ');

/**
 * A seeded workload of `ops` operations on a mounted engine: create, write,
 * append, overwrite, truncate, punch, fsync, rename (across directories and
 * over existing names), link, unlink, mkdir, rmdir, symlink, reflink (whole
 * files and block ranges: later overwrites and appends copy on write),
 * setxattr, seal, and orphans: a file held open and unlinked (it stays on
 * the in-core list until its handle goes, a later operation).
 * Returns how many of each operation ran (attempts, failed ones included).
 * `after` runs after each operation (the harness records file versions).
 */
export async function workload(f: PmemFs, seed: number, ops: number, after: (op: string) => void): Promise<Map<string, number>> {
  const done = new Map<string, number>();
  const r = rng(seed);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)];
  const seals = new SealManager(f, 1000, LOG);
  f.seals = seals;
  const dirs = ['/', '/a', '/b'];
  const files = (): string[] => [...snapshot(f)].filter(([, n]) => n.type === 'f').map(([p]) => p);
  const name = () => `${pick(dirs)}/n${Math.floor(r() * 40)}`.replace('//', '/');
  const data = (n: number) => Buffer.alloc(n, Math.floor(r() * 255) + 1);
  const put = (p: string, off: number, b: Buffer) => {
    const h = f.open(p, C.O_RDWR, ROOT_CALLER);
    try { f.write(h.fh, p, b, b.length, off); } finally { f.release(h.fh); }
  };
  const held: number[] = [];
  for (const d of ['/a', '/b']) f.mkdir(d, 0o755, ROOT_CALLER);
  after('mkdir');
  for (let i = 0; i < ops; i++) {
    const x = r();
    let op = '';
    try {
      if (x < 0.14) { op = 'create'; const p = name(); const h = f.create(p, 0o644, C.O_RDWR, ROOT_CALLER); const b = data(Math.floor(r() * 5 * BS) + 1); f.write(h.fh, p, b, b.length, 0); f.release(h.fh); }
      else if (x < 0.22) { op = 'append'; const p = pick(files()); if (p) put(p, f.getattr(p).size, data(Math.floor(r() * 2 * BS) + 1)); }
      else if (x < 0.30) { op = 'overwrite'; const p = pick(files()); if (p) put(p, Math.floor(r() * f.getattr(p).size), data(Math.floor(r() * BS) + 1)); }
      else if (x < 0.36) { op = 'truncate'; const p = pick(files()); if (p) await f.truncate(p, Math.floor(r() * 3 * BS)); }
      else if (x < 0.41) { op = 'punch'; const p = pick(files()); if (p) await f.fallocate(p, uapi.FALLOC_FL_PUNCH_HOLE | uapi.FALLOC_FL_KEEP_SIZE, Math.floor(r() * 2 * BS), BS + Math.floor(r() * 2 * BS)); }
      else if (x < 0.52) { op = 'fsync'; f.fsync(); }
      else if (x < 0.64) { op = 'rename'; const p = pick(files()); if (p) f.rename(p, name()); }
      else if (x < 0.70) { op = 'link'; const p = pick(files()); if (p) f.link(p, name()); }
      else if (x < 0.79) { op = 'unlink'; const p = pick(files()); if (p) f.unlink(p); }
      else if (x < 0.83) { op = 'mkdir'; f.mkdir(`${pick(dirs)}/d${Math.floor(r() * 6)}`.replace('//', '/'), 0o755, ROOT_CALLER); }
      else if (x < 0.86) { op = 'rmdir'; f.rmdir(`${pick(dirs)}/d${Math.floor(r() * 6)}`.replace('//', '/')); }
      else if (x < 0.88) { op = 'symlink'; f.symlink(`target-${i}`, name(), ROOT_CALLER); }
      else if (x < 0.93) {
        // As cp does inside one mount: a new name sharing every block, or a block range onto an existing file.
        op = 'reflink';
        const p = pick(files());
        if (p && r() < 0.6) {
          const q = name();
          f.release(f.create(q, 0o644, C.O_RDWR, ROOT_CALLER).fh);
          await f.remap(q, f.resolve(p), 0, 0, 0, false, ROOT_CALLER);
        } else if (p) {
          const q = pick(files());
          const blocks = Math.floor(f.getattr(p).size / BS);
          if (blocks > 0) await f.remap(q, f.resolve(p), 0, BS * Math.floor(r() * 3), BS * Math.min(blocks, 1 + Math.floor(r() * 2)), false, ROOT_CALLER);
        }
      }
      else if (x < 0.96) { op = 'setxattr'; const p = pick(files()); if (p) f.setxattr(p, `user.k${Math.floor(r() * 4)}`, data(Math.floor(r() * 600)), 0); }
      else if (x < 0.98) { op = 'seal'; const p = pick(files()); if (p) seals.seal(p, ROOT_CALLER); }
      else if (held.length < 3) { op = 'orphan'; const p = pick(files()); if (p) { held.push(f.open(p, C.O_RDONLY, ROOT_CALLER).fh); f.unlink(p); } }
      else { op = 'release orphan'; f.release(held.shift()!); }
    } catch (e) {
      if (!(e instanceof FsError)) throw e;   // EEXIST, ENOENT, ENOTEMPTY, ETXTBSY (sealed), EISDIR...: part of the game
    }
    done.set(op, (done.get(op) ?? 0) + 1);
    after(op);
  }
  for (const fh of held) {
    try { f.release(fh); } catch (e) { if (!(e instanceof FsError)) throw e; }   // EIO after a shutdown: the orphan stays listed
  }
  return done;
}

export interface CrashCheck {
  /** The namespace as of the last completed commit, and as of the commit being made (if any). */
  committed: Snap;
  committing: Snap | null;
  /** ino → every content the file had since the last commit (the durable one first). */
  versions: Map<number, Buffer[]>;
}

/**
 * Mount a crash image, compare it with what may be there, unmount it and
 * fsck it. Throws (expect) with the image path on a mismatch.
 */
export function checkCrashImage(img: string, c: CrashCheck, what: string): void {
  const m = mountRegion(img, OPTS, LOG);
  let snap: Snap;
  try {
    snap = snapshot(m.fs);
    const got = describeSnap(snap);
    const ok = got === describeSnap(c.committed) || (c.committing !== null && got === describeSnap(c.committing));
    if (!ok) {
      expect.fail(`${what}: namespace after recovery is neither the committed nor the committing one\n got:       ${got}\n committed: ${describeSnap(c.committed)}\n committing: ${c.committing ? describeSnap(c.committing) : '-'}`);
    }
    const full = (p: string) => snap.get(p)!;
    for (const [p, n] of snap) {
      if (n.type !== 'f') continue;
      const content = readAll(m.fs, n.ino);
      const vs = c.versions.get(n.ino) ?? [];
      for (let off = 0; off < content.length; off += BS) {
        const blk = content.subarray(off, off + BS);
        // A version longer than the recovered size counts by its prefix (data is not journaled:
        // an overwrite may reach the media while the size still comes from the older commit).
        const match = vs.some((v) => (v.length >= off + blk.length ? v.subarray(off, off + blk.length) : Buffer.concat([v.subarray(off), Buffer.alloc(Math.max(0, off + blk.length - Math.max(off, v.length)))])).equals(blk));
        if (!match) {
          const sum = (b: Buffer) => `${b.length}B [${[...new Set(b)].slice(0, 6).join(',')}]`;
          expect.fail(`${what}: ${p} (ino ${full(p).ino}, size ${n.size}) block at ${off} = ${sum(blk)} matches none of its ${vs.length} versions since the last commit: ${vs.map((v) => `len ${v.length} blk ${sum(v.subarray(off, off + BS))}`).join(' | ')}`);
        }
      }
    }
  } finally {
    unmountRegion(m);
  }
  const res = checkRegion(img, false);
  if (res.problems.length) expect.fail(`${what}: fsck -n after recovery and a clean unmount: ${res.problems.join('; ')}`);
  fs.rmSync(img, { force: true });
}

/**
 * A power cut now, every unflushed page lost: the crash image is written to
 * `img`, `release` runs (the caller's handles go; nothing of it reaches the
 * image), `m`'s region is closed without a clean unmount, and the image is
 * mounted (its recovery runs).
 */
export function remountAfterCut(m: Mounted, img: string, release: () => void = () => {}): Mounted {
  m.region.crashImage(img, () => true);
  release();
  m.region.close();
  return mountRegion(img, OPTS, LOG);
}
