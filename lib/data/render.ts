/**
 * Turns a record into text segments, each marked as counting towards the loss or not. The token-level
 * mask follows in encode.ts; keeping the text whole until then lets the tokenizer see it as one string.
 */
import { PeftError } from '../errors';
import type { ChatMessage, Tokenizer } from '../models/tokenizer';
import type { ParsedRecord } from './records';
import type { RecordSource } from './types';

/** A piece of the rendered text and whether its tokens count towards the loss. */
export interface Segment {
  text: string;
  loss: boolean;
}

/**
 * The Alpaca prompt for records with a non-empty input, as Stanford Alpaca's README documents it (the
 * response starts on the line after "### Response:").
 */
export const ALPACA_PROMPT_WITH_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';

/** The Alpaca prompt for records without an input. */
export const ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:\n';

/** The Alpaca prompt of an instruction and an optional input. */
export function alpacaPrompt(instruction: string, input: string): string {
  // Function replacers, so that `$&` and friends in the user's text stay literal.
  const template = input === '' ? ALPACA_PROMPT_NO_INPUT : ALPACA_PROMPT_WITH_INPUT;
  return template.replace('{instruction}', () => instruction).replace('{input}', () => input);
}

const where = (source: RecordSource) => `${source.file} line ${source.line}`;

function render(tokenizer: Tokenizer, messages: ChatMessage[], addGenerationPrompt: boolean, source: RecordSource): string {
  try {
    return tokenizer.applyChatTemplate(messages, { addGenerationPrompt });
  } catch (err) {
    if (err instanceof PeftError) throw new PeftError(`${where(source)}: ${err.message}`, err.code);
    throw err;
  }
}

/** Length of `text` without its trailing whitespace, but never shorter than `floor`. */
function trimEnd(text: string, floor: number): number {
  let end = text.length;
  while (end > floor && /\s/.test(text[end - 1])) end--;
  return end;
}

/**
 * Segments of a chat rendered with the tokenizer's template. Each assistant turn's span is found by
 * rendering prefixes: the conversation up to the turn with the generation prompt gives where the
 * reply starts, the conversation through the turn gives where it ends (including the template's
 * end-of-turn marker, which the model must learn to emit; trailing whitespace after it is left out).
 * A template whose prefix renderings are not prefixes of the whole cannot be masked this way: E_UNSUPPORTED.
 */
export function chatSegments(tokenizer: Tokenizer, messages: ChatMessage[], trainOnPrompt: boolean, source: RecordSource): Segment[] {
  const full = render(tokenizer, messages, false, source);
  if (trainOnPrompt) return [{ text: full, loss: true }];
  const segments: Segment[] = [];
  let done = 0;
  messages.forEach((message, i) => {
    if (message.role !== 'assistant') return;
    const before = render(tokenizer, messages.slice(0, i), true, source);
    const through = render(tokenizer, messages.slice(0, i + 1), false, source);
    if (!full.startsWith(before) || !full.startsWith(through) || before.length < done || through.length < before.length) {
      throw new PeftError(
        `${where(source)}: the chat template does not render conversations incrementally (the conversation up to ` +
          `message ${i} is not a prefix of the whole), so the assistant turns cannot be located; use trainOnPrompt or the completion format`,
        'E_UNSUPPORTED',
      );
    }
    const end = trimEnd(through, before.length);
    segments.push({ text: full.slice(done, before.length), loss: false }, { text: full.slice(before.length, end), loss: true });
    done = end;
  });
  segments.push({ text: full.slice(done), loss: false });
  return segments;
}

/** The segments of any record (chat needs the tokenizer's template). */
export function recordSegments(record: ParsedRecord, tokenizer: Tokenizer, trainOnPrompt: boolean, source: RecordSource): Segment[] {
  switch (record.format) {
    case 'text':
      return [{ text: record.text, loss: true }];
    case 'completion':
      // Joined as is, as the prompt would be followed by the generation: put any space or newline in the data.
      return [
        { text: record.prompt, loss: trainOnPrompt },
        { text: record.completion, loss: true },
      ];
    case 'alpaca':
      return [
        { text: alpacaPrompt(record.instruction, record.input), loss: trainOnPrompt },
        { text: record.output, loss: true },
      ];
    case 'classification':
      return [{ text: record.text, loss: false }];
    case 'chat':
      return chatSegments(tokenizer, record.messages, trainOnPrompt, source);
  }
}
