// End to end in a real browser: the demo page (web/, served by the binary at GET /) in
// headless Chromium (Debian's `chromium`, driven by the npm package playwright-core) against
// the real talkserve binary with the embedded models, over the live WebSocket GET /v1/stream.
//
//   TALKSERVE_BINARY=build/bin/talkserve TALKSERVE_MODELS_DIR=/path/to/models \
//     node --test demo_page.test.mjs
//
// TALKSERVE_CHROMIUM names the browser (default: chromium on the PATH, else /usr/bin/chromium);
// screenshots go to TALKSERVE_E2E_ARTIFACTS (default: the folder of this file) and their paths
// are printed.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import { sourceDir, startServer } from './talkserve_server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const artifactsDir = process.env.TALKSERVE_E2E_ARTIFACTS ?? here;
const webDir = path.join(sourceDir, 'web');
// A turn of the embedded models (stories260K, espeak-ng, the viseme renderer, x264) takes a
// few seconds on a laptop core; leave room for a slow, shared CI machine.
const TURN_MS = 120_000;

function chromiumPath() {
  if (process.env.TALKSERVE_CHROMIUM) return process.env.TALKSERVE_CHROMIUM;
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    return '/usr/bin/chromium';
  }
}

async function launch(extraArgs = []) {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: [
      '--autoplay-policy=no-user-gesture-required',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      ...extraArgs,
    ],
  });
}

// Opens the page, collects its console errors, and waits for the session to start.
async function openDemo(browser, origin) {
  const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console: ${m.text()}`); });
  await page.goto(`${origin}/`);
  await page.waitForFunction(() => window.talkDemo?.sessionId, null, { timeout: 30_000 });
  return { page, problems };
}

// What the page knows, for assertion messages.
const pageState = (page) => page.evaluate(() => ({
  events: window.talkDemo.events,
  errors: window.talkDemo.errors,
  stats: window.talkDemo.stats,
  bufferedEnd: window.talkDemo.bufferedEnd(),
  currentTime: document.getElementById('avatar').currentTime,
  status: document.getElementById('status').textContent,
}));

async function screenshot(page, name) {
  mkdirSync(artifactsDir, { recursive: true });
  const file = path.join(artifactsDir, name);
  await page.screenshot({ path: file });
  console.log(`screenshot: ${file}`);
}

// Waits for `fn` to be true in the page; on a time-out, fails with what the page saw.
async function waitInPage(page, fn, arg, timeout, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch (e) {
    throw new Error(`${what}: ${e.message}\npage state: ${JSON.stringify(await pageState(page))}`);
  }
}

describe('the demo page in headless Chromium', () => {
  let server;
  let browser;
  before(async () => {
    server = await startServer(['--set', `http.static_dir=${JSON.stringify(webDir)}`]);
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the browser plays H.264/AAC fragmented MP4 through Media Source Extensions', async () => {
    const page = await browser.newPage();
    const ok = await page.evaluate(
      () => MediaSource.isTypeSupported('video/mp4; codecs="avc1.42E01E, mp4a.40.2"'));
    await page.close();
    assert.ok(ok, 'this Chromium build has no H.264/AAC in MSE: the demo cannot show the avatar');
  });

  test('a typed question is answered with streamed text and a playing avatar video', async () => {
    const { page, problems } = await openDemo(browser, server.origin);
    assert.match(await page.textContent('#status'), /live/);

    await page.fill('#text', 'Tell me a story about a cat.');
    await page.click('#send');
    await waitInPage(page, () => ['response.done', 'error'].some((t) => window.talkDemo.events.includes(t)),
      null, TURN_MS, 'the response did not finish');
    let state = await pageState(page);
    assert.deepEqual(state.errors, [], JSON.stringify(state));
    const order = state.events.filter((t) => t.startsWith('response.') || t.startsWith('reply.'));
    assert.equal(order[0], 'response.started', order.join(' '));
    assert.ok(order.includes('reply.delta'), order.join(' '));
    assert.equal(order.at(-1), 'response.done', order.join(' '));

    // The reply text streamed into the page.
    const reply = (await page.textContent('.msg.assistant')).trim();
    assert.ok(reply.length > 10, `reply text: "${reply}"`);

    // Video segments arrived, went into the SourceBuffer and play.
    assert.ok(state.stats.initSegments >= 1, JSON.stringify(state));
    assert.ok(state.stats.mediaSegments >= 1, JSON.stringify(state));
    await waitInPage(page, () => window.talkDemo.stats.appended ===
        window.talkDemo.stats.initSegments + window.talkDemo.stats.mediaSegments &&
        window.talkDemo.bufferedEnd() > 0.5,
      null, 10_000, 'the segments were not all appended');
    await waitInPage(page, () => document.getElementById('avatar').currentTime > 0.5,
      null, 20_000, 'the video did not play past 0.5 s');
    state = await pageState(page);
    assert.ok(state.bufferedEnd > 0.5, JSON.stringify(state));

    // The frames are decoded pictures of the avatar, not a black box.
    const video = await page.evaluate(() => {
      const v = document.getElementById('avatar');
      const c = document.createElement('canvas');
      c.width = 64;
      c.height = 64;
      const g = c.getContext('2d');
      g.drawImage(v, 0, 0, 64, 64);
      const px = g.getImageData(0, 0, 64, 64).data;
      let sum = 0;
      for (let i = 0; i < px.length; i += 4) sum += (px[i] + px[i + 1] + px[i + 2]) / 3;
      return { width: v.videoWidth, height: v.videoHeight, meanLuma: sum / (64 * 64), error: v.error?.message };
    });
    // The stream's size is the one session.started announced (the portrait scaled to
    // talk.stream_size), with the portrait's aspect ratio.
    const live = await page.evaluate(() => window.talkDemo.avatar);
    const avatar = await (await fetch(`${server.baseURL}/avatar`)).json();
    assert.equal(video.error, undefined);
    assert.deepEqual([video.width, video.height], [live.width, live.height]);
    assert.ok(Math.abs(video.width / video.height - avatar.width / avatar.height) < 0.02,
      `video ${video.width}x${video.height}, portrait ${avatar.width}x${avatar.height}`);
    assert.ok(video.meanLuma > 20, `mean luma of the video frame ${video.meanLuma}`);

    await screenshot(page, 'demo_page_text_turn.png');
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('Stop cancels a running response', async () => {
    const { page, problems } = await openDemo(browser, server.origin);
    await page.fill('#text', 'Once upon a time there was a dragon who');
    await page.click('#send');
    await waitInPage(page, () => window.talkDemo.events.includes('reply.delta'), null, TURN_MS,
      'no reply text');
    // The response may finish before the click lands: then Stop is disabled again, and a
    // response.cancel would be a no-op anyway.
    if (await page.isEnabled('#stop')) {
      await page.click('#stop');
      await waitInPage(page, () => ['response.cancelled', 'response.done'].some(
        (t) => window.talkDemo.events.includes(t)), null, TURN_MS, 'the response did not end');
    }
    assert.ok(await page.isDisabled('#stop'));
    // The session goes on: the next question is answered.
    const before = (await pageState(page)).events.filter((t) => t === 'response.done').length;
    await page.fill('#text', 'Tell me about a dog.');
    await page.click('#send');
    await waitInPage(page, (n) => window.talkDemo.events.filter((t) => t === 'response.done').length > n,
      before, TURN_MS, 'the next response did not finish');
    assert.deepEqual((await pageState(page)).errors, []);
    assert.deepEqual(problems, []);
    await page.close();
  });
});

describe('the demo page on a server with an API key', () => {
  const KEY = 'sk-e2e-demo-key';
  let server;
  let browser;
  before(async () => {
    server = await startServer([
      '--set', `http.static_dir=${JSON.stringify(webDir)}`,
      '--set', `gateway.keys=[{name="e2e",key="${KEY}",tier="standard",rate_per_s=100.0,burst=100.0}]`,
    ]);
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('the page asks for the key, then connects with ?api_key=', async () => {
    const page = await browser.newPage();
    await page.goto(`${server.origin}/`);
    await waitInPage(page, () => /API key/.test(document.getElementById('status').textContent), null,
      20_000, 'no word about the missing key');
    assert.equal(await page.evaluate(() => window.talkDemo.sessionId), null);
    assert.ok(await page.evaluate(() => document.getElementById('settings').open));

    await page.fill('#key', 'sk-wrong');
    await page.dispatchEvent('#key', 'change');
    await waitInPage(page, () => /refused/.test(document.getElementById('status').textContent), null,
      20_000, 'a wrong key was not reported');

    await page.fill('#key', KEY);
    await page.dispatchEvent('#key', 'change');
    await waitInPage(page, () => window.talkDemo.sessionId, null, 20_000, 'no session with the right key');
    assert.match(await page.textContent('#status'), /live/);
    await page.close();
  });
});

// Speech synthesised by the server itself (POST /v1/audio/speech, wav), padded with silence so
// the detector hears a start and an end, becomes Chromium's fake microphone.
async function spokenWav(baseURL, text, file) {
  const res = await fetch(`${baseURL}/audio/speech`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'tts-1', input: text, response_format: 'wav' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  const wav = Buffer.from(await res.arrayBuffer());
  assert.equal(wav.toString('ascii', 0, 4), 'RIFF');
  // Walk the chunks to "fmt " and "data" (a streamed wav may carry a placeholder data size).
  let off = 12;
  let fmt = null;
  let pcm = null;
  while (off + 8 <= wav.length) {
    const id = wav.toString('ascii', off, off + 4);
    const size = wav.readUInt32LE(off + 4);
    if (id === 'fmt ') fmt = wav.subarray(off + 8, off + 8 + size);
    if (id === 'data') {
      pcm = wav.subarray(off + 8, Math.min(wav.length, off + 8 + size));
      break;
    }
    off += 8 + size + (size & 1);
  }
  assert.ok(fmt && pcm, 'the wav has fmt and data chunks');
  const channels = fmt.readUInt16LE(2);
  const rate = fmt.readUInt32LE(4);
  const bits = fmt.readUInt16LE(14);
  assert.equal(bits, 16);
  const silence = (seconds) => Buffer.alloc(Math.round(seconds * rate) * channels * 2);
  const data = Buffer.concat([silence(1.0), pcm.subarray(0, pcm.length & ~1), silence(2.5)]);
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVEfmt ', 8, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20);
  header.writeUInt16LE(channels, 22);
  header.writeUInt32LE(rate, 24);
  header.writeUInt32LE(rate * channels * 2, 28);
  header.writeUInt16LE(channels * 2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(data.length, 40);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, Buffer.concat([header, data]));
  return { seconds: pcm.length / (rate * channels * 2) };
}

describe('the demo page with a microphone (Chromium fake capture from a wav)', () => {
  let server;
  let browser;
  let speech;
  before(async () => {
    server = await startServer(['--set', `http.static_dir=${JSON.stringify(webDir)}`]);
    const wav = path.join(artifactsDir, 'demo_page_mic_input.wav');
    speech = await spokenWav(server.baseURL, 'Go forward ten meters.', wav);
    console.log(`fake microphone input: ${wav} (${speech.seconds.toFixed(2)} s of speech)`);
    // %noloop: the file plays once from when capture starts, then silence.
    browser = await launch([`--use-file-for-fake-audio-capture=${wav}%noloop`]);
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  test('speech into the microphone is detected, transcribed and answered', async () => {
    const { page, problems } = await openDemo(browser, server.origin);
    await page.click('#mic');
    await waitInPage(page, () => document.getElementById('mic').getAttribute('aria-pressed') === 'true',
      null, 10_000, 'the microphone did not start');
    await waitInPage(page, () => window.talkDemo.events.includes('vad.speech_start'), null, 20_000,
      'no speech detected');
    await waitInPage(page, () => window.talkDemo.events.includes('transcript.final'), null, TURN_MS,
      'no transcript');
    const transcript = (await page.textContent('.msg.user.spoken')).trim();
    console.log(`transcript: "${transcript}"`);
    assert.ok(transcript.length > 0);
    const state = await pageState(page);
    assert.ok(state.stats.micFrames > 25, `only ${state.stats.micFrames} audio frames sent`);
    const events = state.events;
    assert.ok(events.indexOf('vad.speech_end') > events.indexOf('vad.speech_start'), events.join(' '));
    assert.ok(events.indexOf('transcript.final') > events.indexOf('vad.speech_end'), events.join(' '));
    await waitInPage(page, () => ['response.done', 'error'].some((t) => window.talkDemo.events.includes(t)),
      null, TURN_MS, 'the spoken turn was not answered');
    assert.deepEqual((await pageState(page)).errors, []);
    await screenshot(page, 'demo_page_spoken_turn.png');
    assert.deepEqual(problems, []);
    await page.close();
  });
});
