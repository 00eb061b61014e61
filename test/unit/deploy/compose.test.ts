/**
 * deploy/docker-compose.yml, validated by `docker-compose config` (Docker itself cannot run
 * here; Debian's docker-compose package, installed by .ci/run, only validates — a missing
 * binary fails this test, it does not skip): two keygate instances on one Redis behind
 * HAProxy, the pepper and master key required from the environment, healthchecks on
 * /readyz at the admin port of the config they mount, a stop grace period that covers
 * keygate's drain, the config they mount valid for keygate (src/config/load.ts and the
 * environment check `serve` runs), and HAProxy's checks and servers agreeing with both.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadConfig } from '../../../src/config/load.ts';
import type { Config } from '../../../src/config/schema.ts';
import { checkEnvironment } from '../../../src/cli/environment.ts';
import { createLoggers } from '../../../src/observability/logger.ts';
import { COMPOSE_FILE, DEPLOY, durationMs, runTool, SHUTDOWN_TAIL_MS } from '../../helpers/deploy.ts';
import { captureStream } from '../../helpers/keygate.ts';
import { REPO_ROOT } from '../../helpers/process.ts';

const SECRETS = { KEYGATE_PEPPER: 'compose-test-pepper-0123456789', KEYGATE_MASTER_KEY: Buffer.alloc(32, 7).toString('base64') };

/** The environment docker-compose runs with: PATH and the secrets, nothing else of ours. */
function composeEnv(extra: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...extra };
}

interface Service {
  image?: string;
  build?: { context: string };
  environment?: Record<string, string>;
  volumes?: string[];
  healthcheck?: { test: string[]; interval?: string; timeout?: string; retries?: number };
  stop_grace_period?: string;
  depends_on?: Record<string, { condition: string }>;
  ports?: { published: number | string; target: number }[];
  command?: string[];
}

let services: Record<string, Service>;
let keygates: [string, Service][];
let config: Config;
const silent = createLoggers({ level: 'silent', destination: captureStream().stream });

beforeAll(() => {
  const result = runTool('docker-compose', ['-f', COMPOSE_FILE, 'config'], { env: composeEnv(SECRETS) });
  expect(result.stderr).not.toMatch(/error/i);
  expect(result.status).toBe(0);
  services = (parseYaml(result.stdout) as { services: Record<string, Service> }).services;
  keygates = Object.entries(services).filter(([, s]) => s.build?.context === REPO_ROOT.replace(/\/$/, ''));
  const [, first] = keygates[0]!;
  config = loadConfig(mounted(first, first.environment!.KEYGATE_CONFIG!), first.environment);
});

afterAll(() => silent.flush());

/** Host path of the file a service mounts at `target`. */
function mounted(service: Service, target: string): string {
  const volume = (service.volumes ?? []).find((v) => v.split(':')[1] === target);
  expect(volume, `a volume mounted at ${target}`).toBeDefined();
  return volume!.split(':')[0]!;
}

describe('docker-compose config', () => {
  it('refuses to run without the pepper or the master key, naming the variable', () => {
    for (const missing of ['KEYGATE_PEPPER', 'KEYGATE_MASTER_KEY'] as const) {
      const env = { ...SECRETS } as Record<string, string>;
      delete env[missing];
      const result = runTool('docker-compose', ['-f', COMPOSE_FILE, 'config'], { env: composeEnv(env) });
      expect(result.status, missing).not.toBe(0);
      expect(result.stderr).toContain(`set ${missing}`);
    }
  });

  it('has two keygate instances built from this repository, Redis and HAProxy', () => {
    expect(keygates.map(([name]) => name).sort()).toEqual(['keygate-1', 'keygate-2']);
    expect(services.redis?.image).toMatch(/^redis:7/);
    expect(services.haproxy?.image).toMatch(/^haproxy:/);
    expect(services.haproxy?.ports).toEqual([{ published: 8080, target: 8080 }]);
    // Only the balancer is published; the instances' proxy and admin ports stay inside.
    for (const [, s] of keygates) expect(s.ports).toBeUndefined();
    // The key index is Redis: kept on a volume, append-only.
    expect(services.redis?.command).toContain('--appendonly');
    expect(services.redis?.volumes?.some((v) => v.endsWith(':/data:rw') || v.endsWith(':/data'))).toBe(true);
  });

  it('gives every instance the same pepper and master key, from the environment', () => {
    for (const [name, s] of keygates) {
      expect(s.environment?.KEYGATE_PEPPER, name).toBe(SECRETS.KEYGATE_PEPPER);
      expect(s.environment?.KEYGATE_MASTER_KEY, name).toBe(SECRETS.KEYGATE_MASTER_KEY);
    }
    // Not written into the file itself.
    const text = readFileSync(COMPOSE_FILE, 'utf8');
    expect(text).toContain('${KEYGATE_PEPPER:?');
    expect(text).toContain('${KEYGATE_MASTER_KEY:?');
  });

  it('mounts a config that keygate accepts, with the environment the container has', async () => {
    const [, first] = keygates[0]!;
    const target = first.environment!.KEYGATE_CONFIG!;
    const file = mounted(first, target);
    for (const [, s] of keygates) expect(mounted(s, target)).toBe(file);
    expect(file.startsWith(DEPLOY)).toBe(true);
    // loadConfig (src/config/load.ts) read it in beforeAll, with the container's environment.
    expect(config.store.kind).toBe('redis');
    expect(new URL(config.store.kind === 'redis' ? (config.store.redis.url ?? '') : '').hostname).toBe('redis');
    expect(services[new URL((config.store as { redis: { url: string } }).redis.url).hostname]).toBeDefined();
    // What `serve` checks in the environment before it starts (pepper length, master key).
    await checkEnvironment(config, first.environment!, silent.logger).close();
    expect(config.listen.host).toBe('0.0.0.0');
    expect(config.admin.host).toBe('0.0.0.0');
    // A Prometheus on the compose network scrapes http://keygate-1:8081/metrics: the admin
    // listener must answer that Host (else 421), as well as the loopback names.
    for (const [name] of keygates) expect(config.admin.hosts, name).toContain(name);
    for (const local of ['localhost', '127.0.0.1']) expect(config.admin.hosts).toContain(local);
  });

  it('health-checks each instance on /readyz at its admin port, and waits for a healthy Redis', () => {
    for (const [name, s] of keygates) {
      const test = s.healthcheck!.test;
      expect(test[0], name).toBe('CMD');
      const script = test.at(-1)!;
      expect(script).toContain(`http://127.0.0.1:${config.admin.port}/readyz`);
      expect(s.depends_on?.redis?.condition).toBe('service_healthy');
    }
    expect(services.redis?.healthcheck?.test).toEqual(['CMD', 'redis-cli', 'ping']);
  });

  it('lets docker stop wait for the drain: stop_grace_period ≥ drainDelayMs + graceMs + the final flushes', () => {
    const needed = config.shutdown.drainDelayMs + config.shutdown.graceMs + SHUTDOWN_TAIL_MS;
    for (const [name, s] of keygates) expect(durationMs(s.stop_grace_period ?? '10s'), name).toBeGreaterThanOrEqual(needed);
  });
});

describe('haproxy.cfg', () => {
  let cfg: string;
  beforeAll(() => {
    const file = mounted(services.haproxy!, '/usr/local/etc/haproxy/haproxy.cfg');
    expect(file).toBe(join(DEPLOY, 'compose', 'haproxy.cfg'));
    cfg = readFileSync(file, 'utf8');
  });

  it('sends to every keygate instance on its proxy port, checked on /readyz at its admin port', () => {
    const servers = [...cfg.matchAll(/^\s*server\s+(\S+)\s+(\S+):(\d+)\s+(.*)$/gm)];
    expect(servers.map((m) => m[2]).sort()).toEqual(keygates.map(([name]) => name).sort());
    for (const m of servers) {
      expect(Number(m[3])).toBe(config.listen.port);
      expect(m[4]).toMatch(new RegExp(`\\bcheck port ${config.admin.port}\\b`));
    }
    expect(cfg).toMatch(/^\s*http-check send meth GET uri \/readyz\b/m);
    expect(cfg).toMatch(/^\s*http-check expect status 200$/m);
    expect(cfg).toMatch(/^\s*option forwardfor$/m);
    // option forwardfor is only sound with forwarded.trustClient: true, and every connection
    // then comes from HAProxy.
    expect(config.forwarded.trustClient).toBe(true);
    expect(config.limits.connectionsPerAddress).toBe(0);
  });

  it('takes a draining instance out before it stops accepting: inter × fall < drainDelayMs', () => {
    for (const m of cfg.matchAll(/^\s*server\s+\S+\s+\S+\s+.*\binter (\S+) fall (\d+)/gm)) {
      expect(durationMs(m[1]!) * Number(m[2])).toBeLessThan(config.shutdown.drainDelayMs);
    }
    expect([...cfg.matchAll(/\binter \S+ fall \d+/g)].length).toBe(keygates.length);
  });

  it("closes idle connections before keygate does (keygate's keep-alive is 65 s)", () => {
    const m = /^\s*timeout http-keep-alive (\S+)$/m.exec(cfg);
    expect(m).not.toBeNull();
    expect(durationMs(m![1]!)).toBeLessThan(65_000);
  });
});
