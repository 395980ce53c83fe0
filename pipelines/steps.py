"""The steps both pipelines share, written once: plain functions that add tasks to the pipeline being built.

Each takes ``p``, the calling pipeline's parameters (``p = dict(locals())`` on the pipeline function's first
line), and passes on the ones a component takes under the same name, so a parameter added to a pipeline's
signature reaches preflight, train or evaluate without another edit here.

Plain functions, not a nested ``@dsl.pipeline``: the compiled YAML keeps one flat DAG (task names and the
``blessed`` condition as before), and kfp.local cannot select an artifact out of a sub-DAG.
"""

from __future__ import annotations

import inspect
from typing import Any

from kfp import dsl

from kfpc.components import images
from kfpc.pipelines import placement

#: training parameters passed to the train component under the same name
TRAINING_PARAMETERS = ("label", "task", "hidden_units", "dropout", "learning_rate", "batch_size", "epochs",
                       "patience", "seed", "validation_fraction")


def _accepted(component, p: dict[str, Any]) -> dict[str, Any]:
    """The pipeline parameters ``component`` takes under the same name."""
    names = inspect.signature(component.python_func).parameters
    return {name: value for name, value in p.items() if name in names}


def preflight(p: dict[str, Any], source_uri):
    """Preflight of ``source_uri`` with every pipeline parameter it checks; its ``Output`` lists the dropped columns."""
    from kfpc.components.preflight.component import preflight as preflight_op

    return preflight_op(**{**_accepted(preflight_op, p), "source_uri": source_uri})


def ingest(p: dict[str, Any], source_uri, drop_columns):
    """Ingest ``source_uri`` into a train/eval Dataset the way the pipeline's parameters say."""
    from kfpc.components.ingest.component import ingest as ingest_op

    return ingest_op(source_uri=source_uri, key_column=p["key_column"], eval_fraction=p["eval_fraction"],
                     drop_columns=drop_columns, numeric_columns=p["numeric_columns"], label=p["label"])


def train(p: dict[str, Any], train_op, target: str, options: placement.GpuOptions, data, stats, schema,
          overrides: dict[str, Any] | None = None):
    """The placed training task on ``data`` (GPU node for ``target``).

    ``overrides`` replaces pipeline parameters by other values, e.g. a tuning step's chosen hyperparameters.
    """
    values = {**{name: p[name] for name in TRAINING_PARAMETERS}, **(overrides or {})}
    return placement.placed_training(
        train_op, target, options, data=data.outputs["data"], statistics=stats.outputs["statistics"],
        schema=schema.outputs["schema"], **values,
    )


def evaluate(p: dict[str, Any], data, model, stats, baseline_model=None):
    """Evaluate the Model artifact ``model`` on the eval split (against ``baseline_model`` when given)."""
    from kfpc.components.evaluate.component import evaluate as evaluate_op

    baseline = {} if baseline_model is None else {"baseline_model": baseline_model}
    gates = {name: p[name] for name in ("min_accuracy", "max_regression") if name in p}
    return evaluate_op(data=data.outputs["data"], model=model, **baseline,
                       statistics=stats.outputs["statistics"], **gates, config_json=p["eval_config_json"])


def push_if_blessed(p: dict[str, Any], evaluation, model, data, condition: str, then=None, stats=None):
    """``push_kserve`` of the Model artifact ``model`` inside ``dsl.If(blessed)`` named ``condition``.

    ``stats`` (the statistics task of the training data), when given, adds ``monitoring_config`` under the same
    condition: alert rules and dashboard from the model, these statistics and the eval split, which the push
    writes beside its manifest. ``then(pushed)``, when given, adds tasks that run after the push under the
    same condition.
    """
    from kfpc.components.push.component import push_kserve

    with dsl.If(evaluation.outputs["Output"] == True, name=condition):  # noqa: E712 (a KFP condition)
        monitoring = {}
        if stats is not None:
            from kfpc.components.monitor.component import monitoring_config

            config = monitoring_config(model=model, statistics=stats.outputs["statistics"],
                                       data=data.outputs["data"], model_name=p["model_name"],
                                       namespace=p["namespace"])
            monitoring = {"monitoring": config.outputs["monitoring"]}
        pushed = push_kserve(
            model=model,
            blessing=evaluation.outputs["blessing"],
            data=data.outputs["data"],
            **monitoring,
            name=p["model_name"],
            serving_root=p["serving_root"],
            namespace=p["namespace"],
            mode=p["push_mode"],
            canary_traffic_percent=p["canary_traffic_percent"],
            promote=p["promote"],
            prometheus_url=p["prometheus_url"],
            prometheus_selector=p["prometheus_selector"],
            # chosen at build time so that `kfpc compile --image-registry` moves it with the others
            image=images.SERVING,
        )
        if then is not None:
            then(pushed)
    return pushed
