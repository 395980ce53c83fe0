"""Schema inference (TFDV's rules) and import of a curated schema, as ``tensorflow_metadata`` ``Schema``.

Inference follows ``tfdv.infer_schema`` (TFDV's C++ ``Schema::Updater::CreateColumn``):

* type: statistics ``INT`` -> ``INT``, ``FLOAT`` -> ``FLOAT``, ``STRING``/``BYTES`` -> ``BYTES``;
* presence: ``min_count: 1`` when the feature was seen, ``min_fraction: 1.0`` when it is never missing;
* shape ``[1]`` when the feature is always present with one value (``infer_feature_shape``), else
  ``value_count {min: 1 max: 1}``;
* domains: ``bool_domain`` for an ``INT`` feature with min >= 0 and max == 1 or a string feature whose
  values are true/false words; a string domain (top-level ``string_domain`` named after the feature,
  values in byte order) for a string feature with at most ``max_string_domain_size`` distinct values;
  ``int_domain {}`` for strings that all parse as integers.

Beyond TFDV: an inferred string domain gets ``distribution_constraints { min_domain_mass: 0.99 }``
(``min_domain_mass``), so that values unseen in training are an error only when they are significantly
more than 1% of the validated data (fewer: a warning; the model reads them as out-of-vocabulary).

Extensions, off by default: ``infer_int_domains`` writes ``int_domain {min max}`` (observed range) for
integer features, ``infer_float_domains`` ``float_domain {min max}``; ``drift_comparators`` /
``skew_comparators`` add TFDV comparators with thresholds to every feature.
"""

from __future__ import annotations

import os
import re

from tensorflow_metadata.proto.v0 import schema_pb2, statistics_pb2

from .. import artifacts

FeatureType = statistics_pb2.FeatureNameStatistics

#: string features with a longer value get no inferred domain (free text, not categories)
MAX_DOMAIN_VALUE_CHARS = 1000
#: TFDV's ``infer_schema(max_string_domain_size=100)``
DEFAULT_MAX_STRING_DOMAIN_SIZE = 100
#: in-domain share an inferred string domain asks of validated data (TFDV's min_domain_mass)
DEFAULT_MIN_DOMAIN_MASS = 0.99
# TFDV's bool_domain_util GetTrueValues/GetFalseValues
_TRUE_VALUES = {"TRUE", "true", "True", "t", "1"}
_FALSE_VALUES = {"FALSE", "false", "False", "f", "0"}
_INT_PATTERN = re.compile(r"^\s*[-+]?\d+\s*$")


class SchemaError(ValueError):
    """A schema cannot be read or inferred; the message names the file or feature and the problem."""


def _common(feature: statistics_pb2.FeatureNameStatistics) -> statistics_pb2.CommonStatistics:
    which = feature.WhichOneof("stats")
    if which is None:
        return statistics_pb2.CommonStatistics()
    return getattr(feature, which).common_stats


def feature_name(feature: statistics_pb2.FeatureNameStatistics) -> str:
    """The feature's name (its path joined with dots, or the legacy ``name`` field)."""
    if feature.HasField("path"):
        return ".".join(feature.path.step)
    return feature.name


def schema_type(stats_type: int) -> int:
    """Schema ``FeatureType`` of a statistics type."""
    return {
        FeatureType.INT: schema_pb2.INT,
        FeatureType.FLOAT: schema_pb2.FLOAT,
        FeatureType.STRING: schema_pb2.BYTES,
        FeatureType.BYTES: schema_pb2.BYTES,
        FeatureType.STRUCT: schema_pb2.STRUCT,
    }[stats_type]


def string_values(feature: statistics_pb2.FeatureNameStatistics) -> dict[str, float]:
    """Value -> count from the rank histogram (what TFDV's validation reads)."""
    return {b.label: b.sample_count for b in feature.string_stats.rank_histogram.buckets}


def _select(statistics, split: str | None) -> statistics_pb2.DatasetFeatureStatistics:
    if isinstance(statistics, statistics_pb2.DatasetFeatureStatistics):
        return statistics
    if not statistics.datasets:
        raise SchemaError("the statistics hold no dataset")
    if split is None:
        return statistics.datasets[0]
    for dataset in statistics.datasets:
        if dataset.name == split:
            return dataset
    raise SchemaError(f"the statistics have no dataset named {split!r}: {[d.name for d in statistics.datasets]}")


def infer_schema(
    stats,
    *,
    infer_feature_shape: bool = True,
    max_string_domain_size: int = DEFAULT_MAX_STRING_DOMAIN_SIZE,
    infer_int_domains: bool = False,
    infer_float_domains: bool = False,
    drift_comparators: dict | None = None,
    skew_comparators: dict | None = None,
    split: str | None = None,
    min_domain_mass: float | None = DEFAULT_MIN_DOMAIN_MASS,
) -> schema_pb2.Schema:
    """Infer a schema from statistics with TFDV's rules.

    Args:
        stats: ``DatasetFeatureStatisticsList`` (its first dataset, or ``split``) or one
            ``DatasetFeatureStatistics``.
        infer_feature_shape: give always-present single-valued features ``shape {dim {size: 1}}``.
        max_string_domain_size: largest number of distinct strings that becomes a string domain.
        infer_int_domains: add ``int_domain {min max}`` (the observed range) to integer features.
        infer_float_domains: add ``float_domain {min max}`` to floating point features.
        drift_comparators: thresholds for every feature's ``drift_comparator``, e.g.
            ``{"infinity_norm": 0.1, "jensen_shannon_divergence": 0.1}`` (categorical features get
            ``infinity_norm``, numeric ones ``jensen_shannon_divergence``; a key missing means none).
        skew_comparators: same, for ``skew_comparator``.
        split: which dataset of a list to use (default: the first).
        min_domain_mass: ``distribution_constraints.min_domain_mass`` of inferred string domains (share of
            values that must be in the domain); None or 1.0: none (every unseen value is an error).
    Returns:
        The ``Schema``.
    """
    if min_domain_mass is not None and not 0.0 <= min_domain_mass <= 1.0:
        raise SchemaError(f"min_domain_mass must be within [0, 1], got {min_domain_mass}")
    dataset = _select(stats, split)
    schema = schema_pb2.Schema()
    domain_names: set[str] = set()
    for stats_feature in dataset.features:
        name = feature_name(stats_feature)
        feature = schema.feature.add(name=name, type=schema_type(stats_feature.type))
        common = _common(stats_feature)
        num_present = common.num_non_missing
        feature.presence.min_count = 1 if num_present >= 1 else 0
        if num_present > 0:
            if common.num_missing == 0:
                feature.presence.min_fraction = 1.0
            fixed = common.num_missing == 0 and common.min_num_values == common.max_num_values > 0
            if infer_feature_shape and fixed:
                feature.shape.dim.add(size=common.min_num_values)
            elif common.min_num_values > 0:
                if common.min_num_values == common.max_num_values:
                    feature.value_count.min = common.min_num_values
                    feature.value_count.max = common.max_num_values
                else:
                    feature.value_count.min = 1
        if num_present > 0:
            _infer_domain(stats_feature, feature, schema, domain_names, max_string_domain_size,
                          infer_int_domains, infer_float_domains)
            if feature.HasField("domain") and min_domain_mass is not None and min_domain_mass < 1.0:
                feature.distribution_constraints.min_domain_mass = float(min_domain_mass)
        _add_comparators(stats_feature, feature, drift_comparators, "drift_comparator")
        _add_comparators(stats_feature, feature, skew_comparators, "skew_comparator")
    return schema


def _infer_domain(stats_feature, feature, schema, domain_names, max_string_domain_size, infer_int_domains,
                  infer_float_domains) -> None:
    kind = stats_feature.type
    if kind == FeatureType.BYTES:
        return
    if kind == FeatureType.INT:
        num = stats_feature.num_stats
        if num.min >= 0.0 and num.max == 1.0:
            feature.bool_domain.SetInParent()
        elif infer_int_domains:
            feature.int_domain.min = int(num.min)
            feature.int_domain.max = int(num.max)
        return
    if kind == FeatureType.FLOAT:
        if infer_float_domains:
            feature.float_domain.min = stats_feature.num_stats.min
            feature.float_domain.max = stats_feature.num_stats.max
        return
    values = sorted(string_values(stats_feature), key=lambda v: v.encode("utf-8"))
    if not values:
        return
    if len(values) <= 2 and _is_bool_words(values):
        true_value = next((v for v in values if v in _TRUE_VALUES), None)
        false_value = next((v for v in values if v in _FALSE_VALUES), None)
        if true_value is not None:
            feature.bool_domain.true_value = true_value
        if false_value is not None:
            feature.bool_domain.false_value = false_value
        return
    complete = stats_feature.string_stats.unique <= len(values)
    if complete and all(_INT_PATTERN.match(v) for v in values):
        feature.int_domain.SetInParent()
        return
    # a value longer than a category name is free text: no domain (a 10 MB cell would otherwise be copied into
    # the schema and into every anomalies proto that carries it as baseline)
    if complete and len(values) <= max_string_domain_size and all(len(v) <= MAX_DOMAIN_VALUE_CHARS for v in values):
        domain_name, index = feature.name, 1
        while domain_name in domain_names:
            index += 1
            domain_name = f"{feature.name}{index}"
        domain_names.add(domain_name)
        schema.string_domain.add(name=domain_name, value=values)
        feature.domain = domain_name


def _is_bool_words(values: list[str]) -> bool:
    true_seen = false_seen = False
    for value in values:
        if not true_seen and value in _TRUE_VALUES:
            true_seen = True
        elif not false_seen and value in _FALSE_VALUES:
            false_seen = True
        else:
            return False
    return True


def _add_comparators(stats_feature, feature, thresholds: dict | None, field: str) -> None:
    if not thresholds:
        return
    unknown = set(thresholds) - {"infinity_norm", "jensen_shannon_divergence", "normalized_abs_difference"}
    if unknown:
        raise SchemaError(f"unknown comparator(s) {sorted(unknown)}; use infinity_norm, "
                          "jensen_shannon_divergence or normalized_abs_difference")
    comparator = getattr(feature, field)
    categorical = stats_feature.type in (FeatureType.STRING, FeatureType.BYTES)
    for key, threshold in thresholds.items():
        if threshold is None:
            continue
        if key in ("infinity_norm", "normalized_abs_difference") and not categorical:
            continue  # TFDV computes these on value counts only
        getattr(comparator, key).threshold = float(threshold)


def import_schema(schema_uri: str, output_dir: str | os.PathLike) -> schema_pb2.Schema:
    """Copy a curated ``schema.pbtxt`` into a schema artifact after checking that it parses.

    Args:
        schema_uri: path, ``file://`` or ``gs://`` URI of a schema file (or folder holding ``schema.pbtxt``).
        output_dir: the artifact folder.
    Returns:
        The imported ``Schema``.
    """
    schema = artifacts.read_schema(schema_uri)
    artifacts.write_schema(schema, output_dir)
    return schema


def schema_features(schema: schema_pb2.Schema) -> dict[str, str]:
    """Feature name -> type name, for artifact metadata."""
    return {f.name: schema_pb2.FeatureType.Name(f.type) for f in schema.feature}
