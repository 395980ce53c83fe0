"""``tuned_training_pipeline``: ingest → statistics → schema → validate → **tune** → train the best
configuration on the full train split → record the search in the card → evaluate → push if blessed.

The search backend is chosen at build time:

* ``local`` (default for ``kfp``): Optuna inside the tune task, placed like the training step (GPU node);
* ``katib`` (``kfp``): a Katib Experiment whose trials run the training image with the training step's
  placement; ``katib_mode="dry_run"`` (default) writes the manifest and trains the pipeline's own parameters;
* ``vertex`` (default and only backend for ``vertex``): GCPC's ``HyperparameterTuningJobRunOp`` with trials
  on the training step's machine and accelerator, then ``vertex_best_trial``.

Searches are scored on the validation part of ``Split-train``; ``Split-eval`` stays for evaluate.
"""

import json

from kfp import dsl

from kfpc.components import images
from kfpc.pipelines import defaults as D
from kfpc.pipelines import parameters as P
from kfpc.pipelines import placement, steps

DESCRIPTION = (
    "Tuned training: search hyperparameters (locally with Optuna, on Katib or on Vertex AI) on the validation "
    "part of the train split, train the best configuration, evaluate it on the held-out split, push if blessed."
)
BACKENDS = {"kfp": ("local", "katib"), "vertex": ("vertex",)}


def katib_placement(options: "placement.GpuOptions") -> dict:
    """The training step's placement as Katib trial placement (``TrialPlacement`` fields)."""
    return {"gpu_count": options.gpu_count, "accelerator_resource": options.kfp_accelerator_type,
            "node_selector": [list(p) for p in options.kfp_node_selector],
            "tolerations": [list(t) for t in options.kfp_tolerations], "cpu_limit": options.cpu_limit,
            "memory_limit": options.memory_limit, "retries": options.retries}


def check_backend(target: str, backend: str) -> str:
    """The backend to use on ``target`` (``""``: its default); a backend the target cannot run is an error."""
    if target not in BACKENDS:
        raise placement.PlacementError(f"unknown target {target!r}; known: {', '.join(BACKENDS)}")
    backend = backend or BACKENDS[target][0]
    if backend not in BACKENDS[target]:
        raise ValueError(f"backend {backend!r} does not run on target {target!r}; choose {', '.join(BACKENDS[target])}")
    return backend


def add_search(backend: str, target: str, options: "placement.GpuOptions", *, data, statistics, schema, label, task,
               search_space, validation_fraction, seed, base: dict, katib_namespace=D.NAMESPACE,
               katib_mode="dry_run"):
    """Add the search's tasks to the pipeline being defined (call it inside a ``@dsl.pipeline`` function).

    Args:
        backend: ``local`` | ``katib`` | ``vertex`` (see :func:`check_backend`).
        target, options: as for the training step; the search's trials are placed the same way.
        data, statistics, schema: upstream artifacts.
        label, task, search_space, validation_fraction, seed: pipeline parameters (or constants).
        base: the baseline training parameters by name (pipeline parameters or constants).
        katib_namespace, katib_mode: Katib only.
    Returns:
        ``(chosen, first)``: the task whose outputs are the chosen parameters and ``tuning``, and the first task
        of the search (to order it after validation).
    """
    from kfpc.components.tune import component as tune_components

    common = {"label": label, "search_space": search_space, "task": task,
              "validation_fraction": validation_fraction, "seed": seed, **base}
    trial_image = images.TF_GPU if options.gpu_count > 0 else images.TF
    if backend == "local":
        op = (tune_components.tune if options.gpu_count == 0 else
              dsl.component(base_image=images.TF_GPU, install_kfp_package=False)(tune_components.tune.python_func))
        task_ = placement.apply_placement(op(data=data, statistics=statistics, schema=schema, **common), target,
                                          options)
        return task_, task_
    if backend == "katib":
        task_ = tune_components.katib_tune(
            data=data, statistics=statistics, schema=schema, image=trial_image, namespace=katib_namespace,
            mode=katib_mode, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            placement_json=json.dumps(katib_placement(options)), **common)
        return task_, task_
    from google_cloud_pipeline_components.v1.hyperparameter_tuning_job import HyperparameterTuningJobRunOp

    accelerator = options.vertex_accelerator_type if options.gpu_count > 0 else ""
    request = tune_components.vertex_tuning_request(
        data=data, statistics=statistics, schema=schema, image=trial_image,
        machine_type=options.vertex_machine_type, accelerator_type=accelerator,
        accelerator_count=options.gpu_count if accelerator else 0, replica_count=options.vertex_replica_count,
        boot_disk_size_gb=options.vertex_boot_disk_size_gb, service_account=options.vertex_service_account,
        network=options.vertex_network, **common)
    job = HyperparameterTuningJobRunOp(**{name: request.outputs[name] for name in (
        "display_name", "base_output_directory", "worker_pool_specs", "study_spec_metrics",
        "study_spec_parameters", "max_trial_count", "parallel_trial_count", "max_failed_trial_count",
        "study_spec_algorithm", "service_account", "network")})
    best = tune_components.vertex_best_trial(gcp_resources=job.outputs["gcp_resources"], search_space=search_space,
                                             **base)
    return best, request


#: the train inputs a search decides
TUNED_INPUTS = ("hidden_units", "dropout", "learning_rate", "batch_size", "epochs", "patience")


def build_tuned_training_pipeline(target: str = "kfp", gpu: "placement.GpuOptions | None" = None, backend: str = ""):
    """Build ``tuned_training_pipeline`` for ``target``.

    Args:
        target: ``kfp`` or ``vertex``.
        gpu: placement of the training step (and of the search's trials); default one GPU.
        backend: ``local`` | ``katib`` (kfp) or ``vertex`` (vertex); empty: ``local`` for kfp, ``vertex`` for vertex.
    Returns:
        The ``@dsl.pipeline`` function.
    """
    from kfpc.components.schema.component import resolve_schema
    from kfpc.components.statistics.component import statistics
    from kfpc.components.tune import component as tune_components
    from kfpc.components.validate.component import validate, validation_gate

    backend = check_backend(target, backend)
    options = gpu or placement.GpuOptions()
    train_op = placement.training_op(target, options)

    def define(p):
        checked = steps.preflight(p, p["source_uri"])
        data = steps.ingest(p, p["source_uri"], checked.outputs["Output"])
        stats = statistics(data=data.outputs["data"])
        schema = resolve_schema(statistics=stats.outputs["statistics"], schema_uri=p["schema_uri"])
        validation = validate(
            statistics=stats.outputs["statistics"], schema=schema.outputs["schema"], reference_split="train",
            fail_on_anomalies=False,  # the gate below fails the run, after the reports are recorded
        )
        gate = validation_gate(anomalies=validation.outputs["anomalies"],
                               what="split 'eval' (against the schema and the train split)",
                               fail_on_anomalies=p["fail_on_anomalies"])
        base = {name: p[name] for name in TUNED_INPUTS}
        chosen, searched = add_search(
            backend, target, options, data=data.outputs["data"], statistics=stats.outputs["statistics"],
            schema=schema.outputs["schema"], label=p["label"], task=p["task"],
            search_space=p["search_space"], validation_fraction=p["validation_fraction"], seed=p["seed"], base=base,
            katib_namespace=p["katib_namespace"], katib_mode=p["katib_mode"])
        searched.after(gate)
        trained = steps.train(p, train_op, target, options, data, stats, schema,
                              {name: chosen.outputs[name] for name in (*TUNED_INPUTS, "model_family")})
        recorded = tune_components.record_tuning(model=trained.outputs["model"], tuning=chosen.outputs["tuning"])
        evaluation = steps.evaluate(p, data, recorded.outputs["tuned_model"], stats)
        steps.push_if_blessed(p, evaluation, recorded.outputs["tuned_model"], data, "blessed", stats=stats)

    names = (*P.TRAINING_PIPELINE[:3], "search_space", *P.TRAINING_PIPELINE[3:], "katib_namespace", "katib_mode")
    parameters = P.select(names, own={
        "search_space": P.Parameter(str, "", "the search space (YAML or JSON, components/tune/README.md); empty: "
                                    "the default space (learning rate, dropout, architecture, batch size; 12 "
                                    "trials)."),
        "katib_namespace": P.Parameter(str, D.NAMESPACE, "Katib backend only: the namespace of the Experiment."),
        "katib_mode": P.Parameter(str, "dry_run", "Katib backend only: ``dry_run`` writes the Experiment's manifest "
                                  "and trains the baseline, ``cluster`` creates it and waits."),
    })
    tuned_training_pipeline = P.pipeline_function(
        "tuned_training_pipeline",
        "Tune, train the best configuration, evaluate it on the held-out split, push it if blessed.",
        parameters, define)
    return dsl.pipeline(name="tuned-training-pipeline", description=DESCRIPTION)(tuned_training_pipeline)


#: as training_pipeline: push to a folder in the run and smoke-test the copy locally
LOCAL_DEFAULTS = {"push_mode": "local", "serving_root": "{run_dir}/serving"}
