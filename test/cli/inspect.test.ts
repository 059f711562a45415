import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { moduleType } from '../../lib/cli/inspect/summarize';
import { ensureBuilt } from '../helpers/built';
import { cliOk, runCli } from '../helpers/cli';
import { parseGguf } from '../helpers/gguf';
import { STORIES_GGUF, STORIES_HF_DIR } from '../helpers/models';
import { f32Bytes, parseSafetensors, writeSafetensorsJs } from '../helpers/safetensors-js';

let dir: string;
beforeAll(() => {
  ensureBuilt();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'peft-cli-inspect-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const inspectJson = (target: string, ...args: string[]) => JSON.parse(cliOk(['inspect', target, '--json', ...args]));
const numel = (shape: number[]) => shape.reduce((a, b) => a * b, 1);

describe('peft-native inspect', () => {
  it('a Hugging Face model: architecture, config, parameters by module type, dtype and file size', () => {
    const config = JSON.parse(fs.readFileSync(path.join(STORIES_HF_DIR, 'config.json'), 'utf8'));
    const weights = path.join(STORIES_HF_DIR, 'model.safetensors');
    const { tensors } = parseSafetensors(weights);
    const r = inspectJson(STORIES_HF_DIR);
    expect(r.kind).toBe('hf-model');
    expect(r.architecture).toBe(config.architectures[0]);
    expect(r.modelType).toBe(config.model_type);
    expect(r.config).toEqual(config);
    expect(r.tensorCount).toBe(tensors.size);
    expect(r.parameters).toBe([...tensors.values()].reduce((a, t) => a + numel(t.shape), 0));
    expect(r.parametersByDtype).toEqual({ F32: r.parameters });
    expect(r.fileSize).toBe(fs.statSync(weights).size);
    expect(r.bytes).toBe([...tensors.values()].reduce((a, t) => a + t.bytes.length, 0));
    expect(r.tensors).toBeUndefined();
    // Per module type, from the shapes config.json implies.
    const { hidden_size: h, intermediate_size: ff, num_hidden_layers: L, num_attention_heads: nh, num_key_value_heads: nkv, vocab_size: v } = config;
    const hd = config.head_dim ?? h / nh;
    expect(r.parametersByModule).toEqual({
      embed_tokens: v * h,
      q_proj: L * nh * hd * h,
      k_proj: L * nkv * hd * h,
      v_proj: L * nkv * hd * h,
      o_proj: L * h * nh * hd,
      gate_proj: L * ff * h,
      up_proj: L * ff * h,
      down_proj: L * h * ff,
      input_layernorm: L * h,
      post_attention_layernorm: L * h,
      norm: h,
    });
    const text = cliOk(['inspect', STORIES_HF_DIR]);
    expect(text).toContain(`architecture  LlamaForCausalLM (llama)`);
    expect(text).toContain(`parameters    ${r.parameters.toLocaleString('en-US')} in ${tensors.size} tensors`);
    expect(text).toMatch(/^ {2}hidden_size +64$/m);
    expect(text).not.toContain('tensors:\n');
  });

  it('a GGUF file: version, metadata summary, config keys and tensor totals', () => {
    const parsed = parseGguf(fs.readFileSync(STORIES_GGUF));
    const r = inspectJson(STORIES_GGUF, '--tensors');
    expect(r.kind).toBe('gguf');
    expect(r.ggufVersion).toBe(parsed.version);
    expect(r.architecture).toBe(parsed.metadata.get('general.architecture')!.value);
    expect(r.fileSize).toBe(fs.statSync(STORIES_GGUF).size);
    expect(r.tensorCount).toBe(parsed.tensors.length);
    expect(r.parameters).toBe(parsed.tensors.reduce((a, t) => a + numel(t.shape), 0));
    expect(r.tensors.map((t: { name: string; shape: number[] }) => [t.name, t.shape])).toEqual(parsed.tensors.map((t) => [t.name, t.shape]));
    // Config: the <arch>.* keys; integers as they are, float32 shown at their shortest.
    const arch = r.architecture;
    for (const [key, { type, value }] of parsed.metadata) {
      if (!key.startsWith(`${arch}.`)) continue;
      const shown = r.config[key.slice(arch.length + 1)];
      if (type === 'f32') expect(Math.fround(shown)).toBe(value);
      else expect(shown).toBe(value);
    }
    expect(r.config.embedding_length).toBe(64);
    // Long arrays are summarized, not dumped.
    const tokens = parsed.metadata.get('tokenizer.ggml.tokens')!.value as string[];
    expect(r.metadata['tokenizer.ggml.tokens']).toBe(`[array<string>, ${tokens.length} items]`);
    expect(r.metadata['tokenizer.ggml.model']).toBe(parsed.metadata.get('tokenizer.ggml.model')!.value);
    expect(r.parametersByModule.attn_q).toBe(5 * 64 * 64);
    expect(r.parametersByModule.token_embd).toBe(512 * 64);
  });

  it('a safetensors file: every tensor with shape and dtype, and totals', () => {
    const file = path.join(dir, 'mixed.safetensors');
    const i32 = new Uint8Array(Int32Array.from([1, 2, 3, 4, 5, 6]).buffer);
    writeSafetensorsJs(
      file,
      [
        ['encoder.layer.0.weight', { dtype: 'F32', shape: [2, 3], bytes: f32Bytes([1, 2, 3, 4, 5, 6]) }],
        ['encoder.layer.0.bias', { dtype: 'F32', shape: [2], bytes: f32Bytes([0, 1]) }],
        ['positions', { dtype: 'I32', shape: [6], bytes: i32 }],
        ['mask', { dtype: 'U8', shape: [2, 2, 2], bytes: new Uint8Array(8) }],
      ],
      { format: 'pt', note: '<hand-made>' },
    );
    const r = inspectJson(file);
    expect(r.kind).toBe('safetensors');
    expect(r.tensors).toEqual([
      { name: 'encoder.layer.0.weight', shape: [2, 3], dtype: 'F32', parameters: 6, bytes: 24 },
      { name: 'encoder.layer.0.bias', shape: [2], dtype: 'F32', parameters: 2, bytes: 8 },
      { name: 'positions', shape: [6], dtype: 'I32', parameters: 6, bytes: 24 },
      { name: 'mask', shape: [2, 2, 2], dtype: 'U8', parameters: 8, bytes: 8 },
    ]);
    expect(r.parameters).toBe(22);
    expect(r.bytes).toBe(64);
    expect(r.parametersByDtype).toEqual({ F32: 8, I32: 6, U8: 8 });
    expect(r.metadata).toEqual({ format: 'pt', note: '<hand-made>' });
    expect(r.fileSize).toBe(fs.statSync(file).size);
    const text = cliOk(['inspect', file]);
    expect(text).toMatch(/^ {2}encoder\.layer\.0\.weight +F32 +\[2, 3\]$/m);
    expect(text).toMatch(/^ {2}mask +U8 +\[2, 2, 2\]$/m);
  });

  it('a PEFT adapter directory: its config and LoRA tensors grouped by target and part', () => {
    const adapter = path.join(dir, 'adapter');
    fs.mkdirSync(adapter);
    const adapterConfig = { peft_type: 'LORA', r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: 'stories260K', task_type: 'CAUSAL_LM' };
    fs.writeFileSync(path.join(adapter, 'adapter_config.json'), JSON.stringify(adapterConfig));
    const entries: Array<[string, { dtype: string; shape: number[]; bytes: Uint8Array }]> = [];
    for (let layer = 0; layer < 2; layer++) {
      for (const [proj, out] of [['q_proj', 64], ['v_proj', 32]] as const) {
        const base = `base_model.model.model.layers.${layer}.self_attn.${proj}`;
        entries.push([`${base}.lora_A.weight`, { dtype: 'F32', shape: [2, 64], bytes: f32Bytes(new Array(128).fill(0.5)) }]);
        entries.push([`${base}.lora_B.weight`, { dtype: 'F32', shape: [out, 2], bytes: f32Bytes(new Array(out * 2).fill(0)) }]);
      }
    }
    writeSafetensorsJs(path.join(adapter, 'adapter_model.safetensors'), entries);
    const r = inspectJson(adapter);
    expect(r.kind).toBe('adapter');
    expect(r.architecture).toBe('LORA');
    expect(r.config).toEqual(adapterConfig);
    expect(r.tensorCount).toBe(8);
    expect(r.parametersByModule).toEqual({ 'q_proj.lora_A': 2 * 128, 'q_proj.lora_B': 2 * 128, 'v_proj.lora_A': 2 * 128, 'v_proj.lora_B': 2 * 64 });
    expect(r.parameters).toBe(entries.reduce((a, [, t]) => a + numel(t.shape), 0));
    expect(r.tensors.map((t: { name: string }) => t.name)).toEqual(entries.map(([n]) => n));
    const text = cliOk(['inspect', adapter]);
    expect(text).toContain('peft type     LORA');
    expect(text).toMatch(/^ {2}target_modules +\["q_proj","v_proj"\]$/m);
  });

  it('module types drop the parameter and layer numbers', () => {
    expect(moduleType('model.layers.12.self_attn.q_proj.weight')).toBe('q_proj');
    expect(moduleType('blk.0.attn_q.weight')).toBe('attn_q');
    expect(moduleType('lm_head.weight')).toBe('lm_head');
    expect(moduleType('x.q_proj.lora_A.weight', 2)).toBe('q_proj.lora_A');
    expect(moduleType('x.q_proj.lora_magnitude_vector', 2)).toBe('q_proj.lora_magnitude_vector');
    expect(moduleType('positions')).toBe('positions');
  });

  it('anything else: a one-line error and exit code 1', () => {
    const notes = path.join(dir, 'notes.txt');
    fs.writeFileSync(notes, 'hello');
    const empty = path.join(dir, 'empty-dir');
    fs.mkdirSync(empty);
    const pickle = path.join(dir, 'pickle-adapter');
    fs.mkdirSync(pickle);
    fs.writeFileSync(path.join(pickle, 'adapter_config.json'), '{"peft_type":"LORA"}');
    fs.writeFileSync(path.join(pickle, 'adapter_model.bin'), 'x');
    const cases: Array<[string, string]> = [
      [path.join(dir, 'nope'), `peft-native: Could not find ${path.join(dir, 'nope')} [E_IO]\n`],
      [notes, `peft-native: ${notes} is neither a GGUF file nor a .safetensors file [E_FORMAT]\n`],
      [empty, `peft-native: ${empty} has neither config.json (a model) nor adapter_config.json (an adapter) [E_FORMAT]\n`],
      [pickle, `peft-native: ${pickle} holds adapter_model.bin (a PyTorch pickle), which is not read; save the adapter with safe_serialization=True [E_UNSUPPORTED]\n`],
    ];
    for (const [target, message] of cases) {
      const r = runCli(['inspect', target]);
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(message);
    }
    const none = runCli(['inspect']);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('Missing path');
  });
});
