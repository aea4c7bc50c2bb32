/**
 * src/uapi.ts against its C twin native/include/pmemfs_uapi.h: compile a
 * tiny program against the header (with -Werror, so its _Static_asserts run
 * too), print every constant, struct size, field offset and string, and
 * compare with the TypeScript module. Every export of src/uapi.ts must be
 * covered here: an unknown one fails the test.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as uapi from '../../src/uapi.js';
import { packageRoot } from '../../src/native.js';

const include = path.join(packageRoot(), 'native', 'include');

/** C macro for a TS export: PMEMFS_/FS_/FALLOC_ names as they are, others get PMEMFS_. */
const cName = (name: string) => (/^(PMEMFS_|FS_|FALLOC_)/.test(name) ? name : `PMEMFS_${name}`);
/** C struct for a layout object. */
const cStruct = (name: string) => (name === 'FSXATTR' ? 'struct fsxattr' : `struct pmemfs_${name.toLowerCase()}`);
/** C field for a layout key: camelCase -> snake_case; fsxattr's carry fsx_. */
const cField = (layout: string, key: string) =>
  (layout === 'FSXATTR' ? 'fsx_' : '') + key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

type Check = { label: string; expr: string; kind: 'num' | 'str' | 'char'; want: string };
const checks: Check[] = [];
const num = (label: string, expr: string, want: number | bigint) => checks.push({ label, expr, kind: 'num', want: BigInt(want).toString() });
const str = (label: string, expr: string, want: string) => checks.push({ label, expr, kind: 'str', want });
const unhandled: string[] = [];

for (const [name, value] of Object.entries(uapi)) {
  if (typeof value === 'function') continue; // IO/IOR/IOW/IOWR/iocSize/iocDir: checked through the numbers
  if (name === 'PMEMFS_IOC_MAGIC') {
    checks.push({ label: name, expr: name, kind: 'char', want: value as string });
  } else if (name === 'IOCTLS') {
    for (const [ioc, cmd] of Object.entries(value as Record<string, number>)) {
      num(`IOCTLS.${ioc}`, ioc, cmd);
      num(`_IOC_SIZE(${ioc})`, `_IOC_SIZE(${ioc})`, uapi.iocSize(cmd));
      num(`_IOC_DIR(${ioc})`, `_IOC_DIR(${ioc})`, uapi.iocDir(cmd));
    }
  } else if (name === 'CTL_FILES') {
    (value as readonly string[]).forEach((f, i) => str(`CTL_FILES[${i}]`, `ctl_files[${i}]`, f));
    num('CTL_FILES.length', 'sizeof ctl_files / sizeof ctl_files[0]', (value as readonly string[]).length);
  } else if (typeof value === 'number' || typeof value === 'bigint') {
    num(name, cName(name), value);
  } else if (typeof value === 'string') {
    str(name, cName(name), value);
  } else if (value && typeof value === 'object' && typeof (value as { size?: unknown }).size === 'number') {
    const st = cStruct(name);
    for (const [key, v] of Object.entries(value as Record<string, number>)) {
      if (key === 'size') num(`${name}.size`, `sizeof(${st})`, v);
      else if (name === 'REGION' && key === 'pathMax') {
        num(`${name}.pathMax`, 'PMEMFS_REGION_PATH_MAX', v);
        num(`${name}.pathMax (sizeof path)`, `sizeof(((${st} *)0)->path)`, v);
      } else num(`${name}.${key}`, `offsetof(${st}, ${cField(name, key)})`, v);
    }
  } else {
    unhandled.push(name);
  }
}

function cProgram(): string {
  const lines = checks.map((c) => {
    const label = JSON.stringify(c.label);
    if (c.kind === 'num') return `  printf("%s\\t%llu\\n", ${label}, (unsigned long long)(${c.expr}));`;
    if (c.kind === 'char') return `  printf("%s\\t%c\\n", ${label}, ${c.expr});`;
    return `  printf("%s\\t%s\\n", ${label}, ${c.expr});`;
  });
  return [
    '#include <stdio.h>',
    '#include "pmemfs_uapi.h"',
    'static const char *const ctl_files[] = PMEMFS_CTL_FILES;',
    'int main(void)',
    '{',
    ...lines,
    '  return 0;',
    '}',
    '',
  ].join('\n');
}

describe('pmemfs_uapi.h agrees with src/uapi.ts', () => {
  let dir = '';
  const got = new Map<string, string>();

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pmemfs-uapi-'));
    const src = path.join(dir, 'uapi_dump.c');
    const exe = path.join(dir, 'uapi_dump');
    fs.writeFileSync(src, cProgram());
    execFileSync('cc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-I', include, '-o', exe, src], { stdio: 'pipe' });
    for (const line of execFileSync(exe, { encoding: 'utf8' }).split('\n')) {
      if (!line) continue;
      const tab = line.indexOf('\t');
      got.set(line.slice(0, tab), line.slice(tab + 1));
    }
  });

  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('covers every export of src/uapi.ts', () => {
    expect(unhandled).toEqual([]);
    // The walk found the things we know must be there.
    for (const label of ['PMEMFS_IOC_PIN', 'BMAP_PHYS_NONE', 'PIN.recs', 'FSXATTR.cowextsize', 'XATTR_STATE', 'CTL_FILES[4]']) {
      expect(checks.map((c) => c.label)).toContain(label);
    }
  });

  it('has every constant, size, offset and name the same', () => {
    const mismatches = checks
      .filter((c) => got.get(c.label) !== c.want)
      .map((c) => `${c.label}: C ${c.expr} = ${got.get(c.label)}, TS = ${c.want}`);
    expect(mismatches).toEqual([]);
    expect(got.size).toBe(checks.length);
  });

  it('ioctl numbers are the ones Linux computes', () => {
    expect(got.get('FS_IOC_FSGETXATTR')).toBe(String(0x801c581f));
    expect(got.get('FS_IOC_FSSETXATTR')).toBe(String(0x401c5820));
    expect(got.get('PMEMFS_IOC_SEAL')).toBe(String(0x5001));
  });
});
