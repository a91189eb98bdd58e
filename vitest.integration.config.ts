import { defineConfig } from 'vitest/config';

// Integration tests start real servers (PostgreSQL, S3, GCS emulator); they run
// one file at a time so two suites never compete for the machine's two cores.
export default defineConfig({
  test: {
    include: ['test/integration/**/*.test.ts'],
    environment: 'node',
    // The AWS SDK announces on Node 20 that it will need Node 22 from 2027; the runner images use a newer Node.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
    testTimeout: 120_000,
    hookTimeout: 180_000,
    fileParallelism: false,
  },
});
