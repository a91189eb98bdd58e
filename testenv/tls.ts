/** A throwaway self-signed certificate for 127.0.0.1, made with openssl(1), for TLS tests. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const TLS_INSTALL_HINT = 'TLS tests need the openssl command: `apt-get install -y openssl`.';

export interface SelfSigned {
  /** PEM files in `dir`; the certificate is its own CA. */
  keyFile: string;
  certFile: string;
  key: Buffer;
  cert: Buffer;
}

export function selfSignedCert(dir: string, host = '127.0.0.1'): SelfSigned {
  const keyFile = join(dir, 'server.key');
  const certFile = join(dir, 'server.crt');
  const san = /^[\d.]+$/.test(host) ? `IP:${host}` : `DNS:${host}`;
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${host}`,
        '-addext', `subjectAltName=${san}`, '-keyout', keyFile, '-out', certFile],
      { stdio: 'pipe' },
    );
  } catch (err) {
    throw new Error(`${TLS_INSTALL_HINT} (${(err as Error).message.trim()})`, { cause: err });
  }
  return { keyFile, certFile, key: readFileSync(keyFile), cert: readFileSync(certFile) };
}
