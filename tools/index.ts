/**
 * The engines shipped as tools of the engine contract (api/engine-contract.ts): each a folder exporting its
 * definition and its handlers, and its line here. `db-backup-tool <engine> <verb> <request.json>` runs one.
 */
import type { EngineDefinitionSpec } from '../api/engine-contract.js';
import type { Handlers } from './sdk.js';
import { definition as cockroachdb } from './cockroachdb/definition.js';
import { definition as etcd, image as etcdImage } from './etcd/definition.js';
import { definition as mongodb } from './mongodb/definition.js';
import { definition as redis, image as redisImage } from './redis/definition.js';

/** What the chart installs for a tool: its runner image (images/runner-tool.Dockerfile) and its DatabaseBackupEngine. */
export interface ToolImage {
  /** Debian bookworm packages with the programs the tool runs (images/matrix.json passes them as TOOL_PACKAGES). */
  packages: readonly string[];
  /** What the engine backs up, for people: the DatabaseBackupEngine's spec.databases. */
  databases: readonly string[];
}

export interface ShippedTool {
  definition: EngineDefinitionSpec;
  /** Absent: the tool ships in every runner image, but no image of its own and no chart engine. */
  image?: ToolImage;
  /** Loaded on use: a tool's dependencies are read only when it runs. */
  handlers: () => Promise<Handlers>;
}

export const TOOLS: Readonly<Record<string, ShippedTool>> = {
  redis: { definition: redis, image: redisImage, handlers: async () => (await import('./redis/tool.js')).handlers },
  etcd: { definition: etcd, image: etcdImage, handlers: async () => (await import('./etcd/tool.js')).handlers },
  mongodb: { definition: mongodb, handlers: async () => (await import('./mongodb/tool.js')).handlers },
  cockroachdb: { definition: cockroachdb, handlers: async () => (await import('./cockroachdb/tool.js')).handlers },
};
