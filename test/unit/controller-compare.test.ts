import { describe, expect, it } from 'vitest';
import { contains, differences, quantityValue } from '../../controller/compare.js';

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
