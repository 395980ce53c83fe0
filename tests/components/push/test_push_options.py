"""The push signature is declared once (``push/options.py``): ``kfpc push`` is built from it, and the KFP
components and the cores must take exactly those options with the same defaults."""

from __future__ import annotations

import argparse
import inspect

import pytest

from kfpc.components.push import cli, component, core, options

#: what a component takes besides the options: the artifacts, where and under which name, the verdict
NOT_OPTIONS = {
    "kserve": {"model", "manifest", "serving_root", "name", "blessing", "data", "monitoring", "blessed",
               "force"},
    "vertex": {"model", "requests", "vertex_model", "vertex_endpoint", "serving_root", "name", "project", "location",
               "blessing", "blessed", "force"},
}
#: what only the core takes: local paths, clients, live state, how often to poll
CORE_ONLY = {"model_dir", "serving_root", "name", "project", "location", "blessed", "force", "output_dir",
             "data_dir", "monitoring_dir", "existing_manifest", "storage_client", "kube_client", "server_startup_timeout", "poll_s",
             "node_selector", "current_traffic_split", "credentials", "sleep", "clock"}
TARGETS = {
    "kserve": (options.KSERVE, component.push_kserve, core.push_kserve),
    "vertex": (options.VERTEX, component.push_vertex, core.push_vertex),
}


def _defaults(func) -> dict:
    return {name: p.default for name, p in inspect.signature(getattr(func, "python_func", func)).parameters.items()}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_component_takes_exactly_the_declared_options(target):
    declared, op, _ = TARGETS[target]
    taken = _defaults(op)
    assert set(taken) - NOT_OPTIONS[target] == {o.name for o in declared}
    assert {o.name: taken[o.name] for o in declared} == {o.name: o.default for o in declared}
    # what the compiled component says, too (the literal KFP copies into the YAML)
    inputs = op.component_spec.inputs
    assert {o.name: inputs[o.name].default for o in declared} == {o.name: o.default for o in declared}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_core_takes_the_declared_options_with_their_defaults(target):
    declared, _, func = TARGETS[target]
    taken = _defaults(func)
    assert {o.name for o in declared} <= set(taken), {o.name for o in declared} - set(taken)
    assert set(taken) - {o.name for o in declared} <= CORE_ONLY, set(taken) - {o.name for o in declared} - CORE_ONLY
    assert {o.name: taken[o.name] for o in declared} == {o.name: o.default for o in declared}


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_command_line_offers_every_option_with_its_default(target):
    parser = argparse.ArgumentParser(prog="kfpc")
    cli.register(parser.add_subparsers(dest="command"))
    extra = ["--project", "p", "--region", "l"] if target == "vertex" else []
    args = parser.parse_args(["push", target, "m", "--serving-root", "r", "--name", "n", *extra])
    declared = TARGETS[target][0]
    assert options.values(args, declared) == {o.name: o.default for o in declared}
    flags = {o.option_string for o in declared}
    assert {"--canary", "--bake", "--max-p99-ms", "--timeout"} & flags or target == "vertex"


def test_a_flag_reaches_the_core_under_the_option_name():
    parser = argparse.ArgumentParser(prog="kfpc")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["push", "kserve", "m", "--serving-root", "r", "--name", "n", "--canary", "10",
                              "--memory-limit", "8Gi", "--promote", "--bake", "1.5"])
    given = options.values(args, options.KSERVE)
    assert (given["canary_traffic_percent"], given["memory_limit"], given["promote"], given["bake_s"]) == (
        10, "8Gi", True, 1.5)
