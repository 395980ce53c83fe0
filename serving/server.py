"""Assemble and run the KServe model server around :class:`KfpcModel`.

KServe owns transport, health and ``/metrics``; this module adds, in one ASGI middleware in front of
KServe's FastAPI app:

* a request body limit (``--max_request_bytes``): an oversized payload is a 400 before it is parsed,
* Triton-style v2 requests: a body without ``Inference-Header-Content-Length`` is all JSON (the Open
  Inference Protocol says so), whatever its Content-Type, so tritonclient's defaults work,
* ``kfpc_request_latency_seconds`` / ``kfpc_requests_total`` by protocol and status code,
* a structured warning log line per rejected request, naming the error.

FastAPI's own request validation errors (a v2 body that is not an inference request) become 400s
naming the field, never 422s or 500s.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.protocol.dataplane import DataPlane

from kfpc.serving.model import KfpcModel
from kfpc.serving.observability import Observer
from kfpc.serving.protocol import RequestError

logger = logging.getLogger("kfpc.serving")

INFERENCE_HEADER = b"inference-header-content-length"
DEFAULT_MAX_REQUEST_BYTES = 16 << 20


def protocol_of(path: str) -> str:
    """``v1``, ``v2`` or ``other`` from a request path."""
    if path.startswith("/v2/"):
        return "v2"
    if path.startswith("/v1/"):
        return "v1"
    return "other"


class ServingMiddleware:
    """Pure ASGI middleware: body limit, Triton JSON bodies, request metrics and error logs.

    Args:
        app: the ASGI app to wrap.
        observer: records request latency and status.
        max_request_bytes: largest accepted request body.
    """

    def __init__(self, app: Any, observer: Observer | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES):
        self.app = app
        self.observer = observer
        self.max_request_bytes = max_request_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        protocol = protocol_of(path)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_request_bytes:
            await self._reject(send, protocol, started, path,
                               f"request body of {int(declared)} bytes is larger than the limit of "
                               f"{self.max_request_bytes} bytes (--max_request_bytes)")
            return
        # Read the whole body here (bounded), so a chunked upload cannot exceed the limit either.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_request_bytes:
                await self._reject(send, protocol, started, path,
                                   f"request body is larger than the limit of {self.max_request_bytes} bytes "
                                   f"(--max_request_bytes)")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if protocol == "v2" and path.endswith("/infer") and _header(scope, INFERENCE_HEADER) is None:
            # Without the binary header the whole body is JSON (Open Inference Protocol); tell FastAPI so.
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = dict(scope, headers=headers + [(b"content-type", b"application/json")])
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = {"code": 500}
        error_body = []

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and status["code"] >= 400:
                error_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay, send_wrapper)
        finally:
            seconds = time.perf_counter() - started
            if self.observer is not None and protocol != "other":
                self.observer.record_request(protocol, status["code"], seconds)
            if status["code"] >= 400:
                logger.warning("request rejected", extra={
                    "path": path, "status": status["code"], "protocol": protocol,
                    "error": _error_text(b"".join(error_body)), "latency_ms": round(seconds * 1000, 3)})

    async def _reject(self, send: Any, protocol: str, started: float, path: str, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
        seconds = time.perf_counter() - started
        if self.observer is not None and protocol != "other":
            self.observer.record_request(protocol, 400, seconds)
        logger.warning("request rejected", extra={"path": path, "status": 400, "protocol": protocol,
                                                  "error": message, "latency_ms": round(seconds * 1000, 3)})


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error", body[:500].decode("utf-8", "replace")))
    except (ValueError, AttributeError):
        return body[:500].decode("utf-8", "replace")


async def request_validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's body validation errors as 400s naming the field and value (not 422)."""
    problems = []
    errors = [e for e in exc.errors() if tuple(e.get("loc", ()))[-1:] != ("bytes",)] or exc.errors()
    for error in errors[:5]:
        parts = [str(part) for part in error.get("loc", ()) if part not in ("body", "InferenceRequest")]
        location = ".".join(parts) or "body"
        value = error.get("input")
        text = f"field {location!r}: {error.get('msg')}"
        if value is not None and error.get("type") != "missing":
            text += f" (got {str(value)[:80]!r})"
        problems.append(text)
    return JSONResponse(status_code=400, content={"error": "invalid inference request: " + "; ".join(problems)})


async def request_error_handler(request: Request, exc: RequestError) -> JSONResponse:
    """A request that fails the feature spec: 400 with the message (logged once, by the middleware)."""
    return JSONResponse(status_code=400, content={"error": str(exc)})


class KfpcDataPlane(DataPlane):
    """KServe's data plane, with malformed binary v2 bodies answered 400 instead of 500.

    KServe decodes the binary tensors of a v2 request before any model code runs; a tensor shorter
    than its ``binary_data_size`` or a header without ``inputs`` raises plain ValueError/KeyError there.
    """

    def decode_inference_request(self, body: Any, headers: dict, model_name: str) -> Any:
        try:
            return super().decode_inference_request(body, headers, model_name)
        except (KeyError, ValueError, TypeError, IndexError) as err:
            if isinstance(err, RequestError):
                raise
            problem = f"missing field {err}" if isinstance(err, KeyError) else str(err)
            raise RequestError(f"malformed binary inference request for model {model_name!r}: {problem}") from None


def install(app: FastAPI, observer: Observer | None, max_request_bytes: int) -> None:
    """Add kfpc's middleware and error handlers to KServe's FastAPI app (before the server starts).

    Args:
        app: ``kserve.model_server.app``.
        observer: the model's observer.
        max_request_bytes: body size limit.
    """
    app.add_middleware(ServingMiddleware, observer=observer, max_request_bytes=max_request_bytes)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    # kserve's InvalidInput handler logs a traceback per bad request; ours (for the subclass) does not.
    app.add_exception_handler(RequestError, request_error_handler)


def serve(model: KfpcModel, *, http_port: int, grpc_port: int, enable_grpc: bool,
          max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES) -> None:
    """Load the model, then serve it until SIGTERM/SIGINT.

    One worker process: the dynamic batcher and the metrics live in it. Scale with replicas (KServe's
    ``minReplicas``/``maxReplicas``), not workers.

    Args:
        model: the (not yet loaded) model.
        http_port: REST port.
        grpc_port: gRPC port.
        enable_grpc: serve gRPC v2 too.
        max_request_bytes: body size limit.
    """
    import kserve
    from kserve import model_server

    model.load()
    install(model_server.app, model.observer, max_request_bytes)
    server = kserve.ModelServer(http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc, workers=1)
    server.dataplane = KfpcDataPlane(model_registry=server.registered_models)
    try:
        server.start([model])
    finally:
        if model.observer is not None:
            model.observer.close()
