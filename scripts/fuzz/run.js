#!/usr/bin/env node
'use strict';
// npm run fuzz: builds the libFuzzer targets of the native readers (fuzz/*.cpp with clang++
// -fsanitize=fuzzer,address,undefined, linking only native/io and native/core), replays the kept
// crash cases (test/fixtures/fuzz-regressions/<target>/), then fuzzes each target for a time budget
// from seeds made of the real model files. Exits non-zero on a build failure or any finding.
//
//   npm run fuzz                              every target, 60 s each
//   npm run fuzz -- --seconds 600 gguf        one target, 10 minutes
//   npm run fuzz -- --replay                  only replay the regression cases
// Options: --seconds N (or PEFT_FUZZ_SECONDS), --fork N (libFuzzer worker processes), --models DIR
// (or PEFT_TEST_MODELS; default ../shared/models). CXX_FUZZ names the compiler, PEFT_FUZZ_OUT the
// output folder (default build-fuzz/).
const { spawnSync, spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { TARGETS } = require('./targets');
const { writeSeeds } = require('./seeds');

const ROOT = path.resolve(__dirname, '..', '..');
const OUT = process.env.PEFT_FUZZ_OUT ? path.resolve(process.env.PEFT_FUZZ_OUT) : path.join(ROOT, 'build-fuzz');
const REGRESSIONS = path.join(ROOT, 'test', 'fixtures', 'fuzz-regressions');
const COMPILE = ['-std=c++17', '-g', '-O1', '-fno-omit-frame-pointer', '-fsanitize=address,undefined', '-fno-sanitize-recover=undefined',
  '-I', path.join(ROOT, 'native'), '-I', path.join(ROOT, 'fuzz')];

function usage(message) {
  if (message) process.stderr.write(`fuzz: ${message}\n`);
  process.stderr.write('usage: npm run fuzz -- [--seconds N] [--fork N] [--models DIR] [--replay] [target ...]\n' +
    `targets: ${Object.keys(TARGETS).join(', ')}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = { seconds: Number(process.env.PEFT_FUZZ_SECONDS ?? 60), fork: 0, replay: false, targets: [],
    models: process.env.PEFT_TEST_MODELS ?? path.resolve(ROOT, '..', 'shared', 'models') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => argv[++i] ?? usage(`${a} needs a value`);
    if (a === '--seconds') o.seconds = Number(value());
    else if (a === '--fork') o.fork = Number(value());
    else if (a === '--models') o.models = path.resolve(value());
    else if (a === '--replay') o.replay = true;
    else if (a === '--help' || a === '-h') usage();
    else if (TARGETS[a]) o.targets.push(a);
    else usage(`unknown argument ${a}`);
  }
  if (!Number.isFinite(o.seconds) || o.seconds < 1) usage('--seconds must be a positive number');
  if (!Number.isInteger(o.fork) || o.fork < 0) usage('--fork must be a non-negative integer');
  if (o.targets.length === 0) o.targets = Object.keys(TARGETS);
  return o;
}

/** The first clang++ that can link a libFuzzer program, or a clear failure. */
function findClang() {
  const candidates = process.env.CXX_FUZZ ? [process.env.CXX_FUZZ] : ['clang++', ...[19, 18, 17, 16, 15, 14].map((v) => `clang++-${v}`)];
  const probe = path.join(OUT, 'probe.cpp');
  fs.mkdirSync(OUT, { recursive: true });
  fs.writeFileSync(probe, '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n');
  const tried = [];
  for (const cxx of candidates) {
    const version = spawnSync(cxx, ['--version'], { encoding: 'utf8' });
    if (version.error || version.status !== 0 || !/clang/i.test(version.stdout)) {
      tried.push(`${cxx}: not found`);
      continue;
    }
    const link = spawnSync(cxx, ['-fsanitize=fuzzer,address,undefined', probe, '-o', path.join(OUT, 'probe')], { encoding: 'utf8' });
    if (link.status === 0) return cxx;
    tried.push(`${cxx}: cannot link -fsanitize=fuzzer (${(link.stderr.split('\n').find((l) => /error/.test(l)) ?? '').trim()})`);
  }
  process.stderr.write(
    'npm run fuzz needs clang++ with libFuzzer and the sanitizer runtimes, and found none:\n' +
      tried.map((t) => `  ${t}\n`).join('') +
      'Install them (Debian/Ubuntu: apt-get install clang-14 libclang-rt-14-dev) or set CXX_FUZZ to a clang++ that has them.\n',
  );
  process.exit(1);
}

function newestMtime(dirs) {
  let newest = 0;
  for (const dir of dirs) {
    for (const f of fs.readdirSync(dir)) newest = Math.max(newest, fs.statSync(path.join(dir, f)).mtimeMs);
  }
  return newest;
}

function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** Compiles changed objects (two at a time per core) and links each target; returns the binaries. */
async function build(cxx, targets) {
  const objDir = path.join(OUT, 'obj');
  fs.mkdirSync(objDir, { recursive: true });
  // Any header change rebuilds everything: the sources are few and small.
  const headers = newestMtime([path.join(ROOT, 'native', 'core'), path.join(ROOT, 'native', 'io'), path.join(ROOT, 'fuzz')]);
  const sources = [...new Set(targets.flatMap((t) => [TARGETS[t].harness, ...TARGETS[t].sources]))];
  const objectOf = (src) => path.join(objDir, src.replace(/[/\\]/g, '_').replace(/\.cpp$/, '.o'));
  const stale = sources.filter((src) => {
    const obj = objectOf(src);
    return !fs.existsSync(obj) || fs.statSync(obj).mtimeMs < Math.max(headers, fs.statSync(path.join(ROOT, src)).mtimeMs);
  });
  if (stale.length) process.stdout.write(`compiling ${stale.length} file(s) with ${cxx} (ASan + UBSan + libFuzzer)\n`);
  const queue = [...stale];
  const failures = [];
  const worker = async () => {
    for (let src; (src = queue.shift()); ) {
      const r = await run(cxx, [...COMPILE, '-fsanitize=fuzzer-no-link', '-c', path.join(ROOT, src), '-o', objectOf(src)]);
      if (r.code !== 0) failures.push(`${src}:\n${r.stderr}`);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, os.cpus().length) }, worker));
  if (failures.length) {
    process.stderr.write(`fuzz: compilation failed\n${failures.join('\n')}`);
    process.exit(1);
  }
  const binaries = {};
  for (const t of targets) {
    const bin = path.join(OUT, `${t}_fuzzer`);
    const objects = [TARGETS[t].harness, ...TARGETS[t].sources].map(objectOf);
    const newest = Math.max(...objects.map((o) => fs.statSync(o).mtimeMs));
    if (!fs.existsSync(bin) || fs.statSync(bin).mtimeMs < newest) {
      const r = await run(cxx, ['-fsanitize=fuzzer,address,undefined', ...objects, '-pthread', '-o', bin]);
      if (r.code !== 0) {
        process.stderr.write(`fuzz: linking ${t} failed\n${r.stderr}`);
        process.exit(1);
      }
    }
    binaries[t] = bin;
  }
  return binaries;
}

/** The kept crash cases of a target (every file in its folder). */
function regressionFiles(target) {
  const dir = path.join(REGRESSIONS, target);
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir).sort().map((f) => path.join(dir, f)).filter((f) => fs.statSync(f).isFile());
}

/** Runs each kept case once; libFuzzer exits non-zero on a crash, a sanitizer report or a timeout. */
function replay(target, bin) {
  const files = regressionFiles(target);
  if (files.length === 0) return { target, cases: 0, ok: true };
  const r = spawnSync(bin, ['-timeout=10', '-rss_limit_mb=2048', '-malloc_limit_mb=1024', ...files], { encoding: 'utf8' });
  if (r.status !== 0) process.stderr.write(`fuzz: ${target} crashed on a regression case:\n${r.stderr.split('\n').slice(-40).join('\n')}\n`);
  return { target, cases: files.length, ok: r.status === 0 };
}

function stat(log, name) {
  const m = new RegExp(`stat::${name}:\\s+(\\d+)`).exec(log);
  return m ? Number(m[1]) : undefined;
}

async function fuzz(target, bin, o) {
  const corpus = path.join(OUT, 'corpus', target);
  const seeds = path.join(OUT, 'seeds', target);
  const artifacts = path.join(OUT, 'artifacts', target);
  for (const d of [corpus, seeds, artifacts, path.join(OUT, 'logs')]) fs.mkdirSync(d, { recursive: true });
  const args = [`-max_total_time=${Math.round(o.seconds)}`, `-max_len=${TARGETS[target].maxLen}`, '-timeout=10', '-rss_limit_mb=2048',
    '-malloc_limit_mb=1024', '-print_final_stats=1', `-dict=${path.join(ROOT, 'fuzz', `${target}.dict`)}`, `-artifact_prefix=${artifacts}/`];
  if (o.fork > 0) args.push(`-fork=${o.fork}`, '-ignore_crashes=0');
  args.push(corpus, seeds);
  process.stdout.write(`fuzzing ${target} for ${Math.round(o.seconds)} s (log: build-fuzz/logs/${target}.log)\n`);
  const before = new Set(fs.readdirSync(artifacts));
  const t0 = Date.now();
  const r = await run(bin, args);
  const seconds = (Date.now() - t0) / 1000;
  fs.writeFileSync(path.join(OUT, 'logs', `${target}.log`), r.stderr);
  const found = fs.readdirSync(artifacts).filter((f) => !before.has(f)).map((f) => path.join(artifacts, f));
  const execs = stat(r.stderr, 'number_of_executed_units') ?? Number(/#(\d+)\s+DONE/.exec(r.stderr)?.[1] ?? NaN);
  return { target, seconds, execs, perSecond: execs / seconds, corpus: fs.readdirSync(corpus).length, found, ok: r.code === 0 && found.length === 0 };
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const cxx = findClang();
  const binaries = await build(cxx, o.targets);

  const replays = o.targets.map((t) => replay(t, binaries[t]));
  for (const r of replays) process.stdout.write(`replayed ${r.cases} regression case(s) of ${r.target}: ${r.ok ? 'ok' : 'CRASHED'}\n`);
  if (replays.some((r) => !r.ok)) process.exit(1);
  if (o.replay) return;

  if (fs.existsSync(o.models)) {
    const counts = writeSeeds(o.models, path.join(OUT, 'seeds'));
    process.stdout.write(`seeds from ${o.models}: ${Object.entries(counts).map(([t, n]) => `${t} ${n}`).join(', ')}\n`);
  } else {
    process.stdout.write(`warning: no model files at ${o.models} (set PEFT_TEST_MODELS): fuzzing from the regression cases only\n`);
  }
  for (const t of o.targets) {
    const seeds = path.join(OUT, 'seeds', t);
    fs.mkdirSync(seeds, { recursive: true });
    for (const f of regressionFiles(t)) fs.copyFileSync(f, path.join(seeds, `regression-${path.basename(f)}`));
  }

  const results = [];
  for (const t of o.targets) results.push(await fuzz(t, binaries[t], o));
  process.stdout.write('\ntarget        seconds      execs    exec/s  corpus  result\n');
  for (const r of results) {
    process.stdout.write(`${r.target.padEnd(12)} ${r.seconds.toFixed(0).padStart(8)} ${String(r.execs).padStart(10)} ${r.perSecond.toFixed(0).padStart(9)} ` +
      `${String(r.corpus).padStart(7)}  ${r.ok ? 'clean' : `FINDINGS: ${r.found.join(', ') || 'see the log'}`}\n`);
  }
  const bad = results.filter((r) => !r.ok);
  if (bad.length) {
    process.stdout.write('\nReproduce with build-fuzz/<target>_fuzzer <file> (PEFT_FUZZ_VERBOSE=1 prints the outcome); once fixed, keep the\n' +
      'input as a regression case in test/fixtures/fuzz-regressions/<target>/ and list it in its index.json.\n');
    process.exit(1);
  }
}

main().catch((err) => {
  process.stderr.write(`fuzz: ${err.stack}\n`);
  process.exit(1);
});
