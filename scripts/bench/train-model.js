'use strict';
// The training benchmark's model, batch and cases: random weights with SmolLM-135M's shapes cut to
// 4 layers (or the full SmolLM-135M, 360M or 1.7B: --model), written once per run as a Hugging Face
// directory (config.json + model.safetensors, f32, through our safetensors writer) that our side
// loads with loadModel and the PyTorch reference reads too, so both train the same weights on the
// same tokens. RUN holds the model, batch, sequence length and activation checkpointing of the run;
// configureRun sets them (in the parent from the options, in each child from its job).
const fs = require('node:fs');
const path = require('node:path');

const SMOLLM_135M = { hidden: 576, layers: 30, heads: 9, kvHeads: 3, headDim: 64, ffn: 1536, vocab: 49152 };
const MODELS = {
  '135m-4l': { title: 'SmolLM-135M shapes, 4 layers', shape: { ...SMOLLM_135M, layers: 4 } },
  '135m': { title: 'SmolLM-135M (30 layers)', shape: SMOLLM_135M },
  '360m': { title: 'SmolLM-360M (32 layers)', shape: { hidden: 960, layers: 32, heads: 15, kvHeads: 5, headDim: 64, ffn: 2560, vocab: 49152 } },
  '1.7b': { title: 'SmolLM-1.7B (24 layers)', shape: { hidden: 2048, layers: 24, heads: 32, kvHeads: 32, headDim: 64, ffn: 8192, vocab: 49152 } },
};
const SHAPE = { ...MODELS['135m-4l'].shape };
const RUN = { model: '135m-4l', batch: 4, seq: 256, checkpointing: false };
const LR = 1e-4;

/** Sets the run's model, batch, sequence length and checkpointing (SHAPE follows the model). */
function configureRun(run) {
  if (run.model !== undefined && !MODELS[run.model]) throw new Error(`Expected a model among ${Object.keys(MODELS).join(', ')} but received ${run.model}`);
  Object.assign(RUN, run);
  Object.assign(SHAPE, MODELS[RUN.model].shape);
}

const ALL_LINEAR = ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'];
const CASES = [
  { id: 'lora-qv', title: 'LoRA r8 q,v', method: 'lora', r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] },
  { id: 'lora-all', title: 'LoRA r16 all-linear', method: 'lora', r: 16, alpha: 32, targets: ALL_LINEAR },
  { id: 'qlora', title: 'QLoRA r16 all-linear (NF4)', method: 'qlora', r: 16, alpha: 32, targets: ALL_LINEAR },
  { id: 'dora-qv', title: 'DoRA r8 q,v', method: 'dora', r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] },
  { id: 'prompt', title: 'Prompt tuning, 20 tokens', method: 'prompt', virtualTokens: 20 },
];

/** A case's PEFT config, with Hugging Face PEFT's field names. */
function peftConfig(c) {
  if (c.method === 'prompt') return { peft_type: 'PROMPT_TUNING', task_type: 'CAUSAL_LM', num_virtual_tokens: c.virtualTokens };
  return { peft_type: 'LORA', r: c.r, lora_alpha: c.alpha, lora_dropout: 0, target_modules: c.targets, use_dora: c.method === 'dora' };
}

/** QLoRA's load options: NF4, double quantization, quantized on load, bf16 compute. */
function loadOptions(c) {
  if (c.method !== 'qlora') return {};
  return { quantization: { load_in_4bit: true, bnb_4bit_quant_type: 'nf4', bnb_4bit_use_double_quant: true, bnb_4bit_compute_dtype: 'bf16' } };
}

/** The batch: [batch][seq] token ids spread over the vocabulary (fixed, so every process sees the same). */
function tokenIds() {
  return Array.from({ length: RUN.batch }, (_, b) => Array.from({ length: RUN.seq }, (_, t) => (b * 7919 + t * 104729) % SHAPE.vocab));
}

/** Uniform values in [-scale, scale) from a fixed-seed LCG. */
function randomData(size, seed, scale) {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = ((s >>> 8) / 16777216 - 0.5) * 2 * scale;
  }
  return out;
}

/** Writes the model into `dir` (created); weights near Hugging Face's init (std ≈ 0.02), norms at 1. */
async function writeModel(dir, dist) {
  const { tensor, writeSafetensors } = dist;
  const { hidden: H, ffn: F, vocab: V, heads, kvHeads, headDim: D } = SHAPE;
  const tensors = {};
  let seed = 1;
  // One seed per layer and tensor kind, so a layer's weights do not depend on the model's size.
  const add = (name, shape, scale) => {
    const size = shape.reduce((a, b) => a * b, 1);
    tensors[name] = tensor(scale === null ? new Float32Array(size).fill(1) : randomData(size, seed++, scale), shape);
  };
  add('model.embed_tokens.weight', [V, H], 0.035);
  for (let l = 0; l < SHAPE.layers; l++) {
    const p = `model.layers.${l}.`;
    add(p + 'input_layernorm.weight', [H], null);
    add(p + 'self_attn.q_proj.weight', [heads * D, H], 0.035);
    add(p + 'self_attn.k_proj.weight', [kvHeads * D, H], 0.035);
    add(p + 'self_attn.v_proj.weight', [kvHeads * D, H], 0.035);
    add(p + 'self_attn.o_proj.weight', [H, heads * D], 0.035);
    add(p + 'post_attention_layernorm.weight', [H], null);
    add(p + 'mlp.gate_proj.weight', [F, H], 0.035);
    add(p + 'mlp.up_proj.weight', [F, H], 0.035);
    add(p + 'mlp.down_proj.weight', [H, F], 0.035);
  }
  add('model.norm.weight', [H], null);
  const config = {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: H, intermediate_size: F, num_hidden_layers: SHAPE.layers,
    num_attention_heads: heads, num_key_value_heads: kvHeads, head_dim: D, vocab_size: V, max_position_embeddings: 2048,
    rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: true, hidden_act: 'silu', torch_dtype: 'float32',
  };
  fs.mkdirSync(dir, { recursive: true });
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  for (const t of Object.values(tensors)) t.dispose();
  const tmp = path.join(dir, `config.json.${process.pid}.tmp`);
  const fd = fs.openSync(tmp, 'w');
  fs.writeSync(fd, `${JSON.stringify(config, null, 2)}\n`);
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, path.join(dir, 'config.json'));
}

/** Resident memory of this process (VmRSS) and its peak so far (VmHWM), in bytes, from /proc. */
function memoryStatus() {
  const text = fs.readFileSync('/proc/self/status', 'utf8');
  const kib = (field) => Number((text.match(new RegExp(`^${field}:\\s+(\\d+)`, 'm')) || [])[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

module.exports = { MODELS, SHAPE, RUN, LR, CASES, configureRun, peftConfig, loadOptions, tokenIds, writeModel, memoryStatus };
