"""Fuzzing, fast slice: thousands of seeded malformed (and some valid) bodies per decoder against the live
server: no 5xx, no INTERNAL, no dropped connection, the server alive and answering afterwards.
(``benchmarks/bench_fuzz.py`` sends 100,000+ per protocol and runs the soak.)"""

from __future__ import annotations

import json

import pytest
from fuzz_bodies import BodyFuzzer, run_grpc, run_http
from test_serving_http import get, post
from toy_model import PENGUIN_FEATURES, ROW

BODIES = 1500


@pytest.mark.parametrize("kind", ["v1", "v2_json", "v2_binary"])
def test_fuzzed_http_bodies_never_get_a_5xx(server, kind):
    port = int(server.url.rsplit(":", 1)[1])
    result = run_http("127.0.0.1", port, "penguins", BodyFuzzer(PENGUIN_FEATURES, seed=18, model_name="penguins"),
                      kind, BODIES)
    codes = result["codes"]
    assert sum(codes.values()) == BODIES and result["connection_errors"] == 0, result
    assert not [code for code in codes if code >= 500], result["examples_5xx"]
    assert codes.get(400, 0) > BODIES // 3 and codes.get(200, 0) > 0, codes  # both kinds were exercised
    assert result["max_error_bytes"] < 2048, result
    assert post(f"{server.url}/v1/models/penguins:predict", {"instances": [ROW]})[0] == 200


def test_fuzzed_grpc_requests_never_get_internal(server):
    result = run_grpc(server.grpc_url, BodyFuzzer(PENGUIN_FEATURES, seed=18, model_name="penguins"), BODIES)
    codes = result["codes"]
    assert sum(codes.values()) == BODIES
    assert "INTERNAL" not in codes and "UNKNOWN" not in codes, result["examples_internal"]
    assert codes.get("INVALID_ARGUMENT", 0) > BODIES // 3 and codes.get("OK", 0) > 0, codes
    assert result["max_error_chars"] < 2048
    assert json.loads(get(f"{server.url}/v2/health/ready")[1]).get("ready", True)
