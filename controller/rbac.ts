/**
 * The rights the controller needs, as data: the Helm chart's ClusterRole and
 * Role carry exactly these rules, and the integration tests run the
 * controller under them.
 *
 * Secrets: read (get/list/watch) only in the controller's own namespace,
 * where storage class credentials live; in other namespaces the controller
 * may only write the runners' config Secrets, never read any Secret.
 * `delete` on the runner objects (config Secret included) is what revokes a
 * runner whose DatabaseBackup may no longer use its storage.
 */
import type { V1PolicyRule } from '@kubernetes/client-node';
import { GROUP } from '../api/crds/common.js';

const MANAGE = ['get', 'list', 'watch', 'create', 'patch', 'update', 'delete'];

export const CLUSTER_RULES: V1PolicyRule[] = [
  { apiGroups: [GROUP], resources: ['databasebackups', 'databasebackupstorageclasses'], verbs: ['get', 'list', 'watch'] },
  { apiGroups: [GROUP], resources: ['databasebackups/status', 'databasebackupstorageclasses/status'], verbs: ['get', 'patch', 'update'] },
  // ownerReferences with blockOwnerDeletion need this where the OwnerReferencesPermissionEnforcement admission plugin runs.
  { apiGroups: [GROUP], resources: ['databasebackups/finalizers'], verbs: ['update'] },
  { apiGroups: [''], resources: ['secrets'], verbs: ['create', 'patch', 'update', 'delete'] },
  { apiGroups: [''], resources: ['serviceaccounts', 'services'], verbs: MANAGE },
  { apiGroups: ['apps'], resources: ['deployments'], verbs: MANAGE },
  { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings'], verbs: MANAGE },
  { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
];

/** In the controller's namespace: its Secrets (storage credentials) and its leader Lease. */
export function namespaceRules(leaseName: string): V1PolicyRule[] {
  return [
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [leaseName], verbs: ['get', 'update'] },
  ];
}
