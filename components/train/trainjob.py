"""Multi-node training on Kubeflow Trainer v2: the TrainJob, its runtime and RBAC, the launcher and the entrypoint.

* :func:`render_trainjob` — the ``trainer.kubeflow.org/v1alpha1`` ``TrainJob`` (plain runtime
  ``kfpc-tensorflow``; GPUs, node selector and tolerations per node; shared storage for data and model).
* :func:`cluster_training_runtime`, :func:`rbac` — the shipped manifests (``manifests/``, written by
  ``python -m kfpc.components.train.trainjob write-manifests DIR``).
* :func:`launch` — create the TrainJob, wait for ``Complete`` / ``Failed``; :func:`fetch_model` copies the
  SavedModel the chief wrote to shared storage into the pipeline's Model artifact.
* ``python -m kfpc.components.train.trainjob run ...`` — the nodes' entrypoint: ``TF_CONFIG`` from the JobSet
  (:func:`kfpc.components.train.distribution.tf_config_from_jobset`, the same builder Vertex and the local
  test use), then ``core.train`` under ``MultiWorkerMirroredStrategy``; worker 0 (the chief) writes the model.

TFJob (Training Operator v1) is in maintenance mode: nothing here builds on it. No kfp, no TensorFlow at import.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import distribution

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
PLURAL = "trainjobs"
RUNTIME_NAME = "kfpc-tensorflow"
#: manager name of our runtimePatches entry (each patch owner has its own)
PATCH_MANAGER = "kfpc.io/launcher"
SHARED_VOLUME = "kfpc-shared"
#: verbs the launcher uses on trainjobs (the shipped Role grants exactly these, tested)
LAUNCHER_VERBS = ("create", "get", "delete")


class TrainJobError(RuntimeError):
    """The TrainJob failed, timed out, or its model is missing; the message names the job and the reason."""


def _env(name: str, value) -> dict:
    return {"name": name, "value": str(value)}


def render_trainjob(
    name: str,
    *,
    namespace: str,
    image: str,
    dataset_uri: str,
    model_uri: str,
    label: str,
    num_nodes: int = 2,
    gpus_per_node: int = 1,
    cpu: str = "4",
    memory: str = "16Gi",
    node_selector: dict[str, str] | None = None,
    tolerations: list[dict] | None = None,
    train_args: dict | None = None,
    checkpoint_uri: str = "",
    shared_pvc: str = "",
    shared_mount: str = "/mnt/shared",
    service_account: str = "",
    runtime: str = RUNTIME_NAME,
    gpu_resource: str = "nvidia.com/gpu",
    tf_port: int = distribution.DEFAULT_TF_PORT,
    active_deadline_seconds: int = 0,
) -> dict:
    """The TrainJob manifest of a multi-node training run.

    Args:
        name: TrainJob name (also the JobSet's and the nodes' DNS subdomain: a DNS-1035 label, <= 40 chars).
        namespace: its namespace.
        image: the training image (kfpc's ``tf-gpu`` image).
        dataset_uri / model_uri: Dataset artifact and model folder on storage every node sees (a PVC under
            ``shared_mount``, or ``/gcs/...``); the chief writes the SavedModel to ``model_uri``.
        label: label column.
        num_nodes: training nodes (one worker each; worker 0 is the chief).
        gpus_per_node: GPUs requested and limited per node (0: CPU only).
        cpu / memory: requests per node.
        node_selector: node labels every node must have (e.g. ``cloud.google.com/gke-accelerator``).
        tolerations: Kubernetes tolerations of every node (e.g. the GPU node pool's taint).
        train_args: keyword arguments of ``core.train`` (epochs, batch_size, ...), JSON-able.
        checkpoint_uri: shared checkpoint folder (resume after preemption); empty: ``<model_uri>.checkpoints``.
        shared_pvc: a ReadWriteMany PersistentVolumeClaim mounted at ``shared_mount`` on every node.
        service_account: the nodes' Kubernetes service account (e.g. Workload Identity for GCS); empty: default.
        runtime: the ClusterTrainingRuntime (``kfpc-tensorflow``).
        gpu_resource: the extended resource name of a GPU.
        tf_port: the TF_CONFIG port.
        active_deadline_seconds: kill the job after this long (0: no limit).
    Returns:
        The manifest (a dict; ``yaml.safe_dump`` it to apply by hand).
    Raises:
        ValueError: a bad name, count or argument.
    """
    import re

    if not re.fullmatch(r"[a-z]([-a-z0-9]{0,38}[a-z0-9])?", name):
        raise ValueError(f"TrainJob name {name!r} must be a DNS-1035 label of at most 40 characters (it becomes the "
                         "nodes' host names)")
    if int(num_nodes) < 1 or int(gpus_per_node) < 0:
        raise ValueError(f"num_nodes must be >= 1 and gpus_per_node >= 0, got {num_nodes}, {gpus_per_node}")
    for toleration in tolerations or []:
        unknown = set(toleration) - {"key", "operator", "value", "effect", "tolerationSeconds"}
        if unknown:
            raise ValueError(f"toleration {toleration}: unknown field(s) {sorted(unknown)}")
    resources = {"requests": {"cpu": str(cpu), "memory": str(memory)}}
    if int(gpus_per_node):
        resources["requests"][gpu_resource] = str(int(gpus_per_node))
        resources["limits"] = {gpu_resource: str(int(gpus_per_node))}
    command = ["python", "-m", "kfpc.components.train.trainjob", "run", "--dataset", dataset_uri,
               "--model-dir", model_uri, "--label", label,
               "--checkpoint-dir", checkpoint_uri or f"{model_uri.rstrip('/')}.checkpoints",
               "--train-args", json.dumps(train_args or {}, sort_keys=True)]
    pod: dict = {}
    if node_selector:
        pod["nodeSelector"] = {str(k): str(v) for k, v in node_selector.items()}
    if tolerations:
        pod["tolerations"] = [dict(t) for t in tolerations]
    if service_account:
        pod["serviceAccountName"] = service_account
    if shared_pvc:
        pod["volumes"] = [{"name": SHARED_VOLUME, "persistentVolumeClaim": {"claimName": shared_pvc}}]
        pod["containers"] = [{"name": "node", "volumeMounts": [{"name": SHARED_VOLUME, "mountPath": shared_mount}]}]
    spec: dict = {
        "runtimeRef": {"apiGroup": GROUP, "kind": "ClusterTrainingRuntime", "name": runtime},
        "trainer": {
            "image": image,
            "command": command,
            "numNodes": int(num_nodes),
            "resourcesPerNode": resources,
            # (the runtime passes the JobSet name; Kubernetes sets JOB_COMPLETION_INDEX on Indexed Jobs)
            "env": [_env("KFPC_NUM_NODES", int(num_nodes)), _env("KFPC_TF_PORT", int(tf_port)),
                    _env("PYTHONUNBUFFERED", 1)],
        },
    }
    if pod:
        spec["runtimePatches"] = [{"manager": PATCH_MANAGER, "trainingRuntimeSpec": {"template": {"spec": {
            "replicatedJobs": [{"name": distribution.TRAINER_REPLICATED_JOB,
                                "template": {"spec": {"template": {"spec": pod}}}}]}}}}]
    if int(active_deadline_seconds):
        spec["activeDeadlineSeconds"] = int(active_deadline_seconds)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "TrainJob",
            "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/created-by": "kfpc"}},
            "spec": spec}


def cluster_training_runtime(image: str, tf_port: int = distribution.DEFAULT_TF_PORT) -> dict:
    """The ``kfpc-tensorflow`` ClusterTrainingRuntime: Trainer's plain runtime (no framework policy), one
    Indexed Job ``node`` whose pods learn the JobSet name through the downward API and open the TF port."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ClusterTrainingRuntime",
        "metadata": {"name": RUNTIME_NAME, "labels": {"trainer.kubeflow.org/framework": "tensorflow"}},
        "spec": {
            "mlPolicy": {"numNodes": 1},
            "template": {"spec": {"replicatedJobs": [{
                "name": distribution.TRAINER_REPLICATED_JOB,
                "template": {
                    "metadata": {"labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}},
                    "spec": {
                        "completionMode": "Indexed",
                        "backoffLimit": 0,
                        "template": {"spec": {
                            "restartPolicy": "Never",
                            "containers": [{
                                "name": "node",
                                "image": image,
                                "ports": [{"name": "tf-worker", "containerPort": int(tf_port)}],
                                "env": [{"name": "KFPC_JOBSET_NAME", "valueFrom": {"fieldRef": {
                                    "fieldPath": "metadata.labels['jobset.sigs.k8s.io/jobset-name']"}}}],
                            }],
                        }},
                    },
                },
            }]}},
        },
    }


def rbac(namespace: str = "kubeflow", service_account: str = "pipeline-runner") -> list[dict]:
    """Role + RoleBinding letting the pipeline's service account run TrainJobs in ``namespace``.

    Exactly what :func:`launch` calls: create/get/delete ``trainjobs`` (get on ``trainjobs/status``), and
    read the nodes' pods and logs to report a failure.
    """
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "kfpc-trainjob-launcher", "namespace": namespace},
        "rules": [
            {"apiGroups": [GROUP], "resources": [PLURAL], "verbs": list(LAUNCHER_VERBS)},
            {"apiGroups": [GROUP], "resources": [f"{PLURAL}/status"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "kfpc-trainjob-launcher", "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "kfpc-trainjob-launcher"},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
    return [role, binding]


def _condition(obj: dict, kind: str) -> dict | None:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == kind and str(condition.get("status")) == "True":
            return condition
    return None


def launch(manifest: dict, api=None, *, poll_seconds: float = 15.0, timeout_seconds: float = 0,
           delete_on_timeout: bool = True, sleep=time.sleep, clock=time.monotonic) -> dict:
    """Create the TrainJob and wait until it is ``Complete`` (returns its last state) or ``Failed`` (raises).

    Args:
        manifest: from :func:`render_trainjob`.
        api: a ``kubernetes.client.CustomObjectsApi`` (default: in-cluster config, else kubeconfig).
        poll_seconds: seconds between status reads.
        timeout_seconds: give up after this long (0: wait for ever); the job is then deleted.
    Raises:
        TrainJobError: the job failed (its condition's reason and message) or timed out.
    """
    if api is None:
        from kubernetes import client, config

        try:
            config.load_incluster_config()
        except config.ConfigException:
            config.load_kube_config()
        api = client.CustomObjectsApi()
    meta = manifest["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, manifest)
    start = clock()
    while True:
        obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        if _condition(obj, "Complete"):
            return obj
        failed = _condition(obj, "Failed")
        if failed:
            raise TrainJobError(f"TrainJob {namespace}/{name} failed: {failed.get('reason', '')}: "
                                f"{failed.get('message', '')}")
        if timeout_seconds and clock() - start > timeout_seconds:
            if delete_on_timeout:
                api.delete_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
            raise TrainJobError(f"TrainJob {namespace}/{name} did not finish within {timeout_seconds:.0f} s "
                                f"(deleted: {delete_on_timeout})")
        sleep(poll_seconds)


def fetch_model(model_uri: str, output_dir: str | os.PathLike) -> Path:
    """Copy the SavedModel (``1/saved_model.pb`` + model card) the chief wrote on shared storage to ``output_dir``."""
    from .._fs import local_path

    source = Path(local_path(model_uri))
    if not (source / "1" / "saved_model.pb").exists():
        raise TrainJobError(f"{model_uri}: no SavedModel (1/saved_model.pb) — the chief did not export one")
    output = Path(output_dir)
    if output.exists() and any(output.iterdir()):
        raise TrainJobError(f"{output}: not empty")
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    if output.exists():
        output.rmdir()
    os.replace(partial, output)
    return output


def run_node(dataset: str, model_dir: str, label: str, checkpoint_dir: str = "", train_args: dict | None = None,
             environ: dict | None = None) -> dict:
    """One TrainJob node: TF_CONFIG from the JobSet environment, then ``core.train`` (the chief exports).

    Returns:
        JSON-able summary: metrics, placement, epochs.
    """
    environ = os.environ if environ is None else environ
    config = distribution.tf_config_from_jobset(environ)
    if config is not None:
        os.environ["TF_CONFIG"] = json.dumps(config)
    from .._fs import local_path
    from . import core

    args = dict(train_args or {})
    if config is not None and len(config["cluster"].get("worker", [])) > 1:
        args.setdefault("strategy", "multi_worker")
    result = core.train(local_path(dataset), local_path(model_dir), label=label,
                        checkpoint_dir=local_path(checkpoint_dir) if checkpoint_dir else None, **args)
    return {"metrics": result.metrics, "placement": result.placement, "epochs": result.epochs_trained}


def write_manifests(folder: str | os.PathLike, image: str) -> list[Path]:
    """Write the shipped ``cluster_training_runtime.yaml`` and ``rbac.yaml`` into ``folder``."""
    import yaml

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    header = "# Generated by `python -m kfpc.components.train.trainjob write-manifests`; do not edit.\n"
    runtime = folder / "cluster_training_runtime.yaml"
    runtime.write_text(header + yaml.safe_dump(cluster_training_runtime(image), sort_keys=False))
    roles = folder / "rbac.yaml"
    roles.write_text(header + yaml.safe_dump_all(rbac(), sort_keys=False))
    return [runtime, roles]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kfpc.components.train.trainjob")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="train on this TrainJob node")
    run.add_argument("--dataset", required=True)
    run.add_argument("--model-dir", required=True)
    run.add_argument("--label", required=True)
    run.add_argument("--checkpoint-dir", default="")
    run.add_argument("--train-args", default="{}")
    write = commands.add_parser("write-manifests", help="write the runtime and RBAC manifests")
    write.add_argument("folder")
    args = parser.parse_args(argv)
    if args.command == "write-manifests":
        from .. import images

        for path in write_manifests(args.folder, images.TF_GPU):
            print(path)
        return 0
    summary = run_node(args.dataset, args.model_dir, args.label, args.checkpoint_dir, json.loads(args.train_args))
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
