"""One source of defaults: every component, core, pipeline and command line that takes a training
hyperparameter, an evaluation gate, a push resource or a serving limit defaults it to
:mod:`kfpc.components.defaults`. A KFP component's defaults are literals (KFP copies its source), so this
is what keeps them from drifting apart again (learning rate 0.01 vs 0.001 was such a drift)."""

import argparse
import inspect

import pytest

from kfpc.components import defaults as D

#: parameter name -> the one default, wherever a signature takes that name
ONE_SOURCE = {
    "hidden_units": list(D.HIDDEN_UNITS),
    "dropout": D.DROPOUT,
    "learning_rate": D.LEARNING_RATE,
    "batch_size": D.BATCH_SIZE,
    "epochs": D.EPOCHS,
    "patience": D.PATIENCE,
    "seed": D.SEED,
    "shuffle_buffer": D.SHUFFLE_BUFFER,
    "eval_fraction": D.EVAL_FRACTION,
    "validation_fraction": D.VALIDATION_FRACTION,
    "min_accuracy": D.MIN_ACCURACY,
    "max_regression": D.MAX_REGRESSION,
    "cpu_request": D.CPU_REQUEST,
    "memory_request": D.MEMORY_REQUEST,
    "cpu_limit": D.CPU_LIMIT,
    "memory_limit": D.MEMORY_LIMIT,
    "gpu": D.GPU,
    "min_replicas": D.MIN_REPLICAS,
    "max_replicas": D.MAX_REPLICAS,
    "timeout_s": D.TIMEOUT_S,
    "bake_s": D.BAKE_S,
    "max_error_rate": D.MAX_ERROR_RATE,
    "max_p99_latency_ms": D.MAX_P99_LATENCY_MS,
    "min_requests": D.MIN_REQUESTS,
    "max_error_rate_increase": D.MAX_ERROR_RATE_INCREASE,
    "max_p99_ratio": D.MAX_P99_RATIO,
    "max_batch_size": D.MAX_BATCH_SIZE,
    "max_batch_wait_ms": D.MAX_BATCH_WAIT_MS,
    "max_wait_ms": D.MAX_BATCH_WAIT_MS,
    "max_rows": D.MAX_ROWS,
    "max_string_length": D.MAX_STRING_LENGTH,
    "max_request_bytes": D.MAX_REQUEST_BYTES,
    "header_timeout_s": D.HEADER_TIMEOUT_S,
    "body_timeout_s": D.BODY_TIMEOUT_S,
}


#: component -> parameters that share a name with ONE_SOURCE but mean something else there (still one source)
OTHER_MEANING = {
    "push_vertex": {"timeout_s": D.VERTEX_TIMEOUT_S},  # per long-running Vertex operation, not per rollout step
    "monitoring_config": {"min_requests": D.ALERT_MIN_REQUESTS},  # per alert window, not per canary bake
}


def _normal(value):
    return list(value) if isinstance(value, tuple) else value


def _signature_defaults(func) -> dict:
    func = getattr(func, "python_func", func)  # a KFP component: the function KFP read the defaults from
    return {name: parameter.default for name, parameter in inspect.signature(func).parameters.items()
            if parameter.default is not inspect.Parameter.empty}


def _callables():
    from kfpc.components.evaluate import component as evaluate_component
    from kfpc.components.evaluate import core as evaluate_core
    from kfpc.components.evaluate import thresholds
    from kfpc.components.ingest import component as ingest_component
    from kfpc.components.ingest import core as ingest_core
    from kfpc.components.preflight import component as preflight_component
    from kfpc.components.preflight import core as preflight_core
    from kfpc.components.push import component as push_component
    from kfpc.components.push import core as push_core
    from kfpc.components.push import manifest
    from kfpc.components.train import component as train_component
    from kfpc.components.train import core as train_core
    from kfpc.serving import batching, model, protocol, server

    return {
        "train component": (train_component.train, 9),
        "train core": (train_core.train, 9),
        "preflight component": (preflight_component.preflight, 10),
        "preflight core": (preflight_core.check_parameters, 10),
        "ingest component": (ingest_component.ingest, 1),
        "ingest core": (ingest_core.ingest, 1),
        "evaluate component": (evaluate_component.evaluate, 2),
        "evaluate core": (evaluate_core.pipeline_config, 2),
        "evaluate thresholds": (thresholds.default_config, 2),
        "push_kserve component": (push_component.push_kserve, 12),
        "push_kserve core": (push_core.push_kserve, 12),
        "serving options": (manifest.ServingOptions, 7),
        "server model options": (model.ModelOptions, 4),
        "server request limits": (protocol.Limits, 2),
        "server batcher": (batching.DynamicBatcher, 2),
        "server": (server.serve, 3),
    }


@pytest.mark.parametrize("where", sorted(_callables()))
def test_every_signature_defaults_to_the_one_source(where):
    func, at_least = _callables()[where]
    shared = {name: _normal(value) for name, value in _signature_defaults(func).items() if name in ONE_SOURCE}
    # at least this many of the shared parameters: a rename cannot make the check vacuous
    assert len(shared) >= at_least, (where, sorted(shared))
    assert shared == {name: ONE_SOURCE[name] for name in shared}, where


def _component_names():
    from kfpc.pipelines import compiler

    return sorted(compiler.COMPONENTS)


@pytest.mark.parametrize("name", _component_names())
def test_every_registered_component_defaults_shared_parameters_to_the_one_source(name):
    """Also the components added after this list was written (tune, monitor, registry, feature_importance...)."""
    from kfpc.pipelines import compiler

    defaults = _signature_defaults(compiler.load_component(name))
    shared = {key: _normal(value) for key, value in defaults.items() if key in ONE_SOURCE}
    expected = {**ONE_SOURCE, **OTHER_MEANING.get(name, {})}
    assert shared == {key: expected[key] for key in shared}, name


def _pipeline_names():
    from kfpc.pipelines import registry

    return sorted(registry.PIPELINES)


@pytest.mark.parametrize("name", _pipeline_names())
def test_every_pipeline_defaults_shared_parameters_to_the_one_source(name):
    from kfpc.pipelines import registry

    inputs = registry.build(name, target="kfp").component_spec.inputs
    shared = {key: spec.default for key, spec in inputs.items() if key in ONE_SOURCE and spec.default is not None}
    assert shared == {key: ONE_SOURCE[key] for key in shared}, name


@pytest.mark.parametrize("name", ["training_pipeline", "retraining_pipeline"])
def test_both_pipelines_default_to_the_one_source(name):
    from kfpc.pipelines import registry

    inputs = registry.build(name, target="kfp").component_spec.inputs
    shared = {key: spec.default for key, spec in inputs.items() if key in ONE_SOURCE and spec.default is not None}
    assert len(shared) >= 10, sorted(shared)
    assert shared == {key: ONE_SOURCE[key] for key in shared}
    assert inputs["namespace"].default == D.PIPELINE_NAMESPACE and inputs["push_mode"].default == D.PUSH_MODE


def _parser_defaults(parser: argparse.ArgumentParser) -> dict:
    return {action.dest: action.default for action in parser._actions if action.dest != "help"}


def test_the_command_lines_default_to_the_one_source():
    from kfpc.pipelines import cli
    from kfpc.serving.__main__ import build_parser

    server = _parser_defaults(build_parser())
    limits = {key: server[key] for key in ONE_SOURCE if key in server}
    assert len(limits) == 7 and limits == {key: ONE_SOURCE[key] for key in limits}

    push = cli.build_parser().parse_args(["push", "kserve", "m", "--serving-root", "r", "--name", "n"])
    shared = {key: value for key, value in vars(push).items() if key in ONE_SOURCE}
    assert len(shared) >= 12 and shared == {key: ONE_SOURCE[key] for key in shared}
    assert push.namespace == D.NAMESPACE and push.mode == D.PUSH_MODE


def test_kfpc_run_passes_the_pipelines_defaults_to_preflight():
    from kfpc.pipelines import local_run, registry

    given = local_run.pipeline_defaults(registry.build("training_pipeline", target="kfp"))
    assert {key: given[key] for key in ("learning_rate", "epochs", "patience")} == {
        "learning_rate": D.LEARNING_RATE, "epochs": D.EPOCHS, "patience": D.PATIENCE}


def test_the_train_component_defaults_the_gbdt_to_its_family_defaults():
    """The GBDT's hyperparameters live in ``gbdt.DEFAULTS``; the train component spells the ones it exposes as
    ``gbdt_<name>`` literals (KFP copies its source), which must say the same."""
    from kfpc.components.train import gbdt
    from kfpc.components.train.component import train

    exposed = {name[len("gbdt_"):]: p.default for name, p in inspect.signature(train.python_func).parameters.items()
               if name.startswith("gbdt_") and name != "gbdt_hyperparameters"}
    assert exposed and exposed == {name: gbdt.DEFAULTS[name] for name in exposed}


#: push_vertex's Vertex AI deployment options: the component spells them as literals, the core reads them here
VERTEX = {"container": D.VERTEX_CONTAINER, "tf_version": D.VERTEX_TF_VERSION, "machine_type": D.VERTEX_MACHINE_TYPE,
          "min_replica_count": D.VERTEX_MIN_REPLICA_COUNT, "max_replica_count": D.VERTEX_MAX_REPLICA_COUNT,
          "traffic_percent": D.VERTEX_TRAFFIC_PERCENT, "timeout_s": D.VERTEX_TIMEOUT_S}


def test_push_vertex_component_and_core_default_the_deployment_to_the_one_source():
    from kfpc.components.push import component, core

    for func in (component.push_vertex, core.push_vertex):
        defaults = _signature_defaults(func)
        assert {name: defaults[name] for name in VERTEX} == VERTEX, func
