#!/usr/bin/env node
import { servePrefetched } from '../ops/wal-prefetch.js';

const argv = process.argv.slice(2);
// PostgreSQL's restore_command runs this once per WAL file: a file fetched ahead is served before the runner loads.
if (await servePrefetched(argv).catch(() => false)) process.exit(0);
const [{ EXIT }, { main }] = await Promise.all([import('../errors.js'), import('./main.js')]);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = EXIT.FAILED;
  },
);
