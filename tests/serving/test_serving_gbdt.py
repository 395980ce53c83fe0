"""The serving suites against a GBDT export: the v1, v2, gRPC and bad-request tests of test_serving_http.py and
the in-process model tests of test_serving_model.py, run unchanged on a model that train's ``gbdt`` family wrote.

The tests are imported, so pytest collects them here, where ``model_dir``, ``payload_log`` and ``server``
resolve to the fixtures below: the same penguins table and label as conftest.py's model, trees instead of
the network.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_serving_http import (  # noqa: F401  (collected here, against the GBDT server)
    test_bad_binary_v2_request_is_400,
    test_bad_v1_requests_are_400_naming_the_problem,
    test_bad_v2_requests_are_400_naming_the_problem,
    test_health_and_metadata,
    test_nan_literal_is_a_missing_value_in_v1_and_v2,
    test_no_5xx_after_all_bad_requests_and_metrics,
    test_nulls_after_the_first_row_are_missing_values,
    test_oversized_body_is_400_before_parsing,
    test_tritonclient_grpc,
    test_tritonclient_http,
    test_v1_instances_and_columnar_inputs_agree,
    test_v2_json_matches_v1,
)
from test_serving_model import (  # noqa: F401
    test_batched_and_unbatched_models_give_the_same_answers,
    test_card_that_does_not_match_the_signature_never_becomes_ready,
    test_ready_only_after_warm_up,
    test_v2_request_in_process,
)

from tests.serving.conftest import PENGUINS_CSV


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """The GBDT family on the penguins table (species): ``1/`` + ``model_card.json``, small and fast."""
    from kfpc.components.ingest.core import ingest
    from kfpc.components.train.core import train

    root = tmp_path_factory.mktemp("penguins-gbdt")
    ingest(str(PENGUINS_CSV), root / "data")
    train(root / "data", root / "model", label="species", seed=1, verbose=0, model_family="gbdt",
          gbdt_hyperparameters={"num_trees": 40})
    card = json.loads((root / "model" / "model_card.json").read_text())
    assert card["model_family"] == "gbdt"
    return root / "model"


@pytest.fixture(scope="module")
def payload_log(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("payload-gbdt") / "payload.jsonl"


@pytest.fixture(scope="module")
def server(model_dir, payload_log):
    from kfpc.serving.local import LocalServer

    env = {"TF_NUM_INTEROP_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1"}
    with LocalServer(model_dir, model_name="penguins", grpc_port=0, env=env, payload_log=str(payload_log),
                     max_request_bytes=200_000, max_rows=1000) as live:
        yield live
