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
export { readGguf, GgufFile, type GgufValue, type GgufTensorInfo, type GgmlTypeName } from './io/gguf';
