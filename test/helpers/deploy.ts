/**
 * The files under deploy/ as data for tests: the PromQL of the Prometheus rules and of the
 * Grafana dashboard (each with where it came from), the Kubernetes manifests, and the
 * external tools that check them (promtool, docker-compose), which must be installed —
 * .ci/run installs them; a missing one fails the test, it never skips it.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { REPO_ROOT } from './process.ts';

export const DEPLOY = join(REPO_ROOT, 'deploy');
export const RULES_FILE = join(DEPLOY, 'prometheus', 'keygate-rules.yml');
export const RULES_TEST_FILE = join(DEPLOY, 'prometheus', 'keygate-rules.test.yml');
export const DASHBOARD_FILE = join(DEPLOY, 'grafana', 'keygate.json');
export const COMPOSE_FILE = join(DEPLOY, 'docker-compose.yml');
export const KUBERNETES_DIR = join(DEPLOY, 'kubernetes');

export interface DeployExpression {
  /** e.g. `rule KeygateStoreErrors` or `panel "Revocation lag" A`. */
  where: string;
  expr: string;
  /** label_values(expr, label): the label the template variable lists. */
  label?: string;
}

export interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export function rules(): Rule[] {
  const doc = parseYaml(readFileSync(RULES_FILE, 'utf8')) as { groups: { name: string; rules: Rule[] }[] };
  return doc.groups.flatMap((g) => g.rules);
}

export function ruleExpressions(): DeployExpression[] {
  return rules().map((r) => ({ where: `rule ${r.alert ?? r.record}`, expr: r.expr }));
}

interface Panel {
  title: string;
  type: string;
  targets?: { expr: string; refId: string }[];
  panels?: Panel[];
}

export function dashboard(): { panels: Panel[]; templating: { list: { name: string; type: string; query?: unknown }[] } } {
  return JSON.parse(readFileSync(DASHBOARD_FILE, 'utf8'));
}

export function dashboardExpressions(): DeployExpression[] {
  const d = dashboard();
  const out: DeployExpression[] = [];
  const visit = (panels: Panel[]) => {
    for (const p of panels) {
      for (const t of p.targets ?? []) out.push({ where: `panel "${p.title}" ${t.refId}`, expr: t.expr });
      visit(p.panels ?? []);
    }
  };
  visit(d.panels);
  for (const v of d.templating.list) {
    if (v.type !== 'query') continue;
    const query = typeof v.query === 'string' ? v.query : (v.query as { query: string }).query;
    const m = /^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/.exec(query);
    if (m === null) throw new Error(`template variable ${v.name}: only label_values(selector, label) queries are checked, got ${query}`);
    out.push({ where: `variable $${v.name}`, expr: m[1]!, label: m[2]! });
  }
  return out;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: any;
}

/** Every object in deploy/kubernetes/*.yaml (kustomization.yaml included). */
export function kubernetesObjects(): { file: string; object: K8sObject }[] {
  const out: { file: string; object: K8sObject }[] = [];
  for (const file of readdirSync(KUBERNETES_DIR).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    for (const doc of parseAllDocuments(readFileSync(join(KUBERNETES_DIR, file), 'utf8'))) {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      const object = doc.toJS() as K8sObject | null;
      if (object !== null) out.push({ file, object });
    }
  }
  return out;
}

/**
 * Runs an external tool; throws (never skips) when it is not installed, naming the Debian
 * package .ci/run installs it from.
 */
export function runTool(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 60_000, ...options });
  if (result.error) {
    const pkg = { promtool: 'prometheus', 'docker-compose': 'docker-compose' }[command] ?? command;
    throw new Error(`${command} could not be run (${(result.error as NodeJS.ErrnoException).code ?? result.error.message}): install Debian's ${pkg} package, as .ci/run does`);
  }
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/** Milliseconds of a Go / compose duration such as 20s, 1m30s, 500ms. */
export function durationMs(text: string): number {
  let total = 0;
  let rest = text.trim();
  if (rest === '') throw new Error('empty duration');
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  while (rest !== '') {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (m === null) throw new Error(`not a duration: ${text}`);
    total += Number(m[1]) * units[m[2]!]!;
    rest = rest.slice(m[0].length);
  }
  return total;
}

/**
 * What keygate does after SIGTERM once graceMs is over, at most: the admin listener's 1 s
 * close and up to 5 s for pending notifications (cli/serve-command.ts, server.ts). A
 * SIGKILL deadline must leave this much on top of drainDelayMs + graceMs.
 */
export const SHUTDOWN_TAIL_MS = 6000;
