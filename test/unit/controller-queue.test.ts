import { describe, expect, it } from 'vitest';
import { WorkQueue } from '../../controller/queue.js';

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('WorkQueue', () => {
  it('never handles one key twice at once, and runs it again when it was added meanwhile', async () => {
    const gate = deferred();
    const calls: string[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const q = new WorkQueue({
      workers: 4,
      handle: async (key) => {
        calls.push(key);
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        if (calls.length === 1) await gate.promise;
        concurrent--;
      },
    });
    q.add('a');
    q.add('a');
    q.add('a');
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual(['a']);
    gate.resolve();
    await q.idle();
    expect(calls).toEqual(['a', 'a']);
    expect(maxConcurrent).toBe(1);
  });

  it('deduplicates waiting keys and keeps at most `workers` running', async () => {
    let running = 0;
    let peak = 0;
    const seen: string[] = [];
    const q = new WorkQueue({
      workers: 2,
      handle: async (key) => {
        running++;
        peak = Math.max(peak, running);
        seen.push(key);
        await new Promise((r) => setTimeout(r, 5));
        running--;
      },
    });
    for (const k of ['a', 'b', 'c', 'd', 'c', 'd', 'e']) q.add(k);
    await q.idle();
    expect(peak).toBe(2);
    expect(seen.sort()).toEqual(['a', 'b', 'c', 'd', 'e']);
  });

  it('lets the event loop run between keys when handlers never wait on I/O', async () => {
    const log: string[] = [];
    const q = new WorkQueue({
      workers: 1,
      handle: (key) => {
        log.push(key);
        if (key === 'a') setImmediate(() => log.push('other work'));
        return Promise.resolve();
      },
    });
    q.add('a');
    q.add('b');
    await q.idle();
    expect(log).toEqual(['a', 'other work', 'b']);
  });

  it('retries a failing key with doubling delays, reset by a success', async () => {
    const delays: number[] = [];
    let attempts = 0;
    const q = new WorkQueue({
      workers: 1,
      baseDelayMs: 100,
      maxDelayMs: 350,
      handle: () => {
        attempts++;
        return attempts <= 4 ? Promise.reject(new Error('conflict')) : Promise.resolve();
      },
      onError: (_k, _e, ms) => delays.push(ms),
      setTimer: (fn) => {
        queueMicrotask(fn);
        return { cancel: () => undefined };
      },
    });
    q.add('a');
    await q.idle();
    expect(delays).toEqual([100, 200, 350, 350]);
    expect(attempts).toBe(5);
  });

  it('stop drops waiting keys and releases idle()', async () => {
    const q = new WorkQueue({ workers: 1, handle: () => Promise.resolve() });
    q.addAfter('a', 60_000);
    const idle = q.idle();
    q.stop();
    await idle;
    q.add('b');
    expect(q.depth).toBe(0);
  });
});
