/** Engines defined by a command: the bring-your-own-tool contract (api/engine-contract.ts), one call per operation. */
import type { CommandConnection } from '../../../api/index.js';
import type { EngineDefinition } from '../types.js';
import { CommandEngine } from './engine.js';

export { CommandEngine } from './engine.js';

/** The engine as the registry knows it; its formats are its definition's, known once the config is read. */
export const commandEngine: EngineDefinition<Readonly<CommandConnection>> = {
  type: 'command',
  formats: [],
  create: (block, deps) => CommandEngine.create(block, deps.logger, deps.env),
};
