import { setTimeout as delay } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { OperationQueue, type QueueEvent } from '../../runner/daemon/queue.js';

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => (open = r));
  return { promise, open };
}

describe('OperationQueue', () => {
  it('runs one operation at a time, in arrival order, telling waiters their position', async () => {
    const q = new OperationQueue(() => new Date('2026-11-21T10:00:00Z'));
    const order: string[] = [];
    const g = gate();
    const events: QueueEvent[] = [];
    const a = q.submit('backup', 'schedule', async () => {
      order.push('a start');
      await g.promise;
      order.push('a end');
      return 'a';
    });
    const b = q.submit('restore', 'command', () => {
      order.push('b');
      return Promise.resolve('b');
    }, (e) => events.push(e));
    expect(q.current()?.kind).toBe('backup');
    expect(q.pending().map((p) => p.kind)).toEqual(['restore']);
    expect(events[0]).toMatchObject({ event: 'queued', position: 1, running: { kind: 'backup', source: 'schedule' } });
    g.open();
    expect(await Promise.all([a, b])).toEqual(['a', 'b']);
    expect(order).toEqual(['a start', 'a end', 'b']);
    expect(events.at(-1)).toMatchObject({ event: 'started', operation: { kind: 'restore' } });
  });

  it('refuses with BUSY, naming what runs, when too many wait', async () => {
    const q = new OperationQueue(() => new Date(), 1);
    const g = gate();
    const running = q.submit('backup', 'command', () => g.promise);
    const waiting = q.submit('verify', 'command', () => Promise.resolve());
    await expect(q.submit('verify', 'command', () => Promise.resolve())).rejects.toMatchObject({ code: 'BUSY', message: expect.stringContaining('backup (command) running since') });
    g.open();
    await Promise.all([running, waiting]);
  });

  it('a failing operation does not block the next', async () => {
    const q = new OperationQueue(() => new Date());
    const a = q.submit('backup', 'command', () => Promise.reject(new Error('boom')));
    const b = q.submit('verify', 'command', () => Promise.resolve('ok'));
    await expect(a).rejects.toThrow('boom');
    expect(await b).toBe('ok');
  });

  it('close() refuses waiters, lets the running one finish within the grace period', async () => {
    const q = new OperationQueue(() => new Date());
    const running = q.submit('backup', 'command', async () => {
      await delay(30);
      return 'finished';
    });
    const waiting = q.submit('verify', 'command', () => Promise.resolve('never')).catch((e: unknown) => e);
    await q.close(1000);
    expect(await running).toBe('finished');
    expect(await waiting).toMatchObject({ code: 'ABORTED' });
    await expect(q.submit('backup', 'command', () => Promise.resolve())).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('close() aborts the running operation when the grace period runs out', async () => {
    const q = new OperationQueue(() => new Date());
    let sawAbort = false;
    const running = q.submit('backup', 'command', (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => ((sawAbort = true), reject(signal.reason as Error)))));
    await q.close(20);
    expect(sawAbort).toBe(true);
    await expect(running).rejects.toMatchObject({ code: 'ABORTED' });
  });
});
