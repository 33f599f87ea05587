"""Real byte-level BPE vocabularies as Hugging Face tokenizer.json files, for the tokenizer's
referee tests (tests/interop/bpe_referee_test.cpp) and its benchmark (scripts/bench_tokenizer.sh).

  hf_vocabs.py OUT_DIR

No download from the Hugging Face hub is possible here, so the vocabularies come from PyPI:
llama.cpp's vocab-only GGUF files of GPT-2, Llama 3, Qwen2 and Command-R ship in the
llama-cpp-python source distribution (pinned below by version and sha256). Each becomes
OUT_DIR/NAME/tokenizer.json with the normalizer and pre-tokenizer of that model's published
tokenizer.json, and is checked against the token ids llama.cpp recorded from the model's own
Hugging Face tokenizer (the .gguf.out file beside each .gguf): every one of those strings must
encode to the recorded ids with the `tokenizers` library, or this script fails. Idempotent.
"""
import hashlib
import json
import os
import shutil
import struct
import sys
import tarfile
import tempfile
import urllib.request

SDIST = "llama_cpp_python-0.3.36.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
MODELS = "llama_cpp_python-0.3.36/vendor/llama.cpp/models/"

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
          r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
         r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def byte_level(use_regex):
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
            "use_regex": use_regex}


def split(pattern):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated",
            "invert": False}


NFC = {"type": "NFC"}
# name: (gguf file, normalizer, pre_tokenizer, ignore_merges), as each model's tokenizer.json has them
VOCABS = {
    "gpt2": ("ggml-vocab-gpt-2.gguf", None, byte_level(True), False),
    "llama3": ("ggml-vocab-llama-bpe.gguf", None,
               {"type": "Sequence", "pretokenizers": [split(LLAMA3), byte_level(False)]}, True),
    "qwen2": ("ggml-vocab-qwen2.gguf", NFC,
              {"type": "Sequence", "pretokenizers": [split(QWEN2), byte_level(False)]}, False),
    "command-r": ("ggml-vocab-command-r.gguf", NFC,
                  {"type": "Sequence", "pretokenizers": [
                      {"type": "Digits", "individual_digits": True}, byte_level(True)]}, False),
}


def read_gguf_metadata(path):
    """The key/value metadata of a GGUF file (version 2 or 3)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"GGUF":
        raise SystemExit(f"{path}: not a GGUF file")
    pos = 8
    _, n_kv = struct.unpack_from("<QQ", data, pos)
    pos += 16
    scalar = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q",
              12: "d"}

    def string():
        nonlocal pos
        (n,) = struct.unpack_from("<Q", data, pos)
        s = data[pos + 8:pos + 8 + n].decode("utf-8")
        pos += 8 + n
        return s

    def value(t):
        nonlocal pos
        if t == 8:
            return string()
        if t == 9:
            et, n = struct.unpack_from("<IQ", data, pos)
            pos += 12
            return [value(et) for _ in range(n)]
        fmt = "<" + scalar[t]
        (v,) = struct.unpack_from(fmt, data, pos)
        pos += struct.calcsize(fmt)
        return v

    meta = {}
    for _ in range(n_kv):
        key = string()
        (t,) = struct.unpack_from("<I", data, pos)
        pos += 4
        meta[key] = value(t)
    return meta


def tokenizer_json(meta, normalizer, pre, ignore_merges):
    tokens = meta["tokenizer.ggml.tokens"]
    types = meta["tokenizer.ggml.token_type"]
    added = []
    for i, (tok, t) in enumerate(zip(tokens, types)):
        if t in (3, 4):  # control (special) and user-defined tokens are added tokens
            added.append({"id": i, "content": tok, "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": t == 4, "special": t == 3})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": normalizer, "pre_tokenizer": pre, "post_processor": None,
        "decoder": byte_level(True),
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": None, "end_of_word_suffix": None,
                  "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
                  "vocab": {tok: i for i, tok in enumerate(tokens)},
                  "merges": meta["tokenizer.ggml.merges"]},
    }


def check_against_recorded(path, inp, out):
    """Every string of llama.cpp's .inp must encode to the ids in .out (the model's own HF tokenizer)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)
    texts = inp.split("\n__ggml_vocab_test__\n")[:-1]  # each string ends with the separator
    rows = out.split("\n")[:-1]
    if len(texts) != len(rows):
        raise SystemExit(f"{path}: {len(texts)} test strings but {len(rows)} recorded rows")
    for text, row in zip(texts, rows):
        want = [int(x) for x in row.split()]
        got = tok.encode(text, add_special_tokens=False).ids
        if got != want:
            raise SystemExit(f"{path}: {text!r} encodes to {got}, the model's tokenizer to {want}")
    return len(texts)


def fetch_sdist(work):
    """The pinned source distribution, by PyPI's simple index (pip download would build it)."""
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")
    api = index + "/llama-cpp-python/"
    req = urllib.request.Request(api, headers={"Accept": "application/vnd.pypi.simple.v1+json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        urls = [u["url"] for u in json.load(r)["files"] if u["filename"] == SDIST]
    if not urls:
        raise SystemExit(f"{api}: no {SDIST}")
    path = os.path.join(work, SDIST)
    with urllib.request.urlopen(urls[0], timeout=600) as r, open(path, "wb") as f:
        shutil.copyfileobj(r, f)
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    if digest != SDIST_SHA256:
        raise SystemExit(f"{urls[0]}: sha256 {digest}, expected {SDIST_SHA256}")
    return path


def main(out_dir):
    if all(os.path.exists(os.path.join(out_dir, n, "tokenizer.json")) for n in VOCABS):
        print(f"[hf_vocabs] {', '.join(VOCABS)}: present in {out_dir}")
        return
    with tempfile.TemporaryDirectory() as work:
        sdist = fetch_sdist(work)
        wanted = [MODELS + g + ext for g, *_ in VOCABS.values() for ext in ("", ".inp", ".out")]
        with tarfile.open(sdist) as tar:
            tar.extractall(work, members=[tar.getmember(w) for w in wanted], filter="data")
        for name, (gguf, normalizer, pre, ignore_merges) in VOCABS.items():
            src = os.path.join(work, MODELS, gguf)
            doc = tokenizer_json(read_gguf_metadata(src), normalizer, pre, ignore_merges)
            os.makedirs(os.path.join(out_dir, name), exist_ok=True)
            dst = os.path.join(out_dir, name, "tokenizer.json")
            with open(dst + ".tmp", "w", encoding="utf-8") as f:
                json.dump(doc, f, ensure_ascii=False)
            n = check_against_recorded(dst + ".tmp", open(src + ".inp", encoding="utf-8").read(),
                                       open(src + ".out", encoding="utf-8").read())
            os.replace(dst + ".tmp", dst)
            print(f"[hf_vocabs] {name}: {len(doc['model']['vocab'])} tokens, "
                  f"{len(doc['model']['merges'])} merges; {n} recorded encodings match")


if __name__ == "__main__":
    main(sys.argv[1])
