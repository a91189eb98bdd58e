/**
 * The engines shipped as tools of the engine contract (api/engine-contract.ts): each a folder exporting its
 * definition and its handlers, and its line here. `db-backup-tool <engine> <verb> <request.json>` runs one.
 */
import type { EngineDefinitionSpec } from '../api/engine-contract.js';
import type { Handlers } from './sdk.js';
import { definition as etcd } from './etcd/definition.js';
import { definition as redis } from './redis/definition.js';

export interface ShippedTool {
  definition: EngineDefinitionSpec;
  /** Loaded on use: a tool's dependencies are read only when it runs. */
  handlers: () => Promise<Handlers>;
}

export const TOOLS: Readonly<Record<string, ShippedTool>> = {
  redis: { definition: redis, handlers: async () => (await import('./redis/tool.js')).handlers },
  etcd: { definition: etcd, handlers: async () => (await import('./etcd/tool.js')).handlers },
};
