/**
 * Loads configuration: YAML file, then environment overrides, then validation. Secrets
 * (pepper, master key) come only from the environment and never enter the config object
 * that could be printed.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.ts';
import { KeygateError } from '../http/problem.ts';

/**
 * The configuration is invalid: validation_failed (exit 2 in the CLI). A class of its own for
 * `problems`, one line per field at fault, which a reload reports on its own.
 */
export class ConfigError extends KeygateError {
  override name = 'ConfigError';
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super('validation_failed', `invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.problems = problems;
  }
}

export const DEFAULT_CONFIG_PATH = 'config/keygate.yaml';

export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  return flag ?? env.KEYGATE_CONFIG ?? DEFAULT_CONFIG_PATH;
}

/** `routes[1].upstream` from zod's `['routes', 1, 'upstream']`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : out ? `.${String(part)}` : String(part);
  return out || '(top level)';
}

export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return `${formatPath(issue.path)}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
    }
    if (issue.code === 'invalid_type' && issue.input === undefined) return `${formatPath(issue.path)}: is required`;
    return `${formatPath(issue.path)}: ${issue.message}`;
  });
}

function intFromEnv(name: string, value: string): number {
  if (!/^\d+$/.test(value)) throw new ConfigError('the environment', [`${name}: must be a port number, got "${value}"`]);
  return Number(value);
}

type Json = Record<string, unknown>;
const obj = (parent: Json, key: string): Json => {
  const v = parent[key];
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Json;
  return (parent[key] = {});
};

/** Environment variables named in CONTRACT.md win over the file. */
export function applyEnv(raw: Json, env: NodeJS.ProcessEnv): Json {
  if (env.KEYGATE_REDIS_URL) {
    const store = obj(raw, 'store');
    store.kind = 'redis';
    const redis = obj(store, 'redis');
    delete redis.sentinels;
    delete redis.cluster;
    redis.url = env.KEYGATE_REDIS_URL;
  }
  if (env.KEYGATE_PORT) obj(raw, 'listen').port = intFromEnv('KEYGATE_PORT', env.KEYGATE_PORT);
  if (env.KEYGATE_ADMIN_PORT) obj(raw, 'admin').port = intFromEnv('KEYGATE_ADMIN_PORT', env.KEYGATE_ADMIN_PORT);
  if (env.KEYGATE_LOG_LEVEL) obj(raw, 'log').level = env.KEYGATE_LOG_LEVEL;
  return raw;
}

export function parseConfig(raw: unknown, source: string, env: NodeJS.ProcessEnv = {}): Config {
  if (raw === null || raw === undefined) raw = {};
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new ConfigError(source, ['(top level): must be a YAML mapping']);
  const result = configSchema.safeParse(applyEnv(structuredClone(raw) as Json, env), { reportInput: true });
  if (!result.success) throw new ConfigError(source, formatIssues(result.error));
  return result.data;
}

export function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(path, [`cannot read the file: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (error) {
    if (error instanceof YAMLParseError) throw new ConfigError(path, [`YAML syntax: ${error.message.split('\n')[0]}`]);
    throw error;
  }
  return parseConfig(raw, path, env);
}
