// PeftModel.eval() turns LoRA dropout off for loss() too (the training forward that loss() runs used
// to apply it whatever the mode): in evaluation mode the loss of an adapter with lora_dropout 0.5 is
// bit for bit the loss of the same weights with lora_dropout 0, in training mode it is not.
import { getPeftModel, type PeftModel } from '../../lib';
import { tinyLlama, TINY_IDS } from '../helpers/tiny-llama';

const LORA = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: 'all-linear', init_lora_weights: false } as const;

function values(peft: PeftModel): Record<string, number[]> {
  return Object.fromEntries(Object.entries(peft.trainableParameters()).map(([n, t]) => [n, [...t.toFloat32Array()]]));
}

describe('evaluation mode and LoRA dropout (Llama)', () => {
  it('eval-mode loss equals the lora_dropout 0 loss bit for bit; training-mode loss does not', async () => {
    const noisy = getPeftModel(tinyLlama().model, { ...LORA, lora_dropout: 0.5 }, { seed: 4 });
    const clean = getPeftModel(tinyLlama().model, { ...LORA, lora_dropout: 0 }, { seed: 4 });
    expect(values(noisy)).toEqual(values(clean)); // the same adapter weights
    const reference = (await clean.loss(TINY_IDS)).loss;
    const trainMode = (await noisy.loss(TINY_IDS)).loss;
    expect(trainMode).not.toBe(reference); // dropout is on in training mode

    noisy.eval();
    clean.eval();
    const evalLoss = await noisy.loss(TINY_IDS);
    expect(evalLoss.loss).toBe(reference);
    expect(evalLoss.loss).toBe((await clean.loss(TINY_IDS)).loss);
    expect(Object.keys(evalLoss.grads)).toEqual([]); // nothing trains in evaluation mode
    // Repeated eval-mode losses do not draw new masks either.
    expect((await noisy.loss(TINY_IDS)).loss).toBe(reference);
    const logits = (await noisy.forward(TINY_IDS)).toFloat32Array();
    expect(logits).toEqual((await clean.forward(TINY_IDS)).toFloat32Array());

    noisy.train();
    expect((await noisy.loss(TINY_IDS)).loss).not.toBe(reference); // and back on in training mode
  });
});
