"""The image tier (``make test-images``): build the family images, run the shipped pipelines inside them.

Every task of ``training_pipeline`` and ``retraining_pipeline`` runs from its compiled YAML in the image the
YAML names, with ``buildah run`` as UID 10001: command and args exactly as compiled, the executor input with
the launcher's ``minio://`` URIs, artifacts on one volume shared by every task's container (the pipeline
passes data between containers), and nothing written in the image's own filesystem. Then the serving image's
entrypoint answers v1 and v2 requests from outside its container.

Skipped by ``make test`` (the tier takes minutes and GBs); ``make test-images`` sets ``KFPC_IMAGE_TIER=1``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import kfpc_image_build as build
import kfpc_image_contract as contract
import pytest

from kfpc.components import images

pytestmark = pytest.mark.images

#: the images the tier builds (tf-gpu: `make images` only; its tasks run in the tf image, whose lock is the
#: tf-gpu lock less the CUDA wheels, which test_images_files holds)
TIER_FAMILIES = ("data", "tf", "deploy", "serving")
FAST = {"epochs": 2, "bootstrap_samples": 0, "push_mode": "dry_run",
        "eval_config_json": '{"thresholds": [{"metric": "accuracy", "value_threshold": {"lower_bound": 0}}]}'}
THREADS = {"OMP_NUM_THREADS": "1", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
           "TF_CPP_MIN_LOG_LEVEL": "2"}


@pytest.fixture(scope="session")
def built_images(tmp_path_factory, tier_report) -> dict[str, str]:
    """Build the tier's images (buildah or Docker, whatever this machine has); map YAML image -> local tag."""
    logs = Path(os.environ.get("KFPC_IMAGE_LOGS") or tmp_path_factory.mktemp("build-logs"))
    logs.mkdir(parents=True, exist_ok=True)
    for family in TIER_FAMILIES:
        if os.environ.get("KFPC_IMAGE_TIER_REUSE") == "1" and build.buildah_image_exists(images.image(family)):
            # Developers only: run against the images `make images` built from this checkout (never in CI,
            # where a machine may hold images of another commit under the same tags).
            tier_report[f"build {family} (s)"] = "reused"
            continue
        started = time.monotonic()
        build.build_image(family, log=logs / f"{family}.log")
        tier_report[f"build {family} (s)"] = round(time.monotonic() - started, 1)
    return {images.TF_GPU: images.TF}


@pytest.fixture(scope="session")
def volume(tmp_path_factory) -> Path:
    """The artifact volume every task's container mounts at /minio/kfpc (writable by UID 10001)."""
    path = tmp_path_factory.mktemp("artifact-volume")
    path.chmod(0o777)
    return path


@pytest.mark.parametrize("family", TIER_FAMILIES)
def test_every_tier_image_passes_its_smoke_check_as_its_user(built_images, family):
    """What ``make images`` runs after each build (.ci/images/smoke.py): imports, plots, the server module."""
    output = build.smoke_image(family, images.image(family))
    assert f"smoke {family}: {len(build_smoke_checks(family))} checks passed" in output, output


def build_smoke_checks(family: str) -> list[str]:
    import kfpc_image_smoke

    return kfpc_image_smoke.CHECKS[family]


def _run(name: str, volume: Path, local_images: dict, arguments: dict, tier_report: dict):
    containers = contract.BuildahContainers(local_images)
    # The artifact volume is the pipeline root of every run: the retraining run reads the training run's files.
    runner = contract.ContractRunner(contract_yaml(name), volume, None, timeout=900, extra_env=THREADS,
                                     containers=containers)
    root = runner.spec.root.input_definitions.parameters
    started = time.monotonic()
    try:
        runner.run({k: v for k, v in arguments.items() if k in root})
    finally:
        containers.close()
        tier_report[f"{name} in images (s)"] = round(time.monotonic() - started, 1)
        tier_report[f"{name} tasks"] = [(r.name, r.status, r.family, round(r.seconds, 1)) for r in runner.runs]
    tasks = [r for r in runner.runs if r.kind == "container"]
    assert tasks and all(r.status in ("SUCCEEDED", "SKIPPED") for r in tasks), tier_report[f"{name} tasks"]
    named = {contract.image_family(e["container"]["image"]) for e in runner.executors.values() if "container" in e}
    assert named == {r.family for r in tasks if r.status == "SUCCEEDED"}, "a family image ran no task"
    return runner


def contract_yaml(name: str) -> Path:
    """The committed compiled YAML of a shipped pipeline (the KFP target)."""
    from kfpc.pipelines import compiler as kfpc_compiler

    return kfpc_compiler.COMPILED_DIR / "kfp" / f"{name}.yaml"


def _output(runner, name: str):
    return next(r.outputs[name] for r in runner.runs if name in r.outputs)


@pytest.fixture(scope="session")
def training_run(built_images, volume, tier_report):
    return _run("training_pipeline", volume, built_images, dict(FAST, serving_root="/minio/kfpc/serving"),
                tier_report)


def test_training_pipeline_runs_task_by_task_inside_its_images(training_run):
    ran = {r.name.rsplit("/", 1)[-1]: r for r in training_run.runs if r.status == "SUCCEEDED"}
    assert {"ingest", "statistics", "validate", "train", "evaluate", "push-kserve"} <= set(ran)
    assert ran["train"].image == images.TF_GPU and ran["evaluate"].image == images.TF
    assert (Path(_output(training_run, "model").path) / "1" / "saved_model.pb").exists()
    # The tf image has matplotlib: the cluster's evaluation report carries its plots.
    report = Path(ran["evaluate"].outputs["report"].path).read_text()
    assert "plots omitted" not in report and "data:image/png;base64," in report


def test_retraining_pipeline_runs_inside_its_images_on_the_trained_model(training_run, built_images, volume,
                                                                           penguins_csv, tier_report):
    for span in (1, 2):
        folder = volume / "spans" / f"span-{span}"
        folder.mkdir(parents=True)
        shutil.copy(penguins_csv, folder / "data.csv")
    on_volume = contract.BuildahContainers.container_path
    arguments = dict(FAST, source_pattern="/minio/kfpc/spans/span-{SPAN}/data.csv", label="species",
                     schema_uri=on_volume(_output(training_run, "schema").path, volume),
                     baseline_model_uri=on_volume(_output(training_run, "model").path, volume),
                     serving_root="/minio/kfpc/serving-retrain", model_name="penguins")
    runner = _run("retraining_pipeline", volume, built_images, arguments, tier_report)
    assert any(r.name.endswith("evaluate") and r.status == "SUCCEEDED" for r in runner.runs)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def test_serving_image_entrypoint_answers_v1_and_v2_from_outside(training_run, built_images, volume,
                                                                  penguins_csv, tmp_path):
    model = Path(_output(training_run, "model").path)
    port = _free_port()
    ctr = subprocess.run(build.buildah("from", "--pull-never", images.SERVING), capture_output=True, text=True,
                         check=True).stdout.split()[-1]
    log = open(tmp_path / "serving.log", "w")
    server = subprocess.Popen(
        build.buildah("run", "--isolation", "chroot", "--user", contract.TASK_USER, "-v", f"{model}:/mnt/models:ro",
                      ctr, "--", *contract.image_entrypoint(images.SERVING), "--model_dir", "/mnt/models",
                      "--model_name", "penguins", "--http_port", str(port), "--enable_grpc", "false"),
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while True:
            assert server.poll() is None, (tmp_path / "serving.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/models/penguins/ready", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, (tmp_path / "serving.log").read_text()[-3000:]
            time.sleep(2)
        with open(penguins_csv) as handle:
            row = next(r for r in csv.DictReader(handle) if "NA" not in r.values() and "" not in r.values())
        row.pop("species")
        typed = {k: (float(v) if k != "island" and k != "sex" else v) for k, v in row.items()}
        status, answer = _post(f"http://127.0.0.1:{port}/v1/models/penguins:predict", {"instances": [typed]})
        assert status == 200 and len(answer["predictions"]) == 1, answer
        inputs = [{"name": k, "shape": [1], "datatype": "BYTES" if isinstance(v, str) else "FP64", "data": [v]}
                  for k, v in typed.items()]
        status, answer = _post(f"http://127.0.0.1:{port}/v2/models/penguins/infer", {"inputs": inputs})
        assert status == 200 and answer["outputs"], answer
    finally:
        os.killpg(server.pid, 15)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, 9)
        log.close()
        subprocess.run(build.buildah("rm", ctr), capture_output=True)


def test_an_image_missing_a_locked_dependency_fails_the_tier(built_images, tmp_path):
    """The tier is a real check: the data image less one package of its lock (pyarrow) fails the first task
    that imports it, with a message naming the task, the image and the missing module."""
    assert "pyarrow" in build.read_lock("data")
    (tmp_path / "Containerfile").write_text(
        f"FROM {images.DATA}\nUSER 0\nRUN pip --python /opt/kfpc/bin/python uninstall --yes --quiet pyarrow\n"
        "USER 10001:0\n")
    broken = "localhost/kfpc-data:without-pyarrow"
    subprocess.run(build.buildah("bud", "--isolation", "chroot", "--quiet", "--tag", broken, str(tmp_path)),
                   check=True, capture_output=True)
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o777)
    containers = contract.BuildahContainers(dict(built_images, **{images.DATA: broken}))
    runner = contract.ContractRunner(contract_yaml("training_pipeline"), volume, None, extra_env=THREADS,
                                     containers=containers)
    try:
        with pytest.raises(contract.ContractError, match=r"(?s)failed in the data image.*No module named 'pyarrow'"):
            root = runner.spec.root.input_definitions.parameters
            runner.run({k: v for k, v in dict(FAST, serving_root="/minio/kfpc/serving").items() if k in root})
    finally:
        containers.close()
        subprocess.run(build.buildah("rmi", broken), capture_output=True)
    assert runner.runs[-1].status == "FAILED" and runner.runs[-1].family == "data"
