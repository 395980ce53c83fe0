"""A model trained on a boolean column and a date column, served over real HTTP: JSON booleans (v1 and v2,
datatype BOOL or numeric) and ISO dates are accepted and predict what the model predicts in-process."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import numpy as np
import pandas as pd
import pytest

from kfpc.serving import protocol

ROWS = [
    {"flag": True, "day": "2014-03-08", "x": 0.0},  # Saturday
    {"flag": False, "day": "2014-03-08", "x": 0.5},
    {"flag": True, "day": "2014-03-10T05:17:00", "x": -0.5},  # Monday
    {"flag": False, "day": "2014-03-10", "x": 0.0},
    {"flag": None, "day": None, "x": 1.0},
]


def post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read().decode())


@pytest.fixture(scope="module")
def typed_model_dir(tmp_path_factory):
    """The real trainer on a bool column and a date column (the label depends on both)."""
    from kfpc.components.ingest.core import ingest
    from kfpc.components.train.core import train

    root = tmp_path_factory.mktemp("typed")
    rng = np.random.default_rng(0)
    rows = 900
    flag = rng.random(rows) < 0.5
    day = pd.Timestamp("2013-01-01") + pd.to_timedelta(rng.integers(0, 730, rows), unit="D")
    x = rng.normal(0, 1, rows)
    score = 2.5 * flag + 2.5 * np.asarray(day.dayofweek >= 5) + 0.3 * x - 2.5
    frame = pd.DataFrame({"flag": np.where(flag, "True", "False"), "day": day.strftime("%Y-%m-%d"), "x": x.round(4),
                          "label": np.where(score + rng.normal(0, 0.3, rows) > 0, "yes", "no")})
    frame.to_csv(root / "typed.csv", index=False)
    ingest(str(root / "typed.csv"), root / "data")
    train(root / "data", root / "model", label="label", epochs=25, patience=6, batch_size=32, learning_rate=0.01,
          seed=3, verbose=0)
    return root / "model"


@pytest.fixture(scope="module")
def expected(typed_model_dir):
    from kfpc.components.contract import load_predictor

    outputs = load_predictor(typed_model_dir).predict({name: [row[name] for row in ROWS] for name in ROWS[0]})
    yes = outputs["probabilities"][:, 1]
    assert yes[0] > 0.9 and yes[3] < 0.1, yes  # the model did learn the flag and the weekend
    return outputs


@pytest.fixture(scope="module")
def typed_server(typed_model_dir):
    from kfpc.serving.local import LocalServer

    env = {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    with LocalServer(typed_model_dir, model_name="typed", env=env) as live:
        yield live


def _probabilities(body: dict) -> np.ndarray:
    if "predictions" in body:
        return np.array([row["probabilities"] for row in body["predictions"]])
    output = next(o for o in body["outputs"] if o["name"] == "probabilities")
    return np.array(output["data"]).reshape(output["shape"])


def test_v1_takes_json_booleans_and_iso_dates(typed_server, expected):
    url = f"{typed_server.url}/v1/models/typed:predict"
    status, body = post(url, {"instances": ROWS})
    assert status == 200, body
    np.testing.assert_allclose(_probabilities(body), expected["probabilities"], rtol=1e-5, atol=1e-6)
    assert [row["classes"] for row in body["predictions"]] == expected["classes"].tolist()
    # 0/1 numbers mean the same; so does the columnar form
    numbers = [dict(row, flag=None if row["flag"] is None else int(row["flag"])) for row in ROWS]
    status, body = post(url, {"instances": numbers})
    assert status == 200, body
    np.testing.assert_allclose(_probabilities(body), expected["probabilities"], rtol=1e-5, atol=1e-6)
    status, body = post(url, {"inputs": {name: [row[name] for row in ROWS] for name in ROWS[0]}})
    assert status == 200, body
    np.testing.assert_allclose(_probabilities(body), expected["probabilities"], rtol=1e-5, atol=1e-6)
    status, body = post(url, {"instances": [dict(ROWS[0], flag="yes")]})
    assert status == 400 and "'flag' must be a number or a boolean" in json.dumps(body), body
    status, body = post(url, {"instances": [dict(ROWS[0], x=True)]})
    assert status == 400 and "'x' must be a number, got True" in json.dumps(body), body


@pytest.mark.parametrize("datatype", ["BOOL", "FP64"])
def test_v2_takes_json_booleans(typed_server, expected, datatype):
    rows = ROWS[:4]  # datatype BOOL has no null
    body = {"inputs": [
        {"name": "flag", "shape": [4], "datatype": datatype, "data": [row["flag"] for row in rows]},
        {"name": "day", "shape": [4], "datatype": "BYTES", "data": [row["day"] for row in rows]},
        {"name": "x", "shape": [4], "datatype": "FP64", "data": [row["x"] for row in rows]},
    ]}
    status, answer = post(f"{typed_server.url}/v2/models/typed/infer", body)
    assert status == 200, answer
    np.testing.assert_allclose(_probabilities(answer), expected["probabilities"][:4], rtol=1e-5, atol=1e-6)
    body["inputs"][0].update(datatype="INT64", data=[int(row["flag"]) for row in rows])
    status, answer = post(f"{typed_server.url}/v2/models/typed/infer", body)
    assert status == 200, answer
    np.testing.assert_allclose(_probabilities(answer), expected["probabilities"][:4], rtol=1e-5, atol=1e-6)


def test_card_marks_boolean_features(typed_model_dir):
    from kfpc.components.contract import read_card

    features = {f.name: f for f in protocol.features_from_card(read_card(typed_model_dir))}
    assert features["flag"].boolean and not features["x"].boolean and not features["day"].boolean
    assert features["day"].dtype == "string" and features["day"].kind == "datetime"


def test_both_v1_decoders_read_booleans_alike():
    features = [protocol.Feature("flag", "float64", boolean=True), protocol.Feature("day", "string", "datetime")]
    codec = protocol.V1JsonCodec(features)
    body = json.dumps({"instances": [{"flag": True, "day": "2014-03-08"}, {"flag": False, "day": None},
                                     {"flag": None, "day": ""}, {"flag": 1, "day": "2014-03-10"}]}).encode()
    fast = codec.decode_common(body)
    assert fast is not None, "booleans stay on the fast path"
    general = protocol.decode_v1(json.loads(body), features)
    np.testing.assert_array_equal(fast["flag"], [1.0, 0.0, np.nan, 1.0])
    np.testing.assert_array_equal(general["flag"], fast["flag"])
    assert fast["day"].tolist() == general["day"].tolist() == ["2014-03-08", "", "", "2014-03-10"]
    strict = [protocol.Feature("flag", "float64", allow_missing=False, boolean=True)]
    with pytest.raises(protocol.RequestError, match="'flag' is missing"):
        protocol.decode_v1({"instances": [{"flag": None}]}, strict)
    # a number that was never a boolean column still refuses booleans, in both decoders
    numbers = [protocol.Feature("x", "float64")]
    with pytest.raises(protocol.RequestError, match="feature 'x' must be a number, got True"):
        protocol.decode_v1({"instances": [{"x": True}]}, numbers)
    assert protocol.V1JsonCodec(numbers).decode_common(b'{"instances": [{"x": true}]}') is None


def test_in_process_model_answers_booleans(typed_model_dir, expected):
    from kfpc.serving.model import KfpcModel, ModelOptions

    model = KfpcModel("typed", str(typed_model_dir), ModelOptions(batching=False))
    model.load()
    response, _ = asyncio.run(model({"instances": ROWS}))
    got = np.array([row["probabilities"] for row in response["predictions"]])
    np.testing.assert_allclose(got, expected["probabilities"], rtol=1e-5, atol=1e-6)


def test_a_date_that_is_not_iso_text_is_refused_naming_the_feature(typed_server):
    """The model reads an unparsable date as missing: answering 200 would hide it from the client."""
    for body, path in (({"instances": [dict(ROWS[0], day="07/12/2026")]}, "/v1/models/typed:predict"),
                       ({"inputs": [{"name": "flag", "shape": [1], "datatype": "FP64", "data": [1.0]},
                                    {"name": "day", "shape": [1], "datatype": "BYTES", "data": ["2013-02-30x"]},
                                    {"name": "x", "shape": [1], "datatype": "FP64", "data": [0.5]}]},
                        "/v2/models/typed/infer")):
        status, answer = post(f"{typed_server.url}{path}", body)
        assert status == 400, answer
        assert "feature 'day' must be an ISO-8601 date or time" in json.dumps(answer), answer
    status, answer = post(f"{typed_server.url}/v1/models/typed:predict", {"instances": [dict(ROWS[0], day="")]})
    assert status == 200, answer  # "" is a missing date
