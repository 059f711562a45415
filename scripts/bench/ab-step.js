'use strict';
// `node scripts/bench/ab-step.js A.node B.node [case] [steps]`: two builds of the addon in one
// process, training the benchmark's model (train-model.js) with alternating steps, A then B, then
// B then A. On a shared machine the same build gives ±10% from one run to the next, but both sides
// here see the same slow spells, so the median of the paired ratios A/B moves by about 1% between
// two copies of one build: small changes can be measured. The model directory is written once
// under .bench-out/ab-model. Prints medians, best steps, the paired speedup of B and whether the
// two sides' losses are bit-identical. AB_ISA_A / AB_ISA_B set each side's PEFT_ISA (give two copies
// of one build, at different paths, to compare instruction sets: one path loads once per process).
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const { CASES, LR, peftConfig, loadOptions, tokenIds, writeModel } = require('./train-model');

/** A fresh copy of dist/ bound to the addon at `binary` (lib/native.ts reads PEFT_NATIVE_BINARY when first required). */
function loadDist(binary, isa) {
  process.env.PEFT_NATIVE_BINARY = path.resolve(binary);
  if (isa) process.env.PEFT_ISA = isa;  // read when the addon loads
  else delete process.env.PEFT_ISA;
  const dist = path.join(root, 'dist') + path.sep;
  for (const key of Object.keys(require.cache)) if (key.startsWith(dist)) delete require.cache[key];
  return require(path.join(root, 'dist'));
}

async function side(binary, c, modelDir, isa) {
  const dist = loadDist(binary, isa);
  const model = await dist.loadModel(modelDir, loadOptions(c));
  const peft = dist.getPeftModel(model, peftConfig(c), { seed: 1 });
  peft.train();
  const params = peft.trainableParameters();
  const names = Object.keys(params);
  const list = names.map((n) => params[n]);
  const state = { expAvg: list.map((p) => dist.zeros(p.shape)), expAvgSq: list.map((p) => dist.zeros(p.shape)) };
  let count = 0;
  const step = async () => {
    const t0 = process.hrtime.bigint();
    const { grads, loss } = await peft.loss(tokenIds());
    await dist.ops.adamwAsync(list, names.map((n) => grads[n]), state, { lr: LR, weightDecay: 0, step: ++count });
    return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, loss };
  };
  return { step, times: [], losses: [] };
}

const median = (values) => [...values].sort((a, b) => a - b)[values.length >> 1];

async function main() {
  const [a, b, caseId = 'lora-qv', stepsArg = '6'] = process.argv.slice(2);
  const c = CASES.find((x) => x.id === caseId);
  const steps = Number(stepsArg);
  if (!a || !b || !fs.existsSync(a) || !fs.existsSync(b) || !c || !(Number.isInteger(steps) && steps > 0)) {
    throw new Error(`usage: node scripts/bench/ab-step.js A.node B.node [${CASES.map((x) => x.id).join('|')}] [steps]`);
  }
  const modelDir = path.join(root, '.bench-out', 'ab-model');
  if (!fs.existsSync(path.join(modelDir, 'model.safetensors'))) await writeModel(modelDir, loadDist(a));
  const sides = [await side(a, c, modelDir, process.env.AB_ISA_A), await side(b, c, modelDir, process.env.AB_ISA_B)];
  for (const s of sides) await s.step();  // warm-up
  for (let i = 0; i < steps; i++) {
    for (const s of i % 2 ? [...sides].reverse() : sides) {
      const r = await s.step();
      s.times.push(r.seconds);
      s.losses.push(r.loss);
    }
  }
  const [sa, sb] = sides;
  const speedup = median(sa.times.map((t, i) => t / sb.times[i]));
  const fmt = (s) => `median ${median(s.times).toFixed(3)} s, best ${Math.min(...s.times).toFixed(3)} s`;
  console.log(`${c.title}, ${steps} paired steps`);
  console.log(`A ${fmt(sa)}`);
  console.log(`B ${fmt(sb)}`);
  console.log(`B's speedup (median of paired A/B step-time ratios): ${speedup.toFixed(3)}`);
  console.log(`losses bit-identical: ${sa.losses.every((l, i) => l === sb.losses[i])}`);
}

main().catch((err) => {
  console.error(err.message);
  process.exit(1);
});
