"""Permutation feature importance of a trained model on a Dataset split (plain Python; no kfp import).

Each feature's column is shuffled across the rows of a bounded sample of the split and the model's metric
measured again through its serving predictor; the importance is how much the metric gets worse, over a few
shuffles (mean and spread). The metric, computed by evaluation's own accumulators: ROC AUC (binary),
log-loss (multi-class; smooth where accuracy moves in steps on small samples) and RMSE (regression).

Model-agnostic and on held-out rows: it measures what the served model relies on, not what a tree or a
weight says. Correlated features share their importance (shuffling one leaves the other to carry it).
"""

from __future__ import annotations

import dataclasses
import html
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .. import types
from .._fs import atomic_dir
from .._redact import excerpt

# The model contract and the Dataset layout, each in one line (issue 16 moves them to
# kfpc.components.contract.load_predictor and the artifacts module; repoint these two lines only).
from ..artifacts import read_split as _read_split
from ..contract import load_predictor as _load_predictor
from ..evaluate import metrics as metric_lib
from ..evaluate.core import _label_text

IMPORTANCE_FILE = "importance.json"
REPORT_FILE = "report.html"
#: most rows of the split scored (a uniform sample beyond it): the cost is features x repeats predictions
SAMPLE_ROWS = 5_000
REPEATS = 3
SEED = 42
#: features shown in the Metrics artifact (all of them are in the JSON table and the report)
TOP_METRICS = 10


class FeatureImportanceError(ValueError):
    """The inputs cannot be scored; the message names the file, the column or the parameter and the value."""


@dataclasses.dataclass
class FeatureScore:
    feature: str
    importance: float  # mean over the repeats; > 0: the model is worse without the feature
    spread: float  # standard deviation over the repeats
    repeats: list[float]


@dataclasses.dataclass
class ImportanceResult:
    task: str
    metric: str
    higher_is_better: bool
    baseline: float
    rows: int
    split_rows: int
    repeats: int
    features: list[FeatureScore]  # most important first

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "metric": self.metric, "higher_is_better": self.higher_is_better,
                "baseline": self.baseline, "rows": self.rows, "split_rows": self.split_rows, "repeats": self.repeats,
                "features": [dataclasses.asdict(f) for f in self.features]}

    def top_metrics(self, limit: int = TOP_METRICS) -> dict[str, float]:
        """KFP scalar metrics: the baseline and the ``limit`` most important features (``importance_<name>``)."""
        out = {f"baseline_{self.metric}": self.baseline}
        for score in self.features[:limit]:
            out[f"importance_{_metric_key(score.feature)}"] = score.importance
        return out


def _metric_key(name: str) -> str:
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60]
    return key or "_"


# ---- metrics: evaluation's own accumulators, so a feature's importance is in the units evaluation reports

def _scorer(task: str, classes: list[str]):
    """``(metric name, higher is better, score(outputs, target))`` for the task."""
    if task == "regression":
        def rmse(outputs, target):
            accumulator = metric_lib.RegressionAccumulator()
            accumulator.add(target, np.asarray(outputs["predictions"], dtype=np.float64).reshape(-1))
            return accumulator.result()["rmse"]

        return "rmse", False, rmse
    metric = "roc_auc" if task == "binary" else "log_loss"

    def classification(outputs, target):
        accumulator = metric_lib.ClassificationAccumulator(classes)
        accumulator.add(target, outputs["probabilities"], outputs.get("class_ids"))
        return accumulator.result()[metric]

    return metric, task == "binary", classification


# ---- data

def _sample(table, sample_rows: int, seed: int):
    if table.num_rows <= sample_rows:
        return table
    rng = np.random.default_rng(seed)
    return table.take(np.sort(rng.choice(table.num_rows, size=sample_rows, replace=False)))


def _target(column, task: str, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(target, usable row mask)``: class indices or numbers; rows without a usable label are left out."""
    if task == "regression":
        target = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        return target, ~np.isnan(target)
    # labels read as evaluation reads them (integral numbers as "3", booleans as "0"/"1"), so both score alike
    ids = pc.index_in(_label_text(column.combine_chunks()), value_set=pa.array(classes, type=pa.string()))
    known = ids.is_valid().to_numpy(zero_copy_only=False)
    return pc.fill_null(ids, 0).to_numpy(zero_copy_only=False).astype(np.int64), known


def _columns(table, features: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for name in features:
        column = table.column(name)
        values = column.to_numpy(zero_copy_only=False)
        out[name] = values if values.dtype.kind in "fiub" else np.asarray(values, dtype=object)
    return out


# ---- importance

def permutation_importance(
    data_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    *,
    split: str = "eval",
    sample_rows: int = SAMPLE_ROWS,
    repeats: int = REPEATS,
    seed: int = SEED,
) -> ImportanceResult:
    """Permutation importance of every model feature on a bounded sample of ``split``.

    Args:
        data_dir: the Dataset artifact folder (``Split-<split>/data.parquet``).
        model_dir: the Model artifact folder (read through the model contract).
        split: the split scored; ``eval`` is the one training never saw.
        sample_rows: most rows scored (a seeded uniform sample beyond).
        repeats: shuffles per feature (their spread is reported).
        seed: seed of the sample and the shuffles.
    Returns:
        An :class:`ImportanceResult`, features most important first.
    Raises:
        FeatureImportanceError: a bad parameter, a missing split, label or feature column, no labelled rows.
    """
    for name, value in (("sample_rows", sample_rows), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise FeatureImportanceError(f"{name} must be an integer >= 1, got {value!r}")
    predictor = _load_predictor(model_dir)
    card = predictor.card
    task, label = card[types.TASK], card[types.LABEL]
    classes = [str(c) for c in card.get(types.CLASSES) or []]
    features = [f["name"] for f in card[types.FEATURES]]
    try:
        table = _read_split(data_dir, split)
    except FileNotFoundError as err:
        raise FeatureImportanceError(str(err)) from None
    where = f"{data_dir}/Split-{split}"
    missing = [c for c in [label, *features] if c not in table.column_names]
    if missing:
        raise FeatureImportanceError(f"{where}: no column {excerpt(missing[0])} (the model's "
                                     f"{'label' if missing[0] == label else 'feature'}); columns: "
                                     f"{table.column_names[:20]}")
    split_rows = table.num_rows
    table = _sample(table.select([label, *features]), sample_rows, seed)
    target, usable = _target(table.column(label), task, classes)
    if not usable.any():
        raise FeatureImportanceError(f"{where}: no row of {table.num_rows} has a label {excerpt(label)} among the "
                                     f"model's classes {classes[:10]}" if classes else
                                     f"{where}: no row of {table.num_rows} has a label {excerpt(label)}")
    table, target = table.filter(usable), target[usable]
    columns = _columns(table, features)
    metric, higher_is_better, score = _scorer(task, classes)
    baseline = score(predictor.predict(columns), target)
    if math.isnan(baseline):
        raise FeatureImportanceError(f"{where}: {metric} is undefined on these {target.size} rows "
                                     f"(one class only?); score a larger split or sample (sample_rows)")
    rng = np.random.default_rng(seed)
    scores = []
    for name in features:
        original = columns[name]
        drops = []
        for _ in range(repeats):
            columns[name] = original[rng.permutation(original.size)]
            permuted = score(predictor.predict(columns), target)
            drops.append(baseline - permuted if higher_is_better else permuted - baseline)
        columns[name] = original
        scores.append(FeatureScore(name, float(np.mean(drops)), float(np.std(drops)), [float(d) for d in drops]))
    scores.sort(key=lambda s: (-s.importance, s.feature))
    return ImportanceResult(task, metric, higher_is_better, float(baseline), int(target.size), split_rows, repeats,
                            scores)


# ---- outputs

def bar_chart_svg(result: ImportanceResult, limit: int = 30) -> str:
    """An inline SVG bar chart (mean importance, whisker = spread) of the ``limit`` most important features."""
    shown = result.features[:limit]
    width, bar_height, left, right = 720, 22, 220, 80
    height = 30 + bar_height * len(shown)
    top = max([s.importance + s.spread for s in shown] + [0.0]) or 1.0
    low = min([s.importance - s.spread for s in shown] + [0.0])
    span = (top - low) or 1.0
    plot = width - left - right

    def x(value: float) -> float:
        return left + (value - low) / span * plot

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="permutation importance">',
             f'<line x1="{x(0):.1f}" y1="10" x2="{x(0):.1f}" y2="{height - 10}" stroke="#999"/>']
    for i, s in enumerate(shown):
        y = 15 + i * bar_height
        start, end = sorted((x(0), x(s.importance)))
        name = html.escape(s.feature if len(s.feature) <= 32 else s.feature[:31] + "…")
        parts += [
            f'<text x="{left - 6}" y="{y + 14}" text-anchor="end" font-size="12">{name}</text>',
            f'<rect x="{start:.1f}" y="{y + 3}" width="{max(end - start, 0.5):.1f}" height="{bar_height - 8}" '
            f'fill="{"#3b75af" if s.importance >= 0 else "#c44e52"}"/>',
            f'<line x1="{x(s.importance - s.spread):.1f}" y1="{y + 11}" x2="{x(s.importance + s.spread):.1f}" '
            f'y2="{y + 11}" stroke="#222"/>',
            f'<text x="{width - right + 6}" y="{y + 14}" font-size="11">{s.importance:.4g}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def html_report(result: ImportanceResult) -> str:
    """A standalone HTML page: what was measured, the bar chart and the full table (names escaped)."""
    direction = "drop" if result.higher_is_better else "increase"
    rows = "".join(
        f"<tr><td>{html.escape(s.feature)}</td><td>{s.importance:.5g}</td><td>{s.spread:.3g}</td>"
        f"<td>{', '.join(f'{v:.4g}' for v in s.repeats)}</td></tr>" for s in result.features
    )
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Permutation importance</title>"
        "<style>body{font-family:sans-serif;margin:1.5em}td,th{padding:2px 10px;text-align:left}"
        "table{border-collapse:collapse}tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        "<h1>Permutation feature importance</h1>"
        f"<p>Task {html.escape(result.task)}; metric <b>{html.escape(result.metric)}</b> = {result.baseline:.5g} on "
        f"{result.rows} rows (of {result.split_rows} in the split). Importance: the {direction} of the metric when "
        f"the feature's column is shuffled, mean over {result.repeats} shuffles; the whisker is one standard "
        "deviation. Near 0 or below: the model does not rely on the feature here; correlated features share "
        "their importance.</p>"
        f"{bar_chart_svg(result)}"
        "<table><tr><th>feature</th><th>importance</th><th>spread</th><th>each shuffle</th></tr>"
        f"{rows}</table></body></html>"
    )


def write_outputs(result: ImportanceResult, output_dir: str | os.PathLike) -> Path:
    """Write ``importance.json`` and ``report.html`` into a new folder, atomically; returns the folder."""
    with atomic_dir(output_dir) as scratch:
        (Path(scratch) / IMPORTANCE_FILE).write_text(json.dumps(result.to_json(), indent=2))
        (Path(scratch) / REPORT_FILE).write_text(html_report(result), encoding="utf-8")
    return Path(output_dir)
