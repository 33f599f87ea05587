#!/usr/bin/env python3
"""An independent writer of Megatron-LM indexed datasets, for the tests.

Written from the published layout (megatron/core/datasets/indexed_dataset.py), with nothing of
upcycle's own reader: PREFIX.bin holds the tokens of every document back to back in the index's
dtype; PREFIX.idx holds
    b"MMIDIDX\\x00\\x00", <Q version 1, <B dtype code, <Q sequence count, <Q document count,
    <i4 sequence lengths, <i8 sequence byte offsets, <i8 document indices (from 0, ending with
    the sequence count).
Dtype codes: 1 uint8, 2 int8, 3 int16, 4 int32, 5 int64, 6 float64, 7 float32, 8 uint16.

usage: megatron_writer.py SPEC.json
SPEC: {"datasets": [{"prefix": P, "dtype": "uint16"|"int32", "documents": [[tokens...], ...]}],
       "nanogpt": [{"path": F, "dtype": "uint16"|"uint32", "tokens": [...]}]}
"""
import json
import struct
import sys

CODES = {"uint8": (1, "B"), "int16": (3, "h"), "int32": (4, "i"), "int64": (5, "q"),
         "uint16": (8, "H")}


def write_megatron(prefix, dtype, documents):
    code, fmt = CODES[dtype]
    width = struct.calcsize("<" + fmt)
    lengths, offsets, offset = [], [], 0
    with open(prefix + ".bin", "wb") as f:
        for doc in documents:
            f.write(struct.pack("<%d%s" % (len(doc), fmt), *doc))
            lengths.append(len(doc))
            offsets.append(offset)
            offset += len(doc) * width
    n = len(documents)
    with open(prefix + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", code))
        f.write(struct.pack("<Q", n))          # sequences: one per document
        f.write(struct.pack("<Q", n + 1))      # document indices, the leading 0 included
        f.write(struct.pack("<%di" % n, *lengths))
        f.write(struct.pack("<%dq" % n, *offsets))
        f.write(struct.pack("<%dq" % (n + 1), *range(n + 1)))


def write_nanogpt(path, dtype, tokens):
    fmt = {"uint16": "H", "uint32": "I"}[dtype]
    with open(path, "wb") as f:
        f.write(struct.pack("<%d%s" % (len(tokens), fmt), *tokens))


def main():
    spec = json.load(open(sys.argv[1]))
    for d in spec.get("datasets", []):
        write_megatron(d["prefix"], d["dtype"], d["documents"])
    for n in spec.get("nanogpt", []):
        write_nanogpt(n["path"], n["dtype"], n["tokens"])


if __name__ == "__main__":
    main()
