"""Compile tests: GPU placement fields land in the YAML for both targets."""

import pytest
import yaml
from kfp import compiler, dsl

from kfpc.components import images
from kfpc.components.ingest.component import ingest
from kfpc.pipelines import placement
from kfpc.pipelines.placement import GpuOptions, PlacementError


def _compile(tmp_path, target: str, options: GpuOptions) -> list[dict]:
    @dsl.pipeline(name="placement-probe")
    def probe(source_uri: str):
        data = ingest(source_uri=source_uri)
        op = placement.training_op(target, options)
        task = op(data=data.outputs["data"], label="species", **placement.checkpoint_arguments(target, options))
        placement.apply_placement(task, target, options)

    path = tmp_path / f"{target}.yaml"
    compiler.Compiler().compile(probe, str(path))
    return list(yaml.safe_load_all(path.read_text()))


def _train_executor(pipeline: dict) -> dict:
    executors = pipeline["deploymentSpec"]["executors"]
    (name,) = [n for n in executors if "train" in n]
    return executors[name]


def test_kfp_gpu_fields_in_both_documents(tmp_path):
    options = GpuOptions(gpu_count=2, cpu_limit="8", memory_limit="32G", checkpoint_pvc="train-checkpoints")
    documents = _compile(tmp_path, "kfp", options)
    assert len(documents) == 2, "kfp-kubernetes writes the platform spec as a second YAML document"
    pipeline, platform = documents
    container = _train_executor(pipeline)["container"]
    assert container["image"] == images.TF_GPU
    resources = container["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "2"
    assert resources["resourceCpuLimit"] == "8"
    assert resources["resourceMemoryLimit"] == "32G"
    (train_task,) = [t for n, t in pipeline["root"]["dag"]["tasks"].items() if n.startswith("train")]
    assert train_task["retryPolicy"]["maxRetryCount"] == 3
    checkpoint = train_task["inputs"]["parameters"]["checkpoint_uri"]["runtimeValue"]["constant"]
    assert checkpoint.startswith(placement.CHECKPOINT_MOUNT + "/{{$.pipeline_job_uuid}}")

    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    (config,) = [c for n, c in executors.items() if "train" in n]
    assert config["nodeSelector"]["labels"] == {"nvidia.com/gpu.present": "true"}
    assert config["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert config["pvcMount"][0]["mountPath"] == placement.CHECKPOINT_MOUNT
    assert config["pvcMount"][0]["constant"] == "train-checkpoints"


def test_kfp_cpu_placement_has_no_gpu_fields(tmp_path):
    documents = _compile(tmp_path, "kfp", GpuOptions.cpu())
    assert len(documents) == 1, "no Kubernetes platform spec without node selector / toleration / PVC"
    container = _train_executor(documents[0])["container"]
    assert container["image"] == images.TF
    assert "accelerator" not in container.get("resources", {})


def test_vertex_custom_job_carries_accelerator_and_replicas(tmp_path):
    options = GpuOptions(
        gpu_count=1, vertex_accelerator_type="NVIDIA_L4", vertex_machine_type="g2-standard-8",
        vertex_replica_count=2, vertex_scheduling_strategy="SPOT",
    )
    (pipeline,) = _compile(tmp_path, "vertex", options)
    (train_task,) = [t for n, t in pipeline["root"]["dag"]["tasks"].items() if "train" in n]
    # gcpc puts the job's settings into the wrapping component's parameter defaults
    params = pipeline["components"][train_task["componentRef"]["name"]]["inputDefinitions"]["parameters"]
    pools = params["worker_pool_specs"]["defaultValue"]
    assert len(pools) == 2, "replica_count=2: chief pool + worker pool"
    for pool in pools:
        assert pool["machine_spec"]["accelerator_type"] == "NVIDIA_L4"
        assert int(pool["machine_spec"]["accelerator_count"]) == 1
        assert pool["machine_spec"]["machine_type"] == "g2-standard-8"
        assert pool["container_spec"]["image_uri"] == images.TF_GPU
    assert int(pools[0]["replica_count"]) == 1 and int(pools[1]["replica_count"]) == 1
    assert params["strategy"]["defaultValue"] == "SPOT"
    assert params["restart_job_on_worker_restart"]["defaultValue"] is True
    # the launcher runs the train component's own code inside the custom job
    assert "kfpc.components.train" in " ".join(pools[0]["container_spec"]["command"] + pools[0]["container_spec"]["args"])
    assert train_task["retryPolicy"]["maxRetryCount"] == 3


def test_bad_options_are_rejected():
    with pytest.raises(PlacementError, match="gpu_count"):
        GpuOptions(gpu_count=-1)
    with pytest.raises(PlacementError, match="vertex_scheduling_strategy"):
        GpuOptions(vertex_scheduling_strategy="CHEAP")
    with pytest.raises(PlacementError, match="target"):
        placement.training_op("sagemaker")


def test_train_parameters_do_not_collide_with_the_vertex_wrapper():
    """gcpc merges the component's inputs with its own; a shared name silently overrides one of them."""
    import inspect

    from google_cloud_pipeline_components.v1.custom_job import utils

    from kfpc.components.train.component import train

    wrapper = set(inspect.signature(utils.create_custom_training_job_from_component).parameters)
    wrapper |= {"project", "location", "gcp_resources"}
    assert wrapper & set(inspect.signature(train.python_func).parameters) == set()
