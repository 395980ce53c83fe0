"""InferenceService manifests: every option combination validates against KServe's real CRD schema."""

from __future__ import annotations

import copy
import itertools

import pytest

from kfpc.components.push import manifest as m

URI = "gs://models/penguins/v7"

COMBINATIONS = list(
    itertools.product(
        ("kfpc", "tensorflow"),  # predictor
        ("Knative", "Standard", "Serverless", "RawDeployment"),  # deployment mode
        (0, 1, 2),  # gpu
        ("", "kfpc-runner"),  # service account
        (None, 10),  # canary percent
    )
)


@pytest.mark.parametrize("predictor,mode,gpu,service_account,canary", COMBINATIONS)
def test_every_combination_validates_against_the_crd(predictor, mode, gpu, service_account, canary, assert_valid_isvc):
    opts = m.ServingOptions(
        name="penguins", namespace="ml", predictor=predictor, protocol="v1" if predictor == "tensorflow" else "v2",
        deployment_mode=mode, gpu=gpu, service_account=service_account, min_replicas=0 if gpu == 2 else 1,
        max_replicas=4, node_selector={"cloud.google.com/gke-accelerator": "nvidia-tesla-t4"} if gpu else {},
        runtime_version="2.6.2-gpu" if gpu and predictor == "tensorflow" else "",
    )
    desired = m.render(opts, URI, model_version="v7")
    assert_valid_isvc(desired)
    predictor_spec = desired["spec"]["predictor"]
    assert m.storage_uri_of(predictor_spec) == URI
    assert desired["metadata"]["annotations"][m.DEPLOYMENT_MODE_ANNOTATION] == mode
    assert predictor_spec["minReplicas"] == opts.min_replicas and predictor_spec["maxReplicas"] == 4
    assert predictor_spec.get("serviceAccountName") == (service_account or None)
    resources = (predictor_spec.get("model") or predictor_spec["containers"][0])["resources"]
    assert resources["limits"].get("nvidia.com/gpu") == (str(gpu) if gpu else None)
    if predictor == "tensorflow":
        assert predictor_spec["model"]["modelFormat"] == {"name": "tensorflow", "version": "2"}
        assert predictor_spec["model"]["protocolVersion"] == "v1"
    else:
        container = predictor_spec["containers"][0]
        assert container["image"] == opts.image
        assert {"name": "STORAGE_URI", "value": URI} in container["env"]
    if canary:
        previous = m.render(opts, "gs://models/penguins/v6")
        if opts.mode == m.KNATIVE:
            body = m.knative_canary(desired, canary, "gs://models/penguins/v6")
            assert body["spec"]["predictor"]["canaryTrafficPercent"] == canary
        else:
            body = m.standard_canary(desired, previous, canary)
            assert body["spec"]["canary"][0]["trafficPercent"] == canary
            assert m.storage_uri_of(body["spec"]["canary"][0]["predictor"]) == URI
            assert m.storage_uri_of(body["spec"]["predictor"]) == "gs://models/penguins/v6"
        assert_valid_isvc(body)
        assert m.served_model_uri(body) == "gs://models/penguins/v6"


def test_the_crd_check_is_real(assert_valid_isvc):
    body = m.render(m.ServingOptions(name="penguins"), URI)
    body["spec"]["predictor"]["minReplicas"] = "one"
    with pytest.raises(AssertionError, match="not of type 'integer'"):
        assert_valid_isvc(body)
    body = m.render(m.ServingOptions(name="penguins"), URI)
    body["spec"]["predictor"]["replicas"] = 2
    with pytest.raises(AssertionError, match="predictor.replicas"):
        assert_valid_isvc(body)
    # spec.canary entries need a trafficPercent and a container name on the model (the CRD requires both)
    body = m.render(m.ServingOptions(name="penguins"), URI)
    body["spec"]["canary"] = [{"predictor": {"model": {"modelFormat": {"name": "tensorflow"}, "storageUri": URI}}}]
    with pytest.raises(AssertionError, match="'trafficPercent' is a required property"):
        assert_valid_isvc(body)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "Penguins"}, "DNS-1035"),
        ({"name": "9lives"}, "DNS-1035"),
        ({"name": "x" * 64}, "DNS-1035"),
        ({"namespace": "ML_team"}, "namespace"),
        ({"predictor": "sklearn"}, "predictor must be one of"),
        ({"predictor": "tensorflow", "protocol": "v2"}, "protocol v1 only"),
        ({"deployment_mode": "ModelMesh"}, "deployment_mode"),
        ({"cpu_limit": "two"}, "cpu_limit 'two'"),
        ({"memory_request": "4 GB"}, "memory_request"),
        ({"gpu": -1}, "gpu must be"),
        ({"min_replicas": 3, "max_replicas": 2}, "must not exceed"),
        ({"max_replicas": 0}, "max_replicas must be at least 1"),
        ({"service_account": "Runner SA"}, "service_account"),
    ],
)
def test_bad_options_are_refused_with_the_option_named(kwargs, match):
    with pytest.raises(m.ManifestError, match=match):
        m.ServingOptions(**{"name": "penguins", **kwargs})


@pytest.mark.parametrize("percent", [0, 100, 150, -5, True, 12.5])
def test_canary_percent_must_be_1_to_99(percent):
    desired = m.render(m.ServingOptions(name="penguins", deployment_mode="Knative"), URI)
    with pytest.raises(m.ManifestError, match="canary_traffic_percent"):
        m.knative_canary(desired, percent, "")


def test_legacy_mode_names_map_to_the_new_ones():
    assert m.canonical_mode("Serverless") == m.KNATIVE
    assert m.canonical_mode("RawDeployment") == m.STANDARD
    assert m.canonical_mode("standard") == m.STANDARD


def test_merge_patch_round_trips():
    current = {"a": 1, "b": {"c": 2, "d": [1, 2]}, "gone": {"x": 1}}
    desired = {"a": 1, "b": {"c": 3, "d": [1]}, "new": "y"}
    patch = m.merge_patch(current, desired)
    assert patch == {"b": {"c": 3, "d": [1]}, "new": "y", "gone": None}
    assert m.apply_merge_patch(current, patch) == desired
    # and under an implementation of RFC 7386 written apart from ours (the fake API server's)
    from fake_kube import rfc7386_merge_patch

    assert rfc7386_merge_patch(copy.deepcopy(current), patch) == desired
    assert m.merge_patch(desired, desired) == {}


def test_storage_uri_is_found_in_every_predictor_shape():
    assert m.storage_uri_of({"tensorflow": {"storageUri": "gs://a"}}) == "gs://a"
    assert m.storage_uri_of({"containers": [{"name": "c", "env": [{"name": "STORAGE_URI", "value": "s3://b"}]}]}) == "s3://b"
    assert m.storage_uri_of({}) == ""


@pytest.mark.parametrize("predictor", ["kfpc", "tensorflow"])
@pytest.mark.parametrize("latency_ms", [0, 50])
def test_kserve_batcher_is_rendered_and_validates(predictor, latency_ms, assert_valid_isvc):
    opts = m.ServingOptions(
        name="penguins", predictor=predictor, protocol="v1" if predictor == "tensorflow" else "v2",
        batcher_max_batch_size=32, batcher_max_latency_ms=latency_ms,
    )
    desired = m.render(opts, URI)
    assert_valid_isvc(desired)
    batcher = desired["spec"]["predictor"]["batcher"]
    assert batcher["maxBatchSize"] == 32
    assert batcher.get("maxLatency") == (latency_ms or None)
    assert "batcher" not in m.render(m.ServingOptions(name="penguins"), URI)["spec"]["predictor"]


def test_negative_batch_size_is_refused():
    with pytest.raises(m.ManifestError, match="batcher_max_batch_size must be a non-negative integer, got -1"):
        m.ServingOptions(name="penguins", batcher_max_batch_size=-1)


@pytest.mark.parametrize("predictor", ["kfpc", "tensorflow"])
def test_predictor_container_runs_restricted(predictor, assert_valid_isvc):
    opts = m.ServingOptions(name="penguins", predictor=predictor, protocol="v1" if predictor == "tensorflow" else "v2")
    desired = m.render(opts, URI)
    assert_valid_isvc(desired)  # securityContext is a field the CRD's schema knows, with these types
    spec = desired["spec"]["predictor"]
    context = (spec.get("model") or spec["containers"][0])["securityContext"]
    assert context["runAsNonRoot"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]} and context["seccompProfile"] == {"type": "RuntimeDefault"}
    # TF Serving's image runs as root, which runAsNonRoot refuses without an explicit non-root UID.
    assert context.get("runAsUser") == (m.TF_SERVING_UID if predictor == "tensorflow" else None)
    broken = dict(context, runAsNonRoot="yes")
    body = m.render(opts, URI)
    (body["spec"]["predictor"].get("model") or body["spec"]["predictor"]["containers"][0])["securityContext"] = broken
    with pytest.raises(AssertionError):
        assert_valid_isvc(body)
