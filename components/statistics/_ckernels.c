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

static inline uint64_t load_word(const uint8_t *data, Py_ssize_t size, int64_t at, int64_t take) {
    uint64_t word = 0;
    if (take <= 0) return 0;
    if (at + 8 <= size) {
        memcpy(&word, data + at, 8); /* little-endian x86/ARM: bytes at..at+7, low byte first */
        if (take < 8) word &= (((uint64_t)1) << (8 * take)) - 1;
    } else {
        for (int64_t b = 0; b < take; b++) word |= ((uint64_t)data[at + b]) << (8 * b);
    }
    return word;
}

/* hash_slots(offsets: int64[n + 1], data: bytes, out: uint64[n]) */
static PyObject *hash_slots(PyObject *self, PyObject *args) {
    static const char *const names[] = {"offsets", "data", "out"};
    PyObject *objects[3];
    Py_buffer b[3];
    if (!PyArg_ParseTuple(args, "OOO", &objects[0], &objects[1], &objects[2])) return NULL;
    if (get_buffers(b, objects, "rrw", names, 3) < 0) return NULL;
    Py_ssize_t n = b[2].len / 8;
    int ok = b[0].len / 8 >= n + 1;
    if (ok) {
        const int64_t *off = (const int64_t *)b[0].buf;
        const uint8_t *bytes = (const uint8_t *)b[1].buf;
        uint64_t *hashes = (uint64_t *)b[2].buf;
        Py_ssize_t size = b[1].len;
        for (Py_ssize_t i = 0; i <= n && ok; i++) ok = off[i] >= 0 && off[i] <= size && (i == 0 || off[i] >= off[i - 1]);
        if (ok) {
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t i = 0; i < n; i++) {
                int64_t start = off[i], length = off[i + 1] - off[i];
                uint64_t h = (uint64_t)length * 0xD6E8FEB86659FD93ULL;
                int64_t position = 0;
                do {
                    int64_t take = length - position < 8 ? length - position : 8;
                    h ^= load_word(bytes, size, start + position, take);
                    h *= 0x9E3779B97F4A7C15ULL;
                    h ^= h >> 29;
                    position += 8;
                } while (position < length);
                h += 0x9E3779B97F4A7C15ULL; /* SplitMix64 finalizer */
                h ^= h >> 30;
                h *= 0xBF58476D1CE4E5B9ULL;
                h ^= h >> 27;
                h *= 0x94D049BB133111EBULL;
                h ^= h >> 31;
                hashes[i] = h;
            }
            Py_END_ALLOW_THREADS
        }
    }
    if (!ok) return refuse(b, 3, "hash_slots: offsets out of the data buffer");
    release_buffers(b, 3);
    Py_RETURN_NONE;
}

/* ---- distinct hashes with counts (sketches._distinct_counts), in order of first occurrence ---- */

/* distinct_counts(hashes: uint64[n], unique: uint64[n] out, counts: int64[n] out) -> number found */
static PyObject *distinct_counts(PyObject *self, PyObject *args) {
    static const char *const names[] = {"hashes", "unique", "counts"};
    PyObject *objects[3];
    Py_buffer b[3];
    if (!PyArg_ParseTuple(args, "OOO", &objects[0], &objects[1], &objects[2])) return NULL;
    if (get_buffers(b, objects, "rww", names, 3) < 0) return NULL;
    Py_ssize_t n = b[0].len / 8, found = 0;
    if (n > INT32_MAX / 2) /* the table's slots hold int32 indices */
        return refuse(b, 3, "distinct_counts: more than 2**30 hashes in one call");
    if (b[1].len / 8 < n || b[2].len / 8 < n) return refuse(b, 3, "distinct_counts: outputs shorter than the input");
    Py_ssize_t size = 16;
    while (size < 2 * n) size *= 2;
    int32_t *slots = (int32_t *)malloc(sizeof(int32_t) * size);
    if (slots == NULL) {
        release_buffers(b, 3);
        return PyErr_NoMemory();
    }
    const uint64_t *h = (const uint64_t *)b[0].buf;
    uint64_t *u = (uint64_t *)b[1].buf;
    int64_t *c = (int64_t *)b[2].buf;
    Py_BEGIN_ALLOW_THREADS
    memset(slots, 0xff, sizeof(int32_t) * size); /* -1: empty */
    uint64_t mask = (uint64_t)size - 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        uint64_t value = h[i];
        uint64_t s = (value ^ (value >> 32)) & mask;
        for (;;) {
            int32_t j = slots[s];
            if (j < 0) { slots[s] = (int32_t)found; u[found] = value; c[found] = 1; found++; break; }
            if (u[j] == value) { c[j]++; break; }
            s = (s + 1) & mask;
        }
    }
    Py_END_ALLOW_THREADS
    free(slots);
    release_buffers(b, 3);
    return PyLong_FromSsize_t(found);
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
 * ~(256 + n / 1024) ulp against NumPy's pairwise ~log2(n). */
#define CHUNK 1024
static PyObject *moments(PyObject *self, PyObject *args) {
    static const char *const names[] = {"values"};
    PyObject *objects[1];
    Py_buffer values;
    if (!PyArg_ParseTuple(args, "O", &objects[0])) return NULL;
    if (get_buffers(&values, objects, "r", names, 1) < 0) return NULL;
    const double *v = (const double *)values.buf;
    Py_ssize_t n = values.len / 8;
    long long finite = 0, nan = 0, pos_inf = 0, neg_inf = 0, zeros = 0;
    double low = INFINITY, high = -INFINITY, mean = 0.0, correction = 0.0, squares = 0.0;
    Py_BEGIN_ALLOW_THREADS
    double total = 0.0;
    double lo0 = INFINITY, lo1 = INFINITY, lo2 = INFINITY, lo3 = INFINITY;
    double hi0 = -INFINITY, hi1 = -INFINITY, hi2 = -INFINITY, hi3 = -INFINITY;
/* one value into lane L (its own sum, min and max): finite ones counted and summed, the others counted by kind */
#define TAKE(x, S, LO, HI)                                                                                   \
    if (isfinite(x)) {                                                                                       \
        finite++; LO = (x) < LO ? (x) : LO; HI = (x) > HI ? (x) : HI; zeros += (x) == 0.0; S += (x);         \
    } else if (isnan(x)) { nan++; } else if ((x) > 0) { pos_inf++; } else { neg_inf++; }
    for (Py_ssize_t start = 0; start < n; start += CHUNK) {
        Py_ssize_t stop = start + CHUNK < n ? start + CHUNK : n, i = start;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (; i + 4 <= stop; i += 4) {
            double x0 = v[i], x1 = v[i + 1], x2 = v[i + 2], x3 = v[i + 3];
            if (isfinite(x0 - x0 + x1 - x1 + x2 - x2 + x3 - x3)) { /* all four finite (inf - inf is NaN) */
                finite += 4;
                lo0 = x0 < lo0 ? x0 : lo0; lo1 = x1 < lo1 ? x1 : lo1; lo2 = x2 < lo2 ? x2 : lo2; lo3 = x3 < lo3 ? x3 : lo3;
                hi0 = x0 > hi0 ? x0 : hi0; hi1 = x1 > hi1 ? x1 : hi1; hi2 = x2 > hi2 ? x2 : hi2; hi3 = x3 > hi3 ? x3 : hi3;
                zeros += (x0 == 0.0) + (x1 == 0.0) + (x2 == 0.0) + (x3 == 0.0);
                s0 += x0; s1 += x1; s2 += x2; s3 += x3;
            } else {
                TAKE(x0, s0, lo0, hi0) TAKE(x1, s1, lo1, hi1) TAKE(x2, s2, lo2, hi2) TAKE(x3, s3, lo3, hi3)
            }
        }
        for (; i < stop; i++) {
            double x = v[i];
            switch (i & 3) {
            case 0: TAKE(x, s0, lo0, hi0) break;
            case 1: TAKE(x, s1, lo1, hi1) break;
            case 2: TAKE(x, s2, lo2, hi2) break;
            default: TAKE(x, s3, lo3, hi3) break;
            }
        }
        total += (s0 + s1) + (s2 + s3);
    }
#undef TAKE
    low = lo0 < lo1 ? lo0 : lo1; low = lo2 < low ? lo2 : low; low = lo3 < low ? lo3 : low;
    high = hi0 > hi1 ? hi0 : hi1; high = hi2 > high ? hi2 : high; high = hi3 > high ? hi3 : high;
    if (finite) {
        mean = total / (double)finite;
        /* the deviations' sum (the mean's rounding error, kept as mean_lo) and their squares */
        double deviations = 0.0;
        for (Py_ssize_t start = 0; start < n; start += CHUNK) {
            Py_ssize_t stop = start + CHUNK < n ? start + CHUNK : n;
            double d0 = 0.0, d1 = 0.0, d2 = 0.0, d3 = 0.0, q0 = 0.0, q1 = 0.0, q2 = 0.0, q3 = 0.0;
/* a non-finite value adds nothing */
#define DEVIATION(x) (isfinite(x) ? (x) - mean : 0.0)
            Py_ssize_t i = start;
            for (; i + 4 <= stop; i += 4) {
                double e0 = DEVIATION(v[i]), e1 = DEVIATION(v[i + 1]), e2 = DEVIATION(v[i + 2]), e3 = DEVIATION(v[i + 3]);
                d0 += e0; d1 += e1; d2 += e2; d3 += e3;
                q0 += e0 * e0; q1 += e1 * e1; q2 += e2 * e2; q3 += e3 * e3;
            }
            for (; i < stop; i++) {
                double e = DEVIATION(v[i]);
                switch (i & 3) {
                case 0: d0 += e; q0 += e * e; break;
                case 1: d1 += e; q1 += e * e; break;
                case 2: d2 += e; q2 += e * e; break;
                default: d3 += e; q3 += e * e; break;
                }
            }
#undef DEVIATION
            deviations += (d0 + d1) + (d2 + d3);
            squares += (q0 + q1) + (q2 + q3);
        }
        correction = deviations / (double)finite;
    }
    Py_END_ALLOW_THREADS
    release_buffers(&values, 1);
    return Py_BuildValue("(LLLLLddddd)", finite, nan, pos_inf, neg_inf, zeros, low, high, mean, correction, squares);
}

/* ---- integers: extremes and counts of the valid slots (core._add_narrow_integers, core._code_counts) ---- */

/* The loops below are written once per integer type (INT_TYPES) so that each compiles to a tight loop; a
 * batch without nulls (empty bitmap) takes a loop without the bit test. */
#define INT_TYPES(X) X(1, int8_t) X(2, int16_t) X(3, int32_t) X(4, int64_t) X(5, uint8_t) X(6, uint16_t) X(7, uint32_t)

static inline int slot_valid(const uint8_t *bitmap, Py_ssize_t offset, Py_ssize_t i) {
    Py_ssize_t j = offset + i;
    return (bitmap[j >> 3] >> (j & 7)) & 1;
}

#define MIN_MAX(CODE, T)                                                                                  \
    static void min_max_##CODE(const T *v, Py_ssize_t n, const uint8_t *bits, Py_ssize_t offset,          \
                               long long *count, int64_t *low, int64_t *high) {                           \
        long long c = 0;                                                                                  \
        T lo = 0, hi = 0;                                                                                 \
        if (bits == NULL) {                                                                               \
            if (n) { lo = v[0]; hi = v[0]; }                                                              \
            for (Py_ssize_t i = 0; i < n; i++) { T x = v[i]; lo = x < lo ? x : lo; hi = x > hi ? x : hi; } \
            c = n;                                                                                        \
        } else {                                                                                          \
            for (Py_ssize_t i = 0; i < n; i++) {                                                          \
                if (!slot_valid(bits, offset, i)) continue;                                               \
                T x = v[i];                                                                               \
                if (c == 0) { lo = x; hi = x; }                                                           \
                lo = x < lo ? x : lo;                                                                     \
                hi = x > hi ? x : hi;                                                                     \
                c++;                                                                                      \
            }                                                                                             \
        }                                                                                                 \
        *count = c; *low = (int64_t)lo; *high = (int64_t)hi;                                              \
    }
INT_TYPES(MIN_MAX)

#define COUNTS(CODE, T)                                                                                   \
    static void counts_##CODE(const T *v, Py_ssize_t n, const uint8_t *bits, Py_ssize_t offset,           \
                              int64_t low, int64_t *c, uint64_t size) {                                   \
        for (Py_ssize_t i = 0; i < n; i++) {                                                              \
            if (bits != NULL && !slot_valid(bits, offset, i)) continue;                                   \
            uint64_t k = (uint64_t)((int64_t)v[i] - low);                                                 \
            if (k < size) c[k]++;                                                                         \
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

/* valid_counts(values, code, bitmap, bit offset, low, counts: int64[size] out, zeroed): occurrences of
 * low .. low + size - 1 among the valid slots (other values are not counted) */
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
    uint64_t size = (uint64_t)(b[2].len / 8);
    Py_BEGIN_ALLOW_THREADS
    switch (code) {
#define CALL_COUNTS(CODE, T) case CODE: counts_##CODE((const T *)b[0].buf, n, bits, offset, (int64_t)low, c, size); break;
    INT_TYPES(CALL_COUNTS)
    }
    Py_END_ALLOW_THREADS
    release_buffers(b, 3);
    Py_RETURN_NONE;
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

static PyMethodDef methods[] = {
    {"hash_slots", hash_slots, METH_VARARGS, "hash_binary's hash of every slot"},
    {"distinct_counts", distinct_counts, METH_VARARGS, "distinct uint64 values with counts, first-seen order"},
    {"hll_add", hll_add, METH_VARARGS, "HyperLogLog register update"},
    {"moments", moments, METH_VARARGS, "counts, extremes and moments of float64 values"},
    {"valid_min_max", valid_min_max, METH_VARARGS, "count, min, max of the valid slots of integers"},
    {"valid_counts", valid_counts, METH_VARARGS, "counts of integer values in a range over the valid slots"},
    {"sort_floats", sort_floats, METH_VARARGS, "radix sort of finite float64 values"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ckernels", "kfpc statistics kernels", -1, methods};

PyMODINIT_FUNC PyInit__ckernels(void) { return PyModule_Create(&module); }
