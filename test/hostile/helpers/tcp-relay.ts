/**
 * A TCP relay between keygate and Redis that can be told to misbehave, for the network
 * faults a real redis-server cannot be made to show by itself:
 *
 *  - `stall(match?)`: bytes stop moving in both directions (a partition: nothing is lost,
 *    as with TCP retransmission, it is only held); new connections are accepted but not
 *    connected through. `heal()` lets everything flow again;
 *  - `cut()`: every relayed connection is reset (a failover, a dead NAT entry).
 *
 * `match` limits a stall to connections whose first bytes from the client contain the
 * string — ioredis names its connections (`CLIENT SETNAME keygate:revocations`), so one
 * instance's subscriber can be partitioned while its command connection keeps working.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { listenLocal } from '../../helpers/upstream.ts';

interface Pair {
  client: Socket;
  upstream: Socket | null;
  /** What the client sent first (up to 1 KB), to match on. */
  hello: string;
  stalled: boolean;
}

export interface TcpRelay {
  port: number;
  url: string;
  stall(match?: string): void;
  heal(): void;
  cut(): void;
  /** Relayed connections open now. */
  readonly open: number;
  close(): Promise<void>;
}

export async function startTcpRelay(targetPort: number): Promise<TcpRelay> {
  const pairs = new Set<Pair>();
  let stallAll = false;
  let stallMatch: string | null = null;
  const pending: Pair[] = [];

  const shouldStall = (pair: Pair) => stallAll || (stallMatch !== null && pair.hello.includes(stallMatch));
  const apply = (pair: Pair) => {
    const stall = shouldStall(pair);
    if (stall === pair.stalled) return;
    pair.stalled = stall;
    if (stall) {
      pair.client.pause();
      pair.upstream?.pause();
    } else {
      pair.client.resume();
      pair.upstream?.resume();
    }
  };
  const link = (pair: Pair) => {
    const upstream = connect(targetPort, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => pair.client.destroy());
    upstream.on('close', () => pair.client.destroy());
    pair.client.on('close', () => upstream.destroy());
    upstream.on('data', (data: Buffer) => pair.client.write(data));
    pair.client.on('data', (data: Buffer) => {
      if (pair.hello.length < 1024) {
        pair.hello += data.toString('latin1');
        apply(pair);
      }
      upstream.write(data);
    });
    if (pair.stalled) upstream.pause();
    pair.client.resume();
    if (pair.stalled) pair.client.pause();
  };

  const server: Server = createServer((client) => {
    const pair: Pair = { client, upstream: null, hello: '', stalled: false };
    pairs.add(pair);
    client.pause();
    client.on('error', () => {});
    client.on('close', () => pairs.delete(pair));
    if (stallAll) {
      pair.stalled = true;
      pending.push(pair);
    } else link(pair);
  });
  const port = await listenLocal(server);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get open() {
      return pairs.size;
    },
    stall(match) {
      if (match === undefined) stallAll = true;
      else stallMatch = match;
      for (const pair of pairs) apply(pair);
    },
    heal() {
      stallAll = false;
      stallMatch = null;
      for (const pair of pairs) apply(pair);
      for (const pair of pending.splice(0)) if (!pair.client.destroyed) link(pair);
    },
    cut() {
      for (const pair of pairs) {
        pair.client.resetAndDestroy();
        pair.upstream?.resetAndDestroy();
      }
    },
    async close() {
      for (const pair of pairs) {
        pair.client.destroy();
        pair.upstream?.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
