import type { EngineDefinitionSpec } from '../../api/engine-contract.js';
import type { ToolImage } from '../index.js';

/** The Redis engine's definition: a DatabaseBackupEngine named `redis` holds the same (with an image that has redis-cli and redis-server). */
export const definition: EngineDefinitionSpec = {
  name: 'redis',
  command: ['db-backup-tool', 'redis'],
  verbs: ['probe', 'backup', 'restore', 'inspect'],
  formats: [{ format: 'redis-rdb', extension: 'rdb', compressed: false, magicHex: [Buffer.from('REDIS').toString('hex')] }],
  configSchema: {
    type: 'object',
    additionalProperties: false,
    properties: {
      batchSize: { type: 'integer', minimum: 1, maximum: 10000, default: 500, description: 'keys copied per round trip on restore' },
      loadTimeoutSeconds: { type: 'integer', minimum: 1, maximum: 86400, default: 600, description: 'how long the scratch server may take to load the backup on restore' },
    },
  },
};

/** The image and engine the chart installs (images/runner-tool.Dockerfile). */
export const image: ToolImage = { packages: ['redis-server', 'redis-tools'], databases: ['Redis up to 7.0 (the RDB versions the image\'s redis-server reads)'] };
