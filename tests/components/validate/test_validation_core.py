"""Core tests: sketches, statistics, schema inference and anomalies on real files."""

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import synthetic
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from kfpc.components import artifacts
from kfpc.components.ingest import core as ingest_core
from kfpc.components.schema import core as schema_core
from kfpc.components.statistics import core as stats_core
from kfpc.components.statistics.sketches import FrequencySketch, HyperLogLog, QuantileSketch, hash_binary
from kfpc.components.validate import core as validate_core


def feature(stats, name):
    return next(f for f in stats.features if schema_core.feature_name(f) == name)


# ---- sketches ----

def test_quantile_sketch_rank_error_within_bound_and_merge_is_union():
    rng = np.random.default_rng(3)
    values = rng.lognormal(size=300_000)
    whole = QuantileSketch(512)
    for start in range(0, values.size, 40_000):
        whole.add(values[start:start + 40_000])
    left, right = QuantileSketch(512), QuantileSketch(512)
    left.add(values[:123_456])
    right.add(values[123_456:])
    left.merge(right)
    ordered = np.sort(values)
    fractions = np.linspace(0.01, 0.99, 99)
    for sketch in (whole, left):
        assert sketch.count == values.size
        ranks = np.searchsorted(ordered, sketch.quantiles(fractions)) / values.size
        assert np.max(np.abs(ranks - fractions)) <= sketch.rank_error_bound()


@pytest.mark.parametrize("data", ["lognormal", "sorted", "ties", "periodic", "reversed"])
def test_sampled_quantile_sketch_stays_within_its_bound(data):
    # batches of at least 2 * SAMPLE values are summarized from a stratified sample: the reported bound
    # (compaction + sampling) must hold on shapes that trouble samplers, and the sketch is reproducible
    rng = np.random.default_rng(11)
    n = 600_000
    values = {"lognormal": rng.lognormal(size=n), "sorted": np.sort(rng.normal(size=n)),
              "ties": rng.choice([0.0, 1.0, 2.5], n, p=[0.7, 0.2, 0.1]),
              "periodic": np.tile(np.arange(16, dtype=float), n // 16),
              "reversed": np.arange(n, 0, -1, dtype=float)}[data]
    sketches = []
    for _ in range(2):
        sketch = QuantileSketch(2048)
        for start in range(0, n, 262_144):
            sketch.add(values[start:start + 262_144])
        sketches.append(sketch)
    sketch = sketches[0]
    assert sketch.count == n and sketch.variance > 0
    assert [level.tolist() for level in sketch.levels] == [level.tolist() for level in sketches[1].levels]
    ordered = np.sort(values)
    fractions = np.linspace(0.01, 0.99, 99)
    found = sketch.quantiles(fractions)
    low = np.searchsorted(ordered, found, side="left") / n
    high = np.searchsorted(ordered, found, side="right") / n
    error = np.where(fractions < low, low - fractions, np.where(fractions > high, fractions - high, 0.0))
    assert error.max() <= sketch.rank_error_bound()
    # the bound is not vacuous: below 1.5% of the rows at 600k values
    assert sketch.rank_error_bound() < 0.015


def test_quantile_sketch_is_exact_below_k():
    sketch = QuantileSketch(64)
    sketch.add(np.arange(50, dtype=float))
    assert sketch.rank_error_bound() == 0
    assert list(sketch.quantiles([0.0, 1.0])) == [0.0, 49.0]


def test_frequency_sketch_exact_then_misra_gries_bounds():
    rng = np.random.default_rng(5)
    data = pa.array(rng.zipf(1.3, 200_000).astype(str))
    sketch = FrequencySketch(capacity=500)
    for start in range(0, len(data), 30_000):
        counted = pc.value_counts(data[start:start + 30_000])
        sketch.add_counts(counted.field("values"), counted.field("counts").to_numpy())
    truth = pd.Series(data.to_numpy(zero_copy_only=False)).value_counts()
    assert not sketch.exact and sketch.error <= len(data) / 501
    values, counts = sketch.top(20)
    for value, count in zip(values, counts, strict=True):
        assert truth[value] - sketch.error <= count <= truth[value]
    assert abs(sketch.unique() - truth.size) / truth.size < 0.03
    small = FrequencySketch(capacity=100)
    small.add_counts(pa.array(["b", "a", "c"]), np.array([2, 2, 5]))
    assert small.exact and small.top(3) [0] == ["c", "b", "a"]  # count desc, then value desc (TFDV)


def test_hash_and_hyperloglog_depend_on_values_only():
    a = pa.array(["x", "yy", "", None, "x"])
    b = pa.chunked_array([["x"], ["yy", "", "x"]]).combine_chunks()
    assert list(hash_binary(a)) == list(hash_binary(b))
    counter = HyperLogLog()
    counter.add_hashes(hash_binary(pa.array([str(i) for i in range(50_000)])))
    assert abs(counter.estimate() - 50_000) / 50_000 < 0.03


# ---- statistics ----

def test_statistics_match_numpy_on_synthetic_parquet(tmp_path):
    path = synthetic.write_parquet(tmp_path / "data.parquet", 30_000, seed=1)
    table = pq.read_table(path)
    stats = stats_core.generate_statistics(path, "train", top_k=50_000)
    assert stats.num_examples == 30_000 and len(stats.features) == table.num_columns
    for name in ("age", "income", "score", "user_id"):
        column = table.column(name)
        values = column.drop_null().to_numpy().astype(float)
        num = feature(stats, name).num_stats
        assert num.common_stats.num_missing == column.null_count
        assert num.min == values.min() and num.max == values.max()
        assert math.isclose(num.mean, values.mean(), rel_tol=1e-12)
        assert math.isclose(num.std_dev, values.std(), rel_tol=1e-9)
        assert num.num_zeros == int((values == 0).sum())
        assert sum(b.sample_count for b in num.histograms[0].buckets) == pytest.approx(values.size)
    color = feature(stats, "color")
    assert color.type == statistics_pb2.FeatureNameStatistics.STRING
    truth = pd.Series(table.column("color").drop_null().to_numpy(zero_copy_only=False)).value_counts()
    assert color.string_stats.unique == truth.size
    assert [v.value for v in color.string_stats.top_values] == list(truth.index)
    assert [v.frequency for v in color.string_stats.top_values] == list(truth.values)


def test_partial_statistics_merge_into_the_statistics_of_the_union(tmp_path):
    table = synthetic.make_table(20_000, seed=2)
    whole = stats_core.accumulate(table).to_proto()
    first = stats_core.accumulate(table.slice(0, 7_000))
    first.merge(stats_core.accumulate(table.slice(7_000)))
    merged = first.to_proto()
    for expected, actual in zip(whole.features, merged.features, strict=True):
        if expected.HasField("num_stats"):
            a, b = expected.num_stats, actual.num_stats
            assert (a.common_stats.num_missing, a.min, a.max, a.num_zeros) == (
                b.common_stats.num_missing, b.min, b.max, b.num_zeros)
            assert math.isclose(a.mean, b.mean, rel_tol=1e-12) and math.isclose(a.std_dev, b.std_dev, rel_tol=1e-9)
        else:
            a, b = expected.string_stats, actual.string_stats
            assert a.common_stats.num_missing == b.common_stats.num_missing and a.avg_length == b.avg_length
            assert [v.value for v in a.top_values[:20]] == [v.value for v in b.top_values[:20]]
    assert merged.num_examples == whole.num_examples


def test_statistics_artifact_layout_and_round_trip(tmp_path, penguins_csv):
    ingest_core.ingest(str(penguins_csv), tmp_path / "data")
    metadata = stats_core.write_statistics(tmp_path / "data", tmp_path / "stats")
    assert metadata["split_names"] == ["eval", "train"]
    stats = artifacts.read_statistics(tmp_path / "stats", "train")
    assert (tmp_path / "stats" / "Split-train" / "FeatureStats.pb").exists()
    assert stats.datasets[0].num_examples == metadata["rows"]["train"]
    mass = feature(stats.datasets[0], "body_mass_g")
    assert mass.num_stats.mean > 0 and mass.num_stats.std_dev > 0


# ---- schema + validation ----

def _schema_and_stats(tmp_path, penguins_csv):
    ingest_core.ingest(str(penguins_csv), tmp_path / "data")
    stats_core.write_statistics(tmp_path / "data", tmp_path / "stats")
    train = artifacts.read_statistics(tmp_path / "stats", "train")
    evaluation = artifacts.read_statistics(tmp_path / "stats", "eval")
    return schema_core.infer_schema(train), train, evaluation


def test_penguins_eval_split_has_no_anomalies(tmp_path, penguins_csv):
    schema, train, evaluation = _schema_and_stats(tmp_path, penguins_csv)
    assert {f.name: f.type for f in schema.feature}["species"] == schema_pb2.BYTES
    assert [d.name for d in schema.string_domain] == ["species", "island", "sex"]
    anomalies = validate_core.validate(evaluation, schema, previous=train)
    assert validate_core.anomaly_lines(anomalies) == []


def test_schema_round_trip_and_unparsable_schema(tmp_path, penguins_csv):
    schema, _, _ = _schema_and_stats(tmp_path, penguins_csv)
    artifacts.write_schema(schema, tmp_path / "schema")
    assert artifacts.read_schema(tmp_path / "schema") == schema
    bad = tmp_path / "bad.pbtxt"
    bad.write_text('feature { name: "a" type: INTEGER }')
    with pytest.raises(artifacts.ArtifactFormatError, match=r"bad.pbtxt.*not a tensorflow_metadata Schema"):
        artifacts.read_schema(bad)
    dangling = tmp_path / "dangling.pbtxt"
    dangling.write_text('feature { name: "a" type: BYTES domain: "nowhere" }')
    with pytest.raises(artifacts.ArtifactFormatError, match="'a' refers to string_domain 'nowhere'"):
        artifacts.read_schema(dangling)


def _injected(rows: int, seed: int):
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "category": rng.choice(["a", "b", "c"], rows),
        "level": rng.integers(0, 10, rows),
        "mostly_present": rng.normal(size=rows),
        "dropped": rng.normal(size=rows),
        "shifted": rng.normal(size=rows),
        "clean_int": rng.integers(0, 1000, rows),
        "clean_str": rng.choice(["x", "y"], rows),
    })


def test_injected_problems_give_tfdv_reason_types():
    baseline = _injected(5_000, 1)
    current = _injected(5_000, 2)
    current.loc[:20, "category"] = "zzz_unseen"
    current.loc[current.sample(frac=0.2, random_state=1).index, "mostly_present"] = np.nan
    current = current.drop(columns=["dropped"])
    current["shifted"] = current["shifted"] + 3.0
    current.loc[:5, "level"] = 42
    current.loc[6:8, "level"] = -3
    train = stats_core.generate_statistics(baseline)
    schema = schema_core.infer_schema(train, drift_comparators={"jensen_shannon_divergence": 0.1})
    level = next(f for f in schema.feature if f.name == "level")
    level.int_domain.min, level.int_domain.max = 0, 9
    anomalies = validate_core.validate(stats_core.generate_statistics(current), schema, previous=train)
    found = validate_core.reason_types(anomalies)
    assert found == {
        "category": {"ENUM_TYPE_UNEXPECTED_STRING_VALUES"},
        # TFDV also drops the inferred shape [1] of a feature that became optional
        "mostly_present": {"FEATURE_TYPE_LOW_FRACTION_PRESENT", "INVALID_FEATURE_SHAPE"},
        "dropped": {"SCHEMA_MISSING_COLUMN"},
        "shifted": {"COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"},
        # out-of-range values also stretch the histogram's range: JSD over 0.1 too
        "level": {"INT_TYPE_SMALL_INT", "INT_TYPE_BIG_INT", "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH"},
    }
    assert "zzz_unseen (<1%)" in anomalies.anomaly_info["category"].description
    # 21 of 5000 unseen: within the inferred min_domain_mass (0.99), a warning; the rest are errors
    severities = {name: info.severity for name, info in anomalies.anomaly_info.items()}
    assert severities.pop("category") == anomalies_pb2.AnomalyInfo.WARNING
    assert set(severities.values()) == {anomalies_pb2.AnomalyInfo.ERROR}
    assert validate_core.anomaly_count(anomalies) == 4 and validate_core.warning_count(anomalies) == 1
    psi = validate_core.compare(stats_core.generate_statistics(current), train)
    assert psi["shifted"]["psi"] > 1.0 and psi["clean_int"]["psi"] < 0.05


def test_new_column_and_type_disagreement(tmp_path):
    data = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    schema = schema_core.infer_schema(stats_core.generate_statistics(data))
    changed = pd.DataFrame({"a": ["p", "q", "r"], "b": ["x", "y", "z"], "c": [1.0, 2.0, 3.0]})
    found = validate_core.reason_types(validate_core.validate(stats_core.generate_statistics(changed), schema))
    assert found == {"a": {"UNEXPECTED_DATA_TYPE"}, "c": {"SCHEMA_NEW_COLUMN"}}


def test_float_domain_inf_and_nan():
    frame = pd.DataFrame({"x": [1.0, np.inf, np.nan, 2.0, -np.inf]})
    stats = stats_core.generate_statistics(pa.table({"x": pa.array(frame["x"], from_pandas=False)}))
    x = feature(stats, "x")
    assert x.num_stats.common_stats.num_missing == 1  # NaN counts as missing (TFDV's DataFrame semantics)
    assert x.num_stats.min == -math.inf and x.num_stats.max == math.inf
    assert x.num_stats.mean == 1.5  # over finite values
    custom = {c.name: c.num for c in x.custom_stats}
    assert custom["num_pos_inf"] == 1 and custom["num_neg_inf"] == 1 and custom["num_nan"] == 1
    schema = schema_pb2.Schema()
    f = schema.feature.add(name="x", type=schema_pb2.FLOAT)
    f.float_domain.disallow_inf = True
    f.float_domain.disallow_nan = True
    found = validate_core.reason_types(validate_core.validate(stats, schema))
    assert found == {"x": {"FLOAT_TYPE_HAS_INF", "FLOAT_TYPE_HAS_NAN"}}
