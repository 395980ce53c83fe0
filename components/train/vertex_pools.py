"""Multi-node training on Vertex AI: the custom job's worker pools (pool 0: the chief, pool 1: the workers).

Vertex gives every replica ``CLUSTER_SPEC``; :func:`kfpc.components.train.distribution.cluster_from_environment`
turns it into ``TF_CONFIG`` with the same builder the TrainJob nodes and the local test use. The nodes run
the same entrypoint as on Kubeflow Trainer (``python -m kfpc.components.train.trainjob run ...``).
Built with the real ``google.cloud.aiplatform_v1`` types; nothing here calls Vertex.
"""

from __future__ import annotations

import json


def custom_job_request(
    display_name: str,
    *,
    project: str,
    location: str,
    image: str,
    dataset_uri: str,
    model_uri: str,
    label: str,
    num_nodes: int = 2,
    machine_type: str = "n1-standard-8",
    accelerator_type: str = "NVIDIA_TESLA_T4",
    accelerator_count: int = 1,
    train_args: dict | None = None,
    checkpoint_uri: str = "",
    base_output_dir: str = "",
    service_account: str = "",
    boot_disk_gb: int = 100,
):
    """The ``CreateCustomJobRequest`` of a multi-node training job.

    Args:
        display_name: the job's name in the console.
        project / location: where it runs (``parent = projects/<p>/locations/<l>``).
        image: the training image (kfpc's ``tf-gpu`` image).
        dataset_uri / model_uri / label: as for the TrainJob (``/gcs/...`` paths: Vertex mounts Cloud Storage
            there); the chief exports the SavedModel to ``model_uri``.
        num_nodes: replicas in all: 1 chief (pool 0) + ``num_nodes - 1`` workers (pool 1).
        machine_type / accelerator_type / accelerator_count: every replica's machine (``accelerator_type``
            a ``AcceleratorType`` name; ``""`` or count 0: no GPU).
        train_args: keyword arguments of ``core.train``.
        checkpoint_uri: shared checkpoint folder; empty: ``<model_uri>.checkpoints``.
        base_output_dir: ``gs://`` folder for Vertex's outputs (optional).
        service_account: the replicas' service account (optional).
        boot_disk_gb: boot disk per replica.
    Returns:
        ``google.cloud.aiplatform_v1.CreateCustomJobRequest``.
    Raises:
        ValueError: bad counts or an unknown accelerator type.
    """
    from google.cloud import aiplatform_v1 as v1

    if int(num_nodes) < 1:
        raise ValueError(f"num_nodes must be at least 1, got {num_nodes}")
    machine = v1.MachineSpec(machine_type=machine_type)
    if accelerator_type and int(accelerator_count) > 0:
        if accelerator_type not in v1.AcceleratorType.__members__:
            raise ValueError(f"unknown accelerator_type {accelerator_type!r}; Vertex knows "
                             f"{sorted(k for k in v1.AcceleratorType.__members__ if k != 'ACCELERATOR_TYPE_UNSPECIFIED')}")
        machine.accelerator_type = v1.AcceleratorType[accelerator_type]
        machine.accelerator_count = int(accelerator_count)
    command = ["python", "-m", "kfpc.components.train.trainjob", "run"]
    args = ["--dataset", dataset_uri, "--model-dir", model_uri, "--label", label,
            "--checkpoint-dir", checkpoint_uri or f"{model_uri.rstrip('/')}.checkpoints",
            "--train-args", json.dumps(train_args or {}, sort_keys=True)]

    def pool(replicas: int):
        return v1.WorkerPoolSpec(
            machine_spec=machine, replica_count=replicas,
            disk_spec=v1.DiskSpec(boot_disk_type="pd-ssd", boot_disk_size_gb=int(boot_disk_gb)),
            container_spec=v1.ContainerSpec(image_uri=image, command=command, args=args,
                                            env=[v1.EnvVar(name="PYTHONUNBUFFERED", value="1")]))

    pools = [pool(1)]  # workerpool0: the chief
    if int(num_nodes) > 1:
        pools.append(pool(int(num_nodes) - 1))  # workerpool1: the workers
    spec = v1.CustomJobSpec(worker_pool_specs=pools)
    if base_output_dir:
        spec.base_output_directory = v1.GcsDestination(output_uri_prefix=base_output_dir)
    if service_account:
        spec.service_account = service_account
    return v1.CreateCustomJobRequest(parent=f"projects/{project}/locations/{location}",
                                     custom_job=v1.CustomJob(display_name=display_name, job_spec=spec))
