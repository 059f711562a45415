/**
 * llama.cpp's own quantizers as references, from the libraries node-llama-cpp ships (installed beside
 * the checkout in ../benchref, as for the forward benchmark): small C programs (ggml-oracle.c,
 * llama-quantize.c) compiled once per test run that dlopen them. Undefined when the libraries or a C
 * compiler are missing; tests then skip with the reason.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const BINS = path.resolve(__dirname, '..', '..', '..', 'benchref', 'node_modules', '@node-llama-cpp', 'linux-x64', 'bins', 'linux-x64');
export const LIBGGML_BASE = path.join(BINS, 'libggml-base.so');
const LIBLLAMA = fs.existsSync(BINS) ? fs.readdirSync(BINS).find((f) => /^libllama(\.v[\d.]+)?\.so$/.test(f)) : undefined;

/** Why the llama.cpp references cannot run here, or undefined when they can. */
export function llamaCppToolsMissing(): string | undefined {
  if (process.platform !== 'linux' || process.arch !== 'x64') return 'the llama.cpp reference libraries are used on linux-x64 only';
  if (!fs.existsSync(LIBGGML_BASE) || !LIBLLAMA) return `node-llama-cpp's libraries are not installed in ${BINS}`;
  try {
    execFileSync('cc', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'no C compiler (cc) to build the reference programs';
  }
  return undefined;
}

let built: { dir: string; oracle: string; quantize: string } | undefined;

function tools(): { oracle: string; quantize: string } {
  if (!built) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-llama-cpp-tools-'));
    const oracle = path.join(dir, 'ggml-oracle');
    const quantize = path.join(dir, 'llama-quantize');
    execFileSync('cc', ['-O1', '-o', oracle, path.join(__dirname, 'ggml-oracle.c'), '-ldl']);
    execFileSync('cc', ['-O1', '-o', quantize, path.join(__dirname, 'llama-quantize.c'), '-ldl']);
    built = { dir, oracle, quantize };
    process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  }
  return built;
}

/** llama-quantize: writes `output` from `input` for llama.cpp file type number `ftype`, as the tool does. */
export function llamaQuantize(input: string, output: string, ftype: number): void {
  execFileSync(tools().quantize, [path.join(BINS, LIBLLAMA!), input, output, String(ftype)], { stdio: 'ignore', timeout: 120_000 });
}

/**
 * ggml's ggml_quantize_chunk (what llama-quantize calls) on `values`, rows of `row` elements, to
 * ggml type `type` (ggml's lower-case name: q4_K, iq4_nl, ...): the block bytes.
 */
export function ggmlQuantizeChunk(type: string, values: Float32Array, row: number, bytes: number): Uint8Array {
  return runOracle('chunk', type, values.length, Buffer.from(values.buffer, values.byteOffset, values.byteLength), { GGML_ORACLE_BYTES: String(bytes), GGML_ORACLE_ROW: String(row) });
}

/** ggml's dequantize_row_<type> on `n` elements' worth of blocks: the f32 values. */
export function ggmlDequantizeRow(type: string, blocks: Uint8Array, n: number): Float32Array {
  const out = runOracle('dequantize', type, n, Buffer.from(blocks.buffer, blocks.byteOffset, blocks.byteLength), {});
  return new Float32Array(out.buffer, out.byteOffset, n);
}

function runOracle(mode: string, type: string, n: number, input: Buffer, env: Record<string, string>): Uint8Array {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-oracle-'));
  try {
    const inFile = path.join(dir, 'in'), outFile = path.join(dir, 'out');
    fs.writeFileSync(inFile, input);
    execFileSync(tools().oracle, [LIBGGML_BASE, mode, type, String(n), inFile, outFile], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    return new Uint8Array(fs.readFileSync(outFile));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
