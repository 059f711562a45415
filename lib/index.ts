/**
 * peft-native: parameter-efficient fine-tuning of pretrained transformers in Node.js.
 * @packageDocumentation
 */
export { PeftError, type PeftErrorCode } from './errors';
export { type DType, type RawArray, DTYPES, dtypeSize } from './dtype';
export { Tensor, tensor, zeros, type TensorData, type NestedArray } from './tensor';
export * as ops from './ops';
export * as runtime from './runtime';
export type { Isa } from './runtime';
export {
  readSafetensors,
  readSafetensorsModel,
  writeSafetensors,
  writeSafetensorsSync,
  SafetensorsFile,
  type SafetensorsSource,
  type SafetensorsTensorInfo,
} from './io/safetensors';
export { Tokenizer, loadTokenizer, type ChatMessage, type EncodeOptions, type DecodeOptions } from './models/tokenizer';
export { configFromHf, configFromGguf, ropeInverseFrequencies, ropeScalingFactors, type LlamaConfig, type RopeScaling } from './models/config';
export { resolveModel, parseHubReference, defaultCacheDir, type ResolveOptions, type HubReference } from './models/hub';
export { readGguf, GgufFile, type GgufValue, type GgufTensorInfo, type GgmlTypeName } from './io/gguf';
export { loadModel, Model, type TokenIds, type LossResult, type GenerateOptions, type LoadModelOptions } from './models/model';
export { Sampler, type SamplingOptions } from './models/sampling';
export {
  quantize,
  quantizeAsync,
  dequantize,
  dequantizeAsync,
  quantMatmul,
  quantMatmulAsync,
  QuantizedTensor,
  bnbTensors,
  readBnbQuantized,
  bnbQuantizedNames,
  type QuantType,
  type QuantSourceDType,
  type NestedQuantState,
  type QuantizeOptions,
  type DequantizeOptions,
  type QuantMatmulOptions,
  type TensorLookup,
} from './quant';
