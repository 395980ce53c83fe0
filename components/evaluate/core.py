"""Evaluate a candidate model (and optionally the model now in production) on the eval split, by slice,
and decide whether the candidate is blessed.

What is measured is what will be served: predictions come from the exported SavedModel's
``serving_default`` signature (through :func:`kfpc.components.contract.load_predictor`), fed the
raw columns exactly as the serving layer feeds them. The eval split is read in record batches and every
metric is a streaming accumulator (:mod:`.metrics`), so memory does not grow with the number of rows.

Output folder (the Blessing artifact; written atomically)::

    evaluation.json   every metric of every slice, candidate and baseline, intervals, curves
    blessing.json     blessed + every threshold with its value, bound and verdict
    BLESSED | NOT_BLESSED   an empty marker file (TFX's ModelBlessing convention)
    report.html       the HTML report with plots
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import artifacts, contract, types
from .. import defaults as D
from .._fs import local_path, parquet_batches
from .._json import json_safe
from . import bootstrap, slicing
from . import metrics as metric_lib
from . import thresholds as threshold_lib
from .thresholds import EvalConfig, EvalConfigError, SlicingSpec, Threshold  # noqa: F401

REPORT_FILE = "report.html"
#: residual samples per slice (quantiles only; no threshold default reads them) are smaller than the overall one
SLICE_MAX_SAMPLES = 1 << 12
#: rows read per record batch (and sent to the model per call)
DEFAULT_BATCH_SIZE = 65_536
#: points kept of each curve written to evaluation.json / the KFP UI
CURVE_POINTS = 201

__all__ = ["EvalConfig", "EvalConfigError", "EvaluationError", "EvalResult", "evaluate"]


class EvaluationError(ValueError):
    """The data or the models cannot be evaluated; the message names the file, column and value at fault."""


@dataclasses.dataclass
class EvalResult:
    """What :func:`evaluate` decided and measured.

    Attributes:
        blessed: every applicable threshold passed.
        metrics: overall metrics of the candidate.
        baseline_metrics: overall metrics of the baseline (empty without a baseline).
        verdicts: one entry per (threshold, slice): metric, slice, value, bounds, passed, reason.
        task: ``binary`` | ``multiclass`` | ``regression``.
        classes: class names (classification).
        intervals: bootstrap intervals of the overall headline metrics.
        slices: per-slice metrics (see ``evaluation.json``).
        confusion_matrix: overall candidate confusion matrix (rows: true class), classification only.
        roc_curve: ``{"fpr", "tpr", "thresholds"}`` of the candidate (binary: positive class; multi-class:
            micro average), classification only.
        output_dir: where the files were written.
    """

    blessed: bool
    metrics: dict[str, float]
    baseline_metrics: dict[str, float]
    verdicts: list[dict[str, Any]]
    task: str
    classes: list[str]
    intervals: dict[str, dict[str, list[float]]]
    slices: list[dict[str, Any]]
    confusion_matrix: list[list[int]] | None
    roc_curve: dict[str, list[float]] | None
    output_dir: str
    headline_metric: str = ""
    skill_metric: str = ""
    skill_metric_reason: str = ""

    def metadata(self) -> dict[str, Any]:
        """Blessing artifact metadata under documented keys (``blessed``, ``thresholds``, ...)."""
        return {
            types.BLESSED: self.blessed,
            types.TASK: self.task,
            "headline_metric": self.headline_metric,
            "headline_value": json_safe(self.metrics.get(self.headline_metric)),
            "baseline_headline_value": json_safe(self.baseline_metrics.get(self.headline_metric)),
            "has_baseline": bool(self.baseline_metrics),
            "skill_metric": self.skill_metric,
            "skill_metric_reason": self.skill_metric_reason,
            "thresholds": json_safe(self.verdicts),
            "failed_thresholds": [failed_threshold_text(v) for v in self.verdicts if v["passed"] is False],
            "failed_threshold_details": failed_threshold_details(self.verdicts),
        }


# --------------------------------------------------------------------------------------------- models


class _Model:
    """A loaded predictor with what evaluation needs from its card."""

    def __init__(self, model_dir: str, role: str):
        self.dir = model_dir
        self.role = role
        try:
            self.predictor = contract.load_predictor(model_dir)
        except (OSError, ValueError) as err:
            raise EvaluationError(f"{role} model {model_dir}: cannot be loaded ({err})") from err
        card = self.predictor.card
        self.card = card
        self.task = card.get("task")
        if self.task not in ("binary", "multiclass", "regression"):
            raise EvaluationError(f"{role} model {model_dir}: model_card.json task is {self.task!r}")
        self.label = card.get("label")
        self.classes = [str(c) for c in card.get("classes") or []]
        if self.task != "regression" and len(self.classes) < 2:
            raise EvaluationError(f"{role} model {model_dir}: model_card.json lists classes {self.classes}")
        self.features = [f if isinstance(f, dict) else {"name": f, "dtype": "float64"} for f in card.get("features", [])]

    def inputs(self, batch: pa.RecordBatch, path: Path) -> dict[str, np.ndarray]:
        """The raw signature inputs of a batch, per THE MODEL CONTRACT (strings "" missing, float64 NaN missing)."""
        out = {}
        for feature in self.features:
            name = feature["name"]
            column = batch.column(name)
            if pa.types.is_dictionary(column.type):
                column = column.dictionary_decode()
            key = name  # predictors take columns by name and map them to signature inputs themselves
            if feature.get("dtype") == "string":
                text = column if pa.types.is_string(column.type) else pc.cast(column, pa.string())
                out[key] = np.asarray(pc.fill_null(text, "").to_numpy(zero_copy_only=False), dtype=object)
            else:
                try:
                    values = pc.cast(column, pa.float64())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                    raise EvaluationError(
                        f"{path}: column {name!r} ({column.type}) is a numeric input of the {self.role} model "
                        f"but cannot be read as numbers ({err})") from err
                out[key] = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        return out

    def predict(self, batch: pa.RecordBatch, path: Path) -> dict[str, np.ndarray]:
        """Serving-signature outputs for a batch."""
        outputs = self.predictor.predict(self.inputs(batch, path))
        needed = ("predictions",) if self.task == "regression" else ("probabilities",)
        for name in needed:
            if name not in outputs:
                raise EvaluationError(f"{self.role} model {self.dir}: signature outputs {sorted(outputs)} lack {name!r}")
        return {name: np.asarray(value) for name, value in outputs.items()}


def _class_alignment(candidate: _Model, baseline: _Model) -> np.ndarray:
    """Column of the baseline's probabilities for each candidate class (-1: the baseline lacks the class)."""
    index = {name: i for i, name in enumerate(baseline.classes)}
    return np.array([index.get(name, -1) for name in candidate.classes], dtype=np.int64)


# --------------------------------------------------------------------------------------------- data


def _label_text(column: pa.Array) -> pa.Array:
    """Labels as the class names models use: integer-valued numbers as ``"3"``, booleans as ``"0"``/``"1"``
    (train reads a boolean label as the integers 0 and 1), text as is."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_decimal(column.type):
        values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        text = np.full(values.shape, None, dtype=object)
        present = ~np.isnan(values)
        integral = present & (np.round(values) == values)
        text[integral] = np.round(values[integral]).astype(np.int64).astype(str)
        text[present & ~integral] = values[present & ~integral].astype(str)
        return pa.array(text, type=pa.string())
    if pa.types.is_boolean(column.type):
        return pc.cast(pc.cast(column, pa.int8()), pa.string())
    return column if pa.types.is_string(column.type) else pc.cast(column, pa.string())


def _label_ids(column: pa.Array, classes: list[str], path: Path, label: str) -> tuple[np.ndarray, np.ndarray]:
    text = _label_text(column)
    present = text.is_valid().to_numpy(zero_copy_only=False)
    ids = pc.index_in(text, value_set=pa.array(classes, type=pa.string()))
    known = ids.is_valid().to_numpy(zero_copy_only=False)
    unseen = present & ~known
    if unseen.any():
        values = sorted(set(np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)[unseen].tolist()))
        raise EvaluationError(
            f"{path}: label column {label!r} has value(s) {values[:10]} ({int(unseen.sum())} rows) unseen in "
            f"training; the model knows the classes {classes}")
    return pc.fill_null(ids, 0).to_numpy(zero_copy_only=False).astype(np.int64), present


def _numeric_edges(config: EvalConfig, path: Path, numeric: set[str], statistics_dir: str | None,
                   batch_size: int) -> tuple[dict[tuple[str, int], np.ndarray], dict[str, str]]:
    """Bucket edges for every numeric slicing feature: from the train statistics, else from a data sample."""
    wanted = {(f, s.num_buckets) for s in config.slicing_specs for f in s.feature_keys if f in numeric}
    edges: dict[tuple[str, int], np.ndarray] = {}
    source: dict[str, str] = {}
    if not wanted:
        return edges, source
    if statistics_dir:
        stats = _load_train_statistics(statistics_dir)
        for feature, buckets in wanted:
            if feature in stats:
                found = slicing.quantile_edges_from_statistics(stats[feature], buckets)
                if found is not None:
                    edges[(feature, buckets)] = found
                    source[feature] = "statistics"
    missing = sorted({f for f, b in wanted if (f, b) not in edges})
    if missing:
        reservoirs = {f: metric_lib.Reservoir(100_000, seed=1) for f in missing}
        for batch in parquet_batches(path, EvaluationError, batch_size=batch_size, columns=missing):
            for feature in missing:
                values = pc.cast(batch.column(feature), pa.float64()).to_numpy(zero_copy_only=False)
                reservoirs[feature].add({"v": values[np.isfinite(values)]})
        for feature, buckets in wanted:
            if (feature, buckets) not in edges:
                sample = reservoirs[feature].columns.get("v", np.zeros(0))
                edges[(feature, buckets)] = slicing.quantile_edges_from_sample(sample, buckets)
                source[feature] = "eval data sample"
    return edges, source


def _load_train_statistics(statistics_dir: str) -> dict[str, Any]:
    """FeatureNameStatistics by feature name from ``<dir>/Split-train/FeatureStats.pb``."""
    try:
        stats_list = artifacts.read_statistics(statistics_dir, types.TRAIN)
    except ValueError as err:
        raise EvaluationError(f"{statistics_dir}: cannot read the training statistics ({err})") from err
    out = {}
    for dataset in stats_list.datasets:
        for feature in dataset.features:
            name = feature.path.step[0] if feature.path.step else feature.name
            out[name] = feature
    return out


# --------------------------------------------------------------------------------------------- evaluation


def metric_names(task: str, classes: list[str]) -> list[str]:
    """Every metric name :func:`evaluate` computes for a task (what thresholds may name)."""
    if task == "regression":
        names = ["example_count", "rmse", "mae", "mse", "mape", "r2"]
        return names + [f"residual_q{int(round(q * 100)):02d}" for q in metric_lib.RESIDUAL_QUANTILES]
    names = ["example_count", "accuracy", "roc_auc", "pr_auc", "log_loss", "expected_calibration_error"]
    names += [f"pr_auc/{c}" for c in classes]
    for metric in ("precision", "recall", "f1"):
        names += [f"{metric}_macro"] + [f"{metric}/{c}" for c in classes]
    return names


class _SliceState:
    """Accumulators of one slice for the candidate and the baseline."""

    def __init__(self, task: str, classes: list[str], has_baseline: bool, overall: bool):
        def make():
            if task == "regression":
                return metric_lib.RegressionAccumulator(
                    metric_lib.DEFAULT_MAX_SAMPLES if overall else SLICE_MAX_SAMPLES)
            # Exact score histograms in every slice: the gate reads ROC/PR AUC of slices of any size.
            return metric_lib.ClassificationAccumulator(classes)

        self.candidate = make()
        self.baseline = make() if has_baseline else None


def _add(acc, task: str, labels: np.ndarray, outputs: dict[str, np.ndarray], rows: np.ndarray | slice) -> None:
    if task == "regression":
        acc.add(labels[rows], outputs["predictions"].reshape(-1)[rows])
    else:
        acc.add(labels[rows], outputs["probabilities"][rows], outputs["class_ids"][rows])


def _classification_outputs(model: _Model, outputs: dict[str, np.ndarray], alignment: np.ndarray | None,
                            classes: int) -> dict[str, np.ndarray]:
    probabilities = outputs["probabilities"]
    if probabilities.ndim != 2 or probabilities.shape[1] != len(model.classes):
        raise metric_lib.PredictionError(
            f"{model.role} model {model.dir}: 'probabilities' has shape {probabilities.shape}; its card lists "
            f"{len(model.classes)} classes")
    if alignment is not None:  # baseline: reorder its classes like the candidate's; absent classes get 0
        aligned = np.zeros((len(probabilities), classes), dtype=probabilities.dtype)
        present = alignment >= 0
        aligned[:, present] = probabilities[:, alignment[present]]
        probabilities = aligned
        class_ids = np.argmax(probabilities, axis=1)
    else:
        class_ids = outputs.get("class_ids")
        class_ids = np.argmax(probabilities, axis=1) if class_ids is None else np.asarray(class_ids).reshape(-1)
    return {"probabilities": probabilities, "class_ids": class_ids.astype(np.int64)}


def _downsample_curve(*arrays: np.ndarray, points: int = CURVE_POINTS) -> list[np.ndarray]:
    n = len(arrays[0])
    if n <= points:
        return list(arrays)
    keep = np.unique(np.linspace(0, n - 1, points).round().astype(int))
    return [a[keep] for a in arrays]


def _slice_name(values: tuple[tuple[str, str], ...]) -> str:
    return "overall" if not values else ", ".join(f"{k}={v}" for k, v in values)


def evaluate(
    dataset_dir: str | os.PathLike,
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    baseline_model_dir: str | os.PathLike | None = None,
    config: EvalConfig | dict | str | None = None,
    statistics_dir: str | os.PathLike | None = None,
    split: str = types.EVAL,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> EvalResult:
    """Evaluate the candidate (and the baseline) on one split, by slice, and judge the thresholds.

    Args:
        dataset_dir: Dataset artifact folder (``Split-<split>/data.parquet``).
        model_dir: the candidate Model artifact folder (THE MODEL CONTRACT).
        output_dir: the Blessing artifact folder to write (must be absent or empty).
        baseline_model_dir: the model now served, evaluated on the same rows; ``None`` on a first run.
        config: :class:`EvalConfig`, its dict/JSON form, or ``None`` (overall slice, no thresholds: blessed).
        statistics_dir: Statistics artifact of the training data (numeric slice buckets); optional.
        split: the split to evaluate.
        batch_size: rows per record batch and per model call.
    Returns:
        EvalResult.
    Raises:
        EvaluationError: missing split or column, unseen label values, a threshold's slice with no rows,
            incompatible baseline; nothing is written.
        EvalConfigError: malformed config or a threshold naming a metric the task does not compute.
    """
    config = EvalConfig.parse(config)
    path = artifacts.split_file(dataset_dir, split)
    candidate = _Model(local_path(str(model_dir)), "candidate")
    baseline = _Model(local_path(str(baseline_model_dir)), "baseline") if baseline_model_dir else None
    task, classes, label = candidate.task, candidate.classes, candidate.label
    if baseline is not None:
        if baseline.task != task or baseline.label != label:
            raise EvaluationError(
                f"baseline model {baseline.dir} predicts {baseline.label!r} ({baseline.task}) but the candidate "
                f"predicts {label!r} ({task}): they cannot be compared")
    threshold_lib.check_metric_names(config, metric_names(task, classes), task)

    # pre_buffer keeps every range read until the reader closes: memory would grow with the rows
    parquet = pq.ParquetFile(path, pre_buffer=False)
    schema = parquet.schema_arrow
    if label not in schema.names:
        raise EvaluationError(f"{path}: label column {label!r} is missing; columns: {schema.names}")
    for model in (candidate, baseline):
        if model is None:
            continue
        absent = [f["name"] for f in model.features if f["name"] not in schema.names]
        if absent:
            raise EvaluationError(
                f"{path}: column(s) {absent} are inputs of the {model.role} model {model.dir} but missing from "
                f"the data; columns: {schema.names}")
    slice_features = sorted({f for s in config.slicing_specs for f in s.feature_keys})
    for feature in slice_features:
        if feature not in schema.names:
            raise EvaluationError(f"{path}: slicing feature {feature!r} is not a column; columns: {schema.names}")
    kinds = {f["name"]: f.get("kind") for f in candidate.features}
    numeric = {f for f in slice_features
               if kinds.get(f) == "numeric" or (kinds.get(f) is None and slicing.is_numeric(schema.field(f).type))}
    edges, edge_source = _numeric_edges(config, path, numeric, statistics_dir and local_path(str(statistics_dir)),
                                        batch_size)
    slicer = slicing.Slicer(config.slicing_specs, edges, numeric, config.max_slices_per_spec)

    columns = sorted({label, *slice_features, *(f["name"] for f in candidate.features),
                      *((f["name"] for f in baseline.features) if baseline else ())})
    has_baseline = baseline is not None
    states: list[dict[int, _SliceState]] = [{} for _ in config.slicing_specs]
    reservoir = metric_lib.Reservoir(config.bootstrap.reservoir_size, config.bootstrap.seed)
    alignment = _class_alignment(candidate, baseline) if has_baseline and task != "regression" else None
    rows_without_label = 0
    total_rows = 0
    for batch in parquet_batches(path, EvaluationError, batch_size=batch_size, columns=columns):
        if task == "regression":
            labels = pc.cast(batch.column(label), pa.float64()).to_numpy(zero_copy_only=False)
            present = np.isfinite(labels)
        else:
            labels, present = _label_ids(batch.column(label), classes, path, label)
        rows_without_label += int((~present).sum())
        if not present.all():
            batch = batch.filter(pa.array(present))
            labels = labels[present]
        if batch.num_rows == 0:
            continue
        total_rows += batch.num_rows
        outputs = {"candidate": candidate.predict(batch, path)}
        if has_baseline:
            outputs["baseline"] = baseline.predict(batch, path)
        if task != "regression":
            outputs["candidate"] = _classification_outputs(candidate, outputs["candidate"], None, len(classes))
            if has_baseline:
                outputs["baseline"] = _classification_outputs(baseline, outputs["baseline"], alignment, len(classes))
        slice_ids = slicer.assign(batch)
        for s, ids in enumerate(slice_ids):
            order = np.argsort(ids, kind="stable")
            bounds = np.flatnonzero(np.diff(ids[order])) + 1
            for group in np.split(order, bounds):
                slice_id = int(ids[group[0]])
                state = states[s].get(slice_id)
                if state is None:
                    state = states[s][slice_id] = _SliceState(task, classes, has_baseline, overall=(s == 0))
                _add(state.candidate, task, labels, outputs["candidate"], group)
                if has_baseline:
                    _add(state.baseline, task, labels, outputs["baseline"], group)
        sample = {"label": labels}
        for role, out in outputs.items():
            for name, values in out.items():
                if name in ("probabilities", "class_ids", "predictions"):
                    sample[f"{role}_{name}"] = values.reshape(-1) if name == "predictions" else values
        for s, ids in enumerate(slice_ids):
            sample[f"slice_{s}"] = ids
        reservoir.add(sample)
    if total_rows == 0:
        raise EvaluationError(f"{path}: no rows with a label {label!r} to evaluate ({rows_without_label} without)")

    # ---- the skill metric, metrics per slice, intervals
    overall_state = states[0][0]
    counts = overall_state.candidate.class_counts().tolist() if task != "regression" else None
    skill_metric, skill_reason = threshold_lib.resolve_auto(task, classes, counts)
    thresholds = [dataclasses.replace(t, metric=skill_metric) if t.metric == threshold_lib.AUTO else t
                  for t in config.thresholds]
    headline_metric = "rmse" if task == "regression" else skill_metric
    boot = config.bootstrap
    slices: list[dict[str, Any]] = []
    overall = overall_state.candidate.result()
    overall_baseline = overall_state.baseline.result() if has_baseline else {}
    overall_trivial = overall_state.candidate.trivial()
    point = {"candidate": overall, "trivial": overall_trivial,
             **({"baseline": overall_baseline} if has_baseline else {})}
    weights = bootstrap.poisson_weights(len(reservoir), boot.replicates, boot.seed)
    bounded = _interval_metrics(task, config, thresholds, headline_metric)
    intervals = bootstrap.intervals(task, reservoir.columns, bounded[0], total_rows, point, weights,
                                    confidence=boot.confidence, classes=classes)
    for s, spec in enumerate(config.slicing_specs):
        ordered = sorted(range(len(slicer.values[s])), key=lambda i, s=s: slicer.sort_key(s, slicer.values[s][i]))
        for slice_id in ordered:
            values = slicer.values[s][slice_id]
            state = states[s].get(slice_id)
            if state is None:
                continue
            count = state.candidate.count
            entry: dict[str, Any] = {
                "spec": spec.name(), "spec_index": s, "slice": _slice_name(values), "values": dict(values),
                # the overall slice is always judged: skipping it would bless an unjudged model (a tiny eval
                # split is the intervals' business, which widen with fewer rows)
                "count": count, "too_small": bool(spec.feature_keys) and count < config.min_slice_size,
            }
            entry["candidate"] = state.candidate.result()
            entry["baseline"] = state.baseline.result() if has_baseline else {}
            entry["trivial"] = state.candidate.trivial()
            if s == 0:
                entry["intervals"] = intervals
            elif not entry["too_small"] and boot.replicates:
                rows = reservoir.columns[f"slice_{s}"] == slice_id
                sub = {k: v[rows] for k, v in reservoir.columns.items()}
                point_slice = {"candidate": entry["candidate"], "trivial": entry["trivial"],
                               **({"baseline": entry["baseline"]} if has_baseline else {})}
                entry["intervals"] = bootstrap.intervals(task, sub, bounded[s], count, point_slice,
                                                         weights[:, rows], confidence=boot.confidence, classes=classes)
            else:
                entry["intervals"] = {}
            slices.append(entry)

    verdicts = _judge(config, thresholds, slices, path, task)
    blessed = all(v["passed"] is not False for v in verdicts)

    overall_acc = overall_state.candidate
    confusion = roc = None
    curves: dict[str, Any] = {}
    if task != "regression":
        confusion = overall_acc.confusion.tolist()
        roc = _curves(overall_acc)
        curves["candidate"] = roc
        if has_baseline:
            curves["baseline"] = _curves(overall_state.baseline)
    result = EvalResult(
        blessed=blessed, metrics=overall, baseline_metrics=overall_baseline, verdicts=verdicts, task=task,
        classes=classes, intervals=intervals, slices=slices, confusion_matrix=confusion,
        roc_curve=roc and {k: roc[k] for k in ("fpr", "tpr", "thresholds")}, output_dir=str(output_dir),
        headline_metric=headline_metric, skill_metric=skill_metric, skill_metric_reason=skill_reason,
    )
    evaluation = {
        "task": task, "label": label, "classes": classes, "split": split, "data": str(path),
        "candidate_model": candidate.dir, "baseline_model": baseline.dir if baseline else None,
        "example_count": total_rows, "rows_without_label": rows_without_label,
        "metrics": {"candidate": overall, "baseline": overall_baseline, "trivial": overall_trivial},
        "intervals": intervals, "headline_metric": headline_metric,
        "skill_metric": {"metric": skill_metric, "reason": skill_reason,
                         "trivial_predictor": _trivial_name(task), "imbalance_cutoff": threshold_lib.IMBALANCE_CUTOFF},
        "slices": slices, "slice_truncated": {config.slicing_specs[s].name(): t for s, t in enumerate(slicer.truncated)},
        "bucket_edges": {f"{f} ({b} buckets)": e.tolist() for (f, b), e in edges.items()},
        "bucket_edge_source": edge_source, "curves": curves,
        "confusion_matrix": {"candidate": confusion,
                             "baseline": overall_state.baseline.confusion.tolist() if has_baseline and confusion else None},
        "config": config.to_dict(),
    }
    if task == "regression":
        evaluation["residual_sample"] = _residual_sample(overall_state)
    if task != "regression":
        evaluation["calibration"] = {role: _calibration(acc) for role, acc in
                                     (("candidate", overall_acc), ("baseline", overall_state.baseline)) if acc}
    blessing = {"blessed": blessed, "verdicts": verdicts, "failed_thresholds": result.metadata()["failed_thresholds"],
                "failed_threshold_details": failed_threshold_details(verdicts),
                "skill_metric": skill_metric, "skill_metric_reason": skill_reason,
                "candidate_model": candidate.dir, "baseline_model": baseline.dir if baseline else None}
    from . import report

    evaluation, blessing = json_safe(evaluation), json_safe(blessing)
    artifacts.write_blessing(output_dir, blessing, evaluation,
                             extra_files={REPORT_FILE: report.render(evaluation, blessing)})
    return result


def _curves(acc: metric_lib.ClassificationAccumulator) -> dict[str, list[float]]:
    histogram = acc.micro_histogram()
    fpr, tpr, thresholds = histogram.roc_curve()
    fpr, tpr, thresholds = _downsample_curve(fpr, tpr, thresholds)
    recall, precision = histogram.pr_curve()
    recall, precision = _downsample_curve(recall, precision)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "thresholds": np.minimum(thresholds, 1.0).tolist(),
            "recall": recall.tolist(), "precision": precision.tolist(),
            "kind": "positive class" if len(acc.classes) == 2 else "micro average (one-vs-rest)"}


def _calibration(acc: metric_lib.ClassificationAccumulator) -> dict[str, list[float]]:
    count = acc.reliability_count
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"count": count.tolist(),
                "mean_probability": np.where(count > 0, acc.reliability_probability / count, np.nan).tolist(),
                "observed_rate": np.where(count > 0, acc.reliability_positive / count, np.nan).tolist(),
                "kind": "positive class" if len(acc.classes) == 2 else "top-label confidence"}


def _residual_sample(state: _SliceState, points: int = 2000) -> dict[str, list[float]]:
    out = {}
    for role, acc in (("candidate", state.candidate), ("baseline", state.baseline)):
        if acc is None or not acc.residuals.columns:
            continue
        columns = acc.residuals.columns
        out[role] = {k: columns[k][:points].tolist() for k in ("label", "prediction", "residual")}
    return out


def _target_slices(threshold: Threshold, config: EvalConfig, slices: list[dict], path: Path) -> list[dict]:
    if threshold.slicing_spec is not None:
        index = config.slicing_specs.index(threshold.slicing_spec)
        return [s for s in slices if s["spec_index"] == index]
    if threshold.slice is not None:
        keys = tuple(k for k, _ in threshold.slice)
        wanted = dict(threshold.slice)
        candidates = [s for s in slices if set(s["values"]) == set(keys)]
        match = [s for s in candidates if s["values"] == wanted]
        if not match:
            seen = sorted(s["slice"] for s in candidates)
            raise EvaluationError(
                f"{path}: threshold on {threshold.metric} for slice {_slice_name(threshold.slice)} has no rows to "
                f"judge (an empty slice); slices present: {seen[:20]}")
        return match
    return [s for s in slices if s["spec_index"] == 0]


def _trivial_name(task: str) -> str:
    return "mean predictor" if task == "regression" else "class prior"


def _interval_metrics(task: str, config: EvalConfig, thresholds: list[Threshold], headline: str) -> list[list[str]]:
    """Per slicing spec, the metrics to bound: overall the headline ones and every threshold's metric; in
    other specs the headline metric and the metrics of thresholds that judge that spec."""
    out = []
    for s, spec in enumerate(config.slicing_specs):
        if s == 0:
            wanted = [headline, *bootstrap.HEADLINE_METRICS[task], *(t.metric for t in thresholds)]
        else:
            wanted = [headline, *(
                t.metric for t in thresholds
                if t.slicing_spec == spec or (t.slice is not None and {k for k, _ in t.slice} == set(spec.feature_keys)))]
        out.append([m for m in dict.fromkeys(wanted) if bootstrap.supports(task, m)])
    return out


def _judge(config: EvalConfig, thresholds: list[Threshold], slices: list[dict], path: Path,
           task: str) -> list[dict[str, Any]]:
    verdicts = []
    for configured, threshold in zip(config.thresholds, thresholds, strict=True):
        for entry in _target_slices(threshold, config, slices, path):
            base = {"metric": threshold.metric, "slice": entry["slice"], "count": entry["count"],
                    "value": entry["candidate"].get(threshold.metric, math.nan),
                    "use_confidence_interval": threshold.use_confidence_interval}
            if configured.metric != threshold.metric:
                base["configured_metric"] = configured.metric
            if entry["too_small"]:
                verdicts.append({**base, "kind": "slice", "passed": None, "skipped": True,
                                 "reason": f"slice {entry['slice']} has {entry['count']} rows < min_slice_size "
                                           f"{config.min_slice_size}: not judged"})
                continue
            interval = entry.get("intervals", {}).get(threshold.metric, {})
            if threshold.skill_threshold is not None:
                trivial = entry.get("trivial", {}).get(threshold.metric)
                verdicts.append({**base, **threshold_lib.skill_verdict(
                    threshold, base["value"], trivial, interval.get("candidate"), interval.get("skill"),
                    _trivial_name(task))})
            if threshold.value_threshold is not None:
                verdicts.append({**base, **threshold_lib.value_verdict(threshold, base["value"],
                                                                       interval.get("candidate"))})
            if threshold.change_threshold is not None:
                baseline_value = entry["baseline"].get(threshold.metric, math.nan) if entry["baseline"] else None
                verdicts.append({**base, **threshold_lib.change_verdict(threshold, base["value"], baseline_value,
                                                                        interval.get("difference"))})
    return verdicts


#: keys of every entry of ``failed_threshold_details`` (blessing metadata and blessing.json)
FAILED_DETAIL_KEYS = ("metric", "slice", "kind", "value", "interval", "compared", "bound", "trivial", "baseline",
                      "reason")


def failed_threshold_details(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The failed verdicts reduced to what a reader needs: metric, slice, kind, value, interval, the end of
    the interval compared, the bound (value bound, trivial value + margin, or the baseline's allowed value),
    the trivial and baseline values, and the reason."""
    return [json_safe({key: v.get(key) for key in FAILED_DETAIL_KEYS}) for v in verdicts if v["passed"] is False]


def failed_threshold_text(verdict: dict[str, Any]) -> str:
    """One line that stands alone in a run summary: ``<kind> threshold on <metric> (<slice>): <reason>``."""
    return f"{verdict['kind']} threshold on {verdict['metric']} ({verdict['slice']}): {verdict['reason']}"


def pipeline_config(model_dir: str | os.PathLike, config_json: str = "", *, min_accuracy: float = D.MIN_ACCURACY,
                    max_regression: float = D.MAX_REGRESSION) -> EvalConfig:
    """The config the component uses: ``config_json`` when given, else the default thresholds for the task.

    Args:
        model_dir: the candidate Model artifact (its card gives the task).
        config_json: an EvalConfig in JSON (see :mod:`.thresholds`); empty for the defaults.
        min_accuracy: classification accuracy lower bound of the default config.
        max_regression: allowed accuracy drop (absolute) / RMSE increase (relative) vs the baseline.
    Returns:
        EvalConfig.
    """
    if config_json and config_json.strip():
        return EvalConfig.parse(config_json)
    task = contract.read_card(model_dir)[types.TASK]
    return threshold_lib.default_config(task, min_accuracy=min_accuracy, max_regression=max_regression)


def scalar_metrics(result: EvalResult) -> dict[str, float]:
    """Finite overall metrics for the KFP Metrics artifact: the candidate's, and the baseline's as ``baseline_*``."""
    out = {}
    for prefix, values in (("", result.metrics), ("baseline_", result.baseline_metrics)):
        for name, value in values.items():
            if name in ("score_bins_dropped_bits", "residual_quantiles_exact"):
                continue
            if isinstance(value, (int, float)) and math.isfinite(value):
                out[prefix + name] = float(value)
    out["blessed"] = float(result.blessed)
    return out
