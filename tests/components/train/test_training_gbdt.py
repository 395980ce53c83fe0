"""model_family gbdt / auto: YDF trees exported as a stock-op SavedModel that keeps the model contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from kfpc.components.contract import load_predictor
from kfpc.components.train import core, gbdt, tree_export
from tests.components.train.conftest import write_dataset

SMALL = {"num_trees": 25}


def _frame(rows: int, seed: int, task: str) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    x[rng.random(rows) < 0.15] = np.nan
    city = rng.choice(["paris", "rome", "oslo", "lima", "kyiv"], size=rows).astype(object)
    city[rng.random(rows) < 0.1] = None
    level = rng.integers(0, 4, size=rows).astype(float)
    day = pd.to_datetime("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, size=rows), unit="D")
    flag = rng.random(rows) < 0.5
    signal = np.nan_to_num(x) + (city == "rome") * 1.5 - level * 0.4 + flag * 0.7 + (day.month.to_numpy() > 6) * 0.8
    frame = pd.DataFrame({"x": x, "city": city, "level": level, "day": day.date, "flag": flag})
    if task == "regression":
        frame["target"] = signal * 100.0 + 1000.0 + rng.normal(scale=20.0, size=rows)
    elif task == "binary":
        frame["target"] = np.where(signal + rng.normal(scale=0.5, size=rows) > 0.5, "yes", "no")
    else:
        frame["target"] = np.digitize(signal + rng.normal(scale=0.3, size=rows), [0.0, 1.0]).astype(np.int64)
    return frame


@pytest.fixture(scope="module", params=["binary", "multiclass", "regression"])
def trained(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"gbdt-{request.param}")
    data = write_dataset(root / "data", _frame(400, 1, request.param), _frame(100, 2, request.param))
    result = core.train(data, root / "model", label="target", model_family="gbdt", categorical_features=["level"],
                        gbdt_hyperparameters=SMALL, verbose=0)
    return request.param, root, result


def test_gbdt_export_matches_ydf_on_missing_and_unseen_values(trained):
    task, root, result = trained
    card = json.loads((root / "model" / "model_card.json").read_text())
    assert card["task"] == task
    assert card["model_family"] == "gbdt"
    assert card["hyperparameters"]["num_trees"] == SMALL["num_trees"] and card["hyperparameters"]["trees"] > 0
    assert card["export"]["gate"]["max_abs_diff"] <= tree_export.TOLERANCE
    kinds = {f["name"]: f["kind"] for f in card["features"]}
    assert kinds == {"x": "numeric", "city": "categorical", "level": "categorical", "day": "datetime",
                     "flag": "numeric"}
    # Rows the trees never saw: unseen city, missing everything, a date that is not a calendar date.
    columns = {"x": [0.3, np.nan, 1e9, -2.0], "city": ["atlantis", "", "rome", "paris"],
               "level": [7.0, np.nan, 2.0, 0.0], "day": ["2021-07-04", "", "2021-02-30", "2020-12-31T10:00:00"],
               "flag": [1.0, np.nan, 0.0, 1.0]}
    predictor = load_predictor(root / "model")
    served = predictor.predict(columns)
    inputs = {f.input: (np.array(columns[f.name], dtype=object) if f.dtype == "string"
                        else np.array(columns[f.name], dtype=np.float64)) for f in result.spec.features}
    expected = gbdt.predict(result.model, inputs, result.spec)
    # More rows than one block of the walk (tree_export.BLOCK_ROWS): the blocks join in order.
    repeats = tree_export.BLOCK_ROWS // 4 + 3
    many = predictor.predict({name: list(values) * repeats for name, values in columns.items()})
    key = "predictions" if task == "regression" else "probabilities"
    np.testing.assert_array_equal(many[key], np.concatenate([served[key]] * repeats))
    if task == "regression":
        assert served["predictions"].dtype == np.float32 and served["predictions"].shape == (4,)
        np.testing.assert_allclose(served["predictions"], expected, rtol=1e-6, atol=1e-3)
    else:
        assert served["probabilities"].dtype == np.float32
        np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
        assert served["probabilities"].shape == (4, len(card["classes"]))
        assert list(served["classes"]) == [card["classes"][i] for i in served["class_ids"]]


def test_gbdt_savedmodel_has_only_stock_ops(trained):
    _, root, _ = trained
    ops = tree_export.graph_ops(root / "model" / "1")
    assert ops and ops <= tree_export.stock_ops()
    assert {"LookupTableFindV2", "GatherV2"} <= ops or "ResourceGather" in ops
    assert not any("ydf" in op.lower() or "simple_ml" in op.lower() for op in ops)


def test_the_export_gate_refuses_a_savedmodel_that_disagrees(trained, tmp_path):
    task, root, result = trained
    other = gbdt.fit(result.spec, *[gbdt.read_part(root / "data" / "Split-eval" / "data.parquet", result.spec)] * 2,
                     {**gbdt.DEFAULTS, **SMALL, "max_depth": 2}, seed=5)
    inputs, _ = gbdt.read_part(root / "data" / "Split-eval" / "data.parquet", result.spec)
    with pytest.raises(gbdt.GbdtError, match="differs from YDF's own predictions"):
        tree_export.check_export(root / "model", other, result.spec, tree_export.holdout(inputs, result.spec))


def test_auto_keeps_the_better_family_and_both_exports_share_the_signature(tmp_path):
    import tensorflow as tf

    data = write_dataset(tmp_path / "data", _frame(300, 3, "binary"), _frame(80, 4, "binary"))
    result = core.train(data, tmp_path / "auto", label="target", model_family="auto", epochs=2,
                        gbdt_hyperparameters=SMALL, verbose=0)
    selection = result.card["model_selection"]
    assert selection["metric"] == "validation_log_loss" and set(selection["scores"]) == {"dnn", "gbdt"}
    # the per-row losses both families scored are the validation rows, and average to the scores
    losses = result.validation_losses
    assert losses["dnn"].shape == losses["gbdt"].shape == (result.card["training"]["validation_rows"],)
    for family in ("dnn", "gbdt"):
        assert losses[family].mean() == pytest.approx(selection["scores"][family], rel=1e-5)
    difference = losses["dnn"] - losses["gbdt"]
    margin = core.SELECTION_MARGIN * difference.std(ddof=1) / np.sqrt(difference.size)
    assert selection["chosen"] == ("dnn" if difference.mean() < -margin else "gbdt")
    assert selection["difference_dnn_minus_gbdt"] == pytest.approx(difference.mean())
    assert result.card["model_family"] == selection["chosen"]
    # The other family on the same data: the two exports must be interchangeable behind the contract.
    other = "gbdt" if selection["chosen"] == "dnn" else "dnn"
    result_other = core.train(data, tmp_path / "other", label="target", model_family=other, epochs=1,
                              gbdt_hyperparameters=SMALL, verbose=0)
    assert result.card["signature"] == result_other.card["signature"]
    assert result.card["features"] == result_other.card["features"]
    signatures = [tf.saved_model.load(str(tmp_path / name / "1")).signatures["serving_default"]
                  for name in ("auto", "other")]
    assert signatures[0].structured_input_signature == signatures[1].structured_input_signature
    assert {k: (v.dtype, v.shape.as_list()) for k, v in signatures[0].structured_outputs.items()} == {
        k: (v.dtype, v.shape.as_list()) for k, v in signatures[1].structured_outputs.items()}

def _candidates(dnn_losses, gbdt_losses, dnn_score=None, gbdt_score=None):
    def one(losses, score):
        return {"metrics": {"validation": {"log_loss": float(np.mean(losses)) if score is None else score}},
                "validation_losses": np.asarray(losses, dtype=np.float64)}
    return {"dnn": one(dnn_losses, dnn_score), "gbdt": one(gbdt_losses, gbdt_score)}


def test_auto_keeps_the_trees_unless_the_network_wins_beyond_the_noise():
    spec = type("Spec", (), {"label": type("Label", (), {"task": "binary"})()})()
    rng = np.random.default_rng(0)
    trees = rng.exponential(0.4, 60)
    # the network's mean loss is lower, but by far less than the noise of 60 paired rows: the trees stay
    noise = rng.normal(0, 0.3, 60)
    noisy = trees + (noise - noise.mean()) - 0.02
    assert noisy.mean() < trees.mean()
    chosen, selection = core._choose(_candidates(noisy, trees), spec)
    assert chosen == "gbdt" and selection["standard_error"] > 0.02
    # a clear, consistent win of the network: it is kept
    chosen, _ = core._choose(_candidates(trees - 0.1 + rng.normal(0, 0.01, 60), trees), spec)
    assert chosen == "dnn"
    # the trees are never kept with a non-finite score over a finite one (and the other way round)
    assert core._choose(_candidates(trees, trees, gbdt_score=float("nan")), spec)[0] == "dnn"
    assert core._choose(_candidates(trees, trees, dnn_score=float("inf")), spec)[0] == "gbdt"
    with pytest.raises(core.TrainError, match="different validation rows \\(60 and 59\\)"):
        core._choose(_candidates(trees, trees[:59]), spec)
    # one validation row: no standard error, the trees stay, and the record is plain JSON
    chosen, selection = core._choose(_candidates(trees[:1] - 1.0, trees[:1]), spec)
    assert chosen == "gbdt" and selection["standard_error"] is None
    json.dumps(selection, allow_nan=False)


def test_small_tables_are_refit_on_both_parts_and_report_the_early_stopped_validation(tmp_path):
    data = write_dataset(tmp_path / "data", _frame(400, 5, "regression"), _frame(80, 6, "regression"))
    result = core.train(data, tmp_path / "model", label="target", model_family="gbdt", verbose=0)
    card = result.card
    hyper = card["hyperparameters"]
    assert hyper["refit_on_all_rows"] is True
    assert hyper["refit_rows"] == card["training"]["train_rows"] + card["training"]["validation_rows"]
    # more rows, proportionally more iterations than early stopping kept; the exported model is the refit one
    rows = card["training"]
    assert hyper["refit_iterations"] == int(np.ceil(hyper["early_stopped_trees"] * hyper["refit_rows"]
                                                    / rows["train_rows"]))
    assert hyper["trees"] == result.model.num_trees() == hyper["refit_iterations"]
    # the validation metrics are the early-stopped model's (out of sample), not the refit one's
    import pyarrow.parquet as pq

    from kfpc.components.train import input as data_input
    path = data / "Split-train" / "data.parquet"
    carve = data_input.Carve(pq.ParquetFile(path).metadata.num_rows, core.DEFAULTS["validation_fraction"],
                             core.DEFAULTS["seed"])
    parts = [gbdt.read_part(path, result.spec, carve, part) for part in (data_input.TRAIN_PART,
                                                                        data_input.VALIDATION_PART)]
    early = gbdt.fit(result.spec, *parts, {**gbdt.DEFAULTS}, core.DEFAULTS["seed"])
    assert early.num_trees() == hyper["early_stopped_trees"]
    # the card's validation loss is the early-stopped model's (the refit one has none), and the card is plain
    # JSON: KFP refuses NaN in output metadata
    assert hyper["validation_loss"] == pytest.approx(float(early.validation_loss()), rel=1e-6)
    json.dumps(card, allow_nan=False)
    expected = gbdt.metrics_of(gbdt.predict(early, parts[1][0], result.spec), parts[1][1], result.spec)
    assert card["metrics"]["validation"]["mse"] == pytest.approx(expected["mse"], rel=1e-9)
    refit_fit = gbdt.metrics_of(gbdt.predict(result.model, parts[1][0], result.spec), parts[1][1], result.spec)
    assert refit_fit["mse"] < expected["mse"]  # the refit model has seen those rows: its fit there is better


def test_bad_model_family_and_gbdt_parameters_fail_before_reading_data(tmp_path):
    with pytest.raises(core.TrainError, match="model_family must be one of dnn, gbdt, auto, got 'trees'"):
        core.train(tmp_path / "absent", tmp_path / "model", label="y", model_family="trees")
    with pytest.raises(core.TrainError, match=r"unknown key\(s\) \['depth'\]"):
        core.train(tmp_path / "absent", tmp_path / "model", label="y", model_family="gbdt",
                   gbdt_hyperparameters={"depth": 3})
    assert not (tmp_path / "model").exists()


def test_gbdt_keeps_the_most_frequent_categories_and_serves_the_rest_as_out_of_dictionary(tmp_path):
    """A categorical column with more frequent values than ``max_vocab_count``: YDF's dictionary keeps the
    most frequent ones (default 255: the training time per tree grows with the dictionary), the others share
    the out-of-dictionary item, and the SavedModel serves them exactly as YDF does."""
    def frame(code, seed):
        rng = np.random.default_rng(seed)
        code = rng.permutation(code)
        x = rng.normal(size=len(code))
        return pd.DataFrame({"plane": [f"N{c:03d}" for c in code], "x": x,
                             "target": x * 10.0 + (code % 7) * 3.0 + rng.normal(size=len(code))})

    # 300 values, all frequent enough (>= 5 rows) for YDF's dictionary: N000 in 110 rows, N001..N254 in 10,
    # N255..N299 in 5 (so the 255 most frequent are unambiguous).
    train = np.concatenate([np.repeat(np.arange(255), 10), np.repeat(np.arange(255, 300), 5), np.zeros(100, int)])
    data = write_dataset(tmp_path / "data", frame(train, 1), frame(np.arange(300), 2))
    assert gbdt.DEFAULTS["max_vocab_count"] == 255
    for cap, name in ((None, "default"), (20, "twenty")):
        result = core.train(data, tmp_path / name, label="target", model_family="gbdt", verbose=0,
                            gbdt_hyperparameters={**SMALL, **({"max_vocab_count": cap} if cap else {})})
        kept = cap or 255
        items = tree_export.dictionaries(result.model, gbdt.columns_of(result.spec))["plane"]
        assert len(items) == kept + 1  # + YDF's out-of-dictionary item 0
        assert result.card["hyperparameters"]["max_vocab_count"] == kept
        # The most frequent values are the ones kept (N000 is the most frequent, N299 among the rarest).
        assert "N000" in items and "N299" not in items
        columns = {"plane": ["N000", "N299", "N150", "", "N999"], "x": [0.5, 0.5, 0.5, np.nan, -1.0]}
        served = load_predictor(tmp_path / name).predict(columns)["predictions"]
        inputs = {"plane": np.array(columns["plane"], dtype=object), "x": np.array(columns["x"], dtype=np.float64)}
        np.testing.assert_allclose(served, gbdt.predict(result.model, inputs, result.spec), rtol=1e-6, atol=1e-3)
    with pytest.raises(core.TrainError, match="max_vocab_count must be >= 1"):
        core.train(data, tmp_path / "zero", label="target", model_family="gbdt", verbose=0,
                   gbdt_hyperparameters={"max_vocab_count": 0})
