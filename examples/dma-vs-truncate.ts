/**
 * @file The "concrete user" of MAP_DIRECT: a process that maps a pmemfs file's
 * blocks straight from the region (as an RDMA NIC or a DMA engine would be
 * handed them) and keeps writing through that mapping, while another process
 * tries to truncate the file. The lease makes the truncate fail with ETXTBSY
 * instead of freeing blocks that are still being written; after release the
 * truncate succeeds.
 *
 * Run on a dax=always mount:
 *   node dist/examples/dma-vs-truncate.js MNT/buf [SECONDS]
 * It prints what each side saw and exits non-zero if the filesystem let the
 * truncate through while the mapping was live.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { mapDirect } from '../src/mapdirect.js';

const SIZE = 1 << 20;

async function main(): Promise<number> {
  const path = process.argv[2];
  const seconds = Number(process.argv[3] ?? 2);
  if (!path) { process.stderr.write('usage: dma-vs-truncate FILE_ON_PMEMFS [SECONDS]\n'); return 2; }
  fs.writeFileSync(path, Buffer.alloc(SIZE));

  const m = await mapDirect(path, 0, SIZE, { onBreak: () => process.stderr.write('lease break received\n') });
  process.stdout.write(`mapped ${m.extents.length} extent(s): ${m.extents.map((e) => `file ${e.fileOff}+${e.len} @ region 0x${e.phys.toString(16)}`).join(', ')}\n`);

  // The "device": stamps a sequence number into every 4 KiB page, over and over.
  let seq = 0;
  const dma = setInterval(() => {
    seq++;
    for (const b of m.buffers) for (let o = 0; o + 4 <= b.length; o += 4096) b.writeUInt32LE(seq, o);
  }, 10);

  // The other process: truncate(1) on the same file, while the device writes.
  await new Promise((r) => setTimeout(r, 200));
  const during = spawnSync('truncate', ['-s', '0', path], { encoding: 'utf8' });
  process.stdout.write(`truncate while mapped: exit ${during.status} ${during.stderr.trim()}\n`);

  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(dma);
  const seen = fs.readFileSync(path);
  const viaMount = seen.length === SIZE ? seen.readUInt32LE(SIZE - 4096) : -1;
  process.stdout.write(`device wrote sequence ${seq}; the mount reads ${viaMount} at the last page\n`);
  m.release();

  const after = spawnSync('truncate', ['-s', '0', path], { encoding: 'utf8' });
  process.stdout.write(`truncate after release: exit ${after.status}\n`);
  const ok = during.status !== 0 && /Text file busy/.test(during.stderr) && viaMount === seq && after.status === 0;
  process.stdout.write(ok ? 'OK: the block map stayed put while the device used it\n' : 'FAIL\n');
  return ok ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => { process.stderr.write(`dma-vs-truncate: ${(e as Error).message}\n`); process.exit(1); });
