/**
 * @file MAP_DIRECT emulation for applications: map a pmemfs file's bytes
 * straight from the region file, so loads and stores reach the emulated
 * persistent memory without the FUSE daemon in the path.
 *
 * The block map must not move while mapped, so mapDirect first takes a
 * lease (PMEMFS_IOC_LEASE: fills holes, then refuses every layout change
 * with ETXTBSY until released), then asks GETBMAP where each byte lives and
 * mmaps those region ranges MAP_SHARED. The lease belongs to this process
 * and lives on the file descriptor kept open here; release() drops it.
 *
 * Caveats: buffers stay mapped until they are
 * garbage collected — do not touch them after release(), as MAP_DIRECT
 * forbids access after the lease goes. A lease break arrives as SIGIO, whose
 * default action terminates the process (which also drops the lease): pass
 * `onBreak` to be told instead, then release within the lease-break time.
 */
import * as fs from 'node:fs';
import { getBmap, regionInfo, errnoError, type IoShim, type RegionInfo } from './cli/io/ioctls.js';
import { loadNative } from './native.js';
import { fileOff, regionOff, type FileOff, type RegionOff } from './types.js';
import * as uapi from './uapi.js';

const PAGE_SIZE = 4096;

/** One mapped piece: file bytes [fileOff, fileOff+len) live at region bytes [phys, phys+len). */
export interface DirectExtent { fileOff: FileOff; len: number; phys: RegionOff }

export interface DirectMapping {
  /** one Buffer per extent, in file order; buffers[i] maps extents[i] */
  buffers: Buffer[];
  extents: DirectExtent[];
  region: RegionInfo;
  /** drop the lease and close the file; idempotent */
  release(): void;
}

export interface MapDirectOptions {
  /** the native binding (tests inject a fake); default loadNative() */
  shim?: IoShim;
  /** called on SIGIO (lease break); without it SIGIO keeps its default action */
  onBreak?: () => void;
}

/**
 * Lease the file at `path` and map file bytes [off, off+len) from the region.
 * len 0 maps up to EOF.
 * @throws Error with .code: EINVAL (bad range), ENXIO (beyond EOF), and the
 *   lease / ioctl / open / mmap errors (EOPNOTSUPP on a dax=never mount)
 */
export async function mapDirect(path: string, off: number, len: number, opts: MapDirectOptions = {}): Promise<DirectMapping> {
  if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0) {
    throw errnoError('EINVAL', 'mapdirect', `bad range offset ${off} length ${len}`);
  }
  const sys = opts.shim ?? loadNative();
  const fd = fs.openSync(path, fs.constants.O_RDWR);
  let leased = false;
  const onSigio = () => opts.onBreak?.();
  try {
    if (opts.onBreak) process.on('SIGIO', onSigio);
    sys.ioctl(fd, uapi.PMEMFS_IOC_LEASE, null);
    leased = true;
    const region = regionInfo(sys, fd);
    const extents = directExtents(sys, fd, off, len);
    const buffers = mapExtents(region.path, extents);
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      dropLease(sys, fd, onSigio);
    };
    return { buffers, extents, region, release };
  } catch (e) {
    if (leased) {
      try { dropLease(sys, fd, onSigio); } catch { /* the first error matters */ }
    } else {
      process.off('SIGIO', onSigio);
      fs.closeSync(fd);
    }
    throw e;
  }
}

function dropLease(sys: IoShim, fd: number, onSigio: () => void): void {
  process.off('SIGIO', onSigio);
  try {
    sys.ioctl(fd, uapi.PMEMFS_IOC_UNLEASE, null);
  } catch (e) {
    // EINVAL: already revoked after a break — nothing left to drop.
    if ((e as { code?: string }).code !== 'EINVAL') throw e;
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Where [off, off+len) lives, merged into physically contiguous extents.
 * Under a lease every byte inside EOF is mapped and written; a hole or an
 * unwritten extent here means the daemon broke that promise.
 */
export function directExtents(sys: IoShim, fd: number, off: number, len: number): DirectExtent[] {
  const { records, fsize } = getBmap(sys, fd, off, len === 0 ? Infinity : off + len);
  const end = len === 0 ? fsize : off + len;
  if (end > fsize || off >= end) throw errnoError('ENXIO', 'mapdirect', `range [${off}, ${end}) is not inside EOF ${fsize}`);
  const out: DirectExtent[] = [];
  for (const r of records) {
    const s = Math.max(off, r.fileOff), e = Math.min(end, r.fileOff + r.len);
    if (e <= s) continue;
    if (r.phys === null || r.flags & (uapi.BMAP_F_HOLE | uapi.BMAP_F_UNWRITTEN)) {
      throw errnoError('EIO', 'mapdirect', `file offset ${s} is not mapped under the lease`);
    }
    const phys = r.phys + (s - r.fileOff);
    const last = out[out.length - 1];
    if (last && last.fileOff + last.len === s && last.phys + last.len === phys) last.len += e - s;
    else out.push({ fileOff: fileOff(s), len: e - s, phys: regionOff(phys) });
  }
  const covered = out.reduce((n, x) => n + x.len, 0);
  if (covered !== end - off) throw errnoError('EIO', 'mapdirect', `block map covers ${covered} of ${end - off} bytes`);
  return out;
}

/** mmap each extent MAP_SHARED from the region file; offsets rounded down to a page. */
function mapExtents(regionPath: string, extents: readonly DirectExtent[]): Buffer[] {
  const rfd = fs.openSync(regionPath, fs.constants.O_RDWR);
  try {
    return extents.map((x) => {
      const base = x.phys - (x.phys % PAGE_SIZE);
      const lead = x.phys - base;
      const whole = loadNative().mmap(rfd, base, lead + x.len, true);
      return whole.subarray(lead, lead + x.len);
    });
  } finally {
    fs.closeSync(rfd); // a mapping outlives its descriptor
  }
}
