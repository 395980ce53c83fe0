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

import asyncio
import gc
import json
import logging
import os
import re
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InferenceError, InvalidInput
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME, get_labels
from kserve.protocol.dataplane import DataPlane

from kfpc.serving import protocol
from kfpc.serving.model import KfpcModel
from kfpc.serving.observability import Observer
from kfpc.serving.protocol import RequestError, loads_json

logger = logging.getLogger("kfpc.serving")

INFERENCE_HEADER = b"inference-header-content-length"
_V1_PREDICT = re.compile(r"^/v1/models/([^/:]+):predict$")
_V2_INFER = re.compile(r"^/v2/models/([^/]+)/infer$")
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

    def __init__(self, app: Any, observer: Observer | None = None, max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
                 dataplane: DataPlane | None = None):
        self.app = app
        self.observer = observer
        self.max_request_bytes = max_request_bytes
        self.dataplane = dataplane
        self._kserve_timers: dict[str, tuple] = {}

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
        if self.dataplane is not None and protocol != "other":
            handled = await self._predict(scope, body, send, path, protocol)
            if handled is not None:
                code, error = handled
                seconds = time.perf_counter() - started
                if self.observer is not None:
                    self.observer.record_request(protocol, code, seconds)
                if code >= 400:
                    logger.warning("request rejected", extra={"path": path, "status": code, "protocol": protocol,
                                                              "error": error, "latency_ms": round(seconds * 1000, 3)})
                return
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

    async def _predict(self, scope: dict, body: bytes, send: Any, path: str,
                       protocol: str) -> tuple[int, str] | None:
        """Serve ``:predict`` / ``/infer`` of a kfpc model directly on KServe's data plane.

        The same decode -> model -> encode calls as KServe's v1/v2 endpoints, without FastAPI's routing and
        pydantic models in between (about half of the server's own time per request, measured in
        benchmarks/bench_serving.py). Anything else (other models, versions, not ready) returns None and
        goes through KServe's routes.

        Returns:
            (status code, error text) when the request was answered here, else None.
        """
        match = (_V1_PREDICT if protocol == "v1" else _V2_INFER).match(path)
        if match is None:
            return None
        name = match.group(1)
        model = self.dataplane.model_registry.get_model(name)
        if not isinstance(model, KfpcModel) or not model.ready:
            return None
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        response_headers: dict[str, str] = {}
        error = ""
        try:
            # Any v1 body that is not a CloudEvent is JSON, whatever its Content-Type: `curl -d` sends
            # application/x-www-form-urlencoded, and KServe's own v1 endpoint accepts that too.
            plain_json = protocol == "v1" and not any(key.startswith("ce-") for key in headers) and not headers.get(
                "content-type", "").startswith("application/cloudevents")
            if plain_json:
                # The raw body: the model's codec parses and checks it in one pass.
                response = await self._infer_v1(model, body, headers)
            else:
                if protocol == "v1":
                    request, attributes = self.dataplane.decode(body, headers)
                else:
                    request, attributes = self.dataplane.decode(body, headers, protocol_version="v2",
                                                                model_name=name)
                response, response_headers = await self.dataplane.infer(name, request, headers)
                response, encode_headers = self.dataplane.encode(name, response, headers, attributes)
                response_headers.update(encode_headers)
        except InvalidInput as err:
            status, error = 400, str(err)
        except InferenceError as err:
            status, error = 500, str(err)
        except Exception as err:  # the same answer KServe's generic handler gives, logged with its traceback
            logger.exception("unexpected error serving %s", path)
            status, error = 500, f"{type(err).__name__} : {err}"
        else:
            status = 200
        if status != 200:
            content, content_type = orjson.dumps({"error": error}), "application/json"
            response_headers = {}
        elif isinstance(response, bytes | str):
            content = response if isinstance(response, bytes) else response.encode()
            content_type = "application/octet-stream" if protocol == "v2" else "application/json"
        else:
            content, content_type = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY), "application/json"
        content_type = response_headers.pop("content-type", content_type)
        raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(content)).encode())]
        raw_headers += [(key.encode("latin-1"), str(value).encode("latin-1")) for key, value in response_headers.items()
                        if key.lower() != "content-length"]
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": content})
        return status, error

    async def _infer_v1(self, model: KfpcModel, payload: Any, headers: dict[str, str]) -> Any:
        """A v1 JSON request through the model's preprocess -> predict -> postprocess, timed into KServe's
        ``request_preprocess_seconds`` / ``request_predict_seconds`` / ``request_postprocess_seconds`` as
        KServe's own ``Model.__call__`` does, with the metric children looked up once per model."""
        timers = self._kserve_timers.get(model.name)
        if timers is None:
            labels = get_labels(model.name)
            timers = tuple(metric.labels(**labels) for metric in (PRE_HIST_TIME, PREDICT_HIST_TIME, POST_HIST_TIME))
            self._kserve_timers[model.name] = timers
        started = time.perf_counter()
        prepared = await model.preprocess(payload, headers)
        predicting = time.perf_counter()
        timers[0].observe(predicting - started)
        prepared = await model.predict(prepared, headers)
        postprocessing = time.perf_counter()
        timers[1].observe(postprocessing - predicting)
        response = await model.postprocess(prepared, headers)
        timers[2].observe(time.perf_counter() - postprocessing)
        return response

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
    """KServe's data plane, with malformed v2 bodies answered 400 (naming the field) instead of 500.

    KServe decodes the JSON header and binary tensors of a v2 request before any model code runs; a
    header without ``inputs`` or a tensor shorter than its ``binary_data_size`` raises plain
    KeyError/ValueError there, which KServe answers 500.
    """

    def decode_inference_request(self, body: Any, headers: dict, model_name: str) -> Any:
        if not isinstance(body, bytes):
            return super().decode_inference_request(body, headers, model_name)
        length = headers.get(INFERENCE_HEADER.decode())
        if length is None:  # Open Inference Protocol: without the header the whole body is JSON
            header = loads_json(body)
            protocol.check_v2_header(header)
            return protocol.request_from_json(header, model_name)
        if not length.isdigit() or int(length) > len(body):
            raise RequestError(f"header Inference-Header-Content-Length is {length!r} but the body has "
                               f"{len(body)} bytes")
        protocol.check_v2_header(loads_json(body[:int(length)]))
        try:
            return super().decode_inference_request(body, headers, model_name)
        except RequestError:
            raise
        except (KeyError, ValueError, TypeError, IndexError) as err:
            problem = f"missing field {err}" if isinstance(err, KeyError) else str(err)
            raise RequestError(f"malformed inference request for model {model_name!r}: {problem}") from None


def install(app: FastAPI, observer: Observer | None, max_request_bytes: int, dataplane: DataPlane | None = None) -> None:
    """Add kfpc's middleware and error handlers to KServe's FastAPI app (before the server starts).

    Args:
        app: ``kserve.model_server.app``.
        observer: the model's observer.
        max_request_bytes: body size limit.
        dataplane: the server's data plane; given, predictions of kfpc models skip FastAPI's routing.
    """
    # Outermost, in front of the middleware KServe adds when it starts (request timing that matches the
    # route and formats a trace line per request, whatever the log level): a prediction answered here
    # skips that work too. Starlette builds the stack on the first request, through this method.
    build_inner_stack = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        return ServingMiddleware(build_inner_stack(), observer=observer, max_request_bytes=max_request_bytes,
                                 dataplane=dataplane)

    app.build_middleware_stack = build_middleware_stack
    _answer_idle_telemetry_once(app)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    # kserve's InvalidInput handler logs a traceback per bad request; ours (for the subclass) does not.
    app.add_exception_handler(RequestError, request_error_handler)


def use_uvloop() -> bool:
    """Run the server's event loop on uvloop (installed with KServe) unless ``KFPC_EVENT_LOOP=asyncio``.

    KServe's single-worker server calls ``asyncio.run`` itself, so uvicorn's ``loop="auto"`` (which picks
    uvloop) never applies there. On uvloop every socket read and write of a request is C code: measured at
    concurrency 64 it is where the plain asyncio loop spent a third of the server's event-loop time.

    Returns:
        True when uvloop is in use.
    """
    if os.environ.get("KFPC_EVENT_LOOP", "uvloop") == "asyncio":
        return False
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with kserve
        logger.warning("uvloop is not installed; serving on the asyncio event loop")
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # (KServe asks for the current loop before its asyncio.run, which makes a new one through the policy)
    asyncio.set_event_loop(asyncio.new_event_loop())
    return True


def freeze_startup_objects() -> int:
    """Move every object alive once the model is loaded out of the cyclic garbage collector's reach.

    TensorFlow, Keras and KServe leave ~520,000 tracked objects behind after loading; each full
    collection walked all of them, 263 ms with the server stopped, and request work triggers one every few
    thousand requests (every 32-row request allocates a few dozen tracked tuples). Those objects live as
    long as the server, so they are frozen (``gc.freeze``), as long-running Python servers do after
    start-up: a full collection then walks only what requests created. Measured at concurrency 64 with
    32-row requests: +9% requests/s with batching, and no 263 ms pauses.

    Returns:
        the number of objects frozen.
    """
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    logger.info("%d objects alive after loading moved out of the garbage collector's reach (gc.freeze)", frozen)
    return frozen


def _answer_idle_telemetry_once(app: FastAPI) -> None:
    """FastAPI's native OpenTelemetry asks, on every request, whether a tracer, meter or logger provider is
    configured (~10 us, a tenth of the event loop's time at concurrency 64). Providers are configured before
    the server starts (``opentelemetry-instrument``, ``OTEL_*`` variables) and the kfpc server sets none
    later, so when none is configured now the answer is kept. A FastAPI without that check is left alone.
    """
    telemetry = getattr(app, "_native_telemetry", None)
    enabled = getattr(telemetry, "enabled", None)
    if callable(enabled) and not enabled():
        telemetry.enabled = lambda: False


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
    freeze_startup_objects()
    use_uvloop()
    server = kserve.ModelServer(http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc, workers=1)
    server.dataplane = KfpcDataPlane(model_registry=server.registered_models)
    install(model_server.app, model.observer, max_request_bytes, server.dataplane)
    try:
        server.start([model])
    finally:
        if model.observer is not None:
            model.observer.close()
