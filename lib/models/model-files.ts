/**
 * The files that travel with a saved model besides its weights: the tokenizer and generation
 * config of the source (copied from its directory, or built from a GGUF file's vocabulary), and the
 * source's config.json. Shared by exportMerged and saveQuantizedModel.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PeftError } from '../errors';
import { writeFileAtomic } from '../io/atomic';
import { readGguf } from '../io/gguf';
import { ggufTokenizerFiles } from './gguf-tokenizer';
import { resolveModel } from './hub';
import type { Model } from './model';

/** The tokenizer and generation files a model directory may hold besides its weights and config.json. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'added_tokens.json', 'generation_config.json'];

/** The local file or directory a model was loaded from, when there is one (hf: references from the cache only). */
export async function sourceLocation(model: Model): Promise<string | undefined> {
  const where = model.nameOrPath;
  if (!where) return undefined;
  try {
    return where.startsWith('hf:') ? await resolveModel(where, { offline: true, progress: false }) : where;
  } catch {
    return undefined;
  }
}

/**
 * Writes the tokenizer (and generation config) files the model came with into `dir`, each
 * atomically; returns the source's config.json, if it had one.
 */
export async function writeModelFiles(model: Model, dir: string): Promise<Record<string, unknown> | undefined> {
  const source = await sourceLocation(model);
  if (!source || !fs.existsSync(source)) return undefined;
  if (fs.statSync(source).isDirectory()) {
    for (const name of TOKENIZER_FILES) {
      const from = path.join(source, name);
      if (fs.existsSync(from)) writeFileAtomic(path.join(dir, name), fs.readFileSync(from));
    }
    const configPath = path.join(source, 'config.json');
    return fs.existsSync(configPath) ? JSON.parse(fs.readFileSync(configPath, 'utf8')) : undefined;
  }
  if (source.endsWith('.gguf') && model.tokenizer) {
    const file = readGguf(source);
    try {
      const { tokenizer, tokenizerConfig } = ggufTokenizerFiles(file.metadata as Record<string, unknown>);
      writeFileAtomic(path.join(dir, 'tokenizer.json'), JSON.stringify(tokenizer));
      writeFileAtomic(path.join(dir, 'tokenizer_config.json'), JSON.stringify(tokenizerConfig, null, 2) + '\n');
    } catch (err) {
      // A vocabulary we cannot turn into tokenizer.json: the weights are still worth saving.
      if (!(err instanceof PeftError && err.code === 'E_UNSUPPORTED')) throw err;
    } finally {
      file.dispose();
    }
  }
  return undefined;
}
