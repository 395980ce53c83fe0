"""Fixtures for the registry tests: the fake Kubeflow Model Registry (REST), the fake Vertex ModelService
(gRPC), and push's fake Kubernetes API server with KServe's real InferenceService CRD."""

from __future__ import annotations

import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

HERE = Path(__file__).parent
PUSH_TESTS = HERE.parent / "push"
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(PUSH_TESTS))
CRD = PUSH_TESTS / "data" / "kserve" / "serving.kserve.io_inferenceservices.yaml"


@pytest.fixture
def mr():
    from fake_model_registry import FakeModelRegistry

    with FakeModelRegistry() as server:
        yield server
        # every request the client sent is one the real REST API declares, with a body its models accept
        assert not server.unhandled(), server.unhandled()
        assert not [r for r in server.requests if r["code"] == 400], [r for r in server.requests if r["code"] == 400]


@pytest.fixture
def vertex():
    from fake_vertex import FakeVertex

    with FakeVertex() as server:
        yield server


@pytest.fixture(scope="session")
def isvc_schema() -> dict:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(CRD) as handle:
        crd = yaml.load(handle, Loader=loader)
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1beta1"]
    return version["schema"]["openAPIV3Schema"]


@pytest.fixture(scope="session")
def isvc_validator(isvc_schema):
    return jsonschema.Draft7Validator(isvc_schema)


@pytest.fixture
def fake_kube(isvc_schema, isvc_validator):
    from fake_kube import FakeKube

    with FakeKube(isvc_schema, isvc_validator) as server:
        yield server
