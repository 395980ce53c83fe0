"""The bulk-encoded top_values / rank_histogram equal the ones built entry by entry."""

import numpy as np
import pyarrow as pa
import pytest
from tensorflow_metadata.proto.v0 import statistics_pb2

from kfpc.components.statistics import core, kernels


def _one_by_one(labels: list[str], counts: np.ndarray) -> statistics_pb2.StringStatistics:
    stats = statistics_pb2.StringStatistics()
    for rank, (label, count) in enumerate(zip(labels, counts.tolist(), strict=True)):
        stats.top_values.add(value=label, frequency=count)
        stats.rank_histogram.buckets.add(low_rank=rank, high_rank=rank, label=label, sample_count=count)
    return stats


@pytest.mark.parametrize("labels", [
    ["only"],
    ["", "empty first"],
    ["é" * 100, "日本" * 3000, "z" * 20000] + [f"v{i}" for i in range(300)],  # multi-byte varints, ranks > 127
])
def test_bulk_encoding_parses_to_the_same_message(labels):
    counts = np.random.default_rng(len(labels)).integers(1, 10**12, len(labels)).astype(np.float64)
    counts[0] = 0.5
    bulk = statistics_pb2.StringStatistics()
    bulk.MergeFromString(core._encode_top_values(pa.array(labels), counts))
    expected = _one_by_one(labels, counts)
    assert bulk == expected and bulk.SerializeToString() == expected.SerializeToString()


@pytest.mark.parametrize("compiled", [True, False])
def test_long_lists_encode_alike_on_both_paths(monkeypatch, compiled):
    # past kernels.MIN_VALUES labels the compiled encoder writes them: the same bytes as entry by entry
    rng = np.random.default_rng(1)
    labels = [f"value-{i}" * int(rng.integers(0, 30)) + "é" * (i % 3) for i in range(3 * kernels.MIN_VALUES)]
    labels[5] = ""
    counts = rng.integers(1, 10**9, len(labels)).astype(np.float64)
    if not compiled:
        monkeypatch.setattr(kernels, "_loaded", None)
    assert (kernels.for_size(len(labels)) is not None) == compiled
    sliced = pa.array(["skipped"] + labels).slice(1)  # offsets not starting at 0
    bulk = statistics_pb2.StringStatistics()
    bulk.MergeFromString(core._encode_top_values(sliced, counts))
    assert bulk.SerializeToString() == _one_by_one(labels, counts).SerializeToString()


def test_statistics_of_a_string_column_keep_their_top_values():
    rng = np.random.default_rng(0)
    values = rng.choice(["paris", "rome", "oslo", "日本"], 5000)
    stats = core.generate_statistics(pa.table({"city": values}), threads=1)
    top = stats.features[0].string_stats
    names, counts = np.unique(values, return_counts=True)
    assert {v.value: v.frequency for v in top.top_values} == dict(zip(names.tolist(), counts.tolist(), strict=True))
    assert [b.label for b in top.rank_histogram.buckets] == [v.value for v in top.top_values]
    assert [b.low_rank for b in top.rank_histogram.buckets] == list(range(4))
