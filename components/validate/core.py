"""Validate statistics against a schema (and previous-span / serving statistics): TFDV's anomalies.

The checks, reason types, short descriptions and description texts follow TFDV's C++ validator
(``feature_statistics_validator`` / ``schema.cc`` / ``feature_util.cc`` / ``metrics.cc``):

* schema features absent from the data -> ``SCHEMA_MISSING_COLUMN`` (when presence is required);
  data features absent from the schema -> ``SCHEMA_NEW_COLUMN``; a feature with no values at all ->
  ``FEATURE_TYPE_NOT_PRESENT``;
* presence: ``FEATURE_TYPE_LOW_NUMBER_PRESENT`` / ``FEATURE_TYPE_LOW_FRACTION_PRESENT``;
* type: ``UNEXPECTED_DATA_TYPE``;
* domains: ``ENUM_TYPE_UNEXPECTED_STRING_VALUES`` (with ``distribution_constraints.min_domain_mass``),
  ``INT_TYPE_SMALL_INT`` / ``INT_TYPE_BIG_INT``, ``FLOAT_TYPE_SMALL_FLOAT`` / ``FLOAT_TYPE_BIG_FLOAT`` /
  ``FLOAT_TYPE_HAS_NAN`` / ``FLOAT_TYPE_HAS_INF``, ``BOOL_TYPE_*``;
* comparators read from the schema's ``drift_comparator`` (against ``previous``) and ``skew_comparator``
  (against ``serving``): ``COMPARATOR_L_INFTY_HIGH``, ``COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH``,
  ``COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH``, ``COMPARATOR_CONTROL_DATA_MISSING``;
* ``dataset_constraints.min_examples_count`` -> ``DATASET_LOW_NUM_EXAMPLES``.

Beyond TFDV, so that validation fails only for real (every anomaly carries ``AnomalyInfo.severity``; only
``ERROR`` fails :func:`raise_if_anomalies`, ``WARNING`` stays in the reports and metadata):

* a share bound (``min_domain_mass``, ``presence.min_fraction``) broken by no more than sampling noise
  is a warning: an error needs the share significantly beyond the bound (one-sided binomial test at
  :data:`MASS_ALPHA`). ``min_fraction: 1.0`` (TFDV infers it for features never missing in training)
  is read as "at most :data:`MISSING_TOLERANCE` missing"; a bound of zero stays strict;
* features without comparator thresholds are compared with the previous span, the serving data or
  another split (``reference``) by :mod:`.shift`'s sample-size-aware tests (``COMPARATOR_*`` reasons);
* a string column whose values are nearly all numbers (:data:`MIXED_MIN_NUMERIC_SHARE`) is an error
  (``FLOAT_TYPE_STRING_NOT_FLOAT``) naming a few of its other values: it would silently be a category.

Besides the proto, :func:`compare` gives per-feature distribution distances (PSI, L-infinity, JSD) for the
reports: the population stability index is the drift alarm many teams use, not a TFDV anomaly.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re

import numpy as np
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from .. import artifacts, types
from ..schema.core import _FALSE_VALUES, _TRUE_VALUES, feature_name, schema_type, string_values
from . import shift as shift_tests
from .shift import ShiftTest

Reason = anomalies_pb2.AnomalyInfo
FeatureType = statistics_pb2.FeatureNameStatistics
_DROPPED = "Column dropped"
_OUT_OF_RANGE = "Out-of-range values"
_INVALID = "Invalid values"
_INT_PATTERN = re.compile(r"^\s*[-+]?\d+\s*$")
#: smallest bucket share used in PSI so that empty buckets do not make it infinite
PSI_EPSILON = 1e-4
#: significance at which a share beyond a schema bound is an error rather than a warning
MASS_ALPHA = 0.001
#: share of missing values a ``presence.min_fraction: 1.0`` tolerates before they can be an error
MISSING_TOLERANCE = 0.01
#: a string column with at least this share of numbers (and some other values) is a broken numeric column
MIXED_MIN_NUMERIC_SHARE = 0.9
#: ... if it has at least this many distinct numbers (fewer: codes such as "1".."12" and "K" stay categories)
MIXED_MIN_DISTINCT_NUMBERS = 20
#: schema ``annotation.tag`` that keeps a mostly numeric string column categorical without an anomaly
CATEGORICAL_TAG = "categorical"
#: settings of the drift/skew test for features without comparator thresholds
DEFAULT_SHIFT_TEST = ShiftTest()
#: artifact metadata key of the number of features with warnings only
WARNING_COUNT = "warning_count"
ERROR = anomalies_pb2.AnomalyInfo.ERROR
WARNING = anomalies_pb2.AnomalyInfo.WARNING
_NUMBER = re.compile(r"^[-+]?((\d+\.?\d*|\.\d+)([eE][-+]?\d+)?|(?i:inf|infinity|nan))$")  # as statistics
_SAMPLES = 5
_LISTED = 20
_SAMPLE_CHARS = 40


class ValidationError(ValueError):
    """Inputs to validation are unusable; the message names the input and the problem."""


@dataclasses.dataclass
class _Description:
    type: int
    short: str
    long: str
    severity: int = ERROR


def _share_severity(count: float, total: float, allowed: float) -> int:
    """ERROR when ``count`` of ``total`` is significantly above the share ``allowed``, else WARNING."""
    if allowed <= 0.0 or total <= 0:
        return ERROR
    significant = shift_tests.binomial_sf(int(round(count)), int(round(total)), allowed) < MASS_ALPHA
    return ERROR if significant else WARNING


def _warned(description: _Description, why: str) -> _Description:
    if description.severity == WARNING:
        description.short += " (warning)"
        description.long += f" Warning only: {why}."
    return description


def _six(value: float) -> str:
    """absl::SixDigits: up to six significant digits, as C++'s %g."""
    return f"{value:.6g}"


def _percentage(count: float, total: float) -> str:
    if not total:
        return "?"
    percent = 100.0 * count / total
    return "<1%" if percent < 1.0 else f"~{int(math.floor(percent))}%"


def _common(feature: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.CommonStatistics:
    which = feature.WhichOneof("stats")
    return getattr(feature, which).common_stats if which else statistics_pb2.CommonStatistics()


def _custom(feature: statistics_pb2.FeatureNameStatistics, name: str) -> float:
    for custom in feature.custom_stats:
        if custom.name == name:
            return custom.num
    return 0.0


def _dataset(statistics, what: str) -> statistics_pb2.DatasetFeatureStatistics | None:
    if statistics is None:
        return None
    if isinstance(statistics, statistics_pb2.DatasetFeatureStatistics):
        return statistics
    if isinstance(statistics, statistics_pb2.DatasetFeatureStatisticsList):
        if not statistics.datasets:
            raise ValidationError(f"{what} statistics hold no dataset")
        return statistics.datasets[0]
    raise ValidationError(f"{what} statistics must be a DatasetFeatureStatistics(List), got {type(statistics)}")


def _deprecated(feature: schema_pb2.Feature) -> bool:
    return feature.deprecated or feature.lifecycle_stage in (schema_pb2.DEPRECATED, schema_pb2.DISABLED)


def _in_environment(feature: schema_pb2.Feature, schema: schema_pb2.Schema, environment: str | None) -> bool:
    if environment is None:
        return True
    if environment in feature.in_environment:
        return True
    if environment in feature.not_in_environment:
        return False
    return environment in schema.default_environment


def _existence_required(feature, schema, environment) -> bool:
    if _deprecated(feature):
        return False
    if feature.presence.min_count <= 0 and feature.presence.min_fraction <= 0.0:
        return False
    return _in_environment(feature, schema, environment)


def _fraction_present(common: statistics_pb2.CommonStatistics, num_examples: int) -> float | None:
    if num_examples <= 0:
        return None
    if common.num_missing == 0:
        return 1.0
    return common.num_non_missing / num_examples


def _missing_severity(feature: schema_pb2.Feature, common, num_examples: int) -> tuple[int, str]:
    """Severity of missing values below ``presence.min_fraction`` (see the module docstring)."""
    allowed = 1.0 - feature.presence.min_fraction if feature.presence.HasField("min_fraction") else 0.0
    if allowed <= 0.0:
        allowed = MISSING_TOLERANCE
    severity = _share_severity(common.num_missing, num_examples, allowed)
    return severity, (f"{_share(common.num_missing, num_examples)} missing is not significantly above "
                      f"{allowed:.2%} (p >= {MASS_ALPHA:g})")


def _share(count: float, total: float) -> str:
    return f"{count / total:.2%}" if total else "?"


def _presence(feature: schema_pb2.Feature, stats_feature, num_examples: int) -> list[_Description]:
    out = []
    common = _common(stats_feature)
    presence = feature.presence
    severity, why = _missing_severity(feature, common, num_examples)
    if presence.HasField("min_count") and common.num_non_missing < presence.min_count:
        out.append(_Description(Reason.FEATURE_TYPE_LOW_NUMBER_PRESENT, _DROPPED,
                                "The feature was present in fewer examples than expected: minimum count = "
                                f"{presence.min_count}, actual = {common.num_non_missing}"))
    fraction = _fraction_present(common, num_examples)
    if presence.HasField("min_fraction") and fraction is not None:
        if fraction < presence.min_fraction:
            out.append(_warned(_Description(
                Reason.FEATURE_TYPE_LOW_FRACTION_PRESENT, _DROPPED,
                "The feature was present in fewer examples than expected: minimum fraction = "
                f"{presence.min_fraction:.6f}, actual = {fraction:.6f}", severity), why))
        elif presence.min_fraction == 1.0 and common.num_missing != 0:
            out.append(_warned(_Description(Reason.FEATURE_TYPE_LOW_FRACTION_PRESENT, _DROPPED,
                                            "The feature was expected everywhere, but was missing in "
                                            f"{common.num_missing} examples.", severity), why))
    return out


def unseen_mass(reference) -> float:
    """Good-Turing's estimate of the share of values a new sample holds that ``reference`` never saw: the
    share of ``reference``'s values seen exactly once. 0 when its value counts are incomplete (top-k only).

    A free-text column (comments, names) shows new values in every sample; a categorical one almost never.
    """
    counts = string_values(reference)
    total = _common(reference).tot_num_values or _common(reference).num_non_missing
    if not total or abs(sum(counts.values()) - total) > 0.5:
        return 0.0
    return sum(1 for count in counts.values() if round(count) == 1) / total


def _string_domain(values: list[str], stats_feature, feature: schema_pb2.Feature,
                   reference=None) -> list[_Description]:
    counts = string_values(stats_feature)
    allowed = set(values)
    missing = {v: c for v, c in sorted(counts.items(), key=lambda kv: kv[0].encode("utf-8")) if v not in allowed}
    if not missing:
        return []
    total = _common(stats_feature).tot_num_values or _common(stats_feature).num_non_missing
    max_off = 1.0 - feature.distribution_constraints.min_domain_mass if feature.HasField(
        "distribution_constraints") and feature.distribution_constraints.HasField("min_domain_mass") else 0.0
    missing_count = sum(missing.values())
    # (TFDV drops values within min_domain_mass silently; they stay visible here, as a warning)
    shown = list(missing.items())
    listed = ", ".join(f"{_bounded(v)} ({_percentage(c, total)})" for v, c in shown[:_LISTED])
    if len(shown) > _LISTED:
        listed += f" and {len(shown) - _LISTED} more"
    # New values are expected at the rate the reference sample itself kept meeting new ones (Good-Turing):
    # only more than that, or than min_domain_mass allows, is an error.
    expected = unseen_mass(reference) if reference is not None else 0.0
    allowed = max(max_off, expected) if max_off > 0 else max_off
    severity = _share_severity(missing_count, total, allowed)
    bound = (f"1 - min_domain_mass = {max_off:.2%}" if allowed == max_off else
             f"the {expected:.2%} of values the reference sample saw only once (new values expected at that rate)")
    return [_warned(_Description(Reason.ENUM_TYPE_UNEXPECTED_STRING_VALUES, "Unexpected string values",
                                 f"Examples contain values missing from the schema: {listed}. ", severity),
                    f"{_share(missing_count, total)} of the values are outside the domain, not significantly "
                    f"above {bound} (p >= {MASS_ALPHA:g}); the model reads them as out-of-vocabulary")]


def _clip(value: str) -> str:
    text = _escape(value)
    return '"' + (text if len(text) <= _SAMPLE_CHARS else text[:_SAMPLE_CHARS - 3] + "...") + '"'


def mixed_numeric(stats_feature, split: str = "") -> _Description | None:
    """FLOAT_TYPE_STRING_NOT_FLOAT for a string column whose values are nearly all numbers (else None).

    The share of numbers comes from the statistics' ``num_numeric_strings`` (or, for statistics without it,
    from the complete value counts); the non-numeric examples from the value counts.
    """
    if stats_feature.type != FeatureType.STRING:
        return None
    common = _common(stats_feature)
    total = common.num_non_missing
    if not total:
        return None
    counts = string_values(stats_feature)
    numeric_labels = [v for v in counts if _NUMBER.match(v)]
    numbers = next((c.num for c in stats_feature.custom_stats if c.name == "num_numeric_strings"), None)
    if numbers is None:
        if _custom(stats_feature, "top_values_exact") != 1.0:
            return None
        numbers = sum(counts[v] for v in numeric_labels)
    if numbers >= total or numbers < MIXED_MIN_NUMERIC_SHARE * total:
        return None
    if len(numeric_labels) < MIXED_MIN_DISTINCT_NUMBERS:
        return None
    samples = _non_numeric_samples(counts)
    name = feature_name(stats_feature)
    where = f" in split {split!r}" if split else ""
    return _Description(
        Reason.FLOAT_TYPE_STRING_NOT_FLOAT, "Numeric column with non-numeric values",
        f"{_share(numbers, total)} of the values of column {name!r}{where} are numbers, the other "
        f"{int(total - numbers)} are not, e.g. {samples}: the column would be read as a categorical string. "
        f"Fix or blank these values at the source, or pass numeric_columns=[{name!r}] to ingest to read the "
        "column as numbers with them as missing.")


def _non_numeric_samples(counts: dict[str, float]) -> str:
    """The most frequent values that are not numbers, quoted, escaped and clipped."""
    others = sorted(((c, v) for v, c in counts.items() if not _NUMBER.match(v)), key=lambda cv: (-cv[0], cv[1]))
    return ", ".join(_clip(v) for _, v in others[:_SAMPLES]) or "(not among the most frequent values)"


def _categorical_tag(feature: schema_pb2.Feature) -> bool:
    return CATEGORICAL_TAG in feature.annotation.tag


def _escape(value: str) -> str:
    return value.encode("unicode_escape").decode("ascii").replace('"', '\\"')


def _bounded(value: str, limit: int = 60) -> str:
    """A data value quoted in a message: escaped and cut (a 10 MB cell must not become a 10 MB report)."""
    text = _escape(value[: limit * 2])
    return text if len(text) <= limit and len(value) <= limit else text[: limit - 3] + "..."


def _int_domain(domain: schema_pb2.IntDomain, stats_feature, reference=None) -> list[_Description]:
    out = []
    severity, why = ERROR, ""
    if stats_feature.type == FeatureType.INT:
        low, high = stats_feature.num_stats.min, stats_feature.num_stats.max
        severity, why = _range_severity(stats_feature, domain.min if domain.HasField("min") else -math.inf,
                                        domain.max if domain.HasField("max") else math.inf, reference)
    elif stats_feature.type == FeatureType.STRING:
        values = list(string_values(stats_feature))
        bad = next((v for v in values if not _INT_PATTERN.match(v)), None)
        if bad is not None:
            return [_Description(Reason.INT_TYPE_NOT_INT_STRING, _INVALID,
                                 f'String values that were not ints were found, such as "{bad}".')]
        if not values:
            return []
        ints = [int(v) for v in values]
        low, high = min(ints), max(ints)
    else:
        return [_Description(Reason.DOMAIN_INVALID_FOR_TYPE, _INVALID,
                             f"IntDomain incompatible with feature type {FeatureType.Type.Name(stats_feature.type)}")]
    if domain.HasField("min") and domain.min > low:
        out.append(_warned(_Description(Reason.INT_TYPE_SMALL_INT, _OUT_OF_RANGE,
                                        f"Unexpectedly small value: {_int(low)}.", severity), why))
    if domain.HasField("max") and domain.max < high:
        out.append(_warned(_Description(Reason.INT_TYPE_BIG_INT, _OUT_OF_RANGE,
                                        f"Unexpectedly large value: {_int(high)}.", severity), why))
    return out


def _int(value: float) -> str:
    return str(int(value)) if math.isfinite(value) else str(value)


def _float_domain(domain: schema_pb2.FloatDomain, stats_feature) -> list[_Description]:
    out = []
    if domain.disallow_nan and _custom(stats_feature, "num_nan") > 0:
        out.append(_Description(Reason.FLOAT_TYPE_HAS_NAN, _INVALID, "Float feature has NaN values."))
    if stats_feature.type not in (FeatureType.INT, FeatureType.FLOAT) or not _common(stats_feature).num_non_missing:
        return out
    low, high = stats_feature.num_stats.min, stats_feature.num_stats.max
    if domain.HasField("min") and low < domain.min:
        out.append(_Description(Reason.FLOAT_TYPE_SMALL_FLOAT, _OUT_OF_RANGE,
                                f"Unexpectedly low values: {_six(low)}<{_six(domain.min)}(upto six significant digits)"))
    if domain.HasField("max") and high > domain.max:
        out.append(_Description(Reason.FLOAT_TYPE_BIG_FLOAT, _OUT_OF_RANGE,
                                f"Unexpectedly high value: {_six(high)}>{_six(domain.max)}(upto six significant digits)"))
    if domain.disallow_inf and (math.isinf(low) or math.isinf(high)):
        out.append(_Description(Reason.FLOAT_TYPE_HAS_INF, _INVALID, "Float feature has Inf values."))
    return out


def _outside(stats_feature, low: float, high: float) -> float:
    """About how many (integer) values lie below ``low`` or above ``high``: from the standard histogram (a
    straddling bucket counts in proportion), at least 1 when the minimum or maximum says some do."""
    low, high = low - 0.5, high + 0.5  # integers: a bucket starting at `high` holds `high` itself
    count = 0.0
    histogram = _histogram(stats_feature, statistics_pb2.Histogram.STANDARD)
    for bucket in histogram.buckets if histogram is not None else ():
        width = bucket.high_value - bucket.low_value
        for start, end in ((-math.inf, low), (high, math.inf)):
            overlap = min(end, bucket.high_value) - max(start, bucket.low_value)
            if width <= 0:
                count += bucket.sample_count if start < bucket.low_value and bucket.high_value < end else 0.0
            elif overlap > 0:
                count += bucket.sample_count * overlap / width
    return max(count, 1.0)


def _range_severity(stats_feature, low: float, high: float, reference) -> tuple[int, str]:
    """ERROR, unless a reference sample that never showed such values is too small to say they do not occur:
    a value absent from N reference values may still have a share up to 3/N (the rule of three)."""
    if reference is None:
        return ERROR, ""
    seen = _common(reference).tot_num_values or _common(reference).num_non_missing
    if not seen:
        return ERROR, ""
    count, total = _outside(stats_feature, low, high), _common(stats_feature).num_non_missing
    severity = _share_severity(count, total, 3.0 / seen)
    return severity, (f"about {count:.0f} of {total} values are outside, not significantly more than a value "
                      f"unseen in {seen} reference values can have (3/{seen}, p >= {MASS_ALPHA:g})")


def _bool_domain(domain: schema_pb2.BoolDomain, stats_feature, reference=None) -> list[_Description]:
    if stats_feature.type == FeatureType.INT:
        out = []
        severity, why = _range_severity(stats_feature, 0, 1, reference)
        if stats_feature.num_stats.min < 0:
            out.append(_warned(_Description(Reason.BOOL_TYPE_SMALL_INT, _INVALID, "Integers (such as "
                                            f"{_int(stats_feature.num_stats.min)}) not in {{0, 1}}: converting to an "
                                            "integer.", severity), why))
        if stats_feature.num_stats.max > 1:
            out.append(_warned(_Description(Reason.BOOL_TYPE_BIG_INT, _INVALID, "Integers (such as "
                                            f"{_int(stats_feature.num_stats.max)}) not in {{0, 1}}: converting to an "
                                            "integer.", severity), why))
        return out
    if stats_feature.type == FeatureType.STRING:
        allowed = {domain.true_value, domain.false_value} if (domain.true_value or domain.false_value) else (
            _TRUE_VALUES | _FALSE_VALUES)
        bad = [v for v in string_values(stats_feature) if v not in allowed]
        if bad:
            return [_Description(Reason.BOOL_TYPE_UNEXPECTED_STRING, _INVALID,
                                 f"Saw unexpected value {bad[0]!r} instead of {sorted(allowed)}.")]
    return []


# ---- distances (TFDV's metrics.cc, plus PSI) ----

def _normalize(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {k: v / total for k, v in counts.items()} if total else dict(counts)


def linf_distance(a: dict[str, float], b: dict[str, float], combined: bool = False) -> tuple[str, float]:
    """L-infinity distance between two value-count maps (TFDV: separate totals; ``combined``: one total)."""
    if combined:
        scale = sum(a.values()) + sum(b.values())
        na = {k: v / scale for k, v in a.items()} if scale else a
        nb = {k: v / scale for k, v in b.items()} if scale else b
    else:
        na, nb = _normalize(a), _normalize(b)
    best_key, best = "", 0.0
    for key in sorted(set(na) | set(nb), key=lambda k: k.encode("utf-8")):
        value = abs(na.get(key, 0.0) - nb.get(key, 0.0))
        if value >= best:
            best_key, best = key, value
    return best_key, best


def _jsd_maps(a: dict[str, float], b: dict[str, float]) -> float | None:
    if not a or not b:
        return None
    a_sum, b_sum = sum(a.values()), sum(b.values())
    total = 0.0
    for key in set(a) | set(b):
        p, q = a.get(key, 0.0) / a_sum, b.get(key, 0.0) / b_sum
        m = (p + q) / 2
        if p:
            total += p * math.log2(p / m)
        if q:
            total += q * math.log2(q / m)
    return min(total / 2, 1.0)


def _histogram(stats_feature, kind: int) -> statistics_pb2.Histogram | None:
    if stats_feature.WhichOneof("stats") != "num_stats":
        return None
    for histogram in stats_feature.num_stats.histograms:
        if histogram.type == kind:
            return histogram
    return None


def _rebucket(buckets: list[tuple[float, float, float]], boundaries: list[float]) -> list[float]:
    """Counts of ``buckets`` (low, high, count) spread uniformly onto the intervals of ``boundaries``."""
    out = np.zeros(len(boundaries) - 1)
    edges = np.asarray(boundaries)
    for low, high, count in buckets:
        if high <= low:
            index = min(max(int(np.searchsorted(edges, low, side="right")) - 1, 0), len(out) - 1)
            out[index] += count
            continue
        lo = np.clip(edges[:-1], low, high)
        hi = np.clip(edges[1:], low, high)
        out += (hi - lo) / (high - low) * count
    return out.tolist()


def _aligned(h1: statistics_pb2.Histogram, h2: statistics_pb2.Histogram) -> tuple[np.ndarray, np.ndarray]:
    """TFDV's AlignHistograms: common boundaries for interval buckets, point and infinite masses apart."""
    def split(h):
        intervals, points, infinite = [], {}, 0.0
        for b in h.buckets:
            if not (math.isfinite(b.low_value) and math.isfinite(b.high_value)):
                infinite += b.sample_count
            elif b.low_value == b.high_value:
                points[b.low_value] = points.get(b.low_value, 0.0) + b.sample_count
            else:
                intervals.append((b.low_value, b.high_value, b.sample_count))
        return intervals, points, infinite

    i1, p1, inf1 = split(h1)
    i2, p2, inf2 = split(h2)
    boundaries = sorted({v for low, high, _ in i1 + i2 for v in (low, high)})
    c1 = _rebucket(i1, boundaries) if len(boundaries) > 1 else []
    c2 = _rebucket(i2, boundaries) if len(boundaries) > 1 else []
    for point in sorted(set(p1) | set(p2)):
        c1.append(p1.get(point, 0.0))
        c2.append(p2.get(point, 0.0))
    if inf1:
        c1 += [inf1]
        c2 += [0.0]
    if inf2:
        c1 += [0.0]
        c2 += [inf2]
    return np.asarray(c1, dtype=float), np.asarray(c2, dtype=float)


def _jsd_histograms(h1, h2) -> float | None:
    c1, c2 = _aligned(h1, h2)
    if c1.sum() <= 0 or c2.sum() <= 0:
        return None
    p, q = c1 / c1.sum(), c2 / c2.sum()
    m = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_p = np.where((p > 0) & (m > 0), p * np.log2(p / m), 0.0).sum()
        kl_q = np.where((q > 0) & (m > 0), q * np.log2(q / m), 0.0).sum()
    return float(min((kl_p + kl_q) / 2, 1.0))


def jensen_shannon(current, reference, source: int = statistics_pb2.Histogram.STANDARD) -> float | None:
    """TFDV's approximate Jensen-Shannon divergence of a feature between two statistics (None: no data)."""
    a, b = string_values(current), string_values(reference)
    if a and b:
        return _jsd_maps(a, b)
    h1, h2 = _histogram(current, source), _histogram(reference, source)
    if h1 is not None and h2 is not None and h1.buckets and h2.buckets:
        return _jsd_histograms(h1, h2)
    return None


def psi(current, reference) -> float | None:
    """Population stability index of a feature: reference deciles (numeric) or values (categorical)."""
    a, b = string_values(current), string_values(reference)
    if a and b:
        keys = set(a) | set(b)
        pa_, pb_ = _normalize(a), _normalize(b)
        cur = np.array([max(pa_.get(k, 0.0), PSI_EPSILON) for k in keys])
        ref = np.array([max(pb_.get(k, 0.0), PSI_EPSILON) for k in keys])
    else:
        h_ref = _histogram(reference, statistics_pb2.Histogram.QUANTILES)
        h_cur = _histogram(current, statistics_pb2.Histogram.QUANTILES)
        if h_ref is None or h_cur is None or not h_ref.buckets or not h_cur.buckets:
            return None
        edges = [h_ref.buckets[0].low_value] + [b.high_value for b in h_ref.buckets]
        edges = sorted(set(edges))
        if len(edges) < 2:
            return None
        edges[0], edges[-1] = -math.inf, math.inf
        cur_buckets = [(b.low_value, b.high_value, b.sample_count) for b in h_cur.buckets]
        finite_edges = [e if math.isfinite(e) else (min(edges[1], cur_buckets[0][0]) - 1 if e < 0 else max(
            edges[-2], cur_buckets[-1][1]) + 1) for e in edges]
        ref_buckets = [(b.low_value, b.high_value, b.sample_count) for b in h_ref.buckets]
        cur = np.maximum(np.asarray(_rebucket(cur_buckets, finite_edges)), 0)
        ref = np.maximum(np.asarray(_rebucket(ref_buckets, finite_edges)), 0)
        if cur.sum() <= 0 or ref.sum() <= 0:
            return None
        cur = np.maximum(cur / cur.sum(), PSI_EPSILON)
        ref = np.maximum(ref / ref.sum(), PSI_EPSILON)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def compare(current, reference) -> dict[str, dict[str, float | None]]:
    """Per-feature distances between two statistics: ``psi``, ``linf`` (categorical) and ``jsd``.

    Args:
        current: statistics (list or dataset) of the data being validated.
        reference: statistics of the baseline (previous span, training data, ...).
    Returns:
        feature name -> {"psi", "linf", "jsd"} (None where not defined).
    """
    cur, ref = _dataset(current, "current"), _dataset(reference, "reference")
    by_name = {feature_name(f): f for f in ref.features}
    out = {}
    for feature in cur.features:
        name = feature_name(feature)
        other = by_name.get(name)
        if other is None:
            continue
        a, b = string_values(feature), string_values(other)
        out[name] = {
            "psi": psi(feature, other),
            "linf": linf_distance(a, b)[1] if a and b else None,
            "jsd": jensen_shannon(feature, other),
        }
    return out


def _comparator(stats_feature, control, comparator: schema_pb2.FeatureComparator, treatment_name: str,
                control_name: str, measurements: list) -> list[_Description]:
    out = []
    if comparator.infinity_norm.HasField("threshold"):
        key, value = linf_distance(string_values(stats_feature), string_values(control))
        threshold = comparator.infinity_norm.threshold
        measurements.append(anomalies_pb2.DriftSkewInfo.Measurement(
            type=anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY, value=value, threshold=threshold))
        if value > threshold:
            out.append(_Description(
                Reason.COMPARATOR_L_INFTY_HIGH, f"High Linfty distance between {treatment_name} and {control_name}",
                f"The Linfty distance between {treatment_name} and {control_name} is {_six(value)} (up to six "
                f"significant digits), above the threshold {_six(threshold)}. The feature value with maximum "
                f"difference is: {key}"))
    if comparator.normalized_abs_difference.HasField("threshold"):
        key, value = linf_distance(string_values(stats_feature), string_values(control), combined=True)
        threshold = comparator.normalized_abs_difference.threshold
        measurements.append(anomalies_pb2.DriftSkewInfo.Measurement(
            type=anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE, value=value,
            threshold=threshold))
        if value > threshold:
            out.append(_Description(
                Reason.COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH,
                f"High normalized absolute difference between {treatment_name} and {control_name}",
                f"The normalized absolute difference between {treatment_name} and {control_name} is {_six(value)} "
                f"(up to six significant digits), above the threshold {_six(threshold)}. The feature value with "
                f"maximum difference is: {key}"))
    if comparator.jensen_shannon_divergence.HasField("threshold"):
        source = comparator.jensen_shannon_divergence.source
        kind = statistics_pb2.Histogram.QUANTILES if source.type == schema_pb2.HistogramSelection.QUANTILES else (
            statistics_pb2.Histogram.STANDARD)
        value = jensen_shannon(stats_feature, control, kind)
        threshold = comparator.jensen_shannon_divergence.threshold
        if value is not None:
            measurements.append(anomalies_pb2.DriftSkewInfo.Measurement(
                type=anomalies_pb2.DriftSkewInfo.Measurement.JENSEN_SHANNON_DIVERGENCE, value=value,
                threshold=threshold))
            if value > threshold:
                out.append(_Description(
                    Reason.COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH,
                    f"High approximate Jensen-Shannon divergence between {treatment_name} and {control_name}",
                    f"The approximate Jensen-Shannon divergence between {treatment_name} and {control_name} is "
                    f"{_six(value)} (up to six significant digits), above the threshold {_six(threshold)}."))
    return out


def _has_threshold(comparator: schema_pb2.FeatureComparator) -> bool:
    return (comparator.infinity_norm.HasField("threshold") or comparator.jensen_shannon_divergence.HasField(
        "threshold") or comparator.normalized_abs_difference.HasField("threshold"))


@dataclasses.dataclass
class _Comparison:
    """Statistics to compare the validated ones with: which schema comparator applies, names, the test."""

    field: str  # "drift_comparator", "skew_comparator" or "" (sample-size-aware test only)
    control: dict  # feature name -> FeatureNameStatistics
    treatment_name: str  # TFDV's names in the comparator texts
    control_name: str
    kind: str  # "drift" or "skew"
    tested: str  # names in the shift test's texts: the sample tested against the reference
    reference: str
    reverse: bool = False  # the validated statistics are the reference (training vs serving)
    alpha: float = 0.0  # per-test significance of the shift test (set by validate)


def _shift_descriptions(current, control, comparison: _Comparison, settings: ShiftTest,
                        measurements: list) -> list[_Description]:
    a, b = (control, current) if comparison.reverse else (current, control)
    a_name, b_name = comparison.tested, comparison.reference
    findings = []
    if a.WhichOneof("stats") == "num_stats" and b.WhichOneof("stats") == "num_stats":
        findings = shift_tests.numeric_tests(a, b, settings, comparison.alpha, a_name, b_name)
    elif a.WhichOneof("stats") == "string_stats" and b.WhichOneof("stats") == "string_stats" and (
            a.type == FeatureType.STRING and b.type == FeatureType.STRING):
        found = shift_tests.categorical_test(string_values(a), _common(a).tot_num_values or _common(a).num_non_missing,
                                             string_values(b), _common(b).tot_num_values or _common(b).num_non_missing,
                                             settings, comparison.alpha, a_name, b_name)
        findings = [found] if found is not None else []
    out = []
    kinds = {"mean": (Reason.COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH, "Mean shift",
                      anomalies_pb2.DriftSkewInfo.Measurement.NORMALIZED_ABSOLUTE_DIFFERENCE),
             "ks": (Reason.COMPARATOR_L_INFTY_HIGH, "Distribution shift", anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY),
             "categorical": (Reason.COMPARATOR_L_INFTY_HIGH, "Value distribution shift",
                             anomalies_pb2.DriftSkewInfo.Measurement.L_INFTY)}
    for finding in findings:
        reason, short, measurement = kinds[finding.test]
        effect = finding.effect if math.isfinite(finding.effect) else 1e300
        measurements.append(anomalies_pb2.DriftSkewInfo.Measurement(type=measurement, value=effect,
                                                                   threshold=finding.floor))
        if finding.shifted:
            out.append(_Description(reason, f"{short} between {a_name} and {b_name}",
                                    f"{short} between {a_name} and {b_name} ({comparison.kind}): {finding.detail}."))
    return out


def _check_feature(feature, stats_feature, schema, num_examples, environment, comparisons: list[_Comparison],
                   shift_test: ShiftTest | None, drift_skew: dict) -> list[_Description]:
    common = _common(stats_feature)
    name = feature.name
    # the sample the schema's bounds are judged against for chance (reference split, previous span)
    reference = next((c.control[name] for c in comparisons if not c.reverse and name in c.control), None)
    if common.num_non_missing == 0:
        if not _existence_required(feature, schema, environment):
            return []
        absent = _Description(Reason.FEATURE_TYPE_NOT_PRESENT, _DROPPED, "The feature was not present in any examples.")
        # A feature the reference sample holds in a handful of rows is absent from a small sample by chance
        # (1 value in 267 train rows: no value in 77 eval rows 3 times in 4): an error only when unlikely.
        if reference is not None and num_examples:
            seen = _common(reference).num_non_missing
            total = seen + _common(reference).num_missing
            chance = (1.0 - seen / total) ** num_examples if total else 0.0
            if chance >= MASS_ALPHA:
                absent.severity = WARNING
                return [_warned(absent, f"the reference holds it in {seen} of {total} examples, so none in "
                                        f"{num_examples} happens by chance (p = {chance:.2g})")]
        return [absent]
    out = []
    if not _in_environment(feature, schema, environment):
        out.append(_Description(Reason.SCHEMA_NEW_COLUMN, "Column missing in environment",
                                f"New column {name} found in data but not in the environment {environment} in "
                                "the schema."))
    if feature.HasField("value_count"):
        if feature.value_count.HasField("min") and common.min_num_values < feature.value_count.min:
            out.append(_Description(Reason.FEATURE_TYPE_LOW_NUMBER_VALUES, "Missing values",
                                    "Some examples have fewer values than expected."))
        if feature.value_count.HasField("max") and common.max_num_values > feature.value_count.max:
            out.append(_Description(Reason.FEATURE_TYPE_HIGH_NUMBER_VALUES, "Superfluous values",
                                    "Some examples have more values than expected."))
    if feature.HasField("shape"):
        expected = 1
        for dim in feature.shape.dim:
            expected *= dim.size
        fixed = common.min_num_values if common.min_num_values == common.max_num_values != 0 else -1
        if fixed <= 0 or common.num_missing:
            # missing values alone (one value wherever present) weigh as missing values do under presence
            severity, why = _missing_severity(feature, common, num_examples) if fixed == expected else (ERROR, "")
            out.append(_warned(_Description(
                Reason.INVALID_FEATURE_SHAPE, "Feature shape dropped",
                "The feature has a shape, but it's not always present (if the feature is nested, then it should "
                "always be present at each nested level) or its value lengths vary.", severity), why))
        elif fixed != expected:
            out.append(_Description(Reason.INVALID_FEATURE_SHAPE, "Feature shape dropped",
                                    f"The feature has fixed value length {fixed} but it's not compatible with the "
                                    "specified shape."))
    if feature.HasField("presence"):
        out.extend(_presence(feature, stats_feature, num_examples))
    data_type = schema_type(stats_feature.type)
    if data_type != feature.type:
        text = (f"Expected data of type: {schema_pb2.FeatureType.Name(feature.type)} but got "
                f"{FeatureType.Type.Name(stats_feature.type)}")
        if feature.type in (schema_pb2.INT, schema_pb2.FLOAT) and stats_feature.type == FeatureType.STRING:
            # (TFDV's text ends above; which values broke the numeric column is what one needs to fix it)
            text += (f" (values that are not numbers: {_non_numeric_samples(string_values(stats_feature))}; or pass "
                     f"numeric_columns=[{name!r}] to ingest to read them as missing)")
        out.append(_Description(Reason.UNEXPECTED_DATA_TYPE, "Unexpected data type", text))
        return out  # domain checks against data of another type only repeat the same problem
    domain = feature.WhichOneof("domain_info")
    if domain == "domain":
        values = next((list(d.value) for d in schema.string_domain if d.name == feature.domain), [])
        out.extend(_string_domain(values, stats_feature, feature, reference))
    elif domain == "string_domain":
        out.extend(_string_domain(list(feature.string_domain.value), stats_feature, feature, reference))
    elif domain == "int_domain":
        out.extend(_int_domain(feature.int_domain, stats_feature, reference))
    elif domain == "float_domain":
        out.extend(_float_domain(feature.float_domain, stats_feature))
    elif domain == "bool_domain":
        out.extend(_bool_domain(feature.bool_domain, stats_feature, reference))
    if domain in (None, "domain", "string_domain") and not _categorical_tag(feature):
        mixed = mixed_numeric(stats_feature)
        if mixed is not None:
            out.append(mixed)
    for comparison in comparisons:
        explicit = bool(comparison.field) and feature.HasField(comparison.field) and _has_threshold(
            getattr(feature, comparison.field))
        if not explicit and shift_test is None:
            continue
        control = comparison.control.get(name)
        if control is None:
            # with a threshold TFDV fails here; the default test cannot compare either, and says so
            out.append(_Description(Reason.COMPARATOR_CONTROL_DATA_MISSING, f"{comparison.control_name} data missing",
                                    f"{comparison.control_name} data is missing.",
                                    ERROR if explicit else WARNING))
            continue
        measurements: list = []
        if explicit:
            out.extend(_comparator(stats_feature, control, getattr(feature, comparison.field),
                                   comparison.treatment_name, comparison.control_name, measurements))
        else:
            out.extend(_shift_descriptions(stats_feature, control, comparison, shift_test, measurements))
        if measurements:
            info = drift_skew.setdefault(name, anomalies_pb2.DriftSkewInfo())
            info.path.step[:] = [name]
            target = info.drift_measurements if comparison.kind == "drift" else info.skew_measurements
            target.extend(measurements)
    return out


def _tests_planned(dataset, schema_features: dict, comparison: _Comparison) -> int:
    """Number of shift tests a comparison will run (the Bonferroni divisor)."""
    planned = 0
    for stats_feature in dataset.features:
        name = feature_name(stats_feature)
        feature = schema_features.get(name)
        if feature is None or _deprecated(feature) or name not in comparison.control:
            continue
        if comparison.field and feature.HasField(comparison.field) and _has_threshold(getattr(feature, comparison.field)):
            continue
        planned += 2 if stats_feature.WhichOneof("stats") == "num_stats" else 1
    return max(planned, 1)


def validate(statistics, schema: schema_pb2.Schema, previous=None, serving=None, *,
             environment: str | None = None, reference=None, name: str = "current",
             reference_name: str = "reference",
             shift_test: ShiftTest | None = DEFAULT_SHIFT_TEST) -> anomalies_pb2.Anomalies:
    """Validate statistics against a schema, TFDV's ``validate_statistics`` (plus severities, shift tests).

    Args:
        statistics: ``DatasetFeatureStatisticsList`` (first dataset) or ``DatasetFeatureStatistics``.
        schema: the ``Schema`` (e.g. from :func:`kfpc.components.artifacts.read_schema`).
        previous: statistics of the previous span (drift): the schema's ``drift_comparator`` thresholds,
            else ``shift_test``.
        serving: statistics of serving data (skew; ``statistics`` are then the training data): the
            schema's ``skew_comparator`` thresholds, else ``shift_test``.
        environment: schema environment of the data (e.g. ``SERVING`` where the label is absent).
        reference: statistics of another split of the same data (e.g. train when ``statistics`` are the
            eval split): judged for skew by ``shift_test`` only; also checked for mixed numeric columns.
        name / reference_name: how the texts call ``statistics`` and ``reference`` (e.g. the split names).
        shift_test: settings of the sample-size-aware test; None: no test where the schema sets no threshold.
    Returns:
        ``Anomalies`` keyed by feature name (``severity`` ERROR or WARNING), with ``baseline`` set to the
        schema and ``drift_skew_info`` holding every comparator and shift-test measurement.
    """
    dataset = _dataset(statistics, "current")
    if not isinstance(schema, schema_pb2.Schema):
        raise ValidationError(f"schema must be a tensorflow_metadata Schema, got {type(schema)}")
    comparisons = []
    if previous is not None:
        comparisons.append(_Comparison("drift_comparator", _by_name(_dataset(previous, "previous")), "previous",
                                       "current", "drift", "current", "previous"))
    if serving is not None:
        comparisons.append(_Comparison("skew_comparator", _by_name(_dataset(serving, "serving")), "serving",
                                       "training", "skew", "serving", "training", reverse=True))
    reference_dataset = _dataset(reference, reference_name) if reference is not None else None
    if reference_dataset is not None:
        comparisons.append(_Comparison("", _by_name(reference_dataset), name, reference_name, "skew", name,
                                       reference_name))
    result = anomalies_pb2.Anomalies(anomaly_name_format=anomalies_pb2.Anomalies.SERIALIZED_PATH)
    result.baseline.CopyFrom(schema)
    schema_features = {f.name: f for f in schema.feature}
    if shift_test is not None:
        for comparison in comparisons:
            comparison.alpha = shift_test.alpha / _tests_planned(dataset, schema_features, comparison)
    drift_skew: dict[str, anomalies_pb2.DriftSkewInfo] = {}
    descriptions: dict[str, list[_Description]] = {}
    seen = set()
    for stats_feature in dataset.features:
        key = feature_name(stats_feature)
        seen.add(key)
        feature = schema_features.get(key)
        if feature is None:
            descriptions[key] = [_Description(Reason.SCHEMA_NEW_COLUMN, "New column",
                                              "New column (column in data but not in schema)")]
            continue
        if _deprecated(feature):
            continue
        found = _check_feature(feature, stats_feature, schema, dataset.num_examples, environment, comparisons,
                               shift_test, drift_skew)
        if found:
            descriptions[key] = found
    if reference_dataset is not None:
        # the reference split is what trains: a broken numeric column there matters even if this split is clean
        for stats_feature in reference_dataset.features:
            key = feature_name(stats_feature)
            feature = schema_features.get(key)
            if feature is None or _deprecated(feature) or _categorical_tag(feature) or feature.WhichOneof(
                    "domain_info") not in (None, "domain", "string_domain"):
                continue
            if any(d.type == Reason.FLOAT_TYPE_STRING_NOT_FLOAT for d in descriptions.get(key, [])):
                continue
            mixed = mixed_numeric(stats_feature, reference_name)
            if mixed is not None:
                descriptions.setdefault(key, []).append(mixed)
    for key, feature in schema_features.items():
        if key not in seen and _existence_required(feature, schema, environment):
            descriptions[key] = [_Description(Reason.SCHEMA_MISSING_COLUMN, _DROPPED, "Column is completely missing")]
    for key, found in descriptions.items():
        info = result.anomaly_info[key]
        info.path.step.append(key)
        info.severity = ERROR if any(d.severity == ERROR for d in found) else WARNING
        for d in found:
            info.reason.add(type=d.type, short_description=d.short, description=d.long)
        if len(found) == 1:
            info.short_description, info.description = found[0].short, found[0].long
        else:
            info.short_description = "Multiple errors" if info.severity == ERROR else "Multiple warnings"
            info.description = " ".join(d.long for d in found)
    constraints = schema.dataset_constraints
    if constraints.HasField("min_examples_count") and dataset.num_examples < constraints.min_examples_count:
        info = result.dataset_anomaly_info
        info.severity = anomalies_pb2.AnomalyInfo.ERROR
        info.short_description = "Low num examples in dataset."
        info.description = (f"The dataset has {dataset.num_examples} examples, which is fewer than expected "
                            f"({constraints.min_examples_count}).")
        info.reason.add(type=Reason.DATASET_LOW_NUM_EXAMPLES, short_description=info.short_description,
                        description=info.description)
    for name in sorted(drift_skew):
        result.drift_skew_info.append(drift_skew[name])
    return result


def _by_name(dataset) -> dict:
    return {feature_name(f): f for f in dataset.features}


def is_error(info: anomalies_pb2.AnomalyInfo) -> bool:
    """An anomaly that fails validation: severity ERROR (or unset, as in Anomalies written before severities)."""
    return info.severity != WARNING


def _infos(anomalies: anomalies_pb2.Anomalies):
    for name in sorted(anomalies.anomaly_info):
        yield name, anomalies.anomaly_info[name]
    if anomalies.dataset_anomaly_info.reason:
        yield "(dataset)", anomalies.dataset_anomaly_info


def anomaly_count(anomalies: anomalies_pb2.Anomalies) -> int:
    """Number of features with an error (plus one for a dataset-level error); warnings are not counted."""
    return sum(1 for _, info in _infos(anomalies) if is_error(info))


def warning_count(anomalies: anomalies_pb2.Anomalies) -> int:
    """Number of features whose anomalies are all warnings."""
    return sum(1 for _, info in _infos(anomalies) if not is_error(info))


def anomaly_lines(anomalies: anomalies_pb2.Anomalies, warnings: bool = False) -> list[str]:
    """One line per error (``warnings``: per warning): ``feature: REASON_TYPE[, ...]: description``."""
    lines = []
    for name, info in _infos(anomalies):
        if is_error(info) != warnings:
            reasons = ", ".join(Reason.Type.Name(r.type) for r in info.reason)
            lines.append(f"{name}: {reasons}: {info.description}")
    return lines


def reason_types(anomalies: anomalies_pb2.Anomalies) -> dict[str, set[str]]:
    """Feature -> set of reason type names (for tests and parity checks)."""
    return {name: {Reason.Type.Name(r.type) for r in info.reason} for name, info in anomalies.anomaly_info.items()}


class AnomaliesFoundError(ValidationError):
    """Validation found anomalies and the caller asked to fail on them."""


def raise_if_anomalies(anomalies: anomalies_pb2.Anomalies, what: str = "data") -> None:
    """Raise :class:`AnomaliesFoundError` listing every error (warnings do not fail), if there is any."""
    lines = anomaly_lines(anomalies)
    if lines:
        warned = warning_count(anomalies)
        extra = f"\n  (and {warned} feature(s) with warnings only: see the report)" if warned else ""
        raise AnomaliesFoundError(f"{len(lines)} anomal{'y' if len(lines) == 1 else 'ies'} in {what}:\n  "
                                  + "\n  ".join(lines) + extra)


@dataclasses.dataclass
class ValidationResult:
    """What :func:`run` produced."""

    anomalies: anomalies_pb2.Anomalies
    distances: dict
    count: int  # features with errors
    lines: list[str]  # one per error
    warnings: int = 0  # features with warnings only
    warning_lines: list[str] = dataclasses.field(default_factory=list)

    def metadata(self) -> dict:
        """Artifact metadata under the documented keys (``anomaly_count`` counts errors only)."""
        return {types.ANOMALY_COUNT: self.count, types.ANOMALIES_FOUND: bool(self.count),
                WARNING_COUNT: self.warnings}


def run(statistics_dir: str | os.PathLike, schema_path: str | os.PathLike, anomalies_dir: str | os.PathLike, *,
        split: str = types.EVAL, previous_dir=None, previous_split: str | None = None, serving_dir=None,
        serving_split: str | None = None, environment: str | None = None, markdown_path=None,
        html_path=None, reference_split: str | None = None,
        shift_test: ShiftTest | None = DEFAULT_SHIFT_TEST) -> ValidationResult:
    """Validate one split of a statistics artifact and write the Anomalies artifact and the reports.

    Args:
        statistics_dir: statistics artifact folder (``Split-<split>/FeatureStats.pb``).
        schema_path: schema artifact folder or ``schema.pbtxt``.
        anomalies_dir: Anomalies artifact folder to write (``anomalies.pbtxt``).
        split: the split to validate.
        previous_dir / previous_split: statistics of the previous span (drift), default split ``split``.
        serving_dir / serving_split: statistics of serving data (skew), default split ``split``.
        environment: schema environment of the validated data.
        markdown_path / html_path: report files to write (optional).
        reference_split: another split of ``statistics_dir`` (e.g. ``train``) that ``split`` is judged
            against for skew with the sample-size-aware test; None: no such comparison.
        shift_test: settings of that test (also used for previous/serving features without thresholds).
    Returns:
        :class:`ValidationResult`.
    """
    from . import report

    current = artifacts.read_statistics(statistics_dir, split)
    schema = artifacts.read_schema(schema_path)
    previous = artifacts.read_statistics(previous_dir, previous_split or split) if previous_dir else None
    serving = artifacts.read_statistics(serving_dir, serving_split or split) if serving_dir else None
    if reference_split and reference_split == split:
        raise ValidationError(f"reference_split {reference_split!r} is the validated split itself: name another "
                              f"split of {statistics_dir} (available: {artifacts.statistics_splits(statistics_dir)})")
    reference = artifacts.read_statistics(statistics_dir, reference_split) if reference_split else None
    anomalies = validate(current, schema, previous=previous, serving=serving, environment=environment,
                         reference=reference, name=split, reference_name=reference_split or "reference",
                         shift_test=shift_test)
    shown = {split: current}
    for other in artifacts.statistics_splits(statistics_dir):
        if other != split:
            shown[other] = artifacts.read_statistics(statistics_dir, other)
    if previous is not None:
        shown["previous"] = previous
    if serving is not None:
        shown["serving"] = serving
    baseline = previous or serving or reference or next((shown[k] for k in shown if k != split), None)
    distances = compare(current, baseline) if baseline is not None else {}
    artifacts.write_anomalies(anomalies, anomalies_dir)
    if markdown_path:
        report.write_text(markdown_path, report.render_markdown(anomalies, shown, distances))
    if html_path:
        report.write_text(html_path, report.render_html(anomalies, shown, distances))
    return ValidationResult(anomalies=anomalies, distances=distances, count=anomaly_count(anomalies),
                            lines=anomaly_lines(anomalies), warnings=warning_count(anomalies),
                            warning_lines=anomaly_lines(anomalies, warnings=True))
