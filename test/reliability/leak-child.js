// Run by leak.test.ts in its own process (node --expose-gc): loads stories260K, wraps it with LoRA,
// (or its GGUF file, every other round) trains a few steps with the Trainer, generates, saves the adapter and disposes everything,
// ITERATIONS times; prints one JSON line per iteration with the process's memory after a full GC.
// LEAK_DISPOSE=0 drops the objects without dispose() so that only the garbage collector frees them.
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const lib = require(process.env.LEAK_DIST);
// Rounds alternate between the Hugging Face folder (safetensors) and the GGUF file: both are mapped.
const models = process.env.LEAK_MODELS.split(path.delimiter);
const iterations = Number(process.env.LEAK_ITERATIONS);
const dispose = process.env.LEAK_DISPOSE !== '0';

const TEXTS = ['Once upon a time there was a cat.', 'The dog ran to the park and played.', 'Lily had a red ball.', 'Tom saw a big tree.'];

/** Two full collections with a turn of the event loop after each, so deferred native finalizers run too. */
async function collect() {
  for (let i = 0; i < 2; i++) {
    global.gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function once(tmp, i) {
  const model = await lib.loadModel(models[i % models.length]);
  const peft = lib.getPeftModel(model, { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear' }, { seed: 1 });
  const trainer = new lib.Trainer(peft, {
    train_file: path.join(tmp, 'train.jsonl'),
    max_steps: 3,
    per_device_train_batch_size: 2,
    learning_rate: 1e-3,
    output_dir: path.join(tmp, `run-${i % 2}`),
    overwrite_output_dir: true,
    save_steps: 3,
    warn: () => {},
  });
  const result = await trainer.train();
  const { tokens } = await peft.generate('Once upon a time', { maxNewTokens: 6 });
  await peft.saveAdapter(path.join(tmp, 'adapter'));
  if (dispose) peft.dispose();
  return { loss: result.losses[result.losses.length - 1], tokens };
}

(async () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-leak-'));
  fs.writeFileSync(path.join(tmp, 'train.jsonl'), TEXTS.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  try {
    for (let i = 0; i < iterations; i++) {
      const started = Date.now();
      const r = await once(tmp, i);
      await collect();
      const m = process.memoryUsage();
      const live = lib.runtime.liveStorages();
      process.stdout.write(JSON.stringify({ i, rss: m.rss, heapUsed: m.heapUsed, external: lib.runtime.externalMemory(), ...live, ms: Date.now() - started, ...r }) + '\n');
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
})().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
