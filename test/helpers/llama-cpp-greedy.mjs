// Greedy continuation with node-llama-cpp (llama.cpp), for comparing our outputs with llama.cpp's.
// Usage: node llama-cpp-greedy.mjs <node-llama-cpp dir> <model.gguf> <lora.gguf or ""> <prompt ids JSON> <n>
// Prints {"tokens": [...]} on stdout.
import { pathToFileURL } from 'node:url';
import * as path from 'node:path';

const [moduleDir, modelPath, loraPath, promptJson, n] = process.argv.slice(2);
const { getLlama, LlamaLogLevel } = await import(pathToFileURL(path.join(moduleDir, 'dist', 'index.js')).href);
const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath, gpuLayers: 0 });
const context = await model.createContext({ contextSize: 256, batchSize: 64, threads: 1, ...(loraPath ? { lora: { adapters: [{ filePath: loraPath }] } } : {}) });
const sequence = context.getSequence();
const tokens = [];
for await (const token of sequence.evaluate(JSON.parse(promptJson), { temperature: 0 })) {
  tokens.push(token);
  if (tokens.length >= Number(n)) break;
}
console.log(JSON.stringify({ tokens }));
await context.dispose();
await model.dispose();
await llama.dispose();
