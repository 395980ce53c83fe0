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


def _auc_replicates(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted ROC AUC for every row of ``weights`` (ties count half), shape ``[replicates]``."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    # Last position of every group of tied scores: the curve only has points between distinct scores.
    group_ends = np.flatnonzero(np.concatenate([sorted_scores[1:] != sorted_scores[:-1], [True]]))
    w = weights[:, order]
    tps = np.cumsum(w * positive[order], axis=1)[:, group_ends]
    fps = np.cumsum(w * ~positive[order], axis=1)[:, group_ends]
    zeros = np.zeros((len(w), 1))
    tps = np.concatenate([zeros, tps], axis=1)
    fps = np.concatenate([zeros, fps], axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        area = np.sum(np.diff(fps, axis=1) * (tps[:, 1:] + tps[:, :-1]) / 2, axis=1)
        return area / (tps[:, -1] * fps[:, -1])


def metric_replicates(task: str, metric: str, sample: dict[str, np.ndarray], prefix: str,
                      weights: np.ndarray) -> np.ndarray:
    """One metric of one model under every weighting (a row of ``weights`` per replicate).

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        metric: a name of ``HEADLINE_METRICS[task]``.
        sample: arrays ``label`` and ``<prefix>probabilities``/``<prefix>class_ids`` or ``<prefix>predictions``.
        prefix: ``candidate_`` or ``baseline_``.
        weights: ``[replicates, rows]``.
    Returns:
        ``[replicates]`` metric values.
    """
    total = weights.sum(axis=1)
    labels = sample["label"]
    with np.errstate(divide="ignore", invalid="ignore"):
        if task == "regression":
            residual = labels - sample[prefix + "predictions"]
            if metric == "rmse":
                return np.sqrt(weights @ residual**2 / total)
            if metric == "mae":
                return weights @ np.abs(residual) / total
        else:
            probabilities = sample[prefix + "probabilities"]
            if metric == "accuracy":
                return weights @ (sample[prefix + "class_ids"] == labels).astype(np.float64) / total
            if metric == "log_loss":
                eps = np.finfo(probabilities.dtype).eps
                true_probability = np.clip(probabilities[np.arange(len(labels)), labels], eps, 1 - eps)
                return weights @ -np.log(true_probability.astype(np.float64)) / total
            if metric == "roc_auc":
                classes = [1] if probabilities.shape[1] == 2 else range(probabilities.shape[1])
                per_class = [_auc_replicates(probabilities[:, c], labels == c, weights) for c in classes]
                return np.nanmean(np.vstack(per_class), axis=0) if len(per_class) > 1 else per_class[0]
    raise ValueError(f"no bootstrap for metric {metric!r} of task {task!r}")


def intervals(task: str, sample: dict[str, np.ndarray], metrics: list[str], population: int,
              point: dict[str, dict[str, float]], *, replicates: int = 300, confidence: float = 0.95,
              seed: int = 0) -> dict[str, dict[str, list[float]]]:
    """Bootstrap intervals of the candidate's, the baseline's and the paired difference's metrics.

    Args:
        task: ``binary``, ``multiclass`` or ``regression``.
        sample: the sampled rows (see :func:`metric_replicates`); baseline arrays are optional.
        metrics: metric names to bound.
        population: how many rows the sample was drawn from (N).
        point: full-data estimates ``{"candidate": {metric: v}, "baseline": {...}}``.
        replicates: bootstrap replicates.
        confidence: two-sided level, e.g. 0.95.
        seed: random seed (intervals are reproducible).
    Returns:
        ``{metric: {"candidate": [lo, hi], "baseline": [lo, hi], "difference": [lo, hi]}}`` (keys only
        for the models present; ``difference`` is candidate minus baseline).
    """
    n = len(sample["label"])
    if n < 2 or population < 2:
        return {}
    has_baseline = any(key.startswith("baseline_") for key in sample) and "baseline" in point
    rng = np.random.default_rng(seed)
    draws: dict[str, dict[str, list[np.ndarray]]] = {m: {"candidate": [], "baseline": []} for m in metrics}
    for start in range(0, replicates, _CHUNK):
        weights = rng.poisson(1.0, size=(min(_CHUNK, replicates - start), n)).astype(np.float64)
        for metric in metrics:
            draws[metric]["candidate"].append(metric_replicates(task, metric, sample, "candidate_", weights))
            if has_baseline:
                draws[metric]["baseline"].append(metric_replicates(task, metric, sample, "baseline_", weights))
    scale = math.sqrt(n / population)
    ones = np.ones((1, n))
    alpha = (1.0 - confidence) / 2
    out: dict[str, dict[str, list[float]]] = {}
    for metric in metrics:
        centre = {"candidate": metric_replicates(task, metric, sample, "candidate_", ones)[0]}
        reps = {"candidate": np.concatenate(draws[metric]["candidate"])}
        if has_baseline:
            centre["baseline"] = metric_replicates(task, metric, sample, "baseline_", ones)[0]
            reps["baseline"] = np.concatenate(draws[metric]["baseline"])
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
