import { request } from 'node:http';
import { lstat, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { createInterface } from 'node:readline';
import { BackupError, type ExitCode } from '../errors.js';
import type { Outcome } from '../ops/perform.js';
import { socketDirProblems } from '../daemon/socket-dir.js';
import { CONFIG_DIGEST_HEADER, OPERATIONS_PATH, STATUS_PATH, type OperationRequest, type StreamLine } from '../daemon/protocol.js';

/**
 * True when a daemon's socket exists at `path` (whether it answers is learnt
 * on the first call). A socket in a directory that is not private to this
 * user (the daemon would have refused it) may be anyone's: SOCKET_DIR_UNSAFE
 * instead of sending it a command.
 */
export async function daemonSocketExists(path: string, uid: number | undefined = process.getuid?.()): Promise<boolean> {
  const s = await stat(path).catch(() => undefined);
  if (!s?.isSocket()) return false;
  const dir = dirname(path);
  const problems = socketDirProblems(await lstat(dir), uid);
  if (problems.length > 0) {
    throw new BackupError(
      'SOCKET_DIR_UNSAFE',
      `refusing to send the command to ${path}: its directory ${dir} is not private to this user (${problems.join('; ')}), so the socket may not be the runner daemon's. Run with --local, or fix the directory (chown to this user, chmod 0700) and restart the daemon`,
      { details: { directory: dir } },
    );
  }
  return true;
}

function unreachable(path: string, err: unknown): BackupError {
  return new BackupError('DAEMON_UNREACHABLE', `the backup-runner daemon at ${path} does not answer (${(err as Error).message}); is "backup-runner serve" running? Use --local to run without it`, {
    cause: err,
  });
}

export interface ClientOptions {
  /** configDigest() of the config this command was given: a daemon running another config refuses. */
  configDigest?: string;
}

function digestHeader(opts: ClientOptions): Record<string, string> {
  return opts.configDigest ? { [CONFIG_DIGEST_HEADER]: opts.configDigest } : {};
}

/** The daemon's error line as a BackupError with its code and exit code. */
function daemonError(error: { code: string; message: string; exitCode: number }): BackupError {
  const e = new BackupError('INTERNAL', error.message, { details: error });
  Object.assign(e, { code: error.code, exitCode: error.exitCode as ExitCode });
  return e;
}

/** GET a JSON document from the daemon. */
export function getJson(socketPath: string, path: string = STATUS_PATH, opts: ClientOptions = {}): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method: 'GET', timeout: 10_000, headers: digestHeader(opts) }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(body);
        } catch (err) {
          return reject(unreachable(socketPath, err));
        }
        const line = parsed as { event?: string; error?: { code: string; message: string; exitCode: number } };
        if ((res.statusCode ?? 200) >= 400 && line.event === 'error' && line.error) return reject(daemonError(line.error));
        resolve(parsed);
      });
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => reject(unreachable(socketPath, err)));
    req.end();
  });
}

/**
 * Sends an operation to the daemon and follows its NDJSON stream until the
 * result. `onLine` sees every queued/started/progress line. The outcome is
 * the daemon's: same exit code, JSON and text as a local run.
 */
export function requestOperation(socketPath: string, op: OperationRequest, onLine: (line: StreamLine) => void, opts: ClientOptions = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const body = JSON.stringify(op);
    const req = request(
      { socketPath, path: OPERATIONS_PATH, method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...digestHeader(opts) } },
      (res) => {
        let settled = false;
        res.on('error', (err) => {
          if (settled) return;
          settled = true;
          reject(new BackupError('DAEMON_UNREACHABLE', `the connection to the daemon was lost before the operation finished (${err.message}); see its logs (kubectl logs)`, { cause: err }));
        });
        const lines = createInterface({ input: res, crlfDelay: Infinity });
        lines.on('error', () => undefined); // the response's own error handler reports it
        lines.on('line', (text) => {
          if (!text.trim()) return;
          const line = JSON.parse(text) as StreamLine;
          if (line.event === 'result') {
            settled = true;
            resolve({ exitCode: line.exitCode, json: line.json, text: line.text });
          } else if (line.event === 'error') {
            settled = true;
            reject(daemonError(line.error));
          } else onLine(line);
        });
        lines.on('close', () => {
          if (settled) return;
          settled = true;
          reject(new BackupError('DAEMON_UNREACHABLE', 'the daemon closed the connection before the operation finished; see its logs (kubectl logs)'));
        });
      },
    );
    req.on('error', (err) => reject(unreachable(socketPath, err)));
    req.end(body);
  });
}
