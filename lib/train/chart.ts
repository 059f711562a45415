/**
 * Line charts as inline SVG, drawn without any library: axes with "nice" ticks (1, 2 or 5 times a
 * power of ten), grid lines, one path per series and a legend. Used by the run report.
 */
import { escapeHtml } from './html';

/** One line of a chart: points [x, y] in data units, drawn in `color`. */
export interface ChartSeries {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
  color: string;
  /** Draw a dot at each point (for sparse series such as evaluations). */
  markers?: boolean;
}

/** Options of {@link lineChart}. */
export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** Pixels. Default 720 × 360. */
  width?: number;
  height?: number;
}

const MARGIN = { left: 72, right: 24, top: 36, bottom: 48 };

/** Evenly spaced round tick values that cover [min, max], about `count` of them. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) {
    const pad = min === 0 ? 1 : Math.abs(min) * 0.1;
    return niceTicks(min - pad, max + pad, count);
  }
  const rough = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) ?? 10 * power;
  // The tolerance keeps 0.3 / 0.1 = 2.9999999999999996 from adding a tick; the checks after it keep
  // the data inside the ticks.
  let first = Math.floor(min / step + 1e-9);
  let last = Math.ceil(max / step - 1e-9);
  if (first * step > min) first--;
  if (last * step < max) last++;
  const ticks: number[] = [];
  // Multiply an integer by the step (no accumulated sums), then round to the step's last digit to
  // drop float noise such as 0.30000000000000004.
  const decimals = Math.min(100, Math.max(0, 1 - Math.floor(Math.log10(step))));
  for (let i = first; i <= last; i++) ticks.push(Number((i * step).toFixed(decimals)));
  return ticks;
}

/** A short label for a tick value: plain for ordinary sizes, exponent form for tiny or huge ones. */
export function formatTick(value: number): string {
  if (value === 0) return '0';
  const magnitude = Math.abs(value);
  if (magnitude < 1e-3 || magnitude >= 1e6) return value.toExponential(1).replace('.0e', 'e');
  return String(Number(value.toPrecision(6)));
}

function round2(v: number): string {
  return v.toFixed(2);
}

/**
 * An `<svg>` element with the series drawn over shared axes. The plot area is a
 * `<rect class="plot-area">` whose `data-x-domain` / `data-y-domain` give the data range it spans;
 * a point (x, y) is drawn at left + (x − x0)/(x1 − x0)·width, top + (1 − (y − y0)/(y1 − y0))·height.
 */
export function lineChart(series: readonly ChartSeries[], options: ChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 360;
  const plot = { x: MARGIN.left, y: MARGIN.top, w: width - MARGIN.left - MARGIN.right, h: height - MARGIN.top - MARGIN.bottom };
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = all.map(([x]) => x);
  const ys = all.map(([, y]) => y);
  const xTicks = niceTicks(xs.length ? Math.min(...xs) : 0, xs.length ? Math.max(...xs) : 1);
  const yTicks = niceTicks(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1);
  const [x0, x1] = [xTicks[0], xTicks[xTicks.length - 1]];
  const [y0, y1] = [yTicks[0], yTicks[yTicks.length - 1]];
  const px = (x: number) => plot.x + ((x - x0) / (x1 - x0)) * plot.w;
  const py = (y: number) => plot.y + (1 - (y - y0) / (y1 - y0)) * plot.h;

  const out: string[] = [];
  out.push(`<svg class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${escapeHtml(options.title)}">`);
  out.push(`<text class="title" x="${plot.x}" y="20" font-weight="bold">${escapeHtml(options.title)}</text>`);
  out.push(
    `<rect class="plot-area" x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" fill="#fff" stroke="#888"` +
      ` data-x-domain="${x0},${x1}" data-y-domain="${y0},${y1}"/>`,
  );
  for (const t of xTicks) {
    const x = round2(px(t));
    out.push(`<line class="grid" x1="${x}" y1="${plot.y}" x2="${x}" y2="${plot.y + plot.h}" stroke="#eee"/>`);
    out.push(`<line class="tick" x1="${x}" y1="${plot.y + plot.h}" x2="${x}" y2="${plot.y + plot.h + 5}" stroke="#888"/>`);
    out.push(`<text class="x-tick" data-value="${t}" x="${x}" y="${plot.y + plot.h + 18}" text-anchor="middle" font-size="11">${formatTick(t)}</text>`);
  }
  for (const t of yTicks) {
    const y = round2(py(t));
    out.push(`<line class="grid" x1="${plot.x}" y1="${y}" x2="${plot.x + plot.w}" y2="${y}" stroke="#eee"/>`);
    out.push(`<line class="tick" x1="${plot.x - 5}" y1="${y}" x2="${plot.x}" y2="${y}" stroke="#888"/>`);
    out.push(`<text class="y-tick" data-value="${t}" x="${plot.x - 8}" y="${y}" text-anchor="end" dominant-baseline="middle" font-size="11">${formatTick(t)}</text>`);
  }
  out.push(`<text class="x-label" x="${plot.x + plot.w / 2}" y="${height - 8}" text-anchor="middle" font-size="12">${escapeHtml(options.xLabel)}</text>`);
  out.push(
    `<text class="y-label" x="14" y="${plot.y + plot.h / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 14 ${plot.y + plot.h / 2})">${escapeHtml(options.yLabel)}</text>`,
  );
  for (const s of series) {
    const points = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).map(([x, y]) => [round2(px(x)), round2(py(y))]);
    if (!points.length) continue;
    const d = points.map(([x, y], i) => `${i ? 'L' : 'M'}${x},${y}`).join(' ');
    out.push(`<path class="series" data-series="${escapeHtml(s.name)}" d="${d}" fill="none" stroke="${escapeHtml(s.color)}" stroke-width="1.5"/>`);
    if (s.markers || points.length === 1) {
      for (const [x, y] of points) out.push(`<circle cx="${x}" cy="${y}" r="3" fill="${escapeHtml(s.color)}"/>`);
    }
  }
  // Legend: in the top margin, right-aligned, so that it never covers data (text width estimated
  // at 7 px per character of the 12 px font).
  const widths = series.map((s) => 24 + 7 * s.name.length);
  let x = plot.x + plot.w - widths.reduce((a, w) => a + w + 16, -16);
  series.forEach((s, i) => {
    out.push(`<g class="legend-item"><line x1="${x}" y1="16" x2="${x + 18}" y2="16" stroke="${escapeHtml(s.color)}" stroke-width="2"/>`);
    out.push(`<text x="${x + 24}" y="16" dominant-baseline="middle" font-size="12">${escapeHtml(s.name)}</text></g>`);
    x += widths[i] + 16;
  });
  out.push('</svg>');
  return out.join('\n');
}
