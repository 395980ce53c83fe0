"""The Kubernetes side of push: InferenceService reads and writes through the real ``kubernetes`` client.

:class:`IsvcClient` wraps ``CustomObjectsApi`` and turns API errors into our own exceptions (404 -> ``None``,
409 -> :class:`Conflict`, anything else -> :class:`KubeError` with the server's message). Writes use JSON
merge patch carrying ``metadata.resourceVersion``, so the API server refuses (409) a patch computed from a
stale read instead of silently overwriting someone else's change, and ``fieldValidation=Strict``, so a
field the CRD does not know is an error rather than silently dropped.

:class:`DryRunPool` replaces the client's HTTP connection pool for ``mode="dry_run"``: the same client
code serializes the same requests, which are recorded instead of sent, and answered by a small in-memory
cluster in which every object is Ready at once.
"""

from __future__ import annotations

import copy
import json
import threading
import urllib.parse
from typing import Any

from kfpc.components._recording import RecordingPool
from kfpc.components.push import manifest

FIELD_VALIDATION = "Strict"


class KubeError(RuntimeError):
    """The Kubernetes API refused a request; the message carries its status, reason and message."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


class Conflict(KubeError):
    """409: the object changed since it was read (stale resourceVersion) or already exists."""


def _error(err, what: str) -> KubeError:
    status = getattr(err, "status", 0) or 0
    message = getattr(err, "reason", "") or ""
    body = getattr(err, "body", None)
    if body:
        try:
            message = json.loads(body).get("message", message)
        except (ValueError, AttributeError):
            message = str(body)[:500]
    hint = ""
    if status == 403:
        hint = " (the pipeline's service account needs the Role in serving/rbac.yaml)"
    cls = Conflict if status == 409 else KubeError
    return cls(f"{what}: HTTP {status}: {message}{hint}", status)


class IsvcClient:
    """InferenceService CRUD on one cluster through ``kubernetes.client.CustomObjectsApi``."""

    def __init__(self, api_client):
        """Args:
        api_client: a configured ``kubernetes.client.ApiClient``.
        """
        from kubernetes import client

        self.api_client = api_client
        self.api = client.CustomObjectsApi(api_client)

    @classmethod
    def from_environment(cls, kubeconfig: str = "", context: str = "") -> IsvcClient:
        """In-cluster configuration inside a pod (the pipeline task), else the kubeconfig file."""
        import os

        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if not kubeconfig and os.environ.get("KUBERNETES_SERVICE_HOST"):
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(
                    config_file=kubeconfig or None, context=context or None, client_configuration=configuration
                )
        except (config.ConfigException, OSError) as err:
            where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
            raise KubeError(
                f"no Kubernetes credentials: not running in a pod (KUBERNETES_SERVICE_HOST unset) and no usable "
                f"kubeconfig at {where} ({err})"
            ) from None
        return cls(client.ApiClient(configuration))

    @classmethod
    def for_host(cls, host: str, token: str = "") -> IsvcClient:
        """A client for an API server URL (tests, or a proxy such as ``kubectl proxy``)."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = host
        if token:
            configuration.api_key = {"authorization": token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        return cls(client.ApiClient(configuration))

    def _call(self, what: str, fn, *args, **kwargs):
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as err:
            raise _error(err, what) from None

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The InferenceService, or ``None`` when it does not exist."""
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(
                manifest.GROUP, manifest.VERSION, namespace, manifest.PLURAL, name
            )
        except ApiException as err:
            if err.status == 404:
                return None
            raise _error(err, f"GET inferenceservice {namespace}/{name}") from None

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the InferenceService ``body`` (its metadata names the namespace)."""
        namespace = body["metadata"]["namespace"]
        return self._call(
            f"create inferenceservice {namespace}/{body['metadata']['name']}",
            self.api.create_namespaced_custom_object,
            manifest.GROUP, manifest.VERSION, namespace, manifest.PLURAL, body,
            field_validation=FIELD_VALIDATION,
        )

    def patch(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """Apply a JSON merge patch; include ``metadata.resourceVersion`` to make it conditional."""
        return self._call(
            f"patch inferenceservice {namespace}/{name}",
            self.api.patch_namespaced_custom_object,
            manifest.GROUP, manifest.VERSION, namespace, manifest.PLURAL, name, patch,
            field_validation=FIELD_VALIDATION,
        )

    def delete(self, namespace: str, name: str, *, uid: str = "", resource_version: str = "") -> None:
        """Delete the InferenceService (absent is fine); with ``uid`` / ``resource_version`` only if it still
        has them (the API server answers 409 otherwise, raised as :class:`Conflict`)."""
        from kubernetes.client import V1DeleteOptions, V1Preconditions
        from kubernetes.client.exceptions import ApiException

        body = None
        if uid or resource_version:
            body = V1DeleteOptions(preconditions=V1Preconditions(uid=uid or None,
                                                                 resource_version=resource_version or None))
        try:
            self.api.delete_namespaced_custom_object(manifest.GROUP, manifest.VERSION, namespace, manifest.PLURAL,
                                                     name, body=body)
        except ApiException as err:
            if err.status != 404:
                raise _error(err, f"delete inferenceservice {namespace}/{name}") from None


class _Response:
    """What ``kubernetes.client.rest`` reads from a urllib3 response."""

    def __init__(self, status: int, body: dict[str, Any], reason: str = ""):
        self.status = status
        self.reason = reason or {200: "OK", 201: "Created", 404: "Not Found"}.get(status, "")
        self.data = json.dumps(body).encode()

    def getheaders(self):
        return {"Content-Type": "application/json"}

    def getheader(self, name, default=None):
        return self.getheaders().get(name, default)


class DryRunPool(RecordingPool):
    """Stands in for the client's urllib3 pool: records every request and answers as an empty cluster.

    Objects become Ready at once, with ``status.url`` set to the in-cluster address KServe would give them,
    so the rollout code runs its whole happy path. ``requests`` holds ``{method, path, query, content_type,
    body}`` for every call, bodies exactly as the client serialized them.
    """

    def __init__(self, existing: dict[str, Any] | None = None):
        self.requests: list[dict[str, Any]] = []
        self._objects: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if existing:
            meta = existing["metadata"]
            path = (
                f"/apis/{manifest.GROUP}/{manifest.VERSION}/namespaces/{meta['namespace']}/"
                f"{manifest.PLURAL}/{meta['name']}"
            )
            self._objects[path] = copy.deepcopy(existing)

    def install(self, client: IsvcClient) -> IsvcClient:
        """Route ``client``'s HTTP calls here instead of the network; returns the client."""
        super().install(client.api_client)
        return client

    @staticmethod
    def _ready(obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        obj["status"] = {
            "observedGeneration": meta["generation"],
            "url": f"http://{meta['name']}.{meta['namespace']}.svc.cluster.local",
            "conditions": [{"type": "Ready", "status": "True"}],
        }

    def answer(self, method, url, headers, payload):
        parsed = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": parsed.path,
                    "query": query,
                    "content_type": (headers or {}).get("Content-Type", ""),
                    "body": payload,
                }
            )
            path = parsed.path
            if method == "GET":
                obj = self._objects.get(path)
                return _Response(200, obj) if obj else _Response(404, {"kind": "Status", "code": 404})
            if method == "POST":
                obj = copy.deepcopy(payload)
                obj["metadata"].update(resourceVersion="1", generation=1, uid="00000000-0000-0000-0000-000000000001")
                self._ready(obj)
                self._objects[f"{path}/{obj['metadata']['name']}"] = obj
                return _Response(201, obj)
            if method == "PATCH":
                current = self._objects[path]
                obj = manifest.apply_merge_patch(current, payload)
                meta = obj["metadata"]
                meta["resourceVersion"] = str(int(current["metadata"].get("resourceVersion", "1")) + 1)
                meta["generation"] = int(current["metadata"].get("generation", 1)) + (obj["spec"] != current["spec"])
                self._ready(obj)
                self._objects[path] = obj
                return _Response(200, obj)
            if method == "DELETE":
                self._objects.pop(path, None)
                return _Response(200, {"kind": "Status", "status": "Success"})
        return _Response(405, {"kind": "Status", "code": 405}, "Method Not Allowed")


def dry_run_client(existing: dict[str, Any] | None = None) -> tuple[IsvcClient, DryRunPool]:
    """A real ``IsvcClient`` whose requests are recorded by a :class:`DryRunPool` instead of sent."""
    pool = DryRunPool(existing)
    client = IsvcClient.for_host("https://kubernetes.default.svc")
    return pool.install(client), pool
