import type { EngineDefinitionSpec } from '../../api/engine-contract.js';

/**
 * The first 4 bytes of every mongodump archive. mongo-tools common/archive/archive.go declares
 * `const MagicNumber uint32 = 0x8199e26d`, and common/archive/prelude.go writes it with
 * `binary.LittleEndian.AppendUint32(nil, MagicNumber)` before the header document (common/archive/spec.md:
 * "magic-number = 0x6de29981 ; little-endian representation of 0x8199e26d"): the bytes 6d e2 99 81.
 */
export const MONGODUMP_ARCHIVE_MAGIC = '6de29981';

/**
 * The MongoDB engine's definition: `mongodump --archive` / `mongorestore --archive` (MongoDB Database Tools
 * 100.3.0 or later, for --config). No `image` export: MongoDB's tools are not in Debian, so the chart installs no
 * runner image and no DatabaseBackupEngine for it; the tool ships in every runner image (`db-backup-tool
 * mongodb`) and works in an image that adds mongodump and mongorestore (docs/engines.md).
 */
export const definition: EngineDefinitionSpec = {
  name: 'mongodb',
  command: ['db-backup-tool', 'mongodb'],
  verbs: ['probe', 'backup', 'restore', 'inspect'],
  formats: [{ format: 'mongodb-archive', extension: 'archive', compressed: false, magicHex: [MONGODUMP_ARCHIVE_MAGIC] }],
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      oplog: {
        type: 'boolean',
        default: false,
        description:
          'mongodump --oplog: a point-in-time copy of a replica set as of the end of the dump (replayed by mongorestore --oplogReplay); a whole server only (no database). Without it the dump is not consistent across collections',
      },
      authenticationDatabase: { type: 'string', minLength: 1, maxLength: 64, default: 'admin', description: "the database holding the user's credentials" },
      numParallelCollections: { type: 'integer', minimum: 1, maximum: 16, description: 'collections mongodump reads at once (mongodump defaults to 4)' },
    },
  },
};
