#!/usr/bin/env python3
"""Timestamp-mode greedy decoding and word alignment on the independent Whisper reference.

tests/reference/whisper_reference.py decodes without timestamps; this helper reuses its network
(log-mel, encoder, cached decoder step) and adds what openai/whisper's decoding.py and timing.py
do on top, written from their description:

  * prompt <|startoftranscript|> (English-only checkpoints: no language or task token);
  * SuppressBlank (" " and end-of-text at the first step), SuppressTokens (the config's
    suppress_tokens plus <|transcribe|> <|translate|> <|startoftranscript|> <|startofprev|>
    <|startoflm|> <|nocaptions|>), and ApplyTimestampRules: no <|notimestamps|>; timestamps in
    pairs (after a text-closing timestamp only a timestamp or end-of-text, after a pair no
    timestamp); timestamps never decrease and a closed pair's successor moves on; the first
    token a timestamp of at most 1.00 s; text masked when the timestamps' total probability
    beats every single text token;
  * greedy argmax, stop at end-of-text or after 224 tokens; sum_logprob over the chosen tokens
    (end-of-text included), avg_logprob = sum / (tokens + 1), no_speech_prob = softmax of the
    logits after <|startoftranscript|> at <|nocaptions|>;
  * word times as timing.find_alignment: the decoder run over
    [sot, notimestamps, text tokens, eot], the pre-softmax cross-attention scores of the
    alignment heads (generation_config.json), cut to the clip's frames / 2, softmax, normalised
    over tokens, median filter of width 7, averaged over heads, DTW of the negated matrix from
    the notimestamps row, a token's time = the first column of its row on the path / 50.
    Words: a token whose text starts with a space begins one; a word ends where the next
    word's first token begins (the last at the end-of-text row).

    whisper_timestamp_reference.py --model DIR --batch-dir DIR
prints one JSON object keyed by file name (every *.f32 of DIR, raw 16 kHz float32):
{"tokens", "text", "sum_logprob", "avg_logprob", "no_speech_prob", "words": [[word, start, end]]}.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "..", "reference"))

import whisper_reference as W  # noqa: E402  (re-executes under /usr/bin/python3 when needed)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

SOT, EOT, NO_TIMESTAMPS = W.SOT, W.EOT, W.NO_TIMESTAMPS
TS = NO_TIMESTAMPS + 1
TRANSLATE, TRANSCRIBE, SOT_LM, SOT_PREV, NO_SPEECH = 50357, 50358, 50359, 50360, 50361
MAX_INITIAL = 50  # 1.00 s


def log_softmax(x):
    m = np.max(x)
    if not np.isfinite(m):
        return x - m
    return x - (m + np.log(np.sum(np.exp(x - m))))


def log_sum_exp(x):
    m = np.max(x)
    if not np.isfinite(m):
        return m
    return m + np.log(np.sum(np.exp(x - m)))


class TimestampDecoder:
    def __init__(self, folder):
        self.m = W.Whisper(folder)
        with open(os.path.join(folder, "generation_config.json"), encoding="utf-8") as f:
            gen = json.load(f)
        self.heads = [tuple(h) for h in gen["alignment_heads"]]
        self.suppress = np.array(sorted(set(self.m.config.get("suppress_tokens") or []) |
                                        {TRANSLATE, TRANSCRIBE, SOT, SOT_PREV, SOT_LM, NO_SPEECH}), dtype=np.int64)
        self.begin = np.array(self.m.begin_suppress, dtype=np.int64)

    def cross(self, enc):
        out = {}
        for i in range(self.m.n_dec):
            p = "model.decoder.layers.%d.encoder_attn." % i
            out[i] = (self.m.heads(self.m.linear(enc, p + "k_proj", bias=False)), self.m.heads(self.m.linear(enc, p + "v_proj")))
        return out

    def rules(self, logits, seq, first):
        l = logits.astype(np.float64).copy()
        if first:
            l[self.begin] = -np.inf
        l[self.suppress] = -np.inf
        l[NO_TIMESTAMPS] = -np.inf
        last = len(seq) >= 1 and seq[-1] >= TS
        penultimate = len(seq) < 2 or seq[-2] >= TS
        if last:
            if penultimate:
                l[TS:] = -np.inf
            else:
                l[:EOT] = -np.inf
        stamps = [t for t in seq if t >= TS]
        if stamps:
            upto = stamps[-1] if (last and not penultimate) else stamps[-1] + 1
            l[TS:upto] = -np.inf
        if first:
            l[:TS] = -np.inf
            l[TS + MAX_INITIAL + 1:] = -np.inf
        lp = log_softmax(l)
        if log_sum_exp(lp[TS:]) > np.max(lp[:TS]):
            l[:TS] = -np.inf
        return l

    def decode(self, audio):
        mel = W.log_mel(audio)
        enc = self.m.encode(mel)
        cross = self.cross(enc)
        cache, tokens, total, no_speech = {}, [], 0.0, None
        inp, offset = [SOT], 0
        for step in range(W.SAMPLE_LEN):
            logits = self.m.decoder_step(np.array(inp, dtype=np.int64), offset, cache, cross)
            if step == 0:
                no_speech = float(np.exp(log_softmax(logits.astype(np.float64)))[NO_SPEECH])
            l = self.rules(logits, tokens, step == 0)
            tok = int(np.argmax(l))
            total += float(log_softmax(l)[tok])
            if tok == EOT:
                break
            tokens.append(tok)
            offset += len(inp)
            inp = [tok]
        text_tokens = [t for t in tokens if t < EOT]
        return {
            "tokens": tokens,
            "text": self.m.decode_text(text_tokens),
            "sum_logprob": total,
            "avg_logprob": total / (len(tokens) + 1),
            "no_speech_prob": no_speech,
            "words": self.words(enc, text_tokens, len(audio)),
        }

    def attention_scores(self, enc, seq):
        """Pre-softmax cross-attention scores [heads, len(seq), 1500] of the alignment heads."""
        m = self.m
        x = m.w["model.decoder.embed_tokens.weight"][np.array(seq)]
        x = x + m.w["model.decoder.embed_positions.weight"][: len(seq)]
        captured = {}
        cross = self.cross(enc)
        for i in range(m.n_dec):
            p = "model.decoder.layers.%d." % i
            h = m.ln(x, p + "self_attn_layer_norm")
            q = m.heads(m.linear(h, p + "self_attn.q_proj"))
            k = m.heads(m.linear(h, p + "self_attn.k_proj", bias=False))
            v = m.heads(m.linear(h, p + "self_attn.v_proj"))
            x = x + m.linear(m.attend(q, k, v, causal_offset=0), p + "self_attn.out_proj")
            h = m.ln(x, p + "encoder_attn_layer_norm")
            q = m.heads(m.linear(h, p + "encoder_attn.q_proj"))
            captured[i] = (q @ cross[i][0].transpose(0, 2, 1)) / np.float32(np.sqrt(q.shape[-1]))
            x = x + m.linear(m.attend(q, cross[i][0], cross[i][1]), p + "encoder_attn.out_proj")
            x = x + m.mlp(m.ln(x, p + "final_layer_norm"), p)
        return torch.from_numpy(np.stack([captured[l][h] for l, h in self.heads]).astype(np.float32))

    def words(self, enc, text_tokens, samples):
        if not text_tokens:
            return []
        seq = [SOT, NO_TIMESTAMPS] + text_tokens + [EOT]
        frames = max(1, min(1500, samples // 160 // 2))
        w = self.attention_scores(enc, seq)[:, :, :frames].softmax(dim=-1)
        std, mean = torch.std_mean(w, dim=-2, keepdim=True, unbiased=False)
        w = median_filter((w - mean) / std, 7).mean(dim=0)
        matrix = w[1:-1].double().numpy()  # rows from <|notimestamps|> (.en: sot sequence = [sot])
        rows, cols = dtw(-matrix)
        jumps = np.pad(np.diff(rows), (1, 0), constant_values=1).astype(bool)
        jump_times = cols[jumps] / 50.0
        words = []
        for i, t in enumerate(text_tokens):
            piece = self.m.decode_text([t])
            if not words or piece.startswith(" "):
                words.append([piece, float(jump_times[i]), 0.0])
            else:
                words[-1][0] += piece
            words[-1][2] = float(jump_times[i + 1])
        out = []
        for word, start, end in words:
            word = word.strip()
            if not word:
                continue
            if out and start < out[-1][2]:
                start = out[-1][2]
            out.append([word, start, max(start, end)])
        return out


def median_filter(x, width):
    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    y = F.pad(x[None], (pad, pad, 0, 0), mode="reflect")[0]
    return y.unfold(-1, width, 1).sort()[0][..., pad]


def dtw(x):
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf)
    trace = -np.ones((n + 1, m + 1))
    cost[0, 0] = 0
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            cost[i, j] = x[i - 1, j - 1] + c
            trace[i, j] = t
    i, j = n, m
    trace[0, :] = 2
    trace[:, 0] = 1
    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        t = trace[i, j]
        if t == 0:
            i, j = i - 1, j - 1
        elif t == 1:
            i -= 1
        else:
            j -= 1
    path = np.array(path[::-1])
    return path[:, 0], path[:, 1]


def main():
    ap = argparse.ArgumentParser(description="Whisper reference: greedy timestamp decoding and word times")
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch-dir", required=True)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.set_grad_enabled(False)
    dec = TimestampDecoder(args.model)
    out = {}
    for name in sorted(os.listdir(args.batch_dir)):
        if name.endswith(".f32"):
            audio = np.fromfile(os.path.join(args.batch_dir, name), "<f4").astype(np.float64)
            out[name] = dec.decode(audio)
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
