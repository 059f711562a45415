'use strict';
// Compiling the small native helpers (peak meter, OpenBLAS harness) at run time into a scratch
// folder, so the benchmark needs nothing prebuilt beyond the addon itself.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

let scratch = null;

/** A temp folder for this run's binaries, removed when the process exits. */
function scratchDir() {
  if (scratch === null) {
    scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-bench-'));
    process.on('exit', () => fs.rmSync(scratch, { recursive: true, force: true }));
  }
  return scratch;
}

/** Runs a compiler; returns { ok, output } instead of throwing, since a missing library is expected. */
function compile(compiler, args) {
  const r = spawnSync(compiler, args, { encoding: 'utf8' });
  if (r.error) return { ok: false, output: String(r.error.message) };
  return { ok: r.status === 0, output: `${r.stdout}${r.stderr}`.trim() };
}

/** Runs a helper binary and parses the JSON it prints on its last line. */
function runJson(file, args, options = {}) {
  const r = spawnSync(file, args, { encoding: 'utf8', maxBuffer: 1 << 20, ...options });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${path.basename(file)} exited with ${r.status}: ${r.stderr.trim()}`);
  const lines = r.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]);
}

module.exports = { scratchDir, compile, runJson };
