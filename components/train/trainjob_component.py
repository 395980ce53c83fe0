"""KFP v2 component: train_trainjob — multi-node training as a Kubeflow Trainer v2 TrainJob, launched and awaited.

Calls :mod:`kfpc.components.train.trainjob`. The launcher pod needs the RBAC in ``manifests/rbac.yaml`` and
storage it shares with the training nodes (``shared_root``: a ReadWriteMany PVC mounted in both, or
``/gcs/...``).
"""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from kfpc.components import images


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def train_trainjob(
    data: Input[Dataset],
    model: Output[Model],
    trainjob_manifest: Output[Artifact],
    label: str,
    shared_root: str,
    namespace: str = "kubeflow",
    num_nodes: int = 2,
    gpus_per_node: int = 1,
    cpu: str = "4",
    memory: str = "16Gi",
    node_selector: dict = {},  # noqa: B006 (KFP reads the default from the signature)
    tolerations: list = [],  # noqa: B006
    train_args: dict = {},  # noqa: B006
    shared_pvc: str = "",
    service_account: str = "",
    image: str = "",
    timeout_seconds: int = 0,
    dry_run: bool = False,
):
    """Train on ``num_nodes`` GPU nodes with ``MultiWorkerMirroredStrategy`` through a TrainJob; return the model.

    Args:
        data: the Dataset artifact; copied to ``<shared_root>/<job>/data`` for the nodes.
        model: the SavedModel the chief exported (copied back from ``<shared_root>/<job>/model``).
        trainjob_manifest: the TrainJob submitted (``trainjob.yaml``), also written on a dry run.
        label: label column.
        shared_root: a folder this pod and every node see at the same path (the PVC's mount, or ``/gcs/...``).
        namespace: namespace of the TrainJob (where the RBAC is installed).
        num_nodes: training nodes; gpus_per_node / cpu / memory: per node.
        node_selector: node labels every node needs; tolerations: Kubernetes tolerations of every node.
        train_args: keyword arguments of ``core.train`` (epochs, batch_size, ...).
        shared_pvc: the ReadWriteMany claim mounted at ``shared_root`` on the nodes (empty: e.g. GCS FUSE).
        service_account: the nodes' service account; image: training image (default kfpc's tf-gpu image).
        timeout_seconds: delete the job and fail after this long (0: no limit).
        dry_run: render ``trainjob_manifest`` only; nothing is submitted, ``model`` stays empty.
    """
    import os
    import shutil
    import uuid

    import yaml

    from kfpc.components import images as kfpc_images
    from kfpc.components.train import trainjob

    name = f"kfpc-train-{uuid.uuid4().hex[:10]}"
    job_root = os.path.join(shared_root, name)
    manifest = trainjob.render_trainjob(
        name, namespace=namespace, image=image or kfpc_images.TF_GPU, dataset_uri=os.path.join(job_root, "data"),
        model_uri=os.path.join(job_root, "model"), label=label, num_nodes=num_nodes, gpus_per_node=gpus_per_node,
        cpu=cpu, memory=memory, node_selector=node_selector, tolerations=tolerations, train_args=train_args,
        shared_pvc=shared_pvc, shared_mount=shared_root, service_account=service_account,
        active_deadline_seconds=timeout_seconds)
    os.makedirs(trainjob_manifest.path, exist_ok=True)
    with open(os.path.join(trainjob_manifest.path, "trainjob.yaml"), "w") as f:
        yaml.safe_dump(manifest, f, sort_keys=False)
    trainjob_manifest.metadata.update({"kind": "trainjob", "name": name, "namespace": namespace,
                                       "num_nodes": num_nodes, "dry_run": dry_run})
    if dry_run:
        return
    shutil.copytree(data.path, os.path.join(job_root, "data"))
    trainjob.launch(manifest, timeout_seconds=timeout_seconds)
    trainjob.fetch_model(os.path.join(job_root, "model"), model.path)
    model.metadata.update({"trainjob": name, "num_nodes": num_nodes})
