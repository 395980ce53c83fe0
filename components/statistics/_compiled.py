"""The Numba kernels behind :mod:`kfpc.components.statistics.kernels` (imported only through it)."""

from __future__ import annotations

import numba
import numpy as np

_jit = numba.njit(nogil=True, cache=True)

#: the kernels kernels.get() hands out
KERNELS = ("hash_slots", "distinct_counts", "hll_add", "moments", "valid_min_max", "valid_counts", "sort_floats")


@_jit
def hash_slots(offsets, data, words, out):
    # hash_binary's hash of every slot [offsets[i], offsets[i + 1]) of the data buffer (see sketches.hash_binary);
    # words: the buffer's whole 64-bit words (a view of data), for loading 8 bytes at any offset in two reads
    length_multiplier = np.uint64(0xD6E8FEB86659FD93)
    multiplier = np.uint64(0x9E3779B97F4A7C15)
    last_word = words.size - 1
    for i in range(out.size):
        start = offsets[i]
        length = offsets[i + 1] - start
        h = np.uint64(length) * length_multiplier
        position = 0
        while True:
            # the word of bytes [position, position + 8) of the value, zero past its end
            take = min(8, length - position)
            at = start + position
            q = at >> 3
            if take <= 0:
                word = np.uint64(0)
            elif q < last_word:
                r = np.uint64(8 * (at & 7))
                word = words[q] >> r
                if r:
                    word |= words[q + 1] << (np.uint64(64) - r)
                if take < 8:
                    word &= (np.uint64(1) << np.uint64(8 * take)) - np.uint64(1)
            else:  # the buffer's last bytes
                word = np.uint64(0)
                for b in range(take):
                    word |= np.uint64(data[at + b]) << np.uint64(8 * b)
            h ^= word
            h *= multiplier
            h ^= h >> np.uint64(29)
            position += 8
            if position >= length:
                break
        # SplitMix64 finalizer
        h += np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(30)
        h *= np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(27)
        h *= np.uint64(0x94D049BB133111EB)
        h ^= h >> np.uint64(31)
        out[i] = h


@_jit
def distinct_counts(hashes):
    # the distinct values of a uint64 array with their counts, in order of first occurrence
    n = hashes.size
    size = 16
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    slots = np.full(size, -1, np.int32)  # index into unique, or -1
    unique = np.empty(n, np.uint64)
    counts = np.zeros(n, np.int64)
    found = 0
    for i in range(n):
        h = hashes[i]
        s = (h ^ (h >> np.uint64(32))) & mask
        while True:
            j = slots[s]
            if j < 0:
                slots[s] = found
                unique[found] = h
                counts[found] = 1
                found += 1
                break
            if unique[j] == h:
                counts[j] += 1
                break
            s = (s + np.uint64(1)) & mask
    return unique[:found].copy(), counts[:found].copy()

@_jit
def hll_add(registers, hashes, precision):
    # HyperLogLog.add_hashes: register = top `precision` bits, rank = leading zeros of the rest + 1
    shift = np.uint64(64 - precision)
    rest_mask = (np.uint64(1) << shift) - np.uint64(1)
    width = 64 - precision
    for i in range(hashes.size):
        h = hashes[i]
        index = h >> shift
        rest = h & rest_mask
        bits = 0  # bit length of rest, by halving
        for step in (32, 16, 8, 4, 2, 1):
            if rest >> np.uint64(step):
                rest >>= np.uint64(step)
                bits += step
        if rest:
            bits += 1
        rank = width + 1 - bits
        if rank > registers[index]:
            registers[index] = rank

@_jit
def moments(values):
    # counts, extremes and moments of a float64 array: see _FeatureAccumulator._add_floats / _add_finite
    n = values.size
    finite = nan = pos_inf = neg_inf = zeros = 0
    low, high = np.inf, -np.inf
    total = 0.0
    block = 0.0
    in_block = 0
    for i in range(n):
        v = values[i]
        if np.isfinite(v):
            finite += 1
            if v < low:
                low = v
            if v > high:
                high = v
            if v == 0.0:
                zeros += 1
            block += v
            in_block += 1
            if in_block == 256:
                total += block
                block = 0.0
                in_block = 0
        elif np.isnan(v):
            nan += 1
        elif v > 0:
            pos_inf += 1
        else:
            neg_inf += 1
    total += block
    mean = total / finite if finite else 0.0
    # second pass: the deviations' sum (the mean's rounding error, kept as mean_lo) and squares
    deviation_sum = square_sum = 0.0
    block = block_squares = 0.0
    in_block = 0
    for i in range(n):
        v = values[i]
        if np.isfinite(v):
            d = v - mean
            block += d
            block_squares += d * d
            in_block += 1
            if in_block == 256:
                deviation_sum += block
                square_sum += block_squares
                block = block_squares = 0.0
                in_block = 0
    deviation_sum += block
    square_sum += block_squares
    correction = deviation_sum / finite if finite else 0.0
    return finite, nan, pos_inf, neg_inf, zeros, low, high, mean, correction, square_sum


@_jit
def _valid(bitmap, offset, i):
    # bit offset + i of an Arrow validity bitmap (an empty bitmap: every slot is valid)
    if bitmap.size == 0:
        return True
    j = offset + i
    return (bitmap[j >> 3] >> (j & 7)) & 1 == 1


@_jit
def valid_min_max(values, bitmap, offset):
    # (count, min, max) of the valid slots of an integer array
    count = 0
    low = values[0]
    high = values[0]
    for i in range(values.size):
        if _valid(bitmap, offset, i):
            v = values[i]
            if count == 0 or v < low:
                low = v
            if count == 0 or v > high:
                high = v
            count += 1
    return count, low, high


@_jit
def valid_counts(values, bitmap, offset, low, size):
    # occurrences of low .. low + size - 1 among the valid slots (values outside that range are not counted)
    counts = np.zeros(size, np.int64)
    for i in range(values.size):
        if _valid(bitmap, offset, i):
            k = np.int64(values[i]) - low
            if 0 <= k < size:
                counts[k] += 1
    return counts


@_jit
def sort_floats(values):
    # a sorted copy of finite float64 values (-0.0 as 0.0): LSD radix sort, 11-bit digits, of order-preserving keys
    n = values.size
    keys = values.view(np.uint64).copy()
    top = np.uint64(1) << np.uint64(63)
    for i in range(n):
        k = keys[i]
        if k == top:  # -0.0 sorts (and comes out) as 0.0
            k = np.uint64(0)
        keys[i] = ~k if k & top else k | top
    spare = np.empty_like(keys)
    counts = np.empty(2048, np.int64)
    for digit in range(6):
        shift = np.uint64(11 * digit)
        counts[:] = 0
        for i in range(n):
            counts[(keys[i] >> shift) & np.uint64(2047)] += 1
        if counts.max() == n:  # every key has this digit: the pass would not move anything
            continue
        total = 0
        for d in range(2048):
            c = counts[d]
            counts[d] = total
            total += c
        for i in range(n):
            d = (keys[i] >> shift) & np.uint64(2047)
            spare[counts[d]] = keys[i]
            counts[d] += 1
        keys, spare = spare, keys
    for i in range(n):
        k = keys[i]
        keys[i] = k & ~top if k & top else ~k
    return keys.view(np.float64)
