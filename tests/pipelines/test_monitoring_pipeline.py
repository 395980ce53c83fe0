"""monitoring_pipeline under kfp.local, over payload logs a running kfpc model server wrote: the drifted
feature is found, and with the trigger on the retraining submission (dry run) is written with its reason."""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import sys
import time
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "serving"))


def _rows(path: Path, names: list[str]) -> list[dict]:
    rows = pq.read_table(path, columns=names).to_pylist()
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()} for row in rows]


def _send(url: str, rows: list[dict], requests: int, change=None) -> None:
    rng = random.Random(3)
    for _ in range(requests):
        batch = [dict(rng.choice(rows)) for _ in range(10)]
        for row in batch:
            if change:
                change(row)
        body = json.dumps({"instances": batch}).encode()
        request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200


@pytest.fixture(scope="module")
def served_traffic(tmp_path_factory):
    """Payload logs of a clean window then a window where every penguin comes from Torgersen."""
    import toy_model

    from kfpc.components.ingest.core import ingest
    from kfpc.components.statistics.core import write_statistics
    from kfpc.serving.local import LocalServer

    root = tmp_path_factory.mktemp("monitoring-run")
    ingest(str(ROOT / "pipelines" / "data" / "penguins.csv"), root / "data")
    write_statistics(root / "data", root / "stats")
    model = toy_model.build(root / "model")
    names = [f["name"] for f in toy_model.PENGUIN_FEATURES]
    rows = _rows(root / "data" / "Split-eval" / "data.parquet", names)
    payload = root / "logs" / "payload.jsonl"
    env = {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    with LocalServer(model, model_name="penguins", env=env, payload_log=str(payload)) as server:
        url = f"{server.url}/v1/models/penguins:predict"
        _send(url, rows, 20)  # half the requests of the next window: it fits in the previous window
        time.sleep(0.2)
        middle = dt.datetime.now(dt.UTC)
        _send(url, rows, 40, change=lambda row: row.update(island="Torgersen"))
        time.sleep(0.2)
        end = dt.datetime.now(dt.UTC)
    return {"root": root, "model": model, "payload": payload, "end": end, "middle": middle}


def _run(tmp_path, traffic, **params) -> dict:
    import kfp.local

    from kfpc.pipelines.registry import build

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    pipeline = build("monitoring_pipeline")
    window_seconds = (traffic["end"] - traffic["middle"]).total_seconds()
    pipeline(payload_uri=str(traffic["payload"].parent), model_uri=str(traffic["model"]),
             training_statistics_uri=str(traffic["root"] / "stats"), window_end=traffic["end"].isoformat(),
             window_seconds=window_seconds, min_rows=100, **params)
    (decision,) = (tmp_path / "root").rglob("decision.json")
    (verdict,) = (tmp_path / "root").rglob("verdict.json")
    (report,) = [p for p in (tmp_path / "root").rglob("report") if p.is_file()]
    return {"decision": json.loads(decision.read_text()), "verdict": json.loads(verdict.read_text()),
            "report": report.read_text(), "submission": decision.parent}


def test_the_drifted_feature_is_found_and_retraining_is_submitted_with_its_reason(tmp_path, served_traffic):
    retraining = {"source_pattern": "gs://bucket/penguins/span-{SPAN}/data.csv",
                  "schema_uri": "gs://bucket/penguins/schema.pbtxt", "label": "species",
                  "serving_root": "gs://bucket/serving", "model_name": "penguins"}
    run = _run(tmp_path, served_traffic, trigger=True, trigger_mode="dry_run", retraining_parameters=retraining,
               kfp_host="https://kfp.example.com")
    verdict, decision = run["verdict"], run["decision"]
    assert verdict["rows"] == 400 and 0 < verdict["previous_rows"] <= 200
    assert verdict["drift_confirmed"] is True
    assert set(verdict["skew_features"]) == {"island"}, verdict["skew_features"]
    assert set(verdict["drift_features"]) == {"island"}, "the clean window before it differs too"
    assert "island" in verdict["reason"] and "COMPARATOR_L_INFTY_HIGH" in verdict["reason"]
    assert "**Verdict:** drift confirmed" in run["report"] and "island" in run["report"]
    assert decision["submitted"] is True and decision["reason"] == verdict["reason"]
    request = json.loads((run["submission"] / "request.json").read_text())["requests"][0]
    assert request["method"] == "POST" and request["url"] == "https://kfp.example.com/apis/v2beta1/runs"
    body = request["body"]
    assert body["runtime_config"]["parameters"] == retraining
    # retraining places training on a GPU node: the spec goes with its kfp-kubernetes platform document
    assert body["pipeline_spec"]["pipeline_spec"]["pipelineInfo"]["name"] == "retraining-pipeline"
    assert body["description"].startswith("Submitted by monitoring_pipeline: 1 feature(s) shifted")


def test_without_the_trigger_nothing_is_submitted_but_the_decision_is_recorded(tmp_path, served_traffic):
    run = _run(tmp_path, served_traffic, trigger=False)
    assert run["decision"]["drift_confirmed"] is True and run["decision"]["submitted"] is False
    assert not (run["submission"] / "request.json").exists()
