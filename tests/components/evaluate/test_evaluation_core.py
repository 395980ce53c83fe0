"""evaluate(): metrics through the serving signature equal scikit-learn's; slices, thresholds, blessing, errors."""

import json
from pathlib import Path

import numpy as np
import oracle_models
import pandas as pd
import pytest
from sklearn import metrics as skm

from kfpc.components import artifacts, contract
from kfpc.components.evaluate import core
from kfpc.components.evaluate.thresholds import EvalConfigError

TOL = 1e-6
CLASSES3 = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("oracles")
    return {
        "binary": oracle_models.build(root / "binary", "binary", ["no", "yes"]),
        "binary_old": oracle_models.build(root / "binary_old", "binary", ["no", "yes"], suffix="_old"),
        "multiclass": oracle_models.build(root / "multiclass", "multiclass", CLASSES3),
        "multiclass_old": oracle_models.build(root / "multiclass_old", "multiclass", CLASSES3, suffix="_old"),
        "regression": oracle_models.build(root / "regression", "regression", label="target"),
    }


def _served(model_dir, frame):
    """The model's outputs on the whole frame, through the same loader evaluation uses."""
    predictor = contract.load_predictor(str(model_dir))
    columns = {}
    for feature in predictor.card["features"]:
        values = frame[feature["name"]]
        columns[feature["name"]] = (values.fillna("").astype(object).to_numpy() if feature["dtype"] == "string"
                                    else values.astype(np.float64).to_numpy())
    return predictor.predict(columns)


@pytest.fixture(scope="module")
def binary_data(tmp_path_factory):
    rng = np.random.default_rng(0)
    frame = oracle_models.binary_frame(rng, 3000)
    frame["score_old"] = 1 / (1 + np.exp(-(0.5 * ((frame["label"] == "yes") - 0.5) + rng.normal(size=3000))))
    return frame, oracle_models.write_dataset(tmp_path_factory.mktemp("binary_data"), frame)


def test_binary_metrics_through_the_signature_equal_sklearn(models, binary_data, tmp_path):
    frame, dataset = binary_data
    result = core.evaluate(dataset, models["binary"], tmp_path / "out",
                           config={"slicing_specs": [{"feature_keys": ["group"]}]})
    probabilities = _served(models["binary"], frame)["probabilities"]
    labels = (frame["label"] == "yes").to_numpy().astype(int)
    predicted = probabilities.argmax(axis=1)
    got = result.metrics
    assert got["example_count"] == 3000
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=TOL)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probabilities[:, 1]), abs=TOL)
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(labels, probabilities[:, 1]), abs=TOL)
    assert got["log_loss"] == pytest.approx(skm.log_loss(labels, probabilities), abs=TOL)
    assert got["f1/yes"] == pytest.approx(skm.f1_score(labels, predicted), abs=TOL)
    assert result.confusion_matrix == skm.confusion_matrix(labels, predicted).tolist()
    # Slices by value, with missing values as their own slice; each slice's metrics are its rows' metrics.
    by_name = {s["slice"]: s for s in result.slices}
    assert set(by_name) == {"overall", "group=a", "group=b", "group=c", "group=(missing)"}
    rows = (frame["group"] == "b").to_numpy()
    assert by_name["group=b"]["count"] == rows.sum()
    assert by_name["group=b"]["candidate"]["roc_auc"] == pytest.approx(
        skm.roc_auc_score(labels[rows], probabilities[rows, 1]), abs=TOL)
    # No thresholds: blessed, and the files are there.
    assert result.blessed
    assert (tmp_path / "out" / artifacts.BLESSED_MARKER).exists()
    evaluation = json.loads((tmp_path / "out" / artifacts.EVALUATION_FILE).read_text())
    assert evaluation["metrics"]["candidate"]["accuracy"] == pytest.approx(got["accuracy"])
    assert "<img src=\"data:image/png;base64," in (tmp_path / "out" / core.REPORT_FILE).read_text()


def test_multiclass_with_baseline_side_by_side_and_paired_intervals(models, tmp_path):
    rng = np.random.default_rng(1)
    n = 2400
    labels = rng.integers(0, 3, n)
    frame = pd.DataFrame({f"logit_{i}": rng.normal(size=n) + 2.0 * (labels == i) for i in range(3)})
    for i in range(3):
        frame[f"logit_{i}_old"] = rng.normal(size=n) + 0.7 * (labels == i)
    frame["group"] = rng.choice(["x", "y"], n)
    frame["label"] = np.array(CLASSES3)[labels]
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    config = {"thresholds": [{"metric": "accuracy", "change_threshold": {"absolute": -0.01}}],
              "slicing_specs": [{"feature_keys": ["group"]}], "bootstrap": {"replicates": 200}}
    result = core.evaluate(dataset, models["multiclass"], tmp_path / "out",
                           baseline_model_dir=models["multiclass_old"], config=config)
    for key, got in (("multiclass", result.metrics), ("multiclass_old", result.baseline_metrics)):
        probabilities = _served(models[key], frame)["probabilities"]
        predicted = probabilities.argmax(axis=1)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=TOL)
        ovr = np.mean([skm.roc_auc_score(labels == c, probabilities[:, c]) for c in range(3)])
        assert got["roc_auc"] == pytest.approx(ovr, abs=TOL)
        assert got["log_loss"] == pytest.approx(skm.log_loss(labels, probabilities, labels=[0, 1, 2]), abs=TOL)
        assert got["recall_macro"] == pytest.approx(skm.recall_score(labels, predicted, average="macro"), abs=TOL)
    assert result.metrics["accuracy"] > result.baseline_metrics["accuracy"] + 0.1
    assert result.blessed
    interval = result.intervals["accuracy"]
    for role, metrics in (("candidate", result.metrics), ("baseline", result.baseline_metrics)):
        low, high = interval[role]
        assert low < metrics["accuracy"] < high and high - low < 0.1
    low, high = interval["difference"]
    assert 0 < low < result.metrics["accuracy"] - result.baseline_metrics["accuracy"] < high
    verdict = result.verdicts[0]
    assert verdict["kind"] == "change" and verdict["passed"] is True
    assert verdict["difference"] == pytest.approx(result.metrics["accuracy"] - result.baseline_metrics["accuracy"])


def test_worse_candidate_is_not_blessed_and_blessing_says_why(models, binary_data, tmp_path):
    _, dataset = binary_data
    config = {"thresholds": [{"metric": "accuracy", "value_threshold": {"lower_bound": 0.5},
                              "change_threshold": {"absolute": -0.01}}]}
    result = core.evaluate(dataset, models["binary_old"], tmp_path / "out", baseline_model_dir=models["binary"],
                           config=config)
    assert not result.blessed
    assert (tmp_path / "out" / artifacts.NOT_BLESSED_MARKER).exists()
    assert not (tmp_path / "out" / artifacts.BLESSED_MARKER).exists()
    failed = [v for v in result.verdicts if v["passed"] is False]
    assert len(failed) == 1 and failed[0]["kind"] == "change"
    assert "vs baseline" in failed[0]["reason"] and "not >=" in failed[0]["reason"]
    blessing = json.loads((tmp_path / "out" / artifacts.BLESSING_FILE).read_text())
    assert blessing["blessed"] is False and blessing["verdicts"][1]["passed"] is False
    metadata = result.metadata()
    assert metadata["failed_thresholds"] == [f"change threshold on accuracy (overall): {failed[0]['reason']}"]
    (detail,) = metadata["failed_threshold_details"]
    assert set(detail) == set(core.FAILED_DETAIL_KEYS) and blessing["failed_threshold_details"] == [detail]
    assert detail["kind"] == "change" and detail["slice"] == "overall" and detail["trivial"] is None
    assert detail["baseline"] == pytest.approx(result.baseline_metrics["accuracy"])
    assert detail["bound"] == pytest.approx(result.baseline_metrics["accuracy"] - 0.01)


def test_first_run_uses_value_thresholds_only(models, binary_data, tmp_path):
    _, dataset = binary_data
    config = {"thresholds": [{"metric": "accuracy", "value_threshold": {"lower_bound": 0.6},
                              "change_threshold": {"absolute": 0.0}}]}
    result = core.evaluate(dataset, models["binary"], tmp_path / "out", config=config)
    assert result.blessed
    kinds = {v["kind"]: v for v in result.verdicts}
    assert kinds["value"]["passed"] is True and kinds["change"]["passed"] is None
    assert "no baseline" in kinds["change"]["reason"]
    failing = core.evaluate(dataset, models["binary"], tmp_path / "out2",
                            config={"thresholds": [{"metric": "roc_auc", "value_threshold": {"lower_bound": 0.99}}]})
    assert not failing.blessed and "< lower bound 0.99" in failing.verdicts[0]["reason"]


def test_confidence_interval_makes_a_noisy_gain_insufficient(models, binary_data, tmp_path):
    _, dataset = binary_data
    # Candidate vs itself: the point change is exactly 0, the paired interval is [0, 0] as well.
    same = core.evaluate(dataset, models["binary"], tmp_path / "same", baseline_model_dir=models["binary"],
                         config={"thresholds": [{"metric": "accuracy", "use_confidence_interval": True,
                                                 "change_threshold": {"absolute": 0.0}}]})
    assert same.blessed and same.intervals["accuracy"]["difference"] == [0.0, 0.0]
    # A value bound just under the point estimate passes on the point but fails on the interval's low end.
    accuracy = same.metrics["accuracy"]
    config = {"thresholds": [{"metric": "accuracy", "value_threshold": {"lower_bound": accuracy - 0.001}},
                             {"metric": "accuracy", "value_threshold": {"lower_bound": accuracy - 0.001},
                              "use_confidence_interval": True}]}
    result = core.evaluate(dataset, models["binary"], tmp_path / "ci", config=config)
    assert [v["passed"] for v in result.verdicts] == [True, False]


def test_numeric_buckets_crosses_and_per_slice_thresholds(models, binary_data, tmp_path):
    frame, dataset = binary_data
    config = {"slicing_specs": [{"feature_keys": ["size"], "num_buckets": 4},
                                {"feature_keys": ["group", "size"], "num_buckets": 2}],
              "min_slice_size": 200,
              "thresholds": [{"metric": "accuracy", "slicing_spec": {"feature_keys": ["size"], "num_buckets": 4},
                              "value_threshold": {"lower_bound": 0.5}},
                             {"metric": "accuracy", "slice": {"group": "a"}, "value_threshold": {"lower_bound": 0.5}}]}
    result = core.evaluate(dataset, models["binary"], tmp_path / "out", config=config)
    size_slices = [s for s in result.slices if s["spec"] == "size"]
    assert len(size_slices) == 4 and sum(s["count"] for s in size_slices) == 3000
    # Equal-mass buckets from the data (no statistics given): about 750 rows each.
    assert all(600 < s["count"] < 900 for s in size_slices)
    crosses = [s for s in result.slices if s["spec"] == "group x size"]
    assert len(crosses) == 8 and sum(s["count"] for s in crosses) == 3000
    small = [s for s in crosses if s["count"] < 200]
    assert small and all(s["too_small"] for s in small)
    judged = [v for v in result.verdicts if v["slice"].startswith("size=")]
    assert len(judged) == 4 and all(v["passed"] for v in judged)
    assert any(v["slice"] == "group=a" for v in result.verdicts)
    assert all("intervals" in s and "accuracy" in s["intervals"] for s in size_slices)


def test_bucket_edges_come_from_training_statistics(models, binary_data, tmp_path):
    from tensorflow_metadata.proto.v0 import statistics_pb2

    _, dataset = binary_data
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    feature = stats.datasets.add().features.add()
    feature.path.step.append("size")
    histogram = feature.num_stats.histograms.add(type=statistics_pb2.Histogram.QUANTILES)
    for low, high in ((0, 5), (5, 10), (10, 15), (15, 20)):
        histogram.buckets.add(low_value=low, high_value=high, sample_count=100)
    folder = tmp_path / "stats" / "Split-train"
    folder.mkdir(parents=True)
    (folder / "FeatureStats.pb").write_bytes(stats.SerializeToString())
    result = core.evaluate(dataset, models["binary"], tmp_path / "out", statistics_dir=tmp_path / "stats",
                           config={"slicing_specs": [{"feature_keys": ["size"], "num_buckets": 2}]})
    assert {s["slice"] for s in result.slices if s["spec"] == "size"} == {"size=(-inf, 10)", "size=[10, inf)"}


def test_regression_metrics_equal_sklearn(models, tmp_path):
    rng = np.random.default_rng(3)
    target = rng.normal(50, 10, 2000)
    frame = pd.DataFrame({"guess": target + rng.normal(0, 3, 2000), "group": rng.choice(["u", "v"], 2000),
                          "target": target})
    frame.loc[:9, "target"] = np.nan  # rows without a label are skipped and counted
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    config = {"thresholds": [{"metric": "rmse", "value_threshold": {"upper_bound": 3.5}}]}
    result = core.evaluate(dataset, models["regression"], tmp_path / "out", config=config)
    kept = frame.iloc[10:]
    predictions = _served(models["regression"], kept)["predictions"]
    assert result.metrics["example_count"] == 1990
    assert result.metrics["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(kept["target"], predictions)), abs=TOL)
    assert result.metrics["mae"] == pytest.approx(skm.mean_absolute_error(kept["target"], predictions), abs=TOL)
    assert result.metrics["r2"] == pytest.approx(skm.r2_score(kept["target"], predictions), abs=TOL)
    assert result.metrics["mape"] == pytest.approx(skm.mean_absolute_percentage_error(kept["target"], predictions),
                                                   abs=TOL)
    assert result.blessed
    low, high = result.intervals["rmse"]["candidate"]
    assert low < result.metrics["rmse"] < high
    assert json.loads((tmp_path / "out" / artifacts.EVALUATION_FILE).read_text())["rows_without_label"] == 10


def test_missing_model_input_column_is_a_clear_error_and_writes_nothing(models, tmp_path):
    frame = oracle_models.binary_frame(np.random.default_rng(4), 100).drop(columns=["score"])
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    with pytest.raises(core.EvaluationError, match=r"\['score'\] are inputs of the candidate model"):
        core.evaluate(dataset, models["binary"], tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_label_values_unseen_in_training_are_a_clear_error(models, tmp_path):
    frame = oracle_models.binary_frame(np.random.default_rng(5), 100)
    frame.loc[3, "label"] = "maybe"
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    with pytest.raises(core.EvaluationError, match=r"label column 'label' has value\(s\) \['maybe'\].*unseen"):
        core.evaluate(dataset, models["binary"], tmp_path / "out")


def test_threshold_on_an_empty_slice_is_a_clear_error(models, binary_data, tmp_path):
    _, dataset = binary_data
    config = {"thresholds": [{"metric": "accuracy", "slice": {"group": "zzz"}, "value_threshold": {"lower_bound": 0}}]}
    with pytest.raises(core.EvaluationError, match=r"slice group=zzz has no rows.*group=a"):
        core.evaluate(dataset, models["binary"], tmp_path / "out", config=config)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("config, message", [
    ('{"thresholds": [', "not valid JSON"),
    ({"thresholds": [{"metric": "rmse", "value_threshold": {"upper_bound": 1}}]}, "'rmse' is not computed"),
    ({"thresholds": [{"metric": "accuracy"}]}, "needs a value_threshold, a change_threshold or a skill_threshold"),
    ({"thresholds": [{"metric": "f1_macro", "skill_threshold": {}}]}, "'f1_macro' has no trivial-predictor value"),
    ({"thresholds": [{"metric": "auto", "change_threshold": {"absolute": 0, "interval_end": "middle"}}]},
     "interval_end must be conservative or optimistic"),
    ({"thresholds": [{"metric": "auto", "value_threshold": {"lower_bound": 0.7}}]}, "'auto' changes with the data"),
    ({"slicing_specs": [{"feature_keys": "group"}]}, "feature_keys must be a list"),
    ({"min_slice_size": 0}, "min_slice_size must be >= 1"),
    ({"threshold": []}, "unknown key"),
])
def test_malformed_config_is_rejected(models, binary_data, tmp_path, config, message):
    _, dataset = binary_data
    with pytest.raises(EvalConfigError, match=message):
        core.evaluate(dataset, models["binary"], tmp_path / "out", config=config)


def test_slicing_on_a_missing_column_is_a_clear_error(models, binary_data, tmp_path):
    _, dataset = binary_data
    with pytest.raises(core.EvaluationError, match="slicing feature 'country' is not a column"):
        core.evaluate(dataset, models["binary"], tmp_path / "out", config={"slicing_specs": [{"feature_keys": ["country"]}]})


def test_bucket_edges_from_the_statistics_component(models, binary_data, tmp_path):
    from kfpc.components.statistics.core import write_statistics

    frame, _ = binary_data
    dataset = oracle_models.write_dataset(tmp_path / "data", frame, split="train")
    oracle_models.write_dataset(tmp_path / "data", frame, split="eval")
    write_statistics(dataset, tmp_path / "stats")
    config = {"slicing_specs": [{"feature_keys": ["size"], "num_buckets": 4}]}
    with_stats = core.evaluate(dataset, models["binary"], tmp_path / "a", statistics_dir=tmp_path / "stats",
                               config=config)
    evaluation = artifacts.read_blessing(tmp_path / "a")["evaluation"]
    assert evaluation["bucket_edge_source"] == {"size": "statistics"}
    edges = evaluation["bucket_edges"]["size (4 buckets)"]
    np.testing.assert_allclose(edges, np.quantile(frame["size"], [0.25, 0.5, 0.75]), rtol=0.05)
    counts = [s["count"] for s in with_stats.slices if s["spec"] == "size"]
    assert len(counts) == 4 and all(650 < c < 850 for c in counts)
    with pytest.raises(core.EvaluationError, match="cannot read the training statistics"):
        core.evaluate(dataset, models["binary"], tmp_path / "b", statistics_dir=tmp_path / "nowhere", config=config)


def test_high_cardinality_slices_are_capped_into_other(models, tmp_path):
    rng = np.random.default_rng(6)
    frame = oracle_models.binary_frame(rng, 2000)
    frame["user"] = [f"u{i}" for i in rng.integers(0, 500, 2000)]
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    result = core.evaluate(dataset, models["binary"], tmp_path / "out",
                           config={"slicing_specs": [{"feature_keys": ["user"]}], "max_slices_per_spec": 20})
    users = [s for s in result.slices if s["spec"] == "user"]
    assert len(users) == 21 and sum(s["count"] for s in users) == 2000
    assert any(s["slice"] == "user=(other)" for s in users)
    assert artifacts.read_blessing(tmp_path / "out")["evaluation"]["slice_truncated"]["user"] is True


def test_baseline_with_fewer_classes_is_aligned_by_name(models, tmp_path):
    rng = np.random.default_rng(7)
    n = 600
    labels = rng.integers(0, 3, n)
    frame = pd.DataFrame({f"logit_{i}": rng.normal(size=n) + 2.0 * (labels == i) for i in range(3)})
    frame["group"] = "g"
    frame["label"] = np.array(CLASSES3)[labels]
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    # The old model knew two classes, in another order; it reads logit_0 and logit_1 as Chinstrap and Adelie.
    old = oracle_models.build(tmp_path / "old", "multiclass", ["Chinstrap", "Adelie"])
    result = core.evaluate(dataset, models["multiclass"], tmp_path / "out", baseline_model_dir=old)
    served = _served(old, frame)["probabilities"]
    aligned = np.stack([served[:, 1], served[:, 0], np.zeros(n, dtype=np.float32)], axis=1)
    assert result.baseline_metrics["accuracy"] == pytest.approx(np.mean(aligned.argmax(axis=1) == labels), abs=TOL)
    assert result.baseline_metrics["recall/Gentoo"] == 0.0


def test_pipeline_config_defaults_per_task(models, tmp_path):
    classification = core.pipeline_config(models["binary"], "", max_regression=0.02)
    skill, change = classification.thresholds
    assert skill.metric == "roc_auc" and skill.skill_threshold.margin == 0.0 and skill.use_confidence_interval
    assert skill.change_threshold is None and skill.value_threshold is None  # accuracy is not a default gate
    assert change.metric == "auto" and change.skill_threshold is None and change.use_confidence_interval
    assert change.change_threshold.absolute == -0.02 and change.change_threshold.interval_end == "optimistic"
    with_accuracy = core.pipeline_config(models["binary"], "", min_accuracy=0.9)
    assert [(t.metric, t.value_threshold and t.value_threshold.lower_bound) for t in with_accuracy.thresholds] == [
        ("roc_auc", None), ("auto", None), ("accuracy", 0.9)]
    regression = core.pipeline_config(models["regression"], "", max_regression=0.05)
    r2, rmse = regression.thresholds
    assert r2.metric == "r2" and r2.skill_threshold is not None and r2.use_confidence_interval
    assert rmse.metric == "rmse" and rmse.change_threshold.direction == "lower_is_better"
    assert rmse.change_threshold.relative == 0.05 and rmse.value_threshold is None
    assert rmse.change_threshold.interval_end == "optimistic"
    custom = core.pipeline_config(models["binary"], '{"thresholds": [{"metric": "roc_auc", '
                                                    '"value_threshold": {"lower_bound": 0.8}}]}')
    assert [t.metric for t in custom.thresholds] == ["roc_auc"]
    # The default config round-trips through its JSON form (what evaluation.json records).
    assert core.EvalConfig.parse(classification.to_dict()) == classification
    with pytest.raises(EvalConfigError, match="max_regression must be finite"):
        core.pipeline_config(models["binary"], "", max_regression=float("nan"))
    # An accuracy bound no model meets is accepted: evaluate, never push.
    (_, _, unmeetable) = core.pipeline_config(models["binary"], "", min_accuracy=1.01).thresholds
    assert unmeetable.value_threshold.lower_bound == 1.01


def test_regression_candidate_with_higher_rmse_fails_the_relative_change(models, tmp_path):
    rng = np.random.default_rng(8)
    target = rng.normal(0, 5, 1500)
    frame = pd.DataFrame({"guess": target + rng.normal(0, 2.0, 1500), "guess_old": target + rng.normal(0, 1.0, 1500),
                          "group": "g", "target": target})
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    old = oracle_models.build(tmp_path / "old", "regression", label="target", suffix="_old")
    config = core.pipeline_config(models["regression"], "", max_regression=0.05)
    result = core.evaluate(dataset, models["regression"], tmp_path / "out", baseline_model_dir=old, config=config)
    assert not result.blessed
    skill, change = result.verdicts
    # It still beats the mean predictor (R² ~0.86): skill passes, the RMSE change vs the baseline fails.
    assert skill["kind"] == "skill" and skill["passed"] is True and skill["trivial"] == 0.0
    assert skill["skill_interval"][0] > 0.8
    assert change["kind"] == "change" and change["passed"] is False
    assert change["relative_difference"] > 0.5 and "relative change" in change["reason"]
    # Judged on the optimistic (lower) end of the paired interval of the RMSE difference, and still worse.
    assert change["compared_change"] == change["interval"][0] > 0
    assert change["compared"] > change["bound"]
    assert change["bound"] == pytest.approx(result.baseline_metrics["rmse"] * 1.05)
    scalars = core.scalar_metrics(result)
    assert scalars["blessed"] == 0.0 and scalars["baseline_rmse"] == pytest.approx(result.baseline_metrics["rmse"])


def test_unusable_models_are_clear_errors(models, binary_data, tmp_path):
    _, dataset = binary_data
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    with pytest.raises(core.EvaluationError, match="candidate model .*not_a_model: cannot be loaded"):
        core.evaluate(dataset, empty, tmp_path / "out")
    with pytest.raises(core.EvaluationError, match="cannot be compared"):
        core.evaluate(dataset, models["binary"], tmp_path / "out", baseline_model_dir=models["regression"])
    assert not (tmp_path / "out").exists()


def test_slice_auc_metrics_are_exact_above_4096_rows(models, tmp_path):
    """Two slices of ~6,000 rows with continuous scores: per-slice ROC AUC and PR AUC (the metrics the gate
    reads) equal scikit-learn's on the served float32 scores (the former 4,096-bin slice cap ran low by up
    to 5e-4)."""
    rng = np.random.default_rng(20)
    frame = oracle_models.binary_frame(rng, 12_000, skill=1.0)
    frame["group"] = rng.choice(["a", "b"], 12_000)
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    result = core.evaluate(dataset, models["binary"], tmp_path / "out",
                           config={"slicing_specs": [{"feature_keys": ["group"]}], "bootstrap": {"replicates": 50}})
    probabilities = _served(models["binary"], frame)["probabilities"]
    scores = probabilities[:, 1]
    labels = (frame["label"] == "yes").to_numpy()
    for entry in result.slices:
        rows = np.ones(12_000, bool) if entry["slice"] == "overall" else (frame["group"] == entry["values"]["group"])
        rows = np.asarray(rows)
        assert entry["count"] == rows.sum() and (entry["slice"] == "overall" or entry["count"] > 4096)
        assert len(np.unique(scores[rows])) > 4096
        got = entry["candidate"]
        assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(labels[rows], scores[rows]), abs=1e-9)
        assert got["pr_auc"] == pytest.approx(skm.average_precision_score(labels[rows], scores[rows]), abs=1e-9)
        assert got["pr_auc/no"] == pytest.approx(
            skm.average_precision_score(~labels[rows], probabilities[rows, 0]), abs=1e-9)
        assert got["score_bins_dropped_bits"] == 0


def test_a_boolean_label_is_read_as_the_classes_train_gives_it():
    """train reads a boolean label as the integers 0/1 (classes "0", "1"); evaluate must name it the same,
    or every eval row is an unseen class (mroz's `lfp` in the real-dataset suite)."""
    import pyarrow as pa

    column = pa.array([True, False, None, True])
    assert core._label_text(column).to_pylist() == ["1", "0", None, "1"]
    ids, present = core._label_ids(column, ["0", "1"], Path("eval.parquet"), "lfp")
    assert ids.tolist() == [1, 0, 0, 1] and present.tolist() == [True, True, False, True]
