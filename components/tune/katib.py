"""Katib backend: a ``kubeflow.org/v1beta1`` Experiment built from the search space, created through the
Kubernetes API, and its best trial read back.

No Katib SDK: ``kubeflow-katib`` pins protobuf < 5. The Experiment is plain data; the ``kubernetes`` client
creates it. Trials are ``batch/v1`` Jobs running ``python -m kfpc.components.tune.trial`` in the training
image with the training step's placement (GPU limit, node selector, tolerations, CPU / memory limits,
retries as the Job's ``backoffLimit``); Katib's StdOut collector reads the trial's ``validation_*=value`` lines.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from . import spec as S

GROUP, VERSION, PLURAL = "kubeflow.org", "v1beta1", "experiments"
API_VERSION = f"{GROUP}/{VERSION}"
CONTAINER = "training"
#: Katib algorithm names (suggestion services shipped with Katib: hyperopt's tpe and random, optuna's grid)
ALGORITHMS = {"tpe": "tpe", "random": "random", "grid": "grid"}
#: two groups (name, value), the shape Katib's StdOut collector needs; only our own metric lines match,
#: so Keras' epoch logs (``loss=...``) are not taken as metrics
METRICS_FORMAT = r"(validation_[A-Za-z0-9_]+)=([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class KatibError(ValueError):
    """The Experiment cannot be built or did not succeed; the message names the field or the condition."""


@dataclasses.dataclass(frozen=True)
class TrialPlacement:
    """Where trial pods run: the training step's placement (``kfpc.pipelines.placement.GpuOptions``).

    Attributes:
        gpu_count: GPUs per trial (0: CPU).
        accelerator_resource: the GPU's extended resource name.
        node_selector: node labels.
        tolerations: ``(key, operator, value, effect)`` each.
        cpu_limit, memory_limit: pod limits; empty: none.
        retries: the Job's ``backoffLimit`` (a preempted trial pod is retried).
    """

    gpu_count: int = 1
    accelerator_resource: str = "nvidia.com/gpu"
    node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)
    tolerations: tuple[tuple[str, str, str, str], ...] = (("nvidia.com/gpu", "Exists", "", "NoSchedule"),)
    cpu_limit: str = ""
    memory_limit: str = ""
    retries: int = 3

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialPlacement:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise KatibError(f"placement: unknown field(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(fields))}")
        values = dict(data)
        for key in ("node_selector", "tolerations"):
            if key in values:
                values[key] = tuple(tuple(v) for v in (values[key].items() if isinstance(values[key], Mapping)
                                                        else values[key]))
        return cls(**values)


def experiment_name(run_id: str) -> str:
    """``kfpc-tune-<run id>`` as a DNS-1123 label (lower case, other characters as ``-``, at most 63)."""
    text = re.sub(r"[^a-z0-9-]+", "-", f"kfpc-tune-{run_id}".lower())
    return text[:63].strip("-")


def _parameter(p: S.Parameter) -> dict:
    if p.type == S.CHOICE:
        return {"name": p.name, "parameterType": "categorical", "feasibleSpace": {"list": [p.encode(v) for v in p.values]}}
    space = {"min": p.encode(p.min), "max": p.encode(p.max), "distribution": "logUniform" if p.log else "uniform"}
    return {"name": p.name, "parameterType": "double" if p.type == S.FLOAT else "int", "feasibleSpace": space}


def trial_command(spec: S.SearchSpec, *, data_uri: str, label: str, base: Mapping[str, Any], statistics_uri: str = "",
                  schema_uri: str = "", task: str = "auto", validation_fraction: float = 0.1, seed: int = 42,
                  placeholder: str = "${{trialParameters.{name}}}") -> list[str]:
    """The trial's command line; searched parameters as ``--name=<placeholder>``."""
    command = ["python", "-m", "kfpc.components.tune.trial", f"--data={data_uri}", f"--label={label}",
               f"--spec={spec.to_json()}", f"--base={json.dumps(dict(base), sort_keys=True)}", f"--task={task}",
               f"--validation_fraction={validation_fraction}", f"--seed={seed}"]
    if statistics_uri:
        command.append(f"--statistics={statistics_uri}")
    if schema_uri:
        command.append(f"--schema={schema_uri}")
    return command + [f"--{p.name}={placeholder.format(name=p.name)}" for p in spec.parameters]


def build_experiment(spec: S.SearchSpec, *, name: str, namespace: str, image: str, data_uri: str, label: str,
                     base: Mapping[str, Any] | None = None, statistics_uri: str = "", schema_uri: str = "",
                     task: str = "auto", validation_fraction: float = 0.1, seed: int = 42,
                     placement: TrialPlacement | None = None, service_account: str = "") -> dict:
    """The Experiment manifest.

    Args:
        spec: the search space.
        name: Experiment name (a DNS-1123 label, at most 63 characters: Katib names trials after it).
        namespace: Kubernetes namespace.
        image: the training image trials run (the TF_GPU family image for GPU trials).
        data_uri: where trial pods read the Dataset (``gs://`` through a GCS FUSE mount, a PVC path).
        label: the label column.
        base: the pipeline's training parameters (unsearched ones keep these values).
        statistics_uri, schema_uri: optional input artifacts the trials read.
        task, validation_fraction, seed: as for train (the same in every trial).
        placement: trial pod placement; default one GPU on a GPU node.
        service_account: the trial pods' service account; empty: the namespace default.
    Returns:
        The manifest (a dict ready for ``create_namespaced_custom_object``).
    """
    placement = placement or TrialPlacement()
    if not NAME.match(name) or len(name) > 63:
        raise KatibError(f"experiment name must be a DNS-1123 label of at most 63 characters, got {name!r}")
    limits: dict[str, Any] = {}
    if placement.gpu_count > 0:
        limits[placement.accelerator_resource] = placement.gpu_count
    if placement.cpu_limit:
        limits["cpu"] = placement.cpu_limit
    if placement.memory_limit:
        limits["memory"] = placement.memory_limit
    container = {"name": CONTAINER, "image": image,
                 "command": trial_command(spec, data_uri=data_uri, label=label, base=base or {},
                                          statistics_uri=statistics_uri, schema_uri=schema_uri, task=task,
                                          validation_fraction=validation_fraction, seed=seed)}
    if limits:
        container["resources"] = {"limits": limits}
    pod: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    if placement.gpu_count > 0 and placement.node_selector:
        pod["nodeSelector"] = dict(placement.node_selector)
    if placement.gpu_count > 0 and placement.tolerations:
        pod["tolerations"] = [{k: v for k, v in (("key", key), ("operator", op), ("value", value), ("effect", effect))
                               if v} for key, op, value, effect in placement.tolerations]
    if service_account:
        pod["serviceAccountName"] = service_account
    algorithm: dict[str, Any] = {"algorithmName": ALGORITHMS[spec.algorithm]}
    if spec.algorithm in ("tpe", "random"):
        algorithm["algorithmSettings"] = [{"name": "random_state", "value": str(spec.seed)}]
    return {
        "apiVersion": API_VERSION,
        "kind": "Experiment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/created-by": "kfpc"}},
        "spec": {
            "objective": {"type": spec.direction, "objectiveMetricName": spec.metric},
            "algorithm": algorithm,
            "parallelTrialCount": spec.parallel_trials,
            "maxTrialCount": spec.max_trials,
            "maxFailedTrialCount": spec.max_failed_trials,
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"},
                                     "source": {"filter": {"metricsFormat": [METRICS_FORMAT]}}},
            "parameters": [_parameter(p) for p in spec.parameters],
            "trialTemplate": {
                "primaryContainerName": CONTAINER,
                "trialParameters": [{"name": p.name, "reference": p.name,
                                     "description": f"training parameter {p.name}"} for p in spec.parameters],
                "trialSpec": {
                    "apiVersion": "batch/v1", "kind": "Job",
                    "spec": {"backoffLimit": placement.retries, "template": {
                        # Katib's sidecar collector and Istio's proxy must not keep the Job from completing
                        "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                        "spec": pod}},
                },
            },
        },
    }


# ------------------------------------------------------------------------------------------ results


def _condition(experiment: Mapping) -> tuple[str, str]:
    for condition in reversed(experiment.get("status", {}).get("conditions", []) or []):
        if condition.get("status") == "True":
            return condition.get("type", ""), condition.get("message", "")
    return "", ""


def trials_from_katib(trials: Sequence[Mapping]) -> list[dict]:
    """Katib Trial objects -> the trial rows of :func:`kfpc.components.tune.core.result_from_trials`."""
    rows = []
    for trial in trials:
        assignments = {a["name"]: a["value"] for a in trial.get("spec", {}).get("parameterAssignments", [])}
        status = trial.get("status", {})
        metrics = {}
        for metric in (status.get("observation") or {}).get("metrics", []) or []:
            try:
                metrics[metric["name"]] = float(metric.get("latest", "nan"))
            except ValueError:  # Katib writes "unavailable" when a metric was never reported
                continue
        kind, message = _condition(trial)
        rows.append({"trial": trial.get("metadata", {}).get("name", ""), "hyperparameters": assignments,
                     "metrics": metrics, "state": "COMPLETE" if kind == "Succeeded" else "FAILED",
                     "error": None if kind == "Succeeded" else message or kind or "not finished"})
    return rows


def create_and_wait(manifest: Mapping, *, poll_seconds: float = 30.0, timeout_seconds: float = 7 * 24 * 3600,
                    api_client=None) -> tuple[dict, list[dict]]:
    """Create the Experiment (or find the one a retried task created) and wait until it ends.

    Returns:
        The final Experiment and its Trials.
    Raises:
        KatibError: the Experiment failed or did not end in time.
    """
    from kubernetes import client, config
    from kubernetes.client.rest import ApiException

    if api_client is None:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
    api = client.CustomObjectsApi(api_client)
    name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
    try:
        api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, dict(manifest))
    except ApiException as err:
        if err.status != 409:  # 409: a previous attempt of this task created it; wait for that one
            raise
    deadline = time.time() + timeout_seconds
    while True:
        experiment = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        kind, message = _condition(experiment)
        if kind in ("Succeeded", "Failed"):
            break
        if time.time() > deadline:
            raise KatibError(f"experiment {namespace}/{name} did not end within {timeout_seconds} s (last: {kind})")
        time.sleep(poll_seconds)
    trials = api.list_namespaced_custom_object(
        GROUP, VERSION, namespace, "trials", label_selector=f"katib.kubeflow.org/experiment={name}")["items"]
    if kind == "Failed" and not any(t for t in trials_from_katib(trials) if t["state"] == "COMPLETE"):
        raise KatibError(f"experiment {namespace}/{name} failed: {message}")
    return experiment, trials
