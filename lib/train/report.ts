/**
 * `report.html`: one self-contained page per run (no scripts, no network) with the train and eval
 * loss curves, the learning rate and the gradient norm as inline SVG charts, the final metrics, the
 * numerical health (clipping, skipped steps, loss spikes), the timings and the configuration. Written atomically, so it can be rewritten after every evaluation.
 */
import { PeftError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { lineChart, type ChartSeries } from './chart';
import { formatBytes, formatDuration, formatNumber } from './format';
import { escapeHtml } from './html';
import { readRunLog, type RunRecord } from './run-log';
import { healthRows, HEALTH_METRICS, summarizeRun, type RunSummary } from './run-summary';

/** Options of {@link renderReport}. */
export interface ReportOptions {
  /** Page title. Default 'peft-native training report'. */
  title?: string;
}

/** Nested config objects become dotted keys: { peft: { r: 8 } } → peft.r = 8. */
function flatten(config: Record<string, unknown>, prefix = ''): Array<[string, unknown]> {
  return Object.entries(config).flatMap(([key, value]) =>
    typeof value === 'object' && value !== null && !Array.isArray(value)
      ? flatten(value as Record<string, unknown>, `${prefix}${key}.`)
      : [[`${prefix}${key}`, value] as [string, unknown]],
  );
}

function configValue(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return String(value);
  return JSON.stringify(value) ?? String(value);
}

function table(rows: Array<[string, string]>, className: string): string {
  if (!rows.length) return '<p class="empty">none</p>';
  const body = rows.map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('\n');
  return `<table class="${className}">\n${body}\n</table>`;
}

function metricRows(s: RunSummary): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  rows.push(['steps', s.totalSteps ? `${s.steps} of ${s.totalSteps}` : String(s.steps)]);
  if (s.finalLoss !== undefined) rows.push(['final train loss', formatNumber(s.finalLoss)]);
  if (s.finalEval) rows.push(['final eval loss', `${formatNumber(s.finalEval.eval_loss)} (perplexity ${formatNumber(s.finalEval.perplexity)}, step ${s.finalEval.step})`]);
  if (s.bestEval) rows.push(['best eval loss', `${formatNumber(s.bestEval.eval_loss)} (perplexity ${formatNumber(s.bestEval.perplexity)}, step ${s.bestEval.step})`]);
  for (const [k, v] of Object.entries(s.end?.metrics ?? {})) if (!HEALTH_METRICS.has(k)) rows.push([k, formatNumber(v)]);
  if (s.end) rows.push(['ended', s.end.reason]);
  return rows;
}

function timingRows(s: RunSummary): Array<[string, string]> {
  const rows: Array<[string, string]> = [];
  if (s.startedAt !== undefined) rows.push(['started', new Date(s.startedAt).toISOString()]);
  if (s.endedAt !== undefined) rows.push(['last record', new Date(s.endedAt).toISOString()]);
  if (s.durationS !== undefined) rows.push(['wall-clock time', formatDuration(s.durationS)]);
  if (s.meanStepS !== undefined) rows.push(['time per step', `${formatNumber(s.meanStepS)} s`]);
  if (s.meanTokensPerS !== undefined) rows.push(['tokens per second', formatNumber(Math.round(s.meanTokensPerS))]);
  if (s.peakMemory !== undefined) rows.push(['peak resident memory', formatBytes(s.peakMemory)]);
  return rows;
}

/** The gradient-norm chart (with the clipping threshold), the health table and the warnings. */
function healthSection(s: RunSummary): string[] {
  const h = s.health;
  const out = ['<h2>Training health</h2>', table(healthRows(h, formatNumber), 'health')];
  if (h.gradNorm.length) {
    const series: ChartSeries[] = [{ name: 'gradient norm', points: h.gradNorm, color: '#9467bd' }];
    const first = h.gradNorm[0][0];
    const last = h.gradNorm[h.gradNorm.length - 1][0];
    if (h.maxGradNorm !== undefined && h.maxGradNorm > 0) series.push({ name: 'max_grad_norm', points: [[first, h.maxGradNorm], [last, h.maxGradNorm]], color: '#7f7f7f' });
    out.push(lineChart(series, { title: 'Gradient norm (before clipping)', xLabel: 'step', yLabel: 'norm', height: 240 }));
  }
  if (h.warnings.length) {
    out.push('<h3>Warnings</h3>', table(h.warnings.map((w) => [`step ${w.step}`, w.message] as [string, string]), 'warnings'));
  }
  return out;
}

const STYLE = `body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:0.5em 0 1.5em}th,td{border:1px solid #ddd;padding:0.25em 0.75em;text-align:left;vertical-align:top}
th{background:#f6f6f6;font-weight:600}td{font-family:ui-monospace,monospace;white-space:pre-wrap;word-break:break-all}
svg.chart{display:block;max-width:100%;height:auto;margin:0.5em 0 1.5em;font-family:system-ui,sans-serif}`;

/** The report page of a run, from its log records. */
export function renderReport(records: readonly RunRecord[], options: ReportOptions = {}): string {
  const s = summarizeRun(records);
  const title = options.title ?? 'peft-native training report';
  const lossSeries: ChartSeries[] = [{ name: 'train loss', points: s.trainLoss, color: '#1f77b4' }];
  if (s.evalLoss.length) lossSeries.push({ name: 'eval loss', points: s.evalLoss, color: '#d62728', markers: true });
  const saves = s.saves.map((e) => [`step ${e.step}`, e.path] as [string, string]);
  return [
    '<!DOCTYPE html>',
    '<html lang="en">',
    '<head>',
    '<meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>${escapeHtml(title)}</title>`,
    `<style>${STYLE}</style>`,
    '</head>',
    '<body>',
    `<h1>${escapeHtml(title)}</h1>`,
    '<h2>Results</h2>',
    table(metricRows(s), 'metrics'),
    '<h2>Loss</h2>',
    lineChart(lossSeries, { title: 'Loss', xLabel: 'step', yLabel: 'loss' }),
    '<h2>Learning rate</h2>',
    lineChart([{ name: 'learning rate', points: s.learningRate, color: '#2ca02c' }], { title: 'Learning rate', xLabel: 'step', yLabel: 'learning rate', height: 240 }),
    ...healthSection(s),
    '<h2>Timings</h2>',
    table(timingRows(s), 'timings'),
    '<h2>Saved</h2>',
    table(saves, 'saves'),
    '<h2>Configuration</h2>',
    table(flatten(s.config).map(([k, v]) => [k, configValue(v)]), 'config'),
    '</body>',
    '</html>',
    '',
  ].join('\n');
}

/**
 * Writes the report of a run to `file` (atomically), from the run's records or the path of its
 * JSON-lines log.
 */
export function writeReport(file: string, source: readonly RunRecord[] | string, options: ReportOptions = {}): void {
  if (typeof file !== 'string' || file === '') throw new PeftError('writeReport needs a file path for the report', 'E_ARGUMENT');
  const records = typeof source === 'string' ? readRunLog(source) : source;
  writeFileAtomic(file, renderReport(records, options));
}
