/**
 * @file The pmemfs-io command table and its dispatcher. A command is a
 * `CommandDef` (name, usage, one-line help, getopt letters, operand count,
 * the perror label xfs_io prints for it) and a `run` that throws on failure.
 * `runCommand` parses one line, runs it, and turns a throw into the single
 * `LABEL: strerror` line on stderr. The native binding reaches commands only
 * through `IoContext.sys`, so all of this runs against a fake in tests.
 */
import { spawnSync } from 'node:child_process';
import { setTimeout as sleepMs } from 'node:timers/promises';
import { dataCommands } from './cmd-data.js';
import { pmemCommands } from './cmd-pmem.js';
import { errorLine } from './format.js';
import type { IoShim } from './ioctls.js';
import { checkArgCount, getopt, tokenize, UsageError, type OptSpec, type ParsedArgs } from './parse.js';

export interface IoContext {
  /** the open file, or -1 when pmemfs-io was started without one */
  fd: number;
  path: string;
  readOnly: boolean;
  sys: IoShim;
  out(text: string): void;
  err(text: string): void;
  sleep(ms: number): Promise<void>;
  /** value of an xattr by name (getfattr), null when unavailable */
  readXattr(path: string, name: string): string | null;
  /** objects that must stay alive until exit: direct mappings */
  keep: unknown[];
}

export type CommandOutcome = void | 'quit';

export interface CommandDef {
  name: string;
  aliases?: readonly string[];
  /** operands and options, as in `help` (`[-S seed] off len`) */
  usage: string;
  /** one line, as in `help` */
  help: string;
  opts?: OptSpec;
  /** [min, max] operand count after options */
  args: readonly [number, number];
  /** what a system error is reported as (xfs_io's perror() name); default: name */
  label?: string;
  /** false for commands that work without an open file */
  needsFile?: boolean;
  run(ctx: IoContext, a: ParsedArgs): CommandOutcome | Promise<CommandOutcome>;
}

const builtin: CommandDef[] = [
  {
    name: 'help', aliases: ['?'], usage: '[command]', help: 'help for one or all commands',
    args: [0, 1], needsFile: false,
    run(ctx, a) {
      if (a.rest.length === 0) {
        ctx.out(helpText());
        return;
      }
      const def = findCommand(a.rest[0]);
      if (!def) throw new UsageError(`command ${a.rest[0]} not found`);
      ctx.out(helpLine(def));
    },
  },
  {
    name: 'quit', aliases: ['q', 'exit'], usage: '', help: 'exit the program',
    args: [0, 0], needsFile: false,
    run: () => 'quit',
  },
];

export const COMMANDS: readonly CommandDef[] = [...dataCommands, ...pmemCommands, ...builtin]
  .sort((x, y) => x.name.localeCompare(y.name));

export function findCommand(name: string): CommandDef | undefined {
  return COMMANDS.find((c) => c.name === name || c.aliases?.includes(name));
}

export function helpLine(def: CommandDef): string {
  return `${def.name}${def.usage ? ' ' + def.usage : ''} -- ${def.help}\n`;
}

export function helpText(): string {
  return COMMANDS.map(helpLine).join('') + '\nOffsets and lengths are bytes; k/m/g/t suffixes and 0x hex are accepted.\n';
}

export interface RunResult { ok: boolean; quit: boolean }

/**
 * Run one command line. Failures are reported on ctx.err and returned, never
 * thrown: the caller decides whether to stop (-c) or go on (prompt).
 */
export async function runCommand(ctx: IoContext, line: string): Promise<RunResult> {
  let words: string[];
  try {
    words = tokenize(line);
  } catch (e) {
    ctx.err(errorLine('pmemfs-io', e) + '\n');
    return { ok: false, quit: false };
  }
  if (words.length === 0) return { ok: true, quit: false };
  const def = findCommand(words[0]);
  if (!def) {
    ctx.err(`command "${words[0]}" not found\n`);
    return { ok: false, quit: false };
  }
  try {
    const parsed = getopt(def.name, words.slice(1), def.opts ?? {});
    checkArgCount(def.name, parsed.rest.length, def.args[0], def.args[1]);
    if (def.needsFile !== false && ctx.fd < 0) throw new UsageError(`${def.name}: no file is open`);
    const outcome = await def.run(ctx, parsed);
    return { ok: true, quit: outcome === 'quit' };
  } catch (e) {
    ctx.err(errorLine(def.label ?? def.name, e) + '\n');
    return { ok: false, quit: false };
  }
}

/** A context for tests and for main(): stdout/stderr, real sleep, getfattr. */
export function defaultContext(fields: Pick<IoContext, 'fd' | 'path' | 'readOnly' | 'sys'> & Partial<IoContext>): IoContext {
  return {
    out: (s) => { process.stdout.write(s); },
    err: (s) => { process.stderr.write(s); },
    sleep: async (ms) => { await sleepMs(ms); },
    readXattr: getfattrValue,
    keep: [],
    ...fields,
  };
}

/**
 * Node has no getxattr(2); getfattr(1) is the portable way to read one.
 * With --only-values the value comes back raw, without a newline.
 */
export function getfattrValue(path: string, name: string): string | null {
  const r = spawnSync('getfattr', ['--only-values', '-n', name, '--', path], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return !r.error && r.status === 0 ? r.stdout : null;
}
