"""notebooks/quickstart.ipynb runs top to bottom (nbclient, a real kernel) and shows what it promises."""

from pathlib import Path

import nbclient
import nbformat

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "quickstart.ipynb"


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(str(output.get("data", {}).get("text/plain", "")))
    return "".join(parts)


def test_quickstart_runs_and_shows_statistics_anomalies_metrics_and_a_prediction(tmp_path, monkeypatch):
    monkeypatch.setenv("KFPC_QUICKSTART_DIR", str(tmp_path))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    output = "\n".join(_text(cell) for cell in notebook.cells if cell.cell_type == "code")
    assert "pipeline training_pipeline: SUCCESS" in output
    assert "training rows" in output and "bill_length_mm" in output
    assert "anomaly_count: 0" in output
    assert "blessed: True" in output
    assert "classes: ['Adelie', 'Chinstrap', 'Gentoo']" in output
    assert (tmp_path / "run" / "summary.json").exists()
