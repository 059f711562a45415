'use strict';
// Our side of the training benchmark, one case per child process (so its peak RSS is its own):
// loadModel (QLoRA: quantized on load), getPeftModel, then training steps as the Trainer takes
// them: peft.loss (forward, cross-entropy, backward) and the fused native AdamW over the trainable
// parameters. The timed steps run with the native phase profiler on (a few clock reads per call).
//
//   node scripts/bench/train-ours.js '{"case": "lora-qv", "model": DIR, "warmup": 1, "steps": 3, "run": {"model": "135m", "batch": 1, "seq": 256, "checkpointing": true}}'
// prints one JSON line: { times, cpuTimes, losses, loss0, trainable, threads, rssBase, rssLoaded, peakAfterWarmup, peakRss, phases }.
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const { CASES, LR, configureRun, peftConfig, loadOptions, tokenIds, memoryStatus } = require('./train-model');

const root = path.resolve(__dirname, '..', '..');

/** Runs one case in a child process; returns its JSON (or { error }). */
function runOurs(job) {
  const r = spawnSync(process.execPath, [__filename, JSON.stringify(job)], { encoding: 'utf8', maxBuffer: 1 << 24, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error || r.status !== 0) return { error: `${r.error ? r.error.message : `exit ${r.status}`}: ${(r.stderr || '').trim().split('\n').slice(-3).join(' | ')}` };
  return JSON.parse(r.stdout.trim().split('\n').pop());
}

async function child(job) {
  if (job.run) configureRun(job.run);
  const rssBase = memoryStatus().rss;
  const dist = require(path.join(root, 'dist'));
  const { native } = require(path.join(root, 'dist', 'native'));
  const { loadModel, getPeftModel, ops, zeros, runtime } = dist;
  const c = CASES.find((x) => x.id === job.case);
  const model = await loadModel(job.model, loadOptions(c));
  if (job.run?.checkpointing) model.setGradientCheckpointing(true);
  const peft = getPeftModel(model, peftConfig(c), { seed: 1 });
  peft.train();
  const params = peft.trainableParameters();
  const names = Object.keys(params);
  const list = names.map((n) => params[n]);
  const state = { expAvg: list.map((p) => zeros(p.shape)), expAvgSq: list.map((p) => zeros(p.shape)) };
  const ids = tokenIds();
  const rssLoaded = memoryStatus().rss;
  let count = 0;
  const cpuTimes = [];  // CPU seconds of the process per step: on a shared machine, how much of it we got
  const step = async () => {
    const t0 = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    const { grads, loss } = await peft.loss(ids);
    await ops.adamwAsync(list, names.map((n) => grads[n]), state, { lr: LR, weightDecay: 0, step: ++count });
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    cpuTimes.push((cpu.user + cpu.system) / 1e6);
    if (!Number.isFinite(loss)) throw new Error(`loss ${loss} at step ${count}`);
    return { seconds, loss };
  };
  const losses = [];
  for (let i = 0; i < job.warmup; i++) losses.push((await step()).loss);
  const peakAfterWarmup = memoryStatus().peak;
  native.resetProfile();
  native.setProfiling(true);
  const times = [];
  for (let i = 0; i < job.steps; i++) {
    const s = await step();
    times.push(s.seconds);
    losses.push(s.loss);
  }
  native.setProfiling(false);
  const phases = Object.fromEntries(Object.entries(native.profile()).map(([k, v]) => [k, v.ns / 1e9]));
  const mem = memoryStatus();
  process.stdout.write(JSON.stringify({
    times, cpuTimes: cpuTimes.slice(job.warmup), losses, loss0: losses[0], trainable: list.reduce((n, p) => n + p.size, 0), threads: runtime.numThreads(),
    rssBase, rssLoaded, peakAfterWarmup, peakRss: mem.peak, phases,
  }) + '\n');
}

if (require.main === module) {
  child(JSON.parse(process.argv[2])).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}

module.exports = { runOurs };
