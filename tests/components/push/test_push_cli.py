"""``kfpc push``: the subcommands parse, run the cores and return exit codes."""

from __future__ import annotations

import argparse
import json

from kfpc.components.push import cli


def _main(argv):
    parser = argparse.ArgumentParser(prog="kfpc")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_kserve_dry_run(fake_model, tmp_path, capsys):
    code = _main(["push", "kserve", str(fake_model), "--serving-root", str(tmp_path / "s"), "--name", "penguins",
                  "--output-dir", str(tmp_path / "out"), "--gpu", "1"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model_uri"] == f"{tmp_path / 's'}/penguins/v1" and summary["requests"] == 3
    assert (tmp_path / "out" / "inferenceservice.yaml").exists()


def test_not_blessed_exits_3_and_bad_input_exits_1(fake_model, tmp_path, capsys):
    assert _main(["push", "kserve", str(fake_model), "--serving-root", str(tmp_path), "--name", "p",
                  "--not-blessed"]) == 3
    assert "refusing to push" in capsys.readouterr().err
    assert _main(["push", "kserve", str(tmp_path / "nope"), "--serving-root", str(tmp_path), "--name", "p"]) == 1
    assert "does not exist" in capsys.readouterr().err


def test_vertex_dry_run(fake_model, tmp_path, capsys):
    code = _main(["push", "vertex", str(fake_model), "--serving-root", str(tmp_path / "s"), "--name", "penguins",
                  "--project", "kfpc-test", "--region", "us-central1"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["requests"] == [
        "ModelService.UploadModel", "EndpointService.CreateEndpoint", "EndpointService.DeployModel"]


def test_errors_and_artifacts_never_show_credentials(fake_model, tmp_path, capsys):
    code = _main(["push", "kserve", str(fake_model), "--serving-root", "https://alice:pa55word@h/models",
                  "--name", "p", "--mode", "cluster"])
    err = capsys.readouterr().err
    assert code == 1 and "pa55word" not in err and "alice:<redacted>@h" in err
    code = _main(["push", "kserve", str(fake_model), "--serving-root", str(tmp_path / "s"), "--name", "p",
                  "--image", "registry.example.com/kfpc?token=t0k3n", "--output-dir", str(tmp_path / "out")])
    assert code == 0
    for name in ("inferenceservice.yaml", "requests.json", "push.json"):
        assert "t0k3n" not in (tmp_path / "out" / name).read_text()
    assert "token=<redacted>" in (tmp_path / "out" / "inferenceservice.yaml").read_text()
