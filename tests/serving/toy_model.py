"""A small SavedModel that honours THE MODEL CONTRACT, for serving tests and the benchmark.

Until training's real trainer is used (see conftest.py), this builds a tf.Module whose
``serving_default`` takes one ``[batch]`` tensor per raw feature (tf.string / tf.float64) and returns
``probabilities``/``class_ids``/``classes`` (classification) or ``predictions`` (regression), with the
model card beside the ``1/`` folder.
"""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

PENGUIN_FEATURES = [
    {"name": "island", "dtype": "string", "kind": "categorical"},
    {"name": "bill_length_mm", "dtype": "float64", "kind": "numeric"},
    {"name": "bill_depth_mm", "dtype": "float64", "kind": "numeric"},
    {"name": "flipper_length_mm", "dtype": "float64", "kind": "numeric"},
    {"name": "body_mass_g", "dtype": "float64", "kind": "numeric"},
    {"name": "sex", "dtype": "string", "kind": "categorical"},
    {"name": "year", "dtype": "float64", "kind": "numeric"},
]
PENGUIN_CLASSES = ["Adelie", "Chinstrap", "Gentoo"]
#: one penguins row as a client sends it
ROW = {"island": "Biscoe", "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
       "body_mass_g": 3750.0, "sex": "male", "year": 2007.0}


def build(model_dir: str | Path, features: list[dict] | None = None, task: str = "multiclass",
          classes: list[str] | None = None, hidden: int = 64, version: str = "1", depth: int = 0) -> Path:
    """Write ``<model_dir>/<version>/saved_model.pb`` and ``<model_dir>/model_card.json``; returns model_dir.

    ``depth`` adds hidden ``[hidden, hidden]`` layers: a model whose call costs milliseconds, like bigger
    real models, for the benchmark.
    """
    features = features or PENGUIN_FEATURES
    classes = (classes or PENGUIN_CLASSES) if task != "regression" else []
    width = len(features)
    outputs = 1 if task == "regression" else len(classes)
    generator = tf.random.Generator.from_seed(7)

    class Toy(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1 = tf.Variable(generator.normal([width, hidden], dtype=tf.float32) * 0.1)
            self.w2 = tf.Variable(generator.normal([hidden, outputs], dtype=tf.float32) * 0.1)
            self.deep = [tf.Variable(generator.normal([hidden, hidden], dtype=tf.float32) * (1.0 / hidden) ** 0.5)
                         for _ in range(depth)]
            self.class_names = tf.constant(classes or ["_"])

        @tf.function(input_signature=[{
            f["name"]: tf.TensorSpec([None], tf.string if f["dtype"] == "string" else tf.float64, name=f["name"])
            for f in features
        }])
        def serve(self, inputs):
            columns = []
            for f in features:
                value = inputs[f["name"]]
                if f["dtype"] == "string":
                    value = tf.cast(tf.strings.to_hash_bucket_fast(value, 97), tf.float32) / 97.0
                else:
                    value = tf.where(tf.math.is_nan(value), tf.zeros_like(value), value)
                    value = tf.cast(tf.math.log1p(tf.abs(value)), tf.float32)
                columns.append(value)
            x = tf.stack(columns, axis=1)
            hidden_state = tf.nn.relu(tf.matmul(x, self.w1))
            for weights in self.deep:
                hidden_state = tf.nn.relu(tf.matmul(hidden_state, weights))
            logits = tf.matmul(hidden_state, self.w2)
            if task == "regression":
                return {"predictions": tf.reshape(logits, [-1])}
            probabilities = tf.nn.softmax(logits)
            class_ids = tf.argmax(probabilities, axis=1)
            return {"probabilities": probabilities, "class_ids": class_ids,
                    "classes": tf.gather(self.class_names, class_ids)}

    module = Toy()
    model_dir = Path(model_dir)
    tf.saved_model.save(module, str(model_dir / version), signatures={"serving_default": module.serve})
    card = {"label": "species" if task != "regression" else "target", "task": task, "classes": classes,
            "features": features, "schema_hash": "toy", "training_statistics_uri": "", "metrics": {},
            "kfpc_version": "test", "hyperparameters": {"hidden": hidden}}
    (model_dir / "model_card.json").write_text(json.dumps(card, indent=2))
    return model_dir
