/** The runner's CLI in this process, as the integration tests drive it: `-c cfg -o json`, output captured, logs silent. */
import { main } from '../runner/cli/main.js';
import { silentLogger } from '../runner/logger.js';

export interface CliResult {
  code: number;
  /** Everything the command printed. */
  out: string;
  /** The printed JSON (empty when nothing was printed). */
  json: Record<string, unknown>;
}

export async function runCli(cfgPath: string, args: string[]): Promise<CliResult> {
  let out = '';
  const code = await main([...args, '-c', cfgPath, '-o', 'json'], process.env, { stdout: (t) => (out += `${t}\n`), logger: silentLogger() });
  return { code, out, json: out ? (JSON.parse(out) as Record<string, unknown>) : {} };
}
