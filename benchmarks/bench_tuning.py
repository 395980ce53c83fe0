"""Benchmark: does the local tuning backend find a better configuration than the pipeline defaults?

Run: ``.venv/bin/python benchmarks/bench_tuning.py [--quick]`` (``make bench BENCH=tuning``). Writes
``benchmarks/results/tuning.json`` and ``benchmarks/results/tuning.png`` (the search history).

On ``benchmarks/datasets/seattle_weather.csv`` (label ``weather``: five classes, two of them rare; the
dataset suite's default run never predicts ``drizzle`` or ``snow``): ingest (eval fraction 0.2, as the
pipeline), then

1. the **untuned** model: train with the pipeline defaults (``kfpc.pipelines.defaults``);
2. a local search (``kfpc.components.tune.core.tune_local``, TPE, 20 trials, ``--quick``: 4) over learning
   rate, dropout, architecture and batch size; the first trial is the default configuration itself, every
   trial is scored on the validation part of ``Split-train`` (objective: validation log loss);
3. the **tuned** model: train the best configuration on the full train split, as ``tuned_training_pipeline``
   does;
4. both models evaluated on ``Split-eval`` (never seen during the search) with the evaluate core.

Measures, never asserts. The validation numbers decide; the eval numbers are reported beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
DATASET = HERE / "datasets" / "seattle_weather.csv"
LABEL = "weather"
SPACE = {
    "objective": {"metric": "validation_loss", "direction": "minimize"},
    "algorithm": "tpe",
    "seed": 0,
    "parameters": {
        "learning_rate": {"type": "float", "min": 0.0003, "max": 0.03, "log": True},
        "dropout": {"type": "float", "min": 0.0, "max": 0.5},
        "hidden_units": {"type": "choice", "values": [[16], [64, 32], [128, 64], [256, 128, 64]]},
        "batch_size": {"type": "choice", "values": [0, 16, 64, 256]},
    },
}


def _train(dataset: Path, out: Path, hyperparameters: dict) -> dict:
    from kfpc.components.train import core as train_core
    from kfpc.pipelines import defaults as D

    result = train_core.train(dataset, out, label=LABEL, validation_fraction=D.VALIDATION_FRACTION, seed=D.SEED,
                              verbose=0, **hyperparameters)
    return {k: result.metrics[k] for k in ("train", "validation")}


def _evaluate(dataset: Path, model: Path, out: Path) -> dict:
    from kfpc.components.evaluate import core as evaluate_core

    result = evaluate_core.evaluate(dataset, model, out)
    keep = ("accuracy", "log_loss", "f1_macro", "recall_macro", "roc_auc", "example_count")
    return {k: result.metrics[k] for k in keep if k in result.metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 trials instead of 20")
    args = parser.parse_args(argv)

    from kfpc.components.ingest import core as ingest
    from kfpc.components.tune import core as tune_core
    from kfpc.components.tune import spec as S
    from kfpc.pipelines import defaults as D

    defaults = {"hidden_units": D.HIDDEN_UNITS, "dropout": D.DROPOUT, "learning_rate": D.LEARNING_RATE,
                "batch_size": D.BATCH_SIZE, "epochs": D.EPOCHS, "patience": D.PATIENCE}
    spec = S.parse_spec({**SPACE, "max_trials": 4 if args.quick else 20})
    work = Path(tempfile.mkdtemp(prefix="kfpc-bench-tuning-"))
    try:
        dataset = work / "data"
        ingest.ingest(str(DATASET), dataset, eval_fraction=D.EVAL_FRACTION, label=LABEL)
        started = time.time()
        untuned_fit = _train(dataset, work / "untuned", defaults)
        untuned_seconds = time.time() - started
        started = time.time()
        search = tune_core.tune_local(dataset, label=LABEL, spec=spec, base=defaults,
                                      validation_fraction=D.VALIDATION_FRACTION, seed=D.SEED)
        search_seconds = time.time() - started
        tune_core.write_outputs(search, work / "tuning")
        shutil.copy2(work / "tuning" / tune_core.HISTORY_PNG, RESULTS / "tuning.png")
        started = time.time()
        tuned_fit = _train(dataset, work / "tuned", search.hyperparameters)
        tuned_seconds = time.time() - started
        untuned_eval = _evaluate(dataset, work / "untuned", work / "untuned-eval")
        tuned_eval = _evaluate(dataset, work / "tuned", work / "tuned-eval")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "dataset": DATASET.name, "label": LABEL, "quick": args.quick, "spec": spec.to_dict(),
        "defaults": defaults,
        "chosen": search.hyperparameters,
        "search": {"trials": len(search.history), "best_trial": search.best_trial,
                   "objective": spec.metric, "best_value": search.best_value,
                   "baseline_trial_value": search.baseline_value, "seconds": round(search_seconds, 1),
                   "history": [{k: r[k] for k in ("trial", "state", "baseline", "objective", "hyperparameters")}
                               for r in search.history]},
        "untuned": {"validation": untuned_fit["validation"], "eval": untuned_eval,
                    "train_seconds": round(untuned_seconds, 1)},
        "tuned": {"validation": tuned_fit["validation"], "eval": tuned_eval, "train_seconds": round(tuned_seconds, 1)},
        "validation_improved": tuned_fit["validation"]["log_loss"] < untuned_fit["validation"]["log_loss"],
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()},
        "note": "validation = the validation part of Split-train (what the search optimises); eval = Split-eval, "
                "never read by the search or by training",
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tuning.json").write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps({k: result[k] for k in ("chosen", "untuned", "tuned", "validation_improved")}, indent=1,
                     default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
