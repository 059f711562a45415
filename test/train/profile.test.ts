// The native phase profiler (native/core/profile.h) behind the training benchmark: off it records
// nothing; on, a training step of a fully trainable tiny Llama records each phase once per call
// site that the model's forward and backward pass through (counted here from the architecture),
// with times that fit inside the step's wall time; reset zeroes it; bad input is refused.
import { ops, PeftError, zeros } from '../../lib';
import { native } from '../../lib/native';
import { tinyLlama } from '../helpers/tiny-llama';

const PHASES = ['gemm', 'head', 'attention', 'normAct', 'loss', 'embedding', 'optimizer'] as const;
const IDS = [[1, 4, 7, 2, 9], [3, 5, 8, 10, 0]];

async function trainingStep(): Promise<void> {
  const { model } = tinyLlama();
  const { grads } = await model.loss(IDS);
  const names = Object.keys(grads);
  const params = names.map((n) => model.parameterLive(n));
  const state = { expAvg: params.map((p) => zeros(p.shape)), expAvgSq: params.map((p) => zeros(p.shape)) };
  await ops.adamwAsync(params, names.map((n) => grads[n]), state, { lr: 1e-3, step: 1 });
}

afterEach(() => {
  native.setProfiling(false);
  native.resetProfile();
});

test('records nothing while off', async () => {
  native.setProfiling(false);
  native.resetProfile();
  await trainingStep();
  for (const phase of PHASES) expect(native.profile()[phase]).toEqual({ ns: 0, calls: 0 });
});

test('counts every phase of a training step once per call site, within the wall time', async () => {
  native.resetProfile();
  native.setProfiling(true);
  const t0 = process.hrtime.bigint();
  await trainingStep();
  const wall = Number(process.hrtime.bigint() - t0);
  native.setProfiling(false);
  const p = native.profile();
  const layers = 2;
  // Per layer, forward and backward alike: q/k/v, o, gate/up and down products (4 GEMM sites); the
  // input norm, RoPE, the post-attention norm and SwiGLU (4 elementwise sites); one attention. Around
  // them: the embedding lookup and its backward, the final norm (forward, backward), the head's
  // product (forward, backward), one cross-entropy, one optimizer call.
  expect(p.gemm.calls).toBe(2 * 4 * layers);
  expect(p.normAct.calls).toBe(2 * 4 * layers + 2);
  expect(p.attention.calls).toBe(2 * layers);
  expect(p.head.calls).toBe(2);
  expect(p.embedding.calls).toBe(2);
  expect(p.loss.calls).toBe(1);
  expect(p.optimizer.calls).toBe(1);
  let sum = 0;
  for (const phase of PHASES) {
    expect(p[phase].ns).toBeGreaterThan(0);
    sum += p[phase].ns;
  }
  expect(sum).toBeLessThanOrEqual(wall);
  native.resetProfile();
  for (const phase of PHASES) expect(native.profile()[phase]).toEqual({ ns: 0, calls: 0 });
});

test('setProfiling refuses anything but a boolean', () => {
  let caught: unknown;
  try {
    native.setProfiling(1 as unknown as boolean);
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(PeftError);
  expect((caught as PeftError).code).toBe('E_ARGUMENT');
  expect((caught as PeftError).message).toMatch(/Expected a boolean for on but received/);
});
