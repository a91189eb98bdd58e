import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { type RunnerConfig, validateRunnerConfig } from '../../api/index.js';
import { BackupError } from '../errors.js';

/** Parses YAML (or JSON) config text and validates it; every problem is reported at once. */
export function parseConfig(text: string, source: string): Readonly<RunnerConfig> {
  let data: unknown;
  try {
    data = parse(text, { prettyErrors: true });
  } catch (err) {
    throw new BackupError('CONFIG_INVALID', `${source}: not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  const result = validateRunnerConfig(data);
  if (!result.ok) {
    const lines = result.errors.map((e) => `  - ${e.path}: ${e.message}`).join('\n');
    throw new BackupError('CONFIG_INVALID', `${source}: invalid configuration:\n${lines}`, { details: { errors: result.errors } });
  }
  return result.value;
}

export async function loadConfig(path: string): Promise<Readonly<RunnerConfig>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new BackupError('CONFIG_INVALID', `cannot read config file ${path} (${code}); pass --config or set BACKUP_RUNNER_CONFIG`, { cause: err });
  }
  return parseConfig(text, path);
}
