/** The MariaDB / MySQL logical engine (mariadb-dump or mysqldump, replayed with the client) and its pure plans. */
import type { MysqlConnection } from '../../../api/index.js';
import type { EngineDefinition } from '../types.js';
import { DUMP_FORMAT, MysqlEngine } from './engine.js';

export { MysqlEngine, DUMP_FORMAT } from './engine.js';

/** The engine as the registry knows it. */
export const mysqlEngine: EngineDefinition<Readonly<MysqlConnection>> = {
  type: 'mysql',
  formats: [{ ...DUMP_FORMAT, magic: [...DUMP_FORMAT.magic], refuse: [...DUMP_FORMAT.refuse] }],
  create: (block, deps) => MysqlEngine.create(block, deps.logger, deps.env),
};
