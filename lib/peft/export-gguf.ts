/**
 * Exporting a whole model as a GGUF file that llama.cpp, node-llama-cpp and Ollama run: the model
 * (with a PeftModel's active adapter folded in) in F32 / F16 / BF16 or quantized to a llama.cpp
 * file type (Q8_0, Q4_K_M, ...) with llama.cpp's reference quantizers and its per-tensor type rules
 * (gguf-quant-mix.ts), as Unsloth's save_pretrained_gguf and mlx_lm.fuse do.
 * @module
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError, withCallSite } from '../errors';
import { readGguf, type GgufFile, type GgufTensorInfo } from '../io/gguf';
import { copyGgufMetadata } from '../io/gguf-copy';
import { GGUF_FILE_TYPES, quantMix, type GgufFileType, type GgufTensorType } from '../io/gguf-quant-mix';
import { checkInsideOutput } from '../io/output-path';
import { writeGguf } from '../io/gguf-writer';
import { huggingFaceName, permuteRotaryBlocks } from '../models/gguf-weights';
import { Model } from '../models/model';
import { sourceLocation } from '../models/model-files';
import { GgmlTensor, isGgmlQuantType, quantizeGgmlAsync } from '../quant/ggml-tensor';
import { tensor, type Tensor } from '../tensor';
import { fail } from '../validate';
import { permuteRotary, withActiveMerged } from './export';
import { PeftModel } from './peft-model';

/** Options of {@link exportGguf}. */
export interface ExportGgufOptions {
  /**
   * The llama.cpp file type: 'F32', 'F16' (default), 'BF16', 'Q8_0', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1',
   * 'Q2_K', 'Q3_K_S', 'Q3_K_M', 'Q3_K_L', 'Q4_K_S', 'Q4_K_M', 'Q5_K_S', 'Q5_K_M', 'Q6_K', 'IQ4_NL', 'IQ4_XS'
   * (what `llama-quantize <in> <out> <type>` makes without an importance matrix).
   */
  type?: GgufFileType;
}

/** What a tensor of the source file turns into in the exported one. */
type Written = Tensor | GgmlTensor;

// llama.cpp's Gemma files store every norm as 1 + w; the model holds Hugging Face's w.
const GEMMA_NORM = /(layernorm|model\.norm|q_norm|k_norm)\.weight$/;

/** The f32 values [rows, cols] of a weight in the source file's row order and convention. */
function fileValues(model: Model, hfName: string, shape: readonly number[]): Float32Array {
  const held = model.ggmlWeight(hfName) ?? model.quantizedWeight(hfName);
  const t = model.parameter(hfName);
  let values = t.to('f32').toFloat32Array();
  if (held) t.dispose(); // a dequantized copy; a dense weight is the model's own tensor
  const { modelType, numHeads, numKvHeads } = model.config;
  if ((modelType === 'gemma2' || modelType === 'gemma3_text') && GEMMA_NORM.test(hfName)) values = values.map((v) => v + 1);
  const permuted = modelType === 'llama' || modelType === 'mistral';
  const rows = shape[0], cols = shape.length > 1 ? shape[1] : 1;
  if (permuted && /q_proj\.weight$/.test(hfName)) values = permuteRotary(values, rows, cols, numHeads);
  if (permuted && /k_proj\.weight$/.test(hfName)) values = permuteRotary(values, rows, cols, numKvHeads);
  return values;
}

/**
 * A weight the model holds in the block type it is to be written in, as its blocks (rows back in
 * llama.cpp's rotary order): no second rounding. Undefined otherwise.
 */
function unchangedBlocks(model: Model, hfName: string, type: GgufTensorType): GgmlTensor | undefined {
  const g = model.ggmlWeight(hfName);
  if (!g || g.type !== type) return undefined;
  const { modelType, numHeads, numKvHeads } = model.config;
  const permuted = modelType === 'llama' || modelType === 'mistral';
  const copy = new GgmlTensor(tensor(g.data.toTypedArray() as Uint8Array, [g.nbytes]), g.type, g.shape);
  if (permuted && /q_proj\.weight$/.test(hfName)) return permuteRotaryBlocks(copy, numHeads);
  if (permuted && /k_proj\.weight$/.test(hfName)) return permuteRotaryBlocks(copy, numKvHeads);
  return copy;
}

/** A source tensor the model does not hold (rope_freqs, ...): as stored. */
function storedTensor(file: GgufFile, info: GgufTensorInfo): Written {
  if (isGgmlQuantType(info.type)) return new GgmlTensor(file.blocks(info.name), info.type, info.shape);
  if (['F32', 'F16', 'BF16', 'I32'].includes(info.type)) return file.tensor(info.name);
  throw new PeftError(`Tensor ${info.name} of the source file is ${info.type}, which cannot be copied`, 'E_UNSUPPORTED');
}

async function converted(values: Float32Array, shape: readonly number[], type: GgufTensorType): Promise<Written> {
  const t = tensor(values, [...shape]);
  if (type === 'F32') return t;
  if (type === 'F16' || type === 'BF16') {
    const out = t.to(type === 'F16' ? 'f16' : 'bf16');
    t.dispose();
    return out;
  }
  const q = await quantizeGgmlAsync(t, type);
  t.dispose();
  return q;
}

/**
 * Writes the model as a GGUF file. A PeftModel's active adapter (LoRA, DoRA, IA3) is folded into
 * the weights first (the PeftModel is left as it was). The metadata (architecture, hyperparameters,
 * vocabulary) is the source GGUF's, with `general.file_type` set; tensors keep the source's names
 * and order. Weights the adapter did not change and that keep their type are copied block for
 * block; the rest are quantized from f32 with llama.cpp's reference quantizers. The file is
 * written to a temporary name and renamed. `E_UNSUPPORTED` for a model not loaded from a GGUF file.
 * @example await exportGguf(peft, 'out/model-Q4_K_M.gguf', { type: 'Q4_K_M' }); // node-llama-cpp loads it
 */
export function exportGguf(source: PeftModel | Model, file: string, options: ExportGgufOptions = {}): Promise<void> {
  return withCallSite(async () => {
    if (!(source instanceof PeftModel) && !(source instanceof Model)) fail('source', 'a PeftModel or a Model', source);
    if (typeof file !== 'string' || !file) fail('file', 'a file path', file);
    const fileType = options.type ?? 'F16';
    if (!(fileType in GGUF_FILE_TYPES)) fail('option type', `a llama.cpp file type (${Object.keys(GGUF_FILE_TYPES).join(', ')})`, fileType, 'E_ARGUMENT');
    const model = source instanceof PeftModel ? source.base : source;
    const location = await sourceLocation(model);
    if (!location || !location.endsWith('.gguf') || !fs.existsSync(location)) {
      throw new PeftError(
        `exportGguf writes models loaded from a GGUF file (it keeps that file's metadata and vocabulary); this model came from ${model.nameOrPath ?? 'memory'}. Export it with exportMerged and convert it with llama.cpp's convert_hf_to_gguf.py`,
        'E_UNSUPPORTED',
      );
    }
    if (model.config.numExperts) throw new PeftError('exportGguf does not write mixture-of-experts models yet', 'E_UNSUPPORTED');
    checkInsideOutput(path.dirname(path.resolve(file)), path.resolve(file));
    const src = readGguf(location);
    try {
      const mix = quantMix(fileType, src.tensorInfos, {
        layers: model.config.numLayers,
        gqa: model.config.numHeads / model.config.numKvHeads,
        experts: model.config.numExperts ?? 0,
        is70B: model.config.modelType === 'llama' && model.config.numLayers === 80,
      });
      const held = new Set(model.parameterNames());
      const write = async () => {
        const tensors: Record<string, Written> = {};
        for (const info of src.tensorInfos) {
          const hfName = huggingFaceName(info.name, model.config.modelType);
          if (!hfName || !held.has(hfName)) {
            tensors[info.name] = storedTensor(src, info);
            continue;
          }
          const type = mix.get(info.name) ?? (info.type === 'F16' || info.type === 'BF16' ? info.type : 'F32');
          tensors[info.name] = unchangedBlocks(model, hfName, type) ?? (await converted(fileValues(model, hfName, info.shape), info.shape, type));
        }
        const metadata = copyGgufMetadata(src);
        metadata['general.quantization_version'] = { type: 'u32', value: 2 };
        metadata['general.file_type'] = { type: 'u32', value: GGUF_FILE_TYPES[fileType] };
        fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
        writeGguf(file, metadata, tensors);
        for (const t of Object.values(tensors)) t.dispose();
      };
      await model.lock.run('exportGguf()', () => (source instanceof PeftModel ? withActiveMerged(source, write) : write()));
    } finally {
      src.dispose();
    }
  });
}
