import { LrSchedule, resolveWarmupSteps } from '../../lib/train/schedule';

// transformers' lr_lambda functions (optimization.py), written out from their published definitions.
function hfConstant(step: number, warmup: number): number {
  return step < warmup ? step / Math.max(1.0, warmup) : 1.0;
}
function hfLinear(step: number, warmup: number, total: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  return Math.max(0.0, (total - step) / Math.max(1, total - warmup));
}
function hfCosine(step: number, warmup: number, total: number, cycles: number): number {
  if (step < warmup) return step / Math.max(1, warmup);
  const progress = (step - warmup) / Math.max(1, total - warmup);
  return Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * cycles * 2.0 * progress)));
}

function run(schedule: LrSchedule, steps: number): number[] {
  const lrs: number[] = [];
  for (let i = 0; i < steps; i++) {
    lrs.push(schedule.lr);
    schedule.step();
  }
  return lrs;
}

describe('learning-rate schedules', () => {
  it('linear with warmup_steps follows get_linear_schedule_with_warmup', () => {
    const s = new LrSchedule({ lr_scheduler_type: 'linear', learning_rate: 3e-4, total_steps: 100, warmup_steps: 10 });
    const lrs = run(s, 101);
    lrs.forEach((lr, step) => expect(lr).toBeCloseTo(3e-4 * hfLinear(step, 10, 100), 15));
    expect(lrs[0]).toBe(0);
    expect(lrs[10]).toBeCloseTo(3e-4, 15);
    expect(lrs[100]).toBe(0);
  });

  it('cosine with warmup_ratio rounds the warmup up, as TrainingArguments.get_warmup_steps', () => {
    const s = new LrSchedule({ lr_scheduler_type: 'cosine', learning_rate: 1e-3, total_steps: 55, warmup_ratio: 0.1 });
    expect(s.warmupSteps).toBe(6); // ceil(5.5)
    run(s, 56).forEach((lr, step) => expect(lr).toBeCloseTo(1e-3 * hfCosine(step, 6, 55, 0.5), 15));
  });

  it('cosine with several cycles clips at 0 like transformers', () => {
    const s = new LrSchedule({ lr_scheduler_type: 'cosine', learning_rate: 2, total_steps: 40, warmup_steps: 3, num_cycles: 1.5 });
    run(s, 41).forEach((lr, step) => expect(lr).toBeCloseTo(2 * hfCosine(step, 3, 40, 1.5), 14));
  });

  it('constant holds the rate after warmup, and needs no total without a ratio', () => {
    const s = new LrSchedule({ lr_scheduler_type: 'constant', learning_rate: 0.5, warmup_steps: 4 });
    run(s, 20).forEach((lr, step) => expect(lr).toBeCloseTo(0.5 * hfConstant(step, 4), 15));
    const flat = new LrSchedule({ lr_scheduler_type: 'constant', learning_rate: 0.5 });
    expect(run(flat, 3)).toEqual([0.5, 0.5, 0.5]);
  });

  it('warmup_steps wins over warmup_ratio when both are given', () => {
    expect(resolveWarmupSteps(100, 7, 0.5)).toBe(7);
    expect(resolveWarmupSteps(100, 0, 0.05)).toBe(5);
    expect(resolveWarmupSteps(101, 0, 0.05)).toBe(6);
  });

  it('saves its state as JSON and a restored schedule continues identically', () => {
    const a = new LrSchedule({ lr_scheduler_type: 'cosine', learning_rate: 1e-4, total_steps: 30, warmup_steps: 5 });
    run(a, 12);
    const saved = JSON.parse(JSON.stringify(a.state()));
    expect(saved).toEqual({ lr_scheduler_type: 'cosine', learning_rate: 1e-4, total_steps: 30, warmup_steps: 5, num_cycles: 0.5, step: 12 });
    const b = LrSchedule.fromState(saved);
    expect(run(b, 19)).toEqual(run(a, 19));
  });

  it('rejects bad options with PeftErrors', () => {
    const bad = (o: object) => () => new LrSchedule(o as never);
    expect(bad({ lr_scheduler_type: 'step', learning_rate: 1, total_steps: 3 })).toThrow(
      expect.objectContaining({ code: 'E_CONFIG', message: expect.stringContaining('Expected one of constant, linear, cosine for lr_scheduler_type') }),
    );
    expect(bad({ lr_scheduler_type: 'linear', learning_rate: 1 })).toThrow(expect.objectContaining({ code: 'E_CONFIG' }));
    expect(bad({ lr_scheduler_type: 'linear', learning_rate: 'x', total_steps: 3 })).toThrow(expect.objectContaining({ code: 'E_ARGUMENT' }));
    expect(bad({ lr_scheduler_type: 'linear', learning_rate: 1, total_steps: 3, warmup_ratio: 2 })).toThrow(expect.objectContaining({ code: 'E_RANGE' }));
    expect(bad({ lr_scheduler_type: 'linear', learning_rate: 1, total_steps: 2.5 })).toThrow(expect.objectContaining({ code: 'E_ARGUMENT' }));
  });
});
