/**
 * The archive slot a configuration no longer uses: which configurations leave it to the daemon's start-up
 * housekeeping, what is done with the slot as the server shows it, that no name but the one given is ever
 * asked about or dropped, and that the housekeeping never throws (it warns with the fix).
 */
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseCommand } from '../../runner/cli/args.js';
import { renderSlotDrop } from '../../runner/cli/wal-slot.js';
import { classifyFailure } from '../../runner/engines/postgresql/classify.js';
import { PostgresqlEngine } from '../../runner/engines/postgresql/engine.js';
import { archiveSlotName } from '../../runner/engines/postgresql/physical/archiver.js';
import { archivesThrough, dropArchiveSlot, failureOutcome, handDropSql, retainedBytes, slotAction, slotHousekeeping } from '../../runner/engines/postgresql/physical/slot-cleanup.js';
import type { SlotInfo } from '../../runner/engines/postgresql/physical/wal-server.js';
import { BackupError, isBackupError } from '../../runner/errors.js';
import { createLogger, silentLogger, type Logger } from '../../runner/logger.js';

const SLOT = archiveSlotName({ namespace: 'shop', name: 'orders' });
const idle: SlotInfo = { walStatus: 'reserved', active: false, restartLsn: 0x3000000n, currentLsn: 0x5000028n };
const streaming: SlotInfo = { ...idle, active: true, activePid: 4242 };

/** A server holding at most one slot, recording every name it is asked about. */
function fakeServer(initial: SlotInfo | undefined, opts: { dropFails?: BackupError; after?: SlotInfo | undefined; readFails?: BackupError } = {}) {
  let slot = initial;
  const asked: string[] = [];
  const dropped: string[] = [];
  return {
    asked,
    dropped,
    slot: (name: string) => {
      asked.push(name);
      if (opts.readFails) return Promise.reject(opts.readFails);
      return Promise.resolve(slot);
    },
    dropSlot: (name: string) => {
      asked.push(name);
      if (opts.dropFails) {
        slot = 'after' in opts ? opts.after : slot;
        return Promise.reject(opts.dropFails);
      }
      dropped.push(name);
      slot = undefined;
      return Promise.resolve();
    },
  };
}

function capturingLogger(): { log: Logger; lines: () => Record<string, unknown>[] } {
  let text = '';
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  return { log: createLogger({ level: 'debug', destination: dest, pretty: false }), lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

const denied = new BackupError('DB_AUTH_FAILED', 'user "backup" may not use replication slots');

describe('which configurations archive through the slot', () => {
  it.each([
    [{ mode: 'physical' as const }, true],
    [{ mode: 'physical' as const, wal: { archive: true } }, true],
    [{ mode: 'physical' as const, wal: { slot: SLOT } }, true],
    [{ mode: 'physical' as const, wal: { archive: false } }, false],
    [{ mode: 'physical' as const, wal: { slot: 'elsewhere' } }, false],
    [{ mode: 'logical' as const }, false],
    [{}, false],
  ])('%j: %s', (conn, archives) => {
    expect(archivesThrough(conn, SLOT)).toBe(archives);
  });
});

describe('what is done with the slot', () => {
  it('an idle slot is dropped, an active one left, a missing one is nothing to do', () => {
    expect(slotAction(idle)).toBe('drop');
    expect(slotAction({ ...idle, walStatus: 'lost' })).toBe('drop');
    expect(slotAction(streaming)).toBe('active');
    expect(slotAction(undefined)).toBe('absent');
  });

  it('a failure is told by its code', () => {
    expect(failureOutcome(denied)).toBe('denied');
    expect(failureOutcome(new BackupError('DB_UNREACHABLE', 'x'))).toBe('unreachable');
    expect(failureOutcome(new BackupError('DB_NOT_FOUND', 'x'))).toBe('unreachable');
    expect(failureOutcome(new BackupError('SLOT_ACTIVE', 'x'))).toBe('active');
    expect(failureOutcome(new BackupError('DB_QUERY_FAILED', 'x'))).toBe('failed');
  });

  it('the WAL the slot holds, when the server says', () => {
    expect(retainedBytes(idle)).toBe(0x2000028);
    expect(retainedBytes({ walStatus: 'lost', active: false })).toBeUndefined();
    expect(retainedBytes({ ...idle, currentLsn: undefined })).toBeUndefined();
  });

  it('the statement that drops it by hand', () => {
    expect(handDropSql(SLOT)).toBe(`SELECT pg_drop_replication_slot('${SLOT}');`);
  });

  it('a role that may not use replication slots is DB_AUTH_FAILED, with the fix (PostgreSQL 15 and 16 words)', () => {
    const ctx = { tool: 'psql', host: 'db', port: 5432, user: 'backup', database: 'shop', fallback: 'DB_QUERY_FAILED' as const };
    for (const stderr of ['psql:<stdin>:1: ERROR:  must be superuser or replication role to use replication slots', 'psql:<stdin>:1: ERROR:  permission denied to use replication slots\nDETAIL:  Only roles with the REPLICATION attribute may use replication slots.']) {
      const e = classifyFailure(stderr, 3, ctx);
      expect(e.code).toBe('DB_AUTH_FAILED');
      expect(e.message).toMatch(/ALTER ROLE "backup" WITH REPLICATION/);
    }
  });
});

describe('dropArchiveSlot', () => {
  it('drops an idle slot, by exactly the name given, and says what it held', async () => {
    const server = fakeServer(idle);
    expect(await dropArchiveSlot(server, SLOT)).toEqual({ slot: SLOT, outcome: 'dropped', retainedBytes: 0x2000028 });
    expect(server.dropped).toEqual([SLOT]);
    expect(new Set(server.asked)).toEqual(new Set([SLOT]));
  });

  it('a missing slot is nothing to drop', async () => {
    const server = fakeServer(undefined);
    expect(await dropArchiveSlot(server, SLOT)).toEqual({ slot: SLOT, outcome: 'absent' });
    expect(server.dropped).toEqual([]);
  });

  it('refuses an active slot (SLOT_ACTIVE, exit 5), never asking the server to drop it', async () => {
    const server = fakeServer(streaming);
    const err = await dropArchiveSlot(server, SLOT).catch((e: unknown) => e);
    expect(isBackupError(err, 'SLOT_ACTIVE')).toBe(true);
    expect((err as BackupError).exitCode).toBe(5);
    expect((err as BackupError).message).toMatch(/process 4242/);
    expect(server.asked).toEqual([SLOT]);
  });

  it('a drop refused because the slot went meanwhile is absent; because it became active, SLOT_ACTIVE', async () => {
    const gone = fakeServer(idle, { dropFails: new BackupError('DB_QUERY_FAILED', 'replication slot does not exist'), after: undefined });
    expect(await dropArchiveSlot(gone, SLOT)).toEqual({ slot: SLOT, outcome: 'absent' });
    const taken = fakeServer(idle, { dropFails: new BackupError('DB_QUERY_FAILED', 'replication slot is active'), after: streaming });
    expect(isBackupError(await dropArchiveSlot(taken, SLOT).catch((e: unknown) => e), 'SLOT_ACTIVE')).toBe(true);
  });

  it('any other refusal is the server\'s error', async () => {
    const server = fakeServer(idle, { dropFails: denied });
    expect(await dropArchiveSlot(server, SLOT).catch((e: unknown) => e)).toBe(denied);
  });
});

describe('the start-up housekeeping task', () => {
  it('drops the slot and logs it with the WAL it held', async () => {
    const { log, lines } = capturingLogger();
    const server = fakeServer(idle);
    const report = await slotHousekeeping(server, SLOT, 'backup', log).run(new AbortController().signal);
    expect(report).toEqual({ outcome: 'dropped', facts: { slot: SLOT, retainedBytes: 0x2000028 } });
    expect(lines().find((l) => l.level === 30)).toMatchObject({ slot: SLOT, retainedBytes: 0x2000028, msg: expect.stringMatching(/dropped the WAL archive slot/) as unknown });
  });

  it('leaves an active slot, with a warning', async () => {
    const { log, lines } = capturingLogger();
    const server = fakeServer(streaming);
    const report = await slotHousekeeping(server, SLOT, 'backup', log).run(new AbortController().signal);
    expect(report).toMatchObject({ outcome: 'active', retry: true });
    expect(server.dropped).toEqual([]);
    expect(lines().find((l) => l.level === 40)?.msg).toMatch(/left while something streams from it/);
  });

  it.each([
    ['denied', { dropFails: denied }, /ALTER ROLE "backup" WITH REPLICATION.*pg_drop_replication_slot\('dbbackup_shop_orders_/],
    ['unreachable', { readFails: new BackupError('DB_UNREACHABLE', 'cannot reach PostgreSQL') }, /next start.*pg_drop_replication_slot/],
    ['failed', { readFails: new BackupError('TOOL_MISSING', 'psql not found') }, /pg_drop_replication_slot/],
  ] as const)('never throws: %s is a warning with the fix', async (outcome, opts, fix) => {
    const { log, lines } = capturingLogger();
    const report = await slotHousekeeping(fakeServer(idle, opts), SLOT, 'backup', log).run(new AbortController().signal);
    expect(report.outcome).toBe(outcome);
    // Only what may pass by itself is tried again: a missing right or tool needs a change first.
    expect(report.retry === true).toBe(outcome === 'unreachable');
    expect(report.facts).toMatchObject({ slot: SLOT, error: { code: expect.any(String) as unknown } });
    expect(lines().find((l) => l.level === 40)?.msg).toMatch(fix);
  });

  it('nothing there: nothing said above debug', async () => {
    const { log, lines } = capturingLogger();
    expect((await slotHousekeeping(fakeServer(undefined), SLOT, 'backup', log).run(new AbortController().signal)).outcome).toBe('absent');
    expect(lines().filter((l) => (l.level as number) > 20)).toEqual([]);
  });
});

describe('the PostgreSQL engine offers the task only to a configuration that does not archive through the slot', () => {
  const conn = { host: 'db', port: 5432, database: 'shop', user: 'backup' };
  const owner = { namespace: 'shop', name: 'orders' };
  it.each([
    [{ mode: 'physical' as const }, 0],
    [{ mode: 'physical' as const, wal: { archive: false } }, 1],
    [{ mode: 'logical' as const }, 1],
    [{}, 1],
  ])('%j: %s task(s)', (extra, n) => {
    const engine = new PostgresqlEngine({ ...conn, ...extra }, silentLogger(), {});
    const tasks = engine.housekeeping({ logger: silentLogger(), owner });
    expect(tasks.map((t) => t.name)).toEqual(n === 0 ? [] : ['wal-slot']);
    expect(engine.archivesThroughOwnSlot(owner)).toBe(n === 0);
  });
});

describe('backup-runner wal-slot drop', () => {
  it('parses, and needs its action', () => {
    expect(parseCommand(['wal-slot', 'drop', '-c', '/c.yaml'])).toMatchObject({ name: 'wal-slot', action: 'drop', config: '/c.yaml' });
    expect(() => parseCommand(['wal-slot'])).toThrowError(/wal-slot needs what to do: "wal-slot drop"/);
    expect(() => parseCommand(['wal-slot', 'show'])).toThrowError(/not "show"/);
    expect(() => parseCommand(['wal-slot', 'drop', 'extra'])).toThrowError(/unexpected argument "extra"/);
  });

  it('says what it did', () => {
    expect(renderSlotDrop({ slot: SLOT, outcome: 'dropped', retainedBytes: 48 * 1024 * 1024 })).toBe(`dropped replication slot "${SLOT}" (it held 48.0 MiB of WAL on the server)`);
    expect(renderSlotDrop({ slot: SLOT, outcome: 'absent' })).toMatch(/nothing to drop/);
  });
});
