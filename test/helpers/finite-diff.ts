/**
 * Central finite differences of a PEFT model's loss against the analytic gradients of its trainable
 * parameters: a few elements of each, perturbed by swapping a perturbed copy into the native model.
 */
import { tensor, type PeftModel } from '../../lib';

export async function checkGradients(
  peft: PeftModel,
  ids: number[][],
  labels: number[][],
  options: { h?: number; atol?: number; rtol?: number; only?: (name: string) => boolean } = {},
): Promise<{ checked: number; names: string[] }> {
  const h = options.h ?? 1e-2, atol = options.atol ?? 2e-3, rtol = options.rtol ?? 0.02;
  const { grads } = await peft.loss(ids, labels);
  const analytic = new Map(Object.entries(grads).map(([k, v]) => [k, v.toFloat32Array().slice()]));
  const params = peft.trainableParameters();
  let checked = 0;
  for (const [name, param] of Object.entries(params)) {
    if (options.only && !options.only(name)) continue;
    const values = param.toFloat32Array().slice();
    const g = analytic.get(name)!;
    const lossWith = async (i: number, v: number) => {
      const copy = values.slice();
      copy[i] = v;
      peft.setParameterValue(name, tensor(copy, param.shape));
      return (await peft.loss(ids, labels)).loss;
    };
    for (const i of [...new Set([0, Math.floor(values.length / 2), values.length - 1])]) {
      const numeric = ((await lossWith(i, values[i] + h)) - (await lossWith(i, values[i] - h))) / (2 * h);
      expect([name, i, Math.abs(numeric - g[i]) < atol + rtol * Math.abs(numeric)]).toEqual([name, i, true]);
      checked++;
    }
    peft.setParameterValue(name, param);  // the original storage back
  }
  return { checked, names: Object.keys(params) };
}

/** The same check for a plain model: every base parameter trains. */
export async function checkModelGradients(
  model: import('../../lib').Model,
  ids: number[][],
  labels: number[][],
  options: { h?: number; atol?: number; rtol?: number } = {},
): Promise<number> {
  const h = options.h ?? 1e-2, atol = options.atol ?? 2e-3, rtol = options.rtol ?? 0.02;
  const { grads } = await model.loss(ids, labels);
  const analytic = new Map(Object.entries(grads).map(([k, v]) => [k, v.toFloat32Array().slice()]));
  let checked = 0;
  for (const name of model.parameterNames()) {
    const param = model.parameter(name);
    const values = param.toFloat32Array().slice();
    const g = analytic.get(name);
    expect([name, g !== undefined]).toEqual([name, true]);
    const lossWith = async (i: number, v: number) => {
      const copy = values.slice();
      copy[i] = v;
      model.replaceParameter(name, tensor(copy, param.shape));
      return (await model.loss(ids, labels)).loss;
    };
    for (const i of [...new Set([0, Math.floor(values.length / 2), values.length - 1])]) {
      const numeric = ((await lossWith(i, values[i] + h)) - (await lossWith(i, values[i] - h))) / (2 * h);
      expect([name, i, Math.abs(numeric - g![i]) < atol + rtol * Math.abs(numeric)]).toEqual([name, i, true]);
      checked++;
    }
    model.replaceParameter(name, param);
  }
  return checked;
}
