/**
 * spec.runner of a DatabaseBackup: how the runner's pod is placed and
 * dressed. Typed subsets of the core/v1 types; where a core type is large and
 * validated by the API server anyway when the controller creates the
 * Deployment (affinity, volume sources), the schema keeps unknown fields
 * (x-kubernetes-preserve-unknown-fields) instead of copying the type.
 */
import { Type, type Static } from '@sinclair/typebox';
import { DnsLabel, ObjectName, StringMap } from './common.js';

/** resource.Quantity as Kubernetes publishes it: an integer or a string such as 500m, 1Gi. */
export const QUANTITY_PATTERN = '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';
const Quantity = Type.Union([Type.Integer(), Type.String({ pattern: QUANTITY_PATTERN })], {
  'x-kubernetes-int-or-string': true,
  pattern: QUANTITY_PATTERN,
  description: 'a quantity such as 500m, 256Mi or 2',
});

export const Resources = Type.Object(
  {
    requests: Type.Optional(Type.Record(Type.String(), Quantity, { description: 'e.g. { cpu: 500m, memory: 256Mi }' })),
    limits: Type.Optional(Type.Record(Type.String(), Quantity, { description: 'e.g. { memory: 1Gi }' })),
  },
  { additionalProperties: false },
);
export type Resources = Static<typeof Resources>;

export const Toleration = Type.Object(
  {
    key: Type.Optional(Type.String({ maxLength: 316 })),
    operator: Type.Optional(Type.Union([Type.Literal('Exists'), Type.Literal('Equal')])),
    value: Type.Optional(Type.String({ maxLength: 63 })),
    effect: Type.Optional(Type.Union([Type.Literal('NoSchedule'), Type.Literal('PreferNoSchedule'), Type.Literal('NoExecute')])),
    tolerationSeconds: Type.Optional(Type.Integer()),
  },
  { additionalProperties: false },
);
export type Toleration = Static<typeof Toleration>;

/** Anything core/v1 accepts; kept as given and checked by the API server when the Deployment is applied. */
const Opaque = (description: string) =>
  Type.Record(Type.String(), Type.Unknown(), { 'x-kubernetes-preserve-unknown-fields': true, description });

export const Volume = Type.Object(
  { name: DnsLabel('volume name, referenced by extraVolumeMounts') },
  {
    additionalProperties: true,
    'x-kubernetes-preserve-unknown-fields': true,
    description: 'a core/v1 Volume: name plus one volume source (secret, configMap, persistentVolumeClaim, emptyDir, ...)',
  },
);
export type Volume = Static<typeof Volume>;

export const VolumeMount = Type.Object(
  {
    name: DnsLabel('name of one of extraVolumes'),
    mountPath: Type.String({ minLength: 1, pattern: '^/', description: 'absolute path in the runner container' }),
    subPath: Type.Optional(Type.String()),
    readOnly: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
export type VolumeMount = Static<typeof VolumeMount>;

export const RunnerPod = Type.Object(
  {
    image: Type.Optional(Type.String({ minLength: 1, description: 'runner image; defaults to the controller\'s image for the engine' })),
    imagePullPolicy: Type.Optional(Type.Union([Type.Literal('Always'), Type.Literal('IfNotPresent'), Type.Literal('Never')])),
    imagePullSecrets: Type.Optional(Type.Array(Type.Object({ name: ObjectName('Secret of type kubernetes.io/dockerconfigjson') }, { additionalProperties: false }))),
    resources: Type.Optional(Resources),
    nodeSelector: Type.Optional(StringMap('node labels the runner pod must match')),
    tolerations: Type.Optional(Type.Array(Toleration)),
    affinity: Type.Optional(Opaque('a core/v1 Affinity (nodeAffinity, podAffinity, podAntiAffinity)')),
    serviceAccountAnnotations: Type.Optional(StringMap('annotations of the runner\'s ServiceAccount, e.g. eks.amazonaws.com/role-arn or iam.gke.io/gcp-service-account')),
    podAnnotations: Type.Optional(StringMap('annotations of the runner pod')),
    podLabels: Type.Optional(StringMap('extra labels of the runner pod')),
    extraVolumes: Type.Optional(Type.Array(Volume, { maxItems: 32 })),
    extraVolumeMounts: Type.Optional(Type.Array(VolumeMount, { maxItems: 32 })),
    fsGroup: Type.Optional(Type.Integer({ minimum: 0, maximum: 2147483647, description: 'group that owns mounted volumes (e.g. a filesystem location\'s PVC)' })),
  },
  { additionalProperties: false },
);
export type RunnerPod = Static<typeof RunnerPod>;
