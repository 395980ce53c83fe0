"""Streaming input: Parquet record batches -> shuffled, batched ``tf.data`` of raw features.

Memory is bounded by the shuffle buffer, never by the dataset: the split is read record batch by record
batch, each batch is converted column-wise with Arrow/numpy (no Python loop per row), rows are shuffled
in a numpy buffer of ``shuffle_buffer`` rows, and full batches are handed to ``tf.data`` already batched,
so TensorFlow does no per-element work. The same generator feeds CPU, one GPU, several GPUs and several
workers; with more than one input pipeline (``MultiWorkerMirroredStrategy``) each pipeline keeps the
rows whose position modulo the number of pipelines is its id.

The features fed here are exactly what the serving signature takes (raw values, ``""`` / NaN missing),
so training and serving share one preprocessing graph inside the model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from kfpc.components.train import features as F

log = logging.getLogger(__name__)

READ_CHUNK_ROWS = 16_384


def feature_arrays(batch: pa.RecordBatch | pa.Table, spec: F.TrainingSpec, path: Path | str = "") -> dict[str, np.ndarray]:
    """Raw model inputs of a record batch: input key -> float64 (NaN missing) or object str ("" missing)."""
    out: dict[str, np.ndarray] = {}
    for feature in spec.features:
        column = batch.column(feature.name)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if feature.dtype == F.STRING:
            strings = F._string_values(column)
            out[feature.input] = pc.fill_null(strings, "").to_numpy(zero_copy_only=False)
        else:
            out[feature.input] = F._numeric_values(column, feature.name, Path(path))
    return out


def label_array(batch: pa.RecordBatch | pa.Table, spec: F.TrainingSpec, path: Path | str = "") -> tuple[np.ndarray, np.ndarray]:
    """The training target of a record batch and a mask of the rows that have a usable label.

    Returns:
        ``(target, keep)``: class ids (int64) for classification, the standardized value (float32) for
        regression; ``keep`` is False where the label is missing or is a class unseen in training.
    """
    label = spec.label
    column = batch.column(label.name)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if label.task == F.REGRESSION:
        values = F._numeric_values(column, label.name, Path(path))
        keep = ~np.isnan(values)
        return ((np.nan_to_num(values) - label.mean) / label.std).astype(np.float32), keep
    if label.numeric_classes:
        text = F.integer_strings(F._numeric_values(column, label.name, Path(path)))
        text = pa.array(text, type=pa.string())
    else:
        text = pc.fill_null(F._string_values(column), "")
    ids = pc.index_in(text, value_set=pa.array(label.classes, type=pa.string()))
    keep = ids.is_valid().to_numpy(zero_copy_only=False)
    return pc.fill_null(ids, 0).to_numpy(zero_copy_only=False).astype(np.int64), keep


def _take(arrays: dict[str, np.ndarray], index: np.ndarray | slice) -> dict[str, np.ndarray]:
    return {key: value[index] for key, value in arrays.items()}


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    if len(parts) == 1:
        return parts[0]
    return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}


def iterate_batches(
    path: str | Path,
    spec: F.TrainingSpec,
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
    shard_index: int = 0,
    num_shards: int = 1,
    with_label: bool = True,
    drop_remainder: bool = False,
) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray] | dict[str, np.ndarray]]:
    """Yield batches of raw features (and targets) from a Parquet split.

    Args:
        path: the split's Parquet file.
        spec: the TrainingSpec (which columns, how to encode the label).
        batch_size: rows per batch (the last batch may be smaller unless ``drop_remainder``).
        shuffle_buffer: rows held and shuffled together; 0 keeps the file order.
        seed: shuffle seed.
        shard_index: this input pipeline's id.
        num_shards: number of input pipelines; rows whose position % num_shards == shard_index are kept.
        with_label: yield ``(features, target)`` pairs; else features only (rows without a label are kept).
        drop_remainder: drop the last partial batch.
    Yields:
        ``(features, target)`` or ``features``; features map input key -> array of ``batch_size`` rows.
    """
    rng = np.random.default_rng(seed)
    columns = [f.name for f in spec.features] + ([spec.label.name] if with_label else [])
    parquet = pq.ParquetFile(path)
    buffer: list[dict[str, np.ndarray]] = []
    buffered = 0
    position = 0  # global row position of the next record batch, for sharding
    capacity = max(shuffle_buffer, batch_size)

    def drain(final: bool) -> Iterator:
        nonlocal buffer, buffered
        if not buffer:
            return
        rows = _concat(buffer)
        if shuffle_buffer:
            rows = _take(rows, rng.permutation(buffered))
        full = (buffered // batch_size) * batch_size
        for start in range(0, full, batch_size):
            yield _take(rows, slice(start, start + batch_size))
        rest = buffered - full
        if final:
            if rest and not drop_remainder:
                yield _take(rows, slice(full, buffered))
            buffer, buffered = [], 0
        else:
            buffer, buffered = ([_take(rows, slice(full, buffered))] if rest else []), rest

    def emit(rows: dict[str, np.ndarray]):
        if with_label:
            target = rows.pop("__target__")
            return rows, target
        return rows

    for batch in parquet.iter_batches(batch_size=READ_CHUNK_ROWS, columns=columns):
        n = batch.num_rows
        if num_shards > 1:
            start = (shard_index - position) % num_shards
            batch = batch.take(pa.array(np.arange(start, n, num_shards)))
        position += n
        if batch.num_rows == 0:
            continue
        rows = feature_arrays(batch, spec, path)
        if with_label:
            target, keep = label_array(batch, spec, path)
            rows["__target__"] = target
            if not keep.all():
                rows = _take(rows, keep)
        count = len(next(iter(rows.values())))
        if count == 0:
            continue
        buffer.append(rows)
        buffered += count
        if buffered >= capacity:
            for out in drain(final=False):
                yield emit(out)
    for out in drain(final=True):
        yield emit(out)


def output_signature(spec: F.TrainingSpec, with_label: bool = True):
    """The ``tf.data`` element spec: raw features by input key (+ the target)."""
    import tensorflow as tf

    feats = {
        f.input: tf.TensorSpec([None], tf.string if f.dtype == F.STRING else tf.float64, name=f.input)
        for f in spec.features
    }
    if not with_label:
        return feats
    target = tf.TensorSpec([None], tf.float32 if spec.label.task == F.REGRESSION else tf.int64)
    return feats, target


def make_dataset(
    path: str | Path,
    spec: F.TrainingSpec,
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
    shard_index: int = 0,
    num_shards: int = 1,
    with_label: bool = True,
    epoch_seeds: bool = True,
):
    """A ``tf.data.Dataset`` over a Parquet split, batched and prefetched.

    Every iteration (epoch) re-reads the file with a new shuffle seed derived from ``seed``, so epochs
    differ yet a run is reproducible.

    Args:
        path, spec, batch_size, shuffle_buffer, seed, shard_index, num_shards, with_label: as in
            :func:`iterate_batches`.
        epoch_seeds: vary the shuffle seed per iteration.
    Returns:
        The dataset; elements are ``(features, target)`` (or features), already batched.
    """
    import tensorflow as tf

    epoch = [0]

    def generator() -> Iterator:
        epoch_seed = seed + 1_000_003 * epoch[0] if epoch_seeds else seed
        epoch[0] += 1
        yield from iterate_batches(
            path, spec, batch_size, shuffle_buffer=shuffle_buffer, seed=epoch_seed,
            shard_index=shard_index, num_shards=num_shards, with_label=with_label,
        )

    dataset = tf.data.Dataset.from_generator(generator, output_signature=output_signature(spec, with_label))
    options = tf.data.Options()
    # Sharding is done by the generator (row position); tf.data must not shard again.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def dataset_fn(path: str | Path, spec: F.TrainingSpec, global_batch_size: int, **kwargs) -> Callable:
    """A function of ``tf.distribute.InputContext`` for ``strategy.distribute_datasets_from_function``.

    Each input pipeline reads its own shard at the per-replica batch size.
    """

    def build(context):
        return make_dataset(
            path, spec, context.get_per_replica_batch_size(global_batch_size),
            shard_index=context.input_pipeline_id, num_shards=context.num_input_pipelines, **kwargs,
        )

    return build
