"""The kfpc command line: clear errors for unknown pipelines and parameters, component listing, compile."""

import json
import re
import subprocess
import sys

import pytest
import yaml

from kfpc.pipelines import cli, compiler, local_run, registry


def kfpc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kfpc.pipelines.cli", *args], capture_output=True, text=True)


def test_unknown_pipeline_is_a_clear_error():
    result = kfpc("run", "nope")
    assert result.returncode == 2
    assert ("unknown pipeline 'nope'; known: monitoring_pipeline, retraining_pipeline, training_pipeline, "
            "tuned_training_pipeline, validation_pipeline") in result.stderr


def test_unknown_or_mistyped_parameter_is_a_clear_error():
    result = kfpc("run", "--param", "epoch=3")
    assert result.returncode == 2
    assert "unknown parameter 'epoch'" in result.stderr and "epochs" in result.stderr
    result = kfpc("run", "--param", "epochs=many")
    assert result.returncode == 2 and "parameter 'epochs' expects an integer, got 'many'" in result.stderr
    result = kfpc("run", "--param", "hidden_units=128")
    assert result.returncode == 2 and "parameter 'hidden_units' expects a JSON list, got '128'" in result.stderr
    result = kfpc("run", "--param", "epochs")
    assert result.returncode == 2 and "--param expects key=value" in result.stderr


def test_parameters_are_parsed_to_the_pipeline_types():
    allowed = {"epochs": "NUMBER_INTEGER", "dropout": "NUMBER_DOUBLE", "label": "STRING", "promote": "BOOLEAN",
               "hidden_units": "LIST"}
    params = local_run.parse_params(
        ["epochs=5", "dropout=1", "label=123", "promote=true", "hidden_units=[8, 4]"], allowed
    )
    assert params == {"epochs": 5, "dropout": 1.0, "label": "123", "promote": True, "hidden_units": [8, 4]}
    assert local_run.parse_params(["promote=yes"], allowed) == {"promote": True}  # as kfpc submit reads it
    with pytest.raises(ValueError, match="expects true or false"):
        local_run.parse_params(["promote=maybe"], allowed)


def test_components_lists_every_component_on_one_line(capsys):
    assert cli.main(["components"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == list(compiler.COMPONENTS)
    assert all(len(line.split()) > 3 for line in lines), "each line has a description"


def test_compile_writes_every_pipeline_for_a_target(tmp_path):
    result = kfpc("compile", "--target", "kfp", "--output-dir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{name}.yaml" for name in registry.PIPELINES)
    spec = next(yaml.safe_load_all((tmp_path / "training_pipeline.yaml").read_text()))
    assert spec["pipelineInfo"]["name"] == "training-pipeline"


def test_compile_components_go_under_the_output_dir(tmp_path):
    result = kfpc("compile", "--target", "kfp", "--output-dir", str(tmp_path), "--components")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "components" / "ingest" / "component.yaml").exists()
    assert (tmp_path / "components" / "push" / "push_kserve.yaml").exists()


def test_help_lists_every_command():
    result = kfpc("--help")
    for command in ("run", "compile", "components", "validate", "serve", "push", "registry", "submit", "schedule"):
        assert f"    {command}" in result.stdout


@pytest.mark.parametrize("params, expected", [
    (["label=Species"], "label 'Species' is not a column of bundled:penguins.csv (did you mean 'species'?)"),
    (["label="], "label is empty: name the column to predict"),
    (["task=classification"], "task='classification' is not a task; use one of auto, binary, multiclass, regression"),
    (["push_mode=dryrun"], "push_mode='dryrun' is not a push mode; use one of dry_run, local, cluster"),
    (["model_name=Penguins_v2"], "model_name: name 'Penguins_v2' is not a valid InferenceService name"),
    (["exclude_columns=[\"islands\"]"], "exclude_columns: 'islands' is not a column (did you mean 'island'?)"),
    (["label=island", "task=regression"], "task='regression' needs a numeric label; 'island' is text"),
    (["label=year", "task=binary"], "task='binary' but label 'year' has 3 classes"),
    (["dropout=1.5"], "dropout must be in [0, 1), got 1.5"),
    (["epochs=0", "learning_rate=0"], "learning_rate must be positive, got 0.0"),
])
def test_deterministic_input_errors_fail_kfpc_run_before_anything_runs(tmp_path, params, expected):
    out = tmp_path / "run"
    result = kfpc("run", "--output-dir", str(out), *[a for p in params for a in ("--param", p)])
    assert result.returncode == 2, result.stdout + result.stderr
    assert expected in result.stderr
    assert not out.exists(), "nothing may start: no run folder, no kfp.local task"


def test_a_table_with_one_class_fails_kfpc_run_naming_the_label(tmp_path, penguins_csv):
    import pandas as pd

    frame = pd.read_csv(penguins_csv).assign(species="Adelie")
    frame.to_csv(tmp_path / "one.csv", index=False)
    result = kfpc("run", "--output-dir", str(tmp_path / "run"), "--param", f"source_uri={tmp_path / 'one.csv'}")
    assert result.returncode == 2
    assert "label 'species' has a single class ('Adelie') in every labelled row: nothing to learn" in result.stderr


@pytest.mark.parametrize("pipeline", sorted(registry.PIPELINES))
def test_params_lists_every_parameter_with_type_default_and_a_description(pipeline):
    result = kfpc("params", pipeline)
    assert result.returncode == 0, result.stderr
    built = registry.build(pipeline)
    names = local_run.pipeline_parameters(built)
    lines = result.stdout.splitlines()
    listed = {i: line.split()[0] for i, line in enumerate(lines) if re.match(r"^  \w+ \(", line)}
    assert sorted(listed.values()) == sorted(names)
    undocumented = [name for i, name in listed.items()
                    if not (i + 1 < len(lines) and lines[i + 1].startswith("      "))]
    assert undocumented == [], f"{pipeline}: parameters without a description (KFP UI shows none): {undocumented}"
    if "epochs" in names:
        assert "  epochs (integer, default " in result.stdout


def test_run_help_with_a_pipeline_lists_its_parameters():
    result = kfpc("run", "retraining_pipeline", "--help")
    assert result.returncode == 0
    assert "--params-file" in result.stdout and "exit codes:" in result.stdout
    assert "  source_pattern (string, required)" in result.stdout
    assert "  3  a gate stopped the run" in kfpc("--help").stdout


def test_params_file_and_param_merge_with_param_winning(tmp_path):
    (tmp_path / "p.yaml").write_text("epochs: 7\nlearning_rate: 0.003\n")
    result = kfpc("run", "--params-file", str(tmp_path / "p.yaml"), "--param", "epochs=9", "--dry-run")
    assert result.returncode == 0, result.stderr
    resolved = json.loads(result.stdout.split("\n", 1)[1])
    assert resolved["epochs"] == 9 and resolved["learning_rate"] == 0.003
    (tmp_path / "bad.yaml").write_text("epoch: 7\n")
    result = kfpc("run", "--params-file", str(tmp_path / "bad.yaml"))
    assert result.returncode == 2 and f"--params-file {tmp_path / 'bad.yaml'}: unknown parameter 'epoch'" in result.stderr
    (tmp_path / "list.yaml").write_text("- 1\n")
    result = kfpc("run", "--params-file", str(tmp_path / "list.yaml"))
    assert result.returncode == 2 and "expected a mapping of parameter name to value, got list" in result.stderr


def test_one_spelling_per_option_across_commands():
    """The region of Google Cloud is --region everywhere (--location only as push vertex's alias)."""
    from tests.pipelines.test_cli_examples import _parsers

    firsts = {}
    for path, parser in _parsers(cli.build_parser()):
        for action in parser._actions:
            if action.option_strings:
                firsts.setdefault(action.option_strings[0], set()).add(" ".join(path))
    assert "--location" not in firsts, firsts.get("--location")
    assert {"kfpc submit", "kfpc push vertex"} <= firsts["--region"]


def _summary(status, tasks):
    return local_run.RunSummary("training_pipeline", "runs/x", status, 1.0, {}, tasks)


def test_exit_codes_tell_a_gate_from_a_failure():
    ok = local_run.TaskSummary("train", "SUCCESS", 1.0)
    assert local_run.exit_code(_summary("SUCCESS", [ok])) == 0
    gate = local_run.TaskSummary("validation-gate", "FAILURE", 1.0)
    assert local_run.exit_code(_summary("FAILURE", [ok, gate])) == 3
    broken = local_run.TaskSummary("train", "FAILURE", 1.0)
    assert local_run.exit_code(_summary("FAILURE", [broken])) == 1
    not_blessed = local_run.TaskSummary("evaluate", "SUCCESS", 1.0, {}, {"blessing": {"path": "b", "metadata": {
        "blessed": False, "failed_thresholds": ["roc_auc does not beat 0.5"]}}})
    assert local_run.exit_code(_summary("SUCCESS", [not_blessed])) == 3


@pytest.mark.parametrize("source, name", [
    ("wa_churn.csv", "wa-churn"), ("bundled:penguins.csv", "penguins"), ("gs://b/churn/span-3/data.csv", "data"),
    ("/data/2024_Sales Data.parquet", "sales-data"), ("/x/123.csv", "model"), ("s3://bucket/tables/", "tables"),
])
def test_a_local_run_names_the_model_after_its_table(source, name):
    from kfpc.components.push.manifest import _DNS1035

    assert local_run.model_name_for(source) == name and _DNS1035.match(name)
