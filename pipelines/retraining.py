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
        model_family: what the train step trains: ``auto`` (network and gradient-boosted trees, the better on
            the validation part is kept), ``dnn`` or ``gbdt``. Decided at build time because it decides the
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

    @dsl.pipeline(name="retraining-pipeline", description=DESCRIPTION)
    def retraining_pipeline(
        source_pattern: str,
        schema_uri: str,
        label: str,
        serving_root: str,
        model_name: str,
        baseline_model_uri: str = "",
        key_column: str = "",
        eval_fraction: float = D.EVAL_FRACTION,
        validation_fraction: float = D.VALIDATION_FRACTION,
        task: str = "auto",
        exclude_columns: list[str] = [],  # noqa: B006 (KFP reads the default from the signature)
        numeric_columns: list[str] = [],  # noqa: B006
        hidden_units: list[int] = list(D.HIDDEN_UNITS),  # noqa: B006, B008
        dropout: float = D.DROPOUT,
        learning_rate: float = D.LEARNING_RATE,
        batch_size: int = D.BATCH_SIZE,
        epochs: int = D.EPOCHS,
        patience: int = D.PATIENCE,
        seed: int = D.SEED,
        fail_on_anomalies: bool = True,
        min_accuracy: float = D.MIN_ACCURACY,
        max_regression: float = D.MAX_REGRESSION,
        eval_config_json: str = "",
        namespace: str = D.PIPELINE_NAMESPACE,
        push_mode: str = D.PUSH_MODE,
        canary_traffic_percent: int = 0,
        promote: bool = False,
        prometheus_url: str = "",
        prometheus_selector: str = "",
        registry_backend: str = "",
        registry_uri: str = "",
        run_url: str = "",
    ):
        """Retrain on the newest span and push only a model better than the one served.

        Args:
            source_pattern: data URI with ``{SPAN}`` (``gs://bucket/churn/span-{SPAN}/data.csv``).
            schema_uri: the production ``schema.pbtxt`` (reviewed; its drift comparators apply).
            label: the column to predict.
            serving_root: where kfpc pushes versioned models; the baseline is found here.
            model_name: InferenceService name and folder under ``serving_root``.
            baseline_model_uri: the served model; empty: the newest version under ``serving_root``.
            key_column: column whose hash decides the train/eval split; empty hashes the row.
            eval_fraction: share of rows held out for evaluation; training never sees them.
            validation_fraction: share of the train split carved out for early stopping and model selection.
            exclude_columns: columns never used (IDs, leakage).
            numeric_columns: text columns to read as numbers.
            task: ``auto`` (from the label), ``binary``, ``multiclass`` or ``regression``.
            hidden_units: sizes of the network's hidden layers.
            dropout: dropout rate after each hidden layer.
            learning_rate: Adam's learning rate.
            batch_size: rows per step; 0 chooses it from the training rows.
            epochs: most passes over the training rows (early stopping usually ends sooner).
            patience: epochs without a better validation loss before training stops (0: never early-stop).
            seed: seed of the validation carve, the weights' initialization and the shuffling.
            fail_on_anomalies: stop before training when the new span breaks the schema or drifts.
            min_accuracy: accuracy lower bound for classification; 0 (default) leaves the decision to the
                skill gates (beat the trivial predictor, and not be worse than the served model).
            max_regression: how much worse than the served model the candidate may be, judged on the paired
                bootstrap interval of the skill metric (ROC/PR AUC: absolute; RMSE: relative).
            eval_config_json: thresholds shaped like TFMA's EvalConfig (overrides the two above).
            namespace: Kubernetes namespace of the InferenceService.
            push_mode: ``dry_run``, ``local`` or ``cluster`` (see push_kserve).
            canary_traffic_percent: 1..99 to canary the new model; 0 sends all traffic to it.
            promote: after a canary that stayed healthy for the bake period, move it to 100%.
            prometheus_url: the Prometheus query API the canary's error rate and p99 latency are read from
                during the bake; needed to promote in cluster mode.
            prometheus_selector: label matchers selecting the canary's series in Prometheus.
            registry_backend: ``kubeflow`` or ``vertex``: the baseline is the registry's champion, and a pushed
                model is registered with its lineage (champion at 100% traffic, challenger in a canary);
                empty = no registry.
            registry_uri: the registry (``http(s)://host:port``; ``projects/<p>/locations/<region>``).
            run_url: the run's UI URL for the lineage; ``{run_id}`` and ``{run_name}`` are filled in.
        """
        p = dict(locals())  # (first: the pipeline's parameters, for the shared steps)
        resolved = resolve_retraining_inputs(
            source_pattern=source_pattern, serving_root=serving_root, model_name=model_name,
            baseline_model_uri=baseline_model_uri, registry_backend=registry_backend, registry_uri=registry_uri,
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

        schema = import_schema(schema_uri=schema_uri)
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
                               fail_on_anomalies=fail_on_anomalies)

        overrides = {"model_family": model_family}
        if tune:
            base = {name: p[name] for name in tuned_training.TUNED_INPUTS if name in p}
            chosen, searched = tuned_training.add_search(
                tune, target, options, data=data.outputs["data"], statistics=stats.outputs["statistics"],
                schema=schema.outputs["schema"], label=label, task=task, search_space=search_space,
                validation_fraction=validation_fraction, seed=seed, base=base)
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
            with dsl.If(registry_backend != "", name="registry-configured"):
                register_model(
                    model=candidate, model_uri=pushed.outputs["model_uri"], name=model_name,
                    registry_uri=registry_uri, backend=registry_backend, push_result=pushed.outputs["manifest"],
                    blessing=evaluation.outputs["blessing"], metrics=evaluation.outputs["metrics"],
                    data=data.outputs["data"], statistics=stats.outputs["statistics"],
                    schema=schema.outputs["schema"], baseline_model_uri=resolved.outputs["baseline_model_uri"],
                    run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, run_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
                    run_url=run_url,
                ).set_caching_options(False)  # the registry's state, not the inputs, decides what it does

        steps.push_if_blessed(p, evaluation, candidate, data, "better-than-served", then=register,
                              stats=stats)

    return retraining_pipeline
