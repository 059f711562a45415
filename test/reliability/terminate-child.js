// Run by concurrency.test.ts in its own process (a crash must not take jest down): starts workers
// that load the addon and a model and then loop over native calls (asynchronous ones in one kind of
// worker, synchronous ones in the other), terminates each at a random moment, TERMINATE_ROUNDS
// times per kind; then checks that the main thread still computes what it computed before.
'use strict';
const { Worker } = require('node:worker_threads');

const dist = process.env.TERMINATE_DIST;
const modelPath = process.env.TERMINATE_MODEL;
const rounds = Number(process.env.TERMINATE_ROUNDS);

const worker = (kind) => `
  const { parentPort, workerData } = require('node:worker_threads');
  const lib = require(workerData.dist);
  (async () => {
    const n = 512;
    const a = lib.tensor(new Float32Array(n * n).fill(0.25), [n, n]);
    const model = await lib.loadModel(workerData.model);
    const peft = lib.getPeftModel(model, { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: 'all-linear' });
    const ids = [Array.from({ length: 200 }, (_, i) => (i * 7) % 500)];
    const idsTensor = lib.tensor(ids, undefined, 'i32');
    parentPort.postMessage('started');
    for (;;) {
      if (${JSON.stringify(kind)} === 'async') {
        // One call at a time on the model (a second one is E_BUSY), a tensor op beside it.
        await Promise.all([peft.loss(ids), lib.ops.matmulAsync(a, a)]);
        await Promise.all([peft.saveAdapter(workerData.dir), lib.ops.matmulAsync(a, a)]);
      } else {
        lib.ops.matmul(a, a);
        model.nativeModel.forward(idsTensor.handle, null, false);
        lib.tensor(new Float32Array(4096), [64, 64]).to('bf16');
      }
    }
  })().catch((e) => { process.stderr.write('worker loop failed: ' + e.stack + '\\n'); process.exit(3); });
`;

(async () => {
  const os = require('node:os');
  const fs = require('node:fs');
  const path = require('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-terminate-'));
  const lib = require(dist);
  const model = await lib.loadModel(modelPath);
  const ids = [[1, 403, 407, 260]];
  const before = Array.from((await model.forward(ids)).toFloat32Array());
  try {
    for (const kind of ['async', 'sync']) {
      for (let round = 0; round < rounds; round++) {
        const w = new Worker(worker(kind), { eval: true, workerData: { dist, model: modelPath, dir: path.join(dir, `adapter-${round}`) } });
        await new Promise((resolve, reject) => {
          w.once('message', resolve);
          w.once('error', reject);
        });
        await new Promise((resolve) => setTimeout(resolve, 2 + Math.random() * 40));
        await w.terminate();
        process.stdout.write(`terminated ${kind} ${round}\n`);
      }
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const after = Array.from((await model.forward(ids)).toFloat32Array());
  const same = after.length === before.length && after.every((v, i) => v === before[i]);
  process.stdout.write(`main thread still computes: ${same ? 'ok' : 'different logits'}\n`);
})().catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
