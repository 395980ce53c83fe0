"""GPU placement of the training step, decided at compile time per target.

The train component itself is placement-free (``kfpc.components.train.component.train`` on the CPU
TensorFlow image). A pipeline factory asks this module for the operation to call and then places the task:

.. code-block:: python

    options = GpuOptions(gpu_count=1)
    train_op = training_op(target, options)          # kfp: the component; vertex: a Vertex custom job
    task = train_op(data=..., label=..., **checkpoint_arguments(target, options))
    apply_placement(task, target, options)

* ``kfp`` (Kubeflow Pipelines on Kubernetes): the task gets ``nvidia.com/gpu`` as accelerator type and
  the GPU count as limit, a node selector and a toleration for the GPU node pool (through kfp-kubernetes,
  written into the ``platforms: kubernetes`` document of the compiled YAML), optional CPU / memory limits,
  retries for preemptible nodes, and optionally a PVC for checkpoints that survive a pod being replaced.
* ``vertex`` (Vertex AI Pipelines): the component is wrapped by google-cloud-pipeline-components'
  ``create_custom_training_job_from_component`` with the machine type, accelerator name
  (``NVIDIA_TESLA_T4``, ``NVIDIA_L4``, ``NVIDIA_TESLA_A100``...) and count, and ``replica_count`` workers:
  with more than one, Vertex sets ``CLUSTER_SPEC`` / ``TF_CONFIG`` and train uses
  ``MultiWorkerMirroredStrategy``. ``scheduling_strategy="SPOT"`` runs on Spot VMs; the job restarts on
  preemption and train resumes from the last epoch checkpoint (``/gcs`` keeps it).

When a GPU is asked for, both targets run the TF_GPU image (``images.TF_GPU``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from kfpc.components import images

TARGETS = ("kfp", "vertex")
#: where ``GpuOptions.checkpoint_pvc`` is mounted in the training pod
CHECKPOINT_MOUNT = "/kfpc-checkpoints"


class PlacementError(ValueError):
    """Placement options that cannot work; the message names the option and the value."""


@dataclasses.dataclass(frozen=True)
class GpuOptions:
    """Where and on what the training step runs. Every field has a working default.

    Attributes:
        gpu_count: GPUs per worker; 0 runs on CPU (the TF image, no accelerator fields).
        kfp_accelerator_type: Kubernetes extended resource of the GPU (``nvidia.com/gpu``; ``amd.com/gpu``).
        kfp_node_selector: node labels the pod must match; default: the label NVIDIA's GPU feature
            discovery / GPU operator puts on GPU nodes. GKE: ``{"cloud.google.com/gke-accelerator": "nvidia-l4"}``.
        kfp_tolerations: ``(key, operator, value, effect)`` tolerations; default tolerates the
            ``nvidia.com/gpu:NoSchedule`` taint GKE, EKS and AKS put on GPU node pools.
        cpu_limit: CPU limit of the training pod, e.g. ``"8"``; empty: none.
        memory_limit: memory limit, e.g. ``"32G"``; empty: none.
        retries: task retries (preemptible / Spot nodes); train resumes from its last checkpoint.
        retry_backoff: first wait between retries (KFP duration string).
        checkpoint_pvc: name of a PersistentVolumeClaim mounted at ``/kfpc-checkpoints`` for checkpoints.
            Needed on Kubeflow with a MinIO/S3 pipeline root, where outputs are uploaded only after the
            task succeeds, so a checkpoint beside the output would not survive the pod; empty: beside the
            model output (enough on Vertex AI and with a GCS FUSE pipeline root).
        vertex_machine_type: Compute Engine machine type of each worker.
        vertex_accelerator_type: Vertex accelerator name (``NVIDIA_TESLA_T4``, ``NVIDIA_L4``,
            ``NVIDIA_TESLA_V100``, ``NVIDIA_TESLA_A100``, ``NVIDIA_H100_80GB``).
        vertex_replica_count: workers; more than one trains with ``MultiWorkerMirroredStrategy``.
        vertex_scheduling_strategy: ``STANDARD``, ``SPOT`` or ``FLEX_START``.
        vertex_boot_disk_size_gb: boot disk per worker.
        vertex_service_account: service account of the job; empty: the project's default.
        vertex_network: VPC network for peering; empty: none.
        vertex_timeout: maximum job duration.
    """

    gpu_count: int = 1
    kfp_accelerator_type: str = "nvidia.com/gpu"
    kfp_node_selector: tuple[tuple[str, str], ...] = (("nvidia.com/gpu.present", "true"),)
    kfp_tolerations: tuple[tuple[str, str, str, str], ...] = (("nvidia.com/gpu", "Exists", "", "NoSchedule"),)
    cpu_limit: str = ""
    memory_limit: str = ""
    retries: int = 3
    retry_backoff: str = "60s"
    checkpoint_pvc: str = ""
    vertex_machine_type: str = "n1-standard-8"
    vertex_accelerator_type: str = "NVIDIA_TESLA_T4"
    vertex_replica_count: int = 1
    vertex_scheduling_strategy: str = "STANDARD"
    vertex_boot_disk_size_gb: int = 100
    vertex_service_account: str = ""
    vertex_network: str = ""
    vertex_timeout: str = "604800s"

    def __post_init__(self):
        if self.gpu_count < 0:
            raise PlacementError(f"gpu_count must be >= 0, got {self.gpu_count}")
        if self.vertex_replica_count < 1:
            raise PlacementError(f"vertex_replica_count must be >= 1, got {self.vertex_replica_count}")
        if self.retries < 0:
            raise PlacementError(f"retries must be >= 0, got {self.retries}")
        if self.vertex_scheduling_strategy not in ("STANDARD", "SPOT", "FLEX_START"):
            raise PlacementError(
                f"vertex_scheduling_strategy must be STANDARD, SPOT or FLEX_START, got {self.vertex_scheduling_strategy!r}"
            )
        for toleration in self.kfp_tolerations:
            if len(toleration) != 4 or toleration[1] not in ("Equal", "Exists"):
                raise PlacementError(f"a toleration is (key, 'Equal'|'Exists', value, effect), got {toleration}")

    @classmethod
    def cpu(cls) -> GpuOptions:
        """Options for a CPU-only training step (no accelerator, no GPU node selector or toleration)."""
        return cls(gpu_count=0, kfp_node_selector=(), kfp_tolerations=())


#: ``model_family`` values of the train step (see kfpc.components.train.core.MODEL_FAMILIES)
MODEL_FAMILIES = ("dnn", "gbdt", "auto")


def for_model_family(options: GpuOptions | None, model_family: str) -> GpuOptions:
    """The placement of a train step that trains ``model_family``.

    Trees (``gbdt``) train on CPU threads: the step goes to a CPU node (no accelerator, no GPU node selector
    or toleration; retries, limits and the checkpoint PVC are kept). ``dnn`` keeps ``options``. ``auto``
    trains both families in ONE step, so it keeps ``options`` too: the network uses the GPU and YDF the
    node's CPU cores (trees take a small share of the step's time; a second, CPU-placed step would need an
    artifact choice between two branches, which ``dsl.OneOf`` does not give reliably).

    Args:
        options: the requested placement; default ``GpuOptions()``.
        model_family: ``dnn``, ``gbdt`` or ``auto``.
    Returns:
        The options to place the step with.
    """
    options = options or GpuOptions()
    if model_family not in MODEL_FAMILIES:
        raise PlacementError(f"model_family must be one of {', '.join(MODEL_FAMILIES)}, got {model_family!r}")
    if model_family != "gbdt" or options.gpu_count == 0:
        return options
    return dataclasses.replace(options, gpu_count=0, kfp_node_selector=(), kfp_tolerations=())


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise PlacementError(f"unknown target {target!r}; known: {', '.join(TARGETS)}")


def train_component(gpu: bool):
    """The train component on the TF image, or the same function on the TF_GPU image."""
    from kfp import dsl

    from kfpc.components.train.component import train

    if not gpu:
        return train
    return dsl.component(base_image=images.TF_GPU, install_kfp_package=False)(train.python_func)


def training_op(target: str, options: GpuOptions | None = None) -> Callable:
    """The operation a pipeline calls for training on ``target``.

    Args:
        target: ``kfp`` or ``vertex``.
        options: placement; default ``GpuOptions()`` (one GPU).
    Returns:
        kfp: the train component (TF_GPU image when ``gpu_count > 0``); vertex: a component that runs the
        train component as a Vertex AI custom training job with the machine, accelerator and replicas.
    """
    _check_target(target)
    options = options or GpuOptions()
    component = train_component(options.gpu_count > 0)
    if target == "kfp":
        return component
    from google_cloud_pipeline_components.v1.custom_job import create_custom_training_job_from_component

    accelerator = options.vertex_accelerator_type if options.gpu_count > 0 else ""
    return create_custom_training_job_from_component(
        component,
        display_name="kfpc-train",
        replica_count=options.vertex_replica_count,
        machine_type=options.vertex_machine_type,
        accelerator_type=accelerator,
        accelerator_count=options.gpu_count if accelerator else 0,
        boot_disk_size_gb=options.vertex_boot_disk_size_gb,
        timeout=options.vertex_timeout,
        # a preempted / failed worker restarts the job; train resumes from its last checkpoint
        restart_job_on_worker_restart=options.vertex_replica_count > 1 or options.vertex_scheduling_strategy == "SPOT",
        service_account=options.vertex_service_account,
        network=options.vertex_network,
        strategy=options.vertex_scheduling_strategy,
    )


def checkpoint_arguments(target: str, options: GpuOptions | None = None) -> dict:
    """Extra arguments for the train call: ``checkpoint_uri`` on the PVC when one is configured.

    The folder is per pipeline run and task, so a retry of the same task finds its checkpoints and
    another run never does.
    """
    from kfp import dsl

    _check_target(target)
    options = options or GpuOptions()
    if target == "kfp" and options.checkpoint_pvc:
        return {"checkpoint_uri": f"{CHECKPOINT_MOUNT}/{dsl.PIPELINE_JOB_ID_PLACEHOLDER}/{dsl.PIPELINE_TASK_ID_PLACEHOLDER}"}
    return {}


def apply_kfp_placement(task, options: GpuOptions | None = None):
    """Place a train task on GPU nodes of a Kubernetes cluster (KFP target).

    Args:
        task: the PipelineTask returned by calling ``training_op("kfp", options)``.
        options: placement; default ``GpuOptions()``.
    Returns:
        The task (for chaining).
    """
    from kfp import kubernetes

    options = options or GpuOptions()
    if options.gpu_count > 0:
        task.set_accelerator_type(options.kfp_accelerator_type)
        task.set_accelerator_limit(options.gpu_count)
        for key, value in options.kfp_node_selector:
            kubernetes.add_node_selector(task, label_key=key, label_value=value)
        for key, operator, value, effect in options.kfp_tolerations:
            kubernetes.add_toleration(task, key=key, operator=operator, value=value or None, effect=effect or None)
    if options.cpu_limit:
        task.set_cpu_limit(options.cpu_limit)
    if options.memory_limit:
        task.set_memory_limit(options.memory_limit)
    if options.checkpoint_pvc:
        kubernetes.mount_pvc(task, pvc_name=options.checkpoint_pvc, mount_path=CHECKPOINT_MOUNT)
    if options.retries:
        task.set_retry(num_retries=options.retries, backoff_duration=options.retry_backoff, backoff_factor=2.0)
    return task


def apply_vertex_placement(task, options: GpuOptions | None = None):
    """Vertex target: machine and accelerator are in the custom job already; add task retries."""
    options = options or GpuOptions()
    if options.retries:
        task.set_retry(num_retries=options.retries, backoff_duration=options.retry_backoff, backoff_factor=2.0)
    return task


def placed_training(train_op: Callable, target: str, options: GpuOptions | None = None, **arguments):
    """Call ``train_op`` (from :func:`training_op`) inside a pipeline and place the task for ``target``.

    The one way pipelines create their training task, so none can forget the checkpoint folder or the
    placement.

    Args:
        train_op: ``training_op(target, options)``.
        target: ``kfp`` or ``vertex``.
        options: placement; default ``GpuOptions()``.
        **arguments: the train component's inputs.
    Returns:
        The placed PipelineTask.
    """
    task = train_op(**arguments, **checkpoint_arguments(target, options))
    return apply_placement(task, target, options)


def apply_placement(task, target: str, options: GpuOptions | None = None):
    """``apply_kfp_placement`` or ``apply_vertex_placement`` by target."""
    _check_target(target)
    if target == "kfp":
        return apply_kfp_placement(task, options)
    return apply_vertex_placement(task, options)
