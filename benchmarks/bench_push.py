"""Benchmark of push: versioned copies, manifest rendering and a rollout's API round trips.

* copy: ``storage.push_model`` (claim + SHA-256 digest + copy + atomic moves) against the floor, a bare
  ``shutil.copytree`` of the same folder, for models of several sizes (one large variables shard plus many
  small files, like a SavedModel with a vocabulary).
* render: ``manifest.render`` of an InferenceService through the kserve SDK objects, per manifest.
* rollout: a create and a canary+promote through the real kubernetes client against the fake API server
  used by the tests (127.0.0.1), counting requests and time with polling at 10 ms.

    .venv/bin/python benchmarks/bench_push.py [--quick]

Writes ``benchmarks/results/push.json`` and ``benchmarks/results/push.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "tests" / "push"))


def make_model(path: Path, megabytes: int, small_files: int = 200) -> Path:
    """A contract-shaped model folder of about ``megabytes`` MB (random bytes: incompressible)."""
    (path / "1" / "variables").mkdir(parents=True)
    (path / "1" / "assets").mkdir()
    with open(path / "1" / "variables" / "variables.data-00000-of-00001", "wb") as handle:
        for _ in range(megabytes):
            handle.write(os.urandom(1 << 20))
    (path / "1" / "variables" / "variables.index").write_bytes(os.urandom(4096))
    for i in range(small_files):
        (path / "1" / "assets" / f"vocab_{i}.txt").write_bytes(os.urandom(2048))
    (path / "1" / "saved_model.pb").write_bytes(os.urandom(200_000))
    (path / "model_card.json").write_text(json.dumps({"task": "binary", "features": []}))
    return path


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _copy_row(size: int, repeats: int) -> dict:
    from kfpc.components.push import storage

    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        model = make_model(tmp / "model", size)
        counter = iter(range(10_000))
        floor_s = best_of(lambda: shutil.copytree(model, tmp / "floor" / str(next(counter))), repeats)
        push_s = best_of(lambda: storage.push_model(model, str(tmp / "serving"), "m"), repeats)
        digest_s = best_of(lambda: storage.model_digest(model), repeats)
    print(f"copy {size:>5} MB: copytree {floor_s:.3f}s  push_model {push_s:.3f}s  (digest {digest_s:.3f}s)")
    return {
        "model_mb": size,
        "copytree_s": round(floor_s, 4),
        "push_model_s": round(push_s, 4),
        "digest_s": round(digest_s, 4),
        "push_mb_per_s": round(size / push_s, 1),
        "overhead_x": round(push_s / floor_s, 2),
    }


def bench_copy(sizes: list[int], repeats: int) -> list[dict]:
    return [_copy_row(size, repeats) for size in sizes]


def bench_render(count: int) -> dict:
    from kfpc.components.push import manifest

    opts = manifest.ServingOptions(name="penguins", namespace="ml", gpu=1, deployment_mode="Knative")
    manifest.render(opts, "gs://m/v0")  # imports
    start = time.perf_counter()
    for i in range(count):
        manifest.render(opts, f"gs://m/v{i}")
    per = (time.perf_counter() - start) / count
    print(f"render: {per * 1000:.3f} ms per InferenceService")
    return {"render_ms": round(per * 1000, 3), "count": count}


def bench_rollout(repeats: int) -> dict:
    import jsonschema
    import yaml
    from fake_kube import FakeKube

    from kfpc.components.push import kube, manifest, rollout

    crd = yaml.load(open(ROOT / "tests" / "push" / "data" / "kserve" / "serving.kserve.io_inferenceservices.yaml"),
                    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    validator = jsonschema.Draft7Validator(schema)
    create_s, canary_s, requests_create, requests_canary = [], [], 0, 0
    for _ in range(repeats):
        with FakeKube(schema, validator) as server:
            client = kube.IsvcClient.for_host(server.url)
            opts = manifest.ServingOptions(name="penguins", namespace="ml", deployment_mode="Standard")
            start = time.perf_counter()
            rollout.rollout(client, manifest.render(opts, "gs://m/v1"), opts, timeout_s=10, poll_s=0.01)
            create_s.append(time.perf_counter() - start)
            requests_create = len(server.requests)
            start = time.perf_counter()
            rollout.rollout(client, manifest.render(opts, "gs://m/v2"), opts, canary_traffic_percent=10,
                            promote=True, timeout_s=10, poll_s=0.01)
            canary_s.append(time.perf_counter() - start)
            requests_canary = len(server.requests) - requests_create
    result = {
        "create_ms_median": round(statistics.median(create_s) * 1000, 2),
        "create_requests": requests_create,
        "canary_promote_ms_median": round(statistics.median(canary_s) * 1000, 2),
        "canary_promote_requests": requests_canary,
    }
    print(f"rollout: create {result['create_ms_median']} ms ({requests_create} requests), canary+promote "
          f"{result['canary_promote_ms_median']} ms ({requests_canary} requests)")
    return result


def plot(copy_rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = [r["model_mb"] for r in copy_rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [r["copytree_s"] for r in copy_rows], "o-", label="shutil.copytree (floor)")
    ax.plot(sizes, [r["push_model_s"] for r in copy_rows], "s-", label="push_model (claim + digest + copy)")
    ax.plot(sizes, [r["digest_s"] for r in copy_rows], "^--", label="SHA-256 digest alone")
    ax.set_xlabel("model size (MB)")
    ax.set_ylabel("seconds (best of runs)")
    ax.set_title("push: versioned local copy")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, fewer repeats")
    args = parser.parse_args(argv)
    sizes = [1, 10, 50] if args.quick else [1, 10, 100, 500]
    repeats = 2 if args.quick else 3
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "quick": args.quick,
        "copy": bench_copy(sizes, repeats),
        "render": bench_render(50 if args.quick else 500),
        "rollout": bench_rollout(3 if args.quick else 10),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "push.json").write_text(json.dumps(results, indent=2))
    plot(results["copy"], RESULTS / "push.png")
    print(f"wrote {RESULTS / 'push.json'} and {RESULTS / 'push.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
