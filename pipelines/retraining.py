"""``retraining_pipeline``: the scheduled loop — newest span in, better model out, or nothing changes.

1. ``resolve_retraining_inputs`` finds the newest complete data span and the one before it
   (``source_pattern`` with ``{SPAN}``, see :mod:`kfpc.pipelines.spans`) and the model now served
   (``baseline_model_uri``; else the model registry's champion when ``registry_backend`` is set and a
   champion exists; else the newest version kfpc pushed under ``serving_root/model_name``).
2. The newest span is ingested and its statistics computed; so is the previous span, for drift.
3. ``validate`` checks the new span against the **production** schema (``import_schema`` from
   ``schema_uri``; its drift comparators against the previous span's statistics). Anomalies stop the run
   before training unless ``fail_on_anomalies`` is off.
4. ``train`` (GPU placement as in the training pipeline), then ``evaluate`` the candidate against the
   served model, imported with ``dsl.importer``: blessed only if it meets the thresholds *and* does not
   regress beyond ``max_regression``.
5. ``push_kserve`` runs only when blessed. Nothing served is touched otherwise. With ``registry_backend``
   set, ``register_model`` then registers the pushed version with its lineage (champion at 100% traffic,
   challenger in a canary).

Every parameter keeps working unchanged from one scheduled run to the next: the span and the baseline are
resolved at run time, so a recurring run needs no edits after each push.
"""

from typing import NamedTuple

from kfp import dsl

from kfpc.components import images
from kfpc.pipelines import defaults as D
from kfpc.pipelines import parameters as P
from kfpc.pipelines import placement, steps

DESCRIPTION = (
    "Scheduled retraining: ingest the newest data span, validate it against the production schema and for "
    "drift against the previous span, retrain, evaluate against the model now served, push only if better."
)


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def resolve_retraining_inputs(
    source_pattern: str,
    serving_root: str,
    model_name: str,
    baseline_model_uri: str = "",
    registry_backend: str = "",
    registry_uri: str = "",
) -> NamedTuple("RetrainingInputs", data_uri=str, span=int, previous_data_uri=str, previous_span=int,
                baseline_model_uri=str):
    """Resolve the newest span, the previous span and the served model for this run.

    Args:
        source_pattern: data URI with ``{SPAN}`` in one folder or file name (``gs://b/d/span-{SPAN}/data.csv``).
        serving_root: where kfpc pushes versioned models (``<root>/<model_name>/v<N>``).
        model_name: the model's folder under ``serving_root`` (the InferenceService name).
        baseline_model_uri: the served model's URI; empty: the registry's champion (when ``registry_backend``
            is set and a champion exists), else the newest complete version under the root.
        registry_backend: ``kubeflow`` or ``vertex``; empty = no model registry.
        registry_uri: the registry's address (see ``register_model``).
    Returns:
        data_uri, span, previous_data_uri, previous_span, baseline_model_uri.
    """
    from collections import namedtuple

    from kfpc.pipelines import spans

    found = spans.resolve_spans(source_pattern)
    if registry_backend and not baseline_model_uri:
        from kfpc.components.registry import core as registry_core

        champion = registry_core.open_registry(registry_backend, registry_uri).alias(model_name)
        baseline_model_uri = champion.uri if champion else ""
    baseline = spans.resolve_baseline(baseline_model_uri, serving_root, model_name)
    outputs = namedtuple("RetrainingInputs",
                         ["data_uri", "span", "previous_data_uri", "previous_span", "baseline_model_uri"])
    return outputs(found.latest_uri, found.latest_span, found.previous_uri, found.previous_span, baseline)


def build_retraining_pipeline(target: str = "kfp", gpu: "placement.GpuOptions | None" = None, tune: str = "",
                              search_space: str = "", model_family: str = "auto"):
    """Build ``retraining_pipeline`` for ``target`` (``kfp`` or ``vertex``).

    Args:
        target: compile target; decides how the training step gets its GPU.
        gpu: placement of the training step; default one GPU (``placement.GpuOptions()``).
        tune: search before training with this backend (``local`` | ``katib`` on kfp, ``vertex`` on vertex; see
            :mod:`kfpc.pipelines.tuned_training`); empty: train the pipeline's parameters as given.
        search_space: with ``tune``: the search space (YAML/JSON), fixed at build time; empty: the default space.
        model_family: what the train step trains: ``auto`` (network and gradient-boosted trees; the trees are
            kept unless the network is better on the validation part beyond 2 standard errors), ``dnn`` or ``gbdt``. Decided at build time because it decides the
            placement: ``gbdt`` runs on a CPU node (``placement.for_model_family``).
    Returns:
        The ``@dsl.pipeline`` function.
    """
    from kfpc.components.registry.component import register_model
    from kfpc.components.schema.component import import_schema
    from kfpc.components.statistics.component import statistics
    from kfpc.components.validate.component import validate, validation_gate

    options = placement.for_model_family(gpu, model_family)
    train_op = placement.training_op(target, options)
    if tune:
        from kfpc.pipelines import tuned_training

        tune = tuned_training.check_backend(target, tune)

    def define(p):
        resolved = resolve_retraining_inputs(
            **{name: p[name] for name in ("source_pattern", "serving_root", "model_name", "baseline_model_uri",
                                          "registry_backend", "registry_uri")},
        ).set_caching_options(False)  # spans and the served model change between runs with the same inputs
        resolved.set_display_name("resolve-span-and-baseline")

        checked = steps.preflight(p, resolved.outputs["data_uri"])
        data = steps.ingest(p, resolved.outputs["data_uri"], checked.outputs["Output"])
        data.set_display_name("ingest-newest-span")
        stats = statistics(data=data.outputs["data"])
        stats.set_display_name("statistics-newest-span")
        previous = steps.ingest(p, resolved.outputs["previous_data_uri"], checked.outputs["Output"])
        previous.set_display_name("ingest-previous-span")
        previous_stats = statistics(data=previous.outputs["data"])
        previous_stats.set_display_name("statistics-previous-span")

        schema = import_schema(schema_uri=p["schema_uri"])
        schema.set_display_name("production-schema")
        validation = validate(
            statistics=stats.outputs["statistics"],
            schema=schema.outputs["schema"],
            split="train",
            previous_statistics=previous_stats.outputs["statistics"],
            previous_split="train",
            fail_on_anomalies=False,  # the gate below fails the run, after the reports are recorded
        )
        gate = validation_gate(anomalies=validation.outputs["anomalies"],
                               what="the new span (against the production schema and the previous span)",
                               fail_on_anomalies=p["fail_on_anomalies"])

        overrides = {"model_family": model_family}
        if tune:
            base = {name: p[name] for name in tuned_training.TUNED_INPUTS if name in p}
            chosen, searched = tuned_training.add_search(
                tune, target, options, data=data.outputs["data"], statistics=stats.outputs["statistics"],
                schema=schema.outputs["schema"], label=p["label"], task=p["task"], search_space=search_space,
                validation_fraction=p["validation_fraction"], seed=p["seed"], base=base)
            searched.after(gate)
            overrides.update({name: chosen.outputs[name] for name in (*tuned_training.TUNED_INPUTS, "model_family")})
        trained = steps.train(p, train_op, target, options, data, stats, schema, overrides).after(gate)
        candidate = trained.outputs["model"]
        if tune:
            from kfpc.components.tune.component import record_tuning

            candidate = record_tuning(model=candidate, tuning=chosen.outputs["tuning"]).outputs["tuned_model"]

        served = dsl.importer(
            artifact_uri=resolved.outputs["baseline_model_uri"], artifact_class=dsl.Model, reimport=True
        )
        served.set_display_name("served-model")
        evaluation = steps.evaluate(p, data, candidate, stats, baseline_model=served.output)

        def register(pushed):
            with dsl.If(p["registry_backend"] != "", name="registry-configured"):
                register_model(
                    model=candidate, model_uri=pushed.outputs["model_uri"], name=p["model_name"],
                    registry_uri=p["registry_uri"], backend=p["registry_backend"], push_result=pushed.outputs["manifest"],
                    blessing=evaluation.outputs["blessing"], metrics=evaluation.outputs["metrics"],
                    data=data.outputs["data"], statistics=stats.outputs["statistics"],
                    schema=schema.outputs["schema"], baseline_model_uri=resolved.outputs["baseline_model_uri"],
                    run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    run_url=p["run_url"],
                ).set_caching_options(False)  # the registry's state, not the inputs, decides what it does

        steps.push_if_blessed(p, evaluation, candidate, data, "better-than-served", then=register,
                              stats=stats)

    names = ("source_pattern", "schema_uri", "label", "serving_root", "model_name", "baseline_model_uri", *P.SPLIT,
             "task", *P.COLUMNS, *P.TRAINING, "fail_on_anomalies", "min_accuracy", "max_regression",
             "eval_config_json", *P.PUSH, "registry_backend", "registry_uri", "run_url")
    parameters = P.select(names, own={
        "label": P.Parameter(str, P.REQUIRED, "the column to predict."),
        "model_name": P.Parameter(str, P.REQUIRED, "InferenceService name and folder under ``serving_root``."),
        "source_pattern": P.Parameter(str, P.REQUIRED, "data URI with ``{SPAN}`` "
                                      "(``gs://bucket/churn/span-{SPAN}/data.csv``)."),
        "schema_uri": P.Parameter(str, P.REQUIRED, "the production ``schema.pbtxt`` (reviewed; its drift comparators "
                                  "apply)."),
        "serving_root": P.Parameter(str, P.REQUIRED, "where kfpc pushes versioned models; the baseline is found here."),
        "baseline_model_uri": P.Parameter(str, "", "the served model; empty: the newest version under "
                                          "``serving_root``."),
        "fail_on_anomalies": P.Parameter(bool, True, "stop before training when the new span breaks the schema or "
                                         "drifts."),
        "min_accuracy": P.Parameter(float, D.MIN_ACCURACY, "accuracy lower bound for classification; 0 (default) "
                                    "leaves the decision to the skill gates (beat the trivial predictor, and not be "
                                    "worse than the served model)."),
        "max_regression": P.Parameter(float, D.MAX_REGRESSION, "how much worse than the served model the candidate "
                                      "may be, judged on the paired bootstrap interval of the skill metric (ROC/PR "
                                      "AUC: absolute; RMSE: relative)."),
        "eval_config_json": P.Parameter(str, "", "thresholds shaped like TFMA's EvalConfig (overrides min_accuracy and "
                                                 "max_regression)."),
        "registry_backend": P.Parameter(str, "", "``kubeflow`` or ``vertex``: the baseline is the registry's "
                                        "champion, and a pushed model is registered with its lineage (champion at "
                                        "100% traffic, challenger in a canary); empty = no registry."),
        "registry_uri": P.Parameter(str, "", "the registry (``http(s)://host:port``; "
                                    "``projects/<p>/locations/<region>``)."),
        "run_url": P.Parameter(str, "", "the run's UI URL for the lineage; ``{run_id}`` and ``{run_name}`` are "
                               "filled in."),
    })
    retraining_pipeline = P.pipeline_function(
        "retraining_pipeline", "Retrain on the newest span and push only a model better than the one served.",
        parameters, define)
    return dsl.pipeline(name="retraining-pipeline", description=DESCRIPTION)(retraining_pipeline)
