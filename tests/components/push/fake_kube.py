"""A local fake Kubernetes API server for InferenceServices (127.0.0.1 only).

It behaves like the real API server where the push code depends on it:

* objects are validated against KServe's real CRD schema (``jsonschema``): wrong types / missing required
  fields -> 422 Invalid; with ``fieldValidation=Strict`` unknown fields -> 400 BadRequest (without it they
  are pruned, as the real server does);
* ``POST`` on an existing name -> 409 AlreadyExists; ``GET``/``PATCH``/``DELETE`` of a missing one -> 404;
* ``PATCH`` takes ``application/merge-patch+json`` only (applied per RFC 7386); a non-empty
  ``metadata.resourceVersion`` in the patch that is not the current one -> 409 Conflict (the API server's
  optimistic concurrency: the patched object's resourceVersion is a precondition of the update);
* ``DELETE`` honours ``preconditions`` (``uid``, ``resourceVersion``) in its DeleteOptions body -> 409; ``status`` is a subresource, so writes to the main resource never
  change it; ``metadata.generation`` grows when ``spec`` changes, ``resourceVersion`` on every write;
* a stand-in controller sets ``status`` on every read from ``readiness(obj)``: ``"ready"`` (Ready=True for
  the current generation, with ``status.url``), ``"pending"`` (Ready=False), ``"failed"`` (the model failed
  to load) or ``"stale"`` (Ready=True but for the previous generation: a controller that has not caught up);
  Ready objects also get ``status.components.predictor.latestCreatedRevision`` (``<name>-predictor-000NN``);
* ``before_request(method, path, body)``, when set, runs before each request is answered, outside the
  server's lock: a test uses it to let a second push act at an exact point of the first one.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_PATH = re.compile(
    r"^/apis/serving\.kserve\.io/v1beta1/namespaces/(?P<ns>[^/]+)/inferenceservices(?:/(?P<name>[^/]+))?$"
)
_OBJECT_META_KEYS = {
    "name", "namespace", "labels", "annotations", "resourceVersion", "generation", "uid", "creationTimestamp",
    "finalizers", "ownerReferences", "generateName", "managedFields", "deletionTimestamp",
    "deletionGracePeriodSeconds", "selfLink",
}


def unknown_fields(obj: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Paths of fields a structural CRD schema does not declare (what Strict field validation rejects)."""
    out: list[str] = []
    if isinstance(obj, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return out
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        if path == ".metadata":
            return [f"{path}.{k}" for k in obj if k not in _OBJECT_META_KEYS]
        for key, value in obj.items():
            if props is not None and key in props:
                out += unknown_fields(value, props[key], f"{path}.{key}")
            elif isinstance(additional, dict):
                out += unknown_fields(value, additional, f"{path}.{key}")
            elif props is not None:
                out.append(f"{path}.{key}")
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(obj):
            out += unknown_fields(item, schema["items"], f"{path}[{i}]")
    return out


def prune(obj: Any, schema: dict[str, Any], path: str = "") -> Any:
    """Drop undeclared fields (the API server's default for CRDs without Strict validation)."""
    if isinstance(obj, dict):
        if schema.get("x-kubernetes-preserve-unknown-fields") or path == ".metadata":
            return obj
        props = schema.get("properties")
        additional = schema.get("additionalProperties")
        result = {}
        for key, value in obj.items():
            if props is not None and key in props:
                result[key] = prune(value, props[key], f"{path}.{key}")
            elif isinstance(additional, dict):
                result[key] = prune(value, additional, f"{path}.{key}")
            elif props is None:
                result[key] = value
        return result
    if isinstance(obj, list) and isinstance(schema.get("items"), dict):
        return [prune(item, schema["items"], f"{path}[{i}]") for i, item in enumerate(obj)]
    return obj


def rfc7386_merge_patch(target: Any, patch: Any) -> Any:
    """What the API server does with ``application/merge-patch+json``: RFC 7386 section 2, line by line.

    Written from the RFC, not from the code under test (``manifest.merge_patch`` builds patches; this applies
    them); ``test_fake_kube_merge_patch_is_rfc7386`` checks it against every example of the RFC's Appendix A.
    """
    if isinstance(patch, dict):  # "if Patch is an Object"
        if not isinstance(target, dict):  # "if Target is not an Object: Target = {}"
            target = {}
        target = dict(target)
        for name, value in patch.items():  # "for each Name/Value pair in Patch"
            if value is None:
                target.pop(name, None)  # "if Value is null: remove the Name/Value pair from Target"
            else:
                target[name] = rfc7386_merge_patch(target.get(name), value)  # "Target[Name] = MergePatch(...)"
        return copy.deepcopy(target)
    return copy.deepcopy(patch)  # "else: return Patch"


class FakeKube:
    """The fake API server. Use as a context manager; ``.url`` is its base URL."""

    def __init__(self, schema: dict[str, Any], validator) -> None:
        self.schema = schema
        self.validator = validator
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        #: obj -> "ready" | "pending" | "failed" | "stale"
        self.readiness: Callable[[dict[str, Any]], str] = lambda obj: "ready"
        #: the next PATCH first sees a concurrent writer bump the object (its resourceVersion goes stale)
        self.concurrent_writes_before_patch = 0
        #: called with (method, path, body) before a request is answered (outside the lock)
        self.before_request: Callable[[str, str, Any], None] | None = None
        self._rv = itertools.count(100)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # ---- server lifecycle
    def __enter__(self) -> FakeKube:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest output clean
                pass

            def _send(self, code: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, body = fake.handle(self.command, self.path, self.headers.get("Content-Type", ""), raw)
                self._send(code, body)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # ---- helpers for tests
    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store an object directly (as if created earlier), returning the stored copy."""
        with self._lock:
            stored = copy.deepcopy(obj)
            meta = stored["metadata"]
            meta.update(resourceVersion=str(next(self._rv)), generation=1, uid=str(uuid.uuid4()))
            self.objects[(meta["namespace"], meta["name"])] = stored
            return copy.deepcopy(stored)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        with self._lock:
            obj = self.objects.get((namespace, name))
            return copy.deepcopy(obj) if obj else None

    def writes(self) -> list[dict[str, Any]]:
        """The recorded POST/PATCH/PUT/DELETE requests."""
        return [r for r in self.requests if r["method"] != "GET"]

    # ---- API semantics
    @staticmethod
    def _status(code: int, reason: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
                      "reason": reason, "message": message}

    def _validate(self, obj: dict[str, Any], strict: bool) -> tuple[int, dict[str, Any]] | None:
        name = obj.get("metadata", {}).get("name", "")
        if strict:
            unknown = unknown_fields(obj, self.schema)
            if unknown:
                return self._status(400, "BadRequest", f"strict decoding error: unknown field \"{unknown[0][1:]}\"")
        errors = sorted(self.validator.iter_errors(obj), key=lambda e: list(e.absolute_path))
        if errors:
            first = errors[0]
            where = ".".join(str(p) for p in first.absolute_path)
            return self._status(
                422, "Invalid", f'InferenceService.serving.kserve.io "{name}" is invalid: {where}: {first.message}'
            )
        return None

    def _controller(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        state = self.readiness(obj)
        generation = meta["generation"]
        url = f"http://{meta['name']}.{meta['namespace']}.example.com"
        if state == "ready":
            status = {"observedGeneration": generation, "url": url,
                      "conditions": [{"type": "Ready", "status": "True"}],
                      "components": {"predictor": {"latestCreatedRevision": f"{meta['name']}-predictor-{generation:05d}",
                                                   "url": url}}}
        elif state == "stale":
            status = {"observedGeneration": generation - 1, "url": url,
                      "conditions": [{"type": "Ready", "status": "True"}]}
        elif state == "failed":
            status = {"observedGeneration": generation,
                      "conditions": [{"type": "Ready", "status": "False", "reason": "RevisionFailed"}],
                      "modelStatus": {"transitionStatus": "BlockedByFailedLoad",
                                      "lastFailureInfo": {"reason": "ModelLoadFailed", "message": "no versions"}}}
        else:
            status = {"observedGeneration": generation,
                      "conditions": [{"type": "Ready", "status": "False", "reason": "PredictorNotReady",
                                      "message": "predictor pods not ready"}]}
        if obj.get("status") != status:
            obj["status"] = status
            meta["resourceVersion"] = str(next(self._rv))

    def handle(self, method: str, raw_path: str, content_type: str, raw: bytes) -> tuple[int, dict[str, Any]]:
        """Answer one request; it is logged in ``requests`` with the response ``code`` and ``response``."""
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        body = json.loads(raw) if raw else None
        if self.before_request is not None:
            self.before_request(method, parts.path, body)
        entry = {"method": method, "path": parts.path, "query": query, "content_type": content_type, "body": body}
        with self._lock:
            self.requests.append(entry)
            code, response = self._answer(method, parts.path, query, content_type, body)
            entry.update(code=code, response=copy.deepcopy(response))
            return code, response

    def _answer(self, method, path, query, content_type, body) -> tuple[int, dict[str, Any]]:
        match = _PATH.match(path)
        if not match:
            return self._status(404, "NotFound", f"the server could not find the requested resource {path}")
        namespace, name = match.group("ns"), match.group("name")
        strict = query.get("fieldValidation") == "Strict"
        key = (namespace, name)
        if method == "GET" and name:
            obj = self.objects.get(key)
            if obj is None:
                return self._status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
            self._controller(obj)
            return 200, copy.deepcopy(obj)
        if method == "POST" and not name:
            obj = copy.deepcopy(body or {})
            meta = obj.setdefault("metadata", {})
            if meta.get("namespace", namespace) != namespace:
                return self._status(400, "BadRequest", "the namespace of the object does not match the request")
            meta["namespace"] = namespace
            error = self._validate(obj, strict)
            if error:
                return error
            if (namespace, meta.get("name")) in self.objects:
                return self._status(
                    409, "AlreadyExists", f'inferenceservices.serving.kserve.io "{meta.get("name")}" already exists'
                )
            obj = prune(obj, self.schema)
            obj.pop("status", None)
            meta = obj["metadata"]
            meta.update(resourceVersion=str(next(self._rv)), generation=1, uid=str(uuid.uuid4()))
            self.objects[(namespace, meta["name"])] = obj
            return 201, copy.deepcopy(obj)
        if method == "PATCH" and name:
            if content_type != "application/merge-patch+json":
                return self._status(415, "UnsupportedMediaType", f"unsupported patch type {content_type}")
            current = self.objects.get(key)
            if current is None:
                return self._status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
            if self.concurrent_writes_before_patch:
                self.concurrent_writes_before_patch -= 1
                current["metadata"].setdefault("annotations", {})["someone-else/touched"] = "yes"
                current["metadata"]["resourceVersion"] = str(next(self._rv))
            wanted_rv = ((body or {}).get("metadata") or {}).get("resourceVersion")
            if wanted_rv and wanted_rv != current["metadata"]["resourceVersion"]:
                return self._status(
                    409, "Conflict",
                    f'Operation cannot be fulfilled on inferenceservices.serving.kserve.io "{name}": the object '
                    f"has been modified; please apply your changes to the latest version and try again",
                )
            patch = copy.deepcopy(body or {})
            patch.pop("status", None)  # status is a subresource
            merged = rfc7386_merge_patch(current, patch)
            merged["status"] = current.get("status")
            error = self._validate({k: v for k, v in merged.items() if k != "status" or v}, strict)
            if error:
                return error
            merged = prune(merged, self.schema)
            meta = merged["metadata"]
            for fixed in ("name", "namespace", "uid"):
                meta[fixed] = current["metadata"][fixed]
            meta["resourceVersion"] = str(next(self._rv))
            meta["generation"] = current["metadata"]["generation"] + (merged.get("spec") != current.get("spec"))
            self.objects[key] = merged
            return 200, copy.deepcopy(merged)
        if method == "DELETE" and name:
            current = self.objects.get(key)
            if current is None:
                return self._status(404, "NotFound", f'inferenceservices.serving.kserve.io "{name}" not found')
            pre = (body or {}).get("preconditions") or {}
            for field, have in (("uid", current["metadata"]["uid"]),
                                ("resourceVersion", current["metadata"]["resourceVersion"])):
                if pre.get(field) and pre[field] != have:
                    return self._status(
                        409, "Conflict",
                        f"Operation cannot be fulfilled on inferenceservices.serving.kserve.io \"{name}\": "
                        f"Precondition failed: {field}: {pre[field]}, ObjectMeta.{field}: {have}",
                    )
            del self.objects[key]
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}
        return self._status(405, "MethodNotAllowed", f"{method} {path} is not supported")
