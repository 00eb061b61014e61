/**
 * The proxies of the forward-auth e2e tests, run for real: Debian's nginx and Caddy binaries
 * as child processes on free loopback ports, configured with the blocks docs/forward-auth.md
 * shows (read from the doc, so the doc cannot drift from what is tested). A binary that is
 * absent fails the test (`.ci/run` installs both), it never skips.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { recordChild } from './child-reaper.ts';
import { REPO_ROOT } from './process.ts';

const DOC = join(REPO_ROOT, 'docs', 'forward-auth.md');

/** The fenced block that follows `<!-- e2e: <name> … -->` in docs/forward-auth.md. */
export function docBlock(name: string): string {
  const text = readFileSync(DOC, 'utf8');
  const marker = text.indexOf(`<!-- e2e: ${name}`);
  if (marker === -1) throw new Error(`docs/forward-auth.md has no "<!-- e2e: ${name}" block`);
  const open = text.indexOf('```', marker);
  const start = text.indexOf('\n', open) + 1;
  const end = text.indexOf('\n```', start);
  return text.slice(start, end + 1);
}

/** `text` with every occurrence of each key replaced (and a check that each occurred). */
export function substitute(text: string, replacements: Record<string, string>): string {
  let out = text;
  for (const [from, to] of Object.entries(replacements)) {
    if (!out.includes(from)) throw new Error(`the doc's block no longer contains ${JSON.stringify(from)}`);
    out = out.split(from).join(to);
  }
  return out;
}

/** The path of a binary, or a thrown error that says how CI installs it. */
export function requireBinary(name: string, candidates: string[]): string {
  for (const path of candidates) if (existsSync(path)) return path;
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).stdout.trim();
  if (found) return found;
  throw new Error(`${name} is not installed: this e2e test runs the real ${name} (apt-get install ${name}; .ci/run installs it)`);
}

async function waitForPort(port: number, child: ChildProcess, output: () => string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`exited with ${child.exitCode} before listening:\n${output()}`);
    const up = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (up) return;
    if (Date.now() > deadline) throw new Error(`not listening on ${port} after ${timeoutMs} ms:\n${output()}`);
    await sleep(50);
  }
}

export interface FrontProxy {
  url: string;
  port: number;
  /** What the process wrote (stderr and stdout), and its error log. */
  output(): string;
  stop(): Promise<void>;
}

function run(bin: string, args: string[], env: NodeJS.ProcessEnv, dir: string, port: number, errorLog?: string): Promise<FrontProxy> {
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  recordChild(child);
  let text = '';
  child.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (text += c.toString()));
  const output = () => text + (errorLog !== undefined && existsSync(errorLog) ? `\n--- error log ---\n${readFileSync(errorLog, 'utf8')}` : '');
  const proxy: FrontProxy = {
    url: `http://127.0.0.1:${port}`,
    port,
    output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await once(child, 'exit');
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return waitForPort(port, child, output).then(
    () => proxy,
    async (error: unknown) => {
      await proxy.stop();
      throw error;
    },
  );
}

/** nginx (foreground, its own prefix, pid and logs in a temporary directory) with `server` inside `http {}`. */
export async function startNginx(server: string, port: number): Promise<FrontProxy> {
  const bin = requireBinary('nginx', ['/usr/sbin/nginx']);
  const dir = mkdtempSync(join(tmpdir(), 'keygate-nginx-'));
  // Workers may run as another user (root starts them as nobody): they must reach the temp paths.
  chmodSync(dir, 0o755);
  const errorLog = join(dir, 'error.log');
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${errorLog} warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path ${dir}/client_body;
    proxy_temp_path ${dir}/proxy;
    fastcgi_temp_path ${dir}/fastcgi;
    uwsgi_temp_path ${dir}/uwsgi;
    scgi_temp_path ${dir}/scgi;
${server}
}
`,
  );
  return run(bin, ['-p', dir, '-e', errorLog, '-c', conf], process.env, dir, port, errorLog);
}

/** Caddy (`caddy run`, no admin endpoint, no automatic HTTPS, its storage in a temporary directory) with `site`. */
export async function startCaddy(site: string, port: number): Promise<FrontProxy> {
  const bin = requireBinary('caddy', ['/usr/bin/caddy']);
  const dir = mkdtempSync(join(tmpdir(), 'keygate-caddy-'));
  const file = join(dir, 'Caddyfile');
  writeFileSync(
    file,
    `{
	admin off
	auto_https off
	storage file_system ${dir}/data
	log {
		level WARN
	}
}
${site}`,
  );
  const env = { ...process.env, HOME: dir, XDG_DATA_HOME: join(dir, 'data'), XDG_CONFIG_HOME: join(dir, 'config') };
  return run(bin, ['run', '--config', file, '--adapter', 'caddyfile'], env, dir, port);
}
