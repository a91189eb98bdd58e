/**
 * A TCP proxy on loopback in front of a server, that tests can tell to fail:
 * cut every connection once N more bytes have gone upstream (client to
 * server), and optionally refuse new connections for a while after the cut,
 * or go down and up on demand. Used to make a storage location fail in the
 * middle of an upload.
 *
 * Invariants:
 * - Bytes are forwarded unchanged in both directions until a cut.
 * - A cut resets (RST) every open client and upstream socket at once; the
 *   byte that reaches the threshold is the last one forwarded.
 * - While down or refusing, a new connection is accepted and reset at once
 *   (the client sees ECONNRESET, as with a crashed server behind a balancer).
 */
import { once } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

export interface FaultProxy {
  port: number;
  /** `http://127.0.0.1:<port>` */
  url: string;
  /** Bytes forwarded upstream since the proxy started. */
  readonly bytesUpstream: number;
  /** Connections accepted so far (including refused ones). */
  readonly connections: number;
  /** Connections open right now. */
  readonly openConnections: number;
  /**
   * Arms a cut: once `bytes` more bytes have gone upstream, every open
   * connection is reset, then new ones are refused for `refuseMs` (0: none).
   * The returned promise resolves when the cut happened.
   */
  cutAfter(bytes: number, opts?: { refuseMs?: number }): Promise<void>;
  /** Resets every open connection and refuses new ones until `up()`. */
  down(): void;
  /** Accepts connections again (also ends a refusal window early). */
  up(): void;
  close(): Promise<void>;
}

export async function startFaultProxy(target: { host?: string; port: number }): Promise<FaultProxy> {
  const host = target.host ?? '127.0.0.1';
  const pairs = new Set<{ client: Socket; upstream: Socket }>();
  let bytesUpstream = 0;
  let connections = 0;
  let isDown = false;
  let refuseUntil = 0;
  let armed: { at: number; refuseMs: number; done: () => void } | undefined;

  const resetAll = (): void => {
    for (const { client, upstream } of pairs) {
      client.resetAndDestroy();
      upstream.resetAndDestroy();
    }
    pairs.clear();
  };

  const cut = (): void => {
    const a = armed!;
    armed = undefined;
    refuseUntil = a.refuseMs > 0 ? Date.now() + a.refuseMs : 0;
    resetAll();
    a.done();
  };

  const server = createServer((client) => {
    connections++;
    if (isDown || Date.now() < refuseUntil) {
      client.resetAndDestroy();
      return;
    }
    const upstream = createConnection({ host, port: target.port });
    const pair = { client, upstream };
    pairs.add(pair);
    const drop = (): void => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    client.on('data', (chunk: Buffer) => {
      let data = chunk;
      if (armed && bytesUpstream + data.length >= armed.at) data = data.subarray(0, armed.at - bytesUpstream);
      bytesUpstream += data.length;
      if (data.length > 0 && !upstream.write(data)) client.pause();
      if (armed && bytesUpstream >= armed.at) cut();
    });
    upstream.on('drain', () => client.resume());
    upstream.on('data', (chunk: Buffer) => {
      if (!client.write(chunk)) upstream.pause();
    });
    client.on('drain', () => upstream.resume());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;

  return {
    port,
    url: `http://127.0.0.1:${port}`,
    get bytesUpstream() {
      return bytesUpstream;
    },
    get connections() {
      return connections;
    },
    get openConnections() {
      return pairs.size;
    },
    cutAfter: (bytes, opts = {}) =>
      new Promise<void>((resolve) => {
        armed = { at: bytesUpstream + bytes, refuseMs: opts.refuseMs ?? 0, done: resolve };
      }),
    down: () => {
      isDown = true;
      resetAll();
    },
    up: () => {
      isDown = false;
      refuseUntil = 0;
    },
    close: async () => {
      resetAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
