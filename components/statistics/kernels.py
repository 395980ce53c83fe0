"""Compiled loops for the statistics' hottest paths, through Numba when it is installed.

The statistics are NumPy and Arrow passes over each batch. Three places cost more than the read itself in
NumPy, because they take several passes over memory or a scattered gather per value: hashing string values
(:func:`kfpc.components.statistics.sketches.hash_binary`), counting distinct hashes, and the moments and
extremes of a float column. Here each is one compiled loop (Numba, ``nogil`` so that the statistics' worker
threads run them at once). They compute exactly what the NumPy versions compute — the same hashes bit for
bit, the same distinct counts, the same counts, extremes and moments up to the rounding of the sums
(blocked here, pairwise in NumPy: both within a few units in the last place) — and the NumPy versions stay
as the path without Numba (``KFPC_KERNELS=0`` forces it) and as the reference the tests hold these to.

Numba is imported on the first batch long enough to pay for it (:data:`MIN_VALUES`), not with the module:
importing it costs a fresh process ~0.3 s. Compiled code is cached next to this file, or under
``NUMBA_CACHE_DIR`` (the data image fills one when it is built), so a process loads it in milliseconds.
"""

from __future__ import annotations

import os
import threading
import types
import warnings

import numpy as np

#: batches shorter than this stay on the NumPy path (no Numba import for small tables)
MIN_VALUES = 1 << 14

_lock = threading.Lock()
_loaded: types.SimpleNamespace | None | bool = False  # False: not tried yet; None: unavailable


def get() -> types.SimpleNamespace | None:
    """The compiled kernels, or None (Numba absent or ``KFPC_KERNELS=0``). Compiles or loads them once."""
    global _loaded
    if _loaded is False:
        with _lock:
            if _loaded is False:
                _loaded = _load() if os.environ.get("KFPC_KERNELS", "1") != "0" else None
    return _loaded


def for_size(n: int) -> types.SimpleNamespace | None:
    """:func:`get` for a batch of ``n`` values: None below :data:`MIN_VALUES`."""
    return get() if n >= MIN_VALUES else None


def _load() -> types.SimpleNamespace | None:
    try:
        from . import _compiled
    except ImportError:  # Numba is not installed
        return None
    except Exception as err:  # noqa: BLE001 - e.g. Numba finds no writable cache directory (read-only image)
        warnings.warn(f"kfpc statistics: compiled kernels unavailable, using NumPy ({err})", RuntimeWarning,
                      stacklevel=3)
        return None
    return types.SimpleNamespace(**{name: getattr(_compiled, name) for name in _compiled.KERNELS})


def warm() -> bool:
    """Compile (or load) every kernel for the array types real tables bring; True if the kernels are there.

    Numba compiles once per argument type; this runs the statistics over a small table of every column type
    (nulls and none, dictionary and plain strings), so that a cache filled by it (the data image runs it
    when it is built, ``NUMBA_CACHE_DIR`` pointing into the image) serves later processes without compiling.
    """
    if get() is None:
        return False
    import pyarrow as pa

    from . import core

    n = 2 * MIN_VALUES
    rng = np.random.default_rng(0)
    mask = rng.random(n) < 0.1
    columns = {}
    for dtype in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "float32", "float64"):
        values = (rng.integers(0, 100, n) if dtype[0] in "iu" else rng.standard_normal(n)).astype(dtype)
        columns[dtype] = pa.array(values)
        columns[dtype + "_nulls"] = pa.array(values, mask=mask)
    columns["wide"] = pa.array(rng.integers(0, 1 << 40, n))
    text = rng.integers(0, n, n).astype(str)
    for kind in (pa.string(), pa.large_string(), pa.binary(), pa.large_binary()):
        columns[str(kind)] = pa.array(text).cast(kind)
        columns[str(kind) + "_nulls"] = pa.array(text, mask=mask).cast(kind)
    columns["category"] = pa.array(np.char.add("c", rng.integers(0, 7, n).astype(str)), mask=mask).dictionary_encode()
    for threads in (1, 2):
        core.generate_statistics(pa.table(columns), threads=threads)
    return True
