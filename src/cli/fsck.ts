/**
 * @file fsck.pmemfs: check (-n: never write) and repair an unmounted region.
 * Exit codes follow fsck(8): 0 clean, 1 errors corrected, 4 errors left
 * uncorrected, 8 operational error. A region that is mounted (locked) is
 * refused unless -n, which reads without the lock and says so.
 */
import { Command } from 'commander';
import * as fs from 'node:fs';
import { FormatError } from '../format/layout.js';
import { checkRegion } from '../repair/check.js';
import { CliError, lockRegion, runMain, version } from './common.js';

const PROG = 'fsck.pmemfs';
export const FSCK_OK = 0, FSCK_CORRECTED = 1, FSCK_UNCORRECTED = 4, FSCK_OPERATIONAL = 8;

export async function main(argv: string[]): Promise<void> {
  const cmd = new Command(PROG)
    .description('check and repair an unmounted pmemfs region')
    .argument('<region>', 'region file')
    .option('-n, --no-modify', 'check only; never write (works on a mounted region, results may be stale)')
    .option('-y, --yes', 'repair everything that can be repaired without asking')
    .version(version(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  await runMain(PROG, () => {
    try { cmd.parse(argv, { from: 'user' }); } catch (e) {
      const code = (e as { exitCode?: number }).exitCode ?? FSCK_OPERATIONAL;
      return code === 0 ? 0 : FSCK_OPERATIONAL;
    }
    const region = cmd.args[0];
    const readOnly = cmd.opts<{ modify: boolean }>().modify === false;
    if (!fs.existsSync(region)) throw new CliError(`${region} does not exist`, FSCK_OPERATIONAL);
    const fd = fs.openSync(region, 'r');
    try {
      if (readOnly) {
        try { lockRegion(fd, region, 'shared', FSCK_OPERATIONAL); } catch {
          process.stderr.write(`${PROG}: warning: ${region} is in use (mounted); checking a live region, results may be stale\n`);
        }
      } else {
        lockRegion(fd, region, 'exclusive', FSCK_OPERATIONAL);
      }
      let res;
      let last = 0, large = 0;
      const started = Date.now();
      const mib = (kib: number) => Math.round(kib / 1024);
      // A large region (64Ki inode slots or more) gets a progress line a second, with the memory in use.
      const progress = (stage: string, done: number, total: number) => {
        if (total < 65536) return;
        large = total;
        if (Date.now() - last < 1000) return;
        last = Date.now();
        process.stderr.write(`${PROG}: ${stage} ${done}/${total} (${Math.floor((100 * done) / total)}%), ${mib(process.memoryUsage().rss / 1024)} MiB resident\n`);
      };
      try { res = checkRegion(region, !readOnly, { progress }); } catch (e) {
        if (e instanceof FormatError) throw new CliError(`${region}: ${e.message}`, FSCK_UNCORRECTED);
        throw new CliError(`${region}: ${(e as Error).message}`, FSCK_OPERATIONAL);
      }
      if (large) process.stderr.write(`${PROG}: ${large} inode slots checked in ${((Date.now() - started) / 1000).toFixed(1)} s, peak ${mib(process.resourceUsage().maxRSS)} MiB resident\n`);
      for (const p of res.problems) process.stdout.write(`${res.repaired.includes(p) ? 'fixed' : 'found'}: ${p}\n`);
      if (res.uncorrected.length) {
        process.stdout.write(`${region}: ${res.uncorrected.length} problem(s) left uncorrected${readOnly ? ' (run fsck.pmemfs -y to repair)' : ''}\n`);
        return FSCK_UNCORRECTED;
      }
      if (res.repaired.length) { process.stdout.write(`${region}: ${res.repaired.length} problem(s) corrected\n`); return FSCK_CORRECTED; }
      process.stdout.write(`${region}: clean\n`);
      return FSCK_OK;
    } finally {
      fs.closeSync(fd);
    }
  }, FSCK_OPERATIONAL);
}
