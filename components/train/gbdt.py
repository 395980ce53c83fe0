"""Gradient-boosted trees (YDF, Yggdrasil Decision Forests) on the same spec, parts and contract as the DNN.

The trees train in memory on the train part of ``Split-train`` and early-stop on its validation part (given to
YDF as its ``valid`` dataset, so YDF carves nothing of its own); ``Split-eval`` is never read. YDF sees the
columns the serving signature takes, converted the way :mod:`kfpc.components.train.tree_export` converts them
inside the SavedModel:

* numeric (and boolean 0/1) features: float64, NaN missing (YDF compares in float32);
* string categorical features: the text (``""`` is missing to YDF too); YDF keeps the ``max_vocab_count``
  (255) most frequent values seen at least 5 times, the others go to its out-of-dictionary item;
* integer categorical features: the integer written as text (``"3"``), ``""`` for NaN;
* datetime features: year, month, day of week, day of year (and hour) as numbers, NaN when the text is not
  an ISO calendar date; derived by the same TensorFlow function the SavedModel runs, so training and
  serving cannot disagree.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import numpy as np

from . import features as F

log = logging.getLogger(__name__)

#: hyperparameters of the GBDT family (component defaults); anything else is YDF's default
DEFAULTS = {
    # An upper bound (trees per class): early stopping on the validation part decides, as it decides the
    # early-stopped LightGBM of the quality bench (up to 2,000 rounds). Only large, non-linear tables reach
    # it: flights (235,687 training rows) stopped at a 500-tree cap with eval R² 0.9795, below early-stopped
    # LightGBM's 0.9874; 2,000 trees gave 0.9929. Tables that early-stop are unchanged.
    "num_trees": 2000,
    "max_depth": 6,
    "shrinkage": 0.1,
    # Leaves of at least 20 rows and splits scored with the hessian (LightGBM's min_data_in_leaf and gain):
    # over 10 random splits of 8 small tables (150-3,000 rows) against LightGBM's defaults, YDF's defaults
    # (min_examples 5) averaged +0.002 accuracy/R2 with a worst split of -0.24 (hitters) and -0.05 (college);
    # these two with the refit (REFIT_MAX_ROWS) +0.006, worst -0.14 and -0.013. Larger tables: unchanged
    # within noise (credit_cards, diamonds, flights).
    "min_examples": 20,
    "use_hessian_gain": True,
    "early_stopping_num_trees_look_ahead": 30,
    # Most frequent values kept per categorical column (YDF's dictionary; rarer values share its
    # out-of-dictionary item, as unseen values do). YDF's time per tree grows with the dictionary: on the
    # flights table (235,687 training rows, a 4,043-value column) 500 trees took 585 s with YDF's default of
    # 2,000 and 106 s with 255 (loaded 2-core machine), validation R² 0.9810 and 0.9796. 255 is also the
    # category limit of scikit-learn's histogram GBDT.
    "max_vocab_count": 255,
}
#: Split-train rows (train + validation parts) up to which the trees are refit on all of them once early
#: stopping on the validation part has chosen the number of iterations (scaled by the rows added). Small
#: tables lose a tenth of their rows to the validation part otherwise; beyond this the share lost matters
#: little and the second fit costs as much as the first (diamonds, 43k rows: 4.1 s -> 8.9 s).
REFIT_MAX_ROWS = 50_000
#: columns YDF gets for a datetime feature, in this order (``hour`` only when the time of day varies)
DATETIME_COLUMNS = ("year", "month", "day_of_week", "day_of_year", "hour")


class GbdtError(ValueError):
    """GBDT training or export failed; the message says what and where."""


@dataclasses.dataclass
class Column:
    """One column YDF trains on.

    Attributes:
        name: the YDF column name (the feature's input key, ``<input>__<part>`` for datetime parts).
        feature: the contract feature it comes from.
        categorical: a YDF CATEGORICAL column (else NUMERICAL).
        part: datetime part (``year``...), None otherwise.
    """

    name: str
    feature: F.Feature
    categorical: bool
    part: str | None = None


def columns_of(spec: F.TrainingSpec) -> list[Column]:
    """The YDF columns of a spec, in feature order."""
    result = []
    for feature in spec.features:
        if feature.kind == F.DATETIME:
            parts = DATETIME_COLUMNS if feature.with_time else DATETIME_COLUMNS[:-1]
            result += [Column(f"{feature.input}__{part}", feature, False, part) for part in parts]
        else:
            result.append(Column(feature.input, feature, feature.kind == F.CATEGORICAL))
    return result


def datetime_parts_tf(text):
    """ISO text tensor ``[batch]`` -> float64 ``[batch, 5]``: year, month, day of week (Monday 0), day of year,
    hour; NaN where the text is not an ISO calendar date (the same validity rules as the DNN's encoder)."""
    import tensorflow as tf

    from .model import _DAYS_BEFORE_MONTH, _DAYS_IN_MONTH, _days_from_civil

    valid = tf.strings.regex_full_match(text, F.ISO_DATETIME)
    safe = tf.where(valid, text, tf.constant("1970-01-01"))

    def number(start, length, source=safe):
        return tf.strings.to_number(tf.strings.substr(source, start, length), out_type=tf.int64)

    year, month, day = number(0, 4), number(5, 2), number(8, 2)
    leap = tf.logical_and(tf.equal(year % 4, 0), tf.logical_or(tf.not_equal(year % 100, 0), tf.equal(year % 400, 0)))
    month_days = tf.gather(tf.constant(_DAYS_IN_MONTH, tf.int64), tf.clip_by_value(month - 1, 0, 11)) + tf.cast(
        tf.logical_and(leap, tf.equal(month, 2)), tf.int64)
    valid = valid & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
    separator = tf.strings.substr(safe, 10, 1)
    has_clock = tf.logical_or(tf.equal(separator, "T"), tf.equal(separator, " "))
    hour = number(11, 2, tf.where(has_clock, safe, tf.constant("1970-01-01T00:00")))
    valid = valid & (hour <= 23)
    one = tf.ones_like(month)
    month, day, year = tf.where(valid, month, one), tf.where(valid, day, one), tf.where(valid, year, 1970 * one)
    day_of_week = tf.math.floormod(_days_from_civil(year, month, day) + 3, 7)
    day_of_year = tf.gather(tf.constant(_DAYS_BEFORE_MONTH, tf.int64), month - 1) + day + tf.cast(
        tf.logical_and(leap, month > 2), tf.int64)
    parts = tf.cast(tf.stack([year, month, day_of_week, day_of_year, hour], axis=-1), tf.float64)
    return tf.where(valid[:, None], parts, tf.constant(math.nan, tf.float64))


def ydf_frame(inputs: dict[str, np.ndarray], spec: F.TrainingSpec) -> dict[str, np.ndarray]:
    """YDF columns from signature inputs (input key -> float64 with NaN, or text with ``""`` missing)."""
    frame: dict[str, np.ndarray] = {}
    for feature in spec.features:
        values = inputs[feature.input]
        if feature.kind == F.DATETIME:
            import tensorflow as tf

            text = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
            parts = datetime_parts_tf(tf.constant(text.astype(str), tf.string)).numpy() if len(text) else (
                np.zeros((0, 5)))
            for index, part in enumerate(DATETIME_COLUMNS[:5 if feature.with_time else 4]):
                frame[f"{feature.input}__{part}"] = parts[:, index]
        elif feature.kind == F.CATEGORICAL:
            if feature.dtype == F.FLOAT64:
                numbers = np.asarray(values, dtype=np.float64)
                # beyond 2^53 a float is no integer category; the SavedModel reads it as unseen too
                huge = np.abs(numbers) >= 2.0**53
                text = F.integer_strings(np.where(huge, 0.0, numbers))
                text[huge] = UNSEEN_TEXT
            else:
                text = np.array([v.decode() if isinstance(v, bytes) else v for v in values], dtype=object)
            frame[feature.input] = text.astype(str)  # YDF reads "" as a missing category
        else:
            frame[feature.input] = np.asarray(values, dtype=np.float64)
    return frame


def read_part(path: Path, spec: F.TrainingSpec, carve=None, part: str | None = None
              ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One part of ``Split-train`` (or, without ``carve``, a whole split) in memory: signature inputs and the
    target (class ids, or the label's value) of the rows with a label."""
    from . import input as data_input

    chunks, targets = [], []
    for features, target in data_input.iterate_batches(path, spec, 65_536, carve=carve, part=part):
        chunks.append(features)
        targets.append(target)
    if not chunks:
        raise F.TrainInputError(f"{path}: no labelled rows{f' in the {part} part' if part else ''}")
    inputs = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]}
    target = np.concatenate(targets)
    if spec.label.task == F.REGRESSION:
        target = target.astype(np.float64) * spec.label.std + spec.label.mean
    return inputs, target


def _label_column(target: np.ndarray, spec: F.TrainingSpec) -> np.ndarray:
    if spec.label.task == F.REGRESSION:
        return np.asarray(target, dtype=np.float64)
    return np.asarray(spec.label.classes, dtype=object)[np.asarray(target, dtype=np.int64)]


LABEL_COLUMN = "__kfpc_label__"
#: what an integer category too large to be an integer becomes (never in a dictionary: out-of-dictionary)
UNSEEN_TEXT = "__kfpc_unseen_value__"


def _learner(spec: F.TrainingSpec, seed: int, **parameters):
    """YDF's GBDT learner on the spec's columns and label (``parameters``: the learner's own)."""
    import ydf

    task = ydf.Task.REGRESSION if spec.label.task == F.REGRESSION else ydf.Task.CLASSIFICATION
    return ydf.GradientBoostedTreesLearner(
        label=LABEL_COLUMN, task=task,
        features=[(c.name, ydf.Semantic.CATEGORICAL if c.categorical else ydf.Semantic.NUMERICAL)
                  for c in columns_of(spec)],
        include_all_columns=False,
        label_classes=None if task == ydf.Task.REGRESSION else list(spec.label.classes),
        random_seed=int(seed), **parameters,
    )


def fit(spec: F.TrainingSpec, train: tuple[dict, np.ndarray], validation: tuple[dict, np.ndarray],
        hyperparameters: dict, seed: int):
    """Train YDF gradient-boosted trees, early-stopping on ``validation``.

    Args:
        spec: the TrainingSpec.
        train: (signature inputs, target) of the train part.
        validation: the same of the validation part (YDF's ``valid``: early stopping only).
        hyperparameters: ``DEFAULTS`` keys.
        seed: YDF's random seed.
    Returns:
        The YDF model.
    """
    import ydf

    ydf.verbose(0)
    learner = _learner(spec, seed, **{k: hyperparameters[k] for k in DEFAULTS})

    def dataset(part):
        frame = ydf_frame(part[0], spec)
        frame[LABEL_COLUMN] = _label_column(part[1], spec)
        return frame

    started = time.time()
    model = learner.train(dataset(train), valid=dataset(validation))
    log.info("GBDT: %d trees (%d per iteration) after early stopping on the validation part, %.1f s",
             model.num_trees(), model.num_trees_per_iteration(), time.time() - started)
    return model


def refit(spec: F.TrainingSpec, model, train: tuple[dict, np.ndarray], validation: tuple[dict, np.ndarray],
          hyperparameters: dict, seed: int):
    """The trees of ``model`` (early-stopped on ``validation``) trained again on both parts, no early stopping.

    The number of iterations is the early-stopped one scaled by the rows added (more rows, more iterations
    before the same fit), as for a model retrained on all its data once cross-validation chose its size.

    Returns:
        (the refit YDF model, its iterations).
    """

    iterations = max(1, int(model.num_trees() // max(1, model.num_trees_per_iteration())))
    rows_train, rows_all = len(train[1]), len(train[1]) + len(validation[1])
    scaled = int(math.ceil(iterations * rows_all / max(1, rows_train)))
    parameters = {k: hyperparameters[k] for k in DEFAULTS if k != "early_stopping_num_trees_look_ahead"}
    parameters["num_trees"] = scaled
    learner = _learner(spec, seed, early_stopping="NONE", validation_ratio=0.0, **parameters)
    inputs = {key: np.concatenate([train[0][key], validation[0][key]]) for key in train[0]}
    frame = ydf_frame(inputs, spec)
    frame[LABEL_COLUMN] = _label_column(np.concatenate([train[1], validation[1]]), spec)
    started = time.time()
    refitted = learner.train(frame)
    log.info("GBDT refit on both parts (%d rows): %d iterations (early stopping kept %d), %.1f s",
             rows_all, scaled, iterations, time.time() - started)
    return refitted, scaled


def predict(model, inputs: dict[str, np.ndarray], spec: F.TrainingSpec) -> np.ndarray:
    """YDF's own predictions in the contract's terms: probabilities ``[n, K]`` in the spec's class order, or
    the regression value ``[n]``."""
    raw = np.asarray(model.predict(ydf_frame(inputs, spec)), dtype=np.float64)
    if spec.label.task == F.REGRESSION:
        return raw.reshape(-1)
    classes = list(model.label_classes())
    if raw.ndim == 1:  # binary: the probability of the second class
        raw = np.stack([1.0 - raw, raw], axis=1)
    order = [classes.index(c) for c in spec.label.classes]
    return raw[:, order]


def metrics_of(prediction: np.ndarray, target: np.ndarray, spec: F.TrainingSpec) -> dict[str, float]:
    """The metrics ``core.evaluate_split`` reports, from predictions in memory."""
    rows = len(target)
    if spec.label.task == F.REGRESSION:
        error = prediction.astype(np.float64) - target
        mse = float((error**2).mean())
        variance = float(target.var())
        return {"rows": rows, "mse": mse, "rmse": math.sqrt(mse), "mae": float(np.abs(error).mean()),
                "r2": 1.0 - mse / variance if variance > 0 else 0.0}
    picked = prediction[np.arange(rows), target]
    result = {"rows": rows, "log_loss": float(-np.log(np.clip(picked, 1e-7, 1.0)).mean()),
              "accuracy": float((prediction.argmax(axis=1) == target).mean())}
    if spec.label.task == F.BINARY:
        import keras

        auc = keras.metrics.AUC(num_thresholds=1000)  # the DNN's AUC, so the two families compare like for like
        auc.update_state(target, prediction[:, 1].astype(np.float32))
        result["auc"] = float(auc.result().numpy())
    return result


def described_hyperparameters(model, hyperparameters: dict, seed: int) -> dict:
    """What the card records of a GBDT: the parameters given and what early stopping kept."""
    return {**{k: hyperparameters[k] for k in DEFAULTS}, "seed": seed, "learner": "ydf.GradientBoostedTreesLearner",
            "trees": int(model.num_trees()), "trees_per_iteration": int(model.num_trees_per_iteration()),
            "iterations": int(model.num_trees() // max(1, model.num_trees_per_iteration())),
            "nodes": int(model.num_nodes()),
            # None for a model trained without a validation part (the refit): a card holds no NaN
            "validation_loss": None if model.validation_loss() is None else float(model.validation_loss())}
