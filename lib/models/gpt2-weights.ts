/**
 * GPT-2 checkpoints as the native model takes them: keys under `transformer.` (older checkpoints
 * saved from GPT2Model have none), the attention-mask buffers and the tied `lm_head.weight` dropped,
 * and the Conv1D weights (stored [in, out]) transposed to [out, in].
 * @internal
 */
import { tensor, type Tensor } from '../tensor';

const CONV1D = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

/** w: [rows, cols] → [cols, rows], in the weight's dtype. */
function transposed(w: Tensor): Tensor {
  const [rows, cols] = w.shape;
  const src = w.toFloat32Array();
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = src[r * cols + c];
  const t = tensor(out, [cols, rows]);
  return w.dtype === 'f32' ? t : t.to(w.dtype);
}

export function gpt2Weights(source: Map<string, Tensor>): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [key, value] of source) {
    if (key === 'lm_head.weight' || /\.attn\.(masked_)?bias$/.test(key)) continue;
    const name = key.startsWith('transformer.') ? key : `transformer.${key}`;
    out.set(name, CONV1D.test(name) && value.shape.length === 2 ? transposed(value) : value);
  }
  return out;
}

/**
 * BERT checkpoints for the sequence classifier: keys under `bert.` (a bare BertModel checkpoint has
 * none), buffers and pre-training heads dropped, and a pooler / classifier that the checkpoint lacks
 * initialised as transformers does (normal, std 0.02; zero biases; seeded).
 */
export function bertWeights(source: Map<string, Tensor>, hidden: number, numLabels: number): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [key, value] of source) {
    if (key.startsWith('cls.') || key.endsWith('position_ids')) continue;
    const name = key.startsWith('bert.') || key.startsWith('classifier.') ? key : `bert.${key}`;
    out.set(name, value);
  }
  let state = 0x2545f491;
  const normal = () => {
    const u = () => ((state = (Math.imul(state, 1664525) + 1013904223) >>> 0) + 0.5) / 4294967296;
    return Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
  };
  const init = (name: string, rows: number) => {
    if (out.has(`${name}.weight`)) return;
    out.set(`${name}.weight`, tensor(Float32Array.from({ length: rows * hidden }, () => 0.02 * normal()), [rows, hidden]));
    out.set(`${name}.bias`, tensor(new Float32Array(rows), [rows]));
  };
  init('bert.pooler.dense', hidden);
  init('classifier', numLabels);
  return out;
}
