'use strict';
// The reference side of the forward benchmark: node-llama-cpp (prebuilt llama.cpp, CPU only) loading
// the same GGUF. It is not a dependency of peft-native: install it anywhere, e.g.
//   mkdir -p ~/benchref && cd ~/benchref && npm init -y && npm i -E node-llama-cpp@3.21.1
// and point the benchmark at it with --llama-cpp=DIR or NODE_LLAMA_CPP_DIR=DIR.
const fs = require('node:fs');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

/** The package folder of node-llama-cpp under `dir` (dir itself, or dir/node_modules/node-llama-cpp), or null. */
function findNodeLlamaCpp(dir) {
  if (!dir) return null;
  for (const candidate of [dir, path.join(dir, 'node_modules', 'node-llama-cpp')]) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(candidate, 'package.json'), 'utf8'));
      if (pkg.name === 'node-llama-cpp') return { dir: candidate, version: pkg.version };
    } catch {
      // not here
    }
  }
  return null;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

/** Loads `file` with node-llama-cpp and returns the runner the benchmark drives. */
async function llamaRunner(pkg, file, threads, contextSize) {
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(path.join(pkg.dir, 'dist', 'index.js')).href);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: threads });
  const t0 = now();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const context = await model.createContext({ contextSize, batchSize: 512, threads, sequences: 1 });
  const sequence = context.getSequence();
  const loadSeconds = now() - t0;
  return {
    name: `node-llama-cpp ${pkg.version}`,
    loadSeconds,
    tokenize: (text) => [...model.tokenize(text)],
    /** The prompt into a fresh KV cache (llama.cpp computes the last position's logits only). */
    prefill: async (ids) => {
      await sequence.clearHistory();
      const start = now();
      await sequence.evaluateWithoutGeneratingNewTokens(ids);
      return now() - start;
    },
    /**
     * Greedy continuation of `ids` by `n` tokens, with the time of the first and the last token (so
     * decoding speed leaves the prefill out).
     */
    generate: async (ids, n) => {
      await sequence.clearHistory();
      const start = now();
      const tokens = [];
      let first = 0;
      for await (const token of sequence.evaluate(ids, { temperature: 0 })) {
        tokens.push(token);
        if (tokens.length === 1) first = now();
        if (tokens.length >= n) break;
      }
      const end = now();
      return { seconds: end - start, firstSeconds: first - start, tokens };
    },
    dispose: async () => {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

module.exports = { findNodeLlamaCpp, llamaRunner };
