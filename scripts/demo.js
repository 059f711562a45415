#!/usr/bin/env node
// A small real fine-tune, end to end: load stories260K (a 260K-parameter Llama trained on
// TinyStories), measure its perplexity on held-out text from a fable it never saw, train every
// parameter with the native fused AdamW for a few dozen steps, and measure again.
// Usage: npm run demo [-- --model <dir>] (default: ../shared/models/stories260K-hf)
'use strict';
const path = require('path');
const { loadModel, ops, zeros } = require('../dist');

// "The Hare and the Tortoise" (Aesop, public domain), retold in plain sentences.
const FABLE = `A hare was making fun of a tortoise one day for being so slow. "Do you ever get anywhere?" he asked with a mocking laugh.
"Yes," replied the tortoise, "and I get there sooner than you think. I will run you a race and prove it."
The hare was much amused at the idea of running a race with the tortoise, but for the fun of the thing he agreed.
So the fox, who had agreed to act as judge, marked the distance and started the runners off.
The hare was soon far out of sight, and to make the tortoise feel very deeply how silly it was for him to try a race with a hare, he lay down beside the course to take a nap until the tortoise should catch up.
The tortoise meanwhile kept going slowly but steadily, and, after a time, passed the place where the hare was sleeping.
But the hare slept on very peacefully; and when at last he did wake up, the tortoise was near the goal.
The hare now ran his swiftest, but he could not overtake the tortoise in time.
The race is not always to the swift. Slow and steady wins the race.`;

async function main() {
  const modelArg = process.argv.indexOf('--model');
  const dir = modelArg > 0 ? process.argv[modelArg + 1] : path.join(__dirname, '..', '..', 'shared', 'models', 'stories260K-hf');
  const model = await loadModel(dir);
  const tok = model.tokenizer;
  const lines = FABLE.split('\n');
  const heldOut = lines.splice(5, 1)[0]; // one sentence of the story is never trained on
  const trainIds = tok.encode(lines.join('\n'));
  const heldIds = tok.encode(heldOut);
  const seq = 48;
  const windows = [];
  for (let i = 0; i + seq <= trainIds.length; i += seq / 2) windows.push(trainIds.slice(i, i + seq));

  const perplexity = async () => Math.exp((await model.loss([heldIds])).loss);
  const sample = async () => (await model.generate('The tortoise', { maxNewTokens: 24 })).text;
  console.log(`model: ${dir} (${model.parameterNames().length} tensors)`);
  console.log(`training text: ${trainIds.length} tokens in ${windows.length} windows of ${seq}; held-out: ${heldIds.length} tokens`);
  console.log(`before: held-out perplexity ${(await perplexity()).toFixed(2)}`);
  console.log(`before: ${JSON.stringify(await sample())}`);

  const names = model.parameterNames();
  const params = names.map((n) => model.parameter(n));
  const state = { expAvg: params.map((p) => zeros(p.shape)), expAvgSq: params.map((p) => zeros(p.shape)) };
  const steps = 40;
  const started = Date.now();
  for (let step = 1; step <= steps; step++) {
    const batch = [windows[(2 * step) % windows.length], windows[(2 * step + 1) % windows.length]];
    const { loss, grads } = await model.loss(batch);
    const gradList = names.map((n) => grads[n]);
    const norm = await ops.clipGradNormAsync(gradList, 1.0);
    await ops.adamwAsync(params, gradList, state, { lr: 3e-4, weightDecay: 0, step });
    gradList.forEach((g) => g.dispose());
    if (step % 10 === 0 || step === 1) console.log(`step ${String(step).padStart(2)}  loss ${loss.toFixed(3)}  grad norm ${norm.toFixed(2)}`);
  }
  console.log(`trained ${steps} steps in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`after:  held-out perplexity ${(await perplexity()).toFixed(2)}`);
  console.log(`after:  ${JSON.stringify(await sample())}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
