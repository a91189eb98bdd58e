import type { EngineDefinitionSpec } from '../../api/engine-contract.js';
import type { ToolImage } from '../index.js';

/**
 * The first 24 bytes of every etcd snapshot. A snapshot is a bbolt file (plus a sha256 at its end), whose first
 * page is meta page 0: page id 0 (8 bytes), the meta page flag 0x0004 (2), element count 0 (2), overflow 0 (4),
 * the bolt magic 0xED0CDAED (4) and the file format version 2 (4), all little-endian. The next field is the page
 * size, the OS page size of the machine that created the database (4096 on amd64, 16 or 64 KiB elsewhere), so it
 * is left out.
 */
export const ETCD_SNAPSHOT_MAGIC = '0000000000000000' + '0400' + '0000' + '00000000' + 'edda0ced' + '02000000';

/** The etcd engine's definition: a DatabaseBackupEngine named `etcd` holds the same (with an image that has etcdctl and etcd). */
export const definition: EngineDefinitionSpec = {
  name: 'etcd',
  command: ['db-backup-tool', 'etcd'],
  verbs: ['probe', 'backup', 'restore', 'inspect'],
  formats: [{ format: 'etcd-snapshot', extension: 'snap', compressed: false, magicHex: [ETCD_SNAPSHOT_MAGIC] }],
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      dialTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 300, default: 10, description: 'how long connecting to the server may take' },
      restoreBatch: { type: 'integer', minimum: 1, maximum: 128, default: 128, description: "keys written per transaction on restore (at most 128, etcd's default --max-txn-ops)" },
      startTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400, default: 300, description: 'how long the scratch etcd may take to open the backup on restore' },
    },
  },
};

/** The image and engine the chart installs (images/runner-tool.Dockerfile). */
export const image: ToolImage = { packages: ['etcd-server', 'etcd-client'], databases: ['etcd v3 up to 3.4 (the image\'s etcd)'] };
