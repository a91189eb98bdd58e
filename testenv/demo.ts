/**
 * The demo: a throwaway PostgreSQL with sample data is backed up by the real
 * `backup-runner` CLI to a local S3 server (encrypted with age: the runner
 * holds only the public key) and a local folder at once, listed, dropped,
 * restored from the encrypted copy with the private key and compared.
 * Everything runs on loopback and is removed at the end.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { stringify } from 'yaml';
import { startPostgres, type PgInstance } from './postgres.js';
import { startS3, type S3Server } from './s3.js';
import { seedRich, tableChecksums } from './seed.js';

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (n: number, text: string): void => console.log(`\n${bold(`== ${n}. ${text}`)}`);

function runner(args: string[], cfg: string): Promise<number> {
  const cli = join(import.meta.dirname, '..', 'dist', 'runner', 'cli', 'bin.js');
  console.log(`$ backup-runner ${args.join(' ')}`);
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args, '--config', cfg], { stdio: 'inherit', env: {
        ...process.env,
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
        // The AWS SDK announces that it will need Node 22 from 2027; the runner images use a newer Node.
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      },
    });
    child.on('error', reject);
    child.on('close', (code) => resolve(code ?? 1));
  });
}

async function expectCode(p: Promise<number>, want: number): Promise<void> {
  const code = await p;
  if (code !== want) throw new Error(`backup-runner exited ${code}, expected ${want}`);
}

let pg: PgInstance | undefined;
let s3: S3Server | undefined;
const work = await mkdtemp(join(tmpdir(), 'dbbc-demo-'));
try {
  step(1, 'Starting a throwaway PostgreSQL and an S3 server on loopback');
  pg = await startPostgres();
  s3 = await startS3();
  await s3.createBucket('backups');
  console.log(`PostgreSQL ${pg.major} on 127.0.0.1:${pg.port}, S3 server at ${s3.endpoint}`);

  step(2, 'Loading sample data into database "shop"');
  await seedRich(pg, 'shop', { rows: 20_000 });
  console.log(await pg.psql("SELECT format('%s tables in %s schemas, %s large objects', (SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')), (SELECT count(DISTINCT schemaname) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog','information_schema')), (SELECT count(*) FROM pg_largeobject_metadata))", 'shop'));
  const before = await tableChecksums(pg, 'shop');

  step(3, 'Writing the runner config: one database, two locations, the S3 one encrypted');
  // An age key pair: the runner gets the public key (the recipient); the private key (the identity) stays here.
  const identity = await generateX25519Identity();
  const keyFile = join(work, 'age-key.txt');
  await writeFile(keyFile, `# the private key: keep it away from the bucket\n${identity}\n`, { mode: 0o600 });
  const cfg = join(work, 'runner.yaml');
  const config = {
    namespace: 'demo',
    name: 'shop',
    engine: { type: 'postgresql', postgresql: { ...pg.connection('shop'), password: { env: 'DEMO_PGPASSWORD' } } },
    locations: [
      { name: 's3', type: 's3', prefix: 'db', s3: s3.location('backups'), encryption: { age: { recipients: [await identityToRecipient(identity)] } } },
      { name: 'local', type: 'filesystem', filesystem: { path: join(work, 'backups') } },
    ],
  };
  process.env.DEMO_PGPASSWORD = pg.password;
  await writeFile(cfg, stringify(config));
  console.log(stringify(config).trimEnd());

  step(4, 'Backing up: one dump, streamed to both locations at once (S3 gets it encrypted)');
  await expectCode(runner(['backup'], cfg), 0);

  step(5, 'Listing backups (read from each location\'s manifest)');
  await expectCode(runner(['list'], cfg), 0);

  step(6, 'An accident: DROP DATABASE shop');
  await pg.psql('DROP DATABASE shop');
  console.log(await pg.psql("SELECT CASE WHEN count(*) = 0 THEN 'database shop is gone' ELSE 'still there?' END FROM pg_database WHERE datname = 'shop'"));

  step(7, 'Restoring the latest backup from the encrypted copy, with the private key (decrypted and verified by sha256 before anything is written)');
  await expectCode(runner(['restore', '--latest', '--identity', keyFile], cfg), 0);

  step(8, 'Comparing every table, sequence and large object with the original');
  const after = await tableChecksums(pg, 'shop');
  const same = Object.keys(before).filter((k) => before[k] === after[k]).length;
  if (same !== Object.keys(before).length || Object.keys(after).length !== Object.keys(before).length) {
    throw new Error(`restored data differs: ${same}/${Object.keys(before).length} checksums match`);
  }
  console.log(`all ${same} checksums match: the data is back`);

  step(9, 'Verifying every stored object against its manifest (the encrypted one decrypted too)');
  await expectCode(runner(['verify', '--identity', keyFile], cfg), 0);

  step(10, 'A location added later ("offsite") is filled from the others: data first, manifest last, checked on the way');
  const withOffsite = join(work, 'runner-offsite.yaml');
  await writeFile(withOffsite, stringify({ ...config, locations: [...config.locations, { name: 'offsite', type: 'filesystem', filesystem: { path: join(work, 'offsite') } }] }));
  await expectCode(runner(['mirror', '--to', 'offsite', '--dry-run'], withOffsite), 0);
  await expectCode(runner(['mirror', '--to', 'offsite'], withOffsite), 0);
  await expectCode(runner(['list'], withOffsite), 0);
  console.log(`\n${bold('Demo complete.')} Try it on your own database: see README.md.`);
} finally {
  await s3?.stop();
  await pg?.stop();
  await rm(work, { recursive: true, force: true });
}
