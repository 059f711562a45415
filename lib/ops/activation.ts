/** MLP activations: SwiGLU (Llama) and GELU with the tanh approximation (GPT-2's gelu_new). */
import { withCallSite } from '../errors';
import { native, type NativeTensor } from '../native';
import { handleOf, Tensor } from '../tensor';
import { expectDType, expectShape } from './checks';

/** Result of {@link swigluBackward}. */
export interface SwiGluBackwardResult {
  /** [...] f32 */
  dGate: Tensor;
  /** [...] f32 */
  dUp: Tensor;
}

function f32(t: Tensor, name: string, like?: NativeTensor): NativeTensor {
  const h = handleOf(t, name);
  expectDType(h, ['f32'], name);
  if (like) expectShape(h, like.shape(), name);
  return h;
}

function swigluArgs(gate: Tensor, up: Tensor): [NativeTensor, NativeTensor] {
  const g = f32(gate, 'gate');
  return [g, f32(up, 'up', g)];
}

function swigluBackwardArgs(dh: Tensor, gate: Tensor, up: Tensor): [NativeTensor, NativeTensor, NativeTensor] {
  const d = f32(dh, 'dh');
  return [d, f32(gate, 'gate', d), f32(up, 'up', d)];
}

const swigluResult = (r: { dGate: NativeTensor; dUp: NativeTensor }): SwiGluBackwardResult => ({
  dGate: new Tensor(r.dGate),
  dUp: new Tensor(r.dUp),
});

/**
 * SwiGLU: h = silu(gate) ⊙ up, silu(g) = g·σ(g).
 * @param gate [...] f32, gate_proj's output
 * @param up [...] f32, up_proj's output (same shape)
 * @returns h, [...] f32
 */
export function swigluForward(gate: Tensor, up: Tensor): Tensor {
  return new Tensor(native.swigluForward(...swigluArgs(gate, up)));
}

/** {@link swigluForward} on a worker thread. */
export function swigluForwardAsync(gate: Tensor, up: Tensor): Promise<Tensor> {
  return withCallSite(async () => new Tensor(await native.swigluForwardAsync(...swigluArgs(gate, up))));
}

/**
 * SwiGLU backward: dGate = dh ⊙ up ⊙ σ(g)·(1 + g·(1 − σ(g))), dUp = dh ⊙ silu(g).
 * @param dh [...] f32
 * @param gate [...] f32
 * @param up [...] f32
 */
export function swigluBackward(dh: Tensor, gate: Tensor, up: Tensor): SwiGluBackwardResult {
  return swigluResult(native.swigluBackward(...swigluBackwardArgs(dh, gate, up)));
}

/** {@link swigluBackward} on a worker thread. */
export function swigluBackwardAsync(dh: Tensor, gate: Tensor, up: Tensor): Promise<SwiGluBackwardResult> {
  return withCallSite(async () => swigluResult(await native.swigluBackwardAsync(...swigluBackwardArgs(dh, gate, up))));
}

/**
 * GELU, tanh approximation: y = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
 * @param x [...] f32
 * @returns y, [...] f32
 */
export function geluForward(x: Tensor): Tensor {
  return new Tensor(native.geluForward(f32(x, 'x')));
}

/** {@link geluForward} on a worker thread. */
export function geluForwardAsync(x: Tensor): Promise<Tensor> {
  return withCallSite(async () => new Tensor(await native.geluForwardAsync(f32(x, 'x'))));
}

/**
 * GELU (tanh) backward.
 * @param dy [...] f32
 * @param x [...] f32, the forward's input
 * @returns dx, [...] f32
 */
export function geluBackward(dy: Tensor, x: Tensor): Tensor {
  const d = f32(dy, 'dy');
  return new Tensor(native.geluBackward(d, f32(x, 'x', d)));
}

/** {@link geluBackward} on a worker thread. */
export function geluBackwardAsync(dy: Tensor, x: Tensor): Promise<Tensor> {
  return withCallSite(async () => {
    const d = f32(dy, 'dy');
    return new Tensor(await native.geluBackwardAsync(d, f32(x, 'x', d)));
  });
}
