import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Native addons and FUSE threads do not mix with worker threads.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
  },
});
