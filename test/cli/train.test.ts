// `peft-native train` end to end on stories260K: a YAML config with flag overrides, the adapter,
// run log and report it writes, and a run stopped with Ctrl-C (SIGINT) then resumed, whose per-step
// losses equal an uninterrupted run's. Also merge, export, and generate / eval with --adapter.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { exportGgufLora, getPeftModel, loadAdapter, loadModel, readRunLog, type RunRecord, type StepEvent } from '../../lib';
import { ensureBuilt } from '../helpers/built';
import { CLI, cliOk, runCli } from '../helpers/cli';
import { STORIES_HF_DIR } from '../helpers/models';

// "The Hare and the Tortoise" (Aesop, public domain), retold.
const TRAIN = [
  'A hare was making fun of a tortoise one day for being so slow.',
  'Do you ever get anywhere? he asked with a mocking laugh.',
  'Yes, replied the tortoise, and I get there sooner than you think.',
  'I will run you a race and prove it.',
  'The hare was much amused at the idea of running a race with the tortoise.',
  'So the fox, who had agreed to act as judge, marked the distance and started the runners off.',
  'The hare was soon far out of sight, and he lay down beside the course to take a nap.',
  'The tortoise meanwhile kept going slowly but steadily.',
];
const VALID = ['After a time, he passed the place where the hare was sleeping.', 'Slow and steady wins the race.'];

let dir: string;
let config: string;
beforeAll(() => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-cli-train-'));
  const jsonl = (lines: string[]) => lines.map((text) => JSON.stringify({ text })).join('\n') + '\n';
  fs.writeFileSync(path.join(dir, 'train.jsonl'), jsonl(TRAIN));
  fs.writeFileSync(path.join(dir, 'valid.jsonl'), jsonl(VALID));
  config = path.join(dir, 'lora.yaml');
  fs.writeFileSync(
    config,
    [
      `model: ${STORIES_HF_DIR}`,
      `train_file: ${path.join(dir, 'train.jsonl')}`,
      `valid_file: ${path.join(dir, 'valid.jsonl')}`,
      'batch_size: 2',
      'gradient_accumulation_steps: 2',
      'max_steps: 60',
      'learning_rate: 1e-4',
      'lr_scheduler_type: cosine',
      'warmup_steps: 5',
      'eval_steps: 10',
      'save_steps: 5',
      'seed: 3',
      'peft:',
      '  r: 4',
      '  lora_alpha: 8',
      '  lora_dropout: 0.1',
      '  target_modules: [q_proj, k_proj, v_proj, o_proj]',
      '',
    ].join('\n'),
  );
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Mean −log p(ids[t] | ids[<t]) over t ≥ 1, from the logits with a log-softmax written out here. */
async function meanLoss(model: { forward(ids: number[][]): Promise<{ toFloat32Array(): Float32Array }> }, ids: number[], vocab: number): Promise<number> {
  const logits = (await model.forward([ids])).toFloat32Array();
  let sum = 0;
  for (let t = 1; t < ids.length; t++) {
    const row = logits.subarray((t - 1) * vocab, t * vocab);
    const max = Math.max(...row);
    sum += Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0)) + max - row[ids[t]];
  }
  return sum / (ids.length - 1);
}

/** The loss of each step, the later record winning where a resumed run repeats steps. */
function stepLosses(records: RunRecord[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const r of records) if (r.event === 'step') out.set((r as StepEvent).step, (r as StepEvent).loss);
  return out;
}

describe('peft-native train', () => {
  let full: string;

  it('trains from a YAML config with flag overrides and writes the adapter, run log and report', async () => {
    full = path.join(dir, 'full');
    const stdout = cliOk(['train', '-c', config, '--learning-rate', '2e-3', '--set', 'peft.r=8', '--output-dir', full, '--no-progress']);
    expect(stdout).toMatch(/^trainable params: [\d,]+ \|\| all params: [\d,]+ \|\| trainable%: [\d.]+$/m);
    expect(stdout).toMatch(/^Training finished \(completed\): 60 steps/m);
    const records = readRunLog(path.join(full, 'run.jsonl'));
    const start = records[0] as RunRecord & { config: Record<string, unknown> };
    expect(start.config).toMatchObject({ learning_rate: 2e-3, per_device_train_batch_size: 2, gradient_accumulation_steps: 2, max_steps: 60 });
    expect(stepLosses(records).size).toBe(60);
    const evals = records.filter((r) => r.event === 'eval') as Array<RunRecord & { eval_loss: number }>;
    expect(evals.map((e) => (e as unknown as { step: number }).step)).toEqual([10, 20, 30, 40, 50, 60]);
    expect(evals[evals.length - 1].eval_loss).toBeLessThan(evals[0].eval_loss);
    expect(fs.readFileSync(path.join(full, 'report.html'), 'utf8')).toContain('data-series="train loss"');
    // The adapter has the overridden rank, and reproduces the last evaluation when loaded alone.
    const adapterConfig = JSON.parse(fs.readFileSync(path.join(full, 'adapter', 'adapter_config.json'), 'utf8'));
    expect(adapterConfig).toMatchObject({ peft_type: 'LORA', r: 8, lora_alpha: 8, target_modules: ['q_proj', 'k_proj', 'v_proj', 'o_proj'] });
    const peft = (await loadAdapter(await loadModel(STORIES_HF_DIR), path.join(full, 'adapter'))).eval();
    const tok = peft.base.tokenizer!;
    let sum = 0;
    let count = 0;
    for (const text of VALID) {
      const ids = [tok.bosId!, ...tok.encode(text, { addSpecialTokens: false }), tok.eosId!];
      sum += (await meanLoss(peft, ids, 512)) * (ids.length - 1);
      count += ids.length - 1;
    }
    expect(sum / count).toBeCloseTo(evals[evals.length - 1].eval_loss, 5);
  });

  it('a run stopped with Ctrl-C and resumed from its last checkpoint gives the uninterrupted losses', async () => {
    const out = path.join(dir, 'interrupted');
    const args = ['train', '-c', config, '--learning-rate', '2e-3', '--set', 'peft.r=8', '--output-dir', out, '--no-progress'];
    // Start, wait for the first checkpoint, then send SIGINT: the run stops after the current step.
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const log = path.join(out, 'run.jsonl');
    for (let i = 0; i < 3000; i++) {
      if (fs.existsSync(log) && fs.readFileSync(log, 'utf8').includes('"event":"save"')) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stderr).toContain('stopping after this step');
    expect(stdout).toMatch(/^Training finished \(aborted\): (\d+) steps/m);
    const stoppedAt = Number(/^Training finished \(aborted\): (\d+) steps/m.exec(stdout)![1]);
    expect(stoppedAt).toBeLessThan(60);
    expect(fs.existsSync(path.join(out, 'adapter', 'adapter_model.safetensors'))).toBe(true);

    const resumed = cliOk([...args, '--resume-from-checkpoint', 'latest']);
    expect(resumed).toMatch(/^Training finished \(completed\): 60 steps/m);
    const a = stepLosses(readRunLog(path.join(full, 'run.jsonl')));
    const b = stepLosses(readRunLog(log));
    expect([...b.keys()].sort((x, y) => x - y)).toEqual([...a.keys()].sort((x, y) => x - y));
    for (const [step, loss] of a) expect(b.get(step)).toBe(loss);
    // The adapters at the end are the same, bit for bit.
    expect(fs.readFileSync(path.join(out, 'adapter', 'adapter_model.safetensors'))).toEqual(fs.readFileSync(path.join(full, 'adapter', 'adapter_model.safetensors')));
  });

  it('bad input: one line on stderr and exit code 1', () => {
    const missing = runCli(['train', '-c', config, '--train-file', path.join(dir, 'none.jsonl'), '--output-dir', path.join(dir, 'x')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/none\.jsonl.*\[E_IO\]/);
    const other = runCli(['train', '-c', config, '--set', 'peft.r=2', '--output-dir', path.join(dir, 'y'), '--resume-from-checkpoint', path.join(dir, 'full', 'checkpoint-60'), '--no-progress']);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain('is from another run');
    expect(other.stderr).toContain('[E_CONFIG]');
    const again = runCli(['train', '-c', config, '--output-dir', path.join(dir, 'full'), '--no-progress']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already holds checkpoints of a run');
  });
});

describe('adapters on the command line', () => {
  let adapter: string;
  beforeAll(async () => {
    // An adapter with random B (init_lora_weights: false) changes the model visibly.
    const model = await loadModel(STORIES_HF_DIR);
    // Dropout too: generate and eval must switch it off.
    const peft = getPeftModel(model, { peft_type: 'LORA', r: 4, lora_alpha: 32, lora_dropout: 0.2, target_modules: ['q_proj', 'v_proj', 'down_proj'], init_lora_weights: false }, { seed: 2 });
    adapter = path.join(dir, 'random-adapter');
    await peft.saveAdapter(adapter);
  });

  it('generate --adapter continues with the adapter (as PeftModel.generate does)', async () => {
    const peft = (await loadAdapter(await loadModel(STORIES_HF_DIR), adapter)).eval();
    const expected = (await peft.generate('Once upon a time', { maxNewTokens: 20 })).text;
    const base = (await (await loadModel(STORIES_HF_DIR)).generate('Once upon a time', { maxNewTokens: 20 })).text;
    expect(expected).not.toBe(base);
    expect(cliOk(['generate', '-m', STORIES_HF_DIR, '--adapter', adapter, '-p', 'Once upon a time', '--max-new-tokens', '20'])).toBe(`${expected}\n`);
  });

  it('eval --adapter measures the adapted model', async () => {
    const data = path.join(dir, 'valid.jsonl');
    const peft = (await loadAdapter(await loadModel(STORIES_HF_DIR), adapter)).eval();
    const tok = peft.base.tokenizer!;
    let sum = 0;
    let count = 0;
    for (const text of VALID) {
      const ids = tok.encode(text);
      sum += (await meanLoss(peft, ids, 512)) * (ids.length - 1);
      count += ids.length - 1;
    }
    const r = JSON.parse(cliOk(['eval', '-m', STORIES_HF_DIR, '--adapter', adapter, '-d', data, '--json']));
    expect(r.adapter).toBe(adapter);
    expect(r.loss).toBeCloseTo(sum / count, 6);
    const plain = JSON.parse(cliOk(['eval', '-m', STORIES_HF_DIR, '-d', data, '--json']));
    expect(Math.abs(plain.loss - r.loss)).toBeGreaterThan(0.01);
  });

  it('export writes the GGUF LoRA file exportGgufLora writes, or the merged model', async () => {
    const gguf = path.join(dir, 'adapter.gguf');
    expect(cliOk(['export', '-m', STORIES_HF_DIR, '--adapter', adapter, '-o', gguf])).toContain('gguf-lora');
    fs.mkdirSync(path.join(dir, 'reference'));
    const reference = path.join(dir, 'reference', 'adapter.gguf'); // the same name: general.name is the file's
    await exportGgufLora(await loadAdapter(await loadModel(STORIES_HF_DIR), adapter), reference);
    expect(fs.readFileSync(gguf)).toEqual(fs.readFileSync(reference));
    const merged = path.join(dir, 'exported');
    cliOk(['export', '-m', STORIES_HF_DIR, '--adapter', adapter, '--format', 'safetensors', '-o', merged]);
    const ids = [[1, 403, 407, 300]];
    const want = (await (await loadAdapter(await loadModel(STORIES_HF_DIR), adapter)).eval().forward(ids)).toFloat32Array();
    const got = (await (await loadModel(merged)).forward(ids)).toFloat32Array();
    expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]))) / Math.max(...want.map(Math.abs))).toBeLessThan(1e-5);
  });

  it('merge writes a Hugging Face model that gives the adapted logits', async () => {
    const merged = path.join(dir, 'merged');
    const stdout = cliOk(['merge', '-m', STORIES_HF_DIR, '--adapter', adapter, '-o', merged]);
    expect(stdout).toContain('wrote');
    expect(fs.readdirSync(merged).sort()).toEqual(expect.arrayContaining(['config.json', 'model.safetensors', 'tokenizer.json']));
    const ids = [[1, 403, 407, 300, 22, 17, 90]];
    const peft = (await loadAdapter(await loadModel(STORIES_HF_DIR), adapter)).eval();
    const want = (await peft.forward(ids)).toFloat32Array();
    const got = (await (await loadModel(merged)).forward(ids)).toFloat32Array();
    const scale = Math.max(...want.map(Math.abs));
    expect(Math.max(...got.map((v, i) => Math.abs(v - want[i]))) / scale).toBeLessThan(1e-5);
    // bf16 weights: the same logits to bf16 rounding.
    cliOk(['merge', '-m', STORIES_HF_DIR, '--adapter', adapter, '-o', `${merged}-bf16`, '--dtype', 'bf16']);
    const half = (await (await loadModel(`${merged}-bf16`)).forward(ids)).toFloat32Array();
    expect(Math.max(...half.map((v, i) => Math.abs(v - want[i]))) / scale).toBeLessThan(5e-2);
    expect(JSON.parse(fs.readFileSync(path.join(`${merged}-bf16`, 'config.json'), 'utf8')).torch_dtype).toBe('bfloat16');
  });
});
