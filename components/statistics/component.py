"""KFP v2 component: statistics. Calls :mod:`kfpc.components.statistics.core`, writes artifact metadata."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Output

from kfpc.components import images
from kfpc.components.artifact_types import Statistics


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
