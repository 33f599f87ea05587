#!/usr/bin/env python3
"""lm-evaluation-harness on upcycle's multiple-choice task files, for the `command` stage.

Writes, for each --task, the task's examples and a local lm-eval YAML task over them into OUT/tasks,
then runs `lm-eval run` on the Hugging Face model (the hf model type, CPU unless --device says
otherwise, no network) with --log_samples, so results land in OUT where `parser: lm_eval` finds them.
The lm-eval task of upcycle task `domain/code` is `upcycle_domain_code`.

  python scripts/lm_eval_tasks.py --model {hf} --tasks-file {data_dir}/tasks/code.jsonl \
      --task domain/code [--task ...] [--limit N] --out {out}

The YAML is the harness's multiple_choice: doc_to_text `context`, doc_to_choice `choices`,
doc_to_target `gold`, an empty target delimiter (our choices carry their own leading space), metrics
acc and acc_norm.

An example with a choice longer (in the model's tokens) than the model's context
(max_position_embeddings) is left out, as upcycle's eval leaves it out: the harness would stop on
its max_length assertion. The model is loaded with trust_remote_code (a bam export's modeling code,
an exported SentencePiece tokenizer's exact decoder).
"""
import argparse
import json
import os
import re
import subprocess
import sys

YAML = """task: {name}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: context
doc_to_choice: choices
doc_to_target: gold
target_delimiter: ""
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
  - metric: acc_norm
    aggregation: mean
    higher_is_better: true
"""


def lm_eval_name(task):
    return "upcycle_" + re.sub(r"[^A-Za-z0-9]", "_", task)


def choices_fit(model):
    """Whether every choice of an example fits the model's context, counted as the harness's
    _encode_pair counts a continuation (the context's trailing whitespace moved to the choice)."""
    from transformers import AutoConfig, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model, trust_remote_code=True)
    max_length = AutoConfig.from_pretrained(model, trust_remote_code=True).max_position_embeddings
    n = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])

    def fits(ex):
        context = ex["context"]
        n_context = n(context.rstrip())
        return all(n(context + c) - n_context <= max_length for c in ex["choices"])

    return fits


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a Hugging Face checkpoint directory")
    ap.add_argument("--tasks-file", required=True, help="an upcycle task file (JSONL)")
    ap.add_argument("--task", action="append", required=True, help="a multiple-choice task in it")
    ap.add_argument("--limit", type=int, default=0, help="first N examples of each task (0: all)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", default="1")
    a = ap.parse_args()
    task_dir = os.path.join(a.out, "tasks")
    os.makedirs(task_dir, exist_ok=True)
    rows = {}
    with open(a.tasks_file) as f:
        for line in f:
            ex = json.loads(line)
            if ex.get("task") in a.task and "choices" in ex:
                rows.setdefault(ex["task"], []).append(ex)
    fits = choices_fit(a.model)
    names = []
    for task in a.task:
        if task not in rows:
            sys.exit(f"{a.tasks_file}: no multiple-choice examples of task '{task}'")
        name = lm_eval_name(task)
        data = os.path.abspath(os.path.join(task_dir, name + ".jsonl"))
        kept = [ex for ex in rows[task][: a.limit or None] if fits(ex)]
        if len(kept) < len(rows[task][: a.limit or None]):
            print(f"lm_eval_tasks: {task}: {len(rows[task][: a.limit or None]) - len(kept)} examples "
                  "left out: a choice is longer than the model's context", file=sys.stderr)
        with open(data, "w") as f:
            for ex in kept:
                f.write(json.dumps(ex) + "\n")
        with open(os.path.join(task_dir, name + ".yaml"), "w") as f:
            f.write(YAML.format(name=name, data=json.dumps(data)))
        names.append(name)
    env = dict(os.environ, HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    cmd = [sys.executable, "-m", "lm_eval", "run", "--model", "hf",
           "--model_args", f"pretrained={os.path.abspath(a.model)},dtype=float32,trust_remote_code=True",
           "--tasks", ",".join(names), "--include_path", task_dir, "--device", a.device,
           "--batch_size", a.batch_size, "--output_path", a.out, "--log_samples"]
    sys.exit(subprocess.call(cmd, env=env))


if __name__ == "__main__":
    main()
