"""KFP v2 components: statistics (one pass) and the sharded trio plan_shards -> shard_statistics -> merge_statistics.

They call :mod:`kfpc.components.statistics.core` / :mod:`.shards` and write artifact metadata.
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from kfpc.components import images
from kfpc.components.artifact_types import Statistics, StatisticsAccumulator


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def statistics(
    data: Input[Dataset],
    statistics: Output[Statistics],
    top_k: int = 10000,
    quantile_sketch_size: int = 2048,
):
    """Compute TFDV-format statistics of every split of a Dataset.

    Args:
        data: the Dataset (``Split-<split>/data.parquet``).
        statistics: the statistics artifact: ``Split-<split>/FeatureStats.pb`` (binary
            ``DatasetFeatureStatisticsList``); metadata ``split_names``, ``rows``.
        top_k: string values kept per feature (top_values / rank_histogram; the trainer's vocabulary cap).
        quantile_sketch_size: values per quantile sketch level (rank error <= log2(n/k)/k).
    """
    from kfpc.components.statistics import core

    metadata = core.write_statistics(data.path, statistics.path, top_k=top_k, quantile_k=quantile_sketch_size)
    statistics.metadata.update(metadata)


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def plan_shards(source: str, num_shards: int = 8) -> list:
    """Split a table into shards for ``shard_statistics`` (one per ``dsl.ParallelFor`` iteration).

    Args:
        source: a Parquet/CSV file, folder, glob or path prefix (``gs://`` read through ``/gcs``); one large
            Parquet file is split by row groups.
        num_shards: shards wanted (fewer when there are fewer row groups / CSV files).
    Returns:
        Shard descriptors (JSON objects: ``index``, ``count``, ``format``, ``rows``, ``bytes``, ``parts``).
    """
    from kfpc.components.statistics import shards

    return shards.plan_shards(source, num_shards)


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def shard_statistics(
    shard: dict,
    accumulator: Output[StatisticsAccumulator],
    top_k: int = 10000,
    quantile_sketch_size: int = 2048,
):
    """Summarize one shard into a mergeable accumulator (``accumulator.kfpcacc``, versioned wire format).

    Args:
        shard: one descriptor from ``plan_shards``.
        accumulator: the shard's accumulator artifact; metadata
            ``shard_index``, ``shard_count``, ``rows``.
        top_k: string values kept per feature (the same for every shard and the one-pass statistics).
        quantile_sketch_size: values per quantile sketch level.
    """
    from kfpc.components.statistics import shards

    metadata = shards.shard_statistics(shard, accumulator.path, top_k=top_k, quantile_k=quantile_sketch_size)
    accumulator.metadata.update(metadata)


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def merge_statistics(
    # system.Artifact: kfp 2.17 cannot compile a list of a custom artifact class (its import scan fails on
    # list[...]); the accumulators come only from shard_statistics' typed output
    accumulators: Input[list[Artifact]],
    statistics: Output[Statistics],
    split: str = "train",
):
    """Merge the shard accumulators into one statistics artifact (``Split-<split>/FeatureStats.pb``).

    Refuses a missing or repeated shard (rows would be silently left out) and an unknown wire format version.

    Args:
        accumulators: every shard's accumulator (``dsl.Collected`` of ``shard_statistics``), in any order.
        statistics: the statistics artifact, as the one-pass ``statistics`` component writes it; metadata
            ``split_names``, ``rows``, ``shards``.
        split: the split name the statistics are written under.
    """
    from kfpc.components.statistics import shards

    metadata = shards.merge_statistics([a.path for a in accumulators], statistics.path, split=split)
    statistics.metadata.update(metadata)
