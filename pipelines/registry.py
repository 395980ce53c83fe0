"""The pipelines kfpc ships, by name.

Each entry names a factory ``build(target: str = "kfp", **options)`` returning a ``@dsl.pipeline``
function; the target (``kfp`` or ``vertex``) decides compile-time placement such as GPU nodes.
Factories are imported lazily so that listing pipelines does not import TensorFlow or kserve.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

#: pipeline name -> (``module:factory``, one-line description)
PIPELINES: dict[str, tuple[str, str]] = {
    "training_pipeline": (
        "kfpc.pipelines.training:build_training_pipeline",
        "ingest -> statistics -> schema -> validate -> train (GPU node) -> evaluate -> push if blessed",
    ),
    "tuned_training_pipeline": (
        "kfpc.pipelines.tuned_training:build_tuned_training_pipeline",
        "ingest -> statistics -> schema -> validate -> tune (Optuna / Katib / Vertex AI) -> train the best "
        "configuration -> evaluate -> push if blessed",
    ),
    "retraining_pipeline": (
        "kfpc.pipelines.retraining:build_retraining_pipeline",
        "scheduled retraining: newest span vs production schema and previous span, evaluate against the "
        "served model, push only if better",
    ),
    "monitoring_pipeline": (
        "kfpc.pipelines.monitoring:build_monitoring_pipeline",
        "payload logs of a window -> skew vs training, drift vs the previous window -> report -> optionally "
        "submit retraining_pipeline when drift is confirmed",
    ),
    "validation_pipeline": (
        "kfpc.pipelines.validation:build_validation_pipeline",
        "big data: plan shards -> statistics per shard in parallel -> exact merge -> schema -> anomalies and "
        "drift vs the previous span",
    ),
}

TARGETS = ("kfp", "vertex")


class UnknownPipelineError(KeyError):
    """The pipeline name is not one kfpc ships."""

    def __str__(self) -> str:
        return f"unknown pipeline {self.args[0]!r}; known: {', '.join(sorted(PIPELINES))}"


def factory(name: str) -> Callable:
    """The factory of pipeline ``name``."""
    if name not in PIPELINES:
        raise UnknownPipelineError(name)
    module_name, attr = PIPELINES[name][0].split(":")
    return getattr(importlib.import_module(module_name), attr)


def local_defaults(name: str) -> dict:
    """Parameters ``kfpc run`` uses on this machine unless given (the module's ``LOCAL_DEFAULTS``)."""
    module_name = PIPELINES[name][0].split(":")[0] if name in PIPELINES else None
    if module_name is None:
        raise UnknownPipelineError(name)
    return dict(getattr(importlib.import_module(module_name), "LOCAL_DEFAULTS", {}))


def build(name: str, target: str = "kfp", **options):
    """Build pipeline ``name`` for ``target`` (``kfp`` or ``vertex``)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")
    return factory(name)(target=target, **options)
