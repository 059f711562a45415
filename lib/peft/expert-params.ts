/**
 * PEFT's `target_parameters`: LoRA on the fused expert tensors of transformers' mixture-of-experts
 * layers (`mlp.experts.gate_up_proj` [E, 2I, H] and `mlp.experts.down_proj` [E, H, I], as
 * transformers 5 holds Mixtral's experts), mapped onto this library's per-expert modules
 * (`block_sparse_moe.experts.<e>.w1 / w3 / w2`, the layout of the checkpoints on the Hub).
 *
 * The file layout is PEFT's ParamWrapper one, for a parameter with E experts and rank r:
 *   lora_A [r·E, in]: expert e's A is rows e·r .. e·r + r − 1 (expert-major);
 *   lora_B [out, r·E]: expert e's B column k is column k·E + e (expert-minor);
 *   delta_e = scaling · B_e · A_e, of the parameter's per-expert shape [out, in].
 * gate_up_proj's rows are the gate's I rows then the up projection's I, so w1 and w3 share A_e
 * (one native parameter) and take the two halves of B_e. When several parameters of one experts
 * module are targeted, PEFT nests its wrappers: the first listed is the innermost, so its keys
 * carry one `base_layer.` per parameter listed after it.
 * @internal
 */
import { PeftError } from '../errors';
import type { Model } from '../models/model';
import { tensor, type Tensor } from '../tensor';
import type { LoraConfig } from './config';
import { FILE_PREFIX, loraA, loraB } from './names';

export type ExpertParameter = 'gate_up_proj' | 'down_proj';

/** One targeted fused parameter of one layer. */
export interface ExpertTarget {
  layer: number;
  parameter: ExpertParameter;
  /** The file's module for it: model.layers.L.mlp.experts (+ base_layer. nesting). */
  fileModule: string;
  experts: number;
  rows: number;  // out of one expert's matrix
  cols: number;  // in
}

const FUSED_NAME = (layer: number, p: ExpertParameter) => `model.layers.${layer}.mlp.experts.${p}`;
export const expertModule = (layer: number, e: number, part: 'w1' | 'w2' | 'w3') => `model.layers.${layer}.block_sparse_moe.experts.${e}.${part}`;

/** PEFT's matching of a target_parameters entry: the full parameter name or a suffix of it at a dot. */
function matches(name: string, entry: string): boolean {
  return name === entry || name.endsWith(`.${entry}`);
}

/** The fused parameters `config.target_parameters` selects in `model`; E_CONFIG when it names something else. */
export function expertTargets(model: Model, config: LoraConfig): ExpertTarget[] {
  const wanted = config.target_parameters ?? [];
  if (!wanted.length) return [];
  const E = model.config.numExperts ?? 0;
  if (E < 2) throw new PeftError('target_parameters selects fused expert tensors, but this model has no mixture-of-experts layers', 'E_CONFIG');
  const H = model.config.hiddenSize, I = model.config.intermediateSize;
  const targets: ExpertTarget[] = [];
  const used = new Set<string>();
  for (let layer = 0; layer < model.config.numLayers; layer++) {
    const chosen = (['gate_up_proj', 'down_proj'] as const)
      .map((parameter) => ({ parameter, order: wanted.findIndex((w) => matches(FUSED_NAME(layer, parameter), w)) }))
      .filter((c) => c.order >= 0)
      .sort((a, b) => a.order - b.order);
    chosen.forEach(({ parameter, order }, i) => {
      used.add(wanted[order]);
      const nesting = 'base_layer.'.repeat(chosen.length - 1 - i);
      const [rows, cols] = parameter === 'gate_up_proj' ? [2 * I, H] : [H, I];
      targets.push({ layer, parameter, fileModule: `model.layers.${layer}.mlp.experts.${nesting}`.replace(/\.$/, ''), experts: E, rows, cols });
    });
  }
  const unknown = wanted.find((w) => !used.has(w));
  if (unknown !== undefined) {
    throw new PeftError(`target_parameters entry ${JSON.stringify(unknown)} names no fused expert parameter of this model (it has model.layers.N.mlp.experts.gate_up_proj and .down_proj)`, 'E_CONFIG');
  }
  if (config.use_dora) throw new PeftError('DoRA (use_dora) is not available for target_parameters, as in PEFT', 'E_UNSUPPORTED');
  if ((config.lora_dropout ?? 0) > 0) throw new PeftError('lora_dropout must be 0 with target_parameters: PEFT applies no dropout to fused expert parameters', 'E_UNSUPPORTED');
  return targets;
}

/** Per-expert factors of one target: a[e] [r, cols], b[e] [rows, r]. */
export interface ExpertFactors {
  a: Float32Array[];
  b: Float32Array[];
}

/** Splits the file's A [r·E, cols] and B [rows, r·E] into per-expert factors. */
export function splitExpertFactors(t: ExpertTarget, r: number, a: Tensor, b: Tensor): ExpertFactors {
  const { experts: E, rows, cols } = t;
  const where = `${FILE_PREFIX}${t.fileModule}`;
  if (a.shape.join() !== [r * E, cols].join()) throw new PeftError(`Expected shape [${r * E},${cols}] for ${where}.lora_A.weight (${t.parameter}, r·experts × in) but the adapter has [${a.shape}]`, 'E_SHAPE');
  if (b.shape.join() !== [rows, r * E].join()) throw new PeftError(`Expected shape [${rows},${r * E}] for ${where}.lora_B.weight (${t.parameter}, out × r·experts) but the adapter has [${b.shape}]`, 'E_SHAPE');
  const av = a.toFloat32Array(), bv = b.toFloat32Array();
  const out: ExpertFactors = { a: [], b: [] };
  for (let e = 0; e < E; e++) {
    out.a.push(av.slice(e * r * cols, (e + 1) * r * cols));
    const be = new Float32Array(rows * r);
    for (let o = 0; o < rows; o++) for (let k = 0; k < r; k++) be[o * r + k] = bv[o * r * E + k * E + e];
    out.b.push(be);
  }
  return out;
}

/** The inverse: the file's A [r·E, cols] and B [rows, r·E]. */
export function joinExpertFactors(t: ExpertTarget, r: number, f: ExpertFactors): { a: Tensor; b: Tensor } {
  const { experts: E, rows, cols } = t;
  const a = new Float32Array(r * E * cols), b = new Float32Array(rows * r * E);
  for (let e = 0; e < E; e++) {
    a.set(f.a[e], e * r * cols);
    for (let o = 0; o < rows; o++) for (let k = 0; k < r; k++) b[o * r * E + k * E + e] = f.b[e][o * r + k];
  }
  return { a: tensor(a, [r * E, cols]), b: tensor(b, [rows, r * E]) };
}

/**
 * The native modules and parameters expert e of `t` uses for adapter `name`: gate_up_proj → w1
 * (gate rows, owning A) and w3 (up rows, sharing w1's A); down_proj → w2.
 */
export function expertParts(t: ExpertTarget, e: number, name: string): { module: string; a: string; b: string; rows: [number, number] }[] {
  if (t.parameter === 'down_proj') {
    const m = expertModule(t.layer, e, 'w2');
    return [{ module: m, a: loraA(m, name), b: loraB(m, name), rows: [0, t.rows] }];
  }
  const gate = expertModule(t.layer, e, 'w1'), up = expertModule(t.layer, e, 'w3');
  const half = t.rows / 2;
  return [
    { module: gate, a: loraA(gate, name), b: loraB(gate, name), rows: [0, half] },
    { module: up, a: loraA(gate, name), b: loraB(up, name), rows: [half, t.rows] },
  ];
}

/** The file tensors of every expert target from the native parameters' current values. */
export function expertFileTensors(targets: ExpertTarget[], r: number, name: string, weights: Map<string, Tensor>): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const t of targets) {
    const f: ExpertFactors = { a: [], b: [] };
    for (let e = 0; e < t.experts; e++) {
      const parts = expertParts(t, e, name);
      f.a.push(weights.get(parts[0].a)!.toFloat32Array());
      const be = new Float32Array(t.rows * r);
      for (const p of parts) be.set(weights.get(p.b)!.toFloat32Array(), p.rows[0] * r);
      f.b.push(be);
    }
    const { a, b } = joinExpertFactors(t, r, f);
    out[`${FILE_PREFIX}${t.fileModule}.lora_A.weight`] = a;
    out[`${FILE_PREFIX}${t.fileModule}.lora_B.weight`] = b;
  }
  return out;
}
