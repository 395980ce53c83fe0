"""The whole training pipeline through kfp.local on the bundled penguins data — what `make run` does —
and a run on corrupted data that must stop at validation, before training, listing the anomalies."""

import io
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from kfpc.components.contract import read_card
from kfpc.pipelines import local_run
from tests import report_browser


@pytest.fixture(scope="module")
def penguins_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    progress = io.StringIO()
    summary = local_run.run("training_pipeline", {}, out / "penguins", progress=progress)
    summary.progress_text = progress.getvalue()
    return summary


def test_progress_shows_each_task_start_and_end_and_every_epoch_with_an_eta(penguins_run):
    text = penguins_run.progress_text
    assert "  train            started\n" in text and re.search(r"  train            SUCCESS +\d+\.\d s", text)
    epochs = re.findall(r"^    train: epoch (\d+)/(\d+) .*val_loss=", text, re.M)
    assert len(epochs) >= 2 and epochs[0] == ("1", "100")
    assert re.search(r"^    train: epoch 1/100 .*\(ETA \d+:\d\d\)$", text, re.M)


def test_every_task_succeeds_and_the_model_is_pushed(penguins_run):
    summary = penguins_run
    assert summary.status == "SUCCESS", summary.error
    names = [t.name for t in summary.tasks]
    for expected in ("ingest", "statistics", "validate", "train", "feature-importance", "evaluate", "push-kserve"):
        assert expected in names
        assert summary.task(expected).status == "SUCCESS"
        assert summary.task(expected).seconds is not None
    assert summary.task("validate").outputs["anomaly_count"] == 0
    evaluation = summary.task("evaluate").artifacts["metrics"]["metadata"]
    assert evaluation["accuracy"] >= 0.95
    importance = summary.task("feature-importance").artifacts["metrics"]["metadata"]
    assert "baseline_log_loss" in importance and any(k.startswith("importance_") for k in importance), importance
    push = summary.task("push-kserve").outputs
    assert Path(push["model_uri"]).is_relative_to(Path(summary.run_dir) / "serving")
    assert (Path(push["model_uri"]) / "1" / "saved_model.pb").exists()
    # the alert rules and dashboard monitoring_config made at push, beside the InferenceService manifest
    manifest = Path(summary.task("push-kserve").artifacts["manifest"]["path"])
    assert {"inferenceservice.yaml", "prometheusrule.yaml", "dashboard.json"} <= {f.name for f in manifest.iterdir()}
    assert summary.task("monitoring-config").artifacts["monitoring"]["metadata"]["score_reference"]


def test_model_artifact_has_kserve_layout_and_card(penguins_run):
    model_dir = penguins_run.task("train").artifacts["model"]["path"]
    assert (Path(model_dir) / "1" / "saved_model.pb").exists()
    card = read_card(model_dir)
    assert card["label"] == "species" and card["task"] == "multiclass"
    assert sorted(card["classes"]) == ["Adelie", "Chinstrap", "Gentoo"]
    assert "species" not in [f["name"] for f in card["features"]]


def test_summary_is_written_and_printed(penguins_run):
    saved = json.loads((Path(penguins_run.run_dir) / "summary.json").read_text())
    assert saved["status"] == "SUCCESS"
    # resolved parameters (defaults included), versions and the images the tasks name when compiled
    assert saved["parameters"]["epochs"] == 100 and saved["parameters"]["label"] == "species"
    assert saved["versions"]["kfp"] == "2.17.0" and "tensorflow" in saved["versions"]
    assert saved["images"]["tf"].endswith(f"/kfpc-tf:{saved['versions']['kfpc']}")
    text = local_run.format_summary(penguins_run)
    assert "accuracy=" in text and "train.model:" in text and "push-kserve" in text


def test_corrupted_data_stops_before_training_and_lists_anomalies(tmp_path, penguins_csv):
    frame = pd.read_csv(penguins_csv)
    frame.loc[frame.index % 3 == 0, "island"] = "Atlantis"  # a category the curated schema does not know
    frame = frame.drop(columns=["sex"])  # a column the schema requires
    corrupted = tmp_path / "corrupted.csv"
    frame.to_csv(corrupted, index=False)
    summary = local_run.run(
        "training_pipeline",
        {"source_uri": str(corrupted), "schema_uri": "bundled:penguins_schema.pbtxt"},
        tmp_path / "run",
    )
    assert summary.status == "FAILURE"
    # validate succeeds and records its reports; the gate after it stops the run (kubeflow/pipelines#12425)
    assert summary.task("validate").status == "SUCCESS"
    assert summary.task("validation-gate").status == "FAILURE"
    assert summary.task("train") is None or summary.task("train").status == "SKIPPED"
    assert not any(p.name == "train" for p in Path(summary.run_dir).rglob("train") if p.is_dir())
    # the reports of the failed run are recorded and listed, under names a browser opens
    html = Path(summary.reports["validate.html_report"])
    assert html.suffix == ".html" and "Atlantis" in html.read_text()
    assert Path(summary.reports["validate.report"]).suffix == ".md"
    assert summary.task("validate").artifacts["anomalies"]["metadata"]["anomaly_count"] >= 2
    # the gate's error, as the summary shows it, lists every anomaly with its feature
    assert "validation-gate: " in summary.error and "AnomaliesFoundError" in summary.error
    assert "island: ENUM_TYPE_UNEXPECTED_STRING_VALUES" in summary.error and "Atlantis" in summary.error
    assert "sex: SCHEMA_MISSING_COLUMN" in summary.error
    text = local_run.format_summary(summary)
    assert "island: ENUM_TYPE_UNEXPECTED_STRING_VALUES" in text and str(html) in text
    assert local_run.exit_code(summary) == local_run.EXIT_GATE


def test_unknown_parameter_is_rejected_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="unknown parameter 'epoch'"):
        local_run.run("training_pipeline", {"epoch": 3}, tmp_path / "run")
    assert not os.path.exists(tmp_path / "run" / "summary.json")


def test_an_input_error_stops_the_run_at_preflight_once_without_retry(tmp_path):
    """A misspelt label reaching the pipeline (not caught by `kfpc run` beforehand) fails its first, never
    retried step: nothing is ingested or trained, and the error names the column and the likely fix."""
    summary = local_run.run("training_pipeline", {"label": "Species"}, tmp_path / "run")
    assert summary.status == "FAILURE"
    names = [t.name for t in summary.tasks]
    assert names == ["preflight"], names
    assert summary.task("preflight").status == "FAILURE"
    assert "label 'Species' is not a column" in summary.error and "did you mean 'species'?" in summary.error
    log_text = local_run._ANSI.sub("", (Path(summary.run_dir) / "run.log").read_text())
    assert log_text.count("Executing task 'preflight'") == 1


def test_a_blessing_that_failed_is_said_in_the_summary_with_the_push_skipped():
    summary = local_run.RunSummary("training_pipeline", "runs/x", "SUCCESS", 1.0, {}, [
        local_run.TaskSummary("evaluate", "SUCCESS", 1.0, {"Output": False}, {"blessing": {"path": "b", "metadata": {
            "blessed": False, "failed_thresholds": ["roc_auc 0.51 (interval [0.45, 0.57]) does not beat 0.5"]}}}),
    ])
    text = local_run.format_summary(summary)
    assert "evaluate: the model was NOT blessed, so the push was skipped and nothing served changed." in text
    assert "  - roc_auc 0.51 (interval [0.45, 0.57]) does not beat 0.5" in text


@pytest.mark.skipif(report_browser.CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
@pytest.mark.parametrize("name", ["validate.html_report", "evaluate.report"])
def test_the_reports_render_their_plots_in_a_browser_without_errors_or_fetches(penguins_run, name, tmp_path):
    from matplotlib import image

    seen = report_browser.open_report(penguins_run.reports[name])
    assert seen.console_errors == [] and seen.exceptions == [], (seen.console_errors, seen.exceptions)
    assert seen.fetches == [], f"{name} fetches from the network: {seen.fetches}"
    assert seen.broken_images == 0
    assert seen.plots >= 1, f"{name}: {seen.plots} plots rendered"
    shot = tmp_path / f"{name}.png"
    shot.write_bytes(seen.screenshot)
    pixels = image.imread(shot)
    assert pixels.shape[0] > 400 and pixels.std() > 0.05  # a page with content, not a blank one


@pytest.mark.skipif(report_browser.CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_browser_check_sees_console_errors_broken_plots_and_fetches(tmp_path):
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><html><body><h1>bad</h1><script>console.error("boom")</script>'
                    '<img src="http://192.0.2.1/plot.png"><img src="data:image/png;base64,AAAA"></body></html>')
    seen = report_browser.open_report(page)
    assert any("boom" in e for e in seen.console_errors)
    assert seen.fetches == ["http://192.0.2.1/plot.png"]
    assert seen.broken_images == 2 and seen.plots == 0
