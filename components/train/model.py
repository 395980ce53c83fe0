"""The Keras model built from a :class:`~kfpc.components.train.features.TrainingSpec`, and its export.

Preprocessing lives inside the model, so the SavedModel takes raw features and training and serving
share one graph:

* numeric: ``(x - mean) / std`` with the training statistics, NaN imputed with the mean (0 after
  scaling) plus a missing-indicator input;
* string categorical: vocabulary lookup; index 0 is the out-of-vocabulary bucket, index 1 the missing
  value ``""``; one-hot for small vocabularies, an embedding for large ones;
* integer categorical (a numeric column declared categorical): written as an integer string, then as above;
* datetime (ISO text, ``""`` missing): parsed in the graph into year (standardized), month and day of week
  (one-hot), day of year (sine and cosine), hour (one-hot, when the time of day varies in training) and a
  missing indicator; text that is not an ISO date (or not a real calendar date) counts as missing.

The tower is Dense+ReLU+Dropout layers; the head has one logit per class (softmax, also for binary, so
``probabilities`` always has K columns) or one output for regression (the model learns the standardized
label; the serving signature returns the value in the label's units).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from kfpc.components.train import features as F


class NumericEncoder(keras.layers.Layer):
    """float64 ``[batch]`` -> float32 ``[batch, 2 + bins]``: the standardized value (0 when missing), a missing
    flag, and with ``boundaries`` a piecewise-linear encoding: per bin ``clip((x - low) / (high - low), 0, 1)``
    (0 when missing), so the network sees where a value lies in the training distribution whatever its
    scale or skew. ``log_scale`` standardizes ``log1p(max(x, 0))`` with ``log_center`` / ``log_std`` instead of ``x``
    with ``mean`` / ``std`` (heavy right tails)."""

    def __init__(self, mean: float, std: float, boundaries=None, log_scale: bool = False, log_center: float = 0.0,
                 log_std: float = 1.0, **kwargs):
        # autocast=False: Keras would otherwise cast the float64 input to float32 before we subtract the mean
        super().__init__(autocast=False, **kwargs)
        self.mean, self.std = float(mean), float(std)
        self._center, self._scale = (float(log_center), float(log_std)) if log_scale else (self.mean, self.std)
        self.log_center, self.log_std = float(log_center), float(log_std)
        self.boundaries = [float(b) for b in boundaries] if boundaries else None
        self.log_scale = bool(log_scale)

    def call(self, x):
        x = tf.cast(x, tf.float64)
        missing = tf.math.is_nan(x)
        safe = tf.where(missing, tf.zeros_like(x), x)
        value = tf.math.log1p(tf.maximum(safe, 0.0)) if self.log_scale else safe
        scaled = tf.where(missing, tf.zeros_like(x), (value - self._center) / self._scale)
        # Clip extreme values so one outlier in serving cannot saturate the network.
        scaled = tf.clip_by_value(scaled, -10.0, 10.0)
        parts = [tf.cast(scaled, tf.float32)[:, None], tf.cast(missing, tf.float32)[:, None]]
        if self.boundaries:
            low = tf.constant(self.boundaries[:-1], tf.float64)
            width = tf.constant(np.diff(self.boundaries), tf.float64)
            bins = tf.clip_by_value((safe[:, None] - low) / width, 0.0, 1.0)
            parts.append(tf.cast(tf.where(missing[:, None], tf.zeros_like(bins), bins), tf.float32))
        return tf.concat(parts, axis=-1)

    def get_config(self):
        return {**super().get_config(), "mean": self.mean, "std": self.std, "boundaries": self.boundaries,
                "log_scale": self.log_scale, "log_center": self.log_center, "log_std": self.log_std}


class IntegerAsString(keras.layers.Layer):
    """float64 ``[batch]`` -> the integer written as a string (``""`` for NaN), to share the string lookup."""

    def __init__(self, **kwargs):
        super().__init__(autocast=False, **kwargs)

    def call(self, x):
        x = tf.cast(x, tf.float64)
        missing = tf.math.is_nan(x)
        as_int = tf.cast(tf.round(tf.where(missing, tf.zeros_like(x), x)), tf.int64)
        return tf.where(missing, tf.constant(""), tf.strings.as_string(as_int))


_DAYS_BEFORE_MONTH = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm), int64 tensors."""
    y = year - tf.cast(month <= 2, tf.int64)
    era = tf.math.floordiv(y, 400)
    year_of_era = y - era * 400
    day_of_year = (153 * tf.math.floormod(month + 9, 12) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146097 + day_of_era - 719468


class DateTimeEncoder(keras.layers.Layer):
    """ISO text ``[batch]`` -> float32 ``[batch, 23 (+24)]``: year, month, day of week, day of year, (hour),
    missing flag; every part 0 when the value is missing or not an ISO calendar date."""

    def __init__(self, year_mean: float, year_std: float, with_time: bool = False, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.year_mean, self.year_std, self.with_time = float(year_mean), float(year_std), bool(with_time)

    def call(self, x):
        x = tf.convert_to_tensor(x)
        if x.dtype != tf.string:
            # Keras traces a default save signature with float32 for every input (never served): no date.
            x = tf.strings.as_string(x)
        valid = tf.strings.regex_full_match(x, F.ISO_DATETIME)
        safe = tf.where(valid, x, tf.constant("1970-01-01"))

        def number(start, length, text=safe):
            return tf.strings.to_number(tf.strings.substr(text, start, length), out_type=tf.int64)

        year, month, day = number(0, 4), number(5, 2), number(8, 2)
        leap = tf.logical_and(tf.equal(year % 4, 0), tf.logical_or(tf.not_equal(year % 100, 0), tf.equal(year % 400, 0)))
        month_index = tf.clip_by_value(month - 1, 0, 11)
        month_days = tf.gather(tf.constant(_DAYS_IN_MONTH, tf.int64), month_index) + tf.cast(
            tf.logical_and(leap, tf.equal(month, 2)), tf.int64)
        valid = valid & (month >= 1) & (month <= 12) & (day >= 1) & (day <= month_days)
        separator = tf.strings.substr(safe, 10, 1)
        has_clock = tf.logical_or(tf.equal(separator, "T"), tf.equal(separator, " "))
        hour = number(11, 2, tf.where(has_clock, safe, tf.constant("1970-01-01T00:00")))
        valid = valid & (hour <= 23)
        one = tf.ones_like(month)
        month, day, year = tf.where(valid, month, one), tf.where(valid, day, one), tf.where(valid, year, 1970 * one)
        day_of_week = tf.math.floormod(_days_from_civil(year, month, day) + 3, 7)  # 1970-01-01: Thursday; Monday 0
        day_of_year = tf.gather(tf.constant(_DAYS_BEFORE_MONTH, tf.int64), month - 1) + day + tf.cast(
            tf.logical_and(leap, month > 2), tf.int64)
        present = tf.cast(valid, tf.float32)[:, None]
        scaled = tf.clip_by_value((tf.cast(year, tf.float64) - self.year_mean) / self.year_std, -10.0, 10.0)
        angle = 2.0 * np.pi * tf.cast(day_of_year - 1, tf.float32) / 366.0
        parts = [
            tf.cast(scaled, tf.float32)[:, None],
            tf.one_hot(month - 1, 12),
            tf.one_hot(day_of_week, 7),
            tf.stack([tf.sin(angle), tf.cos(angle)], axis=-1),
        ]
        if self.with_time:
            parts.append(tf.one_hot(tf.where(valid, hour, tf.zeros_like(hour)), 24))
        encoded = tf.concat(parts, axis=-1) * present
        return tf.concat([encoded, 1.0 - present], axis=-1)

    def get_config(self):
        return {**super().get_config(), "year_mean": self.year_mean, "year_std": self.year_std,
                "with_time": self.with_time}


class TabularModel(keras.Model):
    """Raw features (dict of ``[batch]`` tensors by input key) -> logits ``[batch, K]`` or value ``[batch]``."""

    def __init__(self, spec: F.TrainingSpec, hidden_units: Sequence[int] = (64, 32), dropout: float = 0.1, **kwargs):
        super().__init__(autocast=False, **kwargs)
        self.spec = spec
        # One flat list of layers (tracked once by Keras) and, per input, the slice of it that encodes it.
        self.encoder_layers = []
        self._chains: list[tuple[str, int, int]] = []
        for feature in spec.features:
            layer_name = f"encode_{feature.input}"
            if feature.kind == F.NUMERIC:
                chain = [NumericEncoder(feature.mean, feature.std, feature.boundaries, feature.log_scale, feature.log_center,
                                        feature.log_std, name=layer_name)]
            elif feature.kind == F.DATETIME:
                chain = [DateTimeEncoder(feature.mean, feature.std, feature.with_time, name=layer_name)]
            else:
                chain = [IntegerAsString(name=f"as_string_{feature.input}")] if feature.dtype == F.FLOAT64 else []
                vocabulary = [""] + list(feature.vocabulary)
                if feature.encoding == "one_hot":
                    chain.append(
                        keras.layers.StringLookup(
                            vocabulary=vocabulary, num_oov_indices=1, mask_token=None, output_mode="one_hot",
                            name=layer_name,
                        )
                    )
                else:
                    chain.append(
                        keras.layers.StringLookup(
                            vocabulary=vocabulary, num_oov_indices=1, mask_token=None, name=f"lookup_{feature.input}"
                        )
                    )
                    chain.append(keras.layers.Embedding(len(vocabulary) + 1, feature.embedding_dim, name=layer_name))
            self._chains.append((feature.input, len(self.encoder_layers), len(self.encoder_layers) + len(chain)))
            self.encoder_layers.extend(chain)
        self.tower = []
        for i, units in enumerate(hidden_units):
            self.tower.append(keras.layers.Dense(int(units), activation="relu", name=f"hidden_{i}"))
            if dropout:
                self.tower.append(keras.layers.Dropout(float(dropout), name=f"dropout_{i}"))
        outputs = 1 if spec.label.task == F.REGRESSION else len(spec.label.classes)
        # The head stays float32 under mixed precision: softmax / MSE in float16 lose precision.
        self.head = keras.layers.Dense(outputs, dtype="float32", name="head")

    #: set under MultiWorkerMirroredStrategy, see train_step
    expand_step_logs = False

    def train_step(self, data):
        logs = super().train_step(data)
        # Keras 3.15 reduces each replica's step logs with strategy.reduce("MEAN", v, axis=0) under
        # MultiWorkerMirroredStrategy, which fails on scalars. Metric variables are all-reduced on every
        # update, so each replica holds the global value; a [1]-shaped copy reduces to that same value.
        return {k: tf.reshape(v, [1]) for k, v in logs.items()} if self.expand_step_logs else logs

    def test_step(self, data):
        logs = super().test_step(data)
        return {k: tf.reshape(v, [1]) for k, v in logs.items()} if self.expand_step_logs else logs

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Keras (3.15, TF backend) builds metrics under a distribution strategy by reducing the first
        # distributed batch with MEAN, which fails on string features (AddN of strings). The model needs only
        # shapes and dtypes to build its metric and loss state: give it a local two-row batch instead.
        if self._distribute_strategy is None:
            return
        target = tf.zeros([2], tf.float32 if self.spec.label.task == F.REGRESSION else tf.int64)
        with self.distribute_strategy.scope():
            self._symbolic_build(data_batch=(sample_inputs(self.spec), target))

    def call(self, inputs, training=False):
        parts = []
        for key, start, stop in self._chains:
            x = inputs[key]
            for layer in self.encoder_layers[start:stop]:
                x = layer(x)
            parts.append(tf.cast(x, tf.float32))
        x = tf.concat(parts, axis=-1)
        for layer in self.tower:
            x = layer(x, training=training)
        out = self.head(x)
        if self.spec.label.task == F.REGRESSION:
            out = tf.squeeze(out, axis=-1)
        return out


def build_model(spec: F.TrainingSpec, hidden_units: Sequence[int], dropout: float, learning_rate: float) -> TabularModel:
    """Create and compile the model (call under the distribution strategy's scope)."""
    model = TabularModel(spec, hidden_units=hidden_units, dropout=dropout)
    if spec.label.task == F.REGRESSION:
        loss = keras.losses.MeanSquaredError()
        metrics = [keras.metrics.RootMeanSquaredError(name="rmse_standardized")]
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, metrics=metrics)
    return model


def sample_inputs(spec: F.TrainingSpec, rows: int = 2) -> dict[str, tf.Tensor]:
    """A tiny all-missing batch: builds the model's variables without reading data."""
    return {
        f.input: tf.constant([""] * rows) if f.dtype == F.STRING else tf.constant([np.nan] * rows, tf.float64)
        for f in spec.features
    }


def outputs_from_model(model: TabularModel, features: dict, spec: F.TrainingSpec) -> dict[str, tf.Tensor]:
    """The contract's outputs from raw features: probabilities/class_ids/classes, or predictions."""
    raw = model(features, training=False)
    if spec.label.task == F.REGRESSION:
        return {"predictions": tf.cast(raw, tf.float32) * spec.label.std + spec.label.mean}
    probabilities = tf.nn.softmax(tf.cast(raw, tf.float32), axis=-1)
    class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
    classes = tf.gather(tf.constant(spec.label.classes), class_ids)
    return {"probabilities": probabilities, "class_ids": class_ids, "classes": classes}


class ServingModule(tf.Module):
    """What the SavedModel holds: the Keras model's variables and lookup tables, and the signature."""

    def __init__(self, model: TabularModel, spec: F.TrainingSpec):
        super().__init__()
        self.model = model
        # Track the lookup layers explicitly: their tables must be saved as resources of this module.
        self.lookups = [layer for layer in model.encoder_layers if isinstance(layer, keras.layers.StringLookup)]
        self._spec = spec
        signature = {
            f.input: tf.TensorSpec([None], tf.string if f.dtype == F.STRING else tf.float64, name=f.input)
            for f in spec.features
        }
        self.serve = tf.function(self._serve, input_signature=[signature])

    def _serve(self, features):
        return outputs_from_model(self.model, features, self._spec)


def export_saved_model(model: TabularModel, spec: F.TrainingSpec, path: str | os.PathLike) -> None:
    """Write the SavedModel with a ``serving_default`` signature taking raw features by input key.

    Args:
        model: the trained model.
        spec: its TrainingSpec.
        path: the version folder to write (``<model>/1``).
    """
    module = ServingModule(model, spec)
    concrete = module.serve.get_concrete_function()
    tf.saved_model.save(module, os.fspath(path), signatures={"serving_default": concrete})
