/**
 * Checkpoints: one folder per save, `<output_dir>/checkpoint-<step>/`, holding
 * - the adapter (adapter_config.json + adapter_model.safetensors, loadable with loadAdapter),
 * - trainable_parameters.safetensors: every trainable tensor by its native name, bit for bit
 *   (what resuming restores; it covers prompt encoders and trained copies the adapter file leaves out),
 * - optimizer.safetensors: the optimizer's moments (`exp_avg.<name>`, `exp_avg_sq.<name>` or
 *   `momentum_buffer.<name>`),
 * - trainer_state.json: step, schedule, data position, dropout stream, best evaluation, histories.
 * A checkpoint is written into a hidden temporary folder and renamed into place, so a folder named
 * checkpoint-<step> is always complete; an interrupted save leaves at most a temporary folder that
 * the next run removes. Old checkpoints are renamed to a hidden name before they are deleted, so an
 * interrupted deletion never leaves a half-deleted checkpoint-<step> either. Resuming skips folders
 * that lack a file (not written by this code) and symbolic links.
 * @internal
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { DataPosition } from '../data/types';
import { PeftError } from '../errors';
import { fsyncDir } from '../io/atomic';
import { checkInsideOutput } from '../io/output-path';
import type { OptimizerName } from './optimizer';
import type { ScheduleState } from './schedule';

export const STATE_FILE = 'trainer_state.json';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const PARAMETERS_FILE = 'trainable_parameters.safetensors';
const FORMAT = 'peft-native trainer state';
const PREFIX = 'checkpoint-';
// Hidden folders: a save in progress (.part), the folder it replaces (.part….old), one being deleted (.trash).
const PART = /^\.(checkpoint-\d+)\.(?:part|trash)-(\d+)-\d+(\.old)?$/;
// A file that io/atomic.ts was writing (report.html, run.jsonl, a model file) when its process died.
const FILE_PART = /^\.(.+)\.part-(\d+)-\d+-\d+$/;

/** One optimizer step in the history. */
export interface StepRecord {
  step: number;
  /** NaN or infinite (null in JSON) on a skipped step. */
  loss: number;
  lr: number;
  /** Before clipping. */
  grad_norm: number;
  tokens: number;
  /** The clipping factor applied (1: not clipped); absent on a skipped step. */
  clip_coef?: number;
  /** No update: the loss or gradient was NaN or infinite (nan_policy 'skip'). */
  skipped?: boolean;
  /** The loss was flagged as a spike (it still trained, with loss_spike_policy 'warn'). */
  loss_spike?: boolean;
}

/** One evaluation in the history. */
export interface EvalRecord {
  step: number;
  eval_loss: number;
  perplexity: number;
}

/** What must match for a checkpoint to continue this run (else it is another run's). */
export interface RunFingerprint {
  seed: number;
  per_device_train_batch_size: number;
  gradient_accumulation_steps: number;
  dataloader_drop_last: boolean;
  optimizer: OptimizerName;
  /** Sequences in the training set. */
  train_examples: number;
  /** Trainable parameter name → shape. */
  parameters: Record<string, number[]>;
}

/** trainer_state.json. */
export interface TrainerState {
  format: typeof FORMAT;
  version: 1;
  global_step: number;
  /** Epochs done, fractional. */
  epoch: number;
  /** Where the next batch is. */
  data_position: DataPosition;
  scheduler: ScheduleState;
  optimizer_steps: number;
  /** The dropout stream's position (PeftModel's training forwards). */
  dropout_counter: number;
  best: { step: number; eval_loss: number; checkpoint?: string } | null;
  /** Evaluations since the last significant improvement (early stopping). */
  evals_without_improvement: number;
  log_history: StepRecord[];
  eval_history: EvalRecord[];
  run: RunFingerprint;
  /** The run's hyper-parameters, for people reading the file. */
  args: Record<string, unknown>;
}

/** Builds a state object with the format fields. */
export function trainerState(fields: Omit<TrainerState, 'format' | 'version'>): TrainerState {
  return { format: FORMAT, version: 1, ...fields };
}

/** The folder name of the checkpoint of `step`. */
export function checkpointName(step: number): string {
  return `${PREFIX}${step}`;
}

/** Checkpoint folders in `outputDir`, oldest step first. */
export function listCheckpoints(outputDir: string): Array<{ step: number; path: string }> {
  if (!fs.existsSync(outputDir)) return [];
  return fs
    .readdirSync(outputDir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && /^checkpoint-\d+$/.test(e.name))
    .map((e) => ({ step: Number(e.name.slice(PREFIX.length)), path: path.join(outputDir, e.name) }))
    .sort((a, b) => a.step - b.step);
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether `dir` holds every file a checkpoint has (the Trainer's own folders always do). */
export function isCompleteCheckpoint(dir: string): boolean {
  return [STATE_FILE, OPTIMIZER_FILE, PARAMETERS_FILE].every((f) => fs.existsSync(path.join(dir, f)));
}

/** The newest complete checkpoint in `outputDir`, if any. */
export function latestCheckpoint(outputDir: string): { step: number; path: string } | undefined {
  return listCheckpoints(outputDir).filter((c) => isCompleteCheckpoint(c.path)).pop();
}

/**
 * Cleans up after a process that died while saving: removes its temporary folders and the temporary
 * files of its atomic writes (report.html, run.jsonl, ...), and puts back a checkpoint it had moved
 * aside to replace (killed between the two renames of a replacement).
 */
export function removeUnfinishedSaves(outputDir: string): void {
  if (!fs.existsSync(outputDir)) return;
  for (const name of fs.readdirSync(outputDir)) {
    const file = FILE_PART.exec(name);
    if (file && !alive(Number(file[2]))) fs.rmSync(path.join(outputDir, name), { force: true });
    const m = PART.exec(name);
    if (!m || alive(Number(m[2]))) continue;
    const full = path.join(outputDir, name);
    const final = path.join(outputDir, m[1]);
    if (m[3] && !fs.existsSync(final) && isCompleteCheckpoint(full)) fs.renameSync(full, final);
    else fs.rmSync(full, { recursive: true, force: true });
  }
  fsyncDir(outputDir);
}

/** Deletes a checkpoint folder: first renamed to a hidden name (atomic), then removed. */
export function removeCheckpoint(dir: string): void {
  const trash = path.join(path.dirname(dir), `.${path.basename(dir)}.trash-${process.pid}-${Date.now()}`);
  fs.renameSync(dir, trash);
  fsyncDir(path.dirname(dir));
  fs.rmSync(trash, { recursive: true, force: true });
}

/**
 * Writes a checkpoint atomically: `fill` writes the files into a temporary folder, which is then
 * renamed to `<outputDir>/checkpoint-<step>` (replacing an older folder of that name). On failure
 * the temporary folder is removed and nothing named checkpoint-<step> changes.
 */
export async function writeCheckpoint(outputDir: string, step: number, fill: (dir: string) => Promise<void>): Promise<string> {
  const final = path.join(outputDir, checkpointName(step));
  const part = path.join(outputDir, `.${checkpointName(step)}.part-${process.pid}-${Date.now()}`);
  checkInsideOutput(outputDir, final);
  try {
    fs.mkdirSync(part, { recursive: true });
    await fill(part);
    fsyncDir(part);
    if (fs.lstatSync(final, { throwIfNoEntry: false })) {
      // rename() cannot replace a non-empty folder: move the old one aside first.
      const old = `${part}.old`;
      fs.renameSync(final, old);
      fs.renameSync(part, final);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(part, final);
    }
    fsyncDir(outputDir);
  } catch (err) {
    fs.rmSync(part, { recursive: true, force: true });
    if (err instanceof PeftError) throw err;
    throw new PeftError(`Could not write the checkpoint ${final}: ${(err as Error).message}`, 'E_IO');
  }
  return final;
}

/** Reads and checks a checkpoint's trainer_state.json. */
export function readTrainerState(dir: string): TrainerState {
  const file = path.join(dir, STATE_FILE);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    throw new PeftError(`Expected a checkpoint folder with ${STATE_FILE} but ${dir} has none (resume from a checkpoint-<step> folder the Trainer wrote)`, 'E_IO');
  }
  let state: TrainerState;
  try {
    state = JSON.parse(text);
  } catch (err) {
    throw new PeftError(`${file} is not valid JSON: ${(err as Error).message}`, 'E_FORMAT');
  }
  if (typeof state !== 'object' || state === null || state.format !== FORMAT || state.version !== 1) {
    throw new PeftError(`${file} is not a peft-native trainer state (version 1)`, 'E_FORMAT');
  }
  for (const f of [OPTIMIZER_FILE, PARAMETERS_FILE]) {
    if (!fs.existsSync(path.join(dir, f))) throw new PeftError(`The checkpoint ${dir} has no ${f}: it is incomplete`, 'E_FORMAT');
  }
  return state;
}

/** Deletes the oldest checkpoints beyond `limit`, never one named in `keep` (the best). */
export function pruneCheckpoints(outputDir: string, limit: number, keep: ReadonlySet<string>): string[] {
  const all = listCheckpoints(outputDir);
  const removed: string[] = [];
  let excess = all.length - limit;
  for (const c of all) {
    if (excess <= 0) break;
    if (keep.has(path.basename(c.path))) continue;
    removeCheckpoint(c.path);
    removed.push(c.path);
    excess--;
  }
  return removed;
}

/** Explains the first difference between a checkpoint's run and this one, or returns undefined. */
export function fingerprintMismatch(saved: RunFingerprint, current: RunFingerprint): string | undefined {
  const savedNames = Object.keys(saved.parameters ?? {});
  const names = Object.keys(current.parameters);
  const missing = names.filter((n) => !(n in (saved.parameters ?? {})));
  if (missing.length || savedNames.length !== names.length) {
    const extra = savedNames.filter((n) => !(n in current.parameters));
    return `its trainable parameters differ from this model's (${missing.length ? `${missing[0]} is not in it` : `it has ${extra[0]}`})`;
  }
  for (const n of names) {
    if (JSON.stringify(saved.parameters[n]) !== JSON.stringify(current.parameters[n])) {
      return `${n} has shape [${saved.parameters[n]}] there but [${current.parameters[n]}] here`;
    }
  }
  const keys: Array<keyof RunFingerprint> = ['optimizer', 'seed', 'per_device_train_batch_size', 'gradient_accumulation_steps', 'dataloader_drop_last', 'train_examples'];
  for (const k of keys) {
    if (saved[k] !== current[k]) return `it used ${k} ${JSON.stringify(saved[k])} but this run uses ${JSON.stringify(current[k])}`;
  }
  return undefined;
}
