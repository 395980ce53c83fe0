"""Benchmark: training input pipeline throughput vs the model's training-step throughput; peak RSS.

Run: ``.venv/bin/python benchmarks/bench_training.py [--quick]``. Writes ``benchmarks/results/training.json``
and ``benchmarks/results/training.png``.

On the seeded synthetic table (``benchmarks/synthetic.py``; label ``is_member``, ``user_id`` excluded; 1M
rows, ``--quick``: 100k): rows/s of one full pass of the streamed ``tf.data`` input (Parquet -> shuffled
raw-feature batches, shuffle buffer 100k rows, iterated from Python) and the steady-state rows/s of the
model's training step on batches already in memory (``fit`` on cached batches, timed between batch callbacks
after a warm-up), at batch 256 and 1024; each the median of 3 runs (``--quick``: 1). Peak RSS, at 1M and
10M rows (``--quick``: 100k and 300k), of two fresh processes that import TensorFlow: one streams an epoch
through the same ``tf.data`` pipeline (the input's memory), one runs the statistics pass that builds the spec
when no statistics artifact is given (peak = the process's VmHWM). The machine's load average is recorded
beside the numbers (the benchmark machine is shared). Goals: input >= 5x the step rate; RSS flat in rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
# argv: dataset, spec pickle, "spec" (statistics pass, writes the pickle) | "epoch" (reads it, streams one epoch)
_RSS_SCRIPT = """
import os, pickle, sys, time
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
from kfpc.components import artifacts
from kfpc.components.train import features, input as data_input
dataset, spec_file, mode = sys.argv[1:4]
start = time.perf_counter()
rows = 0
if mode == "spec":
    spec = features.build_spec(dataset, "is_member", exclude=["user_id"])
    with open(spec_file, "wb") as f:
        pickle.dump(spec, f)
else:
    with open(spec_file, "rb") as f:
        spec = pickle.load(f)
    for features_batch, target in data_input.make_dataset(
            artifacts.split_file(dataset, "train"), spec, 1024, shuffle_buffer=100_000):
        rows += int(target.shape[0])
# VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec, so a child would report the parent's peak.
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(rows, time.perf_counter() - start, peak * 1024)
"""


def make_dataset(root: Path, rows: int) -> Path:
    """A Dataset artifact: ``rows`` synthetic rows in train, 20k in eval."""
    for split, count, seed in (("train", rows, 0), ("eval", 20_000, 1)):
        folder = root / f"Split-{split}"
        folder.mkdir(parents=True, exist_ok=True)
        synthetic.write_parquet(folder / "data.parquet", count, seed)
    return root


def input_rate(dataset: Path, spec, batch_size: int) -> dict:
    """Rows/s (wall and per CPU-second of this process) of one full pass of the tf.data input (what fit consumes)."""
    from kfpc.components import artifacts
    from kfpc.components.train import input as data_input

    data = data_input.make_dataset(artifacts.split_file(dataset, "train"), spec, batch_size, shuffle_buffer=100_000)
    rows, first = 0, None
    start, cpu = time.perf_counter(), time.process_time()
    for _, target in data:
        rows += int(target.shape[0])
        if first is None:
            first = time.perf_counter() - start  # the first shuffle buffer is filled before any batch leaves
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "rows_per_cpu_s": rows / cpu_seconds,
            "first_batch_seconds": first}


def step_rate(dataset: Path, spec, batch_size: int, steps: int) -> float:
    """Steady-state rows/s of the model's training step on batches already in memory (input excluded).

    ``fit`` runs 3 passes over ``steps`` cached batches; the clock runs from the end of the first pass's last
    batch (tracing and warm-up done) to the end of the last batch, so per-fit overheads do not count.
    """
    import keras

    from kfpc.components import artifacts
    from kfpc.components.train import input as data_input
    from kfpc.components.train import model as model_lib

    model = model_lib.build_model(spec, (64, 32), 0.1, 1e-3)
    model(model_lib.sample_inputs(spec))
    source = data_input.make_dataset(artifacts.split_file(dataset, "train"), spec, batch_size, shuffle_buffer=0)
    cached = source.take(steps).cache()
    for _ in cached:  # fill the cache before timing
        pass
    times: list[float] = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    model.fit(cached.repeat(3), epochs=1, verbose=0, callbacks=[Clock()])
    timed = len(times) - steps
    return timed * batch_size / (times[-1] - times[steps - 1])


def peak_rss(dataset: Path) -> dict:
    """Peak RSS of two fresh processes (TensorFlow imported in both): the statistics pass that builds the spec
    (``features.build_spec`` with no statistics artifact), and one streamed epoch through ``make_dataset``."""
    out = {}
    spec_file = dataset / "spec.pickle"
    for mode in ("spec", "epoch"):
        done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(dataset), str(spec_file), mode],
                              capture_output=True, text=True, check=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        rows, seconds, rss = done.stdout.strip().splitlines()[-1].split()
        if mode == "epoch":
            out.update(rows=int(rows), seconds=float(seconds), peak_rss_bytes=int(rss))
        else:
            out.update(spec_seconds=float(seconds), spec_peak_rss_bytes=int(rss))
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    batches = [r["batch_size"] for r in results["throughput"]]
    x = range(len(batches))
    left.bar([i - 0.2 for i in x], [r["input_rows_per_s"] for r in results["throughput"]], 0.4, label="input (tf.data)")
    left.bar([i + 0.2 for i in x], [r["step_rows_per_s"] for r in results["throughput"]], 0.4, label="training step")
    for i, r in zip(x, results["throughput"], strict=True):
        left.annotate(f"{r['input_over_step']:.1f}x", (i - 0.2, r["input_rows_per_s"]), ha="center", va="bottom")
    left.set_xticks(list(x), [f"batch {b}" for b in batches])
    left.set_ylabel("rows / s (median of runs)")
    load = results.get("machine", {}).get("load_average_at_start", [float("nan")])[0]
    left.set_title(f"{results['rows']:,} rows: input vs step ({results.get('machine', {}).get('cpus')} CPUs, load {load:.1f})")
    left.legend()
    rss = results["peak_rss"]
    right.plot([r["rows"] for r in rss], [r["peak_rss_bytes"] / 2**20 for r in rss], marker="o",
               label="one streamed epoch (tf.data)")
    right.plot([r["rows"] for r in rss], [r["spec_peak_rss_bytes"] / 2**20 for r in rss], marker="s", linestyle="--",
               label="statistics pass (build_spec)")
    right.legend()
    right.set_xscale("log")
    right.set_xlabel("rows")
    right.set_ylabel("peak RSS (MiB)")
    right.set_ylim(bottom=0)
    right.set_title("peak RSS, fresh process with TensorFlow")
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
    results = {
        "rows": rows, "quick": options.quick, "throughput": [], "peak_rss": [],
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()},
    }
    with tempfile.TemporaryDirectory(prefix="kfpc-bench-training-") as tmp:
        dataset = make_dataset(Path(tmp) / "data", rows)
        start = time.perf_counter()
        spec = features.build_spec(dataset, LABEL, exclude=EXCLUDE)
        results["spec_seconds"] = time.perf_counter() - start
        repeats = 1 if options.quick else 3
        for batch_size in (256, 1024):
            load_before = os.getloadavg()
            inputs = [input_rate(dataset, spec, batch_size) for _ in range(repeats)]
            steps = 200 if batch_size == 256 else 60
            steps_rates = [step_rate(dataset, spec, batch_size, steps) for _ in range(repeats)]
            input_rows_per_s = statistics.median(r["rows_per_s"] for r in inputs)
            step_rows_per_s = statistics.median(steps_rates)
            entry = {
                "batch_size": batch_size, "input_rows_per_s": input_rows_per_s, "step_rows_per_s": step_rows_per_s,
                "input_over_step": input_rows_per_s / step_rows_per_s, "rows_seen": inputs[0]["rows"],
                "input_rows_per_cpu_s": statistics.median(r["rows_per_cpu_s"] for r in inputs),
                "input_first_batch_seconds": statistics.median(r["first_batch_seconds"] for r in inputs),
                "input_runs_rows_per_s": [r["rows_per_s"] for r in inputs], "step_runs_rows_per_s": steps_rates,
                "load_average_1m_before_after": [load_before[0], os.getloadavg()[0]],
            }
            results["throughput"].append(entry)
            print(json.dumps(entry))
        for size in rss_sizes:
            root = Path(tmp) / f"rss-{size}"
            make_dataset(root, size)
            entry = peak_rss(root)
            entry["load_average_1m"] = os.getloadavg()[0]
            results["peak_rss"].append(entry)
            print(json.dumps(entry))
            import shutil

            shutil.rmtree(root)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["goals"] = {
        "input_at_least_5x_step": all(r["input_over_step"] >= 5 for r in results["throughput"]),
        "rss_ratio_largest_to_smallest": results["peak_rss"][-1]["peak_rss_bytes"] / results["peak_rss"][0]["peak_rss_bytes"],
        "spec_pass_rss_ratio_largest_to_smallest": (
            results["peak_rss"][-1]["spec_peak_rss_bytes"] / results["peak_rss"][0]["spec_peak_rss_bytes"]
        ),
    }
    (RESULTS / "training.json").write_text(json.dumps(results, indent=2))
    plot(results, RESULTS / "training.png")
    print(json.dumps(results["goals"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
