// End to end with the official OpenAI Node SDK against the real talkserve binary and the real
// stories260K model: what a client written for api.openai.com sees when pointed at talkserve.
//
//   TALKSERVE_BINARY=build/bin/talkserve TALKSERVE_MODELS_DIR=/path/to/models node --test
//
// Each suite starts its own server on a free loopback port (talkserve_server.mjs).

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import OpenAI from 'openai';

import { sharedDir, startServer } from './talkserve_server.mjs';

const MODEL = 'stories260K';
const GOLDEN_PROMPT = 'Once upon a time';
// llama2.c run.c -t 0 -n 64: 64 forward positions, so BOS + prompt + generated = 65 tokens.
const RUNC_SEQUENCE_TOKENS = 65;
// The reference output lives with the shared test data, not with the fetched models.
const golden = readFileSync(path.join(sharedDir, 'models/stories260K/golden_greedy.stdout'), 'utf8');

function client(baseURL, apiKey = 'sk-unused') {
  // No retries: a 5xx or 429 is a failure here, not something to paper over.
  return new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 60_000 });
}

describe('talkserve with the OpenAI SDK (no API keys configured)', () => {
  let server;
  let openai;
  before(async () => {
    server = await startServer();
    openai = client(server.baseURL);
  });
  after(async () => { await server?.stop(); });

  test('models.list contains stories260K', async () => {
    const ids = [];
    for await (const m of openai.models.list()) ids.push(m.id);
    assert.ok(ids.includes(MODEL), `models: ${ids.join(', ')}`);
    const m = await openai.models.retrieve(MODEL);
    assert.equal(m.id, MODEL);
    assert.equal(m.object, 'model');
  });

  test('completions.create greedy equals the llama2.c golden output', async () => {
    // The prompt's token count (BOS included) sets how many tokens run.c generated.
    const probe = await openai.completions.create({
      model: MODEL, prompt: GOLDEN_PROMPT, max_tokens: 1, temperature: 0,
    });
    const promptTokens = probe.usage.prompt_tokens;
    assert.ok(promptTokens > 1 && promptTokens < 16, `prompt_tokens ${promptTokens}`);

    const res = await openai.completions.create({
      model: MODEL,
      prompt: GOLDEN_PROMPT,
      max_tokens: RUNC_SEQUENCE_TOKENS - promptTokens,
      temperature: 0,
    });
    assert.equal(res.object, 'text_completion');
    assert.equal(res.model, MODEL);
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0].finish_reason, 'length');
    assert.equal(GOLDEN_PROMPT + res.choices[0].text + '\n', golden);
    assert.equal(res.usage.prompt_tokens, promptTokens);
    assert.equal(res.usage.completion_tokens, RUNC_SEQUENCE_TOKENS - promptTokens);
    assert.equal(res.usage.total_tokens, RUNC_SEQUENCE_TOKENS);
    assert.ok(golden.startsWith(GOLDEN_PROMPT + probe.choices[0].text));

    // Streamed, the same text arrives in pieces.
    const stream = await openai.completions.create({
      model: MODEL,
      prompt: GOLDEN_PROMPT,
      max_tokens: RUNC_SEQUENCE_TOKENS - promptTokens,
      temperature: 0,
      stream: true,
    });
    let text = '';
    let chunks = 0;
    let finish = null;
    for await (const chunk of stream) {
      chunks += 1;
      for (const c of chunk.choices) {
        text += c.text ?? '';
        if (c.finish_reason) finish = c.finish_reason;
      }
    }
    assert.ok(chunks > 10, `only ${chunks} chunks`);
    assert.equal(finish, 'length');
    assert.equal(GOLDEN_PROMPT + text + '\n', golden);
  });

  test('chat.completions.create, non-streamed and streamed, agree', async () => {
    const request = {
      model: MODEL,
      messages: [{ role: 'user', content: 'Tell me a story about a cat.' }],
      max_tokens: 24,
      temperature: 0,
    };
    const res = await openai.chat.completions.create(request);
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.model, MODEL);
    assert.equal(res.choices.length, 1);
    const choice = res.choices[0];
    assert.equal(choice.index, 0);
    assert.equal(choice.message.role, 'assistant');
    assert.equal(typeof choice.message.content, 'string');
    assert.ok(['stop', 'length'].includes(choice.finish_reason), choice.finish_reason);
    assert.ok(res.usage.prompt_tokens > 0);
    assert.ok(res.usage.completion_tokens > 0 && res.usage.completion_tokens <= 24);
    assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);

    const stream = await openai.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.length >= 3, `${chunks.length} chunks`);
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.id, chunks[0].id);
      assert.equal(c.model, MODEL);
    }
    // The role comes first, then content deltas, then the finish reason, then usage alone.
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const usageChunk = chunks.at(-1);
    assert.deepEqual(usageChunk.choices, []);
    assert.deepEqual(
      { p: usageChunk.usage.prompt_tokens, c: usageChunk.usage.completion_tokens },
      { p: res.usage.prompt_tokens, c: res.usage.completion_tokens });
    const choiceChunks = chunks.slice(0, -1);
    for (const c of choiceChunks) assert.ok(c.usage == null, 'usage only on the last chunk');
    const finishAt = choiceChunks.findIndex((c) => c.choices[0].finish_reason);
    assert.equal(finishAt, choiceChunks.length - 1, 'finish_reason on the last choice chunk only');
    assert.equal(choiceChunks[finishAt].choices[0].finish_reason, choice.finish_reason);
    const content = choiceChunks.map((c) => c.choices[0].delta.content ?? '').join('');
    assert.equal(content, choice.message.content);
    assert.ok(choiceChunks.filter((c) => c.choices[0].delta.content).length > 1,
      'content arrives as several deltas');
  });

  test('a bad temperature is a BadRequestError (400)', async () => {
    await assert.rejects(
      openai.chat.completions.create({
        model: MODEL, messages: [{ role: 'user', content: 'hi' }], temperature: 7,
      }),
      (err) => {
        assert.ok(err instanceof OpenAI.BadRequestError, `${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 400);
        assert.match(err.message, /temperature/);
        assert.equal(err.error?.type, 'invalid_request_error');
        return true;
      });
  });

  test('an unknown model is a NotFoundError (404)', async () => {
    await assert.rejects(
      openai.completions.create({ model: 'no-such-model', prompt: 'hi', max_tokens: 4 }),
      (err) => {
        assert.ok(err instanceof OpenAI.NotFoundError, `${err?.constructor?.name}: ${err}`);
        assert.equal(err.status, 404);
        return true;
      });
    await assert.rejects(openai.models.retrieve('no-such-model'), OpenAI.NotFoundError);
  });
});

describe('talkserve with the OpenAI SDK (an API key configured)', () => {
  const KEY = 'sk-e2e-test-key';
  let server;
  before(async () => {
    server = await startServer([
      '--set',
      `gateway.keys=[{name="e2e",key="${KEY}",tier="standard",rate_per_s=100.0,burst=100.0}]`,
    ]);
  });
  after(async () => { await server?.stop(); });

  test('a wrong key is an AuthenticationError (401), the right one works', async () => {
    await assert.rejects(client(server.baseURL, 'sk-wrong').models.list(), (err) => {
      assert.ok(err instanceof OpenAI.AuthenticationError, `${err?.constructor?.name}: ${err}`);
      assert.equal(err.status, 401);
      return true;
    });
    await assert.rejects(
      client(server.baseURL, 'sk-wrong').completions.create({
        model: MODEL, prompt: GOLDEN_PROMPT, max_tokens: 4,
      }),
      OpenAI.AuthenticationError);

    const good = client(server.baseURL, KEY);
    const res = await good.completions.create({
      model: MODEL, prompt: GOLDEN_PROMPT, max_tokens: 8, temperature: 0,
    });
    assert.ok(golden.startsWith(GOLDEN_PROMPT + res.choices[0].text));
  });
});
