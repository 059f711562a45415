'use strict';
// Plain-text tables and number formats for the report.

/** columns: [{ title, right }]; rows: arrays of strings. Returns the lines. */
function renderTable(columns, rows) {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => [...r[i]].length)));
  const cell = (text, i) => (columns[i].right ? text.padStart(widths[i]) : text.padEnd(widths[i]));
  const line = (cells) => cells.map(cell).join('  ').trimEnd();
  return [line(columns.map((c) => c.title)), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

/** The same table in GitHub markdown (right-aligned columns marked so). Returns the lines. */
function renderMarkdown(columns, rows) {
  const line = (cells) => `| ${cells.join(' | ')} |`;
  return [line(columns.map((c) => c.title)), line(columns.map((c) => (c.right ? '---:' : '---'))), ...rows.map(line)];
}

const num = (x, digits = 1) => (x === null || x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits));
const pct = (x) => (x === null || x === undefined ? '-' : `${(100 * x).toFixed(0)}%`);
const ratio = (x) => (x === null || x === undefined ? '-' : `${x.toFixed(2)}x`);

module.exports = { renderTable, renderMarkdown, num, pct, ratio };
