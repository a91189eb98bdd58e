/** Inputs of the controller's render and reconcile tests: settings and the Secrets of the controller's namespace. */
import type { RenderSettings } from '../controller/render/objects.js';
import { validateSettings, type ControllerSettings } from '../controller/settings.js';

export const CONTROLLER_NAMESPACE = 'db-backup-system';

export const renderSettings = (): RenderSettings => ({
  controllerNamespace: CONTROLLER_NAMESPACE,
  runnerImages: {
    postgresql: {
      defaultVersion: '16',
      images: {
        '15': 'registry.example/backup-runner-postgresql:15-1.0.0',
        '16': 'registry.example/backup-runner-postgresql:16-1.0.0',
        '17': 'registry.example/backup-runner-postgresql:17-1.0.0',
      },
    },
    mysql: {
      defaultVersion: '10.11',
      images: { '10.11': 'registry.example/backup-runner-mariadb:10.11-1.0.0', '11.4': 'registry.example/backup-runner-mariadb:11.4-1.0.0' },
    },
  },
  runnerResources: { requests: { cpu: '100m', memory: '192Mi' }, limits: { memory: '1Gi' } },
  runnerUser: 65532,
});

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The Secrets test/crd-fixtures.ts's storage class references, base64 data by name. */
export const classSecrets = (): Record<string, Record<string, string>> => ({
  minio: { 'access-key': b64('AKIAEXAMPLE'), 'secret-key': b64('example-secret-key') },
  gcs: { 'key.json': b64('{"type":"service_account"}') },
});

/** Validated controller settings for the integration suites: the render settings' images, a long resync, `extra` on top. */
export function controllerSettings(extra: Record<string, unknown> = {}): ControllerSettings {
  const r = validateSettings({ namespace: CONTROLLER_NAMESPACE, runnerImages: renderSettings().runnerImages, resyncPeriod: '1h', workers: 4, ...extra });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.value;
}
