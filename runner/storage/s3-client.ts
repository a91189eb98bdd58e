/**
 * Builds the S3 client for one location: endpoint, region, path style, TLS
 * (extra CA file, or no verification when asked) and credentials (static
 * keys from the config's secret sources, or the SDK's default chain: env,
 * shared config, web identity / IRSA, ECS and EC2 instance roles).
 */
import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import type { S3Location } from '../../api/index.js';
import { resolveOptionalSecret, resolveSecret } from '../config/secrets.js';
import { BackupError } from '../errors.js';

/** Request-level attempts inside the SDK: they replay one request (e.g. one buffered part of a multipart upload), which the retry wrapper cannot. */
const SDK_ATTEMPTS = 3;
const CONNECT_TIMEOUT_MS = 10_000;
/** A socket idle this long (no byte either way) is dropped, so a dead server fails a call instead of hanging it. */
const SOCKET_IDLE_MS = 120_000;

export interface S3ClientDeps {
  /** Config path of the location's s3 block, for messages, e.g. `locations[backup-s3].s3`. */
  field: string;
  env?: NodeJS.ProcessEnv;
}

async function readCa(path: string, field: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new BackupError('CONFIG_INVALID', `${field}.caFile: cannot read ${path} (${code})`, { cause: err, details: { field: `${field}.caFile` } });
  }
}

export interface ResolvedS3Settings {
  /** Static keys; the SDK's default credential chain when undefined. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** PEM CA certificates trusted in addition to Node's roots. */
  extraCa?: string;
}

/** The client configuration for one location, once its secrets and files are read. */
export function s3ClientConfig(cfg: S3Location, resolved: ResolvedS3Settings = {}): S3ClientConfig {
  const ca = resolved.extraCa === undefined ? undefined : [...rootCertificates, resolved.extraCa];
  return {
    region: cfg.region,
    endpoint: cfg.endpoint,
    forcePathStyle: cfg.forcePathStyle,
    // Without these, streamed bodies are sent with aws-chunked framing, which
    // S3-compatible servers (s3rver, older MinIO/Ceph) store verbatim.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: SDK_ATTEMPTS,
    requestHandler: {
      connectionTimeout: CONNECT_TIMEOUT_MS,
      socketTimeout: SOCKET_IDLE_MS,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: 64 }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: 64, ca, rejectUnauthorized: !cfg.insecureSkipTLSVerify }),
    },
    // Absent (not undefined-valued) so that the SDK falls back to its default chain.
    ...(resolved.credentials ? { credentials: resolved.credentials } : {}),
  };
}

/** Resolves the location's secrets and CA file, then builds its client. */
export async function createS3Client(cfg: S3Location, deps: S3ClientDeps): Promise<S3Client> {
  const resolved: ResolvedS3Settings = {};
  if (cfg.caFile !== undefined) resolved.extraCa = await readCa(cfg.caFile, deps.field);
  if (cfg.accessKeyId !== undefined && cfg.secretAccessKey !== undefined) {
    resolved.credentials = {
      accessKeyId: await resolveSecret(cfg.accessKeyId, `${deps.field}.accessKeyId`, deps.env),
      secretAccessKey: await resolveSecret(cfg.secretAccessKey, `${deps.field}.secretAccessKey`, deps.env),
      sessionToken: await resolveOptionalSecret(cfg.sessionToken, `${deps.field}.sessionToken`, deps.env),
    };
  }
  return new S3Client(s3ClientConfig(cfg, resolved));
}
