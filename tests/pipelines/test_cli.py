"""The kfpc command line: clear errors for unknown pipelines and parameters, component listing, compile."""

import subprocess
import sys

import pytest
import yaml

from kfpc.pipelines import cli, compiler, local_run


def kfpc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kfpc.pipelines.cli", *args], capture_output=True, text=True)


def test_unknown_pipeline_is_a_clear_error():
    result = kfpc("run", "nope")
    assert result.returncode == 2
    assert "unknown pipeline 'nope'; known: retraining_pipeline, training_pipeline" in result.stderr


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
    assert written == ["retraining_pipeline.yaml", "training_pipeline.yaml"]
    spec = next(yaml.safe_load_all((tmp_path / "training_pipeline.yaml").read_text()))
    assert spec["pipelineInfo"]["name"] == "training-pipeline"


def test_compile_components_go_under_the_output_dir(tmp_path):
    result = kfpc("compile", "--target", "kfp", "--output-dir", str(tmp_path), "--components")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "components" / "ingest" / "component.yaml").exists()
    assert (tmp_path / "components" / "push" / "push_kserve.yaml").exists()


def test_help_lists_every_command():
    result = kfpc("--help")
    for command in ("run", "compile", "components", "validate", "serve", "push", "submit", "schedule"):
        assert f"    {command}" in result.stdout
