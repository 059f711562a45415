/**
 * Applying a PEFT config to a model: choosing the modules, creating (or taking loaded) adapter
 * weights and attaching them to the native layers, and making the trained copies of base
 * parameters that BitFit, LayerNorm tuning, LoRA's `bias` and `modules_to_save` train.
 * @internal
 */
import { PeftError } from '../errors';
import type { Model } from '../models/model';
import { handleOf, tensor, Tensor } from '../tensor';
import type { BottleneckConfig, IA3Config, LoraConfig, PeftConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig } from './config';
import { LstmPromptEncoder, MlpPromptEncoder, PrefixProjection, type PromptEncoder } from './prompt-encoder';
import { expertParts, expertTargets, splitExpertFactors, type ExpertFactors, type ExpertTarget } from './expert-params';
import { initLora } from './lora-init';
import { checkAdapterName, FILE_PREFIX, ia3Vector, loraA, loraB, loraMagnitude, moduleOf, promptEmbeddings } from './names';
import { SeededRandom } from './random';
import { matchesTarget, patternValue, selectModules } from './targets';

/** Adapter weights independent of any file layout. */
export interface AdapterTensors {
  lora: Map<string, { a: Tensor; b: Tensor; magnitude?: Tensor }>;
  ia3: Map<string, Tensor>;
  prompt?: Tensor;
  /** Bottleneck adapters by site (model.layers.N.attn_adapter / mlp_adapter). */
  bottleneck: Map<string, { downWeight?: Tensor; downBias?: Tensor; upWeight?: Tensor; upBias?: Tensor }>;
  /** Base parameter name → trained value (modules_to_save, LayerNorm tuning, BitFit, LoRA bias). */
  copies: Map<string, Tensor>;
}

export interface AdapterState {
  name: string;
  config: PeftConfig;
  /** Modules holding this adapter's LoRA or IA3 weights. */
  modules: string[];
  /**
   * The native parameters this adapter owns, by name. Their values live only in the native model
   * (which holds the one parameter list); adapterWeights() reads them when needed.
   */
  paramNames: Set<string>;
  /** Base parameter name → this adapter's copy, swapped in while the adapter is active. */
  copies: Map<string, Tensor>;
  /** IA3: the modules whose input (not output) is scaled. */
  feedforward: Set<string>;
  /** Prefix projection / P-tuning: the encoder that produces the native parameter `encoderOutput`. */
  encoder?: PromptEncoder;
  encoderOutput?: string;
  trainable: boolean;
  /** LoRA with target_parameters: the fused expert tensors it adapts (their modules are in `modules`). */
  experts?: ExpertTarget[];
}

// Hugging Face PEFT's default targets per architecture.
const DEFAULTS = {
  llama: { lora: ['q_proj', 'v_proj'], ia3: ['k_proj', 'v_proj', 'down_proj'], ia3Ff: ['down_proj'], ln: ['input_layernorm', 'post_attention_layernorm', 'norm'] },
  gpt2: { lora: ['c_attn'], ia3: ['c_attn', 'mlp.c_proj'], ia3Ff: ['mlp.c_proj'], ln: ['ln_1', 'ln_2', 'ln_f'] },
  bert: { lora: ['query', 'value'], ia3: ['key', 'value', 'output.dense'], ia3Ff: ['output.dense'], ln: ['LayerNorm'] },
};
// Phi-3's attention is one fused projection.
const PHI3_DEFAULTS = { ...DEFAULTS.llama, lora: ['qkv_proj'], ia3: ['qkv_proj', 'down_proj'] };
const defaultsOf = (model: Model) => (model.config.fusedProjections ? PHI3_DEFAULTS : DEFAULTS[model.config.architecture]);
const EMBED_MODULES = { llama: 'model.embed_tokens', gpt2: 'transformer.wte', bert: 'bert.embeddings.word_embeddings' };
const embedModule = (model: Model) => EMBED_MODULES[model.config.architecture];
const LAYER_PREFIXES = { llama: 'model.layers', gpt2: 'transformer.h', bert: 'bert.encoder.layer' };

function copyOf(t: Tensor): Tensor {
  return tensor(t.toFloat32Array(), t.shape);
}

function linearNames(model: Model): string[] {
  return model.nativeModel.linearModules().map((m) => m.name);
}

/** Trained copies of base parameters: those named in `params`, from `loaded` where given. */
function makeCopies(model: Model, params: string[], loaded: AdapterTensors | undefined, what: string): Map<string, Tensor> {
  const copies = new Map<string, Tensor>();
  for (const name of params) {
    const base = model.parameter(name);
    if (base.dtype !== 'f32') throw new PeftError(`Cannot train ${name} (${what}): it is stored as ${base.dtype}, and trained parameters are f32`, 'E_DTYPE');
    const given = loaded?.copies.get(name);
    if (given && given.shape.join() !== base.shape.join()) {
      throw new PeftError(`Expected shape [${base.shape}] for ${name} but the adapter has [${given.shape}]`, 'E_SHAPE');
    }
    copies.set(name, given ? copyOf(given) : copyOf(base));
  }
  return copies;
}

export function modulesToSave(model: Model, config: PeftConfig): string[] {
  const modules = [...new Set(model.parameterNames().map(moduleOf))];
  // As PEFT does for SEQ_CLS, the classification head trains (and is saved) with every adapter.
  const head = config.task_type === 'SEQ_CLS' ? ['classifier', 'score'].filter((h) => modules.includes(h)) : [];
  const wanted = [...(config.modules_to_save ?? []), ...head];
  if (!wanted.length) return [];
  const chosen = selectModules(modules, { targets: wanted }, 'modules_to_save');
  if (chosen.includes('lm_head') && model.config.tieWordEmbeddings) {
    throw new PeftError('Cannot put lm_head in modules_to_save: its weight is tied to model.embed_tokens (list model.embed_tokens instead)', 'E_CONFIG');
  }
  return model.parameterNames().filter((p) => chosen.includes(moduleOf(p)));
}

function attachLora(model: Model, name: string, config: LoraConfig, rng: SeededRandom, loaded?: AdapterTensors): { modules: string[]; experts: ExpertTarget[] } {
  const experts = expertTargets(model, config);
  if (loaded && experts.length) loaded = { ...loaded, lora: new Map(loaded.lora) };
  const expertModules = attachExpertLora(model, name, config, experts, rng, loaded);
  // With target_parameters alone (no target_modules), PEFT adapts only those parameters.
  const modules = config.target_modules === null && experts.length ? [] : attachModuleLora(model, name, config, rng, loaded);
  return { modules: [...modules, ...expertModules], experts };
}

/**
 * LoRA on the fused expert parameters (expert-params.ts) as LoRA on each expert's w1 / w3 / w2, w3
 * sharing w1's A. Removes the tensors it used from `loaded`. Returns the modules it adapted.
 */
function attachExpertLora(model: Model, name: string, config: LoraConfig, targets: ExpertTarget[], rng: SeededRandom, loaded?: AdapterTensors): string[] {
  const r = config.r!;
  const scaling = config.use_rslora ? config.lora_alpha! / Math.sqrt(r) : config.lora_alpha! / r;
  const modules: string[] = [];
  for (const t of targets) {
    let factors: ExpertFactors;
    const given = loaded?.lora.get(t.fileModule);
    if (loaded) {
      if (!given) throw new PeftError(`The adapter file has no tensor ${FILE_PREFIX}${t.fileModule}.lora_A.weight, which its config (target_parameters: ${t.parameter}) needs`, 'E_FORMAT');
      loaded.lora.delete(t.fileModule);
      factors = splitExpertFactors(t, r, given.a, given.b);
    } else {
      factors = { a: [], b: [] };
      for (let e = 0; e < t.experts; e++) {
        const init = initLora(config.init_lora_weights ?? true, { out: t.rows, in: t.cols, r }, scaling, rng, () => {
          throw new PeftError(`init_lora_weights "${config.init_lora_weights}" is not available for target_parameters`, 'E_UNSUPPORTED');
        }, t.fileModule);
        factors.a.push(init.a.toFloat32Array());
        factors.b.push(init.b.toFloat32Array());
      }
    }
    for (let e = 0; e < t.experts; e++) {
      for (const [i, part] of expertParts(t, e, name).entries()) {
        const rows = part.rows[1] - part.rows[0];
        const b = tensor(factors.b[e].slice(part.rows[0] * r, part.rows[1] * r), [rows, r]);
        const a = i === 0 ? tensor(factors.a[e], [r, t.cols]) : null;
        model.nativeModel.addLora(part.module, name, a ? handleOf(a, 'A') : null, handleOf(b, 'B'), null,
          { scaling, dropout: 0, useDora: false, ...(i > 0 ? { shareA: expertParts(t, e, name)[0].module } : {}) });
        modules.push(part.module);
      }
    }
  }
  return modules;
}

function attachModuleLora(model: Model, name: string, config: LoraConfig, rng: SeededRandom, loaded?: AdapterTensors): string[] {
  const nativeModel = model.nativeModel;
  const targets = config.target_modules ?? defaultsOf(model).lora;
  const EMBED = embedModule(model);
  const available = [...linearNames(model), EMBED];
  if (loaded) {
    const unknown = [...loaded.lora.keys()].filter((m) => !available.includes(m));
    if (unknown.length) throw new PeftError(`The adapter has weights for ${unknown[0]}, which this model does not have: it was made for another base model`, 'E_CONFIG');
  }
  const selected = selectModules(available, {
    targets,
    exclude: config.exclude_modules,
    layersToTransform: config.layers_to_transform,
    layersPattern: config.layers_pattern,
  });
  // 'all-linear' means linear layers; the embeddings only when named.
  const modules = targets === 'all-linear' ? selected.filter((m) => m !== EMBED) : selected;
  if (loaded) {
    const missing = modules.find((m) => !loaded.lora.has(m));
    if (missing) throw new PeftError(`The adapter file has no tensor ${FILE_PREFIX}${missing}.lora_A.weight, which its config (target_modules) needs`, 'E_FORMAT');
    const extra = [...loaded.lora.keys()].find((m) => !modules.includes(m));
    if (extra) throw new PeftError(`The adapter file has weights for ${extra}, which its config does not target`, 'E_FORMAT');
  }
  const shapes = new Map(nativeModel.linearModules().map((m) => [m.name, m]));
  for (const module of modules) {
    if (module === EMBED) {
      attachEmbeddingLora(model, name, config, rng, loaded?.lora.get(module));
      continue;
    }
    const shape = shapes.get(module)!;
    const given = loaded?.lora.get(module);
    const r = patternValue(module, config.rank_pattern ?? {}, config.r!);
    const alpha = patternValue(module, config.alpha_pattern ?? {}, config.lora_alpha!);
    const scaling = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
    let a: Tensor, b: Tensor;
    if (given) {
      const expectA = [r, shape.inFeatures].join(), expectB = [shape.outFeatures, r].join();
      if (given.a.shape.join() !== expectA) throw new PeftError(`Expected shape [${expectA}] for ${FILE_PREFIX}${module}.lora_A.weight but the adapter has [${given.a.shape}]`, 'E_SHAPE');
      if (given.b.shape.join() !== expectB) throw new PeftError(`Expected shape [${expectB}] for ${FILE_PREFIX}${module}.lora_B.weight but the adapter has [${given.b.shape}]`, 'E_SHAPE');
      a = copyOf(given.a);
      b = copyOf(given.b);
    } else {
      const weightName = `${module}.weight`;
      const init = initLora(config.init_lora_weights ?? true, { out: shape.outFeatures, in: shape.inFeatures, r }, scaling, rng,
        () => model.parameter(weightName).toFloat32Array(), module);
      a = init.a;
      b = init.b;
      if (init.residual) {
        const base = model.parameter(weightName);
        if (base.dtype !== 'f32') throw new PeftError(`${config.init_lora_weights} initialisation rewrites ${weightName}, which needs f32 weights but it is ${base.dtype}`, 'E_DTYPE');
        model.replaceParameter(weightName, tensor(init.residual, base.shape));
      }
    }
    let magnitude: Tensor | null = null;
    if (config.use_dora && given) {
      if (!given.magnitude) throw new PeftError(`The adapter has no lora_magnitude_vector for ${module}, which DoRA (use_dora) needs`, 'E_FORMAT');
      if (given.magnitude.shape.join() !== String(shape.outFeatures)) {
        throw new PeftError(`Expected lora_magnitude_vector of shape [${shape.outFeatures}] for ${module} but the adapter has [${given.magnitude.shape}]`, 'E_SHAPE');
      }
      magnitude = copyOf(given.magnitude);
    }
    nativeModel.addLora(module, name, handleOf(a, 'A'), handleOf(b, 'B'), magnitude ? handleOf(magnitude, 'magnitude') : null,
      { scaling, dropout: config.lora_dropout ?? 0, useDora: config.use_dora ?? false });
  }
  return modules;
}

/** LoRA on the token embeddings: A [r, vocab] starts at zero and B [hidden, r] normal, as PEFT does. */
function attachEmbeddingLora(model: Model, name: string, config: LoraConfig, rng: SeededRandom, given?: { a: Tensor; b: Tensor }): void {
  const module = embedModule(model);
  const r = patternValue(module, config.rank_pattern ?? {}, config.r!);
  const alpha = patternValue(module, config.alpha_pattern ?? {}, config.lora_alpha!);
  const scaling = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;
  const V = model.config.vocabSize, H = model.config.hiddenSize;
  if (config.use_dora) throw new PeftError('DoRA on embedding layers is not supported; leave embed_tokens out of target_modules', 'E_UNSUPPORTED');
  let a: Tensor, b: Tensor;
  if (given) {
    if (given.a.shape.join() !== [r, V].join()) throw new PeftError(`Expected shape [${r},${V}] for ${FILE_PREFIX}${module}.lora_embedding_A but the adapter has [${given.a.shape}]`, 'E_SHAPE');
    if (given.b.shape.join() !== [H, r].join()) throw new PeftError(`Expected shape [${H},${r}] for ${FILE_PREFIX}${module}.lora_embedding_B but the adapter has [${given.b.shape}]`, 'E_SHAPE');
    a = copyOf(given.a);
    b = copyOf(given.b);
  } else {
    const init = config.init_lora_weights;
    if (init === 'pissa' || init === 'olora') throw new PeftError(`init_lora_weights "${init}" is for linear layers; leave embed_tokens out of target_modules`, 'E_UNSUPPORTED');
    a = tensor(init === false ? Float32Array.from({ length: r * V }, () => rng.normal()) : new Float32Array(r * V), [r, V]);
    b = tensor(Float32Array.from({ length: H * r }, () => rng.normal()), [H, r]);
  }
  model.nativeModel.addEmbeddingLora(name, handleOf(a, 'A'), handleOf(b, 'B'), scaling);
}

function attachIa3(model: Model, name: string, config: IA3Config, rng: SeededRandom, feedforwardOut: Set<string>, loaded?: AdapterTensors): string[] {
  const targets = config.target_modules ?? defaultsOf(model).ia3;
  const feedforward = config.feedforward_modules ?? (config.target_modules ? [] : defaultsOf(model).ia3Ff);
  const modules = loaded ? [...loaded.ia3.keys()] : selectModules(linearNames(model), { targets, exclude: config.exclude_modules });
  const shapes = new Map(model.nativeModel.linearModules().map((m) => [m.name, m]));
  for (const module of modules) {
    const shape = shapes.get(module);
    if (!shape) throw new PeftError(`The adapter has weights for ${module}, which this model does not have: it was made for another base model`, 'E_CONFIG');
    const ff = matchesTarget(module, feedforward);
    if (ff) feedforwardOut.add(module);
    if (ff && !matchesTarget(module, targets)) throw new PeftError(`feedforward_modules must be a subset of target_modules, but ${module} is not targeted`, 'E_CONFIG');
    const size = ff ? shape.inFeatures : shape.outFeatures;
    const given = loaded?.ia3.get(module);
    if (given && given.size !== size) throw new PeftError(`Expected ia3_l with ${size} values for ${module} but the adapter has [${given.shape}]`, 'E_SHAPE');
    const values = given ? given.toFloat32Array()
      : config.init_ia3_weights === false ? Float32Array.from({ length: size }, () => rng.normal()) : new Float32Array(size).fill(1);
    model.nativeModel.addIa3(module, name, handleOf(tensor(values, [size]), 'vector'), ff);
  }
  return modules;
}

function initialPrompt(model: Model, config: PromptTuningConfig, rng: SeededRandom): Tensor {
  const P = config.num_virtual_tokens, H = model.config.hiddenSize;
  const table = model.parameter(`${embedModule(model)}.weight`);
  const rows = (ids: number[]) => {
    const all = table.toFloat32Array();
    const out = new Float32Array(P * H);
    ids.forEach((id, i) => out.set(all.subarray(id * H, (id + 1) * H), i * H));
    return tensor(out, [P, H]);
  };
  if (config.prompt_tuning_init === 'TEXT') {
    if (!model.tokenizer) throw new PeftError('prompt_tuning_init "TEXT" needs the model\'s tokenizer, and this model has none', 'E_CONFIG');
    const ids = model.tokenizer.encode(config.prompt_tuning_init_text!);
    if (!ids.length) throw new PeftError('prompt_tuning_init_text encodes to no tokens', 'E_CONFIG');
    // As PEFT: truncate, or repeat the text's ids until there are enough.
    const repeated = Array.from({ length: P }, (_, i) => ids[i % ids.length]);
    return rows(repeated);
  }
  if (config.prompt_tuning_init === 'SAMPLE_VOCAB') {
    return rows(Array.from({ length: P }, () => Math.floor(rng.next() * model.config.vocabSize)));
  }
  return tensor(Float32Array.from({ length: P * H }, () => rng.normal()), [P, H]);
}

function attachBottleneck(model: Model, name: string, config: BottleneckConfig, rng: SeededRandom, loaded?: AdapterTensors): void {
  const H = model.config.hiddenSize;
  const width = Math.max(1, Math.floor(H / config.reduction_factor!));
  const layers = config.layers_to_transform === null || config.layers_to_transform === undefined
    ? [...Array(model.config.numLayers).keys()]
    : Array.isArray(config.layers_to_transform) ? config.layers_to_transform : [config.layers_to_transform];
  const sites: ('attn' | 'mlp')[] = config.bottleneck_type === 'houlsby' ? ['attn', 'mlp'] : ['mlp'];
  const expected = new Set<string>();
  for (const layer of layers) {
    if (layer >= model.config.numLayers) throw new PeftError(`Expected layer indices below ${model.config.numLayers} in layers_to_transform but received ${layer}`, 'E_CONFIG');
    for (const site of sites) {
      const key = `${LAYER_PREFIXES[model.config.architecture]}.${layer}.${site}_adapter`;
      expected.add(key);
      const given = loaded?.bottleneck.get(key);
      if (loaded && !given) throw new PeftError(`The adapter file has no tensors for ${key}, which its config needs`, 'E_FORMAT');
      const make = (t: Tensor | undefined, shape: number[], what: string, init: () => number) => {
        if (loaded) {
          if (!t) throw new PeftError(`The adapter file has no tensor ${FILE_PREFIX}${key}.${what}`, 'E_FORMAT');
          if (t.shape.join() !== shape.join()) throw new PeftError(`Expected shape [${shape}] for ${FILE_PREFIX}${key}.${what} but the adapter has [${t.shape}]`, 'E_SHAPE');
          return copyOf(t);
        }
        return tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, init), shape);
      };
      const downW = make(given?.downWeight, [width, H], 'adapter_down.weight', () => 0.02 * rng.normal());
      const downB = make(given?.downBias, [width], 'adapter_down.bias', () => 0);
      const upW = make(given?.upWeight, [H, width], 'adapter_up.weight', () => 0);
      const upB = make(given?.upBias, [H], 'adapter_up.bias', () => 0);
      model.nativeModel.addBottleneck(layer, site, name, handleOf(downW, 'down'), handleOf(downB, 'downBias'), handleOf(upW, 'up'),
        handleOf(upB, 'upBias'), { nonLinearity: config.non_linearity!, scaling: config.scaling!, parallel: config.mode === 'parallel' });
    }
  }
  const extra = loaded ? [...loaded.bottleneck.keys()].find((k) => !expected.has(k)) : undefined;
  if (extra) throw new PeftError(`The adapter file has weights for ${extra}, which its config does not place an adapter at (or this model lacks)`, 'E_FORMAT');
}

/** Prefix tuning: returns the encoder when the prefix is trained through a projection. */
function attachPrefix(model: Model, name: string, config: PrefixTuningConfig, seed: number, loaded?: AdapterTensors): PromptEncoder | undefined {
  const c = model.config;
  const tokenDim = c.numKvHeads * c.headDim;  // PEFT sizes the prefix by the key/value heads
  const width = c.numLayers * 2 * tokenDim;
  const P = config.num_virtual_tokens;
  let encoder: PromptEncoder | undefined;
  let kv: Tensor;
  if (loaded) {
    if (!loaded.prompt) throw new PeftError('The adapter file has no tensor prompt_embeddings, which prefix tuning needs', 'E_FORMAT');
    kv = copyOf(loaded.prompt);
  } else if (config.prefix_projection) {
    encoder = new PrefixProjection(`prompt_encoder.${name}`, P, tokenDim, config.encoder_hidden_size ?? c.hiddenSize, width, seed);
    kv = tensor(encoder.forward(), [P, width]);
  } else {
    const rng = new SeededRandom(seed);
    kv = tensor(Float32Array.from({ length: P * width }, () => rng.normal()), [P, width]);
  }
  if (kv.shape.join() !== [P, width].join()) throw new PeftError(`Expected prompt_embeddings of shape [${P},${width}] but the adapter has [${kv.shape}]`, 'E_SHAPE');
  model.nativeModel.addPrefix(name, handleOf(kv, 'kv'));
  return encoder;
}

/** P-tuning: virtual tokens from a prompt encoder (or, loaded, the encoder's saved output). */
function attachPromptEncoder(model: Model, name: string, config: PromptEncoderConfig, seed: number, loaded?: AdapterTensors): PromptEncoder | undefined {
  const P = config.num_virtual_tokens, H = model.config.hiddenSize;
  let encoder: PromptEncoder | undefined;
  let prompt: Tensor;
  if (loaded) {
    if (!loaded.prompt) throw new PeftError('The adapter file has no tensor prompt_embeddings, which P-tuning needs', 'E_FORMAT');
    prompt = copyOf(loaded.prompt);
  } else {
    const prefix = `prompt_encoder.${name}`, hidden = config.encoder_hidden_size ?? H;
    encoder = config.encoder_reparameterization_type === 'LSTM'
      ? new LstmPromptEncoder(prefix, P, H, hidden, config.encoder_num_layers ?? 2, seed)
      : new MlpPromptEncoder(prefix, P, H, hidden, seed);
    prompt = tensor(encoder.forward(), [P, H]);
  }
  if (prompt.shape.join() !== [P, H].join()) throw new PeftError(`Expected prompt_embeddings of shape [${P},${H}] but the adapter has [${prompt.shape}]`, 'E_SHAPE');
  model.nativeModel.addPrompt(name, handleOf(prompt, 'embeddings'));
  return encoder;
}

/** An adapter's native parameters as they are now, by name. */
export function adapterWeights(model: Model, state: AdapterState): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const p of model.nativeModel.parameters()) if (state.paramNames.has(p.name)) out.set(p.name, new Tensor(p.tensor));
  return out;
}

/** Attaches adapter `name` to the model and returns its state. */
export function attachAdapter(model: Model, name: string, config: PeftConfig, seed: number, loaded?: AdapterTensors): AdapterState {
  checkAdapterName(name);
  const rng = new SeededRandom(seed);
  let modules: string[] = [];
  let copyParams: string[] = modulesToSave(model, config);
  const feedforward = new Set<string>();
  let encoder: PromptEncoder | undefined;
  let encoderOutput: string | undefined;
  let experts: ExpertTarget[] | undefined;
  const baseNames = model.parameterNames();
  switch (config.peft_type) {
    case 'LORA': {
      const attached = attachLora(model, name, config, rng, loaded);
      modules = attached.modules;
      if (attached.experts.length) experts = attached.experts;
      if (config.bias === 'all') copyParams.push(...baseNames.filter((p) => p.endsWith('.bias')));
      if (config.bias === 'lora_only') copyParams.push(...modules.map((m) => `${m}.bias`).filter((p) => baseNames.includes(p)));
      break;
    }
    case 'IA3':
      modules = attachIa3(model, name, config, rng, feedforward, loaded);
      break;
    case 'PROMPT_TUNING': {
      const prompt = loaded?.prompt ? copyOf(loaded.prompt) : initialPrompt(model, config, rng);
      const expected = [config.num_virtual_tokens, model.config.hiddenSize].join();
      if (prompt.shape.join() !== expected) throw new PeftError(`Expected prompt_embeddings of shape [${expected}] but the adapter has [${prompt.shape}]`, 'E_SHAPE');
      model.nativeModel.addPrompt(name, handleOf(prompt, 'embeddings'));
      break;
    }
    case 'BOTTLENECK':
      attachBottleneck(model, name, config, rng, loaded);
      break;
    case 'PREFIX_TUNING':
      encoder = attachPrefix(model, name, config, seed, loaded);
      encoderOutput = `prefix_kv.${name}`;
      break;
    case 'P_TUNING':
      encoder = attachPromptEncoder(model, name, config, seed, loaded);
      encoderOutput = promptEmbeddings(name);
      break;
    case 'LN_TUNING': {
      const norms = [...new Set(baseNames.filter((p) => /(norm|LayerNorm|\bln_\w+)\.(weight|bias)$/.test(p)).map(moduleOf))];
      const chosen = selectModules(norms, { targets: config.target_modules ?? defaultsOf(model).ln, exclude: config.exclude_modules });
      copyParams.push(...baseNames.filter((p) => chosen.includes(moduleOf(p))));
      break;
    }
    case 'BITFIT': {
      const biases = baseNames.filter((p) => p.endsWith('.bias'));
      const chosen = config.target_modules ? biases.filter((p) => matchesTarget(moduleOf(p), config.target_modules!)) : biases;
      if (!chosen.length) throw new PeftError('BitFit trains bias terms, but this model has no biases' + (config.target_modules ? ' in the targeted modules' : ''), 'E_CONFIG');
      copyParams.push(...chosen);
      break;
    }
  }
  copyParams = [...new Set(copyParams)];
  const copies = makeCopies(model, copyParams, loaded, config.peft_type);
  const mine = new Set<string>();
  for (const m of modules) for (const n of [loraA(m, name), loraB(m, name), loraMagnitude(m, name), ia3Vector(m, name)]) mine.add(n);
  for (const embed of Object.values(EMBED_MODULES)) {
    mine.add(`${embed}.lora_embedding_A.${name}`);
    mine.add(`${embed}.lora_embedding_B.${name}`);
  }
  mine.add(promptEmbeddings(name));
  mine.add(`prefix_kv.${name}`);
  const bottleneck = new RegExp(`^(?:model\\.layers|transformer\\.h|bert\\.encoder\\.layer)\\.\\d+\\.(attn|mlp)_adapter\\.adapter_(down|up)\\.${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.(weight|bias)$`);
  const paramNames = new Set(model.nativeModel.parameters().filter((p) => mine.has(p.name) || bottleneck.test(p.name)).map((p) => p.name));
  return { name, config, modules, paramNames, copies, feedforward, encoder, encoderOutput, trainable: !config.inference_mode, ...(experts ? { experts } : {}) };
}
