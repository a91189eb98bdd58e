/**
 * DatabaseBackup engine block -> the runner's engine config, one table entry
 * per engine the runner has. Pure. The database password never enters the
 * config: it is an environment variable from the DatabaseBackup's namespace
 * (`PASSWORD_ENV`); TLS files are Secret keys mounted beside it.
 *
 * Adding an engine on the controller side is its entry in ENGINE_RENDERS (and
 * its block in the CRD, api/crds/database-backup.ts).
 */
import type { CommandEngine as SpecCommand, Engine as SpecEngine, MysqlEngine as SpecMysql, PostgresqlEngine as SpecPostgresql } from '../../api/crds/database-backup.js';
import type { EngineDefinitionSpec } from '../../api/engine-contract.js';
import type { SecretKeyRef } from '../../api/crds/common.js';
import type { EngineConfig } from '../../api/runner-config.js';

export const PASSWORD_ENV = 'DB_PASSWORD';

/** Mounts a Secret key of the DatabaseBackup's namespace as a file and returns its path. */
export type MountSecret = (ref: SecretKeyRef | undefined) => string | undefined;

export interface RenderedEngine {
  engine: EngineConfig;
  /** The password, given to the runner as the PASSWORD_ENV environment variable. */
  passwordEnv?: SecretKeyRef;
}

/** What an engine's render may need beyond its block: for `command`, the DatabaseBackupEngine's definition. */
export interface RenderContext {
  definition?: EngineDefinitionSpec;
}

interface EngineRender<Block> {
  /** The server version that picks the runner image (the controller's default when undefined). */
  version(block: Block): string | undefined;
  /** The runner config's block, or undefined when the context lacks what it needs. */
  render(block: Block, mount: MountSecret, ctx: RenderContext): RenderedEngine | undefined;
}

const password = (ref: SecretKeyRef | undefined) => (ref ? { password: { env: PASSWORD_ENV } } : {});
const present = <T extends Record<string, unknown>>(o: T): Partial<T> => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

const postgresql: EngineRender<SpecPostgresql> = {
  version: (b) => b.version,
  render: (b, mount) => ({
    engine: {
      type: 'postgresql',
      postgresql: {
        host: b.host,
        port: b.port,
        database: b.database,
        user: b.user,
        ...password(b.passwordSecretRef),
        ...present({
          sslMode: b.sslMode,
          sslRootCert: mount(b.sslRootCertSecretRef),
          sslCert: mount(b.sslCertSecretRef),
          sslKey: mount(b.sslKeySecretRef),
          dumpArgs: b.dumpArgs,
          restoreArgs: b.restoreArgs,
          databases: b.allDatabases ? ('all' as const) : b.databases,
          globals: b.allDatabases || b.databases ? b.globals : undefined,
          parallel: b.allDatabases || b.databases ? b.parallel : undefined,
          mode: b.mode,
          checkpoint: b.mode === 'physical' ? b.checkpoint : undefined,
          // The slot is never the tenant's to name: the runner derives it from the namespace and name.
          wal: b.mode === 'physical' && b.wal ? present({ archive: b.wal.archive, partialSeconds: b.wal.partialSeconds }) : undefined,
        }),
      },
    },
    ...(b.passwordSecretRef ? { passwordEnv: b.passwordSecretRef } : {}),
  }),
};

const mysql: EngineRender<SpecMysql> = {
  version: (b) => b.version,
  render: (b, mount) => ({
    engine: {
      type: 'mysql',
      mysql: {
        host: b.host,
        port: b.port,
        database: b.database,
        user: b.user,
        ...password(b.passwordSecretRef),
        ...present({ sslMode: b.sslMode, sslCa: mount(b.sslCaSecretRef), dumpArgs: b.dumpArgs, restoreArgs: b.restoreArgs }),
      },
    },
    ...(b.passwordSecretRef ? { passwordEnv: b.passwordSecretRef } : {}),
  }),
};

/** The definition travels with the config: the runner never reads the cluster's DatabaseBackupEngines. */
const command: EngineRender<SpecCommand> = {
  version: () => undefined,
  render: (b, mount, ctx) =>
    ctx.definition
      ? {
          engine: {
            type: 'command',
            command: {
              definition: ctx.definition,
              ...present({ host: b.host, port: b.port, user: b.user, database: b.database }),
              ...password(b.passwordSecretRef),
              ...present({ tlsCa: mount(b.tlsCaSecretRef), tlsCert: mount(b.tlsCertSecretRef), tlsKey: mount(b.tlsKeySecretRef), config: b.config }),
            },
          },
          ...(b.passwordSecretRef ? { passwordEnv: b.passwordSecretRef } : {}),
        }
      : undefined,
};

/** Every engine the runner backs up, by `spec.engine.type`. */
const ENGINE_RENDERS: { readonly [K in keyof SpecEngine & SpecEngine['type']]?: EngineRender<NonNullable<SpecEngine[K]>> } = { postgresql, mysql, command };

/** The engine types the controller can render, for messages. */
export const RENDERED_ENGINES = Object.keys(ENGINE_RENDERS);

/** The entry for `engine.type` with its block, or undefined when the runner has no such engine (or the block is missing). */
function entry(engine: SpecEngine): { r: EngineRender<unknown>; block: unknown } | undefined {
  const r = (ENGINE_RENDERS as Record<string, EngineRender<unknown> | undefined>)[engine.type];
  const block = (engine as Record<string, unknown>)[engine.type];
  return r && block !== undefined ? { r, block } : undefined;
}

export function renderEngine(engine: SpecEngine, mount: MountSecret, ctx: RenderContext = {}): RenderedEngine | undefined {
  const e = entry(engine);
  return e?.r.render(e.block, mount, ctx);
}

export function engineVersion(engine: SpecEngine): string | undefined {
  const e = entry(engine);
  return e?.r.version(e.block);
}
