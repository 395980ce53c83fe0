"""The accumulator wire format: partial statistics of one shard, written by one pod and merged by another.

Layout (all integers little-endian; see README.md, "Accumulator wire format"):

    bytes 0-7    magic  b"KFPCACC\\0"
    bytes 8-11   uint32 format version (WIRE_VERSION)
    bytes 12-19  uint64 length H of the header
    H bytes      header: UTF-8 JSON (settings, per-feature counters, blob table)
    rest         blobs: raw arrays, each at the offset/length/dtype the header gives (offsets from the
                 start of the blob section)

Floats in the header are written with ``float.hex`` (exact, and infinities survive); arrays (quantile
sketch levels, value counts, HyperLogLog registers, the bytes and offsets of kept string values) are blobs.
No pickle: a reader never executes anything from the file, and a version it does not know is refused.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa

from .core import FeatureType, StatisticsAccumulator, StatisticsError, _FeatureAccumulator
from .sketches import FrequencySketch, HyperLogLog, QuantileSketch

MAGIC = b"KFPCACC\0"
#: the format this code writes; readers accept exactly the versions in SUPPORTED_VERSIONS. Version 2 adds the
#: quantile sketch's sampling ``variance`` (a version 1 reader would drop it and understate the error bound);
#: a version 1 accumulator reads as one without sampled batches.
WIRE_VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
_PREFIX = struct.Struct("<8sIQ")
#: conventional file name of an accumulator inside a shard's artifact folder
ACCUMULATOR_FILE = "accumulator.kfpcacc"


class WireFormatError(StatisticsError):
    """Not an accumulator, a damaged one, or one written in a format version this kfpc does not read."""


def _hex(value: float) -> str:
    return float(value).hex()


def _unhex(text: str) -> float:
    return float.fromhex(text)


class _Blobs:
    def __init__(self):
        self.table: list[dict] = []
        self.parts: list[bytes] = []
        self.size = 0

    def add(self, array: np.ndarray) -> int:
        array = np.ascontiguousarray(array)
        dtype = array.dtype.newbyteorder("<") if array.dtype.byteorder == ">" else array.dtype
        data = array.astype(dtype, copy=False).tobytes()
        self.table.append({"offset": self.size, "length": len(data), "dtype": dtype.str})
        self.parts.append(data)
        self.size += len(data)
        return len(self.table) - 1


def _value_type_name(value_type: pa.DataType) -> str:
    return "binary" if pa.types.is_binary(value_type) else "string"


def _encode_feature(feature: _FeatureAccumulator, blobs: _Blobs) -> dict:
    out = {
        "name": feature.name,
        "kind": FeatureType.Type.Name(feature.kind),
        "arrow_null": bool(pa.types.is_null(feature.arrow_type)),
        "num_non_missing": int(feature.num_non_missing),
        "num_nan": int(feature.num_nan),
    }
    if feature.kind in (FeatureType.INT, FeatureType.FLOAT):
        sketch = feature.sketch
        out.update({
            "count_finite": int(feature.count_finite), "mean": _hex(feature.mean),
            "mean_lo": _hex(feature.mean_lo), "m2": _hex(feature.m2),
            "num_zeros": int(feature.num_zeros), "num_pos_inf": int(feature.num_pos_inf),
            "num_neg_inf": int(feature.num_neg_inf), "min": _hex(feature.min), "max": _hex(feature.max),
            "quantiles": {"k": sketch.k, "count": int(sketch.count), "offsets": [int(o) for o in sketch._offsets],
                          "variance": _hex(sketch.variance),
                          "levels": [blobs.add(level.astype(np.float64)) for level in sketch.levels]},
        })
    else:
        sketch = feature.frequencies
        keys = sketch.keys.cast(pa.large_binary())
        offsets = np.frombuffer(keys.buffers()[1], dtype=np.int64)[keys.offset: keys.offset + len(keys) + 1] \
            if len(keys) else np.zeros(1, dtype=np.int64)
        data = keys.buffers()[2]
        raw = np.frombuffer(data, dtype=np.uint8)[offsets[0]: offsets[-1]] if data is not None and len(keys) else \
            np.empty(0, dtype=np.uint8)
        out.update({
            "total_length": int(feature.total_length), "near_unique": bool(feature.near_unique),
            "numeric": None if feature.numeric is None else int(feature.numeric),
            "cast_numbers": bool(feature.cast_numbers),
            "frequencies": {
                "capacity": sketch.capacity, "value_type": _value_type_name(sketch.value_type),
                "error": int(sketch.error), "total": int(sketch.total),
                "key_offsets": blobs.add(offsets - offsets[0]), "key_bytes": blobs.add(raw),
                "counts": blobs.add(sketch.counts.astype(np.int64)),
                "hll": None if sketch.distinct is None else {
                    "precision": sketch.distinct.precision, "registers": blobs.add(sketch.distinct.registers)},
            },
        })
    return out


def dumps(accumulator: StatisticsAccumulator, meta: dict | None = None) -> bytes:
    """Serialize an accumulator (and a small JSON-able ``meta`` dict, e.g. the shard descriptor)."""
    blobs = _Blobs()
    header = {
        "top_k": accumulator.top_k, "quantile_k": accumulator.quantile_k,
        "num_examples": int(accumulator.num_examples),
        "features": [_encode_feature(f, blobs) for f in accumulator.features.values()],
        "meta": meta or {},
        "blobs": blobs.table,
    }
    text = json.dumps(header, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return _PREFIX.pack(MAGIC, WIRE_VERSION, len(text)) + text + b"".join(blobs.parts)


def _blob(header: dict, body: memoryview, index: int, source: str) -> np.ndarray:
    try:
        entry = header["blobs"][index]
        start, length = int(entry["offset"]), int(entry["length"])
        if start < 0 or start + length > len(body):
            raise ValueError("blob beyond the end of the file")
        return np.frombuffer(body[start: start + length], dtype=np.dtype(entry["dtype"])).copy()
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise WireFormatError(f"{source}: damaged accumulator (blob {index}: {err})") from err


def _decode_feature(item: dict, header: dict, body: memoryview, top_k: int, quantile_k: int,
                    source: str) -> _FeatureAccumulator:
    kind = FeatureType.Type.Value(item["kind"])
    if item["arrow_null"]:
        arrow_type = pa.null()
    elif kind == FeatureType.INT:
        arrow_type = pa.int64()
    elif kind == FeatureType.FLOAT:
        arrow_type = pa.float64()
    else:
        arrow_type = pa.string() if kind == FeatureType.STRING else pa.binary()
    feature = _FeatureAccumulator(item["name"], kind, arrow_type, top_k, quantile_k)
    feature.num_non_missing = int(item["num_non_missing"])
    feature.num_nan = int(item["num_nan"])
    if kind in (FeatureType.INT, FeatureType.FLOAT):
        feature.count_finite = int(item["count_finite"])
        feature.mean, feature.m2 = _unhex(item["mean"]), _unhex(item["m2"])
        feature.mean_lo = _unhex(item["mean_lo"])
        feature.num_zeros, feature.num_pos_inf = int(item["num_zeros"]), int(item["num_pos_inf"])
        feature.num_neg_inf = int(item["num_neg_inf"])
        feature.min, feature.max = _unhex(item["min"]), _unhex(item["max"])
        q = item["quantiles"]
        sketch = QuantileSketch(int(q["k"]))
        sketch.count = int(q["count"])
        sketch.variance = _unhex(q.get("variance", "0x0.0p+0"))
        sketch.levels = [_blob(header, body, i, source).astype(np.float64) for i in q["levels"]]
        sketch._offsets = [int(o) for o in q["offsets"]]
        if len(sketch._offsets) != len(sketch.levels):
            raise WireFormatError(f"{source}: damaged accumulator (feature {item['name']!r}: quantile levels)")
        feature.sketch = sketch
    else:
        feature.total_length = int(item["total_length"])
        feature.near_unique = bool(item["near_unique"])
        feature.numeric = None if item["numeric"] is None else int(item["numeric"])
        feature.cast_numbers = bool(item["cast_numbers"])
        f = item["frequencies"]
        value_type = pa.binary() if f["value_type"] == "binary" else pa.string()
        sketch = FrequencySketch(int(f["capacity"]), value_type)
        offsets = _blob(header, body, f["key_offsets"], source).astype(np.int64)
        raw = _blob(header, body, f["key_bytes"], source)
        counts = _blob(header, body, f["counts"], source).astype(np.int64)
        if offsets.size != counts.size + 1 or (offsets.size and offsets[-1] != raw.size):
            raise WireFormatError(f"{source}: damaged accumulator (feature {item['name']!r}: value table)")
        keys = pa.Array.from_buffers(pa.large_binary(), counts.size,
                                     [None, pa.py_buffer(offsets), pa.py_buffer(raw)])
        sketch.keys = keys.cast(value_type) if counts.size else pa.nulls(0, value_type)
        sketch.counts = counts
        sketch.error, sketch.total = int(f["error"]), int(f["total"])
        if f["hll"] is not None:
            hll = HyperLogLog(int(f["hll"]["precision"]))
            hll.registers = _blob(header, body, f["hll"]["registers"], source).astype(np.uint8)
            sketch.distinct = hll
        feature.frequencies = sketch
    return feature


def loads(data: bytes, source: str = "accumulator") -> tuple[StatisticsAccumulator, dict]:
    """Read an accumulator written by :func:`dumps`.

    Returns:
        (accumulator, meta).
    Raises:
        WireFormatError: not an accumulator, a version this code does not read, or damaged.
    """
    if len(data) < _PREFIX.size:
        raise WireFormatError(f"{source}: not a kfpc statistics accumulator (only {len(data)} bytes)")
    magic, version, length = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise WireFormatError(f"{source}: not a kfpc statistics accumulator (magic {magic!r}, expected {MAGIC!r})")
    if version not in SUPPORTED_VERSIONS:
        raise WireFormatError(
            f"{source}: accumulator wire format version {version} is not supported by this kfpc (it reads "
            f"version(s) {', '.join(map(str, SUPPORTED_VERSIONS))}); compute all shards and the merge with the "
            "same kfpc release")
    end = _PREFIX.size + length
    if end > len(data):
        raise WireFormatError(f"{source}: damaged accumulator (header of {length} bytes past the end of the file)")
    try:
        header = json.loads(bytes(data[_PREFIX.size:end]).decode("utf-8"))
        body = memoryview(data)[end:]
        accumulator = StatisticsAccumulator(top_k=int(header["top_k"]), quantile_k=int(header["quantile_k"]),
                                            threads=1)
        accumulator.num_examples = int(header["num_examples"])
        for item in header["features"]:
            feature = _decode_feature(item, header, body, accumulator.top_k, accumulator.quantile_k, source)
            accumulator.features[feature.name] = feature
    except WireFormatError:
        raise
    except (KeyError, TypeError, ValueError, UnicodeDecodeError) as err:
        raise WireFormatError(f"{source}: damaged accumulator ({type(err).__name__}: {err})") from err
    return accumulator, dict(header.get("meta") or {})


def write(accumulator: StatisticsAccumulator, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Write an accumulator file atomically (a temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(dumps(accumulator, meta))
    os.replace(partial, path)
    return path


def read(path: str | os.PathLike) -> tuple[StatisticsAccumulator, dict]:
    """Read an accumulator file (or the :data:`ACCUMULATOR_FILE` in a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / ACCUMULATOR_FILE
    if not path.exists():
        raise WireFormatError(f"{path}: no accumulator file")
    return loads(path.read_bytes(), str(path))
