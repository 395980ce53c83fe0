"""Bootstrap intervals: right centre, right width, paired differences, and the sample-to-population scaling."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, r2_score, roc_auc_score

from kfpc.components.evaluate import bootstrap


def _sample(rng, n, skill=1.5):
    labels = rng.integers(0, 2, n)
    score = 1 / (1 + np.exp(-(skill * (labels - 0.5) + rng.normal(size=n))))
    probabilities = np.stack([1 - score, score], axis=1).astype(np.float32)
    return {"label": labels, "candidate_probabilities": probabilities,
            "candidate_class_ids": probabilities.argmax(axis=1)}


def test_unit_weights_reproduce_the_exact_metrics():
    rng = np.random.default_rng(0)
    sample = _sample(rng, 2000)
    replicate = bootstrap._Replicator("binary", sample, "candidate_")
    ones = np.ones((1, 2000))
    assert replicate("roc_auc", ones)[0] == pytest.approx(
        roc_auc_score(sample["label"], sample["candidate_probabilities"][:, 1]), abs=1e-9)
    assert replicate("accuracy", ones)[0] == pytest.approx(
        np.mean(sample["candidate_class_ids"] == sample["label"]), abs=1e-12)


def test_accuracy_interval_matches_the_binomial_standard_error():
    rng = np.random.default_rng(1)
    sample = _sample(rng, 4000)
    accuracy = float(np.mean(sample["candidate_class_ids"] == sample["label"]))
    weights = bootstrap.poisson_weights(4000, 400, seed=0)
    got = bootstrap.intervals("binary", sample, ["accuracy"], 4000, {"candidate": {"accuracy": accuracy}}, weights)
    low, high = got["accuracy"]["candidate"]
    expected_half_width = 1.96 * np.sqrt(accuracy * (1 - accuracy) / 4000)
    assert low < accuracy < high
    assert (high - low) / 2 == pytest.approx(expected_half_width, rel=0.2)


def test_a_sample_of_the_rows_gives_the_population_width():
    """n sampled rows of N: the interval is scaled by sqrt(n / N) to the width of the full bootstrap."""
    rng = np.random.default_rng(2)
    full = _sample(rng, 40_000)
    accuracy = float(np.mean(full["candidate_class_ids"] == full["label"]))
    point = {"candidate": {"accuracy": accuracy}}
    whole = bootstrap.intervals("binary", full, ["accuracy"], 40_000, point,
                                bootstrap.poisson_weights(40_000, 300, seed=1))["accuracy"]["candidate"]
    keep = rng.choice(40_000, 5000, replace=False)
    part = {k: v[keep] for k, v in full.items()}
    scaled = bootstrap.intervals("binary", part, ["accuracy"], 40_000, point,
                                 bootstrap.poisson_weights(5000, 300, seed=2))["accuracy"]["candidate"]
    assert scaled[1] - scaled[0] == pytest.approx(whole[1] - whole[0], rel=0.25)
    assert scaled[0] < accuracy < scaled[1]


def test_paired_difference_is_narrower_than_the_unpaired_spread():
    rng = np.random.default_rng(3)
    sample = _sample(rng, 3000)
    # The baseline agrees with the candidate on 97% of rows: a paired interval sees only the disagreements.
    flip = rng.random(3000) < 0.03
    sample["baseline_probabilities"] = np.where(flip[:, None], sample["candidate_probabilities"][:, ::-1],
                                                sample["candidate_probabilities"])
    sample["baseline_class_ids"] = sample["baseline_probabilities"].argmax(axis=1)
    point = {role: {"accuracy": float(np.mean(sample[f"{role}_class_ids"] == sample["label"]))}
             for role in ("candidate", "baseline")}
    got = bootstrap.intervals("binary", sample, ["accuracy"], 3000, point,
                              bootstrap.poisson_weights(3000, 300, seed=4))["accuracy"]
    paired = got["difference"][1] - got["difference"][0]
    single = got["candidate"][1] - got["candidate"][0]
    assert paired < single / 2
    diff = point["candidate"]["accuracy"] - point["baseline"]["accuracy"]
    assert got["difference"][0] <= diff <= got["difference"][1]


def test_unit_weights_reproduce_average_precision_and_r2():
    rng = np.random.default_rng(5)
    sample = _sample(rng, 3000)
    sample["candidate_probabilities"] = np.round(sample["candidate_probabilities"], 2)  # ties count as sklearn's
    replicate = bootstrap._Replicator("binary", sample, "candidate_", ["no", "yes"])
    ones = np.ones((1, 3000))
    for c, name in enumerate(["no", "yes"]):
        assert replicate(f"pr_auc/{name}", ones)[0] == pytest.approx(
            average_precision_score(sample["label"] == c, sample["candidate_probabilities"][:, c]), abs=1e-12)
    target = rng.normal(3, 1, 2000)
    predictions = target + rng.normal(0, 0.5, 2000)
    regression = bootstrap._Replicator("regression", {"label": target, "candidate_predictions": predictions},
                                       "candidate_")
    assert regression("r2", np.ones((1, 2000)))[0] == pytest.approx(r2_score(target, predictions), abs=1e-12)


def test_skill_interval_is_paired_with_the_trivial_predictor():
    """Constant prior scores: every replicate's PR AUC is its own weighted prevalence, so the skill
    interval is [0, 0] although the PR AUC's own interval is wide; a skilled model's skill interval is
    clear of 0."""
    rng = np.random.default_rng(6)
    labels = (rng.random(400) < 0.15).astype(np.int64)
    prior = np.full(400, labels.mean(), dtype=np.float32)
    sample = {"label": labels, "candidate_probabilities": np.stack([1 - prior, prior], axis=1),
              "candidate_class_ids": np.zeros(400, dtype=np.int64)}
    point = {"candidate": {"pr_auc/yes": float(labels.mean())}, "trivial": {"pr_auc/yes": float(labels.mean())}}
    got = bootstrap.intervals("binary", sample, ["pr_auc/yes"], 400, point, bootstrap.poisson_weights(400, 200, 0),
                              classes=["no", "yes"])["pr_auc/yes"]
    assert got["candidate"][1] - got["candidate"][0] > 0.05
    assert got["skill"] == pytest.approx([0.0, 0.0], abs=1e-12)
    good = _sample(rng, 400, skill=3.0)
    trivial = float(np.mean(good["label"] == 1))
    point = {"candidate": {"pr_auc/yes": average_precision_score(good["label"], good["candidate_probabilities"][:, 1])},
             "trivial": {"pr_auc/yes": trivial}}
    got = bootstrap.intervals("binary", good, ["pr_auc/yes"], 400, point, bootstrap.poisson_weights(400, 200, 0),
                              classes=["no", "yes"])["pr_auc/yes"]
    skill = point["candidate"]["pr_auc/yes"] - trivial
    assert 0.2 < got["skill"][0] < skill < got["skill"][1]


def _skill_shown(rng, positives, negatives, shift, weights):
    """Whether the ROC AUC skill interval of one draw lies above 0 (scores of positives shifted by ``shift``)."""
    labels = np.r_[np.ones(positives, np.int64), np.zeros(negatives, np.int64)]
    score = 1 / (1 + np.exp(-(np.r_[rng.normal(shift, 1, positives), rng.normal(0, 1, negatives)])))
    sample = {"label": labels, "candidate_probabilities": np.stack([1 - score, score], axis=1),
              "candidate_class_ids": (score > 0.5).astype(np.int64)}
    point = {"candidate": {"roc_auc": roc_auc_score(labels, score)}, "trivial": {"roc_auc": 0.5}}
    skill = bootstrap.intervals("binary", sample, ["roc_auc"], len(labels), point, weights)["roc_auc"]["skill"]
    return skill[0] > 0


@pytest.mark.parametrize("positives,negatives", [(3, 29), (5, 27)])
def test_roc_auc_skill_of_random_scores_is_rarely_shown_with_a_handful_of_positives(positives, negatives):
    """Scores with no skill, 3 or 5 positives among 32 rows: the one-sided 97.5% lower end of the skill
    interval exceeds 0 about 2.5% of the time (the percentile bootstrap alone: about 9% and 5% here)."""
    rng = np.random.default_rng(positives)
    weights = bootstrap.poisson_weights(positives + negatives, 100, 0)
    shown = [_skill_shown(rng, positives, negatives, 0.0, weights) for _ in range(500)]
    assert np.mean(shown) <= 0.035


def test_roc_auc_skill_of_a_moderately_skilled_model_is_shown_at_moderate_size():
    """ROC AUC 0.8 (binormal shift 1.19) with 50 positives and 50 negatives: skill is shown nearly always."""
    rng = np.random.default_rng(11)
    weights = bootstrap.poisson_weights(100, 100, 0)
    assert np.mean([_skill_shown(rng, 50, 50, 1.19, weights) for _ in range(100)]) >= 0.95


def test_auc_score_bounds_at_no_skill_are_the_mann_whitney_spread():
    labels = np.r_[np.ones(5, np.int64), np.zeros(27, np.int64)]
    distinct = np.stack([1 - np.linspace(0, 1, 32), np.linspace(0, 1, 32)], axis=1)
    spread = np.sqrt(33 / (12 * 5 * 27))  # the no-skill spread: the lower end clears 0.5 exactly past 1.96 of it
    assert bootstrap.auc_score_bounds(0.5 + 1.95 * spread, labels, distinct, [1], 1.96)[0] <= 0.5
    assert bootstrap.auc_score_bounds(0.5 + 1.97 * spread, labels, distinct, [1], 1.96)[0] > 0.5
    assert bootstrap.auc_score_bounds(0.5, labels, np.full((32, 2), 0.5), [1], 1.96) == (0.5, 0.5)  # all tied
    assert bootstrap.auc_score_bounds(0.9, np.zeros(32, np.int64), distinct, [1], 1.96) == (0.0, 1.0)


def test_roc_auc_skill_with_one_positive_cannot_be_shown():
    """A perfect ranking of one positive among 31 rows: the skill interval spans the whole range below."""
    labels = np.r_[np.ones(1, np.int64), np.zeros(31, np.int64)]
    score = np.r_[0.9, np.linspace(0.1, 0.4, 31)]
    sample = {"label": labels, "candidate_probabilities": np.stack([1 - score, score], axis=1),
              "candidate_class_ids": (score > 0.5).astype(np.int64)}
    point = {"candidate": {"roc_auc": 1.0}, "trivial": {"roc_auc": 0.5}}
    skill = bootstrap.intervals("binary", sample, ["roc_auc"], 32, point,
                                bootstrap.poisson_weights(32, 100, 0))["roc_auc"]["skill"]
    assert skill[0] < 0 <= skill[1] <= 0.5 + 1e-12
