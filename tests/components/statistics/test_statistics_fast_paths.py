"""The statistics' faster paths (issue 20, item 4) give what the straightforward computation gives.

The string hash is part of the accumulator wire format (HyperLogLog registers of shards are merged), so its
values are pinned; the counted integer path must give the sketch of the sorted values and exact moments; the
sorted-hash HyperLogLog update must equal the scattered one.
"""

import math
from fractions import Fraction

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfpc.components.statistics import core
from kfpc.components.statistics.sketches import (
    HyperLogLog,
    QuantileSketch,
    _distinct_counts,
    _positions_in,
    hash_binary,
)

# hash_binary of these values as computed before the vectorized rewrite (wire format version 1)
PINNED = {"": 16294208416658607535, "a": 7208222664812530033, "abcdefgh": 16973578886672536873,
          "abcdefghi": 6593792145788450349, "c123456789": 2973397875819340741, "x" * 17: 16440987211491870090,
          "héllo wörld, a longer value of 40 bytes!": 7367630082505883543}


def test_string_hash_values_are_pinned_whatever_the_layout():
    values = list(PINNED)
    expected = list(PINNED.values())
    assert [int(h) for h in hash_binary(pa.array(values))] == expected
    # with nulls between them, sliced, large offsets: the same hash per value
    with_nulls = pa.array(["zz", None] + [v for value in values for v in (value, None)]).slice(2)
    assert [int(h) for h in hash_binary(with_nulls)] == expected
    slots = hash_binary(with_nulls, drop_nulls=False)
    assert [int(h) for h in slots[::2]] == expected
    assert [int(h) for h in hash_binary(pa.array(values, pa.large_string()))] == expected
    # mostly long values (dense rounds) and mostly short ones (sparse rounds) hash the same value alike
    long_first = ["y" * 40] * 50 + values
    short_first = ["a"] * 50 + values
    assert [int(h) for h in hash_binary(pa.array(long_first))[50:]] == expected
    assert [int(h) for h in hash_binary(pa.array(short_first))[50:]] == expected


def test_counted_integers_give_the_sorted_path_sketch_and_exact_moments():
    rng = np.random.default_rng(3)
    values = rng.integers(-40, 60, 20_000)
    values[::7] = 0
    nulls = rng.random(values.size) < 0.1
    feature = core._FeatureAccumulator("x", core.FeatureType.INT, pa.int64(), 100, 64)
    feature.add(pa.array(values, mask=nulls))
    present = np.sort(values[~nulls]).astype(np.float64)
    assert feature.num_non_missing == present.size
    # the sorted values through the sketch: the very same retained items
    reference = QuantileSketch(64)
    reference.add_sorted(present)
    assert [level.tolist() for level in feature.sketch.levels] == [level.tolist() for level in reference.levels]
    exact_mean = Fraction(int(present.sum()), present.size)
    assert feature.mean + feature.mean_lo == float(exact_mean)
    exact_m2 = sum((Fraction(int(v)) - exact_mean) ** 2 for v in present)
    assert math.isclose(feature.m2, float(exact_m2), rel_tol=1e-15)
    assert feature.num_zeros == int((present == 0).sum())
    assert (feature.min, feature.max) == (present[0], present[-1])


@pytest.mark.parametrize("share_true, share_null", [(0.3, 0.1), (1.0, 0.05), (0.0, 0.0), (0.0005, 0.2), (0.5, 0.999)])
@pytest.mark.parametrize("size", [3_000, 20_000])
def test_booleans_counted_from_their_true_bits_equal_the_int64_cast(share_true, share_null, size):
    rng = np.random.default_rng(5)
    values = pa.array(rng.random(size) < share_true, mask=rng.random(size) < share_null, type=pa.bool_())
    batches = [values.slice(0, size // 2), values.slice(size // 2)]  # a slice at a bit offset too
    as_bool = core._FeatureAccumulator("b", core.FeatureType.INT, pa.bool_(), 100, 64)
    as_int = core._FeatureAccumulator("b", core.FeatureType.INT, pa.int64(), 100, 64)
    for batch in batches:
        as_bool.add(batch)
        as_int.add(batch.cast(pa.int64()))
    assert as_bool.to_proto(size, 100) == as_int.to_proto(size, 100)
    present = values.drop_null().to_numpy(zero_copy_only=False)
    assert as_bool.num_non_missing == present.size
    assert as_bool.num_zeros == int((~present).sum())
    if present.size:
        assert (as_bool.min, as_bool.max) == (float(present.min()), float(present.max()))
        # (two batches: their exact means combined in floating point)
        assert math.isclose(as_bool.mean, float(Fraction(int(present.sum()), present.size)), rel_tol=1e-15)


def test_filtered_hyperloglog_update_equals_the_scattered_maximum():
    hashes = hash_binary(pa.array([f"v{i % 30_000}" for i in range(100_000)]))
    filtered = HyperLogLog()
    for start in range(0, hashes.size, 7_000):  # later batches mostly raise no register
        filtered.add_hashes(hashes[start:start + 7_000])
    p = filtered.precision
    naive = np.zeros(1 << p, dtype=np.uint8)
    for h in hashes.tolist():
        rest = h & ((1 << (64 - p)) - 1)
        naive[h >> (64 - p)] = max(naive[h >> (64 - p)], 64 - p + 1 - rest.bit_length())
    assert np.array_equal(filtered.registers, naive)


@pytest.mark.parametrize("distinct", [1, 50, 5_000, 60_000, 200_000])
def test_distinct_counts_equal_a_full_sort(distinct):
    rng = np.random.default_rng(distinct)
    hashes = rng.integers(0, distinct, 200_000).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    values, counts = _distinct_counts(hashes)
    expected_values, expected_counts = np.unique(hashes, return_counts=True)
    order = np.argsort(values)
    assert np.array_equal(values[order], expected_values)
    assert np.array_equal(counts[order], expected_counts)


def test_positions_in_finds_exactly_the_table_members():
    rng = np.random.default_rng(2)
    table = np.unique(rng.integers(0, 2**63, 10_000).astype(np.uint64))
    rng.shuffle(table)
    # members, values sharing a member's low bits (the bitmap's false hits), and others
    lookalikes = table[:500] ^ np.uint64(1 << 40)
    queries = np.concatenate([table[::3], lookalikes, rng.integers(0, 2**63, 50_000).astype(np.uint64)])
    where = _positions_in(table, queries)
    index = {int(h): i for i, h in enumerate(table.tolist())}
    assert where.tolist() == [index.get(int(q), -1) for q in queries.tolist()]
    assert _positions_in(table[:0], queries).tolist() == [-1] * queries.size


def test_dictionary_codes_under_null_slots_are_not_counted(tmp_path):
    # Arrow leaves the codes of null slots unspecified: whatever they hold, only valid slots count
    dictionary = pa.array(["a", "b", "c"])
    indices = pa.Array.from_buffers(pa.int32(), 6, [pa.py_buffer(np.packbits(
        np.array([1, 0, 1, 1, 0, 1], dtype=bool), bitorder="little").tobytes()),
        pa.py_buffer(np.array([0, 2, 1, 1, 7, 2], dtype=np.int32).tobytes())], null_count=2)
    array = pa.DictionaryArray.from_arrays(indices, dictionary)
    assert list(core._code_counts(array.indices, 3)) == [1, 2, 1]
    stats = core.generate_statistics(pa.table({"s": array}))
    top = {v.value: v.frequency for v in stats.features[0].string_stats.top_values}
    assert top == {"a": 1, "b": 2, "c": 1}
    path = tmp_path / "s.parquet"
    pq.write_table(pa.table({"s": array}), path)
    assert core.generate_statistics(str(path)).features[0].string_stats == stats.features[0].string_stats
