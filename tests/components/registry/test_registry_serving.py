"""Decisions traceable: the model server reports the registered name and version in every response header,
the v2 response's ``model_version`` and every payload-log record."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

import pytest

from kfpc.components.registry import core

SERVING_TESTS = Path(__file__).parents[2] / "serving"


def post(url: str, body: dict) -> tuple[dict, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(response.headers), json.loads(response.read())


@pytest.mark.slow
def test_registered_version_in_headers_v2_model_version_and_payload_log(tmp_path):
    sys.path.insert(0, str(SERVING_TESTS))
    import toy_model  # (imports TensorFlow)

    from kfpc.serving.local import LocalServer

    model_dir = toy_model.build(tmp_path / "model")
    card_path = model_dir / "model_card.json"
    card = core.card_with_registry(json.loads(card_path.read_text()),
                                   {"model_name": "churn", "version": "v1", "uri": str(model_dir)})
    card_path.write_text(json.dumps(card))
    log = tmp_path / "payload.jsonl"
    env = {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    # the option wins over the card (a promotion sets it in the InferenceService's args)
    with LocalServer(model_dir, model_name="churn", env=env, payload_log=str(log),
                     registered_version="v7", registered_model_name="churn") as server:
        headers, _ = post(f"{server.url}/v1/models/churn:predict", {"instances": [toy_model.ROW]})
        assert headers["kfpc-registered-model"] == "churn" and headers["kfpc-model-version"] == "v7"
        inputs = [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64", "data": [v]}
                  for k, v in toy_model.ROW.items()]
        headers, answer = post(f"{server.url}/v2/models/churn/infer", {"inputs": inputs})
        assert answer["model_version"] == "v7" and headers["kfpc-model-version"] == "v7"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == 2
    assert {(r["registered_model"], r["model_version"]) for r in records} == {("churn", "v7")}


def test_card_registry_section_is_the_default_and_options_win():
    from kfpc.serving.model import ModelOptions, registered_identity

    card = core.card_with_registry({"task": "binary"}, {"model_name": "churn", "version": "v3"})
    assert registered_identity(card, ModelOptions()) == ("churn", "v3")
    assert registered_identity(card, ModelOptions(registered_model_name="c", registered_version="v9")) == ("c", "v9")
    assert registered_identity({"task": "binary"}, ModelOptions()) == ("", "")
    assert core.registered_identity(card) == ("churn", "v3")
