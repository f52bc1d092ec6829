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
// jco 1.10: later versions (1.16 onwards) wrap every import call in task and subtask
// bookkeeping for component-model async, which a synchronous wasip2 component does not use and
// which cost about 0.5 ms per getSecret (1.3x the SDK's time with 1.10, 1.8-2.1x with 1.35).
const jco = path.join(pkg, 'node_modules', '@bytecodealliance', 'jco', 'src', 'jco.js');

function transpile(wasm, dir, name) {
  const wasi = path.relative(dir, path.join(pkg, 'src', 'wasi'));
  const maps = ['io', 'clocks', 'cli', 'http', 'random', 'filesystem'].flatMap((p) => ['--map', `wasi:${p}/*=${wasi}/${p}.js#*`]);
  execFileSync(process.execPath, [jco, 'transpile', wasm, '--name', name, '-o', dir, '--no-typescript', '--quiet', ...maps], { stdio: 'inherit' });
  console.log(`kvrun: transpiled ${path.relative(root, wasm)} into ${path.relative(pkg, dir)}/`);
}

transpile(built('kvrun_guest.wasm'), out, 'kvrun_guest');
if (fixtures) transpile(built('kvrun_hostile_guest.wasm'), path.join(out, 'hostile'), 'kvrun_guest');
