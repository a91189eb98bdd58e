/**
 * The DatabaseBackupEngines the controller installs from its settings (`engines`: the chart's shipped engines,
 * generated from tools/; `removedEngines`: the ones the chart has switched off). Pure: what to do with one name,
 * given what the settings say and the object the cache holds.
 *
 * An engine is the controller's when it carries the controller's managed-by label AND the controller's field
 * manager wrote that label (managedFields): a copy someone made of an installed engine (label included, written
 * by kubectl) is not. The controller creates an engine only where none exists (a plain create: never a forced
 * apply over someone's object), brings its own back to the settings' spec, and deletes its own only when the
 * settings name it as removed; an engine missing from the settings is left alone.
 */
import { API_VERSION } from '../api/crds/common.js';
import type { DatabaseBackupEngine, EngineSpec } from '../api/crds/engine.js';
import { appliedLabel, contains, type ManagedFieldsEntry } from './compare.js';
import { FIELD_MANAGER, LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY } from './names.js';

export type EngineInstall =
  /** None exists: created (an engine that appears meanwhile makes the create fail, and the next reconcile sees it). */
  | { action: 'create'; object: DatabaseBackupEngine }
  /** The controller's own, with a field it sets changed (by someone, or by the settings): applied again, if still this version. */
  | { action: 'apply'; object: DatabaseBackupEngine }
  /** The controller's own, and the settings name it as removed: deleted, only this object (its uid). */
  | { action: 'delete'; uid: string }
  /** An engine of this name that is not the controller's: left as it is, and said once. */
  | { action: 'foreign'; message: string }
  | { action: 'none' };

interface Meta {
  uid?: string;
  resourceVersion?: string;
  labels?: Record<string, string>;
  managedFields?: ManagedFieldsEntry[];
}
/** The metadata fields read here (the resource type declares only name, namespace and generation). */
const meta = (engine: DatabaseBackupEngine) => engine.metadata as Meta;

/**
 * The controller's label, written by the controller's own field manager (its create, or its apply): a copy
 * made with kubectl, label included, names kubectl's manager. The engine cache keeps managedFields for this.
 */
export function installedByController(engine: DatabaseBackupEngine | undefined): boolean {
  if (!engine) return false;
  const m = meta(engine);
  return m.labels?.[LABEL_MANAGED_BY] === MANAGED_BY && appliedLabel(m.managedFields, FIELD_MANAGER, LABEL_MANAGED_BY, ['Apply', 'Update']);
}

/** The object the controller writes for a shipped engine; with `resourceVersion`, applied only over that version. */
export function shippedEngineObject(name: string, spec: EngineSpec, resourceVersion?: string): DatabaseBackupEngine {
  return {
    apiVersion: API_VERSION,
    kind: 'DatabaseBackupEngine',
    metadata: { name, labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_PART_OF]: MANAGED_BY }, ...(resourceVersion ? { resourceVersion } : {}) },
    spec,
  } as DatabaseBackupEngine;
}

export function planEngineInstall(name: string, wanted: EngineSpec | undefined, removed: boolean, current: DatabaseBackupEngine | undefined): EngineInstall {
  const ours = installedByController(current);
  if (!wanted) {
    const uid = current ? meta(current).uid : undefined;
    return removed && ours && uid ? { action: 'delete', uid } : { action: 'none' };
  }
  if (!current) return { action: 'create', object: shippedEngineObject(name, wanted) };
  if (!ours) {
    return {
      action: 'foreign',
      message: `the controller's settings install an engine "${name}", but a DatabaseBackupEngine of that name exists that the controller did not install: it is left as it is; delete it (or disable engines.${name} in the chart) to settle which one is meant`,
    };
  }
  // Fields the controller sets must hold its values; what others added beside them stays (server-side apply keeps it).
  if (contains(current.spec, wanted)) return { action: 'none' };
  return { action: 'apply', object: shippedEngineObject(name, wanted, meta(current).resourceVersion) };
}
