// Run by step-memory.test.ts in its own process: trains LoRA on a random Llama whose activations are
// megabytes each (hidden 256, FFN 768, batch 4 x 256) for STEP_MEMORY_STEPS steps, the way the Trainer
// does (peft.loss, then the native AdamW, both off the event loop), and prints one JSON line per step
// with resident memory now and at its peak (VmRSS, VmHWM from /proc/self/status).
'use strict';
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const lib = require(process.env.STEP_MEMORY_DIST);
const steps = Number(process.env.STEP_MEMORY_STEPS);
const SHAPE = { hidden: 256, ffn: 768, layers: 2, heads: 4, kvHeads: 2, headDim: 64, vocab: 4096, batch: 4, seq: 256 };

function memory() {
  const status = fs.readFileSync('/proc/self/status', 'utf8');
  const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)[1]) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** Deterministic values in [-scale, scale) from a linear congruential generator. */
function random(size, seed, scale) {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32 - 0.5) * 2 * scale;
  }
  return out;
}

async function writeModel(dir) {
  const { hidden: H, ffn: F, vocab: V, heads, kvHeads, headDim: D } = SHAPE;
  const tensors = {};
  let seed = 1;
  const add = (name, shape, scale) => {
    const size = shape.reduce((a, b) => a * b, 1);
    tensors[name] = lib.tensor(scale === 0 ? new Float32Array(size).fill(1) : random(size, seed++, scale), shape);
  };
  add('model.embed_tokens.weight', [V, H], 0.05);
  for (let l = 0; l < SHAPE.layers; l++) {
    const p = `model.layers.${l}.`;
    add(p + 'input_layernorm.weight', [H], 0);
    add(p + 'self_attn.q_proj.weight', [heads * D, H], 0.05);
    add(p + 'self_attn.k_proj.weight', [kvHeads * D, H], 0.05);
    add(p + 'self_attn.v_proj.weight', [kvHeads * D, H], 0.05);
    add(p + 'self_attn.o_proj.weight', [H, heads * D], 0.05);
    add(p + 'post_attention_layernorm.weight', [H], 0);
    add(p + 'mlp.gate_proj.weight', [F, H], 0.05);
    add(p + 'mlp.up_proj.weight', [F, H], 0.05);
    add(p + 'mlp.down_proj.weight', [H, F], 0.05);
  }
  add('model.norm.weight', [H], 0);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: H, intermediate_size: F, num_hidden_layers: SHAPE.layers,
    num_attention_heads: heads, num_key_value_heads: kvHeads, head_dim: D, vocab_size: V, max_position_embeddings: 1024,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'float32',
  }));
  await lib.writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
}

(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-step-memory-'));
  try {
    await writeModel(dir);
    const model = await lib.loadModel(dir);
    const peft = lib.getPeftModel(model, { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: 'all-linear' }, { seed: 1 });
    peft.train();
    const params = peft.trainableParameters();
    const names = Object.keys(params);
    const list = names.map((n) => params[n]);
    const state = { expAvg: list.map((p) => lib.zeros(p.shape)), expAvgSq: list.map((p) => lib.zeros(p.shape)) };
    const ids = Array.from({ length: SHAPE.batch }, (_, b) => Array.from({ length: SHAPE.seq }, (_, t) => (b * 977 + t * 131) % SHAPE.vocab));
    for (let step = 1; step <= steps; step++) {
      const { grads, loss } = await peft.loss(ids);
      await lib.ops.adamwAsync(list, names.map((n) => grads[n]), state, { lr: 1e-3, weightDecay: 0, step });
      for (const g of Object.values(grads)) g.dispose();
      const v8 = process.memoryUsage();
      process.stdout.write(JSON.stringify({ step, loss, ...memory(), heap: v8.heapTotal, live: lib.runtime.liveStorages().bytes }) + '\n');
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
})().catch((err) => {
  console.error(err);
  process.exit(1);
});
