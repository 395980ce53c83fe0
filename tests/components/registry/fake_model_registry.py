"""A fake Kubeflow Model Registry REST server built from the ``model-registry`` client's own generated models.

Every request body is parsed with the generated ``mr_openapi`` *Create/*Update/Artifact models (a field the
API does not declare, or a wrong type, is answered 400 as the real server's OpenAPI validation would) and
every answer is the generated model's ``to_dict()``. Requests are recorded in ``requests``; a path the fake
does not implement is answered 501 and recorded too, so tests can assert none happened.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import mr_openapi as api
from pydantic import ValidationError

BASE = "/api/model_registry/v1"


class FakeModelRegistry:
    """Use as a context manager; ``host``/``port`` for ``ModelRegistry(f"http://{host}", port, ...)``."""

    def __init__(self) -> None:
        self.models: dict[str, api.RegisteredModel] = {}
        self.versions: dict[str, api.ModelVersion] = {}
        self.artifacts: dict[str, api.ModelArtifact] = {}
        self.artifact_parent: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeModelRegistry:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                code, body = fake.handle(self.command, self.path, raw)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def unhandled(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["code"] == 501]

    def writes(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] != "GET"]

    # ---- semantics
    def _now(self) -> str:
        return str(int(time.time() * 1000))

    @staticmethod
    def _error(code: int, message: str) -> tuple[int, dict]:
        return code, api.Error(code=str(code), message=message).to_dict()

    def handle(self, method: str, raw_path: str, raw: bytes) -> tuple[int, dict]:
        parts = urlsplit(raw_path)
        query = dict(parse_qsl(parts.query))
        body = json.loads(raw) if raw else None
        with self._lock:
            try:
                code, answer = self._answer(method, parts.path, query, body)
            except ValidationError as err:
                code, answer = self._error(400, f"invalid body: {err.errors()[0]}")
            except ValueError as err:  # (the generated from_dict of oneOf models raises plain ValueError)
                code, answer = self._error(400, f"invalid body: {err}")
            self.requests.append({"method": method, "path": parts.path, "query": query, "body": body,
                                  "code": code, "response": answer})
        return code, answer

    def _page(self, items: list, list_cls, query: dict) -> dict:
        size = int(query.get("pageSize") or 100)
        return list_cls(nextPageToken="", pageSize=size, size=len(items[:size]), items=items[:size]).to_dict()

    def _answer(self, method: str, path: str, query: dict, body: Any) -> tuple[int, dict]:  # noqa: C901
        if not path.startswith(BASE):
            return self._error(501, f"not implemented: {path}")
        path = path[len(BASE):]
        if method == "GET" and path == "/registered_models":
            return 200, self._page(list(self.models.values()), api.RegisteredModelList, query)
        if method == "GET" and path == "/registered_model":
            found = [m for m in self.models.values() if m.name == query.get("name")]
            return (200, found[0].to_dict()) if found else self._error(404, f"no registered model {query}")
        if method == "POST" and path == "/registered_models":
            create = api.RegisteredModelCreate.from_dict(body)
            if any(m.name == create.name for m in self.models.values()):
                return self._error(409, f"registered model {create.name!r} exists")
            rid, now = str(next(self._ids)), self._now()
            model = api.RegisteredModel.from_dict(dict(create.to_dict(), id=rid, createTimeSinceEpoch=now,
                                                       lastUpdateTimeSinceEpoch=now))
            self.models[rid] = model
            return 201, model.to_dict()
        if m := re.fullmatch(r"/registered_models/(\w+)", path):
            model = self.models.get(m.group(1))
            if model is None:
                return self._error(404, f"no registered model {m.group(1)}")
            if method == "GET":
                return 200, model.to_dict()
            if method == "PATCH":
                update = api.RegisteredModelUpdate.from_dict(body)
                merged = dict(model.to_dict(), **update.to_dict(), lastUpdateTimeSinceEpoch=self._now())
                self.models[model.id] = api.RegisteredModel.from_dict(merged)
                return 200, self.models[model.id].to_dict()
        if method == "GET" and (m := re.fullmatch(r"/registered_models/(\w+)/versions", path)):
            items = [v for v in self.versions.values() if v.registered_model_id == m.group(1)]
            return 200, self._page(items, api.ModelVersionList, query)
        if method == "POST" and path == "/model_versions":
            create = api.ModelVersionCreate.from_dict(body)
            if create.registered_model_id not in self.models:
                return self._error(404, f"no registered model {create.registered_model_id}")
            if any(v.name == create.name and v.registered_model_id == create.registered_model_id
                   for v in self.versions.values()):
                return self._error(409, f"model version {create.name!r} exists")
            vid, now = str(next(self._ids)), self._now()
            version = api.ModelVersion.from_dict(dict(create.to_dict(), id=vid, createTimeSinceEpoch=now,
                                                      lastUpdateTimeSinceEpoch=now))
            self.versions[vid] = version
            return 201, version.to_dict()
        if method == "GET" and path == "/model_version":
            found = [v for v in self.versions.values()
                     if v.name == query.get("name") and v.registered_model_id == query.get("parentResourceId")]
            return (200, found[0].to_dict()) if found else self._error(404, f"no model version {query}")
        if m := re.fullmatch(r"/model_versions/(\w+)", path):
            version = self.versions.get(m.group(1))
            if version is None:
                return self._error(404, f"no model version {m.group(1)}")
            if method == "GET":
                return 200, version.to_dict()
            if method == "PATCH":
                update = api.ModelVersionUpdate.from_dict(body)
                merged = dict(version.to_dict(), **update.to_dict(), lastUpdateTimeSinceEpoch=self._now())
                self.versions[version.id] = api.ModelVersion.from_dict(merged)
                return 200, self.versions[version.id].to_dict()
        if m := re.fullmatch(r"/model_versions/(\w+)/artifacts", path):
            if m.group(1) not in self.versions:
                return self._error(404, f"no model version {m.group(1)}")
            if method == "POST":
                wrapped = api.Artifact.from_dict(body)
                artifact = wrapped.actual_instance
                if not isinstance(artifact, api.ModelArtifact):
                    return self._error(400, f"only model artifacts are kept by this fake, got {type(artifact)}")
                aid, now = str(next(self._ids)), self._now()
                stored = api.ModelArtifact.from_dict(dict(artifact.to_dict(), id=aid, createTimeSinceEpoch=now,
                                                          lastUpdateTimeSinceEpoch=now))
                self.artifacts[aid] = stored
                self.artifact_parent[aid] = m.group(1)
                return 201, api.Artifact(stored).to_dict()
            if method == "GET":
                items = [api.Artifact(a) for aid, a in self.artifacts.items() if self.artifact_parent[aid] == m.group(1)]
                return 200, self._page(items, api.ArtifactList, query)
        if method == "GET" and path == "/model_artifact":
            found = [a for aid, a in self.artifacts.items()
                     if self.artifact_parent[aid] == query.get("parentResourceId")
                     and (not query.get("name") or a.name == query["name"])]
            return (200, found[0].to_dict()) if found else self._error(404, f"no model artifact {query}")
        return self._error(501, f"not implemented: {method} {BASE}{path}")
