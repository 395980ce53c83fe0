"""Fixtures for the push tests: KServe's real InferenceService CRD schema, a fake API server, test models."""

from __future__ import annotations

import json
import os
import socket
import urllib.request
from pathlib import Path

import jsonschema
import pytest
import yaml

DATA = Path(__file__).parent / "data"
CRD = DATA / "kserve" / "serving.kserve.io_inferenceservices.yaml"


@pytest.fixture(scope="session")
def isvc_schema() -> dict:
    """``spec.versions[v1beta1].schema.openAPIV3Schema`` of KServe's InferenceService CRD (loaded once)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(CRD) as handle:
        crd = yaml.load(handle, Loader=loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return version["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="session")
def isvc_validator(isvc_schema):
    return jsonschema.Draft7Validator(isvc_schema)


@pytest.fixture(scope="session")
def assert_valid_isvc(isvc_schema, isvc_validator):
    """Assert a manifest passes the CRD schema and declares no unknown field (what the API server checks)."""
    from fake_kube import unknown_fields

    def check(obj: dict) -> None:
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in isvc_validator.iter_errors(obj)]
        assert not errors, "manifest rejected by the InferenceService CRD schema:\n" + "\n".join(errors)
        unknown = unknown_fields(obj, isvc_schema)
        assert not unknown, f"fields unknown to the CRD: {unknown}"

    return check


@pytest.fixture
def fake_kube(isvc_schema, isvc_validator):
    from fake_kube import FakeKube

    with FakeKube(isvc_schema, isvc_validator) as server:
        yield server


@pytest.fixture
def gcs():
    """A fake Cloud Storage JSON API on 127.0.0.1; ``gcs.client()`` is a real storage client for it."""
    from fake_gcs import FakeGCS

    with FakeGCS() as server:
        yield server


def _write_fake_model(path: Path, card: dict | None = None) -> Path:
    """A Model folder with the contract's layout; saved_model.pb is a placeholder (for copy/manifest tests)."""
    (path / "1" / "variables").mkdir(parents=True)
    (path / "1" / "saved_model.pb").write_bytes(os.urandom(2048))
    (path / "1" / "variables" / "variables.data-00000-of-00001").write_bytes(os.urandom(50_000))
    (path / "1" / "variables" / "variables.index").write_bytes(os.urandom(300))
    (path / "model_card.json").write_text(json.dumps(card or {"label": "y", "task": "binary", "classes": ["a", "b"],
                                                                "features": []}))
    return path


@pytest.fixture
def fake_model(tmp_path) -> Path:
    return _write_fake_model(tmp_path / "model")


@pytest.fixture
def make_fake_model(tmp_path):
    counter = iter(range(1000))

    def make() -> Path:
        return _write_fake_model(tmp_path / f"model{next(counter)}")

    return make


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory) -> tuple[Path, Path]:
    """A real model: ingest + train (2 epochs) on the bundled penguins data. Returns (model_dir, dataset_dir)."""
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from kfpc.components.ingest.core import ingest
    from kfpc.components.train.core import train

    root = tmp_path_factory.mktemp("trained")
    source = Path(__file__).resolve().parents[3] / "pipelines" / "data" / "penguins.csv"
    ingest(str(source), root / "data")
    train(root / "data", root / "model", label="species", epochs=2, hidden_units=(8,), verbose=0)
    return root / "model", root / "data"


@pytest.fixture
def s3(monkeypatch):
    """moto's S3 server on 127.0.0.1 with a ``models`` bucket; yields a real boto3 client for it."""
    import boto3
    from moto.server import ThreadedMotoServer

    for name, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                        ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(name, value)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto keeps its state per process, not per server: start every test from an empty S3
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"))
    try:
        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1")
        client.create_bucket(Bucket="models")
        yield client
    finally:
        server.stop()


class MetricsServer:
    """A real HTTP server on 127.0.0.1 serving ``/metrics``: ``texts`` in turn, the last one repeated."""

    def __init__(self, texts: list[str]):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.texts, self.reads = list(texts), 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                text = outer.texts[min(outer.reads, len(outer.texts) - 1)]
                outer.reads += 1
                data = text.encode()
                self.send_response(200 if self.path == "/metrics" else 404)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def metrics_server():
    """``metrics_server(texts)`` starts a :class:`MetricsServer`; all are stopped after the test."""
    servers = []

    def start(texts: list[str]) -> MetricsServer:
        servers.append(MetricsServer(texts))
        return servers[-1]

    yield start
    for server in servers:
        server.close()
