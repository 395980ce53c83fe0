"""Feeding the model contract's SavedModel: shared by train, evaluation, the model server and tests.

:func:`to_model_inputs` is numpy and Arrow (no TensorFlow import), column-wise: it turns columns of raw values,
as they come from a Parquet table, a pandas frame or a JSON request, into the arrays the ``serving_default``
signature takes. :class:`Predictor` (made by :func:`kfpc.components.contract.load_predictor`) loads the
SavedModel with ``tf.saved_model.load`` (no Keras needed to serve) and predicts from such columns.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kfpc.components import artifacts, types
from kfpc.components.contract import ISO_DATETIME, ModelLocation


class ModelInputError(ValueError):
    """Request columns do not fit the model's signature; the message names the feature and the value."""


def _features(card: Mapping) -> list[dict]:
    features = card.get(types.FEATURES)
    if not features:
        raise ModelInputError("the model card lists no features")
    return features


def _one_per_row(name: str, array: np.ndarray) -> np.ndarray:
    if array.ndim != 1:
        array = array.reshape(-1) if array.ndim > 1 and array.shape[-1] == 1 else array
    if array.ndim != 1:
        raise ModelInputError(f"feature {name!r}: expected one value per row, got shape {array.shape}")
    return array


def _arrow(values: Any) -> pa.Array | None:
    """``values`` as one Arrow array when Arrow can type them (None/NaN -> null), else None (mixed types)."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if isinstance(values, pa.Array):
        return values.dictionary_decode() if pa.types.is_dictionary(values.type) else values
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError):
        return None


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or (
        pa.types.is_large_binary(kind)
    )


def _is_number(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or (
        pa.types.is_null(kind) or pa.types.is_decimal(kind)
    )


def _as_float64(name: str, values: Any) -> np.ndarray:
    if not isinstance(values, pa.Array | pa.ChunkedArray):
        values = _one_per_row(name, np.asarray(values))
        if values.dtype.kind in "fiub":
            return values.astype(np.float64)
    arrow = _arrow(values)
    if arrow is not None and _is_text(arrow.type):
        # Text holding numbers (CSV, JSON strings): blank is missing; anything Arrow cannot parse is left to
        # the row-by-row reader below, which accepts what Python's float() does or names the bad value.
        try:
            text = pc.utf8_trim_whitespace(arrow.cast(pa.large_string()))
            arrow = pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.float64()), text.cast(pa.float64()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            arrow = None
    if arrow is not None and _is_number(arrow.type):
        return arrow.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    if isinstance(values, pa.Array | pa.ChunkedArray):
        values = values.to_pylist()
    return _as_float64_rows(name, values)


def _as_float64_rows(name: str, values: Any) -> np.ndarray:
    """Row by row: mixed Python objects, and the exact row and value when something is not a number."""
    array = _one_per_row(name, np.asarray(values, dtype=object))
    out = np.empty(len(array), dtype=np.float64)
    for i, value in enumerate(array.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[i] = np.nan
        elif isinstance(value, bool | int | float):
            out[i] = float(value)
        elif isinstance(value, str | bytes):
            text = value.decode() if isinstance(value, bytes) else value
            if text.strip() == "":
                out[i] = np.nan
                continue
            try:
                out[i] = float(text)
            except ValueError:
                raise ModelInputError(f"feature {name!r} is numeric but row {i} holds {value!r}") from None
        else:
            raise ModelInputError(f"feature {name!r} is numeric but row {i} holds {value!r}")
    return out


def _as_bytes(name: str, values: Any) -> np.ndarray:
    arrow = None
    if isinstance(values, pa.Array | pa.ChunkedArray):
        arrow = _arrow(values)
    else:
        array = _one_per_row(name, np.asarray(values, dtype=object if isinstance(values, list | tuple) else None))
        if array.dtype.kind in "iub":
            # Integers as their decimal text ("3" matches the category "3"); booleans as "true" / "false".
            arrow = pa.array(array).cast(pa.string())
        elif array.dtype.kind in "USO":
            arrow = _arrow(array)
    if arrow is not None and (pa.types.is_integer(arrow.type) or pa.types.is_boolean(arrow.type)):
        arrow = arrow.cast(pa.string())
    if arrow is not None and pa.types.is_null(arrow.type):
        return np.full(len(arrow), b"", dtype=object)
    if arrow is None or not _is_text(arrow.type):
        # Floats (3.0 from a JSON number is the category "3"), mixed objects, other Arrow types.
        return _as_bytes_rows(name, arrow.to_pylist() if arrow is not None else values)
    binary = pa.large_binary() if pa.types.is_large_string(arrow.type) or pa.types.is_large_binary(arrow.type) else (
        pa.binary()
    )
    return np.asarray(pc.fill_null(arrow.cast(binary), b"").to_numpy(zero_copy_only=False), dtype=object)


def _as_bytes_rows(name: str, values: Any) -> np.ndarray:
    array = _one_per_row(name, np.asarray(values, dtype=object))
    out = np.empty(len(array), dtype=object)
    for i, value in enumerate(array.tolist()):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out[i] = b""
        elif isinstance(value, bytes):
            out[i] = value
        elif isinstance(value, str):
            out[i] = value.encode()
        elif isinstance(value, bool):
            out[i] = str(value).lower().encode()
        elif isinstance(value, float) and value.is_integer():
            out[i] = str(int(value)).encode()  # 3.0 from a JSON number matches the category "3"
        else:
            out[i] = str(value).encode()
    return out


def is_datetime_type(kind: pa.DataType) -> bool:
    """Arrow dates and timestamps (what a CSV's ``2013-01-01`` / ``2013-01-01 05:17:00`` columns become)."""
    return pa.types.is_date(kind) or pa.types.is_timestamp(kind)


def datetime_strings(column: pa.Array) -> pa.Array:
    """A date / timestamp / ISO-text column as ISO text with ``""`` for missing: what a datetime input takes.

    Arrow writes dates as ``2013-01-01`` and timestamps as ``2013-01-01 05:17:00`` (timezone-aware ones in
    their zone's local time, with the offset), which is the value the derived features are computed from.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    return pc.fill_null(column, "")


def _as_datetime_bytes(name: str, values: Any) -> np.ndarray:
    """A datetime feature as ISO text bytes (``b""`` missing): Arrow / numpy / pandas dates and timestamps are
    written as Arrow writes them, text is checked to be an ISO-8601 date."""
    import re

    if not isinstance(values, pa.Array | pa.ChunkedArray):
        array = np.asarray(values, dtype=object if isinstance(values, list | tuple) else None)
        values = _one_per_row(name, array)
    arrow = _arrow(values)
    if arrow is not None and (is_datetime_type(arrow.type) or pa.types.is_null(arrow.type)):
        return np.asarray(datetime_strings(arrow).cast(pa.binary()).to_numpy(zero_copy_only=False), dtype=object)
    out = _as_bytes_rows(name, values if arrow is None else arrow.to_pylist())
    pattern = re.compile(ISO_DATETIME.encode())
    for i, value in enumerate(out.tolist()):
        if value and not pattern.fullmatch(value):
            raise ModelInputError(f"feature {name!r} is a date but row {i} holds {value.decode(errors='replace')!r}; "
                                  "expected ISO-8601 text such as '2013-01-01' or '2013-01-01T05:17:00'")
    return out


def to_model_inputs(columns: Mapping[str, Any], card: Mapping) -> dict[str, np.ndarray]:
    """Arrays for the ``serving_default`` signature from columns of raw values.

    Columns may be keyed by column name or by signature input key (they differ only for names that are
    not identifiers, e.g. ``price ($)`` -> ``price____``). Columns that are not features (the label, ids)
    are an error unless they are the label, which is ignored.

    Args:
        columns: feature -> sequence of values (list, numpy array, pandas Series, Arrow array as list).
            Missing values: None / NaN / ``""``. Booleans are 1/0 for numeric features; datetime features
            take dates, timestamps or ISO-8601 text.
        card: the model card (``kfpc.components.contract.read_card``).
    Returns:
        input key -> ``float64`` array (NaN missing) or ``object`` array of ``bytes`` (``b""`` missing).
    Raises:
        ModelInputError: a feature is missing, a column is unknown, lengths differ, or a numeric feature holds
            a non-numeric value.
    """
    features = _features(card)
    by_key = {}
    for feature in features:
        by_key[feature["name"]] = feature
        by_key[feature.get("input", feature["name"])] = feature
    label = card.get(types.LABEL)
    unknown = [key for key in columns if key not in by_key and key != label]
    if unknown:
        raise ModelInputError(
            f"unknown feature(s) {unknown}; the model takes {[f['name'] for f in features]}"
        )
    result: dict[str, np.ndarray] = {}
    for feature in features:
        key = feature.get("input", feature["name"])
        if feature["name"] in columns:
            values = columns[feature["name"]]
        elif key in columns:
            values = columns[key]
        else:
            raise ModelInputError(f"feature {feature['name']!r} is missing; the model takes {[f['name'] for f in features]}")
        if hasattr(values, "to_numpy") and not isinstance(values, pa.Array | pa.ChunkedArray):
            values = values.to_numpy()  # pandas
        if feature.get("kind") == "datetime":
            result[key] = _as_datetime_bytes(feature["name"], values)
        elif feature["dtype"] == "string":
            result[key] = _as_bytes(feature["name"], values)
        else:
            result[key] = _as_float64(feature["name"], values)
    lengths = {key: len(value) for key, value in result.items()}
    if len(set(lengths.values())) > 1:
        raise ModelInputError(f"features have different numbers of rows: {lengths}")
    return result


class Predictor:
    """A loaded Model artifact: ``.card`` and ``.predict(columns)``. Made by
    :func:`kfpc.components.contract.load_predictor`.

    Attributes:
        card: the model card.
        model_dir: the folder given to the loader.
        location: where the version folder and card were found.
    """

    def __init__(self, location: ModelLocation):
        import tensorflow as tf

        self.model_dir = location.root
        self.location = location
        self.card = artifacts.read_card_file(location.card_path)
        self._loaded = tf.saved_model.load(os.fspath(location.version_dir))
        self._signature = self._loaded.signatures[types.SERVING_SIGNATURE]
        self._tf = tf
        self._input_keys = {f["name"]: f.get("input", f["name"]) for f in _features(self.card)}
        classes = self.card.get(types.CLASSES) or None
        self._class_array = None if classes is None else np.array([str(c) for c in classes], dtype=object)

    def predict(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Predict from raw columns (see :func:`to_model_inputs`).

        Returns:
            classification: ``probabilities`` float32 [n, K], ``class_ids`` int64 [n], ``classes`` str [n];
            regression: ``predictions`` float32 [n].
        """
        return self._run(to_model_inputs(columns, self.card))

    def predict_checked(self, columns: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Predict from columns already checked and typed by the caller, skipping :func:`to_model_inputs`.

        For callers that validate inputs themselves (the model server's request decoder): one column per
        feature, keyed by feature name; ``float64`` arrays (NaN missing) for numeric features and ``object``
        arrays of ``str`` or ``bytes`` (``""`` missing) for string features. Same outputs as :meth:`predict`.
        """
        keys = self._input_keys
        return self._run({keys[name]: values for name, values in columns.items()})

    def _run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        tf = self._tf
        tensors = {
            key: tf.constant(value, dtype=tf.string if value.dtype == object else tf.float64)
            for key, value in inputs.items()
        }
        outputs = {key: value.numpy() for key, value in self._signature(**tensors).items()}
        if "classes" in outputs:
            outputs["classes"] = self._class_names(outputs["classes"], outputs.get("class_ids"))
        return outputs

    def _class_names(self, raw: np.ndarray, class_ids: np.ndarray | None) -> np.ndarray:
        """The ``classes`` output as ``str``: the card's class names indexed by ``class_ids`` (the signature
        gathers them the same way), one shared string per class instead of one decode per row; decoded row
        by row when the card has no classes or disagrees with the model on the first or last row."""
        names = self._class_array
        if names is not None and class_ids is not None and len(raw) and len(class_ids) == len(raw):
            ids = np.asarray(class_ids)
            if ids.min() >= 0 and ids.max() < len(names) and all(
                    names[ids[i]].encode() == raw[i] for i in (0, len(raw) - 1)):
                return names[ids]
        return np.array([c.decode() for c in raw], dtype=object)

