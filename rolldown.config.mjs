/**
 * The command-line programs as a few bundled modules (dist/bin/), built
 * after tsc by `npm run build:ts`. Node.js resolves, reads and compiles each
 * ES module separately: the daemon's ~60 modules cost about 30 ms of its
 * start (docs/DESIGN.md, "What mount costs"). Packages with native parts or
 * files of their own (pino's transports, the CRC32C addon) stay external and
 * load from node_modules as before; so does our addon (src/native.ts).
 */
export default {
  input: {
    pmemfs: 'dist/src/cli/daemon.js',
    'mkfs.pmemfs': 'dist/src/cli/mkfs.js',
    'fsck.pmemfs': 'dist/src/cli/fsck.js',
    'pmemfs-io': 'dist/src/cli/io.js',
  },
  platform: 'node',
  external: [/\.node$/, /^@node-rs\//],
  output: { dir: 'dist/bin', format: 'esm', entryFileNames: '[name].mjs', chunkFileNames: 'chunk-[name].mjs' },
};
