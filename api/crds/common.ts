/**
 * Pieces shared by the custom resources of group dbbackup.io: names, Secret
 * references, conditions, object metadata. Every schema here is one source
 * for the TypeScript types, the TS validators and the generated CRD YAML
 * (see structural.ts for what the YAML may contain).
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const GROUP = 'dbbackup.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
/** DNS subdomain (RFC 1123): names of Secrets, PersistentVolumeClaims and most objects. */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** A key of a Secret's data. */
export const SECRET_KEY_PATTERN = '^[-._a-zA-Z0-9]+$';

// `patternText` words the rule in validation messages; it is not written to the CRD.
export const DnsLabel = (description = 'a DNS label: lower-case letters, digits and -') =>
  Type.String({ pattern: DNS_LABEL_PATTERN, minLength: 1, maxLength: 63, description, patternText: 'a DNS label: lower-case letters, digits and -' });

export const ObjectName = (description: string) =>
  Type.String({ pattern: DNS_SUBDOMAIN_PATTERN, minLength: 1, maxLength: 253, description, patternText: 'a DNS subdomain name: lower-case letters, digits, - and .' });

const SecretKey = Type.String({ pattern: SECRET_KEY_PATTERN, minLength: 1, maxLength: 253, description: 'key in the Secret\'s data', patternText: 'a Secret key: letters, digits, -, _ and .' });

/** A key of a Secret in the controller's own namespace (storage class credentials). */
export const ControllerSecretKeyRef = Type.Object(
  {
    secretName: ObjectName('name of a Secret in the controller\'s namespace'),
    key: SecretKey,
  },
  { additionalProperties: false },
);
export type ControllerSecretKeyRef = Static<typeof ControllerSecretKeyRef>;

/** A key of a Secret in the DatabaseBackup's namespace (database credentials). */
export const SecretKeyRef = Type.Object(
  {
    name: ObjectName('name of a Secret in the DatabaseBackup\'s namespace'),
    key: SecretKey,
  },
  { additionalProperties: false },
);
export type SecretKeyRef = Static<typeof SecretKeyRef>;

export const StringMap = (description: string) => Type.Record(Type.String(), Type.String(), { description });

/** A condition as in metav1.Condition. */
export const Condition = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, description: 'e.g. Ready, ConfigValid, RunnerAvailable' }),
    status: Type.Union([Type.Literal('True'), Type.Literal('False'), Type.Literal('Unknown')]),
    reason: Type.String({ minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$', description: 'CamelCase reason' }),
    message: Type.String({ maxLength: 32768 }),
    lastTransitionTime: Type.String({ format: 'date-time' }),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type Condition = Static<typeof Condition>;

/** The part of metadata the validators read; the API server owns the rest. */
export const ObjectMeta = Type.Object(
  {
    name: Type.Optional(Type.String()),
    namespace: Type.Optional(Type.String()),
    generation: Type.Optional(Type.Integer()),
  },
  { additionalProperties: true },
);
export type ObjectMeta = Static<typeof ObjectMeta>;

/** The status fields the controller owns on both kinds: the generation it acted on and its conditions. */
export const ControllerStatusFields = {
  observedGeneration: Type.Optional(Type.Integer({ minimum: 0 })),
  conditions: Type.Optional(Type.Array(Condition, { maxItems: 32 })),
};

/** A whole custom resource of `kind`: apiVersion, kind, metadata, spec and an optional status. */
export function Resource<K extends string, S extends TSchema, T extends TSchema>(kind: K, spec: S, status: T) {
  return Type.Object({
    apiVersion: Type.Literal(API_VERSION),
    kind: Type.Literal(kind),
    metadata: ObjectMeta,
    spec,
    status: Type.Optional(status),
  });
}
