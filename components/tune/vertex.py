"""Vertex AI backend: the inputs of google-cloud-pipeline-components' ``HyperparameterTuningJobRunOp``
built from the search space, and the best trial read back from the finished job (GCPC 2.22 ships no
step for that).

Parameters and metrics are serialized as GCPC's ``serialize_parameters`` / ``serialize_metrics`` do
(``google.cloud.aiplatform.hyperparameter_tuning`` specs -> ``StudySpec`` dicts). Trials run
``python -m kfpc.components.tune.trial`` in the training image; Vertex AI appends ``--<parameter>=<value>``
to its arguments and reads the metric the trial reports (``cloudml-hypertune``'s file).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from . import katib
from . import spec as S

#: spec algorithm -> StudySpec.Algorithm (Vertex's default algorithm is Bayesian optimisation)
ALGORITHMS = {"tpe": "ALGORITHM_UNSPECIFIED", "random": "RANDOM_SEARCH", "grid": "GRID_SEARCH"}


class VertexTuningError(ValueError):
    """The job's result cannot be read; the message names the job and what is missing."""


def parameter_specs(spec: S.SearchSpec) -> dict:
    """``google.cloud.aiplatform.hyperparameter_tuning`` specs, one per searched parameter."""
    from google.cloud.aiplatform import hyperparameter_tuning as hpt

    out = {}
    for p in spec.parameters:
        scale = "log" if p.log else "linear"
        if p.type == S.FLOAT:
            out[p.name] = hpt.DoubleParameterSpec(min=p.min, max=p.max, scale=scale)
        elif p.type == S.INT:
            out[p.name] = hpt.IntegerParameterSpec(min=int(p.min), max=int(p.max), scale=scale)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p.values):
            # DISCRETE values must be increasing
            out[p.name] = hpt.DiscreteParameterSpec(values=sorted(float(v) for v in p.values), scale="linear")
        else:
            out[p.name] = hpt.CategoricalParameterSpec(values=[p.encode(v) for v in p.values])
    return out


def serialize_parameters(parameters: Mapping[str, Any]) -> list[dict]:
    """GCPC's ``hyperparameter_tuning_job.serialize_parameters``, the same two calls, without GCPC: GCPC is a
    compile-time tool and not in the deploy image this runs in (a test checks both give the same)."""
    from google.cloud.aiplatform_v1.types import study

    return [study.StudySpec.ParameterSpec.to_dict(p._to_parameter_spec(parameter_id=name))
            for name, p in parameters.items()]


def serialize_metrics(metrics: Mapping[str, str]) -> list[dict]:
    """GCPC's ``hyperparameter_tuning_job.serialize_metrics`` without GCPC (see :func:`serialize_parameters`)."""
    from google.cloud.aiplatform_v1.types import study

    return [study.StudySpec.MetricSpec.to_dict(study.StudySpec.MetricSpec({"metric_id": name, "goal": goal.upper()}))
            for name, goal in metrics.items()]


def build_request(spec: S.SearchSpec, *, image: str, data_uri: str, label: str, base_output_directory: str,
                  base: Mapping[str, Any] | None = None, statistics_uri: str = "", schema_uri: str = "",
                  task: str = "auto", validation_fraction: float = 0.1, seed: int = 42,
                  display_name: str = "kfpc-tuning", machine_type: str = "n1-standard-8",
                  accelerator_type: str = "NVIDIA_TESLA_T4", accelerator_count: int = 1, replica_count: int = 1,
                  boot_disk_size_gb: int = 100, service_account: str = "", network: str = "") -> dict:
    """The keyword arguments of ``HyperparameterTuningJobRunOp`` (GCPC 2.22) for this search.

    Args:
        spec: the search space.
        image: the training image trials run.
        data_uri: the Dataset's ``gs://`` URI (trials read it through ``/gcs``).
        label: the label column.
        base_output_directory: ``gs://`` folder of the job's outputs.
        base, statistics_uri, schema_uri, task, validation_fraction, seed: as for the trial.
        display_name: the job's name.
        machine_type, accelerator_type, accelerator_count, replica_count, boot_disk_size_gb: each trial's
            workers (the training step's Vertex placement); ``accelerator_count=0`` for CPU.
        service_account, network: of the job; empty: the project's defaults.
    Returns:
        ``display_name``, ``base_output_directory``, ``worker_pool_specs``, ``study_spec_metrics``,
        ``study_spec_parameters``, ``max_trial_count``, ``parallel_trial_count``, ``max_failed_trial_count``,
        ``study_spec_algorithm``, ``service_account``, ``network``.
    """
    command = katib.trial_command(spec, data_uri=data_uri, label=label, base=base or {},
                                  statistics_uri=statistics_uri, schema_uri=schema_uri, task=task,
                                  validation_fraction=validation_fraction, seed=seed)
    # Vertex AI appends --<parameter>=<value> itself: the fixed part only
    fixed = [c for c in command if not any(c.startswith(f"--{p.name}=") for p in spec.parameters)]
    machine = {"machine_type": machine_type}
    if accelerator_count > 0 and accelerator_type:
        machine.update({"accelerator_type": accelerator_type, "accelerator_count": accelerator_count})
    pool = {"machine_spec": machine, "replica_count": 1,
            "disk_spec": {"boot_disk_type": "pd-ssd", "boot_disk_size_gb": boot_disk_size_gb},
            "container_spec": {"image_uri": image, "command": fixed[:3], "args": fixed[3:]}}
    pools = [pool]
    if replica_count > 1:  # workerpool1: the other workers of a multi-worker trial (CLUSTER_SPEC -> TF_CONFIG)
        pools.append({**pool, "replica_count": replica_count - 1})
    return {
        "display_name": display_name,
        "base_output_directory": base_output_directory,
        "worker_pool_specs": pools,
        "study_spec_metrics": serialize_metrics({spec.metric: spec.direction}),
        "study_spec_parameters": serialize_parameters(parameter_specs(spec)),
        "max_trial_count": spec.max_trials,
        "parallel_trial_count": spec.parallel_trials,
        "max_failed_trial_count": spec.max_failed_trials,
        "study_spec_algorithm": ALGORITHMS[spec.algorithm],
        "service_account": service_account,
        "network": network,
    }


def job_payload(request: Mapping[str, Any], measurement_selection: str = "BEST_MEASUREMENT",
                encryption_key: str = "") -> dict:
    """The ``HyperparameterTuningJob`` JSON that ``HyperparameterTuningJobRunOp`` assembles from these inputs
    (its ``--payload``), for checking a request offline."""
    return {
        "display_name": request["display_name"],
        "study_spec": {"metrics": request["study_spec_metrics"], "parameters": request["study_spec_parameters"],
                       "algorithm": request["study_spec_algorithm"],
                       "measurement_selection_type": measurement_selection},
        "max_trial_count": request["max_trial_count"], "parallel_trial_count": request["parallel_trial_count"],
        "max_failed_trial_count": request["max_failed_trial_count"],
        "trial_job_spec": {"worker_pool_specs": request["worker_pool_specs"],
                           "service_account": request["service_account"], "network": request["network"],
                           "base_output_directory": {"output_uri_prefix": request["base_output_directory"]}},
        "encryption_spec": {"kms_key_name": encryption_key},
    }


def job_name_from_gcp_resources(gcp_resources: str) -> str:
    """``projects/.../locations/.../hyperparameterTuningJobs/ID`` from the op's ``gcp_resources`` output."""
    try:
        resources = json.loads(gcp_resources)["resources"]
        uri = next(r["resourceUri"] for r in resources if r.get("resourceType") == "HyperparameterTuningJob")
    except (ValueError, KeyError, StopIteration, TypeError):
        raise VertexTuningError(f"gcp_resources names no HyperparameterTuningJob: {gcp_resources[:300]!r}") from None
    marker = uri.find("projects/")
    if marker < 0:
        raise VertexTuningError(f"gcp_resources: resourceUri {uri!r} holds no projects/... job name")
    return uri[marker:]


def trials_from_job(job: Mapping[str, Any]) -> list[dict]:
    """The trials of a ``HyperparameterTuningJob`` (its REST JSON, camelCase) as rows of
    :func:`kfpc.components.tune.core.result_from_trials`."""
    rows = []
    for trial in job.get("trials", []):
        measurement = trial.get("finalMeasurement") or {}
        metrics = {m["metricId"]: float(m["value"]) for m in measurement.get("metrics", []) if "value" in m}
        parameters = {p["parameterId"]: p["value"] for p in trial.get("parameters", [])}
        state = trial.get("state", "")
        rows.append({"trial": trial.get("id", ""), "hyperparameters": {k: str(v) for k, v in parameters.items()},
                     "metrics": metrics, "state": "COMPLETE" if state == "SUCCEEDED" else "FAILED",
                     "error": None if state == "SUCCEEDED" else (trial.get("infeasibleReason") or state)})
    return rows


def fetch_job(job_name: str) -> dict:
    """The job's REST JSON, read with the Vertex AI client (credentials of the environment)."""
    from google.cloud import aiplatform_v1

    location = job_name.split("/")[3]
    client = aiplatform_v1.JobServiceClient(client_options={"api_endpoint": f"{location}-aiplatform.googleapis.com"})
    return job_to_dict(client.get_hyperparameter_tuning_job(name=job_name))


def job_to_dict(job) -> dict:
    """A ``HyperparameterTuningJob`` message as its REST JSON (camelCase, enums by name)."""
    from google.cloud import aiplatform_v1

    return json.loads(aiplatform_v1.HyperparameterTuningJob.to_json(job, use_integers_for_enums=False))
