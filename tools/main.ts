#!/usr/bin/env node
/** `db-backup-tool <engine> <verb> <request.json>`: one call of a shipped engine tool. */
import { runTool } from './sdk.js';
import { TOOLS } from './index.js';

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  const tool = name !== undefined && Object.hasOwn(TOOLS, name) ? TOOLS[name] : undefined;
  if (!tool) {
    process.stderr.write(`usage: db-backup-tool <${Object.keys(TOOLS).join('|')}> <verb> <request.json>\n`);
    return 2;
  }
  return runTool(`db-backup-tool ${name}`, await tool.handlers(), rest);
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
