"""to_model_inputs: every input form gives the contract's arrays; bad input names the feature and the value."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from kfpc.components.contract import signature
from kfpc.components.contract.signature import ModelInputError

CARD = {
    "label": "y",
    "features": [
        {"name": "city", "input": "city", "dtype": "string"},
        {"name": "price ($)", "input": "price____", "dtype": "float64"},
    ],
}


def _inputs(city, price):
    out = signature.to_model_inputs({"city": city, "price ($)": price}, CARD)
    assert set(out) == {"city", "price____"}
    assert out["city"].dtype == object and all(isinstance(v, bytes) for v in out["city"])
    assert out["price____"].dtype == np.float64
    return out["city"].tolist(), out["price____"]


NAN = float("nan")


@pytest.mark.parametrize(
    ("city", "price", "want_city", "want_price"),
    [
        (["Zürich", None, NAN, ""], [1, None, NAN, " 2.5 "], [b"Z\xc3\xbcrich", b"", b"", b""], [1, NAN, NAN, 2.5]),
        (np.array(["a", "b"]), np.array(["1e3", "-0.5"]), [b"a", b"b"], [1000, -0.5]),
        ([1, 2], np.array([1, 2], dtype=np.int32), [b"1", b"2"], [1, 2]),
        ([True, False], [True, False], [b"true", b"false"], [1, 0]),
        ([3.0, 3.5, NAN], ["1_000", " ", None], [b"3", b"3.5", b""], [1000, NAN, NAN]),  # JSON numbers as categories
        (pd.Series(["a", None]), pd.Series([1.0, None]), [b"a", b""], [1, NAN]),
        (pd.Series(["a", "b"], dtype="category"), pd.Series([1, None], dtype="Int64"), [b"a", b"b"], [1, NAN]),
        (pa.array(["a", None]), pa.chunked_array([pa.array([1, None]), pa.array([2])]), None, [1, NAN, 2]),
        (pa.array(["a", "b", "a"]).dictionary_encode(), pa.array(["1", "", "3"]), [b"a", b"b", b"a"], [1, NAN, 3]),
        ([b"a\x00b", None], [b"1", "inf"], [b"a\x00b", b""], [1, np.inf]),
        ([None, None], [None, None], [b"", b""], [NAN, NAN]),
        (np.array([[1], [2]]), np.array([[1.5], [2]]), [b"1", b"2"], [1.5, 2]),  # [n, 1] columns
        (["a", 1, 2.0, None], [1, "2", 3.5, ""], [b"a", b"1", b"2", b""], [1, 2, 3.5, NAN]),  # mixed objects
        ([], [], [], []),
    ],
)
def test_forms_of_columns(city, price, want_city, want_price):
    if want_city is None:  # lengths differ
        with pytest.raises(ModelInputError, match="different numbers of rows"):
            _inputs(city, price)
        return
    got_city, got_price = _inputs(city, price)
    assert got_city == want_city
    np.testing.assert_array_equal(got_price, np.array(want_price, dtype=np.float64))


@pytest.mark.parametrize(
    ("price", "bad"),
    [
        (["1", "2", "twelve"], "'twelve'"),
        (np.array(["1", "x2"]), "'x2'"),
        (pa.array(["1", None, "3 kg"]), "'3 kg'"),
        ([1.0, {"a": 1}], "{'a': 1}"),
        ([1, "b", 3], "'b'"),
        (pd.Series(["1", "1,5"]), "'1,5'"),
    ],
)
def test_non_numeric_value_names_feature_row_and_value(price, bad):
    with pytest.raises(ModelInputError, match=r"feature 'price \(\$\)' is numeric but row \d+ holds " + _escape(bad)):
        _inputs(["a"] * len(price), price)


def _escape(text: str) -> str:
    import re

    return re.escape(text)


def test_keys_by_input_key_label_ignored_unknown_and_missing():
    out = signature.to_model_inputs({"city": ["a"], "price____": [1.0], "y": ["yes"]}, CARD)
    assert out["price____"].tolist() == [1.0]
    with pytest.raises(ModelInputError, match=r"unknown feature\(s\) \['user_id'\]"):
        signature.to_model_inputs({"city": ["a"], "price ($)": [1.0], "user_id": [7]}, CARD)
    with pytest.raises(ModelInputError, match=r"feature 'price \(\$\)' is missing"):
        signature.to_model_inputs({"city": ["a"]}, CARD)
    with pytest.raises(ModelInputError, match=r"feature 'city': expected one value per row, got shape \(2, 2\)"):
        signature.to_model_inputs({"city": np.array([["a", "b"], ["c", "d"]]), "price ($)": [1.0, 2.0]}, CARD)


def test_vectorized_equals_row_by_row_reference():
    # The row-by-row readers are the reference semantics; the column-wise path must agree on every form.
    rng = np.random.default_rng(0)
    words = np.array(["a", "Zürich", "", "東京", "x y"], dtype=object)
    city = words[rng.integers(0, len(words), 3000)]
    city[rng.random(3000) < 0.2] = None
    price = rng.normal(0, 100, 3000)
    price[rng.random(3000) < 0.2] = np.nan
    as_text = np.where(np.isnan(price), "", price.astype(str)).astype(object)
    for city_form in (city, city.tolist(), pd.Series(city), pa.array(city.tolist())):
        got = signature.to_model_inputs({"city": city_form, "price ($)": as_text}, CARD)
        assert got["city"].tolist() == signature._as_bytes_rows("city", city).tolist()
        np.testing.assert_array_equal(got["price____"], signature._as_float64_rows("price", as_text))
