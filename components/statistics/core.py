"""Dataset statistics in TFDV's format, streamed over Arrow record batches with mergeable sketches.

Output: ``tensorflow_metadata`` ``DatasetFeatureStatistics`` (one per split, wrapped in a
``DatasetFeatureStatisticsList`` and written as TFX's ``Split-<split>/FeatureStats.pb``), so that TFDV's
``load_stats_binary`` / ``visualize_statistics`` and our schema/validate cores read it.

Semantics follow TFDV's statistics from a DataFrame (``tfdv.generate_statistics_from_dataframe``):
null and NaN are missing; every present value counts once (flat columns); ints and bools are ``INT``,
floats and decimals ``FLOAT``, strings ``STRING``, binary ``BYTES``. Differences, on purpose: mean and
std_dev are over finite values (TFDV lets one ``inf`` make them ``inf``/``nan``); ``min``/``max`` keep the
infinities, counted in the custom statistics ``num_pos_inf`` / ``num_neg_inf``. Dates and timestamps are
``INT`` (their integer representation, e.g. days or microseconds since the epoch).

Memory does not grow with the number of rows: every feature keeps a quantile sketch (numeric) or a
frequency sketch (strings) of fixed size; :class:`StatisticsAccumulator` objects merge, so statistics of
partitions combine into the statistics of their union.
"""

from __future__ import annotations

import copy
import ctypes
import math
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tensorflow_metadata.proto.v0 import statistics_pb2

from .. import artifacts, types
from . import kernels
from .sketches import FrequencySketch, QuantileSketch, _offsets_and_data, _validity, from_numpy, is_binary_like
from .sketches import to_numpy as _numpy

FeatureType = statistics_pb2.FeatureNameStatistics

#: default number of most frequent string values kept (and written) per feature: the trainer builds its
#: vocabularies from them, so the default is large
DEFAULT_TOP_K = 10_000
#: values per level of the quantile sketch (rank error bound log2(n/k)/k plus the sampling term of batches of
#: 65,536+ values: see sketches.QuantileSketch; exact below k values)
DEFAULT_QUANTILE_K = 2048
NUM_HISTOGRAM_BUCKETS = 10
NUM_QUANTILES_BUCKETS = 10
NUM_VALUES_HISTOGRAM_BUCKETS = 10
#: bytes of decoded columns per record batch when reading Parquet (bounds memory for wide tables)
_TARGET_BATCH_BYTES = 64 << 20
_MAX_BATCH_ROWS = 1 << 18
#: a string column whose batches are more than this fraction distinct values (and past top_k distinct
#: values) is read from Parquet as plain strings rather than as a dictionary
_NEAR_UNIQUE = 0.3
#: a dictionary page of less than a byte per this many rows marks a string column read as a dictionary from the
#: start (:func:`_plain_candidates`)
_PROBE_DICTIONARY_ROWS_PER_BYTE = 4
#: glibc malloc thresholds set by :func:`_tune_malloc`
_MALLOC_MMAP_THRESHOLD = 64 << 20
_MALLOC_TRIM_THRESHOLD = 256 << 20

# custom_stats names we add (TFDV ignores unknown custom stats)
CUSTOM_NUM_POS_INF = "num_pos_inf"
CUSTOM_NUM_NEG_INF = "num_neg_inf"
CUSTOM_NUM_NAN = "num_nan"
CUSTOM_QUANTILE_RANK_ERROR = "quantile_rank_error_bound"
CUSTOM_TOP_K_EXACT = "top_values_exact"
CUSTOM_TOP_K_ERROR = "top_values_count_error"
#: string features: present values that read as decimal numbers (absent once the column is clearly text)
CUSTOM_NUM_NUMERIC_STRINGS = "num_numeric_strings"

#: a string that reads as a number: what Arrow's cast to float64 accepts (decimal, exponent, inf, nan)
NUMBER_PATTERN = r"^[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|(?i:inf|infinity|nan))$"
#: values looked at before counting the numbers of a long batch (text columns stop there)
_NUMERIC_PROBE = 1024
#: below this share of numbers a string column is text: its numbers are no longer counted
_NUMERIC_GIVE_UP = 0.5


class StatisticsError(ValueError):
    """The data cannot be summarized; the message names the source, column and problem."""


def _feature_kind(arrow_type: pa.DataType) -> int:
    """Statistics type of an Arrow column type (raises for nested types)."""
    if pa.types.is_dictionary(arrow_type):
        return _feature_kind(arrow_type.value_type)
    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type) or pa.types.is_temporal(arrow_type):
        return FeatureType.INT
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return FeatureType.FLOAT
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) or pa.types.is_null(arrow_type):
        return FeatureType.STRING
    if pa.types.is_string_view(arrow_type):
        return FeatureType.STRING
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type) or pa.types.is_fixed_size_binary(
            arrow_type) or pa.types.is_binary_view(arrow_type):
        return FeatureType.BYTES
    raise TypeError(str(arrow_type))


class _FeatureAccumulator:
    """Partial statistics of one feature: presence counts plus a numeric or string part."""

    def __init__(self, name: str, kind: int, arrow_type: pa.DataType, top_k: int, quantile_k: int):
        self.name = name
        self.kind = kind
        self.arrow_type = arrow_type
        self.num_non_missing = 0
        self.num_nan = 0
        self._proto: tuple | None = None  # ((num_examples, top_k), FeatureNameStatistics) of the last to_proto
        if kind in (FeatureType.INT, FeatureType.FLOAT):
            self.sketch = QuantileSketch(quantile_k)
            self.count_finite = 0
            self.mean = 0.0
            self.mean_lo = 0.0  # the mean is mean + mean_lo (a double-double: see _add_numeric)
            self.m2 = 0.0  # sum of squared deviations from the mean (Chan et al.'s parallel form)
            self.num_zeros = 0
            self.num_pos_inf = 0
            self.num_neg_inf = 0
            self.min = math.inf
            self.max = -math.inf
        else:
            value_type = pa.string() if kind == FeatureType.STRING else pa.binary()
            self.frequencies = FrequencySketch(top_k, value_type)
            self.total_length = 0
            #: mostly distinct values (read from Parquet as plain strings and counted by hash); None: not known yet,
            #: read plain and decided by the first batch (see StatisticsAccumulator.add_parquet)
            self.near_unique: bool | None = False
            self.numeric: int | None = 0  # values that read as numbers (None: given up, the column is text)
            self.cast_numbers = True  # False once a batch failed to cast (a failing cast costs ~1 us a value)

    # ---- numeric ----
    def _add_numeric(self, array: pa.Array) -> None:
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if pa.types.is_boolean(array.type):
            if self._add_booleans(array):
                return
            array = array.cast(pa.int64())
        elif pa.types.is_decimal(array.type):
            array = array.cast(pa.float64())
        elif pa.types.is_temporal(array.type):
            array = array.view(pa.int64()) if array.type.bit_width == 64 else array.cast(pa.int32()).cast(pa.int64())
        if len(array) == array.null_count:
            return
        if pa.types.is_floating(array.type):
            self._add_floats(array)
        elif not self._add_narrow_integers(array):
            # the sketch and the moments see float64 values (a monotone map of the integers)
            values = _numpy(pc.drop_null(array) if array.null_count else array).astype(np.float64)
            self.num_non_missing += values.size
            self._add_finite(values)

    def _add_floats(self, array: pa.Array) -> None:
        # No sort: the extremes, counts and moments are reductions, the quantile sketch samples a long batch.
        # The values are read in place (a float64 column without nulls is not copied).
        values = _numpy(array, nulls=True)
        if values.dtype != np.float64:
            values = values.astype(np.float64)
        if array.null_count:
            compiled = kernels.for_size(values.size)
            values = compiled.compact_valid(values, *_bitmap(array)) if compiled is not None else \
                values[_validity(array)]
        compiled = kernels.for_size(values.size, moments=True)
        if compiled is not None:
            # one compiled pass for the counts, extremes and moments (the same figures as below)
            count, num_nan, num_pos_inf, num_neg_inf, zeros, low, high, mean, correction, squares = \
                compiled.moments(values)
            self._add_special(num_nan, num_pos_inf, num_neg_inf)
            self.num_non_missing += values.size - num_nan
            if count:
                self._add_summary(count, zeros, low, high, mean, correction, squares)
                self.sketch.add(values if count == values.size else values[np.isfinite(values)])
            return
        finite = np.isfinite(values)
        num_finite = int(np.count_nonzero(finite))
        num_nan = 0
        present = values.size  # null and NaN are missing, infinities are present
        if num_finite < values.size:
            num_nan = int(np.count_nonzero(np.isnan(values)))
            num_pos_inf = int(np.count_nonzero(values == math.inf))
            num_neg_inf = values.size - num_finite - num_nan - num_pos_inf
            self._add_special(0, num_pos_inf, num_neg_inf)
            present -= num_nan
            values = values[finite]
        self.num_nan += num_nan
        self.num_non_missing += present
        self._add_finite(values)

    def _add_special(self, num_nan: int, num_pos_inf: int, num_neg_inf: int) -> None:
        self.num_nan += num_nan
        self.num_pos_inf += num_pos_inf
        self.num_neg_inf += num_neg_inf
        if num_pos_inf:
            self.max = math.inf
        if num_neg_inf:
            self.min = -math.inf

    def _add_summary(self, count: int, zeros: int, low: float, high: float, mean: float, correction: float,
                     squares: float) -> None:
        # a batch's figures: ``squares`` is the sum of squared deviations from ``mean``, ``correction`` the mean
        # of the deviations (the rounding error of ``mean``): m2 about the true mean follows
        self.min = min(self.min, float(low))
        self.max = max(self.max, float(high))
        self.num_zeros += int(zeros)
        batch_m2 = max(0.0, float(squares) - count * correction * correction)
        self._combine_moments(int(count), float(mean), batch_m2, float(correction))

    def _add_finite(self, finite: np.ndarray) -> None:
        """Moments, zeros, extremes and sketch of finite float64 values (any order; left unchanged)."""
        if finite.size == 0:
            return
        compiled = kernels.for_size(finite.size, moments=True)
        if compiled is not None:
            count, _, _, _, zeros, low, high, mean, correction, squares = compiled.moments(finite)
            self._add_summary(count, zeros, low, high, mean, correction, squares)
            self.sketch.add(finite)
            return
        batch_mean = float(finite.mean())
        # (not np.dot: it goes to a multithreaded BLAS whose spinning threads cost more than they save)
        deviations = finite - batch_mean
        # The float mean of large values with a small spread (timestamps) is off by several units of its last
        # place; the mean of the deviations recovers that part (kept as mean_lo), and m2 about the true mean
        # follows from m2 about the rounded one. Without it, batch boundaries (one pass vs shards) moved the
        # std_dev of such a column in the 7th digit.
        correction = float(deviations.mean())
        np.square(deviations, out=deviations)
        self._add_summary(finite.size, np.count_nonzero(finite == 0.0), finite.min(), finite.max(), batch_mean,
                          correction, float(deviations.sum()))
        self.sketch.add(finite)

    def _add_narrow_integers(self, array: pa.Array) -> bool:
        """Integers spanning a range no wider than their count, summarized from their counts; False if not such.

        A counting sort without the sorted array: a bincount gives the distinct values and their counts,
        from which the extremes, zeros and quantile sketch follow (the same sketch as from the sorted
        values) and the moments exactly, in integer arithmetic (values below 2**53 in magnitude, which
        float64 holds exactly, so the statistics are those of the same numbers as on the float path).
        """
        n = len(array) - array.null_count
        if n < 4096 or (pa.types.is_unsigned_integer(array.type) and array.type.bit_width == 64):
            return False
        compiled = kernels.for_size(len(array))
        if compiled is not None:
            # the same counts from two compiled passes over the slots, the nulls skipped by their bitmap
            values = _numpy(array, nulls=True)
            bitmap, offset = _bitmap(array)
            _, low, high = compiled.valid_min_max(values, bitmap, offset)
        else:
            values = _numpy(pc.drop_null(array) if array.null_count else array)
            low, high = values.min(), values.max()
        low, high = int(low), int(high)
        span = high - low
        if span > n or max(abs(low), abs(high)) >= 1 << 53 or n * span * span >= 1 << 62:
            return False
        if compiled is not None:
            counts = compiled.valid_counts(values, bitmap, offset, low, span + 1)
        else:
            counts = np.bincount(values.astype(np.int64) - low if low or values.dtype != np.int64 else values,
                                 minlength=span + 1)
        self._add_counted_integers(n, low, high, counts)
        return True

    def _add_booleans(self, array: pa.Array) -> bool:
        """A boolean batch as the integers 0 and 1 from its count of trues; False if too short for the counted path.

        The same figures as the batch cast to int64 and counted by :meth:`_add_narrow_integers` (which takes
        batches of at least 4096 values; shorter ones keep the float path), without the cast or the passes
        over it: Arrow counts the true bits.
        """
        n = len(array) - array.null_count
        if n < 4096:
            return False
        trues = int(pc.sum(array).as_py() or 0)
        low, high = (0 if trues < n else 1), (1 if trues else 0)
        self._add_counted_integers(n, low, high, np.array([n - trues, trues], dtype=np.int64)[low:high + 1])
        return True

    def _add_counted_integers(self, n: int, low: int, high: int, counts: np.ndarray) -> None:
        """Add ``n`` integers from their ``counts`` over ``low..high`` (the narrow-integer path's summary)."""
        offsets = np.flatnonzero(counts)
        counts = counts[offsets]
        # exact sums of (value - low) and of its square (below 2**62: n * span**2 is, as the callers check), then
        # exact rationals
        total = int(np.dot(offsets, counts))
        squares = int(np.dot(offsets * offsets, counts))
        self.num_non_missing += n
        self.min = min(self.min, float(low))
        self.max = max(self.max, float(high))
        zero = int(np.searchsorted(offsets, -low))
        if zero < offsets.size and offsets[zero] == -low:
            self.num_zeros += int(counts[zero])
        mean = Fraction(low * n + total, n)
        batch_mean = float(mean)
        self._combine_moments(n, batch_mean, float(Fraction(squares * n - total * total, n)),
                              float(mean - Fraction(batch_mean)))
        self.sketch.add_counted((offsets + low).astype(np.float64), counts)

    def _combine_moments(self, count: int, mean: float, m2: float, mean_lo: float = 0.0) -> None:
        # Symmetric in its two operands and correctly rounded (see combine_moments): merging shard A into B
        # gives the very same bits as B into A.
        if self.count_finite == 0:
            self.count_finite, self.mean, self.mean_lo, self.m2 = count, mean, mean_lo, m2
            return
        self.count_finite, self.mean, self.mean_lo, self.m2 = combine_moments(
            [(self.count_finite, self.mean, self.m2, self.mean_lo), (count, mean, m2, mean_lo)])

    # ---- strings ----
    def _add_strings(self, array: pa.Array) -> None:
        if pa.types.is_dictionary(array.type):
            indices = array.indices
            present = len(indices) - indices.null_count
            if present == 0:
                return
            dictionary = array.dictionary
            counts = _code_counts(indices, len(dictionary))
            used = np.flatnonzero(counts)
            # (the dictionary of a batch read from Parquet holds its row group's values so far: keep the used)
            keys = dictionary if used.size == len(dictionary) else dictionary.take(from_numpy(used))
            counts = counts[used]
            if keys.null_count:
                valid = keys.is_valid()
                mask = _numpy(valid.cast(pa.int8())).astype(bool)
                present -= int(counts[~mask].sum())
                keys, counts = keys.filter(valid), counts[mask]
        elif pa.types.is_null(array.type):
            return
        elif not self.frequencies.exact or self.near_unique is not False:
            # past top_k distinct values (or about to be, or not known yet): hash-based counting of the plain values
            present = len(array) - array.null_count
            if present == 0:
                return
            self.num_non_missing += present
            counted_bytes = self.frequencies.add_values(array, mostly_distinct=self.near_unique is not False)
            self.total_length += counted_bytes if counted_bytes is not None else _value_bytes(array)
            if self.near_unique is None:  # the first batch decides how the next ones are read
                self.near_unique = self.frequencies.batch_distinct > _NEAR_UNIQUE * present
            self._count_numbers(array, None)
            return
        else:
            present = len(array) - array.null_count
            if present == 0:
                return
            counted = pc.value_counts(array)
            keys = counted.field("values")
            counts = _numpy(counted.field("counts"))
            if keys.null_count:
                valid = keys.is_valid()
                keys, counts = keys.filter(valid), counts[_numpy(valid.cast(pa.int8())).astype(bool)]
        self.num_non_missing += present
        lengths = _numpy(pc.binary_length(keys))
        self.total_length += int(np.dot(lengths.astype(np.int64), counts))
        self.frequencies.add_counts(keys, counts)
        self._count_numbers(keys, counts)
        if not self.frequencies.exact and len(keys) > _NEAR_UNIQUE * present:
            # mostly distinct values: reading them as a dictionary would only hash them twice
            self.near_unique = True

    def _count_numbers(self, values: pa.Array, counts: np.ndarray | None) -> None:
        """Count the values that read as numbers: ``values`` (with ``counts``, or once each if None).

        A numeric column with a few bad strings arrives here as text; validation tells it apart from a
        categorical column by this count. Only string columns pay for it, and little: a regex over the first
        values ends the count for text columns; the counted paths look at each batch's distinct values only;
        plain batches of numbers only are one Arrow cast (a failing cast is slow: tried until one fails).
        """
        if self.numeric is None or self.kind != FeatureType.STRING:
            return
        probe = values.slice(0, _NUMERIC_PROBE) if len(values) > 4 * _NUMERIC_PROBE else values
        matched = pc.match_substring_regex(probe, NUMBER_PATTERN)
        if counts is None:
            found, seen = pc.sum(matched).as_py() or 0, len(probe) - probe.null_count
        else:
            weights = counts[:len(probe)]
            found, seen = int(np.dot(_numpy(matched.cast(pa.int64())), weights)), int(weights.sum())
        if found < _NUMERIC_GIVE_UP * seen:
            self.numeric = None
            return
        if probe is not values:
            if counts is None and found == seen and self.cast_numbers:
                try:
                    pc.cast(values, pa.float64())
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    self.cast_numbers = False
                else:
                    self.numeric += len(values) - values.null_count
                    return
            matched = pc.match_substring_regex(values, NUMBER_PATTERN)
        if counts is None:
            self.numeric += int(pc.sum(matched).as_py() or 0)
        else:
            self.numeric += int(np.dot(_numpy(matched.cast(pa.int64())), counts))
        if self.numeric < _NUMERIC_GIVE_UP * self.num_non_missing:
            self.numeric = None

    def add(self, array: pa.Array) -> None:
        """Add one column chunk of a record batch."""
        self._proto = None
        if self.kind in (FeatureType.INT, FeatureType.FLOAT):
            self._add_numeric(array)
        else:
            self._add_strings(array)

    def merge(self, other: _FeatureAccumulator) -> None:
        """Fold the partial statistics of the same feature from other data into this one."""
        if other.kind != self.kind:
            raise StatisticsError(
                f"column {self.name!r}: cannot merge statistics of type {FeatureType.Type.Name(self.kind)} "
                f"and {FeatureType.Type.Name(other.kind)}")
        self._proto = None
        self.num_non_missing += other.num_non_missing
        self.num_nan += other.num_nan
        if self.kind in (FeatureType.INT, FeatureType.FLOAT):
            if other.count_finite:
                self._combine_moments(other.count_finite, other.mean, other.m2, other.mean_lo)
            self.num_zeros += other.num_zeros
            self.num_pos_inf += other.num_pos_inf
            self.num_neg_inf += other.num_neg_inf
            self.min = min(self.min, other.min)
            self.max = max(self.max, other.max)
            self.sketch.merge(other.sketch)
        else:
            self.total_length += other.total_length
            self.numeric = None if self.numeric is None or other.numeric is None else self.numeric + other.numeric
            self.frequencies.merge(other.frequencies)

    # ---- proto ----
    def to_proto(self, num_examples: int, top_k: int) -> statistics_pb2.FeatureNameStatistics:
        """The feature's ``FeatureNameStatistics`` (kept until the feature changes: the Parquet workers build
        it as soon as their column is done, in parallel with the other columns)."""
        if self._proto is not None and self._proto[0] == (num_examples, top_k):
            return self._proto[1]
        feature = self._build_proto(num_examples, top_k)
        self._proto = ((num_examples, top_k), feature)
        return feature

    def _build_proto(self, num_examples: int, top_k: int) -> statistics_pb2.FeatureNameStatistics:
        feature = statistics_pb2.FeatureNameStatistics()
        feature.path.step.append(self.name)
        feature.type = self.kind
        common = statistics_pb2.CommonStatistics(
            num_non_missing=self.num_non_missing,
            num_missing=num_examples - self.num_non_missing,
            tot_num_values=self.num_non_missing,
        )
        if self.num_non_missing:
            common.min_num_values = 1
            common.max_num_values = 1
            common.avg_num_values = 1.0
            histogram = common.num_values_histogram
            histogram.type = statistics_pb2.Histogram.QUANTILES
            share = self.num_non_missing / NUM_VALUES_HISTOGRAM_BUCKETS
            for _ in range(NUM_VALUES_HISTOGRAM_BUCKETS):
                histogram.buckets.add(low_value=1.0, high_value=1.0, sample_count=share)
        if self.kind in (FeatureType.INT, FeatureType.FLOAT):
            feature.num_stats.common_stats.CopyFrom(common)
            self._numeric_proto(feature.num_stats, feature.custom_stats)
        else:
            feature.string_stats.common_stats.CopyFrom(common)
            self._string_proto(feature.string_stats, feature.custom_stats, top_k)
        return feature

    def _numeric_proto(self, stats: statistics_pb2.NumericStatistics, custom) -> None:
        if self.num_nan:
            custom.add(name=CUSTOM_NUM_NAN, num=self.num_nan)
        if self.num_non_missing == 0:
            return
        stats.min = self.min
        stats.max = self.max
        stats.num_zeros = self.num_zeros
        if self.num_pos_inf or self.num_neg_inf:
            custom.add(name=CUSTOM_NUM_POS_INF, num=self.num_pos_inf)
            custom.add(name=CUSTOM_NUM_NEG_INF, num=self.num_neg_inf)
        if self.count_finite == 0:
            return
        stats.mean = self.mean + self.mean_lo
        stats.std_dev = math.sqrt(max(0.0, self.m2 / self.count_finite))
        custom.add(name=CUSTOM_QUANTILE_RANK_ERROR, num=self.sketch.rank_error_bound())
        items, weights = self.sketch.weighted_items()
        cumulative = np.cumsum(weights)
        total = cumulative[-1]

        def at(fractions):
            index = np.searchsorted(cumulative, np.asarray(fractions) * total, side="left")
            return items[np.clip(index, 0, items.size - 1)]

        # the extremes of the finite values: exact where no infinity hides them (a sampled sketch may miss them)
        finite_min = self.min if math.isfinite(self.min) else float(items[0])
        finite_max = self.max if math.isfinite(self.max) else float(items[-1])
        stats.median = float(at([0.5])[0])
        # Equal-width histogram over [finite min, finite max], infinities in their own point buckets (as TFDV).
        standard = stats.histograms.add(type=statistics_pb2.Histogram.STANDARD)
        if self.num_neg_inf:
            standard.buckets.add(low_value=-math.inf, high_value=-math.inf, sample_count=self.num_neg_inf)
        scale = self.count_finite / total
        if finite_min == finite_max:
            standard.buckets.add(low_value=finite_min, high_value=finite_max, sample_count=float(self.count_finite))
        else:
            edges = np.linspace(finite_min, finite_max, NUM_HISTOGRAM_BUCKETS + 1)
            counts, _ = np.histogram(items, bins=edges, weights=weights)
            for i in range(NUM_HISTOGRAM_BUCKETS):
                standard.buckets.add(low_value=float(edges[i]), high_value=float(edges[i + 1]),
                                     sample_count=float(counts[i] * scale))
        if self.num_pos_inf:
            standard.buckets.add(low_value=math.inf, high_value=math.inf, sample_count=self.num_pos_inf)
        quantile_histogram = stats.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
        boundaries = at(np.linspace(0.0, 1.0, NUM_QUANTILES_BUCKETS + 1))
        boundaries[0], boundaries[-1] = finite_min, finite_max
        share = self.count_finite / NUM_QUANTILES_BUCKETS
        for i in range(NUM_QUANTILES_BUCKETS):
            quantile_histogram.buckets.add(low_value=float(boundaries[i]), high_value=float(boundaries[i + 1]),
                                           sample_count=share)

    def _string_proto(self, stats: statistics_pb2.StringStatistics, custom, top_k: int) -> None:
        sketch = self.frequencies
        stats.unique = sketch.unique()
        if self.num_non_missing:
            stats.avg_length = self.total_length / self.num_non_missing
        if self.kind == FeatureType.STRING:
            labels, counts = sketch.top_array(top_k)
            if len(labels):
                try:
                    # thousands of entries: encoded in bulk, parsed by protobuf's C code (a Python add() per
                    # entry was ~15% of a 1M-row pass)
                    stats.MergeFromString(_encode_top_values(labels, counts.astype(np.float64)))
                except Exception:  # noqa: BLE001 - e.g. invalid UTF-8 refused by the parser: the slow path below
                    del stats.top_values[:]
                    stats.ClearField("rank_histogram")
                else:
                    counts = counts[:0]
            values = labels.to_pylist() if len(counts) else []
        else:
            values, counts = sketch.top(top_k)
            values = [value.decode("utf-8", errors="backslashreplace") for value in values]
        add_top, add_rank = stats.top_values.add, stats.rank_histogram.buckets.add
        for rank, (label, count) in enumerate(zip(values, counts.astype(np.float64).tolist(), strict=True)):
            add_top(value=label, frequency=count)
            add_rank(low_rank=rank, high_rank=rank, label=label, sample_count=count)
        custom.add(name=CUSTOM_TOP_K_EXACT, num=1.0 if sketch.exact else 0.0)
        if self.numeric is not None and self.num_non_missing and self.kind == FeatureType.STRING:
            custom.add(name=CUSTOM_NUM_NUMERIC_STRINGS, num=float(self.numeric))
        if not sketch.exact:
            custom.add(name=CUSTOM_TOP_K_ERROR, num=float(sketch.error))


def _varint_sizes(values: np.ndarray) -> np.ndarray:
    sizes = np.ones(values.size, dtype=np.int64)
    for shift in range(7, 64, 7):
        sizes += values >= (1 << shift)
    return sizes


def _put_varints(out: np.ndarray, position: np.ndarray, values: np.ndarray, sizes: np.ndarray) -> None:
    for k in range(int(sizes.max()) if sizes.size else 0):
        more = sizes > k
        byte = (values[more] >> (7 * k)) & 0x7F
        byte |= np.where(sizes[more] > k + 1, 0x80, 0)
        out[position[more] + k] = byte


def _encode_top_values(labels: pa.Array, counts: np.ndarray) -> bytes:
    """``StringStatistics`` wire bytes of ``top_values`` and ``rank_histogram`` (rank i = i-th label), vectorized.

    Per entry i with label bytes L and count c (protobuf wire format, proto3 zeros included, which parse the same):
    ``top_values`` (field 3): ``FreqAndValue{value(2)=L, frequency(3)=c}``; ``rank_histogram`` (field 5) holds
    ``buckets`` (field 1): ``Bucket{low_rank(1)=i, high_rank(2)=i, label(4)=L, sample_count(5)=c}``.
    """
    labels = labels.cast(pa.large_string())
    n = len(labels)
    offsets, buffer = _offsets_and_data(labels)
    compiled = kernels.for_size(n)
    if compiled is not None:
        return compiled.encode_top_values(offsets, buffer, counts)
    data = buffer[offsets[0]: offsets[-1]]
    lengths = np.diff(offsets)
    ranks = np.arange(n, dtype=np.int64)
    doubles = np.ascontiguousarray(counts, dtype="<f8").view(np.uint8).reshape(n, 8)
    length_sizes, rank_sizes = _varint_sizes(lengths), _varint_sizes(ranks)
    value_size = 1 + length_sizes + lengths + 9  # FreqAndValue body
    bucket_size = 2 * (1 + rank_sizes) + 1 + length_sizes + lengths + 9  # Bucket body
    value_sizes, bucket_sizes = _varint_sizes(value_size), _varint_sizes(bucket_size)
    top_entry = 1 + value_sizes + value_size
    bucket_entry = 1 + bucket_sizes + bucket_size
    histogram = int(bucket_entry.sum())
    histogram_header = 1 + int(_varint_sizes(np.array([histogram]))[0])
    total = int(top_entry.sum()) + histogram_header + histogram
    out = np.zeros(total, dtype=np.uint8)
    label_index = np.arange(data.size, dtype=np.int64) - np.repeat(offsets[:-1] - offsets[0], lengths)

    def put_label_and_double(position: np.ndarray, double_tag: int) -> np.ndarray:
        out[np.repeat(position, lengths) + label_index] = data
        position = position + lengths
        out[position] = double_tag
        out[(position + 1)[:, None] + np.arange(8)] = doubles
        return position + 9

    # top_values entries, one after another
    position = np.concatenate([[0], np.cumsum(top_entry)[:-1]]).astype(np.int64)
    out[position] = 0x1A
    _put_varints(out, position + 1, value_size, value_sizes)
    position = position + 1 + value_sizes
    out[position] = 0x12
    _put_varints(out, position + 1, lengths, length_sizes)
    put_label_and_double(position + 1 + length_sizes, 0x19)
    # rank_histogram: one length-delimited message holding every bucket
    start = int(top_entry.sum())
    out[start] = 0x2A
    _put_varints(out, np.array([start + 1]), np.array([histogram]), _varint_sizes(np.array([histogram])))
    position = start + histogram_header + np.concatenate([[0], np.cumsum(bucket_entry)[:-1]]).astype(np.int64)
    out[position] = 0x0A
    _put_varints(out, position + 1, bucket_size, bucket_sizes)
    position = position + 1 + bucket_sizes
    for tag in (0x08, 0x10):  # low_rank, high_rank
        out[position] = tag
        _put_varints(out, position + 1, ranks, rank_sizes)
        position = position + 1 + rank_sizes
    out[position] = 0x22
    _put_varints(out, position + 1, lengths, length_sizes)
    put_label_and_double(position + 1 + length_sizes, 0x29)
    return out.tobytes()


class StatisticsAccumulator:
    """Partial statistics of a table: add record batches, merge with others, then :meth:`to_proto`.

    Args:
        top_k: string values kept per feature (exact counts up to this many distinct values).
        quantile_k: values per level of the quantile sketches.
        threads: worker threads over columns (Arrow and NumPy release the GIL); default: CPU count, max 4.
    """

    def __init__(self, top_k: int = DEFAULT_TOP_K, quantile_k: int = DEFAULT_QUANTILE_K, threads: int | None = None):
        if top_k < 1:
            raise StatisticsError(f"top_k must be positive, got {top_k}")
        self.top_k = top_k
        self.quantile_k = quantile_k
        self.threads = threads or _default_threads()
        self.num_examples = 0
        self.features: dict[str, _FeatureAccumulator] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _feature(self, name: str, arrow_type: pa.DataType, source: str) -> _FeatureAccumulator:
        feature = self.features.get(name)
        try:
            kind = _feature_kind(arrow_type)
        except TypeError:
            raise StatisticsError(
                f"{source}: column {name!r} has type {arrow_type}; statistics support flat columns "
                "(integer, floating point, decimal, boolean, string, binary, date/time)") from None
        if feature is None:
            feature = _FeatureAccumulator(name, kind, arrow_type, self.top_k, self.quantile_k)
            self.features[name] = feature
        elif feature.kind != kind and not pa.types.is_null(arrow_type):
            if pa.types.is_null(feature.arrow_type) and feature.num_non_missing == 0:
                # an all-null start (type null) of a column whose real type shows up later
                replacement = _FeatureAccumulator(name, kind, arrow_type, self.top_k, self.quantile_k)
                self.features[name] = replacement
                return replacement
            raise StatisticsError(
                f"{source}: column {name!r} changes type from {feature.arrow_type} to {arrow_type} between "
                "record batches (mixed types)")
        return feature

    def add_batch(self, batch: pa.RecordBatch | pa.Table, source: str = "data") -> None:
        """Add a record batch (or table) to the statistics."""
        _check_unique_names(batch.schema, source)
        work = []
        for i, field in enumerate(batch.schema):
            feature = self._feature(field.name, field.type, source)
            column = batch.column(i)
            chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
            work.extend((feature, chunk) for chunk in chunks)
        # first all columns are checked and registered, then counted, so a bad column adds nothing
        self.num_examples += batch.num_rows
        if self.threads > 1 and len(work) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="kfpc-stats")
            # one task per feature so that a feature's accumulator is never touched by two threads at once
            by_feature: dict[int, list] = {}
            for feature, chunk in work:
                by_feature.setdefault(id(feature), []).append((feature, chunk))
            list(self._pool.map(_add_chunks, by_feature.values()))
        else:
            _add_chunks(work)

    def add_parquet(self, path: str | os.PathLike, row_groups: tuple[int, int] | None = None) -> None:
        """Add every row of a Parquet file (or of row groups ``[start, stop)``), column by column on the workers.

        Each worker reads and summarizes whole columns (:func:`_parquet_tasks`) with Arrow's own reader
        threads off, so the file is decoded and summarized on all cores at once with no batch shared
        between threads; memory holds one batch of one column per worker. The calling thread is one of the
        workers, and the workers take the next column task themselves (no thread is woken per task, each of
        which was a GIL handover). Per column the batches and their order are the same whatever the number of
        threads, so the statistics are too.
        """
        path = str(path)
        if not os.path.exists(path):
            raise StatisticsError(f"{path}: no such file")
        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowInvalid, OSError) as err:
            raise StatisticsError(f"{path}: not a readable Parquet file ({err})") from err
        schema = parquet.schema_arrow
        _check_unique_names(schema, path)
        groups = _row_group_range(parquet.metadata, row_groups, path)
        features = {field.name: self._feature(field.name, field.type, path) for field in schema}
        tasks = _parquet_tasks(parquet, self.threads)
        strings = _string_columns(schema)
        rows = sum(parquet.metadata.row_group(g).num_rows for g in groups) if row_groups else parquet.metadata.num_rows
        num_examples = self.num_examples + rows
        # the workers' batches together stay near one _TARGET_BATCH_BYTES
        batch_bytes = max(1 << 20, _TARGET_BATCH_BYTES // self.threads)

        for name in _plain_candidates(parquet.metadata, schema, schema.names, groups[0] if groups else 0, strings):
            if features[name].near_unique is False:
                features[name].near_unique = None  # read plain until its first batch tells

        def plain() -> frozenset:
            # string columns of mostly distinct values (or not known yet) are read plain
            return frozenset(c for c in strings if features[c].near_unique is not False)

        pending = iter(tasks)
        failed: list[BaseException] = []

        def work() -> None:
            # Take the next column task until none is left (the calling thread is a worker too, so no thread
            # waits to be woken per task); each worker keeps its open readers of the file (each open takes and
            # gives back the GIL several times in pyarrow's filesystem layer).
            readers: dict = {}
            while not failed:
                columns = next(pending, None)
                if columns is None:
                    return
                try:
                    for batch in _parquet_batches(path, columns, plain=plain, batch_bytes=batch_bytes,
                                                  metadata=parquet.metadata, row_groups=row_groups,
                                                  readers=readers):
                        for i, name in enumerate(columns):
                            features[name].add(batch.column(i))
                    for name in columns:  # while the other workers still count
                        features[name].to_proto(num_examples, self.top_k)
                except BaseException as err:
                    failed.append(err)  # the other workers stop after their task
                    raise

        helpers = []
        if self.threads > 1 and len(tasks) > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="kfpc-stats")
            helpers = [self._pool.submit(work) for _ in range(min(self.threads, len(tasks)) - 1)]
        try:
            try:
                work()
            finally:
                for helper in helpers:  # every worker done before the statistics are read or an error raised
                    helper.exception()
            for helper in helpers:
                helper.result()
        except (pa.ArrowInvalid, OSError) as err:  # e.g. a damaged page behind an intact footer
            raise StatisticsError(f"{path}: not a readable Parquet file ({err})") from err
        self.num_examples += rows

    def merge(self, other: StatisticsAccumulator) -> None:
        """Fold the partial statistics of other rows of the same table into this one."""
        for name, feature in other.features.items():
            if name in self.features:
                mine = self.features[name]
                if mine.kind != feature.kind and mine.num_non_missing == 0 and pa.types.is_null(mine.arrow_type):
                    self.features[name] = feature
                    continue
                if mine.kind != feature.kind and feature.num_non_missing == 0 and pa.types.is_null(
                        feature.arrow_type):
                    mine.num_non_missing += 0
                    continue
                mine.merge(feature)
            else:
                self.features[name] = feature
        self.num_examples += other.num_examples

    def close(self) -> None:
        """Release the worker threads."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def to_proto(self, name: str = "") -> statistics_pb2.DatasetFeatureStatistics:
        """The ``DatasetFeatureStatistics`` of everything added and merged so far."""
        result = statistics_pb2.DatasetFeatureStatistics(name=name, num_examples=self.num_examples)
        result.features.extend(feature.to_proto(self.num_examples, self.top_k) for feature in self.features.values())
        return result


def combine_moments(parts: list[tuple]) -> tuple[int, float, float, float]:
    """Moments of the union of partitions given as ``(count, mean, m2[, mean_lo])``, in any order.

    The n-way form of Chan et al.'s update, with correctly rounded sums (``math.fsum``) and the means taken
    relative to the smallest partition mean (so large values with a small spread keep their digits):
    ``mean = ref + sum(n_i * o_i) / N`` with ``o_i = (mean_i - ref) + mean_lo_i``, and
    ``m2 = sum(m2_i) + sum(n_i * (o_i - o)**2)``. Every term depends only on its partition and on order-free
    values (ref, o), so the result is the same bits whatever the order of ``parts``.

    Returns:
        (count, mean, mean_lo, m2): the mean is ``mean + mean_lo``.
    """
    parts = [(int(p[0]), float(p[1]), float(p[2]), float(p[3]) if len(p) > 3 else 0.0) for p in parts if p[0]]
    total = sum(p[0] for p in parts)
    if total == 0:
        return 0, 0.0, 0.0, 0.0
    ref = min(p[1] for p in parts)
    offsets = [(p[1] - ref) + p[3] for p in parts]
    offset = math.fsum(p[0] * o for p, o in zip(parts, offsets, strict=True)) / total
    mean = ref + offset
    mean_lo = offset - (mean - ref)
    m2 = math.fsum([p[2] for p in parts] + [p[0] * (o - offset) ** 2 for p, o in zip(parts, offsets, strict=True)])
    return total, mean, mean_lo, m2


def merge_accumulators(accumulators: list[StatisticsAccumulator]) -> StatisticsAccumulator:
    """One accumulator for the union of the rows of ``accumulators`` (shards of one table).

    Sketches are folded in the order given (pass shards in their planned order: the quantile sketch's
    retained items depend on it, within its error bound); means and variances come from
    :func:`combine_moments` over all shards at once, so they do not depend on the order at all. Counts,
    missing counts, min/max, zeros, infinities and exact value counts are sums/extremes, hence exact.

    Raises:
        StatisticsError: no accumulators, or a column of different types in two shards.
    """
    if not accumulators:
        raise StatisticsError("no shard statistics to merge")
    first = accumulators[0]
    merged = StatisticsAccumulator(top_k=first.top_k, quantile_k=first.quantile_k, threads=1)
    moments: dict[str, list[tuple[int, float, float]]] = {}
    for accumulator in accumulators:
        if (accumulator.top_k, accumulator.quantile_k) != (first.top_k, first.quantile_k):
            raise StatisticsError(
                f"shards were summarized with different settings: top_k/quantile_k {first.top_k}/"
                f"{first.quantile_k} and {accumulator.top_k}/{accumulator.quantile_k}")
        for name, feature in accumulator.features.items():
            if feature.kind in (FeatureType.INT, FeatureType.FLOAT):
                moments.setdefault(name, []).append((feature.count_finite, feature.mean, feature.m2,
                                                     feature.mean_lo))
        merged.merge(copy.deepcopy(accumulator))
    for name, parts in moments.items():
        feature = merged.features[name]
        if feature.kind in (FeatureType.INT, FeatureType.FLOAT):
            feature.count_finite, feature.mean, feature.mean_lo, feature.m2 = combine_moments(parts)
            feature._proto = None
    return merged


def _code_counts(indices: pa.Array, size: int) -> np.ndarray:
    """Occurrences of each dictionary code ``0..size-1`` among the non-null ``indices``.

    Counted over all slots, then the null slots' codes (whatever the buffer holds there) taken back off:
    cheaper than dropping the nulls with a copy first.
    """
    compiled = kernels.for_size(len(indices))
    if compiled is not None:
        return compiled.valid_counts(_numpy(indices, nulls=True), *_bitmap(indices), 0, size)
    if not indices.null_count:
        return np.bincount(_numpy(indices), minlength=size)
    raw = _numpy(indices, nulls=True)
    nulls = raw[np.flatnonzero(~_validity(indices))]
    if nulls.min() < 0 or nulls.max() >= size:  # not codes: count the valid slots only
        return np.bincount(_numpy(pc.drop_null(indices)), minlength=size)
    counts = np.bincount(raw, minlength=size)
    counts -= np.bincount(nulls, minlength=size)
    return counts


def _bitmap(array: pa.Array) -> tuple[np.ndarray, int]:
    """An array's validity bitmap as bytes and the bit offset of its first slot (no nulls: empty, 0)."""
    if not array.null_count:
        return np.zeros(0, dtype=np.uint8), 0
    return np.frombuffer(array.buffers()[0], dtype=np.uint8), array.offset


def _value_bytes(array: pa.Array) -> int:
    """Total bytes of the non-null values of a string or binary array (from its offsets)."""
    if not is_binary_like(array.type):
        return int(pc.sum(pc.binary_length(array)).as_py() or 0)
    offsets = _offsets_and_data(array)[0]
    if not array.null_count:
        return int(offsets[-1]) - int(offsets[0])
    # (a null slot may span bytes: only valid slots count)
    return int(np.dot(np.diff(offsets).astype(np.int64), _validity(array).view(np.uint8).astype(np.int64)))


def _add_chunks(items) -> None:
    for feature, chunk in items:
        feature.add(chunk)


def _check_unique_names(schema: pa.Schema, source: str) -> None:
    names = schema.names
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise StatisticsError(f"{source}: duplicate column names {duplicates}")


def _string_columns(schema: pa.Schema) -> set[str]:
    return {field.name for field in schema if is_binary_like(field.type)}


def _parquet_tasks(parquet: pq.ParquetFile, threads: int) -> list[list[str]]:
    """Columns of a (flat) Parquet file split into work for ``threads`` workers, the largest first.

    Columns are independent, so each worker reads and summarizes whole columns on its own: no batch is
    shared between threads and no worker waits for another. Every column is a task of its own unless the
    table is wide, then neighbouring columns are grouped into about ``8 * threads`` tasks of similar size
    (fewer, larger reads). Largest first keeps the workers busy to the end (LPT scheduling).
    """
    metadata = parquet.metadata
    names = parquet.schema_arrow.names
    sizes = [0] * len(names)
    for g in range(metadata.num_row_groups):
        group = metadata.row_group(g)
        for j in range(min(group.num_columns, len(names))):
            sizes[j] += group.column(j).total_uncompressed_size
    limit = max(64, 8 * threads)
    if len(names) <= limit:
        tasks = [([name], size) for name, size in zip(names, sizes, strict=True)]
    else:
        share = max(1, sum(sizes) // limit)
        tasks, current, current_size = [], [], 0
        for name, size in zip(names, sizes, strict=True):
            current.append(name)
            current_size += size
            if current_size >= share:
                tasks.append((current, current_size))
                current, current_size = [], 0
        if current:
            tasks.append((current, current_size))
    tasks.sort(key=lambda task: -task[1])
    return [columns for columns, _ in tasks]


def _row_group_range(metadata: pq.FileMetaData, row_groups: tuple[int, int] | None, path: str) -> list[int]:
    """Row group indices ``[start, stop)`` of a file (all when ``row_groups`` is None), checked."""
    if row_groups is None:
        return list(range(metadata.num_row_groups))
    start, stop = (int(v) for v in row_groups)
    if not 0 <= start < stop <= metadata.num_row_groups:
        raise StatisticsError(f"{path}: row groups [{start}, {stop}) out of range; the file has "
                              f"{metadata.num_row_groups}")
    return list(range(start, stop))


def _plain_candidates(metadata: pq.FileMetaData, schema: pa.Schema, columns: list[str], first_group: int,
                      strings: set[str]) -> list[str]:
    """String columns of ``columns`` to read plain from the start: all but those with a small dictionary.

    Writers store a column's pages plain once its dictionary page overflows, and reading plain pages as a
    dictionary would hash every value only to count it again; a column of mostly distinct values is read plain
    and counted by hash. Which columns those are is told by the file's metadata alone where it can be: a
    dictionary page of less than a quarter byte per row (compressed) in the first row group holds few distinct
    values, and that column is read as a dictionary. The others are read plain for their first batch, which
    then decides (:meth:`_FeatureAccumulator._add_strings`): no second read of the first rows to find out.
    """
    if metadata.num_row_groups == 0 or not strings.intersection(columns):
        return []
    first = metadata.row_group(first_group)

    def small_dictionary(name: str) -> bool:
        chunk = first.column(schema.get_field_index(name))
        size = chunk.data_page_offset - chunk.dictionary_page_offset
        return chunk.has_dictionary_page and 0 < size and size * _PROBE_DICTIONARY_ROWS_PER_BYTE < first.num_rows

    return [name for name in columns if name in strings and not small_dictionary(name)]


def _parquet_batches(path: str, columns: list[str] | None = None, plain=lambda: frozenset(),
                     batch_bytes: int = _TARGET_BATCH_BYTES,
                     metadata: pq.FileMetaData | None = None,
                     row_groups: tuple[int, int] | None = None,
                     readers: dict | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of ``columns`` (default: all) of a Parquet file, about ``batch_bytes`` of decoded data each.

    String and binary columns are read as Arrow dictionaries: for dictionary-encoded Parquet pages the
    reader hands over the codes as they are stored, so counting values is a bincount over integer codes
    instead of hashing every string. ``plain()`` (asked before each read) names the columns found to be
    mostly distinct values, whose pages writers store plain once their dictionary overflows: those are
    read as plain strings and counted by hash. Decoding runs on the calling thread (Arrow's own threads
    off): the callers are the statistics' worker threads, one per core. ``readers``, a dict the caller keeps
    across calls, holds the open file per set of columns read as dictionaries (an open per worker instead of
    one per column).
    """
    readers = {} if readers is None else readers

    def reader(dictionary: frozenset) -> pq.ParquetFile:
        # one open file per set of columns read as dictionaries, kept in `readers` across calls
        if dictionary not in readers:
            readers[dictionary] = pq.ParquetFile(path, read_dictionary=sorted(dictionary) or None,
                                                 metadata=metadata)
        return readers[dictionary]

    try:
        parquet = reader(frozenset())
        metadata = parquet.metadata
        schema = parquet.schema_arrow
        columns = list(schema.names) if columns is None else columns
        strings = _string_columns(schema)
        first = 0 if row_groups is None else int(row_groups[0])
        groups = [metadata.row_group(i) for i in _row_group_range(metadata, row_groups, path)]
        index = [schema.get_field_index(name) for name in columns]
        column_bytes = sum(g.column(j).total_uncompressed_size for g in groups for j in index if j < g.num_columns)
        row_bytes = max(1, column_bytes // max(1, sum(g.num_rows for g in groups)))
        # Fewer, larger batches (less per-batch overhead): a large row group is read in slices, small
        # consecutive ones are read together.
        batch_rows = int(max(1024, min(_MAX_BATCH_ROWS, batch_bytes // row_bytes)))

        if not groups:
            yield from reader(frozenset(strings)).iter_batches(batch_size=batch_rows, columns=columns,
                                                               use_threads=False)
            return
        start = 0
        while start < len(groups):
            stop, rows = start, 0
            while stop < len(groups) and (stop == start or rows + groups[stop].num_rows <= batch_rows):
                rows += groups[stop].num_rows
                stop += 1
            chosen = reader(frozenset(strings - frozenset(plain())))
            if stop - start == 1:
                yield from chosen.iter_batches(batch_size=batch_rows, row_groups=[first + start], columns=columns,
                                               use_threads=False)
            else:
                # (iter_batches would cut a batch at every row group, where the dictionaries change)
                table = chosen.read_row_groups(list(range(first + start, first + stop)), columns=columns,
                                               use_threads=False)
                yield from table.combine_chunks().to_batches(max_chunksize=batch_rows)
            start = stop
    except (pa.ArrowInvalid, OSError) as err:
        raise StatisticsError(f"{path}: not a readable Parquet file ({err})") from err


def _batches(source) -> tuple[str, Iterable]:
    if isinstance(source, (pa.Table, pa.RecordBatch)):
        return "table", [source]
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is in every image
        pd = None
    if pd is not None and isinstance(source, pd.DataFrame):
        columns = {}
        for name in source.columns:
            try:
                columns[str(name)] = pa.array(source[name], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
                raise StatisticsError(f"DataFrame: column {name!r} has mixed types ({err})") from err
        if len(columns) != len(source.columns):
            raise StatisticsError(f"DataFrame: duplicate column names in {list(source.columns)}")
        return "DataFrame", [pa.table(columns)]
    return "record batches", source


_malloc_tuned = False


def _tune_malloc() -> None:
    """Keep freed batch-sized buffers in the process heap instead of handing them back to the kernel.

    Every record batch makes NumPy temporaries of a few MiB (sorted copies, hashes, deviations). glibc
    serves those with fresh ``mmap`` pages or trims them off the heap when freed, so each batch pays a
    page fault per 4 KiB again: measured here, half the time of a numeric column. Raising glibc's mmap and
    trim thresholds (``mallopt``) lets the next batch reuse the same memory; peak memory is unchanged
    (the buffers are freed and reused, not kept), only memory above the peak is not returned early.
    Done once per process, on Linux with glibc; ``KFPC_MALLOC_TUNING=0`` leaves malloc alone.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    if os.environ.get("KFPC_MALLOC_TUNING", "1") == "0" or not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt  # glibc; absent on musl
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, _MALLOC_MMAP_THRESHOLD)
    mallopt(m_trim_threshold, _MALLOC_TRIM_THRESHOLD)


def _default_threads() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def accumulate(source, *, top_k: int = DEFAULT_TOP_K, quantile_k: int = DEFAULT_QUANTILE_K,
               threads: int | None = None) -> StatisticsAccumulator:
    """Partial statistics of ``source`` (mergeable with other partial statistics).

    Args:
        source: a Parquet path (file or folder), a pyarrow Table/RecordBatch, a pandas DataFrame, or an
            iterable of RecordBatches.
        top_k: string values kept per feature.
        quantile_k: values per quantile sketch level.
        threads: worker threads (default: CPU count, at most 4).
    Returns:
        A :class:`StatisticsAccumulator`.
    Raises:
        StatisticsError: unreadable file, duplicate or nested columns, a column changing type.
    """
    _tune_malloc()
    accumulator = StatisticsAccumulator(top_k=top_k, quantile_k=quantile_k, threads=threads)
    if isinstance(source, (str, os.PathLike)):
        try:
            accumulator.add_parquet(source)
        finally:
            accumulator.close()
        return accumulator
    label, batches = _batches(source)
    try:
        for batch in batches:
            accumulator.add_batch(batch, label)
    except (pa.ArrowInvalid, OSError) as err:
        raise StatisticsError(f"{label}: cannot read ({err})") from err
    finally:
        accumulator.close()
    return accumulator


def generate_statistics(source, name: str = "", *, top_k: int = DEFAULT_TOP_K,
                        quantile_k: int = DEFAULT_QUANTILE_K,
                        threads: int | None = None) -> statistics_pb2.DatasetFeatureStatistics:
    """Statistics of a table in TFDV's format.

    Args:
        source: a Parquet path, a pyarrow Table, a pandas DataFrame, or an iterable of RecordBatches.
        name: the dataset name written into the proto (e.g. the split).
        top_k: string values kept (and written as top_values / rank_histogram) per feature.
        quantile_k: values per quantile sketch level (larger: more exact quantiles).
        threads: worker threads over columns.
    Returns:
        ``DatasetFeatureStatistics`` with one ``FeatureNameStatistics`` per column.
    Raises:
        StatisticsError: with the source and column at fault.
    """
    return accumulate(source, top_k=top_k, quantile_k=quantile_k, threads=threads).to_proto(name)


def write_statistics(dataset_dir: str | os.PathLike, output_dir: str | os.PathLike, splits=None, *,
                     top_k: int = DEFAULT_TOP_K, quantile_k: int = DEFAULT_QUANTILE_K) -> dict:
    """Write ``Split-<split>/FeatureStats.pb`` for every split of a Dataset artifact, atomically.

    Args:
        dataset_dir: the Dataset folder (``Split-<split>/data.parquet``).
        output_dir: the statistics artifact folder (must be absent or empty).
        splits: splits to summarize (default: all).
        top_k: string values kept per feature.
        quantile_k: values per quantile sketch level.
    Returns:
        Artifact metadata: ``split_names`` and ``rows`` (split -> number of examples).
    Raises:
        StatisticsError: a split is missing or unreadable; nothing is left in ``output_dir``.
    """
    if not Path(dataset_dir).is_dir():
        raise StatisticsError(f"{dataset_dir}: not a Dataset folder")
    available = artifacts.dataset_splits(dataset_dir)
    chosen = list(splits) if splits else available
    if not chosen:
        raise StatisticsError(f"{dataset_dir}: no splits (expected {types.SPLIT_DIR.format(split='<name>')}/"
                              f"{types.DATA_FILE})")
    missing = [s for s in chosen if s not in available]
    if missing:
        raise StatisticsError(f"{dataset_dir}: no split(s) {missing}; available: {available}")
    by_split = {}
    for split in chosen:
        stats = generate_statistics(str(artifacts.split_file(dataset_dir, split)), name=split, top_k=top_k,
                                    quantile_k=quantile_k)
        by_split[split] = statistics_pb2.DatasetFeatureStatisticsList(datasets=[stats])
    artifacts.write_statistics(by_split, output_dir)
    return {types.SPLIT_NAMES: chosen, types.ROWS: {s: int(v.datasets[0].num_examples) for s, v in by_split.items()}}
