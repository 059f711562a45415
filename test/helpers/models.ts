/**
 * The real pretrained models the tests read (never copied into the repository): `../shared/models`
 * beside the checkout, or PEFT_TEST_MODELS.
 */
import * as path from 'node:path';

export const MODELS_DIR = process.env.PEFT_TEST_MODELS ?? path.resolve(__dirname, '..', '..', '..', 'shared', 'models');
export const STORIES_HF_DIR = path.join(MODELS_DIR, 'stories260K-hf');
export const STORIES_GGUF = path.join(MODELS_DIR, 'stories260K', 'stories260K.gguf');
