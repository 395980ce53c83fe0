"""Fixtures for the monitoring tests: penguins data and training statistics, a small served model."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(ROOT / "tests" / "serving"))  # toy_model: the serving tests' small contract model


@pytest.fixture(scope="session")
def penguins(tmp_path_factory) -> dict:
    """Ingested penguins (``data``) and their statistics (``stats``, splits train and eval)."""
    from kfpc.components.ingest.core import ingest
    from kfpc.components.statistics.core import write_statistics

    root = tmp_path_factory.mktemp("penguins-data")
    ingest(str(ROOT / "pipelines" / "data" / "penguins.csv"), root / "data")
    write_statistics(root / "data", root / "stats")
    return {"data": root / "data", "stats": root / "stats"}


@pytest.fixture(scope="session")
def served_model(tmp_path_factory) -> Path:
    """A contract model over the penguins features (tests/serving/toy_model.py): builds in seconds."""
    import toy_model

    return toy_model.build(tmp_path_factory.mktemp("served") / "model")
