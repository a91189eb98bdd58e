/**
 * The control API between `backup-runner <command>` (the client, usually run
 * with kubectl exec) and `backup-runner serve` (the daemon), over a Unix
 * socket. An operation is POSTed to /v1/operations; the answer is NDJSON:
 * zero or more `queued`/`started`/`progress` lines, then exactly one `result`
 * or `error` line.
 */
import { Type, type Static } from '@sinclair/typebox';
import type { ProgressEvent } from '../runtime.js';
import type { Outcome } from '../ops/perform.js';
import type { OperationInfo } from './queue.js';

export const OPERATIONS_PATH = '/v1/operations';
export const STATUS_PATH = '/v1/status';
/** Request header: configDigest() of the config the CLI command was given; a daemon running another one refuses (409, CONFIG_MISMATCH). */
export const CONFIG_DIGEST_HEADER = 'x-backup-runner-config-digest';

const SelectorSchema = Type.Union([
  Type.Object({ kind: Type.Literal('latest') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('id'), id: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('time'), at: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
]);

/** age identities (private keys) given to one command with --identity: used for it only, never logged or kept. */
const Identities = Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { maxItems: 64 });

export const OperationRequest = Type.Union([
  Type.Object({ kind: Type.Literal('backup') }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('list') }, { additionalProperties: false }),
  Type.Object(
    {
      kind: Type.Literal('restore'),
      selector: SelectorSchema,
      targetDatabase: Type.Optional(Type.String({ minLength: 1 })),
      force: Type.Boolean(),
      /** Restore the newest readable backup even when a location could not be read (else LISTING_INCOMPLETE). */
      allowIncompleteListing: Type.Optional(Type.Boolean()),
      identities: Type.Optional(Identities),
      /** A backup of several streams: only these databases. */
      databases: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, maxItems: 999 })),
      skipGlobals: Type.Optional(Type.Boolean()),
      noOwner: Type.Optional(Type.Boolean()),
    },
    { additionalProperties: false },
  ),
  Type.Object({ kind: Type.Literal('verify'), id: Type.Optional(Type.String({ minLength: 1 })), identities: Type.Optional(Identities) }, { additionalProperties: false }),
  Type.Object({ kind: Type.Literal('retention'), dryRun: Type.Boolean() }, { additionalProperties: false }),
  Type.Object(
    {
      kind: Type.Literal('mirror'),
      to: Type.Optional(Type.String({ minLength: 1 })),
      from: Type.Optional(Type.String({ minLength: 1 })),
      dryRun: Type.Boolean(),
      identities: Type.Optional(Identities),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('rekey'),
      location: Type.Optional(Type.String({ minLength: 1 })),
      id: Type.Optional(Type.String({ minLength: 1 })),
      dryRun: Type.Boolean(),
      identities: Type.Optional(Identities),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('import'),
      /** A file is an absolute path in the runner's pod; a location object is relative to this DatabaseBackup's directory there. */
      source: Type.Union([
        Type.Object({ kind: Type.Literal('file'), path: Type.String({ minLength: 2, pattern: '^/' }) }, { additionalProperties: false }),
        Type.Object({ kind: Type.Literal('location'), location: Type.String({ minLength: 1 }), key: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
      ]),
      targetDatabase: Type.Optional(Type.String({ minLength: 1 })),
      force: Type.Boolean(),
      keep: Type.Boolean(),
    },
    { additionalProperties: false },
  ),
]);
export type OperationRequest = Static<typeof OperationRequest>;

export type StreamLine =
  | { event: 'queued'; position: number; running?: OperationInfo }
  | { event: 'started'; operation: OperationInfo }
  | ({ event: 'progress' } & ProgressEvent)
  | ({ event: 'result' } & Outcome)
  | { event: 'error'; error: { code: string; message: string; exitCode: number; [k: string]: unknown } };
