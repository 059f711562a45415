'use strict';
// Our side of the forward benchmark, through the public API only: loadModel, model.generate (KV
// cache: prefill, then one token per step) and model.forward (logits at every position).

const seconds = async (fn) => {
  const t0 = process.hrtime.bigint();
  const result = await fn();
  return { seconds: Number(process.hrtime.bigint() - t0) / 1e9, result };
};

/** Loads `file` with peft-native and returns the runner the benchmark drives. */
async function oursRunner(file, threads) {
  const { loadModel, runtime } = require('../../dist');
  runtime.setNumThreads(threads);
  const { seconds: loadSeconds, result: model } = await seconds(() => loadModel(file));
  return {
    name: 'peft-native',
    loadSeconds,
    context: model.config.maxPositionEmbeddings,
    vocab: model.config.vocabSize,
    tokenize: (text) => model.tokenizer.encode(text, { addSpecialTokens: false }),
    /** The prompt into the KV cache and the first new token (llama.cpp's prompt processing, plus one sample). */
    prefill: async (ids) => (await seconds(() => model.generate(ids, { maxNewTokens: 1, temperature: 0 }))).seconds,
    /** Logits [1, n, vocab] for every position, as training needs them. */
    forward: async (ids) => (await seconds(() => model.forward([ids]))).seconds,
    /** Greedy continuation of `ids` by `n` tokens (fewer if the end-of-sequence token comes first). */
    generate: async (ids, n) => {
      const { seconds: s, result } = await seconds(() => model.generate(ids, { maxNewTokens: n, temperature: 0 }));
      return { seconds: s, tokens: result.tokens };
    },
    dispose: async () => {},
  };
}

module.exports = { oursRunner };
