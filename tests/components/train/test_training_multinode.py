"""Multi-node training: the one TF_CONFIG builder (JobSet env, Vertex CLUSTER_SPEC, local), two local worker
processes through the TrainJob entrypoint exporting one SavedModel, manifests checked with the TrainJob and
ClusterTrainingRuntime models of Kubeflow's Trainer SDK, the Vertex worker-pool request field by field, the
launcher's wait loop."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubeflow.trainer.constants import constants as sdk
from kubeflow_trainer_api import models

from kfpc.components.contract import read_card
from kfpc.components.train import distribution, trainjob, vertex_pools
from tests.k8s_models import ManifestError, check, check_kubernetes

MANIFESTS = Path(trainjob.__file__).parent / "manifests"


def _validate(obj: dict, model: type) -> None:
    """The Trainer SDK's own model of the object: types, unknown or misspelt fields (tests/k8s_models.py)."""
    assert obj["apiVersion"] == sdk.API_VERSION
    assert obj["kind"] == model.__name__.removeprefix("TrainerV1alpha1")
    check(obj, model)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_tf_config_from_jobset_environment():
    env = {"JOB_COMPLETION_INDEX": "1", "KFPC_NUM_NODES": "3", "KFPC_JOBSET_NAME": "train-abc"}
    assert distribution.tf_config_from_jobset(env) == {
        "cluster": {"worker": ["train-abc-node-0-0.train-abc:2222", "train-abc-node-0-1.train-abc:2222",
                               "train-abc-node-0-2.train-abc:2222"]},
        "task": {"type": "worker", "index": 1}}
    # what select_strategy reads when TF_CONFIG and CLUSTER_SPEC are absent
    assert distribution.cluster_from_environment(env) == distribution.tf_config_from_jobset(env)
    assert distribution.tf_config_from_jobset({}) is None
    with pytest.raises(distribution.DistributionError, match="task worker:3 is not in the TF_CONFIG cluster"):
        distribution.tf_config_from_jobset(dict(env, JOB_COMPLETION_INDEX="3"))
    with pytest.raises(distribution.DistributionError, match="KFPC_JOBSET_NAME is empty"):
        distribution.tf_config_from_jobset({"JOB_COMPLETION_INDEX": "0", "KFPC_NUM_NODES": "2"})
    with pytest.raises(distribution.DistributionError, match="lists 1 hosts but KFPC_NUM_NODES is 2"):
        distribution.tf_config_from_jobset({"JOB_COMPLETION_INDEX": "0", "KFPC_NUM_NODES": "2",
                                            "KFPC_WORKER_HOSTS": "a:1"})
    with pytest.raises(distribution.DistributionError, match="repeats an address"):
        distribution.build_tf_config({"worker": ["a:1", "a:1"]}, "worker", 0)
    with pytest.raises(distribution.DistributionError, match="not host:port"):
        distribution.build_tf_config({"worker": ["a"]}, "worker", 0)


@pytest.mark.slow
@pytest.mark.e2e
def test_two_local_workers_through_the_trainjob_entrypoint_export_one_model(penguins_dataset, tmp_path):
    ports = _free_ports(2)
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    model = tmp_path / "shared" / "model"  # the same folder for both: shared storage
    train_args = {"batch_size": 32, "epochs": 3, "learning_rate": 0.02}
    processes = []
    for index in range(2):
        env = {"JOB_COMPLETION_INDEX": str(index), "KFPC_NUM_NODES": "2", "KFPC_WORKER_HOSTS": hosts,
               "TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"}
        env.update({k: v for k, v in os.environ.items() if k in ("PYTHONPATH", "HOME")})
        command = [sys.executable, "-m", "kfpc.components.train.trainjob", "run", "--dataset", str(penguins_dataset),
                   "--model-dir", str(model), "--label", "species", "--checkpoint-dir", str(tmp_path / "ckpt"),
                   "--train-args", json.dumps(train_args)]
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True))
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-4000:]
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    chief, other = results
    assert chief["placement"]["strategy"] == "MultiWorkerMirroredStrategy"
    assert chief["placement"]["num_workers"] == 2 and other["placement"]["task"] == "worker:1"
    assert chief["metrics"]["validation"] == pytest.approx(other["metrics"]["validation"])  # one model
    assert (model / "1" / "saved_model.pb").exists()
    assert read_card(model)["training"]["strategy"] == "MultiWorkerMirroredStrategy"
    fetched = trainjob.fetch_model(str(model), tmp_path / "artifact")
    assert (fetched / "1" / "saved_model.pb").exists()


def test_trainjob_manifest_validates_against_the_sdk_model():
    manifest = trainjob.render_trainjob(
        "kfpc-train-7f3a", namespace="ml", image="ghcr.io/kfpc/kfpc-tf-gpu:0.1.0",
        dataset_uri="/mnt/shared/data", model_uri="/mnt/shared/model", label="species", num_nodes=4,
        gpus_per_node=2, node_selector={"cloud.google.com/gke-accelerator": "nvidia-l4"},
        tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        train_args={"epochs": 3}, shared_pvc="training-rwx", service_account="trainer")
    _validate(manifest, models.TrainerV1alpha1TrainJob)
    trainer = manifest["spec"]["trainer"]
    assert trainer["numNodes"] == 4 and trainer["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": "2"}
    pod = manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert pod["name"] == "node"
    spec = pod["template"]["spec"]["template"]["spec"]
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["volumes"][0]["persistentVolumeClaim"]["claimName"] == "training-rwx"
    # a wrong type is refused, as the API server would; a misspelt field is named by its path
    broken = json.loads(json.dumps(manifest))
    broken["spec"]["trainer"]["numNodes"] = "four"
    with pytest.raises(ManifestError, match=r"numNodes\n  Input should be a valid integer"):
        _validate(broken, models.TrainerV1alpha1TrainJob)
    misspelt = json.loads(json.dumps(manifest))
    misspelt["spec"]["trainer"]["resourcePerNode"] = misspelt["spec"]["trainer"].pop("resourcesPerNode")
    pod_spec = misspelt["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    pod_spec["template"]["spec"]["template"]["spec"]["nodeSelectors"] = {"pool": "gpu"}
    with pytest.raises(ManifestError) as refused:
        _validate(misspelt, models.TrainerV1alpha1TrainJob)
    assert str(refused.value).splitlines()[1:] == [
        "  spec.trainer.resourcePerNode: unknown field",
        "  spec.runtimePatches[0].trainingRuntimeSpec.template.spec.replicatedJobs[0].template.spec.template.spec"
        ".nodeSelectors: unknown field"]
    with pytest.raises(ValueError, match="DNS-1035"):
        trainjob.render_trainjob("Bad_Name", namespace="ml", image="i", dataset_uri="d", model_uri="m", label="y")


def test_shipped_runtime_and_rbac_are_current_and_valid(tmp_path):
    from kfpc.components import images

    written = trainjob.write_manifests(tmp_path, images.TF_GPU)
    for path in written:
        assert (MANIFESTS / path.name).read_text() == path.read_text(), f"{path.name} is stale: rerun write-manifests"
    runtime = yaml.safe_load((MANIFESTS / "cluster_training_runtime.yaml").read_text())
    _validate(runtime, models.TrainerV1alpha1ClusterTrainingRuntime)
    assert runtime["metadata"]["name"] == trainjob.RUNTIME_NAME
    role, binding = yaml.safe_load_all((MANIFESTS / "rbac.yaml").read_text())
    # the launcher's group/version/plural are the SDK's (what Trainer's own client calls)
    assert (trainjob.GROUP, trainjob.VERSION, trainjob.PLURAL) == (sdk.GROUP, sdk.VERSION, sdk.TRAINJOB_PLURAL)
    granted = {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
               for resource in rule["resources"] for verb in rule["verbs"]}
    for verb in trainjob.LAUNCHER_VERBS:  # what launch() calls
        assert (sdk.GROUP, sdk.TRAINJOB_PLURAL, verb) in granted
    assert (sdk.GROUP, f"{sdk.TRAINJOB_PLURAL}/status", "get") in granted
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["metadata"]["namespace"] == role["metadata"]["namespace"] == binding["subjects"][0]["namespace"]
    for obj, kind in ((role, "V1Role"), (binding, "V1RoleBinding")):  # the Kubernetes client's own models
        check_kubernetes(obj, kind)
    misspelt = json.loads(json.dumps(role))
    misspelt["rules"][0]["apiGroup"] = misspelt["rules"][0].pop("apiGroups")
    with pytest.raises(ManifestError, match=r"rules\[0\]\.apiGroup: unknown field"):
        check_kubernetes(misspelt, "V1Role")


def test_vertex_worker_pools_field_by_field():
    from google.cloud import aiplatform_v1 as v1

    request = vertex_pools.custom_job_request(
        "kfpc-train", project="proj", location="europe-west4", image="eu.gcr.io/p/kfpc-tf-gpu:0.1.0",
        dataset_uri="/gcs/b/data", model_uri="/gcs/b/model", label="species", num_nodes=3,
        machine_type="g2-standard-8", accelerator_type="NVIDIA_L4", accelerator_count=1,
        train_args={"epochs": 3}, base_output_dir="gs://b/out", service_account="sa@proj.iam.gserviceaccount.com")
    assert isinstance(request, v1.CreateCustomJobRequest)
    assert request.parent == "projects/proj/locations/europe-west4"
    job = request.custom_job
    assert job.display_name == "kfpc-train"
    chief, workers = job.job_spec.worker_pool_specs
    assert (chief.replica_count, workers.replica_count) == (1, 2)
    for pool in (chief, workers):
        assert pool.machine_spec.machine_type == "g2-standard-8"
        assert pool.machine_spec.accelerator_type == v1.AcceleratorType.NVIDIA_L4
        assert pool.machine_spec.accelerator_count == 1
        assert pool.container_spec.image_uri == "eu.gcr.io/p/kfpc-tf-gpu:0.1.0"
        assert list(pool.container_spec.command) == ["python", "-m", "kfpc.components.train.trainjob", "run"]
        args = list(pool.container_spec.args)
        assert args[args.index("--model-dir") + 1] == "/gcs/b/model"
        assert json.loads(args[args.index("--train-args") + 1]) == {"epochs": 3}
        assert pool.disk_spec.boot_disk_size_gb == 100
    assert job.job_spec.base_output_directory.output_uri_prefix == "gs://b/out"
    assert job.job_spec.service_account == "sa@proj.iam.gserviceaccount.com"
    # what each replica then sees: Vertex's CLUSTER_SPEC, through the same builder
    spec = {"cluster": {"workerpool0": ["c-0:2222"], "workerpool1": ["w-0:2222", "w-1:2222"]},
            "task": {"type": "workerpool1", "index": 1}}
    assert distribution.cluster_from_environment({"CLUSTER_SPEC": json.dumps(spec)}) == \
        distribution.build_tf_config(distribution.vertex_cluster("c-0:2222", ["w-0:2222", "w-1:2222"]), "worker", 1)
    with pytest.raises(ValueError, match="unknown accelerator_type 'NVIDIA_T4000'"):
        vertex_pools.custom_job_request("x", project="p", location="l", image="i", dataset_uri="d", model_uri="m",
                                        label="y", accelerator_type="NVIDIA_T4000")


class _Cluster:
    """Kubernetes' CustomObjectsApi calls the launcher makes, over an in-memory store (no cluster runs here)."""

    def __init__(self, conditions):
        self.conditions, self.objects, self.deleted = list(conditions), {}, []

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        assert (group, version, plural) == (trainjob.GROUP, trainjob.VERSION, trainjob.PLURAL)
        self.objects[(namespace, body["metadata"]["name"])] = json.loads(json.dumps(body))

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        obj = self.objects[(namespace, name)]
        if self.conditions:
            obj["status"] = {"conditions": [self.conditions.pop(0)]}
        return obj

    def delete_namespaced_custom_object(self, group, version, namespace, plural, name):
        self.deleted.append(name)


def test_launcher_component_dry_run_renders_the_manifest(tmp_path):
    import kfp.local
    from kfp import dsl

    from kfpc.components.train.trainjob_component import train_trainjob

    (tmp_path / "dataset").mkdir()

    @dsl.pipeline
    def dry_run():
        data = dsl.importer(artifact_uri=str(tmp_path / "dataset"), artifact_class=dsl.Dataset)
        train_trainjob(data=data.output, label="species", shared_root="/mnt/shared", num_nodes=3,
                       node_selector={"pool": "gpu"}, shared_pvc="rwx", dry_run=True,
                       tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}])

    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "root"))
    dry_run()
    (written,) = (tmp_path / "root").rglob("trainjob.yaml")
    manifest = yaml.safe_load(written.read_text())
    _validate(manifest, models.TrainerV1alpha1TrainJob)
    assert manifest["spec"]["trainer"]["numNodes"] == 3
    patch = manifest["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]
    assert patch["template"]["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "gpu"}
    assert not any((tmp_path / "root").rglob("saved_model.pb"))


def test_launcher_waits_for_complete_and_reports_failure():
    manifest = trainjob.render_trainjob("t1", namespace="ml", image="i", dataset_uri="d", model_uri="m", label="y")
    running = {"type": "Created", "status": "True"}
    done = trainjob.launch(manifest, _Cluster([running, running, {"type": "Complete", "status": "True"}]),
                           sleep=lambda s: None)
    assert done["status"]["conditions"][0]["type"] == "Complete"
    failed = {"type": "Failed", "status": "True", "reason": "JobSetFailed", "message": "node-0-1 OOMKilled"}
    with pytest.raises(trainjob.TrainJobError, match="ml/t1 failed: JobSetFailed: node-0-1 OOMKilled"):
        trainjob.launch(manifest, _Cluster([running, failed]), sleep=lambda s: None)
    ticks = iter(range(0, 10_000, 100))
    cluster = _Cluster([running] * 100)
    with pytest.raises(trainjob.TrainJobError, match="did not finish within 250 s"):
        trainjob.launch(manifest, cluster, timeout_seconds=250, sleep=lambda s: None, clock=lambda: next(ticks))
    assert cluster.deleted == ["t1"]
