"""Contract-honouring SavedModels whose predictions are known columns of the data (test fixtures).

``binary``: P(class 1) = the ``score`` column. ``multiclass``: probabilities = softmax of ``logit_0..K-1``.
``regression``: prediction = the ``guess`` column. Every model also takes a string feature ``group``
(ignored), so evaluation feeds both dtypes. Scores computed inside TensorFlow are float32, like real
models, and the tests compare against scikit-learn on the outputs of the very same signature.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import tensorflow as tf


def build(model_dir: Path, task: str, classes: list[str] | None = None, label: str = "label",
          suffix: str = "") -> Path:
    """Write ``<model_dir>/1/`` and ``model_card.json``; returns model_dir.

    ``suffix`` is appended to the numeric column names, so two models can read different predictions.
    """
    k = len(classes or [])
    if task == "binary":
        numeric = ["score" + suffix]
    elif task == "multiclass":
        numeric = [f"logit_{i}{suffix}" for i in range(k)]
    else:
        numeric = ["guess" + suffix]
    features = [{"name": n, "input": n, "dtype": "float64", "kind": "numeric"} for n in numeric]
    features.append({"name": "group", "input": "group", "dtype": "string", "kind": "categorical"})
    names = tf.constant(classes or ["_"])

    class Oracle(tf.Module):
        @tf.function(input_signature=[{f["name"]: tf.TensorSpec(
            [None], tf.string if f["dtype"] == "string" else tf.float64, name=f["name"]) for f in features}])
        def serve(self, inputs):
            if task == "regression":
                return {"predictions": tf.cast(inputs[numeric[0]], tf.float32)}
            if task == "binary":
                p = tf.cast(tf.clip_by_value(inputs[numeric[0]], 0.0, 1.0), tf.float32)
                probabilities = tf.stack([1.0 - p, p], axis=1)
            else:
                logits = tf.stack([tf.cast(inputs[n], tf.float32) for n in numeric], axis=1)
                probabilities = tf.nn.softmax(logits)
            class_ids = tf.argmax(probabilities, axis=1)
            return {"probabilities": probabilities, "class_ids": class_ids, "classes": tf.gather(names, class_ids)}

    module = Oracle()
    model_dir = Path(model_dir)
    tf.saved_model.save(module, str(model_dir / "1"), signatures={"serving_default": module.serve})
    card = {"label": label, "task": task, "classes": classes or [], "features": features, "schema_hash": "oracle",
            "training_statistics_uri": "", "metrics": {}, "kfpc_version": "test", "hyperparameters": {}}
    (model_dir / "model_card.json").write_text(json.dumps(card))
    return model_dir


def write_dataset(dataset_dir: Path, frame: pd.DataFrame, split: str = "eval") -> Path:
    """Write ``frame`` as ``<dataset_dir>/Split-<split>/data.parquet`` (small row groups: several batches)."""
    folder = Path(dataset_dir) / f"Split-{split}"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "data.parquet", row_group_size=500)
    return Path(dataset_dir)


def binary_frame(rng: np.random.Generator, n: int, skill: float = 2.0) -> pd.DataFrame:
    """Rows whose ``score`` predicts ``label`` with the given skill; groups a/b/c and a numeric ``size``."""
    labels = rng.random(n) < 0.4
    score = 1 / (1 + np.exp(-(skill * (labels - 0.5) + rng.normal(size=n))))
    group = rng.choice(["a", "b", "c"], size=n, p=[0.5, 0.3, 0.2]).astype(object)
    group[rng.random(n) < 0.05] = None
    return pd.DataFrame({"score": score, "group": group, "size": rng.normal(10, 3, n),
                         "label": np.where(labels, "yes", "no")})
