"""Rollouts through the real kubernetes client against a fake API server on 127.0.0.1."""

from __future__ import annotations

import pytest
from prometheus_exposition import exposition

from kfpc.components.push import canary as c
from kfpc.components.push import kube
from kfpc.components.push import manifest as m
from kfpc.components.push import rollout as r

V1, V2, V3 = "gs://models/penguins/v1", "gs://models/penguins/v2", "gs://models/penguins/v3"
FAST = {"timeout_s": 1.0, "poll_s": 0.02}
#: a short bake for tests: 0.1 s, at least 10 requests
BAKE = c.Thresholds(bake_s=0.1, max_error_rate=0.05, max_p99_latency_ms=200, min_requests=10)


def healthy_canary(metrics_server):
    """A canary_source reading a real /metrics page of a healthy canary (100 OK answers at 10 ms)."""
    server = metrics_server([exposition("penguins", ok=100, latency_s=0.01)])
    return {"canary_source": lambda _ready: c.MetricsEndpointSource(server.url, "penguins"), "thresholds": BAKE}


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


def test_knative_canary_then_promote(fake_kube, client, assert_valid_isvc, metrics_server):
    deployed(fake_kube, "Knative")
    o = opts("Knative")
    result = r.rollout(client, m.render(o, V2), o, canary_traffic_percent=20, **FAST)
    assert (result.action, result.traffic_percent, result.previous_model_uri) == ("canary", 20, V1)
    now = fake_kube.get("ml", "penguins")
    assert now["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert m.storage_uri_of(now["spec"]["predictor"]) == V2
    assert m.served_model_uri(now) == V1  # Knative still routes 80% to the previous revision
    assert_valid_isvc({k: v for k, v in now.items() if k != "status"})

    promoted = r.rollout(client, m.render(o, V2), o, canary_traffic_percent=20, promote=True, **FAST,
                         **healthy_canary(metrics_server))
    assert promoted.action == "promoted" and promoted.canary_sample.requests == 100
    now = fake_kube.get("ml", "penguins")
    assert "canaryTrafficPercent" not in now["spec"]["predictor"]
    assert m.PREVIOUS_URI_ANNOTATION not in now["metadata"]["annotations"]
    assert m.served_model_uri(now) == V2
    # the last two writes: the canary patch (20%) then the promotion (canaryTrafficPercent removed)
    canary_patch, promote_patch = fake_kube.writes()[-2:]
    assert canary_patch["body"]["spec"]["predictor"]["canaryTrafficPercent"] == 20
    assert promote_patch["body"]["spec"]["predictor"]["canaryTrafficPercent"] is None


def test_standard_canary_uses_spec_canary_then_promotes(fake_kube, client, assert_valid_isvc, metrics_server):
    deployed(fake_kube, "Standard")
    o = opts("Standard")
    result = r.rollout(client, m.render(o, V2), o, canary_traffic_percent=10, **FAST)
    assert result.action == "canary"
    now = fake_kube.get("ml", "penguins")
    assert m.storage_uri_of(now["spec"]["predictor"]) == V1
    assert now["spec"]["canary"][0]["trafficPercent"] == 10
    assert m.storage_uri_of(now["spec"]["canary"][0]["predictor"]) == V2
    assert_valid_isvc({k: v for k, v in now.items() if k != "status"})

    r.rollout(client, m.render(o, V2), o, canary_traffic_percent=10, promote=True, **FAST,
              **healthy_canary(metrics_server))
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
    with pytest.raises(r.RolloutError, match=r"not Ready after 0.3 s.*previous spec restored and verified live "
                                             r"\(generation 3, gs://models/penguins/v1\)"):
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


def test_failed_promotion_restores_the_spec_from_before_the_canary(fake_kube, client, metrics_server):
    before = deployed(fake_kube, "Knative")
    fake_kube.readiness = lambda obj: "pending" if (
        m.storage_uri_of(obj["spec"]["predictor"]) == V2 and "canaryTrafficPercent" not in obj["spec"]["predictor"]
    ) else "ready"
    o = opts("Knative")
    with pytest.raises(r.RolloutError, match="not Ready"):
        r.rollout(client, m.render(o, V2), o, canary_traffic_percent=30, promote=True, timeout_s=0.3, poll_s=0.02,
                  **healthy_canary(metrics_server))
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
    with pytest.raises(r.RolloutConflict, match="5 conditional patches refused"):
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


# ---------------------------------------------------------------- concurrency: two pushes, one InferenceService


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_a_push_that_read_before_another_wrote_gets_a_conflict_naming_both_versions(fake_kube, client, mode):
    deployed(fake_kube, mode)
    o = opts(mode)
    outcome = {}

    def hook(method, path, body):
        # push B is about to write V3 from its stale read: push A completes first (reads, writes V2, Ready)
        if method == "PATCH" and "A" not in outcome and V3 in str(body):
            outcome["A"] = r.rollout(client, m.render(o, V2), o, **FAST)

    fake_kube.before_request = hook
    with pytest.raises(r.RolloutConflict) as err:
        r.rollout(client, m.render(o, V3), o, **FAST)
    message = str(err.value)
    assert "inferenceservice ml/penguins was changed by another writer" in message
    first_rv = fake_kube.requests[0]["response"]["metadata"]["resourceVersion"]  # what B read
    live = fake_kube.get("ml", "penguins")
    assert f"resourceVersion {first_rv} (generation 1, {V1})" in message
    assert f"resourceVersion {live['metadata']['resourceVersion']} (generation 2, {V2})" in message
    assert outcome["A"].action == "updated"
    assert m.served_model_uri(live) == V2 and live["metadata"]["generation"] == 2  # A's model stays live


def test_a_push_superseded_while_waiting_reports_a_conflict_and_restores_nothing(fake_kube, client):
    deployed(fake_kube)
    fake_kube.readiness = lambda obj: "pending" if m.served_model_uri(obj) == V2 else "ready"
    outcome = {}

    def hook(method, path, body):
        # push A wrote V2 and waits (V2 not Ready yet); push B reads A's object and rolls out V3
        if method == "GET" and "B" not in outcome and m.served_model_uri(fake_kube.get("ml", "penguins")) == V2:
            outcome["B"] = "running"
            outcome["B"] = r.rollout(client, m.render(opts(), V3), opts(), **FAST)

    fake_kube.before_request = hook
    with pytest.raises(r.RolloutConflict, match=r"changed by another writer while this push waited for Ready: this "
                                                r"push's version is resourceVersion \d+ \(generation 2, "
                                                r"gs://models/penguins/v2\), the live one is resourceVersion \d+ "
                                                r"\(generation 3, gs://models/penguins/v3\)"):
        r.rollout(client, m.render(opts(), V2), opts(), **FAST)
    assert outcome["B"].action == "updated" and outcome["B"].previous_model_uri == V2
    live = fake_kube.get("ml", "penguins")
    assert m.served_model_uri(live) == V3  # B's model is live; A rolled nothing back over it
    assert [q["method"] for q in fake_kube.writes()] == ["PATCH", "PATCH"]


def test_two_pushes_creating_one_service_the_second_gets_a_conflict(fake_kube, client):
    outcome = {}

    def hook(method, path, body):
        if method == "POST" and "A" not in outcome and V3 in str(body):
            outcome["A"] = r.rollout(client, m.render(opts(), V2), opts(), **FAST)

    fake_kube.before_request = hook
    with pytest.raises(r.RolloutConflict, match="created by another writer.*409.*already exists"):
        r.rollout(client, m.render(opts(), V3), opts(), **FAST)
    assert outcome["A"].action == "created"
    assert m.served_model_uri(fake_kube.get("ml", "penguins")) == V2


def test_a_ready_status_for_another_spec_does_not_count(fake_kube, client):
    """The controller says Ready for the current generation, but the spec is not the one this push wrote."""
    before = deployed(fake_kube)
    written = r.Written(before["metadata"]["uid"], 1, before["metadata"]["resourceVersion"],
                        r.live_signature(m.render(opts(), V2)))
    with pytest.raises(r.RolloutError, match="not Ready after 0.1 s"):
        r.wait_live(client, "ml", "penguins", written, timeout_s=0.1, poll_s=0.02)


def test_a_spec_change_between_read_and_write_is_a_conflict_not_an_overwrite(fake_kube, client):
    deployed(fake_kube)

    def hook(method, path, body):
        if method == "PATCH" and fake_kube.get("ml", "penguins")["metadata"]["generation"] == 1:
            with fake_kube._lock:  # another tool scales the service: a spec change (generation 2)
                obj = fake_kube.objects[("ml", "penguins")]
                obj["spec"]["predictor"]["maxReplicas"] = 7
                obj["metadata"].update(generation=2, resourceVersion=str(next(fake_kube._rv)))

    fake_kube.before_request = hook
    with pytest.raises(r.RolloutConflict, match=r"generation 1, gs://models/penguins/v1\); it is now at "
                                                r"resourceVersion \d+ \(generation 2"):
        r.rollout(client, m.render(opts(), V2), opts(), **FAST)
    live = fake_kube.get("ml", "penguins")
    assert live["spec"]["predictor"]["maxReplicas"] == 7 and m.served_model_uri(live) == V1


# ---------------------------------------------------------------- canary bake, promotion and verified rollback


@pytest.mark.parametrize("mode", ["Standard", "Knative"])
def test_a_canary_over_the_error_threshold_is_rolled_back_and_the_previous_spec_verified_live(
        fake_kube, client, metrics_server, mode):
    before = deployed(fake_kube, mode)
    o = opts(mode)
    # the canary's own /metrics over real HTTP: 80 OK, 50 client errors (not the model's fault), 20 server
    # errors: error rate 20/150 > 0.05
    server = metrics_server([exposition("penguins", ok=80, errors=20, client_errors=50)])
    with pytest.raises(r.RolloutError) as err:
        r.rollout(client, m.render(o, V2), o, canary_traffic_percent=10, promote=True, **FAST, thresholds=BAKE,
                  canary_source=lambda ready: c.MetricsEndpointSource(server.url, "penguins"))
    message = str(err.value)
    assert "canary rolled back: canary error rate 0.1333 > max_error_rate 0.05" in message
    assert f"previous spec restored and verified live (generation 3, {V1})" in message
    live = fake_kube.get("ml", "penguins")
    assert live["spec"] == before["spec"] and live["metadata"]["generation"] == 3
    # the verification read: Ready, observed at the restore's generation, V1 in the spec
    last_get = [q for q in fake_kube.requests if q["method"] == "GET"][-1]["response"]
    assert last_get["status"]["observedGeneration"] >= 3 and m.served_model_uri(last_get) == V1
    assert server.reads >= 1
    assert not [q for q in fake_kube.writes() if V2 in str(q["body"]) and "canary" not in str(q["body"])
                and "canaryTrafficPercent" not in str(q["body"])]  # never promoted


def test_a_slow_canary_is_rolled_back(fake_kube, client, metrics_server):
    before = deployed(fake_kube, "Knative")
    # 0.4 s lies in the (0.25, 0.5] bucket: p99 interpolated as histogram_quantile does = 497.5 ms
    server = metrics_server([exposition("penguins", ok=100, latency_s=0.4)])
    with pytest.raises(r.RolloutError, match=r"canary p99 latency 497.5 ms > max_p99_latency_ms 200.*"
                                             r"restored and verified live"):
        r.rollout(client, m.render(opts("Knative"), V2), opts("Knative"), canary_traffic_percent=10, promote=True,
                  **FAST, thresholds=BAKE, canary_source=lambda _r: c.MetricsEndpointSource(server.url, "penguins"))
    assert fake_kube.get("ml", "penguins")["spec"] == before["spec"]


def test_a_canary_without_enough_traffic_is_not_promoted(fake_kube, client, metrics_server):
    before = deployed(fake_kube)
    server = metrics_server([exposition("penguins", ok=3)])
    with pytest.raises(r.RolloutError, match=r"canary answered only 3 requests .*min_requests 10.*verified live"):
        r.rollout(client, m.render(opts(), V2), opts(), canary_traffic_percent=10, promote=True,
                  timeout_s=0.2, poll_s=0.02, thresholds=BAKE,
                  canary_source=lambda _r: c.MetricsEndpointSource(server.url, "penguins"))
    assert fake_kube.get("ml", "penguins")["spec"] == before["spec"]


def test_a_canary_that_restarts_during_the_bake_is_rolled_back(fake_kube, client, metrics_server):
    deployed(fake_kube)
    server = metrics_server([exposition("penguins", ok=5), exposition("penguins", ok=1)])
    with pytest.raises(r.RolloutError, match=r"went down \(5 -> 1\): the canary process restarted"):
        r.rollout(client, m.render(opts(), V2), opts(), canary_traffic_percent=10, promote=True, **FAST,
                  thresholds=BAKE, canary_source=lambda _r: c.MetricsEndpointSource(server.url, "penguins"))


def test_promotion_waits_for_the_bake_period(fake_kube, client, metrics_server):
    import time

    deployed(fake_kube)
    server = metrics_server([exposition("penguins", ok=100)])
    thresholds = c.Thresholds(bake_s=0.5, max_error_rate=0.05, max_p99_latency_ms=200, min_requests=10)
    times = {}

    def hook(method, path, body):
        if method == "PATCH":
            times.setdefault("canary" if body["spec"].get("canary") else "promote", time.monotonic())

    fake_kube.before_request = hook
    result = r.rollout(client, m.render(opts(), V2), opts(), canary_traffic_percent=10, promote=True, **FAST,
                       thresholds=thresholds, canary_source=lambda _r: c.MetricsEndpointSource(server.url, "penguins"))
    assert result.action == "promoted" and result.canary_sample.error_rate == 0
    assert times["promote"] - times["canary"] >= 0.5
    assert server.reads >= 5  # read every poll during the bake


def test_a_rollback_that_does_not_get_ready_says_it_is_not_verified(fake_kube, client, metrics_server):
    deployed(fake_kube)
    # the original spec is Ready at generation 1; once it is written back (generation 3) it never gets Ready
    fake_kube.readiness = lambda obj: "pending" if obj["metadata"]["generation"] >= 3 else "ready"
    server = metrics_server([exposition("penguins", ok=10, errors=10)])
    with pytest.raises(r.RolloutError, match=r"canary rolled back.*previous spec restored but NOT verified live "
                                             r"\(gs://models/penguins/v1\): .*not Ready after"):
        r.rollout(client, m.render(opts(), V2), opts(), canary_traffic_percent=10, promote=True,
                  timeout_s=0.3, poll_s=0.02, thresholds=BAKE,
                  canary_source=lambda _r: c.MetricsEndpointSource(server.url, "penguins"))


def test_promote_without_a_metrics_source_is_refused_before_any_write(fake_kube, client):
    deployed(fake_kube)
    with pytest.raises(ValueError, match="needs a metrics source"):
        r.rollout(client, m.render(opts(), V2), opts(), canary_traffic_percent=10, promote=True, **FAST)
    assert fake_kube.writes() == []


# ---------------------------------------------------------------- the fake API server itself

RFC7386_APPENDIX_A = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("original,patch,result", RFC7386_APPENDIX_A)
def test_fake_kube_merge_patch_is_rfc7386(original, patch, result):
    from fake_kube import rfc7386_merge_patch

    assert rfc7386_merge_patch(original, patch) == result


def test_the_patches_we_build_reach_their_target_under_rfc7386():
    """``manifest.merge_patch`` (code under test) checked by the fake's RFC 7386 application."""
    import random

    from fake_kube import rfc7386_merge_patch

    rng = random.Random(7386)

    def doc(depth=0):
        if depth > 2 or rng.random() < 0.3:
            return rng.choice([1, "x", True, [1, {"k": "v"}], "y", 2.5])
        return {rng.choice("abcde"): doc(depth + 1) for _ in range(rng.randint(0, 4))}

    for _ in range(500):
        current, desired = doc(), doc()
        if isinstance(current, dict) and isinstance(desired, dict):
            assert rfc7386_merge_patch(current, m.merge_patch(current, desired)) == desired
    rendered = [m.render(opts(), V1), m.render(opts(predictor="tensorflow", protocol="v1"), V2),
                m.standard_canary(m.render(opts(), V2), m.render(opts(), V1), 10)]
    for current in rendered:
        for desired in rendered:
            assert rfc7386_merge_patch(current, m.merge_patch(current, desired)) == desired


def test_delete_preconditions_are_honoured(fake_kube, client):
    obj = deployed(fake_kube)
    with pytest.raises(kube.Conflict, match="409.*Precondition failed: uid"):
        client.delete("ml", "penguins", uid="not-the-uid")
    client.delete("ml", "penguins", uid=obj["metadata"]["uid"])
    assert fake_kube.get("ml", "penguins") is None
