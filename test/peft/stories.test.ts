// LoRA on the real model (stories260K): a short training run on text it never saw lowers the held-out
// loss; the saved adapter, loaded into a freshly loaded base, gives exactly the trained logits; and
// the merged model gives the unmerged logits to 1e-5.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, loadModel, ops, zeros } from '../../lib';
import { MODELS_DIR } from '../helpers/models';

const HF_DIR = path.join(MODELS_DIR, 'stories260K-hf');
// "The Fox and the Grapes" (Aesop, public domain).
const TRAIN = `A fox one day spied a beautiful bunch of ripe grapes hanging from a vine trained along the branches of a tree.
The grapes seemed ready to burst with juice, and the fox's mouth watered as he gazed longingly at them.
The bunch hung from a high branch, and the fox had to jump for it. The first time he jumped he missed it by a long way.
So he walked off a short distance and took a running leap at it, only to fall short once more.
Again and again he tried, but in vain. Now he sat down and looked at the grapes in disgust.`;
const HELD_OUT = 'What a fool I am, said the fox. Here I am wearing myself out to get a bunch of sour grapes that are not worth gaping for.';

describe('LoRA on stories260K', () => {
  it('trains, saves, reloads exactly and merges', async () => {
    const model = await loadModel(HF_DIR);
    const tok = model.tokenizer!;
    const train = tok.encode(TRAIN);
    const held = tok.encode(HELD_OUT);
    const windows: number[][] = [];
    for (let i = 0; i + 32 <= train.length; i += 16) windows.push(train.slice(i, i + 32));
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 8, lora_alpha: 16, lora_dropout: 0.05, target_modules: 'all-linear' }, { seed: 1 });
    const heldLoss = async () => {
      peft.eval();
      const { loss } = await peft.loss([held]);
      peft.train();
      return loss;
    };
    const before = await heldLoss();
    const params = peft.trainableParameters();
    const names = Object.keys(params);
    const state = { expAvg: names.map((n) => zeros(params[n].shape)), expAvgSq: names.map((n) => zeros(params[n].shape)) };
    for (let step = 1; step <= 20; step++) {
      const batch = [windows[step % windows.length], windows[(step + 3) % windows.length]];
      const { grads } = await peft.loss(batch);
      await ops.adamwAsync(names.map((n) => params[n]), names.map((n) => grads[n]), state, { lr: 1e-3, weightDecay: 0, step });
    }
    const after = await heldLoss();
    expect(after).toBeLessThan(before - 0.1);  // 3.34 → 3.00 when written

    peft.eval();
    const ids = [held.slice(0, 20)];
    const trained = (await peft.forward(ids)).toFloat32Array();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stories-lora-'));
    await peft.saveAdapter(dir);
    const reloaded = await loadAdapter(await loadModel(HF_DIR), dir);
    const again = (await reloaded.forward(ids)).toFloat32Array();
    fs.rmSync(dir, { recursive: true, force: true });
    expect(Math.max(...again.map((v, i) => Math.abs(v - trained[i])))).toBe(0);

    peft.merge();
    const merged = (await peft.forward(ids)).toFloat32Array();
    const scale = Math.max(...trained.map(Math.abs));
    expect(Math.max(...merged.map((v, i) => Math.abs(v - trained[i]))) / scale).toBeLessThan(1e-5);
  });
});
