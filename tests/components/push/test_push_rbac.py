"""serving/rbac.yaml: a valid Role + RoleBinding granting every verb the push actually uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from kfpc.components.push import kube, manifest, rollout

RBAC = Path(__file__).resolve().parents[3] / "serving" / "rbac.yaml"
_VERB = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


@pytest.fixture(scope="module")
def documents():
    return list(yaml.safe_load_all(RBAC.read_text()))


def _deserialize(obj, kind):
    api = client.ApiClient()

    class Response:
        data = json.dumps(obj)

    return api.deserialize(Response(), kind)


def test_role_and_binding_are_valid_kubernetes_objects(documents):
    role_doc, binding_doc = documents
    role = _deserialize(role_doc, "V1Role")
    binding = _deserialize(binding_doc, "V1RoleBinding")
    assert binding.role_ref.name == role.metadata.name and binding.role_ref.kind == "Role"
    assert binding.subjects[0].kind == "ServiceAccount"


def test_the_role_grants_every_verb_a_rollout_uses(documents, fake_kube, metrics_server):
    from prometheus_exposition import exposition

    from kfpc.components.push import canary

    (rule,) = [r for r in documents[0]["rules"] if r["resources"] == ["inferenceservices"]]
    assert rule["apiGroups"] == [manifest.GROUP]
    isvc_client = kube.IsvcClient.for_host(fake_kube.url)
    opts = manifest.ServingOptions(name="penguins", namespace="ml")
    # every path: create, canary + promote, failed update with rollback, failed create with delete
    rollout.rollout(isvc_client, manifest.render(opts, "gs://m/v1"), opts, timeout_s=1, poll_s=0.01)
    metrics = metrics_server([exposition("penguins", ok=100)])
    rollout.rollout(isvc_client, manifest.render(opts, "gs://m/v2"), opts, canary_traffic_percent=10, promote=True,
                    timeout_s=1, poll_s=0.01, thresholds=canary.Thresholds(bake_s=0.05, min_requests=10),
                    canary_source=lambda _ready: canary.MetricsEndpointSource(metrics.url, "penguins"))
    fake_kube.readiness = lambda obj: "pending"
    with pytest.raises(rollout.RolloutError):
        rollout.rollout(isvc_client, manifest.render(opts, "gs://m/v3"), opts, timeout_s=0.1, poll_s=0.01)
    other = manifest.ServingOptions(name="other", namespace="ml")
    with pytest.raises(rollout.RolloutError):
        rollout.rollout(isvc_client, manifest.render(other, "gs://m/v1"), other, timeout_s=0.1, poll_s=0.01)
    used = {_VERB[r["method"]] for r in fake_kube.requests}
    assert used == {"get", "create", "patch", "delete"}
    assert used <= set(rule["verbs"])
