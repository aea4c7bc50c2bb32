/**
 * @file The foreground daemon (src/cli/daemon.ts loads it only there): the
 * start-up checks, each failure one line naming the problem and the fix, then
 * lock, mount and serve until unmounted or signalled.
 */
import * as fs from 'node:fs';
import { FormatError } from '../format/layout.js';
import { FuseSession } from '../fuse/session.js';
import { configureLog, fatalSync } from '../log.js';
import { loadNative } from '../native.js';
import { PmemService } from '../service.js';
import { procSourceResolver } from '../op/source-fd.js';
import { readSuperblock } from '../vfs/mount.js';
import { CliError, lockRegion } from './common.js';
import type { DaemonArgs } from './daemon.js';

/** Mounts currently at `dir` (from /proc/self/mountinfo), as "fstype source". */
function mountsAt(dir: string): string[] {
  let info = '';
  try { info = fs.readFileSync('/proc/self/mountinfo', 'utf8'); } catch { return []; }
  const unescape = (s: string) => s.replace(/\\(\d{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
  const out: string[] = [];
  for (const line of info.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (f.length < 10 || sep < 0) continue;
    if (unescape(f[4]) === dir) out.push(`${f[sep + 1]} ${unescape(f[sep + 2])}`);
  }
  return out;
}

/** Everything that can be checked before forking; each failure is one clear CliError. */
export function preflight(a: DaemonArgs): void {
  if (!fs.existsSync('/dev/fuse')) throw new CliError('/dev/fuse is missing: load the fuse module (modprobe fuse)');
  if (process.getuid?.() !== 0) {
    // libfuse mounts through the setuid fusermount3 when it cannot open /dev/fuse itself.
    const helper = ['/usr/bin/fusermount3', '/bin/fusermount3'].find((p) => fs.existsSync(p));
    if (!helper) throw new CliError('fusermount3 not found: a non-root mount needs it (install the fuse3 package; npm run setup does)');
  }
  try { loadNative(); } catch (e) {
    const msg = (e as Error).message;
    if (/libfuse3/.test(msg)) throw new CliError('libfuse3.so.3 cannot be loaded: install the libfuse3-3 package (npm run setup does)');
    throw new CliError(`the native parts cannot be loaded (${msg.split('\n')[0]}): run npm run setup`);
  }
  let st: fs.Stats;
  try { st = fs.statSync(a.mnt); } catch {
    throw new CliError(`mount point ${a.mnt} does not exist: create it with mkdir -p ${a.mnt}`);
  }
  if (!st.isDirectory()) throw new CliError(`mount point ${a.mnt} is not a directory`);
  const real = fs.realpathSync(a.mnt);
  const there = mountsAt(real);
  if (there.length) throw new CliError(`mount point ${a.mnt} is busy: ${there[there.length - 1]} is already mounted there (unmount it first)`);
  if (fs.readdirSync(a.mnt).length) throw new CliError(`mount point ${a.mnt} is not empty: FUSE will not hide existing files (empty it or choose another directory)`);
  if (!fs.existsSync(a.region)) throw new CliError(`region ${a.region} does not exist: create it with mkfs.pmemfs -s SIZE ${a.region}`);
  try { readSuperblock(a.region); } catch (e) {
    if (e instanceof FormatError) throw new CliError(`${a.region}: ${e.message}`);
    throw new CliError(`${a.region}: ${(e as Error).message}`);
  }
  const probe = fs.openSync(a.region, 'r');
  try { lockRegion(probe, a.region, 'exclusive'); } finally { fs.closeSync(probe); }
}

/** The foreground daemon's last resort: log the error synchronously and keep serving. */
export function onUncaught(e: unknown): void {
  fatalSync('uncaught exception (request state may be lost; the daemon keeps serving)', e);
}

/** Tell a detaching parent (PMEMFS_READY_FD) how the start ended: 'ready' or 'error: MESSAGE'. */
export function notify(line: string): void {
  const fd = Number(process.env.PMEMFS_READY_FD);
  if (!fd) return;
  try { fs.writeSync(fd, line + '\n'); fs.closeSync(fd); } catch { /* the parent is gone */ }
  delete process.env.PMEMFS_READY_FD;
}

/** The foreground daemon: lock, mount, serve until unmounted or signalled. */
export async function serve(a: DaemonArgs): Promise<number> {
  const lockFd = fs.openSync(a.region, 'r');
  lockRegion(lockFd, a.region, 'exclusive');
  const log = configureLog(a.logLevel, a.logFile);
  // Resolve before mounting: once mounted, a stat of the mount point from this
  // thread would wait for this very thread to answer it.
  const real = fs.realpathSync(a.mnt);
  let svc: PmemService;
  try {
    svc = new PmemService(a.region, a.svc, log);
  } catch (e) {
    if (e instanceof FormatError) throw new CliError(`${a.region}: ${e.message}`);
    throw e;
  }
  const session = new FuseSession(svc, a.mnt, { allowOther: a.allowOther, fsname: a.region, pollUs: a.pollUs, idlePoll: a.idlePoll }, log.child({ module: 'fuse' }));
  try {
    session.mount();
  } catch (e) {
    svc.close();
    throw new CliError(`mounting ${a.mnt} failed: ${(e as Error).message}`);
  }
  svc.transportStats = () => session.handlers?.statsLines() ?? [];
  svc.sourceFd = procSourceResolver(real);
  log.info({ untrusted: { region: a.region, mnt: a.mnt }, opts: a.svc, recovered: svc.mounted.recovered, replayed: svc.mounted.replayed }, 'mounted');
  notify('ready');
  svc.onPowerFail = () => {
    // Answer the ctl write, detach the mount (never synchronously: this thread serves it), and stop
    // without any unmount-time flush: the region file already is the post-failure image.
    setTimeout(() => {
      session.unmount();
      log.flush();
      setTimeout(() => process.exit(0), 200);
    }, 50);
  };
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (why: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ why }, 'unmounting');
      session.unmount();   // unmounts unless the kernel already ended the session
      try { svc.close(); } catch (e) { fatalSync('flushing the region at unmount failed', e); resolve(1); return; }
      fs.closeSync(lockFd);
      if (svc.fs.tx.halted) log.warn('stopped after an emulated power failure: not unmounted cleanly (the next mount recovers)');
      else if (svc.fs.tx.shutdownReason !== null) log.warn({ reason: svc.fs.tx.shutdownReason }, 'stopped after a shutdown: not unmounted cleanly (the next mount recovers the last durable commit)');
      else log.info('unmounted cleanly');
      log.flush();
      resolve(0);
    };
    // umount/fusermount3 -u from outside: the device read fails with ENODEV and the session says so.
    session.onEnded = (why) => void stop(why);
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, () => void stop(sig));
  });
}

