/**
 * The DatabaseBackupEngines the controller installs from its settings (`engines`: the chart's shipped engines,
 * generated from tools/). Pure: what to do with one name, given the spec the settings want and the object the
 * cache holds. The controller marks what it installs with its managed-by label; it never takes over an engine
 * of the same name that someone else made, and removes one of its own that the settings no longer list.
 */
import { isDeepStrictEqual } from 'node:util';
import { API_VERSION } from '../api/crds/common.js';
import type { DatabaseBackupEngine, EngineSpec } from '../api/crds/engine.js';
import { LABEL_MANAGED_BY, LABEL_PART_OF, MANAGED_BY } from './names.js';

export type EngineInstall =
  /** Create it, or bring it back to the settings' spec (someone changed it, or the settings did). */
  | { action: 'apply'; object: DatabaseBackupEngine }
  /** The controller installed it and the settings no longer list it: deleted, only this object (its uid). */
  | { action: 'delete'; uid: string }
  /** An engine of this name that the controller did not install: left as it is, and said once. */
  | { action: 'foreign'; message: string }
  | { action: 'none' };

/** The metadata fields read here (the resource type declares only name, namespace and generation). */
const meta = (engine: DatabaseBackupEngine) => engine.metadata as { uid?: string; labels?: Record<string, string> };

export function installedByController(engine: DatabaseBackupEngine | undefined): boolean {
  return engine !== undefined && meta(engine).labels?.[LABEL_MANAGED_BY] === MANAGED_BY;
}

/** The object the controller applies for a shipped engine. */
export function shippedEngineObject(name: string, spec: EngineSpec): DatabaseBackupEngine {
  return {
    apiVersion: API_VERSION,
    kind: 'DatabaseBackupEngine',
    metadata: { name, labels: { [LABEL_MANAGED_BY]: MANAGED_BY, [LABEL_PART_OF]: MANAGED_BY } },
    spec,
  } as DatabaseBackupEngine;
}

export function planEngineInstall(name: string, wanted: EngineSpec | undefined, current: DatabaseBackupEngine | undefined): EngineInstall {
  const ours = installedByController(current);
  const uid = current ? meta(current).uid : undefined;
  if (!wanted) return ours && uid ? { action: 'delete', uid } : { action: 'none' };
  if (current && !ours) {
    return {
      action: 'foreign',
      message: `the controller's settings install an engine "${name}", but a DatabaseBackupEngine of that name exists without the label ${LABEL_MANAGED_BY}=${MANAGED_BY}: it is left as it is; delete it (or disable engines.${name} in the chart) to settle which one is meant`,
    };
  }
  if (current && isDeepStrictEqual(current.spec, wanted)) return { action: 'none' };
  return { action: 'apply', object: shippedEngineObject(name, wanted) };
}
