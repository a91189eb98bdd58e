/**
 * Golden files: a test's actual result as pretty JSON under test/unit/golden/.
 * A mismatch fails; `UPDATE_GOLDEN=1` rewrites the files instead (review the
 * diff before committing). A missing file fails unless updating.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';

const ROOT = join(import.meta.dirname, 'golden');

export const updatingGolden = (): boolean => process.env.UPDATE_GOLDEN === '1';

export function expectGolden(relPath: string, actual: unknown): void {
  const file = join(ROOT, relPath);
  const text = `${JSON.stringify(actual, null, 2)}\n`;
  if (updatingGolden()) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, text);
    return;
  }
  let stored: string;
  try {
    stored = readFileSync(file, 'utf8');
  } catch {
    throw new Error(`golden file test/unit/golden/${relPath} is missing: run the test with UPDATE_GOLDEN=1 to write it, then review it`);
  }
  expect(JSON.parse(text), `golden file ${relPath} differs (UPDATE_GOLDEN=1 rewrites it)`).toEqual(JSON.parse(stored));
  expect(text, `golden file ${relPath} is not in canonical form (UPDATE_GOLDEN=1 rewrites it)`).toBe(stored);
}
