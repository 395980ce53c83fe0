"""notebooks/deploy_and_schedule.ipynb runs top to bottom (dry-runs only) with the python3 kernel of .venv."""

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "deploy_and_schedule.ipynb"


@pytest.mark.slow
def test_notebook_executes_and_shows_each_request(tmp_path):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = ["".join(o.get("text", "") for o in cell.get("outputs", [])) for cell in notebook.cells
               if cell.cell_type == "code"]
    text = "\n".join(outputs)
    assert "kfp/training_pipeline.yaml" in text and "vertex/retraining_pipeline.yaml" in text
    assert "/apis/v2beta1/runs" in text
    assert "google.cloud.aiplatform.v1.PipelineService.CreatePipelineJob" in text
    assert "exit code 2" in text  # the parameter typo and the 5-field cron are refused
    assert "'0 0 2 * * *'" in text
    assert "/apis/v2beta1/recurringruns" in text
    assert "TZ=Europe/Berlin 0 2 * * 1-5" in text
    assert "recurringruns/0f6c3f0e-7d2b-4a59-9a4e-2c6f4f0a1b2c:disable" in text
    assert '"catchUp": true' in text
    assert not any(o.get("output_type") == "error" for c in notebook.cells for o in c.get("outputs", []))
    json.dumps(notebook)  # executed notebook stays serializable
