import { describe, expect, it } from 'vitest';
import { appliedLabel, contains, differences, quantityValue } from '../../controller/compare.js';
import { stampListKind } from '../../controller/kube.js';

describe('quantityValue', () => {
  it.each([
    ['500m', 0.5],
    ['1', 1],
    [2, 2],
    ['1Gi', 2 ** 30],
    ['256Mi', 256 * 2 ** 20],
    ['1k', 1000],
    ['1e3', 1000],
    ['.5', 0.5],
    ['abc', undefined],
    ['1Gb', undefined],
  ])('%s -> %s', (q, v) => {
    expect(quantityValue(q)).toBe(v);
  });
});

describe('contains(observed, desired)', () => {
  it.each([
    ['equal scalars', 'a', 'a', true],
    ['different scalars', 'a', 'b', false],
    ['extra observed fields are ignored', { a: 1, b: 2 }, { a: 1 }, true],
    ['a missing field is a difference', { a: 1 }, { a: 1, b: 2 }, false],
    ['quantities by value', { cpu: '1' }, { cpu: '1000m' }, true],
    ['different quantities', { memory: '1Gi' }, { memory: '1G' }, false],
    ['list items in any order', [{ name: 'b' }, { name: 'a', x: 1 }], [{ name: 'a' }, { name: 'b' }], true],
    ['an item added by someone else', [{ name: 'a' }, { name: 'mine' }], [{ name: 'a' }], true],
    ['an extra item in an atomic list (Role rules) is a difference', [{ verbs: ['get'] }, { verbs: ['list'] }], [{ verbs: ['get'] }], false],
    ['an extra scalar in a list', ['serve', '--debug'], ['serve'], false],
    ['a removed item', [{ name: 'a' }], [{ name: 'a' }, { name: 'b' }], false],
    ['one observed item cannot match two desired', [{ name: 'a' }], [{ name: 'a' }, { name: 'a' }], false],
    ['an edited value in a list', [{ name: 'a', image: 'x:2' }], [{ name: 'a', image: 'x:1' }], false],
    ['an empty object the server dropped', {}, { annotations: {} }, true],
    ['an empty list the server dropped', {}, { items: [] }, true],
    ['a number and its string are not quantities-equal unless numeric', { port: 'metrics' }, { port: 'metrics' }, true],
    ['null is not an object', { a: null }, { a: { b: 1 } }, false],
    ['a desired null holds when the field is absent', { type: 'Recreate' }, { type: 'Recreate', rollingUpdate: null }, true],
    ['a desired null holds when the field is null', { rollingUpdate: null }, { rollingUpdate: null }, true],
    ['a desired null: a field left by a strategy edit is a difference', { type: 'Recreate', rollingUpdate: { maxSurge: '25%' } }, { type: 'Recreate', rollingUpdate: null }, false],
    ['a missing ownerReference is a difference', { metadata: { labels: { a: 'b' } } }, { metadata: { ownerReferences: [{ uid: 'u1', name: 'orders' }] } }, false],
    ['an ownerReference to another uid is a difference', { metadata: { ownerReferences: [{ uid: 'u2', name: 'orders' }] } }, { metadata: { ownerReferences: [{ uid: 'u1', name: 'orders' }] } }, false],
  ])('%s', (_name, observed, desired, expected) => {
    expect(contains(observed, desired)).toBe(expected);
  });
});

describe('differences', () => {
  it('names the paths that differ', () => {
    expect(differences({ spec: { replicas: 0, template: { image: 'a' } } }, { spec: { replicas: 1, template: { image: 'a' } }, metadata: { labels: { x: 'y' } } })).toEqual([
      'spec.replicas',
      'metadata',
    ]);
  });
});

describe('objects read by a list (a restarted controller)', () => {
  const rendered = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'orders-runner', namespace: 'shop', labels: { a: 'b' } } };
  const listed = () => ({ apiVersion: 'v1', kind: 'ServiceAccountList', metadata: {}, items: [{ metadata: { name: 'orders-runner', namespace: 'shop', labels: { a: 'b' }, uid: 'x' } }] });

  it('an item as the API server lists it lacks apiVersion and kind, which is a difference', () => {
    expect(differences(listed().items[0], rendered)).toEqual(['apiVersion', 'kind']);
  });

  it('stamped with the kind of its list, it holds what is rendered', () => {
    const l = listed();
    stampListKind(l);
    expect(l.items[0]).toMatchObject({ apiVersion: 'v1', kind: 'ServiceAccount' });
    expect(contains(l.items[0], rendered)).toBe(true);
  });

  it('the source names the kind when the list does not', () => {
    const l = { metadata: {}, items: [{ metadata: { name: 'd' } }] };
    stampListKind(l as never, { apiVersion: 'apps/v1', kind: 'Deployment' });
    expect(l.items[0]).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' });
  });

  it('keeps the apiVersion and kind an item carries', () => {
    const l = { apiVersion: 'v1', kind: 'List', metadata: {}, items: [{ apiVersion: 'apps/v1', kind: 'Deployment', metadata: {} }] };
    stampListKind(l);
    expect(l.items[0]).toMatchObject({ apiVersion: 'apps/v1', kind: 'Deployment' });
  });
});

describe('appliedLabel (an object that lost its ownerReference is still ours)', () => {
  const LABEL = 'app.kubernetes.io/managed-by';
  const fields = { 'f:metadata': { 'f:labels': { [`f:${LABEL}`]: {} } } };
  it.each([
    ['applied by the controller', [{ manager: 'db-backup-controller', operation: 'Apply', fieldsV1: fields }], true],
    ['a kubectl copy with the labels', [{ manager: 'kubectl-client-side-apply', operation: 'Update', fieldsV1: fields }], false],
    ['kubectl create', [{ manager: 'kubectl-create', operation: 'Update', fieldsV1: fields }], false],
    ['the controller manager by Update, not Apply', [{ manager: 'db-backup-controller', operation: 'Update', fieldsV1: fields }], false],
    ['the controller applied other fields but not the label', [{ manager: 'db-backup-controller', operation: 'Apply', fieldsV1: { 'f:spec': {} } }], false],
    ['no managedFields', undefined, false],
  ])('%s', (_name, managedFields, expected) => {
    expect(appliedLabel(managedFields, 'db-backup-controller', LABEL)).toBe(expected);
  });
});
