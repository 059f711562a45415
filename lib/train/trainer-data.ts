/** The Trainer's data: the Datasets it was given, or its JSONL files read with the model's tokenizer. @internal */
import type { Dataset } from '../data/dataset';
import { loadDatasets } from '../data/load';
import { PeftError } from '../errors';
import type { PeftModel } from '../peft/peft-model';
import { fail } from '../validate';
import type { ResolvedArguments, TrainingArguments } from './training-args';

export interface TrainerData {
  train: Dataset;
  eval?: Dataset;
}

/** train_dataset / eval_dataset, or train_file / valid_file tokenized up to max_seq_length (default: 2048 or the context). */
export async function trainerData(peft: PeftModel, o: TrainingArguments, args: ResolvedArguments): Promise<TrainerData> {
  let train = o.train_dataset;
  let valid = o.eval_dataset;
  if (o.train_file !== undefined || o.valid_file !== undefined) {
    const tokenizer = peft.base.tokenizer;
    if (!tokenizer) throw new PeftError('The model has no tokenizer to read train_file / valid_file with; load it with one, or pass Datasets', 'E_CONFIG');
    const context = peft.base.config.maxPositionEmbeddings;
    const maxSeqLength = args.max_seq_length ?? Math.min(2048, context);
    if (maxSeqLength > context) fail('max_seq_length', `at most ${context} (the model's context)`, maxSeqLength, 'E_CONFIG');
    const options = { maxSeqLength, packing: args.packing };
    if (o.train_file !== undefined) {
      const sets = await loadDatasets({ train: o.train_file, valid: o.valid_file }, tokenizer, options);
      train = sets.train;
      valid = sets.valid ?? valid;
    } else {
      valid = (await loadDatasets({ train: o.valid_file! }, tokenizer, options)).train;
    }
  }
  for (const [name, d] of [['training', train], ['validation', valid]] as const) {
    if (d?.format === 'classification') {
      throw new PeftError(`The ${name} data is classification data ({"text","label"}); the Trainer trains language models on text formats`, 'E_UNSUPPORTED');
    }
  }
  return { train: train!, eval: valid };
}
