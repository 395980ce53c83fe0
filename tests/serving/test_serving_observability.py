"""Payload logging (JSONL file and a CloudEvents HTTP sink on 127.0.0.1), JSON logs, metric cardinality."""

from __future__ import annotations

import http.server
import json
import logging
import threading

import numpy as np
import pytest
from prometheus_client import REGISTRY

from kfpc.serving import observability
from kfpc.serving.protocol import Feature


class _Sink(http.server.BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Sink.received.append((dict(self.headers), json.loads(body)))
        self.send_response(202)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sink():
    _Sink.received = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/events"
    server.shutdown()


def _record(i: int) -> dict:
    return {"id": f"r{i}", "time": "2026-01-01T00:00:00+00:00", "inputs": {"x": [i]}, "outputs": {"y": [i]}}


def test_payload_log_posts_binary_cloudevents(sink):
    logger = observability.PayloadLogger(sink, "penguins")
    for i in range(3):
        logger.log(_record(i))
    logger.close()
    assert [body["id"] for _, body in _Sink.received] == ["r0", "r1", "r2"]
    headers = {k.lower(): v for k, v in _Sink.received[0][0].items()}
    assert headers["ce-specversion"] == "1.0" and headers["ce-type"] == observability.CLOUDEVENT_TYPE
    assert headers["ce-source"] == "kfpc-serving/penguins" and headers["ce-id"] == "r0"


def test_payload_log_jsonl_and_unreachable_sink_counts_drops(tmp_path):
    path = tmp_path / "logs" / "p.jsonl"
    logger = observability.PayloadLogger(str(path), "m1")
    logger.log(_record(1))
    logger.close()
    assert json.loads(path.read_text())["id"] == "r1"

    before = REGISTRY.get_sample_value("kfpc_payload_log_dropped_total", {"model_name": "m-down"}) or 0
    down = observability.PayloadLogger("http://127.0.0.1:9/nothing", "m-down", timeout_s=0.5)
    down.log(_record(2))
    down.close()
    assert REGISTRY.get_sample_value("kfpc_payload_log_dropped_total", {"model_name": "m-down"}) == before + 1


class _Model:
    features = [Feature("city", "string", "categorical"), Feature("x", "float64")]
    card = {"classes": ["no", "yes"]}
    task = "binary"


def test_observer_metrics_and_category_cap():
    observer = observability.Observer("obs-test", max_categories=2)
    observer.bind(_Model())
    columns = {"city": np.array(["a", "b", "c", "", "a"], dtype=object), "x": np.array([1.0, 2.0, np.nan, 3.0, 4.0])}
    outputs = {"probabilities": np.array([[0.9, 0.1]] * 5, dtype=np.float32), "classes": np.array([b"no"] * 5)}
    observer.record_model_call(columns, outputs)

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, dict(model_name="obs-test", **labels))

    assert sample("kfpc_feature_category_total", feature="city", value="a") == 2
    assert sample("kfpc_feature_category_total", feature="city", value="__other__") == 1
    assert sample("kfpc_feature_missing_total", feature="city") == 1
    assert sample("kfpc_feature_missing_total", feature="x") == 1
    assert sample("kfpc_feature_value_count", feature="x") == 4 and sample("kfpc_feature_value_sum", feature="x") == 10
    assert sample("kfpc_feature_value_squares_total", feature="x") == 30
    assert sample("kfpc_predictions_total", **{"class": "no"}) == 5
    # Binary model: the score is the positive class's probability (0.1), not the top one (0.9).
    assert sample("kfpc_prediction_score_bucket", le="0.15") == 5
    assert sample("kfpc_prediction_score_bucket", le="0.05") == 0


def test_json_log_lines_carry_extra_fields(capsys):
    record = logging.LogRecord("kfpc.serving", logging.WARNING, __file__, 1, "request rejected", None, None)
    record.status = 400
    line = json.loads(observability.JsonFormatter().format(record))
    assert line["message"] == "request rejected" and line["status"] == 400 and line["level"] == "WARNING"
    with pytest.raises(ValueError, match="log_format"):
        observability.configure_logging("xml")
