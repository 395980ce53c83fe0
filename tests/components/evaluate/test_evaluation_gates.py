"""The default gates judge skill: real SavedModels (oracles whose predictions are known columns) on an
imbalanced binary label, a balanced one, multi-class and regression, at 200 and 5,000 eval rows.

A model that predicts the class prior (constant or near-constant) or the label mean never passes; a model
that learned nothing (shuffled labels) fails against a skilled baseline; a good model passes, and so does
a candidate of the same quality as the baseline. Every test goes through ``core.pipeline_config`` with the
component's default parameters, so what is tested is what a pipeline run decides.
"""

import json

import numpy as np
import oracle_models
import pandas as pd
import pytest
from sklearn import metrics as skm

from kfpc.components import artifacts
from kfpc.components.evaluate import bootstrap, core
from kfpc.components.evaluate import metrics as metric_lib
from kfpc.components.evaluate import thresholds as threshold_lib

PREVALENCE = 0.15


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("gate_oracles")
    return {
        "binary": oracle_models.build(root / "binary", "binary", ["no", "yes"]),
        "binary_old": oracle_models.build(root / "binary_old", "binary", ["no", "yes"], suffix="_old"),
        "multiclass": oracle_models.build(root / "multiclass", "multiclass", ["a", "b", "c"]),
        "regression": oracle_models.build(root / "regression", "regression", label="target"),
        "regression_old": oracle_models.build(root / "regression_old", "regression", label="target", suffix="_old"),
    }


def _logistic(x):
    return 1 / (1 + np.exp(-x))


def _binary(seed: int, n: int, prevalence: float = PREVALENCE) -> tuple[pd.DataFrame, np.ndarray]:
    """Labels with the given share of ``yes``; score columns are filled in by each test."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < prevalence
    frame = pd.DataFrame({"group": rng.choice(["a", "b"], n), "label": np.where(labels, "yes", "no")})
    return frame, labels


def _skilled(rng, labels, skill=2.5, prevalence=PREVALENCE):
    """Scores of a useful model: the label shifts the logit by ``skill`` around the prior's logit."""
    prior = np.log(prevalence / (1 - prevalence))
    return _logistic(prior + skill * (labels - 0.5) + rng.normal(size=len(labels)))


def _gate(models, tmp_path, frame, candidate="binary", baseline=None, **parameters):
    dataset = oracle_models.write_dataset(tmp_path / "data", frame)
    config = core.pipeline_config(models[candidate], "", **parameters)
    return core.evaluate(dataset, models[candidate], tmp_path / "out",
                         baseline_model_dir=models[baseline] if baseline else None, config=config)


def _only(result, kind):
    (verdict,) = [v for v in result.verdicts if v["kind"] == kind]
    return verdict


@pytest.mark.parametrize("rows", [200, 5000])
def test_imbalanced_binary_good_model_passes_skill_on_roc_auc_and_is_compared_on_minority_pr_auc(models, tmp_path,
                                                                                                rows):
    frame, labels = _binary(1, rows)
    frame["score"] = _skilled(np.random.default_rng(2), labels)
    result = _gate(models, tmp_path, frame)
    # `auto` (the change vs a baseline, the headline) is the minority class's PR AUC
    assert result.skill_metric == "pr_auc/yes" and "imbalanced binary" in result.skill_metric_reason
    # skill is ROC AUC > 0.5: the constant prior and a random ranking both score 0.5 at any prevalence
    skill = _only(result, "skill")
    assert skill["metric"] == "roc_auc" and "configured_metric" not in skill  # named, not `auto`
    assert skill["trivial"] == 0.5
    assert skill["value"] == pytest.approx(skm.roc_auc_score(labels, frame["score"].astype(np.float32)), abs=1e-6)
    assert skill["passed"] is True and skill["skill_interval"][0] > 0
    assert skill["compared_skill"] == skill["skill_interval"][0]
    assert skill["compared"] == pytest.approx(skill["trivial"] + skill["skill_interval"][0])
    assert skill["compared"] > skill["bound"]
    assert result.blessed
    # First run: the change part is skipped, not failed.
    assert _only(result, "change")["passed"] is None


@pytest.mark.parametrize("rows", [200, 5000])
@pytest.mark.parametrize("noise", [0.0, 1e-4], ids=["constant prior", "near-constant prior"])
def test_a_model_predicting_the_prior_is_not_blessed(models, tmp_path, rows, noise):
    """The majority class at every row: accuracy = 1 - prevalence (0.85, what the old default gate
    measured), but no skill. Constant or near-constant probabilities, the PR AUC does not beat the prior."""
    frame, labels = _binary(3, rows)
    frame["score"] = labels.mean() + noise * np.random.default_rng(4).normal(size=rows)
    result = _gate(models, tmp_path, frame)
    assert result.metrics["accuracy"] == pytest.approx(1 - labels.mean())
    skill = _only(result, "skill")
    assert skill["passed"] is False and "does not beat the class prior" in skill["reason"]
    assert not result.blessed
    if noise == 0:  # every score tied: PR AUC is exactly the prevalence, the paired skill interval is [0, 0]
        assert skill["skill"] == 0.0 and skill["skill_interval"] == pytest.approx([0.0, 0.0], abs=1e-9)
    # The same model with the old gate (accuracy >= 0.8) would have been blessed on accuracy alone.
    assert _only(_gate(models, tmp_path / "acc", frame, min_accuracy=0.8), "value")["passed"] is True


@pytest.mark.parametrize("rows", [200, 5000])
def test_shuffled_label_candidate_fails_against_a_skilled_baseline(models, tmp_path, rows):
    """Trained on shuffled labels, a model's scores vary with its features but not with the label."""
    frame, labels = _binary(5, rows)
    rng = np.random.default_rng(6)
    frame["score"] = _logistic(np.log(PREVALENCE / (1 - PREVALENCE)) + 0.5 * rng.normal(size=rows))
    frame["score_old"] = _skilled(rng, labels)
    result = _gate(models, tmp_path, frame, baseline="binary_old")
    assert not result.blessed
    change = _only(result, "change")
    assert change["passed"] is False and change["interval_end"] == "optimistic"
    # Even the optimistic end of the paired difference is below -max_regression.
    assert change["compared_change"] == change["interval"][1] < -0.01
    assert change["compared"] == pytest.approx(change["baseline"] + change["interval"][1])
    assert change["compared"] < change["bound"]
    assert "shown worse than allowed" in change["reason"]
    assert _only(result, "skill")["passed"] is False
    metadata = result.metadata()
    assert metadata["headline_metric"] == "pr_auc/yes"
    assert metadata["baseline_headline_value"] > metadata["headline_value"] + 0.2
    assert any(text.startswith("change threshold on pr_auc/yes (overall): ") for text in metadata["failed_thresholds"])
    kinds = {d["kind"]: d for d in metadata["failed_threshold_details"]}
    assert kinds["skill"]["metric"] == "roc_auc" and kinds["skill"]["trivial"] == kinds["skill"]["bound"] == 0.5
    assert kinds["change"]["baseline"] == pytest.approx(result.baseline_metrics["pr_auc/yes"])
    assert kinds["change"]["interval"] == change["interval"]


@pytest.mark.parametrize("rows", [200, 5000])
def test_equal_quality_candidate_passes_against_its_baseline(models, tmp_path, rows):
    """Same skill, independent noise (a retrain with another seed): no false stop."""
    frame, labels = _binary(7, rows)
    rng = np.random.default_rng(8)
    frame["score"] = _skilled(rng, labels)
    frame["score_old"] = _skilled(rng, labels)
    result = _gate(models, tmp_path, frame, baseline="binary_old")
    change = _only(result, "change")
    assert change["passed"] is True
    assert change["interval"][0] < 0 < change["interval"][1] or abs(change["difference"]) < 0.05
    assert result.blessed


def test_balanced_binary_and_multiclass_are_judged_on_roc_auc(models, tmp_path):
    frame, labels = _binary(9, 2000, prevalence=0.4)
    frame["score"] = _skilled(np.random.default_rng(10), labels, skill=1.5, prevalence=0.4)
    result = _gate(models, tmp_path / "binary", frame)
    skill = _only(result, "skill")
    assert result.skill_metric == "roc_auc" and "balanced binary" in result.skill_metric_reason
    assert skill["trivial"] == 0.5 and skill["passed"] is True
    assert skill["skill_interval"] == pytest.approx([v - 0.5 for v in skill["interval"]])

    rng = np.random.default_rng(11)
    labels = rng.integers(0, 3, 1000)
    multi = pd.DataFrame({f"logit_{i}": rng.normal(size=1000) for i in range(3)})  # no skill at all
    multi["group"], multi["label"] = "g", np.array(["a", "b", "c"])[labels]
    result = _gate(models, tmp_path / "multi", multi, candidate="multiclass")
    skill = _only(result, "skill")
    assert result.skill_metric == "roc_auc" and skill["trivial"] == 0.5
    assert skill["passed"] is False and not result.blessed
    multi["logit_0"] += 2.0 * (labels == 0)
    multi["logit_1"] += 2.0 * (labels == 1)
    multi["logit_2"] += 2.0 * (labels == 2)
    assert _gate(models, tmp_path / "multi_good", multi, candidate="multiclass").blessed


@pytest.mark.parametrize("rows", [200, 5000])
def test_regression_gates_beat_the_mean_predictor_and_the_baseline_on_rmse(models, tmp_path, rows):
    rng = np.random.default_rng(12)
    target = rng.lognormal(3, 0.6, rows)  # skewed
    frame = pd.DataFrame({"group": "g", "target": target,
                          "guess": np.full(rows, target.mean()),  # the mean predictor itself
                          "guess_old": target + rng.normal(0, 0.5 * target.std(), rows)})
    mean_model = _gate(models, tmp_path / "mean", frame, candidate="regression", baseline="regression_old")
    skill = _only(mean_model, "skill")
    assert skill["metric"] == "r2" and skill["trivial"] == 0.0 and skill["trivial_predictor"] == "mean predictor"
    assert abs(skill["value"]) < 1e-6 and skill["passed"] is False
    assert _only(mean_model, "change")["passed"] is False  # RMSE ~2x the baseline's
    assert not mean_model.blessed
    # Same quality as the baseline, other noise: blessed (no false stop on RMSE).
    frame["guess"] = target + rng.normal(0, 0.5 * target.std(), rows)
    same = _gate(models, tmp_path / "same", frame, candidate="regression", baseline="regression_old")
    assert _only(same, "skill")["passed"] is True and _only(same, "change")["passed"] is True
    assert same.blessed


def test_report_and_blessing_show_the_trivial_value_interval_and_verdict(models, tmp_path):
    frame, labels = _binary(13, 1000)
    frame["score"] = labels.mean()
    result = _gate(models, tmp_path, frame)
    html = (tmp_path / "out" / core.REPORT_FILE).read_text()
    assert "NOT BLESSED" in html and "pr_auc/yes" in html and "class prior" in html
    assert "does not beat the class prior" in html and f"{labels.mean():.4g}" in html
    blessing = json.loads((tmp_path / "out" / artifacts.BLESSING_FILE).read_text())
    assert blessing["skill_metric"] == "pr_auc/yes"
    assert blessing["failed_thresholds"] == result.metadata()["failed_thresholds"]
    evaluation = json.loads((tmp_path / "out" / artifacts.EVALUATION_FILE).read_text())
    assert evaluation["metrics"]["trivial"]["pr_auc/yes"] == pytest.approx(labels.mean())
    assert evaluation["skill_metric"]["metric"] == "pr_auc/yes"
    assert evaluation["intervals"]["pr_auc/yes"]["skill"] == pytest.approx([0.0, 0.0], abs=1e-9)


def _paired_verdict(labels, candidate, baseline, interval_end, seed):
    """The default change threshold on PR AUC, judged straight from the bootstrap (no model files)."""
    classes = ["no", "yes"]
    sample, point = {"label": labels}, {}
    for role, scores in (("candidate", candidate), ("baseline", baseline)):
        probabilities = np.stack([1 - scores, scores], axis=1).astype(np.float32)
        sample[f"{role}_probabilities"] = probabilities
        sample[f"{role}_class_ids"] = probabilities.argmax(axis=1)
        accumulator = metric_lib.ClassificationAccumulator(classes)
        accumulator.add(labels, probabilities)
        point[role] = accumulator.result()
    weights = bootstrap.poisson_weights(len(labels), 200, seed)
    interval = bootstrap.intervals("binary", sample, ["pr_auc/yes"], len(labels), point, weights,
                                   classes=classes)["pr_auc/yes"]["difference"]
    threshold = threshold_lib.Threshold("pr_auc/yes", use_confidence_interval=True, change_threshold=(
        threshold_lib.ChangeThreshold(absolute=-0.01, interval_end=interval_end)))
    return threshold_lib.change_verdict(threshold, point["candidate"]["pr_auc/yes"],
                                        point["baseline"]["pr_auc/yes"], interval)["passed"]


def test_equal_quality_false_stop_rate_is_low_and_the_conservative_end_would_stop_often():
    """40 retrains of the same quality (500 rows, 15% positives): the default (optimistic end) stops at most
    two; requiring the conservative end to clear -0.01 would stop most of them."""
    stops = {"optimistic": 0, "conservative": 0}
    for seed in range(40):
        rng = np.random.default_rng(100 + seed)
        labels = (rng.random(500) < PREVALENCE).astype(np.int64)
        candidate, baseline = _skilled(rng, labels), _skilled(rng, labels)
        for end in stops:
            stops[end] += not _paired_verdict(labels, candidate, baseline, end, seed)
    assert stops["optimistic"] <= 2
    assert stops["conservative"] >= 20


def test_the_overall_slice_is_judged_however_few_the_eval_rows(models, tmp_path):
    """29 eval rows (< min_slice_size 30) once skipped the overall slice, so every threshold was 'not judged'
    and a model was blessed unjudged; a model predicting the prior must fail there too."""
    frame, labels = _binary(13, 29)
    frame["score"] = labels.mean()
    result = _gate(models, tmp_path, frame)
    skill = _only(result, "skill")
    assert skill["slice"] == "overall" and skill["count"] == 29 and skill["passed"] is False
    assert not result.blessed
