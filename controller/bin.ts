#!/usr/bin/env node
import { CONTROLLER_EXIT } from './errors.js';
import { main } from './main.js';

main(process.argv.slice(2)).then(
  (code) => {
    process.exit(code);
  },
  (err: unknown) => {
    process.stderr.write(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(CONTROLLER_EXIT.FAILED);
  },
);
