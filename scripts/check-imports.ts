/**
 * The import rules of src/ (issue 18), checked in `npm test`:
 *  - no import cycle between modules (type-only imports excepted: they are erased);
 *  - config/ loads nothing of the data path (pipeline/, transports/, routing/), not even
 *    through another module: a section's schema is checked without starting a request path;
 *  - auth/ and admin/ load nothing of the transports (transports/).
 * Prints every violation with the chain that makes it and exits 1; silent otherwise.
 *
 * Usage: node scripts/check-imports.ts [src]
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(process.argv[2] ?? 'src');
const IMPORT = /(?:^|\n)\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]/g;
const FORBIDDEN: [string, string[]][] = [
  ['config/', ['pipeline/', 'transports/', 'routing/']],
  ['auth/', ['transports/']],
  ['admin/', ['transports/']],
];

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === 'web' ? [] : files(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

const graph = new Map<string, string[]>();
for (const file of files(root)) {
  const edges: string[] = [];
  for (const match of readFileSync(file, 'utf8').matchAll(IMPORT)) {
    if (match[1]) continue; // import type: erased at run time
    edges.push(relative(root, resolve(dirname(file), match[2]!)));
  }
  graph.set(relative(root, file), edges);
}

const problems: string[] = [];
/** Everything `from` loads at run time, directly or through other modules, with the first chain found to each. */
function reachable(from: string): Map<string, string[]> {
  const chains = new Map<string, string[]>([[from, [from]]]);
  const queue = [from];
  for (let node = queue.shift(); node !== undefined; node = queue.shift()) {
    for (const next of graph.get(node) ?? []) {
      if (chains.has(next)) continue;
      chains.set(next, [...chains.get(node)!, next]);
      queue.push(next);
    }
  }
  return chains;
}
for (const from of graph.keys()) {
  for (const [folder, banned] of FORBIDDEN) {
    if (!from.startsWith(folder)) continue;
    for (const [to, chain] of reachable(from)) {
      if (banned.some((b) => to.startsWith(b))) problems.push(`${chain.join(' → ')} (${folder} must not load ${banned.join(', ')})`);
    }
  }
}

// Cycles: depth-first search, reporting each cycle once by its smallest member.
const state = new Map<string, 'open' | 'done'>();
const stack: string[] = [];
const seen = new Set<string>();
function visit(node: string): void {
  state.set(node, 'open');
  stack.push(node);
  for (const next of graph.get(node) ?? []) {
    if (!graph.has(next)) continue;
    if (state.get(next) === 'open') {
      const cycle = stack.slice(stack.indexOf(next));
      const key = [...cycle].sort().join(' ');
      if (!seen.has(key)) {
        seen.add(key);
        problems.push(`import cycle: ${[...cycle, next].join(' → ')}`);
      }
    } else if (!state.has(next)) visit(next);
  }
  stack.pop();
  state.set(node, 'done');
}
for (const node of graph.keys()) if (!state.has(node)) visit(node);

if (problems.length > 0) {
  console.error(`src/ import rules (scripts/check-imports.ts):\n  ${problems.join('\n  ')}`);
  process.exit(1);
}
