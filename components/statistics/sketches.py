"""Mergeable sketches behind the statistics: quantiles, frequent values and distinct counts.

Each sketch has bounded memory (it does not grow with the number of rows), accepts data batch by batch,
and merges with another sketch of the same kind into the sketch of the union of their data. That is
what lets the statistics stream over Parquet record batches and combine partial results computed on
separate files or workers.

* :class:`QuantileSketch`: a KLL-style hierarchy of compactors. With ``k`` items per level the compaction
  adds a rank error of at most ``log2(n / k) / k`` of ``n`` (worst case); alternating the compaction offset
  makes the errors cancel in practice, so the typical error is far below that bound. It is exact while
  fewer than ``k`` values were seen. Unsorted batches of at least ``2 * SAMPLE`` values (:meth:`add`) are
  not sorted whole: a stratified sample (one value drawn from every ``2**g`` consecutive rows, a seeded
  generator) is, which adds a random rank error of standard deviation at most ``sqrt(sum n_b 2**g_b / 4) / n``
  (kept as ``variance``); :meth:`rank_error_bound` adds ``SAMPLING_SIGMAS`` of it to the compaction bound.
* :class:`FrequencySketch`: exact value counts while at most ``capacity`` distinct values were seen,
  then a Misra-Gries summary (every value more frequent than ``n / (capacity + 1)`` is kept, counts are
  under-estimated by at most ``error``), with a HyperLogLog distinct-count (relative error ~0.8%).
  Past ``capacity``, :meth:`FrequencySketch.add_values` identifies values by their 64-bit hash (collision
  probability ~``d**2 / 2**65`` for ``d`` distinct values), which leaves the Misra-Gries bounds unchanged.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import kernels

#: _WORD_MASKS[r]: the low r bytes of a 64-bit word (r = 0..8)
_WORD_MASKS = np.array([(1 << (8 * r)) - 1 for r in range(9)], dtype=np.uint64)


# Conversions between NumPy and Arrow written against the buffers: pyarrow's own (pa.array(ndarray),
# Array.to_numpy) import pandas on first use, which costs a fresh process ~0.5 s and ~40 MB.
def from_numpy(values: np.ndarray) -> pa.Array:
    """Arrow array over a 1-d NumPy integer/float/bool array (no nulls; bools are bit-packed)."""
    values = np.ascontiguousarray(values)
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), values.size, [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), values.size, [None, pa.py_buffer(values)])


def to_numpy(array: pa.Array, nulls: bool = False) -> np.ndarray:
    """NumPy view of a null-free integer/float Arrow array (other types are cast to int64 first).

    ``nulls=True`` accepts nulls: their slots hold whatever the buffer holds there.
    """
    kind = array.type
    if pa.types.is_integer(kind):
        dtype = np.dtype(f"{'i' if pa.types.is_signed_integer(kind) else 'u'}{kind.bit_width // 8}")
    elif pa.types.is_floating(kind):
        dtype = np.dtype(f"f{kind.bit_width // 8}")
    else:
        return to_numpy(array.cast(pa.int64()), nulls)
    if array.null_count and not nulls:
        raise ValueError("nulls in an array expected to have none")
    buffer = array.buffers()[1]
    if buffer is None or len(array) == 0:
        return np.empty(0, dtype=dtype)
    return np.frombuffer(buffer, dtype=dtype)[array.offset: array.offset + len(array)]


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finalizer on a uint64 array, in place (wrapping arithmetic): a well-mixed 64-bit hash."""
    shifted = np.empty_like(x)
    with np.errstate(over="ignore"):
        x += np.uint64(0x9E3779B97F4A7C15)
        for bits, multiplier in ((30, 0xBF58476D1CE4E5B9), (27, 0x94D049BB133111EB)):
            np.right_shift(x, np.uint64(bits), out=shifted)
            x ^= shifted
            x *= np.uint64(multiplier)
        np.right_shift(x, np.uint64(31), out=shifted)
        x ^= shifted
    return x


def hash_binary(values: pa.Array, drop_nulls: bool = True) -> np.ndarray:
    """64-bit hashes of the non-null values of a string or binary Arrow array, vectorized.

    Each value is read as little-endian 64-bit words (the last one zero-padded); the hash chains the words
    with a multiply-xorshift step starting from the length and ends with the SplitMix64 finalizer, so it
    depends only on the bytes of the value (not on the array's layout or chunking). Cost: a few in-place
    NumPy passes per 8 bytes of value.

    Args:
        values: a string/binary array.
        drop_nulls: drop the hashes of null slots (default); False: one hash per slot, a null slot hashed as
            the bytes it spans (usually none), for callers that select the valid slots themselves.
    Returns:
        uint64 array, one hash per non-null value (per slot with ``drop_nulls=False``).
    """
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.null_count and drop_nulls:
        if kernels.for_size(len(values)) is not None and is_binary_like(values.type):
            # the compiled hash of every slot, then the valid ones: no copy of the values without nulls
            return hash_binary(values, drop_nulls=False)[_validity(values)]
        values = pc.drop_null(values)
    n = len(values)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    if not is_binary_like(values.type):
        return hash_binary(values.cast(pa.large_binary()), drop_nulls=drop_nulls)
    offsets, data = _offsets_and_data(values)
    compiled = kernels.for_size(n)
    if compiled is not None:
        hashes = np.empty(n, dtype=np.uint64)
        compiled.hash_slots(offsets, data, hashes)
        return hashes
    offsets = offsets.astype(np.int64)
    start, end = int(offsets[0]), int(offsets[-1])
    lengths = np.diff(offsets)
    rounds = (int(lengths.max()) + 7) >> 3
    # zero-padded copy of the bytes, viewed as a little-endian 64-bit word at every byte offset (the padding
    # covers a word 8 * round bytes past the start of the last value, so no position needs clipping)
    padded = np.zeros(end - start + 8 * max(1, rounds), dtype=np.uint8)
    if end > start:
        padded[: end - start] = data[start:end]
    words_at = np.ndarray(shape=(padded.size - 7,), dtype="<u8", buffer=padded, strides=(1,))
    positions = offsets[:-1] - start if start else offsets[:-1]
    multiplier, shift = np.uint64(0x9E3779B97F4A7C15), np.uint64(29)
    short = (lengths - 1).view(np.uint64)  # length - 1, an empty value wrapping to the largest: not short
    with np.errstate(over="ignore"):
        hashes = lengths.astype(np.uint64)
        hashes *= np.uint64(0xD6E8FEB86659FD93)
        active = None  # the slots still hashing (None: every slot)
        for j in range(rounds):
            # round j mixes in bytes [8j, 8j + 8) of the values longer than 8j bytes; a word's mask comes from
            # the length capped at 8j + 8 (a table of 8j zeros, then the masks of 0..8 bytes)
            masks = np.concatenate([np.zeros(8 * j, dtype=np.uint64), _WORD_MASKS])
            done = None
            if j:
                if active is None and 2 * int(np.count_nonzero(lengths > 8 * j)) > n:
                    # most slots still hash: all of them do, and the few finished non-empty ones get their hash
                    # back (an empty value's hash, 0, stays 0: its words are masked to 0)
                    done = np.flatnonzero(short < np.uint64(8 * j))
                    kept = hashes[done]
                else:
                    active = np.flatnonzero(lengths > 8 * j) if active is None else active[lengths[active] > 8 * j]
            if active is None:
                capped = np.minimum(lengths, 8 * j + 8)
                word = words_at[positions + 8 * j if j else positions]
                word &= masks[capped]
                mixed = np.bitwise_xor(hashes, word, out=word)
                mixed *= multiplier
                spare = capped.view(np.uint64)
                np.right_shift(mixed, shift, out=spare)
                mixed ^= spare
                hashes = mixed
                if done is not None:
                    hashes[done] = kept
            else:
                length = lengths[active]
                np.minimum(length, 8 * j + 8, out=length)
                word = words_at[positions[active] + 8 * j]
                word &= masks[length]
                mixed = hashes[active]
                mixed ^= word
                mixed *= multiplier
                mixed ^= mixed >> shift
                hashes[active] = mixed
        return _splitmix64(hashes)


def _offsets_and_data(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The ``len + 1`` offsets (int32, or int64 for the large types) and the data bytes of a string/binary array."""
    wide = pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type)
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int64 if wide else np.int32)[
        values.offset: values.offset + n + 1]
    buffer = values.buffers()[2]
    return offsets, np.frombuffer(buffer, dtype=np.uint8) if buffer is not None else np.zeros(0, dtype=np.uint8)


def is_binary_like(kind: pa.DataType) -> bool:
    """String or binary with offsets (32- or 64-bit): the types :func:`hash_binary` reads directly."""
    return pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_string(
        kind) or pa.types.is_large_binary(kind)


def _distinct_counts(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of a uint64 array and how often each occurs, in no particular order.

    Compiled (:mod:`.kernels`): one pass through an open-addressing table. NumPy:

    Sorting every hash costs 10-40 ns a hash; most hashes of a mostly distinct column occur once. A hash
    alone in its bucket of a table with at least 4 buckets per hash (its low bits) occurs once; only the
    hashes sharing a bucket (about a fifth) are sorted and counted.
    """
    n = hashes.size
    compiled = kernels.for_size(n)
    if compiled is not None:
        return compiled.distinct_counts(hashes)
    bits = max(10, (4 * n - 1).bit_length())
    bucket = (hashes & np.uint64((1 << bits) - 1)).astype(np.intp)
    crowded = np.bincount(bucket, minlength=1 << bits)[bucket] > 1
    shared = int(np.count_nonzero(crowded))
    if shared == 0:
        return hashes, np.ones(n, dtype=np.int64)
    ordered = np.sort(hashes[crowded])
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    alone = hashes[~crowded] if shared < n else hashes[:0]
    return (np.concatenate([alone, ordered[starts]]),
            np.concatenate([np.ones(alone.size, dtype=np.int64), np.diff(np.append(starts, ordered.size))]))


def _misra_gries_step(where: np.ndarray, counts: np.ndarray, old: np.ndarray, capacity: int):
    """The counting step of :meth:`FrequencySketch._merge`: the summary's ``old`` counts plus the ``counts`` of a
    batch's distinct values (``where``: the index of each in the summary, or -1 if new).

    Past ``capacity`` counters together (``over``), the (capacity+1)-th largest count is the threshold:
    subtracted from every counter, and the counters not above it are dropped.

    Returns:
        (over, threshold (0 when not over), the kept old counts, which old counters are kept (bool), the indices
        of the kept new values (ascending), their counts) — all after the subtraction. Compiled
        (:mod:`.kernels`): one pass; NumPy: the steps below.
    """
    compiled = kernels.for_size(where.size)
    if compiled is not None:
        return compiled.mg_merge(where, counts, old, capacity)
    found = where >= 0
    old_counts = old.copy()
    old_counts[where[found]] += counts[found]
    new_index = np.flatnonzero(~found)
    new_counts = counts[new_index]
    if old_counts.size + new_counts.size <= capacity:
        return False, 0, old_counts, np.ones(old.size, dtype=bool), new_index, new_counts
    combined = np.concatenate([old_counts, new_counts])
    repeated = combined[combined > 1]
    if repeated.size <= capacity:
        threshold = 1  # the (capacity+1)-th largest count is a 1 (typical of near-unique values)
    else:
        # the (capacity+1)-th largest count is one of the repeated ones: select among those only (a
        # selection over mostly equal counts of 1 is introselect's slow case: 23 ms for 180k values)
        kth = repeated.size - capacity - 1
        threshold = int(np.partition(repeated, kth)[kth])
    keep_old, keep_new = old_counts > threshold, new_counts > threshold
    return (True, threshold, old_counts[keep_old] - threshold, keep_old, new_index[keep_new],
            new_counts[keep_new] - threshold)


def _positions_in(table: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """For each of ``hashes``, its index in ``table`` (distinct uint64), or -1 if it is not there.

    Compiled (:mod:`.kernels`): a hash table of ``table``, probed by the hashes that pass a filter of 64 bits per
    entry (~1/64 of the absent ones). NumPy: ``table`` (a summary, at most some ten thousand hashes) is short and
    ``hashes`` long: a bitmap of the table's low bits (~1/64 false hits) picks the few candidates, which alone
    are searched in the sorted table.
    """
    if table.size == 0 or hashes.size == 0:
        return np.full(hashes.size, -1, dtype=np.int64)
    compiled = kernels.for_size(hashes.size)
    if compiled is not None:
        return compiled.positions_in(table, hashes)
    where = np.full(hashes.size, -1, dtype=np.int64)
    bits = max(12, int(table.size * 64).bit_length())
    mask = np.uint64((1 << bits) - 1)
    bitmap = np.zeros(1 << bits, dtype=bool)
    bitmap[(table & mask).astype(np.intp)] = True
    candidates = np.flatnonzero(bitmap[(hashes & mask).astype(np.intp)])
    if candidates.size == 0:
        return where
    order = np.argsort(table)
    ordered = table[order]
    found = hashes[candidates]
    position = np.minimum(np.searchsorted(ordered, found), ordered.size - 1)
    hit = ordered[position] == found
    where[candidates[hit]] = order[position[hit]]
    return where


def _sort(values: np.ndarray) -> np.ndarray:
    """A sorted copy of finite float64 values, -0.0 made 0.0: a compiled radix sort (:mod:`.kernels`), else NumPy's.

    NumPy's sort runs 3-30 ns a value depending on whether the machine has the SIMD it dispatches to (31 ns
    on the AMD EPYC machines here, where it has none); the radix sort runs ~10 ns a value everywhere.
    """
    compiled = kernels.for_size(values.size)
    if compiled is not None:
        return compiled.sort_floats(values)
    ordered = np.sort(values)
    ordered += 0.0  # -0.0 as 0.0, as the compiled sort gives it (NumPy's sort puts either zero first)
    return ordered


def _validity(values: pa.Array) -> np.ndarray:
    """Boolean NumPy mask of the valid slots of an Arrow array."""
    bitmap = values.buffers()[0]
    if bitmap is None:
        return np.ones(len(values), dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, dtype=np.uint8), count=values.offset + len(values), bitorder="little")
    return bits[values.offset:].view(bool)


class HyperLogLog:
    """HyperLogLog distinct counter with ``2**precision`` registers (mergeable by register maximum)."""

    def __init__(self, precision: int = 14):
        self.precision = precision
        self.registers = np.zeros(1 << precision, dtype=np.uint8)

    def add_hashes(self, hashes: np.ndarray) -> None:
        """Add uint64 hashes of values."""
        if hashes.size == 0:
            return
        p = self.precision
        compiled = kernels.for_size(hashes.size)
        if compiled is not None:
            compiled.hll_add(self.registers, hashes, p)
            return
        index = (hashes >> np.uint64(64 - p)).astype(np.intp)
        rest = hashes & np.uint64((1 << (64 - p)) - 1)
        # bit_length of the remaining bits (exact through float64 because they are < 2**53)
        _, bit_length = np.frexp(rest.astype(np.float64))
        rank = (64 - p + 1 - bit_length).astype(np.uint8)
        # only the hashes that raise their register (few, once the registers have filled) go through the
        # scattered maximum, which costs ~15 ns a hash
        higher = rank > self.registers[index]
        np.maximum.at(self.registers, index[higher], rank[higher])

    def merge(self, other: HyperLogLog) -> None:
        """Fold ``other`` into this counter."""
        np.maximum(self.registers, other.registers, out=self.registers)

    def estimate(self) -> float:
        """Estimated number of distinct values added."""
        m = float(self.registers.size)
        alpha = 0.7213 / (1 + 1.079 / m)
        raw = alpha * m * m / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if raw <= 2.5 * m and zeros:
            return m * math.log(m / zeros)  # linear counting is more accurate for small cardinalities
        return raw


class QuantileSketch:
    """Mergeable quantile summary (KLL-style compactor levels).

    Level ``h`` holds sorted values that each stand for ``2**h`` input values. A level longer than ``k``
    is compacted: every other value (alternating the starting offset between compactions) moves up a
    level with double weight. Sorted input and batches shorter than ``2 * SAMPLE`` values are summarized
    deterministically; longer unsorted batches through a stratified sample (:meth:`add`).
    """

    #: :meth:`add` sorts a batch of fewer than ``2 * SAMPLE`` values whole; a longer one through a sample of
    #: ``SAMPLE / 2`` to ``SAMPLE`` values (a full sort costs 10-45 ns a value depending on the machine's SIMD
    #: sort; the sample a few percent of that)
    SAMPLE = 1 << 15
    #: standard deviations of the sampling error included in :meth:`rank_error_bound` (for one quantile, the
    #: bound then fails with probability below 1e-6)
    SAMPLING_SIGMAS = 5.0

    def __init__(self, k: int = 2048):
        if k < 16:
            raise ValueError(f"quantile sketch size k must be at least 16, got {k}")
        self.k = k
        self.levels: list[np.ndarray] = []
        self._offsets: list[int] = []
        self.count = 0
        #: variance of the sampled rank estimates, in squared ranks (sum of n_b * 2**g_b / 4 over sampled batches)
        self.variance = 0.0

    def _level(self, h: int) -> None:
        while len(self.levels) <= h:
            self.levels.append(np.empty(0, dtype=np.float64))
            self._offsets.append(0)

    def _insert(self, h: int, values: np.ndarray) -> None:
        self._level(h)
        current = self.levels[h]
        if current.size:
            # both inputs are sorted: a stable sort of their concatenation is a linear-time merge (timsort)
            values = np.sort(np.concatenate([current, values]), kind="stable")
        self.levels[h] = values

    def add_sorted(self, values: np.ndarray) -> None:
        """Add a sorted float64 array of finite values.

        A long batch goes straight to the level where it fits: every ``2**h``-th value of the sorted
        batch (from the middle of each group) with weight ``2**h``; the last partial group stays exact.
        """
        n = int(values.size)
        if n:
            self._add_ranks(n, lambda start, stop, step: np.ascontiguousarray(values[start:stop:step]))

    def add_counted(self, values: np.ndarray, counts: np.ndarray) -> None:
        """Add sorted distinct finite float64 ``values`` occurring ``counts`` times each.

        The same as :meth:`add_sorted` of ``np.repeat(values, counts)`` (the same retained items), without
        building that array: the values at the chosen ranks are looked up in the cumulative counts.
        """
        cumulative = np.cumsum(counts)
        n = int(cumulative[-1]) if cumulative.size else 0
        if n:
            self._add_ranks(n, lambda start, stop, step: values[
                np.searchsorted(cumulative, np.arange(start, stop, step), side="right")])

    def _add_ranks(self, n: int, at, base: int = 0) -> None:
        # at(start, stop, step): the sorted batch's values at ranks range(start, stop, step); each of the n values
        # stands for 2**base input values
        self.count += n << base
        h = max(0, math.ceil(math.log2(n / self.k))) if n > self.k else 0
        if h:
            stride = 1 << h
            full = n - n % stride
            self._insert(base + h, at(stride // 2, full, stride))
            if full < n:
                self._insert(base, at(full, n, 1))
        else:
            self._insert(base, at(0, n, 1))
        self._compact()

    def add(self, values: np.ndarray) -> None:
        """Add an unsorted array of finite values (left unchanged).

        Fewer than ``2 * SAMPLE`` values: sorted whole (:meth:`add_sorted`). More: the rows are cut into runs of
        ``2**g`` (the smallest with at most ``SAMPLE`` runs), one value drawn from each run stands for its run
        (a stratified sample, never worse than a simple random one and exact-ranked on sorted data), and the
        last ``n mod 2**g`` values go in exactly. The draw is seeded by the batch size and the count so far: the
        same batches give the same sketch.
        """
        values = np.asarray(values, dtype=np.float64)
        n = int(values.size)
        if n < 2 * self.SAMPLE:
            self.add_sorted(_sort(values))
            return
        g = ((n - 1) // self.SAMPLE).bit_length()  # the smallest g with n / 2**g <= SAMPLE
        runs, stride = n >> g, 1 << g
        picks = np.random.default_rng([n, self.count]).integers(0, stride, runs)
        picks += np.arange(0, runs * stride, stride)
        sample = _sort(values[picks])
        self.variance += runs * stride * stride / 4.0
        self._add_ranks(runs, lambda start, stop, step: np.ascontiguousarray(sample[start:stop:step]), base=g)
        if runs * stride < n:
            tail = _sort(values[runs * stride:])
            self._add_ranks(tail.size, lambda start, stop, step: np.ascontiguousarray(tail[start:stop:step]))

    def _compact(self) -> None:
        h = 0
        while h < len(self.levels):
            level = self.levels[h]
            if level.size > self.k:
                even = level.size - level.size % 2
                offset = self._offsets[h]
                self._offsets[h] ^= 1
                promoted = level[offset:even:2]
                self.levels[h] = level[even:].copy()
                self._insert(h + 1, np.ascontiguousarray(promoted))
            h += 1

    def merge(self, other: QuantileSketch) -> None:
        """Fold ``other`` into this sketch (the result summarizes the union of both inputs)."""
        for h, level in enumerate(other.levels):
            if level.size:
                self._insert(h, level)
        self.count += other.count
        self.variance += other.variance
        self._compact()

    def weighted_items(self) -> tuple[np.ndarray, np.ndarray]:
        """All retained values, sorted, with their weights."""
        values = [level for level in self.levels if level.size]
        if not values:
            return np.empty(0), np.empty(0)
        weights = [np.full(level.size, float(1 << h)) for h, level in enumerate(self.levels) if level.size]
        items = np.concatenate(values)
        weight = np.concatenate(weights)
        order = np.argsort(items, kind="stable")
        return items[order], weight[order]

    def rank_error_bound(self) -> float:
        """Rank error bound as a fraction of the count (0 while the sketch is exact).

        The compaction's worst case ``log2(n / k) / k`` plus ``SAMPLING_SIGMAS`` standard deviations of the
        sampling error of sampled batches (none: the bound is a worst case).
        """
        if self.count == 0:
            return 0.0
        compaction = max(1.0, math.log2(self.count / self.k)) / self.k if self.count > self.k else 0.0
        return compaction + self.SAMPLING_SIGMAS * math.sqrt(self.variance) / self.count

    def quantiles(self, fractions) -> np.ndarray:
        """Values at the given rank fractions (0 = minimum, 1 = maximum retained)."""
        items, weights = self.weighted_items()
        if items.size == 0:
            return np.full(len(fractions), np.nan)
        cumulative = np.cumsum(weights)
        total = cumulative[-1]
        targets = np.asarray(fractions, dtype=np.float64) * total
        index = np.searchsorted(cumulative, targets, side="left")
        return items[np.clip(index, 0, items.size - 1)]


class FrequencySketch:
    """Value counts of a string feature: exact up to ``capacity`` distinct values, then Misra-Gries.

    ``error`` is the largest amount by which any reported count can be below the true count (0 while
    exact); a value absent from the summary occurred at most ``error`` times.
    """

    def __init__(self, capacity: int = 10_000, value_type: pa.DataType | None = None):
        if capacity < 1:
            raise ValueError(f"frequency sketch capacity must be positive, got {capacity}")
        self.capacity = capacity
        self.value_type = value_type or pa.string()
        self.keys: pa.Array = pa.nulls(0, self.value_type)
        self.counts = np.empty(0, dtype=np.int64)
        self.error = 0
        self.total = 0
        self.distinct: HyperLogLog | None = None
        self._hashes: np.ndarray | None = None  # hash_binary(keys), kept by add_values
        #: distinct values in the last batch given to add_values (None before any)
        self.batch_distinct: int | None = None

    @property
    def exact(self) -> bool:
        """True while every distinct value is counted exactly."""
        return self.distinct is None

    def add_counts(self, keys: pa.Array, counts: np.ndarray) -> None:
        """Add distinct ``keys`` (no nulls) with their ``counts``."""
        if len(keys) == 0:
            return
        keys = keys.cast(self.value_type)
        counts = np.asarray(counts, dtype=np.int64)
        self.total += int(counts.sum())
        if self.distinct is None:
            self._fold(keys, counts)
            return
        # past exactness values are identified by their hash (as in add_values), which the distinct counter
        # needs anyway: no hash table of the summary's keys per batch
        hashes = hash_binary(keys)
        self.distinct.add_hashes(hashes)
        where = _positions_in(self._summary_hashes(), hashes)
        self._merge(where, counts, lambda new: keys.filter(from_numpy(new)), lambda new: hashes[new])

    def add_values(self, values: pa.Array, mostly_distinct: bool = False) -> int | None:
        """Add the (not necessarily distinct) values of a batch; null slots are skipped.

        While the sketch is exact this counts them with Arrow and calls :meth:`add_counts`. Once it is a
        Misra-Gries summary, values are identified by their 64-bit :func:`hash_binary` instead: one
        hash pass feeds both the distinct counter and the count, and only values that stay in the summary are
        copied. Compiled (:mod:`.kernels`), the hashes, their distinct values with counts and the first row of
        each are one call; in NumPy, :func:`_distinct_counts` and a search for the rows. Two different values
        colliding on 64 bits (probability about ``d**2 / 2**65`` for ``d`` distinct values, ~3e-6 at 10
        million) would be counted as one.

        ``mostly_distinct`` (a hint): hash first even while exact, so that a batch that ends exactness does
        not count its values twice; if the sketch would stay exact the values are counted exactly.

        Returns:
            The total bytes of the batch's non-null values when the compiled path counted them on the way,
            else None (the caller measures them itself if it needs them).
        """
        present = len(values) - values.null_count
        if present == 0:
            return None
        values = values.cast(self.value_type)
        if self.distinct is None and not (mostly_distinct and len(self.keys) + present > self.capacity):
            counted = pc.value_counts(pc.drop_null(values) if values.null_count else values)
            self.batch_distinct = len(counted)
            self.add_counts(counted.field("values"), to_numpy(counted.field("counts")))
            return None
        compiled = kernels.for_size(len(values)) if is_binary_like(values.type) else None
        value_bytes = None
        if compiled is not None:
            offsets, data = _offsets_and_data(values)
            bitmap = np.frombuffer(values.buffers()[0], dtype=np.uint8) if values.null_count else data[:0]
            unique_hashes, counts, first, _, value_bytes = compiled.count_strings(offsets, data, bitmap,
                                                                                  values.offset)

            def representatives(selected: np.ndarray) -> pa.Array:
                return values.take(from_numpy(first[selected]))
        else:
            unique_hashes, counts, representatives = self._hash_counts(values)
        self.batch_distinct = int(unique_hashes.size)
        summary = self._summary_hashes()
        where = _positions_in(summary, unique_hashes)
        if self.distinct is None:
            if len(self.keys) + int(np.count_nonzero(where < 0)) <= self.capacity:
                self.add_values(values)  # stays exact: count the values themselves
                return value_bytes
            # exactness ends with this batch: every distinct value seen so far seeds the distinct counter
            self.distinct = HyperLogLog()
            self.distinct.add_hashes(summary)
        self.total += present
        self.distinct.add_hashes(unique_hashes)
        self._merge(where, counts, representatives, lambda new: unique_hashes[new])
        return value_bytes

    @staticmethod
    def _hash_counts(values: pa.Array):
        """NumPy path of :meth:`add_values`: distinct hashes of the valid values, counts, and their representatives."""
        slot_hashes = hash_binary(values, drop_nulls=False)
        valid = _validity(values) if values.null_count else None
        hashes = slot_hashes if valid is None else slot_hashes[valid]
        # distinct hashes and their counts, in no particular order and mostly without a sort
        unique_hashes, counts = _distinct_counts(hashes)

        def representatives(selected: np.ndarray) -> pa.Array:
            # one row of each selected distinct value, in the order of the selection
            chosen = unique_hashes[selected]
            if chosen.size == 0:
                return values.slice(0, 0)
            order = np.argsort(chosen)
            wanted = chosen[order]
            # rows whose hash may be wanted, by a bitmap of the wanted hashes' low bits (~1/64 false hits),
            # then only those searched for among the wanted
            bits = max(12, int(wanted.size * 64).bit_length())
            mask = np.uint64((1 << bits) - 1)
            bitmap = np.zeros(1 << bits, dtype=bool)
            bitmap[(wanted & mask).astype(np.intp)] = True
            candidates = np.flatnonzero(bitmap[(slot_hashes & mask).astype(np.intp)])
            if valid is not None:
                candidates = candidates[valid[candidates]]
            found = slot_hashes[candidates]
            position = np.minimum(np.searchsorted(wanted, found), wanted.size - 1)
            hit = wanted[position] == found
            row = np.empty(wanted.size, dtype=np.int64)
            row[position[hit]] = candidates[hit]  # any occurrence will do: they hold the same value
            rows = np.empty_like(row)
            rows[order] = row
            return values.take(from_numpy(rows))

        return unique_hashes, counts, representatives

    def _summary_hashes(self) -> np.ndarray:
        if self._hashes is None or self._hashes.size != len(self.keys):
            self._hashes = hash_binary(self.keys)
        return self._hashes

    def _fold(self, keys: pa.Array, counts: np.ndarray) -> None:
        """Add distinct ``keys`` with ``counts``."""
        if len(self.keys):
            # Look the (distinct) incoming keys up in the summary: one hash table of at most `capacity`
            # keys, probed once per incoming key (cheaper than grouping the concatenation of both).
            found = pc.index_in(keys, value_set=self.keys)
            where = np.frombuffer(found.buffers()[1], dtype=np.int32)[found.offset: found.offset + len(found)]
            if found.null_count:  # not in the summary: -1 (read through the validity bitmap)
                where = np.where(_validity(found), where, -1)
        else:
            where = np.full(len(keys), -1, dtype=np.int32)
        self._merge(where, counts, lambda new: keys.filter(from_numpy(new)), None)

    def _merge(self, where: np.ndarray, counts: np.ndarray, new_keys, new_hashes) -> None:
        """Add ``counts`` of incoming distinct values; ``where``: their index in the summary, or -1 if new.

        ``new_keys(mask)`` / ``new_hashes(mask)`` give the keys / hashes of the new values selected by a
        boolean mask over them, so that values the Misra-Gries step drops are never materialized.
        Beyond ``capacity`` counters, the Misra-Gries step subtracts the (capacity+1)-th largest count
        from every counter and drops the counters that reach zero: counts stay under-estimates by at
        most the total subtracted (``error``).
        """
        over, threshold, old_counts, keep_old, new_index, new_counts = _misra_gries_step(where, counts, self.counts,
                                                                                         self.capacity)
        old_hashes = self._hashes if self._hashes is not None and self._hashes.size == self.counts.size else None
        selected = np.zeros(where.size, dtype=bool)
        selected[new_index] = True
        old_keys = self.keys
        if over:
            if self.distinct is None:
                # Until now every distinct value seen is in the summary: seed the distinct counter with them.
                self.distinct = HyperLogLog()
                self.distinct.add_hashes(hash_binary(self.keys))
                self.distinct.add_hashes(hash_binary(new_keys(where < 0)))
            if old_counts.size < keep_old.size:
                old_keys = self.keys.filter(from_numpy(keep_old))
                if old_hashes is not None:
                    old_hashes = old_hashes[keep_old]
            self.error += threshold
        if new_counts.size == 0:
            self.keys, self.counts = old_keys, old_counts
            self._hashes = old_hashes
            return
        added = new_keys(selected)
        self.keys = added if len(old_keys) == 0 else pa.concat_arrays([old_keys, added])
        self.counts = np.concatenate([old_counts, new_counts])
        if old_hashes is not None and new_hashes is not None:
            self._hashes = np.concatenate([old_hashes, new_hashes(selected)])
        else:
            self._hashes = None

    def merge(self, other: FrequencySketch) -> None:
        """Fold ``other`` into this sketch (the result summarizes the union of both inputs)."""
        if other.distinct is not None or self.distinct is not None:
            if self.distinct is None:
                self.distinct = HyperLogLog()
                self.distinct.add_hashes(hash_binary(self.keys))
            if other.distinct is not None:
                self.distinct.merge(other.distinct)
            else:
                self.distinct.add_hashes(hash_binary(other.keys))
        self.total += other.total
        self.error += other.error
        if len(other.keys):
            self._fold(other.keys.cast(self.value_type), other.counts)

    def unique(self) -> int:
        """Number of distinct values: exact while exact, else the HyperLogLog estimate."""
        if self.distinct is None:
            return len(self.keys)
        return max(len(self.keys), int(round(self.distinct.estimate())))

    def top_array(self, k: int) -> tuple[pa.Array, np.ndarray]:
        """:meth:`top` as an Arrow array of the values (no Python objects per value)."""
        if len(self.keys) == 0:
            return self.keys, np.empty(0, dtype=np.int64)
        table = pa.table({"k": self.keys, "c": from_numpy(self.counts)})
        order = pc.sort_indices(table, sort_keys=[("c", "descending"), ("k", "descending")])[:k]
        return self.keys.take(order), self.counts[to_numpy(order)]

    def top(self, k: int) -> tuple[list, np.ndarray]:
        """The ``k`` most frequent values, by count descending, ties by value descending (TFDV's order)."""
        if len(self.keys) == 0:
            return [], np.empty(0, dtype=np.int64)
        table = pa.table({"k": self.keys, "c": from_numpy(self.counts)})
        order = pc.sort_indices(table, sort_keys=[("c", "descending"), ("k", "descending")])[:k]
        return table.column("k").take(order).to_pylist(), self.counts[to_numpy(order)]
