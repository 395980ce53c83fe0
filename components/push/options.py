"""The push options, declared once: name, default, help and command-line flag of every push parameter.

``kfpc push`` builds its arguments from :data:`KSERVE` and :data:`VERTEX`; the KFP components
(``push_kserve``, ``push_vertex``) and the cores (``core.push_kserve``, ``core.push_vertex``) must take
the same parameters with the same defaults, which ``tests/components/push/test_push_options.py`` checks (a KFP
component's defaults are literals: KFP copies its source into the YAML). Defaults come from
:mod:`kfpc.components.defaults`.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from .. import defaults as D


@dataclasses.dataclass(frozen=True)
class Option:
    """One push parameter.

    Attributes:
        name: the parameter name in the component and the core.
        default: its default (its type is the parameter's type).
        help: one line for ``--help``.
        flag: the command-line flag; empty: ``--`` + ``name`` with dashes.
        choices: the allowed values, when a closed set.
        cli: whether ``kfpc push`` offers it (False for what only a pipeline can give, e.g. a data artifact).
    """

    name: str
    default: Any
    help: str
    flag: str = ""
    choices: tuple = ()
    cli: bool = True

    @property
    def option_string(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")

    def add_to(self, parser: argparse.ArgumentParser) -> None:
        """Add this option to ``parser`` (a bool defaulting to False becomes a switch)."""
        text = f"{self.help} (default {self.default!r})" if self.default not in ("", False) else self.help
        if isinstance(self.default, bool):
            if self.default:
                raise ValueError(f"{self.name}: a switch must default to False")
            parser.add_argument(self.option_string, dest=self.name, action="store_true", help=self.help)
            return
        parser.add_argument(self.option_string, dest=self.name, type=type(self.default), default=self.default,
                            choices=self.choices or None, help=text)


#: push_kserve's options besides the model, the serving root, the name and the blessing
KSERVE = (
    Option("mode", D.PUSH_MODE, "dry_run: manifest and requests only; local: serve the copy and smoke-test it; "
           "cluster: create/patch the InferenceService", choices=("dry_run", "local", "cluster")),
    Option("namespace", D.NAMESPACE, "Kubernetes namespace"),
    Option("canary_traffic_percent", 0, "canary traffic percent (1..99); 0 sends all traffic to the new model",
           flag="--canary"),
    Option("promote", False, "promote the canary once Ready and baked within the thresholds below"),
    Option("deployment_mode", "Standard", "Standard | Knative"),
    Option("predictor", "kfpc", "kfpc (our server image) or tensorflow (KServe's TF Serving runtime, v1)",
           choices=("kfpc", "tensorflow")),
    Option("image", "", "predictor image for kfpc; empty: this release's serving image"),
    Option("protocol", "", "v1 | v2; empty: v2 for kfpc, v1 for tensorflow"),
    Option("cpu_request", D.CPU_REQUEST, "CPU request per replica"),
    Option("memory_request", D.MEMORY_REQUEST, "memory request per replica"),
    Option("cpu_limit", D.CPU_LIMIT, "CPU limit per replica"),
    Option("memory_limit", D.MEMORY_LIMIT, "memory limit per replica"),
    Option("gpu", D.GPU, "GPUs per replica"),
    Option("min_replicas", D.MIN_REPLICAS, "least replicas"),
    Option("max_replicas", D.MAX_REPLICAS, "most replicas"),
    Option("service_account", "", "the predictor pods' service account (must read the serving root)"),
    Option("runtime_version", "", "TF Serving image tag for the tensorflow predictor"),
    Option("batcher_max_batch_size", 0, "> 0 adds KServe's request batcher with this batch size"),
    Option("batcher_max_latency_ms", 0, "the batcher's longest wait for a batch, ms (0: KServe's default)"),
    Option("timeout_s", D.TIMEOUT_S, "seconds to wait for Ready per step", flag="--timeout"),
    Option("bake_s", D.BAKE_S, "seconds the canary must serve within the thresholds before promotion",
           flag="--bake"),
    Option("max_error_rate", D.MAX_ERROR_RATE, "the canary's highest share of 5xx answers"),
    Option("max_p99_latency_ms", D.MAX_P99_LATENCY_MS, "the canary's highest p99 latency, ms", flag="--max-p99-ms"),
    Option("min_requests", D.MIN_REQUESTS, "requests the canary (and the stable revision) must have answered"),
    Option("max_error_rate_increase", D.MAX_ERROR_RATE_INCREASE,
           "with Prometheus: how far the canary's 5xx share may exceed the stable revision's"),
    Option("max_p99_ratio", D.MAX_P99_RATIO, "with Prometheus: the canary's p99 may be this factor times the stable's"),
    Option("prometheus_url", "", "judge the canary through this Prometheus' query API"),
    Option("prometheus_selector", "",
           "label matchers selecting the canary's series ({namespace}, {name}, {revision} filled in)"),
    Option("prometheus_stable_selector", "",
           "label matchers selecting the stable revision's series ({stable_revision} too); empty: the canary's "
           "with {revision} = the stable revision"),
    Option("canary_metrics_url", "", "without Prometheus: the canary's own /metrics URL"),
)

#: push_vertex's options besides the model, the serving root, the name, project, location and the blessing
VERTEX = (
    Option("mode", D.PUSH_MODE, "dry_run: build the requests only; cloud: upload and deploy",
           choices=("dry_run", "cloud")),
    Option("container", D.VERTEX_CONTAINER, "kfpc (our serving image) or tensorflow (Vertex's prebuilt TF Serving)",
           choices=("kfpc", "tensorflow")),
    Option("image", "", "serving image for kfpc; empty: this release's serving image"),
    Option("tf_version", D.VERTEX_TF_VERSION, "prebuilt TensorFlow container version"),
    Option("machine_type", D.VERTEX_MACHINE_TYPE, "serving machine type"),
    Option("accelerator_type", "", "e.g. NVIDIA_TESLA_T4; empty: none"),
    Option("accelerator_count", 0, "accelerators per replica"),
    Option("min_replica_count", D.VERTEX_MIN_REPLICA_COUNT, "least replicas"),
    Option("max_replica_count", D.VERTEX_MAX_REPLICA_COUNT, "most replicas"),
    Option("traffic_percent", D.VERTEX_TRAFFIC_PERCENT, "the new model's share of the endpoint's traffic"),
    Option("endpoint", "", "existing endpoint (resource name or id); empty creates one"),
    Option("parent_model", "", "registry model to add a version to; empty registers a new model"),
    Option("service_account", "", "the deployed model's service account"),
    Option("timeout_s", D.VERTEX_TIMEOUT_S, "seconds per long-running operation", flag="--timeout"),
)


def add_arguments(parser: argparse.ArgumentParser, options: tuple[Option, ...]) -> None:
    """Add every option ``kfpc push`` offers to ``parser``."""
    for option in options:
        if option.cli:
            option.add_to(parser)


def values(args: argparse.Namespace, options: tuple[Option, ...]) -> dict[str, Any]:
    """The parsed options as keyword arguments of the core."""
    return {option.name: getattr(args, option.name) for option in options if option.cli}
