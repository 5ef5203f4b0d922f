#!/usr/bin/env python3
"""Checks that scripts/convert-wav2lip.py expects exactly the tensors (names and shapes) of a
safetensors file written by write_random_wav2lip(), i.e. the C++ loader's layer table.

usage: check_converter_table.py CONVERTER SAFETENSORS   (exit 0 when they agree)
Needs neither torch nor numpy: the converter imports torch only when converting.
"""

import importlib.util
import json
import struct
import sys


def main():
    spec = importlib.util.spec_from_file_location("convert_wav2lip", sys.argv[1])
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    want = {name: list(shape) for name, shape in converter.expected_shapes().items()}
    with open(sys.argv[2], "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
    have = {name: entry["shape"] for name, entry in header.items() if name != "__metadata__"}
    if want == have:
        print("converter table matches: %d tensors" % len(want))
        return 0
    for name in sorted(set(want) | set(have)):
        if want.get(name) != have.get(name):
            print("%s: converter %s, loader %s" % (name, want.get(name), have.get(name)))
    return 1


if __name__ == "__main__":
    sys.exit(main())
