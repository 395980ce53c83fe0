"""Proof of the whole loop through kfp.local: retraining_pipeline twice against a Kubeflow Model Registry (the
real client, the fake REST server), then ``kfpc registry rollback`` and ``kfpc serve`` of the champion.

Marked slow: two pipeline runs (each ingests two spans, trains a few epochs, evaluates, pushes with a local
smoke test and registers) take minutes on a shared two-core machine.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from kfpc.components.ingest.core import ingest
from kfpc.components.push import storage
from kfpc.components.registry import core
from kfpc.components.train.core import train
from kfpc.pipelines import cli, local_run
from kfpc.serving.local import free_port

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

PENGUINS = Path(__file__).resolve().parents[3] / "pipelines" / "data" / "penguins.csv"


def serve_and_ask(registry_uri: str, payload_log: Path) -> tuple[dict, dict, list[dict]]:
    """``kfpc serve --model-dir model-registry://penguins/champion``: one v1 and one v2 request."""
    port = free_port()
    command = [sys.executable, "-m", "kfpc.pipelines.cli", "serve", "--model-dir", "model-registry://penguins/champion",
               "--registry-uri", registry_uri, "--port", str(port), "--grpc-port", "0", "--model-name", "penguins",
               "--payload-log", str(payload_log)]
    env = dict(os.environ, TF_NUM_INTEROP_THREADS="1", TF_NUM_INTRAOP_THREADS="1")
    process = subprocess.Popen(command, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert process.poll() is None, "kfpc serve exited"
            try:
                with urllib.request.urlopen(f"{url}/v2/models/penguins/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "kfpc serve did not get ready"
            time.sleep(0.5)
        row = {"island": "Biscoe", "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
               "body_mass_g": 3750.0, "sex": "male", "year": 2007}
        answers = []
        inputs = [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64", "data": [v]}
                  for k, v in row.items()]
        for path, body in (("/v1/models/penguins:predict", {"instances": [row]}),
                           ("/v2/models/penguins/infer", {"inputs": inputs})):
            request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                             headers={"Content-Type": "application/json"}, method="POST")
            with urllib.request.urlopen(request, timeout=60) as response:
                answers.append((dict(response.headers), json.loads(response.read())))
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    records = [json.loads(line) for line in payload_log.read_text().splitlines()]
    return answers[0], answers[1], records


def test_retraining_twice_registers_lineage_and_rollback_serves_v1(tmp_path, mr):
    # two spans of data and a first served model (trained outside the registry: the very first baseline)
    # (split as text: a pandas round trip would write the integer columns with missing values as floats)
    header, *rows = PENGUINS.read_text().splitlines()
    random.Random(0).shuffle(rows)
    for span, part in ((1, rows[: len(rows) // 2]), (2, rows[len(rows) // 2:])):
        (tmp_path / "data" / f"span-{span}").mkdir(parents=True)
        (tmp_path / "data" / f"span-{span}" / "data.csv").write_text("\n".join([header, *part]) + "\n")
    ingest(str(tmp_path / "data" / "span-1" / "data.csv"), tmp_path / "seed-data")
    train(tmp_path / "seed-data", tmp_path / "seed-model", label="species", epochs=1, seed=1, verbose=0)
    params = {
        "source_pattern": str(tmp_path / "data" / "span-{SPAN}" / "data.csv"),
        "schema_uri": "bundled:penguins_schema.pbtxt", "label": "species",
        "serving_root": str(tmp_path / "serving"), "model_name": "penguins", "push_mode": "local",
        "epochs": 3, "max_regression": 1.0, "registry_backend": "kubeflow", "registry_uri": mr.url,
        "run_url": "http://kfp.example/#/runs/details/{run_id}",
    }
    first = local_run.run("retraining_pipeline", dict(params, baseline_model_uri=str(tmp_path / "seed-model")),
                          tmp_path / "run1")
    assert first.status == "SUCCESS", first.error
    assert first.task("register-model").outputs["version"] == "v1"
    registry = core.open_registry("kubeflow", mr.url)
    assert registry.alias("penguins").version == "v1"

    second = local_run.run("retraining_pipeline", params, tmp_path / "run2")  # baseline: the champion
    assert second.status == "SUCCESS", second.error
    v1, v2 = registry.get("penguins", "v1"), registry.get("penguins", "v2")
    assert second.task("resolve-retraining-inputs").outputs["baseline_model_uri"] == v1.uri
    assert registry.alias("penguins").version == "v2"
    lineage = v2.lineage
    assert lineage["baseline"] == {"uri": v1.uri, "version": "v1", "beaten": True}
    run = lineage["pipeline_run"]
    assert run["id"] and run["url"] == f"http://kfp.example/#/runs/details/{run['id']}"
    assert run["id"] != v1.lineage["pipeline_run"]["id"]
    assert lineage["evaluation"]["blessed"] is True and lineage["evaluation"]["verdicts"]
    assert lineage["data"][0]["uri"] and lineage["statistics"][0]["uri"]
    assert lineage["schema"]["hash"].startswith("sha256:") and lineage["schema"]["uri"]
    assert lineage["code_version"]
    assert set(lineage["images"]) >= {"tf", "deploy", "serving"}
    # the same record in the KFP artifact metadata and in the registered model card
    artifact = second.task("register-model").artifacts["registered"]
    assert artifact["metadata"]["lineage"] == lineage and artifact["metadata"]["version"] == "v2"
    card = json.loads((Path(artifact["path"]) / "model_card.json").read_text())
    assert card["registry"]["lineage"] == lineage and card["registry"]["version"] == "v2"
    # the training hyperparameters of the family train kept (model_family auto: the network's epochs=3, or
    # the trees' own), as the model card records them
    assert lineage["hyperparameters"] == card["hyperparameters"] and card["model_family"] in ("dnn", "gbdt")
    if card["model_family"] == "dnn":
        assert lineage["hyperparameters"]["epochs"] == 3
    assert storage.latest_version(str(tmp_path / "serving"), "penguins").endswith("v2")

    assert cli.main(["registry", "--registry-uri", mr.url, "rollback", "penguins"]) == 0
    assert registry.alias("penguins").version == "v1"

    (v1_headers, _), (v2_headers, v2_answer), records = serve_and_ask(mr.url, tmp_path / "payload.jsonl")
    assert v1_headers["kfpc-registered-model"] == "penguins" and v1_headers["kfpc-model-version"] == "v1"
    assert v2_headers["kfpc-model-version"] == "v1" and v2_answer["model_version"] == "v1"
    assert [(r["registered_model"], r["model_version"]) for r in records] == [("penguins", "v1")] * 2
