"""Request decoding and validation, response encoding: pure functions, no server."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from kfpc.serving import protocol
from kfpc.serving.protocol import Feature, Limits, RequestError

FEATURES = [Feature("city", "string", "categorical"), Feature("x", "float64"),
            Feature("strict", "float64", allow_missing=False)]


def test_v1_instances_become_contract_columns():
    columns = protocol.decode_v1({"instances": [{"city": "Oslo", "x": 1, "strict": 2.5},
                                                {"city": None, "x": None, "strict": 0}]}, FEATURES)
    assert columns["city"].tolist() == ["Oslo", ""]
    assert columns["x"].dtype == np.float64 and columns["x"][0] == 1.0 and math.isnan(columns["x"][1])
    assert columns["strict"].tolist() == [2.5, 0.0]


def test_v1_columnar_inputs_and_integer_categories():
    columns = protocol.decode_v1({"inputs": {"city": [7, "a", 3.0], "x": [1.5, 2, 3], "strict": [1, 2, 3]}},
                                 FEATURES)
    assert columns["city"].tolist() == ["7", "a", "3"]
    assert columns["x"].tolist() == [1.5, 2.0, 3.0]
    ints = protocol.decode_v2(_v2(city=InferInput("city", [2], "INT64", [2007, 2008])), FEATURES)
    assert ints["city"].tolist() == ["2007", "2008"]


@pytest.mark.parametrize("body, needle", [
    ([], "JSON object"),
    ({"instances": [], "inputs": []}, "exactly one"),
    ({"instances": "x"}, "'instances' must be a list"),
    ({"instances": []}, "no rows"),
    ({"instances": [3]}, "instances[0] must be an object"),
    ({"instances": [{"city": "a", "x": 1}]}, "missing feature 'strict'"),
    ({"instances": [{"city": "a", "x": 1, "strict": 1, "colour": "red"}]}, "unknown feature 'colour'"),
    ({"instances": [{"city": "a", "x": "1", "strict": 1}]}, "instances[0]: feature 'x' must be a number, got '1'"),
    ({"instances": [{"city": "a", "x": True, "strict": 1}]}, "feature 'x' must be a number, got True"),
    ({"instances": [{"city": 1.5, "x": 1, "strict": 1}]}, "feature 'city' must be a string, got 1.5"),
    ({"instances": [{"city": "a", "x": 1, "strict": None}]}, "feature 'strict' is missing"),
    ({"instances": [{"city": "a", "x": 1, "strict": 1}, {"city": "a", "x": 1e400, "strict": 1}]},
     "instances[1]: feature 'x' must be finite, got inf"),
    ({"inputs": {"city": ["a"], "x": [1, 2], "strict": [1]}}, "different lengths"),
    ({"inputs": {"city": "a", "x": [1], "strict": [1]}}, "'inputs.city' must be a list"),
])
def test_v1_rejections_name_the_field_and_value(body, needle):
    with pytest.raises(RequestError) as caught:
        protocol.decode_v1(body, FEATURES)
    assert needle in str(caught.value)


def test_row_and_string_limits():
    rows = [{"city": "a", "x": 1, "strict": 1}] * 11
    with pytest.raises(RequestError, match="11 rows is more than the limit of 10"):
        protocol.decode_v1({"instances": rows}, FEATURES, Limits(max_rows=10))
    with pytest.raises(RequestError, match="'city' is 20 characters long"):
        protocol.decode_v1({"instances": [{"city": "a" * 20, "x": 1, "strict": 1}]}, FEATURES,
                           Limits(max_string_length=10))


def _v2(**overrides) -> InferRequest:
    inputs = {"city": InferInput("city", [2], "BYTES", ["a", "b"]),
              "x": InferInput("x", [2, 1], "FP32", [[1.0], [None]]),
              "strict": InferInput("strict", [2], "INT64", [1, 2])}
    inputs.update(overrides)
    return InferRequest("m", [v for v in inputs.values() if v is not None])


def test_v2_json_inputs():
    columns = protocol.decode_v2(_v2(), FEATURES)
    assert columns["city"].tolist() == ["a", "b"]
    assert columns["x"][0] == 1.0 and math.isnan(columns["x"][1])
    assert columns["strict"].dtype == np.float64


def test_v2_binary_inputs_from_numpy():
    city = InferInput("city", [2], "BYTES")
    city.set_data_from_numpy(np.array([b"a", "bé".encode()], dtype=object), binary_data=True)
    x = InferInput("x", [2], "FP64")
    x.set_data_from_numpy(np.array([0.5, np.nan]), binary_data=True)
    strict = InferInput("strict", [2], "BOOL")
    strict.set_data_from_numpy(np.array([True, False]), binary_data=True)
    request = InferRequest("m", [city, x, strict], raw_inputs=[city._raw_data, x._raw_data, strict._raw_data])
    columns = protocol.decode_v2(request, FEATURES)
    assert columns["city"].tolist() == ["a", "bé"]
    assert columns["strict"].tolist() == [1.0, 0.0]


@pytest.mark.parametrize("overrides, needle", [
    ({"x": None}, "missing feature 'x'"),
    ({"y": InferInput("y", [2], "FP32", [1, 2])}, "unknown feature 'y'"),
    ({"city": InferInput("city", [2], "FP32", [1, 2])}, "'city' is a string feature: datatype must be BYTES"),
    ({"x": InferInput("x", [2], "BYTES", ["1", "2"])}, "'x' is a numeric feature"),
    ({"x": InferInput("x", [2, 2], "FP32", [1, 2, 3, 4])}, "shape must be [rows] or [rows, 1]"),
    ({"x": InferInput("x", [3], "FP32", [1, 2])}, "shape [3] needs 3 values, got 2"),
    ({"x": InferInput("x", [1], "FP32", [1])}, "input 'x' has 1 rows but input 'city' has 2"),
    ({"x": InferInput("x", [2], "FP32", [1, "a"])}, "input 'x'[1]: feature 'x' must be a number, got 'a'"),
    ({"strict": InferInput("strict", [2], "FP64", [1, None])}, "feature 'strict' is missing"),
    ({"strict": InferInput("strict", [2], "BOOL", [1, 0])}, "datatype BOOL but holds 1"),
])
def test_v2_rejections(overrides, needle):
    with pytest.raises(RequestError) as caught:
        protocol.decode_v2(_v2(**overrides), FEATURES)
    assert needle in str(caught.value)


def test_v2_binary_nan_rejected_where_not_allowed():
    strict = InferInput("strict", [2], "FP32")
    strict.set_data_from_numpy(np.array([1.0, np.nan], dtype=np.float32), binary_data=True)
    request = _v2(strict=strict)
    with pytest.raises(RequestError, match="input 'strict'\\[1\\]: feature 'strict' is NaN"):
        protocol.decode_v2(request, FEATURES)


def test_encode_v1_rows_and_v2_outputs():
    outputs = {"probabilities": np.array([[0.2, 0.8]], dtype=np.float32), "class_ids": np.array([1]),
               "classes": np.array([b"yes"], dtype=object)}
    assert protocol.encode_v1(outputs) == {"predictions": [{"probabilities": [pytest.approx(0.2), pytest.approx(0.8)],
                                                            "class_ids": 1, "classes": "yes"}]}
    request = InferRequest("m", [], request_id="r1", request_outputs=[RequestedOutput("classes")])
    response = protocol.encode_v2(outputs, request, "m")
    body, _ = response.to_rest()
    assert body["id"] == "r1" and [o["name"] for o in body["outputs"]] == ["classes"]
    assert body["outputs"][0]["data"] == ["yes"]
    with pytest.raises(RequestError, match="unknown output 'scores'"):
        protocol.encode_v2(outputs, InferRequest("m", [], request_outputs=[RequestedOutput("scores")]), "m")


def test_features_from_card_rejects_untyped_features():
    with pytest.raises(ValueError, match="no dtype"):
        protocol.features_from_card({"features": ["a"]})
    with pytest.raises(ValueError, match="'int32' is not"):
        protocol.features_from_card({"features": [{"name": "a", "dtype": "int32"}]})


# ---------------------------------------------------------------- the v1 JSON codec (fast path + general path)

_ROW = {"city": "Oslo", "x": 1.5, "strict": 2}
_CODEC_BODIES = [
    # the common form: decoded in one pass
    {"instances": [_ROW, {"city": None, "x": None, "strict": -3.25}, {"city": "", "x": 0, "strict": 1e300}]},
    {"instances": [_ROW], "signature_name": "serving_default"},
    {"instances": [{"strict": 1, "x": 2, "city": "Zürich 😀"}]},
    # other forms and refusals: the general path, same columns or the same error
    {"inputs": [_ROW]},
    {"inputs": {"city": ["a", 7], "x": [1, None], "strict": [1, 2]}},
    {"instances": [_ROW], "inputs": [_ROW]},
    {"instances": [dict(_ROW, city=7)]},
    {"instances": [dict(_ROW, city=3.0)]},
    {"instances": [dict(_ROW, city=3.5)]},
    {"instances": [dict(_ROW, x=True)]},
    {"instances": [dict(_ROW, x="1")]},
    {"instances": [dict(_ROW, strict=None)]},
    {"instances": [dict(_ROW, colour="red")]},
    {"instances": [{"city": "a", "x": 1}]},
    {"instances": [_ROW, 3]},
    {"instances": []},
    {"instances": [_ROW] * 11},
    {"instances": [dict(_ROW, city="a" * 11)]},
    {"instances": None},
    {"instances": {"city": "a"}},
    [_ROW],
]
_CODEC_RAW_BODIES = [
    b'{"instances": [{"city": "a", "x": NaN, "strict": 1}]}',
    b'{"instances": [{"city": "a", "x": 1, "strict": NaN}]}',
    b'{"instances": [{"city": "a", "x": 1e999, "strict": 1}]}',
    b'{"instances": [{"city": "a", "x": ' + b"9" * 400 + b', "strict": 1}]}',
    b'{"instances": [{"city": "a", "x": 1, "x": 2, "strict": 1}]}',
    b'{"instances": [{"city": "\\ud800", "x": 1, "strict": 1}]}',
    b'{"instances": [{"city": "\xff", "x": 1, "strict": 1}]}',
    b'{"instances": [{"city": "a", "x": 1, "strict": 1}]',
    b"",
]


def _columns_or_error(decode, body):
    try:
        return decode(body)
    except RequestError as err:
        return str(err)


@pytest.mark.parametrize("body", [json.dumps(b).encode() for b in _CODEC_BODIES] + _CODEC_RAW_BODIES)
def test_v1_json_codec_gives_what_decode_v1_gives(body):
    limits = Limits(max_rows=10, max_string_length=10)
    codec = protocol.V1JsonCodec(FEATURES, limits)
    got = _columns_or_error(codec.decode, body)
    expected = _columns_or_error(lambda b: protocol.decode_v1(protocol.loads_json(b), FEATURES, limits), body)
    if isinstance(expected, str):
        assert got == expected
    else:
        assert isinstance(got, dict) and list(got) == list(expected)
        for name, column in expected.items():
            assert got[name].dtype == column.dtype and got[name].shape == column.shape
            np.testing.assert_array_equal(got[name], column)  # (NaN equals NaN here)


def test_v1_json_codec_decodes_the_common_form_in_one_pass():
    codec = protocol.V1JsonCodec(FEATURES, Limits(max_rows=10, max_string_length=10))
    common = [json.dumps(b).encode() for b in _CODEC_BODIES[:3]]
    assert all(codec.decode_common(body) is not None for body in common)
    others = [json.dumps(b).encode() for b in _CODEC_BODIES[3:]] + _CODEC_RAW_BODIES
    taken = [body for body in others if codec.decode_common(body) is not None]
    # duplicate keys: the last one wins in both paths
    assert taken == [b'{"instances": [{"city": "a", "x": 1, "x": 2, "strict": 1}]}']


def test_v1_json_codec_feature_names_that_are_not_identifiers_and_a_single_feature():
    features = [Feature("body mass (g)", "float64"), Feature("class", "string", allow_missing=False)]
    codec = protocol.V1JsonCodec(features)
    columns = codec.decode_common(b'{"instances": [{"class": "a", "body mass (g)": 3}, {"class": "b", '
                                  b'"body mass (g)": null}]}')
    assert columns["class"].tolist() == ["a", "b"] and columns["body mass (g)"][0] == 3.0
    assert math.isnan(columns["body mass (g)"][1])
    assert codec.decode_common(b'{"instances": [{"class": "", "body mass (g)": 1}]}') is None
    with pytest.raises(RequestError, match="feature 'class' is missing \\(empty\\)"):
        codec.decode(b'{"instances": [{"class": "", "body mass (g)": 1}]}')
    single = protocol.V1JsonCodec([Feature("x", "float64")])
    assert single.decode(b'{"instances": [{"x": 1}, {"x": 2.5}]}')["x"].tolist() == [1.0, 2.5]


@pytest.mark.parametrize("outputs", [
    {"probabilities": np.array([[0.2, 0.8], [np.nan, 1.0]], dtype=np.float32), "class_ids": np.array([1, 1]),
     "classes": np.array([b"yes", "n\u00e9"], dtype=object)},
    {"predictions": np.array([1.5, -2.25e10], dtype=np.float32)},
    {"odd name": np.array([[1], [2]], dtype=np.int64)},
])
def test_v1_json_codec_encodes_what_encode_v1_gives(outputs):
    codec = protocol.V1JsonCodec(FEATURES)
    expected = json.loads(json.dumps(protocol.encode_v1(outputs)).replace("NaN", "null"))
    assert json.loads(codec.encode(outputs)) == expected


def test_a_lone_surrogate_is_a_400_not_a_failed_batch():
    # JSON may escape half of a UTF-16 pair ("\ud800"); Python's json reads it, TensorFlow cannot convert it,
    # and in a batched model call it would fail every request of the batch.
    with pytest.raises(RequestError, match="instances\\[1\\]: feature 'city' is not valid Unicode text"):
        protocol.V1JsonCodec(FEATURES).decode(b'{"instances": [{"city": "a", "x": 1, "strict": 1}, '
                                              b'{"city": "\\ud800", "x": 1, "strict": 1}]}')
    with pytest.raises(RequestError, match="input 'city'\\[0\\]: feature 'city' is not valid Unicode text"):
        protocol.decode_v2(_v2(city=InferInput("city", [2], "BYTES", ["\ud800", "b"])), FEATURES)
