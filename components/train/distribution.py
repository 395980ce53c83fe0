"""Choosing the ``tf.distribute`` strategy and the precision for the node the task runs on.

* ``TF_CONFIG`` with more than one task, Vertex's ``CLUSTER_SPEC`` (worker pools) or a Kubeflow Trainer v2
  TrainJob node's JobSet environment (both turned into ``TF_CONFIG`` by :func:`build_tf_config`, the one
  builder) -> ``MultiWorkerMirroredStrategy``;
* more than one GPU on the node -> ``MirroredStrategy``;
* otherwise TensorFlow's default strategy (one GPU or the CPU).

Mixed precision (``mixed_float16``) is switched on when every visible GPU has compute capability 7.0 or
more (Volta, Turing T4, Ampere A100/L4, Hopper), where float16 matmuls run on tensor cores.

The strategy must be created before TensorFlow runs any op (``MultiWorkerMirroredStrategy`` configures
the runtime's collectives), so :func:`select_strategy` is the first TensorFlow call of ``train``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

#: Vertex AI worker pools -> TF_CONFIG task types
_VERTEX_POOLS = {"workerpool0": "chief", "workerpool1": "worker", "workerpool2": "ps", "workerpool3": "evaluator"}
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")


class DistributionError(ValueError):
    """TF_CONFIG / CLUSTER_SPEC or the requested strategy cannot be used; the message says which value."""


@dataclasses.dataclass
class Placement:
    """The strategy in use and what the log and the model card report about it."""

    strategy: object
    name: str
    devices: list[str]
    num_workers: int
    task_type: str | None
    task_index: int
    mixed_precision: bool
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """True on the one worker that writes checkpoints, TensorBoard logs and the model."""
        if self.task_type is None:
            return True
        if self.task_type == "chief":
            return True
        return self.task_type == "worker" and self.task_index == 0 and not self.has_chief

    def describe(self) -> dict:
        """JSON-friendly summary for logs and the model card."""
        return {
            "strategy": self.name,
            "devices": self.devices,
            "num_workers": self.num_workers,
            "task": f"{self.task_type}:{self.task_index}" if self.task_type else None,
            "mixed_precision": self.mixed_precision,
        }


#: TF_CONFIG port on every node of a Trainer v2 TrainJob (the ClusterTrainingRuntime opens it)
DEFAULT_TF_PORT = 2222
#: replicated job of the trainer nodes in Kubeflow Trainer's JobSet (its fixed name for the trainer step)
TRAINER_REPLICATED_JOB = "node"


def build_tf_config(cluster: dict[str, list[str]], task_type: str, task_index: int) -> dict:
    """The one ``TF_CONFIG`` builder: Trainer v2 TrainJob nodes, Vertex worker pools and local workers use it.

    Args:
        cluster: task type (``chief``, ``worker``, ``ps``, ``evaluator``) -> ``host:port`` list; empty lists
            are dropped.
        task_type: this process's task type.
        task_index: its index within that type.
    Returns:
        ``{"cluster": {...}, "task": {"type": ..., "index": ...}}`` (what ``MultiWorkerMirroredStrategy`` reads).
    Raises:
        DistributionError: no workers, a malformed address, a task outside the cluster, a repeated address.
    """
    cluster = {kind: [str(h) for h in hosts] for kind, hosts in cluster.items() if hosts}
    if not cluster.get("worker") and not cluster.get("chief"):
        raise DistributionError(f"TF_CONFIG cluster needs a chief or workers, got {cluster}")
    if len(cluster.get("chief", [])) > 1:
        raise DistributionError(f"TF_CONFIG cluster has more than one chief: {cluster['chief']}")
    addresses = [h for hosts in cluster.values() for h in hosts]
    for address in addresses:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise DistributionError(f"TF_CONFIG address {address!r} is not host:port")
    if len(set(addresses)) != len(addresses):
        raise DistributionError(f"TF_CONFIG cluster repeats an address: {addresses}")
    index = int(task_index)
    if task_type not in cluster or not 0 <= index < len(cluster[task_type]):
        raise DistributionError(f"task {task_type}:{index} is not in the TF_CONFIG cluster {cluster}")
    return {"cluster": cluster, "task": {"type": task_type, "index": index}}


def jobset_hosts(jobset_name: str, num_nodes: int, port: int = DEFAULT_TF_PORT,
                 replicated_job: str = TRAINER_REPLICATED_JOB, subdomain: str | None = None) -> list[str]:
    """Addresses of a JobSet's pods, as Kubeflow Trainer names them: ``<jobset>-<rjob>-0-<i>.<subdomain>:<port>``.

    (The JobSet of a TrainJob bears the TrainJob's name; its headless service, the subdomain, too.)
    """
    if int(num_nodes) < 1:
        raise DistributionError(f"number of nodes must be at least 1, got {num_nodes}")
    domain = subdomain or jobset_name
    return [f"{jobset_name}-{replicated_job}-0-{i}.{domain}:{int(port)}" for i in range(int(num_nodes))]


def tf_config_from_jobset(environ: dict | None = None) -> dict | None:
    """TF_CONFIG of a Trainer v2 TrainJob node (plain runtime), from the JobSet's environment.

    Reads ``JOB_COMPLETION_INDEX`` (the Indexed Job's pod index, set by Kubernetes), ``KFPC_NUM_NODES`` and
    ``KFPC_JOBSET_NAME`` (the ``kfpc-tensorflow`` ClusterTrainingRuntime passes the JobSet name through the
    downward API; the launcher sets the node count), optional ``KFPC_TF_PORT`` (2222) and
    ``KFPC_WORKER_HOSTS`` (comma-separated ``host:port`` list replacing the JobSet names, e.g. for local runs).
    Every node is a ``worker``; worker 0 is the chief (``MultiWorkerMirroredStrategy``'s convention).

    Returns:
        The TF_CONFIG dict, or None when the variables are absent (not a TrainJob node).
    Raises:
        DistributionError: a variable present but malformed.
    """
    environ = os.environ if environ is None else environ
    if "JOB_COMPLETION_INDEX" not in environ or "KFPC_NUM_NODES" not in environ:
        return None
    try:
        index, nodes = int(environ["JOB_COMPLETION_INDEX"]), int(environ["KFPC_NUM_NODES"])
        port = int(environ.get("KFPC_TF_PORT", DEFAULT_TF_PORT))
    except ValueError as err:
        raise DistributionError(f"JOB_COMPLETION_INDEX / KFPC_NUM_NODES / KFPC_TF_PORT must be integers ({err})") from err
    explicit = environ.get("KFPC_WORKER_HOSTS", "").strip()
    if explicit:
        hosts = [h.strip() for h in explicit.split(",") if h.strip()]
        if len(hosts) != nodes:
            raise DistributionError(f"KFPC_WORKER_HOSTS lists {len(hosts)} hosts but KFPC_NUM_NODES is {nodes}")
    else:
        name = environ.get("KFPC_JOBSET_NAME", "").strip()
        if not name:
            raise DistributionError("KFPC_JOBSET_NAME is empty: the runtime must pass the JobSet name "
                                    "(metadata.labels['jobset.sigs.k8s.io/jobset-name'])")
        hosts = jobset_hosts(name, nodes, port, environ.get("KFPC_REPLICATED_JOB", TRAINER_REPLICATED_JOB))
    return build_tf_config({"worker": hosts}, "worker", index)


def vertex_cluster(chief: str, workers: list[str]) -> dict[str, list[str]]:
    """The cluster of a Vertex custom job with worker pool 0 (chief) and pool 1 (workers), as TF_CONFIG types."""
    return {"chief": [chief], "worker": list(workers)}


def cluster_from_environment(environ: dict | None = None) -> dict | None:
    """The TF_CONFIG dict of a multi-worker job, or None on a single node.

    ``TF_CONFIG`` wins; Vertex's ``CLUSTER_SPEC`` (``workerpool0..3``) is translated to chief / worker /
    ps / evaluator when ``TF_CONFIG`` is absent.

    Args:
        environ: the environment (default ``os.environ``).
    Returns:
        ``{"cluster": {...}, "task": {"type", "index"}}`` or None.
    Raises:
        DistributionError: the variable is not valid JSON or lacks ``cluster`` / ``task``.
    """
    environ = os.environ if environ is None else environ
    for variable in ("TF_CONFIG", "CLUSTER_SPEC"):
        raw = environ.get(variable, "").strip()
        if not raw:
            continue
        try:
            config = json.loads(raw)
        except json.JSONDecodeError as err:
            raise DistributionError(f"environment variable {variable} is not valid JSON: {err}; value {raw[:200]!r}") from err
        cluster, task = config.get("cluster"), config.get("task")
        if not isinstance(cluster, dict) or not isinstance(task, dict) or "type" not in task:
            raise DistributionError(f"environment variable {variable} needs 'cluster' and 'task.type'; value {raw[:200]!r}")
        if variable == "CLUSTER_SPEC":
            cluster = {_VERTEX_POOLS.get(pool, pool): hosts for pool, hosts in cluster.items() if hosts}
            task = {"type": _VERTEX_POOLS.get(task["type"], task["type"]), "index": int(task.get("index", 0))}
            return build_tf_config(cluster, task["type"], task["index"])
        return {"cluster": cluster, "task": {"type": task["type"], "index": int(task.get("index", 0))}}
    return tf_config_from_jobset(environ)


def _cluster_size(config: dict) -> int:
    return sum(len(config["cluster"].get(kind, [])) for kind in ("chief", "worker"))


def _supports_mixed_precision(gpus) -> bool:
    import tensorflow as tf

    if not gpus:
        return False
    for gpu in gpus:
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        if not capability or tuple(capability) < (7, 0):
            return False
    return True


def cuda_libraries() -> dict[str, str]:
    """The CUDA/cuDNN libraries of the ``tensorflow[and-cuda]`` wheels in this environment, ``name -> path``
    (empty where they are not installed: the ``tf`` image and CPU-only machines)."""
    import importlib.util

    found: dict[str, str] = {}
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        for library in sorted(Path(root).glob("*/lib/lib*.so*")):
            found.setdefault(library.name, str(library))
    return found


def cpu_fallback_message() -> str | None:
    """What to say when no GPU is visible although this environment was built for one (the ``tf-gpu`` image:
    the CUDA wheels are installed), else None. TensorFlow then trains on the CPU; the message names the
    usual causes instead of leaving the user with TensorFlow's own CUDA log lines."""
    libraries = cuda_libraries()
    if not libraries:
        return None
    named = [n for n in sorted(libraries) if n.startswith(("libcudart.", "libcublas.", "libcudnn."))] or sorted(libraries)
    return ("no GPU is visible although this image holds the CUDA libraries "
            f"({len(libraries)} of them: {', '.join(named[:3])}, ...): training on the CPU. "
            "On Kubernetes the task needs a GPU in its resources (the pipeline's placement, "
            "pipelines/placement.py GpuOptions: gpu_count, kfp_accelerator_type) and a node with the NVIDIA "
            "driver and device plugin; on Vertex AI an accelerator_type/count; elsewhere the NVIDIA container "
            "runtime (NVIDIA_VISIBLE_DEVICES).")


def select_strategy(strategy: str = "auto", mixed_precision: str = "auto", devices: list[str] | None = None) -> Placement:
    """Create the distribution strategy for this node and set the Keras precision policy.

    Args:
        strategy: ``auto`` (see the module doc), ``default``, ``mirrored`` or ``multi_worker``.
        mixed_precision: ``auto`` (on for GPUs with compute capability >= 7.0), ``on`` or ``off``.
        devices: for ``mirrored``: the devices to mirror over (default: every GPU).
    Returns:
        The Placement (strategy, devices, whether this worker is the chief).
    Raises:
        DistributionError: unknown option, or TF_CONFIG / CLUSTER_SPEC malformed.
    """
    import keras
    import tensorflow as tf

    if strategy not in STRATEGIES:
        raise DistributionError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if mixed_precision not in ("auto", "on", "off"):
        raise DistributionError(f"mixed_precision must be 'auto', 'on' or 'off', got {mixed_precision!r}")
    config = cluster_from_environment()
    if config is not None and "TF_CONFIG" not in os.environ:
        # TensorFlow's cluster resolver reads TF_CONFIG only.
        os.environ["TF_CONFIG"] = json.dumps(config)
    multi = strategy == "multi_worker" or (strategy == "auto" and config is not None and _cluster_size(config) > 1)
    task_type, task_index, has_chief, num_workers = None, 0, False, 1
    if multi:
        if config is None:
            raise DistributionError("strategy 'multi_worker' needs TF_CONFIG or CLUSTER_SPEC in the environment")
        distribution = tf.distribute.MultiWorkerMirroredStrategy()
        task_type, task_index = config["task"]["type"], config["task"]["index"]
        has_chief = bool(config["cluster"].get("chief"))
        num_workers = _cluster_size(config)
        name = "MultiWorkerMirroredStrategy"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        fallback = cpu_fallback_message()
        if fallback:
            log.warning(fallback)
    if not multi:
        if strategy == "mirrored" or (strategy == "auto" and len(gpus) > 1):
            distribution = tf.distribute.MirroredStrategy(devices=devices)
            name = "MirroredStrategy"
        else:
            distribution = tf.distribute.get_strategy()
            name = "default"
    use_mixed = mixed_precision == "on" or (mixed_precision == "auto" and _supports_mixed_precision(gpus))
    keras.mixed_precision.set_global_policy("mixed_float16" if use_mixed else "float32")
    worker_devices = list(distribution.extended.worker_devices) if name != "default" else []
    if not worker_devices:
        worker_devices = [gpu.name for gpu in gpus[:1]] or ["/cpu:0"]
    placement = Placement(
        strategy=distribution, name=name, devices=worker_devices, num_workers=num_workers,
        task_type=task_type, task_index=task_index, mixed_precision=use_mixed, has_chief=has_chief,
    )
    log.info(
        "training with %s on %s (GPUs visible: %s; workers: %d; task: %s; mixed precision: %s)",
        name, worker_devices, [gpu.name for gpu in gpus] or "none", num_workers,
        f"{task_type}:{task_index}" if task_type else "single", "on" if use_mixed else "off",
    )
    return placement
