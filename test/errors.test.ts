/**
 * Every exported function, called wrongly: wrong shapes, dtypes, list lengths, non-numbers, empty
 * arrays, missing arguments, disposed tensors, out-of-range hyper-parameters. Each call raises a
 * PeftError whose code names the kind of problem and whose message ("Expected ... for ... but
 * received ...") names the argument; async variants reject (never throw synchronously, never hang).
 * The native addon is also called directly, past the TypeScript checks, and must answer with
 * PeftErrors too. At the end the process must still compute correctly.
 */
import { ops, PeftError, runtime, Tensor, tensor, zeros, type DType, type Isa, type PeftErrorCode } from '../lib';
import { native } from '../lib/native';

type AnyFn = (...args: any[]) => unknown; // eslint-disable-line @typescript-eslint/no-explicit-any

const ALL_ISAS: Isa[] = ['scalar', 'avx2', 'avx512', 'avx512bf16'];
const UNSUPPORTED_ISAS = ALL_ISAS.filter((isa) => !runtime.supportedIsas().includes(isa));
const ISA_BEFORE = runtime.getIsa();
const THREADS_BEFORE = runtime.numThreads();
const ASYNC_LIMIT_MS = 5000;

// ---------------------------------------------------------------------------------------------
// Fixtures: fresh tensors per case, so a disposal or an in-place update never leaks between cases.

const fill = (dtype: DType) => (dtype === 'i32' || dtype === 'u8' ? 1 : 0.5);
const mat = (rows: number, cols: number, dtype: DType = 'f32') =>
  tensor(new Float32Array(rows * cols).fill(fill(dtype)), [rows, cols], dtype);
const vec = (n: number, dtype: DType = 'f32') => tensor(new Float32Array(n).fill(fill(dtype)), [n], dtype);
const dead = (t: Tensor = mat(2, 2)) => {
  t.dispose();
  return t;
};
const esc = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Low-rank shapes: x [M, K], weight [N, K], loraA [r, K], loraB [N, r] with M=2, K=3, N=4, r=2.
const lr = {
  x: () => mat(2, 3),
  w: () => mat(4, 3),
  a: () => mat(2, 3),
  b: () => mat(4, 2),
  dy: () => mat(2, 4),
  xa: () => mat(2, 2),
};

// ---------------------------------------------------------------------------------------------
// Assertions.

function thrownBy(fn: () => unknown): unknown {
  try {
    const r = fn();
    return { returned: r };
  } catch (e) {
    return e;
  }
}

function expectPeftError(err: unknown, code: PeftErrorCode, message: RegExp): void {
  if (!(err instanceof PeftError)) {
    throw new Error(`Expected a PeftError ${code} but got ${err instanceof Error ? `${err.name}: ${err.message}` : JSON.stringify(err)}`);
  }
  expect({ code: err.code, message: err.message }).toEqual({ code, message: expect.stringMatching(message) });
  expect(err.name).toBe('PeftError');
}

/** A sync call throws the PeftError synchronously (and returns no Promise). */
function expectThrows(fn: () => unknown, code: PeftErrorCode, message: RegExp): void {
  const err = thrownBy(fn);
  if (err && typeof err === 'object' && 'returned' in err) {
    throw new Error(`Expected a PeftError ${code} but the call returned ${String((err as { returned: unknown }).returned)}`);
  }
  expectPeftError(err, code, message);
}

/** Settles p within the limit, or fails: a hang is a bug too. */
async function settle(p: Promise<unknown>): Promise<{ ok: true; value: unknown } | { ok: false; error: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`did not settle within ${ASYNC_LIMIT_MS} ms`)), ASYNC_LIMIT_MS);
  });
  try {
    return await Promise.race([p.then((value) => ({ ok: true as const, value }), (error) => ({ ok: false as const, error })), limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** An async call returns a Promise at once (no synchronous throw) that rejects with the PeftError. */
async function expectRejects(fn: () => unknown, code: PeftErrorCode, message: RegExp): Promise<void> {
  let result: unknown;
  try {
    result = fn();
  } catch (e) {
    throw new Error(`Expected a rejected Promise but the call threw synchronously: ${e instanceof Error ? e.message : String(e)}`);
  }
  expect(result).toBeInstanceOf(Promise);
  const outcome = await settle(result as Promise<unknown>);
  if (outcome.ok) throw new Error(`Expected a rejection with ${code} but the Promise resolved to ${String(outcome.value)}`);
  expectPeftError(outcome.error, code, message);
}

/** A direct native call: it may throw at once (argument errors) or reject (worker errors); never anything else. */
async function expectNativeError(fn: () => unknown, code: PeftErrorCode, message: RegExp): Promise<void> {
  let err: unknown;
  try {
    const r = fn();
    // Duck-typed: a Promise made by N-API need not come from this test's realm.
    if (typeof (r as { then?: unknown } | null)?.then !== 'function') {
      throw new Error(`Expected a PeftError ${code} but the native call returned ${String(r)}`);
    }
    const outcome = await settle(r as Promise<unknown>);
    if (outcome.ok) throw new Error(`Expected a PeftError ${code} but the native Promise resolved`);
    err = outcome.error;
  } catch (e) {
    err = e;
  }
  expectPeftError(err, code, message);
}

// ---------------------------------------------------------------------------------------------
// The ops, as tables. Each op has a valid call; each case changes one thing about it.

interface ErrorCase {
  name: string;
  args: () => unknown[];
  code: PeftErrorCode;
  message: RegExp;
}

/** A place in the argument list that holds a tensor (or a list of tensors). */
interface Slot {
  name: string;
  set: (args: unknown[], value: unknown) => void;
}

interface OpSpec {
  name: string;
  sync: AnyFn;
  async: AnyFn;
  valid: () => unknown[];
  /** What a call with no arguments at all reports. */
  missing: { code: PeftErrorCode; message: RegExp };
  tensorSlots: Slot[];
  listSlots: Slot[];
  cases: ErrorCase[];
}

const at = (i: number): Slot['set'] => (args, value) => {
  args[i] = value;
};
const inOptions = (i: number, key: string): Slot['set'] => (args, value) => {
  args[i] = { ...(args[i] as object), [key]: value };
};

/** Values that are not tensors, with how the message describes them. */
const NOT_TENSORS: [label: string, value: () => unknown, described: string][] = [
  ['undefined', () => undefined, 'undefined'],
  ['null', () => null, 'null'],
  ['a string', () => 'x', 'the string "x"'],
  ['a number', () => 3, 'the number 3'],
  ['NaN', () => NaN, 'the number NaN'],
  ['a boolean', () => true, 'the boolean true'],
  ['a plain object', () => ({ shape: [2, 2], dtype: 'f32' }), 'an object (Object)'],
  ['an empty array', () => [], 'an array of length 0'],
  ['a nested array', () => [[0.5, 0.5], [0.5, 0.5]], 'an array of length 2'],
  ['a Float32Array', () => new Float32Array(4), 'a Float32Array'],
  ['a function', () => () => 0, 'a function'],
  ['a fake Tensor (Tensor.prototype without a handle)', () => Object.create(Tensor.prototype), 'an object (Tensor)'],
  ['the internal native handle', () => mat(2, 2).handle, 'an object (NativeTensor)'],
];

/** Values that are not lists of tensors. */
const NOT_LISTS: [label: string, value: () => unknown, described: string][] = [
  ['undefined', () => undefined, 'undefined'],
  ['null', () => null, 'null'],
  ['a string', () => 'x', 'the string "x"'],
  ['a number', () => 1, 'the number 1'],
  ['a plain object', () => ({}), 'an object (Object)'],
  ['a Tensor instead of a list', () => mat(2, 2), 'an object (Tensor)'],
];

/** Lists whose first element is wrong. */
const BAD_ELEMENTS: [label: string, value: () => unknown, described: string | null][] = [
  ['undefined', () => undefined, 'undefined'],
  ['a number', () => 2, 'the number 2'],
  ['a plain object', () => ({}), 'an object (Object)'],
  ['a nested array', () => [[1, 2]], 'an array of length 1'],
  ['a disposed tensor', () => dead(), null],
];

const adamwValid = () => [[mat(2, 2)], [mat(2, 2)], { expAvg: [mat(2, 2)], expAvgSq: [mat(2, 2)] }, { step: 1 }];
const sgdValid = () => [[mat(2, 2)], [mat(2, 2)], null, { lr: 0.1 }];
const sgdMomentum = () => [[mat(2, 2)], [mat(2, 2)], [mat(2, 2)], { lr: 0.1, momentum: 0.9 }];
const adamwState = (i: number, key: 'expAvg' | 'expAvgSq'): Slot['set'] => (args, value) => {
  args[i] = { ...(args[i] as object), [key]: value };
};

/** Replaces args[i] (or the option key) in a fresh valid call. */
function change(valid: () => unknown[], edit: (args: unknown[]) => void): () => unknown[] {
  return () => {
    const args = valid();
    edit(args);
    return args;
  };
}
const withArg = (valid: () => unknown[], i: number, value: () => unknown) => change(valid, (a) => (a[i] = value()));
const withOptions = (valid: () => unknown[], i: number, options: Record<string, unknown>) =>
  change(valid, (a) => (a[i] = { ...(a[i] as object), ...options }));
const withOpt = (valid: () => unknown[], i: number, key: string, value: unknown) => withOptions(valid, i, { [key]: value });
/** Like withOpt, for a tensor: made fresh for each call. */
const withTensorOpt = (valid: () => unknown[], i: number, options: () => Record<string, unknown>) =>
  change(valid, (a) => (a[i] = { ...(a[i] as object), ...options() }));

const finite = (arg: string, received: string) => new RegExp(`^Expected a finite number for ${esc(arg)} but received ${esc(received)}$`);
const inRange = (arg: string, range: string, received: string) =>
  new RegExp(`^Expected a number in ${esc(range)} for ${esc(arg)} but received the number ${esc(received)}$`);
const boolean = (arg: string, received: string) => new RegExp(`^Expected a boolean for ${esc(arg)} but received ${esc(received)}$`);
const dtypeMsg = (arg: string, allowed: string, received: string) =>
  new RegExp(`^Expected dtype ${esc(allowed)} for ${esc(arg)} but received ${received}$`);
const shapeMsg = (arg: string, expected: string, received: string) =>
  new RegExp(`^Expected shape ${esc(expected)} for ${esc(arg)} but received ${esc(received)}$`);
const ndimMsg = (arg: string, received: string) => new RegExp(`^Expected a 2-D tensor for ${esc(arg)} but received shape ${esc(received)}$`);
const optionsMsg = (received: string) => new RegExp(`^Expected an object for options but received ${esc(received)}$`);

/** Non-finite and non-number values for a numeric option. */
function numericOptionCases(valid: () => unknown[], i: number, key: string): ErrorCase[] {
  return [
    ['NaN', NaN, 'the number NaN'],
    ['Infinity', Infinity, 'the number Infinity'],
    ['-Infinity', -Infinity, 'the number -Infinity'],
    ['a string', '1', 'the string "1"'],
    ['null', null, 'null'],
    ['a boolean', true, 'the boolean true'],
  ].map(([label, value, received]) => ({
    name: `option ${key} is ${label}`,
    args: withOpt(valid, i, key, value),
    code: 'E_ARGUMENT' as const,
    message: finite(`option ${key}`, received as string),
  }));
}

function booleanOptionCases(valid: () => unknown[], i: number, key: string): ErrorCase[] {
  return [
    ['a number', 1, 'the number 1'],
    ['a string', 'true', 'the string "true"'],
    ['null', null, 'null'],
  ].map(([label, value, received]) => ({
    name: `option ${key} is ${label}`,
    args: withOpt(valid, i, key, value),
    code: 'E_ARGUMENT' as const,
    message: boolean(`option ${key}`, received as string),
  }));
}

/** Options that are not an object (for the ops whose options are optional, undefined is fine). */
function optionsObjectCases(valid: () => unknown[], i: number): ErrorCase[] {
  return [
    ['a string', 'fast', 'the string "fast"'],
    ['a number', 5, 'the number 5'],
    ['an array', [], 'an array of length 0'],
    ['null', null, 'null'],
  ].map(([label, value, received]) => ({
    name: `options is ${label}`,
    args: withArg(valid, i, () => value),
    code: 'E_ARGUMENT' as const,
    message: optionsMsg(received as string),
  }));
}

const matmulValid = () => [mat(2, 3), mat(3, 4)];
const lrfValid = () => [lr.x(), lr.w(), lr.a(), lr.b()];
const lrbValid = () => [lr.dy(), lr.x(), lr.xa(), lr.w(), lr.a(), lr.b()];

const OPS: OpSpec[] = [
  {
    name: 'matmul',
    sync: ops.matmul,
    async: ops.matmulAsync,
    valid: matmulValid,
    missing: { code: 'E_ARGUMENT', message: /^Expected a Tensor for a but received undefined$/ },
    tensorSlots: [
      { name: 'a', set: at(0) },
      { name: 'b', set: at(1) },
      { name: 'options.out', set: inOptions(2, 'out') },
    ],
    listSlots: [],
    cases: [
      ...optionsObjectCases(matmulValid, 2),
      ...booleanOptionCases(matmulValid, 2, 'transA'),
      ...booleanOptionCases(matmulValid, 2, 'transB'),
      ...booleanOptionCases(matmulValid, 2, 'accumulate'),
      ...numericOptionCases(matmulValid, 2, 'alpha'),
      {
        name: 'mismatched inner dimensions',
        args: () => [mat(2, 3), mat(4, 5)],
        code: 'E_SHAPE',
        message: /^Expected matching inner dimensions for a and b but received op\(a\) of shape \[2, 3\] and op\(b\) of shape \[4, 5\]$/,
      },
      {
        name: 'mismatched inner dimensions after transB',
        args: () => [mat(2, 3), mat(3, 4), { transB: true }],
        code: 'E_SHAPE',
        message: /^Expected matching inner dimensions for a and b but received op\(a\) of shape \[2, 3\] and op\(b\) of shape \[4, 3\]$/,
      },
      {
        name: 'mismatched inner dimensions after transA',
        args: () => [mat(2, 3), mat(3, 4), { transA: true }],
        code: 'E_SHAPE',
        message: /op\(a\) of shape \[3, 2\] and op\(b\) of shape \[3, 4\]$/,
      },
      { name: 'a is 1-D', args: () => [vec(3), mat(3, 4)], code: 'E_SHAPE', message: ndimMsg('a', '[3]') },
      { name: 'b is 3-D', args: () => [mat(2, 3), tensor(new Float32Array(24), [2, 3, 4])], code: 'E_SHAPE', message: ndimMsg('b', '[2, 3, 4]') },
      { name: 'a is 0-D (a scalar)', args: () => [zeros([]), mat(3, 4)], code: 'E_SHAPE', message: ndimMsg('a', '[]') },
      { name: 'a is i32', args: () => [mat(2, 3, 'i32'), mat(3, 4)], code: 'E_DTYPE', message: dtypeMsg('a', 'f32 or bf16', 'i32') },
      { name: 'a is u8', args: () => [mat(2, 3, 'u8'), mat(3, 4)], code: 'E_DTYPE', message: dtypeMsg('a', 'f32 or bf16', 'u8') },
      { name: 'b is f16', args: () => [mat(2, 3), mat(3, 4, 'f16')], code: 'E_DTYPE', message: dtypeMsg('b', 'f32 or bf16', 'f16') },
      {
        name: 'options.out is bf16',
        args: () => [mat(2, 3), mat(3, 4), { out: zeros([2, 4], 'bf16') }],
        code: 'E_DTYPE',
        message: dtypeMsg('options.out', 'f32', 'bf16'),
      },
      {
        name: 'options.out has the wrong shape',
        args: () => [mat(2, 3), mat(3, 4), { out: zeros([4, 2]) }],
        code: 'E_SHAPE',
        message: shapeMsg('options.out', '[2, 4]', '[4, 2]'),
      },
      {
        name: 'accumulate without out',
        args: () => [mat(2, 3), mat(3, 4), { accumulate: true }],
        code: 'E_ARGUMENT',
        message: /^Expected a Tensor to accumulate into .* for options\.out but received undefined$/,
      },
      {
        name: 'options.out is the input a',
        args: () => {
          const a = mat(2, 2);
          return [a, mat(2, 2), { out: a }];
        },
        code: 'E_ARGUMENT',
        message: /^Expected an out tensor distinct from a and b but received one that shares their memory$/,
      },
    ],
  },
  {
    name: 'lowrankForward',
    sync: ops.lowrankForward,
    async: ops.lowrankForwardAsync,
    valid: lrfValid,
    missing: { code: 'E_ARGUMENT', message: /^Expected a Tensor for x but received undefined$/ },
    tensorSlots: ['x', 'weight', 'loraA', 'loraB'].map((name, i) => ({ name, set: at(i) })),
    listSlots: [],
    cases: [
      ...optionsObjectCases(lrfValid, 4),
      ...numericOptionCases(lrfValid, 4, 'scale'),
      { name: 'x is 1-D', args: () => [vec(3), lr.w(), lr.a(), lr.b()], code: 'E_SHAPE', message: ndimMsg('x', '[3]') },
      { name: 'weight is 3-D', args: () => [lr.x(), zeros([4, 3, 1]), lr.a(), lr.b()], code: 'E_SHAPE', message: ndimMsg('weight', '[4, 3, 1]') },
      { name: 'loraA is 1-D', args: () => [lr.x(), lr.w(), vec(3), lr.b()], code: 'E_SHAPE', message: ndimMsg('loraA', '[3]') },
      { name: 'loraB is 1-D', args: () => [lr.x(), lr.w(), lr.a(), vec(8)], code: 'E_SHAPE', message: ndimMsg('loraB', '[8]') },
      {
        name: 'weight has the wrong K',
        args: () => [lr.x(), mat(4, 5), lr.a(), lr.b()],
        code: 'E_SHAPE',
        message: shapeMsg('weight', '[4, 3]', '[4, 5]'),
      },
      { name: 'loraA has the wrong K', args: () => [lr.x(), lr.w(), mat(2, 5), lr.b()], code: 'E_SHAPE', message: shapeMsg('loraA', '[2, 3]', '[2, 5]') },
      { name: 'loraB has the wrong rank', args: () => [lr.x(), lr.w(), lr.a(), mat(4, 3)], code: 'E_SHAPE', message: shapeMsg('loraB', '[4, 2]', '[4, 3]') },
      { name: 'loraB has the wrong N', args: () => [lr.x(), lr.w(), lr.a(), mat(5, 2)], code: 'E_SHAPE', message: shapeMsg('loraB', '[4, 2]', '[5, 2]') },
      {
        name: 'rank 0 (empty loraA and loraB)',
        args: () => [lr.x(), lr.w(), zeros([0, 3]), zeros([4, 0])],
        code: 'E_SHAPE',
        message: /^Expected a rank of at least 1 for loraA but received shape \[0, 3\]$/,
      },
      { name: 'x is i32', args: () => [mat(2, 3, 'i32'), lr.w(), lr.a(), lr.b()], code: 'E_DTYPE', message: dtypeMsg('x', 'f32 or bf16', 'i32') },
      { name: 'weight is f16', args: () => [lr.x(), mat(4, 3, 'f16'), lr.a(), lr.b()], code: 'E_DTYPE', message: dtypeMsg('weight', 'f32 or bf16', 'f16') },
      { name: 'loraA is bf16', args: () => [lr.x(), lr.w(), mat(2, 3, 'bf16'), lr.b()], code: 'E_DTYPE', message: dtypeMsg('loraA', 'f32', 'bf16') },
      { name: 'loraB is u8', args: () => [lr.x(), lr.w(), lr.a(), mat(4, 2, 'u8')], code: 'E_DTYPE', message: dtypeMsg('loraB', 'f32', 'u8') },
    ],
  },
  {
    name: 'lowrankBackward',
    sync: ops.lowrankBackward,
    async: ops.lowrankBackwardAsync,
    valid: lrbValid,
    missing: { code: 'E_ARGUMENT', message: /^Expected a Tensor for dy but received undefined$/ },
    tensorSlots: [
      ...['dy', 'x', 'xa', 'weight', 'loraA', 'loraB'].map((name, i) => ({ name, set: at(i) })),
      { name: 'options.gradA', set: inOptions(6, 'gradA') },
      { name: 'options.gradB', set: inOptions(6, 'gradB') },
    ],
    listSlots: [],
    cases: [
      ...optionsObjectCases(lrbValid, 6),
      ...numericOptionCases(lrbValid, 6, 'scale'),
      ...booleanOptionCases(lrbValid, 6, 'needDx'),
      ...booleanOptionCases(lrbValid, 6, 'accumulate'),
      { name: 'dy has the wrong N', args: change(lrbValid, (a) => (a[0] = mat(2, 5))), code: 'E_SHAPE', message: shapeMsg('dy', '[2, 4]', '[2, 5]') },
      { name: 'dy has the wrong M', args: change(lrbValid, (a) => (a[0] = mat(3, 4))), code: 'E_SHAPE', message: shapeMsg('dy', '[2, 4]', '[3, 4]') },
      { name: 'dy is 1-D', args: change(lrbValid, (a) => (a[0] = vec(8))), code: 'E_SHAPE', message: shapeMsg('dy', '[2, 4]', '[8]') },
      { name: 'xa has the wrong rank', args: change(lrbValid, (a) => (a[2] = mat(2, 3))), code: 'E_SHAPE', message: shapeMsg('xa', '[2, 2]', '[2, 3]') },
      { name: 'x has the wrong K', args: change(lrbValid, (a) => (a[1] = mat(2, 4))), code: 'E_SHAPE', message: shapeMsg('weight', '[4, 4]', '[4, 3]') },
      { name: 'loraA has the wrong K', args: change(lrbValid, (a) => (a[4] = mat(2, 4))), code: 'E_SHAPE', message: shapeMsg('loraA', '[2, 3]', '[2, 4]') },
      { name: 'dy is bf16', args: change(lrbValid, (a) => (a[0] = mat(2, 4, 'bf16'))), code: 'E_DTYPE', message: dtypeMsg('dy', 'f32', 'bf16') },
      { name: 'xa is f16', args: change(lrbValid, (a) => (a[2] = mat(2, 2, 'f16'))), code: 'E_DTYPE', message: dtypeMsg('xa', 'f32', 'f16') },
      { name: 'x is u8', args: change(lrbValid, (a) => (a[1] = mat(2, 3, 'u8'))), code: 'E_DTYPE', message: dtypeMsg('x', 'f32 or bf16', 'u8') },
      { name: 'loraB is bf16', args: change(lrbValid, (a) => (a[5] = mat(4, 2, 'bf16'))), code: 'E_DTYPE', message: dtypeMsg('loraB', 'f32', 'bf16') },
      { name: 'options.gradA has the wrong shape', args: withTensorOpt(lrbValid, 6, () => ({ gradA: mat(3, 3) })), code: 'E_SHAPE', message: shapeMsg('options.gradA', '[2, 3]', '[3, 3]') },
      { name: 'options.gradB has the wrong shape', args: withTensorOpt(lrbValid, 6, () => ({ gradB: mat(2, 4) })), code: 'E_SHAPE', message: shapeMsg('options.gradB', '[4, 2]', '[2, 4]') },
      { name: 'options.gradA is bf16', args: withTensorOpt(lrbValid, 6, () => ({ gradA: mat(2, 3, 'bf16') })), code: 'E_DTYPE', message: dtypeMsg('options.gradA', 'f32', 'bf16') },
      { name: 'options.gradB is i32', args: withTensorOpt(lrbValid, 6, () => ({ gradB: mat(4, 2, 'i32') })), code: 'E_DTYPE', message: dtypeMsg('options.gradB', 'f32', 'i32') },
      {
        name: 'accumulate without gradA and gradB',
        args: withOpt(lrbValid, 6, 'accumulate', true),
        code: 'E_ARGUMENT',
        message: /^Expected a Tensor to accumulate into .* for options\.gradA but received undefined$/,
      },
      {
        name: 'accumulate with gradA only',
        args: withTensorOpt(lrbValid, 6, () => ({ accumulate: true, gradA: mat(2, 3) })),
        code: 'E_ARGUMENT',
        message: /^Expected a Tensor to accumulate into .* for options\.gradB but received undefined$/,
      },
    ],
  },
  {
    name: 'adamw',
    sync: ops.adamw,
    async: ops.adamwAsync,
    valid: adamwValid,
    missing: { code: 'E_ARGUMENT', message: optionsMsg('undefined') },
    tensorSlots: [],
    listSlots: [
      { name: 'params', set: at(0) },
      { name: 'grads', set: at(1) },
      { name: 'state.expAvg', set: adamwState(2, 'expAvg') },
      { name: 'state.expAvgSq', set: adamwState(2, 'expAvgSq') },
    ],
    cases: [
      ...['lr', 'beta1', 'beta2', 'eps', 'weightDecay', 'step'].flatMap((key) => numericOptionCases(adamwValid, 3, key)),
      { name: 'options missing', args: () => adamwValid().slice(0, 3), code: 'E_ARGUMENT', message: optionsMsg('undefined') },
      { name: 'options is a number', args: withArg(adamwValid, 3, () => 0.001), code: 'E_ARGUMENT', message: optionsMsg('the number 0.001') },
      { name: 'options is an array', args: withArg(adamwValid, 3, () => [1]), code: 'E_ARGUMENT', message: optionsMsg('an array of length 1') },
      {
        name: 'option step missing',
        args: withArg(adamwValid, 3, () => ({ lr: 0.1 })),
        code: 'E_ARGUMENT',
        message: /^Expected the step number \(1 on the first step\) for option step but received undefined$/,
      },
      { name: 'state missing', args: withArg(adamwValid, 2, () => undefined), code: 'E_ARGUMENT', message: /^Expected an object for state but received undefined$/ },
      { name: 'state is an array', args: withArg(adamwValid, 2, () => [mat(2, 2)]), code: 'E_ARGUMENT', message: /^Expected an object for state but received an array of length 1$/ },
      { name: 'negative lr', args: withOpt(adamwValid, 3, 'lr', -0.001), code: 'E_RANGE', message: inRange('option lr', '[0, 1000000]', '-0.001') },
      { name: 'absurd lr', args: withOpt(adamwValid, 3, 'lr', 1e7), code: 'E_RANGE', message: inRange('option lr', '[0, 1000000]', '10000000') },
      { name: 'beta1 = 1', args: withOpt(adamwValid, 3, 'beta1', 1), code: 'E_RANGE', message: inRange('option beta1', '[0, 0.999999999]', '1') },
      { name: 'beta1 > 1', args: withOpt(adamwValid, 3, 'beta1', 1.5), code: 'E_RANGE', message: inRange('option beta1', '[0, 0.999999999]', '1.5') },
      { name: 'negative beta1', args: withOpt(adamwValid, 3, 'beta1', -0.1), code: 'E_RANGE', message: inRange('option beta1', '[0, 0.999999999]', '-0.1') },
      { name: 'beta2 = 1', args: withOpt(adamwValid, 3, 'beta2', 1), code: 'E_RANGE', message: inRange('option beta2', '[0, 0.999999999]', '1') },
      { name: 'negative eps', args: withOpt(adamwValid, 3, 'eps', -1e-8), code: 'E_RANGE', message: inRange('option eps', '[0, 1]', '-1e-8') },
      { name: 'eps > 1', args: withOpt(adamwValid, 3, 'eps', 2), code: 'E_RANGE', message: inRange('option eps', '[0, 1]', '2') },
      { name: 'negative weightDecay', args: withOpt(adamwValid, 3, 'weightDecay', -0.01), code: 'E_RANGE', message: inRange('option weightDecay', '[0, 1000000]', '-0.01') },
      { name: 'step 0', args: withOpt(adamwValid, 3, 'step', 0), code: 'E_RANGE', message: inRange('option step', '[1, 9007199254740991]', '0') },
      { name: 'negative step', args: withOpt(adamwValid, 3, 'step', -3), code: 'E_RANGE', message: inRange('option step', '[1, 9007199254740991]', '-3') },
      { name: 'step beyond 2^53', args: withOpt(adamwValid, 3, 'step', 2 ** 60), code: 'E_RANGE', message: /^Expected a number in \[1, 9007199254740991\] for option step/ },
      { name: 'fractional step', args: withOpt(adamwValid, 3, 'step', 1.5), code: 'E_ARGUMENT', message: /^Expected an integer for option step but received the number 1\.5$/ },
      { name: 'params are bf16', args: change(adamwValid, (a) => (a[0] = [mat(2, 2, 'bf16')])), code: 'E_DTYPE', message: dtypeMsg('params[0]', 'f32', 'bf16') },
      { name: 'grads are f16', args: change(adamwValid, (a) => (a[1] = [mat(2, 2, 'f16')])), code: 'E_DTYPE', message: dtypeMsg('grads[0]', 'f32', 'f16') },
      {
        name: 'state.expAvg is bf16 (optimizer state is f32 only)',
        args: change(adamwValid, adamwStateEdit('expAvg', () => [mat(2, 2, 'bf16')])),
        code: 'E_DTYPE',
        message: dtypeMsg('state.expAvg[0]', 'f32', 'bf16'),
      },
      {
        name: 'state.expAvgSq is i32',
        args: change(adamwValid, adamwStateEdit('expAvgSq', () => [mat(2, 2, 'i32')])),
        code: 'E_DTYPE',
        message: dtypeMsg('state.expAvgSq[0]', 'f32', 'i32'),
      },
      { name: 'a grad of the wrong shape', args: change(adamwValid, (a) => (a[1] = [mat(2, 3)])), code: 'E_SHAPE', message: shapeMsg('grads[0]', '[2, 2]', '[2, 3]') },
      { name: 'a grad of the wrong ndim', args: change(adamwValid, (a) => (a[1] = [vec(4)])), code: 'E_SHAPE', message: shapeMsg('grads[0]', '[2, 2]', '[4]') },
      {
        name: 'state.expAvgSq of the wrong shape',
        args: change(adamwValid, adamwStateEdit('expAvgSq', () => [mat(1, 4)])),
        code: 'E_SHAPE',
        message: shapeMsg('state.expAvgSq[0]', '[2, 2]', '[1, 4]'),
      },
      {
        name: 'grads shorter than params',
        args: () => [[mat(2, 2), vec(3)], [mat(2, 2)], { expAvg: [mat(2, 2), vec(3)], expAvgSq: [mat(2, 2), vec(3)] }, { step: 1 }],
        code: 'E_ARGUMENT',
        message: /^Expected 2 tensors in grads \(one per parameter\) but received 1$/,
      },
      {
        name: 'grads longer than params',
        args: change(adamwValid, (a) => (a[1] = [mat(2, 2), mat(2, 2)])),
        code: 'E_ARGUMENT',
        message: /^Expected 1 tensors in grads \(one per parameter\) but received 2$/,
      },
      {
        name: 'empty state.expAvg',
        args: change(adamwValid, adamwStateEdit('expAvg', () => [])),
        code: 'E_ARGUMENT',
        message: /^Expected 1 tensors in state\.expAvg \(one per parameter\) but received 0$/,
      },
      {
        name: 'empty params with a grad',
        args: () => [[], [mat(2, 2)], { expAvg: [], expAvgSq: [] }, { step: 1 }],
        code: 'E_ARGUMENT',
        message: /^Expected 0 tensors in grads \(one per parameter\) but received 1$/,
      },
      {
        name: 'the same parameter twice',
        args: () => {
          const p = mat(2, 2);
          return [[p, p], [mat(2, 2), mat(2, 2)], { expAvg: [mat(2, 2), mat(2, 2)], expAvgSq: [mat(2, 2), mat(2, 2)] }, { step: 1 }];
        },
        code: 'E_ARGUMENT',
        message: /^Expected distinct tensors in params but params\[1\] repeats params\[0\]$/,
      },
    ],
  },
  {
    name: 'sgd',
    sync: ops.sgd,
    async: ops.sgdAsync,
    valid: sgdValid,
    missing: { code: 'E_ARGUMENT', message: optionsMsg('undefined') },
    tensorSlots: [],
    listSlots: [
      { name: 'params', set: at(0) },
      { name: 'grads', set: at(1) },
    ],
    cases: [
      ...['lr', 'momentum', 'dampening', 'weightDecay', 'step'].flatMap((key) => numericOptionCases(sgdValid, 3, key)),
      ...booleanOptionCases(sgdValid, 3, 'nesterov'),
      { name: 'options missing', args: () => sgdValid().slice(0, 3), code: 'E_ARGUMENT', message: optionsMsg('undefined') },
      { name: 'options is a string', args: withArg(sgdValid, 3, () => 'sgd'), code: 'E_ARGUMENT', message: optionsMsg('the string "sgd"') },
      { name: 'negative lr', args: withOpt(sgdValid, 3, 'lr', -0.1), code: 'E_RANGE', message: inRange('option lr', '[0, 1000000]', '-0.1') },
      { name: 'momentum > 1', args: withOpt(sgdValid, 3, 'momentum', 1.5), code: 'E_RANGE', message: inRange('option momentum', '[0, 1]', '1.5') },
      { name: 'negative momentum', args: withOpt(sgdValid, 3, 'momentum', -0.9), code: 'E_RANGE', message: inRange('option momentum', '[0, 1]', '-0.9') },
      { name: 'negative dampening', args: withOpt(sgdValid, 3, 'dampening', -1), code: 'E_RANGE', message: inRange('option dampening', '[0, 1]', '-1') },
      { name: 'negative weightDecay', args: withOpt(sgdValid, 3, 'weightDecay', -1), code: 'E_RANGE', message: inRange('option weightDecay', '[0, 1000000]', '-1') },
      { name: 'step 0', args: withOpt(sgdValid, 3, 'step', 0), code: 'E_RANGE', message: inRange('option step', '[1, 9007199254740991]', '0') },
      { name: 'fractional step', args: withOpt(sgdValid, 3, 'step', 2.5), code: 'E_ARGUMENT', message: /^Expected an integer for option step but received the number 2\.5$/ },
      {
        name: 'nesterov without momentum',
        args: withOpt(sgdValid, 3, 'nesterov', true),
        code: 'E_CONFIG',
        message: /^Expected momentum > 0 and dampening = 0 for option nesterov but received momentum 0 and dampening 0$/,
      },
      {
        name: 'nesterov with dampening',
        args: withOptions(sgdMomentum, 3, { nesterov: true, dampening: 0.5 }),
        code: 'E_CONFIG',
        message: /^Expected momentum > 0 and dampening = 0 for option nesterov but received momentum 0\.9 and dampening 0\.5$/,
      },
      {
        name: 'momentum without momentum buffers',
        args: withArg(sgdMomentum, 2, () => null),
        code: 'E_ARGUMENT',
        message: /^Expected an array of f32 tensors \(one per parameter\) when option momentum > 0 for momentumBuffers but received null$/,
      },
      {
        name: 'momentum buffers missing (undefined)',
        args: withArg(sgdMomentum, 2, () => undefined),
        code: 'E_ARGUMENT',
        message: /for momentumBuffers but received undefined$/,
      },
      { name: 'momentumBuffers is a string', args: withArg(sgdMomentum, 2, () => 'x'), code: 'E_ARGUMENT', message: /^Expected an array for momentumBuffers but received the string "x"$/ },
      { name: 'momentumBuffers is a Tensor', args: withArg(sgdMomentum, 2, () => mat(2, 2)), code: 'E_ARGUMENT', message: /^Expected an array for momentumBuffers but received an object \(Tensor\)$/ },
      { name: 'momentumBuffers holds a number', args: withArg(sgdMomentum, 2, () => [0]), code: 'E_ARGUMENT', message: /^Expected a Tensor for momentumBuffers\[0\] but received the number 0$/ },
      { name: 'momentumBuffers holds a disposed tensor', args: withArg(sgdMomentum, 2, () => [dead()]), code: 'E_DISPOSED', message: /^Tensor momentumBuffers\[0\] was disposed and cannot be used$/ },
      { name: 'empty momentumBuffers', args: withArg(sgdMomentum, 2, () => []), code: 'E_ARGUMENT', message: /^Expected 1 tensors in momentumBuffers \(one per parameter\) but received 0$/ },
      { name: 'momentumBuffers of the wrong shape', args: withArg(sgdMomentum, 2, () => [mat(3, 3)]), code: 'E_SHAPE', message: shapeMsg('momentumBuffers[0]', '[2, 2]', '[3, 3]') },
      { name: 'momentumBuffers are bf16', args: withArg(sgdMomentum, 2, () => [mat(2, 2, 'bf16')]), code: 'E_DTYPE', message: dtypeMsg('momentumBuffers[0]', 'f32', 'bf16') },
      { name: 'params are i32', args: change(sgdValid, (a) => (a[0] = [mat(2, 2, 'i32')])), code: 'E_DTYPE', message: dtypeMsg('params[0]', 'f32', 'i32') },
      { name: 'grads are bf16', args: change(sgdValid, (a) => (a[1] = [mat(2, 2, 'bf16')])), code: 'E_DTYPE', message: dtypeMsg('grads[0]', 'f32', 'bf16') },
      { name: 'a grad of the wrong shape', args: change(sgdValid, (a) => (a[1] = [mat(4, 1)])), code: 'E_SHAPE', message: shapeMsg('grads[0]', '[2, 2]', '[4, 1]') },
      { name: 'grads empty', args: change(sgdValid, (a) => (a[1] = [])), code: 'E_ARGUMENT', message: /^Expected 1 tensors in grads \(one per parameter\) but received 0$/ },
    ],
  },
  {
    name: 'clipGradNorm',
    sync: ops.clipGradNorm,
    async: ops.clipGradNormAsync,
    valid: () => [[mat(2, 2)], 1],
    missing: { code: 'E_ARGUMENT', message: /^Expected an array for grads but received undefined$/ },
    tensorSlots: [],
    listSlots: [{ name: 'grads', set: at(0) }],
    cases: [
      { name: 'maxNorm missing', args: () => [[mat(2, 2)]], code: 'E_ARGUMENT', message: finite('maxNorm', 'undefined') },
      { name: 'maxNorm NaN', args: () => [[mat(2, 2)], NaN], code: 'E_ARGUMENT', message: finite('maxNorm', 'the number NaN') },
      { name: 'maxNorm Infinity', args: () => [[mat(2, 2)], Infinity], code: 'E_ARGUMENT', message: finite('maxNorm', 'the number Infinity') },
      { name: 'maxNorm a string', args: () => [[mat(2, 2)], '1'], code: 'E_ARGUMENT', message: finite('maxNorm', 'the string "1"') },
      { name: 'maxNorm an object', args: () => [[mat(2, 2)], { maxNorm: 1 }], code: 'E_ARGUMENT', message: finite('maxNorm', 'an object (Object)') },
      { name: 'maxNorm 0', args: () => [[mat(2, 2)], 0], code: 'E_RANGE', message: inRange('maxNorm', '(0, ∞]', '0') },
      { name: 'negative maxNorm', args: () => [[mat(2, 2)], -1], code: 'E_RANGE', message: inRange('maxNorm', '(0, ∞]', '-1') },
      { name: 'grads are bf16', args: () => [[mat(2, 2, 'bf16')], 1], code: 'E_DTYPE', message: dtypeMsg('grads[0]', 'f32', 'bf16') },
      { name: 'a later grad is u8', args: () => [[mat(2, 2), vec(3, 'u8')], 1], code: 'E_DTYPE', message: dtypeMsg('grads[1]', 'f32', 'u8') },
      {
        name: 'the same grad twice',
        args: () => {
          const g = mat(2, 2);
          return [[g, mat(1, 1), g], 1];
        },
        code: 'E_ARGUMENT',
        message: /^Expected distinct tensors in grads but grads\[2\] repeats grads\[0\]$/,
      },
    ],
  },
];

function adamwStateEdit(key: 'expAvg' | 'expAvgSq', value: () => unknown) {
  return (args: unknown[]) => {
    args[2] = { ...(args[2] as object), [key]: value() };
  };
}

/** All error cases of an op: its own table plus the generated argument-type cases. */
function allCases(spec: OpSpec): ErrorCase[] {
  const generated: ErrorCase[] = [{ name: 'no arguments at all', args: () => [], ...spec.missing }];
  for (const slot of spec.tensorSlots) {
    for (const [label, value, described] of NOT_TENSORS) {
      // An option left undefined is simply absent; null options are refused like any non-tensor.
      if (slot.name.startsWith('options.') && label === 'undefined') continue;
      generated.push({
        name: `${slot.name} is ${label}`,
        args: change(spec.valid, (a) => slot.set(a, value())),
        code: 'E_ARGUMENT',
        message: new RegExp(`^Expected a Tensor for ${esc(slot.name)} but received ${esc(described)}$`),
      });
    }
    generated.push({
      name: `${slot.name} is a disposed tensor`,
      args: change(spec.valid, (a) => slot.set(a, dead())),
      code: 'E_DISPOSED',
      message: new RegExp(`^Tensor ${esc(slot.name)} was disposed and cannot be used$`),
    });
  }
  for (const slot of spec.listSlots) {
    for (const [label, value, described] of NOT_LISTS) {
      generated.push({
        name: `${slot.name} is ${label}`,
        args: change(spec.valid, (a) => slot.set(a, value())),
        code: 'E_ARGUMENT',
        message: new RegExp(`^Expected an array for ${esc(slot.name)} but received ${esc(described)}$`),
      });
    }
    for (const [label, value, described] of BAD_ELEMENTS) {
      generated.push({
        name: `${slot.name}[0] is ${label}`,
        args: change(spec.valid, (a) => slot.set(a, [value()])),
        code: described === null ? 'E_DISPOSED' : 'E_ARGUMENT',
        message:
          described === null
            ? new RegExp(`^Tensor ${esc(slot.name)}\\[0\\] was disposed and cannot be used$`)
            : new RegExp(`^Expected a Tensor for ${esc(slot.name)}\\[0\\] but received ${esc(described)}$`),
      });
    }
  }
  return [...generated, ...spec.cases];
}

// ---------------------------------------------------------------------------------------------

describe.each(OPS)('ops.$name', (spec) => {
  const cases = allCases(spec).map((c) => [c.name, c] as const);

  it('accepts the valid call that every case below changes in one place', async () => {
    expect(() => spec.sync(...spec.valid())).not.toThrow();
    const outcome = await settle(spec.async(...spec.valid()) as Promise<unknown>);
    expect(outcome).toMatchObject({ ok: true });
  });

  it.each(cases)('sync, %s: throws a PeftError', (_name, c) => {
    expectThrows(() => spec.sync(...c.args()), c.code, c.message);
  });

  it.each(cases)('async, %s: rejects with a PeftError', async (_name, c) => {
    await expectRejects(() => spec.async(...c.args()), c.code, c.message);
  });
});

describe('ops on empty inputs that are valid', () => {
  it('matmul with an empty inner dimension gives zeros; with empty outer dimensions, an empty result', () => {
    expect(ops.matmul(zeros([2, 0]), zeros([0, 3])).toArray()).toEqual([
      [0, 0, 0],
      [0, 0, 0],
    ]);
    expect(ops.matmul(zeros([0, 3]), mat(3, 2)).shape).toEqual([0, 2]);
    const acc = tensor([[1, 2]]);
    ops.matmul(zeros([1, 0]), zeros([0, 2]), { out: acc, accumulate: true });
    expect(acc.toArray()).toEqual([[1, 2]]);
  });

  it('the low-rank linear with K = 0 gives zeros; its backward over M = 0 gives zero gradients', async () => {
    const fwd = ops.lowrankForward(zeros([2, 0]), zeros([4, 0]), zeros([2, 0]), mat(4, 2));
    expect(fwd.y.toArray()).toEqual([0, 0].map(() => [0, 0, 0, 0]));
    expect(fwd.xa.toArray()).toEqual([
      [0, 0],
      [0, 0],
    ]);
    const back = await ops.lowrankBackwardAsync(zeros([0, 4]), zeros([0, 3]), zeros([0, 2]), mat(4, 3), mat(2, 3), mat(4, 2));
    expect(back.dx?.shape).toEqual([0, 3]);
    expect(Array.from(back.gradA.toFloat32Array())).toEqual(new Array(6).fill(0));
    expect(Array.from(back.gradB.toFloat32Array())).toEqual(new Array(8).fill(0));
  });

  it('optimizers and clipping over no tensors at all do nothing', async () => {
    expect(ops.adamw([], [], { expAvg: [], expAvgSq: [] }, { step: 1 })).toBeUndefined();
    expect(ops.sgd([], [], null, { lr: 0.1 })).toBeUndefined();
    expect(ops.clipGradNorm([], 1)).toBe(0);
    expect(await ops.clipGradNormAsync([], 1)).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// tensor(), zeros(), Tensor.

const NESTED_CYCLE = (() => {
  const a: unknown[] = [];
  a.push(a);
  return a;
})();

const TENSOR_CASES: [name: string, call: () => unknown, code: PeftErrorCode, message: RegExp][] = [
  ['no arguments', () => (tensor as AnyFn)(), 'E_ARGUMENT', /^Expected a TypedArray or nested arrays of numbers for tensor data but received undefined$/],
  ['null data', () => (tensor as AnyFn)(null), 'E_ARGUMENT', /for tensor data but received null$/],
  ['a string', () => (tensor as AnyFn)('1,2,3'), 'E_ARGUMENT', /for tensor data but received the string "1,2,3"$/],
  ['a number', () => (tensor as AnyFn)(5), 'E_ARGUMENT', /for tensor data but received the number 5$/],
  ['a plain object', () => (tensor as AnyFn)({ 0: 1, length: 1 }), 'E_ARGUMENT', /for tensor data but received an object \(Object\)$/],
  ['a DataView', () => (tensor as AnyFn)(new DataView(new ArrayBuffer(8))), 'E_ARGUMENT', /for tensor data but received a DataView$/],
  ['a BigInt64Array', () => (tensor as AnyFn)(new BigInt64Array(2)), 'E_DTYPE', /^Expected a TypedArray of numbers .* for tensor data but received a BigInt64Array$/],
  ['a Tensor as data', () => (tensor as AnyFn)(mat(2, 2)), 'E_ARGUMENT', /for tensor data but received an object \(Tensor\)$/],
  ['ragged rows', () => tensor([[1, 2], [3]]), 'E_SHAPE', /^Expected an array of length 2 \(nested arrays must be rectangular\) for tensor data\[1\] but received an array of length 1$/],
  ['a row where a number belongs', () => tensor([1, [2]] as never), 'E_SHAPE', /^Expected a number \(nested arrays must be rectangular.*\) for tensor data\[1\] but received an array of length 1$/],
  ['a number where a row belongs', () => tensor([[1], 2] as never), 'E_SHAPE', /^Expected an array of length 1 .* for tensor data\[1\] but received the number 2$/],
  ['ragged deep inside', () => tensor([[[1, 2]], [[3, 4], [5, 6]]]), 'E_SHAPE', /for tensor data\[1\] but received an array of length 2$/],
  ['empty rows next to full ones', () => tensor([[], [1]]), 'E_SHAPE', /^Expected an array of length 0 .* for tensor data\[1\] but received an array of length 1$/],
  ['a string inside', () => tensor([[1, 'a' as never]]), 'E_ARGUMENT', /^Expected a number for tensor data\[0\]\[1\] but received the string "a"$/],
  ['null inside', () => tensor([[1, 2], [null as never, 4]]), 'E_ARGUMENT', /^Expected a number for tensor data\[1\]\[0\] but received null$/],
  ['a hole in a sparse array', () => tensor([, 1] as never), 'E_ARGUMENT', /^Expected a number for tensor data\[0\] but received undefined$/], // eslint-disable-line no-sparse-arrays
  ['an array nested in itself', () => tensor(NESTED_CYCLE as never), 'E_SHAPE', /^Expected nested arrays at most 64 levels deep .* for tensor data but received an array of length 1$/],
  ['too few values for the shape', () => tensor(new Float32Array(5), [2, 3]), 'E_SHAPE', /^Expected 6 values for shape \[2, 3\] but received 5$/],
  ['too many values for the shape', () => tensor([1, 2, 3, 4, 5], [2, 2]), 'E_SHAPE', /^Expected 4 values for shape \[2, 2\] but received 5$/],
  ['values for an empty shape', () => tensor([1], [0]), 'E_SHAPE', /^Expected 0 values for shape \[0\] but received 1$/],
  ['no values for a scalar shape', () => tensor([], []), 'E_SHAPE', /^Expected 1 values for shape \[\] but received 0$/],
  ['an unknown dtype', () => tensor([1], [1], 'f64' as DType), 'E_DTYPE', /^Expected one of f32, bf16, f16, i32, u8 for dtype but received the string "f64"$/],
  ['an upper-case dtype', () => tensor([1], [1], 'F32' as DType), 'E_DTYPE', /for dtype but received the string "F32"$/],
  ['a dtype that is a number', () => tensor([1], [1], 32 as never), 'E_DTYPE', /for dtype but received the number 32$/],
  ['a null dtype', () => tensor([1], [1], null as never), 'E_DTYPE', /for dtype but received null$/],
  ['a negative dimension', () => tensor(new Float32Array(0), [-1]), 'E_SHAPE', /^Expected a non-negative integer for shape\[0\] but received the number -1$/],
  ['a fractional dimension', () => tensor(new Float32Array(3), [1.5, 2]), 'E_SHAPE', /^Expected a non-negative integer for shape\[0\] but received the number 1\.5$/],
  ['a NaN dimension', () => tensor(new Float32Array(3), [3, NaN]), 'E_SHAPE', /^Expected a non-negative integer for shape\[1\] but received the number NaN$/],
  ['an Infinity dimension', () => tensor(new Float32Array(3), [Infinity]), 'E_SHAPE', /for shape\[0\] but received the number Infinity$/],
  ['a string dimension', () => tensor(new Float32Array(3), ['3' as never]), 'E_SHAPE', /for shape\[0\] but received the string "3"$/],
  ['a shape that is a number', () => tensor(new Float32Array(3), 3 as never), 'E_SHAPE', /^Expected an array of non-negative integers for shape but received the number 3$/],
  ['a shape that is a string', () => tensor(new Float32Array(3), '3' as never), 'E_SHAPE', /for shape but received the string "3"$/],
  ['a null shape', () => tensor(new Float32Array(3), null as never), 'E_SHAPE', /for shape but received null$/],
  ['Uint16Array data without a dtype', () => tensor(new Uint16Array(2)), 'E_DTYPE', /^Expected a dtype \(bf16 or f16\) for Uint16Array data but received none/],
  ['Uint16Array data as f32', () => tensor(new Uint16Array(2), [2], 'f32'), 'E_DTYPE', /^Expected bf16 or f16 \(Uint16Array data holds raw 16-bit patterns\) for dtype but received the string "f32"$/],
  ['a fraction for i32', () => tensor([1, 1.5], [2], 'i32'), 'E_RANGE', /^Expected an integer in \[-2147483648, 2147483647\] \(dtype i32\) for tensor data\[1\] but received the number 1\.5$/],
  ['NaN for i32', () => tensor(new Float32Array([NaN]), [1], 'i32'), 'E_RANGE', /for tensor data\[0\] but received the number NaN$/],
  ['2^31 for i32', () => tensor([2 ** 31], [1], 'i32'), 'E_RANGE', /for tensor data\[0\] but received the number 2147483648$/],
  ['256 for u8', () => tensor([256], [1], 'u8'), 'E_RANGE', /^Expected an integer in \[0, 255\] \(dtype u8\) for tensor data\[0\] but received the number 256$/],
  ['-1 for u8', () => tensor(new Int32Array([-1]), [1], 'u8'), 'E_RANGE', /for tensor data\[0\] but received the number -1$/],
  ['zeros() without a shape', () => (zeros as AnyFn)(), 'E_SHAPE', /^Expected an array of non-negative integers for shape but received undefined$/],
  ['zeros with a number for a shape', () => (zeros as AnyFn)(4), 'E_SHAPE', /for shape but received the number 4$/],
  ['zeros with a negative dimension', () => zeros([2, -3]), 'E_SHAPE', /^Expected a non-negative integer for shape\[1\] but received the number -3$/],
  ['zeros with a fractional dimension', () => zeros([0.5]), 'E_SHAPE', /for shape\[0\] but received the number 0\.5$/],
  ['zeros with an unknown dtype', () => zeros([2], 'float32' as DType), 'E_DTYPE', /for dtype but received the string "float32"$/],
  ['zeros of an impossible size', () => zeros([2 ** 40, 2 ** 40]), 'E_SHAPE', /^Expected a shape whose size fits in memory but received \[1099511627776, 1099511627776\]$/],
  ['zeros with a dimension past 2^53', () => zeros([2 ** 60]), 'E_SHAPE', new RegExp(`^Expected a dimension below 2\\^53 for shape\\[0\\] but received the number ${2 ** 60}$`)],
  ['Tensor.to an unknown dtype', () => mat(2, 2).to('f64' as DType), 'E_DTYPE', /for dtype but received the string "f64"$/],
  ['Tensor.to without a dtype', () => (mat(2, 2).to as AnyFn)(), 'E_DTYPE', /for dtype but received undefined$/],
  ['new Tensor() without a handle', () => new (Tensor as unknown as new (...a: unknown[]) => Tensor)(), 'E_ARGUMENT', /^Expected a native tensor handle .* for the Tensor constructor but received undefined$/],
  ['new Tensor() from a plain object', () => new Tensor({} as never), 'E_ARGUMENT', /for the Tensor constructor but received an object \(Object\)$/],
  ['new Tensor() from a Tensor', () => new Tensor(mat(1, 1) as never), 'E_ARGUMENT', /for the Tensor constructor but received an object \(Tensor\)$/],
];

const DISPOSED_MEMBERS: [used: string, member: string, use: (t: Tensor) => unknown][] = [
  ['shape', 'shape', (t) => t.shape],
  ['dtype', 'dtype', (t) => t.dtype],
  ['size', 'shape', (t) => t.size],
  ['toFloat32Array()', 'toFloat32Array()', (t) => t.toFloat32Array()],
  ['toTypedArray()', 'toTypedArray()', (t) => t.toTypedArray()],
  ['toArray()', 'toArray()', (t) => t.toArray()],
  ['to()', 'to()', (t) => t.to('bf16')],
];

describe('tensor(), zeros() and Tensor', () => {
  it.each(TENSOR_CASES)('%s: throws a PeftError', (_name, call, code, message) => {
    expectThrows(call, code, message);
  });

  it.each(DISPOSED_MEMBERS)('a disposed tensor refuses %s with E_DISPOSED', (_used, member, use) => {
    const t = dead();
    expectThrows(() => use(t), 'E_DISPOSED', new RegExp(`^Tensor was disposed and cannot be used \\(Tensor\\.${esc(member)}\\)$`));
  });

  it('a disposed tensor still answers disposed, toString and a second dispose', () => {
    const t = dead();
    expect(t.disposed).toBe(true);
    expect(String(t)).toBe('Tensor(disposed)');
    expect(() => t.dispose()).not.toThrow();
  });

  it('valid edge cases are accepted: empty data, zero-sized dimensions, scalars', () => {
    expect(tensor([]).shape).toEqual([0]);
    expect(tensor([[], []]).shape).toEqual([2, 0]);
    expect(tensor(new Float32Array(0), [3, 0]).shape).toEqual([3, 0]);
    expect(zeros([]).toArray()).toBe(0);
    expect(tensor([7], []).toArray()).toBe(7);
  });
});

// ---------------------------------------------------------------------------------------------
// runtime.

const RUNTIME_CASES: [name: string, call: () => unknown, code: PeftErrorCode, message: RegExp][] = [
  ['setIsa("bogus")', () => runtime.setIsa('bogus' as Isa), 'E_ARGUMENT', /^Expected one of scalar, avx2, avx512, avx512bf16 for isa but received the string "bogus"$/],
  ['setIsa("AVX2") (case matters)', () => runtime.setIsa('AVX2' as Isa), 'E_ARGUMENT', /for isa but received the string "AVX2"$/],
  ['setIsa() with no argument', () => (runtime.setIsa as AnyFn)(), 'E_ARGUMENT', /for isa but received undefined$/],
  ['setIsa(2)', () => runtime.setIsa(2 as never), 'E_ARGUMENT', /for isa but received the number 2$/],
  ['setNumThreads(0)', () => runtime.setNumThreads(0), 'E_RANGE', /^Expected a number in \[1, 1024\] for threads but received the number 0$/],
  ['setNumThreads(-2)', () => runtime.setNumThreads(-2), 'E_RANGE', /for threads but received the number -2$/],
  ['setNumThreads(1025)', () => runtime.setNumThreads(1025), 'E_RANGE', /for threads but received the number 1025$/],
  ['setNumThreads(2.5)', () => runtime.setNumThreads(2.5), 'E_ARGUMENT', /^Expected an integer for threads but received the number 2\.5$/],
  ['setNumThreads(NaN)', () => runtime.setNumThreads(NaN), 'E_ARGUMENT', /^Expected a finite number for threads but received the number NaN$/],
  ['setNumThreads(Infinity)', () => runtime.setNumThreads(Infinity), 'E_ARGUMENT', /^Expected a finite number for threads but received the number Infinity$/],
  ['setNumThreads("4")', () => runtime.setNumThreads('4' as never), 'E_ARGUMENT', /^Expected a finite number for threads but received the string "4"$/],
  ['setNumThreads() with no argument', () => (runtime.setNumThreads as AnyFn)(), 'E_ARGUMENT', /for threads but received undefined$/],
];

describe('runtime', () => {
  it.each(RUNTIME_CASES)('%s: throws a PeftError', (_name, call, code, message) => {
    expectThrows(call, code, message);
    expect(runtime.getIsa()).toBe(ISA_BEFORE);
    expect(runtime.numThreads()).toBe(THREADS_BEFORE);
  });

  if (UNSUPPORTED_ISAS.length === 0) {
    it.skip('setIsa of an instruction set this CPU lacks (this CPU supports them all)', () => undefined);
  }
  // jest refuses it.each over an empty table: on a CPU with every variant there is nothing to refuse.
  if (UNSUPPORTED_ISAS.length) it.each(UNSUPPORTED_ISAS)('setIsa("%s"), which this CPU lacks: E_UNSUPPORTED, and the variant in use stays', (isa) => {
    expectThrows(
      () => runtime.setIsa(isa),
      'E_UNSUPPORTED',
      new RegExp(`^Expected an instruction set this CPU supports \\(${esc(runtime.supportedIsas().join(', '))}\\) for isa but received the string "${isa}"$`),
    );
    expect(runtime.getIsa()).toBe(ISA_BEFORE);
  });

  it('the getters take no arguments and ignore extra ones', () => {
    expect(ALL_ISAS).toContain((runtime.getIsa as AnyFn)('junk'));
    expect(Array.isArray((runtime.supportedIsas as AnyFn)(1, 2))).toBe(true);
    expect(typeof (runtime.cpuFeatures as AnyFn)(null)).toBe('object');
    expect((runtime.numThreads as AnyFn)({})).toBe(THREADS_BEFORE);
  });
});

// ---------------------------------------------------------------------------------------------
// The native addon, called directly: the TypeScript checks are bypassed, so the binding must
// validate on its own. It throws PeftErrors (argument errors of the async entry points are thrown
// at once, on the JS thread, rather than through the Promise; either is accepted here).

const h = (rows: number, cols: number, dtype: DType = 'f32') => mat(rows, cols, dtype).handle as unknown as { shape(): number[]; to(d: unknown): unknown };
const deadHandle = () => dead().handle;
const n = native as unknown as Record<string, AnyFn>;
const NativeTensorCtor = native.NativeTensor as unknown as new (...args: unknown[]) => { shape(): number[]; to(d: unknown): unknown };

const NATIVE_CASES: [name: string, call: () => unknown, code: PeftErrorCode, message: RegExp][] = [
  // matmul
  ['matmul()', () => n.matmul(), 'E_ARGUMENT', /^Expected a Tensor for a but received undefined$/],
  ['matmul of plain objects', () => n.matmul({}, {}, null, {}), 'E_ARGUMENT', /^Expected a Tensor for a but received an object$/],
  ['matmul of public Tensors instead of handles', () => n.matmul(mat(2, 2), mat(2, 2), null, {}), 'E_ARGUMENT', /^Expected a Tensor for a but received an object$/],
  ['matmul with a number for b', () => n.matmul(h(2, 2), 7, null, {}), 'E_ARGUMENT', /^Expected a Tensor for b but received the number 7/],
  ['matmul with a string for options', () => n.matmul(h(2, 2), h(2, 2), null, 'x'), 'E_ARGUMENT', /^Expected an object for options but received a string$/],
  ['matmul with an array for options', () => n.matmul(h(2, 2), h(2, 2), null, []), 'E_ARGUMENT', /^Expected an object for options but received an array$/],
  ['matmul with a number for transA', () => n.matmul(h(2, 2), h(2, 2), null, { transA: 1 }), 'E_ARGUMENT', /^Expected a boolean for option transA but received the number 1/],
  ['matmul with a string for alpha', () => n.matmul(h(2, 2), h(2, 2), null, { alpha: '2' }), 'E_ARGUMENT', /^Expected a number for option alpha but received a string$/],
  ['matmul with NaN alpha', () => n.matmul(h(2, 2), h(2, 2), null, { alpha: NaN }), 'E_ARGUMENT', /^Expected a finite number for option alpha but received/],
  ['matmul with a number for out', () => n.matmul(h(2, 2), h(2, 2), 5, {}), 'E_ARGUMENT', /^Expected a Tensor for out but received the number 5/],
  ['matmul with mismatched inner dimensions', () => n.matmul(h(2, 3), h(4, 5), null, {}), 'E_SHAPE', /^Expected the inner dimensions to match for matmul but op\(a\) is \[2, 3\] and op\(b\) is \[4, 5\]$/],
  ['matmul of a 1-D tensor', () => n.matmul(vec(3).handle, h(3, 2), null, {}), 'E_SHAPE', /^Expected a 2-D tensor for a but received shape \[3\]$/],
  ['matmul of i32', () => n.matmul(h(2, 2, 'i32'), h(2, 2), null, {}), 'E_DTYPE', /^Expected dtype f32 or bf16 for a but received i32$/],
  ['matmul into a bf16 out', () => n.matmul(h(2, 2), h(2, 2), h(2, 2, 'bf16'), {}), 'E_DTYPE', /^Expected dtype f32 for out but received bf16$/],
  ['matmul into a wrongly shaped out', () => n.matmul(h(2, 2), h(2, 2), h(3, 3), {}), 'E_SHAPE', /^Expected shape \[2, 2\] for out but received \[3, 3\]$/],
  ['matmul accumulating without out', () => n.matmul(h(2, 2), h(2, 2), null, { accumulate: true }), 'E_ARGUMENT', /^Expected an out tensor when accumulate is true/],
  ['matmul of a disposed handle', () => n.matmul(deadHandle(), h(2, 2), null, {}), 'E_DISPOSED', /^Tensor a was disposed and cannot be used$/],
  ['matmulAsync of plain objects', () => n.matmulAsync({}, {}, null, {}), 'E_ARGUMENT', /^Expected a Tensor for a but received an object$/],
  ['matmulAsync with mismatched shapes', () => n.matmulAsync(h(2, 3), h(2, 3), null, {}), 'E_SHAPE', /inner dimensions/],
  // low-rank
  ['lowrankForward()', () => n.lowrankForward(), 'E_ARGUMENT', /^Expected a Tensor for x but received undefined$/],
  ['lowrankForward without scale', () => n.lowrankForward(h(2, 3), h(4, 3), h(2, 3), h(4, 2)), 'E_ARGUMENT', /^Expected a number for scale but received undefined$/],
  ['lowrankForward with a string scale', () => n.lowrankForward(h(2, 3), h(4, 3), h(2, 3), h(4, 2), '1'), 'E_ARGUMENT', /^Expected a number for scale but received a string$/],
  ['lowrankForward with Infinity scale', () => n.lowrankForward(h(2, 3), h(4, 3), h(2, 3), h(4, 2), Infinity), 'E_ARGUMENT', /^Expected a finite number for scale/],
  ['lowrankForward with a wrongly shaped A', () => n.lowrankForward(h(2, 3), h(4, 3), h(2, 5), h(4, 2), 1), 'E_SHAPE', /^Expected shape \[2, 3\] for lora_A but received \[2, 5\]$/],
  ['lowrankForward with a bf16 B', () => n.lowrankForward(h(2, 3), h(4, 3), h(2, 3), h(4, 2, 'bf16'), 1), 'E_DTYPE', /^Expected dtype f32 for lora_B but received bf16$/],
  ['lowrankForward with rank 0', () => n.lowrankForward(h(2, 3), h(4, 3), h(0, 3), h(4, 0), 1), 'E_SHAPE', /^Expected a rank of at least 1 for lora_A/],
  ['lowrankForwardAsync with a 1-D x', () => n.lowrankForwardAsync(vec(3).handle, h(4, 3), h(2, 3), h(4, 2), 1), 'E_SHAPE', /^Expected a 2-D tensor for x/],
  ['lowrankBackward()', () => n.lowrankBackward(), 'E_ARGUMENT', /^Expected a Tensor for dy but received undefined$/],
  ['lowrankBackward with a number for gradA', () => n.lowrankBackward(h(2, 4), h(2, 3), h(2, 2), h(4, 3), h(2, 3), h(4, 2), 1, { gradA: 5 }), 'E_ARGUMENT', /^Expected a Tensor for option gradA but received the number 5/],
  ['lowrankBackward with a wrongly shaped gradB', () => n.lowrankBackward(h(2, 4), h(2, 3), h(2, 2), h(4, 3), h(2, 3), h(4, 2), 1, { gradB: h(2, 4) }), 'E_SHAPE', /^Expected shape \[4, 2\] for gradB but received \[2, 4\]$/],
  ['lowrankBackward with a wrongly shaped dy', () => n.lowrankBackward(h(2, 5), h(2, 3), h(2, 2), h(4, 3), h(2, 3), h(4, 2), 1, {}), 'E_SHAPE', /^Expected shape \[2, 4\] for dy but received \[2, 5\]$/],
  ['lowrankBackward accumulating without grads', () => n.lowrankBackward(h(2, 4), h(2, 3), h(2, 2), h(4, 3), h(2, 3), h(4, 2), 1, { accumulate: true }), 'E_ARGUMENT', /^Expected gradA and gradB tensors when accumulate is true/],
  ['lowrankBackward with a string needDx', () => n.lowrankBackward(h(2, 4), h(2, 3), h(2, 2), h(4, 3), h(2, 3), h(4, 2), 1, { needDx: 'no' }), 'E_ARGUMENT', /^Expected a boolean for option needDx but received a string$/],
  ['lowrankBackwardAsync with a disposed xa', () => n.lowrankBackwardAsync(h(2, 4), h(2, 3), deadHandle(), h(4, 3), h(2, 3), h(4, 2), 1, {}), 'E_DISPOSED', /^Tensor xa was disposed/],
  // optimizers
  ['adamw with numbers for lists', () => n.adamw(1, 2, 3, 4, 5), 'E_ARGUMENT', /^Expected an array of Tensors for params but received the number 1/],
  ['adamw with plain objects in a list', () => n.adamw([{}], [], [], [], { step: 1 }), 'E_ARGUMENT', /^Expected a Tensor for params\[0\] but received an object$/],
  ['adamw without options', () => n.adamw([], [], [], []), 'E_ARGUMENT', /^Expected an object for options but received undefined$/],
  ['adamw without step', () => n.adamw([], [], [], [], {}), 'E_ARGUMENT', /for option step but received undefined$/],
  ['adamw with a fractional step', () => n.adamw([], [], [], [], { step: 1.5 }), 'E_ARGUMENT', /^Expected an integer for option step/],
  ['adamw with step 0', () => n.adamw([], [], [], [], { step: 0 }), 'E_RANGE', /^Expected step >= 1 but received 0$/],
  ['adamw with a negative lr', () => n.adamw([], [], [], [], { step: 1, lr: -1 }), 'E_RANGE', /^Expected a number in \[0, 1000000\] for option lr but received -1$/],
  ['adamw with beta1 = 1', () => n.adamw([], [], [], [], { step: 1, beta1: 1 }), 'E_RANGE', /^Expected a number in \[0, 0.999999999\] for option beta1 but received 1$/],
  ['adamw with a string eps', () => n.adamw([], [], [], [], { step: 1, eps: '1e-8' }), 'E_ARGUMENT', /^Expected a number for option eps but received a string$/],
  ['adamw with grads shorter than params', () => n.adamw([h(2, 2)], [], [h(2, 2)], [h(2, 2)], { step: 1 }), 'E_ARGUMENT', /^Expected 1 tensors in grads \(one per parameter\) but received 0$/],
  ['adamw with bf16 state', () => n.adamw([h(2, 2)], [h(2, 2)], [h(2, 2, 'bf16')], [h(2, 2)], { step: 1 }), 'E_DTYPE', /^Expected dtype f32 for expAvg\[0\] but received bf16$/],
  ['adamw with a wrongly shaped grad', () => n.adamw([h(2, 2)], [h(2, 3)], [h(2, 2)], [h(2, 2)], { step: 1 }), 'E_SHAPE', /^Expected shape \[2, 2\] for grads\[0\] but received \[2, 3\]$/],
  [
    'adamw with a repeated parameter',
    () => {
      const p = h(2, 2);
      return n.adamw([p, p], [h(2, 2), h(2, 2)], [h(2, 2), h(2, 2)], [h(2, 2), h(2, 2)], { step: 1 });
    },
    'E_ARGUMENT',
    /^Expected distinct tensors for params but received params\[1\] repeating an earlier one$/,
  ],
  ['adamwAsync with a number for options', () => n.adamwAsync([], [], [], [], 3), 'E_ARGUMENT', /^Expected an object for options but received the number 3/],
  ['sgd without options', () => n.sgd([], [], null), 'E_ARGUMENT', /^Expected an object for options but received undefined$/],
  ['sgd with nesterov and no momentum', () => n.sgd([], [], null, { nesterov: true }), 'E_CONFIG', /^Expected momentum > 0 and dampening = 0 for Nesterov momentum/],
  ['sgd with momentum and no buffers', () => n.sgd([h(2, 2)], [h(2, 2)], null, { momentum: 0.9 }), 'E_ARGUMENT', /^Expected momentum buffers \(one per parameter\) when momentum > 0 but received null$/],
  ['sgd with a string for buffers', () => n.sgd([h(2, 2)], [h(2, 2)], 'x', { momentum: 0.9 }), 'E_ARGUMENT', /^Expected an array of Tensors for momentumBuffers but received a string$/],
  ['sgd with step 0', () => n.sgd([], [], null, { step: 0 }), 'E_RANGE', /^Expected step >= 1 but received 0$/],
  ['sgd with a string lr', () => n.sgd([], [], null, { lr: 'fast' }), 'E_ARGUMENT', /^Expected a number for option lr but received a string$/],
  ['sgdAsync with i32 params', () => n.sgdAsync([h(2, 2, 'i32')], [h(2, 2)], null, {}), 'E_DTYPE', /^Expected dtype f32 for params\[0\] but received i32$/],
  ['clipGradNorm with NaN maxNorm', () => n.clipGradNorm([], NaN), 'E_ARGUMENT', /^Expected a finite number for maxNorm/],
  ['clipGradNorm with maxNorm 0', () => n.clipGradNorm([], 0), 'E_RANGE', /^Expected maxNorm > 0 but received 0/],
  ['clipGradNorm without maxNorm', () => n.clipGradNorm([]), 'E_ARGUMENT', /^Expected a number for maxNorm but received undefined$/],
  ['clipGradNorm of numbers', () => n.clipGradNorm([1, 2], 1), 'E_ARGUMENT', /^Expected a Tensor for grads\[0\] but received the number 1/],
  ['clipGradNorm of a bf16 grad', () => n.clipGradNorm([h(2, 2, 'bf16')], 1), 'E_DTYPE', /^Expected dtype f32 for grads\[0\] but received bf16$/],
  ['clipGradNormAsync of a non-list', () => n.clipGradNormAsync({}, 1), 'E_ARGUMENT', /^Expected an array of Tensors for grads but received an object$/],
  // tensors
  ['NativeTensor with a string shape', () => new NativeTensorCtor(null, 'f32', 'x', 'f32'), 'E_ARGUMENT', /^Expected an array of dimensions for shape but received a string$/],
  ['NativeTensor with a negative dimension', () => new NativeTensorCtor(null, 'f32', [-1], 'f32'), 'E_SHAPE', /^Expected non-negative dimensions for shape but received -1 at shape\[0\]$/],
  ['NativeTensor with a fractional dimension', () => new NativeTensorCtor(null, 'f32', [1.5], 'f32'), 'E_ARGUMENT', /^Expected an integer for shape\[0\]/],
  ['NativeTensor with a NaN dimension', () => new NativeTensorCtor(null, 'f32', [NaN], 'f32'), 'E_ARGUMENT', /^Expected a finite number for shape\[0\]/],
  ['NativeTensor with an unknown dtype', () => new NativeTensorCtor(null, 'f32', [1], 'f64'), 'E_DTYPE', /^Expected one of f32, bf16, f16, i32, u8 for dtype but received "f64"$/],
  ['NativeTensor with an unknown source dtype', () => new NativeTensorCtor(new Float32Array(1), 'double', [1], 'f32'), 'E_DTYPE', /for dtype but received "double"$/],
  ['NativeTensor with a number for a dtype', () => new NativeTensorCtor(null, 'f32', [1], 4), 'E_ARGUMENT', /^Expected a string for dtype but received the number 4/],
  ['NativeTensor from data of the wrong array type', () => new NativeTensorCtor(new Int32Array(2), 'f32', [2], 'f32'), 'E_ARGUMENT', /^Expected a Float32Array of f32 values for tensor data but received a typed array$/],
  ['NativeTensor from a plain array', () => new NativeTensorCtor([1, 2], 'f32', [2], 'f32'), 'E_ARGUMENT', /^Expected a Float32Array of f32 values for tensor data but received an array$/],
  ['NativeTensor from too few values', () => new NativeTensorCtor(new Float32Array(3), 'f32', [2, 2], 'f32'), 'E_SHAPE', /^Expected 4 values for a tensor of shape \[2, 2\] but received 3$/],
  ['NativeTensor of an impossible size', () => new NativeTensorCtor(null, 'f32', [2 ** 31, 2 ** 31, 2 ** 31], 'f32'), 'E_SHAPE', /^Expected a shape whose size fits in memory/],
  ['NativeTensor.to an unknown dtype', () => h(1, 1).to('x'), 'E_DTYPE', /for dtype but received "x"$/],
  ['NativeTensor.to without a dtype', () => (h(1, 1).to as AnyFn)(), 'E_ARGUMENT', /^Expected a string for dtype but received undefined$/],
  ['a disposed NativeTensor', () => deadHandle().shape(), 'E_DISPOSED', /was disposed and cannot be used$/],
  // runtime
  ['setIsa("bogus")', () => n.setIsa('bogus'), 'E_ARGUMENT', /^Expected one of scalar, avx2, avx512, avx512bf16 for the instruction set but received "bogus"$/],
  ['setIsa(3)', () => n.setIsa(3), 'E_ARGUMENT', /^Expected a string for isa but received the number 3/],
  ['setNumThreads(0)', () => n.setNumThreads(0), 'E_RANGE', /^Expected a thread count between 1 and 1024 but received 0$/],
  ['setNumThreads("a")', () => n.setNumThreads('a'), 'E_ARGUMENT', /^Expected a number for threads but received a string$/],
  ['setNumThreads(1.5)', () => n.setNumThreads(1.5), 'E_ARGUMENT', /^Expected an integer for threads/],
  ['init(5)', () => n.init(5), 'E_ARGUMENT', /^Expected the PeftError class for init but received the number 5/],
];

describe('the native addon called directly (TypeScript checks bypassed)', () => {
  it.each(NATIVE_CASES)('%s: a PeftError, not a crash', async (_name, call, code, message) => {
    await expectNativeError(call, code, message);
    expect(runtime.getIsa()).toBe(ISA_BEFORE);
    expect(runtime.numThreads()).toBe(THREADS_BEFORE);
  });

  if (UNSUPPORTED_ISAS.length) it.each(UNSUPPORTED_ISAS)('setIsa("%s"), which this CPU lacks: E_UNSUPPORTED', async (isa) => {
    await expectNativeError(() => n.setIsa(isa), 'E_UNSUPPORTED', new RegExp(`^Instruction set ${isa} is not supported by this CPU`));
    expect(runtime.getIsa()).toBe(ISA_BEFORE);
  });

  // Misuse of the class object itself is refused by node-addon-api with a TypeError rather than a
  // PeftError (reported to the native side); what matters here is that nothing crashes.
  it('refuses NativeTensor called without new, and its methods on foreign objects, without crashing', () => {
    // By name, not instanceof: the TypeError may come from another realm than jest's sandbox.
    const nameOf = (fn: () => unknown) => {
      try {
        fn();
      } catch (e) {
        return (e as Error).name;
      }
      return 'no error';
    };
    expect(nameOf(() => (native.NativeTensor as unknown as AnyFn)(null, 'f32', [1], 'f32'))).toBe('TypeError');
    const proto = Object.getPrototypeOf(h(1, 1)) as Record<string, AnyFn>;
    for (const method of ['shape', 'dtype', 'toFloat32Array', 'toTypedArray', 'to', 'dispose', 'disposed']) {
      expect([method, nameOf(() => proto[method].call({}, 'f32'))]).toEqual([method, 'TypeError']);
    }
  });

  it('sgd refuses a fractional step', async () => {
    await expectNativeError(() => n.sgd([], [], null, { step: 1.5 }), 'E_ARGUMENT', /step/);
  });
  it('clipGradNorm refuses a repeated grad (it would be counted and scaled twice)', async () => {
    const g = h(2, 2);
    await expectNativeError(() => n.clipGradNorm([g, g], 1), 'E_ARGUMENT', /grads/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('after all the bad calls', () => {
  it('the process is healthy: a correct product, sync and async, on the same ISA and thread count', async () => {
    const a = tensor([
      [1, 2],
      [3, 4],
    ]);
    const b = tensor([[5], [6]]);
    expect(Array.from(ops.matmul(a, b).toFloat32Array())).toEqual([17, 39]);
    expect(Array.from((await ops.matmulAsync(a, b)).toFloat32Array())).toEqual([17, 39]);
    const { y } = ops.lowrankForward(tensor([[1, 1]]), tensor([[1, 0]]), tensor([[1, 1]]), tensor([[2]]), { scale: 0.5 });
    expect(Array.from(y.toFloat32Array())).toEqual([1 + 0.5 * 2 * 2]);
    expect(runtime.getIsa()).toBe(ISA_BEFORE);
    expect(runtime.numThreads()).toBe(THREADS_BEFORE);
  });
});
