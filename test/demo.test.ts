import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

it('npm run demo fine-tunes stories260K and lowers the held-out perplexity', () => {
  const out = execFileSync(process.execPath, [path.join(__dirname, '..', 'scripts', 'demo.js')], { encoding: 'utf8' });
  const [before, after] = [...out.matchAll(/held-out perplexity ([\d.]+)/g)].map((m) => Number(m[1]));
  expect(before).toBeGreaterThan(0);
  expect(after).toBeLessThan(before * 0.8);
  const losses = [...out.matchAll(/loss ([\d.]+)/g)].map((m) => Number(m[1]));
  expect(losses[losses.length - 1]).toBeLessThan(losses[0] / 2);
});
