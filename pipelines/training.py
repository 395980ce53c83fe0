"""``training_pipeline``: ingest → statistics → schema → validate → train (GPU node) → evaluate → push.

Composition only: the work is in the components, GPU placement in :mod:`kfpc.pipelines.placement`.
"""


from kfp import dsl

from kfpc.components import images
from kfpc.pipelines import defaults as D
from kfpc.pipelines import placement

DESCRIPTION = (
    "Tabular training: ingest a CSV/Parquet table, compute statistics, infer a schema and validate the eval "
    "split against it, train a TensorFlow model on a GPU node, evaluate it, and push it to KServe only if blessed."
)


def build_training_pipeline(target: str = "kfp", gpu: "placement.GpuOptions | None" = None,
                            model_family: str = "auto"):
    """Build ``training_pipeline`` for ``target`` (``kfp`` or ``vertex``).

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
    from kfpc.components.schema.component import resolve_schema
    from kfpc.components.statistics.component import statistics
    from kfpc.components.validate.component import validate

    options = placement.for_model_family(gpu, model_family)
    train_op = placement.training_op(target, options)

    @dsl.pipeline(name="training-pipeline", description=DESCRIPTION)
    def training_pipeline(
        serving_root: str,
        source_uri: str = "bundled:penguins.csv",
        label: str = "species",
        key_column: str = "",
        eval_fraction: float = D.EVAL_FRACTION,
        validation_fraction: float = D.VALIDATION_FRACTION,
        schema_uri: str = "",
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
        eval_config_json: str = "",
        model_name: str = "penguins",
        namespace: str = D.NAMESPACE,
        push_mode: str = D.PUSH_MODE,
        canary_traffic_percent: int = 0,
        promote: bool = False,
        prometheus_url: str = "",
        prometheus_selector: str = "",
    ):
        """Train on ``source_uri`` and push the model if it is blessed.

        Args:
            source_uri: CSV or Parquet table (``gs://`` via /gcs, a local path, or ``bundled:<file>``).
            label: the column to predict.
            key_column: column whose hash decides the train/eval split; empty hashes the row.
            eval_fraction: share of rows held out for evaluation; training never sees them (it early-stops
                on a validation part of the train split).
            validation_fraction: share of the train split carved out, deterministically, for early stopping
                and model selection.
            schema_uri: a curated ``schema.pbtxt`` to validate against (production runs); empty infers
                one from the train split.
            task: ``auto`` (from the label), ``binary``, ``multiclass`` or ``regression``.
            exclude_columns: columns never used (IDs, leakage); columns null in every row are left out too.
            numeric_columns: text columns to read as numbers (values that are not numbers become missing).
            hidden_units, dropout, learning_rate, batch_size, epochs, patience, seed: training
                (``batch_size=0`` chooses it from the training rows: 32 for hundreds, 1024 from ~100k).
            fail_on_anomalies: stop before training when the eval split breaks the schema or differs from the
                train split beyond sampling noise (a sample-size-aware shift test per feature); warnings, such
                as a rare category the train split lacks, never stop the run.
            min_accuracy: accuracy lower bound for classification; 0 (default) leaves the decision to the
                skill gate (the model must beat the trivial predictor by its bootstrap interval).
            eval_config_json: thresholds shaped like TFMA's EvalConfig (overrides the default gates).
            model_name: InferenceService name and folder under ``serving_root``.
            serving_root: where versioned model copies go (``gs://``, ``s3://``, a path); required, so a
                run cannot reach the push step without one (``kfpc run`` uses ``<run>/serving``).
            namespace: Kubernetes namespace of the InferenceService.
            push_mode: ``dry_run`` (manifest and requests only), ``local`` (smoke-test a local server) or
                ``cluster`` (create/patch the InferenceService).
            canary_traffic_percent: 1..99 to canary the new model; 0 sends all traffic to it.
            promote: after a canary that stayed healthy for the bake period, move it to 100%.
            prometheus_url, prometheus_selector: where the canary's error rate and p99 latency are read during
                the bake (the Prometheus query API and label matchers selecting the canary's pods); needed to
                promote in cluster mode.
        """
        checked = preflight(
            source_uri=source_uri, label=label, task=task, key_column=key_column, eval_fraction=eval_fraction,
            validation_fraction=validation_fraction, exclude_columns=exclude_columns,
            numeric_columns=numeric_columns, hidden_units=hidden_units, dropout=dropout, learning_rate=learning_rate, batch_size=batch_size, epochs=epochs, patience=patience,
            min_accuracy=min_accuracy, eval_config_json=eval_config_json, model_name=model_name,
            namespace=namespace, push_mode=push_mode, canary_traffic_percent=canary_traffic_percent,
            promote=promote, prometheus_url=prometheus_url, prometheus_selector=prometheus_selector,
        )
        data = ingest(
            source_uri=source_uri, key_column=key_column, eval_fraction=eval_fraction,
            drop_columns=checked.outputs["Output"], numeric_columns=numeric_columns, label=label,
        )
        stats = statistics(data=data.outputs["data"])
        schema = resolve_schema(statistics=stats.outputs["statistics"], schema_uri=schema_uri)
        validation = validate(
            statistics=stats.outputs["statistics"],
            schema=schema.outputs["schema"],
            reference_split="train",  # skew: the eval split must look like what the model learns from
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
        evaluation = evaluate(
            data=data.outputs["data"],
            model=trained.outputs["model"],
            statistics=stats.outputs["statistics"],
            min_accuracy=min_accuracy,
            config_json=eval_config_json,
        )
        with dsl.If(evaluation.outputs["Output"] == True, name="blessed"):  # noqa: E712 (a KFP condition)
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

    return training_pipeline


#: parameters ``kfpc run`` sets when running locally, unless given: push to a folder in the run and
#: smoke-test the pushed copy with the kfpc model server on localhost.
LOCAL_DEFAULTS = {"push_mode": "local", "serving_root": "{run_dir}/serving"}
