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

Exposure: both ports bind ``--host`` (default 127.0.0.1; the serving image passes 0.0.0.0); a request's
headers must arrive within ``--header_timeout_s`` and its body within ``--body_timeout_s`` (408, connection
closed); ``/openapi.json`` and ``/docs`` exist only with ``--enable_docs_url true``; error bodies never hold
an internal exception's text and quote client values only as short excerpts (:func:`protocol.excerpt`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import re
import signal
import threading
import time
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kserve.errors import InferenceError, InvalidInput
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME, get_labels
from kserve.protocol.dataplane import DataPlane

from kfpc.components import defaults as D
from kfpc.serving import protocol
from kfpc.serving.model import MODEL_VERSION_HEADER, REGISTERED_MODEL_HEADER, KfpcModel
from kfpc.serving.observability import Observer
from kfpc.serving.protocol import RequestError, excerpt, loads_json

logger = logging.getLogger("kfpc.serving")

INFERENCE_HEADER = b"inference-header-content-length"
_V1_PREDICT = re.compile(r"^/v1/models/([^/:]+):predict$")
_V2_INFER = re.compile(r"^/v2/models/([^/]+)/infer$")
DEFAULT_MAX_REQUEST_BYTES = D.MAX_REQUEST_BYTES
DEFAULT_HOST = "127.0.0.1"
DEFAULT_HEADER_TIMEOUT_S = D.HEADER_TIMEOUT_S
DEFAULT_BODY_TIMEOUT_S = D.BODY_TIMEOUT_S
#: longest error text in a response body or a log line (messages quote values as short excerpts already)
MAX_ERROR_CHARS = 1024
INTERNAL_ERROR = "internal server error (details are in the server log)"


def bounded(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    """An error text cut to ``limit`` characters (``...`` marks the cut)."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
                 dataplane: DataPlane | None = None, body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S):
        self.app = app
        self.observer = observer
        self.max_request_bytes = max_request_bytes
        self.dataplane = dataplane
        self.body_timeout_s = body_timeout_s
        self._kserve_timers: dict[str, tuple] = {}

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, _bounding_errors(send))
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
        # Read the whole body here (bounded in size and time), so a chunked upload cannot exceed the limit
        # and a client that stops sending cannot hold the connection.
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_request_bytes:
                        await self._reject(send, protocol, started, path,
                                           f"request body is larger than the limit of {self.max_request_bytes} "
                                           f"bytes (--max_request_bytes)")
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await self._reject(send, protocol, started, path, f"request body not received within "
                               f"{self.body_timeout_s:g} s (--body_timeout_s)", status=408)
            return
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

        async def observe(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif message["type"] == "http.response.body" and status["code"] >= 400:
                error_body.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay, _bounding_errors(observe))
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
            status, error = 400, bounded(str(err))
        except InferenceError as err:  # (kfpc's model says which model failed, not the internal error)
            status, error = 500, bounded(str(err))
        except Exception:  # logged with its traceback; the body holds no internal text
            logger.exception("unexpected error serving %s", path)
            status, error = 500, INTERNAL_ERROR
        else:
            status = 200
        if status == 200:
            try:
                if isinstance(response, bytes | str):
                    content = response if isinstance(response, bytes) else response.encode()
                    content_type = "application/octet-stream" if protocol == "v2" else "application/json"
                else:
                    content = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY)
                    content_type = "application/json"
            except Exception:  # (a response that cannot be written is a server fault: logged, no internals)
                logger.exception("cannot encode the response to %s", path)
                status, error = 500, INTERNAL_ERROR
        if status != 200:
            content, content_type = orjson.dumps({"error": error}), "application/json"
            response_headers = {}
        content_type = response_headers.pop("content-type", content_type)
        raw_headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(content)).encode())]
        raw_headers += [(key.encode("latin-1"), str(value).encode("latin-1")) for key, value in response_headers.items()
                        if key.lower() != "content-length"]
        if model.registered[1]:  # which registered model answered: on errors too (it refused the request)
            raw_headers += [(REGISTERED_MODEL_HEADER.encode(), model.registered[0].encode("latin-1", "replace")),
                            (MODEL_VERSION_HEADER.encode(), model.registered[1].encode("latin-1", "replace"))]
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

    async def _reject(self, send: Any, protocol: str, started: float, path: str, message: str,
                      status: int = 400) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 408:  # the rest of a body that came too slowly is not worth reading: close
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        seconds = time.perf_counter() - started
        if self.observer is not None and protocol != "other":
            self.observer.record_request(protocol, status, seconds)
        logger.warning("request rejected", extra={"path": path, "status": status, "protocol": protocol,
                                                  "error": message, "latency_ms": round(seconds * 1000, 3)})


def _bounding_errors(send: Any) -> Any:
    """``send`` for the app behind the middleware: an error answer (4xx/5xx) of KServe or FastAPI is held
    whole and sent with its error text cut to :data:`MAX_ERROR_CHARS`; a 5xx answer never carries an
    internal exception's text. Other answers pass through untouched."""
    held: dict[str, Any] = {}

    async def bounded_send(message: dict) -> None:
        if message["type"] == "http.response.start":
            if message["status"] < 400:
                held.clear()
                await send(message)
                return
            held["start"], held["body"] = message, []
            return
        if "start" not in held or message["type"] != "http.response.body":
            await send(message)
            return
        held["body"].append(message.get("body", b""))
        if message.get("more_body", False):
            return
        start, raw = held.pop("start"), b"".join(held.pop("body"))
        text = INTERNAL_ERROR if start["status"] >= 500 and start["status"] != 503 else _error_text(raw)
        body = orjson.dumps({"error": bounded(text)})
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send(dict(start, headers=headers))
        await send({"type": "http.response.body", "body": body})

    return bounded_send


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return None


def _error_text(body: bytes) -> str:
    try:
        parsed = json.loads(body)
        text = parsed.get("error", parsed.get("detail", body[:MAX_ERROR_CHARS].decode("utf-8", "replace")))
    except (ValueError, AttributeError):
        text = body[:MAX_ERROR_CHARS].decode("utf-8", "replace")
    return bounded(text if isinstance(text, str) else excerpt(text, MAX_ERROR_CHARS))


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
            text += f" (got {excerpt(value)})"
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
        if not (length.isascii() and length.isdigit()) or int(length) > len(body):
            raise RequestError(f"header Inference-Header-Content-Length is {excerpt(length)} but the body has "
                               f"{len(body)} bytes")
        # kfpc's own reader: KServe's accepts a tensor shorter than its binary_data_size and fails with a
        # struct.error (500) on a BYTES length prefix that runs past the tensor.
        return protocol.request_from_binary(body, int(length), model_name)


def install(app: FastAPI, observer: Observer | None, max_request_bytes: int, dataplane: DataPlane | None = None,
            body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S, enable_docs: bool = False) -> None:
    """Add kfpc's middleware and error handlers to KServe's FastAPI app (before the server starts).

    Args:
        app: ``kserve.model_server.app``.
        observer: the model's observer.
        max_request_bytes: body size limit.
        dataplane: the server's data plane; given, predictions of kfpc models skip FastAPI's routing.
        body_timeout_s: seconds a request body may take to arrive.
        enable_docs: keep ``/openapi.json`` (and ``/docs`` when KServe's ``--enable_docs_url`` made it).
    """
    # Outermost, in front of the middleware KServe adds when it starts (request timing that matches the
    # route and formats a trace line per request, whatever the log level): a prediction answered here
    # skips that work too. Starlette builds the stack on the first request, through this method.
    build_inner_stack = app.build_middleware_stack

    def build_middleware_stack() -> Any:
        return ServingMiddleware(build_inner_stack(), observer=observer, max_request_bytes=max_request_bytes,
                                 dataplane=dataplane, body_timeout_s=body_timeout_s)

    app.build_middleware_stack = build_middleware_stack
    _answer_idle_telemetry_once(app)
    if not enable_docs:
        hide_docs(app)
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    # kserve's InvalidInput handler logs a traceback per bad request; ours (for the subclass) does not.
    app.add_exception_handler(RequestError, request_error_handler)


def hide_docs(app: FastAPI) -> None:
    """Remove ``/openapi.json``, ``/docs`` and ``/redoc`` (FastAPI adds them when the app is created): a
    model server needs no published schema of itself unless asked for (``--enable_docs_url true``)."""
    paths = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes = [route for route in app.router.routes if getattr(route, "path", None) not in paths]
    app.openapi_url = app.docs_url = app.redoc_url = None


async def model_not_found_handler(request: Request, exc: Exception) -> JSONResponse:
    """404 naming the model asked for by a short excerpt (KServe's handler quotes the whole name)."""
    name = request.path_params.get("model_name", "")
    return JSONResponse(status_code=404, content={"error": f"model {excerpt(name)} does not exist"})


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """500 without the exception's text (KServe's generic handler puts it in the body); logged here."""
    logger.error("unexpected error serving %s", request.url.path, exc_info=exc)
    return JSONResponse(status_code=500, content={"error": INTERNAL_ERROR})


def header_timeout_protocol(seconds: float) -> type | str:
    """uvicorn's httptools HTTP protocol with a deadline for each request's headers.

    uvicorn times only idle keep-alive connections: a client that connects and sends nothing, or sends
    its headers a byte at a time, holds a connection for ever. Here the headers of each request must be
    complete ``seconds`` after the connection opens or the request's first byte arrives; otherwise the
    server answers 408 and closes.

    Returns:
        the protocol class for ``uvicorn.Config(http=...)`` (``"auto"`` without httptools).
    """
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # pragma: no cover - httptools comes with kserve (uvicorn[standard])
        logger.warning("httptools is not installed: no header read timeout")
        return "auto"
    body = orjson.dumps({"error": f"request headers not received within {seconds:g} s (--header_timeout_s)"})
    answer = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
              b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)

    class HeaderTimeoutProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:
                self._arm_header_timer()

        def on_headers_complete(self) -> None:
            self._cancel_header_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            super().connection_lost(exc)

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._header_timer = self.loop.call_later(seconds, self._headers_timed_out)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_timed_out(self) -> None:
            self._header_timer = None
            if self.transport.is_closing():
                return
            if self.cycle is None or self.cycle.response_complete:  # (never in the middle of a response)
                self.transport.write(answer)
            self.transport.close()

    return HeaderTimeoutProtocol


def watch_parent(parent_pid: int, interval_s: float = 0.5, grace_s: float = 30.0) -> threading.Thread:
    """Stop this process when its parent is gone (``kfpc serve`` or a ``LocalServer`` owner killed, even
    with SIGKILL): a SIGTERM to itself (KServe's graceful stop), then a hard exit after ``grace_s``.

    Args:
        parent_pid: the parent's pid when the server started.
        interval_s: how often to look.
        grace_s: seconds the graceful stop may take.
    Returns:
        the (daemon) watcher thread.
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval_s)
        logger.warning("parent process %d is gone: stopping the server", parent_pid)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
        os._exit(1)

    thread = threading.Thread(target=watch, name="kfpc-parent-watch", daemon=True)
    thread.start()
    return thread


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


class KfpcModelServer:
    """KServe's single-worker ModelServer, started with kfpc's transport settings: both ports bound to
    ``host``, the header-timeout HTTP protocol, error handlers that quote no internal text, and a gRPC
    servicer that counts and logs its rejections. (KServe binds 0.0.0.0 and [::] unconditionally.)

    Args:
        server: a ``kserve.ModelServer`` (workers=1) whose data plane is set.
        host: the address both ports bind.
        header_timeout_s: seconds a request's headers may take.
        observer: the model's observer (gRPC request metrics).
    """

    def __init__(self, server: Any, host: str, header_timeout_s: float, observer: Observer | None):
        self.server = server
        self.host = host
        self.header_timeout_s = header_timeout_s
        self.observer = observer

    def start(self, models: list) -> None:
        """Register the models and serve until SIGTERM/SIGINT (KServe's ``ModelServer.start``, one worker)."""
        from kserve.protocol.rest.server import RESTServer

        server = self.server
        server._register_and_check_atleast_one_model_is_ready(models)
        rest = RESTServer("kserve.model_server:app", server.dataplane, server.model_repository_extension,
                          server.http_port, access_log_format=server.access_log_format, workers=1,
                          grace_period=server.grace_period, event_loop=server.event_loop,
                          timeout_keep_alive=server.timeout_keep_alive, ssl_certfile=server.ssl_certfile,
                          ssl_keyfile=server.ssl_keyfile)
        rest.config.host = self.host
        rest.config.http = header_timeout_protocol(self.header_timeout_s)
        server._rest_server = rest
        server.servers.append(self._serve_rest(rest))
        if server.enable_grpc:
            from kserve.model_server import args as kserve_args

            server._grpc_server = KfpcGRPCServer(server.grpc_port, server.dataplane, server.model_repository_extension,
                                                 kwargs=vars(kserve_args), grace_period=server.grace_period,
                                                 host=self.host, observer=self.observer)
            server.servers.append(server._grpc_server.start(server.max_threads))
        server.setup_event_loop()
        server.register_signal_handler()
        asyncio.run(server._serve())

    async def _serve_rest(self, rest: Any) -> None:
        from kserve import model_server
        from kserve.errors import ModelNotFound

        rest.create_application()
        app = model_server.app
        # after KServe's own handlers (create_application adds them), so these win
        app.add_exception_handler(ModelNotFound, model_not_found_handler)
        app.add_exception_handler(Exception, internal_error_handler)
        await rest._server.serve()


def grpc_listen_address(host: str, port: int) -> str:
    """The gRPC listen address for ``host``: 0.0.0.0 keeps KServe's dual-stack ``[::]``; IPv6 in brackets."""
    if host in ("0.0.0.0", "::", ""):
        return f"[::]:{port}"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _grpc_classes() -> tuple:
    from grpc import StatusCode, aio
    from kserve.errors import InferenceError as KInferenceError
    from kserve.errors import ModelNotFound, ModelNotReady, ServerNotLive, ServerNotReady
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.interceptors import ExceptionToStatusInterceptor
    from kserve.protocol.grpc.server import GRPCServer
    from kserve.protocol.grpc.servicer import InferenceServicer
    from kserve.protocol.infer_type import InferRequest, InferResponse
    from kserve.utils.utils import to_headers

    def grpc_error(err: Exception) -> tuple[int, Any, str]:
        """(HTTP-equivalent code for the metrics, gRPC status, message) of a failed ModelInfer."""
        if isinstance(err, InvalidInput):
            return 400, StatusCode.INVALID_ARGUMENT, bounded(str(err))
        if isinstance(err, ModelNotFound):
            return 404, StatusCode.NOT_FOUND, "model not found"
        if isinstance(err, ModelNotReady | ServerNotReady | ServerNotLive):
            return 503, StatusCode.UNAVAILABLE, bounded(str(err))
        if isinstance(err, KInferenceError):
            return 500, StatusCode.INTERNAL, bounded(str(err))
        return 500, StatusCode.INTERNAL, INTERNAL_ERROR

    class KfpcInferenceServicer(InferenceServicer):
        """KServe's servicer; ModelInfer checks the request itself (a malformed one is INVALID_ARGUMENT, never
        INTERNAL), answers errors without internal text and records every answer in the request metrics."""

        def __init__(self, data_plane: DataPlane, extension: Any, observer: Observer | None):
            super().__init__(data_plane, extension)
            self._data_plane_ = data_plane
            self._observer = observer

        async def ModelInfer(self, request: Any, context: Any) -> Any:  # noqa: N802 - the gRPC method name
            started = time.perf_counter()
            try:
                return await self._infer(request, context)
            except Exception as err:
                code, status, message = grpc_error(err)
                seconds = time.perf_counter() - started
                if self._observer is not None:
                    self._observer.record_request("grpc-v2", code, seconds)
                if code >= 500:
                    logger.error("gRPC ModelInfer failed", exc_info=err)
                logger.warning("request rejected", extra={"path": "ModelInfer", "status": code, "protocol": "grpc-v2",
                                                          "error": message, "latency_ms": round(seconds * 1000, 3)})
                await context.abort(status, message)

        async def _infer(self, request: Any, context: Any) -> Any:
            raw = len(request.raw_input_contents)
            if raw and raw != len(request.inputs):
                raise RequestError(f"{len(request.inputs)} inputs but {raw} raw_input_contents; expected one per input")
            for i, tensor in enumerate(request.inputs):
                if raw and tensor.HasField("contents"):
                    raise RequestError(f"inputs[{i}] ({excerpt(tensor.name)}): contents must be empty when "
                                       f"raw_input_contents are sent")
                if tensor.datatype not in protocol.NUMERIC_V2_TYPES | {"BYTES"}:
                    raise RequestError(f"inputs[{i}] ({excerpt(tensor.name)}): unknown datatype {excerpt(tensor.datatype)}")
            try:
                infer_request = InferRequest.from_grpc(request)
            except InvalidInput:
                raise
            except Exception as err:  # anything KServe's converter trips on is the request's fault
                raise RequestError(f"malformed ModelInferRequest ({type(err).__name__})") from None
            response, _ = await self._data_plane_.infer(request=infer_request, headers=to_headers(context),
                                                        model_name=request.model_name)
            if isinstance(response, pb.ModelInferResponse):
                return response
            if isinstance(response, InferResponse):
                return response.to_grpc()
            return pb.ModelInferResponse(id=response["id"], model_name=response["model_name"],
                                         outputs=response["outputs"])

    class StatusInterceptor(ExceptionToStatusInterceptor):
        """KServe's exception-to-status mapping for the other methods; an abort already made passes through."""

        async def handle_exception(self, ex: Exception, request_or_iterator: Any, context: Any,
                                   method_name: str) -> None:
            if isinstance(ex, aio.AbortError):
                raise ex
            await super().handle_exception(ex, request_or_iterator, context, method_name)

    class KfpcGRPCServer(GRPCServer):
        """KServe's gRPC server on ``host`` with :class:`KfpcInferenceServicer`."""

        def __init__(self, *args: Any, host: str = DEFAULT_HOST, observer: Observer | None = None, **kwargs: Any):
            super().__init__(*args, **kwargs)
            self._host = host
            self._observer = observer

        async def start(self, max_workers: int) -> None:
            from concurrent import futures

            from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc

            servicer = KfpcInferenceServicer(self._data_plane, self._model_repository_extension, self._observer)
            self._server = aio.server(
                futures.ThreadPoolExecutor(max_workers=max_workers), interceptors=(StatusInterceptor(),),
                options=[("grpc.max_send_message_length", self._kwargs.get("grpc_max_send_message_length")),
                         ("grpc.max_receive_message_length", self._kwargs.get("grpc_max_receive_message_length"))])
            grpc_predict_v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
            address = grpc_listen_address(self._host, self._port)
            if self._server.add_insecure_port(address) == 0:
                raise RuntimeError(f"gRPC: cannot listen on {address}")
            logger.info("Starting gRPC server on %s", address)
            await self._server.start()
            await self._server.wait_for_termination()

    return KfpcInferenceServicer, KfpcGRPCServer


KfpcInferenceServicer, KfpcGRPCServer = _grpc_classes()


def serve(model: KfpcModel, *, http_port: int, grpc_port: int, enable_grpc: bool,
          max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, host: str = DEFAULT_HOST,
          header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S, body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
          enable_docs: bool = False, exit_with_parent: int | None = None) -> None:
    """Load the model, then serve it until SIGTERM/SIGINT.

    One worker process: the dynamic batcher and the metrics live in it. Scale with replicas (KServe's
    ``minReplicas``/``maxReplicas``), not workers.

    Args:
        model: the (not yet loaded) model.
        http_port: REST port.
        grpc_port: gRPC port.
        enable_grpc: serve gRPC v2 too.
        max_request_bytes: body size limit.
        host: the address both ports bind (0.0.0.0: every interface, gRPC on [::]).
        header_timeout_s: seconds a request's headers may take to arrive.
        body_timeout_s: seconds a request's body may take to arrive.
        enable_docs: serve ``/openapi.json`` (and ``/docs`` with KServe's ``--enable_docs_url``).
        exit_with_parent: a pid; the server stops when its parent is no longer that process.
    """
    import kserve
    from kserve import model_server

    if exit_with_parent is not None:
        watch_parent(exit_with_parent)
    model.load()
    freeze_startup_objects()
    use_uvloop()
    server = kserve.ModelServer(http_port=http_port, grpc_port=grpc_port, enable_grpc=enable_grpc, workers=1)
    server.dataplane = KfpcDataPlane(model_registry=server.registered_models)
    install(model_server.app, model.observer, max_request_bytes, server.dataplane, body_timeout_s=body_timeout_s,
            enable_docs=enable_docs)
    try:
        KfpcModelServer(server, host, header_timeout_s, model.observer).start([model])
    finally:
        if model.observer is not None:
            model.observer.close()
