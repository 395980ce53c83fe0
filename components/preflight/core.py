"""Preflight: every deterministic input error of a run, found in seconds, before anything expensive.

A pipeline's parameters and its source table are checked once, up front, and every problem is reported
together with its fix: the label is a column, enough rows carry a label, a classification label has at
least two classes, every enum parameter (``task``, ``push_mode``) has a known value, hyperparameters are in
range, ``model_name`` is a valid InferenceService name, and excluded / numeric columns exist.

Why a step of its own: Kubeflow Pipelines retries a failed task whatever the cause, and the training step
has a retry policy for preempted GPU nodes. An input error found inside ``train`` is repeated by every
retry (minutes of backoff, each attempt on a GPU node). ``preflight`` has no retry policy and runs first,
so an input error stops the run at once. ``kfpc run`` also calls :func:`check` in-process before it starts
the pipeline.

Columns that are null in every row cannot be learned from; they are dropped (with a warning) together with
the user's ``exclude_columns``: :attr:`PreflightResult.drop_columns` is what ingest drops.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import math
import os
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from .. import defaults as D
from .._fs import local_path
from .._redact import excerpt
from .._redact import names as _names

_EXCERPT_CHARS = 60

log = logging.getLogger(__name__)

TASKS = ("auto", "binary", "multiclass", "regression")
#: fewer labelled rows than this cannot give a train, a validation and an eval part worth judging
MIN_LABELLED_ROWS = 20
#: integer labels with at most this many distinct values are classes under ``task=auto`` (as train decides)
MAX_INTEGER_CLASSES = 20


class PreflightError(ValueError):
    """The run cannot succeed; ``problems`` lists every reason, each naming the parameter or column and the fix."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("preflight found {} problem{}:\n{}".format(
            len(problems), "" if len(problems) == 1 else "s", "\n".join(f"  - {p}" for p in problems)))


@dataclasses.dataclass
class PreflightResult:
    """What preflight found in a table that passed.

    Attributes:
        rows: rows in the source table.
        labelled_rows: rows whose label is not null.
        task: the task ``auto`` resolves to (or the one given).
        classes: class values with their row counts (classification), most frequent first.
        drop_columns: columns ingest must drop: ``exclude_columns`` plus columns null in every row.
        warnings: problems that do not stop the run (rows without a label, all-null columns, rare classes).
    """

    rows: int
    labelled_rows: int
    task: str
    classes: dict[str, int]
    drop_columns: list[str]
    warnings: list[str]

    def metadata(self) -> dict:
        """JSON-able summary for the artifact metadata."""
        return dataclasses.asdict(self)


def _did_you_mean(name: str, columns: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, columns, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in columns}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_parameters(
    *,
    task: str = "auto",
    push_mode: str | None = None,
    model_name: str | None = None,
    namespace: str | None = None,
    canary_traffic_percent: int = 0,
    promote: bool = False,
    prometheus_url: str = "",
    prometheus_selector: str = "",
    eval_fraction: float = D.EVAL_FRACTION,
    validation_fraction: float = D.VALIDATION_FRACTION,
    hidden_units: Sequence[int] = D.HIDDEN_UNITS,
    dropout: float = D.DROPOUT,
    learning_rate: float = D.LEARNING_RATE,
    batch_size: int = D.BATCH_SIZE,
    epochs: int = D.EPOCHS,
    patience: int = D.PATIENCE,
    min_accuracy: float = D.MIN_ACCURACY,
    max_regression: float = D.MAX_REGRESSION,
    eval_config_json: str = "",
) -> list[str]:
    """Problems with the run's parameters (no data read), each naming the parameter, the value and the fix.

    ``None`` skips a check (a pipeline without a push step has no ``push_mode``).
    """
    problems: list[str] = []
    if task not in TASKS:
        problems.append(f"task={excerpt(task, _EXCERPT_CHARS)} is not a task; use one of {', '.join(TASKS)}")
    if push_mode is not None:
        from ..push.core import MODES

        if push_mode not in MODES:
            problems.append(f"push_mode={excerpt(push_mode, _EXCERPT_CHARS)} is not a push mode; use one of {', '.join(MODES)}")
    if model_name is not None or namespace is not None:
        from ..push.manifest import ManifestError, ServingOptions

        try:
            ServingOptions(name=model_name if model_name is not None else "model",
                           namespace=namespace if namespace is not None else "default")
        except ManifestError as err:
            field = "model_name" if "name " in str(err) and "namespace" not in str(err) else "namespace"
            problems.append(f"{field}: {err}")
    if not (isinstance(canary_traffic_percent, int) and 0 <= canary_traffic_percent <= 99):
        problems.append(f"canary_traffic_percent={excerpt(canary_traffic_percent, _EXCERPT_CHARS)} must be 0 (no canary) to 99")
    if promote and not canary_traffic_percent:
        problems.append("promote=True needs a canary: set canary_traffic_percent to 1..99, or promote=False")
    elif promote and push_mode == "cluster" and not prometheus_url:
        problems.append("promote=True in cluster mode judges the canary's error rate and latency before promoting: "
                        "set prometheus_url (the Prometheus that scrapes the InferenceService), or promote=False")
    elif promote and push_mode == "cluster" and not prometheus_selector:
        problems.append("promote=True with prometheus_url needs prometheus_selector: label matchers that select the "
                        "canary's pods only (e.g. pod=~\"<name>-predictor-canary-.*\")")
    if not (isinstance(eval_fraction, (int, float)) and 0.0 < eval_fraction < 1.0):
        problems.append(f"eval_fraction={excerpt(eval_fraction, _EXCERPT_CHARS)} must be between 0 and 1 (exclusive), e.g. 0.2")
    if not (isinstance(validation_fraction, (int, float)) and 0.0 < validation_fraction <= 0.5):
        problems.append(f"validation_fraction={excerpt(validation_fraction, _EXCERPT_CHARS)} must be in (0, 0.5], e.g. 0.1")
    from ..train.core import TrainError
    from ..train.core import _check_parameters as check_training

    try:
        check_training(list(hidden_units), dropout, learning_rate, batch_size, epochs, patience, 0)
    except (TrainError, TypeError, ValueError) as err:
        problems.append(str(err))
    if not (isinstance(min_accuracy, (int, float)) and 0.0 <= min_accuracy <= 1.0):
        problems.append(f"min_accuracy={excerpt(min_accuracy, _EXCERPT_CHARS)} must be in [0, 1] (0 turns the accuracy gate off)")
    if not (isinstance(max_regression, (int, float)) and math.isfinite(max_regression) and max_regression >= 0):
        problems.append(f"max_regression={excerpt(max_regression, _EXCERPT_CHARS)} must be >= 0")
    if eval_config_json:
        from ..evaluate.thresholds import EvalConfig, EvalConfigError

        try:
            EvalConfig.parse(eval_config_json)
        except EvalConfigError as err:
            problems.append(f"eval_config_json: {err}")
    return problems


class _Source:
    """The parts of the source table preflight needs: column names, null counts, the label column."""

    def __init__(self, path: str, file_format: str, delimiter: str):
        import pyarrow.parquet as pq

        from ..ingest.core import _detect_format, read_batches

        if _detect_format(path, file_format) == "parquet" and os.path.isfile(path):
            # Parquet: the footer has the columns and (usually) per row group null counts; only the label is read.
            try:
                parquet = pq.ParquetFile(path)
            except (pa.ArrowInvalid, OSError) as err:
                from ..ingest.core import IngestError

                raise IngestError(f"{path}: not a readable Parquet file ({err})") from err
            self.columns = parquet.schema_arrow.names
            self.rows = parquet.metadata.num_rows
            self.null_counts = {}
            for index, name in enumerate(self.columns):
                counts = []
                for group in range(parquet.metadata.num_row_groups):
                    stats = parquet.metadata.row_group(group).column(index).statistics
                    counts.append(stats.null_count if stats is not None and stats.has_null_count else None)
                if None not in counts:
                    self.null_counts[name] = sum(counts)
            self._parquet, self._table = parquet, None
        else:
            schema, batches = read_batches(path, file_format, delimiter)
            self._table = pa.Table.from_batches(list(batches), schema=schema)
            self._parquet = None
            self.columns, self.rows = self._table.column_names, self._table.num_rows
            self.null_counts = {name: self._table.column(name).null_count for name in self.columns}

    def column(self, name: str) -> pa.ChunkedArray:
        if self._table is not None:
            return self._table.column(name)
        return self._parquet.read(columns=[name]).column(name)

    def null_count(self, name: str) -> int:
        if name not in self.null_counts:
            self.null_counts[name] = self.column(name).null_count
        return self.null_counts[name]


def _resolve_task(task: str, label: pa.ChunkedArray, classes: dict[str, int]) -> str:
    if task != "auto":
        return task
    kind = label.type.value_type if pa.types.is_dictionary(label.type) else label.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_boolean(kind):
        return "binary" if len(classes) == 2 else "multiclass"
    if pa.types.is_integer(kind) and len(classes) <= MAX_INTEGER_CLASSES:
        return "binary" if len(classes) == 2 else "multiclass"
    return "regression"


def check(
    source_uri: str,
    *,
    label: str,
    task: str = "auto",
    key_column: str = "",
    exclude_columns: Sequence[str] = (),
    numeric_columns: Sequence[str] = (),
    file_format: str = "auto",
    delimiter: str = ",",
    parameter_problems: Sequence[str] = (),
) -> PreflightResult:
    """Check the source table against the run's parameters.

    Args:
        source_uri: the table the run ingests (local path, ``file://`` or ``gs://`` via /gcs).
        label: the label column.
        task: ``auto`` | ``binary`` | ``multiclass`` | ``regression``.
        key_column: the split key column ("" hashes the row).
        exclude_columns: columns the user excludes from the features (dropped at ingest).
        numeric_columns: columns ingest must read as numbers (bad values become nulls).
        file_format, delimiter: how to read the source (as ingest does).
        parameter_problems: problems already found by :func:`check_parameters`, reported together.
    Returns:
        PreflightResult (what the run will work with and the warnings).
    Raises:
        PreflightError: listing every problem, each with its fix.
    """
    from ..ingest.core import IngestError

    problems = list(parameter_problems)
    try:
        source = _Source(local_path(source_uri), file_format, delimiter)
    except (IngestError, OSError) as err:
        raise PreflightError(problems + [f"source_uri: {err}"]) from err
    columns = source.columns
    if not label:
        problems.append(f"label is empty: name the column to predict; columns: {_names(columns, 30)}")
        raise PreflightError(problems)
    if label not in columns:
        problems.append(f"label {label!r} is not a column of {source_uri}{_did_you_mean(label, columns)}; "
                        f"columns: {_names(columns, 30)}")
    if key_column and key_column not in columns:
        problems.append(f"key_column {key_column!r} is not a column{_did_you_mean(key_column, columns)}")
    for what, names in (("exclude_columns", exclude_columns), ("numeric_columns", numeric_columns)):
        for name in names:
            if name not in columns:
                problems.append(f"{what}: {name!r} is not a column{_did_you_mean(name, columns)}")
            elif name == label:
                problems.append(f"{what}: {name!r} is the label; remove it from {what}")
    if label not in columns:
        raise PreflightError(problems)

    warnings: list[str] = []
    column = source.column(label)
    labelled = len(column) - column.null_count
    if pa.types.is_floating(column.type):
        labelled -= int(pc.sum(pc.is_nan(column)).as_py() or 0)
    if labelled < len(column):
        warnings.append(f"{len(column) - labelled} of {len(column)} rows have no label {label!r}; "
                        "they are not used for training or evaluation")
    if labelled < MIN_LABELLED_ROWS:
        problems.append(f"only {labelled} rows have a label {label!r}; at least {MIN_LABELLED_ROWS} are needed "
                        "(to train, early-stop and evaluate): add rows or pick another label")

    kind = column.type.value_type if pa.types.is_dictionary(column.type) else column.type
    classes: dict[str, int] = {}
    discrete = not pa.types.is_floating(kind)
    if discrete:
        counts = pc.value_counts(column.drop_null()).to_pylist()
        classes = {str(c["values"]): int(c["counts"]) for c in sorted(counts, key=lambda c: -c["counts"])}
    resolved = _resolve_task(task, column, classes) if task in TASKS else task
    if resolved in ("binary", "multiclass"):
        if not discrete:
            problems.append(f"task={task!r} but label {label!r} holds real numbers ({kind}); use task=regression "
                            "or a label of classes")
        elif len(classes) < 2:
            only = next(iter(classes), None)
            problems.append(f"label {label!r} has a single class ({excerpt(only, _EXCERPT_CHARS)}) in every labelled row: nothing "
                            "to learn; pick another label or add rows of other classes")
        elif resolved == "binary" and len(classes) != 2:
            problems.append(f"task='binary' but label {label!r} has {len(classes)} classes; use task=multiclass "
                            "or task=auto")
        else:
            rare = [name for name, n in classes.items() if n < 5]
            if rare:
                warnings.append(f"label {label!r}: classes with fewer than 5 rows ({excerpt(rare[:5], _EXCERPT_CHARS)}) cannot be "
                                "judged reliably")
    elif resolved == "regression":
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            problems.append(f"task='regression' needs a numeric label; {label!r} is text ({kind}); use task=auto")
        elif labelled:
            values = column.drop_null().cast(pa.float64())
            low, high = pc.min(values).as_py(), pc.max(values).as_py()
            if low == high:
                problems.append(f"label {label!r} has the single value {low} in every labelled row: nothing to learn")

    dropped = set(exclude_columns)
    all_null = [c for c in columns if c != label and c not in dropped and source.null_count(c) == source.rows]
    if all_null:
        warnings.append(f"columns null in every row are not used: {_names(all_null, 20)}")
    drop_columns = [c for c in columns if c in dropped or c in all_null]
    if len(columns) - len(drop_columns) - 1 < 1 and label in columns:
        problems.append(f"no feature column is left besides the label {label!r} (excluded or null in every row)")
    if problems:
        raise PreflightError(problems)
    for warning in warnings:
        log.warning("%s", warning)
    return PreflightResult(
        rows=source.rows, labelled_rows=labelled, task=resolved, classes=dict(list(classes.items())[:50]),
        drop_columns=drop_columns, warnings=warnings,
    )


def markdown_report(result: PreflightResult, source_uri: str, label: str) -> str:
    """The result as a short Markdown page (the component's report in the KFP UI)."""
    lines = [f"# Preflight: `{source_uri}`", "", f"- rows: {result.rows}, with a label `{label}`: {result.labelled_rows}",
             f"- task: {result.task}"]
    if result.classes:
        lines.append("- classes: " + ", ".join(f"{excerpt(name, 40)}: {n}" for name, n in list(result.classes.items())[:20]))
    if result.drop_columns:
        lines.append("- dropped at ingest: " + ", ".join(f"`{excerpt(c, 40)}`" for c in result.drop_columns))
    lines += ["", "## Warnings", ""] + ([f"- {w}" for w in result.warnings] or ["none"])
    return "\n".join(lines) + "\n"
