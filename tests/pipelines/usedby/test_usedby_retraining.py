"""The retraining pipeline: span and baseline resolution, its compiled shape, and a real local run.

The local run goes through kfp.local with real components: two spans of the penguins data, a production
schema with drift comparators, a served model pushed by kfpc's own storage code, real TF training.
"""

import csv
import random
import shutil

import pytest
import yaml

from kfpc.components import artifacts
from kfpc.pipelines import spans

# --------------------------------------------------------------------------- spans and baseline


def _write(path, text="x\n1\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_newest_and_previous_span_by_number_not_by_name(tmp_path):
    for n in (1, 2, 10):
        _write(tmp_path / f"span-{n}" / "data.csv")
    (tmp_path / "span-11").mkdir()  # still being written: no data file yet
    _write(tmp_path / "span-x" / "data.csv")
    _write(tmp_path / "other-12" / "data.csv")
    found = spans.resolve_spans(f"{tmp_path}/span-{{SPAN}}/data.csv")
    assert (found.latest_span, found.previous_span) == (10, 2)
    assert found.latest_uri == f"{tmp_path}/span-10/data.csv"
    assert found.previous_uri == f"{tmp_path}/span-2/data.csv"
    assert found.has_previous


def test_span_in_a_file_name_and_a_single_span(tmp_path):
    _write(tmp_path / "export-20250101.parquet")
    found = spans.resolve_spans(f"file://{tmp_path}/export-{{SPAN}}.parquet")
    assert found.latest_span == found.previous_span == 20250101
    assert found.latest_uri == found.previous_uri == f"file://{tmp_path}/export-20250101.parquet"
    assert not found.has_previous
    assert spans.resolve_spans("/data/fixed.csv") == spans.Spans("/data/fixed.csv", 0, "/data/fixed.csv", 0)


@pytest.mark.parametrize("pattern, fragment", [
    ("{root}/span-{{SPAN}}/{{SPAN}}.csv", "exactly once"),
    ("{root}/missing/span-{{SPAN}}/data.csv", "does not exist"),
    ("{root}/span-{{SPAN}}/data.csv", "no complete span"),
    ("gs://bucket-{{SPAN}}/data.csv", "bucket name"),
])
def test_bad_span_patterns_are_explained(tmp_path, pattern, fragment):
    with pytest.raises(spans.SpanError, match=fragment):
        spans.resolve_spans(pattern.format(root=tmp_path))


def test_gcs_patterns_are_read_through_the_fuse_mount(tmp_path, monkeypatch):
    import kfpc.pipelines.spans as module

    monkeypatch.setattr(module, "local_path", lambda uri: uri.replace("gs://", f"{tmp_path}/gcs/"))
    _write(tmp_path / "gcs" / "bucket" / "d" / "span-3" / "data.csv")
    found = spans.resolve_spans("gs://bucket/d/span-{SPAN}/data.csv")
    assert found.latest_uri == "gs://bucket/d/span-3/data.csv"


def test_baseline_is_the_newest_pushed_version(tmp_path):
    from kfpc.components.push import storage

    model = tmp_path / "model"
    _write(model / "1" / "saved_model.pb", "pb")
    _write(model / "model_card.json", "{}")
    root = tmp_path / "serving"
    with pytest.raises(spans.SpanError, match="deploy a first model with training_pipeline"):
        spans.resolve_baseline("", str(root), "churn")
    storage.push_model(model, str(root), "churn")
    storage.push_model(model, str(root), "churn")
    assert spans.resolve_baseline("", str(root), "churn") == f"{root}/churn/v2"
    assert spans.resolve_baseline("gs://b/m/v7", str(root), "churn") == "gs://b/m/v7"


# --------------------------------------------------------------------------- compiled shape


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from kfpc.pipelines import compiler

    out = tmp_path_factory.mktemp("retraining")
    return {t: compiler.compile_pipeline("retraining_pipeline", t, out / f"{t}.yaml") for t in ("kfp", "vertex")}


@pytest.mark.parametrize("target", ["kfp", "vertex"])
def test_compiled_retraining_pipeline_wires_the_loop(compiled, target):
    spec = next(yaml.safe_load_all(compiled[target].read_text()))
    tasks = spec["root"]["dag"]["tasks"]
    resolve = tasks["resolve-retraining-inputs"]
    assert resolve["cachingOptions"] == {}  # never cached: the newest span changes between runs
    assert tasks["ingest"]["inputs"]["parameters"]["source_uri"]["taskOutputParameter"] == {
        "outputParameterKey": "data_uri", "producerTask": "resolve-retraining-inputs"}
    assert tasks["ingest-2"]["inputs"]["parameters"]["source_uri"]["taskOutputParameter"]["outputParameterKey"] == \
        "previous_data_uri"
    validate = tasks["validate"]["inputs"]
    assert validate["artifacts"]["previous_statistics"]["taskOutputArtifact"]["producerTask"] == "statistics-2"
    assert validate["artifacts"]["schema"]["taskOutputArtifact"]["producerTask"] == "import-schema"
    importer = tasks["importer"]
    assert importer["inputs"]["parameters"]["uri"]["taskOutputParameter"]["outputParameterKey"] == \
        "baseline_model_uri"
    evaluate = tasks["evaluate"]["inputs"]["artifacts"]
    assert evaluate["baseline_model"]["taskOutputArtifact"]["producerTask"] == "importer"
    condition = tasks["condition-1"]
    assert condition["triggerPolicy"]["condition"] == "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
    assert "push-kserve" in spec["components"]["comp-condition-1"]["dag"]["tasks"]
    required = {n for n, p in spec["root"]["inputDefinitions"]["parameters"].items() if not p.get("isOptional")}
    assert required == {"source_pattern", "schema_uri", "label", "serving_root", "model_name"}


def test_compiled_yaml_is_accepted_by_vertex_and_kfp(compiled):
    """What users upload: aiplatform.PipelineJob takes the compiled YAML offline; kfp loads it back."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import aiplatform
    from kfp import components

    for path in compiled.values():
        loaded = components.load_component_from_file(str(path))
        assert loaded.name == "retraining-pipeline"
    # the Vertex compile is what Vertex takes; the KFP one carries a `platforms: kubernetes` document
    job = aiplatform.PipelineJob(
        display_name="retrain", template_path=str(compiled["vertex"]), pipeline_root="gs://bucket/root",
        parameter_values={"source_pattern": "gs://b/span-{SPAN}/data.csv", "schema_uri": "gs://b/schema.pbtxt",
                          "label": "species", "serving_root": "gs://b/models", "model_name": "penguins"},
        project="p", location="us-central1", credentials=AnonymousCredentials(),
    )
    assert job._gca_resource.pipeline_spec["pipelineInfo"]["name"] == "retraining-pipeline"
    assert job._gca_resource.runtime_config.parameter_values["model_name"] == "penguins"

# --------------------------------------------------------------------------- a real local run


def _spans_of_penguins(penguins_csv, root):
    rows = list(csv.DictReader(open(penguins_csv)))
    random.Random(0).shuffle(rows)
    half = len(rows) // 2
    for number, chunk in ((1, rows[:half]), (2, rows[half:])):
        folder = root / f"span-{number}"
        folder.mkdir(parents=True)
        with open(folder / "data.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(chunk)


@pytest.mark.slow
def test_retraining_pipeline_runs_locally_and_pushes_only_if_better(tmp_path, penguins_csv, monkeypatch):
    import kfp.local

    from kfpc.components.ingest import core as ingest_core
    from kfpc.components.push import storage
    from kfpc.components.schema import core as schema_core
    from kfpc.components.statistics import core as stats_core
    from kfpc.components.train import core as train_core
    from kfpc.pipelines import retraining

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "1")
    _spans_of_penguins(penguins_csv, tmp_path / "data")
    # production: a model trained on span 1, pushed with kfpc's storage code, and a reviewed schema
    span1 = tmp_path / "span1-dataset"
    ingest_core.ingest(str(tmp_path / "data" / "span-1" / "data.csv"), span1)
    stats_core.write_statistics(span1, tmp_path / "span1-stats")
    schema = schema_core.infer_schema(artifacts.read_statistics(tmp_path / "span1-stats", "train"),
                                      drift_comparators={"infinity_norm": 0.9, "jensen_shannon_divergence": 0.9})
    artifacts.write_schema(schema, tmp_path / "schema")
    train_core.train(span1, tmp_path / "served", label="species", epochs=1, batch_size=64, hidden_units=[8])
    serving_root = tmp_path / "serving"
    storage.push_model(tmp_path / "served", str(serving_root), "penguins")

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
                   raise_on_error=True)
    pipeline = retraining.build_retraining_pipeline("kfp")
    params = dict(source_pattern=f"{tmp_path}/data/span-{{SPAN}}/data.csv", schema_uri=str(tmp_path / "schema"),
                  label="species", serving_root=str(serving_root), model_name="penguins", epochs=5,
                  batch_size=32, hidden_units=[16], learning_rate=0.05, push_mode="dry_run")
    # 1) thresholds the candidate cannot meet: evaluated, not pushed
    impossible = '{"thresholds": [{"metric": "accuracy", "value_threshold": {"lower_bound": 1.01}}]}'
    run = pipeline(**params, eval_config_json=impossible)
    run_root = next(p for p in (tmp_path / "root").iterdir() if p.is_dir())
    assert not (run_root / "push-kserve").exists()
    shutil.rmtree(tmp_path / "root")
    # 2) better than (or as good as) the served model: pushed, against span 2 with span 1 as baseline data
    run = pipeline(**params, min_accuracy=0.5, max_regression=0.05)
    run_root = next(p for p in (tmp_path / "root").iterdir() if p.is_dir())
    resolved = yaml.safe_load((run_root / "resolve-retraining-inputs" / "executor_output.json").read_text())
    values = resolved["parameterValues"]
    assert (values["span"], values["previous_span"]) == (2, 1)
    assert values["baseline_model_uri"] == f"{serving_root}/penguins/v1"
    assert (run_root / "push-kserve").exists()
    assert run is not None


@pytest.mark.slow
def test_a_candidate_without_skill_is_not_blessed_against_a_skilled_served_model(tmp_path, penguins_csv, monkeypatch):
    """Issue 14's case: an imbalanced binary label with modest signal (lives on Torgersen or not: 15% positives,
    only partly told by the measurements), a served model trained on real labels, and a new span whose TRAIN
    rows carry shuffled labels (its eval rows keep the real ones). The candidate predicts near the prior: its
    accuracy is about the majority rate, as is the served model's, so an accuracy gate would pass it. The skill gates (beat the class prior by the interval; not worse than the served model by the paired
    interval) reject it, and nothing is pushed."""
    import kfp.local
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from kfpc.components.ingest import core as ingest_core
    from kfpc.components.push import storage
    from kfpc.components.train import core as train_core
    from kfpc.pipelines import retraining

    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "1")
    frame = pd.read_csv(penguins_csv)
    frame.insert(0, "penguin_id", [f"p{i:04d}" for i in range(len(frame))])
    frame["torgersen"] = np.where(frame.pop("island") == "Torgersen", "yes", "no")
    order = np.random.default_rng(0).permutation(len(frame))
    span1, span2 = frame.iloc[order[: len(frame) // 2]], frame.iloc[order[len(frame) // 2:]].copy()
    # shuffle the labels of the rows that ingest (split by penguin_id) will put in span 2's train split
    is_eval = ingest_core.split_buckets(pa.RecordBatch.from_pandas(span2, preserve_index=False), "penguin_id") < 2000
    train_rows = np.flatnonzero(~is_eval)
    span2.iloc[train_rows, span2.columns.get_loc("torgersen")] = \
        np.random.default_rng(1).permutation(span2["torgersen"].to_numpy()[train_rows])
    for number, part in ((1, span1), (2, span2)):
        (tmp_path / "data" / f"span-{number}").mkdir(parents=True)
        part.to_csv(tmp_path / "data" / f"span-{number}" / "data.csv", index=False)
    # the served model: trained on span 1's real labels
    ingest_core.ingest(str(tmp_path / "data" / "span-1" / "data.csv"), tmp_path / "span1", key_column="penguin_id",
                       drop_columns=["penguin_id"])
    train_core.train(tmp_path / "span1", tmp_path / "served", label="torgersen", epochs=40,
                     learning_rate=0.01, verbose=0)
    serving_root = tmp_path / "serving"
    storage.push_model(tmp_path / "served", str(serving_root), "torgersen")
    from kfpc.components.schema import core as schema_core
    from kfpc.components.statistics import core as stats_core

    stats_core.write_statistics(tmp_path / "span1", tmp_path / "span1-stats")
    artifacts.write_schema(schema_core.infer_schema(artifacts.read_statistics(tmp_path / "span1-stats", "train")),
                             tmp_path / "schema")

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"),
                   raise_on_error=True)
    retraining.build_retraining_pipeline("kfp")(
        source_pattern=f"{tmp_path}/data/span-{{SPAN}}/data.csv", schema_uri=str(tmp_path / "schema"),
        label="torgersen", serving_root=str(serving_root), model_name="torgersen", key_column="penguin_id",
        exclude_columns=["penguin_id"], push_mode="dry_run", epochs=30,
    )
    run_root = next(p for p in (tmp_path / "root").iterdir() if p.is_dir())
    evaluation = yaml.safe_load((run_root / "evaluate" / "executor_output.json").read_text())
    assert evaluation["parameterValues"]["Output"] is False
    blessing = evaluation["artifacts"]["blessing"]["artifacts"][0]["metadata"]
    assert blessing["blessed"] is False and blessing["failed_thresholds"], blessing
    assert not (run_root / "push-kserve").exists()
    assert storage.latest_version(str(serving_root), "torgersen") == f"{serving_root}/torgersen/v1"
