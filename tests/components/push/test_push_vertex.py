"""Vertex AI push: the exact aiplatform_v1 requests, checked field by field; nothing is sent."""

from __future__ import annotations

import json

import pytest
from google.cloud import aiplatform_v1 as v1

from kfpc.components.push import core, vertex

URI = "gs://models/serving/penguins/v3"


def options(**kw):
    return vertex.VertexOptions(**{"project": "kfpc-test", "location": "europe-west4", "display_name": "penguins",
                                   **kw})


def test_upload_request_for_our_serving_image():
    request = vertex.upload_request(options(image="eu.gcr.io/p/kfpc-serving:0.1.0", parent_model="123"), URI)
    assert isinstance(request, v1.UploadModelRequest)
    assert request.parent == "projects/kfpc-test/locations/europe-west4"
    assert request.parent_model == "projects/kfpc-test/locations/europe-west4/models/123"
    model = request.model
    assert model.display_name == "penguins" and model.artifact_uri == URI
    spec = model.container_spec
    assert spec.image_uri == "eu.gcr.io/p/kfpc-serving:0.1.0"
    assert list(spec.args) == ["--model_name=model", "--model_dir=$(AIP_STORAGE_URI)", "--http_port=8080"]
    assert [p.container_port for p in spec.ports] == [8080]
    assert spec.predict_route == "/v1/models/model:predict"
    assert spec.health_route == "/v2/models/model/ready"
    # the proto survives a wire round trip unchanged (what the GAPIC client would send)
    assert v1.UploadModelRequest.deserialize(v1.UploadModelRequest.serialize(request)) == request


def test_upload_request_for_the_prebuilt_tensorflow_container():
    request = vertex.upload_request(options(container="tensorflow", accelerator_type="NVIDIA_TESLA_T4",
                                            accelerator_count=1), URI)
    assert request.model.artifact_uri == URI + "/1"  # TF Serving wants saved_model.pb at the top
    assert request.model.container_spec.image_uri == "europe-docker.pkg.dev/vertex-ai/prediction/tf2-gpu.2-15:latest"
    assert not request.model.container_spec.args and not request.parent_model


def test_deploy_request_with_gpu_and_a_traffic_split():
    opts = options(machine_type="n1-standard-8", accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1,
                   min_replica_count=2, max_replica_count=5, traffic_percent=10, service_account="sa@p.iam.gserviceaccount.com")
    endpoint = "projects/kfpc-test/locations/europe-west4/endpoints/42"
    request = vertex.deploy_request(opts, endpoint, "projects/p/locations/l/models/9@2", {"111": 70, "222": 30})
    assert request.endpoint == endpoint
    deployed = request.deployed_model
    assert deployed.model == "projects/p/locations/l/models/9@2"
    machine = deployed.dedicated_resources.machine_spec
    assert (machine.machine_type, machine.accelerator_type, machine.accelerator_count) == (
        "n1-standard-8", v1.AcceleratorType.NVIDIA_TESLA_T4, 1)
    assert (deployed.dedicated_resources.min_replica_count, deployed.dedicated_resources.max_replica_count) == (2, 5)
    assert deployed.service_account == "sa@p.iam.gserviceaccount.com"
    assert dict(request.traffic_split) == {"0": 10, "111": 63, "222": 27}


@pytest.mark.parametrize("current,percent,expected", [
    ({}, 100, {"0": 100}),
    ({"a": 100}, 100, {"0": 100}),
    ({"a": 100}, 25, {"0": 25, "a": 75}),
    ({"a": 50, "b": 50}, 33, {"0": 33, "a": 34, "b": 33}),
    ({"a": 1, "b": 1, "c": 1}, 1, {"0": 1, "a": 33, "b": 33, "c": 33}),
    ({"a": 90, "b": 10, "c": 0}, 50, {"0": 50, "a": 45, "b": 5}),
])
def test_traffic_split_sums_to_100_and_keeps_proportions(current, percent, expected):
    split = vertex.split_traffic(current, percent)
    assert split == expected and sum(split.values()) == 100


def test_a_partial_split_without_other_models_is_refused():
    with pytest.raises(vertex.VertexError, match="endpoint has none"):
        vertex.split_traffic({}, 40)


@pytest.mark.parametrize("kwargs,match", [
    ({"project": "X"}, "project"),
    ({"location": "europe"}, "location"),
    ({"container": "sklearn"}, "container"),
    ({"accelerator_type": "NVIDIA_GTX_1080", "accelerator_count": 1}, "accelerator_type 'NVIDIA_GTX_1080'"),
    ({"accelerator_type": "NVIDIA_TESLA_T4"}, "set together"),
    ({"min_replica_count": 3, "max_replica_count": 2}, "replica counts"),
    ({"traffic_percent": 0}, "traffic_percent"),
])
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(vertex.VertexError, match=match):
        options(**kwargs)


def test_unknown_tf_version_is_refused():
    with pytest.raises(vertex.VertexError, match="tf_version '9.9'"):
        vertex.upload_request(options(container="tensorflow", tf_version="9.9"), URI)


def test_dry_run_push_vertex_writes_the_requests(fake_model, tmp_path, gcs):
    out = tmp_path / "out"
    result = core.push_vertex(fake_model, serving_root="gs://models/serving", name="penguins",
                              project="kfpc-test", location="europe-west4", output_dir=out,
                              storage_client=gcs.client())
    assert result.model_uri == "gs://models/serving/penguins/v1"
    assert gcs.uploads == []  # a dry run lists the root, writes nothing
    methods = [r["method"] for r in result.requests]
    assert methods == ["ModelService.UploadModel", "EndpointService.CreateEndpoint", "EndpointService.DeployModel"]
    assert {r["api_endpoint"] for r in result.requests} == {"europe-west4-aiplatform.googleapis.com:443"}
    upload = result.requests[0]["request"]
    assert upload["model"]["artifactUri"] == result.model_uri
    deploy = result.requests[2]["request"]
    assert deploy["endpoint"] == vertex.CREATED_ENDPOINT and deploy["trafficSplit"] == {"0": 100}
    assert json.loads((out / core.VERTEX_REQUESTS_FILE).read_text()) == result.requests
    assert result.endpoint_url.startswith("https://europe-west4-aiplatform.googleapis.com/v1/")


def test_dry_run_against_an_existing_endpoint(fake_model, gcs):
    result = core.push_vertex(fake_model, serving_root="gs://models/serving", name="penguins", project="kfpc-test",
                              location="europe-west4", endpoint="42", traffic_percent=20,
                              current_traffic_split={"7": 100}, storage_client=gcs.client())
    methods = [r["method"] for r in result.requests]
    assert methods == ["ModelService.UploadModel", "EndpointService.GetEndpoint", "EndpointService.DeployModel"]
    assert result.requests[-1]["request"]["trafficSplit"] == {"0": 20, "7": 80}
    assert result.requests[-1]["request"]["endpoint"] == "projects/kfpc-test/locations/europe-west4/endpoints/42"


def test_cloud_mode_needs_a_gcs_root_and_a_blessing(fake_model, tmp_path):
    with pytest.raises(core.PushError, match="use gs://"):
        core.push_vertex(fake_model, serving_root=str(tmp_path), name="penguins", project="kfpc-test",
                         location="europe-west4", mode="cloud")
    with pytest.raises(core.NotBlessedError):
        core.push_vertex(fake_model, serving_root="gs://m", name="penguins", project="kfpc-test",
                         location="europe-west4", blessed=False)

