// Starting the real talkserve binary for an end-to-end test: loopback, a free port
// (http.port=0, read back from its "talkserve listening on HOST:PORT" line), the fetched
// models, and a clip cache of its own in a temporary folder (the cache locks its directory).
//
// Environment: TALKSERVE_BINARY, TALKSERVE_MODELS_DIR, TALKSERVE_SOURCE_DIR (the checkout),
// TALKSERVE_SHARED_DIR (the shared test data; default <checkout>/../shared).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const sourceDir = process.env.TALKSERVE_SOURCE_DIR ?? path.resolve(here, '../..');
export const binary = process.env.TALKSERVE_BINARY ?? path.join(sourceDir, 'build/bin/talkserve');
export const modelsDir = process.env.TALKSERVE_MODELS_DIR ?? path.join(sourceDir, 'models');
export const sharedDir = process.env.TALKSERVE_SHARED_DIR ?? path.resolve(sourceDir, '../shared');
const configFile = path.join(sourceDir, 'config/talkserve.toml');

// Starts talkserve with `extraArgs` after the defaults (a later --set wins); resolves once it
// listens and /readyz says every model is loaded. `stop()` ends it with SIGTERM (SIGKILL after
// 10 s) and removes its clip cache.
export async function startServer(extraArgs = [], { startupMs = 60_000 } = {}) {
  assert.ok(existsSync(binary), `talkserve binary not found at ${binary} (set TALKSERVE_BINARY)`);
  const cacheDir = mkdtempSync(path.join(tmpdir(), 'talkserve-e2e-cache-'));
  const args = [
    '--config', configFile,
    '--set', 'http.host="127.0.0.1"',
    '--set', 'http.port=0',
    '--set', `server.models_dir=${JSON.stringify(modelsDir)}`,
    '--set', 'http.static_dir=""',
    '--set', `talk.cache_dir=${JSON.stringify(cacheDir)}`,
    '--set', 'server.drain_grace_ms=2000',
    '--set', 'log.level="warn"',
    '--set', 'llm.threads=1',
    ...extraArgs,
  ];
  const child = spawn(binary, args, { cwd: sourceDir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d) => { stderr = (stderr + d).slice(-20_000); });
  const exited = once(child, 'exit');

  const lines = createInterface({ input: child.stdout });
  const listening = new Promise((resolve, reject) => {
    lines.on('line', (line) => {
      const m = /^talkserve listening on (\S+):(\d+)$/.exec(line.trim());
      if (m) resolve({ host: m[1], port: Number(m[2]) });
    });
    exited.then(([code, signal]) =>
      reject(new Error(`talkserve exited (${code ?? signal}) before listening:\n${stderr}`)));
  });
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`talkserve did not listen within ${startupMs} ms:\n${stderr}`)),
      startupMs);
  });
  const stop = async () => {
    clearTimeout(timer);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(killer);
    }
    rmSync(cacheDir, { recursive: true, force: true });
  };
  try {
    const { host, port } = await Promise.race([listening, timeout]);
    const base = `http://${host}:${port}`;
    // Bounded wait for readiness: the models load after the socket is bound.
    const deadline = Date.now() + startupMs;
    for (;;) {
      const res = await fetch(`${base}/readyz`).catch(() => null);
      if (res?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`/readyz not 200 within ${startupMs} ms:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    clearTimeout(timer);
    return { origin: base, baseURL: `${base}/v1`, stop, stderr: () => stderr };
  } catch (e) {
    await stop();
    throw e;
  }
}
