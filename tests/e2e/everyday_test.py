"""Everyday use of the CLI, checked from outside with Python's own parsers (issue 33).

Runs recipes/ci/tiny.yaml (the seed stage lengthened so that progress shows) with stderr in a file,
then again with `2>&1 | head -1` (the runner must outlive its closed pipe), then reads the store
with every --format csv|tsv|json and parses stdout with the json and csv modules (data alone, one
document), and reads every job's TensorBoard event files with the tensorboard package's own event
reader, comparing each value with the store.

usage: everyday_test.py UPCYCLE_BINARY SOURCE_DIR
"""
import csv
import glob
import io
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
import unittest

BINARY, SOURCE = sys.argv[1], sys.argv[2]
RECIPE = os.path.join(SOURCE, "recipes/ci/tiny.yaml")
WORK = tempfile.mkdtemp(prefix="everyday-")


def upcycle(*args, check=True):
    r = subprocess.run([BINARY, *args], cwd=WORK, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError(f"upcycle {' '.join(args)}: exit {r.returncode}\n{r.stderr}")
    return r


def store():
    return sqlite3.connect(os.path.join(WORK, "runs/store.sqlite"))


class Everyday(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(os.path.join(WORK, "first.err"), "w") as err:
            r = subprocess.run([BINARY, "run", RECIPE, "--progress-every", "1", "--no-report",
                                "stages.seed.budget.tokens=320k"], cwd=WORK, stdout=subprocess.PIPE,
                               stderr=err, text=True)
        cls.first_rc, cls.first_out = r.returncode, r.stdout
        cls.first_err = open(os.path.join(WORK, "first.err")).read()

    def test_1_progress_off_a_terminal(self):
        self.assertEqual(self.first_rc, 0, self.first_err)
        lines = re.findall(r"^\[upcycle\] progress stage=seed tokens=(\d+)/(\d+) pct=([\d.]+) "
                           r"loss=([\d.]+) tok_s=(\d+) eta_s=(\d+|-)$", self.first_err, re.M)
        self.assertGreaterEqual(len(lines), 2, self.first_err)
        done = [int(t) for t, *_ in lines]
        self.assertEqual(done, sorted(done), "tokens only grow")
        for tokens, total, pct, loss, tok_s, eta in lines:
            self.assertEqual(int(total), 320000)
            self.assertAlmostEqual(float(pct), 100 * int(tokens) / 320000, delta=0.06)
            self.assertGreater(float(loss), 0)
            self.assertGreater(int(tok_s), 0)
            if eta != "-":  # seconds left at the current rate
                self.assertAlmostEqual(int(eta), (320000 - int(tokens)) / int(tok_s), delta=1)
        # the data and eval jobs log no tokens: "running"
        self.assertRegex(self.first_err, r"(?m)^\[upcycle\] progress stage=data running$")

    def test_2_a_closed_pipe_ends_the_printing_not_the_run(self):
        # The log goes into head, which exits after one line: every later write meets EPIPE.
        # A second run (another name) sharing the first one's jobs but bam_dm and eval.
        r = subprocess.run(["bash", "-c", '"$0" run "$1" name=tiny-piped '
                            'stages.seed.budget.tokens=320k --force bam_dm --progress-every 1 '
                            '2>&1 | head -1; echo "rc=${PIPESTATUS[0]}"', BINARY, RECIPE],
                           cwd=WORK, capture_output=True, text=True, timeout=600)
        first, rc = r.stdout.splitlines()[0], r.stdout.splitlines()[-1]
        self.assertTrue(first.startswith("[upcycle] "), r.stdout)
        self.assertEqual(rc, "rc=0", "the runner finished and exited 0, not killed by SIGPIPE")
        with store() as db:
            runs = db.execute("SELECT name, status FROM runs ORDER BY id").fetchall()
            self.assertEqual(len(runs), 2)
            self.assertEqual(runs[-1][1], "done")
            self.assertEqual(db.execute(
                "SELECT COUNT(*) FROM v_jobs WHERE run = ? AND status != 'done'",
                (runs[-1][0],)).fetchone()[0], 0)

    def data_outputs(self):
        runs = [r[0] for r in store().execute("SELECT name FROM runs ORDER BY id")]
        yield ["status"]
        yield ["status", "--all"]
        yield ["query", "--where", "task LIKE 'ppl/%'"]
        for t in ["ppl", "ppl-2b", "downstream", "nv-upcycling"]:
            yield ["table", t]
        for t in ["params", "flops"]:
            yield ["table", t, "--recipe", RECIPE]
        yield ["table", "ppl", "--metric", "bpb", "--all-rows"]
        yield ["compare", *runs]

    def test_3_every_data_format_is_one_document(self):
        for args in self.data_outputs():
            for fmt in ["json", "csv", "tsv"]:
                with self.subTest(args=args, format=fmt):
                    out = upcycle(*args, "--format", fmt).stdout
                    if fmt == "json":
                        doc = json.loads(out)  # fails on anything before or after the document
                        rows = doc["rows"] if isinstance(doc, dict) else doc
                        self.assertIsInstance(rows, list)
                        self.assertGreater(len(rows), 0, out)
                        self.assertIsInstance(rows[0], dict)
                    else:
                        rows = list(csv.reader(io.StringIO(out, newline=""),
                                               delimiter="," if fmt == "csv" else "\t"))
                        self.assertGreater(len(rows), 1, out)
                        self.assertTrue(all(len(r) == len(rows[0]) for r in rows), out)
        doc = json.loads(upcycle("compare", "--params", "--format", "json",
                                 *[r[0] for r in store().execute("SELECT name FROM runs")]).stdout)
        self.assertEqual(sorted(doc), ["params", "results"])
        r = upcycle("compare", "--params", "--format", "csv", "tiny", "tiny", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("--params with --format csv", r.stderr)
        # for programs the run's status line goes to stderr
        r = upcycle("status", "--format", "csv")
        self.assertRegex(r.stderr, r"run \S+: done")
        # the commands that read a recipe, not the store
        for args in (["params", RECIPE], ["flops", RECIPE], ["plan", RECIPE, "--cost"],
                     ["flops", "--compare", RECIPE, RECIPE]):
            with self.subTest(args=args):
                self.assertTrue(json.loads(upcycle(*args, "--format", "json").stdout))

    def test_4_tensorboard_reads_what_the_store_has(self):
        from tensorboard.backend.event_processing import event_accumulator as ea
        db = store()
        jobs = db.execute("SELECT id, kind, dir FROM jobs WHERE status = 'done'").fetchall()
        seen_kinds, compared = set(), 0
        for job_id, kind, jobdir in jobs:
            scalars = {}  # (tag, step) -> value, from every event file of the job
            for f in glob.glob(os.path.join(jobdir, "events.out.tfevents.*")):
                acc = ea.EventAccumulator(f, size_guidance={ea.SCALARS: 0})
                acc.Reload()
                for tag in acc.Tags()["scalars"]:
                    for s in acc.Scalars(tag):
                        scalars[(tag, s.step)] = s.value
            want = {(k, step): v for k, step, v in db.execute(
                "SELECT key, step, value FROM metrics WHERE job_id = ? AND value IS NOT NULL",
                (job_id,))}
            for model, task, metric, flt, value in db.execute(
                    'SELECT model, task, metric, "filter", value FROM eval_results '
                    "WHERE job_id = ?", (job_id,)):
                tag = f"eval/{model}/{task}/{metric}" + ("" if flt == "none" else f"/{flt}")
                want[(tag, 0)] = value
            got = {k: v for k, v in scalars.items() if math.isfinite(v)}
            self.assertEqual(set(got), set(want), f"job {jobdir} ({kind})")
            for k, v in want.items():
                self.assertTrue(math.isclose(got[k], v, rel_tol=2e-7, abs_tol=1e-30),
                                f"{jobdir} {k}: tensorboard {got[k]}, store {v}")
                compared += 1
            if want:
                seen_kinds.add(kind)
        self.assertEqual(seen_kinds, {"train", "eval", "upcycle"})
        tags = {t for t, in db.execute("SELECT DISTINCT key FROM metrics")}
        for t in ["loss", "lr", "tokens_per_s", "val_loss", "util/l0/e0"]:
            self.assertIn(t, tags)
        self.assertGreater(compared, 1000)
        print(f"tensorboard: {compared} values of {len(jobs)} jobs equal the store's",
              file=sys.stderr)


if __name__ == "__main__":
    unittest.main(argv=[sys.argv[0], "-v"])
