"""``kfpc registry`` end to end: the real model-registry client (fake REST server), promotion and rollback that
patch an InferenceService on push's fake Kubernetes API server (KServe's CRD validates every write)."""

from __future__ import annotations

import json

import pytest

from kfpc.components.push import kube
from kfpc.components.push import manifest as m
from kfpc.components.registry import core, deploy
from kfpc.pipelines import cli


def kfpc(capsys, *argv) -> tuple[int, object, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else None), err


@pytest.fixture
def registered(mr):
    registry = core.open_registry("kubeflow", mr.url)
    for n in (1, 2):
        registry.register("churn", f"gs://models/churn/v{n}",
                          lineage=core.build_lineage(run_id=f"run-{n}", baseline_uri=f"gs://models/churn/v{n - 1}"))
    return registry


def served(fake_kube) -> tuple[str, list[str]]:
    obj = fake_kube.get("ml", "churn")
    return m.served_model_uri(obj), obj["spec"]["predictor"]["containers"][0]["args"]


def test_list_show_promote_rollback_update_the_inferenceservice(capsys, mr, fake_kube, registered):
    base = ["registry", "--backend", "kubeflow", "--registry-uri", mr.url]
    deploy_args = ["--deploy", "kserve", "--kube-host", fake_kube.url, "--namespace", "ml", "--image", "kfpc:test",
                   "--poll-s", "0.02"]
    code, out, _ = kfpc(capsys, *base, "list")
    assert code == 0 and out == [{"model": "churn", "champion": ""}]

    code, out, _ = kfpc(capsys, *base, "promote", "churn", "v1", *deploy_args)
    assert code == 0 and out["version"] == "v1" and out["deployed"]["action"] == "created"
    assert served(fake_kube) == ("gs://models/churn/v1", [
        "--model_name=churn", "--model_dir=/mnt/models", "--http_port=8080",
        "--registered_model_name=churn", "--registered_version=v1"])
    code, out, _ = kfpc(capsys, *base, "promote", "churn", "v2", *deploy_args)
    assert code == 0 and out["previous_version"] == "v1" and out["deployed"]["action"] == "updated"
    assert served(fake_kube)[0] == "gs://models/churn/v2"
    assert fake_kube.get("ml", "churn")["metadata"]["labels"]["kfpc.dev/model-version"] == "v2"

    code, out, _ = kfpc(capsys, *base, "list", "churn")
    assert [(v["version"], v["aliases"], v["run_id"]) for v in out] == [("v1", [], "run-1"), ("v2", ["champion"], "run-2")]
    code, out, _ = kfpc(capsys, *base, "show", "churn")
    assert out["version"] == "v2" and out["lineage"]["baseline"]["uri"] == "gs://models/churn/v1"

    code, out, _ = kfpc(capsys, *base, "rollback", "churn", *deploy_args)
    assert code == 0 and (out["previous_version"], out["version"]) == ("v2", "v1")
    assert served(fake_kube) == ("gs://models/churn/v1", [
        "--model_name=churn", "--model_dir=/mnt/models", "--http_port=8080",
        "--registered_model_name=churn", "--registered_version=v1"])
    # every write went through the API server's strict CRD validation; patches were conditional
    writes = fake_kube.writes()
    assert [w["method"] for w in writes] == ["POST", "PATCH", "PATCH"]
    assert all(w["query"].get("fieldValidation") == "Strict" for w in writes)
    assert all(w["body"]["metadata"].get("resourceVersion") for w in writes[1:])
    assert registered.alias("churn").version == "v1"

    code, _, err = kfpc(capsys, *base, "rollback", "churn")
    assert code == 1 and "only champion on record" in err


def test_failed_rollout_keeps_the_alias_and_restores_the_service(capsys, mr, fake_kube, registered):
    base = ["registry", "--registry-uri", mr.url]
    deploy_args = ["--deploy", "kserve", "--kube-host", fake_kube.url, "--namespace", "ml", "--timeout-s", "1",
                   "--poll-s", "0.02"]
    assert kfpc(capsys, *base, "promote", "churn", "v1", *deploy_args)[0] == 0
    fake_kube.readiness = lambda obj: "failed" if "gs://models/churn/v2" in json.dumps(obj["spec"]) else "ready"
    code, _, err = kfpc(capsys, *base, "promote", "churn", "v2", *deploy_args)
    assert code == 1 and "alias was not moved" in err and "previous spec restored" in err
    assert registered.alias("churn").version == "v1"
    assert served(fake_kube)[0] == "gs://models/churn/v1"


def test_model_registry_storage_uri_when_the_cluster_resolves_it(fake_kube, mr, registered):
    client = kube.IsvcClient.for_host(fake_kube.url)
    opts = m.ServingOptions(name="churn", namespace="ml", image="kfpc:test")
    deployer = deploy.kserve_deployer(client, opts, use_registry_uri=True, timeout_s=5, poll_s=0.01)
    core.promote(registered, "churn", "v2", deploy=deployer)
    env = fake_kube.get("ml", "churn")["spec"]["predictor"]["containers"][0]["env"]
    assert {"name": "STORAGE_URI", "value": "model-registry://churn/v2"} in env


def test_registry_errors_are_one_line_without_traceback(capsys):
    code, _, err = kfpc(capsys, "registry", "--registry-uri", "http://127.0.0.1:1", "list")
    assert code == 1 and err.startswith("kfpc registry: error: connect to Kubeflow Model Registry")
    code, _, err = kfpc(capsys, "registry", "--registry-uri", "", "list")
    assert code == 1 and "--registry-uri" in err
