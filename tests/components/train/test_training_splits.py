"""Three-way split: a validation part carved from Split-train decides early stopping; Split-eval is never read."""

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfpc.components import artifacts, contract
from kfpc.components.train import core
from kfpc.components.train import features as F
from kfpc.components.train import input as data_input
from kfpc.components.train.features import TrainInputError


def test_carve_is_a_pure_function_of_rows_fraction_and_seed():
    carve = data_input.Carve(10_000, 0.1, 42)
    mask = carve.validation_mask(0, 10_000)
    assert mask.sum() == carve.validation_rows == 1_000  # exact below EXACT_CARVE_ROWS
    again = data_input.Carve(10_000, 0.1, 42)
    assert np.array_equal(again.validation_mask(0, 10_000), mask), "a retry carves the same rows"
    chunks = np.concatenate([carve.validation_mask(start, 777) for start in range(0, 10_000, 777)])
    assert np.array_equal(chunks, mask), "record batches of any size see the same rows"
    other = data_input.Carve(10_000, 0.1, 43).validation_mask(0, 10_000)
    assert 50 < (other & mask).sum() < 200, "another seed, another (independent) draw"
    assert np.array_equal(carve.part_mask("train", 100, 50), ~mask[100:150])
    spread = np.flatnonzero(mask)
    assert spread[0] < 100 and spread[-1] > 9_900, "drawn over the whole file, not its tail"


def test_carve_of_large_and_tiny_tables():
    rows = data_input.EXACT_CARVE_ROWS + 1_000_000  # above the exact limit: one hash per row, no per-row memory
    carve = data_input.Carve(rows, 0.1, 7)
    whole = carve.validation_mask(0, rows)
    assert abs(int(whole.sum()) - rows // 10) < 5 * np.sqrt(rows * 0.09)
    parts = np.concatenate([carve.validation_mask(start, 65_536) for start in range(0, rows, 65_536)])
    assert np.array_equal(parts, whole)
    assert np.array_equal(data_input.Carve(rows, 0.1, 7).validation_mask(123_456, 1000), whole[123_456:124_456])
    # Small tables still validate on some rows: min(20, a quarter of the rows), at least one.
    assert data_input.Carve(60, 0.1, 1).validation_rows == 15
    assert data_input.Carve(1_000, 0.1, 1).validation_rows == 100
    assert data_input.Carve(150, 0.1, 1).validation_rows == 20
    assert data_input.Carve(2, 0.1, 1).validation_mask(0, 2).sum() == 1
    with pytest.raises(ValueError, match="at least 2 rows"):
        data_input.Carve(1, 0.1, 1)
    with pytest.raises(ValueError, match="validation_fraction"):
        data_input.Carve(100, 0.0, 1)


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, rows)
    return pd.DataFrame({"row": np.arange(rows, dtype=np.int64), "x": x,
                         "label": np.where(x + rng.normal(0, 0.5, rows) > 0, "yes", "no")})


def test_parts_partition_the_rows_in_every_reader(tmp_path, dataset_writer):
    frame = _frame(3_000, 0)
    frame.loc[[5, 6, 7], "label"] = None
    root = dataset_writer(tmp_path / "data", frame, _frame(100, 1))
    spec = F.build_spec(root, "label")
    path = artifacts.split_file(root, "train")
    carve = data_input.Carve(3_000, 0.1, 3)

    def rows(**kwargs):
        return [int(r) for features, _ in data_input.iterate_batches(path, spec, 128, **kwargs)
                for r in features["row"]]

    labelled = set(frame.index[frame["label"].notna()])
    validation = rows(carve=carve, part="validation")
    train = rows(carve=carve, part="train", shuffle_buffer=500, seed=9)
    assert set(validation) == set(np.flatnonzero(carve.validation_mask(0, 3_000))) & labelled
    assert set(train) | set(validation) == labelled and not set(train) & set(validation)
    assert len(train) == len(set(train))
    # Workers each read their shard of the part: together, the part, once.
    shards = [rows(carve=carve, part="train", shard_index=i, num_shards=3) for i in range(3)]
    assert sorted(sum(shards, [])) == sorted(train)
    # The tf.data pipeline reads the same part.
    import tensorflow as tf  # noqa: F401

    data = data_input.make_dataset(path, spec, 128, carve=carve, part="validation")
    assert sorted(int(r) for features, _ in data for r in features["row"].numpy()) == sorted(validation)
    counts = data_input.count_parts(path, spec, carve)
    assert counts["validation"]["rows"] == carve.validation_rows == 300
    assert counts["train"]["rows"] + counts["validation"]["rows"] == 3_000
    assert counts["train"]["missing_label"] + counts["validation"]["missing_label"] == 3


def _unreadable_data_pages(path):
    """Overwrite everything between the magic bytes and the footer: the metadata stays, no row can be read."""
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little")
    data[4:len(data) - footer - 8] = b"\xff" * (len(data) - footer - 12)
    path.write_bytes(bytes(data))
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises for corrupt pages
        pq.read_table(path)


def test_eval_split_is_never_read(tmp_path, dataset_writer):
    train = _frame(400, 2)
    garbage = pd.DataFrame({"row": np.full(50, -1, dtype=np.int64), "x": np.full(50, 1e300),
                            "label": ["a class training never saw"] * 25 + [None] * 25})
    root = dataset_writer(tmp_path / "data", train, garbage)
    _unreadable_data_pages(root / "Split-eval" / "data.parquet")
    result = core.train(root, tmp_path / "model", label="label", epochs=3, verbose=0, batch_size=32,
                        checkpoint_dir=tmp_path / "ckpt")
    card = contract.read_card(tmp_path / "model")
    assert set(card["metrics"]) == {"train", "validation"} == set(result.metrics)
    assert result.metrics["validation"]["accuracy"] > 0.7
    training = card["training"]
    assert (training["train_rows"], training["validation_rows"], training["eval_rows"]) == (360, 40, 50)
    # null labels of the eval split are counted from the Parquet footer's statistics, not from its rows
    assert training["dropped_rows_missing_label"] == {"train": 0, "validation": 0, "eval": 25}
    assert training["validation_split"] == {"source": "train", "validation_fraction": 0.1, "seed": 42,
                                            "exact": True}
    history = json.loads((tmp_path / "ckpt" / core.STATE_FILE).read_text())["history"]
    assert all("val_loss" in epoch for epoch in history), "early stopping watches the validation part"


def test_validation_metrics_are_those_of_the_carved_rows(tmp_path, dataset_writer):

    frame = _frame(600, 4)
    root = dataset_writer(tmp_path / "data", frame, _frame(50, 5))
    result = core.train(root, tmp_path / "model", label="label", epochs=2, verbose=0, seed=11,
                        validation_fraction=0.25)
    mask = data_input.Carve(600, 0.25, 11).validation_mask(0, 600)
    predictor = contract.load_predictor(tmp_path / "model")
    for part, rows in (("validation", frame[mask]), ("train", frame[~mask])):
        predicted = predictor.predict({"row": rows["row"], "x": rows["x"]})["classes"]
        assert result.metrics[part]["rows"] == len(rows)
        assert result.metrics[part]["accuracy"] == pytest.approx(float((predicted == rows["label"].to_numpy()).mean()))
    assert result.card["training"]["validation_rows"] == 150
    assert result.card["hyperparameters"]["validation_fraction"] == 0.25


def test_a_part_without_labels_and_bad_fractions_fail_before_training(tmp_path, dataset_writer):
    frame = _frame(40, 6)
    mask = data_input.Carve(40, 0.1, 42).validation_mask(0, 40)
    frame.loc[mask, "label"] = None  # every validation row unlabelled
    root = dataset_writer(tmp_path / "data", frame, frame)
    with pytest.raises(TrainInputError, match="validation part .* has no row with a label 'label'"):
        core.train(root, tmp_path / "model", label="label", verbose=0, checkpoint_dir=tmp_path / "ckpt")
    assert not (tmp_path / "model").exists() and not (tmp_path / "ckpt" / core.STATE_FILE).exists()
    for bad in (0.0, 0.6, -0.1, True):
        with pytest.raises(core.TrainError, match="validation_fraction"):
            core.train(root, tmp_path / "model", label="label", verbose=0, validation_fraction=bad)


def test_eval_rows_without_statistics_in_the_footer(tmp_path, dataset_writer):
    frame = _frame(300, 9)
    root = dataset_writer(tmp_path / "data", frame, frame)
    eval_file = root / "Split-eval" / "data.parquet"
    pq.write_table(pa.Table.from_pandas(_frame(70, 10), preserve_index=False), eval_file, write_statistics=False)
    assert core._eval_rows(root, "label") == (70, None)
    assert core._eval_rows(tmp_path / "absent", "label") == (None, None)
