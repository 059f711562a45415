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
export { resolveModel, resolveAdapter, parseHubReference, defaultCacheDir, type ResolveOptions, type HubReference } from './models/hub';
export { readGguf, GgufFile, type GgufValue, type GgufTensorInfo, type GgmlTypeName } from './io/gguf';
export { loadModel, Model, type TokenIds, type LossResult, type LossOptions, type GenerateOptions, type LoadModelOptions } from './models/model';
export { Sampler, type SamplingOptions } from './models/sampling';
export { getPeftModel, loadAdapter, PeftModel, type AdapterOptions, type AdapterRowOptions, type MergeOptions } from './peft/peft-model';
export { type WeightedAdapterOptions, type CombinationType } from './peft/combine';
export { exportMerged, exportGgufLora, type ExportMergedOptions, type ExportGgufLoraOptions } from './peft/export';
export { exportGguf, type ExportGgufOptions } from './peft/export-gguf';
export { GGUF_FILE_TYPES, type GgufFileType } from './io/gguf-quant-mix';
export { writeGguf, type GgufMetadataValue, type GgufScalarType } from './io/gguf-writer';
export {
  normalizeConfig,
  type PeftConfig,
  type PeftType,
  type TaskType,
  type TargetModules,
  type LoraConfig,
  type IA3Config,
  type PromptTuningConfig,
  type PrefixTuningConfig,
  type PromptEncoderConfig,
  type LNTuningConfig,
  type BitFitConfig,
  type BottleneckConfig,
} from './peft/config';
export {
  loadDataset,
  loadDatasets,
  Dataset,
  IGNORE_INDEX,
  DATA_FORMATS,
  alpacaPrompt,
  type DataSource,
  type DataFiles,
  type DataSplit,
  type Datasets,
  type BatchOptions,
  type IterateOptions,
  type DataFormat,
  type DataOptions,
  type DatasetStats,
  type DataPosition,
  type Batch,
  type Example,
  type ClassLabel,
  type RecordSource,
} from './data';
export { LrSchedule, lrMultiplier, resolveWarmupSteps, SCHEDULE_TYPES, type ScheduleType, type ScheduleOptions, type ScheduleState } from './train/schedule';
export { RunLog, readRunLog, type RunEvent, type RunRecord, type StartEvent, type StepEvent, type EvalEvent, type SaveEvent, type WarningEvent, type EndEvent } from './train/run-log';
export { summarizeRun, type RunSummary, type RunHealth } from './train/run-summary';
export { renderReport, writeReport, type ReportOptions } from './train/report';
export { TrainingProgress, printSummary, type ProgressOptions, type ProgressUpdate, type ProgressStream } from './train/progress';
export { Trainer, type TrainOptions, type TrainResult, type StopReason, type TrainingHealth } from './train/trainer';
export { type NanPolicy, type LossSpikePolicy } from './train/health';
export { type TrainingArguments, type ResolvedArguments } from './train/training-args';
export { type TrainerCallbacks, type StepInfo, type EvalInfo, type SaveInfo } from './train/callbacks';
export { type EvalResult } from './train/evaluate';
export { type OptimizerName } from './train/optimizer';
export { type StepRecord, type EvalRecord } from './train/checkpoint';
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
  saveQuantizedModel,
  type BitsAndBytesConfig,
  type ComputeDType,
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
} from './quant';
export { Engine, type EngineOptions, type EngineStats, type CompletionStream, type CompletionRequest, type CompletionResult, type CompletionChunk, type FinishReason } from './serve/engine';
export { createServer, PeftServer, type ServerOptions } from './serve/server';
export { AdapterPool, type AdapterPoolOptions, type AdapterPoolStats, type AdapterLease, type PooledAdapter, type PooledLoraModule } from './serve/adapter-pool';
