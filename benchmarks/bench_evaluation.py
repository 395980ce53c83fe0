"""Benchmark: evaluation streams in bounded memory.

Evaluates a candidate and a baseline (contract SavedModels, predictions through ``serving_default``) on
eval splits of growing size, with slices (a string column with nulls, numeric quantile buckets, their
cross) and bootstrap intervals. Each size runs in a fresh process, so its peak RSS is its own; the
import-only RSS (TensorFlow + pyarrow) is measured the same way and reported separately.

Also reports how far the streaming ROC AUC is from scikit-learn's exact value on the same scores once
the score histograms have had to coarsen (more distinct scores than ``max_bins``).

    .venv/bin/python benchmarks/bench_evaluation.py [--quick]

Writes ``benchmarks/results/evaluation.json`` and ``benchmarks/results/evaluation.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests" / "evaluation"))

CHILD = r"""
import json, os, resource, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
mode, data, out, candidate, baseline = sys.argv[1:6]
import tensorflow as tf  # the import cost is part of the measured process
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from kfpc.components.evaluate import core
result = {}
if mode == "evaluate":
    config = {"slicing_specs": [{"feature_keys": ["group"]}, {"feature_keys": ["size"], "num_buckets": 4},
                                {"feature_keys": ["group", "size"], "num_buckets": 4}],
              "thresholds": [{"metric": "accuracy", "value_threshold": {"lower_bound": 0.5},
                              "change_threshold": {"absolute": -0.01}}]}
    start = time.perf_counter()
    r = core.evaluate(data, candidate, out, baseline_model_dir=baseline, config=config)
    result = {"seconds": time.perf_counter() - start, "roc_auc": r.metrics["roc_auc"],
              "dropped_bits": r.metrics["score_bins_dropped_bits"], "blessed": r.blessed,
              "slices": len(r.slices)}
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""


def write_split(folder: Path, rows: int, seed: int = 0, chunk: int = 200_000) -> Path:
    """A binary eval split of ``rows`` rows, written in chunks (the generator itself stays small)."""
    rng = np.random.default_rng(seed)
    path = folder / "Split-eval" / "data.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = None
    groups = np.array([f"g{i:03d}" for i in range(40)], dtype=object)
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        labels = rng.random(n) < 0.4
        signal = labels - 0.5
        group = groups[rng.integers(0, len(groups), n)]
        group[rng.random(n) < 0.05] = None
        table = pa.table({
            "score": 1 / (1 + np.exp(-(2.0 * signal + rng.normal(size=n)))),
            "score_old": 1 / (1 + np.exp(-(1.5 * signal + rng.normal(size=n)))),
            "group": pa.array(group, type=pa.string()),
            "size": rng.lognormal(2, 0.5, n),
            "label": np.where(labels, "yes", "no"),
        })
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema, compression="zstd")
        writer.write_table(table)
    writer.close()
    return folder


def run_child(mode: str, data: str = "-", out: str = "-", candidate: str = "-", baseline: str = "-") -> dict:
    env = {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, mode, data, out, candidate, baseline], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def exact_auc(folder: Path, model: Path) -> float:
    """scikit-learn's ROC AUC on the model's own float32 scores (read in full: the reference, not the method)."""
    from sklearn.metrics import roc_auc_score

    from kfpc.components.evaluate import core

    predictor = core._load_predictor(str(model))
    table = pq.read_table(folder / "Split-eval" / "data.parquet", columns=["score", "group", "label"])
    scores, labels = [], []
    for batch in table.to_batches(max_chunksize=200_000):
        group = np.asarray(batch.column("group").fill_null("").to_numpy(zero_copy_only=False), dtype=object)
        out = predictor.predict({"score": batch.column("score").to_numpy(), "group": group})
        scores.append(out["probabilities"][:, 1])
        labels.append(batch.column("label").to_numpy(zero_copy_only=False) == "yes")
    return float(roc_auc_score(np.concatenate(labels), np.concatenate(scores)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (CI smoke run)")
    args = parser.parse_args()
    sizes = [20_000, 100_000] if args.quick else [100_000, 300_000, 1_000_000]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import oracle_models

    results: dict = {"sizes": [], "import_only": None, "quick": args.quick}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        candidate = oracle_models.build(tmp / "candidate", "binary", ["no", "yes"])
        baseline = oracle_models.build(tmp / "baseline", "binary", ["no", "yes"], suffix="_old")
        results["import_only"] = run_child("import")
        print(f"import only: peak RSS {results['import_only']['peak_rss_mb']:.0f} MB", flush=True)
        for rows in sizes:
            folder = write_split(tmp / f"data_{rows}", rows)
            measured = run_child("evaluate", str(folder), str(tmp / f"out_{rows}"), str(candidate), str(baseline))
            measured["rows"] = rows
            measured["rows_per_second"] = rows / measured["seconds"]
            if rows == sizes[-1]:
                measured["exact_roc_auc"] = exact_auc(folder, candidate)
                measured["roc_auc_abs_error"] = abs(measured["exact_roc_auc"] - measured["roc_auc"])
            results["sizes"].append(measured)
            print(json.dumps(measured), flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "evaluation.json").write_text(json.dumps(results, indent=2))
    plot(results, RESULTS / "evaluation.png")
    return 0


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [s["rows"] for s in results["sizes"]]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(rows, [s["peak_rss_mb"] for s in results["sizes"]], "o-", label="evaluate (candidate + baseline)")
    axes[0].axhline(results["import_only"]["peak_rss_mb"], ls=":", color="#888", label="imports only")
    axes[0].set(xscale="log", xlabel="eval rows", ylabel="peak RSS (MB)", title="Peak memory vs rows", ylim=(0, None))
    axes[1].plot(rows, [s["rows_per_second"] for s in results["sizes"]], "o-")
    axes[1].set(xscale="log", xlabel="eval rows", ylabel="rows / s", title="Throughput (2 models, 1 thread)",
                ylim=(0, None))
    for axis in axes:
        axis.grid(alpha=0.3)
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=90)


if __name__ == "__main__":
    sys.exit(main())
