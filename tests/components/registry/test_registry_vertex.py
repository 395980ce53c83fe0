"""The real aiplatform_v1 ModelServiceClient / EndpointServiceClient against an in-process fake gRPC service."""

from __future__ import annotations

import pytest

from kfpc.components.push import vertex as push_vertex
from kfpc.components.registry import core, deploy
from kfpc.components.registry.vertex import VertexRegistry

ADDRESS = "projects/kfpc-test/locations/europe-west4"
LINEAGE = core.build_lineage(run_id="run-7", metrics={"auc": 0.9}, blessing={"blessed": True},
                             baseline_uri="gs://b/churn/v1", baseline_version="v1", code_version="0.9")


def open_(vertex) -> VertexRegistry:
    return VertexRegistry(ADDRESS, client=vertex.model_client(), image="ghcr.io/kfpc/kfpc-serving:test")


def test_upload_versions_under_one_parent_model_with_lineage(vertex):
    registry = open_(vertex)
    first, created = registry.register("churn", "gs://b/churn/v1", lineage=LINEAGE)
    second, _ = registry.register("churn", "gs://b/churn/v2", lineage=LINEAGE)
    uploads = [c["request"] for c in vertex.calls if c["method"] == "UploadModel"]
    assert len(uploads) == 2 and not uploads[0]["parent_model"]
    assert uploads[1]["parent_model"] == first.resource_name.split("@")[0]
    assert uploads[0]["model"]["container_spec"]["image_uri"] == "ghcr.io/kfpc/kfpc-serving:test"
    assert uploads[1]["model"]["labels"] == {"managed-by": "kfpc", "kfpc-version": "v2", "kfpc-run-id": "run-7"}
    assert (first.version, second.version) == ("v1", "v2")
    assert second.resource_name.endswith("@2") and second.uri == "gs://b/churn/v2"
    assert second.lineage["baseline"] == {"uri": "gs://b/churn/v1", "version": "v1", "beaten": True}
    assert second.lineage["pipeline_run"]["id"] == "run-7"
    assert registry.vertex_model(second) == {
        "uri": f"https://europe-west4-aiplatform.googleapis.com/v1/{second.resource_name}",
        "resourceName": second.resource_name}


def test_register_is_idempotent_and_conflicts_name_both_uris(vertex):
    registry = open_(vertex)
    registry.register("churn", "gs://b/churn/v1")
    again, created = registry.register("churn", "gs://b/churn/v1")
    assert not created and again.version == "v1"
    assert [c["method"] for c in vertex.calls].count("UploadModel") == 1
    with pytest.raises(core.RegistryConflict, match=r"'churn' version 'v1'.*gs://b/churn/v1.*gs://b/other/v1"):
        registry.register("churn", "gs://b/other/v1", version="v1")
    with pytest.raises(core.RegistryError, match="Vertex label value"):
        registry.register("churn", "gs://b/churn/x", version="V 9")


def test_aliases_move_and_rollback_uses_version_labels(vertex):
    registry = open_(vertex)
    for n in (1, 2, 3):
        registry.register("churn", f"gs://b/churn/v{n}")
    clock = iter(range(1000, 2000)).__next__
    for ref in ("v1", "v3", "v2"):
        core.promote(registry, "churn", ref, clock=clock)
    merges = [c["request"]["version_aliases"] for c in vertex.calls if c["method"] == "MergeVersionAliases"]
    assert merges[-2:] == [["-champion"], ["champion"]]  # removed from v3, then given to v2
    back = core.rollback(registry, "churn", clock=clock)
    assert (back.previous.version, back.version.version) == ("v2", "v3")
    assert registry.alias("churn").version == "v3"
    labels = {v.version: v for v in registry.versions("churn")}
    assert labels["v2"].rolled_back and not labels["v3"].rolled_back
    assert core.rollback(registry, "churn", clock=clock).version.version == "v1"
    # Vertex's own default alias stays on the first version; ours are separate
    assert not [c for c in vertex.calls if c.get("error")]


def test_promotion_deploys_to_the_endpoint_before_the_alias_moves(vertex):
    registry = open_(vertex)
    registry.register("churn", "gs://b/churn/v1")
    opts = push_vertex.VertexOptions(project="kfpc-test", location="europe-west4", display_name="churn")
    deployer = deploy.vertex_deployer(vertex.endpoint_client(), opts, "42")
    promoted = core.promote(registry, "churn", "v1", deploy=deployer)
    (request,) = vertex.deployed
    assert request.endpoint == f"{ADDRESS}/endpoints/42"
    assert request.deployed_model.model == promoted.version.resource_name
    assert dict(request.traffic_split) == {"0": 100}
    assert promoted.deployed["action"] == "deployed"
    methods = vertex.methods()
    assert methods.index("DeployModel") < methods.index("MergeVersionAliases")


def test_unknown_model_and_bad_address(vertex):
    registry = open_(vertex)
    with pytest.raises(core.NotFound, match="'nope' is not registered in Vertex AI Model Registry"):
        registry.versions("nope")
    with pytest.raises(core.RegistryError, match="expected projects/<project>/locations/<region>"):
        VertexRegistry("kfpc-test/europe-west4", client=object())


def test_pipeline_step_writes_record_card_section_and_vertex_model(vertex, tmp_path):
    import json

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "model_card.json").write_text(json.dumps({"task": "binary", "hyperparameters": {"epochs": 2},
                                                           "features": [{"name": "tenure", "kind": "numeric"}],
                                                           "schema_hash": "h1", "kfpc_version": "0.9"}))
    registry = open_(vertex)
    registry.register("churn", "gs://b/churn/v1")
    core.promote(registry, "churn", "v1")
    section = core.register_pushed_model(
        model_dir, backend="vertex", address=ADDRESS, name="churn", uri="gs://b/churn/v2", champion=True,
        lineage_inputs={"run_id": "r2", "baseline_uri": "gs://b/churn/v1", "blessing": {"blessed": True}},
        output_dir=tmp_path / "out", registry=registry)
    assert section["version"] == "v2" and section["aliases"] == ["champion"]
    assert section["lineage"]["baseline"] == {"uri": "gs://b/churn/v1", "version": "v1", "beaten": True}
    assert section["lineage"]["hyperparameters"] == {"epochs": 2}
    assert section["vertex_model"]["resourceName"].endswith("@2")
    card = json.loads((tmp_path / "out" / "model_card.json").read_text())
    assert card["registry"]["version"] == "v2" and card["hyperparameters"] == {"epochs": 2}
    assert json.loads((tmp_path / "out" / "registry.json").read_text())["version"] == "v2"
    assert registry.alias("churn").version == "v2"
    with pytest.raises(core.RegistryError, match="not empty"):
        core.register_pushed_model(model_dir, backend="vertex", address=ADDRESS, name="churn", uri="gs://b/churn/v2",
                                   output_dir=tmp_path / "out", registry=registry)
