/**
 * Which modules a PEFT config applies to, with PEFT's matching rules: a list entry matches a module
 * whose name equals it or ends with "." + it; a string is a regular expression that must match the
 * whole name; 'all-linear' is every linear layer except the output head. `layers_to_transform`
 * keeps only modules in the listed layer indices; rank_pattern / alpha_pattern keys match name
 * suffixes as regular expressions.
 */
import { PeftError } from '../errors';
import { preview } from '../validate';
import type { TargetModules } from './config';

/** Names of output heads, which 'all-linear' leaves out. */
const OUTPUT_HEADS = new Set(['lm_head', 'score', 'classifier', 'cls', 'qa_outputs']);

export function matchesTarget(name: string, targets: TargetModules): boolean {
  if (typeof targets === 'string') {
    if (targets === 'all-linear') return !OUTPUT_HEADS.has(name.split('.').pop() ?? name);
    return new RegExp(`^(?:${targets})$`).test(name);
  }
  return targets.some((t) => name === t || name.endsWith(`.${t}`));
}

/** Names of the module lists that hold a model's layers, when layers_pattern is not given. */
const COMMON_LAYER_PATTERNS = ['layers', 'h', 'block', 'blocks', 'layer'];

/** The layer index in a module name such as model.layers.3.self_attn.q_proj, or null. */
export function layerIndex(name: string, layersPattern: string[] | string | null): number | null {
  const patterns = layersPattern === null ? COMMON_LAYER_PATTERNS : Array.isArray(layersPattern) ? layersPattern : [layersPattern];
  const escaped = `(?:${patterns.map((p) => p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`;
  const m = new RegExp(`^(?:.*\\.)?${escaped}\\.(\\d+)\\.`).exec(name);
  return m ? Number(m[1]) : null;
}

/** The value of the first pattern key matching the module name as a suffix, or the fallback. */
export function patternValue(name: string, patterns: Record<string, number>, fallback: number): number {
  for (const [key, value] of Object.entries(patterns)) {
    if (new RegExp(`(?:^|\\.)(?:${key})$`).test(name)) return value;
  }
  return fallback;
}

export interface TargetSelection {
  targets: TargetModules;
  exclude?: TargetModules | null;
  layersToTransform?: number[] | number | null;
  layersPattern?: string[] | string | null;
}

/**
 * The modules of `available` that a config targets. Targets that match nothing are an error that
 * lists the model's module names.
 */
export function selectModules(available: string[], sel: TargetSelection, field = 'target_modules'): string[] {
  const layers = sel.layersToTransform === undefined || sel.layersToTransform === null ? null
    : new Set(Array.isArray(sel.layersToTransform) ? sel.layersToTransform : [sel.layersToTransform]);
  const chosen = available.filter((name) => {
    if (!matchesTarget(name, sel.targets)) return false;
    if (sel.exclude && matchesTarget(name, sel.exclude)) return false;
    if (layers) {
      const index = layerIndex(name, sel.layersPattern ?? null);
      if (index === null || !layers.has(index)) return false;
    }
    return true;
  });
  if (!chosen.length) {
    const kinds = [...new Set(available.map((n) => n.replace(/\.\d+\./, '.N.')))];
    throw new PeftError(
      `Expected ${field} ${preview(sel.targets, 200)} to match at least one module of the model, but it matches none. ` +
        `The model's modules are: ${kinds.join(', ')}`,
      'E_CONFIG',
    );
  }
  return chosen;
}
