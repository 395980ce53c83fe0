"""Architecture rules that can fail: cores are plain Python (no kfp, no TensorFlow where the image has none),
every component folder has its three parts, and every installed package is listed in setup.cfg."""

import configparser
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMPONENT_DIRS = sorted(p.parent for p in (ROOT / "components").glob("*/core.py"))
#: cores whose family image holds no TensorFlow: importing them must not import it either
NO_TENSORFLOW = ("preflight", "ingest", "statistics", "schema", "validate", "push", "monitor", "registry",
                 "tune")


def _modules_after_import(module: str) -> set[str]:
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def test_every_component_has_core_component_and_readme():
    assert len(COMPONENT_DIRS) >= 7
    for folder in COMPONENT_DIRS:
        for part in ("core.py", "component.py", "README.md"):
            assert (folder / part).exists(), f"{folder.name} has no {part}"


def test_no_core_imports_kfp_and_data_cores_do_not_import_tensorflow():
    for folder in COMPONENT_DIRS:
        loaded = _modules_after_import(f"kfpc.components.{folder.name}.core")
        assert not {m for m in loaded if m == "kfp" or m.startswith("kfp.")}, f"{folder.name}/core.py imports kfp"
        if folder.name in NO_TENSORFLOW:
            assert "tensorflow" not in loaded, f"{folder.name}/core.py imports tensorflow"


def test_sharded_statistics_modules_stay_plain_python():
    # the shard planner, the accumulator wire format and the TF_CONFIG builder run in pods without kfp or TF
    for module in ("kfpc.components.statistics.shards", "kfpc.components.statistics.wire",
                   "kfpc.components.train.distribution"):
        loaded = _modules_after_import(module)
        assert not {m for m in loaded if m == "kfp" or m.startswith("kfp.")}, f"{module} imports kfp"
        assert "tensorflow" not in loaded, f"{module} imports tensorflow"


def test_every_python_package_is_listed_in_setup_cfg():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    mapping = {"components": "kfpc.components", "pipelines": "kfpc.pipelines", "serving": "kfpc.serving"}
    for top, package in mapping.items():
        for init in (ROOT / top).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / top)
            name = ".".join([package, *relative.parts]) if relative.parts else package
            assert name in listed, f"{name} ({init.parent}) is missing from setup.cfg [options] packages"
