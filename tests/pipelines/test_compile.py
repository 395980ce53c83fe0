"""Compile tests: every pipeline and component compiles, loads back with kfp, is byte-deterministic, and
the YAML committed under pipelines/compiled/ and components/ is not stale."""

import filecmp
from pathlib import Path

import pytest
import yaml
from kfp import components as kfp_components

from kfpc.pipelines import compiler, registry

PIPELINE_NAMES = sorted(registry.PIPELINES)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Every pipeline compiled twice per target, into two folders."""
    out = tmp_path_factory.mktemp("compiled")
    for target in registry.TARGETS:
        compiler.compile_all(target, out / "a" / target)
        compiler.compile_all(target, out / "b" / target)
    return out


@pytest.mark.parametrize("target", registry.TARGETS)
@pytest.mark.parametrize("name", PIPELINE_NAMES)
def test_pipeline_compiles_deterministically_and_loads_back(compiled, target, name):
    first = compiled / "a" / target / f"{name}.yaml"
    second = compiled / "b" / target / f"{name}.yaml"
    assert first.read_bytes() == second.read_bytes(), "compiling twice must give identical bytes"
    loaded = kfp_components.load_component_from_file(str(first))
    assert loaded.pipeline_spec.root.dag.tasks, "the pipeline has tasks"


@pytest.mark.parametrize("target", registry.TARGETS)
@pytest.mark.parametrize("name", PIPELINE_NAMES)
def test_committed_yaml_is_not_stale(compiled, target, name):
    committed = compiler.COMPILED_DIR / target / f"{name}.yaml"
    assert committed.exists(), f"{committed} is missing: run `make compile`"
    fresh = compiled / "a" / target / f"{name}.yaml"
    assert filecmp.cmp(committed, fresh, shallow=False), f"{committed} is stale: run `make compile`"


def test_committed_component_yaml_is_not_stale(tmp_path):
    fresh = compiler.compile_components(tmp_path)
    for path in fresh:
        committed = compiler.COMPONENTS_DIR / path.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is missing: run `make compile`"
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run `make compile`"
        component = kfp_components.load_component_from_file(str(committed))
        image = next(iter(component.pipeline_spec.deployment_spec["executors"].values()))["container"]["image"]
        assert image.endswith(":" + __import__("kfpc.components").components.__version__)


def test_training_task_asks_for_a_gpu_node_on_kfp(compiled):
    docs = list(yaml.safe_load_all((compiled / "a" / "kfp" / "training_pipeline.yaml").read_text()))
    spec = docs[0]
    train_executors = [
        e for name, e in spec["deploymentSpec"]["executors"].items() if name.startswith("exec-train")
    ]
    assert train_executors, "a train executor"
    resources = train_executors[0]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
    assert int(resources["accelerator"]["resourceCount"]) >= 1
    assert "kfpc-tf-gpu" in train_executors[0]["container"]["image"]


def test_unknown_pipeline_is_a_clear_error():
    with pytest.raises(registry.UnknownPipelineError, match="unknown pipeline 'nope'; known: "):
        registry.build("nope")
    with pytest.raises(ValueError, match="unknown target"):
        registry.build("training_pipeline", target="k8s")


def test_image_registry_rewrites_every_reference(tmp_path):
    paths = compiler.compile_all("kfp", tmp_path, image_registry="registry.example.com/ml")
    for path in paths:
        text = Path(path).read_text()
        assert "ghcr.io/kfpc" not in text
        assert "registry.example.com/ml/kfpc-" in text
        # the image the InferenceService will pull is chosen at build time too, so it moves with the rest
        if "push-kserve" in text:  # (validation_pipeline serves nothing)
            assert "registry.example.com/ml/kfpc-serving:" in text


def test_image_registry_moves_the_gcpc_launcher_image_of_the_vertex_target(tmp_path):
    default = (compiler.COMPILED_DIR / "vertex" / "training_pipeline.yaml").read_text()
    assert f"image: {compiler.GCPC_IMAGE_REPOSITORY}:" in default  # what there is to move
    path = compiler.compile_pipeline("training_pipeline", "vertex", tmp_path / "v.yaml",
                                     image_registry="mirror.internal:5000/ml")
    text = path.read_text()
    assert "gcr.io/" not in text and "ghcr.io/" not in text
    tag = default.split(f"image: {compiler.GCPC_IMAGE_REPOSITORY}:", 1)[1].split()[0]
    assert f"image: mirror.internal:5000/ml/google-cloud-pipeline-components:{tag}" in text


def test_gpu_options_and_image_registry_combine(tmp_path):
    from kfpc.pipelines.placement import GpuOptions

    gpu = GpuOptions(gpu_count=2, kfp_node_selector=(("cloud.google.com/gke-accelerator", "nvidia-l4"),))
    path = compiler.compile_pipeline("training_pipeline", "kfp", tmp_path / "t.yaml",
                                     image_registry="registry.example.com/ml", gpu=gpu)
    spec, platform = list(yaml.safe_load_all(path.read_text()))
    train = next(e for n, e in spec["deploymentSpec"]["executors"].items() if n.startswith("exec-train"))
    assert int(train["container"]["resources"]["accelerator"]["resourceCount"]) == 2
    assert train["container"]["image"].startswith("registry.example.com/ml/kfpc-tf-gpu:")
    assert "nvidia-l4" in yaml.safe_dump(platform)


def test_serving_root_is_required_outside_local_runs():
    pipeline = registry.build("training_pipeline")
    parameter = pipeline.pipeline_spec.root.input_definitions.parameters["serving_root"]
    assert not parameter.is_optional
