"""push_kserve through kfp.local: artifacts in, manifest artifact and outputs out; refusal fails the task."""

import json
import os

import pytest
import yaml
from kfp import dsl, local
from kfp.dsl import Artifact, Model, Output

from kfpc.components.push.component import push_kserve


@dsl.component(install_kfp_package=False)
def fake_training(model: Output[Model], blessing: Output[Artifact], blessed: bool):
    """A contract-shaped Model (placeholder SavedModel bytes) and an evaluation blessing."""
    import json
    import os

    os.makedirs(os.path.join(model.path, "1", "variables"))
    with open(os.path.join(model.path, "1", "saved_model.pb"), "wb") as handle:
        handle.write(b"\x08\x01" * 100)
    with open(os.path.join(model.path, "model_card.json"), "w") as handle:
        json.dump({"label": "species", "task": "multiclass", "classes": ["a", "b"], "features": []}, handle)
    os.makedirs(blessing.path, exist_ok=True)
    blessing.metadata["blessed"] = blessed


@pytest.fixture()
def local_runner(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))


def _pipeline(serving_root: str, blessed: bool, **push_args):
    @dsl.pipeline
    def push_pipeline() -> str:
        trained = fake_training(blessed=blessed)
        pushed = push_kserve(model=trained.outputs["model"], blessing=trained.outputs["blessing"],
                             serving_root=serving_root, name="penguins", **push_args)
        return pushed.outputs["model_uri"]

    return push_pipeline


def test_dry_run_component_writes_the_manifest_artifact(local_runner, tmp_path, assert_valid_isvc):
    serving_root = str(tmp_path / "serving")
    task = _pipeline(serving_root, True, mode="dry_run", namespace="ml", deployment_mode="Knative", gpu=1)()
    assert task.output == f"{serving_root}/penguins/v1"
    assert not os.path.exists(serving_root)
    (manifest_dir,) = [os.path.join(dp, d) for dp, dirs, _ in os.walk(tmp_path / "root") for d in dirs
                       if d == "manifest"]
    body = yaml.safe_load(open(os.path.join(manifest_dir, "inferenceservice.yaml")))
    assert_valid_isvc(body)
    assert body["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
    requests = json.load(open(os.path.join(manifest_dir, "requests.json")))
    assert [q["method"] for q in requests][:2] == ["GET", "POST"]


def test_an_unblessed_model_fails_the_task(local_runner, tmp_path):
    with pytest.raises(RuntimeError, match="push-kserve"):
        _pipeline(str(tmp_path / "serving"), False, mode="dry_run")()
    assert not os.path.exists(tmp_path / "serving")


def test_the_plain_blessed_parameter_is_used_without_an_artifact(local_runner, tmp_path):
    @dsl.pipeline
    def no_evaluation() -> str:
        trained = fake_training(blessed=True)
        return push_kserve(model=trained.outputs["model"], serving_root=str(tmp_path / "s"), name="penguins",
                           blessed=False, force=True).outputs["model_uri"]

    assert no_evaluation().output.endswith("/penguins/v1")


def test_push_vertex_component_dry_run(local_runner, tmp_path):
    from kfpc.components.push.component import push_vertex

    @dsl.pipeline
    def vertex_pipeline() -> str:
        trained = fake_training(blessed=True)
        return push_vertex(model=trained.outputs["model"], blessing=trained.outputs["blessing"],
                           serving_root=str(tmp_path / "s"), name="penguins", project="kfpc-test",
                           location="europe-west4", traffic_percent=100).outputs["model_uri"]

    assert vertex_pipeline().output == f"{tmp_path / 's'}/penguins/v1"
    (found,) = [os.path.join(dp, f) for dp, _, files in os.walk(tmp_path / "root") for f in files
                if f == "vertex_requests.json"]
    methods = [r["method"] for r in json.load(open(found))]
    assert methods == ["ModelService.UploadModel", "EndpointService.CreateEndpoint", "EndpointService.DeployModel"]
