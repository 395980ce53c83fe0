"""The server over real HTTP and gRPC on 127.0.0.1: v1, v2, clients we did not write, bad requests, metrics."""

from __future__ import annotations

import concurrent.futures
import json
import re
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from toy_model import ROW

FEATURE_TYPES = {"island": "BYTES", "sex": "BYTES"}


def post(url: str, body, headers: dict | None = None, raw: bool = False) -> tuple[int, dict | str]:
    data = body if raw else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"} if headers is None else headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        text = err.read().decode()
        try:
            return err.code, json.loads(text)
        except ValueError:
            return err.code, text


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def v2_body(rows: list[dict]) -> dict:
    return {"inputs": [{"name": name, "shape": [len(rows)], "datatype": FEATURE_TYPES.get(name, "FP64"),
                        "data": [row[name] for row in rows]} for name in ROW]}


def test_health_and_metadata(server):
    assert get(f"{server.url}/v2/health/ready")[0] == 200
    assert json.loads(get(f"{server.url}/v1/models/penguins")[1])["ready"] is True
    metadata = json.loads(get(f"{server.url}/v2/models/penguins")[1])
    assert {i["name"]: i["datatype"] for i in metadata["inputs"]}["island"] == "BYTES"
    assert [o["name"] for o in metadata["outputs"]] == ["probabilities", "class_ids", "classes"]


def test_v1_instances_and_columnar_inputs_agree(server):
    other = dict(ROW, island="Dream", sex=None, bill_length_mm=None)
    status, rows = post(f"{server.url}/v1/models/penguins:predict", {"instances": [ROW, other]})
    assert status == 200, rows
    assert len(rows["predictions"]) == 2
    first = rows["predictions"][0]
    assert first["classes"] in ("Adelie", "Chinstrap", "Gentoo") and len(first["probabilities"]) == 3
    assert sum(first["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    status, columnar = post(f"{server.url}/v1/models/penguins:predict",
                            {"inputs": {name: [ROW[name], other[name]] for name in ROW}})
    assert status == 200
    assert columnar == rows


def test_v2_json_matches_v1(server):
    status, v1 = post(f"{server.url}/v1/models/penguins:predict", {"instances": [ROW]})
    status, v2 = post(f"{server.url}/v2/models/penguins/infer", dict(v2_body([ROW]), id="req-1"))
    assert status == 200, v2
    outputs = {o["name"]: o for o in v2["outputs"]}
    assert v2["id"] == "req-1"
    assert outputs["classes"]["datatype"] == "BYTES" and outputs["classes"]["data"] == [v1["predictions"][0]["classes"]]
    assert outputs["probabilities"]["shape"] == [1, 3]
    assert outputs["probabilities"]["data"] == pytest.approx(v1["predictions"][0]["probabilities"])


def test_v2_without_content_type_is_read_as_json(server):
    status, body = post(f"{server.url}/v2/models/penguins/infer", v2_body([ROW]), headers={})
    assert status == 200, body


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_v1_body_is_json_whatever_the_content_type(server, content_type):
    # `curl -d '{...}'` sends application/x-www-form-urlencoded; KServe's own v1 endpoint reads it as JSON.
    headers = {} if content_type is None else {"Content-Type": content_type}
    status, body = post(f"{server.url}/v1/models/penguins:predict", {"instances": [ROW]}, headers=headers)
    assert status == 200, body
    assert body["predictions"][0]["classes"] in ("Adelie", "Chinstrap", "Gentoo")


def test_nan_literal_is_a_missing_value_in_v1_and_v2(server):
    body = json.dumps({"instances": [dict(ROW, bill_length_mm=float("nan"))]}).encode()  # Python writes NaN
    assert b"NaN" in body
    status, v1 = post(f"{server.url}/v1/models/penguins:predict", body, raw=True)
    status_null, v1_null = post(f"{server.url}/v1/models/penguins:predict",
                                {"instances": [dict(ROW, bill_length_mm=None)]})
    assert status == status_null == 200 and v1 == v1_null
    status, v2 = post(f"{server.url}/v2/models/penguins/infer",
                      json.dumps(v2_body([dict(ROW, bill_length_mm=float("nan"))])).encode(), raw=True)
    assert status == 200, v2


def _triton_inputs(module, binary: bool):
    kwargs = {"binary_data": binary}
    inputs = []
    for name, value in ROW.items():
        if name in FEATURE_TYPES:
            tensor = module.InferInput(name, [2], "BYTES")
            tensor.set_data_from_numpy(np.array([value, ""], dtype=object), **kwargs)
        else:
            tensor = module.InferInput(name, [2], "FP64")
            tensor.set_data_from_numpy(np.array([value, np.nan if name == "year" else value]), **kwargs)
        inputs.append(tensor)
    return inputs


@pytest.mark.parametrize("binary", [True, False], ids=["binary-defaults", "json"])
def test_tritonclient_http(server, binary):
    import tritonclient.http as triton_http

    client = triton_http.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_model_ready("penguins")
        # With binary=True these are tritonclient's defaults: binary tensors, binary outputs, no Content-Type.
        result = client.infer("penguins", _triton_inputs(triton_http, binary))
        classes = result.as_numpy("classes")
        probabilities = result.as_numpy("probabilities")
    finally:
        client.close()
    assert classes.shape == (2,) and classes[0].decode() in ("Adelie", "Chinstrap", "Gentoo")
    assert probabilities.dtype == np.float32 and probabilities.shape == (2, 3)
    status, v1 = post(f"{server.url}/v1/models/penguins:predict", {"instances": [ROW]})
    assert probabilities[0] == pytest.approx(v1["predictions"][0]["probabilities"], abs=1e-6)


TRITON_GRPC_CLIENT = """
import json, sys
import numpy as np
import tritonclient.grpc as triton_grpc
row = json.loads(sys.argv[2])
client = triton_grpc.InferenceServerClient(url=sys.argv[1])
inputs = []
for name, value in row.items():
    tensor = triton_grpc.InferInput(name, [2], "BYTES" if isinstance(value, str) else "FP64")
    tensor.set_data_from_numpy(np.array([value, value], dtype=object if isinstance(value, str) else np.float64))
    inputs.append(tensor)
result = client.infer("penguins", inputs)
try:
    client.infer("penguins", inputs[1:])
    bad = None
except triton_grpc.InferenceServerException as err:
    bad = [err.status(), err.message()]
print(json.dumps({"probabilities": result.as_numpy("probabilities").tolist(),
                  "class_ids_dtype": str(result.as_numpy("class_ids").dtype), "bad": bad}))
"""


def test_tritonclient_grpc(server):
    # In a child process: tritonclient's and kserve's gRPC protos both define the 'inference' package,
    # and one Python process cannot import both.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", TRITON_GRPC_CLIENT, server.grpc_url, json.dumps(ROW)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["class_ids_dtype"] == "int64"
    status, message = answer["bad"]
    assert status == "StatusCode.INVALID_ARGUMENT" and "missing feature 'island'" in message
    status, v1 = post(f"{server.url}/v1/models/penguins:predict", {"instances": [ROW]})
    assert answer["probabilities"][0] == pytest.approx(v1["predictions"][0]["probabilities"], abs=1e-6)


BAD_V1 = [
    ("not json", b"{instances: [", "request body is not valid JSON"),
    ("Infinity literal", json.dumps({"instances": [dict(ROW, year=float("inf"))]}).encode(),
     "instances[0]: feature 'year' must be finite, got inf"),
    ("body is a list", [ROW], "JSON object"),
    ("no instances", {"rows": [ROW]}, "exactly one of 'instances' or 'inputs'"),
    ("instances not a list", {"instances": ROW}, "'instances' must be a list"),
    ("empty instances", {"instances": []}, "no rows"),
    ("instance not an object", {"instances": [[1, 2, 3]]}, "instances[0] must be an object"),
    ("missing feature", {"instances": [{k: v for k, v in ROW.items() if k != "sex"}]}, "missing feature 'sex'"),
    ("unknown feature", {"instances": [dict(ROW, colour="red")]}, "unknown feature 'colour'"),
    ("string for number", {"instances": [dict(ROW, body_mass_g="heavy")]},
     "feature 'body_mass_g' must be a number, got 'heavy'"),
    ("number for string", {"instances": [dict(ROW, island=4.5)]}, "feature 'island' must be a string, got 4.5"),
    ("bool for number", {"instances": [dict(ROW, year=True)]}, "feature 'year' must be a number, got True"),
    ("list for number", {"instances": [dict(ROW, year=[2007])]}, "feature 'year' must be a number, got [2007]"),
    ("overflow to inf", json.dumps({"instances": [ROW]}).replace("2007.0", "1e999").encode(),
     "feature 'year' must be finite, got inf"),
    ("truncated JSON", b'{"instances": [{"year": 2007', "not valid JSON"),
    ("deeply nested JSON", b"[" * 50_000 + b"]" * 50_000, "not valid JSON"),
    ("not UTF-8", b'{"instances": [{"island": "\xff\xfe"}]}', "not valid JSON"),
    ("too many rows", {"instances": [ROW] * 1001}, "1001 rows is more than the limit of 1000"),
    ("second row bad", {"instances": [ROW, dict(ROW, bill_depth_mm={})]},
     "instances[1]: feature 'bill_depth_mm' must be a number"),
    ("integer beyond float64", json.dumps({"instances": [ROW]}).replace("2007.0", "1" + "0" * 400).encode(),
     "feature 'year' is out of the float64 range"),
    ("string too long", {"instances": [ROW, dict(ROW, island="x" * 5000)]},
     "instances[1]: feature 'island' is 5000 characters long, more than the limit of 4096"),
    ("lone surrogate", json.dumps({"instances": [ROW, dict(ROW, island="\ud800")]}).encode(),
     "instances[1]: feature 'island' is not valid Unicode text"),
]


@pytest.mark.parametrize("name, body, needle", BAD_V1, ids=[case[0] for case in BAD_V1])
def test_bad_v1_requests_are_400_naming_the_problem(server, name, body, needle):
    raw = isinstance(body, bytes)
    status, answer = post(f"{server.url}/v1/models/penguins:predict", body, raw=raw)
    assert status == 400, answer
    assert needle in answer["error"]


def test_nulls_after_the_first_row_are_missing_values(server):
    # (the request decoder's fast path takes columns of one type; a null later in a column takes the other)
    rows = [ROW, dict(ROW, sex=None, body_mass_g=None), dict(ROW, island=None)]
    status, answer = post(f"{server.url}/v1/models/penguins:predict", {"instances": rows})
    assert status == 200 and len(answer["predictions"]) == 3, answer
    status, single = post(f"{server.url}/v1/models/penguins:predict", {"instances": rows[1:2]})
    assert single["predictions"][0]["classes"] == answer["predictions"][1]["classes"]
    assert single["predictions"][0]["probabilities"] == pytest.approx(answer["predictions"][1]["probabilities"], abs=1e-6)


def _v2_with(**changes) -> dict:
    body = v2_body([ROW])
    for name, change in changes.items():
        body["inputs"] = [dict(i, **change) if i["name"] == name else i for i in body["inputs"]]
    return body


BAD_V2 = [
    ("inputs not a list", {"inputs": 3}, "field 'inputs'"),
    ("input without datatype", {"inputs": [{"name": "island", "shape": [1], "data": ["a"]}]}, "datatype"),
    ("missing input", {"inputs": _v2_with()["inputs"][1:]}, "missing feature 'island'"),
    ("unknown input", {"inputs": _v2_with()["inputs"] + [{"name": "colour", "shape": [1], "datatype": "BYTES",
                                                           "data": ["red"]}]}, "unknown feature 'colour'"),
    ("duplicate input", {"inputs": _v2_with()["inputs"] + _v2_with()["inputs"][:1]}, "'island' is given twice"),
    ("FP32 for string", _v2_with(island={"datatype": "FP32", "data": [1.0]}), "datatype must be BYTES"),
    ("BYTES for number", _v2_with(year={"datatype": "BYTES", "data": ["2007"]}), "'year' is a numeric feature"),
    ("unknown datatype", _v2_with(year={"datatype": "COMPLEX", "data": [1]}), "'year' is a numeric feature"),
    ("shape 2-d", _v2_with(year={"shape": [1, 2], "data": [1, 2]}), "shape must be [rows] or [rows, 1]"),
    ("shape vs data", _v2_with(year={"shape": [2]}), "shape [2] needs 2 values, got 1"),
    ("negative shape", _v2_with(year={"shape": [-1]}), "shape must be"),
    ("rows differ", _v2_with(year={"shape": [2], "data": [1, 2]}), "has 2 rows but input 'island' has 1"),
    ("string in FP64 data", _v2_with(year={"data": ["x"]}), "feature 'year' must be a number, got 'x'"),
    ("unknown output", dict(_v2_with(), outputs=[{"name": "scores"}]), "unknown output 'scores'"),
    ("no rows", {"inputs": [dict(i, shape=[0], data=[]) for i in _v2_with()["inputs"]]}, "no rows"),
    ("data not a list", _v2_with(year={"data": 2007}), "field 'inputs[6].data' must be a list"),
    ("shape of booleans", _v2_with(year={"shape": [True]}), "shape must be"),
]


@pytest.mark.parametrize("name, body, needle", BAD_V2, ids=[case[0] for case in BAD_V2])
def test_bad_v2_requests_are_400_naming_the_problem(server, name, body, needle):
    status, answer = post(f"{server.url}/v2/models/penguins/infer", body)
    assert status == 400, answer
    assert needle in answer["error"]


def test_bad_binary_v2_request_is_400(server):
    header = json.dumps({"inputs": [{"name": "year", "shape": [2], "datatype": "FP64",
                                     "parameters": {"binary_data_size": 16}}]}).encode()
    status, answer = post(f"{server.url}/v2/models/penguins/infer", header + b"\x00" * 5, raw=True,
                          headers={"Inference-Header-Content-Length": str(len(header)),
                                   "Content-Type": "application/octet-stream"})
    assert status == 400, answer


def test_oversized_body_is_400_before_parsing(server):
    big = {"instances": [dict(ROW, island="x" * 250_000)]}
    status, answer = post(f"{server.url}/v1/models/penguins:predict", big)
    assert status == 400 and "larger than the limit of 200000 bytes" in answer["error"]


def test_unknown_model_is_404(server):
    assert post(f"{server.url}/v1/models/nope:predict", {"instances": [ROW]})[0] == 404


def test_no_5xx_after_all_bad_requests_and_metrics(server, payload_log):
    # Concurrent requests (batched together) each get their own rows back.
    rows = [dict(ROW, body_mass_g=3000.0 + 100 * i) for i in range(24)]
    singles = [post(f"{server.url}/v1/models/penguins:predict", {"instances": [row]})[1]["predictions"][0]
               for row in rows[:3]]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda row: post(f"{server.url}/v1/models/penguins:predict",
                                                 {"instances": [row]}), rows))
    assert all(status == 200 for status, _ in answers)
    for single, (_, batched) in zip(singles, answers[:3], strict=True):
        assert batched["predictions"][0]["probabilities"] == pytest.approx(single["probabilities"], abs=1e-6)

    metrics = get(f"{server.url}/metrics")[1]
    lines = [line for line in metrics.splitlines() if not line.startswith("#")]
    five_xx = [line for line in lines if line.startswith("kfpc_requests_total") and 'code="5' in line]
    assert five_xx == []
    assert any(line.startswith('kfpc_requests_total{code="400"') or 'code="400"' in line for line in lines)
    for name in ("kfpc_request_latency_seconds_bucket", "kfpc_predictions_total", "kfpc_prediction_score_bucket",
                 "kfpc_feature_value_count", "kfpc_feature_category_total", "kfpc_batch_rows_bucket",
                 "request_predict_seconds_bucket"):  # the last one is KServe's own
        assert any(line.startswith(name) for line in lines), name
    assert any('feature="island"' in line and 'value="Biscoe"' in line for line in lines)
    assert any(line.startswith("kfpc_feature_missing_total") and 'feature="sex"' in line for line in lines)

    deadline = time.monotonic() + 10
    records = []
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in payload_log.read_text().splitlines()] if payload_log.exists() else []
        if len(records) >= 27:
            break
        time.sleep(0.2)
    assert len(records) >= 27
    record = records[-1]
    assert record["model_name"] == "penguins" and set(record["inputs"]) == set(ROW)
    assert "probabilities" in record["outputs"]


def test_cloudevent_request_gets_a_cloudevent_answer(server):
    # KServe's CloudEvents support still works through kfpc's direct prediction path.
    headers = {"Content-Type": "application/json", "ce-specversion": "1.0", "ce-id": "evt-1",
               "ce-source": "tests", "ce-type": "org.kubeflow.serving.inference.request"}
    request = urllib.request.Request(f"{server.url}/v1/models/penguins:predict", method="POST", headers=headers,
                                     data=json.dumps({"instances": [ROW]}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["ce-specversion"] == "1.0" and response.headers["ce-id"]
        assert len(json.loads(response.read())["predictions"]) == 1


def _metric(server, name: str) -> float:
    for line in get(f"{server.url}/metrics")[1].splitlines():
        if line.startswith(name + "{") and 'model_name="penguins"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_v1_requests_are_timed_in_kserves_own_histograms(server):
    # (v1 JSON takes kfpc's direct path past KServe's data plane; KServe's metrics must still count it)
    names = ("request_preprocess_seconds_count", "request_predict_seconds_count", "request_postprocess_seconds_count")
    before = [_metric(server, name) for name in names]
    for _ in range(3):
        assert post(f"{server.url}/v1/models/penguins:predict", {"instances": [ROW]})[0] == 200
    after = [_metric(server, name) for name in names]
    assert [b - a for a, b in zip(before, after, strict=True)] == [3.0, 3.0, 3.0]


def test_server_freezes_its_start_up_objects(server):
    # gc.freeze after loading: a full collection of TensorFlow's ~500k objects paused the server ~0.26 s
    log = server.log_path.read_text()
    frozen = re.search(r"(\d+) objects alive after loading moved out of the garbage collector's reach", log)
    assert frozen is not None and int(frozen.group(1)) > 100_000, log[-2000:]
