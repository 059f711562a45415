// Crash-safe files: a training process SIGKILLed in the middle of saving a checkpoint (at chosen
// points inside the save, and at random moments) leaves only complete checkpoint folders, and the
// run resumed from the latest of them gives the uninterrupted run's losses bit for bit. An adapter
// save killed half-way leaves a folder loadAdapter refuses instead of new weights under an old
// config. Writes through symbolic links out of the output folder are refused.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { getPeftModel, loadAdapter, loadModel, PeftError, readRunLog, readSafetensors, Trainer } from '../../lib';
import { Dataset } from '../../lib/data/dataset';
import type { Example } from '../../lib/data/types';
import { isCompleteCheckpoint, readTrainerState, removeUnfinishedSaves } from '../../lib/train/checkpoint';
import { ensureBuilt } from '../helpers/built';
import { STORIES_HF_DIR } from '../helpers/models';
import { repoRoot } from '../helpers/workspace';

const CHILD = path.join(__dirname, 'crash-child.js');
// "The Hare and the Tortoise" (Aesop, public domain).
const TRAIN = [
  'A hare was making fun of a tortoise one day for being so slow.',
  'Do you ever get anywhere? he asked with a mocking laugh.',
  'Yes, replied the tortoise, and I get there sooner than you think.',
  'I will run you a race and prove it.',
  'The hare was much amused at the idea of running a race with the tortoise.',
  'The tortoise meanwhile kept going slowly but steadily.',
];
const VALID = ['Slow and steady wins the race.'];

interface RunResult {
  losses: number[];
  eval: unknown[];
  steps: number[];
  global_step: number;
}

let tmp: string;
let env: NodeJS.ProcessEnv;
beforeAll(() => {
  ensureBuilt();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-crash-'));
  const jsonl = (lines: string[]) => lines.map((text) => JSON.stringify({ text })).join('\n') + '\n';
  fs.writeFileSync(path.join(tmp, 'train.jsonl'), jsonl(TRAIN));
  fs.writeFileSync(path.join(tmp, 'valid.jsonl'), jsonl(VALID));
  env = {
    ...process.env,
    CRASH_DIST: path.join(repoRoot, 'dist'),
    CRASH_MODEL: STORIES_HF_DIR,
    CRASH_TRAIN: path.join(tmp, 'train.jsonl'),
    CRASH_VALID: path.join(tmp, 'valid.jsonl'),
  };
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs the child to the end; returns its result line. */
function runToEnd(extra: Record<string, string>): RunResult {
  const r = spawnSync(process.execPath, [CHILD], { encoding: 'utf8', env: { ...env, ...extra }, timeout: 120_000 });
  if (r.status !== 0) throw new Error(`crash-child failed (${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!);
}

/**
 * Starts the child and SIGKILLs it when it reports "paused" (CRASH_PAUSE), or `at.ms` after it
 * reports step `at.step`. Resolves with what it printed and whether the kill landed (false: it
 * finished first).
 */
function runAndKill(extra: Record<string, string>, at?: { step: number; ms: number }): Promise<{ killed: boolean; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CHILD], { env: { ...env, ...extra }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('paused\n')) child.kill('SIGKILL');
      if (at && timer === undefined && new RegExp(`^step ${at.step}$`, 'm').test(stdout)) timer = setTimeout(() => child.kill('SIGKILL'), at.ms);
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal === 'SIGKILL') resolve({ killed: true, stdout });
      else if (code === 0) resolve({ killed: false, stdout });
      else reject(new Error(`crash-child exited with ${code}: ${stderr}`));
    });
  });
}

/** The checkpoint folders a resume could use, each checked to be complete and readable. */
function checkCheckpoints(out: string): number[] {
  const steps: number[] = [];
  for (const name of fs.readdirSync(out)) {
    if (!/^checkpoint-\d+$/.test(name)) continue;
    const dir = path.join(out, name);
    const state = readTrainerState(dir);
    expect(state.global_step).toBe(Number(name.slice('checkpoint-'.length)));
    for (const file of ['adapter_model.safetensors', 'trainable_parameters.safetensors', 'optimizer.safetensors']) {
      expect(readSafetensors(path.join(dir, file)).keys().length).toBeGreaterThan(0);
    }
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'adapter_config.json'), 'utf8')).peft_type).toBe('LORA');
    steps.push(state.global_step);
  }
  return steps.sort((a, b) => a - b);
}

const hidden = (out: string) => fs.readdirSync(out).filter((n) => n.startsWith('.'));

describe('a training run killed while it saves a checkpoint', () => {
  let reference: RunResult;
  let referenceCheckpoints: number[];
  beforeAll(() => {
    reference = runToEnd({ CRASH_OUT: path.join(tmp, 'reference'), CRASH_SAVE_STEPS: '2' });
    expect(reference.losses).toHaveLength(12);
    referenceCheckpoints = checkCheckpoints(path.join(tmp, 'reference'));
  });

  it.each([
    ['params:6', 'between the adapter files and the trainable parameters', 4],
    ['filled:8', 'with every file written, before the folder is renamed into place', 6],
    ['trash:10', 'while deleting the oldest checkpoint (save_total_limit 2)', 10],
  ])('%s (%s) resumes from the latest complete checkpoint with the same losses', async (pause, _where, resumesAt) => {
    const out = path.join(tmp, `killed-${pause.replace(':', '-')}`);
    const { killed } = await runAndKill({ CRASH_OUT: out, CRASH_SAVE_STEPS: '2', CRASH_PAUSE: pause });
    expect(killed).toBe(true);
    // The interrupted save shows only as a hidden folder; every checkpoint-<step> is whole.
    const steps = checkCheckpoints(out);
    expect(Math.max(...steps)).toBe(resumesAt);
    expect(hidden(out).length).toBeGreaterThan(0);

    const resumed = runToEnd({ CRASH_OUT: out, CRASH_SAVE_STEPS: '2', CRASH_RESUME: '1' });
    expect(resumed.steps[0]).toBe(resumesAt + 1);
    expect(resumed.losses).toEqual(reference.losses);
    expect(resumed.eval).toEqual(reference.eval);
    expect(hidden(out)).toEqual([]);
    expect(checkCheckpoints(out)).toEqual(referenceCheckpoints);
    // The log holds each step once: the steps after the checkpoint that were lost are logged again, not twice.
    const logged = readRunLog(path.join(out, 'run.jsonl')).filter((e) => e.event === 'step').map((e) => (e as { step: number }).step);
    expect(logged).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
  }, 120_000);

  it('killed at random moments (a save after every step), resumed each time, gives the same losses', async () => {
    const out = path.join(tmp, 'random');
    const kills: string[] = [];
    for (const step of [2, 5, 8, 10]) {
      const ms = Math.round(Math.random() * 120);
      const { killed, stdout } = await runAndKill({ CRASH_OUT: out, CRASH_SAVE_STEPS: '1', CRASH_RESUME: '1' }, { step, ms });
      if (!killed) continue; // it finished (or got past the step) first: the next round resumes a later checkpoint
      const last = stdout.trim().split('\n').pop();
      kills.push(`${ms} ms after step ${step} (last line: ${last}; checkpoints ${checkCheckpoints(out).join(', ')}; hidden: ${hidden(out).length})`);
    }
    const resumed = runToEnd({ CRASH_OUT: out, CRASH_SAVE_STEPS: '1', CRASH_RESUME: '1' });
    expect(resumed.losses).toEqual(reference.losses);
    expect(resumed.eval).toEqual(reference.eval);
    expect(hidden(out)).toEqual([]);
    console.log(`kills:\n${kills.join('\n')}\nthe last session trained steps ${resumed.steps.join(', ') || 'none'}`);
    expect(kills.length).toBeGreaterThan(0);
  }, 180_000);
});

describe('an adapter save killed half-way', () => {
  it.each(['weights:0', 'config:0'])('(%s) leaves a folder loadAdapter refuses, never new weights under the old config', async (pause) => {
    const dir = path.join(tmp, `adapter-${pause.replace(':', '-')}`);
    const { killed } = await runAndKill({ CRASH_MODE: 'adapter', CRASH_OUT: dir, CRASH_PAUSE: pause });
    expect(killed).toBe(true);
    const err = await loadAdapter(await loadModel(STORIES_HF_DIR), dir).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeftError);
    expect(err).toMatchObject({ code: 'E_IO', message: `Expected an adapter directory with adapter_config.json but ${dir} has none` });
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.'))).toEqual([]);
  }, 60_000);

  it('run to the end, the second save replaces the first as a whole', async () => {
    const dir = path.join(tmp, 'adapter-whole');
    const r = spawnSync(process.execPath, [CHILD], { encoding: 'utf8', env: { ...env, CRASH_MODE: 'adapter', CRASH_OUT: dir } });
    expect(r.stdout).toBe('saved\n');
    const peft = await loadAdapter(await loadModel(STORIES_HF_DIR), dir);
    expect(Object.keys(peft.peftConfig)).toEqual(['default']);
    expect(fs.readdirSync(dir).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
  });
});

describe('symbolic links out of the output folder', () => {
  let outside: string;
  beforeAll(() => {
    outside = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-outside-'));
    fs.writeFileSync(path.join(outside, 'precious.txt'), 'keep me\n');
  });
  afterAll(() => fs.rmSync(outside, { recursive: true, force: true }));

  const lora = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj'] };
  const error = (e: unknown) => (e instanceof PeftError ? { code: e.code, message: e.message } : { code: 'not a PeftError', message: String(e) });

  it('are refused by saveAdapter (the files, and a named adapter\'s folder), naming the link', async () => {
    const peft = getPeftModel(await loadModel(STORIES_HF_DIR), lora);
    const dir = path.join(tmp, 'links-adapter');
    fs.mkdirSync(dir);
    const link = path.join(dir, 'adapter_model.safetensors');
    fs.symlinkSync(path.join(outside, 'precious.txt'), link);
    expect(error(await peft.saveAdapter(dir).catch((e: unknown) => e))).toEqual({
      code: 'E_IO',
      message: `Refusing to write through ${link}: it is a symbolic link to ${fs.realpathSync(path.join(outside, 'precious.txt'))}, outside the output folder ${dir}`,
    });
    fs.rmSync(link);
    peft.addAdapter('second', lora);
    fs.symlinkSync(outside, path.join(dir, 'second'));
    expect(error(await peft.saveAdapter(dir).catch((e: unknown) => e))).toMatchObject({ code: 'E_IO', message: expect.stringContaining(`Refusing to write through ${path.join(dir, 'second')}`) });
    expect(fs.readdirSync(outside)).toEqual(['precious.txt']);
    // A link that stays inside the folder is fine.
    fs.rmSync(path.join(dir, 'second'));
    fs.mkdirSync(path.join(dir, 'real-second'));
    fs.symlinkSync(path.join(dir, 'real-second'), path.join(dir, 'second'));
    await peft.saveAdapter(dir);
    expect(fs.readdirSync(path.join(dir, 'real-second')).sort()).toEqual(['adapter_config.json', 'adapter_model.safetensors']);
    peft.dispose();
  });

  it('are refused by the Trainer for its checkpoint folders and its run log', async () => {
    const data = new Dataset(
      [[3, 5, 7, 9, 11], [4, 6, 8, 10, 12]].map((ids, i): Example => ({ inputIds: ids, labels: ids, sources: [{ file: '<test>', line: i + 1 }], segments: [0], truncated: false })),
      { source: '<test>', format: 'text', records: 2, examples: 2, tokens: 10, lossTokens: 10, truncated: 0, dropped: 0, packed: false, maxSeqLength: 8, minLength: 5, maxLength: 5, meanLength: 5 },
      0,
    );
    const peft = getPeftModel(await loadModel(STORIES_HF_DIR), lora);
    const out = path.join(tmp, 'links-trainer');
    fs.mkdirSync(out);
    fs.symlinkSync(path.join(outside, 'precious.txt'), path.join(out, 'run.jsonl'));
    const args = { train_dataset: data, per_device_train_batch_size: 2, max_steps: 2, save_steps: 1, output_dir: out };
    expect(error(await new Trainer(peft, args).train().catch((e: unknown) => e))).toMatchObject({ code: 'E_IO', message: expect.stringContaining(`Refusing to write through ${path.join(out, 'run.jsonl')}`) });
    fs.rmSync(path.join(out, 'run.jsonl'));
    fs.symlinkSync(outside, path.join(out, 'checkpoint-2'));
    expect(error(await new Trainer(peft, args).train().catch((e: unknown) => e))).toMatchObject({ code: 'E_IO', message: expect.stringContaining(`Refusing to write through ${path.join(out, 'checkpoint-2')}`) });
    expect(fs.readdirSync(outside)).toEqual(['precious.txt']);
    expect(fs.readFileSync(path.join(outside, 'precious.txt'), 'utf8')).toBe('keep me\n');
    peft.dispose();
  });
});

describe('cleaning up after a process that died while saving', () => {
  it('removes its temporary folders and puts back a checkpoint it had moved aside to replace', () => {
    const out = path.join(tmp, 'leftovers');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!; // exited: its pid names a dead process
    const complete = (dir: string) => {
      fs.mkdirSync(dir, { recursive: true });
      for (const f of ['trainer_state.json', 'optimizer.safetensors', 'trainable_parameters.safetensors']) fs.writeFileSync(path.join(dir, f), f);
    };
    complete(path.join(out, `.checkpoint-4.part-${dead}-1.old`)); // killed between the two renames of a replacement
    complete(path.join(out, `.checkpoint-4.part-${dead}-1`));
    complete(path.join(out, `.checkpoint-2.trash-${dead}-1`)); // killed while deleting
    fs.mkdirSync(path.join(out, `.checkpoint-6.part-${dead}-2`)); // killed while writing
    fs.mkdirSync(path.join(out, `.checkpoint-8.part-${process.pid}-3`)); // a save of a live process: not ours to touch
    removeUnfinishedSaves(out);
    expect(fs.readdirSync(out).sort()).toEqual([`.checkpoint-8.part-${process.pid}-3`, 'checkpoint-4']);
    expect(isCompleteCheckpoint(path.join(out, 'checkpoint-4'))).toBe(true);
  });
});
