import { defineConfig } from 'vitest/config';

// Tests share one kernel: files run one at a time (namespaces, pins and tc
// state are per-test anyway, but 2 cores do not benefit from contention).
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
