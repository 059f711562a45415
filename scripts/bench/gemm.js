'use strict';
// `npm run bench`: our GEMM and fused LoRA forward against this machine's measured peak, OpenBLAS
// and PyTorch. Prints tables and writes .bench-out/gemm.json. See --help for the options.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const { parseArgs, HELP } = require('./args');
const { onePerPhysicalCore } = require('./cpus');
const { measurePeaks, maxPeaks } = require('./peak');
const { measureOurs, measureTorch, progress } = require('./measure');
const { printPeaks, gemmRows, printGemm, printReferences, printLowrank } = require('./report');
const { NORMAL, QUICK } = require('./timing');

const root = path.resolve(__dirname, '..', '..');

// glibc gives the top of the heap back to the OS (trim) depending on the order of earlier frees, so
// calls that allocate their outputs (the LoRA table's) would land on fresh, faulting pages or on
// reused ones by their position in a round: a skew of up to 30% on the small shapes. Fixed
// thresholds make every call of a size behave alike; glibc reads them at start-up, hence re-exec.
const STABLE_MALLOC = { MALLOC_TRIM_THRESHOLD_: String(2 ** 31), MALLOC_MMAP_THRESHOLD_: String(32 * 2 ** 20) };

function reexecWithStableMalloc() {
  if (process.platform !== 'linux' || process.env.MALLOC_TRIM_THRESHOLD_ !== undefined) return false;
  const r = spawnSync(process.execPath, process.argv.slice(1), { stdio: 'inherit', env: { ...process.env, ...STABLE_MALLOC } });
  process.exitCode = r.status ?? 1;
  return true;
}

function cpuModel() {
  try {
    const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
    return line ? line.split(':')[1].trim() : os.cpus()[0].model;
  } catch {
    return os.cpus()[0]?.model ?? 'unknown';
  }
}

function binaryPath() {
  if (process.env.PEFT_NATIVE_BINARY) return path.resolve(process.env.PEFT_NATIVE_BINARY);
  try {
    return require('node-gyp-build').resolve(root);
  } catch {
    return 'unknown';
  }
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    process.stdout.write(HELP);
    return;
  }
  const { runtime } = require('../../dist');
  if (opts.isa) runtime.setIsa(opts.isa);
  const timing = opts.quick ? QUICK : NORMAL;
  const features = runtime.cpuFeatures();
  const threads = runtime.numThreads();
  const started = Date.now();

  console.log(`peft-native GEMM benchmark${opts.quick ? ' (--quick)' : ''}`);
  console.log(`CPU: ${cpuModel()}, ${features.physicalCores} physical cores; kernels: ${runtime.getIsa()} (supported: ${runtime.supportedIsas().join(', ')}), ${threads} threads`);
  console.log(`addon: ${path.relative(root, binaryPath()) || binaryPath()}`);

  const cpus = onePerPhysicalCore();
  const peakSeconds = opts.quick ? 0.1 : 0.3;
  progress('measuring peak');
  const peaksBefore = measurePeaks(features, cpus, { seconds: peakSeconds });

  const ours = measureOurs(opts, timing, threads);
  const { openblas } = ours;
  const none = { info: { available: false, reason: 'skipped (--no-refs)' }, results: new Map() };
  const torch = opts.refs ? measureTorch(opts, timing, threads) : none;

  // Measured again at the end, keeping the better of the two (see maxPeaks).
  progress('measuring peak again');
  const peaksAfter = measurePeaks(features, cpus, { seconds: peakSeconds });
  const peaks = maxPeaks(peaksBefore, peaksAfter, runtime.getIsa());
  printPeaks(peaks, cpus ? cpus.length : features.physicalCores);

  const rows = gemmRows(opts, peaks, ours.gemm, openblas.results, torch.results);
  printGemm(rows, threads);
  printReferences(openblas.info, torch.info);
  if (ours.lowrank.length > 0) printLowrank(ours.lowrank);

  const seconds = (Date.now() - started) / 1000;
  const out = path.resolve(root, opts.json ?? '.bench-out/gemm.json');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const meta = {
    date: new Date().toISOString(),
    cpu: cpuModel(),
    features,
    isa: runtime.getIsa(),
    threads,
    node: process.version,
    addon: binaryPath(),
    quick: opts.quick,
    timing,
    rounds: opts.rounds,
    malloc: { MALLOC_TRIM_THRESHOLD_: process.env.MALLOC_TRIM_THRESHOLD_, MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ },
    seconds,
  };
  const report = {
    meta,
    peak: { ...peaks, before: peaksBefore.variants, after: peaksAfter.variants },
    gemm: rows,
    lowrank: ours.lowrank,
    references: { openblas: openblas.info, torch: torch.info },
  };
  fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
  console.log(`\n${seconds.toFixed(0)} s; results in ${path.relative(process.cwd(), out)}`);
}

try {
  if (!reexecWithStableMalloc()) main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
}
