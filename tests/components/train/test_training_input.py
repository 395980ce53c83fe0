"""Streaming input: the tf.data pipeline yields every row exactly once, shuffled, in whole batches, byte-exact."""

import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfpc.components import artifacts
from kfpc.components.train import features as F
from kfpc.components.train import input as data_input

ROWS = 5_000
BATCH = 64


def write_dataset(root, train: pd.DataFrame, eval_: pd.DataFrame):
    for split, frame in (("train", train), ("eval", eval_)):
        (root / f"Split-{split}").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), root / f"Split-{split}" / "data.parquet")
    return root


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["alpha", "Zürich", "naïve café", "a\x00b", "", "東京", "x" * 300, "beta"])
    text = words[rng.integers(0, len(words), rows)].astype(object)
    text[rng.random(rows) < 0.1] = None
    value = rng.normal(0, 1, rows)
    value[rng.random(rows) < 0.1] = np.nan
    return pd.DataFrame({
        "row": np.arange(rows, dtype=np.int64),  # a numeric feature that identifies the row
        "value": value,
        "text": text,
        "code": rng.integers(0, 4, rows),
        "label": np.where(rng.random(rows) < 0.5, "yes", "no"),
    })


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    frame = _frame(ROWS, 0)
    frame.loc[[3, 17], "label"] = None  # rows without a label are not trained on
    root = write_dataset(tmp_path_factory.mktemp("input") / "data", frame, _frame(500, 1))
    spec = F.build_spec(root, "label", categorical_features=["code"])
    return root, spec, frame


def _expected(frame: pd.DataFrame) -> dict[int, tuple]:
    """row id -> (value, text bytes, class id) of the rows with a label."""
    out = {}
    for row in frame.itertuples():
        if row.label is None:
            continue
        text = b"" if row.text is None else row.text.encode()
        out[row.row] = (row.value, text, ["no", "yes"].index(row.label), float(row.code))
    return out


def _collect(batches) -> tuple[list[int], dict[int, tuple], list[int]]:
    order, seen, sizes = [], {}, []
    for features, target in batches:
        features = {k: np.asarray(v) for k, v in features.items()}
        target = np.asarray(target)
        sizes.append(len(target))
        for i, row in enumerate(features["row"].astype(np.int64).tolist()):
            text = features["text"][i]
            seen[row] = (features["value"][i], text.encode() if isinstance(text, str) else text, int(target[i]),
                         features["code"][i])
            order.append(row)
    return order, seen, sizes


def _same(expected: dict, seen: dict) -> None:
    assert seen.keys() == expected.keys()
    for row, (value, text, target, code) in expected.items():
        got = seen[row]
        assert (np.isnan(value) and np.isnan(got[0])) or value == got[0], row
        assert got[1:] == (text, target, code), row


def test_dataset_yields_every_row_once_shuffled_byte_exact(dataset):
    import tensorflow as tf

    root, spec, frame = dataset
    data = data_input.make_dataset(artifacts.split_file(root, "train"), spec, BATCH, shuffle_buffer=1_000, seed=3)
    features_spec, target_spec = data.element_spec
    assert features_spec["text"].dtype == tf.string and features_spec["value"].dtype == tf.float64
    assert features_spec["text"].shape.as_list() == [None] and target_spec.dtype == tf.int64
    order, seen, sizes = _collect(data)
    _same(_expected(frame), seen)
    assert len(order) == ROWS - 2
    assert all(size == BATCH for size in sizes[:-1]) and 0 < sizes[-1] <= BATCH
    assert order != sorted(order)  # shuffled


def test_epochs_differ_and_runs_repeat(dataset):
    root, spec, _ = dataset
    path = artifacts.split_file(root, "train")
    data = data_input.make_dataset(path, spec, BATCH, shuffle_buffer=1_000, seed=3)
    first, second = _collect(data)[0], _collect(data)[0]
    assert first != second and sorted(first) == sorted(second)
    again = data_input.make_dataset(path, spec, BATCH, shuffle_buffer=1_000, seed=3)
    assert _collect(again)[0] == first


def test_numpy_batches_match_the_tf_dataset(dataset):
    root, spec, frame = dataset
    path = artifacts.split_file(root, "train")
    tf_order, _, tf_sizes = _collect(data_input.make_dataset(path, spec, BATCH, shuffle_buffer=700, seed=5))
    np_order, seen, np_sizes = _collect(data_input.iterate_batches(path, spec, BATCH, shuffle_buffer=700, seed=5))
    assert np_order == tf_order and np_sizes == tf_sizes
    _same(_expected(frame), seen)


def test_unshuffled_order_and_drop_remainder(dataset):
    root, spec, _ = dataset
    path = artifacts.split_file(root, "train")
    order, _, sizes = _collect(data_input.make_dataset(path, spec, 100))
    assert order == sorted(order)
    _, _, sizes = _collect(data_input.iterate_batches(path, spec, 100, drop_remainder=True))
    assert sizes == [100] * ((ROWS - 2) // 100)


def test_shards_split_the_rows(dataset):
    root, spec, frame = dataset
    path = artifacts.split_file(root, "train")
    shards = [
        _collect(data_input.make_dataset(path, spec, BATCH, shuffle_buffer=500, shard_index=i, num_shards=3))
        for i in range(3)
    ]
    orders = [set(order) for order, _, _ in shards]
    assert sum(len(o) for o in orders) == ROWS - 2 and set().union(*orders) == set(_expected(frame))
    for i, order in enumerate(orders):
        assert all(row % 3 == i for row in order)


def test_features_only_keeps_rows_without_label(dataset):
    root, spec, _ = dataset
    data = data_input.make_dataset(artifacts.split_file(root, "train"), spec, 256, with_label=False)
    rows = sum(int(batch["row"].shape[0]) for batch in data)
    assert rows == ROWS


def test_regression_target_and_numeric_classes(tmp_path):
    frame = _frame(600, 2)
    frame["price"] = frame["value"].fillna(0) * 10 + 100
    frame["grade"] = np.where(frame["row"] % 3 == 0, 7, -2)
    frame.loc[5, "grade"] = None
    eval_ = frame.copy()
    root = write_dataset(tmp_path / "data", frame.drop(columns=["label"]), eval_.drop(columns=["label"]))
    spec = F.build_spec(root, "price", exclude=["grade"])
    targets = np.concatenate([np.asarray(t) for _, t in data_input.make_dataset(artifacts.split_file(root, "train"), spec, 128)])
    np.testing.assert_allclose(targets * spec.label.std + spec.label.mean, frame["price"], rtol=1e-5)
    spec = F.build_spec(root, "grade", exclude=["price"], task="binary")
    assert spec.label.classes == ["-2", "7"]
    batches = list(data_input.make_dataset(artifacts.split_file(root, "train"), spec, 128))
    rows = np.concatenate([np.asarray(f["row"]) for f, _ in batches]).astype(int)
    targets = np.concatenate([np.asarray(t) for _, t in batches])
    assert 5 not in rows and len(rows) == 599
    assert (targets == np.where(rows % 3 == 0, 1, 0)).all()


def test_bad_value_is_raised_and_reader_thread_stops(tmp_path):
    frame = _frame(200_000, 3)
    frame["value"] = frame["value"].fillna(0.5)
    root = write_dataset(tmp_path / "data", frame, _frame(500, 4))
    spec = F.build_spec(root, "label")
    before = threading.active_count()
    # Abandoning an epoch early (e.g. steps_per_epoch) stops the read-ahead thread.
    batches = data_input.iterate_batches(artifacts.split_file(root, "train"), spec, 32, shuffle_buffer=100)
    next(batches)
    batches.close()
    deadline = time.monotonic() + 10
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() == before
    # A non-numeric value in a numeric column, found mid-file by the reader thread, reaches the consumer.
    bad = frame.astype({"value": str})
    bad.loc[150_000, "value"] = "twelve"
    bad_root = write_dataset(tmp_path / "bad", bad, _frame(500, 4))
    with pytest.raises(F.TrainInputError, match="value.*twelve"):
        for _ in data_input.iterate_batches(artifacts.split_file(bad_root, "train"), spec, 1024):
            pass
