"""Validation that fails only for real: random splits of one table give no error at any size, a shift of one
standard deviation of one feature is an error naming it, unseen values and missing values within a schema's
share bound are warnings, a numeric column with a few bad strings is an error naming them."""

import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, statistics_pb2

from kfpc.components import artifacts
from kfpc.components.ingest import core as ingest_core
from kfpc.components.schema import core as schema_core
from kfpc.components.statistics import core as stats_core
from kfpc.components.validate import cli as validate_cli
from kfpc.components.validate import core as validate_core
from kfpc.components.validate import shift

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "pipelines", "data")
WARNING, ERROR = anomalies_pb2.AnomalyInfo.WARNING, anomalies_pb2.AnomalyInfo.ERROR


def errors(anomalies) -> set[str]:
    return {name for name, info in anomalies.anomaly_info.items() if validate_core.is_error(info)}


def split_stats(table: pa.Table, seed: int, eval_fraction: float = 0.2):
    order = np.random.default_rng(seed).permutation(table.num_rows)
    k = int(eval_fraction * table.num_rows)
    return (stats_core.generate_statistics(table.take(order[k:]), "train"),
            stats_core.generate_statistics(table.take(order[:k]), "eval"))


def validate_split(train, evaluation, **kwargs):
    schema = schema_core.infer_schema(train)
    return validate_core.validate(evaluation, schema, reference=train, name="eval", reference_name="train", **kwargs)


# ---- the distributions the tests use (SciPy is in the dev environment, not in the data image) ----

def test_distribution_functions_match_scipy():
    from scipy import stats

    for t, df in [(0.5, 3), (2.5, 10.2), (6.0, 50), (12.0, 2000), (-1.2, 7)]:
        assert math.isclose(shift.t_sf(t, df), stats.t.sf(t, df), rel_tol=1e-9)
    for x, df in [(0.5, 1), (3, 2), (30, 10), (500, 400), (1e4, 9000), (2, 40)]:
        assert math.isclose(shift.chi2_sf(x, df), stats.chi2.sf(x, df), rel_tol=1e-9, abs_tol=1e-300)
    for k, n, p in [(1, 60, 0.01), (5, 60, 0.01), (2200, 200_000, 0.01), (18, 60, 0.01)]:
        assert math.isclose(shift.binomial_sf(k, n, p), stats.binom.sf(k - 1, n, p), rel_tol=1e-9)
    for lam in (0.5, 1.0, 1.5, 2.2):
        assert math.isclose(shift.ks_sf(lam), stats.kstwobign.sf(lam), rel_tol=1e-9)


# ---- random splits of real tables: no error ----

def _real_tables():
    from sklearn import datasets

    tables = {}
    for name in ("penguins.csv", "house_prices.csv"):
        _, batches = ingest_core.read_batches(os.path.join(DATA, name))
        tables[name] = pa.Table.from_batches(list(batches))
    for loader in ("load_diabetes", "load_wine", "load_breast_cancer", "load_digits", "load_iris"):
        frame = getattr(datasets, loader)(as_frame=True).frame
        tables[loader] = pa.Table.from_pandas(frame, preserve_index=False)
    return tables


def test_random_splits_of_real_tables_give_no_error():
    # digits: 64 integer pixel features with few values; house prices: integer counts and yes/no columns
    for name, table in _real_tables().items():
        for seed in range(6):
            train, evaluation = split_stats(table, seed)
            anomalies = validate_split(train, evaluation)
            assert validate_core.anomaly_lines(anomalies) == [], (name, seed)
            drift = validate_core.validate(evaluation, schema_core.infer_schema(train), previous=train)
            assert validate_core.anomaly_count(drift) == 0, (name, seed)


def test_one_std_shift_of_one_feature_of_a_real_table_is_found_and_named():
    table = _real_tables()["house_prices.csv"]
    train, _ = split_stats(table, 0)
    order = np.random.default_rng(0).permutation(table.num_rows)
    frame = table.take(order[: int(0.2 * table.num_rows)]).to_pandas()
    frame["lotsize"] = frame["lotsize"] + int(round(table.column("lotsize").to_numpy().std()))
    anomalies = validate_split(train, stats_core.generate_statistics(frame))
    assert errors(anomalies) == {"lotsize"}
    text = anomalies.anomaly_info["lotsize"].description
    assert "Welch t" in text and "standard deviations of train" in text


# ---- synthetic tables from 300 to 1M rows ----

def _synthetic(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cities = np.array([f"city{i}" for i in range(40)])
    weights = 1.0 / np.arange(1, 41) ** 1.3
    sometimes = rng.normal(size=rows)
    sometimes[rng.random(rows) < 0.002] = np.nan
    return pd.DataFrame({
        "normal": rng.normal(10.0, 2.0, rows),
        "lognormal": rng.lognormal(3.0, 1.0, rows),
        "heavy": rng.standard_t(2, rows),
        "poisson": rng.poisson(2.0, rows),
        "dice": rng.integers(1, 7, rows),
        "wide_int": rng.integers(0, 1000, rows),
        "flag": rng.integers(0, 2, rows),
        "city": rng.choice(cities, rows, p=weights / weights.sum()),
        "color": rng.choice(["red", "green", "blue"], rows),
        "sometimes_missing": sometimes,
    })


@pytest.mark.parametrize("rows", [300, 3_000, 30_000, 300_000, 1_000_000])
def test_random_split_is_clean_and_a_one_std_shift_is_an_error_at_every_size(rows):
    frame = _synthetic(rows, seed=rows)
    order = np.random.default_rng(1).permutation(rows)
    cut = int(0.2 * rows)
    evaluation_frame = frame.iloc[order[:cut]]
    train = stats_core.generate_statistics(frame.iloc[order[cut:]], "train")
    schema = schema_core.infer_schema(train)

    def check(current):
        return validate_core.validate(current, schema, reference=train, name="eval", reference_name="train")

    clean = check(stats_core.generate_statistics(evaluation_frame))
    assert validate_core.anomaly_lines(clean) == []
    assert validate_core.anomaly_count(validate_core.validate(
        stats_core.generate_statistics(evaluation_frame), schema, previous=train)) == 0
    for column in ("normal", "lognormal", "dice"):
        shifted = evaluation_frame.copy()
        std = frame[column].std()
        shifted[column] = shifted[column] + (math.ceil(std) if shifted[column].dtype.kind == "i" else std)
        anomalies = check(stats_core.generate_statistics(shifted))
        assert errors(anomalies) == {column}, (rows, column, validate_core.anomaly_lines(anomalies))
        info = anomalies.anomaly_info[column]
        assert info.severity == ERROR
        assert "COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH" in validate_core.anomaly_lines(anomalies)[0]
        assert "Welch t = " in info.description and "standard deviations of train" in info.description
        measured = next(d for d in anomalies.drift_skew_info if d.path.step[0] == column)
        assert any(m.value >= 0.9 for m in measured.skew_measurements)


def test_drift_against_the_previous_span_uses_the_test_unless_the_schema_sets_thresholds():
    previous = stats_core.generate_statistics(_synthetic(20_000, 1))
    current_frame = _synthetic(20_000, 2)
    current_frame["normal"] += 2.0
    current = stats_core.generate_statistics(current_frame)
    schema = schema_core.infer_schema(previous)
    anomalies = validate_core.validate(current, schema, previous=previous)
    assert errors(anomalies) == {"normal"}
    assert "between current and previous (drift)" in anomalies.anomaly_info["normal"].description
    assert validate_core.anomaly_count(validate_core.validate(current, schema, previous=previous,
                                                              shift_test=None)) == 0
    # a threshold in the schema is TFDV's fixed comparator instead (JSD over unaligned buckets: fires)
    fixed = schema_core.infer_schema(previous, drift_comparators={"jensen_shannon_divergence": 0.01})
    found = validate_core.reason_types(validate_core.validate(current, fixed, previous=previous))
    assert "COMPARATOR_JENSEN_SHANNON_DIVERGENCE_HIGH" in found["normal"]


def test_a_shifted_category_share_is_an_error_a_tiny_unseen_share_is_not():
    frame = _synthetic(50_000, 3)
    train = stats_core.generate_statistics(frame.iloc[:40_000])
    evaluation = frame.iloc[40_000:].copy()
    evaluation.loc[evaluation.index[:3_000], "color"] = "red"  # 30% of eval moved to one value
    anomalies = validate_split(train, stats_core.generate_statistics(evaluation))
    assert errors(anomalies) == {"color"}
    assert "total variation distance" in anomalies.anomaly_info["color"].description


# ---- unseen values and missing values: warnings within the bound, errors beyond it ----

def _with_unseen(share: float, rows: int = 5_000):
    rng = np.random.default_rng(7)
    train = pd.DataFrame({"c": rng.choice(["a", "b", "c"], rows), "x": rng.normal(size=rows)})
    evaluation = pd.DataFrame({"c": rng.choice(["a", "b", "c"], rows // 4), "x": rng.normal(size=rows // 4)})
    evaluation.loc[: int(share * len(evaluation)) - 1, "c"] = "new_value"
    return stats_core.generate_statistics(train, "train"), stats_core.generate_statistics(evaluation, "eval")


def test_unseen_category_below_one_percent_is_a_warning_and_at_thirty_percent_an_error():
    train, evaluation = _with_unseen(0.006)
    schema = schema_core.infer_schema(train)
    domain_feature = next(f for f in schema.feature if f.name == "c")
    assert domain_feature.distribution_constraints.min_domain_mass == pytest.approx(0.99)
    anomalies = validate_core.validate(evaluation, schema)
    info = anomalies.anomaly_info["c"]
    assert info.severity == WARNING and info.reason[0].type == anomalies_pb2.AnomalyInfo.ENUM_TYPE_UNEXPECTED_STRING_VALUES
    assert "new_value (<1%)" in info.description and "Warning only" in info.description
    assert validate_core.anomaly_count(anomalies) == 0 and validate_core.warning_count(anomalies) == 1
    validate_core.raise_if_anomalies(anomalies)  # warnings do not fail

    train, evaluation = _with_unseen(0.3)
    anomalies = validate_core.validate(evaluation, schema_core.infer_schema(train))
    assert anomalies.anomaly_info["c"].severity == ERROR
    with pytest.raises(validate_core.AnomaliesFoundError, match="c: ENUM_TYPE_UNEXPECTED_STRING_VALUES"):
        validate_core.raise_if_anomalies(anomalies)
    # a curated schema without distribution_constraints stays strict (TFDV): any unseen value is an error
    strict = schema_core.infer_schema(train, min_domain_mass=None)
    train, evaluation = _with_unseen(0.006)
    assert validate_core.validate(evaluation, strict).anomaly_info["c"].severity == ERROR


def test_a_few_missing_values_in_a_never_missing_feature_are_a_warning_many_an_error():
    rng = np.random.default_rng(3)
    train = stats_core.generate_statistics(pd.DataFrame({"x": rng.normal(size=4_000)}))
    schema = schema_core.infer_schema(train)
    few = pd.DataFrame({"x": rng.normal(size=1_000)})
    few.loc[:2, "x"] = np.nan
    anomalies = validate_core.validate(stats_core.generate_statistics(few), schema)
    assert validate_core.reason_types(anomalies)["x"] == {"FEATURE_TYPE_LOW_FRACTION_PRESENT", "INVALID_FEATURE_SHAPE"}
    assert anomalies.anomaly_info["x"].severity == WARNING
    many = pd.DataFrame({"x": rng.normal(size=1_000)})
    many.loc[:299, "x"] = np.nan
    assert validate_core.validate(stats_core.generate_statistics(many), schema).anomaly_info["x"].severity == ERROR


# ---- mixed numeric/string columns ----

def _mixed_csv(path, rows=2_000, bad=40):
    rng = np.random.default_rng(11)
    values = np.round(rng.normal(50, 10, rows), 1).astype(str).astype(object)
    where = rng.choice(rows, bad, replace=False)
    values[where] = rng.choice(["n/a?", "unknown", "12,5", "x" * 60, 'say "hi"\n'], bad)
    grades = rng.choice([str(g) for g in range(1, 13)] + ["K"], rows)  # codes: stays a category
    pd.DataFrame({"reading": values, "grade": grades, "y": rng.normal(size=rows)}).to_csv(path, index=False)


def test_numeric_column_with_a_few_bad_strings_is_an_error_naming_it_and_samples(tmp_path):
    _mixed_csv(tmp_path / "table.csv")
    ingest_core.ingest(str(tmp_path / "table.csv"), tmp_path / "data")
    stats_core.write_statistics(tmp_path / "data", tmp_path / "stats")
    train = artifacts.read_statistics(tmp_path / "stats", "train")
    reading = next(f for f in train.datasets[0].features if f.path.step[0] == "reading")
    custom = {c.name: c.num for c in reading.custom_stats}
    assert custom[stats_core.CUSTOM_NUM_NUMERIC_STRINGS] < reading.string_stats.common_stats.num_non_missing
    artifacts.write_schema(schema_core.infer_schema(train), tmp_path / "schema")
    result = validate_core.run(tmp_path / "stats", tmp_path / "schema", tmp_path / "anomalies", split="eval",
                               reference_split="train", markdown_path=tmp_path / "report.md")
    assert errors(result.anomalies) == {"reading"}
    info = result.anomalies.anomaly_info["reading"]
    assert info.reason[0].type == anomalies_pb2.AnomalyInfo.FLOAT_TYPE_STRING_NOT_FLOAT
    text = info.description
    assert "column 'reading'" in text and "numeric_columns=['reading']" in text and '"n/a?"' in text
    samples = text.split("e.g. ", 1)[1].split(": the column", 1)[0]
    quoted = samples.split('", "')
    assert 1 <= len(quoted) <= 5 and all(len(q.strip('"')) <= 40 for q in quoted)
    assert '\\"hi\\"\\n' in text  # escaped, on one line
    assert result.metadata()["anomaly_count"] == 1
    assert "FLOAT_TYPE_STRING_NOT_FLOAT" in (tmp_path / "report.md").read_text()


def test_mixed_column_only_in_the_train_split_is_still_found():
    rng = np.random.default_rng(5)
    values = np.round(rng.normal(size=1_000), 2).astype(str).astype(object)
    values[:15] = "missing?"
    train = stats_core.generate_statistics(pd.DataFrame({"v": values}), "train")
    evaluation = stats_core.generate_statistics(
        pd.DataFrame({"v": np.round(rng.normal(size=200), 2).astype(str)}), "eval")
    schema = schema_core.infer_schema(train)
    anomalies = validate_core.validate(evaluation, schema, reference=train, name="eval", reference_name="train")
    assert "in split 'train'" in anomalies.anomaly_info["v"].description
    # a curated schema can keep such a column categorical
    next(f for f in schema.feature if f.name == "v").annotation.tag.append(validate_core.CATEGORICAL_TAG)
    anomalies = validate_core.validate(evaluation, schema, reference=train, name="eval", reference_name="train")
    assert "v" not in errors(anomalies)


def test_numbers_are_counted_alike_on_every_statistics_path(tmp_path):
    rng = np.random.default_rng(2)
    rows = 60_000
    near_unique = np.round(rng.normal(size=rows), 6).astype(str).astype(object)
    near_unique[rng.choice(rows, 300, replace=False)] = "bad"
    codes = rng.choice(["1", "2", "3", "x"], rows)
    text = np.char.add("id-", np.arange(rows).astype(str))
    table = pa.table({"near_unique": near_unique.astype(str), "codes": codes, "text": text,
                      "zip": np.char.add("0", rng.integers(1000, 9999, rows).astype(str))})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=10_000)
    expected = {"near_unique": rows - 300, "codes": int((codes != "x").sum()), "zip": rows}
    for stats in (stats_core.generate_statistics(str(tmp_path / "t.parquet"), top_k=500),
                  stats_core.generate_statistics(table), stats_core.generate_statistics(str(tmp_path / "t.parquet"),
                                                                                       threads=1)):
        found = {f.path.step[0]: next((c.num for c in f.custom_stats
                                       if c.name == stats_core.CUSTOM_NUM_NUMERIC_STRINGS), None)
                 for f in stats.features}
        assert found == {**expected, "text": None}
    merged = stats_core.accumulate(table.slice(0, 20_000))
    merged.merge(stats_core.accumulate(table.slice(20_000)))
    feature = next(f for f in merged.to_proto().features if f.path.step[0] == "near_unique")
    assert {c.name: c.num for c in feature.custom_stats}[stats_core.CUSTOM_NUM_NUMERIC_STRINGS] == rows - 300
    # all-number strings (zip codes) and few codes with a word are not broken numeric columns
    schema = schema_core.infer_schema(stats_core.generate_statistics(table))
    assert validate_core.anomaly_lines(validate_core.validate(stats_core.generate_statistics(table), schema)) == [
        f"near_unique: FLOAT_TYPE_STRING_NOT_FLOAT: {validate_core.mixed_numeric(feature).long}"]


# ---- component-level behaviour ----

def test_reference_split_must_be_another_split(tmp_path, penguins_csv):
    ingest_core.ingest(str(penguins_csv), tmp_path / "data")
    stats_core.write_statistics(tmp_path / "data", tmp_path / "stats")
    artifacts.write_schema(schema_core.infer_schema(artifacts.read_statistics(tmp_path / "stats", "train")),
                             tmp_path / "schema")
    with pytest.raises(validate_core.ValidationError, match="reference_split 'eval' is the validated split"):
        validate_core.run(tmp_path / "stats", tmp_path / "schema", tmp_path / "a", split="eval", reference_split="eval")
    result = validate_core.run(tmp_path / "stats", tmp_path / "schema", tmp_path / "b", split="eval",
                               reference_split="train")
    assert result.count == 0 and result.metadata()["warning_count"] == result.warnings


def test_cli_baseline_from_a_random_split_passes_and_a_shift_fails(tmp_path, capsys):
    _, batches = ingest_core.read_batches(os.path.join(DATA, "house_prices.csv"))
    frame = pa.Table.from_batches(list(batches)).to_pandas().sample(frac=1.0, random_state=4)
    frame.iloc[:400].to_csv(tmp_path / "baseline.csv", index=False)
    frame.iloc[400:].to_csv(tmp_path / "current.csv", index=False)

    def run(*args):
        import argparse

        parser = argparse.ArgumentParser()
        validate_cli.register(parser.add_subparsers())
        parsed = parser.parse_args(["validate", *map(str, args)])
        return parsed.func(parsed), capsys.readouterr()

    code, captured = run(tmp_path / "current.csv", "--baseline", tmp_path / "baseline.csv")
    assert code == 0, captured.out
    shifted = frame.iloc[400:].copy()
    shifted["bedrooms"] += 1  # one standard deviation is about 0.74 bedrooms
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    code, captured = run(tmp_path / "shifted.csv", "--baseline", tmp_path / "baseline.csv")
    assert code == 1 and captured.out.startswith("bedrooms: COMPARATOR_")


def test_statistics_proto_without_the_numbers_count_falls_back_to_complete_value_counts():
    feature = statistics_pb2.FeatureNameStatistics(type=statistics_pb2.FeatureNameStatistics.STRING)
    feature.path.step.append("v")
    feature.string_stats.common_stats.num_non_missing = 100
    for i in range(97):
        feature.string_stats.rank_histogram.buckets.add(label=str(i), sample_count=1)
    feature.string_stats.rank_histogram.buckets.add(label="?", sample_count=3)
    assert validate_core.mixed_numeric(feature) is None  # not known to be complete
    feature.custom_stats.add(name="top_values_exact", num=1.0)
    assert "97.00% of the values of column 'v'" in validate_core.mixed_numeric(feature).long


def test_a_curated_numeric_feature_read_as_strings_names_the_bad_values():
    rng = np.random.default_rng(9)
    train = stats_core.generate_statistics(pd.DataFrame({"v": rng.normal(size=500)}))
    values = np.round(rng.normal(size=500), 3).astype(str).astype(object)
    values[:4] = "#REF!"
    anomalies = validate_core.validate(stats_core.generate_statistics(pd.DataFrame({"v": values})),
                                       schema_core.infer_schema(train))
    text = anomalies.anomaly_info["v"].description
    assert text.startswith("Expected data of type: FLOAT but got STRING") and '"#REF!"' in text


def test_new_values_of_a_free_text_column_are_expected_at_the_rate_train_kept_meeting_them():
    """penguins_raw's `Comments` (free text: most values seen once) shows values in eval that train never saw
    (~8% of the eval rows each): that is what sampling gives such a column (Good-Turing: the share of train
    values seen once), so a warning, not a failed run. A categorical column gets no such allowance."""
    table = pa.Table.from_pandas(pd.read_csv(os.path.join(DATA, "..", "..", "benchmarks", "datasets",
                                                          "penguins_raw.csv")), preserve_index=False)
    assert any(
        "Comments" in validate_split(*split_stats(table, seed)).anomaly_info for seed in range(5)
    ), "the case is present: eval holds comments train never saw"
    for seed in range(5):
        anomalies = validate_split(*split_stats(table, seed))
        assert not errors(anomalies), (seed, validate_core.anomaly_lines(anomalies))
        if "Comments" in anomalies.anomaly_info:
            assert "saw only once" in anomalies.anomaly_info["Comments"].description
    rng = np.random.default_rng(3)
    train = pd.DataFrame({"c": rng.choice(["a", "b", "c"], 4000)})
    evaluation = pd.DataFrame({"c": np.where(rng.random(1000) < 0.08, "new", rng.choice(["a", "b", "c"], 1000))})
    anomalies = validate_split(stats_core.generate_statistics(train, "train"),
                               stats_core.generate_statistics(evaluation, "eval"))
    assert errors(anomalies) == {"c"}
    assert validate_core.unseen_mass(next(f for f in stats_core.generate_statistics(train, "train").features)) == 0


def test_a_huge_or_hostile_cell_stays_a_short_escaped_excerpt_in_anomalies_and_reports():
    """A 10 MB cell holding `<script>` (issue 18): the anomaly text and both reports quote a short excerpt,
    and the Markdown (rendered as HTML by the KFP UI) carries no markup from the data."""
    from kfpc.components.validate import report

    cell = "<script>alert(1)</script>" + "x" * 10_000_000
    train = stats_core.generate_statistics(pd.DataFrame({"c": ["a", "b"] * 200}), "train")
    evaluation = stats_core.generate_statistics(pd.DataFrame({"c": [cell] * 100 + ["a"] * 10}), "eval")
    anomalies = validate_core.validate(evaluation, schema_core.infer_schema(train))
    description = anomalies.anomaly_info["c"].description
    assert len(description) < 300 and "<script>alert(1)</script>xxx" in description
    markdown = report.render_markdown(anomalies, {"eval": evaluation, "train": train})
    page = report.render_html(anomalies, {"eval": evaluation, "train": train})
    assert len(markdown) < 5_000 and len(page) < 20_000
    assert "<script>" not in markdown and "&lt;script&gt;" in markdown
    assert "<script>" not in page
    weird = stats_core.generate_statistics(pd.DataFrame({"a`b|<i>": ["x"] * 5}), "eval")
    row = next(line for line in report.render_markdown(validate_core.validate(weird, schema_core.infer_schema(
        weird)), {"eval": weird}).splitlines() if "&lt;i&gt;" in line)
    assert row.startswith("| a`b\\|&lt;i&gt; |")


def test_a_nearly_empty_column_absent_from_a_small_eval_split_is_a_warning():
    """One value in 267 train rows, none in 77 eval rows: chance (p ~ 0.75), not a broken pipeline. A column
    the train split always holds and eval never does stays an error."""
    train = pd.DataFrame({"notes": ["x" * 5000] + [None] * 266, "always": ["a"] * 267})
    evaluation = pd.DataFrame({"notes": pd.Series([None] * 77, dtype=object), "always": pd.Series([None] * 77,
                                                                                                 dtype=object)})
    train_stats = stats_core.generate_statistics(train, "train")
    anomalies = validate_split(train_stats, stats_core.generate_statistics(evaluation, "eval"))
    assert anomalies.anomaly_info["notes"].severity == WARNING
    assert "happens by chance" in anomalies.anomaly_info["notes"].description
    assert errors(anomalies) == {"always"}
    text = stats_core.generate_statistics(pd.DataFrame({"c": ["a", "b", "c" * 5000] * 50, "d": ["a", "b"] * 75}),
                                          "train")
    schema = schema_core.infer_schema(text)
    assert [d.name for d in schema.string_domain] == ["d"], "a 5,000-character value is free text: no domain"


def test_a_rare_value_just_outside_an_inferred_range_is_a_warning_a_common_one_an_error():
    """caravan's ABYSTAND: 0/1 in 4,594 train rows (a bool domain is inferred), one 2 in 1,228 eval rows —
    chance for a value that rare. 5% of eval rows at 2 is an error; without a reference it stays strict (TFDV)."""
    rng = np.random.default_rng(11)
    train = pd.DataFrame({"n": (rng.random(4594) < 0.02).astype(np.int64)})
    rare = pd.DataFrame({"n": np.r_[(rng.random(1227) < 0.02).astype(np.int64), 2]})
    common = pd.DataFrame({"n": np.where(rng.random(1228) < 0.05, 2, 0).astype(np.int64)})
    train_stats = stats_core.generate_statistics(train, "train")
    schema = schema_core.infer_schema(train_stats)
    assert next(f for f in schema.feature if f.name == "n").HasField("bool_domain")
    anomalies = validate_split(train_stats, stats_core.generate_statistics(rare, "eval"))
    info = anomalies.anomaly_info["n"]
    assert info.severity == WARNING and info.reason[0].type == anomalies_pb2.AnomalyInfo.BOOL_TYPE_BIG_INT
    assert "about 1 of 1228 values are outside" in info.description
    assert errors(validate_split(train_stats, stats_core.generate_statistics(common, "eval"))) == {"n"}
    assert errors(validate_core.validate(stats_core.generate_statistics(rare, "eval"), schema)) == {"n"}
