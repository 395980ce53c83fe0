"""The ingest component through kfp.local: the same code path as on a cluster, minus the container."""

import pytest
from kfp import local

from kfpc.components.ingest.component import ingest


@pytest.fixture()
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))


def test_ingest_task_writes_splits_and_metadata(local_runner, penguins_csv):
    task = ingest(source_uri=penguins_csv, eval_fraction=0.25)
    data = task.outputs["data"]
    assert data.metadata["rows"]["train"] + data.metadata["rows"]["eval"] == 344
    assert data.metadata["columns"]["species"] == "string"
    import os

    assert os.path.exists(os.path.join(data.path, "Split-eval", "data.parquet"))


def test_ingest_task_fails_on_bad_input(local_runner, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n")
    with pytest.raises(RuntimeError, match="ingest"):
        ingest(source_uri=str(bad))
