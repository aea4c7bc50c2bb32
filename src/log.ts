/**
 * @file The one root pino logger. Modules take a child ({ module }), requests a
 * grandchild ({ op, ino }). Untrusted strings (paths, names) go under one key,
 * never spread into the top level. Fatal lines are written synchronously so a
 * crash does not eat them.
 */
import { writeSync } from 'node:fs';
import pino, { type Logger, type LevelWithSilent } from 'pino';

let root: Logger = pino({ level: process.env.PMEMFS_LOG ?? 'info', base: { pid: process.pid } });

/**
 * Reconfigure the root logger (daemon start-up). dest: a file path, or
 * undefined for stderr. Children made before the call keep the old root.
 */
export function configureLog(level: LevelWithSilent, dest?: string): Logger {
  const stream = pino.destination({ dest: dest ?? 2, sync: false, mkdir: true });
  root = pino({ level, base: { pid: process.pid } }, stream);
  return root;
}

export function rootLog(): Logger { return root; }

/** A child logger for one subsystem, resolved at call time. */
export function moduleLog(module: string): Logger { return root.child({ module }); }

/** Write a fatal line synchronously, whatever the configured destination. */
export function fatalSync(msg: string, err?: unknown): void {
  const line = JSON.stringify({ level: 60, time: Date.now(), pid: process.pid, msg, err: err instanceof Error ? { message: err.message, stack: err.stack } : err });
  try { writeSync(2, line + '\n'); } catch { /* nothing left to report to */ }
}
