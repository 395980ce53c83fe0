"""The numpy metrics equal scikit-learn's on the same predictions (scikit-learn is a test dependency only)."""

import numpy as np
import pytest
from sklearn import metrics as skm

from kfpc.components.evaluate import metrics

TOL = 1e-6


def _random_classifier(rng, n, k, ties=False):
    logits = rng.normal(size=(n, k)).astype(np.float32)
    labels = np.array([rng.choice(k, p=np.exp(row) / np.exp(row).sum()) for row in logits])
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    if ties:  # rounded scores make many ties, which the curves must count half, like scikit-learn
        probabilities = np.round(probabilities, 2).astype(np.float32)
    return labels, probabilities


def _feed(acc, labels, probabilities, batch=97):
    for start in range(0, len(labels), batch):
        acc.add(labels[start:start + batch], probabilities[start:start + batch])


@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_equal_sklearn(ties):
    rng = np.random.default_rng(1)
    labels, probabilities = _random_classifier(rng, 3000, 2, ties)
    acc = metrics.ClassificationAccumulator(["no", "yes"])
    _feed(acc, labels, probabilities)
    got = acc.result()
    predicted = probabilities.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=TOL)
    assert got["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probabilities[:, 1]), abs=TOL)
    assert got["pr_auc"] == pytest.approx(skm.average_precision_score(labels, probabilities[:, 1]), abs=TOL)
    assert got["log_loss"] == pytest.approx(skm.log_loss(labels, probabilities), abs=TOL)
    precision, recall, f1, _ = skm.precision_recall_fscore_support(labels, predicted, zero_division=0)
    for i, name in enumerate(["no", "yes"]):
        assert got[f"precision/{name}"] == pytest.approx(precision[i], abs=TOL)
        assert got[f"recall/{name}"] == pytest.approx(recall[i], abs=TOL)
        assert got[f"f1/{name}"] == pytest.approx(f1[i], abs=TOL)
    assert got["f1_macro"] == pytest.approx(skm.f1_score(labels, predicted, average="macro"), abs=TOL)
    np.testing.assert_array_equal(acc.confusion, skm.confusion_matrix(labels, predicted))
    # The ROC curve points are scikit-learn's (before it drops collinear points).
    fpr, tpr, _ = acc.histograms[1].roc_curve()
    sk_fpr, sk_tpr, _ = skm.roc_curve(labels, probabilities[:, 1], drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr, atol=TOL)
    np.testing.assert_allclose(tpr, sk_tpr, atol=TOL)


def test_multiclass_metrics_equal_sklearn():
    rng = np.random.default_rng(2)
    labels, probabilities = _random_classifier(rng, 4000, 4)
    classes = ["a", "b", "c", "d"]
    acc = metrics.ClassificationAccumulator(classes)
    _feed(acc, labels, probabilities, batch=1000)
    got = acc.result()
    predicted = probabilities.argmax(axis=1)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted), abs=TOL)
    assert got["roc_auc"] == pytest.approx(
        skm.roc_auc_score(labels, probabilities.astype(np.float64) / probabilities.sum(axis=1, keepdims=True),
                          multi_class="ovr", average="macro"), abs=1e-4)
    # Exact check of the one-vs-rest macro average on the very same float32 scores.
    ovr = np.mean([skm.roc_auc_score(labels == c, probabilities[:, c]) for c in range(4)])
    assert got["roc_auc"] == pytest.approx(ovr, abs=TOL)
    assert got["pr_auc"] == pytest.approx(
        skm.average_precision_score(np.eye(4)[labels], probabilities, average="macro"), abs=TOL)
    assert got["log_loss"] == pytest.approx(skm.log_loss(labels, probabilities, labels=range(4)), abs=TOL)
    for metric, function in (("precision", skm.precision_score), ("recall", skm.recall_score),
                             ("f1", skm.f1_score)):
        assert got[f"{metric}_macro"] == pytest.approx(function(labels, predicted, average="macro"), abs=TOL)
    np.testing.assert_array_equal(acc.confusion, skm.confusion_matrix(labels, predicted))


def test_expected_calibration_error_matches_direct_formula():
    rng = np.random.default_rng(3)
    labels, probabilities = _random_classifier(rng, 2000, 3)
    acc = metrics.ClassificationAccumulator(["x", "y", "z"])
    _feed(acc, labels, probabilities)
    confidence = probabilities.max(axis=1).astype(np.float64)
    correct = probabilities.argmax(axis=1) == labels
    bins = np.minimum((confidence * 15).astype(int), 14)
    expected = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * np.sum(bins == b) / 2000
                   for b in range(15) if np.any(bins == b))
    assert acc.result()["expected_calibration_error"] == pytest.approx(expected, abs=TOL)


def test_regression_metrics_equal_sklearn():
    rng = np.random.default_rng(4)
    labels = rng.normal(100, 30, size=5000)
    labels[:3] = 0.0  # MAPE with a zero label follows scikit-learn's eps rule
    predictions = labels + rng.normal(0, 10, size=5000)
    acc = metrics.RegressionAccumulator()
    for start in range(0, 5000, 333):
        acc.add(labels[start:start + 333], predictions[start:start + 333])
    got = acc.result()
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(labels, predictions)), abs=TOL)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(labels, predictions), abs=TOL)
    assert got["mape"] == pytest.approx(skm.mean_absolute_percentage_error(labels, predictions), rel=TOL)
    assert got["r2"] == pytest.approx(skm.r2_score(labels, predictions), abs=TOL)
    assert got["residual_q50"] == pytest.approx(np.quantile(labels - predictions, 0.5), abs=TOL)
    assert got["residual_q95"] == pytest.approx(np.quantile(labels - predictions, 0.95), abs=TOL)


def test_score_histogram_coarsens_within_documented_resolution():
    rng = np.random.default_rng(5)
    scores = rng.random(50_000).astype(np.float32)
    truth = rng.random(50_000) < scores
    exact = metrics.ScoreHistogram()
    small = metrics.ScoreHistogram(max_bins=1024)
    for start in range(0, 50_000, 5000):
        exact.add(scores[start:start + 5000], truth[start:start + 5000])
        small.add(scores[start:start + 5000], truth[start:start + 5000])
    assert exact.dropped_bits == 0 and len(small.keys) <= 1024 and small.dropped_bits > 0
    assert exact.roc_auc() == pytest.approx(skm.roc_auc_score(truth, scores), abs=TOL)
    assert small.count == exact.count
    # 1024 bins over [0, 1] in float32 bit space: the AUC moves by well under a percent.
    assert abs(small.roc_auc() - exact.roc_auc()) < 5e-3


def test_invalid_probabilities_are_rejected():
    acc = metrics.ClassificationAccumulator(["a", "b"])
    with pytest.raises(metrics.PredictionError, match="NaN"):
        acc.add(np.array([0]), np.array([[np.nan, 1.0]], dtype=np.float32))
    with pytest.raises(metrics.PredictionError, match="shape"):
        acc.add(np.array([0]), np.array([[0.2, 0.3, 0.5]], dtype=np.float32))


def test_reservoir_is_uniform_and_bounded():
    reservoir = metrics.Reservoir(1000, seed=0)
    for start in range(0, 100_000, 7000):
        values = np.arange(start, min(start + 7000, 100_000))
        reservoir.add({"v": values})
    assert len(reservoir) == 1000 and reservoir.seen == 100_000
    assert len(np.unique(reservoir.columns["v"])) == 1000
    assert 45_000 < reservoir.columns["v"].mean() < 55_000


def test_score_histogram_is_exact_at_any_size():
    """50,000 distinct float32 scores in batches (far past the old 4,096-bin slice cap): ROC AUC and average
    precision equal scikit-learn's on the same scores, and the bins never outnumber the rows."""
    rng = np.random.default_rng(7)
    scores = rng.random(50_000).astype(np.float32)
    truth = rng.random(50_000) < 0.1 + 0.3 * scores  # imbalanced, some skill
    histogram = metrics.ScoreHistogram()
    for start in range(0, 50_000, 3_000):
        histogram.add(scores[start:start + 3_000], truth[start:start + 3_000])
    assert histogram.dropped_bits == 0 and len(histogram.keys) == len(np.unique(scores)) <= 50_000
    assert histogram.count == 50_000 and histogram.positives.sum() == truth.sum()
    assert histogram.roc_auc() == pytest.approx(skm.roc_auc_score(truth, scores), abs=1e-12)
    assert histogram.average_precision() == pytest.approx(skm.average_precision_score(truth, scores), abs=1e-12)
    # Merging two halves gives the same bins as counting everything at once.
    first, second = metrics.ScoreHistogram(), metrics.ScoreHistogram()
    first.add(scores[:25_000], truth[:25_000])
    second.add(scores[25_000:], truth[25_000:])
    first.merge(second)
    np.testing.assert_array_equal(first.keys, histogram.keys)
    np.testing.assert_array_equal(first.positives, histogram.positives)


def test_score_histogram_counts_widen_before_they_could_overflow():
    histogram = metrics.ScoreHistogram()
    histogram.add(np.array([0.2, 0.7], dtype=np.float32), np.array([False, True]))
    assert histogram.positives.dtype == np.uint32
    histogram._total = 2**32 - 2  # as if four billion rows had been counted
    histogram.add(np.array([0.2, 0.7, 0.9], dtype=np.float32), np.array([False, True, True]))
    assert histogram.positives.dtype == np.int64 and histogram.negatives.dtype == np.int64
    assert histogram.positives.tolist() == [0, 2, 1] and histogram.negatives.tolist() == [2, 0, 0]


def test_trivial_predictor_metrics_are_those_of_constant_prior_probabilities():
    rng = np.random.default_rng(8)
    labels = rng.choice(3, size=3000, p=[0.6, 0.3, 0.1])
    shares = np.bincount(labels, minlength=3) / 3000
    acc = metrics.ClassificationAccumulator(["a", "b", "c"])
    acc.add(labels, np.tile(shares.astype(np.float32), (3000, 1)))
    measured, trivial = acc.result(), acc.trivial()
    for name in ("accuracy", "roc_auc", "pr_auc", "pr_auc/a", "pr_auc/b", "pr_auc/c"):
        assert trivial[name] == pytest.approx(measured[name], abs=1e-6), name
    assert trivial["log_loss"] == pytest.approx(measured["log_loss"], abs=1e-6)
    assert trivial["pr_auc/c"] == pytest.approx(shares[2])
    target = rng.normal(10, 2, 1000)
    regression = metrics.RegressionAccumulator()
    regression.add(target, np.full(1000, target.mean()))
    assert regression.trivial()["rmse"] == pytest.approx(regression.result()["rmse"])
    assert regression.trivial()["r2"] == 0.0 == pytest.approx(regression.result()["r2"], abs=1e-12)
