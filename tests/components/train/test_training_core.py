"""train core: real TensorFlow training on small real data, the model contract, bad input."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from kfpc.components import contract, types
from kfpc.components.contract import signature
from kfpc.components.train import core
from kfpc.components.train import features as F
from kfpc.components.train import model as model_lib
from kfpc.components.train.features import TrainInputError

PENGUIN_PARAMS = {"batch_size": 32, "learning_rate": 0.003, "epochs": 40, "patience": 8, "seed": 7}


@pytest.fixture(scope="module")
def penguins_model(penguins_dataset, tmp_path_factory):
    root = tmp_path_factory.mktemp("penguins-model")
    result = core.train(
        penguins_dataset, root / "model", label="species", checkpoint_dir=root / "checkpoints",
        tensorboard_dir=root / "tensorboard", verbose=0, **PENGUIN_PARAMS,
    )
    return root, result


def test_penguins_accuracy_and_layout(penguins_model):
    root, result = penguins_model
    assert set(result.metrics) == {"train", "validation"}, "training never reports on Split-eval"
    assert result.metrics["validation"]["accuracy"] >= 0.9, result.metrics
    assert result.metrics["validation"]["rows"] >= 20
    model_dir = root / "model"
    assert (model_dir / "1" / "saved_model.pb").exists()
    assert (model_dir / "1" / "variables").is_dir()
    card = contract.read_card(model_dir)
    assert card == result.card
    assert card["label"] == "species" and card["task"] == "multiclass"
    assert card["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    names = [f["name"] for f in card["features"]]
    assert "species" not in names and {"island", "sex", "bill_length_mm", "year"} <= set(names)
    assert {f["name"]: f["dtype"] for f in card["features"]}["island"] == "string"
    assert {f["name"]: f["dtype"] for f in card["features"]}["body_mass_g"] == "float64"
    assert card["schema_hash"].startswith("sha256:")
    assert card["kfpc_version"] and card["metrics"] == result.metrics
    assert card["hyperparameters"]["batch_size"] == 32
    assert list((root / "tensorboard").rglob("events.out.tfevents.*")), "TensorBoard logs written"


def test_signature_matches_the_model_contract(penguins_model):
    import tensorflow as tf

    root, _ = penguins_model
    loaded = tf.saved_model.load(str(root / "model" / "1"))
    sig = loaded.signatures["serving_default"]
    inputs = sig.structured_input_signature[1]
    card = contract.read_card(root / "model")
    assert set(inputs) == {f["input"] for f in card["features"]}
    for feature in card["features"]:
        spec = inputs[feature["input"]]
        assert spec.dtype == (tf.string if feature["dtype"] == "string" else tf.float64)
        assert spec.shape.as_list() == [None]
    outputs = sig.structured_outputs
    assert outputs["probabilities"].dtype == tf.float32 and outputs["probabilities"].shape.as_list() == [None, 3]
    assert outputs["class_ids"].dtype == tf.int64 and outputs["classes"].dtype == tf.string


RAW_ROWS = {
    "island": ["Biscoe", "Atlantis", None, "Dream"],  # "Atlantis": a category never seen in training
    "bill_length_mm": [47.5, 39.0, None, 49.0],  # None: a missing value
    "bill_depth_mm": [14.8, 18.5, 17.1, 19.5],
    "flipper_length_mm": [217.0, 190.0, 187.0, float("nan")],
    "body_mass_g": [5200, 3700, 3450, 3950],
    "sex": ["male", "", "female", None],
    "year": [2008, 2009, 2007, 2008],
}


def test_round_trip_in_a_fresh_process(penguins_model, worker):
    root, result = penguins_model
    card = contract.read_card(root / "model")
    inputs = signature.to_model_inputs(RAW_ROWS, card)
    import tensorflow as tf

    tensors = {k: tf.constant(v, dtype=tf.string if v.dtype == object else tf.float64) for k, v in inputs.items()}
    in_process = {k: v.numpy() for k, v in model_lib.outputs_from_model(result.model, tensors, result.spec).items()}
    fresh = worker({"model_dir": str(root / "model"), "predict": RAW_ROWS})
    np.testing.assert_allclose(np.array(fresh["probabilities"]), in_process["probabilities"], rtol=1e-6, atol=1e-7)
    assert fresh["class_ids"] == in_process["class_ids"].tolist()
    assert fresh["classes"] == [c.decode() for c in in_process["classes"]]
    assert np.isfinite(np.array(fresh["probabilities"])).all()
    assert fresh["classes"][0] == "Gentoo"  # a long-billed, shallow-billed heavy Biscoe bird


def test_predictor_matches_card_metrics(penguins_model, penguins_dataset):
    import pyarrow.parquet as pq

    from kfpc.components.train import input as data_input

    root, result = penguins_model
    predictor = contract.load_predictor(root / "model")
    table = pq.read_table(penguins_dataset / "Split-train" / "data.parquet").to_pandas()
    carve = data_input.Carve(len(table), 0.1, PENGUIN_PARAMS["seed"])
    for part, metrics in result.metrics.items():
        rows = table[carve.part_mask(part, 0, len(table))]
        rows = rows[rows["species"].notna()]
        outputs = predictor.predict({c: rows[c] for c in rows.columns})  # the label column is ignored
        assert len(rows) == metrics["rows"]
        assert float((outputs["classes"] == rows["species"].to_numpy()).mean()) == pytest.approx(metrics["accuracy"])
    # Split-eval, never seen by training, is what evaluation reports: the model holds up there too
    held_out = pq.read_table(penguins_dataset / "Split-eval" / "data.parquet").to_pandas()
    held_out = held_out[held_out["species"].notna()]
    outputs = predictor.predict({c: held_out[c] for c in held_out.columns})
    assert float((outputs["classes"] == held_out["species"].to_numpy()).mean()) >= 0.95


def test_house_prices_regression(house_dataset, tmp_path):
    result = core.train(
        house_dataset, tmp_path / "model", label="price", batch_size=32, learning_rate=0.003, epochs=60, patience=8,
        verbose=0,
    )
    card = result.card
    assert card["task"] == "regression" and card["classes"] == []
    validation = result.metrics["validation"]
    assert {"r2", "rmse", "mae", "mse"} <= set(validation)
    print("house prices validation:", json.dumps(validation))
    assert 5_000 < validation["rmse"] < 40_000  # in dollars: the label's units, not standardized
    predictor = contract.load_predictor(tmp_path / "model")
    import pyarrow.parquet as pq

    held_out = pq.read_table(house_dataset / "Split-eval" / "data.parquet").to_pandas()
    predicted = predictor.predict({c: held_out[c] for c in held_out.columns})["predictions"]
    r2 = 1 - ((predicted - held_out["price"]) ** 2).sum() / ((held_out["price"] - held_out["price"].mean()) ** 2).sum()
    assert r2 > 0.55, r2  # on Split-eval, which training never read; linear models reach about 0.67
    row = {f["name"]: [None] for f in card["features"]}  # every feature missing: still a sane price
    (price,) = predictor.predict(row)["predictions"]
    assert 20_000 < price < 200_000


def test_binary_with_embeddings_integer_categories_and_statistics(synthetic_dataset, tmp_path):
    from kfpc.components.statistics import core as statistics

    statistics.write_statistics(synthetic_dataset, tmp_path / "stats")
    result = core.train(
        synthetic_dataset, tmp_path / "model", label="label", statistics_dir=tmp_path / "stats",
        categorical_features=["code"], one_hot_max=16, batch_size=128, learning_rate=0.01, epochs=15, patience=3,
        verbose=0,
    )
    card = result.card
    assert card["task"] == "binary" and card["classes"] == ["no", "yes"]
    features = {f["name"]: f for f in card["features"]}
    assert features["city"]["encoding"] == "embedding" and features["city"]["vocabulary_size"] == 300
    assert features["code"] == {**features["code"], "kind": "categorical", "dtype": "float64", "encoding": "one_hot"}
    assert card["training_statistics_uri"] == str(tmp_path / "stats")
    assert card["training"]["statistics_source"] == str(tmp_path / "stats")
    assert result.metrics["validation"]["accuracy"] > 0.75 and result.metrics["validation"]["auc"] > 0.8, result.metrics
    predictor = contract.load_predictor(tmp_path / "model")
    out = predictor.predict({"x": [0.5, None], "amount": [10.0, None], "city": ["city-3", "nowhere"], "code": [2, 99]})
    assert out["probabilities"].shape == (2, 2)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_statistics_artifact_is_the_source_of_normalization(synthetic_dataset, tmp_path):
    """Means and vocabularies come from FeatureStats.pb, not from another pass over the data."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    from kfpc.components.statistics import core as statistics
    from kfpc.components.train import features

    statistics.write_statistics(synthetic_dataset, tmp_path / "stats")
    path = tmp_path / "stats" / "Split-train" / "FeatureStats.pb"
    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(path.read_bytes())
    for feature in stats.datasets[0].features:
        name = feature.name or feature.path.step[0]
        if name == "amount":
            feature.num_stats.mean, feature.num_stats.std_dev = 1234.5, 67.0
        if name == "city":
            del feature.string_stats.top_values[3:]
            del feature.string_stats.rank_histogram.buckets[3:]
    path.write_bytes(stats.SerializeToString())
    spec = features.build_spec(synthetic_dataset, "label", statistics_dir=tmp_path / "stats")
    by_name = {f.name: f for f in spec.features}
    assert (by_name["amount"].mean, by_name["amount"].std) == (1234.5, 67.0)
    assert len(by_name["city"].vocabulary) == 3


# ------------------------------------------------------------------------------------- bad input


def _bad(tmp_path, dataset_writer, frame, **kwargs):
    root = dataset_writer(tmp_path / "data", frame, frame)
    with pytest.raises(TrainInputError) as info:
        core.train(root, tmp_path / "model", checkpoint_dir=tmp_path / "ckpt", verbose=0, **kwargs)
    # rejected before any training step: no model, no checkpoint state
    assert not (tmp_path / "model").exists()
    assert not (tmp_path / "ckpt" / core.STATE_FILE).exists()
    return str(info.value)


def test_label_column_missing(tmp_path, dataset_writer, frame_maker):
    message = _bad(tmp_path, dataset_writer, frame_maker(50, 0), label="target")
    assert "'target'" in message and "Split-train" in message and "city" in message


def test_label_with_a_single_class(tmp_path, dataset_writer, frame_maker):
    frame = frame_maker(50, 0).assign(label="yes")
    message = _bad(tmp_path, dataset_writer, frame, label="label")
    assert "single class" in message and "'label'" in message


def test_regression_label_with_a_single_value(tmp_path, dataset_writer, frame_maker):
    frame = frame_maker(50, 0).assign(label=3.5)
    message = _bad(tmp_path, dataset_writer, frame, label="label")
    assert "single value" in message


def test_a_feature_null_in_every_train_row_is_left_out_with_a_warning(tmp_path, dataset_writer, frame_maker, caplog):
    """(It failed the task, retried; a column whose few values all landed in the eval split is no error.)"""
    frame = frame_maker(50, 0).assign(x=np.nan)
    dataset = dataset_writer(tmp_path / "ok", frame, frame)
    with caplog.at_level("WARNING"):
        spec = F.build_spec(dataset, "label")
    assert "x" not in F.feature_by_name(spec) and F.feature_by_name(spec)
    assert "feature 'x' is null in every row of the train split: not used" in caplog.text
    only_null = frame[["label"]].assign(x=np.nan)
    message = _bad(tmp_path, dataset_writer, only_null, label="label")
    assert "no usable feature" in message


def test_non_numeric_value_in_a_numeric_column(tmp_path, dataset_writer, frame_maker):
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    frame = frame_maker(50, 0)
    frame["amount"] = frame["amount"].round(2).astype(str)
    frame.loc[17, "amount"] = "twelve"
    schema = schema_pb2.Schema()
    schema.feature.add(name="amount", type=schema_pb2.FLOAT)
    (tmp_path / "schema").mkdir()
    (tmp_path / "schema" / types.SCHEMA_FILE).write_text(text_format.MessageToString(schema))
    message = _bad(tmp_path, dataset_writer, frame, label="label", schema_path=tmp_path / "schema")
    assert "'amount'" in message and "'twelve'" in message and "data.parquet" in message


def test_bad_parameters():
    with pytest.raises(core.TrainError, match="dropout"):
        core._check_parameters([8], 1.5, 0.1, 32, 1, 1, 0)
    with pytest.raises(core.TrainError, match="hidden_units"):
        core._check_parameters([], 0.1, 0.1, 32, 1, 1, 0)


def test_load_model_card_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        contract.read_card(tmp_path)


def test_no_nan_in_metrics(penguins_model):
    _, result = penguins_model
    for split in ("train", "validation"):
        assert all(math.isfinite(v) for v in result.metrics[split].values())


def test_label_rows_missing_are_skipped_counted_and_warned(tmp_path, dataset_writer, frame_maker, caplog):
    from kfpc.components.train import input as data_input

    frame = frame_maker(300, 3)
    frame.loc[:20, "label"] = None
    eval_frame = frame_maker(80, 4)
    eval_frame.loc[:4, "label"] = None
    root = dataset_writer(tmp_path / "data", frame, eval_frame)
    with caplog.at_level("WARNING", logger="kfpc.components.train.core"):
        result = core.train(root, tmp_path / "model", label="label", epochs=1, verbose=0, seed=5)
    validation = data_input.Carve(300, 0.1, 5).validation_mask(0, 300)
    missing = frame["label"].isna().to_numpy()
    expected = {"train": int((missing & ~validation).sum()), "validation": int((missing & validation).sum()),
                "eval": 5}
    training = contract.read_card(tmp_path / "model")["training"]
    assert training["dropped_rows_missing_label"] == expected
    assert (training["train_rows"], training["validation_rows"], training["eval_rows"]) == (270, 30, 80)
    assert result.metrics["train"]["rows"] == 270 - expected["train"]
    assert result.metrics["validation"]["rows"] == 30 - expected["validation"]
    assert pd.notna(result.metrics["validation"]["accuracy"])
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    assert f"{expected['train']} of the 270 rows of the train part" in warned
    assert "5 of the 80 rows" in warned and "'label'" in warned


def test_predictor_class_names_follow_the_model_even_when_the_card_disagrees(penguins_model, penguins_dataset):
    import pyarrow.parquet as pq

    root, _ = penguins_model
    predictor = contract.load_predictor(root / "model")
    table = pq.read_table(penguins_dataset / "Split-eval" / "data.parquet").to_pandas()
    columns = {c: table[c] for c in table.columns}
    outputs = predictor.predict(columns)
    raw = predictor._signature(**{k: predictor._tf.constant(v) for k, v in
                                  signature.to_model_inputs(columns, predictor.card).items()})["classes"].numpy()
    assert outputs["classes"].tolist() == [c.decode() for c in raw]  # the names the model itself returns
    assert len({id(c) for c in outputs["classes"]}) <= 3  # one shared string per class, not one per row
    predictor._class_array = np.array(["Gentoo", "Adelie", "Chinstrap"], dtype=object)  # a card out of order
    assert predictor.predict(columns)["classes"].tolist() == [c.decode() for c in raw]
