"""Distribution and preemption, each in fresh interpreters: MirroredStrategy over two logical CPUs,
MultiWorkerMirroredStrategy with two workers on localhost ports (TF_CONFIG), kill-and-retry resume."""

import json
import socket
import time

import pytest

from kfpc.components import contract
from kfpc.components.train import core, distribution


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_mirrored_strategy_over_two_logical_cpus(penguins_dataset, tmp_path, worker):
    result = worker({
        "dataset": str(penguins_dataset), "model_dir": str(tmp_path / "model"), "label": "species", "logical_cpus": 2,
        "kwargs": {"strategy": "mirrored", "devices": ["/cpu:0", "/cpu:1"], "batch_size": 32, "epochs": 8,
                   "learning_rate": 0.01},
    })
    assert result["placement"]["strategy"] == "MirroredStrategy"
    assert len(result["placement"]["devices"]) == 2
    assert result["metrics"]["validation"]["accuracy"] >= 0.85, result
    card = contract.read_card(tmp_path / "model")
    assert card["training"]["strategy"] == "MirroredStrategy"


def test_multi_worker_mirrored_strategy_on_localhost(penguins_dataset, tmp_path, worker):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        args = {
            "dataset": str(penguins_dataset), "model_dir": str(tmp_path / f"model-{index}"), "label": "species",
            "kwargs": {"batch_size": 32, "epochs": 8, "learning_rate": 0.01,
                       "checkpoint_dir": str(tmp_path / "checkpoints")},
        }
        processes.append(worker(args, env={"TF_CONFIG": tf_config}, wait=False))
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-4000:]
        outputs.append(json.loads(stdout.strip().splitlines()[-1]))
    chief, other = outputs
    assert chief["placement"]["strategy"] == "MultiWorkerMirroredStrategy"
    assert chief["placement"]["num_workers"] == 2 and chief["placement"]["task"] == "worker:0"
    assert other["placement"]["task"] == "worker:1"
    # Workers all-reduce their gradients: one model, so the same metrics on both.
    assert chief["metrics"]["validation"] == pytest.approx(other["metrics"]["validation"])
    assert chief["metrics"]["validation"]["accuracy"] >= 0.85
    # Only the chief (worker 0) writes the model and the checkpoints.
    assert (tmp_path / "model-0" / "1" / "saved_model.pb").exists()
    assert not (tmp_path / "model-1").exists()
    assert json.loads((tmp_path / "checkpoints" / core.STATE_FILE).read_text())["epoch"] == chief["epochs"]


def test_killed_training_resumes_from_the_last_checkpoint(synthetic_dataset, tmp_path, worker):
    checkpoints = tmp_path / "checkpoints"
    args = {
        "dataset": str(synthetic_dataset), "model_dir": str(tmp_path / "model"), "label": "label",
        "kwargs": {"batch_size": 16, "epochs": 6, "patience": 0, "checkpoint_dir": str(checkpoints),
                   "categorical_features": ["code"]},
    }
    process = worker(args, wait=False)
    state_file = checkpoints / core.STATE_FILE
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 1:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed: " + process.communicate()[1][-2000:]
    process.kill()  # SIGKILL: what a preempted node does to the pod
    process.communicate()
    killed_at = json.loads(state_file.read_text())["epoch"]
    assert 1 <= killed_at < 6
    assert not (tmp_path / "model").exists(), "no model from a killed attempt"

    retried = worker(args)  # the retry: same arguments, same checkpoint folder
    assert retried["resumed_from_epoch"] == killed_at
    assert retried["epochs"] == 6
    history = json.loads(state_file.read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, 7)), "the epoch counter continues, no epoch repeats"
    training = contract.read_card(tmp_path / "model")["training"]
    assert training["resumed_from_epoch"] == killed_at
    # the retry validated on the same carved rows as the killed attempt
    assert training["validation_rows"] == retried["metrics"]["validation"]["rows"] == 400

    # A further retry after a successful export (killed before reporting success) returns the same model.
    again = worker(args)
    assert again["metrics"] == retried["metrics"]


def test_cluster_spec_from_vertex_is_translated():
    spec = {"cluster": {"workerpool0": ["cmle-training-workerpool0-0:2222"],
                        "workerpool1": ["w-0:2222", "w-1:2222"]},
            "task": {"type": "workerpool1", "index": 1}, "job": "{}"}
    config = distribution.cluster_from_environment({"CLUSTER_SPEC": json.dumps(spec)})
    assert config == {
        "cluster": {"chief": ["cmle-training-workerpool0-0:2222"], "worker": ["w-0:2222", "w-1:2222"]},
        "task": {"type": "worker", "index": 1},
    }
    assert distribution.cluster_from_environment({}) is None
    tf_config = {"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 0}}
    both = {"TF_CONFIG": json.dumps(tf_config), "CLUSTER_SPEC": json.dumps(spec)}
    assert distribution.cluster_from_environment(both)["cluster"] == {"worker": ["a:1"]}, "TF_CONFIG wins"
    with pytest.raises(distribution.DistributionError, match="TF_CONFIG"):
        distribution.cluster_from_environment({"TF_CONFIG": "{not json"})
    with pytest.raises(distribution.DistributionError, match="task"):
        distribution.cluster_from_environment({"TF_CONFIG": json.dumps({"cluster": {}})})


def test_no_gpu_in_an_image_built_for_one_says_so_and_trains_on_the_cpu(tmp_path, monkeypatch, caplog):
    """The tf-gpu image holds the CUDA wheels (``nvidia/*/lib``): with no GPU visible, the placement says why
    in one warning and falls back to the CPU; where the wheels are absent (the tf image) nothing is said."""
    assert distribution.cuda_libraries() == {}
    assert distribution.cpu_fallback_message() is None
    for package, library in (("cudnn", "libcudnn.so.9"), ("cublas", "libcublas.so.12")):
        folder = tmp_path / "nvidia" / package / "lib"
        folder.mkdir(parents=True)
        (folder / library).write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path))
    libraries = distribution.cuda_libraries()
    assert set(libraries) == {"libcudnn.so.9", "libcublas.so.12"}
    with caplog.at_level("WARNING", logger=distribution.__name__):
        placement = distribution.select_strategy("default", mixed_precision="auto")
    assert placement.devices == ["/cpu:0"] and not placement.mixed_precision
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and "no GPU is visible" in warned[0] and "libcublas.so.12" in warned[0], warned
