import * as fs from 'node:fs';
import * as path from 'node:path';

import { configFromGguf, configFromHf, PeftError, ropeInverseFrequencies } from '../../lib';
import { STORIES_HF_DIR } from '../helpers/models';

const HF_DIR = STORIES_HF_DIR;
const hfConfig = () => JSON.parse(fs.readFileSync(path.join(HF_DIR, 'config.json'), 'utf8'));

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof PeftError ? e.code : String(e);
  }
  return 'no error';
}

describe('model configs', () => {
  it('reads stories260K from config.json', () => {
    expect(configFromHf(hfConfig())).toEqual({
      architecture: 'llama',
      modelType: 'llama',
      hiddenSize: 64,
      intermediateSize: 172,
      numLayers: 5,
      numHeads: 8,
      numKvHeads: 4,
      headDim: 8,
      vocabSize: 512,
      rmsNormEps: 1e-5,
      ropeTheta: 10000,
      ropeScaling: undefined,
      maxPositionEmbeddings: 512,
      tieWordEmbeddings: true,
      attentionBias: false,
      mlpBias: false,
      qkNorm: false,
      slidingWindow: undefined,
      fusedProjections: false,
      bosTokenId: 1,
      eosTokenId: 2,
    });
  });

  it('gives Qwen2 its q/k/v biases and derives head_dim', () => {
    const c = configFromHf({ ...hfConfig(), model_type: 'qwen2', head_dim: undefined, num_key_value_heads: undefined });
    expect(c.attentionBias).toBe(true);
    expect(c.headDim).toBe(8);
    expect(c.numKvHeads).toBe(8);
  });

  it('refuses configs it cannot run, saying which field', () => {
    expect(codeOf(() => configFromHf({ ...hfConfig(), model_type: 'bloom' }))).toBe('E_UNSUPPORTED');
    expect(() => configFromHf({ ...hfConfig(), num_key_value_heads: 3 })).toThrow(/a divisor of num_attention_heads \(8\) for num_key_value_heads/);
    expect(() => configFromHf({ ...hfConfig(), hidden_size: -1 })).toThrow(/positive integer for hidden_size/);
    expect(codeOf(() => configFromHf({ ...hfConfig(), rope_scaling: { rope_type: 'yarn', factor: 4 } }))).toBe('E_UNSUPPORTED');
  });

  it('refuses sizes beyond any real model before anything is sized by them', () => {
    expect(() => configFromHf({ ...hfConfig(), num_hidden_layers: 6881285 })).toThrow(/at most 4096 .* for num_hidden_layers/);
    expect(() => configFromHf({ ...hfConfig(), hidden_size: 1e20 })).toThrow(/at most 1048576 .* for hidden_size/);
    expect(() => configFromHf({ ...hfConfig(), head_dim: 2 ** 30 })).toThrow(/for head_dim/);
    expect(() => configFromHf({ ...hfConfig(), vocab_size: 2 ** 40 })).toThrow(/for vocab_size/);
    expect(codeOf(() => configFromHf(null as never))).toBe('E_FORMAT');
    expect(codeOf(() => configFromHf([] as never))).toBe('E_FORMAT');
  });

  it('reads the same config from GGUF metadata', () => {
    const metadata = {
      'general.architecture': 'llama',
      'llama.embedding_length': 64,
      'llama.feed_forward_length': 172,
      'llama.block_count': 5,
      'llama.attention.head_count': 8,
      'llama.attention.head_count_kv': 4,
      'llama.attention.layer_norm_rms_epsilon': 1e-5,
      'llama.rope.freq_base': 10000,
      'llama.context_length': 2048,
      'tokenizer.ggml.tokens': new Array(512).fill('x'),
      'tokenizer.ggml.bos_token_id': 1,
      'tokenizer.ggml.eos_token_id': 2,
    };
    const fromGguf = configFromGguf(metadata, false);
    const fromHf = configFromHf(hfConfig());
    expect({ ...fromGguf, maxPositionEmbeddings: 0 }).toEqual({ ...fromHf, maxPositionEmbeddings: 0 });
    expect(configFromGguf(metadata, true).tieWordEmbeddings).toBe(false);
  });

  it('computes RoPE frequencies with linear and llama3 scaling as transformers does', () => {
    const base = { headDim: 128, ropeTheta: 500000 };
    const plain = ropeInverseFrequencies(base);
    for (let i = 0; i < 64; i++) expect(plain[i]).toBeCloseTo(Math.fround(1 / 500000 ** ((2 * i) / 128)), 12);
    const linear = ropeInverseFrequencies({ ...base, ropeScaling: { type: 'linear', factor: 4 } });
    for (let i = 0; i < 64; i++) expect(Math.abs(linear[i] - plain[i] / 4)).toBeLessThan(1e-6 * plain[i]);
    // Llama 3.1's published scaling: factor 8, low 1, high 4, original context 8192.
    const l3 = ropeInverseFrequencies({
      ...base,
      ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
    });
    let kept = 0;
    let divided = 0;
    let blended = 0;
    for (let i = 0; i < 64; i++) {
      const wavelen = (2 * Math.PI) / plain[i];
      if (wavelen < 8192 / 4) {
        expect(l3[i]).toBe(plain[i]);
        kept++;
      } else if (wavelen > 8192) {
        expect(Math.abs(l3[i] - plain[i] / 8)).toBeLessThan(1e-6 * plain[i]);
        divided++;
      } else {
        const smooth = (8192 / wavelen - 1) / (4 - 1);
        const expected = (1 - smooth) * (plain[i] / 8) + smooth * plain[i];
        expect(Math.abs(l3[i] - expected)).toBeLessThan(1e-6 * expected);
        blended++;
      }
    }
    expect(kept * divided * blended).toBeGreaterThan(0); // all three bands were exercised
  });
});
