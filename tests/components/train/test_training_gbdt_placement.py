"""Placement by model family: trees train on a CPU node, the network (and ``auto``) where the GPU options say."""

import pytest
import yaml

from kfpc.components import images
from kfpc.pipelines import placement
from kfpc.pipelines.placement import GpuOptions, PlacementError
from kfpc.pipelines.training import build_training_pipeline


def _train_task(tmp_path, family: str) -> tuple[dict, dict, list[dict]]:
    from kfp import compiler

    path = tmp_path / f"{family}.yaml"
    compiler.Compiler().compile(build_training_pipeline("kfp", GpuOptions(gpu_count=1), model_family=family), str(path))
    documents = list(yaml.safe_load_all(path.read_text()))
    executors = documents[0]["deploymentSpec"]["executors"]
    (name,) = [n for n in executors if "train" in n]
    (task,) = [t for n, t in documents[0]["root"]["dag"]["tasks"].items() if n.startswith("train")]
    return executors[name]["container"], task, documents


@pytest.mark.parametrize("family", ["gbdt", "auto"])
def test_the_train_step_is_placed_by_model_family(tmp_path, family):
    container, task, documents = _train_task(tmp_path, family)
    assert task["inputs"]["parameters"]["model_family"]["runtimeValue"]["constant"] == family
    assert task["retryPolicy"]["maxRetryCount"] == 3  # kept for trees too
    if family == "gbdt":
        assert container["image"] == images.TF
        assert "accelerator" not in container.get("resources", {})
        platform = [d for d in documents[1:] if "platforms" in d]
        assert not any("train" in n for d in platform for n in d["platforms"]["kubernetes"]["deploymentSpec"]["executors"])
    else:  # one step trains both families: the network gets the GPU, YDF the node's CPU cores
        assert container["image"] == images.TF_GPU
        assert container["resources"]["accelerator"]["resourceCount"] == "1"


def test_for_model_family_keeps_everything_but_the_gpu_for_trees():
    options = GpuOptions(gpu_count=2, cpu_limit="8", checkpoint_pvc="ckpt")
    trees = placement.for_model_family(options, "gbdt")
    assert (trees.gpu_count, trees.kfp_node_selector, trees.kfp_tolerations) == (0, (), ())
    assert (trees.cpu_limit, trees.checkpoint_pvc, trees.retries) == ("8", "ckpt", options.retries)
    assert placement.for_model_family(options, "dnn") is options
    with pytest.raises(PlacementError, match="model_family must be one of dnn, gbdt, auto, got 'xgb'"):
        placement.for_model_family(options, "xgb")
