import { loadDataset, Tokenizer } from '../../lib';
import { chatTokenizer, stories, writeJsonl } from './fixtures';

// Chat templates as the model families publish them in tokenizer_config.json.
const CHATML =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const LLAMA3 =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + " +
  "'<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}" +
  "{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
const ZEPHYR =
  "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n" +
  "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n" +
  "{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";

const conversation = [
  { role: 'system', content: 'You tell short stories.' },
  { role: 'user', content: 'Tell me about a cat.' },
  { role: 'assistant', content: 'Once upon a time, a cat sat in the sun.\nIt was happy.' },
  { role: 'user', content: 'And then?' },
  { role: 'assistant', content: 'The cat went home to sleep.' },
];
const replies = [conversation[2].content, conversation[4].content];

/**
 * The expected labels, from the token structure alone: for each assistant header (found by `isAssistantHeader`
 * at a token index, returning the index just past the header), the tokens after it through the first `closeId`.
 */
function structuralLabels(ids: number[], isAssistantHeader: (i: number) => number | undefined, closeId: number): number[] {
  const labels = new Array<number>(ids.length).fill(-100);
  for (let i = 0; i < ids.length; i++) {
    const start = isAssistantHeader(i);
    if (start === undefined) continue;
    let t = start;
    for (; ids[t] !== closeId; t++) labels[t] = ids[t];
    labels[t] = ids[t];
  }
  return labels;
}

function check(tok: Tokenizer, ids: number[], labels: number[], expectedText: string, header: (i: number) => number | undefined, closeId: number, closeText: string) {
  // The rendering is the conversation as the template's authors write it out.
  expect(ids).toEqual(tok.encode(expectedText, { addSpecialTokens: false }));
  expect(labels).toEqual(structuralLabels(ids, header, closeId));
  // Each loss span is one reply and its end-of-turn marker.
  const spans: string[] = [];
  let current: number[] = [];
  labels.forEach((l) => {
    if (l !== -100) current.push(l);
    else if (current.length) (spans.push(tok.decode(current, { skipSpecialTokens: false })), (current = []));
  });
  if (current.length) spans.push(tok.decode(current, { skipSpecialTokens: false }));
  expect(spans).toEqual(replies.map((r) => r + closeText));
}

describe('chat records: loss on the assistant turns only', () => {
  it('ChatML', async () => {
    const tok = chatTokenizer(CHATML, ['<|im_start|>', '<|im_end|>']);
    const [IM_START, IM_END] = [512, 513];
    const NL = tok.tokenToId('<0x0A>');
    const file = writeJsonl('chat.jsonl', [{ messages: conversation }]);
    const ds = await loadDataset(file, tok);
    expect(ds.format).toBe('chat');
    const { inputIds, labels } = ds.examples[0];
    const text = conversation.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join('');
    const header = (i: number) => {
      if (inputIds[i] !== IM_START) return undefined;
      const nl = inputIds.indexOf(NL as number, i);
      return tok.decode(inputIds.slice(i + 1, nl)) === 'assistant' ? nl + 1 : undefined;
    };
    check(tok, inputIds, labels, text, header, IM_END, '<|im_end|>');
    // No BOS / EOS of our own: the template frames the chat.
    expect(inputIds[0]).toBe(IM_START);
  });

  it('Llama 3', async () => {
    const specials = ['<|begin_of_text|>', '<|start_header_id|>', '<|end_header_id|>', '<|eot_id|>'];
    const tok = chatTokenizer(LLAMA3, specials, { bos_token: '<|begin_of_text|>', eos_token: '<|eot_id|>' });
    const [, START, END, EOT] = [512, 513, 514, 515];
    const ds = await loadDataset([{ messages: conversation }], tok);
    const { inputIds, labels } = ds.examples[0];
    const text = '<|begin_of_text|>' + conversation.map((m) => `<|start_header_id|>${m.role}<|end_header_id|>\n\n${m.content.trim()}<|eot_id|>`).join('');
    // After <|end_header_id|> comes "\n\n": the word marker ▁ and two newline bytes in this vocabulary.
    const header = (i: number) => {
      if (inputIds[i] !== START) return undefined;
      const end = inputIds.indexOf(END, i);
      if (tok.decode(inputIds.slice(i + 1, end)) !== 'assistant') return undefined;
      expect(inputIds.slice(end + 1, end + 4).map((id) => tok.idToToken(id))).toEqual(['▁', '<0x0A>', '<0x0A>']);
      return end + 4;
    };
    check(tok, inputIds, labels, text, header, EOT, '<|eot_id|>');
  });

  it('Zephyr', async () => {
    const tok = chatTokenizer(ZEPHYR, ['<|system|>', '<|user|>', '<|assistant|>']);
    const ASSISTANT = 514;
    const NL = tok.tokenToId('<0x0A>') as number;
    const ds = await loadDataset([{ messages: conversation }], tok);
    const { inputIds, labels } = ds.examples[0];
    const text = conversation.map((m) => `<|${m.role}|>\n${m.content}</s>\n`).join('');
    const header = (i: number) => (inputIds[i] === ASSISTANT ? inputIds.indexOf(NL, i) + 1 : undefined);
    check(tok, inputIds, labels, text, header, tok.eosId as number, '</s>');
  });

  it('trains on every token with trainOnPrompt', async () => {
    const tok = chatTokenizer(CHATML, ['<|im_start|>', '<|im_end|>']);
    const ds = await loadDataset([{ messages: conversation }], tok, { trainOnPrompt: true });
    const { inputIds, labels } = ds.examples[0];
    expect(labels).toEqual([-100, ...inputIds.slice(1)]);
  });

  it('refuses bad messages, naming the file and line', async () => {
    const tok = chatTokenizer(CHATML, ['<|im_start|>', '<|im_end|>']);
    const file = writeJsonl('bad.jsonl', [
      { messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello' }] },
      { messages: [{ role: 'user', content: 'Hi' }, { role: 'bot', content: 'Hello' }] },
    ]);
    await expect(loadDataset(file, tok)).rejects.toThrow(
      `Expected one of "system", "user", "assistant" for the role of "messages"[1] on ${file} line 2 but received the string "bot"`,
    );
    await expect(loadDataset([{ messages: [] }], tok)).rejects.toThrow(
      'Expected a non-empty array of {"role","content"} for "messages" on <records> line 1 but received an array of length 0',
    );
    await expect(loadDataset([{ messages: 'hi' }], tok)).rejects.toMatchObject({ code: 'E_FORMAT' });
    await expect(loadDataset([{ messages: [{ role: 'user', content: 3 }] }], tok)).rejects.toThrow(
      'Expected a string for the content of "messages"[0] on <records> line 1 but received the number 3',
    );
    await expect(loadDataset([{ messages: [null] }], tok)).rejects.toMatchObject({ code: 'E_FORMAT' });
  });

  it('needs a chat template, and one that renders conversations incrementally', async () => {
    await expect(loadDataset([{ messages: conversation }], stories())).rejects.toMatchObject({ code: 'E_CONFIG', message: expect.stringMatching(/no chat_template/) });
    // A template that announces the number of messages first: a prefix of the chat is not a prefix of its rendering.
    const counting = chatTokenizer("{{ messages|length }}{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}", []);
    await expect(loadDataset([{ messages: conversation }], counting)).rejects.toMatchObject({
      code: 'E_UNSUPPORTED',
      message: expect.stringMatching(/^<records> line 1: the chat template does not render conversations incrementally/),
    });
    // The same template is fine when every token is trained.
    const ds = await loadDataset([{ messages: conversation }], counting, { trainOnPrompt: true });
    expect(ds.examples).toHaveLength(1);
  });
});
