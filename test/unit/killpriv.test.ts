/**
 * Privileges the daemon kills itself (FUSE_HANDLE_KILLPRIV_V2 leaves it to
 * the filesystem): a write or truncate removes set-user-ID and
 * set-group-ID (group-executable) when the caller lacks CAP_FSETID; chown
 * removes them whoever makes it; every change is in the operation's own
 * transaction (durable with it). security.* attributes are refused, so
 * there is no capability attribute to remove.
 */
import * as fs from 'node:fs';
import { constants as C } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ROOT_CALLER } from '../../src/vfs/fs.js';
import { formatRegion, mountRegion, unmountRegion } from '../../src/vfs/mount.js';
import { OPTS, LOG, remountAfterCut } from './crash-harness.js';

const USER = { pid: 1, uid: 1000, gid: 1000 };
let dir: string;
beforeEach(() => { dir = fs.mkdtempSync(os.tmpdir() + '/pmemfs-killpriv-'); });
afterEach(() => { fs.rmSync(dir, { recursive: true, force: true }); });

describe('killing privileges', () => {
  it('write, truncate and chown drop what Linux drops, and it survives a crash', async () => {
    const img = path.join(dir, 'r.pmem');
    formatRegion(img, { size: 16 << 20, blockSize: 4096, label: 'kp' });
    const m = mountRegion(img, { ...OPTS, powerfail: true }, LOG);
    const f = m.fs;
    const h = f.create('/x', 0o6755, C.O_RDWR, ROOT_CALLER);
    f.write(h.fh, '/x', Buffer.from('root'), 4, 0);                   // root (CAP_FSETID): the bits stay
    expect(h.inode.mode & 0o7777).toBe(0o6755);
    await f.setattr('/x', { size: 2, caller: USER });                  // a user's truncate: both go
    expect(h.inode.mode & 0o7777).toBe(0o755);
    f.chmod('/x', 0o6755);
    await f.setattr('/x', { size: 1, caller: ROOT_CALLER });           // root's truncate: they stay
    expect(h.inode.mode & 0o7777).toBe(0o6755);
    f.write(h.fh, '/x', Buffer.from('u'), 1, 0, USER);                 // a user's write: both go
    expect(h.inode.mode & 0o7777).toBe(0o755);
    f.chmod('/x', 0o6755);
    f.chown('/x', 1000, -1);                                           // chown: both go, whoever
    expect(h.inode.mode & 0o7777).toBe(0o755);
    expect(() => f.setxattr('/x', 'security.capability', Buffer.alloc(20), 0)).toThrow(/EOPNOTSUPP/);
    f.fsync(h.inode);
    const r = remountAfterCut(m, path.join(dir, 'crash.pmem'), () => f.release(h.fh));
    expect(r.fs.getattr('/x').mode & 0o7777).toBe(0o755);
    unmountRegion(r);
  });
});
