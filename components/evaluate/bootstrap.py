"""Bootstrap confidence intervals for headline metrics, from a uniform sample of evaluated rows.

The evaluation keeps a uniform sample of at most ``reservoir_size`` rows (label and both models'
outputs). Each replicate re-weights that sample with Poisson(1) weights (the Poisson bootstrap, which
needs no resampling of indices) and the same weights serve the candidate and the baseline, so the
interval of their *difference* is a paired one: noise common to both models cancels.

When the sample is smaller than the data (n sampled rows out of N), the spread of the replicates is
scaled by sqrt(n / N) around the full-data estimate (the m-out-of-n rescaling that holds for the
root-n-consistent metrics used here); with n = N this is the ordinary bootstrap interval.
"""

from __future__ import annotations

import math

import numpy as np

#: metrics that get intervals, per task; the first one also gets per-slice intervals in the report
HEADLINE_METRICS = {
    "binary": ("accuracy", "roc_auc", "log_loss"),
    "multiclass": ("accuracy", "roc_auc", "log_loss"),
    "regression": ("rmse", "mae"),
}
_CHUNK = 16  # replicates computed at once: bounds the [replicates, rows] work arrays


class _AucPlan:
    """One class's scores sorted once, so that each bootstrap replicate only needs cumulative sums."""

    def __init__(self, scores: np.ndarray, positive: np.ndarray):
        self.order = np.argsort(-scores, kind="stable")
        sorted_scores = scores[self.order]
        # Last position of every group of tied scores: the curve only has points between distinct scores.
        self.group_ends = np.flatnonzero(np.concatenate([sorted_scores[1:] != sorted_scores[:-1], [True]]))
        self.positive = positive[self.order].astype(np.float64)

    def replicates(self, weights: np.ndarray) -> np.ndarray:
        """Weighted ROC AUC for every row of ``weights`` (ties count half), shape ``[replicates]``."""
        w = weights[:, self.order]
        tps = np.cumsum(w * self.positive, axis=1)[:, self.group_ends]
        fps = np.cumsum(w * (1.0 - self.positive), axis=1)[:, self.group_ends]
        zeros = np.zeros((len(w), 1))
        tps = np.concatenate([zeros, tps], axis=1)
        fps = np.concatenate([zeros, fps], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            area = np.sum(np.diff(fps, axis=1) * (tps[:, 1:] + tps[:, :-1]) / 2, axis=1)
            return area / (tps[:, -1] * fps[:, -1])


class _Replicator:
    """Per-row terms of the headline metrics of one model, prepared once for many weightings."""

    def __init__(self, task: str, sample: dict[str, np.ndarray], prefix: str):
        self.task = task
        labels = sample["label"]
        if task == "regression":
            residual = labels - sample[prefix + "predictions"]
            self.squared = residual**2
            self.absolute = np.abs(residual)
            return
        probabilities = sample[prefix + "probabilities"]
        self.correct = (sample[prefix + "class_ids"] == labels).astype(np.float64)
        eps = np.finfo(probabilities.dtype).eps
        true_probability = np.clip(probabilities[np.arange(len(labels)), labels], eps, 1 - eps)
        self.log_loss = -np.log(true_probability.astype(np.float64))
        classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
        self._auc_inputs = [(probabilities[:, c], labels == c) for c in classes]
        self._auc_plans: list[_AucPlan] | None = None

    def __call__(self, metric: str, weights: np.ndarray) -> np.ndarray:
        """``[replicates]`` values of ``metric`` under each row of ``weights`` (``[replicates, rows]``)."""
        total = weights.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.task == "regression":
                if metric == "rmse":
                    return np.sqrt(weights @ self.squared / total)
                if metric == "mae":
                    return weights @ self.absolute / total
            else:
                if metric == "accuracy":
                    return weights @ self.correct / total
                if metric == "log_loss":
                    return weights @ self.log_loss / total
                if metric == "roc_auc":
                    if self._auc_plans is None:
                        self._auc_plans = [_AucPlan(scores, positive) for scores, positive in self._auc_inputs]
                    per_class = np.vstack([plan.replicates(weights) for plan in self._auc_plans])
                    return np.nanmean(per_class, axis=0) if len(per_class) > 1 else per_class[0]
        raise ValueError(f"no bootstrap for metric {metric!r} of task {self.task!r}")


def poisson_weights(rows: int, replicates: int, seed: int) -> np.ndarray:
    """``[replicates, rows]`` Poisson(1) bootstrap weights as uint8 (drawn once, shared by every slice)."""
    return np.random.default_rng(seed).poisson(1.0, size=(replicates, rows)).astype(np.uint8)


def intervals(task: str, sample: dict[str, np.ndarray], metrics: list[str], population: int,
              point: dict[str, dict[str, float]], weights: np.ndarray, *,
              confidence: float = 0.95) -> dict[str, dict[str, list[float]]]:
    """Bootstrap intervals of the candidate's, the baseline's and the paired difference's metrics.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        sample: the sampled rows: ``label`` and ``candidate_``/``baseline_`` + ``probabilities``/``class_ids``
            or ``predictions`` (baseline arrays optional).
        metrics: metric names of ``HEADLINE_METRICS[task]`` to bound.
        population: how many rows the sample was drawn from (N).
        point: full-data estimates ``{"candidate": {metric: v}, "baseline": {...}}``.
        weights: ``[replicates, rows of sample]`` bootstrap weights (:func:`poisson_weights`, sliced to the sample).
        confidence: two-sided level, e.g. 0.95.
    Returns:
        ``{metric: {"candidate": [lo, hi], "baseline": [lo, hi], "difference": [lo, hi]}}`` (keys only
        for the models present; ``difference`` is candidate minus baseline).
    """
    n = len(sample["label"])
    if n < 2 or population < 2 or len(weights) == 0:
        return {}
    has_baseline = "baseline" in point and any(key.startswith("baseline_") for key in sample)
    roles = ["candidate", "baseline"] if has_baseline else ["candidate"]
    replicators = {role: _Replicator(task, sample, role + "_") for role in roles}
    draws: dict[str, dict[str, list[np.ndarray]]] = {m: {role: [] for role in roles} for m in metrics}
    for start in range(0, len(weights), _CHUNK):
        chunk = weights[start:start + _CHUNK].astype(np.float64)
        for metric in metrics:
            for role in roles:
                draws[metric][role].append(replicators[role](metric, chunk))
    scale = math.sqrt(n / population)
    ones = np.ones((1, n))
    alpha = (1.0 - confidence) / 2
    out: dict[str, dict[str, list[float]]] = {}
    for metric in metrics:
        centre = {role: replicators[role](metric, ones)[0] for role in roles}
        reps = {role: np.concatenate(draws[metric][role]) for role in roles}
        if len(roles) == 2:
            centre["difference"] = centre["candidate"] - centre["baseline"]
            reps["difference"] = reps["candidate"] - reps["baseline"]
        out[metric] = {}
        for model, values in reps.items():
            if model == "difference":
                estimate = point["candidate"].get(metric, np.nan) - point["baseline"].get(metric, np.nan)
            else:
                estimate = point[model].get(metric, np.nan)
            deviations = values - centre[model]
            deviations = deviations[np.isfinite(deviations)]
            if len(deviations) < 2 or not np.isfinite(estimate):
                continue
            low, high = np.quantile(deviations, [alpha, 1 - alpha]) * scale
            out[metric][model] = [float(estimate + low), float(estimate + high)]
    return out
