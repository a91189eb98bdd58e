import { pino, type Logger, type LoggerOptions } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** Field names whose values never reach a log line, at any depth used here. */
export const REDACT_PATHS = [
  'password',
  '*.password',
  '*.*.password',
  'secretAccessKey',
  '*.secretAccessKey',
  '*.*.secretAccessKey',
  'accessKeyId',
  '*.accessKeyId',
  '*.*.accessKeyId',
  'sessionToken',
  '*.sessionToken',
  'credentials',
  '*.credentials',
  '*.*.credentials',
  'env.PGPASSWORD',
  '*.env.PGPASSWORD',
  'value',
  '*.value',
];

export interface LoggerSettings {
  level?: string;
  /** Human-readable lines instead of JSON; defaults to whether stderr is a TTY. */
  pretty?: boolean;
  destination?: NodeJS.WritableStream;
}

/**
 * Creates the root logger. Logs go to stderr so that stdout carries only the
 * command's result (a table or JSON). Nothing is configured at import time.
 */
export function createLogger(settings: LoggerSettings = {}): Logger {
  const options: LoggerOptions = {
    level: settings.level ?? process.env.LOG_LEVEL ?? 'info',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
    base: { component: 'runner' },
  };
  const dest = settings.destination ?? process.stderr;
  const usePretty = settings.pretty ?? Boolean((dest as { isTTY?: boolean }).isTTY);
  if (usePretty) {
    return pino(options, pretty({ destination: dest, colorize: true, sync: true, ignore: 'pid,hostname,component' }));
  }
  return pino(options, dest);
}

/** A logger that drops everything, for tests and library callers that want silence. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
