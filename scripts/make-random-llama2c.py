#!/usr/bin/env python3
"""Writes a random-weight checkpoint in llama2.c's legacy format, for compute-bound
benchmarks of the LLM model (stories260K is too small to keep a CPU busy).

Layout: 7 int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a
negative vocab_size announces a separate classifier), then float32 tensors in this order:
token_embedding [vocab, dim], rms_att [layers, dim], wq [layers, dim, dim],
wk/wv [layers, kv_dim, dim], wo [layers, dim, dim], rms_ffn [layers, dim],
w1 [layers, hidden, dim], w2 [layers, dim, hidden], w3 [layers, hidden, dim],
rms_final [dim], two legacy RoPE tables [seq_len, head_dim/2] each, [wcls [vocab, dim]].

Only the standard library is used. Example:
  scripts/make-random-llama2c.py /tmp/bench512.bin --dim 512 --layers 8
"""
import argparse
import array
import random
import struct
import sys


def write_uniform(f, n, bound, rng):
    # Chunked so memory stays small; uniform(-bound, bound) keeps activations O(1).
    chunk = 1 << 18
    while n > 0:
        k = min(n, chunk)
        a = array.array("f", [rng.uniform(-bound, bound) for _ in range(k)])
        a.tofile(f)
        n -= k


def write_const(f, n, value):
    array.array("f", [value]).tofile(f) if n == 1 else array.array("f", [value] * n).tofile(f)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--hidden-dim", type=int, default=1376)
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=0, help="default: same as --heads")
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--seq-len", type=int, default=1024)
    p.add_argument("--separate-classifier", action="store_true")
    p.add_argument("--seed", type=int, default=1234)
    a = p.parse_args()
    kv_heads = a.kv_heads or a.heads
    if a.dim % a.heads or a.heads % kv_heads or (a.dim // a.heads) % 2:
        sys.exit("dim must divide into heads, heads into kv-heads, and head_dim must be even")
    if sys.byteorder != "little":
        sys.exit("llama2.c checkpoints are little-endian; run this on a little-endian machine")
    head_dim = a.dim // a.heads
    kv_dim = kv_heads * head_dim
    rng = random.Random(a.seed)
    vocab_field = -a.vocab if a.separate_classifier else a.vocab
    with open(a.output, "wb") as f:
        f.write(struct.pack("<7i", a.dim, a.hidden_dim, a.layers, a.heads, kv_heads, vocab_field, a.seq_len))
        b_dim = 1.0 / a.dim ** 0.5
        b_hidden = 1.0 / a.hidden_dim ** 0.5
        write_uniform(f, a.vocab * a.dim, 1.0, rng)                 # token_embedding
        write_const(f, a.layers * a.dim, 1.0)                       # rms_att
        write_uniform(f, a.layers * a.dim * a.dim, b_dim, rng)      # wq
        write_uniform(f, a.layers * kv_dim * a.dim, b_dim, rng)     # wk
        write_uniform(f, a.layers * kv_dim * a.dim, b_dim, rng)     # wv
        write_uniform(f, a.layers * a.dim * a.dim, b_dim, rng)      # wo
        write_const(f, a.layers * a.dim, 1.0)                       # rms_ffn
        write_uniform(f, a.layers * a.hidden_dim * a.dim, b_dim, rng)     # w1
        write_uniform(f, a.layers * a.dim * a.hidden_dim, b_hidden, rng)  # w2
        write_uniform(f, a.layers * a.hidden_dim * a.dim, b_dim, rng)     # w3
        write_const(f, a.dim, 1.0)                                  # rms_final
        write_const(f, a.seq_len * head_dim, 0.0)                   # legacy RoPE tables (unused)
        if a.separate_classifier:
            write_uniform(f, a.vocab * a.dim, b_dim, rng)           # wcls
    params = a.vocab * a.dim + a.layers * (2 * a.dim * a.dim + 2 * kv_dim * a.dim + 3 * a.dim * a.hidden_dim)
    print(f"wrote {a.output}: dim {a.dim}, hidden {a.hidden_dim}, layers {a.layers}, heads {a.heads}/{kv_heads}, "
          f"vocab {a.vocab}, seq_len {a.seq_len}, ~{params / 1e6:.1f}M params")


if __name__ == "__main__":
    main()
