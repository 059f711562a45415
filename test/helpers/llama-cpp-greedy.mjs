// Greedy continuation with node-llama-cpp (llama.cpp), for comparing our outputs with llama.cpp's.
// Usage: node llama-cpp-greedy.mjs <node-llama-cpp dir> <model.gguf> <lora.gguf or ""> <prompt ids JSON> <n> [probabilities]
// Prints {"tokens": [...]} on stdout: llama.cpp's greedy tokens with its default context (f16 KV
// cache, flash attention "auto"). With the word `probabilities` as the sixth argument, also
// {"f32": {"tokens": [...], "probabilities": [[p(token 0), p(token 1), ...], ...]}}: the same
// continuation from a context that keeps its KV cache in f32 and runs attention without flash
// attention, and with it the next-token distribution each token was chosen from (after the prompt,
// then after each generated token but the last). The f16 cache and the flash-attention kernel round
// keys, values (and, in the kernel, queries) to f16, which moves log-probabilities by ~1e-2 on these
// models; the f32 context leaves only llama.cpp's arithmetic (f32, with its f16 GELU table).
//
// Why these are the model's own probabilities: at temperature 0 node-llama-cpp's sampler chain is
// llama.cpp's greedy sampler alone (no top-k / top-p / min-p / temperature; no repeat penalty, grammar
// or token bias unless asked for), which picks the argmax without changing the logits, and the
// probabilities it returns are the softmax of those logits over the whole vocabulary
// (llama/addon/AddonContext.cpp, SampleToken: expf(logit − max) / Σ, in f32).
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';

const [moduleDir, modelPath, loraPath, promptJson, n, extra] = process.argv.slice(2);
const prompt = JSON.parse(promptJson);
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(path.join(moduleDir, 'dist', 'index.js')).href);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const lora = loraPath ? { lora: { adapters: [{ filePath: loraPath }] } } : {};
const F32 = { experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32', flashAttention: false };

/** The Map node-llama-cpp returns (token → probability, every token of the vocabulary) as a dense row. */
function denseRow(probabilities) {
  const row = new Array(probabilities.size).fill(0);
  for (const [token, p] of probabilities) {
    if (!(token >= 0 && token < row.length)) throw new Error(`token ${token} outside a vocabulary of ${row.length}`);
    row[token] = p;
  }
  return row;
}

/** n greedy tokens (fewer if an end-of-generation token comes first) and, if asked, their distributions. */
async function greedy(contextOptions, withProbabilities) {
  const context = await model.createContext({ contextSize: 256, batchSize: 64, threads: 1, ...lora, ...contextOptions });
  const tokens = [];
  const probabilities = [];
  const options = { temperature: 0 };  // greedy; see above for why the probabilities stay unmodified
  for await (const out of context.getSequence().evaluateWithMetadata(prompt, { probabilities: withProbabilities }, options)) {
    tokens.push(out.token);
    if (withProbabilities) probabilities.push(denseRow(out.probabilities));
    if (tokens.length >= Number(n)) break;
  }
  await context.dispose();
  return withProbabilities ? { tokens, probabilities } : { tokens };
}

const result = await greedy({}, false);
if (extra === 'probabilities') result.f32 = await greedy(F32, true);
console.log(JSON.stringify(result));
await model.dispose();
await llama.dispose();
