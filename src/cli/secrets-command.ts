/**
 * `keygate secrets add|list|rename|remove|usages|rewrap`: upstream secrets, as a platform
 * admin (whoever runs the CLI holds the store). The value of `add` is read from stdin — piped,
 * or typed with the echo off on a terminal — never from argv, where it would end up in shell
 * history and the process list. No command prints a value, or any part of one. `usages` and
 * `remove` read where the config file given names a secret (secrets/usages.ts): `remove`
 * refuses (exit 1) while it does, unless `--force`.
 */
import type { Keyring } from '../secrets/crypto.ts';
import { loadKeyring, MASTER_KEY_ENV, masterKeyError, PREVIOUS_MASTER_KEY_ENV } from '../secrets/crypto.ts';
import { SECRET_ID_PATTERN, SECRET_ID_RULE, toPublicSecret, type SecretMeta } from '../secrets/secret-store.ts';
import { MAX_SECRET_BYTES, SecretInUseError, SecretService } from '../secrets/service.ts';
import { describeUsage, describeUsages, toPublicUsage, type SecretUsage } from '../secrets/usages.ts';
import { resolveConfigPath } from '../config/load.ts';
import { CLI_CALLER, orNullIfNotFound } from '../keys/service.ts';
import { isKeygateError } from '../http/problem.ts';
import { EventSink } from '../events/event-sink.ts';
import { openStore } from '../store/open.ts';
import type { Config } from '../config/schema.ts';
import { parseFlags, requireFlag, runSubcommand, usageError } from './args.ts';
import { configFrom, type Io } from './context.ts';

const USAGE = `usage:
  keygate secrets add --id ID --name N [--json]       (the value is read from stdin)
  keygate secrets list [--json]
  keygate secrets rename <id> [--name N] [--id NEW_ID]
  keygate secrets remove <id> [--force] [--json]      (refused while the config names it, unless --force)
  keygate secrets usages <id> [--json]                 (where the config names it)
  keygate secrets rewrap                               (after setting a new ${MASTER_KEY_ENV})

Examples:
  printf '%s' "$OPENAI_TOKEN" | npx keygate secrets add --id openai --name "OpenAI production"
  npx keygate secrets add --id openai --name "OpenAI production" < token.txt`;

const common = { config: { type: 'string' }, json: { type: 'boolean' } } as const;

/** Read from stdin before giving up: far more than a value may be, so "too large" can be said. */
const STDIN_LIMIT = 64 * 1024;

function date(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

function table(secrets: SecretMeta[], keyring: Keyring | null): string {
  const rows = [['ID', 'NAME', 'CREATED', 'LAST USED', 'KEY VERSION']];
  for (const s of secrets) {
    const note = keyring === null ? '' : s.keyVersion === keyring.current.version ? '' : s.keyVersion === keyring.previous?.version ? ' (previous: run rewrap)' : ' (not loaded)';
    rows.push([s.id, s.name, date(s.createdAt), date(s.lastUsedAt), s.keyVersion + note]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

async function withSecrets<T>(config: Config, io: Io, run: (service: SecretService) => Promise<T>): Promise<T> {
  const keyring = loadKeyring(io.env);
  const store = await openStore(config);
  try {
    // The configuration "in force" for the CLI is the file it was given.
    return await run(new SecretService(store, keyring, new EventSink(store, null, null), config.tenants.system, Date.now, () => config));
  } finally {
    await store.close();
  }
}

/** Service errors as the CLI reports them: bad input and a missing master key are exit 2. */
async function rules<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isKeygateError(error, 'validation_failed')) throw usageError(error.field === 'value' ? `the value on stdin ${error.message.slice('value: '.length)}` : `--${error.message}`);
    if (isKeygateError(error, 'conflict') && error.field === MASTER_KEY_ENV) throw masterKeyError(MASTER_KEY_ENV, `${error.message} (generate one with \`openssl rand -base64 32\`)`);
    throw error;
  }
}

function refuseValueFlag(args: string[]): void {
  if (args.some((a) => a === '--value' || a.startsWith('--value='))) {
    throw usageError('--value is not accepted: a value on the command line ends up in shell history and the process list; pipe it on stdin');
  }
}

/** Hidden input on a terminal: raw mode, no echo, until Enter. */
function readHidden(stdin: NodeJS.ReadStream, io: Io): Promise<string> {
  io.err('Secret value (input hidden), then Enter:');
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (error: Error | null) => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string) => {
      for (const ch of String(chunk)) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') return finish(null);
        if (ch === '\u0003') return finish(usageError('cancelled'));
        if (ch === '\u007f' || ch === '\b') value = value.slice(0, -1);
        else value += ch;
      }
    };
    stdin.setRawMode(true);
    stdin.setEncoding('utf8');
    stdin.on('data', onData);
    stdin.resume();
  });
}

async function readValue(io: Io): Promise<string> {
  const stdin = io.stdin as NodeJS.ReadStream;
  if (stdin.isTTY && typeof stdin.setRawMode === 'function') return readHidden(stdin, io);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += buffer.length;
    if (size > STDIN_LIMIT) throw usageError(`the value on stdin is larger than ${MAX_SECRET_BYTES} bytes`);
    chunks.push(buffer);
  }
  // `echo "$TOKEN" |` adds a line break that is not part of the secret.
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

async function add(args: string[], io: Io): Promise<number> {
  refuseValueFlag(args);
  // Positionals are collected rather than refused by the parser, whose message would quote
  // them: a value typed as an argument by mistake must not be echoed back.
  const { values, positionals } = parseFlags(args, { ...common, id: { type: 'string' }, name: { type: 'string' } }, Number.MAX_SAFE_INTEGER);
  if (positionals.length) throw usageError('secrets add takes only --id and --name; the value is read from stdin, never from the command line');
  const id = requireFlag(values, 'id');
  const name = requireFlag(values, 'name');
  const config = configFrom(values.config, io);
  if (loadKeyring(io.env) === null) throw masterKeyError(MASTER_KEY_ENV, `${MASTER_KEY_ENV}: is not set; secrets cannot be stored without it (generate one with \`openssl rand -base64 32\`)`);
  const value = await readValue(io);
  if (value === '') throw usageError("no value on stdin: pipe the secret in, e.g. printf '%s' \"$TOKEN\" | keygate secrets add --id ID --name N");
  const meta = await withSecrets(config, io, (service) => rules(() => service.add(CLI_CALLER, { id, name, value })));
  if (values.json) io.out(JSON.stringify(toPublicSecret(meta)));
  else io.out(`Stored secret "${meta.id}" (${meta.name}), encrypted under master key version ${meta.keyVersion}. Its value cannot be shown again.`);
  return 0;
}

async function list(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, common);
  const config = configFrom(values.config, io);
  const keyring = loadKeyring(io.env);
  const secrets = await withSecrets(config, io, (service) => service.list(CLI_CALLER));
  if (values.json) io.out(JSON.stringify(secrets.map(toPublicSecret)));
  else io.out(secrets.length ? table(secrets, keyring) : 'No secrets.');
  return 0;
}

async function rename(args: string[], io: Io): Promise<number> {
  refuseValueFlag(args);
  const { values, positionals } = parseFlags(args, { ...common, name: { type: 'string' }, id: { type: 'string' } }, 1);
  const id = positionals[0];
  if (id === undefined) throw usageError('secrets rename needs the <id> of the secret');
  if (values.name === undefined && values.id === undefined) throw usageError('give --name N, --id NEW_ID, or both (the value cannot change)');
  const config = configFrom(values.config, io);
  const meta = await withSecrets(config, io, (service) =>
    rules(() => orNullIfNotFound(service.rename(CLI_CALLER, id, { name: values.name, id: values.id }))),
  );
  if (meta === null) {
    io.err(`keygate: no secret with id "${id}"`);
    return 1;
  }
  if (values.json) io.out(JSON.stringify(toPublicSecret(meta)));
  else if (meta.id !== id) io.out(`Moved secret "${id}" to "${meta.id}" (${meta.name}). Routes that name "${id}" no longer get it: point them at "${meta.id}".`);
  else io.out(`Renamed secret "${id}" to "${meta.name}".`);
  return 0;
}

/** The <id> of remove / usages: exit 2 when it cannot be a secret id (not quoted: it may be a value typed by mistake). */
function secretIdArgument(id: string | undefined, command: string): string {
  if (id === undefined) throw usageError(`secrets ${command} needs the <id> of the secret`);
  if (!SECRET_ID_PATTERN.test(id)) throw usageError(`<id>: ${SECRET_ID_RULE}`);
  return id;
}

const indented = (usages: readonly SecretUsage[]) => usages.map((u) => `  ${describeUsage(u)}`).join('\n');

async function remove(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, { ...common, force: { type: 'boolean' } }, 1);
  const id = secretIdArgument(positionals[0], 'remove');
  const config = configFrom(values.config, io);
  const file = resolveConfigPath(values.config, io.env);
  let broke: SecretUsage[] = [];
  let meta: SecretMeta | null;
  try {
    meta = await withSecrets(config, io, (service) => {
      broke = values.force ? service.usagesOf(id) : [];
      return orNullIfNotFound(service.remove(CLI_CALLER, id, { force: values.force === true }));
    });
  } catch (error) {
    if (!(error instanceof SecretInUseError)) throw error;
    io.err(`keygate: secret "${id}" was not removed: ${file} names it\n${indented(error.usages)}\nPoint ${error.usages.length === 1 ? 'it' : 'them'} at another secret and reload the servers first, or remove it anyway with --force.`);
    return 1;
  }
  if (meta === null) {
    io.err(`keygate: no secret with id "${id}"`);
    return 1;
  }
  if (values.json) io.out(JSON.stringify({ ...toPublicSecret(meta), removed: true, usages: broke.map(toPublicUsage) }));
  else if (broke.length) io.out(`Removed secret "${id}" (${meta.name}), which ${file} still names: ${describeUsages(broke)}. These no longer get it (a route that injects it answers 502).`);
  else io.out(`Removed secret "${id}" (${meta.name}). ${file} does not name it.`);
  return 0;
}

async function usages(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(args, common, 1);
  const id = secretIdArgument(positionals[0], 'usages');
  const config = configFrom(values.config, io);
  const file = resolveConfigPath(values.config, io.env);
  const report = await withSecrets(config, io, (service) => orNullIfNotFound(service.usages(CLI_CALLER, id)));
  if (report === null) {
    io.err(`keygate: no secret with id "${id}", and ${file} names none`);
    return 1;
  }
  if (values.json) io.out(JSON.stringify({ id: report.id, name: report.name, stored: report.stored, usages: report.usages.map(toPublicUsage) }));
  else if (!report.stored) io.out(`Secret "${id}" is not stored, but ${file} names it (these answer 502 until it is added):\n${indented(report.usages)}`);
  else if (report.usages.length === 0) io.out(`Secret "${id}" (${report.name}) is not used: ${file} does not name it.`);
  else io.out(`Secret "${id}" (${report.name}) is used by ${file}:\n${indented(report.usages)}`);
  return 0;
}

async function rewrap(args: string[], io: Io): Promise<number> {
  const { values } = parseFlags(args, common);
  const config = configFrom(values.config, io);
  const result = await withSecrets(config, io, (service) => rules(() => service.rewrap(CLI_CALLER)));
  if (values.json) io.out(JSON.stringify(result));
  else {
    io.out(`Re-encrypted ${result.rewrapped.length} secret${result.rewrapped.length === 1 ? '' : 's'} under master key version ${result.version} (${result.alreadyCurrent} already were).`);
    if (result.failed.length === 0 && io.env[PREVIOUS_MASTER_KEY_ENV]) io.out(`Every secret is now under ${result.version}: ${PREVIOUS_MASTER_KEY_ENV} can be dropped from every instance's environment.`);
  }
  for (const f of result.failed) io.err(`keygate: secret "${f.id}" was not re-encrypted: ${f.reason}`);
  return result.failed.length ? 1 : 0;
}

export function secretsCommand(args: string[], io: Io): Promise<number> {
  return runSubcommand('secrets', USAGE, { add, list, rename, remove, usages, rewrap }, args, io);
}
