/**
 * safetensors does not pad its header, so a tensor's data can start at any byte of the file. Reading a float
 * through a misaligned pointer is undefined behaviour in C++ (npm run test:asan found LayerNorm doing it on a
 * GPT-2 file), so such tensors must come out as aligned copies. Under the sanitizer build this test fails on a
 * misaligned view; in the normal build it checks that the copies hold the stored values.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { ops, readSafetensors } from '../../lib';
import { randomArray, rng } from '../helpers/random';
import { writeSafetensorsJs } from '../helpers/safetensors-js';

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-st-unaligned-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const M = 3, K = 5;
const random = rng(41);
const x = randomArray(random, M * K); // x: [M, K] f32
const w = randomArray(random, K); // w: [K] f32

/** Files whose data section starts at each byte offset mod 4 (the header length moves it). */
function filesByDataOffset(): Map<number, string> {
  const files = new Map<number, string>();
  for (let pad = 0; files.size < 4; pad++) {
    const file = path.join(dir, `pad${pad}.safetensors`);
    writeSafetensorsJs(file, [
      ['x', { dtype: 'F32', shape: [M, K], bytes: new Uint8Array(x.buffer) }],
      ['w', { dtype: 'F32', shape: [K], bytes: new Uint8Array(w.buffer) }],
    ], { pad: 'p'.repeat(pad) });
    const dataStart = 8 + Number(fs.readFileSync(file).readBigUInt64LE(0));
    if (!files.has(dataStart % 4)) files.set(dataStart % 4, file);
  }
  return files;
}

/** RMSNorm in float64 from its definition: y = x / sqrt(mean(x²) + eps) · w. */
function rmsnormReference(eps: number): Float64Array {
  const y = new Float64Array(M * K);
  for (let r = 0; r < M; r++) {
    let ss = 0;
    for (let i = 0; i < K; i++) ss += x[r * K + i] ** 2;
    const rs = 1 / Math.sqrt(ss / K + eps);
    for (let i = 0; i < K; i++) y[r * K + i] = x[r * K + i] * rs * w[i];
  }
  return y;
}

it('reads the stored values and computes with them wherever the data section starts', () => {
  const expected = rmsnormReference(1e-6);
  for (const [misalignment, file] of filesByDataOffset()) {
    const st = readSafetensors(file);
    const xt = st.tensor('x'), wt = st.tensor('w');
    expect([misalignment, Array.from(xt.toFloat32Array())]).toEqual([misalignment, Array.from(x)]);
    expect([misalignment, Array.from(wt.toFloat32Array())]).toEqual([misalignment, Array.from(w)]);
    // The kernel reads both tensors through float pointers.
    const y = ops.rmsnormForward(xt, wt, { eps: 1e-6 }).y.toFloat32Array();
    for (let i = 0; i < M * K; i++) expect(Math.abs(y[i] - expected[i])).toBeLessThan(1e-5);
  }
});
