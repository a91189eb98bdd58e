/**
 * Smoke test of testenv/kube.ts against the real control plane (not part of
 * `make test`; needs `bash testenv/kube/build.sh` once):
 *
 *   npx tsx test/kube-smoke.ts
 *
 * Proves what the controller's integration tests will rely on: namespaces,
 * a CRD with schema validation and a custom object, Deployments getting
 * ReplicaSets (controller-manager), garbage collection of owned objects,
 * RBAC answers for ServiceAccounts (impersonated, static token and real
 * token), and Leases. Prints each step's duration; exits 1 on the first failure.
 */
import { serviceAccountUser, startKube, type KubeInstance } from '../testenv/kube.js';

const NS = 'x';

const CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.example.com
spec:
  group: smoke.example.com
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
    - name: v1
      served: true
      storage: true
      subresources: { status: {} }
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [size]
              properties:
                size: { type: integer, minimum: 1 }
`;

const widget = (name: string, size: number): string => `
apiVersion: smoke.example.com/v1
kind: Widget
metadata: { name: ${name}, namespace: ${NS} }
spec: { size: ${size} }
`;

const ownedConfigMap = (ownerUid: string): string => `
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned-by-w1
  namespace: ${NS}
  ownerReferences:
    - { apiVersion: smoke.example.com/v1, kind: Widget, name: w1, uid: ${ownerUid}, controller: true, blockOwnerDeletion: true }
data: { a: b }
`;

const LEASE = `
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: { name: smoke-leader, namespace: ${NS} }
spec: { holderIdentity: a, leaseDurationSeconds: 15 }
`;

const ms = (t0: number): string => `${((performance.now() - t0) / 1000).toFixed(2)} s`;

async function step(name: string, fn: () => Promise<string | void>): Promise<void> {
  const t0 = performance.now();
  const note = await fn();
  console.log(`ok   ${name.padEnd(60)} ${ms(t0).padStart(8)}${note ? `  (${note})` : ''}`);
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function expect(cond: boolean, message: string): void {
  if (!cond) throw new Error(message);
}

async function run(kube: KubeInstance): Promise<void> {
  const k = kube.kubectlOk;

  await step(`kubectl create namespace ${NS}`, async () => {
    await k(['create', 'namespace', NS]);
  });

  await step('CRD (apiextensions.k8s.io/v1) established', async () => {
    await k(['apply', '-f', '-'], { input: CRD });
    await k(['wait', '--for=condition=Established', 'crd/widgets.smoke.example.com', '--timeout=30s']);
  });

  await step('custom object created and read back', async () => {
    await k(['apply', '-f', '-'], { input: widget('w1', 3) });
    const size = await k(['get', 'widget', 'w1', '-n', NS, '-o', 'jsonpath={.spec.size}']);
    expect(size === '3', `widget size is ${size}`);
  });

  await step('invalid custom object rejected by the schema', async () => {
    const r = await kube.kubectl(['apply', '-f', '-'], { input: widget('bad', 0) });
    expect(r.code !== 0 && /spec\.size/.test(r.stderr), `expected a spec.size validation error, got exit ${r.code}: ${r.stderr}`);
    return r.stderr.trim().split('\n').pop()?.slice(0, 120);
  });

  await step('Deployment gets a ReplicaSet and a Pod (controller-manager)', async () => {
    await k(['create', 'deployment', 'web', '-n', NS, '--image=registry.invalid/none:1']);
    await until('a ReplicaSet of deployment web', async () => (await k(['get', 'rs', '-n', NS, '-l', 'app=web', '-o', 'name'])).trim() !== '');
    await until('a Pod of deployment web', async () => (await k(['get', 'pods', '-n', NS, '-l', 'app=web', '-o', 'name'])).trim() !== '');
    return 'pods stay Pending: no scheduler, no kubelet';
  });

  await step('deleting the Deployment garbage-collects its ReplicaSet', async () => {
    await k(['delete', 'deployment', 'web', '-n', NS, '--wait=false']);
    await until('the ReplicaSet to go', async () => (await k(['get', 'rs', '-n', NS, '-l', 'app=web', '-o', 'name'])).trim() === '');
  });

  await step('deleting a custom object garbage-collects what it owns', async () => {
    const uid = await k(['get', 'widget', 'w1', '-n', NS, '-o', 'jsonpath={.metadata.uid}']);
    await k(['apply', '-f', '-'], { input: ownedConfigMap(uid) });
    await k(['delete', 'widget', 'w1', '-n', NS, '--wait=false']);
    await until('the owned ConfigMap to go', async () => (await kube.kubectl(['get', 'configmap', 'owned-by-w1', '-n', NS])).code !== 0);
  });

  await step(`can-i --as system:serviceaccount:${NS}:default get secrets: no`, async () => {
    const r = await kube.kubectl(['auth', 'can-i', '--as', `system:serviceaccount:${NS}:default`, 'get', 'secrets', '-n', NS]);
    expect(r.code === 1 && r.stdout.trim() === 'no', `expected "no" (exit 1), got exit ${r.code}: ${r.stdout}${r.stderr}`);
  });

  await step('static token of a ServiceAccount-like user: no, then yes', async () => {
    const token = kube.tokens[`system:serviceaccount:${NS}:runner`]!;
    const before = await kube.kubectl(['auth', 'can-i', 'get', 'configmaps', '-n', NS], { token });
    expect(before.stdout.trim() === 'no', `before the RoleBinding: ${before.stdout}${before.stderr}`);
    await k(['create', 'role', 'read-cm', '-n', NS, '--verb=get', '--resource=configmaps']);
    await k(['create', 'rolebinding', 'runner-read-cm', '-n', NS, '--role=read-cm', `--serviceaccount=${NS}:runner`]);
    await until('the RoleBinding to apply', async () => (await kube.kubectl(['auth', 'can-i', 'get', 'configmaps', '-n', NS], { token })).stdout.trim() === 'yes');
    const other = await kube.kubectl(['auth', 'can-i', 'list', 'configmaps', '-n', NS], { token });
    expect(other.stdout.trim() === 'no', `list should stay forbidden: ${other.stdout}`);
  });

  await step('real ServiceAccount token is authenticated and forbidden', async () => {
    const token = await kube.serviceAccountToken(NS, 'default');
    const who = await kube.kubectl(['get', 'secrets', '-n', NS], { token });
    expect(who.code !== 0 && /forbidden/i.test(who.stderr) && who.stderr.includes(`system:serviceaccount:${NS}:default`), `expected Forbidden: ${who.stderr}`);
  });

  await step('coordination.k8s.io/v1 Lease create and update', async () => {
    await k(['apply', '-f', '-'], { input: LEASE });
    await k(['patch', 'lease', 'smoke-leader', '-n', NS, '--type=merge', '-p', '{"spec":{"holderIdentity":"b"}}']);
    const holder = await k(['get', 'lease', 'smoke-leader', '-n', NS, '-o', 'jsonpath={.spec.holderIdentity}']);
    expect(holder === 'b', `holder is ${holder}`);
  });
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const kube = await startKube({ users: [serviceAccountUser(NS, 'runner')] });
  const { etcd, apiserver, controllerManager } = kube.startupMs;
  const parts = `etcd ${etcd} ms, kube-apiserver ${apiserver} ms, kube-controller-manager ${controllerManager ?? '-'} ms`;
  console.log(`ok   ${'startKube()'.padEnd(60)} ${ms(t0).padStart(8)}  (${parts})`);
  try {
    const version = JSON.parse(await kube.kubectlOk(['version', '-o', 'json'])) as { serverVersion?: { gitVersion?: string } };
    console.log(`     ${kube.server}: ${version.serverVersion?.gitVersion ?? '?'}, temp dir ${kube.dir}`);
    await run(kube);
  } finally {
    const t1 = performance.now();
    await kube.stop();
    console.log(`ok   ${'stop()'.padEnd(60)} ${ms(t1).padStart(8)}`);
  }
  console.log(`all good in ${ms(t0)}`);
}

main().catch((err: unknown) => {
  console.error(`FAIL ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
