// Whole models under every instruction-set variant against the scalar reference (the way ggml's
// test-backend-ops compares each backend with the CPU): the training loss, every trainable
// gradient and the logits of LoRA and QLoRA steps on a small Llama, with the variant switched for
// the whole forward and backward. Variants this CPU lacks are reported as skipped.
import { getPeftModel, runtime, type Isa } from '../../lib';
import { reportUnsupported, SUPPORTED_ISAS } from '../helpers/isa';
import { tinyQuantPair } from '../quant/qlora-helpers';
import { tinyLlama, TINY_IDS, TINY_LABELS } from '../helpers/tiny-llama';

interface Outcome {
  loss: number;
  grads: Record<string, Float32Array>;
  logits: Float32Array;
}

async function run(isa: Isa, quantized: false | 'f32' | 'bf16'): Promise<Outcome> {
  const previous = runtime.getIsa();
  runtime.setIsa(isa);
  try {
    const model = quantized ? tinyQuantPair({ seed: 5, tie: false }, { blocksize: 32, computeDtype: quantized }).quantized : tinyLlama({ seed: 5, tie: false, bias: true }).model;
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 4, target_modules: 'all-linear', init_lora_weights: false, use_dora: !quantized }, { seed: 1 });
    const { loss, grads } = await peft.loss(TINY_IDS, TINY_LABELS);
    const copy = Object.fromEntries(Object.entries(grads).map(([k, v]) => [k, v.toFloat32Array().slice()]));
    return { loss, grads: copy, logits: (await peft.forward(TINY_IDS)).toFloat32Array() };
  } finally {
    runtime.setIsa(previous);
  }
}

function relativeError(a: Float32Array, b: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

describe.each([
  ['LoRA + DoRA, f32 base', false],
  ['QLoRA (NF4 base, f32 compute)', 'f32'],
  ['QLoRA (NF4 base, bf16 compute)', 'bf16'],
] as const)('%s', (_name, quantized) => {
  const fast = SUPPORTED_ISAS.filter((isa) => isa !== 'scalar');
  if (fast.length) {
    it.each(fast)('%s gives the scalar reference\'s loss, gradients and logits', async (isa) => {
      const reference = await run('scalar', quantized);
      const got = await run(isa, quantized);
      // bf16 dot products (avx512bf16) round the f32 operands of bf16 weights only; these weights are f32.
      expect(Math.abs(got.loss - reference.loss)).toBeLessThan(1e-5 * Math.abs(reference.loss));
      expect(Object.keys(got.grads).sort()).toEqual(Object.keys(reference.grads).sort());
      for (const [name, g] of Object.entries(reference.grads)) expect([name, relativeError(got.grads[name], g) < 1e-4]).toEqual([name, true]);
      expect(relativeError(got.logits, reference.logits)).toBeLessThan(1e-5);
    });
  }
  reportUnsupported(`${_name}: the whole step`);
});
