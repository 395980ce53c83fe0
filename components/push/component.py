"""KFP v2 components: push_kserve and push_vertex. Translate inputs/outputs, call the cores, write metadata."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from kfpc.components import images
from kfpc.components.artifact_types import Blessing, VertexEndpoint, VertexModel


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def push_kserve(
    model: Input[Model],
    manifest: Output[Artifact],
    serving_root: str,
    name: str,
    blessing: Input[Blessing] = None,
    data: Input[Dataset] = None,
    monitoring: Input[Artifact] = None,
    blessed: bool = True,
    force: bool = False,
    mode: str = "dry_run",
    namespace: str = "default",
    canary_traffic_percent: int = 0,
    promote: bool = False,
    deployment_mode: str = "Standard",
    predictor: str = "kfpc",
    image: str = "",
    protocol: str = "",
    cpu_request: str = "1",
    memory_request: str = "2Gi",
    cpu_limit: str = "2",
    memory_limit: str = "4Gi",
    gpu: int = 0,
    min_replicas: int = 1,
    max_replicas: int = 3,
    service_account: str = "",
    runtime_version: str = "",
    batcher_max_batch_size: int = 0,
    batcher_max_latency_ms: int = 0,
    timeout_s: int = 600,
    bake_s: float = 300.0,
    max_error_rate: float = 0.01,
    max_p99_latency_ms: float = 1000.0,
    min_requests: int = 50,
    max_error_rate_increase: float = 0.005,
    max_p99_ratio: float = 1.5,
    prometheus_url: str = "",
    prometheus_selector: str = "",
    prometheus_stable_selector: str = "",
    canary_metrics_url: str = "",
) -> NamedTuple("PushOutputs", endpoint_url=str, model_uri=str, previous_model_uri=str):
    """Copy a blessed model to a new version under ``serving_root`` and roll it out as a KServe InferenceService.

    Args:
        model: the Model artifact (``1/saved_model.pb`` + ``model_card.json``).
        manifest: output: ``inferenceservice.yaml``, ``requests.json``, ``push.json`` (+ ``smoke.json`` in local mode,
            + ``prometheusrule.yaml`` and ``dashboard.json`` with ``monitoring``).
        serving_root: root of the versioned copies: ``gs://``/``s3://`` (cluster) or a local path.
        name: InferenceService name (DNS-1035) and the model's folder under the root.
        blessing: evaluation's blessing artifact (metadata ``blessed``); decides over ``blessed`` when given.
        data: optional Dataset; local mode takes smoke-test rows from its eval split.
        monitoring: optional ``monitoring_config`` output; its ``prometheusrule.yaml`` and ``dashboard.json`` are
            written into ``manifest`` (apply them with the InferenceService; push does not).
        blessed: the verdict when no blessing artifact is passed.
        force: push even if not blessed.
        mode: ``dry_run`` (manifest + requests only), ``local`` (serve the pushed copy and smoke-test it),
            ``cluster`` (create/patch the InferenceService and wait for Ready).
        namespace: Kubernetes namespace.
        canary_traffic_percent: 1..99 for a canary; 0 sends all traffic to the new model.
        promote: after a Ready canary has baked within the thresholds, move it to 100% (failing: rolled back).
        deployment_mode: ``Standard`` or ``Knative``.
        predictor: ``kfpc`` (our server image) or ``tensorflow`` (KServe's TF Serving runtime, protocol v1).
        image: predictor image for ``kfpc``; empty = the kfpc serving image of this release.
        protocol: ``v1`` | ``v2``; empty = v2 for kfpc, v1 for tensorflow.
        cpu_request: CPU request per replica.
        memory_request: memory request per replica.
        cpu_limit: CPU limit per replica.
        memory_limit: memory limit per replica.
        gpu: GPUs per replica.
        min_replicas: least replicas.
        max_replicas: most replicas.
        service_account: predictor pods' service account (must read ``serving_root``).
        runtime_version: TF Serving image tag for ``tensorflow``.
        batcher_max_batch_size: > 0 adds KServe's own request batcher in front of the predictor; 0 = none.
        batcher_max_latency_ms: the batcher's longest wait for a batch to fill, ms (0 = KServe's default).
        timeout_s: seconds to wait for Ready per step.
        bake_s: promote: seconds the canary must serve within the thresholds before promotion.
        max_error_rate: promote: highest share of 5xx answers of the canary.
        max_p99_latency_ms: promote: highest p99 latency of the canary, ms.
        min_requests: promote: requests the canary must have answered to be judged (and, with Prometheus, the
            stable revision).
        max_error_rate_increase: promote with Prometheus: how far the canary's 5xx share may exceed the stable's.
        max_p99_ratio: promote with Prometheus: the canary's p99 may be at most this factor times the stable's.
        prometheus_url: promote: Prometheus base URL to judge the canary by (query API).
        prometheus_selector: label matchers picking the canary's series; empty = Knative revision pods.
        prometheus_stable_selector: label matchers picking the stable revision's series (the baseline); empty =
            ``prometheus_selector`` with ``{revision}`` = the stable revision.
        canary_metrics_url: promote without Prometheus: the canary's own /metrics URL.
    Returns:
        endpoint_url, model_uri (the new version), previous_model_uri (the baseline for the next evaluation).
    """
    params = dict(locals())  # (first: the parameters, for the core)

    from collections import namedtuple

    from kfpc.components import artifacts
    from kfpc.components import images as image_refs
    from kfpc.components._calls import same_named
    from kfpc.components.push import core

    verdict = artifacts.blessing_verdict(
        None if blessing is None else dict(blessing.metadata), blessed, getattr(blessing, "uri", "blessing")
    )
    result = core.push_kserve(model.path, **same_named(
        core.push_kserve, params, blessed=verdict, canary_traffic_percent=canary_traffic_percent or None,
        image=image or image_refs.SERVING, output_dir=manifest.path, data_dir=None if data is None else data.path,
        monitoring_dir=None if monitoring is None else monitoring.path,
    ))
    manifest.metadata.update(result.metadata())
    outputs = namedtuple("PushOutputs", ["endpoint_url", "model_uri", "previous_model_uri"])
    return outputs(result.endpoint_url, result.model_uri, result.previous_model_uri)


@dsl.component(base_image=images.DEPLOY, install_kfp_package=False)
def push_vertex(
    model: Input[Model],
    requests: Output[Artifact],
    vertex_model: Output[VertexModel],
    vertex_endpoint: Output[VertexEndpoint],
    serving_root: str,
    name: str,
    project: str,
    location: str,
    blessing: Input[Blessing] = None,
    blessed: bool = True,
    force: bool = False,
    mode: str = "dry_run",
    container: str = "kfpc",
    image: str = "",
    tf_version: str = "2.15",
    machine_type: str = "n1-standard-4",
    accelerator_type: str = "",
    accelerator_count: int = 0,
    min_replica_count: int = 1,
    max_replica_count: int = 1,
    traffic_percent: int = 100,
    endpoint: str = "",
    parent_model: str = "",
    service_account: str = "",
    timeout_s: int = 1800,
) -> NamedTuple("VertexPushOutputs", endpoint_url=str, model_uri=str, previous_model_uri=str):
    """Copy a blessed model to a new ``gs://`` version, upload it to the Vertex AI Model Registry and deploy it.

    Args:
        model: the Model artifact.
        requests: output: ``vertex_requests.json`` (the aiplatform_v1 requests) and ``push.json``.
        vertex_model: output: the uploaded Model as GCPC's ``google.VertexModel`` (metadata ``resourceName``,
            ``uri`` its REST URL), so GCPC ops take it; in dry_run the resource name is a placeholder.
        vertex_endpoint: output: the Endpoint as GCPC's ``google.VertexEndpoint`` (same keys).
        serving_root: ``gs://`` root of the versioned copies.
        name: folder under the root and Vertex display name.
        project: Google Cloud project.
        location: Vertex AI region.
        blessing: evaluation's blessing artifact (metadata ``blessed``).
        blessed: the verdict when no blessing artifact is passed.
        force: push even if not blessed.
        mode: ``dry_run`` (build the requests only) or ``cloud``.
        container: ``kfpc`` (our serving image) or ``tensorflow`` (Vertex's prebuilt TF Serving).
        image: serving image for ``kfpc``; empty = the kfpc serving image of this release.
        tf_version: prebuilt TF container version.
        machine_type: serving machine type.
        accelerator_type: e.g. ``NVIDIA_TESLA_T4``; empty = none.
        accelerator_count: accelerators per replica.
        min_replica_count: least replicas.
        max_replica_count: most replicas.
        traffic_percent: the new model's share of the endpoint's traffic.
        endpoint: existing endpoint (resource name or id); empty creates one.
        parent_model: registry model to add a version to; empty registers a new model.
        service_account: the deployed model's service account.
        timeout_s: seconds per long-running operation.
    Returns:
        endpoint_url, model_uri (the new version), previous_model_uri.
    """
    params = dict(locals())  # (first: the parameters, for the core)

    from collections import namedtuple

    from kfpc.components import artifacts
    from kfpc.components import images as image_refs
    from kfpc.components._calls import same_named
    from kfpc.components.artifact_types import vertex_resource_uri
    from kfpc.components.push import core

    verdict = artifacts.blessing_verdict(
        None if blessing is None else dict(blessing.metadata), blessed, getattr(blessing, "uri", "blessing")
    )
    result = core.push_vertex(model.path, **same_named(
        core.push_vertex, params, blessed=verdict, image=image or image_refs.SERVING, output_dir=requests.path,
    ))
    requests.metadata.update(result.metadata())
    for artifact, resource in ((vertex_model, result.vertex_model), (vertex_endpoint, result.vertex_endpoint)):
        artifact.metadata["resourceName"] = resource
        artifact.uri = vertex_resource_uri(result.vertex_api_endpoint, resource)
    outputs = namedtuple("VertexPushOutputs", ["endpoint_url", "model_uri", "previous_model_uri"])
    return outputs(result.endpoint_url, result.model_uri, result.previous_model_uri)
