/**
 * A controller under test: the CRDs applied to a real kube-apiserver, the
 * controller's ServiceAccount with exactly the rights of controller/rbac.ts,
 * and a KubeConfig that authenticates as it. Used by the integration tests
 * and the controller benchmark.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { renderCrds } from '../api/crds/index.js';
import { CLUSTER_RULES, namespaceRules } from '../controller/rbac.js';
import type { KubeInstance } from './kube.js';

export const CONTROLLER_SA = 'db-backup-controller';

export async function applyCrds(kube: KubeInstance): Promise<void> {
  for (const f of renderCrds()) await kube.kubectlOk(['apply', '-f', '-'], { input: f.yaml });
  await kube.kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/databasebackups.dbbackup.io', 'crd/databasebackupstorageclasses.dbbackup.io', 'crd/databasebackupengines.dbbackup.io']);
}

/** The PersistentVolumeClaim the shared storage class fixture (test/crd-fixtures.ts, location "local") mounts. */
export const FIXTURE_CLAIM = 'backups';

/** The Secrets the DatabaseBackup fixture (test/crd-fixtures.ts) names in its own namespace: the password and the CA, as stringData. */
export const FIXTURE_DB_SECRETS: Readonly<Record<string, Record<string, string>>> = {
  'orders-db': { password: 'example-password' },
  'orders-db-ca': { 'ca.crt': '-----BEGIN CERTIFICATE-----\nexample\n-----END CERTIFICATE-----\n' },
};

/**
 * Creates the namespaces, each with the PersistentVolumeClaims `claims` and the Secrets `secrets` (by default
 * the fixture's), which a runner must find before the controller deploys it (ClaimNotFound,
 * NamespaceSecretNotFound). No volume is bound: pods never start on kube-apiserver alone.
 */
export async function ensureNamespaces(
  kube: KubeInstance,
  names: string[],
  claims: string[] = [FIXTURE_CLAIM],
  secrets: Readonly<Record<string, Record<string, string>>> = FIXTURE_DB_SECRETS,
): Promise<void> {
  const docs = names.flatMap((n) => [
    stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: n } }),
    ...claims.map((c) =>
      stringify({ apiVersion: 'v1', kind: 'PersistentVolumeClaim', metadata: { name: c, namespace: n }, spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } } }),
    ),
    ...Object.entries(secrets).map(([name, stringData]) => stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace: n }, stringData })),
  ]);
  await kube.kubectlOk(['apply', '-f', '-'], { input: docs.join('---\n') });
}

/**
 * Creates the controller's ServiceAccount, ClusterRole(+Binding) and Role(+Binding) in `namespace`
 * and returns a KubeConfig (and its file) that acts as that ServiceAccount.
 */
export async function controllerIdentity(kube: KubeInstance, namespace: string, leaseName = 'db-backup-controller'): Promise<{ kubeConfig: KubeConfig; path: string }> {
  await ensureNamespaces(kube, [namespace], [FIXTURE_CLAIM], {});
  const subject = [{ kind: 'ServiceAccount', name: CONTROLLER_SA, namespace }];
  const objects = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: CONTROLLER_SA, namespace } },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: CONTROLLER_SA }, rules: CLUSTER_RULES },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: CONTROLLER_SA },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: CONTROLLER_SA },
      subjects: subject,
    },
    { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: CONTROLLER_SA, namespace }, rules: namespaceRules(leaseName) },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: CONTROLLER_SA, namespace },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: CONTROLLER_SA },
      subjects: subject,
    },
  ];
  await kube.kubectlOk(['apply', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
  const token = await kube.serviceAccountToken(namespace, CONTROLLER_SA, 3600);
  const path = await kube.writeKubeconfig(token, CONTROLLER_SA);
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path);
  return { kubeConfig, path };
}

/* eslint-disable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access -- the API server's JSON, checked field by field by the tests */
export type KubeJson = Record<string, any>;

/** kubectl as the tests use it: apply objects, get one as JSON (undefined when absent), read a condition. */
export interface KubeJsonClient {
  apply: (...objs: unknown[]) => Promise<string>;
  get: (args: string[]) => Promise<KubeJson | undefined>;
  condition: (o: KubeJson | undefined, type: string) => KubeJson | undefined;
}

/** `kube` is a getter: suites start their API server in beforeAll. */
export function kubeJson(kube: () => KubeInstance): KubeJsonClient {
  return {
    apply: (...objs) => kube().kubectlOk(['apply', '-f', '-'], { input: objs.map((o) => stringify(o)).join('---\n') }),
    get: async (args) => {
      const r = await kube().kubectl([...args, '-o', 'json']);
      return r.code === 0 ? (JSON.parse(r.stdout) as KubeJson) : undefined;
    },
    condition: (o, type) => (o?.status?.conditions as KubeJson[] | undefined)?.find((c) => c.type === type),
  };
}
/* eslint-enable @typescript-eslint/no-explicit-any, @typescript-eslint/no-unsafe-member-access */
