"""The compiled kernels (the C extension) compute what the NumPy path computes: the same hashes, counts, sketches.

Each test runs the same input through both paths: the compiled one (``kernels.get()``) and the NumPy one
(the kernels switched off for the test), and compares. Inputs are long enough (>= kernels.MIN_VALUES) to
take the compiled path, and cover what the kernels handle themselves: nulls (validity bitmaps at a bit
offset), sliced arrays, values ending at the data buffer's last bytes, NaN, infinities, -0.0.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from kfpc.components.statistics import core, kernels, sketches

N = 3 * kernels.MIN_MOMENTS_VALUES  # past the compiled paths' thresholds


@pytest.fixture
def numpy_path(monkeypatch):
    """Run the body with the kernels switched off (the NumPy path)."""
    def run(fn, *args, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr(kernels, "_loaded", None)
            assert kernels.get() is None
            return fn(*args, **kwargs)
    return run


def test_the_kernels_are_there():
    # the test environment (like the data image) has the extension built: the tests below compare two real paths
    compiled = kernels.get()
    assert compiled is not None
    assert kernels.for_size(kernels.MIN_VALUES - 1) is None and kernels.for_size(kernels.MIN_VALUES) is compiled
    assert kernels.for_size(kernels.MIN_MOMENTS_VALUES - 1, moments=True) is None
    assert kernels.for_size(kernels.MIN_MOMENTS_VALUES, moments=True) is compiled


def _strings(rng, n, null_rate=0.2, max_length=40):
    lengths = rng.integers(0, max_length + 1, n)
    alphabet = np.array(list("abcdefghijklmnopqrstuvwxyzé€0123456789 "))
    values = ["".join(rng.choice(alphabet, size=length)) for length in lengths]
    return pa.array(values, mask=rng.random(n) < null_rate)


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.binary(), pa.large_binary()])
def test_hashes_are_the_same_bits(numpy_path, kind):
    rng = np.random.default_rng(7)
    values = _strings(rng, N).cast(kind)
    for array in (values, values.slice(13, N - 100), values.slice(N - kernels.MIN_VALUES - 3)):
        for drop_nulls in (True, False):
            compiled = sketches.hash_binary(array, drop_nulls=drop_nulls)
            expected = numpy_path(sketches.hash_binary, array, drop_nulls=drop_nulls)
            assert compiled.dtype == np.uint64 and np.array_equal(compiled, expected), (kind, len(array), drop_nulls)


def test_hashes_of_values_at_the_end_of_the_buffer(numpy_path):
    # every length 0..24 as the last value (its word loads run into the buffer's last partial word)
    for last in range(25):
        values = pa.array(["x" * (i % 17) for i in range(N)] + ["y" * last])
        assert np.array_equal(sketches.hash_binary(values), numpy_path(sketches.hash_binary, values)), last


def test_distinct_counts_and_registers_match(numpy_path):
    rng = np.random.default_rng(3)
    hashes = sketches.hash_binary(pa.array(rng.integers(0, N // 3, N).astype(str)))
    unique, counts = sketches._distinct_counts(hashes)
    expected_unique, expected_counts = numpy_path(sketches._distinct_counts, hashes)
    order, expected_order = np.argsort(unique), np.argsort(expected_unique)
    assert np.array_equal(unique[order], expected_unique[expected_order])
    assert np.array_equal(counts[order], expected_counts[expected_order])
    assert counts.sum() == N
    # the index of each hash in a table of distinct ones (half of them absent)
    table = unique[: unique.size // 2]
    where = sketches._positions_in(table, hashes)
    assert np.array_equal(where, numpy_path(sketches._positions_in, table, hashes))
    assert (where >= 0).any() and (where < 0).any() and np.array_equal(table[where[where >= 0]], hashes[where >= 0])
    compiled, reference = sketches.HyperLogLog(), sketches.HyperLogLog()
    compiled.add_hashes(hashes)
    numpy_path(reference.add_hashes, hashes)
    assert np.array_equal(compiled.registers, reference.registers) and compiled.registers.any()


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string(), pa.binary()])
def test_string_counts_in_one_call_equal_the_numpy_steps(numpy_path, kind):
    # count_strings: the valid slots' distinct hashes, counts, first rows, number and bytes in one call
    rng = np.random.default_rng(9)
    values = pa.array(rng.integers(0, N // 4, N).astype(str), mask=rng.random(N) < 0.3).cast(kind)
    for array in (values, values.slice(11, N - 50), pa.array(rng.integers(0, 50, N).astype(str)).cast(kind)):
        offsets, data = sketches._offsets_and_data(array)
        bitmap = np.frombuffer(array.buffers()[0], dtype=np.uint8) if array.null_count else data[:0]
        unique, counts, first, present, value_bytes = kernels.get().count_strings(offsets, data, bitmap, array.offset)
        expected_unique, expected_counts, _ = numpy_path(sketches.FrequencySketch._hash_counts, array)
        order, expected_order = np.argsort(unique), np.argsort(expected_unique)
        assert np.array_equal(unique[order], expected_unique[expected_order])
        assert np.array_equal(counts[order], expected_counts[expected_order])
        assert present == len(array) - array.null_count == counts.sum()
        assert value_bytes == core._value_bytes(array)
        # each distinct value's first row holds it, and no earlier row does
        assert np.array_equal(sketches.hash_binary(array.take(pa.array(first))), unique)
        valid_rows = np.flatnonzero(sketches._validity(array))
        slot_hashes = sketches.hash_binary(array, drop_nulls=False)[valid_rows]
        _, first_index = np.unique(slot_hashes, return_index=True)
        assert np.array_equal(np.sort(valid_rows[first_index]), np.sort(first))


def test_radix_sort_sorts_like_numpy(numpy_path):
    rng = np.random.default_rng(11)
    cases = [rng.standard_normal(N) * 1e6, rng.integers(-5, 5, N).astype(float),
             np.concatenate([rng.standard_normal(N), [-0.0, 0.0, 5e-324, -5e-324, -1.7e308, 1.7e308]]),
             np.full(N, 2.5), np.arange(N, dtype=float)[::-1].copy()]
    for values in cases:
        before = values.copy()
        ordered = sketches._sort(values)
        assert np.array_equal(values, before)  # a copy: the input is left as it was
        assert np.array_equal(ordered, np.sort(values)) and np.all(ordered[1:] >= ordered[:-1])


def _table(rng, n):
    floats = rng.standard_normal(n) * 1e3
    floats[rng.random(n) < 0.01] = np.nan
    floats[rng.random(n) < 0.005] = np.inf
    floats[rng.random(n) < 0.005] = -np.inf
    floats[rng.random(n) < 0.02] = 0.0
    floats[rng.random(n) < 0.01] = -0.0
    return pa.table({
        "floats": pa.array(floats, mask=rng.random(n) < 0.05),
        "stamps": pa.array(1.7e9 + rng.random(n) * 100),
        "wide_ints": pa.array(rng.integers(-10**12, 10**12, n)),
        "narrow_ints": pa.array(rng.integers(-3, 40, n), mask=rng.random(n) < 0.1),
        "small_ints": pa.array(rng.integers(0, 2, n).astype(np.int8)),
        "category": pa.array(rng.choice(["a", "b", "c", "d"], n), mask=rng.random(n) < 0.1).dictionary_encode(),
        "text": _strings(rng, n, null_rate=0.3, max_length=12),
    })


def test_statistics_are_the_same_on_both_paths(numpy_path):
    table = _table(np.random.default_rng(5), N)
    sliced = table.slice(5, N - 10)  # bitmaps at a bit offset
    for data in (table, sliced):
        compiled = core.generate_statistics(data, threads=1)
        expected = numpy_path(core.generate_statistics, data, threads=1)
        for feature, reference in zip(compiled.features, expected.features, strict=True):
            a, b = feature, reference
            if a.HasField("num_stats"):
                # the sums are rounded in a different order: the moments agree to a few units in the last place
                assert a.num_stats.mean == pytest.approx(b.num_stats.mean, rel=1e-12, abs=1e-9)
                assert a.num_stats.std_dev == pytest.approx(b.num_stats.std_dev, rel=1e-12)
                for field in ("mean", "std_dev"):
                    a.num_stats.ClearField(field)
                    b.num_stats.ClearField(field)
            assert a == b, feature.path


def test_the_kernels_refuse_buffers_they_cannot_read():
    compiled = kernels.get()
    out = np.empty(2, dtype=np.uint64)
    data = np.frombuffer(b"abcdef", dtype=np.uint8)
    with pytest.raises(ValueError, match="offsets out of the data buffer"):
        compiled.hash_slots(np.array([0, 3, 9], dtype=np.int64), data, out)  # 9 > 6 bytes
    with pytest.raises(ValueError, match="offsets out of the data buffer"):
        compiled.hash_slots(np.array([0, 4, 3], dtype=np.int64), data, out)  # decreasing
    with pytest.raises(TypeError, match="int32 or int64 offsets expected"):
        compiled.hash_slots(np.array([0, 3, 6], dtype=np.uint32), data, out)
    with pytest.raises(ValueError, match="offsets out of the data buffer"):
        compiled.count_strings(np.array([0, 3, 9], dtype=np.int32), data, np.zeros(0, dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="bitmap shorter"):
        compiled.count_strings(np.arange(20, dtype=np.int32) % 6, data, np.zeros(2, dtype=np.uint8), 0)
    with pytest.raises(TypeError, match="not handled"):
        compiled.valid_min_max(np.arange(5, dtype=np.uint64), np.zeros(0, dtype=np.uint8), 0)
    with pytest.raises(ValueError, match="bitmap shorter"):
        compiled.valid_counts(np.arange(100, dtype=np.int32), np.zeros(2, dtype=np.uint8), 0, 0, 10)
    from kfpc.components.statistics import _ckernels

    readonly = np.zeros(4)
    readonly.flags.writeable = False
    with pytest.raises(TypeError, match="writable"):
        _ckernels.sort_floats(np.ones(4), readonly)


@pytest.mark.parametrize("dtype", ["int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"])
def test_integer_kernels_read_the_bitmap_by_words_at_any_offset_and_length(dtype):
    # the bitmap is read 64 slots at a time: blocks all valid, all null, mixed, the last partial one, at bit offsets
    rng = np.random.default_rng(3)
    info = np.iinfo(dtype)
    compiled = kernels.get()
    for n in (1, 63, 64, 65, 200, 1000):
        for null_rate in (0.0, 0.03, 0.5, 1.0):
            values = rng.integers(max(info.min, -50), min(info.max, 60), n + 9).astype(dtype)
            values[rng.random(n + 9) < 0.02] = info.max  # out of the counted range below
            mask = rng.random(n + 9) < null_rate
            mask[: n // 3] &= rng.random(n // 3) < 0.01  # a run of mostly valid slots (whole valid blocks)
            for start in (0, 1, 7, 9):
                array = pa.array(values, mask=mask).slice(start, n)
                raw = np.frombuffer(array.buffers()[1], dtype=dtype)[array.offset: array.offset + n]
                bitmap, offset = core._bitmap(array)
                valid = raw[~mask[start: start + n]]
                count, low, high = compiled.valid_min_max(raw, bitmap, offset)
                assert count == valid.size
                if valid.size:
                    assert (low, high) == (int(valid.min()), int(valid.max()))
                counts = compiled.valid_counts(raw, bitmap, offset, -50, 110)
                in_range = valid[(valid.astype(np.int64) >= -50) & (valid.astype(np.int64) < 60)].astype(np.int64)
                assert np.array_equal(counts, np.bincount(in_range + 50, minlength=110)), (n, null_rate, start)


def test_valid_floats_are_copied_in_order_at_any_offset_and_length():
    rng = np.random.default_rng(4)
    for n in (1, 63, 64, 65, 130, 1000):
        for null_rate in (0.0, 0.03, 0.5, 1.0):
            values = rng.standard_normal(n + 9)
            mask = rng.random(n + 9) < null_rate
            mask[: n // 3] &= rng.random(n // 3) < 0.01
            for start in (0, 1, 7, 9):
                array = pa.array(values, mask=mask).slice(start, n)
                if not array.null_count:
                    continue
                raw = np.frombuffer(array.buffers()[1], dtype=np.float64)[array.offset: array.offset + n]
                copied = kernels.get().compact_valid(raw, *core._bitmap(array))
                assert np.array_equal(copied, values[start: start + n][~mask[start: start + n]])


@pytest.mark.parametrize("n", [1, 3, 4, 5, 1023, 1024, 1025, 4099])
def test_moments_kernel_counts_and_sums_at_every_length(n):
    rng = np.random.default_rng(n)
    values = 1e6 + rng.standard_normal(n)
    kinds = rng.integers(0, 12, n)  # about a quarter of the slots made special, at any lane and chunk position
    values[kinds == 0] = np.nan
    values[kinds == 1] = np.inf
    values[kinds == 2] = -np.inf
    values[kinds == 3] = 0.0
    finite = values[np.isfinite(values)]
    count, nan, pos_inf, neg_inf, zeros, low, high, mean, correction, squares = kernels.get().moments(values)
    assert (count, nan, pos_inf, neg_inf, zeros) == (finite.size, np.isnan(values).sum(), (values == np.inf).sum(),
                                                     (values == -np.inf).sum(), (finite == 0).sum())
    if finite.size:
        assert (low, high) == (finite.min(), finite.max())
        assert mean + correction == pytest.approx(finite.mean(), rel=1e-15)
        deviations = finite - mean
        assert squares == pytest.approx(float(np.sum(deviations * deviations)), rel=1e-12)


def test_misra_gries_step_equals_the_numpy_step(numpy_path):
    # random summaries and batches around the capacity: over and under it, thresholds of 1 and above (the kernel
    # itself, also on batches shorter than those the compiled path takes)
    compiled = kernels.get()
    rng = np.random.default_rng(11)
    overs, thresholds = 0, set()
    for _ in range(1500):
        capacity = int(rng.integers(1, 300))
        size, incoming = int(rng.integers(0, capacity + 1)), int(rng.integers(0, 500))
        old = rng.integers(1, int(rng.choice([2, 5, 100, 10**6])), size).astype(np.int64)
        counts = rng.integers(1, int(rng.choice([2, 3, 50, 10**6])), incoming).astype(np.int64)
        where = np.full(incoming, -1, dtype=np.int64)
        hits = min(size, int(rng.integers(0, incoming + 1)))
        where[rng.permutation(incoming)[:hits]] = rng.permutation(size)[:hits]
        over, threshold, kept_counts, keep_old, new_index, kept_new = compiled.mg_merge(where, counts, old, capacity)
        expected = numpy_path(sketches._misra_gries_step, where, counts, old, capacity)
        overs += over
        thresholds.add(threshold)
        assert (over, threshold) == expected[:2]
        assert np.array_equal(kept_counts, expected[2]) and np.array_equal(kept_new, expected[5])
        assert np.array_equal(new_index, expected[4])
        assert np.array_equal(keep_old, expected[3])
    assert 500 < overs < 1500 and len(thresholds) > 100  # both branches, many thresholds


def test_frequency_sketches_are_the_same_on_both_paths(numpy_path):
    # near-unique values (thresholds of 1), repeated ones past the capacity (higher thresholds), and a merge
    rng = np.random.default_rng(12)
    batches = [pa.array([f"u{v}" for v in rng.integers(0, 10**6, 20_000)]),
               pa.array([f"r{v}" for v in rng.zipf(1.3, 20_000) % 5_000]),
               pa.array([f"u{v}" for v in rng.integers(0, 3_000, 20_000)], mask=rng.random(20_000) < 0.1)]

    def summarize():
        sketch, other = sketches.FrequencySketch(1_000, pa.string()), sketches.FrequencySketch(1_000, pa.string())
        for batch in batches:
            sketch.add_values(batch, mostly_distinct=True)
            other.add_values(batch.slice(5_000))
        sketch.merge(other)
        # (the summary's order differs: the compiled count lists values in order of first occurrence)
        return dict(zip(sketch.keys.to_pylist(), sketch.counts.tolist(), strict=True)), sketch.error, sketch.unique()

    compiled = summarize()
    assert compiled == numpy_path(summarize)
    assert compiled[1] > 1 and len(compiled[0]) <= 1_000
