import { createPublicKey } from 'node:crypto';
import type { RunnerConfig } from '../api/index.js';
import { locationCrypto } from './crypto/location.js';
import { signingKey, verificationKey } from './crypto/signing.js';
import { resolveSecret } from './config/secrets.js';
import { createEngine } from './engines/registry.js';
import type { Logger } from './logger.js';
import { type Runtime, closeRuntime } from './runtime.js';
import { createStorage } from './storage/registry.js';
import { runnerVersion } from './version.js';

/** Builds the engine and every location from a validated config. */
export async function createRuntime(config: Readonly<RunnerConfig>, logger: Logger, env: NodeJS.ProcessEnv = process.env): Promise<Runtime> {
  const engine = await createEngine(config.engine, { logger: logger.child({ engine: config.engine.type }), env });
  const signing = await signingOf(config, env);
  const rt: Runtime = { config, engine, locations: [], logger, clock: () => new Date(), runnerVersion: runnerVersion(), ...(signing ? { signing } : {}) };
  try {
    for (const [i, loc] of config.locations.entries()) {
      const crypto = await locationCrypto(loc.encryption, `locations[${i}].encryption`, env);
      const storage = await createStorage(loc, { logger: logger.child({ location: loc.name }), env });
      rt.locations.push({ name: loc.name, storage, scope: { prefix: loc.prefix, namespace: config.namespace, name: config.name }, ...(crypto ? { crypto } : {}), ...(loc.heal === false ? { heal: false } : {}) });
    }
  } catch (err) {
    await closeRuntime(rt);
    throw err;
  }
  return rt;
}

/** The signing key and the verification keys of a config (the signing key's own public key when none is given). */
async function signingOf(config: Readonly<RunnerConfig>, env: NodeJS.ProcessEnv): Promise<Runtime['signing']> {
  const s = config.signing;
  if (!s) return undefined;
  const key = s.key ? signingKey(await resolveSecret(s.key, 'signing.key', env), 'signing.key') : undefined;
  const verify = s.verify ? await Promise.all(s.verify.map(async (v, i) => verificationKey(await resolveSecret(v, `signing.verify[${i}]`, env), `signing.verify[${i}]`))) : undefined;
  const trust = verify ?? (key ? [createPublicKey(key)] : []);
  return { ...(key ? { key } : {}), trust };
}
