"""What the model is built from: one :class:`Feature` per input column and a :class:`LabelSpec`.

Everything here is decided before any training step, from three sources in this order of authority:

1. the Parquet schema of the train split (which columns exist and their Arrow types);
2. the schema artifact (``schema.pbtxt``), when given: declared types and ``int_domain.is_categorical``;
3. the statistics artifact (``FeatureStats.pb``), when given: mean / standard deviation of numeric
   features and the vocabulary (``rank_histogram`` or ``top_values``) of categorical ones. Without it,
   one streaming pass over the train split computes the same numbers (memory bounded by the vocabulary
   cap, not by the number of rows).

All bad input is reported here, as :class:`TrainInputError`, so that nothing fails half-way through
training: label column missing, a label with a single class, a feature that is entirely null, a column the
schema declares numeric that holds non-numeric text, splits whose column types disagree, an excluded column
that does not exist or is the label.

Column types: numbers and booleans are numeric features (a boolean is fed as float64 0/1); text is
categorical; dates and timestamps (Arrow ``date32``/``date64``/``timestamp``, and text columns whose values
are all ISO-8601 dates) are ``datetime`` features: fed as ISO text (``2013-01-01``, ``2013-01-01T05:17:00``),
from which the model derives year, month, day of week, day of year (and hour when the time of day varies).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfpc.components import artifacts, types
from kfpc.components._fs import parquet_batches
from kfpc.components.contract import ISO_DATETIME
from kfpc.components.contract.signature import datetime_strings, is_datetime_type

STRING = "string"
FLOAT64 = "float64"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATETIME = "datetime"
BINARY = "binary"
MULTICLASS = "multiclass"
REGRESSION = "regression"
TASKS = (BINARY, MULTICLASS, REGRESSION)

#: integer labels with at most this many distinct values are taken as classes, more as a regression target
MAX_INTEGER_CLASSES = 20
#: categorical vocabularies keep at most this many values (the most frequent); the rest share the OOV bucket
DEFAULT_MAX_VOCABULARY = 10_000
#: vocabularies up to this size (plus the OOV and missing slots) are one-hot encoded, larger ones embedded
DEFAULT_ONE_HOT_MAX = 16
#: bins of the piecewise-linear numeric encoding (the statistics artifact's deciles)
QUANTILE_BINS = 10
#: a non-negative feature whose maximum lies this many inter-decile ranges above its median is log-scaled
HEAVY_TAIL_RATIO = 10.0
log = logging.getLogger(__name__)
#: longer category values are free text: left out of vocabularies (read as out-of-vocabulary)
MAX_VOCABULARY_VALUE_CHARS = 1000
_READ_CHUNK_ROWS = 65_536

#: ISO-8601 date with an optional time (``T`` or a space), fraction and UTC offset: what a datetime feature
#: takes. The derived features use the date and time as written (a UTC offset is accepted and ignored).
#: the derived inputs of a datetime feature, in the order the model concatenates them
DATETIME_PARTS = ("year", "month", "day_of_week", "day_of_year")


class TrainInputError(ValueError):
    """The training input is unusable; the message names the file, column and value at fault."""


@dataclasses.dataclass
class Feature:
    """One model input.

    Attributes:
        name: the column name in the Dataset.
        input: the serving-signature input key (``name`` made a valid identifier, see :func:`input_names`).
        dtype: ``"string"`` (fed as ``tf.string``, ``""`` missing) or ``"float64"`` (``NaN`` missing).
        kind: ``"numeric"`` (normalized, imputed with an indicator), ``"categorical"`` (vocabulary lookup) or
            ``"datetime"`` (ISO text; derived year, month, day of week, day of year, hour; missing indicator).
        mean: numeric features: training mean (the imputed value); datetime features: mean of the year.
        std: numeric features: training standard deviation (1.0 when it is 0); datetime: of the year.
        vocabulary: categorical features: known values as strings, most frequent first. Integer categoricals
            hold their values written as integers (``"3"``).
        encoding: categorical features: ``"one_hot"`` or ``"embedding"``.
        embedding_dim: the embedding width when ``encoding == "embedding"``.
        missing_fraction: share of missing values in the training split.
        value_type: the column's type when the signature input does not show it: ``"bool"`` (fed as 0/1),
            ``"date"``, ``"timestamp"`` or ``"iso_text"`` (datetime features); None otherwise.
        with_time: datetime features: the time of day varies in training, so the hour is derived too.
        boundaries: numeric features: quantile boundaries of the training values (sorted, distinct) for a
            piecewise-linear encoding (one input per bin, 0 below it, 1 above it, linear inside); None: the
            standardized value alone.
        log_scale: numeric features with a heavy right tail (non-negative, the top far above the upper
            quantiles): the scalar input is ``(log1p(x) - log_center) / log_std`` (from the quantiles) instead
            of ``(x - mean) / std``.
        log_center: ``log1p`` of the median, with ``log_scale``.
        log_std: the log inter-decile range / 2.563 (a normal's), with ``log_scale``.
    """

    name: str
    input: str
    dtype: str
    kind: str
    mean: float | None = None
    std: float | None = None
    vocabulary: list[str] | None = None
    encoding: str | None = None
    embedding_dim: int | None = None
    missing_fraction: float = 0.0
    value_type: str | None = None
    with_time: bool = False
    boundaries: list[float] | None = None
    log_scale: bool = False
    log_center: float = 0.0
    log_std: float = 1.0

    def numeric_encoding(self) -> str | None:
        """How the network takes a numeric feature: ``standardized``, ``piecewise_linear``, ``log_standardized``
        or ``log_piecewise_linear`` (recorded in the card's DNN hyperparameters); None for other kinds."""
        if self.kind != NUMERIC:
            return None
        return ("log_" if self.log_scale else "") + ("piecewise_linear" if self.boundaries else "standardized")

    def card_entry(self) -> dict:
        """The feature as listed in ``model_card.json``."""
        entry = {"name": self.name, "input": self.input, "dtype": self.dtype, "kind": self.kind}
        if self.kind == CATEGORICAL:
            entry.update(encoding=self.encoding, vocabulary_size=len(self.vocabulary or []))
        if self.value_type:
            entry["value_type"] = self.value_type
        if self.kind == DATETIME:
            entry["derived"] = list(DATETIME_PARTS) + (["hour"] if self.with_time else [])
        return entry


@dataclasses.dataclass
class LabelSpec:
    """The prediction target.

    Attributes:
        name: the label column.
        task: ``binary`` | ``multiclass`` | ``regression``.
        classes: class names (strings) in class-id order; empty for regression.
        numeric_classes: the label column is numeric and classes are its values written as integers.
        mean: regression: training mean of the label (the model learns the standardized label).
        std: regression: training standard deviation of the label.
    """

    name: str
    task: str
    classes: list[str] = dataclasses.field(default_factory=list)
    numeric_classes: bool = False
    mean: float = 0.0
    std: float = 1.0


@dataclasses.dataclass
class TrainingSpec:
    """Features, label and provenance: everything needed to build the model and read the data."""

    features: list[Feature]
    label: LabelSpec
    schema_hash: str
    train_rows: int
    statistics_source: str


# --------------------------------------------------------------------------------------------- names


def input_names(columns: Sequence[str]) -> dict[str, str]:
    """Serving-signature input key for each column.

    TensorFlow signature inputs must match ``[A-Za-z][A-Za-z0-9_]*``; a column such as ``price ($)`` is
    fed as ``price____``. Keys stay unique (``_2``, ``_3`` suffixes) and equal the column name whenever it
    is already valid, which is the common case.

    Args:
        columns: the feature columns in order.
    Returns:
        column name -> input key.
    """
    taken: set[str] = set()
    result: dict[str, str] = {}
    for column in columns:
        key = re.sub(r"[^A-Za-z0-9_]", "_", column)
        if not key or not key[0].isalpha():
            key = "f_" + key
        base, n = key, 2
        while key.lower() in taken:  # signature keys become node names; keep them unique ignoring case
            key, n = f"{base}_{n}", n + 1
        taken.add(key.lower())
        result[column] = key
    return result


# ------------------------------------------------------------------------------------------ schemas


def _arrow_kind(field: pa.Field) -> str | None:
    """``float64`` for numbers and booleans, ``string`` for text, ``datetime`` for dates and timestamps; None
    for types the model cannot take."""
    t = field.type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        return FLOAT64
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
        return STRING
    if is_datetime_type(t):
        return DATETIME
    return None


def _datetime_fields(text: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Year, whether a time of day other than midnight is written, and validity of ISO text (numpy)."""
    valid = pc.match_substring_regex(text, "^(?:" + ISO_DATETIME + ")$").to_numpy(zero_copy_only=False)
    valid = np.asarray(valid, dtype=bool) & np.asarray(pc.not_equal(text, "").fill_null(False), dtype=bool)
    if not valid.any():
        return np.zeros(0), valid[:0], valid
    good = text.filter(pa.array(valid))
    year = pc.cast(pc.utf8_slice_codeunits(good, 0, 4), pa.int64()).to_numpy().astype(np.float64)
    clock = pc.utf8_slice_codeunits(good, 11, 19)  # "HH:MM:SS", "HH:MM" or "" (date only)
    with_time = np.asarray(pc.and_(pc.not_equal(clock, ""), pc.not_equal(pc.utf8_slice_codeunits(clock, 0, 5),
                                                                         "00:00")).fill_null(False), dtype=bool)
    seconds = pc.utf8_slice_codeunits(clock, 6, 8)
    with_time |= np.asarray(pc.and_(pc.not_equal(seconds, ""), pc.not_equal(seconds, "00")), dtype=bool)
    return year, with_time, valid


def _schema_features(schema) -> dict[str, object]:
    if schema is None:
        return {}
    return {f.name: f for f in schema.feature}


# -------------------------------------------------------------------------------------- statistics


@dataclasses.dataclass
class ColumnStats:
    """What training needs to know about one column of the train split."""

    count: int = 0  # non-missing values
    missing: int = 0
    mean: float = 0.0
    std: float = 0.0
    #: value -> frequency, most frequent first (categorical columns and the label)
    values: dict[str, int] | None = None
    #: True when ``values`` holds every distinct value (not truncated to a top-k)
    values_complete: bool = False
    #: datetime columns: some value has a time of day other than midnight
    with_time: bool = False
    #: numeric columns: quantile boundaries (min, deciles..., max) when known
    quantiles: list[float] | None = None


def stats_from_proto(stats_list) -> tuple[dict[str, ColumnStats], int]:
    """Column statistics and the row count from a ``DatasetFeatureStatisticsList``.

    Args:
        stats_list: the proto (its first dataset is the split).
    Returns:
        ``(column -> ColumnStats, number of rows)``.
    """
    if not stats_list.datasets:
        raise TrainInputError("the statistics artifact holds no dataset")
    dataset = stats_list.datasets[0]
    result: dict[str, ColumnStats] = {}
    for feature in dataset.features:
        name = feature.name or ".".join(feature.path.step)
        stats = ColumnStats()
        which = feature.WhichOneof("stats")
        if which == "num_stats":
            common = feature.num_stats.common_stats
            stats.mean, stats.std = feature.num_stats.mean, feature.num_stats.std_dev
            for histogram in feature.num_stats.histograms:
                if histogram.type == histogram.QUANTILES and histogram.buckets:
                    stats.quantiles = [histogram.buckets[0].low_value] + [b.high_value for b in histogram.buckets]
        elif which == "string_stats":
            common = feature.string_stats.common_stats
            buckets = [(b.label, int(b.sample_count)) for b in feature.string_stats.rank_histogram.buckets]
            if not buckets:
                buckets = [(v.value, int(v.frequency)) for v in feature.string_stats.top_values]
            buckets.sort(key=lambda item: -item[1])
            stats.values = dict(buckets)
            stats.values_complete = bool(buckets) and len(buckets) >= feature.string_stats.unique
        else:
            continue
        stats.count = int(common.num_non_missing)
        stats.missing = int(common.num_missing)
        result[name] = stats
    return result, int(dataset.num_examples)


class _RunningMoments:
    """Mean and variance over batches (Chan et al. parallel update; stable for large offsets)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        n_b, mean_b = values.size, float(values.mean())
        m2_b = float(((values - mean_b) ** 2).sum())
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean += delta * n_b / n
        self.m2 += m2_b + delta * delta * self.n * n_b / n
        self.n = n

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.n) if self.n else 0.0


class _Sample:
    """A bounded uniform sample of a column's values (reservoir by batches), for its quantiles."""

    def __init__(self, size: int = 100_000, seed: int = 0) -> None:
        self.size, self.seen = size, 0
        self.values = np.zeros(0)
        self.rng = np.random.default_rng(seed)

    def add(self, values: np.ndarray) -> None:
        values = values[np.isfinite(values)]
        self.seen += values.size
        merged = np.concatenate([self.values, values])
        if merged.size > self.size:
            merged = self.rng.choice(merged, size=self.size, replace=False)
        self.values = merged

    def quantiles(self) -> list[float] | None:
        if not self.values.size:
            return None
        return [float(q) for q in np.quantile(self.values, np.linspace(0.0, 1.0, QUANTILE_BINS + 1))]


def _numeric_values(column: pa.Array, name: str, path: Path) -> np.ndarray:
    """A column as float64 with NaN for missing; non-numeric text is a :class:`TrainInputError`."""
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            column = pc.cast(column, pa.float64())
        except pa.ArrowInvalid:
            bad = next(v for v in column.to_pylist() if v is not None and not _parses_as_float(v))
            raise TrainInputError(
                f"{path}: column {name!r} is numeric but holds the non-numeric value {bad!r}"
            ) from None
    elif pa.types.is_boolean(column.type) or pa.types.is_decimal(column.type) or pa.types.is_integer(column.type):
        column = pc.cast(column, pa.float64())
    return column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def _parses_as_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _string_values(column: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    return column


def integer_strings(values: np.ndarray) -> np.ndarray:
    """Integer-valued floats written as ``"3"``; NaN becomes ``""`` (how integer categoricals are looked up)."""
    out = np.full(values.shape, "", dtype=object)
    present = ~np.isnan(values)
    out[present] = np.round(values[present]).astype(np.int64).astype(str)
    return out


def compute_stats(
    path: Path,
    numeric: Iterable[str],
    categorical: Iterable[str],
    integer_categorical: Iterable[str] = (),
    max_values: int = DEFAULT_MAX_VOCABULARY,
) -> tuple[dict[str, ColumnStats], int]:
    """One streaming pass over a Parquet file: moments of numeric columns, value counts of the others.

    Memory is bounded by the number of distinct values kept: when a column's counter grows past
    ``4 * max_values`` it is pruned to its ``2 * max_values`` most frequent values (the result is then
    marked incomplete; the top of the vocabulary is what matters to the model).

    Args:
        path: the Parquet file.
        numeric: columns read as numbers.
        categorical: string columns whose values are counted.
        integer_categorical: numeric columns whose values are counted as integers.
        max_values: how many values the caller will keep per column.
    Returns:
        ``(column -> ColumnStats, number of rows)``.
    """
    numeric, categorical, integer_categorical = list(numeric), list(categorical), list(integer_categorical)
    moments = {name: _RunningMoments() for name in numeric}
    samples = {name: _Sample() for name in numeric}
    counters: dict[str, collections.Counter] = {name: collections.Counter() for name in categorical + integer_categorical}
    complete = {name: True for name in counters}
    missing = collections.Counter()
    rows = 0
    columns = list(dict.fromkeys(numeric + categorical + integer_categorical))
    for batch in parquet_batches(path, TrainInputError, batch_size=_READ_CHUNK_ROWS, columns=columns):
        rows += batch.num_rows
        for name in columns:
            column = batch.column(name)
            if name in moments or name in integer_categorical:
                values = _numeric_values(column, name, path)
                present = ~np.isnan(values)
                missing[name] += int((~present).sum())
                if name in moments:
                    moments[name].add(values[present])
                    samples[name].add(values[present])
                if name in integer_categorical:
                    counters[name].update(dict(collections.Counter(integer_strings(values[present]).tolist())))
            if name in categorical:
                strings = _string_values(column)
                missing[name] += strings.null_count
                counts = pc.value_counts(strings.drop_null())
                values, frequencies = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
                counters[name].update(dict(zip(values, frequencies, strict=True)))
            if name in counters and len(counters[name]) > 4 * max_values:
                counters[name] = collections.Counter(dict(counters[name].most_common(2 * max_values)))
                complete[name] = False
    result: dict[str, ColumnStats] = {}
    for name in columns:
        stats = ColumnStats(missing=missing[name])
        stats.count = rows - stats.missing
        if name in moments:
            stats.mean, stats.std = moments[name].mean, moments[name].std
            stats.quantiles = samples[name].quantiles()
        if name in counters:
            stats.values = dict(counters[name].most_common())
            stats.values_complete = complete[name]
        result[name] = stats
    return result, rows


def compute_datetime_stats(path: Path, names: Iterable[str]) -> dict[str, ColumnStats]:
    """One streaming pass over date / timestamp / ISO-text columns: moments of the year, missing values
    (null, ``""`` or text that is not an ISO date) and whether the time of day varies."""
    names = list(names)
    if not names:
        return {}
    moments = {name: _RunningMoments() for name in names}
    missing = collections.Counter()
    with_time = dict.fromkeys(names, False)
    rows = 0
    for batch in parquet_batches(path, TrainInputError, batch_size=_READ_CHUNK_ROWS, columns=names):
        rows += batch.num_rows
        for name in names:
            year, timed, valid = _datetime_fields(datetime_strings(batch.column(name)))
            moments[name].add(year)
            missing[name] += int((~valid).sum())
            with_time[name] = with_time[name] or bool(timed.any())
    return {
        name: ColumnStats(count=rows - missing[name], missing=missing[name], mean=moments[name].mean,
                          std=moments[name].std, with_time=with_time[name])
        for name in names
    }


def _looks_like_dates(stats: ColumnStats | None) -> bool:
    """A text column whose known values are all ISO-8601 dates (a CSV column Arrow could not type)."""
    values = [v for v in (stats.values or {}) if v != ""] if stats is not None else []
    if not values:
        return False
    pattern = re.compile(ISO_DATETIME)
    return all(pattern.fullmatch(v) for v in values)


# -------------------------------------------------------------------------------------------- spec


def _sort_classes(values: Iterable[str], numeric: bool) -> list[str]:
    if numeric:
        return sorted(values, key=lambda v: float(v))
    return sorted(values)


def _numeric_encoding(stats: ColumnStats, is_bool: bool) -> tuple[list[float] | None, tuple[float, float] | None]:
    """Boundaries of the piecewise-linear encoding, and the log scaling ``(center, std)`` or None.

    Boundaries are the distinct quantiles (a column with fewer than 3 distinct ones, e.g. a flag, keeps the
    standardized value alone). A non-negative column whose maximum is more than ``HEAVY_TAIL_RATIO``
    inter-decile ranges above the median is log-scaled (``log1p``), centred on the log of the median and
    scaled by the log inter-decile range (robust: the moments of a heavy tail are dominated by its outliers).
    """
    quantiles = [q for q in (stats.quantiles or []) if math.isfinite(q)]
    distinct = sorted(set(quantiles))
    boundaries = distinct if len(distinct) >= 3 and not is_bool else None
    if len(quantiles) == QUANTILE_BINS + 1 and not is_bool:
        low, median, high, top = quantiles[1], quantiles[QUANTILE_BINS // 2], quantiles[-2], quantiles[-1]
        spread = high - low
        if quantiles[0] >= 0 and spread > 0 and top - median > HEAVY_TAIL_RATIO * spread:
            log_spread = math.log1p(high) - math.log1p(low)
            return boundaries, (math.log1p(median), log_spread / 2.563 if log_spread > 0 else 1.0)
    return boundaries, None


def _embedding_dim(cardinality: int) -> int:
    # fast.ai's rule of thumb: grows slowly with the cardinality, capped so wide vocabularies stay cheap
    return int(min(64, max(4, round(1.6 * cardinality**0.56))))


def schema_hash(arrow_schema: pa.Schema, schema_path: str | os.PathLike | None) -> str:
    """sha256 of the schema artifact's bytes when given, else of the Dataset's Arrow schema."""
    digest = hashlib.sha256()
    if schema_path:
        digest.update(artifacts.schema_file(schema_path).read_bytes())
    else:
        digest.update(arrow_schema.to_string(show_field_metadata=False, show_schema_metadata=False).encode())
    return "sha256:" + digest.hexdigest()


def build_spec(
    dataset_dir: str | os.PathLike,
    label: str,
    *,
    statistics_dir: str | os.PathLike | None = None,
    schema_path: str | os.PathLike | None = None,
    task: str = "auto",
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    categorical_features: Sequence[str] = (),
    max_vocabulary: int = DEFAULT_MAX_VOCABULARY,
    one_hot_max: int = DEFAULT_ONE_HOT_MAX,
) -> TrainingSpec:
    """Decide the features, their preprocessing constants and the head, and check the input.

    Args:
        dataset_dir: the Dataset artifact (``Split-train`` and ``Split-eval``).
        label: the label column.
        statistics_dir: the statistics artifact of the same Dataset, or None to compute statistics here.
        schema_path: the schema artifact (folder or ``schema.pbtxt``), or None.
        task: ``auto`` (from the label: text, booleans and integers with at most 20 values are classes,
            other numbers are regression), ``binary``, ``multiclass`` or ``regression``.
        features: the feature columns; None takes every column but the label and ``exclude``.
        exclude: columns never used as features (keys, leakage); each must be a column, never the label.
        categorical_features: numeric (or date) columns to treat as categories (also taken from the schema's
            ``int_domain.is_categorical``).
        max_vocabulary: most frequent values kept per categorical feature.
        one_hot_max: vocabularies up to this size are one-hot encoded, larger ones embedded.
    Returns:
        The TrainingSpec.
    Raises:
        TrainInputError: naming the file, column and value at fault.
    """
    if task not in ("auto", *TASKS):
        raise TrainInputError(f"task must be 'auto', 'binary', 'multiclass' or 'regression', got {task!r}")
    train_path, eval_path = artifacts.split_file(dataset_dir, types.TRAIN), artifacts.split_file(dataset_dir, types.EVAL)
    arrow_schema = pq.read_schema(train_path)
    eval_schema = pq.read_schema(eval_path)
    columns = list(arrow_schema.names)
    if label not in columns:
        raise TrainInputError(f"{train_path}: label column {label!r} is not in the data; columns: {columns}")
    schema = artifacts.read_schema(schema_path) if schema_path else None
    declared = _schema_features(schema)
    if isinstance(exclude, str):
        exclude = [exclude]  # one column name, not its characters
    unknown_excluded = [name for name in exclude if name not in columns]
    if unknown_excluded:
        raise TrainInputError(
            f"{train_path}: excluded column(s) {unknown_excluded} are not in the data; columns: {columns}")
    if label in exclude:
        raise TrainInputError(
            f"{train_path}: the label {label!r} cannot be excluded (exclude={list(exclude)}); it is never a feature")
    if features is None:
        feature_names = [c for c in columns if c != label and c not in exclude]
    else:
        feature_names = list(features)
        unknown = [f for f in feature_names if f not in columns]
        if unknown:
            raise TrainInputError(f"{train_path}: feature columns {unknown} are not in the data; columns: {columns}")
        if label in feature_names:
            raise TrainInputError(f"{train_path}: the label {label!r} is also listed as a feature")
        feature_names = [f for f in feature_names if f not in exclude]
    if not feature_names:
        raise TrainInputError(f"{train_path}: no feature columns besides the label {label!r}"
                              + (f" and the excluded columns {list(exclude)}" if exclude else ""))
    for name in categorical_features:
        if name not in feature_names:
            raise TrainInputError(f"categorical feature {name!r} is not a feature; features: {feature_names}")

    dtypes: dict[str, str] = {}
    for name in feature_names + [label]:
        field = arrow_schema.field(name)
        kind = _arrow_kind(field)
        if kind is None:
            raise TrainInputError(
                f"{train_path}: column {name!r} has type {field.type}, which the model cannot take; "
                f"leave it out with exclude=[{name!r}]")
        if kind == DATETIME and name == label:
            raise TrainInputError(f"{train_path}: the label {label!r} is a date/timestamp ({field.type}); the model "
                                  "predicts classes or numbers")
        if name in eval_schema.names and _arrow_kind(eval_schema.field(name)) not in (kind, None) and not pa.types.is_null(
            eval_schema.field(name).type
        ):
            raise TrainInputError(
                f"{eval_path}: column {name!r} has type {eval_schema.field(name).type} but {field.type} in {train_path}"
            )
        proto = declared.get(name)
        # The schema artifact is the contract: a column it declares numeric must parse as numbers.
        if proto is not None and proto.type in (2, 3) and kind == STRING and not pa.types.is_null(field.type):
            kind = FLOAT64  # _numeric_values raises on the first non-numeric value during the statistics pass
            dtypes[name] = "declared-numeric"
        dtypes.setdefault(name, kind)
    for name in feature_names:
        if name not in eval_schema.names:
            raise TrainInputError(f"{eval_path}: feature column {name!r} is missing from the eval split")

    def is_categorical_int(name: str) -> bool:
        proto = declared.get(name)
        from_schema = proto is not None and proto.HasField("int_domain") and proto.int_domain.is_categorical
        return dtypes[name] not in (STRING, DATETIME) and (name in categorical_features or from_schema)

    # A date column listed in categorical_features is a category of its ISO text (e.g. a few known dates).
    for name in feature_names:
        if dtypes[name] == DATETIME and name in categorical_features:
            dtypes[name] = STRING

    label_is_string = dtypes[label] == STRING
    label_field = arrow_schema.field(label)
    label_type = label_field.type.value_type if pa.types.is_dictionary(label_field.type) else label_field.type
    label_integral = pa.types.is_integer(label_type) or pa.types.is_boolean(label_type)

    numeric = [n for n in feature_names if dtypes[n] not in (STRING, DATETIME) and not is_categorical_int(n)]
    datetimes = [n for n in feature_names if dtypes[n] == DATETIME]
    categorical = [n for n in feature_names if dtypes[n] == STRING]
    integer_categorical = [n for n in feature_names if is_categorical_int(n)]
    declared_numeric = [n for n in feature_names + [label] if dtypes[n] == "declared-numeric"]

    # --- statistics: from the artifact when given, else one streaming pass
    stats: dict[str, ColumnStats] = {}
    rows = 0
    source = "computed"
    if statistics_dir:
        stats, rows = stats_from_proto(artifacts.read_statistics(statistics_dir, types.TRAIN))
        source = str(statistics_dir)
    needed_numeric = [n for n in numeric if n not in stats or stats[n].values is not None]
    needed_values = [n for n in categorical if n not in stats or stats[n].values is None]
    needed_int_values = [n for n in integer_categorical if n not in stats or stats[n].values is None]
    # The label's classes must be complete (a truncated top-k would silently drop classes): read the label
    # column alone when the statistics do not list every value.
    label_stats = stats.get(label)
    if label_is_string:
        if label_stats is None or not label_stats.values_complete:
            needed_values.append(label)
    elif label_integral or task in (BINARY, MULTICLASS):
        needed_int_values.append(label)
        if label_stats is None or label_stats.values is not None:
            needed_numeric.append(label)
    elif label_stats is None or label_stats.values is not None:
        needed_numeric.append(label)
    needed_numeric += [n for n in declared_numeric if n not in needed_numeric]
    if needed_numeric or needed_values or needed_int_values:
        computed, computed_rows = compute_stats(
            train_path, needed_numeric, needed_values, needed_int_values, max_values=max_vocabulary
        )
        for name, value in computed.items():
            known = stats.get(name)
            if known is None:
                stats[name] = value
                continue
            if name in needed_numeric:
                known.mean, known.std, known.count, known.missing = value.mean, value.std, value.count, value.missing
                known.quantiles = value.quantiles
            if name in needed_values or name in needed_int_values:
                known.values, known.values_complete = value.values, value.values_complete
        rows = rows or computed_rows
    # Text columns whose values are all ISO dates are dates (unless listed as categorical on purpose).
    for name in categorical:
        if name not in categorical_features and _looks_like_dates(stats.get(name)):
            datetimes.append(name)
    categorical = [n for n in categorical if n not in datetimes]
    for name, value in compute_datetime_stats(train_path, datetimes).items():
        stats[name] = value
    if not rows:
        rows = pq.ParquetFile(train_path).metadata.num_rows
    if not rows:
        raise TrainInputError(f"{train_path}: the train split has no rows")

    # --- features
    names = input_names(feature_names)
    result: list[Feature] = []
    for name in feature_names:
        s = stats.get(name)
        if s is None:
            raise TrainInputError(f"{statistics_dir}: the statistics have no entry for feature {name!r}")
        if s.count == 0:
            # nothing to learn from; a column with a few values that all landed in other splits is no error
            log.warning("feature %r is null in every row of the train split: not used", name)
            continue
        missing_fraction = s.missing / max(1, s.count + s.missing)
        field_type = arrow_schema.field(name).type
        if pa.types.is_dictionary(field_type):
            field_type = field_type.value_type
        if name in numeric or name in datetimes:
            std = s.std if s.std and math.isfinite(s.std) and s.std > 1e-12 else 1.0
            if name in datetimes:
                value_type = "date" if pa.types.is_date(field_type) else (
                    "timestamp" if pa.types.is_timestamp(field_type) else "iso_text")
                result.append(
                    Feature(name, names[name], STRING, DATETIME, mean=float(s.mean), std=float(std),
                            missing_fraction=missing_fraction, value_type=value_type, with_time=s.with_time)
                )
                continue
            boundaries, log_scale = _numeric_encoding(s, pa.types.is_boolean(field_type))
            result.append(
                Feature(name, names[name], FLOAT64, NUMERIC, mean=float(s.mean), std=float(std),
                        boundaries=boundaries, log_scale=log_scale is not None,
                        log_center=log_scale[0] if log_scale else 0.0, log_std=log_scale[1] if log_scale else 1.0,
                        missing_fraction=missing_fraction,
                        value_type="bool" if pa.types.is_boolean(field_type) else None)
            )
            continue
        # a value longer than a category name is free text: it stays out of the vocabulary (out-of-vocabulary
        # at serving), so a 10 MB cell does not become a 10 MB lookup table inside the SavedModel
        vocabulary = [v for v in (s.values or {}) if v != "" and len(v) <= MAX_VOCABULARY_VALUE_CHARS][:max_vocabulary]
        if not vocabulary and s.values and any(len(v) > MAX_VOCABULARY_VALUE_CHARS for v in s.values):
            log.warning("feature %r holds only text longer than %d characters (free text): not used",
                        name, MAX_VOCABULARY_VALUE_CHARS)
            continue
        if not vocabulary:
            raise TrainInputError(f"{train_path}: categorical feature {name!r} has no values in the train split")
        cardinality = len(vocabulary) + 2  # + out-of-vocabulary + missing
        one_hot = cardinality <= one_hot_max + 2
        result.append(
            Feature(
                name,
                names[name],
                STRING if name in categorical else FLOAT64,
                CATEGORICAL,
                vocabulary=vocabulary,
                encoding="one_hot" if one_hot else "embedding",
                embedding_dim=None if one_hot else _embedding_dim(cardinality),
                missing_fraction=missing_fraction,
            )
        )

    if not result:
        raise TrainInputError(f"{train_path}: no usable feature: every feature is null in the train split or only "
                              f"free text; columns: {columns}")

    # --- label and head
    label_stats = stats[label]
    if label_stats.count == 0:
        raise TrainInputError(f"{train_path}: label {label!r} is null in every row of the train split")
    if task == "auto":
        if label_is_string or pa.types.is_boolean(label_type):
            task = BINARY if len(label_stats.values or {}) == 2 else MULTICLASS
        elif label_integral and label_stats.values_complete and len(label_stats.values or {}) <= MAX_INTEGER_CLASSES:
            task = BINARY if len(label_stats.values) == 2 else MULTICLASS
        else:
            task = REGRESSION
    if task == REGRESSION:
        if label_is_string:
            raise TrainInputError(f"{train_path}: task 'regression' needs a numeric label; {label!r} is text")
        if label_stats.std <= 0 or not math.isfinite(label_stats.std):
            raise TrainInputError(
                f"{train_path}: label {label!r} has a single value ({label_stats.mean}) in the train split; "
                "nothing to learn"
            )
        spec_label = LabelSpec(label, REGRESSION, mean=float(label_stats.mean), std=float(label_stats.std))
    else:
        values = label_stats.values or {}
        if dtypes[label] != STRING and not pa.types.is_boolean(label_type):
            non_integer = [v for v in values if not re.fullmatch(r"-?\d+", v)]
            if non_integer:
                raise TrainInputError(f"{train_path}: label {label!r} is not integral ({non_integer[0]}) for {task}")
        classes = _sort_classes([v for v in values if v != ""], numeric=dtypes[label] != STRING)
        if len(classes) < 2:
            raise TrainInputError(
                f"{train_path}: label {label!r} has a single class {classes} in the train split; nothing to learn"
            )
        if task == BINARY and len(classes) != 2:
            raise TrainInputError(f"{train_path}: task 'binary' but label {label!r} has {len(classes)} classes")
        spec_label = LabelSpec(label, task, classes=classes, numeric_classes=dtypes[label] != STRING)
    return TrainingSpec(
        features=result,
        label=spec_label,
        schema_hash=schema_hash(arrow_schema, schema_path),
        train_rows=rows,
        statistics_source=source,
    )


def feature_by_name(spec: TrainingSpec) -> Mapping[str, Feature]:
    """Column name -> Feature."""
    return {f.name: f for f in spec.features}
