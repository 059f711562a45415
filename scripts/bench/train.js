'use strict';
// `npm run bench:train`: one PEFT training step (forward, backward, AdamW) on a random-weight model
// with SmolLM-135M's shapes cut to 4 layers, batch 4 x 256 tokens: LoRA r8 on q,v; LoRA r16 on all
// linear layers; QLoRA (NF4, double quantization, bf16 compute) r16 on all linear layers; DoRA r8 on
// q,v; prompt tuning with 20 virtual tokens. Ours through the public API against the same model and
// methods written in PyTorch (train_ref.py) in fp32 and in bf16 autocast. Every (case,
// implementation) runs in a process of its own, so each peak RSS is its own; the cases run in
// rounds (ours, torch fp32, torch bf16 for one case, then the next) so that a slow spell on a
// shared machine hits all alike. Prints markdown tables and writes .bench-out/train.json and
// .bench-out/train.md. See --help.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { onePerPhysicalCore } = require('./cpus');
const { measurePeaks, maxPeaks, withYardsticks } = require('./peak');
const { findTorch } = require('./torch_ref');
const { CASES, MODELS, SHAPE, RUN, configureRun, writeModel } = require('./train-model');
const { runOurs } = require('./train-ours');
const { MODES, runTorch } = require('./train-torch');
const { summarize, markdownTables, machineLines } = require('./train-report');
const { num } = require('./table');

const root = path.resolve(__dirname, '..', '..');

const HELP = `usage: npm run bench:train -- [options]

  --cases=LIST       of ${CASES.map((c) => c.id).join(',')} (default all)
  --model=ID         of ${Object.keys(MODELS).join(',')} (default 135m-4l: SmolLM-135M's shapes, 4 layers)
  --batch=N          sequences per step (default 4)
  --seq=N            tokens per sequence (default 256)
  --checkpointing    activation checkpointing on both sides (torch.utils.checkpoint per layer)
  --steps=N          our timed steps per case and round (default 3; after 1 warm-up step)
  --ref-steps=N      PyTorch fp32 timed steps per case and round (default 2; after 1 warm-up step)
  --bf16-steps=N     PyTorch bf16-autocast timed steps (default 1: on CPUs without bf16 units a step
                     takes minutes)
  --rounds=N         repetitions of the whole sweep, interleaved (default 1)
  --modes=LIST       PyTorch modes, of fp32,bf16 (default both)
  --no-torch         ours only
  --torch-timeout=S  stop a PyTorch run after S seconds and report it as stopped (default: no limit)
  --json=PATH        (default .bench-out/train.json; the tables go beside it as .md)
  --quick            1 timed step each, fp32 reference only
  --report=PATH      print and write the tables again from an earlier run's JSON (runs nothing)
  --help
`;

function parseArgs(argv) {
  const opts = {
    cases: CASES.map((c) => c.id), steps: 3, refSteps: 2, bf16Steps: 1, rounds: 1, modes: [...MODES], torch: true, torchTimeout: 0,
    run: { model: '135m-4l', batch: 4, seq: 256, checkpointing: false },
    json: path.join(root, '.bench-out', 'train.json'), help: false,
  };
  const int = (v, what) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new Error(`Expected a positive integer for ${what} but received ${v}`);
    return n;
  };
  for (const arg of argv) {
    const eq = arg.indexOf('=');
    const [key, value] = eq < 0 ? [arg, null] : [arg.slice(0, eq), arg.slice(eq + 1)];
    if (key === '--help' || key === '-h') opts.help = true;
    else if (key === '--cases' && value) opts.cases = value.split(',').filter(Boolean);
    else if (key === '--steps') opts.steps = int(value, '--steps');
    else if (key === '--model' && value) opts.run.model = value;
    else if (key === '--batch') opts.run.batch = int(value, '--batch');
    else if (key === '--seq') opts.run.seq = int(value, '--seq');
    else if (key === '--checkpointing') opts.run.checkpointing = true;
    else if (key === '--ref-steps') opts.refSteps = int(value, '--ref-steps');
    else if (key === '--bf16-steps') opts.bf16Steps = int(value, '--bf16-steps');
    else if (key === '--rounds') opts.rounds = int(value, '--rounds');
    else if (key === '--modes' && value) opts.modes = value.split(',').filter(Boolean);
    else if (key === '--no-torch') opts.torch = false;
    else if (key === '--torch-timeout') opts.torchTimeout = int(value, '--torch-timeout');
    else if (key === '--json' && value) opts.json = path.resolve(value);
    else if (key === '--report' && value) opts.report = path.resolve(value);
    else if (key === '--quick') Object.assign(opts, { steps: 1, refSteps: 1, bf16Steps: 1, rounds: 1, modes: ['fp32'] });
    else throw new Error(`Unknown option ${arg} (see --help)`);
  }
  if (!MODELS[opts.run.model]) throw new Error(`Expected a model among ${Object.keys(MODELS).join(', ')} but received ${opts.run.model}`);
  for (const id of opts.cases) if (!CASES.some((c) => c.id === id)) throw new Error(`Expected cases among ${CASES.map((c) => c.id).join(', ')} but received ${id}`);
  for (const m of opts.modes) if (!MODES.includes(m)) throw new Error(`Expected modes among ${MODES.join(', ')} but received ${m}`);
  return opts;
}

const progress = (text) => process.stderr.write(`  ${text}\n`);
const seconds = (times) => times.map((t) => t.toFixed(2)).join(', ');

function cpuModel() {
  const line = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('model name'));
  return line ? line.split(':')[1].trim() : os.cpus()[0]?.model ?? 'unknown';
}

/** The best of three peak measurements: on a shared machine any one of them may catch a slow spell. */
function measurePeaksBest(features, cpus) {
  let best = measurePeaks(features, cpus);
  for (let i = 0; i < 2; i++) best = maxPeaks(best, measurePeaks(features, cpus));
  return best;
}

/** Writes a file whole or not at all (temporary file, fsync, rename). */
function writeAtomic(file, text) {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.tmp-${process.pid}`;
  const fd = fs.openSync(tmp, 'w');
  fs.writeSync(fd, text);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, file);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) return void process.stdout.write(HELP);
  if (opts.report) {
    const saved = JSON.parse(fs.readFileSync(opts.report, 'utf8'));
    const ids = Object.keys(saved.runs);
    return render(saved, CASES.filter((c) => ids.includes(c.id)), opts.json);
  }
  if (process.platform !== 'linux') throw new Error('bench:train reads peak memory from /proc: Linux only');
  configureRun(opts.run);
  const dist = require(path.join(root, 'dist'));
  const { runtime } = dist;
  const threads = runtime.numThreads();
  const features = runtime.cpuFeatures();
  const started = Date.now();
  const load = [os.loadavg()[0]];
  const cases = CASES.filter((c) => opts.cases.includes(c.id));
  const torch = opts.torch ? findTorch() : { available: false, reason: 'skipped (--no-torch)' };
  const modes = torch.available ? opts.modes : [];
  console.log(`peft-native training benchmark: ${cpuModel()}, ${threads} threads, load average ${load[0].toFixed(1)}`);
  if (!torch.available) console.log(`PyTorch reference: ${torch.reason}; timing ours only`);

  const cpus = onePerPhysicalCore();
  progress('measuring peak');
  const peaksBefore = measurePeaksBest(features, cpus);

  const modelDir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-bench-train-'));
  process.on('exit', () => fs.rmSync(modelDir, { recursive: true, force: true }));
  progress('writing the model');
  await writeModel(modelDir, dist);

  const runs = Object.fromEntries(cases.map((c) => [c.id, { ours: [], torch: Object.fromEntries(modes.map((m) => [m, []])) }]));
  for (let round = 0; round < opts.rounds; round++) {
    for (const c of cases) {
      const tag = `round ${round + 1}/${opts.rounds}, ${c.title}`;
      progress(`${tag}: ours`);
      const r = runOurs({ case: c.id, model: modelDir, warmup: 1, steps: opts.steps, run: RUN });
      progress(r.error ? `    failed: ${r.error}` : `    ${seconds(r.times)} s`);
      runs[c.id].ours.push({ ...r, loadAverage: os.loadavg()[0] });
      for (const mode of modes) {
        progress(`${tag}: torch ${mode}`);
        const t = runTorch(torch.python, { c, mode, model: modelDir, threads, warmup: 1, steps: mode === 'bf16' ? opts.bf16Steps : opts.refSteps, timeoutS: opts.torchTimeout });
        progress(t.error ? `    failed: ${t.error}` : `    ${seconds(t.times)} s`);
        runs[c.id].torch[mode].push({ ...t, loadAverage: os.loadavg()[0] });
      }
      load.push(os.loadavg()[0]);
    }
  }

  progress('measuring peak again');
  const peaks = maxPeaks(peaksBefore, measurePeaksBest(features, cpus));
  const report = {
    meta: {
      date: new Date().toISOString(), cpu: cpuModel(), features, isa: runtime.getIsa(), threads, node: process.version,
      python: torch.available ? torch.python : null, torchReason: torch.available ? null : torch.reason, shape: { ...SHAPE }, batch: RUN.batch, seq: RUN.seq, run: { ...RUN },
      opts, modes, loadAverage: load, seconds: (Date.now() - started) / 1000,
    },
    peak: peaks,
    runs,
  };
  render(report, cases, opts.json);
}

/** Summarizes a run (fresh, or read back with --report), prints the tables and writes the JSON and markdown. */
function render(report, cases, json) {
  const { meta, peak: peaks, runs } = report;
  const modes = meta.modes ?? Object.keys(Object.values(runs)[0]?.torch ?? {});
  // The yardstick for our thread count: the all-threads measurement, or the single-thread one times
  // the threads where that is higher (on a loaded machine the threads of the all-core loop share
  // cores with other work and measure low; one FMA loop per core scales linearly on an idle one).
  const yardstick = (p) => (p ? Math.max(p.all, p.single * meta.threads) : null);
  // Against the peak of the instructions the run's kernels use (a PEFT_ISA=avx2 run: AVX2's).
  const forIsa = peaks.variants ? withYardsticks(peaks.variants, meta.isa) : peaks;
  const yard = { f32: yardstick(forIsa.f32), bf16: yardstick(forIsa.bf16) };
  const run = { shape: meta.shape, batch: meta.batch, seq: meta.seq };
  const summaries = cases.map((c) => summarize(c, runs[c.id].ours, runs[c.id].torch, yard, run));
  const torchInfo = modes.length ? Object.values(runs).flatMap((r) => Object.values(r.torch).flat()).find((t) => !t.error) : null;
  const o = meta.opts;
  const header = [
    `# Training step: ${MODELS[meta.run?.model ?? '135m-4l'].title}, batch ${meta.batch} x ${meta.seq}, AdamW${meta.run?.checkpointing ? ', activation checkpointing' : ''}`,
    '',
    `${meta.date}; ${meta.cpu}; ${meta.threads} threads (ours and torch); load average ${Math.min(...meta.loadAverage).toFixed(1)}–${Math.max(...meta.loadAverage).toFixed(1)}` +
      ` over the run; ${o.rounds} round(s): ours ${o.steps} step(s), torch fp32 ${o.refSteps}, bf16 ${o.bf16Steps} per round, each after a warm-up step.`,
    `Peak (peak.js, better of before and after; kernels ${meta.isa}): f32 ${num(forIsa.f32.single)} GFLOP/s on 1 thread, ${num(forIsa.f32.all)} on all;` +
      ` yardstick for ${meta.threads} threads ${num(yard.f32)} (f32), ${num(yard.bf16)} (bf16, ${forIsa.bf16.via}): the higher of all-threads and ${meta.threads} x 1 thread.`,
    torchInfo ? `PyTorch ${torchInfo.version} (${meta.python}), attention by ${torchInfo.attention}.` : `PyTorch: ${meta.python ? 'every run failed' : meta.torchReason ?? 'not run'}.`,
    '',
    'tok/s: real tokens (batch x seq; prompt tuning\'s virtual tokens not counted) / median step time (forward + backward + optimizer);',
    'peak RSS: VmHWM of the process running the case (runtime and model load included).',
    '',
  ];
  const lines = [...header, ...markdownTables(summaries, modes)];
  const losses = summaries.map((s) => `${s.id} ${s.ours.loss0?.toFixed(5) ?? '-'} / ${s.torch.fp32?.loss0?.toFixed(5) ?? '-'}`);
  lines.push('', `First-step loss, ours / torch fp32 (same weights and tokens; prompt tuning's virtual tokens differ): ${losses.join('; ')}`);
  console.log(`\n${lines.join('\n')}`);
  // For scripts: one key=value line per case.
  console.log(`\n${machineLines(summaries).join('\n')}`);
  meta.torch = torchInfo?.version ?? null;
  writeAtomic(json, `${JSON.stringify({ ...report, results: summaries }, null, 2)}\n`);
  const md = json.replace(/\.json$/, '') + '.md';
  writeAtomic(md, `${lines.join('\n')}\n`);
  console.log(`\n${meta.seconds.toFixed(0)} s; results in ${path.relative(process.cwd(), json)} and ${path.relative(process.cwd(), md)}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});
