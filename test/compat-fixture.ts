/**
 * A stored-format fixture (test/fixtures/<dir>) in a filesystem location of its own, with a runner config for a
 * real server: what the format-compat tests list, verify and restore. The fixture is copied, never changed.
 */
import { cp, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { runCli, type CliResult } from './cli.js';

export interface CompatFixture {
  cli(args: string[]): Promise<CliResult>;
  /** The fixture's own files (checksums, fingerprints). */
  fixtureDir: string;
  remove(): Promise<void>;
}

export async function compatFixture(fixture: string, scope: { namespace: string; name: string }, engine: Record<string, unknown>): Promise<CompatFixture> {
  const fixtureDir = join(import.meta.dirname, 'fixtures', fixture);
  const dir = await mkdtemp(join(tmpdir(), `dbbc-compat-${fixture}-`));
  await cp(fixtureDir, join(dir, 'fs'), { recursive: true });
  const cfgPath = join(dir, 'runner.yaml');
  await writeFile(cfgPath, stringify({ ...scope, engine, locations: [{ name: 'fs', type: 'filesystem', filesystem: { path: join(dir, 'fs') } }] }));
  return { cli: (args) => runCli(cfgPath, args), fixtureDir, remove: () => rm(dir, { recursive: true, force: true }) };
}
