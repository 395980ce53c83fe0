"""kfpc.components.artifacts: every reader round-trips its writer, and every bad artifact is an ArtifactError
naming the file (or field) and the value."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from tensorflow_metadata.proto.v0 import anomalies_pb2, schema_pb2, statistics_pb2

from kfpc.components import artifacts


def _dataset(root, splits=("train", "eval")):
    for split in splits:
        path = artifacts.split_file(root, split, must_exist=False)
        path.parent.mkdir(parents=True)
        pq.write_table(pa.table({"x": [1.0, 2.0], "y": ["a", "b"]}), path)
    return root


def test_dataset_splits_are_listed_and_read(tmp_path):
    root = _dataset(tmp_path / "data")
    (root / "Split-empty").mkdir()  # a folder without its data file is not a split
    assert artifacts.dataset_splits(root) == ["eval", "train"]
    assert artifacts.read_split(root, "train", columns=["y"]).column_names == ["y"]
    assert artifacts.split_file(f"file://{root}", "eval") == root / "Split-eval" / "data.parquet"


def test_a_missing_split_names_the_file_and_the_splits_present(tmp_path):
    root = _dataset(tmp_path / "data", splits=("train",))
    with pytest.raises(artifacts.ArtifactNotFoundError, match=r"no split 'eval' .*Split-eval/data.parquet.*\['train'\]"):
        artifacts.split_file(root, "eval")
    with pytest.raises(FileNotFoundError):  # the family is also what callers of open() expect
        artifacts.read_split(root, "eval")


def test_a_damaged_split_and_an_absent_column_name_the_file(tmp_path):
    root = _dataset(tmp_path / "data", splits=("train",))
    with pytest.raises(artifacts.ArtifactFormatError, match=r"Split-train/data.parquet.*\['nope'\]"):
        artifacts.read_split(root, "train", columns=["nope"])
    artifacts.split_file(root, "train").write_bytes(b"not parquet")
    with pytest.raises(artifacts.ArtifactFormatError, match="Split-train/data.parquet: not a readable Parquet"):
        artifacts.read_split(root, "train")


def test_statistics_round_trip_and_errors(tmp_path):
    stats = statistics_pb2.DatasetFeatureStatisticsList()
    stats.datasets.add(name="train", num_examples=3)
    artifacts.write_statistics({"train": stats}, tmp_path / "stats")
    assert artifacts.statistics_splits(tmp_path / "stats") == ["train"]
    assert artifacts.read_statistics(tmp_path / "stats", "train") == stats
    assert artifacts.read_statistics(tmp_path / "stats" / "Split-train" / "FeatureStats.pb") == stats
    with pytest.raises(artifacts.ArtifactFormatError, match=r"needs a split name \(splits present: \['train'\]\)"):
        artifacts.read_statistics(tmp_path / "stats")
    with pytest.raises(artifacts.ArtifactNotFoundError, match="no split 'eval'"):
        artifacts.read_statistics(tmp_path / "stats", "eval")
    bad = tmp_path / "bad.pb"
    bad.write_bytes(b"\xff\xff\xff")
    with pytest.raises(artifacts.ArtifactFormatError, match="bad.pb: not a binary DatasetFeatureStatisticsList"):
        artifacts.read_statistics(bad)
    empty = tmp_path / "empty.pb"
    empty.write_bytes(b"")
    with pytest.raises(artifacts.ArtifactFormatError, match="empty.pb: holds no dataset statistics"):
        artifacts.read_statistics(empty)


def test_a_failed_statistics_write_leaves_nothing(tmp_path):
    with pytest.raises(AttributeError):
        artifacts.write_statistics({"train": object()}, tmp_path / "stats")
    assert not (tmp_path / "stats").exists() and list(tmp_path.iterdir()) == []


def test_schema_round_trip_and_errors(tmp_path):
    schema = schema_pb2.Schema()
    schema.feature.add(name="a", type=schema_pb2.BYTES)
    artifacts.write_schema(schema, tmp_path / "schema")
    assert artifacts.read_schema(tmp_path / "schema") == schema
    with pytest.raises(artifacts.ArtifactNotFoundError, match="no Schema file"):
        artifacts.read_schema(tmp_path / "nowhere")
    bad = tmp_path / "bad.pbtxt"
    bad.write_text("feature { name: ")
    with pytest.raises(artifacts.ArtifactFormatError, match="bad.pbtxt: not a tensorflow_metadata Schema"):
        artifacts.read_schema(bad)
    bad.write_bytes(b"\xff\xfe")
    with pytest.raises(artifacts.ArtifactFormatError, match="bad.pbtxt: not UTF-8"):
        artifacts.read_schema(bad)
    twice = tmp_path / "twice.pbtxt"
    twice.write_text('feature { name: "a" type: INT } feature { name: "a" type: INT }')
    with pytest.raises(artifacts.ArtifactFormatError, match="twice.pbtxt: feature 'a' is declared twice"):
        artifacts.read_schema(twice)
    untyped = tmp_path / "untyped.pbtxt"
    untyped.write_text('feature { name: "b" }')
    with pytest.raises(artifacts.ArtifactFormatError, match="feature 'b' has no type"):
        artifacts.read_schema(untyped)


def test_anomalies_round_trip_and_errors(tmp_path):
    anomalies = anomalies_pb2.Anomalies()
    anomalies.anomaly_info["a"].description = "new column"
    artifacts.write_anomalies(anomalies, tmp_path / "anomalies")
    assert artifacts.read_anomalies(tmp_path / "anomalies") == anomalies
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "anomalies.pbtxt").write_text("anomaly_info {")
    with pytest.raises(artifacts.ArtifactFormatError, match="bad/anomalies.pbtxt: not a tensorflow_metadata Anomalies"):
        artifacts.read_anomalies(tmp_path / "bad")


CARD = {"label": "y", "task": "binary", "classes": ["no", "yes"],
        "features": [{"name": "x", "dtype": "float64", "kind": "numeric"}]}


def test_model_card_round_trip_and_field_errors(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    artifacts.write_card(CARD, model)
    assert artifacts.read_card(model) == CARD
    assert artifacts.version_dir(model) == model / "1"
    with pytest.raises(artifacts.ArtifactNotFoundError, match=r"nowhere/model_card.json: no model card"):
        artifacts.read_card(tmp_path / "nowhere")
    for card, message in (
        ({**CARD, "task": "ranking"}, r"field 'task' is 'ranking'"),
        ({**CARD, "features": ["x"]}, r"field 'features' must be a list of objects with a 'name', got \['x'\]"),
        ([CARD], "expected a JSON object, got list"),
    ):
        (model / "model_card.json").write_text(json.dumps(card))
        with pytest.raises(artifacts.ArtifactFormatError, match=message):
            artifacts.read_card(model)
    (model / "model_card.json").write_text("{")
    with pytest.raises(artifacts.ArtifactFormatError, match="model_card.json: not valid JSON"):
        artifacts.read_card(model)


def test_blessing_round_trip_verdict_and_errors(tmp_path):
    artifacts.write_blessing(tmp_path / "b", {"blessed": False}, {"metrics": {}}, extra_files={"report.html": "<p>"})
    assert {p.name for p in (tmp_path / "b").iterdir()} == {"blessing.json", "evaluation.json", "NOT_BLESSED",
                                                          "report.html"}
    assert artifacts.read_blessing(tmp_path / "b") == {"blessing": {"blessed": False}, "evaluation": {"metrics": {}}}
    assert artifacts.blessing_verdict({"blessed": "true"}) is True
    assert artifacts.blessing_verdict(None, fallback=False) is False
    with pytest.raises(artifacts.ArtifactFormatError, match=r"gs://b/x: .* no 'blessed' key \(keys: \['other'\]\)"):
        artifacts.blessing_verdict({"other": 1}, source="gs://b/x")
    with pytest.raises(artifacts.ArtifactFormatError, match="expected a boolean blessing, got 'maybe'"):
        artifacts.blessing_verdict({"blessed": "maybe"})
    with pytest.raises(artifacts.ArtifactNotFoundError, match="no blessing.json"):
        artifacts.read_blessing(tmp_path / "nowhere")
