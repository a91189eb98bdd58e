/** The fake server-side tool of the tests (test/fixtures/server-side-tool.mjs) and its definition: its "database server" is a directory of files. */
import { fileURLToPath } from 'node:url';

export const SERVER_SIDE_TOOL = fileURLToPath(new URL('./fixtures/server-side-tool.mjs', import.meta.url));

export const SERVER_SIDE_DEFINITION = {
  name: 'fakeserver',
  command: [process.execPath, SERVER_SIDE_TOOL],
  verbs: ['probe', 'backup', 'restore', 'inspect'],
  formats: [{ format: 'fake-server-backup', extension: 'fsb', magicHex: ['7b'] }],
  output: 'location',
  configSchema: { type: 'object', properties: { mode: { type: 'string' }, spyDir: { type: 'string' } }, additionalProperties: false },
};
