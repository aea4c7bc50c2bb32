/**
 * @file Output of pmemfs-io, matching xfs_io where xfs_io has a form: the
 * `wrote N/N bytes at offset O` lines with their timing line (libfrog's
 * cvtstr quirks included, so xfstests' _filter_xfs_io applies), the `-v`
 * hexdump, `bmap` short and verbose tables, `stat` lines, and `CMD: strerror`
 * error lines. Pure functions of their inputs.
 */
import * as uapi from '../../uapi.js';
import type { BmapRecord, FsXattr } from './ioctls.js';
import { isErrnoName, strerror } from './strerror.js';
import { UsageError } from './parse.js';

/** xfs_io's dump_buffer: 16 bytes a line, offsets absolute, alnum shown, rest '.'. */
export function hexdump(buf: Buffer, offset: number): string {
  let out = '';
  for (let i = 0; i < buf.length; i += 16) {
    const line = buf.subarray(i, i + 16);
    let hex = '', text = '';
    for (const b of line) {
      hex += b.toString(16).padStart(2, '0') + ' ';
      text += isAlnum(b) ? String.fromCharCode(b) : '.';
    }
    out += `${(offset + i).toString(16).padStart(8, '0')}:  ${hex} ${text}\n`;
  }
  return out;
}

function isAlnum(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a);
}

const UNITS: ReadonlyArray<[string, number]> = [
  ['EiB', 2 ** 60], ['PiB', 2 ** 50], ['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10],
];

/**
 * libfrog cvtstr: "%.f UNIT" when the *value* is integral, else "%.3f UNIT";
 * under 1 KiB "%f bytes". (So 1500 bytes prints "1 KiB", as xfs_io does.)
 */
export function cvtstr(value: number): string {
  if (!Number.isFinite(value)) return `${Number.isNaN(value) ? '-nan' : 'inf'} bytes`;
  const precise = Number.isInteger(value);
  for (const [name, size] of UNITS) {
    if (value >= size) return `${(value / size).toFixed(precise ? 0 : 3)} ${name}`;
  }
  return `${value.toFixed(6)} bytes`;
}

/** `wrote 4096/4096 bytes at offset 0` (verb: wrote, read, linked). */
export function ioLine(verb: string, done: number, asked: number, offset: number): string {
  return `${verb} ${done}/${asked} bytes at offset ${offset}\n`;
}

/** xfs_io's report_io_times line: `4 KiB, 1 ops; 0.0000 sec (37.202 MiB/sec and 9523.8095 ops/sec)`. */
export function timingLine(bytes: number, ops: number, seconds: number): string {
  const rate = ops === 0 ? NaN : bytes / seconds;
  const opsRate = ops === 0 ? '-nan' : (ops / seconds).toFixed(4);
  return `${cvtstr(bytes)}, ${ops} ops; ${seconds.toFixed(4)} sec (${cvtstr(rate)}/sec and ${opsRate} ops/sec)\n`;
}

// ---------------------------------------------------------------- bmap

const FLAG_WORDS: ReadonlyArray<[number, string]> = [
  [uapi.BMAP_F_UNWRITTEN, 'unwritten'], [uapi.BMAP_F_SHARED, 'shared'], [uapi.BMAP_F_SEALED, 'sealed'],
];

/** Words for a record's flags: `hole`, `unwritten,shared`, or `-` for a plain written extent. */
export function bmapFlagWords(flags: number): string {
  const words = FLAG_WORDS.filter(([bit]) => flags & bit).map(([, w]) => w);
  if (flags & uapi.BMAP_F_HOLE) words.unshift('hole');
  return words.length ? words.join(',') : '-';
}

const sectors = (bytes: number) => Math.floor(bytes / 512);

/** `bmap` without -v: `\t0: [0..7]: 2048..2055` in 512-byte units, holes as `hole`. */
export function formatBmapShort(name: string, records: readonly BmapRecord[]): string {
  if (records.length === 0) return `${name}: no extents\n`;
  let out = `${name}:\n`;
  records.forEach((r, i) => {
    const file = `[${sectors(r.fileOff)}..${sectors(r.fileOff + r.len) - 1}]`;
    const where = r.phys === null ? 'hole' : `${sectors(r.phys)}..${sectors(r.phys + r.len) - 1}`;
    out += `\t${i}: ${file}: ${where}\n`;
  });
  return out;
}

/**
 * `bmap -v`, xfs_io's table adapted to a region: file and region offsets in
 * bytes, region block numbers, TOTAL in 512-byte units, flags as words.
 */
export function formatBmapVerbose(name: string, records: readonly BmapRecord[], blockSize: number): string {
  if (records.length === 0) return `${name}: no extents\n`;
  const rows = records.map((r, i) => [
    `${i}:`,
    `[${r.fileOff}..${r.fileOff + r.len - 1}]:`,
    r.phys === null ? 'hole' : `${r.phys}..${r.phys + r.len - 1}`,
    r.phys === null ? '' : `${Math.floor(r.phys / blockSize)}..${Math.ceil((r.phys + r.len) / blockSize) - 1}`,
    `${sectors(r.len)}`,
    bmapFlagWords(r.flags),
  ]);
  const head = ['EXT:', 'FILE-OFFSET', 'REGION-OFFSET', 'BLOCKS', 'TOTAL', 'FLAGS'];
  const width = head.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c].length)));
  const line = (cells: string[]) => ' ' + cells.map((cell, c) => {
    if (c === 5) return cell;
    return c === 0 || c === 4 ? cell.padStart(width[c]) : cell.padEnd(width[c]);
  }).join(' ') + '\n';
  return `${name}:\n` + line(head) + rows.map(line).join('');
}

// ---------------------------------------------------------------- stat

const XFLAG_NAMES: ReadonlyArray<[number, string]> = [
  [0x00000001, 'realtime'], [0x00000002, 'prealloc'], [0x00000008, 'immutable'],
  [0x00000010, 'append-only'], [0x00000020, 'sync'], [0x00000040, 'no-atime'],
  [0x00000080, 'no-dump'], [uapi.FS_XFLAG_DAX, 'dax'], [uapi.PMEMFS_XFLAG_SEALED, 'sealed'],
];

/** `0x28000 [dax, sealed]`, xfs_io's verbose form; unknown bits in hex. */
export function formatXflags(xflags: number): string {
  const names = XFLAG_NAMES.filter(([bit]) => xflags & bit).map(([, n]) => n);
  const known = XFLAG_NAMES.reduce((m, [bit]) => m | bit, 0);
  const unknown = (xflags & ~known) >>> 0;
  if (unknown) names.push(`0x${unknown.toString(16)}`);
  return `0x${(xflags >>> 0).toString(16)} [${names.join(', ')}]`;
}

/** Fields of the `user.pmemfs.state` line (`sealed=none pins=0 ...`), in order. */
export function parseStateLine(line: string): Array<[string, string]> {
  return line.trim().split(/\s+/).filter(Boolean).map((kv) => {
    const eq = kv.indexOf('=');
    return eq < 0 ? [kv, ''] as [string, string] : [kv.slice(0, eq), kv.slice(eq + 1)] as [string, string];
  });
}

export interface StatInfo {
  path: string;
  readOnly: boolean;
  ino: number | bigint;
  type: string;
  size: number;
  blocks: number;
  fsx: FsXattr | null;
  state: string | null;
}

export function formatStat(s: StatInfo): string {
  let out = `fd.path = "${s.path}"\n`;
  out += `fd.flags = non-sync,non-direct,${s.readOnly ? 'read-only' : 'read-write'}\n`;
  out += `stat.ino = ${s.ino}\nstat.type = ${s.type}\nstat.size = ${s.size}\nstat.blocks = ${s.blocks}\n`;
  // The kernel's fileattr path (6.x) drops xflag bits it does not know, so the
  // sealed bit never reaches us there: the seal comes from pmemfs's own state.
  const seal = s.state === null ? undefined : parseStateLine(s.state).find(([k]) => k === 'sealed')?.[1];
  if (s.fsx) out += `fsxattr.xflags = ${formatXflags(s.fsx.xflags)}${seal ? ` sealed=${seal}` : ''}\nfsxattr.nextents = ${s.fsx.nextents}\n`;
  if (s.state !== null) for (const [k, v] of parseStateLine(s.state)) out += `${k} = ${v}\n`;
  return out;
}

/** One `lsattr` line: `0x8000 [dax] sealed=persistent PATH` (the seal from the state line, as in stat). */
export function formatLsattr(path: string, fsx: FsXattr | null, state: string | null): string {
  const seal = state === null ? 'unknown' : parseStateLine(state).find(([k]) => k === 'sealed')?.[1] ?? 'unknown';
  return `${fsx ? formatXflags(fsx.xflags) : '(no fsxattr)'} sealed=${seal} ${path}\n`;
}

// ---------------------------------------------------------------- errors

/** A failure reported under another name than the command's (`/src: No such file or directory`). */
export class LabelledError extends Error {
  constructor(readonly label: string, readonly inner: unknown) {
    super(`${label}: ${(inner as Error)?.message ?? String(inner)}`);
    this.name = 'LabelledError';
  }
}

/** Run fn; report what it throws as `label: ...`. */
export function labelled<T>(label: string, fn: () => T): T {
  try { return fn(); } catch (e) { throw new LabelledError(label, e); }
}

/**
 * The line a failed command leaves on stderr: perror style
 * (`pwrite: Text file busy`) for errno errors, the message itself for bad
 * usage, `label: message` for anything else.
 */
export function errorLine(label: string, err: unknown): string {
  if (err instanceof UsageError) return err.message;
  if (err instanceof LabelledError) return errorLine(err.label, err.inner);
  const e = err as { code?: unknown; errno?: unknown; message?: unknown };
  if (e && isErrnoName(e.code)) return `${label}: ${strerror(e.code)}`;
  if (e && typeof e.errno === 'number' && typeof e.code === 'string' && /^E[A-Z0-9]+$/.test(e.code)) {
    return `${label}: ${strerror(e.code, e.errno)}`;
  }
  return `${label}: ${e && typeof e.message === 'string' ? e.message : String(err)}`;
}
