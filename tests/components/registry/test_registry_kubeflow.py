"""The real ``model-registry`` client against a fake REST server built from its own generated models."""

from __future__ import annotations

import json

import pytest

from kfpc.components.registry import core
from kfpc.components.registry.kubeflow import KubeflowRegistry

LINEAGE = core.build_lineage(
    card={"schema_hash": "abc", "kfpc_version": "0.9", "hyperparameters": {"epochs": 3}, "metrics": {"eval": {}}},
    run_id="run-1", run_url="http://kfp/#/runs/details/run-1", metrics={"auc": 0.91},
    blessing={"blessed": True, "thresholds": [{"metric": "auc", "passed": True}]},
    baseline_uri="/srv/churn/v0", baseline_version="v0",
)


def open_(mr) -> KubeflowRegistry:
    return core.open_registry("kubeflow", mr.url)


def test_register_writes_model_version_and_artifact_with_lineage(mr):
    registry = open_(mr)
    version, created = registry.register("churn", "gs://b/churn/v1", lineage=LINEAGE)
    assert created and version.version == "v1" and version.uri == "gs://b/churn/v1"
    assert version.lineage == LINEAGE
    writes = [(r["method"], r["path"].rsplit("/v1/", 1)[1]) for r in mr.writes()]
    assert writes == [("POST", "registered_models"), ("POST", "model_versions"), ("POST", "model_versions/2/artifacts")]
    artifact = mr.writes()[2]["body"]
    assert artifact["artifactType"] == "model-artifact" and artifact["uri"] == "gs://b/churn/v1"
    assert artifact["modelFormatName"] == "tensorflow" and artifact["modelFormatVersion"] == "2"
    props = mr.writes()[1]["body"]["customProperties"]
    assert json.loads(props["kfpc.lineage"]["string_value"]) == LINEAGE
    assert props["kfpc.run_id"]["string_value"] == "run-1"
    assert props["kfpc.baseline_version"]["string_value"] == "v0"
    assert props["kfpc.blessed"]["bool_value"] is True
    assert props["kfpc.metric.auc"]["double_value"] == 0.91


def test_register_is_idempotent_and_refuses_another_uri(mr):
    registry = open_(mr)
    first, _ = registry.register("churn", "gs://b/churn/v1", lineage=LINEAGE)
    writes = len(mr.writes())
    again, created = registry.register("churn", "gs://b/churn/v1", lineage=LINEAGE)
    assert not created and again.version == first.version and len(mr.writes()) == writes
    with pytest.raises(core.RegistryConflict) as err:
        registry.register("churn", "gs://b/churn/elsewhere", version="v1")
    text = str(err.value)
    assert "'churn'" in text and "'v1'" in text and "gs://b/churn/v1" in text and "gs://b/churn/elsewhere" in text
    assert len(mr.writes()) == writes  # nothing written by the refused registration
    # a URI that does not end in v<N> takes the next free version name
    other, _ = registry.register("churn", "gs://b/somewhere/else")
    assert other.version == "v2"


def test_client_errors_become_registry_errors(mr):
    registry = open_(mr)
    with pytest.raises(core.RegistryError, match="connect to Kubeflow Model Registry http://127.0.0.1:1"):
        core.open_registry("kubeflow", "http://127.0.0.1:1")
    with pytest.raises(core.NotFound, match="'nope' is not registered"):
        registry.versions("nope")
    with pytest.raises(core.RegistryError, match="expected http"):
        core.open_registry("kubeflow", "ftp://x")


def test_promote_and_rollback_follow_the_registry_history_not_folder_order(mr):
    registry = open_(mr)
    # registered out of folder order: v3 first
    for uri in ("gs://b/churn/v3", "gs://b/churn/v1", "gs://b/churn/v2"):
        registry.register("churn", uri)
    clock = iter(range(100, 200)).__next__
    core.promote(registry, "churn", "v2", clock=clock)
    core.promote(registry, "churn", "v1", clock=clock)
    promoted = core.promote(registry, "churn", "v3", clock=clock)
    assert promoted.previous.version == "v1" and registry.alias("churn").version == "v3"
    back = core.rollback(registry, "churn", clock=clock)
    assert (back.previous.version, back.version.version) == ("v3", "v1")
    back = core.rollback(registry, "churn", clock=clock)
    assert (back.previous.version, back.version.version) == ("v1", "v2")
    with pytest.raises(core.NotFound, match="no previous champion"):
        core.rollback(registry, "churn", clock=clock)
    assert registry.alias("churn").version == "v2"
    # aliases live on the registered model, history on each version
    model = next(iter(mr.models.values()))
    assert model.custom_properties["kfpc.alias.champion"].actual_instance.string_value == "v2"
    states = {v.version: (v.rolled_back, v.champion_at) for v in registry.versions("churn")}
    assert states["v3"][0] and states["v1"][0] and not states["v2"][0]
    # promoting again clears the rolled-back mark
    core.promote(registry, "churn", "v3", clock=clock)
    assert not registry.get("churn", "v3").rolled_back


def test_failed_deploy_leaves_the_alias_where_it_was(mr):
    registry = open_(mr)
    registry.register("churn", "gs://b/churn/v1")
    registry.register("churn", "gs://b/churn/v2")
    core.promote(registry, "churn", "v1")

    def failing(version):
        raise RuntimeError(f"rollout of {version.version} failed")

    with pytest.raises(RuntimeError, match="rollout of v2"):
        core.promote(registry, "churn", "v2", deploy=failing)
    assert registry.alias("churn").version == "v1"
    assert registry.get("churn", "v2").champion_at is None


def test_model_registry_uri_resolves_version_and_alias(mr):
    registry = open_(mr)
    registry.register("churn", "gs://b/churn/v1", aliases=["challenger"])
    assert core.resolve_storage_uri("model-registry://churn/v1", registry).uri == "gs://b/churn/v1"
    assert core.resolve_storage_uri("model-registry://churn/challenger", registry).version == "v1"
    with pytest.raises(core.RegistryError, match="expected model-registry://"):
        core.parse_registry_uri("model-registry://churn")
    with pytest.raises(core.NotFound, match="no version or alias 'v9'"):
        core.resolve_storage_uri("model-registry://churn/v9", registry)


def test_lineage_records_undefined_numbers_of_the_card_as_missing():
    # KFP metadata and registry fields refuse NaN: the record must be plain JSON whatever the card holds
    card = {"hyperparameters": {"validation_loss": float("nan"), "trees": 12, "path": [1.0, float("inf")]},
            "metrics": {"validation": {"auc": float("nan"), "accuracy": 0.9}}}
    record = core.build_lineage(card=card, run_id="run-1")
    assert record["hyperparameters"] == {"validation_loss": None, "trees": 12, "path": [1.0, None]}
    assert record["training_metrics"] == {"validation": {"auc": None, "accuracy": 0.9}}
    json.dumps(record, allow_nan=False)
