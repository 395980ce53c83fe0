"""Rollouts through the real kubernetes client against a fake API server on 127.0.0.1."""

from __future__ import annotations

import pytest

from kfpc.components.push import kube
from kfpc.components.push import manifest as m
from kfpc.components.push import rollout as r

V1, V2 = "gs://models/penguins/v1", "gs://models/penguins/v2"
FAST = {"timeout_s": 1.0, "poll_s": 0.02}


@pytest.fixture
def client(fake_kube):
    return kube.IsvcClient.for_host(fake_kube.url)


def opts(mode="Standard", **kw):
    return m.ServingOptions(name="penguins", namespace="ml", deployment_mode=mode, **kw)


def deployed(fake_kube, mode="Standard", uri=V1):
    """An InferenceService already serving ``uri`` (as a previous push left it)."""
    return fake_kube.put(m.render(opts(mode), uri))


def test_create_waits_for_ready_and_reports_the_endpoint(fake_kube, client, assert_valid_isvc):
    result = r.rollout(client, m.render(opts(), V2), opts(), **FAST)
    assert result.action == "created" and result.previous_model_uri == ""
    assert result.endpoint_url == "http://penguins.ml.example.com"
    (post,) = [q for q in fake_kube.writes() if q["method"] == "POST"]
    assert post["path"] == "/apis/serving.kserve.io/v1beta1/namespaces/ml/inferenceservices"
    assert post["query"] == {"fieldValidation": "Strict"}
    assert_valid_isvc(post["body"])
    assert m.served_model_uri(fake_kube.get("ml", "penguins")) == V2


def test_update_patches_conditionally_and_returns_the_previous_model(fake_kube, client):
    deployed(fake_kube)
    result = r.rollout(client, m.render(opts(), V2), opts(), **FAST)
    assert (result.action, result.previous_model_uri, result.traffic_percent) == ("updated", V1, 100)
    (patch,) = fake_kube.writes()
    assert patch["method"] == "PATCH" and patch["content_type"] == "application/merge-patch+json"
    read_before = fake_kube.requests[fake_kube.requests.index(patch) - 1]
    assert read_before["method"] == "GET"
    assert patch["body"]["metadata"]["resourceVersion"] == read_before["response"]["metadata"]["resourceVersion"]
    now = fake_kube.get("ml", "penguins")
    assert m.served_model_uri(now) == V2 and now["metadata"]["generation"] == 2


def test_other_tools_annotations_survive_an_update(fake_kube, client):
    obj = m.render(opts(), V1)
    obj["metadata"]["annotations"]["team.example.com/owner"] = "fraud"
    fake_kube.put(obj)
    r.rollout(client, m.render(opts(), V2), opts(), **FAST)
    assert fake_kube.get("ml", "penguins")["metadata"]["annotations"]["team.example.com/owner"] == "fraud"


def test_switching_predictor_kind_removes_the_old_fields(fake_kube, client, assert_valid_isvc):
    deployed(fake_kube)  # our container
    tf = opts(predictor="tensorflow", protocol="v1")
    r.rollout(client, m.render(tf, V2), tf, **FAST)
    spec = fake_kube.get("ml", "penguins")["spec"]["predictor"]
    assert "containers" not in spec and spec["model"]["storageUri"] == V2


def test_knative_canary_then_promote(fake_kube, client, assert_valid_isvc):
    deployed(fake_kube, "Knative")
    o = opts("Knative")
    result = r.rollout(client, m.render(o, V2), o, canary_traffic_percent=20, **FAST)
    assert (result.action, result.traffic_percent, result.previous_model_uri) == ("canary", 20, V1)
    now = fake_kube.get("ml", "penguins")
    assert now["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert m.storage_uri_of(now["spec"]["predictor"]) == V2
    assert m.served_model_uri(now) == V1  # Knative still routes 80% to the previous revision
    assert_valid_isvc({k: v for k, v in now.items() if k != "status"})

    promoted = r.rollout(client, m.render(o, V2), o, canary_traffic_percent=20, promote=True, **FAST)
    assert promoted.action == "promoted"
    now = fake_kube.get("ml", "penguins")
    assert "canaryTrafficPercent" not in now["spec"]["predictor"]
    assert m.PREVIOUS_URI_ANNOTATION not in now["metadata"]["annotations"]
    assert m.served_model_uri(now) == V2
    # the last two writes: the canary patch (20%) then the promotion (canaryTrafficPercent removed)
    canary_patch, promote_patch = fake_kube.writes()[-2:]
    assert canary_patch["body"]["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert promote_patch["body"]["spec"]["predictor"]["canaryTrafficPercent"] is None


def test_standard_canary_uses_spec_canary_then_promotes(fake_kube, client, assert_valid_isvc):
    deployed(fake_kube, "Standard")
    o = opts("Standard")
    result = r.rollout(client, m.render(o, V2), o, canary_traffic_percent=10, **FAST)
    assert result.action == "canary"
    now = fake_kube.get("ml", "penguins")
    assert m.storage_uri_of(now["spec"]["predictor"]) == V1
    assert now["spec"]["canary"][0]["trafficPercent"] == 10
    assert m.storage_uri_of(now["spec"]["canary"][0]["predictor"]) == V2
    assert_valid_isvc({k: v for k, v in now.items() if k != "status"})

    r.rollout(client, m.render(o, V2), o, canary_traffic_percent=10, promote=True, **FAST)
    now = fake_kube.get("ml", "penguins")
    assert "canary" not in now["spec"] and m.storage_uri_of(now["spec"]["predictor"]) == V2


def test_canary_on_a_new_service_creates_it_at_100_percent(fake_kube, client):
    o = opts("Knative")
    result = r.rollout(client, m.render(o, V2), o, canary_traffic_percent=10, **FAST)
    assert result.action == "created" and result.traffic_percent == 100


@pytest.mark.parametrize("state", ["pending", "stale"])
def test_timeout_restores_the_previous_spec_and_fails(fake_kube, client, state):
    before = deployed(fake_kube)
    fake_kube.readiness = lambda obj: "ready" if m.served_model_uri(obj) == V1 else state
    with pytest.raises(r.RolloutError, match=r"not Ready after 0.3 s.*previous spec restored \(model gs://models/penguins/v1\)"):
        r.rollout(client, m.render(opts(), V2), opts(), timeout_s=0.3, poll_s=0.02)
    now = fake_kube.get("ml", "penguins")
    assert now["spec"] == before["spec"]
    assert now["metadata"]["annotations"] == before["metadata"]["annotations"]
    assert now["metadata"]["labels"] == before["metadata"]["labels"]


def test_a_failed_load_fails_fast_and_rolls_back_a_canary(fake_kube, client):
    before = deployed(fake_kube, "Standard")
    fake_kube.readiness = lambda obj: "failed" if obj["spec"].get("canary") else "ready"
    o = opts("Standard")
    with pytest.raises(r.RolloutError, match="failed to load the model.*previous spec restored"):
        r.rollout(client, m.render(o, V2), o, canary_traffic_percent=10, timeout_s=30, poll_s=0.02)
    assert fake_kube.get("ml", "penguins")["spec"] == before["spec"]


def test_failed_promotion_restores_the_spec_from_before_the_canary(fake_kube, client):
    before = deployed(fake_kube, "Knative")
    fake_kube.readiness = lambda obj: "pending" if (
        m.storage_uri_of(obj["spec"]["predictor"]) == V2 and "canaryTrafficPercent" not in obj["spec"]["predictor"]
    ) else "ready"
    o = opts("Knative")
    with pytest.raises(r.RolloutError, match="not Ready"):
        r.rollout(client, m.render(o, V2), o, canary_traffic_percent=30, promote=True, timeout_s=0.3, poll_s=0.02)
    assert fake_kube.get("ml", "penguins")["spec"] == before["spec"]


def test_a_new_service_that_never_gets_ready_is_deleted(fake_kube, client):
    fake_kube.readiness = lambda obj: "pending"
    with pytest.raises(r.RolloutError, match="deleted again"):
        r.rollout(client, m.render(opts(), V2), opts(), timeout_s=0.2, poll_s=0.02)
    assert fake_kube.get("ml", "penguins") is None
    assert [q["method"] for q in fake_kube.writes()] == ["POST", "DELETE"]


def test_a_concurrent_change_causes_409_then_a_fresh_read_and_retry(fake_kube, client):
    deployed(fake_kube)
    fake_kube.concurrent_writes_before_patch = 1
    result = r.rollout(client, m.render(opts(), V2), opts(), **FAST)
    assert result.action == "updated"
    patches = [q for q in fake_kube.writes() if q["method"] == "PATCH"]
    assert len(patches) == 2  # the first was refused with 409
    now = fake_kube.get("ml", "penguins")
    assert now["metadata"]["annotations"]["someone-else/touched"] == "yes"  # their change is kept
    assert m.served_model_uri(now) == V2


def test_persistent_conflicts_fail_without_changing_anything(fake_kube, client):
    before = deployed(fake_kube)
    fake_kube.concurrent_writes_before_patch = 10
    with pytest.raises(kube.Conflict, match="409.*has been modified"):
        r.rollout(client, m.render(opts(), V2), opts(), **FAST)
    assert fake_kube.get("ml", "penguins")["spec"] == before["spec"]


def test_the_api_server_rejects_what_the_crd_rejects(fake_kube, client):
    body = m.render(opts(), V2)
    body["spec"]["predictor"]["minReplicas"] = "two"
    with pytest.raises(kube.KubeError, match="HTTP 422.*minReplicas"):
        client.create(body)
    body = m.render(opts(), V2)
    body["spec"]["predictor"]["gpuCount"] = 1
    with pytest.raises(kube.KubeError, match='HTTP 400.*unknown field "spec.predictor.gpuCount"'):
        client.create(body)
    client.create(m.render(opts(), V2))
    with pytest.raises(kube.Conflict, match="409.*already exists"):
        client.create(m.render(opts(), V2))
    assert client.get("ml", "absent") is None
    with pytest.raises(kube.KubeError, match="404"):
        client.patch("ml", "absent", {"spec": {}})


def test_changing_the_deployment_mode_of_a_live_service_is_refused(fake_kube, client):
    deployed(fake_kube, "Knative")
    with pytest.raises(m.ManifestError, match="deployment mode 'Knative'"):
        r.rollout(client, m.render(opts("Standard"), V2), opts("Standard"), **FAST)
    assert fake_kube.writes() == []


def test_dry_run_records_the_exact_requests_without_a_network(assert_valid_isvc):
    client, pool = kube.dry_run_client()
    result = r.rollout(client, m.render(opts(), V2), opts(), **FAST)
    assert result.endpoint_url == "http://penguins.ml.svc.cluster.local"
    methods = [q["method"] for q in pool.requests]
    assert methods == ["GET", "POST", "GET"]
    assert_valid_isvc(pool.requests[1]["body"])
    assert pool.requests[1]["query"] == {"fieldValidation": "Strict"}

    client, pool = kube.dry_run_client(existing={**m.render(opts(), V1), "metadata": {
        **m.render(opts(), V1)["metadata"], "resourceVersion": "7", "generation": 3}})
    r.rollout(client, m.render(opts(), V2), opts(), canary_traffic_percent=25, **FAST)
    patch = [q for q in pool.requests if q["method"] == "PATCH"][0]
    assert patch["content_type"] == "application/merge-patch+json"
    assert patch["body"]["metadata"]["resourceVersion"] == "7"
    assert patch["body"]["spec"]["canary"][0]["trafficPercent"] == 25
