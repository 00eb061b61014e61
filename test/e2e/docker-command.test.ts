/**
 * The Docker image (issue 8). Docker cannot run here, so the Dockerfile is parsed: two
 * stages on node:24-slim, production dependencies only, a non-root user, the ports, a
 * HEALTHCHECK on /healthz, and a CMD that is exactly what `npm start` runs. Then that CMD
 * is run as the container would (node from PATH, in the app directory, configured through
 * the environment only), /healthz answers, the HEALTHCHECK's own command exits 0 against it
 * (and 1 when nothing answers), and SIGTERM — what `docker stop` sends to PID 1 — ends it
 * with 0. .dockerignore keeps node_modules and the data directory out of the build context.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/http.ts';
import { childEnv, freePorts, REPO_ROOT, shippedConfig, shippedPorts, tempDir, type TempDir } from '../helpers/process.ts';

interface Instruction {
  /** Upper-case keyword: FROM, RUN, CMD, … */
  op: string;
  args: string;
  /** Index of the stage (FROM) it belongs to. */
  stage: number;
}

/** Dockerfile instructions: comments dropped, `\` continuations joined. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (pending === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    const match = /^(\w+)\s+([\s\S]*)$/.exec(full);
    if (!match) continue;
    const op = match[1]!.toUpperCase();
    if (op === 'FROM') stage++;
    out.push({ op, args: match[2]!.trim(), stage });
  }
  return out;
}

const dockerfile = parseDockerfile(readFileSync(join(REPO_ROOT, 'Dockerfile'), 'utf8'));
const finalStage = Math.max(...dockerfile.map((i) => i.stage));
const final = dockerfile.filter((i) => i.stage === finalStage);
const all = (op: string, list = dockerfile) => list.filter((i) => i.op === op);
const one = (op: string, list = final): Instruction => {
  const found = all(op, list);
  expect(found, `exactly one ${op} in the final stage`).toHaveLength(1);
  return found[0]!;
};

/** The exec-form (JSON array) of a CMD / HEALTHCHECK CMD. */
function execForm(args: string): string[] {
  const parsed = JSON.parse(args) as unknown;
  expect(Array.isArray(parsed) && parsed.every((p) => typeof p === 'string'), `exec form: ${args}`).toBe(true);
  return parsed as string[];
}

/** Splits `npm start`'s script the way sh would for a simple command (no quotes or operators in it). */
function npmStart(): string[] {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  const script = pkg.scripts.start!;
  expect(script).not.toMatch(/["'`$&|;<>()]/);
  return script.trim().split(/\s+/);
}

function healthcheck(): { options: string; command: string[] } {
  const args = one('HEALTHCHECK').args;
  const at = args.indexOf('CMD ');
  expect(at, 'HEALTHCHECK … CMD [...]').toBeGreaterThanOrEqual(0);
  return { options: args.slice(0, at), command: execForm(args.slice(at + 4).trim()) };
}

describe('the Dockerfile', () => {
  it('is multi-stage, every stage on node:24-slim, the final one copying from the first', () => {
    const froms = all('FROM');
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const from of froms) expect(from.args.split(/\s+/)[0]).toBe('node:24-slim');
    const builder = froms[0]!.args.split(/\s+AS\s+/i)[1];
    expect(builder, 'the first stage is named').toBeTruthy();
    expect(all('COPY', final).some((c) => c.args.startsWith(`--from=${builder} `))).toBe(true);
  });

  it('installs production dependencies only, with npm ci', () => {
    const installs = all('RUN').filter((r) => /\bnpm (ci|install|i)\b/.test(r.args));
    expect(installs.length).toBeGreaterThanOrEqual(1);
    for (const run of installs) {
      expect(run.args).toMatch(/\bnpm ci\b/);
      expect(run.args).toMatch(/--omit=dev\b/);
    }
    // The final image gets node_modules from that stage, never by installing again.
    expect(all('RUN', final).filter((r) => /\bnpm\b/.test(r.args))).toEqual([]);
  });

  it('runs as a non-root user', () => {
    const users = all('USER', final);
    expect(users.length).toBeGreaterThanOrEqual(1);
    const user = users.at(-1)!.args.split(':')[0]!;
    expect(['root', '0', '']).not.toContain(user);
    // USER comes before CMD, so the server process runs as that user.
    expect(final.indexOf(users.at(-1)!)).toBeLessThan(final.indexOf(one('CMD')));
  });

  it('exposes 8080 (the proxy)', () => {
    const ports = all('EXPOSE', final).flatMap((e) => e.args.split(/\s+/)).map((p) => p.split('/')[0]);
    expect(ports).toContain('8080');
  });

  it('has a HEALTHCHECK that fetches /healthz on the admin port', () => {
    const { options, command } = healthcheck();
    expect(options).toMatch(/--interval=\d+s/);
    expect(options).toMatch(/--timeout=\d+s/);
    expect(command[0]).toBe('node');
    expect(command[1]).toBe('-e');
    expect(command[2]).toContain('/healthz');
    expect(command[2]).toContain('KEYGATE_ADMIN_PORT');
  });

  it("its CMD is exactly what `npm start` runs (exec form, so SIGTERM reaches keygate)", () => {
    const cmd = execForm(one('CMD').args);
    expect(cmd).toEqual(npmStart());
    expect(all('ENTRYPOINT', final)).toEqual([]);
  });

  it('copies everything the CMD needs into the final stage', () => {
    const copied = all('COPY', final)
      .filter((c) => !c.args.startsWith('--from='))
      .flatMap((c) => c.args.split(/\s+/).slice(0, -1));
    for (const needed of ['package.json', 'bin', 'src', 'config']) expect(copied, needed).toContain(needed);
    const script = execForm(one('CMD').args)[1]!;
    expect(copied.some((c) => script === c || script.startsWith(`${c}/`)), `${script} is copied`).toBe(true);
    expect(one('WORKDIR').args).toBe('/app');
  });

  it('.dockerignore keeps node_modules and data out of the build context (and not the sources)', () => {
    const ignored = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim().replace(/^\/|\/$/g, ''))
      .filter((l) => l !== '' && !l.startsWith('#'));
    expect(ignored).toContain('node_modules');
    expect(ignored).toContain('data');
    for (const needed of ['src', 'bin', 'config', 'package.json', 'package-lock.json']) expect(ignored).not.toContain(needed);
  });
});

describe('the CMD, run the way the container runs it', () => {
  let dir: TempDir;
  let child: ChildProcess;
  let stdout = '';
  let stderr = '';
  let exited: Promise<[number | null, NodeJS.Signals | null]>;
  let ports: { listen: number; admin: number; echo: number };
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    dir = tempDir('keygate-docker-');
    ports = await shippedPorts();
    const { listen, admin, echo } = ports;
    // The shipped config with only what a container operator changes by mounting: a data
    // path and the echo port (so this test does not collide with anything on 8090).
    const shipped = shippedConfig();
    const oldEcho = `http://127.0.0.1:${shipped.echo.port}`;
    const config = {
      ...shipped,
      store: { ...shipped.store, path: join(dir.path, 'data', 'keygate.db') },
      echo: { ...shipped.echo, port: echo },
      routes: (shipped.routes as Record<string, any>[]).map((r) => (r.upstream === oldEcho ? { ...r, upstream: `http://127.0.0.1:${echo}` } : r)),
    };
    const configFile = dir.writeYaml('keygate.yaml', config);
    // node from PATH: the Node this test runs on (24), first.
    env = childEnv({
      PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}`,
      NODE_ENV: 'production',
      KEYGATE_PORT: String(listen),
      KEYGATE_ADMIN_PORT: String(admin),
      KEYGATE_CONFIG: configFile,
    });
    const [command, ...args] = execForm(one('CMD').args);
    child = spawn(command!, args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    await waitFor(() => stdout.includes('"keygate listening"') || child.exitCode !== null, 15_000, 20);
    if (child.exitCode !== null) throw new Error(`the CMD exited ${child.exitCode}\n${stdout}\n${stderr}`);
  });

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    dir?.remove();
  });

  it('starts keygate on the ports from KEYGATE_PORT / KEYGATE_ADMIN_PORT, on the embedded store', () => {
    const line = stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.msg === 'keygate listening');
    expect(line).toMatchObject({ proxy: `0.0.0.0:${ports.listen}`, admin: `127.0.0.1:${ports.admin}`, store: 'embedded' });
    expect(existsSync(join(dir.path, 'data', 'keygate.db'))).toBe(true);
  });

  it('/healthz answers 200 and the proxy answers (401 without a key)', async () => {
    const health = await fetch(`http://127.0.0.1:${ports.admin}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const proxied = await fetch(`http://127.0.0.1:${ports.listen}/echo/x`);
    expect(proxied.status).toBe(401);
    const open = await fetch(`http://127.0.0.1:${ports.listen}/public/x`);
    expect(open.status).toBe(200);
  });

  async function runHealthcheck(adminPort: number | undefined): Promise<number | null> {
    const [command, ...args] = healthcheck().command;
    const hcEnv = { ...env };
    if (adminPort === undefined) delete hcEnv.KEYGATE_ADMIN_PORT;
    else hcEnv.KEYGATE_ADMIN_PORT = String(adminPort);
    const probe = spawn(command!, args, { cwd: REPO_ROOT, env: hcEnv, stdio: 'ignore' });
    const timer = setTimeout(() => probe.kill('SIGKILL'), 5000);
    const [code] = (await once(probe, 'exit')) as [number | null];
    clearTimeout(timer);
    return code;
  }

  it("the HEALTHCHECK's command exits 0 against it, and 1 when nothing answers", async () => {
    const [nothing] = (await freePorts(1)) as [number];
    const [healthy, unhealthy] = await Promise.all([runHealthcheck(ports.admin), runHealthcheck(nothing)]);
    expect(healthy).toBe(0);
    expect(unhealthy).toBe(1);
  });

  it('SIGTERM (docker stop) ends it with exit 0', async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 8000);
    const [code, signal] = await exited;
    clearTimeout(timer);
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(stdout).toContain('"keygate stopped"');
    expect(stderr).toBe('');
  });
});
