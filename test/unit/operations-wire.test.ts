/**
 * The control protocol carries every operation of the one table
 * (runner/ops/perform.ts OPERATIONS): what a command asks for reaches the
 * daemon as the same operation, and the fields only the runner sets never
 * travel.
 */
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import { toRequest } from '../../runner/cli/remote.js';
import { operationFromRequest } from '../../runner/daemon/daemon.js';
import { OperationRequest } from '../../runner/daemon/protocol.js';
import { isReadOnly, OPERATIONS, type Operation } from '../../runner/ops/perform.js';

/** One operation of each kind as a command asks for it, with every field the wire carries. */
const asked: Operation[] = [
  { kind: 'backup', trigger: 'manual' },
  { kind: 'list' },
  { kind: 'restore', selector: { kind: 'time', at: new Date('2026-11-21T10:00:00.000Z') }, force: true, targetDatabase: 'copy', allowIncompleteListing: true, identities: ['AGE-SECRET-KEY-1X'] },
  { kind: 'restore', selector: { kind: 'id', id: '20261121T100000Z-aaaa' }, force: false },
  { kind: 'restore', selector: { kind: 'latest' }, force: false, databases: ['shop', 'crm'], skipGlobals: true, noOwner: true },
  { kind: 'verify', id: '20261121T100000Z-aaaa', identities: ['AGE-SECRET-KEY-1X'] },
  { kind: 'retention', dryRun: true },
  { kind: 'mirror', scope: 'all', to: 'b', from: 'a', dryRun: false, identities: ['AGE-SECRET-KEY-1X'] },
  { kind: 'rekey', location: 's3', id: '20261121T100000Z-aaaa', dryRun: true },
  { kind: 'import', source: { kind: 'file', path: '/tmp/orders.dump.gz' }, targetDatabase: 'copy', force: true, keep: true },
  { kind: 'import', source: { kind: 'location', location: 'offsite', key: 'imports/orders.sql.zst' }, force: false, keep: false },
];

describe('operations on the wire', () => {
  it('covers every kind of the table', () => {
    expect(new Set(asked.map((o) => o.kind))).toEqual(new Set(Object.keys(OPERATIONS)));
  });

  it.each(asked.map((op) => [op.kind, op] as const))('%s: a valid request that the daemon reads back as the same operation', (_kind, op) => {
    const wire = toRequest(op);
    expect(Value.Check(OperationRequest, wire), JSON.stringify([...Value.Errors(OperationRequest, wire)].map((e) => `${e.path}: ${e.message}`))).toBe(true);
    expect(operationFromRequest(JSON.parse(JSON.stringify(wire)) as OperationRequest)).toEqual(op);
  });

  it('fields only the runner sets never travel, and a request cannot set them', () => {
    expect(toRequest({ kind: 'backup', trigger: 'schedule' })).toEqual({ kind: 'backup' });
    expect(Value.Check(OperationRequest, { kind: 'backup', trigger: 'schedule' })).toBe(false);
    expect(Value.Check(OperationRequest, { kind: 'mirror', dryRun: false, scope: 'missed' })).toBe(false);
    // A file travels as an absolute path: the daemon has another working directory.
    expect(Value.Check(OperationRequest, { kind: 'import', source: { kind: 'file', path: 'relative.dump' }, force: false, keep: false })).toBe(false);
  });

  it.each([
    [{ kind: 'list' }, true],
    [{ kind: 'backup', trigger: 'manual' }, false],
    [{ kind: 'retention', dryRun: true }, true],
    [{ kind: 'retention', dryRun: false }, false],
    [{ kind: 'mirror', scope: 'all', dryRun: true }, true],
    [{ kind: 'rekey', dryRun: false }, false],
    [{ kind: 'verify' }, false],
    [{ kind: 'import', source: { kind: 'file', path: '/x' }, force: false, keep: false }, false],
  ] as [Operation, boolean][])('%j is read-only: %s', (op, readOnly) => {
    expect(isReadOnly(op)).toBe(readOnly);
  });
});
