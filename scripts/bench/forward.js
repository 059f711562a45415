'use strict';
// `npm run bench:forward`: forward throughput of whole models through the public API (loadModel,
// model.generate, model.forward) against node-llama-cpp loading the same GGUF in the same run:
// prompt processing (a 512-token prompt into the KV cache) and decoding (tokens per second after
// the first), on stories260K and on a random-weight model with SmolLM-135M's shapes. Prints a table
// of ratios and writes .bench-out/forward.json. See --help.
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { findNodeLlamaCpp, llamaRunner } = require('./forward-llama');
const { oursRunner } = require('./forward-ours');
const { defaultPath, makeSmollmGguf } = require('./make-smollm-gguf');
const { renderTable, num, ratio } = require('./table');
const { median } = require('./timing');

const root = path.resolve(__dirname, '..', '..');

const HELP = `usage: npm run bench:forward -- [options]

  --llama-cpp=DIR    node-llama-cpp to compare with: its package folder or a folder whose
                     node_modules holds it (or NODE_LLAMA_CPP_DIR); without it only ours is timed
  --models=LIST      of stories,smollm (default both)
  --dtype=f32|f16    weights of the SmolLM-shaped model (default f32; made in .bench-out/ if missing)
  --stories=PATH     stories260K.gguf (default ../shared/models/stories260K/stories260K.gguf)
  --prompt=N         prompt-processing length (default 512; at most the model's context - 1)
  --decode=N         tokens generated for the decoding speed (default 64)
  --reps=N           timed repetitions, median reported (default 3; --quick: 1)
  --threads=N        threads for both libraries (default 2)
  --json=PATH        where to write the results (default .bench-out/forward.json)
  --quick
  --help
`;

const TEXT =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the sun with her dog, Max. ' +
  'One day, they found a big red ball in the park. "Can we keep it?" Lily asked her mom. Mom smiled and said yes. ';

function parseArgs(argv) {
  const opts = {
    llamaCpp: process.env.NODE_LLAMA_CPP_DIR ?? null,
    models: ['stories', 'smollm'],
    dtype: 'F32',
    stories: path.join(process.env.PEFT_TEST_MODELS ?? path.resolve(root, '..', 'shared', 'models'), 'stories260K', 'stories260K.gguf'),
    prompt: 512,
    decode: 64,
    reps: 3,
    threads: 2,
    json: path.join(root, '.bench-out', 'forward.json'),
    help: false,
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
    else if (key === '--quick') opts.reps = 1;
    else if (key === '--llama-cpp' && value) opts.llamaCpp = value;
    else if (key === '--models' && value) opts.models = value.split(',').filter(Boolean);
    else if (key === '--dtype' && /^(f32|f16)$/i.test(value ?? '')) opts.dtype = value.toUpperCase();
    else if (key === '--stories' && value) opts.stories = path.resolve(value);
    else if (key === '--prompt') opts.prompt = int(value, '--prompt');
    else if (key === '--decode') opts.decode = int(value, '--decode');
    else if (key === '--reps') opts.reps = int(value, '--reps');
    else if (key === '--threads') opts.threads = int(value, '--threads');
    else if (key === '--json' && value) opts.json = path.resolve(value);
    else throw new Error(`Unknown option ${arg} (see --help)`);
  }
  for (const m of opts.models) if (!['stories', 'smollm'].includes(m)) throw new Error(`Expected models among stories, smollm but received ${m}`);
  return opts;
}

const progress = (text) => process.stderr.write(`  ${text}\n`);

function commonPrefix(a, b) {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return i;
}

/** Times one model with ours and (when given) node-llama-cpp, interleaved repetition by repetition. */
async function benchModel(label, file, opts, pkg) {
  progress(`${label}: loading`);
  const ours = await oursRunner(file, opts.threads);
  const promptLen = Math.min(opts.prompt, ours.context - 1);
  let prompt = [];
  while (prompt.length < promptLen) prompt = prompt.concat(ours.tokenize(TEXT));
  prompt = prompt.slice(0, promptLen);
  const decodePrompt = prompt.slice(0, 16);
  const decodeLen = Math.min(opts.decode, ours.context - decodePrompt.length);
  const ref = pkg ? await llamaRunner(pkg, file, opts.threads, Math.max(promptLen + 1, decodePrompt.length + decodeLen + 1)) : null;

  const sample = `${TEXT}123 45,6 naïve café 🐶\n\tend`;
  const tokenizersAgree = ref ? JSON.stringify(ours.tokenize(sample)) === JSON.stringify(ref.tokenize(sample)) : null;

  progress(`${label}: warming up`);
  await ours.prefill(prompt);
  if (ref) await ref.prefill(prompt);
  const t = { oursPrefill: [], oursForward: [], oursDecode: [], refPrefill: [], refDecode: [] };
  let agree = null;
  for (let rep = 0; rep < opts.reps; rep++) {
    progress(`${label}: repetition ${rep + 1} of ${opts.reps}`);
    t.oursPrefill.push(await ours.prefill(prompt));
    if (ref) t.refPrefill.push(await ref.prefill(prompt));
    t.oursForward.push(await ours.forward(prompt));
    // Ours: the time for n tokens minus the time for 1, over n - 1 tokens.
    const one = await ours.generate(decodePrompt, 1);
    const many = await ours.generate(decodePrompt, decodeLen);
    t.oursDecode.push({ seconds: many.seconds - one.seconds, tokens: many.tokens.length - 1 });
    if (ref) {
      const r = await ref.generate(decodePrompt, decodeLen);
      t.refDecode.push({ seconds: r.seconds - r.firstSeconds, tokens: r.tokens.length - 1 });
      agree = { tokens: Math.min(many.tokens.length, r.tokens.length), samePrefix: commonPrefix(many.tokens, r.tokens) };
    }
  }
  await ours.dispose();
  if (ref) await ref.dispose();
  const rate = (n, secs) => n / median(secs);
  const decodeRate = (runs) => median(runs.map((r) => r.tokens / r.seconds));
  const result = {
    model: label,
    file,
    promptTokens: promptLen,
    decodeTokens: decodeLen,
    load: { ours: ours.loadSeconds, ref: ref?.loadSeconds ?? null },
    prefill: { ours: rate(promptLen, t.oursPrefill), ref: ref ? rate(promptLen, t.refPrefill) : null },
    forwardAllLogits: { ours: rate(promptLen, t.oursForward) },
    decode: { ours: decodeRate(t.oursDecode), ref: ref ? decodeRate(t.refDecode) : null },
    checks: { tokenizersAgree, greedy: agree },
    raw: t,
  };
  result.prefill.ratio = ref ? result.prefill.ours / result.prefill.ref : null;
  result.forwardAllLogits.ratio = ref ? result.forwardAllLogits.ours / result.prefill.ref : null;
  result.decode.ratio = ref ? result.decode.ours / result.decode.ref : null;
  return result;
}

function printResults(results, refName) {
  const rows = [];
  for (const r of results) {
    const target = (x, goal) => (x === null ? '-' : `${x >= goal ? 'meets' : 'below'} ${goal}x`);
    rows.push([r.model, `pp${r.promptTokens}`, num(r.prefill.ours), num(r.prefill.ref), ratio(r.prefill.ratio), target(r.prefill.ratio, 0.8)]);
    rows.push([r.model, `pp${r.promptTokens}, all logits`, num(r.forwardAllLogits.ours), num(r.prefill.ref), ratio(r.forwardAllLogits.ratio), '']);
    rows.push([r.model, `tg${r.decodeTokens}`, num(r.decode.ours), num(r.decode.ref), ratio(r.decode.ratio), target(r.decode.ratio, 0.7)]);
  }
  const columns = [
    { title: 'model' },
    { title: 'test' },
    { title: 'ours tok/s', right: true },
    { title: `${refName} tok/s`, right: true },
    { title: 'ours / ref', right: true },
    { title: 'target' },
  ];
  console.log(`\n${renderTable(columns, rows).join('\n')}`);
  console.log('\npp: the prompt into an empty KV cache (ours: model.generate with maxNewTokens 1; llama.cpp:');
  console.log('evaluateWithoutGeneratingNewTokens). "all logits": ours, model.forward (logits at every position).');
  console.log('tg: greedy decoding, tokens per second after the first token.');
  for (const r of results) {
    const c = r.checks;
    if (c.tokenizersAgree === null) continue;
    console.log(`${r.model}: tokenizers ${c.tokenizersAgree ? 'agree' : 'DISAGREE'}; greedy tokens identical for the first ${c.greedy.samePrefix} of ${c.greedy.tokens}`);
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) return void process.stdout.write(HELP);
  const pkg = findNodeLlamaCpp(opts.llamaCpp);
  const cpu = os.cpus()[0]?.model ?? 'unknown';
  console.log(`peft-native forward benchmark: ${opts.threads} threads, ${opts.reps} repetition(s), CPU ${cpu}, load average ${os.loadavg()[0].toFixed(1)}`);
  if (!pkg) {
    console.log(`node-llama-cpp: not found${opts.llamaCpp ? ` in ${opts.llamaCpp}` : ''}; timing ours only (install it outside this repository and pass --llama-cpp=DIR, see --help)`);
  }
  const models = [];
  if (opts.models.includes('stories')) {
    if (fs.existsSync(opts.stories)) models.push(['stories260K', opts.stories]);
    else console.log(`stories260K: ${opts.stories} not found (--stories=PATH); skipped`);
  }
  if (opts.models.includes('smollm')) {
    const file = defaultPath(opts.dtype);
    if (!fs.existsSync(file)) {
      progress(`writing ${path.relative(process.cwd(), file)}`);
      makeSmollmGguf({ out: file, dtype: opts.dtype });
    }
    models.push([`SmolLM-135M shapes, random ${opts.dtype}`, file]);
  }
  const started = Date.now();
  const loadBefore = os.loadavg()[0];
  const results = [];
  for (const [label, file] of models) results.push(await benchModel(label, file, opts, pkg));
  printResults(results, pkg ? 'llama.cpp' : 'ref');
  const report = {
    meta: {
      date: new Date().toISOString(),
      cpu,
      threads: opts.threads,
      reps: opts.reps,
      node: process.version,
      reference: pkg ? `node-llama-cpp ${pkg.version}` : null,
      loadAverage: { before: loadBefore, after: os.loadavg()[0] },
      seconds: (Date.now() - started) / 1000,
    },
    results,
  };
  fs.mkdirSync(path.dirname(opts.json), { recursive: true });
  const tmp = `${opts.json}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(report, null, 2)}\n`);
  fs.renameSync(tmp, opts.json);
  console.log(`\n${report.meta.seconds.toFixed(0)} s (load average ${loadBefore.toFixed(1)} → ${report.meta.loadAverage.after.toFixed(1)}); results in ${path.relative(process.cwd(), opts.json)}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exitCode = 1;
});
