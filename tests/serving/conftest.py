"""Fixtures for the serving tests: a model from the real trainer, a toy regression model, one live server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Keep TensorFlow small: six helpers share two cores.
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).parent))

import toy_model  # noqa: E402

PENGUINS_CSV = Path(__file__).resolve().parents[2] / "pipelines" / "data" / "penguins.csv"


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """The real trainer's multiclass penguins model (3 epochs): ``<dir>/1/saved_model.pb`` + ``model_card.json``."""
    from kfpc.components.ingest.core import ingest
    from kfpc.components.train.core import train

    root = tmp_path_factory.mktemp("penguins")
    ingest(str(PENGUINS_CSV), root / "data")
    train(root / "data", root / "model", label="species", epochs=3, seed=1, learning_rate=0.001, verbose=0)
    return root / "model"


@pytest.fixture(scope="session")
def regression_model_dir(tmp_path_factory) -> Path:
    """A regression model with one feature that does not allow missing values."""
    features = [{"name": "x", "dtype": "float64", "kind": "numeric", "allow_missing": False},
                {"name": "city", "dtype": "string", "kind": "categorical"}]
    return toy_model.build(tmp_path_factory.mktemp("models") / "regressor", features=features, task="regression")


@pytest.fixture(scope="session")
def payload_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("payload") / "payload.jsonl"


@pytest.fixture(scope="session")
def server(model_dir, payload_log):
    """One live server on 127.0.0.1 (HTTP + gRPC, batching on, payload log to a JSONL file)."""
    from kfpc.serving.local import LocalServer

    env = {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    with LocalServer(model_dir, model_name="penguins", grpc_port=0, env=env, payload_log=str(payload_log),
                     max_request_bytes=200_000, max_rows=1000) as live:
        yield live
