import { describe, expect, it } from 'vitest';
import { resourceOf } from '../../controller/kube.js';
import { createControllerMetrics } from '../../controller/metrics.js';
import { WorkQueue } from '../../controller/queue.js';

async function gauge(metrics: ReturnType<typeof createControllerMetrics>, name: string): Promise<number | undefined> {
  const m = await metrics.registry.getSingleMetric(name)?.get();
  return m?.values[0]?.value;
}

describe('controller metrics', () => {
  it.each([
    ['Deployment', 'deployments'],
    ['Secret', 'secrets'],
    ['Service', 'services'],
    ['ServiceAccount', 'serviceaccounts'],
    ['Role', 'roles'],
    ['RoleBinding', 'rolebindings'],
    ['Event', 'events'],
    ['DatabaseBackup', 'databasebackups'],
    ['DatabaseBackupStorageClass', 'databasebackupstorageclasses'],
    ['ConfigMap', 'configmaps'],
  ])('labels a request on a %s with the plural resource "%s", as list and watch do', (kind, resource) => {
    expect(resourceOf(kind)).toBe(resource);
  });

  it('the queue depth gauge follows the queue and is 0 once the queue is idle', async () => {
    const metrics = createControllerMetrics();
    const seen: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new WorkQueue({
      workers: 1,
      handle: async () => {
        await gate;
      },
      onDepth: (d) => {
        seen.push(d);
        metrics.queueDepth.set(d);
      },
    });
    q.add('ns/a');
    q.add('ns/b');
    expect(await gauge(metrics, 'dbbackup_controller_queue_depth')).toBe(2);
    release();
    await q.idle();
    expect(await gauge(metrics, 'dbbackup_controller_queue_depth')).toBe(0);
    expect(seen).toEqual([1, 2, 1, 0]);
  });

  it('the queue depth is 0 after a failed key was handled (its retry waits on a timer, not in the queue)', async () => {
    let depth = -1;
    const timers: (() => void)[] = [];
    const q = new WorkQueue({
      workers: 1,
      handle: () => Promise.reject(new Error('boom')),
      onDepth: (d) => (depth = d),
      setTimer: (fn) => {
        timers.push(fn);
        return { cancel: () => undefined };
      },
    });
    q.add('ns/a');
    expect(depth).toBe(1);
    await new Promise((r) => setTimeout(r, 20));
    expect(timers).toHaveLength(1);
    expect(depth).toBe(0);
    q.stop();
  });
});
