"""Streaming metric accumulators in plain numpy (the TF image carries no scikit-learn).

Every accumulator takes record batches one at a time and keeps state whose size does not grow with the
number of rows, so evaluating millions of rows runs in bounded memory:

* classification: a confusion matrix, log-loss sums, a calibration histogram and, per class, a
  :class:`ScoreHistogram` of positives and negatives per distinct score (ROC AUC and PR AUC come from it);
* regression: error sums, a mergeable mean/variance of the label (Chan et al.) and a uniform sample of
  residuals for quantiles.

Memory does not grow with the rows except for the score histograms, which grow with the number of
*distinct* scores and never beyond one bin per row (12-20 bytes a bin).

Resolution. A :class:`ScoreHistogram` keeps one bin per distinct float32 score, so ROC AUC and
average precision are *exact* (equal to scikit-learn's on the same float32 scores) in every slice, of any
size. An optional ``max_bins`` cap (off by default; evaluation does not use it) trades that for bounded
bins: the lowest mantissa bits are then dropped one at a time until the bins fit (relative resolution
``2**-(23 - dropped_bits)``; ties inside a bin count half, as in scikit-learn). ``dropped_bits`` is reported.
Residual quantiles are exact up to ``max_samples`` rows (default 2**18) and come from a uniform sample
beyond (standard error of a quantile ~ sqrt(q(1-q)/max_samples) in rank terms, 0.1% at the median).
"""

from __future__ import annotations

import math

import numpy as np

#: calibration histogram bins (equal width on [0, 1]); ECE follows Guo et al. (2017) with 15 bins
CALIBRATION_BINS = 15
DEFAULT_MAX_SAMPLES = 1 << 18
RESIDUAL_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class PredictionError(ValueError):
    """A model returned outputs that are not valid predictions (NaN, out of range, wrong shape)."""


class ScoreHistogram:
    """Positive and negative counts per distinct float32 score, for ROC and precision-recall curves.

    Scores must be in ``[0, 1]`` (probabilities). Keys are the float32 bit patterns (shifted right by
    ``dropped_bits``, 0 unless a ``max_bins`` cap forced coarsening); for non-negative floats that integer
    order is the numeric order, so coarsening merges only neighbouring scores and never reorders them.
    Without a cap (the default) the histogram is exact and holds at most one bin per row counted.
    """

    def __init__(self, max_bins: int | None = None):
        self.max_bins = None if max_bins is None else int(max_bins)
        self.dropped_bits = 0
        self.keys = np.zeros(0, dtype=np.uint32)
        # 32-bit counts keep a bin at 12 bytes; widened to 64 bits before a total could overflow them.
        self.positives = np.zeros(0, dtype=np.uint32)
        self.negatives = np.zeros(0, dtype=np.uint32)
        self._total = 0

    def add(self, scores: np.ndarray, positive: np.ndarray) -> None:
        """Count a batch of scores with their binary truth.

        Args:
            scores: probabilities of the positive class, shape ``[n]``, in ``[0, 1]``.
            positive: booleans, shape ``[n]``.
        """
        if len(scores) == 0:
            return
        # abs() turns -0.0 into 0.0, whose bit pattern sorts first; negative scores were rejected earlier.
        bits = np.abs(np.asarray(scores, dtype=np.float32)).view(np.uint32) >> np.uint32(self.dropped_bits)
        positive = np.asarray(positive, dtype=bool)
        unique, inverse = np.unique(bits, return_inverse=True)
        positives = np.bincount(inverse, weights=positive, minlength=len(unique)).astype(np.int64)
        negatives = np.bincount(inverse, minlength=len(unique)).astype(np.int64) - positives
        self._merge(unique, positives, negatives)

    def merge(self, other: ScoreHistogram) -> None:
        """Add the counts of another histogram (for combining partial results)."""
        shift = max(self.dropped_bits, other.dropped_bits)
        self._coarsen_to(shift)
        keys = other.keys >> np.uint32(shift - other.dropped_bits)
        if shift != other.dropped_bits:
            keys, inverse = np.unique(keys, return_inverse=True)
            positives = np.bincount(inverse, other.positives, len(keys)).astype(np.int64)
            negatives = np.bincount(inverse, other.negatives, len(keys)).astype(np.int64)
        else:
            positives, negatives = other.positives, other.negatives
        self._merge(keys, positives, negatives)

    def _merge(self, keys: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> None:
        self._total += int(positives.sum()) + int(negatives.sum())
        if self._total >= np.iinfo(self.positives.dtype).max:
            self.positives, self.negatives = self.positives.astype(np.int64), self.negatives.astype(np.int64)
        positives, negatives = positives.astype(self.positives.dtype), negatives.astype(self.negatives.dtype)
        # keys are sorted and unique. Existing bins get their counts added; new keys are inserted in order:
        # one pass over the bins (a copy) per batch instead of re-sorting everything seen so far.
        where = np.searchsorted(self.keys, keys)
        found = where < len(self.keys)
        found[found] = self.keys[where[found]] == keys[found]
        self.positives[where[found]] += positives[found]
        self.negatives[where[found]] += negatives[found]
        new = ~found
        if new.any():
            self.keys = np.insert(self.keys, where[new], keys[new])
            self.positives = np.insert(self.positives, where[new], positives[new])
            self.negatives = np.insert(self.negatives, where[new], negatives[new])
        while self.max_bins is not None and len(self.keys) > self.max_bins:
            self._coarsen_to(self.dropped_bits + 1)

    def _coarsen_to(self, dropped_bits: int) -> None:
        if dropped_bits <= self.dropped_bits:
            return
        keys = self.keys >> np.uint32(dropped_bits - self.dropped_bits)
        self.dropped_bits = dropped_bits
        unique, inverse = np.unique(keys, return_inverse=True)
        dtype = self.positives.dtype
        self.positives = np.bincount(inverse, self.positives, len(unique)).astype(dtype)
        self.negatives = np.bincount(inverse, self.negatives, len(unique)).astype(dtype)
        self.keys = unique.astype(np.uint32)

    @property
    def count(self) -> int:
        """Rows counted."""
        return self._total

    def thresholds(self) -> np.ndarray:
        """Lower edge of every bin as a float score, in descending order."""
        return (self.keys[::-1] << np.uint32(self.dropped_bits)).view(np.float32).astype(np.float64)

    def curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cumulative true and false positives when predicting positive at score >= each threshold.

        Returns:
            ``(thresholds, true_positives, false_positives)``, thresholds descending.
        """
        return (self.thresholds(), np.cumsum(self.positives[::-1], dtype=np.int64),
                np.cumsum(self.negatives[::-1], dtype=np.int64))

    def roc_auc(self) -> float:
        """Area under the ROC curve (trapezoidal, ties count half); NaN without both classes."""
        _, tps, fps = self.curve()
        if len(tps) == 0 or tps[-1] == 0 or fps[-1] == 0:
            return float("nan")
        tpr = np.concatenate([[0.0], tps / tps[-1]])
        fpr = np.concatenate([[0.0], fps / fps[-1]])
        return float(np.trapezoid(tpr, fpr))

    def roc_curve(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(fpr, tpr, thresholds)`` starting at (0, 0) with threshold +inf."""
        thresholds, tps, fps = self.curve()
        tpr = np.concatenate([[0.0], tps / max(tps[-1], 1)]) if len(tps) else np.zeros(1)
        fpr = np.concatenate([[0.0], fps / max(fps[-1], 1)]) if len(fps) else np.zeros(1)
        return fpr, tpr, np.concatenate([[np.inf], thresholds])

    def average_precision(self) -> float:
        """PR AUC as average precision: sum over thresholds of (recall step) x precision; NaN if no positives."""
        _, tps, fps = self.curve()
        if len(tps) == 0 or tps[-1] == 0:
            return float("nan")
        precision = tps / (tps + fps)
        recall = tps / tps[-1]
        return float(np.sum(np.diff(np.concatenate([[0.0], recall])) * precision))

    def pr_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """``(recall, precision)`` at every threshold, descending score."""
        _, tps, fps = self.curve()
        if len(tps) == 0 or tps[-1] == 0:
            return np.zeros(0), np.zeros(0)
        return tps / tps[-1], tps / (tps + fps)


class Reservoir:
    """A uniform sample without replacement of at most ``capacity`` rows (bottom-k of random keys).

    Mergeable and batch-friendly: every row draws a uniform key and the ``capacity`` smallest keys are
    kept, so the sample does not depend on how rows were batched (for a fixed seed and row order).
    """

    def __init__(self, capacity: int, seed: int = 0):
        self.capacity = int(capacity)
        self.rng = np.random.default_rng(seed)
        self.keys = np.zeros(0, dtype=np.float64)
        self.columns: dict[str, np.ndarray] = {}
        self.seen = 0

    def add(self, columns: dict[str, np.ndarray]) -> None:
        """Offer a batch of rows, given as equally long arrays by name."""
        n = len(next(iter(columns.values())))
        if n == 0:
            return
        self.seen += n
        keys = self.rng.random(n)
        if not self.columns:
            self.columns = {name: np.zeros((0,) + np.shape(v)[1:], dtype=np.asarray(v).dtype) for name, v in columns.items()}
        all_keys = np.concatenate([self.keys, keys])
        merged = {name: np.concatenate([self.columns[name], np.asarray(columns[name])]) for name in self.columns}
        if len(all_keys) > self.capacity:
            keep = np.argpartition(all_keys, self.capacity - 1)[: self.capacity]
            keep.sort()
            all_keys = all_keys[keep]
            merged = {name: values[keep] for name, values in merged.items()}
        self.keys = all_keys
        self.columns = merged

    def __len__(self) -> int:
        return len(self.keys)


def _check_probabilities(probabilities: np.ndarray, classes: int) -> np.ndarray:
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != classes:
        raise PredictionError(f"'probabilities' has shape {probabilities.shape}; expected [batch, {classes}]")
    if not np.all(np.isfinite(probabilities)):
        raise PredictionError("'probabilities' contains NaN or infinite values")
    if probabilities.size and (probabilities.min() < 0 or probabilities.max() > 1):
        raise PredictionError(
            f"'probabilities' outside [0, 1] (min {probabilities.min()}, max {probabilities.max()})"
        )
    return probabilities


class ClassificationAccumulator:
    """Streaming metrics of a K-class classifier (K = 2 for binary; class index 1 is the positive class)."""

    def __init__(self, classes: list[str], max_bins: int | None = None):
        self.classes = list(classes)
        k = len(self.classes)
        if k < 2:
            raise ValueError(f"a classifier needs at least 2 classes, got {self.classes}")
        self.confusion = np.zeros((k, k), dtype=np.int64)  # rows: true class, columns: predicted class
        self.log_loss_sum = 0.0
        self.histograms = [ScoreHistogram(max_bins) for _ in range(k)]
        self.calibration_count = np.zeros(CALIBRATION_BINS, dtype=np.int64)
        self.calibration_confidence = np.zeros(CALIBRATION_BINS, dtype=np.float64)
        self.calibration_correct = np.zeros(CALIBRATION_BINS, dtype=np.int64)
        # Reliability of the positive-class probability (binary) for the calibration plot.
        self.reliability_count = np.zeros(CALIBRATION_BINS, dtype=np.int64)
        self.reliability_probability = np.zeros(CALIBRATION_BINS, dtype=np.float64)
        self.reliability_positive = np.zeros(CALIBRATION_BINS, dtype=np.int64)

    @property
    def count(self) -> int:
        """Rows counted."""
        return int(self.confusion.sum())

    def add(self, labels: np.ndarray, probabilities: np.ndarray, predicted: np.ndarray | None = None) -> None:
        """Count a batch.

        Args:
            labels: true class indices, int ``[n]`` in ``[0, K)``.
            probabilities: ``[n, K]`` class probabilities (the model's ``probabilities`` output).
            predicted: predicted class indices (the model's ``class_ids``); argmax of probabilities if None.
        """
        k = len(self.classes)
        labels = np.asarray(labels, dtype=np.int64)
        probabilities = _check_probabilities(probabilities, k)
        if len(labels) == 0:
            return
        if predicted is None:
            predicted = np.argmax(probabilities, axis=1)
        predicted = np.asarray(predicted, dtype=np.int64)
        self.confusion += np.bincount(labels * k + predicted, minlength=k * k).reshape(k, k)
        # Clip at the probabilities' own machine epsilon, as scikit-learn's log_loss does.
        eps = np.finfo(probabilities.dtype).eps if probabilities.dtype.kind == "f" else np.finfo(np.float64).eps
        true_probability = np.clip(probabilities[np.arange(len(labels)), labels], eps, 1 - eps)
        self.log_loss_sum += float(-np.sum(np.log(true_probability.astype(np.float64))))
        for c in range(k):
            self.histograms[c].add(probabilities[:, c], labels == c)
        confidence = probabilities[np.arange(len(labels)), predicted].astype(np.float64)
        bins = np.minimum((confidence * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
        self.calibration_count += np.bincount(bins, minlength=CALIBRATION_BINS)
        self.calibration_confidence += np.bincount(bins, confidence, minlength=CALIBRATION_BINS)
        self.calibration_correct += np.bincount(bins, predicted == labels, minlength=CALIBRATION_BINS).astype(np.int64)
        positive_probability = probabilities[:, k - 1].astype(np.float64) if k == 2 else confidence
        positive_truth = labels == (k - 1) if k == 2 else predicted == labels
        bins = np.minimum((positive_probability * CALIBRATION_BINS).astype(np.int64), CALIBRATION_BINS - 1)
        self.reliability_count += np.bincount(bins, minlength=CALIBRATION_BINS)
        self.reliability_probability += np.bincount(bins, positive_probability, minlength=CALIBRATION_BINS)
        self.reliability_positive += np.bincount(bins, positive_truth, minlength=CALIBRATION_BINS).astype(np.int64)

    def per_class(self) -> dict[str, dict[str, float]]:
        """Precision, recall, F1 and support per class (0 where undefined, as scikit-learn's zero_division=0)."""
        true_positives = np.diag(self.confusion).astype(np.float64)
        predicted = self.confusion.sum(axis=0).astype(np.float64)
        actual = self.confusion.sum(axis=1).astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(predicted > 0, true_positives / predicted, 0.0)
            recall = np.where(actual > 0, true_positives / actual, 0.0)
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        return {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(actual[i])}
            for i, name in enumerate(self.classes)
        }

    def expected_calibration_error(self) -> float:
        """Top-label ECE over ``CALIBRATION_BINS`` equal-width confidence bins."""
        n = self.calibration_count.sum()
        if n == 0:
            return float("nan")
        gap = np.abs(self.calibration_correct - self.calibration_confidence)  # per-bin |sum correct - sum conf|
        return float(gap.sum() / n)

    def micro_histogram(self) -> ScoreHistogram:
        """The one-vs-rest histograms pooled: the micro-averaged ROC curve (the positive class for binary)."""
        if len(self.classes) == 2:
            return self.histograms[1]
        pooled = ScoreHistogram(self.histograms[0].max_bins)
        for histogram in self.histograms:
            pooled.merge(histogram)
        return pooled

    def result(self) -> dict[str, float]:
        """Every metric by name. Macro averages are unweighted means over classes.

        ``roc_auc``/``pr_auc``: binary — of the positive class (``classes[1]``); multi-class — one-vs-rest
        macro average over the classes present (NaN for a class without positives or negatives).
        """
        n = self.count
        k = len(self.classes)
        out: dict[str, float] = {"example_count": float(n)}
        if n == 0:
            return out
        out["accuracy"] = float(np.trace(self.confusion) / n)
        if k == 2:
            out["roc_auc"] = self.histograms[1].roc_auc()
            out["pr_auc"] = self.histograms[1].average_precision()
        else:
            aucs = [h.roc_auc() for h in self.histograms]
            precisions = [h.average_precision() for h in self.histograms]
            out["roc_auc"] = float(np.nanmean(aucs)) if not all(map(math.isnan, aucs)) else float("nan")
            out["pr_auc"] = float(np.nanmean(precisions)) if not all(map(math.isnan, precisions)) else float("nan")
        for name, histogram in zip(self.classes, self.histograms, strict=True):
            out[f"pr_auc/{name}"] = histogram.average_precision()
        out["log_loss"] = self.log_loss_sum / n
        per_class = self.per_class()
        for metric in ("precision", "recall", "f1"):
            out[f"{metric}_macro"] = float(np.mean([values[metric] for values in per_class.values()]))
            for name, values in per_class.items():
                out[f"{metric}/{name}"] = values[metric]
        out["expected_calibration_error"] = self.expected_calibration_error()
        out["score_bins_dropped_bits"] = float(max(h.dropped_bits for h in self.histograms))
        return out

    def class_counts(self) -> np.ndarray:
        """Rows per true class."""
        return self.confusion.sum(axis=1)

    def trivial(self) -> dict[str, float]:
        """Metrics of the trivial predictor on the same rows: constant probabilities = the class shares.

        Only metrics with a closed form are given (see :data:`TRIVIAL_METRICS`): ``roc_auc`` 0.5 (every
        score tied), ``pr_auc/<c>`` the share of class c (one threshold: precision = prevalence, recall 1),
        ``accuracy`` the majority share, ``log_loss`` the entropy of the class shares.
        """
        counts = self.class_counts().astype(np.float64)
        n = counts.sum()
        if n == 0:
            return {}
        return trivial_classification(counts / n, len(self.classes) == 2, self.classes)


class RegressionAccumulator:
    """Streaming regression metrics: RMSE, MAE, MAPE, R² and residual quantiles (residual = label - prediction)."""

    def __init__(self, max_samples: int = DEFAULT_MAX_SAMPLES, seed: int = 0):
        self.count = 0
        self.abs_error_sum = 0.0
        self.squared_error_sum = 0.0
        self.abs_percentage_error_sum = 0.0
        self.label_mean = 0.0
        self.label_m2 = 0.0  # sum of squared deviations from the mean (for R²)
        self.residuals = Reservoir(max_samples, seed)

    def add(self, labels: np.ndarray, predictions: np.ndarray) -> None:
        """Count a batch of float labels and predictions (shape ``[n]``)."""
        labels = np.asarray(labels, dtype=np.float64)
        predictions = np.asarray(predictions, dtype=np.float64).reshape(-1)
        if predictions.shape != labels.shape:
            raise PredictionError(f"'predictions' has shape {predictions.shape}; expected {labels.shape}")
        if not np.all(np.isfinite(predictions)):
            raise PredictionError("'predictions' contains NaN or infinite values")
        n = len(labels)
        if n == 0:
            return
        residual = labels - predictions
        self.abs_error_sum += float(np.sum(np.abs(residual)))
        self.squared_error_sum += float(np.sum(residual**2))
        # scikit-learn's MAPE: |error| / max(|label|, float64 eps), so a zero label gives a huge, finite term.
        self.abs_percentage_error_sum += float(
            np.sum(np.abs(residual) / np.maximum(np.abs(labels), np.finfo(np.float64).eps))
        )
        batch_mean = float(labels.mean())
        batch_m2 = float(np.sum((labels - batch_mean) ** 2))
        total = self.count + n
        delta = batch_mean - self.label_mean
        self.label_mean += delta * n / total
        self.label_m2 += batch_m2 + delta**2 * self.count * n / total
        self.count = total
        self.residuals.add({"residual": residual, "label": labels, "prediction": predictions})

    def result(self) -> dict[str, float]:
        """Every metric by name (R² is NaN for a constant label, MAPE follows scikit-learn)."""
        n = self.count
        out: dict[str, float] = {"example_count": float(n)}
        if n == 0:
            return out
        out["rmse"] = math.sqrt(self.squared_error_sum / n)
        out["mae"] = self.abs_error_sum / n
        out["mse"] = self.squared_error_sum / n
        out["mape"] = self.abs_percentage_error_sum / n
        out["r2"] = 1.0 - self.squared_error_sum / self.label_m2 if self.label_m2 > 0 else float("nan")
        residuals = self.residuals.columns["residual"]
        for q in RESIDUAL_QUANTILES:
            out[f"residual_q{int(round(q * 100)):02d}"] = float(np.quantile(residuals, q))
        out["residual_quantiles_exact"] = float(self.residuals.seen <= self.residuals.capacity)
        return out

    def trivial(self) -> dict[str, float]:
        """Metrics of the mean predictor on the same rows: ``r2`` 0, ``rmse`` / ``mse`` the label's spread."""
        if self.count == 0:
            return {}
        variance = self.label_m2 / self.count
        return {"r2": 0.0, "mse": variance, "rmse": math.sqrt(variance)}


def trivial_classification(shares: np.ndarray, binary: bool, classes: list[str]) -> dict[str, float]:
    """Trivial-predictor metrics from the class shares (see :meth:`ClassificationAccumulator.trivial`)."""
    shares = np.asarray(shares, dtype=np.float64)
    present = shares > 0
    out = {"accuracy": float(shares.max()),
           "roc_auc": 0.5 if present.sum() >= 2 else float("nan"),
           "log_loss": float(-np.sum(shares[present] * np.log(shares[present])))}
    for name, share in zip(classes, shares, strict=True):
        out[f"pr_auc/{name}"] = float(share) if share > 0 else float("nan")
    # pr_auc: the positive class for binary, else the mean over the classes present (as in result()).
    out["pr_auc"] = out[f"pr_auc/{classes[1]}"] if binary else float(shares[present].mean())
    return out


#: metrics whose trivial-predictor value is known (what a skill threshold may name); ``pr_auc/<class>`` too
TRIVIAL_METRICS = {"classification": ("accuracy", "roc_auc", "pr_auc", "log_loss"),
                   "regression": ("r2", "rmse", "mse")}


#: direction of every metric: True if higher is better (used when a threshold leaves it out)
HIGHER_IS_BETTER_PREFIXES = ("accuracy", "roc_auc", "pr_auc", "precision", "recall", "f1", "r2")
LOWER_IS_BETTER_PREFIXES = ("log_loss", "expected_calibration_error", "rmse", "mae", "mse", "mape")


def higher_is_better(metric: str) -> bool | None:
    """Default direction of a metric name (``None`` if unknown, e.g. residual quantiles)."""
    base = metric.split("/")[0]
    if base.startswith(HIGHER_IS_BETTER_PREFIXES):
        return True
    if base.startswith(LOWER_IS_BETTER_PREFIXES):
        return False
    return None
