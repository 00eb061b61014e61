#!/usr/bin/env node
// Checked here, in plain JavaScript, so an old Node says what is wrong instead of failing on syntax.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 21)) {
  process.stderr.write(`keygate: needs Node.js >= 22.21 (this is ${process.version}); run it through npm (npm start / npx keygate), which uses the Node pinned in devDependencies\n`);
  process.exit(1);
}
// node:sqlite prints an ExperimentalWarning on some Node versions; it is noise for a CLI user.
const emit = process.emitWarning;
process.emitWarning = function (warning, ...rest) {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  if (type === 'ExperimentalWarning' && String(warning).includes('SQLite')) return;
  return emit.call(process, warning, ...rest);
};
const { run, processIo } = await import('../src/main.ts');
const code = await run(process.argv.slice(2), processIo);
process.exitCode = code;
// A cluster worker's IPC channel would keep it alive after `serve` has returned.
const { default: cluster } = await import('node:cluster');
if (cluster.isWorker) process.exit(code);
