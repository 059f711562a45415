// The native batched step (DecoderModel::serve_step) on its own: the logits of each segment's last
// token equal a full forward pass without any cache (Model.forward) of that sequence, whatever mix
// of prompt chunks and decoding rows a step holds; and misuse is refused with clear errors.
import { loadModel, PeftError, tensor, type Model, type Tensor } from '../../lib';
import { handleOf } from '../../lib/tensor';

const h = (t: Tensor) => handleOf(t, 'tensor');
import { STORIES_HF_DIR } from '../helpers/models';

let model: Model;
beforeAll(async () => {
  model = await loadModel(STORIES_HF_DIR);
});
afterAll(() => model.dispose());

/** Logits [vocab] of the last position of `ids` from a full forward pass. */
async function lastLogits(ids: number[]): Promise<Float32Array> {
  const logits = await model.forward([ids]);
  const vocab = model.config.vocabSize;
  const all = logits.toFloat32Array();
  logits.dispose();
  return all.slice((ids.length - 1) * vocab, ids.length * vocab);
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

async function step(segments: [number, number[]][]): Promise<Float32Array[]> {
  const native = model.nativeModel;
  const ids = tensor(Int32Array.from(segments.flatMap(([, t]) => t)), [segments.reduce((n, [, t]) => n + t.length, 0)], 'i32');
  const out = await native.serveStepAsync(h(ids), segments.flatMap(([slot, t]) => [slot, t.length, 0]));
  ids.dispose();
  const all = out.toFloat32Array();
  out.dispose();
  const vocab = model.config.vocabSize;
  return segments.map((_, i) => all.slice(i * vocab, (i + 1) * vocab));
}

let SEQS: number[][];
beforeAll(() => {
  const tok = model.tokenizer!;
  SEQS = ['Once upon a time, there was', 'Lily and Tom', 'The big brown dog ran to the park and saw a'].map((t) => tok.encode(t));
});

describe('serve_step', () => {
  it('gives each segment the logits a full forward pass gives its sequence', async () => {
    const native = model.nativeModel;
    const slots = SEQS.map((s) => native.serveOpen(s.length));
    // Step 1: sequence 0's first 5 tokens, sequence 1 whole, sequence 2's first 3.
    const fed = [5, SEQS[1].length, 3];
    let out = await step(SEQS.map((s, i) => [slots[i], s.slice(0, fed[i])]));
    for (let i = 0; i < SEQS.length; i++) expect(maxDiff(out[i], await lastLogits(SEQS[i].slice(0, fed[i])))).toBeLessThan(2e-4);
    // Then sequences 0 and 2 a token at a time, and a chunk, in the same steps.
    while (fed[0] < SEQS[0].length || fed[2] < SEQS[2].length) {
      const segs: [number, number[]][] = [];
      const which: number[] = [];
      if (fed[0] < SEQS[0].length) (segs.push([slots[0], SEQS[0].slice(fed[0], fed[0] + 1)]), which.push(0));
      if (fed[2] < SEQS[2].length) (segs.push([slots[2], SEQS[2].slice(fed[2], fed[2] + 3)]), which.push(2));
      out = await step(segs);
      for (let j = 0; j < which.length; j++) {
        const i = which[j];
        fed[i] += segs[j][1].length;
        expect(maxDiff(out[j], await lastLogits(SEQS[i].slice(0, fed[i])))).toBeLessThan(2e-4);
        expect(native.serveLength(slots[i])).toBe(fed[i]);
      }
    }
    for (const s of slots) native.serveClose(s);
  });

  it('refuses misuse with clear errors', async () => {
    const native = model.nativeModel;
    const slot = native.serveOpen(4);
    const codeOf = async (f: () => Promise<unknown> | unknown) => {
      try {
        await f();
      } catch (err) {
        return err instanceof PeftError ? `${err.code}: ${err.message}` : String(err);
      }
      return 'no error';
    };
    expect(await codeOf(() => step([[slot, [1, 2, 3, 4, 5]]]))).toMatch(/^E_RANGE: segments\[0\] would fill 5 positions of slot \d+, which holds 4/);
    expect(await codeOf(() => step([[slot + 100, [1]]]))).toMatch(/^E_ARGUMENT: segments\[0\] names slot \d+, which is not open/);
    expect(await codeOf(() => step([[slot, [1]], [slot, [2]]]))).toMatch(/a second time/);
    expect(await codeOf(() => step([[slot, [1, 99999]]]))).toMatch(/^E_RANGE/);
    const ids = tensor(Int32Array.from([1, 2]), [2], 'i32');
    expect(await codeOf(() => native.serveStepAsync(h(ids), [slot, 1, 0]))).toMatch(/^E_SHAPE: Expected the segments' rows \(1\) to equal the ids \(2\)/);
    expect(await codeOf(() => native.serveStepAsync(h(ids), [slot, 2, 77]))).toMatch(/adapter 77, which is not registered/);
    ids.dispose();
    expect(await codeOf(() => native.serveOpen(0))).toMatch(/^E_RANGE/);
    expect(await codeOf(() => native.serveClose(slot + 100))).toMatch(/no open slot/);
    const a = tensor(new Float32Array(2 * 64), [2, 64]);
    const b = tensor(new Float32Array(64 * 3), [64, 3]);
    expect(await codeOf(() => native.serveAddAdapter(['model.layers.0.self_attn.q_proj'], [h(a)], [h(b)], [1]))).toMatch(/^E_SHAPE: Expected lora_A \[r, 64\] and lora_B \[64, r\]/);
    expect(await codeOf(() => native.serveAddAdapter(['model.nothing'], [h(a)], [h(b)], [1]))).toMatch(/^E_CONFIG: The model has no linear layer model.nothing/);
    native.serveClose(slot);
    // A failed step left the slot as it was: it still takes its 4 positions.
    const again = native.serveOpen(4);
    expect((await step([[again, [1, 2, 3, 4]]])).length).toBe(1);
    native.serveClose(again);
  });
});
