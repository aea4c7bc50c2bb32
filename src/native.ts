/**
 * @file The one loader of native code: the pmemfs addon
 * (native/build/Release/pmemfs_native.node), which carries the FUSE
 * transport (libfuse3's low-level API on the event loop) and the client
 * syscalls Node lacks.
 *
 * Works both from src/ (vitest) and from dist/src/ (tsc output): the package
 * root is the nearest ancestor directory holding a package.json.
 * Tests inject a fake binding with setNativeBinding().
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NativeBinding, SessionHandlers } from '../native/index.js';

export type { NativeBinding, SessionHandlers };

let injected: NativeBinding | null = null;
let real: NativeBinding | null = null;

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
export function nativePath(): string {
  return path.join(packageRoot(), 'native', 'build', 'Release', 'pmemfs_native.node');
}

/**
 * The native binding: the injected fake if any, else the addon (loaded once).
 * @throws Error when the addon is not built or cannot be loaded (e.g. libfuse3 missing)
 */
export function loadNative(): NativeBinding {
  if (injected) return injected;
  if (real) return real;
  const file = nativePath();
  if (!fs.existsSync(file)) {
    throw new Error(`the pmemfs native addon is not built (${file} is missing): run npm run build:native`);
  }
  const mod = { exports: {} as NativeBinding };
  process.dlopen(mod, file);
  real = mod.exports;
  return real;
}

/** Tests: make loadNative() return `b` (null restores the real addon). */
export function setNativeBinding(b: NativeBinding | null): void {
  injected = b;
}
