/** The data pipeline: JSONL records to tokenized, packed, batched training data. */
export { loadDataset, loadDatasets, type DataSource, type DataFiles, type DataSplit, type Datasets } from './load';
export { Dataset, type BatchOptions, type IterateOptions } from './dataset';
export { IGNORE_INDEX } from './encode';
export { ALPACA_PROMPT_WITH_INPUT, ALPACA_PROMPT_NO_INPUT, alpacaPrompt } from './render';
export { CHAT_ROLES } from './records';
export {
  DATA_FORMATS,
  type DataFormat,
  type DataOptions,
  type DatasetStats,
  type DataPosition,
  type Batch,
  type Example,
  type ClassLabel,
  type RecordSource,
} from './types';
