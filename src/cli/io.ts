/**
 * @file pmemfs-io: an xfs_io-like tool for what standard tools cannot reach
 * on pmemfs (seals, leases, pins, the block map, DMA and MAP_DIRECT
 * emulation) plus xfs_io's everyday data commands.
 *
 *   pmemfs-io [-c CMD]... [-r] [-f] FILE
 *
 * Runs each -c command in order and stops at the first failure with
 * `CMD: strerror` on stderr and exit status 1 (xfs_io reports the same line
 * but carries on; the pmemfs contract asks to stop). Without -c it reads
 * commands from stdin at a `pmemfs-io> ` prompt until EOF or `quit`.
 * Leases and pins taken here last until pmemfs-io exits.
 */
import { Command } from 'commander';
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import { loadNative } from '../native.js';
import { defaultContext, helpText, runCommand, type IoContext } from './io/commands.js';
import { errorLine } from './io/format.js';
import { version } from './common.js';

const PROG = 'pmemfs-io';

interface IoOptions { command?: string[]; read?: boolean; file?: boolean; sync?: boolean; trunc?: boolean; expert?: boolean }

export async function main(argv: string[]): Promise<void> {
  const cli = new Command(PROG)
    .description('xfs_io-like tool for pmemfs files: data commands, seals, leases, pins, block maps')
    .usage('[-c cmd]... [-r] [-f] file')
    .argument('[file]', 'file to open')
    .option('-c, --command <cmd>', 'run this command (repeatable, in order); none: interactive prompt', collect)
    .option('-r, --read', 'open read-only')
    .option('-f, --file', 'create the file if it does not exist')
    .option('-s, --sync', 'open with O_SYNC')
    .option('-t, --trunc', 'open with O_TRUNC')
    .option('-x, --expert', 'accepted for xfs_io compatibility; no effect')
    .version(version(), '-V, --version')
    .addHelpText('after', '\nCommands:\n' + helpText().replace(/^(?=.)/gm, '  '))
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    cli.parse(argv, { from: 'user' });
  } catch (e) {
    process.exitCode = (e as { exitCode?: number }).exitCode ?? 1;
    return;
  }
  const o = cli.opts<IoOptions>();
  const path = cli.args[0] as string | undefined;
  let fd = -1;
  if (path !== undefined) {
    try {
      fd = fs.openSync(path, openFlags(o), 0o666);
    } catch (e) {
      process.stderr.write(errorLine(path, e) + '\n');
      process.exitCode = 1;
      return;
    }
  }
  const ctx = defaultContext({ fd, path: path ?? '', readOnly: !!o.read, sys: loadNative() });
  const ok = o.command ? await runBatch(ctx, o.command) : await runPrompt(ctx);
  process.exitCode = ok ? 0 : 1;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function openFlags(o: IoOptions): number {
  const c = fs.constants;
  let flags = o.read ? c.O_RDONLY : c.O_RDWR;
  if (o.file) flags |= c.O_CREAT;
  if (o.sync) flags |= c.O_SYNC;
  if (o.trunc) flags |= c.O_TRUNC;
  return flags;
}

/** The -c commands, in order, stopping at the first failure or `quit`. */
async function runBatch(ctx: IoContext, commands: readonly string[]): Promise<boolean> {
  for (const line of commands) {
    const r = await runCommand(ctx, line);
    if (!r.ok) return false;
    if (r.quit) break;
  }
  return true;
}

/** Commands from stdin; a failure is reported and the prompt goes on (exit 1 at the end, like xfs_io). */
async function runPrompt(ctx: IoContext): Promise<boolean> {
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: !!process.stdin.isTTY });
  rl.setPrompt(`${PROG}> `);
  let ok = true;
  rl.prompt();
  for await (const line of rl) {
    const r = await runCommand(ctx, line);
    ok &&= r.ok;
    if (r.quit) break;
    rl.prompt();
  }
  rl.close();
  return ok;
}
