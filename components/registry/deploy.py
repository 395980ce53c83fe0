"""Deployers for promotion and rollback: put a registered version on a KServe InferenceService or a Vertex
endpoint. They reuse push's manifest and rollout code (create/patch, optimistic concurrency, wait for Ready,
restore on failure), so a promotion is exactly as safe as a push.
"""

from __future__ import annotations

from typing import Any

from .core import SCHEME, Version

REGISTERED_NAME_ARG = "--registered_model_name"
REGISTERED_VERSION_ARG = "--registered_version"


def storage_uri_for(version: Version, use_registry_uri: bool = False) -> str:
    """The InferenceService ``storageUri``: ``model-registry://name/version`` for a cluster whose KServe has the
    model-registry storage initializer, else the version's artifact URI resolved here."""
    return f"{SCHEME}{version.model}/{version.version}" if use_registry_uri else version.uri


def with_registered_identity(isvc: dict[str, Any], version: Version) -> dict[str, Any]:
    """The InferenceService whose kfpc server reports the registered name and version in every response."""
    predictor = (isvc.get("spec") or {}).get("predictor") or {}
    for container in predictor.get("containers") or []:
        args = [a for a in container.get("args") or []
                if not a.startswith((REGISTERED_NAME_ARG + "=", REGISTERED_VERSION_ARG + "="))]
        container["args"] = args + [f"{REGISTERED_NAME_ARG}={version.model}",
                                    f"{REGISTERED_VERSION_ARG}={version.version}"]
    return isvc


def kserve_deployer(client, opts, *, use_registry_uri: bool = False, timeout_s: float = 600.0,
                    poll_s: float = 2.0):
    """A deploy function for :func:`~kfpc.components.registry.core.promote` / ``rollback``.

    Args:
        client: an ``IsvcClient`` (``kfpc.components.push.kube``).
        opts: ``kfpc.components.push.manifest.ServingOptions`` of the InferenceService.
        use_registry_uri: write ``model-registry://`` storage URIs (the cluster resolves them).
        timeout_s, poll_s: wait for Ready.
    Returns:
        ``deploy(version) -> dict`` (what was done).
    """
    from ..push import manifest, rollout

    def deploy(version: Version) -> dict[str, Any]:
        storage_uri = storage_uri_for(version, use_registry_uri)
        desired = with_registered_identity(manifest.render(opts, storage_uri, model_version=version.version), version)
        outcome = rollout.rollout(client, desired, opts, timeout_s=timeout_s, poll_s=poll_s)
        return {"target": f"inferenceservice {opts.namespace}/{opts.name}", "storage_uri": storage_uri,
                "action": outcome.action, "endpoint_url": outcome.endpoint_url,
                "previous_model_uri": outcome.previous_model_uri}

    return deploy


def vertex_deployer(endpoint_client, opts, endpoint: str, *, timeout_s: float = 1800.0):
    """A deploy function putting the registered Vertex version on ``endpoint`` with all of its traffic.

    Args:
        endpoint_client: an ``aiplatform_v1.EndpointServiceClient``.
        opts: ``kfpc.components.push.vertex.VertexOptions`` (machine, replicas; ``traffic_percent`` is 100).
        endpoint: endpoint resource name or id.
    """
    from ..push import vertex as push_vertex

    def deploy(version: Version) -> dict[str, Any]:
        name = opts.resource("endpoints", endpoint)
        request = push_vertex.deploy_request(opts, name, version.resource_name)
        endpoint_client.deploy_model(request=request).result(timeout=timeout_s)
        return {"target": name, "model": version.resource_name, "action": "deployed", "traffic_percent": 100}

    return deploy
