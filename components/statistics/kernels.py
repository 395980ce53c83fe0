"""Compiled loops for the statistics' hottest paths: a small C extension (``_ckernels.c``), when it was built.

The statistics are NumPy and Arrow passes over each batch. Some places cost more than the read itself in NumPy,
because they take several passes over memory or a scattered gather per value: hashing string values
(:func:`kfpc.components.statistics.sketches.hash_binary`) and counting them by hash (``count_strings``: the
hashes, their distinct values with counts and first rows, in one call), counting distinct hashes, looking a
batch's hashes up in the Misra-Gries summary, the HyperLogLog registers, the moments and extremes of a float
column and the copy of its valid values, the extremes and counts of narrow integers and dictionary codes,
sorting the quantile sketch's sample, the Misra-Gries step of a batch's distinct values, and the wire bytes of
the top values. Here each is one compiled loop that releases the GIL, so that the statistics' worker threads
run them at once. They compute exactly what the NumPy code computes — the same hashes bit for bit, the same
counts and registers, the same sorted sample (-0.0 as 0.0 on both paths), the same bytes, the same moments up
to the rounding of the sums (4 lanes per chunk of 1024 values here, pairwise in NumPy: both within a few units
in the last place) — and the NumPy code stays as the path without the extension (a machine without a C compiler
when kfpc was installed, a big-endian one, or ``KFPC_KERNELS=0``) and as the reference the tests hold these to.

The wrappers below take and return NumPy arrays like the NumPy functions they stand for; they check
dtypes and make inputs contiguous, so the C code sees only plain buffers.
"""

from __future__ import annotations

import os
import types

import numpy as np

#: batches shorter than this stay on the NumPy path (a call's fixed cost is then a large part)
MIN_VALUES = 1 << 9
#: the moments, which round their sums differently from NumPy (within a few units in the last place), take the
#: compiled path from this length only: small tables (the tests', the bundled data's) keep NumPy's figures
MIN_MOMENTS_VALUES = 1 << 14

_loaded: types.SimpleNamespace | None | bool = False  # False: not tried yet; None: unavailable

#: integer dtypes the C code reads, by its type code (uint64 never reaches it: the callers leave it to NumPy)
_INT_CODES = {np.dtype(t): code for code, t in enumerate(
    ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32"), start=1)}


def get() -> types.SimpleNamespace | None:
    """The compiled kernels, or None (not built, or ``KFPC_KERNELS=0``)."""
    global _loaded
    if _loaded is False:
        _loaded = _load() if os.environ.get("KFPC_KERNELS", "1") != "0" else None
    return _loaded


def for_size(n: int, moments: bool = False) -> types.SimpleNamespace | None:
    """:func:`get` for a batch of ``n`` values: None below :data:`MIN_VALUES` (for ``moments``,
    :data:`MIN_MOMENTS_VALUES`)."""
    return get() if n >= (MIN_MOMENTS_VALUES if moments else MIN_VALUES) else None


def _load() -> types.SimpleNamespace | None:
    try:
        from . import _ckernels
    except ImportError:  # built without a C compiler
        return None
    return _wrap(_ckernels)


def _wrap(c) -> types.SimpleNamespace:
    def contiguous(values: np.ndarray, dtype) -> np.ndarray:
        values = np.ascontiguousarray(values)
        if values.dtype != dtype:
            raise TypeError(f"{np.dtype(dtype)} expected, got {values.dtype}")
        return values

    def offsets_of(offsets: np.ndarray) -> np.ndarray:
        offsets = np.ascontiguousarray(offsets)
        if offsets.dtype not in (np.int32, np.int64):
            raise TypeError(f"int32 or int64 offsets expected, got {offsets.dtype}")
        return offsets

    def hash_slots(offsets: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
        # hash of every slot [offsets[i], offsets[i + 1]) of the data buffer into out (uint64)
        offsets = offsets_of(offsets)
        c.hash_slots(offsets, offsets.itemsize, contiguous(data, np.uint8), out)

    def count_strings(offsets: np.ndarray, data: np.ndarray, bitmap: np.ndarray,
                      offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
        # the distinct hashes of the valid slots (bit `offset` of the bitmap is slot 0; empty: all valid), their
        # counts and first rows, in order of first occurrence; the number of valid slots and their bytes
        offsets = offsets_of(offsets)
        n = offsets.size - 1
        unique = np.empty(n, dtype=np.uint64)
        counts = np.empty(n, dtype=np.int64)
        first = np.empty(n, dtype=np.int64)
        found, present, total = c.count_strings(offsets, offsets.itemsize, contiguous(data, np.uint8),
                                                contiguous(bitmap, np.uint8), int(offset), unique, counts, first)
        return unique[:found], counts[:found], first[:found], present, total

    def distinct_counts(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hashes = contiguous(hashes, np.uint64)
        unique = np.empty(hashes.size, dtype=np.uint64)
        counts = np.empty(hashes.size, dtype=np.int64)
        found = c.distinct_counts(hashes, unique, counts)
        return unique[:found], counts[:found]

    def positions_in(table: np.ndarray, hashes: np.ndarray) -> np.ndarray:
        # the index of each hash in the table (distinct uint64), or -1
        hashes = contiguous(hashes, np.uint64)
        where = np.empty(hashes.size, dtype=np.int64)
        c.positions_in(contiguous(table, np.uint64), hashes, where)
        return where

    def encode_top_values(offsets: np.ndarray, data: np.ndarray, counts: np.ndarray) -> bytes:
        # StringStatistics wire bytes of top_values and rank_histogram: labels [offsets[i], offsets[i + 1]), counts
        return c.encode_top_values(contiguous(offsets, np.int64), contiguous(data, np.uint8),
                                   contiguous(counts, np.float64))

    def hll_add(registers: np.ndarray, hashes: np.ndarray, precision: int) -> None:
        c.hll_add(registers, contiguous(hashes, np.uint64), precision)

    def moments(values: np.ndarray) -> tuple:
        # (finite, nan, +inf, -inf, zeros, min, max, mean, mean of the deviations, sum of squared deviations)
        return c.moments(contiguous(values, np.float64))

    def int_code(values: np.ndarray) -> int:
        code = _INT_CODES.get(values.dtype)
        if code is None:
            raise TypeError(f"integer dtype {values.dtype} is not handled by the kernels")
        return code

    def valid_min_max(values: np.ndarray, bitmap: np.ndarray, offset: int) -> tuple[int, int, int]:
        # (count, min, max) of the valid slots (an empty bitmap: all valid; bit `offset` is slot 0)
        values = np.ascontiguousarray(values)
        return c.valid_min_max(values, int_code(values), contiguous(bitmap, np.uint8), int(offset))

    def valid_counts(values: np.ndarray, bitmap: np.ndarray, offset: int, low: int, size: int) -> np.ndarray:
        # occurrences of low .. low + size - 1 among the valid slots
        values = np.ascontiguousarray(values)
        counts = np.zeros(size + 1, dtype=np.int64)  # (a spare last bin for the nulls)
        c.valid_counts(values, int_code(values), contiguous(bitmap, np.uint8), int(offset), int(low), counts)
        return counts[:size]

    def compact_valid(values: np.ndarray, bitmap: np.ndarray, offset: int) -> np.ndarray:
        # the valid slots of float64 values (bit `offset` of the bitmap is slot 0), in order
        values = contiguous(values, np.float64)
        out = np.empty_like(values)
        return out[: c.compact_valid(values, contiguous(bitmap, np.uint8), int(offset), out)]

    def sort_floats(values: np.ndarray) -> np.ndarray:
        # a sorted copy of finite float64 values, -0.0 as 0.0
        values = contiguous(values, np.float64)
        out = np.empty_like(values)
        c.sort_floats(values, out)
        return out

    def mg_merge(where: np.ndarray, counts: np.ndarray, old: np.ndarray,
                 capacity: int) -> tuple[bool, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        # the Misra-Gries step of FrequencySketch._merge: (over capacity, threshold subtracted, the kept old
        # counts, which old counters are kept (bool), the indices of the kept new values (ascending), their counts)
        where = np.ascontiguousarray(where, dtype=np.int64)
        counts = contiguous(counts, np.int64)
        old = contiguous(old, np.int64)
        out_old = np.empty_like(old)
        keep_old = np.empty(old.size, dtype=np.bool_)
        new_index = np.empty(where.size, dtype=np.int64)
        new_counts = np.empty(where.size, dtype=np.int64)
        over, threshold, kept_old, kept_new = c.mg_merge(where, counts, old, int(capacity), out_old,
                                                         keep_old.view(np.uint8), new_index, new_counts)
        return (bool(over), int(threshold), out_old[:kept_old], keep_old, new_index[:kept_new],
                new_counts[:kept_new])

    return types.SimpleNamespace(hash_slots=hash_slots, count_strings=count_strings,
                                 distinct_counts=distinct_counts, positions_in=positions_in,
                                 encode_top_values=encode_top_values, hll_add=hll_add,
                                 moments=moments, compact_valid=compact_valid, valid_min_max=valid_min_max,
                                 valid_counts=valid_counts,
                                 sort_floats=sort_floats, mg_merge=mg_merge)
