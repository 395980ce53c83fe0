"""Fixtures for the used-by tests: a tiny compiled pipeline and a fake KFP REST server on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.pipelines.usedby.fake_kfp import FakeKfp

TINY = ("tests.pipelines.usedby.tiny_pipeline:build", "tiny test pipeline")


@pytest.fixture(scope="session")
def tiny_package(tmp_path_factory):
    """The tiny pipeline compiled for KFP: ``a: int`` required; ``b``, ``label``, ``flag``, ``columns`` optional."""
    from kfp import compiler

    from tests.pipelines.usedby import tiny_pipeline

    path = tmp_path_factory.mktemp("tiny") / "tiny.yaml"
    compiler.Compiler().compile(tiny_pipeline.build("kfp"), str(path))
    return path


@pytest.fixture()
def tiny_registered(monkeypatch):
    """Register the tiny pipeline as ``tiny`` so ``--pipeline tiny`` compiles it through kfpc's compiler."""
    from kfpc.pipelines import registry

    monkeypatch.setitem(registry.PIPELINES, "tiny", TINY)
    return "tiny"


@pytest.fixture()
def fake_kfp(tmp_path, monkeypatch):
    """A running fake KFP API server; HOME is a temp folder so kfp.Client reads no user context."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KF_PIPELINES_ENDPOINT", raising=False)
    monkeypatch.delenv("KFPC_KFP_TOKEN", raising=False)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-token"))
    with FakeKfp() as server:
        yield server
