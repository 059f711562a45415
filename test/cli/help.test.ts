import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { flagOf, leafFields } from '../../lib/cli/config';
import { COMMANDS } from '../../lib/cli/program';
import { ensureBuilt } from '../helpers/built';
import { runCli } from '../helpers/cli';
import { repoRoot } from '../helpers/workspace';

beforeAll(() => ensureBuilt());

describe('peft-native --help', () => {
  it('lists every subcommand', () => {
    const r = runCli(['--help']);
    expect(r.code).toBe(0);
    for (const name of ['train', 'generate', 'eval', 'merge', 'export', 'inspect', 'demo']) expect(r.stdout).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
  });

  it.each(COMMANDS.map((c) => c.name))('%s --help shows every field as a flag or a nested key, and the config options', (name) => {
    const r = runCli([name, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`Usage: peft-native ${name} [options]`);
    expect(r.stdout).toContain('--config <file>');
    expect(r.stdout).toContain('--set <key=value>');
    const spec = COMMANDS.find((c) => c.name === name)!;
    for (const [key, field] of leafFields(spec.schema)) {
      if (key.includes('.')) expect(r.stdout).toMatch(new RegExp(`^  ${key.replace('.', '\\.')}\\s`, 'm'));
      else if (field.positional) expect(r.stdout).toContain(`[${key}]`);
      else if (field.type === 'boolean' && field.default === true) expect(r.stdout).toContain(`--no-${flagOf(key).slice(2)}`);
      else expect(r.stdout).toContain(flagOf(key));
    }
  });

  it('prints the package version', () => {
    const version = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version;
    expect(runCli(['--version']).stdout.trim()).toBe(version);
  });

  it('works through npx from the package root', () => {
    const out = execFileSync('npx', ['--no-install', 'peft-native', 'eval', '--help'], { cwd: repoRoot, encoding: 'utf8' });
    expect(out).toContain('Usage: peft-native eval [options]');
    expect(fs.readFileSync(path.join(repoRoot, 'dist', 'cli', 'main.js'), 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  it('refuses unknown commands and options with exit code 1', () => {
    const a = runCli(['trian']);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain("unknown command 'trian'");
    const b = runCli(['generate', '--bogus']);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain("unknown option '--bogus'");
  });

  it('export writes a GGUF LoRA file and a merged Hugging Face directory; a missing adapter is a one-line error', async () => {
    const { loadModel, getPeftModel, readGguf } = await import('../../lib');
    const { MODELS_DIR } = await import('../helpers/models');
    const os = await import('node:os');
    const hf = path.join(MODELS_DIR, 'stories260K-hf');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-export-'));
    try {
      const peft = getPeftModel(await loadModel(hf), { peft_type: 'LORA', r: 2, target_modules: ['q_proj', 'v_proj'], init_lora_weights: false });
      await peft.saveAdapter(path.join(dir, 'adapter'));
      const lora = runCli(['export', '--model', hf, '--adapter', path.join(dir, 'adapter'), '--output', path.join(dir, 'lora.gguf')]);
      expect(lora.code).toBe(0);
      const gguf = readGguf(path.join(dir, 'lora.gguf'));
      expect(gguf.metadata['general.type']).toBe('adapter');
      expect(gguf.tensorInfos.some((t) => t.name === 'blk.0.attn_q.weight.lora_a')).toBe(true);
      const merged = runCli(['export', '--model', hf, '--adapter', path.join(dir, 'adapter'), '--format', 'safetensors', '--output', path.join(dir, 'merged')]);
      expect(merged.code).toBe(0);
      expect(fs.existsSync(path.join(dir, 'merged', 'model.safetensors'))).toBe(true);
      const bad = runCli(['export', '--model', hf, '--adapter', path.join(dir, 'nope'), '--output', path.join(dir, 'x.gguf')]);
      expect(bad.code).toBe(1);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('export --format gguf writes the merged model as a Q4_K_M GGUF; from a Hugging Face model it is a one-line E_UNSUPPORTED that names the way round', async () => {
    const { loadModel, getPeftModel, readGguf } = await import('../../lib');
    const { MODELS_DIR } = await import('../helpers/models');
    const os = await import('node:os');
    const gguf = path.join(MODELS_DIR, 'stories260K', 'stories260K.gguf');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cli-export-gguf-'));
    try {
      const peft = getPeftModel(await loadModel(gguf), { peft_type: 'LORA', r: 2, target_modules: ['q_proj', 'v_proj'] });
      await peft.saveAdapter(path.join(dir, 'adapter'));
      const out = path.join(dir, 'merged-q4km.gguf');
      const r = runCli(['export', '--model', gguf, '--adapter', path.join(dir, 'adapter'), '--format', 'gguf', '--quant', 'Q4_K_M', '--output', out]);
      expect([r.code, r.stderr]).toEqual([0, '']);
      const g = readGguf(out);
      expect(g.metadata['general.file_type']).toBe(15);
      expect(new Set(g.tensorInfos.map((t) => t.type))).toEqual(new Set(['F32', 'F16', 'Q5_0', 'Q8_0'])); // 64-wide rows: Q4_K_M's fallbacks
      g.dispose();
      const hf = runCli(['export', '--model', path.join(MODELS_DIR, 'stories260K-hf'), '--adapter', path.join(dir, 'adapter'), '--output', out, '--format', 'gguf']);
      expect(hf.code).toBe(1);
      expect(hf.stderr.trim().split('\n')).toHaveLength(1);
      expect(hf.stderr).toContain('convert_hf_to_gguf.py');
      expect(hf.stderr).toContain('[E_UNSUPPORTED]');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
