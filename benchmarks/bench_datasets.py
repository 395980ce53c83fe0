"""Benchmark: the real-dataset suite through ``kfpc run training_pipeline`` with default parameters only.

Run: ``.venv/bin/python benchmarks/bench_datasets.py [--quick] [--timeout S] [NAME ...]``. Writes
``benchmarks/results/datasets.json`` and ``benchmarks/results/datasets.png``.

Each table of ``benchmarks/datasets/suite.json`` (12 public tables, 150 to 336,776 rows; see its README)
goes through ``kfpc run training_pipeline --param source_uri=<file> --param label=<label>
--param model_name=<name>`` and nothing else, one at a time, smallest first. Recorded per table: exit code,
wall seconds, every task's status and seconds, the failing task and the first line of its error, the
validation anomalies, the evaluate step's metrics and blessing. Then the reported metrics are RECOMPUTED
from the SavedModel alone (``tf.saved_model.load(<model>/1)``, signature ``serving_default``, fed the eval
split's raw columns: strings as ``tf.string`` with "" missing, numbers as ``float64`` with NaN missing) with
scikit-learn's metric functions, and compared at 1e-6 relative tolerance. A peer gives the numbers context:
scikit-learn's ``HistGradientBoosting`` with default settings, fit on the same train split and scored on
the same eval rows. ``--quick``: the two smallest tables.

What the suite expects of the product (the proof of issue 14): every run exits 0, no anomaly on these
clean random splits (any anomaly is a validation false positive), metrics equal the recomputation.
Benchmarks measure, they do not assert: failures are recorded and the exit code is 0 unless the harness
itself broke.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfpc.components.artifacts import split_file

HERE = Path(__file__).resolve().parent
DATA = HERE / "datasets"
RESULTS = HERE / "results"
RTOL = 1e-6
#: metrics compared between the evaluate step and the recomputation, per task
COMPARED = {
    "binary": ("example_count", "accuracy", "roc_auc", "pr_auc", "log_loss"),
    "multiclass": ("example_count", "accuracy", "roc_auc", "pr_auc", "log_loss"),
    "regression": ("example_count", "rmse", "mae", "r2"),
}


def load_suite() -> list[dict]:
    """The suite's entries (``suite.json``), smallest table first."""
    entries = json.loads((DATA / "suite.json").read_text())["datasets"]
    return sorted(entries, key=lambda e: e["rows"])


def model_name(name: str) -> str:
    """A model name KServe accepts (DNS-1123: lowercase, digits, '-')."""
    return re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")


def kfpc_command() -> list[str]:
    """The ``kfpc`` console script beside this interpreter, else the CLI module."""
    script = Path(sys.executable).with_name("kfpc")
    return [str(script)] if script.exists() else [sys.executable, "-m", "kfpc.pipelines.cli"]


# ------------------------------------------------------------------------------------------- the run


def run_pipeline(entry: dict, run_dir: Path, timeout: float) -> dict:
    """``kfpc run training_pipeline`` on one table with the three parameters a new user gives; its record."""
    command = kfpc_command() + [
        "run", "training_pipeline",
        "--param", f"source_uri={DATA / entry['file']}",
        "--param", f"label={entry['label']}",
        "--param", f"model_name={model_name(entry['name'])}",
        "--output-dir", str(run_dir),
    ]
    start = time.perf_counter()
    # a session of its own: on timeout the whole group goes, kfp.local's task processes included
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        exit_code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, _ = process.communicate()
        exit_code, stderr = None, f"timed out after {timeout:.0f} s"
    record: dict = {
        "name": entry["name"], "file": entry["file"], "label": entry["label"], "rows": entry["rows"],
        "expected_task": entry["task"], "covers": entry["covers"], "command": command,
        "exit_code": exit_code, "seconds": round(time.perf_counter() - start, 1), "run_dir": str(run_dir),
    }
    summary_file = run_dir / "summary.json"
    if not summary_file.exists():
        record["error"] = (stderr.strip() or stdout.strip() or "no summary.json")[-2000:]
        record["error_first_line"] = _first_line(record["error"])
        log = run_dir / "run.log"
        if log.exists():  # what a killed run got through
            text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
            record["tasks_started"] = re.findall(r"Executing task '([^']+)'", text)
            record["tasks_finished"] = re.findall(r"Task '([^']+)' finished with status (\w+)", text)
        return record
    summary = json.loads(summary_file.read_text())
    record["status"] = summary["status"]
    record["tasks"] = [{"name": t["name"], "status": t["status"], "seconds": t["seconds"]} for t in summary["tasks"]]
    failed = [t["name"] for t in summary["tasks"] if t["status"] == "FAILURE"]
    record["failed_task"] = failed[0] if failed else None
    record["error"] = summary.get("error", "")[-4000:]
    record["error_first_line"] = _task_error_line(record["error"], record["failed_task"])
    tasks = {t["name"]: t for t in summary["tasks"]}
    ingest = tasks.get("ingest", {}).get("artifacts", {}).get("data")
    if ingest:
        record["data_dir"] = ingest["path"]
        record["split_rows"] = ingest["metadata"].get("rows")
        record["column_types"] = ingest["metadata"].get("columns")
    validate = tasks.get("validate")
    if validate:
        record["anomaly_count"] = validate.get("outputs", {}).get("anomaly_count")
        anomalies = validate.get("artifacts", {}).get("anomalies")
        found = _read_anomalies(Path(anomalies["path"])) if anomalies else []
        # a warning (e.g. one rare value outside an inferred range) reports, it does not stop: errors only count
        record["anomalies"] = [a for a in found if not a.endswith(WARNING_SUFFIX)]
        record["warnings"] = [a[: -len(WARNING_SUFFIX)] for a in found if a.endswith(WARNING_SUFFIX)]
        if validate["status"] == "FAILURE" and record["failed_task"] == "validate":
            record["anomalies"] = record["anomalies"] or _anomalies_in_error(record["error"]) or [
                record["error_first_line"]]
    train = tasks.get("train", {}).get("artifacts", {})
    if "model" in train:
        record["model_dir"] = train["model"]["path"]
        record["task"] = train["model"]["metadata"].get("task")
        record["train_metrics"] = train.get("metrics", {}).get("metadata", {})
    evaluate = tasks.get("evaluate", {}).get("artifacts", {})
    if "metrics" in evaluate:
        record["metrics"] = {k: v for k, v in evaluate["metrics"]["metadata"].items() if k != "blessed"}
    if "blessing" in evaluate:
        blessing = evaluate["blessing"]["metadata"]
        record["blessed"] = blessing.get("blessed")
        record["failed_thresholds"] = blessing.get("failed_thresholds", [])
        record["headline_metric"] = blessing.get("headline_metric")
    push = tasks.get("push-kserve")
    record["pushed"] = bool(push and push["status"] == "SUCCESS")
    return record


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _task_error_line(error: str, task: str | None) -> str:
    """The first line of the failed task's exception (the run summary appends it as ``<task>: <cause>``)."""
    lines = error.splitlines()
    for i, line in enumerate(lines):
        if task and line.startswith(f"{task}: "):
            first = line[len(task) + 2:].strip()
            # "N anomalies in split 'eval':" is followed by the line that names them
            if first.endswith(":") and i + 1 < len(lines):
                first = f"{first} {lines[i + 1].strip()}"
            return first
    return _first_line(error)


def _anomalies_in_error(error: str) -> list[str]:
    """The ``feature: TYPE: description`` lines validate's error lists (its artifact is lost when it fails)."""
    return [line.strip() for line in error.splitlines() if re.match(r"^\s*[^:]+: [A-Z][A-Z_]+: ", line)]


WARNING_SUFFIX = " [warning]"


def _read_anomalies(folder: Path) -> list[str]:
    """``feature: short description`` of every anomaly in an ``anomalies.pbtxt`` (text, no TFMD needed)."""
    path = folder / "anomalies.pbtxt" if folder.is_dir() else folder
    if not path.exists():
        return []
    text = path.read_text()
    found = []
    for match in re.finditer(r'anomaly_info\s*\{\s*key:\s*"([^"]*)"(.*?)(?=anomaly_info\s*\{|\Z)', text, re.S):
        descriptions = re.findall(r'short_description:\s*"([^"]*)"', match.group(2))
        warning = re.search(r'^\s*severity:\s*WARNING', match.group(2), re.M) is not None
        found.append(f"{match.group(1)}: {'; '.join(dict.fromkeys(descriptions))}" + (WARNING_SUFFIX if warning else ""))
    return found


# ------------------------------------------------------------------------------------ recomputation


def label_text(column: pa.Array) -> np.ndarray:
    """Labels as class names (object array, None missing): integral numbers as ``"3"``, booleans and text as is."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    values = column.to_pylist()
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[i] = None
        elif isinstance(value, bool):
            out[i] = str(value)
        elif isinstance(value, (int, float)) and float(value).is_integer():
            out[i] = str(int(value))
        else:
            out[i] = str(value)
    return out


def _class_index(labels: np.ndarray, classes: list[str]) -> np.ndarray:
    """Class index of each label; booleans match the card's spelling of them: True / true / 1."""
    index = {c: i for i, c in enumerate(classes)}
    lower = {c.lower(): i for i, c in enumerate(classes)}
    as_number = {"true": "1", "false": "0"}
    out = np.empty(len(labels), dtype=np.int64)
    for i, value in enumerate(labels):
        found = index.get(value, lower.get(value.lower(), index.get(as_number.get(value.lower(), ""))))
        if found is None:
            raise ValueError(f"label value {value!r} is not a class of the model {classes}")
        out[i] = found
    return out


def feed(table: pa.Table, card: dict) -> dict[str, np.ndarray]:
    """The signature's raw inputs, per the model card: strings "" missing, float64 NaN missing."""
    inputs = {}
    for feature in card["features"]:
        column = table.column(feature["name"]).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        key = feature.get("input", feature["name"])
        if feature.get("dtype") == "string":
            text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
            inputs[key] = np.array(pc.fill_null(text, "").to_pylist(), dtype=object)
        else:
            if pa.types.is_temporal(column.type):  # not expected today; epoch seconds if a model ever asks
                column = epoch_seconds(column)
            inputs[key] = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
    return inputs


def epoch_seconds(column: pa.Array) -> pa.Array:
    """A date or timestamp column as float64 seconds since 1970 (null stays null)."""
    if pa.types.is_date(column.type):
        column = pc.cast(column, pa.timestamp("s"))
    elif pa.types.is_timestamp(column.type):
        column = pc.cast(column, pa.timestamp("s", tz=column.type.tz), safe=False)
    return pc.cast(pc.cast(column, pa.int64()), pa.float64())


def predict_saved_model(model_dir: str, table: pa.Table, batch: int = 65_536) -> tuple[dict, dict[str, np.ndarray]]:
    """The model card and the ``serving_default`` outputs over ``table``, TensorFlow alone."""
    import tensorflow as tf

    card = json.loads((Path(model_dir) / "model_card.json").read_text())
    signature = tf.saved_model.load(str(Path(model_dir) / "1")).signatures["serving_default"]
    outputs: dict[str, list[np.ndarray]] = {}
    for start in range(0, table.num_rows, batch):
        inputs = feed(table.slice(start, batch), card)
        tensors = {k: tf.constant(v, dtype=tf.string if v.dtype == object else tf.float64) for k, v in inputs.items()}
        for key, value in signature(**tensors).items():
            outputs.setdefault(key, []).append(value.numpy())
    return card, {k: np.concatenate(v) for k, v in outputs.items()}


def classification_metrics(y: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray | None = None) -> dict:
    """accuracy, ROC AUC, average precision (binary: positive class = index 1; multi-class: one-vs-rest macro
    over the classes with positives and negatives), log loss (clipped at the probabilities' epsilon)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    k = probabilities.shape[1]
    predicted = np.argmax(probabilities, axis=1) if predicted is None else predicted.reshape(-1)
    eps = np.finfo(probabilities.dtype).eps
    true_p = np.clip(probabilities[np.arange(len(y)), y], eps, 1 - eps).astype(np.float64)
    out = {"example_count": float(len(y)), "accuracy": float(np.mean(predicted == y)),
           "log_loss": float(-np.mean(np.log(true_p)))}
    columns = [1] if k == 2 else range(k)
    aucs, aps = [], []
    for c in columns:
        positive = y == c
        if positive.all() or not positive.any():
            continue
        scores = probabilities[:, c].astype(np.float64)
        aucs.append(roc_auc_score(positive, scores))
        aps.append(average_precision_score(positive, scores))
    out["roc_auc"] = float(np.mean(aucs)) if aucs else float("nan")
    out["pr_auc"] = float(np.mean(aps)) if aps else float("nan")
    return out


def regression_metrics(y: np.ndarray, prediction: np.ndarray) -> dict:
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    prediction = prediction.reshape(-1).astype(np.float64)
    return {"example_count": float(len(y)), "rmse": float(np.sqrt(mean_squared_error(y, prediction))),
            "mae": float(mean_absolute_error(y, prediction)), "r2": float(r2_score(y, prediction))}


def recompute(record: dict) -> dict:
    """The evaluate step's metrics recomputed through the SavedModel on the eval split, and the comparison."""
    table = pq.read_table(split_file(record["data_dir"], "eval"))
    card, outputs = predict_saved_model(record["model_dir"], table)
    label = card["label"]
    task = card["task"]
    if task == "regression":
        y = pc.cast(table.column(label), pa.float64()).to_numpy(zero_copy_only=False)
        present = np.isfinite(y)
        metrics = regression_metrics(y[present], outputs["predictions"].reshape(-1)[present])
    else:
        text = label_text(table.column(label))
        present = np.array([v is not None for v in text])
        y = _class_index(text[present], [str(c) for c in card["classes"]])
        class_ids = outputs.get("class_ids")
        metrics = classification_metrics(y, outputs["probabilities"][present],
                                          None if class_ids is None else class_ids.reshape(-1)[present])
    reported = record.get("metrics", {})
    comparison = {}
    for name in COMPARED[task]:
        mine, theirs = metrics.get(name), reported.get(name)
        if theirs is None:
            comparison[name] = {"recomputed": mine, "reported": None, "match": False}
            continue
        both_nan = mine is not None and math.isnan(mine) and math.isnan(theirs)
        close = both_nan or math.isclose(mine, theirs, rel_tol=RTOL, abs_tol=1e-12)
        comparison[name] = {"recomputed": mine, "reported": theirs, "match": bool(close),
                            "relative_difference": None if both_nan else abs(mine - theirs) / max(abs(theirs), 1e-12)}
    return {"eval_rows_with_label": int(present.sum()), "eval_rows_without_label": int((~present).sum()),
            "metrics": metrics, "comparison": comparison,
            "match": all(c["match"] for c in comparison.values())}


# -------------------------------------------------------------------------------------------- the peer


def _peer_frame(table: pa.Table, columns: list[str], categories: dict | None):
    import pandas as pd

    frame = {}
    categories = {} if categories is None else categories
    for name in columns:
        column = table.column(name).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        if pa.types.is_temporal(column.type):
            frame[name] = epoch_seconds(column).to_numpy(zero_copy_only=False)
        elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            values = pd.Series(column.to_pylist(), dtype=object)
            if name not in categories:  # the train split's most frequent values (HGB takes at most 255)
                categories[name] = list(values.value_counts().index[:250])
            frame[name] = pd.Categorical(values, categories=categories[name])
        else:
            frame[name] = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return pd.DataFrame(frame), categories


def peer(record: dict, task: str, features: list[str]) -> dict:
    """scikit-learn HistGradientBoosting (defaults) on the train split, scored on the eval split's labelled rows."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    train = pq.read_table(split_file(record["data_dir"], "train"))
    evaluation = pq.read_table(split_file(record["data_dir"], "eval"))
    label = record["label"]
    start = time.perf_counter()
    x_train, categories = _peer_frame(train, features, None)
    x_eval, _ = _peer_frame(evaluation, features, categories)
    if task == "regression":
        y_train = pc.cast(train.column(label), pa.float64()).to_numpy(zero_copy_only=False)
        y_eval = pc.cast(evaluation.column(label), pa.float64()).to_numpy(zero_copy_only=False)
        keep_train, keep_eval = np.isfinite(y_train), np.isfinite(y_eval)
        model = HistGradientBoostingRegressor(categorical_features="from_dtype", random_state=0)
        model.fit(x_train[keep_train], y_train[keep_train])
        metrics = regression_metrics(y_eval[keep_eval], model.predict(x_eval[keep_eval]))
    else:
        y_train, y_eval = label_text(train.column(label)), label_text(evaluation.column(label))
        keep_train = np.array([v is not None for v in y_train])
        keep_eval = np.array([v is not None for v in y_eval])
        model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
        model.fit(x_train[keep_train], y_train[keep_train].astype(str))
        classes = [str(c) for c in model.classes_]
        known = np.isin(y_eval[keep_eval].astype(str), classes)
        probabilities = model.predict_proba(x_eval[keep_eval][known])
        metrics = classification_metrics(_class_index(y_eval[keep_eval][known].astype(str), classes), probabilities)
    metrics["seconds"] = round(time.perf_counter() - start, 2)
    return metrics


def peer_features(record: dict) -> list[str]:
    """The model's features when a model exists, else every column but the label."""
    if record.get("model_dir"):
        card = json.loads((Path(record["model_dir"]) / "model_card.json").read_text())
        return [f["name"] for f in card["features"]]
    return [c for c in pq.read_schema(split_file(record["data_dir"], "train")).names if c != record["label"]]


# -------------------------------------------------------------------------------------------- driver


def run_dataset(entry: dict, work: Path, timeout: float, with_peer: bool = True) -> dict:
    """Run, recompute and compare one table; never raises for a failure of the product (it is recorded)."""
    record = run_pipeline(entry, work / entry["name"], timeout)
    if record.get("model_dir"):  # also when evaluate failed: the numbers it could not report
        try:
            record["recomputation"] = recompute(record)
        except Exception as err:  # recorded: a model that cannot be fed its own eval split is a finding
            record["recomputation"] = {"match": False, "error": f"{type(err).__name__}: {err}"}
    if with_peer and record.get("data_dir") and split_file(record["data_dir"], "train", must_exist=False).exists():
        task = record.get("task") or entry["task"]
        try:
            record["peer"] = {"name": "sklearn HistGradientBoosting (defaults)", "task": task,
                              **peer(record, task, peer_features(record))}
        except Exception as err:
            record["peer"] = {"error": f"{type(err).__name__}: {err}"}
    record["ok"] = ok(record)
    return record


def ok(record: dict) -> bool:
    """What the suite expects: exit 0, no anomaly, metrics equal to the recomputation."""
    return (record.get("exit_code") == 0 and not record.get("anomaly_count") and not record.get("anomalies")
            and bool(record.get("recomputation", {}).get("match")))


def headline(task: str | None) -> str:
    return "r2" if task == "regression" else "roc_auc"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = results["datasets"]
    names = [f"{r['name']}\n{r['rows']:,}" for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    colors = ["tab:green" if r["ok"] else ("tab:orange" if r.get("exit_code") == 0 else "tab:red") for r in records]
    left.bar(range(len(records)), [r["seconds"] for r in records], color=colors)
    for i, r in enumerate(records):
        tag = "ok" if r["ok"] else (r.get("failed_task") or ("timeout" if r.get("exit_code") is None else "mismatch"))
        left.annotate(tag, (i, r["seconds"]), ha="center", va="bottom", fontsize=7)
    left.set_xticks(range(len(records)), names, rotation=60, ha="right", fontsize=7)
    left.set_ylabel("kfpc run wall seconds")
    left.set_yscale("log")
    left.set_title("kfpc run, defaults only (green ok, orange exit 0 but not ok, red failed)")
    width = 0.4
    for offset, source, label in ((-width / 2, "metrics", "kfpc (evaluate step)"), (width / 2, "peer", "HistGradientBoosting")):
        values = []
        for r in records:
            metric = headline(r.get("task") or r["expected_task"])
            value = (r.get(source) or {}).get(metric)
            values.append(np.nan if value is None else value)
        right.bar([i + offset for i in range(len(records))], values, width, label=label)
    for i, r in enumerate(records):
        if r.get("blessed") is not None:
            right.annotate("B" if r["blessed"] else "NB", (i - width / 2, 0.02), ha="center", fontsize=7)
    right.set_xticks(range(len(records)), names, rotation=60, ha="right", fontsize=7)
    right.set_ylabel("eval ROC AUC (classification) / R² (regression)")
    right.set_ylim(0, 1.05)
    load = results["machine"]["load_average_at_start"][0]
    right.set_title(f"eval split metric vs a peer; B blessed, NB not ({results['machine']['cpus']} CPUs, load {load:.1f})")
    right.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the two smallest tables")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per kfpc run (default 3600)")
    parser.add_argument("--no-peer", action="store_true", help="skip the HistGradientBoosting peer")
    parser.add_argument("--output", type=Path, default=RESULTS / "datasets.json", help="results JSON path")
    parser.add_argument("--keep-runs", type=Path, default=None, help="keep run folders here (default: a temp dir)")
    parser.add_argument("names", nargs="*", help="tables to run (default: all); see benchmarks/datasets/suite.json")
    options = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    suite = load_suite()
    known = {e["name"] for e in suite}
    unknown = [n for n in options.names if n not in known]
    if unknown:
        parser.error(f"unknown dataset(s) {unknown}; known: {', '.join(sorted(known))}")
    if options.names:
        suite = [e for e in suite if e["name"] in options.names]
    elif options.quick:
        suite = suite[:2]
    results = {"quick": options.quick, "timeout_seconds": options.timeout, "rtol": RTOL, "datasets": [],
               "machine": {"cpus": os.cpu_count(), "load_average_at_start": os.getloadavg()}}
    options.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="kfpc-bench-datasets-") as tmp:
        work = options.keep_runs or Path(tmp)
        for entry in suite:
            print(f"== {entry['name']} ({entry['rows']:,} rows, label {entry['label']})", flush=True)
            record = run_dataset(entry, work, options.timeout, with_peer=not options.no_peer)
            results["datasets"].append(record)
            print(json.dumps(short(record)), flush=True)
            options.output.write_text(json.dumps(results, indent=2, default=str))  # partial results survive
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["summary"] = summarize(results["datasets"])
    options.output.write_text(json.dumps(results, indent=2, default=str))
    plot(results, options.output.with_suffix(".png"))
    print(json.dumps(results["summary"]))
    return 0


def summarize(records: list[dict]) -> dict:
    """The suite's verdict: tables that passed, exited 0, had validation errors or warnings, mismatched."""
    return {
        "datasets": len(records), "ok": sum(r["ok"] for r in records),
        "exit_0": sum(r.get("exit_code") == 0 for r in records),
        "with_anomalies": [r["name"] for r in records if r.get("anomaly_count") or r.get("anomalies")],
        "with_warnings": [r["name"] for r in records if r.get("warnings")],
        "recomputation_mismatch": [r["name"] for r in records
                                   if "recomputation" in r and not r["recomputation"].get("match")],
    }


def short(record: dict) -> dict:
    """One line per table for the console."""
    task = record.get("task") or record["expected_task"]
    metric = headline(task)
    return {
        "name": record["name"], "exit": record.get("exit_code"), "seconds": record["seconds"],
        "failed_task": record.get("failed_task"), "error": record.get("error_first_line", "")[:200],
        "anomalies": record.get("anomaly_count", len(record.get("anomalies") or [])), metric: (record.get("metrics") or {}).get(metric),
        f"peer_{metric}": (record.get("peer") or {}).get(metric), "blessed": record.get("blessed"),
        "recomputed_match": (record.get("recomputation") or {}).get("match"), "ok": record["ok"],
    }


if __name__ == "__main__":
    sys.exit(main())
