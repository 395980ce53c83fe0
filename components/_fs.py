"""File-system helpers shared by component cores."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a scratch folder that becomes ``target`` only if the block succeeds.

    A failed step must leave nothing the next step could take as good output: on error the scratch
    folder is removed and ``target`` is left as it was (absent or empty).

    Args:
        target: the folder to create; it must be absent or empty.
    Yields:
        A fresh folder next to ``target`` to write into.
    """
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"output folder {target} is not empty")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield scratch
        if target.exists():
            target.rmdir()
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


BUNDLED_PREFIX = "bundled:"


def local_path(uri: str) -> str:
    """Map a URI to the local path a component reads it from.

    ``gs://bucket/x`` becomes ``/gcs/bucket/x`` (the Cloud Storage FUSE mount Vertex AI Pipelines and
    GKE's GCS FUSE CSI driver provide); ``bundled:NAME`` is a data file shipped inside the kfpc package
    (``kfpc/pipelines/data/NAME``: present in every image, so default pipeline parameters run anywhere);
    local paths and ``file://`` URIs pass through.
    """
    if uri.startswith(BUNDLED_PREFIX):
        return str(Path(__file__).resolve().parent.parent / "pipelines" / "data" / uri[len(BUNDLED_PREFIX):])
    if uri.startswith("gs://"):
        return "/gcs/" + uri[len("gs://"):]
    if uri.startswith("file://"):
        return uri[len("file://"):]
    return uri


def parquet_batches(path: str | os.PathLike, error: type[Exception], **options) -> Iterator:
    """The record batches of a Parquet file (``ParquetFile.iter_batches(**options)``, read without
    pre-buffering); a damaged file or data page becomes ``error`` naming the file, not Arrow's bare OSError.

    Args:
        path: the Parquet file.
        error: the component's input error type (a ``ValueError`` subclass).
        **options: passed to ``iter_batches`` (``batch_size``, ``columns``, ``use_threads``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ._redact import excerpt

    try:
        # pre_buffer keeps every range read until the reader closes: memory would grow with the rows
        yield from pq.ParquetFile(path, pre_buffer=False).iter_batches(**options)
    except (OSError, pa.ArrowException) as err:
        raise error(f"{path}: the Parquet file is damaged or unreadable: {excerpt(str(err), 200)}") from None
