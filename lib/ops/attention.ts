/** Scaled dot-product attention (grouped-query heads, causal and padding masks), forward and backward. */
import { withCallSite } from '../errors';
import { native, type NativeAttentionOptions } from '../native';
import { handleOf, Tensor } from '../tensor';
import { optionalBoolean, optionalNumber, optionsObject } from '../validate';

/** Options of {@link attention} and {@link attentionBackward}. */
export interface AttentionOptions {
  /** Query t sees keys up to t + (S − T). Default true. */
  causal?: boolean;
  /** Multiplies q·k. Default 1/√head_dim. */
  scale?: number;
  /** u8 [batch, S]: 1 for real keys, 0 for padding. Default: all keys real. */
  keyMask?: Tensor;
}

/** Result of {@link attention}. */
export interface AttentionResult {
  /** [batch, T, Hq, D] */
  out: Tensor;
  /** [batch, Hq, T]: log-sum-exp of each row's scaled scores, for the backward (−∞ for a row with no visible key). */
  lse: Tensor;
}

/** Result of {@link attentionBackward}. */
export interface AttentionGradients {
  /** [batch, T, Hq, D] */
  dq: Tensor;
  /** [batch, S, Hkv, D] */
  dk: Tensor;
  /** [batch, S, Hkv, D] */
  dv: Tensor;
}

function nativeOptions(options: AttentionOptions | undefined): NativeAttentionOptions {
  const o = optionsObject(options);
  const out: NativeAttentionOptions = { causal: optionalBoolean(o, 'causal', true) };
  if (o.scale !== undefined) out.scale = optionalNumber(o, 'scale', 1);
  if (o.keyMask !== undefined) out.keyMask = handleOf(o.keyMask, 'options.keyMask');
  return out;
}

/**
 * softmax(scale · q·kᵀ + mask) · v per head; query head h reads key/value head h / (Hq / Hkv).
 * @param q [batch, T, Hq, D] f32
 * @param k [batch, S, Hkv, D] f32 (S ≥ T; the last T keys line up with the queries)
 * @param v [batch, S, Hkv, D] f32
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): AttentionResult {
  const r = native.attention(handleOf(q, 'q'), handleOf(k, 'k'), handleOf(v, 'v'), nativeOptions(options));
  return { out: new Tensor(r.out), lse: new Tensor(r.lse) };
}

/** {@link attention} on a worker thread. */
export function attentionAsync(q: Tensor, k: Tensor, v: Tensor, options?: AttentionOptions): Promise<AttentionResult> {
  return withCallSite(async () => {
    const r = await native.attentionAsync(handleOf(q, 'q'), handleOf(k, 'k'), handleOf(v, 'v'), nativeOptions(options));
    return { out: new Tensor(r.out), lse: new Tensor(r.lse) };
  });
}

/**
 * Gradients of {@link attention}, recomputing the probabilities from `lse` (no T×S matrix is kept).
 * @param dout [batch, T, Hq, D]
 * @param out [batch, T, Hq, D], the forward's output
 * @param lse [batch, Hq, T], the forward's log-sum-exp
 */
export function attentionBackward(
  dout: Tensor,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  out: Tensor,
  lse: Tensor,
  options?: AttentionOptions,
): AttentionGradients {
  const r = native.attentionBackward(
    handleOf(dout, 'dout'),
    handleOf(q, 'q'),
    handleOf(k, 'k'),
    handleOf(v, 'v'),
    handleOf(out, 'out'),
    handleOf(lse, 'lse'),
    nativeOptions(options),
  );
  return { dq: new Tensor(r.dq), dk: new Tensor(r.dk), dv: new Tensor(r.dv) };
}
