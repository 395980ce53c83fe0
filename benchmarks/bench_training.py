"""Benchmark: training input pipeline throughput vs the model's training-step throughput; peak RSS.

Run: ``.venv/bin/python benchmarks/bench_training.py [--quick]``. Writes ``benchmarks/results/training.json``
and ``benchmarks/results/training.png``.

On the seeded synthetic table (``benchmarks/synthetic.py``; label ``is_member``, ``user_id`` excluded; 1M
rows, ``--quick``: 100k): rows/s of one full pass of the streamed ``tf.data`` input (Parquet -> shuffled
raw-feature batches) and rows/s of the model's training step on batches already in memory, at batch 256 and
1024. Peak RSS of a fresh process that builds the spec (statistics pass) and streams one epoch, at 1M and
10M rows (``--quick``: 100k and 300k). Goals: input >= 5x the step rate; RSS flat in the number of rows.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import synthetic  # noqa: E402

RESULTS = HERE / "results"
LABEL = "is_member"
EXCLUDE = ["user_id"]
_RSS_SCRIPT = """
import os, resource, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from kfpc.components.train import features, input as data_input
start = time.perf_counter()
spec = features.build_spec(sys.argv[1], "is_member", exclude=["user_id"])
rows = 0
for features_batch, target in data_input.iterate_batches(
        features.split_file(sys.argv[1], "train"), spec, 1024, shuffle_buffer=100_000):
    rows += len(target)
print(rows, time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def make_dataset(root: Path, rows: int) -> Path:
    """A Dataset artifact: ``rows`` synthetic rows in train, 20k in eval."""
    for split, count, seed in (("train", rows, 0), ("eval", 20_000, 1)):
        folder = root / f"Split-{split}"
        folder.mkdir(parents=True, exist_ok=True)
        synthetic.write_parquet(folder / "data.parquet", count, seed)
    return root


def input_rate(dataset: Path, spec, batch_size: int) -> tuple[float, int]:
    """Rows/s of one full pass of the tf.data input (what fit consumes)."""
    from kfpc.components.train import features
    from kfpc.components.train import input as data_input

    data = data_input.make_dataset(features.split_file(dataset, "train"), spec, batch_size, shuffle_buffer=100_000)
    rows = 0
    start = time.perf_counter()
    for _, target in data:
        rows += int(target.shape[0])
    return rows / (time.perf_counter() - start), rows


def step_rate(dataset: Path, spec, batch_size: int, steps: int) -> float:
    """Rows/s of the model's training step on batches already in memory (input excluded)."""
    import tensorflow as tf

    from kfpc.components.train import features
    from kfpc.components.train import input as data_input
    from kfpc.components.train import model as model_lib

    model = model_lib.build_model(spec, (64, 32), 0.1, 1e-3)
    model(model_lib.sample_inputs(spec))
    source = data_input.make_dataset(features.split_file(dataset, "train"), spec, batch_size, shuffle_buffer=0)
    cached = source.take(steps).cache()
    model.fit(cached, epochs=1, verbose=0)  # traces the step and fills the cache
    start = time.perf_counter()
    model.fit(cached, epochs=1, verbose=0)
    elapsed = time.perf_counter() - start
    del tf
    return steps * batch_size / elapsed


def peak_rss(dataset: Path) -> dict:
    done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(dataset)], capture_output=True, text=True,
                          check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    rows, seconds, rss = done.stdout.strip().splitlines()[-1].split()
    return {"rows": int(rows), "seconds": float(seconds), "peak_rss_bytes": int(rss)}


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    batches = [r["batch_size"] for r in results["throughput"]]
    x = range(len(batches))
    left.bar([i - 0.2 for i in x], [r["input_rows_per_s"] for r in results["throughput"]], 0.4, label="input (tf.data)")
    left.bar([i + 0.2 for i in x], [r["step_rows_per_s"] for r in results["throughput"]], 0.4, label="training step")
    left.set_xticks(list(x), [f"batch {b}" for b in batches])
    left.set_ylabel("rows / s")
    left.set_title(f"{results['rows']:,} rows: input vs step")
    left.legend()
    rss = results["peak_rss"]
    right.plot([r["rows"] for r in rss], [r["peak_rss_bytes"] / 2**20 for r in rss], marker="o")
    right.set_xscale("log")
    right.set_xlabel("rows")
    right.set_ylabel("peak RSS (MiB)")
    right.set_ylim(bottom=0)
    right.set_title("spec + one streamed epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k rows; RSS at 100k and 300k")
    options = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    rows = 100_000 if options.quick else 1_000_000
    rss_sizes = (100_000, 300_000) if options.quick else (1_000_000, 10_000_000)
    from kfpc.components.train import features

    RESULTS.mkdir(parents=True, exist_ok=True)
    results = {"rows": rows, "quick": options.quick, "throughput": [], "peak_rss": []}
    with tempfile.TemporaryDirectory(prefix="kfpc-bench-training-") as tmp:
        dataset = make_dataset(Path(tmp) / "data", rows)
        start = time.perf_counter()
        spec = features.build_spec(dataset, LABEL, exclude=EXCLUDE)
        results["spec_seconds"] = time.perf_counter() - start
        for batch_size in (256, 1024):
            input_rows_per_s, seen = input_rate(dataset, spec, batch_size)
            steps = 200 if batch_size == 256 else 60
            step_rows_per_s = step_rate(dataset, spec, batch_size, steps)
            entry = {
                "batch_size": batch_size, "input_rows_per_s": input_rows_per_s, "step_rows_per_s": step_rows_per_s,
                "input_over_step": input_rows_per_s / step_rows_per_s, "rows_seen": seen,
            }
            results["throughput"].append(entry)
            print(json.dumps(entry))
        for size in rss_sizes:
            root = Path(tmp) / f"rss-{size}"
            make_dataset(root, size)
            entry = peak_rss(root)
            results["peak_rss"].append(entry)
            print(json.dumps(entry))
            import shutil

            shutil.rmtree(root)
    results["goals"] = {
        "input_at_least_5x_step": all(r["input_over_step"] >= 5 for r in results["throughput"]),
        "rss_ratio_largest_to_smallest": results["peak_rss"][-1]["peak_rss_bytes"] / results["peak_rss"][0]["peak_rss_bytes"],
    }
    (RESULTS / "training.json").write_text(json.dumps(results, indent=2))
    plot(results, RESULTS / "training.png")
    print(json.dumps(results["goals"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
