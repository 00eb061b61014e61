/**
 * What verifying a webhook costs (webhooks/): the same POST through keygate to one upstream,
 * on a plain public route (streamed) and on a Stripe-signed webhook route (buffered,
 * HMAC-SHA-256, then forwarded), with and without the replay claim on the embedded store
 * (one SQLite write, synchronous=FULL). Sequential requests on one keep-alive connection,
 * routes in alternation; latency percentiles per body size. Figures vary with machine load:
 * compare the columns of one run.
 *
 *   node load/webhook-verify.ts [requests per cell, default 300]
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import Stripe from 'stripe';
import { Pool } from 'undici';
import { CLI_CALLER } from '../src/keys/service.ts';
import { startTestKeygate } from '../test/helpers/keygate.ts';
import { startUpstream } from '../test/helpers/upstream.ts';

const N = Number(process.argv[2] ?? 300);
const SECRET = `whsec_${randomBytes(24).toString('hex')}`;
const up = await startUpstream((req, res) => {
  req.resume();
  req.on('end', () => res.end('ok'));
});
const webhook = { scheme: 'stripe' as const, secrets: ['bench'] };
const t = await startTestKeygate(
  {
    log: { level: 'warn', access: false },
    routes: [
      { name: 'plain', pathPrefix: '/plain', upstream: up.url, auth: { required: false }, maxBodyBytes: 16 * 1024 * 1024 },
      { name: 'signed', pathPrefix: '/signed', upstream: up.url, auth: { required: false }, webhook: { ...webhook, replay: false }, maxBodyBytes: 16 * 1024 * 1024 },
      { name: 'claimed', pathPrefix: '/claimed', upstream: up.url, auth: { required: false }, webhook, maxBodyBytes: 16 * 1024 * 1024 },
    ],
  },
  { KEYGATE_MASTER_KEY: randomBytes(32).toString('base64') },
);
await t.keygate.secrets.add(CLI_CALLER, { id: 'bench', name: 'bench', value: SECRET });
const pool = new Pool(t.url, { connections: 1 });

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
const rows: string[] = ['| body | route | p50 ms | p99 ms |', '| --- | --- | --- | --- |'];
for (const size of [2 * 1024, 64 * 1024, 1024 * 1024, 8 * 1024 * 1024]) {
  const n = size >= 1024 * 1024 ? Math.max(20, Math.round(N / 10)) : N;
  const times: Record<string, number[]> = { plain: [], signed: [], claimed: [] };
  for (let i = 0; i < n + 5; i++) {
    // A distinct body each time, so that every claimed delivery is new.
    const body = JSON.stringify({ id: `evt_${i}`, pad: 'x'.repeat(Math.max(0, size - 40)) });
    const header = Stripe.webhooks.generateTestHeaderString({ payload: body, secret: SECRET });
    for (const route of ['plain', 'signed', 'claimed']) {
      const start = performance.now();
      const res = await pool.request({ path: `/${route}`, method: 'POST', body, headers: { 'content-type': 'application/json', 'stripe-signature': header } });
      await res.body.dump();
      if (res.statusCode !== 200) throw new Error(`${route}: ${res.statusCode}`);
      if (i >= 5) times[route]!.push(performance.now() - start);
    }
  }
  for (const route of ['plain', 'signed', 'claimed']) {
    const sorted = times[route]!.sort((a, b) => a - b);
    const label = route === 'plain' ? 'plain (streamed)' : route === 'signed' ? 'webhook, replay: false' : 'webhook, replay: true';
    rows.push(`| ${size >= 1024 * 1024 ? `${size / 1024 / 1024} MB` : `${size / 1024} KB`} | ${label} | ${pct(sorted, 50).toFixed(2)} | ${pct(sorted, 99).toFixed(2)} |`);
  }
}
console.log(rows.join('\n'));
await pool.close();
await t.stop();
await up.close();
