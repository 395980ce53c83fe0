"""KFP v2 components of the tuning step: one search space, three backends.

* ``tune`` — local backend (Optuna in the task; the training image; placed like the training step);
* ``katib_tune`` — creates a Katib Experiment through the Kubernetes API (``mode="cluster"``) or only
  writes its manifest (``mode="dry_run"``, the offline path: the baseline configuration is passed on);
* ``vertex_tuning_request`` + GCPC's ``HyperparameterTuningJobRunOp`` + ``vertex_best_trial``;
* ``record_tuning`` — the trained model with the search in its card.

Every tuning component returns the chosen ``hidden_units``, ``dropout``, ``learning_rate``, ``batch_size``,
``epochs``, ``patience``, ``model_family`` and ``hyperparameters_json``, and writes ``tuning`` (history.json,
history.csv, history.png, report.html) and ``report`` (HTML).
"""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from kfpc.components import images
from kfpc.components.artifact_types import Schema, Statistics


@dsl.component(base_image=images.TF, install_kfp_package=False)
def tune(
    data: Input[Dataset],
    tuning: Output[Artifact],
    report: Output[HTML],
    metrics: Output[Metrics],
    label: str,
    search_space: str = "",
    statistics: Input[Statistics] = None,
    schema: Input[Schema] = None,
    task: str = "auto",
    validation_fraction: float = 0.1,
    seed: int = 42,
    hidden_units: list[int] = [64, 32],  # noqa: B006 (KFP reads the default from the signature)
    dropout: float = 0.1,
    learning_rate: float = 0.01,
    batch_size: int = 0,
    epochs: int = 100,
    patience: int = 10,
) -> NamedTuple("Tuned", hidden_units=list, dropout=float, learning_rate=float, batch_size=int, epochs=int,
                patience=int, model_family=str, hyperparameters_json=str):
    """Search hyperparameters locally (Optuna); every trial trains on the train part of ``Split-train`` and is
    scored on its validation part. ``Split-eval`` is never read.

    Args:
        data: Dataset (``Split-train`` is read).
        tuning: output: history.json / history.csv / history.png / report.html.
        report: output: the HTML report (plot and table).
        metrics: output: ``best_<objective>``, ``baseline_<objective>``, ``trials``.
        label: the label column.
        search_space: the search space, YAML or JSON (see components/tune/README.md); empty: the default space.
        statistics, schema: optional, as for train.
        task, validation_fraction, seed: as for train; the same in every trial.
        hidden_units, dropout, learning_rate, batch_size, epochs, patience: the pipeline's training parameters:
            the baseline (trial 0 when inside the space) and the value of every parameter not searched.
    Returns:
        The chosen training parameters.
    """
    import logging
    import shutil
    from collections import namedtuple

    from kfpc.components.tune import core
    from kfpc.components.tune import spec as S

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    spec = S.parse_spec(search_space or S.DEFAULT_SPEC_YAML, origin="search_space")
    base = {"hidden_units": hidden_units, "dropout": dropout, "learning_rate": learning_rate,
            "batch_size": batch_size, "epochs": epochs, "patience": patience}
    result = core.tune_local(data.path, label=label, spec=spec, base=base,
                             statistics_dir=statistics.path if statistics is not None else None,
                             schema_path=schema.path if schema is not None else None, task=task,
                             validation_fraction=validation_fraction, seed=seed)
    core.write_outputs(result, tuning.path)
    shutil.copy2(f"{tuning.path}/{core.REPORT_HTML}", report.path)
    tuning.metadata.update({"backend": result.backend, "objective": spec.metric, "direction": spec.direction,
                            "best_trial": result.best_trial, "best_value": result.best_value,
                            "baseline_value": result.baseline_value, "trials": len(result.history)})
    metrics.log_metric(f"best_{spec.metric}", float(result.best_value))
    if result.baseline_value is not None:
        metrics.log_metric(f"baseline_{spec.metric}", float(result.baseline_value))
    metrics.log_metric("trials", float(len(result.history)))
    outputs = core.pipeline_outputs(result)
    return namedtuple("Tuned", list(outputs))(**outputs)


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def katib_tune(
    data: Input[Dataset],
    experiment: Output[Artifact],
    tuning: Output[Artifact],
    report: Output[HTML],
    label: str,
    image: str,
    run_id: str,
    search_space: str = "",
    statistics: Input[Statistics] = None,
    schema: Input[Schema] = None,
    data_uri: str = "",
    namespace: str = "kubeflow-user",
    mode: str = "dry_run",
    placement_json: str = "{}",
    service_account: str = "",
    task: str = "auto",
    validation_fraction: float = 0.1,
    seed: int = 42,
    hidden_units: list[int] = [64, 32],  # noqa: B006
    dropout: float = 0.1,
    learning_rate: float = 0.01,
    batch_size: int = 0,
    epochs: int = 100,
    patience: int = 10,
    poll_seconds: float = 30.0,
) -> NamedTuple("Tuned", hidden_units=list, dropout=float, learning_rate=float, batch_size=int, epochs=int,
                patience=int, model_family=str, hyperparameters_json=str):
    """Run the search as a Katib Experiment (``kubeflow.org/v1beta1``) whose trials run the training image.

    Args:
        data: Dataset; trial pods read it at ``data_uri`` (default: its URI; ``gs://`` needs a GCS FUSE mount
            in the trial pods, a PVC path works anywhere).
        experiment: output: ``experiment.yaml`` (the manifest) and, in cluster mode, ``status.json``.
        tuning, report: outputs as for ``tune``.
        label: the label column.
        image: the image trials run (the training image).
        run_id: the pipeline run's ID; the Experiment is ``kfpc-tune-<run_id>`` (a retried task finds its own).
        search_space: YAML/JSON; empty: the default space.
        statistics, schema: optional; trials read them at their URIs.
        namespace: where the Experiment is created.
        mode: ``dry_run`` (write the manifest only; the baseline configuration is passed on) or ``cluster``.
        placement_json: trial placement (``kfpc.components.tune.katib.TrialPlacement`` fields as JSON).
        service_account: trial pods' service account.
        task, validation_fraction, seed, hidden_units, dropout, learning_rate, batch_size, epochs, patience: as
            for ``tune``.
        poll_seconds: between status reads.
    Returns:
        The chosen training parameters.
    """
    import json
    import os
    import shutil
    from collections import namedtuple

    import yaml

    from kfpc.components.tune import core, katib
    from kfpc.components.tune import spec as S

    if mode not in ("dry_run", "cluster"):
        raise ValueError(f"mode must be dry_run or cluster, got {mode!r}")
    spec = S.parse_spec(search_space or S.DEFAULT_SPEC_YAML, origin="search_space")
    base = {"hidden_units": hidden_units, "dropout": dropout, "learning_rate": learning_rate,
            "batch_size": batch_size, "epochs": epochs, "patience": patience}
    experiment_name = katib.experiment_name(run_id)
    manifest = katib.build_experiment(
        spec, name=experiment_name, namespace=namespace, image=image, data_uri=data_uri or data.uri, label=label,
        base=base, statistics_uri=statistics.uri if statistics is not None else "",
        schema_uri=schema.uri if schema is not None else "", task=task, validation_fraction=validation_fraction,
        seed=seed, placement=katib.TrialPlacement.from_dict(json.loads(placement_json or "{}")),
        service_account=service_account)
    os.makedirs(experiment.path, exist_ok=True)
    with open(os.path.join(experiment.path, "experiment.yaml"), "w") as handle:
        yaml.safe_dump(manifest, handle, sort_keys=False)
    experiment.metadata.update({"name": experiment_name, "namespace": namespace, "mode": mode})
    if mode == "dry_run":
        result = core.untuned_result("katib", spec, base, "dry run: the Experiment manifest was written, not "
                                     "created; the pipeline's own parameters are passed on")
    else:
        final, trials = katib.create_and_wait(manifest, poll_seconds=poll_seconds)
        with open(os.path.join(experiment.path, "status.json"), "w") as handle:
            json.dump(final.get("status", {}), handle, indent=1)
        result = core.result_from_trials("katib", spec, base, katib.trials_from_katib(trials))
    core.write_outputs(result, tuning.path)
    shutil.copy2(f"{tuning.path}/{core.REPORT_HTML}", report.path)
    tuning.metadata.update({"backend": "katib", "objective": spec.metric, "best_trial": result.best_trial,
                            "best_value": result.best_value, "trials": len(result.history)})
    outputs = core.pipeline_outputs(result)
    return namedtuple("Tuned", list(outputs))(**outputs)


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def vertex_tuning_request(
    data: Input[Dataset],
    job_dir: Output[Artifact],
    label: str,
    image: str,
    search_space: str = "",
    statistics: Input[Statistics] = None,
    schema: Input[Schema] = None,
    task: str = "auto",
    validation_fraction: float = 0.1,
    seed: int = 42,
    hidden_units: list[int] = [64, 32],  # noqa: B006
    dropout: float = 0.1,
    learning_rate: float = 0.01,
    batch_size: int = 0,
    epochs: int = 100,
    patience: int = 10,
    machine_type: str = "n1-standard-8",
    accelerator_type: str = "NVIDIA_TESLA_T4",
    accelerator_count: int = 1,
    replica_count: int = 1,
    boot_disk_size_gb: int = 100,
    service_account: str = "",
    network: str = "",
) -> NamedTuple("VertexTuningRequest", display_name=str, base_output_directory=str, worker_pool_specs=list,
                study_spec_metrics=list, study_spec_parameters=list, max_trial_count=int, parallel_trial_count=int,
                max_failed_trial_count=int, study_spec_algorithm=str, service_account=str, network=str):
    """Build the inputs of GCPC's ``HyperparameterTuningJobRunOp`` from the search space.

    Args:
        data: Dataset (its ``gs://`` URI is given to the trials, which read it through ``/gcs``).
        job_dir: output: the job's ``base_output_directory``; ``request.json`` records the inputs.
        label, image, search_space, statistics, schema, task, validation_fraction, seed, hidden_units, dropout,
            learning_rate, batch_size, epochs, patience: as for ``katib_tune``.
        machine_type, accelerator_type, accelerator_count, replica_count, boot_disk_size_gb, service_account,
            network: each trial's workers (the training step's Vertex placement).
    Returns:
        The op's inputs.
    """
    import json
    import os
    from collections import namedtuple

    from kfpc.components.tune import spec as S
    from kfpc.components.tune import vertex

    spec = S.parse_spec(search_space or S.DEFAULT_SPEC_YAML, origin="search_space")
    base = {"hidden_units": hidden_units, "dropout": dropout, "learning_rate": learning_rate,
            "batch_size": batch_size, "epochs": epochs, "patience": patience}
    request = vertex.build_request(
        spec, image=image, data_uri=data.uri, label=label, base_output_directory=job_dir.uri, base=base,
        statistics_uri=statistics.uri if statistics is not None else "",
        schema_uri=schema.uri if schema is not None else "", task=task, validation_fraction=validation_fraction,
        seed=seed, machine_type=machine_type, accelerator_type=accelerator_type,
        accelerator_count=accelerator_count, replica_count=replica_count, boot_disk_size_gb=boot_disk_size_gb,
        service_account=service_account, network=network)
    os.makedirs(job_dir.path, exist_ok=True)
    with open(os.path.join(job_dir.path, "request.json"), "w") as handle:
        json.dump(request, handle, indent=1)
    return namedtuple("VertexTuningRequest", list(request))(**request)


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def vertex_best_trial(
    gcp_resources: str,
    tuning: Output[Artifact],
    report: Output[HTML],
    search_space: str = "",
    hidden_units: list[int] = [64, 32],  # noqa: B006
    dropout: float = 0.1,
    learning_rate: float = 0.01,
    batch_size: int = 0,
    epochs: int = 100,
    patience: int = 10,
) -> NamedTuple("Tuned", hidden_units=list, dropout=float, learning_rate=float, batch_size=int, epochs=int,
                patience=int, model_family=str, hyperparameters_json=str):
    """Read the finished Vertex AI HyperparameterTuningJob and return its best trial's configuration.

    Args:
        gcp_resources: ``HyperparameterTuningJobRunOp``'s output naming the job.
        tuning, report: outputs as for ``tune``.
        search_space: the same search space the request was built from.
        hidden_units, dropout, learning_rate, batch_size, epochs, patience: the pipeline's parameters (kept for
            every parameter not searched).
    Returns:
        The chosen training parameters.
    """
    import shutil
    from collections import namedtuple

    from kfpc.components.tune import core, vertex
    from kfpc.components.tune import spec as S

    spec = S.parse_spec(search_space or S.DEFAULT_SPEC_YAML, origin="search_space")
    base = {"hidden_units": hidden_units, "dropout": dropout, "learning_rate": learning_rate,
            "batch_size": batch_size, "epochs": epochs, "patience": patience}
    job = vertex.fetch_job(vertex.job_name_from_gcp_resources(gcp_resources))
    result = core.result_from_trials("vertex", spec, base, vertex.trials_from_job(job))
    core.write_outputs(result, tuning.path)
    shutil.copy2(f"{tuning.path}/{core.REPORT_HTML}", report.path)
    tuning.metadata.update({"backend": "vertex", "objective": spec.metric, "best_trial": result.best_trial,
                            "best_value": result.best_value, "trials": len(result.history), "job": job.get("name")})
    outputs = core.pipeline_outputs(result)
    return namedtuple("Tuned", list(outputs))(**outputs)


@dsl.component(base_image=images.TF, install_kfp_package=False)
def record_tuning(model: Input[Model], tuning: Input[Artifact], tuned_model: Output[Model]):
    """Copy the trained model and add the search to its card (``tuning``; ``tuning/history.png`` and
    ``tuning/report.html`` beside ``model_card.json``).

    Args:
        model: the Model train wrote.
        tuning: a tuning component's ``tuning`` output.
        tuned_model: output: the same model, its card with ``tuning``.
    """
    from kfpc.components import types
    from kfpc.components.tune import core

    card = core.record_in_card(model.path, tuning.path, tuned_model.path)
    tuned_model.metadata.update({**{k: v for k, v in model.metadata.items()},
                                 "tuning_backend": card["tuning"]["backend"],
                                 types.KFPC_VERSION: card[types.KFPC_VERSION]})
