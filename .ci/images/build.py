"""Tooling for the family images: lock files, family environments, image builds and pushes, sizes.

Each family has one top-level file ``requirements-<family>.in`` and one lock ``requirements-<family>.txt``
(every package of the environment, ``name==version``, resolved against ``constraints-py311.txt``). The
lock is the single source: the Dockerfile installs it, and the container contract test and the size
benchmark build a *family environment* from it, installed the same way the image installs it
(``--no-deps`` from the lock, then the kfpc wheel), so what the tests run is what the image holds.

Run from a repository checkout::

    python .ci/images/build.py lock [FAMILY ...]      # re-resolve the lock files
    python .ci/images/build.py venv FAMILY            # build (or reuse) a family environment
    python .ci/images/build.py sizes                  # installed size per family
    python .ci/images/build.py base                   # the pinned base image of every Dockerfile
    python .ci/images/build.py finish LOCK ENV        # #prune directives + pip check (the deploy Dockerfile)
    python .ci/images/build.py build [--registry R]   # build every family image (Docker, else buildah)
    python .ci/images/build.py push --registry R      # push every family image

This is build tooling, not product code: it lives outside the installed package (``kfpc.components.images``
keeps only the image references that components name). The deploy Dockerfile copies this one file to run
``finish``; everything that runs there is standard library.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGES_DIR = REPO_ROOT / "components" / "images"
CONSTRAINTS = REPO_ROOT / "constraints-py311.txt"

#: families whose image runs pipeline tasks (the serving image runs the model server instead)
TASK_FAMILIES = ("data", "tf", "tf-gpu", "deploy")

#: packages that only the GPU image may hold: the CUDA/cuDNN wheels of tensorflow[and-cuda]
GPU_ONLY_PREFIX = "nvidia-"

#: what the kfpc wheel is built from (the Dockerfiles copy the same paths)
WHEEL_SOURCES = ("pyproject.toml", "setup.cfg", "README.md", "components", "pipelines", "serving")

#: what the image drops from its environment after installing it, as the Dockerfiles' shell command:
#: C/C++ headers (tensorflow/include alone is ~430 MB; they only serve compiling extensions, and the image
#: has no compiler) and packages' own test suites. family_venv runs the same command, so the contract
#: test proves nothing a task imports was removed.
PRUNE_COMMAND = (
    "find {site} -mindepth 2 -maxdepth 2 -type d -name include -prune -exec rm -rf {{}} + "
    "&& find {site} -type d -name tests -prune -exec rm -rf {{}} +"
)
#: the environment's site-packages inside the images
IMAGE_SITE_PACKAGES = "/opt/kfpc/lib/python3.11/site-packages"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*$")
#: ``#omit NAME: why`` / ``#prune FOLDER: why`` lines of a ``.in`` file, copied into the lock's header
_DIRECTIVE = re.compile(r"^#\s*(omit|prune)\s+([A-Za-z0-9][A-Za-z0-9._-]*)\s*:\s*(\S.*)$")
_DIRECTIVE_START = re.compile(r"^#\s*(omit|prune)\b")
#: a ``pip check`` line that reports a missing distribution (version conflicts look different)
_NOT_INSTALLED = re.compile(r"^(\S+) (\S+) requires ([A-Za-z0-9][A-Za-z0-9._-]*), which is not installed\.$")


class LockError(ValueError):
    """A requirements lock file is malformed or inconsistent; the message names the file and line."""


def canonical(name: str) -> str:
    """PEP 503 normalized package name (``PyYAML`` -> ``pyyaml``, ``ml_dtypes`` -> ``ml-dtypes``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def families() -> list[str]:
    """Every image family, in the order of ``kfpc.components.images.FAMILIES``."""
    from kfpc.components import images

    return list(images.FAMILIES)


def requirements_in(family: str) -> Path:
    """Path of the top-level requirements of ``family``."""
    return IMAGES_DIR / f"requirements-{family}.in"


def requirements_lock(family: str) -> Path:
    """Path of the lock file of ``family`` (what its Dockerfile installs)."""
    return IMAGES_DIR / f"requirements-{family}.txt"


def dockerfile(family: str) -> Path:
    """Path of the Dockerfile of ``family``."""
    return IMAGES_DIR / f"{family}.Dockerfile"


def read_lock(family_or_path: str | os.PathLike) -> dict[str, str]:
    """Parse a lock file into ``{canonical name: version}``.

    Args:
        family_or_path: a family name or the path of a lock file.
    Returns:
        The exact pins, by canonical package name.
    Raises:
        LockError: a line is not ``name==version`` (comments and blank lines aside) or a name repeats.
    """
    path = Path(family_or_path)
    if not path.suffix:
        path = requirements_lock(str(family_or_path))
    pins: dict[str, str] = {}
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        match = _PIN.match(line)
        if not match:
            raise LockError(f"{path}:{number}: expected an exact pin 'name==version', got {raw!r}")
        name = canonical(match.group(1))
        if name in pins:
            raise LockError(f"{path}:{number}: {name} is pinned twice")
        pins[name] = match.group(2)
    return pins


def read_directives(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """The ``#omit`` and ``#prune`` directives of a ``.in`` or lock file.

    ``#omit NAME: why`` leaves a distribution out of the lock although a locked package (or the kfpc wheel)
    declares it: only for packages that no task or command of the family imports, which the family's tests
    prove. ``#prune FOLDER: why`` deletes a top-level folder of ``site-packages`` after the install: a
    package shipped inside a needed wheel that nothing imports (``vertexai`` inside google-cloud-aiplatform).

    Returns:
        ``{"omit": {canonical name: why}, "prune": {folder: why}}``.
    Raises:
        LockError: a directive without a reason, or whose name is not a plain package or folder name.
    """
    found: dict[str, dict[str, str]] = {"omit": {}, "prune": {}}
    for number, raw in enumerate(Path(path).read_text().splitlines(), start=1):
        if not _DIRECTIVE_START.match(raw.strip()):
            continue
        match = _DIRECTIVE.match(raw.strip())
        if not match or match.group(2).endswith(".dist-info") or ".." in match.group(2):
            raise LockError(f"{path}:{number}: expected '#omit NAME: why' or '#prune FOLDER: why' (a top-level "
                            f"folder of site-packages), got {raw.strip()!r}")
        kind, name, why = match.groups()
        found[kind][canonical(name) if kind == "omit" else name] = why.strip()
    return found


def unexplained_pip_check(output: str, omitted: Iterable[str]) -> list[str]:
    """Lines of ``pip check`` output that the family's ``#omit`` directives do not explain.

    Only "X requires Y, which is not installed" for an omitted ``Y`` is explained; a version conflict
    never is.

    Args:
        output: what ``pip check`` printed.
        omitted: canonical names of the omitted distributions.
    Returns:
        The remaining problem lines (empty when the environment is consistent with its lock).
    """
    omitted = {canonical(name) for name in omitted}
    problems = []
    for line in output.splitlines():
        line = line.strip()
        if not line or line == "No broken requirements found.":
            continue
        match = _NOT_INSTALLED.match(line)
        if match and canonical(match.group(3)) in omitted:
            continue
        problems.append(line)
    return problems


def finish_environment(
    env: str | os.PathLike, lock_file: str | os.PathLike, pip: list[str] | None = None
) -> list[str]:
    """Apply the lock's ``#prune`` directives to an installed environment, then run ``pip check`` on it.

    The deploy Dockerfile (``build.py finish``) and :func:`family_venv` both call
    this, so the contract test runs in an environment finished like the image.

    Args:
        env: the environment (``/opt/kfpc`` in the images).
        lock_file: the family's lock (its header holds the directives).
        pip: the pip command that can inspect ``env`` (``--python`` is added); default: this interpreter's.
    Returns:
        The folders removed.
    Raises:
        LockError: a prune folder does not exist (the wheel's layout changed: re-check the directive), or
            ``pip check`` reports a problem that no ``#omit`` directive explains.
    """
    directives = read_directives(lock_file)
    site = next(Path(env).glob("lib/python3*/site-packages"))
    removed = []
    for folder in directives["prune"]:
        target = site / folder
        if not target.is_dir():
            raise LockError(f"{lock_file}: '#prune {folder}' but {target} is not a folder; re-check the directive")
        shutil.rmtree(target)
        removed.append(folder)
    command = list(pip or [sys.executable, "-m", "pip"]) + [
        "--python", str(venv_python(env)), "--disable-pip-version-check", "check"]
    result = subprocess.run(command, capture_output=True, text=True)
    problems = unexplained_pip_check(result.stdout + result.stderr, directives["omit"])
    if problems:
        raise LockError(f"pip check of {env} against {lock_file}:\n" + "\n".join(problems))
    return removed


def read_constraints(path: str | os.PathLike = CONSTRAINTS) -> dict[str, str]:
    """The dev lock (``pip freeze`` format) as ``{canonical name: version}``."""
    return read_lock(Path(path))


def lock(family: str, constraints: str | os.PathLike = CONSTRAINTS) -> Path:
    """Resolve ``requirements-<family>.in`` against ``constraints`` and write the lock file.

    The resolver runs as if in an empty environment (``--ignore-installed``) for this interpreter, so the
    lock is the full closure the image needs, at the versions the dev environment was tested with.

    Args:
        family: the family to lock.
        constraints: the dev lock whose versions every family must use.
    Returns:
        The path of the lock file written.
    """
    source = requirements_in(family)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
             "--disable-pip-version-check", "--report", str(report), "-c", str(constraints), "-r", source.name],
            cwd=IMAGES_DIR, check=True,
        )
        installs = json.loads(report.read_text())["install"]
    directives = read_directives(source)
    pins = sorted((canonical(i["metadata"]["name"]), i["metadata"]["version"]) for i in installs
                  if canonical(i["metadata"]["name"]) not in directives["omit"])
    header = (
        f"# Lock of {source.name}: every package of the {family} image, exact versions.\n"
        f"# Generated by `python .ci/images/build.py lock {family}` against constraints-py311.txt;\n"
        "# do not edit by hand. The Dockerfile and the container contract test both install this file\n"
        "# with --no-deps, then the kfpc wheel.\n"
    )
    if directives["omit"] or directives["prune"]:
        header += "# Directives of the .in file (build.py finish applies them and runs pip check):\n"
        header += "".join(f"#{kind} {name}: {why}\n" for kind in ("omit", "prune")
                          for name, why in directives[kind].items())
    target = requirements_lock(family)
    target.write_text(header + "".join(f"{name}=={version}\n" for name, version in pins))
    return target


def venv_family(family: str) -> str:
    """The family whose environment stands in for ``family`` on this machine.

    ``tf-gpu`` runs in the ``tf`` environment: its lock is the ``tf`` lock plus the CUDA wheels (a test
    holds that), which need a GPU to matter and are ~4.4 GB to install. ``KFPC_REAL_GPU_ENV=1`` (on a GPU
    machine, or where the cache already holds it) uses the real ``tf-gpu`` environment. Every other family
    is itself.
    """
    if family == "tf-gpu" and os.environ.get("KFPC_REAL_GPU_ENV") != "1":
        return "tf"
    return family


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "kfpc" / "family-venvs"


def _base_python() -> str:
    # A venv made from the dev venv's python would still be a venv of the base interpreter; name it directly.
    return getattr(sys, "_base_executable", None) or sys.executable


def venv_python(venv: str | os.PathLike) -> Path:
    """The interpreter of an environment built by :func:`family_venv`."""
    return Path(venv) / "bin" / "python"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def family_venv(family: str, cache_root: str | os.PathLike | None = None) -> Path:
    """Build, or reuse, the environment of ``family``: its lock file installed with ``--no-deps``.

    Built once per lock-file content and interpreter under
    ``${XDG_CACHE_HOME:-~/.cache}/kfpc/family-venvs/<family>-<hash>``; concurrent callers wait on a file
    lock instead of building twice. The kfpc wheel is not part of it (the code changes more often than
    the lock): see :func:`install_wheel`.

    Args:
        family: the family whose lock to install.
        cache_root: where environments live (default above).
    Returns:
        The environment's folder (``bin/python`` inside).
    """
    lock_file = requirements_lock(family)
    digest = hashlib.sha256(lock_file.read_bytes() + sys.version.encode() + PRUNE_COMMAND.encode()).hexdigest()[:12]
    root = Path(cache_root) if cache_root else _cache_root()
    venv = root / f"{family}-{digest}"
    marker = venv / ".kfpc-complete"
    if marker.exists():
        return venv
    with _file_lock(root / f".{family}-{digest}.lock"):
        if marker.exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that died half-way
        subprocess.run([_base_python(), "-m", "venv", "--without-pip", str(venv)], check=True)
        # The dev installer fills the bare environment from the lock alone (--no-deps), as the image's
        # builder stage does. uv when the dev environment has it: from a cold cache it builds the tf
        # environment in ~20 s where pip takes ~2 min, which keeps a fresh CI machine's test run short;
        # bytecode is compiled either way, as in the image.
        uv = shutil.which("uv", path=str(Path(sys.executable).parent))
        if uv:
            command = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", str(venv_python(venv)),
                       "--no-deps", "-r", str(lock_file)]
        else:
            command = [sys.executable, "-m", "pip", "--python", str(venv_python(venv)), "install", "--quiet",
                       "--disable-pip-version-check", "--no-deps", "-r", str(lock_file)]
        subprocess.run(command, check=True)
        site = next(venv.glob("lib/python3*/site-packages"))
        subprocess.run(["sh", "-c", PRUNE_COMMAND.format(site=site)], check=True)
        finish_environment(venv, lock_file)
        marker.write_text(json.dumps({"family": family, "lock": str(lock_file), "python": sys.version}))
    return venv


def build_wheel(out_dir: str | os.PathLike) -> Path:
    """Build the kfpc wheel from the repository checkout into ``out_dir``.

    The sources are copied to a scratch folder first: an in-tree build would leave ``build/`` and
    ``*.egg-info`` in the checkout, and two test sessions building at once would trip over each other.

    Returns:
        The wheel's path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist")
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "src"
        source.mkdir()
        for name in WHEEL_SOURCES:
            origin = REPO_ROOT / name
            if not origin.exists():
                continue  # e.g. a checkout without the top-level README
            if origin.is_dir():
                shutil.copytree(origin, source / name, ignore=skip)
            else:
                shutil.copy2(origin, source / name)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
             "--no-build-isolation", "-w", str(out_dir), str(source)],
            cwd=tmp, capture_output=True, text=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"building the kfpc wheel failed:\n{result.stdout}\n{result.stderr}")
    wheels = sorted(out_dir.glob("kfpc-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"no kfpc wheel was written to {out_dir}")
    return wheels[-1]


def install_wheel(venv: str | os.PathLike, wheel: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Install the kfpc wheel for ``venv``'s interpreter into ``target`` (put it on ``PYTHONPATH``).

    The family environment stays untouched (it is shared between runs); the wheel's files are the ones
    the image would hold in site-packages.

    Returns:
        ``target``.
    """
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv_python(venv)), "install", "--quiet",
         "--disable-pip-version-check", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
    )
    return Path(target)


def tree_size(path: str | os.PathLike) -> int:
    """Bytes of the regular files under ``path`` (each hard-linked file counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            key = (stat.st_dev, stat.st_ino)
            if key in seen or not os.path.isfile(os.path.join(folder, name)) or os.path.islink(
                os.path.join(folder, name)
            ):
                continue
            seen.add(key)
            total += stat.st_size
    return total


def installed_size(venv: str | os.PathLike) -> int:
    """Bytes the family's packages take in the environment (what the image adds to its Python base)."""
    return tree_size(venv)


def stdlib_size() -> int:
    """Bytes of the interpreter's standard library: a stand-in for the Python base image's share."""
    return tree_size(sysconfig.get_paths()["stdlib"])


_BASE_ARG = re.compile(r"^ARG PYTHON_IMAGE=(\S+)\s*$", re.MULTILINE)


def base_image(family: str | None = None) -> str:
    """The pinned base image the Dockerfiles name (``ARG PYTHON_IMAGE=...``).

    Args:
        family: one Dockerfile's base; by default every family's, which must agree.
    Raises:
        LockError: a Dockerfile has no ``ARG PYTHON_IMAGE`` or two families name different bases.
    """
    bases = {}
    for name in [family] if family else families():
        match = _BASE_ARG.search(dockerfile(name).read_text())
        if not match:
            raise LockError(f"{dockerfile(name)}: no 'ARG PYTHON_IMAGE=<image>:<exact tag>' line")
        bases[name] = match.group(1)
    if len(set(bases.values())) != 1:
        raise LockError(f"the Dockerfiles name different base images: {bases}")
    return next(iter(bases.values()))


# ---- builders: Docker/BuildKit where an engine runs, buildah (rootful, vfs, chroot) otherwise ----------------

#: the base made locally when the Dockerfiles' base cannot be pulled (no registry reachable): Debian bookworm's
#: python3.11 + venv + pip, and the `python` link (python-is-python3) that the Dockerfiles call
LOCAL_BASE = "localhost/kfpc-base:py3.11-bookworm"
LOCAL_BASE_PACKAGES = ("python3.11", "python3.11-venv", "python3-pip", "python-is-python3", "ca-certificates")


class BuildError(RuntimeError):
    """An image could not be built or no builder is available; the message says which and why."""


def builder() -> str | None:
    """The image builder of this machine: ``docker`` (an engine answers), ``buildah``, or None.

    ``KFPC_IMAGE_BUILDER`` forces one.
    """
    forced = os.environ.get("KFPC_IMAGE_BUILDER")
    if forced:
        return forced
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return "docker"
    if shutil.which("buildah"):
        return "buildah"
    return None


def buildah(*args: str) -> list[str]:
    """A buildah command line on the storage every kfpc call uses (vfs: works in unprivileged kernels'
    containers and nested sandboxes, where overlay may not; ``KFPC_BUILDAH_DRIVER`` overrides)."""
    return ["buildah", "--storage-driver", os.environ.get("KFPC_BUILDAH_DRIVER", "vfs"), *args]


def buildah_image_exists(reference: str) -> bool:
    """Whether ``reference`` is in the local buildah storage."""
    return subprocess.run(buildah("inspect", "--type", "image", reference), capture_output=True).returncode == 0


def bootstrap_local_base(tag: str = LOCAL_BASE) -> str:
    """Make (once) a Python 3.11 base image from Debian bookworm's packages with mmdebstrap; reuse it after.

    Returns:
        The local tag.
    Raises:
        BuildError: mmdebstrap is missing or fails.
    """
    if buildah_image_exists(tag):
        return tag
    if not shutil.which("mmdebstrap"):
        raise BuildError("the base image cannot be pulled and mmdebstrap is not installed to make one "
                         "(apt-get install mmdebstrap)")
    with tempfile.TemporaryDirectory(prefix="kfpc-base-") as tmp:
        rootfs = Path(tmp) / "rootfs.tar"
        subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase", "--include=" + ",".join(LOCAL_BASE_PACKAGES),
                        "bookworm", str(rootfs)], check=True)
        (Path(tmp) / "Containerfile").write_text('FROM scratch\nADD rootfs.tar /\nCMD ["python3"]\n')
        subprocess.run(buildah("bud", "--isolation", "chroot", "--quiet", "-t", tag, tmp), check=True,
                       stdout=subprocess.DEVNULL)
    return tag


def resolve_base(base: str | None = None, pull_timeout: float = 120.0) -> str:
    """The base image a buildah build uses: the Dockerfiles' own when present or pullable, else the local one.

    Prints what it chose when it falls back, so a build log says its base was made here.
    """
    base = base or base_image()
    if buildah_image_exists(base):
        return base
    if not buildah_image_exists(LOCAL_BASE):
        try:
            pulled = subprocess.run(buildah("pull", "--quiet", base), capture_output=True, text=True,
                                    timeout=pull_timeout)
            if pulled.returncode == 0:
                return base
        except subprocess.TimeoutExpired:
            pass
        print(f"base image {base} cannot be pulled here: bootstrapping {LOCAL_BASE} from Debian bookworm's "
              f"python3.11 with mmdebstrap (once; reused by later builds)", flush=True)
        bootstrap_local_base()
    else:
        print(f"base image {base} is not available here: using the local {LOCAL_BASE} (made with mmdebstrap)",
              flush=True)
    return LOCAL_BASE


def pip_settings_mounts() -> list[str]:
    """``-v`` options that give a build's pip this machine's package-index settings, read-only.

    The configuration files, the CA bundle named by ``PIP_CERT`` and local index folders they name
    (``file://`` indexes, find-links folders) are mounted at the same paths; nothing of it lands in a layer.
    """
    mounts: dict[str, str] = {}
    configs = {"/etc/pip.conf": "/etc/pip.conf"}
    user = os.environ.get("PIP_CONFIG_FILE") or os.path.expanduser("~/.config/pip/pip.conf")
    configs[user] = "/etc/xdg/pip/pip.conf"
    texts = []
    for source, target in configs.items():
        if os.path.isfile(source):
            mounts[source] = target
            texts.append(Path(source).read_text())
    texts += [v for k, v in os.environ.items() if k.startswith("PIP_")]
    cert = os.environ.get("PIP_CERT")
    if cert and os.path.isfile(cert):
        mounts[cert] = cert
    for found in re.findall(r"(?:file://)?(/[^\s,;]+)", "\n".join(texts)):
        found = found.rstrip("/")
        if found.endswith("/simple"):
            found = os.path.dirname(found)  # a file:// index's pages link to files beside simple/
        if os.path.isdir(found) and found not in ("", "/", "/etc", "/tmp", "/usr", "/opt"):
            mounts[found] = found
    return [f"-v={source}:{target}:ro" for source, target in mounts.items()]


def build_command(
    family: str, registry: str | None = None, docker: str = "docker", build_args: list[str] | None = None,
    tool: str = "docker", tag: str | None = None, extra: list[str] | None = None, layers: bool | None = None,
) -> list[str]:
    """The build command for one family image (run from the repository root).

    Args:
        family: the family to build.
        registry: registry for the tag instead of ``kfpc.components.images.registry()``.
        docker: the docker client to call.
        build_args: extra ``KEY=VALUE`` build arguments (e.g. ``PYTHON_IMAGE=python:...@sha256:...``).
        tool: ``docker`` or ``buildah``.
        tag: the tag instead of the release tag.
        extra: more options for the builder.
        layers: buildah only: keep every instruction's layer as a cache (the lock layer is then reused by the
            next build). Default: ``KFPC_BUILDAH_LAYERS=1``, else off: with vfs each cached layer is a full
            copy of the filesystem, which doubles a cold build's time and disk; without it each stage runs in
            one container and only the final image is committed.
    Returns:
        The argv list.
    """
    from kfpc.components import images

    file = str(dockerfile(family).relative_to(REPO_ROOT))
    tag = tag or images.image(family, registry)
    args = ["--build-arg", f"KFPC_VERSION={images.__version__}"]
    for item in build_args or []:
        args += ["--build-arg", item]
    if tool == "buildah":
        if layers is None:
            layers = os.environ.get("KFPC_BUILDAH_LAYERS") == "1"
        return buildah("bud", "--isolation", "chroot", f"--layers={str(layers).lower()}", "--file", file, "--ignorefile",
                       file + ".dockerignore", "--tag", tag, *pip_settings_mounts(), *args, *(extra or []), ".")
    return [docker, "build", "--file", file, "--tag", tag, *args, *(extra or []), "."]


def docker_build_command(
    family: str, registry: str | None = None, docker: str = "docker", build_args: list[str] | None = None
) -> list[str]:
    """The ``docker build`` command for one family image (see :func:`build_command`)."""
    return build_command(family, registry, docker, build_args)


def push_command(family: str, registry: str | None = None, docker: str = "docker", tool: str = "docker") -> list[str]:
    """The push command for one family image."""
    from kfpc.components import images

    if tool == "buildah":
        return buildah("push", images.image(family, registry), "docker://" + images.image(family, registry))
    return [docker, "push", images.image(family, registry)]


def docker_push_command(family: str, registry: str | None = None, docker: str = "docker") -> list[str]:
    """The ``docker push`` command for one family image."""
    return push_command(family, registry, docker)


def build_image(family: str, tag: str | None = None, registry: str | None = None,
                build_args: list[str] | None = None, log: str | os.PathLike | None = None,
                tool: str | None = None, extra: list[str] | None = None,
                context: str | os.PathLike | None = None, layers: bool | None = None) -> str:
    """Build one family image with this machine's builder; returns its tag.

    With buildah, the Dockerfiles' base is used when it is here or can be pulled, else the local
    mmdebstrap base (see :func:`resolve_base`), unless ``build_args`` sets ``PYTHON_IMAGE``.

    Args:
        extra: more builder options (``--no-cache`` for a cold build).
        context: another checkout to build from (same layout; the Dockerfile paths are relative to it).
    Raises:
        BuildError: no builder, or the build failed (the message holds the end of its log).
    """
    from kfpc.components import images

    tool = tool or builder()
    if tool is None:
        raise BuildError("no image builder: neither a Docker engine nor buildah (apt-get install buildah mmdebstrap)")
    build_args = list(build_args or [])
    if tool == "buildah" and not any(a.startswith("PYTHON_IMAGE=") for a in build_args):
        build_args.append(f"PYTHON_IMAGE={resolve_base()}")
    tag = tag or images.image(family, registry)
    command = build_command(family, registry, build_args=build_args, tool=tool, tag=tag, extra=extra, layers=layers)
    print("+ " + " ".join(command), flush=True)
    with open(log, "w") if log else contextlib.nullcontext() as out:
        result = subprocess.run(command, cwd=context or REPO_ROOT, stdout=out, stderr=subprocess.STDOUT if out else None)
    if result.returncode != 0:
        tail = Path(log).read_text()[-4000:] if log else ""
        raise BuildError(f"building the {family} image ({tag}) failed, exit code {result.returncode}"
                         + (f"; log {log}:\n{tail}" if log else ""))
    return tag


#: the check every built image must pass (run inside it, as its user): see smoke.py
SMOKE_SCRIPT = Path(__file__).resolve().parent / "smoke.py"
SMOKE_MOUNT = "/tmp/kfpc-smoke.py"
#: the image user of every family (the Dockerfiles' ``useradd --uid 10001 --gid 0``)
IMAGE_USER = "10001:0"


def smoke_command(family: str, image: str, tool: str = "docker", container: str | None = None,
                  docker: str = "docker") -> list[str]:
    """The command that runs ``smoke.py FAMILY`` inside ``image`` as the image user (buildah: in ``container``,
    a working container of the image)."""
    mount = f"{SMOKE_SCRIPT}:{SMOKE_MOUNT}:ro"
    if tool == "buildah":
        return buildah("run", "--isolation", "chroot", "--user", IMAGE_USER, "--volume", mount,
                       container or image, "--", "python3", SMOKE_MOUNT, family)
    return [docker, "run", "--rm", "--user", IMAGE_USER, "--volume", mount, "--entrypoint", "python3",
            "--network", "none", image, SMOKE_MOUNT, family]


def smoke_image(family: str, image: str, tool: str | None = None, log: str | os.PathLike | None = None) -> str:
    """Run the family's smoke check inside a built image; returns its output.

    Raises:
        BuildError: a check failed (the message holds the check's output).
    """
    tool = tool or builder()
    container = None
    if tool == "buildah":
        container = subprocess.run(buildah("from", "--pull-never", image), capture_output=True, text=True,
                                   check=True).stdout.split()[-1]
    try:
        result = subprocess.run(smoke_command(family, image, tool, container), capture_output=True, text=True,
                                timeout=600)
    finally:
        if container:
            subprocess.run(buildah("rm", container), capture_output=True)
    output = result.stdout + result.stderr
    if log:
        Path(log).write_text(output)
    if result.returncode != 0:
        raise BuildError(f"the {family} image ({image}) fails its smoke check (.ci/images/smoke.py), exit code "
                         f"{result.returncode}:\n{output[-4000:]}")
    return output


def _run_all(commands: list[list[str]], dry_run: bool) -> int:
    for command in commands:
        print("+ " + " ".join(command), flush=True)
        if not dry_run:
            result = subprocess.run(command, cwd=REPO_ROOT)
            if result.returncode != 0:
                return result.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line: ``lock``, ``venv``, ``sizes``, ``build``, ``push`` (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="build.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_lock = sub.add_parser("lock", help="re-resolve requirements-<family>.txt from requirements-<family>.in")
    p_lock.add_argument("families", nargs="*")
    p_venv = sub.add_parser("venv", help="build or reuse a family environment; prints its path")
    p_venv.add_argument("family")
    sub.add_parser("base", help="print the base image every Dockerfile names (for digest resolution)")
    p_finish = sub.add_parser("finish", help="apply a lock's #prune directives to an environment, then pip check")
    p_finish.add_argument("lock_file")
    p_finish.add_argument("env")
    p_finish.add_argument("--pip", default=None, help="pip command able to inspect ENV (default: this python's)")
    sub.add_parser("sizes", help="installed size of every family environment (builds them if needed)")
    for name in ("build", "push"):
        p = sub.add_parser(name, help=f"{name} every family image (or the ones named)")
        p.add_argument("families", nargs="*")
        p.add_argument("--registry", default=None, help="registry instead of the default (KFPC_IMAGE_REGISTRY)")
        p.add_argument("--docker", default=os.environ.get("DOCKER", "docker"))
        p.add_argument("--dry-run", action="store_true", help="print the commands only")
        p.add_argument("--builder", choices=["docker", "buildah"], default=None,
                       help="default: docker where an engine answers, else buildah")
        if name == "build":
            p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
            p.add_argument("--no-smoke", action="store_true",
                           help="do not run smoke.py inside each built image (it runs by default)")
    args = parser.parse_args(argv)

    if args.command == "lock":
        for family in args.families or families():
            print(lock(family))
        return 0
    if args.command == "venv":
        print(family_venv(args.family))
        return 0
    if args.command == "base":
        print(base_image())
        return 0
    if args.command == "finish":
        try:
            removed = finish_environment(args.env, args.lock_file, args.pip.split() if args.pip else None)
        except LockError as err:
            print(err, file=sys.stderr)
            return 1
        print(f"pruned {removed or 'nothing'}; pip check: consistent with {args.lock_file}")
        return 0
    if args.command == "sizes":
        for family in families():
            if family == "tf-gpu":
                continue  # the CUDA wheels are ~4 GB of downloads; sized from the lock by the benchmark
            print(f"{family}\t{installed_size(family_venv(family)) / 1e6:.0f} MB")
        return 0
    chosen = args.families or families()
    unknown = sorted(set(chosen) - set(families()))
    if unknown:
        parser.error(f"unknown families {unknown}; known: {families()}")
    tool = args.builder or ("docker" if args.dry_run else builder())
    if tool is None:
        print("no image builder: neither a Docker engine nor buildah here (apt-get install buildah mmdebstrap)",
              file=sys.stderr)
        return 2
    if args.command == "build":
        if tool == "buildah" and not args.dry_run:
            for family in chosen:
                started = time.monotonic()
                try:
                    tag = build_image(family, registry=args.registry, build_args=args.build_arg, tool=tool)
                    print(f"built {tag} with buildah in {time.monotonic() - started:.0f} s", flush=True)
                    if not args.no_smoke:
                        checked = smoke_image(family, tag, tool).splitlines()
                        print(next(line for line in checked if line.startswith("smoke ")), flush=True)
                except (BuildError, subprocess.CalledProcessError) as err:
                    print(err, file=sys.stderr)
                    return 1
            return 0
        commands = [build_command(f, args.registry, args.docker, args.build_arg, tool=tool) for f in chosen]
        if not args.no_smoke:
            from kfpc.components import images

            commands += [smoke_command(f, images.image(f, args.registry), tool, docker=args.docker) for f in chosen]
    else:
        commands = [push_command(f, args.registry, args.docker, tool=tool) for f in chosen]
    return _run_all(commands, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
