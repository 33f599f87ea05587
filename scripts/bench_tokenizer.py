"""Byte-level BPE encode speed: upcycle's tokenizer against the `tokenizers` library's Rust encoder,
one thread each, on the same documents, side by side (docs/benchmarks.md).

  .venv/bin/python scripts/bench_tokenizer.py [VOCAB ...]     (default: gpt2 llama3 qwen2 command-r)

The documents: the prepare stage's general, code and law sources (fortunes, Python's standard
library, Debian's licences), one JSON line each, written to a temp file. Ours is
`build/bin/upcycle bench tokenize --threads 1`: reading the JSONL, encoding, appending EOS and
writing a Megatron dataset, all timed. Theirs is `Tokenizer.encode_batch` with
TOKENIZERS_PARALLELISM=false on the texts already in memory, best of 3 (its word cache warm): only
the encoder, timed. Token counts must agree (ours less one EOS per document).
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCES = ["/usr/share/games/fortunes/*", "/usr/lib/python3.11/*.py", "/usr/share/common-licenses/*"]


def corpus():
    docs = []
    for pattern in SOURCES:
        for path in sorted(glob.glob(pattern)):
            try:
                docs.append(open(path, encoding="utf-8").read())
            except (UnicodeDecodeError, IsADirectoryError):
                continue
    return [d for d in docs if d]


def ours(tok, jsonl):
    out = subprocess.run([os.path.join(ROOT, "build/bin/upcycle"), "bench", "tokenize", "--tokenizer",
                          tok, "--jsonl", jsonl, "--threads", "1"], check=True, capture_output=True,
                         text=True).stdout
    f = dict(kv.split("=") for kv in out.split()[1:])
    return float(f["seconds"]), int(f["tokens"]) - int(f["documents"])


def theirs(tok, docs):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    t = Tokenizer.from_file(tok)
    best, n = float("inf"), 0
    for _ in range(3):
        t0 = time.perf_counter()
        enc = t.encode_batch(docs, add_special_tokens=False)
        best = min(best, time.perf_counter() - t0)
        n = sum(len(e.ids) for e in enc)
    return best, n


def main(vocabs):
    docs = corpus()
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(f"{len(docs)} documents, {mb:.2f} MB")
    print("| vocabulary | ours MB/s | tokenizers MB/s | ours / tokenizers | tokens |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as work:
        jsonl = os.path.join(work, "corpus.jsonl")
        with open(jsonl, "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({"text": d}) + "\n")
        for v in vocabs:
            tok = os.path.join(ROOT, ".venv/share/upcycle-vocabs", v, "tokenizer.json")
            s_ours, n_ours = ours(tok, jsonl)
            s_theirs, n_theirs = theirs(tok, docs)
            if n_ours != n_theirs:
                raise SystemExit(f"{v}: {n_ours} tokens, tokenizers {n_theirs}")
            print(f"| {v} | {mb / s_ours:.2f} | {mb / s_theirs:.2f} | {s_theirs / s_ours:.2f}x | {n_ours} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["gpt2", "llama3", "qwen2", "command-r"])
