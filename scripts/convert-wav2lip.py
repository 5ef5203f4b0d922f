#!/usr/bin/env python3
"""Convert an original Wav2Lip checkpoint (wav2lip.pth or wav2lip_gan.pth, as published with
Prajwal et al., "A Lip Sync Expert Is All You Need", 2020) to the safetensors file that
talkserve's Wav2Lip renderer loads (talk.renderer = "wav2lip"; see docs/wav2lip.md).

    python3 scripts/convert-wav2lip.py wav2lip_gan.pth models/wav2lip/wav2lip_gan.safetensors
    pip install torch safetensors      # the two packages this script needs

What it does:
  * loads the pickled checkpoint on the CPU (torch.load; the file holds a dict with
    "state_dict", and the weights of a model trained with DataParallel carry a "module." prefix,
    which is stripped, as the original inference.py does),
  * drops the BatchNorm "num_batches_tracked" counters (int64, unused at inference),
  * checks every tensor name and shape against the generator's layer table (the same table as
    src/avatar/wav2lip/wav2lip_architecture.cpp) and refuses anything else, e.g. a discriminator
    or expert-SyncNet checkpoint, naming the offending tensors,
  * writes the tensors (float32, or float16 with --dtype f16) with safetensors, with metadata,
    and a small JSON file beside it (<output>.json) with the sha256 of input and output, the
    tensor and parameter counts and the audio/image parameters the network was trained with.

NOTE: this script is not run by the project's tests or CI: no real checkpoint is available
there (the published files are not redistributable with this repository and nothing is
downloaded at build or test time). It was written from the original model definition
(models/wav2lip.py, models/conv.py) and checked only against that; the C++ loader it feeds is
tested with random weights of the same names and shapes (write_random_wav2lip).
"""

import argparse
import hashlib
import json
import os
import sys

# ---- The generator's layer table (models/wav2lip.py) ----
# Each entry: (prefix, in, out, kernel, transposed, batch_norm). Conv2d / Conv2dTranspose
# wrappers hold <prefix>.conv_block.0 (the conv) and <prefix>.conv_block.1 (BatchNorm2d);
# output_block.1 is a bare nn.Conv2d.


def _layers():
    out = []

    def block(prefix, specs):
        for i, (cin, cout, k, transposed) in enumerate(specs):
            out.append(("%s.%d" % (prefix, i), cin, cout, k, transposed, True))

    def conv(cin, cout, k=3):
        return (cin, cout, k, False)

    def res(c, n):
        return [conv(c, c)] * n

    def up(cin, cout):
        return (cin, cout, 3, True)

    fe = "face_encoder_blocks"
    block(fe + ".0", [conv(6, 16, 7)])
    block(fe + ".1", [conv(16, 32)] + res(32, 2))
    block(fe + ".2", [conv(32, 64)] + res(64, 3))
    block(fe + ".3", [conv(64, 128)] + res(128, 2))
    block(fe + ".4", [conv(128, 256)] + res(256, 2))
    block(fe + ".5", [conv(256, 512)] + res(512, 1))
    block(fe + ".6", [conv(512, 512), conv(512, 512, 1)])
    block("audio_encoder", [conv(1, 32)] + res(32, 2) + [conv(32, 64)] + res(64, 2) + [conv(64, 128)] +
          res(128, 2) + [conv(128, 256)] + res(256, 1) + [conv(256, 512), conv(512, 512, 1)])
    fd = "face_decoder_blocks"
    block(fd + ".0", [conv(512, 512, 1)])
    block(fd + ".1", [up(1024, 512)] + res(512, 1))
    block(fd + ".2", [up(1024, 512)] + res(512, 2))
    block(fd + ".3", [up(768, 384)] + res(384, 2))
    block(fd + ".4", [up(512, 256)] + res(256, 2))
    block(fd + ".5", [up(320, 128)] + res(128, 2))
    block(fd + ".6", [up(160, 64)] + res(64, 2))
    out.append(("output_block.0", 80, 32, 3, False, True))
    out.append(("output_block.1", 32, 3, 1, False, False))
    return out


def expected_shapes():
    shapes = {}
    for prefix, cin, cout, k, transposed, bn in _layers():
        weight = (cin, cout, k, k) if transposed else (cout, cin, k, k)  # ConvTranspose2d: [in, out, k, k]
        if not bn:
            shapes[prefix + ".weight"] = weight
            shapes[prefix + ".bias"] = (cout,)
            continue
        shapes[prefix + ".conv_block.0.weight"] = weight
        shapes[prefix + ".conv_block.0.bias"] = (cout,)
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[prefix + ".conv_block.1." + name] = (cout,)
    return shapes


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", help="wav2lip.pth or wav2lip_gan.pth")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument("--dtype", choices=("f32", "f16"), default="f32",
                   help="storage type (computed in float32 either way; default f32)")
    args = p.parse_args()

    try:
        import torch
        from safetensors.torch import save_file
    except ImportError as e:
        sys.exit("convert-wav2lip: needs torch and safetensors (pip install torch safetensors): %s" % e)

    try:
        ckpt = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    except TypeError:  # torch < 1.13 has no weights_only
        ckpt = torch.load(args.checkpoint, map_location="cpu")
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        sys.exit("convert-wav2lip: %s holds no state_dict" % args.checkpoint)

    tensors = {}
    for key, value in state.items():
        name = key[len("module."):] if key.startswith("module.") else key
        if name.endswith("num_batches_tracked"):
            continue
        tensors[name] = value

    want = expected_shapes()
    missing = sorted(set(want) - set(tensors))
    unexpected = sorted(set(tensors) - set(want))
    wrong = sorted("%s: %s, expected %s" % (n, tuple(tensors[n].shape), want[n])
                   for n in set(want) & set(tensors) if tuple(tensors[n].shape) != want[n])
    if missing or unexpected or wrong:
        lines = ["convert-wav2lip: %s is not a Wav2Lip generator checkpoint (img_size 96):" % args.checkpoint]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                lines.append("  %s (%d): %s%s" % (title, len(items), ", ".join(items[:8]),
                                                   " ..." if len(items) > 8 else ""))
        sys.exit("\n".join(lines))

    dtype = torch.float16 if args.dtype == "f16" else torch.float32
    out = {n: tensors[n].detach().to(dtype).contiguous() for n in sorted(want)}
    for n, t in out.items():
        if not torch.isfinite(t).all():
            sys.exit("convert-wav2lip: tensor %s has non-finite values (in %s)" % (n, args.dtype))

    source_sha = sha256_of(args.checkpoint)
    hparams = {"sample_rate": 16000, "n_fft": 800, "hop_size": 200, "win_size": 800, "num_mels": 80,
               "fmin": 55, "fmax": 7600, "preemphasis": 0.97, "min_level_db": -100, "ref_level_db": 20,
               "max_abs_value": 4.0, "img_size": 96, "mel_step_size": 16, "channel_order": "BGR"}
    metadata = {"format": "pt", "model": "wav2lip", "source": os.path.basename(args.checkpoint),
                "source_sha256": source_sha, "hparams": json.dumps(hparams, sort_keys=True)}
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    save_file(out, args.output, metadata=metadata)

    info = {"model": "wav2lip", "source": os.path.basename(args.checkpoint), "source_sha256": source_sha,
            "output": os.path.basename(args.output), "sha256": sha256_of(args.output),
            "bytes": os.path.getsize(args.output), "dtype": args.dtype, "tensors": len(out),
            "parameters": int(sum(t.numel() for t in out.values())), "hparams": hparams}
    with open(args.output + ".json", "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)
        f.write("\n")
    print("wrote %s (%d tensors, %d parameters) and %s.json" % (args.output, info["tensors"], info["parameters"],
                                                                  args.output))


if __name__ == "__main__":
    main()
