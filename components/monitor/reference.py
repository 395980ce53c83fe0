"""What the served model is compared with: training statistics per feature, evaluation predictions.

:func:`build_reference` is plain Python over the model card and a statistics proto; :func:`eval_outputs`
runs the model on the eval split (TensorFlow, imported only there) to get the score histogram the server's
``kfpc_prediction_score`` is compared with.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .rules import OTHER, SCORE_BUCKETS, RulesError

#: categories kept by name in a categorical reference (the server keeps 50 per feature as labels)
MAX_CATEGORIES = 20
#: a category below this training share is counted with the rest (``__other__``)
MIN_CATEGORY_SHARE = 0.01


def score_of(outputs: dict, task: str, classes: list) -> np.ndarray | None:
    """The score the server observes per row: positive-class probability (binary), top-class otherwise."""
    if "probabilities" not in outputs:
        return None
    probabilities = np.asarray(outputs["probabilities"], dtype=np.float64)
    if probabilities.ndim == 2 and probabilities.shape[1] == 2 and (task == "binary" or len(classes) == 2):
        return probabilities[:, 1]
    if probabilities.ndim == 2:
        return probabilities.max(axis=1)
    return probabilities.reshape(-1)


def score_shares(scores: np.ndarray) -> list[float]:
    """Shares of ``scores`` in the server's score buckets (``(prev, le]``, as Prometheus counts them)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    scores = scores[np.isfinite(scores)]
    if scores.size == 0:
        raise RulesError("no finite scores to build the reference score histogram from")
    index = np.searchsorted(np.asarray(SCORE_BUCKETS), np.clip(scores, 0.0, 1.0), side="left")
    counts = np.bincount(index, minlength=len(SCORE_BUCKETS))[: len(SCORE_BUCKETS)]
    return [float(c) / scores.size for c in counts]


def _feature_stats(statistics) -> tuple[dict, int]:
    from kfpc.components.schema.core import feature_name

    dataset = statistics.datasets[0] if hasattr(statistics, "datasets") else statistics
    return {feature_name(f): f for f in dataset.features}, int(dataset.num_examples)


def _common(feature):
    kind = feature.WhichOneof("stats")
    return getattr(feature, kind).common_stats if kind else None


def build_reference(card: dict, statistics, *, model_name: str, scores=None, predictions=None,
                    max_categories: int = MAX_CATEGORIES, min_category_share: float = MIN_CATEGORY_SHARE) -> dict:
    """The reference of one served model, JSON-ready.

    Args:
        card: the model card (``task``, ``classes``, ``features``).
        statistics: training statistics (``DatasetFeatureStatisticsList`` or ``DatasetFeatureStatistics``).
        model_name: the served name (the ``model_name`` label).
        scores: the evaluation's per-row scores (classification), for the score histogram; None: no PSI alert.
        predictions: the evaluation's predictions (regression), for the prediction mean.
        max_categories / min_category_share: categories kept by name; the rest become ``__other__``.
    Returns:
        ``{"model_name", "task", "classes", "score_shares"?, "prediction"?, "features": [...]}``; a feature is
        ``{"name", "kind", "missing_share", "mean"?, "std"?, "categories"?}``.
    Raises:
        RulesError: a card feature absent from the statistics (named), or no usable statistics.
    """
    by_name, rows = _feature_stats(statistics)
    if rows <= 0:
        raise RulesError("the training statistics have 0 examples")
    features = []
    for entry in card.get("features") or []:
        name = entry["name"]
        stats = by_name.get(name)
        if stats is None:
            raise RulesError(f"feature {name!r} of the model card is not in the training statistics "
                             f"(they hold {sorted(by_name)[:10]})")
        common = _common(stats)
        missing = float(common.num_missing) / rows if common is not None else 0.0
        item = {"name": name, "missing_share": round(min(max(missing, 0.0), 1.0), 6)}
        if entry.get("dtype") == "string" or stats.WhichOneof("stats") == "string_stats":
            from kfpc.components.schema.core import string_values

            counts = string_values(stats)
            total = sum(counts.values())
            item["kind"] = "categorical"
            if total > 0:
                kept = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]
                kept = {k: v / total for k, v in kept if v / total >= min_category_share and k != OTHER}
                kept = {k: round(v, 6) for k, v in kept.items()}
                kept[OTHER] = round(max(0.0, 1.0 - sum(kept.values())), 6)
                item["categories"] = kept
        else:
            item["kind"] = "numeric"
            if stats.WhichOneof("stats") == "num_stats" and math.isfinite(stats.num_stats.std_dev):
                item["mean"] = float(stats.num_stats.mean)
                item["std"] = float(stats.num_stats.std_dev)
        features.append(item)
    reference = {"model_name": model_name, "task": card.get("task"), "classes": list(card.get("classes") or []),
                 "features": features}
    if scores is not None:
        reference["score_shares"] = [round(s, 6) for s in score_shares(scores)]
        reference["score_count"] = int(np.asarray(scores).size)
    if predictions is not None:
        values = np.asarray(predictions, dtype=np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        if values.size:
            reference["prediction"] = {"mean": float(values.mean()), "std": float(values.std()),
                                       "count": int(values.size)}
    return reference


def eval_outputs(model_dir: str | os.PathLike, data_dir: str | os.PathLike, split: str = "eval",
                 max_rows: int = 200_000) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Scores (classification) or predictions (regression) of the model on a Dataset split (TensorFlow).

    Args:
        model_dir: the Model artifact (``1/saved_model.pb`` + ``model_card.json``).
        data_dir: the Dataset artifact (``Split-<split>/data.parquet``).
        split: the split to predict.
        max_rows: rows read at most (a histogram of 20 buckets needs no more).
    Returns:
        ``(scores, predictions)``, one of them None.
    """
    import pyarrow.parquet as pq

    from kfpc.components import types
    from kfpc.components.contract import load_predictor
    from kfpc.components.contract import read_card as load_model_card

    card = load_model_card(model_dir)
    path = os.path.join(data_dir, types.SPLIT_DIR.format(split=split), types.DATA_FILE)
    if not os.path.exists(path):
        raise RulesError(f"{path}: no {split} split to compute the reference predictions from")
    names = [f["name"] for f in card["features"]]
    table = pq.read_table(path, columns=names)
    table = table.slice(0, max_rows)
    predictor = load_predictor(model_dir)
    scores, values = [], []
    for batch in table.to_batches(max_chunksize=8192):
        outputs = predictor.predict({name: batch.column(name) for name in names})
        score = score_of(outputs, card.get("task", ""), card.get("classes") or [])
        if score is not None:
            scores.append(score)
        elif "predictions" in outputs:
            values.append(np.asarray(outputs["predictions"], dtype=np.float64).reshape(-1))
    return (np.concatenate(scores) if scores else None, np.concatenate(values) if values else None)
