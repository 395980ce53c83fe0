"""The statistics' fast paths give the same answers as the straightforward ones.

Dictionary reads of Parquet strings, plain reads (from the start or from a later row group) of near-unique
columns with hash-based Misra-Gries counting, the column-parallel workers and the word-wise string hash are
all optimizations: each test here compares them with the plain computation on real files.
"""

import subprocess
import sys
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import synthetic

from kfpc.components.statistics import core as stats_core
from kfpc.components.statistics.sketches import FrequencySketch, HyperLogLog, from_numpy, hash_binary, to_numpy


def by_name(stats):
    return {f.path.step[0]: f for f in stats.features}


def test_hash_depends_on_every_byte_and_the_length():
    values = ["", "a", "a\x00", "abcdefgh", "abcdefgh\x00", "abcdefghi", "abcdefgi", "x" * 1000, "x" * 999 + "y"]
    hashes = hash_binary(pa.array(values))
    assert len(set(hashes.tolist())) == len(values)
    # the same values at other offsets of another buffer (sliced, chunked, large_string) hash the same
    shifted = pa.array(["zzz"] + values).slice(1)
    assert list(hash_binary(shifted)) == list(hashes)
    assert list(hash_binary(pa.array(values, type=pa.large_string()))) == list(hashes)
    assert list(hash_binary(pa.chunked_array([values[:4], values[4:]]))) == list(hashes)
    assert list(hash_binary(pa.array([v.encode() for v in values], type=pa.binary()))) == list(hashes)


def test_hyperloglog_on_the_word_hash_stays_within_its_error():
    counter = HyperLogLog()
    counter.add_hashes(hash_binary(pa.array([f"c{i}" for i in range(300_000)])))
    assert abs(counter.estimate() - 300_000) / 300_000 < 0.03


def test_hash_based_counting_equals_arrow_counting():
    rng = np.random.default_rng(11)
    for exponent in (1.2, 1.6):
        by_counts, by_values = FrequencySketch(capacity=300), FrequencySketch(capacity=300)
        for _ in range(6):
            batch = pa.array(np.char.add("v", np.minimum(rng.zipf(exponent, 20_000), 9_000).astype(str)))
            counted = pc.value_counts(batch)
            by_counts.add_counts(counted.field("values"), to_numpy(counted.field("counts")))
            by_values.add_values(batch)
        assert not by_values.exact
        assert by_values.error == by_counts.error and by_values.total == by_counts.total
        assert by_values.top(300)[0] == by_counts.top(300)[0]
        assert list(by_values.top(300)[1]) == list(by_counts.top(300)[1])
        assert by_values.unique() == by_counts.unique()


def test_numpy_arrow_conversions_round_trip():
    ints = np.array([3, -1, 7], dtype=np.int64)
    assert from_numpy(ints).to_pylist() == [3, -1, 7]
    mask = np.array([True, False, True, True, False, False, False, False, True])
    assert from_numpy(mask).to_pylist() == mask.tolist()
    assert list(to_numpy(pa.array([1.5, 2.5, 3.5]).slice(1))) == [2.5, 3.5]
    with pytest.raises(ValueError):
        to_numpy(pa.array([1, None]))


def _near_unique_file(path, rows=60_000, row_group=8_000):
    rng = np.random.default_rng(4)
    unique = np.char.add("id-", np.arange(rows).astype(str))
    heavy = rng.random(rows) < 0.05  # a few values repeated often enough to be top values under Misra-Gries
    comment = np.where(heavy, np.char.add("hot-", rng.integers(0, 5, rows).astype(str)), unique)
    table = pa.table({
        "comment": pa.array(comment, mask=rng.random(rows) < 0.2),
        "color": pa.array(np.array(["red", "green", "blue"])[rng.integers(0, 3, rows)]),
        "x": pa.array(rng.normal(size=rows)),
    })
    pq.write_table(table, path, row_group_size=row_group)
    return table


def test_near_unique_column_is_read_plain_from_the_start_and_keeps_its_statistics(tmp_path, monkeypatch):
    monkeypatch.setattr(stats_core, "_MAX_BATCH_ROWS", 8_000)  # one batch per row group
    path = tmp_path / "near_unique.parquet"
    table = _near_unique_file(path)
    # the metadata leaves only the string column without a small dictionary to read plain at first
    parquet = pq.ParquetFile(path)
    assert stats_core._plain_candidates(parquet.metadata, parquet.schema_arrow, ["comment", "color", "x"], 0,
                                        {"comment", "color"}) == ["comment"]
    plain = [b.schema.field("comment").type for b in stats_core._parquet_batches(
        str(path), ["comment"], plain=lambda: frozenset({"comment"}))]
    assert len(plain) == 8 and all(t == pa.string() for t in plain)
    first = next(stats_core._parquet_batches(str(path), ["comment", "color"]))
    assert pa.types.is_dictionary(first.schema.field("comment").type)
    accumulator = stats_core.accumulate(str(path), top_k=500, threads=1)
    assert accumulator.features["comment"].near_unique and not accumulator.features["color"].near_unique
    stats = by_name(accumulator.to_proto())
    comment = table.column("comment").drop_null()
    string_stats = stats["comment"].string_stats
    assert string_stats.common_stats.num_non_missing == len(comment)
    assert string_stats.avg_length == pytest.approx(pc.sum(pc.utf8_length(comment)).as_py() / len(comment))
    truth = {row["values"]: row["counts"] for row in pc.value_counts(comment).to_pylist()}
    assert abs(string_stats.unique - len(truth)) / len(truth) < 0.03
    top = [(v.value, v.frequency) for v in string_stats.top_values[:5]]
    error = next(c.num for c in stats["comment"].custom_stats if c.name == stats_core.CUSTOM_TOP_K_ERROR)
    assert sorted(v for v, _ in top) == [f"hot-{i}" for i in range(5)]
    for value, frequency in top:
        assert truth[value] - error <= frequency <= truth[value]
    # the low-cardinality column stays exact (read as a dictionary all along)
    color = stats["color"].string_stats
    assert {v.value: v.frequency for v in color.top_values} == {
        row["values"]: row["counts"] for row in pc.value_counts(table.column("color")).to_pylist()}


def _record_read_types(monkeypatch, column: str) -> list:
    """The Arrow type of ``column`` in each batch the statistics read from Parquet, in order (filled as they read)."""
    seen = []
    original = stats_core._parquet_batches

    def recording(*args, **kwargs):
        for batch in original(*args, **kwargs):
            seen.append(batch.schema.field(column).type)
            yield batch

    monkeypatch.setattr(stats_core, "_parquet_batches", recording)
    return seen


def test_column_that_becomes_mostly_distinct_later_switches_to_plain_reads(tmp_path, monkeypatch):
    monkeypatch.setattr(stats_core, "_MAX_BATCH_ROWS", 8_000)
    rows = 64_000
    rng = np.random.default_rng(8)
    # the first row group (8,000 rows) holds 3 values; the rest is mostly distinct
    values = np.where(np.arange(rows) < 8_000, np.array(["a", "b", "c"])[rng.integers(0, 3, rows)],
                      np.char.add("id-", rng.integers(0, 10**9, rows).astype(str)))
    path = tmp_path / "later.parquet"
    pq.write_table(pa.table({"s": values}), path, row_group_size=8_000)
    parquet = pq.ParquetFile(path)
    assert stats_core._plain_candidates(parquet.metadata, parquet.schema_arrow, ["s"], 0, {"s"}) == []
    seen = _record_read_types(monkeypatch, "s")
    stats = by_name(stats_core.generate_statistics(str(path), top_k=1_000, threads=1))
    assert pa.types.is_dictionary(seen[0]) and seen[-1] == pa.string()
    string_stats = stats["s"].string_stats
    assert string_stats.common_stats.num_non_missing == rows
    assert abs(string_stats.unique - len(set(values.tolist()))) / len(set(values.tolist())) < 0.03
    assert {v.value for v in string_stats.top_values[:3]} == {"a", "b", "c"}


def test_hash_first_counting_stays_exact_when_the_values_are_few():
    sketch = FrequencySketch(capacity=100)
    sketch.add_values(pa.array(["x", "y"] * 100), mostly_distinct=True)  # 200 values, 2 distinct
    assert sketch.exact and sorted(sketch.top(5)[0]) == ["x", "y"] and list(sketch.top(5)[1]) == [100, 100]
    sketch.add_values(pa.array([f"v{i}" for i in range(500)]), mostly_distinct=True)
    assert not sketch.exact and sketch.total == 700 and sketch.top(2)[0] == ["y", "x"]


def test_threads_change_nothing(tmp_path):
    path = synthetic.write_parquet(tmp_path / "data.parquet", 40_000, seed=3, row_group_rows=6_000)
    single = stats_core.generate_statistics(path, "x", top_k=2_000, threads=1)
    parallel = stats_core.generate_statistics(path, "x", top_k=2_000, threads=3)
    assert single == parallel


def test_wide_table_is_split_into_column_groups_and_threads_change_nothing(tmp_path):
    rng = np.random.default_rng(6)
    rows = 5_000
    columns = {f"f{i:03d}": pa.array(rng.normal(i, 1.0, rows)) for i in range(150)}
    columns.update({f"s{i:02d}": pa.array(np.array(["u", "v", "w"])[rng.integers(0, 3, rows)]) for i in range(30)})
    table = pa.table(columns)
    path = tmp_path / "wide.parquet"
    pq.write_table(table, path, row_group_size=2_000)
    tasks = stats_core._parquet_tasks(pq.ParquetFile(path), 2)
    assert 1 < len(tasks) < 180 and sorted(c for task in tasks for c in task) == sorted(table.column_names)
    single = stats_core.generate_statistics(str(path), threads=1)
    assert single == stats_core.generate_statistics(str(path), threads=2)
    assert single.num_examples == rows and [f.path.step[0] for f in single.features] == table.column_names
    in_memory = by_name(stats_core.generate_statistics(table))
    for feature in single.features:
        other = in_memory[feature.path.step[0]]
        stats = feature.num_stats if feature.HasField("num_stats") else feature.string_stats
        theirs = other.num_stats if other.HasField("num_stats") else other.string_stats
        assert stats.common_stats == theirs.common_stats


def test_parquet_file_and_in_memory_table_agree_where_both_are_exact(tmp_path):
    path = synthetic.write_parquet(tmp_path / "data.parquet", 30_000, seed=5, row_group_rows=4_000)
    from_file = by_name(stats_core.generate_statistics(path, top_k=50_000))
    from_table = by_name(stats_core.generate_statistics(pq.read_table(path), top_k=50_000))
    assert from_file.keys() == from_table.keys()
    for name, feature in from_file.items():
        other = from_table[name]
        if feature.HasField("string_stats"):
            assert feature == other, name
            continue
        # numeric: exact counts and extremes; the sketches saw different batch boundaries
        mine, theirs = feature.num_stats, other.num_stats
        assert mine.common_stats == theirs.common_stats, name
        assert (mine.min, mine.max, mine.num_zeros) == (theirs.min, theirs.max, theirs.num_zeros), name
        assert mine.mean == pytest.approx(theirs.mean, rel=1e-12) and mine.std_dev == pytest.approx(
            theirs.std_dev, rel=1e-9), name


def test_tiny_row_groups_are_read_in_large_batches(tmp_path):
    path = tmp_path / "tiny.parquet"
    pq.write_table(synthetic.make_table(20_000, seed=1), path, row_group_size=500)
    batches = list(stats_core._parquet_batches(str(path)))
    assert sum(b.num_rows for b in batches) == 20_000 and len(batches) <= 2


def test_worker_threads_report_a_truncated_file(tmp_path):
    path = synthetic.write_parquet(tmp_path / "data.parquet", 20_000, seed=1, row_group_rows=2_000)
    data = open(path, "rb").read()
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(data[: len(data) // 2] + data[-2000:])
    with pytest.raises(stats_core.StatisticsError, match="broken.parquet"):
        stats_core.generate_statistics(str(broken), threads=2)


def test_statistics_from_parquet_do_not_import_pandas(tmp_path):
    path = synthetic.write_parquet(tmp_path / "data.parquet", 30_000, seed=2, row_group_rows=10_000)
    code = ("import sys; from kfpc.components.statistics import core; "
            f"core.generate_statistics({str(path)!r}, top_k=100); print('pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_damaged_page_behind_an_intact_footer_names_the_file(tmp_path):
    path = tmp_path / "damaged.parquet"
    pq.write_table(synthetic.make_table(20_000, seed=4), path, row_group_size=5_000, compression="snappy")
    data = bytearray(path.read_bytes())
    footer = pq.ParquetFile(path).metadata
    # the first pages of the near-unique 'comment' column (the probe reads them) and of 'city', mid-file
    for group, column in ((0, 11), (1, 9)):
        chunk = footer.row_group(group).column(column)
        start = chunk.dictionary_page_offset if chunk.has_dictionary_page else chunk.data_page_offset
        data[start + 20: start + 420] = bytes(400)
    damaged = tmp_path / "damaged2.parquet"
    damaged.write_bytes(bytes(data))
    for threads in (1, 2):
        with pytest.raises(stats_core.StatisticsError, match="damaged2.parquet"):
            stats_core.generate_statistics(str(damaged), threads=threads)


@pytest.mark.parametrize("failing", ["c00", "c05"])  # the first task (the calling thread's) and a later one
def test_a_failing_column_stops_the_other_workers_after_their_task(tmp_path, monkeypatch, failing):
    path = tmp_path / "wide.parquet"
    rng = np.random.default_rng(2)
    pq.write_table(pa.table({f"c{i:02d}": rng.normal(size=30_000) for i in range(12)}), path,
                   row_group_size=10_000)
    entered, original = [], stats_core._FeatureAccumulator.add

    def add(self, array):
        entered.append(self.name)
        if self.name == failing:
            raise pa.ArrowInvalid("bad page")
        original(self, array)

    monkeypatch.setattr(stats_core._FeatureAccumulator, "add", add)
    with pytest.raises(stats_core.StatisticsError, match="wide.parquet.*bad page"):
        stats_core.generate_statistics(str(path), threads=2)
    columns = set(entered)
    assert failing in columns and len(columns) < 12  # no worker went on to the remaining columns
    # every worker had finished when the error was raised: nothing is added afterwards
    seen = len(entered)
    time.sleep(0.3)
    assert len(entered) == seen


def test_column_with_a_large_dictionary_of_repeated_values_goes_back_to_dictionary_reads(tmp_path, monkeypatch):
    # long values, 1,000 distinct in 40,000 rows: a dictionary page too big to call small, but not mostly distinct
    monkeypatch.setattr(stats_core, "_MAX_BATCH_ROWS", 8_000)
    rows = 40_000
    rng = np.random.default_rng(12)
    pool = np.char.add("a-rather-long-category-name-", np.arange(1_000).astype(str))
    values = pa.array(pool[rng.integers(0, pool.size, rows)], mask=rng.random(rows) < 0.1)
    path = tmp_path / "repeated.parquet"
    pq.write_table(pa.table({"s": values}), path, row_group_size=8_000)
    parquet = pq.ParquetFile(path)
    assert stats_core._plain_candidates(parquet.metadata, parquet.schema_arrow, ["s"], 0, {"s"}) == ["s"]
    seen = _record_read_types(monkeypatch, "s")
    accumulator = stats_core.accumulate(str(path), top_k=5_000, threads=1)
    # the first batch plain decides: 1,000 distinct in 8,000 rows is not mostly distinct, the rest is read as codes
    assert seen[0] == pa.string() and all(pa.types.is_dictionary(t) for t in seen[1:]) and len(seen) == 5
    assert accumulator.features["s"].near_unique is False
    stats = by_name(accumulator.to_proto())["s"].string_stats
    truth = {row["values"]: row["counts"] for row in pc.value_counts(values.drop_null()).to_pylist()}
    assert {v.value: v.frequency for v in stats.top_values} == truth and stats.unique == len(truth)
