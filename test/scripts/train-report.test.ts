/**
 * bench:train's machine-readable lines (scripts/bench/train-report.js): one `case=<id> tok_s=<n>
 * torch_fp32_tok_s=<n> ...` line per case, NA where a run failed, parseable as key=value pairs.
 */
const report = require('../../scripts/bench/train-report.js') as {
  machineLines(summaries: unknown[]): string[];
};

const parse = (line: string) => Object.fromEntries(line.split(' ').map((kv) => kv.split('=') as [string, string]));

it('writes one key=value line per case with the throughputs of ours and torch fp32', () => {
  const lines = report.machineLines([
    { id: 'lora-qv', ours: { tokensPerSecond: 812.345, gflops: 150.04, ofF32Peak: 0.4312, peakRss: 512 * 2 ** 20 }, torch: { fp32: { tokensPerSecond: 401.2, oursRatio: 812.345 / 401.2 } } },
    { id: 'qlora', ours: { error: 'crashed', tokensPerSecond: null }, torch: {} },
  ]);
  expect(lines).toHaveLength(2);
  expect(lines[0].startsWith('case=lora-qv tok_s=812.3 torch_fp32_tok_s=401.2 ')).toBe(true);
  const first = parse(lines[0]);
  expect([first.ratio_fp32, first.gflops, first.of_f32_peak, first.peak_rss_mib]).toEqual([(812.345 / 401.2).toFixed(3), '150.0', '0.431', '512']);
  expect(parse(lines[1])).toMatchObject({ case: 'qlora', tok_s: 'NA', torch_fp32_tok_s: 'NA', peak_rss_mib: 'NA' });
  for (const line of lines) expect(line).toMatch(/^(\w+=\S+)( \w+=\S+)*$/);
});
