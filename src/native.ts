/**
 * @file The one loader of native code: the pmemfs shim addon and fuse-native.
 *
 * Order matters. The shim defines its own `fuse_new` (which adds ioctl,
 * fallocate, a correct utimens, caller contexts and mount args to
 * fuse-native's op table), so it is dlopen'ed RTLD_NOW | RTLD_GLOBAL before
 * fuse-native's addon is loaded; fuse-native's reference to `fuse_new` then
 * binds to ours. Loading fuse-native any other way skips the hook.
 *
 * Works both from src/ (vitest) and from dist/src/ (tsc output): the package
 * root is the nearest ancestor directory holding a package.json.
 * Tests inject a fake binding with setNativeBinding().
 */
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CallerContext, Reply, ShimBinding, ShimHandlers } from '../native-shim/index.js';

export type { CallerContext, Reply, ShimBinding, ShimHandlers };

/** A mounted (or mountable) fuse-native instance, as far as pmemfs uses it. */
export interface FuseInstance {
  mount(cb: (err?: Error) => void): void;
  unmount(cb: (err?: Error) => void): void;
}

/** fuse-native's default export, typed loosely. */
export interface FuseConstructor {
  new (mnt: string, ops: object, opts?: object): FuseInstance;
  /** Unmount by path (fusermount -u). */
  unmount(mnt: string, cb: (err?: Error) => void): void;
  readonly [key: string]: unknown;
}

let injected: ShimBinding | null = null;
let real: ShimBinding | null = null;
let fuse: FuseConstructor | null = null;

const requireHere = createRequire(import.meta.url);

/** The nearest ancestor of this module's directory that holds a package.json. */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no package.json above ${path.dirname(fileURLToPath(import.meta.url))}`);
    dir = up;
  }
}

/** Where the built addon lives. */
export function shimPath(): string {
  return path.join(packageRoot(), 'native-shim', 'build', 'Release', 'pmemfs_shim.node');
}

function loadRealShim(): ShimBinding {
  if (real) return real;
  const file = shimPath();
  if (!fs.existsSync(file)) {
    throw new Error(`the pmemfs native shim is not built (${file} is missing): run npm run build:shim`);
  }
  let fuseId: string | null = null;
  try { fuseId = requireHere.resolve('fuse-native'); } catch { /* reported by loadFuse */ }
  if (fuseId && requireHere.cache[fuseId]) {
    throw new Error('fuse-native was loaded before the pmemfs shim; load both through src/native.ts');
  }
  const mod = { exports: {} as ShimBinding };
  const { RTLD_NOW, RTLD_GLOBAL } = os.constants.dlopen;
  process.dlopen(mod, file, RTLD_NOW | RTLD_GLOBAL);
  real = mod.exports;
  return real;
}

/**
 * The native binding: the injected fake if any, else the addon (loaded once).
 * @throws Error when the addon is not built or cannot be loaded
 */
export function loadShim(): ShimBinding {
  return injected ?? loadRealShim();
}

/**
 * fuse-native, loaded after the real shim (even when a fake binding is
 * injected: fuse-native must never load without the hook).
 * @throws Error when the shim or fuse-native cannot be loaded
 */
export function loadFuse(): FuseConstructor {
  if (fuse) return fuse;
  loadRealShim();
  fuse = requireHere('fuse-native') as FuseConstructor;
  return fuse;
}

/** Tests: make loadShim() return `b` (null restores the real addon). */
export function setNativeBinding(b: ShimBinding | null): void {
  injected = b;
}
