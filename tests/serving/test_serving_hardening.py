"""Hostile-but-fair requests and process handling (issue 18): malformed binary and gRPC bodies are 4xx,
error messages quote bounded excerpts, nothing listens beyond 127.0.0.1 by default, slow clients are cut
off, no docs are published, and no server outlives the process that started it."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import psutil
import pytest
from test_serving_http import get, post
from toy_model import ROW

from kfpc.serving.local import LocalServer, free_port

STRING_FEATURES = {"island", "sex"}


def binary_body(rows: list[dict], overrides: dict | None = None) -> tuple[bytes, dict]:
    """A v2 body with every feature as a binary tensor (tritonclient's layout); ``overrides`` maps a feature to
    ``(blob, declared_size)``."""
    inputs, blobs = [], []
    for name in ROW:
        if name in STRING_FEATURES:
            blob = b"".join(struct.pack("<I", len(row[name].encode())) + row[name].encode() for row in rows)
            datatype = "BYTES"
        else:
            blob = np.array([row[name] for row in rows], dtype=np.float64).tobytes()
            datatype = "FP64"
        declared = len(blob)
        if overrides and name in overrides:
            blob, declared = overrides[name]
        inputs.append({"name": name, "shape": [len(rows)], "datatype": datatype,
                       "parameters": {"binary_data_size": declared}})
        blobs.append(blob)
    header = json.dumps({"inputs": inputs}).encode()
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header)),
                                      "Content-Type": "application/octet-stream"}


def post_binary(server, body: bytes, headers: dict) -> tuple[int, dict | str]:
    return post(f"{server.url}/v2/models/penguins/infer", body, raw=True, headers=headers)


def test_valid_binary_request_is_200(server):
    status, answer = post_binary(server, *binary_body([ROW, ROW]))
    assert status == 200, answer


def test_bogus_bytes_length_prefix_is_400_without_internal_text(server):
    good = struct.pack("<I", 6) + b"Biscoe"
    for blob in (struct.pack("<I", 0xFFFFFFFF) + b"Biscoe", b"\x06\x00", good + b"\x01"):
        status, answer = post_binary(server, *binary_body([ROW], {"island": (blob, len(blob))}))
        assert status == 400, answer
        assert "input 'island'" in answer["error"] and "struct" not in answer["error"], answer


def test_binary_tensor_shorter_than_its_declared_size_is_400(server):
    # the last tensor declares 16 bytes but 8 follow: KServe read the 8 and answered 200
    blob = np.array([2007.0]).tobytes()
    status, answer = post_binary(server, *binary_body([ROW], {"year": (blob, 16)}))
    assert status == 400 and "binary_data_size" in answer["error"] and "16" in answer["error"], answer
    # a size that matches the bytes but not the shape, and bytes left over after the last tensor
    status, answer = post_binary(server, *binary_body([ROW], {"year": (blob + blob, 16)}))
    assert status == 400 and "needs 8 bytes, got 16" in answer["error"], answer
    body, headers = binary_body([ROW])
    status, answer = post_binary(server, body + b"\x00" * 3, headers)
    assert status == 400 and "3 bytes after its binary tensors" in answer["error"], answer


def test_inference_header_length_that_is_not_a_number_is_400(server):
    body, headers = binary_body([ROW])
    for length in ("-1", "²", "x" * 500, str(len(body) + 1)):
        status, answer = post_binary(server, body, dict(headers, **{"Inference-Header-Content-Length": length}))
        assert status == 400 and len(answer["error"]) < 200, answer


def _grpc_stub(server):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

    channel = grpc.insecure_channel(server.grpc_url)
    return channel, pb_grpc.GRPCInferenceServiceStub(channel), pb


def _grpc_request(pb, raw_island: bytes | None = None, datatype: str = "BYTES"):
    request = pb.ModelInferRequest(model_name="penguins")
    raws = []
    for name, value in ROW.items():
        request.inputs.add(name=name, shape=[1], datatype=datatype if name == "island" else (
            "BYTES" if name in STRING_FEATURES else "FP64"))
        if name in STRING_FEATURES:
            raws.append(raw_island if name == "island" and raw_island is not None else
                        struct.pack("<I", len(value)) + value.encode())
        else:
            raws.append(struct.pack("<d", value))
    request.raw_input_contents.extend(raws)
    return request


def _requests_total(server, protocol: str, code: str) -> float:
    for line in get(f"{server.url}/metrics")[1].splitlines():
        if line.startswith("kfpc_requests_total{") and f'protocol="{protocol}"' in line and f'code="{code}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_malformed_grpc_requests_are_invalid_argument_and_counted(server):
    import grpc

    channel, stub, pb = _grpc_stub(server)
    with channel:
        assert stub.ModelInfer(_grpc_request(pb), timeout=30).outputs  # the well-formed request
        before = _requests_total(server, "grpc-v2", "400")
        cases = [_grpc_request(pb, raw_island=struct.pack("<I", 0xFFFFFFFF) + b"Biscoe"),  # was INTERNAL
                 _grpc_request(pb, raw_island=b"\x01"),
                 _grpc_request(pb, datatype="FP128"),  # was INTERNAL ("invalid content type")
                 pb.ModelInferRequest(model_name="penguins", raw_input_contents=[b"x"])]
        for request in cases:
            with pytest.raises(grpc.RpcError) as caught:
                stub.ModelInfer(request, timeout=30)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
            assert "struct" not in caught.value.details() and len(caught.value.details()) < 400
        assert _requests_total(server, "grpc-v2", "400") - before == len(cases)


HUGE = "x" * 100_000


@pytest.mark.parametrize("body", [
    {"instances": [dict(ROW, body_mass_g=HUGE)]},
    {"instances": [dict(ROW, **{HUGE: 1})]},
    {"instances": [dict(ROW, island=[HUGE[:30_000]] * 3)]},
    {HUGE: 1},
    {"instances": HUGE},
], ids=["value", "feature name", "nested", "top-level key", "instances"])
def test_v1_errors_quote_short_excerpts(server, body):
    status, answer = post(f"{server.url}/v1/models/penguins:predict", body)
    assert status == 400, answer
    assert len(answer["error"]) < 400 and ("..." in answer["error"] or "…" in answer["error"]), answer["error"][:500]


@pytest.mark.parametrize("change", [
    {"datatype": HUGE}, {"name": HUGE}, {"shape": [HUGE]}, {"data": [HUGE]}, {"parameters": HUGE},
], ids=["datatype", "name", "shape", "data", "parameters"])
def test_v2_errors_quote_short_excerpts(server, change):
    inputs = [{"name": name, "shape": [1], "datatype": "BYTES" if name in STRING_FEATURES else "FP64",
               "data": [value]} for name, value in ROW.items()]
    inputs[6] = dict(inputs[6], **change)
    status, answer = post(f"{server.url}/v2/models/penguins/infer", {"inputs": inputs})
    assert status == 400, answer
    assert len(answer["error"]) < 400, answer["error"][:500]


def test_unknown_model_and_control_characters_are_quoted_escaped_and_short(server):
    status, answer = post(f"{server.url}/v1/models/{'m' * 5000}:predict", {"instances": [ROW]})
    assert status == 404 and len(answer["error"]) < 200, answer
    status, text = get(f"{server.url}/v2/models/{'m' * 5000}")
    assert status == 404 and len(text) < 300, text[:400]
    status, answer = post(f"{server.url}/v1/models/penguins:predict", {"instances": [dict(ROW, island=5.5,
                                                                                         **{"a\x1b[31m\n": 1})]})
    assert status == 400 and "\\x1b" in answer["error"] and "\x1b" not in answer["error"], answer


def test_docs_and_openapi_are_off_by_default(server):
    for path in ("/openapi.json", "/docs", "/redoc"):
        assert get(f"{server.url}{path}")[0] == 404, path


def test_server_listens_on_loopback_only_by_default(server):
    process = psutil.Process(server.process.pid)
    connections = getattr(process, "net_connections", None) or process.connections  # (psutil < 6: connections)
    listening = {(c.laddr.ip, c.laddr.port) for c in connections("inet") if c.status == psutil.CONN_LISTEN}
    ports = {port for _, port in listening}
    assert server.port in ports and int(server.grpc_url.rsplit(":", 1)[1]) in ports
    assert {ip for ip, _ in listening} <= {"127.0.0.1", "::ffff:127.0.0.1"}, listening  # (gRPC: an IPv6 socket)


def _slow_connection(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(b"POST /v1/models/penguins:predict HTTP/1.1\r\nHost: x\r\n")  # headers never finished
    return sock


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        while sock.recv(65536):
            pass
        return True
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_slow_clients_are_cut_off_and_docs_are_served_when_asked(model_dir):
    with LocalServer(model_dir, model_name="penguins", header_timeout_s=1, body_timeout_s=1,
                     enable_docs_url=True) as server:
        slow = [_slow_connection(server.port) for _ in range(40)]
        idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)  # connects and sends nothing
        started = time.monotonic()
        status, answer = post(f"{server.url}/v1/models/penguins:predict", {"instances": [ROW]})
        assert status == 200 and time.monotonic() - started < 5, answer
        assert all(_closed_by_server(sock, within=5) for sock in slow + [idle])
        assert time.monotonic() - started < 10
        # a body that stops coming: 408, connection closed
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(b"POST /v1/models/penguins:predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"instances\": [")
        sock.settimeout(10)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout_s" in answer, answer
        for s in slow + [idle, sock]:
            s.close()
        assert get(f"{server.url}/openapi.json")[0] == 200


def _wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


KFPC_SERVE = "import sys; from kfpc.pipelines.cli import main; sys.exit(main())"


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_kfpc_serve_takes_its_server_down(model_dir, how):
    port = free_port()
    parent = subprocess.Popen([sys.executable, "-c", KFPC_SERVE, "serve", "--model-dir", str(model_dir), "--port",
                               str(port), "--grpc-port", "0", "--model-name", "penguins"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: _ready(port), 120), "kfpc serve did not become ready"
        children = psutil.Process(parent.pid).children()
        assert len(children) == 1
        child = children[0].pid
        parent.send_signal(getattr(signal, how))
        parent.wait(timeout=60)
        assert _wait_for(lambda: _gone(child), 30), f"the server survived {how} to kfpc serve"
        assert not _ready(port)
        if how == "SIGTERM":
            assert parent.returncode in (0, 143), parent.returncode
    finally:
        if parent.poll() is None:
            parent.kill()


LOCAL_OWNER = """
import sys, time
from kfpc.serving.local import LocalServer
server = LocalServer(sys.argv[1], model_name="penguins").start()
print(server.process.pid, server.port, flush=True)
time.sleep(600)
"""


def test_local_server_does_not_outlive_its_owner(model_dir):
    owner = subprocess.Popen([sys.executable, "-c", LOCAL_OWNER, str(model_dir)], stdout=subprocess.PIPE, text=True)
    try:
        pid, port = map(int, owner.stdout.readline().split())
        assert _ready(port)
        owner.terminate()  # the default SIGTERM action: LocalServer.__exit__ never runs
        owner.wait(timeout=30)
        assert _wait_for(lambda: _gone(pid), 30), "the LocalServer's server outlived its owner"
    finally:
        if owner.poll() is None:
            owner.kill()


def test_bind_host_is_an_option():
    from kfpc.serving.server import grpc_listen_address

    assert grpc_listen_address("127.0.0.1", 8081) == "127.0.0.1:8081"
    assert grpc_listen_address("0.0.0.0", 8081) == "[::]:8081"
    assert grpc_listen_address("::1", 8081) == "[::1]:8081"


# ------------------------------------------------------------------ feature names that are not identifiers

WEIRD = ['say "hi"', "back\\slash", "with space", "café ü 🐧", "ctl\x01\tx"]


@pytest.fixture(scope="module")
def weird_model(tmp_path_factory):
    """The real trainer on columns named with a quote, a backslash, a space, unicode and control characters."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from kfpc.components.train.core import train

    root = tmp_path_factory.mktemp("weird")
    rng = np.random.default_rng(0)
    rows = 120
    x = rng.normal(size=rows)
    frame = pd.DataFrame({WEIRD[0]: x, WEIRD[1]: rng.normal(size=rows), WEIRD[2]: [f"c{i % 3}" for i in range(rows)],
                          WEIRD[3]: rng.normal(size=rows), WEIRD[4]: [f"k{i % 2}" for i in range(rows)],
                          "label": np.where(x > 0, "yes", "no")})
    for split in ("train", "eval"):
        folder = root / "data" / f"Split-{split}"
        folder.mkdir(parents=True)
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), folder / "data.parquet")
    train(root / "data", root / "model", label="label", epochs=1, seed=1, verbose=0)
    return root / "model"


def test_feature_names_that_are_not_identifiers_are_served_by_name(weird_model):
    card = json.loads((weird_model / "model_card.json").read_text())
    assert [f["name"] for f in card["features"]] == WEIRD
    row = {WEIRD[0]: 0.5, WEIRD[1]: -1.0, WEIRD[2]: "c1", WEIRD[3]: 2.0, WEIRD[4]: "k0"}
    strings = {WEIRD[2], WEIRD[4]}
    with LocalServer(weird_model, model_name="weird", grpc_port=0) as server:
        status, v1 = post(f"{server.url}/v1/models/weird:predict", {"instances": [row, dict(row, **{WEIRD[0]: None})]})
        assert status == 200, v1
        status, columnar = post(f"{server.url}/v1/models/weird:predict",
                                {"inputs": {name: [value, None if name == WEIRD[0] else value]
                                            for name, value in row.items()}})
        assert status == 200 and columnar == v1, columnar
        v2_inputs = [{"name": name, "shape": [1], "datatype": "BYTES" if name in strings else "FP64",
                      "data": [value]} for name, value in row.items()]
        status, v2 = post(f"{server.url}/v2/models/weird/infer", {"inputs": v2_inputs})
        assert status == 200, v2
        probabilities = next(o for o in v2["outputs"] if o["name"] == "probabilities")["data"]
        assert probabilities == pytest.approx(v1["predictions"][0]["probabilities"], abs=1e-6)
        metadata = json.loads(get(f"{server.url}/v2/models/weird")[1])
        assert [i["name"] for i in metadata["inputs"]] == WEIRD
        status, bad = post(f"{server.url}/v1/models/weird:predict", {"instances": [dict(row, **{WEIRD[0]: "x"})]})
        assert status == 400 and "'say \"hi\"' must be a number" in bad["error"], bad
        # gRPC, by the original names too
        import grpc
        from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
        from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

        request = pb.ModelInferRequest(model_name="weird")
        for name, value in row.items():
            tensor = request.inputs.add(name=name, shape=[1], datatype="BYTES" if name in strings else "FP64")
            if name in strings:
                tensor.contents.bytes_contents.append(value.encode())
            else:
                tensor.contents.fp64_contents.append(value)
        with grpc.insecure_channel(server.grpc_url) as channel:
            answer = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=30)
        out = {o.name: o for o in answer.outputs}
        values = list(out["probabilities"].contents.fp32_contents) or list(
            np.frombuffer(answer.raw_output_contents[list(out).index("probabilities")], dtype=np.float32))
        assert values == pytest.approx(v1["predictions"][0]["probabilities"], abs=1e-6)
        assert not math.isnan(values[0])
        assert os.path.exists(server.log_path)


def test_v2_request_id_is_echoed_only_when_short_valid_text(server):
    inputs = [{"name": name, "shape": [1], "datatype": "BYTES" if name in STRING_FEATURES else "FP64",
               "data": [value]} for name, value in ROW.items()]
    # a lone surrogate (read by the NaN-tolerant JSON fallback) made the response unwritable: a 500
    status, answer = post(f"{server.url}/v2/models/penguins/infer", json.dumps({"id": "\ud800", "inputs": inputs}).encode(),
                          raw=True)
    assert status == 400 and "field 'id'" in answer["error"], answer
    status, answer = post(f"{server.url}/v2/models/penguins/infer", {"id": "i" * 10_000, "inputs": inputs})
    assert status == 400 and "field 'id'" in answer["error"] and len(answer["error"]) < 300, answer
    status, answer = post(f"{server.url}/v2/models/penguins/infer", {"id": "req-é", "inputs": inputs})
    assert status == 200 and answer["id"] == "req-é", answer


def test_a_huge_feature_value_does_not_spoil_the_drift_metrics(server):
    assert post(f"{server.url}/v1/models/penguins:predict", {"instances": [dict(ROW, year=1e300)]})[0] == 200
    for line in get(f"{server.url}/metrics")[1].splitlines():
        if line.startswith(("kfpc_feature_value_squares_total{", "kfpc_feature_value_sum{")) and 'feature="year"' in line:
            assert float(line.rsplit(" ", 1)[1]) < 1e300, line


CE = {"ce-specversion": "1.0", "ce-id": "e", "ce-source": "t", "ce-type": "x", "Content-Type": "application/json"}


@pytest.mark.parametrize("headers, body", [
    (dict(CE, **{"ce-specversion": "9.9"}), json.dumps({"instances": [ROW]}).encode()),
    (CE, b"{not json"),
    (CE, b"\xff\xfe"),
    (CE, json.dumps({"instances": [dict(ROW, year="x")]}).encode()),
    ({"Content-Type": "application/cloudevents+json"}, b"{}"),
    ({"Content-Type": "application/cloudevents+json"}, b"[1]"),
    ({"Content-Type": "application/cloudevents+json"}, json.dumps({"specversion": "1.0", "data": 5}).encode()),
], ids=["bad specversion", "ce not json", "ce not utf-8", "ce bad value", "structured empty",
        "structured list", "structured no id"])
def test_malformed_cloudevents_are_4xx(server, headers, body):
    status, answer = post(f"{server.url}/v1/models/penguins:predict", body, raw=True, headers=headers)
    assert 400 <= status < 500, answer


def test_binary_size_without_the_binary_header_is_400(server):
    # an all-JSON body (no Inference-Header-Content-Length) whose tensor has binary_data_size and no data: a
    # KeyError and a 500 before (found by the fuzzer)
    inputs = [{"name": name, "shape": [1], "datatype": "BYTES" if name in STRING_FEATURES else "FP64",
               "data": [value]} for name, value in ROW.items()]
    inputs[6] = {"name": "year", "shape": [1], "datatype": "FP64", "parameters": {"binary_data_size": 8}}
    status, answer = post(f"{server.url}/v2/models/penguins/infer", {"inputs": inputs})
    assert status == 400 and "Inference-Header-Content-Length" in answer["error"], answer
