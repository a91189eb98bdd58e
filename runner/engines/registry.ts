import type { EngineConfig } from '../../api/index.js';
import { BackupError } from '../errors.js';
import type { Logger } from '../logger.js';
import { PostgresqlEngine } from './postgresql/index.js';
import type { Engine } from './types.js';

export interface EngineDeps {
  logger: Logger;
  env?: NodeJS.ProcessEnv;
}

/** Builds the engine a validated config names. */
export function createEngine(cfg: Readonly<EngineConfig>, deps: EngineDeps): Promise<Engine> {
  switch (cfg.type) {
    case 'postgresql':
      if (!cfg.postgresql) throw new BackupError('CONFIG_INVALID', 'engine.postgresql: is required when engine.type is "postgresql"');
      return Promise.resolve(new PostgresqlEngine(cfg.postgresql, deps.logger, deps.env ?? process.env));
  }
}
