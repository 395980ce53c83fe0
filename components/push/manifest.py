"""Render KServe InferenceService manifests with the kserve SDK's own objects.

Every manifest is built from ``kserve.V1beta1*`` and ``kubernetes.client.V1*`` objects and serialized the
way ``KServeClient`` serializes them (``ApiClient.sanitize_for_serialization``), so field names and
nesting are the SDK's, never hand-written strings. Canary and promotion are pure functions on the
resulting dicts, which keeps the rollout logic testable without a cluster.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from typing import Any

from kfpc.components import defaults as D
from kfpc.components import images

API_VERSION = "serving.kserve.io/v1beta1"
KIND = "InferenceService"
GROUP = "serving.kserve.io"
VERSION = "v1beta1"
PLURAL = "inferenceservices"

DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
#: annotation on the InferenceService recording which model version it serves (read back on the next push)
MODEL_URI_ANNOTATION = "kfpc.dev/model-uri"
#: set during a canary: the model URI the previous revision / main predictor (100 - canary %) serves
PREVIOUS_URI_ANNOTATION = "kfpc.dev/previous-model-uri"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MODEL_VERSION_LABEL = "kfpc.dev/model-version"

#: KServe >= 0.15 names; the legacy names are still accepted by the controller and kept verbatim when given
KNATIVE = "Knative"
STANDARD = "Standard"
_MODE_ALIASES = {"knative": KNATIVE, "serverless": KNATIVE, "standard": STANDARD, "rawdeployment": STANDARD}

PREDICTORS = ("kfpc", "tensorflow")
#: where KServe's storage initializer puts the model inside the predictor pod
MODEL_MOUNT = "/mnt/models"
HTTP_PORT = 8080
CONTAINER_NAME = "kserve-container"

_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")


class ManifestError(ValueError):
    """An option cannot be rendered into a valid InferenceService; the message names the option and value."""


def canonical_mode(deployment_mode: str) -> str:
    """``Knative`` or ``Standard`` for a deployment mode name (legacy ``Serverless``/``RawDeployment`` accepted)."""
    mode = _MODE_ALIASES.get(str(deployment_mode).lower())
    if mode is None:
        raise ManifestError(
            f"deployment_mode must be one of Knative, Standard (or legacy Serverless, RawDeployment), "
            f"got {deployment_mode!r}"
        )
    return mode


@dataclasses.dataclass(frozen=True)
class ServingOptions:
    """How the model is served: everything the InferenceService says besides the model's URI.

    Attributes:
        name: InferenceService name (DNS-1035 label: lowercase letters, digits, '-', starting with a letter).
        namespace: Kubernetes namespace.
        predictor: ``kfpc`` (our model server image; protocols v1 and v2) or ``tensorflow`` (KServe's built-in
            TensorFlow Serving runtime; protocol v1 only).
        image: predictor image for ``kfpc``.
        protocol: ``v1`` or ``v2``; ``tensorflow`` accepts only ``v1``.
        deployment_mode: ``Knative`` or ``Standard`` (legacy ``Serverless``/``RawDeployment`` kept verbatim).
        cpu_request, memory_request, cpu_limit, memory_limit: Kubernetes quantities; empty = unset.
        gpu: GPUs per replica (limit on ``gpu_resource``).
        gpu_resource: the extended resource name of the GPU.
        min_replicas, max_replicas: autoscaling bounds.
        service_account: service account of the predictor pod (the one allowed to read the storage URI).
        runtime_version: TensorFlow Serving image tag for ``tensorflow`` (e.g. ``2.6.2-gpu``); empty = default.
        node_selector: node labels the predictor must run on (e.g. a GPU node pool).
        batcher_max_batch_size: > 0 adds KServe's own request batcher (the agent sidecar) in front of the
            predictor, with this maximum batch size; 0 = none. The kfpc server batches by itself too
            (``--max_batch_size``); the sidecar is for the ``tensorflow`` runtime or mixed fleets.
        batcher_max_latency_ms: the batcher's longest wait for a batch to fill, in milliseconds (0 = KServe's default).
        batcher_timeout_s: the batcher's request timeout in seconds (0 = KServe's default).
    """

    name: str
    namespace: str = D.NAMESPACE
    predictor: str = "kfpc"
    image: str = images.SERVING
    protocol: str = "v2"
    deployment_mode: str = STANDARD
    cpu_request: str = D.CPU_REQUEST
    memory_request: str = D.MEMORY_REQUEST
    cpu_limit: str = D.CPU_LIMIT
    memory_limit: str = D.MEMORY_LIMIT
    gpu: int = D.GPU
    gpu_resource: str = "nvidia.com/gpu"
    min_replicas: int = D.MIN_REPLICAS
    max_replicas: int = D.MAX_REPLICAS
    service_account: str = ""
    runtime_version: str = ""
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    batcher_max_batch_size: int = 0
    batcher_max_latency_ms: int = 0
    batcher_timeout_s: int = 0

    def __post_init__(self) -> None:
        if not (isinstance(self.name, str) and _DNS1035.match(self.name) and len(self.name) <= 63):
            raise ManifestError(
                f"name {self.name!r} is not a valid InferenceService name (DNS-1035 label: lowercase letters, "
                f"digits and '-', starting with a letter, at most 63 characters)"
            )
        if not (isinstance(self.namespace, str) and _DNS1123.match(self.namespace) and len(self.namespace) <= 63):
            raise ManifestError(f"namespace {self.namespace!r} is not a valid Kubernetes namespace name")
        if self.predictor not in PREDICTORS:
            raise ManifestError(f"predictor must be one of {PREDICTORS}, got {self.predictor!r}")
        if self.protocol not in ("v1", "v2"):
            raise ManifestError(f"protocol must be 'v1' or 'v2', got {self.protocol!r}")
        if self.predictor == "tensorflow" and self.protocol != "v1":
            raise ManifestError(
                f"predictor 'tensorflow' (KServe's TensorFlow Serving runtime) speaks protocol v1 only, "
                f"got protocol {self.protocol!r}; use predictor='kfpc' for v2"
            )
        if self.predictor == "kfpc" and not self.image:
            raise ManifestError("image must be set for predictor 'kfpc'")
        canonical_mode(self.deployment_mode)
        for field in ("cpu_request", "memory_request", "cpu_limit", "memory_limit"):
            value = getattr(self, field)
            if value and not _QUANTITY.match(str(value)):
                raise ManifestError(f"{field} {value!r} is not a Kubernetes quantity (e.g. '500m', '2', '4Gi')")
        for field in ("gpu", "min_replicas", "max_replicas", "batcher_max_batch_size", "batcher_max_latency_ms",
                      "batcher_timeout_s"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ManifestError(f"{field} must be a non-negative integer, got {value!r}")
        if self.max_replicas < 1:
            raise ManifestError(f"max_replicas must be at least 1, got {self.max_replicas}")
        if self.min_replicas > self.max_replicas:
            raise ManifestError(
                f"min_replicas ({self.min_replicas}) must not exceed max_replicas ({self.max_replicas})"
            )
        if self.service_account and not _DNS1123.match(self.service_account):
            raise ManifestError(f"service_account {self.service_account!r} is not a valid service account name")

    @property
    def mode(self) -> str:
        """The canonical deployment mode, ``Knative`` or ``Standard``."""
        return canonical_mode(self.deployment_mode)


def _api_client():
    # ApiClient builds no connection until a request is made; it is only used as the SDK's serializer.
    from kubernetes.client import ApiClient

    return ApiClient()


def _resources(opts: ServingOptions):
    from kubernetes.client import V1ResourceRequirements

    requests = {k: v for k, v in (("cpu", opts.cpu_request), ("memory", opts.memory_request)) if v}
    limits = {k: v for k, v in (("cpu", opts.cpu_limit), ("memory", opts.memory_limit)) if v}
    if opts.gpu:
        # Extended resources are set as limits; Kubernetes copies them to requests.
        limits[opts.gpu_resource] = str(opts.gpu)
    return V1ResourceRequirements(requests=requests or None, limits=limits or None)


def server_args(model_name: str) -> list[str]:
    """Arguments of our model server container: serve ``/mnt/models`` under ``model_name`` on port 8080."""
    return [f"--model_name={model_name}", f"--model_dir={MODEL_MOUNT}", f"--http_port={HTTP_PORT}"]


def predictor_spec(opts: ServingOptions, storage_uri: str) -> dict[str, Any]:
    """The ``spec.predictor`` of an InferenceService serving ``storage_uri``, as the API server receives it.

    Args:
        opts: serving options.
        storage_uri: the versioned model folder (``gs://``, ``s3://``, ``pvc://`` ...) holding ``1/saved_model.pb``.
    Returns:
        The predictor as a JSON-ready dict (camelCase keys).
    """
    return _api_client().sanitize_for_serialization(_predictor_object(opts, storage_uri))


def security_context(run_as_user: int | None = None):
    """The predictor container's securityContext: non-root, no privilege escalation, every capability
    dropped, the runtime's default seccomp profile (what the Kubernetes "restricted" Pod Security Standard
    asks for).

    Args:
        run_as_user: a UID to run as, for an image whose own user is root (KServe's TF Serving runtime);
            the kfpc serving image already runs as UID 10001.
    """
    from kubernetes.client import V1Capabilities, V1SeccompProfile, V1SecurityContext

    return V1SecurityContext(
        run_as_non_root=True,
        run_as_user=run_as_user,
        allow_privilege_escalation=False,
        capabilities=V1Capabilities(drop=["ALL"]),
        seccomp_profile=V1SeccompProfile(type="RuntimeDefault"),
    )


#: the UID the TF Serving runtime's container runs as (its image's user is root, which runAsNonRoot refuses)
TF_SERVING_UID = 10001


def _predictor_object(opts: ServingOptions, storage_uri: str):
    import kserve
    from kubernetes.client import V1Container, V1ContainerPort, V1EnvVar

    if not storage_uri:
        raise ManifestError("storage_uri is empty: nothing to serve")
    common = dict(
        min_replicas=opts.min_replicas,
        max_replicas=opts.max_replicas,
        service_account_name=opts.service_account or None,
        node_selector=dict(opts.node_selector) or None,
    )
    if opts.batcher_max_batch_size:
        common["batcher"] = kserve.V1beta1Batcher(
            max_batch_size=opts.batcher_max_batch_size,
            max_latency=opts.batcher_max_latency_ms or None,
            timeout=opts.batcher_timeout_s or None,
        )
    if opts.predictor == "tensorflow":
        model = kserve.V1beta1ModelSpec(
            model_format=kserve.V1beta1ModelFormat(name="tensorflow", version="2"),
            storage_uri=storage_uri,
            protocol_version="v1",
            runtime_version=opts.runtime_version or None,
            resources=_resources(opts),
            security_context=security_context(TF_SERVING_UID),
        )
        # ``spec.canary[].predictor.model`` requires a container name in the CRD (the main predictor does not);
        # KServe defaults it to kserve-container anyway, so name it so in both places.
        model.name = CONTAINER_NAME
        spec = kserve.V1beta1PredictorSpec(model=model, **common)
    else:
        container = V1Container(
            name=CONTAINER_NAME,
            image=opts.image,
            args=server_args(opts.name),
            # STORAGE_URI makes KServe run its storage initializer for a custom container: the model is
            # downloaded to /mnt/models before the server starts, exactly as for built-in runtimes.
            env=[V1EnvVar(name="STORAGE_URI", value=storage_uri)],
            ports=[V1ContainerPort(container_port=HTTP_PORT, protocol="TCP")],
            resources=_resources(opts),
            security_context=security_context(),
        )
        spec = kserve.V1beta1PredictorSpec(containers=[container], **common)
    return spec


def render(opts: ServingOptions, storage_uri: str, *, model_version: str = "") -> dict[str, Any]:
    """A complete InferenceService serving ``storage_uri`` at 100% of traffic.

    Args:
        opts: serving options.
        storage_uri: the versioned model folder.
        model_version: the version folder name (a label, for ``kubectl get -l``); empty = no label.
    Returns:
        The InferenceService as a JSON-ready dict.
    """
    import kserve
    from kubernetes.client import V1ObjectMeta

    labels = {MANAGED_BY_LABEL: "kfpc"}
    if model_version:
        labels[MODEL_VERSION_LABEL] = model_version
    isvc = kserve.V1beta1InferenceService(
        api_version=API_VERSION,
        kind=KIND,
        metadata=V1ObjectMeta(
            name=opts.name,
            namespace=opts.namespace,
            labels=labels,
            annotations={DEPLOYMENT_MODE_ANNOTATION: opts.deployment_mode, MODEL_URI_ANNOTATION: storage_uri},
        ),
        spec=kserve.V1beta1InferenceServiceSpec(predictor=_predictor_object(opts, storage_uri)),
    )
    return _api_client().sanitize_for_serialization(isvc)


def storage_uri_of(predictor: dict[str, Any] | None) -> str:
    """The model URI a predictor serves ("" when none): ``model.storageUri``, a framework spec, or STORAGE_URI."""
    if not predictor:
        return ""
    for key in ("model", "tensorflow", "sklearn", "xgboost", "pytorch", "triton", "onnx", "lightgbm", "pmml"):
        uri = (predictor.get(key) or {}).get("storageUri")
        if uri:
            return uri
    for container in predictor.get("containers") or []:
        for env in container.get("env") or []:
            if env.get("name") == "STORAGE_URI" and env.get("value"):
                return env["value"]
    return ""


def served_model_uri(isvc: dict[str, Any] | None) -> str:
    """The model URI taking the main share of traffic in an existing InferenceService ("" when none).

    In Standard mode with ``spec.canary`` the main predictor is ``spec.predictor``; in Knative mode with
    ``canaryTrafficPercent`` the new spec is the canary, so the previously rolled-out model is read from our
    annotation history when present.
    """
    if not isvc:
        return ""
    spec = isvc.get("spec") or {}
    predictor = spec.get("predictor") or {}
    annotations = (isvc.get("metadata") or {}).get("annotations") or {}
    if predictor.get("canaryTrafficPercent") not in (None, 100) and annotations.get(PREVIOUS_URI_ANNOTATION):
        return annotations[PREVIOUS_URI_ANNOTATION]
    return storage_uri_of(predictor)


def knative_canary(desired: dict[str, Any], percent: int, previous_uri: str) -> dict[str, Any]:
    """The desired InferenceService sending ``percent`` % to the new revision (Knative ``canaryTrafficPercent``).

    Knative keeps the previously rolled-out revision and routes ``100 - percent`` % to it.
    """
    _check_percent(percent)
    body = copy.deepcopy(desired)
    body["spec"]["predictor"]["canaryTrafficPercent"] = percent
    body["metadata"]["annotations"][PREVIOUS_URI_ANNOTATION] = previous_uri
    return body


def standard_canary(desired: dict[str, Any], current: dict[str, Any], percent: int) -> dict[str, Any]:
    """The desired InferenceService keeping the current predictor and adding the new one as ``spec.canary``.

    Standard mode (KServe >= 0.20): ``spec.canary`` is a list of ``{predictor, trafficPercent}``; the main
    predictor keeps ``100 - percent`` %.
    """
    _check_percent(percent)
    body = copy.deepcopy(desired)
    body["spec"] = {
        "predictor": copy.deepcopy(current["spec"]["predictor"]),
        "canary": [{"predictor": desired["spec"]["predictor"], "trafficPercent": percent}],
    }
    body["metadata"]["annotations"][PREVIOUS_URI_ANNOTATION] = storage_uri_of(current["spec"]["predictor"])
    # The served (main) model is still the current one until promotion.
    body["metadata"]["annotations"][MODEL_URI_ANNOTATION] = storage_uri_of(current["spec"]["predictor"])
    return body


def _check_percent(percent: int) -> None:
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 < percent < 100:
        raise ManifestError(f"canary_traffic_percent must be an integer in 1..99, got {percent!r}")


def merge_patch(current: Any, desired: Any) -> Any:
    """The RFC 7386 JSON merge patch turning ``current`` into ``desired`` (``None`` deletes a key).

    Args:
        current: the object as it is (dicts, lists, scalars).
        desired: the object as it should be.
    Returns:
        The patch; ``{}`` when nothing changes. Lists are replaced whole, as merge patch defines.
    """
    if not isinstance(current, dict) or not isinstance(desired, dict):
        return copy.deepcopy(desired)
    patch: dict[str, Any] = {}
    for key in current:
        if key not in desired:
            patch[key] = None
    for key, value in desired.items():
        if key not in current:
            patch[key] = copy.deepcopy(value)
        elif current[key] != value:
            if isinstance(current[key], dict) and isinstance(value, dict):
                sub = merge_patch(current[key], value)
                if sub != {}:
                    patch[key] = sub
            else:
                patch[key] = copy.deepcopy(value)
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch (what the API server does for ``application/merge-patch+json``)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result
