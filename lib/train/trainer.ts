/**
 * The Trainer: fine-tunes a {@link PeftModel} on a data set with AdamW or SGD, a learning-rate
 * schedule, gradient accumulation and clipping, periodic evaluation with early stopping, and
 * checkpoints that resume a run exactly. Every heavy call (forward, backward, optimizer step,
 * saving) runs on a worker thread, so the event loop stays free while it trains.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { Dataset } from '../data/dataset';
import { deriveSeed } from '../data/random';
import type { Batch, DataPosition } from '../data/types';
import { PeftError } from '../errors';
import { assertFiniteTensors, type NamedTensor } from '../models/finite-weights';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import { writeFileAtomic } from '../io/atomic';
import { checkInsideOutput } from '../io/output-path';
import { clipGradNormAsync } from '../ops/optim';
import { PeftModel } from '../peft/peft-model';
import { Tensor, tensor } from '../tensor';
import { fail } from '../validate';
import { accumulateGradients, microBatch, type MicroBatch } from './accumulate';
import { notify, type EvalInfo, type TrainerCallbacks } from './callbacks';
import {
  checkpointName,
  fingerprintMismatch,
  latestCheckpoint,
  listCheckpoints,
  OPTIMIZER_FILE,
  PARAMETERS_FILE,
  pruneCheckpoints,
  readTrainerState,
  removeCheckpoint,
  removeUnfinishedSaves,
  STATE_FILE,
  trainerState,
  writeCheckpoint,
  type EvalRecord,
  type RunFingerprint,
  type StepRecord,
  type TrainerState,
} from './checkpoint';
import { checkTokenData } from './check-data';
import { evaluateLoss, type EvalResult } from './evaluate';
import { clipCoefficient, healthMetrics, LossSpikeDetector, nonFiniteWhat, trainingHealth, type TrainingHealth } from './health';
import { firstNonFiniteGradient } from './nonfinite-grad';
import { copyInPlace } from './in-place';
import { LogWindow } from './log-window';
import { trainerData, type TrainerData } from './trainer-data';
import { Optimizer } from './optimizer';
import { TrainingProgress } from './progress';
import { writeReport } from './report';
import { RunLog, trimRunLog, type StepEvent, type WarningEvent } from './run-log';
import { LrSchedule } from './schedule';
import { argumentsJson, resolveArguments, type ResolvedArguments, type TrainingArguments } from './training-args';

/** Options of {@link Trainer.train}. */
export interface TrainOptions {
  /** Continue from a checkpoint folder, or `true` for the latest checkpoint in output_dir. */
  resumeFrom?: string | boolean;
}

/** Why a run ended. 'loss_spike': loss_spike_policy 'stop' stopped it before the spiking step's update. */
export type StopReason = 'completed' | 'early_stopping' | 'loss_spike' | 'aborted';

export type { TrainingHealth };

/** What {@link Trainer.train} resolves to. Histories cover the whole run, steps before a resume included. */
export interface TrainResult {
  /** Optimizer steps done. */
  global_step: number;
  /** Epochs done, fractional. */
  epoch: number;
  reason: StopReason;
  /** Mean of the step losses (skipped steps left out). */
  train_loss: number;
  /** The loss of each step: losses[i] is step i + 1's (NaN or infinite for a skipped step). */
  losses: number[];
  /** Clipping statistics, skipped steps and loss spikes. */
  health: TrainingHealth;
  log_history: StepRecord[];
  eval_history: EvalRecord[];
  /** The lowest eval loss, its step and its checkpoint folder (when saved). */
  best?: { step: number; eval_loss: number; checkpoint?: string };
  /** Checkpoint folders on disk at the end, oldest first. */
  checkpoints: string[];
  /** Seconds this call trained (not counting earlier sessions of a resumed run). */
  runtime_s: number;
  /** Tokens per second over this call's steps. */
  tokens_per_s: number;
  /** The run log and report, when written. */
  run_log?: string;
  report?: string;
}

const DROPOUT_SALT = 0x4452; // 'DR': keeps the dropout stream apart from the data order of the same seed
const BEST_IN_MEMORY = 'memory';

/** The mutable numbers of a run, saved in checkpoints. */
interface RunState {
  step: number;
  position: DataPosition;
  best: { step: number; eval_loss: number; checkpoint?: string } | null;
  /** Trainable values at the best evaluation, when it was not saved to disk. */
  bestValues?: Map<string, Float32Array>;
  evalsWithoutImprovement: number;
  logHistory: StepRecord[];
  evalHistory: EvalRecord[];
  /** The step the last checkpoint holds. */
  savedStep: number;
  evaluatedStep: number;
  /** Steps skipped in a row just now, and in the whole run (nan_policy 'skip'). */
  consecutiveSkips: number;
  skippedSteps: number;
}

/** Everything one call of train() works with. */
interface Session {
  train: Dataset;
  eval?: Dataset;
  params: Record<string, Tensor>;
  optimizer: Optimizer;
  schedule: LrSchedule;
  totalSteps: number;
  batchesPerEpoch: number;
  fingerprint: RunFingerprint;
  state: RunState;
  log?: RunLog;
  progress?: TrainingProgress;
  /** Absent with loss_spike_policy 'ignore'. */
  spikes?: LossSpikeDetector;
}

/** What one call of step() did. */
interface StepOutcome {
  record: StepRecord;
  tokensPerS: number;
  /** Set when loss_spike_policy 'stop' ended the run: the step was not applied or counted. */
  stop?: 'loss_spike';
}

/**
 * Fine-tunes the trainable parameters of a PEFT model. It refuses weights or data holding NaN or
 * infinities before the first step, stops (or skips, with nan_policy) a step whose loss or gradient
 * is not finite, flags loss spikes (loss_spike_policy), and records the gradient norm and clipping
 * of every step; {@link TrainResult.health} sums them up.
 *
 * @example
 * ```ts
 * const model = await loadModel('stories260K-hf');
 * const peft = getPeftModel(model, { peft_type: 'LORA', r: 8, lora_alpha: 16, target_modules: 'all-linear' }, { seed: 1 });
 * const trainer = new Trainer(peft, {
 *   train_file: 'train.jsonl', valid_file: 'valid.jsonl', output_dir: 'out',
 *   learning_rate: 2e-4, max_steps: 200, per_device_train_batch_size: 4, eval_steps: 50, save_steps: 50,
 * });
 * const result = await trainer.train();              // or train({ resumeFrom: true }) after an interruption
 * await peft.saveAdapter('out/adapter');
 * ```
 */
export class Trainer {
  readonly peft: PeftModel;
  /** The options with their defaults filled in. */
  readonly args: ResolvedArguments;
  private readonly options: TrainingArguments;
  private readonly callbacks: TrainerCallbacks[];
  private readonly warn: (message: string) => void;
  private data?: TrainerData;
  private running = false;

  constructor(peft: PeftModel, options: TrainingArguments = {}) {
    if (!(peft instanceof PeftModel)) fail('the model', 'a PeftModel (from getPeftModel, or loadAdapter with isTrainable: true)', peft, 'E_ARGUMENT');
    this.peft = peft;
    this.args = resolveArguments(options);
    this.options = options;
    this.warn = options.warn ?? ((m: string) => process.emitWarning(m));
    const cb = options.callbacks;
    this.callbacks = cb === undefined ? [] : Array.isArray(cb) ? cb : [cb];
    this.callbacks.forEach((c, i) => {
      if (typeof c !== 'object' || c === null) fail(`callbacks[${i}]`, 'an object with onStep / onEval / onSave functions', c, 'E_CONFIG');
    });
    if (options.train_dataset !== undefined && !(options.train_dataset instanceof Dataset)) fail('train_dataset', 'a Dataset (loadDataset)', options.train_dataset, 'E_CONFIG');
    if (options.eval_dataset !== undefined && !(options.eval_dataset instanceof Dataset)) fail('eval_dataset', 'a Dataset (loadDataset)', options.eval_dataset, 'E_CONFIG');
    if ((options.train_dataset === undefined) === (options.train_file === undefined)) {
      throw new PeftError('Give the training data as train_dataset (a Dataset) or train_file (a JSONL path), one of the two', 'E_CONFIG');
    }
    if (options.eval_dataset !== undefined && options.valid_file !== undefined) {
      throw new PeftError('Give the validation data as eval_dataset or valid_file, not both', 'E_CONFIG');
    }
    const hasEval = options.eval_dataset !== undefined || options.valid_file !== undefined;
    if (this.args.early_stopping_patience !== undefined && (!hasEval || this.args.eval_steps === undefined)) {
      throw new PeftError('early_stopping_patience needs validation data (eval_dataset or valid_file) and eval_steps', 'E_CONFIG');
    }
    if (options.signal !== undefined && !(options.signal instanceof AbortSignal)) fail('signal', 'an AbortSignal', options.signal, 'E_CONFIG');
    const architecture: string = peft.base.config.architecture;
    if (architecture === 'bert') {
      throw new PeftError('The Trainer trains causal language models; BERT sequence classification is not supported by it yet', 'E_UNSUPPORTED');
    }
    // Activation checkpointing: layers keep only their inputs and the backward recomputes them.
    if (this.args.gradient_checkpointing) peft.base.setGradientCheckpointing(true);
  }

  /**
   * Trains until max_steps (or the epochs) are done, early stopping triggers or the signal aborts.
   * With output_dir, writes checkpoints, run.jsonl and report.html there.
   * @throws PeftError E_BUSY (already training), E_CONFIG (bad data or checkpoint for this run),
   *   E_IO / E_FORMAT (unreadable data or checkpoint)
   */
  async train(options: TrainOptions = {}): Promise<TrainResult> {
    if (this.running) throw new PeftError('This Trainer is already training; await the running train() first', 'E_BUSY');
    // The model is busy for the whole run: other calls on it meanwhile get E_BUSY (callbacks may use it).
    return this.peft.base.lock.run('Trainer.train()', () => this.run(options));
  }

  private async run(options: TrainOptions): Promise<TrainResult> {
    this.running = true;
    const started = performance.now();
    let session: Session | undefined;
    let tokens = 0;
    let reason: StopReason = 'completed';
    try {
      session = await this.startSession(options);
      const { state, totalSteps } = session;
      const signal = this.options.signal;
      const batches = session.train.iterate(this.args.per_device_train_batch_size, {
        seed: this.args.seed,
        dropLast: this.args.dataloader_drop_last,
        from: state.position,
      });
      if (session.eval && this.args.eval_on_start && state.step === 0) await this.evaluateStep(session);
      const window = new LogWindow();
      while (state.step < totalSteps) {
        if (signal?.aborted) {
          reason = 'aborted';
          break;
        }
        const outcome = await this.step(session, batches);
        if (outcome.stop) {
          reason = outcome.stop;
          break;
        }
        const { record, tokensPerS } = outcome;
        tokens += record.tokens;
        window.add(record);
        if (state.step % this.args.logging_steps === 0 || state.step === totalSteps) {
          const w = window.fields();
          const line: StepEvent = { event: 'step', step: state.step, ...w, lr: record.lr, grad_norm: record.grad_norm, tokens_per_s: tokensPerS, memory: process.memoryUsage.rss() };
          if (record.clip_coef !== undefined) line.clip_coef = record.clip_coef;
          session.log?.write(line);
          session.progress?.update({ step: state.step, loss: w.loss, lr: record.lr, tokens_per_s: tokensPerS, grad_norm: record.grad_norm, clipped: (record.clip_coef ?? 1) < 1, skipped: state.skippedSteps });
          window.reset();
        }
        await notify(this.callbacks, 'onStep', { ...record, tokens_per_s: tokensPerS, epoch: this.epochOf(session) });

        let improved = false;
        if (session.eval && this.args.eval_steps !== undefined && state.step % this.args.eval_steps === 0) {
          const e = await this.evaluateStep(session);
          improved = e.is_best;
          const patience = this.args.early_stopping_patience;
          if (patience !== undefined && state.evalsWithoutImprovement >= patience) reason = 'early_stopping';
        }
        const due = this.args.save_steps !== undefined && state.step % this.args.save_steps === 0;
        if (this.args.output_dir !== undefined && (due || improved)) await this.save(session);
        if (reason === 'early_stopping') break;
      }
      // An aborted run, or one stopped at a loss spike, keeps its last checkpoint as it is.
      if (reason === 'completed' || reason === 'early_stopping') await this.finish(session);
      return this.result(session, reason, (performance.now() - started) / 1000, tokens);
    } catch (err) {
      try {
        if (session?.log) {
          session.log.write({ event: 'end', step: session.state.step, reason: 'error', metrics: healthMetrics(session.state.logHistory) });
          session.log.close();
          // The report shows what went wrong (a diverged step's warning, for one).
          writeReport(path.join(this.args.output_dir!, 'report.html'), session.log.path);
        }
      } catch {
        // the log was closed already; the error below is what matters
      }
      throw err;
    } finally {
      session?.progress?.stop();
      session?.log?.close();
      this.peft.train();
      this.running = false;
    }
  }

  /**
   * The loss and perplexity on `dataset` (default: the validation data). Leaves the model in
   * evaluation mode (dropout off), as Hugging Face's Trainer.evaluate does.
   */
  async evaluate(dataset?: Dataset): Promise<EvalResult> {
    if (dataset !== undefined && !(dataset instanceof Dataset)) fail('dataset', 'a Dataset (loadDataset)', dataset, 'E_ARGUMENT');
    const data = dataset ?? (await this.datasets()).eval;
    if (!data) throw new PeftError('No validation data: give eval_dataset or valid_file to the Trainer, or a Dataset to evaluate()', 'E_CONFIG');
    return this.peft.base.lock.run('Trainer.evaluate()', () => evaluateLoss(this.peft, data, this.args.per_device_eval_batch_size));
  }

  // --- a run, piece by piece ---

  /** The training and validation sets (read once). */
  private async datasets(): Promise<TrainerData> {
    if (!this.data) {
      const data = await trainerData(this.peft, this.options, this.args);
      // A bad token id (NaN, or outside the vocabulary) is refused here, naming its record, not mid-run.
      const vocab = this.peft.base.config.vocabSize;
      checkTokenData(data.train, vocab, 'training');
      if (data.eval) checkTokenData(data.eval, vocab, 'validation');
      this.data = data;
    }
    return this.data;
  }

  private async startSession(options: TrainOptions): Promise<Session> {
    const a = this.args;
    const { train, eval: evalData } = await this.datasets();
    this.peft.train();
    const params = this.peft.trainableParameters();
    if (Object.keys(params).length === 0) {
      throw new PeftError('The model has no trainable parameters (an adapter loaded without isTrainable: true?)', 'E_CONFIG');
    }
    const batchesPerEpoch = train.numBatches(a.per_device_train_batch_size, { dropLast: a.dataloader_drop_last });
    if (batchesPerEpoch === 0) {
      throw new PeftError(`The training data has ${train.length} sequences, fewer than one batch of ${a.per_device_train_batch_size} with dataloader_drop_last`, 'E_CONFIG');
    }
    const stepsPerEpoch = Math.ceil(batchesPerEpoch / a.gradient_accumulation_steps);
    const totalSteps = a.max_steps ?? Math.max(1, Math.ceil(a.num_train_epochs * stepsPerEpoch));
    const schedule = new LrSchedule({
      lr_scheduler_type: a.lr_scheduler_type,
      learning_rate: a.learning_rate,
      total_steps: totalSteps,
      warmup_steps: a.warmup_steps,
      warmup_ratio: a.warmup_ratio,
    });
    const optimizer = new Optimizer(params, a);
    const fingerprint: RunFingerprint = {
      seed: a.seed,
      per_device_train_batch_size: a.per_device_train_batch_size,
      gradient_accumulation_steps: a.gradient_accumulation_steps,
      dataloader_drop_last: a.dataloader_drop_last,
      optimizer: a.optimizer,
      train_examples: train.length,
      parameters: Object.fromEntries(Object.entries(params).map(([n, t]) => [n, t.shape])),
    };
    const state: RunState = {
      step: 0,
      position: { epoch: 0, index: 0 },
      best: null,
      evalsWithoutImprovement: 0,
      logHistory: [],
      evalHistory: [],
      savedStep: -1,
      evaluatedStep: -1,
      consecutiveSkips: 0,
      skippedSteps: 0,
    };
    const session: Session = { train, eval: evalData, params, optimizer, schedule, totalSteps, batchesPerEpoch, fingerprint, state };

    const resumeDir = this.resumeDir(options.resumeFrom);
    if (a.output_dir !== undefined) this.prepareOutputDir(a.output_dir, resumeDir !== undefined);
    if (resumeDir !== undefined) await this.restore(session, resumeDir);
    // A fresh run draws its dropout masks from a stream fixed by the seed.
    else this.peft.dropoutCounter = deriveSeed(a.seed, DROPOUT_SALT) * 2 ** 20;
    if (a.check_finite_weights) await this.checkFiniteWeights(session);
    if (a.loss_spike_policy !== 'ignore') session.spikes = LossSpikeDetector.fromHistory(state.logHistory, a.loss_spike_window, a.loss_spike_threshold);

    if (a.run_log) {
      const file = path.join(a.output_dir!, 'run.jsonl');
      if (resumeDir === undefined) fs.rmSync(file, { force: true });
      else trimRunLog(file, state.step); // steps after the checkpoint are trained (and logged) again
      session.log = RunLog.open(file);
      const config = { ...argumentsJson(this.options), ...(resumeDir ? { resumed_from: resumeDir } : {}) };
      session.log.write({ event: 'start', config, total_steps: totalSteps });
    }
    const p = this.options.progress;
    if (p) {
      session.progress = new TrainingProgress({ total: totalSteps, stream: p === true ? undefined : p });
      session.progress.start(state.step);
    }
    return session;
  }

  private resumeDir(resumeFrom: string | boolean | undefined): string | undefined {
    if (resumeFrom === undefined || resumeFrom === false) return undefined;
    if (resumeFrom === true) {
      const dir = this.args.output_dir;
      if (dir === undefined) throw new PeftError('resumeFrom: true needs output_dir, where the checkpoints are', 'E_CONFIG');
      const latest = latestCheckpoint(dir);
      if (!latest) throw new PeftError(`No checkpoint-<step> folder in ${dir} to resume from`, 'E_IO');
      return latest.path;
    }
    if (typeof resumeFrom !== 'string' || resumeFrom === '') fail('resumeFrom', 'a checkpoint folder or true', resumeFrom, 'E_CONFIG');
    return resumeFrom;
  }

  /** Creates output_dir; a fresh run refuses (or with overwrite_output_dir clears) another run's checkpoints. */
  private prepareOutputDir(dir: string, resuming: boolean): void {
    fs.mkdirSync(dir, { recursive: true });
    removeUnfinishedSaves(dir);
    for (const file of ['run.jsonl', 'report.html']) checkInsideOutput(dir, path.join(dir, file));
    const old = listCheckpoints(dir);
    if (resuming || old.length === 0) return;
    if (!this.args.overwrite_output_dir) {
      throw new PeftError(
        `${dir} already holds checkpoints of a run (${path.basename(old[old.length - 1].path)}): resume it with resumeFrom (--resume-from-checkpoint), ` +
          'choose another output_dir, or set overwrite_output_dir',
        'E_CONFIG',
      );
    }
    for (const c of old) removeCheckpoint(c.path);
  }

  /** Puts a checkpoint's parameters, optimizer, schedule, dropout stream and data position back. */
  private async restore(session: Session, dir: string): Promise<void> {
    const saved: TrainerState = readTrainerState(dir);
    const mismatch = fingerprintMismatch(saved.run, session.fingerprint);
    if (mismatch) throw new PeftError(`The checkpoint ${dir} is from another run: ${mismatch}`, 'E_CONFIG');
    const read = (file: string) => {
      const f = readSafetensors(path.join(dir, file));
      return (key: string) => (f.has(key) ? f.tensor(key).toFloat32Array() : undefined);
    };
    const values = read(PARAMETERS_FILE);
    for (const name of Object.keys(session.params)) {
      const v = values(name);
      if (!v || v.length !== session.params[name].size) throw new PeftError(`The checkpoint ${dir} has no values of ${name}`, 'E_FORMAT');
      await this.setValues(session, name, v);
    }
    session.optimizer.loadState(read(OPTIMIZER_FILE), saved.optimizer_steps, path.join(dir, OPTIMIZER_FILE));
    session.schedule = LrSchedule.fromState({ ...session.schedule.state(), step: saved.scheduler.step });
    this.peft.dropoutCounter = saved.dropout_counter;
    const s = session.state;
    s.step = saved.global_step;
    s.position = saved.data_position;
    s.best = saved.best;
    s.evalsWithoutImprovement = saved.evals_without_improvement;
    // JSON has no NaN: a skipped step's loss or norm comes back as null.
    s.logHistory = saved.log_history.map((r) => ({ ...r, loss: r.loss ?? NaN, grad_norm: r.grad_norm ?? NaN }));
    s.skippedSteps = s.logHistory.filter((r) => r.skipped).length;
    s.evalHistory = saved.eval_history;
    s.savedStep = saved.global_step;
    s.evaluatedStep = saved.eval_history.length ? saved.eval_history[saved.eval_history.length - 1].step : -1;
  }

  /**
   * Refuses to start from weights that hold NaN or infinities (E_NONFINITE, naming the tensor): the
   * trainable ones first, then the frozen base (an adapter or a weight replaced since loading).
   */
  private async checkFiniteWeights(session: Session): Promise<void> {
    const trainable: NamedTensor[] = Object.entries(session.params);
    const frozen: NamedTensor[] = this.peft.base.nativeModel
      .parameters()
      .filter((p) => !(p.name in session.params) && !p.quantized)
      .map((p) => [p.name, new Tensor(p.tensor)] as const);
    await assertFiniteTensors(
      [...trainable, ...frozen],
      'Trainer.train()',
      'Nothing was trained: load the model or adapter again (or find what wrote these values); check_finite_weights: false skips this check.',
    );
  }

  /**
   * Gives a trainable parameter saved values, in its own storage (which the model and the optimizer
   * share), whatever it held before (NaN and infinities of a diverged run too).
   */
  private async setValues(session: Session, name: string, values: Float32Array): Promise<void> {
    await copyInPlace(session.params[name], values);
  }

  private epochOf(session: Session): number {
    const p = session.state.position;
    return p.epoch + p.index / session.batchesPerEpoch;
  }

  /**
   * One optimizer step: gradient_accumulation_steps batches (fewer at the end of an epoch), their
   * accumulated gradient, clipping, the update at the scheduled learning rate. A NaN or infinite
   * loss or gradient norm stops the run or skips the update (nan_policy); a loss spike is logged or
   * stops the run before the update (loss_spike_policy).
   */
  private async step(session: Session, batches: Iterator<Batch>): Promise<StepOutcome> {
    const state = session.state;
    const started = performance.now();
    const micro: MicroBatch[] = [];
    while (micro.length < this.args.gradient_accumulation_steps) {
      const batch = batches.next().value as Batch;
      micro.push(microBatch(batch));
      state.position = batch.next;
      if (batch.next.index === 0) break; // the epoch ends here
    }
    this.peft.train();
    const acc = await accumulateGradients(this.peft, micro);
    const gradList = Object.keys(session.params).map((n) => acc.grads[n]);
    // Without clipping the norm is still measured for the log, with a bound no finite norm reaches.
    const maxNorm = this.args.max_grad_norm;
    const gradNorm = await clipGradNormAsync(gradList, maxNorm > 0 ? maxNorm : Number.MAX_VALUE);
    const lr = session.schedule.lr;
    const step = state.step + 1;
    const tokensPerS = () => acc.tokens / Math.max((performance.now() - started) / 1000, 1e-9);
    if (!Number.isFinite(acc.loss) || !Number.isFinite(gradNorm)) {
      return { record: await this.nonFiniteStep(session, step, acc.loss, gradNorm, acc.grads, lr, acc.tokens), tokensPerS: tokensPerS() };
    }
    state.consecutiveSkips = 0;
    const spike = session.spikes?.check(acc.loss);
    if (spike?.spike) {
      const stop = this.args.loss_spike_policy === 'stop';
      const message =
        `Loss spike at step ${step}: loss ${acc.loss.toPrecision(5)} is above ${spike.limit.toPrecision(5)} (mean ${spike.mean.toPrecision(5)} ` +
        `+ ${this.args.loss_spike_threshold} standard deviations of the last ${this.args.loss_spike_window} steps); ` +
        (stop ? 'training stopped before this step\'s update (loss_spike_policy: stop).' : 'training continues.');
      this.warnRun(session, { event: 'warning', step, kind: 'loss_spike', message, loss: acc.loss, grad_norm: gradNorm });
      if (stop) return { record: { step, loss: acc.loss, lr, grad_norm: gradNorm, tokens: acc.tokens, loss_spike: true }, tokensPerS: tokensPerS(), stop: 'loss_spike' };
    } else {
      session.spikes?.add(acc.loss);
    }
    await session.optimizer.step(acc.grads, lr);
    session.schedule.step();
    state.step = step;
    const record: StepRecord = { step, loss: acc.loss, lr, grad_norm: gradNorm, tokens: acc.tokens, clip_coef: clipCoefficient(gradNorm, maxNorm) };
    if (spike?.spike) record.loss_spike = true;
    state.logHistory.push(record);
    return { record, tokensPerS: tokensPerS() };
  }

  /**
   * A step whose loss or gradient norm is NaN or infinite: with nan_policy 'skip' (and fewer than
   * max_consecutive_nan_steps in a row) the update is left out but the step counts; otherwise the
   * run stops with E_NONFINITE before anything changes.
   */
  private async nonFiniteStep(session: Session, step: number, loss: number, gradNorm: number, grads: Record<string, Tensor>, lr: number, tokens: number): Promise<StepRecord> {
    const state = session.state;
    const bad = await firstNonFiniteGradient(Object.keys(session.params), grads);
    const where = bad ? `; the first parameter with a non-finite gradient is ${bad.name} (${bad.count} of ${bad.size} values)` : '';
    const what = `Step ${step}: ${nonFiniteWhat(loss, gradNorm)}${where}`;
    const skip = this.args.nan_policy === 'skip' && state.consecutiveSkips < this.args.max_consecutive_nan_steps;
    const saved = state.savedStep >= 0 ? `the last checkpoint (step ${state.savedStep}) is intact` : 'no checkpoint was written';
    const message = skip
      ? `${what}. Skipped: no update, the optimizer state is untouched (nan_policy: skip).`
      : `${what}. Training stopped before this step's update: the weights are those after step ${step - 1} and ${saved}. ` +
        (this.args.nan_policy === 'skip'
          ? `The ${state.consecutiveSkips} steps before it were skipped already (max_consecutive_nan_steps ${this.args.max_consecutive_nan_steps}): the weights have likely diverged.`
          : 'A lower learning_rate or max_grad_norm usually helps; nan_policy: \'skip\' skips such steps instead.');
    const event: WarningEvent = { event: 'warning', step, kind: 'non_finite', message, loss, grad_norm: gradNorm, ...(bad ? { parameter: bad.name } : {}) };
    if (!skip) {
      session.log?.write(event); // the error says the rest
      throw new PeftError(message, 'E_NONFINITE');
    }
    this.warnRun(session, event);
    state.consecutiveSkips++;
    state.skippedSteps++;
    // The step counts (max_steps, the schedule, the data position); only its update is left out.
    session.schedule.step();
    state.step = step;
    const record: StepRecord = { step, loss, lr, grad_norm: gradNorm, tokens, skipped: true };
    state.logHistory.push(record);
    return record;
  }

  /** A warning in the run log, on the progress display and to the `warn` option. */
  private warnRun(session: Session, event: WarningEvent): void {
    session.log?.write(event);
    session.progress?.log(`warning: ${event.message}`);
    this.warn(event.message);
  }

  /** Evaluates, tracks the best loss and the patience, logs and calls back. */
  private async evaluateStep(session: Session): Promise<EvalInfo> {
    const s = session.state;
    const r = await evaluateLoss(this.peft, session.eval!, this.args.per_device_eval_batch_size);
    this.peft.train();
    const isBest = s.best === null || r.eval_loss < s.best.eval_loss;
    const significant = s.best === null || s.best.eval_loss - r.eval_loss > this.args.early_stopping_threshold;
    s.evalsWithoutImprovement = significant ? 0 : s.evalsWithoutImprovement + 1;
    if (isBest) {
      s.best = { step: s.step, eval_loss: r.eval_loss };
      // Without a checkpoint to hold them (no output_dir, or the weights before training), keep the
      // best weights in memory for load_best_model_at_end.
      if ((this.args.output_dir === undefined || s.step === 0) && this.args.load_best_model_at_end) {
        s.best.checkpoint = BEST_IN_MEMORY;
        s.bestValues = new Map(Object.entries(session.params).map(([n, t]) => [n, t.toFloat32Array()]));
      }
    }
    s.evalHistory.push({ step: s.step, eval_loss: r.eval_loss, perplexity: r.perplexity });
    s.evaluatedStep = s.step;
    session.log?.write({ event: 'eval', step: s.step, eval_loss: r.eval_loss, perplexity: r.perplexity });
    session.progress?.log(`step ${s.step}: eval loss ${r.eval_loss.toFixed(4)} (perplexity ${r.perplexity.toFixed(3)})${isBest ? ', best so far' : ''}`);
    const info: EvalInfo = { step: s.step, eval_loss: r.eval_loss, perplexity: r.perplexity, is_best: isBest };
    await notify(this.callbacks, 'onEval', info);
    return info;
  }

  /** Writes checkpoint-<step> (atomically), prunes old ones and calls back. */
  private async save(session: Session): Promise<void> {
    const s = session.state;
    if (s.savedStep === s.step) return;
    const outputDir = this.args.output_dir!;
    const name = checkpointName(s.step);
    if (s.best && s.best.step === s.step) s.best.checkpoint = name;
    const state = trainerState({
      global_step: s.step,
      epoch: this.epochOf(session),
      data_position: s.position,
      scheduler: session.schedule.state(),
      optimizer_steps: session.optimizer.stepCount,
      dropout_counter: this.peft.dropoutCounter,
      best: s.best,
      evals_without_improvement: s.evalsWithoutImprovement,
      log_history: s.logHistory,
      eval_history: s.evalHistory,
      run: session.fingerprint,
      args: argumentsJson(this.options),
    });
    const dir = await writeCheckpoint(outputDir, s.step, async (part) => {
      await this.peft.saveAdapter(part, { adapterNames: [this.peft.activeAdapter] });
      await writeSafetensors(path.join(part, PARAMETERS_FILE), session.params, { format: 'peft-native' });
      await writeSafetensors(path.join(part, OPTIMIZER_FILE), session.optimizer.stateTensors(), {
        optimizer: this.args.optimizer,
        step: String(session.optimizer.stepCount),
      });
      writeFileAtomic(path.join(part, STATE_FILE), JSON.stringify(state, null, 1) + '\n');
    });
    s.savedStep = s.step;
    if (this.args.save_total_limit !== undefined) {
      const keep = new Set(s.best?.checkpoint ? [s.best.checkpoint] : []);
      pruneCheckpoints(outputDir, this.args.save_total_limit, keep);
    }
    session.log?.write({ event: 'save', step: s.step, path: dir });
    session.progress?.log(`step ${s.step}: saved ${dir}`);
    await notify(this.callbacks, 'onSave', { step: s.step, path: dir });
  }

  /** The end of a run that was not aborted: a last evaluation and checkpoint, and the best weights back. */
  private async finish(session: Session): Promise<void> {
    const s = session.state;
    if (session.eval && s.step > 0 && s.evaluatedStep !== s.step) {
      const e = await this.evaluateStep(session);
      if (e.is_best && this.args.output_dir !== undefined) await this.save(session);
    }
    if (this.args.output_dir !== undefined && s.step > 0) await this.save(session);
    if (this.args.load_best_model_at_end && s.best && s.best.step !== s.step) await this.loadBest(session);
  }

  private async loadBest(session: Session): Promise<void> {
    const best = session.state.best!;
    let values: (name: string) => Float32Array | undefined;
    if (best.checkpoint === BEST_IN_MEMORY) {
      if (!session.state.bestValues) return; // kept by an earlier session that had no output_dir
      values = (n) => session.state.bestValues!.get(n);
    } else if (best.checkpoint && this.args.output_dir !== undefined) {
      const file = readSafetensors(path.join(this.args.output_dir, best.checkpoint, PARAMETERS_FILE));
      values = (n) => (file.has(n) ? file.tensor(n).toFloat32Array() : undefined);
    } else {
      return;
    }
    for (const name of Object.keys(session.params)) {
      const v = values(name);
      if (v) await this.setValues(session, name, v);
    }
    session.progress?.log(`loaded the best weights (step ${best.step}, eval loss ${best.eval_loss.toFixed(4)})`);
  }

  private result(session: Session, reason: StopReason, runtime: number, tokens: number): TrainResult {
    const s = session.state;
    const losses = s.logHistory.map((r) => r.loss);
    const trained = s.logHistory.filter((r) => !r.skipped).map((r) => r.loss);
    const metrics: Record<string, number> = {};
    if (trained.length) metrics.mean_train_loss = trained.reduce((x, y) => x + y, 0) / trained.length;
    Object.assign(metrics, healthMetrics(s.logHistory));
    const outputDir = this.args.output_dir;
    let runLog: string | undefined;
    let report: string | undefined;
    if (session.log) {
      session.log.write({ event: 'end', step: s.step, reason, metrics });
      runLog = session.log.path;
      session.log.close();
      report = path.join(outputDir!, 'report.html');
      writeReport(report, runLog);
    }
    const best = s.best ? { step: s.best.step, eval_loss: s.best.eval_loss, ...(s.best.checkpoint && s.best.checkpoint !== BEST_IN_MEMORY ? { checkpoint: path.join(outputDir!, s.best.checkpoint) } : {}) } : undefined;
    return {
      global_step: s.step,
      epoch: this.epochOf(session),
      reason,
      train_loss: metrics.mean_train_loss ?? NaN,
      losses,
      health: trainingHealth(s.logHistory),
      log_history: s.logHistory,
      eval_history: s.evalHistory,
      best,
      checkpoints: outputDir === undefined ? [] : listCheckpoints(outputDir).map((c) => c.path),
      runtime_s: runtime,
      tokens_per_s: tokens / Math.max(runtime, 1e-9),
      run_log: runLog,
      report,
    };
  }
}
