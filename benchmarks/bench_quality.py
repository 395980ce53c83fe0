"""Benchmark: model quality of kfpc's model families against LightGBM and a linear baseline on real tables.

Run: ``.venv/bin/python benchmarks/bench_quality.py [--quick] [--timeout S] [NAME ...]`` (``make bench
BENCH=quality``). Writes ``benchmarks/results/quality.json`` and ``benchmarks/results/quality.png``.

Every table of ``benchmarks/datasets/suite.json`` (12 public tables, 150 to 336,776 rows) goes through kfpc's
own ingest (its hash split: ``Split-train`` / ``Split-eval``, default ``eval_fraction``) and statistics, then:

* ``kfpc dnn`` and ``kfpc gbdt``: ``train.core.train(model_family=...)`` with default parameters; scored on
  ``Split-eval`` through the model contract (the exported SavedModel, ``load_predictor``);
* ``kfpc auto``: the family ``train(model_family="auto")`` keeps: the same rule (``core._choose``: the trees
  unless the network's validation log loss / mse is lower by more than 2 standard errors of the paired per-row
  difference) applied to the two runs above, which are exactly what ``auto`` trains
  (same spec, parts and seed), so the bench does not train them twice on a shared machine;
* ``lightgbm``: LightGBM's defaults fit on all of ``Split-train``; ``lightgbm_es``: fit on kfpc's train part
  and early-stopped (50 rounds, up to 2,000) on kfpc's validation part — the same carve kfpc uses;
* ``linear``: scikit-learn logistic / ridge regression on standardized, mean-imputed numbers with missing
  flags and one-hot categories, fit on all of ``Split-train`` (a sparse design matrix beyond 20M cells).

The baselines see the features kfpc's trees see (``gbdt.ydf_frame``: dates as year / month / weekday / day of
year / hour; categories as pandas categories). Scores on ``Split-eval``: accuracy, log loss, ROC AUC
(classification), R², RMSE, MAE (regression). The primary metric (accuracy / R²) of each kfpc family is
compared with each LightGBM by a paired bootstrap over the eval rows (1,000 resamples, 95% interval of the
difference). The goal of issue 15: no interval entirely below zero for ``kfpc auto``.

Each table runs in a child process with a time cap (``--timeout``); what a child finished before the cap is
kept (results are written after every model). Tables named on the command line are merged into an existing
``--output``: a re-measured table replaces its old record, the others are kept; every record says when and on
what it was measured (``measured``: time, CPUs, load average before and after, time cap). ``--fresh`` starts
an empty file, and so does ``--quick`` (its 3-epoch networks must not sit beside full records). Benchmarks
measure; they do not assert.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "datasets"
RESULTS = HERE / "results"
RESAMPLES = 1000
PRIMARY = {"binary": "accuracy", "multiclass": "accuracy", "regression": "r2"}
MODELS = ("kfpc_dnn", "kfpc_gbdt", "kfpc_auto", "lightgbm", "lightgbm_es", "linear")


def load_suite() -> list[dict]:
    entries = json.loads((DATA / "suite.json").read_text())["datasets"]
    return sorted(entries, key=lambda e: e["rows"])


# ------------------------------------------------------------------------------------------ scoring


def scores(task: str, y: np.ndarray, prediction: np.ndarray) -> dict:
    """Metrics on the eval rows: classification from probabilities ``[n, K]``, regression from values."""
    from sklearn import metrics

    if task == "regression":
        return {"r2": float(metrics.r2_score(y, prediction)),
                "rmse": float(math.sqrt(metrics.mean_squared_error(y, prediction))),
                "mae": float(metrics.mean_absolute_error(y, prediction))}
    k = prediction.shape[1]
    result = {"accuracy": float((prediction.argmax(1) == y).mean()),
              "log_loss": float(metrics.log_loss(y, np.clip(prediction, 1e-7, 1), labels=list(range(k))))}
    try:
        result["roc_auc"] = float(metrics.roc_auc_score(y, prediction[:, 1]) if k == 2 else metrics.roc_auc_score(
            y, prediction, multi_class="ovr", labels=list(range(k))))
    except ValueError:
        result["roc_auc"] = None
    return result


def per_row(task: str, y: np.ndarray, prediction: np.ndarray) -> np.ndarray:
    """Per-row terms of the primary metric (correct 0/1, or squared error) for the bootstrap."""
    if task == "regression":
        return (prediction - y) ** 2
    return (prediction.argmax(1) == y).astype(np.float64)


def bootstrap_difference(task: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, seed: int = 0) -> dict:
    """Paired bootstrap of primary(a) - primary(b) over the eval rows: the difference and its 95% interval."""
    rng = np.random.default_rng(seed)
    rows_a, rows_b = per_row(task, y, a), per_row(task, y, b)
    n = len(y)
    draws = rng.integers(0, n, size=(RESAMPLES, n))
    if task == "regression":
        variance = np.maximum(y[draws].var(axis=1), 1e-300)
        difference = (rows_b[draws].mean(axis=1) - rows_a[draws].mean(axis=1)) / variance  # r2_a - r2_b
        point = float((rows_b.mean() - rows_a.mean()) / max(y.var(), 1e-300))
    else:
        difference = rows_a[draws].mean(axis=1) - rows_b[draws].mean(axis=1)
        point = float(rows_a.mean() - rows_b.mean())
    low, high = np.percentile(difference, [2.5, 97.5])
    return {"difference": point, "low": float(low), "high": float(high), "worse": bool(high < 0)}


# ------------------------------------------------------------------------------------------ one table


def _frames(spec, inputs_train, inputs_eval):
    """Baseline features (the trees' columns) as pandas frames with categories fixed by the train split."""
    import pandas as pd

    from kfpc.components.train import gbdt

    train = pd.DataFrame(gbdt.ydf_frame(inputs_train, spec))
    eval_ = pd.DataFrame(gbdt.ydf_frame(inputs_eval, spec))
    for column in gbdt.columns_of(spec):
        if column.categorical:
            categories = sorted(set(train[column.name]) - {""})
            train[column.name] = pd.Categorical(train[column.name].where(train[column.name] != ""), categories)
            eval_[column.name] = pd.Categorical(eval_[column.name].where(eval_[column.name] != ""), categories)
    return train, eval_


def _lightgbm(task, k, x_fit, y_fit, x_eval, valid=None, seed=0):
    import lightgbm as lgb

    common = {"random_state": seed, "verbose": -1, "n_jobs": 1}
    if valid is not None:
        common["n_estimators"] = 2000
    model = lgb.LGBMRegressor(**common) if task == "regression" else lgb.LGBMClassifier(**common)
    fit = {}
    if valid is not None:
        fit = {"eval_set": [valid], "callbacks": [lgb.early_stopping(50, verbose=False)]}
    model.fit(x_fit, y_fit, **fit)
    if task == "regression":
        return model.predict(x_eval), model
    probabilities = np.zeros((len(x_eval), k))
    probabilities[:, model.classes_.astype(int)] = model.predict_proba(x_eval)
    return probabilities, model


#: design matrices up to this many cells are dense (as the bench always built them); larger ones are sparse:
#: flights' one-hot of 4,043 tail numbers over 262k rows would take ~9 GB dense (the run was OOM-killed)
DENSE_CELLS = 20_000_000


def _linear(task, k, x_fit, y_fit, x_eval):
    import pandas as pd
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression, Ridge

    def design(frame, reference):
        parts = []
        for name in reference.columns:
            column = frame[name]
            if isinstance(reference[name].dtype, pd.CategoricalDtype):
                # one column per category of the reference (pd.get_dummies' layout), all zero when missing
                codes = column.cat.codes.to_numpy()
                rows = np.flatnonzero(codes >= 0)
                parts.append(sparse.csr_matrix((np.ones(len(rows)), (rows, codes[rows])),
                                               shape=(len(frame), len(column.cat.categories))))
            else:
                values = column.astype(float)
                mean, std = reference[name].astype(float).mean(), reference[name].astype(float).std() or 1.0
                mean = 0.0 if not np.isfinite(mean) else mean
                std = 1.0 if not np.isfinite(std) or std == 0 else std
                parts.append(sparse.csr_matrix(np.stack([((values - mean) / std).fillna(0).clip(-10, 10).to_numpy(),
                                                         values.isna().astype(float).to_numpy()], axis=1)))
        matrix = sparse.hstack(parts, format="csr")
        return matrix.toarray() if matrix.shape[0] * matrix.shape[1] <= DENSE_CELLS else matrix

    a, b = design(x_fit, x_fit), design(x_eval, x_fit)
    if task == "regression":
        model = Ridge(alpha=1.0).fit(a, y_fit)
        return model.predict(b)
    model = LogisticRegression(max_iter=2000).fit(a, y_fit)
    probabilities = np.zeros((len(b) if not sparse.issparse(b) else b.shape[0], k))
    probabilities[:, model.classes_.astype(int)] = model.predict_proba(b)
    return probabilities


def run_table(entry: dict, work: Path, out: Path, quick: bool) -> None:
    """Everything for one table; ``out`` (JSON) is rewritten after every model."""
    import logging

    import pyarrow.parquet as pq

    logging.basicConfig(level=logging.WARNING)
    from kfpc.components.contract import load_predictor
    from kfpc.components.ingest.core import ingest
    from kfpc.components.statistics.core import write_statistics
    from kfpc.components.train import core, gbdt
    from kfpc.components.train import input as data_input

    record: dict = {"name": entry["name"], "rows": entry["rows"], "task": None, "models": {}, "seconds": {}}

    def save():
        out.write_text(json.dumps(record, indent=1))

    started = time.time()
    ingest(str(DATA / entry["file"]), work / "data", label=entry["label"])
    write_statistics(work / "data", work / "statistics")
    record["seconds"]["ingest_statistics"] = round(time.time() - started, 1)
    save()
    predictions: dict[str, np.ndarray] = {}
    cards, state = {}, {}
    record["seconds"]["bootstrap"] = 0.0

    def compare():
        # Each pair once: predictions never change, and on a big eval split a bootstrap takes seconds.
        task = state["task"]
        started = time.time()
        comparisons = record.setdefault("comparisons", {})
        for ours in ("kfpc_auto", "kfpc_gbdt", "kfpc_dnn"):
            for theirs in ("lightgbm", "lightgbm_es", "linear"):
                key = f"{ours}-{theirs}"
                if ours in predictions and theirs in predictions and key not in comparisons:
                    comparisons[key] = bootstrap_difference(
                        task, state["y_eval"], predictions[ours], predictions[theirs])
        record["seconds"]["bootstrap"] = round(record["seconds"]["bootstrap"] + time.time() - started, 1)
        save()

    def train_family(family):
        record["stage"] = f"kfpc_{family}"
        save()
        started = time.time()
        result = core.train(work / "data", work / f"model_{family}", label=entry["label"],
                            statistics_dir=work / "statistics", model_family=family, verbose=0,
                            **({"epochs": 3} if quick and family == "dnn" else {}))
        record["seconds"][f"kfpc_{family}_train"] = round(time.time() - started, 1)
        if family == "gbdt":  # of the train step: reading the parts, YDF's fit, the metrics (not the export + gate)
            record["seconds"]["kfpc_gbdt_fit"] = result.card["training"].get("gbdt_seconds")
        spec = state["spec"] = result.spec
        cards[family] = {"metrics": result.card["metrics"], "validation_losses": result.validation_losses[family]}
        if "y_eval" not in state:
            state["inputs_eval"], state["y_eval"] = gbdt.read_part(work / "data" / "Split-eval" / "data.parquet", spec)
            state["task"] = record["task"] = spec.label.task
            record["primary"] = PRIMARY[spec.label.task]
            record["eval_rows"] = int(len(state["y_eval"]))
        started = time.time()
        output = load_predictor(work / f"model_{family}").predict(
            {f.name: state["inputs_eval"][f.input] for f in spec.features})
        record["seconds"][f"kfpc_{family}_predict_eval"] = round(time.time() - started, 1)
        predictions[f"kfpc_{family}"] = output["predictions"].astype(np.float64) if spec.label.task == "regression" \
            else output["probabilities"].astype(np.float64)
        record["models"][f"kfpc_{family}"] = {
            **scores(spec.label.task, state["y_eval"], predictions[f"kfpc_{family}"]),
            "validation": result.metrics["validation"], "hyperparameters": result.card["hyperparameters"]}
        compare()

    def baselines():
        spec, task = state["spec"], state["task"]
        k, y_eval, inputs_eval = len(spec.label.classes), state["y_eval"], state["inputs_eval"]
        train_path = work / "data" / "Split-train" / "data.parquet"
        carve = data_input.Carve(pq.ParquetFile(train_path).metadata.num_rows, core.DEFAULTS["validation_fraction"],
                                 core.DEFAULTS["seed"])
        part_train = gbdt.read_part(train_path, spec, carve, data_input.TRAIN_PART)
        part_valid = gbdt.read_part(train_path, spec, carve, data_input.VALIDATION_PART)
        whole = ({key: np.concatenate([part_train[0][key], part_valid[0][key]]) for key in part_train[0]},
                 np.concatenate([part_train[1], part_valid[1]]))
        x_whole, x_eval = _frames(spec, whole[0], inputs_eval)
        x_train, _ = _frames(spec, part_train[0], inputs_eval)
        x_valid, _ = _frames(spec, part_valid[0], inputs_eval)
        for frame in (x_train, x_valid):  # the same categories as the whole split
            for name in frame.columns:
                if hasattr(x_whole[name], "cat"):
                    frame[name] = frame[name].cat.set_categories(x_whole[name].cat.categories)
        for name, fit in (
            ("lightgbm", lambda: _lightgbm(task, k, x_whole, whole[1], x_eval)[0]),
            ("lightgbm_es", lambda: _lightgbm(task, k, x_train, part_train[1], x_eval,
                                              valid=(x_valid, part_valid[1]))[0]),
            ("linear", lambda: _linear(task, k, x_whole, whole[1], x_eval)),
        ):
            record["stage"] = name
            save()
            started = time.time()
            try:
                predictions[name] = np.asarray(fit(), dtype=np.float64)
                record["models"][name] = scores(task, y_eval, predictions[name])
            except Exception as err:  # a baseline failing is a result, not a harness error
                record["models"][name] = {"error": f"{type(err).__name__}: {err}"}
            record["seconds"][name] = round(time.time() - started, 1)
            compare()

    # Trees and baselines first: on a big table the network may not finish within the time cap.
    train_family("gbdt")
    baselines()
    train_family("dnn")
    chosen, selection = core._choose(cards, state["spec"])
    predictions["kfpc_auto"] = predictions[f"kfpc_{chosen}"]
    record["models"]["kfpc_auto"] = {**record["models"][f"kfpc_{chosen}"], "chosen": chosen, "selection": selection}
    record["complete"] = True
    record["stage"] = "done"
    compare()


# ------------------------------------------------------------------------------------------ driver


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tables = [t for t in results["tables"] if t.get("comparisons")]
    if not tables:
        return
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.45 * len(tables) * 2))
    labels, y = [], 0
    for table in tables:
        for theirs, color in (("lightgbm", "tab:blue"), ("lightgbm_es", "tab:orange")):
            c = table["comparisons"].get(f"kfpc_auto-{theirs}")
            if c is None:
                continue
            ax.errorbar(c["difference"], y, xerr=[[c["difference"] - c["low"]], [c["high"] - c["difference"]]],
                        fmt="o", color=color, capsize=3)
            labels.append(f"{table['name']} ({table['primary']}) vs {theirs}")
            y += 1
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("kfpc auto - LightGBM on Split-eval (accuracy or R²), 95% paired bootstrap")
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the three smallest tables, 3 DNN epochs")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per table (default 1800)")
    parser.add_argument("--output", type=Path, default=RESULTS / "quality.json")
    parser.add_argument("--fresh", action="store_true", help="do not merge into an existing --output")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("names", nargs="*")
    options = parser.parse_args(argv)
    suite = load_suite()
    if options.one:
        entry = next(e for e in suite if e["name"] == options.one)
        run_table(entry, options.work, options.work / "record.json", options.quick)
        return 0
    entries = [e for e in suite if not options.names or e["name"] in options.names]
    if options.quick and not options.names:
        entries = entries[:3]
    results = {"benchmark": "quality", "resamples": RESAMPLES, "tables": []}
    if options.output.exists() and not options.fresh and not options.quick:  # quick: starts afresh, as before
        results = merge_base(json.loads(options.output.read_text()))
    options.output.parent.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        measured = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
                    "quick": options.quick,
                    "load_average_before": [round(x, 2) for x in os.getloadavg()],
                    "timeout_seconds": options.timeout}
        with tempfile.TemporaryDirectory(prefix=f"kfpc-quality-{entry['name']}-") as work:
            started = time.time()
            command = [sys.executable, __file__, "--one", entry["name"], "--work", work] + (
                ["--quick"] if options.quick else [])
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                       start_new_session=True)
            try:
                _, stderr = process.communicate(timeout=options.timeout)
                status = "ok" if process.returncode == 0 else f"exit {process.returncode}"
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                _, stderr = process.communicate()
                status = f"timeout after {options.timeout:.0f} s"
            record_path = Path(work) / "record.json"
            record = json.loads(record_path.read_text()) if record_path.exists() else {"name": entry["name"]}
            record["status"] = status
            record["wall_seconds"] = round(time.time() - started, 1)
            if status != "ok":
                record["stderr_tail"] = (stderr or "").strip().splitlines()[-3:]
            record["measured"] = {**measured, "load_average_after": [round(x, 2) for x in os.getloadavg()]}
        merge(results, record, [e["name"] for e in suite])
        print(summary_line(record), flush=True)
        options.output.write_text(json.dumps(results, indent=1))
        plot(results, options.output.with_suffix(".png"))
    return 0


def merge_base(old: dict) -> dict:
    """An earlier results file as the base of a merge: records without ``measured`` get the run's time cap."""
    for table in old.get("tables", []):
        if "measured" not in table:
            table["measured"] = {"run": "an earlier run of this bench (see note)",
                                 "timeout_seconds": old.get("timeout_seconds")}
    old.pop("timeout_seconds", None)  # per table now, in ``measured``
    return old


def merge(results: dict, record: dict, order: list[str]) -> None:
    """Put ``record`` into ``results`` in place of an older record of its table (tables in suite order)."""
    tables = {t["name"]: t for t in results["tables"]}
    tables[record["name"]] = record
    results["tables"] = sorted(tables.values(), key=lambda t: order.index(t["name"]) if t["name"] in order else 1e9)
    if record.get("status") == "ok" and results.get("incomplete"):
        results["incomplete"] = [t for t in results["incomplete"] if t.get("name") != record["name"]]
        if not results["incomplete"]:
            del results["incomplete"]


def summary_line(record: dict) -> str:
    primary = record.get("primary") or PRIMARY.get(record.get("task") or "", "?")
    models = record.get("models", {})
    cells = " ".join(f"{name}={models[name].get(primary, float('nan')):.4f}" for name in MODELS
                     if name in models and primary in models[name])
    comparisons = record.get("comparisons", {})
    vs = " ".join(f"{key}:[{c['low']:+.4f},{c['high']:+.4f}]" for key, c in comparisons.items()
                  if key.startswith("kfpc_auto-lightgbm"))
    return f"{record['name']}: {record.get('status')} {record.get('wall_seconds')} s {primary} {cells} {vs}"


if __name__ == "__main__":
    sys.exit(main())
