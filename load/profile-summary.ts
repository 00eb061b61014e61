// Summarises a .cpuprofile: self time per function and per package, idle time excluded.
import { readFileSync } from 'node:fs';

interface Node { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }
const profile = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as { nodes: Node[]; samples: number[]; timeDeltas: number[] };
const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
let busy = 0;
profile.samples.forEach((id, i) => {
  const frame = nodes.get(id)!.callFrame;
  if (frame.functionName === '(idle)') return;
  const dt = profile.timeDeltas[i] ?? 0;
  busy += dt;
  const fn = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}:${frame.lineNumber}`;
  byFunction.set(fn, (byFunction.get(fn) ?? 0) + dt);
  const pkg = frame.url.includes('node_modules/') ? frame.url.replace(/.*node_modules\/((@[^/]+\/)?[^/]+).*/, '$1') : frame.url.startsWith('node:') ? frame.url : frame.url ? 'keygate' : frame.functionName;
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + dt);
});
const show = (map: Map<string, number>, n: number) =>
  [...map].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `${((v / busy) * 100).toFixed(1).padStart(5)}%  ${k}`).join('\n');
const own = new Map([...byFunction].filter(([k]) => / (proxy|auth|keys|observability|events|store|secrets|webhooks)\//.test(k)));
console.log(`busy ${(busy / 1e6).toFixed(2)} s\n--- by package\n${show(byPackage, 20)}\n--- by function\n${show(byFunction, 30)}\n--- keygate's own functions\n${show(own, 25)}`);
