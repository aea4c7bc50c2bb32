/**
 * @file pmemfs: the daemon. `pmemfs REGION MOUNTPOINT [-o OPTS] [-f]`.
 *
 * Start-up checks everything a user can get wrong before touching the
 * region, each failure one line naming the problem and the fix: options,
 * /dev/fuse, libfuse, the mount point (missing, not a directory, busy, not
 * empty), the region (missing, foreign, truncated, corrupted) and its lock.
 *
 * Without -f it re-executes itself in the foreground in a new session and
 * exits 0 only when the child reports the mount live (over a pipe), or
 * non-zero with the child's message; the checks and everything else run in
 * the child (src/cli/serve.ts, loaded only there), so the parent is a Node.js
 * start and a spawn, not two starts of the whole daemon. It ends on SIGINT/SIGTERM (unmounting)
 * or when someone unmounts it (umount/fusermount -u), flushing everything and
 * marking the region clean.
 */
import { spawn } from 'node:child_process';
import { resolve as resolvePath } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LevelWithSilent } from 'pino';
import type { ServiceOptions } from '../service.js';
import { CliError, runMain, version } from './common.js';

const PROG = 'pmemfs';
const USAGE = `usage: pmemfs REGION MOUNTPOINT [-o OPT[,OPT...]] [-f]

Serve the pmemfs region file REGION at MOUNTPOINT.

  -f               stay in the foreground (default: detach once mounted)
  -o OPTS          comma-separated mount options:
     dax=always|never     always: no page cache, I/O straight to the region (default; MAP_SHARED
                          mmap of files needs Linux 6.6 or later, else it fails with ENODEV)
                          never: kernel page cache, client mmap works on any kernel
     busy=refuse|wait     layout change over pinned pages: ETXTBSY at once (default), or wait
     busy_timeout=MS      with busy=wait, give up after MS ms with ETXTBSY (default 30000)
     lease_break=SECONDS  grace before a broken lease is revoked (default 45)
     commit=SECONDS       background journal commit interval (default 5; 0 means 5)
     nopowerfail          do not record unflushed stores (the default records them, so that
                          'echo powerfail [SEED] > MNT/.pmemfs/ctl' can emulate a power failure;
                          recording costs a page copy per first store between commits)
     powerfail_at=N       (needs recording: not with nopowerfail) the power fails at the Nth persistence point since the
                          region was opened (seq= in .pmemfs/stats counts them); powerfail_seed=S
                          keeps a reproducible random half of the unflushed pages
     flush_fail_at=N      the flush of the Nth persistence point fails as a medium error would (EIO):
                          the filesystem shuts down (every change and fsync then fails with EIO)
     poll_us=N            after the request queue runs dry, look for the next request for up to
                          N microseconds before sleeping (default 50; 0 never): saves a wakeup per
                          request for synchronous clients, costs at most N µs of CPU per idle spell
     noidle_poll          while the daemon is busy, do not keep CPUs from halting (the default
                          does, with threads at idle priority: one on another CPU while a client
                          waits, one on the daemon's own while it waits in a host flush, so that
                          neither a reply nor a flush's end has to wake a halted CPU; on one CPU
                          there is nothing to do)
     check                load and cross-check every inode at mount (what fsck.pmemfs -n checks),
                          refusing a damaged region; default: inodes are read when first used,
                          so mount time does not grow with the file count
     inode_cache=N        in-core inodes kept once the kernel forgets them (default 65536)
     allow_other          let other users access the mount
     default_permissions  kernel permission checks (always on)
     ro                   read-only
     log=LEVEL            trace|debug|info|warn|error|fatal|silent (default info)
     log_file=PATH        JSON log lines to PATH (default stderr; detached: none)
  -h, --help       this text
  -V, --version    the version

Unmount with 'umount MOUNTPOINT' or 'fusermount3 -u MOUNTPOINT'.
A non-root user mounts a region they own through the setuid fusermount3.
`;

const IGNORED = new Set(['rw', 'dev', 'nodev', 'suid', 'nosuid', 'exec', 'noexec', 'atime', 'noatime', 'relatime',
  'nodiratime', 'async', 'auto', 'noauto', 'user', 'nouser', 'users', 'defaults', '_netdev', 'nofail', 'default_permissions']);

export interface DaemonArgs {
  region: string; mnt: string; foreground: boolean; pollUs: number; idlePoll: boolean;
  svc: ServiceOptions; allowOther: boolean; logLevel: LevelWithSilent; logFile?: string;
}

/** Parse argv (mount.fuse style: options may come before or after the operands). */
export function parseArgs(argv: string[]): DaemonArgs | 'help' | 'version' {
  const pos: string[] = [];
  const opts: string[] = [];
  let foreground = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '-h' || a === '--help') return 'help';
    if (a === '-V' || a === '--version') return 'version';
    if (a === '-f') foreground = true;
    else if (a === '-o') { if (i + 1 >= argv.length) throw new CliError('-o needs an option list'); opts.push(...argv[++i].split(',')); }
    else if (a.startsWith('-o') && a.length > 2) opts.push(...a.slice(2).split(','));
    else if (a.startsWith('-') && a !== '-') throw new CliError(`unknown flag '${a}' (see pmemfs --help)`);
    else pos.push(a);
  }
  if (pos.length !== 2) throw new CliError(`expected REGION and MOUNTPOINT, got ${pos.length} operand(s) (see pmemfs --help)`);
  const r: DaemonArgs = {
    region: resolvePath(pos[0]), mnt: resolvePath(pos[1]), foreground, pollUs: 50, idlePoll: true, allowOther: false, logLevel: 'info',
    svc: { dax: 'always', busy: 'refuse', busyTimeoutMs: 30000, leaseBreakMs: 45000, readOnly: false, commitMs: 5000, powerfail: true },
  };
  const int = (k: string, v: string, min: number, max: number) => {
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new CliError(`mount option ${k}=${v}: expected an integer from ${min} to ${max}`);
    return Number(v);
  };
  for (const o of opts.filter(Boolean)) {
    const [k, v = ''] = o.split(/=(.*)/s, 2);
    if (IGNORED.has(k) || k.startsWith('x-')) continue;
    switch (k) {
      case 'dax': if (v !== 'always' && v !== 'never') throw new CliError(`mount option dax=${v}: use dax=always or dax=never`); r.svc.dax = v; break;
      case 'busy': if (v !== 'refuse' && v !== 'wait') throw new CliError(`mount option busy=${v}: use busy=refuse or busy=wait`); r.svc.busy = v; break;
      case 'busy_timeout': r.svc.busyTimeoutMs = int(k, v, 0, 86_400_000); break;
      case 'lease_break': r.svc.leaseBreakMs = int(k, v, 0, 86_400) * 1000; break;
      case 'commit': r.svc.commitMs = (int(k, v, 0, 86_400) || 5) * 1000; break;
      case 'powerfail': case 'nopowerfail':
        if (o.includes('=')) throw new CliError(`mount option ${k} takes no value`);
        r.svc.powerfail = k === 'powerfail'; break;
      case 'powerfail_at': r.svc.powerfailAt = int(k, v, 1, 2 ** 31); break;
      case 'flush_fail_at': r.svc.flushFailAt = int(k, v, 1, 2 ** 31); break;
      case 'powerfail_seed': r.svc.powerfailSeed = int(k, v, 0, 2 ** 32 - 1); break;
      case 'poll_us': r.pollUs = int(k, v, 0, 100_000); break;
      case 'idle_poll': case 'noidle_poll':
        if (o.includes('=')) throw new CliError(`mount option ${k} takes no value`);
        r.idlePoll = k === 'idle_poll'; break;
      case 'allow_other': r.allowOther = true; break;
      case 'check':
        if (o.includes('=')) throw new CliError('mount option check takes no value');
        r.svc.check = true; break;
      case 'inode_cache': r.svc.inodeCache = int(k, v, 16, 1 << 24); break;
      case 'ro': r.svc.readOnly = true; break;
      case 'log':
        if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(v)) throw new CliError(`mount option log=${v}: use trace, debug, info, warn, error, fatal or silent`);
        r.logLevel = v as LevelWithSilent; break;
      case 'log_file': if (!v) throw new CliError('mount option log_file needs a path'); r.logFile = resolvePath(v); break;
      default: throw new CliError(`unknown mount option '${k}' (see pmemfs --help for the list)`);
    }
  }
  if (r.svc.powerfailAt && !r.svc.powerfail) throw new CliError('mount option powerfail_at needs the recording that nopowerfail turns off: drop one of them');
  return r;
}

/** Detach: run ourselves with -f in a new session; wait for "ready" or an error line on fd 3. */
function detach(argv: string[]): Promise<number> {
  const script = process.argv[1] ?? fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [script, ...argv, '-f'], {
    detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe'], env: { ...process.env, PMEMFS_READY_FD: '3' },
  });
  return new Promise((resolve) => {
    let text = '';
    const pipe = child.stdio[3] as NodeJS.ReadableStream;
    pipe.setEncoding('utf8');
    pipe.on('data', (d: string) => { text += d; });
    pipe.on('end', () => {
      if (text.startsWith('ready')) { child.unref(); resolve(0); return; }
      process.stderr.write(`${PROG}: ${text.replace(/^error: /, '').trim() || 'the daemon exited before the mount was live'}\n`);
      resolve(1);
    });
  });
}

export async function main(argv: string[]): Promise<void> {
  await runMain(PROG, async () => {
    const a = parseArgs(argv);
    if (a === 'help') { process.stdout.write(USAGE); return 0; }
    if (a === 'version') { process.stdout.write(`pmemfs ${version()}\n`); return 0; }
    if (!a.foreground) return detach(argv);
    const d = await import('./serve.js');
    process.on('uncaughtException', d.onUncaught);
    try {
      d.preflight(a);
      return await d.serve(a);
    } catch (e) {
      d.notify(`error: ${(e as Error).message}`);
      throw e;
    }
  });
  // Handles (the uv_poll of a session, timers) may keep the loop alive after a clean stop.
  if (process.exitCode !== undefined) setTimeout(() => process.exit(), 50).unref();
}
