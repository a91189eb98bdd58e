import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';

const EXIT_WITH_PARENT = 'TESTENV_EXIT_WITH_PARENT';

/**
 * Lets a launcher run as its own process (`npx tsx testenv/<x>.ts`): starts
 * the server, prints what clients need as one JSON line, and stops it on
 * SIGINT or SIGTERM. Does nothing when the module is imported.
 */
export function runAsProcess(moduleUrl: string, start: () => Promise<{ info: unknown; stop: () => Promise<void> }>): void {
  if (process.argv[1] === undefined || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  start()
    .then(({ info, stop }) => {
      console.log(JSON.stringify(info));
      const shutdown = (): void => {
        void stop().then(() => process.exit(0));
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
      // Started by spawnAsProcess: stdin is a pipe from the parent, which
      // closes when the parent exits, even when it never called stop().
      if (process.env[EXIT_WITH_PARENT] === '1') {
        process.stdin.once('close', shutdown).resume();
      }
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}

/**
 * Runs a launcher module (`testenv/<name>.ts`) as a child process under tsx and
 * resolves with the JSON line it prints once ready, so that a server's memory
 * is not counted against the process that measures a client. `stop()` is
 * idempotent and waits for the child to exit; the child also stops when this
 * process exits without calling it.
 */
export async function spawnAsProcess<T>(name: string, args: string[], installHint: string): Promise<{ info: T; stop: () => Promise<void> }> {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'testenv', `${name}.ts`), ...args], {
    cwd: root,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, [EXIT_WITH_PARENT]: '1' },
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    once(lines, 'line').then(([l]) => l as string),
    once(child, 'exit').then(() => {
      throw new Error(`testenv/${name}.ts exited before it was ready: ${stderr.trim() || installHint}`);
    }),
  ]);
  lines.close();
  return {
    info: JSON.parse(first) as T,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      await once(child, 'exit');
    },
  };
}
