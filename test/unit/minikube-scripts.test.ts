/**
 * The minikube test environment's scripts and make targets, without minikube:
 * shellcheck and `bash -n` on every script; the labels the scripts select by
 * are those controller/names.ts renders; `make -n` prints each target's
 * command; and each script, run against stand-ins for kubectl, minikube,
 * docker, helm and make that log their arguments and stdin, issues the
 * expected commands in order (for PostgreSQL and MariaDB alike where a
 * script covers both), finds pods by label, and says what to install when a
 * tool is missing.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { backupLabelValue, commonLabels, LABEL_BACKUP, LABEL_NAME, RUNNER_APP, runnerName } from '../../controller/names.js';
import { CONTAINER_NAME } from '../../controller/render/objects.js';
import { exec } from '../../testenv/exec.js';
import { libNames, MINIKUBE_DIR, parseSelector, ROOT, runScript, type K8sObject } from '../minikube-fixtures.js';

const SHELLCHECK_HINT = 'shellcheck was not found: install it with `apt-get install -y shellcheck` (as root; Debian/Ubuntu), then run the tests again.';

/** The scripts shellcheck checks: every testenv/minikube/*.sh and the seed Jobs' scripts. */
const scripts = (): string[] => [
  ...readdirSync(MINIKUBE_DIR).filter((f) => f.endsWith('.sh')).map((f) => join('testenv/minikube', f)),
  ...readdirSync(join(MINIKUBE_DIR, 'seed')).filter((f) => f.endsWith('.sh')).map((f) => join('testenv/minikube/seed', f)),
];

const which = (bin: string): boolean => spawnSync('bash', ['-c', `command -v ${bin}`]).status === 0;

/** shellcheck on PATH; when missing, tries `apt-get install -y shellcheck` once (as root), then fails with the hint. */
function ensureShellcheck(): void {
  if (which('shellcheck')) return;
  if (process.getuid?.() === 0 && which('apt-get')) {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    const install = () => spawnSync('apt-get', ['install', '-y', '-q', '--no-install-recommends', 'shellcheck'], { env, stdio: 'ignore', timeout: 240_000 });
    if (install().status !== 0) {
      spawnSync('apt-get', ['update', '-q'], { env, stdio: 'ignore', timeout: 240_000 });
      install();
    }
  }
  if (!which('shellcheck')) throw new Error(SHELLCHECK_HINT);
}

/**
 * One stand-in for kubectl, minikube, docker, helm and make (by the name it is
 * called as): appends "<tool> <args>" and any stdin it reads to $STUB_LOG and
 * answers from STUB_* variables (run() sets every one). `kubectl create configmap`
 * runs the real kubectl (client-side only). A runner pod or Deployment asked for
 * by the label dbbackup.io/database-backup=NAME is named after NAME, as the
 * controller names them (NAME-runner).
 */
const STUB = String.raw`#!/usr/bin/env bash
tool=$(basename "$0")
args="$*"
input=''
if [[ " $args " == *" -f - "* || " $args " == *" exec -i "* ]]; then input=$(cat); fi
{
  printf '%s %s\n' "$tool" "$args"
  if [ -n "$input" ]; then printf '%s\n' "$input" | sed 's/^/  | /'; fi
} >>"$STUB_LOG"
backup=$(printf '%s\n' "$args" | sed -n 's/.*dbbackup\.io\/database-backup=\([^ ,]*\).*/\1/p')
case "$tool $args" in
  "kubectl config get-contexts -o name") printf '%s\n' "$STUB_CONTEXTS" ;;
  "kubectl create configmap "*) exec "$REAL_KUBECTL" "$@" ;;
  "kubectl "*" get crd "*) if [ -n "$STUB_NO_CRD" ]; then exit 1; fi ;;
  "kubectl "*" get pods "*backup-runner*)
    if [ -z "$STUB_NO_RUNNER" ]; then printf '%s-runner-6d8f9-old\t2025-01-01T00:00:00Z\n%s-runner-6d8f9-x2k4q\t\n' "$backup" "$backup"; fi ;;
  "kubectl "*" get pods "*postgresql*) printf 'postgres-0\t\n' ;;
  "kubectl "*" get pods "*mariadb*) printf 'mariadb-0\t\n' ;;
  "kubectl "*" exec "*"backup-runner restore --latest --force") echo "restored with --force" ;;
  "kubectl "*" exec "*"backup-runner restore --latest") echo "restore"; exit "$STUB_RESTORE_RC" ;;
  "kubectl "*" exec "*" backup-runner "*) echo "backup-runner answered"; exit "$STUB_RUNNER_RC" ;;
  "kubectl "*" exec "*psql*"-d testenv_meta"*) printf '%s\n' "$STUB_SEED" ;;
  "kubectl "*" exec "*psql*"-d shop"*) if [[ $input == *pg_tables* ]]; then printf '%s\n' "$STUB_NOW"; fi ;;
  "kubectl "*" exec "*psql*"-d postgres"*) if [[ $input == *"FROM pg_database"* ]]; then echo "$STUB_DB_EXISTS"; fi ;;
  "kubectl "*" get job "*--ignore-not-found*) printf '%s' "$STUB_SEEDED" ;;
  "kubectl "*" get job "*) printf 'Complete ' ;;
  "kubectl "*" get deployments -n db-backup-controller -o name") echo deployment.apps/db-backup-controller ;;
  "kubectl "*" get deployments "*" -l "*) if [ -n "$STUB_RUNNER_DEPLOYMENT" ] && [ -n "$backup" ]; then printf '%s-runner' "$backup"; fi ;;
  "minikube "*" status "*) printf '%s' "$STUB_MINIKUBE_STATUS" ;;
  "docker image inspect --format"*) echo sha256:0123abcd ;;
esac
exit 0
`;

describe('minikube testenv scripts', () => {
  let dir: string;
  let names: Awaited<ReturnType<typeof libNames>>;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'minikube-stubs-'));
    for (const tool of ['kubectl', 'minikube', 'docker', 'helm', 'make']) {
      writeFileSync(join(dir, tool), STUB);
      chmodSync(join(dir, tool), 0o755);
    }
    names = await libNames();
  });

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Runs a script against the stand-ins; returns its result and the log of every tool call. */
  async function run(script: string, env: Record<string, string> = {}) {
    const log = join(dir, `${script}-${Math.random().toString(36).slice(2)}.log`);
    writeFileSync(log, '');
    const base: Record<string, string> = {
      KUBECTL: join(dir, 'kubectl'),
      MINIKUBE: join(dir, 'minikube'),
      DOCKER: join(dir, 'docker'),
      HELM_BIN: join(dir, 'helm'),
      MAKE: join(dir, 'make'),
      REAL_KUBECTL: execFileSync('bash', ['-c', 'command -v kubectl']).toString().trim(),
      STUB_LOG: log,
      STUB_CONTEXTS: 'docker-desktop\nminikube',
      STUB_MINIKUBE_STATUS: 'Running/Running',
      STUB_SEED: '',
      STUB_NOW: '',
      STUB_NO_CRD: '',
      STUB_NO_RUNNER: '',
      STUB_RESTORE_RC: '0',
      STUB_RUNNER_RC: '0',
      STUB_DB_EXISTS: '1',
      STUB_SEEDED: '',
      STUB_RUNNER_DEPLOYMENT: '',
      MINIKUBE_PROFILE: '',
      TESTENV_KUBE_CONTEXT: '',
      TESTENV_HUGEDATA: '',
      TESTENV_HUGEDATA_GB: '',
      TESTENV_DBDELETE: '',
      TESTENV_SKIP_IMAGES: '',
    };
    const r = await runScript(script, { ...base, ...env });
    const calls = readFileSync(log, 'utf8');
    return { ...r, calls, lines: calls.split('\n').filter((l) => l && !l.startsWith('  | ')) };
  }

  describe('static checks', () => {
    it('shellcheck finds nothing in any script', () => {
      ensureShellcheck();
      const r = spawnSync('shellcheck', ['-x', ...scripts()], { cwd: ROOT, encoding: 'utf8' });
      expect(r.stdout + r.stderr).toBe('');
      expect(r.status).toBe(0);
    }, 300_000);

    it('bash -n parses every script', () => {
      for (const s of scripts()) expect(spawnSync('bash', ['-n', s], { cwd: ROOT, encoding: 'utf8' }).stderr, s).toBe('');
      expect(scripts().sort()).toEqual(
        [
          'deploy-local.sh',
          'deploy-testenv.sh',
          'force-local-backup.sh',
          'force-local-dbdelete.sh',
          'force-local-restore.sh',
          'lib.sh',
          'render.sh',
          'seed/mariadb-seed.sh',
          'seed/seed.sh',
          'testenv-status.sh',
          'undeploy-testenv.sh',
        ].map((f) => `testenv/minikube/${f}`),
      );
    });

    it('selects the runners by labels the controller renders, and execs in their container', () => {
      for (const [backup, runnerSelector] of [
        [names.BACKUP_NAME, names.RUNNER_SELECTOR],
        [names.MARIADB_BACKUP_NAME, names.MARIADB_RUNNER_SELECTOR],
      ] as const) {
        const selector = parseSelector(runnerSelector);
        const rendered = commonLabels(backup);
        expect(selector).toEqual({ [LABEL_NAME]: RUNNER_APP, [LABEL_BACKUP]: backupLabelValue(backup) });
        for (const [key, value] of Object.entries(selector)) expect(rendered[key], key).toBe(value);
      }
      // Both runners, for deploy-local's restart (a set-based selector).
      expect(names.RUNNERS_SELECTOR).toBe(`${LABEL_NAME}=${RUNNER_APP},${LABEL_BACKUP} in (${backupLabelValue(names.BACKUP_NAME)},${backupLabelValue(names.MARIADB_BACKUP_NAME)})`);
      expect(names.RUNNER_CONTAINER).toBe(CONTAINER_NAME);
      // The names the runner Deployments get; the scripts never spell them, they find them by the labels above.
      expect(runnerName(names.BACKUP_NAME)).toBe('shop-runner');
      expect(runnerName(names.MARIADB_BACKUP_NAME)).toBe('shop-mariadb-runner');
      for (const f of scripts()) {
        const text = readFileSync(join(ROOT, f), 'utf8');
        expect(text, f).not.toContain('shop-runner');
        expect(text, f).not.toContain('shop-mariadb-runner');
      }
    });

    it('lib.sh names match the manifests', () => {
      const manifest = (f: string) => readFileSync(join(MINIKUBE_DIR, 'manifests', f), 'utf8');
      expect(manifest('60-database-backup.yaml')).toContain(`kind: DatabaseBackup\nmetadata:\n  name: ${names.BACKUP_NAME}\n  namespace: ${names.TESTENV_NAMESPACE}\n`);
      expect(manifest('60-database-backup.yaml')).toContain(`database: ${names.SEED_DATABASE}\n`);
      expect(manifest('50-storage-class.yaml')).toContain(`metadata:\n  name: ${names.STORAGE_CLASS}\n`);
      expect(manifest('40-controller-secret.yaml')).toContain(`  name: ${names.CONTROLLER_SECRET}\n  namespace: ${names.CONTROLLER_NAMESPACE}\n`);
      expect(manifest('30-seed-job.yaml')).toContain(`  name: ${names.SEED_JOB}\n`);
      expect(manifest('30-seed-job.yaml')).toContain(`value: ${names.META_DATABASE}\n`);
      expect(manifest('31-bucket-job.yaml')).toContain(`  name: ${names.BUCKET_JOB}\n`);
      const podLabels = (selector: string) => Object.entries(parseSelector(selector)).map(([k, v]) => `        ${k}: ${v}\n`).join('');
      const pg = manifest('10-postgresql.yaml');
      expect(pg).toContain(`  template:\n    metadata:\n      labels:\n${podLabels(names.POSTGRES_SELECTOR)}`);
      expect(pg).toContain(`        - name: ${names.POSTGRES_CONTAINER}\n`);

      // MariaDB: the StatefulSet, its seed Job and its DatabaseBackup.
      const mariadb = manifest('11-mariadb.yaml');
      expect(mariadb).toContain(`  template:\n    metadata:\n      labels:\n${podLabels(names.MARIADB_SELECTOR)}`);
      expect(mariadb).toContain(`        - name: ${names.MARIADB_CONTAINER}\n`);
      expect(manifest('32-mariadb-seed-job.yaml')).toContain(`  name: ${names.MARIADB_SEED_JOB}\n`);
      expect(manifest('32-mariadb-seed-job.yaml')).toContain(`value: ${names.SEED_DATABASE}\n`);
      expect(manifest('32-mariadb-seed-job.yaml')).toContain(`value: ${names.META_DATABASE}\n`);
      expect(manifest('61-mariadb-backup.yaml')).toContain(`kind: DatabaseBackup\nmetadata:\n  name: ${names.MARIADB_BACKUP_NAME}\n  namespace: ${names.TESTENV_NAMESPACE}\n`);
      expect(manifest('61-mariadb-backup.yaml')).toContain(`database: ${names.SEED_DATABASE}\n`);
      expect(manifest('61-mariadb-backup.yaml')).toContain(`storageClassName: ${names.STORAGE_CLASS}\n`);
    });
  });

  describe('make', () => {
    const make = (args: string[]) => exec('make', ['--no-print-directory', '-C', ROOT, ...args], { env: { ...process.env, MAKEFLAGS: '' } });

    it('make help lists every minikube target', async () => {
      const help = (await make(['help'])).stdout;
      for (const t of ['deploy-local', 'deploy-testenv', 'force-local-backup', 'force-local-dbdelete', 'force-local-restore', 'undeploy-testenv', 'testenv-status']) {
        expect(help).toMatch(new RegExp(`${t}\\s*\\S*\\s+minikube: `));
      }
    });

    it.each([
      ['deploy-testenv', [], 'MINIKUBE_PROFILE=minikube TESTENV_KUBE_CONTEXT=minikube TESTENV_HUGEDATA=false TESTENV_HUGEDATA_GB=4 bash testenv/minikube/deploy-testenv.sh'],
      ['deploy-testenv', ['TESTENV_HUGEDATA=true', 'TESTENV_HUGEDATA_GB=8'], 'TESTENV_HUGEDATA=true TESTENV_HUGEDATA_GB=8 bash testenv/minikube/deploy-testenv.sh'],
      ['deploy-local', ['LOCAL_IMAGE=registry.local/dbb'], 'LOCAL_IMAGE=registry.local/dbb LOCAL_IMAGE_TAG='],
      ['force-local-backup', ['MINIKUBE_PROFILE=dev'], 'MINIKUBE_PROFILE=dev TESTENV_KUBE_CONTEXT=dev bash testenv/minikube/force-local-backup.sh'],
      ['force-local-dbdelete', [], 'bash testenv/minikube/force-local-dbdelete.sh'],
      ['force-local-restore', [], 'bash testenv/minikube/force-local-restore.sh'],
      ['undeploy-testenv', [], 'bash testenv/minikube/undeploy-testenv.sh'],
      ['testenv-status', [], 'bash testenv/minikube/testenv-status.sh'],
    ])('make -n %s %j prints its script', async (target, vars, expected) => {
      const r = await make(['-n', target, ...vars]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(expected);
    });
  });

  describe('against stand-in tools', () => {
    it('force-local-backup: finds the live runner pod by label and execs backup-runner backup in it', async () => {
      const r = await run('force-local-backup.sh');
      expect(r.code).toBe(0);
      expect(r.lines).toEqual([
        'kubectl config get-contexts -o name',
        `kubectl --context minikube get pods -n dbbackup-testenv -l ${names.RUNNER_SELECTOR} --field-selector=status.phase=Running -o jsonpath={range .items[*]}{.metadata.name}{"\\t"}{.metadata.deletionTimestamp}{"\\n"}{end}`,
        'kubectl --context minikube exec -n dbbackup-testenv shop-runner-6d8f9-x2k4q -c runner -- backup-runner backup',
      ]);
      expect(r.stdout).toContain('backup-runner answered');
    });

    it('force-local-backup: passes the runner exit code on, and says what to do without a runner pod', async () => {
      expect((await run('force-local-backup.sh', { STUB_RUNNER_RC: '3' })).code).toBe(3);
      const none = await run('force-local-backup.sh', { STUB_NO_RUNNER: '1' });
      expect(none.code).toBe(1);
      expect(none.stderr).toContain(`no running runner pod with labels ${names.RUNNER_SELECTOR} in namespace dbbackup-testenv (context minikube): run \`make deploy-testenv\``);
    });

    it('force-local-restore: retries with --force on exit 5, then compares the checksums with the seed', async () => {
      const sums = 'customers|2000|123\norders|5000|-456';
      const r = await run('force-local-restore.sh', { STUB_RESTORE_RC: '5', STUB_SEED: sums, STUB_NOW: sums });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const execs = r.lines.filter((l) => l.includes(' exec '));
      expect(execs.map((l) => l.replace(/^.* -- /, ''))).toEqual([
        'backup-runner restore --latest',
        'backup-runner restore --latest --force',
        `psql -X -q -v ON_ERROR_STOP=1 -U postgres -At -F | -d testenv_meta -c SELECT table_name, row_count, checksum FROM seed_checksums ORDER BY table_name`,
        'psql -X -q -v ON_ERROR_STOP=1 -U postgres -At -F | -d shop',
      ]);
      expect(execs[0]).toContain('exec -n dbbackup-testenv shop-runner-6d8f9-x2k4q -c runner --');
      expect(execs[2]).toContain('exec -i -n dbbackup-testenv postgres-0 -c postgresql --');
      expect(r.calls).toContain(readFileSync(join(MINIKUBE_DIR, 'seed', 'checksums.sql'), 'utf8').split('\n')[4]);
      expect(r.stdout).toContain('still holds data (exit code 5, refused): restoring again with --force');
      expect(r.stdout).toMatch(/^customers +2000 +123 +2000 +123 +ok$/m);
      expect(r.stdout).toContain('all 2 seeded tables match the seed');
    });

    it('force-local-restore: fails on another exit code, and when a table differs from the seed', async () => {
      const failed = await run('force-local-restore.sh', { STUB_RESTORE_RC: '4' });
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('restore failed with exit code 4');
      expect(failed.lines.filter((l) => l.includes('--force'))).toEqual([]);
      const differs = await run('force-local-restore.sh', { STUB_SEED: 'customers|2000|123', STUB_NOW: 'customers|1999|77' });
      expect(differs.code).toBe(1);
      expect(differs.stdout).toContain('1 of 1 seeded tables differ from the seed');
    });

    it('force-local-dbdelete: shows what the database holds, says what it drops, then drops it', async () => {
      const r = await run('force-local-dbdelete.sh');
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('dropping database shop: DROP DATABASE shop WITH (FORCE)');
      const stdin = r.calls.split('\n').filter((l) => l.startsWith('  | ')).join('\n');
      expect(stdin.indexOf('FROM pg_class')).toBeGreaterThan(-1);
      expect(stdin.indexOf('DROP DATABASE %I WITH (FORCE)')).toBeGreaterThan(stdin.indexOf('FROM pg_class'));
      expect(r.calls).toContain('-d postgres -v db=shop');

      const tables = await run('force-local-dbdelete.sh', { TESTENV_DBDELETE: 'tables' });
      expect(tables.code).toBe(0);
      expect(tables.calls).toContain('DROP TABLE IF EXISTS public.%I CASCADE');
      expect(tables.calls).not.toContain('DROP DATABASE');

      const gone = await run('force-local-dbdelete.sh', { STUB_DB_EXISTS: '0' });
      expect(gone.code).toBe(0);
      expect(gone.stdout).toContain('nothing to delete');
      expect(gone.calls).not.toContain('DROP');

      expect((await run('force-local-dbdelete.sh', { TESTENV_DBDELETE: 'everything' })).stderr).toContain('TESTENV_DBDELETE must be database or tables');
    });

    it('deploy-testenv: database side, waits, Jobs, waits, then the backup objects and both runners found by label', async () => {
      const r = await run('deploy-testenv.sh', { STUB_RUNNER_DEPLOYMENT: '1' });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const steps = r.lines
        .map((l) => l.replace(/^kubectl --context minikube /, ''))
        .filter((l) => /^(apply|rollout|get job testenv-[a-z-]+ -n dbbackup-testenv -o|get deployments)/.test(l));
      expect(steps).toEqual([
        'apply -f -',
        'rollout status -n dbbackup-testenv statefulset/postgres --timeout=300s',
        'rollout status -n dbbackup-testenv statefulset/mariadb --timeout=300s',
        'rollout status -n dbbackup-testenv deployment/minio --timeout=300s',
        'apply -f -',
        expect.stringMatching(/^get job testenv-bucket -n dbbackup-testenv -o jsonpath=/),
        expect.stringMatching(/^get job testenv-seed -n dbbackup-testenv -o jsonpath=/),
        expect.stringMatching(/^get job testenv-seed-mariadb -n dbbackup-testenv -o jsonpath=/),
        'apply -f -',
        `get deployments -n dbbackup-testenv -l ${names.RUNNER_SELECTOR} -o jsonpath={.items[0].metadata.name}`,
        `rollout status -n dbbackup-testenv deployment/${runnerName(names.BACKUP_NAME)} --timeout=300s`,
        `get deployments -n dbbackup-testenv -l ${names.MARIADB_RUNNER_SELECTOR} -o jsonpath={.items[0].metadata.name}`,
        `rollout status -n dbbackup-testenv deployment/${runnerName(names.MARIADB_BACKUP_NAME)} --timeout=300s`,
      ]);
      // What each apply received, by kind/name.
      const applied = r.calls.split(/^kubectl --context minikube apply -f -\n/m).slice(1).map((chunk) => {
        const yaml = chunk.split('\n').filter((l) => l.startsWith('  | ')).map((l) => l.slice(4)).join('\n');
        return parseAllDocuments(yaml).map((d) => d.toJS() as K8sObject).map((o) => `${o.kind}/${o.metadata.name}`);
      });
      expect(applied).toEqual([
        [
          'Namespace/dbbackup-testenv',
          'Secret/postgres',
          'Service/postgres',
          'StatefulSet/postgres',
          'Secret/mariadb',
          'Service/mariadb',
          'StatefulSet/mariadb',
          'Secret/minio',
          'PersistentVolumeClaim/minio-data',
          'Service/minio',
          'Deployment/minio',
        ],
        ['ConfigMap/testenv-seed', 'ConfigMap/testenv-seed-mariadb', 'Job/testenv-seed', 'Job/testenv-bucket', 'Job/testenv-seed-mariadb'],
        ['Secret/testenv-minio', 'DatabaseBackupStorageClass/dbbackup-testenv', 'PersistentVolumeClaim/testenv-backups', 'DatabaseBackup/shop', 'DatabaseBackup/shop-mariadb'],
      ]);
      expect(r.stdout).toContain('both runners are up');
    });

    it('deploy-testenv: says which DatabaseBackup got no runner', async () => {
      const r = await run('deploy-testenv.sh', { TESTENV_WAIT_TIMEOUT: '0' });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`no runner Deployment for ${names.BACKUP_NAME} after 0s`);
      expect(r.lines).toContain(`kubectl --context minikube get databasebackup ${names.BACKUP_NAME} -n dbbackup-testenv -o jsonpath={range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\\n"}{end}`);
    });

    it('deploy-testenv: refuses without the CRDs, and a seed Job of another size', async () => {
      const noCrd = await run('deploy-testenv.sh', { STUB_NO_CRD: '1' });
      expect(noCrd.code).toBe(1);
      expect(noCrd.stderr).toContain('the dbbackup.io CRDs are not installed in context minikube: run `make deploy-local` first');
      expect(noCrd.lines.some((l) => l.includes(' apply '))).toBe(false);
      const seeded = await run('deploy-testenv.sh', { STUB_SEEDED: '0', TESTENV_HUGEDATA: 'true', TESTENV_HUGEDATA_GB: '2' });
      expect(seeded.code).toBe(1);
      expect(seeded.stderr).toContain('the seed Job already ran with TESTENV_HUGEDATA_GB=0');
    });

    it('undeploy-testenv: deletes both DatabaseBackups, the class, the MinIO keys and the namespace, and says the backups go', async () => {
      const r = await run('undeploy-testenv.sh');
      expect(r.code).toBe(0);
      expect(r.lines.filter((l) => l.includes(' delete ')).map((l) => l.replace(/^kubectl --context minikube /, ''))).toEqual([
        'delete databasebackup shop shop-mariadb -n dbbackup-testenv --ignore-not-found --wait=true --timeout=120s',
        'delete databasebackupstorageclass dbbackup-testenv --ignore-not-found',
        'delete secret testenv-minio -n db-backup-controller --ignore-not-found',
        'delete namespace dbbackup-testenv --ignore-not-found --wait=true --timeout=300s',
      ]);
      expect(r.stdout).toContain('backups included');
    });

    it('testenv-status: shows both DatabaseBackups and runners, and does not fail without a runner pod', async () => {
      const r = await run('testenv-status.sh', { STUB_NO_RUNNER: '1' });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('no running runner pod of shop: nothing to ask');
      expect(r.stdout).toContain('no running runner pod of shop-mariadb: nothing to ask');
      const up = await run('testenv-status.sh');
      expect(up.code).toBe(0);
      expect(up.lines.filter((l) => / get databasebackup \S+ -n dbbackup-testenv -o wide$/.test(l)).map((l) => l.split(' ')[5])).toEqual(['shop', 'shop-mariadb']);
      expect(up.lines.filter((l) => l.includes(' exec ')).map((l) => l.replace(/^kubectl --context minikube exec -n dbbackup-testenv /, ''))).toEqual([
        'shop-runner-6d8f9-x2k4q -c runner -- backup-runner status',
        'shop-runner-6d8f9-x2k4q -c runner -- backup-runner list',
        'shop-mariadb-runner-6d8f9-x2k4q -c runner -- backup-runner status',
        'shop-mariadb-runner-6d8f9-x2k4q -c runner -- backup-runner list',
      ]);
    });

    it('deploy-local: builds, loads the three images into minikube, installs the chart with them, waits for the rollout', async () => {
      const r = await run('deploy-local.sh', { LOCAL_IMAGE: 'localhost/dbb', LOCAL_IMAGE_TAG: 'dev1' });
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const calls = r.lines.filter((l) => !/^(docker (info|image inspect)|kubectl config)/.test(l));
      expect(calls).toEqual([
        'minikube -p minikube status --format {{.Host}}/{{.APIServer}}',
        `make -C ${ROOT} images IMAGES=controller runner-postgresql-16 runner-mysql-10.11 LOCAL_IMAGE=localhost/dbb LOCAL_IMAGE_TAG=dev1`,
        'minikube -p minikube image load localhost/dbb/controller:dev1',
        'minikube -p minikube image load localhost/dbb/backup-runner-postgresql:16-dev1',
        'minikube -p minikube image load localhost/dbb/backup-runner-mysql:10.11-dev1',
        `helm upgrade --install db-backup-controller ${ROOT}/charts/db-backup-controller --kube-context minikube --namespace db-backup-controller --create-namespace ` +
          `--values ${MINIKUBE_DIR}/values-local.yaml --set-string image.registry=localhost/dbb,image.tag=dev1 --set-string runner.image.registry=localhost/dbb,runner.image.tag=dev1 ` +
          '--set-string podAnnotations.testenv\\.dbbackup\\.io/image-id=sha256:0123abcd --wait --timeout 300s',
        'kubectl --context minikube get deployments -n db-backup-controller -o name',
        'kubectl --context minikube rollout status -n db-backup-controller deployment.apps/db-backup-controller --timeout=300s',
        `kubectl --context minikube get deployments -n dbbackup-testenv -l ${names.RUNNERS_SELECTOR} -o name`,
      ]);
    });

    it('deploy-local: `make images` with its arguments tags exactly the three images it loads (mk/images.mk, DRY_RUN)', async () => {
      const r = await run('deploy-local.sh', { LOCAL_IMAGE: 'localhost/dbb', LOCAL_IMAGE_TAG: 'dev1' });
      const build = r.lines.find((l) => l.startsWith('make '))!;
      const [, images, prefix, tag] = / images IMAGES=(.+) LOCAL_IMAGE=(\S+) LOCAL_IMAGE_TAG=(\S+)$/.exec(build)!;
      const vars = [`IMAGES=${images}`, `LOCAL_IMAGE=${prefix}`, `LOCAL_IMAGE_TAG=${tag}`];
      const dry = await exec('make', ['--no-print-directory', '-C', ROOT, 'images', ...vars], { env: { ...process.env, MAKEFLAGS: '', DRY_RUN: '1', VERSION: '1.2.3' } });
      expect(dry.code, dry.stderr).toBe(0);
      const tags = [...dry.stdout.matchAll(/--tag (localhost\/dbb\/\S+)/g)].map((m) => m[1]);
      const loaded = r.lines.filter((l) => l.includes(' image load ')).map((l) => l.replace(/^.* image load /, ''));
      expect(tags).toEqual(loaded);
    });

    it("deploy-local: the chart, rendered with deploy-local.sh's helm arguments, runs the loaded images", async () => {
      const r = await run('deploy-local.sh', { LOCAL_IMAGE: 'localhost/dbb', LOCAL_IMAGE_TAG: 'dev1' });
      const upgrade = r.lines.find((l) => l.startsWith('helm upgrade --install '))!;
      // The same arguments for `helm template` (the repo's helm 3.6): no cluster, so no context, namespace creation or waiting.
      const args = upgrade
        .replace(/^helm upgrade --install /, 'template ')
        .replace(/ --kube-context \S+| --create-namespace| --wait| --timeout \S+/g, '')
        .split(' ');
      const out = await exec(join(ROOT, 'node_modules', '.bin', 'helm'), args);
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0);
      const objects = parseAllDocuments(out.stdout).map((d) => d.toJS() as K8sObject | null).filter((o): o is K8sObject => o !== null);
      const deployment = objects.find((o) => o.kind === 'Deployment') as unknown as
        | { spec: { template: { metadata: { annotations: Record<string, string> }; spec: { containers: { image: string; imagePullPolicy: string }[] } } } }
        | undefined;
      expect(deployment, 'the chart renders the controller Deployment').toBeDefined();
      expect(deployment!.spec.template.spec.containers[0]).toMatchObject({ image: 'localhost/dbb/controller:dev1', imagePullPolicy: 'IfNotPresent' });
      expect(deployment!.spec.template.metadata.annotations['testenv.dbbackup.io/image-id']).toBe('sha256:0123abcd');
      // The controller's settings name only the runner images deploy-local.sh loads.
      const images = [...out.stdout.matchAll(/\S+backup-runner-\S+:\S+/g)].map((m) => m[0].replace(/^"|"$/g, ''));
      expect([...new Set(images)].sort()).toEqual(['localhost/dbb/backup-runner-mysql:10.11-dev1', 'localhost/dbb/backup-runner-postgresql:16-dev1']);
      expect(out.stdout).not.toContain('ghcr.io');
    });

    it('says what to install or start when a tool is missing', async () => {
      const cases: [string, Record<string, string>, string][] = [
        ['force-local-backup.sh', { KUBECTL: '/nonexistent/kubectl' }, 'testenv: /nonexistent/kubectl not found: install kubectl (https://kubernetes.io/docs/tasks/tools/'],
        ['force-local-backup.sh', { STUB_CONTEXTS: 'docker-desktop' }, 'kubectl has no context "minikube": start the cluster with `minikube start -p minikube`'],
        ['deploy-local.sh', { MINIKUBE: '/nonexistent/minikube', LOCAL_IMAGE: 'x', LOCAL_IMAGE_TAG: 'y' }, 'install minikube (https://minikube.sigs.k8s.io/docs/start/)'],
        ['deploy-local.sh', { DOCKER: '/nonexistent/docker', LOCAL_IMAGE: 'x', LOCAL_IMAGE_TAG: 'y' }, 'install Docker (https://docs.docker.com/engine/install/)'],
        ['deploy-local.sh', { HELM_BIN: '/nonexistent/helm', LOCAL_IMAGE: 'x', LOCAL_IMAGE_TAG: 'y' }, 'install Helm 3 (https://helm.sh/docs/intro/install/)'],
        ['deploy-local.sh', { STUB_MINIKUBE_STATUS: 'Stopped/Stopped', LOCAL_IMAGE: 'x', LOCAL_IMAGE_TAG: 'y' }, 'minikube profile minikube is not running (status: Stopped/Stopped): `minikube start -p minikube'],
      ];
      for (const [script, env, message] of cases) {
        const r = await run(script, env);
        expect(r.code, `${script} ${JSON.stringify(env)}`).toBe(1);
        expect(r.stderr).toContain(message);
      }
    });
  });
});
