/**
 * Runs pg_basebackup (plan.ts) and reads what its output says of itself: the tar's backup_label (its
 * first member) and the WAL end point of its -v lines, recorded as the backup's position.
 */
import { Transform, type TransformCallback } from 'node:stream';
import { BackupError } from '../../../errors.js';
import { run } from '../../../util/process.js';
import type { DumpHandle } from '../../types.js';
import { classifyFailure, type FailureContext } from '../classify.js';
import type { CommandPlan } from '../plan.js';
import { withInstallHint } from '../tools.js';
import { BASEBACKUP_FORMAT, LABEL_HEAD_BYTES, parseWalPoints, readBackupLabel } from './plan.js';

/** Passes a tar through, counting its bytes and keeping its first LABEL_HEAD_BYTES. */
class TarTap extends Transform {
  bytes = 0;
  private readonly chunks: Buffer[] = [];
  private kept = 0;

  get head(): Buffer {
    return Buffer.concat(this.chunks);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.kept < LABEL_HEAD_BYTES) {
      const part = chunk.subarray(0, LABEL_HEAD_BYTES - this.kept);
      this.chunks.push(Buffer.from(part));
      this.kept += part.length;
    }
    callback(null, chunk);
  }
}

/** stderr kept for the WAL points: pg_basebackup -v writes a few lines; more is never needed. */
const MAX_STDERR = 256 * 1024;

/**
 * Starts pg_basebackup. The handle's stream is the tar; `position` resolves once it has ended and the tool
 * exited: the WAL range (start and stop LSN, timeline, first segment) and the tar's size (`dataBytes`, what a
 * restore needs on disk). A tar that does not open with a readable backup_label fails the backup.
 */
export function startBasebackup(plan: CommandPlan, fail: FailureContext, signal?: AbortSignal, server: { walSegmentSize?: number } = {}): DumpHandle {
  let stderr = '';
  const p = run(plan.command, plan.args, {
    env: plan.env,
    ...(signal ? { signal } : {}),
    stdin: 'ignore',
    stdout: 'pipe',
    onStderr: (c) => {
      if (stderr.length < MAX_STDERR) stderr += c.toString('utf8');
    },
    classify: (code, err) => classifyFailure(err, code, fail),
  });
  const tap = new TarTap();
  const ended = new Promise<void>((resolve, reject) => {
    tap.once('end', resolve);
    tap.once('error', reject);
  });
  ended.catch(() => undefined);
  p.stdout!.once('error', (err) => tap.destroy(err));
  p.stdout!.pipe(tap);
  const done = p.exited.catch((err: unknown) => {
    throw withInstallHint(err, plan.command);
  });
  done.catch(() => undefined); // observed by the caller
  const consistentAt = done.then(() => new Date());
  consistentAt.catch(() => undefined);
  const position = Promise.all([done, ended]).then(() => {
    const label = readBackupLabel(tap.head);
    if ('problem' in label) throw new BackupError('FORMAT_MISMATCH', `pg_basebackup wrote a tar this runner cannot restore: ${label.problem}`);
    const wal = parseWalPoints(stderr);
    if (!wal) throw new BackupError('DUMP_FAILED', 'pg_basebackup did not report the end of the WAL its backup needs (no "write-ahead log end point" line)');
    if (wal.startLsn !== label.startLsn || wal.timeline !== label.timeline) {
      throw new BackupError('FORMAT_MISMATCH', `pg_basebackup reported WAL from ${wal.startLsn} on timeline ${wal.timeline}, its backup_label says ${label.startLsn} on timeline ${label.timeline}`);
    }
    return {
      startLsn: label.startLsn,
      stopLsn: wal.stopLsn,
      timeline: label.timeline,
      startWalFile: label.startWalFile,
      checkpointLsn: label.checkpointLsn,
      dataBytes: String(tap.bytes),
      ...(server.walSegmentSize ? { walSegmentSize: String(server.walSegmentSize) } : {}),
    };
  });
  position.catch(() => undefined);
  return { ...BASEBACKUP_FORMAT, magic: [...BASEBACKUP_FORMAT.magic], stream: tap, consistentAt, done, position };
}
