import { pathToFileURL } from 'node:url';

/**
 * Lets a launcher run as its own process (`npx tsx testenv/<x>.ts`): starts
 * the server, prints what clients need as one JSON line, and stops it on
 * SIGINT or SIGTERM. Does nothing when the module is imported.
 */
export function runAsProcess(moduleUrl: string, start: () => Promise<{ info: unknown; stop: () => Promise<void> }>): void {
  if (process.argv[1] === undefined || moduleUrl !== pathToFileURL(process.argv[1]).href) return;
  start()
    .then(({ info, stop }) => {
      console.log(JSON.stringify(info));
      const shutdown = (): void => {
        void stop().then(() => process.exit(0));
      };
      process.once('SIGINT', shutdown);
      process.once('SIGTERM', shutdown);
    })
    .catch((err: unknown) => {
      console.error(err instanceof Error ? err.message : err);
      process.exit(1);
    });
}
