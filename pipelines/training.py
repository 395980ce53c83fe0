"""``training_pipeline``: ingest → statistics → schema → validate → train (GPU node) → [feature importance] and evaluate → push.

Composition only: the work is in the components, GPU placement in :mod:`kfpc.pipelines.placement`.
"""


from kfp import dsl

from kfpc.pipelines import parameters as P
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
        model_family: what the train step trains: ``auto`` (network and gradient-boosted trees; the trees are
            kept unless the network is better on the validation part beyond 2 standard errors), ``dnn`` or ``gbdt``. Decided at build time because it decides the
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

    def define(p):
        checked = steps.preflight(p, p["source_uri"])
        data = steps.ingest(p, p["source_uri"], checked.outputs["Output"])
        stats = statistics(data=data.outputs["data"])
        schema = resolve_schema(statistics=stats.outputs["statistics"], schema_uri=p["schema_uri"])
        validation = validate(
            statistics=stats.outputs["statistics"],
            schema=schema.outputs["schema"],
            reference_split="train",  # skew: the eval split must look like what the model learns from
            fail_on_anomalies=False,  # the gate below fails the run, after the reports are recorded
        )
        gate = validation_gate(anomalies=validation.outputs["anomalies"],
                               what="split 'eval' (against the schema and the train split)",
                               fail_on_anomalies=p["fail_on_anomalies"])
        trained = steps.train(p, train_op, target, options, data, stats, schema,
                              {"model_family": model_family}).after(gate)
        evaluation = steps.evaluate(p, data, trained.outputs["model"], stats)
        steps.push_if_blessed(p, evaluation, trained.outputs["model"], data, "blessed", stats=stats)
        # (after the push: the blessed condition keeps its place, condition-1, in the compiled DAG)
        with dsl.If(p["feature_importance"] == True, name="feature-importance"):  # noqa: E712 (a KFP condition)
            importance_op(data=data.outputs["data"], model=trained.outputs["model"])

    parameters = P.select(P.TRAINING_PIPELINE + ("feature_importance",), own={
        "feature_importance": P.Parameter(bool, True, "after training, report the permutation importance of each "
                                          "feature on the eval split (at most 5,000 rows; an HTML report and "
                                          "Metrics); it gates nothing."),
    })
    training_pipeline = P.pipeline_function(
        "training_pipeline", "Train on ``source_uri`` and push the model if it is blessed.", parameters, define)
    return dsl.pipeline(name="training-pipeline", description=DESCRIPTION)(training_pipeline)


#: parameters ``kfpc run`` sets when running locally, unless given: push to a folder in the run and
#: smoke-test the pushed copy with the kfpc model server on localhost.
LOCAL_DEFAULTS = {"push_mode": "local", "serving_root": "{run_dir}/serving"}
