"""The components through kfp.local: the penguins pipeline passes, a corrupted serving file fails it."""

import pytest
from kfp import dsl, local

from kfpc.components.ingest.component import ingest
from kfpc.components.schema.component import import_schema, infer_schema
from kfpc.components.statistics.component import statistics
from kfpc.components.validate.component import validate


@pytest.fixture
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    return tmp_path


def test_penguins_pipeline_validates_with_no_anomalies(local_runner, penguins_csv):
    @dsl.pipeline
    def validation(source: str) -> bool:
        data = ingest(source_uri=source)
        stats = statistics(data=data.outputs["data"])
        schema = infer_schema(statistics=stats.outputs["statistics"], drift_threshold=0.3)
        result = validate(statistics=stats.outputs["statistics"], schema=schema.outputs["schema"],
                          previous_statistics=stats.outputs["statistics"], previous_split="train")
        return result.outputs["anomalies_found"]

    run = validation(source=str(penguins_csv))
    assert run.output is False


def test_corrupted_serving_data_fails_the_task_and_lists_the_anomalies(local_runner, penguins_csv, tmp_path):
    lines = penguins_csv.read_text().splitlines()
    corrupted = [lines[0]] + [line.replace("Adelie", "Adelei").replace("Biscoe", "") for line in lines[1:]]
    serving = tmp_path / "serving.csv"
    serving.write_text("\n".join(corrupted) + "\n")
    (tmp_path / "schema").mkdir()

    @dsl.pipeline
    def skew(train_source: str, serving_source: str):
        train = ingest(source_uri=train_source)
        train_stats = statistics(data=train.outputs["data"])
        schema = infer_schema(statistics=train_stats.outputs["statistics"], skew_threshold=0.1)
        serving_data = ingest(source_uri=serving_source).set_display_name("ingest-serving")
        serving_stats = statistics(data=serving_data.outputs["data"]).set_display_name("statistics-serving")
        validate(statistics=serving_stats.outputs["statistics"], schema=schema.outputs["schema"],
                 serving_statistics=serving_stats.outputs["statistics"], split="train")

    with pytest.raises(RuntimeError):
        skew(train_source=str(penguins_csv), serving_source=str(serving))


def test_import_schema_then_validate_without_failing_reports_counts(local_runner, penguins_csv, tmp_path):
    curated = tmp_path / "curated.pbtxt"
    curated.write_text('feature { name: "species" type: BYTES domain: "species" presence { min_count: 1 } }\n'
                       'feature { name: "extra" type: INT presence { min_count: 1 } }\n'
                       'string_domain { name: "species" value: "Adelie" value: "Gentoo" }\n')

    @dsl.pipeline
    def curated_run(source: str, schema_uri: str) -> int:
        data = ingest(source_uri=source)
        stats = statistics(data=data.outputs["data"])
        schema = import_schema(schema_uri=schema_uri)
        result = validate(statistics=stats.outputs["statistics"], schema=schema.outputs["schema"],
                          fail_on_anomalies=False)
        return result.outputs["anomaly_count"]

    run = curated_run(source=str(penguins_csv), schema_uri=str(curated))
    # species: Chinstrap unexpected; extra: missing column; the 7 other columns are new
    assert run.output == 9


def _statistics_artifact(folder, frames: dict):
    import os

    from tensorflow_metadata.proto.v0 import statistics_pb2

    from kfpc.components.statistics import core as stats_core

    for split, frame in frames.items():
        os.makedirs(folder / f"Split-{split}")
        stats = statistics_pb2.DatasetFeatureStatisticsList(datasets=[stats_core.generate_statistics(frame, split)])
        (folder / f"Split-{split}" / "FeatureStats.pb").write_bytes(stats.SerializeToString())
    return str(folder)


def test_eval_vs_train_skew_fails_the_task_on_a_shift_and_passes_with_a_rare_unseen_value(local_runner, capfd):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)

    def frame(rows):
        return pd.DataFrame({"c": rng.choice(["a", "b", "c"], rows), "x": rng.normal(10.0, 2.0, rows),
                             "n": rng.integers(0, 5, rows)})

    train, rare, shifted = frame(4_000), frame(1_000), frame(1_000)
    rare.loc[:4, "c"] = "unseen"  # 0.5% of eval, none in train
    shifted["x"] += 2.0  # one standard deviation

    @dsl.pipeline
    def skew(uri: str) -> int:
        stats = dsl.importer(artifact_uri=uri, artifact_class=dsl.Artifact)
        schema = infer_schema(statistics=stats.output)
        result = validate(statistics=stats.output, schema=schema.outputs["schema"], reference_split="train")
        return result.outputs["warning_count"]

    run = skew(uri=_statistics_artifact(local_runner / "rare", {"train": train, "eval": rare}))
    assert run.output == 1  # the task succeeded; the unseen value is a warning
    capfd.readouterr()
    with pytest.raises(RuntimeError):
        skew(uri=_statistics_artifact(local_runner / "shifted", {"train": train, "eval": shifted}))
    logged = "".join(capfd.readouterr())
    assert "AnomaliesFoundError: 1 anomaly in split 'eval'" in logged
    assert "x: COMPARATOR_NORMALIZED_ABSOLUTE_DIFFERENCE_HIGH" in logged and "Welch t = " in logged
