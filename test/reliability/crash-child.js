// Run by crash.test.ts, which SIGKILLs it. Mode "train": trains stories260K with the Trainer
// (checkpoints every CRASH_SAVE_STEPS steps into CRASH_OUT), resuming from the latest checkpoint
// when CRASH_RESUME=1, and prints one JSON line with the run's losses at the end. Mode "adapter":
// saves an adapter, changes its weights and saves it again over the first.
// CRASH_PAUSE=<stage>:<step> stops the process inside a save, at a point chosen by wrapping the
// library's own functions, prints "paused" and waits there for the kill:
//   params:<step>   checkpoint <step>: after the adapter files, before trainable_parameters.safetensors
//   filled:<step>   checkpoint <step>: every file written, before the folder is renamed into place
//   trash:<step>    deleting an old checkpoint (save_total_limit) during the save of <step>: renamed, not yet removed
//   weights:0 / config:0  (adapter mode) before the weights file / between the weights and the config
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const dist = process.env.CRASH_DIST;
const lib = require(dist);
const safetensors = require(path.join(dist, 'io', 'safetensors.js'));
const checkpoint = require(path.join(dist, 'train', 'checkpoint.js'));

const [stage, stepText] = (process.env.CRASH_PAUSE ?? '').split(':');
const pauseStep = Number(stepText);

/** Blocks this thread for good: the event loop stops mid-save until the kill arrives. */
function pause() {
  fs.writeSync(1, 'paused\n');
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}
/** The step of the checkpoint a path belongs to (its temporary folder's name), or NaN. */
const stepOf = (file) => Number((/\.checkpoint-(\d+)\.part-/.exec(file) ?? [])[1]);

const realWrite = safetensors.writeSafetensors;
safetensors.writeSafetensors = async (file, tensors, metadata) => {
  if (stage === 'params' && file.endsWith('trainable_parameters.safetensors') && stepOf(file) === pauseStep) pause();
  if (stage === 'weights' && file.endsWith('adapter_model.safetensors')) pause();
  await realWrite(file, tensors, metadata);
  if (stage === 'config' && file.endsWith('adapter_model.safetensors')) pause();
};
const realCheckpoint = checkpoint.writeCheckpoint;
let saving = NaN;
checkpoint.writeCheckpoint = (outputDir, step, fill) =>
  realCheckpoint(outputDir, step, async (part) => {
    saving = step;
    await fill(part);
    if (stage === 'filled' && step === pauseStep) pause();
  });
const realRm = fs.rmSync;
fs.rmSync = (target, options) => {
  if (stage === 'trash' && saving === pauseStep && /\.trash-/.test(path.basename(target))) pause();
  return realRm(target, options);
};

async function train() {
  const out = process.env.CRASH_OUT;
  const model = await lib.loadModel(process.env.CRASH_MODEL);
  const peft = lib.getPeftModel(model, { peft_type: 'LORA', r: 4, lora_alpha: 8, lora_dropout: 0.1, target_modules: 'all-linear' }, { seed: 1 });
  const steps = [];
  const trainer = new lib.Trainer(peft, {
    train_file: process.env.CRASH_TRAIN,
    valid_file: process.env.CRASH_VALID,
    output_dir: out,
    max_steps: 12,
    save_steps: Number(process.env.CRASH_SAVE_STEPS),
    save_total_limit: 2,
    eval_steps: 4,
    per_device_train_batch_size: 2,
    learning_rate: 3e-3,
    lr_scheduler_type: 'cosine',
    warmup_steps: 2,
    seed: 5,
    callbacks: {
      onStep: ({ step }) => {
        steps.push(step);
        fs.writeSync(1, `step ${step}\n`);
      },
    },
    warn: () => {},
  });
  // A kill that came before the first checkpoint leaves nothing to resume: start afresh then.
  const resume = process.env.CRASH_RESUME === '1' && checkpoint.latestCheckpoint(out) !== undefined;
  const r = await trainer.train({ resumeFrom: resume });
  fs.writeSync(1, JSON.stringify({ losses: r.losses, eval: r.eval_history, steps, global_step: r.global_step }) + '\n');
}

async function adapter() {
  const dir = process.env.CRASH_OUT;
  const peft = lib.getPeftModel(await lib.loadModel(process.env.CRASH_MODEL), { peft_type: 'LORA', r: 4, lora_alpha: 8, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false }, { seed: 1 });
  await peft.saveAdapter(dir);
  for (const [name, t] of Object.entries(peft.trainableParameters())) peft.setParameterValue(name, lib.tensor(t.toFloat32Array().map((v) => v + 1), t.shape));
  await peft.saveAdapter(dir);
  fs.writeSync(1, 'saved\n');
}

(process.env.CRASH_MODE === 'adapter' ? adapter() : train()).catch((err) => {
  process.stderr.write(`${err.stack}\n`);
  process.exit(1);
});
