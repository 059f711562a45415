// The server's handler mounted inside another Node HTTP application (as Express's app.use('/llm',
// handler) does: the mount path is stripped from req.url before the handler sees it), next to that
// application's own routes; and the engine and server dispose cleanly.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

import OpenAI from 'openai';

import { createServer, loadModel, type Model } from '../../lib';
import { STORIES_HF_DIR } from '../helpers/models';

let model: Model;
beforeAll(async () => {
  model = await loadModel(STORIES_HF_DIR);
});
afterAll(() => model.dispose());

describe('createServer().handler in another application', () => {
  it('serves under a mount path beside the host application routes', async () => {
    const llm = createServer(model, { modelName: 'stories' });
    const app = http.createServer((req, res) => {
      if (req.url === '/hello') return void res.end('host app');
      if (req.url?.startsWith('/llm/')) {
        req.url = req.url.slice('/llm'.length);
        return llm.handler(req, res);
      }
      res.writeHead(404).end();
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(app.address() as AddressInfo).port}`;
    try {
      expect(await (await fetch(`${base}/hello`)).text()).toBe('host app');
      const client = new OpenAI({ apiKey: 'x', baseURL: `${base}/llm/v1`, maxRetries: 0 });
      const out = await client.completions.create({ model: 'stories', prompt: 'Once upon a time', max_tokens: 12, temperature: 0 });
      const want = await model.generate('Once upon a time', { maxNewTokens: 12 });
      const promptText = model.tokenizer!.decode(model.tokenizer!.encode('Once upon a time'));
      expect(out.choices[0].text).toBe(want.text.slice(promptText.length));
      expect(llm.engine.stats().completed).toBe(1);
    } finally {
      await llm.close();
      await new Promise<void>((r) => app.close(() => r()));
    }
    // Closed: the engine takes no more requests, and the model is free for other calls.
    expect(() => llm.engine.stream({ prompt: 'x' })).toThrow(expect.objectContaining({ code: 'E_DISPOSED' }));
    expect((await model.generate('Tim', { maxNewTokens: 2 })).tokens).toHaveLength(2);
  });
});
