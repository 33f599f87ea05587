"""Byte-level BPE encode speed: upcycle's tokenizer against the `tokenizers` library's Rust encoder,
one thread each, on the same documents, side by side (docs/benchmarks.md).

  .venv/bin/python scripts/bench_tokenizer.py [--reps N] [VOCAB ...]
                                         (default: 3 alternations; gpt2 llama3 qwen2 command-r)

The documents: the prepare stage's general, code and law sources (fortunes, Python's standard
library, Debian's licences), one JSON line each, written to a temp file. Ours is
`build/bin/upcycle bench tokenize --threads 1`: reading the JSONL, encoding, appending EOS and
writing a Megatron dataset, all timed. Theirs is `Tokenizer.encode_batch_fast` (no offsets) with
TOKENIZERS_PARALLELISM=false on the texts already in memory (the tokenizer loaded once, so its word
cache is warm after the first round): only the encoder, timed. The two alternate N times per
vocabulary; the table gives medians. Token counts must agree (ours less one EOS per document).
"""
import glob
import json
import os
import statistics
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


def theirs(t, docs):
    t0 = time.perf_counter()
    enc = t.encode_batch_fast(docs, add_special_tokens=False)  # no offsets: its fastest path
    return time.perf_counter() - t0, sum(len(e.ids) for e in enc)


def main(vocabs, reps):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread: before tokenizers is imported
    from tokenizers import Tokenizer

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
            t = Tokenizer.from_file(tok)
            s_ours, s_theirs = [], []
            for _ in range(reps):
                s, n_ours = ours(tok, jsonl)
                s_ours.append(s)
                s, n_theirs = theirs(t, docs)
                s_theirs.append(s)
                if n_ours != n_theirs:
                    raise SystemExit(f"{v}: {n_ours} tokens, tokenizers {n_theirs}")
            a, b = statistics.median(s_ours), statistics.median(s_theirs)
            print(f"| {v} | {mb / a:.2f} | {mb / b:.2f} | {b / a:.2f}x | {n_ours} |")


if __name__ == "__main__":
    args = sys.argv[1:]
    reps = 3
    if args[:1] == ["--reps"]:
        reps, args = int(args[1]), args[2:]
    main(args or ["gpt2", "llama3", "qwen2", "command-r"], reps)
