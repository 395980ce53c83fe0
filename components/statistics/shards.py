"""Sharded statistics: plan shards of a table, summarize each on its own worker, merge exactly.

``plan_shards`` turns a file list, glob, folder or prefix of Parquet/CSV files (or one large Parquet
file) into shard descriptors (JSON-able dicts); ``shard_statistics`` writes the mergeable accumulator of
one shard (:mod:`.wire`); ``merge_statistics`` checks that every planned shard is there exactly once and
writes the same ``Split-<split>/FeatureStats.pb`` a single pass writes. One pass is the one-shard case of the
same code (:func:`.core.accumulate`).
"""

from __future__ import annotations

import glob as globlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from tensorflow_metadata.proto.v0 import statistics_pb2

from .. import types
from .._fs import atomic_dir, local_path
from . import wire
from .core import (
    DEFAULT_QUANTILE_K,
    DEFAULT_TOP_K,
    StatisticsAccumulator,
    StatisticsError,
    _tune_malloc,
    merge_accumulators,
)

PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2")
#: rows of a CSV block read at a time
_CSV_BLOCK_BYTES = 16 << 20


def _format(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if lower.endswith(CSV_SUFFIXES):
        return "csv"
    return None


def list_files(source: str | list[str]) -> list[str]:
    """Data files named by ``source``, sorted: a list of paths, or one path that is a file, a folder (its
    Parquet/CSV files, recursively), a glob (``*``, ``?``, ``[``) or a prefix (files whose path starts with it).

    ``gs://`` URIs are read through their ``/gcs`` mount (:func:`kfpc.components._fs.local_path`).

    Raises:
        StatisticsError: nothing matches, or Parquet and CSV files are mixed.
    """
    if isinstance(source, (list, tuple)):
        files = [local_path(str(s)) for s in source]
        label = f"{len(files)} listed files"
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise StatisticsError(f"{label}: no such file(s) {missing[:5]}")
    else:
        label = str(source)
        path = local_path(label)
        if any(ch in path for ch in "*?["):
            files = [f for f in globlib.glob(path, recursive=True) if os.path.isfile(f)]
        elif os.path.isfile(path):
            files = [path]
        elif os.path.isdir(path):
            files = [str(p) for p in Path(path).rglob("*") if p.is_file() and not p.name.startswith((".", "_"))]
        else:
            parent, stem = os.path.split(path)
            files = [os.path.join(parent, n) for n in os.listdir(parent or ".")
                     if n.startswith(stem) and os.path.isfile(os.path.join(parent, n))] if os.path.isdir(
                parent or ".") else []
        files = [f for f in files if _format(f)]
    files = sorted(set(files))
    if not files:
        raise StatisticsError(f"{label}: no Parquet or CSV files (expected names ending in "
                              f"{', '.join(PARQUET_SUFFIXES + CSV_SUFFIXES)})")
    formats = {_format(f) for f in files}
    if None in formats:
        raise StatisticsError(f"{label}: not a Parquet or CSV file: {[f for f in files if not _format(f)][:5]}")
    if len(formats) > 1:
        raise StatisticsError(f"{label}: mixes Parquet and CSV files; shards of one table need one format")
    return files


def _csv_types(path: str) -> dict[str, str]:
    """Column types Arrow infers from the first block of a CSV file (null-typed columns left out), so every
    shard reads each column with the same type."""
    try:
        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=1 << 20))
    except (pa.ArrowInvalid, OSError) as err:
        raise StatisticsError(f"{path}: not a readable CSV file ({err})") from err
    return {f.name: str(f.type) for f in reader.schema if not pa.types.is_null(f.type)}


def plan_shards(source: str | list[str], num_shards: int) -> list[dict]:
    """Split a table into at most ``num_shards`` shards of about equal size.

    The units are Parquet row groups (so one large Parquet file splits too) and whole CSV files; they are
    cut into contiguous runs of about equal bytes, in file order.

    Args:
        source: see :func:`list_files`.
        num_shards: shards wanted (fewer when there are fewer units).
    Returns:
        JSON-able descriptors ``{"index", "count", "format", "rows", "bytes", "parts": [{"path",
        "row_groups": [start, stop], or [] for the whole file}], "csv_column_types"}`` (``rows`` is -1 for CSV).
    Raises:
        StatisticsError: no files, an unreadable file, ``num_shards`` < 1.
    """
    if int(num_shards) < 1:
        raise StatisticsError(f"num_shards must be at least 1, got {num_shards}")
    files = list_files(source)
    fmt = _format(files[0])
    units: list[tuple[str, int | None, int | None, int]] = []  # (path, row group, rows, bytes)
    for path in files:
        if fmt == "csv":
            units.append((path, None, None, max(1, os.path.getsize(path))))
            continue
        try:
            metadata = pq.ParquetFile(path).metadata
        except (pa.ArrowInvalid, OSError) as err:
            raise StatisticsError(f"{path}: not a readable Parquet file ({err})") from err
        if metadata.num_row_groups == 0:
            units.append((path, None, 0, 1))
        for g in range(metadata.num_row_groups):
            group = metadata.row_group(g)
            units.append((path, g, group.num_rows, max(1, group.total_byte_size)))
    count = min(int(num_shards), len(units))
    cumulative, seen = [], 0
    for unit in units:
        seen += unit[3]
        cumulative.append(seen)
    # cut after the unit whose end is nearest to each j/count of the bytes, keeping every shard non-empty
    cuts, previous = [], 0
    for j in range(1, count):
        target = cumulative[-1] * j / count
        cut = min(range(len(units)), key=lambda i: abs(cumulative[i] - target)) + 1
        cut = max(previous + 1, min(cut, len(units) - (count - j)))
        cuts.append(cut)
        previous = cut
    bounds = [0, *cuts, len(units)]
    runs = [units[bounds[i]:bounds[i + 1]] for i in range(count)]
    csv_types = _csv_types(files[0]) if fmt == "csv" else {}
    shards = []
    for index, run in enumerate(runs):
        parts: list[dict] = []
        for path, group, _, _ in run:
            last = parts[-1] if parts else None
            if group is not None and last and last["path"] == path and last["row_groups"][1] == group:
                last["row_groups"][1] = group + 1
            else:
                parts.append({"path": path, "row_groups": [] if group is None else [group, group + 1]})
        for part in parts:  # a whole file is read whole
            if part["row_groups"] and part["row_groups"][0] == 0 and part["row_groups"][1] == \
                    pq.ParquetFile(part["path"]).metadata.num_row_groups:
                part["row_groups"] = []
        # (no None anywhere: KFP refuses null values inside a dict parameter)
        rows = -1 if fmt == "csv" else sum(u[2] for u in run)
        shards.append({"index": index, "count": count, "format": fmt, "rows": rows,
                       "bytes": sum(u[3] for u in run), "parts": parts, "csv_column_types": csv_types})
    return shards


def _check_descriptor(shard: dict) -> None:
    try:
        index, count, fmt = int(shard["index"]), int(shard["count"]), shard["format"]
        parts = shard["parts"]
    except (KeyError, TypeError, ValueError) as err:
        raise StatisticsError(f"shard descriptor {shard!r}: missing or bad field ({err})") from err
    if not 0 <= index < count or fmt not in ("parquet", "csv") or not parts:
        raise StatisticsError(f"shard descriptor {shard!r}: index/count/format/parts out of range")


def accumulate_shard(shard: dict, *, top_k: int = DEFAULT_TOP_K, quantile_k: int = DEFAULT_QUANTILE_K,
                     threads: int | None = None) -> StatisticsAccumulator:
    """The accumulator of one shard (``plan_shards`` descriptor)."""
    _check_descriptor(shard)
    _tune_malloc()
    accumulator = StatisticsAccumulator(top_k=top_k, quantile_k=quantile_k, threads=threads)
    try:
        for part in shard["parts"]:
            path = local_path(part["path"])
            if not os.path.isfile(path):
                raise StatisticsError(f"{path}: no such file (shard {shard['index']})")
            if shard["format"] == "parquet":
                groups = part.get("row_groups")
                accumulator.add_parquet(path, tuple(groups) if groups else None)
            else:
                _add_csv(accumulator, path, shard.get("csv_column_types") or {})
    finally:
        accumulator.close()
    return accumulator


def _add_csv(accumulator: StatisticsAccumulator, path: str, column_types: dict[str, str]) -> None:
    known = {}
    for name, alias in column_types.items():
        try:
            known[name] = pa.type_for_alias(alias)
        except ValueError:  # e.g. a timestamp with a time zone: left to Arrow's inference
            pass
    convert = pcsv.ConvertOptions(column_types=known)
    try:
        reader = pcsv.open_csv(path, read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                               convert_options=convert)
        for batch in reader:
            accumulator.add_batch(batch, path)
    except (pa.ArrowInvalid, OSError) as err:
        raise StatisticsError(f"{path}: not a readable CSV file, or a column does not fit the type inferred from "
                              f"the first file ({err})") from err


def shard_statistics(shard: dict, output_dir: str | os.PathLike, *, top_k: int = DEFAULT_TOP_K,
                     quantile_k: int = DEFAULT_QUANTILE_K, threads: int | None = None) -> dict:
    """Write the accumulator of one shard to ``output_dir/accumulator.kfpcacc`` (atomically).

    Returns:
        Artifact metadata: ``shard_index``, ``shard_count``, ``rows``.
    """
    accumulator = accumulate_shard(shard, top_k=top_k, quantile_k=quantile_k, threads=threads)
    with atomic_dir(output_dir) as scratch:
        wire.write(accumulator, Path(scratch) / wire.ACCUMULATOR_FILE, meta={"shard": shard})
    return {"shard_index": int(shard["index"]), "shard_count": int(shard["count"]),
            "rows": int(accumulator.num_examples)}


def read_shards(paths: list[str | os.PathLike]) -> list[StatisticsAccumulator]:
    """Accumulators of all planned shards, in shard order; refuses missing or repeated shards."""
    found: dict[int, tuple[StatisticsAccumulator, str]] = {}
    counts = set()
    for path in paths:
        accumulator, meta = wire.read(path)
        shard = meta.get("shard") or {}
        try:
            index, count = int(shard["index"]), int(shard["count"])
        except (KeyError, TypeError, ValueError):
            raise StatisticsError(f"{path}: accumulator has no shard descriptor (index/count)") from None
        if index in found:
            raise StatisticsError(f"{path}: shard {index} given twice (also {found[index][1]})")
        found[index] = (accumulator, str(path))
        counts.add(count)
    if not found:
        raise StatisticsError("no shard statistics to merge")
    if len(counts) != 1:
        raise StatisticsError(f"shards come from different plans (shard counts {sorted(counts)})")
    count = counts.pop()
    missing = sorted(set(range(count)) - set(found))
    if missing:
        raise StatisticsError(f"{len(missing)} of {count} planned shards missing: {missing[:20]} (their rows would be "
                              "silently left out)")
    return [found[i][0] for i in range(count)]


def merge_statistics(paths: list[str | os.PathLike], output_dir: str | os.PathLike,
                     split: str = types.TRAIN) -> dict:
    """Merge shard accumulators into ``output_dir/Split-<split>/FeatureStats.pb`` (atomically).

    Returns:
        Artifact metadata: ``split_names``, ``rows`` (split -> examples), ``shards``.
    """
    accumulators = read_shards(paths)
    merged = merge_accumulators(accumulators)
    stats = merged.to_proto(split)
    with atomic_dir(output_dir) as scratch:
        out = Path(scratch) / types.SPLIT_DIR.format(split=split)
        out.mkdir()
        stats_list = statistics_pb2.DatasetFeatureStatisticsList(datasets=[stats])
        (out / types.STATS_FILE).write_bytes(stats_list.SerializeToString())
    return {types.SPLIT_NAMES: [split], types.ROWS: {split: int(stats.num_examples)}, "shards": len(accumulators)}
