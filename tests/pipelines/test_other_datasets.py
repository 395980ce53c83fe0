"""The training pipeline on data that is not penguins, with only parameter changes: a binary label with
integer values, a multi-class table of numeric features, and 200k rows with high-cardinality strings and
nulls. Built for the general case, not the bundled data."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn import datasets

from kfpc.components.contract import read_card
from kfpc.pipelines import local_run

FAST = {"epochs": 15, "patience": 5, "push_mode": "dry_run", "min_accuracy": 0.5}


def _run(tmp_path, source, label, **params):
    summary = local_run.run(
        "training_pipeline", {"source_uri": str(source), "label": label, **FAST, **params}, tmp_path / "run"
    )
    assert summary.status == "SUCCESS", summary.error
    return summary


def test_binary_breast_cancer(tmp_path):
    frame = datasets.load_breast_cancer(as_frame=True).frame  # 569 rows, 30 numeric features, target 0/1
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.to_csv(tmp_path / "cancer.csv", index=False)
    summary = _run(tmp_path, tmp_path / "cancer.csv", "target")  # no model_name: named after the file
    assert summary.task("push-kserve").outputs["model_uri"].endswith("/cancer/v1")
    card = read_card(summary.task("train").artifacts["model"]["path"])
    assert card["task"] == "binary" and sorted(card["classes"]) == ["0", "1"]
    metrics = summary.task("evaluate").artifacts["metrics"]["metadata"]
    assert metrics["accuracy"] >= 0.9 and metrics["roc_auc"] >= 0.95


def test_multiclass_wine(tmp_path):
    frame = datasets.load_wine(as_frame=True).frame  # 178 rows, 13 numeric features, 3 classes
    frame["target"] = frame["target"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.to_parquet(tmp_path / "wine.parquet")
    summary = _run(tmp_path, tmp_path / "wine.parquet", "target", model_name="wine", eval_fraction=0.3)
    card = read_card(summary.task("train").artifacts["model"]["path"])
    assert card["task"] == "multiclass" and len(card["classes"]) == 3
    assert summary.task("evaluate").artifacts["metrics"]["metadata"]["accuracy"] >= 0.85


@pytest.mark.e2e
def test_200k_rows_with_high_cardinality_strings_and_nulls(tmp_path):
    from benchmarks.synthetic import make_table

    table = make_table(200_000, seed=7)
    rng = np.random.default_rng(7)
    score = table.column("score").to_numpy()
    color = table.column("color").to_numpy(zero_copy_only=False)
    logit = 2.0 * score + np.where(color == "red", 1.5, 0.0) + rng.normal(0, 0.5, len(score))
    table = table.drop_columns(["user_id", "comment"]).append_column(
        "churned", pa.array(np.where(logit > 0.5, "yes", "no"))
    )
    pq.write_table(table, tmp_path / "big.parquet")
    summary = _run(tmp_path, tmp_path / "big.parquet", "churned", model_name="churn", epochs=2, batch_size=1024)
    rows = summary.task("ingest").artifacts["data"]["metadata"]["rows"]
    assert rows["train"] + rows["eval"] == 200_000
    card = read_card(summary.task("train").artifacts["model"]["path"])
    features = {f["name"]: f for f in card["features"]}
    assert features["product"]["kind"] == "categorical"  # 20,000 distinct values with nulls
    assert summary.task("evaluate").artifacts["metrics"]["metadata"]["accuracy"] >= 0.85


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch, repo_root):
    monkeypatch.syspath_prepend(repo_root)
