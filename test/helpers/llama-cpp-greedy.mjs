// Greedy continuation with node-llama-cpp (llama.cpp), for comparing our outputs with llama.cpp's.
// Usage: node llama-cpp-greedy.mjs <node-llama-cpp dir> <model.gguf> <lora.gguf or ""> <prompt ids JSON> <n> [probabilities]
// Prints {"tokens": [...]} on stdout; with the word `probabilities` as the sixth argument also
// {"probabilities": [[p(token 0), p(token 1), ...], ...]}: llama.cpp's next-token distribution after
// the prompt and after each generated token but the last (one row per generated token, the row it was chosen from).
//
// Why these are the model's own probabilities: at temperature 0 node-llama-cpp's sampler chain is
// llama.cpp's greedy sampler alone (no top-k / top-p / min-p / temperature; no repeat penalty, grammar
// or token bias unless asked for), which picks the argmax without changing the logits, and the
// probabilities it returns are the softmax of those logits over the whole vocabulary
// (llama/addon/AddonContext.cpp, SampleToken: expf(logit − max) / Σ, in f32).
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';

const [moduleDir, modelPath, loraPath, promptJson, n, extra] = process.argv.slice(2);
const withProbabilities = extra === 'probabilities';
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(path.join(moduleDir, 'dist', 'index.js')).href);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const kv = process.env.KVT ? { experimentalKvCacheKeyType: process.env.KVT, experimentalKvCacheValueType: process.env.KVT } : {};
const fa = process.env.FA ? { flashAttention: process.env.FA === '1' } : {};
const context = await model.createContext({ contextSize: 256, batchSize: 64, threads: 1, ...kv, ...fa, ...(loraPath ? { lora: { adapters: [{ filePath: loraPath }] } } : {}) });
const sequence = context.getSequence();

/** The Map node-llama-cpp returns (token → probability, every token of the vocabulary) as a dense row. */
function denseRow(probabilities) {
  const row = new Array(probabilities.size).fill(0);
  for (const [token, p] of probabilities) {
    if (!(token >= 0 && token < row.length)) throw new Error(`token ${token} outside a vocabulary of ${row.length}`);
    row[token] = p;
  }
  return row;
}

const tokens = [];
const probabilities = [];
const options = { temperature: 0 };  // greedy; see above for why the probabilities stay unmodified
for await (const out of sequence.evaluateWithMetadata(JSON.parse(promptJson), { probabilities: withProbabilities }, options)) {
  tokens.push(out.token);
  if (withProbabilities) probabilities.push(denseRow(out.probabilities));
  if (tokens.length >= Number(n)) break;
}
console.log(JSON.stringify(withProbabilities ? { tokens, probabilities } : { tokens }));
await context.dispose();
await model.dispose();
await llama.dispose();
