#!/usr/bin/env python3
"""An independent Whisper reference for parity tests of the C++ recogniser.

Written from scratch on numpy and torch (1.13): no transformers, whisper or safetensors
package. It reads a Hugging Face whisper folder (model.safetensors, config.json, vocab.json,
added_tokens.json; e.g. models/whisper-tiny-en made by scripts/fetch-models.sh), computes the
log-mel spectrogram in numpy, runs the encoder and decoder in torch and decodes greedily without
timestamps.

    whisper_reference.py --model DIR (--wav F | --f32le F) [--dump-mel OUT.f32] [--json]
                         [--first-logits]
    whisper_reference.py --model DIR --batch-dir DIR [--first-logits]

  --wav F          a RIFF WAVE file (PCM 8/16/24/32-bit or float32, any rate, channels
                   averaged), resampled to 16 kHz with this script's own Kaiser-windowed sinc
                   resampler (32 zero crossings per side, beta 8.6, cut-off at 0.95 x the lower
                   Nyquist frequency). The C++ side resamples with FFmpeg's swresample, so
                   parity tests feed raw 16 kHz samples instead:
  --f32le F        raw little-endian float32 mono samples at 16 kHz
  --dump-mel OUT   write the log-mel spectrogram, float32 little-endian, [80][3000] row-major
  --json           print {"tokens", "text", "mel_shape"[, "first_logits"]} (else the text)
  --first-logits   add the 51864 logits of the first step, before any suppression
  --batch-dir DIR  every *.f32 file of DIR (raw 16 kHz float32), the model loaded once; prints
                   one JSON object keyed by file name

Front end (as openai/whisper's log_mel_spectrogram): pad or trim to 30 s (480000 samples);
STFT with n_fft 400, hop 160, periodic Hann window, centred frames with reflect padding; the
last frame dropped (3000 frames); power |X|^2; Slaney-style mel filterbank, 80 bins over
0..8000 Hz with Slaney area normalization (what librosa.filters.mel(sr=16000, n_fft=400,
n_mels=80) gives); log10(max(mel, 1e-10)); clamped below at max - 8; (x + 4) / 4. Computed in
float64, handed to the model as float32.

Model: pre-LayerNorm transformer (eps 1e-5), exact (erf) GELU, attention scaled by
1/sqrt(head_dim), no key bias; the encoder adds its stored (sinusoidal) position table after
two convolutions (the second with stride 2), the decoder its learned positions; the
decoder's self-attention is causal (a per-step key/value cache); logits = h @ embed_tokens^T.

Decoding: prompt <|startoftranscript|> <|notimestamps|> (50257, 50362); at every step the
config's suppress_tokens and every id >= 50257 get -inf, at the first step also
begin_suppress_tokens (220 and end-of-text); argmax; stop at end-of-text (50256) or after 224
tokens. "tokens" are the ids after the prompt without end-of-text; "text" is their byte-level
decoding (with Whisper's usual leading space).
"""

import argparse
import json
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:  # e.g. a pyenv python3 ahead of Debian's on PATH: retry with Debian's
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

SAMPLE_RATE = 16000
N_FFT = 400
HOP = 160
N_MELS = 80
N_SAMPLES = 30 * SAMPLE_RATE
N_FRAMES = N_SAMPLES // HOP
SOT, EOT, NO_TIMESTAMPS = 50257, 50256, 50362
SAMPLE_LEN = 224


# --------------------------------------------------------------------------------------------
# audio


def read_wav(path):
    """(float64 mono samples in [-1, 1], sample rate) of a RIFF WAVE file."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("%s is not a RIFF WAVE file" % path)
    pos, fmt, pcm = 12, None, None
    while pos + 8 <= len(data):
        cid, size = data[pos:pos + 4], struct.unpack("<I", data[pos + 4:pos + 8])[0]
        body = data[pos + 8:pos + 8 + size]
        if cid == b"fmt ":
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag == 0xFFFE and len(body) >= 26:
                tag = struct.unpack("<H", body[24:26])[0]  # WAVE_FORMAT_EXTENSIBLE sub-format
            fmt = (tag, channels, rate, bits)
        elif cid == b"data":
            pcm = body
        pos += 8 + size + (size & 1)
    if fmt is None or pcm is None:
        raise ValueError("%s lacks a fmt or data chunk" % path)
    tag, channels, rate, bits = fmt
    if tag == 1 and bits == 8:
        x = (np.frombuffer(pcm, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif tag == 1 and bits == 16:
        x = np.frombuffer(pcm[:len(pcm) // 2 * 2], "<i2").astype(np.float64) / 32768.0
    elif tag == 1 and bits == 24:
        b = np.frombuffer(pcm[:len(pcm) // 3 * 3], np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / float(1 << 23)
    elif tag == 1 and bits == 32:
        x = np.frombuffer(pcm[:len(pcm) // 4 * 4], "<i4").astype(np.float64) / 2147483648.0
    elif tag == 3 and bits == 32:
        x = np.frombuffer(pcm[:len(pcm) // 4 * 4], "<f4").astype(np.float64)
    else:
        raise ValueError("%s: unsupported WAVE format tag %d with %d bits" % (path, tag, bits))
    x = x[:len(x) // channels * channels].reshape(-1, channels).mean(axis=1)
    return x, rate


def resample(x, sr_in, sr_out=SAMPLE_RATE, zero_crossings=32, beta=8.6, rolloff=0.95):
    """Band-limited polyphase resampling by sr_out/sr_in (rational) with a Kaiser-windowed sinc:
    output n sits at input instant t = n * sr_in / sr_out and is sum_k x[k] h(t - k)."""
    if sr_in == sr_out:
        return x.copy()
    g = math.gcd(int(sr_in), int(sr_out))
    up, down = int(sr_out) // g, int(sr_in) // g
    fc = rolloff * min(sr_in, sr_out) / 2.0 / sr_in  # cut-off in cycles per input sample
    half = zero_crossings / (2.0 * fc)                # kernel half-length in input samples
    taps = np.arange(-int(math.ceil(half)), int(math.ceil(half)) + 1)
    d = np.arange(up)[:, None] / up - taps[None, :]   # [phase, tap]: t - k
    w = np.i0(beta * np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, 1.0))) / np.i0(beta)
    h = np.where(np.abs(d) < half, 2.0 * fc * np.sinc(2.0 * fc * d) * w, 0.0)
    n_out = int(math.ceil(len(x) * up / down))
    pad = len(taps)
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    out = np.empty(n_out)
    for start in range(0, n_out, 16384):
        n = np.arange(start, min(n_out, start + 16384))
        base = (n * down) // up
        phase = (n * down) % up
        out[n] = (xp[base[:, None] + taps[None, :] + pad] * h[phase]).sum(axis=1)
    return out


def mel_filters(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS, fmin=0.0, fmax=None):
    """Slaney-style mel filterbank with Slaney normalization (librosa's default)."""
    fmax = sr / 2.0 if fmax is None else fmax
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz) / logstep, f / f_sp)

    def mel_to_hz(m):
        m = np.asarray(m, np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fftfreqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    weights = np.zeros((n_mels, len(fftfreqs)))
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights


_MEL = None


def log_mel(audio):
    """[80, 3000] float32 log-mel spectrogram of 16 kHz mono samples."""
    global _MEL
    if _MEL is None:
        _MEL = mel_filters()
    x = np.zeros(N_SAMPLES)
    n = min(len(audio), N_SAMPLES)
    x[:n] = audio[:n]
    pad = N_FFT // 2
    x = np.concatenate([x[pad:0:-1], x, x[-2:-pad - 2:-1]])  # reflect padding (centred frames)
    n_frames = 1 + (len(x) - N_FFT) // HOP                    # 3001
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    spec = np.fft.rfft(x[idx] * window[None, :], axis=1)      # [3001, 201]
    power = (spec.real ** 2 + spec.imag ** 2)[:-1].T          # drop the last frame -> [201, 3000]
    mel = _MEL @ power
    logspec = np.log10(np.maximum(mel, 1e-10))
    logspec = np.maximum(logspec, logspec.max() - 8.0)
    return ((logspec + 4.0) / 4.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# model files


def read_safetensors(path):
    """{name: float32 numpy array} of a safetensors file (8-byte LE header size, JSON, data)."""
    dtypes = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
        data = f.read()
    out = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        if meta["dtype"] not in dtypes:
            raise ValueError("%s: dtype %s is not supported" % (name, meta["dtype"]))
        b, e = meta["data_offsets"]
        a = np.frombuffer(data[b:e], dtypes[meta["dtype"]]).reshape(meta["shape"])
        out[name] = np.array(a, dtype=np.float32)  # a writable copy
    return out


def bytes_to_unicode():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


class Whisper:
    def __init__(self, folder):
        with open(os.path.join(folder, "config.json"), encoding="utf-8") as f:
            self.config = json.load(f)
        c = self.config
        self.w = read_safetensors(os.path.join(folder, "model.safetensors"))
        self.n_heads = c["encoder_attention_heads"]
        self.n_enc = c["encoder_layers"]
        self.n_dec = c["decoder_layers"]
        self.vocab_size = c["vocab_size"]
        self.suppress = sorted(set(c.get("suppress_tokens") or []) | set(range(SOT, self.vocab_size)))
        self.begin_suppress = list(c.get("begin_suppress_tokens") or [])
        self.max_pos = c["max_target_positions"]
        with open(os.path.join(folder, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        added = {}
        p = os.path.join(folder, "added_tokens.json")
        if os.path.exists(p):
            with open(p, encoding="utf-8") as f:
                added = json.load(f)
        self.id_to_token = {i: t for t, i in vocab.items()}
        self.special = {i for t, i in added.items()} | {vocab.get("<|endoftext|>", EOT)}
        self.u2b = bytes_to_unicode()

    # --- building blocks. Matrix products go through numpy (OpenBLAS: several times faster
    # than the generic BLAS of Debian's torch build); torch gives erf-GELU and the convolutions.
    def linear(self, x, name, bias=True):
        y = x @ self.w[name + ".weight"].T
        if bias and name + ".bias" in self.w:
            y += self.w[name + ".bias"]
        return y

    def ln(self, x, name):
        mu = x.mean(axis=-1, keepdims=True)
        var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * self.w[name + ".weight"] + self.w[name + ".bias"]

    @staticmethod
    def gelu(x):
        return F.gelu(torch.from_numpy(np.ascontiguousarray(x))).numpy()  # exact: x * Phi(x)

    def heads(self, x):  # [T, D] -> [H, T, D/H]
        return np.ascontiguousarray(x.reshape(x.shape[0], self.n_heads, -1).transpose(1, 0, 2))

    def attend(self, q, k, v, causal_offset=None):
        s = (q @ k.transpose(0, 2, 1)) * np.float32(1.0 / math.sqrt(q.shape[-1]))
        if causal_offset is not None:  # query i sits at position causal_offset + i
            tq, tk = q.shape[1], k.shape[1]
            mask = np.arange(tk)[None, :] > (causal_offset + np.arange(tq))[:, None]
            s = np.where(mask[None], np.float32(-np.inf), s)
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        o = s @ v
        return o.transpose(1, 0, 2).reshape(q.shape[1], -1)

    def mlp(self, x, p):
        return self.linear(self.gelu(self.linear(x, p + "fc1")), p + "fc2")

    # --- encoder
    def encode(self, mel):
        x = torch.from_numpy(mel)[None]
        t = lambda n: torch.from_numpy(self.w[n])
        x = F.gelu(F.conv1d(x, t("model.encoder.conv1.weight"), t("model.encoder.conv1.bias"), padding=1))
        x = F.gelu(F.conv1d(x, t("model.encoder.conv2.weight"), t("model.encoder.conv2.bias"), stride=2, padding=1))
        x = np.ascontiguousarray(x[0].numpy().T)
        x = x + self.w["model.encoder.embed_positions.weight"][: x.shape[0]]
        for i in range(self.n_enc):
            p = "model.encoder.layers.%d." % i
            h = self.ln(x, p + "self_attn_layer_norm")
            q = self.heads(self.linear(h, p + "self_attn.q_proj"))
            k = self.heads(self.linear(h, p + "self_attn.k_proj", bias=False))
            v = self.heads(self.linear(h, p + "self_attn.v_proj"))
            x = x + self.linear(self.attend(q, k, v), p + "self_attn.out_proj")
            x = x + self.mlp(self.ln(x, p + "final_layer_norm"), p)
        return self.ln(x, "model.encoder.layer_norm")

    # --- decoder, one call per step with a key/value cache
    def decoder_step(self, tokens, offset, cache, cross):
        x = self.w["model.decoder.embed_tokens.weight"][tokens]
        x = x + self.w["model.decoder.embed_positions.weight"][offset: offset + len(tokens)]
        for i in range(self.n_dec):
            p = "model.decoder.layers.%d." % i
            h = self.ln(x, p + "self_attn_layer_norm")
            q = self.heads(self.linear(h, p + "self_attn.q_proj"))
            k = self.heads(self.linear(h, p + "self_attn.k_proj", bias=False))
            v = self.heads(self.linear(h, p + "self_attn.v_proj"))
            if i in cache:
                k = np.concatenate([cache[i][0], k], axis=1)
                v = np.concatenate([cache[i][1], v], axis=1)
            cache[i] = (k, v)
            x = x + self.linear(self.attend(q, k, v, causal_offset=offset), p + "self_attn.out_proj")
            h = self.ln(x, p + "encoder_attn_layer_norm")
            q = self.heads(self.linear(h, p + "encoder_attn.q_proj"))
            x = x + self.linear(self.attend(q, cross[i][0], cross[i][1]), p + "encoder_attn.out_proj")
            x = x + self.mlp(self.ln(x, p + "final_layer_norm"), p)
        h = self.ln(x[-1:], "model.decoder.layer_norm")
        return (h @ self.w["model.decoder.embed_tokens.weight"].T)[0]

    def transcribe(self, mel):
        enc = self.encode(mel)
        cross = {}
        for i in range(self.n_dec):
            p = "model.decoder.layers.%d.encoder_attn." % i
            cross[i] = (self.heads(self.linear(enc, p + "k_proj", bias=False)), self.heads(self.linear(enc, p + "v_proj")))
        prompt = [SOT, NO_TIMESTAMPS]
        cache, tokens, first_logits = {}, [], None
        inp, offset = prompt, 0
        suppress = np.array(self.suppress, dtype=np.int64)
        begin = np.array(self.begin_suppress, dtype=np.int64)
        for step in range(SAMPLE_LEN):
            if offset + len(inp) > self.max_pos:
                break
            logits = self.decoder_step(np.array(inp, dtype=np.int64), offset, cache, cross)
            if step == 0:
                first_logits = logits.copy()
            logits[suppress] = -np.inf
            if step == 0 and len(begin):
                logits[begin] = -np.inf
            tok = int(np.argmax(logits))
            if tok == EOT:
                break
            tokens.append(tok)
            offset += len(inp)
            inp = [tok]
        return tokens, first_logits

    def decode_text(self, tokens):
        raw = bytearray()
        for t in tokens:
            if t in self.special or t not in self.id_to_token:
                continue
            raw.extend(self.u2b[c] for c in self.id_to_token[t])
        return raw.decode("utf-8", errors="replace")


def result(model, audio, first_logits, dump_mel=None):
    mel = log_mel(audio)
    if dump_mel:
        mel.astype("<f4").tofile(dump_mel)
    tokens, logits = model.transcribe(mel)
    r = {"tokens": tokens, "text": model.decode_text(tokens), "mel_shape": list(mel.shape)}
    if first_logits:
        r["first_logits"] = [float(v) for v in logits.tolist()]
    return r


def main():
    ap = argparse.ArgumentParser(description="Independent Whisper reference (numpy + torch)")
    ap.add_argument("--model", required=True, help="Hugging Face whisper folder")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--wav", help="WAVE file (resampled to 16 kHz here)")
    src.add_argument("--f32le", help="raw little-endian float32 mono 16 kHz samples")
    src.add_argument("--batch-dir", help="transcribe every *.f32 file in this folder")
    ap.add_argument("--dump-mel", help="write the log-mel spectrogram (float32 LE, [80][3000])")
    ap.add_argument("--json", action="store_true", help="print JSON (always on with --batch-dir)")
    ap.add_argument("--first-logits", action="store_true", help="include the first step's logits")
    args = ap.parse_args()

    # torch only runs the convolutions and GELU here; one thread, so that its OpenMP pool does
    # not fight OpenBLAS's threads (numpy's matrix products) for the cores.
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    model = Whisper(args.model)

    if args.batch_dir:
        out = {}
        for name in sorted(os.listdir(args.batch_dir)):
            if name.endswith(".f32"):
                audio = np.fromfile(os.path.join(args.batch_dir, name), "<f4").astype(np.float64)
                out[name] = result(model, audio, args.first_logits)
        print(json.dumps(out, ensure_ascii=False))
        return
    if args.wav:
        audio, rate = read_wav(args.wav)
        audio = resample(audio, rate)
    else:
        audio = np.fromfile(args.f32le, "<f4").astype(np.float64)
    r = result(model, audio, args.first_logits, args.dump_mel)
    if args.json:
        print(json.dumps(r, ensure_ascii=False))
    else:
        print(r["text"])


if __name__ == "__main__":
    main()
