"""Size budget of the family images: the built images (size compressed and unpacked, layers, build time
cold and with the lock layer cached) and the installed size of each family environment, next to TFX's image.

The built-image section needs a builder (Docker is not measured here; buildah, as the image tier uses it):
cold = ``--no-cache`` from the base image with every layer kept (``--layers``, so that the next build can
reuse them); cached = a rebuild after a change of kfpc's code (a copy of the checkout with one source file
edited), which reuses the lock layer; ``build_no_layer_cache_seconds`` (``--existing``, from the image tier's
report) = the build ``make images`` and the tier run, without layer caching (vfs copies each kept layer). Compressed = the image pushed to an
OCI archive with gzip layers (what a registry stores and a node pulls); unpacked = the container's root
filesystem on disk; layers = the image's layer count.

The environment of a family is its lock file installed with --no-deps into an empty virtual environment,
exactly what the image's builder stage copies into the final stage, so its size on disk is the proxy for
what each image adds on top of its Python base image (the issue's measure; no Docker engine here).

    .venv/bin/python benchmarks/bench_images.py [--quick]

--quick measures the families whose environments are cached or cheap (data, tf, deploy, serving); the
full run also builds the tf-gpu environment (the CUDA wheels: several GB of downloads).
Writes benchmarks/results/images.json and benchmarks/results/images.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from kfpc.components import images

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".ci" / "images"))
import build  # noqa: E402 - the image tooling lives outside the package

RESULTS = Path(__file__).resolve().parent / "results"
#: the TFX image users complain about (the issue's figure), for comparison
TFX_IMAGE_GB = 12.3
#: goals from the issue, in GB (decimal)
GOALS_GB = {"data": 0.5, "deploy": 0.4, "tf": 2.5}


def top_entries(venv: Path, count: int = 6) -> list[tuple[str, int]]:
    """The largest top-level entries of the environment's site-packages, as (name, bytes)."""
    site = next(venv.glob("lib/python3*/site-packages"))
    sizes = [(entry.name, build.tree_size(entry) if entry.is_dir() else entry.stat().st_size)
             for entry in site.iterdir() if not entry.name.endswith(".dist-info")]
    return sorted(sizes, key=lambda item: -item[1])[:count]


def pyc_bytes(venv: Path) -> int:
    """Bytes of compiled bytecode in the environment (kept: without it every task start recompiles)."""
    return sum(path.stat().st_size for path in venv.rglob("*.pyc"))


#: what a deploy task or command imports first; timed with and without the environment's bytecode
BYTECODE_PROBES = {
    "kfp executor": "import kfp.dsl.executor_main",
    "push_kserve (kserve SDK)": "import kserve",
    "push_vertex / submit --vertex (aiplatform)": "from google.cloud import aiplatform",
}


def kfpc_wheel_bytes() -> int:
    """Bytes the kfpc wheel adds once installed (with its bytecode), as every image installs it."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        wheel = build.build_wheel(Path(tmp) / "wheel")
        site = build.install_wheel(build.family_venv("data"), wheel, Path(tmp) / "site")
        return build.tree_size(site)


def bytecode_tradeoff(family: str, repeats: int) -> dict:
    """Import seconds of the family's entry points with its .pyc files, and as if they had been stripped.

    "Stripped" runs with ``-X pycache_prefix`` pointing at an empty folder and ``PYTHONDONTWRITEBYTECODE=1``:
    the interpreter then finds no bytecode and compiles every module at each start, as in an image without
    .pyc files (its user cannot write them either). Median of ``repeats`` runs each.
    """
    import statistics
    import subprocess
    import tempfile

    python = str(build.venv_python(build.family_venv(family)))
    env = {"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1"}
    rows = []
    with tempfile.TemporaryDirectory() as empty:
        for label, code in BYTECODE_PROBES.items():
            seconds = {}
            for mode, extra in (("with_pyc", []), ("without_pyc", ["-X", f"pycache_prefix={empty}"])):
                runs = []
                for _ in range(repeats):
                    started = time.monotonic()
                    subprocess.run([python, *extra, "-c", code], env=env, check=True)
                    runs.append(time.monotonic() - started)
                seconds[mode] = round(statistics.median(runs), 2)
            rows.append({"entry": label, "code": code, **seconds})
    return {"family": family, "repeats": repeats, "imports": rows}


def measure(family: str) -> dict:
    """Build (or reuse) the family environment and measure it."""
    started = time.monotonic()
    venv = build.family_venv(family)
    seconds = time.monotonic() - started
    size = build.installed_size(venv)
    goal = GOALS_GB.get(family)
    directives = build.read_directives(build.requirements_lock(family))
    return {
        "family": family,
        "image": images.image(family),
        "packages": len(build.read_lock(family)),
        "installed_bytes": size,
        "installed_gb": round(size / 1e9, 3),
        "goal_gb": goal,
        "within_goal": None if goal is None else size / 1e9 < goal,
        "share_of_tfx_image": round(size / 1e9 / TFX_IMAGE_GB, 3),
        "environment_seconds": round(seconds, 1),
        "largest": [{"name": n, "mb": round(b / 1e6, 1)} for n, b in top_entries(venv)],
        # what the lock leaves out / the environment deletes to meet the goal (see requirements-<family>.in)
        "omitted": sorted(directives["omit"]),
        "pruned": sorted(directives["prune"]),
        "pyc_mb": round(pyc_bytes(venv) / 1e6, 1),
    }


#: GCPC's launcher image, for comparison: its size is not measured here (no registry reachable from this
#: machine kind); compare by pulling it where a registry is reachable (`docker image inspect`)
GCPC_IMAGE = "gcr.io/ml-pipeline/google-cloud-pipeline-components:2.22.0"


def built_image_facts(tag: str, scratch: Path) -> dict:
    """Compressed and unpacked bytes and layer count of a local image (buildah storage)."""
    import subprocess

    shown = json.loads(subprocess.run(build.buildah("inspect", "--type", "image", tag), capture_output=True,
                                      text=True, check=True).stdout)
    layers = len(shown["OCIv1"]["rootfs"]["diff_ids"])
    archive = scratch / "image.tar"
    subprocess.run(build.buildah("push", "--quiet", "--compression-format", "gzip", tag, f"oci-archive:{archive}"),
                   check=True, capture_output=True)
    compressed = archive.stat().st_size
    archive.unlink()
    ctr = subprocess.run(build.buildah("from", "--pull-never", tag), capture_output=True, text=True,
                         check=True).stdout.split()[-1]
    try:
        root = subprocess.run(build.buildah("mount", ctr), capture_output=True, text=True, check=True).stdout.strip()
        unpacked = build.tree_size(root)
    finally:
        subprocess.run(build.buildah("rm", ctr), capture_output=True)
    return {"layers": layers, "compressed_bytes": compressed, "compressed_gb": round(compressed / 1e9, 3),
            "unpacked_bytes": unpacked, "unpacked_gb": round(unpacked / 1e9, 3),
            "compressed_share_of_tfx": round(compressed / 1e9 / TFX_IMAGE_GB, 3)}


def measure_built(family: str, scratch: Path) -> dict:
    """Build ``family`` cold, then again after a code change (lock layer cached); measure the image."""
    import shutil

    tag = f"localhost/kfpc-bench-{family}:cold"
    started = time.monotonic()
    build.build_image(family, tag=tag, extra=["--no-cache"], log=scratch / f"{family}-cold.log", layers=True)
    cold = time.monotonic() - started
    context = scratch / "checkout"
    shutil.rmtree(context, ignore_errors=True)
    context.mkdir(parents=True)
    for name in build.WHEEL_SOURCES + (".ci",):
        source = build.REPO_ROOT / name
        if source.is_dir():
            shutil.copytree(source, context / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.exists():
            shutil.copy2(source, context / name)
    with open(context / "components" / "__init__.py", "a") as handle:
        handle.write(f"\n# bench: a code change ({time.time()})\n")
    started = time.monotonic()
    build.build_image(family, tag=f"localhost/kfpc-bench-{family}:cached", context=context,
                      log=scratch / f"{family}-cached.log", layers=True)
    cached = time.monotonic() - started
    facts = built_image_facts(tag, scratch)
    for suffix in ("cold", "cached"):
        import subprocess

        subprocess.run(build.buildah("rmi", f"localhost/kfpc-bench-{family}:{suffix}"), capture_output=True)
    return {"family": family, "builder": "buildah (vfs, chroot)", "build_cold_seconds": round(cold, 1),
            "build_lock_cached_seconds": round(cached, 1), **facts}


def plot(rows: list[dict], path: Path) -> None:
    """Horizontal bars: each family's size, its goal, and the TFX image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"kfpc-{r['family']}" for r in rows] + ["TFX image"]
    values = [r["installed_gb"] for r in rows] + [TFX_IMAGE_GB]
    colors = ["tab:green" if r["within_goal"] in (True, None) else "tab:red" for r in rows] + ["tab:gray"]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(labels) + 1.2))
    bars = ax.barh(labels, values, color=colors)
    for bar, value in zip(bars, values, strict=True):
        ax.text(bar.get_width() + 0.1, bar.get_y() + bar.get_height() / 2, f"{value:.2f} GB", va="center")
    for i, row in enumerate(rows):
        if row["goal_gb"]:
            ax.plot([row["goal_gb"]] * 2, [i - 0.4, i + 0.4], color="black", linestyle="--")
    ax.invert_yaxis()
    ax.set_xlabel("GB installed on top of the Python base image (dashed: goal)")
    ax.set_title("kfpc family images vs the TFX image")
    ax.set_xlim(0, TFX_IMAGE_GB * 1.15)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Measure, print, write JSON and PNG. Goals are reported (JSON ``within_goal``), not enforced."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the tf-gpu environment")
    parser.add_argument("--built", nargs="*", default=None, metavar="FAMILY",
                        help="build and measure these images (default with a builder: data tf deploy serving)")
    parser.add_argument("--existing", action="store_true",
                        help="measure the release-tag images already built (make images / the image tier) "
                             "instead of building: sizes and layers only, build times from --tier-report")
    parser.add_argument("--tier-report", default=None, help="the JSON the image tier wrote (KFPC_IMAGE_TIER_REPORT)")
    parser.add_argument("--images-only", action="store_true", help="skip the family-environment section")
    args = parser.parse_args(argv)
    built = []
    if args.existing:
        import tempfile

        tier = json.loads(Path(args.tier_report).read_text()) if args.tier_report else {}
        with tempfile.TemporaryDirectory(prefix="kfpc-bench-images-") as scratch:
            for family in args.built or ["data", "tf", "deploy", "serving"]:
                if not build.buildah_image_exists(images.image(family)):
                    continue
                row = {"family": family, "builder": "buildah (vfs, chroot)",
                       "build_no_layer_cache_seconds": tier.get(f"build {family} (s)"),
                       **built_image_facts(images.image(family), Path(scratch))}
                built.append(row)
                print(f"{family:8} image: {row['compressed_gb']:.2f} GB compressed, {row['unpacked_gb']:.2f} GB "
                      f"unpacked, {row['layers']} layers", flush=True)
    elif build.builder() == "buildah":
        import tempfile

        chosen = args.built if args.built else ["data", "tf", "deploy", "serving"]
        with tempfile.TemporaryDirectory(prefix="kfpc-bench-images-") as scratch:
            for family in chosen:
                row = measure_built(family, Path(scratch))
                built.append(row)
                print(f"{family:8} image: {row['compressed_gb']:.2f} GB compressed, {row['unpacked_gb']:.2f} GB "
                      f"unpacked, {row['layers']} layers; build {row['build_cold_seconds']:.0f} s cold, "
                      f"{row['build_lock_cached_seconds']:.0f} s with the lock layer cached", flush=True)
    else:
        print("no buildah here: the built-image section is left out (sizes of the family environments only)")
    families = [f for f in images.FAMILIES if not (args.quick and f == "tf-gpu")]
    if args.images_only:
        families = []
    rows = []
    for family in families:
        row = measure(family)
        rows.append(row)
        verdict = {True: "within goal", False: "OVER GOAL", None: "no goal"}[row["within_goal"]]
        print(f"{family:8} {row['installed_gb']:6.2f} GB  goal {row['goal_gb'] or '-'} ({verdict}), "
              f"{row['share_of_tfx_image']:.0%} of TFX's {TFX_IMAGE_GB} GB", flush=True)
    if args.images_only:
        # Only the built-image section changes; the family-environment figures of the last full run stay.
        target = RESULTS / "images.json"
        result = json.loads(target.read_text()) if target.exists() else {"benchmark": "images"}
        # Merged by family: a run that measures some images keeps the figures of the others, and a figure this
        # run did not take (build time with the lock layer cached, from --existing) keeps its last measurement.
        machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average": os.getloadavg()}
        rows = {row["family"]: row for row in result.get("built_images", [])}
        for row in built:
            kept = rows.get(row["family"], {})
            merged = {**kept, **{k: v for k, v in row.items() if v is not None or k not in kept}}
            merged["measured_on"] = machine
            rows[row["family"]] = merged
        result["built_images"] = [rows[f] for f in images.FAMILIES if f in rows]
        result["gcpc_image"] = {"image": GCPC_IMAGE, "size_gb": None,
                                "note": "not measured: no container registry is reachable from this machine kind"}
        result["built_images_machine"] = {"platform": platform.platform(), "cpus": os.cpu_count(),
                                          "load_average": os.getloadavg()}
        RESULTS.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {target} (built_images)")
        return 0
    wheel = kfpc_wheel_bytes()
    for row in rows:
        # The image also holds the kfpc wheel (pure Python, the same in every family): the figure to hold
        # against the goal once the code is in.
        row["with_kfpc_gb"] = round((row["installed_bytes"] + wheel) / 1e9, 3)
        row["with_kfpc_within_goal"] = None if row["goal_gb"] is None else row["with_kfpc_gb"] < row["goal_gb"]
    print(f"kfpc wheel installed: {wheel / 1e6:.1f} MB; deploy with it: "
          f"{next(r['with_kfpc_gb'] for r in rows if r['family'] == 'deploy'):.3f} GB", flush=True)
    tradeoff = bytecode_tradeoff("deploy", repeats=1 if args.quick else 3)
    for row in tradeoff["imports"]:
        print(f"deploy: {row['entry']}: {row['with_pyc']:.2f} s with .pyc, {row['without_pyc']:.2f} s without",
              flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "images",
        "measure": "built_images: the images themselves (compressed = OCI archive with gzip layers, unpacked = "
                   "root filesystem, layers, build seconds cold and with the lock layer cached); families: "
                   "installed size of each family environment (lock file, --no-deps) = what the image adds to "
                   "its Python base",
        "base_image": build.base_image(),
        "python_stdlib_bytes": build.stdlib_size(),
        "tfx_image_gb": TFX_IMAGE_GB,
        "quick": args.quick,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()},
        "kfpc_wheel_bytes": wheel,
        "families": rows,
        "built_images": built,
        "gcpc_image": {"image": GCPC_IMAGE, "size_gb": None,
                       "note": "not measured: no container registry is reachable from this machine kind"},
        "bytecode": tradeoff,
    }
    (RESULTS / "images.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(rows, RESULTS / "images.png")
    print(f"wrote {RESULTS / 'images.json'} and {RESULTS / 'images.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
