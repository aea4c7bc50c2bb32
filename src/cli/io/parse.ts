/**
 * @file Parsing for pmemfs-io command lines, xfs_io style: a tokenizer for
 * `-c` strings and prompt lines (quotes and backslashes), cvtnum-like numbers
 * (0x hex, k/m/g/t/p/e binary suffixes, `s` for 512-byte sectors), and a
 * small permuting getopt so options may follow the operands (`dma 0 1m -t 2`).
 * Everything here is pure: no file, no native binding.
 */

/** Bad input to a command: printed as is, and the run stops like a failed syscall. */
export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

/**
 * Split a command line into words. Single quotes keep everything literal,
 * double quotes and bare words honour backslash escapes; `#` starts a comment
 * only at the beginning of a word.
 * @throws UsageError on an unterminated quote or a trailing backslash
 */
export function tokenize(line: string): string[] {
  const words: string[] = [];
  let cur = '', inWord = false, i = 0;
  while (i < line.length) {
    const c = line[i];
    if (/\s/.test(c)) {
      if (inWord) { words.push(cur); cur = ''; inWord = false; }
      i++;
    } else if (c === '#' && !inWord) {
      break;
    } else if (c === "'" || c === '"') {
      const end = findClosingQuote(line, i);
      const body = line.slice(i + 1, end);
      cur += c === "'" ? body : unescape(body);
      inWord = true;
      i = end + 1;
    } else if (c === '\\') {
      if (i + 1 >= line.length) throw new UsageError('trailing backslash in command line');
      cur += line[i + 1];
      inWord = true;
      i += 2;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

function findClosingQuote(line: string, open: number): number {
  const q = line[open];
  for (let j = open + 1; j < line.length; j++) {
    if (q === '"' && line[j] === '\\') { j++; continue; }
    if (line[j] === q) return j;
  }
  throw new UsageError(`unterminated ${q === '"' ? 'double' : 'single'} quote in command line`);
}

function unescape(s: string): string {
  return s.replace(/\\(.)/g, '$1');
}

const SUFFIX: Readonly<Record<string, number>> = {
  '': 1, s: 512, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50, e: 2 ** 60,
};

/**
 * A byte count or offset like xfs_io's cvtnum: decimal or 0x hex, optional
 * suffix k/m/g/t/p/e (binary) or s (512 bytes), case-insensitive.
 * @throws UsageError in xfs_io's words: `non-numeric offset argument -- 1z`
 */
export function parseNum(s: string, what: string): number {
  const m = /^(0x[0-9a-f]+|\d+)([skmgtpe]?)$/i.exec(s);
  if (!m) throw new UsageError(`non-numeric ${what} argument -- ${s}`);
  const base = m[1].toLowerCase().startsWith('0x') ? parseInt(m[1].slice(2), 16) : Number(m[1]);
  const v = base * SUFFIX[m[2].toLowerCase()];
  if (!Number.isSafeInteger(v)) throw new UsageError(`${what} argument too large -- ${s}`);
  return v;
}

/** Seconds, fractional allowed (`sleep 0.25`). */
export function parseSeconds(s: string, what = 'seconds'): number {
  if (!/^(\d+(\.\d*)?|\.\d+)$/.test(s)) throw new UsageError(`non-numeric ${what} argument -- ${s}`);
  return Number(s);
}

/** A seed / pattern byte: 0..255, decimal or 0x hex (`pwrite -S 0x41`). */
export function parseByte(s: string, what = 'seed'): number {
  const m = /^(0x[0-9a-f]+|\d+)$/i.exec(s);
  const v = m ? Number(s.toLowerCase().startsWith('0x') ? parseInt(s.slice(2), 16) : s) : NaN;
  if (!(v >= 0 && v <= 255)) throw new UsageError(`invalid ${what} -- ${s} (expected a byte, 0..0xff)`);
  return v;
}

/**
 * A DMA pattern: `0x5a` is one byte, `0xdeadbeef` the bytes de ad be ef
 * (an odd digit count is padded on the left), anything else its UTF-8 bytes.
 */
export function parsePattern(s: string): Buffer {
  if (s.length === 0) throw new UsageError('empty pattern');
  const m = /^0x([0-9a-f]+)$/i.exec(s);
  if (!m) return Buffer.from(s, 'utf8');
  const hex = m[1].length % 2 ? '0' + m[1] : m[1];
  return Buffer.from(hex, 'hex');
}

/** Option letters a command takes: a flag, or one that needs a value. */
export type OptSpec = Readonly<Record<string, 'flag' | 'value'>>;

export interface ParsedArgs {
  opts: Map<string, string | true>;
  rest: string[];
}

/**
 * getopt with GNU permutation: options may come before, between or after
 * operands; `-kq` groups flags; `-S0x41` and `-S 0x41` both work; `--` ends
 * options. A word that is exactly `-` is an operand.
 * @throws UsageError for an unknown option or a missing value
 */
export function getopt(cmd: string, args: readonly string[], spec: OptSpec): ParsedArgs {
  const opts = new Map<string, string | true>();
  const rest: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') { rest.push(...args.slice(i + 1)); break; }
    if (!a.startsWith('-') || a === '-') { rest.push(a); continue; }
    for (let j = 1; j < a.length; j++) {
      const letter = a[j];
      const kind = spec[letter];
      if (kind === undefined) throw new UsageError(`${cmd}: invalid option -- '${letter}'`);
      if (kind === 'flag') { opts.set(letter, true); continue; }
      const inline = a.slice(j + 1);
      if (inline) { opts.set(letter, inline); break; }
      if (i + 1 >= args.length) throw new UsageError(`${cmd}: option requires an argument -- '${letter}'`);
      opts.set(letter, args[++i]);
      break;
    }
  }
  return { opts, rest };
}

/** xfs_io's wording (libxcmd bad_argcount) when the operand count is wrong. */
export function checkArgCount(cmd: string, n: number, min: number, max: number): void {
  if (n >= min && n <= max) return;
  const expected = max === Infinity ? `at least ${min}` : min === max ? `${min}` : `between ${min} and ${max}`;
  throw new UsageError(`bad argument count ${n} to ${cmd}, expected ${expected} arguments`);
}
