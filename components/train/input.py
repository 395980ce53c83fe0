"""Streaming input: Parquet record batches -> shuffled, batched ``tf.data`` of raw features.

Memory is bounded by the shuffle buffer, never by the dataset: a background thread reads the split record
batch by record batch and converts it column-wise into an Arrow table of model inputs (float64 with NaN,
strings with ``""``; no Python object per value). Tables are buffered up to ``shuffle_buffer`` rows, one
permutation is drawn for the buffer, and the buffer is handed to ``tf.data`` as one element: numeric
columns as numpy arrays, each string column as its bytes end to end plus offsets. A parallel ``map`` then
gathers the rows in permutation order (``tf.gather``; strings cut out of the bytes by ``tf.strings.substr``)
and reshapes them into whole batches, which ``unbatch`` releases one by one; all of this runs in
TensorFlow's C++ threads, outside the GIL. The same pipeline feeds CPU, one GPU, several GPUs and several
workers; with more than one input pipeline (``MultiWorkerMirroredStrategy``) each pipeline keeps the rows
whose position modulo the number of pipelines is its id.

The features fed here are exactly what the serving signature takes (raw values, ``""`` / NaN missing),
so training and serving share one preprocessing graph inside the model. :func:`iterate_batches` yields the
same batches, in the same order, as numpy arrays (for evaluation loops outside ``tf.data``).

A :class:`Carve` splits one Parquet file into a training part and a validation part by row position, without
writing anything: every reader of either part computes the same mask for each record batch (a pure
function of the row position, the number of rows, the fraction and the seed), so a retried task, every
worker of a multi-worker job and every epoch see exactly the same rows in each part.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfpc.components._fs import parquet_batches
from kfpc.components.train import features as F

log = logging.getLogger(__name__)

READ_CHUNK_ROWS = 65_536

TRAIN_PART = "train"
VALIDATION_PART = "validation"
#: a small table still gets this many validation rows (but never more than a quarter of its rows)
MIN_VALIDATION_ROWS = 20
#: up to this many rows the validation part holds exactly round(fraction * rows) rows (a mask of one byte a
#: row is kept); above it each row is drawn independently (same expected count, no per-row memory)
EXACT_CARVE_ROWS = 4_000_000


def _mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer on uint64 (wrapping arithmetic): a well-spread 64-bit hash of each value."""
    x = values + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


class Carve:
    """Which rows of a split file form the validation part: a deterministic draw by row position and seed.

    Args:
        rows: rows in the file (from its Parquet metadata).
        fraction: share of rows drawn for validation, in (0, 0.5].
        seed: changes the draw (the training seed).
    Attributes:
        validation_rows: rows in the validation part (exact up to :data:`EXACT_CARVE_ROWS` rows; the
            expected count above, where it is counted by :meth:`count`).
    """

    def __init__(self, rows: int, fraction: float, seed: int):
        if not 0.0 < fraction <= 0.5:
            raise ValueError(f"validation_fraction must be in (0, 0.5], got {fraction}")
        if rows < 2:
            raise ValueError(f"a validation part needs at least 2 rows in the train split, got {rows}")
        self.rows, self.fraction, self.seed = int(rows), float(fraction), int(seed)
        target = int(round(fraction * rows))
        if target < MIN_VALIDATION_ROWS:
            target = max(target, min(MIN_VALIDATION_ROWS, rows // 4))
        target = min(max(1, target), rows - 1)
        self._key = _mix64(np.array([self.seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
        self._mask: np.ndarray | None = None
        if rows <= EXACT_CARVE_ROWS:
            hashes = self._hashes(0, rows)
            mask = np.zeros(rows, dtype=bool)
            mask[np.argpartition(hashes, target - 1)[:target]] = True
            self._mask = mask
            self._threshold = None
        else:
            self._threshold = np.uint64(min(2**64 - 1, int(target / rows * 2**64)))
        self.validation_rows = target

    def _hashes(self, start: int, count: int) -> np.ndarray:
        positions = np.arange(start, start + count, dtype=np.uint64)
        return _mix64(positions ^ self._key)

    def validation_mask(self, start: int, count: int) -> np.ndarray:
        """True for the rows at positions ``start .. start + count - 1`` that belong to the validation part."""
        if self._mask is not None:
            return self._mask[start:start + count]
        return self._hashes(start, max(0, min(count, self.rows - start))) < self._threshold

    def part_mask(self, part: str, start: int, count: int) -> np.ndarray:
        """True for the rows of ``part`` (``train`` or ``validation``) among positions ``start ..``."""
        mask = self.validation_mask(start, count)
        if part == VALIDATION_PART:
            return mask
        if part == TRAIN_PART:
            return ~mask
        raise ValueError(f"part must be {TRAIN_PART!r} or {VALIDATION_PART!r}, got {part!r}")

    def describe(self) -> dict:
        """What the model card records about the draw."""
        return {"validation_fraction": self.fraction, "seed": self.seed, "exact": self._mask is not None}


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
        # Classes are the label's integer values written as text: compare numbers, not strings (no per-row str).
        values = np.round(F._numeric_values(column, label.name, Path(path)))
        ids = pc.index_in(
            pa.array(values, from_pandas=True), value_set=pa.array([float(c) for c in label.classes], pa.float64())
        )
    else:
        text = pc.fill_null(F._string_values(column), "")
        ids = pc.index_in(text, value_set=pa.array(label.classes, type=pa.string()))
    keep = ids.is_valid().to_numpy(zero_copy_only=False)
    return pc.fill_null(ids, 0).to_numpy(zero_copy_only=False).astype(np.int64), keep


def count_parts(path: str | Path, spec: F.TrainingSpec, carve: Carve) -> dict[str, dict[str, int]]:
    """Rows of each part of a carved split file and how many of them have no usable label (read: the label only).

    Returns:
        ``{"train": {"rows", "missing_label"}, "validation": {...}}``; ``missing_label`` counts rows whose label
        is null (or NaN, or ``""``) and, for classification, a class the model does not know.
    """
    counts = {part: {"rows": 0, "missing_label": 0} for part in (TRAIN_PART, VALIDATION_PART)}
    position = 0
    for batch in parquet_batches(path, F.TrainInputError, batch_size=READ_CHUNK_ROWS, columns=[spec.label.name]):
        validation = carve.validation_mask(position, batch.num_rows)
        position += batch.num_rows
        _, keep = label_array(batch, spec, path)
        for part, mask in ((VALIDATION_PART, validation), (TRAIN_PART, ~validation)):
            counts[part]["rows"] += int(mask.sum())
            counts[part]["missing_label"] += int((mask & ~keep).sum())
    return counts


TARGET = "__kfpc_target__"  # the target's column in a chunk table (input keys are identifiers without it)


def _chunk_table(batch: pa.RecordBatch, spec: F.TrainingSpec, path: Path | str, with_label: bool) -> pa.Table:
    """A record batch as a table of model inputs by input key (+ the target), nulls already filled.

    Numeric inputs are float64 arrays without a validity bitmap (NaN missing), strings are Arrow strings with
    ``""`` for missing: shuffling and slicing then stay in Arrow's C++ kernels, never one Python object a row.
    """
    names, arrays = [], []
    for feature in spec.features:
        column = batch.column(feature.name)
        if feature.dtype == F.STRING:
            arrays.append(pc.fill_null(F._string_values(column), ""))
        else:
            arrays.append(pa.array(F._numeric_values(column, feature.name, Path(path)), type=pa.float64()))
        names.append(feature.input)
    table = pa.Table.from_arrays(arrays, names=names)
    if with_label:
        target, keep = label_array(batch, spec, path)
        table = table.append_column(TARGET, pa.array(target))
        if not keep.all():
            table = table.filter(pa.array(keep))
    return table


def _read_ahead(items: Iterator, depth: int = 2) -> Iterator:
    """``items`` produced by a background thread, at most ``depth`` ahead of the consumer.

    Parquet decoding and Arrow conversions release the GIL, so reading the next record batches overlaps
    with shuffling and with TensorFlow consuming the previous ones. The thread stops when the consumer
    goes away (the generator is closed or collected); an error in it is raised in the consumer.
    """
    done = object()
    results: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        results.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            results.put((done, None))
        except BaseException as err:  # noqa: BLE001 - re-raised in the consumer
            results.put((done, err))

    thread = threading.Thread(target=produce, name="kfpc-parquet-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, err = results.get()
            if err is not None:
                raise err
            if item is done:
                return
            yield item
    finally:
        stop.set()


def _shuffled_buffers(
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
    carve: Carve | None = None,
    part: str | None = None,
) -> Iterator[tuple[pa.Table, np.ndarray | None]]:
    """Yield ``(rows, order)``: the rows of a chunk are ``rows.take(order)`` (``order`` None: all rows, in order).

    Taking is left to the consumer, so that TensorFlow can gather in its own threads. Every chunk but the
    last holds a multiple of ``batch_size`` rows. With ``carve``, only the rows of ``part`` are read, and
    sharding counts positions within that part.

    Args:
        path: the split's Parquet file.
        spec: the TrainingSpec (which columns, how to encode the label).
        batch_size: rows per batch.
        shuffle_buffer: rows held and shuffled together; 0 keeps the file order.
        seed: shuffle seed.
        shard_index: this input pipeline's id.
        num_shards: number of input pipelines; rows whose position % num_shards == shard_index are kept.
        with_label: read the target too; else features only (rows without a label are kept).
        drop_remainder: drop the last partial batch.
        carve: read only one part of the file (see :class:`Carve`); None reads every row.
        part: with ``carve``: ``train`` or ``validation``.
    """
    if carve is not None and part is None:
        raise ValueError("a carve needs the part to read ('train' or 'validation')")
    rng = np.random.default_rng(seed)
    columns = [f.name for f in spec.features] + ([spec.label.name] if with_label else [])
    # (parquet_batches reads without pre-buffering: with it, iter_batches keeps every pre-buffered byte range
    # of the file until the reader is closed; pyarrow 25: ~45 MB more per million rows of the synthetic table)
    buffer: list[pa.Table] = []
    buffered = 0
    capacity = max(shuffle_buffer, batch_size)

    def tables() -> Iterator[pa.Table]:
        position = 0  # row position (in the part) of the next record batch, for sharding
        file_position = 0  # row position in the file, for the carve
        # use_threads=False: this runs in the read-ahead thread, overlapped with the rest of the pipeline; Arrow's
        # per-column decode threads only add CPU here (about 20% more per row, same wall time).
        for batch in parquet_batches(path, F.TrainInputError, batch_size=READ_CHUNK_ROWS, columns=columns,
                                     use_threads=False):
            if carve is not None:
                keep = carve.part_mask(part, file_position, batch.num_rows)
                file_position += batch.num_rows
                batch = batch.filter(pa.array(keep))
            n = batch.num_rows
            if num_shards > 1:
                start = (shard_index - position) % num_shards
                batch = batch.take(pa.array(np.arange(start, n, num_shards)))
            position += n
            if batch.num_rows:
                table = _chunk_table(batch, spec, path, with_label)
                if table.num_rows:
                    yield table

    def drain(final: bool) -> Iterator[tuple[pa.Table, np.ndarray | None]]:
        nonlocal buffer, buffered
        if not buffer:
            return
        rows = pa.concat_tables(buffer).combine_chunks() if len(buffer) > 1 else buffer[0]
        order = rng.permutation(buffered) if shuffle_buffer else None
        full = (buffered // batch_size) * batch_size
        rest = buffered - full
        if full:
            yield (rows, order[:full]) if order is not None else (rows.slice(0, full), None)
        if final:
            if rest and not drop_remainder:
                yield (rows, order[full:]) if order is not None else (rows.slice(full), None)
            buffer, buffered = [], 0
        else:
            carried = rows.take(pa.array(order[full:])) if order is not None else rows.slice(full)
            buffer, buffered = ([carried] if rest else []), rest

    for table in _read_ahead(tables()):
        buffer.append(table)
        buffered += table.num_rows
        if buffered >= capacity:
            yield from drain(final=False)
    yield from drain(final=True)


def iterate_chunks(path: str | Path, spec: F.TrainingSpec, batch_size: int, **options) -> Iterator[pa.Table]:
    """Yield shuffled chunks of whole batches as Arrow tables (columns: input keys, + :data:`TARGET`).

    Every chunk but the last holds a multiple of ``batch_size`` rows; the last one holds the remainder
    (dropped with ``drop_remainder``). Shuffling draws one permutation of the buffered rows and applies it
    with ``Table.take`` (C++), so it costs the same for strings as for numbers.

    Args: as in :func:`iterate_batches` (``options``: the keyword arguments of :func:`_shuffled_buffers`).
    """
    for rows, order in _shuffled_buffers(path, spec, batch_size, **options):
        yield rows if order is None else rows.take(pa.array(order))


def _numpy_batch(table: pa.Table, spec: F.TrainingSpec) -> dict[str, np.ndarray]:
    out = {}
    for feature in spec.features:
        column = table.column(feature.input)
        out[feature.input] = column.to_numpy() if feature.dtype == F.STRING else column.to_numpy().astype(np.float64)
    return out


def iterate_batches(path: str | Path, spec: F.TrainingSpec, batch_size: int,
                    **options) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray] | dict[str, np.ndarray]]:
    """Yield batches of raw features (and targets) from a Parquet split, as numpy arrays.

    Args:
        path: the split's Parquet file.
        spec: the TrainingSpec (which columns, how to encode the label).
        batch_size: rows per batch (the last batch may be smaller unless ``drop_remainder``).
        options: the keyword arguments of :func:`_shuffled_buffers` (shuffle_buffer, seed, shard_index,
            num_shards, with_label, drop_remainder, carve, part), documented there.
    Yields:
        ``(features, target)`` or, with ``with_label=False``, ``features``; features map input key -> float64
        (NaN missing) or object ``str`` (``""`` missing) arrays of ``batch_size`` rows.
    """
    with_label = options.get("with_label", True)
    for chunk in iterate_chunks(path, spec, batch_size, **options):
        for start in range(0, chunk.num_rows, batch_size):
            rows = chunk.slice(start, batch_size)
            features = _numpy_batch(rows, spec)
            if with_label:
                yield features, rows.column(TARGET).to_numpy()
            else:
                yield features


def _string_parts(column: pa.ChunkedArray) -> tuple[bytes, np.ndarray]:
    """An Arrow string column as (the bytes of its values, end to end; int64 offsets, one per row + 1)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pa.types.is_string(array.type):
        width = np.int32
    else:
        array = array.cast(pa.large_string()) if not pa.types.is_large_string(array.type) else array
        width = np.int64
    _, offsets_buffer, data = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=width, count=len(array) + 1, offset=array.offset * width().itemsize)
    first, last = int(offsets[0]), int(offsets[-1])
    blob = bytes(memoryview(data)[first:last]) if data is not None else b""
    return blob, (offsets - first).astype(np.int64)


def _chunk_element(
    chunk: pa.Table, order: np.ndarray | None, spec: F.TrainingSpec, batch_size: int, with_label: bool
) -> dict:
    """A chunk as what ``from_generator`` carries: numpy arrays and, per string input, (bytes, offsets).

    ``order``: the rows to take, in this order (None: all, as they are).
    """
    rows = chunk.num_rows if order is None else len(order)
    element: dict = {
        "rows_per_batch": np.int64(min(batch_size, rows)),
        "order": np.arange(rows, dtype=np.int64) if order is None else order.astype(np.int64, copy=False),
    }
    for feature in spec.features:
        column = chunk.column(feature.input)
        if feature.dtype == F.STRING:
            element[feature.input] = _string_parts(column)
        else:
            element[feature.input] = column.to_numpy()
    if with_label:
        element[TARGET] = chunk.column(TARGET).to_numpy()
    return element


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
    carve: Carve | None = None,
    part: str | None = None,
):
    """A ``tf.data.Dataset`` over a Parquet split, batched and prefetched.

    Every iteration (epoch) re-reads the file with a new shuffle seed derived from ``seed``, so epochs
    differ yet a run is reproducible.

    Args:
        path, spec, batch_size, shuffle_buffer, seed, shard_index, num_shards, with_label, carve, part: as in
            :func:`iterate_batches`.
        epoch_seeds: vary the shuffle seed per iteration.
    Returns:
        The dataset; elements are ``(features, target)`` (or features), already batched.
    """
    import tensorflow as tf

    epoch = [0]

    def generator() -> Iterator[dict]:
        epoch_seed = seed + 1_000_003 * epoch[0] if epoch_seeds else seed
        epoch[0] += 1
        for rows, order in _shuffled_buffers(
            path, spec, batch_size, shuffle_buffer=shuffle_buffer, seed=epoch_seed,
            shard_index=shard_index, num_shards=num_shards, with_label=with_label, carve=carve, part=part,
        ):
            yield _chunk_element(rows, order, spec, batch_size, with_label)

    def split(element):
        # One chunk -> [batches, rows_per_batch] tensors; strings are cut out of the chunk's bytes by offsets
        # (C++, in tf.data's threads), so no Python object is created per value.
        # The shuffle is a gather by the chunk's permutation, done here too.
        per, order = element["rows_per_batch"], element["order"]
        features = {}
        for feature in spec.features:
            value = element[feature.input]
            if feature.dtype == F.STRING:
                blob, offsets = value
                starts = tf.gather(offsets, order)
                value = tf.strings.substr(blob, starts, tf.gather(offsets, order + 1) - starts, unit="BYTE")
            else:
                value = tf.gather(value, order)
            features[feature.input] = tf.reshape(value, [-1, per])
        if not with_label:
            return features
        return features, tf.reshape(tf.gather(element[TARGET], order), [-1, per])

    chunk_signature: dict = {"rows_per_batch": tf.TensorSpec([], tf.int64), "order": tf.TensorSpec([None], tf.int64)}
    for feature in spec.features:
        chunk_signature[feature.input] = (
            (tf.TensorSpec([], tf.string), tf.TensorSpec([None], tf.int64))
            if feature.dtype == F.STRING else tf.TensorSpec([None], tf.float64)
        )
    if with_label:
        chunk_signature[TARGET] = tf.TensorSpec([None], tf.float32 if spec.label.task == F.REGRESSION else tf.int64)

    dataset = tf.data.Dataset.from_generator(generator, output_signature=chunk_signature)
    dataset = dataset.map(split, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()
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
