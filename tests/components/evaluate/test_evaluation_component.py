"""The evaluate component through kfp.local: a candidate trained on shuffled labels is never blessed against
a real baseline, so the push step behind ``dsl.If(blessed)`` does not run; a first run is judged on value
thresholds only. Also: the component compiles with its optional inputs left out."""

import json
from pathlib import Path

import kfp
import pytest
import yaml
from kfp import compiler, dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from kfpc.components import images
from kfpc.components.evaluate.component import evaluate
from kfpc.components.ingest.component import ingest

PENGUINS = Path(__file__).resolve().parents[3] / "pipelines" / "data" / "penguins.csv"
TRAIN_ARGS = {"label": "species", "epochs": 30, "hidden_units": [16], "batch_size": 32, "patience": 0, "seed": 1,
              "learning_rate": 0.01}


@dsl.component(base_image=images.DATA, install_kfp_package=False)
def shuffle_labels(data: Input[Dataset], shuffled: Output[Dataset], label: str, seed: int = 0):
    """Copy a Dataset with the label column of its train split randomly permuted (eval split untouched)."""
    import shutil
    from pathlib import Path

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(data.path, shuffled.path)
    path = Path(shuffled.path) / "Split-train" / "data.parquet"
    table = pq.read_table(path)
    column = table.column(label).to_numpy(zero_copy_only=False)
    permuted = pa.array(np.random.default_rng(seed).permutation(column), type=table.schema.field(label).type)
    pq.write_table(table.set_column(table.schema.get_field_index(label), label, permuted), path)


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def push_marker(marker_path: str, blessing: Input[Artifact]):
    """Stands in for the push step: leaves a file behind when it runs."""
    with open(marker_path, "w") as handle:
        handle.write(blessing.uri)


@pytest.fixture(scope="module")
def local_runner(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline_root")
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


def _train():
    from kfpc.components.train.component import train

    return train


def test_shuffled_label_candidate_is_never_blessed_and_a_good_first_model_is(local_runner, tmp_path):
    """One pipeline, two gates (one run keeps the test cheap: every kfp.local task is a fresh process).

    Gate 1: candidate trained on shuffled labels vs the real baseline, default gates -> not blessed, its push
    must not run.
    Gate 2: the real model on a first run (no baseline), default skill gate plus accuracy >= 0.9 -> blessed,
    its push must run.
    """
    train = _train()

    @dsl.pipeline
    def gates(source_uri: str, rejected_marker: str, first_marker: str) -> Artifact:
        data = ingest(source_uri=source_uri, key_column="")
        baseline = train(data=data.outputs["data"], **TRAIN_ARGS)
        shuffled = shuffle_labels(data=data.outputs["data"], label="species", seed=3)
        candidate = train(data=shuffled.outputs["shuffled"], **TRAIN_ARGS)
        judged = evaluate(data=data.outputs["data"], model=candidate.outputs["model"],
                          baseline_model=baseline.outputs["model"])
        with dsl.If(judged.outputs["Output"] == True):  # noqa: E712 (a KFP condition, not a Python test)
            push_marker(marker_path=rejected_marker, blessing=judged.outputs["blessing"])
        first = evaluate(data=data.outputs["data"], model=baseline.outputs["model"], min_accuracy=0.9)
        with dsl.If(first.outputs["Output"] == True):  # noqa: E712
            push_marker(marker_path=first_marker, blessing=first.outputs["blessing"])
        return judged.outputs["blessing"]

    rejected, first = tmp_path / "pushed-rejected", tmp_path / "pushed-first"
    run = gates(source_uri=str(PENGUINS), rejected_marker=str(rejected), first_marker=str(first))
    assert not rejected.exists(), "the push step ran for an unblessed candidate"
    assert first.exists(), "a blessed first model was not pushed"
    blessing = run.output
    assert blessing.metadata["blessed"] is False
    assert blessing.metadata["has_baseline"] is True
    assert blessing.metadata["skill_metric"] == "roc_auc"  # three species: one-vs-rest macro ROC AUC
    failed = [v for v in blessing.metadata["thresholds"] if v["passed"] is False]
    assert any(v["kind"] == "change" and v["metric"] == "roc_auc" for v in failed)
    assert any("vs baseline" in reason for reason in blessing.metadata["failed_thresholds"])
    assert {d["kind"] for d in blessing.metadata["failed_threshold_details"]} >= {"change"}
    # The baseline is a real model: it beats the shuffled-label candidate by a wide margin.
    assert blessing.metadata["baseline_headline_value"] > blessing.metadata["headline_value"] + 0.2
    folder = Path(blessing.path)
    assert (folder / "NOT_BLESSED").exists() and not (folder / "BLESSED").exists()
    assert json.loads((folder / "blessing.json").read_text())["blessed"] is False


def test_component_compiles_with_optional_inputs(tmp_path):
    path = tmp_path / "evaluate.yaml"
    compiler.Compiler().compile(evaluate, str(path))
    spec = yaml.safe_load(path.read_text())
    inputs = spec["root"]["inputDefinitions"]["artifacts"]
    assert inputs["baseline_model"]["isOptional"] is True and inputs["statistics"]["isOptional"] is True
    assert "isOptional" not in inputs["model"]
    outputs = spec["root"]["outputDefinitions"]
    assert outputs["parameters"]["Output"]["parameterType"] == "BOOLEAN"
    assert set(outputs["artifacts"]) == {"metrics", "classification_metrics", "report", "blessing"}
    executor = next(iter(spec["deploymentSpec"]["executors"].values()))
    assert executor["container"]["image"] == images.TF
