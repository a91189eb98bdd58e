import { buffer } from 'node:stream/consumers';
import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { capture, minimalEnv, run, TailBuffer } from '../../runner/util/process.js';

describe('run', () => {
  it('keeps the output of a child that exited before anyone read it', async () => {
    const p = run('sh', ['-c', 'printf "%s" "every byte counts"'], { stdin: 'ignore' });
    await p.exited;
    await delay(50);
    expect((await buffer(p.stdout!)).toString()).toBe('every byte counts');
  });

  it('rejects with the exit code and a capped stderr tail', async () => {
    const p = run('sh', ['-c', 'head -c 100000 /dev/zero | tr "\\0" x >&2; echo "the real reason" >&2; exit 3'], { stdin: 'ignore', errorCode: 'DUMP_FAILED' });
    const err = await p.exited.then(
      () => undefined,
      (e: unknown) => e as { code: string; message: string; details: { exitCode: number; stderr: string } },
    );
    expect(err?.code).toBe('DUMP_FAILED');
    expect(err?.details.exitCode).toBe(3);
    expect(err?.message).toContain('the real reason');
    expect(err!.details.stderr.length).toBeLessThanOrEqual(8192);
  });

  it('a missing binary is TOOL_MISSING', async () => {
    await expect(capture('no-such-binary-here', [])).rejects.toMatchObject({ code: 'TOOL_MISSING' });
  });

  it('an abort kills the child and rejects with ABORTED', async () => {
    const ac = new AbortController();
    const p = run('sleep', ['30'], { stdin: 'ignore', signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await expect(p.exited).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe('TailBuffer', () => {
  it('keeps only the last bytes', () => {
    const t = new TailBuffer(10);
    t.push(Buffer.from('0123456789'));
    t.push(Buffer.from('abcdef'));
    expect(t.toString()).toBe('6789abcdef');
  });
});

describe('minimalEnv', () => {
  it('keeps PATH, HOME, TMPDIR, locale and time zone, and drops credentials and tool settings', () => {
    const base = {
      PATH: '/usr/bin',
      HOME: '/home/runner',
      TMPDIR: '/tmp',
      LANG: 'C.UTF-8',
      TZ: 'UTC',
      PGPASSWORD: 'db-secret',
      ORDERS_DB_PASSWORD: 'db-secret',
      AWS_SECRET_ACCESS_KEY: 'aws-secret',
      AWS_ACCESS_KEY_ID: 'AKIA',
      GOOGLE_APPLICATION_CREDENTIALS: '/key.json',
      ZSTD_CLEVEL: '19',
      LD_PRELOAD: '/evil.so',
    };
    expect(minimalEnv(base)).toEqual({ PATH: '/usr/bin', HOME: '/home/runner', TMPDIR: '/tmp', LANG: 'C.UTF-8', TZ: 'UTC' });
  });

  it('is what a child gets when the caller passes no environment', async () => {
    const key = 'DBBC_TEST_SECRET_IN_PARENT';
    process.env[key] = 'parent-secret-value';
    try {
      const out = await capture('/usr/bin/env', []);
      expect(out).not.toContain('parent-secret-value');
      expect(out).toMatch(/^PATH=/m);
    } finally {
      delete process.env[key];
    }
  });
});
