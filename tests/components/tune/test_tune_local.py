"""The local backend on real data with a tiny budget: real training trials scored on the validation part,
the baseline as trial 0, the history files, the card, and the trial program Katib / Vertex AI run."""

import csv
import json
from pathlib import Path

import pytest

from kfpc.components.contract import read_card
from kfpc.components.tune import core, trial
from kfpc.components.tune import spec as S
from tests import report_browser

REPO = Path(__file__).resolve().parents[3]
SPACE = {
    "max_trials": 2, "seed": 1, "algorithm": "random",
    "parameters": {"learning_rate": {"type": "float", "min": 0.001, "max": 0.05, "log": True},
                   "hidden_units": {"type": "choice", "values": [[8], [64, 32]]}},
    "fixed": {"epochs": 2, "patience": 0},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from kfpc.components.ingest import core as ingest

    out = tmp_path_factory.mktemp("penguins") / "data"
    ingest.ingest(str(REPO / "pipelines/data/penguins.csv"), out)
    return out


@pytest.fixture(scope="module")
def search(dataset):
    return core.tune_local(dataset, label="species", spec=S.parse_spec(SPACE), base={"learning_rate": 0.001})


def test_trials_are_real_training_runs_and_the_first_is_the_baseline(search):
    assert [r["trial"] for r in search.history] == [0, 1]
    baseline = search.history[0]
    assert baseline["baseline"] and baseline["hyperparameters"] == {"learning_rate": 0.001, "hidden_units": [64, 32]}
    assert search.baseline_value == baseline["objective"]
    for row in search.history:
        assert row["state"] == core.COMPLETE and row["epochs_trained"] == 2
        assert row["objective"] == row["metrics"]["validation_loss"] == row["metrics"]["validation_log_loss"]
        assert 0 <= row["metrics"]["validation_accuracy"] <= 1
        assert not any(name.startswith("eval") for name in row["metrics"])
    best = min(search.history, key=lambda r: r["objective"])
    assert (search.best_trial, search.best_value) == (best["trial"], best["objective"])
    assert search.hyperparameters == {**core.TRAIN_DEFAULTS, "epochs": 2, "patience": 0, **best["hyperparameters"]}


def test_outputs_and_the_card(search, dataset, tmp_path):
    from kfpc.components.train import core as train_core

    out = core.write_outputs(search, tmp_path / "tuning")
    saved = core.load_result(out)
    assert saved["best_trial"] == search.best_trial and len(saved["trials"]) == 2
    with open(out / core.HISTORY_CSV) as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["trial", "state", "baseline", "validation_loss", "learning_rate", "hidden_units", "seconds"]
    assert rows[1][:3] == ["0", "COMPLETE", "yes"] and rows[1][5] == "64,32"
    assert (out / core.HISTORY_PNG).read_bytes()[:4] == b"\x89PNG"
    report = (out / core.REPORT_HTML).read_text()
    assert "data:image/png;base64," in report and "Split-eval was not read" in report

    model = tmp_path / "model"
    train_core.train(dataset, model, label="species", verbose=0, **{**search.hyperparameters, "epochs": 1})
    card = core.record_in_card(model, out, tmp_path / "tuned")
    assert (tmp_path / "tuned" / "1" / "saved_model.pb").exists()
    assert (tmp_path / "tuned" / "tuning" / "history.png").exists()
    written = read_card(tmp_path / "tuned")
    assert written == json.loads(json.dumps(card))
    tuning = written["tuning"]
    assert tuning["hyperparameters"]["hidden_units"] == search.hyperparameters["hidden_units"]
    assert tuning["history"]["columns"] == ["trial", "state", "baseline", "validation_loss", "learning_rate",
                                            "hidden_units"]
    assert len(tuning["history"]["rows"]) == 2 and tuning["plot"] == "tuning/history.png"
    assert "tuning" not in read_card(model)  # the trained model is left as it was


def test_the_trial_program_trains_and_reports(dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLOUD_ML_HP_METRIC_FILE", str(tmp_path / "output.metrics"))
    spec = S.parse_spec(SPACE)
    code = trial.main([f"--data={dataset}", "--label=species", f"--spec={spec.to_json()}",
                       "--learning_rate=0.01", "--hidden_units=8"])
    assert code == 0
    lines = dict(line.split("=") for line in capsys.readouterr().out.splitlines() if line.startswith("validation_"))
    assert set(lines) >= {"validation_loss", "validation_log_loss", "validation_accuracy"}
    reported = json.loads((tmp_path / "output.metrics").read_text())
    assert float(reported["validation_loss"]) == pytest.approx(float(lines["validation_loss"]))


def test_bad_data_stops_the_search_at_once(dataset):
    from kfpc.components.train.core import TrainInputError

    with pytest.raises(TrainInputError, match="label"):
        core.tune_local(dataset, label="no_such_column", spec=S.parse_spec(SPACE))


def test_model_family_is_a_searchable_training_parameter_and_a_wrong_one_is_named(dataset):
    """Training has model_family (dnn | gbdt | auto): the search may choose it; a family that does not exist is
    refused with the field and the value before any trial runs."""
    assert "model_family" in S.train_parameter_names()
    with pytest.raises(S.SpecError, match=r"parameters.model_family.values\[0\]: .*got 'forest'"):
        S.parse_spec({**SPACE, "parameters": {"model_family": {"type": "choice", "values": ["forest"]}}})
    spec = S.parse_spec({**SPACE, "max_trials": 1, "include_baseline": False,
                         "parameters": {"model_family": {"type": "choice", "values": ["gbdt"]}}})
    result = core.tune_local(dataset, label="species", spec=spec)
    assert result.hyperparameters["model_family"] == "gbdt" and result.history[0]["state"] == core.COMPLETE


@pytest.mark.skipif(report_browser.CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_the_tuning_report_renders_its_plot_in_a_browser_without_errors_or_fetches(search, tmp_path):
    from matplotlib import image

    out = core.write_outputs(search, tmp_path / "tuning")
    seen = report_browser.open_report(out / core.REPORT_HTML)
    assert seen.console_errors == [] and seen.exceptions == [], (seen.console_errors, seen.exceptions)
    assert seen.fetches == [] and seen.broken_images == 0
    assert seen.plots >= 1 and "Split-eval was not read" in seen.text
    shot = tmp_path / "tuning.png"
    shot.write_bytes(seen.screenshot)
    pixels = image.imread(shot)
    assert pixels.shape[0] > 300 and pixels.std() > 0.05
