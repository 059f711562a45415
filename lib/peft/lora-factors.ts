/**
 * Where an adapter's LoRA factors live in the native model: on linear layers (A [r, in], B [out, r])
 * and on the token embeddings (lora_embedding_A [r, vocab], lora_embedding_B [hidden, r], the delta
 * of the embedding table being s·(B·A)ᵀ).
 * @internal
 */
import type { Model } from '../models/model';
import { loraA, loraB } from './names';

/** The token-embedding module's name: model.embed_tokens (Llama family) or transformer.wte (GPT-2). */
export const embeddingsOf = (model: Model) => (model.config.architecture === 'gpt2' ? 'transformer.wte' : 'model.embed_tokens');

export interface LoraSite {
  module: string;
  /** Native parameter names of A and B. */
  a: string;
  b: string;
  inFeatures: number;
  outFeatures: number;
  embedding: boolean;
}

/** Every place `adapter` could have LoRA factors, whether or not it has them. */
export function loraSites(model: Model, adapter: string): LoraSite[] {
  const sites: LoraSite[] = model.nativeModel.linearModules().map((m) => ({
    module: m.name, a: loraA(m.name, adapter), b: loraB(m.name, adapter), inFeatures: m.inFeatures, outFeatures: m.outFeatures, embedding: false,
  }));
  const embeddings = embeddingsOf(model);
  sites.push({
    module: embeddings,
    a: `${embeddings}.lora_embedding_A.${adapter}`,
    b: `${embeddings}.lora_embedding_B.${adapter}`,
    inFeatures: model.config.vocabSize,
    outFeatures: model.config.hiddenSize,
    embedding: true,
  });
  return sites;
}
