"""Bootstrap confidence intervals for the metrics thresholds read, from a uniform sample of evaluated rows.

The evaluation keeps a uniform sample of at most ``reservoir_size`` rows (label and both models'
outputs). Each replicate re-weights that sample with Poisson(1) weights (the Poisson bootstrap, which
needs no resampling of indices) and the same weights serve the candidate, the baseline and the trivial
predictor, so the intervals of the *difference* (candidate minus baseline) and of the *skill* (candidate
minus the trivial predictor on the same rows) are paired: noise common to both cancels.

When the sample is smaller than the data (n sampled rows out of N), the spread of the replicates is
scaled by sqrt(n / N) around the full-data estimate (the m-out-of-n rescaling that holds for the
root-n-consistent metrics used here); with n = N this is the ordinary bootstrap interval.

The interval of ROC AUC (and so of its skill, AUC - 0.5) is never narrower than its score-type interval
(:func:`auc_score_bounds`: Hanley-McNeil variance at each candidate value, which at 0.5 is the exact
Mann-Whitney no-skill spread): with a handful of positives (or negatives) the bootstrap spread is too
narrow (replicates reuse the same few rows; a model without skill had its percentile interval clear of
0.5 about twice as often as the nominal level), whereas the score interval keeps that level under "the
scores carry no information about the class", the hypothesis a skill threshold rejects.
"""

from __future__ import annotations

import math
import statistics
import warnings

import numpy as np

#: metrics that get intervals overall, per task; the evaluation adds the skill metric and every metric
#: a threshold names (when :func:`supports` it)
HEADLINE_METRICS = {
    "binary": ("accuracy", "roc_auc", "pr_auc", "log_loss"),
    "multiclass": ("accuracy", "roc_auc", "log_loss"),
    "regression": ("rmse", "r2", "mae"),
}
_CLASSIFICATION = ("accuracy", "roc_auc", "pr_auc", "log_loss")
_REGRESSION = ("rmse", "mae", "mse", "r2")
_CHUNK = 16  # replicates computed at once: bounds the [replicates, rows] work arrays


def supports(task: str, metric: str) -> bool:
    """True if :func:`intervals` can bound ``metric`` (``pr_auc/<class>`` included)."""
    if task == "regression":
        return metric in _REGRESSION
    return metric in _CLASSIFICATION or metric.startswith("pr_auc/")


class _CurvePlan:
    """One class's scores sorted once, so that each bootstrap replicate only needs cumulative sums."""

    def __init__(self, scores: np.ndarray, positive: np.ndarray):
        self.order = np.argsort(-scores, kind="stable")
        sorted_scores = scores[self.order]
        # Last position of every group of tied scores: the curve only has points between distinct scores.
        self.group_ends = np.flatnonzero(np.concatenate([sorted_scores[1:] != sorted_scores[:-1], [True]]))
        self.positive = positive[self.order].astype(np.float64)

    def _counts(self, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = weights[:, self.order]
        tps = np.cumsum(w * self.positive, axis=1)[:, self.group_ends]
        fps = np.cumsum(w * (1.0 - self.positive), axis=1)[:, self.group_ends]
        return tps, fps

    def roc_auc(self, weights: np.ndarray) -> np.ndarray:
        """Weighted ROC AUC for every row of ``weights`` (ties count half), shape ``[replicates]``."""
        tps, fps = self._counts(weights)
        zeros = np.zeros((len(tps), 1))
        tps = np.concatenate([zeros, tps], axis=1)
        fps = np.concatenate([zeros, fps], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            area = np.sum(np.diff(fps, axis=1) * (tps[:, 1:] + tps[:, :-1]) / 2, axis=1)
            return area / (tps[:, -1] * fps[:, -1])

    def average_precision(self, weights: np.ndarray) -> np.ndarray:
        """Weighted average precision (sum of recall steps x precision) per row of ``weights``."""
        tps, fps = self._counts(weights)
        steps = np.diff(np.concatenate([np.zeros((len(tps), 1)), tps], axis=1), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A threshold whose rows all drew weight 0 adds no recall; its 0/0 precision must not poison the sum.
            precision = np.where(tps + fps > 0, tps / (tps + fps), 0.0)
            return np.sum(steps * precision, axis=1) / tps[:, -1]


class _Replicator:
    """Per-row terms of the metrics of one model, prepared once for many weightings."""

    def __init__(self, task: str, sample: dict[str, np.ndarray], prefix: str, classes: list[str] | None = None):
        self.task = task
        labels = sample["label"]
        self.labels = labels
        self._plans: dict[int, _CurvePlan] = {}
        if task == "regression":
            residual = labels - sample[prefix + "predictions"]
            self.squared = residual**2
            self.absolute = np.abs(residual)
            return
        probabilities = sample[prefix + "probabilities"]
        self.probabilities = probabilities
        self.k = probabilities.shape[1]
        self.classes = list(classes) if classes else [str(c) for c in range(self.k)]
        self.onehot = (labels[:, None] == np.arange(self.k)[None, :]).astype(np.float64)
        self.correct = (sample[prefix + "class_ids"] == labels).astype(np.float64)
        eps = np.finfo(probabilities.dtype).eps
        true_probability = np.clip(probabilities[np.arange(len(labels)), labels], eps, 1 - eps)
        self.log_loss = -np.log(true_probability.astype(np.float64))

    def _plan(self, c: int) -> _CurvePlan:
        if c not in self._plans:
            self._plans[c] = _CurvePlan(self.probabilities[:, c], self.labels == c)
        return self._plans[c]

    def _classes_of(self, metric: str) -> list[int]:
        if "/" in metric:
            name = metric.split("/", 1)[1]
            if name not in self.classes:
                raise ValueError(f"no class {name!r} for metric {metric!r}; classes: {self.classes}")
            return [self.classes.index(name)]
        return [1] if self.k == 2 else list(range(self.k))

    def __call__(self, metric: str, weights: np.ndarray) -> np.ndarray:
        """``[replicates]`` values of ``metric`` under each row of ``weights`` (``[replicates, rows]``)."""
        total = weights.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.task == "regression":
                if metric == "rmse":
                    return np.sqrt(weights @ self.squared / total)
                if metric == "mse":
                    return weights @ self.squared / total
                if metric == "mae":
                    return weights @ self.absolute / total
                if metric == "r2":
                    return 1.0 - (weights @ self.squared) / self._label_m2(weights)
            else:
                if metric == "accuracy":
                    return weights @ self.correct / total
                if metric == "log_loss":
                    return weights @ self.log_loss / total
                if metric == "roc_auc" or metric.split("/")[0] == "pr_auc":
                    method = _CurvePlan.roc_auc if metric == "roc_auc" else _CurvePlan.average_precision
                    per_class = np.vstack([method(self._plan(c), weights) for c in self._classes_of(metric)])
                    return per_class[0] if len(per_class) == 1 else _nanmean(per_class, axis=0)
        raise ValueError(f"no bootstrap for metric {metric!r} of task {self.task!r}")

    def _label_m2(self, weights: np.ndarray) -> np.ndarray:
        total = weights.sum(axis=1)
        mean = weights @ self.labels / total
        return weights @ self.labels**2 - total * mean**2

    def trivial(self, metric: str, weights: np.ndarray) -> np.ndarray | None:
        """``[replicates]`` values of the trivial predictor's ``metric`` (class prior / label mean) on the
        same weighted rows; ``None`` if the metric has no trivial value."""
        total = weights.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.task == "regression":
                if metric == "r2":
                    return np.zeros(len(weights))
                if metric in ("mse", "rmse"):
                    variance = self._label_m2(weights) / total
                    return np.sqrt(variance) if metric == "rmse" else variance
                return None
            shares = (weights @ self.onehot) / total[:, None]
            if metric == "accuracy":
                return shares.max(axis=1)
            if metric == "roc_auc":
                return np.where((shares > 0).sum(axis=1) >= 2, 0.5, np.nan)
            if metric == "log_loss":
                return -np.sum(np.where(shares > 0, shares * np.log(np.where(shares > 0, shares, 1.0)), 0.0), axis=1)
            if metric.startswith("pr_auc"):
                chosen = shares[:, self._classes_of(metric)]
                chosen = np.where(chosen > 0, chosen, np.nan)
                return chosen[:, 0] if chosen.shape[1] == 1 else _nanmean(chosen, axis=1)
        return None


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean over the finite entries (NaN where none is: a class absent from every row of a replicate)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def auc_score_bounds(estimate: float, labels: np.ndarray, probabilities: np.ndarray, classes: list[int],
                     z: float, scale: float = 1.0) -> tuple[float, float]:
    """Score-type interval of ROC AUC: the values A0 that a z-test of "AUC = A0" with the Hanley-McNeil
    variance at A0 does not reject. At A0 = 0.5 that variance is the Mann-Whitney no-skill one, which is
    exact however few rows a class has (tie-corrected; scaled by the same factor elsewhere); a macro mean
    over ``classes`` (one-vs-rest) uses the mean of the class spreads, which bounds the spread of the mean.

    Args:
        estimate: the AUC to bound.
        labels: class ids per row.
        probabilities: ``[rows, classes]`` scores.
        classes: the class ids whose one-vs-rest AUC is averaged.
        z: the normal quantile of the interval's level.
        scale: factor on the spread (sqrt(n / N) when the rows are a sample of N).
    Returns:
        ``(low, high)``, within [0, 1]; ``(0, 1)`` when a class has no row or every row.
    """
    grid = np.linspace(0.0, 1.0, 2001)
    q1, q2 = grid / (2 - grid), 2 * grid**2 / (1 + grid)
    n = len(labels)
    spreads = []
    for c in classes:
        n1 = float(np.sum(labels == c))
        n0 = float(n) - n1
        if not (n1 and n0):
            return 0.0, 1.0
        ties = np.unique(probabilities[:, c], return_counts=True)[1].astype(np.float64)
        tie_factor = max((n + 1) - np.sum(ties**3 - ties) / (n * (n - 1)), 0.0) / (n + 1)
        variance = (grid * (1 - grid) + (n1 - 1) * (q1 - grid**2) + (n0 - 1) * (q2 - grid**2)) / (n1 * n0)
        spreads.append(np.sqrt(np.maximum(variance, 0.0) * tie_factor))
    accepted = grid[np.abs(estimate - grid) <= z * scale * np.mean(spreads, axis=0) + 1e-12]
    if not len(accepted):
        return estimate, estimate
    return min(float(accepted[0]), estimate), max(float(accepted[-1]), estimate)


def poisson_weights(rows: int, replicates: int, seed: int) -> np.ndarray:
    """``[replicates, rows]`` Poisson(1) bootstrap weights as uint8 (drawn once, shared by every slice)."""
    return np.random.default_rng(seed).poisson(1.0, size=(replicates, rows)).astype(np.uint8)


def intervals(task: str, sample: dict[str, np.ndarray], metrics: list[str], population: int,
              point: dict[str, dict[str, float]], weights: np.ndarray, *,
              confidence: float = 0.95, classes: list[str] | None = None) -> dict[str, dict[str, list[float]]]:
    """Bootstrap intervals of the candidate's, the baseline's, the paired difference's and the skill's metrics.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        sample: the sampled rows: ``label`` and ``candidate_``/``baseline_`` + ``probabilities``/``class_ids``
            or ``predictions`` (baseline arrays optional).
        metrics: metric names to bound (those :func:`supports`).
        population: how many rows the sample was drawn from (N).
        point: full-data estimates ``{"candidate": {metric: v}, "baseline": {...}, "trivial": {...}}``
            (``baseline`` and ``trivial`` optional).
        weights: ``[replicates, rows of sample]`` bootstrap weights (:func:`poisson_weights`, sliced to the sample).
        confidence: two-sided level, e.g. 0.95.
        classes: class names (for ``pr_auc/<class>``).
    Returns:
        ``{metric: {"candidate": [lo, hi], "baseline": [lo, hi], "difference": [lo, hi], "skill": [lo, hi]}}``
        (keys only for what is present; ``difference`` is candidate minus baseline, ``skill`` is candidate
        minus the trivial predictor, for metrics that have a trivial value).
    """
    n = len(sample["label"])
    if n < 2 or population < 2 or len(weights) == 0:
        return {}
    has_baseline = "baseline" in point and any(key.startswith("baseline_") for key in sample)
    roles = ["candidate", "baseline"] if has_baseline else ["candidate"]
    replicators = {role: _Replicator(task, sample, role + "_", classes) for role in roles}
    trivial_point = point.get("trivial") or {}
    ones = np.ones((1, n))
    with_trivial = [m for m in metrics if m in trivial_point
                    and replicators["candidate"].trivial(m, ones) is not None]
    draws: dict[str, dict[str, list[np.ndarray]]] = {m: {role: [] for role in roles + ["trivial"]} for m in metrics}
    for start in range(0, len(weights), _CHUNK):
        chunk = weights[start:start + _CHUNK].astype(np.float64)
        for metric in metrics:
            for role in roles:
                draws[metric][role].append(replicators[role](metric, chunk))
            if metric in with_trivial:
                draws[metric]["trivial"].append(replicators["candidate"].trivial(metric, chunk))
    scale = math.sqrt(n / population)
    alpha = (1.0 - confidence) / 2
    z = statistics.NormalDist().inv_cdf(1 - alpha)
    out: dict[str, dict[str, list[float]]] = {}
    for metric in metrics:
        centre = {role: replicators[role](metric, ones)[0] for role in roles}
        reps = {role: np.concatenate(draws[metric][role]) for role in roles}
        estimates = {role: point[role].get(metric, np.nan) for role in roles}
        if len(roles) == 2:
            centre["difference"] = centre["candidate"] - centre["baseline"]
            reps["difference"] = reps["candidate"] - reps["baseline"]
            estimates["difference"] = estimates["candidate"] - estimates["baseline"]
        if metric in with_trivial:
            centre["skill"] = centre["candidate"] - replicators["candidate"].trivial(metric, ones)[0]
            reps["skill"] = reps["candidate"] - np.concatenate(draws[metric]["trivial"])
            estimates["skill"] = estimates["candidate"] - trivial_point[metric]
        out[metric] = {}
        for model, values in reps.items():
            estimate = estimates[model]
            with np.errstate(invalid="ignore"):
                deviations = values - centre[model]
            deviations = deviations[np.isfinite(deviations)]
            if len(deviations) < 2 or not np.isfinite(estimate):
                continue
            low, high = np.quantile(deviations, [alpha, 1 - alpha]) * scale
            if metric == "roc_auc" and model in ("candidate", "skill"):
                # the wider of the bootstrap and the score interval (see the module docstring)
                candidate = replicators["candidate"]
                auc = estimates["candidate"]
                score_low, score_high = auc_score_bounds(auc, sample["label"], candidate.probabilities,
                                                         candidate._classes_of(metric), z, scale)
                low, high = min(low, score_low - auc), max(high, score_high - auc)
            out[metric][model] = [float(estimate + low), float(estimate + high)]
    return out
