import { createKeys } from './harness/keys.ts';
import { writeFileSync } from 'node:fs';
const keys = await createKeys({ kind: 'redis', url: 'redis://127.0.0.1:6379/3' }, 'bench-pepper-0123456789abcdef', 20000);
writeFileSync('/tmp/kg/miss.lua', `local keys = {${keys.map((k) => `"${k}"`).join(',')}}\nlocal i = 0\nrequest = function()\n  i = i % #keys + 1\n  return wrk.format("GET", "/", { ["X-Api-Key"] = keys[i] })\nend\n`);
const hit = (await import('node:fs')).readFileSync('/tmp/kg/key', 'utf8').trim();
writeFileSync('/tmp/kg/hit.lua', `local keys = {"${hit}"}\nlocal i = 0\nrequest = function()\n  i = i % #keys + 1\n  return wrk.format("GET", "/", { ["X-Api-Key"] = keys[i] })\nend\n`);
process.exit(0);
