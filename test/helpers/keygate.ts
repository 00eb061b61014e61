/**
 * Starts a real keygate (in this process) on free ports with a temporary data directory,
 * for integration tests. Everything it starts is closed by `stop()`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseConfig } from '../../src/config/load.ts';
import type { Config, RawConfig } from '../../src/config/schema.ts';
import { CLI_CALLER, KeyService, orNullIfNotFound, type CreateKeyInput, type CreatedKey } from '../../src/keys/service.ts';
import type { KeyRecord } from '../../src/keys/record.ts';
import { createLoggers } from '../../src/observability/logger.ts';
import { startKeygate, type Keygate } from '../../src/server.ts';
import { TEST_PEPPER } from './pepper.ts';


export interface TestKeygate {
  keygate: Keygate;
  config: Config;
  /** The key service as the CLI uses it (a platform admin). */
  keys: TestKeys;
  service: KeyService;
  url: string;
  adminUrl: string;
  /** Every log line written so far, as text (to assert that no secret is in it). */
  logs(): string;
  stop(): Promise<void>;
}

export interface TestKeys {
  create(input: CreateKeyInput): Promise<CreatedKey>;
  get(id: string): Promise<KeyRecord | null>;
  list(query?: { tenant?: string; includeRevoked?: boolean }): Promise<KeyRecord[]>;
  revoke(id: string): Promise<KeyRecord | null>;
  revokeTenant(tenant: string): Promise<string[]>;
}

export function cliKeys(service: KeyService): TestKeys {
  const orNull = orNullIfNotFound<KeyRecord>;
  return {
    create: (input) => service.create(CLI_CALLER, input),
    get: (id) => orNull(service.get(CLI_CALLER, id)),
    list: (query = {}) => service.list(CLI_CALLER, query),
    revoke: (id) => orNull(service.revoke(CLI_CALLER, id).then((r) => r.record)),
    revokeTenant: (tenant) => service.revokeTenant(CLI_CALLER, tenant),
  };
}

export function captureStream(): { stream: Writable; text(): string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, text: () => chunks.join('') };
}

/** A config for tests: loopback listeners on free ports, the embedded store in `dir` (unless `raw.store` says otherwise). */
export function testConfig(raw: RawConfig, dir: string): Config {
  return parseConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      ...raw,
      store: { path: join(dir, 'keygate.db'), pollMs: 50, ...raw.store },
      log: { level: 'info', ...raw.log },
    },
    'test',
  );
}

export async function startTestKeygate(raw: RawConfig, env: NodeJS.ProcessEnv = {}): Promise<TestKeygate> {
  const dir = mkdtempSync(join(tmpdir(), 'keygate-test-'));
  const config = testConfig(raw, dir);
  const fullEnv = { KEYGATE_PEPPER: TEST_PEPPER, ...env };
  const capture = captureStream();
  const { logger, access } = createLoggers({ level: config.log.level, destination: capture.stream });
  const keygate = await startKeygate({ config, env: fullEnv, logger, accessLogger: access });
  const service = keygate.service;
  return {
    keygate,
    config,
    keys: cliKeys(service),
    service,
    url: `http://127.0.0.1:${keygate.proxyPort}`,
    adminUrl: `http://127.0.0.1:${keygate.adminPort}`,
    logs: capture.text,
    async stop() {
      await keygate.close(500);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
