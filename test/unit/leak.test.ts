import { describe, expect, it } from 'vitest';
import { findLeaks, secretForms } from '../../testenv/leak.js';

describe('findLeaks', () => {
  const secret = 'p@ss w/rd"42-canary';
  it.each([
    ['plain', `password=${secret} in a log line`],
    ['base64', `data: ${Buffer.from(secret).toString('base64')}`],
    ['url-encoded', `https://h/?k=${encodeURIComponent(secret)}`],
    ['json-escaped', JSON.stringify({ msg: `failed: ${secret}` })],
  ])('finds the secret written %s', (form, text) => {
    const leaks = findLeaks({ db: secret }, [{ source: 'log', text }]);
    expect(leaks.map((l) => [l.source, l.secret, l.form])).toContainEqual(['log', 'db', form]);
  });

  it('reports where, never the value', () => {
    const leaks = findLeaks({ db: secret }, [{ source: 'cli', text: `before ${secret} after` }]);
    expect(leaks).toEqual([{ source: 'cli', secret: 'db', form: 'plain', excerpt: 'before *** after' }]);
    expect(JSON.stringify(leaks)).not.toContain(secret);
  });

  it('finds every occurrence in every output, and nothing in clean text', () => {
    const outputs = [
      { source: 'a', text: `${secret}${secret}` },
      { source: 'b', text: 'nothing here' },
      { source: 'c', text: `x ${secret}` },
    ];
    expect(findLeaks({ db: secret }, outputs).map((l) => l.source)).toEqual(['a', 'a', 'c']);
    expect(findLeaks({ db: secret }, [{ source: 'b', text: 'p@ss w/rd"4 canary' }])).toEqual([]);
  });

  it('refuses secrets too short to look for', () => {
    expect(() => findLeaks({ short: 'abc' }, [])).toThrow(/shorter than 8/);
  });

  it('lists each distinct form once', () => {
    expect(secretForms('plainsecret').map((f) => f.form)).toEqual(['plain', 'base64']);
  });
});
