"""``--image-registry``: no image reference in any compiled YAML is left on the default registry."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from kfpc.components import images
from kfpc.pipelines import compiler, registry

MIRROR = "registry.internal:5000/mirror/kfpc"


def _strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


def image_references(path: Path) -> list[str]:
    """Every string in every YAML document of ``path`` that names a kfpc image, wherever it sits
    (executor ``image``, Vertex worker pool ``imageUri``, a custom job payload serialized as text)."""
    with open(path) as handle:
        documents = list(yaml.safe_load_all(handle))
    repositories = tuple(f"/{repo}:" for repo in images.FAMILIES.values()) + tuple(
        f"/{repo}@" for repo in images.FAMILIES.values())
    return [s for doc in documents for s in _strings(doc) if any(r in s for r in repositories)
            or images.DEFAULT_REGISTRY in s]


def _assert_all_on(paths: list[Path], reg: str) -> int:
    found = 0
    for path in paths:
        references = image_references(path)
        assert references, f"{path}: no kfpc image reference at all"
        for reference in references:
            assert images.DEFAULT_REGISTRY + "/" not in reference, f"{path}: {reference!r} is on the default registry"
            assert f"{reg}/kfpc-" in reference, f"{path}: {reference!r} is not on {reg}"
        found += len(references)
    return found


def test_the_default_registry_is_what_a_plain_compile_names(tmp_path):
    # The detector sees default-registry references: without this, the tests below could pass vacuously.
    ingest = importlib.import_module("kfpc.components.ingest.component").ingest
    from kfp import compiler as kfp_compiler

    kfp_compiler.Compiler().compile(ingest, str(tmp_path / "ingest.yaml"))
    assert image_references(tmp_path / "ingest.yaml") == [images.image("data", images.DEFAULT_REGISTRY)]


@pytest.mark.parametrize("target", ["kfp", "vertex"])
def test_no_pipeline_image_stays_on_the_default_registry(target, tmp_path):
    paths = [compiler.compile_pipeline(name, target, tmp_path / f"{name}.yaml", image_registry=MIRROR)
             for name in registry.PIPELINES]
    assert _assert_all_on(paths, MIRROR) >= len(paths)


def test_no_component_image_stays_on_the_default_registry(tmp_path):
    paths = compiler.compile_components(tmp_path, image_registry=MIRROR)
    assert paths and all(Path(p).exists() for p in paths)
    families = {ref.rsplit("/", 1)[-1].split(":")[0] for p in paths for ref in image_references(p)}
    assert _assert_all_on(paths, MIRROR) >= len(paths)
    assert {"kfpc-data", "kfpc-tf"} <= families
