"""The image files themselves: lock files, Dockerfiles, lint, tags. Fast; no environment is built."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import kfpc_image_build as build
import pytest

from kfpc.components import images

FAMILIES = list(images.FAMILIES)

#: heavy dependencies and the only families allowed to hold them
HEAVY = {
    "tensorflow": {"tf", "tf-gpu", "serving"},
    "keras": {"tf", "tf-gpu", "serving"},
    "kserve": {"deploy", "serving"},
    "google-cloud-aiplatform": {"deploy"},
    "google-cloud-pipeline-components": {"deploy"},
    "kfp": {"data", "tf", "tf-gpu", "deploy"},
    "torch": set(),
    "jax": set(),
}
#: packages a lock may hold that ``pip freeze`` of the dev environment does not list
NOT_IN_DEV_FREEZE = {"pip", "setuptools", "wheel"}


def _from_lines(text: str) -> list[str]:
    return re.findall(r"^FROM\s+(.+)$", text, flags=re.MULTILINE)


def _stages(text: str) -> list[str]:
    return re.split(r"^FROM\s+.*$", text, flags=re.MULTILINE)[1:]


def _joined(text: str) -> str:
    return re.sub(r"\\\n", " ", text)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_its_files(family):
    for path in (build.requirements_in(family), build.requirements_lock(family), build.dockerfile(family)):
        assert path.is_file(), f"{family}: {path} is missing"


@pytest.mark.parametrize("family", FAMILIES)
def test_lock_is_exact_and_matches_the_dev_lock(family):
    pins = build.read_lock(family)
    dev = build.read_constraints()
    assert len(pins) > 10
    for name, version in pins.items():
        if name.startswith(build.GPU_ONLY_PREFIX) or name in NOT_IN_DEV_FREEZE:
            continue
        assert name in dev, f"requirements-{family}.txt pins {name}=={version}, which the dev lock does not hold"
        assert version == dev[name], f"requirements-{family}.txt: {name}=={version}, dev lock has {dev[name]}"


@pytest.mark.parametrize("family", FAMILIES)
def test_lock_holds_every_top_level_requirement(family):
    pins = build.read_lock(family)
    for raw in build.requirements_in(family).read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            included = build.IMAGES_DIR / line[3:].strip()
            assert included.exists(), f"{build.requirements_in(family)} includes missing {included}"
            continue
        name = build.canonical(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0])
        assert name in pins, f"requirements-{family}.in needs {name}; the lock does not pin it (run build.py lock)"


@pytest.mark.parametrize("family", FAMILIES)
def test_no_family_pulls_another_familys_heavy_dependencies(family):
    pins = build.read_lock(family)
    for package, allowed in HEAVY.items():
        if family not in allowed:
            assert package not in pins, f"the {family} image must not hold {package} (only {sorted(allowed)})"
    gpu = sorted(name for name in pins if name.startswith(build.GPU_ONLY_PREFIX))
    if family != "tf-gpu":
        assert not gpu, f"the {family} image must not hold CUDA wheels: {gpu}"


def test_gpu_lock_is_the_tf_lock_plus_cuda_wheels():
    # Why the contract test may run tf-gpu tasks in the tf environment: nothing else differs.
    tf, gpu = build.read_lock("tf"), build.read_lock("tf-gpu")
    cuda = {name: v for name, v in gpu.items() if name.startswith(build.GPU_ONLY_PREFIX)}
    assert {name: v for name, v in gpu.items() if name not in cuda} == tf
    assert {"nvidia-cudnn-cu12", "nvidia-cublas-cu12"} <= set(cuda)


def test_read_lock_rejects_loose_pins(tmp_path):
    bad = tmp_path / "requirements-x.txt"
    bad.write_text("numpy==2.4.6\npandas>=2\n")
    with pytest.raises(build.LockError, match=r"requirements-x.txt:2: .*'pandas>=2'"):
        build.read_lock(bad)
    bad.write_text("numpy==2.4.6\nNumPy==2.4.6\n")
    with pytest.raises(build.LockError, match="pinned twice"):
        build.read_lock(bad)


@pytest.mark.parametrize("family", FAMILIES)
def test_dockerfile_contract(family):
    text = build.dockerfile(family).read_text()
    joined = _joined(text)
    base = build.base_image(family)
    assert re.fullmatch(r"python:3\.11\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base), (
        f"{family}: base {base!r} is not an exact python:3.11.<patch>-slim-<debian> tag"
    )
    froms = _from_lines(text)
    assert len(froms) >= 2, f"{family}: not multi-stage"
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms), f"{family}: a stage is not on the pinned base"
    stages = _stages(joined)
    final = stages[-1]
    users = re.findall(r"^USER\s+(\S+)", final, flags=re.MULTILINE)
    assert users, f"{family}: the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"{family}: runs as {user}"
    assert f"COPY components/images/requirements-{family}.txt" in joined, f"{family}: does not install its lock"
    assert "--no-deps --requirement /tmp/requirements.txt" in joined
    assert "kfpc-*.whl" in joined, f"{family}: does not install the kfpc wheel"
    # The final stage only copies the environment: no pip runs there, no compilers or caches land there.
    assert "pip " not in final and "apt-get" not in final, f"{family}: the final stage installs things"
    assert "COPY --from=builder /opt/kfpc /opt/kfpc" in final
    # A compiler may run in the builder stage (the data image compiles the statistics' C kernels into the
    # kfpc wheel there, and then checks that they load); none lands in the final stage.
    for compiler in ("build-essential", "gcc", "g++", "clang"):
        assert not re.search(rf"\b{re.escape(compiler)}\b", final), f"{family}: installs {compiler}"
        if re.search(rf"\b{re.escape(compiler)}\b", stages[0]):
            assert "kernels.get()" in stages[0], f"{family}: compiles in its builder but never checks the result"
    assert "PIP_NO_CACHE_DIR=1" in joined
    # The same pruning as the family environments the contract test runs in.
    prune = build.PRUNE_COMMAND.format(site=build.IMAGE_SITE_PACKAGES)
    assert " ".join(prune.split()) in " ".join(stages[0].split()), f"{family}: not pruned like build.family_venv"
    assert f"/python{build.base_image().split(':')[1][:4]}/" in build.IMAGE_SITE_PACKAGES


@pytest.mark.parametrize("family", FAMILIES)
def test_dockerfile_copies_only_what_exists_and_is_not_ignored(family, repo_root):
    text = _joined(build.dockerfile(family).read_text())
    ignore = (build.IMAGES_DIR / f"{family}.Dockerfile.dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for line in re.findall(r"^COPY\s+(?!--from)(.+)$", text, flags=re.MULTILINE):
        sources = line.split()[:-1]
        for source in sources:
            assert (build.REPO_ROOT / source).exists(), f"{family}: COPY {source} does not exist"
            if source == ".":
                continue  # the context itself, as the .dockerignore limits it
            assert source.split("/")[0] in allowed or source in allowed, (
                f"{family}: COPY {source} is excluded by the .dockerignore")


def test_python_of_the_images_is_the_python_of_the_project():
    minor = re.match(r"python:(\d+\.\d+)\.", build.base_image()).group(1)
    assert minor == f"{sys.version_info.major}.{sys.version_info.minor}"
    config = configparser.ConfigParser()
    config.read(build.REPO_ROOT / "setup.cfg")
    assert f"<{minor[0]}.{int(minor[2:]) + 1}" in config["options"]["python_requires"]


def test_serving_image_runs_the_server():
    text = build.dockerfile("serving").read_text()
    # kfpc serve binds 127.0.0.1 by default; in the pod KServe reaches the predictor from outside it
    assert 'ENTRYPOINT ["python", "-m", "kfpc.serving", "--host", "0.0.0.0"]' in text
    # Task images must not set an entrypoint: KFP's command would be handed to it as arguments.
    for family in build.TASK_FAMILIES:
        assert "ENTRYPOINT" not in build.dockerfile(family).read_text()


def test_hadolint_passes_on_the_dockerfiles(linter, repo_root):
    dockerfiles = [str(build.dockerfile(f)) for f in FAMILIES]
    result = subprocess.run([linter("hadolint"), *dockerfiles], capture_output=True, text=True, cwd=repo_root)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_a_floating_root_dockerfile(linter, repo_root, tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install numpy\nUSER root\n")
    result = subprocess.run([linter("hadolint"), str(bad)], capture_output=True, text=True, cwd=repo_root)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3013", "DL3002"):  # latest tag, unpinned pip, root user
        assert rule in result.stdout, result.stdout


def test_actionlint_passes_and_catches_a_broken_workflow(linter, repo_root, tmp_path):
    result = subprocess.run([linter("actionlint"), ".github/workflows/images.yml"], capture_output=True,
                            text=True, cwd=repo_root)
    assert result.returncode == 0, result.stdout + result.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-24.04\n    steps:\n"
                      "      - run: echo ${{ github.event.nope.title }}\n        uses: actions/checkout@v5\n")
    result = subprocess.run([linter("actionlint"), str(broken)], capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.parametrize("registry", [None, "registry.internal:5000/mirror"])
def test_build_and_push_commands_tag_the_package_version(registry):
    for family in FAMILIES:
        command = build.docker_build_command(family, registry)
        tag = command[command.index("--tag") + 1]
        assert tag == images.image(family, registry)
        assert tag.endswith(f":{images.__version__}") and not tag.endswith(":latest")
        assert tag.startswith((registry or images.DEFAULT_REGISTRY) + "/")
        assert command[command.index("--file") + 1] == f"components/images/{family}.Dockerfile"
        assert build.docker_push_command(family, registry)[-1] == tag


def test_build_dry_run_prints_every_family(capsys):
    assert build.main(["build", "--dry-run", "--registry", "reg.example:5000/kfpc"]) == 0
    printed = capsys.readouterr().out
    for family in FAMILIES:
        assert f"reg.example:5000/kfpc/kfpc-{family}:{images.__version__}" in printed
        # Each built image is then checked from inside, as its user, with no network.
        smoke = next(line for line in printed.splitlines()
                     if line.endswith(f"kfpc-{family}:{images.__version__} /tmp/kfpc-smoke.py {family}"))
        assert "--user 10001:0" in smoke and "--network none" in smoke and "--entrypoint python3" in smoke
    assert build.main(["build", "--dry-run", "--no-smoke", "data"]) == 0
    assert "kfpc-smoke" not in capsys.readouterr().out


def test_the_smoke_check_knows_every_family_and_fails_loudly(capsys):
    import kfpc_image_smoke as smoke

    assert set(smoke.CHECKS) == set(FAMILIES)
    for checks in smoke.CHECKS.values():
        assert all(callable(getattr(smoke, f"check_{name}")) for name in checks)
    assert smoke.main(["nosuch"]) == 2
    # The dev environment has no CUDA wheels: the tf-gpu check of them must fail here, naming what is missing.
    assert smoke.main(["tf-gpu"]) == 1
    assert "FAILED cuda" in capsys.readouterr().err


# ---- #omit / #prune directives (the deploy lock's size budget) ------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_lock_carries_the_directives_of_its_in_file(family):
    source = build.read_directives(build.requirements_in(family))
    assert build.read_directives(build.requirements_lock(family)) == source, "run build.py lock"
    pins = build.read_lock(family)
    assert not set(source["omit"]) & set(pins), f"{family}: an #omit package is pinned"
    text = _joined(build.dockerfile(family).read_text())
    finish = ".ci/images/build.py finish /tmp/requirements.txt /opt/kfpc --pip pip"
    if source["omit"] or source["prune"]:
        assert finish in text, f"{family}: its lock has directives but the Dockerfile does not run build finish"
    else:
        assert finish in text or "pip --python /opt/kfpc/bin/python check" in text, f"{family}: no pip check"


def _declared_requirements(roots) -> set[str]:
    """Every distribution that ``roots`` declare, transitively, with the extras they ask for (dev metadata)."""
    import importlib.metadata

    from packaging.requirements import Requirement

    wanted: dict[str, set[str]] = {build.canonical(root): set() for root in roots}
    todo = list(wanted)
    seen: set[tuple[str, str]] = set()
    while todo:
        package = todo.pop()
        for extra in [""] + sorted(wanted[package]):
            if (package, extra) in seen:
                continue
            seen.add((package, extra))
            try:
                requirements = importlib.metadata.requires(package) or []
            except importlib.metadata.PackageNotFoundError:
                continue  # the CUDA wheels: not in the dev environment, and never omitted
            for text in requirements:
                requirement = Requirement(text)
                if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
                    continue
                name = build.canonical(requirement.name)
                if name not in wanted or not requirement.extras <= wanted[name]:
                    wanted.setdefault(name, set()).update(requirement.extras)
                    todo.append(name)
    return set(wanted)


@pytest.mark.parametrize("family", FAMILIES)
def test_every_omission_is_of_a_declared_requirement_and_every_prune_of_a_locked_wheel(family):
    import importlib.metadata

    directives = build.read_directives(build.requirements_lock(family))
    declared = _declared_requirements([*build.read_lock(family), "kfpc"])
    stale = sorted(set(directives["omit"]) - declared)
    assert not stale, f"{family}: #omit of packages nothing declares (drop the directive): {stale}"
    for folder in directives["prune"]:
        owners = [name for name in build.read_lock(family)
                  if any(str(f).split("/", 1)[0] == folder for f in importlib.metadata.files(name) or [])]
        assert owners, f"{family}: #prune {folder}: no locked distribution installs that folder"


def test_pip_check_lines_only_missing_omitted_packages_are_explained():
    output = (
        "google-cloud-aiplatform 1.165.1 requires google-genai, which is not installed.\n"
        "kserve 0.21.0 requires Pillow, which is not installed.\n"
        "kserve 0.21.0 requires grpcio-tools, which is not installed.\n"
        "kfp 2.17.0 has requirement protobuf<7,>=6.31, but you have protobuf 5.29.0.\n"
    )
    problems = build.unexplained_pip_check(output, ["google-genai", "pillow"])
    assert problems == [
        "kserve 0.21.0 requires grpcio-tools, which is not installed.",
        "kfp 2.17.0 has requirement protobuf<7,>=6.31, but you have protobuf 5.29.0.",
    ]
    assert build.unexplained_pip_check("No broken requirements found.\n", []) == []


def test_finish_prunes_the_folders_and_refuses_a_stale_directive(tmp_path):
    env = tmp_path / "env"
    subprocess.run([build._base_python(), "-m", "venv", "--without-pip", str(env)], check=True)
    site = next(env.glob("lib/python3*/site-packages"))
    (site / "unused_sdk" / "sub").mkdir(parents=True)
    (site / "kept").mkdir()
    lock = tmp_path / "requirements-x.txt"
    lock.write_text("#prune unused_sdk: nothing imports it\n#omit pillow: not imported\nsix==1.17.0\n")
    assert build.finish_environment(env, lock) == ["unused_sdk"]
    assert not (site / "unused_sdk").exists() and (site / "kept").is_dir()
    with pytest.raises(build.LockError, match=r"'#prune unused_sdk' but .* is not a folder"):
        build.finish_environment(env, lock)
    bad = tmp_path / "requirements-y.txt"
    for line in ("#prune ../etc: no", "#prune six-1.17.0.dist-info: no", "#omit pillow", "#prune a/b: no"):
        bad.write_text(line + "\n")
        with pytest.raises(build.LockError, match=r"requirements-y.txt:1: "):
            build.read_directives(bad)


def test_serving_image_holds_the_serving_extra(repo_root):
    # what `pip install kfpc[serving]` needs, the serving image must hold too (msgspec came this way)
    config = configparser.ConfigParser()
    config.read(Path(repo_root) / "setup.cfg")
    extra = [build.canonical(re.split(r"[\[<>=!~; ]", line.strip(), maxsplit=1)[0])
             for line in config["options.extras_require"]["serving"].splitlines() if line.strip()]
    pins = build.read_lock("serving")
    assert "msgspec" in extra
    assert [name for name in extra if name not in pins] == []
