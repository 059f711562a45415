'use strict';
// Command-line options of `npm run bench` (node scripts/bench/gemm.js [options]).
const { SHAPES, LOWRANK_SHAPES, CASES, DTYPES, RANKS, shapeName } = require('./cases');

const HELP = `usage: npm run bench -- [options]

  --quick              fewer repetitions (a smoke run: numbers are noisier)
  --shapes=LIST        layer shapes MxNxK (tokens x out x in), comma-separated, for both
                       tables; default: ${SHAPES.map(shapeName).join(',')}
                       (the LoRA table leaves out ${SHAPES.filter((s) => !LOWRANK_SHAPES.includes(s)).map(shapeName).join(',')} unless named here)
  --cases=LIST         of ${CASES.map((c) => c.id).join(',')} (default all)
  --dtypes=LIST        of ${DTYPES.join(',')} (default all)
  --ranks=LIST         LoRA ranks for the low-rank table (default ${RANKS.join(',')}; "none" skips it)
  --isa=NAME           force a kernel variant (runtime.setIsa) instead of the best one
  --rounds=N           time each GEMM case N times, ours and OpenBLAS in turn (default 3); the
                       ratio is the median of the per-round ratios
  --no-refs            skip OpenBLAS and PyTorch
  --json=PATH          where to write the results (default .bench-out/gemm.json)
  --help
`;

function list(value, allowed, what) {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (allowed && !allowed.includes(item)) throw new Error(`Expected ${what} among ${allowed.join(', ')} but received ${item}`);
  }
  return items;
}

function parseShape(text) {
  const dims = text.split('x').map(Number);
  if (dims.length !== 3 || !dims.every((d) => Number.isInteger(d) && d > 0)) {
    throw new Error(`Expected a shape like 2048x576x576 but received ${text}`);
  }
  return { m: dims[0], n: dims[1], k: dims[2] };
}

function parseArgs(argv) {
  const opts = {
    quick: false,
    shapes: SHAPES,
    lowrankShapes: LOWRANK_SHAPES,
    cases: CASES.map((c) => c.id),
    dtypes: DTYPES,
    ranks: RANKS,
    isa: null,
    rounds: 3,
    refs: true,
    json: null,
    help: false,
  };
  for (const arg of argv) {
    const [key, value] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, null];
    if (key === '--quick') opts.quick = true;
    else if (key === '--no-refs') opts.refs = false;
    else if (key === '--help' || key === '-h') opts.help = true;
    else if (key === '--shapes' && value) opts.shapes = opts.lowrankShapes = list(value, null, 'shapes').map(parseShape);
    else if (key === '--cases' && value) opts.cases = list(value, CASES.map((c) => c.id), 'cases');
    else if (key === '--dtypes' && value) opts.dtypes = list(value, DTYPES, 'dtypes');
    else if (key === '--ranks' && value) opts.ranks = value === 'none' ? [] : list(value, null, 'ranks').map(Number);
    else if (key === '--isa' && value) opts.isa = value;
    else if (key === '--json' && value) opts.json = value;
    else if (key === '--rounds' && value) opts.rounds = Number(value);
    else throw new Error(`Unknown option ${arg}\n\n${HELP}`);
  }
  if (opts.ranks.some((r) => !Number.isInteger(r) || r < 1)) throw new Error('Expected positive integer ranks');
  if (!Number.isInteger(opts.rounds) || opts.rounds < 1) throw new Error(`Expected a positive integer for --rounds but received ${opts.rounds}`);
  return opts;
}

module.exports = { parseArgs, HELP };
