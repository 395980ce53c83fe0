/* Compiled loops behind kfpc.components.statistics.kernels (see that module for what each computes and for
 * the NumPy code each must equal). Plain C over the buffer protocol: no NumPy C API, no dependency. Every
 * function releases the GIL around its loop, so the statistics' worker threads run them at once.
 *
 * Arguments are buffers of the element type named in each function's comment (the Python wrapper in
 * kernels.py checks dtypes and contiguity and allocates the outputs).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the string hash loads little-endian words: big-endian machines take the NumPy path"
#endif

/* The vector loops get an AVX2 clone beside the baseline one where GCC can dispatch at load time (ifunc:
 * x86-64 Linux); elsewhere they compile for the baseline (SSE2, NEON). Floating-point contraction is off
 * (setup.py), so both clones round alike. */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define KFPC_SIMD __attribute__((target_clones("avx2", "default")))
#else
#define KFPC_SIMD
#endif

static void release_buffers(Py_buffer *views, int count) {
    for (int i = 0; i < count; i++) PyBuffer_Release(&views[i]);
}

/* The buffers of a call's `count` array arguments, all or none: modes[i] is 'r' (read) or 'w' (written),
 * names[i] names it in the error. On failure the ones already taken are released and -1 returned. */
static int get_buffers(Py_buffer *views, PyObject *const *objects, const char *modes, const char *const *names,
                       int count) {
    for (int i = 0; i < count; i++) {
        int writable = modes[i] == 'w';
        if (PyObject_GetBuffer(objects[i], &views[i], (writable ? PyBUF_WRITABLE : 0) | PyBUF_C_CONTIGUOUS) < 0) {
            PyErr_Format(PyExc_TypeError, "%s: a C-contiguous%s buffer expected", names[i],
                         writable ? " writable" : "");
            release_buffers(views, i);
            return -1;
        }
    }
    return 0;
}

/* The call's buffers released and `message` raised (ValueError): NULL, for `return refuse(...)`. */
static PyObject *refuse(Py_buffer *views, int count, const char *message) {
    release_buffers(views, count);
    PyErr_SetString(PyExc_ValueError, message);
    return NULL;
}

/* ---- hash of string slots (sketches.hash_binary) ---- */

/* the low `take` (0..8) bytes of a word */
static inline uint64_t word_mask(int64_t take) {
    return take >= 8 ? ~(uint64_t)0 : (((uint64_t)1) << (8 * take)) - 1;
}

/* the `take` (0..8) bytes at `at` as a little-endian word, zero-padded; never reads past the buffer */
static inline uint64_t load_word(const uint8_t *data, Py_ssize_t size, int64_t at, int64_t take) {
    uint64_t word = 0;
    if (at + 8 <= size) {
        memcpy(&word, data + at, 8); /* little-endian x86/ARM: bytes at..at+7, low byte first */
        return word & word_mask(take);
    }
    for (int64_t b = 0; b < take; b++) word |= ((uint64_t)data[at + b]) << (8 * b);
    return word;
}

static inline uint64_t mix_word(uint64_t h, uint64_t word) {
    h ^= word;
    h *= 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

/* hash_binary's hash of the `length` bytes at `start` of the data buffer (`size` bytes). Values of up to 16
 * bytes (most categorical and id strings; a null slot's 0) take no branch on their length, so that mixed
 * lengths and nulls cost no mispredicted branch: both words are mixed and the second kept only if it counts. */
static inline uint64_t hash_value(const uint8_t *bytes, Py_ssize_t size, int64_t start, int64_t length) {
    uint64_t h = (uint64_t)length * 0xD6E8FEB86659FD93ULL;
    if (length <= 16) {
        int64_t second = length > 8 ? length - 8 : 0;
        uint64_t one, two, first_word, second_word;
        if (start + 16 <= size) { /* (all but the last few values of a buffer: no check per word) */
            memcpy(&first_word, bytes + start, 8);
            memcpy(&second_word, bytes + start + 8, 8);
            first_word &= word_mask(length < 8 ? length : 8);
            second_word &= word_mask(second);
        } else {
            first_word = load_word(bytes, size, start, length < 8 ? length : 8);
            second_word = load_word(bytes, size, start + 8, second);
        }
        one = mix_word(h, first_word);
        two = mix_word(one, second_word);
        h = second > 0 ? two : one;
    } else {
        for (int64_t position = 0; position < length; position += 8)
            h = mix_word(h, load_word(bytes, size, start + position, length - position < 8 ? length - position : 8));
    }
    h += 0x9E3779B97F4A7C15ULL; /* SplitMix64 finalizer */
    h ^= h >> 30;
    h *= 0xBF58476D1CE4E5B9ULL;
    h ^= h >> 27;
    h *= 0x94D049BB133111EBULL;
    h ^= h >> 31;
    return h;
}

/* Arrow offsets of string slots: int32 (width 4) or int64 (width 8) */
#define OFFSET(off, width, i) ((width) == 8 ? ((const int64_t *)(off))[i] : (int64_t)((const int32_t *)(off))[i])

/* ---- validity bitmaps (bit `offset + i`: slot i) ---- */

static inline int slot_valid(const uint8_t *bitmap, Py_ssize_t offset, Py_ssize_t i) {
    Py_ssize_t j = offset + i;
    return (bitmap[j >> 3] >> (j & 7)) & 1;
}

/* The validity bits of slots i .. i + 63 (bit j: slot i + j), for i + 64 <= the number of slots */
static inline uint64_t valid_word(const uint8_t *bits, Py_ssize_t offset, Py_ssize_t i) {
    Py_ssize_t first = offset + i, at = first >> 3;
    int shift = (int)(first & 7);
    uint64_t word;
    memcpy(&word, bits + at, 8);
    if (shift) word = (word >> shift) | ((uint64_t)bits[at + 8] << (64 - shift)); /* (that byte exists then) */
    return word;
}

/* Declares `word`: the validity bits of the block of slots i .. stop - 1 (at most 64; bit j: slot i + j); no
 * bitmap: all ones. The loops over a bitmap take it 64 slots at a time: a block of valid slots runs the loop
 * without nulls, a block of nulls is skipped, and only a mixed block looks at each slot's bit. (A macro: as an
 * inline function the integer loops' AVX2 clones ran 25-30% slower on columns with nulls.) */
#define BLOCK_WORD(word, bits, offset, i, stop)                                                           \
    uint64_t word = (bits) == NULL ? ~(uint64_t)0 : (stop) - (i) == 64 ? valid_word(bits, offset, i) : 0; \
    if ((bits) != NULL && (stop) - (i) < 64)                                                              \
        for (Py_ssize_t j_ = (i); j_ < (stop); j_++) word |= (uint64_t)slot_valid(bits, offset, j_) << (j_ - (i));

/* offsets[0..n] ascending within a data buffer of `size` bytes */
static int offsets_ok(const void *off, int width, Py_ssize_t n, Py_ssize_t size) {
    int64_t previous = OFFSET(off, width, 0);
    if (previous < 0 || previous > size) return 0;
    for (Py_ssize_t i = 1; i <= n; i++) {
        int64_t here = OFFSET(off, width, i);
        if (here < previous || here > size) return 0;
        previous = here;
    }
    return 1;
}

/* offsets, width and n from the call's buffers: 1 if they fit (n + 1 offsets of that width) */
static int offsets_fit(Py_buffer *offsets, int width, Py_ssize_t n) {
    return (width == 4 || width == 8) && offsets->len / width >= n + 1;
}

/* hashes[i] = the hash of slot i, for the n slots of checked offsets (a loop per offset width) */
static void hash_all(const void *off, int width, const uint8_t *bytes, Py_ssize_t size, Py_ssize_t n,
                     uint64_t *hashes) {
    if (width == 8) {
        const int64_t *o = (const int64_t *)off;
        for (Py_ssize_t i = 0; i < n; i++) hashes[i] = hash_value(bytes, size, o[i], o[i + 1] - o[i]);
    } else {
        const int32_t *o = (const int32_t *)off;
        for (Py_ssize_t i = 0; i < n; i++) hashes[i] = hash_value(bytes, size, o[i], (int64_t)o[i + 1] - o[i]);
    }
}

/* hash_slots(offsets: int32|int64[n + 1], width, data: bytes, out: uint64[n]) */
static PyObject *hash_slots(PyObject *self, PyObject *args) {
    static const char *const names[] = {"offsets", "data", "out"};
    PyObject *objects[3];
    Py_buffer b[3];
    int width;
    if (!PyArg_ParseTuple(args, "OiOO", &objects[0], &width, &objects[1], &objects[2])) return NULL;
    if (get_buffers(b, objects, "rrw", names, 3) < 0) return NULL;
    Py_ssize_t n = b[2].len / 8, size = b[1].len;
    if (!offsets_fit(&b[0], width, n)) return refuse(b, 3, "hash_slots: fewer offsets than slots + 1");
    const void *off = b[0].buf;
    const uint8_t *bytes = (const uint8_t *)b[1].buf;
    uint64_t *hashes = (uint64_t *)b[2].buf;
    int ok;
    Py_BEGIN_ALLOW_THREADS
    ok = offsets_ok(off, width, n, size);
    if (ok) hash_all(off, width, bytes, size, n, hashes);
    Py_END_ALLOW_THREADS
    if (!ok) return refuse(b, 3, "hash_slots: offsets out of the data buffer");
    release_buffers(b, 3);
    Py_RETURN_NONE;
}

/* ---- distinct hashes with counts (sketches._distinct_counts), in order of first occurrence ---- */

/* An open-addressing table for n entries: int32 indices into them, -1 where empty, at least 2n slots (a power
 * of 2, `mask` its size - 1); NULL if out of memory. A hash starts its probe at slot_of. */
static int32_t *empty_slots(Py_ssize_t n, uint64_t *mask) {
    Py_ssize_t size = 16;
    while (size < 2 * n) size *= 2;
    int32_t *slots = (int32_t *)malloc(sizeof(int32_t) * size);
    if (slots != NULL) memset(slots, 0xff, sizeof(int32_t) * size);
    *mask = (uint64_t)size - 1;
    return slots;
}

static inline uint64_t slot_of(uint64_t value, uint64_t mask) { return (value ^ (value >> 32)) & mask; }

/* Count the distinct values of hashes[0..n) (rows[j]: the slot hashes[j] came from) into unique / counts /
 * first (the first row of each), in order of first occurrence: an open-addressing table of int32 indices
 * (n <= 2**30). Returns the number found, or -1 if out of memory. Runs without the GIL. */
static Py_ssize_t count_distinct(const uint64_t *h, const int64_t *rows, Py_ssize_t n, uint64_t *u, int64_t *c,
                                 int64_t *first) {
    Py_ssize_t found = 0;
    uint64_t mask;
    int32_t *slots = empty_slots(n, &mask);
    if (slots == NULL) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t value = h[i];
        uint64_t s = slot_of(value, mask);
        for (;;) {
            int32_t j = slots[s];
            if (j < 0) {
                slots[s] = (int32_t)found; u[found] = value; c[found] = 1;
                if (first != NULL) first[found] = rows != NULL ? rows[i] : i;
                found++;
                break;
            }
            if (u[j] == value) { c[j]++; break; }
            s = (s + 1) & mask;
        }
    }
    free(slots);
    return found;
}

/* distinct_counts(hashes: uint64[n], unique: uint64[n] out, counts: int64[n] out) -> number found */
static PyObject *distinct_counts(PyObject *self, PyObject *args) {
    static const char *const names[] = {"hashes", "unique", "counts"};
    PyObject *objects[3];
    Py_buffer b[3];
    if (!PyArg_ParseTuple(args, "OOO", &objects[0], &objects[1], &objects[2])) return NULL;
    if (get_buffers(b, objects, "rww", names, 3) < 0) return NULL;
    Py_ssize_t n = b[0].len / 8, found;
    if (n > INT32_MAX / 2) /* the table's slots hold int32 indices */
        return refuse(b, 3, "distinct_counts: more than 2**30 hashes in one call");
    if (b[1].len / 8 < n || b[2].len / 8 < n) return refuse(b, 3, "distinct_counts: outputs shorter than the input");
    Py_BEGIN_ALLOW_THREADS
    found = count_distinct((const uint64_t *)b[0].buf, NULL, n, (uint64_t *)b[1].buf, (int64_t *)b[2].buf, NULL);
    Py_END_ALLOW_THREADS
    release_buffers(b, 3);
    if (found < 0) return PyErr_NoMemory();
    return PyLong_FromSsize_t(found);
}

/* positions_in(table: uint64[m] (distinct), hashes: uint64[n], where: int64[n] out): where[i] = the index of
 * hashes[i] in table, or -1 (sketches._positions_in): an open-addressing table of the m entries, probed only by
 * the hashes whose bit is set in a filter of 64 bits per entry (~1/64 of the absent ones): a probe of a table a
 * third full would branch at random on its first slot. */
static PyObject *positions_in(PyObject *self, PyObject *args) {
    static const char *const names[] = {"table", "hashes", "where"};
    PyObject *objects[3];
    Py_buffer b[3];
    if (!PyArg_ParseTuple(args, "OOO", &objects[0], &objects[1], &objects[2])) return NULL;
    if (get_buffers(b, objects, "rrw", names, 3) < 0) return NULL;
    Py_ssize_t m = b[0].len / 8, n = b[1].len / 8;
    if (b[2].len / 8 < n) return refuse(b, 3, "positions_in: output shorter than the input");
    if (m > INT32_MAX / 2) return refuse(b, 3, "positions_in: more than 2**30 table entries");
    Py_ssize_t filter_bits = 64;
    while (filter_bits < 64 * m) filter_bits *= 2;
    uint64_t mask;
    int32_t *slots = empty_slots(m, &mask);
    uint64_t *filter = (uint64_t *)calloc((size_t)(filter_bits / 64), sizeof(uint64_t));
    if (slots == NULL || filter == NULL) {
        free(slots); free(filter);
        release_buffers(b, 3);
        return PyErr_NoMemory();
    }
    const uint64_t *table = (const uint64_t *)b[0].buf, *h = (const uint64_t *)b[1].buf;
    int64_t *where = (int64_t *)b[2].buf;
    Py_BEGIN_ALLOW_THREADS
    uint64_t filter_mask = (uint64_t)filter_bits - 1;
    for (Py_ssize_t j = 0; j < m; j++) {
        uint64_t bit = table[j] & filter_mask;
        filter[bit >> 6] |= (uint64_t)1 << (bit & 63);
        uint64_t s = slot_of(table[j], mask);
        while (slots[s] >= 0 && table[slots[s]] != table[j]) s = (s + 1) & mask;
        if (slots[s] < 0) slots[s] = (int32_t)j; /* (a repeated entry keeps its first index) */
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t value = h[i], bit = value & filter_mask;
        int64_t found = -1;
        if ((filter[bit >> 6] >> (bit & 63)) & 1) {
            uint64_t s = slot_of(value, mask);
            for (;;) {
                int32_t j = slots[s];
                if (j < 0) break;
                if (table[j] == value) { found = j; break; }
                s = (s + 1) & mask;
            }
        }
        where[i] = found;
    }
    Py_END_ALLOW_THREADS
    free(slots);
    free(filter);
    release_buffers(b, 3);
    Py_RETURN_NONE;
}

/* count_strings(offsets: int32|int64[n + 1], width, data: bytes, bitmap: uint8 (empty: no nulls), bit offset,
 *               unique: uint64[n] out, counts: int64[n] out, first: int64[n] out) -> (found, present, bytes)
 * The valid slots' values counted by hash (FrequencySketch.add_values) in one call: each valid slot's hash
 * (hash_slots) and row, compacted without a branch on validity, then their distinct hashes with counts and
 * the first row of each (count_distinct); also the number of valid slots and their bytes. */
static PyObject *count_strings(PyObject *self, PyObject *args) {
    static const char *const names[] = {"offsets", "data", "bitmap", "unique", "counts", "first"};
    PyObject *objects[6];
    Py_buffer b[6];
    int width;
    Py_ssize_t bit_offset;
    if (!PyArg_ParseTuple(args, "OiOOnOOO", &objects[0], &width, &objects[1], &objects[2], &bit_offset, &objects[3],
                          &objects[4], &objects[5]))
        return NULL;
    if (get_buffers(b, objects, "rrrwww", names, 6) < 0) return NULL;
    Py_ssize_t n = b[3].len / 8, size = b[1].len, nbits = b[2].len;
    if (b[4].len / 8 < n || b[5].len / 8 < n) return refuse(b, 6, "count_strings: outputs shorter than the slots");
    if (!offsets_fit(&b[0], width, n)) return refuse(b, 6, "count_strings: fewer offsets than slots + 1");
    if (n > INT32_MAX / 2) return refuse(b, 6, "count_strings: more than 2**30 slots in one call");
    if (bit_offset < 0 || (nbits && (bit_offset + n + 7) / 8 > nbits))
        return refuse(b, 6, "count_strings: bitmap shorter than the slots");
    const void *off = b[0].buf;
    const uint8_t *bytes = (const uint8_t *)b[1].buf, *bits = (const uint8_t *)b[2].buf;
    uint64_t *hashes = (uint64_t *)malloc(sizeof(uint64_t) * (n ? n : 1));
    int64_t *rows = (int64_t *)malloc(sizeof(int64_t) * (n ? n : 1));
    Py_ssize_t present = 0, found = 0;
    int64_t total = 0;
    int memory = hashes != NULL && rows != NULL, ok = 0;
    if (memory) {
        Py_BEGIN_ALLOW_THREADS
        ok = offsets_ok(off, width, n, size);
        if (ok) {
            hash_all(off, width, bytes, size, n, hashes);
            if (nbits) {
                for (Py_ssize_t i = 0; i < n; i++) {
                    int valid = slot_valid(bits, bit_offset, i);
                    hashes[present] = hashes[i];
                    rows[present] = i;
                    total += valid ? OFFSET(off, width, i + 1) - OFFSET(off, width, i) : 0;
                    present += valid;
                }
            } else {
                for (Py_ssize_t i = 0; i < n; i++) rows[i] = i;
                present = n;
                total = OFFSET(off, width, n) - OFFSET(off, width, 0);
            }
            found = count_distinct(hashes, rows, present, (uint64_t *)b[3].buf, (int64_t *)b[4].buf,
                                   (int64_t *)b[5].buf);
        }
        Py_END_ALLOW_THREADS
    }
    free(hashes);
    free(rows);
    if (!memory || found < 0) {
        release_buffers(b, 6);
        return PyErr_NoMemory();
    }
    if (!ok) return refuse(b, 6, "count_strings: offsets out of the data buffer");
    release_buffers(b, 6);
    return Py_BuildValue("(nnL)", found, present, (long long)total);
}

/* ---- the Misra-Gries step of a batch (sketches.FrequencySketch._merge) ---- */

/* the k-th smallest (0-based) of v[0..n), n > k; v is reordered (Hoare partition, middle pivot). (GCC cannot see
 * that the caller filled v[0..n) and warns of uninitialized reads when it inlines this.) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
static int64_t kth_smallest(int64_t *v, Py_ssize_t n, Py_ssize_t k) {
    Py_ssize_t low = 0, high = n - 1;
    while (low < high) {
        int64_t pivot = v[low + (high - low) / 2];
        Py_ssize_t i = low, j = high;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) { int64_t t = v[i]; v[i] = v[j]; v[j] = t; i++; j--; }
        }
        if (k <= j) high = j;
        else if (k >= i) low = i;
        else break; /* v[j + 1 .. i - 1] all equal the pivot */
    }
    return v[k];
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/* mg_merge(where: int64[m], counts: int64[m], old: int64[k], capacity, out_old: int64[k] out, keep_old: uint8[k] out,
 *          new_index: int64[m] out, new_counts: int64[m] out) -> (over, threshold, kept_old, kept_new)
 * The summary's k counts plus the counts of the m incoming distinct values found in it (where[i] >= 0: its index
 * there); the others are new. Past `capacity` counters together (over = 1), the (capacity + 1)-th largest
 * count (1 when at most `capacity` counts exceed 1) is the threshold: it is subtracted from every counter and
 * those not above it are dropped. Out: out_old[0..kept_old) the kept old counts, keep_old[j] whether old counter j
 * is kept, new_index[0..kept_new) the incoming new values kept (ascending) and new_counts their counts, all
 * after the subtraction (not over: threshold 0 and every counter kept). */
static PyObject *mg_merge(PyObject *self, PyObject *args) {
    static const char *const names[] = {"where", "counts", "old", "out_old", "keep_old", "new_index", "new_counts"};
    PyObject *objects[7];
    Py_buffer b[7];
    Py_ssize_t capacity;
    if (!PyArg_ParseTuple(args, "OOOnOOOO", &objects[0], &objects[1], &objects[2], &capacity, &objects[3],
                          &objects[4], &objects[5], &objects[6]))
        return NULL;
    if (get_buffers(b, objects, "rrrwwww", names, 7) < 0) return NULL;
    Py_ssize_t m = b[0].len / 8, k = b[2].len / 8;
    if (b[1].len / 8 != m || b[5].len / 8 < m || b[6].len / 8 < m || b[3].len / 8 < k || b[4].len < k)
        return refuse(b, 7, "mg_merge: buffers of mismatched lengths");
    const int64_t *where = (const int64_t *)b[0].buf, *counts = (const int64_t *)b[1].buf;
    int64_t *out_old = (int64_t *)b[3].buf, *new_index = (int64_t *)b[5].buf, *new_counts = (int64_t *)b[6].buf;
    uint8_t *keep_old = (uint8_t *)b[4].buf;
    int64_t *repeated = (int64_t *)malloc(sizeof(int64_t) * (size_t)(m + k ? m + k : 1));
    if (repeated == NULL) { release_buffers(b, 7); return PyErr_NoMemory(); }
    int bad = 0, over = 0;
    int64_t threshold = 0;
    Py_ssize_t kept_old = 0, kept_new = 0;
    Py_BEGIN_ALLOW_THREADS
    memcpy(out_old, b[2].buf, 8 * (size_t)k);
    Py_ssize_t fresh = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t w = where[i];
        if (w >= 0) {
            if (w >= k) { bad = 1; break; }
            out_old[w] += counts[i];
        } else {
            fresh++;
        }
    }
    if (!bad) {
        over = k + fresh > capacity;
        if (over) {
            Py_ssize_t r = 0;
            for (Py_ssize_t j = 0; j < k; j++) if (out_old[j] > 1) repeated[r++] = out_old[j];
            for (Py_ssize_t i = 0; i < m; i++) if (where[i] < 0 && counts[i] > 1) repeated[r++] = counts[i];
            threshold = r <= capacity ? 1 : kth_smallest(repeated, r, r - capacity - 1);
        }
        for (Py_ssize_t j = 0; j < k; j++) {
            int keep = !over || out_old[j] > threshold;
            keep_old[j] = (uint8_t)keep;
            out_old[kept_old] = out_old[j] - threshold;
            kept_old += keep;
        }
        for (Py_ssize_t i = 0; i < m; i++) {
            if (where[i] < 0 && (!over || counts[i] > threshold)) {
                new_index[kept_new] = i;
                new_counts[kept_new] = counts[i] - threshold;
                kept_new++;
            }
        }
    }
    Py_END_ALLOW_THREADS
    free(repeated);
    if (bad) return refuse(b, 7, "mg_merge: a summary index out of range");
    release_buffers(b, 7);
    return Py_BuildValue("(iLnn)", over, (long long)threshold, kept_old, kept_new);
}

/* ---- HyperLogLog registers (sketches.HyperLogLog.add_hashes) ---- */

/* hll_add(registers: uint8[2**p] out, hashes: uint64[n], p) */
static PyObject *hll_add(PyObject *self, PyObject *args) {
    static const char *const names[] = {"registers", "hashes"};
    PyObject *objects[2];
    Py_buffer b[2];
    int p;
    if (!PyArg_ParseTuple(args, "OOi", &objects[0], &objects[1], &p)) return NULL;
    if (p < 4 || p > 18) { PyErr_SetString(PyExc_ValueError, "hll_add: precision out of range"); return NULL; }
    if (get_buffers(b, objects, "wr", names, 2) < 0) return NULL;
    if (b[0].len != ((Py_ssize_t)1 << p)) return refuse(b, 2, "hll_add: register count is not 2**precision");
    uint8_t *r = (uint8_t *)b[0].buf;
    const uint64_t *h = (const uint64_t *)b[1].buf;
    Py_ssize_t n = b[1].len / 8;
    Py_BEGIN_ALLOW_THREADS
    int width = 64 - p;
    uint64_t rest_mask = (((uint64_t)1) << width) - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t index = h[i] >> width, rest = h[i] & rest_mask;
        int bits = rest ? 64 - __builtin_clzll(rest) : 0;
        uint8_t rank = (uint8_t)(width + 1 - bits);
        if (rank > r[index]) r[index] = rank;
    }
    Py_END_ALLOW_THREADS
    release_buffers(b, 2);
    Py_RETURN_NONE;
}

/* ---- counts, extremes and moments of float64 values (core._add_floats / _add_finite) ---- */

/* moments(values: float64[n]) -> (finite, nan, +inf, -inf, zeros, min, max, mean, correction, squares)
 * Sums run in 4 lanes (i mod 4) over chunks of 1024 values, the chunks' sums added in order: 4 independent
 * add chains instead of one (the loop is otherwise bound by the latency of a float add), and an error of
 * ~(256 + n / 1024) ulp against NumPy's pairwise ~log2(n). The 4 lanes are one vector of 4 doubles (GCC/clang
 * vector extensions: SSE2 pairs on any x86-64, NEON on ARM, one AVX2 register where the AVX2 clone runs), and
 * a non-finite value is blended to 0.0 rather than branched on: the lanes add exactly what a scalar loop
 * adds (x + 0.0 == x for a sum that starts at +0.0), so every machine gets the same bits. */
#define CHUNK 1024
typedef double v4d __attribute__((vector_size(32)));
typedef int64_t v4l __attribute__((vector_size(32)));
#define BLEND(mask, a, b) ((v4d)(((v4l)(a) & (mask)) | ((v4l)(b) & ~(mask))))

/* first pass: finite count, zeros, min, max and the sum of the finite values; the non-finite ones by kind */
KFPC_SIMD static void moments_first(const double *v, Py_ssize_t n, long long counts[5], double *low, double *high,
                                    double *total_out) {
    const double inf = INFINITY;
    v4d lo = {inf, inf, inf, inf}, hi = {-inf, -inf, -inf, -inf};
    v4l finite = {0, 0, 0, 0}, zeros = {0, 0, 0, 0};
    double total = 0.0;
    long long nan = 0, pos_inf = 0, neg_inf = 0, tail_finite = 0, tail_zeros = 0;
    double tlo = inf, thi = -inf;
    for (Py_ssize_t start = 0; start < n; start += CHUNK) {
        Py_ssize_t stop = start + CHUNK < n ? start + CHUNK : n, i = start;
        v4d s = {0.0, 0.0, 0.0, 0.0};
        v4l seen = {0, 0, 0, 0};
        for (; i + 4 <= stop; i += 4) {
            v4d x;
            memcpy(&x, v + i, sizeof x);
            v4l ok = (x - x) == 0.0; /* -1 where finite (inf - inf and nan - nan are NaN) */
            s += BLEND(ok, x, s - s);
            seen -= ok;
            zeros -= ok & (x == 0.0);
            lo = BLEND(ok & (x < lo), x, lo);
            hi = BLEND(ok & (x > hi), x, hi);
        }
        long long chunk_finite = seen[0] + seen[1] + seen[2] + seen[3];
        finite += seen;
        if (chunk_finite != (i - start)) { /* rare: classify this chunk's non-finite values */
            for (Py_ssize_t j = start; j < i; j++) {
                double x = v[j];
                if (!isfinite(x)) { if (isnan(x)) nan++; else if (x > 0) pos_inf++; else neg_inf++; }
            }
        }
        double lane[4] = {s[0], s[1], s[2], s[3]};
        for (; i < stop; i++) { /* the chunk's last (n mod 4) values, into their lanes */
            double x = v[i];
            if (isfinite(x)) {
                tail_finite++; tlo = x < tlo ? x : tlo; thi = x > thi ? x : thi; tail_zeros += x == 0.0;
                lane[i & 3] += x;
            } else if (isnan(x)) { nan++; } else if (x > 0) { pos_inf++; } else { neg_inf++; }
        }
        total += (lane[0] + lane[1]) + (lane[2] + lane[3]);
    }
    double l = lo[0] < lo[1] ? lo[0] : lo[1], h = hi[0] > hi[1] ? hi[0] : hi[1];
    l = lo[2] < l ? lo[2] : l; l = lo[3] < l ? lo[3] : l; l = tlo < l ? tlo : l;
    h = hi[2] > h ? hi[2] : h; h = hi[3] > h ? hi[3] : h; h = thi > h ? thi : h;
    counts[0] = finite[0] + finite[1] + finite[2] + finite[3] + tail_finite;
    counts[1] = nan; counts[2] = pos_inf; counts[3] = neg_inf;
    counts[4] = zeros[0] + zeros[1] + zeros[2] + zeros[3] + tail_zeros;
    *low = l; *high = h; *total_out = total;
}

/* second pass: the sum of the finite values' deviations from the mean, and of their squares */
KFPC_SIMD static void moments_second(const double *v, Py_ssize_t n, double mean, double *deviations_out,
                                     double *squares_out) {
    double deviations = 0.0, squares = 0.0;
    v4d m = {mean, mean, mean, mean};
    for (Py_ssize_t start = 0; start < n; start += CHUNK) {
        Py_ssize_t stop = start + CHUNK < n ? start + CHUNK : n, i = start;
        v4d d = {0.0, 0.0, 0.0, 0.0}, q = {0.0, 0.0, 0.0, 0.0};
        for (; i + 4 <= stop; i += 4) {
            v4d x;
            memcpy(&x, v + i, sizeof x);
            v4l ok = (x - x) == 0.0;
            v4d e = BLEND(ok, x - m, d - d); /* a non-finite value adds nothing */
            d += e;
            v4d square = e * e;
            q += square;
        }
        double dl[4] = {d[0], d[1], d[2], d[3]}, ql[4] = {q[0], q[1], q[2], q[3]};
        for (; i < stop; i++) {
            double e = isfinite(v[i]) ? v[i] - mean : 0.0;
            double square = e * e;
            dl[i & 3] += e; ql[i & 3] += square;
        }
        deviations += (dl[0] + dl[1]) + (dl[2] + dl[3]);
        squares += (ql[0] + ql[1]) + (ql[2] + ql[3]);
    }
    *deviations_out = deviations; *squares_out = squares;
}
#undef BLEND

static PyObject *moments(PyObject *self, PyObject *args) {
    static const char *const names[] = {"values"};
    PyObject *objects[1];
    Py_buffer values;
    if (!PyArg_ParseTuple(args, "O", &objects[0])) return NULL;
    if (get_buffers(&values, objects, "r", names, 1) < 0) return NULL;
    const double *v = (const double *)values.buf;
    Py_ssize_t n = values.len / 8;
    long long counts[5];
    double low, high, total, mean = 0.0, correction = 0.0, squares = 0.0;
    Py_BEGIN_ALLOW_THREADS
    moments_first(v, n, counts, &low, &high, &total);
    if (counts[0]) {
        mean = total / (double)counts[0];
        double deviations;
        moments_second(v, n, mean, &deviations, &squares);
        correction = deviations / (double)counts[0];
    }
    Py_END_ALLOW_THREADS
    release_buffers(&values, 1);
    return Py_BuildValue("(LLLLLddddd)", counts[0], counts[1], counts[2], counts[3], counts[4], low, high, mean, correction,
                         squares);
}

/* ---- integers: extremes and counts of the valid slots (core._add_narrow_integers, core._code_counts) ---- */

/* The loops below are written once per integer type (INT_TYPES) so that each compiles to a tight loop; a
 * batch without nulls (empty bitmap) takes a loop without the bit test. */
#define INT_TYPES(X) X(1, int8_t) X(2, int16_t) X(3, int32_t) X(4, int64_t) X(5, uint8_t) X(6, uint16_t) X(7, uint32_t)

/* Both loops read the validity bitmap by blocks (BLOCK_WORD); a mixed block's slots are taken without a branch
 * on their bit (a null, or a value out of range, is blended away). The loops get the AVX2 clone (KFPC_SIMD). */
#define MIN_MAX(CODE, T)                                                                                  \
    KFPC_SIMD static void min_max_##CODE(const T *v, Py_ssize_t n, const uint8_t *bits, Py_ssize_t offset, \
                                         long long *count, int64_t *low, int64_t *high) {                 \
        long long c = 0;                                                                                  \
        int64_t lo = INT64_MAX, hi = INT64_MIN;                                                           \
        Py_ssize_t i = 0;                                                                                 \
        for (; i < n; i += 64) {                                                                          \
            Py_ssize_t stop = i + 64 <= n ? i + 64 : n;                                                   \
            BLOCK_WORD(word, bits, offset, i, stop)                                                       \
            if (word == ~(uint64_t)0) {                                                                   \
                for (Py_ssize_t j = i; j < stop; j++) {                                                   \
                    int64_t x = (int64_t)v[j];                                                            \
                    lo = x < lo ? x : lo;                                                                 \
                    hi = x > hi ? x : hi;                                                                 \
                }                                                                                         \
                c += stop - i;                                                                            \
            } else if (word) {                                                                            \
                for (Py_ssize_t j = i; j < stop; j++) {                                                   \
                    int valid = (int)((word >> (j - i)) & 1);                                             \
                    int64_t x = (int64_t)v[j];                                                            \
                    lo = valid && x < lo ? x : lo;                                                        \
                    hi = valid && x > hi ? x : hi;                                                        \
                    c += valid;                                                                           \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
        if (c == 0) { lo = 0; hi = 0; }                                                                   \
        *count = c; *low = lo; *high = hi;                                                                \
    }
INT_TYPES(MIN_MAX)

/* c has size + 1 bins: the last takes the nulls and the values out of range (dropped by the caller) */
#define COUNTS(CODE, T)                                                                                   \
    static void counts_##CODE(const T *v, Py_ssize_t n, const uint8_t *bits, Py_ssize_t offset,           \
                              int64_t low, int64_t *c, uint64_t size) {                                   \
        for (Py_ssize_t i = 0; i < n; i += 64) {                                                          \
            Py_ssize_t stop = i + 64 <= n ? i + 64 : n;                                                   \
            BLOCK_WORD(word, bits, offset, i, stop)                                                       \
            if (word == ~(uint64_t)0) {                                                                   \
                for (Py_ssize_t j = i; j < stop; j++) {                                                   \
                    uint64_t k = (uint64_t)((int64_t)v[j] - low);                                         \
                    c[k < size ? k : size]++;                                                             \
                }                                                                                         \
            } else if (word) {                                                                            \
                for (Py_ssize_t j = i; j < stop; j++) {                                                   \
                    uint64_t k = (uint64_t)((int64_t)v[j] - low);                                         \
                    c[((word >> (j - i)) & 1) && k < size ? k : size]++;                                  \
                }                                                                                         \
            }                                                                                             \
        }                                                                                                 \
    }
INT_TYPES(COUNTS)

static const int item_sizes[8] = {0, 1, 2, 4, 8, 1, 2, 4};

/* The buffers of an integer call (b[0]: values of type `code`, b[1]: their validity bitmap, b[2] if
 * count is 3: the counts written) and the number of values; on an error, as get_buffers: -1, none held. */
static const char *const int_names[] = {"values", "bitmap", "counts"};

static int int_buffers(Py_buffer *b, PyObject *const *objects, const char *modes, int count, int code,
                       Py_ssize_t offset, Py_ssize_t *n) {
    if (code < 1 || code > 7) { PyErr_SetString(PyExc_ValueError, "integer type code out of range"); return -1; }
    if (get_buffers(b, objects, modes, int_names, count) < 0) return -1;
    *n = b[0].len / item_sizes[code];
    if (b[1].len && (offset < 0 || (offset + *n + 7) / 8 > b[1].len)) {
        refuse(b, count, "validity bitmap shorter than the values");
        return -1;
    }
    return 0;
}

/* valid_min_max(values, code, bitmap: bytes (empty: no nulls), bit offset) -> (count, min, max) */
static PyObject *valid_min_max(PyObject *self, PyObject *args) {
    PyObject *objects[2];
    Py_buffer b[2];
    int code;
    Py_ssize_t offset, n;
    if (!PyArg_ParseTuple(args, "OiOn", &objects[0], &code, &objects[1], &offset)) return NULL;
    if (int_buffers(b, objects, "rr", 2, code, offset, &n) < 0) return NULL;
    const uint8_t *bits = b[1].len ? (const uint8_t *)b[1].buf : NULL;
    long long count = 0;
    int64_t low = 0, high = 0;
    Py_BEGIN_ALLOW_THREADS
    switch (code) {
#define CALL_MIN_MAX(CODE, T) case CODE: min_max_##CODE((const T *)b[0].buf, n, bits, offset, &count, &low, &high); break;
    INT_TYPES(CALL_MIN_MAX)
    }
    Py_END_ALLOW_THREADS
    release_buffers(b, 2);
    return Py_BuildValue("(LLL)", count, (long long)low, (long long)high);
}

/* valid_counts(values, code, bitmap, bit offset, low, counts: int64[size + 1] out, zeroed): occurrences of
 * low .. low + size - 1 among the valid slots in counts[0 .. size) (counts[size]: the nulls and other values) */
static PyObject *valid_counts(PyObject *self, PyObject *args) {
    PyObject *objects[3];
    Py_buffer b[3];
    int code;
    Py_ssize_t offset, n;
    long long low;
    if (!PyArg_ParseTuple(args, "OiOnLO", &objects[0], &code, &objects[1], &offset, &low, &objects[2])) return NULL;
    if (int_buffers(b, objects, "rrw", 3, code, offset, &n) < 0) return NULL;
    const uint8_t *bits = b[1].len ? (const uint8_t *)b[1].buf : NULL;
    int64_t *c = (int64_t *)b[2].buf;
    if (b[2].len < 8) return refuse(b, 3, "valid_counts: no spare bin after the counts");
    uint64_t size = (uint64_t)(b[2].len / 8) - 1;
    Py_BEGIN_ALLOW_THREADS
    switch (code) {
#define CALL_COUNTS(CODE, T) case CODE: counts_##CODE((const T *)b[0].buf, n, bits, offset, (int64_t)low, c, size); break;
    INT_TYPES(CALL_COUNTS)
    }
    Py_END_ALLOW_THREADS
    release_buffers(b, 3);
    Py_RETURN_NONE;
}

/* ---- the valid slots of 8-byte values (core._add_floats: float64 columns with nulls) ---- */

/* compact_valid(values: 8-byte items[n], bitmap, bit offset, out: [n]) -> number of valid slots copied, in order.
 * By blocks (BLOCK_WORD): a valid block is one copy, a null block skipped, a mixed block copied slot by slot
 * without a branch on the bit. */
static PyObject *compact_valid(PyObject *self, PyObject *args) {
    static const char *const names[] = {"values", "bitmap", "out"};
    PyObject *objects[3];
    Py_buffer b[3];
    Py_ssize_t offset;
    if (!PyArg_ParseTuple(args, "OOnO", &objects[0], &objects[1], &offset, &objects[2])) return NULL;
    if (get_buffers(b, objects, "rrw", names, 3) < 0) return NULL;
    Py_ssize_t n = b[0].len / 8;
    if (b[2].len / 8 < n) return refuse(b, 3, "compact_valid: output shorter than the input");
    if (offset < 0 || (offset + n + 7) / 8 > b[1].len) return refuse(b, 3, "compact_valid: bitmap shorter than the values");
    const uint64_t *v = (const uint64_t *)b[0].buf;
    const uint8_t *bits = (const uint8_t *)b[1].buf;
    uint64_t *out = (uint64_t *)b[2].buf;
    Py_ssize_t k = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i += 64) {
        Py_ssize_t stop = i + 64 <= n ? i + 64 : n;
        BLOCK_WORD(word, bits, offset, i, stop)
        if (word == ~(uint64_t)0) {
            memcpy(out + k, v + i, 8 * 64);
            k += 64;
        } else if (word) {
            for (Py_ssize_t j = i; j < stop; j++) {
                out[k] = v[j];
                k += (Py_ssize_t)((word >> (j - i)) & 1);
            }
        }
    }
    Py_END_ALLOW_THREADS
    release_buffers(b, 3);
    return PyLong_FromSsize_t(k);
}

/* ---- sorting the quantile sample (sketches._sort) ---- */

/* sort_floats(values: float64[n], out: float64[n]): out = the values sorted, -0.0 as 0.0 (finite values).
 * LSD radix sort of order-preserving 64-bit keys, 11-bit digits; a digit every key shares is skipped. */
static PyObject *sort_floats(PyObject *self, PyObject *args) {
    static const char *const names[] = {"values", "out"};
    PyObject *objects[2];
    Py_buffer b[2];
    if (!PyArg_ParseTuple(args, "OO", &objects[0], &objects[1])) return NULL;
    if (get_buffers(b, objects, "rw", names, 2) < 0) return NULL;
    Py_ssize_t n = b[0].len / 8;
    if (b[1].len / 8 < n) return refuse(b, 2, "sort_floats: output shorter than the input");
    uint64_t *keys = (uint64_t *)b[1].buf;
    uint64_t *spare = (uint64_t *)malloc(sizeof(uint64_t) * (n ? n : 1));
    Py_ssize_t *histograms = (Py_ssize_t *)calloc(6 * 2048, sizeof(Py_ssize_t));
    if (spare == NULL || histograms == NULL) {
        free(spare); free(histograms);
        release_buffers(b, 2);
        return PyErr_NoMemory();
    }
    const uint64_t top = ((uint64_t)1) << 63;
    Py_BEGIN_ALLOW_THREADS
    memcpy(keys, b[0].buf, 8 * n);
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t k = keys[i];
        if (k == top) k = 0; /* -0.0 as 0.0 */
        keys[i] = (k & top) ? ~k : (k | top);
    }
    /* the histograms of all 6 digits in one pass, then a scatter pass per digit that not every key shares */
    Py_ssize_t (*counts)[2048] = (Py_ssize_t (*)[2048])histograms; /* 6 x 2048, zeroed */
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t k = keys[i];
        for (int digit = 0; digit < 6; digit++) counts[digit][(k >> (11 * digit)) & 2047]++;
    }
    uint64_t *from = keys, *to = spare;
    for (int digit = 0; digit < 6; digit++) {
        int shift = 11 * digit;
        Py_ssize_t *c = counts[digit];
        if (n == 0 || c[(from[0] >> shift) & 2047] == n) continue; /* every key has this digit */
        Py_ssize_t total = 0;
        for (int d = 0; d < 2048; d++) { Py_ssize_t here = c[d]; c[d] = total; total += here; }
        for (Py_ssize_t i = 0; i < n; i++) to[c[(from[i] >> shift) & 2047]++] = from[i];
        uint64_t *t = from; from = to; to = t;
    }
    if (from != keys) memcpy(keys, from, 8 * n);
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t k = keys[i];
        keys[i] = (k & top) ? (k & ~top) : ~k;
    }
    Py_END_ALLOW_THREADS
    free(spare);
    free(histograms);
    release_buffers(b, 2);
    Py_RETURN_NONE;
}

/* ---- protobuf wire bytes of StringStatistics' top_values and rank_histogram (core._encode_top_values) ---- */

static inline Py_ssize_t varint_size(uint64_t v) {
    Py_ssize_t size = 1;
    while (v >= 0x80) { v >>= 7; size++; }
    return size;
}

static inline uint8_t *put_varint(uint8_t *out, uint64_t v) {
    while (v >= 0x80) { *out++ = (uint8_t)(v | 0x80); v >>= 7; }
    *out++ = (uint8_t)v;
    return out;
}

/* tag, length, label bytes, then a double field (8 bytes little-endian) */
static inline uint8_t *put_label_and_double(uint8_t *out, uint8_t label_tag, const uint8_t *label, int64_t length,
                                            uint8_t double_tag, double value) {
    *out++ = label_tag;
    out = put_varint(out, (uint64_t)length);
    memcpy(out, label, (size_t)length);
    out += length;
    *out++ = double_tag;
    memcpy(out, &value, 8);
    return out + 8;
}

/* encode_top_values(offsets: int64[n + 1], data: bytes, counts: float64[n]) -> bytes
 * Per entry i with label L and count c: top_values (field 3) FreqAndValue{value(2)=L, frequency(3)=c}, then one
 * rank_histogram (field 5) of buckets (field 1) Bucket{low_rank(1)=i, high_rank(2)=i, label(4)=L,
 * sample_count(5)=c}: the bytes the NumPy encoder writes (proto3 zeros included, which parse the same). */
static PyObject *encode_top_values(PyObject *self, PyObject *args) {
    static const char *const names[] = {"offsets", "data", "counts"};
    PyObject *objects[3];
    Py_buffer b[3];
    if (!PyArg_ParseTuple(args, "OOO", &objects[0], &objects[1], &objects[2])) return NULL;
    if (get_buffers(b, objects, "rrr", names, 3) < 0) return NULL;
    Py_ssize_t n = b[2].len / 8;
    if (b[0].len / 8 < n + 1) return refuse(b, 3, "encode_top_values: fewer offsets than labels + 1");
    const int64_t *off = (const int64_t *)b[0].buf;
    const uint8_t *bytes = (const uint8_t *)b[1].buf;
    const double *counts = (const double *)b[2].buf;
    if (!offsets_ok(off, 8, n, b[1].len)) return refuse(b, 3, "encode_top_values: offsets out of the data buffer");
    Py_ssize_t top = 0, histogram = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t length = off[i + 1] - off[i];
        Py_ssize_t value = 1 + varint_size((uint64_t)length) + length + 9;
        Py_ssize_t bucket = 2 * (1 + varint_size((uint64_t)i)) + 1 + varint_size((uint64_t)length) + length + 9;
        top += 1 + varint_size((uint64_t)value) + value;
        histogram += 1 + varint_size((uint64_t)bucket) + bucket;
    }
    Py_ssize_t total = n ? top + 1 + varint_size((uint64_t)histogram) + histogram : 0;
    PyObject *result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL) {
        release_buffers(b, 3);
        return NULL;
    }
    uint8_t *out = (uint8_t *)PyBytes_AS_STRING(result);
    if (n) {
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t length = off[i + 1] - off[i];
            *out++ = 0x1A;
            out = put_varint(out, (uint64_t)(1 + varint_size((uint64_t)length) + length + 9));
            out = put_label_and_double(out, 0x12, bytes + off[i], length, 0x19, counts[i]);
        }
        *out++ = 0x2A;
        out = put_varint(out, (uint64_t)histogram);
        for (Py_ssize_t i = 0; i < n; i++) {
            int64_t length = off[i + 1] - off[i];
            *out++ = 0x0A;
            out = put_varint(out, (uint64_t)(2 * (1 + varint_size((uint64_t)i)) + 1 + varint_size((uint64_t)length) +
                                             length + 9));
            *out++ = 0x08;
            out = put_varint(out, (uint64_t)i);
            *out++ = 0x10;
            out = put_varint(out, (uint64_t)i);
            out = put_label_and_double(out, 0x22, bytes + off[i], length, 0x29, counts[i]);
        }
    }
    release_buffers(b, 3);
    return result;
}

static PyMethodDef methods[] = {
    {"hash_slots", hash_slots, METH_VARARGS, "hash_binary's hash of every slot"},
    {"distinct_counts", distinct_counts, METH_VARARGS, "distinct uint64 values with counts, first-seen order"},
    {"positions_in", positions_in, METH_VARARGS, "index of each hash in a table of distinct hashes, or -1"},
    {"encode_top_values", encode_top_values, METH_VARARGS, "top_values and rank_histogram wire bytes"},
    {"count_strings", count_strings, METH_VARARGS, "distinct hashed values of the valid string slots, with counts"},
    {"hll_add", hll_add, METH_VARARGS, "HyperLogLog register update"},
    {"moments", moments, METH_VARARGS, "counts, extremes and moments of float64 values"},
    {"valid_min_max", valid_min_max, METH_VARARGS, "count, min, max of the valid slots of integers"},
    {"valid_counts", valid_counts, METH_VARARGS, "counts of integer values in a range over the valid slots"},
    {"compact_valid", compact_valid, METH_VARARGS, "the valid slots of 8-byte values, in order"},
    {"sort_floats", sort_floats, METH_VARARGS, "radix sort of finite float64 values"},
    {"mg_merge", mg_merge, METH_VARARGS, "the Misra-Gries step of a batch's distinct values"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ckernels", "kfpc statistics kernels", -1, methods};

PyMODINIT_FUNC PyInit__ckernels(void) { return PyModule_Create(&module); }
