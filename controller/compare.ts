/**
 * Does an observed object already hold everything the controller wants?
 * Pure. `desired` is what the controller applies; `observed` is the object
 * as the API server returns it, with defaults and other managers' fields.
 *
 * Rules: every field the controller sets must be there with the same value;
 * fields it does not set are ignored; quantities compare by value (the
 * server writes 1000m back as 1). Lists come in two kinds, as in
 * server-side apply: keyed lists (containers, env, volumes, ports: items
 * with a name, mountPath, containerPort, port or uid) may hold items another
 * manager added, and apply keeps those, so they are no difference; every
 * other list (Role rules, RoleBinding subjects, args, tolerations) is atomic:
 * apply replaces it whole, so any extra item is a difference to repair.
 * A `null` the controller sets means "must be absent": held when the
 * observed object has no such field (or null).
 *
 * What the API server returns is normalised before it is compared: objects
 * read by a list carry no apiVersion and kind (the caches stamp them, see
 * stampListKind in kube.ts); defaults the server adds are fields the
 * controller does not set, so they are no difference.
 */

const QUANTITY = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+))([eE][+-]?\d+|[KMGTPE]i|[numkMGTPE])?$/;
const SUFFIX: Record<string, number> = {
  n: 1e-9, u: 1e-6, m: 1e-3, '': 1, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** The value of a Kubernetes quantity (500m, 1Gi, 2, 1e3), or undefined. */
export function quantityValue(q: unknown): number | undefined {
  if (typeof q === 'number') return q;
  if (typeof q !== 'string') return undefined;
  const m = QUANTITY.exec(q);
  if (!m) return undefined;
  const n = Number(m[1]);
  const suffix = m[2] ?? '';
  if (/^[eE]/.test(suffix)) return n * 10 ** Number(suffix.slice(1));
  return n * SUFFIX[suffix]!;
}

function sameScalar(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if ((typeof a === 'string' || typeof a === 'number') && (typeof b === 'string' || typeof b === 'number')) {
    const x = quantityValue(a);
    const y = quantityValue(b);
    return x !== undefined && y !== undefined && Math.abs(x - y) <= Math.abs(x) * 1e-12;
  }
  return false;
}

const LIST_KEYS = ['name', 'mountPath', 'containerPort', 'port', 'uid'];

function isKeyedList(items: unknown[]): boolean {
  return items.length > 0 && items.every((i) => i !== null && typeof i === 'object' && LIST_KEYS.some((k) => k in i));
}

/** True when `observed` holds every field of `desired` with an equal value. */
export function contains(observed: unknown, desired: unknown): boolean {
  if (desired === undefined) return true;
  if (desired === null) return observed === undefined || observed === null;
  if (Array.isArray(desired)) {
    if (!Array.isArray(observed)) return desired.length === 0 && observed === undefined;
    if (!isKeyedList(desired) && observed.length !== desired.length) return false;
    const used = new Set<number>();
    return desired.every((d) => {
      const i = observed.findIndex((o, j) => !used.has(j) && contains(o, d));
      if (i < 0) return false;
      used.add(i);
      return true;
    });
  }
  if (desired !== null && typeof desired === 'object') {
    if (observed === null || typeof observed !== 'object' || Array.isArray(observed)) {
      // An empty object the server drops (e.g. `emptyDir: {}` kept, `annotations: {}` dropped) is no difference.
      return observed === undefined && Object.keys(desired).length === 0;
    }
    const o = observed as Record<string, unknown>;
    return Object.entries(desired as Record<string, unknown>).every(([k, v]) => contains(o[k], v));
  }
  return sameScalar(observed, desired);
}

/** Paths of the fields where `observed` lacks what `desired` sets (for logs: why a write happens). */
export function differences(observed: unknown, desired: unknown, at = '', out: string[] = [], limit = 5): string[] {
  if (out.length >= limit || contains(observed, desired)) return out;
  if (desired !== null && typeof desired === 'object' && !Array.isArray(desired) && observed !== null && typeof observed === 'object' && !Array.isArray(observed)) {
    for (const [k, v] of Object.entries(desired as Record<string, unknown>)) differences((observed as Record<string, unknown>)[k], v, at ? `${at}.${k}` : k, out, limit);
    return out;
  }
  out.push(at || '(object)');
  return out;
}

/** One entry of metadata.managedFields, as far as the ownership rule reads it. */
export interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  fieldsV1?: unknown;
}

/**
 * True when `manager` applied (server-side apply) the label `label` of the object: its managedFields entry
 * with operation Apply (or one of `operations`: Update for an object it created) owns `f:metadata.f:labels.f:<label>`. Pure. A copy created with kubectl (labels
 * included) names kubectl's manager (kubectl-client-side-apply, kubectl-create, before-first-apply), never
 * this one.
 */
export function appliedLabel(managedFields: readonly ManagedFieldsEntry[] | undefined, manager: string, label: string, operations: readonly string[] = ['Apply']): boolean {
  return (managedFields ?? []).some((e) => {
    if (e.manager !== manager || !operations.includes(e.operation ?? '')) return false;
    const f = e.fieldsV1 as Record<string, Record<string, Record<string, unknown>> | undefined> | undefined;
    return f?.['f:metadata']?.['f:labels']?.[`f:${label}`] !== undefined;
  });
}
