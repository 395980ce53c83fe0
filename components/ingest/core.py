"""Read a CSV or Parquet table and write it as Parquet splits, split deterministically by hash.

The split of a row depends only on its key (or, without a key, on the row's own values), never on its
position or on a random seed, so re-running on new data keeps every old row in the split it was in.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .. import artifacts, types
from .. import defaults as D
from .._fs import atomic_dir, local_path
from .._redact import excerpt
from .._redact import names as _names

#: strings read as missing values in CSV files (pandas' defaults, the ones real exports use)
NULL_VALUES = ["", "NA", "N/A", "NaN", "nan", "NULL", "null", "None", "#N/A", "-NaN", "-nan"]
_BUCKETS = 10_000
log = logging.getLogger(__name__)
#: what a number looks like in a text column (``numeric_columns``): other values become nulls
_NUMBER = r"^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$"


class IngestError(ValueError):
    """The input table cannot be ingested; the message names the file and the problem."""


@dataclasses.dataclass
class IngestResult:
    """What ingest wrote: rows per split and the column types."""

    rows: dict[str, int]
    columns: dict[str, str]
    source_uri: str
    dropped_columns: list[str] = dataclasses.field(default_factory=list)
    coerced_to_null: dict[str, int] = dataclasses.field(default_factory=dict)

    def metadata(self) -> dict:
        """Artifact metadata under the documented keys of ``kfpc.components.types``."""
        return {
            types.SPLIT_NAMES: list(self.rows),
            types.ROWS: dict(self.rows),
            types.COLUMNS: dict(self.columns),
            types.SOURCE_URI: self.source_uri,
            "dropped_columns": list(self.dropped_columns),
            "coerced_to_null": dict(self.coerced_to_null),
        }


def _detect_format(path: str, file_format: str) -> str:
    if file_format != "auto":
        if file_format not in ("csv", "parquet"):
            raise IngestError(f"file_format must be 'auto', 'csv' or 'parquet', got {file_format!r}")
        return file_format
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")) or os.path.isdir(path):
        return "parquet"
    return "csv"


def _arrow_message(err: Exception) -> str:
    """pyarrow's message with any quoted file content cut to a short escaped excerpt."""
    message = str(err)
    found = re.match(r"(?s)^(.*?Expected \d+ columns?, got \d+): (.*)$", message)
    if found:  # "... got N: <the row>": the row is file content
        return f"{found.group(1)}; the row starts {excerpt(found.group(2).rstrip(), 40)}"
    return excerpt(message, 120)


def _check_columns(names: list[str], path: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise IngestError(f"{path}: duplicate column name {excerpt(name)}")
        seen.add(name)
        if name == "":
            raise IngestError(f"{path}: a column has an empty name")


def read_batches(path: str, file_format: str = "auto", delimiter: str = ",") -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """Open a CSV or Parquet file and return its schema and an iterator of record batches.

    Parquet is streamed batch by batch. CSV is parsed in one multi-threaded pass so that column types
    are inferred from the whole file (a column null in its first block must not become type null).

    Args:
        path: local path of the file (or a folder of Parquet files).
        file_format: ``auto`` (by extension), ``csv`` or ``parquet``.
        delimiter: CSV field delimiter.
    Returns:
        ``(schema, batches)``.
    Raises:
        IngestError: the file is missing, empty, not UTF-8, truncated, or has no data rows.
    """
    if not os.path.exists(path):
        raise IngestError(f"{path}: no such file")
    fmt = _detect_format(path, file_format)
    if fmt == "parquet":
        try:
            dataset = pq.ParquetFile(path, pre_buffer=False) if os.path.isfile(path) else None
            if dataset is None:
                table = pq.read_table(path)
                schema, batches = table.schema, iter(table.to_batches(max_chunksize=65_536))
            else:
                schema = dataset.schema_arrow
                batches = dataset.iter_batches(batch_size=65_536)
        except (pa.ArrowInvalid, OSError) as err:
            raise IngestError(f"{path}: not a readable Parquet file ({_arrow_message(err)})") from err
        _check_columns(schema.names, path)
        return schema, batches
    if os.path.getsize(path) == 0:
        raise IngestError(f"{path}: the file is empty")
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(block_size=16 << 20),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
            convert_options=pacsv.ConvertOptions(null_values=NULL_VALUES, strings_can_be_null=True),
        )
    except pa.ArrowInvalid as err:
        message = _arrow_message(err)
        if "UTF8" in message or "utf8" in message.lower():
            raise IngestError(f"{path}: not valid UTF-8 text ({message})") from err
        raise IngestError(f"{path}: cannot parse as CSV with delimiter {delimiter!r} ({message})") from err
    _check_columns(table.column_names, path)
    if table.num_rows == 0:
        raise IngestError(f"{path}: header only, no data rows (columns: {_names(table.column_names)})")
    if table.num_columns == 1 and any(d in table.column_names[0] for d in ";\t|" if d != delimiter):
        raise IngestError(
            f"{path}: one column named {excerpt(table.column_names[0])}: the delimiter is probably not "
            f"{delimiter!r}; pass the right one"
        )
    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            raise IngestError(f"{path}: column {excerpt(field.name)} is not valid UTF-8 text; re-encode the file as UTF-8")
    # A column of only nulls parses as type null; store it as string so Parquet readers agree on a type.
    for i, field in enumerate(table.schema):
        if pa.types.is_null(field.type):
            table = table.set_column(i, pa.field(field.name, pa.string()), table.column(i).cast(pa.string()))
    return table.schema, iter(table.to_batches(max_chunksize=65_536))


class _Columns:
    """Drops columns and reads text columns as numbers, batch by batch, with one output schema."""

    def __init__(self, schema: pa.Schema, path: str, drop: list[str], numeric: list[str]):
        # drop_columns may name columns an older span does not have; a numeric column must exist
        for name in numeric:
            if name not in schema.names:
                raise IngestError(f"{path}: numeric_columns: {excerpt(name)} is not a column; columns: "
                                  f"{_names(schema.names)}")
        self.keep = [name for name in schema.names if name not in set(drop)]
        self.numeric = [name for name in numeric if name in self.keep and not _is_number(schema.field(name).type)]
        fields = [schema.field(name) for name in self.keep]
        self.schema = pa.schema([pa.field(f.name, pa.float64()) if f.name in self.numeric else f for f in fields])
        self.coerced = dict.fromkeys(self.numeric, 0)

    def __call__(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if len(self.keep) == batch.num_columns and not self.numeric:
            return batch
        arrays = []
        for name in self.keep:
            column = batch.column(name)
            if name in self.numeric:
                text = column.cast(pa.string())
                numeric = pc.match_substring_regex(text, _NUMBER)
                self.coerced[name] += int(pc.sum(pc.and_(pc.invert(numeric), pc.is_valid(text))).as_py() or 0)
                column = pc.if_else(numeric, text, pa.scalar(None, pa.string())).cast(pa.float64())
            arrays.append(column)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind)


def split_buckets(batch: pa.RecordBatch, key_column: str | None, salt: str = "", label: str | None = None) -> np.ndarray:
    """Stable bucket in ``[0, 10000)`` for every row: a hash of the key column, or of the row without its label.

    The label stays out of the row hash: with it, rows whose features are equal but whose labels differ
    would be split by their label, so the eval split would hold exactly the labels training never saw for
    those features (seen on real tables with repeated rows: 1,073 of 6,307 eval rows of a credit card table).
    """
    if key_column is None:
        columns = [name for name in batch.schema.names if name != label] or batch.schema.names
        frame = batch.select(columns).to_pandas(types_mapper=pd.ArrowDtype)
    else:
        frame = batch.column(key_column).to_pandas()
    # Hash values as text so that a row hashes the same whether read from CSV or Parquet.
    frame = frame.astype("string")
    hashed = pd.util.hash_pandas_object(frame, index=False, hash_key=(salt + "kfpc-split-key")[:16].ljust(16, "0"))
    return (hashed.to_numpy(dtype=np.uint64) % np.uint64(_BUCKETS)).astype(np.int64)


def ingest(
    source_uri: str,
    output_dir: str | os.PathLike,
    *,
    key_column: str | None = None,
    eval_fraction: float = D.EVAL_FRACTION,
    file_format: str = "auto",
    delimiter: str = ",",
    salt: str = "",
    drop_columns: list[str] | tuple[str, ...] = (),
    numeric_columns: list[str] | tuple[str, ...] = (),
    label: str | None = None,
) -> IngestResult:
    """Write ``source_uri`` as Parquet splits ``train`` and ``eval`` under ``output_dir``.

    Args:
        source_uri: local path, ``file://`` or ``gs://`` (read through the ``/gcs`` FUSE mount).
        output_dir: the Dataset artifact folder; written atomically.
        key_column: column whose hash decides the split; ``None`` hashes the whole row.
        eval_fraction: share of rows in ``eval``, in (0, 1).
        file_format: ``auto``, ``csv`` or ``parquet``.
        delimiter: CSV field delimiter.
        salt: changes the split without changing the key (for a fresh partition).
        drop_columns: columns left out of the Dataset (excluded by the user, or null in every row); names
            the file does not have are ignored (an older span may lack a column).
        numeric_columns: text columns to read as numbers: values that are not numbers become nulls (counted
            in the result's ``coerced_to_null``), e.g. a price column with a few ``"n/a?"`` cells.
        label: the label column, left out of the row hash (without ``key_column``), so that rows with equal
            features land in the same split whatever their labels.
    Returns:
        IngestResult with rows per split and column types.
    Raises:
        IngestError: with the file, column or value at fault; nothing is left in ``output_dir``.
    """
    if not 0.0 < eval_fraction < 1.0:
        raise IngestError(f"eval_fraction must be between 0 and 1 (exclusive), got {eval_fraction}")
    path = local_path(source_uri)
    schema, batches = read_batches(path, file_format, delimiter)
    if key_column is not None and key_column not in schema.names:
        raise IngestError(f"{path}: key_column {excerpt(key_column)} is not a column; columns: {_names(schema.names)}")
    transform = _Columns(schema, path, list(drop_columns), list(numeric_columns))
    threshold = int(round(eval_fraction * _BUCKETS))
    rows = {types.TRAIN: 0, types.EVAL: 0}
    with atomic_dir(output_dir) as scratch:
        writers: dict[str, pq.ParquetWriter] = {}
        try:
            for split in rows:
                split_path = artifacts.split_file(scratch, split, must_exist=False)
                split_path.parent.mkdir()
                writers[split] = pq.ParquetWriter(split_path, transform.schema, compression="zstd")
            for batch in batches:
                if batch.num_rows == 0:
                    continue
                # the split hashes the row as read, so dropping or coercing columns never moves a row
                is_eval = split_buckets(batch, key_column, salt, label) < threshold
                batch = transform(batch)
                for split, mask in ((types.EVAL, is_eval), (types.TRAIN, ~is_eval)):
                    part = batch.filter(pa.array(mask))
                    if part.num_rows:
                        writers[split].write_batch(part)
                        rows[split] += part.num_rows
        except pa.ArrowInvalid as err:
            raise IngestError(f"{path}: cannot read ({_arrow_message(err)})") from err
        finally:
            for writer in writers.values():
                writer.close()
        for split, count in rows.items():
            if count == 0:
                raise IngestError(
                    f"{path}: split {split!r} would be empty ({sum(rows.values())} rows, eval_fraction="
                    f"{eval_fraction}); add rows or change eval_fraction"
                )
    columns = {field.name: str(field.type) for field in transform.schema}
    for name, count in transform.coerced.items():
        if count:
            log.warning("%s: %d values of column %r are not numbers and were read as missing", path, count, name)
    return IngestResult(rows=rows, columns=columns, source_uri=source_uri,
                        dropped_columns=[c for c in drop_columns if c in schema.names],
                        coerced_to_null=transform.coerced)
