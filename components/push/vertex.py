"""Push to Vertex AI: upload to the Model Registry and deploy to an endpoint with a traffic split.

Every request is a ``google.cloud.aiplatform_v1`` proto built here, and the live path sends exactly those
protos through the GAPIC clients (``ModelServiceClient``, ``EndpointServiceClient``), so what a dry run
shows is what a real run sends. The dry run constructs the clients too (with anonymous credentials: no
network) to report the regional API host the requests would go to.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from kfpc.components import defaults as D
from kfpc.components import images
from kfpc.components.push import manifest

CONTAINERS = ("kfpc", "tensorflow")
#: placeholder for names only known once the previous request has run (dry run)
UPLOADED_MODEL = "{uploaded-model}"
CREATED_ENDPOINT = "{created-endpoint}"
DEPLOYED_MODELS = "{deployed-models}"
_LOCATION = re.compile(r"^[a-z]+-[a-z]+\d+$")
_PROJECT = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$|^\d+$")


class VertexError(ValueError):
    """An option cannot become a valid Vertex AI request; the message names the option and value."""


@dataclasses.dataclass(frozen=True)
class VertexOptions:
    """Where and how the model is served on Vertex AI.

    Attributes:
        project, location: the Google Cloud project (id or number) and region (e.g. ``europe-west4``).
        display_name: model (and new endpoint) display name.
        container: ``kfpc`` (our serving image) or ``tensorflow`` (Vertex's prebuilt TF Serving container).
        image: serving image for ``kfpc``.
        tf_version: prebuilt TensorFlow container version for ``tensorflow``.
        machine_type, accelerator_type, accelerator_count: the serving machine (``accelerator_type`` is an
            ``AcceleratorType`` name such as ``NVIDIA_TESLA_T4``; empty = none).
        min_replica_count, max_replica_count: autoscaling bounds.
        traffic_percent: share of the endpoint's traffic for the new model (1..100); the rest is spread over
            the models already deployed in their current proportions.
        endpoint: existing endpoint (resource name or numeric id); empty = create one.
        parent_model: existing model (resource name or id) to add this upload as a new version of.
        service_account: the deployed model's service account.
        labels: labels on the model and a new endpoint.
    """

    project: str
    location: str
    display_name: str
    container: str = D.VERTEX_CONTAINER
    image: str = images.SERVING
    tf_version: str = D.VERTEX_TF_VERSION
    machine_type: str = D.VERTEX_MACHINE_TYPE
    accelerator_type: str = ""
    accelerator_count: int = 0
    min_replica_count: int = D.VERTEX_MIN_REPLICA_COUNT
    max_replica_count: int = D.VERTEX_MAX_REPLICA_COUNT
    traffic_percent: int = D.VERTEX_TRAFFIC_PERCENT
    endpoint: str = ""
    parent_model: str = ""
    service_account: str = ""
    labels: dict[str, str] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        from google.cloud import aiplatform_v1

        if not self.project or not _PROJECT.match(self.project):
            raise VertexError(f"project {self.project!r} is not a Google Cloud project id or number")
        if not _LOCATION.match(self.location or ""):
            raise VertexError(f"location {self.location!r} is not a Vertex AI region such as 'europe-west4'")
        if not self.display_name or len(self.display_name) > 128:
            raise VertexError(f"display_name must be 1..128 characters, got {self.display_name!r}")
        if self.container not in CONTAINERS:
            raise VertexError(f"container must be one of {CONTAINERS}, got {self.container!r}")
        if not self.machine_type:
            raise VertexError("machine_type must be set (e.g. 'n1-standard-4')")
        if self.accelerator_type and self.accelerator_type not in aiplatform_v1.AcceleratorType.__members__:
            known = [n for n in aiplatform_v1.AcceleratorType.__members__ if n != "ACCELERATOR_TYPE_UNSPECIFIED"]
            raise VertexError(f"accelerator_type {self.accelerator_type!r} is not one of {known}")
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise VertexError(
                f"accelerator_type ({self.accelerator_type!r}) and accelerator_count ({self.accelerator_count}) "
                f"must be set together"
            )
        if not 1 <= self.min_replica_count <= self.max_replica_count:
            raise VertexError(
                f"replica counts must satisfy 1 <= min ({self.min_replica_count}) <= max ({self.max_replica_count})"
            )
        if isinstance(self.traffic_percent, bool) or not 1 <= self.traffic_percent <= 100:
            raise VertexError(f"traffic_percent must be 1..100, got {self.traffic_percent!r}")

    @property
    def parent(self) -> str:
        """``projects/<project>/locations/<location>``."""
        return f"projects/{self.project}/locations/{self.location}"

    @property
    def api_endpoint(self) -> str:
        """The regional API host."""
        return f"{self.location}-aiplatform.googleapis.com"

    def resource(self, kind: str, name: str) -> str:
        """A full resource name from a bare id (names pass through)."""
        return name if name.startswith("projects/") else f"{self.parent}/{kind}/{name}"


def prebuilt_tensorflow_image(opts: VertexOptions) -> str:
    """Vertex's prebuilt TF Serving image for ``tf_version`` in ``location`` (CPU or GPU by accelerator)."""
    from google.cloud.aiplatform import helpers

    try:
        return helpers.get_prebuilt_prediction_container_uri(
            framework="tensorflow", framework_version=opts.tf_version, region=opts.location,
            accelerator="gpu" if opts.accelerator_count else "cpu",
        )
    except ValueError as err:
        raise VertexError(f"tf_version {opts.tf_version!r}: {err}") from None


def artifact_uri_for(opts: VertexOptions, model_uri: str) -> str:
    """The folder Vertex copies into the container: the version folder for our server; ``1/`` for TF Serving.

    Vertex's prebuilt TF container expects ``saved_model.pb`` directly in ``artifact_uri``.
    """
    return model_uri.rstrip("/") + "/1" if opts.container == "tensorflow" else model_uri


def upload_request(opts: VertexOptions, model_uri: str):
    """The ``UploadModelRequest`` registering the pushed version (``model_uri``, a ``gs://`` folder)."""
    from google.cloud import aiplatform_v1 as v1

    if opts.container == "tensorflow":
        container = v1.ModelContainerSpec(image_uri=prebuilt_tensorflow_image(opts))
    else:
        name = "model"
        container = v1.ModelContainerSpec(
            image_uri=opts.image,
            # Vertex copies artifact_uri to AIP_STORAGE_URI and expands $(VAR) in args.
            args=[f"--model_name={name}", "--model_dir=$(AIP_STORAGE_URI)", f"--http_port={manifest.HTTP_PORT}"],
            ports=[v1.Port(container_port=manifest.HTTP_PORT)],
            predict_route=f"/v1/models/{name}:predict",
            health_route=f"/v2/models/{name}/ready",
        )
    model = v1.Model(
        display_name=opts.display_name,
        artifact_uri=artifact_uri_for(opts, model_uri),
        container_spec=container,
        labels=dict(opts.labels),
    )
    request = v1.UploadModelRequest(parent=opts.parent, model=model)
    if opts.parent_model:
        request.parent_model = opts.resource("models", opts.parent_model)
    return request


def create_endpoint_request(opts: VertexOptions):
    """The ``CreateEndpointRequest`` for a new endpoint named after the model."""
    from google.cloud import aiplatform_v1 as v1

    return v1.CreateEndpointRequest(
        parent=opts.parent, endpoint=v1.Endpoint(display_name=opts.display_name, labels=dict(opts.labels))
    )


def split_traffic(current: dict[str, int], percent: int) -> dict[str, int]:
    """The endpoint's traffic split with the new model (key ``"0"``) at ``percent``.

    The models already deployed keep their relative shares of the rest (largest remainders get the rounding),
    and the split sums to exactly 100 as Vertex requires.
    """
    rest = 100 - percent
    total = sum(v for v in current.values() if v > 0)
    split = {"0": percent}
    if rest == 0:
        return split
    if total == 0:
        if current:
            raise VertexError(f"the endpoint's models have no traffic to scale ({current}); deploy at 100%")
        raise VertexError(f"traffic_percent {percent} leaves {rest}% for other models, but the endpoint has none")
    exact = {k: v * rest / total for k, v in current.items() if v > 0}
    floors = {k: int(x) for k, x in exact.items()}
    left = rest - sum(floors.values())
    for key in sorted(exact, key=lambda k: (floors[k] - exact[k], k))[:left]:
        floors[key] += 1
    split.update(floors)
    return split


def deploy_request(opts: VertexOptions, endpoint: str, model: str, current_split: dict[str, int] | None = None):
    """The ``DeployModelRequest`` putting ``model`` on ``endpoint`` with the traffic split."""
    from google.cloud import aiplatform_v1 as v1

    machine = v1.MachineSpec(machine_type=opts.machine_type)
    if opts.accelerator_type:
        machine.accelerator_type = v1.AcceleratorType[opts.accelerator_type]
        machine.accelerator_count = opts.accelerator_count
    deployed = v1.DeployedModel(
        model=model,
        display_name=opts.display_name,
        dedicated_resources=v1.DedicatedResources(
            machine_spec=machine, min_replica_count=opts.min_replica_count, max_replica_count=opts.max_replica_count
        ),
    )
    if opts.service_account:
        deployed.service_account = opts.service_account
    return v1.DeployModelRequest(
        endpoint=endpoint, deployed_model=deployed, traffic_split=split_traffic(current_split or {}, opts.traffic_percent)
    )


@dataclasses.dataclass
class VertexResult:
    """Outcome of a Vertex push: resource names, the endpoint's predict URL and the requests (as dicts)."""

    model: str
    endpoint: str
    endpoint_url: str
    previous_model_uri: str
    api_endpoint: str
    requests: list[dict[str, Any]]


def _as_dict(kind: str, request) -> dict[str, Any]:
    return {"method": kind, "request": type(request).to_dict(request, preserving_proto_field_name=False)}


def _clients(opts: VertexOptions, credentials=None):
    from google.cloud import aiplatform_v1 as v1

    client_options = {"api_endpoint": opts.api_endpoint}
    return (v1.ModelServiceClient(credentials=credentials, client_options=client_options),
            v1.EndpointServiceClient(credentials=credentials, client_options=client_options))


def push(opts: VertexOptions, model_uri: str, *, dry_run: bool = True, credentials=None,
         timeout_s: float = D.VERTEX_TIMEOUT_S, current_traffic_split: dict[str, int] | None = None) -> VertexResult:
    """Upload ``model_uri`` to the Model Registry and deploy it (or, ``dry_run``, build those requests only).

    Args:
        opts: Vertex options.
        model_uri: the pushed ``gs://`` version folder.
        dry_run: build the requests, send nothing.
        credentials: Google credentials; None = application default (dry runs use anonymous ones).
        timeout_s: seconds to wait for each long-running operation.
        current_traffic_split: dry run with an existing endpoint: its traffic split (deployed model id ->
            percent); unknown = one placeholder key ``{deployed-models}`` for the share left to them.
    Returns:
        The model and endpoint resource names and the requests (sent or not).
    """
    if not dry_run and not model_uri.startswith("gs://"):
        raise VertexError(f"model_uri {model_uri!r}: Vertex AI reads models from Cloud Storage (gs://) only")
    if dry_run:
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    model_client, endpoint_client = _clients(opts, credentials)
    host = model_client._transport._host
    requests: list[dict[str, Any]] = []

    upload = upload_request(opts, model_uri)
    requests.append(_as_dict("ModelService.UploadModel", upload))
    create = None if opts.endpoint else create_endpoint_request(opts)
    if create is not None:
        requests.append(_as_dict("EndpointService.CreateEndpoint", create))
    if dry_run:
        endpoint = opts.resource("endpoints", opts.endpoint) if opts.endpoint else CREATED_ENDPOINT
        if opts.endpoint:
            requests.append({"method": "EndpointService.GetEndpoint", "request": {"name": endpoint}})
        current = current_traffic_split
        if current is None:
            current = {} if opts.traffic_percent == 100 or not opts.endpoint else {DEPLOYED_MODELS: 100}
        deploy = deploy_request(opts, endpoint, UPLOADED_MODEL, current)
        requests.append(_as_dict("EndpointService.DeployModel", deploy))
        return VertexResult(UPLOADED_MODEL, endpoint, _predict_url(opts, endpoint), "", host, requests)

    uploaded = model_client.upload_model(request=upload).result(timeout=timeout_s)
    model = uploaded.model + (f"@{uploaded.model_version_id}" if uploaded.model_version_id else "")
    if create is not None:
        endpoint = endpoint_client.create_endpoint(request=create).result(timeout=timeout_s).name
        current: dict[str, int] = {}
        previous_uri = ""
    else:
        endpoint = opts.resource("endpoints", opts.endpoint)
        live = endpoint_client.get_endpoint(name=endpoint)
        current = dict(live.traffic_split)
        previous_uri = ""
        if current:
            top = max(current, key=current.get)
            deployed = {d.id: d.model for d in live.deployed_models}
            if top in deployed:
                previous_uri = model_client.get_model(name=deployed[top]).artifact_uri
    deploy = deploy_request(opts, endpoint, model, current)
    requests.append(_as_dict("EndpointService.DeployModel", deploy))
    endpoint_client.deploy_model(request=deploy).result(timeout=timeout_s)
    return VertexResult(model, endpoint, _predict_url(opts, endpoint), previous_uri, host, requests)


def _predict_url(opts: VertexOptions, endpoint: str) -> str:
    return f"https://{opts.api_endpoint}/v1/{endpoint}:predict"
