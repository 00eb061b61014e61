/**
 * deploy/kubernetes/, parsed: the keygate.yaml in the ConfigMap is valid for keygate
 * (src/config/load.ts, and the environment check `serve` runs with real secrets); the
 * probes reach keygate's admin listener (readiness /readyz, liveness /healthz, on the port
 * and a host the ConfigMap's admin section binds) and the Service the proxy listener;
 * terminationGracePeriodSeconds covers shutdown.drainDelayMs + graceMs and the final
 * flushes, and the readiness probe notices a drain within drainDelayMs; the Secret's
 * placeholders are refused by keygate, so a forgotten one stops start-up; the
 * PodDisruptionBudget and the Service select the Deployment's pods.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../../src/config/load.ts';
import { KeygateError } from '../../../src/http/problem.ts';
import type { Config } from '../../../src/config/schema.ts';
import { checkEnvironment } from '../../../src/cli/environment.ts';
import { createLoggers } from '../../../src/observability/logger.ts';
import { kubernetesObjects, SHUTDOWN_TAIL_MS, type K8sObject } from '../../helpers/deploy.ts';
import { captureStream } from '../../helpers/keygate.ts';

const silent = createLoggers({ level: 'silent', destination: captureStream().stream });
afterAll(() => silent.flush());

let objects: { file: string; object: K8sObject }[];
let deployment: K8sObject;
let configMap: K8sObject;
let secret: K8sObject;
let service: K8sObject;
let pdb: K8sObject;
let container: any;
let config: Config;

/** What an operator puts in the Secret (stand-ins of the right shape). */
const REAL_SECRETS = { KEYGATE_PEPPER: 'k8s-test-pepper-0123456789', KEYGATE_MASTER_KEY: Buffer.alloc(32, 9).toString('base64') };

const one = (kind: string): K8sObject => {
  const found = objects.filter((o) => o.object.kind === kind);
  expect(found, `exactly one ${kind}`).toHaveLength(1);
  return found[0]!.object;
};

/** A probe's or Service's port (a number or a container port's name) as a number. */
function portNumber(port: number | string): number {
  if (typeof port === 'number') return port;
  const named = (container.ports as { name: string; containerPort: number }[]).find((p) => p.name === port);
  expect(named, `a container port named ${port}`).toBeDefined();
  return named!.containerPort;
}

/** The environment the container gets, with `secrets` standing in for the Secret's values. */
function containerEnv(secrets: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const e of container.env as { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } } }[]) {
    if (e.value !== undefined) env[e.name] = e.value;
    const ref = e.valueFrom?.secretKeyRef;
    if (ref !== undefined) {
      expect(ref.name).toBe(secret.metadata.name);
      if (secrets[ref.key] !== undefined) env[e.name] = secrets[ref.key];
      else expect(ref.optional, `${e.name} comes from a key the Secret does not have`).toBe(true);
    }
  }
  return env;
}

beforeAll(() => {
  objects = kubernetesObjects();
  deployment = one('Deployment');
  configMap = one('ConfigMap');
  secret = one('Secret');
  service = one('Service');
  pdb = one('PodDisruptionBudget');
  const containers = deployment.spec.template.spec.containers as any[];
  expect(containers).toHaveLength(1);
  container = containers[0];
  config = parseConfig(parseYaml(configMap.data['keygate.yaml']), 'configmap.yaml', containerEnv(REAL_SECRETS));
});

describe('the ConfigMap', () => {
  it('holds a keygate.yaml that keygate accepts', async () => {
    const env = containerEnv(REAL_SECRETS);
    // parseConfig (src/config/load.ts) ran in beforeAll; this is what `serve` checks besides.
    await checkEnvironment(config, env, silent.logger).close();
    expect(config.store.kind).toBe('redis');
    expect(config.workers).toBe(1);
  });

  it('is mounted where KEYGATE_CONFIG points', () => {
    const path = containerEnv(REAL_SECRETS).KEYGATE_CONFIG!;
    const volume = (deployment.spec.template.spec.volumes as any[]).find((v) => v.configMap?.name === configMap.metadata.name);
    expect(volume).toBeDefined();
    const mount = (container.volumeMounts as any[]).find((m) => m.name === volume.name);
    expect(`${mount.mountPath}/keygate.yaml`).toBe(path);
    expect(mount.readOnly).toBe(true);
  });
});

describe('the Deployment', () => {
  it('probes readiness on /readyz and liveness on /healthz, at the admin listener of the ConfigMap', () => {
    expect(container.readinessProbe.httpGet.path).toBe('/readyz');
    expect(container.livenessProbe.httpGet.path).toBe('/healthz');
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      if (container[probe] === undefined) continue;
      expect(portNumber(container[probe].httpGet.port), probe).toBe(config.admin.port);
    }
    // The kubelet probes the pod IP: the admin listener must be bound to every interface.
    expect(['0.0.0.0', '::']).toContain(config.admin.host);
    expect(['0.0.0.0', '::']).toContain(config.listen.host);
    expect(portNumber('proxy')).toBe(config.listen.port);
  });

  it('gives keygate time to drain: terminationGracePeriodSeconds ≥ drainDelayMs + graceMs + the final flushes', () => {
    const { drainDelayMs, graceMs } = config.shutdown;
    expect(drainDelayMs).toBeGreaterThan(0);
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThanOrEqual(drainDelayMs + graceMs + SHUTDOWN_TAIL_MS);
  });

  it('notices a drain through the readiness probe before keygate stops accepting', () => {
    const probe = container.readinessProbe;
    expect(probe.periodSeconds * probe.failureThreshold * 1000).toBeLessThanOrEqual(config.shutdown.drainDelayMs);
    // Liveness never looks at readiness: a Redis outage must not restart every pod.
    expect(container.livenessProbe.httpGet.path).not.toBe('/readyz');
  });

  it('takes the pepper and the master key from the Secret', () => {
    const refs = (container.env as any[]).filter((e) => e.valueFrom?.secretKeyRef).map((e) => [e.name, e.valueFrom.secretKeyRef.key, e.valueFrom.secretKeyRef.optional ?? false]);
    expect(refs).toContainEqual(['KEYGATE_PEPPER', 'KEYGATE_PEPPER', false]);
    expect(refs).toContainEqual(['KEYGATE_MASTER_KEY', 'KEYGATE_MASTER_KEY', false]);
  });

  it('has requests and limits, runs as non-root with a read-only root filesystem', () => {
    for (const r of ['cpu', 'memory']) expect(container.resources.requests[r], r).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
    expect(deployment.spec.template.spec.securityContext.runAsNonRoot).toBe(true);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    // The heap fits under the memory limit.
    const heapMb = Number(/--max-old-space-size=(\d+)/.exec(containerEnv(REAL_SECRETS).NODE_OPTIONS ?? '')?.[1]);
    expect(heapMb).toBeLessThan(Number(/^(\d+)Mi$/.exec(container.resources.limits.memory)![1]));
  });

  it('runs the image CMD (no command override, so SIGTERM reaches keygate as PID 1)', () => {
    expect(container.command).toBeUndefined();
    expect(container.args).toBeUndefined();
  });
});

describe('the Secret', () => {
  it('holds KEYGATE_PEPPER and KEYGATE_MASTER_KEY as placeholders keygate refuses', () => {
    const data = secret.stringData as Record<string, string>;
    expect(Object.keys(data).sort()).toEqual(['KEYGATE_MASTER_KEY', 'KEYGATE_PEPPER']);
    for (const name of ['KEYGATE_PEPPER', 'KEYGATE_MASTER_KEY']) {
      const env = containerEnv({ ...REAL_SECRETS, [name]: data[name]! });
      let error: unknown;
      try {
        checkEnvironment(config, env, silent.logger);
      } catch (e) {
        error = e;
      }
      // validation_failed: what `serve` exits 2 on, naming the variable.
      expect(error, name).toBeInstanceOf(KeygateError);
      expect(error).toMatchObject({ code: 'validation_failed' });
      expect((error as Error).message).toContain(name);
    }
  });

  it('is left out of kustomization.yaml, so applying never overwrites the real one', () => {
    const kustomization = objects.find((o) => o.object.kind === 'Kustomization')!.object as unknown as { resources: string[] };
    const files = new Set(objects.map((o) => o.file));
    expect(kustomization.resources).not.toContain('secret.yaml');
    for (const r of kustomization.resources) expect(files.has(r), r).toBe(true);
    for (const o of objects) if (!['Secret', 'Kustomization'].includes(o.object.kind)) expect(kustomization.resources, o.file).toContain(o.file);
  });
});

describe('the Service and the PodDisruptionBudget', () => {
  it('select the Deployment’s pods', () => {
    const labels = deployment.spec.template.metadata.labels as Record<string, string>;
    for (const selector of [service.spec.selector, pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels] as Record<string, string>[]) {
      for (const [k, v] of Object.entries(selector)) expect(labels[k], k).toBe(v);
    }
  });

  it('the Service sends to the proxy listener only', () => {
    expect(service.spec.ports.map((p: { targetPort: number | string }) => portNumber(p.targetPort))).toEqual([config.listen.port]);
  });

  it('the budget leaves a pod serving during voluntary disruptions', () => {
    const replicas = deployment.spec.replicas as number;
    expect(replicas).toBeGreaterThanOrEqual(2);
    if (pdb.spec.maxUnavailable !== undefined) expect(pdb.spec.maxUnavailable).toBeLessThan(replicas);
    else expect(pdb.spec.minAvailable).toBeGreaterThanOrEqual(1);
    expect(deployment.spec.strategy.rollingUpdate.maxUnavailable).toBe(0);
  });
});
