import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { niceTicks } from '../../lib/train/chart';
import { renderReport, writeReport } from '../../lib/train/report';
import { RunLog, type RunRecord } from '../../lib/train/run-log';

/** A synthetic run: a noisy decaying loss over 60 steps, an eval every 10 steps, a cosine-ish lr. */
function syntheticRun(): RunRecord[] {
  const records: RunRecord[] = [];
  let t = Date.UTC(2025, 0, 2, 3, 4, 5);
  const add = (e: object) => records.push({ ...(e as RunRecord), time: (t += 250) });
  add({ event: 'start', config: { model: 'm', learning_rate: 2e-4, note: '<script>alert("x")</script> & co', peft: { r: 8, target_modules: ['q_proj', 'v_proj'] } }, total_steps: 60 });
  for (let step = 1; step <= 60; step++) {
    const loss = 1.2 + 3 * Math.exp(-step / 15) + 0.05 * Math.sin(step * 1.7);
    add({ event: 'step', step, loss, lr: 2e-4 * (1 - step / 60), grad_norm: 1, tokens_per_s: 1000 + step, memory: 50e6 + step * 1e5 });
    if (step % 10 === 0) add({ event: 'eval', step, eval_loss: 1.5 + 2.5 * Math.exp(-step / 20), perplexity: Math.exp(1.5 + 2.5 * Math.exp(-step / 20)) });
  }
  add({ event: 'save', step: 60, path: 'out/adapter' });
  add({ event: 'end', step: 60, reason: 'completed' });
  return records;
}

interface Chart {
  plot: { x: number; y: number; w: number; h: number; xd: [number, number]; yd: [number, number] };
  paths: Map<string, Array<[number, number]>>;
  xTicks: Array<{ value: number; x: number; label: string }>;
  yTicks: Array<{ value: number; y: number; label: string }>;
  legend: string[];
}

const attr = (tag: string, name: string) => {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  if (!m) throw new Error(`no ${name} in ${tag}`);
  return m[1];
};

/** Reads a chart back out of the SVG text with plain string parsing. */
function parseChart(svg: string): Chart {
  const rect = /<rect class="plot-area"[^>]*>/.exec(svg)![0];
  const pair = (s: string) => s.split(',').map(Number) as [number, number];
  const plot = { x: +attr(rect, 'x'), y: +attr(rect, 'y'), w: +attr(rect, 'width'), h: +attr(rect, 'height'), xd: pair(attr(rect, 'data-x-domain')), yd: pair(attr(rect, 'data-y-domain')) };
  const paths = new Map<string, Array<[number, number]>>();
  for (const m of svg.matchAll(/<path class="series"[^>]*>/g)) {
    const points = attr(m[0], 'd').split(' ').map((cmd) => cmd.slice(1).split(',').map(Number) as [number, number]);
    paths.set(attr(m[0], 'data-series'), points);
  }
  const ticks = (cls: string) =>
    [...svg.matchAll(new RegExp(`<text class="${cls}"[^>]*>([^<]*)</text>`, 'g'))].map((m) => ({
      value: Number(attr(m[0], 'data-value')),
      pos: Number(attr(m[0], cls === 'x-tick' ? 'x' : 'y')),
      label: m[1],
    }));
  return {
    plot,
    paths,
    xTicks: ticks('x-tick').map((t) => ({ value: t.value, x: t.pos, label: t.label })),
    yTicks: ticks('y-tick').map((t) => ({ value: t.value, y: t.pos, label: t.label })),
    legend: [...svg.matchAll(/<g class="legend-item">[\s\S]*?<text[^>]*>([^<]*)<\/text><\/g>/g)].map((m) => m[1]),
  };
}

function charts(html: string): string[] {
  return [...html.matchAll(/<svg[\s\S]*?<\/svg>/g)].map((m) => m[0]);
}

describe('report.html', () => {
  const records = syntheticRun();
  const html = renderReport(records);
  const steps = records.filter((r) => r.event === 'step') as Array<RunRecord & { step: number; loss: number; lr: number }>;
  const evals = records.filter((r) => r.event === 'eval') as Array<RunRecord & { step: number; eval_loss: number }>;

  it('draws train and eval loss against step: every point maps back to its data', () => {
    const chart = parseChart(charts(html)[0]);
    const { plot } = chart;
    const toData = ([px, py]: [number, number]): [number, number] => [
      plot.xd[0] + ((px - plot.x) / plot.w) * (plot.xd[1] - plot.xd[0]),
      plot.yd[0] + (1 - (py - plot.y) / plot.h) * (plot.yd[1] - plot.yd[0]),
    ];
    const train = chart.paths.get('train loss')!;
    const evalPath = chart.paths.get('eval loss')!;
    expect(train).toHaveLength(60);
    expect(evalPath).toHaveLength(6);
    // Pixels are rounded to 0.01, so data comes back to within 0.01 px of its units.
    const xTol = (0.011 * (plot.xd[1] - plot.xd[0])) / plot.w;
    const yTol = (0.011 * (plot.yd[1] - plot.yd[0])) / plot.h;
    train.forEach((p, i) => {
      const [x, y] = toData(p);
      expect(Math.abs(x - steps[i].step)).toBeLessThan(xTol);
      expect(Math.abs(y - steps[i].loss)).toBeLessThan(yTol);
    });
    evalPath.forEach((p, i) => {
      const [x, y] = toData(p);
      expect(Math.abs(x - evals[i].step)).toBeLessThan(xTol);
      expect(Math.abs(y - evals[i].eval_loss)).toBeLessThan(yTol);
    });
    // The extremes: the lowest loss is the lowest point on screen (largest y), the highest the topmost,
    // and everything lies inside the plot area, whose domain covers the data.
    const all = [...train, ...evalPath];
    const losses = [...steps.map((s) => s.loss), ...evals.map((e) => e.eval_loss)];
    const iMin = losses.indexOf(Math.min(...losses));
    const iMax = losses.indexOf(Math.max(...losses));
    expect(all[iMin][1]).toBe(Math.max(...all.map((p) => p[1])));
    expect(all[iMax][1]).toBe(Math.min(...all.map((p) => p[1])));
    for (const [px, py] of all) {
      expect(px).toBeGreaterThanOrEqual(plot.x - 0.01);
      expect(px).toBeLessThanOrEqual(plot.x + plot.w + 0.01);
      expect(py).toBeGreaterThanOrEqual(plot.y - 0.01);
      expect(py).toBeLessThanOrEqual(plot.y + plot.h + 0.01);
    }
    expect(plot.yd[0]).toBeLessThanOrEqual(Math.min(...losses));
    expect(plot.yd[1]).toBeGreaterThanOrEqual(Math.max(...losses));
    // The domain is not much wider than the data (a nice-number step at most on each side).
    expect(plot.yd[1] - plot.yd[0]).toBeLessThan(2 * (Math.max(...losses) - Math.min(...losses)));
    expect(chart.legend).toEqual(['train loss', 'eval loss']);
  });

  it('labels the axes with round ticks placed where their values are', () => {
    const chart = parseChart(charts(html)[0]);
    const { plot } = chart;
    expect(chart.xTicks.length).toBeGreaterThanOrEqual(3);
    expect(chart.yTicks.length).toBeGreaterThanOrEqual(3);
    expect(chart.xTicks[0].value).toBe(plot.xd[0]);
    expect(chart.xTicks[chart.xTicks.length - 1].value).toBe(plot.xd[1]);
    for (const t of chart.xTicks) {
      expect(Number(t.label)).toBeCloseTo(t.value, 10);
      expect(t.x).toBeCloseTo(plot.x + ((t.value - plot.xd[0]) / (plot.xd[1] - plot.xd[0])) * plot.w, 1);
    }
    for (const t of chart.yTicks) {
      expect(Number(t.label)).toBeCloseTo(t.value, 10);
      expect(t.y).toBeCloseTo(plot.y + (1 - (t.value - plot.yd[0]) / (plot.yd[1] - plot.yd[0])) * plot.h, 1);
    }
    // Equal steps of 1, 2 or 5 times a power of ten.
    const gaps = chart.yTicks.slice(1).map((t, i) => t.value - chart.yTicks[i].value);
    gaps.forEach((g) => expect(g).toBeCloseTo(gaps[0], 9));
    const mantissa = gaps[0] / 10 ** Math.floor(Math.log10(gaps[0]));
    expect([1, 2, 5].some((m) => Math.abs(mantissa - m) < 1e-9)).toBe(true);
    expect(/class="x-label"[^>]*>step</.test(charts(html)[0])).toBe(true);
  });

  it('draws the learning rate too', () => {
    const chart = parseChart(charts(html)[1]);
    const lr = chart.paths.get('learning rate')!;
    expect(lr).toHaveLength(60);
    // Linear decay: screen y grows linearly with step.
    const dy = lr.slice(1).map((p, i) => p[1] - lr[i][1]);
    dy.forEach((d) => expect(d).toBeCloseTo(dy[0], 1));
    expect(dy[0]).toBeGreaterThan(0);
  });

  it('nice ticks cover any range tightly, in equal steps of 1, 2 or 5 times a power of ten', () => {
    let seed = 7;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const ranges: Array<[number, number]> = [[0, 60], [1.23, 4.11], [0.1, 0.3], [5, 5], [-3e-5, 2e-4], [1e6, 1e6 + 3]];
    for (let i = 0; i < 200; i++) {
      const a = (rand() - 0.5) * 10 ** Math.floor(rand() * 12 - 6);
      // Widths down to a millionth of the values: beyond that float64 cannot tell the ticks apart.
      ranges.push([a, a + Math.max(rand() * 10 ** Math.floor(rand() * 12 - 6), 1e-6 * Math.abs(a))]);
    }
    for (const [min, max] of ranges) {
      const t = niceTicks(min, max);
      const step = t[1] - t[0];
      const mantissa = step / 10 ** Math.floor(Math.log10(step) + 1e-9);
      expect([1, 2, 5, 10].some((m) => Math.abs(mantissa - m) < 1e-6)).toBe(true);
      t.slice(1).forEach((v, i) => expect(Math.abs(v - t[i] - step)).toBeLessThan(step * 1e-6));
      expect(t.length).toBeGreaterThanOrEqual(2);
      expect(t.length).toBeLessThanOrEqual(12);
      expect(t[0]).toBeLessThanOrEqual(min);
      expect(t[t.length - 1]).toBeGreaterThanOrEqual(max);
      if (max > min) {
        expect(t[0]).toBeGreaterThan(min - step * (1 + 1e-6));
        expect(t[t.length - 1]).toBeLessThan(max + step * (1 + 1e-6));
      }
    }
  });

  it('lists the config (escaped), the metrics and the timings, and needs nothing from the network', () => {
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; co');
    expect(html).toMatch(/<th>peft\.r<\/th><td>8<\/td>/);
    expect(html).toMatch(/<th>peft\.target_modules<\/th><td>\[&quot;q_proj&quot;,&quot;v_proj&quot;\]<\/td>/);
    expect(html).toMatch(/<th>learning_rate<\/th><td>2e-4|<th>learning_rate<\/th><td>0\.0002/);
    expect(html).toMatch(/<th>steps<\/th><td>60 of 60<\/td>/);
    const best = evals.reduce((a, b) => (b.eval_loss < a.eval_loss ? b : a));
    expect(html).toContain(`<th>best eval loss</th><td>${Number(best.eval_loss.toPrecision(5))} (perplexity`);
    expect(html).toContain(`step ${best.step})`);
    expect(html).toContain('<th>started</th><td>2025-01-02T03:04:05.250Z</td>');
    expect(html).toMatch(/<th>wall-clock time<\/th><td>\d+\.\d s<\/td>/);
    expect(html).toContain('<th>time per step</th><td>');
    expect(html).toContain('<th>peak resident memory</th><td>56.0 MB</td>');
    expect(html).not.toMatch(/\b(src|href)=|<link|@import|url\(|https?:/i);
  });

  it('writes the file atomically from a log on disk, replacing an older report', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-report-'));
    try {
      const logFile = path.join(dir, 'run.jsonl');
      const log = RunLog.open(logFile);
      for (const r of records) {
        const { time: _time, ...event } = r;
        log.write(event as never);
      }
      log.close();
      const out = path.join(dir, 'report.html');
      fs.writeFileSync(out, 'old');
      writeReport(out, logFile);
      const written = fs.readFileSync(out, 'utf8');
      expect(written.startsWith('<!DOCTYPE html>')).toBe(true);
      expect(charts(written)).toHaveLength(3); // loss, learning rate, gradient norm
      expect(fs.readdirSync(dir).sort()).toEqual(['report.html', 'run.jsonl']);
      expect(() => writeReport(path.join(dir, 'report.html'), path.join(dir, 'nope.jsonl'))).toThrow(expect.objectContaining({ code: 'E_IO' }));
      fs.writeFileSync(path.join(dir, 'blocker'), '');
      expect(() => writeReport(path.join(dir, 'blocker', 'report.html'), records)).toThrow(expect.objectContaining({ code: 'E_IO' }));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
