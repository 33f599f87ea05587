#!/usr/bin/env bash
# JSONL tokenization throughput: `upcycle bench tokenize` (the prepare stage's streaming JSONL ->
# Megatron pass, stages/data/jsonl_tokenize.h) against Hugging Face tokenizers' batch encode (the
# Rust encoder of the same SentencePiece model, as transformers' converter builds it) on the
# same file, side by side in one run: they alternate REPS times per row and the table gives the
# medians, in tokens per second per thread. The corpus is real documents: the Python 3.11 standard
# library's sources and Debian's /usr/share/doc texts, one JSON line per file. Prints a Markdown
# table for docs/benchmarks.md.
#   bash scripts/bench_tokenize.sh [REPS]      (default 3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
REPS=${1:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/upcycle-bench-tokenize.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# The tokenizer: a 4096-piece BPE trained by the prepare stage on the built-in domains.
cat > "$WORK/tok.yaml" <<'YAML'
name: bench-tokenizer
data: { domains: [general, code], max_bytes: 2M, tokenizer: { vocab: 4096 } }
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32 }
stages: { data: { kind: prepare } }
YAML
build/bin/upcycle run "$WORK/tok.yaml" root="$WORK/runs" store="$WORK/store.sqlite" --no-report >/dev/null 2>&1
MODEL=$(find "$WORK/runs" -name tokenizer.model | head -1)

"$PY" - "$WORK/corpus.jsonl" <<'PY'
import glob, json, sys
files = sorted(glob.glob("/usr/lib/python3.11/**/*.py", recursive=True)) + \
        sorted(glob.glob("/usr/share/doc/**/*.txt", recursive=True))
n = 0
with open(sys.argv[1], "w") as out:
    for f in files:
        try:
            text = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip():
            out.write(json.dumps({"text": text}) + "\n")
            n += len(text.encode())
        if n > 40_000_000:
            break
PY

median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ours_tps() { sed -n 's/.*tokens_per_s_per_thread=\([0-9.]*\).*/\1/p' | tail -1; }

echo "corpus: $(du -m "$WORK/corpus.jsonl" | cut -f1) MB of JSONL, $(wc -l < "$WORK/corpus.jsonl") documents; tokenizer: 4096-piece SentencePiece BPE" >&2
echo "| threads | upcycle tok/s per thread | HF tokenizers tok/s per thread | ratio | tokens (ours / HF) |"
echo "|---|---|---|---|---|"
for t in 1 2; do
  ours=() ref=() ours_tokens="" ref_tokens=""
  for ((i = 0; i < REPS; i++)); do
    line=$(build/bin/upcycle bench tokenize --jsonl "$WORK/corpus.jsonl" --tokenizer "$MODEL" --threads "$t")
    ours+=("$(echo "$line" | ours_tps)")
    ours_tokens=$(echo "$line" | sed -n 's/.*tokens=\([0-9]*\) .*/\1/p')
    peer=$(RAYON_NUM_THREADS=$t "$PY" - "$WORK/corpus.jsonl" "$MODEL" "$t" <<'PY'
import json, sys, time
from tokenizers.models import BPE
from transformers.convert_slow_tokenizer import SentencePieceExtractor, SpmConverter
texts = [json.loads(l)["text"] for l in open(sys.argv[1])]
# The SentencePiece model as a tokenizers.Tokenizer (Rust), as transformers converts it: the same
# pieces, merges ranked by score, SentencePiece's normalizer; it encodes to SentencePiece's ids.
ex = SentencePieceExtractor(sys.argv[2])
kw = ex.extract(BPE)
tok = SpmConverter.build_tokenizer_from_spm_proto(ex.proto, kw["vocab"], kw["merges"])
threads = int(sys.argv[3])
t0 = time.perf_counter()
# As the C++ side does with THREADS threads: each thread a copy of the file.
n = sum(len(e.ids) + 1 for e in tok.encode_batch(texts * threads, add_special_tokens=False))
secs = time.perf_counter() - t0
print(f"{n / secs / threads:.0f} {n // threads}")
PY
)
    ref+=("${peer% *}")
    ref_tokens=${peer#* }
  done
  o=$(printf '%s\n' "${ours[@]}" | median)
  r=$(printf '%s\n' "${ref[@]}" | median)
  awk -v t="$t" -v o="$o" -v r="$r" -v ot="$((ours_tokens / t))" -v rt="$ref_tokens" \
    'BEGIN { printf "| %d | %.0f | %.0f | %.2f | %d / %d |\n", t, o, r, o / r, ot, rt }'
done
