import type { EngineDefinitionSpec } from '../../api/engine-contract.js';

/**
 * The CockroachDB engine's definition: a server-side engine (`output: location`). The cluster's own nodes write
 * each backup with `BACKUP ... INTO` into the S3 or GCS directory the runner names, and read it back with
 * `RESTORE ... FROM LATEST IN`; the tool only speaks SQL to the cluster, through psql (CockroachDB speaks the
 * PostgreSQL wire protocol). No filesystem locations: a cluster's nodes cannot write the runner pod's disk.
 * No `image` export: the tool ships in every runner image, whose psql it uses (docs/engines.md).
 */
export const definition: EngineDefinitionSpec = {
  name: 'cockroachdb',
  command: ['db-backup-tool', 'cockroachdb'],
  verbs: ['probe', 'backup', 'restore', 'inspect'],
  // A backup is BACKUP_MANIFEST and SST files, compressed by the nodes: no one header, and nothing to compress again.
  formats: [{ format: 'cockroachdb-backup', extension: 'crdb', compressed: true }],
  output: 'location',
  locationTypes: ['s3', 'gcs'],
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      sslmode: {
        enum: ['disable', 'require', 'verify-ca', 'verify-full'],
        default: 'verify-full',
        description: 'how the tool connects: verify-full (default) checks the server certificate against tls.caFile and its name',
      },
      revisionHistory: {
        type: 'boolean',
        default: false,
        description: 'BACKUP ... WITH revision_history: the backup keeps every revision within the garbage collection window (a later RESTORE AS OF SYSTEM TIME inside it)',
      },
      encryptionPassphraseFile: {
        type: 'string',
        minLength: 1,
        maxLength: 4096,
        description: "a file in the runner's pod (a mounted Secret) holding the passphrase the cluster encrypts the backup with (encryption_passphrase); restore needs the same file",
      },
    },
  },
};
