/**
 * The controller's own settings: one YAML file (the Helm chart renders it
 * into a ConfigMap) plus the namespace it runs in. One TypeBox schema gives
 * the types and the validation, as for the runner's config.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { DURATION_PATTERN, structuralErrors, type ValidationResult } from '../api/index.js';
import { Resources } from '../api/crds/runner-pod.js';
import { EngineSpec, validateEngine } from '../api/crds/engine.js';

const Duration = (description: string, def: string) =>
  Type.String({ pattern: DURATION_PATTERN, default: def, description: `${description} (a duration such as 15s, 10m)` });

export const EngineImages = Type.Object(
  {
    defaultVersion: Type.String({ minLength: 1, description: 'server major version assumed when a DatabaseBackup names none' }),
    images: Type.Record(Type.String({ pattern: '^[0-9]+(\\.[0-9]+)?$' }), Type.String({ minLength: 1 }), {
      description: 'runner image per server major version, e.g. { "16": "ghcr.io/acme/backup-runner-postgresql:16-1.0.0" }',
    }),
  },
  { additionalProperties: false },
);
export type EngineImages = Static<typeof EngineImages>;

const ENGINE_NAME = '^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$';

export const ControllerSettings = Type.Object(
  {
    namespace: Type.String({ minLength: 1, default: 'db-backup-system', description: 'the controller\'s namespace: storage class Secrets live here (env POD_NAMESPACE wins)' }),
    runnerImages: Type.Object(
      { postgresql: Type.Optional(EngineImages), mysql: Type.Optional(EngineImages) },
      { additionalProperties: false, default: {} },
    ),
    allowedRunnerImagePrefixes: Type.Array(Type.String({ minLength: 1, pattern: '^[a-zA-Z0-9][-a-zA-Z0-9._]*(:[0-9]+)?(/[a-z0-9][-a-z0-9._]*)*/?$' }), {
      default: [],
      description:
        'where spec.runner.image may come from: "registry.example.com/team/" admits every repository below it, "registry.example.com/team/runner" that one repository (any tag or digest); the runnerImages are always allowed; empty: only those',
    }),
    engines: Type.Record(Type.String({ pattern: ENGINE_NAME }), EngineSpec, {
      default: {},
      description:
        'DatabaseBackupEngines the controller installs and keeps (the chart\'s shipped engines): name -> spec; their images are allowed for them like the runnerImages. One of the same name that the controller did not install is left alone; one missing here is left as it is',
    }),
    removedEngines: Type.Array(Type.String({ pattern: ENGINE_NAME }), {
      default: [],
      uniqueItems: true,
      description: 'engines the controller deletes if it installed them (the chart\'s disabled shipped engines)',
    }),
    imagePullPolicy: Type.Optional(Type.Union([Type.Literal('Always'), Type.Literal('IfNotPresent'), Type.Literal('Never')])),
    runnerResources: Type.Object(Resources.properties, {
      additionalProperties: false,
      default: { requests: { cpu: '100m', memory: '192Mi' }, limits: { memory: '1Gi' } },
      description: 'runner resources when a DatabaseBackup sets none',
    }),
    runnerUser: Type.Integer({ minimum: 1, default: 65532, description: 'uid and gid of the runner process (non-root)' }),
    workers: Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'DatabaseBackups reconciled at once' }),
    resyncPeriod: Duration('how often every DatabaseBackup is compared again with what runs', '10m'),
    metricsHost: Type.String({ default: '0.0.0.0' }),
    metricsPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
    leaderElection: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        leaseName: Type.String({ minLength: 1, default: 'db-backup-controller' }),
        leaseDuration: Duration('how long a lease holds without renewal', '15s'),
        renewDeadline: Duration('how long the leader keeps trying to renew before it steps down', '10s'),
        retryPeriod: Duration('time between tries', '2s'),
      },
      { additionalProperties: false, default: {} },
    ),
    liveness: Type.Object(
      {
        watchFailureTimeout: Duration(
          '/healthz answers 503 (and the kubelet restarts the controller) once a list or watch has failed without a break for longer than this; the leader election loop gets the same allowance',
          '5m',
        ),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);
export type ControllerSettings = Static<typeof ControllerSettings>;

export function validateSettings(input: unknown): ValidationResult<ControllerSettings> {
  const value = Value.Default(ControllerSettings, Value.Clone(input ?? {})) as ControllerSettings;
  const errors = structuralErrors(ControllerSettings, value);
  if (errors.length > 0) return { ok: false, errors };
  // Each engine as the API server would store it (the CRD's defaults), and checked as the controller checks an engine.
  for (const [name, spec] of Object.entries(value.engines)) {
    value.engines[name] = Value.Default(EngineSpec, spec) as EngineSpec;
    const v = validateEngine({ metadata: { name }, spec: value.engines[name] });
    if (!v.ok) errors.push(...v.errors.map((e) => ({ ...e, path: e.path.replace(/^spec\b/, `engines.${name}`).replace(/^metadata\.name$/, `engines.${name}`) })));
    if (value.removedEngines.includes(name)) errors.push({ path: `removedEngines`, message: `names "${name}", which engines installs` });
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value };
}
