"""Compile kfpc pipelines and components to YAML, deterministically.

Pipelines are data: the YAML under ``pipelines/compiled/<target>/`` and each
``components/<name>/component.yaml`` are produced here and never edited by hand. Image references are
emitted by the code itself (``kfpc.components.images``); to point them at another registry the
compilation runs in a fresh interpreter with ``KFPC_IMAGE_REGISTRY`` set, so every reference — including
those inside Vertex custom-job worker pool specs — comes out right, not a text substitution.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from kfpc.components import images
from kfpc.pipelines import registry

PIPELINES_DIR = Path(__file__).resolve().parent
COMPILED_DIR = PIPELINES_DIR / "compiled"
COMPONENTS_DIR = PIPELINES_DIR.parent / "components"

#: component name -> ``module:attribute`` of its KFP component
COMPONENTS: dict[str, str] = {
    "preflight": "kfpc.components.preflight.component:preflight",
    "ingest": "kfpc.components.ingest.component:ingest",
    "statistics": "kfpc.components.statistics.component:statistics",
    "plan_shards": "kfpc.components.statistics.component:plan_shards",
    "shard_statistics": "kfpc.components.statistics.component:shard_statistics",
    "merge_statistics": "kfpc.components.statistics.component:merge_statistics",
    "infer_schema": "kfpc.components.schema.component:infer_schema",
    "import_schema": "kfpc.components.schema.component:import_schema",
    "resolve_schema": "kfpc.components.schema.component:resolve_schema",
    "validate": "kfpc.components.validate.component:validate",
    "validation_gate": "kfpc.components.validate.component:validation_gate",
    "train": "kfpc.components.train.component:train",
    "train_trainjob": "kfpc.components.train.trainjob_component:train_trainjob",
    "evaluate": "kfpc.components.evaluate.component:evaluate",
    "tune": "kfpc.components.tune.component:tune",
    "katib_tune": "kfpc.components.tune.component:katib_tune",
    "vertex_tuning_request": "kfpc.components.tune.component:vertex_tuning_request",
    "vertex_best_trial": "kfpc.components.tune.component:vertex_best_trial",
    "record_tuning": "kfpc.components.tune.component:record_tuning",
    "feature_importance": "kfpc.components.feature_importance.component:feature_importance",
    "push_kserve": "kfpc.components.push.component:push_kserve",
    "push_vertex": "kfpc.components.push.component:push_vertex",
    "monitoring_config": "kfpc.components.monitor.component:monitoring_config",
    "monitor_window": "kfpc.components.monitor.component:monitor_window",
    "register_model": "kfpc.components.registry.component:register_model",
}


def load_component(name: str):
    """The KFP component object ``name`` (see ``COMPONENTS``)."""
    import importlib

    if name not in COMPONENTS:
        raise KeyError(f"unknown component {name!r}; known: {', '.join(COMPONENTS)}")
    module_name, attr = COMPONENTS[name].split(":")
    return getattr(importlib.import_module(module_name), attr)


def _needs_subprocess(image_registry: str | None) -> bool:
    return image_registry is not None and image_registry.rstrip("/") != images.registry()


def _in_subprocess(call: dict, image_registry: str) -> list[str]:
    env = dict(os.environ, KFPC_IMAGE_REGISTRY=image_registry.rstrip("/"))
    result = subprocess.run(
        [sys.executable, "-m", "kfpc.pipelines.compiler", json.dumps(call)],
        env=env,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"compilation with image registry {image_registry!r} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def compile_pipeline(
    name: str,
    target: str = "kfp",
    output_path: str | os.PathLike | None = None,
    image_registry: str | None = None,
    **options,
) -> Path:
    """Compile pipeline ``name`` for ``target`` to a YAML file.

    Args:
        name: a key of ``registry.PIPELINES``.
        target: ``kfp`` (Kubeflow Pipelines; GPU via kfp-kubernetes) or ``vertex`` (Vertex AI Pipelines).
        output_path: where to write; default ``pipelines/compiled/<target>/<name>.yaml``.
        image_registry: registry for every image reference instead of the default.
        **options: passed to the pipeline factory (e.g. GPU placement options).
    Returns:
        The path written.
    """
    output = Path(output_path) if output_path else COMPILED_DIR / target / f"{name}.yaml"
    if _needs_subprocess(image_registry):
        # GpuOptions crosses the process boundary as a dict and is rebuilt in _main
        options = {k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v for k, v in options.items()}
        call = {"kind": "pipeline", "name": name, "target": target, "output": str(output), "options": options}
        return Path(_in_subprocess(call, image_registry)[0])
    from kfp import compiler

    pipeline = registry.build(name, target=target, **options)
    output.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(pipeline_func=pipeline, package_path=str(output))
    if images.registry() != images.DEFAULT_REGISTRY:
        _move_gcpc_images(output, images.registry())
    return output


#: the repository of Google Cloud Pipeline Components' launcher image (Vertex custom-job tasks run in it)
GCPC_IMAGE_REPOSITORY = "gcr.io/ml-pipeline/google-cloud-pipeline-components"


def _move_gcpc_images(path: Path, image_registry: str) -> None:
    """Point the GCPC launcher image of a compiled pipeline at ``image_registry`` (an air-gapped mirror holds
    it as ``<registry>/google-cloud-pipeline-components:<same tag>``, beside the kfpc images)."""
    import re

    name = GCPC_IMAGE_REPOSITORY.rsplit("/", 1)[-1]
    text = path.read_text()
    moved = re.sub(rf"(^\s*image: ){re.escape(GCPC_IMAGE_REPOSITORY)}:(\S+)$", rf"\g<1>{image_registry}/{name}:\2",
                   text, flags=re.MULTILINE)
    if moved != text:
        path.write_text(moved)


def compile_all(
    target: str = "kfp", output_dir: str | os.PathLike | None = None, image_registry: str | None = None
) -> list[Path]:
    """Compile every pipeline for ``target`` into ``output_dir`` (default ``pipelines/compiled/<target>``)."""
    out_dir = Path(output_dir) if output_dir else COMPILED_DIR / target
    if _needs_subprocess(image_registry):
        call = {"kind": "all", "target": target, "output": str(out_dir)}
        return [Path(p) for p in _in_subprocess(call, image_registry)]
    return [compile_pipeline(name, target, out_dir / f"{name}.yaml") for name in registry.PIPELINES]


def compile_components(
    output_root: str | os.PathLike | None = None, image_registry: str | None = None
) -> list[Path]:
    """Compile every component to a standalone ``<root>/<folder>/<name>.yaml``.

    The default root is the repository's ``components/`` folder: ``components/ingest/component.yaml``
    for a folder's main component, ``components/<folder>/<name>.yaml`` for the others, so one component
    can be used with ``kfp.components.load_component_from_file`` without installing kfpc.
    """
    root = Path(output_root) if output_root else COMPONENTS_DIR
    if _needs_subprocess(image_registry):
        return [Path(p) for p in _in_subprocess({"kind": "components", "output": str(root)}, image_registry)]
    from kfp import compiler

    written = []
    for name, ref in COMPONENTS.items():
        folder = ref.split(":")[0].split(".")[2]
        file_name = "component.yaml" if folder == name else f"{name}.yaml"
        path = root / folder / file_name
        path.parent.mkdir(parents=True, exist_ok=True)
        compiler.Compiler().compile(load_component(name), package_path=str(path))
        written.append(path)
    return written


def _main(argv: list[str]) -> None:
    call = json.loads(argv[0])
    if call["kind"] == "pipeline":
        options = dict(call["options"])
        if isinstance(options.get("gpu"), dict):
            from kfpc.pipelines.placement import GpuOptions

            # JSON turned GpuOptions' tuples of tuples (node selector, tolerations) into lists of lists
            options["gpu"] = GpuOptions(**{k: tuple(map(tuple, v)) if isinstance(v, list) else v
                                           for k, v in options["gpu"].items()})
        paths = [compile_pipeline(call["name"], call["target"], call["output"], **options)]
    elif call["kind"] == "all":
        paths = compile_all(call["target"], call["output"])
    else:
        paths = compile_components(call["output"])
    print(json.dumps([str(p) for p in paths]))


if __name__ == "__main__":
    _main(sys.argv[1:])
