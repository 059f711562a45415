/**
 * A Hugging Face `config.json` object for a model config (Llama family or GPT-2): the inverse of
 * configFromHf, with transformers' field names, for models loaded from GGUF files or built in code.
 */
import { PeftError } from '../errors';
import type { LlamaConfig } from './config';

const ARCHITECTURES: Record<string, string> = {
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  smollm: 'LlamaForCausalLM',
};

/** torch_dtype names of our dtypes. */
export const TORCH_DTYPES = { f32: 'float32', bf16: 'bfloat16', f16: 'float16' } as const;

export function hfConfigJson(config: LlamaConfig, dtype: keyof typeof TORCH_DTYPES): Record<string, unknown> {
  if (config.architecture === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      n_embd: config.hiddenSize,
      n_layer: config.numLayers,
      n_head: config.numHeads,
      n_inner: config.intermediateSize,
      n_positions: config.maxPositionEmbeddings,
      vocab_size: config.vocabSize,
      layer_norm_epsilon: config.layerNormEps,
      activation_function: 'gelu_new',
      tie_word_embeddings: true,
      ...(config.bosTokenId === undefined ? {} : { bos_token_id: config.bosTokenId }),
      ...(config.eosTokenId === undefined ? {} : { eos_token_id: config.eosTokenId }),
      torch_dtype: TORCH_DTYPES[dtype],
    };
  }
  const scaling = config.ropeScaling;
  if (scaling?.type === 'factors') {
    throw new PeftError('This model\'s RoPE scaling came from a GGUF rope_freqs tensor, which a config.json cannot state; export it as GGUF instead', 'E_UNSUPPORTED');
  }
  const modelType = config.modelType === 'smollm' ? 'llama' : config.modelType;
  return {
    architectures: [ARCHITECTURES[config.modelType] ?? 'LlamaForCausalLM'],
    model_type: modelType,
    hidden_size: config.hiddenSize,
    intermediate_size: config.intermediateSize,
    num_hidden_layers: config.numLayers,
    num_attention_heads: config.numHeads,
    num_key_value_heads: config.numKvHeads,
    head_dim: config.headDim,
    vocab_size: config.vocabSize,
    max_position_embeddings: config.maxPositionEmbeddings,
    rms_norm_eps: config.rmsNormEps,
    rope_theta: config.ropeTheta,
    rope_scaling: !scaling ? null
      : scaling.type === 'linear' ? { rope_type: 'linear', type: 'linear', factor: scaling.factor }
        : {
            rope_type: 'llama3',
            factor: scaling.factor,
            low_freq_factor: scaling.lowFreqFactor,
            high_freq_factor: scaling.highFreqFactor,
            original_max_position_embeddings: scaling.originalMaxPositionEmbeddings,
          },
    hidden_act: 'silu',
    tie_word_embeddings: config.tieWordEmbeddings,
    attention_bias: config.attentionBias,
    mlp_bias: config.mlpBias,
    ...(config.bosTokenId === undefined ? {} : { bos_token_id: config.bosTokenId }),
    ...(config.eosTokenId === undefined ? {} : { eos_token_id: config.eosTokenId }),
    torch_dtype: TORCH_DTYPES[dtype],
  };
}
