'use strict';
// `npm run bench:gemv`: the small-M GEMM path (native/kernels/cpu/gemv.h) against the packed GEMM,
// as the weight bandwidth each achieves, next to this machine's memcpy bandwidth. Decoding is a
// chain of such products (M = 1), so GB/s of weight read is the figure that matters.
// The weights rotate through copies larger than the last-level cache, as in a real decode step
// where each layer's weight comes from DRAM. Each path runs in its own child process
// (PEFT_GEMV_MAX_ROWS = the largest M asked for, or 0: the variable is read once per process).
const { spawnSync } = require('node:child_process');

const { renderTable, num, ratio } = require('./table');
const { median } = require('./timing');

const HELP = `usage: npm run bench:gemv -- [options]

  --shapes=LIST    weights NxK (out x in; default 576x576,192x576,1536x576,576x1536,49152x576:
                   SmolLM-135M's q/o, k/v, gate/up, down and tied head)
  --rows=LIST      values of M (default 1,2,4,8)
  --dtypes=LIST    weight dtypes, f32 and/or bf16 (default both)
  --cases=LIST     fwd (y = x·Wᵀ) and/or dx (dx = dy·W) (default both)
  --threads=LIST   pool sizes (default 1,2)
  --isa=NAME       kernel variant (default: the library's choice)
  --quick          one timed pass instead of the median of three
  --help
`;

function parseArgs(argv) {
  const opts = {
    shapes: [[576, 576], [192, 576], [1536, 576], [576, 1536], [49152, 576]],
    rows: [1, 2, 4, 8],
    dtypes: ['f32', 'bf16'],
    cases: ['fwd', 'dx'],
    threads: [1, 2],
    isa: null,
    quick: false,
    help: false,
    child: null,
  };
  const ints = (v) => v.split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`Expected positive integers but received ${v}`);
    return n;
  });
  for (const arg of argv) {
    const eq = arg.indexOf('=');
    const [key, value] = eq < 0 ? [arg, ''] : [arg.slice(0, eq), arg.slice(eq + 1)];
    if (key === '--help' || key === '-h') opts.help = true;
    else if (key === '--quick') opts.quick = true;
    else if (key === '--shapes') opts.shapes = value.split(',').map((s) => ints(s.replace('x', ',')));
    else if (key === '--rows') opts.rows = ints(value);
    else if (key === '--dtypes') opts.dtypes = value.split(',');
    else if (key === '--cases') opts.cases = value.split(',');
    else if (key === '--threads') opts.threads = ints(value);
    else if (key === '--isa') opts.isa = value;
    else if (key === '--child') opts.child = value;
    else throw new Error(`Unknown option ${arg} (see --help)`);
  }
  return opts;
}

const ROTATE_BYTES = 128 * 2 ** 20; // four times a 32 MiB L3

function randomData(size, seed) {
  const out = new Float32Array(size);
  let s = seed >>> 0;
  for (let i = 0; i < size; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s >>> 8) / 16777216 - 0.5;
  }
  return out;
}

/** One process, one path: times every case and prints the results as JSON on stdout. */
function child(opts) {
  const { tensor, zeros, ops, runtime } = require('../../dist');
  if (opts.isa) runtime.setIsa(opts.isa);
  const reps = opts.quick ? 1 : 3;
  const results = [];
  for (const [n, k] of opts.shapes) {
    for (const dtype of opts.dtypes) {
      const bytes = n * k * (dtype === 'f32' ? 4 : 2);
      const copies = Math.max(1, Math.ceil(ROTATE_BYTES / bytes));
      const data = randomData(n * k, 1);
      // Every 4 KiB page of every copy differs, so that no layer below (a VM host merging pages)
      // can fold the copies into one cached block.
      const weights = Array.from({ length: copies }, (_, c) => {
        for (let i = 0; i < data.length; i += 512) data[i] = c / copies;
        return tensor(data, [n, k], dtype);
      });
      for (const c of opts.cases) {
        for (const m of opts.rows) {
          // fwd: y[m, n] = x[m, k]·Wᵀ; dx: dx[m, k] = dy[m, n]·W.
          const a = tensor(randomData(m * (c === 'fwd' ? k : n), 2), [m, c === 'fwd' ? k : n]);
          const out = zeros([m, c === 'fwd' ? n : k]);
          for (const threads of opts.threads) {
            runtime.setNumThreads(threads);
            // A timed run is one pass over every copy: per-call times would flatter the calls
            // whose weight happens to be still cached.
            const pass = () => weights.forEach((w) => ops.matmul(a, w, { transB: c === 'fwd', out }));
            pass();
            const times = [];
            for (let rep = 0; rep < reps; rep++) {
              const t0 = process.hrtime.bigint();
              pass();
              times.push(Number(process.hrtime.bigint() - t0) / 1e9 / copies);
            }
            const seconds = median(times);
            results.push({ n, k, dtype, case: c, m, threads, seconds, gbps: bytes / seconds / 1e9 });
          }
          a.dispose();
          out.dispose();
        }
      }
      weights.forEach((w) => w.dispose());
    }
  }
  process.stdout.write(JSON.stringify({ isa: runtime.getIsa(), results }));
}

/** memcpy bandwidth (Buffer.copy of 128 MiB), reported as bytes copied per second. */
function memcpyGbps() {
  const src = Buffer.alloc(ROTATE_BYTES, 1);
  const dst = Buffer.alloc(ROTATE_BYTES);
  src.copy(dst);
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t0 = process.hrtime.bigint();
    src.copy(dst);
    times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return ROTATE_BYTES / median(times) / 1e9;
}

function runChild(maxRows) {
  const argv = process.argv.slice(2).filter((a) => !a.startsWith('--child'));
  const r = spawnSync(process.execPath, [__filename, ...argv, `--child=${maxRows}`], {
    env: { ...process.env, PEFT_GEMV_MAX_ROWS: String(maxRows) },
    encoding: 'utf8',
    maxBuffer: 64 << 20,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`child (PEFT_GEMV_MAX_ROWS=${maxRows}) failed with status ${r.status}`);
  return JSON.parse(r.stdout);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) return void process.stdout.write(HELP);
  if (opts.child !== null) return child(opts);
  process.stderr.write('  memcpy\n');
  const copyBefore = memcpyGbps();
  process.stderr.write('  small-M path\n');
  const gemv = runChild(Math.max(...opts.rows));
  process.stderr.write('  packed GEMM\n');
  const packed = runChild(0);
  const copy = Math.max(copyBefore, memcpyGbps());
  const key = (r) => `${r.n}x${r.k} ${r.dtype} ${r.case} ${r.m} ${r.threads}`;
  const packedBy = new Map(packed.results.map((r) => [key(r), r]));
  const rows = gemv.results.map((r) => {
    const p = packedBy.get(key(r));
    return [`${r.n}x${r.k}`, r.dtype, r.case, String(r.m), String(r.threads), num(r.seconds * 1e6, 0), num(r.gbps, 2),
      num(p.gbps, 2), ratio(p.seconds / r.seconds), `${((100 * r.gbps) / copy).toFixed(0)}%`];
  });
  const columns = ['W (NxK)', 'dtype', 'case', 'M', 'threads', 'small-M us', 'small-M GB/s', 'packed GB/s', 'speed-up', 'of memcpy']
    .map((title, i) => ({ title, right: i >= 3 }));
  console.log(`kernels: ${gemv.isa}; memcpy (one thread, ${ROTATE_BYTES >> 20} MiB): ${num(copy, 2)} GB/s copied`);
  console.log(renderTable(columns, rows).join('\n'));
  console.log('\nGB/s: bytes of the weight read per second. speed-up: packed time / small-M time (above 1: the small-M path wins).');
}

try {
  main();
} catch (e) {
  console.error(e instanceof Error ? e.message : e);
  process.exitCode = 1;
}
