/**
 * The trainer's optimizer: AdamW or SGD over the trainable parameters with the fused native steps,
 * in parameter groups (LoRA+ learning rates, no weight decay on biases and norms), with a state that
 * a checkpoint saves as tensors.
 * @internal
 */
import { PeftError } from '../errors';
import { adamwAsync, sgdAsync } from '../ops/optim';
import { tensor, zeros, type Tensor } from '../tensor';

export type OptimizerName = 'adamw' | 'sgd';

export const OPTIMIZERS: readonly OptimizerName[] = ['adamw', 'sgd'];

/** Hyper-parameters, with TrainingArguments' names. */
export interface OptimizerSettings {
  optimizer: OptimizerName;
  learning_rate: number;
  weight_decay: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  momentum: number;
  /** LoRA+: lora_B (and 1-D) parameters learn at learning_rate × this. */
  loraplus_lr_ratio?: number;
  /** LoRA+: the learning rate of embedding LoRA weights (lora_embedding_A/B). */
  loraplus_lr_embedding: number;
}

/** Parameters that share a learning-rate multiplier and a weight decay. */
interface Group {
  names: string[];
  /** This group's learning rate over the scheduled one. */
  lrScale: number;
  weightDecay: number;
}

/** Transformers leaves biases and normalization weights out of weight decay. */
export function decays(name: string): boolean {
  return !/(^|\.)bias(\.|$)/.test(name) && !/norm/i.test(name);
}

/**
 * The groups of PEFT's create_loraplus_optimizer: embedding LoRA weights at loraplus_lr_embedding,
 * lora_B and 1-D parameters at lr × ratio, the rest at lr. Without a ratio, one learning rate.
 */
export function parameterGroups(params: Record<string, Tensor>, s: OptimizerSettings): Group[] {
  const groups = new Map<string, Group>();
  for (const [name, p] of Object.entries(params)) {
    let lrScale = 1;
    if (s.loraplus_lr_ratio !== undefined) {
      if (/\.lora_embedding_[AB]\./.test(name)) lrScale = s.loraplus_lr_embedding / s.learning_rate;
      else if (/\.lora_B\./.test(name) || p.shape.length === 1) lrScale = s.loraplus_lr_ratio;
    }
    const weightDecay = decays(name) ? s.weight_decay : 0;
    const key = `${lrScale}/${weightDecay}`;
    let g = groups.get(key);
    if (!g) groups.set(key, (g = { names: [], lrScale, weightDecay }));
    g.names.push(name);
  }
  return [...groups.values()];
}

/** Optimizer state tensors by role: AdamW's exp_avg / exp_avg_sq, SGD's momentum_buffer. */
function stateRoles(s: OptimizerSettings): string[] {
  if (s.optimizer === 'adamw') return ['exp_avg', 'exp_avg_sq'];
  return s.momentum > 0 ? ['momentum_buffer'] : [];
}

export class Optimizer {
  readonly settings: OptimizerSettings;
  readonly groups: Group[];
  /** Optimizer steps taken (AdamW's bias corrections count them from 1). */
  stepCount = 0;
  private readonly params: Record<string, Tensor>;
  /** role → parameter name → f32 tensor shaped like the parameter. */
  private readonly state = new Map<string, Map<string, Tensor>>();

  constructor(params: Record<string, Tensor>, settings: OptimizerSettings) {
    this.params = params;
    this.settings = settings;
    this.groups = parameterGroups(params, settings);
    for (const role of stateRoles(settings)) {
      this.state.set(role, new Map(Object.entries(params).map(([n, p]) => [n, zeros(p.shape)])));
    }
  }

  /**
   * One update of every parameter at the scheduled learning rate `lr` (each group scales it).
   * @param grads f32 by parameter name, each shaped like its parameter
   */
  async step(grads: Record<string, Tensor>, lr: number): Promise<void> {
    const step = this.stepCount + 1;
    for (const g of this.groups) {
      const params = g.names.map((n) => this.params[n]);
      const gradList = g.names.map((n) => {
        const grad = grads[n];
        if (!grad) throw new PeftError(`The model returned no gradient for the trainable parameter ${n}`, 'E_INTERNAL');
        return grad;
      });
      const role = (r: string) => g.names.map((n) => this.state.get(r)!.get(n)!);
      const s = this.settings;
      if (s.optimizer === 'adamw') {
        await adamwAsync(params, gradList, { expAvg: role('exp_avg'), expAvgSq: role('exp_avg_sq') }, {
          lr: lr * g.lrScale,
          beta1: s.adam_beta1,
          beta2: s.adam_beta2,
          eps: s.adam_epsilon,
          weightDecay: g.weightDecay,
          step,
        });
      } else {
        await sgdAsync(params, gradList, s.momentum > 0 ? role('momentum_buffer') : null, {
          lr: lr * g.lrScale,
          momentum: s.momentum,
          weightDecay: g.weightDecay,
          step,
        });
      }
    }
    this.stepCount = step;
  }

  /** The state tensors as `<role>.<parameter name>` (what a checkpoint's optimizer.safetensors holds). */
  stateTensors(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [role, byName] of this.state) for (const [name, t] of byName) out[`${role}.${name}`] = t;
    return out;
  }

  /** Takes saved state (as {@link Optimizer.stateTensors} names it); `where` names the source in errors. */
  loadState(read: (key: string) => Float32Array | undefined, stepCount: number, where: string): void {
    for (const [role, byName] of this.state) {
      for (const [name, t] of byName) {
        const values = read(`${role}.${name}`);
        if (!values || values.length !== t.size) {
          throw new PeftError(`${where} has no ${role} of ${t.size} values for ${name}: it was written by another run or optimizer`, 'E_CONFIG');
        }
        byName.set(name, tensor(values, t.shape)); // a copy that owns its memory, not a view of the file
      }
    }
    this.stepCount = stepCount;
  }
}
