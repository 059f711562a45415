import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { loadTokenizer, PeftError, Tokenizer } from '../../lib';
import { STORIES_HF_DIR } from '../helpers/models';

const HF_DIR = STORIES_HF_DIR;

describe('Tokenizer (tokenizer.json of stories260K)', () => {
  const tok = loadTokenizer(HF_DIR);
  const vocab: Record<string, number> = JSON.parse(fs.readFileSync(path.join(HF_DIR, 'tokenizer.json'), 'utf8')).model.vocab;

  it('reads the special tokens from tokenizer_config.json', () => {
    expect([tok.bosId, tok.eosId, tok.padId]).toEqual([vocab['<s>'], vocab['</s>'], undefined]);
    expect(tok.vocabSize).toBe(512);
  });

  it('encodes SentencePiece-style with a leading <s>, each id naming its vocabulary entry', () => {
    const ids = tok.encode('Once upon a time');
    expect(ids[0]).toBe(tok.bosId);
    // Whole words of this tiny vocabulary are single tokens with the ▁ word marker.
    expect(ids.slice(1).map((id) => tok.idToToken(id))).toEqual(['▁Once', '▁upon', '▁a', '▁time']);
    expect(ids.slice(1)).toEqual(['▁Once', '▁upon', '▁a', '▁time'].map((t) => vocab[t]));
    expect(tok.encode('Once upon a time', { addSpecialTokens: false })).toEqual(ids.slice(1));
  });

  it('falls back to bytes for characters outside the vocabulary, and decodes back to the text', () => {
    const text = 'Lily saw a 🐶 and said "wow!" — naïve café.';
    const ids = tok.encode(text);
    const pieces = ids.map((id) => tok.idToToken(id));
    // 🐶 is F0 9F 90 B6 in UTF-8.
    expect(pieces.join(' ')).toContain('<0xF0> <0x9F> <0x90> <0xB6>');
    expect(tok.decode(ids)).toBe(text);
    expect(tok.decode(ids, { skipSpecialTokens: false })).toBe(`<s> ${text}`);
  });

  it('round-trips a story', () => {
    const story = 'One day, a little girl named Lily found a needle in her room. She knew it was difficult to play with it because it was sharp.\nShe wanted to share it with her mom.';
    expect(tok.decode(tok.encode(story))).toBe(story);
  });

  it('refuses bad ids and a missing chat template with PeftErrors', () => {
    expect(() => tok.decode([1, 9999])).toThrow(PeftError);
    expect(() => tok.decode([1.5])).toThrow(/Expected a token id in \[0, 512\) for ids\[0\]/);
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'hi' }])).toThrow(/no chat_template/);
    expect(() => loadTokenizer(os.tmpdir())).toThrow(/Expected a tokenizer.json/);
  });

  it('refuses corrupt tokenizer.json contents when it is built, not when it is first used', () => {
    const json = () => JSON.parse(fs.readFileSync(path.join(HF_DIR, 'tokenizer.json'), 'utf8'));
    const codeOf = (j: Record<string, unknown>) => {
      try {
        Tokenizer.fromJSON(j);
        return 'built';
      } catch (e) {
        if (e instanceof PeftError) return e.code;
        throw e;
      }
    };
    const badId = json();
    badId.model.vocab['<0x35>'] = -1;
    expect(codeOf(badId)).toBe('E_FORMAT');
    const badTemplate = json(); // the library only trips over this while encoding
    badTemplate.post_processor.single = 1e20;
    expect(codeOf(badTemplate)).toBe('E_FORMAT');
    const farId = json(); // the size comes from the ids without walking up to the largest one
    farId.model.vocab['<0x35>'] = 123456789;
    const start = Date.now();
    expect(Tokenizer.fromJSON(farId).vocabSize).toBe(123456790);
    expect(Date.now() - start).toBeLessThan(2000);
  });

  it('renders a chat template from tokenizer_config.json', () => {
    const json = JSON.parse(fs.readFileSync(path.join(HF_DIR, 'tokenizer.json'), 'utf8'));
    const config = {
      bos_token: '<s>',
      eos_token: '</s>',
      chat_template:
        "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
    };
    const chat = Tokenizer.fromJSON(json, config);
    const text = chat.applyChatTemplate(
      [
        { role: 'user', content: 'Tell me a story.' },
        { role: 'assistant', content: 'Once upon a time...' },
      ],
      { addGenerationPrompt: true },
    );
    expect(text).toBe('<s><|user|>\nTell me a story.</s>\n<|assistant|>\nOnce upon a time...</s>\n<|assistant|>\n');
  });
});
