"""``training_pipeline``: ingest → statistics → schema → validate → train (GPU node) → [feature importance] and evaluate → push.

Composition only: the work is in the components, GPU placement in :mod:`kfpc.pipelines.placement`.
"""


from kfp import dsl

from kfpc.pipelines import defaults as D
from kfpc.pipelines import placement, steps

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
    from kfpc.components.feature_importance.component import feature_importance as importance_op
    from kfpc.components.schema.component import resolve_schema
    from kfpc.components.statistics.component import statistics
    from kfpc.components.validate.component import validate, validation_gate

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
        hidden_units: list[int] = list(D.HIDDEN_UNITS),  # noqa: B006, B008
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
        namespace: str = D.PIPELINE_NAMESPACE,
        push_mode: str = D.PUSH_MODE,
        canary_traffic_percent: int = 0,
        promote: bool = False,
        prometheus_url: str = "",
        prometheus_selector: str = "",
        feature_importance: bool = True,
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
            hidden_units: sizes of the network's hidden layers.
            dropout: dropout rate after each hidden layer.
            learning_rate: Adam's learning rate.
            batch_size: rows per step; 0 chooses it from the training rows (32 for hundreds, 1024 from ~100k).
            epochs: most passes over the training rows (early stopping usually ends sooner).
            patience: epochs without a better validation loss before training stops (0: never early-stop).
            seed: seed of the validation carve, the weights' initialization and the shuffling.
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
            prometheus_url: the Prometheus query API the canary's error rate and p99 latency are read from
                during the bake; needed to promote in cluster mode.
            prometheus_selector: label matchers selecting the canary's series in Prometheus.
            feature_importance: after training, report the permutation importance of each feature on the eval
                split (at most 5,000 rows; an HTML report and Metrics); it gates nothing.
        """
        p = dict(locals())  # (first: the pipeline's parameters, for the shared steps)
        checked = steps.preflight(p, source_uri)
        data = steps.ingest(p, source_uri, checked.outputs["Output"])
        stats = statistics(data=data.outputs["data"])
        schema = resolve_schema(statistics=stats.outputs["statistics"], schema_uri=schema_uri)
        validation = validate(
            statistics=stats.outputs["statistics"],
            schema=schema.outputs["schema"],
            reference_split="train",  # skew: the eval split must look like what the model learns from
            fail_on_anomalies=False,  # the gate below fails the run, after the reports are recorded
        )
        gate = validation_gate(anomalies=validation.outputs["anomalies"],
                               what="split 'eval' (against the schema and the train split)",
                               fail_on_anomalies=fail_on_anomalies)
        trained = steps.train(p, train_op, target, options, data, stats, schema,
                              {"model_family": model_family}).after(gate)
        evaluation = steps.evaluate(p, data, trained.outputs["model"], stats)
        steps.push_if_blessed(p, evaluation, trained.outputs["model"], data, "blessed", stats=stats)
        # (after the push: the blessed condition keeps its place, condition-1, in the compiled DAG)
        with dsl.If(feature_importance == True, name="feature-importance"):  # noqa: E712 (a KFP condition)
            importance_op(data=data.outputs["data"], model=trained.outputs["model"])

    return training_pipeline


#: parameters ``kfpc run`` sets when running locally, unless given: push to a folder in the run and
#: smoke-test the pushed copy with the kfpc model server on localhost.
LOCAL_DEFAULTS = {"push_mode": "local", "serving_root": "{run_dir}/serving"}
