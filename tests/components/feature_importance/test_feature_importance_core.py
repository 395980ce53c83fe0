"""feature_importance core on real small trained models: noise ranks below signal, outputs, bad input."""

from __future__ import annotations

import html
import inspect
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kfpc.components.feature_importance import core

NOISE = "noise <b>&"  # a name that must come out escaped in the report


def _write(root, frame: pd.DataFrame):
    for split, part in (("train", frame.iloc[: len(frame) * 3 // 4]), ("eval", frame.iloc[len(frame) * 3 // 4:])):
        folder = root / f"Split-{split}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), folder / "data.parquet")
    return root


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    from kfpc.components.train import core as train

    rng = np.random.default_rng(3)
    rows = 800
    signal = rng.normal(size=rows)
    frame = pd.DataFrame({
        "signal": signal,
        NOISE: rng.normal(size=rows),
        "colour": rng.choice(["red", "green", "blue"], rows),  # text feature, unrelated to the label
        "label": np.where(rng.random(rows) < 1 / (1 + np.exp(-3 * signal)), "yes", "no"),
    })
    root = tmp_path_factory.mktemp("fi-binary")
    data = _write(root / "data", frame)
    train.train(data, root / "model", label="label", epochs=12, patience=0, hidden_units=[8], batch_size=64,
                learning_rate=0.02, verbose=0)
    return data, root / "model"


def test_an_informative_feature_ranks_above_pure_noise(binary, tmp_path):
    data, model = binary
    result = core.permutation_importance(data, model, repeats=3)
    assert result.metric == "roc_auc" and result.higher_is_better and result.baseline > 0.8, result
    by_name = {s.feature: s for s in result.features}
    assert result.features[0].feature == "signal"
    assert by_name["signal"].importance > 0.1
    assert by_name["signal"].importance > by_name[NOISE].importance + 3 * max(by_name[NOISE].spread, 0.01)
    assert abs(by_name[NOISE].importance) < 0.05 and len(by_name[NOISE].repeats) == 3
    assert result.rows == 200 and result.split_rows == 200

    out = core.write_outputs(result, tmp_path / "out")
    table = json.loads((out / core.IMPORTANCE_FILE).read_text())
    assert [f["feature"] for f in table["features"]] == [s.feature for s in result.features]
    page = (out / core.REPORT_FILE).read_text()
    assert html.escape(NOISE) in page and NOISE not in page and "<svg" in page
    metrics = result.top_metrics()
    assert metrics["importance_signal"] == by_name["signal"].importance and "baseline_roc_auc" in metrics


def test_a_bounded_sample_and_the_same_seed_give_the_same_answer(binary):
    data, model = binary
    first = core.permutation_importance(data, model, sample_rows=50, repeats=2, seed=5)
    again = core.permutation_importance(data, model, sample_rows=50, repeats=2, seed=5)
    assert first.rows == 50 and first.split_rows == 200
    assert first.to_json() == again.to_json()


def test_regression_scores_rmse_increase(tmp_path):
    from kfpc.components.train import core as train

    rng = np.random.default_rng(8)
    rows = 600
    x = rng.normal(size=rows)
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=rows), "y": 5 * x + rng.normal(scale=0.3, size=rows)})
    data = _write(tmp_path / "data", frame)
    train.train(data, tmp_path / "model", label="y", epochs=15, patience=0, hidden_units=[8], batch_size=32,
                learning_rate=0.02, verbose=0)
    result = core.permutation_importance(data, tmp_path / "model", repeats=2)
    assert result.metric == "rmse" and not result.higher_is_better
    scores = {s.feature: s.importance for s in result.features}
    assert scores["x"] > 1.0 and scores["x"] > 10 * abs(scores["noise"]), scores


def test_multiclass_uses_log_loss(tmp_path):
    from kfpc.components.train import core as train

    rng = np.random.default_rng(4)
    rows = 600
    x = rng.normal(size=rows)
    frame = pd.DataFrame({"x": x, "noise": rng.normal(size=rows),
                          "kind": np.select([x < -0.5, x > 0.5], ["low", "high"], "mid")})
    data = _write(tmp_path / "data", frame)
    train.train(data, tmp_path / "model", label="kind", epochs=15, patience=0, hidden_units=[8], batch_size=32,
                learning_rate=0.03, verbose=0)
    result = core.permutation_importance(data, tmp_path / "model", repeats=2)
    assert result.metric == "log_loss" and result.features[0].feature == "x", result.features


def test_bad_input_names_the_problem(binary, tmp_path):
    data, model = binary
    with pytest.raises(core.FeatureImportanceError, match="repeats must be an integer >= 1, got 0"):
        core.permutation_importance(data, model, repeats=0)
    with pytest.raises(core.FeatureImportanceError, match="no split 'test'"):
        core.permutation_importance(data, model, split="test")
    frame = pq.read_table(data / "Split-eval" / "data.parquet").to_pandas().drop(columns=["signal"])
    bad = _write(tmp_path / "bad", pd.concat([frame, frame]))
    with pytest.raises(core.FeatureImportanceError, match=r"Split-eval: no column 'signal' \(the model's feature\)"):
        core.permutation_importance(bad, model)
    with pytest.raises(FileExistsError):  # outputs go to a new folder only
        (tmp_path / "full").mkdir()
        (tmp_path / "full" / "x").write_text("x")
        core.write_outputs(core.permutation_importance(data, model, sample_rows=20, repeats=1), tmp_path / "full")


def test_the_component_defaults_are_the_cores():
    from kfpc.components.feature_importance.component import feature_importance

    given = inspect.signature(feature_importance.python_func).parameters
    wanted = inspect.signature(core.permutation_importance).parameters
    for name in ("split", "sample_rows", "repeats", "seed"):
        assert given[name].default == wanted[name].default, name
