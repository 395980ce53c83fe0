"""``retraining_pipeline``: the scheduled loop — newest span in, better model out, or nothing changes.

1. ``resolve_retraining_inputs`` finds the newest complete data span and the one before it
   (``source_pattern`` with ``{SPAN}``, see :mod:`kfpc.pipelines.spans`) and the model now served
   (``baseline_model_uri``, or the newest version kfpc pushed under ``serving_root/model_name``).
2. The newest span is ingested and its statistics computed; so is the previous span, for drift.
3. ``validate`` checks the new span against the **production** schema (``import_schema`` from
   ``schema_uri``; its drift comparators against the previous span's statistics). Anomalies stop the run
   before training unless ``fail_on_anomalies`` is off.
4. ``train`` (GPU placement as in the training pipeline), then ``evaluate`` the candidate against the
   served model, imported with ``dsl.importer``: blessed only if it meets the thresholds *and* does not
   regress beyond ``max_regression``.
5. ``push_kserve`` runs only when blessed. Nothing served is touched otherwise.

Every parameter keeps working unchanged from one scheduled run to the next: the span and the baseline are
resolved at run time, so a recurring run needs no edits after each push.
"""

from typing import NamedTuple

from kfp import dsl

from kfpc.components import images
from kfpc.pipelines import defaults as D
from kfpc.pipelines import placement

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
) -> NamedTuple("RetrainingInputs", data_uri=str, span=int, previous_data_uri=str, previous_span=int,
                baseline_model_uri=str):
    """Resolve the newest span, the previous span and the served model for this run.

    Args:
        source_pattern: data URI with ``{SPAN}`` in one folder or file name (``gs://b/d/span-{SPAN}/data.csv``).
        serving_root: where kfpc pushes versioned models (``<root>/<model_name>/v<N>``).
        model_name: the model's folder under ``serving_root`` (the InferenceService name).
        baseline_model_uri: the served model's URI; empty: the newest complete version under the root.
    Returns:
        data_uri, span, previous_data_uri, previous_span, baseline_model_uri.
    """
    from collections import namedtuple

    from kfpc.pipelines import spans

    found = spans.resolve_spans(source_pattern)
    baseline = spans.resolve_baseline(baseline_model_uri, serving_root, model_name)
    outputs = namedtuple("RetrainingInputs",
                         ["data_uri", "span", "previous_data_uri", "previous_span", "baseline_model_uri"])
    return outputs(found.latest_uri, found.latest_span, found.previous_uri, found.previous_span, baseline)


def build_retraining_pipeline(target: str = "kfp", gpu: "placement.GpuOptions | None" = None,
                              model_family: str = "auto"):
    """Build ``retraining_pipeline`` for ``target`` (``kfp`` or ``vertex``).

    Args:
        target: compile target; decides how the training step gets its GPU.
        gpu: placement of the training step; default one GPU (``placement.GpuOptions()``).
        model_family: what the train step trains: ``auto`` (network and gradient-boosted trees, the better on
            the validation part is kept), ``dnn`` or ``gbdt``. Decided at build time because it decides the
            placement: ``gbdt`` runs on a CPU node (``placement.for_model_family``).
    Returns:
        The ``@dsl.pipeline`` function.
    """
    from kfpc.components.evaluate.component import evaluate
    from kfpc.components.ingest.component import ingest
    from kfpc.components.preflight.component import preflight
    from kfpc.components.push.component import push_kserve
    from kfpc.components.schema.component import import_schema
    from kfpc.components.statistics.component import statistics
    from kfpc.components.validate.component import validate

    options = placement.for_model_family(gpu, model_family)
    train_op = placement.training_op(target, options)

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
        hidden_units: list[int] = D.HIDDEN_UNITS,
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
        namespace: str = D.NAMESPACE,
        push_mode: str = D.PUSH_MODE,
        canary_traffic_percent: int = 0,
        promote: bool = False,
        prometheus_url: str = "",
        prometheus_selector: str = "",
    ):
        """Retrain on the newest span and push only a model better than the one served.

        Args:
            source_pattern: data URI with ``{SPAN}`` (``gs://bucket/churn/span-{SPAN}/data.csv``).
            schema_uri: the production ``schema.pbtxt`` (reviewed; its drift comparators apply).
            label: the column to predict.
            serving_root: where kfpc pushes versioned models; the baseline is found here.
            model_name: InferenceService name and folder under ``serving_root``.
            baseline_model_uri: the served model; empty: the newest version under ``serving_root``.
            key_column, eval_fraction, validation_fraction: the train/validation/eval split (as in the
                training pipeline).
            exclude_columns, numeric_columns: as in the training pipeline.
            task, hidden_units, dropout, learning_rate, batch_size, epochs, patience, seed: training.
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
            prometheus_url, prometheus_selector: where the canary's error rate and p99 latency are read during
                the bake (the Prometheus query API and label matchers selecting the canary's pods); needed to
                promote in cluster mode.
        """
        resolved = resolve_retraining_inputs(
            source_pattern=source_pattern, serving_root=serving_root, model_name=model_name,
            baseline_model_uri=baseline_model_uri,
        ).set_caching_options(False)  # spans and the served model change between runs with the same inputs
        resolved.set_display_name("resolve-span-and-baseline")

        checked = preflight(
            source_uri=resolved.outputs["data_uri"], label=label, task=task, key_column=key_column,
            eval_fraction=eval_fraction, validation_fraction=validation_fraction, exclude_columns=exclude_columns,
            numeric_columns=numeric_columns,
            hidden_units=hidden_units, dropout=dropout, learning_rate=learning_rate, batch_size=batch_size,
            epochs=epochs, patience=patience, min_accuracy=min_accuracy, max_regression=max_regression,
            eval_config_json=eval_config_json, model_name=model_name, namespace=namespace, push_mode=push_mode,
            canary_traffic_percent=canary_traffic_percent, promote=promote, prometheus_url=prometheus_url,
            prometheus_selector=prometheus_selector,
        )
        data = ingest(
            source_uri=resolved.outputs["data_uri"], key_column=key_column, eval_fraction=eval_fraction,
            drop_columns=checked.outputs["Output"], numeric_columns=numeric_columns, label=label,
        )
        data.set_display_name("ingest-newest-span")
        stats = statistics(data=data.outputs["data"])
        stats.set_display_name("statistics-newest-span")
        previous = ingest(
            source_uri=resolved.outputs["previous_data_uri"], key_column=key_column, eval_fraction=eval_fraction,
            drop_columns=checked.outputs["Output"], numeric_columns=numeric_columns, label=label,
        )
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
            fail_on_anomalies=fail_on_anomalies,
        )

        trained = placement.placed_training(
            train_op,
            target,
            options,
            data=data.outputs["data"],
            statistics=stats.outputs["statistics"],
            schema=schema.outputs["schema"],
            label=label,
            task=task,
            hidden_units=hidden_units,
            dropout=dropout,
            learning_rate=learning_rate,
            batch_size=batch_size,
            epochs=epochs,
            patience=patience,
            seed=seed,
            validation_fraction=validation_fraction,
            model_family=model_family,
        ).after(validation)

        served = dsl.importer(
            artifact_uri=resolved.outputs["baseline_model_uri"], artifact_class=dsl.Model, reimport=True
        )
        served.set_display_name("served-model")
        evaluation = evaluate(
            data=data.outputs["data"],
            model=trained.outputs["model"],
            baseline_model=served.output,
            statistics=stats.outputs["statistics"],
            min_accuracy=min_accuracy,
            max_regression=max_regression,
            config_json=eval_config_json,
        )
        with dsl.If(evaluation.outputs["Output"] == True, name="better-than-served"):  # noqa: E712 (KFP condition)
            push_kserve(
                model=trained.outputs["model"],
                blessing=evaluation.outputs["blessing"],
                data=data.outputs["data"],
                name=model_name,
                serving_root=serving_root,
                namespace=namespace,
                mode=push_mode,
                canary_traffic_percent=canary_traffic_percent,
                promote=promote,
                prometheus_url=prometheus_url,
                prometheus_selector=prometheus_selector,
                # chosen at build time so that `kfpc compile --image-registry` moves it with the others
                image=images.SERVING,
            )

    return retraining_pipeline
