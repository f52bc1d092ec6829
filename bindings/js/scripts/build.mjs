// Builds the package from source: the vault client component (cargo, wasm32-wasip2, the same
// profile and target directory as the Rust host's build script), then `jco transpile` with
// every `wasi:*` import mapped to this package's own implementation in `src/wasi/`.
// Output: `generated/` (not committed). With `--test-fixtures`, also the hostile stand-in for
// the vault client that the tests use (`generated/hostile/`).

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import fs from 'node:fs';

const here = path.dirname(fileURLToPath(import.meta.url));
const pkg = path.resolve(here, '..');
const root = path.resolve(pkg, '..', '..');
const targetDir = path.join(process.env.CARGO_TARGET_DIR ? path.resolve(root, process.env.CARGO_TARGET_DIR) : path.join(root, 'target'), 'guest-build');
const profile = 'guest-release';
const built = (name) => path.join(targetDir, 'wasm32-wasip2', profile, name);
const fixtures = process.argv.includes('--test-fixtures');
const packages = ['-p', 'kvrun-guest', ...(fixtures ? ['-p', 'kvrun-hostile-guest'] : [])];

console.log('kvrun: building the vault client component (cargo, wasm32-wasip2)');
execFileSync(process.env.CARGO ?? 'cargo', ['build', ...packages, '--target', 'wasm32-wasip2', '--profile', profile, '--target-dir', targetDir], {
  cwd: root,
  stdio: 'inherit',
});

const out = path.join(pkg, 'generated');
fs.rmSync(out, { recursive: true, force: true });
const jco = path.join(pkg, 'node_modules', '@bytecodealliance', 'jco', 'dist', 'jco.js');

// jco 1.35's output checks `process.env.JCO_DEBUG` on every one of its internal log calls (a
// few hundred per request, about a tenth of the worker's CPU); decide once, at load.
const DEBUG_LOG = `const _debugLog = (...args) => {
  if (!globalThis?.process?.env?.JCO_DEBUG) { return; }
  console.debug(...args);
};`;
const DEBUG_LOG_ONCE = `const _debugLog = globalThis?.process?.env?.JCO_DEBUG ? (...args) => console.debug(...args) : () => {};`;

function transpile(wasm, dir, name) {
  const wasi = path.relative(dir, path.join(pkg, 'src', 'wasi'));
  const maps = ['io', 'clocks', 'cli', 'http', 'random', 'filesystem'].flatMap((p) => ['--map', `wasi:${p}/*=${wasi}/${p}.js#*`]);
  execFileSync(process.execPath, [jco, 'transpile', wasm, '--name', name, '-o', dir, '--no-typescript', '--quiet', ...maps], { stdio: 'inherit' });
  const js = path.join(dir, `${name}.js`);
  const source = fs.readFileSync(js, 'utf8');
  if (!source.includes(DEBUG_LOG)) throw new Error(`${js}: jco's _debugLog is not where this script expects it; check the jco version (1.35.0)`);
  fs.writeFileSync(js, source.replace(DEBUG_LOG, DEBUG_LOG_ONCE));
  console.log(`kvrun: transpiled ${path.relative(root, wasm)} into ${path.relative(pkg, dir)}/`);
}

transpile(built('kvrun_guest.wasm'), out, 'kvrun_guest');
if (fixtures) transpile(built('kvrun_hostile_guest.wasm'), path.join(out, 'hostile'), 'kvrun_guest');
