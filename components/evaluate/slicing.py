"""Slices of the evaluation rows: overall, values of categorical features, quantile buckets of numeric
features, and crosses of features.

Numeric bucket edges are the training statistics' quantiles (``num_stats.histograms`` of type
QUANTILES, interpolated to ``num_buckets`` equal-mass buckets); without statistics they are the
quantiles of a uniform sample (100,000 values) of the evaluated column. Missing values form their own
slice ``(missing)``. A spec keeps at most ``max_slices`` distinct slices: values first seen after that
are pooled into ``(other)`` (slice high-cardinality columns through a bucketed feature instead).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfpc.components.evaluate.thresholds import SlicingSpec

MISSING = "(missing)"
OTHER = "(other)"
_SEPARATOR = "\x1f"


def quantile_edges_from_statistics(feature_stats, num_buckets: int) -> np.ndarray | None:
    """Interior edges of ``num_buckets`` equal-mass buckets from a FeatureNameStatistics' quantiles.

    Args:
        feature_stats: ``tensorflow_metadata`` ``FeatureNameStatistics`` of a numeric feature.
        num_buckets: buckets wanted.
    Returns:
        Sorted unique edges (at most ``num_buckets - 1``), or ``None`` if the statistics have no quantiles.
    """
    if not feature_stats.HasField("num_stats"):
        return None
    for histogram in feature_stats.num_stats.histograms:
        if histogram.type != histogram.QUANTILES or not histogram.buckets:
            continue
        lows = np.array([b.low_value for b in histogram.buckets], dtype=np.float64)
        highs = np.array([b.high_value for b in histogram.buckets], dtype=np.float64)
        counts = np.array([b.sample_count for b in histogram.buckets], dtype=np.float64)
        if counts.sum() <= 0:
            continue
        # Piecewise-linear CDF through the bucket boundaries, inverted at j / num_buckets.
        cdf = np.concatenate([[0.0], np.cumsum(counts) / counts.sum()])
        values = np.concatenate([[lows[0]], highs])
        targets = np.arange(1, num_buckets) / num_buckets
        return np.unique(np.interp(targets, cdf, values))
    return None


def quantile_edges_from_sample(values: np.ndarray, num_buckets: int) -> np.ndarray:
    """Interior edges of ``num_buckets`` equal-mass buckets of the finite ``values``."""
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return np.zeros(0)
    return np.unique(np.quantile(values, np.arange(1, num_buckets) / num_buckets))


def bucket_labels(edges: np.ndarray) -> list[str]:
    """Labels of the ``len(edges) + 1`` buckets: ``(-inf, e0)``, ``[e0, e1)``, ..., ``[e_last, inf)``."""
    bounds = ["-inf"] + [f"{e:.6g}" for e in edges] + ["inf"]
    return [("(" if i == 0 else "[") + f"{bounds[i]}, {bounds[i + 1]})" for i in range(len(bounds) - 1)]


def is_numeric(arrow_type: pa.DataType) -> bool:
    """True for integer and floating-point columns (sliced by quantile buckets)."""
    return pa.types.is_integer(arrow_type) or pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type)


class Slicer:
    """Assigns every row of a batch a slice id per slicing spec; remembers each id's feature values."""

    def __init__(self, specs: tuple[SlicingSpec, ...], numeric_edges: dict[tuple[str, int], np.ndarray],
                 numeric_features: set[str], max_slices: int = 100):
        """Args:
            specs: the slicing specs (the overall spec has no feature keys).
            numeric_edges: interior bucket edges per ``(feature, num_buckets)``.
            numeric_features: columns sliced by buckets; the others by value.
            max_slices: distinct slices kept per spec before pooling into ``(other)``.
        """
        self.specs = specs
        self.numeric_edges = numeric_edges
        self.numeric_features = numeric_features
        self.max_slices = max_slices
        self.ids: list[dict[str, int]] = [{} for _ in specs]
        self.values: list[list[tuple[tuple[str, str], ...]]] = [[] for _ in specs]
        self.truncated = [False for _ in specs]

    def _labels(self, column: pa.Array, feature: str, num_buckets: int) -> np.ndarray:
        if feature in self.numeric_features:
            values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
            edges = self.numeric_edges[(feature, num_buckets)]
            names = np.array(bucket_labels(edges) + [MISSING], dtype=object)
            index = np.searchsorted(edges, values, side="right")
            index[np.isnan(values)] = len(names) - 1
            return names[index]
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        text = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
        return np.asarray(pc.fill_null(text, MISSING).to_numpy(zero_copy_only=False), dtype=object)

    def assign(self, batch: pa.RecordBatch) -> list[np.ndarray]:
        """Slice ids of every row, one int array per spec (spec 0 / overall: all zeros)."""
        n = batch.num_rows
        out = []
        for s, spec in enumerate(self.specs):
            if not spec.feature_keys:
                if not self.values[s]:
                    self.ids[s][""] = 0
                    self.values[s].append(())
                out.append(np.zeros(n, dtype=np.int64))
                continue
            labels = [self._labels(batch.column(f), f, spec.num_buckets) for f in spec.feature_keys]
            combined = labels[0] if len(labels) == 1 else np.array(
                [_SEPARATOR.join(parts) for parts in zip(*labels, strict=True)], dtype=object)
            unique, inverse = np.unique(combined.astype(str), return_inverse=True)
            mapping = np.empty(len(unique), dtype=np.int64)
            for i, key in enumerate(unique):
                mapping[i] = self._id(s, spec, str(key))
            out.append(mapping[inverse])
        return out

    def sort_key(self, s: int, values: tuple[tuple[str, str], ...]) -> tuple:
        """Order of a slice within its spec: numeric buckets low to high, values alphabetically, then
        ``(missing)`` and ``(other)``."""
        spec = self.specs[s]
        key = []
        for feature, value in values:
            if value in (MISSING, OTHER):
                key.append((1, 0, value))
            elif feature in self.numeric_features:
                labels = bucket_labels(self.numeric_edges[(feature, spec.num_buckets)])
                key.append((0, labels.index(value) if value in labels else len(labels), ""))
            else:
                key.append((0, 0, value))
        return tuple(key)

    def _id(self, s: int, spec: SlicingSpec, key: str) -> int:
        ids = self.ids[s]
        if key in ids:
            return ids[key]
        if len(ids) >= self.max_slices:
            self.truncated[s] = True
            key = _SEPARATOR.join([OTHER] * len(spec.feature_keys))
            if key in ids:
                return ids[key]
        ids[key] = len(self.values[s])
        self.values[s].append(tuple(zip(spec.feature_keys, key.split(_SEPARATOR), strict=True)))
        return ids[key]
