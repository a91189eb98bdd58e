/**
 * The rights the controller needs, as data: the Helm chart's ClusterRole and
 * Role carry exactly these rules, and the integration tests run the
 * controller under them. test/integration/controller-rbac.test.ts records
 * the controller's requests in kube-apiserver's audit log and checks that
 * every request is granted here and every grant is used.
 *
 * Secrets: read (list/watch) only in the controller's own namespace, where
 * storage class credentials live; in other namespaces the controller may
 * only write the runners' config Secrets, never get, list or watch any (a
 * patch answers with the stored object: see docs/security.md). Owned objects are
 * written by server-side apply (patch, and create for a new object) and
 * removed by the garbage collector when their DatabaseBackup goes; `delete`
 * on the runner objects (config Secret included) is what revokes a runner
 * whose DatabaseBackup may no longer use its storage. No update is granted.
 */
import type { V1PolicyRule } from '@kubernetes/client-node';
import { GROUP } from '../api/crds/common.js';

/**
 * Watched (list, watch), read when missing from the cache (get: the NameConflict check), server-side
 * applied (patch, create), deleted when access to the storage is revoked (delete).
 */
const OWN = ['get', 'list', 'watch', 'create', 'patch', 'delete'];

/**
 * Rights no request of the controller uses but an admission plugin checks: ownerReferences with
 * blockOwnerDeletion need update on the owner's finalizers where OwnerReferencesPermissionEnforcement runs.
 */
export const ADMISSION_RULES: V1PolicyRule[] = [{ apiGroups: [GROUP], resources: ['databasebackups/finalizers'], verbs: ['update'] }];

export const CLUSTER_RULES: V1PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['databasebackups', 'databasebackupstorageclasses'], verbs: ['list', 'watch'] },
  // Written: the engines of the controller's settings (the chart's shipped engines) are created or applied, and
  // one it installed is deleted (by uid) when the settings name it in removedEngines.
  { apiGroups: [GROUP], resources: ['databasebackupengines'], verbs: ['list', 'watch', 'create', 'patch', 'delete'] },
  // get: the runner's Role grants it on its own DatabaseBackup's status, and RBAC lets a Role grant only what its creator holds.
  { apiGroups: [GROUP], resources: ['databasebackups/status'], verbs: ['get', 'patch'] },
  { apiGroups: [GROUP], resources: ['databasebackupstorageclasses/status', 'databasebackupengines/status'], verbs: ['patch'] },
  ...ADMISSION_RULES,
  // Written, never read: a dry-run apply of the bare name tells whether a foreign Secret holds a runner's name; a
  // dry-run JSON patch whose test always fails tells whether a Secret the runner needs exists (404 or 422, no data).
  // Deleted (by name: it cannot be read) when access to the storage is revoked.
  { apiGroups: [''], resources: ['secrets'], verbs: ['create', 'patch', 'delete'] },
  { apiGroups: [''], resources: ['serviceaccounts', 'services'], verbs: OWN },
  // Watched to tell whether a claim a runner would mount exists (ClaimNotFound); never written.
  { apiGroups: [''], resources: ['persistentvolumeclaims'], verbs: ['list', 'watch'] },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: OWN },
  { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings'], verbs: OWN },
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];

/** In the controller's namespace: its Secrets (storage credentials) and its leader Lease. */
export function namespaceRules(leaseName: string): V1PolicyRule[] {
  return [
    { apiGroups: [''], resources: ['secrets'], verbs: ['list', 'watch'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [leaseName], verbs: ['get', 'update'] },
  ];
}
