/**
 * Saving a model with 4-bit weights as a Hugging Face checkpoint in bitsandbytes' format: what
 * transformers writes for a model loaded with `load_in_4bit` (and what {@link loadModel} reads back).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError, withCallSite } from '../errors';
import { removeFileDurably, writeFileAtomic } from '../io/atomic';
import { checkInsideOutput } from '../io/output-path';
import { writeSafetensors } from '../io/safetensors';
import { hfConfigJson, TORCH_DTYPES } from '../models/hf-config';
import type { Model } from '../models/model';
import { TOKENIZER_FILES, writeModelFiles } from '../models/model-files';
import type { Tensor } from '../tensor';
import { fail } from '../validate';
import { quantizationConfigJson } from './bnb-config';
import { bnbTensors } from './bnb-format';

/**
 * Writes a model whose linear layers are 4-bit (see {@link loadModel}'s `quantization`) to `dir` as
 * bitsandbytes does: `model.safetensors` with every 4-bit weight as `weight` (packed u8),
 * `weight.absmax`, `weight.quant_map`, `weight.nested_*` and `weight.quant_state.bitsandbytes__nf4`
 * (or `__fp4`), the other weights as they are held; `config.json` with transformers'
 * `quantization_config`; the tokenizer files of the source directory. Each file is written
 * atomically, config.json last.
 * @example await saveQuantizedModel(await loadModel(dir, { quantization: { load_in_4bit: true, bnb_4bit_quant_type: 'nf4' } }), 'out/nf4');
 */
export function saveQuantizedModel(model: Model, dir: string): Promise<void> {
  return withCallSite(() => model.lock.run('saveQuantizedModel()', async () => {
    if (typeof dir !== 'string' || dir === '') fail('dir', 'a directory path', dir);
    const quantized = model.quantizedWeights();
    if (model.ggmlWeights().size) {
      throw new PeftError('The model holds GGUF block-quantized weights, which a bitsandbytes checkpoint cannot store; export them with exportGguf() or load the GGUF with { keepQuantized: false }', 'E_UNSUPPORTED');
    }
    const first = quantized.values().next().value;
    if (!first) throw new PeftError('The model has no 4-bit weights to save; load it with the quantization option', 'E_CONFIG');
    for (const file of ['model.safetensors', 'config.json', ...TOKENIZER_FILES]) checkInsideOutput(dir, path.join(dir, file));
    fs.mkdirSync(dir, { recursive: true });
    if (fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) {
      throw new PeftError(`${dir} holds a sharded checkpoint (model.safetensors.index.json) that would shadow the saved model.safetensors`, 'E_IO');
    }
    // config.json goes last and an old one first: a save cut short leaves a folder loadModel refuses.
    removeFileDurably(path.join(dir, 'config.json'));
    const tensors: Record<string, Tensor> = {};
    for (const name of model.parameterNames()) {
      const q = quantized.get(name);
      if (q) Object.assign(tensors, bnbTensors(q, name));
      else tensors[name] = model.parameter(name);
    }
    await writeSafetensors(path.join(dir, 'model.safetensors'), tensors, { format: 'pt' });

    const sourceConfig = await writeModelFiles(model, dir);
    const settings = {
      quantType: first.quant_type,
      doubleQuant: first.double_quant,
      blocksize: first.blocksize,
      computeDtype: model.quantizedComputeDtype() ?? 'f32',
    };
    const config = {
      ...(sourceConfig ?? hfConfigJson(model.config, first.dtype)),
      torch_dtype: TORCH_DTYPES[first.dtype],
      quantization_config: quantizationConfigJson(settings),
    };
    writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  }));
}
