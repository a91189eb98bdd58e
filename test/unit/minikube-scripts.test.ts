/**
 * The minikube test environment's scripts and make targets, without minikube:
 * shellcheck and `bash -n` on every script; the labels the scripts select by
 * are those controller/names.ts renders; `make -n` prints each target's
 * command; and each script, run against stand-ins for kubectl, minikube,
 * docker, helm and make that log their arguments and stdin, issues the
 * expected commands in order (for PostgreSQL and MariaDB alike where a
 * script covers both), finds pods by label, and says what to install when a
 * tool is missing. force-local-pitr-restore.sh runs against the runner
 * Deployment the controller renders for shop-pitr and the PostgreSQL pod the
 * StatefulSet makes (its jsonpath reads answered by the real kubectl), and
 * creates the restore Pod of docs/postgresql-physical.md from them.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments, stringify } from 'yaml';
import type { DatabaseBackup, DatabaseBackupStorageClass } from '../../api/crds/index.js';
import { backupLabelValue, commonLabels, LABEL_BACKUP, LABEL_NAME, RUNNER_APP, runnerName } from '../../controller/names.js';
import { planBackup } from '../../controller/plan.js';
import { CONTAINER_NAME } from '../../controller/render/objects.js';
import { CONFIG_DIR } from '../../controller/render/runner-config.js';
import { exec } from '../../testenv/exec.js';
import { find, libNames, localSettings, MINIKUBE_DIR, parseSelector, renderManifests, ROOT, runScript, type K8sObject } from '../minikube-fixtures.js';

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
for last; do :; done
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
  "kubectl "*" get pods "*postgresql*" -o name")
    if [ -n "$STUB_PG_STAYS" ] || ! grep -q -- '--replicas=0' "$STUB_LOG"; then echo pod/postgres-0; fi ;;
  "kubectl "*" get pods "*backup-runner*)
    if [ -z "$STUB_NO_RUNNER" ]; then printf '%s-runner-6d8f9-old\t2025-01-01T00:00:00Z\n%s-runner-6d8f9-x2k4q\t\n' "$backup" "$backup"; fi ;;
  "kubectl "*" get pods "*postgresql*) printf 'postgres-0\t\n' ;;
  "kubectl "*" get pods "*mariadb*) printf 'mariadb-0\t\n' ;;
  "kubectl "*" exec "*"backup-runner restore --latest --force") echo "restored with --force" ;;
  "kubectl "*" exec "*"backup-runner restore --latest") echo "restore"; exit "$STUB_RESTORE_RC" ;;
  "kubectl "*" exec "*"backup-runner status -o json") printf '%s\n' "$STUB_STATUS_JSON" ;;
  "kubectl "*" exec "*"backup-runner list -o json")
    if [ -n "$STUB_LIST_JSON_BEFORE" ] && ! grep -q 'backup-runner backup$' "$STUB_LOG"; then printf '%s\n' "$STUB_LIST_JSON_BEFORE"; else printf '%s\n' "$STUB_LIST_JSON"; fi ;;
  "kubectl "*" exec "*" backup-runner "*) echo "backup-runner answered"; exit "$STUB_RUNNER_RC" ;;
  "kubectl "*" exec "*psql*"-d testenv_meta"*)
    case "$input" in
      *"INSERT INTO pitr_markers"*) if [[ $args == *"phase=before"* ]]; then echo "$STUB_T_BEFORE"; else echo "$STUB_T_AFTER"; fi ;;
      *"count(*) FILTER"*) printf '%s\n' "$STUB_PITR_COUNTS" ;;
      *pitr_markers*) ;;
      *) printf '%s\n' "$STUB_SEED" ;;
    esac ;;
  "kubectl "*" exec "*psql*"-d shop"*) if [[ $input == *pg_tables* ]]; then printf '%s\n' "$STUB_NOW"; fi ;;
  "kubectl "*" exec "*psql*"-d postgres"*) if [[ $input == *"FROM pg_database"* ]]; then echo "$STUB_DB_EXISTS"; fi ;;
  "kubectl "*" get deployment "*" -o jsonpath="*) exec "$REAL_KUBECTL" label --local -f "$STUB_DEPLOYMENT_FILE" stub=1 -o "$last" ;;
  "kubectl "*" get pod postgres-0 "*" -o jsonpath="*) exec "$REAL_KUBECTL" label --local -f "$STUB_PG_POD_FILE" stub=1 -o "$last" ;;
  "kubectl "*" get pod testenv-pitr-restore "*"{.status.phase}"*) printf '%s' "$STUB_RESTORE_STATE" ;;
  "kubectl "*" get pod testenv-pitr-restore "*"exitCode}") printf '%s' "$STUB_RESTORE_EXIT" ;;
  "kubectl "*" logs "*"pod/testenv-pitr-restore"*) printf '%s\n' "$STUB_RESTORE_LOG" ;;
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
      STUB_STATUS_JSON: '',
      STUB_LIST_JSON: '',
      STUB_LIST_JSON_BEFORE: '',
      STUB_T_BEFORE: '',
      STUB_T_AFTER: '',
      STUB_PITR_COUNTS: '',
      STUB_PG_STAYS: '',
      STUB_RESTORE_STATE: '',
      STUB_RESTORE_EXIT: '',
      STUB_RESTORE_LOG: '',
      STUB_DEPLOYMENT_FILE: '',
      STUB_PG_POD_FILE: '',
      NODE: '',
      MINIKUBE_PROFILE: '',
      TESTENV_KUBE_CONTEXT: '',
      TESTENV_HUGEDATA: '',
      TESTENV_HUGEDATA_GB: '',
      TESTENV_DBDELETE: '',
      TESTENV_SKIP_IMAGES: '',
      TESTENV_PITR_BASE_BACKUP: '',
      TESTENV_RESTORE_TIMEOUT: '',
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
          'force-local-pitr-restore.sh',
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
        [names.PITR_BACKUP_NAME, names.PITR_RUNNER_SELECTOR],
      ] as const) {
        const selector = parseSelector(runnerSelector);
        const rendered = commonLabels(backup);
        expect(selector).toEqual({ [LABEL_NAME]: RUNNER_APP, [LABEL_BACKUP]: backupLabelValue(backup) });
        for (const [key, value] of Object.entries(selector)) expect(rendered[key], key).toBe(value);
      }
      // Every runner, for deploy-local's restart (a set-based selector).
      expect(names.RUNNERS_SELECTOR).toBe(
        `${LABEL_NAME}=${RUNNER_APP},${LABEL_BACKUP} in (${[names.BACKUP_NAME, names.MARIADB_BACKUP_NAME, names.PITR_BACKUP_NAME].map(backupLabelValue).join(',')})`,
      );
      expect(names.RUNNER_CONTAINER).toBe(CONTAINER_NAME);
      // The names the runner Deployments get; the scripts never spell them, they find them by the labels above.
      expect(runnerName(names.BACKUP_NAME)).toBe('shop-runner');
      expect(runnerName(names.MARIADB_BACKUP_NAME)).toBe('shop-mariadb-runner');
      expect(runnerName(names.PITR_BACKUP_NAME)).toBe('shop-pitr-runner');
      for (const f of scripts()) {
        const text = readFileSync(join(ROOT, f), 'utf8');
        expect(text, f).not.toContain('shop-runner');
        expect(text, f).not.toContain('shop-mariadb-runner');
        expect(text, f).not.toContain('shop-pitr-runner');
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

      // PostgreSQL's physical DatabaseBackup, and what force-local-pitr-restore.sh reads of the server.
      const pitr = manifest('62-database-backup-pitr.yaml');
      expect(pitr).toContain(`kind: DatabaseBackup\nmetadata:\n  name: ${names.PITR_BACKUP_NAME}\n  namespace: ${names.TESTENV_NAMESPACE}\n`);
      expect(pitr).toContain(`storageClassName: ${names.STORAGE_CLASS}\n`);
      expect(pg).toContain(`kind: StatefulSet\nmetadata:\n  name: ${names.POSTGRES_STATEFULSET}\n`);
      // The postgres image's user, as the seed Job runs.
      expect(manifest('30-seed-job.yaml')).toContain(`runAsUser: ${names.POSTGRES_UID}\n`);
    });

    it('the physical DatabaseBackup archives WAL, and PostgreSQL admits its replication connection', async () => {
      const { objects } = await renderManifests({}, ['10-postgresql.yaml', '60-database-backup.yaml', '62-database-backup-pitr.yaml']);
      const pitr = find(objects, 'DatabaseBackup', names.PITR_BACKUP_NAME) as unknown as DatabaseBackup;
      const shop = find(objects, 'DatabaseBackup', names.BACKUP_NAME) as unknown as DatabaseBackup;
      const pg = pitr.spec.engine.postgresql!;
      expect(pg).toMatchObject({ mode: 'physical', wal: { archive: true, partialSeconds: 5 } });
      // The same server, user and password as the logical DatabaseBackup, which stays as it was.
      const { database: _d1, mode: _m1, wal: _w1, ...server } = pg;
      const { database: _d2, ...shopServer } = shop.spec.engine.postgresql!;
      expect(server).toEqual(shopServer);
      expect(shop.spec.engine.postgresql!.mode).toBeUndefined();
      expect(pitr.spec.storageClassName).toBe(shop.spec.storageClassName);

      const sts = find(objects, 'StatefulSet', names.POSTGRES_STATEFULSET) as unknown as {
        spec: { template: { spec: { containers: { name: string; args: string[]; env: { name: string; value?: string }[]; volumeMounts: { name: string; mountPath: string }[] }[]; volumes: { name: string; configMap?: { name: string } }[] } } };
      };
      const server16 = sts.spec.template.spec.containers.find((c) => c.name === names.POSTGRES_CONTAINER)!;
      // The user is the image's superuser (POSTGRES_USER), which may replicate: no role is changed.
      expect(server16.env.find((e) => e.name === 'POSTGRES_USER')!.value).toBe(pg.user);
      const hbaFile = /^hba_file=(.+)$/.exec(server16.args.at(-1)!)![1]!;
      expect(server16.args).toEqual(['postgres', '-c', `hba_file=${hbaFile}`]);
      const mount = server16.volumeMounts.find((m) => hbaFile.startsWith(`${m.mountPath}/`))!;
      const configMap = sts.spec.template.spec.volumes.find((v) => v.name === mount.name)!.configMap!.name;
      const hba = (find(objects, 'ConfigMap', configMap) as unknown as { data: Record<string, string> }).data[hbaFile.slice(mount.mountPath.length + 1)]!;
      const lines = hba.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#')).map((l) => l.trim().split(/\s+/));
      // Replication from any address with the password, after the image's own lines (local trust for pg_psql and the entrypoint).
      expect(lines.at(-1)).toEqual(['host', 'replication', 'all', 'all', 'scram-sha-256']);
      expect(lines.slice(0, -1)).toEqual([
        ['local', 'all', 'all', 'trust'],
        ['host', 'all', 'all', '127.0.0.1/32', 'trust'],
        ['host', 'all', 'all', '::1/128', 'trust'],
        ['local', 'replication', 'all', 'trust'],
        ['host', 'replication', 'all', '127.0.0.1/32', 'trust'],
        ['host', 'replication', 'all', '::1/128', 'trust'],
        ['host', 'all', 'all', 'all', 'scram-sha-256'],
      ]);
    });
  });

  describe('make', () => {
    const make = (args: string[]) => exec('make', ['--no-print-directory', '-C', ROOT, ...args], { env: { ...process.env, MAKEFLAGS: '' } });

    it('make help lists every minikube target', async () => {
      const help = (await make(['help'])).stdout;
      for (const t of ['deploy-local', 'deploy-testenv', 'force-local-backup', 'force-local-dbdelete', 'force-local-restore', 'force-local-pitr-restore', 'undeploy-testenv', 'testenv-status']) {
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
      ['force-local-pitr-restore', ['MINIKUBE_PROFILE=dev'], 'MINIKUBE_PROFILE=dev TESTENV_KUBE_CONTEXT=dev bash testenv/minikube/force-local-pitr-restore.sh'],
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

    it('deploy-testenv: database side, waits, Jobs, waits, then the backup objects and every runner found by label', async () => {
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
        `get deployments -n dbbackup-testenv -l ${names.PITR_RUNNER_SELECTOR} -o jsonpath={.items[0].metadata.name}`,
        `rollout status -n dbbackup-testenv deployment/${runnerName(names.PITR_BACKUP_NAME)} --timeout=300s`,
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
          'ConfigMap/postgres-hba',
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
        ['Secret/testenv-minio', 'DatabaseBackupStorageClass/dbbackup-testenv', 'PersistentVolumeClaim/testenv-backups', 'DatabaseBackup/shop', 'DatabaseBackup/shop-mariadb', 'DatabaseBackup/shop-pitr'],
      ]);
      expect(r.stdout).toContain('all three runners are up');
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

    it('undeploy-testenv: deletes the three DatabaseBackups, the class, the MinIO keys and the namespace, and says the backups go', async () => {
      const r = await run('undeploy-testenv.sh');
      expect(r.code).toBe(0);
      expect(r.lines.filter((l) => l.includes(' delete ')).map((l) => l.replace(/^kubectl --context minikube /, ''))).toEqual([
        'delete databasebackup shop shop-mariadb shop-pitr -n dbbackup-testenv --ignore-not-found --wait=true --timeout=120s',
        'delete databasebackupstorageclass dbbackup-testenv --ignore-not-found',
        'delete secret testenv-minio -n db-backup-controller --ignore-not-found',
        'delete namespace dbbackup-testenv --ignore-not-found --wait=true --timeout=300s',
      ]);
      expect(r.stdout).toContain('backups included');
    });

    it('testenv-status: shows every DatabaseBackup and runner, and does not fail without a runner pod', async () => {
      const r = await run('testenv-status.sh', { STUB_NO_RUNNER: '1' });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('no running runner pod of shop: nothing to ask');
      expect(r.stdout).toContain('no running runner pod of shop-mariadb: nothing to ask');
      expect(r.stdout).toContain('no running runner pod of shop-pitr: nothing to ask');
      const up = await run('testenv-status.sh');
      expect(up.code).toBe(0);
      expect(up.lines.filter((l) => / get databasebackup \S+ -n dbbackup-testenv -o wide$/.test(l)).map((l) => l.split(' ')[5])).toEqual(['shop', 'shop-mariadb', 'shop-pitr']);
      expect(up.lines).toContain('kubectl --context minikube get databasebackup shop-pitr -n dbbackup-testenv -o jsonpath={.status.recovery}{"\\n"}');
      expect(up.lines.filter((l) => l.includes(' exec ')).map((l) => l.replace(/^kubectl --context minikube exec -n dbbackup-testenv /, ''))).toEqual([
        'shop-runner-6d8f9-x2k4q -c runner -- backup-runner status',
        'shop-runner-6d8f9-x2k4q -c runner -- backup-runner list',
        'shop-mariadb-runner-6d8f9-x2k4q -c runner -- backup-runner status',
        'shop-mariadb-runner-6d8f9-x2k4q -c runner -- backup-runner list',
        'shop-pitr-runner-6d8f9-x2k4q -c runner -- backup-runner status',
        'shop-pitr-runner-6d8f9-x2k4q -c runner -- backup-runner list',
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
        ['force-local-pitr-restore.sh', { NODE: '/nonexistent/node' }, "testenv: /nonexistent/node not found: install Node.js (https://nodejs.org/; the repository builds with it), or set NODE: it reads the runner's JSON"],
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

  describe('force-local-pitr-restore against stand-in tools', () => {
    const T_BEFORE = '2026-12-04T22:46:54.358Z';
    const T_AFTER = '2026-12-04T22:46:57.396Z';
    const BASE_AT = '2026-12-04T22:45:16.300Z';
    const PGDATA = '/var/lib/postgresql/data/pgdata';
    let sleepDir: string;
    let deploymentFile: string;
    let podFile: string;
    /** The runner Deployment the controller renders for shop-pitr (planBackup with values-local.yaml's settings). */
    let deployment: { spec: { template: { spec: { containers: { name: string; image: string; env: unknown[] }[]; volumes: { name: string; secret?: { secretName: string } }[] } } } };

    /** The runner's JSON answers, shaped as `status -o json` and `list -o json` print them. */
    const status = (o: { state?: string; receiving?: boolean; timeline?: number; archiver?: boolean } = {}) =>
      JSON.stringify(
        {
          namespace: 'dbbackup-testenv',
          name: 'shop-pitr',
          services:
            o.archiver === false
              ? []
              : [{ name: 'wal-archiver', state: o.state ?? 'running', since: BASE_AT, restarts: 0, facts: { slot: 'dbbackup_x', receiving: o.receiving ?? true, timeline: o.timeline ?? 1, gaps: [], conflicts: [], locations: {} } }],
          housekeeping: [],
        },
        null,
        2,
      );
    const baseBackup = (id: string, consistentAt: string, timeline: number) => ({
      id,
      manifest: { id, consistentAt, engine: { name: 'postgresql', serverVersion: '16.4', toolVersion: '16.4', format: 'pg_basebackup-tar', position: { stopLsn: '0/4000138', timeline: String(timeline), walSegmentSize: '16777216' } } },
      locations: ['minio', 'local'],
      copies: [],
    });
    const listing = (backups: ReturnType<typeof baseBackup>[], until = '2026-12-04T22:46:58.999Z') =>
      JSON.stringify(
        {
          backups,
          future: [],
          problems: [],
          signatures: 'not checked',
          ...(backups.length > 0
            ? { recovery: ['minio', 'local'].map((location) => ({ location, from: backups[0]!.manifest.consistentAt, until, stretches: [{ from: backups[0]!.manifest.consistentAt, until, backupId: backups[0]!.id, lastWal: '000000010000000000000005', partial: true }], gaps: [], objects: 3 })) }
            : {}),
        },
        null,
        2,
      );
    /** The restore Pod's log: the runner's log lines and its -o json result (indented). */
    const restoreLog = (recovered: Record<string, unknown>) =>
      [
        JSON.stringify({ level: 30, msg: 'restore selected backup' }),
        JSON.stringify(
          { backup: { id: 'b1' }, database: 'postgres', location: 'minio', skipped: [], unreadable: [], dataDirectory: { dataDir: PGDATA, files: 1270, bytes: 1, resumed: false, replaced: true, notes: [], recovery: { targetTime: T_BEFORE }, recovered } },
          null,
          2,
        ),
        JSON.stringify({ level: 30, msg: 'restore finished' }),
      ].join('\n');
    const recovered = { promoted: true, segments: 3, timeline: 2, lastTransactionAt: '2026-12-04T22:46:54.356721Z', firstExcludedAt: '2026-12-04T22:46:57.394984Z', server: '16.4' };

    const pitrEnv = (extra: Record<string, string> = {}): Record<string, string> => ({
      PATH: `${sleepDir}:${process.env.PATH ?? ''}`,
      STUB_RUNNER_DEPLOYMENT: '1',
      STUB_DEPLOYMENT_FILE: deploymentFile,
      STUB_PG_POD_FILE: podFile,
      STUB_STATUS_JSON: status(),
      STUB_LIST_JSON_BEFORE: listing([]),
      STUB_LIST_JSON: listing([baseBackup('b1', BASE_AT, 1)]),
      STUB_T_BEFORE: T_BEFORE,
      STUB_T_AFTER: T_AFTER,
      STUB_PITR_COUNTS: '3 0',
      STUB_RESTORE_STATE: 'Succeeded ',
      STUB_RESTORE_EXIT: '0',
      STUB_RESTORE_LOG: restoreLog(recovered),
      ...extra,
    });
    const execs = (lines: string[]) => lines.filter((l) => l.includes(' exec ')).map((l) => l.replace(/^.* -- /, ''));
    /** What `kubectl create -f -` received, as objects. */
    const created = (calls: string): K8sObject[] => {
      const chunk = calls.split(/^kubectl --context minikube create -f -\n/m)[1] ?? '';
      const yaml = chunk.split('\n').filter((l) => l.startsWith('  | ')).map((l) => l.slice(4)).join('\n');
      return parseAllDocuments(yaml).map((d) => d.toJS() as K8sObject);
    };

    beforeAll(async () => {
      sleepDir = mkdtempSync(join(tmpdir(), 'minikube-sleep-'));
      // The waits' `sleep`, instant.
      writeFileSync(join(sleepDir, 'sleep'), '#!/bin/sh\nexit 0\n');
      chmodSync(join(sleepDir, 'sleep'), 0o755);

      const { objects } = await renderManifests();
      const dbb = find(objects, 'DatabaseBackup', names.PITR_BACKUP_NAME) as unknown as DatabaseBackup;
      const sc = find(objects, 'DatabaseBackupStorageClass', names.STORAGE_CLASS) as unknown as DatabaseBackupStorageClass;
      const keys = find(objects, 'Secret', names.CONTROLLER_SECRET).stringData as Record<string, string>;
      const b64 = Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, Buffer.from(v).toString('base64')]));
      const plan = planBackup(dbb, sc, (secret) => (secret === names.CONTROLLER_SECRET ? b64 : undefined), localSettings());
      if (!plan.ok) throw new Error(`planBackup refused shop-pitr: ${plan.problem.reason}: ${plan.problem.message}`);
      deployment = plan.rendered.objects.deployment as unknown as typeof deployment;
      deploymentFile = join(dir, 'shop-pitr-deployment.yaml');
      writeFileSync(deploymentFile, stringify(plan.rendered.objects.deployment));

      // The pod the StatefulSet makes: its template, and the PVC of its claim template (<claim>-<statefulset>-<ordinal>).
      const sts = find(objects, 'StatefulSet', names.POSTGRES_STATEFULSET) as unknown as {
        spec: { template: { metadata: { labels: Record<string, string> }; spec: { volumes?: unknown[] } }; volumeClaimTemplates: { metadata: { name: string } }[] };
      };
      const claimTemplate = sts.spec.volumeClaimTemplates[0]!.metadata.name;
      podFile = join(dir, 'postgres-0.yaml');
      writeFileSync(
        podFile,
        stringify({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'postgres-0', namespace: names.TESTENV_NAMESPACE, labels: sts.spec.template.metadata.labels },
          spec: { ...sts.spec.template.spec, volumes: [...(sts.spec.template.spec.volumes ?? []), { name: claimTemplate, persistentVolumeClaim: { claimName: `${claimTemplate}-${names.POSTGRES_STATEFULSET}-0` } }] },
        }),
      );
    });

    afterAll(() => {
      rmSync(sleepDir, { recursive: true, force: true });
    });

    it('takes a base backup, commits the markers around T, waits for the archive, restores to T in a Pod, checks the rows', async () => {
      const r = await run('force-local-pitr-restore.sh', pitrEnv());
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const psql = 'psql -X -q -v ON_ERROR_STOP=1 -U postgres';
      expect(execs(r.lines)).toEqual([
        'backup-runner status -o json',
        'backup-runner list -o json',
        'backup-runner backup',
        'backup-runner list -o json',
        expect.stringMatching(new RegExp(`^${psql} -At -d testenv_meta -v run=\\d{8}T\\d{6}Z-\\d+ -v phase=before$`)),
        expect.stringMatching(new RegExp(`^${psql} -At -d testenv_meta -v run=\\d{8}T\\d{6}Z-\\d+ -v phase=after$`)),
        'backup-runner list -o json',
        expect.stringMatching(new RegExp(`^${psql} -d testenv_meta -v run=\\S+ -P footer=off$`)),
        expect.stringMatching(new RegExp(`^${psql} -At -d testenv_meta -v run=\\S+$`)),
      ]);
      // One run id throughout; the runner by label, in its container; psql in the PostgreSQL pod.
      expect(new Set(r.lines.filter((l) => l.includes(' -v run=')).map((l) => / -v run=(\S+)/.exec(l)![1])).size).toBe(1);
      for (const l of r.lines.filter((x) => x.includes('backup-runner '))) expect(l).toContain('exec -n dbbackup-testenv shop-pitr-runner-6d8f9-x2k4q -c runner -- ');
      for (const l of r.lines.filter((x) => x.includes(' psql '))) expect(l).toContain('exec -i -n dbbackup-testenv postgres-0 -c postgresql -- ');

      // The order of what changes the cluster: down, the Pod, its log, up.
      const steps = r.lines.map((l) => l.replace(/^kubectl --context minikube /, '')).filter((l) => /^(scale|create|delete|logs|rollout)/.test(l));
      expect(steps).toEqual([
        'scale statefulset postgres -n dbbackup-testenv --replicas=0',
        'delete pod testenv-pitr-restore -n dbbackup-testenv --ignore-not-found --wait=true',
        'create -f -',
        'logs -n dbbackup-testenv pod/testenv-pitr-restore -c restore',
        'delete pod testenv-pitr-restore -n dbbackup-testenv --ignore-not-found --wait=true',
        'scale statefulset postgres -n dbbackup-testenv --replicas=1',
        'rollout status -n dbbackup-testenv statefulset/postgres --timeout=300s',
      ]);
      // The markers go in before the server goes down; the rows are read after it is up again.
      const at = (re: RegExp) => r.lines.findIndex((l) => re.test(l));
      expect(at(/phase=after$/)).toBeLessThan(at(/--replicas=0$/));
      expect(at(/ -P footer=off$/)).toBeGreaterThan(at(/rollout status/));

      // The SQL: three rows per phase, T read after the commit, rounded up to the millisecond.
      expect(r.calls).toContain("INSERT INTO pitr_markers (run, phase, n) SELECT :'run', :'phase', n FROM generate_series(1, 3) AS n;");
      expect(r.calls).toContain("date_trunc('milliseconds', clock_timestamp()) AT TIME ZONE 'UTC' + interval '1 millisecond'");
      expect(r.stdout).toContain(`the target T is ${T_BEFORE}`);
      expect(r.stdout).toContain('location minio can recover from a base backup before T to 2026-12-04T22:46:58.999Z');
      expect(r.stdout).toContain('reached: the last transaction replayed committed at 2026-12-04T22:46:54.356721Z, the first one left out at 2026-12-04T22:46:57.394984Z; promoted onto timeline 2');
      expect(r.stdout).toContain(`recovered to ${T_BEFORE}: all 3 'before' rows are there, none of the 'after' rows`);
    }, 60_000);

    it("creates docs/postgresql-physical.md's restore Pod from the runner Deployment and the PostgreSQL pod", async () => {
      const r = await run('force-local-pitr-restore.sh', pitrEnv());
      expect(r.code).toBe(0);
      const [pod, ...more] = created(r.calls);
      expect(more).toEqual([]);
      type Spec = {
        restartPolicy: string;
        automountServiceAccountToken?: boolean;
        securityContext: Record<string, unknown>;
        containers: { name: string; image: string; imagePullPolicy?: string; args: string[]; env: unknown[]; volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }[];
        volumes: Record<string, unknown>[];
      };
      const spec = (pod as unknown as { spec: Spec }).spec;
      expect(pod!.metadata).toMatchObject({ name: 'testenv-pitr-restore', namespace: 'dbbackup-testenv' });
      const runner = deployment.spec.template.spec.containers.find((c) => c.name === CONTAINER_NAME)!;
      const [container, ...others] = spec.containers;
      expect(others).toEqual([]);
      // The runner's image and environment (its config path and the database password), as the controller renders them.
      expect(container!.image).toBe('localhost/db-backup-controller/backup-runner-postgresql:16-dev');
      expect(container!.image).toBe(runner.image);
      expect(container!.env).toEqual(runner.env);
      expect(container!.args).toEqual(['restore', '--to-time', T_BEFORE, '--data-dir', PGDATA, '--force', '--start', '-o', 'json']);
      // The server's PVC (the StatefulSet's claim of pod 0) where the server mounts it, the runner's config Secret, an emptyDir /tmp.
      expect(container!.volumeMounts).toEqual([
        { name: 'data', mountPath: '/var/lib/postgresql/data' },
        { name: 'config', mountPath: CONFIG_DIR, readOnly: true },
        { name: 'tmp', mountPath: '/tmp' },
      ]);
      const configSecret = deployment.spec.template.spec.volumes.find((v) => v.name === 'config')!.secret!.secretName;
      expect(configSecret).toBe(runnerName(names.PITR_BACKUP_NAME));
      expect(spec.volumes).toEqual([
        { name: 'data', persistentVolumeClaim: { claimName: 'data-postgres-0' } },
        { name: 'config', secret: { secretName: configSecret, defaultMode: 0o440 } },
        { name: 'tmp', emptyDir: {} },
      ]);
      // No API access (only the runner's daemon writes status); as the postgres image's user, which the seed Job runs as too.
      expect(spec.automountServiceAccountToken).toBe(false);
      expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 999, runAsGroup: 999, fsGroup: 999 });
      expect(String(names.POSTGRES_UID)).toBe('999');

      // The example of docs/postgresql-physical.md ("In Kubernetes"), with this testenv's names.
      const doc = readFileSync(join(ROOT, 'docs', 'postgresql-physical.md'), 'utf8');
      const block = [...doc.matchAll(/^( *)```yaml\n([\s\S]*?)^\1```/gm)].find((m) => /^\s*kind: Pod$/m.test(m[2]!));
      expect(block, 'the restore Pod of docs/postgresql-physical.md').toBeDefined();
      const example = parse(block![2]!.replace(new RegExp(`^${block![1]}`, 'gm'), '')) as { spec: Spec };
      expect(spec.restartPolicy).toBe(example.spec.restartPolicy);
      expect(spec.securityContext).toMatchObject(example.spec.securityContext);
      const docContainer = example.spec.containers[0]!;
      expect(container!.args.filter((a) => a.startsWith('--'))).toEqual(docContainer.args.filter((a) => a.startsWith('--')));
      expect(container!.env).toEqual(expect.arrayContaining(docContainer.env));
      expect(container!.volumeMounts).toEqual(docContainer.volumeMounts);
      expect(spec.volumes.map((v) => Object.keys(v).sort())).toEqual(example.spec.volumes.map((v) => Object.keys(v).sort()));
    }, 60_000);

    it('takes a base backup only when none of the current timeline is stored, or when asked to', async () => {
      const stored = { STUB_LIST_JSON_BEFORE: '', STUB_LIST_JSON: listing([baseBackup('b1', BASE_AT, 1)]) };
      const none = await run('force-local-pitr-restore.sh', pitrEnv(stored));
      expect(none.code).toBe(0);
      expect(execs(none.lines)).not.toContain('backup-runner backup');
      expect(none.stdout).toContain(`base backup b1 (consistent at ${BASE_AT}) on timeline 1`);

      const always = await run('force-local-pitr-restore.sh', pitrEnv({ ...stored, TESTENV_PITR_BASE_BACKUP: 'always' }));
      expect(always.code).toBe(0);
      expect(execs(always.lines).filter((l) => l === 'backup-runner backup')).toHaveLength(1);

      // After a recovery the server runs on a new timeline: a base backup of the old one cannot reach T.
      const newTimeline = await run(
        'force-local-pitr-restore.sh',
        pitrEnv({ STUB_STATUS_JSON: status({ timeline: 2 }), STUB_LIST_JSON_BEFORE: listing([baseBackup('b1', BASE_AT, 1)]), STUB_LIST_JSON: listing([baseBackup('b1', BASE_AT, 1), baseBackup('b2', BASE_AT, 2)]) }),
      );
      expect(newTimeline.code).toBe(0);
      expect(newTimeline.stdout).toContain('no base backup of timeline 2 is stored: taking one');
      expect(newTimeline.stdout).toContain('base backup b2 (consistent at');

      const failed = await run('force-local-pitr-restore.sh', pitrEnv({ STUB_RUNNER_RC: '1' }));
      expect(failed.code).toBe(1);
      expect(failed.stderr).toContain('the base backup failed with exit code 1');
      expect(failed.lines.some((l) => l.includes(' psql '))).toBe(false);

      expect((await run('force-local-pitr-restore.sh', pitrEnv({ TESTENV_PITR_BASE_BACKUP: 'sometimes' }))).stderr).toContain('TESTENV_PITR_BASE_BACKUP must be auto or always, not "sometimes"');
    }, 60_000);

    it('fails when the restored server holds an "after" row or lacks a "before" row', async () => {
      for (const [counts, message] of [
        ['3 3', "holds 3 of 3 'before' rows (committed before T: all expected) and 3 of 3 'after' rows (committed after T: none expected)"],
        ['0 0', "holds 0 of 3 'before' rows"],
      ] as const) {
        const r = await run('force-local-pitr-restore.sh', pitrEnv({ STUB_PITR_COUNTS: counts }));
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`the recovery to ${T_BEFORE} is wrong: of run `);
        expect(r.stderr).toContain(message);
      }
      // Recovered to the archive's end because it held no commit after T: said, not hidden.
      const ended = await run('force-local-pitr-restore.sh', pitrEnv({ STUB_RESTORE_LOG: restoreLog({ ...recovered, firstExcludedAt: undefined, archiveEndedBeforeTarget: true }) }));
      expect(ended.code).toBe(0);
      expect(ended.stdout).toContain("warning: the archive held no commit after the target, so the recovery ran to the archive's end");
    }, 60_000);

    it('leaves PostgreSQL scaled down when the restore fails, and says why', async () => {
      for (const [state, exit, shown] of [
        ['Failed ', '1', 'Failed , exit code 1'],
        ['Pending ErrImageNeverPull', '', 'Pending ErrImageNeverPull, exit code none'],
      ] as const) {
        const r = await run('force-local-pitr-restore.sh', pitrEnv({ STUB_RESTORE_STATE: state, STUB_RESTORE_EXIT: exit, STUB_RESTORE_LOG: '{\n  "error": {\n    "code": "OUTSIDE_RECOVERY_WINDOW",\n    "message": "too late"\n  }\n}' }));
        expect(r.code).toBe(1);
        expect(r.stderr).toContain(`the restore did not succeed (${shown}; its log above). PostgreSQL stays scaled to 0`);
        expect(r.stdout).toContain('the restore failed: OUTSIDE_RECOVERY_WINDOW: too late');
        expect(r.lines.some((l) => l.endsWith('--replicas=1'))).toBe(false);
        expect(r.lines.filter((l) => l.includes('delete pod testenv-pitr-restore'))).toHaveLength(2);
      }
      const slow = await run('force-local-pitr-restore.sh', pitrEnv({ STUB_RESTORE_STATE: 'Running ', TESTENV_RESTORE_TIMEOUT: '0' }));
      expect(slow.code).toBe(1);
      expect(slow.stderr).toContain('Pod testenv-pitr-restore has not finished after 0s (Running ; the end of its log above). It is left running');
      expect(slow.lines.filter((l) => l.includes('delete pod testenv-pitr-restore'))).toHaveLength(1);
      expect(slow.lines.some((l) => l.endsWith('--replicas=1'))).toBe(false);
    }, 60_000);

    it('stops before touching the server when the archive is not ready, with what it waited for', async () => {
      const untouched = (r: { lines: string[] }) => expect(r.lines.some((l) => / (scale|create) /.test(l))).toBe(false);
      const cases: [Record<string, string>, string][] = [
        [{ STUB_STATUS_JSON: status({ state: 'backoff', receiving: false }) }, 'the runner of shop-pitr reports no WAL streaming after 0s (wal-archiver: backoff false 1)'],
        [{ STUB_STATUS_JSON: '' }, 'reports no WAL streaming after 0s (wal-archiver: unparsable)'],
        [{ STUB_STATUS_JSON: status({ archiver: false }) }, 'the runner of shop-pitr runs no WAL archiver: DatabaseBackup shop-pitr must have mode: physical with WAL archiving'],
        [{ STUB_LIST_JSON: listing([baseBackup('b1', BASE_AT, 1)], '2026-12-04T22:46:56.000Z') }, `the WAL archive does not reach past ${T_AFTER} after 0s (the stretch from a base backup before T: short 2026-12-04T22:46:56.000Z minio)`],
        [{ STUB_LIST_JSON: JSON.stringify({ error: { code: 'STORAGE_FAILED', message: 'no bucket' } }) }, 'backup-runner list answered error: STORAGE_FAILED: no bucket'],
        [{ STUB_PG_STAYS: '1' }, 'the PostgreSQL pod is still there after 0s'],
      ];
      for (const [env, message] of cases) {
        const r = await run('force-local-pitr-restore.sh', pitrEnv({ ...env, TESTENV_WAIT_TIMEOUT: '0' }));
        expect(r.code, message).toBe(1);
        expect(r.stderr).toContain(message);
        if (!env.STUB_PG_STAYS) untouched(r);
        else expect(r.lines.some((l) => l.includes(' create '))).toBe(false);
      }
      const noRunner = await run('force-local-pitr-restore.sh', pitrEnv({ STUB_NO_RUNNER: '1' }));
      expect(noRunner.code).toBe(1);
      expect(noRunner.stderr).toContain(`no running shop-pitr runner pod with labels ${names.PITR_RUNNER_SELECTOR} in namespace dbbackup-testenv (context minikube): run \`make deploy-testenv\``);
    }, 60_000);
  });
});
