"""``kfpc serve`` registration and the server entry point's failure on a bad model folder."""

from __future__ import annotations

import argparse
import shutil

import pytest

from kfpc.serving import cli
from kfpc.serving.local import LocalServer, ServerStartError


def test_register_adds_serve_with_a_callable_default():
    parser = argparse.ArgumentParser(prog="kfpc")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--model-dir", "out/model", "--port", "9001", "--no-batching"])
    assert args.func is cli.run
    line = cli.command(args)
    assert line[1:3] == ["-m", "kfpc.serving"]
    assert line[line.index("--model_dir") + 1] == "out/model" and line[line.index("--http_port") + 1] == "9001"
    assert line[line.index("--batching") + 1] == "false"
    assert "--grpc_port" in line
    no_grpc = cli.command(parser.parse_args(["serve", "--model-dir", "m", "--grpc-port", "0"]))
    assert no_grpc[no_grpc.index("--enable_grpc") + 1] == "false"


def test_entry_point_accepts_the_image_contract_flags():
    from kfpc.serving.__main__ import build_parser

    args = build_parser().parse_args(["--model_dir", "/mnt/models", "--model_name", "penguins", "--http_port", "8080",
                                      "--batching", "false", "--max_batch_size", "64"])
    assert (args.model_dir, args.model_name, args.http_port, args.batching, args.max_batch_size) == (
        "/mnt/models", "penguins", 8080, False, 64)


def test_server_on_a_folder_without_version_exits_with_the_layout_error(tmp_path, model_dir):
    flat = tmp_path / "flat"
    shutil.copytree(model_dir / "1", flat / "saved")  # the SavedModel one level too deep, no numeric folder
    with pytest.raises(ServerStartError) as caught:
        with LocalServer(flat, startup_timeout=60):
            pass
    assert "no SavedModel found" in str(caught.value)


def test_server_serves_the_version_folder_directly(model_dir):
    import json
    import urllib.request

    with LocalServer(model_dir / "1", model_name="direct", batching=False) as server:
        assert server.process.poll() is None
        with urllib.request.urlopen(f"{server.url}/v2/models/direct") as response:
            assert len(json.loads(response.read())["inputs"]) == 7
    assert server.process.poll() is not None  # stopped on exit


def test_kfpc_serve_returns_the_server_exit_code(tmp_path):
    parser = argparse.ArgumentParser(prog="kfpc")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--model-dir", str(tmp_path / "absent"), "--port", "0", "--grpc-port", "0"])
    assert args.func(args) != 0  # the server could not load the model, and kfpc serve says so


def test_more_than_one_worker_is_refused():
    from kfpc.serving.__main__ import main

    with pytest.raises(SystemExit, match="one worker per pod"):
        main(["--model_dir", "/nowhere", "--workers", "2"])
