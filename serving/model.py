"""The KServe model for kfpc models: load, warm up, validate, (batch), predict, observe.

KServe's ``Model`` owns the request life cycle; this subclass splits it the way KServe times it:
``preprocess`` decodes and validates the request into feature columns (``request_preprocess_seconds``),
``predict`` calls the model, through the dynamic batcher when batching is on
(``request_predict_seconds``), ``postprocess`` builds the v1 or v2 response
(``request_postprocess_seconds``). Every request error is raised before the model is called, as
kserve's ``InvalidInput``, so a bad request is a 400 and never a 500.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import os
import time
from typing import Any

import kserve
import numpy as np
from kserve.errors import InferenceError
from kserve.protocol.infer_type import InferRequest, InferResponse

from kfpc.components import contract
from kfpc.components import defaults as D
from kfpc.serving import protocol
from kfpc.serving.batching import DynamicBatcher

logger = logging.getLogger("kfpc.serving")

#: response headers naming the registered model and version that answered (every predict/infer response)
REGISTERED_MODEL_HEADER = "kfpc-registered-model"
MODEL_VERSION_HEADER = "kfpc-model-version"

@dataclasses.dataclass
class ModelOptions:
    """Serving options of one model.

    Attributes:
        batching: join concurrent requests into one model call.
        max_batch_size: most rows in one batched call.
        max_batch_wait_ms: how long an idle model waits to fill a batch (0 = run at once).
        max_rows: most rows in one request.
        max_string_length: longest string feature value.
        registered_model_name, registered_version: the model registry's name and version of the served
            model (``--registered_model_name`` / ``--registered_version``); empty = the model card's
            ``registry`` section, if any. Reported in every response and payload-log record.
    """

    batching: bool = True
    max_batch_size: int = D.MAX_BATCH_SIZE
    max_batch_wait_ms: float = D.MAX_BATCH_WAIT_MS
    max_rows: int = D.MAX_ROWS
    max_string_length: int = D.MAX_STRING_LENGTH
    registered_model_name: str = ""
    registered_version: str = ""


@dataclasses.dataclass
class _Prepared:
    protocol: str
    request: Any
    columns: dict[str, np.ndarray]
    rows: int
    started: float
    outputs: dict[str, np.ndarray] | None = None


def model_call_on_loop() -> bool:
    """Whether model calls run on the event loop (``KFPC_MODEL_CALL=loop``) instead of one model thread.

    The thread (default) lets the event loop read and decode requests while TensorFlow computes, and
    keeps health checks answered during long calls: the better choice for heavy models, GPUs and
    batching. For a light CPU model with batching off, the hand-over to the thread and back costs more
    than the call (measured in benchmarks/bench_serving.py: 32-row requests at concurrency 64, ~30%
    more requests/s on the loop), at the price of a loop blocked for each call.

    Raises:
        ValueError: another value.
    """
    value = os.environ.get("KFPC_MODEL_CALL", "thread")
    if value not in ("thread", "loop"):
        raise ValueError(f"KFPC_MODEL_CALL={value!r}: expected 'thread' or 'loop'")
    return value == "loop"


def registered_identity(card: Any, options: ModelOptions) -> tuple[str, str]:
    """(registered model name, version): the options when given, else the card's ``registry`` section."""
    if options.registered_version:
        return options.registered_model_name, options.registered_version
    section = protocol._get(card, "registry", None)
    if not isinstance(section, dict):
        return options.registered_model_name, ""
    return (options.registered_model_name or str(section.get("model_name") or ""),
            str(section.get("version") or ""))


class KfpcModel(kserve.Model):
    """A kfpc SavedModel served over v1, v2 and gRPC v2.

    Args:
        name: the model name in the URL (``/v1/models/<name>:predict``, ``/v2/models/<name>/infer``).
        model_dir: the Model artifact folder (``<dir>/1/saved_model.pb``) or its version folder.
        options: serving options.
        observer: receives every prediction (metrics, payload log); see ``kfpc.serving.observability``.
    """

    def __init__(self, name: str, model_dir: str, options: ModelOptions | None = None, observer: Any = None):
        super().__init__(name)
        self.model_dir = model_dir
        self.options = options or ModelOptions()
        self.observer = observer
        self.limits = protocol.Limits(max_rows=self.options.max_rows,
                                      max_string_length=self.options.max_string_length)
        self.location: contract.ModelLocation | None = None
        self.predictor: Any = None
        self.card: Any = None
        self.features: list[protocol.Feature] = []
        self.task = ""
        #: (registered model name, version) reported with every prediction; ("", "") when not registered
        self.registered: tuple[str, str] = ("", "")
        self.batcher: DynamicBatcher | None = None
        self.v1_codec: protocol.V1JsonCodec | None = None
        self._model_thread: concurrent.futures.ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ life cycle

    def load(self) -> bool:
        """Load the SavedModel and model card, then mark ready only after a warm-up prediction succeeds.

        Returns:
            True (the model is ready).
        Raises:
            ModelLayoutError: no SavedModel in the folder; ValueError: a bad model card;
            RuntimeError: the warm-up prediction failed or returned outputs the contract does not allow.
        """
        self.ready = False
        self.location = contract.locate(self.model_dir)
        self.predictor = contract.load_predictor(self.location)
        self.card = self.predictor.card
        self.features = protocol.features_from_card(self.card)
        self.task = str(protocol._get(self.card, "task", ""))
        self.registered = registered_identity(self.card, self.options)
        self.v1_codec = protocol.V1JsonCodec(self.features, self.limits)
        started = time.perf_counter()
        outputs = self._predict_raw(self._warmup_columns())
        self._check_outputs(outputs, rows=2)
        logger.info("model %s version %s loaded from %s, warm-up prediction took %.1f ms", self.name,
                    self.location.version, self.location.version_dir, (time.perf_counter() - started) * 1000)
        on_loop = model_call_on_loop()
        if self.options.batching:
            self.batcher = DynamicBatcher(self._call_model, self.options.max_batch_size,
                                          self.options.max_batch_wait_ms, on_batch=self._on_batch, on_loop=on_loop)
        elif not on_loop:
            # One model call at a time, on one thread, as with batching: concurrent TensorFlow calls from
            # several Python threads only contend for the GIL (measured at concurrency 64 on 2 cores:
            # 956 requests/s with one model thread, 656 with asyncio's default pool of 6).
            self._model_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kfpc-model")
        if self.observer is not None:
            self.observer.bind(self)
        self.ready = True
        return self.ready

    def stop(self) -> None:
        """Release the batcher's worker thread."""
        if self.batcher is not None:
            self.batcher.close()
        if self._model_thread is not None:
            self._model_thread.shutdown(wait=False)
        super().stop()

    def _warmup_columns(self) -> dict[str, np.ndarray]:
        # Two rows: one typical, one with every value missing (when allowed), so both paths of the
        # model's imputation are traced before the first real request.
        columns = {}
        for feature in self.features:
            if feature.dtype == protocol.STRING:
                missing = "" if feature.allow_missing else "kfpc-warmup"
                columns[feature.name] = np.array(["kfpc-warmup", missing], dtype=object)
            else:
                columns[feature.name] = np.array([0.0, np.nan if feature.allow_missing else 0.0])
        return columns

    def _check_outputs(self, outputs: dict[str, np.ndarray], rows: int) -> None:
        expected = contract.expected_outputs(self.task) if self.task else ()
        if not all(name in outputs for name in expected):
            raise RuntimeError(f"warm-up prediction of {self.model_dir}: task {self.task!r} needs outputs "
                               f"{list(expected)}, the model returned {sorted(outputs)}")
        for name, value in outputs.items():
            if np.asarray(value).shape[:1] != (rows,):
                raise RuntimeError(f"warm-up prediction of {self.model_dir}: output {name!r} has shape "
                                   f"{np.asarray(value).shape}, expected {rows} rows first")

    def _predict_raw(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # the columns come from protocol.decode_v1/decode_v2 (checked and typed): no second conversion
        return {name: np.asarray(value) for name, value in self.predictor.predict_checked(columns).items()}

    def _call_model(self, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # Runs in a worker thread, once per model call: feature and output metrics are recorded per batch,
        # off the event loop and at a cost that does not grow with the number of requests in the batch.
        outputs = self._predict_raw(columns)
        if self.observer is not None:
            self.observer.record_model_call(columns, outputs)
        return outputs

    def _on_batch(self, rows: int, requests: int) -> None:
        if self.observer is not None:
            self.observer.record_batch(rows, requests)

    # ------------------------------------------------------------------ metadata

    def get_input_types(self) -> list[dict]:
        """v2 metadata: one input per feature, shape ``[-1]``."""
        return [{"name": f.name, "datatype": "BYTES" if f.dtype == protocol.STRING else "FP64", "shape": [-1]}
                for f in self.features]

    def get_output_types(self) -> list[dict]:
        """v2 metadata: the signature outputs of the task."""
        if self.task == "regression":
            return [{"name": "predictions", "datatype": "FP32", "shape": [-1]}]
        classes = len(protocol._get(self.card, "classes", None) or []) or -1
        return [{"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]},
                {"name": "class_ids", "datatype": "INT64", "shape": [-1]},
                {"name": "classes", "datatype": "BYTES", "shape": [-1]}]

    # ------------------------------------------------------------------ request path

    def validate(self, payload: Any) -> Any:
        """Requests are validated in ``preprocess`` against the feature spec; nothing left to do."""
        return payload

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> _Prepared:
        """Decode and validate a v1 dict, a v1 JSON body (bytes) or a v2 ``InferRequest`` into feature columns.

        Raises:
            RequestError: (400) naming the field and value at fault.
        """
        started = time.perf_counter()
        if isinstance(payload, InferRequest):
            columns = protocol.decode_v2(payload, self.features, self.limits)
            kind = "grpc-v2" if payload.from_grpc else "v2"
        elif isinstance(payload, bytes):  # a v1 JSON body, from kfpc's HTTP middleware
            columns = self.v1_codec.decode(payload)
            kind = "v1"
        else:
            columns = protocol.decode_v1(payload, self.features, self.limits)
            kind = "v1"
        protocol.check_datetimes(columns, self.features)
        rows = len(next(iter(columns.values())))
        return _Prepared(kind, payload, columns, rows, started)

    async def predict(self, payload: _Prepared, headers: dict[str, str] | None = None) -> _Prepared:
        """Run the model on the request's columns (batched with others when batching is on)."""
        try:
            if self.batcher is not None:
                payload.outputs = await self.batcher.predict(payload.columns, payload.rows)
            elif self._model_thread is None:  # KFPC_MODEL_CALL=loop
                payload.outputs = self._call_model(payload.columns)
                self._on_batch(payload.rows, 1)
            else:
                loop = asyncio.get_running_loop()
                payload.outputs = await loop.run_in_executor(self._model_thread, self._call_model, payload.columns)
                self._on_batch(payload.rows, 1)
        except Exception as err:
            # A model failure on validated input is a server fault (500): the answer names the model, the
            # log has the error (its text may hold internals: paths, tensors, values).
            logger.exception("prediction failed in model %s", self.name)
            raise InferenceError(f"model {self.name!r} failed to predict {payload.rows} rows (details are in "
                                 f"the server log)") from err
        return payload

    async def postprocess(self, result: _Prepared, headers: dict[str, str] | None = None,
                          response_headers: dict[str, str] | None = None) -> bytes | dict | InferResponse:
        """Encode the outputs (v1 JSON bytes for a JSON-bytes request, a v1 dict, or a v2 InferResponse) and
        record them."""
        if isinstance(result.request, bytes):  # a JSON body in, a JSON body out
            response: bytes | dict | InferResponse = self.v1_codec.encode(result.outputs)
        elif result.protocol == "v1":
            response = protocol.encode_v1(result.outputs)
        else:
            response = protocol.encode_v2(result.outputs, result.request, self.name)
            if self.registered[1]:
                response.model_version = self.registered[1]
        if self.observer is not None:
            self.observer.record_prediction(result.protocol, result.columns, result.outputs,
                                            time.perf_counter() - result.started, headers or {})
        return response
