"""Requests to feature columns and model outputs to responses, for v1 and v2 (Open Inference Protocol).

Pure functions over plain Python / numpy / kserve's ``InferRequest``: no server, no TensorFlow, so
evaluation and tests can use the same transforms. Every rejection is a :class:`RequestError` (kserve's
``InvalidInput``, answered 400) whose message names the field and the value at fault.

Feature columns follow THE MODEL CONTRACT: one 1-D array per feature, ``object`` arrays of ``str``
for string features (``""`` = missing) and ``float64`` for numeric ones (``NaN`` = missing). A feature
the card marks ``"value_type": "bool"`` (a boolean column, trained as 0/1) also takes JSON booleans.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import struct
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

import msgspec
import numpy as np
import orjson
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse, RequestedOutput

from kfpc.components import _redact
from kfpc.components import defaults as D

STRING = "string"
FLOAT64 = "float64"
#: v2 datatypes accepted for numeric features (converted to float64)
NUMERIC_V2_TYPES = {"FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64",
                    "BOOL"}
INTEGER_V2_TYPES = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}
_V2_OUTPUT_TYPES = {"probabilities": "FP32", "class_ids": "INT64", "classes": "BYTES", "predictions": "FP32"}


class RequestError(InvalidInput):
    """The request does not match the model's feature spec; answered 400 with this message."""


@dataclasses.dataclass(frozen=True)
class Feature:
    """One input of the serving signature."""

    name: str
    dtype: str  # "string" | "float64"
    kind: str = "numeric"
    allow_missing: bool = True
    boolean: bool = False  # a boolean column: JSON true / false are read as 1.0 / 0.0


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds on what one request may hold."""

    max_rows: int = D.MAX_ROWS
    max_string_length: int = D.MAX_STRING_LENGTH


def _get(record: Any, key: str, default: Any = None) -> Any:
    if isinstance(record, Mapping):
        return record.get(key, default)
    return getattr(record, key, default)


def features_from_card(card: Any) -> list[Feature]:
    """The feature spec of a model card (dict or object with ``features``).

    Args:
        card: the model card; each feature has ``name`` and ``dtype`` (``string`` | ``float64``), optionally
            ``kind`` and ``allow_missing`` / ``nullable`` (default True: the model imputes missing values).
    Returns:
        the features in signature order.
    """
    features = []
    for item in _get(card, "features") or []:
        if isinstance(item, str):
            raise ValueError(f"model card feature {item!r} has no dtype; expected {{'name', 'dtype', 'kind'}}")
        dtype = str(_get(item, "dtype"))
        if dtype not in (STRING, FLOAT64):
            raise ValueError(f"model card feature {_get(item, 'name')!r}: dtype {dtype!r} is not 'string' or 'float64'")
        allow = _get(item, "allow_missing", _get(item, "nullable", True))
        features.append(Feature(str(_get(item, "name")), dtype, str(_get(item, "kind", "numeric")), bool(allow),
                                dtype == FLOAT64 and _get(item, "value_type") == "bool"))
    if not features:
        raise ValueError("model card lists no features")
    return features


#: longest excerpt of a client's value quoted in an error message
EXCERPT_CHARS = 64


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short, escaped excerpt of a client's value for an error message (:func:`kfpc.components._redact.excerpt`)."""
    return _redact.excerpt(value, limit)


_short = excerpt


def _names(names: Any, limit: int = 10) -> str:
    return _redact.names(names, limit, EXCERPT_CHARS)


# ---------------------------------------------------------------- column builders


_NUMBER_TYPES = frozenset({int, float})
_NUMBER_OR_NONE_TYPES = frozenset({int, float, type(None)})


def _numeric_column(name: str, values: Sequence[Any], feature: Feature, where: str) -> np.ndarray:
    kinds = set(map(type, values))
    if kinds <= _NUMBER_TYPES or (kinds <= _NUMBER_OR_NONE_TYPES and feature.allow_missing):
        # the common case, checked by type in one pass (bool is not int's type here): NumPy converts at once
        try:
            out = np.array(values, dtype=np.float64) if type(None) not in kinds else np.array(
                [math.nan if value is None else value for value in values], dtype=np.float64)
        except OverflowError:  # an int too large for a float: the loop below names it
            pass
        else:
            _check_numeric(name, out, feature, where)
            return out
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values):
        if value is None:
            if not feature.allow_missing:
                raise RequestError(f"{where(i)}: feature {name!r} is missing (null) and the model does not allow it")
            out[i] = math.nan
            continue
        if isinstance(value, bool) and feature.boolean:
            out[i] = 1.0 if value else 0.0
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            expected = "a number or a boolean" if feature.boolean else "a number"
            raise RequestError(f"{where(i)}: feature {name!r} must be {expected}, got {_short(value)}")
        try:
            out[i] = value
        except OverflowError:
            raise RequestError(f"{where(i)}: feature {name!r} is out of the float64 range, got {_short(value)}") from None
    _check_numeric(name, out, feature, where)
    return out


def _check_numeric(name: str, column: np.ndarray, feature: Feature, where: Any) -> None:
    finite = np.isfinite(column)
    if finite.all():
        return
    nan = np.isnan(column)
    bad = np.flatnonzero(~finite & ~nan)
    if bad.size:
        raise RequestError(f"{where(int(bad[0]))}: feature {name!r} must be finite, got {float(column[bad[0]])!r}")
    if not feature.allow_missing:
        raise RequestError(f"{where(int(np.flatnonzero(nan)[0]))}: feature {name!r} is NaN and the model does not "
                           f"allow missing values")


def _string_column(name: str, values: Sequence[Any], feature: Feature, where: Any, limits: Limits) -> np.ndarray:
    if values and set(map(type, values)) == {str} and max(map(len, values)) <= limits.max_string_length and (
            feature.allow_missing or "" not in values) and _utf8(values):
        out = np.empty(len(values), dtype=object)  # (np.array would make a fixed-width unicode array)
        out[:] = values
        return out
    out = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise RequestError(f"{where(i)}: feature {name!r} is not valid UTF-8: {_short(value)}") from None
        if value is None:
            value = ""
        elif isinstance(value, float) and value.is_integer():
            # Integer categories are written as integers ("3"), as training wrote the vocabulary; a JSON
            # writer may send them as 3 or 3.0. Fractional numbers are not categories: rejected below.
            value = str(int(value))
        elif isinstance(value, bool) or not isinstance(value, (str, int)):
            raise RequestError(f"{where(i)}: feature {name!r} must be a string, got {_short(value)}")
        elif isinstance(value, int):
            value = str(value)
        if not _utf8((value,)):  # a lone surrogate ("\ud800" in JSON): TensorFlow cannot take it
            raise RequestError(f"{where(i)}: feature {name!r} is not valid Unicode text: {_short(value)}")
        if value == "" and not feature.allow_missing:
            raise RequestError(f"{where(i)}: feature {name!r} is missing (empty) and the model does not allow it")
        if len(value) > limits.max_string_length:
            raise RequestError(f"{where(i)}: feature {name!r} is {len(value)} characters long, more than the "
                               f"limit of {limits.max_string_length}: {_short(value)}")
        out[i] = value
    return out


def _utf8(values: Sequence[str]) -> bool:
    try:
        "".join(values).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _check_names(given: Sequence[str], features: list[Feature], where: str) -> None:
    known = {f.name for f in features}
    unknown = [name for name in given if name not in known]
    if unknown:
        raise RequestError(f"{where}: unknown feature {_short(unknown[0])}; the model's features are "
                           f"{_names(sorted(known))}")
    present = set(given)
    missing = [f.name for f in features if f.name not in present]
    if missing:
        raise RequestError(f"{where}: missing feature {missing[0]!r} (missing: {_names(missing)}); send null "
                           f"for a missing value")


def _check_rows(rows: int, limits: Limits, where: str) -> None:
    if rows == 0:
        raise RequestError(f"{where}: no rows to predict")
    if rows > limits.max_rows:
        raise RequestError(f"{where}: {rows} rows is more than the limit of {limits.max_rows} rows per request")


# ---------------------------------------------------------------- v1


def decode_v1(body: Any, features: list[Feature], limits: Limits = Limits()) -> dict[str, np.ndarray]:
    """Columns from a v1 body: ``{"instances": [{feature: value}, ...]}`` or ``{"inputs": ...}``.

    ``inputs`` may be a list of feature dicts (like ``instances``) or TF Serving's columnar form
    ``{"inputs": {feature: [values]}}``. ``null`` is a missing value.

    Args:
        body: the parsed JSON body.
        features: the model's feature spec.
        limits: request bounds.
    Returns:
        one column per feature, in the contract's dtypes.
    Raises:
        RequestError: naming the instance, feature and value at fault.
    """
    if not isinstance(body, Mapping):
        raise RequestError(f"request body must be a JSON object with 'instances' or 'inputs', got {_short(body)}")
    keys = [key for key in ("instances", "inputs") if key in body]
    if len(keys) != 1:
        raise RequestError(f"request body must have exactly one of 'instances' or 'inputs', got keys {_names(body)}")
    key = keys[0]
    payload = body[key]
    if isinstance(payload, Mapping) and key == "inputs":
        return _decode_columnar(payload, features, limits, key)
    if not isinstance(payload, list):
        raise RequestError(f"'{key}' must be a list of objects (feature name -> value), got {_short(payload)}")
    _check_rows(len(payload), limits, f"'{key}'")
    names = {f.name for f in features}
    for i, row in enumerate(payload):
        if type(row) is not dict and not isinstance(row, Mapping):
            raise RequestError(f"{key}[{i}] must be an object (feature name -> value), got {_short(row)}")
        if row.keys() != names:
            _check_names(list(row), features, f"{key}[{i}]")

    def where(i: int) -> str:
        return f"{key}[{i}]"

    columns = {}
    for feature in features:
        values = [row[feature.name] for row in payload]
        columns[feature.name] = _column(feature, values, where, limits)
    return columns


def _column(feature: Feature, values: Sequence[Any], where: Any, limits: Limits) -> np.ndarray:
    if feature.dtype == STRING:
        return _string_column(feature.name, values, feature, where, limits)
    return _numeric_column(feature.name, values, feature, where)


def check_datetimes(columns: Mapping[str, np.ndarray], features: Sequence[Feature]) -> None:
    """A datetime feature's text must be an ISO-8601 date or time (``""`` = missing): the model reads anything
    else as missing, so a client sending ``"07/12/2026"`` would get an answer made without the date and never
    know. Every decoder (v1, v2, gRPC) ends here.

    Raises:
        RequestError: naming the feature, the row and a short excerpt of the value.
    """
    for feature in features:
        if feature.kind != "datetime" or feature.name not in columns:
            continue
        for i, value in enumerate(columns[feature.name]):
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            if text and not _iso_datetime().fullmatch(text):
                raise RequestError(f"row {i}: feature {feature.name!r} must be an ISO-8601 date or time such as "
                                   f"'2013-01-01' or '2013-01-01T05:17:00', got {excerpt(text)}")


@functools.cache
def _iso_datetime() -> re.Pattern:
    from kfpc.components.contract import ISO_DATETIME

    return re.compile(ISO_DATETIME)


def _decode_columnar(payload: Mapping, features: list[Feature], limits: Limits, key: str) -> dict[str, np.ndarray]:
    _check_names(list(payload), features, f"'{key}'")
    lengths = {}
    for feature in features:
        values = payload[feature.name]
        if not isinstance(values, list):
            raise RequestError(f"'{key}.{feature.name}' must be a list of values, got {_short(values)}")
        lengths[feature.name] = len(values)
    if len(set(lengths.values())) > 1:
        raise RequestError(f"'{key}': features have different lengths "
                           f"{_names(f'{name}: {n}' for name, n in lengths.items())}")
    _check_rows(next(iter(lengths.values())), limits, f"'{key}'")
    columns = {}
    for feature in features:

        def where(i: int, name: str = feature.name) -> str:
            return f"{key}.{name}[{i}]"

        columns[feature.name] = _column(feature, payload[feature.name], where, limits)
    return columns


def encode_v1(outputs: Mapping[str, np.ndarray]) -> dict:
    """The v1 response: ``{"predictions": [{output: value}, ...]}``, one object per row (TF Serving's row form).

    Args:
        outputs: signature outputs (``probabilities``/``class_ids``/``classes`` or ``predictions``).
    Returns:
        a JSON-ready dict.
    """
    names = list(outputs)
    columns = [_to_list(outputs[name]) for name in names]
    return {"predictions": [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]}


def _to_list(array: np.ndarray) -> list:
    array = np.asarray(array)
    if array.dtype == object or array.dtype.kind == "S":
        values = array.tolist()
        if set(map(type, values)) == {str}:  # (class names already decoded: no pass per row)
            return values
        return [v.decode("utf-8") if isinstance(v, bytes) else v for v in values]
    return array.tolist()


class V1JsonCodec:
    """v1 JSON bodies straight to feature columns, and outputs straight to v1 JSON, for one model.

    The common request, ``{"instances": [{feature: value}, ...]}`` with every value of its feature's
    type, is parsed and checked in one pass of msgspec's C decoder against a struct built from the
    feature spec: feature names, value types, nulls where the model allows them, string lengths and
    the row limit. Anything it refuses (an error, or a form it does not cover: ``inputs``, ``NaN``
    literals, integer categories, numbers out of range...) takes the general path, :func:`loads_json`
    then :func:`decode_v1`, which accepts every form the protocol allows and names the field at fault
    otherwise. Both paths give the same columns for a request (tested).

    Args:
        features: the model's feature spec.
        limits: request bounds.
    """

    def __init__(self, features: list[Feature], limits: Limits = Limits()):
        self.features = features
        self.limits = limits
        fields = []
        for i, feature in enumerate(features):
            if feature.dtype == STRING:
                length = msgspec.Meta(min_length=0 if feature.allow_missing else 1,
                                      max_length=limits.max_string_length)
                kind: Any = Annotated[str, length]
            elif feature.boolean:
                kind = float | bool  # (booleans become 1.0 / 0.0 below)
            else:
                kind = float  # (msgspec takes JSON integers too, refuses booleans and numbers out of range)
            fields.append((f"f{i}", kind | None if feature.allow_missing else kind))
        self._encoders: dict[tuple[str, ...], Any] = {}
        try:
            row = msgspec.defstruct("Row", fields, rename={f"f{i}": f.name for i, f in enumerate(features)},
                                    forbid_unknown_fields=True, gc=False)
        except ValueError:
            # msgspec cannot match a field named with '"', '\\' or a control character (training keeps any
            # column name): every body of such a model takes the general path, which can.
            self._decoder = None
            return
        rows = Annotated[list[row], msgspec.Meta(min_length=1, max_length=limits.max_rows)]
        # other top-level keys are ignored, as decode_v1 does (TF Serving clients send "signature_name")
        body = msgspec.defstruct("Body", [("instances", rows),
                                          ("inputs", msgspec.Raw | msgspec.UnsetType, msgspec.UNSET)])
        self._decoder = msgspec.json.Decoder(body)

    def decode(self, body: bytes) -> dict[str, np.ndarray]:
        """Feature columns from a v1 JSON body, as :func:`decode_v1` gives them.

        Raises:
            RequestError: not JSON, or a body the feature spec refuses (naming the field and value).
        """
        columns = self.decode_common(body)
        if columns is None:
            return decode_v1(loads_json(body), self.features, self.limits)
        return columns

    def decode_common(self, body: bytes) -> dict[str, np.ndarray] | None:
        """The columns of a body in the common form (see the class), or None for any other body."""
        if self._decoder is None:
            return None
        try:
            parsed = self._decoder.decode(body)
        except (msgspec.MsgspecError, ValueError):  # (invalid UTF-8 is a UnicodeDecodeError)
            return None
        if parsed.inputs is not msgspec.UNSET:  # both keys: decode_v1 names the problem
            return None
        table = zip(*map(msgspec.structs.astuple, parsed.instances), strict=True)  # rows -> columns
        columns = {}
        for feature, values in zip(self.features, table, strict=True):
            if feature.dtype == STRING:
                column = np.empty(len(values), dtype=object)
                column[:] = [value or "" for value in values] if None in values else values
            else:
                column = np.array(values, dtype=np.float64)  # (None -> NaN; msgspec refused NaN and inf)
            columns[feature.name] = column
        return columns

    def encode(self, outputs: Mapping[str, np.ndarray]) -> bytes:
        """The v1 JSON response of :func:`encode_v1`, as bytes."""
        names = tuple(outputs)
        row = self._encoders.get(names)
        if row is None:
            row = msgspec.defstruct("Prediction", [f"o{i}" for i in range(len(names))],
                                    rename={f"o{i}": name for i, name in enumerate(names)})
            self._encoders[names] = row
        rows = list(map(row, *(_to_list(outputs[name]) for name in names)))
        return msgspec.json.encode({"predictions": rows})


def loads_json(data: bytes) -> Any:
    """Parse a JSON body; ``NaN``/``Infinity`` literals (which tritonclient and Python's json write) are read too.

    Raises:
        RequestError: not JSON.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as err:
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: absurdly deep nesting
            raise RequestError(f"request body is not valid JSON: {err}") from None


# ---------------------------------------------------------------- v2


def decode_v2(request: InferRequest, features: list[Feature], limits: Limits = Limits()) -> dict[str, np.ndarray]:
    """Columns from a v2 request: one input per feature, shape ``[n]`` or ``[n, 1]``.

    String features take ``BYTES``; numeric features take ``FP16/FP32/FP64``, integer types or ``BOOL``.
    Inputs may arrive as JSON ``data`` or as binary tensors after the JSON header.

    Args:
        request: kserve's decoded request.
        features: the model's feature spec.
        limits: request bounds.
    Returns:
        one column per feature, in the contract's dtypes.
    Raises:
        RequestError: naming the input and value at fault.
    """
    by_name: dict[str, InferInput] = {}
    for infer_input in request.inputs:
        if infer_input.name in by_name:
            raise RequestError(f"input {_short(infer_input.name)} is given twice")
        by_name[infer_input.name] = infer_input
    _check_names(list(by_name), features, "inputs")
    rows = None
    columns = {}
    for feature in features:
        infer_input = by_name[feature.name]
        column = _v2_column(infer_input, feature, limits)
        if rows is None:
            rows = len(column)
            _check_rows(rows, limits, f"input {feature.name!r}")
        elif len(column) != rows:
            raise RequestError(f"input {feature.name!r} has {len(column)} rows but input "
                               f"{features[0].name!r} has {rows}; every input needs one value per row")
        columns[feature.name] = column
    return columns


def _v2_column(infer_input: InferInput, feature: Feature, limits: Limits) -> np.ndarray:
    name, datatype = feature.name, str(infer_input.datatype).upper()
    shape = infer_input.shape
    if (not isinstance(shape, (list, tuple)) or not shape or len(shape) > 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or (len(shape) == 2 and shape[1] != 1)):
        raise RequestError(f"input {name!r}: shape must be [rows] or [rows, 1], got {_short(shape)}")
    rows = shape[0]
    if rows > limits.max_rows:
        raise RequestError(f"input {name!r}: {rows} rows is more than the limit of {limits.max_rows} rows per request")
    if feature.dtype == STRING:
        if datatype != "BYTES" and datatype not in INTEGER_V2_TYPES:
            raise RequestError(f"input {name!r} is a string feature: datatype must be BYTES (or an integer type "
                               f"for integer categories), got {_short(datatype)}")
    elif datatype not in NUMERIC_V2_TYPES:
        raise RequestError(f"input {name!r} is a numeric feature: datatype must be one of FP32, FP64, INT64, BOOL "
                           f"(or another numeric type), got {_short(datatype)}")

    def where(i: int) -> str:
        return f"input {name!r}[{i}]"

    if infer_input._raw_data is None:  # JSON data: check element types before numpy coerces them
        data = infer_input.data
        if hasattr(data, "tolist"):
            data = data.tolist()
        if not isinstance(data, list):
            raise RequestError(f"input {name!r}: data must be a list, got {_short(data)}")
        flat = _flatten(data)
        if len(flat) != rows:
            raise RequestError(f"input {name!r}: shape {list(shape)} needs {rows} values, got {len(flat)}")
        if feature.dtype == STRING:
            return _string_column(name, flat, feature, where, limits)
        if datatype == "BOOL":
            bad = next((v for v in flat if not isinstance(v, bool) and not (v is None and feature.allow_missing)),
                       _NONE)
            if bad is not _NONE:
                raise RequestError(f"input {name!r} has datatype BOOL but holds {_short(bad)}")
            return np.array([math.nan if v is None else float(v) for v in flat], dtype=np.float64)
        return _numeric_column(name, flat, feature, where)
    array = decode_binary_tensor(bytes(infer_input._raw_data), datatype, rows, f"input {name!r}")
    if feature.dtype == STRING:
        values = array.tolist() if datatype == "BYTES" else [int(v) for v in array.tolist()]
        return _string_column(name, values, feature, where, limits)
    column = array.astype(np.float64)
    _check_numeric(name, column, feature, where)
    return column


_NONE = object()
#: bytes per element of the fixed-size v2 datatypes
_ITEM_TYPES = {"BOOL": np.bool_, "INT8": np.int8, "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
               "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32, "UINT64": np.uint64,
               "FP16": np.float16, "FP32": np.float32, "FP64": np.float64}
_LENGTH = struct.Struct("<I")


def decode_binary_tensor(raw: bytes, datatype: str, rows: int, where: str) -> np.ndarray:
    """The 1-D array of a binary v2 tensor (HTTP after the JSON header, or gRPC ``raw_input_contents``).

    Strict where KServe's own reader is not: a ``BYTES`` element's 4-byte length prefix must stay inside the
    tensor, and the tensor must hold exactly ``rows`` elements with no byte left over.

    Args:
        raw: the tensor's bytes.
        datatype: its v2 datatype.
        rows: the element count its shape declares.
        where: names the input in messages.
    Returns:
        an ``object`` array of ``bytes`` for BYTES, else an array of the datatype.
    Raises:
        RequestError: naming the input, the datatype and the size at fault.
    """
    if datatype == "BYTES":
        values, offset, size = [], 0, len(raw)
        while offset < size:
            if len(values) == rows:
                raise RequestError(f"{where}: BYTES tensor holds more than the {rows} elements of its shape "
                                   f"({size - offset} bytes left at byte {offset})")
            if offset + 4 > size:
                raise RequestError(f"{where}: BYTES tensor ends inside the 4-byte length prefix of element "
                                   f"{len(values)} (byte {offset} of {size})")
            (length,) = _LENGTH.unpack_from(raw, offset)
            offset += 4
            if length > size - offset:
                raise RequestError(f"{where}: BYTES element {len(values)} declares {length} bytes but only "
                                   f"{size - offset} are left in the tensor")
            values.append(raw[offset:offset + length])
            offset += length
        if len(values) != rows:
            raise RequestError(f"{where}: BYTES tensor holds {len(values)} elements, its shape declares {rows}")
        array = np.empty(rows, dtype=object)
        array[:] = values
        return array
    kind = _ITEM_TYPES.get(datatype)
    if kind is None:
        raise RequestError(f"{where}: datatype {_short(datatype)} cannot be sent as binary data")
    itemsize = np.dtype(kind).itemsize
    if len(raw) != rows * itemsize:
        raise RequestError(f"{where}: binary {datatype} tensor of {rows} elements needs {rows * itemsize} bytes, "
                           f"got {len(raw)}")
    return np.frombuffer(raw, dtype=kind)


def request_from_binary(body: bytes, header_length: int, model_name: str) -> InferRequest:
    """An InferRequest from a v2 body with binary tensors after its JSON header
    (``Inference-Header-Content-Length``); the tensors' ``binary_data_size`` must add up to the bytes after
    the header exactly, and each tensor must match its shape (:func:`decode_binary_tensor`).

    Raises:
        RequestError: naming the field or input at fault.
    """
    header = loads_json(body[:header_length])
    check_v2_header(header)
    offset, size = header_length, len(body)
    inputs = []
    for i, tensor in enumerate(header["inputs"]):
        parameters = tensor.get("parameters") or {}
        if "binary_data_size" not in parameters:
            inputs.append(InferInput(name=tensor["name"], shape=tensor["shape"], datatype=tensor["datatype"],
                                     data=tensor["data"], parameters=tensor.get("parameters")))
            continue
        declared = parameters["binary_data_size"]
        if declared > size - offset:
            raise RequestError(f"field 'inputs[{i}].parameters.binary_data_size' is {declared} but only "
                               f"{size - offset} bytes are left in the body")
        shape = tensor["shape"]
        if not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d for d in shape):
            raise RequestError(f"field 'inputs[{i}].shape' must hold non-negative integers, got {_short(shape)}")
        rows = math.prod(shape)
        datatype = str(tensor["datatype"]).upper()
        array = decode_binary_tensor(body[offset:offset + declared], datatype, rows, f"input {_short(tensor['name'])}")
        offset += declared
        inputs.append(InferInput(name=tensor["name"], shape=shape, datatype=tensor["datatype"], data=array.tolist(),
                                 parameters=tensor.get("parameters")))
    if offset != size:
        raise RequestError(f"the body has {size - offset} bytes after its binary tensors (header of "
                           f"{header_length} bytes + the inputs' binary_data_size); expected none")
    outputs = [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in header.get("outputs") or []]
    return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=header.get("id"),
                        parameters=header.get("parameters"), request_outputs=outputs or None)


def _flatten(data: list) -> list:
    if data and all(isinstance(v, list) for v in data):
        if not all(len(v) == 1 for v in data):
            raise RequestError(f"nested data must hold one value per row, got {_short(data[:3])}")
        return [v[0] for v in data]
    return data


#: longest v2 request id (it is echoed in the response)
MAX_ID_CHARS = 256


def check_v2_header(header: Any) -> None:
    """Check the JSON part of a v2 request has the shape of an inference request, before kserve reads it.

    Args:
        header: the parsed JSON object.
    Raises:
        RequestError: naming the field at fault (``inputs[2].datatype``...).
    """
    if not isinstance(header, Mapping):
        raise RequestError(f"request body must be a JSON object with 'inputs', got {_short(header)}")
    inputs = header.get("inputs")
    if not isinstance(inputs, list):
        raise RequestError(f"field 'inputs' must be a list of input tensors, got {_short(inputs)}")
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, Mapping):
            raise RequestError(f"field 'inputs[{i}]' must be an object with name, shape, datatype, data; got "
                               f"{_short(tensor)}")
        for field, kind in (("name", str), ("datatype", str), ("shape", list)):
            if field not in tensor:
                raise RequestError(f"field 'inputs[{i}].{field}' is required")
            if not isinstance(tensor[field], kind):
                raise RequestError(f"field 'inputs[{i}].{field}' must be a {kind.__name__}, got {_short(tensor[field])}")
        parameters = tensor.get("parameters")
        if parameters is not None and not isinstance(parameters, Mapping):
            raise RequestError(f"field 'inputs[{i}].parameters' must be an object, got {_short(parameters)}")
        if "data" in tensor and not isinstance(tensor["data"], list):
            raise RequestError(f"field 'inputs[{i}].data' must be a list, got {_short(tensor['data'])}")
        if "data" not in tensor and not (parameters and "binary_data_size" in parameters):
            raise RequestError(f"field 'inputs[{i}].data' is required (or parameters.binary_data_size for binary data)")
        if parameters and "binary_data_size" in parameters:
            size = parameters["binary_data_size"]
            if isinstance(size, bool) or not isinstance(size, int) or size < 0:
                raise RequestError(f"field 'inputs[{i}].parameters.binary_data_size' must be a non-negative integer, "
                                   f"got {_short(size)}")
    outputs = header.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, Mapping) and isinstance(o.get("name"), str)
                                                    for o in outputs):
            raise RequestError(f"field 'outputs' must be a list of objects with a name, got {_short(outputs)}")
    parameters = header.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise RequestError(f"field 'parameters' must be an object, got {_short(parameters)}")
    if "id" in header:
        # the id is echoed in the response: a string of at most MAX_ID_CHARS characters of valid Unicode
        if not isinstance(header["id"], str):
            raise RequestError(f"field 'id' must be a string, got {_short(header['id'])}")
        if len(header["id"]) > MAX_ID_CHARS or not _utf8((header["id"],)):
            raise RequestError(f"field 'id' must be valid Unicode text of at most {MAX_ID_CHARS} characters, "
                               f"got {_short(header['id'])}")


def request_from_json(header: Mapping, model_name: str) -> InferRequest:
    """An InferRequest from an all-JSON v2 body already checked by :func:`check_v2_header`.

    Raises:
        RequestError: a tensor without ``data`` (a binary tensor needs ``Inference-Header-Content-Length``).
    """
    for i, tensor in enumerate(header["inputs"]):
        if "data" not in tensor:
            raise RequestError(f"field 'inputs[{i}].data' is required: a binary tensor (parameters.binary_data_size) "
                               f"needs the Inference-Header-Content-Length header")
    inputs = [InferInput(name=t["name"], shape=t["shape"], datatype=t["datatype"], data=t["data"],
                         parameters=t.get("parameters")) for t in header["inputs"]]
    outputs = [RequestedOutput(name=o["name"], parameters=o.get("parameters")) for o in header.get("outputs") or []]
    return InferRequest(model_name=model_name, infer_inputs=inputs, request_id=header.get("id"),
                        parameters=header.get("parameters"), request_outputs=outputs or None)


def encode_v2(outputs: Mapping[str, np.ndarray], request: InferRequest, model_name: str) -> InferResponse:
    """The v2 response: one output per signature output, in binary form when the client asked for it.

    Args:
        outputs: signature outputs.
        request: the request (its id, requested outputs and ``binary_data_output`` are honoured).
        model_name: the served model name.
    Returns:
        an InferResponse.
    Raises:
        RequestError: a requested output the model does not have.
    """
    infer_outputs = []
    for name, value in outputs.items():
        array = np.asarray(value)
        datatype = _V2_OUTPUT_TYPES.get(name)
        if array.dtype == object or array.dtype.kind in "SU":
            array = np.array([v if isinstance(v, bytes) else str(v).encode() for v in array.reshape(-1)],
                             dtype=object).reshape(array.shape)
            datatype = "BYTES"
        elif datatype == "FP32":
            array = array.astype(np.float32, copy=False)
        elif datatype == "INT64":
            array = array.astype(np.int64, copy=False)
        infer_output = InferOutput(name=name, shape=list(array.shape), datatype=datatype or _numpy_to_v2(array))
        infer_output.set_data_from_numpy(array, binary_data=False)
        infer_outputs.append(infer_output)
    requested = request.request_outputs or None
    if requested:
        available = set(outputs)
        for output in requested:
            if output.name not in available:
                raise RequestError(f"outputs: unknown output {_short(output.name)}; the model's outputs are "
                                   f"{sorted(available)}")
    return InferResponse(
        response_id=request.id or "",
        model_name=model_name,
        infer_outputs=infer_outputs,
        use_binary_outputs=bool(request.use_binary_outputs),
        requested_outputs=requested,
    )


def _numpy_to_v2(array: np.ndarray) -> str:
    from kserve.utils.numpy_codec import from_np_dtype

    return from_np_dtype(array.dtype) or "BYTES"
