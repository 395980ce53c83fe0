"""A YDF gradient-boosted trees model as a plain TensorFlow SavedModel (stock ops only), and its export gate.

YDF's own ``to_tensorflow_saved_model`` needs custom ops (``ydf_tf``) that must never be on the serving path.
Instead the trees are flattened into arrays, one entry per node of every tree:

* ``column`` (index into the per-row matrix of YDF columns), ``kind`` (0 numeric ``x >= threshold``,
  1 categorical ``index in set``, 2 ``is missing``, 3 leaf), ``threshold`` (float32, as YDF compares),
  ``missing`` (where a missing value goes: to the positive child or not), ``positive`` / ``negative`` child
  (global node index), ``offset`` into one flat 0/1 array of categorical sets (one entry per dictionary item),
  and ``value`` (leaf value);

and walked with ``tf.gather``/``tf.where`` in a ``tf.while_loop`` (all trees of a batch at once, one step per
level). Strings are looked up in YDF's own categorical dictionary (index 0 = YDF's out-of-dictionary item,
which is where an unseen value goes); ``""`` and NaN are missing and follow each node's missing rule.

:func:`check_export` is the gate: the SavedModel reloaded with TensorFlow alone must agree with YDF's own
predictions within ``1e-5`` on a holdout with missing and unseen values, and every op of its graphs and
function library must be a stock TensorFlow op; otherwise :class:`~kfpc.components.train.gbdt.GbdtError`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from .. import contract
from . import features as F
from . import gbdt
from .gbdt import GbdtError

NUMERIC, CATEGORY, IS_MISSING, LEAF = 0, 1, 2, 3
#: the export gate's tolerance on probabilities / predictions (regression: relative to the label's scale)
TOLERANCE = 1e-5
#: rows walked at once inside the SavedModel (bounds the memory of a large request or evaluation batch)
BLOCK_ROWS = 2048
#: an unseen category in the gate's holdout
UNSEEN = gbdt.UNSEEN_TEXT


def flatten(model, columns: list[gbdt.Column]) -> dict[str, np.ndarray]:
    """Every tree of ``model`` as node arrays (see the module docstring), plus the per-tree output column.

    Args:
        model: the YDF GradientBoostedTreesModel.
        columns: the YDF columns (:func:`gbdt.columns_of`), which fix the column indices.
    Returns:
        ``column, kind, threshold, missing, positive, negative, offset, value`` (per node), ``roots`` and
        ``tree_output`` (per tree), ``bits`` (the categorical sets), ``depth`` (the deepest path).
    """
    from ydf.model.tree import condition as C
    from ydf.model.tree import node as N

    spec_columns = model.data_spec().columns
    index_of = {c.name: i for i, c in enumerate(columns)}
    by_spec_index = {}
    for spec_index, column in enumerate(spec_columns):
        if column.name in index_of:
            by_spec_index[spec_index] = (index_of[column.name], column)
    nodes = {k: [] for k in ("column", "kind", "threshold", "missing", "positive", "negative", "offset", "value")}
    bits: list[int] = []
    roots, depth = [], 0
    per_iteration = max(1, model.num_trees_per_iteration())
    for tree in model.get_all_trees():
        roots.append(len(nodes["kind"]))
        stack = [(tree.root, None, None, 1)]  # (node, parent index, is positive child, depth)
        while stack:
            node, parent, positive, level = stack.pop()
            here = len(nodes["kind"])
            depth = max(depth, level)
            if parent is not None:
                nodes["positive" if positive else "negative"][parent] = here
            for key, value in (("column", 0), ("kind", LEAF), ("threshold", 0.0), ("missing", False),
                               ("positive", here), ("negative", here), ("offset", 0), ("value", 0.0)):
                nodes[key].append(value)
            if isinstance(node, N.Leaf):
                nodes["value"][here] = float(node.value.value)
                continue
            condition = node.condition
            if condition.attribute not in by_spec_index:
                raise GbdtError(f"tree node tests YDF column {condition.attribute}, which is not a model input")
            column_index, column_spec = by_spec_index[condition.attribute]
            nodes["column"][here] = column_index
            nodes["missing"][here] = bool(condition.missing)
            if isinstance(condition, C.NumericalHigherThanCondition):
                nodes["kind"][here] = NUMERIC
                nodes["threshold"][here] = float(np.float32(condition.threshold))
            elif isinstance(condition, C.CategoricalIsInCondition):
                nodes["kind"][here] = CATEGORY
                nodes["offset"][here] = len(bits)
                size = int(column_spec.categorical.number_of_unique_values)
                member = np.zeros(size, dtype=np.int8)
                member[[int(i) for i in condition.mask if int(i) < size]] = 1
                bits.extend(member.tolist())
            elif isinstance(condition, C.IsMissingInCondition):
                nodes["kind"][here] = IS_MISSING
            else:
                raise GbdtError(f"the GBDT export cannot take a {type(condition).__name__} split (column "
                                f"{column_spec.name!r}); only axis-aligned numerical and categorical splits")
            stack.append((node.neg_child, here, False, level + 1))
            stack.append((node.pos_child, here, True, level + 1))
    result = {
        "column": np.asarray(nodes["column"], np.int32), "kind": np.asarray(nodes["kind"], np.int32),
        "threshold": np.asarray(nodes["threshold"], np.float32), "missing": np.asarray(nodes["missing"], bool),
        "positive": np.asarray(nodes["positive"], np.int32), "negative": np.asarray(nodes["negative"], np.int32),
        "offset": np.asarray(nodes["offset"], np.int32), "value": np.asarray(nodes["value"], np.float64),
        "roots": np.asarray(roots, np.int32), "bits": np.asarray(bits or [0], bool),
        "depth": depth, "trees_per_iteration": per_iteration,
    }
    return result


def dictionaries(model, columns: list[gbdt.Column]) -> dict[str, list[str]]:
    """YDF column name -> its categorical dictionary as a list (position = YDF's item index; 0 = OOD)."""
    result = {}
    for column in model.data_spec().columns:
        if any(c.name == column.name and c.categorical for c in columns):
            items = [""] * int(column.categorical.number_of_unique_values)
            for value, item in column.categorical.items.items():
                items[item.index] = value
            result[column.name] = items
    return result


def _build_module(model, spec: F.TrainingSpec):
    import tensorflow as tf

    columns = gbdt.columns_of(spec)
    arrays = flatten(model, columns)
    vocabularies = dictionaries(model, columns)
    task = spec.label.task
    classes = list(spec.label.classes)
    initial = np.asarray(model.initial_predictions(), np.float64).reshape(-1)
    per_iteration = arrays["trees_per_iteration"]
    ydf_classes = list(model.label_classes()) if task != F.REGRESSION else []
    if task != F.REGRESSION and ydf_classes != classes:
        raise GbdtError(f"YDF's classes {ydf_classes} differ from the label's classes {classes}")

    class GbdtModule(tf.Module):
        """Raw features -> the contract's outputs, by walking the flattened trees."""

        def __init__(self):
            super().__init__()
            self.tables = {}
            for name, items in vocabularies.items():
                keys = [v for i, v in enumerate(items) if i > 0]  # item 0 is YDF's out-of-dictionary bucket
                values = [i for i in range(1, len(items))]
                if not keys:
                    keys, values = [UNSEEN], [0]
                self.tables[name] = tf.lookup.StaticHashTable(
                    tf.lookup.KeyValueTensorInitializer(tf.constant(keys, tf.string), tf.constant(values, tf.int64)),
                    default_value=0)
            signature = {
                f.input: tf.TensorSpec([None], tf.string if f.dtype == F.STRING else tf.float64, name=f.input)
                for f in spec.features
            }
            self.serve = tf.function(self._serve, input_signature=[signature])

        def _matrix(self, inputs):
            """``[batch, columns]`` float32: numbers, category indices, datetime parts; NaN missing."""
            values = []
            nan = tf.constant(math.nan, tf.float32)
            derived = {}
            for column in columns:
                feature = column.feature
                x = inputs[feature.input]
                if column.part is not None:
                    if feature.input not in derived:
                        derived[feature.input] = gbdt.datetime_parts_tf(x)
                    part = gbdt.DATETIME_COLUMNS.index(column.part)
                    values.append(tf.cast(derived[feature.input][:, part], tf.float32))
                elif column.categorical:
                    if feature.dtype == F.FLOAT64:
                        missing = tf.math.is_nan(x)
                        huge = tf.abs(x) >= 2.0**53
                        whole = tf.cast(tf.round(tf.where(missing | huge, tf.zeros_like(x), x)), tf.int64)
                        text = tf.where(huge, tf.constant(gbdt.UNSEEN_TEXT), tf.strings.as_string(whole))
                    else:
                        missing = tf.equal(x, "")
                        text = x
                    index = tf.cast(self.tables[column.name].lookup(text), tf.float32)
                    values.append(tf.where(missing, nan, index))
                else:
                    values.append(tf.cast(x, tf.float32))
            return tf.stack(values, axis=1)

        def _scores(self, x):
            """Per-class scores ``[rows, K]`` of a block of rows (K = 1 for binary and regression)."""
            batch = tf.shape(x)[0]
            kind, column = tf.constant(arrays["kind"]), tf.constant(arrays["column"])
            threshold, missing_goes = tf.constant(arrays["threshold"]), tf.constant(arrays["missing"])
            positive, negative = tf.constant(arrays["positive"]), tf.constant(arrays["negative"])
            offset, bits = tf.constant(arrays["offset"]), tf.constant(arrays["bits"])
            roots = tf.constant(arrays["roots"])
            node = tf.tile(roots[None, :], [batch, 1])  # [rows, trees]

            def step(_, node):
                value = tf.gather(x, tf.gather(column, node), batch_dims=1)
                node_kind = tf.gather(kind, node)
                missing = tf.math.is_nan(value)
                numeric = value >= tf.gather(threshold, node)
                item = tf.cast(tf.where(missing | (node_kind != CATEGORY), tf.zeros_like(value), value), tf.int32)
                member = tf.gather(bits, tf.gather(offset, node) + item)
                go = tf.where(node_kind == CATEGORY, member, numeric)
                go = tf.where(node_kind == IS_MISSING, missing, go)
                go = tf.where(missing, tf.gather(missing_goes, node), go)
                child = tf.where(go, tf.gather(positive, node), tf.gather(negative, node))
                return _ + 1, tf.where(node_kind == LEAF, node, child)

            _, node = tf.while_loop(lambda i, _: i < arrays["depth"], step, [tf.constant(0), node])
            leaf = tf.gather(tf.constant(arrays["value"]), node)  # [rows, trees] float64
            return tf.reduce_sum(tf.reshape(leaf, [batch, -1, per_iteration]), axis=1) + tf.constant(initial)

        def _serve(self, inputs):
            x = self._matrix(inputs)
            rows = tf.shape(x)[0]
            # Blocks of rows: the walk holds several [rows, trees] tensors, which for a 65,536-row evaluation
            # batch and thousands of trees would take gigabytes; a block keeps it to a few tens of megabytes.
            blocks = (rows + BLOCK_ROWS - 1) // BLOCK_ROWS
            parts = tf.TensorArray(tf.float64, size=blocks, infer_shape=False,
                                   element_shape=tf.TensorShape([None, per_iteration]))

            def block(i, parts):
                start = i * BLOCK_ROWS
                return i + 1, parts.write(i, self._scores(x[start:start + BLOCK_ROWS]))

            _, parts = tf.while_loop(lambda i, _: i < blocks, block, [tf.constant(0), parts])
            scores = tf.reshape(parts.concat(), [rows, per_iteration])
            if task == F.REGRESSION:
                return {"predictions": tf.cast(scores[:, 0], tf.float32)}
            if task == F.BINARY:
                p = tf.sigmoid(scores[:, 0])
                probabilities = tf.stack([1.0 - p, p], axis=1)
            else:
                probabilities = tf.nn.softmax(scores, axis=-1)
            probabilities = tf.cast(probabilities, tf.float32)
            class_ids = tf.argmax(probabilities, axis=-1, output_type=tf.int64)
            return {"probabilities": probabilities, "class_ids": class_ids,
                    "classes": tf.gather(tf.constant(classes), class_ids)}

    return GbdtModule(), arrays


def export_saved_model(model, spec: F.TrainingSpec, path: str | os.PathLike) -> dict:
    """Write ``path`` (the ``1/`` folder) as a SavedModel with the DNN's ``serving_default`` signature.

    Returns:
        A summary for the card: trees, nodes, depth, categorical-set entries.
    """
    import tensorflow as tf

    module, arrays = _build_module(model, spec)
    concrete = module.serve.get_concrete_function()
    tf.saved_model.save(module, os.fspath(path), signatures={"serving_default": concrete})
    return {"trees": int(len(arrays["roots"])), "nodes": int(len(arrays["kind"])), "depth": int(arrays["depth"]),
            "categorical_set_entries": int(arrays["bits"].size)}


def stock_ops() -> set[str]:
    """Op names TensorFlow itself defines (custom-op libraries never add to ``tf.raw_ops``)."""
    import tensorflow as tf

    return {name for name in dir(tf.raw_ops) if not name.startswith("_")}


def graph_ops(saved_model_dir: str | os.PathLike) -> set[str]:
    """Every op of a SavedModel: its graph defs and every function of their libraries."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((Path(saved_model_dir) / "saved_model.pb").read_bytes())
    ops = set()
    for meta in saved.meta_graphs:
        ops.update(node.op for node in meta.graph_def.node)
        for function in meta.graph_def.library.function:
            ops.update(node.op for node in function.node_def)
    return ops


def holdout(inputs: dict[str, np.ndarray], spec: F.TrainingSpec, rows: int = 256, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows of ``inputs`` plus copies with missing values, unseen categories and out-of-range numbers."""
    rng = np.random.default_rng(seed)
    count = len(next(iter(inputs.values())))
    picked = rng.choice(count, size=min(rows, count), replace=False) if count else np.zeros(0, int)
    base = {k: np.asarray(v)[picked] for k, v in inputs.items()}
    variants = [base]
    for change in ("missing", "unseen", "extreme"):
        copy = {k: v.copy() for k, v in base.items()}
        for feature in spec.features:
            mask = rng.random(len(picked)) < 0.5
            column = copy[feature.input]
            if feature.dtype == F.STRING:
                column = column.astype(object)
                column[mask] = "" if change == "missing" else (UNSEEN if change == "unseen" else "9999-99-99")
            elif change == "missing":
                column[mask] = np.nan
            elif change == "unseen":
                column[mask] = 987654321.0
            else:
                column[mask] = np.where(rng.random(mask.sum()) < 0.5, -1e30, 1e30)
            copy[feature.input] = column
        variants.append(copy)
    return {k: np.concatenate([v[k] for v in variants]) for k in base}


def check_export(model_dir: str | os.PathLike, model, spec: F.TrainingSpec, inputs: dict[str, np.ndarray]) -> dict:
    """The export gate: reload ``model_dir/1`` with TensorFlow alone, compare with YDF, and list the ops.

    Args:
        model_dir: the folder holding ``1/`` (the SavedModel).
        model: the YDF model it was exported from.
        spec: the TrainingSpec.
        inputs: signature inputs to compare on (see :func:`holdout`).
    Returns:
        ``{"rows", "max_abs_diff", "ops"}``.
    Raises:
        GbdtError: a difference above the tolerance, a non-stock op, or a wrong output.
    """
    import tensorflow as tf

    version = contract.version_dir(model_dir)
    unknown = sorted(graph_ops(version) - stock_ops())
    if unknown:
        raise GbdtError(f"{version}: the GBDT SavedModel uses ops that are not stock TensorFlow: {unknown}")
    loaded = tf.saved_model.load(os.fspath(version))
    signature = loaded.signatures["serving_default"]
    feed = {f.input: tf.constant(inputs[f.input].astype(object) if f.dtype == F.STRING else inputs[f.input],
                                 tf.string if f.dtype == F.STRING else tf.float64) for f in spec.features}
    outputs = {k: v.numpy() for k, v in signature(**feed).items()}
    expected = gbdt.predict(model, inputs, spec)
    if spec.label.task == F.REGRESSION:
        got = outputs["predictions"].astype(np.float64)
        # float32 output: compare relative to the label's magnitude
        scale = max(1.0, float(np.max(np.abs(expected))) if len(expected) else 1.0)
        diff = float(np.max(np.abs(got - expected)) / scale) if len(expected) else 0.0
    else:
        got = outputs["probabilities"].astype(np.float64)
        diff = float(np.max(np.abs(got - expected))) if len(expected) else 0.0
        if not np.array_equal(outputs["class_ids"], got.argmax(axis=1)):
            raise GbdtError(f"{version}: class_ids disagree with the probabilities")
    if not diff <= TOLERANCE:
        raise GbdtError(f"{version}: the exported GBDT differs from YDF's own predictions by {diff:.3g} "
                        f"(> {TOLERANCE}) on {len(expected)} holdout rows with missing and unseen values")
    return {"rows": int(len(expected)), "max_abs_diff": diff, "ops": len(graph_ops(version))}
