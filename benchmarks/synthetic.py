"""Seeded synthetic tables for benchmarks and tests: mixed int/float/string columns with nulls.

``make_table(rows, seed)`` builds the table in memory; ``write_parquet(path, rows, seed)`` writes it in
chunks of at most 1M rows, so 10M rows never need 10M rows in memory. The same (rows, seed) always gives
the same data, whichever function produced it.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CHUNK_ROWS = 1_000_000
_COLORS = np.array(["red", "green", "blue", "yellow", "black"])
_CITIES = np.array([f"city_{i:03d}" for i in range(300)])
_PRODUCTS = np.array([f"product-{i:05d}" for i in range(20_000)])


def _nulls(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    return rng.random(n) < fraction


def _chunk(rows: int, seed: int, chunk_index: int) -> pa.Table:
    rng = np.random.default_rng([seed, chunk_index])
    n = rows
    zipf_city = np.minimum(rng.zipf(1.6, n) - 1, len(_CITIES) - 1)
    zipf_product = np.minimum(rng.zipf(1.2, n) - 1, len(_PRODUCTS) - 1)
    columns = {
        "age": pa.array(rng.integers(18, 90, n), mask=_nulls(rng, n, 0.05)),
        "clicks": pa.array(rng.poisson(3.0, n).astype(np.int64)),
        "user_id": pa.array(rng.integers(0, 2**40, n, dtype=np.int64)),
        "is_member": pa.array(rng.integers(0, 2, n), mask=_nulls(rng, n, 0.01)),
        "income": pa.array(rng.lognormal(10.5, 0.6, n), mask=_nulls(rng, n, 0.10)),
        "score": pa.array(rng.normal(0.0, 1.0, n)),
        "ratio": pa.array(rng.random(n), mask=_nulls(rng, n, 0.02)),
        "timestamp": pa.array(1.7e9 + rng.random(n) * 3e7),
        "color": pa.array(_COLORS[rng.integers(0, len(_COLORS), n)], mask=_nulls(rng, n, 0.03)),
        "city": pa.array(_CITIES[zipf_city], mask=_nulls(rng, n, 0.05)),
        "product": pa.array(_PRODUCTS[zipf_product], mask=_nulls(rng, n, 0.01)),
        "comment": pa.array(np.char.add("c", rng.integers(0, 10**9, n).astype(str)), mask=_nulls(rng, n, 0.3)),
    }
    return pa.table(columns)


def _chunks(rows: int):
    start, index = 0, 0
    while start < rows:
        size = min(CHUNK_ROWS, rows - start)
        yield index, size
        start += size
        index += 1


def make_table(rows: int, seed: int = 0) -> pa.Table:
    """A synthetic table: 12 columns (4 int, 4 float, 4 string of low to very high cardinality), with nulls.

    Args:
        rows: number of rows.
        seed: random seed.
    Returns:
        A pyarrow Table.
    """
    if rows <= 0:
        raise ValueError(f"rows must be positive, got {rows}")
    return pa.concat_tables([_chunk(size, seed, index) for index, size in _chunks(rows)])


def write_parquet(path: str | os.PathLike, rows: int, seed: int = 0, row_group_rows: int = 262_144) -> str:
    """Write :func:`make_table`'s data to a Parquet file, one chunk at a time (bounded memory).

    Args:
        path: output file.
        rows: number of rows.
        seed: random seed.
        row_group_rows: rows per Parquet row group.
    Returns:
        The path written.
    """
    path = str(path)
    writer = None
    try:
        for index, size in _chunks(rows):
            table = _chunk(size, seed, index)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="snappy")
            writer.write_table(table, row_group_size=row_group_rows)
    finally:
        if writer is not None:
            writer.close()
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    print(write_parquet(options.path, options.rows, options.seed))
