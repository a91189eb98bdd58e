/**
 * Pure builders for the kube test environment: command lines of etcd,
 * kube-apiserver and kube-controller-manager, the static token file and
 * kubeconfig files. No I/O here, so every flag is visible in one place.
 */
import { stringify } from 'yaml';

/** Controllers kube-controller-manager runs by default here: enough for owned objects, Deployments and ServiceAccount tokens. */
export const DEFAULT_CONTROLLERS = ['garbagecollector', 'deployment', 'replicaset', 'serviceaccount', 'serviceaccount-token', 'namespace'];

export const SERVICE_CLUSTER_IP_RANGE = '10.0.0.0/24';
export const SERVICE_ACCOUNT_ISSUER = 'https://kubernetes.default.svc.cluster.local';

/** A user of the static token file. */
export interface KubeUser {
  name: string;
  uid?: string;
  /** `system:authenticated` is added by the API server itself. */
  groups?: string[];
}

/** The user a ServiceAccount's own token would authenticate as (name and groups), for a static token. */
export function serviceAccountUser(namespace: string, name: string): KubeUser {
  return {
    name: `system:serviceaccount:${namespace}:${name}`,
    groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`],
  };
}

export function etcdArgs(p: { name: string; dataDir: string; clientPort: number; peerPort: number }): string[] {
  const client = `http://127.0.0.1:${p.clientPort}`;
  const peer = `http://127.0.0.1:${p.peerPort}`;
  return [
    `--name=${p.name}`,
    `--data-dir=${p.dataDir}`,
    `--listen-client-urls=${client}`,
    `--advertise-client-urls=${client}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${p.name}=${peer}`,
    '--initial-cluster-state=new',
    '--logger=zap',
    '--log-level=warn',
  ];
}

export interface ApiserverPlan {
  etcdUrl: string;
  securePort: number;
  certDir: string;
  serviceAccountPublicKey: string;
  serviceAccountPrivateKey: string;
  tokenFile: string;
  extraArgs?: string[];
}

export function apiserverArgs(p: ApiserverPlan): string[] {
  return [
    `--etcd-servers=${p.etcdUrl}`,
    '--bind-address=127.0.0.1',
    `--secure-port=${p.securePort}`,
    '--insecure-port=0',
    `--cert-dir=${p.certDir}`,
    `--service-account-key-file=${p.serviceAccountPublicKey}`,
    `--service-account-signing-key-file=${p.serviceAccountPrivateKey}`,
    `--service-account-issuer=${SERVICE_ACCOUNT_ISSUER}`,
    `--token-auth-file=${p.tokenFile}`,
    '--authorization-mode=RBAC',
    `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
    // Otherwise the `kubernetes` Service advertises the host's address, where
    // this server does not listen; nothing here needs that Service.
    '--endpoint-reconciler-type=none',
    '--profiling=false',
    ...(p.extraArgs ?? []),
  ];
}

export interface ControllerManagerPlan {
  kubeconfig: string;
  securePort: number;
  certDir: string;
  serviceAccountPrivateKey: string;
  rootCaFile: string;
  controllers?: string[];
  extraArgs?: string[];
}

export function controllerManagerArgs(p: ControllerManagerPlan): string[] {
  return [
    `--kubeconfig=${p.kubeconfig}`,
    `--authentication-kubeconfig=${p.kubeconfig}`,
    `--authorization-kubeconfig=${p.kubeconfig}`,
    // The API server has no client CA or request-header config to look up.
    '--authentication-skip-lookup=true',
    '--bind-address=127.0.0.1',
    `--secure-port=${p.securePort}`,
    '--port=0',
    `--cert-dir=${p.certDir}`,
    `--controllers=${(p.controllers ?? DEFAULT_CONTROLLERS).join(',')}`,
    `--service-account-private-key-file=${p.serviceAccountPrivateKey}`,
    `--root-ca-file=${p.rootCaFile}`,
    '--leader-elect=false',
    '--profiling=false',
    ...(p.extraArgs ?? []),
  ];
}

/** One CSV line per user: `token,name,uid,"group1,group2"` (the format of --token-auth-file). */
export function tokenFile(entries: { token: string; user: KubeUser }[]): string {
  return entries
    .map(({ token, user }) => {
      for (const field of [token, user.name, user.uid ?? '', ...(user.groups ?? [])]) {
        if (/[",\n]/.test(field)) throw new Error(`token file field ${JSON.stringify(field)} contains a comma, quote or newline`);
      }
      const groups = user.groups?.length ? `,"${user.groups.join(',')}"` : '';
      return `${token},${user.name},${user.uid ?? user.name}${groups}\n`;
    })
    .join('');
}

/** A kubeconfig with one cluster, one user (bearer token) and one current context. */
export function kubeconfig(p: { server: string; caFile: string; userName: string; token: string }): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'testenv', cluster: { server: p.server, 'certificate-authority': p.caFile } }],
    users: [{ name: p.userName, user: { token: p.token } }],
    contexts: [{ name: 'testenv', context: { cluster: 'testenv', user: p.userName } }],
    'current-context': 'testenv',
  });
}
