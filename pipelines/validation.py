"""``validation_pipeline``: statistics of a large table in parallel shards, merged exactly, then schema,
anomalies and drift against a previous span — on its own, before any training pipeline.

``plan_shards`` → ``dsl.ParallelFor`` over ``shard_statistics`` (one pod per shard on the KFP backend or
Vertex AI Pipelines, at most ``parallelism`` at a time) → ``merge_statistics`` (``dsl.Collected``) → the same
``FeatureStats.pb`` the one-pass ``statistics`` writes → ``resolve_schema`` (curated or inferred) →
``validate``. With ``previous_source_uri`` the previous span is summarized the same way and ``validate``
checks drift against it.
"""

from kfp import dsl

DESCRIPTION = (
    "Big-data validation: statistics over parallel shards merged exactly, schema (curated or inferred), "
    "anomalies, and drift against the previous span."
)

#: shards summarized at the same time (a compile-time setting of dsl.ParallelFor)
DEFAULT_PARALLELISM = 8


def build_validation_pipeline(target: str = "kfp", parallelism: int = DEFAULT_PARALLELISM):
    """Build ``validation_pipeline`` (the same for ``kfp`` and ``vertex``: no accelerator).

    Args:
        target: compile target (accepted for the registry's signature).
        parallelism: shard tasks running at once (``dsl.ParallelFor(parallelism=...)``; KFP fixes it at
            compile time, so it is a build option — ``compiler.compile_pipeline("validation_pipeline",
            parallelism=N)`` — not a run parameter; the committed YAML uses the default, 8).
    Returns:
        The ``@dsl.pipeline`` function.
    """
    from kfpc.components.schema.component import resolve_schema
    from kfpc.components.statistics.component import merge_statistics, plan_shards, shard_statistics
    from kfpc.components.validate.component import validate

    if int(parallelism) < 1:
        raise ValueError(f"parallelism must be at least 1, got {parallelism}")

    @dsl.pipeline(name="validation-pipeline", description=DESCRIPTION)
    def validation_pipeline(
        source_uri: str,
        previous_source_uri: str = "",
        num_shards: int = 16,
        split: str = "train",
        schema_uri: str = "",
        max_string_domain_size: int = 100,
        top_k: int = 10000,
        quantile_sketch_size: int = 2048,
        fail_on_anomalies: bool = True,
    ):
        """Validate a (large) table, sharded.

        Args:
            source_uri: the span's Parquet/CSV files: a file, folder, glob or path prefix (``gs://`` via /gcs).
            previous_source_uri: the previous span, the same way; empty: no drift check.
            num_shards: shards per span (one pod each; one large Parquet file splits by row groups).
            split: split name the statistics are written and validated under.
            schema_uri: a curated ``schema.pbtxt``; empty: inferred from this span's statistics.
            max_string_domain_size: largest number of distinct strings that becomes an inferred string domain.
            top_k: string values kept per feature.
            quantile_sketch_size: values per quantile sketch level.
            fail_on_anomalies: fail the run (after writing the anomalies and reports) when errors are found.
        """
        plan = plan_shards(source=source_uri, num_shards=num_shards).set_display_name("plan-shards")
        with dsl.ParallelFor(plan.output, parallelism=parallelism) as shard:
            summarized = shard_statistics(shard=shard, top_k=top_k, quantile_sketch_size=quantile_sketch_size)
        merged = merge_statistics(accumulators=dsl.Collected(summarized.outputs["accumulator"]), split=split)
        schema = resolve_schema(statistics=merged.outputs["statistics"], schema_uri=schema_uri, split=split,
                                max_string_domain_size=max_string_domain_size)
        with dsl.If(previous_source_uri != "", name="with-previous-span"):
            previous_plan = plan_shards(source=previous_source_uri, num_shards=num_shards).set_display_name(
                "plan-previous-shards")
            with dsl.ParallelFor(previous_plan.output, parallelism=parallelism) as previous_shard:
                previous_summarized = shard_statistics(shard=previous_shard, top_k=top_k,
                                                       quantile_sketch_size=quantile_sketch_size)
            previous = merge_statistics(accumulators=dsl.Collected(previous_summarized.outputs["accumulator"]),
                                        split=split).set_display_name("merge-previous-statistics")
            validate(statistics=merged.outputs["statistics"], schema=schema.outputs["schema"], split=split,
                     previous_statistics=previous.outputs["statistics"], previous_split=split,
                     fail_on_anomalies=fail_on_anomalies).set_display_name("validate-with-drift")
        with dsl.Else(name="without-previous-span"):
            validate(statistics=merged.outputs["statistics"], schema=schema.outputs["schema"], split=split,
                     fail_on_anomalies=fail_on_anomalies)

    return validation_pipeline
