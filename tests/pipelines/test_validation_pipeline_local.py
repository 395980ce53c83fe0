"""``validation_pipeline`` end to end through kfp.local: 4 shards of one Parquet file, the previous span for
drift; the merged statistics equal a single pass, and a drifted span stops the run listing the feature."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from kfpc.components import artifacts
from kfpc.components.statistics import core
from kfpc.pipelines import local_run

ROWS = 20_000


def _span(rows: int, seed: int, cities=("paris", "rome", "oslo")) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table({
        "age": rng.integers(18, 90, rows),
        "income": rng.lognormal(10, 1, rows),
        "city": pa.array(rng.choice(list(cities), rows)),
        "flag": rng.random(rows) < 0.3,
    })


@pytest.fixture(scope="module")
def spans(tmp_path_factory):
    folder = tmp_path_factory.mktemp("spans")
    pq.write_table(_span(ROWS, 1), folder / "current.parquet", row_group_size=ROWS // 16)
    previous = folder / "previous"
    previous.mkdir()
    for i, rows in enumerate((3000, 9000, 8000)):  # the previous span as uneven files in a folder
        pq.write_table(_span(rows, 10 + i), previous / f"part-{i}.parquet")
    return folder


def test_four_shards_with_drift_check_merge_to_the_one_pass_statistics(spans, tmp_path):
    summary = local_run.run("validation_pipeline", {
        "source_uri": str(spans / "current.parquet"), "previous_source_uri": str(spans / "previous"),
        "num_shards": 4}, tmp_path / "run")
    assert summary.status == "SUCCESS", summary.error
    shard_runs = [t for t in summary.tasks if t.name.startswith("for-loop-1-iteration-")]
    assert len(shard_runs) == 4
    merge = summary.task("merge-statistics").artifacts["statistics"]
    assert merge["metadata"]["shards"] == 4 and merge["metadata"]["rows"] == {"train": ROWS}
    merged = artifacts.read_statistics(merge["path"], "train").datasets[0]
    one = core.generate_statistics(str(spans / "current.parquet"), name="train")
    for a, b in zip(one.features, merged.features, strict=True):
        if a.HasField("num_stats"):
            assert (a.num_stats.min, a.num_stats.max) == (b.num_stats.min, b.num_stats.max)
            assert a.num_stats.mean == pytest.approx(b.num_stats.mean, rel=1e-12)
            assert a.num_stats.std_dev == pytest.approx(b.num_stats.std_dev, rel=1e-12)
        else:
            assert list(a.string_stats.top_values) == list(b.string_stats.top_values)
    assert summary.task("merge-statistics-2").artifacts["statistics"]["metadata"]["rows"] == {"train": 20_000}
    assert summary.task("validate").outputs["anomaly_count"] == 0


def test_parallelism_is_compiled_into_both_fan_outs(tmp_path):
    from kfpc.pipelines import compiler

    path = compiler.compile_pipeline("validation_pipeline", "kfp", tmp_path / "v.yaml", parallelism=3)
    spec = yaml.safe_load(path.read_text())
    policies = [task["iteratorPolicy"] for task in spec["root"]["dag"]["tasks"].values() if "iteratorPolicy" in task]
    policies += [task["iteratorPolicy"] for component in spec["components"].values()
                 for task in component.get("dag", {}).get("tasks", {}).values() if "iteratorPolicy" in task]
    assert policies == [{"parallelismLimit": 3}] * 2
    with pytest.raises(ValueError, match="parallelism must be at least 1"):
        compiler.compile_pipeline("validation_pipeline", "kfp", tmp_path / "w.yaml", parallelism=0)
