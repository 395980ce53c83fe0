"""Sharded statistics: plan, per-shard accumulators in the wire format, merge == one pass."""

import math
import struct

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from kfpc.components import artifacts
from kfpc.components.schema import core as schema_core
from kfpc.components.statistics import core, shards, wire
from kfpc.components.validate import core as validate_core

ROWS = 12_000
NUMERIC = ("age", "income", "ts", "flag")


def _table(rows: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    income = rng.lognormal(10, 1, rows)
    income[rng.random(rows) < 0.05] = np.nan
    income[:3] = [np.inf, -np.inf, 0.0]
    return pa.table({
        "age": pa.array(rng.integers(18, 90, rows), mask=rng.random(rows) < 0.1),
        "income": income,
        # large values with a small spread: variance from sums of squares would lose every digit here
        "ts": pa.array(1_700_000_000_000_000 + rng.integers(0, 1000, rows)).cast(pa.timestamp("us")),
        "flag": rng.random(rows) < 0.3,
        "city": pa.array(rng.choice(["paris", "rome", "oslo", "lima", "kyiv"], rows, p=[.4, .3, .15, .1, .05]),
                         mask=rng.random(rows) < 0.02),
        "note": pa.array([f"n{v}" for v in rng.integers(0, 300, rows)]),
    })


def _uneven_files(table: pa.Table, count: int, folder, seed: int) -> None:
    """``count`` Parquet files of uneven sizes; file 1 has only nulls in ``age``, the last a city no other has."""
    rng = np.random.default_rng(seed)
    cuts = np.sort(rng.choice(np.arange(1, table.num_rows), count - 1, replace=False)) if count > 1 else []
    bounds = [0, *cuts, table.num_rows]
    for i in range(count):
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        if count > 1 and i == 1:
            part = part.set_column(0, "age", pa.nulls(part.num_rows, pa.int64()))
        if count > 1 and i == count - 1:
            city = part.column("city").to_pylist()
            city[0] = "reykjavik"
            part = part.set_column(4, "city", pa.array(city))
        pq.write_table(part, folder / f"part-{i:03d}.parquet", row_group_size=max(1, part.num_rows // 3))


def _run_shards(source, count: int, tmp_path, order=None) -> tuple:
    plan = shards.plan_shards(source, count)
    dirs = []
    for shard in plan:
        out = tmp_path / f"shard-{shard['index']}"
        shards.shard_statistics(shard, out, threads=1)
        dirs.append(out)
    if order is not None:
        dirs = [dirs[i] for i in order]
    shards.merge_statistics(dirs, tmp_path / "merged", split="train")
    return plan, artifacts.read_statistics(tmp_path / "merged", "train").datasets[0]


def _true_rank_error(values: np.ndarray, value: float, fraction: float) -> float:
    """Distance (fraction of n) from ``fraction`` to the rank interval that ``value`` occupies in the data."""
    low = np.searchsorted(values, value, side="left") / values.size
    high = np.searchsorted(values, value, side="right") / values.size
    return 0.0 if low <= fraction <= high else min(abs(fraction - low), abs(fraction - high))


def _assert_merged_exactly(one, merged, table: pa.Table) -> None:
    assert merged.num_examples == one.num_examples == table.num_rows
    assert [f.path.step[0] for f in merged.features] == [f.path.step[0] for f in one.features]
    for a, b in zip(one.features, merged.features, strict=True):
        name = a.path.step[0]
        assert a.type == b.type, name
        if a.HasField("num_stats"):
            sa, sb = a.num_stats, b.num_stats
            assert sa.common_stats.num_non_missing == sb.common_stats.num_non_missing, name
            assert sa.common_stats.num_missing == sb.common_stats.num_missing, name
            assert (sa.min, sa.max, sa.num_zeros) == (sb.min, sb.max, sb.num_zeros), name
            assert sa.mean == pytest.approx(sb.mean, rel=1e-12, abs=0), name
            assert sa.std_dev == pytest.approx(sb.std_dev, rel=1e-12, abs=0), name
            custom_a = {c.name: c.num for c in a.custom_stats}
            custom_b = {c.name: c.num for c in b.custom_stats}
            for key in ("num_nan", "num_pos_inf", "num_neg_inf"):
                assert custom_a.get(key) == custom_b.get(key), (name, key)
            bound = custom_b.get(core.CUSTOM_QUANTILE_RANK_ERROR, 0.0)
            column = table.column(name)
            if pa.types.is_timestamp(column.type):
                column = column.cast(pa.int64())
            values = np.sort(column.drop_null().to_numpy(zero_copy_only=False).astype(np.float64))
            values = values[np.isfinite(values)]
            assert _true_rank_error(values, sb.median, 0.5) <= bound + 1e-12, name
            quantiles = next(h for h in sb.histograms if h.type == h.QUANTILES)
            for i, bucket in enumerate(quantiles.buckets[1:], start=1):
                assert _true_rank_error(values, bucket.low_value, i / 10) <= bound + 1e-12, (name, i)
        else:
            sa, sb = a.string_stats, b.string_stats
            assert sa.common_stats == sb.common_stats, name
            assert sa.unique == sb.unique, name
            assert list(sa.top_values) == list(sb.top_values), name
            assert sa.rank_histogram == sb.rank_histogram, name
            assert sa.avg_length == pytest.approx(sb.avg_length, rel=1e-15), name
            assert list(a.custom_stats) == list(b.custom_stats), name


@pytest.fixture(scope="module")
def table():
    return _table(ROWS)


@pytest.mark.parametrize("count", range(1, 9))
def test_uneven_shards_merge_equal_one_pass(count, table, tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    _uneven_files(table, count, folder, seed=count)
    whole = pa.concat_tables([pq.read_table(p) for p in sorted(folder.glob("*.parquet"))])
    pq.write_table(whole, tmp_path / "whole.parquet")
    one = core.generate_statistics(str(tmp_path / "whole.parquet"), name="train", threads=1)
    plan, merged = _run_shards(str(folder), count, tmp_path)
    assert len(plan) == count and sum(s["rows"] for s in plan) == ROWS
    _assert_merged_exactly(one, merged, whole)
    if count > 1:  # the category of one shard only is counted
        city = next(f for f in merged.features if f.path.step[0] == "city")
        assert {v.value: v.frequency for v in city.string_stats.top_values}["reykjavik"] == 1
    # identical anomalies against a schema inferred from the one pass, and for drift
    schema = schema_core.infer_schema(one)
    previous = core.generate_statistics(_table(4000, seed=99), name="train", threads=1)
    expected = validate_core.validate(one, schema, previous=previous)
    actual = validate_core.validate(merged, schema, previous=previous)
    assert validate_core.anomaly_lines(actual, warnings=True) == validate_core.anomaly_lines(expected, warnings=True)


def test_row_group_ranges_of_one_file_and_order_independence(table, tmp_path):
    pq.write_table(table, tmp_path / "big.parquet", row_group_size=700)
    plan = shards.plan_shards(str(tmp_path / "big.parquet"), 5)
    ranges = [part["row_groups"] for s in plan for part in s["parts"]]
    assert ranges[0][0] == 0 and ranges[-1][1] == pq.ParquetFile(tmp_path / "big.parquet").metadata.num_row_groups
    assert all(a[1] == b[0] for a, b in zip(ranges[:-1], ranges[1:], strict=True))  # contiguous, no gap, no overlap
    one = core.generate_statistics(str(tmp_path / "big.parquet"), name="train", threads=2)
    _, forward = _run_shards(str(tmp_path / "big.parquet"), 5, tmp_path / "a")
    _, backward = _run_shards(str(tmp_path / "big.parquet"), 5, tmp_path / "b", order=[4, 2, 0, 3, 1])
    _assert_merged_exactly(one, forward, table)
    assert forward == backward  # the merge sorts shards by index: the order of the inputs does not matter


def test_combine_moments_order_independent_and_compensated():
    rng = np.random.default_rng(3)
    values = 1e9 + rng.normal(0, 1e-3, 100_000)
    parts = []
    for chunk in np.array_split(values, 37):
        parts.append((chunk.size, float(chunk.mean()), float(((chunk - chunk.mean()) ** 2).sum())))
    results = {core.combine_moments([parts[i] for i in rng.permutation(len(parts))]) for _ in range(5)}
    assert len(results) == 1
    count, mean, mean_lo, m2 = results.pop()
    exact_mean = math.fsum(values) / values.size
    assert count == values.size
    assert mean + mean_lo == pytest.approx(exact_mean, rel=1e-15)
    assert m2 / count == pytest.approx(np.var(values - 1e9), rel=1e-9)


def test_csv_shards_with_a_null_column_in_one_file(tmp_path):
    table = _table(3000, seed=5).drop_columns(["ts"])
    folder = tmp_path / "csv"
    folder.mkdir()
    for i, (start, length) in enumerate([(0, 500), (500, 1800), (2300, 700)]):
        part = table.slice(start, length)
        if i == 2:
            part = part.set_column(0, "age", pa.nulls(length, pa.int64()))
        pcsv.write_csv(part, folder / f"day-{i}.csv")
    plan = shards.plan_shards(str(folder / "day-"), 3)  # a prefix
    assert [s["format"] for s in plan] == ["csv"] * 3
    _, merged = _run_shards(str(folder / "day-"), 3, tmp_path)
    whole = pa.concat_tables(
        [pcsv.read_csv(p, convert_options=pcsv.ConvertOptions(column_types=table.schema.field("age") and {
            "age": pa.int64()})) for p in sorted(folder.glob("*.csv"))], promote_options="default")
    one = core.generate_statistics(whole, name="train", threads=1)
    ages = {f.path.step[0]: f for f in merged.features}["age"].num_stats
    expected = {f.path.step[0]: f for f in one.features}["age"].num_stats
    assert ages.common_stats.num_missing == expected.common_stats.num_missing
    assert ages.mean == pytest.approx(expected.mean, rel=1e-12)


def test_sampled_batches_merge_within_the_bound_and_keep_their_variance(tmp_path):
    # batches of 65,536 values and more are summarized through a sample: shards and one pass then retain
    # different items, and both must stay within the bound they report (which includes the sampling error)
    table = _table(300_000, seed=5)
    folder = tmp_path / "data"
    folder.mkdir()
    for i, (start, stop) in enumerate([(0, 80_000), (80_000, 300_000)]):
        pq.write_table(table.slice(start, stop - start), folder / f"part-{i}.parquet", row_group_size=stop - start)
    pq.write_table(table, tmp_path / "whole.parquet", row_group_size=300_000)
    one = core.generate_statistics(str(tmp_path / "whole.parquet"), name="train", threads=1)
    _, merged = _run_shards(str(folder), 2, tmp_path)
    _assert_merged_exactly(one, merged, table)
    _assert_merged_exactly(merged, one, table)  # the one pass's own quantiles against the data too
    bounds = {f.path.step[0]: {c.name: c.num for c in f.custom_stats}.get(core.CUSTOM_QUANTILE_RANK_ERROR)
              for f in merged.features if f.HasField("num_stats")}
    # income's batches were sampled (its bound carries the sampling term); the narrow integers were counted
    assert bounds["income"] > core.QuantileSketch(core.DEFAULT_QUANTILE_K).SAMPLING_SIGMAS * 0.5 * (8 / 300_000) ** 0.5
    accumulator = core.accumulate(str(tmp_path / "whole.parquet"), threads=1)
    assert accumulator.features["income"].sketch.variance > 0
    back, _ = wire.loads(wire.dumps(accumulator, meta={}))
    assert back.features["income"].sketch.variance == accumulator.features["income"].sketch.variance
    assert back.to_proto("x") == accumulator.to_proto("x")


def test_a_version_1_accumulator_still_reads(table, tmp_path):
    import json

    data = wire.dumps(core.accumulate(table, threads=1), meta={})
    length = struct.unpack_from("<Q", data, 12)[0]
    header = json.loads(data[20:20 + length])
    for feature in header["features"]:
        if "quantiles" in feature:
            del feature["quantiles"]["variance"]
    text = json.dumps(header).encode()
    old = wire.MAGIC + struct.pack("<IQ", 1, len(text)) + text + data[20 + length:]
    back, _ = wire.loads(old)
    assert all(f.sketch.variance == 0 for f in back.features.values() if hasattr(f, "sketch"))
    assert back.to_proto("x") == core.accumulate(table, threads=1).to_proto("x")


def test_wire_format_round_trip_and_version_mismatch(table, tmp_path):
    accumulator = core.accumulate(table, threads=1, top_k=3)  # past top_k: Misra-Gries + HyperLogLog survive too
    data = wire.dumps(accumulator, meta={"shard": {"index": 0, "count": 1}})
    assert data[:8] == wire.MAGIC and struct.unpack_from("<I", data, 8)[0] == wire.WIRE_VERSION
    back, meta = wire.loads(data)
    assert meta["shard"]["index"] == 0
    assert back.to_proto("x") == accumulator.to_proto("x")
    future = data[:8] + struct.pack("<I", wire.WIRE_VERSION + 1) + data[12:]
    with pytest.raises(wire.WireFormatError, match=r"version 3 is not supported .*reads version\(s\) 1, 2"):
        wire.loads(future, "shard-3/accumulator.kfpcacc")
    with pytest.raises(wire.WireFormatError, match="not a kfpc statistics accumulator"):
        wire.loads(b"\x80\x04pickle-like bytes here", "x")
    with pytest.raises(wire.WireFormatError, match="damaged"):
        wire.loads(data[: len(data) // 2], "x")


def test_merge_refuses_missing_or_repeated_shards(table, tmp_path):
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=2000)
    plan = shards.plan_shards(str(tmp_path / "t.parquet"), 3)
    dirs = []
    for shard in plan:
        shards.shard_statistics(shard, tmp_path / f"s{shard['index']}", threads=1)
        dirs.append(tmp_path / f"s{shard['index']}")
    with pytest.raises(core.StatisticsError, match=r"1 of 3 planned shards missing: \[1\]"):
        shards.merge_statistics([dirs[0], dirs[2]], tmp_path / "out")
    with pytest.raises(core.StatisticsError, match="shard 0 given twice"):
        shards.merge_statistics([dirs[0], dirs[0], dirs[1], dirs[2]], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_plan_errors_name_the_source(tmp_path):
    with pytest.raises(core.StatisticsError, match="no Parquet or CSV files"):
        shards.plan_shards(str(tmp_path / "nothing-*.parquet"), 2)
    (tmp_path / "a.parquet").write_bytes(b"not parquet")
    with pytest.raises(core.StatisticsError, match="a.parquet: not a readable Parquet file"):
        shards.plan_shards(str(tmp_path / "a.parquet"), 2)
    with pytest.raises(core.StatisticsError, match="num_shards must be at least 1"):
        shards.plan_shards(str(tmp_path / "a.parquet"), 0)
