import { defineConfig } from 'vitest/config';

// Integration tests start real servers (PostgreSQL, S3, GCS emulator); they run
// one file at a time so two suites never compete for the machine's two cores.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    environment: 'node',
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
});
