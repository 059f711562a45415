'use strict';
// `npm run bench:scale`: the training benchmark (train.js) at model scale: LoRA r8 on q,v and QLoRA
// r16 on all linear layers (NF4, double quantization, bf16 compute) for SmolLM-135M (all 30 layers),
// SmolLM-360M and SmolLM-1.7B shapes (random weights), batch 1 x 256, with and without activation
// checkpointing, against the same steps in PyTorch fp32 (train_ref.py; skipped without torch). Each
// configuration is one train.js run (its JSON in .bench-out/scale/); this prints the table of
// tokens/s and peak RSS and writes .bench-out/scale.md.
//
//   npm run bench:scale -- [--models=135m,360m,1.7b] [--cases=lora-qv,qlora] [--no-torch]
//                          [--torch-timeout=S] [--report]
// A PyTorch run is stopped after --torch-timeout seconds (default 420: the 1.7B NF4 reference, a
// dequantization in Python per forward, takes longer than that per step) and reported as stopped.
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const { MODELS } = require('./train-model');
const { renderMarkdown, num, ratio } = require('./table');

const root = path.resolve(__dirname, '..', '..');
const OUT = path.join(root, '.bench-out', 'scale');

function parseArgs(argv) {
  const opts = { models: ['135m', '360m', '1.7b'], cases: ['lora-qv', 'qlora'], torch: true, torchTimeout: 420, report: false };
  for (const a of argv) {
    const [k, v] = a.replace(/^--/, '').split('=');
    if (k === 'models') opts.models = v.split(',');
    else if (k === 'cases') opts.cases = v.split(',');
    else if (k === 'no-torch') opts.torch = false;
    else if (k === 'torch-timeout') opts.torchTimeout = Number(v);
    else if (k === 'report') opts.report = true;
    else throw new Error(`unknown option ${a}: --models=, --cases=, --no-torch, --torch-timeout=, --report`);
  }
  if (!Number.isInteger(opts.torchTimeout) || opts.torchTimeout < 1) throw new Error(`Expected a positive whole number of seconds for --torch-timeout but received ${opts.torchTimeout}`);
  for (const m of opts.models) if (!MODELS[m]) throw new Error(`unknown model ${m}: ${Object.keys(MODELS).join(', ')}`);
  return opts;
}

const jsonOf = (model, checkpointing) => path.join(OUT, `${model}${checkpointing ? '-ckpt' : ''}.json`);

function run(model, checkpointing, opts) {
  const args = [path.join(__dirname, 'train.js'), `--model=${model}`, '--batch=1', '--seq=256', `--cases=${opts.cases.join(',')}`,
    '--steps=2', '--ref-steps=1', '--modes=fp32', `--json=${jsonOf(model, checkpointing)}`];
  if (checkpointing) args.push('--checkpointing');
  if (!opts.torch) args.push('--no-torch');
  else args.push(`--torch-timeout=${opts.torchTimeout}`);
  process.stderr.write(`bench:train --model=${model}${checkpointing ? ' --checkpointing' : ''}\n`);
  const r = spawnSync(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  if (r.status !== 0) process.stderr.write(`  failed (exit ${r.status})\n`);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  fs.mkdirSync(OUT, { recursive: true });
  if (!opts.report) for (const model of opts.models) for (const ckpt of [false, true]) run(model, ckpt, opts);
  const MiB = 2 ** 20;
  const rows = [];
  let cpu = '';
  for (const model of opts.models) {
    for (const ckpt of [false, true]) {
      const file = jsonOf(model, ckpt);
      if (!fs.existsSync(file)) continue;
      const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
      cpu = saved.meta.cpu;
      for (const s of saved.results) {
        const t = s.torch.fp32;
        const mem = (x) => (x && !x.error && x.peakRss ? `${num(x.peakRss / MiB, 0)} MiB` : '-');
        const torchCell = !t ? '-' : !t.error ? num(t.tokensPerSecond, 1) : t.stopped ? t.error : 'failed';
        rows.push([MODELS[model].title, s.title, ckpt ? 'yes' : 'no', num(s.ours.tokensPerSecond, 1), torchCell,
          t?.oursRatio ? ratio(t.oursRatio) : '-', mem(s.ours), mem(t)]);
      }
    }
  }
  const lines = [
    `Batch 1 x 256 tokens, AdamW, ${cpu}; ours and PyTorch fp32 with the same threads.`,
    '',
    ...renderMarkdown(['model', 'method', 'checkpointing', 'ours tok/s', 'PyTorch fp32 tok/s', 'ours / fp32', 'peak RSS ours', 'peak RSS PyTorch'].map((title, i) => ({ title, right: i > 2 })), rows),
  ];
  console.log(lines.join('\n'));
  fs.writeFileSync(path.join(root, '.bench-out', 'scale.md'), lines.join('\n') + '\n');
}

main();
