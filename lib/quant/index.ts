/** 4-bit quantization (NF4, FP4) in bitsandbytes' layout and file format. */
export { QuantizedTensor, type QuantType, type QuantSourceDType, type NestedQuantState } from './quantized-tensor';
export {
  quantize,
  quantizeAsync,
  dequantize,
  dequantizeAsync,
  quantMatmul,
  quantMatmulAsync,
  type QuantizeOptions,
  type DequantizeOptions,
  type QuantMatmulOptions,
} from './quantize';
export { bnbTensors, readBnbQuantized, bnbQuantizedNames, type TensorLookup } from './bnb-format';
export { type BitsAndBytesConfig, type ComputeDType } from './bnb-config';
export { saveQuantizedModel } from './save-model';
export {
  GgmlTensor,
  GGML_QUANT_TYPES,
  type GgmlQuantType,
  quantizeGgml,
  quantizeGgmlAsync,
  dequantizeGgml,
  dequantizeGgmlAsync,
  ggmlMatmul,
  ggmlMatmulAsync,
  type GgmlMatmulOptions,
} from './ggml-tensor';
